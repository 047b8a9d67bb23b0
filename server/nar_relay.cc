#include "server/nar_relay.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "consensus/text.h"
#include "server/log.h"
#include "storage/nar_verifier.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// Memoised narinfo answers per source are dropped wholesale beyond this many (each is a few hundred
// bytes; the gateway's own table bounds what is asked again and again).
constexpr size_t kMaxMemoEntries = 20000;

// How large a compressed file may be for a NAR of `nar_size` bytes when the narinfo gives no FileSize
// (or a larger one): xz, bzip2 and zstd expand incompressible data by far less than an eighth.
uint64_t MaxFileBytes(const consensus::NarInfo& narinfo) {
  const uint64_t nar_size = narinfo.claim.nar_size;
  const bool none = narinfo.compression == "none";
  const uint64_t bound = none ? nar_size : nar_size + nar_size / 8 + (uint64_t{1} << 20);
  return narinfo.file_size ? std::min(*narinfo.file_size, bound) : bound;
}

std::string NixBase32Digest(const consensus::NarHash& hash) {
  std::string text = hash.ToNix32();
  const size_t colon = text.find(':');
  return colon == std::string::npos ? text : text.substr(colon + 1);
}

std::string CacheKey(const consensus::PathInfo& confirmed) {
  return Cat(confirmed.path.hash_part(), "-", NixBase32Digest(confirmed.nar_hash));
}

}  // namespace

std::vector<NarSourceSpec> NarSourcesOf(const consensus::Policy& policy, std::span<const NarSourceSpec> mirrors,
                                        std::string_view upstream) {
  std::vector<NarSourceSpec> sources;
  auto add = [&](NarSourceSpec spec) {
    for (const NarSourceSpec& known : sources) {
      if (known.url == spec.url) return;
    }
    sources.push_back(std::move(spec));
  };
  for (const consensus::Operator& op : policy.operators()) {
    for (const std::string& url : op.caches) {
      add(NarSourceSpec{.url = url, .kind = NarSourceKind::kOperator, .operator_name = op.name, .priority = 0});
    }
  }
  std::vector<NarSourceSpec> sorted(mirrors.begin(), mirrors.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const NarSourceSpec& a, const NarSourceSpec& b) { return a.priority < b.priority; });
  for (NarSourceSpec& mirror : sorted) {
    mirror.kind = NarSourceKind::kMirror;
    add(std::move(mirror));
  }
  if (!upstream.empty()) add(NarSourceSpec{.url = std::string(upstream), .kind = NarSourceKind::kUpstream, .operator_name = "", .priority = 0});
  return sources;
}

// One source: its cache client, its status, and what it said about recent hash parts.
struct NarRelay::Source final {
  // A source's answer about one hash part.
  struct Memo final {
    absl::Status status;  // OK: `narinfo` is set
    std::shared_ptr<const consensus::NarInfo> narinfo;
    absl::Time expires;
    bool mismatch_noted = false;  // its contradiction of a confirmed claim was recorded
  };

  NarSourceSpec spec;
  std::unique_ptr<storage::BinaryCache> cache;
  Counter* fetched_paths = nullptr;
  Counter* fetched_bytes = nullptr;
  Counter* mismatches = nullptr;
  Counter* failures = nullptr;

  mutable absl::Mutex mu;
  NarSourceStatus status ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<std::string, Memo> memo ABSL_GUARDED_BY(mu);
};

// A NAR transfer in progress; later requests for the same NAR wait for it.
struct NarRelay::Flight final {
  absl::Notification done;
  absl::Status status;  // set before `done`
};

NarRelay::NarRelay(storage::NarCache* cache, MetricsRegistry* metrics, Clock clock, NarRelayOptions options)
    : cache_(cache), metrics_(metrics), clock_(std::move(clock)), options_(options) {}

NarRelay::~NarRelay() = default;

absl::StatusOr<std::unique_ptr<NarRelay>> NarRelay::Create(std::vector<NarSourceSpec> sources,
                                                           storage::NarCache* cache, MetricsRegistry* metrics,
                                                           Clock clock, NarRelayOptions options) {
  if (sources.empty()) {
    return absl::InvalidArgumentError(
        "the NAR relay has no sources (list caches for operators in the policy, or [[source]] tables)");
  }
  options.max_nar_bytes = std::min(options.max_nar_bytes, cache->max_bytes());
  auto relay = std::unique_ptr<NarRelay>(new NarRelay(cache, metrics, std::move(clock), options));
  if (absl::Status set = relay->SetSources(std::move(sources)); !set.ok()) return set;
  return relay;
}

