#include "server/grpc_status.h"

#include <string>

#include "consensus/text.h"
#include "server/log.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// What a client is told about a failure of the node's own storage, by code.
std::string_view StorageExplanation(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kUnavailable:
      return "the node's database is busy; retry later";
    case absl::StatusCode::kResourceExhausted:
      return "the node is out of storage space; retry later or tell its operator";
    case absl::StatusCode::kFailedPrecondition:
      return "the node's database is not writable; tell its operator";
    case absl::StatusCode::kDataLoss:
      return "the node's database is corrupt; tell its operator";
    case absl::StatusCode::kDeadlineExceeded:
      return "the node's database did not answer in time; retry later";
    default:
      return "internal error in the node's storage; tell its operator";
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(static_cast<int>(status.code()));
  switch (status.code()) {
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      LogError(Cat("internal error: ", StdView(status.message())));
      return grpc::Status(code, "internal error in the node (details are in its log)");
    case absl::StatusCode::kDataLoss:
      LogError(Cat("data loss: ", StdView(status.message())));
      return grpc::Status(code, "stored data failed verification on the node (details are in its log)");
    default:
      break;
  }
  std::string message(StdView(status.message()));
  if (message.size() > kMaxClientMessageBytes) {
    message.resize(kMaxClientMessageBytes);
    message.append("...");
  }
  return grpc::Status(code, message);
}

absl::Status StorageFailure(std::string_view action, const absl::Status& status) {
  if (status.ok()) return status;
  LogError(Cat(action, " failed: ", StdView(status.message())));
  return absl::Status(status.code(),
                      consensus::AbslView(Cat(action, " failed: ", StorageExplanation(status.code()))));
}

}  // namespace attest::server
