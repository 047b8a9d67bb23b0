#include "consensus/rebuild_statement.h"

#include "consensus/display_text.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kRebuildStatementHeader = "attest/rebuild/v1";

}  // namespace

std::string_view RebuildStatementKindName(RebuildStatementKind kind) {
  switch (kind) {
    case RebuildStatementKind::kLease:
      return "lease";
    case RebuildStatementKind::kRelease:
      return "release";
    case RebuildStatementKind::kBuilt:
      return "built";
    case RebuildStatementKind::kFailed:
      return "failed";
  }
  return "unknown";
}

absl::StatusOr<RebuildStatementKind> ParseRebuildStatementKind(std::string_view name) {
  for (const RebuildStatementKind kind : {RebuildStatementKind::kLease, RebuildStatementKind::kRelease,
                                          RebuildStatementKind::kBuilt, RebuildStatementKind::kFailed}) {
    if (name == RebuildStatementKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(Cat("rebuild statement kind ", QuoteForError(name),
                                        " is not one of lease, release, built, failed"));
}

std::string RebuildStatementText(const RebuildStatement& statement) {
  return Cat(kRebuildStatementHeader, "\n", RebuildStatementKindName(statement.kind), "\n", statement.path.full(),
             "\n", statement.time_unix, "\n", statement.detail, "\n");
}

absl::Status ValidateRebuildStatement(const RebuildStatement& statement) {
  const std::string_view kind = RebuildStatementKindName(statement.kind);
  if (kind == "unknown") {
    return absl::InvalidArgumentError(Cat("rebuild statement for ", statement.path.full(), ": kind ",
                                          static_cast<int>(statement.kind), " is not one of lease, release, "
                                                                            "built, failed"));
  }
  if (statement.time_unix < 0) {
    return absl::InvalidArgumentError(Cat("rebuild statement (", kind, " ", statement.path.full(), "): time ",
                                          statement.time_unix, " is negative; give Unix seconds"));
  }
  if (statement.kind != RebuildStatementKind::kFailed) {
    if (!statement.detail.empty()) {
      return absl::InvalidArgumentError(Cat("rebuild statement (", kind, " ", statement.path.full(),
                                            "): only a failed statement carries a detail; leave it empty"));
    }
    return absl::OkStatus();
  }
  if (statement.detail.size() > kMaxRebuildDetailBytes) {
    return absl::InvalidArgumentError(Cat("rebuild statement (failed ", statement.path.full(), "): the detail is ",
                                          statement.detail.size(), " bytes; at most ", kMaxRebuildDetailBytes,
                                          " (give the first line of the error)"));
  }
  // One line of displayable text: the signed text ends the detail at its newline, and nodes show it.
  if (absl::Status status = ValidateDisplayText(statement.detail, TextShape::kLine, "the detail");
      !status.ok()) {
    return absl::InvalidArgumentError(
        Cat("rebuild statement (failed ", statement.path.full(), "): ", status.message()));
  }
  return absl::OkStatus();
}

Signature SignRebuildStatement(const RebuildStatement& statement, const SecretKey& key) {
  return key.Sign(RebuildStatementText(statement));
}

absl::Status VerifyRebuildStatement(const RebuildStatement& statement, const Signature& signature,
                                    const PublicKey& key) {
  if (absl::Status status = ValidateRebuildStatement(statement); !status.ok()) return status;
  if (absl::Status status = key.Verify(RebuildStatementText(statement), signature); !status.ok()) {
    return absl::UnauthenticatedError(Cat("rebuild statement (", RebuildStatementKindName(statement.kind), " ",
                                          statement.path.full(), "): ", status.message()));
  }
  return absl::OkStatus();
}

}  // namespace attest::consensus
