#include "server/policy_book.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "consensus/text.h"
#include "server/log.h"

namespace attest::server {

using consensus::Cat;
using consensus::StdView;

PolicyBook::PolicyBook(consensus::Policy policy) {
  hashes_.push_back(policy.Hash());
  current_ = std::make_shared<const consensus::Policy>(std::move(policy));
}

absl::StatusOr<std::unique_ptr<PolicyBook>> PolicyBook::Open(consensus::Policy file_policy,
                                                             storage::PolicyStore* store, std::string* notice) {
  auto book = std::unique_ptr<PolicyBook>(new PolicyBook());
  book->store_ = store;
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> chain =
      store == nullptr ? std::vector<storage::StoredPolicyLink>{} : store->PolicyChain();
  if (!chain.ok()) return chain.status();

  const std::string file_hash = file_policy.Hash();
  const std::string file_text = Cat("policy file ", file_hash, " (version ", file_policy.version(), ")");
  auto start_from_file = [&] {
    absl::MutexLock lock(&book->mu_);
    book->hashes_ = {file_hash};
    book->current_ = std::make_shared<const consensus::Policy>(std::move(file_policy));
  };
  if (chain->empty()) {
    start_from_file();
    return book;
  }

  // The node decides under the last segment of the chain only (storage/policy_store.h): the links
  // from the last one whose parent is not the previous link's hash. Older segments are history, left
  // behind when an operator restarted the node with a policy file the chain did not hold.
  size_t segment_start = chain->size() - 1;
  while (segment_start > 0 && (*chain)[segment_start].parent == (*chain)[segment_start - 1].hash) --segment_start;
  std::vector<storage::StoredPolicyLink> segment(chain->begin() + static_cast<std::ptrdiff_t>(segment_start),
                                                 chain->end());

  // The segment is re-read from the TOML each link carries, and each must still parse to the hash it
  // was stored under: a link that does not (a damaged row, or a parser that changed meaning) would make
  // the node decide under a policy nobody approved. (Older segments decide nothing.)
  std::vector<std::string> hashes{segment.front().parent};
  std::shared_ptr<const consensus::Policy> head;
  std::shared_ptr<const consensus::Policy> before_head;
  for (const storage::StoredPolicyLink& link : segment) {
    absl::StatusOr<consensus::Policy> parsed =
        consensus::Policy::ParseToml(link.toml, Cat("the adopted policy version ", link.version));
    if (!parsed.ok()) {
      return absl::DataLossError(Cat("the stored policy chain holds version ", link.version, " (", link.hash,
                                     ") whose text no longer parses: ", StdView(parsed.status().message()),
                                     " (restore the database from a backup or a peer)"));
    }
    if (parsed->Hash() != link.hash) {
      return absl::DataLossError(Cat("the stored policy chain holds version ", link.version, " under hash ",
                                     link.hash, " but its text hashes to ", parsed->Hash(),
                                     " (restore the database from a backup or a peer)"));
    }
    before_head = std::move(head);
    head = std::make_shared<const consensus::Policy>(*std::move(parsed));
    hashes.push_back(link.hash);
  }
  if (std::find(hashes.begin(), hashes.end(), file_hash) == hashes.end()) {
    // An operator-set policy that no link of the current segment leads to: the federation's policy was
    // replaced by hand, as before updates existed. The file decides and the next adopted link starts a
    // new segment from it; the stored links stay as history (the log holds them too).
    if (notice != nullptr) {
      const bool in_history =
          std::any_of(chain->begin(), chain->begin() + static_cast<std::ptrdiff_t>(segment_start),
                      [&](const storage::StoredPolicyLink& link) {
                        return link.hash == file_hash || link.parent == file_hash;
                      });
      *notice = Cat(file_text, " is not in the current policy chain (from ", hashes.front(), " to ", hashes.back(),
                    ", version ", head->version(), in_history ? "; the file is in an older, abandoned part of it" : "",
                    "); deciding under the file and starting a new segment of the chain from it, the stored "
                    "links kept as history");
    }
    start_from_file();
    return book;
  }

  // The counted approvals of the head link need the policy it replaced: the previous link's, or the
  // file when the segment has one link and starts from the file.
  if (before_head == nullptr && segment.size() == 1 && file_hash == segment.front().parent) {
    before_head = std::make_shared<const consensus::Policy>(file_policy);
  }
  std::vector<std::string> counted;
  if (before_head != nullptr) {
    counted = consensus::CountedApprovals(
        *before_head, consensus::PolicyLink{.toml = segment.back().toml, .approvals = segment.back().approvals},
        segment.back().received_unix);
  }
  if (notice != nullptr && file_hash != hashes.back()) {
    *notice = Cat(file_text, " is older than the adopted policy ", hashes.back(), " (version ", head->version(),
                  "); deciding under version ", head->version());
  }
  absl::MutexLock lock(&book->mu_);
  book->hashes_ = std::move(hashes);
  book->current_ = std::move(head);
  book->current_link_ = std::make_shared<const storage::StoredPolicyLink>(segment.back());
  book->current_counted_ = std::move(counted);
  book->links_ = std::move(segment);
  return book;
}

std::shared_ptr<const consensus::Policy> PolicyBook::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::StatusOr<PolicyBook::Adopted> PolicyBook::Adopt(const consensus::PolicyLink& link, std::string_view origin,
                                                      int64_t received_unix) {
  absl::MutexLock adopting(&adopt_mu_);
  if (store_ == nullptr) {
    return absl::FailedPreconditionError(
        "this policy book is fixed to one policy and takes no updates (only a node's book adopts policies)");
  }
  const std::shared_ptr<const consensus::Policy> previous = current();
  absl::StatusOr<consensus::Policy> successor = consensus::VerifyPolicyLink(*previous, link, received_unix);
  if (!successor.ok()) return successor.status();
  std::vector<std::string> counted = consensus::CountedApprovals(*previous, link, received_unix);

  storage::StoredPolicyLink stored{.hash = successor->Hash(),
                                   .parent = successor->parent(),
                                   .version = successor->version(),
                                   .toml = link.toml,
                                   .approvals = link.approvals,
                                   .received_unix = received_unix,
                                   .origin = std::string(origin)};
  // Durable before it decides anything: a node that crashed right after would otherwise come back under
  // the older policy while its peers already moved on.
  if (absl::Status put = store_->PutPolicyLink(stored); !put.ok()) return put;

  auto adopted = std::make_shared<const consensus::Policy>(*std::move(successor));
  {
    absl::MutexLock lock(&mu_);
    current_ = adopted;
    current_link_ = std::make_shared<const storage::StoredPolicyLink>(stored);
    current_counted_ = counted;
    hashes_.push_back(stored.hash);
    links_.push_back(std::move(stored));
  }
  for (const auto& listener : listeners_) listener(*adopted, *previous);
  return Adopted{.policy = adopted, .previous = previous, .counted_approvals = std::move(counted)};
}

bool PolicyBook::IsCurrentOrAncestor(std::string_view hash) const {
  absl::MutexLock lock(&mu_);
  return std::find(hashes_.begin(), hashes_.end(), hash) != hashes_.end();
}

absl::StatusOr<std::vector<storage::StoredPolicyLink>> PolicyBook::LinksSince(std::string_view since) const {
  absl::MutexLock lock(&mu_);
  auto it = std::find(hashes_.begin(), hashes_.end(), since);
  if (it == hashes_.end()) {
    return absl::NotFoundError(Cat("policy ", since, " is not in this node's policy chain (which leads from ",
                                   hashes_.front(), " to ", hashes_.back(),
                                   "): the two policies are unrelated, not one behind the other"));
  }
  // hashes_[i + 1] is links_[i]'s hash: the links after `since` start at its own index.
  const size_t first = static_cast<size_t>(it - hashes_.begin());
  return std::vector<storage::StoredPolicyLink>(links_.begin() + static_cast<std::ptrdiff_t>(first), links_.end());
}

std::shared_ptr<const storage::StoredPolicyLink> PolicyBook::current_link() const {
  absl::MutexLock lock(&mu_);
  return current_link_;
}

std::vector<std::string> PolicyBook::current_counted_approvals() const {
  absl::MutexLock lock(&mu_);
  return current_counted_;
}

void PolicyBook::AddListener(
    std::function<void(const consensus::Policy& now, const consensus::Policy& before)> listener) {
  absl::MutexLock adopting(&adopt_mu_);
  listeners_.push_back(std::move(listener));
}

void LogPolicyAdoption(const PolicyBook::Adopted& adopted, std::string_view from) {
  std::vector<std::string> lines;
  lines.push_back(Cat("policy: adopted version ", adopted.policy->version(), " ", adopted.policy->Hash(),
                      " (was version ", adopted.previous->version(), " ", adopted.previous->Hash(), "), from ", from,
                      ", approved by ", absl::StrJoin(adopted.counted_approvals, ", ")));
  for (std::string& line : consensus::DiffPolicies(*adopted.previous, *adopted.policy)) {
    lines.push_back(Cat("policy: ", line));
  }
  LogLines(LogLevel::kInfo, lines);
}

}  // namespace attest::server
