#include "server/closure_query.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "consensus/closure.h"
#include "consensus/text.h"

namespace attest::server {

using consensus::Cat;

absl::StatusOr<ClosureAnswer> ClosureQuery::Answer(const consensus::StorePath& root) const {
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
