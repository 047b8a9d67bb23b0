// RebuildBook: leases per (path, operator) and the recent results.
#include "server/rebuild_book.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::TestStorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);  // 2027-01-15T08:00:00Z

RebuildResult Result(std::string_view name, std::string builder, bool built, std::string detail = "",
                     absl::Time reported = kT0) {
  return RebuildResult{.path = TestStorePath(name),
                       .operator_name = "op-a",
                       .builder = std::move(builder),
                       .built = built,
                       .detail = std::move(detail),
                       .reported = reported};
}

TEST(RebuildBookTest, AcquireGrantsALease) {
  RebuildBook book;
  const consensus::StorePath path = TestStorePath("hello");
  absl::StatusOr<Lease> lease = book.Acquire(path, "op-a", "builder-a1", kT0);
  ASSERT_TRUE(lease.ok()) << lease.status();
  const Lease expected{.path = path,
                       .operator_name = "op-a",
                       .builder = "builder-a1",
                       .taken = kT0,
                       .expires = kT0 + absl::Minutes(30)};
  EXPECT_EQ(*lease, expected);
  EXPECT_THAT(book.LeasesOn(path, kT0), ElementsAre(expected));
  EXPECT_THAT(book.ActiveLeases(kT0), ElementsAre(expected));
  EXPECT_THAT(book.LeasesOn(TestStorePath("other"), kT0), IsEmpty());
  const RebuildStats stats = book.stats(kT0);
  EXPECT_EQ(stats.active_leases, 1u);
  EXPECT_EQ(stats.leases_granted, 1u);
  EXPECT_EQ(stats.leases_refused, 0u);
}

TEST(RebuildBookTest, TheHolderRenewsItsLease) {
  RebuildBook book;
  const consensus::StorePath path = TestStorePath("hello");
  ASSERT_TRUE(book.Acquire(path, "op-a", "builder-a1", kT0).ok());
  absl::StatusOr<Lease> renewed = book.Acquire(path, "op-a", "builder-a1", kT0 + absl::Minutes(20));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(renewed->taken, kT0 + absl::Minutes(20));
  EXPECT_EQ(renewed->expires, kT0 + absl::Minutes(50));
  // Still held after the first lease would have ended.
  EXPECT_THAT(book.LeasesOn(path, kT0 + absl::Minutes(40)), ElementsAre(*renewed));
  EXPECT_FALSE(book.Acquire(path, "op-a", "builder-a2", kT0 + absl::Minutes(40)).ok());
  EXPECT_EQ(book.stats(kT0).leases_granted, 2u);
}

TEST(RebuildBookTest, AnotherBuilderOfTheOperatorIsRefusedWithTheHolderAndExpiry) {
  RebuildBook book;
  const consensus::StorePath path = TestStorePath("hello");
  ASSERT_TRUE(book.Acquire(path, "op-a", "builder-a1", kT0).ok());
  absl::StatusOr<Lease> refused = book.Acquire(path, "op-a", "builder-a2", kT0 + absl::Minutes(5));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr(absl::StrCat(path.full(), " is being rebuilt by builder-a1 of op-a "
                                                                "until 2027-01-15T08:30:00")));
  EXPECT_EQ(book.stats(kT0).leases_refused, 1u);
  // The holder keeps it.
  ASSERT_EQ(book.LeasesOn(path, kT0 + absl::Minutes(5)).size(), 1u);
  EXPECT_EQ(book.LeasesOn(path, kT0 + absl::Minutes(5))[0].builder, "builder-a1");
}

TEST(RebuildBookTest, AnotherOperatorIsNeverRefused) {
  RebuildBook book;
  const consensus::StorePath path = TestStorePath("hello");
  ASSERT_TRUE(book.Acquire(path, "op-b", "builder-b1", kT0).ok());
  ASSERT_TRUE(book.Acquire(path, "op-a", "builder-a1", kT0 + absl::Minutes(1)).ok());
  const std::vector<Lease> leases = book.LeasesOn(path, kT0 + absl::Minutes(1));
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].operator_name, "op-a");  // by operator
  EXPECT_EQ(leases[1].operator_name, "op-b");
  EXPECT_EQ(book.stats(kT0).leases_refused, 0u);
}

TEST(RebuildBookTest, AnExpiredLeaseIsGoneAndFreeForAnotherBuilder) {
  RebuildBook book(RebuildBookOptions{.lease_duration = absl::Minutes(10)});
  const consensus::StorePath path = TestStorePath("hello");
  ASSERT_TRUE(book.Acquire(path, "op-a", "builder-a1", kT0).ok());
  EXPECT_EQ(book.LeasesOn(path, kT0 + absl::Minutes(10) - absl::Seconds(1)).size(), 1u);
  const absl::Time expired = kT0 + absl::Minutes(10);
  EXPECT_THAT(book.LeasesOn(path, expired), IsEmpty());
  EXPECT_THAT(book.ActiveLeases(expired), IsEmpty());
  EXPECT_EQ(book.stats(expired).active_leases, 0u);
  absl::StatusOr<Lease> taken = book.Acquire(path, "op-a", "builder-a2", expired);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->builder, "builder-a2");
}

