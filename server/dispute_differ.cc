#include "server/dispute_differ.h"

#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "consensus/text.h"
#include "server/log.h"
#include "storage/files.h"
#include "storage/nar_unpack.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;
using nlohmann::json;

// A result file is small (the text report is capped); anything larger is not one of ours.
constexpr size_t kMaxResultFileBytes = size_t{8} << 20;
// diffoscope's HTML report is bounded by its --max-report-size (plus its page frame).
size_t MaxHtmlBytes(const storage::NarDiffOptions& options) {
  return static_cast<size_t>(options.diffoscope.max_report_bytes) * 2 + (size_t{1} << 20);
}

// The least time between two passes, however often Wake is called (each commit wakes the differ).
constexpr absl::Duration kMinPassGap = absl::Seconds(5);

std::string ResultPath(const std::string& directory, std::string_view id) { return Cat(directory, "/", id, ".json"); }
std::string HtmlPath(const std::string& directory, std::string_view id) { return Cat(directory, "/", id, ".html"); }

json ToJson(const DisputeDiff& diff) {
  return {{"state", DisputeDiffStateName(diff.state)},
          {"reason", diff.reason},
          {"fingerprints", diff.fingerprints},
          {"sources", diff.sources},
          {"same", diff.same},
          {"differing_files", diff.differing_files},
          {"text", diff.text},
          {"truncated", diff.truncated},
          {"has_html", diff.has_html},
          {"time_unix", diff.time_unix}};
}

std::optional<DisputeDiff> FromJson(std::string_view text) {
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return std::nullopt;
  DisputeDiff diff;
  const std::string state = value.value("state", "");
  if (state == "done") {
    diff.state = DisputeDiff::State::kDone;
  } else if (state == "unavailable") {
    diff.state = DisputeDiff::State::kUnavailable;
  } else {
    return std::nullopt;
  }
  auto strings = [&value](const char* key) {
    std::vector<std::string> out;
    const auto it = value.find(key);
    if (it == value.end() || !it->is_array()) return out;
    for (const json& item : *it) {
      if (item.is_string()) out.push_back(item.get<std::string>());
    }
    return out;
  };
  diff.reason = value.value("reason", "");
  diff.fingerprints = strings("fingerprints");
  diff.sources = strings("sources");
  diff.same = value.value("same", false);
  diff.differing_files = strings("differing_files");
  diff.text = value.value("text", "");
  diff.truncated = value.value("truncated", false);
  diff.has_html = value.value("has_html", false);
  diff.time_unix = value.value("time_unix", int64_t{0});
  return diff;
}

// The two sides with the most operators (ties: the record's order), in the record's order, so that the
// report's a/ and b/ come in the order the dispute page lists the sides.
std::vector<const DisputeDetail::Side*> LeadingSides(const DisputeDetail& detail) {
  std::vector<const DisputeDetail::Side*> sides;
  for (const DisputeDetail::Side& side : detail.sides) sides.push_back(&side);
  std::stable_sort(sides.begin(), sides.end(), [](const auto* a, const auto* b) {
    return a->names.operators.size() > b->names.operators.size();
  });
  if (sides.size() > 2) sides.resize(2);
  std::sort(sides.begin(), sides.end());  // pointers into detail.sides: the record's order
  return sides;
}

}  // namespace

std::string_view DisputeDiffStateName(DisputeDiff::State state) {
  return state == DisputeDiff::State::kDone ? "done" : "unavailable";
}

absl::StatusOr<std::unique_ptr<DisputeDiffer>> DisputeDiffer::Open(const DisputeView* view,
                                                                   std::vector<NarSourceSpec> sources,
                                                                   DisputeDifferOptions options) {
  if (options.directory.empty()) return absl::InvalidArgumentError("the dispute diffs need a directory");
  std::error_code error;
  options.directory = std::filesystem::absolute(options.directory, error).string();
  std::filesystem::create_directories(options.directory, error);
  if (error) {
    return absl::FailedPreconditionError(Cat("cannot create the dispute diff directory ", options.directory, ": ",
                                             error.message(), " (may the node write there?)"));
  }
  // Work directories of a comparison an earlier process did not finish.
  for (const auto& entry : std::filesystem::directory_iterator(options.directory, error)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("work-")) storage::RemoveTree(entry.path().string()).IgnoreError();
    if (name.ends_with(".partial")) std::filesystem::remove(entry.path(), error);
  }
  return std::unique_ptr<DisputeDiffer>(new DisputeDiffer(view, std::move(sources), std::move(options)));
}

