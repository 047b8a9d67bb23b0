// SqliteAttestationStore, realisation attestations (storage/ledger.h, schema version 9): the
// `realisations` table, one row per signature over a realisation's fingerprint, unique per (key,
// fingerprint, key name). Written in the batch's transaction (WriteOnce); key names, observed keys and
// labels share the dictionaries of attestations. See docs/storage.md for the layout.
#include <algorithm>
#include <array>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "consensus/realisation.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
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
using sqlite_store::ForEachChunk;
using sqlite_store::InList;
using sqlite_store::PrepareStatements;

// The columns RealisationFromRow reads, in its order.
constexpr std::string_view kRealisationColumns =
    "SELECT key, fingerprint, key_id, signature, received, observed_key_id, deriver, output_id, system_id, "
    "build_kind, build_time, origin_id, claim_sha256 FROM realisations WHERE key";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer

absl::Status SqliteAttestationStore::Writer::PrepareRealisationsStatements() {
  return PrepareStatements(*db_, {
      {&find_realisation_,
       "SELECT received FROM realisations WHERE key = ? AND claim_sha256 = ? AND key_id = ?"},
      {&lower_realisation_received_,
       "UPDATE realisations SET received = ? WHERE key = ? AND claim_sha256 = ? AND key_id = ?"},
      {&realisation_key_held_, "SELECT 1 FROM realisations WHERE key = ? LIMIT 1"},
      {&insert_realisation_,
       "INSERT INTO realisations(key, claim_sha256, key_id, fingerprint, out_path, signature, received, "
       "observed_key_id, deriver, output_id, system_id, build_kind, build_time, origin_id) "
       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
  });
}

absl::StatusOr<SqliteAttestationStore::Writer::RealisationAdded> SqliteAttestationStore::Writer::AddRealisation(
    const StoredRealisation& stored) {
  const consensus::RealisationAttestation& a = stored.attestation;
  const consensus::BuildMetadata& meta = a.metadata;
  const std::string key = a.claim.key.ToString();
  const std::string fingerprint = a.claim.Fingerprint();
  const std::array<uint8_t, 32> claim_sha256 = consensus::Sha256(fingerprint);
  auto key_id = DictionaryId(key_ids_, *find_key_, *insert_key_, a.key_name(), ValueType::kText,
                             "storing a key name");
  if (!key_id.ok()) return key_id.status();
  {
    auto find = find_realisation_->Begin("looking up a realisation");
    find.Bind(key).BindBlob(claim_sha256).Bind(*key_id);
    auto row = find.Step();
    if (!row.ok()) return row.status();
    if (*row) {
      // Held already: only an earlier receipt is taken, as for attestations (store_writer.h).
      if (stored.received_unix < find.Int(0)) {
        auto lower = lower_realisation_received_->Begin("updating a realisation's received time");
        lower.Bind(stored.received_unix).Bind(key).BindBlob(claim_sha256).Bind(*key_id);
        if (absl::Status status = lower.Run(); !status.ok()) return status;
      }
      return RealisationAdded{.outcome = WriteOutcome::kAlreadyPresent, .first_of_key = false};
    }
  }
  bool first_of_key = false;
  {
    auto held = realisation_key_held_->Begin("looking up a realisation key");
    held.Bind(key);
    auto row = held.Step();
    if (!row.ok()) return row.status();
    first_of_key = !*row;
  }
  int64_t observed_key_id = 0;
  if (stored.observed_key.has_value()) {
    const auto& bytes = stored.observed_key->bytes();
    auto id = DictionaryId(observed_key_ids_, *find_observed_key_, *insert_observed_key_, Chars(bytes),
                           ValueType::kBlob, "storing an observed key");
    if (!id.ok()) return id.status();
    observed_key_id = *id;
  }
  auto output_id = LabelId(meta.output_name);
  if (!output_id.ok()) return output_id.status();
  auto system_id = LabelId(meta.system);
  if (!system_id.ok()) return system_id.status();
  auto origin_id = LabelId(stored.origin);
  if (!origin_id.ok()) return origin_id.status();
  auto insert = insert_realisation_->Begin("storing a realisation");
  insert.Bind(key)
      .BindBlob(claim_sha256)
      .Bind(*key_id)
      .Bind(fingerprint)
      .Bind(a.claim.out_path.full())
      .BindBlob(a.signature.bytes)
      .Bind(stored.received_unix)
      .Bind(observed_key_id)
      .Bind(meta.deriver)
      .Bind(*output_id)
      .Bind(*system_id)
      .Bind(static_cast<int64_t>(meta.build_kind))
      .Bind(meta.build_time_unix)
      .Bind(*origin_id);
  if (absl::Status status = insert.Run(); !status.ok()) return status;
  return RealisationAdded{.outcome = WriteOutcome::kInserted, .first_of_key = first_of_key};
}

// ---------------------------------------------------------------------------------------------
// Reader

absl::Status SqliteAttestationStore::Reader::PrepareRealisationsStatements() {
  return PrepareStatements(*db_, {
      {&realisations_by_key_, InList(kRealisationColumns)},
      // Read from realisations_by_out_path alone, in its order.
      {&realisation_keys_by_out_path_, "SELECT DISTINCT key FROM realisations WHERE out_path = ? ORDER BY key"},
  });
}

absl::StatusOr<StoredRealisation> SqliteAttestationStore::Reader::RealisationFromRow(const Statement::Use& row,
                                                                                    RealisationClaimMemo& memo) {
  const std::string_view key = row.Text(0);
  const std::string_view fingerprint = row.Text(1);
  // A row whose key, fingerprint and checksum are byte for byte those of the claim read last carries
  // that claim: checked and parsed already.
  if (!(memo.claim.has_value() && key == memo.key && fingerprint == memo.fingerprint &&
        std::ranges::equal(row.Blob(12), memo.digest))) {
    // The digest written with the row is its checksum: a changed byte of the claim is DATA_LOSS, never
    // a claim nobody signed.
    const std::array<uint8_t, 32> digest = consensus::Sha256(fingerprint);
    if (!std::ranges::equal(row.Blob(12), digest)) {
      return Corrupt(db_->path(), consensus::Cat("the stored realisation of ", key,
                                                 " does not match its SHA-256: its claim was changed"));
    }
    auto claim = consensus::Realisation::ParseFingerprint(fingerprint);
    if (!claim.ok()) {
      return Corrupt(db_->path(), consensus::Cat("the stored realisation of ", key, ": ", claim.status().message()));
    }
    if (claim->key.ToString() != key) {
      return Corrupt(db_->path(), consensus::Cat("a realisation stored under key ", key, " is about ",
                                                 claim->key.ToString()));
    }
    memo.key = std::string(key);
    memo.fingerprint = std::string(fingerprint);
    memo.digest = digest;
    memo.claim = *std::move(claim);
  }
  std::optional<consensus::Realisation> claim = memo.claim;
  consensus::Signature signature;
  auto key_name = KeyName(row.Int(2));
  if (!key_name.ok()) return key_name.status();
  signature.key_name = std::move(*key_name);
  if (row.Blob(3).size() != signature.bytes.size()) {
    return Corrupt(db_->path(), consensus::Cat("a realisation signature of ", row.Blob(3).size(), " bytes"));
  }
  std::ranges::copy(row.Blob(3), signature.bytes.begin());

  consensus::BuildMetadata meta;
  meta.deriver = std::string(row.Text(6));
  for (auto [column, out] : {std::pair{7, &meta.output_name}, std::pair{8, &meta.system}}) {
    if (row.Int(column) == 0) continue;
    auto label = Label(row.Int(column));
    if (!label.ok()) return label.status();
    *out = std::move(*label);
  }
  const int64_t build_kind = row.Int(9);
  if (build_kind < 0 || build_kind > static_cast<int64_t>(consensus::BuildKind::kImported)) {
    return Corrupt(db_->path(), consensus::Cat("unknown build kind ", build_kind));
  }
  meta.build_kind = static_cast<consensus::BuildKind>(build_kind);
  meta.build_time_unix = row.Int(10);

  std::optional<consensus::PublicKey> observed_key;
  if (row.Int(5) != 0) {
    auto bytes = ObservedKey(row.Int(5));
    if (!bytes.ok()) return bytes.status();
    auto public_key = consensus::PublicKey::FromBytes(signature.key_name, *bytes);
    if (!public_key.ok()) {
      return Corrupt(db_->path(), consensus::Cat("an unusable observed key: ", public_key.status().message()));
    }
    observed_key = std::move(*public_key);
  }
  std::string origin;
  if (row.Int(11) != 0) {
    auto label = Label(row.Int(11));
    if (!label.ok()) return label.status();
    origin = std::move(*label);
  }
  return StoredRealisation{.attestation = consensus::RealisationAttestation{.claim = *std::move(claim),
                                                                           .signature = std::move(signature),
                                                                           .metadata = std::move(meta)},
                           .received_unix = row.Int(4),
                           .observed_key = std::move(observed_key),
                           .origin = std::move(origin)};
}

absl::StatusOr<std::vector<std::vector<StoredRealisation>>> SqliteAttestationStore::Reader::RealisationsFor(
    std::span<const consensus::RealisationKey> keys) {
  // Distinct keys in canonical text; a key asked for twice is read once.
  std::vector<std::string> texts;
  absl::flat_hash_map<std::string, size_t> slot_of_text;
  std::vector<size_t> slot_of_input(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string text = keys[i].ToString();
    auto [it, inserted] = slot_of_text.try_emplace(text, texts.size());
    if (inserted) texts.push_back(std::move(text));
    slot_of_input[i] = it->second;
  }
  // Per distinct key: (fingerprint, attestation), sorted below.
  std::vector<std::vector<std::pair<std::string, StoredRealisation>>> slots(texts.size());

  auto tx = Transaction::Begin(*db_, Transaction::Kind::kRead);
  if (!tx.ok()) return tx.status();
  RealisationClaimMemo memo;
  absl::Status status = ForEachChunk<std::string>(
      *realisations_by_key_, texts, "reading realisations",
      [](Statement::Use& use, const std::string& text) { use.Bind(text); },
      [&](Statement::Use& row) -> absl::Status {
        auto slot = slot_of_text.find(consensus::AbslView(row.Text(0)));
        if (slot == slot_of_text.end()) return absl::OkStatus();
        auto stored = RealisationFromRow(row, memo);
        if (!stored.ok()) return stored.status();
        // RealisationFromRow checked that the claim's fingerprint is exactly this text.
        slots[slot->second].emplace_back(std::string(row.Text(1)), *std::move(stored));
        return absl::OkStatus();
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
