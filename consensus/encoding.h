// Byte encodings Nix uses: nix32 (Nix's base-32), base16 and standard base64.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_ENCODING_H_
#define ATTEST_CONSENSUS_ENCODING_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace attest::consensus {

// Nix's base-32 alphabet ("0123456789abcdfghijklmnpqrsvwxyz", no e o t u).
inline constexpr std::string_view kNix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz";

// Length of the nix32 text for `byte_count` bytes: ceil(8 * n / 5).
size_t Nix32Length(size_t byte_count);

// Encodes as Nix does (most significant 5-bit group first, walking the bytes from the end).
std::string Nix32Encode(std::span<const uint8_t> bytes);

// Decodes nix32 text into exactly `byte_count` bytes. INVALID_ARGUMENT on a wrong length, a character
// outside the alphabet, or non-zero padding bits.
absl::StatusOr<std::vector<uint8_t>> Nix32Decode(std::string_view text, size_t byte_count);

// Lower-case hex.
std::string HexEncode(std::span<const uint8_t> bytes);
// Accepts upper and lower case. INVALID_ARGUMENT on odd length or a non-hex character.
absl::StatusOr<std::vector<uint8_t>> HexDecode(std::string_view text);

// Standard alphabet, '=' padded.
std::string Base64Encode(std::span<const uint8_t> bytes);
// Strict: standard alphabet, correct padding, no whitespace. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<uint8_t>> Base64Decode(std::string_view text);

// Debian 12's Abseil (20220623) is built with its own absl::string_view, distinct from
// std::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), and neither converts to the other
// implicitly. These bridge the two without copying.
inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view StdView(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

namespace encoding_internal {
template <typename T>
const T& CatArg(const T& value) {
  return value;
}
inline absl::string_view CatArg(std::string_view value) { return AbslView(value); }
}  // namespace encoding_internal

// absl::StrCat that also accepts std::string_view arguments (see AbslView).
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(encoding_internal::CatArg(args)...);
}

// Quotes untrusted text for an error message: C-escaped (no control bytes reach logs) and cut to
// 100 bytes, with the full length noted, so a hostile megabyte input yields a short message.
std::string QuoteForError(std::string_view input);

// Byte views of strings, for hashing and signing.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Decodes the UTF-8 code point at s[pos] (pos < s.size()) and sets `length` to its byte count;
// nullopt for anything Go's utf8.DecodeRune reports as an error (truncated, overlong, surrogate,
// above U+10FFFF), since Go tools must read what we sign.
std::optional<char32_t> DecodeUtf8(std::string_view s, size_t pos, size_t& length);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_ENCODING_H_
