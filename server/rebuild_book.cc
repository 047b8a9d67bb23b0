#include "server/rebuild_book.h"

#include <map>
#include <utility>

#include "consensus/text.h"

namespace attest::server {

using consensus::Cat;

RebuildBook::RebuildBook(RebuildBookOptions options) : options_(options) {}

absl::StatusOr<Lease> RebuildBook::Acquire(const consensus::StorePath& path, const std::string& operator_name,
                                           const std::string& builder, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto key = std::make_pair(path, operator_name);
  auto it = leases_.find(key);
  if (it != leases_.end() && it->second.expires > now && it->second.builder != builder) {
    ++refused_;
    return absl::FailedPreconditionError(
        Cat(path.full(), " is being rebuilt by ", it->second.builder, " of ", operator_name, " until ",
            absl::FormatTime(absl::RFC3339_sec, it->second.expires, absl::UTCTimeZone()),
            " (take another wanted path; this one is free again when that builder reports, releases it or its "
            "lease expires)"));
  }
  if (it == leases_.end() && leases_.size() >= options_.max_leases) {
    DropExpired(now);
    if (leases_.size() >= options_.max_leases) {
      ++refused_;
      return absl::ResourceExhaustedError(
          Cat("the node holds ", leases_.size(), " rebuild leases, its limit (", options_.max_leases,
              "): ask again when some have ended (they last at most ", absl::FormatDuration(options_.lease_duration),
              ")"));
    }
  }
  // A renewal is a new taking: the lease runs `lease_duration` from now, whoever held it before
  // (the same builder, or anyone whose lease expired).
  Lease lease{.path = path,
              .operator_name = operator_name,
              .builder = builder,
              .taken = now,
              .expires = now + options_.lease_duration};
  if (it == leases_.end()) {
    leases_.emplace(std::move(key), lease);
  } else {
    it->second = lease;
  }
  ++granted_;
  return lease;
}

void RebuildBook::Release(const consensus::StorePath& path, const std::string& operator_name,
                          const std::string& builder) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(std::make_pair(path, operator_name));
  if (it != leases_.end() && it->second.builder == builder) leases_.erase(it);
}

void RebuildBook::Report(RebuildResult result) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(std::make_pair(result.path, result.operator_name));
  if (it != leases_.end() && it->second.builder == result.builder) leases_.erase(it);
  ++(result.built ? built_ : failed_);
  if (options_.max_results == 0) return;
  results_.push_front(std::move(result));
  while (results_.size() > options_.max_results) results_.pop_back();
}

std::vector<Lease> RebuildBook::LeasesOn(const consensus::StorePath& path, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<Lease> leases;
  // The map is ordered by (path, operator): the path's leases are one run starting at (path, "").
  for (auto it = leases_.lower_bound(std::make_pair(path, std::string()));
       it != leases_.end() && it->first.first == path; ++it) {
    if (it->second.expires > now) leases.push_back(it->second);
  }
  return leases;
}

std::vector<Lease> RebuildBook::ActiveLeases(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  std::vector<Lease> leases;
  for (const auto& [key, lease] : leases_) {
    if (lease.expires > now) leases.push_back(lease);
  }
  return leases;
}

std::vector<RebuildResult> RebuildBook::RecentResults() const {
  absl::MutexLock lock(&mu_);
  return std::vector<RebuildResult>(results_.begin(), results_.end());
}

RebuildStats RebuildBook::stats(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  RebuildStats stats{.leases_granted = granted_, .leases_refused = refused_, .built = built_, .failed = failed_};
  for (const auto& [key, lease] : leases_) {
    if (lease.expires > now) ++stats.active_leases;
  }
  return stats;
}

void RebuildBook::DropExpired(absl::Time now) {
  std::erase_if(leases_, [now](const auto& entry) { return entry.second.expires <= now; });
}

}  // namespace attest::server
