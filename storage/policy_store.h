// PolicyStore: the chain of policies a node has adopted (consensus/policy_update.h), so that a node
// restarted with an older policy file keeps the newer policy, and so that it can hand the chain to
// peers that are behind. A role of the store like the ledger (storage/attestation_store.h).
//
// The caller verifies a link before it stores it (VerifyPolicyLink against the previous one); the
// store keeps what it is given and checks only where it goes. A stored chain is one or more segments,
// in storage order. A link either
//   - extends the chain: its parent is the hash of the LAST stored link and its version is that
//     link's + 1; or
//   - starts a new segment: its parent is not the hash of any stored link (it continues a policy file
//     the node was started or restarted with, which no stored link leads to), whatever its version.
// The first stored link always starts a segment. Within a segment versions grow by one; a new segment
// may reuse the version numbers of older ones (a version identifies a link only within its segment).
// A segment starts at every link whose parent is not the previous link's hash; the last segment is
// the chain the node decides under (server/policy_book.h), the older ones are history (the node's log
// holds them as well). A link whose parent is a stored link other than the last would fork that
// history and is refused.
//
// A link submitted to this node (origin "") is also appended to the node's transparency log in the
// same transaction, as a policy entry (consensus/log_entry.h), so every node's log shows when it moved
// to which policy and on whose approval; a link learnt from a peer (origin = the peer's log name) is
// stored with its origin, not logged again (no echo between logs, as for attestations).
//
// Implementations: SqliteAttestationStore and MemoryAttestationStore, behind AttestationStore; both pass
// tests/storage/policy_store_contract_test.cc.
//
// Thread-safety: every method may be called from any thread; implementations serialise writes.
#ifndef ATTEST_STORAGE_POLICY_STORE_H_
#define ATTEST_STORAGE_POLICY_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/keys.h"

namespace attest::storage {

struct StoredPolicyLink final {
  std::string hash;    // "sha256:<hex>" of the policy's canonical text
  std::string parent;  // the hash of the policy it replaced
  int64_t version = 0;  // >= 2
  std::string toml;    // as submitted
  std::vector<consensus::Signature> approvals;  // as submitted, in submission order
  int64_t received_unix = 0;  // when the federation received it (the origin's log time); >= 0
  std::string origin;         // "" when submitted to this node, else the peer's log name

  friend bool operator==(const StoredPolicyLink&, const StoredPolicyLink&) = default;
};

class PolicyStore {
 public:
  virtual ~PolicyStore() = default;

  // Appends a link to the chain, durable when it returns OK; with origin "" also appends its policy log
  // entry in the same transaction.
  //   ALREADY_EXISTS      the chain holds this hash already, in any segment (nothing changes)
  //   FAILED_PRECONDITION the parent is a stored link but not the last one (a fork of old history), or
  //                       the parent is the last link and the version is not its version + 1; the
  //                       message names both
  //   INVALID_ARGUMENT    empty hash or TOML, version < 2, negative time, a log entry that cannot be
  //                       encoded (too large)
  //   UNAVAILABLE / RESOURCE_EXHAUSTED / DATA_LOSS as for other writes
  virtual absl::Status PutPolicyLink(const StoredPolicyLink& link) = 0;

  // Every stored link, all segments, in storage order (oldest first); empty when the node never adopted
  // an update.
  virtual absl::StatusOr<std::vector<StoredPolicyLink>> PolicyChain() = 0;
};

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_POLICY_STORE_H_
