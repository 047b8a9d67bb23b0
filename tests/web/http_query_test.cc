// server/http_server: the query string reaches handlers split into arguments, percent-decoded, with
// `+` as a space, in order; the path stays without it.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http_server.h"
#include "tests/web/web_fixture.h"

namespace attest::server {
namespace {

TEST(HttpQueryTest, ArgumentsAreDecodedInOrder) {
  HttpRouter router;
  router.Exact("/echo", [](const HttpRequest& request) {
    std::string text = absl::StrCat("path=", std::string(request.path), "\n");
    for (const auto& [name, value] : request.query) absl::StrAppend(&text, "[", name, "]=[", value, "]\n");
    const std::string* first = request.QueryValue("a");
    absl::StrAppend(&text, "a:", first == nullptr ? "(none)" : *first, "\n");
    return HttpReply::Now(HttpResponse::Text(200, text));
  });
  auto server = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string base = absl::StrCat("http://127.0.0.1:", (*server)->port());

  auto answer = testing::HttpGet(base + "/echo?a=1&b=x+y%20z&c=%3Cp%3E%26&flag&a=2");
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "path=/echo\n[a]=[1]\n[b]=[x y z]\n[c]=[<p>&]\n[flag]=[]\n[a]=[2]\na:1\n");

  answer = testing::HttpGet(base + "/echo");
  EXPECT_EQ(answer.body, "path=/echo\na:(none)\n");
}

}  // namespace
}  // namespace attest::server
