#include "client/node_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdlib>

#include "consensus/text.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;

// A CA bundle is a few hundred kilobytes (the system's is about 200 KiB).
constexpr size_t kMaxCaFileBytes = 16 << 20;

// Status answers for thousands of paths carry their attestations; gRPC's 4 MiB default is too small.
constexpr int kMaxReceiveMessageBytes = 256 << 20;

constexpr std::string_view kHttps = "https://";
constexpr std::string_view kHttp = "http://";

bool IsTls(const NodeOptions& options) {
  absl::StatusOr<NodeTarget> target = ParseNodeAddress(options.address, options.tls_ca_file);
  return target.ok() && target->tls;
}

std::string Hint(grpc::StatusCode code, const NodeOptions& options) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      if (IsTls(options)) {
        return " (is attestd running there with [tls]? a handshake failure means the node's certificate is not "
               "trusted or not made for that host name: pass --tls-ca with the CA that signed it)";
      }
      return " (is attestd running and listening there? check --node; a node with [tls] is reached as "
             "--node https://HOST:PORT)";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Cat(" (no complete answer within ", absl::FormatDuration(options.timeout),
                 "; pass --timeout to wait longer)");
    case grpc::StatusCode::UNIMPLEMENTED:
      return " (is that address an attestd gRPC port? the HTTP port does not speak gRPC)";
    default:
      return "";
  }
}


class GrpcNodeApi final : public NodeApi {
 public:
  GrpcNodeApi(NodeOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)),
        attestations_(v1::Attestations::NewStub(channel)),
        disputes_(v1::Disputes::NewStub(channel)),
        policy_(v1::Policy::NewStub(channel)),
        rebuilds_(v1::Rebuilds::NewStub(channel)) {}

  absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request) override {
    return Call<v1::SubmitResponse>("Submit", [&](grpc::ClientContext* ctx, v1::SubmitResponse* out) {
      return attestations_->Submit(ctx, request, out);
    });
  }
  absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest& request) override {
    return Call<v1::StatusResponse>("Status", [&](grpc::ClientContext* ctx, v1::StatusResponse* out) {
      return attestations_->Status(ctx, request, out);
    });
  }
  absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const v1::ListDisputesRequest& request) override {
    return Call<v1::ListDisputesResponse>("ListDisputes",
                                          [&](grpc::ClientContext* ctx, v1::ListDisputesResponse* out) {
                                            return disputes_->ListDisputes(ctx, request, out);
                                          });
  }
  absl::StatusOr<v1::Dispute> GetDispute(const v1::GetDisputeRequest& request) override {
    return Call<v1::Dispute>("GetDispute", [&](grpc::ClientContext* ctx, v1::Dispute* out) {
      return disputes_->GetDispute(ctx, request, out);
    });
  }
  absl::StatusOr<v1::ResolveDisputeResponse> ResolveDispute(const v1::ResolveDisputeRequest& request) override {
    return Call<v1::ResolveDisputeResponse>("ResolveDispute",
                                            [&](grpc::ClientContext* ctx, v1::ResolveDisputeResponse* out) {
                                              return disputes_->ResolveDispute(ctx, request, out);
                                            });
  }
  absl::StatusOr<v1::PolicyInfo> GetPolicy(const v1::GetPolicyRequest& request) override {
    return Call<v1::PolicyInfo>("GetPolicy", [&](grpc::ClientContext* ctx, v1::PolicyInfo* out) {
      return policy_->GetPolicy(ctx, request, out);
    });
  }
  absl::StatusOr<v1::ClosureResponse> Closure(const v1::ClosureRequest& request) override {
    return Call<v1::ClosureResponse>("Closure", [&](grpc::ClientContext* ctx, v1::ClosureResponse* out) {
      return attestations_->Closure(ctx, request, out);
    });
  }
  absl::StatusOr<v1::SubmitPolicyResponse> SubmitPolicy(const v1::PolicyLink& request) override {
    return Call<v1::SubmitPolicyResponse>("SubmitPolicy", [&](grpc::ClientContext* ctx, v1::SubmitPolicyResponse* out) {
      return policy_->SubmitPolicy(ctx, request, out);
    });
  }
  absl::StatusOr<v1::MissingDerivationsResponse> MissingDerivations(
      const v1::MissingDerivationsRequest& request) override {
    return Call<v1::MissingDerivationsResponse>(
        "MissingDerivations", [&](grpc::ClientContext* ctx, v1::MissingDerivationsResponse* out) {
          return rebuilds_->MissingDerivations(ctx, request, out);
        });
  }
  absl::StatusOr<v1::SubmitDerivationsResponse> SubmitDerivations(
      const v1::SubmitDerivationsRequest& request) override {
    return Call<v1::SubmitDerivationsResponse>(
        "SubmitDerivations", [&](grpc::ClientContext* ctx, v1::SubmitDerivationsResponse* out) {
          return rebuilds_->SubmitDerivations(ctx, request, out);
        });
  }

 private:
  template <typename Response, typename Rpc>
  absl::StatusOr<Response> Call(std::string_view method, Rpc rpc) {
    Response response;
    absl::Status status =
        CallNode(options_, method, response, [&](grpc::ClientContext* context) { return rpc(context, &response); });
    if (!status.ok()) return status;
    return response;
  }

  NodeOptions options_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Disputes::Stub> disputes_;
  std::unique_ptr<v1::Policy::Stub> policy_;
  std::unique_ptr<v1::Rebuilds::Stub> rebuilds_;
};

}  // namespace

