// The AttestationStore contract, run against every implementation.
#include <bit>
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "consensus/dispute.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/merkle.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "consensus/tlog_tiles.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/attestation_store.h"
#include "storage/memory_attestation_store.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/storage/fault_injecting_store.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using consensus::BuildKind;
using consensus::StorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using testing::Attest;
using testing::Batch;
using testing::AttestRealisation;
using testing::BuildTraceRealisation;
using testing::ClaimWithRefs;
using testing::Dispute;
using testing::DrvHashKey;
using testing::DrvHashRealisation;
using testing::FullMetadata;
using testing::KeyKind;
using testing::RealisationBatch;
using testing::SeededStorePath;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestStorePath;

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<AttestationStore>(const TempDir&)> open;
};

class AttestationStoreContractTest : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }

  std::vector<StoredAttestation> Read(const StorePath& path) {
    std::vector<StorePath> paths = {path};
    auto result = store_->AttestationsFor(paths);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok() || result->size() != 1) return {};
    return (*result)[0];
  }

  std::vector<WriteOutcome> WriteOk(WriteBatch batch) {
    auto outcomes = store_->Write(batch);
    EXPECT_TRUE(outcomes.ok()) << outcomes.status();
    return outcomes.ok() ? *outcomes : std::vector<WriteOutcome>{};
  }

  StoreStats StatsOk() {
    auto stats = store_->Stats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : StoreStats{};
  }

  TempDir dir_;
  std::unique_ptr<AttestationStore> store_;
};

TEST_P(AttestationStoreContractTest, EmptyStoreHasNothing) {
  EXPECT_THAT(Read(TestStorePath("hello-2.12")), IsEmpty());
  StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, 0);
  EXPECT_EQ(stats.paths, 0);
  EXPECT_EQ(stats.disputes, 0);
  auto dispute = store_->GetDispute("d-none");
  ASSERT_TRUE(dispute.ok()) << dispute.status();
  EXPECT_FALSE(dispute->has_value());
  auto page = store_->ListDisputes({});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(*page, IsEmpty());
}

TEST_P(AttestationStoreContractTest, EveryFieldRoundTrips) {
  // References include the path itself (common in Nix) and paths never attested.
  auto claim = ClaimWithRefs("openssl-3.0.8-dev", "nar bytes",
                             {"openssl-3.0.8-dev", "glibc-2.37", "zlib-1.3", "openssl-3.0.8"},
                             987654321);
  std::vector<StoredAttestation> written = {
      // Deriver name implied by path and output ("openssl-3.0.8.drv" for output "dev").
      Attest(claim, "builder-eu-1", FullMetadata("openssl-3.0.8", "dev", BuildKind::kCheck), 100),
      // A deriver whose name is not the implied one, an observed key, other kinds and times.
      Attest(claim, "watcher-1",
             consensus::BuildMetadata{.deriver = TestStorePath("something-else.drv").full(),
                                      .output_name = "dev",
                                      .system = "aarch64-linux",
                                      .build_kind = BuildKind::kImported,
                                      .build_time_unix = 0},
             1700000000, KeyKind::kObserved),
      // No metadata at all.
      Attest(claim, "builder-us-1", {}, 0),
      // Output "out" with the implied deriver, first build.
      Attest(claim, "builder-ci",
             FullMetadata("openssl-3.0.8-dev", "out", BuildKind::kFirstBuild, 1), 1234567890123),
      // Output given, no deriver; deriver given, no output.
      Attest(claim, "builder-a",
             testing::Metadata("", "lib", "riscv64-linux"), 5),
      Attest(claim, "builder-b",
             testing::Metadata(TestStorePath("openssl-3.0.8-dev.drv").full(), "", ""), 6),
  };
  EXPECT_THAT(WriteOk(Batch(written)), SizeIs(written.size()));

  std::vector<StoredAttestation> expected = written;
  std::ranges::sort(expected, {}, [](const StoredAttestation& s) { return s.attestation.key_name(); });
  EXPECT_EQ(Read(claim.path), expected);
  // References are stored as paths of their own, but are not attested paths.
  EXPECT_THAT(Read(TestStorePath("glibc-2.37")), IsEmpty());
}

TEST_P(AttestationStoreContractTest, WritingTwiceIsIdempotentAndKeepsFirstMetadata) {
  auto claim = TestClaim("hello-2.12");
  StoredAttestation first = Attest(claim, "builder-1", FullMetadata("hello-2.12"), 100);
  StoredAttestation again = Attest(claim, "builder-1", {}, 999);
  EXPECT_THAT(WriteOk(Batch({first})), ElementsAre(WriteOutcome::kInserted));
  EXPECT_THAT(WriteOk(Batch({again})), ElementsAre(WriteOutcome::kAlreadyPresent));
  EXPECT_THAT(Read(claim.path), ElementsAre(first));
  EXPECT_EQ(StatsOk().attestations, 1);
}

TEST_P(AttestationStoreContractTest, AnEarlierReceiptLowersTheTimeAndKeepsEverythingElse) {
  // Another log received it first: every node keeps the earliest receipt (a retired key's cut-off).
  auto claim = TestClaim("hello-2.12");
  StoredAttestation first = Attest(claim, "builder-1", FullMetadata("hello-2.12"), 500);
  StoredAttestation earlier = Attest(claim, "builder-1", {}, 300);
  StoredAttestation later = Attest(claim, "builder-1", {}, 900);
  EXPECT_THAT(WriteOk(Batch({first})), ElementsAre(WriteOutcome::kInserted));
  EXPECT_THAT(WriteOk(Batch({earlier})), ElementsAre(WriteOutcome::kAlreadyPresent));
  StoredAttestation expected = first;
  expected.received_unix = 300;
  EXPECT_THAT(Read(claim.path), ElementsAre(expected));
  EXPECT_THAT(WriteOk(Batch({later})), ElementsAre(WriteOutcome::kAlreadyPresent));
  EXPECT_THAT(Read(claim.path), ElementsAre(expected));
  EXPECT_EQ(StatsOk().attestations, 1);
}

TEST_P(AttestationStoreContractTest, DuplicateWithinOneBatchIsStoredOnce) {
  auto claim = TestClaim("hello-2.12");
  StoredAttestation a = Attest(claim, "builder-1", {}, 1);
  auto b = Attest(TestClaim("other-1"), "builder-1");
  EXPECT_THAT(WriteOk(Batch({a, b, a})),
              ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted,
                          WriteOutcome::kAlreadyPresent));
  EXPECT_THAT(Read(claim.path), ElementsAre(a));
  EXPECT_EQ(StatsOk().attestations, 2);
}

TEST_P(AttestationStoreContractTest, OneKeySigningTwoFingerprintsKeepsBoth) {
  auto good = TestClaim("flaky-1.0", "bytes A");
  auto other = TestClaim("flaky-1.0", "bytes B");
  auto a = Attest(good, "builder-1");
  auto b = Attest(other, "builder-1");
  EXPECT_THAT(WriteOk(Batch({a, b})),
              ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));
  auto stored = Read(good.path);
  ASSERT_THAT(stored, SizeIs(2));
  EXPECT_LT(stored[0].attestation.claim.Fingerprint(), stored[1].attestation.claim.Fingerprint());
  EXPECT_EQ(StatsOk().paths, 1);
}

TEST_P(AttestationStoreContractTest, OrderedByFingerprintThenKeyName) {
  std::vector<consensus::PathInfo> claims = {
      TestClaim("pkg-1", "x"), TestClaim("pkg-1", "y"), TestClaim("pkg-1", "z"),
      TestClaim("pkg-1", "x", 99)};
  std::vector<std::string> keys = {"k-c", "k-a", "k-b", "K-z"};
  std::vector<StoredAttestation> all;
  for (const auto& claim : claims) {
    for (const auto& key : keys) all.push_back(Attest(claim, key));
  }
  // Written in a scrambled order over several batches.
  std::vector<StoredAttestation> scrambled = all;
  std::reverse(scrambled.begin(), scrambled.end());
  std::rotate(scrambled.begin(), scrambled.begin() + 5, scrambled.end());
  WriteOk(Batch({scrambled.begin(), scrambled.begin() + 7}));
  WriteOk(Batch({scrambled.begin() + 7, scrambled.end()}));

  std::vector<StoredAttestation> expected = all;
  std::ranges::sort(expected, [](const StoredAttestation& a, const StoredAttestation& b) {
    return std::make_pair(a.attestation.claim.Fingerprint(), a.attestation.key_name()) <
           std::make_pair(b.attestation.claim.Fingerprint(), b.attestation.key_name());
  });
  EXPECT_EQ(Read(claims[0].path), expected);
}

