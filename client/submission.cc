#include "client/submission.h"

#include <map>
#include <ostream>
#include <type_traits>

#include "client/status_json.h"
#include "consensus/realisation.h"
#include "consensus/text.h"
#include "nlohmann/json.hpp"

namespace attest::client {

using consensus::Cat;

std::string_view OutcomeName(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kAccepted:
      return "accepted";
    case OutcomeKind::kAlreadyPresent:
      return "already_present";
    case OutcomeKind::kObserved:
      return "observed";
    case OutcomeKind::kRejected:
      return "rejected";
    case OutcomeKind::kRefused:
      return "refused";
    case OutcomeKind::kSkipped:
      return "skipped";
    case OutcomeKind::kNotSent:
      return "not_sent";
  }
  return "not_sent";
}

namespace {

template <typename Item>
std::string KeyNameOf(const Item& attestation) {
  const std::string& sig = attestation.signature();
  return sig.substr(0, sig.find(':'));
}

std::string WhatOf(const v1::Attestation& item) { return item.path_info().store_path(); }
// A realisation is named by its key (the fingerprint itself when it does not parse; the node says why).
std::string WhatOf(const v1::RealisationAttestation& item) {
  absl::StatusOr<consensus::Realisation> claim = consensus::Realisation::ParseFingerprint(item.fingerprint());
  return claim.ok() ? claim->key.ToString() : item.fingerprint();
}

template <typename Item>
ItemOutcome OutcomeOf(const Item& item, const v1::SubmitResult& result) {
  ItemOutcome outcome;
  outcome.path = WhatOf(item);
  outcome.key_name = KeyNameOf(item);
  outcome.code = result.code();
  outcome.message = result.message();
  switch (result.outcome()) {
    case v1::SubmitResult::ACCEPTED:
      outcome.kind = OutcomeKind::kAccepted;
      break;
    case v1::SubmitResult::ALREADY_PRESENT:
      outcome.kind = OutcomeKind::kAlreadyPresent;
      break;
    case v1::SubmitResult::OBSERVED:
      outcome.kind = OutcomeKind::kObserved;
      break;
    case v1::SubmitResult::REJECTED:
      outcome.kind = OutcomeKind::kRejected;
      break;
    default:
      outcome.kind = OutcomeKind::kRejected;
      if (outcome.message.empty()) outcome.message = "the node gave no outcome for this attestation";
      break;
  }
  return outcome;
}

}  // namespace

namespace {

template <typename Item>
absl::Status SubmitItemsInBatches(NodeApi& node, std::span<const Item> items, size_t batch_size,
                                  std::vector<ItemOutcome>& outcomes) {
  constexpr bool kRealisations = std::is_same_v<Item, v1::RealisationAttestation>;
  if (batch_size == 0) batch_size = 1;
  absl::Status failure;
  for (size_t start = 0; start < items.size(); start += batch_size) {
    const size_t end = std::min(items.size(), start + batch_size);
    if (failure.ok()) {
      v1::SubmitRequest request;
      for (size_t i = start; i < end; ++i) {
        if constexpr (kRealisations) {
          *request.add_realisations() = items[i];
        } else {
          *request.add_attestations() = items[i];
        }
      }
      auto response = node.Submit(request);
      if (response.ok() && static_cast<size_t>(response->results_size()) != end - start) {
        response = absl::InternalError(Cat("the node answered ", response->results_size(), " results for ",
                                           end - start, kRealisations ? " realisations" : " attestations",
                                           kRealisations ? " (does the node know realisations? upgrade it)" : ""));
      }
      if (response.ok()) {
        for (size_t i = start; i < end; ++i) {
          outcomes.push_back(OutcomeOf(items[i], response->results(static_cast<int>(i - start))));
        }
        continue;
      }
      failure = response.status();
    }
    for (size_t i = start; i < end; ++i) {
      outcomes.push_back(ItemOutcome{.path = WhatOf(items[i]),
                                     .key_name = KeyNameOf(items[i]),
                                     .kind = OutcomeKind::kNotSent,
                                     .code = static_cast<int>(failure.code()),
                                     .message = std::string(failure.message())});
    }
  }
  return failure;
}

}  // namespace

absl::Status SubmitInBatches(NodeApi& node, std::span<const v1::Attestation> items, size_t batch_size,
                             std::vector<ItemOutcome>& outcomes) {
  return SubmitItemsInBatches(node, items, batch_size, outcomes);
}

absl::Status SubmitRealisationsInBatches(NodeApi& node, std::span<const v1::RealisationAttestation> items,
                                         size_t batch_size, std::vector<ItemOutcome>& outcomes) {
  return SubmitItemsInBatches(node, items, batch_size, outcomes);
}

void PrintOutcomes(std::ostream& out, std::span<const ItemOutcome> outcomes, OutputFormat format) {
  if (format == OutputFormat::kJson) {
    nlohmann::json list = nlohmann::json::array();
    for (const ItemOutcome& o : outcomes) {
      list.push_back({{"path", o.path},
                      {"key", o.key_name},
                      {"outcome", std::string(OutcomeName(o.kind))},
                      {"code", o.code},
                      {"message", o.message}});
    }
    out << DumpJson(list) << "\n";
    return;
  }
  for (const ItemOutcome& o : outcomes) {
    std::string word(OutcomeName(o.kind));
    for (char& c : word) {
      if (c == '_') c = ' ';
    }
    out << word << std::string(word.size() < 16 ? 16 - word.size() : 1, ' ') << o.path;
    if (!o.key_name.empty()) out << " (" << o.key_name << ")";
    if (!o.message.empty() && o.kind != OutcomeKind::kAccepted && o.kind != OutcomeKind::kAlreadyPresent) {
      out << ": " << o.message;
    }
    out << "\n";
  }
}

std::string SummariseOutcomes(std::span<const ItemOutcome> outcomes) {
  std::map<OutcomeKind, size_t> counts;
  for (const ItemOutcome& o : outcomes) ++counts[o.kind];
  std::string summary;
  for (const auto& [kind, count] : counts) {
    std::string word(OutcomeName(kind));
    for (char& c : word) {
      if (c == '_') c = ' ';
    }
    if (!summary.empty()) summary += ", ";
    summary += Cat(count, " ", word);
  }
  return summary.empty() ? "nothing to submit" : summary;
}

}  // namespace attest::client
