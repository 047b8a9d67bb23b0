// ResolutionBook: the maintainers' statements in force on this node (consensus/resolution.h) and what
// follows from them: the builder keys that no longer count (the TallyOptions of every tally the node
// computes: ingest, status, disputes, gateway) and the statement that decides each dispute's state.
//
// Filled from the store at start (Load) and told about every statement the node stores afterwards
// (submitted or replicated). Thread-safe; readers get immutable snapshots.
#ifndef ATTEST_SERVER_RESOLUTION_BOOK_H_
#define ATTEST_SERVER_RESOLUTION_BOOK_H_

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "consensus/resolution.h"
#include "consensus/tally.h"
#include "storage/ledger.h"

namespace attest::server {

class ResolutionBook final {
 public:
  explicit ResolutionBook(const PolicyBook& policy);

  // Reads and verifies every stored statement under the current policy: at start, and again after a
  // policy update (a statement by a maintainer the update removed or revoked stops being in force; one
  // the update makes valid starts). One that does not verify is left out and logged; a store failure is
  // returned and leaves the book as it was.
  absl::Status Load(storage::Ledger& store);

  // A statement the node stored: it is in force when it is the latest about its dispute.
  void Add(const consensus::VerifiedResolution& statement);

  // The statement in force about the dispute, if any.
  std::optional<consensus::VerifiedResolution> InForce(const std::string& dispute_id) const;
  // The dispute's state given its current competing fingerprints.
  consensus::DisputeState StateOf(const std::string& dispute_id, std::span<const std::string> fingerprints) const;

  // The options every tally uses now (excluded builders). The snapshot stays valid after later Adds.
  std::shared_ptr<const consensus::TallyOptions> tally_options() const;
  // The signed notes of statements in force that exclude any of `key_names` (sorted, unique).
  std::vector<std::string> ExclusionsFor(std::span<const std::string> key_names) const;

 private:
  void Rebuild() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PolicyBook& policy_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, consensus::VerifiedResolution> in_force_ ABSL_GUARDED_BY(mu_);
  // builder key name -> signed notes excluding it
  absl::flat_hash_map<std::string, std::vector<std::string>> exclusions_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const consensus::TallyOptions> options_ ABSL_GUARDED_BY(mu_);
};

// book->tally_options(), or options that exclude nobody when `book` is null (tests without statements).
std::shared_ptr<const consensus::TallyOptions> TallyOptionsOf(const ResolutionBook* book);

}  // namespace attest::server

#endif  // ATTEST_SERVER_RESOLUTION_BOOK_H_
