// RebuildHandler: the Rebuilds service's work, proto in and out (server/grpc_services.h adapts it):
// the queue (server/rebuild_queue.h), derivations (server/derivation_intake.h) and rebuilders' signed
// statements (consensus/rebuild_statement.h, server/rebuild_book.h).
//
// A statement is accepted only when its key is a builder of the policy (PERMISSION_DENIED otherwise:
// a rebuilder of an operator not in the policy would not count), its signature verifies
// (UNAUTHENTICATED) and its time is within kStatementClockSkew of the node's clock
// (FAILED_PRECONDITION: a replayed or badly timed statement).
//
// Thread-safe; everything is borrowed.
#ifndef ATTEST_SERVER_REBUILD_HANDLER_H_
#define ATTEST_SERVER_REBUILD_HANDLER_H_

#include <functional>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/policy.h"
#include "server/policy_book.h"
#include "proto/attest/v1/attest.pb.h"
#include "server/derivation_intake.h"
#include "server/rebuild_book.h"
#include "server/rebuild_queue.h"

namespace attest::server {

inline constexpr absl::Duration kStatementClockSkew = absl::Minutes(5);

// The proto form of a queue entry (the page's JSON twin uses it too).
v1::WantedPath ToProto(const WantedItem& item);

class RebuildHandler final {
 public:
  using Clock = std::function<absl::Time()>;

  RebuildHandler(const PolicyBook& policy, const RebuildQueue* queue, DerivationIntake* intake,
                 RebuildBook* book, Clock clock);

  absl::StatusOr<v1::WantedResponse> Wanted(const v1::WantedRequest& request) const;
  absl::StatusOr<v1::SubmitDerivationsResponse> SubmitDerivations(const v1::SubmitDerivationsRequest& request);
  absl::StatusOr<v1::MissingDerivationsResponse> MissingDerivations(const v1::MissingDerivationsRequest& request);
  absl::StatusOr<v1::GetDerivationsResponse> GetDerivations(const v1::GetDerivationsRequest& request);
  // Kind "lease" only. FAILED_PRECONDITION: the path is CONFIRMED, no derivation of it is held, or
  // another builder of the operator holds the lease.
  absl::StatusOr<v1::AcquireLeaseResponse> AcquireLease(const v1::RebuildStatement& request);
  // Kinds "release", "built", "failed".
  absl::StatusOr<v1::ReportRebuildResponse> ReportRebuild(const v1::RebuildStatement& request);

 private:
  struct Verified;
  absl::StatusOr<Verified> Verify(const v1::RebuildStatement& request) const;

  const PolicyBook& policy_;
  const RebuildQueue* const queue_;
  DerivationIntake* const intake_;
  RebuildBook* const book_;
  const Clock clock_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_REBUILD_HANDLER_H_
