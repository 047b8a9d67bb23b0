// The rebuild queue page (/wanted, /wanted.json) and the stored derivations (/drv/), served by the web
// routes on their own HTTP port over the fixture node's store, with the queue's collaborators made here
// as the node makes them: a real DemandBook filled by requests from several client addresses, a real
// RebuildBook with a lease and reported results, a RebuildQueue, and a DerivationIntake that verified
// and stored two .drv files real Nix wrote (tests/testdata/derivations: attest-lib and its input
// attest-dep) after a builder attested attest-lib's output through the node's Submit RPC. Checked over
// plain HTTP (HTML and JSON twin, bad arguments, exact bytes of a .drv and a closure in order) and in
// a real headless Chromium.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "consensus/attestation.h"
#include "consensus/derivation_paths.h"
#include "consensus/dispute.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/demand_book.h"
#include "server/derivation_intake.h"
#include "server/dispute_view.h"
#include "server/http_server.h"
#include "server/node_config.h"
#include "server/rebuild_book.h"
#include "server/rebuild_queue.h"
#include "server/status_query.h"
#include "server/web/html.h"
#include "server/web/web_routes.h"
#include "server/policy_book.h"
#include "storage/derivation_store.h"
#include "tests/web/web_fixture.h"
#include "tests/web/webdriver.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1795582000);

// Real Nix 2.8 output (tests/testdata/derivations/README.md): attest-lib (outputs out and dev) built
// from attest-dep.
constexpr char kLibDrv[] = "/nix/store/lx6di0r8a7q8wv01m45xg563ziw7bh9d-attest-lib.drv";
constexpr char kDepDrv[] = "/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv";
constexpr char kLibOut[] = "/nix/store/9md3cqbxvb9qc9xyc71xvfy6wwfmv2m5-attest-lib";

// What a rebuilder may report as its reason: the node stores it as given.
constexpr char kHostileDetail[] = "cc1: error: <script>alert(1)</script> & \"quoted\" 'x'";
constexpr char kHostileDetailEscaped[] =
    "cc1: error: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#39;x&#39;";

std::string DrvFile(std::string_view store_path) {
  return ReadFileOrDie(absl::StrCat(ATTEST_TESTDATA_DIR, "/derivations/", std::string(store_path.substr(11))));
}

consensus::StorePath Path(std::string_view full) {
  auto path = consensus::StorePath::Parse(full);
  EXPECT_TRUE(path.ok()) << path.status();
  return *std::move(path);
}

class WantedPageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { suite_ = new Suite(); }
  static void TearDownTestSuite() {
    delete suite_;
    suite_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(suite_->ready) << "the suite's setup failed; see the first failure"; }

  struct Suite final {
    Suite() {
      if (!web.ok()) return;
      const WebFederation& f = web.federation();
      auto parsed = consensus::Policy::ParseToml(f.PolicyToml(), "policy.toml");
      if (!parsed.ok()) {
        ADD_FAILURE() << parsed.status();
        return;
      }
      policy = std::make_unique<server::PolicyBook>(*std::move(parsed));
      derivations = dynamic_cast<storage::DerivationStore*>(web.node().store());
      if (derivations == nullptr) {
        ADD_FAILURE() << "the node's store holds no derivations";
        return;
      }
      status_query = std::make_unique<server::StatusQuery>(*policy, web.node().store(), server::StatusQueryOptions{});
      dispute_view = std::make_unique<server::DisputeView>(*policy, web.node().store());
      const server::RebuildQueue::Clock clock = [] { return kNow; };
      intake = std::make_unique<server::DerivationIntake>(derivations, web.node().store(), clock);
      queue = std::make_unique<server::RebuildQueue>(*policy, web.node().store(), derivations, &demand, &book,
                                                     nullptr, clock);

      // alice-ci built attest-lib and pushed it with its derivations, as `attest push` does.
      const consensus::StorePath lib_out = Path(kLibOut);
      auto claim = consensus::PathInfo::Create(lib_out, TestClaim("attest-lib", "lib").nar_hash, 4096, {});
      if (!claim.ok()) {
        ADD_FAILURE() << claim.status();
        return;
      }
      web.Submit({consensus::SignAttestation(*claim, f.alice1,
                                             consensus::BuildMetadata{.deriver = kLibDrv,
                                                                      .output_name = "out",
                                                                      .system = "x86_64-linux",
                                                                      .build_kind = consensus::BuildKind::kFirstBuild,
                                                                      .build_time_unix = 1795500000})});
      const std::vector<server::DerivationUpload> uploads = {{.store_path = kLibDrv, .contents = DrvFile(kLibDrv)},
                                                             {.store_path = kDepDrv, .contents = DrvFile(kDepDrv)}};
      auto verdicts = intake->Submit(uploads);
      if (!verdicts.ok()) {
        ADD_FAILURE() << verdicts.status();
        return;
      }
      for (const server::DerivationVerdict& verdict : *verdicts) {
        if (verdict.outcome != server::DerivationOutcome::kStored) {
          ADD_FAILURE() << "a derivation was not stored: " << verdict.reason;
          return;
        }
      }

      // Demand as the node counts it: attest-lib asked by three clients, the pending zlib by one, the
      // disputed python by two.
      const WebData& d = web.data();
      for (const char* client : {"192.0.2.1", "192.0.2.2", "192.0.2.3"}) demand.Record(lib_out, client, kNow);
      demand.Record(d.pending, "192.0.2.1", kNow);
      for (const char* client : {"192.0.2.1", "192.0.2.2"}) demand.Record(d.flagged_dispute, client, kNow);

      // bob-labs' builder is rebuilding attest-lib; carol's failed on zlib, alice-builder-2 rebuilt it.
      auto lease = book.Acquire(lib_out, "bob-labs", "bob-builder-1", kNow - absl::Minutes(5));
      if (!lease.ok()) {
        ADD_FAILURE() << lease.status();
        return;
      }
      book.Report(server::RebuildResult{.path = d.pending, .operator_name = "alice-ci", .builder = "alice-builder-2",
                                        .built = true, .detail = "", .reported = kNow - absl::Minutes(20)});
      book.Report(server::RebuildResult{.path = d.pending, .operator_name = "carol-home",
                                        .builder = "carol-builder-1", .built = false, .detail = kHostileDetail,
                                        .reported = kNow - absl::Minutes(10)});

      server::HttpRouter router;
      server::web::AddRoutes(router, *policy, web.node().store(), status_query.get(), dispute_view.get(), nullptr, {},
                             nullptr, queue.get(), &book, intake.get(), clock);
      auto started = server::HttpServer::Start(server::ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
      if (!started.ok()) {
        ADD_FAILURE() << started.status();
        return;
      }
      http = *std::move(started);
      ready = true;
    }

    WebNode web;
    std::unique_ptr<server::PolicyBook> policy;
    storage::DerivationStore* derivations = nullptr;
    std::unique_ptr<server::StatusQuery> status_query;
    std::unique_ptr<server::DisputeView> dispute_view;
    server::DemandBook demand;
    server::RebuildBook book;
    std::unique_ptr<server::DerivationIntake> intake;
    std::unique_ptr<server::RebuildQueue> queue;
    std::unique_ptr<server::HttpServer> http;  // last: stopped first
    bool ready = false;
  };

  static std::string Url(std::string_view target) {
    return absl::StrCat("http://127.0.0.1:", suite_->http->port(), std::string(target));
  }
  static HttpGetAnswer Get(std::string_view target) { return HttpGet(Url(target)); }
  static json GetJson(std::string_view target, long expected_status = 200) {
    HttpGetAnswer answer = Get(target);
    EXPECT_EQ(answer.status, expected_status) << target << ": " << answer.body;
    EXPECT_EQ(answer.content_type, "application/json") << target;
    json parsed = json::parse(answer.body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << answer.body;
    return parsed;
  }
  static std::vector<std::string> PathsOf(const json& list) {
    std::vector<std::string> paths;
    for (const json& item : list) paths.push_back(item["storePath"]);
    return paths;
  }
  static std::string DrvBase(std::string_view full) { return std::string(full.substr(11)); }

  static Suite* suite_;
};

WantedPageTest::Suite* WantedPageTest::suite_ = nullptr;

TEST_F(WantedPageTest, JsonTwinHasTheQueueInTheShapeOfTheRpc) {
  const WebData& d = suite_->web.data();
  const size_t demand_paths = suite_->demand.stats().paths;
  const json page = GetJson("/wanted.json");
  EXPECT_EQ(page["demandPaths"], demand_paths);
  EXPECT_EQ(page["quorum"], 2);
  EXPECT_EQ(page["truncated"], false);
  EXPECT_EQ(page["operator"], "");
  EXPECT_EQ(page["limit"], server::kDefaultWantedLimit);
  // Highest demand first; the disputed path apart.
  EXPECT_EQ(PathsOf(page["wanted"]), (std::vector<std::string>{kLibOut, d.pending.full()}));
  EXPECT_EQ(PathsOf(page["disputed"]), std::vector<std::string>{d.flagged_dispute.full()});

  const json& lib = page["wanted"][0];
  EXPECT_EQ(lib["verdict"], "PENDING");
  // Demand is kept as a logarithm (server/demand_book.h): three requests, up to rounding.
  EXPECT_NEAR(lib["demand"].get<double>(), 3.0, 1e-9);
  EXPECT_EQ(lib["lastRequestedUnix"], absl::ToUnixSeconds(kNow));
  EXPECT_EQ(lib["operatorsNeeded"], 1);
  EXPECT_EQ(lib["operators"], json({"alice-ci"}));
  EXPECT_EQ(lib["derivers"], json::parse(absl::StrCat(R"([{"drvPath":")", kLibDrv,
                                                      R"(","outputName":"out","available":true}])")));
  EXPECT_EQ(lib["disputeId"], "");
  ASSERT_EQ(lib["leases"].size(), 1u);
  EXPECT_EQ(lib["leases"][0], json({{"storePath", kLibOut},
                                    {"operator", "bob-labs"},
                                    {"builder", "bob-builder-1"},
                                    {"expiresUnix", absl::ToUnixSeconds(kNow + absl::Minutes(25))}}));

  const json& zlib = page["wanted"][1];
  EXPECT_EQ(zlib["operators"], json({"carol-home"}));
  ASSERT_EQ(zlib["derivers"].size(), 1u);
  EXPECT_EQ(zlib["derivers"][0]["drvPath"], TestStorePath("zlib-1.3.drv").full());
  EXPECT_EQ(zlib["derivers"][0]["available"], false);

  const json& python = page["disputed"][0];
  EXPECT_EQ(python["verdict"], "DISPUTED");
  EXPECT_EQ(python["disputeId"], d.flagged_dispute_id);
  EXPECT_NEAR(python["demand"].get<double>(), 2.0, 1e-9);

  ASSERT_EQ(page["rebuildsUnderWay"].size(), 1u);
  EXPECT_EQ(page["rebuildsUnderWay"][0]["builder"], "bob-builder-1");
  EXPECT_EQ(page["rebuildsUnderWay"][0]["takenUnix"], absl::ToUnixSeconds(kNow - absl::Minutes(5)));
  ASSERT_EQ(page["recentResults"].size(), 2u);
  // Newest first.
  EXPECT_EQ(page["recentResults"][0], json({{"storePath", d.pending.full()},
                                            {"operator", "carol-home"},
                                            {"builder", "carol-builder-1"},
                                            {"built", false},
                                            {"detail", kHostileDetail},
                                            {"reportedUnix", absl::ToUnixSeconds(kNow - absl::Minutes(10))}}));
  EXPECT_EQ(page["recentResults"][1]["built"], true);
}

