// NarUnpacker: turns a NAR (the uncompressed bytes, as `nix-store --dump` writes them; grammar in
// client/nar.h) back into files, as `nix-store --restore` does, but for NARs from parties that are not
// trusted: the bytes stream in, in pieces of any size, and nothing is ever written outside the target.
//
// The target is a path that must not exist yet; its parent must. The NAR's root becomes the target (a
// directory, a regular file or a symbolic link). Safety:
//   - every file, directory and link is created relative to a descriptor of the directory that holds it
//     (mkdirat, openat with O_CREAT|O_EXCL|O_NOFOLLOW, symlinkat), by a single-component name, so no
//     entry can be placed anywhere but where the NAR's own tree says, and no symbolic link, whichever
//     the NAR created and wherever it points, is ever followed;
//   - a name that is empty, ".", "..", contains '/' or NUL is refused, and so are names within one
//     directory that are not strictly increasing (bytewise): a NAR lists each directory sorted and
//     without duplicates, so a second entry of one name (which could otherwise replace or go through the
//     first) is never accepted;
//   - limits (UnpackLimits) on the bytes of all files, the number of entries, the depth and the length
//     of a name: a file is refused before any of it is written when its declared size exceeds what is
//     left of the byte budget, so a NAR announcing a 10 GB file costs nothing;
//   - the owner's execute bit is set on files the NAR marks executable (files 0755, else 0644, and
//     directories 0755, all subject to the umask); nothing else (times, owners) is restored;
//   - bytes after the end of the NAR are refused.
// When anything fails (or the object is destroyed before a successful Finish), what was unpacked is
// removed, without following symbolic links; a target that was not created by the unpacker (it appeared
// meanwhile) is left alone.
//
// Errors name the entry (its path inside the NAR, "" for the root) and the NAR byte offset:
//   DATA_LOSS           not a NAR: wrong magic, an unexpected token, non-zero padding, a truncated NAR,
//                       bytes after its end
//   INVALID_ARGUMENT    a NAR that may not be unpacked: a bad or out-of-order name, an empty symbolic
//                       link target or one with NUL or longer than kMaxSymlinkTargetBytes
//   RESOURCE_EXHAUSTED  a limit of UnpackLimits; the disk is full
//   ALREADY_EXISTS      the target exists (at Create, or it appeared before the root was made)
//   NOT_FOUND           the target's parent directory does not exist
//   FAILED_PRECONDITION the file system refuses (permissions, read-only) or changed under the unpacker
//   UNAVAILABLE         another I/O error
//
// Thread-compatible: one object per NAR, used by one thread at a time.
#ifndef ATTEST_STORAGE_NAR_UNPACK_H_
#define ATTEST_STORAGE_NAR_UNPACK_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "storage/files.h"

namespace attest::storage {

struct UnpackLimits final {
  uint64_t max_file_bytes = uint64_t{1} << 30;  // all regular files' contents and link targets together
  uint64_t max_entries = 100'000;               // files, directories and links, the root included
  uint32_t max_depth = 256;                     // directories nested below the root
  uint32_t max_name_bytes = 255;                // one name (NAME_MAX on Linux)
};

// Longest symbolic link target accepted (PATH_MAX - 1 on Linux).
inline constexpr size_t kMaxSymlinkTargetBytes = 4095;

class NarUnpacker final {
 public:
  // Checks that `target`'s parent directory exists (and opens it) and that `target` does not. Nothing
  // is created until the NAR's root arrives. INVALID_ARGUMENT: an empty target, or one whose last
  // component is "." or "..". Other codes as in the file comment.
  static absl::StatusOr<std::unique_ptr<NarUnpacker>> Create(const std::string& target, UnpackLimits limits = {});

  // Removes what was unpacked unless Finish returned OK.
  ~NarUnpacker();
  NarUnpacker(const NarUnpacker&) = delete;
  NarUnpacker& operator=(const NarUnpacker&) = delete;