DisputeDiffer::DisputeDiffer(const DisputeView* view, std::vector<NarSourceSpec> sources,
                             DisputeDifferOptions options)
    : view_(view), options_(std::move(options)), sources_(std::move(sources)) {}

DisputeDiffer::~DisputeDiffer() { Stop(); }

bool DisputeDiffer::has_sources() const {
  absl::MutexLock lock(&mu_);
  return !sources_.empty();
}

void DisputeDiffer::SetSources(std::vector<NarSourceSpec> sources) {
  absl::MutexLock lock(&mu_);
  sources_ = std::move(sources);
  sources_changed_unix_ = absl::ToUnixSeconds(options_.clock());
  forget_seen_ = true;
  woken_ = true;
}

std::vector<std::string> DisputeDiffer::CachesOf(const std::vector<NarSourceSpec>& sources,
                                                 const DisputeDetail::Side& side) const {
  std::vector<std::string> urls;
  const std::set<std::string> operators(side.names.operators.begin(), side.names.operators.end());
  for (const NarSourceSpec& spec : sources) {
    if (spec.kind == NarSourceKind::kOperator && operators.contains(spec.operator_name)) urls.push_back(spec.url);
  }
  for (const NarSourceSpec& spec : sources) {
    if (spec.kind != NarSourceKind::kOperator) urls.push_back(spec.url);
  }
  return urls;
}

