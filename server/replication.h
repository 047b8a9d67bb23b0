// Replicator: follows the logs of the node's peers ([[peer]] in the node config), one thread each.
//
// A round, for one peer (docs/federation.md has the reasoning):
//   1. Policy: the peer's policy hash must be this node's current policy or one of its ancestors (the
//      peer is behind and will catch up); else this node asks the peer for its chain since this node's
//      current policy (Policy.GetPolicyChain) and adopts each link in order (PolicyBook::Adopt, with
//      the peer as origin and the link's own received time). A peer whose chain does not contain this
//      node's policy (unrelated policies), or whose links do not verify, is not followed
//      (POLICY_MISMATCH; asked again every round).
//   2. Checkpoint: fetched from /log/checkpoint and verified with the peer's key (origin = its name).
//   3. Consistency with the last checkpoint this node verified (L), by a consistency proof the peer
//      serves. The same size with another root, or a proof that does not verify, is a fork: both
//      signed checkpoints are stored as evidence, served and reported, and the peer is no longer
//      followed. A larger consistent checkpoint becomes L and is cosigned (tlog-cosignature/v1).
//   4. Entries from the cursor up to L's size, at most [federation] batch_entries per transaction:
//      entry bundles are fetched, their leaf hashes appended to the stored frontier (the compact
//      range of the peer's tree at the cursor), and the result proven consistent with L's root
//      (a proof from the batch's end to L, or equality at L's size), so no entry that is not in the
//      peer's signed log is ever applied.
//   5. Every attestation is verified by this node (Ingestor::Replicate) and stored with the peer as
//      origin, never appended to this node's log; entries that fail are recorded as refused. The
//      cursor, frontier and checkpoints advance in the same transaction, so a restart resumes
//      exactly and the cursor never moves backwards.
// Failed rounds are retried with a backoff doubling from poll_interval up to max_backoff.
//
// Thread-safety: Start and Stop from one thread; Status, CosignedCheckpoint and Fork from any.
#ifndef ATTEST_SERVER_REPLICATION_H_
#define ATTEST_SERVER_REPLICATION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/http_server.h"
#include "server/ingest.h"
#include "server/metrics.h"
#include "server/node_config.h"
#include "storage/peer_store.h"

namespace attest::server {

class Follower;

class Replicator final {
 public:
  // INVALID_ARGUMENT, naming the config file, when a peer's key does not parse or has this node's own
  // key name (its log origin). Node::Open checks this before constructing.
  static absl::Status CheckPeers(const NodeConfig& config, const consensus::SecretKey& node_key);

  // Borrows everything; all of it must outlive the Replicator. `policy` adopts the updates peers hand on. Peers failing CheckPeers are left out.
  // `metrics` (may be null) gets the attest_peer_* gauges, read from the followers at scrape time; a
  // scrape must not run after the Replicator is destroyed (Node stops the HTTP port first).
  Replicator(const NodeConfig& config, PolicyBook* policy, const consensus::SecretKey& node_key,
             storage::PeerStore* store, Ingestor* ingestor, Clock clock, MetricsRegistry* metrics = nullptr);
  ~Replicator();
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // Loads each peer's stored progress and fork evidence, and starts following.
  absl::Status Start();
  // Stops every follower (interrupting calls in flight) and joins them. Idempotent.
  void Stop();

  absl::StatusOr<v1::GetFederationStatusResponse> Status();
  // The latest checkpoint of `peer` this node verified, with its cosignature; nullopt when none.
  std::optional<std::string> CosignedCheckpoint(const std::string& peer);

  // /federation/checkpoint/<peer> and /federation/fork/<peer>.
  void AddRoutes(HttpRouter& router);

 private:
  const NodeConfig& config_;
  PolicyBook* const policy_;
  const consensus::SecretKey& node_key_;
  storage::PeerStore* const store_;
  std::vector<std::unique_ptr<Follower>> followers_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_REPLICATION_H_
