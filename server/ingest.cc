#include "server/ingest.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <tuple>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "consensus/tally.h"
#include "proto/convert.h"
#include "server/grpc_status.h"
#include "server/log.h"
#include "server/path_tally.h"

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

std::string JoinNames(const std::vector<std::string>& names) {
  return absl::StrJoin(names, ", ");
}

// Why an item was rejected, as the `reason` label of attest_rejected_attestations_total: short and
// stable (server/README.md lists them), never the free-text message.
constexpr std::string_view kMalformedFields[] = {"path_info", "store_path", "nar_hash", "nar_size",
                                                 "references", "signature", "metadata"};
constexpr std::string_view kReasonMalformed = "malformed";
constexpr std::string_view kReasonUnknownKey = "unknown_key";
constexpr std::string_view kReasonMissingPublicKey = "missing_public_key";
constexpr std::string_view kReasonMalformedPublicKey = "malformed_public_key";
constexpr std::string_view kReasonPublicKeyMismatch = "public_key_mismatch";
constexpr std::string_view kReasonBadSignature = "bad_signature";
constexpr std::string_view kReasonDuplicate = "duplicate";
constexpr std::string_view kReasonTooLarge = "too_large";
constexpr std::string_view kReasonStorageRefused = "storage_refused";

// A write that failed for something in what it writes (a record the store refuses, a dispute record
// that cannot be built), not for the state of the node: writing the same items again fails again, so
// the ingestor writes them one at a time to find the one at fault instead of failing them all, or, on a
// follower, stalling on them for good.
bool FailedForItsContent(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsInternal(status) || absl::IsOutOfRange(status);
}

// The reason of a conversion failure: "malformed_<field>" for the wire field its message starts with
// (proto::FromProto writes "<field>: ..." or "<field>[i] ..."), plain "malformed" otherwise.
std::string MalformedReason(std::string_view message) {
  const size_t end = message.find_first_not_of("abcdefghijklmnopqrstuvwxyz_");
  const std::string_view field = message.substr(0, end);
  for (std::string_view known : kMalformedFields) {
    if (field == known) return Cat(kReasonMalformed, "_", known);
  }
  return std::string(kReasonMalformed);
}

std::string CodeLabel(absl::StatusCode code) { return absl::AsciiStrToLower(absl::StatusCodeToString(code)); }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

struct Ingestor::Item {
  absl::Status status;  // rejection reason; OK while the item may be stored
  std::string reason;   // when rejected: its label value (kReason...)
  std::optional<consensus::Attestation> attestation;  // set once the item is checked
  std::optional<consensus::PublicKey> observed_key;
  std::string fingerprint;
  IngestOutcome outcome = IngestOutcome::kRejected;
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
    for (std::string_view field : kMalformedFields) AddReason(Cat(kReasonMalformed, "_", field));
    for (std::string_view reason : {kReasonMalformed, kReasonUnknownKey, kReasonMissingPublicKey,
                                    kReasonMalformedPublicKey, kReasonPublicKeyMismatch, kReasonBadSignature,
                                    kReasonDuplicate, kReasonTooLarge, kReasonStorageRefused}) {
      AddReason(std::string(reason));
    }
  }

  void AddReason(std::string reason) {
    Counter* counter = &rejected.Labels({reason});
    by_reason.emplace(std::move(reason), counter);
  }

  // Counts one Submit's results.
  void CountResults(const std::vector<Item>& items) {
    uint64_t counts[4] = {0, 0, 0, 0};
    for (const Item& item : items) {
      if (!item.status.ok()) {
        ++counts[static_cast<int>(IngestOutcome::kRejected)];
        auto it = by_reason.find(item.reason);
        (it != by_reason.end() ? it->second : by_reason.at(std::string(kReasonMalformed)))->Increment();
      } else {
        ++counts[static_cast<int>(item.outcome)];
      }
    }
    if (counts[0] != 0) accepted->Increment(counts[0]);
    if (counts[1] != 0) already_present->Increment(counts[1]);
    if (counts[2] != 0) observed->Increment(counts[2]);
    if (counts[3] != 0) rejected_total->Increment(counts[3]);
  }

  CounterFamily& submitted;
  CounterFamily& rejected;
  CounterFamily& batches;
  CounterFamily& replicated;
  Counter* accepted;
  Counter* already_present;
  Counter* observed;
  Counter* rejected_total;
  Counter* batches_ok;
  // Read-only after construction, so looked up without a lock.
  absl::flat_hash_map<std::string, Counter*> by_reason;
  Histogram* verify_submit;
  Histogram* verify_replication;
  Histogram* commit_submit;
  Histogram* commit_replication;
};

