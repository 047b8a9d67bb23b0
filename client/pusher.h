// Pusher: ships the builder's spool (client/spool.h) to the nodes; the logic behind `attest push`.
//
// One pass takes every record of the spool and:
//   1. reads the path's claim (narHash, narSize, references) and `ultimate` from the Nix database of
//      the record's store (client/nix_store_db.h), in one snapshot per store. A row without a NAR hash
//      or size is completed by hashing the path's files (client/nar.h), keeping the database's
//      references. A path Nix does not mark `ultimate` is refused: a substituted or copied path is not
//      a rebuild, and attesting it would count someone else's build as ours. Except a record of build
//      kind "check" (client/spool.h): `nix-store --realise --check` of a substituted path builds it
//      again here and fails unless the result has the same bytes, but Nix does not mark the path
//      `ultimate` afterwards; the check itself was the local build the attestation speaks for.
//      A record of a derivation output (drvPath and outputName) also gets the realisations Nix
//      registered for it (client/nix_store_db.h, only when the store has any): its key
//      "sha256:<hex>!<output>" is computed from the derivation graph read from the store's .drv files
//      (consensus::DerivationGraph::RealisationHash), the row gives the output path and the dependent
//      realisations. A record without a path (a floating content-addressed output the hook could not
//      name, client/spool.h) takes its path from that realisation, and is refused (final for this
//      run) while there is none; a record with a path whose floating or deferred output has no
//      realisation gets a note in PushReport::realisation_notes and its path attestation goes alone.
//   2. signs the claim's Nix fingerprint with the builder key (the signature `nix store sign` makes),
//      and each realisation in both formats (consensus/realisation.h): the Nix 2.8 one as registered
//      and the Nix 2.35 one ("<drv path>^<output>"), sent in SubmitRequest.realisations. A record is
//      acknowledged by a node only when its path attestation and all its realisations are.
//      The metadata's build kind is the record's: "rebuild" -> kRebuild, "check" -> kCheck, else
//      kFirstBuild.
//   3. submits, in batches, to every configured node that has not acknowledged the record yet, each
//      call with a short deadline.
//   4. records acknowledgements in the record (Spool::Update) and removes the record once every node
//      acknowledged it, after noting it in the ledger (below).
//   5. offers each node, after it acknowledged records in the pass, the derivations of those records
//      (below).
// ACCEPTED and ALREADY_PRESENT acknowledge. OBSERVED (the node stored it but does not count the key)
// and rejections do not: the record stays, with the reason in `lastError`, so nothing is lost while a
// policy is being fixed. Failures are either retryable (UNAVAILABLE, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, ABORTED: the node is down, slow or busy), retried with exponential backoff per
// node, or final for this run (any other code, a refused path, a path no longer in the store): not
// sent again until the next `attest push`, or in --watch mode after `final_retry_interval`.
//
// Derivations (attest.v1.Rebuilds), so that rebuilders without the Nix expressions can build what we
// attested: the derivers of the records a node acknowledged in the pass (the record's drvPath, else the
// deriver in Nix's database) and every .drv they reference, transitively (references as the store's
// database lists them; only .drv references are followed), deduplicated over the pass. The node is
// asked which of them it lacks (MissingDerivations, in batches of DerivationLimits::max_paths_per_query)
// and is sent those files, read from <store root><path>. The node checks each .drv's output paths
// against its input derivations, so a request holds every missing part of the closures it serves:
// normally all of them in one SubmitDerivations request; when that would pass a limit (files, bytes per
// file, bytes in all), the derivers' closures are split over several requests, each whole. A deriver
// whose missing closure alone passes a limit is skipped, with an error naming it. Derivations are best
// effort: a failure never keeps a record in the spool nor fails the push. A node that predates the
// service (UNIMPLEMENTED) is skipped silently; any other failure, and each file the node rejects, is a
// line in PushReport::derivation_errors.
//
// Crash safety: a record is removed only after every node's acknowledgement (and the nodes answer only
// once the attestation is durably stored); every record change is an atomic rename; submissions are
// idempotent, so a record whose acknowledgement was lost in a crash is simply sent again.
//
// The ledger, <spool>/.attested: one record id (Spool::IdFor: the path's hash part and a tag of its
// store root) per line, appended and fsynced before records are removed. `attest push --scan` spools
// the store's `ultimate` paths that are neither in the ledger nor in the spool: the paths whose hook
// never ran (Nix never runs it again for a path it already has). Losing the ledger only makes the next
// scan spool everything again, which the nodes answer with ALREADY_PRESENT. A ledger line means "every
// node configured at that time acknowledged"; after adding a node, delete the ledger and run
// `attest push --scan` to give it the history.
//
// One pusher per spool at a time: a pass holds an exclusive lock on <spool>/.push.lock (released by
// the kernel if the process dies). The hook needs no lock: Spool::Add never replaces a record.
//
// Thread-compatible; time comes in through PushClock so tests need not wait.
#ifndef ATTEST_CLIENT_PUSHER_H_
#define ATTEST_CLIENT_PUSHER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/nix_store_db.h"
#include "client/node_client.h"
#include "client/spool.h"
#include "client/submission.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::client {

