// PLACEHOLDER until the real command lands; replaced wholesale by its implementation.
#include "client/commands.h"

namespace attest::client {

CommandSpec PushCommand() {
  return {.name = "push",
          .synopsis = "attest push",
          .summary = "(not built yet)",
          .run = [](const CommandSpec& spec, const ParsedArgs&, CommandEnv& env) {
            return Failure(spec, env, "not built yet");
          }};
}

}  // namespace attest::client
