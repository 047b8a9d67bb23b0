// Ingestor: the node's write path. Takes a batch of submitted attestations, decides for each one
// whether it may be stored, and stores the accepted ones durably together with any dispute record they
// cause.
//
// Pipeline of Submit:
//   1. batch limits (RPC-level: empty batch INVALID_ARGUMENT, over max_batch RESOURCE_EXHAUSTED);
//   2. on the verify pool, in chunks: wire -> domain conversion, key lookup in the policy (or, when the
//      node observes unknown keys, the public key the item carries), Ed25519 verification;
//   3. duplicates within the batch (the first occurrence counts; later ones are rejected);
//   4. the writer, one at a time, in one straight walk per group: read the stored attestations of the
//      affected paths (and the disputes of any statements); plan with PlanIngest (server/ingest_plan.h,
//      a pure function: tallies, signed dispute records for every path that is DISPUTED and whose
//      counted evidence changed, state-change lines, one storage WriteBatch); write that batch; notify
//      (item outcomes, on_commit, the ResolutionBook, log lines). Batches that arrive while the writer
//      is busy are committed together in the next WriteBatch (group commit).
// Replicate uses the same verification (the chunks on the pool, the key lookup) and the same writer and
// plan.
// Submit returns only after that write returned OK, so every ACCEPTED or OBSERVED item is durable.
//
// Per-item rejections (the item is not stored; the rest of the batch proceeds):
//   INVALID_ARGUMENT  "attestation <i> of <n>: <field>: <problem>" for malformed fields, and
//                     "attestation <i> of <n>: duplicate of attestation <j>"
//   UNAUTHENTICATED   the key is not a builder key of the policy (and the node does not observe unknown
//                     keys, or the item carries no public_key), or the signature does not verify
//   INVALID_ARGUMENT  "attestation <i> of <n>: attestation entry for <path> would be <N> bytes ...": its
//                     log entry would not fit in a C2SP tlog-tiles entry (consensus::CheckAttestationLoggable;
//                     a path with more than about 1,300 references), so it could never be logged
//   the store's code  "attestation <i> of <n>: the node could not store it (...)": the group's write failed
//                     for its content (INVALID_ARGUMENT, INTERNAL, OUT_OF_RANGE) and this item, written on
//                     its own, still failed; the others were written one at a time
// A dispute record is never too large to log: one too large for one entry is logged in parts
// (consensus::EncodeDisputeEntries), so a counted disagreement always makes its path DISPUTED.
//
// Thread-safe: Submit may be called from many threads at once. Policy, store and node key are borrowed
// and must outlive the Ingestor.
#ifndef ATTEST_SERVER_INGEST_H_
#define ATTEST_SERVER_INGEST_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consensus/keys.h"
#include "consensus/log_entry.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/attest/v1/attest.pb.h"
#include "consensus/resolution.h"
#include "server/resolution_book.h"
#include "server/metrics.h"
#include "server/worker_pool.h"
#include "storage/ledger.h"
#include "storage/store_writer.h"

