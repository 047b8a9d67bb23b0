#include "server/grpc_services.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/strip.h"
#include "consensus/text.h"
#include "server/dispute_messages.h"
#include "server/grpc_status.h"

namespace attest::server {

using consensus::Cat;
using consensus::StdView;

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
      closure_(status, status != nullptr ? static_cast<size_t>(std::max(0, status->options().max_paths)) : 0),
      submit_pool_(submit_pool),
      read_pool_(read_pool),
      on_status_(std::move(on_status)) {}

grpc::ServerUnaryReactor* AttestationsService::Submit(grpc::CallbackServerContext* context,
                                                      const v1::SubmitRequest* request,
                                                      v1::SubmitResponse* response) {
  return OnPool(context, submit_pool_, [this, request, response]() -> absl::Status {
    auto results = ingestor_->Submit(request->attestations(), request->realisations());
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

grpc::ServerUnaryReactor* AttestationsService::Closure(grpc::CallbackServerContext* context,
                                                       const v1::ClosureRequest* request,
                                                       v1::ClosureResponse* response) {
  return OnPool(context, read_pool_, [this, request, response]() -> absl::Status {
    auto answer = closure_.Run(*request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
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

v1::PolicyInfo PolicyInfoOf(const PolicyBook& book, const consensus::PublicKey& node_key) {
  const std::shared_ptr<const consensus::Policy> policy = book.current();
  const std::shared_ptr<const storage::StoredPolicyLink> link = book.current_link();
  v1::PolicyInfo info;
  info.set_hash(policy->Hash());
  const consensus::Quorum& quorum = policy->default_quorum();
  info.set_quorum(quorum.of.has_value() ? 0 : quorum.any);
  for (const consensus::Operator& op : policy->operators()) {
    v1::Operator* out = info.add_operators();
    out->set_name(op.name);
    for (const consensus::PublicKey& key : op.builders) out->add_builders(key.ToString());
  }
  for (const consensus::PublicKey& key : policy->maintainers()) info.add_maintainers(key.ToString());
  info.set_canonical_text(policy->CanonicalText());
  info.set_node_public_key(node_key.ToString());
  info.set_version(policy->version());
  info.set_parent(policy->parent());
  info.set_update_threshold(policy->update_threshold());
  // The link and the policy are read apart: an adoption in between would pair them wrongly, so the
  // link is shown only when it is the one that made this policy current.
  if (link != nullptr && link->hash == policy->Hash()) {
    info.set_toml(link->toml);
    for (const consensus::Signature& approval : link->approvals) info.add_approvals(approval.ToString());
    for (const std::string& name : book.current_counted_approvals()) info.add_counted_approvals(name);
    info.set_adopted_unix(link->received_unix);
    info.set_adopted_from(link->origin);
  }
  return info;
}

absl::StatusOr<v1::SubmitPolicyResponse> SubmitPolicyLink(PolicyBook& book, const v1::PolicyLink& request,
                                                          absl::Time now) {
  consensus::PolicyLink link{.toml = request.toml(), .approvals = {}};
  link.approvals.reserve(static_cast<size_t>(request.approvals_size()));
  for (int i = 0; i < request.approvals_size(); ++i) {
    absl::StatusOr<consensus::Signature> approval = consensus::Signature::Parse(request.approvals(i));
    if (!approval.ok()) {
      return absl::InvalidArgumentError(Cat("approvals[", i, "]: ", StdView(approval.status().message()),
                                            " (an approval is one line of `attest policy sign`'s output)"));
    }
    link.approvals.push_back(*std::move(approval));
  }
  absl::StatusOr<PolicyBook::Adopted> adopted = book.Adopt(link, "", absl::ToUnixSeconds(now));
  if (!adopted.ok()) return adopted.status();
  LogPolicyAdoption(*adopted, "a submission");
  v1::SubmitPolicyResponse response;
  response.set_hash(adopted->policy->Hash());
  response.set_version(adopted->policy->version());
  response.set_previous_hash(adopted->previous->Hash());
  for (const std::string& name : adopted->counted_approvals) response.add_counted_approvals(name);
  return response;
}

absl::StatusOr<v1::GetPolicyChainResponse> PolicyChainSince(const PolicyBook& book,
                                                            const v1::GetPolicyChainRequest& request) {
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> links = book.LinksSince(request.since());
  if (!links.ok()) return links.status();
  v1::GetPolicyChainResponse response;
  for (const storage::StoredPolicyLink& link : *links) {
    v1::PolicyLink* out = response.add_links();
    out->set_toml(link.toml);
    for (const consensus::Signature& approval : link.approvals) out->add_approvals(approval.ToString());
    out->set_received_unix(link.received_unix);
    out->set_origin(link.origin);
  }
  return response;
}

PolicyService::PolicyService(PolicyBook* policy, const consensus::PublicKey& node_key, WorkerPool* read_pool,
                             WorkerPool* write_pool, Clock clock, Counter* refused)
    : policy_(policy),
      node_key_(node_key),
      read_pool_(read_pool),
      write_pool_(write_pool),
      clock_(std::move(clock)),
      refused_(refused) {}

grpc::ServerUnaryReactor* PolicyService::GetPolicy(grpc::CallbackServerContext* context,
                                                   const v1::GetPolicyRequest* request, v1::PolicyInfo* response) {
  return OnPool(context, read_pool_, [this, response]() -> absl::Status {
    *response = PolicyInfoOf(*policy_, node_key_);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PolicyService::SubmitPolicy(grpc::CallbackServerContext* context,
                                                      const v1::PolicyLink* request,
                                                      v1::SubmitPolicyResponse* response) {
  return OnPool(context, write_pool_, [this, request, response]() -> absl::Status {
    auto answer = SubmitPolicyLink(*policy_, *request, clock_());
    if (!answer.ok()) {
      if (refused_ != nullptr) refused_->Increment();
      return answer.status();
    }
    *response = *std::move(answer);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* PolicyService::GetPolicyChain(grpc::CallbackServerContext* context,
                                                        const v1::GetPolicyChainRequest* request,
                                                        v1::GetPolicyChainResponse* response) {
  return OnPool(context, read_pool_, [this, request, response]() -> absl::Status {
    auto answer = PolicyChainSince(*policy_, *request);
    if (!answer.ok()) return answer.status();
    *response = *std::move(answer);
    return absl::OkStatus();
  });
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
