// DerivationIntake: the .drv files builders send and rebuilders fetch (Rebuilds.SubmitDerivations,
// MissingDerivations, GetDerivations, and GET /drv/ on the HTTP port; docs/rebuilds.md).
//
// A submitted file is stored only when all of this holds, else it is rejected with its reason and
// nothing of it is stored:
//   - its path is a .drv store path and the file is at most consensus::kMaxDerivationBytes;
//   - it parses, and its path is the text-addressed path of its contents and references
//     (consensus::VerifyDerivationFile);
//   - every input derivation it names is in the same request (and is stored by it) or already held;
//   - every output path it writes is the one its inputs give (consensus::DerivationGraph); a derivation
//     whose outputs cannot be known before building (floating content-addressed, deferred) is kept
//     without outputs;
//   - one of its outputs has an attestation by a key of the policy on this node, or it is an input,
//     transitively, of such a derivation stored by the same request. So the node keeps what rebuilders
//     of attested paths need, and nobody can fill it with unrelated files.
// Requests are bounded: at most kMaxDerivationsPerRequest files and kMaxDerivationRequestBytes in all
// (INVALID_ARGUMENT for the whole request beyond).
//
// Thread-safe; the stores are borrowed.
#ifndef ATTEST_SERVER_DERIVATION_INTAKE_H_
#define ATTEST_SERVER_DERIVATION_INTAKE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/store_path.h"
#include "storage/derivation_store.h"
#include "storage/ledger.h"

namespace attest::server {

inline constexpr size_t kMaxDerivationsPerRequest = 10000;
inline constexpr size_t kMaxDerivationRequestBytes = size_t{64} << 20;
// GetDerivations: requested paths per call, and the most a closure answer holds.
inline constexpr size_t kMaxDerivationPathsPerRequest = 10000;
inline constexpr size_t kMaxClosureDerivations = 20000;
inline constexpr size_t kMaxClosureBytes = size_t{48} << 20;

struct DerivationUpload final {
  std::string store_path;  // as sent, not yet parsed
  std::string contents;
};

enum class DerivationOutcome { kStored, kAlreadyPresent, kRejected };

struct DerivationVerdict final {
  DerivationOutcome outcome = DerivationOutcome::kRejected;
  absl::Status reason;  // why it was rejected (OK otherwise)
};

struct DerivationClosure final {
  // Every derivation before the ones that use it.
  std::vector<storage::StoredDerivation> derivations;
  std::vector<std::string> missing;  // requested paths or inputs the node does not hold
};

struct DerivationIntakeStats final {
  uint64_t stored = 0;  // since start
  uint64_t already_present = 0;
  uint64_t rejected = 0;
};

class DerivationIntake final {
 public:
  using Clock = std::function<absl::Time()>;

  DerivationIntake(storage::DerivationStore* derivations, storage::Ledger* ledger, Clock clock);

  // One verdict per upload, in order. The call fails as a whole (nothing stored) with
  // INVALID_ARGUMENT for a request over the bounds, or the store's error (UNAVAILABLE, ...).
  absl::StatusOr<std::vector<DerivationVerdict>> Submit(std::span<const DerivationUpload> uploads);

  // The requested paths the node does not hold, in request order. INVALID_ARGUMENT for a path that is
  // not a .drv store path or too many paths.
  absl::StatusOr<std::vector<std::string>> Missing(std::span<const std::string> paths);

  // The derivations (with `closure`, and every input derivation they need, transitively), inputs first.
  // INVALID_ARGUMENT as Missing; RESOURCE_EXHAUSTED when the answer would pass kMaxClosureDerivations or
  // kMaxClosureBytes.
  absl::StatusOr<DerivationClosure> Get(std::span<const std::string> paths, bool closure);

  DerivationIntakeStats stats() const;

 private:
  storage::DerivationStore* const derivations_;
  storage::Ledger* const ledger_;
  const Clock clock_;
  std::atomic<uint64_t> stored_{0};
  std::atomic<uint64_t> already_present_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_DERIVATION_INTAKE_H_
