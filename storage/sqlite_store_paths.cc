// SqliteAttestationStore, store paths (the ledger's attestations): the `paths` rows and their
// PathRecord blobs, the key / observed key / label dictionaries, the counters behind Stats and
// AttestationsPerKey, and the integrity checks of the scrub. See docs/storage.md for the layout.
#include <algorithm>
#include <array>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace sqlite_store {

using consensus::StorePath;

absl::StatusOr<PathHashBytes> PathHash(const StorePath& path) {
  auto bytes = consensus::Nix32Decode(path.hash_part(), kPathHashBytes);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        consensus::Cat("store path ", path.full(), " has an undecodable hash part: ",
                     bytes.status().message()));
  }
  PathHashBytes hash;
  std::ranges::copy(*bytes, hash.begin());
  return hash;
}

int64_t HashHead(const PathHashBytes& hash) {
  uint64_t head = 0;
  for (size_t i = 0; i < kHashHeadBytes; ++i) head = head << 8 | hash[i];
  return static_cast<int64_t>(head);
}

std::span<const uint8_t> HashTail(const PathHashBytes& hash) {
  return std::span<const uint8_t>(hash).subspan(kHashHeadBytes);
}

absl::StatusOr<StorePath> PathFromHash(std::span<const uint8_t> hash, std::string_view name,
                                       const std::string& file) {
  auto path = StorePath::Parse(
      consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(hash), "-", name));
  if (!path.ok()) return Corrupt(file, consensus::Cat("bad store path: ", path.status().message()));
  return path;
}

// A store path from its row in `paths`.
absl::StatusOr<StorePath> PathFromRow(int64_t head, std::span<const uint8_t> tail,
                                      std::string_view name, const std::string& file) {
  if (tail.size() != kHashTailBytes) {
    return Corrupt(file, consensus::Cat("a store path hash tail of ", tail.size(), " bytes"));
  }
  PathHashBytes hash;
  for (size_t i = 0; i < kHashHeadBytes; ++i) {
    hash[i] = static_cast<uint8_t>(static_cast<uint64_t>(head) >> (8 * (kHashHeadBytes - 1 - i)));
  }
  std::ranges::copy(tail, hash.begin() + kHashHeadBytes);
  return PathFromHash(hash, name, file);
}

std::string InList(std::string_view sql_prefix) {
  std::string sql(sql_prefix);
  sql += " IN (";
  for (int i = 0; i < kChunk; ++i) sql += i == 0 ? "?" : ", ?";
  sql += ")";
  return sql;
}

// The deriver Nix would record for output `output_name` of `path`: "<name>.drv", where <name> is the
// path's name without the "-<output>" suffix Nix appends for outputs other than "out".
static std::string ImpliedDeriverName(std::string_view path_name, std::string_view output_name) {
  std::string_view base = path_name;
  if (!output_name.empty() && output_name != "out") {
    std::string suffix = consensus::Cat("-", output_name);
    if (base.size() > suffix.size() && base.ends_with(suffix)) {
      base.remove_suffix(suffix.size());
    }
  }
  return consensus::Cat(base, ".drv");
}

int64_t RealisationRowId(std::string_view key) {
  const std::array<uint8_t, 32> digest = consensus::Sha256(consensus::Cat("attest/realisation-key/v1\n", key));
  uint64_t id = 0;
  for (size_t i = 0; i < 8; ++i) id = (id << 8) | digest[i];
  id &= 0x7fffffffffffffffULL;
  return id == 0 ? 1 : static_cast<int64_t>(id);
}

// A deriver takes 20 bytes in the common case: its name is almost always the implied one.
absl::StatusOr<std::vector<uint8_t>> EncodeDeriver(std::string_view deriver, const StorePath& path,
                                                   std::string_view output_name) {
  auto drv = StorePath::Parse(deriver);
  if (!drv.ok()) {
    return absl::InvalidArgumentError(
        consensus::Cat("deriver ", deriver, " is not a store path: ", drv.status().message()));
  }
  auto hash = PathHash(*drv);
  if (!hash.ok()) return hash.status();
  std::vector<uint8_t> bytes(hash->begin(), hash->end());
  if (drv->name() != ImpliedDeriverName(path.name(), output_name)) {
    bytes.insert(bytes.end(), drv->name().begin(), drv->name().end());
  }
  return bytes;
}

