// LogProofs: the read side of the node's transparency log for gRPC (attest.v1.LogService): the
// checkpoint to serve, and inclusion and consistency proofs computed from the stored tiles
// (consensus::InclusionProof / ConsistencyProof over a TileHashReader on the store). Proofs are given
// only for trees up to the latest signed checkpoint's size, so every proof can be checked against a
// signed root.
//
// Errors (messages written for clients; storage failures keep their code, their detail goes to the
// node's log):
//   NOT_FOUND         GetCheckpoint before the node signed its first checkpoint
//   INVALID_ARGUMENT  inclusion: tree_size 0 or index >= tree_size; consistency: old_size > new_size
//   OUT_OF_RANGE      a tree size beyond the latest signed checkpoint's size (retry after the next one)
//
// Thread-safe. The store and the publisher are borrowed and must outlive it.
#ifndef ATTEST_SERVER_LOG_PROOFS_H_
#define ATTEST_SERVER_LOG_PROOFS_H_

#include "absl/status/statusor.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/log_publisher.h"
#include "storage/transparency_log_store.h"

namespace attest::server {

class LogProofs final {
 public:
  LogProofs(storage::TransparencyLogStore* store, LogPublisher* publisher);

  // The checkpoint LogPublisher::ForClient gives, with the publisher's problem when it stopped signing.
  absl::StatusOr<v1::GetCheckpointResponse> GetCheckpoint() const;
  absl::StatusOr<v1::GetInclusionProofResponse> GetInclusionProof(const v1::GetInclusionProofRequest& request) const;
  absl::StatusOr<v1::GetConsistencyProofResponse> GetConsistencyProof(
      const v1::GetConsistencyProofRequest& request) const;

 private:
  storage::TransparencyLogStore* const store_;
  LogPublisher* const publisher_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_LOG_PROOFS_H_
