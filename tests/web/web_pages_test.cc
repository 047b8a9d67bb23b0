// server/web: every page and its JSON twin over real HTTP from a real node (SQLite, signed
// attestations submitted over gRPC): what the pages show matches the database, filters and pages,
// escaping of hostile text, and bad input (400 and 404 pages, never a crash).
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "consensus/resolution.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/web/html.h"
#include "storage/attestation_store.h"
#include "tests/web/web_fixture.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class WebPagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { web_ = new WebNode(); }
  static void TearDownTestSuite() {
    delete web_;
    web_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(web_->ok()); }

  static HttpGetAnswer Get(std::string_view target) { return HttpGet(web_->Url(target)); }
  static json GetJson(std::string_view target, long expected_status = 200) {
    HttpGetAnswer answer = Get(target);
    EXPECT_EQ(answer.status, expected_status) << target << ": " << answer.body;
    EXPECT_EQ(answer.content_type, "application/json") << target;
    json parsed = json::parse(answer.body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << answer.body;
    return parsed;
  }
  static std::vector<std::string> Ids(const json& list) {
    std::vector<std::string> ids;
    for (const json& d : list["disputes"]) ids.push_back(d["id"]);
    return ids;
  }

  static WebNode* web_;
};

WebNode* WebPagesTest::web_ = nullptr;

TEST_F(WebPagesTest, DisputeListMatchesTheStore) {
  storage::DisputeQuery query;
  auto stored = web_->node().store()->ListDisputes(query);
  ASSERT_TRUE(stored.ok());
  std::vector<std::string> stored_ids;
  for (const auto& d : *stored) stored_ids.push_back(d.id);
  ASSERT_EQ(stored_ids.size(), 2u);

  const json list = GetJson("/disputes.json");
  EXPECT_EQ(Ids(list), stored_ids);
  EXPECT_EQ(list["total"], 2);
  EXPECT_TRUE(list["next"].is_null());
  for (const json& d : list["disputes"]) {
    EXPECT_EQ(d["state"], "open");
    EXPECT_EQ(d["fingerprint_count"], 2);
    EXPECT_EQ(d["url"], absl::StrCat("/disputes/", d["id"].get<std::string>()));
    EXPECT_EQ(d["operators"], json({"alice-ci", "bob-labs", "carol-home"}));
  }

  const HttpGetAnswer html = Get("/disputes");
  EXPECT_EQ(html.status, 200);
  EXPECT_EQ(html.content_type, "text/html; charset=utf-8");
  for (const std::string& id : stored_ids) EXPECT_THAT(html.body, HasSubstr(absl::StrCat("href=\"/disputes/", id, "\"")));
  EXPECT_THAT(html.body, HasSubstr("openssl-3.0.8"));
  EXPECT_THAT(html.body, HasSubstr("python3-3.11.6"));
  EXPECT_THAT(html.body, Not(HasSubstr("<script")));
}

TEST_F(WebPagesTest, FiltersByNameOperatorAndState) {
  const WebData& data = web_->data();
  EXPECT_THAT(Ids(GetJson("/disputes.json?name=openssl")), ElementsAre(data.refs_dispute_id));
  EXPECT_THAT(Ids(GetJson("/disputes.json?name=python3")), ElementsAre(data.flagged_dispute_id));
  EXPECT_TRUE(Ids(GetJson("/disputes.json?name=hello")).empty());
  EXPECT_EQ(Ids(GetJson("/disputes.json?operator=alice-ci")).size(), 2u);
  EXPECT_EQ(GetJson("/disputes.json?state=open")["total"], 2);
  EXPECT_EQ(GetJson("/disputes.json?state=all")["total"], 2);
  EXPECT_EQ(GetJson("/disputes.json?state=resolved")["total"], 0);
  // Percent-encoded and combined.
  EXPECT_THAT(Ids(GetJson("/disputes.json?name=open%73sl&operator=carol-home&state=open")),
              ElementsAre(data.refs_dispute_id));
  // The form shows the filter it applied.
  const HttpGetAnswer html = Get("/disputes?name=openssl&operator=bob-labs");
  EXPECT_THAT(html.body, HasSubstr("value=\"openssl\""));
  EXPECT_THAT(html.body, HasSubstr("<option value=\"bob-labs\" selected>"));
  EXPECT_THAT(html.body, HasSubstr("1 dispute matches"));
}

