// RestoreFromPeers: gives a node that lost its database its own log back from the peers that follow it
// (`attestd restore --from-peers`).
//
// Every follower keeps the entries it applied of each peer's log, verbatim (storage::WriteBatch::
// peer_entries), and serves them with the latest checkpoint of that peer it verified and cosigned,
// under /federation/mirror/<origin>/ (server/replication.h). A restore:
//   1. asks every [[peer]] of the node's config for its copy of this node's checkpoint and keeps those
//      that verify with this node's own key and carry that peer's cosignature;
//   2. restores to the largest. It must not be smaller than the checkpoint recorded beside the database
//      (server/checkpoint_file.h): entries this node signed that no peer holds cannot come back
//      (FAILED_PRECONDITION: restore from a backup instead). Nor may the database already hold a log
//      that large (FAILED_PRECONDITION: nothing to restore);
//   3. reads entries [0, size) from one peer at a time, replaying them into a new database beside the
//      old one (`<database>.restoring`) exactly as they were logged: attestations with their received
//      time, dispute records (joined from their parts), maintainers' statements. A peer whose entries
//      do not hash to the checkpoint's root, or that lacks some of them, is skipped (and named in the
//      report); the next one is tried;
//   4. checks that the new database's log has the checkpoint's size and root, stores the checkpoint,
//      moves the old database aside (`<database>.before-restore-<unix time>`, with its -wal and -shm
//      files) and the new one into its place, and records the checkpoint beside it.
// Nothing is changed unless every step succeeds. What the node had replicated from its peers is not in
// its own log: once started again it follows them from the start. Attestations it acknowledged after
// the newest checkpoint any peer verified are lost (their builders' spools send them again).
//
// Runs offline: the node must not be running (it would hold the database open).
#ifndef ATTEST_SERVER_RESTORE_H_
#define ATTEST_SERVER_RESTORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "server/ingest.h"
#include "server/node_config.h"

namespace attest::server {

struct RestoreOptions final {
  absl::Duration timeout = absl::Seconds(30);  // per request to a peer
  Clock clock = [] { return absl::Now(); };    // received time of restored statements; the aside name
  std::function<void(std::string_view)> progress = nullptr;  // one line per step; may be empty
};

struct RestoreReport final {
  uint64_t entries = 0;          // the restored log's size
  std::string checkpoint_from;   // the peer whose cosigned checkpoint it was restored to
  std::string entries_from;      // the peer that served the entries
  std::string moved_aside;       // where the old database went; "" when there was none
  std::vector<std::string> skipped;  // "<peer>: <why>" for every peer that could not be used
};

// `policy` and `node_key` are the ones the config names (LoadPolicyAndKey). Errors say what to do:
// FAILED_PRECONDITION (no peers, no peer holds a usable copy, the copy is smaller than what the node
// signed, the database already holds the log), UNAVAILABLE (no peer answered), INTERNAL (the replay
// did not rebuild the signed tree), or the store's error.
absl::StatusOr<RestoreReport> RestoreFromPeers(const NodeConfig& config, const PolicyBook& policy,
                                               const consensus::SecretKey& node_key,
                                               const RestoreOptions& options = {});

}  // namespace attest::server

#endif  // ATTEST_SERVER_RESTORE_H_