TEST_F(WantedPageTest, HtmlShowsTheQueueLeasesAndResults) {
  const WebData& d = suite_->web.data();
  const HttpGetAnswer page = Get("/wanted");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(page.headers, HasSubstr("Content-Security-Policy: default-src 'none'"));
  EXPECT_THAT(page.body, HasSubstr("Quorum: <b id=\"quorum\">2</b>"));
  EXPECT_THAT(page.body, HasSubstr("In the queue: <b id=\"queue-length\">2</b> wanted and "
                                   "<b id=\"disputed-length\">1</b> disputed"));

  // The wanted table: attest-lib before zlib, with its demand, the operator that attested it and its
  // derivation, linked because the node holds it with its input.
  const size_t wanted = page.body.find("<table id=\"wanted\"");
  const size_t disputed = page.body.find("<table id=\"disputed\"");
  const size_t leases = page.body.find("<table id=\"leases\"");
  const size_t results = page.body.find("<table id=\"results\"");
  ASSERT_NE(wanted, std::string::npos);
  ASSERT_NE(disputed, std::string::npos);
  ASSERT_NE(leases, std::string::npos);
  ASSERT_NE(results, std::string::npos);
  EXPECT_LT(wanted, disputed);
  EXPECT_LT(disputed, leases);
  EXPECT_LT(leases, results);
  const std::string wanted_table = page.body.substr(wanted, disputed - wanted);
  const size_t lib_row = wanted_table.find(kLibOut);
  const size_t zlib_row = wanted_table.find(d.pending.full());
  ASSERT_NE(lib_row, std::string::npos);
  ASSERT_NE(zlib_row, std::string::npos);
  EXPECT_LT(lib_row, zlib_row);
  EXPECT_THAT(wanted_table, HasSubstr("<span class=\"demand\">3.00</span>"));
  EXPECT_THAT(wanted_table, HasSubstr(absl::StrCat("<a class=\"drv\" href=\"/drv/", DrvBase(kLibDrv), "\"><code>",
                                                   kLibDrv, "</code></a> output <code>out</code>, available")));
  EXPECT_THAT(wanted_table, HasSubstr(absl::StrCat("<code>", TestStorePath("zlib-1.3.drv").full(),
                                                   "</code> output <code>out</code>, <span class=\"muted\">not held")));
  EXPECT_THAT(wanted_table, HasSubstr("<li class=\"lease\"><code>bob-builder-1</code> of bob-labs, until "));
  EXPECT_THAT(wanted_table, Not(HasSubstr(d.flagged_dispute.full())));
  EXPECT_THAT(wanted_table, Not(HasSubstr(d.confirmed.full())));

  // The disputed one in its own table, linked to its dispute.
  const std::string disputed_table = page.body.substr(disputed, leases - disputed);
  EXPECT_THAT(disputed_table, HasSubstr(d.flagged_dispute.full()));
  EXPECT_THAT(disputed_table, HasSubstr(absl::StrCat("href=\"/disputes/", d.flagged_dispute_id, "\"")));

  const std::string leases_table = page.body.substr(leases, results - leases);
  EXPECT_THAT(leases_table, HasSubstr(kLibOut));
  EXPECT_THAT(leases_table, HasSubstr("<td>bob-labs</td><td><code>bob-builder-1</code></td>"));
  EXPECT_THAT(leases_table, HasSubstr(server::web::ShowTime(absl::ToUnixSeconds(kNow + absl::Minutes(25)))));

  // The failed rebuild with its reason, escaped; the built one.
  const std::string results_table = page.body.substr(results);
  EXPECT_THAT(results_table,
              HasSubstr(absl::StrCat("<span class=\"flagged\">failed</span>: <code class=\"detail\">",
                                     kHostileDetailEscaped, "</code>")));
  EXPECT_THAT(results_table, HasSubstr("<tr class=\"result built\">"));
  EXPECT_THAT(page.body, Not(HasSubstr("<script")));
  EXPECT_THAT(page.body, HasSubstr("<a href=\"/wanted.json\">This page as JSON</a>"));
}

