// This file is long on purpose, for the reason below.
// Realisations in one file: keys, both fingerprint formats, the .doi files and the small strict JSON
// reader they need (consensus may not depend on a JSON library). The canonical writer, the direct
// canonical reader and the file reader must agree byte for byte, which is easiest to keep true side
// by side.
#include "consensus/realisation.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kDrvHashAlgorithm = "sha256";
constexpr size_t kDrvHashHexLength = 64;
constexpr std::string_view kDrvHashCachePrefix = "realisations/";
constexpr std::string_view kBuildTraceCachePrefix = "build-trace-v2/";
constexpr std::string_view kCacheSuffix = ".doi";

// The character set of Nix's store path names, which output names follow too.
bool IsNameChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
         c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

// `context` names what is validated ("realisation key '...'"); it is called only to word an error, so
// the valid keys a node reads by the million build no message.
absl::Status ValidateOutputName(std::string_view name, absl::FunctionRef<std::string()> context) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        Cat(context(), " has no output name; give the output after the separator, e.g. \"out\""));
  }
  if (name.size() > kMaxStorePathNameLength) {
    return absl::InvalidArgumentError(Cat(context(), " has an output name of ", name.size(),
                                          " characters; at most ", kMaxStorePathNameLength));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(
        Cat(context(), " has an output name starting with '.', which Nix forbids"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          Cat(context(), " has the character ", QuoteForError(std::string_view(&c, 1)),
              " in its output name; Nix allows only letters, digits and + - . _ ? ="));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateDrvHashHex(std::string_view hex, absl::FunctionRef<std::string()> context) {
  if (hex.size() != kDrvHashHexLength) {
    return absl::InvalidArgumentError(Cat(context(), " has a derivation hash of ", hex.size(),
                                          " characters; expected ", kDrvHashHexLength,
                                          " lower-case hex digits (sha256)"));
  }
  for (size_t i = 0; i < hex.size(); ++i) {
    const char c = hex[i];
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) continue;
    if (c >= 'A' && c <= 'F') {
      return absl::InvalidArgumentError(Cat(
          context(), " has an upper-case hex digit in its derivation hash; Nix writes lower case"));
    }
    return absl::InvalidArgumentError(
        Cat(context(), " has ", QuoteForError(hex.substr(i, 1)),
            " in its derivation hash, which is not a hex digit; expected 64 lower-case hex digits"));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// A small strict JSON reader (RFC 8259) for .doi files and fingerprints: objects keep their member
// order (the canonical check needs it), duplicate member names are refused, nesting is bounded.

struct JsonMember;

struct JsonValue final {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string text;  // string value, or a number's digits
  bool boolean = false;
  std::vector<JsonValue> items;
  // A std::pair of an incomplete type is not allowed (clang refuses it), hence a member struct.
  std::vector<JsonMember> members;

  const JsonValue* Find(std::string_view name) const;
};

struct JsonMember final {
  std::string first;  // the name
  JsonValue second;   // the value
};

const JsonValue* JsonValue::Find(std::string_view name) const {
  for (const auto& [member_name, value] : members) {
    if (member_name == name) return &value;
  }
  return nullptr;
}

std::string_view JsonKindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "a boolean";
    case JsonValue::Kind::kNumber:
      return "a number";
    case JsonValue::Kind::kString:
      return "a string";
    case JsonValue::Kind::kArray:
      return "an array";
    case JsonValue::Kind::kObject:
      return "an object";
  }
  return "a value";
}

constexpr int kMaxJsonDepth = 16;

class JsonReader final {
 public:
  explicit JsonReader(std::string_view input) : input_(input) {}

  // Reads one value (with surrounding white space); pos() is then just after it.
  absl::StatusOr<JsonValue> ReadValue() { return Value(0); }
  size_t pos() const { return pos_; }
  void SkipSpace() {
    while (pos_ < input_.size() && (input_[pos_] == ' ' || input_[pos_] == '\t' ||
                                    input_[pos_] == '\n' || input_[pos_] == '\r')) {
      ++pos_;
    }
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(Cat("not valid JSON: byte ", pos_, ": ", what));
  }

  absl::StatusOr<JsonValue> Value(int depth) {
    if (depth > kMaxJsonDepth) return Error(Cat("nested deeper than ", kMaxJsonDepth, " levels"));
    SkipSpace();
    if (pos_ >= input_.size()) return Error("unexpected end of input; expected a value");
    JsonValue value;
    const char c = input_[pos_];
    if (c == '{') {
      value.kind = JsonValue::Kind::kObject;
      ++pos_;
      SkipSpace();
      if (pos_ < input_.size() && input_[pos_] == '}') {
        ++pos_;
        return value;
      }
      while (true) {
        SkipSpace();
        if (pos_ >= input_.size() || input_[pos_] != '"') return Error("expected a member name");
        auto name = String();
        if (!name.ok()) return name.status();
        SkipSpace();
        if (pos_ >= input_.size() || input_[pos_] != ':') return Error("expected ':' after a member name");
        ++pos_;
        auto member = Value(depth + 1);
        if (!member.ok()) return member.status();
        value.members.push_back(JsonMember{std::move(*name), std::move(*member)});
        SkipSpace();
        if (pos_ < input_.size() && input_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < input_.size() && input_[pos_] == '}') {
          ++pos_;
          if (absl::Status s = CheckUniqueNames(value); !s.ok()) return s;
          return value;
        }
        return Error("expected ',' or '}' in an object");
      }
    }
    if (c == '[') {
      value.kind = JsonValue::Kind::kArray;
      ++pos_;
      SkipSpace();
      if (pos_ < input_.size() && input_[pos_] == ']') {
        ++pos_;
        return value;
      }
      while (true) {
        auto item = Value(depth + 1);
        if (!item.ok()) return item.status();
        value.items.push_back(std::move(*item));
        SkipSpace();
        if (pos_ < input_.size() && input_[pos_] == ',') {
          ++pos_;
          continue;
        }
        if (pos_ < input_.size() && input_[pos_] == ']') {
          ++pos_;
          return value;
        }
        return Error("expected ',' or ']' in an array");
      }
    }
    if (c == '"') {
      value.kind = JsonValue::Kind::kString;
      auto text = String();
      if (!text.ok()) return text.status();
      value.text = std::move(*text);
      return value;
    }
    for (std::string_view literal : {"null", "true", "false"}) {
      if (input_.substr(pos_).starts_with(literal)) {
        pos_ += literal.size();
        value.kind = literal == "null" ? JsonValue::Kind::kNull : JsonValue::Kind::kBool;
        value.boolean = literal == "true";
        return value;
      }
    }
    if (c == '-' || (c >= '0' && c <= '9')) return Number();
    return Error(Cat("unexpected ", QuoteForError(input_.substr(pos_, 1))));
  }

  // Sorted once the object is complete (n log n: a hostile file may have many members).
  absl::Status CheckUniqueNames(const JsonValue& object) const {
    std::vector<const std::string*> names;
    names.reserve(object.members.size());
    for (const auto& member : object.members) names.push_back(&member.first);
    std::sort(names.begin(), names.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
    for (size_t i = 1; i < names.size(); ++i) {
      if (*names[i] == *names[i - 1]) return Error(Cat("duplicate member name ", QuoteForError(*names[i])));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<JsonValue> Number() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < input_.size() && input_[pos_] >= '0' && input_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (input_[pos_] == '-') ++pos_;
    if (pos_ < input_.size() && input_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("a number needs digits");
    }
    if (pos_ < input_.size() && input_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Error("a number needs digits after '.'");
    }
    if (pos_ < input_.size() && (input_[pos_] == 'e' || input_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < input_.size() && (input_[pos_] == '+' || input_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Error("a number needs digits in its exponent");
    }
    JsonValue value;
    value.kind = JsonValue::Kind::kNumber;
    value.text = std::string(input_.substr(start, pos_ - start));
    return value;
  }

  static void AppendUtf8(char32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::optional<char32_t> Hex4() {
    if (input_.size() - pos_ < 4) return std::nullopt;
    char32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = input_[pos_ + i];
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      cp = cp * 16 + digit;
    }
    pos_ += 4;
    return cp;
  }

  // At '"': reads the string and its closing quote.
  absl::StatusOr<std::string> String() {
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= input_.size()) return Error("unterminated string");
      const char c = input_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character inside a string");
      if (c != '\\' && static_cast<unsigned char>(c) < 0x80) {
        out += c;
        ++pos_;
        continue;
      }
      if (c != '\\') {
        size_t length = 0;
        if (!DecodeUtf8(input_, pos_, length).has_value()) return Error("invalid UTF-8 in a string");
        out.append(input_.substr(pos_, length));
        pos_ += length;
        continue;
      }
      ++pos_;
      if (pos_ >= input_.size()) return Error("unterminated escape");
      const char e = input_[pos_++];
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::optional<char32_t> cp = Hex4();
          if (!cp.has_value()) return Error("\\u needs four hex digits");
          if (*cp >= 0xD800 && *cp < 0xDC00) {
            if (!input_.substr(pos_).starts_with("\\u")) return Error("unpaired surrogate in \\u escape");
            pos_ += 2;
            std::optional<char32_t> low = Hex4();
            if (!low.has_value() || *low < 0xDC00 || *low >= 0xE000) {
              return Error("unpaired surrogate in \\u escape");
            }
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
          } else if (*cp >= 0xDC00 && *cp < 0xE000) {
            return Error("unpaired surrogate in \\u escape");
          }
          AppendUtf8(*cp, out);
          break;
        }
        default:
          return Error(Cat("unknown escape \\", QuoteForError(std::string_view(&e, 1))));
      }
    }
  }

  std::string_view input_;
  size_t pos_ = 0;
};

// JSON string text as nlohmann::json::dump writes it (", \ and control characters escaped).
std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xF];
          out += kHex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading a realisation out of parsed JSON (shared by the fingerprint and the .doi parsers).

