// The boundary between absl::Status and what a client sees.
//
// ToGrpcStatus is the one place a Status becomes a grpc::Status: it keeps the code and strips internals
// from the message. Codes that mean "the client's input or a limit" keep their message (those messages
// are written for clients and quote only what the client sent); codes that mean "the node is broken"
// (INTERNAL, DATA_LOSS, UNKNOWN) get a fixed text, and the detail goes to the node's log.
//
// StorageFailure is for errors coming out of the AttestationStore: their messages may name files or SQL,
// so they are logged in full and replaced by a short, code-specific explanation before they travel on.
//
// Thread-safe.
#ifndef ATTEST_SERVER_GRPC_STATUS_H_
#define ATTEST_SERVER_GRPC_STATUS_H_

#include <string_view>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace attest::server {

// Longest message passed to a client; longer ones are cut (they only ever quote the client's input).
inline constexpr size_t kMaxClientMessageBytes = 4096;

grpc::Status ToGrpcStatus(const absl::Status& status);

// Logs `status` with `action` ("storing 1000 attestations") and returns a status with the same code and
// a message fit for clients: "<action> failed: <what the code means and what to do>".
absl::Status StorageFailure(std::string_view action, const absl::Status& status);

}  // namespace attest::server

#endif  // ATTEST_SERVER_GRPC_STATUS_H_
