// The `attest` command line: dispatch from arguments to a subcommand.
//
// RunCli is main() without the process: tests call it with string streams and a fake node connector.
// Thread-compatible.
#ifndef ATTEST_CLIENT_CLI_H_
#define ATTEST_CLIENT_CLI_H_

#include <span>
#include <string>

#include "client/command.h"

namespace attest::client {

// `args` excludes the program name: {"status", "--node", "...", "/nix/store/..."}.
// Returns the exit code (0 success, 1 failure, 2 usage error).
int RunCli(std::span<const std::string> args, CommandEnv& env);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_CLI_H_
