#include "server/dispute_messages.h"

#include <algorithm>
#include <string>
#include <utility>

#include "consensus/dispute.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;

v1::Dispute ToProto(const storage::StoredDispute& stored, const consensus::DisputeRecord& record) {
  v1::Dispute dispute;
  dispute.set_id(stored.id);
  if (stored.subject.is_realisation()) {
    dispute.set_realisation_key(stored.subject.realisation().ToString());
  } else {
    dispute.set_store_path(stored.subject.path().full());
  }
  dispute.set_state(std::string(consensus::DisputeStateName(stored.state)));
  for (const std::string& name : stored.operators) dispute.add_operators(name);
  dispute.set_opened_unix(stored.opened_unix);
  dispute.set_updated_unix(stored.updated_unix);
  dispute.set_signed_record(stored.signed_record);
  for (const consensus::DisputeSide& side : record.sides) {
    SideSigners names = SignersOf(side);
    v1::FingerprintTally* out = dispute.add_fingerprints();
    out->set_fingerprint(side.fingerprint);
    for (std::string& op : names.operators) out->add_operators(std::move(op));
    for (std::string& builder : names.builders) out->add_builders(std::move(builder));
  }
  return dispute;
}

}  // namespace

absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const DisputeView& view, const v1::ListDisputesRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(Cat("page_size ", request.page_size(), " is negative; use 0 for the default (",
                                          kDefaultDisputePageSize, ") or up to ", kMaxDisputePageSize));
  }
  if (!request.page_token().empty() && !IsDisputeCursor(request.page_token())) {
    return absl::InvalidArgumentError(Cat("page_token ", QuoteForError(request.page_token()),
                                          " is not one this node issued; pass next_page_token from the previous "
                                          "answer, or \"\" for the first page"));
  }
  DisputePageRequest page_request{
      .filter = {.state = std::nullopt, .name_contains = request.name(), .operator_name = request.operator_()},
      .after = request.page_token(),
      .size = request.page_size() == 0 ? kDefaultDisputePageSize : std::min(request.page_size(), kMaxDisputePageSize)};
  if (!request.state().empty()) {
    absl::StatusOr<consensus::DisputeState> state = consensus::ParseDisputeState(request.state());
    if (!state.ok()) return absl::InvalidArgumentError(Cat("state: ", StdView(state.status().message())));
    page_request.filter.state = *state;
  }
  absl::StatusOr<DisputePage> page = view.List(page_request);
  if (!page.ok()) return page.status();

  v1::ListDisputesResponse response;
  for (const storage::StoredDispute& stored : page->disputes) {
    absl::StatusOr<consensus::DisputeRecord> record = RecordOf(stored);
    if (!record.ok()) return record.status();
    *response.add_disputes() = ToProto(stored, *record);
  }
  response.set_next_page_token(page->next_cursor);
  response.set_total(page->total);
  return response;
}

absl::StatusOr<v1::Dispute> GetDispute(const DisputeView& view, const v1::GetDisputeRequest& request) {
  const std::string& wanted = request.id();
  if (wanted.empty()) {
    return absl::InvalidArgumentError(
        "id is empty: give a dispute id (d-...), the disputed store path or the disputed realisation key");
  }
  std::string id;
  if (IsDisputeId(wanted)) {
    id = wanted;
  } else if (wanted.front() == '/' || consensus::RealisationKey::LooksLikeKey(wanted)) {
    absl::StatusOr<consensus::DisputeSubject> subject = consensus::DisputeSubject::Parse(wanted);
    if (!subject.ok()) return absl::InvalidArgumentError(Cat("id: ", StdView(subject.status().message())));
    id = consensus::DisputeId(*subject);
  } else {
    return absl::InvalidArgumentError(
        Cat("id ", QuoteForError(wanted),
            " is neither a dispute id (d- and 32 hex characters), a store path nor a realisation key"));
  }

  absl::StatusOr<DisputeDetail> detail = view.Get(id);
  if (!detail.ok()) {
    if (absl::IsNotFound(detail.status()) && id != wanted) {
      return absl::NotFoundError(Cat("no dispute ", id, " (for ", wanted, ") on this node"));
    }
    return detail.status();
  }
  v1::Dispute dispute = ToProto(detail->stored, detail->record);
  for (const DisputeDetail::Statement& held : detail->resolutions) {
    if (!held.statement.ok()) {
      return absl::DataLossError(Cat("stored resolution of ", id, " does not parse: ",
                                     StdView(held.statement.status().message())));
    }
    v1::Resolution* out = dispute.add_resolutions();
    out->set_signed_statement(held.stored.signed_note);
    out->set_outcome(std::string(consensus::OutcomeName(held.stored.outcome)));
    out->set_maintainer(held.stored.maintainer);
    out->set_time_unix(held.stored.time_unix);
    out->set_received_unix(held.stored.received_unix);
    out->set_origin(held.stored.origin);
    out->set_note(held.statement->note);
    for (const std::string& builder : held.statement->builders) out->add_builders(builder);
    for (const std::string& fingerprint : held.statement->fingerprints) out->add_fingerprints(fingerprint);
  }
  for (const storage::StoredAttestation& counted : detail->counted) {
    v1::Attestation* out = dispute.add_attestations();
    *out = proto::ToProto(counted.attestation);
    out->set_received_unix(counted.received_unix);
  }
  for (const storage::StoredRealisation& counted : detail->counted_realisations) {
    v1::RealisationAttestation* out = dispute.add_realisations();
    *out = proto::ToProto(counted.attestation);
    out->set_received_unix(counted.received_unix);
  }
  return dispute;
}

}  // namespace attest::server
