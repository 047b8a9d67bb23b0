// ClosureQuery: the verdict on a store path and every path it references, recursively, in one answer
// (consensus/closure.h has the rules: the walk follows attested references, and the closure is
// CONFIRMED only when every member is).
//
// The walk reads level by level: each level's new paths are answered in one StatusQuery::Answer call
// (one batch read of the store), so a closure of depth d costs d batch reads, not one read per path.
// Every member is answered under one policy: should a policy update land in the middle of a walk (the
// members' policy hashes differ), the walk starts again, up to three times, then fails UNAVAILABLE.
//
// Fail closed: a closure larger than max_members is RESOURCE_EXHAUSTED, never a CONFIRMED answer about
// part of it.
//
// Thread-safe; the status query is borrowed and must outlive it.
#ifndef ATTEST_SERVER_CLOSURE_QUERY_H_
#define ATTEST_SERVER_CLOSURE_QUERY_H_

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "server/status_query.h"

namespace attest::server {

struct ClosureAnswer final {
  consensus::StorePath root;
  consensus::Verdict verdict = consensus::Verdict::kUnknown;
  // Every member's answer: the root first, then level by level, each level sorted by path.
  std::vector<PathStatus> members;
  // Indices into `members` of those that are not CONFIRMED, in members' order.
  std::vector<size_t> not_confirmed;
};

class ClosureQuery final {
 public:
  ClosureQuery(const StatusQuery* status, size_t max_members) : status_(status), max_members_(max_members) {}

  // RESOURCE_EXHAUSTED when the closure has more than max_members paths (the message says how many
  // were found and asks for a smaller root or a higher limit); DATA_LOSS when a stored fingerprint does
  // not parse; UNAVAILABLE when the policy kept changing during the walk; the status query's errors
  // otherwise.
  absl::StatusOr<ClosureAnswer> Answer(const consensus::StorePath& root) const;

  // The wire answer (ClosureResponse), bounded like a Status answer: RESOURCE_EXHAUSTED when it would
  // exceed the status query's max_answer_bytes (never a truncated answer). INVALID_ARGUMENT for a
  // malformed store path; Answer's errors otherwise.
  absl::StatusOr<v1::ClosureResponse> Run(const v1::ClosureRequest& request) const;

 private:
  absl::StatusOr<ClosureAnswer> Walk(const consensus::StorePath& root) const;

  const StatusQuery* const status_;
  const size_t max_members_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_CLOSURE_QUERY_H_
