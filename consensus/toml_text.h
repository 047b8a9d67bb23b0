// Shared wording and ordering for errors in TOML files (the policy here, the node config in server/): where a
// problem is ("<file>:<line>:<column>: ") and what kind of value was found. Only for code that already
// parses with toml++. Thread-safe.
#ifndef ATTEST_CONSENSUS_TOML_TEXT_H_
#define ATTEST_CONSENSUS_TOML_TEXT_H_

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "consensus/encoding.h"

namespace attest::consensus {

inline std::string TomlWhere(std::string_view file, const toml::source_region& region) {
  return Cat(file, ":", region.begin.line, ":", region.begin.column, ": ");
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