  // The next bytes of the NAR, in order; any piece size, empty pieces included. After an error the
  // unpacked part has been removed and every later call returns the same error.
  // FAILED_PRECONDITION: called after Finish.
  absl::Status Feed(std::span<const uint8_t> bytes);
  absl::Status Feed(std::string_view bytes) {
    return Feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }

  // The NAR is complete. OK: the tree is at the target, and is the caller's (to read and to remove with
  // RemoveTree). DATA_LOSS when the NAR ended early. FAILED_PRECONDITION when called twice.
  absl::Status Finish();

  uint64_t nar_bytes() const { return offset_; }          // NAR bytes consumed so far
  uint64_t file_bytes() const { return file_bytes_; }     // bytes counted against max_file_bytes
  uint64_t entries() const { return entries_; }           // entries created so far, the root included
  const std::string& target() const { return target_; }

 private:
  enum class Grammar : uint8_t;
  struct Directory;

  NarUnpacker(std::string target, std::string base_name, std::unique_ptr<ScopedFd> parent, UnpackLimits limits);

  absl::Status FeedUnlatched(std::span<const uint8_t> bytes);
  // A whole string (not file contents) arrived.
  absl::Status OnString(std::string_view s);
  // The length of the next string arrived: checks it against the grammar's bound, and for file contents
  // creates the file.
  absl::Status OnLength(uint64_t length);
  absl::Status WriteContents(std::span<const uint8_t> bytes);
  absl::Status CloseFile();
  absl::Status CreateNode(std::string_view type);
  absl::Status NodeClosed();
  absl::Status LeaveDirectory();
  absl::Status Fail(absl::Status status);  // removes the partial tree, latches the status

  // For messages.
  std::string EntryPath() const;
  std::string At() const;
  absl::Status NotANar(std::string_view expected, std::string_view got) const;

  const std::string target_;
  const std::string base_name_;  // target's last component
  std::unique_ptr<ScopedFd> parent_;  // target's parent directory
  const UnpackLimits limits_;

  // The tree being built: the directories from the root down to the one entries go into now. Only the
  // innermost has an open descriptor (current_); going up reopens ".." and checks its identity.
  std::vector<Directory> directories_;
  std::unique_ptr<ScopedFd> current_;
  std::vector<std::string> path_;  // names from the root to the entry being read
  std::string pending_name_;       // the entry whose node comes next
  bool root_created_ = false;
  bool executable_ = false;
  std::unique_ptr<ScopedFd> file_;  // the regular file being written

  // Reading strings: an 8-byte length, the bytes, zero padding to a multiple of 8.
  enum class Phase : uint8_t { kLength, kBody, kPadding };
  Phase phase_;
  Grammar grammar_;
  uint8_t length_bytes_[8] = {};
  size_t length_have_ = 0;
  uint64_t length_ = 0;
  uint64_t body_have_ = 0;
  uint64_t padding_left_ = 0;
  bool streaming_ = false;  // the body is file contents, written as it arrives
  std::string string_;      // a short string's bytes

  uint64_t offset_ = 0;
  uint64_t file_bytes_ = 0;
  uint64_t entries_ = 0;
  absl::Status failed_;
  bool finished_ = false;
};

// Unpacks the NAR file at `nar_path` (uncompressed) to `target`, as NarUnpacker does. Errors as
// NarUnpacker's, and those of reading the file (NOT_FOUND, PERMISSION_DENIED, UNAVAILABLE; the
// message names it).
absl::Status UnpackNarFile(const std::string& nar_path, const std::string& target, UnpackLimits limits = {});

// Removes `path` and, if it is a directory, everything below it, never following a symbolic link
// (a link is removed, not what it points to). OK when `path` does not exist. Errors name the entry
// that could not be removed: FAILED_PRECONDITION (permissions, read-only), UNAVAILABLE (other).
absl::Status RemoveTree(const std::string& path);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_NAR_UNPACK_H_
