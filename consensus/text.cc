#include "consensus/text.h"

#include "absl/strings/escaping.h"

namespace attest::consensus {

std::string QuoteForError(std::string_view input) {
  constexpr size_t kMaxShown = 100;
  if (input.size() <= kMaxShown) return Cat("'", absl::CHexEscape(AbslView(input)), "'");
  return Cat("'", absl::CHexEscape(AbslView(input.substr(0, kMaxShown))), "'... (", input.size(),
             " bytes)");
}

std::optional<char32_t> DecodeUtf8(std::string_view s, size_t pos, size_t& length) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) {
    length = 1;
    return b0;
  }
  // Sequence length, payload bits of the lead byte, and the smallest code point that needs this
  // length (anything smaller is an overlong encoding).
  size_t n = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
    min = 0x10000;
  } else {
    return std::nullopt;
  }
  if (pos + n > s.size()) return std::nullopt;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[pos + i]);
    if ((b & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  length = n;
  return cp;
}

}  // namespace attest::consensus
