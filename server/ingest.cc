// This file is long on purpose, for the reason below.
// The ingest pipeline in one file: submitted and replicated items (attestations, realisations,
// statements) go through the same verification, planning, group commit and notification, whose
// ordering guarantees (acknowledged only after commit, one outcome per item) are easiest to check in
// one place.
#include "server/ingest.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/blocking_counter.h"
#include "consensus/dispute.h"
#include "consensus/text.h"
#include "proto/convert.h"
#include "server/grpc_status.h"
#include "server/ingest_plan.h"
#include "server/log.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// Batches smaller than this are checked on the calling thread: handing them to the pool costs more
// than it saves.
constexpr size_t kInlineCheckLimit = 8;
// Items per verification task: large enough that scheduling is noise next to ~50 us per verify, small
// enough that concurrent batches interleave and both verify threads stay busy.
constexpr size_t kMinChunk = 32;

// Identity of an attestation for duplicate detection: the fingerprint names the path and the claim.
std::string IdentityKey(std::string_view fingerprint, std::string_view key_name) {
  return Cat(fingerprint, "\n", key_name);
}

// Why an item is not stored. Its label in attest_rejected_attestations_total (docs/node.md, "Metrics", lists
// them) comes from this type, never from the free-text message.
enum class Rejection {
  kNone = 0,
  kMalformed,           // a field does not convert (label malformed_<field>, the proto::AttestationField)
  kUnknownKey,          // not a builder key of the policy, and the node does not observe unknown keys
  kMissingPublicKey,    // observing: the item carries no public key
  kMalformedPublicKey,  // observing: the public key it carries does not parse
  kPublicKeyMismatch,   // observing: the public key it carries is another key
  kBadSignature,
  kTooLarge,            // its log entry would not fit in one entry
  kDuplicate,           // the same attestation earlier in the batch
  kStorageRefused,      // the store refused it for its content
  kOutsidePolicy,       // replicated: a key outside the policy this node does not observe (skipped)
};

constexpr Rejection kCountedRejections[] = {
    Rejection::kMalformed,    Rejection::kUnknownKey, Rejection::kMissingPublicKey, Rejection::kMalformedPublicKey,
    Rejection::kPublicKeyMismatch, Rejection::kBadSignature, Rejection::kDuplicate, Rejection::kTooLarge,
    Rejection::kStorageRefused};

std::string_view RejectionLabel(Rejection rejection) {
  switch (rejection) {
    case Rejection::kNone:
      return "none";
    case Rejection::kMalformed:
      return "malformed";
    case Rejection::kUnknownKey:
      return "unknown_key";
    case Rejection::kMissingPublicKey:
      return "missing_public_key";
    case Rejection::kMalformedPublicKey:
      return "malformed_public_key";
    case Rejection::kPublicKeyMismatch:
      return "public_key_mismatch";
    case Rejection::kBadSignature:
      return "bad_signature";
    case Rejection::kTooLarge:
      return "too_large";
    case Rejection::kDuplicate:
      return "duplicate";
    case Rejection::kStorageRefused:
      return "storage_refused";
    case Rejection::kOutsidePolicy:
      return "outside_policy";
  }
  return "malformed";
}

// The key that verifies an attestation signed by `key_name`: the policy's builder key, else, when the
// node observes unknown keys, the key the item carries (`carried`, or `carried_problem` saying why it
// carries none that can be used). `key` is null exactly when `problem` is not kNone.
struct KeyLookup final {
  const consensus::PublicKey* key = nullptr;
  bool observed = false;  // `key` is the carried one: the attestation is stored for observation
  Rejection problem = Rejection::kNone;
};

KeyLookup LookUpKey(const consensus::Policy& policy, bool observe_unknown_keys, const std::string& key_name,
                    const std::optional<consensus::PublicKey>& carried, Rejection carried_problem) {
  if (const consensus::PublicKey* key = policy.FindBuilder(key_name); key != nullptr) return {.key = key};
  if (!observe_unknown_keys) return {.problem = Rejection::kUnknownKey};
  if (!carried.has_value()) {
    return {.problem = carried_problem == Rejection::kNone ? Rejection::kMissingPublicKey : carried_problem};
  }
  return {.key = &*carried, .observed = true};
}

// The public key an item carries, read only when the node observes unknown keys and the policy has no
// builder key of that name. On a problem, `problem` and `status` say what it is.
std::optional<consensus::PublicKey> CarriedKey(const consensus::Policy& policy, bool observe_unknown_keys,
                                               const std::string& public_key, const std::string& key_name,
                                               const std::string& prefix, Rejection& problem, absl::Status& status) {
  problem = Rejection::kMissingPublicKey;
  if (!observe_unknown_keys || public_key.empty() || policy.FindBuilder(key_name) != nullptr) return std::nullopt;
  absl::StatusOr<consensus::PublicKey> parsed = consensus::PublicKey::Parse(public_key);
  if (!parsed.ok()) {
    problem = Rejection::kMalformedPublicKey;
    status = absl::InvalidArgumentError(Cat(prefix, "public_key: ", StdView(parsed.status().message())));
    return std::nullopt;
  }
  if (parsed->name() != key_name) {
    problem = Rejection::kPublicKeyMismatch;
    status = absl::InvalidArgumentError(Cat(prefix, "public_key is key '", parsed->name(),
                                            "' but the signature is by key '", key_name,
                                            "' (send the public half of the signing key)"));
    return std::nullopt;
  }
  return *std::move(parsed);
}