absl::StatusOr<std::shared_ptr<NarRelay::Source>> NarRelay::OpenSource(NarSourceSpec spec) const {
  // Registering a family again returns the one there is, so sources added later count in the same
  // families.
  CounterFamily& paths = metrics_->AddCounter(
      "attest_nar_source_paths_total", "NARs fetched from a source that verified, by source URL.", {"source"});
  CounterFamily& bytes = metrics_->AddCounter(
      "attest_nar_source_bytes_total", "Bytes of verified NAR files fetched from a source, by source URL.",
      {"source"});
  CounterFamily& mismatches = metrics_->AddCounter(
      "attest_nar_source_mismatches_total",
      "Narinfos or NAR files from a source that contradicted the confirmed contents (a bad source), by URL.",
      {"source"});
  CounterFamily& failures = metrics_->AddCounter(
      "attest_nar_source_failures_total",
      "Requests to a source that got no usable answer (unreachable, timed out, broken), by URL.", {"source"});
  absl::StatusOr<std::unique_ptr<storage::BinaryCache>> opened =
      storage::BinaryCache::Open(spec.url, options_.cache_options);
  if (!opened.ok()) {
    return absl::InvalidArgumentError(Cat("NAR source ", spec.url, ": ", StdView(opened.status().message())));
  }
  auto source = std::make_shared<Source>();
  source->cache = *std::move(opened);
  source->fetched_paths = &paths.Labels({spec.url});
  source->fetched_bytes = &bytes.Labels({spec.url});
  source->mismatches = &mismatches.Labels({spec.url});
  source->failures = &failures.Labels({spec.url});
  {
    absl::MutexLock lock(&source->mu);
    source->status.spec = spec;
  }
  source->spec = std::move(spec);
  return source;
}

absl::Status NarRelay::SetSources(std::vector<NarSourceSpec> sources) {
  const std::shared_ptr<const SourceList> before = Sources();
  auto next = std::make_shared<SourceList>();
  for (NarSourceSpec& spec : sources) {
    std::shared_ptr<Source> kept;
    for (const std::shared_ptr<Source>& known : *before) {
      const NarSourceSpec& k = known->spec;
      if (k.url == spec.url && k.kind == spec.kind && k.operator_name == spec.operator_name &&
          k.priority == spec.priority) {
        kept = known;
        break;
      }
    }
    if (kept == nullptr) {
      absl::StatusOr<std::shared_ptr<Source>> opened = OpenSource(std::move(spec));
      if (!opened.ok()) return opened.status();
      kept = *std::move(opened);
    }
    next->push_back(std::move(kept));
  }
  absl::MutexLock lock(&sources_mu_);
  // Checked under the lock Cancel takes, so a source opened here is never missed by a Cancel.
  if (cancelled_.load()) return absl::UnavailableError("the node is stopping");
  sources_ = std::move(next);
  return absl::OkStatus();
}

std::shared_ptr<const NarRelay::SourceList> NarRelay::Sources() const {
  absl::MutexLock lock(&sources_mu_);
  return sources_ ? sources_ : std::make_shared<const SourceList>();
}

std::vector<NarRelay::Source*> NarRelay::EligibleSources(const SourceList& sources,
                                                         std::span<const std::string> confirming) {
  std::vector<Source*> eligible;
  for (const std::string& name : confirming) {
    for (const auto& source : sources) {
      if (source->spec.kind == NarSourceKind::kOperator && source->spec.operator_name == name) {
        eligible.push_back(source.get());
      }
    }
  }
  for (const auto& source : sources) {
    if (source->spec.kind != NarSourceKind::kOperator) eligible.push_back(source.get());
  }
  return eligible;
}

void NarRelay::NoteContact(Source& source, const absl::Status& status) {
  const bool answered = status.ok() || status.code() == absl::StatusCode::kNotFound;
  if (!answered) source.failures->Increment();
  absl::MutexLock lock(&source.mu);
  if (answered) {
    if (!source.status.reachable) LogInfo(Cat("NAR source ", source.spec.url, " answers again"));
    source.status.reachable = true;
    return;
  }
  if (source.status.reachable) {
    LogWarning(Cat("NAR source ", source.spec.url, " failed: ", StdView(status.message()),
                   "; the next source is tried until it answers again"));
  }
  source.status.reachable = false;
  source.status.last_error = std::string(status.message());
  source.status.last_error_unix = absl::ToUnixSeconds(clock_());
}