enum class Source { kFingerprint, kFile };

absl::Status CheckMembers(const JsonValue& object, std::string_view what,
                          std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : object.members) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string list;
      for (std::string_view a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", AbslView(a));
      return absl::InvalidArgumentError(Cat(what, " has the unknown member ", QuoteForError(name),
                                            "; expected only ", list));
    }
  }
  return absl::OkStatus();
}

enum class Need { kRequired, kOptional };

// The member `name` of `object` (nullptr when optional and absent), of the given kind.
absl::StatusOr<const JsonValue*> Member(const JsonValue& object, std::string_view what,
                                        std::string_view name, JsonValue::Kind kind, Need need) {
  const JsonValue* value = object.Find(name);
  if (value == nullptr) {
    if (need == Need::kOptional) return nullptr;
    return absl::InvalidArgumentError(Cat(what, " has no \"", name, "\" member"));
  }
  if (value->kind != kind) {
    return absl::InvalidArgumentError(Cat(what, " member \"", name, "\" is ",
                                          JsonKindName(value->kind), "; expected ",
                                          JsonKindName(kind)));
  }
  return value;
}

absl::StatusOr<StorePath> ParseBaseNameField(std::string_view what, std::string_view text) {
  auto path = StorePath::ParseBaseName(text);
  if (!path.ok()) return absl::InvalidArgumentError(Cat(what, ": ", path.status().message()));
  return path;
}