namespace attest::server {

struct IngestOptions final {
  // Store attestations of keys outside the policy (when the item carries its public key) for
  // observation: shown, never counted.
  bool observe_unknown_keys = false;
  int max_batch = 10000;
  int verify_threads = 2;
  // Most attestations one group commit writes (several concurrent batches merged).
  int max_group_attestations = 50000;
  // Called on the writer thread after each successful commit with the store paths that got new
  // attestations (readers that cache verdicts drop theirs). Keep it short; may be empty.
  std::function<void(std::span<const consensus::StorePath>)> on_commit = nullptr;
  // The statements in force: builders they exclude do not count in the tallies made here, and
  // statements stored here are added to it. Borrowed; null means none (tests).
  ResolutionBook* resolutions = nullptr;
  // Called on the writer thread after a commit that stored maintainers' statements (any verdict may
  // have changed: builders excluded or no longer excluded). May be empty.
  std::function<void()> on_exclusions_changed = nullptr;
  // Where the submission counters and the verification and commit latencies go (docs/node.md,
  // "Metrics"); borrowed. Null: a registry of the Ingestor's own, which nobody reads.
  MetricsRegistry* metrics = nullptr;
  // Asked before every write (Submit, Replicate, Resolve): a non-OK status is returned as it is and
  // nothing is written (the node's log can no longer sign what it would append). Empty: always OK.
  std::function<absl::Status()> accepting_writes = nullptr;
};

enum class IngestOutcome {
  kAccepted = 0,        // newly stored and counted
  kAlreadyPresent = 1,  // stored before; nothing changed
  kObserved = 2,        // newly stored for observation (key not in the policy)
  kRejected = 3,        // not stored; see status
};

struct IngestResult final {
  IngestOutcome outcome = IngestOutcome::kRejected;
  absl::Status status;  // OK unless rejected
};

// Attestations replicated from a peer's log (server/replication.h), and the follower's progress to
// store with them.
struct ReplicatedAttestation final {
  uint64_t index = 0;  // in the peer's log
  std::string entry;   // the entry's bytes as served (kept when the entry is refused)
  consensus::AttestationEntry parsed;
};

// A realisation attestation replicated from a peer's log.
struct ReplicatedRealisation final {
  uint64_t index = 0;  // in the peer's log
  std::string entry;   // the entry's bytes as served
  consensus::RealisationEntry parsed;
};

// A maintainer's statement replicated from a peer's log.
struct ReplicatedResolution final {
  uint64_t index = 0;       // in the peer's log
  std::string entry;        // the entry's bytes as served
  std::string signed_note;  // the statement
};

struct ReplicationBatch final {
  std::string peer;  // the peer's name: the origin of what is stored
  std::vector<ReplicatedAttestation> attestations;
  std::vector<ReplicatedRealisation> realisations;  // verified and stored like the attestations
  std::vector<ReplicatedResolution> resolutions;  // stored after the attestations
  std::vector<storage::RejectedEntry> rejected;  // entries the follower already refused
  storage::PeerProgress progress;
  // Every entry from the stored cursor up to progress.cursor, verbatim: kept with the progress
  // (storage::WriteBatch::peer_entries) so this node can give the peer its log back.
  std::vector<std::string> entries;
};

struct ReplicationCounts final {
  int64_t stored = 0;           // newly stored (counted, or observed)
  int64_t already_present = 0;
  int64_t rejected = 0;         // the signature does not verify (recorded as refused entries)
  int64_t skipped = 0;          // keys outside the policy this node does not observe
  int64_t resolutions = 0;      // statements stored (new or already held)
};

struct ResolveResult final {
  consensus::VerifiedResolution statement;
  bool already_present = false;  // the node held this exact statement
};

// The node's notion of "now" (received times, dispute record times). Tests pass a fixed clock.
using Clock = std::function<absl::Time()>;

// A statement dated further ahead than this is refused (a wrong clock would keep it in force).
inline constexpr absl::Duration kMaxResolutionClockSkew = absl::Minutes(10);

class Ingestor final {
 public:
  // Writes through `writer`; reads what is already stored (attestations, disputes, statements) from
  // `ledger`. Both are usually the same store (storage/attestation_store.h), borrowed.
  Ingestor(const PolicyBook& policy, storage::StoreWriter* writer, storage::Ledger* ledger,
           const consensus::SecretKey& node_key, Clock clock, IngestOptions options);
  ~Ingestor();
  Ingestor(const Ingestor&) = delete;
  Ingestor& operator=(const Ingestor&) = delete;

  // One result per item, in order, once every stored item is durable. RPC-level errors:
  //   INVALID_ARGUMENT    empty batch
  //   RESOURCE_EXHAUSTED  more than max_batch items
  //   whatever the store returned (UNAVAILABLE, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, DATA_LOSS, ...)
  //     with a client-safe message; nothing of the batch is stored then
  //   INTERNAL            a dispute record could not be built (a bug)
  absl::StatusOr<std::vector<IngestResult>> Submit(
      const google::protobuf::RepeatedPtrField<v1::Attestation>& batch);
  // Attestations and realisation attestations (consensus/realisation.h) in one durable write: one
  // result per attestation, then one per realisation. Realisations are checked like attestations
  // (strict fingerprint, metadata consistent with the key, the policy's builder key or, observing, the
  // key carried; loggable), with messages "realisation <i> of <n>: ...". The batch limits count both;
  // either may be empty, not both.
  absl::StatusOr<std::vector<IngestResult>> Submit(
      const google::protobuf::RepeatedPtrField<v1::Attestation>& batch,
      const google::protobuf::RepeatedPtrField<v1::RealisationAttestation>& realisations);

