// NarDiff: what differs between the two sides of a dispute, from the bytes. Each side is a claim (store
// path, NarHash, NarSize, references) and the binary caches that may hold it; the NAR of each side is
// fetched from the first cache whose narinfo describes exactly that claim, verified while it streams
// (NarVerifier) and unpacked as it is verified (NarUnpacker) into a work directory, and diffoscope
// compares the two trees. Used by the node in the background (server/dispute_differ.h) and by the
// CLI (`attest disputes diff`).
//
// Bounded: each NAR at most max_nar_bytes (larger: FAILED_PRECONDITION before any fetch), unpack
// limits, diffoscope's time and output limits. Bytes that do not verify are never unpacked past the
// first piece that fails, and what was unpacked of them is removed.
//
// Thread-compatible: one call per work directory.
#ifndef ATTEST_STORAGE_NAR_DIFF_H_
#define ATTEST_STORAGE_NAR_DIFF_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/path_info.h"
#include "storage/binary_cache.h"
#include "storage/diffoscope.h"
#include "storage/nar_unpack.h"

namespace attest::storage {

struct DiffSide final {
  consensus::PathInfo claim;
  std::vector<std::string> cache_urls;  // tried in order
};

struct NarDiffOptions final {
  uint64_t max_nar_bytes = uint64_t{256} << 20;
  UnpackLimits unpack;
  DiffoscopeOptions diffoscope;
  BinaryCacheOptions caches;
};

struct NarDiffResult final {
  DiffoscopeResult diff;
  std::string a_source;  // the cache each side's NAR came from
  std::string b_source;
  std::vector<std::string> differing_files;  // DifferingFiles of the report (relative to the store path)
};

// Fetches, verifies and unpacks both sides under `work_dir` (created; must not exist; removed before
// returning), then runs diffoscope in `work_dir` on a/<name> and b/<name> (<name>: the store path's
// base name), which is how its reports name the two trees. options.diffoscope.html_path, when
// relative, is relative to the calling process's directory (diffoscope's title shows it as given). NOT_FOUND: no cache of a side holds its NAR with bytes that verify
// (the message says, per cache, why); FAILED_PRECONDITION: a NAR is larger than max_nar_bytes;
// otherwise RunDiffoscope's errors (UNAVAILABLE when diffoscope is not installed).
absl::StatusOr<NarDiffResult> DiffNars(const DiffSide& a, const DiffSide& b, const std::string& work_dir,
                                       const NarDiffOptions& options = {});

// One side only: the verified NAR of `side.claim` unpacked at `target` (which must not exist). Returns
// the URL of the cache it came from. Errors as DiffNars.
absl::StatusOr<std::string> FetchAndUnpack(const DiffSide& side, const std::string& target,
                                           const NarDiffOptions& options = {});

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_NAR_DIFF_H_
