#include "consensus/nar_hash.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "consensus/encoding.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr size_t kDigestSize = 32;
constexpr size_t kNix32Chars = 52;
constexpr size_t kHexChars = 64;
constexpr size_t kBase64Chars = 44;

absl::StatusOr<NarHash::Digest> ToDigest(absl::StatusOr<std::vector<uint8_t>> bytes,
                                         std::string_view encoding, std::string_view text) {
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(Cat("NAR hash ", QuoteForError(text), " is not valid ",
                                          encoding, ": ", bytes.status().message()));
  }
  if (bytes->size() != kDigestSize) {
    return absl::InvalidArgumentError(Cat("NAR hash ", QuoteForError(text), " decodes to ",
                                          bytes->size(), " bytes; sha256 has 32"));
  }
  NarHash::Digest digest;
  std::copy(bytes->begin(), bytes->end(), digest.begin());
  return digest;
}

}  // namespace

absl::StatusOr<NarHash> NarHash::Parse(std::string_view text) {
  // Nix's Hash::parseAnyPrefixed: "<algo>:<base16|nix32|base64>" told apart by length, or SRI
  // "<algo>-<base64>". Only sha256 is accepted: it is the only algorithm a path fingerprint
  // carries.
  const size_t sep = text.find_first_of(":-");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat("NAR hash ", QuoteForError(text),
            " has no algorithm prefix; expected 'sha256:<nix32>' or 'sha256-<base64>'"));
  }
  const std::string_view algorithm = text.substr(0, sep);
  const std::string_view body = text.substr(sep + 1);
  if (algorithm != "sha256") {
    if (algorithm == "md5" || algorithm == "sha1" || algorithm == "sha512") {
      return absl::InvalidArgumentError(
          Cat("NAR hash ", QuoteForError(text), " uses ", algorithm,
              "; only sha256 is supported (Nix fingerprints always carry the sha256 NAR hash)"));
    }
    return absl::InvalidArgumentError(
        Cat("NAR hash ", QuoteForError(text), " starts with unknown algorithm ",
            QuoteForError(algorithm), "; expected 'sha256:<nix32>' or 'sha256-<base64>'"));
  }
  if (text[sep] == '-') {
    if (body.size() != kBase64Chars) {
      return absl::InvalidArgumentError(Cat("SRI NAR hash ", QuoteForError(text), " has ",
                                            body.size(), " characters after 'sha256-'; expected ",
                                            kBase64Chars, " (base64)"));
    }
    auto digest = ToDigest(Base64Decode(body), "base64", text);
    if (!digest.ok()) return digest.status();
    return NarHash(*digest);
  }
  absl::StatusOr<Digest> digest;
  switch (body.size()) {
    case kNix32Chars:
      digest = ToDigest(Nix32Decode(body, kDigestSize), "nix32", text);
      break;
    case kHexChars:
      digest = ToDigest(HexDecode(body), "hex", text);
      break;
    case kBase64Chars:
      digest = ToDigest(Base64Decode(body), "base64", text);
      break;
    default:
      return absl::InvalidArgumentError(Cat("NAR hash ", QuoteForError(text), " has ", body.size(),
                                            " characters after 'sha256:'; expected ", kNix32Chars,
                                            " (nix32), ", kHexChars, " (hex) or ", kBase64Chars,
                                            " (base64)"));
  }
  if (!digest.ok()) return digest.status();
  return NarHash(*digest);
}

std::string NarHash::ToNix32() const { return Cat("sha256:", Nix32Encode(digest_)); }

std::string NarHash::ToSri() const { return Cat("sha256-", Base64Encode(digest_)); }

std::string NarHash::ToHex() const { return HexEncode(digest_); }

}  // namespace attest::consensus