bool DisputeDiffer::Consider(const DisputeDetail& detail) {
  const std::string& id = detail.stored.id;
  // A derivation output's sides are output paths, not NARs of one path: nothing to fetch and compare.
  if (detail.record.subject.is_realisation()) return false;
  const std::vector<const DisputeDetail::Side*> sides = LeadingSides(detail);
  if (sides.size() < 2) return false;
  const std::vector<std::string> fingerprints{sides[0]->fingerprint, sides[1]->fingerprint};
  const absl::Time now = options_.clock();
  const std::optional<DisputeDiff> stored = Result(id);
  auto remember = [&](const DisputeDiff& diff) {
    // A done result is looked at again after retry_after too: two changes within the second of
    // updated_unix leave the listing's fields as they were.
    seen_[id] = Seen{.updated_unix = detail.stored.updated_unix,
                     .fingerprint_count = detail.stored.fingerprint_count,
                     .operators = detail.stored.operators,
                     .recheck_at = std::max(now, absl::FromUnixSeconds(diff.time_unix)) + options_.retry_after};
  };
  std::vector<NarSourceSpec> sources;
  int64_t sources_changed_unix;
  {
    absl::MutexLock lock(&mu_);
    sources = sources_;
    sources_changed_unix = sources_changed_unix_;
  }
  // An unavailable result stands until retry_after, unless the sources changed since it was made (a
  // policy update may have listed the cache that was missing).
  if (stored && stored->fingerprints == fingerprints &&
      (stored->state == DisputeDiff::State::kDone ||
       (absl::FromUnixSeconds(stored->time_unix) + options_.retry_after > now &&
        stored->time_unix > sources_changed_unix))) {
    remember(*stored);
    return false;
  }

  DisputeDiff diff;
  diff.fingerprints = fingerprints;
  diff.time_unix = absl::ToUnixSeconds(now);
  const std::string html_partial = Cat(options_.directory, "/", id, ".html.partial");
  auto compare = [&]() -> absl::Status {
    // The letter the dispute page gives the side.
    auto letter = [&](size_t s) {
      const size_t index = static_cast<size_t>(sides[s] - detail.sides.data());
      return index < 26 ? std::string(1, static_cast<char>('A' + index)) : Cat("#", index + 1);
    };
    std::vector<storage::DiffSide> diff_sides;
    std::vector<std::string> without_caches;
    for (size_t s = 0; s < 2; ++s) {
      if (!sides[s]->claim) {
        return absl::FailedPreconditionError(Cat("the fingerprint of side ", letter(s), " does not parse"));
      }
      diff_sides.push_back(storage::DiffSide{.claim = *sides[s]->claim, .cache_urls = CachesOf(sources, *sides[s])});
      if (diff_sides.back().cache_urls.empty()) {
        without_caches.push_back(Cat("side ", letter(s), " (",
                                     absl::StrJoin(sides[s]->names.operators, ", "), ")"));
      }
    }
    if (without_caches.size() == 2) return absl::NotFoundError(std::string(kNoCacheKnown));
    if (!without_caches.empty()) {
      return absl::NotFoundError(Cat("no binary cache is known for ", without_caches.front(),
                                     ": its operators list no caches in the policy and the node has no "
                                     "[[source]] mirror"));
    }
    storage::NarDiffOptions options = options_.diff;
    options.diffoscope.html_path = html_partial;
    // Stop does not wait for diffoscope to finish.
    options.diffoscope.cancelled = [this] {
      absl::MutexLock lock(&mu_);
      return stopping_;
    };
    const std::string work = Cat(options_.directory, "/work-", id);
    storage::RemoveTree(work).IgnoreError();
    absl::StatusOr<storage::NarDiffResult> result = storage::DiffNars(diff_sides[0], diff_sides[1], work, options);
    if (!result.ok()) return result.status();
    diff.state = DisputeDiff::State::kDone;
    diff.sources = {result->a_source, result->b_source};
    diff.same = result->diff.verdict == storage::DiffoscopeVerdict::kSame;
    diff.differing_files = std::move(result->differing_files);
    diff.text = std::move(result->diff.text);
    diff.truncated = result->diff.text_truncated;
    if (!result->diff.html_path.empty()) {
      absl::StatusOr<std::string> html = storage::ReadFileToString(
          html_partial, storage::ReadFileOptions{.max_bytes = MaxHtmlBytes(options_.diff),
                                                 .symlinks = storage::Symlinks::kRefuse,
                                                 .types = storage::FileTypes::kRegularOnly});
      diff.has_html = html.ok() && storage::WriteFileAtomically(HtmlPath(options_.directory, id),
                                                                // Its title quotes the command line: not
                                                                // where the node keeps its files.
                                                                absl::StrReplaceAll(*html, {{html_partial, Cat(id, ".html")}}),
                                                                0644)
                                       .ok();
    }
    return absl::OkStatus();
  };
  const absl::Status status = compare();
  std::error_code error;
  if (status.code() == absl::StatusCode::kCancelled) {  // stopping: the next start compares again
    std::filesystem::remove(html_partial, error);
    return false;
  }
  if (!status.ok()) {
    diff.state = DisputeDiff::State::kUnavailable;
    diff.reason = std::string(StdView(status.message()));
  }
  if (!diff.has_html) std::filesystem::remove(HtmlPath(options_.directory, id), error);
  std::filesystem::remove(html_partial, error);
  if (absl::Status written = storage::WriteFileAtomically(ResultPath(options_.directory, id),
                                                          ToJson(diff).dump(-1, ' ', false,
                                                                            json::error_handler_t::replace),
                                                          0644);
      !written.ok()) {
    LogWarning(Cat("dispute diff ", id, ": cannot keep the result: ", StdView(written.message())));
    return false;
  }
  remember(diff);
  if (diff.state == DisputeDiff::State::kDone) {
    LogInfo(Cat("dispute diff ", id, " (", detail.stored.subject.ToString(), "): ",
                diff.same ? std::string("diffoscope finds no difference")
                          : Cat(diff.differing_files.size(), " differing files")));
  } else if (!stored || stored->reason != diff.reason) {
    LogInfo(Cat("dispute diff ", id, " (", detail.stored.subject.ToString(), ") not made: ", diff.reason));
  }
  return true;
}