// The rejection of an item whose key lookup failed (`key.problem` is not kNone).
absl::Status KeyRejection(const consensus::Policy& policy, const KeyLookup& key, const std::string& key_name,
                          const std::string& prefix, std::string_view what, const absl::Status& carried_status) {
  const std::string not_in_policy =
      Cat(prefix, "key '", key_name, "' is not a builder key in the policy (policy ", policy.Hash(), "); ");
  switch (key.problem) {
    case Rejection::kUnknownKey:
      return absl::UnauthenticatedError(
          Cat(not_in_policy, "ask the federation to add it, or enable observe_unknown_keys on this node"));
    case Rejection::kMissingPublicKey:
      return absl::UnauthenticatedError(
          Cat(not_in_policy, "this node stores such ", what,
              " for observation only when they carry public_key (the key's \"name:base64\" public half)"));
    default:
      return carried_status;
  }
}

// Verifies a signed claim replicated from a peer (an attestation entry's or a realisation entry's): with
// the policy's key, or the observed key it carries when this node observes unknown keys. A key this node
// neither counts nor observes is skipped, a signature that does not verify rejected (`item` is rejected
// either way). Returns the key lookup when the signature verified over `fingerprint`.
template <typename ItemT>
std::optional<KeyLookup> VerifyReplicatedClaim(const consensus::Policy& policy, bool observe_unknown_keys,
                                               const consensus::Signature& signature,
                                               const std::optional<consensus::PublicKey>& observed_key,
                                               const std::string& fingerprint, std::string_view what,
                                               std::string_view subject, ItemT& item) {
  const KeyLookup key = LookUpKey(policy, observe_unknown_keys, signature.key_name, observed_key, Rejection::kNone);
  if (key.problem != Rejection::kNone) {
    // Not an error of the peer's: this node neither counts nor observes the key.
    item.Reject(Rejection::kOutsidePolicy, absl::OkStatus());
    return std::nullopt;
  }
  if (!key.key->VerifyBytes(fingerprint, signature.bytes)) {
    item.Reject(Rejection::kBadSignature,
                absl::UnauthenticatedError(Cat("the ", what, " by key '", signature.key_name, "' of ", subject,
                                               " does not verify",
                                               key.observed ? " with the observed key it carries"
                                                            : " with the policy's key")));
    return std::nullopt;
  }
  return key;
}

// Verifies a realisation entry replicated from a peer as Replicate does an attestation entry. Fills
// `item.realisation`, or rejects it.
template <typename ItemT>
void CheckReplicatedRealisation(const consensus::Policy& policy, bool observe_unknown_keys,
                                const consensus::RealisationEntry& parsed, int64_t verify_unix, ItemT& item) {
  const consensus::RealisationAttestation& attestation = parsed.attestation;
  std::string fingerprint = attestation.claim.Fingerprint();
  const std::optional<KeyLookup> key =
      VerifyReplicatedClaim(policy, observe_unknown_keys, attestation.signature, parsed.observed_key, fingerprint,
                            "realisation attestation", attestation.claim.key.ToString(), item);
  if (!key.has_value()) return;
  item.realisation = VerifiedRealisation{.attestation = attestation,
                                         .observed_key = key->observed ? parsed.observed_key : std::nullopt,
                                         .fingerprint = std::move(fingerprint),
                                         .received_unix = std::min(parsed.received_unix, verify_unix)};
}

// A write that failed for something in what it writes (a record the store refuses, a dispute record
// that cannot be built), not for the state of the node: writing the same items again fails again, so
// the ingestor writes them one at a time to find the one at fault instead of failing them all, or, on a
// follower, stalling on them for good.
bool FailedForItsContent(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsInternal(status) || absl::IsOutOfRange(status);
}

std::string CodeLabel(absl::StatusCode code) { return absl::AsciiStrToLower(absl::StatusCodeToString(code)); }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct Ingestor::Item {
  absl::Status status;  // why it is not stored; OK while it may be stored
  Rejection rejection = Rejection::kNone;
  std::optional<proto::AttestationField> malformed_field;  // for kMalformed: the wire field at fault
  std::optional<VerifiedAttestation> verified;  // set once the signature verified
  // For a realisation attestation instead: set once its signature verified.
  std::optional<VerifiedRealisation> realisation;
  IngestOutcome outcome = IngestOutcome::kRejected;

  void Reject(Rejection why, absl::Status reason) {
    rejection = why;
    status = std::move(reason);
    verified.reset();
    realisation.reset();
  }
};

struct Ingestor::PendingWrite {
  std::vector<Item*> items;  // checked items, in batch order
  absl::Status status;       // of the commit
  bool done = false;
  // Set for a batch replicated from a peer: it is written on its own (not grouped with
  // submissions), with the peer as origin and its progress.
  const ReplicationBatch* replication = nullptr;
  // For a replicated batch: store the follower's progress and refused entries with it. Off while the
  // items of a batch whose write failed for its content are written one at a time (the progress is
  // stored last, so a crash in between replays the batch instead of skipping part of it).
  bool store_progress = true;
  // Maintainers' statements to store (verified), with their origin ("" = submitted here).
  std::vector<consensus::VerifiedResolution> statements;
  std::string statements_origin;
};

