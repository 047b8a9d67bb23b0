#include "consensus/derivation.h"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kDeriveOpen = "Derive(";

// The character set Nix allows in store path names (and so in output names, which become part of them).
bool IsNameChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
         c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

bool IsLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Hex length of the digest of a hash algorithm Nix knows, or 0.
size_t HexLengthOf(std::string_view algorithm) {
  if (algorithm == "md5") return 32;
  if (algorithm == "sha1") return 40;
  if (algorithm == "sha256") return 64;
  if (algorithm == "sha512") return 128;
  return 0;
}

// A recursive-descent reader over the ATerm text. Every error names the byte offset where the problem
// starts, so a damaged file can be inspected with `cut -c` or a hex dump.
class DerivationReader final {
 public:
  DerivationReader(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  absl::StatusOr<Derivation> Read() {
    Derivation drv;
    if (text_.substr(0, 15) == "DrvWithVersion(") {
      return Error(0,
                   "this is the DrvWithVersion form of experimental dynamic derivations, which attest does "
                   "not read; only plain Derive(...) derivations are supported");
    }
    if (absl::Status s = Expect(kDeriveOpen); !s.ok()) return s;
    if (absl::Status s = ReadOutputs(drv.outputs); !s.ok()) return s;
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadInputDerivations(drv.input_derivations); !s.ok()) return s;
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadInputSources(drv.input_sources); !s.ok()) return s;
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadString(drv.platform); !s.ok()) return s;
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadString(drv.builder); !s.ok()) return s;
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadList([&] {
          std::string arg;
          absl::Status status = ReadString(arg);
          drv.args.push_back(std::move(arg));
          return status;
        });
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Expect(","); !s.ok()) return s;
    if (absl::Status s = ReadEnv(drv.env); !s.ok()) return s;
    if (absl::Status s = Expect(")"); !s.ok()) return s;
    if (pos_ != text_.size()) {
      return Error(pos_, Cat("unexpected ", Found(), " after the closing ')' of Derive(...); a .drv file ends "
                                                     "there (is the file damaged or two files joined?)"));
    }
    return drv;
  }

 private:
  absl::Status Error(size_t offset, std::string_view problem) const {
    return absl::InvalidArgumentError(Cat(source_, ": byte ", offset, ": ", problem));
  }

  // What is at the current position, for "expected X, found Y" messages.
  std::string Found() const {
    if (pos_ >= text_.size()) return "the end of the input";
    return QuoteForError(text_.substr(pos_, 12));
  }

  bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }

  absl::Status Expect(std::string_view literal) {
    if (text_.substr(pos_, literal.size()) != literal) {
      if (pos_ == 0 && literal == kDeriveOpen) {
        return Error(0, Cat("expected a derivation starting with \"Derive(\", found ", Found(),
                            " (is this a .drv file from a Nix store?)"));
      }
      return Error(pos_, Cat("expected '", literal, "', found ", Found()));
    }
    pos_ += literal.size();
    return absl::OkStatus();
  }

  // "[" [elem ("," elem)*] "]"; `element` reads one element at the current position.
  template <typename ReadElement>
  absl::Status ReadList(ReadElement element) {
    if (absl::Status s = Expect("["); !s.ok()) return s;
    if (Peek(']')) {
      ++pos_;
      return absl::OkStatus();
    }
    while (true) {
      if (absl::Status s = element(); !s.ok()) return s;
      if (Peek(',')) {
        ++pos_;
        continue;
      }
      if (Peek(']')) {
        ++pos_;
        return absl::OkStatus();
      }
      return Error(pos_, Cat("expected ',' or ']' in a list, found ", Found()));
    }
  }

  absl::Status ReadString(std::string& out) {
    out.clear();
    if (!Peek('"')) return Error(pos_, Cat("expected a string ('\"'), found ", Found()));
    ++pos_;
    const size_t size = text_.size();
    while (true) {
      // Copy the run of ordinary bytes in one go; most strings have no escapes at all.
      const size_t start = pos_;
      while (pos_ < size) {
        const char c = text_[pos_];
        if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t') break;
        ++pos_;
      }
      out.append(text_.data() + start, pos_ - start);
      if (pos_ >= size) return Error(pos_, "the input ends inside a string (missing closing '\"')");
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c != '\\') {
        return Error(pos_, Cat("raw ", c == '\n' ? "newline" : c == '\r' ? "carriage return" : "tab",
                               " inside a string; Nix writes it as an escape (\\n, \\r, \\t), so this is not a "
                               "file Nix wrote"));
      }
      if (pos_ + 1 >= size) return Error(pos_, "the input ends inside an escape sequence");
      switch (text_[pos_ + 1]) {
        case '"':
          out.push_back('"');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        default:
          return Error(pos_, Cat("unknown escape ", QuoteForError(text_.substr(pos_, 2)),
                                 " (Nix writes only \\\" \\\\ \\n \\r \\t)"));
      }
      pos_ += 2;
    }
  }

  absl::StatusOr<StorePath> ReadStorePath(std::string_view what) {
    const size_t at = pos_;
    std::string text;
    if (absl::Status s = ReadString(text); !s.ok()) return s;
    absl::StatusOr<StorePath> path = StorePath::Parse(text);
    if (!path.ok()) return Error(at, Cat(what, ": ", path.status().message()));
    return path;
  }

  absl::Status ReadOutputs(std::vector<DerivationOutput>& outputs) {
    absl::flat_hash_set<std::string> names;
    const size_t list_at = pos_;
    absl::Status status = ReadList([&]() -> absl::Status {
      DerivationOutput output;
      if (absl::Status s = Expect("("); !s.ok()) return s;
      const size_t name_at = pos_;
      if (absl::Status s = ReadString(output.name); !s.ok()) return s;
      if (output.name.empty() || !std::all_of(output.name.begin(), output.name.end(), IsNameChar)) {
        return Error(name_at, Cat("output name ", QuoteForError(output.name),
                                  " is not a valid name (letters, digits and + - . _ ? =, not empty)"));
      }
      if (!names.insert(output.name).second) {
        return Error(name_at, Cat("output ", QuoteForError(output.name), " appears twice"));
      }
      if (absl::Status s = Expect(","); !s.ok()) return s;
      const size_t path_at = pos_;
      std::string path;
      if (absl::Status s = ReadString(path); !s.ok()) return s;
      if (absl::Status s = Expect(","); !s.ok()) return s;
      const size_t algo_at = pos_;
      if (absl::Status s = ReadString(output.hash_algo); !s.ok()) return s;
      if (absl::Status s = Expect(","); !s.ok()) return s;
      const size_t hash_at = pos_;
      if (absl::Status s = ReadString(output.hash); !s.ok()) return s;
      if (absl::Status s = Expect(")"); !s.ok()) return s;

      if (!path.empty()) {
        absl::StatusOr<StorePath> parsed = StorePath::Parse(path);
        if (!parsed.ok()) {
          return Error(path_at, Cat("path of output ", QuoteForError(output.name), ": ", parsed.status().message()));
        }
        output.path = *std::move(parsed);
      }
      if (output.hash_algo.empty()) {
        if (!output.hash.empty()) {
          return Error(hash_at, Cat("output ", QuoteForError(output.name),
                                    " has a hash but no hash algorithm"));
        }
      } else {
        std::string_view algorithm = output.hash_algo;
        if (algorithm.substr(0, 2) == "r:") {
          algorithm.remove_prefix(2);
        } else if (algorithm.substr(0, 5) == "text:") {
          algorithm.remove_prefix(5);
        }
        const size_t hex_length = HexLengthOf(algorithm);
        if (hex_length == 0) {
          return Error(algo_at, Cat("output ", QuoteForError(output.name), " has the hash algorithm ",
                                    QuoteForError(output.hash_algo),
                                    "; expected md5, sha1, sha256 or sha512, optionally after r: or text:"));
        }
        if (!output.hash.empty()) {
          if (output.hash.size() != hex_length || !IsLowerHex(output.hash)) {
            return Error(hash_at, Cat("output ", QuoteForError(output.name), " has the hash ",
                                      QuoteForError(output.hash), "; expected ", hex_length,
                                      " lower-case hex digits for ", algorithm));
          }
          if (!output.path) {
            return Error(path_at, Cat("fixed-output output ", QuoteForError(output.name),
                                      " has a hash but no path"));
          }
        } else if (output.path) {
          return Error(path_at, Cat("floating content-addressed output ", QuoteForError(output.name),
                                    " has a path; Nix leaves it empty until the build"));
        }
      }
      outputs.push_back(std::move(output));
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    if (outputs.empty()) return Error(list_at, "the derivation has no outputs");
    return absl::OkStatus();
  }

  absl::Status ReadInputDerivations(std::vector<DerivationInput>& inputs) {
    absl::flat_hash_set<std::string> seen;
    return ReadList([&]() -> absl::Status {
      if (absl::Status s = Expect("("); !s.ok()) return s;
      const size_t path_at = pos_;
      absl::StatusOr<StorePath> path = ReadStorePath("input derivation");
      if (!path.ok()) return path.status();
      if (!path->IsDerivation()) {
        return Error(path_at, Cat("input derivation ", QuoteForError(path->full()), " does not end in .drv"));
      }
      if (!seen.insert(path->full()).second) {
        return Error(path_at, Cat("input derivation ", QuoteForError(path->full()), " appears twice"));
      }
      DerivationInput input{.drv_path = *std::move(path), .output_names = {}};
      if (absl::Status s = Expect(","); !s.ok()) return s;
      absl::flat_hash_set<std::string> names;
      if (absl::Status s = ReadList([&]() -> absl::Status {
            const size_t name_at = pos_;
            std::string name;
            if (absl::Status s = ReadString(name); !s.ok()) return s;
            if (name.empty()) return Error(name_at, "empty output name of an input derivation");
            if (!names.insert(name).second) {
              return Error(name_at, Cat("output ", QuoteForError(name), " of input derivation ",
                                        QuoteForError(input.drv_path.full()), " appears twice"));
            }
            input.output_names.push_back(std::move(name));
            return absl::OkStatus();
          });
          !s.ok()) {
        return s;
      }
      if (absl::Status s = Expect(")"); !s.ok()) return s;
      inputs.push_back(std::move(input));
      return absl::OkStatus();
    });
  }

  absl::Status ReadInputSources(std::vector<StorePath>& sources) {
    absl::flat_hash_set<std::string> seen;
    return ReadList([&]() -> absl::Status {
      const size_t at = pos_;
      absl::StatusOr<StorePath> path = ReadStorePath("input source");
      if (!path.ok()) return path.status();
      if (!seen.insert(path->full()).second) {
        return Error(at, Cat("input source ", QuoteForError(path->full()), " appears twice"));
      }
      sources.push_back(*std::move(path));
      return absl::OkStatus();
    });
  }

  absl::Status ReadEnv(std::vector<std::pair<std::string, std::string>>& env) {
    absl::flat_hash_set<std::string> seen;
    return ReadList([&]() -> absl::Status {
      if (absl::Status s = Expect("("); !s.ok()) return s;
      const size_t key_at = pos_;
      std::string key;
      std::string value;
      if (absl::Status s = ReadString(key); !s.ok()) return s;
      if (absl::Status s = Expect(","); !s.ok()) return s;
      if (absl::Status s = ReadString(value); !s.ok()) return s;
      if (absl::Status s = Expect(")"); !s.ok()) return s;
      if (!seen.insert(key).second) {
        return Error(key_at, Cat("environment variable ", QuoteForError(key), " appears twice"));
      }
      env.emplace_back(std::move(key), std::move(value));
      return absl::OkStatus();
    });
  }

  std::string_view text_;
  std::string_view source_;
  size_t pos_ = 0;
};

}  // namespace

DerivationOutput::Kind DerivationOutput::kind() const {
  if (hash_algo.empty()) return path ? Kind::kInputAddressed : Kind::kDeferred;
  return hash.empty() ? Kind::kFloating : Kind::kFixed;
}

const DerivationOutput* Derivation::FindOutput(std::string_view output_name) const {
  for (const DerivationOutput& output : outputs) {
    if (output.name == output_name) return &output;
  }
  return nullptr;
}

std::optional<std::string_view> Derivation::EnvValue(std::string_view key) const {
  for (const auto& [name, value] : env) {
    if (name == key) return value;
  }
  return std::nullopt;
}

std::string_view Derivation::name() const { return EnvValue("name").value_or(""); }

std::string Derivation::OutputPathName(std::string_view output_name) const {
  if (output_name == "out") return std::string(name());
  return Cat(name(), "-", output_name);
}

absl::StatusOr<Derivation> ParseDerivation(std::string_view text, std::string_view source) {
  return DerivationReader(text, source).Read();
}

}  // namespace attest::consensus
