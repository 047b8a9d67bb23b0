// PathRecord: everything the node stores about one store path's attestations, encoded as the one
// blob of its row in `paths` (schema version 2, see README.md).
//
// One row per path is what makes a status read cheap: a path's claims (with their references written
// out, not as ids of other rows) and its signatures are one B-tree lookup, where the normalised
// version-1 schema needed about nine (path index, path row, claims, signatures, then one per
// reference). Pure encoding; thread-compatible.
#ifndef ATTEST_STORAGE_PATH_RECORD_H_
#define ATTEST_STORAGE_PATH_RECORD_H_

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/nar_hash.h"
#include "consensus/store_path.h"

namespace attest::storage {

// A signed fingerprint's fields (the path itself is the row's).
struct RecordClaim final {
  consensus::NarHash::Digest nar_hash{};
  uint64_t nar_size = 0;
  std::vector<consensus::StorePath> references;  // sorted, as in the fingerprint

  friend bool operator==(const RecordClaim&, const RecordClaim&) = default;
};

// One signature over claims[claim]. Ids refer to the dictionary tables (keys, observed_keys,
// labels); 0 means "none" for the optional ones (SQLite rowids start at 1).
struct RecordSignature final {
  uint32_t claim = 0;
  int64_t key_id = 0;
  std::array<uint8_t, 64> signature{};
  int64_t received_unix = 0;
  int64_t observed_key_id = 0;
  // The deriver as EncodeDeriver writes it (20 hash bytes, then the name when it is not the
  // implied one); empty when the attestation named none.
  std::string deriver;
  int64_t output_id = 0;
  int64_t system_id = 0;
  int64_t build_kind = 0;
  int64_t build_time_unix = 0;
  // The label of the peer it was replicated from; 0 when it was submitted to this node.
  int64_t origin_id = 0;

  friend bool operator==(const RecordSignature&, const RecordSignature&) = default;
};

struct PathRecord final {
  std::vector<RecordClaim> claims;
  std::vector<RecordSignature> signatures;  // in order of arrival

  friend bool operator==(const PathRecord&, const PathRecord&) = default;
};

// Appends the encoding of `record` to `out`, bound to `path` (the full store path of the row that
// holds it) by a checksum. Precondition: every signature's claim < claims.size(), ids >= 0,
// build_kind in [0, 127]. Writes format 3 (with origin ids and the checksum); DecodePathRecord also
// reads format 2 (no checksum) and format 1 (no checksum, origin 0).
void EncodePathRecord(const PathRecord& record, std::string_view path, std::vector<uint8_t>& out);

// The record of the row of `path`. DATA_LOSS, naming the path, when a format-3 record fails its
// checksum (a changed byte, or a record moved to another path's row). Otherwise INVALID_ARGUMENT
// describing the first problem (truncation, an unknown format byte, a signature naming a missing
// claim, a reference that is not a store path, trailing bytes); the caller turns it into its
// "database is corrupt" error.
absl::StatusOr<PathRecord> DecodePathRecord(std::span<const uint8_t> bytes, std::string_view path);

// RealisationRecord: every realisation attestation the node stores about one derivation output, the
// blob of its row in `realisation_records` (schema version 11), in the shape of a path record: each
// distinct claim once, as the fingerprint its builders signed, then the signatures (claim indexes into
// `fingerprints`; the deriver encoded as for paths, against the claim's output path). One row per key
// is what makes a realisation's status read as cheap as a path's.
struct RealisationRecord final {
  std::vector<std::string> fingerprints;
  std::vector<RecordSignature> signatures;  // in order of arrival

  friend bool operator==(const RealisationRecord&, const RealisationRecord&) = default;
};

// As EncodePathRecord, bound to `key` (the realisation key's canonical text) by a checksum.
void EncodeRealisationRecord(const RealisationRecord& record, std::string_view key, std::vector<uint8_t>& out);
// As DecodePathRecord: DATA_LOSS naming the key on a failed checksum, INVALID_ARGUMENT otherwise. The
// fingerprints are returned as stored (the caller parses them).
absl::StatusOr<RealisationRecord> DecodeRealisationRecord(std::span<const uint8_t> bytes, std::string_view key);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_PATH_RECORD_H_
