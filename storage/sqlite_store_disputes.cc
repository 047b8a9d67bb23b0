// SqliteAttestationStore, disputes and resolutions: the `disputes` rows (the latest signed record of
// each, its state and operators) and the maintainers' `resolutions`, written in the batch's
// transaction and read for the dispute views and pages.
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_split.h"
#include "consensus/text.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace sqlite_store {

std::string JoinOperators(const std::vector<std::string>& operators) {
  if (operators.empty()) return "";
  std::string joined = "\n";
  for (const std::string& name : operators) joined += consensus::Cat(name, "\n");
  return joined;
}

}  // namespace sqlite_store

namespace {

using sqlite::Statement;
using sqlite_store::Corrupt;
using sqlite_store::JoinOperators;
using sqlite_store::PathFromRow;
using sqlite_store::PrepareStatements;

// The filters of a DisputeQuery, as parameters ?2 (state, -1 for any), ?3 (name part) and ?4
// (operator); `d` is disputes, `p` its path (NULL for a derivation output's, whose name is its key).
constexpr std::string_view kDisputeFilters =
    "AND (?2 < 0 OR d.state = ?2) AND (?3 = '' OR instr(coalesce(p.name, d.realisation_key), ?3) > 0) "
    "AND (?4 = '' OR instr(d.operators, char(10) || ?4 || char(10)) > 0)";

std::vector<std::string> SplitOperators(std::string_view joined) {
  std::vector<std::string> out;
  for (absl::string_view name : absl::StrSplit(consensus::AbslView(joined), '\n', absl::SkipEmpty())) {
    out.emplace_back(consensus::StdView(name));
  }
  return out;
}

// Binds ?2..?4 of kDisputeFilters (after ?1 was bound).
template <typename Use>
Use& BindDisputeFilters(Use& use, const DisputeQuery& query) {
  return use.Bind(query.state.has_value() ? static_cast<int64_t>(*query.state) : int64_t{-1})
      .Bind(query.name_contains)
      .Bind(query.operator_name);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PrepareDisputesStatements() {
  return PrepareStatements(*db_, {
      {&upsert_dispute_,
       "INSERT INTO disputes(id, path_id, realisation_key, signed_record, opened, updated, fingerprint_count, "
       "state, operators) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
       "ON CONFLICT (id) DO UPDATE SET path_id = excluded.path_id, realisation_key = excluded.realisation_key, "
       "signed_record = excluded.signed_record, updated = excluded.updated, "
       "fingerprint_count = excluded.fingerprint_count, state = excluded.state, "
       "operators = excluded.operators"},
      {&insert_resolution_,
       "INSERT OR IGNORE INTO resolutions(dispute_id, note, outcome, maintainer, time, received, origin) "
       "VALUES (?, ?, ?, ?, ?, ?, ?)"},
      {&set_dispute_state_, "UPDATE disputes SET state = ? WHERE id = ?"},
  });
}

absl::Status SqliteAttestationStore::Writer::UpsertDispute(const StoredDispute& dispute) {
  auto upsert = upsert_dispute_->Begin("storing a dispute");
  upsert.Bind(dispute.id);
  if (dispute.subject.is_realisation()) {
    upsert.BindNull().Bind(dispute.subject.realisation().ToString());
  } else {
    upsert.Bind(paths_.at(dispute.subject.path().full()).id).BindNull();
  }
  upsert.Bind(dispute.signed_record)
      .Bind(dispute.opened_unix)
      .Bind(dispute.updated_unix)
      .Bind(static_cast<int64_t>(dispute.fingerprint_count))
      .Bind(static_cast<int64_t>(dispute.state))
      .Bind(JoinOperators(dispute.operators));
  return upsert.Run();
}

absl::StatusOr<bool> SqliteAttestationStore::Writer::InsertResolution(const StoredResolution& resolution) {
  auto insert = insert_resolution_->Begin("storing a resolution");
  insert.Bind(resolution.dispute_id)
      .Bind(resolution.signed_note)
      .Bind(static_cast<int64_t>(resolution.outcome))
      .Bind(resolution.maintainer)
      .Bind(resolution.time_unix)
      .Bind(resolution.received_unix)
      .Bind(resolution.origin);
  if (absl::Status status = insert.Run(); !status.ok()) return status;
  return db_->Changes() == 1;
}

absl::Status SqliteAttestationStore::Writer::UpdateDisputeStates(const WriteBatch& batch) {
  for (const DisputeStateUpdate& update : batch.dispute_states) {
    auto set = set_dispute_state_->Begin("updating a dispute's state");
    set.Bind(static_cast<int64_t>(update.state)).Bind(update.id);
    if (absl::Status status = set.Run(); !status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PrepareDisputesStatements() {
  return PrepareStatements(*db_, {
      {&dispute_by_id_,
       "SELECT d.id, p.hash_head, p.hash_tail, p.name, d.signed_record, d.opened, d.updated, "
       "d.fingerprint_count, d.state, d.operators, d.realisation_key "
       "FROM disputes d LEFT JOIN paths p ON p.id = d.path_id WHERE d.id = ?"},
      // Open first, then by id: the order of DisputeSortKey.
      {&disputes_after_,
       "SELECT d.id, p.hash_head, p.hash_tail, p.name, d.signed_record, d.opened, d.updated, "
       "d.fingerprint_count, d.state, d.operators, d.realisation_key "
       "FROM disputes d LEFT JOIN paths p ON p.id = d.path_id "
       "WHERE (d.state <> 0, d.id) > (?1, ?6) " + std::string(kDisputeFilters) +
           " ORDER BY d.state <> 0, d.id LIMIT ?5"},
      {&count_matching_disputes_,
       "SELECT count(*) FROM disputes d LEFT JOIN paths p ON p.id = d.path_id WHERE ?1 = ?1 " +
           std::string(kDisputeFilters)},
      {&resolutions_for_,
       "SELECT dispute_id, note, outcome, maintainer, time, received, origin FROM resolutions "
       "WHERE dispute_id = ? ORDER BY time, note"},
      {&all_resolutions_,
       "SELECT dispute_id, note, outcome, maintainer, time, received, origin FROM resolutions "
       "ORDER BY dispute_id, time, note"},
  });
}

absl::StatusOr<std::optional<StoredDispute>> SqliteAttestationStore::Reader::GetDispute(const std::string& id) {
  auto use = dispute_by_id_->Begin("reading a dispute");
  use.Bind(id);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  return DisputeFromRow(use);
}

absl::StatusOr<std::vector<StoredDispute>> SqliteAttestationStore::Reader::ListDisputes(const DisputeQuery& query) {
  // The sort key "<0|1><id>" as (state <> 0, id); "" sorts before every dispute.
  int64_t after_rank = -1;
  std::string after_id;
  if (!query.after_key.empty()) {
    // Keys compare as strings: a first character other than 0 or 1 sorts before or after all.
    const char rank = query.after_key[0];
    after_rank = rank < '0' ? -1 : rank > '1' ? 2 : rank - '0';
    after_id = rank == '0' || rank == '1' ? query.after_key.substr(1) : std::string();
  }
  auto use = disputes_after_->Begin("listing disputes");
  BindDisputeFilters(use.Bind(after_rank), query).Bind(static_cast<int64_t>(query.limit)).Bind(after_id);
  std::vector<StoredDispute> page;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto dispute = DisputeFromRow(use);
    if (!dispute.ok()) return dispute.status();
    page.push_back(std::move(*dispute));
  }
  return page;
}

absl::StatusOr<int64_t> SqliteAttestationStore::Reader::CountDisputes(const DisputeQuery& query) {
  auto use = count_matching_disputes_->Begin("counting disputes");
  BindDisputeFilters(use.Bind(""), query);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  return *row ? use.Int(0) : 0;
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::Reader::ResolutionsFor(
    const std::string& dispute_id) {
  auto use = resolutions_for_->Begin("reading a dispute's resolutions");
  use.Bind(dispute_id);
  return ResolutionRows(use);
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::Reader::AllResolutions() {
  auto use = all_resolutions_->Begin("reading resolutions");
  return ResolutionRows(use);
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::Reader::ResolutionRows(Statement::Use& use) {
  std::vector<StoredResolution> out;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    auto resolution = ResolutionFromRow(use);
    if (!resolution.ok()) return resolution.status();
    out.push_back(std::move(*resolution));
  }
  return out;
}

absl::StatusOr<StoredDispute> SqliteAttestationStore::Reader::DisputeFromRow(const Statement::Use& row) {
  std::optional<consensus::DisputeSubject> subject;
  if (row.IsNull(10)) {
    auto path = PathFromRow(row.Int(1), row.Blob(2), row.Text(3), db_->path());
    if (!path.ok()) return path.status();
    subject.emplace(*std::move(path));
  } else {
    auto key = consensus::RealisationKey::Parse(row.Text(10));
    if (!key.ok()) {
      return Corrupt(db_->path(), consensus::Cat("dispute ", row.Text(0), ": ", key.status().message()));
    }
    subject.emplace(*std::move(key));
  }
  const int64_t state = row.Int(8);
  if (state < 0 || state > static_cast<int64_t>(consensus::DisputeState::kResolved)) {
    return Corrupt(db_->path(), consensus::Cat("dispute state ", state));
  }
  return StoredDispute{.id = std::string(row.Text(0)),
                       .subject = *std::move(subject),
                       .signed_record = std::string(row.Text(4)),
                       .opened_unix = row.Int(5),
                       .updated_unix = row.Int(6),
                       .fingerprint_count = static_cast<int>(row.Int(7)),
                       .state = static_cast<consensus::DisputeState>(state),
                       .operators = SplitOperators(row.Text(9))};
}

absl::StatusOr<StoredResolution> SqliteAttestationStore::Reader::ResolutionFromRow(const Statement::Use& row) {
  const int64_t outcome = row.Int(2);
  if (outcome < 1 || outcome > static_cast<int64_t>(consensus::ResolutionOutcome::kResolved)) {
    return Corrupt(db_->path(), consensus::Cat("resolution outcome ", outcome));
  }
  return StoredResolution{.dispute_id = std::string(row.Text(0)),
                          .signed_note = std::string(row.Text(1)),
                          .outcome = static_cast<consensus::ResolutionOutcome>(outcome),
                          .maintainer = std::string(row.Text(3)),
                          .time_unix = row.Int(4),
                          .received_unix = row.Int(5),
                          .origin = std::string(row.Text(6))};
}

}  // namespace attest::storage
