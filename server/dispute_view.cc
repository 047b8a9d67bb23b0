#include "server/dispute_view.h"

#include <algorithm>
#include <string>
#include <vector>

#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "proto/convert.h"
#include "server/grpc_status.h"
#include "server/path_tally.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;

// "d-" followed by 32 lower-case hex characters (consensus::DisputeId).
bool IsDisputeId(std::string_view text) {
  if (text.size() != 34 || text.substr(0, 2) != "d-") return false;
  return std::all_of(text.begin() + 2, text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

absl::StatusOr<v1::Dispute> ToProto(const storage::StoredDispute& stored) {
  v1::Dispute dispute;
  dispute.set_id(stored.id);
  dispute.set_store_path(stored.path.full());
  dispute.set_state(std::string(consensus::DisputeStateName(stored.state)));
  for (const std::string& name : stored.operators) dispute.add_operators(name);
  dispute.set_opened_unix(stored.opened_unix);
  dispute.set_updated_unix(stored.updated_unix);
  dispute.set_signed_record(stored.signed_record);
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
  for (const consensus::DisputeSide& side : record->sides) {
    std::vector<std::string> operators;
    std::vector<std::string> builders;
    for (const consensus::DisputeSide::Entry& entry : side.entries) {
      operators.push_back(entry.operator_name);
      builders.push_back(entry.signature.key_name);
    }
    for (auto* names : {&operators, &builders}) {
      std::sort(names->begin(), names->end());
      names->erase(std::unique(names->begin(), names->end()), names->end());
    }
    v1::FingerprintTally* out = dispute.add_fingerprints();
    out->set_fingerprint(side.fingerprint);
    for (const std::string& op : operators) out->add_operators(op);
    for (const std::string& builder : builders) out->add_builders(builder);
  }
  return dispute;
}

}  // namespace

DisputeView::DisputeView(const consensus::Policy& policy, storage::Ledger* store,
                         const ResolutionBook* resolutions)
    : policy_(policy), store_(store), resolutions_(resolutions) {}

absl::StatusOr<v1::ListDisputesResponse> DisputeView::List(const v1::ListDisputesRequest& request) const {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(Cat("page_size ", request.page_size(), " is negative; use 0 for the default (",
                                          kDefaultDisputePageSize, ") or up to ", kMaxDisputePageSize));
  }
  const std::string& token = request.page_token();
  if (!token.empty() && !((token[0] == '0' || token[0] == '1') && IsDisputeId(std::string_view(token).substr(1)))) {
    return absl::InvalidArgumentError(Cat("page_token ", QuoteForError(request.page_token()),
                                          " is not one this node issued; pass next_page_token from the previous "
                                          "answer, or \"\" for the first page"));
  }
  const int page_size = request.page_size() == 0 ? kDefaultDisputePageSize
                                                 : std::min(request.page_size(), kMaxDisputePageSize);
  storage::DisputeQuery query;
  query.after_key = token;
  query.limit = page_size + 1;  // one more tells whether another page follows
  if (!request.state().empty()) {
    absl::StatusOr<consensus::DisputeState> state = consensus::ParseDisputeState(request.state());
    if (!state.ok()) return absl::InvalidArgumentError(Cat("state: ", StdView(state.status().message())));
    query.state = *state;
  }
  query.name_contains = request.name();
  if (!request.operator_().empty()) {
    // Matched against the stored operator list, so only a name the policy could hold may be asked for.
    if (absl::Status s = consensus::ValidateOperatorName(request.operator_()); !s.ok()) {
      return absl::InvalidArgumentError(Cat("operator: ", StdView(s.message())));
    }
  }
  query.operator_name = request.operator_();
  auto total = store_->CountDisputes(query);
  if (!total.ok()) return StorageFailure("counting disputes", total.status());
  auto disputes = store_->ListDisputes(query);
  if (!disputes.ok()) return StorageFailure("listing disputes", disputes.status());

  v1::ListDisputesResponse response;
  const size_t shown = std::min(disputes->size(), static_cast<size_t>(page_size));
  for (size_t i = 0; i < shown; ++i) {
    absl::StatusOr<v1::Dispute> dispute = ToProto((*disputes)[i]);
    if (!dispute.ok()) return dispute.status();
    *response.add_disputes() = *std::move(dispute);
  }
  if (disputes->size() > shown) response.set_next_page_token(storage::DisputeSortKey((*disputes)[shown - 1]));
  response.set_total(*total);
  return response;
}

