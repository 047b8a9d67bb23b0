#include "storage/batch_validation.h"

#include <algorithm>
#include <bit>
#include <tuple>

#include "consensus/attestation.h"
#include "consensus/log_entry.h"
#include "consensus/realisation.h"
#include "consensus/text.h"

namespace attest::storage {

absl::Status ValidateStoredAttestation(const StoredAttestation& stored, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("attestation ", index + 1, " of ", count, ": ");
  if (absl::Status status = consensus::ValidateBuildMetadata(stored.attestation.metadata);
      !status.ok()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, status.message()));
  }
  if (stored.received_unix < 0) {
    return absl::InvalidArgumentError(
        consensus::Cat(prefix, "received time ", stored.received_unix, " is negative"));
  }
  if (stored.observed_key.has_value() &&
      stored.observed_key->name() != stored.attestation.key_name()) {
    return absl::InvalidArgumentError(consensus::Cat(
        prefix, "observed key is named ", stored.observed_key->name(), " but the signature is by ",
        stored.attestation.key_name(), " (store the key that made the signature)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredRealisation(const StoredRealisation& stored, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("realisation ", index + 1, " of ", count, ": ");
  const consensus::RealisationAttestation& attestation = stored.attestation;
  if (absl::Status status = consensus::ValidateRealisationMetadata(attestation.claim, attestation.metadata);
      !status.ok()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, status.message()));
  }
  if (stored.received_unix < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "received time ", stored.received_unix, " is negative"));
  }
  if (stored.observed_key.has_value() && stored.observed_key->name() != attestation.key_name()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "observed key is named ", stored.observed_key->name(),
                                                     " but the signature is by ", attestation.key_name(),
                                                     " (store the key that made the signature)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredDispute(const StoredDispute& dispute, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("dispute ", index + 1, " of ", count, ": ");
  if (dispute.id.empty()) return absl::InvalidArgumentError(consensus::Cat(prefix, "empty id"));
  if (dispute.signed_record.empty()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "empty signed record"));
  }
  if (dispute.opened_unix < 0 || dispute.updated_unix < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "negative time"));
  }
  if (dispute.updated_unix < dispute.opened_unix) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "updated time ", dispute.updated_unix,
                                                   " precedes opened time ", dispute.opened_unix));
  }
  if (dispute.fingerprint_count < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "negative fingerprint count"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredDerivation(const StoredDerivation& derivation, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("derivation ", index + 1, " of ", count, ": ");
  const std::string& path = derivation.path.full();
  if (!derivation.path.IsDerivation()) {
    return absl::InvalidArgumentError(
        consensus::Cat(prefix, path, " is not a derivation (its name must end in .drv)"));
  }
  if (derivation.contents.empty()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, path, " has empty contents"));
  }
  for (size_t i = 0; i < derivation.input_derivations.size(); ++i) {
    const consensus::StorePath& input = derivation.input_derivations[i];
    if (!input.IsDerivation()) {
      return absl::InvalidArgumentError(consensus::Cat(prefix, path, ": input derivation ", input.full(),
                                                       " is not a derivation (its name must end in .drv)"));
    }
    if (i > 0 && !(derivation.input_derivations[i - 1] < input)) {
      return absl::InvalidArgumentError(consensus::Cat(prefix, path, ": input derivations are not sorted and unique (",
                                                       derivation.input_derivations[i - 1].full(), " before ",
                                                       input.full(), ")"));
    }
  }
  for (size_t i = 0; i < derivation.outputs.size(); ++i) {
    const std::string& name = derivation.outputs[i].output_name;
    if (name.empty()) {
      return absl::InvalidArgumentError(consensus::Cat(prefix, path, ": output ", i + 1, " has no name"));
    }
    if (i > 0 && !(derivation.outputs[i - 1].output_name < name)) {
      return absl::InvalidArgumentError(consensus::Cat(prefix, path, ": outputs are not sorted by unique names ('",
                                                       derivation.outputs[i - 1].output_name, "' before '", name,
                                                       "')"));
    }
  }
  if (derivation.received_unix < 0) {
    return absl::InvalidArgumentError(
        consensus::Cat(prefix, path, ": received time ", derivation.received_unix, " is negative"));
  }
  return absl::OkStatus();
}

absl::Status ValidateHashPart(std::string_view hash_part) {
  // A store path with this hash part parses exactly when the hash part is well formed, so the
  // alphabet is checked in one place (consensus/store_path.h).
  if (hash_part.size() != consensus::kStorePathHashLength ||
      !consensus::StorePath::ParseBaseName(consensus::Cat(hash_part, "-x")).ok()) {
    return absl::InvalidArgumentError(consensus::Cat(consensus::QuoteForError(hash_part),
                                                     " is not a store path hash part (32 nix32 characters)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredResolution(const StoredResolution& resolution, size_t index, size_t count) {
  const std::string prefix = consensus::Cat("resolution ", index + 1, " of ", count, ": ");
  if (resolution.dispute_id.empty() || resolution.signed_note.empty() || resolution.maintainer.empty()) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "empty dispute id, signed note or maintainer"));
  }
  if (resolution.time_unix < 0 || resolution.received_unix < 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "negative time"));
  }
  return absl::OkStatus();
}