void NarRelay::NoteMismatch(Source& source, const consensus::StorePath& path, std::string what) {
  source.mismatches->Increment();
  LogWarning(Cat("NAR source ", source.spec.url,
                 source.spec.kind == NarSourceKind::kOperator ? Cat(" (operator ", source.spec.operator_name, ")")
                                                              : std::string(),
                 " contradicts the confirmed contents of ", path.full(), ": ", what,
                 "; it is skipped for this path"));
  absl::MutexLock lock(&source.mu);
  ++source.status.mismatches;
  source.status.last_mismatch = Cat(path.full(), ": ", what);
  source.status.last_mismatch_unix = absl::ToUnixSeconds(clock_());
}

absl::StatusOr<consensus::NarInfo> NarRelay::SourceNarInfo(Source& source, std::string_view hash_part) {
  const absl::Time now = clock_();
  {
    absl::MutexLock lock(&source.mu);
    auto it = source.memo.find(std::string(hash_part));
    if (it != source.memo.end() && now < it->second.expires) {
      if (!it->second.status.ok()) return it->second.status;
      return *it->second.narinfo;
    }
  }
  if (cancelled_.load()) return absl::UnavailableError("the node is stopping");
  absl::StatusOr<std::string> text = source.cache->FetchNarInfo(hash_part);
  NoteContact(source, text.status());
  Source::Memo memo;
  if (text.ok()) {
    absl::StatusOr<consensus::NarInfo> parsed =
        consensus::ParseNarInfo(*text, Cat(source.spec.url, "/", hash_part, ".narinfo"));
    if (!parsed.ok()) {
      memo.status = absl::NotFoundError(Cat(source.spec.url, ": invalid narinfo: ", StdView(parsed.status().message())));
    } else if (parsed->claim.path.hash_part() != hash_part) {
      memo.status = absl::NotFoundError(
          Cat(source.spec.url, "/", hash_part, ".narinfo names another store path, ", parsed->claim.path.full()));
    } else {
      parsed->signatures.clear();  // a source's own signatures are not passed on
      memo.narinfo = std::make_shared<const consensus::NarInfo>(*std::move(parsed));
    }
  } else {
    memo.status = text.status().code() == absl::StatusCode::kNotFound
                      ? absl::NotFoundError(Cat(source.spec.url, " has no ", hash_part, ".narinfo"))
                      : absl::Status(text.status().code(), Cat(source.spec.url, ": ", StdView(text.status().message())));
  }
  const bool found = memo.status.ok();
  memo.expires = now + (found ? options_.found_ttl : options_.missing_ttl);
  absl::MutexLock lock(&source.mu);
  if (source.memo.size() >= kMaxMemoEntries) source.memo.clear();
  auto& slot = source.memo[std::string(hash_part)];
  slot = std::move(memo);
  if (!slot.status.ok()) return slot.status;
  return *slot.narinfo;
}

absl::StatusOr<consensus::NarInfo> NarRelay::FindNarInfo(std::string_view hash_part) {
  std::vector<std::string> failures;
  const std::shared_ptr<const SourceList> sources = Sources();
  for (const auto& source : *sources) {
    absl::StatusOr<consensus::NarInfo> narinfo = SourceNarInfo(*source, hash_part);
    if (narinfo.ok()) return narinfo;
    if (narinfo.status().code() != absl::StatusCode::kNotFound) failures.emplace_back(narinfo.status().message());
  }
  if (!failures.empty()) {
    return absl::UnavailableError(Cat("no source has ", hash_part, ".narinfo and some could not be asked: ",
                                      absl::StrJoin(failures, "; ")));
  }
  return absl::NotFoundError(Cat("no source has ", hash_part, ".narinfo"));
}