// The bounds of the derivations sent to a node (the node's own limits; see attest.proto).
struct DerivationLimits final {
  size_t max_paths_per_query = 10000;        // paths per MissingDerivations call
  size_t max_files = 10000;                  // files per SubmitDerivations request
  size_t max_file_bytes = size_t{1} << 20;   // one .drv file
  size_t max_request_bytes = size_t{64} << 20;  // the files of one request together
};

struct PushOptions final {
  std::vector<std::string> nodes;  // gRPC addresses; a record is done when all of them acknowledged
  size_t batch_size = 1000;        // attestations per Submit call
  // Deadline of one Submit call (retries of UNAVAILABLE inside the node client included); never
  // beyond what is left of `give_up_after`.
  absl::Duration rpc_timeout = absl::Seconds(10);
  // A one-shot push (PushOnce) stops retrying after this long.
  absl::Duration give_up_after = absl::Seconds(30);
  // Backoff per node after a retryable failure: initial, doubling, capped.
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(60);
  // --watch: how often the spool directory is checked for new records.
  absl::Duration poll_interval = absl::Seconds(1);
  // --watch: when records that failed for good (a rejection, a refused path) are tried again.
  absl::Duration final_retry_interval = absl::Hours(1);
  std::string system;  // recorded in each attestation's metadata when set ("x86_64-linux")
  DerivationLimits derivation_limits = {};
};

struct PushClock final {
  std::function<absl::Time()> now;
  std::function<void(absl::Duration)> sleep;
  static PushClock Real();
};

// What became of one record at one node (or here, with an empty node).
struct PushOutcome final {
  std::string record_id;
  std::string path;
  std::string node;  // empty: decided here (refused, or the path could not be read)
  OutcomeKind kind = OutcomeKind::kNotSent;
  int code = 0;  // google.rpc.Code of a rejection or failure
  std::string message;
};

struct PushReport final {
  // The latest outcome per (record, node) seen during the run, ordered by record then node; a record's
  // realisations have outcomes of their own (their path is the realisation's key).
  std::vector<PushOutcome> outcomes;
  std::vector<std::string> spool_errors;  // files in the spool that are not records ("<file>: why")
  std::vector<std::string> delivered;     // store paths whose records were removed (all nodes acknowledged)
  size_t remaining = 0;                   // records plus unreadable files left in the spool afterwards
  bool gave_up = false;                   // the run ended with retryable work left (nodes did not answer)
  absl::Status fatal;                     // the spool itself could not be read or locked
  // Derivations (see the file comment), over all nodes: .drv files sent in SubmitDerivations requests
  // that the node answered, of which `derivations_stored` it stored anew (the rest it had or rejected).
  size_t derivations_sent = 0;
  size_t derivations_stored = 0;
  // Why derivations were not sent or not stored, one line each ("node X: ..."); warnings, not failures.
  std::vector<std::string> derivation_errors;
  // Realisations that could not be attested alongside a path (see the file comment), one line each.
  std::vector<std::string> realisation_notes;
};

// True for codes worth retrying soon: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED.
bool IsRetryable(absl::StatusCode code);

