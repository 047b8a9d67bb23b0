// SqliteAttestationStore, realisation attestations (storage/ledger.h, schema version 11): one row of
// `realisation_records` per derivation output, its record holding each claim once (the fingerprint its
// builders signed) and every signature over one of them (storage/path_record.h), as paths' rows do;
// `realisation_out_paths` names the keys whose claims give an output path. Written in the batch's
// transaction (WriteOnce); key names, observed keys and labels share the dictionaries of attestations.
// See docs/storage.md for the layout.
#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "consensus/realisation.h"
#include "consensus/text.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using sqlite::Statement;
using sqlite::Transaction;
using sqlite_store::Chars;
using sqlite_store::Corrupt;
using sqlite_store::DecodeDeriver;
using sqlite_store::EncodeDeriver;
using sqlite_store::ForEachChunk;
using sqlite_store::InList;
using sqlite_store::PrepareStatements;

std::span<const uint8_t> Bytes(std::string_view text) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PrepareRealisationsStatements() {
  return PrepareStatements(*db_, {
      {&find_realisation_record_, "SELECT key, record FROM realisation_records WHERE id = ?"},
      {&put_realisation_record_, "INSERT OR REPLACE INTO realisation_records(id, key, record) VALUES (?, ?, ?)"},
      {&insert_realisation_out_path_, "INSERT OR IGNORE INTO realisation_out_paths(out_path, key) VALUES (?, ?)"},
  });
}

absl::StatusOr<SqliteAttestationStore::Writer::RealisationAdded> SqliteAttestationStore::Writer::AddRealisation(
    const StoredRealisation& stored) {
  const consensus::RealisationAttestation& a = stored.attestation;
  const consensus::BuildMetadata& meta = a.metadata;
  std::string key = a.claim.key.ToString();
  std::string fingerprint = a.claim.Fingerprint();
  auto key_id = DictionaryId(key_ids_, *find_key_, *insert_key_, a.key_name(), ValueType::kText,
                             "storing a key name");
  if (!key_id.ok()) return key_id.status();

  // The key's record: from this batch, else from the file.
  auto [it, first_look] = realisation_rows_.try_emplace(key);
  RealisationRow& row = it->second;
  if (first_look) {
    auto find = find_realisation_record_->Begin("reading a realisation record");
    find.Bind(sqlite_store::RealisationRowId(key));
    auto found = find.Step();
    if (!found.ok()) {
      realisation_rows_.erase(it);
      return found.status();
    }
    if (*found && find.Text(0) != key) {
      const std::string held(find.Text(0));
      realisation_rows_.erase(it);
      return absl::FailedPreconditionError(
          consensus::Cat("realisation keys ", key, " and ", held, " share a row id (one chance in 2^63): this "
                         "node cannot store the first; report it"));
    }
    if (*found) {
      auto record = DecodeRealisationRecord(find.Blob(1), key);
      if (!record.ok()) {
        realisation_rows_.erase(it);
        return record.status().code() == absl::StatusCode::kDataLoss
                   ? record.status()
                   : Corrupt(db_->path(), consensus::StdView(record.status().message()));
      }
      row.record = *std::move(record);
    }
  }
  RealisationRecord& record = row.record;

  const auto claim_at = std::ranges::find(record.fingerprints, fingerprint);
  const uint32_t claim = static_cast<uint32_t>(claim_at - record.fingerprints.begin());
  if (claim_at != record.fingerprints.end()) {
    for (RecordSignature& held : record.signatures) {
      if (held.claim != claim || held.key_id != *key_id) continue;
      // Held already: only an earlier receipt is taken, as for attestations (store_writer.h).
      if (stored.received_unix < held.received_unix) {
        held.received_unix = stored.received_unix;
        row.changed = true;
      }
      return RealisationAdded{.outcome = WriteOutcome::kAlreadyPresent, .first_of_key = false};
    }
  }

  RecordSignature signature{.claim = claim,
                            .key_id = *key_id,
                            .signature = a.signature.bytes,
                            .received_unix = stored.received_unix,
                            .observed_key_id = 0,
                            .deriver = {},
                            .output_id = 0,
                            .system_id = 0,
                            .build_kind = static_cast<int64_t>(meta.build_kind),
                            .build_time_unix = meta.build_time_unix,
                            .origin_id = 0};
  if (stored.observed_key.has_value()) {
    const auto& bytes = stored.observed_key->bytes();
    auto id = DictionaryId(observed_key_ids_, *find_observed_key_, *insert_observed_key_, Chars(bytes),
                           ValueType::kBlob, "storing an observed key");
    if (!id.ok()) return id.status();
    signature.observed_key_id = *id;
  }
  if (!meta.deriver.empty()) {
    auto deriver = EncodeDeriver(meta.deriver, a.claim.out_path, meta.output_name);
    if (!deriver.ok()) return deriver.status();
    signature.deriver.assign(deriver->begin(), deriver->end());
  }
  for (auto [text, out] : {std::pair{&meta.output_name, &signature.output_id},
                           std::pair{&meta.system, &signature.system_id}, std::pair{&stored.origin, &signature.origin_id}}) {
    auto id = LabelId(*text);
    if (!id.ok()) return id.status();
    *out = *id;
  }
  if (claim_at == record.fingerprints.end()) {
    auto insert = insert_realisation_out_path_->Begin("storing a realisation's output path");
    insert.Bind(a.claim.out_path.full()).Bind(key);
    if (absl::Status status = insert.Run(); !status.ok()) return status;
    record.fingerprints.push_back(std::move(fingerprint));
  }
  const bool first_of_key = record.signatures.empty();
  record.signatures.push_back(std::move(signature));
  row.changed = true;
  return RealisationAdded{.outcome = WriteOutcome::kInserted, .first_of_key = first_of_key};
}

