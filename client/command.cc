#include "client/command.h"

#include <iostream>
#include <limits>
#include <sstream>

#include "absl/status/status.h"
#include "consensus/text.h"
#include "storage/files.h"

namespace attest::client {

using consensus::Cat;

void PrintCommandHelp(std::ostream& out, const CommandSpec& spec) {
  out << "Usage: " << spec.synopsis << "\n\n" << spec.summary << "\n";
  if (!spec.description.empty()) out << "\n" << spec.description << "\n";
  out << "\nOptions:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const OptionSpec& option : spec.options) {
    std::string left = "--" + option.name;
    if (option.kind == OptionKind::kValue)
      left += " " + (option.value_name.empty() ? "VALUE" : option.value_name);
    std::string help = option.help;
    if (option.repeat == OptionRepeat::kMany) help += " (repeatable)";
    rows.emplace_back(std::move(left), std::move(help));
  }
  rows.emplace_back("--help, -h", "show this help");
  size_t width = 0;
  for (const auto& [left, help] : rows) width = std::max(width, left.size());
  for (const auto& [left, help] : rows) {
    out << "  " << left << std::string(width - left.size() + 2, ' ') << help << "\n";
  }
  if (!spec.examples.empty()) out << "\nExample:\n" << spec.examples;
  if (!spec.examples.empty() && spec.examples.back() != '\n') out << "\n";
}

int UsageError(const CommandSpec& spec, CommandEnv& env, std::string_view message) {
  env.err << "attest " << spec.name << ": " << message << "\n"
          << "Usage: " << spec.synopsis << "\n"
          << "Run 'attest " << spec.name << " --help' for details.\n";
  return kExitUsage;
}

int Failure(const CommandSpec& spec, CommandEnv& env, std::string_view message) {
  env.err << "attest " << spec.name << ": " << message << "\n";
  return kExitFailure;
}

int RunCommand(const CommandSpec& spec, std::span<const std::string> args, CommandEnv& env) {
  if (WantsHelp(args)) {
    PrintCommandHelp(env.out, spec);
    return kExitOk;
  }
  std::vector<OptionSpec> specs = spec.options;
  auto parsed = ParseArgs(args, specs);
  if (!parsed.ok()) return UsageError(spec, env, std::string(parsed.status().message()));
  return spec.run(spec, *parsed, env);
}

absl::StatusOr<std::string> ReadInput(std::string_view name, CommandEnv& env) {
  std::ostringstream content;
  if (name == "-") {
    content << env.in.rdbuf();
    if (env.in.bad()) return absl::UnavailableError("cannot read standard input");
    env.in.clear();  // an empty stdin leaves failbit set; that is just an empty input
    return content.str();
  }
  // A named input is bounded like standard input, by memory only: it is the user's own file (an
  // import can be a whole store's worth of path infos).
  absl::StatusOr<std::string> text = storage::ReadFileToString(std::string(name), std::numeric_limits<size_t>::max());
  if (!text.ok()) {
    const absl::Status& status = text.status();
    const bool unopened = absl::IsNotFound(status) || absl::IsPermissionDenied(status);
    return absl::Status(status.code(), Cat(unopened ? "cannot open " : "cannot read ", status.message()));
  }
  return text;
}

std::vector<OptionSpec> NodeOptionSpecs() {
  return {
      {"node", OptionKind::kValue, OptionRepeat::kOnce, "ADDR",
       "the attestd gRPC address, host:port, or https://host:port for a node with TLS (default: $ATTEST_NODE)"},
      {"tls-ca", OptionKind::kValue, OptionRepeat::kOnce, "FILE",
       "PEM CA certificate(s) to verify a TLS node with; implies TLS (default: $ATTEST_TLS_CA, else the "
       "system's CAs)"},
      {"timeout", OptionKind::kValue, OptionRepeat::kOnce, "DURATION",
       "deadline for each request, retries included: seconds or e.g. 500ms, 2m (default 30)"},
  };
}

OptionSpec JsonOptionSpec() {
  return {"json", OptionKind::kFlag, OptionRepeat::kOnce, "", "print JSON for machines instead of text"};
}

absl::StatusOr<NodeOptions> NodeOptionsFromArgs(const ParsedArgs& args, const CommandEnv& env) {
  NodeOptions options;
  options.address = args.Value("node").value_or(env.default_node);
  if (options.address.empty()) {
    return absl::InvalidArgumentError("no node given: pass --node HOST:PORT (or set ATTEST_NODE)");
  }
  if (auto ca = args.Value("tls-ca")) {
    options.tls_ca_file = *ca;
  } else if (env.env_var) {
    options.tls_ca_file = env.env_var("ATTEST_TLS_CA").value_or("");
  }
  if (absl::StatusOr<NodeTarget> target = ParseNodeAddress(options.address, options.tls_ca_file); !target.ok()) {
    return target.status();
  }
  if (auto timeout = args.Value("timeout")) {
    auto parsed = ParseTimeout(*timeout);
    if (!parsed.ok()) return parsed.status();
    options.timeout = *parsed;
  }
  return options;
}

}  // namespace attest::client
