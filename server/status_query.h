// StatusQuery: the verdict on a batch of store paths, computed on read from the stored attestations with
// the same pure tally the write path uses, so an answer is never stale with respect to what was
// acknowledged.
//
// Each answer carries what a client needs to re-check it offline against the policy: the verdict, the
// agreed fingerprint (PENDING, CONFIRMED), every counted fingerprint with its operators and builders,
// the flagged builders, the counted attestations with their signatures, the dispute id (DISPUTED), the
// quorum and the policy hash.
//
// Two entry points over one computation: `Answer` (store paths in, `PathStatus` values out) for callers
// inside the node (the search page), and `Run` (attest.v1 in and out) for the Status RPC, which converts
// at its edge and bounds the size of the wire answer.
//
// Thread-safe; policy and store are borrowed and must outlive it.
#ifndef ATTEST_SERVER_STATUS_QUERY_H_
#define ATTEST_SERVER_STATUS_QUERY_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "server/policy_book.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/resolution_book.h"
#include "server/metrics.h"
#include "server/worker_pool.h"
#include "storage/ledger.h"

namespace attest::server {

// The most a Status answer may weigh by default: gRPC's default receive limit (4 MiB), so that a client
// that never raised its limit gets the node's RESOURCE_EXHAUSTED with a hint instead of gRPC's own
// "received message larger than max".
inline constexpr int64_t kDefaultMaxStatusAnswerBytes = int64_t{4} << 20;

struct StatusQueryOptions final {
  int max_paths = 10000;
  // The largest answer (its serialised size in bytes); a request whose answer would be larger fails as a
  // whole (RESOURCE_EXHAUSTED), never with a truncated answer.
  int64_t max_answer_bytes = kDefaultMaxStatusAnswerBytes;
  // A request of many paths is read and answered in up to this many chunks at once, each on its own
  // reader connection (the store allows concurrent reads); chunks are at least kMinChunkPaths long.
  // The calling thread answers chunks too, helped by read_threads - 1 threads of the query's own.
  int read_threads = 2;
  // Statements excluding builders (null: nobody is excluded); borrowed.
  const ResolutionBook* resolutions = nullptr;
  // Where attest_status_path_verdicts_total goes; borrowed. Null: a registry of its own.
  MetricsRegistry* metrics = nullptr;
};

// The node's answer about one store path, as domain values (what a v1::PathStatus carries).
struct PathStatus final {
  consensus::StorePath path;
  // The verdict, the counted fingerprints (each with its operators, builders and the tally inputs that
  // count for it) and the flagged builders.
  consensus::TallyResult result;
  std::vector<storage::StoredAttestation> stored;  // what the store holds about the path
  std::vector<size_t> stored_index;                 // for each tally input, its index in `stored`
  // The statements in force that exclude builders who signed this path (ResolutionBook::ExclusionsFor).
  std::vector<std::string> exclusions;
  std::string dispute_id;  // consensus::DisputeId when DISPUTED, else empty
  // The policy the answer was computed under (the book's current one when the request began) and the
  // rule whose quorum applied: `quorum` is its flat k, or 0 when it is a threshold; `quorum_text` is
  // consensus::DescribeQuorum of it; `quorum_explanation` the tally's (why it is or is not met).
  int quorum = 0;
  std::string policy_hash;
  int64_t policy_version = 0;
  std::string rule;
  std::string quorum_text;
  std::string quorum_explanation;
};

// The wire form of one answer. Moves the strings out of `status`: it is not used afterwards.
void PathStatusToProto(PathStatus&& status, v1::PathStatus& out);

class StatusQuery final {
 public:
  StatusQuery(const PolicyBook& policy, storage::Ledger* store, StatusQueryOptions options);

  // One answer per path, in order (a repeated path is answered again). Counted in
  // attest_status_path_verdicts_total like Run's. No wire answer is built, so max_answer_bytes does not
  // apply.
  //   RESOURCE_EXHAUSTED  more than max_paths paths
  //   the store's error, with a client-safe message
  absl::StatusOr<std::vector<PathStatus>> Answer(std::span<const consensus::StorePath> paths) const;

