// The policy on the web pages: the operators page (/operators, /operators.json) and the search page
// (/search, /search.json) served over the fixture node's store under a nested policy of version 2
// with a group, two rules (one glob carrying markup characters), a retired and a revoked builder key
// and a revoked maintainer key. Checked over plain HTTP: the policy's version, hash, parent, groups
// and rules in words, the keys' lifecycles marked, the rule and quorum explanation of an answer, and
// every policy text escaped.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/policy_book.h"
#include "server/status_query.h"
#include "server/web/html.h"
#include "server/web/web_routes.h"
#include "tests/web/web_fixture.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kParent[] = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

class PolicyPagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web_.ok());
    const WebFederation& f = web_.federation();
    const std::string policy_text = absl::StrCat(
        "version = 2\nparent = \"", kParent, "\"\nupdate_threshold = 1\n",
        "[quorum]\nthreshold = 2\nmembers = [\"alice-ci\", \"independent\"]\n",
        "[[group]]\nname = \"independent\"\nthreshold = 1\nmembers = [\"bob-labs\", \"carol-home\"]\n",
        "[[rule]]\nnames = [\"openssl-*\"]\nquorum = 3\n",
        "[[rule]]\nnames = [\"x<b>&y-*\"]\nquorum = {threshold = 1, members = [\"independent\"]}\n",
        "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", f.alice1.public_key().ToString(), "\", {key = \"",
        f.alice2.public_key().ToString(), "\", retired = \"2026-12-01T00:00:00Z\"}]\n",
        "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", f.bob.public_key().ToString(), "\"]\n",
        "[[operator]]\nname = \"carol-home\"\nbuilders = [{key = \"", f.carol.public_key().ToString(),
        "\", revoked = \"compromised\"}]\n",
        "[[maintainer]]\nkey = \"", f.maintainer.public_key().ToString(), "\"\n",
        "[[maintainer]]\nkey = \"", maintainer2_.public_key().ToString(), "\"\nrevoked = \"lost\"\n");
    auto policy = consensus::Policy::ParseToml(policy_text, "policy.toml");
    ASSERT_TRUE(policy.ok()) << policy.status();
    hash_ = policy->Hash();
    policy_ = std::make_unique<server::PolicyBook>(*std::move(policy));
    status_query_ = std::make_unique<server::StatusQuery>(*policy_, web_.node().store(), server::StatusQueryOptions{});
    dispute_view_ = std::make_unique<server::DisputeView>(*policy_, web_.node().store());
    server::HttpRouter router;
    server::web::AddRoutes(router, *policy_, web_.node().store(), status_query_.get(), dispute_view_.get(), nullptr);
    auto http = server::HttpServer::Start(server::ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
    ASSERT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
  }

  std::string Url(std::string_view target) const {
    return absl::StrCat("http://127.0.0.1:", http_->port(), std::string(target));
  }

  WebNode web_;
  consensus::SecretKey maintainer2_ = TestKey("maint-2");
  std::string hash_;
  std::unique_ptr<server::PolicyBook> policy_;
  std::unique_ptr<server::StatusQuery> status_query_;
  std::unique_ptr<server::DisputeView> dispute_view_;
  std::unique_ptr<server::HttpServer> http_;  // last: stopped first
};

TEST_F(PolicyPagesTest, OperatorsPageShowsThePolicyItsGroupsRulesAndKeyLifecycles) {
  const HttpGetAnswer page = HttpGet(Url("/operators"));
  ASSERT_EQ(page.status, 200) << page.body;
  const std::string& body = page.body;
  EXPECT_THAT(body, HasSubstr("<td id=\"policy-version\">2</td>"));
  // The hash short, the whole of it in the title.
  EXPECT_THAT(body, HasSubstr(absl::StrCat("<code id=\"policy-hash\" title=\"", hash_, "\">", hash_.substr(0, 19),
                                           "\u2026</code>")));
  EXPECT_THAT(body, HasSubstr(absl::StrCat("<code id=\"policy-parent\" title=\"", kParent, "\">sha256:001122334455")));
  EXPECT_THAT(body, HasSubstr("<td id=\"policy-quorum\">2 of (alice-ci, independent); independent = 1 of "
                              "(bob-labs, carol-home) <span"));
  EXPECT_THAT(body, HasSubstr("<tr class=\"group\"><td><b>independent</b></td><td>1 of (bob-labs, carol-home)</td>"));
  EXPECT_THAT(body, HasSubstr("<tr class=\"rule\"><td><code>openssl-*</code></td><td>any 3 operators</td></tr>"));
  // A glob is policy text like any other: escaped.
  EXPECT_THAT(body, HasSubstr("<tr class=\"rule\"><td><code>x&lt;b&gt;&amp;y-*</code></td><td>1 of (independent); "
                              "independent = 1 of (bob-labs, carol-home)</td></tr>"));
  EXPECT_THAT(body, Not(HasSubstr("x<b>")));

  // Builder keys: the retired one with its cut-off in UTC, the revoked one with the reason.
  EXPECT_THAT(body, HasSubstr("<td class=\"key-retired\"><code>alice-builder-2</code> <span class=\"muted "
                              "key-retired\">retired 2026-12-01 00:00:00 UTC"));
  EXPECT_THAT(body, HasSubstr("<td class=\"key-revoked\"><code>carol-builder-1</code> <span class=\"flagged "
                              "key-revoked\">revoked (compromised): none of its attestations count</span>"));
  EXPECT_THAT(body, HasSubstr("<td><code>alice-builder-1</code></td>"));  // active: no mark
  // Maintainers have the same lifecycle.
  EXPECT_THAT(body, HasSubstr("<li class=\"maintainer\"><code>maint-1</code></li>"));
  EXPECT_THAT(body, HasSubstr("<li class=\"maintainer\"><code>maint-2</code> <span class=\"flagged key-revoked\">"
                              "revoked (lost)"));
}

