// attest-hook: Nix's post-build-hook as a program of its own. Nix runs it with no arguments and the
// build's variables (DRV_PATH, OUT_PATHS, NIX_CONFIG) in the environment; the builder config comes
// from $ATTEST_BUILDER_CONFIG, or `--config FILE`. It does exactly what `attest hook` does, but links
// none of the CLI's RPC and crypto libraries, so it starts in a few milliseconds. It always exits 0.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>

#include "client/hook.h"

int main(int argc, char** argv) {
  std::string config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config = std::string(arg.substr(std::string_view("--config=").size()));
    } else if (arg == "--help" || arg == "-h") {
      std::cout << "Usage: attest-hook [--config FILE]\n\n"
                   "Nix's post-build-hook: queues every output Nix built for `attest push`, never fails the\n"
                   "build. Set `post-build-hook = /path/to/attest-hook` in nix.conf and ATTEST_BUILDER_CONFIG\n"
                   "in the environment of the Nix daemon. `attest hook --help` explains the details.\n";
      return 0;
    } else {
      // A wrong argument must not abort the Nix run: note it and carry on.
      std::cerr << "attest hook: ignoring the argument '" << arg << "' (Nix runs the hook with none)\n";
    }
  }
  const attest::client::EnvLookup env = [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    return value != nullptr ? std::optional<std::string>(value) : std::nullopt;
  };
  attest::client::RunHookNeverFailing(config, env, std::cerr);
  return 0;
}
