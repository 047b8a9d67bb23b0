#include "storage/memory_attestation_store.h"

#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "consensus/merkle.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"

namespace attest::storage {

using consensus::StorePath;

absl::StatusOr<std::vector<WriteOutcome>> MemoryAttestationStore::Write(const WriteBatch& batch) {
  // Validate everything first: a refused item must leave the store untouched.
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    if (absl::Status status = ValidateStoredAttestation(batch.attestations[i], i,
                                                        batch.attestations.size());
        !status.ok()) {
      return status;
    }
  }
  for (size_t i = 0; i < batch.realisations.size(); ++i) {
    if (absl::Status status = ValidateStoredRealisation(batch.realisations[i], i, batch.realisations.size());
        !status.ok()) {
      return status;
    }
  }
  for (size_t i = 0; i < batch.disputes.size(); ++i) {
    if (absl::Status status = ValidateStoredDispute(batch.disputes[i], i, batch.disputes.size());
        !status.ok()) {
      return status;
    }
  }

  for (size_t i = 0; i < batch.resolutions.size(); ++i) {
    if (absl::Status status = ValidateStoredResolution(batch.resolutions[i], i, batch.resolutions.size());
        !status.ok()) {
      return status;
    }
  }
  if (batch.peer_progress.has_value()) {
    if (absl::Status status = ValidatePeerProgress(*batch.peer_progress); !status.ok()) return status;
  }
  auto entries = LogEntriesOf(batch);
  if (!entries.ok()) return entries.status();

  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(batch.attestations.size() + batch.realisations.size());
  absl::MutexLock lock(&mu_);
  if (batch.peer_progress.has_value()) {
    auto it = peers_.find(batch.peer_progress->peer);
    const std::optional<uint64_t> stored_cursor =
        it == peers_.end() ? std::nullopt : std::optional(it->second.cursor);
    if (absl::Status status = CheckCursorAdvance(*batch.peer_progress, stored_cursor); !status.ok()) return status;
    if (absl::Status status = CheckPeerEntries(batch, stored_cursor); !status.ok()) return status;
  } else if (absl::Status status = CheckPeerEntries(batch, std::nullopt); !status.ok()) {
    return status;
  }
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    const StoredAttestation& stored = batch.attestations[i];
    PathAttestations& of_path = attestations_[stored.attestation.claim.path];
    auto [it, inserted] = of_path.try_emplace(
        std::make_pair(stored.attestation.claim.Fingerprint(), stored.attestation.key_name()),
        stored);
    if (inserted) {
      ++attestation_count_;
      ++per_key_[stored.attestation.key_name()];
    } else if (stored.received_unix < it->second.received_unix) {
      it->second.received_unix = stored.received_unix;  // the earliest receipt any log shows
    }
    outcomes.push_back(inserted ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent);
    if (inserted && batch.log_append == LogAppend::kAll) AppendToLog(std::move(entries->attestations[i]));
  }
  for (size_t i = 0; i < batch.realisations.size(); ++i) {
    const StoredRealisation& stored = batch.realisations[i];
    const consensus::RealisationAttestation& attestation = stored.attestation;
    std::string key = attestation.claim.key.ToString();
    auto& of_key = realisations_[key];
    auto [it, inserted] =
        of_key.try_emplace(std::make_pair(attestation.claim.Fingerprint(), attestation.key_name()), stored);
    if (inserted) {
      ++realisation_count_;
      realisation_keys_by_out_path_[attestation.claim.out_path.full()].insert(std::move(key));
    } else if (stored.received_unix < it->second.received_unix) {
      it->second.received_unix = stored.received_unix;  // the earliest receipt any log shows
    }
    outcomes.push_back(inserted ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent);
    if (inserted && batch.log_append == LogAppend::kAll) AppendToLog(std::move(entries->realisations[i]));
  }
  for (std::vector<std::string>& dispute_entries : entries->disputes) {
    for (std::string& entry : dispute_entries) AppendToLog(std::move(entry));
  }
  if (batch.peer_progress.has_value()) {
    const std::string& peer = batch.peer_progress->peer;
    std::map<uint64_t, std::string>& kept = peer_entries_[peer];
    const uint64_t first = batch.peer_progress->cursor - batch.peer_entries.size();
    for (size_t i = 0; i < batch.peer_entries.size(); ++i) kept[first + i] = batch.peer_entries[i];
    peers_[peer] = *batch.peer_progress;
  }
  for (const RejectedEntry& rejected : batch.rejected_entries) {
    rejected_.try_emplace(std::make_pair(rejected.peer, rejected.index), rejected);
  }
  for (const StoredDispute& dispute : batch.disputes) {
    auto [it, inserted] = disputes_.try_emplace(dispute.id, dispute);
    if (!inserted) {
      const int64_t opened = it->second.opened_unix;
      it->second = dispute;
      it->second.opened_unix = opened;
    }
  }
  for (size_t i = 0; i < batch.resolutions.size(); ++i) {
    const StoredResolution& resolution = batch.resolutions[i];
    bool present = false;
    for (const auto& [key, held] : resolutions_) present = present || held.signed_note == resolution.signed_note;
    if (present) continue;
    resolutions_.emplace(std::make_tuple(resolution.dispute_id, resolution.time_unix, resolution.signed_note),
                         resolution);
    if (batch.log_append == LogAppend::kAll) AppendToLog(std::move(entries->resolutions[i]));
  }
  for (auto& [key, tile] : log_tree_.TakeChangedTiles()) log_tiles_[key] = std::move(tile);
  for (const DisputeStateUpdate& update : batch.dispute_states) {
    auto it = disputes_.find(update.id);
    if (it != disputes_.end()) it->second.state = update.state;
  }
  return outcomes;
}

