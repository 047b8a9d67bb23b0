// server/web for derivation outputs (realisations of content-addressed derivations) over real HTTP from
// a real node: a derivation output two operators realised as different paths has its dispute in the
// list, a dispute page with the output paths side by side, and a search answer; a CONFIRMED one is
// found by its key in either format.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/realisation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/web/html.h"
#include "tests/web/web_fixture.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// drv_name's output "out" realised as the path whose hash part is 32 times `build` (a nix32 character).
consensus::Realisation TraceClaim(std::string_view drv_name, char build) {
  auto key = consensus::RealisationKey::FromDrvPath(TestStorePath(std::string(drv_name) + ".drv"), "out");
  EXPECT_TRUE(key.ok()) << key.status();
  auto out = consensus::StorePath::Parse(absl::StrCat("/nix/store/", std::string(32, build), "-", key->ExpectedOutPathName()));
  EXPECT_TRUE(out.ok()) << out.status();
  auto claim = consensus::Realisation::Create(*key, *out);
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

class RealisationPagesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    web_ = new WebNode();
    if (!web_->ok()) return;
    const WebFederation& f = web_->federation();
    // flaky-1.0: alice and bob realise it as one path, carol as another (DISPUTED);
    // stable-2.0: alice and bob agree (CONFIRMED).
    web_->SubmitRealisations({consensus::SignRealisation(flaky_a(), f.alice1),
                              consensus::SignRealisation(flaky_a(), f.bob),
                              consensus::SignRealisation(flaky_b(), f.carol),
                              consensus::SignRealisation(stable(), f.alice1),
                              consensus::SignRealisation(stable(), f.bob)});
  }
  static void TearDownTestSuite() {
    delete web_;
    web_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(web_->ok()); }

  static consensus::Realisation flaky_a() { return TraceClaim("flaky-1.0", 'a'); }
  static consensus::Realisation flaky_b() { return TraceClaim("flaky-1.0", 'b'); }
  static consensus::Realisation stable() { return TraceClaim("stable-2.0", 'x'); }

  static json GetJson(std::string_view target, long expected_status = 200) {
    HttpGetAnswer answer = HttpGet(web_->Url(target));
    EXPECT_EQ(answer.status, expected_status) << target << ": " << answer.body;
    json parsed = json::parse(answer.body, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << answer.body;
    return parsed;
  }

  static WebNode* web_;
};

WebNode* RealisationPagesTest::web_ = nullptr;

TEST_F(RealisationPagesTest, TheDisputeIsListedWithItsKeyAndFoundByName) {
  const std::string id = consensus::DisputeId(flaky_a().key);
  const json list = GetJson("/disputes.json?name=flaky-1.0");
  ASSERT_EQ(list["disputes"].size(), 1u) << list.dump();
  EXPECT_EQ(list["disputes"][0]["id"], id);
  EXPECT_EQ(list["disputes"][0]["realisation_key"], flaky_a().key.ToString());
  EXPECT_EQ(list["disputes"][0]["store_path"], "");
  EXPECT_EQ(list["disputes"][0]["fingerprint_count"], 2);
  const HttpGetAnswer html = HttpGet(web_->Url("/disputes?name=flaky"));
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("href=\"/disputes/", id, "\"")));
}

TEST_F(RealisationPagesTest, TheDisputePageShowsTheOutputPathsSideBySide) {
  const std::string id = consensus::DisputeId(flaky_a().key);
  const json page = GetJson(absl::StrCat("/disputes/", id, ".json"));
  EXPECT_EQ(page["realisation_key"], flaky_a().key.ToString());
  ASSERT_EQ(page["sides"].size(), 2u);
  std::vector<std::string> out_paths;
  for (const json& side : page["sides"]) {
    out_paths.push_back(side.value("out_path", ""));
    for (const json& signer : side["signers"]) EXPECT_TRUE(signer["held"].get<bool>()) << signer.dump();
  }
  EXPECT_THAT(out_paths, ::testing::UnorderedElementsAre(flaky_a().out_path.full(), flaky_b().out_path.full()));
  EXPECT_THAT(page.value("signed_record", ""), HasSubstr(absl::StrCat("\nrealisation ", flaky_a().key.ToString(), "\n")));

  const HttpGetAnswer html = HttpGet(web_->Url(absl::StrCat("/disputes/", id)));
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr("Derivation output"));
  EXPECT_THAT(html.body, HasSubstr(absl::StrCat("<code class=\"out-path\">", flaky_b().out_path.full(), "</code>")));
  EXPECT_THAT(html.body, HasSubstr("carol-home"));
}

TEST_F(RealisationPagesTest, SearchAnswersForAKey) {
  const json disputed = GetJson(absl::StrCat("/search.json?path=", server::web::UrlEncode(flaky_a().key.ToString())));
  EXPECT_EQ(disputed["verdict"], "DISPUTED");
  EXPECT_EQ(disputed["dispute_id"], consensus::DisputeId(flaky_a().key));
  EXPECT_TRUE(disputed["out_path"].is_null());

  const json confirmed = GetJson(absl::StrCat("/search.json?path=", server::web::UrlEncode(stable().key.ToString())));
  EXPECT_EQ(confirmed["verdict"], "CONFIRMED");
  EXPECT_EQ(confirmed["out_path"], stable().out_path.full());
  EXPECT_EQ(confirmed["fingerprints"][0]["operators"], json({"alice-ci", "bob-labs"}));

  const HttpGetAnswer html =
      HttpGet(web_->Url(absl::StrCat("/search?path=", server::web::UrlEncode(flaky_a().key.ToString()))));
  EXPECT_EQ(html.status, 200);
  EXPECT_THAT(html.body, HasSubstr("<span class=\"verdict\" id=\"verdict\">DISPUTED</span>"));
  EXPECT_THAT(html.body, HasSubstr(flaky_b().out_path.full()));

  // A malformed key is a 400 naming the problem.
  const HttpGetAnswer bad = HttpGet(web_->Url(absl::StrCat("/search?path=", server::web::UrlEncode("sha256:abc!out"))));
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("not a realisation key"));
}

}  // namespace
}  // namespace attest::testing