// The Ingestor's metrics, resolved once so the write path only does atomic adds.
struct Ingestor::Metrics final {
  explicit Metrics(MetricsRegistry& registry)
      : submitted(registry.AddCounter("attest_submitted_attestations_total",
                                      "Attestations submitted to this node, by result (accepted, already_present, "
                                      "observed, rejected).",
                                      {"result"})),
        rejected(registry.AddCounter("attest_rejected_attestations_total",
                                     "Submitted attestations rejected, by reason.", {"reason"})),
        batches(registry.AddCounter("attest_submit_batches_total",
                                    "Submit calls, by result: ok, or the lower-case status code that failed the "
                                    "whole batch.",
                                    {"result"})),
        submitted_realisations(registry.AddCounter(
            "attest_submitted_realisations_total",
            "Realisation attestations submitted to this node, by result (accepted, already_present, observed, "
            "rejected); their rejections are counted in attest_rejected_attestations_total.",
            {"result"})),
        replicated(registry.AddCounter("attest_replicated_attestations_total",
                                       "Attestations replicated from a peer's log, by peer and result (stored, "
                                       "already_present, rejected, skipped).",
                                       {"peer", "result"})),
        accepted(&submitted.Labels({"accepted"})),
        already_present(&submitted.Labels({"already_present"})),
        observed(&submitted.Labels({"observed"})),
        rejected_total(&submitted.Labels({"rejected"})),
        batches_ok(&batches.Labels({"ok"})) {
    HistogramFamily& verify = registry.AddHistogram(
        "attest_verify_seconds", "Checking one batch (conversion, key lookup, Ed25519 verification), by source.",
        {"source"}, kLatencyBuckets);
    HistogramFamily& commit = registry.AddHistogram(
        "attest_commit_seconds",
        "One group commit by the ingest writer (read, tally, dispute records, one transaction), by source.",
        {"source"}, kLatencyBuckets);
    verify_submit = &verify.Labels({"submit"});
    verify_replication = &verify.Labels({"replication"});
    commit_submit = &commit.Labels({"submit"});
    commit_replication = &commit.Labels({"replication"});
    for (proto::AttestationField field : proto::kAttestationFields) {
      by_malformed_field.emplace(field, &rejected.Labels({Cat(RejectionLabel(Rejection::kMalformed), "_",
                                                              proto::AttestationFieldName(field))}));
    }
    for (Rejection rejection : kCountedRejections) {
      by_rejection.emplace(rejection, &rejected.Labels({std::string(RejectionLabel(rejection))}));
    }
  }

  Counter* RejectedCounter(const Item& item) const {
    if (item.rejection == Rejection::kMalformed && item.malformed_field.has_value()) {
      return by_malformed_field.at(*item.malformed_field);
    }
    auto it = by_rejection.find(item.rejection);
    return it != by_rejection.end() ? it->second : by_rejection.at(Rejection::kMalformed);
  }

  // Counts one Submit's results: items [0, attestations) are attestations, the rest realisations.
  void CountResults(const std::vector<Item>& items, size_t attestations) {
    uint64_t counts[4] = {0, 0, 0, 0};
    uint64_t realisation_counts[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < items.size(); ++i) {
      const Item& item = items[i];
      uint64_t* into = i < attestations ? counts : realisation_counts;
      if (item.rejection != Rejection::kNone) {
        ++into[static_cast<int>(IngestOutcome::kRejected)];
        RejectedCounter(item)->Increment();
      } else {
        ++into[static_cast<int>(item.outcome)];
      }
    }
    for (int r = 0; r < 4; ++r) {
      if (realisation_counts[r] == 0) continue;
      static constexpr std::string_view kResults[4] = {"accepted", "already_present", "observed", "rejected"};
      submitted_realisations.Labels({std::string(kResults[r])}).Increment(realisation_counts[r]);
    }
    CountAttestations(counts);
  }

  void CountAttestations(const uint64_t (&counts)[4]) {
    if (counts[0] != 0) accepted->Increment(counts[0]);
    if (counts[1] != 0) already_present->Increment(counts[1]);
    if (counts[2] != 0) observed->Increment(counts[2]);
    if (counts[3] != 0) rejected_total->Increment(counts[3]);
  }

  CounterFamily& submitted;
  CounterFamily& rejected;
  CounterFamily& batches;
  CounterFamily& submitted_realisations;
  CounterFamily& replicated;
  Counter* accepted;
  Counter* already_present;
  Counter* observed;
  Counter* rejected_total;
  Counter* batches_ok;
  // Read-only after construction, so looked up without a lock.
  absl::flat_hash_map<Rejection, Counter*> by_rejection;
  absl::flat_hash_map<proto::AttestationField, Counter*> by_malformed_field;
  Histogram* verify_submit;
  Histogram* verify_replication;
  Histogram* commit_submit;
  Histogram* commit_replication;
};

Ingestor::Ingestor(const PolicyBook& policy, storage::StoreWriter* writer, storage::Ledger* ledger,
                   const consensus::SecretKey& node_key, Clock clock, IngestOptions options)
    : policy_(policy),
      writer_(writer),
      ledger_(ledger),
      node_key_(node_key),
      clock_(std::move(clock)),
      options_(options),
      verify_pool_(std::make_unique<WorkerPool>("verify", std::max(1, options.verify_threads))),
      own_metrics_(options.metrics == nullptr ? std::make_unique<MetricsRegistry>() : nullptr),
      metrics_(std::make_unique<Metrics>(options.metrics != nullptr ? *options.metrics : *own_metrics_)) {}

Ingestor::~Ingestor() = default;

absl::StatusOr<std::vector<IngestResult>> Ingestor::Submit(
    const google::protobuf::RepeatedPtrField<v1::Attestation>& batch) {
  static const google::protobuf::RepeatedPtrField<v1::RealisationAttestation> kNoRealisations;
  return Submit(batch, kNoRealisations);
}

absl::StatusOr<std::vector<IngestResult>> Ingestor::Submit(
    const google::protobuf::RepeatedPtrField<v1::Attestation>& batch,
    const google::protobuf::RepeatedPtrField<v1::RealisationAttestation>& realisations) {
  absl::StatusOr<std::vector<IngestResult>> results = SubmitBatch(batch, realisations);
  if (results.ok()) {
    metrics_->batches_ok->Increment();
  } else {
    metrics_->batches.Labels({CodeLabel(results.status().code())}).Increment();
  }
  return results;
}

