#include "storage/nar_diff.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_join.h"
#include "consensus/narinfo.h"
#include "consensus/text.h"
#include "storage/nar_verifier.h"

namespace attest::storage {
namespace {

using consensus::Cat;
using consensus::StdView;

// Removes a work directory on every path out of DiffNars.
struct WorkDirectory final {
  std::string path;
  ~WorkDirectory() {
    if (!path.empty()) RemoveTree(path).IgnoreError();
  }
};

// The verified NAR of `claim` from one cache, unpacked at `target`.
absl::Status FetchFrom(BinaryCache& cache, const consensus::PathInfo& claim, const std::string& target,
                       const NarDiffOptions& options) {
  const std::string hash_part(claim.path.hash_part());
  absl::StatusOr<std::string> text = cache.FetchNarInfo(hash_part);
  if (!text.ok()) return text.status();
  absl::StatusOr<consensus::NarInfo> narinfo = consensus::ParseNarInfo(*text, Cat(cache.url(), "/", hash_part, ".narinfo"));
  if (!narinfo.ok()) return absl::NotFoundError(Cat("invalid narinfo: ", StdView(narinfo.status().message())));
  if (narinfo->claim.Fingerprint() != claim.Fingerprint()) {
    return absl::NotFoundError("its narinfo describes other contents than this side's claim");
  }
  std::optional<std::string> file = SourceNarFileName(narinfo->url, cache.url());
  if (!file) return absl::NotFoundError(Cat("its narinfo's URL ", consensus::QuoteForError(narinfo->url), " is not under its nar/"));
  NarFileExpectation expected{.compression = narinfo->compression,
                              .nar_hash = claim.nar_hash,
                              .nar_size = claim.nar_size,
                              .file_hash = std::nullopt,
                              .file_size = narinfo->file_size};
  if (!narinfo->file_hash.empty()) {
    absl::StatusOr<consensus::NarHash> file_hash = consensus::NarHash::Parse(narinfo->file_hash);
    if (file_hash.ok()) expected.file_hash = *file_hash;
  }
  absl::StatusOr<std::unique_ptr<NarVerifier>> verifier = NarVerifier::Create(expected);
  if (!verifier.ok()) return verifier.status();
  absl::StatusOr<std::unique_ptr<NarUnpacker>> unpacker = NarUnpacker::Create(target, options.unpack);
  if (!unpacker.ok()) return unpacker.status();
  // The NAR is unpacked as it is verified; the unpacker removes everything unless Finish succeeded.
  (*verifier)->SetNarSink([&unpacker](std::span<const uint8_t> nar) { return (*unpacker)->Feed(nar); });
  const uint64_t nar_size = claim.nar_size;
  const uint64_t bound = narinfo->compression == "none" ? nar_size : nar_size + nar_size / 8 + (uint64_t{1} << 20);
  absl::Status status = cache.FetchNarFile(*file, (narinfo->file_size ? std::min(*narinfo->file_size, bound) : bound) + 1,
                                           [&verifier](std::span<const uint8_t> bytes) { return (*verifier)->Feed(bytes); });
  if (status.ok()) status = (*verifier)->Finish();
  if (status.ok()) status = (*unpacker)->Finish();
  if (!status.ok() && status.code() == absl::StatusCode::kDataLoss) {
    return absl::NotFoundError(Cat("its bytes failed verification: ", StdView(status.message())));
  }
  return status;
}

}  // namespace

absl::StatusOr<std::string> FetchAndUnpack(const DiffSide& side, const std::string& target,
                                           const NarDiffOptions& options) {
  if (side.claim.nar_size > options.max_nar_bytes) {
    return absl::FailedPreconditionError(Cat("the NAR of ", side.claim.path.full(), " has ", side.claim.nar_size,
                                             " bytes, more than the ", options.max_nar_bytes, " compared at most"));
  }
  std::vector<std::string> reasons;
  bool unavailable = false;
  for (const std::string& url : side.cache_urls) {
    absl::StatusOr<std::unique_ptr<BinaryCache>> cache = BinaryCache::Open(url, options.caches);
    if (!cache.ok()) {
      reasons.push_back(Cat(url, ": ", StdView(cache.status().message())));
      continue;
    }
    absl::Status status = FetchFrom(**cache, side.claim, target, options);
    if (status.ok()) return url;
    unavailable |= status.code() != absl::StatusCode::kNotFound;
    reasons.push_back(Cat(url, ": ", StdView(status.message())));
  }
  const std::string message =
      Cat("no cache delivered the NAR of ", side.claim.path.full(), " with NarHash ", side.claim.nar_hash.ToNix32(),
          reasons.empty() ? std::string(" (no cache is known for this side)") : Cat(": ", absl::StrJoin(reasons, "; ")));
  return unavailable ? absl::UnavailableError(message) : absl::NotFoundError(message);
}

absl::StatusOr<NarDiffResult> DiffNars(const DiffSide& a, const DiffSide& b, const std::string& work_dir,
                                       const NarDiffOptions& options) {
  if (::mkdir(work_dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(Cat("cannot make the work directory ", work_dir, ": ", std::strerror(errno)));
  }
  WorkDirectory cleanup{work_dir};
  NarDiffResult result;
  // Named after the store path, so diffoscope's report shows the path's own file names.
  const std::string a_root = Cat(work_dir, "/a");
  const std::string b_root = Cat(work_dir, "/b");
  for (const std::string& dir : {a_root, b_root}) {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      return absl::FailedPreconditionError(Cat("cannot make ", dir, ": ", std::strerror(errno)));
    }
  }
  const std::string name(a.claim.path.base_name());
  absl::StatusOr<std::string> a_source = FetchAndUnpack(a, Cat(a_root, "/", name), options);
  if (!a_source.ok()) return a_source.status();
  absl::StatusOr<std::string> b_source = FetchAndUnpack(b, Cat(b_root, "/", name), options);
  if (!b_source.ok()) return b_source.status();
  result.a_source = *std::move(a_source);
  result.b_source = *std::move(b_source);
  // diffoscope runs in the work directory on a/<name> and b/<name>: the reports show those, not where
  // the caller keeps its work directories.
  std::error_code error;
  const std::string absolute = std::filesystem::absolute(work_dir, error).string();
  if (error) return absl::FailedPreconditionError(Cat("cannot resolve ", work_dir, ": ", error.message()));
  DiffoscopeOptions diffoscope = options.diffoscope;
  if (diffoscope.scratch_parent.empty()) diffoscope.scratch_parent = absolute;
  diffoscope.scratch_parent = std::filesystem::absolute(diffoscope.scratch_parent, error).string();
  if (!diffoscope.html_path.empty() && diffoscope.html_path.front() != '/') {
    // A relative html_path stays relative to the caller's directory.
    diffoscope.html_path = std::filesystem::absolute(diffoscope.html_path, error).string();
  }
  diffoscope.working_directory = absolute;
  const std::string a_tree = Cat("a/", name);
  const std::string b_tree = Cat("b/", name);
  absl::StatusOr<DiffoscopeResult> diff = RunDiffoscope(a_tree, b_tree, diffoscope);
  if (!diff.ok()) return diff.status();
  result.differing_files = DifferingFiles(diff->text, b_tree);
  result.diff = *std::move(diff);
  return result;
}

}  // namespace attest::storage