TEST_F(WebPagesTest, PagesFollowTheNextLink) {
  const json first = GetJson("/disputes.json?limit=1");
  ASSERT_EQ(first["disputes"].size(), 1u);
  EXPECT_EQ(first["total"], 2);
  ASSERT_TRUE(first["next"].is_string());
  const json second = GetJson(first["next"].get<std::string>());
  ASSERT_EQ(second["disputes"].size(), 1u);
  EXPECT_NE(second["disputes"][0]["id"], first["disputes"][0]["id"]);
  EXPECT_TRUE(second["next"].is_null());

  const HttpGetAnswer html = Get("/disputes?limit=1");
  EXPECT_THAT(html.body, HasSubstr("id=\"next-page\" href=\"/disputes?after="));
}

TEST_F(WebPagesTest, DisputePageShowsTheSidesAndTheirDifferences) {
  const WebData& data = web_->data();
  const json d = GetJson(absl::StrCat("/disputes/", data.refs_dispute_id, ".json"));
  EXPECT_EQ(d["id"], data.refs_dispute_id);
  EXPECT_EQ(d["store_path"], data.refs_dispute.full());
  EXPECT_EQ(d["state"], "open");
  ASSERT_EQ(d["sides"].size(), 2u);
  std::set<std::string> hashes;
  std::set<uint64_t> sizes;
  for (const json& side : d["sides"]) {
    hashes.insert(side["nar_hash"].get<std::string>());
    sizes.insert(side["nar_size"].get<uint64_t>());
  }
  EXPECT_EQ(hashes, (std::set<std::string>{data.refs_majority_hash,
                                           data.refs_minority_hash}));
  EXPECT_EQ(sizes, (std::set<uint64_t>{5'000'000, 5'000'128}));
  EXPECT_TRUE(d["differences"]["nar_hash"]);
  EXPECT_TRUE(d["differences"]["nar_size"]);
  const json& only = d["differences"]["references_on_some_sides"];
  EXPECT_EQ(only.size(), 2u);
  EXPECT_TRUE(only.contains(data.only_majority_reference));
  EXPECT_TRUE(only.contains(data.only_minority_reference));

  // Who signed which side, when, from which derivation, how.
  std::set<std::string> signers;
  for (const json& side : d["sides"]) {
    for (const json& s : side["signers"]) {
      signers.insert(absl::StrCat(s["operator"].get<std::string>(), "/", s["builder"].get<std::string>()));
      EXPECT_TRUE(s["held"]);
      EXPECT_GT(s["received_unix"].get<int64_t>(), 0);
      EXPECT_THAT(s["deriver"].get<std::string>(), HasSubstr("openssl-3.0.8.drv"));
      EXPECT_EQ(s["system"], "x86_64-linux");
      EXPECT_FALSE(s["flagged"]);
    }
  }
  EXPECT_EQ(signers, (std::set<std::string>{"alice-ci/alice-builder-1", "bob-labs/bob-builder-1",
                                            "carol-home/carol-builder-1"}));
  EXPECT_TRUE(d["flagged_builders"].empty());
  EXPECT_TRUE(d["resolutions"].empty());
  auto stored = web_->node().store()->GetDispute(data.refs_dispute_id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ(d["signed_record"], (*stored)->signed_record);

  const HttpGetAnswer html = Get(absl::StrCat("/disputes/", data.refs_dispute_id));
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr(data.refs_majority_hash));
  EXPECT_THAT(html.body, HasSubstr(data.refs_minority_hash));
  EXPECT_THAT(html.body, HasSubstr("<tr id=\"nar-hash\" class=\"diff\">"));
  EXPECT_THAT(html.body, HasSubstr("<tr id=\"nar-size\" class=\"diff\">"));
  EXPECT_THAT(html.body, HasSubstr("5,000,128 bytes"));
  EXPECT_THAT(html.body, Not(HasSubstr("sha256:sha256:")));
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("<tr class=\"reference diff ref-differs\"><th><code>",
                                                data.only_minority_reference)));
  EXPECT_THAT(html.body, HasSubstr("only on this side"));
  EXPECT_THAT(html.body, HasSubstr("build kind: check"));
  EXPECT_THAT(html.body, HasSubstr("build kind: rebuild"));
  // The signed record, as stored (escaping changes nothing in a note's characters but these).
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("<pre id=\"signed-record\">", server::web::Escape((*stored)->signed_record))));
  EXPECT_THAT(html.body, HasSubstr("No maintainer has resolved this dispute yet."));
}

