// gRPC adapters of attest.v1 (callback API). Each method converts, hands the work to a handler
// (Ingestor, StatusQuery, DisputeView, LogProofs) on a worker pool, and finishes the reactor from there
// with the status mapped by ToGrpcStatus. Nothing here blocks a gRPC thread (LogService.GetCheckpoint
// answers from memory at once). Submissions and reads use separate pools, so status queries are not
// stuck behind batches waiting for verification or the writer.
//
// Thread-safe. The handlers and the pool are borrowed and must outlive the server that serves these
// services (Node shuts the server down first).
#ifndef ATTEST_SERVER_GRPC_SERVICES_H_
#define ATTEST_SERVER_GRPC_SERVICES_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <string_view>

#include "consensus/keys.h"
#include "consensus/policy.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/dispute_view.h"
#include "server/ingest.h"
#include "server/metrics.h"
#include "server/policy_book.h"
#include "server/replication.h"
#include "server/log_proofs.h"
#include "server/rebuild_handler.h"
#include "server/nar_source_status.h"
#include "server/closure_query.h"
#include "server/status_query.h"
#include "server/worker_pool.h"

namespace attest::server {

// Told of every status answer and the address of the client that asked (server/demand_book.h counts
// the paths it could not confirm); runs on the read pool after the answer is made.
using StatusAnswerHook = std::function<void(const v1::StatusResponse& answer, std::string_view client)>;

// The client address of a gRPC peer ("ipv4:127.0.0.1:5000" -> "127.0.0.1", "ipv6:[::1]:5000" -> "::1");
// other forms are returned whole.
std::string ClientAddressOfPeer(std::string_view peer);

class AttestationsService final : public v1::Attestations::CallbackService {
 public:
  AttestationsService(Ingestor* ingestor, const StatusQuery* status, WorkerPool* submit_pool,
                      WorkerPool* read_pool, StatusAnswerHook on_status = nullptr);

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* context, const v1::SubmitRequest* request,
                                   v1::SubmitResponse* response) override;
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* context, const v1::StatusRequest* request,
                                   v1::StatusResponse* response) override;
  // The closure walk (server/closure_query.h), at most status max_paths members, on the read pool.
  grpc::ServerUnaryReactor* Closure(grpc::CallbackServerContext* context, const v1::ClosureRequest* request,
                                    v1::ClosureResponse* response) override;

 private:
  Ingestor* const ingestor_;
  const StatusQuery* const status_;
  const ClosureQuery closure_;
  WorkerPool* const submit_pool_;
  WorkerPool* const read_pool_;
  const StatusAnswerHook on_status_;
};

class DisputesService final : public v1::Disputes::CallbackService {
 public:
  DisputesService(const DisputeView* disputes, Ingestor* ingestor, WorkerPool* read_pool, WorkerPool* write_pool);

  grpc::ServerUnaryReactor* ListDisputes(grpc::CallbackServerContext* context,
                                         const v1::ListDisputesRequest* request,
                                         v1::ListDisputesResponse* response) override;
  grpc::ServerUnaryReactor* GetDispute(grpc::CallbackServerContext* context, const v1::GetDisputeRequest* request,
                                       v1::Dispute* response) override;
  grpc::ServerUnaryReactor* ResolveDispute(grpc::CallbackServerContext* context,
                                           const v1::ResolveDisputeRequest* request,
                                           v1::ResolveDisputeResponse* response) override;

 private:
  const DisputeView* const disputes_;
  Ingestor* const ingestor_;
  WorkerPool* const pool_;
  WorkerPool* const write_pool_;
};

// The policy the node decides under now and the chain that led to it (server/policy_book.h).
// GetPolicy answers from the book's current policy; SubmitPolicy adopts a successor (on the write pool:
// it verifies signatures and writes the store) and logs it with what changed; GetPolicyChain hands the
// links since a policy to a peer that is behind.
class PolicyService final : public v1::Policy::CallbackService {
 public:
  // Borrows everything. `clock` gives the received time of a submitted update. `refused` (may be null)
  // counts the submitted updates SubmitPolicy refuses (attest_policy_updates_total{outcome="refused"}).
  PolicyService(PolicyBook* policy, const consensus::PublicKey& node_key, WorkerPool* read_pool,
                WorkerPool* write_pool, Clock clock, Counter* refused = nullptr);

  grpc::ServerUnaryReactor* GetPolicy(grpc::CallbackServerContext* context, const v1::GetPolicyRequest* request,
                                      v1::PolicyInfo* response) override;
  grpc::ServerUnaryReactor* SubmitPolicy(grpc::CallbackServerContext* context, const v1::PolicyLink* request,
                                         v1::SubmitPolicyResponse* response) override;
  grpc::ServerUnaryReactor* GetPolicyChain(grpc::CallbackServerContext* context,
                                           const v1::GetPolicyChainRequest* request,
                                           v1::GetPolicyChainResponse* response) override;

