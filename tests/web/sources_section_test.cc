// The Sources section of the operators page (/operators, /operators.json): the web routes served on
// their own HTTP port over the fixture node's store, with a policy that lists operator caches and a
// made-up status list standing in for the node's NAR relay. Checked over plain HTTP and in a real
// headless Chromium: every source in the node's order, the unreachable one with its error, the bad one
// with its last mismatch as evidence, and hostile text from a source escaped.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/nar_source_status.h"
#include "server/node_config.h"
#include "server/status_query.h"
#include "server/web/web_routes.h"
#include "server/policy_book.h"
#include "tests/web/web_fixture.h"
#include "tests/web/webdriver.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using server::NarSourceKind;
using server::NarSourceStatus;
using ::testing::HasSubstr;
using ::testing::Not;

// What a hostile or broken source can make the node record: its own error text, and a mismatch naming
// what it served.
constexpr char kHostileError[] = "<img src=x onerror=alert(2)>connection refused";
constexpr char kMismatch[] =
    "/nix/store/00000000000000000000000000000000-openssl-3.0.8: NarHash sha256:1abc<script>alert(1)</script>, "
    "confirmed sha256:0xyz";
constexpr char kMismatchEscaped[] =
    "NarHash sha256:1abc&lt;script&gt;alert(1)&lt;/script&gt;, confirmed sha256:0xyz";

std::vector<NarSourceStatus> MadeUpStatuses() {
  NarSourceStatus alice;
  alice.spec = {.url = "https://cache.alice.example", .kind = NarSourceKind::kOperator, .operator_name = "alice-ci",
                .priority = 0};
  alice.narinfos_found = 12;
  alice.paths_served = 10;
  alice.bytes_served = 123456789;
  NarSourceStatus bob;
  bob.spec = {.url = "http://127.0.0.1:9/bob", .kind = NarSourceKind::kOperator, .operator_name = "bob-labs",
              .priority = 0};
  bob.reachable = false;
  bob.last_error = kHostileError;
  bob.last_error_unix = 1795582000;
  bob.narinfos_found = 4;
  bob.mismatches = 3;
  bob.last_mismatch = kMismatch;
  bob.last_mismatch_unix = 1795582660;
  NarSourceStatus mirror;
  mirror.spec = {.url = "file:///var/cache/nar-mirror", .kind = NarSourceKind::kMirror, .operator_name = "",
                 .priority = 5};
  mirror.paths_served = 2;
  mirror.bytes_served = 2048;
  NarSourceStatus upstream;
  upstream.spec = {.url = "https://cache.nixos.org", .kind = NarSourceKind::kUpstream, .operator_name = "",
                   .priority = 0};
  // The relay reports them in its order: operator caches (policy order), mirrors, upstream.
  return {alice, bob, mirror, upstream};
}

class SourcesSectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web_.ok());
    // The fixture's federation, with caches: alice-ci two (the second one the node reports nothing
    // about), bob-labs one, carol-home none.
    const WebFederation& f = web_.federation();
    const std::string policy_text = absl::StrCat(
        "quorum = 2\n[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", f.alice1.public_key().ToString(), "\", \"",
        f.alice2.public_key().ToString(), "\"]\n",
        "caches = [\"https://cache.alice.example\", \"file:///srv/alice-cache\"]\n",
        "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", f.bob.public_key().ToString(), "\"]\n",
        "caches = [\"http://127.0.0.1:9/bob\"]\n",
        "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", f.carol.public_key().ToString(), "\"]\n");
    auto policy = consensus::Policy::ParseToml(policy_text, "policy.toml");
    ASSERT_TRUE(policy.ok()) << policy.status();
    policy_ = std::make_unique<server::PolicyBook>(*std::move(policy));
    status_query_ = std::make_unique<server::StatusQuery>(*policy_, web_.node().store(), server::StatusQueryOptions{});
    dispute_view_ = std::make_unique<server::DisputeView>(*policy_, web_.node().store());

    server::HttpRouter router;
    server::web::AddRoutes(router, *policy_, web_.node().store(), status_query_.get(), dispute_view_.get(), nullptr,
                           [this] {
                             std::lock_guard<std::mutex> lock(mu_);
                             ++calls_;
                             return statuses_;
                           });
    auto http = server::HttpServer::Start(server::ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
  }

  std::string Url(std::string_view target) const {
    return absl::StrCat("http://127.0.0.1:", http_->port(), std::string(target));
  }

  WebNode web_;
  std::unique_ptr<server::PolicyBook> policy_;
  std::unique_ptr<server::StatusQuery> status_query_;
  std::unique_ptr<server::DisputeView> dispute_view_;
  std::mutex mu_;
  std::vector<NarSourceStatus> statuses_ = MadeUpStatuses();
  int calls_ = 0;
  std::unique_ptr<server::HttpServer> http_;  // last: stopped first
};