TEST_P(AttestationStoreContractTest, AnswersInInputOrderIncludingUnknownAndRepeatedPaths) {
  auto a = Attest(TestClaim("a-1"), "builder-1");
  auto b = Attest(TestClaim("b-1"), "builder-1");
  WriteOk(Batch({a, b}));
  std::vector<StorePath> paths = {TestStorePath("b-1"), TestStorePath("unknown-1"),
                                  TestStorePath("a-1"), TestStorePath("b-1")};
  auto result = store_->AttestationsFor(paths);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, ElementsAre(ElementsAre(b), IsEmpty(), ElementsAre(a), ElementsAre(b)));

  auto none = store_->AttestationsFor({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST_P(AttestationStoreContractTest, PathsSharingAHashPartAreKeptApart) {
  StorePath real = TestStorePath("real-1.0");
  auto squatter = StorePath::Parse(consensus::Cat("/nix/store/", real.hash_part(), "-squatter-1.0"));
  ASSERT_TRUE(squatter.ok()) << squatter.status();
  auto claim_squat = consensus::PathInfo::Create(*squatter, TestClaim("x").nar_hash, 1, {real});
  ASSERT_TRUE(claim_squat.ok());
  auto s = Attest(*claim_squat, "watcher-1", {}, 1, KeyKind::kObserved);
  auto r = Attest(TestClaim("real-1.0"), "builder-1");
  WriteOk(Batch({s}));
  WriteOk(Batch({r}));
  EXPECT_THAT(Read(real), ElementsAre(r));
  EXPECT_THAT(Read(*squatter), ElementsAre(s));
}

// Hash parts that differ only after their first 8 bytes (the SQLite store's "hash head").
TEST_P(AttestationStoreContractTest, PathsSharingAHashHeadAreKeptApart) {
  std::vector<uint8_t> hash(20, 0x5a);
  std::vector<StorePath> paths;
  std::vector<StoredAttestation> attestations;
  for (uint8_t last : {1, 2, 3}) {
    hash.back() = last;
    auto path = StorePath::Parse(consensus::Cat("/nix/store/", consensus::Nix32Encode(hash), "-same-head"));
    ASSERT_TRUE(path.ok()) << path.status();
    paths.push_back(*path);
    auto claim = consensus::PathInfo::Create(*path, TestClaim("x").nar_hash, last, {});
    ASSERT_TRUE(claim.ok());
    attestations.push_back(Attest(*claim, "builder-1"));
  }
  WriteOk(Batch({attestations[0], attestations[2]}));
  WriteOk(Batch({attestations[1]}));
  auto result = store_->AttestationsFor(paths);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, ElementsAre(ElementsAre(attestations[0]), ElementsAre(attestations[1]),
                                   ElementsAre(attestations[2])));
  hash.back() = 4;  // same head, never written
  auto absent = StorePath::Parse(consensus::Cat("/nix/store/", consensus::Nix32Encode(hash), "-same-head"));
  ASSERT_TRUE(absent.ok());
  EXPECT_THAT(Read(*absent), IsEmpty());
}

TEST_P(AttestationStoreContractTest, ObservedKeysRoundTripPerAttestation) {
  // The same name used by two different observed keys, and as a policy key.
  auto a = Attest(TestClaim("a-1"), "someone", {}, 1, KeyKind::kObserved, "seed one");
  auto b = Attest(TestClaim("b-1"), "someone", {}, 1, KeyKind::kObserved, "seed two");
  auto c = Attest(TestClaim("c-1"), "someone", {}, 1, KeyKind::kPolicy, "seed one");
  ASSERT_NE(a.observed_key, b.observed_key);
  WriteOk(Batch({a, b, c}));
  EXPECT_THAT(Read(TestStorePath("a-1")), ElementsAre(a));
  EXPECT_THAT(Read(TestStorePath("b-1")), ElementsAre(b));
  EXPECT_THAT(Read(TestStorePath("c-1")), ElementsAre(c));
}

TEST_P(AttestationStoreContractTest, InvalidItemStoresNothingOfTheBatch) {
  auto good = Attest(TestClaim("good-1"), "new-builder", FullMetadata("good-1", "out"), 1);
  auto also_good = Attest(TestClaim("good-2"), "builder-1", {}, 1);
  auto bad = Attest(TestClaim("bad-1"), "builder-1",
                    testing::Metadata("", "", "has spaces in it"), 1);
  auto outcomes = store_->Write(Batch({good, also_good, bad}));
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcomes.status().message(), HasSubstr("attestation 3 of 3"));
  EXPECT_THAT(Read(good.attestation.claim.path), IsEmpty());
  EXPECT_THAT(Read(also_good.attestation.claim.path), IsEmpty());
  StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, 0);
  EXPECT_EQ(stats.paths, 0);

  // A bad dispute refuses the attestations written with it too.
  auto with_bad_dispute = store_->Write(
      Batch({good}, {Dispute("", "good-1", 1, 1)}));
  EXPECT_EQ(with_bad_dispute.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Read(good.attestation.claim.path), IsEmpty());

  // Names and keys first seen in the refused batches are usable afterwards.
  EXPECT_THAT(WriteOk(Batch({good, also_good})),
              ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));
  EXPECT_THAT(Read(good.attestation.claim.path), ElementsAre(good));
}

TEST_P(AttestationStoreContractTest, RefusesObservedKeyNamedDifferentlyFromSignature) {
  auto stored = Attest(TestClaim("a-1"), "builder-1", {}, 1, KeyKind::kObserved);
  stored.observed_key = testing::TestKey("someone-else").public_key();
  auto outcomes = store_->Write(Batch({stored}));
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Read(TestStorePath("a-1")), IsEmpty());
}

