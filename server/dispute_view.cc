#include "server/dispute_view.h"

#include <algorithm>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "server/grpc_status.h"
#include "server/path_tally.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;

absl::Status ValidatePageRequest(const DisputePageRequest& request) {
  if (request.size < 1 || request.size > kMaxDisputePageSize) {
    return absl::InvalidArgumentError(
        Cat("page size ", request.size, " is not from 1 to ", kMaxDisputePageSize));
  }
  if (!request.after.empty() && !IsDisputeCursor(request.after)) {
    return absl::InvalidArgumentError(Cat("page cursor ", QuoteForError(request.after),
                                          " is not one this node issued; start from the first page"));
  }
  const std::string& name = request.filter.name_contains;
  if (name.size() > kMaxDisputeNameFilterBytes) {
    return absl::InvalidArgumentError(Cat("name has ", name.size(), " bytes; give at most ",
                                          kMaxDisputeNameFilterBytes, " (part of a package name)"));
  }
  if (!request.filter.operator_name.empty()) {
    // Matched against the stored operator list, so only a name the policy could hold may be asked for.
    if (absl::Status s = consensus::ValidateOperatorName(request.filter.operator_name); !s.ok()) {
      return absl::InvalidArgumentError(Cat("operator: ", StdView(s.message())));
    }
  }
  return absl::OkStatus();
}

// The sides of the record, the signers matched with the stored attestations (of a path, or realisation
// attestations of a derivation output: Stored is StoredAttestation or StoredRealisation), and what differs.
template <typename Stored>
void AddSides(std::span<const Stored> held, DisputeDetail& detail) {
  std::map<std::pair<std::string, std::string>, const Stored*> by_side_and_key;
  for (const Stored& a : held) by_side_and_key[{a.attestation.claim.Fingerprint(), a.attestation.key_name()}] = &a;
  for (const consensus::DisputeSide& record_side : detail.record.sides) {
    DisputeDetail::Side side{.fingerprint = record_side.fingerprint,
                             .claim = std::nullopt,
                             .realisation = std::nullopt,
                             .names = SignersOf(record_side),
                             .signers = {}};
    if (detail.record.subject.is_realisation()) {
      absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(record_side.fingerprint);
      if (claim.ok()) side.realisation = *std::move(claim);
    } else {
      absl::StatusOr<consensus::PathInfo> claim = consensus::PathInfo::ParseFingerprint(record_side.fingerprint);
      if (claim.ok()) side.claim = *std::move(claim);
    }
    for (const consensus::DisputeSide::Entry& entry : record_side.entries) {
      DisputeDetail::Signer signer{.operator_name = entry.operator_name,
                                   .builder = entry.signature.key_name,
                                   .signature = entry.signature.ToString(),
                                   .stored = std::nullopt,
                                   .stored_realisation = std::nullopt};
      auto it = by_side_and_key.find({record_side.fingerprint, entry.signature.key_name});
      if (it != by_side_and_key.end()) {
        if constexpr (std::is_same_v<Stored, storage::StoredRealisation>) {
          signer.stored_realisation = *it->second;
        } else {
          signer.stored = *it->second;
        }
      }
      side.signers.push_back(std::move(signer));
    }
    detail.sides.push_back(std::move(side));
  }

  const size_t n = detail.sides.size();
  for (size_t s = 0; s < n; ++s) {
    const auto& claim = detail.sides[s].claim;
    if (!claim) continue;
    for (const consensus::StorePath& reference : claim->references) {
      auto [it, inserted] = detail.references.try_emplace(reference.full(), std::vector<bool>(n, false));
      it->second[s] = true;
    }
    const auto& first = detail.sides[0].claim;
    if (first && s > 0) {
      detail.nar_hash_differs |= !(claim->nar_hash == first->nar_hash);
      detail.nar_size_differs |= claim->nar_size != first->nar_size;
    }
  }
}

}  // namespace

