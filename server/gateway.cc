// This file is long on purpose, for the reason below.
// The gateway's handlers (cache info, narinfo, NAR relay, realisations) share one verdict cache, its
// generation counter and its invalidation; they live together so that every answer is computed and
// dropped under the same rules.
#include "server/gateway.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "consensus/derivation_paths.h"
#include "consensus/encoding.h"
#include "consensus/nar_hash.h"
#include "consensus/tally.h"
#include "consensus/quorum.h"
#include "consensus/text.h"
#include "server/log.h"
#include "server/path_tally.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

constexpr std::string_view kNarInfoSuffix = ".narinfo";
constexpr std::string_view kNarPrefix = "/nar/";
constexpr std::string_view kRealisationsPrefix = "/realisations/";
constexpr std::string_view kBuildTracePrefix = "/build-trace-v2/";

bool IsHashPart(std::string_view text) {
  return text.size() == consensus::kStorePathHashLength && std::all_of(text.begin(), text.end(), [](char c) {
           return consensus::kNix32Alphabet.find(c) != std::string_view::npos;
         });
}

HttpResponse NotServed(std::string reason) { return HttpResponse::Text(404, std::move(reason)); }

}  // namespace

enum class Gateway::Answer {
  kCacheInfo,
  kNarInfoServed,
  kNarInfoNotNarInfo,  // a top-level path that is not <hash>.narinfo
  kNarInfoUpstreamMissing,
  kNarInfoUpstreamInvalid,
  kNarInfoUpstreamFailed,
  kNarInfoUnknown,
  kNarInfoPending,
  kNarInfoDisputed,
  kNarInfoMismatch,  // CONFIRMED, but the upstream narinfo describes other contents
  kNarInfoStoreFailed,
  kNarServed,
  kNarUpstreamMissing,
  kNarUpstreamFailed,
  kNarBadName,
  kNarInfoNoSource,  // relay mode: CONFIRMED, but no eligible source holds the confirmed contents
  kNarUnverified,    // relay mode: no eligible source delivered bytes that verified
  kNarTooLarge,      // relay mode: larger than max_nar_mib
  kNarInfoTooLarge,  // relay mode: CONFIRMED, but its NAR is larger than max_nar_mib
  kNarInfoServedCa,  // a CA path short of its own quorum, served because its realisation is CONFIRMED
  kRealisationServed,
  kRealisationBadPath,  // 400
  kRealisationUnknown,
  kRealisationPending,
  kRealisationDisputed,
  kRealisationStoreFailed,
};

namespace {

// The labels of each Gateway::Answer, in its order: route, answer.
constexpr std::pair<std::string_view, std::string_view> kAnswerLabels[] = {
    {"nix_cache_info", "served"},   {"narinfo", "served"},           {"narinfo", "not_narinfo"},
    {"narinfo", "upstream_missing"}, {"narinfo", "upstream_invalid"}, {"narinfo", "upstream_failed"},
    {"narinfo", "unknown"},          {"narinfo", "pending"},          {"narinfo", "disputed"},
    {"narinfo", "mismatch"},         {"narinfo", "store_failed"},     {"nar", "served"},
    {"nar", "upstream_missing"},     {"nar", "upstream_failed"},      {"nar", "bad_name"},
    {"narinfo", "no_source"},        {"nar", "unverified"},           {"nar", "too_large"},
    {"narinfo", "too_large"},        {"narinfo", "served_ca"},        {"realisation", "served"},
    {"realisation", "bad_path"},     {"realisation", "unknown"},      {"realisation", "pending"},
    {"realisation", "disputed"},     {"realisation", "store_failed"},
};

}  // namespace

void Gateway::Count(Answer answer) const { answers_[static_cast<size_t>(answer)]->Increment(); }

// What the upstream said about one hash part, and until when that is believed.
struct Gateway::UpstreamAnswer final {
  enum class Kind { kFound, kMissing, kInvalid, kFailed };
  Kind kind = Kind::kMissing;
  std::shared_ptr<const consensus::NarInfo> narinfo;  // kFound
  std::string nar_url;                                // kFound: the URL the gateway's narinfo carries
  std::string reason;                                 // otherwise: why there is nothing to serve
  absl::Time expires;
};

// Relay mode: what a served narinfo promised, for its /nar/ request.
struct Gateway::RelayTarget final {
  consensus::PathInfo confirmed;
  std::vector<std::string> confirming;  // operators on the confirmed side
  std::string file;                     // "<hash part>-<nar hash>.nar"
};

// One row of the table. Immutable once inserted (replaced as a whole), except for the recency stamp.
struct Gateway::Entry final {
  std::shared_ptr<const UpstreamAnswer> upstream;
  bool answered = false;                      // `body`/`reason` are the answer for the current tally
  std::shared_ptr<const std::string> body;    // the 200 narinfo; null for a 404
  std::string reason;                         // the 404's text
  Answer answer = Answer::kNarInfoServed;     // when answered
  std::shared_ptr<const RelayTarget> target;  // relay mode, when served
  std::optional<consensus::StorePath> demand_path;  // a 404 for a path short of CONFIRMED: counts as demand
  std::string ca_key;  // served as a CA path: the CONFIRMED realisation that allowed it (canonical key)
  mutable std::atomic<int64_t> last_used{0};  // unix seconds, for eviction
};

// An upstream fetch in progress; later requests for the same hash wait for it.
struct Gateway::Flight final {
  absl::Notification done;
  std::shared_ptr<const UpstreamAnswer> answer;  // set before `done`
};

// One realisation answer, immutable once inserted except for the recency stamp.
struct Gateway::RealisationEntry final {
  std::shared_ptr<const std::string> body;  // the 200 .doi; null for a 404
  std::string reason;                       // the 404's text
  Answer answer = Answer::kRealisationServed;
  absl::Time expires;
  mutable std::atomic<int64_t> last_used{0};  // unix seconds, for eviction
};