TEST_P(AttestationStoreContractTest, RefusesNegativeReceivedTime) {
  auto outcomes = store_->Write(Batch({Attest(TestClaim("a-1"), "builder-1", {}, -5)}));
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(AttestationStoreContractTest, EmptyBatchIsFine) {
  EXPECT_THAT(WriteOk({}), IsEmpty());
}

TEST_P(AttestationStoreContractTest, DisputesAreStoredUpdatedAndPaged) {
  WriteOk(Batch({}, {Dispute("d-bb", "pkg-b", 100, 100), Dispute("d-aa", "pkg-a", 50, 60)}));
  auto got = store_->GetDispute("d-bb");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, Dispute("d-bb", "pkg-b", 100, 100));

  // An update replaces the record but keeps the first opened time.
  WriteOk(Batch({}, {Dispute("d-bb", "pkg-b", 300, 300, 3)}));
  got = store_->GetDispute("d-bb");
  ASSERT_TRUE(got.ok()) << got.status();
  StoredDispute expected = Dispute("d-bb", "pkg-b", 100, 300, 3);
  expected.signed_record = Dispute("d-bb", "pkg-b", 300, 300, 3).signed_record;
  EXPECT_EQ(*got, expected);

  WriteOk(Batch({}, {Dispute("d-cc", "pkg-c", 1, 1)}));
  auto first = store_->ListDisputes({.after_key = "", .limit = 2});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_THAT(*first, SizeIs(2));
  EXPECT_EQ((*first)[0].id, "d-aa");
  EXPECT_EQ((*first)[1].id, "d-bb");
  auto second = store_->ListDisputes({.after_key = DisputeSortKey((*first)[1]), .limit = 2});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(*second, ElementsAre(Dispute("d-cc", "pkg-c", 1, 1)));
  auto done = store_->ListDisputes({.after_key = "0d-cc", .limit = 2});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_THAT(*done, IsEmpty());

  EXPECT_EQ(StatsOk().disputes, 3);
  EXPECT_EQ(StatsOk().paths, 0);  // disputed paths without attestations are not counted
  EXPECT_EQ(store_->ListDisputes(DisputeQuery{.after_key = "", .limit = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(AttestationStoreContractTest, StatsCountAttestationsAndAttestedPaths) {
  auto x = ClaimWithRefs("x-1", "x", {"dep-1", "dep-2"});
  WriteOk(Batch({Attest(x, "b1"), Attest(x, "b2"), Attest(TestClaim("y-1"), "b1"),
                            Attest(TestClaim("y-1", "different"), "b2")}));
  WriteOk(Batch({Attest(x, "b1"), Attest(x, "b3")}));
  StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, 5);
  EXPECT_EQ(stats.paths, 2);
}

TEST_P(AttestationStoreContractTest, ConcurrentWritersAndReadersSeeWholeBatches) {
  constexpr int kWriters = 4;
  constexpr int kBatches = 10;
  constexpr int kPerBatch = 5;
  // Every writer also writes the shared attestations: exactly one kInserted each overall.
  std::vector<StoredAttestation> shared;
  for (int i = 0; i < kPerBatch; ++i) {
    shared.push_back(Attest(ClaimWithRefs(consensus::Cat("shared-", i), "s", {"dep-1"}), "b-shared"));
  }
  std::vector<std::vector<WriteBatch>> plans(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    for (int b = 0; b < kBatches; ++b) {
      WriteBatch batch;
      for (int i = 0; i < kPerBatch; ++i) {
        // The batch's paths share one name prefix so a reader can check it sees all or none.
        batch.attestations.push_back(Attest(
            ClaimWithRefs(consensus::Cat("w", w, "-b", b, "-", i), "c", {"dep-1", "dep-2"}),
            consensus::Cat("builder-", w)));
      }
      batch.attestations.push_back(shared[b % kPerBatch]);
      plans[w].push_back(std::move(batch));
    }
  }

  std::atomic<bool> done = false;
  std::atomic<int> shared_inserted = 0;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (const WriteBatch& batch : plans[w]) {
        auto outcomes = store_->Write(batch);
        if (!outcomes.ok() || outcomes->size() != batch.attestations.size()) {
          ++failures;
          continue;
        }
        if (outcomes->back() == WriteOutcome::kInserted) ++shared_inserted;
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (!done) {
        for (int w = 0; w < kWriters; ++w) {
          for (int b = 0; b < kBatches; ++b) {
            std::vector<StorePath> paths;
            for (int i = 0; i < kPerBatch; ++i) {
              paths.push_back(TestStorePath(consensus::Cat("w", w, "-b", b, "-", i)));
            }
            auto result = store_->AttestationsFor(paths);
            if (!result.ok()) {
              ++failures;
              continue;
            }
            // A batch is visible entirely or not at all.
            size_t present = std::ranges::count_if(*result, [](const auto& v) { return !v.empty(); });
            if (present != 0 && present != paths.size()) ++failures;
          }
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done = true;
  for (size_t t = kWriters; t < threads.size(); ++t) threads[t].join();

  EXPECT_EQ(failures, 0);
  // Each shared attestation was inserted exactly once.
  EXPECT_EQ(shared_inserted, std::min(kBatches, kPerBatch));
  StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, kWriters * kBatches * kPerBatch + kPerBatch);
  EXPECT_EQ(stats.paths, kWriters * kBatches * kPerBatch + kPerBatch);
  for (int w = 0; w < kWriters; ++w) {
    for (const WriteBatch& batch : plans[w]) {
      for (const StoredAttestation& stored : batch.attestations) {
        EXPECT_THAT(Read(stored.attestation.claim.path), ElementsAre(stored));
      }
    }
  }
}

// --- The node's log ---

// A dispute whose record is a real signed dispute record, as the log requires.
// `references`: the claims' number of references (a record of two sides of 700 is about 90 KB).
StoredDispute SignedDispute(std::string_view path_name, int64_t time, size_t references = 0) {
  const StorePath path = TestStorePath(path_name);
  consensus::DisputeRecord record{.id = consensus::DisputeId(path),
                                  .subject = path,
                                  .policy_hash = consensus::Cat("sha256:", std::string(64, 'a')),
                                  .time_unix = time,
                                  .sides = {},
                                  .flagged_builders = {}};
  for (std::string_view content : {"good", "evil"}) {
    const consensus::PathInfo claim = references == 0
                                          ? TestClaim(path_name, content)
                                          : attest::testing::TestClaimWithReferences(path_name, content, references);
    const std::string builder = consensus::Cat("builder-", content);
    record.sides.push_back(consensus::DisputeSide{
        .fingerprint = claim.Fingerprint(),
        .entries = {{.operator_name = consensus::Cat("op-", content),
                     .signature = consensus::SignAttestation(claim, attest::testing::TestKey(builder)).signature}}});
  }
  std::ranges::sort(record.sides, {}, &consensus::DisputeSide::fingerprint);
  StoredDispute dispute = Dispute(record.id, path_name, time, time);
  dispute.signed_record = consensus::SignDisputeRecord(record, attest::testing::TestKey("node-1")).Serialize();
  return dispute;
}

// The signed dispute record of a derivation output (a build trace key of `drv_name`) that two builders
// realised as two different output paths.
StoredDispute SignedRealisationDispute(std::string_view drv_name, int64_t time) {
  const consensus::Realisation good = testing::BuildTraceRealisation(drv_name, "out", "good");
  const consensus::RealisationKey& key = good.key;
  consensus::DisputeRecord record{.id = consensus::DisputeId(key),
                                  .subject = key,
                                  .policy_hash = consensus::Cat("sha256:", std::string(64, 'a')),
                                  .time_unix = time,
                                  .sides = {},
                                  .flagged_builders = {}};
  for (std::string_view content : {"good", "evil"}) {
    const consensus::Realisation claim = testing::BuildTraceRealisation(drv_name, "out", content);
    const std::string builder = consensus::Cat("builder-", content);
    record.sides.push_back(consensus::DisputeSide{
        .fingerprint = claim.Fingerprint(),
        .entries = {{.operator_name = consensus::Cat("op-", content),
                     .signature = consensus::SignRealisation(claim, attest::testing::TestKey(builder)).signature}}});
  }
  std::ranges::sort(record.sides, {}, &consensus::DisputeSide::fingerprint);
  return StoredDispute{
      .id = record.id,
      .subject = key,
      .signed_record = consensus::SignDisputeRecord(record, attest::testing::TestKey("node-1")).Serialize(),
      .opened_unix = time,
      .updated_unix = time,
      .fingerprint_count = 2,
      .state = consensus::DisputeState::kOpen,
      .operators = {"op-evil", "op-good"}};
}

// A maintainer's statement about the dispute of `path_name` (SignedDispute's), signed by "maintainer-1".
StoredResolution SignedResolution(std::string_view path_name, consensus::ResolutionOutcome outcome, int64_t time,
                                  std::vector<std::string> builders = {}) {
  const StorePath path = TestStorePath(path_name);
  std::vector<std::string> fingerprints = {TestClaim(path_name, "good").Fingerprint(),
                                           TestClaim(path_name, "evil").Fingerprint()};
  std::ranges::sort(fingerprints);
  consensus::Resolution resolution{.dispute_id = consensus::DisputeId(path),
                                   .subject = path,
                                   .outcome = outcome,
                                   .fingerprints = fingerprints,
                                   .builders = std::move(builders),
                                   .time_unix = time,
                                   .note = "reviewed"};
  auto note = consensus::SignResolution(resolution, attest::testing::TestKey("maintainer-1"));
  EXPECT_TRUE(note.ok()) << note.status();
  return StoredResolution{.dispute_id = resolution.dispute_id,
                          .signed_note = note->Serialize(),
                          .outcome = outcome,
                          .maintainer = "maintainer-1",
                          .time_unix = time,
                          .received_unix = time + 1,
                          .origin = ""};
}

std::string EntryOf(const StoredAttestation& stored) {
  auto entry = consensus::EncodeAttestationEntry(consensus::AttestationEntry{
      .attestation = stored.attestation, .observed_key = stored.observed_key, .received_unix = stored.received_unix});
  EXPECT_TRUE(entry.ok()) << entry.status();
  return entry.ok() ? *entry : "";
}

TEST_P(AttestationStoreContractTest, LogStartsEmpty) {
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 0u);
  EXPECT_EQ(head->root, consensus::EmptyTreeHash());
  auto none = store_->LogEntries(0, 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  EXPECT_EQ(store_->LogEntries(0, 1).status().code(), absl::StatusCode::kOutOfRange);
  auto latest = store_->LatestCheckpoint();
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_FALSE(latest->has_value());
}

TEST_P(AttestationStoreContractTest, LogHoldsInsertedAttestationsThenDisputesInOrder) {
  const StoredAttestation old = Attest(TestClaim("old-1"), "builder-a", {}, 100);
  WriteOk(Batch({old}));  // stored without logging (as replicated entries are)

  const StoredAttestation a = Attest(ClaimWithRefs("pkg-1", "x", {"dep-1", "dep-2"}), "builder-a",
                                     FullMetadata("pkg-1"), 200);
  const StoredAttestation b = Attest(TestClaim("pkg-2"), "builder-b", {}, 201, KeyKind::kObserved);
  WriteBatch batch = Batch({a, old, b});
  batch.disputes.push_back(SignedDispute("pkg-2", 300));
  batch.log_append = LogAppend::kAll;
  EXPECT_THAT(WriteOk(batch),
              ElementsAre(WriteOutcome::kInserted, WriteOutcome::kAlreadyPresent, WriteOutcome::kInserted));

  auto entries = store_->LogEntries(0, 3);
  ASSERT_TRUE(entries.ok()) << entries.status();
  auto dispute_entry = consensus::EncodeDisputeEntry(batch.disputes[0].signed_record);
  ASSERT_TRUE(dispute_entry.ok());
  EXPECT_THAT(*entries, ElementsAre(EntryOf(a), EntryOf(b), *dispute_entry));

  consensus::MemoryHashStore tree;
  for (const std::string& entry : *entries) tree.Append(consensus::LeafHash(entry));
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 3u);
  EXPECT_EQ(head->root, *consensus::TreeHash(3, tree));

  // Replaying the batch appends nothing; a refused batch appends nothing.
  EXPECT_THAT(WriteOk(batch), ElementsAre(WriteOutcome::kAlreadyPresent, WriteOutcome::kAlreadyPresent,
                                          WriteOutcome::kAlreadyPresent));
  EXPECT_EQ(store_->GetLogHead()->size, 4u);  // the dispute record is logged again (a new version)
  WriteBatch refused = Batch({Attest(TestClaim("pkg-3"), "builder-a"), Attest(TestClaim("pkg-4"), "builder-a")});
  refused.attestations[1].received_unix = -1;
  refused.log_append = LogAppend::kAll;
  EXPECT_EQ(store_->Write(refused).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetLogHead()->size, 4u);
  // A dispute record that is not a signed note cannot be logged: the batch is refused whole.
  WriteBatch unloggable = Batch({Attest(TestClaim("pkg-5"), "builder-a")});
  unloggable.disputes.push_back(Dispute("d-5", "pkg-5", 1, 1));
  unloggable.log_append = LogAppend::kAll;
  auto status = store_->Write(unloggable).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("dispute 1 of 1"));
  EXPECT_THAT(Read(TestStorePath("pkg-5")), IsEmpty());
  EXPECT_EQ(store_->GetLogHead()->size, 4u);
}

TEST_P(AttestationStoreContractTest, ADisputeRecordTooLargeForOneEntryIsLoggedInPartsAndReadBack) {
  const StoredAttestation a = Attest(TestClaim("pkg-1"), "builder-a", {}, 200);
  WriteBatch batch = Batch({a});
  batch.disputes.push_back(SignedDispute("big", 300, 700));
  ASSERT_GT(batch.disputes[0].signed_record.size(), consensus::kMaxLogEntryBytes);
  batch.log_append = LogAppend::kAll;
  WriteOk(batch);

  auto parts = consensus::EncodeDisputeEntries(batch.disputes[0].signed_record);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size, 3u);
  auto entries = store_->LogEntries(0, 3);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_THAT(*entries, ElementsAre(EntryOf(a), (*parts)[0], (*parts)[1]));
  consensus::MemoryHashStore tree;
  for (const std::string& entry : *entries) tree.Append(consensus::LeafHash(entry));
  EXPECT_EQ(head->root, *consensus::TreeHash(3, tree));
  // Read one at a time too (a reader starting in the middle of a record).
  auto second = store_->LogEntries(2, 1);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(*second, ElementsAre((*parts)[1]));
  // The whole record is what the disputes table holds.
  auto stored = store_->GetDispute(batch.disputes[0].id);
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->signed_record, batch.disputes[0].signed_record);
}

TEST_P(AttestationStoreContractTest, LogTilesHoldEveryStoredHash) {
  consensus::MemoryHashStore tree;
  constexpr int kEntries = 700;  // two full level-0 tiles and a partial one
  for (int start = 0; start < kEntries; start += 100) {
    WriteBatch batch;
    batch.log_append = LogAppend::kAll;
    for (int i = start; i < start + 100; ++i) {
      batch.attestations.push_back(Attest(TestClaim(consensus::Cat("p-", i)), "builder-a", {}, i));
      tree.Append(consensus::LeafHash(EntryOf(batch.attestations.back())));
    }
    WriteOk(batch);
  }
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size, static_cast<uint64_t>(kEntries));
  EXPECT_EQ(head->root, *consensus::TreeHash(kEntries, tree));

  const std::vector<consensus::TileId> tiles = consensus::TilesForSize(kEntries);
  auto stored = store_->LogTiles(tiles);
  ASSERT_TRUE(stored.ok()) << stored.status();
  for (size_t t = 0; t < tiles.size(); ++t) {
    auto hashes = tree.ReadHashes(consensus::TileSubtrees(tiles[t]));
    ASSERT_TRUE(hashes.ok());
    std::string expected;
    for (const auto& hash : *hashes) expected.append(reinterpret_cast<const char*>(hash.data()), hash.size());
    EXPECT_EQ((*stored)[t], expected) << consensus::TilePath(tiles[t]);
  }
  // A narrower view of the growing tile is its prefix; a wider one does not exist yet.
  auto narrow = store_->LogTiles(std::vector<consensus::TileId>{{.level = 0, .index = 2, .width = 10}});
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  EXPECT_EQ((*narrow)[0].size(), 10u * 32);
  EXPECT_EQ(store_->LogTiles(std::vector<consensus::TileId>{{.level = 0, .index = 2, .width = 255}}).status().code(),
            absl::StatusCode::kOutOfRange);
  // Proofs can be served from the tiles alone.
  consensus::TileHashReader reader(kEntries, [this](std::span<const consensus::TileId> ids) {
    return store_->LogTiles(ids);
  });
  EXPECT_EQ(*consensus::TreeHash(kEntries, reader), head->root);
  auto entries = store_->LogEntries(650, 50);
  ASSERT_TRUE(entries.ok()) << entries.status();
  for (uint64_t i = 650; i < 700; ++i) {
    auto proof = consensus::InclusionProof(i, kEntries, reader);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_TRUE(consensus::VerifyInclusion(i, kEntries, consensus::LeafHash((*entries)[i - 650]), *proof,
                                           head->root)
                    .ok());
  }
}

