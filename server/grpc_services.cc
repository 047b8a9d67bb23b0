#include "server/grpc_services.h"

#include <utility>
#include <vector>

#include "absl/strings/strip.h"
#include "consensus/text.h"
#include "server/dispute_messages.h"
#include "server/grpc_status.h"

namespace attest::server {
namespace {

// Runs `work` on the pool and finishes the call with its status. A call whose client already gave up
// is not worked on (submissions are idempotent, so the client may simply retry).
template <typename Work>
grpc::ServerUnaryReactor* OnPool(grpc::CallbackServerContext* context, WorkerPool* pool, Work work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  pool->Schedule([context, reactor, work = std::move(work)]() mutable {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled before it was served"));
      return;
    }
    reactor->Finish(ToGrpcStatus(work()));
  });
  return reactor;
}

}  // namespace

v1::SubmitResult::Outcome ToProto(IngestOutcome outcome) {
  switch (outcome) {
    case IngestOutcome::kAccepted:
      return v1::SubmitResult::ACCEPTED;
    case IngestOutcome::kAlreadyPresent:
      return v1::SubmitResult::ALREADY_PRESENT;
    case IngestOutcome::kObserved:
      return v1::SubmitResult::OBSERVED;
    case IngestOutcome::kRejected:
      return v1::SubmitResult::REJECTED;
  }
  return v1::SubmitResult::OUTCOME_UNSPECIFIED;
}

v1::NarSource ToProto(const NarSourceStatus& status) {
  v1::NarSource out;
  out.set_url(status.spec.url);
  switch (status.spec.kind) {
    case NarSourceKind::kOperator:
      out.set_kind(v1::NarSource::OPERATOR);
      out.set_operator_name(status.spec.operator_name);
      break;
    case NarSourceKind::kMirror:
      out.set_kind(v1::NarSource::MIRROR);
      out.set_priority(status.spec.priority);
      break;
    case NarSourceKind::kUpstream:
      out.set_kind(v1::NarSource::UPSTREAM);
      break;
  }
  out.set_reachable(status.reachable);
  out.set_last_error(status.last_error);
  out.set_last_error_unix(status.last_error_unix);
  out.set_narinfos_found(status.narinfos_found);
  out.set_paths_served(status.paths_served);
  out.set_bytes_served(status.bytes_served);
  out.set_mismatches(status.mismatches);
  out.set_last_mismatch(status.last_mismatch);
  out.set_last_mismatch_unix(status.last_mismatch_unix);
  return out;
}

std::string ClientAddressOfPeer(std::string_view peer) {
  absl::string_view rest(peer.data(), peer.size());
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    const size_t colon = rest.rfind(':');
    return std::string(colon == absl::string_view::npos ? rest : rest.substr(0, colon));
  }
  if (absl::ConsumePrefix(&rest, "ipv6:")) {
    if (absl::ConsumePrefix(&rest, "[")) {
      const size_t close = rest.find(']');
      return std::string(close == absl::string_view::npos ? rest : rest.substr(0, close));
    }
    return std::string(rest);
  }
  return std::string(peer);
}

AttestationsService::AttestationsService(Ingestor* ingestor, const StatusQuery* status, WorkerPool* submit_pool,
                                         WorkerPool* read_pool, StatusAnswerHook on_status)
    : ingestor_(ingestor),
      status_(status),
      submit_pool_(submit_pool),
      read_pool_(read_pool),
      on_status_(std::move(on_status)) {}

