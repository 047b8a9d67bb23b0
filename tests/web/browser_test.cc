// The web pages in a real headless Chromium, driven over WebDriver: the dispute list shows what the
// database holds, its links lead to the dispute pages, which show both fingerprints, the signers and
// the marked differences (and the resolution history once there is one); the search box and the
// filter form work without JavaScript; a screenshot of a dispute page is saved for people to look at.
// After a signed policy update revokes a builder key, the operators page shows the new version and
// marks the key revoked.
//
// Chromium and chromedriver must be installed (scripts/install-deps); without them this test fails
// and says what to install.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "consensus/policy_update.h"
#include "consensus/resolution.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/attestation_store.h"
#include "tests/web/web_fixture.h"
#include "tests/web/webdriver.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::chrono::seconds kPageDeadline(30);

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const absl::Status _status = (expr);                     \
    ASSERT_TRUE(_status.ok()) << #expr << ": " << _status;   \
  } while (false)

// The value of a StatusOr, or a test failure.
#define WEB_CONCAT_INNER(a, b) a##b
#define WEB_CONCAT(a, b) WEB_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) ASSERT_OK_AND_ASSIGN_IMPL(WEB_CONCAT(result_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(result, lhs, expr)                 \
  auto result = (expr);                                              \
  ASSERT_TRUE(result.ok()) << #expr << ": " << result.status();      \
  lhs = *std::move(result)

class BrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(web_.ok());
    auto driver = WebDriver::Start(logs_.path());
    ASSERT_TRUE(driver.ok()) << driver.status();
    driver_ = *std::move(driver);
  }

  // Saves the viewport as a PNG under the build tree's test-artifacts/ and prints where.
  void SaveScreenshot(const std::string& name) {
    auto png = driver_->Screenshot();
    ASSERT_TRUE(png.ok()) << png.status();
    ASSERT_GT(png->size(), 8u);
    EXPECT_EQ(png->substr(1, 3), "PNG");
    std::filesystem::create_directories(ATTEST_WEB_ARTIFACT_DIR);
    const std::string path = absl::StrCat(ATTEST_WEB_ARTIFACT_DIR, "/", name);
    std::ofstream(path, std::ios::binary) << *png;
    ASSERT_TRUE(std::filesystem::file_size(path) == png->size());
    std::printf("screenshot: %s\n", path.c_str());
  }

  std::string TextOf(const std::string& css) {
    auto element = driver_->Find(css);
    if (!element.ok()) {
      ADD_FAILURE() << css << ": " << element.status();
      return "";
    }
    auto text = driver_->Text(*element);
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? *text : "";
  }

  // The element's text, or nullopt while it is not there (yet): what a poll reads while the browser
  // replaces the page (a click's navigation can still show the old page, or none, for a moment).
  std::optional<std::string> TextOnceThere(const std::string& css) {
    auto element = driver_->Find(css);
    if (!element.ok()) return std::nullopt;
    auto text = driver_->Text(*element);
    if (!text.ok()) return std::nullopt;
    return *text;
  }

  TempDir logs_;
  WebNode web_;
  std::unique_ptr<WebDriver> driver_;
};