TEST_P(AttestationStoreContractTest, CheckpointsKeepOneRootPerSize) {
  WriteBatch batch = Batch({Attest(TestClaim("a-1"), "builder-a"), Attest(TestClaim("a-2"), "builder-a")});
  batch.log_append = LogAppend::kAll;
  WriteOk(batch);
  const consensus::MerkleHash root = store_->GetLogHead()->root;
  const StoredCheckpoint two{.size = 2, .root = root, .note = "signed note 2", .signed_unix = 5};
  ASSERT_TRUE(store_->StoreCheckpoint(two).ok());
  EXPECT_TRUE(store_->StoreCheckpoint(two).ok());  // the same again: nothing changes
  StoredCheckpoint forged = two;
  forged.root[0] ^= 1;
  forged.note = "forged";
  EXPECT_EQ(store_->StoreCheckpoint(forged).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->StoreCheckpoint({.size = 3, .root = root, .note = "n", .signed_unix = 1}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store_->StoreCheckpoint({.size = 1, .root = {}, .note = "signed note 1", .signed_unix = 4}).ok());
  auto latest = store_->LatestCheckpoint();
  ASSERT_TRUE(latest.ok()) << latest.status();
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ(**latest, two);
}

// ---- following peers ----

PeerProgress Progress(const std::string& peer, uint64_t cursor, uint64_t checkpoint_size) {
  PeerProgress progress{.peer = peer, .cursor = cursor, .frontier = {}, .checkpoint = "note\n",
                        .checkpoint_size = checkpoint_size, .cosigned_checkpoint = "cosigned\n"};
  for (int bit = 0; bit < std::popcount(cursor); ++bit) {
    consensus::MerkleHash hash{};
    hash[0] = static_cast<uint8_t>(bit + 1);
    progress.frontier.push_back(hash);
  }
  return progress;
}

TEST_P(AttestationStoreContractTest, ReplicatedBatchKeepsOriginLogsOnlyDisputesAndAdvancesTheCursor) {
  EXPECT_FALSE(store_->GetPeerProgress("node-b")->has_value());
  StoredAttestation replicated = Attest(TestClaim("r-1"), "builder-a", {}, 50);
  replicated.origin = "node-b";
  WriteBatch batch = Batch({replicated});
  batch.disputes.push_back(SignedDispute("r-1", 60));
  batch.log_append = LogAppend::kDisputesOnly;
  batch.peer_progress = Progress("node-b", 5, 7);
  batch.rejected_entries.push_back(RejectedEntry{.peer = "node-b", .index = 3, .reason = "forged", .entry = "e\n",
                                                 .detected_unix = 70});
  EXPECT_THAT(WriteOk(batch), ElementsAre(WriteOutcome::kInserted));

  EXPECT_THAT(Read(TestStorePath("r-1")), ElementsAre(replicated));
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 1u);  // the dispute record only
  auto entries = store_->LogEntries(0, 1);
  ASSERT_TRUE(entries.ok());
  EXPECT_THAT((*entries)[0], HasSubstr("attest/log/dispute/v1"));
  auto progress = store_->GetPeerProgress("node-b");
  ASSERT_TRUE(progress.ok() && progress->has_value()) << progress.status();
  EXPECT_EQ(**progress, Progress("node-b", 5, 7));
  EXPECT_EQ(*store_->CountRejectedEntries("node-b"), 1);
  EXPECT_EQ(*store_->CountRejectedEntries(""), 1);
  EXPECT_EQ(*store_->CountRejectedEntries("node-c"), 0);
  auto rejected = store_->RecentRejectedEntries("", 10);
  ASSERT_TRUE(rejected.ok());
  EXPECT_THAT(*rejected, ElementsAre(batch.rejected_entries[0]));

  // Same cursor again (idempotent) is fine; backwards is refused and stores nothing of the batch.
  WriteBatch again;
  again.peer_progress = Progress("node-b", 5, 9);
  WriteOk(again);
  WriteBatch backwards = Batch({Attest(TestClaim("r-2"), "builder-a")});
  backwards.peer_progress = Progress("node-b", 4, 9);
  EXPECT_EQ(store_->Write(backwards).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Read(TestStorePath("r-2")), IsEmpty());
  EXPECT_EQ((*store_->GetPeerProgress("node-b"))->checkpoint_size, 9u);

  // A frontier that does not fit the cursor is refused.
  WriteBatch inconsistent;
  inconsistent.peer_progress = Progress("node-b", 6, 9);
  inconsistent.peer_progress->frontier.pop_back();
  EXPECT_EQ(store_->Write(inconsistent).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(AttestationStoreContractTest, PeerEntriesAreKeptWithTheCursorAndReadBackByIndex) {
  EXPECT_EQ(store_->PeerLogEntries("node-b", 0, 1).status().code(), absl::StatusCode::kNotFound);
  WriteBatch first;
  first.peer_progress = Progress("node-b", 3, 3);
  first.peer_entries = {"e0\n", "e1\n", std::string("e2\0bytes\n", 9)};
  WriteOk(first);
  WriteBatch second;
  second.peer_progress = Progress("node-b", 5, 5);
  second.peer_entries = {"e3\n", "e4\n"};
  WriteOk(second);
  WriteBatch other;  // another peer's entries are kept apart
  other.peer_progress = Progress("node-c", 1, 1);
  other.peer_entries = {"c0\n"};
  WriteOk(other);

  auto all = store_->PeerLogEntries("node-b", 0, 5);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre("e0\n", "e1\n", std::string("e2\0bytes\n", 9), "e3\n", "e4\n"));
  EXPECT_THAT(*store_->PeerLogEntries("node-b", 2, 2), ElementsAre(std::string("e2\0bytes\n", 9), "e3\n"));
  EXPECT_THAT(*store_->PeerLogEntries("node-c", 0, 1), ElementsAre("c0\n"));
  EXPECT_THAT(*store_->PeerLogEntries("node-b", 5, 0), IsEmpty());
  // Past the cursor, or a peer never followed: NOT_FOUND naming the first missing entry.
  auto past = store_->PeerLogEntries("node-b", 4, 2);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(past.status().message(), HasSubstr("entry 5 of peer 'node-b'"));
  EXPECT_EQ(store_->PeerLogEntries("node-d", 0, 1).status().code(), absl::StatusCode::kNotFound);

  // Entries must be exactly those the cursor advances over; a wrong count stores nothing of the batch.
  WriteBatch short_by_one = Batch({Attest(TestClaim("p-1"), "builder-a")});
  short_by_one.peer_progress = Progress("node-b", 7, 7);
  short_by_one.peer_entries = {"e5\n"};
  EXPECT_EQ(store_->Write(short_by_one).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Read(TestStorePath("p-1")), IsEmpty());
  EXPECT_EQ((*store_->GetPeerProgress("node-b"))->cursor, 5u);
  WriteBatch without_progress;
  without_progress.peer_entries = {"e5\n"};
  EXPECT_EQ(store_->Write(without_progress).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PeerLogEntries("node-b", 5, 1).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(AttestationStoreContractTest, ForkEvidenceKeepsTheFirstPerPeer) {
  EXPECT_THAT(*store_->ListForkEvidence(), IsEmpty());
  const ForkEvidence first{.peer = "node-b", .first_checkpoint = "a\n", .second_checkpoint = "b\n",
                           .reason = "same size, two roots", .detected_unix = 5};
  ASSERT_TRUE(store_->StoreForkEvidence(first).ok());
  ForkEvidence later = first;
  later.second_checkpoint = "c\n";
  ASSERT_TRUE(store_->StoreForkEvidence(later).ok());
  EXPECT_THAT(*store_->ListForkEvidence(), ElementsAre(first));
  ForkEvidence incomplete = first;
  incomplete.peer = "node-c";
  incomplete.second_checkpoint.clear();
  EXPECT_EQ(store_->StoreForkEvidence(incomplete).code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(AttestationStoreContractTest, ResolutionsAreStoredOnceLoggedAndSetTheDisputeState) {
  StoredDispute dispute = SignedDispute("pkg-r", 100);
  dispute.operators = {"op-evil", "op-good"};
  WriteBatch first = Batch({}, {dispute});
  first.log_append = LogAppend::kAll;
  WriteOk(first);

  const StoredResolution later = SignedResolution("pkg-r", consensus::ResolutionOutcome::kMalicious, 300, {"builder-evil"});
  const StoredResolution earlier = SignedResolution("pkg-r", consensus::ResolutionOutcome::kNondeterministic, 200);
  WriteBatch resolve;
  resolve.resolutions = {later, earlier};
  resolve.dispute_states = {{.id = dispute.id, .state = consensus::DisputeState::kMalicious},
                            {.id = "d-unknown", .state = consensus::DisputeState::kResolved}};
  resolve.log_append = LogAppend::kAll;
  WriteOk(resolve);
  // Stored once: writing the same statement again changes nothing and logs nothing.
  WriteOk(resolve);

  auto held = store_->ResolutionsFor(dispute.id);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_THAT(*held, ElementsAre(earlier, later));  // oldest first
  auto all = store_->AllResolutions();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre(earlier, later));
  auto none = store_->ResolutionsFor("d-none");
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());

  auto got = store_->GetDispute(dispute.id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, consensus::DisputeState::kMalicious);
  EXPECT_THAT((*got)->operators, ElementsAre("op-evil", "op-good"));
  auto unknown = store_->GetDispute("d-unknown");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->has_value());

  // The log holds the dispute record, then the two statements in batch order, each once.
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  ASSERT_EQ(head->size, 3u);
  auto entries = store_->LogEntries(0, 3);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[1], *consensus::EncodeResolutionEntry(later.signed_note));
  EXPECT_EQ((*entries)[2], *consensus::EncodeResolutionEntry(earlier.signed_note));

  const StoreStats stats = StatsOk();
  EXPECT_EQ(stats.disputes, 1);
  EXPECT_EQ(stats.open_disputes, 0);
  EXPECT_EQ(stats.resolutions, 2);

  // A replicated statement (not logged) with its origin.
  StoredResolution replicated = SignedResolution("pkg-r", consensus::ResolutionOutcome::kResolved, 400);
  replicated.origin = "peer-1";
  WriteOk(WriteBatch{.resolutions = {replicated}});
  head = store_->GetLogHead();
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->size, 3u);
  held = store_->ResolutionsFor(dispute.id);
  ASSERT_TRUE(held.ok());
  ASSERT_THAT(*held, SizeIs(3));
  EXPECT_EQ(held->back(), replicated);
}

