// Sending attestations to a node in batches and reporting what became of each one; shared by
// `attest submit` and `attest import`.
//
// Thread-compatible.
#ifndef ATTEST_CLIENT_SUBMISSION_H_
#define ATTEST_CLIENT_SUBMISSION_H_

#include <iosfwd>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "client/node_client.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::client {

enum class OutcomeKind {
  kAccepted,        // stored and counted
  kAlreadyPresent,  // stored before
  kObserved,        // stored for observation: the key is not in the policy, it does not count
  kRejected,        // the node refused it; see code and message
  kRefused,         // not sent: refused here (e.g. a substituted path)
  kSkipped,         // not sent: malformed input (e.g. a bad Sig line)
  kNotSent,         // not sent: the node could not be reached
};
std::string_view OutcomeName(OutcomeKind kind);  // "accepted", "already_present", ...

struct ItemOutcome final {
  std::string path;  // the store path, or a realisation's key
  std::string key_name;
  OutcomeKind kind = OutcomeKind::kNotSent;
  int code = 0;  // google.rpc.Code of a rejection, or of the RPC failure for kNotSent
  std::string message;
};

// Submits `items` in batches of `batch_size`, appending one outcome per item, in order. After a batch
// whose RPC fails, the rest are kNotSent with that error, which is returned (OK when every batch was
// answered). A response with the wrong number of results is INTERNAL.
absl::Status SubmitInBatches(NodeApi& node, std::span<const v1::Attestation> items, size_t batch_size,
                             std::vector<ItemOutcome>& outcomes);

// The same for realisation attestations (SubmitRequest.realisations); an outcome's path is the
// realisation's key.
absl::Status SubmitRealisationsInBatches(NodeApi& node, std::span<const v1::RealisationAttestation> items,
                                         size_t batch_size, std::vector<ItemOutcome>& outcomes);

enum class OutputFormat { kText, kJson };
// One line per outcome (text), or a JSON list of {path, key, outcome, code, message}.
void PrintOutcomes(std::ostream& out, std::span<const ItemOutcome> outcomes, OutputFormat format);
// "2 accepted, 1 rejected" for the summary line on stderr.
std::string SummariseOutcomes(std::span<const ItemOutcome> outcomes);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_SUBMISSION_H_
