#include "client/cli.h"

#include <ostream>

#include "client/commands.h"

namespace attest::client {
namespace {

constexpr std::string_view kVersion = "0.1.0";

std::vector<CommandSpec> AllCommands() {
  return {SubmitCommand(),        ImportCommand(),       StatusCommand(),
          DisputesListCommand(),  DisputesShowCommand(), DisputesResolveCommand(), DisputesDiffCommand(),
          VerifyCommand(),
          NarInfoVerifyCommand(), KeyGenerateCommand(),  KeyPublicCommand(),
          NarHashCommand(),       HookCommand(),         PushCommand(),           RebuildCommand(),
          LogCheckpointCommand(), LogVerifyCommand(),    FederationStatusCommand(),
          SourcesCommand(),       WantedCommand(),
          PolicySignCommand(),    PolicySubmitCommand(), PolicyShowCommand(),       PolicyDiffCommand()};
}

void PrintTopHelp(std::ostream& out, const std::vector<CommandSpec>& commands) {
  out << "Usage: attest COMMAND [options] [arguments]\n\n"
         "attest decides from independent rebuilds whether a Nix store path can be trusted.\n\n"
         "Commands:\n";
  size_t width = 0;
  for (const CommandSpec& c : commands) width = std::max(width, c.name.size());
  for (const CommandSpec& c : commands) {
    out << "  " << c.name << std::string(width - c.name.size() + 2, ' ') << c.summary << "\n";
  }
  out << "\nRun 'attest COMMAND --help' for a command's options and an example.\n"
         "Exit status: 0 success, 1 failure, 2 usage error.\n\n"
         "Example:\n"
         "  attest status --node 127.0.0.1:7700 "
         "/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin\n";
}

void PrintGroupHelp(std::ostream& out, std::string_view group, const std::vector<CommandSpec>& commands) {
  out << "Usage: attest " << group << " SUBCOMMAND [options]\n\nSubcommands:\n";
  for (const CommandSpec& c : commands) {
    if (c.name.rfind(std::string(group) + " ", 0) == 0)
      out << "  " << c.synopsis << "\n      " << c.summary << "\n";
  }
  out << "\nRun 'attest " << group << " SUBCOMMAND --help' for details.\n";
}

}  // namespace

int RunCli(std::span<const std::string> args, CommandEnv& env) {
  const std::vector<CommandSpec> commands = AllCommands();
  if (args.empty()) {
    PrintTopHelp(env.err, commands);
    return kExitUsage;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    PrintTopHelp(env.out, commands);
    return kExitOk;
  }
  if (first == "--version" || first == "version") {
    env.out << "attest " << kVersion << "\n";
    return kExitOk;
  }
  // One-word commands first, then "group subcommand".
  for (const CommandSpec& c : commands) {
    if (c.name == first) return RunCommand(c, args.subspan(1), env);
  }
  bool is_group = false;
  std::vector<std::string> names;
  for (const CommandSpec& c : commands) {
    const size_t space = c.name.find(' ');
    const std::string head = c.name.substr(0, space);
    names.push_back(head);
    if (head != first || space == std::string::npos) continue;
    is_group = true;
    if (args.size() > 1 && c.name.substr(space + 1) == args[1]) return RunCommand(c, args.subspan(2), env);
  }
  if (is_group) {
    if (args.size() > 1 && (args[1] == "--help" || args[1] == "-h")) {
      PrintGroupHelp(env.out, first, commands);
      return kExitOk;
    }
    if (args.size() > 1) env.err << "attest " << first << ": unknown subcommand '" << args[1] << "'\n";
    PrintGroupHelp(env.err, first, commands);
    return kExitUsage;
  }
  env.err << "attest: unknown command '" << first << "'";
  if (auto suggestion = SuggestName(first, names)) env.err << " (did you mean '" << *suggestion << "'?)";
  env.err << "\nRun 'attest --help' for the list of commands.\n";
  return kExitUsage;
}

}  // namespace attest::client
