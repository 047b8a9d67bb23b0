// ForwardingAttestationStore: an AttestationStore that passes every call to another one. Decorators
// (fault injection, recording, tampering in tests) derive from it and override only what they change.
#ifndef ATTEST_STORAGE_FORWARDING_ATTESTATION_STORE_H_
#define ATTEST_STORAGE_FORWARDING_ATTESTATION_STORE_H_

#include "storage/attestation_store.h"

namespace attest::storage {

class ForwardingAttestationStore : public AttestationStore {
 public:
  // `inner` is borrowed and must outlive this store.
  explicit ForwardingAttestationStore(AttestationStore* inner) : inner_(inner) {}

  // --- StoreWriter (storage/store_writer.h) ---
  absl::StatusOr<std::vector<WriteOutcome>> Write(const WriteBatch& batch) override { return inner_->Write(batch); }
  // --- Ledger (storage/ledger.h) ---
  absl::StatusOr<std::vector<std::vector<StoredAttestation>>> AttestationsFor(
      std::span<const consensus::StorePath> paths) override {
    return inner_->AttestationsFor(paths);
  }
  absl::StatusOr<std::vector<std::vector<StoredRealisation>>> RealisationsFor(
      std::span<const consensus::RealisationKey> keys) override {
    return inner_->RealisationsFor(keys);
  }
  absl::StatusOr<std::vector<std::string>> RealisationKeysFor(const consensus::StorePath& out_path) override {
    return inner_->RealisationKeysFor(out_path);
  }
  absl::StatusOr<std::optional<StoredDispute>> GetDispute(const std::string& id) override {
    return inner_->GetDispute(id);
  }
  absl::StatusOr<std::vector<StoredDispute>> ListDisputes(const DisputeQuery& query) override {
    return inner_->ListDisputes(query);
  }
  absl::StatusOr<int64_t> CountDisputes(const DisputeQuery& query) override { return inner_->CountDisputes(query); }
  absl::StatusOr<std::vector<StoredResolution>> ResolutionsFor(const std::string& dispute_id) override {
    return inner_->ResolutionsFor(dispute_id);
  }
  absl::StatusOr<std::vector<StoredResolution>> AllResolutions() override { return inner_->AllResolutions(); }
  absl::StatusOr<std::vector<KeyAttestationCount>> AttestationsPerKey() override {
    return inner_->AttestationsPerKey();
  }
  absl::StatusOr<StoreStats> Stats() override { return inner_->Stats(); }
  // --- TransparencyLogStore (storage/transparency_log_store.h) ---
  absl::StatusOr<LogHead> GetLogHead() override { return inner_->GetLogHead(); }
  absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) override {
    return inner_->LogEntries(first, count);
  }
  absl::StatusOr<std::vector<std::string>> LogTiles(std::span<const consensus::TileId> tiles) override {
    return inner_->LogTiles(tiles);
  }
  absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) override {
    return inner_->StoreCheckpoint(checkpoint);
  }
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() override { return inner_->LatestCheckpoint(); }
  // --- PeerStore (storage/peer_store.h) ---
  absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) override {
    return inner_->GetPeerProgress(peer);
  }
  absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) override {
    return inner_->RecentRejectedEntries(peer, limit);
  }
  absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) override {
    return inner_->CountRejectedEntries(peer);
  }
  absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                          uint64_t count) override {
    return inner_->PeerLogEntries(peer, first, count);
  }
  absl::Status StoreForkEvidence(const ForkEvidence& evidence) override {
    return inner_->StoreForkEvidence(evidence);
  }
  absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() override { return inner_->ListForkEvidence(); }
  // --- DerivationStore (storage/derivation_store.h) ---
  absl::StatusOr<std::vector<WriteOutcome>> PutDerivations(std::span<const StoredDerivation> derivations) override {
    return inner_->PutDerivations(derivations);
  }
  absl::StatusOr<std::vector<bool>> HasDerivations(std::span<const consensus::StorePath> paths) override {
    return inner_->HasDerivations(paths);
  }
  absl::StatusOr<std::vector<std::optional<StoredDerivation>>> GetDerivations(
      std::span<const consensus::StorePath> paths) override {
    return inner_->GetDerivations(paths);
  }
  absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> DerivationsProducing(
      std::span<const consensus::StorePath> outputs) override {
    return inner_->DerivationsProducing(outputs);
  }
  absl::StatusOr<std::optional<consensus::StorePath>> OutputPathByHashPart(std::string_view hash_part) override {
    return inner_->OutputPathByHashPart(hash_part);
  }
  absl::StatusOr<DerivationStats> GetDerivationStats() override { return inner_->GetDerivationStats(); }
  // --- PolicyStore (storage/policy_store.h) ---
  absl::Status PutPolicyLink(const StoredPolicyLink& link) override { return inner_->PutPolicyLink(link); }
  absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain() override { return inner_->PolicyChain(); }

 protected:
  AttestationStore* inner() const { return inner_; }

 private:
  AttestationStore* const inner_;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_FORWARDING_ATTESTATION_STORE_H_
