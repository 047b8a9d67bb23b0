#include "server/restore.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_join.h"
#include "consensus/checkpoint.h"
#include "consensus/dispute.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/resolution.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/checkpoint_file.h"
#include "server/peer_client.h"
#include "server/resolution_book.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// Attestation entries written per transaction while replaying.
constexpr size_t kAttestationsPerWrite = 2000;

// A peer's copy of this node's checkpoint that verified.
struct Candidate {
  const PeerConfig* peer = nullptr;
  consensus::Checkpoint checkpoint;
  std::string own_note;  // the note with only this node's signature, as the node stored it
};

// The peer's copy of this node's newest checkpoint, checked: signed by this node, cosigned by the peer.
absl::StatusOr<Candidate> AskForCheckpoint(const PeerConfig& peer, const consensus::SecretKey& node_key,
                                           const RestoreOptions& options) {
  PeerClient client(peer, options.timeout, options.timeout);
  absl::StatusOr<std::string> served = client.MirroredCheckpoint(node_key.name());
  if (!served.ok()) return served.status();
  absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(*served, node_key.public_key());
  if (!checkpoint.ok()) {
    return absl::Status(checkpoint.status().code(), Cat("its copy of this node's checkpoint does not verify with ",
                                                        node_key.name(), ": ", StdView(checkpoint.status().message())));
  }
  absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(*served);
  if (!note.ok()) return note.status();
  absl::StatusOr<consensus::PublicKey> peer_key = consensus::PublicKey::Parse(peer.public_key);
  if (!peer_key.ok()) return peer_key.status();
  if (absl::StatusOr<uint64_t> cosigned = consensus::VerifyCosignature(*note, *peer_key); !cosigned.ok()) {
    return absl::UnauthenticatedError(
        Cat("its copy of this node's checkpoint carries no valid cosignature of its own (",
            StdView(cosigned.status().message()), ")"));
  }
  // Cosignatures have 72-byte signatures; the node's own is a plain Ed25519 signature.
  std::erase_if(note->signatures, [&](const consensus::NoteSignature& signature) {
    return signature.key_name != node_key.name() || signature.signature.size() != 64;
  });
  return Candidate{.peer = &peer, .checkpoint = *std::move(checkpoint), .own_note = note->Serialize()};
}