absl::Status ParseSignatures(const JsonValue& array, Source source, std::vector<Signature>* out) {
  if (source == Source::kFingerprint) {
    return absl::InvalidArgumentError(
        "a realisation fingerprint has no \"signatures\" member (Nix signs the realisation without "
        "its signatures); is this a .doi file?");
  }
  for (size_t i = 0; i < array.items.size(); ++i) {
    const JsonValue& item = array.items[i];
    std::string text;
    if (item.kind == JsonValue::Kind::kString) {
      text = item.text;  // "<name>:<base64>", as Nix 2.8 writes it (and 2.35 still reads)
    } else if (item.kind == JsonValue::Kind::kObject) {
      const std::string what = Cat("signature ", i + 1);
      if (absl::Status s = CheckMembers(item, what, {"keyName", "sig"}); !s.ok()) return s;
      auto name = Member(item, what, "keyName", JsonValue::Kind::kString, Need::kRequired);
      if (!name.ok()) return name.status();
      auto sig = Member(item, what, "sig", JsonValue::Kind::kString, Need::kRequired);
      if (!sig.ok()) return sig.status();
      if ((*name)->text.find(':') != std::string::npos) {
        return absl::InvalidArgumentError(Cat(what, " has a key name with ':', which Nix forbids"));
      }
      text = Cat((*name)->text, ":", (*sig)->text);
    } else {
      return absl::InvalidArgumentError(Cat("signature ", i + 1, " is ", JsonKindName(item.kind),
                                            "; expected \"<key name>:<base64>\" or "
                                            "{\"keyName\":...,\"sig\":...}"));
    }
    auto signature = Signature::Parse(text);
    if (!signature.ok()) {
      return absl::InvalidArgumentError(
          Cat("signature ", i + 1, ": ", signature.status().message()));
    }
    out->push_back(*std::move(signature));
  }
  return absl::OkStatus();
}

