// MemoryAttestationStore: an AttestationStore held in memory, for tests and tools that need no
// durability. Behaves exactly like SqliteAttestationStore (same validation, outcomes and ordering);
// both pass tests/storage/attestation_store_contract_test.cc, derivation_store_contract_test.cc and
// policy_store_contract_test.cc.
//
// Thread-safe: one mutex guards all state; Write is atomic with respect to every other call.
#ifndef ATTEST_STORAGE_MEMORY_ATTESTATION_STORE_H_
#define ATTEST_STORAGE_MEMORY_ATTESTATION_STORE_H_

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "storage/attestation_store.h"
#include "storage/log_tree.h"

namespace attest::storage {

class MemoryAttestationStore final : public AttestationStore {
 public:
  MemoryAttestationStore() = default;

  // --- StoreWriter (storage/store_writer.h) ---
  // INVALID_ARGUMENT (storing nothing) when an item fails ValidateStoredAttestation /
  // ValidateStoredRealisation / ValidateStoredDispute.
  absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) override;
  // --- Ledger (storage/ledger.h) ---
  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) override;
  absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys) override;
  absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path) override;
  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) override;
  // INVALID_ARGUMENT when query.limit < 1.
  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) override;
  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) override;
  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) override;
  absl::StatusOr<std::vector<StoredResolution>> AllResolutions() override;
  absl::StatusOr<StoreStats> Stats() override;
  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() override;

  // --- TransparencyLogStore (storage/transparency_log_store.h) ---
  absl::StatusOr<LogHead> GetLogHead() override;
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) override;
  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles) override;
  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) override;
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() override;

  // --- PeerStore (storage/peer_store.h) ---
  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) override;
  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) override;
  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) override;
  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                          uint64_t count) override;
  absl::Status StoreForkEvidence(const ForkEvidence& evidence) override;
  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() override;

  // --- DerivationStore (storage/derivation_store.h) ---
  absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) override;
  absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) override;
  absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) override;
  absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) override;
  absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) override;
  absl::StatusOr<DerivationStats> GetDerivationStats() override;

  // --- PolicyStore (storage/policy_store.h) ---
  absl::Status PutPolicyLink(const StoredPolicyLink& link) override;
  absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain() override;

 private:
  void AppendToLog(std::string entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Attestations of one path keyed by (fingerprint, key name): the order AttestationsFor returns.
  using PathAttestations = std::map<std::pair<std::string, std::string>, StoredAttestation>;

  absl::Mutex mu_;
  absl::flat_hash_map<consensus::StorePath, PathAttestations> attestations_ ABSL_GUARDED_BY(mu_);
  int64_t attestation_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Realisation attestations by key (canonical text), each keyed by (fingerprint, key name).
  std::map<std::string, std::map<std::pair<std::string, std::string>, StoredRealisation>> realisations_
      ABSL_GUARDED_BY(mu_);
  int64_t realisation_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Output path (full) -> the keys of the realisations claiming it, sorted.
  absl::flat_hash_map<std::string, std::set<std::string>> realisation_keys_by_out_path_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, StoredDispute> disputes_ ABSL_GUARDED_BY(mu_);  // by id
  // by (dispute id, time, signed note); a note is stored once
  std::map<std::tuple<std::string, int64_t, std::string>, StoredResolution> resolutions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> per_key_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> log_entries_ ABSL_GUARDED_BY(mu_);
  LogTree log_tree_ ABSL_GUARDED_BY(mu_);
  std::map<TileKey, std::string> log_tiles_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, StoredCheckpoint> checkpoints_ ABSL_GUARDED_BY(mu_);  // by size
  std::map<std::string, PeerProgress> peers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::map<uint64_t, std::string>> peer_entries_ ABSL_GUARDED_BY(mu_);  // by index
  std::map<std::pair<std::string, uint64_t>, RejectedEntry> rejected_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ForkEvidence> forks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<consensus::StorePath, StoredDerivation> derivations_ ABSL_GUARDED_BY(mu_);
  std::vector<StoredPolicyLink> policy_chain_ ABSL_GUARDED_BY(mu_);  // oldest first
  int64_t derivation_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Output path (full, so that a hash part is a prefix range) -> the derivations listing it, in the
  // order DerivationsProducing returns them.
  struct ByDrvPathThenOutput {
    bool operator()(const DerivationOfOutput& a, const DerivationOfOutput& b) const {
      return std::tie(a.drv_path, a.output_name) < std::tie(b.drv_path, b.output_name);
    }
  };
  std::map<std::string, std::set<DerivationOfOutput, ByDrvPathThenOutput>, std::less<>> producers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_MEMORY_ATTESTATION_STORE_H_