absl::StatusOr<SourcedNarInfo> NarRelay::Locate(const consensus::PathInfo& confirmed,
                                                std::span<const std::string> confirming) {
  const std::string hash_part(confirmed.path.hash_part());
  const std::string fingerprint = confirmed.Fingerprint();
  std::vector<std::string> reasons;
  bool unavailable = false;
  const std::shared_ptr<const SourceList> sources = Sources();
  for (Source* source : EligibleSources(*sources, confirming)) {
    absl::StatusOr<consensus::NarInfo> narinfo = SourceNarInfo(*source, hash_part);
    if (!narinfo.ok()) {
      unavailable |= narinfo.status().code() != absl::StatusCode::kNotFound;
      reasons.emplace_back(narinfo.status().message());
      continue;
    }
    if (narinfo->claim.Fingerprint() != fingerprint) {
      bool note = false;
      {
        absl::MutexLock lock(&source->mu);
        auto it = source->memo.find(hash_part);
        if (it != source->memo.end() && !it->second.mismatch_noted) {
          it->second.mismatch_noted = true;
          note = true;
        }
      }
      if (note) {
        NoteMismatch(*source, confirmed.path,
                     Cat("its narinfo says ", consensus::QuoteForError(narinfo->claim.Fingerprint()),
                         ", the builders agreed on ", consensus::QuoteForError(fingerprint)));
      }
      reasons.push_back(Cat(source->spec.url, ": its narinfo describes other contents"));
      continue;
    }
    if (!storage::SourceNarFileName(narinfo->url, source->spec.url)) {
      reasons.push_back(Cat(source->spec.url, ": its narinfo's URL ", consensus::QuoteForError(narinfo->url),
                            " is not under its own nar/"));
      continue;
    }
    {
      absl::MutexLock lock(&source->mu);
      ++source->status.narinfos_found;
    }
    return SourcedNarInfo{.narinfo = *std::move(narinfo), .source_url = source->spec.url};
  }
  const std::string message = Cat("no source of the confirming operators, no mirror", " holds ", confirmed.path.full(),
                                  reasons.empty() ? std::string() : Cat(": ", absl::StrJoin(reasons, "; ")));
  return unavailable ? absl::UnavailableError(message) : absl::NotFoundError(message);
}

absl::StatusOr<storage::NarCache::Hit> NarRelay::Reverify(storage::NarCache::Hit hit,
                                                          const consensus::PathInfo& confirmed,
                                                          const std::string& key) {
  // A file this process did not write: hashed once before it is served.
  absl::StatusOr<std::unique_ptr<storage::NarVerifier>> verifier = storage::NarVerifier::Create(
      storage::NarFileExpectation{.compression = "none",
                                  .nar_hash = confirmed.nar_hash,
                                  .nar_size = confirmed.nar_size,
                                  .file_hash = std::nullopt,
                                  .file_size = std::nullopt});
  if (!verifier.ok()) return verifier.status();
  std::vector<uint8_t> buffer(256 * 1024);
  absl::Status status;
  while (status.ok()) {
    const ssize_t n = ::read(hit.fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = absl::UnavailableError(Cat("reading the cached NAR ", key, ": ", std::strerror(errno)));
      break;
    }
    if (n == 0) {
      status = (*verifier)->Finish();
      break;
    }
    status = (*verifier)->Feed(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)));
  }
  if (!status.ok()) {
    LogWarning(Cat("NAR cache: ", key, " no longer verifies (", StdView(status.message()), "); fetched again"));
    cache_->Remove(key);
    return status;
  }
  if (::lseek(hit.fd.get(), 0, SEEK_SET) != 0) {
    return absl::UnavailableError(Cat("rewinding the cached NAR ", key, ": ", std::strerror(errno)));
  }
  cache_->MarkVerified(key);
  hit.verified = true;
  return hit;
}