// Why a CA path short of its own quorum may be served: a CONFIRMED realisation maps to it.
struct Gateway::CaEvidence final {
  std::string key;                     // the realisation's canonical key
  std::vector<std::string> operators;  // agreed on the realisation and signed the path's fingerprint
};

namespace {

// "(rule <name>, needs <quorum>: <what is missing>)" for a PENDING verdict, as narinfo 404s say it.
std::string PendingNeeds(const consensus::Policy& policy, const consensus::TallyResult& result) {
  const consensus::Quorum& quorum =
      result.rule_index >= 0 && static_cast<size_t>(result.rule_index) < policy.rules().size()
          ? policy.rules()[static_cast<size_t>(result.rule_index)].quorum
          : policy.default_quorum();
  return Cat(" (rule ", result.rule, ", needs ", consensus::DescribeQuorum(policy, quorum),
             result.quorum_explanation.empty() ? std::string() : Cat(": ", result.quorum_explanation), ")");
}

}  // namespace

bool ContentAddressGivesPath(std::string_view ca, const consensus::PathInfo& claim) {
  // Nix 2.8 src/libstore/store-api.cc makeFixedOutputPath / makeType: a recursive sha256 content
  // address names its path makeStorePath("source:<ref>...[:self]", hash, name), with the references
  // other than the path itself in order and ":self" when it refers to itself.
  constexpr std::string_view kRecursiveSha256 = "fixed:r:sha256:";
  if (ca.substr(0, kRecursiveSha256.size()) != kRecursiveSha256) return false;
  absl::StatusOr<consensus::NarHash> hash =
      consensus::NarHash::Parse(Cat("sha256:", ca.substr(kRecursiveSha256.size())));
  if (!hash.ok()) return false;
  std::vector<std::string> references;
  bool self = false;
  for (const consensus::StorePath& reference : claim.references) {
    if (reference == claim.path) {
      self = true;
    } else {
      references.push_back(reference.full());
    }
  }
  std::sort(references.begin(), references.end());
  std::string type = "source";
  for (const std::string& reference : references) absl::StrAppend(&type, ":", reference);
  if (self) type += ":self";
  absl::StatusOr<consensus::StorePath> path = consensus::MakeStorePath(type, hash->digest(), claim.path.name());
  return path.ok() && *path == claim.path;
}

std::optional<std::string> GatewayNarUrl(std::string_view url, std::string_view upstream_url) {
  std::string_view file;
  if (url.substr(0, 4) == "nar/") {
    file = url.substr(4);
  } else if (url.size() > upstream_url.size() + 5 && url.substr(0, upstream_url.size()) == upstream_url &&
             url.substr(upstream_url.size(), 5) == "/nar/") {
    file = url.substr(upstream_url.size() + 5);
  } else if (url.substr(0, 7) == "http://" || url.substr(0, 8) == "https://") {
    return std::string(url);
  } else {
    return std::nullopt;
  }
  if (!IsServableNarFileName(file)) return std::nullopt;
  return Cat("nar/", file);
}

Gateway::Gateway(const PolicyBook& policy, storage::Ledger* store,
                 const consensus::SecretKey& node_key, std::unique_ptr<Upstream> upstream, Clock clock,
                 GatewayOptions options)
    : policy_(policy),
      store_(store),
      node_key_(node_key),
      upstream_(std::move(upstream)),
      clock_(std::move(clock)),
      options_(options),
      cache_info_(Cat("StoreDir: ", consensus::kStoreDir, "\nWantMassQuery: 1\nPriority: ", options.priority, "\n")),
      own_metrics_(options.metrics == nullptr ? std::make_unique<MetricsRegistry>() : nullptr) {
  CounterFamily& requests =
      (options.metrics != nullptr ? *options.metrics : *own_metrics_)
          .AddCounter("attest_gateway_requests_total",
                      "Requests to the substituter gateway, by route (nix_cache_info, narinfo, nar, realisation) "
                      "and answer.",
                      {"route", "answer"});
  for (const auto& [route, answer] : kAnswerLabels) answers_.push_back(&requests.Labels({route, answer}));
}

Gateway::~Gateway() = default;

void Gateway::AddRoutes(HttpRouter& router) {
  router.Exact("/nix-cache-info", [this](const HttpRequest&) {
    Count(Answer::kCacheInfo);
    return HttpReply::Now(CacheInfo());
  });
  router.Prefix(std::string(kNarPrefix), [this](const HttpRequest& request) { return Nar(request.path); });
  router.Prefix(std::string(kRealisationsPrefix),
                [this](const HttpRequest& request) { return Realisation(request.path); });
  router.Prefix(std::string(kBuildTracePrefix),
                [this](const HttpRequest& request) { return Realisation(request.path); });
  router.Prefix("/", [this](const HttpRequest& request) { return NarInfo(request.path, request.client_address); });
}

HttpResponse Gateway::CacheInfo() const {
  HttpResponse response;
  response.content_type = "text/x-nix-cache-info";
  response.body = cache_info_;
  return response;
}