// Nix 2.8: {"dependentRealisations":{...},"id":"...","outPath":"...","signatures":[...]}.
absl::StatusOr<Realisation> ReadDrvHashRealisation(const JsonValue& object, Source source,
                                                   std::vector<Signature>* signatures) {
  constexpr std::string_view kWhat = "realisation (Nix 2.8 format)";
  if (absl::Status s = CheckMembers(object, kWhat, {"dependentRealisations", "id", "outPath", "signatures"});
      !s.ok()) {
    return s;
  }
  auto id = Member(object, kWhat, "id", JsonValue::Kind::kString, Need::kRequired);
  if (!id.ok()) return id.status();
  auto key = RealisationKey::Parse((*id)->text);
  if (!key.ok()) return absl::InvalidArgumentError(Cat("realisation \"id\": ", key.status().message()));
  if (key->format() != RealisationFormat::kDrvHash) {
    return absl::InvalidArgumentError(
        Cat("realisation \"id\" ", QuoteForError((*id)->text),
            " is a Nix 2.35 key; the Nix 2.8 format has 'sha256:<hex>!<output>' ids"));
  }
  auto out = Member(object, kWhat, "outPath", JsonValue::Kind::kString, Need::kRequired);
  if (!out.ok()) return out.status();
  auto out_path = ParseBaseNameField("realisation \"outPath\"", (*out)->text);
  if (!out_path.ok()) return out_path.status();

  std::vector<std::pair<std::string, StorePath>> dependent;
  auto deps = Member(object, kWhat, "dependentRealisations", JsonValue::Kind::kObject, Need::kOptional);
  if (!deps.ok()) return deps.status();
  if (*deps != nullptr) {
    if ((*deps)->members.size() > kMaxDependentRealisations) {
      return absl::InvalidArgumentError(Cat("realisation has ", (*deps)->members.size(),
                                            " dependent realisations; at most ",
                                            kMaxDependentRealisations));
    }
    for (const auto& [dep_key_text, dep_value] : (*deps)->members) {
      const std::string what = Cat("dependent realisation ", QuoteForError(dep_key_text));
      if (dep_value.kind != JsonValue::Kind::kString) {
        return absl::InvalidArgumentError(
            Cat(what, " is ", JsonKindName(dep_value.kind), "; expected an output path base name"));
      }
      auto dep_path = ParseBaseNameField(what, dep_value.text);
      if (!dep_path.ok()) return dep_path.status();
      dependent.emplace_back(dep_key_text, *std::move(dep_path));
    }
    // A .doi may list them in any order (the fingerprint is rebuilt sorted); a fingerprint must
    // already be sorted, which Create checks.
    if (source == Source::kFile) std::sort(dependent.begin(), dependent.end());
  }
  auto sigs = Member(object, kWhat, "signatures", JsonValue::Kind::kArray, Need::kOptional);
  if (!sigs.ok()) return sigs.status();
  if (*sigs != nullptr) {
    if (absl::Status s = ParseSignatures(**sigs, source, signatures); !s.ok()) return s;
  }
  return Realisation::Create(*std::move(key), *std::move(out_path), std::move(dependent));
}

// Nix 2.35: {"key":{"drvPath":"...","outputName":"..."},"value":{"outPath":"...","signatures":[...]}}.
absl::StatusOr<Realisation> ReadBuildTraceRealisation(const JsonValue& object, Source source,
                                                      std::vector<Signature>* signatures) {
  constexpr std::string_view kWhat = "realisation (Nix 2.35 format)";
  if (absl::Status s = CheckMembers(object, kWhat, {"key", "value"}); !s.ok()) return s;
  auto key_object = Member(object, kWhat, "key", JsonValue::Kind::kObject, Need::kRequired);
  if (!key_object.ok()) return key_object.status();
  constexpr std::string_view kKeyWhat = "realisation \"key\"";
  if (absl::Status s = CheckMembers(**key_object, kKeyWhat, {"drvPath", "outputName"}); !s.ok()) return s;
  auto drv = Member(**key_object, kKeyWhat, "drvPath", JsonValue::Kind::kString, Need::kRequired);
  if (!drv.ok()) return drv.status();
  auto output = Member(**key_object, kKeyWhat, "outputName", JsonValue::Kind::kString, Need::kRequired);
  if (!output.ok()) return output.status();
  auto drv_path = ParseBaseNameField("realisation \"drvPath\"", (*drv)->text);
  if (!drv_path.ok()) return drv_path.status();
  auto key = RealisationKey::FromDrvPath(*drv_path, (*output)->text);
  if (!key.ok()) return key.status();

  auto value_object = Member(object, kWhat, "value", JsonValue::Kind::kObject, Need::kRequired);
  if (!value_object.ok()) return value_object.status();
  constexpr std::string_view kValueWhat = "realisation \"value\"";
  if (absl::Status s = CheckMembers(**value_object, kValueWhat, {"outPath", "signatures"}); !s.ok()) {
    return s;
  }
  auto out = Member(**value_object, kValueWhat, "outPath", JsonValue::Kind::kString, Need::kRequired);
  if (!out.ok()) return out.status();
  auto out_path = ParseBaseNameField("realisation \"outPath\"", (*out)->text);
  if (!out_path.ok()) return out_path.status();
  auto sigs = Member(**value_object, kValueWhat, "signatures", JsonValue::Kind::kArray, Need::kOptional);
  if (!sigs.ok()) return sigs.status();
  if (*sigs != nullptr) {
    if (absl::Status s = ParseSignatures(**sigs, source, signatures); !s.ok()) return s;
  }
  return Realisation::Create(*std::move(key), *std::move(out_path));
}

absl::StatusOr<Realisation> ReadRealisation(const JsonValue& value, Source source,
                                            std::vector<Signature>* signatures) {
  if (value.kind != JsonValue::Kind::kObject) {
    return absl::InvalidArgumentError(
        Cat("a realisation is a JSON object, not ", JsonKindName(value.kind)));
  }
  if (value.Find("key") != nullptr || value.Find("value") != nullptr) {
    return ReadBuildTraceRealisation(value, source, signatures);
  }
  if (value.Find("id") != nullptr) return ReadDrvHashRealisation(value, source, signatures);
  return absl::InvalidArgumentError(
      "realisation JSON has neither \"id\" (Nix 2.8 format) nor \"key\" and \"value\" (Nix 2.35 "
      "format)");
}

