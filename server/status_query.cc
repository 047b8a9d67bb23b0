#include "server/status_query.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "consensus/dispute.h"
#include "consensus/quorum.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "google/protobuf/io/coded_stream.h"
#include "proto/convert.h"
#include "server/grpc_status.h"
#include "server/path_tally.h"
#include "storage/ledger.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// What `status` adds to a StatusResponse as one element of `statuses`: tag, length, message.
uint64_t ElementBytes(const v1::PathStatus& status) {
  const size_t bytes = status.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(bytes) + bytes;
}

}  // namespace

// The bytes the answer has taken so far, shared by the chunks of one request. Exact: it counts each
// element as it will be serialised, so the answer is refused before it is built past the limit.
class StatusQuery::AnswerBudget final {
 public:
  AnswerBudget(uint64_t limit, uint64_t reserved) : limit_(limit), bytes_(reserved), exceeded_(reserved > limit) {}

  // Counts one answer of `bytes`; false once the total exceeds the limit (then every chunk stops).
  bool Add(uint64_t bytes) {
    answered_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t total = bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (total <= limit_) return true;
    exceeded_.store(true, std::memory_order_relaxed);
    return false;
  }
  bool exceeded() const { return exceeded_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  size_t answered() const { return answered_.load(std::memory_order_relaxed); }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> bytes_;
  std::atomic<size_t> answered_{0};
  std::atomic<bool> exceeded_;
};

absl::Status StatusQuery::AnswerRange(const consensus::Policy& policy, std::span<const consensus::StorePath> paths,
                                      std::span<v1::PathStatus> answers, AnswerBudget& budget) const {
  // In batches, so that a chunk holds at most one batch of stored attestations besides its answers, and
  // stops reading soon after the request's answer has grown past its limit.
  for (size_t begin = 0; begin < paths.size() && !budget.exceeded(); begin += kReadBatchPaths) {
    const size_t count = std::min(kReadBatchPaths, paths.size() - begin);
    if (absl::Status s = AnswerBatch(policy, paths.subspan(begin, count), answers.subspan(begin, count), budget); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> StatusQuery::Read(
    std::span<const consensus::StorePath> paths) const {
  auto stored = store_->AttestationsFor(paths);
  if (!stored.ok()) {
    return StorageFailure(Cat("reading the attestations of ", paths.size(), " paths"), stored.status());
  }
  if (stored->size() != paths.size()) {
    return absl::InternalError(
        Cat("AttestationsFor returned ", stored->size(), " answers for ", paths.size(), " paths"));
  }
  return stored;
}

PathStatus StatusQuery::Tallied(const consensus::Policy& policy, const consensus::StorePath& path,
                                std::vector<storage::StoredAttestation> stored,
                                const consensus::TallyOptions& tally_options) const {
  PathTally tally = TallyStored(policy, stored, tally_options);
  // The rule is the path's own (also for a path nobody attested, where the tally has no subject).
  const consensus::AppliedRule applied = policy.RuleFor(path.name());
  const consensus::Quorum& quorum = applied.quorum != nullptr ? *applied.quorum : policy.default_quorum();
  PathStatus status{.path = path,
                    .result = std::move(tally.result),
                    .stored = std::move(stored),  // the tally's pointers into it are not used again
                    .stored_index = std::move(tally.stored_index),
                    .exclusions = {},
                    .dispute_id = {},
                    .quorum = quorum.of.has_value() ? 0 : quorum.any,
                    .policy_hash = policy.Hash(),
                    .policy_version = policy.version(),
                    .rule = applied.name,
                    .quorum_text = consensus::DescribeQuorum(policy, quorum),
                    .quorum_explanation = {}};
  status.quorum_explanation = status.result.quorum_explanation;
  if (!tally_options.excluded_builders.empty()) {
    std::vector<std::string> signers;
    for (const storage::StoredAttestation& s : status.stored) {
      if (tally_options.excluded_builders.contains(s.attestation.key_name())) {
        signers.push_back(s.attestation.key_name());
      }
    }
    status.exclusions = options_.resolutions->ExclusionsFor(signers);
  }
  if (status.result.verdict == consensus::Verdict::kDisputed) status.dispute_id = consensus::DisputeId(path);
  return status;
}

absl::Status StatusQuery::AnswerRealisations(const consensus::Policy& policy,
                                             std::span<const consensus::RealisationKey> keys,
                                             std::span<v1::PathStatus> answers, AnswerBudget& budget) const {
  const std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(options_.resolutions);
  for (size_t begin = 0; begin < keys.size() && !budget.exceeded(); begin += kReadBatchPaths) {
    const std::span<const consensus::RealisationKey> batch = keys.subspan(begin, std::min(kReadBatchPaths, keys.size() - begin));
    auto stored = store_->RealisationsFor(batch);
    if (!stored.ok()) {
      return StorageFailure(Cat("reading the realisations of ", batch.size(), " keys"), stored.status());
    }
    if (stored->size() != batch.size()) {
      return absl::InternalError(
          Cat("RealisationsFor returned ", stored->size(), " answers for ", batch.size(), " keys"));
    }
    for (size_t d = 0; d < batch.size(); ++d) {
      v1::PathStatus& answer = answers[begin + d];
      RealisationStatusToProto(policy, batch[d], (*stored)[d], *tally_options, answer);
      if (!budget.Add(ElementBytes(answer))) return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

void StatusQuery::RealisationStatusToProto(const consensus::Policy& policy, const consensus::RealisationKey& key,
                                           std::vector<storage::StoredRealisation>& stored,
                                           const consensus::TallyOptions& tally_options, v1::PathStatus& out) const {
  RealisationTally tally = TallyStoredRealisations(policy, stored, tally_options);
  consensus::TallyResult& result = tally.result;
  // The rule: a 2.35 key names its derivation, so its output's name decides (also with no attestation
  // yet); a 2.8 key's is the tally's (the leading claim's name), which must hold together with the
  // default quorum (consensus/tally.h).
  std::string rule = "default";
  const consensus::Quorum* quorum = &policy.default_quorum();
  std::string quorum_text;
  if (key.format() == consensus::RealisationFormat::kBuildTrace) {
    const consensus::AppliedRule applied = policy.RuleFor(key.ExpectedOutPathName());
    if (applied.quorum != nullptr) quorum = applied.quorum;
    rule = applied.name;
    quorum_text = consensus::DescribeQuorum(policy, *quorum);
  } else if (result.rule_index >= 0 && static_cast<size_t>(result.rule_index) < policy.rules().size()) {
    quorum = &policy.rules()[static_cast<size_t>(result.rule_index)].quorum;
    rule = result.rule;
    quorum_text = Cat(consensus::DescribeQuorum(policy, *quorum), ", and the default quorum: ",
                      consensus::DescribeQuorum(policy, policy.default_quorum()));
  } else {
    quorum_text = consensus::DescribeQuorum(policy, *quorum);
  }
  out.set_store_path(key.ToString());
  out.set_verdict(proto::ToProto(result.verdict));
  out.set_quorum(quorum->of.has_value() ? 0 : quorum->any);
  out.set_policy_hash(policy.Hash());
  out.set_policy_version(policy.version());
  out.set_rule(std::move(rule));
  out.set_quorum_text(std::move(quorum_text));
  out.set_quorum_explanation(std::move(result.quorum_explanation));
  for (size_t f = 0; f < result.fingerprints.size(); ++f) {
    consensus::FingerprintTally& side = result.fingerprints[f];
    v1::FingerprintTally* fingerprint = out.add_fingerprints();
    fingerprint->set_fingerprint(std::move(side.fingerprint));
    for (std::string& op : side.operators) fingerprint->add_operators(std::move(op));
    for (std::string& builder : side.builders) fingerprint->add_builders(std::move(builder));
    for (size_t input : side.attestations) {
      const storage::StoredRealisation& s = stored[tally.stored_index[input]];
      v1::CountedAttestation* counted = out.add_attestations();
      counted->set_signature(s.attestation.signature.ToString());
      counted->set_fingerprint_index(static_cast<int32_t>(f));
      *counted->mutable_metadata() = proto::ToProto(s.attestation.metadata);
      counted->set_received_unix(s.received_unix);
    }
  }
  for (std::string& builder : result.flagged_builders) out.add_flagged_builders(std::move(builder));
  if (result.verdict == consensus::Verdict::kDisputed) out.set_dispute_id(consensus::DisputeId(key));
  if (!tally_options.excluded_builders.empty()) {
    std::vector<std::string> signers;
    for (const storage::StoredRealisation& s : stored) {
      if (tally_options.excluded_builders.contains(s.attestation.key_name())) signers.push_back(s.attestation.key_name());
    }
    for (std::string& note : options_.resolutions->ExclusionsFor(signers)) out.add_exclusions(std::move(note));
  }
}

void PathStatusToProto(PathStatus&& status, v1::PathStatus& out) {
  out.set_store_path(status.path.full());
  out.set_verdict(proto::ToProto(status.result.verdict));
  out.set_quorum(status.quorum);
  out.set_policy_hash(std::move(status.policy_hash));
  out.set_policy_version(status.policy_version);
  out.set_rule(std::move(status.rule));
  out.set_quorum_text(std::move(status.quorum_text));
  out.set_quorum_explanation(std::move(status.quorum_explanation));
  // Each counted claim travels once, as its fingerprint; the attestations name it by index.
  for (size_t f = 0; f < status.result.fingerprints.size(); ++f) {
    consensus::FingerprintTally& side = status.result.fingerprints[f];
    v1::FingerprintTally* tally = out.add_fingerprints();
    tally->set_fingerprint(std::move(side.fingerprint));
    for (std::string& op : side.operators) tally->add_operators(std::move(op));
    for (std::string& builder : side.builders) tally->add_builders(std::move(builder));
    for (size_t input : side.attestations) {
      storage::StoredAttestation& s = status.stored[status.stored_index[input]];
      v1::CountedAttestation* counted = out.add_attestations();
      counted->set_signature(s.attestation.signature.ToString());
      counted->set_fingerprint_index(static_cast<int32_t>(f));
      *counted->mutable_metadata() = proto::ToProto(std::move(s.attestation.metadata));
      counted->set_received_unix(s.received_unix);
    }
  }
  for (std::string& builder : status.result.flagged_builders) out.add_flagged_builders(std::move(builder));
  for (std::string& note : status.exclusions) out.add_exclusions(std::move(note));
  if (!status.dispute_id.empty()) out.set_dispute_id(std::move(status.dispute_id));
}

absl::Status StatusQuery::AnswerBatch(const consensus::Policy& policy, std::span<const consensus::StorePath> paths,
                                      std::span<v1::PathStatus> answers, AnswerBudget& budget) const {
  auto stored = Read(paths);
  if (!stored.ok()) return stored.status();
  const std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(options_.resolutions);
  for (size_t d = 0; d < paths.size(); ++d) {
    PathStatusToProto(Tallied(policy, paths[d], std::move((*stored)[d]), *tally_options), answers[d]);
    if (!budget.Add(ElementBytes(answers[d]))) return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PathStatus>> StatusQuery::Answer(std::span<const consensus::StorePath> paths) const {
  if (paths.size() > static_cast<size_t>(std::max(0, options_.max_paths))) {
    return absl::ResourceExhaustedError(Cat("status request for ", paths.size(),
                                            " store paths exceeds the limit of ", options_.max_paths, ": split it"));
  }
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  const std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(options_.resolutions);
  std::vector<PathStatus> answers;
  answers.reserve(paths.size());
  uint64_t by_verdict[4] = {0, 0, 0, 0};
  for (size_t begin = 0; begin < paths.size(); begin += kReadBatchPaths) {
    const std::span<const consensus::StorePath> batch = paths.subspan(begin, std::min(kReadBatchPaths, paths.size() - begin));
    auto stored = Read(batch);
    if (!stored.ok()) return stored.status();
    for (size_t d = 0; d < batch.size(); ++d) {
      answers.push_back(Tallied(*policy, batch[d], std::move((*stored)[d]), *tally_options));
      ++by_verdict[static_cast<int>(answers.back().result.verdict)];
    }
  }
  CountVerdicts(by_verdict);
  return answers;
}

void StatusQuery::CountVerdicts(const uint64_t (&by_verdict)[4]) const {
  for (size_t v = 0; v < verdicts_.size(); ++v) {
    if (by_verdict[v] != 0) verdicts_[v]->Increment(by_verdict[v]);
  }
}

StatusQuery::StatusQuery(const PolicyBook& policy, storage::Ledger* store,
                         StatusQueryOptions options)
    : policy_(policy),
      store_(store),
      options_(options),
      own_metrics_(options.metrics == nullptr ? std::make_unique<MetricsRegistry>() : nullptr),
      chunk_pool_(options.read_threads > 1 ? std::make_unique<WorkerPool>("status", options.read_threads - 1)
                                           : nullptr) {
  CounterFamily& verdicts = (options.metrics != nullptr ? *options.metrics : *own_metrics_)
                                .AddCounter("attest_status_path_verdicts_total",
                                            "Store paths answered by Status (each requested position), by the "
                                            "verdict given.",
                                            {"verdict"});
  for (consensus::Verdict verdict : {consensus::Verdict::kUnknown, consensus::Verdict::kPending,
                                     consensus::Verdict::kConfirmed, consensus::Verdict::kDisputed}) {
    verdicts_.push_back(&verdicts.Labels({absl::AsciiStrToLower(consensus::AbslView(consensus::VerdictName(verdict)))}));
  }
}

absl::StatusOr<v1::StatusResponse> StatusQuery::Run(const v1::StatusRequest& request) const {
  const int count = request.store_paths_size();
  if (count > options_.max_paths) {
    return absl::ResourceExhaustedError(Cat("status request for ", count, " store paths exceeds the limit of ",
                                            options_.max_paths, ": split it"));
  }
  // Distinct entries are read once; `slot[i]` maps request position i to its distinct entry: a store
  // path (0 .. distinct.size()) or a realisation key (distinct.size() + its index in `keys`).
  std::vector<consensus::StorePath> distinct;
  std::vector<consensus::RealisationKey> keys;
  struct Named final {
    bool realisation = false;
    size_t index = 0;  // into distinct or keys
    int first_use = 0;  // the request position that names it first
  };
  std::vector<Named> named;  // by distinct entry, in order of first use
  std::vector<size_t> entry_of(count);
  absl::flat_hash_map<std::string_view, size_t> seen;
  distinct.reserve(count);
  for (int i = 0; i < count; ++i) {
    const std::string& text = request.store_paths(i);
    auto [it, inserted] = seen.try_emplace(text, named.size());
    if (inserted) {
      if (consensus::RealisationKey::LooksLikeKey(text)) {
        absl::StatusOr<consensus::RealisationKey> key = consensus::RealisationKey::Parse(text);
        if (!key.ok()) {
          return absl::InvalidArgumentError(Cat("store_paths[", i, "]: not a realisation key: ",
                                                StdView(key.status().message())));
        }
        named.push_back(Named{.realisation = true, .index = keys.size(), .first_use = i});
        keys.push_back(*std::move(key));
      } else {
        absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(text);
        if (!path.ok()) {
          return absl::InvalidArgumentError(Cat("store_paths[", i, "]: ", StdView(path.status().message())));
        }
        named.push_back(Named{.realisation = false, .index = distinct.size(), .first_use = i});
        distinct.push_back(*std::move(path));
      }
    }
    entry_of[i] = it->second;
  }
  std::vector<size_t> slot(count);
  std::vector<int> first_use(distinct.size() + keys.size());  // by slot
  for (const Named& entry : named) {
    first_use[entry.realisation ? distinct.size() + entry.index : entry.index] = entry.first_use;
  }
  for (int i = 0; i < count; ++i) {
    const Named& entry = named[entry_of[i]];
    slot[i] = entry.realisation ? distinct.size() + entry.index : entry.index;
  }

  v1::StatusResponse response;
  if (count == 0) return response;

  // A repeated path is answered by reference; those small answers are built (and counted) first, their
  // verdict filled in at the end (every verdict takes the same room on the wire).
  std::vector<v1::PathStatus> references(named.size() < static_cast<size_t>(count) ? count : 0);
  uint64_t reference_bytes = 0;
  for (int i = 0; i < count && !references.empty(); ++i) {
    if (first_use[slot[i]] == i) continue;
    v1::PathStatus& reference = references[i];
    reference.set_store_path(request.store_paths(i));
    reference.set_verdict(v1::UNKNOWN);
    reference.set_repeat_of(first_use[slot[i]]);
    reference_bytes += ElementBytes(reference);
  }
  AnswerBudget budget(static_cast<uint64_t>(std::max<int64_t>(0, options_.max_answer_bytes)), reference_bytes);

  // Reading is the expensive part (random B-tree lookups); large requests are split so both cores work.
  std::vector<v1::PathStatus> answers(distinct.size() + keys.size());
  // Paths and realisation keys are split alike: chunks of paths first, then chunks of keys.
  auto chunks_for = [this](size_t items) {
    return items == 0 ? size_t{0}
                       : std::clamp<size_t>((items + kMinChunkPaths - 1) / kMinChunkPaths, 1,
                                            std::max(1, options_.read_threads));
  };
  const size_t path_chunks = std::max<size_t>(1, chunks_for(distinct.size()));
  const size_t key_chunks = chunks_for(keys.size());
  const size_t chunks = path_chunks + key_chunks;
  std::vector<absl::Status> failures(chunks);
  // One policy for the whole answer, even when an update is adopted while it is computed.
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  auto answer_chunk = [&](size_t c) {
    if (c < path_chunks) {
      const size_t begin = c * distinct.size() / path_chunks;
      const size_t end = (c + 1) * distinct.size() / path_chunks;
      failures[c] = AnswerRange(*policy, std::span<const consensus::StorePath>(distinct).subspan(begin, end - begin),
                                std::span<v1::PathStatus>(answers).subspan(begin, end - begin), budget);
      return;
    }
    const size_t k = c - path_chunks;
    const size_t begin = k * keys.size() / key_chunks;
    const size_t end = (k + 1) * keys.size() / key_chunks;
    failures[c] = AnswerRealisations(*policy, std::span<const consensus::RealisationKey>(keys).subspan(begin, end - begin),
                                     std::span<v1::PathStatus>(answers).subspan(distinct.size() + begin, end - begin),
                                     budget);
  };
  // This thread and the chunk pool's threads take chunks until none is left, so a pool busy with other
  // requests only means this thread answers more of its own. (Starting a thread per request cost 1.5
  // ms before it ran, on a 12 ms request.) A helper that starts late finds nothing to take and never
  // touches this frame, which `claims` outlives.
  struct Claims final {
    std::atomic<size_t> next{0};
    absl::Mutex mu;
    size_t done ABSL_GUARDED_BY(mu) = 0;
  };
  auto claims = std::make_shared<Claims>();
  auto take_chunks = [claims, chunks, &answer_chunk] {
    for (size_t c; (c = claims->next.fetch_add(1)) < chunks;) {
      answer_chunk(c);
      absl::MutexLock lock(&claims->mu);
      ++claims->done;
    }
  };
  for (size_t c = 1; c < chunks && chunk_pool_ != nullptr; ++c) chunk_pool_->Schedule(take_chunks);
  take_chunks();
  {
    absl::MutexLock lock(&claims->mu);
    auto all_done = [&claims, chunks]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return claims->done == chunks; };
    claims->mu.Await(absl::Condition(&all_done));
  }
  for (const absl::Status& failure : failures) {
    if (!failure.ok()) return failure;
  }
  if (budget.exceeded()) return TooLarge(request, named.size(), budget.answered(), budget.bytes());

  uint64_t by_verdict[4] = {0, 0, 0, 0};
  for (int i = 0; i < count; ++i) {
    auto verdict = proto::FromProto(answers[slot[i]].verdict());
    if (verdict.ok()) ++by_verdict[static_cast<int>(*verdict)];
  }
  CountVerdicts(by_verdict);

  auto* statuses = response.mutable_statuses();
  statuses->Reserve(count);
  for (int i = 0; i < count; ++i) {
    if (first_use[slot[i]] == i) {
      *statuses->Add() = std::move(answers[slot[i]]);
    } else {
      references[i].set_verdict(statuses->Get(first_use[slot[i]]).verdict());
      *statuses->Add() = std::move(references[i]);
    }
  }
  return response;
}

absl::Status StatusQuery::TooLarge(const v1::StatusRequest& request, size_t distinct, size_t answered,
                                   uint64_t bytes) const {
  const int count = request.store_paths_size();
  if (count == 1) {
    return absl::ResourceExhaustedError(
        Cat("the answer for ", request.store_paths(0), " would be ", bytes, " bytes, more than the node's limit of ",
            options_.max_answer_bytes,
            " bytes for a status answer; it cannot be split (the node's operator can raise max_status_answer_bytes)"));
  }
  if (answered == distinct) {
    return absl::ResourceExhaustedError(Cat("the answer for these ", count, " store paths would be ", bytes,
                                            " bytes, more than the node's limit of ", options_.max_answer_bytes,
                                            " bytes for a status answer; ask for fewer paths at a time"));
  }
  return absl::ResourceExhaustedError(
      Cat("the answer for these ", count, " store paths would be more than the node's limit of ",
          options_.max_answer_bytes, " bytes for a status answer (the answers to ", answered, " of them took ", bytes,
          " bytes); ask for fewer paths at a time"));
}

}  // namespace attest::server
