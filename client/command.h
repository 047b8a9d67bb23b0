// What every `attest` subcommand is made of: a spec (name, synopsis, options, help text with an
// example) and a run function over injected streams and collaborators, so each subcommand runs
// in-process in tests exactly as it does from main().
//
// Exit codes: 0 success, 1 failure (the answer may still be printed), 2 usage error.
// Results go to `out`, diagnostics to `err`.
//
// Thread-compatible.
#ifndef ATTEST_CLIENT_COMMAND_H_
#define ATTEST_CLIENT_COMMAND_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli_args.h"
#include "client/node_client.h"

namespace attest::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct CommandEnv final {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
  // Opens the node named by --node; ConnectGrpcNode in main(), a fake in tests.
  NodeConnector connect_node;
  // Fills the span with cryptographically secure random bytes (libsodium in main()).
  std::function<void(std::span<uint8_t>)> random_bytes;
  // Used when --node is not given (main() takes it from $ATTEST_NODE); empty for none.
  std::string default_node;
  // Looks up an environment variable (std::getenv in main(), a map in tests); nullopt when unset. May be
  // empty (no function), which reads as an empty environment.
  std::function<std::optional<std::string>(std::string_view)> env_var = {};
};

struct CommandSpec;
using CommandRun = std::function<int(const CommandSpec& spec, const ParsedArgs& args, CommandEnv& env)>;

struct CommandSpec final {
  std::string name;      // "status", "disputes list"
  std::string synopsis;  // "attest status --node ADDR [--json] STORE_PATH... | -"
  std::string summary;   // one line, for the command list
  std::string description;
  std::vector<OptionSpec> options;  // --help is implied
  std::string examples;
  CommandRun run;
};

// Parses args against the spec and runs it; --help anywhere prints the help (exit 0).
int RunCommand(const CommandSpec& spec, std::span<const std::string> args, CommandEnv& env);

void PrintCommandHelp(std::ostream& out, const CommandSpec& spec);

// Prints "attest <name>: <message>" and a pointer to --help on err; returns kExitUsage.
int UsageError(const CommandSpec& spec, CommandEnv& env, std::string_view message);
// Prints "attest <name>: <message>" on err; returns kExitFailure.
int Failure(const CommandSpec& spec, CommandEnv& env, std::string_view message);

// The contents of a file, or of standard input for "-". NOT_FOUND / PERMISSION_DENIED / UNAVAILABLE
// (read error) with the file name in the message.
absl::StatusOr<std::string> ReadInput(std::string_view name, CommandEnv& env);

// --node ADDR, --tls-ca FILE and --timeout DURATION, shared by the subcommands that talk to a node.
std::vector<OptionSpec> NodeOptionSpecs();
// INVALID_ARGUMENT (a usage error) when no node is given, the address is malformed (ParseNodeAddress)
// or the timeout is. --tls-ca defaults to $ATTEST_TLS_CA.
absl::StatusOr<NodeOptions> NodeOptionsFromArgs(const ParsedArgs& args, const CommandEnv& env);

OptionSpec JsonOptionSpec();

}  // namespace attest::client

#endif  // ATTEST_CLIENT_COMMAND_H_
