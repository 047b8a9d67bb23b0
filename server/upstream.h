// Upstream: the binary cache the gateway stands in front of, as a source of narinfo text and NAR bytes.
//
//   file:///srv/cache          a directory in the binary cache layout (<hash>.narinfo, nar/<file>),
//                              as written by `nix copy --to file://DIR`; NARs are sent from the file
//   http://host:port/prefix    an HTTP(S) binary cache; narinfos fetched with libcurl (connections
//   https://cache.example.org  reused), NARs relayed as they arrive (never buffered whole)
//
// Nothing here judges what it fetches: the gateway parses and checks narinfos, and Nix checks NAR bytes
// against the signed NarHash.
//
// Thread-safe: every method may be called from many threads at once.
#ifndef ATTEST_SERVER_UPSTREAM_H_
#define ATTEST_SERVER_UPSTREAM_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http_server.h"

namespace attest::server {

inline constexpr size_t kMaxNarInfoBytes = size_t{1} << 20;  // 10,000 references fit easily

struct UpstreamOptions final {
  absl::Duration timeout = absl::Seconds(10);  // connect + a narinfo, and until a NAR's headers arrive
  int max_nar_streams = 32;                    // http NARs relayed at once (one thread each); more wait
};

class Upstream {
 public:
  virtual ~Upstream() = default;

  // The text of "<hash_part>.narinfo" (`hash_part` must already be 32 nix32 characters).
  //   NOT_FOUND            the upstream has none (HTTP 404/403, no such file)
  //   UNAVAILABLE          unreachable, timed out, HTTP 5xx or another unexpected status, read error
  //   RESOURCE_EXHAUSTED   larger than kMaxNarInfoBytes
  virtual absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) = 0;

  // The body of "nar/<file_name>" (`file_name` must satisfy IsServableNarFileName): an open file for
  // file://, a relayed stream for http. May block until the upstream answered (at most `timeout`).
  //   NOT_FOUND     the upstream has no such file
  //   UNAVAILABLE   unreachable, timed out, HTTP 5xx, too many NARs relayed at once
  virtual absl::StatusOr<HttpBody> OpenNar(std::string_view file_name) = 0;

  // The URL as configured (without a trailing slash), for logs and for recognising absolute NAR URLs.
  virtual const std::string& url() const = 0;

  // For shutdown: transfers in progress end now and later calls fail at once (UNAVAILABLE), so nothing
  // waits for a slow upstream. Irreversible.
  virtual void Cancel() = 0;
};

// A file name under nar/ the gateway will fetch: 1..255 characters of [A-Za-z0-9._+-], not starting
// with '.', so it can never leave the nar/ directory.
bool IsServableNarFileName(std::string_view file_name);

// Opens the upstream named by `url`. INVALID_ARGUMENT for a URL that is neither file:// with an absolute
// path nor http(s)://host...; NOT_FOUND when a file:// directory does not exist.
absl::StatusOr<std::unique_ptr<Upstream>> OpenUpstream(std::string_view url, UpstreamOptions options);

// libcurl's global setup, once per process, before the first handle is made (not thread-safe in
// libcurl itself, hence here).
void InitCurlOnce();

}  // namespace attest::server

#endif  // ATTEST_SERVER_UPSTREAM_H_