HttpReply Gateway::NarInfo(std::string_view request_path, std::string_view client) {
  if (request_path.size() != 1 + consensus::kStorePathHashLength + kNarInfoSuffix.size() ||
      request_path.substr(1 + consensus::kStorePathHashLength) != kNarInfoSuffix ||
      !IsHashPart(request_path.substr(1, consensus::kStorePathHashLength))) {
    Count(Answer::kNarInfoNotNarInfo);
    return HttpReply::Now(HttpResponse::Text(404, "not found"));
  }
  std::string hash_part(request_path.substr(1, consensus::kStorePathHashLength));
  const absl::Time now = clock_();
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = entries_.find(hash_part);
    if (it != entries_.end() && it->second->answered && now < it->second->upstream->expires) {
      const Entry& entry = *it->second;
      entry.last_used.store(absl::ToUnixSeconds(now), std::memory_order_relaxed);
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      Count(entry.answer);
      if (entry.demand_path && options_.on_not_confirmed) options_.on_not_confirmed(*entry.demand_path, client);
      if (entry.body == nullptr) return HttpReply::Now(NotServed(entry.reason));
      HttpResponse response;
      response.content_type = "text/x-nix-narinfo";
      response.body = entry.body;
      return HttpReply::Now(std::move(response));
    }
  }
  return HttpReply::Later([this, hash_part = std::move(hash_part), client = std::string(client)] {
    return Resolve(hash_part, &client);
  });
}

HttpReply Gateway::Realisation(std::string_view request_path) {
  // The HTTP server hands over the path percent-decoded, so "sha256%3A...%21out" arrives as Nix 2.8
  // sends it raw ("sha256:...!out").
  absl::StatusOr<consensus::RealisationKey> key =
      consensus::ParseRealisationCachePath(request_path.substr(std::min<size_t>(request_path.size(), 1)));
  if (!key.ok()) {
    Count(Answer::kRealisationBadPath);
    return HttpReply::Now(HttpResponse::Text(
        400, Cat(StdView(key.status().message()),
                 " (expected /realisations/sha256:<64 lower-case hex>!<output>.doi or "
                 "/build-trace-v2/<hash>-<name>.drv/<output>.doi)")));
  }
  const std::string text = key->ToString();
  const absl::Time now = clock_();
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = realisations_.find(text);
    if (it != realisations_.end() && now < it->second->expires) {
      const RealisationEntry& entry = *it->second;
      entry.last_used.store(absl::ToUnixSeconds(now), std::memory_order_relaxed);
      cache_hits_.fetch_add(1, std::memory_order_relaxed);
      Count(entry.answer);
      if (entry.body == nullptr) return HttpReply::Now(NotServed(entry.reason));
      HttpResponse response;
      response.content_type = "application/json";
      response.body = entry.body;
      return HttpReply::Now(std::move(response));
    }
  }
  return HttpReply::Later([this, key = *std::move(key)] { return ResolveRealisation(key); });
}

HttpResponse Gateway::ResolveRealisation(const consensus::RealisationKey& key) {
  const absl::Time now = clock_();
  const std::string text = key.ToString();
  uint64_t generation;
  {
    absl::ReaderMutexLock lock(&mu_);
    generation = generation_;
  }
  // Taken after `generation`, as in Resolve: an answer computed under a replaced policy is not kept.
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  tallies_.fetch_add(1, std::memory_order_relaxed);
  auto keep = [&](std::shared_ptr<const std::string> body, std::string reason, Answer answer) {
    Count(answer);
    auto entry = std::make_shared<RealisationEntry>();
    entry->expires = now + (body != nullptr ? options_.positive_ttl : options_.negative_ttl);
    entry->body = std::move(body);
    entry->reason = std::move(reason);
    entry->answer = answer;
    entry->last_used.store(absl::ToUnixSeconds(now), std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    if (generation == generation_) InsertRealisation(text, std::move(entry));
  };

  const std::vector<consensus::RealisationKey> keys{key};
  absl::StatusOr<std::vector<std::vector<storage::StoredRealisation>>> stored = store_->RealisationsFor(keys);
  if (!stored.ok() || stored->size() != 1) {
    // A 404 like any other absence, never a 5xx: Nix takes any other error for a failed substitution
    // and stops instead of building (without --fallback).
    LogWarning(Cat("gateway: reading the realisations of ", text, " failed: ",
                   stored.ok() ? "wrong answer count" : StdView(stored.status().message()), "; answered 404"));
    Count(Answer::kRealisationStoreFailed);
    return NotServed("the node cannot read its store right now");
  }
  const std::vector<storage::StoredRealisation>& held = (*stored)[0];
  const RealisationTally tally = TallyStoredRealisations(*policy, held, *TallyOptionsOf(options_.resolutions));
  const consensus::TallyResult& result = tally.result;
  if (result.verdict != consensus::Verdict::kConfirmed) {
    std::string reason = Cat("realisation ", text, " is ", consensus::VerdictName(result.verdict),
                             result.verdict == consensus::Verdict::kPending ? PendingNeeds(*policy, result) : "");
    keep(nullptr, reason,
         result.verdict == consensus::Verdict::kPending    ? Answer::kRealisationPending
         : result.verdict == consensus::Verdict::kDisputed ? Answer::kRealisationDisputed
                                                           : Answer::kRealisationUnknown);
    return NotServed(std::move(reason));
  }
  const consensus::FingerprintTally& agreed = result.fingerprints.front();
  // The agreeing builders' signatures (by key name), then the node's over the same fingerprint, as a
  // served narinfo carries them.
  std::vector<consensus::Signature> signatures;
  for (size_t index : agreed.attestations) signatures.push_back(held[tally.stored_index[index]].attestation.signature);
  std::sort(signatures.begin(), signatures.end(), [](const consensus::Signature& a, const consensus::Signature& b) {
    return a.ToString() < b.ToString();
  });
  signatures.push_back(node_key_.Sign(agreed.fingerprint));
  const consensus::Realisation& claim = held[tally.stored_index[agreed.attestations.front()]].attestation.claim;
  auto body = std::make_shared<const std::string>(consensus::FormatRealisationFile(claim, signatures));
  keep(body, "", Answer::kRealisationServed);
  HttpResponse response;
  response.content_type = "application/json";
  response.body = std::move(body);
  return response;
}

std::optional<Gateway::CaEvidence> Gateway::ConfirmedRealisationOf(const consensus::Policy& policy,
                                                                  const consensus::NarInfo& narinfo,
                                                                  const consensus::FingerprintTally& path_side) {
  // Only a narinfo that says it is content-addressed can be one (the CA: field is checked against the
  // path before serving); input-addressed outputs have realisations too under Nix 2.8 and need their
  // path's quorum.
  if (narinfo.ca.empty()) return std::nullopt;
  const consensus::StorePath& path = narinfo.claim.path;
  absl::StatusOr<std::vector<std::string>> texts = store_->RealisationKeysFor(path);
  if (!texts.ok()) {
    LogWarning(Cat("gateway: reading the realisations of ", path.full(), " failed: ",
                   StdView(texts.status().message()), "; its narinfo needs its own quorum"));
    return std::nullopt;
  }
  std::vector<consensus::RealisationKey> keys;
  for (const std::string& text : *texts) {
    absl::StatusOr<consensus::RealisationKey> key = consensus::RealisationKey::Parse(text);
    if (key.ok()) keys.push_back(*std::move(key));
  }
  if (keys.empty()) return std::nullopt;
  absl::StatusOr<std::vector<std::vector<storage::StoredRealisation>>> stored = store_->RealisationsFor(keys);
  if (!stored.ok() || stored->size() != keys.size()) {
    LogWarning(Cat("gateway: reading the realisations of ", path.full(), " failed: ",
                   stored.ok() ? "wrong answer count" : StdView(stored.status().message()),
                   "; its narinfo needs its own quorum"));
    return std::nullopt;
  }
  const std::shared_ptr<const consensus::TallyOptions> options = TallyOptionsOf(options_.resolutions);
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::vector<storage::StoredRealisation>& held = (*stored)[i];
    const RealisationTally tally = TallyStoredRealisations(policy, held, *options);
    if (tally.result.verdict != consensus::Verdict::kConfirmed) continue;
    const consensus::FingerprintTally& agreed = tally.result.fingerprints.front();
    // Keys are found by any attestation naming the path; the CONFIRMED claim must be the one that does.
    if (!(held[tally.stored_index[agreed.attestations.front()]].attestation.claim.out_path == path)) continue;
    std::vector<std::string> both;
    std::set_intersection(agreed.operators.begin(), agreed.operators.end(), path_side.operators.begin(),
                          path_side.operators.end(), std::back_inserter(both));
    if (both.empty()) continue;
    return CaEvidence{.key = keys[i].ToString(), .operators = std::move(both)};
  }
  return std::nullopt;
}

