#include "server/rebuild_handler.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/keys.h"
#include "consensus/rebuild_statement.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::server {
namespace {

using absl::StrCat;
using consensus::RebuildStatementKind;

v1::RebuildLease ToProto(const Lease& lease) {
  v1::RebuildLease out;
  out.set_store_path(lease.path.full());
  out.set_operator_(lease.operator_name);
  out.set_builder(lease.builder);
  out.set_expires_unix(absl::ToUnixSeconds(lease.expires));
  return out;
}

v1::DerivationFile ToProto(const storage::StoredDerivation& drv) {
  v1::DerivationFile out;
  out.set_store_path(drv.path.full());
  out.set_contents(drv.contents);
  return out;
}

}  // namespace

v1::WantedPath ToProto(const WantedItem& item) {
  v1::WantedPath out;
  out.set_store_path(item.path.full());
  out.set_verdict(proto::ToProto(item.verdict));
  out.set_demand(item.demand);
  out.set_last_requested_unix(absl::ToUnixSeconds(item.last_requested));
  out.set_operators_needed(item.operators_needed);
  for (const std::string& op : item.operators) out.add_operators(op);
  for (const WantedDeriver& deriver : item.derivers) {
    v1::WantedDeriver* d = out.add_derivers();
    d->set_drv_path(deriver.drv_path.full());
    d->set_output_name(deriver.output_name);
    d->set_available(deriver.available);
  }
  out.set_dispute_id(item.dispute_id);
  for (const Lease& lease : item.leases) *out.add_leases() = ToProto(lease);
  return out;
}

struct RebuildHandler::Verified final {
  consensus::RebuildStatement statement;
  std::string operator_name;
  std::string builder;
};

RebuildHandler::RebuildHandler(const PolicyBook& policy, const RebuildQueue* queue, DerivationIntake* intake,
                               RebuildBook* book, Clock clock)
    : policy_(policy), queue_(queue), intake_(intake), book_(book), clock_(std::move(clock)) {}

absl::StatusOr<v1::WantedResponse> RebuildHandler::Wanted(const v1::WantedRequest& request) const {
  absl::StatusOr<WantedList> list =
      queue_->Wanted(WantedQuery{.operator_name = request.operator_(), .limit = request.limit()});
  if (!list.ok()) return list.status();
  v1::WantedResponse response;
  for (const WantedItem& item : list->wanted) *response.add_wanted() = ToProto(item);
  for (const WantedItem& item : list->disputed) *response.add_disputed() = ToProto(item);
  response.set_demand_paths(static_cast<int64_t>(list->demand_paths));
  response.set_quorum(list->quorum);
  return response;
}

absl::StatusOr<v1::SubmitDerivationsResponse> RebuildHandler::SubmitDerivations(
    const v1::SubmitDerivationsRequest& request) {
  std::vector<DerivationUpload> uploads;
  uploads.reserve(request.derivations_size());
  for (const v1::DerivationFile& file : request.derivations()) {
    uploads.push_back(DerivationUpload{.store_path = file.store_path(), .contents = file.contents()});
  }
  absl::StatusOr<std::vector<DerivationVerdict>> verdicts = intake_->Submit(uploads);
  if (!verdicts.ok()) return verdicts.status();
  v1::SubmitDerivationsResponse response;
  for (const DerivationVerdict& verdict : *verdicts) {
    v1::DerivationResult* result = response.add_results();
    switch (verdict.outcome) {
      case DerivationOutcome::kStored:
        result->set_outcome(v1::DerivationResult::STORED);
        break;
      case DerivationOutcome::kAlreadyPresent:
        result->set_outcome(v1::DerivationResult::ALREADY_PRESENT);
        break;
      case DerivationOutcome::kRejected:
        result->set_outcome(v1::DerivationResult::REJECTED);
        result->set_code(static_cast<int>(verdict.reason.code()));
        result->set_message(std::string(consensus::StdView(verdict.reason.message())));
        break;
    }
  }
  return response;
}

absl::StatusOr<v1::MissingDerivationsResponse> RebuildHandler::MissingDerivations(
    const v1::MissingDerivationsRequest& request) {
  std::vector<std::string> paths(request.store_paths().begin(), request.store_paths().end());
  absl::StatusOr<std::vector<std::string>> missing = intake_->Missing(paths);
  if (!missing.ok()) return missing.status();
  v1::MissingDerivationsResponse response;
  for (std::string& path : *missing) response.add_missing(std::move(path));
  return response;
}

absl::StatusOr<v1::GetDerivationsResponse> RebuildHandler::GetDerivations(const v1::GetDerivationsRequest& request) {
  std::vector<std::string> paths(request.store_paths().begin(), request.store_paths().end());
  absl::StatusOr<DerivationClosure> closure = intake_->Get(paths, request.closure());
  if (!closure.ok()) return closure.status();
  v1::GetDerivationsResponse response;
  for (const storage::StoredDerivation& drv : closure->derivations) *response.add_derivations() = ToProto(drv);
  for (std::string& path : closure->missing) response.add_missing(std::move(path));
  return response;
}

