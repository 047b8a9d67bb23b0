// DisputeView: the node's one read model of disputes, as domain values. The Disputes gRPC service
// converts it to attest.v1 at its edge (dispute_messages.h); the web pages render it
// (web/dispute_pages.h). It reads the store; the signed record is passed through byte for byte (clients
// verify it with the node's public key), and everything else about a dispute is parsed from it or read
// beside it.
//
// Limits, the same for every surface:
//   a page holds kDefaultDisputePageSize disputes unless asked otherwise, at most kMaxDisputePageSize
//   (the gRPC service serves a larger page_size as the maximum; the web pages answer 400 for a limit
//   outside 1..kMaxDisputePageSize);
//   a name filter is at most kMaxDisputeNameFilterBytes bytes.
//
// Thread-safe; policy and store are borrowed and must outlive it.
#ifndef ATTEST_SERVER_DISPUTE_VIEW_H_
#define ATTEST_SERVER_DISPUTE_VIEW_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/dispute.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "consensus/resolution.h"
#include "server/policy_book.h"
#include "server/resolution_book.h"
#include "storage/ledger.h"

namespace attest::server {

inline constexpr int kDefaultDisputePageSize = 50;
inline constexpr int kMaxDisputePageSize = 500;
inline constexpr size_t kMaxDisputeNameFilterBytes = 200;

// Which disputes a list shows.
struct DisputeFilter final {
  std::optional<consensus::DisputeState> state;  // nullopt: every state
  std::string name_contains;                     // part of the package name; empty: any
  std::string operator_name;                     // an operator on some side; empty: any
};

struct DisputePageRequest final {
  DisputeFilter filter;
  std::string after;  // DisputePage::next_cursor of the previous page; empty for the first page
  int size = kDefaultDisputePageSize;
};

struct DisputePage final {
  std::vector<storage::StoredDispute> disputes;  // open first, then by id
  std::string next_cursor;                       // empty on the last page
  int64_t total = 0;                             // disputes matching the filter (on every page)
};

// The operators and builders behind one side of a record: sorted, each once.
struct SideSigners final {
  std::vector<std::string> operators;
  std::vector<std::string> builders;
};
SideSigners SignersOf(const consensus::DisputeSide& side);

// One dispute with its evidence.
struct DisputeDetail final {
  struct Signer final {
    std::string operator_name;
    std::string builder;
    std::string signature;
    // From the stored attestation (not part of the signed record); nullopt when this node does not hold
    // it (a record replicated before its attestations).
    std::optional<storage::StoredAttestation> stored;
    // The same for a derivation output's dispute: the stored realisation attestation.
    std::optional<storage::StoredRealisation> stored_realisation;
  };
  struct Side final {
    std::string fingerprint;
    std::optional<consensus::PathInfo> claim;  // nullopt when the fingerprint does not parse
    // A derivation output's dispute: the realisation the side claims (its output path); nullopt for a
    // store path's dispute or when the fingerprint does not parse.
    std::optional<consensus::Realisation> realisation;
    SideSigners names;
    std::vector<Signer> signers;  // in the record's order
  };
  struct Statement final {
    storage::StoredResolution stored;
    absl::StatusOr<consensus::Resolution> statement;  // parsed from the signed note
  };

  storage::StoredDispute stored;
  consensus::DisputeRecord record;
  std::vector<Side> sides = {};
  bool nar_hash_differs = false;
  bool nar_size_differs = false;
  // Every reference of any side, with the sides (indices) that have it.
  std::map<std::string, std::vector<bool>> references = {};
  std::vector<Statement> resolutions = {};  // the maintainers' statements held, oldest first
  // The attestations of the path that count without exclusions: the evidence as recorded, also of
  // builders a statement excluded since.
  std::vector<storage::StoredAttestation> counted = {};
  // The same for a derivation output's dispute.
  std::vector<storage::StoredRealisation> counted_realisations = {};
};

// "d-" followed by 32 lower-case hex characters (consensus::DisputeId).
bool IsDisputeId(std::string_view text);
// A page cursor DisputeView::List hands out ('0' or '1', then a dispute id).
bool IsDisputeCursor(std::string_view text);

// The record of a stored dispute. DATA_LOSS when it is not a signed note or does not parse.
absl::StatusOr<consensus::DisputeRecord> RecordOf(const storage::StoredDispute& stored);

class DisputeView final {
 public:
  // `resolutions` (null: nobody is excluded) is borrowed.
  DisputeView(const PolicyBook& policy, storage::Ledger* store,
              const ResolutionBook* resolutions = nullptr);

  // A page of disputes, open first, then by id.
  //   INVALID_ARGUMENT  size outside 1..kMaxDisputePageSize, a name filter longer than
  //                     kMaxDisputeNameFilterBytes, an operator that is not an operator name
  //                     (consensus::ValidateOperatorName), or `after` that is not a cursor this node issues
  //   the store's error, with a client-safe message
  absl::StatusOr<DisputePage> List(const DisputePageRequest& request) const;

  // One dispute by id.
  //   INVALID_ARGUMENT  not a dispute id
  //   NOT_FOUND         no dispute with that id ("no dispute <id> on this node")
  //   DATA_LOSS         the stored record does not parse
  //   the store's error, with a client-safe message
  absl::StatusOr<DisputeDetail> Get(std::string_view id) const;

  const PolicyBook& policy() const { return policy_; }

 private:
  // Fills detail.sides, the references and what differs, and the counted attestations.
  absl::Status AddEvidence(DisputeDetail& detail) const;

  const PolicyBook& policy_;
  storage::Ledger* const store_;
  const ResolutionBook* const resolutions_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_DISPUTE_VIEW_H_
