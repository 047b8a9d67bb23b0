// PeerStore: what this node keeps about the peers it follows (server/replication.h): how far it has
// applied each peer's log, the peer's entries verbatim (to serve them back to a peer that lost its
// database), the entries it refused and evidence of forks. Cursors, kept entries and refusals are
// written only by StoreWriter::Write (storage/store_writer.h), in the transaction that stores what
// the entries hold; fork evidence is stored on its own.
//
// Users: replication (server/replication.h). Thread-safety: every method may be called from any thread.
#ifndef ATTEST_STORAGE_PEER_STORE_H_
#define ATTEST_STORAGE_PEER_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/merkle.h"

namespace attest::storage {

// How far this node has followed one peer's log (server/replication.h). Advanced only in the
// transaction that stores what the entries before `cursor` hold, so a restart resumes exactly.
struct PeerProgress final {
  std::string peer;  // the peer key's name (its log's origin)
  uint64_t cursor = 0;  // entries [0, cursor) of the peer's log are applied
  // consensus::CompactRange(0, cursor) of the peer's tree, as CompactRange::hashes()
  std::vector<consensus::MerkleHash> frontier;
  // The peer's latest checkpoint this node verified (signed note) and its size; the same note with
  // this node's cosignature appended (tlog-cosignature/v1), "" until it cosigned one.
  std::string checkpoint;
  uint64_t checkpoint_size = 0;
  std::string cosigned_checkpoint;

  friend bool operator==(const PeerProgress&, const PeerProgress&) = default;
};

// An entry of a peer's log that this node refused to store (a forged attestation in a validly
// signed log, an entry it cannot parse, ...).
struct RejectedEntry final {
  std::string peer;
  uint64_t index = 0;
  std::string reason;
  std::string entry;  // the entry bytes as served
  int64_t detected_unix = 0;

  friend bool operator==(const RejectedEntry&, const RejectedEntry&) = default;
};

// Two signed checkpoints of one peer that cannot both be true. The first evidence per peer is kept.
struct ForkEvidence final {
  std::string peer;
  std::string first_checkpoint;
  std::string second_checkpoint;
  std::string reason;
  int64_t detected_unix = 0;

  friend bool operator==(const ForkEvidence&, const ForkEvidence&) = default;
};

class PeerStore {
 public:
  virtual ~PeerStore() = default;

  // The stored progress of `peer`, nullopt before the first write for it.
  virtual absl::StatusOr<std::optional<PeerProgress>> GetPeerProgress(const std::string& peer) = 0;
  // Entries refused from `peer` ("" = all peers), newest first, at most `limit`; and how many in all.
  virtual absl::StatusOr<std::vector<RejectedEntry>> RecentRejectedEntries(const std::string& peer, int limit) = 0;
  virtual absl::StatusOr<int64_t> CountRejectedEntries(const std::string& peer) = 0;
  // Entries [first, first + count) of `peer`'s log as this node kept them (WriteBatch::peer_entries).
  // NOT_FOUND when the store does not hold all of them (past the cursor, or replicated by a version
  // that did not keep entries).
  virtual absl::StatusOr<std::vector<std::string>> PeerLogEntries(const std::string& peer, uint64_t first,
                                                                   uint64_t count) = 0;
  // Keeps the first evidence per peer (OK and nothing changes when the peer already has some).
  virtual absl::Status StoreForkEvidence(const ForkEvidence& evidence) = 0;
  virtual absl::StatusOr<std::vector<ForkEvidence>> ListForkEvidence() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_PEER_STORE_H_
