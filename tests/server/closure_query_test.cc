// server/closure_query on MemoryAttestationStore, through the same ingest and status query as a node.
#include "server/closure_query.h"

#include <string>
#include <vector>

#include "consensus/path_info.h"
#include "consensus/store_path.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/ingest.h"
#include "server/policy_book.h"
#include "server/status_query.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::FixedNow;
using ::attest::testing::Signed;
using ::attest::testing::TestClaim;
using ::attest::testing::TestStorePath;
using ::testing::HasSubstr;

class ClosureQueryTest : public ::testing::Test {
 protected:
  ClosureQueryTest()
      : policy_(federation_.MakePolicy()),
        ingestor_(book_, &store_, &store_, federation_.node_key, FixedNow, {}),
        query_(book_, &store_, StatusQueryOptions{.max_paths = 50}) {}

  // The claim of `name` referencing `references` (by name), with contents `content`.
  static consensus::PathInfo Claim(std::string_view name, const std::vector<std::string>& references,
                                   std::string_view content = "content") {
    consensus::PathInfo base = TestClaim(name, content);
    std::vector<consensus::StorePath> paths;
    for (const std::string& r : references) paths.push_back(TestStorePath(r));
    auto info = consensus::PathInfo::Create(base.path, base.nar_hash, base.nar_size, std::move(paths));
    EXPECT_TRUE(info.ok()) << info.status();
    return *info;
  }

  void Submit(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
    google::protobuf::RepeatedPtrField<v1::Attestation> batch;
    *batch.Add() = Signed(claim, key);
    auto results = ingestor_.Submit(batch);
    ASSERT_TRUE(results.ok()) << results.status();
    ASSERT_TRUE((*results)[0].status.ok()) << (*results)[0].status;
  }

  void Confirm(const consensus::PathInfo& claim) {
    Submit(claim, federation_.alice);
    Submit(claim, federation_.bob);
  }

  std::vector<std::string> NotConfirmed(const ClosureAnswer& answer) {
    std::vector<std::string> names;
    for (size_t i : answer.not_confirmed) names.emplace_back(answer.members[i].path.name());
    return names;
  }

  Federation federation_;
  consensus::Policy policy_;
  PolicyBook book_{policy_};
  storage::MemoryAttestationStore store_;
  Ingestor ingestor_;
  StatusQuery query_;
};

TEST_F(ClosureQueryTest, EveryMemberConfirmedIsConfirmed) {
  Confirm(Claim("app", {"app", "lib", "libc"}));
  Confirm(Claim("lib", {"libc"}));
  Confirm(Claim("libc", {}));
  ClosureQuery closure(&query_, 100);
  auto answer = closure.Answer(TestStorePath("app"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->verdict, consensus::Verdict::kConfirmed);
  ASSERT_EQ(answer->members.size(), 3u);
  EXPECT_EQ(answer->members[0].path, TestStorePath("app"));  // the root first
  EXPECT_TRUE(answer->not_confirmed.empty());
}

TEST_F(ClosureQueryTest, OneMemberShortOfQuorumMakesItPendingAndIsNamed) {
  Confirm(Claim("app", {"lib"}));
  Confirm(Claim("lib", {"libc"}));
  Submit(Claim("libc", {}), federation_.alice);  // one operator only
  auto answer = ClosureQuery(&query_, 100).Answer(TestStorePath("app"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->verdict, consensus::Verdict::kPending);
  EXPECT_EQ(NotConfirmed(*answer), std::vector<std::string>{"libc"});
}

TEST_F(ClosureQueryTest, AReferenceNobodyAttestedKeepsItFromConfirmed) {
  Confirm(Claim("app", {"ghost"}));
  auto answer = ClosureQuery(&query_, 100).Answer(TestStorePath("app"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->verdict, consensus::Verdict::kPending);
  EXPECT_EQ(NotConfirmed(*answer), std::vector<std::string>{"ghost"});
  EXPECT_EQ(answer->members[1].result.verdict, consensus::Verdict::kUnknown);
}

TEST_F(ClosureQueryTest, ADisputedMemberMakesTheClosureDisputedAndItsSidesAreWalked) {
  Confirm(Claim("app", {"lib"}));
  Submit(Claim("lib", {"one"}, "bytes a"), federation_.alice);
  Submit(Claim("lib", {"two"}, "bytes b"), federation_.bob);
  Confirm(Claim("one", {}));
  Confirm(Claim("two", {}));
  auto answer = ClosureQuery(&query_, 100).Answer(TestStorePath("app"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->verdict, consensus::Verdict::kDisputed);
  EXPECT_EQ(answer->members.size(), 4u);  // app, lib, and what either side of lib references
  EXPECT_EQ(NotConfirmed(*answer), std::vector<std::string>{"lib"});
}

TEST_F(ClosureQueryTest, CyclesEnd) {
  Confirm(Claim("a", {"b"}));
  Confirm(Claim("b", {"a"}));
  auto answer = ClosureQuery(&query_, 100).Answer(TestStorePath("a"));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->verdict, consensus::Verdict::kConfirmed);
  EXPECT_EQ(answer->members.size(), 2u);
}

TEST_F(ClosureQueryTest, TooLargeIsRefusedNotAnsweredInPart) {
  std::vector<std::string> deps;
  for (int i = 0; i < 5; ++i) {
    deps.push_back("dep-" + std::to_string(i));
    Confirm(Claim(deps.back(), {}));
  }
  Confirm(Claim("app", deps));
  auto answer = ClosureQuery(&query_, 4).Answer(TestStorePath("app"));
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(answer.status().message()), HasSubstr("more than 4 paths"));
}

}  // namespace
}  // namespace attest::server
