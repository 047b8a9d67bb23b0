#include "consensus/policy.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/cache_url.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
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

// Checks the rules that need every name at once. `where` prefixes messages: empty for Create, and
// "<file>:<line>:<col>: " for the TOML parser so the message points at the offending line.
class NameRegistry final {
 public:
  absl::Status AddOperator(std::string_view name, std::string_view where) {
    if (absl::Status s = ValidateOperatorName(name); !s.ok()) {
      return absl::InvalidArgumentError(Cat(where, s.message()));
    }
    auto [it, inserted] = operators_.try_emplace(std::string(name), std::string(where));
    if (!inserted) {
      return absl::InvalidArgumentError(
          Cat(where, "duplicate operator name \"", name, "\"", FirstSeen(it->second),
              " (an operator is listed once, with all its builder keys under it)"));
    }
    return absl::OkStatus();
  }

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

  absl::flat_hash_map<std::string, std::string> operators_;  // name -> where first seen
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

absl::Status ValidateQuorum(int64_t quorum, size_t operator_count, std::string_view where) {
  if (quorum < 1) {
    return absl::InvalidArgumentError(
        Cat(where, "quorum is ", quorum,
            " (it is the number of distinct operators that must agree: set it to at least 1)"));
  }
  if (static_cast<uint64_t>(quorum) > operator_count) {
    return absl::InvalidArgumentError(
        Cat(where, "quorum is ", quorum, " but the policy has only ", operator_count, " operator",
            operator_count == 1 ? "" : "s",
            " (no path could ever be confirmed: lower the quorum or add operators)"));
  }
  return absl::OkStatus();
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

absl::StatusOr<Operator> ParseOperator(const toml::table& table, std::string_view file,
                                       NameRegistry& names) {
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
    absl::StatusOr<PublicKey> key = ParseKeyNode(element, role, file);
    if (!key.ok()) return key.status();
    if (absl::Status s = names.AddKey(*key, role, Where(file, element.source())); !s.ok()) return s;
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

absl::StatusOr<PublicKey> ParseMaintainer(const toml::table& table, std::string_view file,
                                          NameRegistry& names) {
  if (absl::Status s = CheckKnownKeys(table, {"key"}, file, "in [[maintainer]]",
                                      "a maintainer has only key = \"name:base64\"");
      !s.ok()) {
    return s;
  }
  const toml::node* node = table.get("key");
  if (node == nullptr) {
    return absl::InvalidArgumentError(
        Cat(Where(file, table.source()),
            "[[maintainer]] has no key (add key = \"name:base64\", the maintainer's "
            "public key)"));
  }
  absl::StatusOr<PublicKey> key = ParseKeyNode(*node, "maintainer key", file);
  if (!key.ok()) return key.status();
  if (absl::Status s = names.AddKey(*key, "maintainer key", Where(file, node->source())); !s.ok()) {
    return s;
  }
  return key;
}

}  // namespace

absl::Status ValidateOperatorName(std::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "operator name is empty (give every operator a short unique name, e.g. name = "
        "\"alice-ci\")");
  }
  if (name.size() > kMaxOperatorNameLength) {
    return absl::InvalidArgumentError(Cat("operator name is ", name.size(),
                                          " bytes long (use at most ", kMaxOperatorNameLength,
                                          ")"));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '@' || c == '+';
    if (!ok) {
      return absl::InvalidArgumentError(
          Cat("operator name ", QuoteForError(name),
              " contains a character outside [A-Za-z0-9-_.@+] (use letters, digits and "
              "- _ . @ + only)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Policy> Policy::Create(int quorum, std::vector<Operator> operators,
                                      std::vector<PublicKey> maintainers) {
  NameRegistry names;
  for (Operator& op : operators) {
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
  for (const PublicKey& key : maintainers) {
    if (absl::Status s = names.AddKey(key, "maintainer key", ""); !s.ok()) return s;
  }
  if (absl::Status s = ValidateQuorum(quorum, operators.size(), ""); !s.ok()) return s;

  // Stored in canonical order, so every accessor (and everything derived from it, like the order
  // operators are listed in an answer) is the same on every node regardless of how the file is laid
  // out.
  auto by_text = [](const PublicKey& a, const PublicKey& b) { return a.ToString() < b.ToString(); };
  for (Operator& op : operators) std::sort(op.builders.begin(), op.builders.end(), by_text);
  std::sort(operators.begin(), operators.end(),
            [](const Operator& a, const Operator& b) { return a.name < b.name; });
  std::sort(maintainers.begin(), maintainers.end(), by_text);

  Policy policy;
  policy.quorum_ = quorum;
  policy.operators_ = std::move(operators);
  policy.maintainers_ = std::move(maintainers);
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
          root, {"quorum", "operator", "maintainer"}, file_name, "in the policy",
          "a policy has only quorum, [[operator]] and [[maintainer]]; node settings such as "
          "[gateway] or [[peer]] belong in the node's own config file");
      !s.ok()) {
    return s;
  }

  // The quorum sits above every table in the file, so its own checks come first; whether it exceeds
  // the number of operators can only be told once they are all read. A missing quorum is reported
  // last: it is often a quorum written below a table header, which the walk reports more precisely.
  const toml::node* quorum = root.get("quorum");
  const toml::value<int64_t>* quorum_value = nullptr;
  std::string quorum_where;
  if (quorum != nullptr) {
    quorum_value = quorum->as_integer();
    if (quorum_value == nullptr) {
      return absl::InvalidArgumentError(Cat(Where(file_name, quorum->source()), "quorum is ",
                                            TypeName(*quorum),
                                            ", not an integer (write e.g. quorum = 2)"));
    }
    quorum_where = Where(file_name, quorum->source());
    if (absl::Status s = ValidateQuorum(quorum_value->get(), SIZE_MAX, quorum_where); !s.ok()) {
      return s;
    }
  }

  NameRegistry names;
  std::vector<Operator> operators;
  std::vector<PublicKey> maintainers;
  // Walk the sections in file order, so that with several problems the first one in the file is
  // reported (a duplicate is reported at its second occurrence).
  for (const auto& [key, node] : EntriesInFileOrder(root)) {
    if (key->str() == "operator") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<Operator> op = ParseOperator(*element.as_table(), file_name, names);
        if (!op.ok()) return op.status();
        operators.push_back(*std::move(op));
      }
    } else if (key->str() == "maintainer") {
      absl::StatusOr<const toml::array*> array = ArrayOfTables(*key, *node, file_name);
      if (!array.ok()) return array.status();
      for (const toml::node& element : **array) {
        absl::StatusOr<PublicKey> maintainer =
            ParseMaintainer(*element.as_table(), file_name, names);
        if (!maintainer.ok()) return maintainer.status();
        maintainers.push_back(*std::move(maintainer));
      }
    }
  }
  if (quorum_value == nullptr) {
    return absl::InvalidArgumentError(
        Cat(file_name, ":1:1: ",
            "the policy has no quorum (add e.g. `quorum = 2` at the top: the number of distinct "
            "operators that must agree)"));
  }
  if (absl::Status s = ValidateQuorum(quorum_value->get(), operators.size(), quorum_where);
      !s.ok()) {
    return s;
  }

  absl::StatusOr<Policy> policy =
      Create(static_cast<int>(quorum_value->get()), std::move(operators), std::move(maintainers));
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

std::string Policy::CanonicalText() const {
  // Members are already in canonical order (see Create).
  std::string text = Cat(kCanonicalHeader, "\nquorum ", quorum_, "\n");
  for (const Operator& op : operators_) {
    text += Cat("operator ", op.name, "\n");
    for (const PublicKey& key : op.builders) text += Cat("builder ", key.ToString(), "\n");
    // Kept in the operator's order: it is a preference. None: no line, so a policy without caches
    // keeps the text (and hash) it had before caches existed.
    for (const std::string& url : op.caches) text += Cat("cache ", url, "\n");
  }
  for (const PublicKey& key : maintainers_) {
    text += Cat("maintainer ", key.ToString(), "\n");
  }
  return text;
}

}  // namespace attest::consensus
