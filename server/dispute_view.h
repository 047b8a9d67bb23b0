// DisputeView: what the node shows about disputes: pages of open disputes and one dispute with its
// evidence. Reads the store; the signed record is passed through byte for byte (clients verify it with
// the node's public key), and the summary fields are parsed from it.
//
// Thread-safe; policy and store are borrowed and must outlive it.
#ifndef ATTEST_SERVER_DISPUTE_VIEW_H_
#define ATTEST_SERVER_DISPUTE_VIEW_H_

#include "absl/status/statusor.h"
#include "consensus/policy.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/resolution_book.h"
#include "storage/ledger.h"

namespace attest::server {

inline constexpr int kDefaultDisputePageSize = 100;
inline constexpr int kMaxDisputePageSize = 1000;

class DisputeView final {
 public:
  // `resolutions` (null: nobody is excluded) is borrowed.
  DisputeView(const consensus::Policy& policy, storage::Ledger* store,
              const ResolutionBook* resolutions = nullptr);

  // Disputes open first, then by id, filtered by state, name part and operator. page_size 0 means 100;
  // larger than 1000 is served as 1000.
  //   INVALID_ARGUMENT  negative page_size, an unknown state, an operator that is not an operator name
  //                     (consensus::ValidateOperatorName), or a page_token this node did not issue
  absl::StatusOr<v1::ListDisputesResponse> List(const v1::ListDisputesRequest& request) const;

  // By dispute id ("d-<32 hex>") or by store path; with the attestations of the path that counted
  // when the record was made (also of builders excluded since) and the resolution history.
  //   INVALID_ARGUMENT  id is empty, or neither a dispute id nor a store path
  //   NOT_FOUND         no dispute with that id
  //   DATA_LOSS         the stored record does not parse
  absl::StatusOr<v1::Dispute> Get(const v1::GetDisputeRequest& request) const;

 private:
  const consensus::Policy& policy_;
  storage::Ledger* const store_;
  const ResolutionBook* const resolutions_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_DISPUTE_VIEW_H_
