// `attest hook`: Nix's post-build-hook. It runs inside Nix's build loop (which waits for it) and a
// non-zero exit aborts the whole Nix invocation (Nix 2.8, derivation-goal.cc runPostBuildHook), so it
// only queues spool records, never touches the network or the secret key, and exits 0 whatever happens,
// saying on stderr what went wrong and how to recover.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "client/commands.h"
#include "client/hook.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::QuoteForError;

int RunHook(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
  if (!args.positionals().empty()) {
    env.err << "attest hook: ignoring the argument " << QuoteForError(args.positionals()[0])
            << (args.positionals().size() > 1 ? " and the ones after it" : "")
            << " (Nix runs the hook with none; it reads DRV_PATH and OUT_PATHS)\n";
  }
  EnvLookup var = [&](std::string_view name) -> std::optional<std::string> {
    return env.env_var ? env.env_var(name) : std::nullopt;
  };
  RunHookNeverFailing(args.Value("config").value_or(""), var, env.err);
  return kExitOk;
}

}  // namespace

CommandSpec HookCommand() {
  return {
      .name = "hook",
      .synopsis = "attest hook [--config FILE]",
      .summary = "Nix's post-build-hook: queue every output Nix built for `attest push`; never fails the build",
      .description =
          "Run by Nix after each local build (post-build-hook in nix.conf; Nix runs the hook with no arguments,\n"
          "so point it at a small script that runs `attest hook`). Reads from the environment Nix passes:\n"
          "  DRV_PATH    the derivation just built; its outputs are read from the .drv itself, since Nix 2.8.0\n"
          "              leaves OUT_PATHS empty\n"
          "  OUT_PATHS   the built output paths, when Nix fills it (2.8.1 and later)\n"
          "  NIX_CONFIG  Nix's settings; `store` says which store was built in (the system store, or a chroot\n"
          "              store such as --store DIR), recorded so that `attest push` reads the same one\n"
          "  ATTEST_BUILDER_CONFIG  the builder config file, when --config is not given\n"
          "Writes one durable record per output into the builder config's spool directory and prints one line\n"
          "per record on stderr (Nix shows it in the build log). It never reads the secret key and never\n"
          "touches the network: `attest push` signs and submits the records later.\n"
          "It exits 0 whatever happens (a failing hook would abort the whole Nix run): a bad config, an\n"
          "unreadable .drv or a full disk are reported on stderr, and `attest push --scan` finds what was\n"
          "missed. Floating content-addressed outputs whose path Nix does not pass are skipped and reported.",
      .options = {{"config", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
                   "the builder config (TOML: key, spool, nodes); default $ATTEST_BUILDER_CONFIG"}},
      .examples = "  # Recommended: the lean attest-hook program (the same code, a few milliseconds to start),\n"
                  "  # with ATTEST_BUILDER_CONFIG=/etc/nix/attest-builder.toml in the Nix daemon's environment:\n"
                  "  #   post-build-hook = /usr/bin/attest-hook        (in /etc/nix/nix.conf)\n"
                  "  DRV_PATH=/nix/store/hh80jchqbkyvyfn2p4djxywmb2r0hknq-hello-attest.drv \\\n"
                  "    attest hook --config /etc/nix/attest-builder.toml\n",
      .run = [](const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env) {
        return RunHook(spec, args, env);
      },
  };
}

}  // namespace attest::client
