#include "consensus/rebuild_statement.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;
using Kind = RebuildStatementKind;

RebuildStatement Statement(Kind kind, std::string detail = "") {
  return {.kind = kind,
          .path = testing::TestStorePath("hello-2.12"),
          .time_unix = 1765000000,
          .detail = std::move(detail)};
}

void ExpectInvalid(const RebuildStatement& statement, std::string_view fragment) {
  const absl::Status status = ValidateRebuildStatement(statement);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << statement.detail;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(fragment)));
  // Verification refuses it before looking at the signature.
  const SecretKey key = testing::TestKey("builder-1");
  EXPECT_EQ(VerifyRebuildStatement(statement, key.Sign(RebuildStatementText(statement)), key.public_key()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(RebuildStatementTest, TextIsTheDocumentedLines) {
  const RebuildStatement failed = Statement(Kind::kFailed, "builder exited with 2");
  EXPECT_EQ(RebuildStatementText(failed), "attest/rebuild/v1\nfailed\n" + failed.path.full() +
                                              "\n1765000000\nbuilder exited with 2\n");
  EXPECT_EQ(RebuildStatementText(Statement(Kind::kLease)),
            "attest/rebuild/v1\nlease\n" + failed.path.full() + "\n1765000000\n\n");
}

TEST(RebuildStatementTest, KindNamesRoundTrip) {
  for (Kind kind : {Kind::kLease, Kind::kRelease, Kind::kBuilt, Kind::kFailed}) {
    absl::StatusOr<Kind> parsed = ParseRebuildStatementKind(RebuildStatementKindName(kind));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(RebuildStatementKindName(Kind::kRelease), "release");
  for (std::string_view bad : {"", "Lease", "leased", "built "}) {
    absl::StatusOr<Kind> parsed = ParseRebuildStatementKind(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr("lease, release, built, failed"));
  }
}

TEST(RebuildStatementTest, SignedStatementsVerify) {
  const SecretKey key = testing::TestKey("builder-1");
  for (const RebuildStatement& statement :
       {Statement(Kind::kLease), Statement(Kind::kRelease), Statement(Kind::kBuilt),
        Statement(Kind::kFailed, "hash mismatch in fixed-output derivation"), Statement(Kind::kFailed)}) {
    const Signature signature = SignRebuildStatement(statement, key);
    EXPECT_EQ(signature.key_name, "builder-1");
    EXPECT_TRUE(VerifyRebuildStatement(statement, signature, key.public_key()).ok());
  }
}

TEST(RebuildStatementTest, WrongKeyIsUnauthenticated) {
  const RebuildStatement statement = Statement(Kind::kBuilt);
  const Signature signature = SignRebuildStatement(statement, testing::TestKey("builder-1"));
  // Same name, other key.
  absl::Status status =
      VerifyRebuildStatement(statement, signature, testing::TestKey("builder-1", "other").public_key());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()), HasSubstr(statement.path.full()));
  // Other name.
  status = VerifyRebuildStatement(statement, signature, testing::TestKey("builder-2").public_key());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
}

TEST(RebuildStatementTest, EveryTamperedFieldIsUnauthenticated) {
  const SecretKey key = testing::TestKey("builder-1");
  const RebuildStatement original = Statement(Kind::kFailed, "out of memory");
  const Signature signature = SignRebuildStatement(original, key);

  std::vector<RebuildStatement> tampered(4, original);
  tampered[0].kind = Kind::kBuilt;
  tampered[0].detail = "";
  tampered[1].path = testing::TestStorePath("hello-2.13");
  tampered[2].time_unix += 1;
  tampered[3].detail = "out of disk";
  for (const RebuildStatement& statement : tampered) {
    EXPECT_EQ(VerifyRebuildStatement(statement, signature, key.public_key()).code(),
              absl::StatusCode::kUnauthenticated);
  }
  Signature flipped = signature;
  flipped.bytes[10] ^= 1;
  EXPECT_EQ(VerifyRebuildStatement(original, flipped, key.public_key()).code(), absl::StatusCode::kUnauthenticated);
}

TEST(RebuildStatementTest, InvalidStatements) {
  RebuildStatement negative = Statement(Kind::kLease);
  negative.time_unix = -1;
  ExpectInvalid(negative, "negative");

  ExpectInvalid(Statement(Kind::kBuilt, "fine"), "only a failed statement carries a detail");
  ExpectInvalid(Statement(Kind::kLease, " "), "only a failed statement carries a detail");
  ExpectInvalid(Statement(Kind::kFailed, std::string(kMaxRebuildDetailBytes + 1, 'x')), "1001 bytes; at most 1000");
  ExpectInvalid(Statement(Kind::kFailed, "line one\nline two"), "the detail");
  ExpectInvalid(Statement(Kind::kFailed, "carriage\rreturn"), "the detail");
  ExpectInvalid(Statement(Kind::kFailed, "bell\a"), "the detail");
  ExpectInvalid(Statement(Kind::kFailed, "bad \xff utf-8"), "the detail");
  ExpectInvalid(Statement(Kind::kFailed, "reorder \u202e txet"), "the detail");
  // A detail forged to look like the next line of a statement is refused too.
  ExpectInvalid(Statement(Kind::kFailed, "x\nattest/rebuild/v1"), "the detail");
}

TEST(RebuildStatementTest, DetailAtTheLimitWithUnicodeIsValid) {
  EXPECT_TRUE(ValidateRebuildStatement(Statement(Kind::kFailed, std::string(kMaxRebuildDetailBytes, 'x'))).ok());
  EXPECT_TRUE(ValidateRebuildStatement(Statement(Kind::kFailed, "Größe: 3 × zu groß")).ok());
  RebuildStatement zero = Statement(Kind::kRelease);
  zero.time_unix = 0;
  EXPECT_TRUE(ValidateRebuildStatement(zero).ok());
}

}  // namespace
}  // namespace attest::consensus