Ingestor::Ingestor(const consensus::Policy& policy, storage::StoreWriter* writer, storage::Ledger* ledger,
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
  absl::StatusOr<std::vector<IngestResult>> results = SubmitBatch(batch);
  if (results.ok()) {
    metrics_->batches_ok->Increment();
  } else {
    metrics_->batches.Labels({CodeLabel(results.status().code())}).Increment();
  }
  return results;
}

absl::StatusOr<std::vector<IngestResult>> Ingestor::SubmitBatch(
    const google::protobuf::RepeatedPtrField<v1::Attestation>& batch) {
  const size_t count = static_cast<size_t>(batch.size());
  if (count == 0) {
    return absl::InvalidArgumentError("the batch is empty: send at least one attestation");
  }
  if (count > static_cast<size_t>(options_.max_batch)) {
    return absl::ResourceExhaustedError(Cat("batch of ", count, " attestations exceeds the limit of ",
                                            options_.max_batch, ": split it"));
  }

  std::vector<Item> items(count);
  const auto verify_start = std::chrono::steady_clock::now();
  CheckItems(batch, items);
  metrics_->verify_submit->Observe(SecondsSince(verify_start));

  // The first occurrence of an identical attestation is the one that is stored.
  absl::flat_hash_map<std::string, size_t> first_seen;
  first_seen.reserve(count);
  PendingWrite write;
  write.items.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Item& item = items[i];
    if (!item.status.ok()) continue;
    auto [it, inserted] = first_seen.try_emplace(IdentityKey(item.fingerprint, item.attestation->key_name()), i);
    if (!inserted) {
      item.status = absl::InvalidArgumentError(
          Cat("attestation ", i + 1, " of ", count, ": duplicate of attestation ", it->second + 1,
              " (same store path, claim and key; send it once)"));
      item.reason = kReasonDuplicate;
      continue;
    }
    write.items.push_back(&item);
  }

  if (!write.items.empty()) {
    absl::Status committed = Commit(write);
    if (!committed.ok() && FailedForItsContent(committed) && write.items.size() > 1) {
      committed = CommitOneByOne(write.items, nullptr, [&](Item& item, const absl::Status& refused) {
        const size_t i = static_cast<size_t>(&item - items.data());
        item.status = absl::Status(refused.code(), Cat("attestation ", i + 1, " of ", count,
                                                       ": the node could not store it (", StdView(refused.message()),
                                                       "); the other attestations were processed"));
        item.reason = kReasonStorageRefused;
      });
    }
    if (!committed.ok()) return committed;
  }
  metrics_->CountResults(items);

  std::vector<IngestResult> results(count);
  for (size_t i = 0; i < count; ++i) {
    if (!items[i].status.ok()) {
      results[i] = IngestResult{IngestOutcome::kRejected, std::move(items[i].status)};
    } else {
      results[i] = IngestResult{items[i].outcome, absl::OkStatus()};
    }
  }
  return results;
}

void Ingestor::CheckItems(const google::protobuf::RepeatedPtrField<v1::Attestation>& batch,
                          std::vector<Item>& items) {
  const size_t count = items.size();
  if (count <= kInlineCheckLimit) {
    for (size_t i = 0; i < count; ++i) CheckItem(batch[static_cast<int>(i)], i, count, items[i]);
    return;
  }
  const size_t threads = static_cast<size_t>(std::max(1, verify_pool_->size()));
  const size_t chunk = std::max(kMinChunk, (count + threads * 4 - 1) / (threads * 4));
  const size_t chunks = (count + chunk - 1) / chunk;
  absl::BlockingCounter pending(static_cast<int>(chunks));
  for (size_t begin = 0; begin < count; begin += chunk) {
    const size_t end = std::min(count, begin + chunk);
    verify_pool_->Schedule([this, &batch, &items, &pending, begin, end, count] {
      for (size_t i = begin; i < end; ++i) CheckItem(batch[static_cast<int>(i)], i, count, items[i]);
      pending.DecrementCount();
    });
  }
  pending.Wait();
}