TEST_P(AttestationStoreContractTest, DisputesListOpenFirstAndFilter) {
  auto make = [](std::string_view name, std::vector<std::string> operators, consensus::DisputeState state) {
    StoredDispute dispute = SignedDispute(name, 10);
    dispute.operators = std::move(operators);
    dispute.state = state;
    return dispute;
  };
  const StoredDispute hello = make("hello-2.12", {"alice", "bob"}, consensus::DisputeState::kResolved);
  const StoredDispute openssl = make("openssl-3.0", {"bob", "carol"}, consensus::DisputeState::kOpen);
  const StoredDispute hello_lib = make("hello-lib-1", {"alice", "carol"}, consensus::DisputeState::kOpen);
  WriteOk(Batch({}, {hello, openssl, hello_lib}));

  auto ids = [&](DisputeQuery query) {
    query.limit = 100;
    auto page = store_->ListDisputes(query);
    EXPECT_TRUE(page.ok()) << page.status();
    std::vector<std::string> out;
    for (const StoredDispute& d : *page) out.push_back(d.id);
    auto count = store_->CountDisputes(query);
    EXPECT_TRUE(count.ok());
    EXPECT_EQ(*count, static_cast<int64_t>(out.size()));
    return out;
  };
  std::vector<std::string> open = {openssl.id, hello_lib.id};
  std::ranges::sort(open);
  std::vector<std::string> everything = open;
  everything.push_back(hello.id);  // the resolved one after every open one
  EXPECT_EQ(ids({}), everything);
  EXPECT_EQ(ids({.state = consensus::DisputeState::kOpen}), open);
  EXPECT_THAT(ids({.state = consensus::DisputeState::kResolved}), ElementsAre(hello.id));
  EXPECT_THAT(ids({.state = consensus::DisputeState::kMalicious}), IsEmpty());
  std::vector<std::string> hellos = {hello_lib.id, hello.id};
  EXPECT_EQ(ids({.name_contains = "hello"}), hellos);
  EXPECT_THAT(ids({.name_contains = "ssl-3"}), ElementsAre(openssl.id));
  EXPECT_THAT(ids({.name_contains = "%"}), IsEmpty());  // not a pattern
  EXPECT_THAT(ids({.operator_name = "alice"}), ElementsAre(hello_lib.id, hello.id));
  EXPECT_THAT(ids({.operator_name = "ali"}), IsEmpty());  // whole names only
  EXPECT_THAT(ids({.state = consensus::DisputeState::kOpen, .operator_name = "bob"}), ElementsAre(openssl.id));

  // Paging continues after the sort key of the last dispute shown.
  auto page = store_->ListDisputes({.after_key = consensus::Cat("0", open.back()), .limit = 5});
  ASSERT_TRUE(page.ok());
  ASSERT_THAT(*page, SizeIs(1));
  EXPECT_EQ((*page)[0].id, hello.id);
}

