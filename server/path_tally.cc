#include "server/path_tally.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

namespace attest::server {

std::vector<size_t> PathTally::CountedStoredIndices() const {
  std::vector<size_t> out;
  for (const consensus::FingerprintTally& side : result.fingerprints) {
    for (size_t input : side.attestations) out.push_back(stored_index[input]);
  }
  return out;
}

namespace {

// Fills tally.attestations / tally.stored_index with what counts as held: an attestation stored for
// observation whose key the policy now names with another public key is left out entirely. Returns the
// received times, parallel to tally.attestations (they decide whether a retired key still counts).
template <typename Held, typename Stored>
std::vector<int64_t> CollectHeld(const consensus::Policy& policy, std::span<const Stored> stored, Held& tally) {
  tally.attestations.reserve(stored.size());
  tally.stored_index.reserve(stored.size());
  std::vector<int64_t> received_unix;
  received_unix.reserve(stored.size());
  for (size_t i = 0; i < stored.size(); ++i) {
    const Stored& s = stored[i];
    if (s.observed_key.has_value()) {
      const consensus::PublicKey* policy_key = policy.FindBuilder(s.attestation.key_name());
      if (policy_key != nullptr && !(*policy_key == *s.observed_key)) continue;
    }
    tally.attestations.push_back(&s.attestation);
    tally.stored_index.push_back(i);
    received_unix.push_back(s.received_unix);
  }
  return received_unix;
}

}  // namespace

PathTally TallyStored(const consensus::Policy& policy, std::span<const storage::StoredAttestation> stored,
                      const consensus::TallyOptions& options) {
  PathTally tally;
  const std::vector<int64_t> received_unix = CollectHeld(policy, stored, tally);
  tally.result = consensus::Tally(policy, std::span<const consensus::Attestation* const>(tally.attestations), options,
                                  received_unix);
  return tally;
}

RealisationTally TallyStoredRealisations(const consensus::Policy& policy,
                                         std::span<const storage::StoredRealisation> stored,
                                         const consensus::TallyOptions& options) {
  RealisationTally tally;
  const std::vector<int64_t> received_unix = CollectHeld(policy, stored, tally);
  tally.result = consensus::TallyRealisation(
      policy, std::span<const consensus::RealisationAttestation* const>(tally.attestations), options, received_unix);
  return tally;
}

bool CountedEvidenceChanged(const consensus::TallyResult& before, const consensus::TallyResult& after) {
  auto evidence = [](const consensus::TallyResult& r) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    for (const auto& side : r.fingerprints) out.emplace_back(side.fingerprint, side.builders);
    std::sort(out.begin(), out.end());
    return out;
  };
  return evidence(before) != evidence(after);
}

}  // namespace attest::server
