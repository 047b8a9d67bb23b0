// General text helpers with no domain meaning: string concatenation across the two string_view types,
// byte views for hashing, quoting untrusted text for error messages, and UTF-8 decoding as Go reads it.
// Every module may use them.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_TEXT_H_
#define ATTEST_CONSENSUS_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace attest::consensus {

// Debian 12's Abseil (20220623) is built with its own absl::string_view, distinct from
// std::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), and neither converts to the other
// implicitly. These bridge the two without copying.
inline absl::string_view AbslView(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}
inline std::string_view StdView(absl::string_view s) {
  return std::string_view(s.data(), s.size());
}

namespace text_internal {
template <typename T>
const T& CatArg(const T& value) {
  return value;
}
inline absl::string_view CatArg(std::string_view value) { return AbslView(value); }
}  // namespace text_internal

// absl::StrCat that also accepts std::string_view arguments (see AbslView).
template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(text_internal::CatArg(args)...);
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

#endif  // ATTEST_CONSENSUS_TEXT_H_