absl::StatusOr<storage::NarCache::Hit> NarRelay::Fetch(const consensus::PathInfo& confirmed,
                                                       std::span<const std::string> confirming) {
  if (confirmed.nar_size > options_.max_nar_bytes) {
    return absl::FailedPreconditionError(Cat(confirmed.path.full(), " has a NAR of ", confirmed.nar_size,
                                             " bytes, more than the relay takes (max_nar_mib in [gateway])"));
  }
  const std::string key = CacheKey(confirmed);
  for (int round = 0; round < 2; ++round) {
    if (std::optional<storage::NarCache::Hit> hit = cache_->Lookup(key)) {
      if (hit->verified) return *std::move(hit);
      absl::StatusOr<storage::NarCache::Hit> reverified = Reverify(*std::move(hit), confirmed, key);
      if (reverified.ok()) return reverified;
    }
    std::shared_ptr<Flight> flight;
    bool leader = false;
    {
      absl::MutexLock lock(&flights_mu_);
      auto [it, inserted] = flights_.try_emplace(key, nullptr);
      if (inserted) {
        it->second = std::make_shared<Flight>();
        leader = true;
      }
      flight = it->second;
    }
    if (!leader) {
      flight->done.WaitForNotification();
      if (!flight->status.ok()) return flight->status;
      continue;  // the leader's file is in the cache now (or was evicted at once: fetch again)
    }
    absl::StatusOr<storage::NarCache::Hit> fetched = FetchUncached(confirmed, confirming, key);
    {
      absl::MutexLock lock(&flights_mu_);
      flights_.erase(key);
    }
    flight->status = fetched.status();
    flight->done.Notify();
    return fetched;
  }
  return absl::UnavailableError(Cat("the NAR of ", confirmed.path.full(), " was evicted from the cache as soon as it "
                                    "was fetched (nar_cache_mib in [gateway] is too small for the load)"));
}

absl::StatusOr<storage::NarCache::Hit> NarRelay::FetchUncached(const consensus::PathInfo& confirmed,
                                                               std::span<const std::string> confirming,
                                                               const std::string& key) {
  // A fetch slot, or UNAVAILABLE after slot_wait.
  {
    absl::MutexLock lock(&slots_mu_);
    const absl::Time deadline = absl::Now() + options_.slot_wait;
    if (!slots_mu_.AwaitWithDeadline(absl::Condition(this, &NarRelay::SlotFreeOrCancelled), deadline) ||
        cancelled_.load()) {
      return absl::UnavailableError(Cat("all ", options_.max_concurrent_fetches,
                                        " NAR fetch slots stayed busy (nar_fetches in [gateway])"));
    }
    ++slots_in_use_;
  }
  struct SlotRelease {
    NarRelay* relay;
    ~SlotRelease() {
      absl::MutexLock lock(&relay->slots_mu_);
      --relay->slots_in_use_;
    }
  } release{this};

  const std::string hash_part(confirmed.path.hash_part());
  const std::string fingerprint = confirmed.Fingerprint();
  std::vector<std::string> reasons;
  bool unavailable = false;
  const std::shared_ptr<const SourceList> sources = Sources();
  for (Source* source : EligibleSources(*sources, confirming)) {
    if (cancelled_.load()) return absl::UnavailableError("the node is stopping");
    absl::StatusOr<consensus::NarInfo> narinfo = SourceNarInfo(*source, hash_part);
    if (!narinfo.ok()) {
      unavailable |= narinfo.status().code() != absl::StatusCode::kNotFound;
      reasons.emplace_back(narinfo.status().message());
      continue;
    }
    if (narinfo->claim.Fingerprint() != fingerprint) {
      reasons.push_back(Cat(source->spec.url, ": its narinfo describes other contents"));
      continue;
    }
    absl::StatusOr<storage::NarCache::Hit> hit = FetchFrom(*source, confirmed, *narinfo, key);
    if (hit.ok()) return hit;
    // A source whose bytes failed verification answered NOT_FOUND; anything else (down, broken
    // transfer, no room in the cache) may pass.
    unavailable |= hit.status().code() != absl::StatusCode::kNotFound;
    reasons.push_back(Cat(source->spec.url, ": ", StdView(hit.status().message())));
  }
  const std::string message = Cat("no eligible source delivered the NAR of ", confirmed.path.full(),
                                  reasons.empty() ? std::string() : Cat(": ", absl::StrJoin(reasons, "; ")));
  return unavailable ? absl::UnavailableError(message) : absl::NotFoundError(message);
}