void Ingestor::CheckItem(const v1::Attestation& message, size_t index, size_t count, Item& item) const {
  const std::string prefix = Cat("attestation ", index + 1, " of ", count, ": ");
  absl::StatusOr<consensus::Attestation> attestation = proto::FromProto(message);
  if (!attestation.ok()) {
    item.status = absl::InvalidArgumentError(Cat(prefix, StdView(attestation.status().message())));
    item.reason = MalformedReason(StdView(attestation.status().message()));
    return;
  }
  const std::string& key_name = attestation->key_name();
  const consensus::PublicKey* key = policy_.FindBuilder(key_name);
  if (key == nullptr) {
    const std::string not_in_policy =
        Cat(prefix, "key '", key_name, "' is not a builder key in the policy (policy ", policy_.Hash(), "); ");
    if (!options_.observe_unknown_keys) {
      item.status = absl::UnauthenticatedError(
          Cat(not_in_policy, "ask the federation to add it, or enable observe_unknown_keys on this node"));
      item.reason = kReasonUnknownKey;
      return;
    }
    if (message.public_key().empty()) {
      item.status = absl::UnauthenticatedError(
          Cat(not_in_policy,
              "this node stores such attestations for observation only when they carry public_key "
              "(the key's \"name:base64\" public half)"));
      item.reason = kReasonMissingPublicKey;
      return;
    }
    absl::StatusOr<consensus::PublicKey> observed = consensus::PublicKey::Parse(message.public_key());
    if (!observed.ok()) {
      item.status = absl::InvalidArgumentError(Cat(prefix, "public_key: ", StdView(observed.status().message())));
      item.reason = kReasonMalformedPublicKey;
      return;
    }
    if (observed->name() != key_name) {
      item.status = absl::InvalidArgumentError(Cat(prefix, "public_key is key '", observed->name(),
                                                   "' but the signature is by key '", key_name,
                                                   "' (send the public half of the signing key)"));
      item.reason = kReasonPublicKeyMismatch;
      return;
    }
    item.observed_key = *std::move(observed);
    key = &*item.observed_key;
  }
  std::string fingerprint = attestation->claim.Fingerprint();
  if (!key->VerifyBytes(fingerprint, attestation->signature.bytes)) {
    item.status = absl::UnauthenticatedError(
        Cat(prefix, "signature does not verify with key '", key_name, "' over the fingerprint of ",
            attestation->claim.path.full(),
            item.observed_key ? " (was it made with the secret half of the public_key sent along?)"
                              : " (is the key in the policy the one the builder signs with?)"));
    item.reason = kReasonBadSignature;
    item.observed_key.reset();
    return;
  }
  if (absl::Status loggable = consensus::CheckAttestationLoggable(*attestation, item.observed_key); !loggable.ok()) {
    item.status = absl::InvalidArgumentError(Cat(prefix, StdView(loggable.message())));
    item.reason = kReasonTooLarge;
    item.observed_key.reset();
    return;
  }
  item.fingerprint = std::move(fingerprint);
  item.attestation = *std::move(attestation);
}