std::optional<consensus::StorePath> Gateway::UnconfirmedPathOf(const std::string& hash_part) {
  if (!options_.path_of_hash_part) return std::nullopt;
  std::optional<consensus::StorePath> path = options_.path_of_hash_part(hash_part);
  if (!path) return std::nullopt;
  const std::vector<consensus::StorePath> paths{*path};
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> stored = store_->AttestationsFor(paths);
  if (!stored.ok() || stored->size() != 1) return std::nullopt;
  const PathTally tally = TallyStored(*policy_.current(), (*stored)[0], *TallyOptionsOf(options_.resolutions));
  if (tally.result.verdict == consensus::Verdict::kConfirmed) return std::nullopt;
  return path;
}

HttpResponse Gateway::Resolve(const std::string& hash_part, const std::string* client) {
  const absl::Time now = clock_();
  std::shared_ptr<const UpstreamAnswer> upstream = UpstreamFor(hash_part, now);

  std::shared_ptr<const RelayTarget> target;
  std::optional<consensus::StorePath> demand_path;
  std::optional<CaEvidence> ca_evidence;  // set when a CA path is served on its realisation's quorum
  auto note_demand = [&] {
    if (demand_path && client != nullptr && options_.on_not_confirmed) options_.on_not_confirmed(*demand_path, *client);
  };
  auto keep = [&](bool answered, std::shared_ptr<const std::string> body, std::string reason, uint64_t generation,
                  Answer answer) {
    Count(answer);
    auto entry = std::make_shared<Entry>();
    entry->answer = answer;
    entry->target = target;
    entry->demand_path = demand_path;
    if (ca_evidence) entry->ca_key = ca_evidence->key;
    entry->upstream = upstream;
    // An answer computed from a read that may have missed a commit is not kept (the next request
    // computes it again); the upstream part is kept either way.
    entry->answered = answered;
    entry->body = std::move(body);
    entry->reason = std::move(reason);
    entry->last_used.store(absl::ToUnixSeconds(now), std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    if (generation != generation_) entry->answered = false;
    Insert(hash_part, std::move(entry));
  };

  if (upstream->kind != UpstreamAnswer::Kind::kFound) {
    uint64_t generation;
    {
      absl::ReaderMutexLock lock(&mu_);
      generation = generation_;
    }
    if (upstream->kind == UpstreamAnswer::Kind::kMissing) demand_path = UnconfirmedPathOf(hash_part);
    keep(true, nullptr, upstream->reason, generation,
         upstream->kind == UpstreamAnswer::Kind::kMissing   ? Answer::kNarInfoUpstreamMissing
         : upstream->kind == UpstreamAnswer::Kind::kInvalid ? Answer::kNarInfoUpstreamInvalid
                                                            : Answer::kNarInfoUpstreamFailed);
    note_demand();
    return NotServed(upstream->reason);
  }

  const consensus::NarInfo& narinfo = *upstream->narinfo;
  uint64_t generation;
  {
    absl::ReaderMutexLock lock(&mu_);
    generation = generation_;
  }
  // Taken after `generation`: an adoption after this point bumps the generation (VerdictsChanged), so an
  // answer computed under the policy it replaced is not kept.
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  tallies_.fetch_add(1, std::memory_order_relaxed);
  const std::vector<consensus::StorePath> paths{narinfo.claim.path};
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> stored = store_->AttestationsFor(paths);
  if (!stored.ok() || stored->size() != 1) {
    LogWarning(Cat("gateway: reading the attestations of ", narinfo.claim.path.full(), " failed: ",
                   stored.ok() ? "wrong answer count" : StdView(stored.status().message()), "; answered 404"));
    keep(false, nullptr, "", generation, Answer::kNarInfoStoreFailed);
    return NotServed("the node cannot read its store right now");
  }
  const PathTally tally = TallyStored(*policy, (*stored)[0], *TallyOptionsOf(options_.resolutions));
  const consensus::TallyResult& result = tally.result;
  std::string reason;
  // The side whose fingerprint is served: the CONFIRMED one, or the one PENDING side of a CA path whose
  // realisation is CONFIRMED and whose fingerprint an operator of that realisation signed (see the
  // header: Nix checks a CA path's contents against its CA: hash, so the realisation's quorum carries
  // the trust). DISPUTED and UNKNOWN paths never take the second way.
  const consensus::FingerprintTally* agreed_side = nullptr;
  if (result.verdict == consensus::Verdict::kConfirmed) {
    agreed_side = &result.fingerprints.front();
  } else if (result.verdict == consensus::Verdict::kPending && result.fingerprints.size() == 1) {
    ca_evidence = ConfirmedRealisationOf(*policy, narinfo, result.fingerprints.front());
    if (ca_evidence) agreed_side = &result.fingerprints.front();
  }
  if (agreed_side == nullptr) {
    // The rule that applied and what its quorum still needs, in the words `attest status` uses (a count
    // of operators would say nothing under a threshold of groups).
    std::string needs;
    if (result.verdict == consensus::Verdict::kPending) {
      const consensus::AppliedRule applied = policy->RuleFor(narinfo.claim.path.name());
      needs = Cat(" (rule ", result.rule, ", needs ", consensus::DescribeQuorum(*policy, *applied.quorum),
                  result.quorum_explanation.empty() ? std::string() : Cat(": ", result.quorum_explanation), ")");
    }
    reason = Cat(narinfo.claim.path.full(), " is ", consensus::VerdictName(result.verdict), needs);
    demand_path = narinfo.claim.path;
    keep(true, nullptr, reason, generation,
         result.verdict == consensus::Verdict::kPending    ? Answer::kNarInfoPending
         : result.verdict == consensus::Verdict::kDisputed ? Answer::kNarInfoDisputed
                                                           : Answer::kNarInfoUnknown);
    note_demand();
    return NotServed(reason);
  }
  const consensus::FingerprintTally& agreed = *agreed_side;
  // `described`: the narinfo whose claim is the confirmed one, and whose Deriver and CA are passed on.
  const consensus::NarInfo* described = &narinfo;
  std::optional<SourcedNarInfo> sourced;
  std::string nar_url;
  std::string compression;
  std::string file_hash;
  std::optional<uint64_t> file_size;
  if (options_.relay != nullptr) {
    absl::StatusOr<consensus::PathInfo> confirmed = consensus::PathInfo::ParseFingerprint(agreed.fingerprint);
    if (!confirmed.ok()) {
      LogWarning(Cat("gateway: the confirmed fingerprint of ", narinfo.claim.path.full(),
                     " does not parse: ", StdView(confirmed.status().message()), "; answered 404"));
      keep(false, nullptr, "", generation, Answer::kNarInfoStoreFailed);
      return NotServed("the node cannot read its store right now");
    }
    if (confirmed->nar_size > options_.relay->max_nar_bytes()) {
      reason = Cat(narinfo.claim.path.full(), " is CONFIRMED, but its NAR (", confirmed->nar_size,
                   " bytes) is larger than this node relays");
      keep(true, nullptr, reason, generation, Answer::kNarInfoTooLarge);
      return NotServed(reason);
    }
    absl::StatusOr<SourcedNarInfo> located = options_.relay->Locate(*confirmed, agreed.operators);
    if (!located.ok()) {
      // Not kept: the relay remembers each source's answer briefly, so the next request asks again
      // soon (a source that was down may be back) without a storm of requests.
      reason = Cat(narinfo.claim.path.full(), " is CONFIRMED, but no source holds its NAR");
      keep(false, nullptr, reason, generation, Answer::kNarInfoNoSource);
      return NotServed(Cat(reason, ": ", StdView(located.status().message())));
    }
    sourced = *std::move(located);
    described = &sourced->narinfo;
    const std::string nar_hash = confirmed->nar_hash.ToNix32();
    auto relay_target = std::make_shared<RelayTarget>(
        RelayTarget{.confirmed = *std::move(confirmed),
                    .confirming = agreed.operators,
                    .file = Cat(hash_part, "-", nar_hash.substr(nar_hash.find(':') + 1), ".nar")});
    nar_url = Cat("nar/", relay_target->file);
    compression = "none";
    file_hash = nar_hash;
    file_size = relay_target->confirmed.nar_size;
    target = std::move(relay_target);
  } else {
    const std::string fingerprint = narinfo.claim.Fingerprint();
    if (agreed.fingerprint != fingerprint) {
      reason = Cat(narinfo.claim.path.full(), " is CONFIRMED, but the upstream narinfo describes other contents");
      LogWarning(Cat("gateway: upstream narinfo of ", narinfo.claim.path.full(),
                     " differs from the confirmed fingerprint (", consensus::QuoteForError(fingerprint), " upstream, ",
                     consensus::QuoteForError(agreed.fingerprint), " confirmed); answered 404"));
      keep(true, nullptr, reason, generation, Answer::kNarInfoMismatch);
      return NotServed(reason);
    }
    nar_url = upstream->nar_url;
    compression = narinfo.compression.empty() ? "bzip2" : narinfo.compression;
    file_hash = narinfo.file_hash;
    file_size = narinfo.file_size;
  }
  const consensus::PathInfo& claim = described->claim;
  if (ca_evidence && !ContentAddressGivesPath(described->ca, claim)) {
    // The realisation vouches only for a path that verifies itself; without a CA: field that gives this
    // very path, the path's own quorum is needed.
    reason = Cat(narinfo.claim.path.full(), " is PENDING, and its narinfo's CA: field does not give its store path",
                 " (the CONFIRMED realisation ", ca_evidence->key, " stands in for the path's quorum only for a",
                 " content-addressed path)");
    keep(true, nullptr, reason, generation, Answer::kNarInfoPending);
    return NotServed(reason);
  }

  // The agreeing builders' signatures, by key name, then the node's own.
  std::vector<std::string> signatures;
  for (size_t index : agreed.attestations) {
    signatures.push_back((*stored)[0][tally.stored_index[index]].attestation.signature.ToString());
  }
  std::sort(signatures.begin(), signatures.end());
  signatures.push_back(node_key_.Sign(agreed.fingerprint).ToString());

  std::string body =
      Cat("StorePath: ", claim.path.full(), "\nURL: ", nar_url, "\nCompression: ", compression, "\n");
  if (!file_hash.empty()) absl::StrAppend(&body, "FileHash: ", file_hash, "\n");
  if (file_size) absl::StrAppend(&body, "FileSize: ", *file_size, "\n");
  absl::StrAppend(&body, "NarHash: ", claim.nar_hash.ToNix32(), "\nNarSize: ", claim.nar_size, "\nReferences:");
  for (const consensus::StorePath& reference : claim.references) {
    absl::StrAppend(&body, " ", consensus::AbslView(reference.base_name()));
  }
  // Nix writes "References: " with the space even when the list is empty.
  if (claim.references.empty()) body.push_back(' ');
  body.push_back('\n');
  if (described->deriver) {
    absl::StrAppend(&body, "Deriver: ", consensus::AbslView(described->deriver->base_name()), "\n");
  }
  if (!described->ca.empty()) absl::StrAppend(&body, "CA: ", described->ca, "\n");
  for (const std::string& signature : signatures) absl::StrAppend(&body, "Sig: ", signature, "\n");

  auto shared = std::make_shared<const std::string>(std::move(body));
  keep(true, shared, "", generation, ca_evidence ? Answer::kNarInfoServedCa : Answer::kNarInfoServed);
  HttpResponse response;
  response.content_type = "text/x-nix-narinfo";
  response.body = std::move(shared);
  return response;
}

std::shared_ptr<const Gateway::UpstreamAnswer> Gateway::UpstreamFor(const std::string& hash_part, absl::Time now) {
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(hash_part);
    if (it != entries_.end() && now < it->second->upstream->expires) return it->second->upstream;
    auto [at, inserted] = flights_.try_emplace(hash_part, nullptr);
    if (inserted) {
      at->second = std::make_shared<Flight>();
      leader = true;
    }
    flight = at->second;
  }
  if (!leader) {
    flight->done.WaitForNotification();
    return flight->answer;
  }
  std::shared_ptr<const UpstreamAnswer> answer = Fetch(hash_part, now);
  {
    // Into the table before the flight ends, so a request arriving now finds it instead of fetching
    // again (the caller replaces the row with one that has the answer).
    auto entry = std::make_shared<Entry>();
    entry->upstream = answer;
    entry->last_used.store(absl::ToUnixSeconds(now), std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    Insert(hash_part, std::move(entry));
    flights_.erase(hash_part);
  }
  flight->answer = answer;
  flight->done.Notify();
  return answer;
}

std::shared_ptr<const Gateway::UpstreamAnswer> Gateway::FetchFromRelay(const std::string& hash_part,
                                                                      absl::Time now) {
  auto answer = std::make_shared<UpstreamAnswer>();
  absl::StatusOr<consensus::NarInfo> narinfo = options_.relay->FindNarInfo(hash_part);
  if (narinfo.ok()) {
    answer->kind = UpstreamAnswer::Kind::kFound;
    answer->narinfo = std::make_shared<const consensus::NarInfo>(*std::move(narinfo));
    answer->expires = now + options_.positive_ttl;
  } else if (narinfo.status().code() == absl::StatusCode::kNotFound) {
    answer->kind = UpstreamAnswer::Kind::kMissing;
    answer->reason = Cat("no source has ", hash_part, ".narinfo");
    answer->expires = now + options_.negative_ttl;
  } else {
    answer->kind = UpstreamAnswer::Kind::kFailed;
    answer->reason = Cat("no source answered for ", hash_part, ".narinfo");
    answer->expires = now + options_.failure_ttl;
  }
  return answer;
}

std::shared_ptr<const Gateway::UpstreamAnswer> Gateway::Fetch(const std::string& hash_part, absl::Time now) {
  upstream_fetches_.fetch_add(1, std::memory_order_relaxed);
  if (options_.relay != nullptr) return FetchFromRelay(hash_part, now);
  auto answer = std::make_shared<UpstreamAnswer>();
  absl::StatusOr<std::string> text = upstream_->FetchNarInfo(hash_part);
  if (!text.ok() && text.status().code() == absl::StatusCode::kNotFound) {
    NoteUpstreamHealth(absl::OkStatus());
    answer->kind = UpstreamAnswer::Kind::kMissing;
    answer->reason = Cat("the upstream cache has no ", hash_part, ".narinfo");
    answer->expires = now + options_.negative_ttl;
    return answer;
  }
  if (!text.ok() && text.status().code() != absl::StatusCode::kResourceExhausted) {
    NoteUpstreamHealth(text.status());
    answer->kind = UpstreamAnswer::Kind::kFailed;
    answer->reason = "the upstream cache is unavailable";
    answer->expires = now + options_.failure_ttl;
    return answer;
  }
  NoteUpstreamHealth(absl::OkStatus());
  answer->kind = UpstreamAnswer::Kind::kInvalid;
  answer->expires = now + options_.negative_ttl;
  if (!text.ok()) {
    answer->reason = "the upstream narinfo is too large";
    LogWarning(Cat("gateway: ", StdView(text.status().message())));
    return answer;
  }
  absl::StatusOr<consensus::NarInfo> narinfo =
      consensus::ParseNarInfo(*text, Cat(upstream_->url(), "/", hash_part, ".narinfo"));
  if (!narinfo.ok()) {
    answer->reason = "the upstream narinfo is not valid";
    LogWarning(Cat("gateway: upstream narinfo rejected: ", StdView(narinfo.status().message())));
    return answer;
  }
  if (narinfo->claim.path.hash_part() != hash_part) {
    answer->reason = "the upstream narinfo is about another store path";
    LogWarning(Cat("gateway: upstream ", hash_part, ".narinfo names ", narinfo->claim.path.full()));
    return answer;
  }
  std::optional<std::string> nar_url = GatewayNarUrl(narinfo->url, upstream_->url());
  if (!nar_url) {
    answer->reason = "the upstream narinfo's URL cannot be served";
    LogWarning(Cat("gateway: upstream ", hash_part, ".narinfo has URL ", consensus::QuoteForError(narinfo->url),
                   ", which is neither under nar/ nor an absolute http(s) URL"));
    return answer;
  }
  narinfo->signatures.clear();  // the upstream's own signatures are not passed on; save the memory
  answer->kind = UpstreamAnswer::Kind::kFound;
  answer->narinfo = std::make_shared<const consensus::NarInfo>(*std::move(narinfo));
  answer->nar_url = *std::move(nar_url);
  answer->expires = now + options_.positive_ttl;
  return answer;
}

void Gateway::NoteUpstreamHealth(const absl::Status& status) {
  absl::MutexLock lock(&health_mu_);
  if (status.ok() && !upstream_healthy_) {
    upstream_healthy_ = true;
    LogInfo(Cat("gateway: upstream ", upstream_->url(), " answers again"));
  } else if (!status.ok() && upstream_healthy_) {
    upstream_healthy_ = false;
    LogWarning(Cat("gateway: upstream unavailable: ", StdView(status.message()),
                   "; narinfo and NAR requests are answered 404 (Nix builds instead) until it is back"));
  }
}

void Gateway::Insert(const std::string& hash_part, std::shared_ptr<const Entry> entry) {
  entries_.insert_or_assign(hash_part, std::move(entry));
  if (entries_.size() > options_.max_entries) EvictSome(clock_());
}

void Gateway::EvictSome(absl::Time now) {
  // Expired rows first; then the least recently used, down to 90% of the bound so eviction runs once
  // per tenth of the table, not on every insert.
  const size_t target = options_.max_entries - options_.max_entries / 10;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second->upstream->expires <= now) {
      entries_.erase(it++);
    } else {
      ++it;
    }
  }
  if (entries_.size() <= target) return;
  std::vector<std::pair<int64_t, std::string>> by_age;
  by_age.reserve(entries_.size());
  for (const auto& [key, entry] : entries_) by_age.emplace_back(entry->last_used.load(std::memory_order_relaxed), key);
  const size_t drop = entries_.size() - target;
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
  for (size_t i = 0; i < drop; ++i) entries_.erase(by_age[i].second);
}