TEST_F(BrowserTest, MaintainerClicksThroughDisputesSearchAndOperators) {
  const WebData& data = web_.data();

  // The list shows exactly the disputes the database holds, as links.
  ASSERT_OK(driver_->Navigate(web_.Url("/disputes")));
  auto stored = web_.node().store()->ListDisputes(storage::DisputeQuery{});
  ASSERT_TRUE(stored.ok());
  std::set<std::string> stored_ids;
  for (const auto& d : *stored) stored_ids.insert(d.id);
  std::vector<std::string> links;
  ASSERT_OK_AND_ASSIGN(links, driver_->FindAll("a.dispute-link"));
  std::set<std::string> shown_ids;
  for (const std::string& link : links) {
    auto text = driver_->Text(link);
    ASSERT_TRUE(text.ok());
    shown_ids.insert(*text);
  }
  EXPECT_EQ(shown_ids, stored_ids);
  EXPECT_EQ(shown_ids.size(), 2u);
  SaveScreenshot("dispute-list.png");

  // Clicking a dispute opens its page.
  std::string link;
  ASSERT_OK_AND_ASSIGN(link, driver_->Find(absl::StrCat("a[href='/disputes/", data.refs_dispute_id, "']")));
  ASSERT_OK(driver_->Click(link));
  ASSERT_TRUE(driver_->WaitForUrlContaining(data.refs_dispute_id, kPageDeadline));
  EXPECT_EQ(TextOf("#dispute-id"), data.refs_dispute_id);
  const std::string hashes = TextOf("#nar-hash");
  EXPECT_THAT(hashes, HasSubstr(data.refs_majority_hash));
  EXPECT_THAT(hashes, HasSubstr(data.refs_minority_hash));
  EXPECT_THAT(hashes, HasSubstr("differs"));
  std::vector<std::string> differing;
  ASSERT_OK_AND_ASSIGN(differing, driver_->FindAll("tr.ref-differs"));
  ASSERT_EQ(differing.size(), 2u);
  std::string differing_text;
  for (const std::string& row : differing) differing_text += *driver_->Text(row) + "\n";
  EXPECT_THAT(differing_text, HasSubstr(data.only_majority_reference));
  EXPECT_THAT(differing_text, HasSubstr(data.only_minority_reference));
  EXPECT_THAT(differing_text, HasSubstr("only on this side"));
  EXPECT_THAT(differing_text, HasSubstr("missing"));
  const std::string sides = TextOf("#sides");
  for (const char* signer : {"alice-ci", "alice-builder-1", "bob-labs", "bob-builder-1", "carol-home",
                             "carol-builder-1", "openssl-3.0.8.drv", "build kind: check"}) {
    EXPECT_THAT(sides, HasSubstr(signer));
  }
  EXPECT_THAT(TextOf("#signed-record"), HasSubstr("attest/dispute/v1"));

  // The flagged builder of the other dispute.
  ASSERT_OK(driver_->Navigate(web_.Url(absl::StrCat("/disputes/", data.flagged_dispute_id))));
  EXPECT_THAT(TextOf("#flagged"), HasSubstr("alice-builder-2"));

  // The search box: type a path, submit, read the verdict.
  std::string box;
  ASSERT_OK_AND_ASSIGN(box, driver_->Find("#search-path"));
  ASSERT_OK(driver_->Clear(box));
  ASSERT_OK(driver_->Type(box, data.confirmed.full()));
  std::string submit;
  ASSERT_OK_AND_ASSIGN(submit, driver_->Find("#search-submit"));
  ASSERT_OK(driver_->Click(submit));
  ASSERT_TRUE(driver_->WaitForUrlContaining("/search?path=", kPageDeadline));
  ASSERT_TRUE(PollUntil([&] { return TextOnceThere("#verdict") == "CONFIRMED"; }, kPageDeadline))
      << TextOnceThere("#verdict").value_or("(no #verdict)");
  EXPECT_THAT(TextOf("#fingerprints"), HasSubstr("alice-ci, bob-labs"));

  // A disputed path links to its dispute.
  ASSERT_OK_AND_ASSIGN(box, driver_->Find("#search-path"));
  ASSERT_OK(driver_->Clear(box));
  ASSERT_OK(driver_->Type(box, data.flagged_dispute.full()));
  ASSERT_OK_AND_ASSIGN(submit, driver_->Find("#search-submit"));
  ASSERT_OK(driver_->Click(submit));
  ASSERT_TRUE(PollUntil([&] { return TextOnceThere("#verdict") == "DISPUTED"; }, kPageDeadline))
      << TextOnceThere("#verdict").value_or("(no #verdict)");
  ASSERT_OK_AND_ASSIGN(link, driver_->Find("#dispute-link"));
  ASSERT_OK(driver_->Click(link));
  ASSERT_TRUE(driver_->WaitForUrlContaining(data.flagged_dispute_id, kPageDeadline));

  // A bad path gets an error on the page.
  ASSERT_OK_AND_ASSIGN(box, driver_->Find("#search-path"));
  ASSERT_OK(driver_->Clear(box));
  ASSERT_OK(driver_->Type(box, "/nix/store/not-a-path"));
  ASSERT_OK_AND_ASSIGN(submit, driver_->Find("#search-submit"));
  ASSERT_OK(driver_->Click(submit));
  ASSERT_TRUE(driver_->WaitForUrlContaining("not-a-path", kPageDeadline));
  EXPECT_THAT(TextOf("#error"), HasSubstr("not a store path"));

  // The filter form.
  ASSERT_OK(driver_->Navigate(web_.Url("/disputes")));
  std::string name;
  ASSERT_OK_AND_ASSIGN(name, driver_->Find("#filter-name"));
  ASSERT_OK(driver_->Type(name, "openssl"));
  ASSERT_OK_AND_ASSIGN(submit, driver_->Find("#filter-submit"));
  ASSERT_OK(driver_->Click(submit));
  ASSERT_TRUE(driver_->WaitForUrlContaining("name=openssl", kPageDeadline));
  ASSERT_OK_AND_ASSIGN(links, driver_->FindAll("a.dispute-link"));
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(*driver_->Text(links[0]), data.refs_dispute_id);

  // Operators, and their link to the disputes they are in.
  ASSERT_OK(driver_->Navigate(web_.Url("/operators")));
  const std::string operators = TextOf("#operators");
  for (const char* name_text : {"alice-ci", "alice-builder-2", "bob-labs", "carol-home", "50.0%"}) {
    EXPECT_THAT(operators, HasSubstr(name_text));
  }
  ASSERT_OK_AND_ASSIGN(link, driver_->Find("a.operator-disputes[href='/disputes?operator=carol-home']"));
  ASSERT_OK(driver_->Click(link));
  ASSERT_TRUE(driver_->WaitForUrlContaining("operator=carol-home", kPageDeadline));
  ASSERT_OK_AND_ASSIGN(links, driver_->FindAll("a.dispute-link"));
  EXPECT_EQ(links.size(), 2u);

  // Once maintainers resolved it, the dispute page shows the history and the new state.
  web_.Resolve(data.refs_dispute, consensus::ResolutionOutcome::kNondeterministic,
               "<b>embeds the build date</b>; reported upstream", {}, 1700000100);
  ASSERT_OK(driver_->Navigate(web_.Url(absl::StrCat("/disputes/", data.refs_dispute_id))));
  const std::string history = TextOf("#resolutions");
  EXPECT_THAT(history, HasSubstr("<b>embeds the build date</b>; reported upstream"));
  EXPECT_THAT(history, HasSubstr("nondeterministic"));
  EXPECT_THAT(history, HasSubstr("maint-1"));
  EXPECT_EQ(TextOf("#state"), "nondeterministic");
  std::string source;
  ASSERT_OK_AND_ASSIGN(source, driver_->PageSource());
  EXPECT_THAT(source, Not(HasSubstr("<b>embeds")));
  ASSERT_OK(driver_->SetWindowSize(1400, 2000));
  SaveScreenshot("dispute-page.png");
}