absl::StatusOr<std::vector<IngestResult>> Ingestor::SubmitBatch(
    const google::protobuf::RepeatedPtrField<v1::Attestation>& batch,
    const google::protobuf::RepeatedPtrField<v1::RealisationAttestation>& realisations) {
  const size_t attestation_count = static_cast<size_t>(batch.size());
  const size_t realisation_count = static_cast<size_t>(realisations.size());
  // Items [0, attestation_count) are the attestations, the rest the realisations.
  const size_t count = attestation_count + realisation_count;
  if (count == 0) {
    return absl::InvalidArgumentError("the batch is empty: send at least one attestation or realisation");
  }
  if (count > static_cast<size_t>(options_.max_batch)) {
    return absl::ResourceExhaustedError(
        realisation_count == 0
            ? Cat("batch of ", count, " attestations exceeds the limit of ", options_.max_batch, ": split it")
            : Cat("batch of ", attestation_count, " attestations and ", realisation_count,
                  " realisations exceeds the limit of ", options_.max_batch, " items: split it"));
  }

  std::vector<Item> items(count);
  const auto verify_start = std::chrono::steady_clock::now();
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  VerifyInChunks(count, [&](size_t i) {
    if (i < attestation_count) {
      CheckItem(*policy, batch[static_cast<int>(i)], i, attestation_count, items[i]);
    } else {
      const size_t r = i - attestation_count;
      CheckRealisationItem(*policy, realisations[static_cast<int>(r)], r, realisation_count, items[i]);
    }
  });
  metrics_->verify_submit->Observe(SecondsSince(verify_start));

  // The first occurrence of an identical attestation is the one that is stored.
  absl::flat_hash_map<std::string, size_t> first_seen;
  first_seen.reserve(count);
  PendingWrite write;
  write.items.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Item& item = items[i];
    if (item.rejection != Rejection::kNone) continue;
    if (i >= attestation_count) {
      // Realisation fingerprints never look like path fingerprints ("1;..."), so one map serves both.
      auto [it, inserted] = first_seen.try_emplace(
          IdentityKey(item.realisation->fingerprint, item.realisation->attestation.key_name()), i);
      if (!inserted) {
        item.Reject(Rejection::kDuplicate,
                    absl::InvalidArgumentError(Cat("realisation ", i - attestation_count + 1, " of ", realisation_count,
                                                   ": duplicate of realisation ", it->second - attestation_count + 1,
                                                   " (same key, output path and signing key; send it once)")));
        continue;
      }
      write.items.push_back(&item);
      continue;
    }
    auto [it, inserted] =
        first_seen.try_emplace(IdentityKey(item.verified->fingerprint, item.verified->attestation.key_name()), i);
    if (!inserted) {
      item.Reject(Rejection::kDuplicate,
                  absl::InvalidArgumentError(Cat("attestation ", i + 1, " of ", attestation_count,
                                                 ": duplicate of attestation ", it->second + 1,
                                                 " (same store path, claim and key; send it once)")));
      continue;
    }
    write.items.push_back(&item);
  }

  if (!write.items.empty()) {
    absl::Status committed = Commit(write);
    if (!committed.ok() && FailedForItsContent(committed) && write.items.size() > 1) {
      committed = CommitOneByOne(write.items, nullptr, [&](Item& item, const absl::Status& refused) {
        const size_t i = static_cast<size_t>(&item - items.data());
        const std::string prefix = i < attestation_count
                                       ? Cat("attestation ", i + 1, " of ", attestation_count)
                                       : Cat("realisation ", i - attestation_count + 1, " of ", realisation_count);
        item.Reject(Rejection::kStorageRefused,
                    absl::Status(refused.code(), Cat(prefix, ": the node could not store it (",
                                                     StdView(refused.message()), "); the other items were processed")));
      });
    }
    if (!committed.ok()) return committed;
  }
  metrics_->CountResults(items, attestation_count);

  std::vector<IngestResult> results(count);
  for (size_t i = 0; i < count; ++i) {
    if (items[i].rejection != Rejection::kNone) {
      results[i] = IngestResult{IngestOutcome::kRejected, std::move(items[i].status)};
    } else {
      results[i] = IngestResult{items[i].outcome, absl::OkStatus()};
    }
  }
  return results;
}

void Ingestor::VerifyInChunks(size_t count, absl::FunctionRef<void(size_t)> check) {
  if (count <= kInlineCheckLimit) {
    for (size_t i = 0; i < count; ++i) check(i);
    return;
  }
  const size_t threads = static_cast<size_t>(std::max(1, verify_pool_->size()));
  const size_t chunk = std::max(kMinChunk, (count + threads * 4 - 1) / (threads * 4));
  absl::BlockingCounter pending(static_cast<int>((count + chunk - 1) / chunk));
  for (size_t begin = 0; begin < count; begin += chunk) {
    const size_t end = std::min(count, begin + chunk);
    verify_pool_->Schedule([&check, &pending, begin, end] {
      for (size_t i = begin; i < end; ++i) check(i);
      pending.DecrementCount();
    });
  }
  pending.Wait();
}

