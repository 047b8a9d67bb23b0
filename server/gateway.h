// Gateway: the Nix binary-cache protocol in front of an upstream cache, serving only what reached quorum.
//
//   GET /nix-cache-info      StoreDir, WantMassQuery: 1, Priority (from the config)
//   GET /<hash>.narinfo      200 only when the path is CONFIRMED and the upstream narinfo's fingerprint
//                            equals the confirmed one; the answer carries the agreeing builders' Sig:
//                            lines plus one by the node key, and a URL under nar/ on this node.
//                            Everything else is 404 (unknown, pending, disputed, upstream mismatch,
//                            upstream missing or failing, storage failing): Nix then builds instead.
//   GET /nar/<file>          the NAR file from the upstream (sent from disk for file://, relayed as it
//                            arrives for http); 404 when the upstream has none or fails (Nix treats a
//                            NAR 404 as "substitute gone" and builds), 400 for a name that could leave
//                            nar/.
//   GET /realisations/<sha256:hex!output>.doi        (Nix 2.8 up to 2.34; ':' and '!' raw or %-encoded)
//   GET /build-trace-v2/<drv base name>/<output>.doi (Nix 2.35 and later)
//                            200 (application/json) only when the realisation is CONFIRMED (TallyRealisation
//                            under the current policy, excluded builders left out): the .doi in Nix's
//                            format carrying the counted signatures of the confirmed fingerprint plus the
//                            node's over the same fingerprint. Otherwise 404 with the reason (UNKNOWN,
//                            PENDING and what it needs, DISPUTED, storage failing): never 5xx for an
//                            absent realisation, since Nix counts any other error as a failed
//                            substitution and stops instead of building. 400 for a path that is not a
//                            realisation key.
//
// CA output paths. A path whose own tally is PENDING is served anyway, as if CONFIRMED on its one
// fingerprint, when (a) a realisation mapping to it is CONFIRMED, (b) some operator that agreed on that
// realisation signed the path's fingerprint, and (c) the narinfo's CA: field (recursive sha256, the form
// CA derivations produce) really gives this store path from its hash, name and references. Then Nix
// checks the NAR against the CA hash itself, so the realisation's quorum is all the trust needed; the
// path's NAR hash is still attested as for any path. UNKNOWN and DISPUTED paths are never served this
// way (fail closed).
//
// Caching. One bounded table (max_entries, least recently used evicted) keyed by hash part holds what
// the upstream said (found with positive_ttl, missing with negative_ttl, failing with failure_ttl) and
// the rendered answer. A cached answer is used only while its upstream part is fresh and no attestation
// of that path was committed since it was computed: the ingest writer calls PathsChanged after every
// commit, which drops the answers of those paths, and an answer computed from a read that raced with a
// commit is not kept. So a verdict change is visible to the next request. Realisation answers have a
// table of their own (keyed by the key's canonical text, same bound): RealisationsChanged drops those
// of the keys written and the narinfo answers of their output paths; a cached realisation answer is
// also recomputed after negative_ttl (404) or positive_ttl (200) at the latest. Concurrent misses on the
// same hash share one upstream fetch. Cache hits are answered on the event thread without blocking;
// misses run on the HTTP server's job pool.
//
// Sources (relay mode, GatewayOptions::relay set: the node has operator caches or [[source]] mirrors).
// The narinfo is attest's own: the store path a source's narinfo names is tallied; for a CONFIRMED
// path some eligible source (server/nar_relay.h) must hold a narinfo with exactly the confirmed
// contents, and the answer is
//   StorePath, NarHash, NarSize, References   the confirmed claim
//   URL: nar/<hash part>-<nar hash>.nar       this node's own NAR route
//   Compression: none, FileHash/FileSize      the NAR itself: the relay serves it uncompressed, so any
//                                             source may deliver it whatever its own compression
//   Deriver, CA                               from the source's narinfo (not covered by signatures)
//   Sig:                                      the agreeing builders' and the node's, as above.
// GET /nar/<hash part>-<nar hash>.nar serves the verified NAR from the relay's cache (fetched on a
// miss, on the HTTP job pool). 404 whenever the bytes cannot be had or verified: Nix then builds.
//
// Thread-safe. Policy, store and node key are borrowed and must outlive the Gateway.
#ifndef ATTEST_SERVER_GATEWAY_H_
#define ATTEST_SERVER_GATEWAY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consensus/keys.h"
#include "consensus/narinfo.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "consensus/tally.h"
#include "server/policy_book.h"
#include "consensus/store_path.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/nar_relay.h"
#include "server/resolution_book.h"
#include "server/upstream.h"
#include "storage/ledger.h"