void Gateway::VerdictsChanged() {
  absl::MutexLock lock(&mu_);
  ++generation_;
  realisations_.clear();
  for (auto& [hash, entry] : entries_) {
    if (!entry->answered) continue;
    auto stale = std::make_shared<Entry>();
    stale->upstream = entry->upstream;
    stale->last_used.store(entry->last_used.load(std::memory_order_relaxed), std::memory_order_relaxed);
    entry = std::move(stale);
  }
}

void Gateway::PathsChanged(std::span<const consensus::StorePath> paths) {
  absl::MutexLock lock(&mu_);
  ++generation_;
  for (const consensus::StorePath& path : paths) {
    auto it = entries_.find(consensus::AbslView(path.hash_part()));
    if (it == entries_.end() || !it->second->answered) continue;
    auto stale = std::make_shared<Entry>();
    stale->upstream = it->second->upstream;
    stale->last_used.store(it->second->last_used.load(std::memory_order_relaxed), std::memory_order_relaxed);
    it->second = std::move(stale);
  }
}

void Gateway::RealisationsChanged(std::span<const consensus::Realisation> claims) {
  absl::MutexLock lock(&mu_);
  ++generation_;
  absl::flat_hash_set<std::string> keys;
  auto drop = [](std::shared_ptr<const Entry>& entry) {
    auto stale = std::make_shared<Entry>();
    stale->upstream = entry->upstream;
    stale->last_used.store(entry->last_used.load(std::memory_order_relaxed), std::memory_order_relaxed);
    entry = std::move(stale);
  };
  for (const consensus::Realisation& claim : claims) {
    std::string key = claim.key.ToString();
    realisations_.erase(key);
    keys.insert(std::move(key));
    // The output path's narinfo may now be served as a CA path (or no longer be).
    auto it = entries_.find(consensus::AbslView(claim.out_path.hash_part()));
    if (it != entries_.end() && it->second->answered) drop(it->second);
  }
  // A narinfo served on a realisation's quorum goes when that realisation changes, whatever path its
  // new attestations name (a competing claim makes it DISPUTED).
  for (auto& [hash, entry] : entries_) {
    if (entry->answered && !entry->ca_key.empty() && keys.contains(entry->ca_key)) drop(entry);
  }
}