// The ledger of records every node acknowledged (see the file comment).
class PushLedger final {
 public:
  explicit PushLedger(std::string spool_dir);
  // The ids in the ledger. A missing ledger is empty; a torn last line is ignored.
  absl::StatusOr<std::set<std::string>> Read() const;
  // Appends the ids and fsyncs (and fsyncs the directory when the ledger was created).
  absl::Status Append(const std::vector<std::string>& ids);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct ScanReport final {
  size_t built = 0;            // paths Nix marks as built here
  size_t already_attested = 0; // in the ledger
  size_t already_spooled = 0;  // a record exists
  std::vector<std::string> added;  // store paths spooled now
};

// Spools every path the store at `store_root` marks `ultimate` that is in neither the ledger nor the
// spool. Records get the deriver from Nix's database and the output name implied by the path's name.
// Errors: those of NixStoreDb::Open / BuiltPaths, the ledger, and Spool::Add.
absl::StatusOr<ScanReport> ScanForUnattested(Spool& spool, const std::string& store_root, absl::Time now);

class Pusher final {
 public:
  // `key` signs every attestation; `connect` opens a node (ConnectGrpcNode in the CLI, fakes in tests).
  // `log` receives one-line diagnostics (a node unreachable, a retry scheduled); may be empty.
  Pusher(Spool spool, consensus::SecretKey key, PushOptions options, NodeConnector connect, PushClock clock,
         std::function<void(std::string_view)> log = {});

  // One-shot: passes until the spool holds nothing that can be delivered now, or `give_up_after`
  // passed; sleeps (through the clock) between passes while nodes are in backoff.
  PushReport PushOnce();

  // Runs passes until `stop()` is true: after new records appear (checked every poll_interval) and
  // when a node's backoff expires. `on_pass` gets each pass's report (outcomes of that pass only).
  // Returns when stopped (OK), or with the error that made the spool unusable.
  absl::Status Watch(const std::function<bool()>& stop, const std::function<void(const PushReport&)>& on_pass);

 private:
  struct NodeState {
    int failures = 0;          // consecutive retryable failures
    absl::Time next_try = absl::InfinitePast();
  };
  // Where a record's deriver is: its store root and .drv path.
  struct RecordDeriver {
    std::string store_root;
    std::string drv_path;
    friend auto operator<=>(const RecordDeriver&, const RecordDeriver&) = default;
  };
  class DerivationClosures;  // the .drv closures of derivers, read once per pass (pusher.cc)
  struct PassResult {
    PushReport report;
    bool retryable_left = false;      // some record/node pair can be retried later
    absl::Time next_retry = absl::InfiniteFuture();
  };

  // One pass over the spool; every RPC ends by `deadline`.
  PassResult Pass(absl::Time deadline);
  // Reads, checks and signs the records that still need sending; fills `local` with outcomes decided here.
  // `derivers` gets the deriver of each signed record that has one.
  // What one record sends: its path attestation and the realisations of its derivation output.
  struct SignedRecord {
    v1::Attestation attestation;
    std::vector<v1::RealisationAttestation> realisations;
  };
  void Prepare(const std::vector<SpoolEntry>& entries, std::map<std::string, SignedRecord>& signed_by_id,
               std::map<std::string, RecordDeriver>& derivers, std::vector<PushOutcome>& local,
               PassResult& result);
  // The realisation `found` of the record's derivation output, signed in both formats; a format that
  // cannot be made (e.g. a name Nix would not give that output) is a line in `notes`.
  std::vector<v1::RealisationAttestation> SignRealisations(const SpoolRecord& record, const NixRealisation& found,
                                                           const consensus::BuildMetadata& path_metadata,
                                                           std::vector<std::string>& notes) const;
  // Offers `node` the derivation closures of `derivers` (see the file comment); notes what happened in
  // the report.
  void SendDerivations(const std::string& node, NodeApi& api, const std::set<RecordDeriver>& derivers,
                       DerivationClosures& closures, absl::Time deadline, PushReport& report);
  void NoteNodeFailure(const std::string& node, const absl::Status& status, PassResult& result);
  absl::Duration Backoff(const NodeState& state) const;

  Spool spool_;
  consensus::SecretKey key_;
  std::string public_key_;
  PushOptions options_;
  NodeConnector connect_;
  PushClock clock_;
  std::function<void(std::string_view)> log_;
  PushLedger ledger_;
  std::map<std::string, NodeState> nodes_;
  // (record id, node) pairs that failed for good, and when they may be tried again ("" node: local).
  std::map<std::pair<std::string, std::string>, absl::Time> final_until_;
  // Set during Watch: checked between batches, so a stop request does not wait for a long pass.
  const std::function<bool()>* stop_ = nullptr;
  // When the current run gives up (PushOnce), for diagnostics.
  absl::Time run_deadline_ = absl::InfiniteFuture();
};

}  // namespace attest::client

#endif  // ATTEST_CLIENT_PUSHER_H_