absl::StatusOr<std::string> DecodeDeriver(std::span<const uint8_t> blob, const StorePath& path,
                                          std::string_view output_name, const std::string& file) {
  if (blob.size() < kPathHashBytes) {
    return Corrupt(file, consensus::Cat("a deriver of ", blob.size(), " bytes"));
  }
  std::string name =
      blob.size() == kPathHashBytes
          ? ImpliedDeriverName(path.name(), output_name)
          : std::string(reinterpret_cast<const char*>(blob.data()) + kPathHashBytes,
                        blob.size() - kPathHashBytes);
  // Formatted, not parsed: it was a valid store path when written, and this runs for every
  // attestation read.
  return consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(blob.first(kPathHashBytes)),
                        "-", name);
}

}  // namespace sqlite_store

namespace {

using consensus::StorePath;
using sqlite::Statement;
using sqlite::Transaction;
using sqlite_store::Bytes;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::DecodeDeriver;
using sqlite_store::EncodeDeriver;
using sqlite_store::ForEachChunk;
using sqlite_store::HashHead;
using sqlite_store::HashTail;
using sqlite_store::InList;
using sqlite_store::kKeyCounterEnd;
using sqlite_store::kKeyCounterPrefix;
using sqlite_store::PathFromRow;
using sqlite_store::PathHash;
using sqlite_store::PrepareStatements;

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PreparePathsStatements() {
  return PrepareStatements(*db_, {
      {&find_paths_,
       InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE hash_head")},
      {&insert_path_,
       "INSERT INTO paths(hash_head, hash_tail, name, record) VALUES (?, ?, ?, ?)"},
      {&update_path_, "UPDATE paths SET record = ? WHERE id = ?"},
      {&find_key_, "SELECT id FROM keys WHERE name = ?"},
      {&insert_key_, "INSERT INTO keys(name) VALUES (?)"},
      {&find_observed_key_, "SELECT id FROM observed_keys WHERE public_key = ?"},
      {&insert_observed_key_, "INSERT INTO observed_keys(public_key) VALUES (?)"},
      {&find_label_, "SELECT id FROM labels WHERE text = ?"},
      {&insert_label_, "INSERT INTO labels(text) VALUES (?)"},
      {&bump_counter_,
       "INSERT INTO counters(name, value) VALUES (?2, ?1) "
       "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"},
  });
}

absl::Status SqliteAttestationStore::Writer::LoadPaths(std::span<const StorePath* const> paths) {
  std::vector<int64_t> heads;
  absl::flat_hash_map<int64_t, std::vector<PathRow*>> by_head;
  for (const StorePath* path : paths) {
    auto [it, inserted] = paths_.try_emplace(path->full());
    if (!inserted) continue;
    auto hash = PathHash(*path);
    if (!hash.ok()) return hash.status();
    it->second.path = path;
    it->second.hash = *hash;
    std::vector<PathRow*>& same_head = by_head[HashHead(*hash)];
    if (same_head.empty()) heads.push_back(HashHead(*hash));
    same_head.push_back(&it->second);
  }
  return ForEachChunk<int64_t>(
      *find_paths_, heads, "looking up store paths",
      [](Statement::Use& use, int64_t head) { use.Bind(head); },
      [&](Statement::Use& row) -> absl::Status {
        auto candidates = by_head.find(row.Int(1));
        if (candidates == by_head.end()) return absl::OkStatus();
        for (PathRow* wanted : candidates->second) {
          if (!std::ranges::equal(row.Blob(2), HashTail(wanted->hash)) ||
              row.Text(3) != wanted->path->name()) {
            continue;
          }
          auto record = DecodePathRecord(row.Blob(4), wanted->path->full());
          if (!record.ok()) return Corrupt(db_->path(), consensus::StdView(record.status().message()));
          wanted->id = row.Int(0);
          wanted->stored_signatures = record->signatures.size();
          wanted->record = std::move(*record);
          break;
        }
        return absl::OkStatus();
      });
}

absl::StatusOr<int64_t> SqliteAttestationStore::Writer::DictionaryId(
    absl::flat_hash_map<std::string, int64_t>& cache, Statement& find, Statement& insert, std::string_view value,
    ValueType type, std::string_view context) {
  if (auto it = cache.find(consensus::AbslView(value)); it != cache.end()) return it->second;
  const bool is_blob = type == ValueType::kBlob;
  std::optional<int64_t> id;
  {
    auto use = find.Begin(context);
    if (is_blob) {
      use.BindBlob(Bytes(value));
    } else {
      use.Bind(value);
    }
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (*row) id = use.Int(0);
  }
  if (!id.has_value()) {
    auto use = insert.Begin(context);
    if (is_blob) {
      use.BindBlob(Bytes(value));
    } else {
      use.Bind(value);
    }
    if (absl::Status status = use.Run(); !status.ok()) return status;
    id = db_->LastInsertRowId();
  }
  cache.emplace(std::string(value), *id);
  return *id;
}

absl::StatusOr<int64_t> SqliteAttestationStore::Writer::LabelId(std::string_view text) {
  if (text.empty()) return 0;
  return DictionaryId(label_ids_, *find_label_, *insert_label_, text, ValueType::kText,
                      "storing a label");
}

absl::StatusOr<WriteOutcome> SqliteAttestationStore::Writer::AddAttestation(const StoredAttestation& stored) {
  const consensus::Attestation& a = stored.attestation;
  const consensus::BuildMetadata& meta = a.metadata;
  PathRow& row = paths_.at(a.claim.path.full());
  auto key_id = DictionaryId(key_ids_, *find_key_, *insert_key_, a.key_name(), ValueType::kText,
                             "storing a key name");
  if (!key_id.ok()) return key_id.status();

  uint32_t claim = 0;
  const auto& nar_hash = a.claim.nar_hash.digest();
  while (claim < row.record.claims.size()) {
    const RecordClaim& c = row.record.claims[claim];
    if (c.nar_size == a.claim.nar_size && c.nar_hash == nar_hash &&
        c.references == a.claim.references) {
      break;
    }
    ++claim;
  }
  if (claim < row.record.claims.size()) {
    for (RecordSignature& sig : row.record.signatures) {
      if (sig.claim != claim || sig.key_id != *key_id) continue;
      // Held already: only an earlier receipt time (another log received it first) is taken, so every
      // node converges on the earliest time any log shows (store_writer.h).
      if (stored.received_unix < sig.received_unix) {
        sig.received_unix = stored.received_unix;
        row.changed = true;
      }
      return WriteOutcome::kAlreadyPresent;
    }
  }

  RecordSignature sig{.claim = claim,
                      .key_id = *key_id,
                      .signature = a.signature.bytes,
                      .received_unix = stored.received_unix,
                      .observed_key_id = 0,
                      .deriver = {},
                      .output_id = 0,
                      .system_id = 0,
                      .build_kind = static_cast<int64_t>(meta.build_kind),
                      .build_time_unix = meta.build_time_unix};
  if (stored.observed_key.has_value()) {
    const auto& bytes = stored.observed_key->bytes();
    auto id = DictionaryId(observed_key_ids_, *find_observed_key_, *insert_observed_key_,
                           Chars(bytes), ValueType::kBlob, "storing an observed key");
    if (!id.ok()) return id.status();
    sig.observed_key_id = *id;
  }
  if (!meta.deriver.empty()) {
    auto encoded = EncodeDeriver(meta.deriver, a.claim.path, meta.output_name);
    if (!encoded.ok()) return encoded.status();
    sig.deriver.assign(encoded->begin(), encoded->end());
  }
  auto output_id = LabelId(meta.output_name);
  if (!output_id.ok()) return output_id.status();
  sig.output_id = *output_id;
  auto system_id = LabelId(meta.system);
  if (!system_id.ok()) return system_id.status();
  sig.system_id = *system_id;
  auto origin_id = LabelId(stored.origin);
  if (!origin_id.ok()) return origin_id.status();
  sig.origin_id = *origin_id;

  if (claim == row.record.claims.size()) {
    row.record.claims.push_back(RecordClaim{
        .nar_hash = nar_hash, .nar_size = a.claim.nar_size, .references = a.claim.references});
  }
  row.record.signatures.push_back(std::move(sig));
  row.changed = true;
  return WriteOutcome::kInserted;
}

absl::Status SqliteAttestationStore::Writer::StoreChangedPaths(int64_t& new_paths) {
  std::vector<uint8_t> encoded;
  for (auto& [full, row] : paths_) {
    if (!row.changed && row.id != 0) continue;
    encoded.clear();
    EncodePathRecord(row.record, row.path->full(), encoded);
    if (row.id == 0) {
      auto insert = insert_path_->Begin("inserting a store path");
      insert.Bind(HashHead(row.hash)).BindBlob(HashTail(row.hash)).Bind(row.path->name()).BindBlob(
          encoded);
      if (absl::Status status = insert.Run(); !status.ok()) return status;
      row.id = db_->LastInsertRowId();
    } else {
      auto update = update_path_->Begin("updating a store path");
      update.BindBlob(encoded).Bind(row.id);
      if (absl::Status status = update.Run(); !status.ok()) return status;
    }
    if (row.stored_signatures == 0 && !row.record.signatures.empty()) ++new_paths;
    row.stored_signatures = row.record.signatures.size();
    row.changed = false;
  }
  return absl::OkStatus();
}

absl::Status SqliteAttestationStore::Writer::BumpCounter(std::string_view name, int64_t delta) {
  if (delta == 0) return absl::OkStatus();
  auto bump = bump_counter_->Begin("updating counters");
  bump.Bind(delta).Bind(name);
  return bump.Run();
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PreparePathsStatements() {
  return PrepareStatements(*db_, {
      // Both give (id, hash_head, hash_tail, name, record), so one row handler reads either.
      {&paths_by_head_, InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE hash_head")},
      {&newest_path_id_, "SELECT coalesce(max(id), 0) FROM paths"},
      // A few new rows: a range of the table. Many: the whole index, which holds both columns and is
      // a thirtieth of the table's size.
      {&path_ids_after_, "SELECT id, hash_head FROM paths WHERE id > ?"},
      {&all_path_ids_after_, "SELECT id, hash_head FROM paths INDEXED BY paths_by_hash WHERE id > ?"},
      {&paths_by_id_, InList("SELECT id, hash_head, hash_tail, name, record FROM paths WHERE id")},
      {&key_name_, "SELECT name FROM keys WHERE id = ?"},
      {&observed_key_, "SELECT public_key FROM observed_keys WHERE id = ?"},
      {&label_, "SELECT text FROM labels WHERE id = ?"},
      {&counters_, "SELECT name, value FROM counters"},
      {&key_counters_, "SELECT name, value FROM counters WHERE name >= ? AND name < ? ORDER BY name"},
      {&count_disputes_, "SELECT count(*) FROM disputes"},
      {&count_open_disputes_, "SELECT count(*) FROM disputes WHERE state = 0"},
      {&count_resolutions_, "SELECT count(*) FROM resolutions"},
  });
}

absl::StatusOr<SqliteAttestationStore::RecordCheck> SqliteAttestationStore::Reader::CheckPathRecords(int64_t after_id,
                                                                                                   int limit) {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  if (!check_rows_) {
    for (auto [statement, sql] : {std::pair{&check_rows_, "SELECT id, hash_head, hash_tail, name, record FROM paths "
                                                         "WHERE id > ? ORDER BY id LIMIT ?"},
                                  std::pair{&check_index_, "SELECT count(*) FROM paths INDEXED BY paths_by_hash "
                                                          "WHERE hash_head = ? AND id = ?"}}) {
      auto prepared = db_->Prepare(sql);
      if (!prepared.ok()) return prepared.status();
      *statement = *std::move(prepared);
    }
  }
  RecordCheck check;
  check.last_id = after_id;
  std::vector<std::pair<int64_t, int64_t>> rows;  // id, head
  {
    auto use = check_rows_->Begin("checking path records");
    use.Bind(after_id).Bind(static_cast<int64_t>(limit));
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      ++check.rows;
      check.last_id = use.Int(0);
      rows.emplace_back(use.Int(0), use.Int(1));
      auto path = PathFromRow(use.Int(1), use.Blob(2), use.Text(3), db_->path());
      if (!path.ok()) {
        check.problems.push_back(consensus::Cat("path row ", use.Int(0), ": ", path.status().message()));
        continue;
      }
      auto record = DecodePathRecord(use.Blob(4), path->full());
      if (!record.ok()) {
        check.problems.push_back(consensus::Cat("path row ", use.Int(0), " (", path->full(), "): ",
                                                record.status().message()));
      }
    }
  }
  for (auto [id, head] : rows) {
    auto use = check_index_->Begin("checking the path index");
    use.Bind(head).Bind(id);
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row || use.Int(0) != 1) {
      check.problems.push_back(consensus::Cat("path row ", id,
                                              " is not found through the index paths_by_hash (a read of "
                                              "its path would answer UNKNOWN): rebuild it with REINDEX"));
    }
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  return check;
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::Reader::QuickCheck() {
  auto statement = db_->Prepare("PRAGMA quick_check");
  if (!statement.ok()) return statement.status();
  auto use = (*statement)->Begin("checking the database file");
  std::vector<std::string> problems;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    if (use.Text(0) != "ok") problems.push_back(consensus::Cat("SQLite quick_check: ", use.Text(0)));
  }
  return problems;
}

absl::StatusOr<std::vector<std::vector<StoredAttestation>>> SqliteAttestationStore::Reader::AttestationsFor(
                                    std::span<const StorePath> paths) {
  // Distinct paths ("slots"); a path asked for twice is read once.
  absl::flat_hash_map<std::string_view, size_t> slot_of_path;
  std::vector<size_t> slot_of_input(paths.size());
  std::vector<Slot> slots;
  absl::flat_hash_map<int64_t, std::vector<size_t>> slots_of_head;
  std::vector<int64_t> heads;
  for (size_t i = 0; i < paths.size(); ++i) {
    auto [it, inserted] = slot_of_path.try_emplace(paths[i].full(), slots.size());
    slot_of_input[i] = it->second;
    if (!inserted) continue;
    auto hash = PathHash(paths[i]);
    if (!hash.ok()) return hash.status();
    std::vector<size_t>& same_head = slots_of_head[HashHead(*hash)];
    if (same_head.empty()) heads.push_back(HashHead(*hash));
    same_head.push_back(slots.size());
    slots.push_back(Slot{.path = &paths[i], .hash = *hash, .attestations = {}, .uses = 0});
  }
  for (size_t slot : slot_of_input) ++slots[slot].uses;

  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  // The rows' ids from the in-memory index when it is up to this snapshot (one table descent per
  // path), else SQLite's index on hash_head (two). Either way kChunk keys per statement, ascending
  // (SQLite sorts an IN list) so that consecutive seeks share pages; each row carries the whole
  // record, and its hash and name are compared below, so extra candidates are harmless.
  auto ids = CandidateIds(heads);
  if (!ids.ok()) return ids.status();
  const bool by_id = ids->has_value();
  absl::Status status = ForEachChunk<int64_t>(
      by_id ? *paths_by_id_ : *paths_by_head_, by_id ? std::span<const int64_t>(**ids) : heads,
      "reading store paths", [](Statement::Use& use, int64_t key) { use.Bind(key); },
      [&](Statement::Use& row) -> absl::Status {
        auto same_head = slots_of_head.find(row.Int(1));
        if (same_head == slots_of_head.end()) return absl::OkStatus();
        for (size_t candidate : same_head->second) {
          Slot& slot = slots[candidate];
          if (std::ranges::equal(row.Blob(2), HashTail(slot.hash)) && row.Text(3) == slot.path->name()) {
            auto record = DecodePathRecord(row.Blob(4), slot.path->full());
            if (!record.ok()) return Corrupt(db_->path(), consensus::StdView(record.status().message()));
            auto built = BuildAttestations(*slot.path, std::move(*record));
            if (!built.ok()) return built.status();
            slot.attestations = std::move(*built);
            break;
          }
        }
        // Otherwise another path with the same hash head (or hash part): not asked for.
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  status = tx->Commit();
  if (!status.ok()) return status;

  std::vector<std::vector<StoredAttestation>> result(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    Slot& slot = slots[slot_of_input[i]];
    if (--slot.uses == 0) {
      result[i] = std::move(slot.attestations);
    } else {
      result[i] = slot.attestations;
    }
  }
  return result;
}

absl::Status SqliteAttestationStore::Reader::SyncPathIds() {
  if (!path_ids_.usable()) return absl::OkStatus();
  auto newest = [&]() -> absl::StatusOr<int64_t> {
    auto use = newest_path_id_->Begin("reading the newest path id");
    auto row = use.Step();
    if (!row.ok()) return row.status();
    return use.Int(0);
  }();
  if (!newest.ok()) return newest.status();
  return path_ids_.CatchUp(*newest, [&](int64_t after, PathIdIndex::AddRow add) -> absl::Status {
    Statement& scan = (*newest - after) * 16 > *newest ? *all_path_ids_after_ : *path_ids_after_;
    auto use = scan.Begin("indexing store paths");
    use.Bind(after);
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
      add(use.Int(1), use.Int(0));
    }
  });
}

absl::StatusOr<std::optional<std::vector<int64_t>>> SqliteAttestationStore::Reader::CandidateIds(
    std::span<const int64_t> heads) {
  if (absl::Status status = SyncPathIds(); !status.ok()) return status;
  if (!path_ids_.usable()) return std::nullopt;
  std::vector<int64_t> ids;
  ids.reserve(heads.size() + heads.size() / 8);
  path_ids_.Find(heads, [&ids](size_t, int64_t id) { ids.push_back(id); });
  std::ranges::sort(ids);
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

absl::Status SqliteAttestationStore::Reader::LoadPathIndex() {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  if (absl::Status status = SyncPathIds(); !status.ok()) return status;
  return tx->Commit();
}

absl::StatusOr<std::vector<KeyAttestationCount>> SqliteAttestationStore::Reader::AttestationsPerKey() {
  auto use = key_counters_->Begin("reading per-key counters");
  use.Bind(kKeyCounterPrefix).Bind(kKeyCounterEnd);
  std::vector<KeyAttestationCount> out;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back({.key_name = std::string(use.Text(0).substr(kKeyCounterPrefix.size())),
                   .attestations = use.Int(1)});
  }
  return out;
}

absl::StatusOr<StoreStats> SqliteAttestationStore::Reader::Stats() {
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  StoreStats stats;
  {
    auto use = counters_->Begin("reading counters");
    while (true) {
      auto row = use.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      if (use.Text(0) == "attestations") stats.attestations = use.Int(1);
      if (use.Text(0) == "paths") stats.paths = use.Int(1);
      if (use.Text(0) == "realisations") stats.realisations = use.Int(1);
      if (use.Text(0) == "realisation_keys") stats.realisation_keys = use.Int(1);
    }
  }
  for (auto [statement, out] : {std::pair{count_disputes_.get(), &stats.disputes},
                                std::pair{count_open_disputes_.get(), &stats.open_disputes},
                                std::pair{count_resolutions_.get(), &stats.resolutions}}) {
    auto use = statement->Begin("counting disputes and resolutions");
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (*row) *out = use.Int(0);
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  return stats;
}

absl::StatusOr<StoredAttestation> SqliteAttestationStore::Reader::BuildOne(const StorePath& path,
                                                                           const RecordSignature& sig,
                                                                           consensus::PathInfo claim) {
  consensus::Signature signature;
  auto key_name = KeyName(sig.key_id);
  if (!key_name.ok()) return key_name.status();
  signature.key_name = std::move(*key_name);
  signature.bytes = sig.signature;

  consensus::BuildMetadata meta;
  if (sig.output_id != 0) {
    auto output = Label(sig.output_id);
    if (!output.ok()) return output.status();
    meta.output_name = std::move(*output);
  }
  if (sig.system_id != 0) {
    auto system = Label(sig.system_id);
    if (!system.ok()) return system.status();
    meta.system = std::move(*system);
  }
  if (!sig.deriver.empty()) {
    auto deriver = DecodeDeriver(Bytes(sig.deriver), path, meta.output_name, db_->path());
    if (!deriver.ok()) return deriver.status();
    meta.deriver = std::move(*deriver);
  }
  if (sig.build_kind < 0 || sig.build_kind > static_cast<int64_t>(consensus::BuildKind::kImported)) {
    return Corrupt(db_->path(), consensus::Cat("unknown build kind ", sig.build_kind));
  }
  meta.build_kind = static_cast<consensus::BuildKind>(sig.build_kind);
  meta.build_time_unix = sig.build_time_unix;

  std::optional<consensus::PublicKey> observed_key;
  if (sig.observed_key_id != 0) {
    auto bytes = ObservedKey(sig.observed_key_id);
    if (!bytes.ok()) return bytes.status();
    auto key = consensus::PublicKey::FromBytes(signature.key_name, *bytes);
    if (!key.ok()) {
      return Corrupt(db_->path(), consensus::Cat("an unusable observed key: ", key.status().message()));
    }
    observed_key = std::move(*key);
  }
  std::string origin;
  if (sig.origin_id != 0) {
    auto label = Label(sig.origin_id);
    if (!label.ok()) return label.status();
    origin = std::move(*label);
  }
  return StoredAttestation{.attestation = consensus::Attestation{.claim = std::move(claim),
                                                                 .signature = std::move(signature),
                                                                 .metadata = std::move(meta)},
                           .received_unix = sig.received_unix,
                           .observed_key = std::move(observed_key),
                           .origin = std::move(origin)};
}

absl::StatusOr<std::vector<StoredAttestation>> SqliteAttestationStore::Reader::BuildAttestations(const StorePath& path,
                                                                                                 PathRecord record) {
  struct Built {
    consensus::PathInfo info;
    std::string fingerprint;
    int uses = 0;  // signatures over this claim not yet built; the last one takes `info`
  };
  std::vector<Built> claims;
  claims.reserve(record.claims.size());
  // Fingerprints only order attestations of different claims; most paths have one claim.
  const bool needs_fingerprints = record.claims.size() > 1;
  for (RecordClaim& claim : record.claims) {
    consensus::PathInfo info{.path = path,
                             .nar_hash = consensus::NarHash::FromDigest(claim.nar_hash),
                             .nar_size = claim.nar_size,
                             .references = std::move(claim.references)};
    std::string fingerprint = needs_fingerprints ? info.Fingerprint() : std::string();
    claims.push_back(Built{.info = std::move(info), .fingerprint = std::move(fingerprint)});
  }
  for (const RecordSignature& sig : record.signatures) ++claims[sig.claim].uses;
  std::vector<std::pair<const Built*, StoredAttestation>> found;
  found.reserve(record.signatures.size());
  for (RecordSignature& sig : record.signatures) {
    Built& claim = claims[sig.claim];
    auto stored = BuildOne(path, sig, --claim.uses == 0 ? std::move(claim.info) : claim.info);
    if (!stored.ok()) return stored.status();
    found.emplace_back(&claim, std::move(*stored));
  }
  std::ranges::sort(found, [](const auto& a, const auto& b) {
    if (a.first->fingerprint != b.first->fingerprint) {
      return a.first->fingerprint < b.first->fingerprint;
    }
    return a.second.attestation.key_name() < b.second.attestation.key_name();
  });
  std::vector<StoredAttestation> out;
  out.reserve(found.size());
  for (auto& [claim, stored] : found) out.push_back(std::move(stored));
  return out;
}

template <typename Value, typename FromRow>
absl::StatusOr<Value> SqliteAttestationStore::Reader::Dictionary(absl::flat_hash_map<int64_t, Value>& cache,
                                                                 Statement& statement, int64_t id,
                                                                 std::string_view what, FromRow from_row) {
  if (auto it = cache.find(id); it != cache.end()) return it->second;
  auto use = statement.Begin("reading a dictionary entry");
  use.Bind(id);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return Corrupt(db_->path(), consensus::Cat("reference to missing ", what, " ", id));
  auto value = from_row(use);
  if (!value.ok()) return value.status();
  cache.emplace(id, *value);
  return *value;
}

absl::StatusOr<std::string> SqliteAttestationStore::Reader::KeyName(int64_t id) {
  return Dictionary<std::string>(lookups_.key_names, *key_name_, id, "key",
                                 [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                   return std::string(row.Text(0));
                                 });
}

absl::StatusOr<std::string> SqliteAttestationStore::Reader::Label(int64_t id) {
  return Dictionary<std::string>(lookups_.labels, *label_, id, "label",
                                 [](const Statement::Use& row) -> absl::StatusOr<std::string> {
                                   return std::string(row.Text(0));
                                 });
}

absl::StatusOr<std::array<uint8_t, 32>> SqliteAttestationStore::Reader::ObservedKey(int64_t id) {
  const std::string& file = db_->path();
  return Dictionary<std::array<uint8_t, 32>>(
      lookups_.observed_keys, *observed_key_, id, "observed key",
      [&file](const Statement::Use& row) -> absl::StatusOr<std::array<uint8_t, 32>> {
        auto blob = row.Blob(0);
        if (blob.size() != 32) {
          return Corrupt(file, consensus::Cat("an observed key of ", blob.size(), " bytes"));
        }
        std::array<uint8_t, 32> bytes;
        std::ranges::copy(blob, bytes.begin());
        return bytes;
      });
}

}  // namespace attest::storage
