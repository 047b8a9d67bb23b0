// Quorum evaluation: whether the operators behind one fingerprint satisfy a quorum (policy.h), and a
// sentence saying why not. A pure function of the policy and a set of operator names; thread-safe.
//
// Operators, never keys: the caller passes the operators whose counted builders signed the
// fingerprint (the tally's FingerprintTally::operators). A group is satisfied when at least its
// threshold of members are; a member operator when it is in the set. Groups are acyclic (Policy::Create
// refuses cycles), so evaluation terminates; it is memoised per group, so a group used in several
// places is evaluated once.
#ifndef ATTEST_CONSENSUS_QUORUM_H_
#define ATTEST_CONSENSUS_QUORUM_H_

#include <span>
#include <string>
#include <string_view>

#include "consensus/policy.h"

namespace attest::consensus {

struct QuorumReport final {
  bool satisfied = false;
  // In words, for people and for `attest verify`. Satisfied: "2 of 2 members (nixos-hydra,
  // independent)" or "3 operators (a, b, c)". Not satisfied: one clause per unsatisfied threshold,
  // outermost first, each group once, "[group: ]<satisfied> of <threshold> needed[ (<satisfied
  // members>)][: <operators> missing]", e.g. "0 of 2 needed: nixos-hydra missing; independent: 1 of 2
  // needed (org-b): org-c, org-d missing". The flat form: "1 of 2 operators needed (org-b)".
  std::string explanation;
};

// `operators` sorted and unique (as FingerprintTally::operators is). `quorum` must belong to `policy`
// (its default_quorum() or a rule's), so every member name resolves.
QuorumReport EvaluateQuorum(const Policy& policy, const Quorum& quorum, std::span<const std::string> operators);

// The quorum in words, as pages and the CLI show it: "any 2 operators", or "2 of (nixos-hydra,
// independent)" with each group expanded once: "independent = 2 of (org-b, org-c, org-d)".
std::string DescribeQuorum(const Policy& policy, const Quorum& quorum);

// The glob match rules use: `*` any run of characters (also none), `?` one character, anything else
// itself. Linear in practice (iterative with one backtrack point).
bool GlobMatches(std::string_view glob, std::string_view name);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_QUORUM_H_
