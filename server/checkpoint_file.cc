#include "server/checkpoint_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "consensus/checkpoint.h"
#include "consensus/merkle.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// A checkpoint note is a few hundred bytes; a file much larger is not one.
constexpr size_t kMaxNoteBytes = 64 * 1024;

absl::Status FileError(std::string_view action, const std::string& path, int error) {
  const std::string message = Cat(action, " ", path, ": ", std::strerror(error));
  switch (error) {
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::FailedPreconditionError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(message);
    default:
      return absl::InternalError(message);
  }
}

class Fd final {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (a write can fail only at close on some file systems).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

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
  const std::string temp = Cat(path_, ".tmp");
  {
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return FileError("creating", temp, errno);
    for (size_t done = 0; done < note.size();) {
      const ssize_t n = ::write(fd.get(), note.data() + done, note.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return FileError("writing", temp, errno);
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return FileError("syncing", temp, errno);
    if (fd.Close() != 0) return FileError("closing", temp, errno);
  }
  if (::rename(temp.c_str(), path_.c_str()) != 0) return FileError("replacing", path_, errno);
  const std::string directory = DirectoryOf(path_);
  Fd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return FileError("opening the directory", directory, errno);
  if (::fsync(dir.get()) != 0) return FileError("syncing the directory", directory, errno);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> SignedCheckpointFile::Read() const {
  Fd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    return absl::DataLossError(Cat("cannot read ", path_, " (the checkpoint this node signed last): ",
                                   std::strerror(errno)));
  }
  std::string note;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::DataLossError(Cat("cannot read ", path_, ": ", std::strerror(errno)));
    }
    if (n == 0) break;
    note.append(buffer, static_cast<size_t>(n));
    if (note.size() > kMaxNoteBytes) {
      return absl::DataLossError(Cat(path_, " is larger than any checkpoint note (", kMaxNoteBytes,
                                     " bytes): it is not the file this node writes"));
    }
  }
  if (note.empty()) return absl::DataLossError(Cat(path_, " is empty: it is not the file this node writes"));
  return note;
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
