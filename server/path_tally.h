// PathTally: the tally of one store path computed from what the store holds, shared by the write path
// (ingest) and the read paths (status, disputes) so they always agree.
//
// An attestation stored for observation counts only through its key name, so one whose observed key
// differs from the policy's builder key of that name (the policy changed after it was stored) is left
// out of the tally entirely: it was never verified with the key the policy trusts.
//
// Pure functions; thread-safe.
#ifndef ATTEST_SERVER_PATH_TALLY_H_
#define ATTEST_SERVER_PATH_TALLY_H_

#include <cstddef>
#include <span>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/tally.h"
#include "storage/ledger.h"

namespace attest::server {

struct PathTally final {
  // The tally's input, borrowed from the `stored` span given to TallyStored, which must outlive this.
  std::vector<const consensus::Attestation*> attestations;
  std::vector<size_t> stored_index;                  // for each input, its index in `stored`
  consensus::TallyResult result;

  // Indices into `stored` of the attestations that count, in the order of result.fingerprints.
  std::vector<size_t> CountedStoredIndices() const;
};

// `options` carries the builders excluded by maintainers' statements (ResolutionBook::tally_options).
PathTally TallyStored(const consensus::Policy& policy, std::span<const storage::StoredAttestation> stored,
                      const consensus::TallyOptions& options);

// The tally of one derivation output's realisations (consensus::TallyRealisation) from what the store
// holds, by the same rules as TallyStored (an observed key the policy now names differently is left out).
struct RealisationTally final {
  std::vector<const consensus::RealisationAttestation*> attestations;  // borrowed from `stored`
  std::vector<size_t> stored_index;                                     // for each input, its index in `stored`
  consensus::TallyResult result;
};

RealisationTally TallyStoredRealisations(const consensus::Policy& policy,
                                         std::span<const storage::StoredRealisation> stored,
                                         const consensus::TallyOptions& options);

// True when the counted evidence differs: another set of fingerprints, or other builders behind one.
bool CountedEvidenceChanged(const consensus::TallyResult& before, const consensus::TallyResult& after);

}  // namespace attest::server

#endif  // ATTEST_SERVER_PATH_TALLY_H_
