// server/grpc_status: the code is kept; internals never reach the client.
#include "server/grpc_status.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GrpcStatusTest, OkIsOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(GrpcStatusTest, ClientFacingCodesKeepCodeAndMessage) {
  for (auto code : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
                    absl::StatusCode::kUnauthenticated, absl::StatusCode::kPermissionDenied,
                    absl::StatusCode::kResourceExhausted, absl::StatusCode::kFailedPrecondition,
                    absl::StatusCode::kUnavailable, absl::StatusCode::kCancelled}) {
    grpc::Status status = ToGrpcStatus(absl::Status(code, "attestation 3 of 100: bad"));
    EXPECT_EQ(static_cast<int>(status.error_code()), static_cast<int>(code));
    EXPECT_EQ(status.error_message(), "attestation 3 of 100: bad");
  }
}

TEST(GrpcStatusTest, InternalCodesKeepCodeButNotTheDetails) {
  for (auto code : {absl::StatusCode::kInternal, absl::StatusCode::kDataLoss, absl::StatusCode::kUnknown}) {
    grpc::Status status = ToGrpcStatus(absl::Status(code, "sqlite3_step: SELECT * FROM attestation; /var/lib/a.db"));
    EXPECT_EQ(static_cast<int>(status.error_code()), static_cast<int>(code));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("SELECT")));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("/var/lib")));
    EXPECT_THAT(status.error_message(), HasSubstr("log"));
  }
}

TEST(GrpcStatusTest, LongMessagesAreCut) {
  grpc::Status status = ToGrpcStatus(absl::InvalidArgumentError(std::string(100000, 'x')));
  EXPECT_LE(status.error_message().size(), kMaxClientMessageBytes + 3);
}

TEST(GrpcStatusTest, StorageFailureKeepsCodeAndExplainsWithoutInternals) {
  absl::Status status =
      StorageFailure("storing 5 attestations", absl::UnavailableError("database is locked: INSERT INTO x"));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(std::string(status.message()), "storing 5 attestations failed: the node's database is busy; retry later");
  EXPECT_EQ(StorageFailure("x", absl::ResourceExhaustedError("disk full: /var")).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(StorageFailure("x", absl::OkStatus()).ok());
}

}  // namespace
}  // namespace attest::server
