// Displayed text: the one rule for untrusted text that attest shows to people as it is (terminals,
// the dispute pages, logs): key names, build metadata, a resolution's note.
//
// Such text must be valid UTF-8 and hold nothing that changes how it or the text around it is
// displayed:
//   - control characters, C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): terminals act
//     on them (U+009B is a one-byte CSI);
//   - bidirectional formatting characters, U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069:
//     they reorder what follows, so a name holding U+202E can display as another name (CVE-2021-42574);
//   - line and paragraph separators, U+2028 and U+2029: some viewers break the line there.
// A word (kWord) also has no Unicode white space (Go's unicode.IsSpace, which C2SP signed notes use),
// so a name never displays as two.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_DISPLAY_TEXT_H_
#define ATTEST_CONSENSUS_DISPLAY_TEXT_H_

#include <string_view>

#include "absl/status/status.h"

namespace attest::consensus {

enum class TextShape {
  kLine,  // one line of text; spaces allowed (a resolution's note)
  kWord,  // no white space at all (a key name, an output name, a system type)
};

// OK when `text` (may be empty) can be displayed as it is, by the rule above. INVALID_ARGUMENT
// otherwise, naming `what` ("build metadata system"), the text (escaped), the offending code point
// and its byte offset.
absl::Status ValidateDisplayText(std::string_view text, TextShape shape, std::string_view what);

// Go's unicode.IsSpace: the white space C2SP signed-note names and kWord text cannot contain.
bool IsUnicodeSpace(char32_t c);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_DISPLAY_TEXT_H_