std::string DescribeByte(std::string_view s, size_t i) {
  if (i >= s.size()) return "the end of the text";
  return QuoteForError(s.substr(i, 1));
}

}  // namespace

std::string_view RealisationFormatName(RealisationFormat format) {
  switch (format) {
    case RealisationFormat::kDrvHash:
      return "nix-2.8";
    case RealisationFormat::kBuildTrace:
      return "build-trace-v2";
  }
  return "unknown";
}

// --- RealisationKey ----------------------------------------------------------------------------

absl::StatusOr<RealisationKey> RealisationKey::Parse(std::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("realisation key is empty");
  auto context = [text] { return Cat("realisation key ", QuoteForError(text)); };
  const size_t bangs = std::count(text.begin(), text.end(), '!');
  const size_t carets = std::count(text.begin(), text.end(), '^');
  if (bangs > 0 && carets > 0) {
    return absl::InvalidArgumentError(
        Cat(context(), " mixes '!' (Nix 2.8: 'sha256:<hex>!<output>') and '^' (Nix 2.35: "
                     "'/nix/store/<hash>-<name>.drv^<output>'); use one of the two forms"));
  }
  if (bangs > 1 || carets > 1) {
    return absl::InvalidArgumentError(
        Cat(context(), " has more than one '", bangs > 1 ? "!" : "^",
            "'; a key names exactly one output of one derivation"));
  }
  if (bangs == 0 && carets == 0) {
    return absl::InvalidArgumentError(
        Cat(context(), " is not a realisation key: expected 'sha256:<64 hex digits>!<output>' (Nix "
                     "2.8) or '/nix/store/<hash>-<name>.drv^<output>' (Nix 2.35)"));
  }
  if (bangs == 1) {
    const size_t bang = text.find('!');
    const std::string_view hash = text.substr(0, bang);
    const size_t colon = hash.find(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat(context(), " has no hash algorithm; expected 'sha256:<64 hex digits>!<output>'"));
    }
    if (hash.substr(0, colon) != kDrvHashAlgorithm) {
      return absl::InvalidArgumentError(
          Cat(context(), " has the hash algorithm ", QuoteForError(hash.substr(0, colon)),
              "; Nix 2.8 realisation keys use sha256"));
    }
    if (absl::Status s = ValidateDrvHashHex(hash.substr(colon + 1), context); !s.ok()) return s;
    if (absl::Status s = ValidateOutputName(text.substr(bang + 1), context); !s.ok()) return s;
    RealisationKey key;
    key.format_ = RealisationFormat::kDrvHash;
    key.drv_hash_ = std::string(hash.substr(colon + 1));
    key.output_name_ = std::string(text.substr(bang + 1));
    return key;
  }
  const size_t caret = text.find('^');
  const std::string_view drv_text = text.substr(0, caret);
  if (drv_text.empty()) {
    return absl::InvalidArgumentError(Cat(context(), " has no derivation path before '^'"));
  }
  absl::StatusOr<StorePath> drv =
      drv_text[0] == '/' ? StorePath::Parse(drv_text) : StorePath::ParseBaseName(drv_text);
  if (!drv.ok()) {
    return absl::InvalidArgumentError(Cat(context(), ": ", drv.status().message()));
  }
  if (absl::Status s = ValidateOutputName(text.substr(caret + 1), context); !s.ok()) return s;
  return FromDrvPath(*drv, text.substr(caret + 1));
}

bool RealisationKey::LooksLikeKey(std::string_view text) {
  return text.find('!') != std::string_view::npos || text.find('^') != std::string_view::npos;
}

absl::StatusOr<RealisationKey> RealisationKey::FromDrvHash(std::string_view hex_hash,
                                                           std::string_view output_name) {
  auto context = [hex_hash, output_name] {
    return Cat("realisation key 'sha256:", QuoteForError(hex_hash), "!", QuoteForError(output_name), "'");
  };
  if (absl::Status s = ValidateDrvHashHex(hex_hash, context); !s.ok()) return s;
  if (absl::Status s = ValidateOutputName(output_name, context); !s.ok()) return s;
  RealisationKey key;
  key.format_ = RealisationFormat::kDrvHash;
  key.drv_hash_ = std::string(hex_hash);
  key.output_name_ = std::string(output_name);
  return key;
}

absl::StatusOr<RealisationKey> RealisationKey::FromDrvPath(const StorePath& drv_path,
                                                           std::string_view output_name) {
  auto context = [&drv_path, output_name] {
    return Cat("realisation key '", drv_path.full(), "^", QuoteForError(output_name), "'");
  };
  if (!drv_path.IsDerivation()) {
    return absl::InvalidArgumentError(
        Cat(context(), ": ", drv_path.full(),
            " is not a .drv store path; a Nix 2.35 key names the derivation that was built"));
  }
  if (absl::Status s = ValidateOutputName(output_name, context); !s.ok()) return s;
  RealisationKey key;
  key.format_ = RealisationFormat::kBuildTrace;
  key.drv_path_ = drv_path;
  key.output_name_ = std::string(output_name);
  return key;
}