TEST_F(WebPagesTest, FlaggedBuilderIsShown) {
  const WebData& data = web_->data();
  const json d = GetJson(absl::StrCat("/disputes/", data.flagged_dispute_id, ".json"));
  EXPECT_EQ(d["flagged_builders"], json({"alice-builder-2"}));
  EXPECT_FALSE(d["differences"]["nar_size"]);
  EXPECT_TRUE(d["differences"]["nar_hash"]);
  int flagged_signatures = 0;
  for (const json& side : d["sides"]) {
    for (const json& s : side["signers"]) flagged_signatures += s["flagged"].get<bool>() ? 1 : 0;
  }
  EXPECT_EQ(flagged_signatures, 2);
  const HttpGetAnswer html = Get(absl::StrCat("/disputes/", data.flagged_dispute_id));
  EXPECT_THAT(html.body, HasSubstr("<li class=\"flagged\"><code>alice-builder-2</code> of operator alice-ci</li>"));
}

TEST_F(WebPagesTest, SearchShowsTheVerdict) {
  const WebData& data = web_->data();
  json confirmed = GetJson(absl::StrCat("/search.json?path=", data.confirmed.full()));
  EXPECT_EQ(confirmed["verdict"], "CONFIRMED");
  EXPECT_EQ(confirmed["fingerprints"][0]["operators"], json({"alice-ci", "bob-labs"}));
  EXPECT_TRUE(confirmed["dispute_id"].is_null());
  EXPECT_EQ(GetJson(absl::StrCat("/search.json?path=", data.pending.full()))["verdict"], "PENDING");
  EXPECT_EQ(GetJson(absl::StrCat("/search.json?path=", TestStorePath("never-built").full()))["verdict"], "UNKNOWN");
  json disputed = GetJson(absl::StrCat("/search.json?path=", data.refs_dispute.full()));
  EXPECT_EQ(disputed["verdict"], "DISPUTED");
  EXPECT_EQ(disputed["dispute_id"], data.refs_dispute_id);
  EXPECT_EQ(disputed["dispute_url"], absl::StrCat("/disputes/", data.refs_dispute_id));

  // A file inside the store object, with the spaces a copy-paste brings (`+` is a space).
  const HttpGetAnswer html = Get(absl::StrCat("/search?path=+", server::web::UrlEncode(data.confirmed.full()),
                                              "%2Fbin%2Fhello+"));
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr("<span class=\"verdict\" id=\"verdict\">CONFIRMED</span>"));
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("value=\"", data.confirmed.full(), "\"")));

  const HttpGetAnswer dispute = Get(absl::StrCat("/search?path=", data.flagged_dispute.full()));
  EXPECT_THAT(dispute.body, HasSubstr(absl::StrCat("href=\"/disputes/", data.flagged_dispute_id, "\"")));
  EXPECT_THAT(dispute.body, HasSubstr("Flagged builders"));

  // No path: the form and what to type.
  const HttpGetAnswer empty = Get("/search");
  EXPECT_EQ(empty.status, 200);
  EXPECT_THAT(empty.body, HasSubstr("Give a store path"));
}

