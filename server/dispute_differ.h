// DisputeDiffer: what actually differs between the two leading sides of each open dispute, from the
// bytes, in the background. For every OPEN dispute it takes the two fingerprints with the most
// operators (ties: record order; compared in record order, as a/ and b/ of the reports), and for each side the caches that may hold it: the caches of that
// side's operators (the policy's `caches`, in NarSourcesOf order), then the node's [[source]] mirrors
// and the [gateway] upstream. storage::DiffNars fetches both NARs, verifies and unpacks them and runs
// diffoscope; the result is kept in a directory beside the database (`<database>.dispute-diffs/`):
//   <id>.json   the result (DisputeDiff), written atomically
//   <id>.html   diffoscope's HTML report, when it wrote one (renamed into place before the JSON)
// The web pages read them (web/dispute_pages.h).
//
// A result is recomputed when the dispute's two leading fingerprints change. A result that says why
// no comparison was made (bytes not found, diffoscope not installed, a NAR over the size bound) is
// tried again after retry_after; each such reason is logged once, not at every try.
//
// Bounded: one comparison at a time on the differ's own thread (never on a request thread); at most
// max_per_pass comparisons per pass; each NAR at most diff.max_nar_bytes; diffoscope's time and
// report sizes (storage/diffoscope.h).
//
// Thread-safe. The view is borrowed and must outlive the differ.
#ifndef ATTEST_SERVER_DISPUTE_DIFFER_H_
#define ATTEST_SERVER_DISPUTE_DIFFER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/dispute_view.h"
#include "server/nar_source_status.h"
#include "storage/nar_diff.h"

namespace attest::server {

// The reason shown for a dispute when the node knows no cache at all.
inline constexpr std::string_view kNoCacheKnown = "no binary cache is known for this dispute's sides";

// The result of comparing a dispute's two leading sides.
struct DisputeDiff final {
  enum class State { kDone, kUnavailable };
  State state = State::kUnavailable;
  std::string reason = {};                        // kUnavailable: why no comparison was made
  std::vector<std::string> fingerprints = {};     // the two compared (a/, b/), in the record's order
  std::vector<std::string> sources = {};          // kDone: the cache each side's NAR came from
  bool same = false;                              // kDone: diffoscope found no difference
  std::vector<std::string> differing_files = {};  // relative to the store path ("": the path itself)
  std::string text = {};                          // diffoscope's text report (capped)
  bool truncated = false;                         // the text report was cut
  bool has_html = false;                          // <id>.html holds diffoscope's HTML report
  int64_t time_unix = 0;                          // when the result was made
};
std::string_view DisputeDiffStateName(DisputeDiff::State state);  // "done", "unavailable"

struct DisputeDifferOptions final {
  std::string directory;  // where the results are kept (created)
  absl::Duration interval = absl::Minutes(1);      // between passes (Wake starts one sooner)
  absl::Duration retry_after = absl::Minutes(10);  // an unavailable result is tried again after this
  int max_per_pass = 8;                            // comparisons per pass
  storage::NarDiffOptions diff = DefaultDiffOptions();
  std::function<absl::Time()> clock = absl::Now;

  static storage::NarDiffOptions DefaultDiffOptions() {
    storage::NarDiffOptions options;
    options.max_nar_bytes = uint64_t{256} << 20;
    options.diffoscope.time_limit = absl::Seconds(120);
    options.diffoscope.max_text_bytes = size_t{256} << 10;
    options.diffoscope.max_report_bytes = uint64_t{4} << 20;
    return options;
  }
};

class DisputeDiffer final {
 public:
  // `sources`: the node's NAR sources (NarSourcesOf). Creates options.directory (and its parents);
  // FAILED_PRECONDITION / UNAVAILABLE naming the directory when it cannot be made.
  static absl::StatusOr<std::unique_ptr<DisputeDiffer>> Open(const DisputeView* view,
                                                             std::vector<NarSourceSpec> sources,
                                                             DisputeDifferOptions options);
  ~DisputeDiffer();
  DisputeDiffer(const DisputeDiffer&) = delete;
  DisputeDiffer& operator=(const DisputeDiffer&) = delete;

  // One pass now, on the calling thread: compares what needs comparing (at most max_per_pass).
  // Returns how many results were written. Errors: the store's, when the disputes cannot be listed.
  absl::StatusOr<int> RunPass();

  // Replaces the sources (a policy update changed the operators' caches): the next pass, started now,
  // uses them, and results that said why no comparison could be made before the change are tried again.
  void SetSources(std::vector<NarSourceSpec> sources);

  // Background passes every interval, the first one at once; while there are no sources the thread
  // waits and makes no pass (SetSources may bring some). Stop ends a
  // diffoscope run in progress (within about 200 ms) and waits for a NAR transfer in progress (bounded
  // by the transfer timeouts).
  void Start();
  void Stop();
  // Starts the next background pass now (a dispute may have opened).
  void Wake();

  // The result for dispute `id`; nullopt while none was made yet (pending). Without any source, a
  // kUnavailable result saying kNoCacheKnown.
  std::optional<DisputeDiff> Result(std::string_view id) const;
  // diffoscope's HTML report for `id`; NOT_FOUND when there is none.
  absl::StatusOr<std::string> Html(std::string_view id) const;

  bool has_sources() const;

 private:
  DisputeDiffer(const DisputeView* view, std::vector<NarSourceSpec> sources, DisputeDifferOptions options);
  // Compares the dispute's leading sides and writes the result, unless the stored one still stands.
  // True when a result was written.
  bool Consider(const DisputeDetail& detail) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  std::vector<std::string> CachesOf(const std::vector<NarSourceSpec>& sources, const DisputeDetail::Side& side) const;
  void Run();

  const DisputeView* const view_;
  const DisputeDifferOptions options_;

  mutable absl::Mutex mu_;
  std::vector<NarSourceSpec> sources_ ABSL_GUARDED_BY(mu_);
  // When the sources were last replaced (0: never): an unavailable result made before is redone.
  int64_t sources_changed_unix_ ABSL_GUARDED_BY(mu_) = 0;
  // The next pass forgets seen_ (the sources changed, so every open dispute is considered again).
  bool forget_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  // One comparison at a time, also between RunPass and the background thread.
  absl::Mutex pass_mu_;
  // What a pass need not read again: per dispute, what the listing said when it was last considered,
  // and when it is looked at again anyway.
  struct Seen final {
    int64_t updated_unix = 0;
    int64_t fingerprint_count = 0;
    std::vector<std::string> operators;
    absl::Time recheck_at;
  };
  absl::flat_hash_map<std::string, Seen> seen_ ABSL_GUARDED_BY(pass_mu_);
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_DISPUTE_DIFFER_H_
