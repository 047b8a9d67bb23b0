#include "consensus/display_text.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

bool IsBidiControl(char32_t c) {
  return c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

bool IsLineSeparator(char32_t c) { return c == 0x2028 || c == 0x2029; }

}  // namespace

bool IsUnicodeSpace(char32_t c) {
  switch (c) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

absl::Status ValidateDisplayText(std::string_view text, TextShape shape, std::string_view what) {
  for (size_t pos = 0; pos < text.size();) {
    size_t length = 0;
    const std::optional<char32_t> c = DecodeUtf8(text, pos, length);
    if (!c.has_value()) {
      return absl::InvalidArgumentError(Cat(what, " ", QuoteForError(text),
                                            " is not valid UTF-8 at byte offset ", pos));
    }
    std::string_view kind;
    std::string_view why;
    if (IsControl(*c)) {
      kind = "a control character";
    } else if (IsBidiControl(*c)) {
      kind = "a bidirectional formatting character";
      why = ", which changes how the text around it is displayed";
    } else if (IsLineSeparator(*c)) {
      kind = "a line or paragraph separator";
    } else if (shape == TextShape::kWord && IsUnicodeSpace(*c)) {
      kind = "whitespace";
    }
    if (!kind.empty()) {
      const std::string_view hint = shape == TextShape::kWord
                                        ? "; use a single word of printable characters"
                                        : "; use printable characters on one line";
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s %s contains %s (U+%04X at byte offset %d)%s%s", AbslView(what), QuoteForError(text),
          AbslView(kind), static_cast<unsigned>(*c), pos, AbslView(why), AbslView(hint)));
    }
    pos += length;
  }
  return absl::OkStatus();
}

}  // namespace attest::consensus
