#include "consensus/display_text.h"

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(StdView(status.message())); }

TEST(DisplayTextTest, PrintableTextOfAnyScriptIsAccepted) {
  for (std::string_view text : {"", "x86_64-linux", "out", "ünïcode", "例え", "Ελληνικά", "עברית",
                                "العربية", "emoji \xF0\x9F\x94\x91", "a+b.c-d_e/f=g@h"}) {
    EXPECT_TRUE(ValidateDisplayText(text, TextShape::kLine, "text").ok()) << text;
  }
  for (std::string_view text : {"x86_64-linux", "ünïcode", "a+b.c-d_e/f=g@h", "\xF0\x9F\x94\x91"}) {
    EXPECT_TRUE(ValidateDisplayText(text, TextShape::kWord, "text").ok()) << text;
  }
  EXPECT_TRUE(ValidateDisplayText("two words", TextShape::kLine, "text").ok());
}

TEST(DisplayTextTest, ControlBidiAndSeparatorsAreRefusedNamingTheCodePoint) {
  struct Case {
    std::string text;
    std::string fragment;
  };
  const Case cases[] = {
      {"a\nb", "a control character (U+000A at byte offset 1)"},
      {"bell\a", "a control character (U+0007"},
      {"del\x7f", "a control character (U+007F"},
      {"c1-\xC2\x80", "a control character (U+0080 at byte offset 3)"},
      {"csi-\xC2\x9B" "31m", "a control character (U+009B"},
      {"c1-\xC2\x9F", "a control character (U+009F"},
      {"rlo-\xE2\x80\xAE" "evil", "a bidirectional formatting character (U+202E"},
      {"lre-\xE2\x80\xAA", "a bidirectional formatting character (U+202A"},
      {"lri-\xE2\x81\xA6", "a bidirectional formatting character (U+2066"},
      {"pdi-\xE2\x81\xA9", "a bidirectional formatting character (U+2069"},
      {"lrm-\xE2\x80\x8E", "a bidirectional formatting character (U+200E"},
      {"rlm-\xE2\x80\x8F", "a bidirectional formatting character (U+200F"},
      {"alm-\xD8\x9C", "a bidirectional formatting character (U+061C"},
      {"ls-\xE2\x80\xA8", "a line or paragraph separator (U+2028"},
      {"ps-\xE2\x80\xA9", "a line or paragraph separator (U+2029"},
      {"bad-\xC3\x28", "not valid UTF-8 at byte offset 4"},
      {"overlong-\xC0\xAF", "not valid UTF-8"},
      {"surrogate-\xED\xA0\x80", "not valid UTF-8"},
      {"latin1-\xE9", "not valid UTF-8"},
  };
  for (const Case& c : cases) {
    for (TextShape shape : {TextShape::kLine, TextShape::kWord}) {
      const absl::Status status = ValidateDisplayText(c.text, shape, "the field");
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(c.text);
      EXPECT_THAT(Message(status), HasSubstr(c.fragment)) << absl::CHexEscape(c.text);
      EXPECT_THAT(Message(status), HasSubstr("the field ")) << absl::CHexEscape(c.text);
    }
  }
}

TEST(DisplayTextTest, WordsHaveNoWhiteSpaceOfAnyKind) {
  for (std::string_view text : {"a b", "a\xC2\xA0" "b", "a\xE2\x80\x83" "b", "a\xE3\x80\x80" "b",
                                "a\xE1\x9A\x80" "b", "a\xE2\x80\xAF" "b"}) {
    const absl::Status status = ValidateDisplayText(text, TextShape::kWord, "name");
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(AbslView(text));
    EXPECT_THAT(Message(status), HasSubstr("whitespace")) << absl::CHexEscape(AbslView(text));
    EXPECT_TRUE(ValidateDisplayText(text, TextShape::kLine, "note").ok()) << absl::CHexEscape(AbslView(text));
  }
}

TEST(DisplayTextTest, MessagesEscapeTheText) {
  const absl::Status status = ValidateDisplayText("x\xE2\x80\xAEy", TextShape::kLine, "the note");
  EXPECT_THAT(Message(status), HasSubstr("'x\\xe2\\x80\\xaey'"));
  EXPECT_EQ(Message(status).find("\xE2\x80\xAE"), std::string::npos);
}

}  // namespace
}  // namespace attest::consensus