TEST_P(AttestationStoreContractTest, ADerivationOutputsDisputeIsStoredLoggedListedAndFiltered) {
  const StoredDispute path_dispute = SignedDispute("hello-2.12", 10);
  const StoredDispute output_dispute = SignedRealisationDispute("flaky-1.0", 11);
  ASSERT_TRUE(output_dispute.subject.is_realisation());
  WriteBatch batch = Batch({}, {path_dispute, output_dispute});
  batch.log_append = LogAppend::kAll;
  WriteOk(batch);

  auto read = store_->GetDispute(output_dispute.id);
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ(**read, output_dispute);
  auto path_read = store_->GetDispute(path_dispute.id);
  ASSERT_TRUE(path_read.ok() && path_read->has_value());
  EXPECT_EQ(**path_read, path_dispute);

  // The name filter matches a key's text (it names the derivation); listing shows both kinds.
  auto listed = store_->ListDisputes({.limit = 10, .name_contains = "flaky-1.0.drv^out"});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_THAT(*listed, SizeIs(1));
  EXPECT_EQ((*listed)[0], output_dispute);
  auto all = store_->ListDisputes({.limit = 10});
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, SizeIs(2));
  EXPECT_EQ(store_->CountDisputes({.name_contains = "flaky"}).value(), 1);
  EXPECT_EQ(store_->CountDisputes({.operator_name = "op-evil"}).value(), 1);  // SignedDispute sets none
  EXPECT_EQ(store_->Stats().value().disputes, 2);

  // Both records are in the log, in batch order.
  auto entries = store_->LogEntries(0, 2);
  ASSERT_TRUE(entries.ok()) << entries.status();
  auto path_entry = consensus::EncodeDisputeEntry(path_dispute.signed_record);
  auto output_entry = consensus::EncodeDisputeEntry(output_dispute.signed_record);
  ASSERT_TRUE(path_entry.ok() && output_entry.ok()) << output_entry.status();
  EXPECT_THAT(*entries, ElementsAre(*path_entry, *output_entry));

  // A later record of the same output replaces the first and keeps its opening time.
  StoredDispute later = SignedRealisationDispute("flaky-1.0", 20);
  later.opened_unix = 11;
  WriteOk(Batch({}, {later}));
  EXPECT_EQ(store_->GetDispute(output_dispute.id).value()->updated_unix, 20);
  EXPECT_EQ(store_->Stats().value().disputes, 2);
}

TEST_P(AttestationStoreContractTest, CountsAttestationsPerKey) {
  WriteOk(Batch({Attest(TestClaim("a-1"), "builder-1"), Attest(TestClaim("a-2"), "builder-1"),
                 Attest(TestClaim("a-1"), "builder-2")}));
  WriteOk(Batch({Attest(TestClaim("a-1"), "builder-1"), Attest(TestClaim("a-3"), "builder-2")}));  // one again
  auto counts = store_->AttestationsPerKey();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_THAT(*counts, ElementsAre(KeyAttestationCount{.key_name = "builder-1", .attestations = 2},
                                   KeyAttestationCount{.key_name = "builder-2", .attestations = 2}));
}

// ---- realisation attestations ----

std::vector<StoredRealisation> ReadRealisations(AttestationStore& store, const consensus::RealisationKey& key) {
  std::vector<consensus::RealisationKey> keys = {key};
  auto result = store.RealisationsFor(keys);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok() || result->size() != 1) return {};
  return (*result)[0];
}

std::vector<std::string> KeysFor(AttestationStore& store, const StorePath& out_path) {
  auto keys = store.RealisationKeysFor(out_path);
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *keys : std::vector<std::string>{};
}

std::string EntryOf(const StoredRealisation& stored) {
  auto entry = consensus::EncodeRealisationEntry(consensus::RealisationEntry{
      .attestation = stored.attestation, .observed_key = stored.observed_key, .received_unix = stored.received_unix});
  EXPECT_TRUE(entry.ok()) << entry.status();
  return entry.ok() ? *entry : "";
}

TEST_P(AttestationStoreContractTest, RealisationsOfBothFormatsRoundTripEveryField) {
  const consensus::Realisation base = DrvHashRealisation("ca-base.drv", SeededStorePath("ca-base", "A"));
  // A 2.8 realisation with dependent realisations (the key of its input's output -> that output's path).
  const consensus::Realisation top = DrvHashRealisation(
      "ca-top.drv", SeededStorePath("ca-top", "A"), "out", {{base.key.ToString(), base.out_path}});
  const consensus::Realisation traced = BuildTraceRealisation("hello-2.12", "dev", "A");
  std::vector<StoredRealisation> written = {
      AttestRealisation(top, "builder-eu-1",
                        FullMetadata("ca-top", "out", BuildKind::kRebuild, 1700000100), 100),
      // An observed key and a replicated one.
      AttestRealisation(top, "watcher-1", {}, 1700000000, KeyKind::kObserved),
      AttestRealisation(base, "builder-us-1", testing::Metadata("", "out", "aarch64-linux"), 0),
      // The build trace format, with the deriver its key names.
      AttestRealisation(traced, "builder-ci",
                        testing::Metadata(TestStorePath("hello-2.12.drv").full(), "dev", "x86_64-linux",
                                          BuildKind::kCheck, 5),
                        1234567890123),
  };
  written[2].origin = "node-b";
  EXPECT_THAT(WriteOk(RealisationBatch(written)), ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted,
                                                              WriteOutcome::kInserted, WriteOutcome::kInserted));

  // One vector per key, in input order (unknown and repeated keys included), each by key name here.
  std::vector<consensus::RealisationKey> keys = {traced.key, DrvHashKey("never-built.drv"), top.key, base.key,
                                                 traced.key};
  auto result = store_->RealisationsFor(keys);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(*result, ElementsAre(ElementsAre(written[3]), IsEmpty(), ElementsAre(written[0], written[1]),
                                   ElementsAre(written[2]), ElementsAre(written[3])));
  auto none = store_->RealisationsFor({});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  // Realisations are not attestations of their output paths.
  EXPECT_THAT(Read(top.out_path), IsEmpty());
}

