// A small command-line argument parser for the `attest` subcommands.
//
// Rules (the same for every subcommand):
//   - options may come before or after positional arguments;
//   - `--opt value` and `--opt=value` are the same; a flag takes no value (`--flag=x` is an error);
//   - an option declared repeatable may be given many times, others at most once;
//   - `-` is a positional argument (conventionally: read standard input);
//   - `--` ends options: everything after it is positional;
//   - `-h` is `--help`.
// Unknown options, missing values and repeated single options are INVALID_ARGUMENT with a message that
// names the option (and, for a likely typo, the option that was probably meant); callers turn them into
// a usage error (exit 2).
//
// Value types; thread-compatible.
#ifndef ATTEST_CLIENT_CLI_ARGS_H_
#define ATTEST_CLIENT_CLI_ARGS_H_

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace attest::client {

enum class OptionKind { kFlag, kValue };
enum class OptionRepeat { kOnce, kMany };

struct OptionSpec final {
  std::string name;  // without the leading "--"
  OptionKind kind = OptionKind::kFlag;
  OptionRepeat repeat = OptionRepeat::kOnce;
  std::string value_name;  // shown in help: "--node ADDR"
  std::string help;
};

class ParsedArgs final {
 public:
  bool Has(std::string_view name) const;
  // The value of a kOnce option (or the last one of a kMany option); nullopt when absent.
  std::optional<std::string> Value(std::string_view name) const;
  // Every value of the option, in command-line order; empty when absent.
  std::vector<std::string> Values(std::string_view name) const;
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(std::span<const std::string> args,
                                              std::span<const OptionSpec> specs);
  struct Given final {
    std::string name;
    std::string value;  // empty for flags
  };
  std::vector<Given> given_;
  std::vector<std::string> positionals_;
};

// Parses `args` (without the program and subcommand names) against `specs`. See the file comment.
absl::StatusOr<ParsedArgs> ParseArgs(std::span<const std::string> args, std::span<const OptionSpec> specs);

// True when `args` asks for help (`--help` or `-h` before any `--`), whatever else it contains.
bool WantsHelp(std::span<const std::string> args);

// The spec name closest to `unknown` by edit distance, when it is close enough to be a likely typo.
std::optional<std::string> SuggestName(std::string_view unknown, std::span<const std::string> candidates);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_CLI_ARGS_H_
