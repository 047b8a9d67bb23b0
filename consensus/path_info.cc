#include "consensus/path_info.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

absl::Status FingerprintError(std::string_view fingerprint, std::string_view what) {
  return absl::InvalidArgumentError(
      Cat("fingerprint ", QuoteForError(fingerprint), ": ", what,
          " (expected '1;<store path>;sha256:<nix32>;<NAR size>;<references>')"));
}

// Strict decimal: digits only, no sign, no leading zero, fits in 64 bits. Anything looser would let
// one claim be spelled two ways.
bool ParseDecimal(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  out = value;
  return true;
}

}  // namespace

absl::StatusOr<PathInfo> PathInfo::Create(StorePath path, NarHash nar_hash, uint64_t nar_size,
                                          std::vector<StorePath> references) {
  if (nar_size == 0) {
    return absl::InvalidArgumentError(
        Cat("claim for ", path.full(),
            ": NAR size 0 is not valid: Nix never produces an empty NAR (even an empty file "
            "serialises to more than 100 bytes); is the size missing?"));
  }
  if (nar_size > kMaxNarSize) {
    return absl::InvalidArgumentError(Cat("claim for ", path.full(), ": NAR size ", nar_size,
                                          " exceeds the limit of ", kMaxNarSize, " bytes (1 TiB)"));
  }
  if (references.size() > kMaxReferences) {
    return absl::InvalidArgumentError(Cat("claim for ", path.full(), " has ", references.size(),
                                          " references; at most ", kMaxReferences,
                                          " are accepted"));
  }
  // Nix prints references from a std::set<std::string> of full paths, i.e. sorted bytewise; the
  // StorePath ordering compares the full path, which is the same order.
  std::sort(references.begin(), references.end());
  const auto dup = std::adjacent_find(references.begin(), references.end());
  if (dup != references.end()) {
    return absl::InvalidArgumentError(
        Cat("claim for ", path.full(), " lists reference ", dup->full(),
            " more than once; references are a set (is the list built by concatenation?)"));
  }
  return PathInfo{std::move(path), nar_hash, nar_size, std::move(references)};
}

absl::StatusOr<PathInfo> PathInfo::ParseFingerprint(std::string_view fingerprint) {
  // No field can contain ';' (store path names and hashes have no ';'), so a plain split is exact.
  std::vector<std::string_view> fields;
  for (absl::string_view field : absl::StrSplit(AbslView(fingerprint), ';')) {
    fields.push_back(StdView(field));
  }
  if (fields.size() != 5) {
    return FingerprintError(fingerprint,
                            Cat("has ", fields.size(), " ';'-separated fields, not 5"));
  }
  if (fields[0] != "1") {
    return FingerprintError(fingerprint, Cat("starts with version ", QuoteForError(fields[0]),
                                             "; only version 1 exists"));
  }
  auto path = StorePath::Parse(fields[1]);
  if (!path.ok()) return FingerprintError(fingerprint, StdView(path.status().message()));
  auto nar_hash = NarHash::Parse(fields[2]);
  if (!nar_hash.ok()) return FingerprintError(fingerprint, StdView(nar_hash.status().message()));
  if (nar_hash->ToNix32() != fields[2]) {
    return FingerprintError(fingerprint,
                            "the NAR hash must be written as 'sha256:' and 52 nix32 characters, as "
                            "Nix signs it");
  }
  uint64_t nar_size = 0;
  if (!ParseDecimal(fields[3], nar_size)) {
    return FingerprintError(fingerprint,
                            Cat("NAR size ", QuoteForError(fields[3]),
                                " is not a plain decimal number (digits only, no leading "
                                "zeros)"));
  }
  std::vector<StorePath> references;
  if (!fields[4].empty()) {
    for (absl::string_view ref_text : absl::StrSplit(AbslView(fields[4]), ',')) {
      const std::string_view ref = StdView(ref_text);
      if (references.size() == kMaxReferences) {
        return FingerprintError(fingerprint, Cat("more than ", kMaxReferences, " references"));
      }
      auto ref_path = StorePath::Parse(ref);
      if (!ref_path.ok()) {
        return FingerprintError(fingerprint, Cat("reference: ", ref_path.status().message()));
      }
      if (!references.empty() && !(references.back() < *ref_path)) {
        return FingerprintError(fingerprint,
                                Cat("references are not sorted and unique at ", ref_path->full(),
                                    " (Nix sorts them bytewise by full path)"));
      }
      references.push_back(*std::move(ref_path));
    }
  }
  auto info = Create(*std::move(path), *nar_hash, nar_size, std::move(references));
  if (!info.ok()) return info.status();
  // Everything above should make this hold; checking it keeps "strict" true even if a parser
  // becomes more lenient later.
  if (info->Fingerprint() != fingerprint) {
    return FingerprintError(fingerprint, "does not re-serialise to the same text");
  }
  return info;
}

std::string PathInfo::Fingerprint() const {
  std::string out = Cat("1;", path.full(), ";", nar_hash.ToNix32(), ";", nar_size, ";");
  size_t size = out.size();
  for (const StorePath& reference : references) size += reference.full().size() + 1;
  out.reserve(size);
  for (size_t i = 0; i < references.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(references[i].full());
  }
  return out;
}

}  // namespace attest::consensus
