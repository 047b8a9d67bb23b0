#include "server/closure_query.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "consensus/closure.h"
#include "consensus/text.h"
#include "proto/convert.h"

namespace attest::server {

using consensus::Cat;

absl::StatusOr<ClosureAnswer> ClosureQuery::Answer(const consensus::StorePath& root) const {
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<ClosureAnswer> answer = Walk(root);
    if (!answer.ok()) return answer.status();
    const bool one_policy = std::all_of(answer->members.begin(), answer->members.end(), [&](const PathStatus& m) {
      return m.policy_hash == answer->members.front().policy_hash;
    });
    if (one_policy) return answer;
  }
  return absl::UnavailableError(Cat("the policy changed three times while the closure of ", root.full(),
                                    " was read; ask again"));
}

absl::StatusOr<v1::ClosureResponse> ClosureQuery::Run(const v1::ClosureRequest& request) const {
  absl::StatusOr<consensus::StorePath> root = consensus::StorePath::Parse(request.store_path());
  if (!root.ok()) return absl::InvalidArgumentError(Cat("store_path: ", root.status().message()));
  absl::StatusOr<ClosureAnswer> answer = Answer(*root);
  if (!answer.ok()) return answer.status();
  v1::ClosureResponse response;
  response.set_store_path(root->full());
  response.set_verdict(proto::ToProto(answer->verdict));
  if (!answer->members.empty()) {
    response.set_policy_hash(answer->members.front().policy_hash);
    response.set_policy_version(answer->members.front().policy_version);
  }
  for (size_t i : answer->not_confirmed) response.add_not_confirmed(answer->members[i].path.full());
  const size_t members = answer->members.size();
  for (PathStatus& member : answer->members) PathStatusToProto(std::move(member), *response.add_members());
  const size_t bytes = response.ByteSizeLong();
  const int64_t limit = status_->options().max_answer_bytes;
  if (static_cast<int64_t>(bytes) > limit) {
    return absl::ResourceExhaustedError(
        Cat("the answer about the closure of ", root->full(), " (", members, " paths) would be ", bytes,
            " bytes, more than this node sends at once (", limit,
            "); ask about its members in smaller parts (attest status without --closure)"));
  }
  return response;
}

absl::StatusOr<ClosureAnswer> ClosureQuery::Walk(const consensus::StorePath& root) const {
  ClosureAnswer answer{.root = root, .verdict = consensus::Verdict::kUnknown, .members = {}, .not_confirmed = {}};
  absl::flat_hash_set<consensus::StorePath> seen = {root};
  std::vector<consensus::StorePath> level = {root};
  while (!level.empty()) {
    absl::StatusOr<std::vector<PathStatus>> statuses = status_->Answer(level);
    if (!statuses.ok()) return statuses.status();
    std::vector<consensus::StorePath> next;
    for (PathStatus& status : *statuses) {
      absl::StatusOr<std::vector<consensus::StorePath>> references =
          consensus::AttestedReferences(status.path, status.result);
      if (!references.ok()) return absl::DataLossError(references.status().message());
      for (consensus::StorePath& reference : *references) {
        if (seen.insert(reference).second) next.push_back(std::move(reference));
      }
      answer.members.push_back(std::move(status));
    }
    if (seen.size() > max_members_) {
      return absl::ResourceExhaustedError(
          Cat("the closure of ", root.full(), " has more than ", max_members_, " paths (", seen.size(),
              " found so far); ask about a smaller root, or raise the node's status max_paths"));
    }
    // Sorted, so the answer's order does not depend on the order references were found in.
    std::sort(next.begin(), next.end());
    level = std::move(next);
  }
  std::vector<consensus::Verdict> verdicts;
  verdicts.reserve(answer.members.size());
  for (size_t i = 0; i < answer.members.size(); ++i) {
    verdicts.push_back(answer.members[i].result.verdict);
    if (verdicts.back() != consensus::Verdict::kConfirmed) answer.not_confirmed.push_back(i);
  }
  answer.verdict = consensus::ClosureVerdict(verdicts);
  return answer;
}

}  // namespace attest::server