absl::StatusOr<storage::NarCache::Hit> NarRelay::FetchFrom(Source& source, const consensus::PathInfo& confirmed,
                                                           const consensus::NarInfo& narinfo, const std::string& key) {
  std::optional<std::string> file = storage::SourceNarFileName(narinfo.url, source.spec.url);
  if (!file) return absl::NotFoundError(Cat("its narinfo's URL ", consensus::QuoteForError(narinfo.url),
                                            " is not under its own nar/"));
  storage::NarFileExpectation expected{.compression = narinfo.compression,
                                       .nar_hash = confirmed.nar_hash,
                                       .nar_size = confirmed.nar_size,
                                       .file_hash = std::nullopt,
                                       .file_size = narinfo.file_size};
  if (!narinfo.file_hash.empty()) {
    absl::StatusOr<consensus::NarHash> file_hash = consensus::NarHash::Parse(narinfo.file_hash);
    if (file_hash.ok()) expected.file_hash = *file_hash;
  }
  absl::StatusOr<std::unique_ptr<storage::NarVerifier>> verifier = storage::NarVerifier::Create(expected);
  if (!verifier.ok()) return absl::NotFoundError(Cat("cannot check its NAR: ", StdView(verifier.status().message())));
  absl::StatusOr<std::unique_ptr<storage::NarCache::Writer>> writer = cache_->Begin(key, confirmed.nar_size);
  if (!writer.ok()) return writer.status();
  (*verifier)->SetNarSink([&writer](std::span<const uint8_t> nar) { return (*writer)->Append(nar); });

  // The verifier's verdict is kept apart from the transport's: only bytes that contradict the
  // confirmed contents make a bad source; a connection that broke is a failure, not evidence. One
  // byte past the largest file the narinfo allows reaches the verifier, so an overlong file is its
  // finding too.
  const uint64_t max_bytes = MaxFileBytes(narinfo) + 1;
  absl::Status verdict;
  absl::Status status = source.cache->FetchNarFile(*file, max_bytes, [&](std::span<const uint8_t> bytes) {
    verdict = (*verifier)->Feed(bytes);
    return verdict;
  });
  if (status.ok()) {
    verdict = (*verifier)->Finish();
    status = verdict;
  } else if (verdict.ok() && status.code() == absl::StatusCode::kDataLoss && (*verifier)->file_bytes() + 1 >= max_bytes) {
    verdict = absl::DataLossError(Cat("the file is longer than ", max_bytes - 1, " bytes, more than a NAR of ",
                                      confirmed.nar_size, " bytes can take"));
    status = verdict;
  }
  const bool contradicts = !verdict.ok() && verdict.code() == absl::StatusCode::kDataLoss;
  NoteContact(source, contradicts ? absl::OkStatus() : status);
  if (contradicts) {
    NoteMismatch(source, confirmed.path, Cat("its nar/", *file, ": ", StdView(verdict.message())));
    absl::MutexLock lock(&source.mu);
    source.memo[std::string(confirmed.path.hash_part())] =
        Source::Memo{.status = absl::NotFoundError(Cat(source.spec.url, " served bytes that failed verification")),
                     .narinfo = nullptr,
                     .expires = clock_() + options_.missing_ttl,
                     .mismatch_noted = true};
    return absl::NotFoundError(Cat("its bytes failed verification: ", StdView(verdict.message())));
  }
  if (!status.ok()) return status;
  if (absl::Status s = (*writer)->Commit(); !s.ok()) return s;
  source.fetched_paths->Increment();
  source.fetched_bytes->Increment((*verifier)->file_bytes());
  {
    absl::MutexLock lock(&source.mu);
    ++source.status.paths_served;
    source.status.bytes_served += (*verifier)->file_bytes();
  }
  std::optional<storage::NarCache::Hit> hit = cache_->Lookup(key);
  if (!hit) return absl::UnavailableError("the verified NAR was evicted from the cache at once (nar_cache_mib)");
  return *std::move(hit);
}

bool NarRelay::SlotFreeOrCancelled() const {
  return slots_in_use_ < options_.max_concurrent_fetches || cancelled_.load();
}

std::vector<NarSourceStatus> NarRelay::Status() const {
  std::vector<NarSourceStatus> statuses;
  const std::shared_ptr<const SourceList> sources = Sources();
  for (const auto& source : *sources) {
    absl::MutexLock lock(&source->mu);
    statuses.push_back(source->status);
  }
  return statuses;
}

void NarRelay::Cancel() {
  std::shared_ptr<const SourceList> sources;
  {
    absl::MutexLock lock(&sources_mu_);
    cancelled_.store(true);
    sources = sources_;
  }
  if (sources) {
    for (const auto& source : *sources) source->cache->Cancel();
  }
  absl::MutexLock lock(&slots_mu_);  // wakes slot waiters so they see the cancel
}

}  // namespace attest::server
