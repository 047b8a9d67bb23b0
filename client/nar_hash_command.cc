// attest nar-hash: the NarHash and NarSize of file system paths, computed natively (client/nar.h).
#include <ostream>
#include <string>
#include <vector>

#include "client/commands.h"
#include "client/nar.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"

namespace attest::client {
namespace {

using consensus::Cat;

int RunNarHash(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  const std::vector<std::string>& paths = args.positionals();
  if (paths.empty()) return UsageError(spec, env, "no path given: pass the file or directory to hash");
  for (const std::string& path : paths) {
    if (path == "-") {
      return UsageError(spec, env, "nar-hash reads paths, not standard input (for a file named -, pass ./-)");
    }
  }
  const bool json_output = args.Has("json");
  // ordered_json keeps "path" first, as written.
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  int failures = 0;
  for (const std::string& path : paths) {
    absl::StatusOr<NarDigest> digest = HashNar(path);
    if (!digest.ok()) {
      Failure(spec, env, consensus::StdView(digest.status().message()));
      ++failures;
      continue;
    }
    if (json_output) {
      list.push_back(
          {{"path", path}, {"narHash", digest->hash.ToNix32()}, {"narSize", digest->size}});
    } else if (paths.size() == 1) {
      env.out << digest->hash.ToNix32() << " " << digest->size << "\n";
    } else {
      // The path goes last so that it may contain spaces: split at the first two spaces.
      env.out << digest->hash.ToNix32() << " " << digest->size << " " << path << "\n";
    }
  }
  if (json_output) {
    // A path that is not UTF-8 shows U+FFFD for the bad bytes rather than failing the whole answer.
    env.out << list.dump(2, ' ', /*ensure_ascii=*/false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  }
  if (failures > 0 && paths.size() > 1) {
    Failure(spec, env, Cat(failures, " of ", paths.size(), " paths could not be hashed"));
  }
  return failures == 0 ? kExitOk : kExitFailure;
}

}  // namespace

CommandSpec NarHashCommand() {
  return CommandSpec{
      .name = "nar-hash",
      .synopsis = "attest nar-hash [--json] PATH...",
      .summary = "Print the NAR hash and size of files or directories, as Nix computes them.",
      .description =
          "Serialises each PATH as a NAR (Nix's archive format: regular files, executables, symlinks and\n"
          "directories, nothing else) and prints its SHA-256 and length, the NarHash and NarSize Nix would\n"
          "record for a store path with these contents. Same as `nix hash path --base32 PATH` plus the\n"
          "size, or `nix-store --dump PATH | sha256sum`. PATH itself is not followed when it is a symlink.\n"
          "\n"
          "Output: for one PATH, \"sha256:<nix32> <narSize>\"; for several, one line per path,\n"
          "\"sha256:<nix32> <narSize> <path>\" (the path last, as given; it may contain spaces). With\n"
          "--json, a list of {\"path\", \"narHash\" (sha256:<nix32>), \"narSize\"}; prefer it for paths with\n"
          "newlines. A path that cannot be hashed (missing, unreadable, or containing a socket, fifo or\n"
          "device) is reported on standard error and the others are still printed; the exit status is 1.",
      .options = {JsonOptionSpec()},
      .examples =
          "  attest nar-hash /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\n"
          "  # prints: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc 144\n"
          "  attest nar-hash --json ./result/ ./result-doc/\n",
      .run = RunNarHash,
  };
}

}  // namespace attest::client