void Ingestor::CheckItem(const consensus::Policy& policy, const v1::Attestation& message, size_t index, size_t count,
                         Item& item) const {
  const std::string prefix = Cat("attestation ", index + 1, " of ", count, ": ");
  proto::AttestationField field_at_fault;
  absl::StatusOr<consensus::Attestation> attestation = proto::FromProto(message, &field_at_fault);
  if (!attestation.ok()) {
    item.Reject(Rejection::kMalformed,
                absl::InvalidArgumentError(Cat(prefix, StdView(attestation.status().message()))));
    item.malformed_field = field_at_fault;
    return;
  }
  const std::string& key_name = attestation->key_name();
  Rejection carried_problem = Rejection::kNone;
  absl::Status carried_status;
  std::optional<consensus::PublicKey> carried = CarriedKey(policy, options_.observe_unknown_keys, message.public_key(),
                                                           key_name, prefix, carried_problem, carried_status);
  const KeyLookup key = LookUpKey(policy, options_.observe_unknown_keys, key_name, carried, carried_problem);
  if (key.problem != Rejection::kNone) {
    item.Reject(key.problem, KeyRejection(policy, key, key_name, prefix, "attestations", carried_status));
    return;
  }
  std::string fingerprint = attestation->claim.Fingerprint();
  if (!key.key->VerifyBytes(fingerprint, attestation->signature.bytes)) {
    item.Reject(Rejection::kBadSignature,
                absl::UnauthenticatedError(
                    Cat(prefix, "signature does not verify with key '", key_name, "' over the fingerprint of ",
                        attestation->claim.path.full(),
                        key.observed ? " (was it made with the secret half of the public_key sent along?)"
                                     : " (is the key in the policy the one the builder signs with?)")));
    return;
  }
  std::optional<consensus::PublicKey> observed_key = key.observed ? std::move(carried) : std::nullopt;
  if (absl::Status loggable = consensus::CheckAttestationLoggable(*attestation, observed_key); !loggable.ok()) {
    item.Reject(Rejection::kTooLarge, absl::InvalidArgumentError(Cat(prefix, StdView(loggable.message()))));
    return;
  }
  item.verified = VerifiedAttestation{.attestation = *std::move(attestation),
                                      .observed_key = std::move(observed_key),
                                      .fingerprint = std::move(fingerprint)};
}

void Ingestor::CheckRealisationItem(const consensus::Policy& policy, const v1::RealisationAttestation& message,
                                    size_t index, size_t count, Item& item) const {
  const std::string prefix = Cat("realisation ", index + 1, " of ", count, ": ");
  absl::StatusOr<consensus::RealisationAttestation> attestation = proto::FromProto(message);
  if (!attestation.ok()) {
    item.Reject(Rejection::kMalformed,
                absl::InvalidArgumentError(Cat(prefix, StdView(attestation.status().message()))));
    return;
  }
  const std::string& key_name = attestation->key_name();
  Rejection carried_problem = Rejection::kNone;
  absl::Status carried_status;
  std::optional<consensus::PublicKey> carried = CarriedKey(policy, options_.observe_unknown_keys, message.public_key(),
                                                           key_name, prefix, carried_problem, carried_status);
  const KeyLookup key = LookUpKey(policy, options_.observe_unknown_keys, key_name, carried, carried_problem);
  if (key.problem != Rejection::kNone) {
    item.Reject(key.problem, KeyRejection(policy, key, key_name, prefix, "realisations", carried_status));
    return;
  }
  std::string fingerprint = attestation->claim.Fingerprint();
  if (!key.key->VerifyBytes(fingerprint, attestation->signature.bytes)) {
    item.Reject(Rejection::kBadSignature,
                absl::UnauthenticatedError(Cat(
                    prefix, "signature does not verify with key '", key_name, "' over the realisation fingerprint of ",
                    attestation->claim.key.ToString(), " (",
                    consensus::RealisationFormatName(attestation->claim.key.format()),
                    " format; a signature over the other format's fingerprint does not verify",
                    key.observed ? ", nor one made with another key than the public_key sent along)"
                                 : "; is the key in the policy the one the builder signs with?)")));
    return;
  }
  std::optional<consensus::PublicKey> observed_key = key.observed ? std::move(carried) : std::nullopt;
  if (absl::Status loggable = consensus::CheckRealisationLoggable(*attestation, observed_key); !loggable.ok()) {
    item.Reject(Rejection::kTooLarge, absl::InvalidArgumentError(Cat(prefix, StdView(loggable.message()))));
    return;
  }
  item.realisation = VerifiedRealisation{.attestation = *std::move(attestation),
                                         .observed_key = std::move(observed_key),
                                         .fingerprint = std::move(fingerprint)};
}

