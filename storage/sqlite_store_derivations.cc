// SqliteAttestationStore, derivations (storage/derivation_store.h): `derivations` (the .drv files),
// `derivation_inputs` and `derivation_outputs` (indexed by output path, which also serves lookups by
// hash part). Written in a transaction of their own: derivations are not logged and touch nothing else.
#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using sqlite::Transaction;
using sqlite_store::Bytes;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::ForEachChunk;
using sqlite_store::InList;
using sqlite_store::PrepareStatements;

// Running counts behind GetDerivationStats, rows of `counters` (absent until the first derivation).
constexpr std::string_view kDerivationsCounter = "derivations";
constexpr std::string_view kDerivationBytesCounter = "derivation_bytes";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PrepareDerivationsStatements() {
  return PrepareStatements(*db_, {
      // DO NOTHING on a held path: the first copy stays, and Changes() tells the two apart.
      {&insert_derivation_,
       "INSERT INTO derivations(path, contents, received) VALUES (?, ?, ?) ON CONFLICT (path) DO NOTHING"},
      {&insert_derivation_input_, "INSERT INTO derivation_inputs(drv_id, input) VALUES (?, ?)"},
      {&insert_derivation_output_, "INSERT INTO derivation_outputs(drv_id, name, path) VALUES (?, ?, ?)"},
  });
}