TEST_F(PolicyPagesTest, OperatorsJsonCarriesThePolicyAndEachKeysLifecycle) {
  const HttpGetAnswer page = HttpGet(Url("/operators.json"));
  ASSERT_EQ(page.status, 200) << page.body;
  const json object = json::parse(page.body);
  EXPECT_EQ(object["quorum"], 0);  // a threshold: no single number
  EXPECT_EQ(object["policy_hash"], hash_);
  const json& policy = object["policy"];
  EXPECT_EQ(policy["version"], 2);
  EXPECT_EQ(policy["hash"], hash_);
  EXPECT_EQ(policy["parent"], kParent);
  EXPECT_EQ(policy["update_threshold"], 1);
  EXPECT_EQ(policy["quorum_text"], "2 of (alice-ci, independent); independent = 1 of (bob-labs, carol-home)");
  ASSERT_EQ(policy["groups"].size(), 1u);
  EXPECT_EQ(policy["groups"][0]["name"], "independent");
  EXPECT_EQ(policy["groups"][0]["threshold"], 1);
  EXPECT_EQ(policy["groups"][0]["members"], json({"bob-labs", "carol-home"}));
  ASSERT_EQ(policy["rules"].size(), 2u);
  EXPECT_EQ(policy["rules"][0]["names"], json({"openssl-*"}));
  EXPECT_EQ(policy["rules"][0]["quorum_text"], "any 3 operators");
  EXPECT_EQ(policy["rules"][1]["names"], json({"x<b>&y-*"}));
  ASSERT_EQ(policy["maintainers"].size(), 2u);
  EXPECT_EQ(policy["maintainers"][1]["key"], "maint-2");
  EXPECT_EQ(policy["maintainers"][1]["state"], "revoked");
  EXPECT_EQ(policy["maintainers"][1]["revoked_reason"], "lost");

  const json& alice = object["operators"][0]["builders"];
  ASSERT_EQ(alice.size(), 2u);
  EXPECT_EQ(alice[0]["key"], "alice-builder-1");
  EXPECT_EQ(alice[0]["state"], "active");
  EXPECT_TRUE(alice[0]["retired_unix"].is_null());
  EXPECT_TRUE(alice[0]["revoked_reason"].is_null());
  EXPECT_EQ(alice[1]["key"], "alice-builder-2");
  EXPECT_EQ(alice[1]["state"], "retired");
  EXPECT_EQ(alice[1]["retired_unix"], 1796083200);
  EXPECT_EQ(alice[1]["retired_utc"], "2026-12-01 00:00:00 UTC");
  const json& carol = object["operators"][2]["builders"][0];
  EXPECT_EQ(carol["key"], "carol-builder-1");
  EXPECT_EQ(carol["state"], "revoked");
  EXPECT_EQ(carol["revoked_reason"], "compromised");
  EXPECT_TRUE(carol["retired_utc"].is_null());
}

TEST_F(PolicyPagesTest, SearchShowsTheRuleAndWhyTheQuorumIsOrIsNotMet) {
  const WebData& data = web_.data();
  // The refs dispute's path is an openssl: the stricter rule applies.
  const HttpGetAnswer page = HttpGet(Url(absl::StrCat("/search?path=", data.refs_dispute.full())));
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_THAT(page.body, HasSubstr("<p id=\"rule\">Rule <code>openssl-*</code>: needs <span id=\"quorum-text\">any 3 "
                                   "operators</span> (policy version 2, "));

  const HttpGetAnswer answer = HttpGet(Url(absl::StrCat("/search.json?path=", data.confirmed.full())));
  ASSERT_EQ(answer.status, 200) << answer.body;
  const json object = json::parse(answer.body);
  EXPECT_EQ(object["rule"], "default");
  EXPECT_EQ(object["policy_version"], 2);
  EXPECT_EQ(object["policy_hash"], hash_);
  EXPECT_EQ(object["quorum_text"], "2 of (alice-ci, independent); independent = 1 of (bob-labs, carol-home)");
  EXPECT_FALSE(object["quorum_explanation"].get<std::string>().empty());

  const HttpGetAnswer html = HttpGet(Url(absl::StrCat("/search?path=", data.confirmed.full())));
  ASSERT_EQ(html.status, 200) << html.body;
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("<span id=\"quorum-explanation\">",
                                                server::web::Escape(object["quorum_explanation"].get<std::string>()),
                                                "</span>")));
}

}  // namespace
}  // namespace attest::testing