TEST_F(SourcesSectionTest, HtmlShowsEverySourceAndEscapesWhatSourcesSaid) {
  const HttpGetAnswer page = HttpGet(Url("/operators"));
  ASSERT_EQ(page.status, 200) << page.body;
  const std::string& body = page.body;
  EXPECT_THAT(body, HasSubstr("<h2 id=\"sources-heading\">Sources</h2>"));
  EXPECT_THAT(body, HasSubstr("A mismatch is evidence of a bad source"));
  // Nothing a source said reaches the page as markup.
  EXPECT_THAT(body, Not(HasSubstr("<script>")));
  EXPECT_THAT(body, Not(HasSubstr("<img")));
  EXPECT_THAT(body, HasSubstr(kMismatchEscaped));
  EXPECT_THAT(body, HasSubstr("&lt;img src=x onerror=alert(2)&gt;connection refused"));

  // In the node's order, the policy cache without a status in alice's place.
  const size_t alice = body.find("<code>https://cache.alice.example</code>");
  const size_t unused = body.find("<code>file:///srv/alice-cache</code>");
  const size_t bob = body.find("<code>http://127.0.0.1:9/bob</code>");
  const size_t mirror = body.find("<code>file:///var/cache/nar-mirror</code>");
  const size_t upstream = body.find("<code>https://cache.nixos.org</code>");
  ASSERT_NE(upstream, std::string::npos);
  EXPECT_LT(alice, unused);
  EXPECT_LT(unused, bob);
  EXPECT_LT(bob, mirror);
  EXPECT_LT(mirror, upstream);

  EXPECT_THAT(body, HasSubstr("<tr class=\"source\"><td><b>alice-ci</b></td><td><code>https://cache.alice.example"
                              "</code></td><td class=\"reachable\">yes</td><td>12</td><td>10</td><td>123,456,789</td>"
                              "<td class=\"mismatches\">0</td></tr>"));
  EXPECT_THAT(body, HasSubstr("<tr class=\"source unused\"><td><b>alice-ci</b></td><td><code>file:///srv/alice-cache"
                              "</code></td><td colspan=\"5\" class=\"muted\">not used by this node"));
  EXPECT_THAT(body, HasSubstr("<tr class=\"source unreachable bad\"><td><b>bob-labs</b></td>"));
  EXPECT_THAT(body, HasSubstr("<span class=\"flagged\">unreachable</span> (the last contact failed, 2026-11-25 "));
  EXPECT_THAT(body, HasSubstr("<span class=\"flagged\">3</span><div class=\"diff evidence\">last, 2026-11-25 "));
  EXPECT_THAT(body, HasSubstr("<td>mirror (priority 5)</td>"));
  EXPECT_THAT(body, HasSubstr("<td>upstream</td>"));
}

TEST_F(SourcesSectionTest, JsonTwinHasTheSameSources) {
  const HttpGetAnswer page = HttpGet(Url("/operators.json"));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.content_type, "application/json");
  const json object = json::parse(page.body);
  EXPECT_THAT(object["sources_definition"].get<std::string>(), HasSubstr("evidence of a bad source"));
  EXPECT_EQ(object["operators"][0]["caches"], json({"https://cache.alice.example", "file:///srv/alice-cache"}));
  EXPECT_EQ(object["operators"][2]["caches"], json::array());

  const json& sources = object["sources"];
  ASSERT_EQ(sources.size(), 5u);
  EXPECT_EQ(sources[0]["kind"], "operator");
  EXPECT_EQ(sources[0]["operator"], "alice-ci");
  EXPECT_EQ(sources[0]["used"], true);
  EXPECT_EQ(sources[0]["reachable"], true);
  EXPECT_EQ(sources[0]["paths_served"], 10);
  EXPECT_EQ(sources[0]["bytes_served"], 123456789);
  EXPECT_EQ(sources[1]["url"], "file:///srv/alice-cache");
  EXPECT_EQ(sources[1]["used"], false);
  EXPECT_TRUE(sources[1]["reachable"].is_null());
  const json& bob = sources[2];
  EXPECT_EQ(bob["operator"], "bob-labs");
  EXPECT_EQ(bob["reachable"], false);
  EXPECT_EQ(bob["last_error"], kHostileError);  // JSON carries the text as it was, as a string
  EXPECT_EQ(bob["last_error_unix"], 1795582000);
  EXPECT_EQ(bob["narinfos_found"], 4);
  EXPECT_EQ(bob["mismatches"], 3);
  EXPECT_EQ(bob["last_mismatch"], kMismatch);
  EXPECT_EQ(bob["last_mismatch_unix"], 1795582660);
  EXPECT_EQ(sources[3]["kind"], "mirror");
  EXPECT_EQ(sources[3]["priority"], 5);
  EXPECT_FALSE(sources[3].contains("operator"));
  EXPECT_EQ(sources[4]["kind"], "upstream");
  EXPECT_EQ(sources[4]["url"], "https://cache.nixos.org");
}