TEST_F(WebPagesTest, OperatorsPageCountsPerBuilder) {
  const json page = GetJson("/operators.json");
  std::map<std::string, json> builders;
  std::map<std::string, int64_t> operator_disputes;
  for (const json& op : page["operators"]) {
    operator_disputes[op["name"]] = op["disputes"];
    EXPECT_EQ(op["disputes_url"], absl::StrCat("/disputes?operator=", op["name"].get<std::string>()));
    for (const json& b : op["builders"]) builders[b["key"]] = b;
  }
  EXPECT_EQ(operator_disputes, (std::map<std::string, int64_t>{{"alice-ci", 2}, {"bob-labs", 2}, {"carol-home", 2}}));
  // alice-builder-1: hello (agrees) and openssl (a dispute side).
  EXPECT_EQ(builders["alice-builder-1"]["attestations"], 2);
  EXPECT_EQ(builders["alice-builder-1"]["attestations_on_dispute_sides"], 1);
  EXPECT_DOUBLE_EQ(builders["alice-builder-1"]["agreement_rate"].get<double>(), 0.5);
  // alice-builder-2 signed both sides of python3.
  EXPECT_EQ(builders["alice-builder-2"]["attestations"], 2);
  EXPECT_EQ(builders["alice-builder-2"]["flagged_in"], 1);
  EXPECT_DOUBLE_EQ(builders["alice-builder-2"]["agreement_rate"].get<double>(), 0.0);
  EXPECT_EQ(builders["bob-builder-1"]["attestations"], 3);
  EXPECT_EQ(builders["bob-builder-1"]["disputes"], 2);
  EXPECT_EQ(builders["carol-builder-1"]["attestations"], 3);  // zlib, openssl, python3
  EXPECT_THAT(page["agreement_rate_definition"].get<std::string>(), HasSubstr("no side of any dispute"));

  const HttpGetAnswer html = Get("/operators");
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr("href=\"/disputes?operator=carol-home\">2 disputes</a>"));
  EXPECT_THAT(html.body, HasSubstr("<td class=\"rate\">50.0%</td>"));
  EXPECT_THAT(html.body, HasSubstr("Agreement rate</b>: the share"));
}

TEST_F(WebPagesTest, UnknownAndMalformedDisputeIds) {
  const std::string unknown = "d-00000000000000000000000000000000";
  HttpGetAnswer html = Get(absl::StrCat("/disputes/", unknown));
  EXPECT_EQ(html.status, 404);
  EXPECT_EQ(html.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("no dispute ", unknown, " on this node")));
  EXPECT_EQ(GetJson(absl::StrCat("/disputes/", unknown, ".json"), 404)["status"], 404);

  html = Get("/disputes/not-an-id");
  EXPECT_EQ(html.status, 400);
  EXPECT_THAT(html.body, HasSubstr("is malformed: a dispute id is d- and 32 hex characters"));
  EXPECT_EQ(Get("/disputes/").status, 400);
}

TEST_F(WebPagesTest, BadFiltersAre400WithTheReason) {
  HttpGetAnswer answer = Get("/disputes?state=closed");
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(answer.body, HasSubstr("state &#39;closed&#39; is not a dispute state: use open, nondeterministic"));
  EXPECT_THAT(GetJson("/disputes.json?state=closed", 400)["error"].get<std::string>(),
              HasSubstr("is not a dispute state"));
  EXPECT_THAT(GetJson("/disputes.json?operator=mallory", 400)["error"].get<std::string>(),
              HasSubstr("the operators are alice-ci, bob-labs, carol-home"));
  EXPECT_THAT(GetJson("/disputes.json?limit=0", 400)["error"].get<std::string>(), HasSubstr("from 1 to 500"));
  EXPECT_THAT(GetJson("/disputes.json?limit=12x", 400)["error"].get<std::string>(), HasSubstr("from 1 to 500"));
  EXPECT_THAT(GetJson("/disputes.json?after=zzz", 400)["error"].get<std::string>(), HasSubstr("not a page cursor"));
  EXPECT_THAT(GetJson("/disputes.json?page=2", 400)["error"].get<std::string>(), HasSubstr("unknown argument"));
  EXPECT_EQ(GetJson("/search.json?path=", 400)["status"], 400);
}

TEST_F(WebPagesTest, HostileTextFromRequestsIsEscaped) {
  HttpGetAnswer answer = Get("/disputes?name=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%3E");
  EXPECT_EQ(answer.status, 200);
  EXPECT_THAT(answer.body, Not(HasSubstr("<script>")));
  EXPECT_THAT(answer.body, HasSubstr("value=\"&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;\""));

  answer = Get("/search?path=%2Fnix%2Fstore%2F%3Cscript%3Ealert(1)%3C%2Fscript%3E");
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(answer.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(answer.body, Not(HasSubstr("<script>")));
  EXPECT_THAT(answer.body, HasSubstr("not a store path"));
  EXPECT_THAT(answer.body, HasSubstr("&lt;script&gt;"));
  EXPECT_THAT(answer.body, HasSubstr("class=\"error\""));

  answer = Get("/disputes/%3Cscript%3E");
  EXPECT_EQ(answer.status, 400);
  EXPECT_THAT(answer.body, Not(HasSubstr("<script>")));
}

TEST_F(WebPagesTest, PagesCarryNoScriptAndForbidIt) {
  for (const std::string& target : std::vector<std::string>{"/disputes", "/operators", "/search", absl::StrCat("/disputes/", web_->data().refs_dispute_id)}) {
    const HttpGetAnswer answer = Get(target);
    EXPECT_EQ(answer.status, 200) << target;
    EXPECT_THAT(answer.body, Not(HasSubstr("<script"))) << target;
    EXPECT_THAT(answer.body, HasSubstr("<form method=\"get\" action=\"/search\"")) << target;
  }
  const HttpGetAnswer root = Get("/");
  EXPECT_EQ(root.status, 302);
  EXPECT_THAT(root.location, HasSubstr("/disputes"));
}

// ---- resolutions --------------------------------------------------------------------------------

class WebResolutionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(web_.ok()); }
  json GetJson(std::string_view target) {
    HttpGetAnswer answer = HttpGet(web_.Url(target));
    EXPECT_EQ(answer.status, 200) << answer.body;
    return json::parse(answer.body, nullptr, false);
  }
  WebNode web_;
};