const StorePath& RealisationKey::drv_path() const { return *drv_path_; }

std::string RealisationKey::ToString() const {
  if (format_ == RealisationFormat::kDrvHash) {
    return Cat(kDrvHashAlgorithm, ":", drv_hash_, "!", output_name_);
  }
  return Cat(drv_path_->full(), "^", output_name_);
}

std::string RealisationKey::ExpectedOutPathName() const {
  if (format_ != RealisationFormat::kBuildTrace) return "";
  std::string_view drv_name = drv_path_->name();
  drv_name.remove_suffix(std::string_view(".drv").size());
  if (output_name_ == "out") return std::string(drv_name);
  return Cat(drv_name, "-", output_name_);
}

std::string RealisationKey::CachePath() const {
  if (format_ == RealisationFormat::kDrvHash) return Cat(kDrvHashCachePrefix, ToString(), kCacheSuffix);
  return Cat(kBuildTraceCachePrefix, drv_path_->base_name(), "/", output_name_, kCacheSuffix);
}

absl::StatusOr<RealisationKey> ParseRealisationCachePath(std::string_view path) {
  const std::string context = Cat("realisation cache path ", QuoteForError(path));
  if (!path.ends_with(kCacheSuffix)) {
    return absl::InvalidArgumentError(Cat(context, " does not end in \".doi\""));
  }
  std::string_view body = path.substr(0, path.size() - kCacheSuffix.size());
  if (body.starts_with(kDrvHashCachePrefix)) {
    body.remove_prefix(kDrvHashCachePrefix.size());
    auto key = RealisationKey::Parse(body);
    if (!key.ok()) return absl::InvalidArgumentError(Cat(context, ": ", key.status().message()));
    if (key->format() != RealisationFormat::kDrvHash) {
      return absl::InvalidArgumentError(
          Cat(context, ": realisations/ holds Nix 2.8 keys 'sha256:<hex>!<output>'"));
    }
    return key;
  }
  if (body.starts_with(kBuildTraceCachePrefix)) {
    body.remove_prefix(kBuildTraceCachePrefix.size());
    const size_t slash = body.find('/');
    if (slash == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat(context, " is not 'build-trace-v2/<drv base name>/<output>.doi'"));
    }
    auto drv = StorePath::ParseBaseName(body.substr(0, slash));
    if (!drv.ok()) return absl::InvalidArgumentError(Cat(context, ": ", drv.status().message()));
    auto key = RealisationKey::FromDrvPath(*drv, body.substr(slash + 1));
    if (!key.ok()) return absl::InvalidArgumentError(Cat(context, ": ", key.status().message()));
    return key;
  }
  return absl::InvalidArgumentError(
      Cat(context, " is neither 'realisations/<key>.doi' nor 'build-trace-v2/<drv>/<output>.doi'"));
}

// --- Realisation -------------------------------------------------------------------------------

absl::StatusOr<Realisation> Realisation::Create(RealisationKey key, StorePath out_path,
                                                std::vector<std::pair<std::string, StorePath>> dependent) {
  if (key.format() == RealisationFormat::kBuildTrace) {
    if (!dependent.empty()) {
      return absl::InvalidArgumentError(
          Cat("realisation ", key.ToString(),
              " has dependent realisations; only the Nix 2.8 format carries them"));
    }
    const std::string expected = key.ExpectedOutPathName();
    if (out_path.name() != expected) {
      return absl::InvalidArgumentError(
          Cat("output path ", out_path.full(), " is not named ", expected, ", as derivation ",
              key.drv_path().full(), " names its output ", key.output_name()));
    }
  }
  if (dependent.size() > kMaxDependentRealisations) {
    return absl::InvalidArgumentError(Cat("realisation ", key.ToString(), " has ", dependent.size(),
                                          " dependent realisations; at most ",
                                          kMaxDependentRealisations));
  }
  for (size_t i = 0; i < dependent.size(); ++i) {
    const std::string& dep = dependent[i].first;
    auto dep_key = RealisationKey::Parse(dep);
    if (!dep_key.ok()) {
      return absl::InvalidArgumentError(Cat("dependent realisation: ", dep_key.status().message()));
    }
    if (dep_key->format() != RealisationFormat::kDrvHash) {
      return absl::InvalidArgumentError(
          Cat("dependent realisation key ", QuoteForError(dep),
              " is in the Nix 2.35 format; dependentRealisations hold only Nix 2.8 keys "
              "'sha256:<hex>!<output>'"));
    }
    if (dep_key->ToString() != dep) {
      return absl::InvalidArgumentError(
          Cat("dependent realisation key ", QuoteForError(dep), " is not canonical; expected ",
              dep_key->ToString()));
    }
    if (i > 0 && !(dependent[i - 1].first < dep)) {
      return absl::InvalidArgumentError(
          Cat("dependent realisation key ", QuoteForError(dep),
              dependent[i - 1].first == dep ? " appears twice" : " is not sorted",
              "; dependentRealisations keys are unique and sorted byte-wise"));
    }
  }
  return Realisation{std::move(key), std::move(out_path), std::move(dependent)};
}

