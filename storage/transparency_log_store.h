// TransparencyLogStore: the node's own transparency log as stored: its entries
// (consensus/log_entry.h), tlog-tiles hash tiles and the checkpoints the node signed. Entries are
// appended only by StoreWriter::Write (storage/store_writer.h), in the transaction that stores what
// they record, so an acknowledged write is in the log and a rolled-back one is not.
//
// Users: the log publisher, the tlog-tiles HTTP endpoints and inclusion proofs (server/log_*.h),
// the scrub and the checkpoint file check. Not to be confused with server/log.h, the stderr logger.
// Thread-safety: every method may be called from any thread.
#ifndef ATTEST_STORAGE_TRANSPARENCY_LOG_STORE_H_
#define ATTEST_STORAGE_TRANSPARENCY_LOG_STORE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/merkle.h"
#include "consensus/tlog_tiles.h"

namespace attest::storage {

// The node's log as the writer keeps it: its size and RFC 6962 root, from one snapshot.
struct LogHead final {
  uint64_t size = 0;
  consensus::MerkleHash root = consensus::EmptyTreeHash();
};

// A checkpoint the node signed (C2SP tlog-checkpoint as a signed note).
struct StoredCheckpoint final {
  uint64_t size = 0;
  consensus::MerkleHash root{};
  std::string note;  // the signed note, serialised
  int64_t signed_unix = 0;

  friend bool operator==(const StoredCheckpoint&, const StoredCheckpoint&) = default;
};

class TransparencyLogStore {
 public:
  virtual ~TransparencyLogStore() = default;

  virtual absl::StatusOr<LogHead> GetLogHead() = 0;
  // Entries [first, first + count) as their log bytes, rebuilt from what is stored (attestations are
  // not stored twice). OUT_OF_RANGE when the range reaches past the log's size.
  virtual absl::StatusOr<std::vector<std::string>> LogEntries(uint64_t first, uint64_t count) = 0;
  // The hashes of hash tiles (tile.entries == false), tile.width * 32 bytes each, in order.
  // OUT_OF_RANGE for a tile the log does not hold yet at that width.
  virtual absl::StatusOr<std::vector<std::string>> LogTiles(
      std::span<const consensus::TileId> tiles) = 0;
  // Records a checkpoint the node signed. At most one root per size, ever: ALREADY_EXISTS (storing
  // nothing) when `checkpoint.size` has a stored checkpoint with another root; OK and nothing
  // changes when it has this root. INVALID_ARGUMENT when size exceeds the log's.
  virtual absl::Status StoreCheckpoint(const StoredCheckpoint& checkpoint) = 0;
  // The checkpoint of the largest size, if any.
  virtual absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_TRANSPARENCY_LOG_STORE_H_
