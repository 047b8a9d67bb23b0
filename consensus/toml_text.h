// Shared wording and ordering for errors in TOML files (the policy here, the node config in server/): where a
// problem is ("<file>:<line>:<column>: ") and what kind of value was found. Only for code that already
// parses with toml++. Thread-safe.
#ifndef ATTEST_CONSENSUS_TOML_TEXT_H_
#define ATTEST_CONSENSUS_TOML_TEXT_H_

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "consensus/text.h"

namespace attest::consensus {

inline std::string TomlWhere(std::string_view file, const toml::source_region& region) {
  return Cat(file, ":", region.begin.line, ":", region.begin.column, ": ");
}

// OK when `text` is valid UTF-8 (as DecodeUtf8 defines it: no truncated, overlong or surrogate
// sequences, nothing above U+10FFFF). Call it before toml::parse: TOML files are UTF-8 by definition,
// and the distro's toml++ (3.3) has undefined behaviour in its UTF-8 decoding on some invalid input,
// so such text must never reach it. INVALID_ARGUMENT "<file>:<line>:<column>: ..." (column counted
// in characters, as toml++ does) naming the offending byte otherwise.
inline absl::Status CheckTomlUtf8(std::string_view text, std::string_view file) {
  size_t line = 1;
  size_t column = 1;
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const std::optional<char32_t> cp = DecodeUtf8(text, pos, length);
    if (!cp) {
      return absl::InvalidArgumentError(
          Cat(file, ":", line, ":", column, ": byte ", absl::StrFormat("0x%02X", static_cast<unsigned char>(text[pos])),
              " is not valid UTF-8 (a TOML file must be UTF-8: save it as UTF-8, without Latin-1 or other "
              "single-byte characters)"));
    }
    pos += length;
    if (*cp == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return absl::OkStatus();
}

// "a table", "an integer", ... for messages such as "quorum must be an integer, found a string".
inline std::string_view TomlTypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// A table's entries in the order they appear in the file (toml::table is sorted by key), so the first
// problem reported is the first one in the file.
inline std::vector<std::pair<const toml::key*, const toml::node*>> TomlEntriesInFileOrder(
    const toml::table& table) {
  std::vector<std::pair<const toml::key*, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(&key, &node);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    const auto& pa = a.first->source().begin;
    const auto& pb = b.first->source().begin;
    return std::pair(pa.line, pa.column) < std::pair(pb.line, pb.column);
  });
  return entries;
}

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_TOML_TEXT_H_