void MemoryAttestationStore::AppendToLog(std::string entry) {
  log_tree_.Append(consensus::LeafHash(entry));
  log_entries_.push_back(std::move(entry));
}

absl::StatusOr<std::vector<std::vector<StoredAttestation>>> MemoryAttestationStore::AttestationsFor(
    std::span<const consensus::StorePath> paths) {
  std::vector<std::vector<StoredAttestation>> result(paths.size());
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < paths.size(); ++i) {
    auto it = attestations_.find(paths[i]);
    if (it == attestations_.end()) continue;
    result[i].reserve(it->second.size());
    for (const auto& [key, stored] : it->second) result[i].push_back(stored);
  }
  return result;
}

absl::StatusOr<std::vector<std::vector<StoredRealisation>>> MemoryAttestationStore::RealisationsFor(
    std::span<const consensus::RealisationKey> keys) {
  std::vector<std::vector<StoredRealisation>> result(keys.size());
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    auto it = realisations_.find(keys[i].ToString());
    if (it == realisations_.end()) continue;
    result[i].reserve(it->second.size());
    for (const auto& [order, stored] : it->second) result[i].push_back(stored);
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> MemoryAttestationStore::RealisationKeysFor(const StorePath& out_path) {
  absl::MutexLock lock(&mu_);
  auto it = realisation_keys_by_out_path_.find(out_path.full());
  if (it == realisation_keys_by_out_path_.end()) return std::vector<std::string>{};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

absl::StatusOr<std::optional<StoredDispute>> MemoryAttestationStore::GetDispute(
    const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = disputes_.find(id);
  if (it == disputes_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<StoredDispute>> MemoryAttestationStore::ListDisputes(
    const DisputeQuery& query) {
  if (query.limit < 1) {
    return absl::InvalidArgumentError("dispute page limit must be at least 1");
  }
  std::map<std::string, const StoredDispute*> ordered;  // by DisputeSortKey
  absl::MutexLock lock(&mu_);
  for (const auto& [id, dispute] : disputes_) {
    std::string key = DisputeSortKey(dispute);
    if (key > query.after_key && MatchesDisputeFilters(dispute, query)) ordered.emplace(std::move(key), &dispute);
  }
  std::vector<StoredDispute> page;
  for (auto it = ordered.begin(); it != ordered.end() && page.size() < static_cast<size_t>(query.limit); ++it) {
    page.push_back(*it->second);
  }
  return page;
}

absl::StatusOr<int64_t> MemoryAttestationStore::CountDisputes(const DisputeQuery& query) {
  absl::MutexLock lock(&mu_);
  int64_t count = 0;
  for (const auto& [id, dispute] : disputes_) count += MatchesDisputeFilters(dispute, query) ? 1 : 0;
  return count;
}

absl::StatusOr<std::vector<StoredResolution>> MemoryAttestationStore::ResolutionsFor(
    const std::string& dispute_id) {
  absl::MutexLock lock(&mu_);
  std::vector<StoredResolution> out;
  for (auto it = resolutions_.lower_bound(std::make_tuple(dispute_id, INT64_MIN, std::string()));
       it != resolutions_.end() && std::get<0>(it->first) == dispute_id; ++it) {
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<std::vector<StoredResolution>> MemoryAttestationStore::AllResolutions() {
  absl::MutexLock lock(&mu_);
  std::vector<StoredResolution> out;
  for (const auto& [key, resolution] : resolutions_) out.push_back(resolution);
  return out;
}

absl::StatusOr<std::vector<KeyAttestationCount>> MemoryAttestationStore::AttestationsPerKey() {
  absl::MutexLock lock(&mu_);
  std::vector<KeyAttestationCount> out;
  for (const auto& [name, count] : per_key_) out.push_back({.key_name = name, .attestations = count});
  return out;
}

absl::StatusOr<StoreStats> MemoryAttestationStore::Stats() {
  absl::MutexLock lock(&mu_);
  int64_t open = 0;
  for (const auto& [id, dispute] : disputes_) open += dispute.state == consensus::DisputeState::kOpen ? 1 : 0;
  return StoreStats{.attestations = attestation_count_,
                    .paths = static_cast<int64_t>(attestations_.size()),
                    .disputes = static_cast<int64_t>(disputes_.size()),
                    .open_disputes = open,
                    .resolutions = static_cast<int64_t>(resolutions_.size()),
                    .realisations = realisation_count_,
                    .realisation_keys = static_cast<int64_t>(realisations_.size())};
}

absl::StatusOr<LogHead> MemoryAttestationStore::GetLogHead() {
  absl::MutexLock lock(&mu_);
  return LogHead{.size = log_tree_.size(), .root = log_tree_.Root()};
}

absl::StatusOr<std::vector<std::string>> MemoryAttestationStore::LogEntries(uint64_t first,
                                                                            uint64_t count) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = CheckLogRange(first, count, log_entries_.size()); !status.ok()) {
    return status;
  }
  return std::vector<std::string>(log_entries_.begin() + static_cast<ptrdiff_t>(first),
                                  log_entries_.begin() + static_cast<ptrdiff_t>(first + count));
}

absl::StatusOr<std::vector<std::string>> MemoryAttestationStore::LogTiles(
    std::span<const consensus::TileId> tiles) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  out.reserve(tiles.size());
  for (const consensus::TileId& tile : tiles) {
    if (tile.entries) return absl::InvalidArgumentError("LogTiles reads hash tiles, not entry bundles");
    auto it = log_tiles_.find(TileKey{.level = tile.level, .index = tile.index});
    auto bytes = TilePrefix(tile, it == log_tiles_.end() ? std::string_view() : it->second);
    if (!bytes.ok()) return bytes.status();
    out.push_back(std::move(*bytes));
  }
  return out;
}

absl::Status MemoryAttestationStore::StoreCheckpoint(const StoredCheckpoint& checkpoint) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = CheckNewCheckpoint(checkpoint, log_tree_.size(),
                                               checkpoints_.contains(checkpoint.size)
                                                   ? &checkpoints_.at(checkpoint.size)
                                                   : nullptr);
      !status.ok() || checkpoints_.contains(checkpoint.size)) {
    return status;
  }
  checkpoints_.emplace(checkpoint.size, checkpoint);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<StoredCheckpoint>> MemoryAttestationStore::LatestCheckpoint() {
  absl::MutexLock lock(&mu_);
  if (checkpoints_.empty()) return std::nullopt;
  return checkpoints_.rbegin()->second;
}

absl::StatusOr<std::optional<PeerProgress>> MemoryAttestationStore::GetPeerProgress(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::vector<RejectedEntry>> MemoryAttestationStore::RecentRejectedEntries(const std::string& peer,
                                                                                       int limit) {
  absl::MutexLock lock(&mu_);
  std::vector<RejectedEntry> out;
  for (const auto& [key, rejected] : rejected_) {
    if (peer.empty() || rejected.peer == peer) out.push_back(rejected);
  }
  SortNewestFirst(out);
  if (out.size() > static_cast<size_t>(std::max(0, limit))) out.resize(static_cast<size_t>(std::max(0, limit)));
  return out;
}

absl::StatusOr<std::vector<std::string>> MemoryAttestationStore::PeerLogEntries(const std::string& peer,
                                                                                 uint64_t first, uint64_t count) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  auto kept = peer_entries_.find(peer);
  for (uint64_t i = 0; i < count; ++i) {
    const std::string* entry = nullptr;
    if (kept != peer_entries_.end()) {
      auto found = kept->second.find(first + i);
      if (found != kept->second.end()) entry = &found->second;
    }
    if (entry == nullptr) {
      return absl::NotFoundError(
          consensus::Cat("this node does not hold entry ", first + i, " of peer '", peer, "'s log"));
    }
    out.push_back(*entry);
  }
  return out;
}

absl::StatusOr<int64_t> MemoryAttestationStore::CountRejectedEntries(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  int64_t count = 0;
  for (const auto& [key, rejected] : rejected_) count += peer.empty() || rejected.peer == peer ? 1 : 0;
  return count;
}

absl::Status MemoryAttestationStore::StoreForkEvidence(const ForkEvidence& evidence) {
  if (absl::Status status = ValidateForkEvidence(evidence); !status.ok()) return status;
  absl::MutexLock lock(&mu_);
  forks_.try_emplace(evidence.peer, evidence);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ForkEvidence>> MemoryAttestationStore::ListForkEvidence() {
  absl::MutexLock lock(&mu_);
  std::vector<ForkEvidence> out;
  for (const auto& [peer, evidence] : forks_) out.push_back(evidence);
  return out;
}

absl::StatusOr<std::vector<WriteOutcome>> MemoryAttestationStore::PutDerivations(
    std::span<const StoredDerivation> derivations) {
  // Validate everything first: a refused item must leave the store untouched.
  for (size_t i = 0; i < derivations.size(); ++i) {
    if (absl::Status status = ValidateStoredDerivation(derivations[i], i, derivations.size()); !status.ok()) {
      return status;
    }
  }
  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(derivations.size());
  absl::MutexLock lock(&mu_);
  for (const StoredDerivation& derivation : derivations) {
    auto [it, inserted] = derivations_.try_emplace(derivation.path, derivation);
    outcomes.push_back(inserted ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent);
    if (!inserted) continue;
    derivation_bytes_ += static_cast<int64_t>(derivation.contents.size());
    for (const DerivationOutputPath& output : derivation.outputs) {
      producers_[output.path.full()].insert(
          DerivationOfOutput{.drv_path = derivation.path, .output_name = output.output_name});
    }
  }
  return outcomes;
}

absl::StatusOr<std::vector<bool>> MemoryAttestationStore::HasDerivations(std::span<const StorePath> paths) {
  absl::MutexLock lock(&mu_);
  std::vector<bool> out;
  out.reserve(paths.size());
  for (const StorePath& path : paths) out.push_back(derivations_.contains(path));
  return out;
}

absl::StatusOr<std::vector<std::optional<StoredDerivation>>> MemoryAttestationStore::GetDerivations(
    std::span<const StorePath> paths) {
  absl::MutexLock lock(&mu_);
  std::vector<std::optional<StoredDerivation>> out;
  out.reserve(paths.size());
  for (const StorePath& path : paths) {
    auto it = derivations_.find(path);
    out.push_back(it == derivations_.end() ? std::nullopt : std::optional(it->second));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> MemoryAttestationStore::DerivationsProducing(
    std::span<const StorePath> outputs) {
  absl::MutexLock lock(&mu_);
  std::vector<std::vector<DerivationOfOutput>> out;
  out.reserve(outputs.size());
  for (const StorePath& output : outputs) {
    auto it = producers_.find(output.full());
    if (it == producers_.end()) {
      out.emplace_back();
    } else {
      out.emplace_back(it->second.begin(), it->second.end());
    }
  }
  return out;
}

absl::StatusOr<std::optional<StorePath>> MemoryAttestationStore::OutputPathByHashPart(std::string_view hash_part) {
  if (absl::Status status = ValidateHashPart(hash_part); !status.ok()) return status;
  const std::string prefix = consensus::Cat(consensus::kStoreDir, "/", hash_part, "-");
  absl::MutexLock lock(&mu_);
  auto it = producers_.lower_bound(prefix);
  if (it == producers_.end() || !it->first.starts_with(prefix)) return std::nullopt;
  auto path = StorePath::Parse(it->first);
  // Keys are the full paths of parsed StorePaths, so this cannot fail.
  if (!path.ok()) {
    return absl::InternalError(
        consensus::Cat("an output path held in memory does not parse: ", path.status().message()));
  }
  return std::optional(*path);
}

absl::StatusOr<DerivationStats> MemoryAttestationStore::GetDerivationStats() {
  absl::MutexLock lock(&mu_);
  return DerivationStats{.derivations = static_cast<int64_t>(derivations_.size()),
                         .content_bytes = derivation_bytes_};
}

absl::Status MemoryAttestationStore::PutPolicyLink(const StoredPolicyLink& link) {
  absl::StatusOr<std::string> entry = PolicyLinkEntry(link);
  if (!entry.ok()) return entry.status();
  absl::MutexLock lock(&mu_);
  const StoredPolicyLink* parent = nullptr;  // null: the link starts a new segment of the chain
  for (const StoredPolicyLink& held : policy_chain_) {
    if (held.hash == link.hash) {
      return absl::AlreadyExistsError(
          consensus::Cat("policy ", link.hash, " (version ", held.version, ") is already in the chain"));
    }
    if (held.hash == link.parent) parent = &held;
  }
  if (absl::Status status =
          CheckPolicyLinkExtends(link, policy_chain_.empty() ? nullptr : &policy_chain_.back(), parent);
      !status.ok()) {
    return status;
  }
  policy_chain_.push_back(link);
  // Submitted here: logged with it (a peer's link is in the peer's log already).
  if (link.origin.empty()) {
    AppendToLog(*std::move(entry));
    for (auto& [key, tile] : log_tree_.TakeChangedTiles()) log_tiles_[key] = std::move(tile);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredPolicyLink>> MemoryAttestationStore::PolicyChain() {
  absl::MutexLock lock(&mu_);
  return policy_chain_;
}

}  // namespace attest::storage
