// NarRelay: the bytes behind the gateway's CONFIRMED paths, from the caches of the builders that agree,
// verified before any byte leaves the node.
//
// Sources, in the order they are tried for a path:
//   1. the caches of the operators on the confirmed side (the policy's `caches`; operators in the order
//      the tally lists them, each operator's caches in its own order),
//   2. the node's own [[source]] mirrors (priority, lower first; then file order),
//   3. the [gateway] upstream, when one is set.
// The caches of operators that are not on the confirmed side are never asked for that path's bytes:
// they attested other contents, or nothing.
//
// A narinfo request asks the sources in that order for "<hash>.narinfo" until one describes exactly the
// confirmed contents (path, NarHash, NarSize, references) with a NAR file under its own nar/. A NAR
// request (Fetch) then takes the NAR file from such a source through NarVerifier into the NarCache,
// decompressed, and hands out the verified file; the gateway serves it with `Compression: none`, so
// which source delivered it does not change what the client receives (and failing over from an xz
// cache to a zstd cache needs no new narinfo). Fetches of one NAR share one transfer.
//
// A source whose narinfo or bytes contradict the confirmed contents is evidence of a bad source: it is
// recorded (attest_nar_source_mismatches_total, a log line, its status) and skipped for that path
// until its answer expires; the next source is tried. A source that is down, slow or stalls is skipped
// the same way, without a mismatch. Nothing a request or an attestation says makes the relay fetch
// another address: it only ever reads the URLs it was given (the policy's caches and the node config's
// mirrors and upstream, at creation and by SetSources).
//
// Bounded: at most max_concurrent_fetches NAR transfers at once (further distinct NARs wait up to
// slot_wait, then get UNAVAILABLE); each transfer takes at most the BinaryCache's transfer timeout; a
// NAR larger than max_nar_bytes is never fetched (FAILED_PRECONDITION: the gateway answers 404 and the
// client builds); memory per transfer is NarVerifier's buffer and decoder state plus libcurl's buffer.
//
// The sources can be replaced while the relay runs (SetSources: a policy update changed the operators'
// caches); each request reads the list once, so it finishes with the sources it began with.
//
// Thread-safe. Fetch blocks (it runs on the HTTP server's job pool).
#ifndef ATTEST_SERVER_NAR_RELAY_H_
#define ATTEST_SERVER_NAR_RELAY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consensus/narinfo.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "server/metrics.h"
#include "server/nar_source_status.h"
#include "storage/binary_cache.h"
#include "storage/nar_cache.h"

namespace attest::server {

// The sources of a node: every operator cache of the policy (policy order), then `mirrors` sorted by
// priority (stable), then the upstream ("" for none). A URL listed twice is kept at its first place.
std::vector<NarSourceSpec> NarSourcesOf(const consensus::Policy& policy, std::span<const NarSourceSpec> mirrors,
                                        std::string_view upstream);

struct NarRelayOptions final {
  storage::BinaryCacheOptions cache_options;
  int max_concurrent_fetches = 16;
  absl::Duration slot_wait = absl::Seconds(30);
  uint64_t max_nar_bytes = uint64_t{4} << 30;  // capped at the NarCache's max_bytes
  absl::Duration found_ttl = absl::Hours(1);    // how long a source's matching narinfo is believed
  absl::Duration missing_ttl = absl::Minutes(1);  // ... its 404, mismatch or failure
};

// Where a CONFIRMED path's narinfo came from: the fields the gateway's narinfo takes from a source.
struct SourcedNarInfo final {
  consensus::NarInfo narinfo;  // its claim equals the confirmed one
  std::string source_url;
};

class NarRelay final {
 public:
  using Clock = std::function<absl::Time()>;

  // INVALID_ARGUMENT: a source URL BinaryCache refuses (names it), or no sources. `cache` and `metrics`
  // are borrowed and must outlive the relay.
  static absl::StatusOr<std::unique_ptr<NarRelay>> Create(std::vector<NarSourceSpec> sources,
                                                          storage::NarCache* cache, MetricsRegistry* metrics,
                                                          Clock clock, NarRelayOptions options);
  ~NarRelay();
  NarRelay(const NarRelay&) = delete;
  NarRelay& operator=(const NarRelay&) = delete;

