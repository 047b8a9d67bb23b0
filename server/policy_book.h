// PolicyBook: the policy a node decides under now, and the signed chain that led to it
// (consensus/policy_update.h, docs/policy.md). Every component that decides or shows something asks
// it for the current policy once per request (`current()`), so an adopted update changes every later
// verdict at once, without a restart; a request already under way finishes under the policy it began
// with (it holds its snapshot).
//
// At start (Open) the book takes the policy file the node was started with and the LAST segment of the
// chain the store holds (storage/policy_store.h: the links after the last one whose parent is not the
// previous link's hash, with the policy that segment's first link continues). Older segments are
// history: they decide nothing and are not compared with the file. When the file is that segment's
// head or an ancestor of it (its starting policy included), the head stays current (the node says so:
// a restart with an older file never goes back); when the file is not in the last segment (a new
// federation policy set by the operator, as before updates existed, or a file of an older segment),
// the file is current and the next adopted link starts a new segment from it.
//
// The book's chain (IsCurrentOrAncestor, LinksSince) is the current segment: the policy it starts
// from (the file that segment continues), then its links up to the current policy.
//
// Thread-safe. Listeners run on the adopting thread after the new policy is current, in the order
// they were added; they must be quick (clear a cache, wake a worker).
#ifndef ATTEST_SERVER_POLICY_BOOK_H_
#define ATTEST_SERVER_POLICY_BOOK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
#include "storage/policy_store.h"

namespace attest::server {

class PolicyBook final {
 public:
  // A book fixed to one policy, with no store: updates are refused (FAILED_PRECONDITION). For tests and
  // tools that tally under a given policy.
  explicit PolicyBook(consensus::Policy policy);

  // The node's book. `notice` (may be null) receives one line for the node's log when the stored chain
  // overrides the file ("policy file <hash> (version 1) is older than the adopted policy <hash>
  // (version 3); deciding under version 3") or when the file is not in the last segment ("... is not in
  // the current policy chain (...); deciding under the file and starting a new segment of the chain
  // from it, ..."). Errors: the store's, or DATA_LOSS when a link of the last segment no longer
  // verifies (its TOML does not parse to its hash).
  static absl::StatusOr<std::unique_ptr<PolicyBook>> Open(consensus::Policy file_policy, storage::PolicyStore* store,
                                                          std::string* notice);

  // The policy in force now. The snapshot stays valid after later updates.
  std::shared_ptr<const consensus::Policy> current() const;

  // Verifies `link` against the current policy (consensus::VerifyPolicyLink, with `received_unix`),
  // stores it (PolicyStore::PutPolicyLink with `origin`; "" logs it) and makes it current, then runs
  // the listeners. Errors are VerifyPolicyLink's and the store's; nothing changes on error.
  struct Adopted final {
    std::shared_ptr<const consensus::Policy> policy;
    std::shared_ptr<const consensus::Policy> previous;
    std::vector<std::string> counted_approvals;  // maintainer key names
  };
  absl::StatusOr<Adopted> Adopt(const consensus::PolicyLink& link, std::string_view origin, int64_t received_unix);

  // Whether `hash` is the current policy or one of its ancestors in the current segment (the policy the
  // segment starts from included; older segments not): a peer under such a policy is behind, not
  // unrelated.
  bool IsCurrentOrAncestor(std::string_view hash) const;

  // The links after the policy with hash `since` up to the current one, oldest first, for a peer that
  // is behind; NOT_FOUND when `since` is not in the current segment (IsCurrentOrAncestor is false).
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> LinksSince(std::string_view since) const;

  // The link that made the current policy current (origin, time, approvals), or nullptr for the file.
  std::shared_ptr<const storage::StoredPolicyLink> current_link() const;
  // The maintainer key names whose approvals of current_link() counted under the policy it replaced
  // (sorted); empty for the file, or when that policy is not known to this node any more.
  std::vector<std::string> current_counted_approvals() const;

  void AddListener(std::function<void(const consensus::Policy& now, const consensus::Policy& before)> listener);

 private:
  PolicyBook() = default;

  storage::PolicyStore* store_ = nullptr;
  mutable absl::Mutex mu_;
  std::shared_ptr<const consensus::Policy> current_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const storage::StoredPolicyLink> current_link_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> current_counted_ ABSL_GUARDED_BY(mu_);
  // Hashes of the current segment, from the policy it starts from to the current policy, oldest first;
  // links_ are its links (hashes_[i + 1] is links_[i]'s hash).
  std::vector<std::string> hashes_ ABSL_GUARDED_BY(mu_);
  std::vector<storage::StoredPolicyLink> links_ ABSL_GUARDED_BY(mu_);
  // Serialises Adopt (verification, store, swap, listeners), so updates apply one at a time in order.
  absl::Mutex adopt_mu_;
  std::vector<std::function<void(const consensus::Policy&, const consensus::Policy&)>> listeners_
      ABSL_GUARDED_BY(adopt_mu_);
};

// Logs an adoption as one summary line ("policy: adopted version 3 sha256:... (was version 2 sha256:...),
// from <from>, approved by a, b") followed by DiffPolicies' lines, so the node's log says what changed.
// `from` is "a submission" or "peer <name>".
void LogPolicyAdoption(const PolicyBook::Adopted& adopted, std::string_view from);

}  // namespace attest::server

#endif  // ATTEST_SERVER_POLICY_BOOK_H_
