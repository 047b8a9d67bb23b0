#include "tests/storage/fault_injecting_store.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/memory_attestation_store.h"
#include "tests/storage/storage_test_util.h"

namespace attest::storage::testing {
namespace {

using ::attest::testing::TestClaim;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(FaultInjectingStoreTest, FailedWriteStoresNothingAndLaterWritesPass) {
  FaultInjectingStore store(std::make_unique<MemoryAttestationStore>());
  auto stored = Attest(TestClaim("a-1"), "builder-1");
  store.FailWrites(2, absl::UnavailableError("injected"));
  EXPECT_EQ(store.Write(Batch({stored})).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Write(Batch({stored})).status().code(), absl::StatusCode::kUnavailable);
  auto stats = store.inner().Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->attestations, 0);
  auto third = store.Write(Batch({stored}));
  ASSERT_TRUE(third.ok());
  EXPECT_THAT(*third, ElementsAre(WriteOutcome::kInserted));
  EXPECT_EQ(store.write_calls(), 3);
}

TEST(FaultInjectingStoreTest, LostAcknowledgementThenRetryIsAlreadyPresent) {
  FaultInjectingStore store(std::make_unique<MemoryAttestationStore>());
  auto stored = Attest(TestClaim("a-1"), "builder-1");
  store.FailWritesAfterCommit(1, absl::DeadlineExceededError("ack lost"));
  EXPECT_EQ(store.Write(Batch({stored})).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  auto retry = store.Write(Batch({stored}));
  ASSERT_TRUE(retry.ok());
  EXPECT_THAT(*retry, ElementsAre(WriteOutcome::kAlreadyPresent));
}

TEST(FaultInjectingStoreTest, FailedReadsAreReportedNotEmpty) {
  FaultInjectingStore store(std::make_unique<MemoryAttestationStore>());
  store.FailReads(4, absl::DataLossError("injected"));
  std::vector<consensus::StorePath> paths = {::attest::testing::TestStorePath("a-1")};
  EXPECT_EQ(store.AttestationsFor(paths).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.GetDispute("d").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.ListDisputes({}).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.Stats().status().code(), absl::StatusCode::kDataLoss);
  auto healthy = store.AttestationsFor(paths);
  ASSERT_TRUE(healthy.ok());
  EXPECT_THAT((*healthy)[0], IsEmpty());
  EXPECT_EQ(store.read_calls(), 5);
}

}  // namespace
}  // namespace attest::storage::testing