std::string DisputeSortKey(const StoredDispute& dispute) {
  return consensus::Cat(dispute.state == consensus::DisputeState::kOpen ? "0" : "1", dispute.id);
}

bool MatchesDisputeFilters(const StoredDispute& dispute, const DisputeQuery& query) {
  if (query.state.has_value() && dispute.state != *query.state) return false;
  if (!query.name_contains.empty() && dispute.subject.Name().find(query.name_contains) == std::string::npos) {
    return false;
  }
  if (!query.operator_name.empty() &&
      !std::ranges::binary_search(dispute.operators, query.operator_name)) {
    return false;
  }
  return true;
}

bool ResolutionLess(const StoredResolution& a, const StoredResolution& b) {
  return std::tie(a.time_unix, a.signed_note) < std::tie(b.time_unix, b.signed_note);
}

absl::StatusOr<BatchLogEntries> LogEntriesOf(const WriteBatch& batch) {
  BatchLogEntries entries;
  if (batch.log_append == LogAppend::kNone) return entries;
  entries.logged = true;
  entries.attestations.reserve(batch.attestations.size());
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    if (batch.log_append != LogAppend::kAll) {
      entries.attestations.emplace_back();  // not logged: the batch was replicated from a peer
      continue;
    }
    const StoredAttestation& stored = batch.attestations[i];
    auto entry = consensus::EncodeAttestationEntry(consensus::AttestationEntry{
        .attestation = stored.attestation,
        .observed_key = stored.observed_key,
        .received_unix = stored.received_unix});
    if (!entry.ok()) {
      return absl::InvalidArgumentError(consensus::Cat("attestation ", i + 1, " of ",
                                                       batch.attestations.size(), ": ",
                                                       entry.status().message()));
    }
    entries.attestations.push_back(std::move(*entry));
  }
  for (size_t i = 0; batch.log_append == LogAppend::kAll && i < batch.realisations.size(); ++i) {
    const StoredRealisation& stored = batch.realisations[i];
    auto entry = consensus::EncodeRealisationEntry(consensus::RealisationEntry{
        .attestation = stored.attestation,
        .observed_key = stored.observed_key,
        .received_unix = stored.received_unix});
    if (!entry.ok()) {
      return absl::InvalidArgumentError(consensus::Cat("realisation ", i + 1, " of ", batch.realisations.size(),
                                                       ": ", entry.status().message()));
    }
    entries.realisations.push_back(std::move(*entry));
  }
  for (size_t i = 0; i < batch.disputes.size(); ++i) {
    auto dispute = consensus::EncodeDisputeEntries(batch.disputes[i].signed_record);
    if (!dispute.ok()) {
      return absl::InvalidArgumentError(consensus::Cat(
          "dispute ", i + 1, " of ", batch.disputes.size(), ": ", dispute.status().message()));
    }
    entries.disputes.push_back(std::move(*dispute));
  }
  for (size_t i = 0; batch.log_append == LogAppend::kAll && i < batch.resolutions.size(); ++i) {
    auto entry = consensus::EncodeResolutionEntry(batch.resolutions[i].signed_note);
    if (!entry.ok()) {
      return absl::InvalidArgumentError(consensus::Cat(
          "resolution ", i + 1, " of ", batch.resolutions.size(), ": ", entry.status().message()));
    }
    entries.resolutions.push_back(std::move(*entry));
  }
  return entries;
}

absl::StatusOr<std::string> PolicyLinkEntry(const StoredPolicyLink& link) {
  if (link.hash.empty()) return absl::InvalidArgumentError("policy link has no hash");
  absl::StatusOr<std::string> entry = consensus::EncodePolicyEntry(consensus::PolicyEntry{.policy_hash = link.hash,
                                                                                         .parent = link.parent,
                                                                                         .version = link.version,
                                                                                         .approvals = link.approvals,
                                                                                         .received_unix = link.received_unix,
                                                                                         .toml = link.toml});
  if (!entry.ok()) {
    return absl::InvalidArgumentError(consensus::Cat("policy link ", link.hash, " cannot be stored: ",
                                                     entry.status().message()));
  }
  return entry;
}