namespace attest::server {

struct GatewayOptions final {
  int priority = 30;                               // /nix-cache-info Priority (lower is preferred)
  absl::Duration positive_ttl = absl::Hours(1);    // upstream narinfo found
  absl::Duration negative_ttl = absl::Minutes(1);  // upstream has no such narinfo (or an invalid one)
  absl::Duration failure_ttl = absl::Seconds(5);   // upstream unreachable or failing
  size_t max_entries = 50000;                      // cached hash parts (about 2 KiB each at most)
  // Statements excluding builders (null: nobody is excluded); borrowed.
  const ResolutionBook* resolutions = nullptr;
  // Where attest_gateway_requests_total goes; borrowed. Null: a registry of its own.
  MetricsRegistry* metrics = nullptr;
  // The relay mode (borrowed; see "Sources" above): narinfos and NARs come from the relay's sources,
  // and the upstream passed to the constructor is unused (it may be null).
  NarRelay* relay = nullptr;
  // Demand (server/demand_book.h). `on_not_confirmed` is told of every narinfo request answered 404
  // because the path is UNKNOWN, PENDING or DISPUTED, with the client's address; it runs on the HTTP
  // threads and must not block. When no upstream or source knows the hash part, `path_of_hash_part`
  // (blocking, called on the job pool) may still name the path (a stored derivation lists it), whose
  // tally then decides. Either may be null.
  std::function<void(const consensus::StorePath& path, std::string_view client)> on_not_confirmed;
  std::function<std::optional<consensus::StorePath>(std::string_view hash_part)> path_of_hash_part;
};

struct GatewayStats final {
  uint64_t cache_hits = 0;        // narinfo requests answered from the table
  uint64_t upstream_fetches = 0;  // narinfo fetches sent upstream
  uint64_t tallies = 0;           // verdicts computed from the store
  size_t entries = 0;
};

class Gateway final {
 public:
  using Clock = std::function<absl::Time()>;