absl::StatusOr<v1::Dispute> DisputeView::Get(const v1::GetDisputeRequest& request) const {
  const std::string& wanted = request.id();
  if (wanted.empty()) {
    return absl::InvalidArgumentError("id is empty: give a dispute id (d-...) or the disputed store path");
  }
  std::string id;
  if (wanted.front() == '/') {
    absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(wanted);
    if (!path.ok()) return absl::InvalidArgumentError(Cat("id: ", StdView(path.status().message())));
    id = consensus::DisputeId(*path);
  } else if (IsDisputeId(wanted)) {
    id = wanted;
  } else {
    return absl::InvalidArgumentError(Cat("id ", QuoteForError(wanted),
                                          " is neither a dispute id (d- and 32 hex characters) nor a store path"));
  }

  auto stored = store_->GetDispute(id);
  if (!stored.ok()) return StorageFailure(Cat("reading dispute ", id), stored.status());
  if (!stored->has_value()) {
    return absl::NotFoundError(
        Cat("no dispute ", id, id == wanted ? std::string() : Cat(" (for ", wanted, ")"), " on this node"));
  }
  absl::StatusOr<v1::Dispute> dispute = ToProto(**stored);
  if (!dispute.ok()) return dispute.status();
  auto resolutions = store_->ResolutionsFor(id);
  if (!resolutions.ok()) return StorageFailure(Cat("reading the resolutions of ", id), resolutions.status());
  for (const storage::StoredResolution& stored_resolution : *resolutions) {
    v1::Resolution* out = dispute->add_resolutions();
    out->set_signed_statement(stored_resolution.signed_note);
    out->set_outcome(std::string(consensus::OutcomeName(stored_resolution.outcome)));
    out->set_maintainer(stored_resolution.maintainer);
    out->set_time_unix(stored_resolution.time_unix);
    out->set_received_unix(stored_resolution.received_unix);
    out->set_origin(stored_resolution.origin);
    absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(stored_resolution.signed_note);
    absl::StatusOr<consensus::Resolution> statement =
        note.ok() ? consensus::Resolution::FromNoteText(note->text) : absl::StatusOr<consensus::Resolution>(note.status());
    if (!statement.ok()) {
      return absl::DataLossError(Cat("stored resolution of ", id, " does not parse: ",
                                     StdView(statement.status().message())));
    }
    out->set_note(statement->note);
    for (const std::string& builder : statement->builders) out->add_builders(builder);
    for (const std::string& fingerprint : statement->fingerprints) out->add_fingerprints(fingerprint);
  }

  const consensus::StorePath& path = (*stored)->path;
  auto attestations = store_->AttestationsFor(std::span<const consensus::StorePath>(&path, 1));
  if (!attestations.ok()) {
    return StorageFailure(Cat("reading the attestations of ", path.full()), attestations.status());
  }
  if (attestations->size() == 1) {
    const std::vector<storage::StoredAttestation>& of_path = attestations->front();
    // The evidence as recorded: builders excluded since still show here.
    const PathTally tally = TallyStored(policy_, of_path, consensus::TallyOptions{});
    for (size_t index : tally.CountedStoredIndices()) {
      v1::Attestation* out = dispute->add_attestations();
      *out = proto::ToProto(of_path[index].attestation);
      out->set_received_unix(of_path[index].received_unix);
    }
  }
  return dispute;
}

}  // namespace attest::server
