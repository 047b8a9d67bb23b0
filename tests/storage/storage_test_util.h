// Builders of stored attestations and disputes for the storage tests. Header-only.
#ifndef ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_
#define ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
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

inline StoredDispute Dispute(std::string id, std::string_view path_name, int64_t opened,
                             int64_t updated, int fingerprints = 2) {
  return StoredDispute{.id = std::move(id),
                       .path = TestStorePath(path_name),
                       .signed_record = consensus::Cat("attest/dispute/v1\npath ", path_name,
                                                     "\ntime ", updated, "\n\n— node sig\n"),
                       .opened_unix = opened,
                       .updated_unix = updated,
                       .fingerprint_count = fingerprints};
}

}  // namespace attest::storage::testing

#endif  // ATTEST_TESTS_STORAGE_STORAGE_TEST_UTIL_H_
