// Rebuilder: the logic behind `attest rebuild`. It asks a node what the federation is missing, builds
// it with the local Nix and attests it, so a path that too few operators built gets one more voice.
//
// One round:
//   1. Rebuilds.Wanted for our operator (the one whose policy entry lists our builder key; found once
//      by FindOperator): the entries with a deriver the node can serve and no lease of our operator,
//      at most `max`.
//   2. For each (up to `jobs` at once, each with its own nix-store processes):
//      a. a wanted path already valid in the local store is skipped, or with `check` built again
//         (`nix-store --realise --check`, build kind "check");
//      b. Rebuilds.AcquireLease with a signed lease statement; FAILED_PRECONDITION means another
//         rebuilder of our operator has it: skipped;
//      c. Rebuilds.GetDerivations(closure) and, before anything is imported, every file checked:
//         consensus::VerifyDerivationFile under its path; every input derivation either in the answer
//         or valid in the local store (then its file is read from the store and checked too);
//         consensus::DerivationGraph::CheckOutputPaths for each; and the deriver's expected output
//         must be the wanted path. Any failure: refused, nothing imported or built;
//      d. the derivations the store lacks are imported (client/nix_export.h); input sources that are
//         not valid are realised (substituted) first;
//      e. the input derivations are realised (substituters as Nix is configured), then the deriver with
//         `--option substitute false`, so the wanted path is built here, never substituted;
//      f. the outputs are spooled exactly once with the build kind: a marker
//         <spool>/.rebuilding/<drv base name> holding the kind is written before the build; the
//         post-build-hook (client/hook.h) spools with that kind and deletes the marker; a marker left
//         after the build (no hook configured) makes the rebuilder add the records itself. Markers
//         older than the build timeout (a rebuilder that died mid-build) are deleted each round;
//      g. one push pass (client/pusher.h) sends the attestation now; then Rebuilds.ReportRebuild
//         "built". A failed build is reported "failed" with Nix's last error line; nothing is spooled.
//
// Thread-safety: a Rebuilder runs one round at a time (RunRound is not reentrant); inside a round the
// workers share only what is guarded here. RebuildNode implementations must be thread-safe.
#ifndef ATTEST_CLIENT_REBUILDER_H_
#define ATTEST_CLIENT_REBUILDER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/nix_export.h"
#include "client/node_client.h"
#include "client/pusher.h"
#include "client/spool.h"
#include "consensus/keys.h"
#include "consensus/rebuild_statement.h"
#include "consensus/store_path.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::client {

// The RPCs a rebuilder uses (Policy and Rebuilds services). Thread-safe.
class RebuildNode {
 public:
  virtual ~RebuildNode() = default;
  virtual absl::StatusOr<v1::PolicyInfo> GetPolicy() = 0;
  virtual absl::StatusOr<v1::WantedResponse> Wanted(const v1::WantedRequest& request) = 0;
  virtual absl::StatusOr<v1::GetDerivationsResponse> GetDerivations(const v1::GetDerivationsRequest& request) = 0;
  virtual absl::StatusOr<v1::AcquireLeaseResponse> AcquireLease(const v1::RebuildStatement& statement) = 0;
  virtual absl::Status ReportRebuild(const v1::RebuildStatement& statement) = 0;
};

// The node over gRPC (NodeChannel, CallNode: a deadline per call, UNAVAILABLE retried; errors keep
// their code and name the node). Errors of NodeChannel.
absl::StatusOr<std::unique_ptr<RebuildNode>> ConnectRebuildNode(const NodeOptions& options);

// Whether a path already valid in the local store is built again.
enum class PresentPaths { kSkip, kCheck };