 private:
  PolicyBook* const policy_;
  const consensus::PublicKey node_key_;
  WorkerPool* const read_pool_;
  WorkerPool* const write_pool_;
  const Clock clock_;
  Counter* const refused_;
};

// The handlers behind PolicyService, testable without a server.
v1::PolicyInfo PolicyInfoOf(const PolicyBook& book, const consensus::PublicKey& node_key);
//   INVALID_ARGUMENT  an approval that does not parse ("approvals[<i>]: ..."), or PolicyBook::Adopt's
//   otherwise PolicyBook::Adopt's errors (ALREADY_EXISTS, FAILED_PRECONDITION, PERMISSION_DENIED, the store's)
absl::StatusOr<v1::SubmitPolicyResponse> SubmitPolicyLink(PolicyBook& book, const v1::PolicyLink& request,
                                                          absl::Time now);
//   NOT_FOUND  `since` is not in the node's chain
absl::StatusOr<v1::GetPolicyChainResponse> PolicyChainSince(const PolicyBook& book,
                                                            const v1::GetPolicyChainRequest& request);

// The node's transparency log (server/log_proofs.h): the checkpoint from memory, proofs on the read pool.
class LogService final : public v1::LogService::CallbackService {
 public:
  LogService(const LogProofs* proofs, WorkerPool* read_pool);

  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const v1::GetCheckpointRequest* request,
                                          v1::GetCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* context,
                                              const v1::GetInclusionProofRequest* request,
                                              v1::GetInclusionProofResponse* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* context,
                                                const v1::GetConsistencyProofRequest* request,
                                                v1::GetConsistencyProofResponse* response) override;

 private:
  const LogProofs* const proofs_;
  WorkerPool* const pool_;
};

// How the node follows its peers (server/replication.h) and what it saw of the sources of its
// gateway's NAR bytes (`sources`, server/nar_source_status.h); answered on the read pool.
class FederationService final : public v1::Federation::CallbackService {
 public:
  // `sources` may be empty (no gateway): ListSources then answers an empty list.
  FederationService(Replicator* replicator, NarSourceStatusFn sources, WorkerPool* read_pool);

  grpc::ServerUnaryReactor* GetFederationStatus(grpc::CallbackServerContext* context,
                                                const v1::GetFederationStatusRequest* request,
                                                v1::GetFederationStatusResponse* response) override;
  grpc::ServerUnaryReactor* ListSources(grpc::CallbackServerContext* context, const v1::ListSourcesRequest* request,
                                        v1::ListSourcesResponse* response) override;

 private:
  Replicator* const replicator_;
  const NarSourceStatusFn sources_;
  WorkerPool* const pool_;
};

// The rebuild queue, derivations and rebuilders' statements (server/rebuild_handler.h). Reads on the
// read pool; derivation uploads and statements on the submit pool.
class RebuildsService final : public v1::Rebuilds::CallbackService {
 public:
  RebuildsService(RebuildHandler* handler, WorkerPool* read_pool, WorkerPool* write_pool);

  grpc::ServerUnaryReactor* Wanted(grpc::CallbackServerContext* context, const v1::WantedRequest* request,
                                   v1::WantedResponse* response) override;
  grpc::ServerUnaryReactor* SubmitDerivations(grpc::CallbackServerContext* context,
                                              const v1::SubmitDerivationsRequest* request,
                                              v1::SubmitDerivationsResponse* response) override;
  grpc::ServerUnaryReactor* MissingDerivations(grpc::CallbackServerContext* context,
                                               const v1::MissingDerivationsRequest* request,
                                               v1::MissingDerivationsResponse* response) override;
  grpc::ServerUnaryReactor* GetDerivations(grpc::CallbackServerContext* context,
                                           const v1::GetDerivationsRequest* request,
                                           v1::GetDerivationsResponse* response) override;
  grpc::ServerUnaryReactor* AcquireLease(grpc::CallbackServerContext* context, const v1::RebuildStatement* request,
                                         v1::AcquireLeaseResponse* response) override;
  grpc::ServerUnaryReactor* ReportRebuild(grpc::CallbackServerContext* context, const v1::RebuildStatement* request,
                                          v1::ReportRebuildResponse* response) override;

 private:
  RebuildHandler* const handler_;
  WorkerPool* const read_pool_;
  WorkerPool* const write_pool_;
};

// Maps an IngestOutcome to the wire outcome.
v1::SubmitResult::Outcome ToProto(IngestOutcome outcome);
// One source's status as ListSources sends it.
v1::NarSource ToProto(const NarSourceStatus& status);

}  // namespace attest::server

#endif  // ATTEST_SERVER_GRPC_SERVICES_H_