TEST_F(SourcesSectionTest, EachRequestReadsTheStatusesAgain) {
  ASSERT_EQ(HttpGet(Url("/operators.json")).status, 200);
  {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_[0].mismatches = 1;
    statuses_[0].last_mismatch = "/nix/store/11111111111111111111111111111111-zlib-1.3: NarSize 5, confirmed 6";
  }
  const json object = json::parse(HttpGet(Url("/operators.json")).body);
  EXPECT_EQ(object["sources"][0]["mismatches"], 1);
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(calls_, 2);
}

// The fixture node itself: no [gateway], a policy without caches.
TEST_F(SourcesSectionTest, ANodeWithoutSourcesSaysSo) {
  const HttpGetAnswer page = HttpGet(web_.Url("/operators"));
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<p id=\"no-sources\">No sources"));
  EXPECT_THAT(page.body, Not(HasSubstr("<table id=\"sources\">")));
  const json object = json::parse(HttpGet(web_.Url("/operators.json")).body);
  EXPECT_EQ(object["sources"], json::array());
}

// In Chromium: the bad source's evidence is text on the page, nothing it said became an element.
TEST_F(SourcesSectionTest, BrowserShowsTheEvidenceAsText) {
  TempDir logs;
  auto started = WebDriver::Start(logs.path());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<WebDriver> driver = *std::move(started);
  ASSERT_TRUE(driver->Navigate(Url("/operators")).ok());

  auto rows = driver->FindAll("#sources tr.source");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->size(), 5u);
  auto bad = driver->FindAll("#sources tr.bad");
  ASSERT_TRUE(bad.ok()) << bad.status();
  ASSERT_EQ(bad->size(), 1u);
  auto bad_text = driver->Text((*bad)[0]);
  ASSERT_TRUE(bad_text.ok()) << bad_text.status();
  EXPECT_THAT(*bad_text, HasSubstr("bob-labs"));
  EXPECT_THAT(*bad_text, HasSubstr("unreachable"));
  EXPECT_THAT(*bad_text, HasSubstr(kHostileError));

  auto evidence = driver->Find("#sources tr.bad .last-mismatch");
  ASSERT_TRUE(evidence.ok()) << evidence.status();
  auto evidence_text = driver->Text(*evidence);
  ASSERT_TRUE(evidence_text.ok()) << evidence_text.status();
  EXPECT_EQ(*evidence_text, kMismatch);

  for (const char* injected : {"#sources script", "#sources img", "main script"}) {
    auto found = driver->FindAll(injected);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_TRUE(found->empty()) << injected;
  }
  auto unused = driver->FindAll("#sources tr.unused");
  ASSERT_TRUE(unused.ok());
  EXPECT_EQ(unused->size(), 1u);

  // For people to look at: what a bad source looks like.
  ASSERT_TRUE(driver->SetWindowSize(1400, 1000).ok());
  ASSERT_TRUE(driver->Navigate(Url("/operators#sources-heading")).ok());
  auto png = driver->Screenshot();
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->substr(1, 3), "PNG");
  std::filesystem::create_directories(ATTEST_WEB_ARTIFACT_DIR);
  const std::string path = absl::StrCat(ATTEST_WEB_ARTIFACT_DIR, "/operators-sources.png");
  std::ofstream(path, std::ios::binary) << *png;
  std::printf("screenshot: %s\n", path.c_str());
}

}  // namespace
}  // namespace attest::testing
