// SignedCheckpointFile: the newest checkpoint the node signed, kept in a small file beside its
// database (`<database>.signed-checkpoint`).
//
// Every checkpoint is also stored in the database, but a database that was emptied, replaced by
// another node's or rolled back to an old backup takes its checkpoints with it: the node would start
// a fresh (or shorter) log under a key that has already signed a larger one, and clients would see
// its log roll back. The file survives that, so Node::Open can refuse to start instead
// (CheckLogExtendsRecordedCheckpoint). Its content is the signed checkpoint note itself, so it needs
// no format of its own and cannot be edited into a lie without the node key.
//
// Written after the checkpoint is stored in the database: a crash in between leaves the file one
// checkpoint behind, which the check accepts.
//
// Thread-safe (no state besides the path; writes replace the file atomically).
#ifndef ATTEST_SERVER_CHECKPOINT_FILE_H_
#define ATTEST_SERVER_CHECKPOINT_FILE_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"
#include "storage/transparency_log_store.h"

namespace attest::server {

class SignedCheckpointFile final {
 public:
  // The file kept beside `database_path`.
  static std::string PathFor(std::string_view database_path);

  explicit SignedCheckpointFile(std::string path) : path_(std::move(path)) {}

  // Replaces the file with `note` durably (storage::WriteFileAtomically: a temporary file in the same
  // directory, fsync, rename, fsync of the directory; mode 0644). Errors name the file:
  // FAILED_PRECONDITION (permissions, read-only), RESOURCE_EXHAUSTED (disk full), NOT_FOUND (directory
  // gone), UNAVAILABLE otherwise.
  absl::Status Record(std::string_view note) const;

  // The recorded note; nullopt when there is no file. DATA_LOSS when it exists but cannot be read or
  // is empty or larger than any checkpoint note.
  absl::StatusOr<std::optional<std::string>> Read() const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Whether the log in `store` extends the checkpoint recorded in `file`, checked before a node
// serves anything. OK when there is no file, or its checkpoint is the store's newest signed one or
// an earlier one that the store's newest is consistent with (a consistency proof over the stored
// tiles). Otherwise FAILED_PRECONDITION, saying what was found and how to recover: the store holds
// no checkpoint or a smaller one (emptied, replaced or restored from an old backup), or the roots do
// not agree (another log), or the file's note does not verify with `node_key` (the key was
// replaced). Store errors are returned with their code.
absl::Status CheckLogExtendsRecordedCheckpoint(storage::TransparencyLogStore& store, const consensus::PublicKey& node_key,
                                               const SignedCheckpointFile& file, std::string_view database_path);

}  // namespace attest::server

#endif  // ATTEST_SERVER_CHECKPOINT_FILE_H_