absl::StatusOr<ReplicationCounts> Ingestor::Replicate(ReplicationBatch batch) {
  const size_t count = batch.attestations.size();
  std::vector<Item> items(count);
  auto check = [this, &batch, &items](size_t i) {
    const ReplicatedAttestation& replicated = batch.attestations[i];
    const consensus::Attestation& attestation = replicated.parsed.attestation;
    Item& item = items[i];
    const consensus::PublicKey* key = policy_.FindBuilder(attestation.key_name());
    if (key == nullptr) {
      if (!options_.observe_unknown_keys || !replicated.parsed.observed_key.has_value()) {
        item.outcome = IngestOutcome::kRejected;  // skipped: not an error of the peer's
        item.status = absl::NotFoundError("key outside the policy");
        return;
      }
      item.observed_key = replicated.parsed.observed_key;
      key = &*item.observed_key;
    }
    std::string fingerprint = attestation.claim.Fingerprint();
    if (!key->VerifyBytes(fingerprint, attestation.signature.bytes)) {
      item.status = absl::UnauthenticatedError(
          Cat("the attestation by key '", attestation.key_name(), "' of ", attestation.claim.path.full(),
              " does not verify", item.observed_key ? " with the observed key it carries" : " with the policy's key"));
      item.observed_key.reset();
      return;
    }
    item.fingerprint = std::move(fingerprint);
    item.attestation = attestation;
  };
  const auto verify_start = std::chrono::steady_clock::now();
  if (count <= kInlineCheckLimit) {
    for (size_t i = 0; i < count; ++i) check(i);
  } else {
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
  if (count != 0) metrics_->verify_replication->Observe(SecondsSince(verify_start));

  ReplicationCounts counts;
  const int64_t now_unix = absl::ToUnixSeconds(clock_());
  PendingWrite write;
  write.replication = &batch;
  write.statements_origin = batch.peer;
  std::vector<size_t> statement_sources;  // parallel to write.statements: the index in batch.resolutions
  for (const ReplicatedResolution& replicated : batch.resolutions) {
    absl::StatusOr<consensus::VerifiedResolution> verified =
        consensus::VerifyResolution(replicated.signed_note, policy_);
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
    if (items[i].status.ok()) {
      write.items.push_back(&items[i]);
    } else if (absl::IsNotFound(items[i].status)) {
      ++counts.skipped;
    } else {
      ++counts.rejected;
      batch.rejected.push_back(storage::RejectedEntry{.peer = batch.peer,
                                                      .index = batch.attestations[i].index,
                                                      .reason = std::string(StdView(items[i].status.message())),
                                                      .entry = batch.attestations[i].entry,
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
      refuse(batch.attestations[i].index, batch.attestations[i].entry, refused);
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
  const int64_t now_unix = absl::ToUnixSeconds(clock_());

  // The group's items by store path, paths in first-seen order.
  absl::flat_hash_map<consensus::StorePath, size_t> path_index;
  std::vector<consensus::StorePath> paths;
  std::vector<std::vector<Item*>> items_by_path;
  for (PendingWrite* write : group) {
    for (Item* item : write->items) {
      const consensus::StorePath& path = item->attestation->claim.path;
      auto [it, inserted] = path_index.try_emplace(path, paths.size());
      if (inserted) {
        paths.push_back(path);
        items_by_path.emplace_back();
      }
      items_by_path[it->second].push_back(item);
    }
  }

  auto existing = ledger_->AttestationsFor(paths);
  if (!existing.ok()) {
    return StorageFailure(Cat("reading the stored attestations of ", paths.size(), " paths"), existing.status());
  }
  if (existing->size() != paths.size()) {
    return absl::InternalError(Cat("AttestationsFor returned ", existing->size(), " answers for ", paths.size(),
                                   " paths"));
  }

  const std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(options_.resolutions);
  storage::WriteBatch batch;
  // What builders submit to this node, and the dispute records it makes, go into its own log (in the
  // same transaction); what it replicates from peers never does. A replicated batch is alone in
  // its group.
  const ReplicationBatch* replication = group.empty() ? nullptr : group.front()->replication;
  batch.log_append = replication == nullptr ? storage::LogAppend::kAll : storage::LogAppend::kDisputesOnly;
  if (replication != nullptr && group.front()->store_progress) {
    batch.peer_progress = replication->progress;
    batch.rejected_entries = replication->rejected;
    batch.peer_entries = replication->entries;
  }
  std::vector<Item*> written;  // parallel to batch.attestations
  std::vector<std::pair<Item*, IngestOutcome>> decided;
  std::vector<std::string> state_changes;
  for (size_t p = 0; p < paths.size(); ++p) {
    const std::vector<storage::StoredAttestation>& stored = (*existing)[p];
    absl::flat_hash_set<std::string> present;
    present.reserve(stored.size() + items_by_path[p].size());
    for (const storage::StoredAttestation& s : stored) {
      present.insert(IdentityKey(s.attestation.claim.Fingerprint(), s.attestation.key_name()));
    }
    std::vector<storage::StoredAttestation> combined;
    for (Item* item : items_by_path[p]) {
      // Also catches the same attestation sent in two batches of this group.
      if (!present.insert(IdentityKey(item->fingerprint, item->attestation->key_name())).second) {
        decided.emplace_back(item, IngestOutcome::kAlreadyPresent);
        continue;
      }
      if (combined.empty()) combined.assign(stored.begin(), stored.end());
      combined.push_back(storage::StoredAttestation{.attestation = *item->attestation,
                                                    .received_unix = now_unix,
                                                    .observed_key = item->observed_key,
                                                    .origin = replication ? replication->peer : std::string()});
      batch.attestations.push_back(combined.back());
      written.push_back(item);
    }
    if (combined.empty()) continue;  // nothing new about this path

    const PathTally after = TallyStored(policy_, combined, *tally_options);
    consensus::TallyResult before;  // UNKNOWN
    if (!stored.empty()) before = TallyStored(policy_, stored, *tally_options).result;
    const consensus::StorePath& path = paths[p];

    if (after.result.verdict == consensus::Verdict::kConfirmed && before.verdict != consensus::Verdict::kConfirmed) {
      const consensus::FingerprintTally& agreed = after.result.fingerprints.front();
      state_changes.push_back(Cat("quorum reached: ", path.full(), " CONFIRMED by ", agreed.operators.size(),
                                  " operators (", JoinNames(agreed.operators), "), quorum ", policy_.quorum()));
    }
    if (after.result.verdict == consensus::Verdict::kDisputed &&
        (before.verdict != consensus::Verdict::kDisputed || CountedEvidenceChanged(before, after.result))) {
      absl::StatusOr<consensus::DisputeRecord> record =
          consensus::MakeDisputeRecord(policy_, path, after.attestations, after.result, now_unix);
      if (!record.ok()) {
        return absl::InternalError(
            Cat("building the dispute record of ", path.full(), ": ", StdView(record.status().message())));
      }
      consensus::SignedNote note = consensus::SignDisputeRecord(*record, node_key_);
      storage::StoredDispute dispute{.id = record->id,
                                     .path = path,
                                     .signed_record = note.Serialize(),
                                     .opened_unix = now_unix,
                                     .updated_unix = now_unix,
                                     .fingerprint_count = static_cast<int>(record->sides.size())};
      std::vector<std::string> operators;
      for (const auto& side : after.result.fingerprints) {
        operators.insert(operators.end(), side.operators.begin(), side.operators.end());
      }
      std::sort(operators.begin(), operators.end());
      operators.erase(std::unique(operators.begin(), operators.end()), operators.end());
      dispute.operators = operators;
      std::vector<std::string> fingerprints;
      for (const consensus::DisputeSide& side : record->sides) fingerprints.push_back(side.fingerprint);
      if (options_.resolutions != nullptr) dispute.state = options_.resolutions->StateOf(dispute.id, fingerprints);
      state_changes.push_back(Cat(before.verdict == consensus::Verdict::kDisputed ? "dispute updated: "
                                                                                  : "dispute opened: ",
                                  dispute.id, " ", path.full(), ": ", dispute.fingerprint_count,
                                  " competing fingerprints from operators ", JoinNames(operators),
                                  after.result.flagged_builders.empty()
                                      ? std::string()
                                      : Cat("; flagged builders ", JoinNames(after.result.flagged_builders))));
      batch.disputes.push_back(std::move(dispute));
    }
  }

  std::vector<const consensus::VerifiedResolution*> stored_statements;
  for (PendingWrite* write : group) {
    for (const consensus::VerifiedResolution& statement : write->statements) {
      if (absl::Status status = AddStatement(statement, write->statements_origin, now_unix, batch, state_changes);
          !status.ok()) {
        return status;
      }
      stored_statements.push_back(&statement);
    }
  }

  if (!batch.attestations.empty() || !batch.resolutions.empty() || replication != nullptr) {
    auto outcomes = writer_->Write(batch);
    if (!outcomes.ok()) {
      return StorageFailure(Cat("storing ", batch.attestations.size(), " attestations"), outcomes.status());
    }
    if (outcomes->size() != written.size()) {
      return absl::InternalError(Cat("Write returned ", outcomes->size(), " outcomes for ", written.size(),
                                     " attestations"));
    }
    for (size_t i = 0; i < written.size(); ++i) {
      IngestOutcome outcome = IngestOutcome::kAlreadyPresent;
      if ((*outcomes)[i] == storage::WriteOutcome::kInserted) {
        outcome = written[i]->observed_key ? IngestOutcome::kObserved : IngestOutcome::kAccepted;
      }
      decided.emplace_back(written[i], outcome);
    }
    if (options_.on_commit && !batch.attestations.empty()) {
      // batch.attestations is grouped by path, so neighbours suffice to drop repeats.
      std::vector<consensus::StorePath> changed;
      for (const storage::StoredAttestation& s : batch.attestations) {
        const consensus::StorePath& path = s.attestation.claim.path;
        if (changed.empty() || !(changed.back() == path)) changed.push_back(path);
      }
      options_.on_commit(changed);
    }
  }
  for (auto& [item, outcome] : decided) item->outcome = outcome;
  if (options_.resolutions != nullptr) {
    for (const consensus::VerifiedResolution* statement : stored_statements) options_.resolutions->Add(*statement);
    // A statement may start or end an exclusion (a later one supersedes a malicious one): rare enough
    // to drop every cached verdict.
    if (!stored_statements.empty() && options_.on_exclusions_changed) options_.on_exclusions_changed();
  }
  LogLines(LogLevel::kInfo, state_changes);
  return absl::OkStatus();
}

absl::Status Ingestor::AddStatement(const consensus::VerifiedResolution& statement, const std::string& origin,
                                    int64_t now_unix, storage::WriteBatch& batch,
                                    std::vector<std::string>& state_changes) {
  const consensus::Resolution& resolution = statement.resolution;
  batch.resolutions.push_back(storage::StoredResolution{.dispute_id = resolution.dispute_id,
                                                        .signed_note = statement.signed_note,
                                                        .outcome = resolution.outcome,
                                                        .maintainer = statement.maintainer,
                                                        .time_unix = resolution.time_unix,
                                                        .received_unix = now_unix,
                                                        .origin = origin});
  // The dispute's current fingerprints: from a record this batch writes, else the stored one.
  std::vector<std::string> fingerprints;
  const storage::StoredDispute* record_holder = nullptr;
  for (const storage::StoredDispute& dispute : batch.disputes) {
    if (dispute.id == resolution.dispute_id) record_holder = &dispute;
  }
  std::optional<storage::StoredDispute> stored;
  if (record_holder == nullptr) {
    auto read = ledger_->GetDispute(resolution.dispute_id);
    if (!read.ok()) return StorageFailure(Cat("reading dispute ", resolution.dispute_id), read.status());
    stored = *std::move(read);
    if (stored.has_value()) record_holder = &*stored;
  }
  if (record_holder == nullptr) return absl::OkStatus();  // a peer's statement about a dispute not seen here
  absl::StatusOr<consensus::DisputeRecord> record =
      consensus::DisputeRecord::FromSignedNote(record_holder->signed_record);
  if (!record.ok()) {
    return absl::DataLossError(Cat("stored dispute record ", resolution.dispute_id,
                                   " does not parse: ", StdView(record.status().message())));
  }
  for (const consensus::DisputeSide& side : record->sides) fingerprints.push_back(side.fingerprint);
  // The statement in force after this one is stored: the later of the two.
  std::optional<consensus::VerifiedResolution> in_force =
      options_.resolutions != nullptr ? options_.resolutions->InForce(resolution.dispute_id) : std::nullopt;
  const consensus::Resolution* deciding = &resolution;
  if (in_force.has_value() && std::tie(in_force->resolution.time_unix, in_force->signed_note) >
                                  std::tie(resolution.time_unix, statement.signed_note)) {
    deciding = &in_force->resolution;
  }
  const consensus::DisputeState state = consensus::StateOf(deciding, fingerprints);
  batch.dispute_states.push_back(storage::DisputeStateUpdate{.id = resolution.dispute_id, .state = state});
  state_changes.push_back(Cat("dispute ", resolution.dispute_id, " ", record->path.full(), ": maintainer ",
                              statement.maintainer, " says ", consensus::OutcomeName(resolution.outcome),
                              resolution.builders.empty() ? std::string()
                                                          : Cat(" (builders no longer counted: ",
                                                                JoinNames(resolution.builders), ")"),
                              origin.empty() ? std::string() : Cat(" [from ", origin, "]"), "; state ",
                              consensus::DisputeStateName(state)));
  return absl::OkStatus();
}

absl::StatusOr<ResolveResult> Ingestor::Resolve(std::string_view signed_statement) {
  absl::StatusOr<consensus::VerifiedResolution> verified = consensus::VerifyResolution(signed_statement, policy_);
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
    return absl::NotFoundError(Cat("no dispute ", resolution.dispute_id, " (", resolution.path.full(),
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