void Gateway::InsertRealisation(const std::string& key, std::shared_ptr<const RealisationEntry> entry) {
  realisations_.insert_or_assign(key, std::move(entry));
  if (realisations_.size() <= options_.max_entries) return;
  // As EvictSome: expired rows, then the least recently used down to 90% of the bound.
  const absl::Time now = clock_();
  const size_t target = options_.max_entries - options_.max_entries / 10;
  for (auto it = realisations_.begin(); it != realisations_.end();) {
    if (it->second->expires <= now) {
      realisations_.erase(it++);
    } else {
      ++it;
    }
  }
  if (realisations_.size() <= target) return;
  std::vector<std::pair<int64_t, std::string>> by_age;
  by_age.reserve(realisations_.size());
  for (const auto& [text, row] : realisations_) {
    by_age.emplace_back(row->last_used.load(std::memory_order_relaxed), text);
  }
  const size_t drop = realisations_.size() - target;
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(drop), by_age.end());
  for (size_t i = 0; i < drop; ++i) realisations_.erase(by_age[i].second);
}

HttpReply Gateway::Nar(std::string_view request_path) {
  const std::string_view file = request_path.substr(std::min(request_path.size(), kNarPrefix.size()));
  if (!IsServableNarFileName(file)) {
    Count(Answer::kNarBadName);
    return HttpReply::Now(HttpResponse::Text(400, "not a NAR file name: expected /nar/<file> with [A-Za-z0-9._+-]"));
  }
  if (options_.relay != nullptr) {
    return HttpReply::Later([this, file = std::string(file)] { return RelayNar(file); });
  }
  return HttpReply::Later([this, file = std::string(file)] {
    absl::StatusOr<HttpBody> body = upstream_->OpenNar(file);
    if (!body.ok()) {
      if (body.status().code() != absl::StatusCode::kNotFound) {
        NoteUpstreamHealth(body.status());
        Count(Answer::kNarUpstreamFailed);
        return NotServed("the upstream cache is unavailable");
      }
      Count(Answer::kNarUpstreamMissing);
      return NotServed(Cat("the upstream cache has no nar/", file));
    }
    NoteUpstreamHealth(absl::OkStatus());
    Count(Answer::kNarServed);
    HttpResponse response;
    response.content_type = "application/x-nix-nar";
    response.body = *std::move(body);
    return response;
  });
}

