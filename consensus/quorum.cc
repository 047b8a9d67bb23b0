#include "consensus/quorum.h"

#include <algorithm>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

// Evaluates the members of thresholds against one set of operators. Each group's verdict is kept, so
// a group named in several thresholds (or reached along several paths) is evaluated once: a policy of
// many shared groups stays linear in its size.
class Evaluator final {
 public:
  Evaluator(const Policy& policy, std::span<const std::string> operators)
      : policy_(policy),
        operators_(operators),
        sorted_(std::is_sorted(operators.begin(), operators.end())) {}

  bool MemberSatisfied(std::string_view name) {
    if (HasOperator(name)) return true;
    const Group* group = policy_.FindGroup(name);
    // A name that is neither a signing operator nor a group is an operator that did not sign (or,
    // against the contract, a name the policy does not know): either way it is not satisfied.
    if (group == nullptr) return false;
    return GroupSatisfied(*group);
  }

  bool GroupSatisfied(const Group& group) {
    if (auto it = memo_.find(&group); it != memo_.end()) return it->second;
    // Groups are acyclic (Policy::Create refuses cycles); marking the group unsatisfied before
    // descending still bounds the recursion should a policy ever violate that.
    memo_[&group] = false;
    const bool satisfied = Satisfied(group.threshold);
    memo_[&group] = satisfied;
    return satisfied;
  }

  int SatisfiedCount(const Threshold& threshold) {
    int count = 0;
    for (const std::string& member : threshold.members) count += MemberSatisfied(member) ? 1 : 0;
    return count;
  }

  bool Satisfied(const Threshold& threshold) {
    return threshold.threshold > 0 && SatisfiedCount(threshold) >= threshold.threshold;
  }

 private:
  bool HasOperator(std::string_view name) const {
    // The contract says sorted; an unsorted set still gives the right answer, only slower.
    if (sorted_) return std::binary_search(operators_.begin(), operators_.end(), name);
    return std::find(operators_.begin(), operators_.end(), name) != operators_.end();
  }

  const Policy& policy_;
  std::span<const std::string> operators_;
  bool sorted_;
  absl::flat_hash_map<const Group*, bool> memo_;
};

template <typename Names>
std::string Join(const Names& names, std::string_view separator) {
  std::string out;
  for (const auto& name : names) {
    if (!out.empty()) out += separator;
    out += name;
  }
  return out;
}

std::string Parenthesised(const std::vector<std::string_view>& names) {
  if (names.empty()) return "";
  return Cat(" (", Join(names, ", "), ")");
}

std::string_view Plural(int n, std::string_view singular, std::string_view plural) {
  return n == 1 ? singular : plural;
}

// One clause per unsatisfied threshold, outermost first (breadth first, members in the order the
// policy lists them), each group's clause once:
//   [<group>: ]<satisfied> of <threshold> needed[ (<satisfied members>)][: <op>, <op> missing]
// Unsatisfied member groups are not listed as missing: their own clause names them and says why.
std::string ExplainUnsatisfied(const Policy& policy, const Threshold& top, Evaluator& evaluator) {
  struct Pending {
    std::string_view name;  // "" for the quorum itself
    const Threshold* threshold;
  };
  std::vector<std::string> clauses;
  std::deque<Pending> queue = {{"", &top}};
  absl::flat_hash_set<const Group*> queued;
  while (!queue.empty()) {
    const Pending current = queue.front();
    queue.pop_front();
    std::vector<std::string_view> present;
    std::vector<std::string_view> missing_operators;
    for (const std::string& member : current.threshold->members) {
      if (evaluator.MemberSatisfied(member)) {
        present.push_back(member);
      } else if (const Group* group = policy.FindGroup(member); group != nullptr) {
        if (queued.insert(group).second) queue.push_back({group->name, &group->threshold});
      } else {
        missing_operators.push_back(member);
      }
    }
    std::string clause = current.name.empty() ? "" : Cat(current.name, ": ");
    clause += Cat(present.size(), " of ", current.threshold->threshold, " needed", Parenthesised(present));
    if (!missing_operators.empty()) clause += Cat(": ", Join(missing_operators, ", "), " missing");
    clauses.push_back(std::move(clause));
  }
  return Join(clauses, "; ");
}

}  // namespace

QuorumReport EvaluateQuorum(const Policy& policy, const Quorum& quorum, std::span<const std::string> operators) {
  QuorumReport report;
  if (!quorum.of.has_value()) {
    if (quorum.any <= 0) {
      // Policy::Create never builds such a quorum; a quorum nobody can name must not confirm.
      report.explanation = "the quorum is empty (neither a number of operators nor a threshold)";
      return report;
    }
    const int have = static_cast<int>(operators.size());
    const std::vector<std::string_view> names(operators.begin(), operators.end());
    report.satisfied = have >= quorum.any;
    report.explanation = report.satisfied
                             ? Cat(have, " ", Plural(have, "operator", "operators"), Parenthesised(names))
                             : Cat(have, " of ", quorum.any, " operators needed", Parenthesised(names));
    return report;
  }

  Evaluator evaluator(policy, operators);
  const Threshold& threshold = *quorum.of;
  report.satisfied = evaluator.Satisfied(threshold);
  if (!report.satisfied) {
    report.explanation = ExplainUnsatisfied(policy, threshold, evaluator);
    return report;
  }
  // Satisfied: which members carried it, not how each of them was satisfied (a group's own
  // members are one DescribeQuorum away).
  std::vector<std::string_view> present;
  for (const std::string& member : threshold.members) {
    if (evaluator.MemberSatisfied(member)) present.push_back(member);
  }
  report.explanation = Cat(present.size(), " of ", threshold.members.size(), " members", Parenthesised(present));
  return report;
}

std::string DescribeQuorum(const Policy& policy, const Quorum& quorum) {
  if (!quorum.of.has_value()) {
    if (quorum.any <= 0) return "no quorum";
    return Cat("any ", quorum.any, " ", Plural(quorum.any, "operator", "operators"));
  }
  // The quorum, then every group it reaches, breadth first, each once: a group shared by several
  // thresholds is spelled out a single time.
  std::vector<std::string> parts;
  std::deque<std::pair<std::string_view, const Threshold*>> queue = {{"", &*quorum.of}};
  absl::flat_hash_set<const Group*> queued;
  while (!queue.empty()) {
    const auto [name, threshold] = queue.front();
    queue.pop_front();
    std::string part = name.empty() ? "" : Cat(name, " = ");
    part += Cat(threshold->threshold, " of (", Join(threshold->members, ", "), ")");
    parts.push_back(std::move(part));
    for (const std::string& member : threshold->members) {
      const Group* group = policy.FindGroup(member);
      if (group != nullptr && queued.insert(group).second) queue.emplace_back(group->name, &group->threshold);
    }
  }
  return Join(parts, "; ");
}

}  // namespace attest::consensus
