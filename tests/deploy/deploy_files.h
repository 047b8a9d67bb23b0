// Helpers for the tests of deploy/: where a program is on PATH, and a reader for systemd unit files.
#ifndef ATTEST_TESTS_DEPLOY_DEPLOY_FILES_H_
#define ATTEST_TESTS_DEPLOY_DEPLOY_FILES_H_

#include <unistd.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace attest::testing {

// The full path of `program` found on $PATH, or nullopt.
inline std::optional<std::string> FindOnPath(absl::string_view program) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = std::string(dir) + "/" + std::string(program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// One `Key=Value` line of a unit file, with the section it is in.
struct UnitSetting final {
  std::string section;
  std::string key;
  std::string value;
};

// The settings of a unit file in file order (comments and blank lines skipped). Units here use no
// line continuations, so none are handled.
inline std::vector<UnitSetting> ParseUnit(absl::string_view text) {
  std::vector<UnitSetting> settings;
  std::string section;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    const absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = std::string(line.substr(1, line.size() - 2));
      continue;
    }
    const size_t equals = line.find('=');
    if (equals == absl::string_view::npos) continue;
    settings.push_back({section, std::string(absl::StripAsciiWhitespace(line.substr(0, equals))),
                        std::string(absl::StripAsciiWhitespace(line.substr(equals + 1)))});
  }
  return settings;
}

// Every value given to section.key, in order (a key may be repeated, e.g. SystemCallFilter=).
inline std::vector<std::string> UnitValues(const std::vector<UnitSetting>& unit, absl::string_view section,
                                           absl::string_view key) {
  std::vector<std::string> values;
  for (const UnitSetting& s : unit) {
    if (s.section == section && s.key == key) values.push_back(s.value);
  }
  return values;
}

// The value systemd uses for a single-valued setting (the last one), or nullopt when absent.
inline std::optional<std::string> UnitValue(const std::vector<UnitSetting>& unit, absl::string_view section,
                                            absl::string_view key) {
  std::vector<std::string> values = UnitValues(unit, section, key);
  if (values.empty()) return std::nullopt;
  return values.back();
}

// The quoted value of `key = "..."` or the number of `key = 123` in a TOML example file (top-level
// lines only, as the examples in deploy/ write them); nullopt when absent.
inline std::optional<std::string> ExampleValue(absl::string_view toml, absl::string_view key) {
  for (absl::string_view raw : absl::StrSplit(toml, '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (!absl::ConsumePrefix(&line, key)) continue;
    line = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "=")) continue;
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "\"")) return std::string(line.substr(0, line.find('"')));
    return std::string(line.substr(0, line.find_first_of(" #")));
  }
  return std::nullopt;
}

}  // namespace attest::testing

#endif  // ATTEST_TESTS_DEPLOY_DEPLOY_FILES_H_
