// server/web/html: escaping, query strings, numbers and times as the pages show them.
#include "server/web/html.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::server::web {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HtmlTest, EscapeReplacesEveryMarkupCharacter) {
  EXPECT_EQ(Escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  EXPECT_EQ(Escape("/nix/store/abc-hello-2.12"), "/nix/store/abc-hello-2.12");
  EXPECT_EQ(Escape(""), "");
}

TEST(HtmlTest, UrlEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UrlEncode("/nix/store/abc-x_y.z~"), "%2Fnix%2Fstore%2Fabc-x_y.z~");
  EXPECT_EQ(UrlEncode("a b&c=d\"<"), "a%20b%26c%3Dd%22%3C");
  EXPECT_EQ(UrlEncode("\xff"), "%FF");
}

TEST(HtmlTest, QueryStringSkipsEmptyValues) {
  EXPECT_EQ(QueryString({{"state", "open"}, {"name", ""}, {"operator", "a b"}}), "?state=open&operator=a%20b");
  EXPECT_EQ(QueryString({{"name", ""}}), "");
}

TEST(HtmlTest, CountsAndTimes) {
  EXPECT_EQ(ShowCount(0), "0");
  EXPECT_EQ(ShowCount(999), "999");
  EXPECT_EQ(ShowCount(5000128), "5,000,128");
  EXPECT_EQ(ShowCount(-1234), "-1,234");
  EXPECT_EQ(ShowTime(1700000000), "2023-11-14 22:13:20 UTC");
  EXPECT_EQ(ShowTime(0), "unknown");
}

TEST(HtmlTest, FrameEscapesTitleAndSearchValueAndHasNoScript) {
  const std::string page = Frame("<t>", "<p>body</p>", "\"><script>");
  EXPECT_THAT(page, HasSubstr("<h1>&lt;t&gt;</h1>"));
  EXPECT_THAT(page, HasSubstr("value=\"&quot;&gt;&lt;script&gt;\""));
  EXPECT_THAT(page, HasSubstr("<p>body</p>"));
  EXPECT_THAT(page, Not(HasSubstr("<script")));
  EXPECT_THAT(page, HasSubstr("<form method=\"get\" action=\"/search\""));
}

TEST(HtmlTest, ErrorResponsesInBothFormats) {
  HttpResponse html = ErrorResponse(Format::kHtml, 400, "bad <input>");
  EXPECT_EQ(html.status, 400);
  EXPECT_EQ(html.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(std::get<std::string>(html.body), HasSubstr("bad &lt;input&gt;"));
  HttpResponse json = ErrorResponse(Format::kJson, 503, "busy");
  EXPECT_EQ(json.content_type, "application/json");
  EXPECT_EQ(std::get<std::string>(json.body), "{\"error\":\"busy\",\"status\":503}\n");
  bool retry_after = false;
  for (const auto& [name, value] : json.headers) retry_after |= name == "Retry-After";
  EXPECT_TRUE(retry_after);
}

}  // namespace
}  // namespace attest::server::web
