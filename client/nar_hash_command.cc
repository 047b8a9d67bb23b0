// PLACEHOLDER until the real command lands; replaced wholesale by its implementation.
#include "client/commands.h"

namespace attest::client {

CommandSpec NarHashCommand() {
  return {.name = "nar-hash",
          .synopsis = "attest nar-hash",
          .summary = "(not built yet)",
          .run = [](const CommandSpec& spec, const ParsedArgs&, CommandEnv& env) {
            return Failure(spec, env, "not built yet");
          }};
}

}  // namespace attest::client
