#include "storage/memory_attestation_store.h"

#include "absl/status/status.h"
#include "storage/batch_validation.h"

namespace attest::storage {

absl::StatusOr<std::vector<WriteOutcome>> MemoryAttestationStore::Write(const WriteBatch& batch) {
  // Validate everything first: a refused item must leave the store untouched.
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    if (absl::Status status = ValidateStoredAttestation(batch.attestations[i], i,
                                                        batch.attestations.size());
        !status.ok()) {
      return status;
    }
  }
  for (size_t i = 0; i < batch.disputes.size(); ++i) {
    if (absl::Status status = ValidateStoredDispute(batch.disputes[i], i, batch.disputes.size());
        !status.ok()) {
      return status;
    }
  }

  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(batch.attestations.size());
  absl::MutexLock lock(&mu_);
  for (const StoredAttestation& stored : batch.attestations) {
    PathAttestations& of_path = attestations_[stored.attestation.claim.path];
    auto [it, inserted] = of_path.try_emplace(
        std::make_pair(stored.attestation.claim.Fingerprint(), stored.attestation.key_name()),
        stored);
    if (inserted) ++attestation_count_;
    outcomes.push_back(inserted ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent);
  }
  for (const StoredDispute& dispute : batch.disputes) {
    auto [it, inserted] = disputes_.try_emplace(dispute.id, dispute);
    if (!inserted) {
      const int64_t opened = it->second.opened_unix;
      it->second = dispute;
      it->second.opened_unix = opened;
    }
  }
  return outcomes;
}

absl::StatusOr<std::vector<std::vector<StoredAttestation>>> MemoryAttestationStore::AttestationsFor(
    std::span<const consensus::StorePath> paths) {
  std::vector<std::vector<StoredAttestation>> result(paths.size());
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < paths.size(); ++i) {
    auto it = attestations_.find(paths[i]);
    if (it == attestations_.end()) continue;
    result[i].reserve(it->second.size());
    for (const auto& [key, stored] : it->second) result[i].push_back(stored);
  }
  return result;
}

absl::StatusOr<std::optional<StoredDispute>> MemoryAttestationStore::GetDispute(
    const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = disputes_.find(id);
  if (it == disputes_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<StoredDispute>> MemoryAttestationStore::ListDisputes(
    const DisputeQuery& query) {
  if (query.limit < 1) {
    return absl::InvalidArgumentError("dispute page limit must be at least 1");
  }
  std::vector<StoredDispute> page;
  absl::MutexLock lock(&mu_);
  for (auto it = disputes_.upper_bound(query.after_id);
       it != disputes_.end() && page.size() < static_cast<size_t>(query.limit); ++it) {
    page.push_back(it->second);
  }
  return page;
}

absl::StatusOr<StoreStats> MemoryAttestationStore::Stats() {
  absl::MutexLock lock(&mu_);
  return StoreStats{.attestations = attestation_count_,
                    .paths = static_cast<int64_t>(attestations_.size()),
                    .disputes = static_cast<int64_t>(disputes_.size())};
}

}  // namespace attest::storage
