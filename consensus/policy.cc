// This file is long on purpose, for the reason below.
// The policy in one file, as one room: validation (Create), the TOML parser (ParseToml) and the canonical
// text share the rules for names, keys, quorums, groups, rules and lifecycles, and each problem must be
// reported at its line by the parser and with the same words by Create. Splitting them would spread
// one set of rules over several files.
#include "consensus/policy.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/cache_url.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/quorum.h"
#include "consensus/sha256.h"

// The distro's toml++ is a shared library built with exceptions (it exports only the throwing
// `toml::ex::parse`), so TOML_EXCEPTIONS=0 cannot be used. toml::parse_error is caught right here
// and turned into a Status: no exception leaves this file.
#include <toml++/toml.h>

#include "consensus/text.h"
#include "consensus/toml_text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kCanonicalHeader = "attest-policy/v1";
constexpr size_t kMaxOperatorNameLength = 128;

// The operator-name rule, for operators and groups alike; `what` names which in messages.
absl::Status ValidateName(std::string_view name, std::string_view what, std::string_view example) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        Cat(what, " name is empty (give every ", what, " a short unique name, e.g. name = \"", example, "\")"));
  }
  if (name.size() > kMaxOperatorNameLength) {
    return absl::InvalidArgumentError(Cat(what, " name is ", name.size(),
                                          " bytes long (use at most ", kMaxOperatorNameLength,
                                          ")"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@' || c == '+';
    if (!ok) {
      return absl::InvalidArgumentError(
          Cat(what, " name ", QuoteForError(name),
              " contains a character outside [A-Za-z0-9-_.@+] (use letters, digits and "
              "- _ . @ + only)"));
    }
  }
  return absl::OkStatus();
}

// Checks the rules that need every name at once. `where` prefixes messages: empty for Create, and
// "<file>:<line>:<col>: " for the TOML parser so the message points at the offending line.
class NameRegistry final {
 public:
  absl::Status AddOperator(std::string_view name, std::string_view where) {
    if (absl::Status s = ValidateOperatorName(name); !s.ok()) {
      return absl::InvalidArgumentError(Cat(where, s.message()));
    }
    return AddName(name, Kind::kOperator, where);
  }

  // Group names follow the operator rules and share their namespace: a quorum member names either.
  absl::Status AddGroup(std::string_view name, std::string_view where) {
    if (absl::Status s = ValidateName(name, "group", "independent"); !s.ok()) {
      return absl::InvalidArgumentError(Cat(where, s.message()));
    }
    return AddName(name, Kind::kGroup, where);
  }

  bool HasKey(std::string_view key_name) const { return key_names_.contains(AbslView(key_name)); }

  // `role` describes the key for messages: "builder key of operator \"alice\"" or "maintainer key".
  absl::Status AddKey(const PublicKey& key, std::string_view role, std::string_view where) {
    std::string description =
        where.empty() ? std::string(role) : Cat(role, " at ", Location(where));
    auto [name_it, name_inserted] = key_names_.try_emplace(key.name(), description);
    if (!name_inserted) {
      return absl::InvalidArgumentError(Cat(
          where, "duplicate key name \"", key.name(), "\": ", role, " has the same name as the ",
          name_it->second,
          " (Nix finds keys by name, so every builder and maintainer key needs its own; make a new "
          "one with `nix key generate-secret --key-name <new name>`)"));
    }
    // Two names for the same key bytes would let one signer count as two builders, or two
    // operators.
    std::string bytes(key.bytes().begin(), key.bytes().end());
    auto [bytes_it, bytes_inserted] = key_bytes_.try_emplace(std::move(bytes), description);
    if (!bytes_inserted) {
      return absl::InvalidArgumentError(
          Cat(where, "key \"", key.name(), "\" (", role, ") is the same public key as the ",
              bytes_it->second,
              ", under another name (one key signs for one party; give each builder its own key)"));
    }
    return absl::OkStatus();
  }

 private:
  // "<file>:<line>:<col>" out of a "<file>:<line>:<col>: " message prefix.
  static std::string_view Location(std::string_view where) {
    return where.substr(0, where.size() >= 2 ? where.size() - 2 : 0);
  }
  static std::string FirstSeen(std::string_view where) {
    if (where.empty()) return "";
    return Cat(", first at ", Location(where));
  }

  enum class Kind { kOperator, kGroup };
  static std::string_view KindName(Kind kind) { return kind == Kind::kOperator ? "operator" : "group"; }

  absl::Status AddName(std::string_view name, Kind kind, std::string_view where) {
    auto [it, inserted] = names_.try_emplace(std::string(name), kind, std::string(where));
    if (inserted) return absl::OkStatus();
    const auto& [first_kind, first_where] = it->second;
    if (first_kind == kind && kind == Kind::kOperator) {
      return absl::InvalidArgumentError(
          Cat(where, "duplicate operator name \"", name, "\"", FirstSeen(first_where),
              " (an operator is listed once, with all its builder keys under it)"));
    }
    if (first_kind == kind) {
      return absl::InvalidArgumentError(
          Cat(where, "duplicate group name \"", name, "\"", FirstSeen(first_where),
              " (a group is listed once; give each [[group]] its own name)"));
    }
    return absl::InvalidArgumentError(
        Cat(where, "the ", KindName(kind), " name \"", name, "\" is also the name of ",
            first_kind == Kind::kOperator ? "an " : "a ", KindName(first_kind),
            FirstSeen(first_where),
            " (quorum members name operators and groups alike, so the names must differ: rename the group)"));
  }

  // name -> kind and where first seen; operators and groups together.
  absl::flat_hash_map<std::string, std::pair<Kind, std::string>> names_;
  absl::flat_hash_map<std::string, std::string> key_names_;  // key name -> description
  absl::flat_hash_map<std::string, std::string> key_bytes_;  // raw key -> description
};

// Replaces op.caches by their normalised forms. `where` gives each URL's position for messages (empty
// for Create); a repeated cache is reported at its second occurrence.
absl::Status NormalizeCaches(Operator& op, const std::vector<std::string>& where) {
  std::vector<std::string> normalised;
  normalised.reserve(op.caches.size());
  absl::flat_hash_map<std::string, size_t> seen;  // normalised URL -> index
  for (size_t i = 0; i < op.caches.size(); ++i) {
    const std::string_view at = i < where.size() ? std::string_view(where[i]) : std::string_view();
    absl::StatusOr<std::string> url = ValidateCacheUrl(op.caches[i]);
    if (!url.ok()) {
      return absl::InvalidArgumentError(Cat(at, "operator \"", op.name, "\": ", url.status().message()));
    }
    auto [it, inserted] = seen.try_emplace(*url, i);
    if (!inserted) {
      const std::string_view first = it->second < where.size() ? std::string_view(where[it->second]) : "";
      return absl::InvalidArgumentError(
          Cat(at, "operator \"", op.name, "\" lists the cache ", QuoteForError(*url), " twice",
              first.empty() ? "" : Cat(", first at ", first.substr(0, first.size() - 2)),
              " (list each cache once; a trailing slash does not make another cache)"));
    }
    normalised.push_back(*std::move(url));
  }
  op.caches = std::move(normalised);
  return absl::OkStatus();
}

// The flat form: `what` is "quorum" for the policy's, "rule 2: quorum" for a rule's.
absl::Status ValidateQuorum(int64_t quorum, size_t operator_count, std::string_view where,
                            std::string_view what = "quorum") {
  if (quorum < 1) {
    return absl::InvalidArgumentError(
        Cat(where, what, " is ", quorum,
            " (it is the number of distinct operators that must agree: set it to at least 1)"));
  }
  if (static_cast<uint64_t>(quorum) > operator_count) {
    return absl::InvalidArgumentError(
        Cat(where, what, " is ", quorum, " but the policy has only ", operator_count, " operator",
            operator_count == 1 ? "" : "s",
            " (no path could ever be confirmed: lower the quorum or add operators)"));
  }
  return absl::OkStatus();
}

// Positions of a threshold's parts in the file, for messages; all empty for Create.
struct ThresholdWhere final {
  std::string threshold;            // the threshold value (or the table holding it)
  std::vector<std::string> members;  // each member, in order
};

std::string_view MemberWhere(const ThresholdWhere& where, size_t i) {
  return i < where.members.size() ? std::string_view(where.members[i]) : std::string_view(where.threshold);
}

// A threshold's own shape: members listed, none twice, 1 <= threshold <= members. `what` names it in
// messages: "the quorum", "group \"independent\"", "rule 2's quorum".
// `threshold` is int64_t so the parser can check a file's value before narrowing it.
absl::Status CheckThresholdShape(int64_t threshold, const std::vector<std::string>& members, std::string_view what,
                                 const ThresholdWhere& where) {
  if (members.empty()) {
    return absl::InvalidArgumentError(
        Cat(where.threshold, what,
            " has no members (list the operators or groups that must agree, e.g. members = [\"org-a\", "
            "\"org-b\"])"));
  }
  absl::flat_hash_map<std::string, size_t> seen;
  for (size_t i = 0; i < members.size(); ++i) {
    auto [it, inserted] = seen.try_emplace(members[i], i);
    if (inserted) continue;
    const std::string_view first = MemberWhere(where, it->second);
    return absl::InvalidArgumentError(
        Cat(MemberWhere(where, i), what, " lists ", QuoteForError(members[i]), " twice",
            first.empty() ? "" : Cat(", first at ", first.substr(0, first.size() - 2)),
            " (a member counts once however often it is listed: remove the repetition)"));
  }
  if (threshold < 1) {
    return absl::InvalidArgumentError(
        Cat(where.threshold, what, " has threshold ", threshold,
            " (it is how many of its members must be satisfied: set it to at least 1)"));
  }
  if (static_cast<size_t>(threshold) > members.size()) {
    return absl::InvalidArgumentError(
        Cat(where.threshold, what, " has threshold ", threshold, " but only ", members.size(), " member",
            members.size() == 1 ? "" : "s",
            " (it could never be satisfied: lower the threshold or add members)"));
  }
  return absl::OkStatus();
}

// Every member names an operator or a group. `known` holds every operator and group name of the policy.
absl::Status CheckMembersKnown(const Threshold& t, std::string_view what, const ThresholdWhere& where,
                               const absl::flat_hash_set<std::string>& known) {
  for (size_t i = 0; i < t.members.size(); ++i) {
    if (known.contains(t.members[i])) continue;
    return absl::InvalidArgumentError(
        Cat(MemberWhere(where, i), what, " lists ", QuoteForError(t.members[i]),
            ", which is neither an operator nor a group of the policy (fix the spelling, or add the "
            "[[operator]] or [[group]] it means)"));
  }
  return absl::OkStatus();
}

// A quorum of either form. `what` is "quorum" or "rule 2: quorum"; a rule's quorum must be set (a
// missing one is reported by the caller, who knows where the rule is).
absl::Status CheckQuorumShape(const Quorum& quorum, std::string_view what, size_t operator_count,
                              const ThresholdWhere& where) {
  if (quorum.of.has_value()) {
    if (quorum.any != 0) {
      return absl::InvalidArgumentError(
          Cat(where.threshold, what, " is both any ", quorum.any,
              " operators and a threshold (a quorum is one or the other: keep one)"));
    }
    return CheckThresholdShape(quorum.of->threshold, quorum.of->members, what, where);
  }
  return ValidateQuorum(quorum.any, operator_count, where.threshold, what);
}

// The groups' containment graph has no cycle. Returns the first cycle found, as the names along it
// with the first repeated at the end ("a", "b", "a"), or an empty vector. Groups are visited in the
// order given (the file's), so the cycle named is the same on every run.
std::vector<std::string> FindGroupCycle(const std::vector<Group>& groups) {
  absl::flat_hash_map<std::string, const Group*> by_name;
  for (const Group& group : groups) by_name.emplace(group.name, &group);
  enum class Mark { kNew, kOnPath, kDone };
  absl::flat_hash_map<std::string, Mark> marks;
  std::vector<std::string> path;
  // Iterative depth-first search: a deep chain of groups in a hostile file must not overflow the stack.
  struct Frame {
    const Group* group;
    size_t next_member;
  };
  for (const Group& root : groups) {
    if (marks[root.name] != Mark::kNew) continue;
    std::vector<Frame> stack = {{&root, 0}};
    marks[root.name] = Mark::kOnPath;
    path = {root.name};
    while (!stack.empty()) {
      Frame& frame = stack.back();
      if (frame.next_member == frame.group->threshold.members.size()) {
        marks[frame.group->name] = Mark::kDone;
        path.pop_back();
        stack.pop_back();
        continue;
      }
      const std::string& member = frame.group->threshold.members[frame.next_member++];
      auto child = by_name.find(member);
      if (child == by_name.end()) continue;  // an operator (or unknown: reported elsewhere)
      Mark& mark = marks[member];
      if (mark == Mark::kOnPath) {
        auto start = std::find(path.begin(), path.end(), member);
        std::vector<std::string> cycle(start, path.end());
        cycle.push_back(member);
        return cycle;
      }
      if (mark == Mark::kDone) continue;
      mark = Mark::kOnPath;
      path.push_back(member);
      stack.push_back({child->second, 0});
    }
  }
  return {};
}

std::string CycleText(const std::vector<std::string>& cycle) {
  std::string text;
  for (const std::string& name : cycle) text += Cat(text.empty() ? "" : " -> ", name);
  return text;
}

absl::Status CycleError(const std::vector<std::string>& cycle, std::string_view where) {
  return absl::InvalidArgumentError(
      Cat(where, "groups form a cycle: ", CycleText(cycle),
          " (a group may not contain itself through other groups: remove one of these memberships)"));
}

constexpr size_t kMaxGlobLength = 255;

// A rule's glob: 1..255 bytes of printable ASCII without white space (it appears in space-separated
// canonical lines and in answers).
absl::Status CheckGlob(std::string_view glob, std::string_view what, std::string_view where) {
  if (glob.empty()) {
    return absl::InvalidArgumentError(
        Cat(where, what, " has an empty name pattern (write a glob such as \"openssl-*\"; \"*\" matches every "
            "path)"));
  }
  if (glob.size() > kMaxGlobLength) {
    return absl::InvalidArgumentError(Cat(where, what, " has a name pattern ", glob.size(),
                                          " bytes long (use at most ", kMaxGlobLength,
                                          ", as store path names are that short)"));
  }
  for (char c : glob) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          Cat(where, what, " has the name pattern ", QuoteForError(glob),
              ", which contains white space or a character that is not printable ASCII (store path names "
              "are printable ASCII: use * and ? for the rest)"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLifecycle(std::string_view key_name, const KeyLifecycle& lifecycle, std::string_view where) {
  switch (lifecycle.state) {
    case KeyState::kActive:
      return absl::OkStatus();
    case KeyState::kRetired:
      if (lifecycle.retired_unix < 0) {
        return absl::InvalidArgumentError(
            Cat(where, "key \"", key_name, "\" is retired at ", lifecycle.retired_unix,
                ", before 1970 (give the cut-off as a time since 1970-01-01T00:00:00Z)"));
      }
      if (!lifecycle.revoked_reason.empty()) {
        return absl::InvalidArgumentError(
            Cat(where, "key \"", key_name,
                "\" is retired but has a revocation reason (a key is either retired or revoked: keep one)"));
      }
      return absl::OkStatus();
    case KeyState::kRevoked:
      if (std::find(std::begin(kRevocationReasons), std::end(kRevocationReasons), lifecycle.revoked_reason) ==
          std::end(kRevocationReasons)) {
        return absl::InvalidArgumentError(
            Cat(where, "key \"", key_name, "\" is revoked for ", QuoteForError(lifecycle.revoked_reason),
                ", which is not a revocation reason (use one of compromised, lost, misbehaving, unspecified)"));
      }
      if (lifecycle.retired_unix != 0) {
        return absl::InvalidArgumentError(
            Cat(where, "key \"", key_name,
                "\" is revoked but has a retirement cut-off (a key is either retired or revoked: keep one)"));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      Cat(where, "key \"", key_name, "\" has the unknown lifecycle state ", static_cast<int>(lifecycle.state),
          " (use active, retired or revoked)"));
}

absl::Status CheckParent(std::string_view parent, std::string_view where) {
  if (parent.empty()) return absl::OkStatus();
  constexpr std::string_view kPrefix = "sha256:";
  bool ok = parent.size() == kPrefix.size() + 64 && parent.substr(0, kPrefix.size()) == kPrefix &&
            std::all_of(parent.begin() + kPrefix.size(), parent.end(),
                        [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      Cat(where, "parent is ", QuoteForError(parent),
          ", not \"sha256:\" and 64 lowercase hex digits (copy the hash of the policy this one replaces, as "
          "`attest policy show` prints it; a first policy has no parent)"));
}

absl::Status CheckVersion(int64_t version, bool has_parent, std::string_view where) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        Cat(where, "version is ", version, " (versions start at 1: leave it out for a first policy)"));
  }
  if (has_parent && version < 2) {
    return absl::InvalidArgumentError(
        Cat(where, "version is ", version,
            " but the policy has a parent (a successor's version is its parent's + 1: set version to that)"));
  }
  return absl::OkStatus();
}

// `usable` is the number of maintainers not revoked, `listed` of all maintainers.
absl::Status CheckUpdateThreshold(int64_t update_threshold, size_t usable, size_t listed, std::string_view where) {
  if (update_threshold < 1) {
    return absl::InvalidArgumentError(
        Cat(where, "update_threshold is ", update_threshold,
            " (it is how many maintainers must sign the next policy: set it to at least 1)"));
  }
  if (listed > 0 && usable == 0) {
    return absl::InvalidArgumentError(
        Cat(where, "every maintainer key is revoked, so no successor policy could ever be approved (list the "
                   "maintainer keys that replace them)"));
  }
  if (listed > 0 && static_cast<uint64_t>(update_threshold) > usable) {
    return absl::InvalidArgumentError(
        Cat(where, "update_threshold is ", update_threshold, " but the policy has only ", usable,
            " maintainer", usable == 1 ? "" : "s", " that ", usable == 1 ? "is" : "are",
            " not revoked (the policy could never be updated: lower update_threshold or add maintainers)"));
  }
  return absl::OkStatus();
}

// Literal characters and stars of a glob, for "most specific wins".
struct GlobWeight final {
  int literals = 0;
  int stars = 0;
};

GlobWeight WeighGlob(std::string_view glob) {
  GlobWeight weight;
  for (char c : glob) {
    if (c == '*') {
      ++weight.stars;
    } else if (c != '?') {
      ++weight.literals;
    }
  }
  return weight;
}

// "any:2" or "threshold:2:a,b" (members sorted): a rule's quorum in its canonical line.
std::string CanonicalQuorumWord(const Quorum& quorum) {
  if (!quorum.of.has_value()) return Cat("any:", quorum.any);
  std::vector<std::string> members = quorum.of->members;
  std::sort(members.begin(), members.end());
  std::string text = Cat("threshold:", quorum.of->threshold, ":");
  for (size_t i = 0; i < members.size(); ++i) text += Cat(i == 0 ? "" : ",", members[i]);
  return text;
}

// " a b c": sorted members, each preceded by a space.
std::string SortedMemberWords(const std::vector<std::string>& members) {
  std::vector<std::string> sorted = members;
  std::sort(sorted.begin(), sorted.end());
  std::string text;
  for (const std::string& member : sorted) text += Cat(" ", member);
  return text;
}

// ---- TOML --------------------------------------------------------------------------------------

std::string Where(std::string_view file, const toml::source_region& region) {
  return consensus::TomlWhere(file, region);
}

std::string_view TypeName(const toml::node& node) { return consensus::TomlTypeName(node); }

std::vector<std::pair<const toml::key*, const toml::node*>> EntriesInFileOrder(const toml::table& table) {
  return consensus::TomlEntriesInFileOrder(table);
}

// INVALID_ARGUMENT at the first key of `table` not in `allowed`.
absl::Status CheckKnownKeys(const toml::table& table,
                            std::initializer_list<std::string_view> allowed, std::string_view file,
                            std::string_view context, std::string_view hint) {
  for (const auto& [key, node] : EntriesInFileOrder(table)) {
    if (std::find(allowed.begin(), allowed.end(), key->str()) != allowed.end()) continue;
    return absl::InvalidArgumentError(Cat(Where(file, key->source()), "unknown key ",
                                          QuoteForError(key->str()), " ", context, " (", hint,
                                          ")"));
  }
  return absl::OkStatus();
}

// Parses a public key from a TOML string node. `role` is used in messages.
absl::StatusOr<PublicKey> ParseKeyNode(const toml::node& node, std::string_view role,
                                       std::string_view file) {
  const std::string where = Where(file, node.source());
  const auto* text = node.as_string();
  if (text == nullptr) {
    return absl::InvalidArgumentError(
        Cat(where, role, " is ", TypeName(node),
            ", not a string (write the public key in quotes: \"name:base64\")"));
  }
  absl::StatusOr<PublicKey> key = PublicKey::Parse(text->get());
  if (key.ok()) return key;
  // A secret key pasted by mistake deserves its own message, and must never be echoed back.
  if (SecretKey::Parse(text->get()).ok()) {
    return absl::InvalidArgumentError(
        Cat(where, role,
            " is a SECRET key (put only the public half in the policy: `nix key "
            "convert-secret-to-public < secret-key-file`; keep the secret key on the builder and "
            "consider it exposed)"));
  }
  return absl::InvalidArgumentError(
      Cat(where, role, " is not a Nix public key: ", key.status().message(),
          " (expected \"name:base64\" as printed by `nix key convert-secret-to-public`)"));
}

// The [[operator]] / [[maintainer]] arrays: `operator = ...` as a plain table or value is a mistake
// that is easy to make in TOML, so it gets a message showing the right form.
absl::StatusOr<const toml::array*> ArrayOfTables(const toml::key& key, const toml::node& node,
                                                 std::string_view file) {
  const toml::array* array = node.as_array();
  bool ok = array != nullptr && std::all_of(array->begin(), array->end(),
                                            [](const toml::node& n) { return n.is_table(); });
  if (!ok) {
    return absl::InvalidArgumentError(
        Cat(Where(file, key.source()), "\"", key.str(), "\" is ", TypeName(node),
            ", not an array of tables (write each entry as a [[", key.str(), "]] table)"));
  }
  return array;
}

// ---- key lifecycles in TOML ---------------------------------------------------------------------

bool IsLeapYear(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Seconds since 1970-01-01T00:00:00Z of a UTC civil time, or nullopt when a field is out of range
// (leap seconds included: cut-offs are whole, ordinary seconds) or the year is before 1970.
std::optional<int64_t> UnixSeconds(int64_t year, int month, int day, int hour, int minute, int second) {
  if (year < 1970 || year > 9999 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
      hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return std::nullopt;
  }
  int64_t days = 0;
  for (int64_t y = 1970; y < year; ++y) days += IsLeapYear(y) ? 366 : 365;
  for (int m = 1; m < month; ++m) days += DaysInMonth(year, m);
  days += day - 1;
  return ((days * 24 + hour) * 60 + minute) * 60 + second;
}

// A retirement cut-off: a string "YYYY-MM-DDTHH:MM:SSZ", or the same written as a TOML offset date-time
// (unquoted) in UTC. Local times, other offsets and fractional seconds are refused: every node must
// read the same second.
absl::StatusOr<int64_t> ParseCutoff(const toml::node& node, std::string_view key_name, std::string_view file) {
  const std::string where = Where(file, node.source());
  const std::string what = Cat("the retirement time of key \"", key_name, "\"");
  constexpr std::string_view kHint =
      " (write the cut-off in UTC, whole seconds, as \"YYYY-MM-DDTHH:MM:SSZ\", e.g. retired = "
      "\"2026-12-01T00:00:00Z\")";
  if (const auto* text = node.as_string(); text != nullptr) {
    const std::string_view value = text->get();
    auto digits = [&](size_t pos, size_t count) {
      int64_t n = 0;
      for (size_t i = pos; i < pos + count; ++i) {
        if (value[i] < '0' || value[i] > '9') return int64_t{-1};
        n = n * 10 + (value[i] - '0');
      }
      return n;
    };
    const bool shaped = value.size() == 20 && value[4] == '-' && value[7] == '-' && value[10] == 'T' &&
                        value[13] == ':' && value[16] == ':' && value[19] == 'Z';
    if (!shaped) {
      std::string_view problem = "is not of the form YYYY-MM-DDTHH:MM:SSZ";
      if (value.find('.') != std::string_view::npos) {
        problem = "has fractional seconds";
      } else if (value.size() >= 19 && value.back() != 'Z' && value.back() != 'z') {
        problem = "is not in UTC (it does not end in Z)";
      }
      return absl::InvalidArgumentError(Cat(where, what, " ", QuoteForError(value), " ", problem, kHint));
    }
    const int64_t year = digits(0, 4);
    const int64_t fields[] = {digits(5, 2), digits(8, 2), digits(11, 2), digits(14, 2), digits(17, 2)};
    if (year >= 0 && year < 1970) {
      return absl::InvalidArgumentError(Cat(where, what, " ", QuoteForError(value), " is before 1970", kHint));
    }
    std::optional<int64_t> unix;
    if (year >= 0 && std::all_of(std::begin(fields), std::end(fields), [](int64_t f) { return f >= 0; })) {
      unix = UnixSeconds(year, static_cast<int>(fields[0]), static_cast<int>(fields[1]), static_cast<int>(fields[2]),
                         static_cast<int>(fields[3]), static_cast<int>(fields[4]));
    }
    if (!unix) {
      return absl::InvalidArgumentError(
          Cat(where, what, " ", QuoteForError(value),
              " names no real time (check the digits, month, day, hour, minute and second)", kHint));
    }
    return *unix;
  }
  if (const auto* value = node.as_date_time(); value != nullptr) {
    const toml::date_time& dt = value->get();
    if (!dt.offset.has_value()) {
      return absl::InvalidArgumentError(
          Cat(where, what,
              " is a local date-time, without a time zone (a cut-off must mean the same second on every node: "
              "write it in UTC, ending in Z, e.g. retired = \"2026-12-01T00:00:00Z\")"));
    }
    if (dt.offset->minutes != 0) {
      return absl::InvalidArgumentError(
          Cat(where, what, " has a UTC offset of ", dt.offset->minutes, " minutes", kHint));
    }
    if (dt.time.nanosecond != 0) {
      return absl::InvalidArgumentError(Cat(where, what, " has fractional seconds", kHint));
    }
    std::optional<int64_t> unix = UnixSeconds(dt.date.year, dt.date.month, dt.date.day, dt.time.hour,
                                              dt.time.minute, dt.time.second);
    if (!unix) {
      return absl::InvalidArgumentError(Cat(where, what, " is before 1970 or names no real time", kHint));
    }
    return *unix;
  }
  return absl::InvalidArgumentError(Cat(where, what, " is ", TypeName(node), ", not a date-time", kHint));
}

// A key given as a table: {key = "...", retired = "..."} in builders, or a [[maintainer]]. Registers the
// key (and its lifecycle, when not active). `context` and `hint` are for an unknown key in the table;
// `missing_key` is the whole message for a table without one.
absl::StatusOr<PublicKey> ParseKeyTable(const toml::table& table, std::string_view role, std::string_view context,
                                        std::string_view hint, std::string_view missing_key, std::string_view file,
                                        NameRegistry& names, std::map<std::string, KeyLifecycle>& lifecycles) {
  if (absl::Status s = CheckKnownKeys(table, {"key", "retired", "revoked"}, file, context, hint); !s.ok()) {
    return s;
  }
  const toml::node* node = table.get("key");
  if (node == nullptr) return absl::InvalidArgumentError(Cat(Where(file, table.source()), missing_key));
  absl::StatusOr<PublicKey> key = ParseKeyNode(*node, role, file);
  if (!key.ok()) return key.status();
  if (absl::Status s = names.AddKey(*key, role, Where(file, node->source())); !s.ok()) return s;

  const toml::node* retired = table.get("retired");
  const toml::node* revoked = table.get("revoked");
  if (retired != nullptr && revoked != nullptr) {
    const toml::node* later = retired->source().begin < revoked->source().begin ? revoked : retired;
    return absl::InvalidArgumentError(
        Cat(Where(file, later->source()), "key \"", key->name(),
            "\" is both retired and revoked (keep one: revoked if none of its attestations may count, past ones "
            "included; retired if what was received before the cut-off still counts)"));
  }
  KeyLifecycle lifecycle;
  std::string where;
  if (retired != nullptr) {
    where = Where(file, retired->source());
    absl::StatusOr<int64_t> cutoff = ParseCutoff(*retired, key->name(), file);
    if (!cutoff.ok()) return cutoff.status();
    lifecycle.state = KeyState::kRetired;
    lifecycle.retired_unix = *cutoff;
  } else if (revoked != nullptr) {
    where = Where(file, revoked->source());
    const auto* reason = revoked->as_string();
    if (reason == nullptr) {
      return absl::InvalidArgumentError(
          Cat(where, "the revocation reason of key \"", key->name(), "\" is ", TypeName(*revoked),
              ", not a string (write revoked = \"compromised\", \"lost\", \"misbehaving\" or \"unspecified\")"));
    }
    lifecycle.state = KeyState::kRevoked;
    lifecycle.revoked_reason = reason->get();
  } else {
    return key;
  }
  if (absl::Status s = CheckLifecycle(key->name(), lifecycle, where); !s.ok()) return s;
  lifecycles.emplace(key->name(), std::move(lifecycle));
  return key;
}

absl::StatusOr<Operator> ParseOperator(const toml::table& table, std::string_view file, NameRegistry& names,
                                       std::map<std::string, KeyLifecycle>& lifecycles) {
  if (absl::Status s = CheckKnownKeys(
          table, {"name", "builders", "caches"}, file, "in [[operator]]",
          "an operator has only name, builders and caches; keys written after an [[operator]] header "
          "belong to it, so top-level keys such as quorum go above the first table");
      !s.ok()) {
    return s;
  }
  Operator op;
  const std::string table_where = Where(file, table.source());
  const toml::node* name = table.get("name");
  if (name == nullptr) {
    return absl::InvalidArgumentError(
        Cat(table_where, "[[operator]] has no name (add name = \"<operator>\" to this table)"));
  }
  if (!name->is_string()) {
    return absl::InvalidArgumentError(Cat(Where(file, name->source()), "operator name is ",
                                          TypeName(*name),
                                          ", not a string (write name = \"<operator>\")"));
  }
  op.name = name->as_string()->get();
  if (absl::Status s = names.AddOperator(op.name, Where(file, name->source())); !s.ok()) return s;

  const toml::node* builders = table.get("builders");
  if (builders == nullptr) {
    return absl::InvalidArgumentError(Cat(
        table_where, "operator \"", op.name,
        "\" has no builders (add builders = [\"name:base64\", ...] with its builder public keys)"));
  }
  const toml::array* list = builders->as_array();
  if (list == nullptr) {
    return absl::InvalidArgumentError(
        Cat(Where(file, builders->source()), "builders of operator \"", op.name, "\" is ",
            TypeName(*builders), ", not an array (write builders = [\"name:base64\", ...])"));
  }
  if (list->empty()) {
    return absl::InvalidArgumentError(
        Cat(Where(file, builders->source()), "operator \"", op.name,
            "\" has no builders (list at least one builder public key, or remove the operator)"));
  }
  const std::string role = Cat("builder key of operator \"", op.name, "\"");
  for (const toml::node& element : *list) {
    absl::StatusOr<PublicKey> key;
    if (const toml::table* entry = element.as_table(); entry != nullptr) {
      key = ParseKeyTable(*entry, role, Cat("in a builder entry of operator \"", op.name, "\""),
                          "a builder entry has key and, for a key that no longer counts as active, either retired = "
                          "\"YYYY-MM-DDTHH:MM:SSZ\" or revoked = \"<reason>\"",
                          Cat("builder entry of operator \"", op.name,
                              "\" has no key (write {key = \"name:base64\", retired = \"YYYY-MM-DDTHH:MM:SSZ\"} or "
                              "{key = \"name:base64\", revoked = \"compromised\"})"),
                          file, names, lifecycles);
    } else if (element.is_string()) {
      key = ParseKeyNode(element, role, file);
      if (key.ok()) {
        if (absl::Status s = names.AddKey(*key, role, Where(file, element.source())); !s.ok()) return s;
      }
    } else {
      return absl::InvalidArgumentError(
          Cat(Where(file, element.source()), role, " is ", TypeName(element),
              ", not a string or a table (write the public key in quotes, \"name:base64\", or {key = "
              "\"name:base64\", retired = \"YYYY-MM-DDTHH:MM:SSZ\"} for a retired or revoked one)"));
    }
    if (!key.ok()) return key.status();
    op.builders.push_back(*std::move(key));
  }

  const toml::node* caches = table.get("caches");
  if (caches == nullptr) return op;
  const toml::array* urls = caches->as_array();
  if (urls == nullptr) {
    return absl::InvalidArgumentError(
        Cat(Where(file, caches->source()), "caches of operator \"", op.name, "\" is ", TypeName(*caches),
            ", not an array (write caches = [\"https://cache.example.org\", ...], the binary caches that hold "
            "its builds)"));
  }
  std::vector<std::string> where;
  for (const toml::node& element : *urls) {
    where.push_back(Where(file, element.source()));
    const auto* url = element.as_string();
    if (url == nullptr) {
      return absl::InvalidArgumentError(Cat(where.back(), "cache of operator \"", op.name, "\" is ",
                                            TypeName(element), ", not a string (write the URL in quotes)"));
    }
    op.caches.push_back(url->get());
  }
  if (absl::Status s = NormalizeCaches(op, where); !s.ok()) return s;
  return op;
}

absl::StatusOr<PublicKey> ParseMaintainer(const toml::table& table, std::string_view file, NameRegistry& names,
                                          std::map<std::string, KeyLifecycle>& lifecycles) {
  return ParseKeyTable(table, "maintainer key", "in [[maintainer]]",
                       "a maintainer has only key = \"name:base64\" and, for a key that no longer counts as active, "
                       "either retired = \"YYYY-MM-DDTHH:MM:SSZ\" or revoked = \"<reason>\"",
                       "[[maintainer]] has no key (add key = \"name:base64\", the maintainer's public key)", file,
                       names, lifecycles);
}

// Reads threshold and members from `table` (a [quorum] table, a rule's quorum table or a [[group]]) and
// checks the threshold's own shape; whether the members exist is checked once every name is known.
absl::StatusOr<std::pair<Threshold, ThresholdWhere>> ParseThresholdFields(const toml::table& table,
                                                                          std::string_view what,
                                                                          std::string_view file) {
  const std::string table_where = Where(file, table.source());
  ThresholdWhere where;
  const toml::node* threshold = table.get("threshold");
  if (threshold == nullptr) {
    return absl::InvalidArgumentError(
        Cat(table_where, what, " has no threshold (add threshold = T, how many of its members must be satisfied)"));
  }
  where.threshold = Where(file, threshold->source());
  const auto* threshold_value = threshold->as_integer();
  if (threshold_value == nullptr) {
    return absl::InvalidArgumentError(Cat(where.threshold, what, " threshold is ", TypeName(*threshold),
                                          ", not an integer (write e.g. threshold = 2)"));
  }
  const toml::node* members = table.get("members");
  if (members == nullptr) {
    return absl::InvalidArgumentError(
        Cat(table_where, what,
            " has no members (add members = [\"org-a\", \"org-b\"], the operators or groups that must agree)"));
  }
  const toml::array* list = members->as_array();
  if (list == nullptr) {
    return absl::InvalidArgumentError(Cat(Where(file, members->source()), what, " members is ", TypeName(*members),
                                          ", not an array (write members = [\"org-a\", \"org-b\"])"));
  }
  Threshold parsed;
  for (const toml::node& element : *list) {
    where.members.push_back(Where(file, element.source()));
    const auto* name = element.as_string();
    if (name == nullptr) {
      return absl::InvalidArgumentError(Cat(where.members.back(), "a member of ", what, " is ", TypeName(element),
                                            ", not a string (write the operator or group name in quotes)"));
    }
    parsed.members.push_back(name->get());
  }
  if (list->empty()) where.threshold = Where(file, members->source());
  if (absl::Status s = CheckThresholdShape(threshold_value->get(), parsed.members, what, where); !s.ok()) return s;
  // In range now: 1 ..= the number of members.
  parsed.threshold = static_cast<int>(threshold_value->get());
  return std::pair(std::move(parsed), std::move(where));
}

// Reads quorums, the policy's and the rules': an integer (any K operators) or a table with threshold
// and members. Members are checked against `known` (every operator and group name) where they are
// written; whether a flat quorum exceeds the number of operators can only be told at the end
// (CheckOperatorCount), as a policy listing too few is more often one with a malformed operator
// table, which the walk reports at its place.
class QuorumReader final {
 public:
  QuorumReader(std::string_view file, const absl::flat_hash_set<std::string>& known) : file_(file), known_(known) {}

  // `what` names the quorum in messages ("quorum", "rule 2: quorum"); `table_context` says where an
  // unknown key in its table is ("in [quorum]").
  absl::StatusOr<Quorum> Read(const toml::node& node, std::string_view what, std::string_view table_context) {
    const std::string where = Where(file_, node.source());
    Quorum quorum;
    if (const auto* value = node.as_integer(); value != nullptr) {
      if (absl::Status s = ValidateQuorum(value->get(), SIZE_MAX, where, what); !s.ok()) return s;
      flat_.push_back({value->get(), where, std::string(what)});
      // Narrowed without loss once CheckOperatorCount passed (at most the number of operators).
      quorum.any = static_cast<int>(std::min<int64_t>(value->get(), INT32_MAX));
      return quorum;
    }
    if (const toml::table* table = node.as_table(); table != nullptr) {
      if (absl::Status s = CheckKnownKeys(*table, {"threshold", "members"}, file_, table_context,
                                          "a quorum table has only threshold and members; keys written after a "
                                          "table header belong to it, so top-level keys go above the first table");
          !s.ok()) {
        return s;
      }
      absl::StatusOr<std::pair<Threshold, ThresholdWhere>> threshold = ParseThresholdFields(*table, what, file_);
      if (!threshold.ok()) return threshold.status();
      if (absl::Status s = CheckMembersKnown(threshold->first, what, threshold->second, known_); !s.ok()) return s;
      quorum.of = std::move(threshold->first);
      return quorum;
    }
    return absl::InvalidArgumentError(
        Cat(where, what, " is ", TypeName(node),
            ", not an integer or a table (write e.g. quorum = 2 for any 2 operators, or a table with threshold "
            "and members: quorum = {threshold = 2, members = [\"org-a\", \"group-b\"]})"));
  }

  // Every flat quorum read, in file order, against the number of operators the policy has.
  absl::Status CheckOperatorCount(size_t operator_count) const {
    for (const Flat& flat : flat_) {
      if (absl::Status s = ValidateQuorum(flat.any, operator_count, flat.where, flat.what); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  struct Flat {
    int64_t any;
    std::string where;
    std::string what;
  };
  std::string_view file_;
  const absl::flat_hash_set<std::string>& known_;
  std::vector<Flat> flat_;
};

// A [[group]] table. Registers its name (and where it is, for a cycle message).
absl::StatusOr<Group> ParseGroup(const toml::table& table, std::string_view file, NameRegistry& names,
                                 const absl::flat_hash_set<std::string>& known,
                                 absl::flat_hash_map<std::string, std::string>& group_where) {
  if (absl::Status s = CheckKnownKeys(
          table, {"name", "threshold", "members"}, file, "in [[group]]",
          "a group has only name, threshold and members; keys written after a [[group]] header belong to "
          "it, so top-level keys such as quorum go above the first table");
      !s.ok()) {
    return s;
  }
  const toml::node* name = table.get("name");
  if (name == nullptr) {
    return absl::InvalidArgumentError(
        Cat(Where(file, table.source()), "[[group]] has no name (add name = \"<group>\" to this table)"));
  }
  if (!name->is_string()) {
    return absl::InvalidArgumentError(Cat(Where(file, name->source()), "group name is ", TypeName(*name),
                                          ", not a string (write name = \"<group>\")"));
  }
  Group group;
  group.name = name->as_string()->get();
  const std::string name_where = Where(file, name->source());
  if (absl::Status s = names.AddGroup(group.name, name_where); !s.ok()) return s;
  const std::string what = Cat("group \"", group.name, "\"");
  absl::StatusOr<std::pair<Threshold, ThresholdWhere>> threshold = ParseThresholdFields(table, what, file);
  if (!threshold.ok()) return threshold.status();
  if (absl::Status s = CheckMembersKnown(threshold->first, what, threshold->second, known); !s.ok()) return s;
  group.threshold = std::move(threshold->first);
  group_where.emplace(group.name, name_where);
  return group;
}

// The `number`th [[rule]] table (from 1, as messages and the canonical text count).
absl::StatusOr<Rule> ParseRule(const toml::table& table, size_t number, std::string_view file,
                               QuorumReader& quorums) {
  const std::string what = Cat("rule ", number);
  const std::string table_where = Where(file, table.source());
  if (absl::Status s = CheckKnownKeys(table, {"names", "quorum"}, file, "in [[rule]]",
                                      "a rule has only names and quorum; keys written after a [[rule]] header "
                                      "belong to it, so top-level keys go above the first table");
      !s.ok()) {
    return s;
  }
  Rule rule;
  const toml::node* globs = table.get("names");
  const toml::array* list = globs == nullptr ? nullptr : globs->as_array();
  if (globs != nullptr && list == nullptr) {
    return absl::InvalidArgumentError(Cat(Where(file, globs->source()), what, " names is ", TypeName(*globs),
                                          ", not an array (write names = [\"openssl-*\"])"));
  }
  if (list == nullptr || list->empty()) {
    return absl::InvalidArgumentError(
        Cat(globs == nullptr ? table_where : Where(file, globs->source()), what,
            " has no names (add names = [\"openssl-*\", ...], globs on the store path's name after its hash)"));
  }
  for (const toml::node& glob : *list) {
    const std::string glob_where = Where(file, glob.source());
    const auto* value = glob.as_string();
    if (value == nullptr) {
      return absl::InvalidArgumentError(Cat(glob_where, "a name of ", what, " is ", TypeName(glob),
                                            ", not a string (write the glob in quotes, e.g. \"openssl-*\")"));
    }
    if (absl::Status s = CheckGlob(value->get(), what, glob_where); !s.ok()) return s;
    rule.names.push_back(value->get());
  }
  const toml::node* quorum = table.get("quorum");
  if (quorum == nullptr) {
    return absl::InvalidArgumentError(
        Cat(table_where, what,
            " has no quorum (add quorum = K for any K operators, or quorum = {threshold = T, members = [...]})"));
  }
  absl::StatusOr<Quorum> parsed = quorums.Read(*quorum, Cat(what, ": quorum"), Cat("in the quorum of ", what));
  if (!parsed.ok()) return parsed.status();
  rule.quorum = *std::move(parsed);
  return rule;
}

}  // namespace

absl::Status ValidateOperatorName(std::string_view name) { return ValidateName(name, "operator", "alice-ci"); }

absl::StatusOr<Policy> Policy::Create(int quorum, std::vector<Operator> operators,
                                      std::vector<PublicKey> maintainers) {
  PolicySpec spec;
  spec.quorum.any = quorum;
  spec.operators = std::move(operators);
  spec.maintainers = std::move(maintainers);
  return Create(std::move(spec));
}

absl::StatusOr<Policy> Policy::Create(PolicySpec spec) {
  NameRegistry names;
  for (Operator& op : spec.operators) {
    if (absl::Status s = names.AddOperator(op.name, ""); !s.ok()) return s;
    if (op.builders.empty()) {
      return absl::InvalidArgumentError(
          Cat("operator \"", op.name,
              "\" has no builders (list at least one builder public key, or remove the operator)"));
    }
    const std::string role = Cat("builder key of operator \"", op.name, "\"");
    for (const PublicKey& key : op.builders) {
      if (absl::Status s = names.AddKey(key, role, ""); !s.ok()) return s;
    }
    if (absl::Status s = NormalizeCaches(op, {}); !s.ok()) return s;
  }
  for (const Group& group : spec.groups) {
    if (absl::Status s = names.AddGroup(group.name, ""); !s.ok()) return s;
  }
  for (const PublicKey& key : spec.maintainers) {
    if (absl::Status s = names.AddKey(key, "maintainer key", ""); !s.ok()) return s;
  }
  for (const auto& [key_name, lifecycle] : spec.lifecycles) {
    if (!names.HasKey(key_name)) {
      return absl::InvalidArgumentError(
          Cat("a lifecycle is given for key \"", key_name,
              "\", which the policy does not list (retire or revoke only builder or maintainer keys it lists)"));
    }
    if (absl::Status s = CheckLifecycle(key_name, lifecycle, ""); !s.ok()) return s;
  }

  absl::flat_hash_set<std::string> known;
  for (const Operator& op : spec.operators) known.insert(op.name);
  for (const Group& group : spec.groups) known.insert(group.name);
  const ThresholdWhere nowhere;
  const size_t operator_count = spec.operators.size();
  if (absl::Status s = CheckQuorumShape(spec.quorum, "quorum", operator_count, nowhere); !s.ok()) return s;
  if (spec.quorum.of.has_value()) {
    if (absl::Status s = CheckMembersKnown(*spec.quorum.of, "quorum", nowhere, known); !s.ok()) return s;
  }
  for (const Group& group : spec.groups) {
    const std::string what = Cat("group \"", group.name, "\"");
    if (absl::Status s = CheckThresholdShape(group.threshold.threshold, group.threshold.members, what, nowhere);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckMembersKnown(group.threshold, what, nowhere, known); !s.ok()) return s;
  }
  if (std::vector<std::string> cycle = FindGroupCycle(spec.groups); !cycle.empty()) {
    return CycleError(cycle, "");
  }
  for (size_t i = 0; i < spec.rules.size(); ++i) {
    const Rule& rule = spec.rules[i];
    const std::string what = Cat("rule ", i + 1);
    if (rule.names.empty()) {
      return absl::InvalidArgumentError(
          Cat(what, " has no names (list the store path names it is for, e.g. names = [\"openssl-*\"])"));
    }
    for (const std::string& glob : rule.names) {
      if (absl::Status s = CheckGlob(glob, what, ""); !s.ok()) return s;
    }
    if (rule.quorum.any == 0 && !rule.quorum.of.has_value()) {
      return absl::InvalidArgumentError(
          Cat(what, " has no quorum (add quorum = K, or quorum = {threshold = T, members = [...]})"));
    }
    const std::string quorum_what = Cat(what, ": quorum");
    if (absl::Status s = CheckQuorumShape(rule.quorum, quorum_what, operator_count, nowhere); !s.ok()) return s;
    if (rule.quorum.of.has_value()) {
      if (absl::Status s = CheckMembersKnown(*rule.quorum.of, quorum_what, nowhere, known); !s.ok()) return s;
    }
  }

  if (absl::Status s = CheckParent(spec.parent, ""); !s.ok()) return s;
  if (absl::Status s = CheckVersion(spec.version, !spec.parent.empty(), ""); !s.ok()) return s;
  size_t usable_maintainers = 0;
  for (const PublicKey& key : spec.maintainers) {
    auto it = spec.lifecycles.find(key.name());
    if (it == spec.lifecycles.end() || it->second.state != KeyState::kRevoked) ++usable_maintainers;
  }
  if (absl::Status s = CheckUpdateThreshold(spec.update_threshold, usable_maintainers, spec.maintainers.size(), "");
      !s.ok()) {
    return s;
  }

  // Stored in canonical order, so every accessor (and everything derived from it, like the order
  // operators are listed in an answer) is the same on every node regardless of how the file is laid
  // out. Rules keep their order: it breaks ties, and is part of the hash.
  auto by_text = [](const PublicKey& a, const PublicKey& b) { return a.ToString() < b.ToString(); };
  for (Operator& op : spec.operators) std::sort(op.builders.begin(), op.builders.end(), by_text);
  std::sort(spec.operators.begin(), spec.operators.end(),
            [](const Operator& a, const Operator& b) { return a.name < b.name; });
  std::sort(spec.maintainers.begin(), spec.maintainers.end(), by_text);
  std::sort(spec.groups.begin(), spec.groups.end(), [](const Group& a, const Group& b) { return a.name < b.name; });
  // An explicit "active" entry says nothing the default does not; dropping it keeps one text per policy.
  std::erase_if(spec.lifecycles, [](const auto& entry) { return entry.second.state == KeyState::kActive; });

  Policy policy;
  policy.quorum_ = std::move(spec.quorum);
  policy.operators_ = std::move(spec.operators);
  policy.maintainers_ = std::move(spec.maintainers);
  policy.groups_ = std::move(spec.groups);
  policy.rules_ = std::move(spec.rules);
  policy.lifecycles_ = std::move(spec.lifecycles);
  policy.parent_ = std::move(spec.parent);
  policy.version_ = spec.version;
  policy.update_threshold_ = spec.update_threshold;
  for (size_t i = 0; i < policy.operators_.size(); ++i) {
    for (const PublicKey& key : policy.operators_[i].builders) {
      policy.builder_index_.emplace(key.name(), i);
    }
  }
  std::array<uint8_t, 32> digest = Sha256(policy.CanonicalText());
  policy.hash_ = Cat("sha256:", HexEncode(digest));
  return policy;
}

absl::StatusOr<Policy> Policy::ParseToml(std::string_view text, std::string_view file_name) {
  if (absl::Status s = consensus::CheckTomlUtf8(text, file_name); !s.ok()) return s;
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(file_name));
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(Cat(Where(file_name, error.source()),
                                          "TOML syntax error: ", error.description(),
                                          " (fix the syntax at this position)"));
  }

  if (absl::Status s = CheckKnownKeys(
          root, {"version", "parent", "update_threshold", "quorum", "group", "rule", "operator", "maintainer"},
          file_name, "in the policy",
          "a policy has only version, parent, update_threshold, quorum, [[group]], [[rule]], [[operator]] and "
          "[[maintainer]]; node settings such as [gateway] or [[peer]] belong in the node's own config file");
      !s.ok()) {
    return s;
  }

  PolicySpec spec;
  // The chain settings are top-level values, which TOML puts above every table, so checking them
  // first keeps the first problem in the file the one reported.
  std::string version_where;
  std::string parent_where;
  std::string update_threshold_where;
  for (const auto& [key, node] : EntriesInFileOrder(root)) {
    const std::string where = Where(file_name, node->source());
    if (key->str() == "version") {
      const auto* value = node->as_integer();
      if (value == nullptr) {
        return absl::InvalidArgumentError(Cat(where, "version is ", TypeName(*node),
                                              ", not an integer (write e.g. version = 2)"));
      }
      if (absl::Status s = CheckVersion(value->get(), /*has_parent=*/false, where); !s.ok()) return s;
      spec.version = value->get();
      version_where = where;
    } else if (key->str() == "parent") {
      const auto* value = node->as_string();
      if (value == nullptr) {
        return absl::InvalidArgumentError(
            Cat(where, "parent is ", TypeName(*node),
                ", not a string (write parent = \"sha256:<hex>\", the hash of the policy this one replaces)"));
      }
      if (absl::Status s = CheckParent(value->get(), where); !s.ok()) return s;
      spec.parent = value->get();
      parent_where = where;
    } else if (key->str() == "update_threshold") {
      const auto* value = node->as_integer();
      if (value == nullptr) {
        return absl::InvalidArgumentError(Cat(where, "update_threshold is ", TypeName(*node),
                                              ", not an integer (write e.g. update_threshold = 2)"));
      }
      if (absl::Status s = CheckUpdateThreshold(value->get(), 0, 0, where); !s.ok()) return s;
      if (value->get() > INT32_MAX) {
        return absl::InvalidArgumentError(
            Cat(where, "update_threshold is ", value->get(),
                " (no policy has that many maintainers: set it to at most the number of maintainers)"));
      }
      spec.update_threshold = static_cast<int>(value->get());
      update_threshold_where = where;
    }
  }
  if (!spec.parent.empty() && version_where.empty()) {
    return absl::InvalidArgumentError(
        Cat(parent_where,
            "the policy has a parent but no version (a successor's version is its parent's + 1: add version = N "
            "at the top)"));
  }
  if (absl::Status s = CheckVersion(spec.version, !spec.parent.empty(), version_where); !s.ok()) return s;

  // Operator and group names, read ahead so that every quorum's members are checked where they are
  // written (the first problem in the file is the one reported). Malformed tables are skipped here;
  // the walk reports them at their place.
  absl::flat_hash_set<std::string> known;
  for (std::string_view section : {"operator", "group"}) {
    const toml::array* tables = root[section].as_array();
    if (tables == nullptr) continue;
    for (const toml::node& element : *tables) {
      const toml::table* table = element.as_table();
      const toml::node* name = table == nullptr ? nullptr : table->get("name");
      if (name != nullptr && name->is_string()) known.insert(name->as_string()->get());
    }
  }
  QuorumReader quorums(file_name, known);
  // A missing quorum is reported last: it is often a quorum written below a table header, which the
  // walk reports more precisely.
  bool has_quorum = false;
  NameRegistry names;
  const toml::table* last_maintainer = nullptr;
  absl::flat_hash_map<std::string, std::string> group_where;  // group name -> where its name is
  // Walk the sections in file order, so that with several problems the first one in the file is
  // reported (a duplicate is reported at its second occurrence).
  for (const auto& [key, node] : EntriesInFileOrder(root)) {
    if (key->str() == "quorum") {
      absl::StatusOr<Quorum> quorum = quorums.Read(*node, "quorum", "in [quorum]");
      if (!quorum.ok()) return quorum.status();
      spec.quorum = *std::move(quorum);
      has_quorum = true;
    } else if (key->str() == "group") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<Group> group = ParseGroup(*element.as_table(), file_name, names, known, group_where);
        if (!group.ok()) return group.status();
        spec.groups.push_back(*std::move(group));
      }
    } else if (key->str() == "rule") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<Rule> rule = ParseRule(*element.as_table(), spec.rules.size() + 1, file_name, quorums);
        if (!rule.ok()) return rule.status();
        spec.rules.push_back(*std::move(rule));
      }
    } else if (key->str() == "operator") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<Operator> op = ParseOperator(*element.as_table(), file_name, names, spec.lifecycles);
        if (!op.ok()) return op.status();
        spec.operators.push_back(*std::move(op));
      }
    } else if (key->str() == "maintainer") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<PublicKey> maintainer =
            ParseMaintainer(*element.as_table(), file_name, names, spec.lifecycles);
        if (!maintainer.ok()) return maintainer.status();
        spec.maintainers.push_back(*std::move(maintainer));
        last_maintainer = element.as_table();
      }
    }
  }
  if (!has_quorum) {
    return absl::InvalidArgumentError(
        Cat(file_name, ":1:1: ",
            "the policy has no quorum (add e.g. `quorum = 2` at the top: the number of distinct "
            "operators that must agree)"));
  }
  if (absl::Status s = quorums.CheckOperatorCount(spec.operators.size()); !s.ok()) return s;
  if (std::vector<std::string> cycle = FindGroupCycle(spec.groups); !cycle.empty()) {
    return CycleError(cycle, group_where[cycle.front()]);
  }
  size_t usable_maintainers = 0;
  for (const PublicKey& key : spec.maintainers) {
    auto it = spec.lifecycles.find(key.name());
    if (it == spec.lifecycles.end() || it->second.state != KeyState::kRevoked) ++usable_maintainers;
  }
  if (update_threshold_where.empty() && last_maintainer != nullptr) {
    // Without an update_threshold line, the problem is the last revocation (every maintainer revoked).
    const toml::node* revoked = last_maintainer->get("revoked");
    update_threshold_where = Where(file_name, (revoked != nullptr ? *revoked : *last_maintainer).source());
  }
  if (absl::Status s = CheckUpdateThreshold(spec.update_threshold, usable_maintainers, spec.maintainers.size(),
                                            update_threshold_where);
      !s.ok()) {
    return s;
  }

  absl::StatusOr<Policy> policy = Create(std::move(spec));
  if (!policy.ok()) {
    // Everything Create checks was checked above with a position; this is a safety net.
    return absl::InvalidArgumentError(Cat(file_name, ": ", policy.status().message()));
  }
  return policy;
}

