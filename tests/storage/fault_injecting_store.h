// FaultInjectingStore: an AttestationStore (all its roles) that forwards to another one and fails on
// command, for tests of everything above storage (ingest, replication, the server) that must survive storage
// failures: a write refused before it reached the database, an acknowledgement lost after a commit,
// reads that fail.
//
//   auto store = std::make_unique<FaultInjectingStore>(std::make_unique<MemoryAttestationStore>());
//   store->FailWrites(1, absl::UnavailableError("disk busy"));   // next Write fails, stores nothing
//   store->FailWritesAfterCommit(1, absl::UnavailableError("x")); // next Write stores, then fails
//
// Header-only. Thread-safe: the fault plan is guarded by a mutex; calls are forwarded unlocked.
#ifndef ATTEST_TESTS_STORAGE_FAULT_INJECTING_STORE_H_
#define ATTEST_TESTS_STORAGE_FAULT_INJECTING_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "storage/attestation_store.h"

namespace attest::storage::testing {

class FaultInjectingStore final : public AttestationStore {
 public:
  explicit FaultInjectingStore(std::unique_ptr<AttestationStore> inner) : inner_(std::move(inner)) {}

  // The next `count` Write (or PutDerivations, PutPolicyLink) calls return `status` without reaching the
  // inner store.
  void FailWrites(int count, absl::Status status) {
    absl::MutexLock lock(&mu_);
    writes_before_commit_ = Plan{count, std::move(status)};
  }
  // The next `count` Write (or PutDerivations, PutPolicyLink) calls are stored by the inner store and then report
  // `status`, as when the acknowledgement of a committed write is lost. A retry must then see
  // kAlreadyPresent.
  void FailWritesAfterCommit(int count, absl::Status status) {
    absl::MutexLock lock(&mu_);
    writes_after_commit_ = Plan{count, std::move(status)};
  }
  // The next `count` reads (AttestationsFor, RealisationsFor, RealisationKeysFor, GetDispute,
  // ListDisputes, Stats, the log reads and the derivation and policy chain reads) return `status`.
  void FailReads(int count, absl::Status status) {
    absl::MutexLock lock(&mu_);
    reads_ = Plan{count, std::move(status)};
  }
  // Every Write that holds an attestation of `path` returns `status` without reaching the inner store
  // (until Heal): a record the store refuses for its content, whatever else the batch holds.
  void RefuseWritesOf(const consensus::StorePath& path, absl::Status status) {
    absl::MutexLock lock(&mu_);
    refused_path_ = path;
    refusal_ = std::move(status);
  }
  // Forgets every planned fault.
  void Heal() {
    absl::MutexLock lock(&mu_);
    writes_before_commit_ = writes_after_commit_ = reads_ = Plan{};
    refused_path_.reset();
  }

  int write_calls() const {
    absl::MutexLock lock(&mu_);
    return write_calls_;
  }
  int read_calls() const {
    absl::MutexLock lock(&mu_);
    return read_calls_;
  }
  AttestationStore& inner() { return *inner_; }

  // --- StoreWriter (storage/store_writer.h) ---
  absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) override {
    std::optional<absl::Status> after_commit;
    {
      absl::MutexLock lock(&mu_);
      ++write_calls_;
      if (auto failure = Take(writes_before_commit_)) return *failure;
      if (refused_path_.has_value()) {
        for (const StoredAttestation& stored : batch.attestations) {
          if (stored.attestation.claim.path == *refused_path_) return refusal_;
        }
      }
      after_commit = Take(writes_after_commit_);
    }
    auto result = inner_->Write(batch);
    if (after_commit.has_value() && result.ok()) return *after_commit;
    return result;
  }