// Realisations as real Nix 2.8 signed them (tests/testdata/realisations/README.md): stored and read
// back, the claim is still the bytes Nix signed (the builder's signature verifies), and the log entry
// holds them too.
TEST_P(AttestationStoreContractTest, RealisationsNixSignedStillVerifyWhenReadBack) {
  auto key = consensus::PublicKey::Parse(attest::testing::ReadFileOrDie(
      std::string(ATTEST_TESTDATA_DIR) + "/realisations/nix-2.8-builderA-1.pub"));
  ASSERT_TRUE(key.ok()) << key.status();
  std::vector<StoredRealisation> written;
  for (std::string_view name : {"nix-2.8-ca-base.doi", "nix-2.8-ca-top.doi"}) {
    auto file = consensus::ParseRealisationFile(
        attest::testing::ReadFileOrDie(consensus::Cat(ATTEST_TESTDATA_DIR, "/realisations/", name)));
    ASSERT_TRUE(file.ok()) << name << ": " << file.status();
    ASSERT_THAT(file->signatures, SizeIs(1));
    written.push_back(StoredRealisation{
        .attestation = consensus::RealisationAttestation{.claim = file->claim,
                                                         .signature = file->signatures[0],
                                                         .metadata = testing::Metadata("", "out", "x86_64-linux")},
        .received_unix = 1795576802,
        .observed_key = std::nullopt,
        .origin = {}});
  }
  WriteBatch batch = RealisationBatch(written);
  batch.log_append = LogAppend::kAll;
  EXPECT_THAT(WriteOk(batch), ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));

  const consensus::RealisationKey& top_key = written[1].attestation.claim.key;
  EXPECT_EQ(top_key.ToString(), "sha256:7f44388f57da34719cecaa95bd2dd9cb6cbe84f66510af9aa2709cfef802ea24!out");
  auto top = ReadRealisations(*store_, top_key);
  ASSERT_THAT(top, ElementsAre(written[1]));
  EXPECT_TRUE(consensus::VerifyRealisation(top[0].attestation, *key).ok());
  EXPECT_THAT(top[0].attestation.claim.dependent,
              ElementsAre(std::make_pair(written[0].attestation.claim.key.ToString(),
                                         written[0].attestation.claim.out_path)));
  auto out_path = StorePath::Parse("/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top");
  ASSERT_TRUE(out_path.ok()) << out_path.status();
  EXPECT_THAT(KeysFor(*store_, *out_path), ElementsAre(top_key.ToString()));

  auto entries = store_->LogEntries(0, 2);
  ASSERT_TRUE(entries.ok()) << entries.status();
  auto logged = consensus::ParseLogEntry((*entries)[1]);
  ASSERT_TRUE(logged.ok()) << logged.status();
  ASSERT_TRUE(logged->realisation.has_value());
  EXPECT_TRUE(consensus::VerifyRealisation(logged->realisation->attestation, *key).ok());
  EXPECT_EQ(logged->realisation->received_unix, 1795576802);
}

TEST_P(AttestationStoreContractTest, RealisationsAreOrderedByFingerprintThenKeyName) {
  // Three claims about one derivation output (three different builds) signed by several keys.
  std::vector<consensus::Realisation> claims = {BuildTraceRealisation("flaky-1.0", "out", "x"),
                                                BuildTraceRealisation("flaky-1.0", "out", "y"),
                                                BuildTraceRealisation("flaky-1.0", "out", "z")};
  std::vector<StoredRealisation> all;
  for (const consensus::Realisation& claim : claims) {
    for (std::string_view key : {"k-c", "k-a", "K-z"}) all.push_back(AttestRealisation(claim, key));
  }
  std::vector<StoredRealisation> scrambled = all;
  std::ranges::reverse(scrambled);
  std::rotate(scrambled.begin(), scrambled.begin() + 4, scrambled.end());
  WriteOk(RealisationBatch({scrambled.begin(), scrambled.begin() + 5}));
  WriteOk(RealisationBatch({scrambled.begin() + 5, scrambled.end()}));

  std::vector<StoredRealisation> expected = all;
  std::ranges::sort(expected, [](const StoredRealisation& a, const StoredRealisation& b) {
    return std::make_pair(a.attestation.claim.Fingerprint(), a.attestation.key_name()) <
           std::make_pair(b.attestation.claim.Fingerprint(), b.attestation.key_name());
  });
  EXPECT_EQ(ReadRealisations(*store_, claims[0].key), expected);
  EXPECT_EQ(StatsOk().realisations, 9);
  EXPECT_EQ(StatsOk().realisation_keys, 1);
}

TEST_P(AttestationStoreContractTest, ARealisationWrittenAgainIsStoredOnceWithTheEarliestReceipt) {
  const consensus::Realisation claim = BuildTraceRealisation("hello-2.12", "out", "A");
  const consensus::BuildMetadata first_metadata =
      testing::Metadata(TestStorePath("hello-2.12.drv").full(), "out", "x86_64-linux");
  const StoredRealisation first = AttestRealisation(claim, "builder-1", first_metadata, 500);
  const StoredRealisation earlier = AttestRealisation(claim, "builder-1", {}, 300);
  const StoredRealisation later = AttestRealisation(claim, "builder-1", {}, 900);
  EXPECT_THAT(WriteOk(RealisationBatch({first})), ElementsAre(WriteOutcome::kInserted));
  // Twice in one batch: stored once.
  EXPECT_THAT(WriteOk(RealisationBatch({earlier, later})),
              ElementsAre(WriteOutcome::kAlreadyPresent, WriteOutcome::kAlreadyPresent));
  StoredRealisation expected = first;  // its metadata, the earliest time
  expected.received_unix = 300;
  EXPECT_THAT(ReadRealisations(*store_, claim.key), ElementsAre(expected));
  EXPECT_THAT(WriteOk(RealisationBatch({later})), ElementsAre(WriteOutcome::kAlreadyPresent));
  EXPECT_THAT(ReadRealisations(*store_, claim.key), ElementsAre(expected));
  // Another key's signature over the same claim, and the same key over another claim, are new.
  EXPECT_THAT(WriteOk(RealisationBatch({AttestRealisation(claim, "builder-2"),
                                        AttestRealisation(BuildTraceRealisation("hello-2.12", "out", "B"),
                                                          "builder-1")})),
              ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));
  const StoreStats stats = StatsOk();
  EXPECT_EQ(stats.realisations, 3);
  EXPECT_EQ(stats.realisation_keys, 1);
  EXPECT_EQ(stats.attestations, 0);
}

TEST_P(AttestationStoreContractTest, OutcomesAreTheAttestationsThenTheRealisations) {
  const StoredAttestation a = Attest(TestClaim("a-1"), "builder-1");
  const StoredAttestation b = Attest(TestClaim("b-1"), "builder-1");
  const StoredRealisation r = AttestRealisation(BuildTraceRealisation("r", "out", "A"), "builder-1");
  const StoredRealisation s = AttestRealisation(DrvHashRealisation("s.drv", TestStorePath("s")), "builder-1");
  EXPECT_THAT(WriteOk(RealisationBatch({r}, {a})), ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));
  EXPECT_THAT(WriteOk(RealisationBatch({s, r, s}, {a, b})),
              ElementsAre(WriteOutcome::kAlreadyPresent, WriteOutcome::kInserted,    // attestations
                          WriteOutcome::kInserted, WriteOutcome::kAlreadyPresent,  // realisations
                          WriteOutcome::kAlreadyPresent));
  const StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, 2);
  EXPECT_EQ(stats.paths, 2);
  EXPECT_EQ(stats.realisations, 2);
  EXPECT_EQ(stats.realisation_keys, 2);
}

TEST_P(AttestationStoreContractTest, RealisationKeysForAnOutputPathAreSortedAndUnique) {
  const StorePath out = TestStorePath("ca-top");
  // Two formats naming the same output path; one key signed by two builders; another build elsewhere.
  const consensus::Realisation old_format = DrvHashRealisation("ca-top.drv", out);
  auto traced_key = consensus::RealisationKey::FromDrvPath(TestStorePath("ca-top.drv"), "out");
  ASSERT_TRUE(traced_key.ok()) << traced_key.status();
  auto traced = consensus::Realisation::Create(*traced_key, out);
  ASSERT_TRUE(traced.ok()) << traced.status();
  const consensus::Realisation elsewhere = DrvHashRealisation("ca-top.drv", SeededStorePath("ca-top", "other"));
  WriteOk(RealisationBatch({AttestRealisation(*traced, "builder-1"), AttestRealisation(old_format, "builder-1"),
                            AttestRealisation(old_format, "builder-2"), AttestRealisation(elsewhere, "builder-3")}));

  std::vector<std::string> expected = {old_format.key.ToString(), traced->key.ToString()};
  std::ranges::sort(expected);
  EXPECT_EQ(KeysFor(*store_, out), expected);
  EXPECT_THAT(KeysFor(*store_, elsewhere.out_path), ElementsAre(old_format.key.ToString()));
  EXPECT_THAT(KeysFor(*store_, TestStorePath("never-built")), IsEmpty());
  // An attested store path is not a realised one.
  WriteOk(Batch({Attest(TestClaim("plain-1"), "builder-1")}));
  EXPECT_THAT(KeysFor(*store_, TestStorePath("plain-1")), IsEmpty());

  const StoreStats stats = StatsOk();
  EXPECT_EQ(stats.realisations, 4);
  EXPECT_EQ(stats.realisation_keys, 2);
}

