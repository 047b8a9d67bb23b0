#include "server/derivation_intake.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"

namespace attest::server {
namespace {

using absl::StrCat;
using consensus::Derivation;
using consensus::StorePath;

absl::StatusOr<StorePath> ParseDrvPath(const std::string& text) {
  absl::StatusOr<StorePath> path = StorePath::Parse(text);
  if (!path.ok()) return path.status();
  if (!path->IsDerivation()) {
    return absl::InvalidArgumentError(StrCat(text, " is not a derivation (a .drv store path)"));
  }
  return path;
}

absl::StatusOr<std::vector<StorePath>> ParseDrvPaths(std::span<const std::string> paths) {
  if (paths.size() > kMaxDerivationPathsPerRequest) {
    return absl::InvalidArgumentError(StrCat(paths.size(), " paths in one request; at most ",
                                             kMaxDerivationPathsPerRequest, " (split the request)"));
  }
  std::vector<StorePath> parsed;
  parsed.reserve(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    absl::StatusOr<StorePath> path = ParseDrvPath(paths[i]);
    if (!path.ok()) return absl::InvalidArgumentError(StrCat("path ", i + 1, ": ", path.status().message()));
    parsed.push_back(*std::move(path));
  }
  return parsed;
}

std::vector<StorePath> InputDerivations(const Derivation& drv) {
  std::vector<StorePath> inputs;
  inputs.reserve(drv.input_derivations.size());
  for (const consensus::DerivationInput& input : drv.input_derivations) inputs.push_back(input.drv_path);
  std::sort(inputs.begin(), inputs.end());
  inputs.erase(std::unique(inputs.begin(), inputs.end()), inputs.end());
  return inputs;
}

}  // namespace

DerivationIntake::DerivationIntake(storage::DerivationStore* derivations, storage::Ledger* ledger, Clock clock)
    : derivations_(derivations), ledger_(ledger), clock_(std::move(clock)) {}

absl::StatusOr<std::vector<DerivationVerdict>> DerivationIntake::Submit(std::span<const DerivationUpload> uploads) {
  if (uploads.size() > kMaxDerivationsPerRequest) {
    return absl::InvalidArgumentError(StrCat(uploads.size(), " derivations in one request; at most ",
                                             kMaxDerivationsPerRequest, " (send the closure in parts, inputs first)"));
  }
  size_t total = 0;
  for (const DerivationUpload& upload : uploads) total += upload.contents.size();
  if (total > kMaxDerivationRequestBytes) {
    return absl::InvalidArgumentError(StrCat("the request holds ", total, " bytes of derivations; at most ",
                                             kMaxDerivationRequestBytes, " (send the closure in parts, inputs first)"));
  }

  std::vector<DerivationVerdict> verdicts(uploads.size());
  auto reject = [&](size_t i, absl::Status status) {
    verdicts[i].outcome = DerivationOutcome::kRejected;
    verdicts[i].reason = std::move(status);
  };

  // 1. Each file on its own: the path, the size, the text-addressed path. A path sent twice is
  // answered once (the later copies get the first's verdict at the end).
  std::vector<std::optional<StorePath>> paths(uploads.size());
  std::vector<std::optional<Derivation>> parsed(uploads.size());
  absl::flat_hash_map<StorePath, size_t> first_index;
  std::vector<size_t> duplicate_of(uploads.size(), SIZE_MAX);
  for (size_t i = 0; i < uploads.size(); ++i) {
    absl::StatusOr<StorePath> path = ParseDrvPath(uploads[i].store_path);
    if (!path.ok()) {
      reject(i, absl::InvalidArgumentError(StrCat("derivation ", i + 1, ": ", path.status().message())));
      continue;
    }
    if (auto [it, inserted] = first_index.emplace(*path, i); !inserted) {
      duplicate_of[i] = it->second;
      continue;
    }
    paths[i] = *path;
    absl::StatusOr<Derivation> drv = consensus::VerifyDerivationFile(*path, uploads[i].contents);
    if (!drv.ok()) {
      reject(i, drv.status());
      continue;
    }
    parsed[i] = *std::move(drv);
  }

  // 2. What the node holds already.
  std::vector<StorePath> candidates;
  std::vector<size_t> candidate_index;
  for (size_t i = 0; i < uploads.size(); ++i) {
    if (parsed[i].has_value()) {
      candidates.push_back(*paths[i]);
      candidate_index.push_back(i);
    }
  }
  absl::StatusOr<std::vector<bool>> held = derivations_->HasDerivations(candidates);
  if (!held.ok()) return held.status();
  absl::flat_hash_map<StorePath, size_t> fresh;  // verified, not held: path -> upload index
  for (size_t k = 0; k < candidates.size(); ++k) {
    const size_t i = candidate_index[k];
    if ((*held)[k]) {
      verdicts[i].outcome = DerivationOutcome::kAlreadyPresent;
      verdicts[i].reason = absl::OkStatus();
    } else {
      fresh.emplace(candidates[k], i);
    }
  }

  // 3. The graph: the fresh files, plus every held derivation their inputs lead to (held ones were
  // verified when stored, and their own inputs are held too).
  consensus::DerivationGraph graph;
  for (const auto& [path, i] : fresh) graph.Add(path, *parsed[i]);
  {
    std::vector<StorePath> frontier;
    for (const auto& [path, i] : fresh) {
      for (const StorePath& input : InputDerivations(*parsed[i])) {
        if (!fresh.contains(input)) frontier.push_back(input);
      }
    }
    absl::flat_hash_set<StorePath> asked;
    while (!frontier.empty()) {
      std::vector<StorePath> batch;
      for (StorePath& path : frontier) {
        if (asked.insert(path).second && !graph.Contains(path)) batch.push_back(std::move(path));
      }
      frontier.clear();
      if (batch.empty()) break;
      absl::StatusOr<std::vector<std::optional<storage::StoredDerivation>>> stored =
          derivations_->GetDerivations(batch);
      if (!stored.ok()) return stored.status();
      for (std::optional<storage::StoredDerivation>& held_drv : *stored) {
        if (!held_drv.has_value()) continue;  // missing: the dependents are rejected below
        absl::StatusOr<Derivation> drv = consensus::ParseDerivation(held_drv->contents, held_drv->path.full());
        if (!drv.ok()) {
          return absl::DataLossError(StrCat("stored derivation ", held_drv->path.full(),
                                            " does not parse any more: ", drv.status().message()));
        }
        for (const StorePath& input : held_drv->input_derivations) frontier.push_back(input);
        graph.Add(held_drv->path, *std::move(drv));
      }
    }
  }

  // 4. Inputs and output paths of each fresh file. A file whose input was rejected is rejected too
  // (iterate until nothing changes: rejections propagate up the chains).
  absl::flat_hash_map<StorePath, std::vector<storage::DerivationOutputPath>> outputs;
  absl::flat_hash_set<StorePath> bad;
  for (const auto& [path, i] : fresh) {
    for (const StorePath& input : InputDerivations(*parsed[i])) {
      if (!graph.Contains(input)) {
        reject(i, absl::FailedPreconditionError(StrCat(
                      path.full(), ": its input derivation ", input.full(),
                      " is neither in this request nor on the node (send the whole closure the node lacks; "
                      "MissingDerivations tells which)")));
        bad.insert(path);
        break;
      }
    }
  }
  for (const auto& [path, i] : fresh) {
    if (bad.contains(path)) continue;
    absl::Status checked = graph.CheckOutputPaths(path);
    if (absl::IsFailedPrecondition(checked)) continue;  // outputs known only after building: kept without
    if (!checked.ok()) {
      reject(i, checked);
      bad.insert(path);
      continue;
    }
    absl::StatusOr<std::map<std::string, StorePath>> expected = graph.ExpectedOutputPaths(path);
    if (!expected.ok()) {
      reject(i, expected.status());
      bad.insert(path);
      continue;
    }
    for (auto& [name, output] : *expected) outputs[path].push_back({.output_name = name, .path = output});
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (const auto& [path, i] : fresh) {
      if (bad.contains(path)) continue;
      for (const StorePath& input : InputDerivations(*parsed[i])) {
        if (bad.contains(input)) {
          reject(i, absl::FailedPreconditionError(
                        StrCat(path.full(), ": its input derivation ", input.full(), " was rejected")));
          bad.insert(path);
          changed = true;
          break;
        }
      }
    }
  }

  // 5. Relevance: attested outputs, then the inputs of relevant files in this request.
  std::vector<StorePath> output_paths;
  std::vector<StorePath> output_owner;
  for (const auto& [path, list] : outputs) {
    if (bad.contains(path)) continue;
    for (const storage::DerivationOutputPath& output : list) {
      output_paths.push_back(output.path);
      output_owner.push_back(path);
    }
  }
  absl::StatusOr<std::vector<std::vector<storage::StoredAttestation>>> attested =
      ledger_->AttestationsFor(output_paths);
  if (!attested.ok()) return attested.status();
  absl::flat_hash_set<StorePath> relevant;
  std::vector<StorePath> walk;
  for (size_t k = 0; k < output_paths.size(); ++k) {
    const bool counted = std::any_of((*attested)[k].begin(), (*attested)[k].end(),
                                     [](const storage::StoredAttestation& a) { return !a.observed_key.has_value(); });
    if (counted && relevant.insert(output_owner[k]).second) walk.push_back(output_owner[k]);
  }
  while (!walk.empty()) {
    const StorePath path = std::move(walk.back());
    walk.pop_back();
    for (const StorePath& input : InputDerivations(*parsed[fresh.at(path)])) {
      if (fresh.contains(input) && !bad.contains(input) && relevant.insert(input).second) walk.push_back(input);
    }
  }

  // 6. Store the fresh, good, relevant files in one transaction.
  std::vector<storage::StoredDerivation> to_store;
  std::vector<size_t> stored_index;
  const int64_t now = absl::ToUnixSeconds(clock_());
  for (const auto& [path, i] : fresh) {
    if (bad.contains(path)) continue;
    if (!relevant.contains(path)) {
      reject(i, absl::FailedPreconditionError(StrCat(
                    path.full(), ": none of its outputs is attested on this node and no attested derivation in "
                    "this request needs it (submit the attestations of what it built first)")));
      continue;
    }
    storage::StoredDerivation stored{.path = path,
                                     .contents = uploads[i].contents,
                                     .input_derivations = InputDerivations(*parsed[i]),
                                     .outputs = outputs.contains(path) ? outputs.at(path)
                                                                       : std::vector<storage::DerivationOutputPath>{},
                                     .received_unix = now};
    to_store.push_back(std::move(stored));
    stored_index.push_back(i);
  }
  absl::StatusOr<std::vector<storage::WriteOutcome>> written = derivations_->PutDerivations(to_store);
  if (!written.ok()) return written.status();
  for (size_t k = 0; k < stored_index.size(); ++k) {
    verdicts[stored_index[k]].outcome = (*written)[k] == storage::WriteOutcome::kInserted
                                            ? DerivationOutcome::kStored
                                            : DerivationOutcome::kAlreadyPresent;
    verdicts[stored_index[k]].reason = absl::OkStatus();
  }
  for (size_t i = 0; i < uploads.size(); ++i) {
    if (duplicate_of[i] == SIZE_MAX) continue;
    verdicts[i] = verdicts[duplicate_of[i]];
    if (verdicts[i].outcome == DerivationOutcome::kStored) verdicts[i].outcome = DerivationOutcome::kAlreadyPresent;
  }
  for (const DerivationVerdict& verdict : verdicts) {
    switch (verdict.outcome) {
      case DerivationOutcome::kStored: ++stored_; break;
      case DerivationOutcome::kAlreadyPresent: ++already_present_; break;
      case DerivationOutcome::kRejected: ++rejected_; break;
    }
  }
  return verdicts;
}

absl::StatusOr<std::vector<std::string>> DerivationIntake::Missing(std::span<const std::string> paths) {
  absl::StatusOr<std::vector<StorePath>> parsed = ParseDrvPaths(paths);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<std::vector<bool>> held = derivations_->HasDerivations(*parsed);
  if (!held.ok()) return held.status();
  std::vector<std::string> missing;
  for (size_t i = 0; i < parsed->size(); ++i) {
    if (!(*held)[i]) missing.push_back((*parsed)[i].full());
  }
  return missing;
}

absl::StatusOr<DerivationClosure> DerivationIntake::Get(std::span<const std::string> paths, bool closure) {
  absl::StatusOr<std::vector<StorePath>> requested = ParseDrvPaths(paths);
  if (!requested.ok()) return requested.status();
  DerivationClosure answer;
  // Fetch level by level; then order inputs first by a depth-first walk without recursion.
  absl::flat_hash_map<StorePath, storage::StoredDerivation> found;
  absl::flat_hash_set<StorePath> seen;
  std::vector<StorePath> frontier;
  for (const StorePath& path : *requested) {
    if (seen.insert(path).second) frontier.push_back(path);
  }
  size_t bytes = 0;
  while (!frontier.empty()) {
    absl::StatusOr<std::vector<std::optional<storage::StoredDerivation>>> stored =
        derivations_->GetDerivations(frontier);
    if (!stored.ok()) return stored.status();
    std::vector<StorePath> next;
    for (size_t k = 0; k < frontier.size(); ++k) {
      std::optional<storage::StoredDerivation>& drv = (*stored)[k];
      if (!drv.has_value()) {
        answer.missing.push_back(frontier[k].full());
        continue;
      }
      bytes += drv->contents.size();
      if (found.size() + 1 > kMaxClosureDerivations || bytes > kMaxClosureBytes) {
        return absl::ResourceExhaustedError(StrCat("the closure holds more than ", kMaxClosureDerivations,
                                                   " derivations or ", kMaxClosureBytes,
                                                   " bytes; ask for fewer paths, or without closure"));
      }
      if (closure) {
        for (const StorePath& input : drv->input_derivations) {
          if (seen.insert(input).second) next.push_back(input);
        }
      }
      found.emplace(frontier[k], *std::move(drv));
    }
    frontier = std::move(next);
  }
  // Inputs first: post-order over the found derivations, from the requested ones.
  absl::flat_hash_set<StorePath> emitted;
  for (const StorePath& root : *requested) {
    if (!found.contains(root) || emitted.contains(root)) continue;
    std::vector<std::pair<StorePath, size_t>> stack{{root, 0}};
    absl::flat_hash_set<StorePath> on_stack{root};
    while (!stack.empty()) {
      auto& [path, next_input] = stack.back();
      const storage::StoredDerivation& drv = found.at(path);
      if (closure && next_input < drv.input_derivations.size()) {
        const StorePath& input = drv.input_derivations[next_input++];
        if (found.contains(input) && !emitted.contains(input) && on_stack.insert(input).second) {
          stack.emplace_back(input, 0);
        }
        continue;
      }
      if (emitted.insert(path).second) answer.derivations.push_back(drv);
      on_stack.erase(path);
      stack.pop_back();
    }
  }
  return answer;
}

DerivationIntakeStats DerivationIntake::stats() const {
  return {.stored = stored_.load(), .already_present = already_present_.load(), .rejected = rejected_.load()};
}

}  // namespace attest::server