  // The first parseable narinfo about `hash_part` any source has, in source order (to learn which
  // store path a hash part names before the tally). NOT_FOUND: no source has one; UNAVAILABLE: none
  // has one and at least one could not be asked.
  absl::StatusOr<consensus::NarInfo> FindNarInfo(std::string_view hash_part);

  // A narinfo from an eligible source (the `confirming` operators' caches, mirrors, the upstream)
  // describing exactly `confirmed`. NOT_FOUND / UNAVAILABLE as above, with the reasons per source in
  // the message.
  absl::StatusOr<SourcedNarInfo> Locate(const consensus::PathInfo& confirmed,
                                        std::span<const std::string> confirming);

  // The verified NAR of `confirmed` (uncompressed, exactly NarSize bytes hashing to NarHash), from
  // the cache or fetched now from the eligible sources in order. NOT_FOUND: no eligible source holds
  // it (or every one that did failed verification); UNAVAILABLE: sources could not be reached, or no
  // fetch slot came free; FAILED_PRECONDITION: larger than max_nar_bytes.
  absl::StatusOr<storage::NarCache::Hit> Fetch(const consensus::PathInfo& confirmed,
                                               std::span<const std::string> confirming);

  // Replaces the sources (NarSourcesOf of the policy now in force, with the node's mirrors and upstream).
  // A source with the same URL, kind, operator and priority as before keeps its status, counts and
  // remembered answers; a new one starts fresh; a dropped one is no longer asked. INVALID_ARGUMENT
  // naming a URL BinaryCache refuses (nothing changes then); UNAVAILABLE after Cancel. An empty list is
  // allowed: every lookup is NOT_FOUND until sources come back.
  absl::Status SetSources(std::vector<NarSourceSpec> sources);

  std::vector<NarSourceStatus> Status() const;
  // The largest NAR relayed (NarRelayOptions::max_nar_bytes, capped at the cache's bound).
  uint64_t max_nar_bytes() const { return options_.max_nar_bytes; }

  // For shutdown: transfers end now; later calls fail UNAVAILABLE.
  void Cancel();

 private:
  struct Source;
  struct Flight;
  using SourceList = std::vector<std::shared_ptr<Source>>;
  NarRelay(storage::NarCache* cache, MetricsRegistry* metrics, Clock clock, NarRelayOptions options);

  absl::StatusOr<std::shared_ptr<Source>> OpenSource(NarSourceSpec spec) const;
  // The sources now; a request holds this snapshot while it uses them.
  std::shared_ptr<const SourceList> Sources() const;
  static std::vector<Source*> EligibleSources(const SourceList& sources, std::span<const std::string> confirming);
  absl::StatusOr<consensus::NarInfo> SourceNarInfo(Source& source, std::string_view hash_part);
  absl::StatusOr<storage::NarCache::Hit> FetchFrom(Source& source, const consensus::PathInfo& confirmed,
                                                   const consensus::NarInfo& narinfo, const std::string& key);
  absl::StatusOr<storage::NarCache::Hit> FetchUncached(const consensus::PathInfo& confirmed,
                                                       std::span<const std::string> confirming,
                                                       const std::string& key);
  absl::StatusOr<storage::NarCache::Hit> Reverify(storage::NarCache::Hit hit, const consensus::PathInfo& confirmed,
                                                  const std::string& key);
  bool SlotFreeOrCancelled() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(slots_mu_);
  void NoteContact(Source& source, const absl::Status& status);
  void NoteMismatch(Source& source, const consensus::StorePath& path, std::string what);

  storage::NarCache* const cache_;
  MetricsRegistry* const metrics_;
  const Clock clock_;
  const NarRelayOptions options_;
  mutable absl::Mutex sources_mu_;
  std::shared_ptr<const SourceList> sources_ ABSL_GUARDED_BY(sources_mu_);

  absl::Mutex flights_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(flights_mu_);
  mutable absl::Mutex slots_mu_;
  int slots_in_use_ ABSL_GUARDED_BY(slots_mu_) = 0;
  std::atomic<bool> cancelled_{false};
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_NAR_RELAY_H_