absl::StatusOr<RebuildHandler::Verified> RebuildHandler::Verify(const v1::RebuildStatement& request) const {
  absl::StatusOr<RebuildStatementKind> kind = consensus::ParseRebuildStatementKind(request.kind());
  if (!kind.ok()) return kind.status();
  absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(request.store_path());
  if (!path.ok()) return path.status();
  consensus::RebuildStatement statement{
      .kind = *kind, .path = *path, .time_unix = request.time_unix(), .detail = request.detail()};
  if (absl::Status valid = consensus::ValidateRebuildStatement(statement); !valid.ok()) return valid;
  absl::StatusOr<consensus::Signature> signature = consensus::Signature::Parse(request.signature());
  if (!signature.ok()) return absl::InvalidArgumentError(StrCat("signature: ", signature.status().message()));
  // Held until the names are copied out: `key` and `operator_name` point into it.
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  const consensus::PublicKey* key = policy->FindBuilder(signature->key_name);
  const std::string* operator_name = policy->OperatorOf(signature->key_name);
  if (key == nullptr || operator_name == nullptr) {
    return absl::PermissionDeniedError(
        StrCat("key ", signature->key_name,
               " is not a builder key of this node's policy: rebuilds by it would not count (is the builder's "
               "key the one its operator lists in the policy?)"));
  }
  if (absl::Status verified = consensus::VerifyRebuildStatement(statement, *signature, *key); !verified.ok()) {
    return verified;
  }
  const absl::Duration skew = absl::FromUnixSeconds(statement.time_unix) - clock_();
  if (absl::AbsDuration(skew) > kStatementClockSkew) {
    return absl::FailedPreconditionError(
        StrCat("the statement's time is ", absl::FormatDuration(skew),
               " away from the node's clock (at most ", absl::FormatDuration(kStatementClockSkew),
               " are accepted): check the builder's clock"));
  }
  return Verified{.statement = std::move(statement), .operator_name = *operator_name, .builder = key->name()};
}

absl::StatusOr<v1::AcquireLeaseResponse> RebuildHandler::AcquireLease(const v1::RebuildStatement& request) {
  absl::StatusOr<Verified> verified = Verify(request);
  if (!verified.ok()) return verified.status();
  if (verified->statement.kind != RebuildStatementKind::kLease) {
    return absl::InvalidArgumentError(
        StrCat("AcquireLease takes a \"lease\" statement, not \"", request.kind(), "\" (use ReportRebuild)"));
  }
  const consensus::StorePath& path = verified->statement.path;
  absl::StatusOr<consensus::Verdict> verdict = queue_->VerdictOf(path);
  if (!verdict.ok()) return verdict.status();
  if (*verdict == consensus::Verdict::kConfirmed) {
    return absl::FailedPreconditionError(StrCat(path.full(), " is CONFIRMED already: nothing to rebuild"));
  }
  absl::StatusOr<bool> buildable = queue_->HasDerivationFor(path);
  if (!buildable.ok()) return buildable.status();
  if (!*buildable) {
    return absl::FailedPreconditionError(StrCat("this node holds no derivation of ", path.full(),
                                                " with its inputs: a rebuilder would have nothing to build from"));
  }
  absl::StatusOr<Lease> lease = book_->Acquire(path, verified->operator_name, verified->builder, clock_());
  if (!lease.ok()) return lease.status();
  v1::AcquireLeaseResponse response;
  *response.mutable_lease() = ToProto(*lease);
  return response;
}

absl::StatusOr<v1::ReportRebuildResponse> RebuildHandler::ReportRebuild(const v1::RebuildStatement& request) {
  absl::StatusOr<Verified> verified = Verify(request);
  if (!verified.ok()) return verified.status();
  const consensus::RebuildStatement& statement = verified->statement;
  switch (statement.kind) {
    case RebuildStatementKind::kLease:
      return absl::InvalidArgumentError("ReportRebuild takes \"release\", \"built\" or \"failed\" (use AcquireLease)");
    case RebuildStatementKind::kRelease:
      book_->Release(statement.path, verified->operator_name, verified->builder);
      break;
    case RebuildStatementKind::kBuilt:
    case RebuildStatementKind::kFailed:
      book_->Report(RebuildResult{.path = statement.path,
                                  .operator_name = verified->operator_name,
                                  .builder = verified->builder,
                                  .built = statement.kind == RebuildStatementKind::kBuilt,
                                  .detail = statement.detail,
                                  .reported = clock_()});
      break;
  }
  return v1::ReportRebuildResponse();
}

}  // namespace attest::server