TEST_F(BrowserTest, OperatorsPageMarksAKeyRevokedByAPolicyUpdate) {
  const WebFederation& f = web_.federation();
  const std::shared_ptr<const consensus::Policy> first = web_.node().policy().current();
  // The successor revokes carol's key, approved by the maintainer: adopted by the running node.
  const std::string carol = f.carol.public_key().ToString();
  const std::string toml = absl::StrCat(
      "version = 2\nparent = \"", first->Hash(), "\"\n",
      absl::StrReplaceAll(f.PolicyToml(), {{absl::StrCat("\"", carol, "\""),
                                            absl::StrCat("{key = \"", carol, "\", revoked = \"compromised\"}")}}));
  auto successor = consensus::Policy::ParseToml(toml, "successor.toml");
  ASSERT_TRUE(successor.ok()) << successor.status();
  const consensus::PolicyLink link{.toml = toml, .approvals = {consensus::ApprovePolicy(*successor, f.maintainer)}};
  auto adopted = web_.node().policy().Adopt(link, "", 1795582000);
  ASSERT_TRUE(adopted.ok()) << adopted.status();

  ASSERT_OK(driver_->Navigate(web_.Url("/operators")));
  EXPECT_EQ(TextOf("#policy-version"), "2");
  const std::string revoked = TextOf("td.key-revoked");
  EXPECT_THAT(revoked, HasSubstr("carol-builder-1"));
  EXPECT_THAT(revoked, HasSubstr("revoked (compromised)"));
  std::vector<std::string> marked;
  ASSERT_OK_AND_ASSIGN(marked, driver_->FindAll("td.key-revoked"));
  EXPECT_EQ(marked.size(), 1u);  // the other keys stay unmarked
  SaveScreenshot("operators-policy.png");
}

}  // namespace
}  // namespace attest::testing