absl::Status SqliteAttestationStore::Writer::StoreChangedRealisations() {
  std::vector<uint8_t> encoded;
  for (auto& [key, row] : realisation_rows_) {
    if (!row.changed) continue;
    encoded.clear();
    EncodeRealisationRecord(row.record, key, encoded);
    auto put = put_realisation_record_->Begin("storing a realisation record");
    put.Bind(sqlite_store::RealisationRowId(key)).Bind(key).BindBlob(encoded);
    if (absl::Status status = put.Run(); !status.ok()) return status;
    row.changed = false;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PrepareRealisationsStatements() {
  return PrepareStatements(*db_, {
      {&realisations_by_key_, InList("SELECT key, record FROM realisation_records WHERE id")},
      {&realisation_keys_by_out_path_, "SELECT key FROM realisation_out_paths WHERE out_path = ? ORDER BY key"},
  });
}

absl::Status SqliteAttestationStore::Reader::RealisationsOfRecord(
    std::string_view key, std::span<const uint8_t> blob, std::vector<std::pair<std::string, StoredRealisation>>& out) {
  auto record = DecodeRealisationRecord(blob, key);
  if (!record.ok()) {
    return record.status().code() == absl::StatusCode::kDataLoss
               ? record.status()
               : Corrupt(db_->path(), consensus::StdView(record.status().message()));
  }
  // Each claim is parsed once, then shared by its signatures.
  std::vector<consensus::Realisation> claims;
  claims.reserve(record->fingerprints.size());
  for (const std::string& fingerprint : record->fingerprints) {
    auto claim = consensus::Realisation::ParseFingerprint(fingerprint);
    if (!claim.ok()) {
      return Corrupt(db_->path(), consensus::Cat("the stored realisation of ", key, ": ", claim.status().message()));
    }
    if (claim->key.ToString() != key) {
      return Corrupt(db_->path(),
                     consensus::Cat("a realisation stored under key ", key, " is about ", claim->key.ToString()));
    }
    claims.push_back(*std::move(claim));
  }
  for (const RecordSignature& sig : record->signatures) {
    const consensus::Realisation& claim = claims[sig.claim];
    StoredRealisation stored{.attestation = {.claim = claim, .signature = {}, .metadata = {}},
                             .received_unix = sig.received_unix,
                             .observed_key = std::nullopt,
                             .origin = {}};
    consensus::Signature& signature = stored.attestation.signature;
    auto key_name = KeyName(sig.key_id);
    if (!key_name.ok()) return key_name.status();
    signature.key_name = std::move(*key_name);
    signature.bytes = sig.signature;
    consensus::BuildMetadata& meta = stored.attestation.metadata;
    for (auto [id, text] : {std::pair{sig.output_id, &meta.output_name}, std::pair{sig.system_id, &meta.system},
                            std::pair{sig.origin_id, &stored.origin}}) {
      if (id == 0) continue;
      auto label = Label(id);
      if (!label.ok()) return label.status();
      *text = std::move(*label);
    }
    if (!sig.deriver.empty()) {
      auto deriver = DecodeDeriver(Bytes(sig.deriver), claim.out_path, meta.output_name, db_->path());
      if (!deriver.ok()) return deriver.status();
      meta.deriver = std::move(*deriver);
    }
    if (sig.build_kind < 0 || sig.build_kind > static_cast<int64_t>(consensus::BuildKind::kImported)) {
      return Corrupt(db_->path(), consensus::Cat("unknown build kind ", sig.build_kind));
    }
    meta.build_kind = static_cast<consensus::BuildKind>(sig.build_kind);
    meta.build_time_unix = sig.build_time_unix;
    if (sig.observed_key_id != 0) {
      auto bytes = ObservedKey(sig.observed_key_id);
      if (!bytes.ok()) return bytes.status();
      auto public_key = consensus::PublicKey::FromBytes(signature.key_name, *bytes);
      if (!public_key.ok()) {
        return Corrupt(db_->path(), consensus::Cat("an unusable observed key: ", public_key.status().message()));
      }
      stored.observed_key = std::move(*public_key);
    }
    out.emplace_back(record->fingerprints[sig.claim], std::move(stored));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<StoredRealisation>>> SqliteAttestationStore::Reader::RealisationsFor(
    std::span<const consensus::RealisationKey> keys) {
  // Distinct keys in canonical text, and their row ids; a key asked for twice is read once.
  std::vector<std::string> texts;
  std::vector<int64_t> ids;
  absl::flat_hash_map<std::string, size_t> slot_of_text;
  std::vector<size_t> slot_of_input(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string text = keys[i].ToString();
    auto [it, inserted] = slot_of_text.try_emplace(text, texts.size());
    if (inserted) {
      ids.push_back(sqlite_store::RealisationRowId(text));
      texts.push_back(std::move(text));
    }
    slot_of_input[i] = it->second;
  }
  // Per distinct key: (fingerprint, attestation), sorted below.
  std::vector<std::vector<std::pair<std::string, StoredRealisation>>> slots(texts.size());

  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  absl::Status status = ForEachChunk<int64_t>(
      *realisations_by_key_, ids, "reading realisations",
      [](Statement::Use& use, int64_t id) { use.Bind(id); },
      [&](Statement::Use& row) -> absl::Status {
        // A row under a wanted id holds another key only on an id collision: not an answer.
        auto slot = slot_of_text.find(consensus::AbslView(row.Text(0)));
        if (slot == slot_of_text.end()) return absl::OkStatus();
        return RealisationsOfRecord(row.Text(0), row.Blob(1), slots[slot->second]);
      });
  if (!status.ok()) return status;
  if (status = tx->Commit(); !status.ok()) return status;

  // The order of AttestationsFor: by fingerprint, then key name.
  for (auto& slot : slots) {
    std::ranges::sort(slot, [](const auto& a, const auto& b) {
      return std::tie(a.first, a.second.attestation.key_name()) < std::tie(b.first, b.second.attestation.key_name());
    });
  }
  // A key asked for once (the usual case) takes its slot's attestations; only a repeated one copies.
  std::vector<int> uses(slots.size(), 0);
  for (size_t slot : slot_of_input) ++uses[slot];
  std::vector<std::vector<StoredRealisation>> result(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& slot = slots[slot_of_input[i]];
    const bool last_use = --uses[slot_of_input[i]] == 0;
    result[i].reserve(slot.size());
    for (auto& [fingerprint, stored] : slot) result[i].push_back(last_use ? std::move(stored) : stored);
  }
  return result;
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::Reader::RealisationKeysFor(const StorePath& out_path) {
  auto use = realisation_keys_by_out_path_->Begin("reading the realisation keys of an output path");
  use.Bind(out_path.full());
  std::vector<std::string> keys;
  while (true) {
    auto row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    keys.emplace_back(use.Text(0));
  }
  return keys;
}

}  // namespace attest::storage