struct RebuildOptions final {
  // The Nix store to import into and build in: "" for Nix's default; a directory (a chroot store) or
  // a store URI naming a local store (`local?root=DIR`). Passed to nix-store as --store.
  std::string store;
  // Where that store's files are on this machine (NixStoreLocation: "/" for the system store).
  std::string store_root = "/";
  size_t max = 10;  // wanted paths taken per round
  int jobs = 1;     // paths built at once
  PresentPaths present = PresentPaths::kSkip;
  absl::Duration build_timeout = absl::Hours(3);  // per nix-store run
};

enum class RebuildOutcome { kLeased, kSkipped, kBuilt, kFailed, kRefused };
std::string_view RebuildOutcomeName(RebuildOutcome outcome);  // "leased", "skipped", ...

// One line of what happened to one wanted path.
struct RebuildEvent final {
  RebuildOutcome outcome = RebuildOutcome::kSkipped;
  std::string store_path;
  std::string detail;  // why (skipped, failed, refused), or the build kind (built)
};

// "<outcome> <store path>[: <detail>]", the line `attest rebuild` prints.
std::string RebuildEventLine(const RebuildEvent& event);

struct RoundReport final {
  size_t wanted = 0;  // entries taken from the queue
  size_t built = 0;
  size_t skipped = 0;
  size_t failed = 0;
  size_t refused = 0;
  bool ok() const { return failed == 0 && refused == 0; }
};

class Rebuilder final {
 public:
  // `node` answers the queue; `key` signs lease and report statements; `spool` receives the records;
  // `push` runs one push pass (a Pusher's PushOnce in the CLI; pushes are never run concurrently);
  // `on_event` gets every RebuildEvent as it happens (called from worker threads, one at a time);
  // `stop` is asked before each path starts (may be empty).
  Rebuilder(std::shared_ptr<RebuildNode> node, consensus::SecretKey key, Spool spool, RebuildOptions options,
            std::function<PushReport()> push, std::function<void(const RebuildEvent&)> on_event,
            std::function<bool()> stop = {});

  // The operator whose builders list our public key (Policy.GetPolicy); remembered for the rounds.
  // PERMISSION_DENIED "this builder's key <name> is not in the node's policy: its rebuilds would not
  // count"; errors of the node call.
  absl::StatusOr<std::string> FindOperator();

  // One round (see the file comment). Per-path problems are events, not errors; the status fails
  // only when the queue cannot be read (node errors), the local store cannot be queried (UNKNOWN with
  // Nix's error, errors of RunNixStore) or FindOperator did not succeed first (FAILED_PRECONDITION).
  absl::StatusOr<RoundReport> RunRound();

  // The marker file for a derivation: <spool>/.rebuilding/<drv base name>.
  static std::string MarkerPath(std::string_view spool_dir, const consensus::StorePath& drv_path);

 private:
  struct Job;
  RebuildEvent Process(const Job& job);
  // Deletes markers older than the build timeout (and an hour): left by a rebuilder that died.
  void RemoveStaleMarkers();
  // How a nix-store run that builds is bounded: the build timeout, and stopped on request.
  NixStoreRunOptions BuildRun() const;
  // The statement for `path`, signed, as the node wants it.
  v1::RebuildStatement Statement(consensus::RebuildStatementKind kind, const consensus::StorePath& path,
                                 std::string_view detail) const;
  // Ends our lease with `kind` (release, built, failed); a node that does not take it is only logged
  // (the lease expires by itself).
  void Report(consensus::RebuildStatementKind kind, const consensus::StorePath& path, std::string_view detail);
  void Emit(const RebuildEvent& event);

  std::shared_ptr<RebuildNode> node_;
  consensus::SecretKey key_;
  Spool spool_;
  RebuildOptions options_;
  std::function<PushReport()> push_;
  std::function<void(const RebuildEvent&)> on_event_;
  std::function<bool()> stop_;
  std::string operator_;
  absl::Mutex event_mu_;  // one on_event call at a time
  absl::Mutex push_mu_;   // one push pass at a time (the pusher locks the spool for a pass)
};

}  // namespace attest::client

#endif  // ATTEST_CLIENT_REBUILDER_H_