const PublicKey* Policy::FindBuilder(std::string_view key_name) const {
  auto it = builder_index_.find(AbslView(key_name));
  if (it == builder_index_.end()) return nullptr;
  for (const PublicKey& key : operators_[it->second].builders) {
    if (key.name() == key_name) return &key;
  }
  return nullptr;
}

const std::string* Policy::OperatorOf(std::string_view key_name) const {
  auto it = builder_index_.find(AbslView(key_name));
  if (it == builder_index_.end()) return nullptr;
  return &operators_[it->second].name;
}

const PublicKey* Policy::FindMaintainer(std::string_view key_name) const {
  // A policy has a handful of maintainers; a scan is cheaper than another index.
  for (const PublicKey& key : maintainers_) {
    if (key.name() == key_name) return &key;
  }
  return nullptr;
}

const Group* Policy::FindGroup(std::string_view name) const {
  auto it = std::lower_bound(groups_.begin(), groups_.end(), name,
                             [](const Group& group, std::string_view n) { return group.name < n; });
  if (it == groups_.end() || it->name != name) return nullptr;
  return &*it;
}

const KeyLifecycle& Policy::Lifecycle(std::string_view key_name) const {
  static const KeyLifecycle kActiveLifecycle;
  // The tally asks once per attestation; most policies retire or revoke nothing.
  if (lifecycles_.empty()) return kActiveLifecycle;
  auto it = lifecycles_.find(std::string(key_name));
  return it == lifecycles_.end() ? kActiveLifecycle : it->second;
}