bool IsDisputeId(std::string_view text) {
  if (text.size() != 34 || text.substr(0, 2) != "d-") return false;
  return std::all_of(text.begin() + 2, text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool IsDisputeCursor(std::string_view text) {
  return !text.empty() && (text[0] == '0' || text[0] == '1') && IsDisputeId(text.substr(1));
}

SideSigners SignersOf(const consensus::DisputeSide& side) {
  SideSigners names;
  for (const consensus::DisputeSide::Entry& entry : side.entries) {
    names.operators.push_back(entry.operator_name);
    names.builders.push_back(entry.signature.key_name);
  }
  for (auto* list : {&names.operators, &names.builders}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  return names;
}

absl::StatusOr<consensus::DisputeRecord> RecordOf(const storage::StoredDispute& stored) {
  absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(stored.signed_record);
  if (!note.ok()) {
    return absl::DataLossError(Cat("stored dispute record ", stored.id,
                                   " is not a signed note: ", StdView(note.status().message())));
  }
  absl::StatusOr<consensus::DisputeRecord> record = consensus::DisputeRecord::FromNoteText(note->text);
  if (!record.ok()) {
    return absl::DataLossError(Cat("stored dispute record ", stored.id,
                                   " does not parse: ", StdView(record.status().message())));
  }
  return record;
}

DisputeView::DisputeView(const PolicyBook& policy, storage::Ledger* store,
                         const ResolutionBook* resolutions)
    : policy_(policy), store_(store), resolutions_(resolutions) {}

absl::StatusOr<DisputePage> DisputeView::List(const DisputePageRequest& request) const {
  if (absl::Status s = ValidatePageRequest(request); !s.ok()) return s;
  storage::DisputeQuery query;
  query.after_key = request.after;
  query.limit = request.size + 1;  // one more tells whether another page follows
  query.state = request.filter.state;
  query.name_contains = request.filter.name_contains;
  query.operator_name = request.filter.operator_name;
  auto total = store_->CountDisputes(query);
  if (!total.ok()) return StorageFailure("counting disputes", total.status());
  auto disputes = store_->ListDisputes(query);
  if (!disputes.ok()) return StorageFailure("listing disputes", disputes.status());

  DisputePage page;
  page.total = *total;
  const size_t shown = std::min(disputes->size(), static_cast<size_t>(request.size));
  if (disputes->size() > shown) page.next_cursor = storage::DisputeSortKey((*disputes)[shown - 1]);
  disputes->erase(disputes->begin() + static_cast<std::ptrdiff_t>(shown), disputes->end());
  page.disputes = *std::move(disputes);
  return page;
}

absl::Status DisputeView::AddEvidence(DisputeDetail& detail) const {
  // The evidence as recorded: builders excluded since still count here.
  const consensus::DisputeSubject& subject = detail.record.subject;
  if (subject.is_realisation()) {
    const consensus::RealisationKey& key = subject.realisation();
    auto held = store_->RealisationsFor(std::span<const consensus::RealisationKey>(&key, 1));
    if (!held.ok()) return StorageFailure(Cat("reading the realisations of ", key.ToString()), held.status());
    std::vector<storage::StoredRealisation> of_key;
    if (held->size() == 1) of_key = std::move(held->front());
    AddSides(std::span<const storage::StoredRealisation>(of_key), detail);
    const RealisationTally tally = TallyStoredRealisations(*policy_.current(), of_key, consensus::TallyOptions{});
    for (const consensus::FingerprintTally& side : tally.result.fingerprints) {
      for (size_t index : side.attestations) detail.counted_realisations.push_back(of_key[tally.stored_index[index]]);
    }
    return absl::OkStatus();
  }
  const consensus::StorePath& path = subject.path();
  auto attestations = store_->AttestationsFor(std::span<const consensus::StorePath>(&path, 1));
  if (!attestations.ok()) {
    return StorageFailure(Cat("reading the attestations of ", path.full()), attestations.status());
  }
  std::vector<storage::StoredAttestation> of_path;
  if (attestations->size() == 1) of_path = std::move(attestations->front());
  AddSides(std::span<const storage::StoredAttestation>(of_path), detail);
  const PathTally tally = TallyStored(*policy_.current(), of_path, consensus::TallyOptions{});
  for (size_t index : tally.CountedStoredIndices()) detail.counted.push_back(of_path[index]);
  return absl::OkStatus();
}

absl::StatusOr<DisputeDetail> DisputeView::Get(std::string_view wanted) const {
  if (!IsDisputeId(wanted)) {
    return absl::InvalidArgumentError(
        Cat("dispute id ", QuoteForError(wanted), " is malformed: a dispute id is d- and 32 hex characters"));
  }
  const std::string id(wanted);
  auto found = store_->GetDispute(id);
  if (!found.ok()) return StorageFailure(Cat("reading dispute ", id), found.status());
  if (!found->has_value()) return absl::NotFoundError(Cat("no dispute ", id, " on this node"));
  absl::StatusOr<consensus::DisputeRecord> record = RecordOf(**found);
  if (!record.ok()) return record.status();
  DisputeDetail detail{.stored = **std::move(found), .record = *std::move(record)};

  if (absl::Status status = AddEvidence(detail); !status.ok()) return status;

  auto resolutions = store_->ResolutionsFor(id);
  if (!resolutions.ok()) return StorageFailure(Cat("reading the resolutions of ", id), resolutions.status());
  for (storage::StoredResolution& stored : *resolutions) {
    absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(stored.signed_note);
    absl::StatusOr<consensus::Resolution> statement =
        note.ok() ? consensus::Resolution::FromNoteText(note->text) : absl::StatusOr<consensus::Resolution>(note.status());
    detail.resolutions.push_back({.stored = std::move(stored), .statement = std::move(statement)});
  }
  return detail;
}

}  // namespace attest::server
