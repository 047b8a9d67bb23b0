#include "server/checkpoint_file.h"

#include <string>
#include <utility>
#include <vector>

#include "consensus/checkpoint.h"
#include "consensus/merkle.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "storage/files.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// A checkpoint note is a few hundred bytes; a file much larger is not one.
constexpr size_t kMaxNoteBytes = 64 * 1024;

std::string Recovery(const SignedCheckpointFile& file) {
  return Cat(
      "A log never shrinks and never changes its past, so this node does not start. Get the log back from the "
      "peers that follow this node with `attestd restore --from-peers --config FILE`, or restore the database from "
      "a backup taken after that checkpoint. To start a new log on purpose, give the node a new key and remove ",
      file.path());
}

}  // namespace

std::string SignedCheckpointFile::PathFor(std::string_view database_path) {
  return Cat(database_path, ".signed-checkpoint");
}

absl::Status SignedCheckpointFile::Record(std::string_view note) const {
  return storage::WriteFileAtomically(path_, note, 0644);
}

absl::StatusOr<std::optional<std::string>> SignedCheckpointFile::Read() const {
  absl::StatusOr<std::string> note = storage::ReadFileToString(path_, kMaxNoteBytes);
  if (!note.ok()) {
    if (absl::IsNotFound(note.status())) return std::nullopt;
    if (absl::IsResourceExhausted(note.status())) {
      return absl::DataLossError(Cat(path_, " is larger than any checkpoint note (", kMaxNoteBytes,
                                     " bytes): it is not the file this node writes"));
    }
    return absl::DataLossError(
        Cat("cannot read ", path_, " (the checkpoint this node signed last): ", StdView(note.status().message())));
  }
  if (note->empty()) return absl::DataLossError(Cat(path_, " is empty: it is not the file this node writes"));
  return *std::move(note);
}

absl::Status CheckLogExtendsRecordedCheckpoint(storage::TransparencyLogStore& store, const consensus::PublicKey& node_key,
                                               const SignedCheckpointFile& file, std::string_view database_path) {
  absl::StatusOr<std::optional<std::string>> note = file.Read();
  if (!note.ok()) return absl::FailedPreconditionError(Cat(StdView(note.status().message()), ". ", Recovery(file)));
  if (!note->has_value()) return absl::OkStatus();
  absl::StatusOr<consensus::Checkpoint> recorded = consensus::VerifyCheckpoint(**note, node_key);
  if (!recorded.ok()) {
    return absl::FailedPreconditionError(
        Cat(file.path(), " holds a checkpoint that does not verify with the node key ", node_key.name(), " (",
            StdView(recorded.status().message()),
            "): the node key was replaced, but a log keeps its key for life. Use the key that signed it, or "
            "start a new log on purpose with a new key and a new database, and remove ",
            file.path()));
  }

  // An empty log has nothing that could have been lost.
  if (recorded->size == 0) return absl::OkStatus();
  absl::StatusOr<std::optional<storage::StoredCheckpoint>> latest = store.LatestCheckpoint();
  if (!latest.ok()) return latest.status();
  absl::StatusOr<storage::LogHead> head = store.GetLogHead();
  if (!head.ok()) return head.status();
  const uint64_t stored_size = latest->has_value() ? (*latest)->size : 0;
  if (!latest->has_value() || stored_size < recorded->size) {
    return absl::FailedPreconditionError(Cat(
        "the database ", database_path, " holds a log of ", head->size, " entries",
        latest->has_value() ? Cat(" signed up to size ", stored_size) : std::string(" and no signed checkpoint"),
        ", but this node signed a checkpoint of size ", recorded->size, " (recorded in ", file.path(),
        "): the database was emptied, replaced or restored from an older backup. ", Recovery(file)));
  }
  const storage::StoredCheckpoint& stored = **latest;
  if (stored_size == recorded->size) {
    if (stored.root != recorded->root) {
      return absl::FailedPreconditionError(
          Cat("the database ", database_path, " holds another log: its checkpoint of size ", stored_size,
              " has another root than the one this node signed (recorded in ", file.path(), "). ", Recovery(file)));
    }
    return absl::OkStatus();
  }
  // The database went on after the recorded checkpoint: its newest signed tree must extend it.
  const consensus::TileHashReader reader(stored_size, [&store](std::span<const consensus::TileId> tiles) {
    return store.LogTiles(tiles);
  });
  absl::StatusOr<std::vector<consensus::MerkleHash>> proof =
      consensus::ConsistencyProof(recorded->size, stored_size, reader);
  if (!proof.ok()) return proof.status();
  if (absl::Status consistent =
          consensus::VerifyConsistency(recorded->size, stored_size, recorded->root, stored.root, *proof);
      !consistent.ok()) {
    return absl::FailedPreconditionError(Cat("the database ", database_path, " holds a log whose checkpoint of size ",
                                             stored_size, " does not extend the one of size ", recorded->size,
                                             " this node signed (recorded in ", file.path(), "): ",
                                             StdView(consistent.message()), ". ", Recovery(file)));
  }
  return absl::OkStatus();
}

}  // namespace attest::server