TEST_F(WantedPageTest, OperatorLeavesOutWhatItAttested) {
  const WebData& d = suite_->web.data();
  const json alice = GetJson("/wanted.json?operator=alice-ci&limit=5");
  EXPECT_EQ(PathsOf(alice["wanted"]), std::vector<std::string>{d.pending.full()});
  EXPECT_EQ(alice["operator"], "alice-ci");
  EXPECT_EQ(alice["limit"], 5);
  const json carol = GetJson("/wanted.json?operator=carol-home");
  EXPECT_EQ(PathsOf(carol["wanted"]), std::vector<std::string>{kLibOut});
  const json one = GetJson("/wanted.json?limit=1");
  EXPECT_EQ(PathsOf(one["wanted"]), std::vector<std::string>{kLibOut});

  const HttpGetAnswer page = Get("/wanted?operator=carol-home");
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("<option value=\"carol-home\" selected>"));
  EXPECT_THAT(page.body, HasSubstr("leaving out what carol-home attested"));
  EXPECT_THAT(page.body, HasSubstr("<a href=\"/wanted.json?operator=carol-home\">"));
}

TEST_F(WantedPageTest, ConfirmedPathsAreNotListed) {
  const WebData& d = suite_->web.data();
  suite_->demand.Record(d.confirmed, "192.0.2.9", kNow);
  const json page = GetJson("/wanted.json");
  for (const json* list : {&page["wanted"], &page["disputed"]}) {
    for (const std::string& path : PathsOf(*list)) EXPECT_NE(path, d.confirmed.full());
  }
  // The queue found it CONFIRMED and dropped its demand.
  EXPECT_EQ(suite_->demand.DemandOf(d.confirmed, kNow), 0);
}

