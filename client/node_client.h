// The client's view of an attestd node: the attest.v1 RPCs the CLI uses, behind a small interface so
// subcommands can be tested in-process with a fake node.
//
// GrpcNodeApi (made by ConnectGrpcNode) puts a deadline on every call (NodeOptions::timeout, for the
// whole call including retries), retries only UNAVAILABLE with bounded exponential backoff (safe: every
// RPC used here is idempotent, submissions included). The channel is TLS for a node address written
// "https://host:port" (or when a CA file is given), plaintext for "host:port" and "http://host:port".
// Errors keep the gRPC code and say which node answered.
//
// A NodeApi is thread-compatible (one caller at a time).
#ifndef ATTEST_CLIENT_NODE_CLIENT_H_
#define ATTEST_CLIENT_NODE_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::client {

class NodeApi {
 public:
  virtual ~NodeApi() = default;
  virtual absl::StatusOr<v1::SubmitResponse> Submit(const v1::SubmitRequest& request) = 0;
  virtual absl::StatusOr<v1::StatusResponse> Status(const v1::StatusRequest& request) = 0;
  virtual absl::StatusOr<v1::ListDisputesResponse> ListDisputes(const v1::ListDisputesRequest& request) = 0;
  virtual absl::StatusOr<v1::Dispute> GetDispute(const v1::GetDisputeRequest& request) = 0;
  virtual absl::StatusOr<v1::PolicyInfo> GetPolicy(const v1::GetPolicyRequest& request) = 0;
  // Not retried on UNAVAILABLE by callers that cannot tell whether it was stored: resubmitting the same
  // statement is harmless (already_present).
  virtual absl::StatusOr<v1::ResolveDisputeResponse> ResolveDispute(const v1::ResolveDisputeRequest& request) {
    return absl::UnimplementedError("this connection cannot resolve disputes");
  }
  // attest.v1.Policy/SubmitPolicy: a successor policy and its maintainers' approvals. Safe to retry: a
  // link adopted before its answer was lost is answered ALREADY_EXISTS the second time (the caller can
  // tell with GetPolicy). A connection without it answers UNIMPLEMENTED.
  virtual absl::StatusOr<v1::SubmitPolicyResponse> SubmitPolicy(const v1::PolicyLink& request) {
    return absl::UnimplementedError("this connection cannot submit policies");
  }
  // attest.v1.Attestations/Closure: the verdict on a path and its attested closure. A node that predates
  // it (or a connection without it) answers UNIMPLEMENTED.
  virtual absl::StatusOr<v1::ClosureResponse> Closure(const v1::ClosureRequest& request) {
    return absl::UnimplementedError("this connection cannot ask about closures");
  }
  // attest.v1.Rebuilds: which of these .drv paths the node lacks, and handing it .drv files. A node
  // that predates the service answers UNIMPLEMENTED (so does the default: a connection without it).
  virtual absl::StatusOr<v1::MissingDerivationsResponse> MissingDerivations(
      const v1::MissingDerivationsRequest& request) {
    return absl::UnimplementedError("this connection cannot ask for missing derivations");
  }
  virtual absl::StatusOr<v1::SubmitDerivationsResponse> SubmitDerivations(
      const v1::SubmitDerivationsRequest& request) {
    return absl::UnimplementedError("this connection cannot submit derivations");
  }
};

struct RetryOptions final {
  int max_attempts = 6;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(3);
};

struct NodeOptions final {
  std::string address;                         // "host:port", "http://host:port" or "https://host:port"
  // PEM CA certificate(s) a TLS node's certificate must chain to (--tls-ca); "" = the system's CAs.
  // Setting it makes a plain "host:port" a TLS address too.
  std::string tls_ca_file = {};
  absl::Duration timeout = absl::Seconds(30);  // per call, retries included
  RetryOptions retry = {};
};

// Makes the NodeApi a subcommand talks to; injected so tests can hand out fakes.
using NodeConnector = std::function<absl::StatusOr<std::unique_ptr<NodeApi>>(const NodeOptions&)>;

// The real connector: a gRPC channel to options.address (NodeChannel, whose errors it returns).
// Connecting is lazy: an unreachable node shows up as UNAVAILABLE on the first call.
absl::StatusOr<std::unique_ptr<NodeApi>> ConnectGrpcNode(const NodeOptions& options);

// Where and how to dial a node address.
struct NodeTarget final {
  std::string target;  // "host:port", as gRPC dials it
  bool tls = false;
};

// INVALID_ARGUMENT for an empty address, an unknown scheme, or "http://" together with a CA file.
absl::StatusOr<NodeTarget> ParseNodeAddress(std::string_view address, std::string_view tls_ca_file);

// A channel to the node of options.address (ParseNodeAddress), with TLS verified against
// options.tls_ca_file when set. Errors: INVALID_ARGUMENT as ParseNodeAddress, or a CA file with no PEM
// certificate; NOT_FOUND / PERMISSION_DENIED / UNAVAILABLE when the CA file cannot be read. All name
// --tls-ca and the file.
absl::StatusOr<std::shared_ptr<grpc::Channel>> NodeChannel(const NodeOptions& options,
                                                           const grpc::ChannelArguments& args = {});

// Runs `attempt` (given the deadline it must respect) until it returns anything but UNAVAILABLE, the
// attempts are used up, or the next backoff would pass `deadline`. Sleeps through `sleep` between
// attempts (backoff doubles from initial_backoff, capped at max_backoff). Returns the last status.
// Exposed for tests.
absl::Status RetryUnavailable(const RetryOptions& retry, absl::Time deadline,
                              const std::function<absl::Status(absl::Time deadline)>& attempt,
                              const std::function<absl::Time()>& now,
                              const std::function<void(absl::Duration)>& sleep);

// One unary call to a node with the rules of GrpcNodeApi, for the services NodeApi does not cover
// (LogService, Federation): `rpc` is run with a context whose deadline leaves room for the retries,
// `response` is cleared before each attempt, UNAVAILABLE is retried, and a failure keeps its gRPC
// code and reads "node <address>: <method>: <message><hint>". The hint is `hint(code)` when that is
// not empty, else the common one (is attestd running, --timeout, is that a gRPC port).
absl::Status CallNode(const NodeOptions& options, std::string_view method, google::protobuf::Message& response,
                      const std::function<grpc::Status(grpc::ClientContext*)>& rpc,
                      const std::function<std::string(grpc::StatusCode)>& hint = nullptr);

// Parses a --timeout value: a number of seconds ("30", "2.5") or an Abseil duration ("500ms", "1m").
// INVALID_ARGUMENT when it is not positive.
absl::StatusOr<absl::Duration> ParseTimeout(const std::string& text);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_NODE_CLIENT_H_
