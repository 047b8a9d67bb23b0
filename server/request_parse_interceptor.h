// RequestParseInterceptorFactory: a request whose bytes do not parse as the method's request message
// is answered INVALID_ARGUMENT with a message saying so, instead of what gRPC C++ sends by itself.
//
// gRPC C++ (1.51, as Debian 12 ships it) deserializes the request before any handler runs; when that
// fails, the callback API (all of attest.v1) answers UNIMPLEMENTED with an empty message
// (server_callback_handlers.h), which reads as "no such method" and does not tell a client that its
// bytes are at fault. (gRPC's own health service parses its requests itself: INVALID_ARGUMENT.) The server-side interceptor API sees the failure: at POST_RECV_MESSAGE the message is
// null exactly when it did not parse, and at PRE_SEND_STATUS the status can be replaced. Only methods
// that receive one message (unary and server-streaming) are intercepted: for streaming requests a
// null message also means the end of the stream.
//
// Register with ServerBuilder::experimental().SetInterceptorCreators. Thread-safe: the factory is
// stateless; one interceptor serves one call.
#ifndef ATTEST_SERVER_REQUEST_PARSE_INTERCEPTOR_H_
#define ATTEST_SERVER_REQUEST_PARSE_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

namespace attest::server {

class RequestParseInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // nullptr (no interceptor) for client-streaming and bidirectional methods.
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_REQUEST_PARSE_INTERCEPTOR_H_
