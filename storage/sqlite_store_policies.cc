// SqliteAttestationStore, the policy chain (storage/policy_store.h): `policy_links` (one row per adopted
// policy, keyed by the order it was stored in: a new segment of the chain may reuse version numbers)
// and `policy_approvals` (one row per approval of a link, in submission order). Written in a
// transaction of their own, which also appends the link's policy entry to the node's log when it was
// submitted here.
#include <utility>

#include "absl/status/status.h"
#include "consensus/keys.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace {

using sqlite::Transaction;
using sqlite_store::Bytes;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::PrepareStatements;

}  // namespace

absl::Status SqliteAttestationStore::Writer::PreparePoliciesStatements() {
  return PrepareStatements(*db_, {
      {&find_policy_, "SELECT version FROM policy_links WHERE hash = ?"},
      {&last_policy_, "SELECT hash, version FROM policy_links ORDER BY sequence DESC LIMIT 1"},
      {&insert_policy_,
       "INSERT INTO policy_links(version, hash, parent, toml, received, origin) VALUES (?, ?, ?, ?, ?, ?)"},
      {&insert_policy_approval_, "INSERT INTO policy_approvals(link, position, signature) VALUES (?, ?, ?)"},
      {&policy_links_,
       "SELECT sequence, version, hash, parent, toml, received, origin FROM policy_links ORDER BY sequence"},
      {&policy_approvals_, "SELECT link, signature FROM policy_approvals ORDER BY link, position"},
  });
}

absl::Status SqliteAttestationStore::Writer::PutPolicyLink(const StoredPolicyLink& link) {
  // Up front, so that a refused link costs no transaction.
  absl::StatusOr<std::string> entry = PolicyLinkEntry(link);
  if (!entry.ok()) return entry.status();
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  {
    auto find = find_policy_->Begin("looking a policy up");
    find.Bind(link.hash);
    auto row = find.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      return absl::AlreadyExistsError(
          consensus::Cat("policy ", link.hash, " (version ", find.Int(0), ") is already in the chain"));
    }
  }
  // A parent the chain holds must be its last link (anything else would fork old history); a parent
  // it does not hold starts a new segment (the node was restarted with a policy file the chain does
  // not hold, and this link continues it).
  std::optional<int64_t> parent_version;
  {
    auto find = find_policy_->Begin("looking a policy's parent up");
    find.Bind(link.parent);
    auto row = find.Step();
    if (!row.ok()) return row.status();
    if (*row) parent_version = find.Int(0);
  }
  std::optional<StoredPolicyLink> last;
  if (parent_version.has_value()) {
    auto use = last_policy_->Begin("reading the end of the policy chain");
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      last = StoredPolicyLink{};
      last->hash = std::string(use.Text(0));
      last->version = use.Int(1);
    }
  }
  std::optional<StoredPolicyLink> parent;
  if (parent_version.has_value()) parent = StoredPolicyLink{.hash = link.parent, .version = *parent_version};
  if (absl::Status status = CheckPolicyLinkExtends(link, last.has_value() ? &*last : nullptr,
                                                   parent.has_value() ? &*parent : nullptr);
      !status.ok()) {
    return status;
  }
  {
    auto insert = insert_policy_->Begin("storing a policy");
    insert.Bind(link.version)
        .Bind(link.hash)
        .Bind(link.parent)
        .BindBlob(Bytes(link.toml))
        .Bind(link.received_unix)
        .Bind(link.origin);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  const int64_t sequence = db_->LastInsertRowId();
  for (size_t i = 0; i < link.approvals.size(); ++i) {
    auto insert = insert_policy_approval_->Begin("storing a policy's approvals");
    insert.Bind(sequence).Bind(static_cast<int64_t>(i)).Bind(link.approvals[i].ToString());
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  // A link submitted here is logged with it; a peer's is in the peer's log already.
  if (link.origin.empty()) {
    if (absl::Status status = AppendLogEntry(std::nullopt, std::nullopt, *entry, *entry); !status.ok()) {
      return status;
    }
    if (absl::Status status = StoreChangedTiles(); !status.ok()) return status;
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  committed_log_ = log_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredPolicyLink>> SqliteAttestationStore::Writer::PolicyChain() {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  std::vector<StoredPolicyLink> chain;
  std::vector<int64_t> sequences;  // chain[i]'s row
  {
    auto use = policy_links_->Begin("reading the policy chain");
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      sequences.push_back(use.Int(0));
      StoredPolicyLink& link = chain.emplace_back();
      link.version = use.Int(1);
      link.hash = std::string(use.Text(2));
      link.parent = std::string(use.Text(3));
      link.toml = std::string(Chars(use.Blob(4)));
      link.received_unix = use.Int(5);
      link.origin = std::string(use.Text(6));
    }
  }
  {
    auto use = policy_approvals_->Begin("reading the policy chain's approvals");
    size_t link = 0;
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      // Both sorted by row: walk the links alongside.
      while (link < chain.size() && sequences[link] < use.Int(0)) ++link;
      if (link == chain.size() || sequences[link] != use.Int(0)) {
        return Corrupt(db_->path(), consensus::Cat("an approval of policy link row ", use.Int(0),
                                                   ", which the chain does not hold"));
      }
      auto signature = consensus::Signature::Parse(use.Text(1));
      if (!signature.ok()) {
        return Corrupt(db_->path(), consensus::Cat("an approval of policy version ", chain[link].version, " (",
                                                   chain[link].hash, "): ", signature.status().message()));
      }
      chain[link].approvals.push_back(*std::move(signature));
    }
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  return chain;
}

}  // namespace attest::storage