grpc::ServerUnaryReactor* AttestationsService::Submit(grpc::CallbackServerContext* context,
                                                      const v1::SubmitRequest* request,
                                                      v1::SubmitResponse* response) {
  return OnPool(context, submit_pool_, [this, request, response]() -> absl::Status {
    auto results = ingestor_->Submit(request->attestations());
    if (!results.ok()) return results.status();
    response->mutable_results()->Reserve(static_cast<int>(results->size()));
    for (IngestResult& result : *results) {
      v1::SubmitResult* out = response->add_results();
      out->set_outcome(ToProto(result.outcome));
      if (!result.status.ok()) {
        // Per-item messages are written for clients and quote only what the client sent.
        out->set_code(static_cast<int>(result.status.code()));
        out->set_message(std::string(consensus::StdView(result.status.message())));
      }
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AttestationsService::Status(grpc::CallbackServerContext* context,
                                                      const v1::StatusRequest* request,
                                                      v1::StatusResponse* response) {
  return OnPool(context, read_pool_, [this, context, request, response]() -> absl::Status {
    auto answer = status_->Run(*request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    if (on_status_) on_status_(*response, ClientAddressOfPeer(context->peer()));
    return absl::OkStatus();
  });
}

DisputesService::DisputesService(const DisputeView* disputes, Ingestor* ingestor, WorkerPool* pool,
                                 WorkerPool* write_pool)
    : disputes_(disputes), ingestor_(ingestor), pool_(pool), write_pool_(write_pool) {}

grpc::ServerUnaryReactor* DisputesService::ListDisputes(grpc::CallbackServerContext* context,
                                                        const v1::ListDisputesRequest* request,
                                                        v1::ListDisputesResponse* response) {
  return OnPool(context, pool_, [this, request, response]() -> absl::Status {
    auto answer = server::ListDisputes(*disputes_, *request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DisputesService::GetDispute(grpc::CallbackServerContext* context,
                                                      const v1::GetDisputeRequest* request, v1::Dispute* response) {
  return OnPool(context, pool_, [this, request, response]() -> absl::Status {
    auto answer = server::GetDispute(*disputes_, *request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* DisputesService::ResolveDispute(grpc::CallbackServerContext* context,
                                                          const v1::ResolveDisputeRequest* request,
                                                          v1::ResolveDisputeResponse* response) {
  return OnPool(context, write_pool_, [this, request, response]() -> absl::Status {
    auto result = ingestor_->Resolve(request->signed_statement());
    if (!result.ok()) return result.status();
    v1::GetDisputeRequest get;
    get.set_id(result->statement.resolution.dispute_id);
    auto dispute = server::GetDispute(*disputes_, get);
    if (!dispute.ok()) return dispute.status();
    *response->mutable_dispute() = *std::move(dispute);
    response->set_already_present(result->already_present);
    return absl::OkStatus();
  });
}

LogService::LogService(const LogProofs* proofs, WorkerPool* pool) : proofs_(proofs), pool_(pool) {}

grpc::ServerUnaryReactor* LogService::GetCheckpoint(grpc::CallbackServerContext* context,
                                                    const v1::GetCheckpointRequest* request,
                                                    v1::GetCheckpointResponse* response) {
  // From memory, so answered on the gRPC thread.
  auto answer = proofs_->GetCheckpoint();
  if (answer.ok()) *response = *std::move(answer);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(answer.status()));
  return reactor;
}

grpc::ServerUnaryReactor* LogService::GetInclusionProof(grpc::CallbackServerContext* context,
                                                        const v1::GetInclusionProofRequest* request,
                                                        v1::GetInclusionProofResponse* response) {
  return OnPool(context, pool_, [this, request, response]() -> absl::Status {
    auto answer = proofs_->GetInclusionProof(*request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* LogService::GetConsistencyProof(grpc::CallbackServerContext* context,
                                                          const v1::GetConsistencyProofRequest* request,
                                                          v1::GetConsistencyProofResponse* response) {
  return OnPool(context, pool_, [this, request, response]() -> absl::Status {
    auto answer = proofs_->GetConsistencyProof(*request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

PolicyService::PolicyService(const consensus::Policy& policy, const consensus::PublicKey& node_key) {
  info_.set_hash(policy.Hash());
  info_.set_quorum(policy.quorum());
  for (const consensus::Operator& op : policy.operators()) {
    v1::Operator* out = info_.add_operators();
    out->set_name(op.name);
    for (const consensus::PublicKey& key : op.builders) out->add_builders(key.ToString());
  }
  for (const consensus::PublicKey& key : policy.maintainers()) info_.add_maintainers(key.ToString());
  info_.set_canonical_text(policy.CanonicalText());
  info_.set_node_public_key(node_key.ToString());
}

grpc::ServerUnaryReactor* PolicyService::GetPolicy(grpc::CallbackServerContext* context,
                                                   const v1::GetPolicyRequest* request, v1::PolicyInfo* response) {
  *response = info_;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

FederationService::FederationService(Replicator* replicator, NarSourceStatusFn sources, WorkerPool* read_pool)
    : replicator_(replicator), sources_(std::move(sources)), pool_(read_pool) {}

grpc::ServerUnaryReactor* FederationService::GetFederationStatus(grpc::CallbackServerContext* context,
                                                                 const v1::GetFederationStatusRequest* request,
                                                                 v1::GetFederationStatusResponse* response) {
  return OnPool(context, pool_, [this, response]() -> absl::Status {
    auto answer = replicator_->Status();
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* FederationService::ListSources(grpc::CallbackServerContext* context,
                                                         const v1::ListSourcesRequest* /*request*/,
                                                         v1::ListSourcesResponse* response) {
  return OnPool(context, pool_, [this, response]() -> absl::Status {
    if (!sources_) return absl::OkStatus();
    const std::vector<NarSourceStatus> statuses = sources_();
    response->mutable_sources()->Reserve(static_cast<int>(statuses.size()));
    for (const NarSourceStatus& status : statuses) *response->add_sources() = ToProto(status);
    return absl::OkStatus();
  });
}

}  // namespace attest::server

namespace attest::server {

RebuildsService::RebuildsService(RebuildHandler* handler, WorkerPool* read_pool, WorkerPool* write_pool)
    : handler_(handler), read_pool_(read_pool), write_pool_(write_pool) {}

namespace {

// Runs handler call `call` on `pool` and moves its answer into `response`.
template <typename Response, typename Call>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, WorkerPool* pool, Response* response,
                                 Call call) {
  return OnPool(context, pool, [response, call = std::move(call)]() -> absl::Status {
    auto answer = call();
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

}  // namespace

grpc::ServerUnaryReactor* RebuildsService::Wanted(grpc::CallbackServerContext* context,
                                                  const v1::WantedRequest* request, v1::WantedResponse* response) {
  return Answer(context, read_pool_, response, [this, request] { return handler_->Wanted(*request); });
}

grpc::ServerUnaryReactor* RebuildsService::SubmitDerivations(grpc::CallbackServerContext* context,
                                                             const v1::SubmitDerivationsRequest* request,
                                                             v1::SubmitDerivationsResponse* response) {
  return Answer(context, write_pool_, response, [this, request] { return handler_->SubmitDerivations(*request); });
}

grpc::ServerUnaryReactor* RebuildsService::MissingDerivations(grpc::CallbackServerContext* context,
                                                              const v1::MissingDerivationsRequest* request,
                                                              v1::MissingDerivationsResponse* response) {
  return Answer(context, read_pool_, response, [this, request] { return handler_->MissingDerivations(*request); });
}

grpc::ServerUnaryReactor* RebuildsService::GetDerivations(grpc::CallbackServerContext* context,
                                                          const v1::GetDerivationsRequest* request,
                                                          v1::GetDerivationsResponse* response) {
  return Answer(context, read_pool_, response, [this, request] { return handler_->GetDerivations(*request); });
}

grpc::ServerUnaryReactor* RebuildsService::AcquireLease(grpc::CallbackServerContext* context,
                                                        const v1::RebuildStatement* request,
                                                        v1::AcquireLeaseResponse* response) {
  return Answer(context, write_pool_, response, [this, request] { return handler_->AcquireLease(*request); });
}

grpc::ServerUnaryReactor* RebuildsService::ReportRebuild(grpc::CallbackServerContext* context,
                                                         const v1::RebuildStatement* request,
                                                         v1::ReportRebuildResponse* response) {
  return Answer(context, write_pool_, response, [this, request] { return handler_->ReportRebuild(*request); });
}

}  // namespace attest::server
