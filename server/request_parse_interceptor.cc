#include "server/request_parse_interceptor.h"

#include <atomic>
#include <string>

#include <grpcpp/support/interceptor.h>
#include <grpcpp/support/status.h>

namespace attest::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RequestParseInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RequestParseInterceptor(std::string method) : method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_.store(true, std::memory_order_release);
    }
    // No handler ran for an unparsed request, so whatever status is about to go out is gRPC's own.
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS) &&
        unparsed_.load(std::memory_order_acquire) && !methods->GetSendStatus().ok()) {
      methods->ModifySendStatus(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "the request to " + method_ +
              " is not a valid protobuf encoding of the method's request message (encode the "
              "request with the service's .proto, e.g. proto/attest/v1/attest.proto)"));
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  std::atomic<bool> unparsed_{false};
};

}  // namespace

grpc::experimental::Interceptor* RequestParseInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  using Type = grpc::experimental::ServerRpcInfo::Type;
  if (info->type() != Type::UNARY && info->type() != Type::SERVER_STREAMING) return nullptr;
  return new RequestParseInterceptor(info->method() == nullptr ? "" : info->method());
}

}  // namespace attest::server
