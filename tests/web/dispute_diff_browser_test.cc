// What differs in a real dispute, in a real browser: two Nix stores build the same nondeterministic
// raw derivation (a stable file and a file `stamp` with the build's time in nanoseconds), each copies
// its build to its own file:// binary cache (one uncompressed, one xz), listed in the policy as its
// operator's `caches`; the two operators' attestations make the path DISPUTED; the node's dispute
// differ fetches both NARs, verifies and unpacks them and runs diffoscope; the dispute page in headless
// Chromium names `stamp` under "What differs" and frames diffoscope's report sandboxed, served with a
// strict CSP; the JSON twin lists the file.
//
// Needs Nix, diffoscope, Chromium and chromedriver (scripts/install-deps).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/narinfo.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "server/dispute_differ.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"
#include "tests/web/web_fixture.h"
#include "tests/web/webdriver.h"

namespace attest::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDerivation[] = R"(
derivation {
  name = "nondeterministic-stamp";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir $out && echo the same on every build > $out/stable && /bin/date +%s%N > $out/stamp" ];
}
)";

// One builder: its own store, its own binary cache.
struct Build final {
  std::string store_path;
  std::string cache_dir;
  std::optional<consensus::PathInfo> claim;
};

std::string Describe(const RunResult& r) { return absl::StrCat("exit ", r.exit_code, ": ", r.err); }

class DisputeDiffBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* sub : {"etc", "xdg", "home", "tmp"}) std::filesystem::create_directories(dir_.File(sub));
    WriteFileOrDie(dir_.File("etc/nix.conf"),
                   "experimental-features = nix-command\nsubstituters =\nbuild-users-group =\nsandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
    WriteFileOrDie(dir_.File("stamp.nix"), kDerivation);
    env_ = {{"NIX_CONF_DIR", dir_.File("etc")}, {"XDG_CACHE_HOME", dir_.File("xdg")}, {"HOME", dir_.File("home")},
            {"TMPDIR", dir_.File("tmp")},       {"NIX_CONFIG", ""},                    {"NIX_REMOTE", ""}};
  }

  // Builds the derivation in store `name` and copies it to the cache `name`-cache.
  void BuildIn(const std::string& name, const std::string& compression, Build& build) {
    const std::string store = dir_.File(absl::StrCat(name, "-store"));
    RunResult built = attest::testing::Run({"nix-build", "--store", store, dir_.File("stamp.nix"), "--no-out-link"}, "",
                          std::chrono::seconds(300), env_);
    ASSERT_EQ(built.exit_code, 0) << "nix-build: " << Describe(built);
    build.store_path = built.out.substr(0, built.out.find('\n'));
    build.cache_dir = dir_.File(absl::StrCat(name, "-cache"));
    RunResult copied = attest::testing::Run({"nix", "copy", "--store", store, "--to",
                            absl::StrCat("file://", build.cache_dir, "?compression=", compression), build.store_path},
                           "", std::chrono::seconds(300), env_);
    ASSERT_EQ(copied.exit_code, 0) << "nix copy: " << Describe(copied);
    const std::string hash_part = build.store_path.substr(11, 32);
    const std::string narinfo_file = absl::StrCat(build.cache_dir, "/", hash_part, ".narinfo");
    auto narinfo = consensus::ParseNarInfo(ReadFileOrDie(narinfo_file), narinfo_file);
    ASSERT_TRUE(narinfo.ok()) << narinfo.status();
    build.claim = narinfo->claim;
  }

  void StartNode(const Build& alice, const Build& carol) {
    WriteFileOrDie(dir_.File("policy.toml"),
                   absl::StrCat("quorum = 2\n",
                                "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice_key_.public_key().ToString(),
                                "\"]\ncaches = [\"file://", alice.cache_dir, "\"]\n",
                                "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", bob_key_.public_key().ToString(),
                                "\"]\n",
                                "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", carol_key_.public_key().ToString(),
                                "\"]\ncaches = [\"file://", carol.cache_dir, "\"]\n"));
    WriteFileOrDie(dir_.File("node.sec"), node_key_.ExportText() + "\n");
    std::filesystem::permissions(dir_.File("node.sec"),
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    WriteFileOrDie(dir_.File("node.toml"), "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n"
                                           "database = \"attest.db\"\nkey = \"node.sec\"\npolicy = \"policy.toml\"\n");
    auto config = server::LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = server::Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
  }

  void Submit(const std::vector<consensus::Attestation>& attestations) {
    auto stub = v1::Attestations::NewStub(node_->InProcessChannel());
    v1::SubmitRequest request;
    for (const consensus::Attestation& a : attestations) *request.add_attestations() = proto::ToProto(a);
    v1::SubmitResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
    for (const v1::SubmitResult& result : response.results()) {
      ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.DebugString();
    }
  }

  std::string Url(const std::string& target) const {
    return absl::StrCat("http://127.0.0.1:", node_->http_port(), target);
  }

  void TearDown() override {
    driver_.reset();
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  TempDir dir_;
  TempDir logs_;
  std::map<std::string, std::string> env_;
  consensus::SecretKey alice_key_ = TestKey("alice-builder-1");
  consensus::SecretKey bob_key_ = TestKey("bob-builder-1");
  consensus::SecretKey carol_key_ = TestKey("carol-builder-1");
  consensus::SecretKey node_key_ = TestKey("node-1");
  std::unique_ptr<server::Node> node_;
  std::unique_ptr<WebDriver> driver_;
};

TEST_F(DisputeDiffBrowserTest, TheDisputePageNamesTheFileThatDiffersBetweenTwoRealBuilds) {
  Build alice;
  Build carol;
  ASSERT_NO_FATAL_FAILURE(BuildIn("alice", "none", alice));
  ASSERT_NO_FATAL_FAILURE(BuildIn("carol", "xz", carol));
  ASSERT_EQ(alice.store_path, carol.store_path) << "the same derivation, the same output path";
  ASSERT_TRUE(alice.claim && carol.claim);
  ASSERT_NE(alice.claim->nar_hash, carol.claim->nar_hash) << "the builds were meant to differ (the time stamp)";

  ASSERT_NO_FATAL_FAILURE(StartNode(alice, carol));
  const consensus::BuildMetadata metadata{.deriver = "",
                                          .output_name = "out",
                                          .system = "x86_64-linux",
                                          .build_kind = consensus::BuildKind::kFirstBuild,
                                          .build_time_unix = 1700000000};
  ASSERT_NO_FATAL_FAILURE(Submit({consensus::SignAttestation(*alice.claim, alice_key_, metadata),
                                  consensus::SignAttestation(*carol.claim, carol_key_, metadata)}));
  const std::string id = consensus::DisputeId(alice.claim->path);

  // The commit woke the node's differ; it fetches, verifies, unpacks and runs diffoscope.
  ASSERT_NE(node_->dispute_differ(), nullptr);
  std::optional<server::DisputeDiff> diff;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (std::chrono::steady_clock::now() < deadline) {
    diff = node_->dispute_differ()->Result(id);
    if (diff) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(diff.has_value()) << "no dispute diff within the deadline";
  ASSERT_EQ(diff->state, server::DisputeDiff::State::kDone) << diff->reason;
  EXPECT_THAT(diff->differing_files, Contains("stamp"));
  EXPECT_THAT(diff->sources, Contains(absl::StrCat("file://", carol.cache_dir)));

  // The page, in Chromium.
  auto driver = WebDriver::Start(logs_.path());
  ASSERT_TRUE(driver.ok()) << driver.status();
  driver_ = *std::move(driver);
  ASSERT_TRUE(driver_->Navigate(Url(absl::StrCat("/disputes/", id))).ok());
  auto section = driver_->Find("#what-differs");
  ASSERT_TRUE(section.ok()) << section.status();
  auto section_text = driver_->Text(*section);
  ASSERT_TRUE(section_text.ok());
  EXPECT_THAT(*section_text, HasSubstr("Differing files"));
  auto files = driver_->FindAll("#what-differs li.differing-file");
  ASSERT_TRUE(files.ok()) << files.status();
  std::vector<std::string> names;
  for (const std::string& file : *files) names.push_back(driver_->Text(file).value_or(""));
  EXPECT_THAT(names, Contains("stamp"));
  auto frame = driver_->Find("#what-differs iframe#diff-frame");
  ASSERT_TRUE(frame.ok()) << frame.status();
  auto sandbox = driver_->Attribute(*frame, "sandbox");
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  EXPECT_NE(*sandbox, "null") << "the frame is sandboxed";
  auto src = driver_->Attribute(*frame, "src");
  ASSERT_TRUE(src.ok());
  EXPECT_THAT(*src, HasSubstr(absl::StrCat("/disputes/", id, "/diff.html")));
  // The section in view (the fragment scrolls to it), for people to look at.
  ASSERT_TRUE(driver_->Navigate(Url(absl::StrCat("/disputes/", id, "#what-differs"))).ok());
  auto png = driver_->Screenshot();
  if (png.ok()) {
    std::filesystem::create_directories(ATTEST_WEB_ARTIFACT_DIR);
    std::ofstream(absl::StrCat(ATTEST_WEB_ARTIFACT_DIR, "/dispute-diff.png"), std::ios::binary) << *png;
  }

  // diffoscope's own report, as the frame loads it: with a CSP that sandboxes it and allows no script.
  const HttpGetAnswer report = HttpGet(Url(absl::StrCat("/disputes/", id, "/diff.html")));
  EXPECT_EQ(report.status, 200);
  EXPECT_THAT(report.body, HasSubstr("stamp"));
  EXPECT_THAT(report.body, Not(HasSubstr("dispute-diffs"))) << "the node's directories are not shown";
  EXPECT_THAT(report.headers, HasSubstr("Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
                                        "img-src data:; sandbox"));
  EXPECT_THAT(report.headers, HasSubstr("X-Content-Type-Options: nosniff"));
  const HttpGetAnswer text = HttpGet(Url(absl::StrCat("/disputes/", id, "/diff.txt")));
  EXPECT_EQ(text.status, 200);
  EXPECT_THAT(text.content_type, HasSubstr("text/plain"));
  EXPECT_THAT(text.body, HasSubstr("stamp"));
  // The dispute page may frame only its own origin.
  const HttpGetAnswer page = HttpGet(Url(absl::StrCat("/disputes/", id)));
  EXPECT_THAT(page.headers, HasSubstr("frame-src 'self'"));

  // The JSON twin.
  const HttpGetAnswer json_answer = HttpGet(Url(absl::StrCat("/disputes/", id, ".json")));
  ASSERT_EQ(json_answer.status, 200);
  const nlohmann::json json = nlohmann::json::parse(json_answer.body, nullptr, false);
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json["diff"]["state"], "done");
  EXPECT_THAT(json["diff"]["differing_files"].get<std::vector<std::string>>(), Contains("stamp"));
  EXPECT_EQ(json["diff"]["html_url"], absl::StrCat("/disputes/", id, "/diff.html"));
  EXPECT_EQ(json["diff"]["text_url"], absl::StrCat("/disputes/", id, "/diff.txt"));
}

}  // namespace
}  // namespace attest::testing
