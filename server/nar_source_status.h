// The sources of a node's NAR bytes (the caches of the policy's operators, the node's [[source]]
// mirrors, the [gateway] upstream) and what the node knows about each: the status NarRelay keeps and
// `attest sources` (attest.v1.Federation/ListSources), the operators page and its JSON twin show.
//
// Plain values; thread-compatible. NarSourceStatusFn is called from RPC and HTTP pool threads, so the
// function a node hands out must be thread-safe.
#ifndef ATTEST_SERVER_NAR_SOURCE_STATUS_H_
#define ATTEST_SERVER_NAR_SOURCE_STATUS_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace attest::server {

enum class NarSourceKind { kOperator, kMirror, kUpstream };
std::string_view NarSourceKindName(NarSourceKind kind);  // "operator", "mirror", "upstream"

struct NarSourceSpec final {
  std::string url;  // normalised (consensus::ValidateCacheUrl)
  NarSourceKind kind = NarSourceKind::kMirror;
  std::string operator_name;  // kOperator only
  int priority = 0;           // kMirror only
};

// What the node knows about one source, for `attest sources`, the operators page and metrics.
struct NarSourceStatus final {
  NarSourceSpec spec;
  // The last contact (a narinfo or a NAR request) got an answer (a 404 counts: the source is up).
  // True until the first contact.
  bool reachable = true;
  std::string last_error;      // why the last failed contact failed ("" when none failed)
  int64_t last_error_unix = 0;
  uint64_t narinfos_found = 0;  // narinfos that matched the confirmed contents
  uint64_t paths_served = 0;    // NARs fetched from it that verified (each served from the cache after)
  uint64_t bytes_served = 0;    // NAR file bytes fetched from it that verified (as the source stores them)
  uint64_t mismatches = 0;      // narinfos or NAR files that contradicted the confirmed contents
  std::string last_mismatch;    // "<store path>: <what differed>" ("" when none)
  int64_t last_mismatch_unix = 0;
};

// The statuses of every source of a node, in the order they are tried (NarSourcesOf); empty for a
// node without [gateway] or without sources. Thread-safe.
using NarSourceStatusFn = std::function<std::vector<NarSourceStatus>()>;

}  // namespace attest::server

#endif  // ATTEST_SERVER_NAR_SOURCE_STATUS_H_