  // --- Ledger (storage/ledger.h) ---
  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->AttestationsFor(paths);
  }
  absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->RealisationsFor(keys);
  }
  absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->RealisationKeysFor(out_path);
  }
  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->GetDispute(id);
  }
  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->ListDisputes(query);
  }
  absl::StatusOr<StoreStats> Stats() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->Stats();
  }
  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->CountDisputes(query);
  }
  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->ResolutionsFor(dispute_id);
  }
  absl::StatusOr<std::vector<StoredResolution>> AllResolutions() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->AllResolutions();
  }
  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->AttestationsPerKey();
  }
  // --- TransparencyLogStore (storage/transparency_log_store.h) ---
  absl::StatusOr<LogHead> GetLogHead() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->GetLogHead();
  }
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->LogEntries(first, count);
  }
  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->LogTiles(tiles);
  }
  // Counted as a write: it fails before storing when writes are planned to fail before the commit.
  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) override {
    {
      absl::MutexLock lock(&mu_);
      ++write_calls_;
      if (auto failure = Take(writes_before_commit_)) return *failure;
    }
    return inner_->StoreCheckpoint(checkpoint);
  }
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->LatestCheckpoint();
  }
  // --- PeerStore (storage/peer_store.h) ---
  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->GetPeerProgress(peer);
  }
  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->RecentRejectedEntries(peer, limit);
  }
  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->CountRejectedEntries(peer);
  }
  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                          uint64_t count) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->PeerLogEntries(peer, first, count);
  }
  absl::Status StoreForkEvidence(const ForkEvidence& evidence) override {
    {
      absl::MutexLock lock(&mu_);
      ++write_calls_;
      if (auto failure = Take(writes_before_commit_)) return *failure;
    }
    return inner_->StoreForkEvidence(evidence);
  }
  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->ListForkEvidence();
  }
  // --- DerivationStore (storage/derivation_store.h) ---
  // Counted as a write, and failed before or after the commit as Write is.
  absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) override {
    std::optional<absl::Status> after_commit;
    {
      absl::MutexLock lock(&mu_);
      ++write_calls_;
      if (auto failure = Take(writes_before_commit_)) return *failure;
      after_commit = Take(writes_after_commit_);
    }
    auto result = inner_->PutDerivations(derivations);
    if (after_commit.has_value() && result.ok()) return *after_commit;
    return result;
  }
  absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->HasDerivations(paths);
  }
  absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->GetDerivations(paths);
  }
  absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->DerivationsProducing(outputs);
  }
  absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->OutputPathByHashPart(hash_part);
  }
  absl::StatusOr<DerivationStats> GetDerivationStats() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->GetDerivationStats();
  }
  // --- PolicyStore (storage/policy_store.h) ---
  // Counted as a write, and failed before or after the commit as Write is.
  absl::Status PutPolicyLink(const StoredPolicyLink& link) override {
    std::optional<absl::Status> after_commit;
    {
      absl::MutexLock lock(&mu_);
      ++write_calls_;
      if (auto failure = Take(writes_before_commit_)) return *failure;
      after_commit = Take(writes_after_commit_);
    }
    absl::Status result = inner_->PutPolicyLink(link);
    if (after_commit.has_value() && result.ok()) return *after_commit;
    return result;
  }
  absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain() override {
    if (auto failure = TakeRead()) return *failure;
    return inner_->PolicyChain();
  }

 private:
  struct Plan {
    int remaining = 0;
    absl::Status status;
  };

  static std::optional<absl::Status> Take(Plan& plan) {
    if (plan.remaining <= 0) return std::nullopt;
    --plan.remaining;
    return plan.status;
  }
  std::optional<absl::Status> TakeRead() {
    absl::MutexLock lock(&mu_);
    ++read_calls_;
    return Take(reads_);
  }

  const std::unique_ptr<AttestationStore> inner_;
  mutable absl::Mutex mu_;
  Plan writes_before_commit_ ABSL_GUARDED_BY(mu_);
  Plan writes_after_commit_ ABSL_GUARDED_BY(mu_);
  Plan reads_ ABSL_GUARDED_BY(mu_);
  std::optional<consensus::StorePath> refused_path_ ABSL_GUARDED_BY(mu_);
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  int write_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int read_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attest::storage::testing

#endif  // ATTEST_TESTS_STORAGE_FAULT_INJECTING_STORE_H_
