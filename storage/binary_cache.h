// BinaryCache: read access to one Nix binary cache that some other party runs, as a source of NAR
// files. Used by the node's NAR relay (server/nar_relay.h) and by the CLI's dispute diff.
//
//   file:///srv/cache          a directory in the binary cache layout (<hash>.narinfo, nar/<file>), as
//                              `nix copy --to file://DIR` writes it
//   http://host:port/prefix    an HTTP(S) binary cache (nix-serve, harmonia, a static server, an S3
//   https://cache.example.org  bucket's website); libcurl, connections reused
//
// The cache is untrusted: nothing it answers is believed here (the caller parses narinfos and checks NAR
// bytes with NarVerifier), and it cannot make the node read anything but its own URL:
//   - a redirect is followed only to the same scheme, host and port (at most 5 in a row);
//   - a narinfo is at most kMaxSourceNarInfoBytes, a NAR file at most the caller's `max_bytes`;
//   - every transfer has a deadline, and one that stalls (no byte for `stall_timeout`) is ended;
//   - file:// reads only regular files under the directory, never following a symlink out of nar/.
//
// Thread-safe: every method may be called from many threads at once.
#ifndef ATTEST_STORAGE_BINARY_CACHE_H_
#define ATTEST_STORAGE_BINARY_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace attest::storage {

inline constexpr size_t kMaxSourceNarInfoBytes = size_t{1} << 20;

struct BinaryCacheOptions final {
  absl::Duration connect_timeout = absl::Seconds(10);  // TCP/TLS connect, and a whole narinfo
  absl::Duration transfer_timeout = absl::Minutes(10);  // a whole NAR file
  absl::Duration stall_timeout = absl::Seconds(30);     // no byte of a NAR file for this long
};

class BinaryCache {
 public:
  // Receives a NAR file's bytes in order, in pieces of any size. A non-OK status ends the transfer and
  // is returned by FetchNarFile unchanged.
  using Sink = std::function<absl::Status(std::span<const uint8_t>)>;

  // INVALID_ARGUMENT for a URL that is not file:///absolute/dir or http(s)://host... (see
  // consensus/cache_url.h: the policy and node config already refuse those). A file:// directory that
  // does not exist is not an error here: the cache is down, and its fetches are UNAVAILABLE until it
  // appears.
  static absl::StatusOr<std::unique_ptr<BinaryCache>> Open(std::string_view url, BinaryCacheOptions options = {});

  virtual ~BinaryCache() = default;

  // The text of "<hash_part>.narinfo" (32 nix32 characters; anything else is INVALID_ARGUMENT).
  //   NOT_FOUND            the cache has none (HTTP 404, 403, 410; no such file, or something that is
  //                        not a regular file, such as a directory or a FIFO)
  //   UNAVAILABLE          unreachable, timed out (connect_timeout for the whole narinfo), HTTP 5xx or
  //                        another status, a redirect loop, a read error, a file:// directory that is
  //                        missing, Cancel
  //   PERMISSION_DENIED    a redirect to another scheme, host or port (both URLs named in the message);
  //                        a file:// entry that is a symbolic link
  //   RESOURCE_EXHAUSTED   larger than kMaxSourceNarInfoBytes
  virtual absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) = 0;

  // Streams "nar/<file_name>" to `sink` (`file_name` must pass IsSourceNarFileName, else
  // INVALID_ARGUMENT). Errors as FetchNarInfo, and:
  //   DATA_LOSS   the body is longer than `max_bytes` (reading stops there), or shorter than the
  //               Content-Length the cache announced, or the connection broke in the middle
  //   UNAVAILABLE also: transfer_timeout passed, or the transfer stalled (no byte of the response for
  //               stall_timeout, measured from the last byte, checked about once a second), or Cancel
  //               was called
  // Only the body of an HTTP 200 reaches `sink`, exactly as stored (no content decoding), and never a
  // byte past `max_bytes` (a Content-Length above it is refused before the first byte).
  // Bytes already given to `sink` are not taken back: the caller discards them on any error.
  virtual absl::Status FetchNarFile(std::string_view file_name, uint64_t max_bytes, const Sink& sink) = 0;

  // The URL as given to Open, without a trailing slash.
  virtual const std::string& url() const = 0;

  // For shutdown: transfers in progress end soon (within about a second) with UNAVAILABLE, and later
  // calls fail at once. Irreversible.
  virtual void Cancel() = 0;
};

// A file name under nar/ that may be fetched: 1..255 characters of [A-Za-z0-9._+-], not starting with
// '.', so it can never leave the nar/ directory.
bool IsSourceNarFileName(std::string_view file_name);

// The file name under nar/ of a narinfo's `URL:` as a source may give it: "nar/<file>", or an absolute
// URL equal to "<cache_url>/nar/<file>". Anything else (another host, another directory) is nullopt:
// the node fetches only from the cache's own nar/.
std::optional<std::string> SourceNarFileName(std::string_view narinfo_url, std::string_view cache_url);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_BINARY_CACHE_H_