  // One status per requested path, in request order. An entry that consensus::RealisationKey::LooksLikeKey
  // is a realisation key: answered from its realisation attestations (consensus::TallyRealisation) with
  // store_path = the key's canonical text and the realisation fingerprints; paths and keys may be mixed. Each distinct path is read and answered once: a
  // path the request names again is answered at its later positions by reference (store_path, verdict
  // and repeat_of = the position of its first occurrence), so repeats cannot amplify the answer.
  //   INVALID_ARGUMENT    "store_paths[<i>]: <problem>" for a malformed path or realisation key
  //   RESOURCE_EXHAUSTED  more than max_paths paths, or an answer that would exceed max_answer_bytes
  //                       (the message says how much was answered and asks for fewer paths at a time)
  //   the store's error, with a client-safe message
  // An empty request gets an empty answer.
  absl::StatusOr<v1::StatusResponse> Run(const v1::StatusRequest& request) const;

  const StatusQueryOptions& options() const { return options_; }

 private:
  class AnswerBudget;

  // Paths per chunk below which a request is not split (a thread costs more than it saves).
  static constexpr size_t kMinChunkPaths = 200;
  // Paths read from the store at a time within a chunk: what a chunk holds in memory beyond its
  // answers, and how often it checks the answer budget.
  static constexpr size_t kReadBatchPaths = 256;
  // Reads and answers `paths` into `answers` (same length), adding each answer's size to `budget`;
  // stops early (OK, answers left empty) once the budget is exceeded.
  absl::Status AnswerRange(const consensus::Policy& policy, std::span<const consensus::StorePath> paths,
                           std::span<v1::PathStatus> answers, AnswerBudget& budget) const;
  // Answers one batch of at most kReadBatchPaths paths.
  absl::Status AnswerBatch(const consensus::Policy& policy, std::span<const consensus::StorePath> paths,
                           std::span<v1::PathStatus> answers, AnswerBudget& budget) const;
  // Reads and answers the realisation keys `keys` into `answers` (same length), as AnswerRange does paths.
  absl::Status AnswerRealisations(const consensus::Policy& policy, std::span<const consensus::RealisationKey> keys,
                                  std::span<v1::PathStatus> answers, AnswerBudget& budget) const;
  // The answer about one realisation key from its stored realisation attestations (consensus::TallyRealisation).
  void RealisationStatusToProto(const consensus::Policy& policy, const consensus::RealisationKey& key,
                                std::vector<storage::StoredRealisation>& stored,
                                const consensus::TallyOptions& tally_options, v1::PathStatus& out) const;
  // The stored attestations of `paths` (one vector per path), or the store's error made client-safe.
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> Read(
      std::span<const consensus::StorePath> paths) const;
  // The tally of one path from what Read returned.
  PathStatus Tallied(const consensus::Policy& policy, const consensus::StorePath& path,
                     std::vector<storage::StoredAttestation> stored, const consensus::TallyOptions& tally_options) const;
  // Adds the given answers to attest_status_path_verdicts_total, by_verdict indexed by consensus::Verdict.
  void CountVerdicts(const uint64_t (&by_verdict)[4]) const;
  // RESOURCE_EXHAUSTED for an answer past max_answer_bytes, after `answered` of the `distinct` paths took
  // `bytes` (with the references to repeats).
  absl::Status TooLarge(const v1::StatusRequest& request, size_t distinct, size_t answered, uint64_t bytes) const;

  const PolicyBook& policy_;  // asked once per request
  storage::Ledger* const store_;
  const StatusQueryOptions options_;
  std::unique_ptr<MetricsRegistry> own_metrics_;  // when options.metrics is null
  // Paths answered per verdict, indexed by consensus::Verdict.
  std::vector<Counter*> verdicts_;
  // read_threads - 1 threads that help answer large requests (null when read_threads is 1).
  std::unique_ptr<WorkerPool> chunk_pool_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_STATUS_QUERY_H_
