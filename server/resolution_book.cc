#include "server/resolution_book.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "consensus/text.h"
#include "server/log.h"

namespace attest::server {

using consensus::Cat;
using consensus::StdView;

ResolutionBook::ResolutionBook(const PolicyBook& policy)
    : policy_(policy), options_(std::make_shared<const consensus::TallyOptions>()) {}

absl::Status ResolutionBook::Load(storage::Ledger& store) {
  auto stored = store.AllResolutions();
  if (!stored.ok()) return stored.status();
  ResolutionBook* const book = this;
  const std::shared_ptr<const consensus::Policy> current = policy_.current();
  const consensus::Policy& policy = *current;
  absl::MutexLock lock(&mu_);
  book->in_force_.clear();
  for (const storage::StoredResolution& resolution : *stored) {
    absl::StatusOr<consensus::VerifiedResolution> verified =
        consensus::VerifyResolution(resolution.signed_note, policy);
    if (!verified.ok()) {
      LogWarning(Cat("resolution of dispute ", resolution.dispute_id, " by ", resolution.maintainer,
                                      " is not in force under the current policy: ",
                                      StdView(verified.status().message())));
      continue;
    }
    auto [it, inserted] = book->in_force_.try_emplace(verified->resolution.dispute_id, *verified);
    if (!inserted && std::tie(verified->resolution.time_unix, verified->signed_note) >
                         std::tie(it->second.resolution.time_unix, it->second.signed_note)) {
      it->second = *std::move(verified);
    }
  }
  book->Rebuild();
  return absl::OkStatus();
}

void ResolutionBook::Add(const consensus::VerifiedResolution& statement) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = in_force_.try_emplace(statement.resolution.dispute_id, statement);
  if (!inserted) {
    if (std::tie(statement.resolution.time_unix, statement.signed_note) <=
        std::tie(it->second.resolution.time_unix, it->second.signed_note)) {
      return;  // an older statement (replicated late): history only
    }
    it->second = statement;
  }
  Rebuild();
}

void ResolutionBook::Rebuild() {
  exclusions_.clear();
  auto options = std::make_shared<consensus::TallyOptions>();
  for (const auto& [id, statement] : in_force_) {
    if (statement.resolution.outcome != consensus::ResolutionOutcome::kMalicious) continue;
    for (const std::string& builder : statement.resolution.builders) {
      options->excluded_builders.insert(builder);
      exclusions_[builder].push_back(statement.signed_note);
    }
  }
  options_ = std::move(options);
}

std::optional<consensus::VerifiedResolution> ResolutionBook::InForce(const std::string& dispute_id) const {
  absl::MutexLock lock(&mu_);
  auto it = in_force_.find(dispute_id);
  if (it == in_force_.end()) return std::nullopt;
  return it->second;
}

consensus::DisputeState ResolutionBook::StateOf(const std::string& dispute_id,
                                                std::span<const std::string> fingerprints) const {
  absl::MutexLock lock(&mu_);
  auto it = in_force_.find(dispute_id);
  return consensus::StateOf(it == in_force_.end() ? nullptr : &it->second.resolution, fingerprints);
}

std::shared_ptr<const consensus::TallyOptions> ResolutionBook::tally_options() const {
  absl::MutexLock lock(&mu_);
  return options_;
}

std::vector<std::string> ResolutionBook::ExclusionsFor(std::span<const std::string> key_names) const {
  std::vector<std::string> notes;
  absl::MutexLock lock(&mu_);
  if (exclusions_.empty()) return notes;
  for (const std::string& name : key_names) {
    auto it = exclusions_.find(name);
    if (it != exclusions_.end()) notes.insert(notes.end(), it->second.begin(), it->second.end());
  }
  std::sort(notes.begin(), notes.end());
  notes.erase(std::unique(notes.begin(), notes.end()), notes.end());
  return notes;
}

std::shared_ptr<const consensus::TallyOptions> TallyOptionsOf(const ResolutionBook* book) {
  static const auto* const kNobodyExcluded = new std::shared_ptr<const consensus::TallyOptions>(
      std::make_shared<const consensus::TallyOptions>());
  return book == nullptr ? *kNobodyExcluded : book->tally_options();
}

}  // namespace attest::server