absl::Status CallNode(const NodeOptions& options, std::string_view method, google::protobuf::Message& response,
                      const std::function<grpc::Status(grpc::ClientContext*)>& rpc,
                      const std::function<std::string(grpc::StatusCode)>& hint) {
  const absl::Time deadline = absl::Now() + options.timeout;
  return RetryUnavailable(
      options.retry, deadline,
      [&](absl::Time attempt_deadline) {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(attempt_deadline));
        response.Clear();
        const grpc::Status status = rpc(&context);
        if (status.ok()) return absl::OkStatus();
        std::string specific = hint ? hint(status.error_code()) : std::string();
        return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                            Cat("node ", options.address, ": ", method, ": ", status.error_message(),
                                specific.empty() ? Hint(status.error_code(), options) : specific));
      },
      [] { return absl::Now(); }, [](absl::Duration d) { absl::SleepFor(d); });
}

absl::Status RetryUnavailable(const RetryOptions& retry, absl::Time deadline,
                              const std::function<absl::Status(absl::Time deadline)>& attempt,
                              const std::function<absl::Time()>& now,
                              const std::function<void(absl::Duration)>& sleep) {
  absl::Duration backoff = retry.initial_backoff;
  const int attempts = std::max(1, retry.max_attempts);
  absl::Status status;
  for (int i = 1; i <= attempts; ++i) {
    status = attempt(deadline);
    if (status.code() != absl::StatusCode::kUnavailable) return status;
    if (i == attempts || now() + backoff >= deadline) break;
    sleep(backoff);
    backoff = std::min(backoff * 2, retry.max_backoff);
  }
  return status;
}

absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text) {
  absl::Duration duration;
  char* end = nullptr;
  const double seconds = std::strtod(text.c_str(), &end);
  if (!text.empty() && end == text.c_str() + text.size()) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &duration)) {
    return absl::InvalidArgumentError(
        Cat("--timeout ", consensus::QuoteForError(text), " is not a duration (seconds, or e.g. 500ms, 2m)"));
  }
  if (duration <= absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        Cat("--timeout ", consensus::QuoteForError(text), " must be positive and finite"));
  }
  return duration;
}

absl::StatusOr<NodeTarget> ParseNodeAddress(std::string_view address, std::string_view tls_ca_file) {
  if (address.empty()) return absl::InvalidArgumentError("no node address (pass --node HOST:PORT)");
  NodeTarget target;
  std::string_view rest = address;
  if (rest.substr(0, kHttps.size()) == kHttps) {
    rest.remove_prefix(kHttps.size());
    target.tls = true;
  } else if (rest.substr(0, kHttp.size()) == kHttp) {
    if (!tls_ca_file.empty()) {
      return absl::InvalidArgumentError(Cat("node ", consensus::QuoteForError(address),
                                            " is plaintext (http://) but --tls-ca is given; write https://",
                                            rest.substr(kHttp.size()), " for a node that serves TLS"));
    }
    rest.remove_prefix(kHttp.size());
  } else if (rest.find("://") != std::string_view::npos) {
    return absl::InvalidArgumentError(Cat("node ", consensus::QuoteForError(address),
                                          " has an unknown scheme; write HOST:PORT, or https://HOST:PORT for a "
                                          "node that serves TLS"));
  } else {
    target.tls = !tls_ca_file.empty();
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return absl::InvalidArgumentError(Cat("node ", consensus::QuoteForError(address), " has no host"));
  target.target = std::string(rest);
  return target;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> NodeChannel(const NodeOptions& options,
                                                           const grpc::ChannelArguments& args) {
  absl::StatusOr<NodeTarget> target = ParseNodeAddress(options.address, options.tls_ca_file);
  if (!target.ok()) return target.status();
  if (!target->tls) return grpc::CreateCustomChannel(target->target, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca_file.empty()) {
    const std::string& file = options.tls_ca_file;
    absl::StatusOr<std::string> pem = storage::ReadFileToString(file, kMaxCaFileBytes);
    if (!pem.ok()) return absl::Status(pem.status().code(), Cat("--tls-ca ", pem.status().message()));
    ssl.pem_root_certs = *std::move(pem);
    if (ssl.pem_root_certs.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return absl::InvalidArgumentError(Cat("--tls-ca ", file,
                                            ": no PEM certificate in it (expected the CA certificate that signed "
                                            "the node's, starting with -----BEGIN CERTIFICATE-----)"));
    }
  }
  return grpc::CreateCustomChannel(target->target, grpc::SslCredentials(ssl), args);
}

absl::StatusOr<std::unique_ptr<NodeApi>> ConnectGrpcNode(const NodeOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  args.SetMaxSendMessageSize(kMaxReceiveMessageBytes);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = NodeChannel(options, args);
  if (!channel.ok()) return channel.status();
  return std::make_unique<GrpcNodeApi>(options, *std::move(channel));
}

}  // namespace attest::client
