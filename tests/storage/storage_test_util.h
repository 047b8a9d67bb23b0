// Builders of stored attestations and disputes for the storage tests. Header-only.
#ifndef ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_
#define ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/realisation.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "gtest/gtest.h"
#include "storage/attestation_store.h"
#include "tests/support/test_support.h"

namespace attest::storage::testing {

using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;

enum class KeyKind { kPolicy, kObserved };

// A claim about TestStorePath(name) with the given references (by name; sorted by PathInfo::Create).
inline consensus::PathInfo ClaimWithRefs(std::string_view name, std::string_view content,
                                         const std::vector<std::string>& ref_names,
                                         uint64_t nar_size = 4096) {
  std::vector<consensus::StorePath> refs;
  for (const std::string& ref : ref_names) refs.push_back(TestStorePath(ref));
  auto claim = consensus::PathInfo::Create(
      TestStorePath(name), consensus::NarHash::FromDigest(consensus::Sha256(content)), nar_size,
      std::move(refs));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

// Metadata as a rebuilder sends it: deriver "<name without -output>.drv", output, system, time.
inline consensus::BuildMetadata FullMetadata(std::string_view drv_name,
                                             std::string_view output = "out",
                                             consensus::BuildKind kind = consensus::BuildKind::kRebuild,
                                             int64_t build_time = 1700000123) {
  return consensus::BuildMetadata{.deriver = TestStorePath(consensus::Cat(drv_name, ".drv")).full(),
                                  .output_name = std::string(output),
                                  .system = "x86_64-linux",
                                  .build_kind = kind,
                                  .build_time_unix = build_time};
}

// `claim` signed by the deterministic key `key_name`.
inline StoredAttestation Attest(const consensus::PathInfo& claim, std::string_view key_name,
                                consensus::BuildMetadata metadata = {},
                                int64_t received_unix = 1700000200,
                                KeyKind kind = KeyKind::kPolicy, std::string_view seed_tag = "") {
  consensus::SecretKey key = TestKey(key_name, seed_tag);
  StoredAttestation stored{
      .attestation = consensus::SignAttestation(claim, key, std::move(metadata)),
      .received_unix = received_unix,
      .observed_key = std::nullopt,
      .origin = {}};
  if (kind == KeyKind::kObserved) stored.observed_key = key.public_key();
  return stored;
}

inline WriteBatch Batch(std::vector<StoredAttestation> attestations,
                        std::vector<StoredDispute> disputes = {}) {
  WriteBatch batch;
  batch.attestations = std::move(attestations);
  batch.disputes = std::move(disputes);
  return batch;
}

// Metadata with only some fields set (designated initializers that skip fields trip -Wextra).
inline consensus::BuildMetadata Metadata(std::string deriver, std::string output_name,
                                         std::string system,
                                         consensus::BuildKind kind = consensus::BuildKind::kUnspecified,
                                         int64_t build_time = 0) {
  consensus::BuildMetadata metadata;
  metadata.deriver = std::move(deriver);
  metadata.output_name = std::move(output_name);
  metadata.system = std::move(system);
  metadata.build_kind = kind;
  metadata.build_time_unix = build_time;
  return metadata;
}

// A store path named `name` with a hash part derived from `seed`: one output built two ways (same name,
// different contents, so a different content-addressed path).
inline consensus::StorePath SeededStorePath(std::string_view name, std::string_view seed) {
  const std::array<uint8_t, 32> digest = consensus::Sha256(consensus::Cat("store path seed ", seed));
  auto path = consensus::StorePath::Parse(consensus::Cat(
      consensus::kStoreDir, "/", consensus::Nix32Encode(std::span<const uint8_t>(digest).first(20)), "-", name));
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

// The Nix 2.8 key "sha256:<hex of SHA-256 of drv_seed>!<output>".
inline consensus::RealisationKey DrvHashKey(std::string_view drv_seed, std::string_view output = "out") {
  auto key = consensus::RealisationKey::FromDrvHash(consensus::HexEncode(consensus::Sha256(drv_seed)), output);
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

// A Nix 2.8 realisation: DrvHashKey(drv_seed, output) -> `out_path`, with `dependent` realisations (key
// text -> output path; sorted here).
inline consensus::Realisation DrvHashRealisation(
    std::string_view drv_seed, const consensus::StorePath& out_path, std::string_view output = "out",
    std::vector<std::pair<std::string, consensus::StorePath>> dependent = {}) {
  std::ranges::sort(dependent);
  auto claim = consensus::Realisation::Create(DrvHashKey(drv_seed, output), out_path, std::move(dependent));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

// A build trace (Nix 2.35) realisation: "<TestStorePath(drv_name .drv)>^<output>" -> the output path
// Nix names for it, with a hash part derived from `build` (each value gives another output path).
inline consensus::Realisation BuildTraceRealisation(std::string_view drv_name, std::string_view output,
                                                    std::string_view build) {
  auto key = consensus::RealisationKey::FromDrvPath(TestStorePath(consensus::Cat(drv_name, ".drv")), output);
  EXPECT_TRUE(key.ok()) << key.status();
  auto claim = consensus::Realisation::Create(*key, SeededStorePath(key->ExpectedOutPathName(), build));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

// `claim` signed by the deterministic key `key_name`.
inline StoredRealisation AttestRealisation(const consensus::Realisation& claim, std::string_view key_name,
                                           consensus::BuildMetadata metadata = {},
                                           int64_t received_unix = 1700000300,
                                           KeyKind kind = KeyKind::kPolicy) {
  consensus::SecretKey key = TestKey(key_name);
  StoredRealisation stored{.attestation = consensus::SignRealisation(claim, key, std::move(metadata)),
                           .received_unix = received_unix,
                           .observed_key = std::nullopt,
                           .origin = {}};
  if (kind == KeyKind::kObserved) stored.observed_key = key.public_key();
  return stored;
}

inline WriteBatch RealisationBatch(std::vector<StoredRealisation> realisations,
                                   std::vector<StoredAttestation> attestations = {}) {
  WriteBatch batch;
  batch.attestations = std::move(attestations);
  batch.realisations = std::move(realisations);
  return batch;
}

inline StoredDispute Dispute(std::string id, std::string_view path_name, int64_t opened,
                             int64_t updated, int fingerprints = 2) {
  return StoredDispute{.id = std::move(id),
                       .subject = TestStorePath(path_name),
                       .signed_record = consensus::Cat("attest/dispute/v1\npath ", path_name,
                                                     "\ntime ", updated, "\n\n— node sig\n"),
                       .opened_unix = opened,
                       .updated_unix = updated,
                       .fingerprint_count = fingerprints};
}

}  // namespace attest::storage::testing

#endif  // ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_
