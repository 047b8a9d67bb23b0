#include "client/cli_args.h"

#include <algorithm>

#include "absl/status/status.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::Cat;

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

const OptionSpec* FindSpec(std::span<const OptionSpec> specs, std::string_view name) {
  for (const OptionSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace

bool ParsedArgs::Has(std::string_view name) const {
  return std::any_of(given_.begin(), given_.end(), [&](const Given& g) { return g.name == name; });
}

std::optional<std::string> ParsedArgs::Value(std::string_view name) const {
  for (auto it = given_.rbegin(); it != given_.rend(); ++it) {
    if (it->name == name) return it->value;
  }
  return std::nullopt;
}

std::vector<std::string> ParsedArgs::Values(std::string_view name) const {
  std::vector<std::string> values;
  for (const Given& g : given_) {
    if (g.name == name) values.push_back(g.value);
  }
  return values;
}

std::optional<std::string> SuggestName(std::string_view unknown, std::span<const std::string> candidates) {
  std::optional<std::string> best;
  size_t best_distance = 0;
  for (const std::string& candidate : candidates) {
    const size_t d = EditDistance(unknown, candidate);
    if (!best || d < best_distance) {
      best = candidate;
      best_distance = d;
    }
  }
  // A typo changes a character or two; anything further away is a different word.
  if (best && best_distance <= std::max<size_t>(1, std::min(unknown.size(), best->size()) / 3)) return best;
  return std::nullopt;
}

bool WantsHelp(std::span<const std::string> args) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

absl::StatusOr<ParsedArgs> ParseArgs(std::span<const std::string> args, std::span<const OptionSpec> specs) {
  ParsedArgs parsed;
  bool options_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg == "-" || arg.empty() || arg[0] != '-') {
      parsed.positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    std::string name;
    std::optional<std::string> inline_value;
    if (arg == "-h") {
      name = "help";
    } else if (arg.rfind("--", 0) == 0) {
      const size_t eq = arg.find('=');
      name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      if (eq != std::string::npos) inline_value = arg.substr(eq + 1);
    } else {
      return absl::InvalidArgumentError(
          Cat("unknown option ", consensus::QuoteForError(arg),
              " (options are written --name; to pass a file whose name starts with '-', put it after --)"));
    }
    const OptionSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      std::vector<std::string> names;
      for (const OptionSpec& s : specs) names.push_back(s.name);
      std::string message = Cat("unknown option --", name);
      if (auto suggestion = SuggestName(name, names)) message += Cat(" (did you mean --", *suggestion, "?)");
      return absl::InvalidArgumentError(message);
    }
    ParsedArgs::Given given{spec->name, ""};
    if (spec->kind == OptionKind::kFlag) {
      if (inline_value) {
        return absl::InvalidArgumentError(
            Cat("option --", name, " takes no value (given '", *inline_value, "')"));
      }
    } else if (inline_value) {
      given.value = *inline_value;
    } else {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(Cat("option --", name, " needs a value: --", name, " ",
                                              spec->value_name.empty() ? "VALUE" : spec->value_name));
      }
      const std::string& next = args[i + 1];
      // "--node --json" is far more likely a forgotten value than an address spelled "--json".
      if (next.rfind("--", 0) == 0 && next.size() > 2 &&
          FindSpec(specs, next.substr(2, next.find('=') == std::string::npos ? std::string::npos
                                                                             : next.find('=') - 2)) !=
              nullptr) {
        return absl::InvalidArgumentError(Cat("option --", name, " needs a value before ", next, ": --", name,
                                              " ", spec->value_name.empty() ? "VALUE" : spec->value_name));
      }
      given.value = args[++i];
    }
    if (spec->repeat == OptionRepeat::kOnce && parsed.Has(spec->name)) {
      return absl::InvalidArgumentError(Cat("option --", name, " is given more than once"));
    }
    parsed.given_.push_back(std::move(given));
  }
  return parsed;
}

}  // namespace attest::client