absl::Status CheckPolicyLinkExtends(const StoredPolicyLink& link, const StoredPolicyLink* last,
                                    const StoredPolicyLink* parent) {
  // A parent the chain does not hold: the link continues a policy file the node was restarted with.
  if (last == nullptr || parent == nullptr) return absl::OkStatus();
  if (link.parent != last->hash) {
    return absl::FailedPreconditionError(consensus::Cat(
        "policy ", link.hash, " names parent ", link.parent, " (version ", parent->version,
        "), an older policy of the chain, but the chain ends at ", last->hash, " (version ", last->version,
        "): a link continues the chain's last policy, or a policy file the chain does not hold, never an "
        "older one of it (submit a successor of the current policy)"));
  }
  if (link.version != last->version + 1) {
    return absl::FailedPreconditionError(consensus::Cat("policy ", link.hash, " has version ", link.version,
                                                        " but its parent ", last->hash, " has version ", last->version,
                                                        " (a successor's version is its parent's + 1)"));
  }
  return absl::OkStatus();
}

absl::Status CheckLogRange(uint64_t first, uint64_t count, uint64_t size) {
  if (first > size || count > size - first) {
    return absl::OutOfRangeError(consensus::Cat("log entries ", first, " to ", first + count,
                                                " are past the end of the log (", size,
                                                " entries)"));
  }
  return absl::OkStatus();
}

absl::Status CheckNewCheckpoint(const StoredCheckpoint& checkpoint, uint64_t log_size,
                                const StoredCheckpoint* existing) {
  if (checkpoint.size > log_size) {
    return absl::InvalidArgumentError(consensus::Cat("a checkpoint of size ", checkpoint.size,
                                                     " for a log of ", log_size, " entries"));
  }
  if (checkpoint.note.empty()) return absl::InvalidArgumentError("a checkpoint without its note");
  if (existing != nullptr && existing->root != checkpoint.root) {
    return absl::AlreadyExistsError(consensus::Cat(
        "a checkpoint of size ", checkpoint.size,
        " with another root is already stored: the log never signs two roots for one size"));
  }
  return absl::OkStatus();
}

}  // namespace attest::storage

namespace attest::storage {

absl::Status ValidatePeerProgress(const PeerProgress& progress) {
  const std::string prefix = consensus::Cat("progress of peer '", progress.peer, "': ");
  if (progress.peer.empty()) return absl::InvalidArgumentError("peer progress without a peer name");
  if (progress.frontier.size() != static_cast<size_t>(std::popcount(progress.cursor))) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "a frontier of ", progress.frontier.size(),
                                                     " hashes for ", progress.cursor,
                                                     " entries (a compact range has one per set bit)"));
  }
  if (progress.cursor > progress.checkpoint_size) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "cursor ", progress.cursor,
                                                     " is past the verified checkpoint's size ",
                                                     progress.checkpoint_size));
  }
  if (progress.checkpoint.empty() && progress.checkpoint_size != 0) {
    return absl::InvalidArgumentError(consensus::Cat(prefix, "a checkpoint size without its note"));
  }
  return absl::OkStatus();
}

absl::Status ValidateForkEvidence(const ForkEvidence& evidence) {
  if (evidence.peer.empty() || evidence.first_checkpoint.empty() || evidence.second_checkpoint.empty()) {
    return absl::InvalidArgumentError("fork evidence needs the peer's name and both signed checkpoints");
  }
  return absl::OkStatus();
}

void SortNewestFirst(std::vector<RejectedEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const RejectedEntry& a, const RejectedEntry& b) {
    return std::tie(a.detected_unix, a.index, a.peer) > std::tie(b.detected_unix, b.index, b.peer);
  });
}

absl::Status CheckCursorAdvance(const PeerProgress& progress, std::optional<uint64_t> stored_cursor) {
  if (stored_cursor.has_value() && progress.cursor < *stored_cursor) {
    return absl::FailedPreconditionError(consensus::Cat("progress of peer '", progress.peer, "': cursor ",
                                                        progress.cursor, " is behind the stored cursor ",
                                                        *stored_cursor, " (a cursor never moves backwards)"));
  }
  return absl::OkStatus();
}

absl::Status CheckPeerEntries(const WriteBatch& batch, std::optional<uint64_t> stored_cursor) {
  if (batch.peer_entries.empty()) return absl::OkStatus();
  if (!batch.peer_progress.has_value()) {
    return absl::InvalidArgumentError(consensus::Cat("a write carries ", batch.peer_entries.size(),
                                                     " peer entries but no peer progress (they belong to one)"));
  }
  const uint64_t from = stored_cursor.value_or(0);
  const uint64_t to = batch.peer_progress->cursor;
  if (to < from || to - from != batch.peer_entries.size()) {
    return absl::InvalidArgumentError(consensus::Cat("progress of peer '", batch.peer_progress->peer, "': ",
                                                     batch.peer_entries.size(), " entries kept for cursor ", from,
                                                     " -> ", to, " (must be exactly the entries it advances over)"));
  }
  return absl::OkStatus();
}

}  // namespace attest::storage