TEST_F(WantedPageTest, BadArgumentsAre400WithTheReason) {
  struct Case {
    std::string query;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"limit=abc", "limit 'abc' is not a number from 1 to 10000"},
           {"limit=0", "limit '0' is not a number from 1 to 10000"},
           {"limit=10001", "limit '10001' is not a number from 1 to 10000"},
           {"operator=nobody", "operator 'nobody' is not an operator of the policy; the operators are alice-ci, "
                               "bob-labs, carol-home"},
           {"colour=blue", "unknown argument 'colour'; /wanted takes operator and limit"},
       }) {
    const json error = GetJson(absl::StrCat("/wanted.json?", c.query), 400);
    EXPECT_EQ(error["status"], 400) << c.query;
    EXPECT_THAT(error["error"].get<std::string>(), HasSubstr(c.message)) << c.query;
    const HttpGetAnswer page = Get(absl::StrCat("/wanted?", c.query));
    EXPECT_EQ(page.status, 400) << c.query;
    EXPECT_THAT(page.body, HasSubstr(server::web::Escape(c.message))) << c.query;
  }
  const HttpGetAnswer hostile = Get("/wanted?operator=%3Cscript%3Ealert(1)%3C/script%3E");
  EXPECT_EQ(hostile.status, 400);
  EXPECT_THAT(hostile.body, Not(HasSubstr("<script")));
}

TEST_F(WantedPageTest, DrvServesTheFileByteForByte) {
  const std::string lib = DrvFile(kLibDrv);
  const HttpGetAnswer answer = Get(absl::StrCat("/drv/", DrvBase(kLibDrv)));
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(answer.body, lib);
  EXPECT_THAT(answer.headers, HasSubstr("immutable"));
  EXPECT_EQ(Get(absl::StrCat("/drv/", DrvBase(kDepDrv))).body, DrvFile(kDepDrv));
}

TEST_F(WantedPageTest, DrvClosureIsInputsFirst) {
  const json closure = GetJson(absl::StrCat("/drv/", DrvBase(kLibDrv), "?closure=1"));
  ASSERT_EQ(closure["derivations"].size(), 2u) << closure.dump();
  EXPECT_EQ(closure["derivations"][0]["storePath"], kDepDrv);
  EXPECT_EQ(closure["derivations"][0]["contents"], DrvFile(kDepDrv));
  EXPECT_EQ(closure["derivations"][1]["storePath"], kLibDrv);
  EXPECT_EQ(closure["derivations"][1]["contents"], DrvFile(kLibDrv));
  EXPECT_EQ(closure["missing"], json::array());
  // closure=0 is the file.
  EXPECT_EQ(Get(absl::StrCat("/drv/", DrvBase(kLibDrv), "?closure=0")).body, DrvFile(kLibDrv));
}

// Nix writes a derivation's strings byte for byte, so a .drv may hold bytes that are not UTF-8: the
// file is still served exact, and the closure's JSON carries it in base64.
TEST_F(WantedPageTest, DrvThatIsNotUtf8ComesInBase64) {
  const std::string contents =
      "Derive([(\"out\",\"\",\"r:sha256\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[],"
      "[(\"latin1\",\"gr\xfc\xdf\")])";
  auto path = consensus::TextStorePath("attest-bytes.drv", contents, {});
  ASSERT_TRUE(path.ok()) << path.status();
  // Straight into the store (the intake would want an attested output; the encoding is what is tested).
  auto put = suite_->derivations->PutDerivations(std::vector<storage::StoredDerivation>{
      {.path = *path, .contents = contents, .input_derivations = {}, .outputs = {}, .received_unix = 1795582000}});
  ASSERT_TRUE(put.ok()) << put.status();

  EXPECT_EQ(Get(absl::StrCat("/drv/", DrvBase(path->full()))).body, contents);
  const json closure = GetJson(absl::StrCat("/drv/", DrvBase(path->full()), "?closure=1"));
  ASSERT_EQ(closure["derivations"].size(), 1u);
  EXPECT_FALSE(closure["derivations"][0].contains("contents"));
  EXPECT_EQ(closure["derivations"][0]["contentsBase64"], absl::Base64Escape(contents));
}