absl::StatusOr<ReplicationCounts> Ingestor::Replicate(ReplicationBatch batch) {
  // Items [0, attestation_count) are the attestation entries, the rest the realisation entries.
  const size_t attestation_count = batch.attestations.size();
  const size_t count = attestation_count + batch.realisations.size();
  std::vector<Item> items(count);
  const auto verify_start = std::chrono::steady_clock::now();
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  const int64_t verify_unix = absl::ToUnixSeconds(clock_());
  VerifyInChunks(count, [this, &batch, &items, &policy, verify_unix, attestation_count](size_t i) {
    if (i >= attestation_count) {
      CheckReplicatedRealisation(*policy, options_.observe_unknown_keys, batch.realisations[i - attestation_count].parsed,
                                 verify_unix, items[i]);
      return;
    }
    const consensus::AttestationEntry& parsed = batch.attestations[i].parsed;
    const consensus::Attestation& attestation = parsed.attestation;
    Item& item = items[i];
    std::string fingerprint = attestation.claim.Fingerprint();
    const std::optional<KeyLookup> key =
        VerifyReplicatedClaim(*policy, options_.observe_unknown_keys, attestation.signature, parsed.observed_key,
                              fingerprint, "attestation", attestation.claim.path.full(), item);
    if (!key.has_value()) return;
    // The origin's received time, so a retired key's cut-off decides the same on every node; never
    // later than this node's clock (a peer cannot date an attestation into the future).
    item.verified = VerifiedAttestation{.attestation = attestation,
                                        .observed_key = key->observed ? parsed.observed_key : std::nullopt,
                                        .fingerprint = std::move(fingerprint),
                                        .received_unix = std::min(parsed.received_unix, verify_unix)};
  });
  if (count != 0) metrics_->verify_replication->Observe(SecondsSince(verify_start));

  ReplicationCounts counts;
  const int64_t now_unix = absl::ToUnixSeconds(clock_());
  PendingWrite write;
  write.replication = &batch;
  write.statements_origin = batch.peer;
  std::vector<size_t> statement_sources;  // parallel to write.statements: the index in batch.resolutions
  for (const ReplicatedResolution& replicated : batch.resolutions) {
    absl::StatusOr<consensus::VerifiedResolution> verified =
        consensus::VerifyResolution(replicated.signed_note, *policy);
    if (!verified.ok()) {
      ++counts.rejected;
      batch.rejected.push_back(storage::RejectedEntry{.peer = batch.peer,
                                                      .index = replicated.index,
                                                      .reason = std::string(StdView(verified.status().message())),
                                                      .entry = replicated.entry,
                                                      .detected_unix = now_unix});
      continue;
    }
    write.statements.push_back(*std::move(verified));
    statement_sources.push_back(static_cast<size_t>(&replicated - batch.resolutions.data()));
  }
  counts.resolutions = static_cast<int64_t>(write.statements.size());
  for (size_t i = 0; i < count; ++i) {
    if (items[i].rejection == Rejection::kNone) {
      write.items.push_back(&items[i]);
    } else if (items[i].rejection == Rejection::kOutsidePolicy) {
      ++counts.skipped;
    } else {
      ++counts.rejected;
      const bool attestation = i < attestation_count;
      batch.rejected.push_back(storage::RejectedEntry{
          .peer = batch.peer,
          .index = attestation ? batch.attestations[i].index : batch.realisations[i - attestation_count].index,
          .reason = std::string(StdView(items[i].status.message())),
          .entry = attestation ? batch.attestations[i].entry : batch.realisations[i - attestation_count].entry,
          .detected_unix = now_unix});
    }
  }
  absl::Status committed = Commit(write);
  if (!committed.ok() && FailedForItsContent(committed)) {
    // Never a permanent stall: the entries at fault are recorded as refused with their reason, the
    // rest is stored, and the cursor moves on.
    LogWarning(Cat("peer ", batch.peer, ": the batch up to entry ", batch.progress.cursor,
                   " could not be stored as a whole (", StdView(committed.message()), "); storing its entries one at a time"));
    auto refuse = [&](uint64_t index, const std::string& entry, const absl::Status& refused) {
      ++counts.rejected;
      batch.rejected.push_back(storage::RejectedEntry{
          .peer = batch.peer,
          .index = index,
          .reason = Cat("this node could not store it: ", StdView(refused.message())),
          .entry = entry,
          .detected_unix = now_unix});
    };
    committed = CommitOneByOne(write.items, &batch, [&](Item& item, const absl::Status& refused) {
      const size_t i = static_cast<size_t>(&item - items.data());
      if (i < attestation_count) {
        refuse(batch.attestations[i].index, batch.attestations[i].entry, refused);
      } else {
        const ReplicatedRealisation& source = batch.realisations[i - attestation_count];
        refuse(source.index, source.entry, refused);
      }
    });
    for (size_t i = 0; committed.ok() && i < write.statements.size(); ++i) {
      PendingWrite one;
      one.replication = &batch;
      one.store_progress = false;
      one.statements_origin = batch.peer;
      one.statements.push_back(write.statements[i]);
      committed = Commit(one);
      if (!committed.ok() && FailedForItsContent(committed)) {
        const ReplicatedResolution& source = batch.resolutions[statement_sources[i]];
        refuse(source.index, source.entry, committed);
        --counts.resolutions;
        committed = absl::OkStatus();
      }
    }
    if (committed.ok()) {
      // The progress and the refused entries, now that everything before them is stored.
      PendingWrite progress;
      progress.replication = &batch;
      committed = Commit(progress);
    }
  }
  if (!committed.ok()) return committed;
  for (Item* item : write.items) {
    if (item->outcome == IngestOutcome::kAlreadyPresent) {
      ++counts.already_present;
    } else {
      ++counts.stored;
    }
  }
  for (auto [result, n] : {std::pair<std::string_view, int64_t>{"stored", counts.stored},
                           {"already_present", counts.already_present},
                           {"rejected", counts.rejected},
                           {"skipped", counts.skipped}}) {
    if (n != 0) metrics_->replicated.Labels({batch.peer, result}).Increment(static_cast<uint64_t>(n));
  }
  return counts;
}

absl::Status Ingestor::CommitOneByOne(std::vector<Item*>& items, const ReplicationBatch* replication,
                                      absl::FunctionRef<void(Item&, const absl::Status&)> refuse) {
  std::vector<Item*> stored;
  stored.reserve(items.size());
  for (Item* item : items) {
    PendingWrite one;
    one.items.push_back(item);
    one.replication = replication;
    one.store_progress = false;
    absl::Status status = Commit(one);
    if (status.ok()) {
      stored.push_back(item);
    } else if (FailedForItsContent(status)) {
      refuse(*item, status);
    } else {
      return status;
    }
  }
  items = std::move(stored);
  return absl::OkStatus();
}

bool Ingestor::WriterIdleOrDone(PendingWrite* write) const { return write->done || !writer_busy_; }

