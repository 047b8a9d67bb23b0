#include "server/ingest_plan.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "consensus/dispute.h"
#include "consensus/signed_note.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "server/path_tally.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// Identity of an attestation for duplicate detection: the fingerprint names the path and the claim.
std::string IdentityKey(std::string_view fingerprint, std::string_view key_name) {
  return Cat(fingerprint, "\n", key_name);
}

std::string JoinNames(const std::vector<std::string>& names) { return absl::StrJoin(names, ", "); }

// The signed dispute record of a store path (Subject StorePath, TallyOf PathTally) or of a derivation
// output (RealisationKey, RealisationTally) after `after`, and its state-change line.
template <typename Subject, typename TallyOf>
absl::StatusOr<storage::StoredDispute> MakeDispute(const IngestPlanInput& input, const Subject& subject,
                                                   const TallyOf& after, const consensus::TallyResult& before,
                                                   std::vector<std::string>& state_changes) {
  absl::StatusOr<consensus::DisputeRecord> record =
      consensus::MakeDisputeRecord(*input.policy, subject, after.attestations, after.result, input.now_unix);
  if (!record.ok()) {
    return absl::InternalError(Cat("building the dispute record of ", consensus::DisputeSubject(subject).ToString(), ": ",
                                   StdView(record.status().message())));
  }
  consensus::SignedNote note = consensus::SignDisputeRecord(*record, *input.node_key);
  storage::StoredDispute dispute{.id = record->id,
                                 .subject = record->subject,
                                 .signed_record = note.Serialize(),
                                 .opened_unix = input.now_unix,
                                 .updated_unix = input.now_unix,
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
  if (input.resolutions != nullptr) dispute.state = input.resolutions->StateOf(dispute.id, fingerprints);
  state_changes.push_back(Cat(before.verdict == consensus::Verdict::kDisputed ? "dispute updated: "
                                                                              : "dispute opened: ",
                              dispute.id, " ", record->subject.is_realisation() ? "realisation " : "",
                              record->subject.ToString(), ": ", dispute.fingerprint_count,
                              record->subject.is_realisation() ? " competing output paths" : " competing fingerprints",
                              " from operators ", JoinNames(operators),
                              after.result.flagged_builders.empty()
                                  ? std::string()
                                  : Cat("; flagged builders ", JoinNames(after.result.flagged_builders))));
  return dispute;
}

// Adds a statement and the state it gives its dispute to `plan`.
absl::Status PlanStatement(const IngestPlanInput& input, const PlannedStatement& planned, IngestPlan& plan) {
  const consensus::VerifiedResolution& statement = *planned.statement;
  const consensus::Resolution& resolution = statement.resolution;
  plan.batch.resolutions.push_back(storage::StoredResolution{.dispute_id = resolution.dispute_id,
                                                             .signed_note = statement.signed_note,
                                                             .outcome = resolution.outcome,
                                                             .maintainer = statement.maintainer,
                                                             .time_unix = resolution.time_unix,
                                                             .received_unix = input.now_unix,
                                                             .origin = planned.origin});
  // The dispute's current fingerprints: from a record this plan writes, else the stored one.
  const storage::StoredDispute* record_holder = nullptr;
  for (const storage::StoredDispute& dispute : plan.batch.disputes) {
    if (dispute.id == resolution.dispute_id) record_holder = &dispute;
  }
  if (record_holder == nullptr && planned.stored_dispute.has_value()) record_holder = &*planned.stored_dispute;
  if (record_holder == nullptr) return absl::OkStatus();  // a peer's statement about a dispute not seen here
  absl::StatusOr<consensus::DisputeRecord> record =
      consensus::DisputeRecord::FromSignedNote(record_holder->signed_record);
  if (!record.ok()) {
    return absl::DataLossError(Cat("stored dispute record ", resolution.dispute_id,
                                   " does not parse: ", StdView(record.status().message())));
  }
  std::vector<std::string> fingerprints;
  for (const consensus::DisputeSide& side : record->sides) fingerprints.push_back(side.fingerprint);
  // The statement in force after this one is stored: the later of the two.
  std::optional<consensus::VerifiedResolution> in_force =
      input.resolutions != nullptr ? input.resolutions->InForce(resolution.dispute_id) : std::nullopt;
  const consensus::Resolution* deciding = &resolution;
  if (in_force.has_value() && std::tie(in_force->resolution.time_unix, in_force->signed_note) >
                                  std::tie(resolution.time_unix, statement.signed_note)) {
    deciding = &in_force->resolution;
  }
  const consensus::DisputeState state = consensus::StateOf(deciding, fingerprints);
  plan.batch.dispute_states.push_back(storage::DisputeStateUpdate{.id = resolution.dispute_id, .state = state});
  plan.state_changes.push_back(Cat("dispute ", resolution.dispute_id, " ", record->subject.ToString(), ": maintainer ",
                                   statement.maintainer, " says ", consensus::OutcomeName(resolution.outcome),
                                   resolution.builders.empty() ? std::string()
                                                               : Cat(" (builders no longer counted: ",
                                                                     JoinNames(resolution.builders), ")"),
                                   planned.origin.empty() ? std::string() : Cat(" [from ", planned.origin, "]"),
                                   "; state ", consensus::DisputeStateName(state)));
  return absl::OkStatus();
}

// Adds the realisation attestations of input.realisations to `plan`, key by key, as PlanIngest does for
// attestations (held ones only lower the received time), with a state-change line when a key becomes
// CONFIRMED and a signed dispute record when it becomes DISPUTED or its counted evidence changes.
absl::Status PlanRealisations(const IngestPlanInput& input, const consensus::TallyOptions& tally_options,
                              IngestPlan& plan) {
  if (input.stored_realisations.size() != input.keys.size()) {
    return absl::InvalidArgumentError(Cat("the stored realisations of ", input.stored_realisations.size(),
                                          " keys for ", input.keys.size(), " affected keys"));
  }
  absl::flat_hash_map<std::string, size_t> key_index;
  for (size_t k = 0; k < input.keys.size(); ++k) key_index.try_emplace(input.keys[k].ToString(), k);
  std::vector<std::vector<size_t>> items_by_key(input.keys.size());
  for (size_t i = 0; i < input.realisations.size(); ++i) {
    const std::string key = input.realisations[i]->attestation.claim.key.ToString();
    auto it = key_index.find(key);
    if (it == key_index.end()) {
      return absl::InvalidArgumentError(
          Cat("realisation ", i + 1, " is about ", key, ", which is not among the affected keys"));
    }
    items_by_key[it->second].push_back(i);
  }
  plan.realisation_items.assign(input.realisations.size(), PlannedItem::kAlreadyPresent);
  for (size_t k = 0; k < input.keys.size(); ++k) {
    const std::vector<storage::StoredRealisation>& stored = input.stored_realisations[k];
    std::vector<storage::StoredRealisation> combined(stored.begin(), stored.end());
    absl::flat_hash_map<std::string, size_t> held;
    for (size_t h = 0; h < combined.size(); ++h) {
      held.emplace(IdentityKey(combined[h].attestation.claim.Fingerprint(), combined[h].attestation.key_name()), h);
    }
    bool changed = false;
    for (size_t i : items_by_key[k]) {
      const VerifiedRealisation& item = *input.realisations[i];
      const int64_t received = item.received_unix.value_or(input.now_unix);
      auto [at, inserted] =
          held.try_emplace(IdentityKey(item.fingerprint, item.attestation.key_name()), combined.size());
      if (!inserted) {
        storage::StoredRealisation& first = combined[at->second];
        if (received >= first.received_unix) continue;
        first.received_unix = received;
        plan.batch.realisations.push_back(first);
      } else {
        combined.push_back(storage::StoredRealisation{.attestation = item.attestation,
                                                      .received_unix = received,
                                                      .observed_key = item.observed_key,
                                                      .origin = input.peer});
        plan.batch.realisations.push_back(combined.back());
      }
      plan.realisation_items[i] = PlannedItem::kWrite;
      plan.realisations_written.push_back(i);
      changed = true;
    }
    if (!changed) continue;

    const RealisationTally after = TallyStoredRealisations(*input.policy, combined, tally_options);
    consensus::TallyResult before;  // UNKNOWN
    if (!stored.empty()) before = TallyStoredRealisations(*input.policy, stored, tally_options).result;
    const std::string key = input.keys[k].ToString();
    if (after.result.verdict == consensus::Verdict::kConfirmed && before.verdict != consensus::Verdict::kConfirmed) {
      const consensus::FingerprintTally& agreed = after.result.fingerprints.front();
      const consensus::RealisationAttestation& sample = *after.attestations[agreed.attestations.front()];
      plan.state_changes.push_back(Cat("quorum reached: realisation ", key, " -> ", sample.claim.out_path.full(),
                                       " CONFIRMED by ", agreed.operators.size(), " operators (",
                                       JoinNames(agreed.operators), ")"));
    }
    if (after.result.verdict == consensus::Verdict::kDisputed &&
        (before.verdict != consensus::Verdict::kDisputed || CountedEvidenceChanged(before, after.result))) {
      absl::StatusOr<storage::StoredDispute> dispute =
          MakeDispute(input, input.keys[k], after, before, plan.state_changes);
      if (!dispute.ok()) return dispute.status();
      plan.batch.disputes.push_back(*std::move(dispute));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<consensus::RealisationKey> AffectedKeys(std::span<const VerifiedRealisation* const> realisations) {
  absl::flat_hash_set<std::string> seen;
  std::vector<consensus::RealisationKey> keys;
  for (const VerifiedRealisation* item : realisations) {
    const consensus::RealisationKey& key = item->attestation.claim.key;
    if (seen.insert(key.ToString()).second) keys.push_back(key);
  }
  return keys;
}

std::vector<consensus::StorePath> AffectedPaths(std::span<const VerifiedAttestation* const> items) {
  absl::flat_hash_set<consensus::StorePath> seen;
  std::vector<consensus::StorePath> paths;
  for (const VerifiedAttestation* item : items) {
    const consensus::StorePath& path = item->attestation.claim.path;
    if (seen.insert(path).second) paths.push_back(path);
  }
  return paths;
}

absl::StatusOr<IngestPlan> PlanIngest(const IngestPlanInput& input) {
  if (input.policy == nullptr || input.node_key == nullptr) {
    return absl::InvalidArgumentError("PlanIngest needs the policy and the node key");
  }
  if (input.stored.size() != input.paths.size()) {
    return absl::InvalidArgumentError(Cat("the stored attestations of ", input.stored.size(), " paths for ",
                                          input.paths.size(), " affected paths"));
  }
  // The items by store path, in the order of input.paths.
  absl::flat_hash_map<consensus::StorePath, size_t> path_index;
  for (size_t p = 0; p < input.paths.size(); ++p) path_index.try_emplace(input.paths[p], p);
  std::vector<std::vector<size_t>> items_by_path(input.paths.size());
  for (size_t i = 0; i < input.items.size(); ++i) {
    auto it = path_index.find(input.items[i]->attestation.claim.path);
    if (it == path_index.end()) {
      return absl::InvalidArgumentError(Cat("item ", i + 1, " is about ", input.items[i]->attestation.claim.path.full(),
                                            ", which is not among the affected paths"));
    }
    items_by_path[it->second].push_back(i);
  }

  const std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(input.resolutions);
  IngestPlan plan;
  plan.items.assign(input.items.size(), PlannedItem::kAlreadyPresent);
  // What builders submit to this node, and the dispute records it makes, go into its own log (in the
  // same transaction); what it replicates from peers never does.
  plan.batch.log_append = input.peer.empty() ? storage::LogAppend::kAll : storage::LogAppend::kDisputesOnly;
  for (size_t p = 0; p < input.paths.size(); ++p) {
    const std::vector<storage::StoredAttestation>& stored = input.stored[p];
    // What the path holds after this plan: the stored attestations, then the new ones; `held` finds an
    // attestation in it by identity.
    std::vector<storage::StoredAttestation> combined(stored.begin(), stored.end());
    absl::flat_hash_map<std::string, size_t> held;
    held.reserve(stored.size() + items_by_path[p].size());
    for (size_t k = 0; k < combined.size(); ++k) {
      held.emplace(IdentityKey(combined[k].attestation.claim.Fingerprint(), combined[k].attestation.key_name()), k);
    }
    bool changed = false;
    for (size_t i : items_by_path[p]) {
      const VerifiedAttestation& item = *input.items[i];
      const int64_t received = item.received_unix.value_or(input.now_unix);
      // Also catches the same attestation twice in one plan (two batches of a group).
      auto [at, inserted] = held.try_emplace(IdentityKey(item.fingerprint, item.attestation.key_name()), combined.size());
      if (!inserted) {
        // Held already. Another log that received it earlier lowers its time: every node keeps the
        // earliest receipt any log shows, so a retired key's cut-off gives the same verdict everywhere
        // (docs/policy.md). The store keeps everything else of the first copy.
        storage::StoredAttestation& first = combined[at->second];
        if (received >= first.received_unix) continue;
        first.received_unix = received;
        plan.batch.attestations.push_back(first);
        plan.items[i] = PlannedItem::kWrite;
        plan.written.push_back(i);
        changed = true;
        continue;
      }
      combined.push_back(storage::StoredAttestation{.attestation = item.attestation,
                                                    .received_unix = received,
                                                    .observed_key = item.observed_key,
                                                    .origin = input.peer});
      plan.batch.attestations.push_back(combined.back());
      plan.items[i] = PlannedItem::kWrite;
      plan.written.push_back(i);
      changed = true;
    }
    if (!changed) continue;  // nothing new about this path

    const PathTally after = TallyStored(*input.policy, combined, *tally_options);
    consensus::TallyResult before;  // UNKNOWN
    if (!stored.empty()) before = TallyStored(*input.policy, stored, *tally_options).result;
    const consensus::StorePath& path = input.paths[p];

    if (after.result.verdict == consensus::Verdict::kConfirmed && before.verdict != consensus::Verdict::kConfirmed) {
      const consensus::FingerprintTally& agreed = after.result.fingerprints.front();
      plan.state_changes.push_back(Cat("quorum reached: ", path.full(), " CONFIRMED by ", agreed.operators.size(),
                                       " operators (", JoinNames(agreed.operators), "), quorum ",
                                       input.policy->quorum()));
    }
    if (after.result.verdict == consensus::Verdict::kDisputed &&
        (before.verdict != consensus::Verdict::kDisputed || CountedEvidenceChanged(before, after.result))) {
      absl::StatusOr<storage::StoredDispute> dispute = MakeDispute(input, path, after, before, plan.state_changes);
      if (!dispute.ok()) return dispute.status();
      plan.batch.disputes.push_back(*std::move(dispute));
    }
  }

  if (absl::Status status = PlanRealisations(input, *tally_options, plan); !status.ok()) return status;
  for (const PlannedStatement& statement : input.statements) {
    if (absl::Status status = PlanStatement(input, statement, plan); !status.ok()) return status;
  }
  return plan;
}

}  // namespace attest::server