TEST_F(WantedPageTest, DrvUnknownAndMalformed) {
  const std::string unknown = DrvBase(TestStorePath("never-sent.drv").full());
  const HttpGetAnswer missing = Get(absl::StrCat("/drv/", unknown));
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(missing.body, HasSubstr("not held"));
  const json missing_closure = GetJson(absl::StrCat("/drv/", unknown, "?closure=1"), 404);
  EXPECT_THAT(missing_closure["error"].get<std::string>(), HasSubstr("not held"));

  for (const std::string& target : {
           std::string("/drv/"),
           std::string("/drv/not-a-store-path.drv"),
           absl::StrCat("/drv/", DrvBase(kLibOut)),  // an output, not a .drv
           absl::StrCat("/drv/", DrvBase(kLibDrv), "/extra"),
           absl::StrCat("/drv/", DrvBase(kLibDrv), "?closure=yes"),
           absl::StrCat("/drv/", DrvBase(kLibDrv), "?format=json"),
       }) {
    const HttpGetAnswer answer = Get(target);
    EXPECT_EQ(answer.status, 400) << target << ": " << answer.body;
    EXPECT_THAT(answer.body, Not(HasSubstr("Derive("))) << target;
  }
}

TEST_F(WantedPageTest, EveryPageLinksToTheQueue) {
  // The fixture node's own pages (its routes are wired by the node).
  for (const char* target : {"/disputes", "/operators", "/search"}) {
    const HttpGetAnswer page = HttpGet(suite_->web.Url(target));
    EXPECT_EQ(page.status, 200) << target;
    EXPECT_THAT(page.body, HasSubstr("<a href=\"/wanted\">Wanted</a>")) << target;
  }
}

// The node wires the routes with its own queue, leases and derivations.
TEST_F(WantedPageTest, TheNodeServesTheQueueAndItsDerivations) {
  const json page = json::parse(HttpGet(suite_->web.Url("/wanted.json")).body, nullptr, false);
  ASSERT_FALSE(page.is_discarded());
  EXPECT_EQ(page["quorum"], 2);
  EXPECT_TRUE(page["wanted"].is_array());
  EXPECT_TRUE(page["rebuildsUnderWay"].is_array());
  // The suite stored attest-lib's derivations in the node's store, so the node serves them too.
  EXPECT_EQ(HttpGet(suite_->web.Url(absl::StrCat("/drv/", DrvBase(kLibDrv)))).body, DrvFile(kLibDrv));
  EXPECT_EQ(HttpGet(suite_->web.Url("/drv/not-a-drv")).status, 400);
}

// In Chromium: the tables are there, the derivation link leads to the file, the hostile detail is text.
TEST_F(WantedPageTest, BrowserShowsTheQueue) {
  TempDir logs;
  auto started = WebDriver::Start(logs.path());
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<WebDriver> driver = *std::move(started);
  ASSERT_TRUE(driver->SetWindowSize(1200, 1000).ok());
  ASSERT_TRUE(driver->Navigate(Url("/wanted")).ok());

  auto rows = driver->FindAll("#wanted tr.wanted-path");
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->size(), 2u);
  auto disputed = driver->FindAll("#disputed tr.disputed-path a.dispute-link");
  ASSERT_TRUE(disputed.ok()) << disputed.status();
  EXPECT_EQ(disputed->size(), 1u);
  auto detail = driver->Find("#results tr.failed code.detail");
  ASSERT_TRUE(detail.ok()) << detail.status();
  auto detail_text = driver->Text(*detail);
  ASSERT_TRUE(detail_text.ok()) << detail_text.status();
  EXPECT_EQ(*detail_text, kHostileDetail);
  auto injected = driver->FindAll("main script");
  ASSERT_TRUE(injected.ok());
  EXPECT_TRUE(injected->empty());

  // For people to look at: the queue with a lease and a failed rebuild.
  auto png = driver->Screenshot();
  ASSERT_TRUE(png.ok()) << png.status();
  std::filesystem::create_directories(ATTEST_WEB_ARTIFACT_DIR);
  const std::string path = absl::StrCat(ATTEST_WEB_ARTIFACT_DIR, "/wanted.png");
  std::ofstream(path, std::ios::binary) << *png;
  std::printf("screenshot: %s\n", path.c_str());

  auto link = driver->Find("#wanted a.drv");
  ASSERT_TRUE(link.ok()) << link.status();
  ASSERT_TRUE(driver->Click(*link).ok());
  auto url = driver->CurrentUrl();
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(*url, Url(absl::StrCat("/drv/", DrvBase(kLibDrv))));
  auto source = driver->PageSource();
  ASSERT_TRUE(source.ok());
  EXPECT_THAT(*source, HasSubstr("attest-dep.drv"));
}

}  // namespace
}  // namespace attest::testing