TEST(RebuildBookTest, ReleaseEndsOnlyTheHoldersLease) {
  RebuildBook book;
  const consensus::StorePath path = TestStorePath("hello");
  ASSERT_TRUE(book.Acquire(path, "op-a", "builder-a1", kT0).ok());
  book.Release(path, "op-a", "builder-a2");  // not its lease
  book.Release(path, "op-b", "builder-a1");  // no such lease
  EXPECT_EQ(book.LeasesOn(path, kT0).size(), 1u);
  book.Release(path, "op-a", "builder-a1");
  EXPECT_THAT(book.LeasesOn(path, kT0), IsEmpty());
  EXPECT_TRUE(book.Acquire(path, "op-a", "builder-a2", kT0).ok());
}

TEST(RebuildBookTest, ReportEndsTheLeaseAndIsListedNewestFirst) {
  RebuildBook book;
  ASSERT_TRUE(book.Acquire(TestStorePath("first"), "op-a", "builder-a1", kT0).ok());
  ASSERT_TRUE(book.Acquire(TestStorePath("second"), "op-a", "builder-a2", kT0).ok());
  const RebuildResult built = Result("first", "builder-a1", true, "", kT0 + absl::Minutes(3));
  const RebuildResult failed =
      Result("second", "builder-a2", false, "builder for 'x.drv' failed with exit code 1", kT0 + absl::Minutes(4));
  book.Report(built);
  book.Report(failed);
  EXPECT_THAT(book.RecentResults(), ElementsAre(failed, built));
  EXPECT_THAT(book.ActiveLeases(kT0 + absl::Minutes(5)), IsEmpty());
  const RebuildStats stats = book.stats(kT0 + absl::Minutes(5));
  EXPECT_EQ(stats.built, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.active_leases, 0u);
}

TEST(RebuildBookTest, AReportByAnotherBuilderLeavesTheLease) {
  RebuildBook book;
  ASSERT_TRUE(book.Acquire(TestStorePath("p"), "op-a", "builder-a1", kT0).ok());
  book.Report(Result("p", "builder-a2", true));
  EXPECT_EQ(book.LeasesOn(TestStorePath("p"), kT0).size(), 1u);
  EXPECT_EQ(book.RecentResults().size(), 1u);
}

TEST(RebuildBookTest, KeepsTheLatestMaxResults) {
  RebuildBook book(RebuildBookOptions{.max_results = 3});
  for (int i = 0; i < 5; ++i) book.Report(Result(absl::StrCat("p", i), "builder-a1", i % 2 == 0));
  const std::vector<RebuildResult> results = book.RecentResults();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].path, TestStorePath("p4"));
  EXPECT_EQ(results[1].path, TestStorePath("p3"));
  EXPECT_EQ(results[2].path, TestStorePath("p2"));
  // The totals count every report.
  EXPECT_EQ(book.stats(kT0).built, 3u);
  EXPECT_EQ(book.stats(kT0).failed, 2u);
}

TEST(RebuildBookTest, FullBookIsResourceExhaustedUntilLeasesExpire) {
  RebuildBook book(RebuildBookOptions{.lease_duration = absl::Minutes(10), .max_leases = 2});
  ASSERT_TRUE(book.Acquire(TestStorePath("a"), "op-a", "builder-a1", kT0).ok());
  ASSERT_TRUE(book.Acquire(TestStorePath("b"), "op-a", "builder-a1", kT0 + absl::Minutes(5)).ok());
  absl::StatusOr<Lease> full = book.Acquire(TestStorePath("c"), "op-a", "builder-a1", kT0 + absl::Minutes(6));
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
  EXPECT_THAT(full.status().message(), HasSubstr("2"));
  // A lease already held is still renewed.
  EXPECT_TRUE(book.Acquire(TestStorePath("a"), "op-a", "builder-a1", kT0 + absl::Minutes(6)).ok());
  // Once "b" expired, its place is free.
  EXPECT_TRUE(book.Acquire(TestStorePath("c"), "op-a", "builder-a1", kT0 + absl::Minutes(15)).ok());
  EXPECT_EQ(book.stats(kT0 + absl::Minutes(15)).active_leases, 2u);
  EXPECT_EQ(book.stats(kT0).leases_refused, 1u);
}

}  // namespace
}  // namespace attest::server
