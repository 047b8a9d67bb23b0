// The attest.v1 edge of DisputeView: a Disputes request converted to the read model's domain query, its
// answer converted back to wire messages. The Disputes gRPC service calls these; nothing else in the
// node reads disputes as wire messages.
//
// Thread-safe (they only read through the view).
#ifndef ATTEST_SERVER_DISPUTE_MESSAGES_H_
#define ATTEST_SERVER_DISPUTE_MESSAGES_H_

#include "absl/status/statusor.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/dispute_view.h"

namespace attest::server {

// ListDisputes: page_size 0 means kDefaultDisputePageSize; larger than kMaxDisputePageSize is served as
// that many. Each dispute with its fingerprints, without attestations or resolutions.
//   INVALID_ARGUMENT  negative page_size, an unknown state, a malformed operator, a name longer than
//                     kMaxDisputeNameFilterBytes, or a page_token this node did not issue
//   DATA_LOSS         a stored record does not parse
absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const DisputeView& view, const v1::ListDisputesRequest& request);

// GetDispute: by dispute id ("d-<32 hex>") or by store path; with the attestations of the path that
// counted when the record was made (also of builders excluded since) and the resolution history.
//   INVALID_ARGUMENT  id is empty, or neither a dispute id nor a store path
//   NOT_FOUND         no dispute with that id
//   DATA_LOSS         the stored record or a stored statement does not parse
absl::StatusOr<v1::Dispute> GetDispute(const DisputeView& view, const v1::GetDisputeRequest& request);

}  // namespace attest::server

#endif  // ATTEST_SERVER_DISPUTE_MESSAGES_H_
