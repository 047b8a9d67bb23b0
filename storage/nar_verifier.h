// NarVerifier: checks a NAR file as a binary cache stores it (compressed or not) against what its
// narinfo says, while the bytes stream through, before any of them is passed on as verified.
//
// The narinfo's `Compression` names the file's format; `FileHash`/`FileSize` (optional, not signed)
// describe the file as stored; `NarHash`/`NarSize` (signed by the builders) describe the NAR inside it.
// The verifier decompresses incrementally (liblzma, libbz2, libzstd), hashes and counts the NAR bytes,
// and fails as early as the bytes allow:
//   - during Feed: corrupt compressed data, more file bytes than FileSize, more NAR bytes than NarSize
//     (decompression stops there: at most NarSize + 1 bytes are ever produced, so a decompression bomb
//     costs nothing), data after the end of the compressed stream that is not another stream;
//   - at Finish: a file shorter than FileSize, a compressed stream cut short, a NAR shorter than NarSize,
//     a NarHash mismatch, a FileHash mismatch.
// Concatenated streams (xz, bzip2) and frames (zstd) are one file, as the command-line tools read them;
// xz stream padding is not accepted.
//
// Memory is bounded: one 64 KiB output buffer plus the decoder's state, which is capped (xz: 128 MiB
// memory limit, zstd: windows up to 128 MiB; a file made with larger settings is RESOURCE_EXHAUSTED).
// Real caches use far less: `nix copy`'s xz needs 9 MiB, zstd's default levels 8 MiB or less.
//
// Thread-compatible: one object per transfer, used by one thread at a time.
#ifndef ATTEST_STORAGE_NAR_VERIFIER_H_
#define ATTEST_STORAGE_NAR_VERIFIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/nar_hash.h"

namespace attest::storage {

// What a narinfo says about one NAR file.
struct NarFileExpectation final {
  // The narinfo's `Compression`: "xz", "bzip2", "zstd" or "none"; empty means "bzip2", as Nix reads a
  // narinfo without the line.
  std::string compression;
  consensus::NarHash nar_hash = consensus::NarHash::FromDigest({});  // NarHash
  uint64_t nar_size = 0;        // NarSize
  // FileHash: the SHA-256 of the file as stored (same text forms as NarHash, so parse it with
  // NarHash::Parse). Absent: not checked.
  std::optional<consensus::NarHash> file_hash;
  std::optional<uint64_t> file_size;  // FileSize. Absent: not checked.
};

class NarVerifier final {
 public:
  // Size of the buffer decompressed bytes pass through.
  static constexpr size_t kBufferBytes = 64 * 1024;

  // INVALID_ARGUMENT: an unknown compression, or NarSize 0. UNIMPLEMENTED: a compression Nix knows that
  // this node does not decompress ("br", "gzip", "lz4", "lzip"; the message names it).
  // RESOURCE_EXHAUSTED: the decoder could not be allocated.
  static absl::StatusOr<std::unique_ptr<NarVerifier>> Create(NarFileExpectation expected);

  ~NarVerifier();
  NarVerifier(const NarVerifier&) = delete;
  NarVerifier& operator=(const NarVerifier&) = delete;

  // The next bytes of the file, in order; any piece size, empty pieces included. When this returns an
  // error the transfer is over: every later call returns the same error.
  // DATA_LOSS: corrupt compressed data, FileSize exceeded, NarSize exceeded, or bytes after the end of
  // the compressed data that do not start another stream (message: what, and at which file offset).
  // RESOURCE_EXHAUSTED: the file needs more decoder memory than the limit above.
  // FAILED_PRECONDITION: called after Finish.
  absl::Status Feed(std::span<const uint8_t> bytes);

  // The file is complete. OK when every check passed: only then may the bytes be relayed as verified.
  // DATA_LOSS: the file is shorter than FileSize, the compressed data ends early, the NAR is shorter
  // than NarSize, the NAR's hash is not NarHash or the file's not FileHash (the messages name the
  // expected and actual values). FAILED_PRECONDITION: called twice.
  absl::Status Finish();

  // Where the NAR bytes go as they are produced (decompressed; never more than NarSize of them), e.g.
  // into a cache file that is kept only when Finish is OK. Set before the first Feed. A non-OK status
  // from the sink ends the transfer like any other error.
  using NarSink = std::function<absl::Status(std::span<const uint8_t>)>;
  void SetNarSink(NarSink sink) { nar_sink_ = std::move(sink); }

  uint64_t file_bytes() const { return file_bytes_; }  // bytes fed so far
  uint64_t nar_bytes() const { return nar_bytes_; }    // NAR bytes produced so far (<= NarSize + 1)
  const std::string& compression() const { return expected_.compression; }

  class Decoder;  // one per compression; defined in the .cc

 private:
  class Sha256;

  NarVerifier(NarFileExpectation expected, std::unique_ptr<Decoder> decoder, std::unique_ptr<Sha256> nar_sha,
              std::unique_ptr<Sha256> file_sha);
  absl::Status FeedUnlatched(std::span<const uint8_t> bytes);
  absl::Status FinishUnlatched();
  // Hashes and counts NAR bytes; DATA_LOSS once there are more than NarSize.
  absl::Status TakeNar(std::span<const uint8_t> nar);

  NarFileExpectation expected_;
  std::unique_ptr<Decoder> decoder_;  // null for "none"
  std::unique_ptr<Sha256> nar_sha_;
  std::unique_ptr<Sha256> file_sha_;  // null unless FileHash is given and the file is compressed
  std::unique_ptr<uint8_t[]> buffer_;  // kBufferBytes of decompressed NAR; null for "none"
  uint64_t file_bytes_ = 0;
  uint64_t nar_bytes_ = 0;
  NarSink nar_sink_;
  absl::Status failed_;  // the first error; every later call returns it
  bool finished_ = false;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_NAR_VERIFIER_H_
