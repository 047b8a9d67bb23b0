#include "consensus/store_path.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "consensus/encoding.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

// The character set of Nix's checkName (libstore/path.cc), which every store path name obeys.
bool IsNameChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
         c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

absl::Status ValidateBaseName(std::string_view base_name, std::string_view shown) {
  // Checked first: "<path>/" and "<path>/bin/x" are the likeliest mistakes, and the other checks
  // would report them confusingly (as a bad name character or an over-long name).
  if (base_name.find('/') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("store path ", QuoteForError(shown),
            " has a trailing slash or a sub-path; give the store path itself, '", kStoreDir,
            "/<hash>-<name>'"));
  }
  if (base_name.size() < kStorePathHashLength + 1 || base_name[kStorePathHashLength] != '-') {
    return absl::InvalidArgumentError(Cat("store path ", QuoteForError(shown),
                                          " does not have the form '", kStoreDir,
                                          "/<32-character hash>-<name>'"));
  }
  const std::string_view hash = base_name.substr(0, kStorePathHashLength);
  for (size_t i = 0; i < hash.size(); ++i) {
    if (kNix32Alphabet.find(hash[i]) == std::string_view::npos) {
      return absl::InvalidArgumentError(
          Cat("store path ", QuoteForError(shown), " has ", QuoteForError(hash.substr(i, 1)),
              " in its hash part, which is not in the nix32 alphabet \"", kNix32Alphabet,
              "\" (no e, o, t, u, no upper case); is the hash part damaged or truncated?"));
    }
  }
  const std::string_view name = base_name.substr(kStorePathHashLength + 1);
  if (name.empty()) {
    return absl::InvalidArgumentError(
        Cat("store path ", QuoteForError(shown), " has an empty name after the hash part"));
  }
  if (name.size() > kMaxStorePathNameLength) {
    return absl::InvalidArgumentError(Cat("store path ", QuoteForError(shown), " has a name of ",
                                          name.size(), " characters; Nix allows at most ",
                                          kMaxStorePathNameLength));
  }
  if (name[0] == '.') {
    return absl::InvalidArgumentError(Cat("store path ", QuoteForError(shown),
                                          " has a name starting with '.', which Nix forbids"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(
          Cat("store path ", QuoteForError(shown), " has the character ",
              QuoteForError(std::string_view(&c, 1)),
              " in its name; Nix allows only letters, digits and + - . _ ? ="));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StorePath> StorePath::Parse(std::string_view full_path) {
  if (full_path.empty()) return absl::InvalidArgumentError("store path is empty");
  if (full_path[0] != '/') {
    return absl::InvalidArgumentError(Cat("store path ", QuoteForError(full_path),
                                          " is relative; expected an absolute path '", kStoreDir,
                                          "/<hash>-<name>'"));
  }
  const std::string prefix = Cat(kStoreDir, "/");
  if (!full_path.starts_with(prefix)) {
    return absl::InvalidArgumentError(
        Cat("path ", QuoteForError(full_path), " is not in the Nix store ", kStoreDir,
            " (other store directories are not supported: their paths and signatures differ)"));
  }
  if (absl::Status s = ValidateBaseName(full_path.substr(prefix.size()), full_path); !s.ok()) {
    return s;
  }
  return StorePath(std::string(full_path));
}

absl::StatusOr<StorePath> StorePath::ParseBaseName(std::string_view base_name) {
  if (base_name.empty()) return absl::InvalidArgumentError("store path base name is empty");
  if (base_name[0] == '/') {
    return absl::InvalidArgumentError(
        Cat("expected a store path base name '<hash>-<name>' but got the path ",
            QuoteForError(base_name)));
  }
  if (absl::Status s = ValidateBaseName(base_name, base_name); !s.ok()) return s;
  return StorePath(Cat(kStoreDir, "/", base_name));
}

std::string_view StorePath::hash_part() const {
  return std::string_view(full_).substr(kStoreDir.size() + 1, kStorePathHashLength);
}

std::string_view StorePath::name() const {
  return std::string_view(full_).substr(kStoreDir.size() + 1 + kStorePathHashLength + 1);
}

std::string_view StorePath::base_name() const {
  return std::string_view(full_).substr(kStoreDir.size() + 1);
}

bool StorePath::IsDerivation() const { return name().ends_with(".drv"); }

}  // namespace attest::consensus
