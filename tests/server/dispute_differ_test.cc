// DisputeDiffer against a real node (SQLite, ingest) and real file:// binary caches holding NARs made
// with `nix-store --dump` of temporary trees: the result names the differing file; a side without a
// cache, a missing diffoscope and a NAR over the size bound give a result that says why (retried after
// a while); a change of the leading fingerprints makes a new comparison.
#include "server/dispute_differ.h"

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/nar_relay.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/server/server_test_util.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A tree with a stable file and a file `stamp` holding `stamp`, dumped as a NAR into `cache` (a
// binary cache directory, uncompressed) under the narinfo of `path`; returns the claim.
consensus::PathInfo WriteBuild(const TempDir& dir, const std::string& cache, const consensus::StorePath& path,
                               const std::string& stamp) {
  const std::string tree = dir.File(absl::StrCat("tree-", stamp));
  std::filesystem::create_directories(tree);
  WriteFileOrDie(tree + "/stable", "the same on every build\n");
  WriteFileOrDie(tree + "/stamp", stamp + "\n");
  const attest::testing::RunResult dumped = attest::testing::Run({"nix-store", "--dump", tree}, "");
  EXPECT_EQ(dumped.exit_code, 0) << dumped.err;
  const std::string& nar = dumped.out;
  const consensus::NarHash hash = consensus::NarHash::FromDigest(consensus::Sha256(nar));
  std::filesystem::create_directories(cache + "/nar");
  WriteFileOrDie(cache + "/nix-cache-info", "StoreDir: /nix/store\n");
  const std::string nix32 = hash.ToNix32();  // "sha256:<nix32>"
  const std::string file = absl::StrCat("nar/", nix32.substr(nix32.find(':') + 1), ".nar");
  WriteFileOrDie(absl::StrCat(cache, "/", file), nar);
  WriteFileOrDie(absl::StrCat(cache, "/", std::string(path.hash_part()), ".narinfo"),
                 absl::StrCat("StorePath: ", path.full(), "\nURL: ", file, "\nCompression: none\nNarHash: ",
                              nix32, "\nNarSize: ", nar.size(), "\nReferences: \n"));
  auto claim = consensus::PathInfo::Create(path, hash, nar.size(), {});
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *std::move(claim);
}

class DisputeDifferTest : public ::testing::Test {
 protected:
  // Opens and starts a node whose policy lists `caches` (operator name -> cache directory).
  void StartNode(const std::map<std::string, std::string>& caches) {
    const std::string keys[] = {federation_.alice.public_key().ToString(), federation_.bob.public_key().ToString(),
                                federation_.carol.public_key().ToString()};
    const std::string names[] = {"alice-ci", "bob-labs", "carol-home"};
    std::string policy = "quorum = 2\n";
    for (int i = 0; i < 3; ++i) {
      policy += absl::StrCat("[[operator]]\nname = \"", names[i], "\"\nbuilders = [\"", keys[i], "\"]\n");
      if (auto it = caches.find(names[i]); it != caches.end()) {
        policy += absl::StrCat("caches = [\"file://", it->second, "\"]\n");
      }
    }
    attest::testing::WriteNodeDir(dir_, federation_);
    WriteFileOrDie(dir_.File("policy.toml"), policy);
    auto config = LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    PolicyOfNode();
    view_ = std::make_unique<DisputeView>(node_->policy(), node_->store());
  }

  const consensus::Policy& PolicyOfNode() {
    policy_ = std::make_unique<consensus::Policy>(
        *consensus::Policy::ParseToml(attest::testing::ReadFileOrDie(dir_.File("policy.toml")), "policy.toml"));
    return *policy_;
  }

  void TearDown() override {
    differ_.reset();
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  void Submit(const std::vector<v1::Attestation>& attestations) {
    auto stub = v1::Attestations::NewStub(node_->InProcessChannel());
    v1::SubmitRequest request;
    for (const v1::Attestation& a : attestations) *request.add_attestations() = a;
    v1::SubmitResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
    for (const v1::SubmitResult& result : response.results()) {
      ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.DebugString();
    }
  }

  // A differ of its own (the node's runs too, into another directory) over the node's sources.
  void OpenDiffer(DisputeDifferOptions options = {}) {
    options.directory = dir_.File("diffs");
    options.clock = [this] { return now_; };
    auto differ = DisputeDiffer::Open(view_.get(), NarSourcesOf(*policy_, {}, ""), std::move(options));
    ASSERT_TRUE(differ.ok()) << differ.status();
    differ_ = *std::move(differ);
  }

  DisputeDiff Pass(std::string_view id) {
    absl::StatusOr<int> written = differ_->RunPass();
    EXPECT_TRUE(written.ok()) << written.status();
    std::optional<DisputeDiff> diff = differ_->Result(id);
    EXPECT_TRUE(diff.has_value()) << "no result for " << id;
    return diff.value_or(DisputeDiff{});
  }

  Federation federation_;
  TempDir dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<consensus::Policy> policy_;
  std::unique_ptr<DisputeView> view_;
  std::unique_ptr<DisputeDiffer> differ_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
  const consensus::StorePath path_ = TestStorePath("nondeterministic-1.0");
  const std::string id_ = consensus::DisputeId(path_);
};

TEST_F(DisputeDifferTest, NamesTheDifferingFileFromTheTwoSidesCaches) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}, {"carol-home", dir_.File("carol-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  OpenDiffer();
  EXPECT_FALSE(differ_->Result(id_).has_value()) << "pending before the first pass";

  const DisputeDiff diff = Pass(id_);
  ASSERT_EQ(diff.state, DisputeDiff::State::kDone) << diff.reason;
  EXPECT_FALSE(diff.same);
  EXPECT_THAT(diff.differing_files, ElementsAre("stamp"));
  // In the record's order (sorted by fingerprint), each from its own operators' cache.
  const bool a_first = a.Fingerprint() < b.Fingerprint();
  EXPECT_THAT(diff.fingerprints, a_first ? ElementsAre(a.Fingerprint(), b.Fingerprint())
                                         : ElementsAre(b.Fingerprint(), a.Fingerprint()));
  const std::string alice_cache = absl::StrCat("file://", dir_.File("alice-cache"));
  const std::string carol_cache = absl::StrCat("file://", dir_.File("carol-cache"));
  EXPECT_THAT(diff.sources, a_first ? ElementsAre(alice_cache, carol_cache) : ElementsAre(carol_cache, alice_cache));
  EXPECT_THAT(diff.text, HasSubstr("1111"));
  EXPECT_THAT(diff.text, HasSubstr("2222"));
  // The reports name the trees a/ and b/, not the node's directories.
  EXPECT_THAT(diff.text, HasSubstr("+++ b/"));
  EXPECT_THAT(diff.text, Not(HasSubstr(dir_.path())));
  ASSERT_TRUE(diff.has_html);
  absl::StatusOr<std::string> html = differ_->Html(id_);
  ASSERT_TRUE(html.ok()) << html.status();
  EXPECT_THAT(*html, HasSubstr("stamp"));
  EXPECT_THAT(*html, Not(HasSubstr(dir_.path())));
  EXPECT_TRUE(std::filesystem::exists(dir_.File(absl::StrCat("diffs/", id_, ".json"))));

  // Nothing changed: the next pass writes nothing.
  absl::StatusOr<int> again = differ_->RunPass();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
}

TEST_F(DisputeDifferTest, ASideWithoutACacheSaysSo) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("unlisted-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  OpenDiffer();
  const DisputeDiff diff = Pass(id_);
  EXPECT_EQ(diff.state, DisputeDiff::State::kUnavailable);
  EXPECT_THAT(diff.reason, HasSubstr("(carol-home): its operators list no caches"));
  EXPECT_FALSE(differ_->Html(id_).ok());
}

TEST_F(DisputeDifferTest, SourcesAddedLaterAreUsedAtTheNextPassWithoutWaitingForTheRetry) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  OpenDiffer();
  ASSERT_EQ(Pass(id_).state, DisputeDiff::State::kUnavailable);

  // A policy update lists carol's cache (the node does this from a PolicyBook listener); the clock has
  // not reached retry_after.
  std::vector<NarSourceSpec> sources = NarSourcesOf(*policy_, {}, "");
  sources.push_back(NarSourceSpec{.url = absl::StrCat("file://", dir_.File("carol-cache")),
                                  .kind = NarSourceKind::kOperator, .operator_name = "carol-home", .priority = 0});
  now_ += absl::Seconds(1);
  differ_->SetSources(std::move(sources));
  const DisputeDiff diff = Pass(id_);
  ASSERT_EQ(diff.state, DisputeDiff::State::kDone) << diff.reason;
  EXPECT_THAT(diff.differing_files, ElementsAre("stamp"));
}

TEST_F(DisputeDifferTest, WithoutAnySourceThePageIsToldNoCacheIsKnown) {
  StartNode({});
  OpenDiffer();
  EXPECT_FALSE(differ_->has_sources());
  const std::optional<DisputeDiff> diff = differ_->Result(id_);
  ASSERT_TRUE(diff.has_value());
  EXPECT_EQ(diff->state, DisputeDiff::State::kUnavailable);
  EXPECT_EQ(diff->reason, kNoCacheKnown);
}

TEST_F(DisputeDifferTest, MissingDiffoscopeIsUnavailableAndRetriedLater) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}, {"carol-home", dir_.File("carol-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  DisputeDifferOptions options;
  options.diff.diffoscope.program = dir_.File("no-such-diffoscope");
  OpenDiffer(options);
  const DisputeDiff diff = Pass(id_);
  EXPECT_EQ(diff.state, DisputeDiff::State::kUnavailable);
  EXPECT_THAT(diff.reason, HasSubstr("install the Debian package diffoscope"));

  // Not again at once; again after retry_after.
  absl::StatusOr<int> soon = differ_->RunPass();
  ASSERT_TRUE(soon.ok());
  EXPECT_EQ(*soon, 0);
  now_ += options.retry_after + absl::Seconds(1);
  absl::StatusOr<int> later = differ_->RunPass();
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(*later, 1);
}

TEST_F(DisputeDifferTest, StopEndsARunningDiffoscopeAndKeepsNoResult) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}, {"carol-home", dir_.File("carol-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  // A diffoscope that says it started, then hangs.
  const std::string tool = dir_.File("hanging-diffoscope");
  WriteFileOrDie(tool, absl::StrCat("#!/bin/sh\ntouch ", dir_.File("started"), "\nexec sleep 300\n"));
  std::filesystem::permissions(tool, std::filesystem::perms::owner_all);
  DisputeDifferOptions options;
  options.diff.diffoscope.program = tool;
  OpenDiffer(options);
  differ_->Start();
  ASSERT_TRUE(attest::testing::PollUntil([&] { return std::filesystem::exists(dir_.File("started")); },
                                         std::chrono::seconds(30)));
  const auto start = std::chrono::steady_clock::now();
  differ_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(differ_->Result(id_).has_value()) << "a cancelled comparison is made again at the next start";
}

TEST_F(DisputeDifferTest, ANarOverTheSizeBoundIsNotFetched) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  StartNode({{"alice-ci", dir_.File("alice-cache")}, {"carol-home", dir_.File("carol-cache")}});
  Submit({Signed(a, federation_.alice), Signed(a, federation_.bob), Signed(b, federation_.carol)});
  DisputeDifferOptions options;
  options.diff.max_nar_bytes = 64;
  OpenDiffer(options);
  const DisputeDiff diff = Pass(id_);
  EXPECT_EQ(diff.state, DisputeDiff::State::kUnavailable);
  EXPECT_THAT(diff.reason, HasSubstr("more than the 64 compared at most"));
}

