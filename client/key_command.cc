// attest key generate / public: Nix-compatible key files without needing Nix.
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ostream>

#include "client/commands.h"
#include "consensus/keys.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;

// Writes a new file readable only by its owner; never replaces an existing key.
absl::Status WriteNewSecretFile(const std::string& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    if (error == EEXIST) {
      return absl::AlreadyExistsError(
          Cat(path, " already exists; refusing to overwrite a key (remove it first)"));
    }
    return absl::PermissionDeniedError(Cat("cannot create ", path, ": ", std::strerror(error)));
  }
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return absl::UnavailableError(Cat("cannot write ", path, ": ", std::strerror(error)));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int error = errno;
    ::unlink(path.c_str());
    return absl::UnavailableError(Cat("cannot write ", path, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

int RunGenerate(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  const std::optional<std::string> name = args.Value("name");
  if (!name) return UsageError(spec, env, "no key name: pass --name NAME (e.g. builder-eu-1)");
  if (absl::Status s = consensus::ValidateKeyName(*name); !s.ok()) {
    return UsageError(spec, env, std::string(s.message()));
  }
  if (!args.positionals().empty())
    return UsageError(spec, env, Cat("unexpected argument ", args.positionals()[0]));
  std::array<uint8_t, 32> seed{};
  env.random_bytes(seed);
  auto key = consensus::SecretKey::FromSeed(*name, seed);
  seed.fill(0);
  if (!key.ok()) return Failure(spec, env, std::string(key.status().message()));
  if (auto out = args.Value("out")) {
    if (absl::Status s = WriteNewSecretFile(*out, key->ExportText()); !s.ok()) {
      return Failure(spec, env, std::string(s.message()));
    }
    // The secret stays in the file; the public half is what goes into the policy.
    env.out << key->public_key().ToString() << "\n";
    env.err << "attest key generate: wrote secret key " << key->name() << " to " << *out
            << " (mode 0600); its public key is on standard output\n";
    return kExitOk;
  }
  // Exactly what `nix key generate-secret` prints: no trailing newline.
  env.out << key->ExportText();
  return kExitOk;
}

int RunPublic(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (args.positionals().size() > 1) return UsageError(spec, env, "give at most one secret key file (or -)");
  const std::string input = args.positionals().empty() ? "-" : args.positionals()[0];
  auto text = ReadInput(input, env);
  if (!text.ok()) return Failure(spec, env, std::string(text.status().message()));
  auto key = consensus::SecretKey::Parse(*text);
  if (!key.ok()) return Failure(spec, env, std::string(key.status().message()));
  // Exactly what `nix key convert-secret-to-public` prints: no trailing newline.
  env.out << key->public_key().ToString();
  return kExitOk;
}

}  // namespace

CommandSpec KeyGenerateCommand() {
  return CommandSpec{
      .name = "key generate",
      .synopsis = "attest key generate --name NAME [--out FILE]",
      .summary = "Generate an Ed25519 signing key in Nix's format.",
      .description =
          "Equivalent to `nix key generate-secret --key-name NAME`: the secret key is \"NAME:<base64 of\n"
          "seed and public key>\", byte-for-byte what Nix writes (no trailing newline). Without --out it is\n"
          "printed on standard output; with --out it is written to a new file (mode 0600, never\n"
          "overwritten) and the public key is printed instead.",
      .options = {{"name", OptionKind::kValue, OptionRepeat::kOnce, "NAME",
                   "the key name, e.g. builder-eu-1 (must be unique in the federation)"},
                  {"out", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
                   "write the secret key to this new file and print the public key"}},
      .examples =
          "  attest key generate --name builder-eu-1 --out /etc/nix/builder.sec > builder.pub\n"
          "  attest key generate --name builder-eu-1 | attest key public -\n",
      .run = RunGenerate,
  };
}

CommandSpec KeyPublicCommand() {
  return CommandSpec{
      .name = "key public",
      .synopsis = "attest key public [SECRET_KEY_FILE | -]",
      .summary = "Print the public key of a Nix secret key.",
      .description =
          "Equivalent to `nix key convert-secret-to-public`: reads a secret key (a file, or standard input\n"
          "when the argument is - or absent) and prints \"NAME:<base64>\" without a trailing newline.",
      .options = {},
      .examples = "  attest key public /etc/nix/builder.sec\n",
      .run = RunPublic,
  };
}

}  // namespace attest::client