  Gateway(const PolicyBook& policy, storage::Ledger* store, const consensus::SecretKey& node_key,
          std::unique_ptr<Upstream> upstream, Clock clock, GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Adds /nix-cache-info, /nar/, /realisations/, /build-trace-v2/ and /<hash>.narinfo (the "/" prefix:
  // other top-level paths are 404).
  void AddRoutes(HttpRouter& router);

  // For shutdown, before the HTTP server stops: upstream transfers end now, so no job waits for them.
  void Stop();

  // The ingest hook: attestations of `paths` were committed; their cached answers are dropped.
  void PathsChanged(std::span<const consensus::StorePath> paths);
  // Any verdict may have changed (a maintainer's statement excluded builders, a policy was adopted):
  // every answer, narinfo and realisation, is recomputed on its next request.
  void VerdictsChanged();
  // The ingest hook for realisations: attestations of `claims` were committed; the cached answers of
  // their keys and of their output paths' narinfos (a CA path may now be served) are dropped.
  void RealisationsChanged(std::span<const consensus::Realisation> claims);

  // The handlers, by request path ("/nix-cache-info", "/<hash>.narinfo", "/nar/<file>").
  HttpResponse CacheInfo() const;
  HttpReply NarInfo(std::string_view request_path, std::string_view client = {});
  HttpReply Nar(std::string_view request_path);
  // "/realisations/<key>.doi" or "/build-trace-v2/<drv base name>/<output>.doi".
  HttpReply Realisation(std::string_view request_path);

  GatewayStats stats() const;

  // The relay's sources (empty without a relay).
  std::vector<NarSourceStatus> SourceStatus() const;

 private:
  struct RelayTarget;
  struct UpstreamAnswer;
  struct Entry;
  struct Flight;
  struct RealisationEntry;
  struct CaEvidence;
  enum class Answer;  // what a request was answered, for attest_gateway_requests_total

  void Count(Answer answer) const;

  // The whole miss path (blocking): upstream (cached or fetched), tally, render, cache.
  // `client` asked for the narinfo (its address counts demand); null when nobody did (a NAR request).
  HttpResponse Resolve(const std::string& hash_part, const std::string* client);
  // The path of a hash part no upstream or source knows, when options_.path_of_hash_part names one and
  // it is not CONFIRMED (so a 404 for it is demand); nullopt otherwise. Blocking.
  std::optional<consensus::StorePath> UnconfirmedPathOf(const std::string& hash_part);
  // The realisation answer for `key` (blocking): store read, tally, render, cache.
  HttpResponse ResolveRealisation(const consensus::RealisationKey& key);
  // For a path whose own tally is PENDING: the operators of a CONFIRMED realisation mapping to it
  // that also signed the path's one fingerprint (and that realisation's key), or nullopt. Blocking.
  std::optional<CaEvidence> ConfirmedRealisationOf(const consensus::Policy& policy, const consensus::NarInfo& narinfo,
                                                   const consensus::FingerprintTally& path_side);
  void InsertRealisation(const std::string& key, std::shared_ptr<const RealisationEntry> entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<const UpstreamAnswer> UpstreamFor(const std::string& hash_part, absl::Time now);
  std::shared_ptr<const UpstreamAnswer> Fetch(const std::string& hash_part, absl::Time now);
  std::shared_ptr<const UpstreamAnswer> FetchFromRelay(const std::string& hash_part, absl::Time now);
  HttpResponse RelayNar(const std::string& file);
  void Insert(const std::string& hash_part, std::shared_ptr<const Entry> entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictSome(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteUpstreamHealth(const absl::Status& status);

  const PolicyBook& policy_;  // asked for the current policy once per tally
  storage::Ledger* const store_;
  const consensus::SecretKey& node_key_;
  const std::unique_ptr<Upstream> upstream_;
  const Clock clock_;
  const GatewayOptions options_;
  const std::string cache_info_;
  std::unique_ptr<MetricsRegistry> own_metrics_;  // when options.metrics is null
  std::vector<Counter*> answers_;                 // by Answer

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Entry>> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(mu_);
  // Realisation answers by the key's canonical text.
  absl::flat_hash_map<std::string, std::shared_ptr<const RealisationEntry>> realisations_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // commits seen through PathsChanged

  absl::Mutex health_mu_;
  bool upstream_healthy_ ABSL_GUARDED_BY(health_mu_) = true;

  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> upstream_fetches_{0};
  std::atomic<uint64_t> tallies_{0};
};

// The URL a gateway narinfo carries for an upstream narinfo's `url`: "nar/<file>" when the NAR is under
// the upstream's nar/ (relative, or absolute below `upstream_url`), the URL itself when it is absolute
// elsewhere (Nix fetches it there and checks the bytes); nullopt when it cannot be served.
std::optional<std::string> GatewayNarUrl(std::string_view url, std::string_view upstream_url);

// Whether `ca` (a narinfo's CA: field) gives `claim.path` from its hash, name and references, as Nix's
// makeFixedOutputPath computes a content-addressed path: only "fixed:r:sha256:<nix32>" (recursive
// sha256, what CA derivations produce) is understood; false for anything else (fail closed).
bool ContentAddressGivesPath(std::string_view ca, const consensus::PathInfo& claim);

}  // namespace attest::server

#endif  // ATTEST_SERVER_GATEWAY_H_