bool Policy::KeyCounts(std::string_view key_name, int64_t received_unix) const {
  if (FindBuilder(key_name) == nullptr && FindMaintainer(key_name) == nullptr) return false;
  const KeyLifecycle& lifecycle = Lifecycle(key_name);
  switch (lifecycle.state) {
    case KeyState::kActive:
      return true;
    case KeyState::kRetired:
      // The federation's own receipt time decides, never the signer's clock; an unknown time cannot
      // prove the attestation predates the cut-off.
      return received_unix > 0 && received_unix < lifecycle.retired_unix;
    case KeyState::kRevoked:
      return false;
  }
  return false;
}

AppliedRule Policy::RuleFor(std::string_view path_name) const {
  AppliedRule applied{.quorum = &quorum_, .name = "default", .index = -1};
  GlobWeight best;
  for (size_t i = 0; i < rules_.size(); ++i) {
    for (const std::string& glob : rules_[i].names) {
      if (!GlobMatches(glob, path_name)) continue;
      const GlobWeight weight = WeighGlob(glob);
      bool better;
      if (applied.index < 0) {
        better = true;
      } else if (weight.literals != best.literals) {
        better = weight.literals > best.literals;
      } else if (weight.stars != best.stars) {
        better = weight.stars < best.stars;
      } else {
        // An equally specific glob of a later rule loses (the first listed wins); within one rule the
        // name reported must not depend on the order its globs were written in, which the hash ignores.
        better = static_cast<int>(i) == applied.index && glob < applied.name;
      }
      if (!better) continue;
      applied = {.quorum = &rules_[i].quorum, .name = glob, .index = static_cast<int>(i)};
      best = weight;
    }
  }
  return applied;
}