HttpResponse Gateway::RelayNar(const std::string& file) {
  // "<hash part>-<nar hash>.nar", the name a served narinfo gave: its row says what to fetch.
  const std::string hash_part = file.substr(0, std::min(file.size(), consensus::kStorePathHashLength));
  auto target_of = [&]() -> std::shared_ptr<const RelayTarget> {
    absl::ReaderMutexLock lock(&mu_);
    auto it = entries_.find(hash_part);
    if (it == entries_.end() || !it->second->answered) return nullptr;
    return it->second->target;
  };
  std::shared_ptr<const RelayTarget> target = IsHashPart(hash_part) ? target_of() : nullptr;
  if (target == nullptr && IsHashPart(hash_part)) {
    // Evicted, restarted, or a verdict changed since the narinfo was served: decide again.
    Resolve(hash_part, /*client=*/nullptr);  // a NAR request is not demand: its narinfo request was
    target = target_of();
  }
  if (target == nullptr || target->file != file) {
    Count(Answer::kNarUpstreamMissing);
    return NotServed(Cat("nar/", file, " is not the NAR of a CONFIRMED path (fetch its narinfo again)"));
  }
  absl::StatusOr<storage::NarCache::Hit> hit = options_.relay->Fetch(target->confirmed, target->confirming);
  if (!hit.ok()) {
    LogWarning(Cat("gateway: NAR of ", target->confirmed.path.full(), " not served: ", StdView(hit.status().message())));
    switch (hit.status().code()) {
      case absl::StatusCode::kFailedPrecondition:
        Count(Answer::kNarTooLarge);
        return NotServed(Cat("the NAR of ", target->confirmed.path.full(), " is larger than this node relays"));
      case absl::StatusCode::kNotFound:
        Count(Answer::kNarUnverified);
        return NotServed(Cat("no source delivered a NAR of ", target->confirmed.path.full(), " that verifies"));
      default:
        Count(Answer::kNarUpstreamFailed);
        return NotServed(Cat("the sources of ", target->confirmed.path.full(), " are unavailable"));
    }
  }
  Count(Answer::kNarServed);
  HttpResponse response;
  response.content_type = "application/x-nix-nar";
  response.body = HttpFile{.fd = hit->fd.Release(), .size = hit->size};
  return response;
}

void Gateway::Stop() {
  if (upstream_ != nullptr) upstream_->Cancel();
  if (options_.relay != nullptr) options_.relay->Cancel();
}

std::vector<NarSourceStatus> Gateway::SourceStatus() const {
  return options_.relay != nullptr ? options_.relay->Status() : std::vector<NarSourceStatus>{};
}

GatewayStats Gateway::stats() const {
  GatewayStats stats{
      .cache_hits = cache_hits_.load(), .upstream_fetches = upstream_fetches_.load(), .tallies = tallies_.load()};
  absl::ReaderMutexLock lock(&mu_);
  stats.entries = entries_.size();
  return stats;
}

}  // namespace attest::server