absl::StatusOr<int> DisputeDiffer::RunPass() {
  absl::MutexLock pass(&pass_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (forget_seen_) seen_.clear();
    forget_seen_ = false;
  }
  int written = 0;
  DisputePageRequest request;
  request.filter.state = consensus::DisputeState::kOpen;
  request.size = kMaxDisputePageSize;
  absl::flat_hash_set<std::string> open;  // every open dispute, when the pass sees them all
  bool all_seen = false;
  bool cut = false;
  while (written < options_.max_per_pass) {
    absl::StatusOr<DisputePage> page = view_->List(request);
    if (!page.ok()) return page.status();
    for (const storage::StoredDispute& listed : page->disputes) {
      open.insert(listed.id);
      if (written >= options_.max_per_pass) {
        cut = true;
        break;
      }
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return written;
      }
      // Unchanged since it was last considered, and its result is not due: nothing to read.
      if (auto it = seen_.find(listed.id);
          it != seen_.end() && it->second.updated_unix == listed.updated_unix &&
          it->second.fingerprint_count == listed.fingerprint_count && it->second.operators == listed.operators &&
          options_.clock() < it->second.recheck_at) {
        continue;
      }
      absl::StatusOr<DisputeDetail> detail = view_->Get(listed.id);
      if (!detail.ok()) continue;  // a record that does not parse is the scrubber's and the page's to show
      if (Consider(*detail)) ++written;
    }
    if (page->next_cursor.empty()) {
      all_seen = !cut;
      break;
    }
    request.after = page->next_cursor;
  }
  // Forget disputes that are no longer open (their results stay on disk for the pages).
  if (all_seen) absl::erase_if(seen_, [&open](const auto& entry) { return !open.contains(entry.first); });
  return written;
}

void DisputeDiffer::Start() {
  if (thread_.joinable()) return;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = false;
    woken_ = true;
  }
  thread_ = std::thread([this] { Run(); });
}

void DisputeDiffer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void DisputeDiffer::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void DisputeDiffer::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || woken_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), options_.interval);
      if (stopping_) return;
      woken_ = false;
    }
    if (!has_sources()) continue;  // nothing to fetch bytes from; SetSources wakes the thread
    if (absl::StatusOr<int> pass = RunPass(); !pass.ok()) {
      LogWarning(Cat("dispute diffs: cannot list the open disputes: ", StdView(pass.status().message())));
    }
    absl::MutexLock lock(&mu_);
    auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping), kMinPassGap)) return;
  }
}

std::optional<DisputeDiff> DisputeDiffer::Result(std::string_view id) const {
  if (!IsDisputeId(id)) return std::nullopt;
  absl::StatusOr<std::string> text =
      storage::ReadFileToString(ResultPath(options_.directory, id),
                                storage::ReadFileOptions{.max_bytes = kMaxResultFileBytes,
                                                         .symlinks = storage::Symlinks::kRefuse,
                                                         .types = storage::FileTypes::kRegularOnly});
  if (!text.ok()) {
    if (!has_sources()) {
      return DisputeDiff{.state = DisputeDiff::State::kUnavailable, .reason = std::string(kNoCacheKnown)};
    }
    return std::nullopt;
  }
  return FromJson(*text);
}

absl::StatusOr<std::string> DisputeDiffer::Html(std::string_view id) const {
  const std::optional<DisputeDiff> result = Result(id);
  if (!result || !result->has_html) {
    return absl::NotFoundError(Cat("no diffoscope report for dispute ", id, " on this node"));
  }
  absl::StatusOr<std::string> html =
      storage::ReadFileToString(HtmlPath(options_.directory, id),
                                storage::ReadFileOptions{.max_bytes = MaxHtmlBytes(options_.diff),
                                                         .symlinks = storage::Symlinks::kRefuse,
                                                         .types = storage::FileTypes::kRegularOnly});
  if (!html.ok() && html.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(Cat("no diffoscope report for dispute ", id, " on this node"));
  }
  return html;
}

}  // namespace attest::server