absl::StatusOr<bool> SqliteAttestationStore::Writer::InsertDerivation(const StoredDerivation& derivation) {
  {
    auto insert = insert_derivation_->Begin("storing a derivation");
    insert.Bind(derivation.path.full()).BindBlob(Bytes(derivation.contents)).Bind(derivation.received_unix);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  if (db_->Changes() == 0) return false;
  const int64_t id = db_->LastInsertRowId();
  // Validated sorted and unique, so neither insert can meet its primary key twice.
  for (const StorePath& input : derivation.input_derivations) {
    auto insert = insert_derivation_input_->Begin("storing a derivation's inputs");
    insert.Bind(id).Bind(input.full());
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  for (const DerivationOutputPath& output : derivation.outputs) {
    auto insert = insert_derivation_output_->Begin("storing a derivation's outputs");
    insert.Bind(id).Bind(output.output_name).Bind(output.path.full());
    if (absl::Status status = insert.Run(); !status.ok()) return status;
  }
  return true;
}

absl::StatusOr<std::vector<WriteOutcome>> SqliteAttestationStore::Writer::PutDerivations(
    std::span<const StoredDerivation> derivations) {
  // Up front, so that a refused item costs no transaction and stores nothing.
  for (size_t i = 0; i < derivations.size(); ++i) {
    if (absl::Status status = ValidateStoredDerivation(derivations[i], i, derivations.size()); !status.ok()) {
      return status;
    }
  }
  std::vector<WriteOutcome> outcomes;
  if (derivations.empty()) return outcomes;
  outcomes.reserve(derivations.size());
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  int64_t inserted = 0;
  int64_t bytes = 0;
  for (size_t i = 0; i < derivations.size(); ++i) {
    auto stored = InsertDerivation(derivations[i]);
    if (!stored.ok()) {
      return absl::Status(stored.status().code(), consensus::Cat("derivation ", i + 1, " of ", derivations.size(),
                                                                 ": ", stored.status().message()));
    }
    outcomes.push_back(*stored ? WriteOutcome::kInserted : WriteOutcome::kAlreadyPresent);
    if (*stored) {
      ++inserted;
      bytes += static_cast<int64_t>(derivations[i].contents.size());
    }
  }
  if (absl::Status status = BumpCounter(kDerivationsCounter, inserted); !status.ok()) return status;
  if (absl::Status status = BumpCounter(kDerivationBytesCounter, bytes); !status.ok()) return status;
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  return outcomes;
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PrepareDerivationsStatements() {
  return PrepareStatements(*db_, {
      {&held_derivations_, InList("SELECT path FROM derivations WHERE path")},
      {&derivations_by_path_, InList("SELECT id, path, contents, received FROM derivations WHERE path")},
      {&inputs_by_drv_, InList("SELECT drv_id, input FROM derivation_inputs WHERE drv_id") + " ORDER BY drv_id, input"},
      {&outputs_by_drv_,
       InList("SELECT drv_id, name, path FROM derivation_outputs WHERE drv_id") + " ORDER BY drv_id, name"},
      {&producers_by_output_,
       InList("SELECT o.path, d.path, o.name FROM derivation_outputs AS o JOIN derivations AS d ON d.id = o.drv_id "
              "WHERE o.path")},
      {&output_by_hash_range_,
       "SELECT path FROM derivation_outputs WHERE path >= ? AND path < ? ORDER BY path LIMIT 1"},
      {&derivation_counters_, "SELECT name, value FROM counters WHERE name IN (?, ?)"},
  });
}

absl::StatusOr<StorePath> SqliteAttestationStore::Reader::StoredPath(std::string_view text, std::string_view what) {
  auto path = StorePath::Parse(text);
  if (!path.ok()) return Corrupt(db_->path(), consensus::Cat(what, ": ", path.status().message()));
  return *std::move(path);
}

absl::StatusOr<std::vector<bool>> SqliteAttestationStore::Reader::HasDerivations(std::span<const StorePath> paths) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  absl::flat_hash_set<std::string> held;
  if (absl::Status status = ForEachChunk(
          *held_derivations_, paths, "looking derivations up",
          [](sqlite::Statement::Use& use, const StorePath& path) { use.Bind(path.full()); },
          [&](sqlite::Statement::Use& use) {
            held.emplace(use.Text(0));
            return absl::OkStatus();
          });
      !status.ok()) {
    return status;
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  std::vector<bool> out;
  out.reserve(paths.size());
  for (const StorePath& path : paths) out.push_back(held.contains(path.full()));
  return out;
}

absl::StatusOr<std::vector<std::optional<StoredDerivation>>> SqliteAttestationStore::Reader::GetDerivations(
    std::span<const StorePath> paths) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  // node_hash_map: by_id points into it while it grows.
  absl::node_hash_map<std::string, StoredDerivation> by_path;
  absl::flat_hash_map<int64_t, StoredDerivation*> by_id;
  std::vector<int64_t> ids;
  if (absl::Status status = ForEachChunk(
          *derivations_by_path_, paths, "reading derivations",
          [](sqlite::Statement::Use& use, const StorePath& path) { use.Bind(path.full()); },
          [&](sqlite::Statement::Use& use) -> absl::Status {
            auto path = StoredPath(use.Text(1), consensus::Cat("derivation row ", use.Int(0)));
            if (!path.ok()) return path.status();
            // A path asked for twice may be in two chunks' answers.
            if (by_path.contains(path->full())) return absl::OkStatus();
            std::string key = path->full();
            auto [it, inserted] = by_path.emplace(
                std::move(key), StoredDerivation{.path = *std::move(path),
                                                 .contents = std::string(Chars(use.Blob(2))),
                                                 .input_derivations = {},
                                                 .outputs = {},
                                                 .received_unix = use.Int(3)});
            by_id.emplace(use.Int(0), &it->second);
            ids.push_back(use.Int(0));
            return absl::OkStatus();
          });
      !status.ok()) {
    return status;
  }
  // Inputs and outputs of all of them, kChunk derivations per statement, in primary key order.
  if (absl::Status status = ForEachChunk(
          *inputs_by_drv_, std::span<const int64_t>(ids), "reading derivations' inputs",
          [](sqlite::Statement::Use& use, int64_t id) { use.Bind(id); },
          [&](sqlite::Statement::Use& use) -> absl::Status {
            auto input = StoredPath(use.Text(1), consensus::Cat("an input of derivation row ", use.Int(0)));
            if (!input.ok()) return input.status();
            by_id.at(use.Int(0))->input_derivations.push_back(*std::move(input));
            return absl::OkStatus();
          });
      !status.ok()) {
    return status;
  }
  if (absl::Status status = ForEachChunk(
          *outputs_by_drv_, std::span<const int64_t>(ids), "reading derivations' outputs",
          [](sqlite::Statement::Use& use, int64_t id) { use.Bind(id); },
          [&](sqlite::Statement::Use& use) -> absl::Status {
            auto output = StoredPath(use.Text(2), consensus::Cat("an output of derivation row ", use.Int(0)));
            if (!output.ok()) return output.status();
            by_id.at(use.Int(0))->outputs.push_back(
                DerivationOutputPath{.output_name = std::string(use.Text(1)), .path = *std::move(output)});
            return absl::OkStatus();
          });
      !status.ok()) {
    return status;
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  std::vector<std::optional<StoredDerivation>> out;
  out.reserve(paths.size());
  for (const StorePath& path : paths) {
    auto it = by_path.find(path.full());
    out.push_back(it == by_path.end() ? std::nullopt : std::optional(it->second));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> SqliteAttestationStore::Reader::DerivationsProducing(
    std::span<const StorePath> outputs) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  absl::flat_hash_map<std::string, std::vector<DerivationOfOutput>> by_output;
  if (absl::Status status = ForEachChunk(
          *producers_by_output_, outputs, "looking up the derivations of outputs",
          [&](sqlite::Statement::Use& use, const StorePath& output) { use.Bind(output.full()); },
          [&](sqlite::Statement::Use& use) -> absl::Status {
            auto drv_path = StoredPath(use.Text(1), "a derivation listing an output");
            if (!drv_path.ok()) return drv_path.status();
            by_output[std::string(use.Text(0))].push_back(
                DerivationOfOutput{.drv_path = *std::move(drv_path), .output_name = std::string(use.Text(2))});
            return absl::OkStatus();
          });
      !status.ok()) {
    return status;
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  for (auto& [output, producers] : by_output) {
    std::ranges::sort(producers, [](const DerivationOfOutput& a, const DerivationOfOutput& b) {
      return std::tie(a.drv_path, a.output_name) < std::tie(b.drv_path, b.output_name);
    });
    // The same output asked for in two chunks (or twice in one IN list) yields its rows again.
    producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
  }
  std::vector<std::vector<DerivationOfOutput>> out;
  out.reserve(outputs.size());
  for (const StorePath& output : outputs) {
    auto it = by_output.find(output.full());
    out.push_back(it == by_output.end() ? std::vector<DerivationOfOutput>{} : it->second);
  }
  return out;
}

absl::StatusOr<std::optional<StorePath>> SqliteAttestationStore::Reader::OutputPathByHashPart(
    std::string_view hash_part) {
  // '.' follows '-' in byte order, and every path with this hash part starts with the lower bound.
  const std::string from = consensus::Cat(consensus::kStoreDir, "/", hash_part, "-");
  const std::string to = consensus::Cat(consensus::kStoreDir, "/", hash_part, ".");
  auto use = output_by_hash_range_->Begin("looking an output path up by its hash part");
  use.Bind(from).Bind(to);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::nullopt;
  auto path = StoredPath(use.Text(0), "a derivation's output path");
  if (!path.ok()) return path.status();
  return std::optional(*std::move(path));
}

absl::StatusOr<DerivationStats> SqliteAttestationStore::Reader::GetDerivationStats() {
  DerivationStats stats;
  auto use = derivation_counters_->Begin("reading derivation counters");
  use.Bind(kDerivationsCounter).Bind(kDerivationBytesCounter);
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (use.Text(0) == kDerivationsCounter) stats.derivations = use.Int(1);
    if (use.Text(0) == kDerivationBytesCounter) stats.content_bytes = use.Int(1);
  }
  return stats;
}

}  // namespace attest::storage