TEST_F(WebResolutionTest, HistoryStateAndFilters) {
  const WebData& data = web_.data();
  const std::string hostile = "<script>alert('x')</script> & embedded timestamps differ";
  web_.Resolve(data.refs_dispute, consensus::ResolutionOutcome::kNondeterministic, hostile, {}, 1700000100);
  web_.Resolve(data.refs_dispute, consensus::ResolutionOutcome::kResolved, "fixed upstream in 3.0.9", {}, 1700000200);
  web_.Resolve(data.flagged_dispute, consensus::ResolutionOutcome::kMalicious, "alice-builder-2 key leaked",
               {"alice-builder-2"}, 1700000300);

  const json d = GetJson(absl::StrCat("/disputes/", data.refs_dispute_id, ".json"));
  EXPECT_EQ(d["state"], "resolved");
  ASSERT_EQ(d["resolutions"].size(), 2u);
  EXPECT_EQ(d["resolutions"][0]["outcome"], "nondeterministic");
  EXPECT_EQ(d["resolutions"][0]["note"], hostile);
  EXPECT_EQ(d["resolutions"][0]["maintainer"], "maint-1");
  EXPECT_EQ(d["resolutions"][0]["time_unix"], 1700000100);
  EXPECT_EQ(d["resolutions"][1]["outcome"], "resolved");
  // The excluded builder is marked on the operators page.
  const json operators = GetJson("/operators.json");
  for (const json& op : operators["operators"]) {
    for (const json& b : op["builders"]) EXPECT_EQ(b["excluded"], b["key"] == "alice-builder-2") << b.dump();
  }
  EXPECT_THAT(HttpGet(web_.Url("/operators")).body,
              HasSubstr("<code>alice-builder-2</code> <span class=\"flagged excluded\">excluded"));
  const json flagged = GetJson(absl::StrCat("/disputes/", data.flagged_dispute_id, ".json"));
  EXPECT_EQ(flagged["state"], "malicious");
  EXPECT_EQ(flagged["resolutions"][0]["builders"], json({"alice-builder-2"}));

  // Open first: nothing is open any more; the filters follow the states.
  EXPECT_EQ(GetJson("/disputes.json?state=open")["total"], 0);
  EXPECT_EQ(GetJson("/disputes.json?state=resolved")["disputes"][0]["id"], data.refs_dispute_id);
  EXPECT_EQ(GetJson("/disputes.json?state=malicious")["disputes"][0]["id"], data.flagged_dispute_id);

  const HttpGetAnswer html = HttpGet(web_.Url(absl::StrCat("/disputes/", data.refs_dispute_id)));
  EXPECT_THAT(html.body, Not(HasSubstr("<script>")));
  EXPECT_THAT(html.body, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; embedded timestamps differ"));
  EXPECT_THAT(html.body, HasSubstr("<td class=\"outcome\">nondeterministic</td>"));
  EXPECT_THAT(html.body, HasSubstr("fixed upstream in 3.0.9"));
  EXPECT_THAT(html.body, HasSubstr("<td id=\"state\">resolved</td>"));
  EXPECT_THAT(html.body, HasSubstr("<code>maint-1</code>"));
  EXPECT_THAT(html.body, HasSubstr("class=\"signed-resolution\""));
}

}  // namespace
}  // namespace attest::testing