TEST_F(DisputeDifferTest, ANewLeadingSideMakesANewComparison) {
  const consensus::PathInfo a = WriteBuild(dir_, dir_.File("alice-cache"), path_, "1111");
  const consensus::PathInfo b = WriteBuild(dir_, dir_.File("carol-cache"), path_, "2222");
  const consensus::PathInfo c = WriteBuild(dir_, dir_.File("bob-cache"), path_, "3333");
  StartNode({{"alice-ci", dir_.File("alice-cache")},
             {"bob-labs", dir_.File("bob-cache")},
             {"carol-home", dir_.File("carol-cache")}});
  Submit({Signed(a, federation_.alice), Signed(b, federation_.carol)});
  OpenDiffer();
  const DisputeDiff first = Pass(id_);
  ASSERT_EQ(first.state, DisputeDiff::State::kDone) << first.reason;
  EXPECT_THAT(first.fingerprints, ::testing::UnorderedElementsAre(a.Fingerprint(), b.Fingerprint()));

  // bob and carol sign c: it leads now (two operators).
  Submit({Signed(c, federation_.bob), Signed(c, federation_.carol)});
  const DisputeDiff second = Pass(id_);
  ASSERT_EQ(second.state, DisputeDiff::State::kDone) << second.reason;
  ASSERT_EQ(second.fingerprints.size(), 2u);
  EXPECT_THAT(second.fingerprints, ::testing::Contains(c.Fingerprint()));
  EXPECT_THAT(second.text, HasSubstr("3333"));
  EXPECT_THAT(second.differing_files, ElementsAre("stamp"));
}

}  // namespace
}  // namespace attest::server