std::string Realisation::Fingerprint() const {
  // All parts are validated keys and store path names: nothing needs JSON escaping.
  if (key.format() == RealisationFormat::kBuildTrace) {
    return Cat("{\"key\":{\"drvPath\":\"", key.drv_path().base_name(), "\",\"outputName\":\"",
               key.output_name(), "\"},\"value\":{\"outPath\":\"", out_path.base_name(), "\"}}");
  }
  std::string text = "{\"dependentRealisations\":{";
  for (size_t i = 0; i < dependent.size(); ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ",", "\"", dependent[i].first, "\":\"",
                    AbslView(dependent[i].second.base_name()), "\"");
  }
  absl::StrAppend(&text, "},\"id\":\"", key.ToString(), "\",\"outPath\":\"",
                  AbslView(out_path.base_name()), "\"}");
  return text;
}

namespace {

// Consumes `literal` at the front of `rest`.
bool Take(std::string_view& rest, std::string_view literal) {
  if (!rest.starts_with(literal)) return false;
  rest.remove_prefix(literal.size());
  return true;
}

// Consumes a JSON string's contents up to its closing quote, when it needs no escape (keys and store
// path names never do); nullopt otherwise.
std::optional<std::string_view> TakePlainString(std::string_view& rest) {
  for (size_t i = 0; i < rest.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(rest[i]);
    if (c == '"') {
      const std::string_view value = rest.substr(0, i);
      rest.remove_prefix(i + 1);
      return value;
    }
    if (c == '\\' || c < 0x20 || c >= 0x80) return std::nullopt;
  }
  return std::nullopt;
}

// The canonical fingerprint shapes, read directly: what every stored and every honestly signed
// fingerprint is, so reading one back costs no general JSON parse. nullopt when `text` is anything
// else (then the JSON reader says precisely what is wrong). Every part is still validated (key, store
// path names, Create's rules) and the result must give `text` back.
std::optional<Realisation> ParseCanonicalFingerprint(std::string_view text) {
  std::string_view rest = text;
  std::optional<Realisation> claim;
  if (Take(rest, "{\"key\":{\"drvPath\":\"")) {
    const auto drv = TakePlainString(rest);
    if (!drv || !Take(rest, ",\"outputName\":\"")) return std::nullopt;
    const auto output = TakePlainString(rest);
    if (!output || !Take(rest, "},\"value\":{\"outPath\":\"")) return std::nullopt;
    const auto out = TakePlainString(rest);
    if (!out || rest != "}}") return std::nullopt;
    auto drv_path = StorePath::ParseBaseName(*drv);
    if (!drv_path.ok()) return std::nullopt;
    auto key = RealisationKey::FromDrvPath(*drv_path, *output);
    auto out_path = StorePath::ParseBaseName(*out);
    if (!key.ok() || !out_path.ok()) return std::nullopt;
    auto made = Realisation::Create(*std::move(key), *std::move(out_path));
    if (!made.ok()) return std::nullopt;
    claim = *std::move(made);
  } else if (Take(rest, "{\"dependentRealisations\":{")) {
    std::vector<std::pair<std::string, StorePath>> dependent;
    if (!Take(rest, "}")) {
      while (true) {
        if (!Take(rest, "\"")) return std::nullopt;
        const auto id = TakePlainString(rest);
        if (!id || !Take(rest, ":\"")) return std::nullopt;
        const auto base = TakePlainString(rest);
        if (!base) return std::nullopt;
        auto path = StorePath::ParseBaseName(*base);
        if (!path.ok()) return std::nullopt;
        dependent.emplace_back(std::string(*id), *std::move(path));
        if (Take(rest, "}")) break;
        if (!Take(rest, ",")) return std::nullopt;
      }
    }
    if (!Take(rest, ",\"id\":\"")) return std::nullopt;
    const auto id = TakePlainString(rest);
    if (!id || !Take(rest, ",\"outPath\":\"")) return std::nullopt;
    const auto out = TakePlainString(rest);
    if (!out || rest != "}") return std::nullopt;
    auto key = RealisationKey::Parse(*id);
    auto out_path = StorePath::ParseBaseName(*out);
    if (!key.ok() || !out_path.ok() || key->format() != RealisationFormat::kDrvHash) return std::nullopt;
    auto made = Realisation::Create(*std::move(key), *std::move(out_path), std::move(dependent));
    if (!made.ok()) return std::nullopt;
    claim = *std::move(made);
  } else {
    return std::nullopt;
  }
  if (claim->Fingerprint() != text) return std::nullopt;
  return claim;
}

}  // namespace