std::string_view KeyStateName(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return "active";
    case KeyState::kRetired:
      return "retired";
    case KeyState::kRevoked:
      return "revoked";
  }
  return "unknown";
}

bool GlobMatches(std::string_view glob, std::string_view name) {
  // Iterative, remembering only the last `*`: when a later literal fails, that star takes one more
  // character and matching resumes. Sufficient because a later star can only absorb what an earlier
  // one would otherwise have to.
  size_t g = 0;
  size_t n = 0;
  size_t star = std::string_view::npos;
  size_t star_n = 0;
  while (n < name.size()) {
    if (g < glob.size() && glob[g] == '*') {
      star = g++;
      star_n = n;
    } else if (g < glob.size() && (glob[g] == '?' || glob[g] == name[n])) {
      ++g;
      ++n;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      n = ++star_n;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

std::string Policy::CanonicalText() const {
  // Members are already in canonical order (see Create). Every line a feature adds is left out when
  // the feature is unused, so a policy without it keeps the text (and hash) it had before.
  std::string text = Cat(kCanonicalHeader, "\n");
  if (!parent_.empty() || version_ != 1) text += Cat("version ", version_, "\n");
  if (!parent_.empty()) text += Cat("parent ", parent_, "\n");
  if (update_threshold_ != 1) text += Cat("update-threshold ", update_threshold_, "\n");
  if (quorum_.of.has_value()) {
    text += Cat("quorum-threshold ", quorum_.of->threshold, SortedMemberWords(quorum_.of->members), "\n");
  } else {
    text += Cat("quorum ", quorum_.any, "\n");
  }
  for (const Group& group : groups_) {
    text += Cat("group ", group.name, " ", group.threshold.threshold, SortedMemberWords(group.threshold.members),
                "\n");
  }
  for (size_t i = 0; i < rules_.size(); ++i) {
    text += Cat("rule ", i + 1, " ", CanonicalQuorumWord(rules_[i].quorum), SortedMemberWords(rules_[i].names),
                "\n");
  }
  for (const Operator& op : operators_) {
    text += Cat("operator ", op.name, "\n");
    for (const PublicKey& key : op.builders) text += Cat("builder ", key.ToString(), "\n");
    // Kept in the operator's order: it is a preference.
    for (const std::string& url : op.caches) text += Cat("cache ", url, "\n");
  }
  for (const PublicKey& key : maintainers_) {
    text += Cat("maintainer ", key.ToString(), "\n");
  }
  for (const auto& [key_name, lifecycle] : lifecycles_) {
    if (lifecycle.state == KeyState::kRetired) text += Cat("retired ", key_name, " ", lifecycle.retired_unix, "\n");
  }
  for (const auto& [key_name, lifecycle] : lifecycles_) {
    if (lifecycle.state == KeyState::kRevoked) text += Cat("revoked ", key_name, " ", lifecycle.revoked_reason, "\n");
  }
  return text;
}

}  // namespace attest::consensus