TEST_P(AttestationStoreContractTest, LogHoldsTheAttestationsThenTheRealisationsThenTheDisputes) {
  const StoredAttestation a = Attest(TestClaim("a-1"), "builder-1", {}, 10);
  const StoredAttestation b = Attest(TestClaim("b-1"), "builder-1", {}, 11);
  const StoredRealisation r = AttestRealisation(BuildTraceRealisation("r", "out", "A"), "builder-1", {}, 12);
  const StoredRealisation s =
      AttestRealisation(DrvHashRealisation("s.drv", TestStorePath("s")), "watcher-1", {}, 13, KeyKind::kObserved);
  WriteBatch first = RealisationBatch({r}, {a});
  first.log_append = LogAppend::kAll;
  WriteOk(first);
  // Held ones are not logged again; new ones are, realisations after attestations, disputes last.
  WriteBatch second = RealisationBatch({r, s}, {b, a});
  second.disputes.push_back(SignedDispute("b-1", 20));
  second.log_append = LogAppend::kAll;
  EXPECT_THAT(WriteOk(second), ElementsAre(WriteOutcome::kInserted, WriteOutcome::kAlreadyPresent,
                                           WriteOutcome::kAlreadyPresent, WriteOutcome::kInserted));
  // A replicated batch logs its disputes only.
  StoredRealisation replicated = AttestRealisation(BuildTraceRealisation("t", "out", "A"), "builder-2", {}, 14);
  replicated.origin = "node-b";
  WriteBatch third = RealisationBatch({replicated});
  third.log_append = LogAppend::kDisputesOnly;
  WriteOk(third);
  EXPECT_THAT(ReadRealisations(*store_, replicated.attestation.claim.key), ElementsAre(replicated));

  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok()) << head.status();
  ASSERT_EQ(head->size, 5u);
  auto entries = store_->LogEntries(0, 5);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0], EntryOf(a));
  EXPECT_EQ((*entries)[1], EntryOf(r));
  EXPECT_EQ((*entries)[2], EntryOf(b));
  EXPECT_EQ((*entries)[3], EntryOf(s));
  EXPECT_THAT((*entries)[4], ::testing::StartsWith("attest/log/dispute/v1\n"));
  auto parsed = consensus::ParseLogEntry((*entries)[3]);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, consensus::LogEntryKind::kRealisation);
  // The tree is over exactly these entries.
  consensus::CompactRange tree;
  for (const std::string& entry : *entries) tree.Append(consensus::LeafHash(entry), nullptr);
  EXPECT_EQ(head->root, tree.Root());
}

TEST_P(AttestationStoreContractTest, AnInvalidRealisationStoresNothingOfTheBatch) {
  const StoredAttestation a = Attest(TestClaim("a-1"), "new-builder", {}, 1);
  const StoredRealisation good = AttestRealisation(BuildTraceRealisation("good", "out", "A"), "new-builder");
  // The metadata names another output than the key's.
  const StoredRealisation bad = AttestRealisation(BuildTraceRealisation("bad", "out", "A"), "builder-1",
                                                  testing::Metadata("", "dev", ""));
  WriteBatch batch = RealisationBatch({good, bad}, {a});
  batch.disputes.push_back(SignedDispute("a-1", 5));
  batch.log_append = LogAppend::kAll;
  auto outcomes = store_->Write(batch);
  EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcomes.status().message(), HasSubstr("realisation 2 of 2"));
  EXPECT_THAT(Read(a.attestation.claim.path), IsEmpty());
  EXPECT_THAT(ReadRealisations(*store_, good.attestation.claim.key), IsEmpty());
  EXPECT_THAT(KeysFor(*store_, good.attestation.claim.out_path), IsEmpty());
  EXPECT_EQ(store_->GetLogHead()->size, 0u);
  const StoreStats stats = StatsOk();
  EXPECT_EQ(stats.attestations, 0);
  EXPECT_EQ(stats.realisations, 0);
  EXPECT_EQ(stats.realisation_keys, 0);
  EXPECT_EQ(stats.disputes, 0);

  // A negative time and an observed key named differently are refused too.
  StoredRealisation negative = good;
  negative.received_unix = -1;
  EXPECT_EQ(store_->Write(RealisationBatch({negative})).status().code(), absl::StatusCode::kInvalidArgument);
  StoredRealisation misnamed = AttestRealisation(BuildTraceRealisation("good", "out", "A"), "builder-1", {}, 1,
                                                 KeyKind::kObserved);
  misnamed.observed_key = testing::TestKey("someone-else").public_key();
  auto refused = store_->Write(RealisationBatch({misnamed}));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("observed key is named someone-else"));

  // The batch without the bad item is stored whole, and logged from where the log was.
  batch.realisations.pop_back();
  EXPECT_THAT(WriteOk(batch), ElementsAre(WriteOutcome::kInserted, WriteOutcome::kInserted));
  EXPECT_THAT(ReadRealisations(*store_, good.attestation.claim.key), ElementsAre(good));
  auto entries = store_->LogEntries(0, 3);
  ASSERT_TRUE(entries.ok()) << entries.status();
  EXPECT_EQ((*entries)[0], EntryOf(a));
  EXPECT_EQ((*entries)[1], EntryOf(good));
}

// Through the fault-injecting wrapper: a write refused before the commit stores nothing, one whose
// acknowledgement is lost after the commit is found held on the retry, and reads fail on command.
TEST_P(AttestationStoreContractTest, RealisationWritesAndReadsUnderInjectedFaults) {
  testing::FaultInjectingStore faulty(std::move(store_));
  const StoredRealisation r = AttestRealisation(BuildTraceRealisation("r", "out", "A"), "builder-1");
  WriteBatch batch = RealisationBatch({r}, {Attest(TestClaim("a-1"), "builder-1")});
  batch.log_append = LogAppend::kAll;
  faulty.FailWrites(1, absl::UnavailableError("disk busy"));
  EXPECT_EQ(faulty.Write(batch).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ReadRealisations(faulty, r.attestation.claim.key), IsEmpty());
  EXPECT_EQ(faulty.Stats()->realisations, 0);
  EXPECT_EQ(faulty.GetLogHead()->size, 0u);

  faulty.FailWritesAfterCommit(1, absl::UnavailableError("acknowledgement lost"));
  EXPECT_EQ(faulty.Write(batch).status().code(), absl::StatusCode::kUnavailable);
  auto retry = faulty.Write(batch);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_THAT(*retry, ElementsAre(WriteOutcome::kAlreadyPresent, WriteOutcome::kAlreadyPresent));
  EXPECT_THAT(ReadRealisations(faulty, r.attestation.claim.key), ElementsAre(r));
  EXPECT_EQ(faulty.GetLogHead()->size, 2u);

  faulty.FailReads(2, absl::UnavailableError("read failed"));
  EXPECT_EQ(faulty.RealisationsFor(std::vector<consensus::RealisationKey>{r.attestation.claim.key}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(faulty.RealisationKeysFor(r.attestation.claim.out_path).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_THAT(KeysFor(faulty, r.attestation.claim.out_path), ElementsAre(r.attestation.claim.key.ToString()));
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, AttestationStoreContractTest,
    ::testing::Values(
        Implementation{"Memory",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<MemoryAttestationStore>();
                       }},
        Implementation{"Sqlite",
                       [](const TempDir& dir) -> std::unique_ptr<AttestationStore> {
                         auto store = SqliteAttestationStore::Open(dir.File("attest.db"), {});
                         EXPECT_TRUE(store.ok()) << store.status();
                         if (!store.ok()) return nullptr;
                         return std::move(*store);
                       }},
        // Reads find rows through SQLite's index on hash_head alone (storage/path_id_index.h off).
        Implementation{"SqliteWithoutPathIndex",
                       [](const TempDir& dir) -> std::unique_ptr<AttestationStore> {
                         auto store = SqliteAttestationStore::Open(dir.File("attest.db"),
                                                                   {.path_index_max_bytes = 0});
                         EXPECT_TRUE(store.ok()) << store.status();
                         if (!store.ok()) return nullptr;
                         return std::move(*store);
                       }},
        // The wrapper, with no fault planned, must be transparent.
        Implementation{"FaultInjectingWithoutFaults",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<testing::FaultInjectingStore>(
                             std::make_unique<MemoryAttestationStore>());
                       }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

}  // namespace
}  // namespace attest::storage