absl::Status Ingestor::Commit(PendingWrite& write) {
  if (options_.accepting_writes) {
    if (absl::Status accepting = options_.accepting_writes(); !accepting.ok()) return accepting;
  }
  absl::MutexLock lock(&mu_);
  queue_.push_back(&write);
  while (!WriterIdleOrDone(&write)) writer_done_.Wait(&mu_);
  if (write.done) return write.status;

  // This thread is the writer until its own batch is committed, taking along whatever queued up
  // meanwhile (group commit: one transaction, one fsync for several batches).
  writer_busy_ = true;
  while (!write.done) {
    std::vector<PendingWrite*> group;
    size_t attestations = 0;
    while (!queue_.empty()) {
      PendingWrite* next = queue_.front();
      if (!group.empty() &&
          (attestations + next->items.size() > static_cast<size_t>(options_.max_group_attestations) ||
           next->replication != nullptr || group.front()->replication != nullptr)) {
        break;
      }
      attestations += next->items.size();
      group.push_back(next);
      queue_.erase(queue_.begin());
    }
    mu_.Unlock();
    const auto commit_start = std::chrono::steady_clock::now();
    absl::Status status = WriteGroup(group);
    (group.front()->replication != nullptr ? metrics_->commit_replication : metrics_->commit_submit)
        ->Observe(SecondsSince(commit_start));
    if (!status.ok() && group.size() > 1) {
      // One batch must not fail another: retry each on its own so the failure lands where it belongs.
      for (PendingWrite* member : group) member->status = WriteGroup({member});
    } else {
      for (PendingWrite* member : group) member->status = status;
    }
    mu_.Lock();
    for (PendingWrite* member : group) member->done = true;
    writer_done_.SignalAll();
  }
  writer_busy_ = false;
  writer_done_.SignalAll();
  return write.status;
}

absl::Status Ingestor::WriteGroup(const std::vector<PendingWrite*>& group) {
  // A replicated batch is alone in its group.
  const ReplicationBatch* replication = group.empty() ? nullptr : group.front()->replication;
  IngestPlanInput input;
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  input.policy = policy.get();
  input.node_key = &node_key_;
  input.resolutions = options_.resolutions;
  input.now_unix = absl::ToUnixSeconds(clock_());
  if (replication != nullptr) input.peer = replication->peer;

  // Read: what the store holds for the affected paths and the disputes the statements are about.
  std::vector<Item*> items;  // the attestations
  std::vector<const VerifiedAttestation*> verified;
  std::vector<Item*> realisation_items;
  std::vector<const VerifiedRealisation*> realisations;
  for (PendingWrite* write : group) {
    for (Item* item : write->items) {
      if (item->realisation.has_value()) {
        realisation_items.push_back(item);
        realisations.push_back(&*item->realisation);
      } else {
        items.push_back(item);
        verified.push_back(&*item->verified);
      }
    }
  }
  const std::vector<consensus::StorePath> paths = AffectedPaths(verified);
  auto stored = ledger_->AttestationsFor(paths);
  if (!stored.ok()) {
    return StorageFailure(Cat("reading the stored attestations of ", paths.size(), " paths"), stored.status());
  }
  if (stored->size() != paths.size()) {
    return absl::InternalError(Cat("AttestationsFor returned ", stored->size(), " answers for ", paths.size(),
                                   " paths"));
  }
  const std::vector<consensus::RealisationKey> keys = AffectedKeys(realisations);
  std::vector<std::vector<storage::StoredRealisation>> stored_realisations;
  if (!keys.empty()) {
    auto read = ledger_->RealisationsFor(keys);
    if (!read.ok()) {
      return StorageFailure(Cat("reading the stored realisations of ", keys.size(), " keys"), read.status());
    }
    if (read->size() != keys.size()) {
      return absl::InternalError(Cat("RealisationsFor returned ", read->size(), " answers for ", keys.size(), " keys"));
    }
    stored_realisations = *std::move(read);
  }
  std::vector<PlannedStatement> statements;
  for (PendingWrite* write : group) {
    for (const consensus::VerifiedResolution& statement : write->statements) {
      const std::string& id = statement.resolution.dispute_id;
      auto dispute = ledger_->GetDispute(id);
      if (!dispute.ok()) return StorageFailure(Cat("reading dispute ", id), dispute.status());
      statements.push_back(PlannedStatement{
          .statement = &statement, .origin = write->statements_origin, .stored_dispute = *std::move(dispute)});
    }
  }

  // Plan.
  input.items = verified;
  input.paths = paths;
  input.stored = *stored;
  input.statements = statements;
  input.realisations = realisations;
  input.keys = keys;
  input.stored_realisations = stored_realisations;
  absl::StatusOr<IngestPlan> plan = PlanIngest(input);
  if (!plan.ok()) return plan.status();
  storage::WriteBatch& batch = plan->batch;
  if (replication != nullptr && group.front()->store_progress) {
    batch.peer_progress = replication->progress;
    batch.rejected_entries = replication->rejected;
    batch.peer_entries = replication->entries;
  }

  // Write.
  std::vector<IngestOutcome> outcomes(items.size(), IngestOutcome::kAlreadyPresent);
  std::vector<IngestOutcome> realisation_outcomes(realisation_items.size(), IngestOutcome::kAlreadyPresent);
  if (!batch.attestations.empty() || !batch.realisations.empty() || !batch.resolutions.empty() ||
      replication != nullptr) {
    auto written = writer_->Write(batch);
    if (!written.ok()) {
      return StorageFailure(batch.realisations.empty()
                                ? Cat("storing ", batch.attestations.size(), " attestations")
                                : Cat("storing ", batch.attestations.size(), " attestations and ",
                                      batch.realisations.size(), " realisations"),
                            written.status());
    }
    // One outcome per attestation, then one per realisation (storage/store_writer.h).
    if (written->size() != plan->written.size() + plan->realisations_written.size()) {
      return absl::InternalError(Cat("Write returned ", written->size(), " outcomes for ", plan->written.size(),
                                     " attestations and ", plan->realisations_written.size(), " realisations"));
    }
    for (size_t w = 0; w < plan->written.size(); ++w) {
      if ((*written)[w] != storage::WriteOutcome::kInserted) continue;
      const size_t i = plan->written[w];
      outcomes[i] = items[i]->verified->observed_key ? IngestOutcome::kObserved : IngestOutcome::kAccepted;
    }
    for (size_t w = 0; w < plan->realisations_written.size(); ++w) {
      if ((*written)[plan->written.size() + w] != storage::WriteOutcome::kInserted) continue;
      const size_t i = plan->realisations_written[w];
      realisation_outcomes[i] =
          realisation_items[i]->realisation->observed_key ? IngestOutcome::kObserved : IngestOutcome::kAccepted;
    }
  }

  // Notify.
  for (size_t i = 0; i < items.size(); ++i) items[i]->outcome = outcomes[i];
  for (size_t i = 0; i < realisation_items.size(); ++i) realisation_items[i]->outcome = realisation_outcomes[i];
  if (options_.on_commit && (!batch.attestations.empty() || !batch.realisations.empty())) {
    // batch.attestations is grouped by path, so neighbours suffice to drop repeats.
    std::vector<consensus::StorePath> changed;
    for (const storage::StoredAttestation& s : batch.attestations) {
      const consensus::StorePath& path = s.attestation.claim.path;
      if (changed.empty() || !(changed.back() == path)) changed.push_back(path);
    }
    // A new realisation may change what is known of its output path (a CA path is trusted through
    // its realisation).
    absl::flat_hash_set<consensus::StorePath> listed(changed.begin(), changed.end());
    for (const storage::StoredRealisation& s : batch.realisations) {
      const consensus::StorePath& path = s.attestation.claim.out_path;
      if (listed.insert(path).second) changed.push_back(path);
    }
    options_.on_commit(changed);
  }
  if (options_.on_realisations_commit && !batch.realisations.empty()) {
    std::vector<consensus::Realisation> claims;
    claims.reserve(batch.realisations.size());
    for (const storage::StoredRealisation& s : batch.realisations) claims.push_back(s.attestation.claim);
    options_.on_realisations_commit(claims);
  }
  if (options_.resolutions != nullptr && !statements.empty()) {
    for (const PlannedStatement& statement : statements) options_.resolutions->Add(*statement.statement);
    // A statement may start or end an exclusion (a later one supersedes a malicious one): rare enough
    // to drop every cached verdict.
    if (options_.on_exclusions_changed) options_.on_exclusions_changed();
  }
  LogLines(LogLevel::kInfo, plan->state_changes);
  return absl::OkStatus();
}