absl::StatusOr<Realisation> Realisation::ParseFingerprint(std::string_view text) {
  if (std::optional<Realisation> canonical = ParseCanonicalFingerprint(text)) return *std::move(canonical);
  JsonReader reader(text);
  auto value = reader.ReadValue();
  if (!value.ok()) {
    return absl::InvalidArgumentError(Cat("realisation fingerprint: ", value.status().message()));
  }
  auto claim = ReadRealisation(*value, Source::kFingerprint, nullptr);
  if (!claim.ok()) {
    return absl::InvalidArgumentError(Cat("realisation fingerprint: ", claim.status().message()));
  }
  const std::string canonical = claim->Fingerprint();
  if (canonical != text) {
    size_t i = 0;
    while (i < canonical.size() && i < text.size() && canonical[i] == text[i]) ++i;
    return absl::InvalidArgumentError(
        Cat("realisation fingerprint is not in the exact bytes Nix signs (compact JSON, members "
            "sorted, no spaces or escapes): byte ",
            i, ": expected ", DescribeByte(canonical, i), ", found ", DescribeByte(text, i)));
  }
  return claim;
}

// --- Signing -----------------------------------------------------------------------------------

RealisationAttestation SignRealisation(const Realisation& claim, const SecretKey& key,
                                       BuildMetadata metadata) {
  return RealisationAttestation{claim, key.Sign(claim.Fingerprint()), std::move(metadata)};
}

absl::Status VerifyRealisation(const RealisationAttestation& attestation, const PublicKey& key) {
  absl::Status status = key.Verify(attestation.claim.Fingerprint(), attestation.signature);
  if (status.ok()) return status;
  return absl::UnauthenticatedError(
      Cat("realisation ", attestation.claim.key.ToString(), ": ", status.message()));
}

absl::Status ValidateRealisationMetadata(const Realisation& claim, const BuildMetadata& metadata) {
  if (absl::Status s = ValidateBuildMetadata(metadata); !s.ok()) return s;
  if (!metadata.deriver.empty() && claim.key.format() == RealisationFormat::kBuildTrace &&
      metadata.deriver != claim.key.drv_path().full()) {
    return absl::InvalidArgumentError(
        Cat("build metadata deriver ", metadata.deriver, " is not the derivation ",
            claim.key.drv_path().full(), " of realisation key ", claim.key.ToString()));
  }
  if (!metadata.output_name.empty() && metadata.output_name != claim.key.output_name()) {
    return absl::InvalidArgumentError(
        Cat("build metadata output name ", QuoteForError(metadata.output_name),
            " is not the output ", claim.key.output_name(), " of realisation key ",
            claim.key.ToString()));
  }
  return absl::OkStatus();
}

// --- .doi files --------------------------------------------------------------------------------

absl::StatusOr<RealisationFile> ParseRealisationFile(std::string_view json) {
  JsonReader reader(json);
  auto value = reader.ReadValue();
  if (!value.ok()) {
    return absl::InvalidArgumentError(Cat("realisation file: ", value.status().message()));
  }
  reader.SkipSpace();
  if (reader.pos() != json.size()) {
    return absl::InvalidArgumentError(
        Cat("realisation file: not valid JSON: byte ", reader.pos(),
            ": unexpected text after the JSON value"));
  }
  std::vector<Signature> signatures;
  auto claim = ReadRealisation(*value, Source::kFile, &signatures);
  if (!claim.ok()) {
    return absl::InvalidArgumentError(Cat("realisation file: ", claim.status().message()));
  }
  return RealisationFile{*std::move(claim), std::move(signatures)};
}

std::string FormatRealisationFile(const Realisation& claim, std::span<const Signature> signatures) {
  std::string fingerprint = claim.Fingerprint();
  // Both formats end the signed object with '}' ("}}" for 2.35); the signatures go just before.
  std::string sigs;
  for (size_t i = 0; i < signatures.size(); ++i) {
    const Signature& sig = signatures[i];
    if (i > 0) sigs += ',';
    if (claim.key.format() == RealisationFormat::kDrvHash) {
      sigs += JsonQuote(sig.ToString());
    } else {
      const std::string text = sig.ToString();
      const std::string_view base64 = std::string_view(text).substr(sig.key_name.size() + 1);
      absl::StrAppend(&sigs, "{\"keyName\":", JsonQuote(sig.key_name), ",\"sig\":",
                      JsonQuote(base64), "}");
    }
  }
  const size_t cut = claim.key.format() == RealisationFormat::kDrvHash ? fingerprint.size() - 1
                                                                       : fingerprint.size() - 2;
  return Cat(std::string_view(fingerprint).substr(0, cut), ",\"signatures\":[", sigs, "]",
             std::string_view(fingerprint).substr(cut));
}

}  // namespace attest::consensus