void RemoveDatabaseFiles(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::remove(Cat(path, suffix).c_str());
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::FailedPreconditionError(Cat("cannot move ", from, " to ", to, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Writes a log's entries into an empty store so that its own log holds exactly those entries, and
// its ledger what the node had derived from them.
class LogReplay final {
 public:
  LogReplay(storage::StoreWriter& store, storage::PolicyStore& policies, const PolicyBook& policy, int64_t now_unix)
      : store_(store), policies_(policies), book_(policy), policy_(policy.current()), now_unix_(now_unix) {}

  // Entry `index` of the log. INVALID_ARGUMENT for entries the log could not hold.
  absl::Status Add(uint64_t index, std::string_view bytes) {
    absl::StatusOr<consensus::LogEntry> entry = consensus::ParseLogEntry(bytes);
    if (!entry.ok()) return AtEntry(index, entry.status());
    if (entry->kind != consensus::LogEntryKind::kDisputePart && !parts_.empty()) {
      return AtEntry(index, absl::InvalidArgumentError(Cat("a dispute record's parts end after ", parts_.size(),
                                                           " of ", parts_.front().count)));
    }
    switch (entry->kind) {
      case consensus::LogEntryKind::kAttestation: {
        // A write logs its attestations before its realisations: pending realisations go first.
        if (!realisations_.empty()) {
          if (absl::Status status = Flush(); !status.ok()) return AtEntry(index, status);
        }
        const consensus::AttestationEntry& logged = *entry->attestation;
        attestations_.push_back(storage::StoredAttestation{.attestation = logged.attestation,
                                                           .received_unix = logged.received_unix,
                                                           .observed_key = logged.observed_key,
                                                           .origin = ""});
        if (attestations_.size() >= kAttestationsPerWrite) return Flush();
        return absl::OkStatus();
      }
      case consensus::LogEntryKind::kRealisation: {
        const consensus::RealisationEntry& logged = *entry->realisation;
        realisations_.push_back(storage::StoredRealisation{.attestation = logged.attestation,
                                                           .received_unix = logged.received_unix,
                                                           .observed_key = logged.observed_key,
                                                           .origin = ""});
        if (attestations_.size() + realisations_.size() >= kAttestationsPerWrite) return AtEntry(index, Flush());
        return absl::OkStatus();
      }
      case consensus::LogEntryKind::kDispute:
        return AtEntry(index, AddDispute(entry->note));
      case consensus::LogEntryKind::kDisputePart: {
        parts_.push_back(*std::move(entry->part));
        if (parts_.back().index != parts_.back().count) return absl::OkStatus();
        absl::StatusOr<std::string> note = consensus::AssembleDisputeParts(parts_);
        parts_.clear();
        if (!note.ok()) return AtEntry(index, note.status());
        return AtEntry(index, AddDispute(*note));
      }
      case consensus::LogEntryKind::kResolution:
        return AtEntry(index, AddResolution(entry->note));
      case consensus::LogEntryKind::kPolicy:
        return AtEntry(index, AddPolicy(*entry->policy));
    }
    return AtEntry(index, absl::InvalidArgumentError("an entry of an unknown kind"));
  }

  // Writes what is pending. INVALID_ARGUMENT when the log ended inside a dispute record's parts.
  absl::Status Finish() {
    if (!parts_.empty()) {
      return absl::InvalidArgumentError(
          Cat("the log ends inside a dispute record (", parts_.size(), " of ", parts_.front().count, " parts)"));
    }
    return Flush();
  }

 private:
  static absl::Status AtEntry(uint64_t index, const absl::Status& status) {
    if (status.ok()) return status;
    return absl::Status(status.code(), Cat("entry ", index, ": ", StdView(status.message())));
  }

  // Writes the pending attestations, then the pending realisations (the order the log holds them in:
  // a realisation entry is never buffered before an attestation entry that follows it).
  absl::Status Flush() {
    if (attestations_.empty() && realisations_.empty()) return absl::OkStatus();
    storage::WriteBatch batch;
    batch.attestations = std::move(attestations_);
    batch.realisations = std::move(realisations_);
    batch.log_append = storage::LogAppend::kAll;
    attestations_.clear();
    realisations_.clear();
    absl::StatusOr<std::vector<storage::WriteOutcome>> outcomes = store_.Write(batch);
    if (!outcomes.ok()) return outcomes.status();
    // Every attestation is logged once, when first stored: a repeat means the log is not one a node wrote.
    if (std::ranges::count(*outcomes, storage::WriteOutcome::kAlreadyPresent) != 0) {
      return absl::InvalidArgumentError(batch.realisations.empty()
                                            ? "the log holds an attestation twice"
                                            : "the log holds an attestation or a realisation attestation twice");
    }
    return absl::OkStatus();
  }

  absl::Status AddDispute(const std::string& note) {
    if (absl::Status status = Flush(); !status.ok()) return status;
    absl::StatusOr<consensus::DisputeRecord> record = consensus::DisputeRecord::FromSignedNote(note);
    if (!record.ok()) return record.status();
    std::vector<std::string> fingerprints;
    std::vector<std::string> operators;
    for (const consensus::DisputeSide& side : record->sides) {
      fingerprints.push_back(side.fingerprint);
      for (const consensus::DisputeSide::Entry& entry : side.entries) operators.push_back(entry.operator_name);
    }
    std::ranges::sort(operators);
    operators.erase(std::unique(operators.begin(), operators.end()), operators.end());
    // A dispute keeps the time it was first opened; later records update it.
    const int64_t opened = opened_.try_emplace(record->id, record->time_unix).first->second;
    storage::WriteBatch batch;
    batch.disputes.push_back(storage::StoredDispute{.id = record->id,
                                                    .subject = record->subject,
                                                    .signed_record = note,
                                                    .opened_unix = opened,
                                                    .updated_unix = record->time_unix,
                                                    .fingerprint_count = static_cast<int>(record->sides.size()),
                                                    .state = book_.StateOf(record->id, fingerprints),
                                                    .operators = std::move(operators)});
    batch.log_append = storage::LogAppend::kAll;
    fingerprints_[record->id] = std::move(fingerprints);
    return store_.Write(batch).status();
  }

  // A policy this node adopted: back into the chain (which logs it again, in its place), and the policy
  // the later statements are verified under. The node's own signed log vouches for it.
  absl::Status AddPolicy(const consensus::PolicyEntry& logged) {
    if (absl::Status status = Flush(); !status.ok()) return status;
    absl::StatusOr<consensus::Policy> adopted = consensus::Policy::ParseToml(logged.toml, "a logged policy");
    if (!adopted.ok()) return adopted.status();
    if (adopted->Hash() != logged.policy_hash) {
      return absl::InvalidArgumentError(Cat("a policy entry for ", logged.policy_hash, " whose text hashes to ",
                                            adopted->Hash()));
    }
    if (absl::Status stored = policies_.PutPolicyLink(storage::StoredPolicyLink{.hash = logged.policy_hash,
                                                                                 .parent = logged.parent,
                                                                                 .version = logged.version,
                                                                                 .toml = logged.toml,
                                                                                 .approvals = logged.approvals,
                                                                                 .received_unix = logged.received_unix,
                                                                                 .origin = ""});
        !stored.ok()) {
      // The chain a node stores has each policy once, each extending the one before.
      if (absl::IsAlreadyExists(stored)) return absl::InvalidArgumentError("the log holds a policy twice");
      if (absl::IsFailedPrecondition(stored)) return absl::InvalidArgumentError(stored.message());
      return stored;
    }
    policy_ = std::make_shared<const consensus::Policy>(*std::move(adopted));
    return absl::OkStatus();
  }

  absl::Status AddResolution(const std::string& note) {
    if (absl::Status status = Flush(); !status.ok()) return status;
    storage::StoredResolution stored{.signed_note = note, .received_unix = now_unix_, .origin = ""};
    // A statement that no longer verifies (the policy changed since) is stored as logged, but, as when
    // a node starts (ResolutionBook::Load), it decides nothing.
    absl::StatusOr<consensus::VerifiedResolution> verified = consensus::VerifyResolution(note, *policy_);
    if (verified.ok()) {
      stored.dispute_id = verified->resolution.dispute_id;
      stored.outcome = verified->resolution.outcome;
      stored.maintainer = verified->maintainer;
      stored.time_unix = verified->resolution.time_unix;
    } else {
      absl::StatusOr<consensus::SignedNote> parsed = consensus::SignedNote::Parse(note);
      if (!parsed.ok()) return parsed.status();
      absl::StatusOr<consensus::Resolution> resolution = consensus::Resolution::FromNoteText(parsed->text);
      if (!resolution.ok()) return resolution.status();
      if (parsed->signatures.empty()) return absl::InvalidArgumentError("a statement without a signature");
      stored.dispute_id = resolution->dispute_id;
      stored.outcome = resolution->outcome;
      stored.maintainer = parsed->signatures.front().key_name;
      stored.time_unix = resolution->time_unix;
    }
    storage::WriteBatch batch;
    batch.resolutions.push_back(stored);
    batch.log_append = storage::LogAppend::kAll;
    if (verified.ok()) {
      book_.Add(*verified);
      auto fingerprints = fingerprints_.find(stored.dispute_id);
      if (fingerprints != fingerprints_.end()) {
        batch.dispute_states.push_back(storage::DisputeStateUpdate{
            .id = stored.dispute_id, .state = book_.StateOf(stored.dispute_id, fingerprints->second)});
      }
    }
    return store_.Write(batch).status();
  }

  storage::StoreWriter& store_;
  storage::PolicyStore& policies_;
  ResolutionBook book_;
  std::shared_ptr<const consensus::Policy> policy_;  // the file's, then each policy the log adopted
  const int64_t now_unix_;
  std::vector<storage::StoredAttestation> attestations_;
  std::vector<storage::StoredRealisation> realisations_;  // logged after attestations_
  std::vector<consensus::DisputePart> parts_;
  absl::flat_hash_map<std::string, int64_t> opened_;                    // dispute id -> first record's time
  absl::flat_hash_map<std::string, std::vector<std::string>> fingerprints_;  // dispute id -> its latest sides
};

// Replays `candidate`'s log from `source`'s mirror into a new database at `path`. On success the database
// holds the log up to the candidate's checkpoint, which it has stored.
absl::Status RestoreFrom(const PeerConfig& source, const Candidate& candidate, const std::string& path,
                         const PolicyBook& policy, const consensus::SecretKey& node_key,
                         const RestoreOptions& options) {
  RemoveDatabaseFiles(path);
  absl::StatusOr<std::unique_ptr<storage::SqliteAttestationStore>> store =
      storage::SqliteAttestationStore::Open(path, storage::SqliteOptions{});
  if (!store.ok()) return store.status();
  const int64_t now_unix = absl::ToUnixSeconds(options.clock());
  LogReplay replay(**store, **store, policy, now_unix);
  PeerClient client(source, options.timeout, options.timeout);
  consensus::CompactRange served;
  const uint64_t size = candidate.checkpoint.size;
  for (uint64_t tile = 0; tile * consensus::kFullTileWidth < size; ++tile) {
    const uint64_t start = tile * consensus::kFullTileWidth;
    const int width = static_cast<int>(std::min<uint64_t>(consensus::kFullTileWidth, size - start));
    absl::StatusOr<std::vector<std::string>> bundle = client.MirroredEntryBundle(node_key.name(), tile, width);
    if (!bundle.ok()) return bundle.status();
    for (size_t i = 0; i < bundle->size(); ++i) {
      const std::string& entry = (*bundle)[i];
      served.Append(consensus::LeafHash(entry));
      if (absl::Status status = replay.Add(start + i, entry); !status.ok()) {
        return absl::InvalidArgumentError(Cat("its copy of the log holds an entry no node writes: ",
                                              StdView(status.message())));
      }
    }
    if (options.progress && (tile + 1) % 64 == 0) {
      options.progress(Cat("  ", std::min(size, (tile + 1) * consensus::kFullTileWidth), " of ", size, " entries"));
    }
  }
  if (served.Root() != candidate.checkpoint.root) {
    return absl::DataLossError(Cat("its copy of the log's ", size, " entries does not hash to the root of the ",
                                   "checkpoint this node signed"));
  }
  if (absl::Status status = replay.Finish(); !status.ok()) {
    return absl::InvalidArgumentError(Cat("its copy of the log is incomplete: ", StdView(status.message())));
  }
  absl::StatusOr<storage::LogHead> head = (*store)->GetLogHead();
  if (!head.ok()) return head.status();
  if (head->size != size || head->root != candidate.checkpoint.root) {
    // The entries are the signed ones, yet storing them did not log the same tree: a bug, not the peer.
    return absl::InternalError(Cat("replaying the ", size, " verified entries gave a log of ", head->size,
                                   " entries with another root; nothing was changed (please report this)"));
  }
  return (*store)->StoreCheckpoint(storage::StoredCheckpoint{.size = size,
                                                             .root = candidate.checkpoint.root,
                                                             .note = candidate.own_note,
                                                             .signed_unix = now_unix});
}

}  // namespace

absl::StatusOr<RestoreReport> RestoreFromPeers(const NodeConfig& config, const PolicyBook& policy,
                                               const consensus::SecretKey& node_key, const RestoreOptions& options) {
  auto say = [&options](const std::string& line) {
    if (options.progress) options.progress(line);
  };
  const std::string& database = config.database_path;
  if (config.peers.empty()) {
    return absl::FailedPreconditionError(Cat(config.config_file, " names no [[peer]]: a log can only be restored from ",
                                             "the peers that follow it, or from a backup"));
  }

  RestoreReport report;
  std::vector<Candidate> candidates;
  for (const PeerConfig& peer : config.peers) {
    absl::StatusOr<Candidate> candidate = AskForCheckpoint(peer, node_key, options);
    if (!candidate.ok()) {
      report.skipped.push_back(Cat(peer.name, ": ", StdView(candidate.status().message())));
      say(Cat("peer ", peer.name, ": not used: ", StdView(candidate.status().message())));
      continue;
    }
    say(Cat("peer ", peer.name, ": holds this node's checkpoint of size ", candidate->checkpoint.size));
    candidates.push_back(*std::move(candidate));
  }
  std::ranges::stable_sort(candidates, std::greater<>(), [](const Candidate& c) { return c.checkpoint.size; });
  if (candidates.empty() || candidates.front().checkpoint.size == 0) {
    return absl::FailedPreconditionError(Cat("no peer holds a cosigned checkpoint of this node's log (",
                                             node_key.name(), ") with any entries: ",
                                             report.skipped.empty() ? "none answered" : absl::StrJoin(report.skipped, "; "),
                                             ". Restore the database from a backup"));
  }

  // What this node signed last (if the file beside the database survived) must come back whole.
  const SignedCheckpointFile file(SignedCheckpointFile::PathFor(database));
  absl::StatusOr<std::optional<std::string>> recorded_note = file.Read();
  if (!recorded_note.ok()) return recorded_note.status();
  if (recorded_note->has_value()) {
    absl::StatusOr<consensus::Checkpoint> recorded = consensus::VerifyCheckpoint(**recorded_note, node_key.public_key());
    if (!recorded.ok()) {
      return absl::FailedPreconditionError(Cat(file.path(), " holds a checkpoint that does not verify with the node key ",
                                               node_key.name(), ": use the key that signed it"));
    }
    std::erase_if(candidates, [&](const Candidate& c) { return c.checkpoint.size < recorded->size; });
    if (candidates.empty()) {
      return absl::FailedPreconditionError(
          Cat("this node signed a checkpoint of size ", recorded->size, " (recorded in ", file.path(),
              "), but its peers hold smaller ones: the entries after them are on no peer. Restore the database ",
              "from a backup taken after that checkpoint"));
    }
  }

  // A database that holds the log already needs no restore; one that holds less is kept aside.
  if (Exists(database)) {
    absl::StatusOr<std::unique_ptr<storage::SqliteAttestationStore>> existing =
        storage::SqliteAttestationStore::Open(database, storage::SqliteOptions{});
    if (!existing.ok()) {
      say(Cat("the database ", database, " does not open (", StdView(existing.status().message()),
              "); it will be moved aside"));
    } else {
      absl::StatusOr<storage::LogHead> head = (*existing)->GetLogHead();
      if (!head.ok()) return head.status();
      if (head->size >= candidates.front().checkpoint.size) {
        return absl::FailedPreconditionError(Cat("the database ", database, " already holds a log of ", head->size,
                                                 " entries, and no peer holds a larger checkpoint: nothing to restore"));
      }
    }
  }

  const std::string restoring = Cat(database, ".restoring");
  absl::Status last = absl::UnavailableError("no peer served the entries");
  const Candidate* restored = nullptr;
  for (const Candidate& candidate : candidates) {
    // The peer that cosigned the checkpoint first, then the others (any of them may hold the entries).
    std::vector<const PeerConfig*> sources = {candidate.peer};
    for (const PeerConfig& peer : config.peers) {
      if (&peer != candidate.peer) sources.push_back(&peer);
    }
    for (const PeerConfig* source : sources) {
      say(Cat("reading ", candidate.checkpoint.size, " entries from peer ", source->name));
      absl::Status status = RestoreFrom(*source, candidate, restoring, policy, node_key, options);
      if (status.ok()) {
        restored = &candidate;
        report.entries_from = source->name;
        break;
      }
      if (absl::IsInternal(status)) {
        RemoveDatabaseFiles(restoring);
        return status;
      }
      report.skipped.push_back(Cat(source->name, ": ", StdView(status.message())));
      say(Cat("peer ", source->name, ": not used: ", StdView(status.message())));
      last = status;
    }
    if (restored != nullptr) break;
  }
  if (restored == nullptr) {
    RemoveDatabaseFiles(restoring);
    return absl::Status(last.code(), Cat("no peer served this node's log whole: ", absl::StrJoin(report.skipped, "; ")));
  }

  // The store is closed (RestoreFrom's went out of scope). A database is its file and its WAL: they
  // move together (the shared-memory index is rebuilt from them).
  auto move_database = [](const std::string& from, const std::string& to) -> absl::Status {
    std::remove(Cat(from, "-shm").c_str());
    if (Exists(Cat(from, "-wal"))) {
      if (absl::Status s = Rename(Cat(from, "-wal"), Cat(to, "-wal")); !s.ok()) return s;
    }
    return Rename(from, to);
  };
  if (Exists(database)) {
    report.moved_aside = Cat(database, ".before-restore-", absl::ToUnixSeconds(options.clock()));
    if (absl::Status s = move_database(database, report.moved_aside); !s.ok()) return s;
  }
  if (absl::Status s = move_database(restoring, database); !s.ok()) return s;
  if (absl::Status s = file.Record(restored->own_note); !s.ok()) return s;
  report.entries = restored->checkpoint.size;
  report.checkpoint_from = restored->peer->name;
  return report;
}

}  // namespace attest::server