absl::StatusOr<ResolveResult> Ingestor::Resolve(std::string_view signed_statement) {
  absl::StatusOr<consensus::VerifiedResolution> verified =
      consensus::VerifyResolution(signed_statement, *policy_.current());
  if (!verified.ok()) return verified.status();
  const consensus::Resolution& resolution = verified->resolution;
  const absl::Time now = clock_();
  if (absl::FromUnixSeconds(resolution.time_unix) > now + kMaxResolutionClockSkew) {
    return absl::FailedPreconditionError(
        Cat("the statement is dated ", resolution.time_unix, ", more than ",
            absl::FormatDuration(kMaxResolutionClockSkew), " after this node's clock (",
            absl::ToUnixSeconds(now), "): check the signing machine's clock and sign again"));
  }
  absl::MutexLock resolving(&resolve_mu_);
  auto dispute = ledger_->GetDispute(resolution.dispute_id);
  if (!dispute.ok()) return StorageFailure(Cat("reading dispute ", resolution.dispute_id), dispute.status());
  if (!dispute->has_value()) {
    return absl::NotFoundError(Cat("no dispute ", resolution.dispute_id, " (", resolution.subject.ToString(),
                                   ") on this node: `attest disputes list` shows the disputes it holds"));
  }
  if (resolution.outcome == consensus::ResolutionOutcome::kMalicious) {
    absl::StatusOr<consensus::DisputeRecord> record =
        consensus::DisputeRecord::FromSignedNote((*dispute)->signed_record);
    if (!record.ok()) {
      return absl::DataLossError(Cat("stored dispute record ", resolution.dispute_id, " does not parse"));
    }
    absl::flat_hash_set<std::string> signers;
    for (const consensus::DisputeSide& side : record->sides) {
      for (const consensus::DisputeSide::Entry& entry : side.entries) signers.insert(entry.signature.key_name);
    }
    for (const std::string& builder : resolution.builders) {
      if (!signers.contains(builder)) {
        return absl::InvalidArgumentError(Cat("builder ", builder, " signed nothing in dispute ",
                                              resolution.dispute_id,
                                              ": name only builder keys that signed one of its sides"));
      }
    }
  }
  auto held = ledger_->ResolutionsFor(resolution.dispute_id);
  if (!held.ok()) return StorageFailure(Cat("reading the resolutions of ", resolution.dispute_id), held.status());
  for (const storage::StoredResolution& stored : *held) {
    if (stored.signed_note == verified->signed_note) {
      return ResolveResult{.statement = *std::move(verified), .already_present = true};
    }
  }
  if (!held->empty()) {
    const storage::StoredResolution& latest = held->back();  // oldest first
    if (resolution.time_unix <= latest.time_unix) {
      return absl::FailedPreconditionError(
          Cat("the statement is dated ", resolution.time_unix, ", not after the latest this node holds for ",
              resolution.dispute_id, " (", consensus::OutcomeName(latest.outcome), " by ", latest.maintainer,
              " at ", latest.time_unix, "): sign a new statement"));
    }
  }
  PendingWrite write;
  write.statements.push_back(*verified);
  if (absl::Status status = Commit(write); !status.ok()) return status;
  return ResolveResult{.statement = *std::move(verified), .already_present = false};
}

}  // namespace attest::server