  // Verifies every replicated attestation itself (as Submit does: a policy key, or the observed key
  // the entry carries when this node observes unknown keys), then stores the valid ones with
  // `batch.peer` as their origin (never appended to this node's log), the refused entries and the
  // progress, together with the dispute records this node makes for them (which are logged), in one
  // transaction through the same writer as submissions. When that write fails for its content
  // (INVALID_ARGUMENT, INTERNAL, OUT_OF_RANGE: writing it again would fail again), the entries are
  // written one at a time, those that still fail are recorded as refused with the reason (like
  // forged attestations), and the progress is stored last: a follower never stalls on an entry.
  // Errors: whatever the store returned otherwise (FAILED_PRECONDITION when the progress would move
  // the cursor backwards); the progress is not stored then, so the batch is replayed.
  absl::StatusOr<ReplicationCounts> Replicate(ReplicationBatch batch);

  // A maintainer's statement submitted to this node: verified against the policy, checked against the
  // dispute and the statements held, stored and appended to the log through the same writer.
  //   INVALID_ARGUMENT     not a well-formed statement; a malicious one names a builder that did not
  //                        sign on the dispute
  //   UNAUTHENTICATED      not signed by a maintainer key of the policy
  //   NOT_FOUND            this node holds no such dispute
  //   FAILED_PRECONDITION  not newer than the statement in force, or dated more than
  //                        kMaxResolutionClockSkew ahead of this node's clock
  //   store errors (UNAVAILABLE, ...)
  absl::StatusOr<ResolveResult> Resolve(std::string_view signed_statement);

  const IngestOptions& options() const { return options_; }

 private:
  struct Item;
  struct PendingWrite;
  struct Metrics;

  // Submit without counting the batch's result.
  absl::StatusOr<std::vector<IngestResult>> SubmitBatch(
      const google::protobuf::RepeatedPtrField<v1::Attestation>& batch,
      const google::protobuf::RepeatedPtrField<v1::RealisationAttestation>& realisations);
  // Calls check(0) ... check(count - 1): on the calling thread for a small batch, else in chunks on the
  // verify pool; returns when all are done.
  void VerifyInChunks(size_t count, absl::FunctionRef<void(size_t)> check);
  void CheckItem(const consensus::Policy& policy, const v1::Attestation& message, size_t index, size_t count,
                 Item& item) const;
  void CheckRealisationItem(const consensus::Policy& policy, const v1::RealisationAttestation& message,
                            size_t index, size_t count, Item& item) const;
  absl::Status Commit(PendingWrite& write);
  // After a write of `items` failed for its content: writes each item on its own (for a replicated
  // batch, without the follower's progress), hands the ones that fail for their content to `refuse`,
  // and leaves in `items` those stored. Other failures are returned as they are.
  absl::Status CommitOneByOne(std::vector<Item*>& items, const ReplicationBatch* replication,
                              absl::FunctionRef<void(Item&, const absl::Status&)> refuse);
  // Writes `group` in one WriteBatch: reads what is stored, plans (PlanIngest), writes, then fills the
  // outcomes of its items and notifies (on_commit, the ResolutionBook, the state-change log lines).
  absl::Status WriteGroup(const std::vector<PendingWrite*>& group);
  bool WriterIdleOrDone(PendingWrite* write) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PolicyBook& policy_;  // a batch is verified, and a write group planned, under one snapshot
  storage::StoreWriter* const writer_;
  storage::Ledger* const ledger_;
  const consensus::SecretKey& node_key_;
  const Clock clock_;
  const IngestOptions options_;
  std::unique_ptr<WorkerPool> verify_pool_;
  std::unique_ptr<MetricsRegistry> own_metrics_;  // when options.metrics is null
  std::unique_ptr<Metrics> metrics_;

  absl::Mutex resolve_mu_;  // one submitted statement at a time: check, then store
  absl::Mutex mu_;
  std::vector<PendingWrite*> queue_ ABSL_GUARDED_BY(mu_);
  bool writer_busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar writer_done_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_INGEST_H_
