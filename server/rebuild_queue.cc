#include "server/rebuild_queue.h"

#include <algorithm>
#include <span>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "server/path_tally.h"

namespace attest::server {
namespace {

using absl::StrCat;
using consensus::StorePath;
using consensus::Verdict;

bool ByQueueOrder(const WantedItem& a, const WantedItem& b) {
  return std::forward_as_tuple(-a.demand, a.operators_needed, a.path) <
         std::forward_as_tuple(-b.demand, b.operators_needed, b.path);
}

// The operators of every counted fingerprint, sorted, unique.
std::vector<std::string> OperatorsOf(const consensus::TallyResult& result) {
  std::vector<std::string> operators;
  for (const consensus::FingerprintTally& fingerprint : result.fingerprints) {
    operators.insert(operators.end(), fingerprint.operators.begin(), fingerprint.operators.end());
  }
  std::sort(operators.begin(), operators.end());
  operators.erase(std::unique(operators.begin(), operators.end()), operators.end());
  return operators;
}

}  // namespace

RebuildQueue::RebuildQueue(const PolicyBook& policy, storage::Ledger* ledger,
                           storage::DerivationStore* derivations, DemandBook* demand, const RebuildBook* rebuilds,
                           const ResolutionBook* resolutions, Clock clock, RebuildQueueOptions options)
    : policy_(policy),
      ledger_(ledger),
      derivations_(derivations),
      demand_(demand),
      rebuilds_(rebuilds),
      resolutions_(resolutions),
      clock_(std::move(clock)),
      options_(options) {}

absl::StatusOr<std::vector<bool>> RebuildQueue::ClosuresAvailable(const std::vector<StorePath>& drvs) const {
  // The derivation store is closed under input derivations (server/derivation_intake.h stores a
  // derivation only together with, or after, every input it names), so holding one is holding its
  // closure.
  return derivations_->HasDerivations(drvs);
}

absl::StatusOr<std::vector<std::vector<WantedDeriver>>> RebuildQueue::DeriversOf(
    std::span<const StorePath> paths, std::span<const std::vector<storage::StoredAttestation>> attestations) const {
  absl::StatusOr<std::vector<std::vector<storage::DerivationOfOutput>>> producing =
      derivations_->DerivationsProducing(paths);
  if (!producing.ok()) return producing.status();
  std::vector<std::vector<WantedDeriver>> derivers(paths.size());
  std::vector<StorePath> all_drvs;
  for (size_t i = 0; i < paths.size(); ++i) {
    std::vector<std::pair<StorePath, std::string>> pairs;
    for (const storage::StoredAttestation& stored : attestations[i]) {
      const consensus::BuildMetadata& metadata = stored.attestation.metadata;
      if (metadata.deriver.empty()) continue;
      absl::StatusOr<StorePath> drv = StorePath::Parse(metadata.deriver);
      if (!drv.ok() || !drv->IsDerivation()) continue;
      pairs.emplace_back(*drv, metadata.output_name);
    }
    for (const storage::DerivationOfOutput& of : (*producing)[i]) pairs.emplace_back(of.drv_path, of.output_name);
    std::sort(pairs.begin(), pairs.end());
    pairs.erase(std::unique(pairs.begin(), pairs.end()), pairs.end());
    for (auto& [drv, output] : pairs) {
      all_drvs.push_back(drv);
      derivers[i].push_back(WantedDeriver{.drv_path = std::move(drv), .output_name = std::move(output)});
    }
  }
  absl::StatusOr<std::vector<bool>> available = ClosuresAvailable(all_drvs);
  if (!available.ok()) return available.status();
  size_t k = 0;
  for (std::vector<WantedDeriver>& list : derivers) {
    for (WantedDeriver& deriver : list) deriver.available = (*available)[k++];
    // Available ones first: that is where a rebuilder starts.
    std::stable_sort(list.begin(), list.end(),
                     [](const WantedDeriver& a, const WantedDeriver& b) { return a.available > b.available; });
  }
  return derivers;
}

absl::StatusOr<WantedList> RebuildQueue::Wanted(const WantedQuery& query) const {
  const std::shared_ptr<const consensus::Policy> policy = policy_.current();
  const int limit = query.limit == 0 ? kDefaultWantedLimit : query.limit;
  if (limit < 1 || limit > kMaxWantedLimit) {
    return absl::InvalidArgumentError(StrCat("limit ", query.limit, " is out of range 1..", kMaxWantedLimit));
  }
  if (!query.operator_name.empty()) {
    const auto& operators = policy->operators();
    if (std::none_of(operators.begin(), operators.end(),
                     [&](const consensus::Operator& op) { return op.name == query.operator_name; })) {
      return absl::InvalidArgumentError(
          StrCat("operator ", query.operator_name, " is not in the policy (the policy names its operators)"));
    }
  }
  const absl::Time now = clock_();
  WantedList list;
  list.quorum = policy->quorum();
  list.demand_paths = demand_->stats().paths;

  // Walk the demand book in order until the wanted list is full. Entries are copied out of the book
  // (its lock held only while copying) in growing prefixes, so a long walk costs O(n log n) copies, and
  // tallies are read a batch at a time. Disputed paths are those met on the way.
  std::vector<DemandEntry> entries;
  size_t processed = 0;
  bool exhausted = false;
  std::vector<StorePath> confirmed;
  absl::flat_hash_map<StorePath, std::vector<storage::StoredAttestation>> kept;  // of the listed paths
  auto wanted_full = [&] { return list.wanted.size() >= static_cast<size_t>(limit); };
  std::shared_ptr<const consensus::TallyOptions> tally_options = TallyOptionsOf(resolutions_);
  size_t prefix = std::min(options_.max_scan, std::max(options_.batch, static_cast<size_t>(limit) * 2));
  absl::flat_hash_set<StorePath> seen;  // the book may change between two walks: each path once
  while (!wanted_full() && processed < options_.max_scan) {
    if (processed >= entries.size()) {
      if (exhausted) break;
      entries.clear();
      demand_->ForEachByDemand(now, [&](const DemandEntry& entry) {
        entries.push_back(entry);
        return entries.size() < prefix;
      });
      exhausted = entries.size() < prefix;
      prefix = std::min(options_.max_scan, prefix * 4);
      if (processed >= entries.size()) break;
    }
    const size_t first = processed;
    const size_t count = std::min(options_.batch, entries.size() - first);
    processed += count;
    std::span<const DemandEntry> batch(entries.data() + first, count);

    std::vector<StorePath> paths;
    std::vector<const DemandEntry*> batch_entries;
    for (const DemandEntry& entry : batch) {
      if (!seen.insert(entry.path).second) continue;
      paths.push_back(entry.path);
      batch_entries.push_back(&entry);
    }
    absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> stored = ledger_->AttestationsFor(paths);
    if (!stored.ok()) return stored.status();

    for (size_t i = 0; i < paths.size(); ++i) {
      PathTally tally = TallyStored(*policy, (*stored)[i], *tally_options);
      if (tally.result.verdict == Verdict::kConfirmed) {
        confirmed.push_back(paths[i]);
        continue;
      }
      std::vector<std::string> operators = OperatorsOf(tally.result);
      if (!query.operator_name.empty() &&
          std::binary_search(operators.begin(), operators.end(), query.operator_name)) {
        continue;
      }
      const bool disputed = tally.result.verdict == Verdict::kDisputed;
      if (disputed ? list.disputed.size() >= static_cast<size_t>(limit)
                   : list.wanted.size() >= static_cast<size_t>(limit)) {
        continue;
      }
      WantedItem item{.path = paths[i],
                      .verdict = tally.result.verdict,
                      .demand = batch_entries[i]->demand,
                      .last_requested = batch_entries[i]->last_requested,
                      .operators_needed = 0,
                      .operators = std::move(operators),
                      .derivers = {},
                      .dispute_id = "",
                      .leases = {}};
      if (!disputed) {
        const int agreeing = tally.result.fingerprints.empty()
                                 ? 0
                                 : static_cast<int>(tally.result.fingerprints.front().operators.size());
        item.operators_needed = std::max(0, policy->quorum() - agreeing);
      } else {
        item.dispute_id = consensus::DisputeId(paths[i]);
      }
      if (rebuilds_ != nullptr) item.leases = rebuilds_->LeasesOn(paths[i], now);
      (disputed ? list.disputed : list.wanted).push_back(std::move(item));
      kept.emplace(paths[i], std::move((*stored)[i]));
    }
  }
  list.truncated = !wanted_full() && !exhausted && processed >= options_.max_scan;
  for (const StorePath& path : confirmed) demand_->Forget(path);

  // Derivers of the listed paths, in one pass.
  std::vector<StorePath> listed;
  std::vector<WantedItem*> listed_items;
  std::vector<std::vector<storage::StoredAttestation>> listed_stored;
  for (std::vector<WantedItem>* part : {&list.wanted, &list.disputed}) {
    for (WantedItem& item : *part) {
      listed.push_back(item.path);
      listed_items.push_back(&item);
      listed_stored.push_back(std::move(kept[item.path]));
    }
  }
  absl::StatusOr<std::vector<std::vector<WantedDeriver>>> derivers = DeriversOf(listed, listed_stored);
  if (!derivers.ok()) return derivers.status();
  for (size_t i = 0; i < listed_items.size(); ++i) listed_items[i]->derivers = std::move((*derivers)[i]);

  std::stable_sort(list.wanted.begin(), list.wanted.end(), ByQueueOrder);
  std::stable_sort(list.disputed.begin(), list.disputed.end(), ByQueueOrder);
  return list;
}

absl::StatusOr<Verdict> RebuildQueue::VerdictOf(const StorePath& path) const {
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> stored =
      ledger_->AttestationsFor(std::span<const StorePath>(&path, 1));
  if (!stored.ok()) return stored.status();
  return TallyStored(*policy_.current(), stored->front(), *TallyOptionsOf(resolutions_)).result.verdict;
}

absl::StatusOr<bool> RebuildQueue::HasDerivationFor(const StorePath& path) const {
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> stored =
      ledger_->AttestationsFor(std::span<const StorePath>(&path, 1));
  if (!stored.ok()) return stored.status();
  absl::StatusOr<std::vector<std::vector<WantedDeriver>>> derivers =
      DeriversOf(std::span<const StorePath>(&path, 1), *stored);
  if (!derivers.ok()) return derivers.status();
  const std::vector<WantedDeriver>& list = derivers->front();
  return std::any_of(list.begin(), list.end(), [](const WantedDeriver& d) { return d.available; });
}

}  // namespace attest::server
