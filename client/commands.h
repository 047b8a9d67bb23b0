// The `attest` subcommands. Each returns its spec; cli.h dispatches to them.
#ifndef ATTEST_CLIENT_COMMANDS_H_
#define ATTEST_CLIENT_COMMANDS_H_

#include "client/command.h"

namespace attest::client {

CommandSpec SubmitCommand();         // attest submit
CommandSpec ImportCommand();         // attest import
CommandSpec StatusCommand();         // attest status
CommandSpec DisputesListCommand();   // attest disputes list
CommandSpec DisputesShowCommand();   // attest disputes show
CommandSpec DisputesResolveCommand();  // attest disputes resolve
CommandSpec DisputesDiffCommand();     // attest disputes diff
CommandSpec VerifyCommand();         // attest verify
CommandSpec NarInfoVerifyCommand();  // attest narinfo verify
CommandSpec KeyGenerateCommand();    // attest key generate
CommandSpec KeyPublicCommand();      // attest key public
CommandSpec NarHashCommand();        // attest nar-hash
CommandSpec HookCommand();           // attest hook (Nix post-build-hook)
CommandSpec PushCommand();           // attest push
CommandSpec RebuildCommand();        // attest rebuild
CommandSpec LogCheckpointCommand();  // attest log checkpoint
CommandSpec LogVerifyCommand();      // attest log verify
CommandSpec FederationStatusCommand();  // attest federation status
CommandSpec SourcesCommand();        // attest sources
CommandSpec WantedCommand();         // attest wanted
CommandSpec PolicySignCommand();     // attest policy sign
CommandSpec PolicySubmitCommand();   // attest policy submit
CommandSpec PolicyShowCommand();     // attest policy show
CommandSpec PolicyDiffCommand();     // attest policy diff

}  // namespace attest::client

#endif  // ATTEST_CLIENT_COMMANDS_H_
