// The per-path record codec of schema version 2: what is encoded comes back, and nothing malformed
// decodes.
#include "storage/path_record.h"

#include <cstdint>
#include <string>
#include <vector>

#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::TestStorePath;
using ::testing::HasSubstr;

RecordSignature Sig(uint32_t claim, int64_t key_id, int64_t received, std::string deriver) {
  RecordSignature sig{.claim = claim,
                      .key_id = key_id,
                      .signature = {},
                      .received_unix = received,
                      .observed_key_id = 0,
                      .deriver = std::move(deriver),
                      .output_id = 3,
                      .system_id = 4,
                      .build_kind = 2,
                      .build_time_unix = received - 60};
  for (size_t i = 0; i < sig.signature.size(); ++i) sig.signature[i] = static_cast<uint8_t>(i * 7 + key_id);
  return sig;
}

PathRecord Sample() {
  PathRecord record;
  record.claims.push_back(RecordClaim{.nar_hash = consensus::Sha256("one"),
                                      .nar_size = 123456789,
                                      .references = {TestStorePath("glibc-2.37"), TestStorePath("zlib-1.3")}});
  record.claims.push_back(RecordClaim{.nar_hash = consensus::Sha256("two"), .nar_size = 0, .references = {}});
  const std::string drv(20, 'd');
  const std::string other_drv = std::string(20, 'e') + "hello-2.12.drv";
  record.signatures = {Sig(0, 1, 1790000000, drv), Sig(0, 2, 1790000005, drv),
                       Sig(1, 3, 1700000000, other_drv), Sig(0, 4, 1790000010, ""),
                       Sig(1, 5, 0, drv)};
  record.signatures[3].observed_key_id = 9;
  record.signatures[3].build_time_unix = 0;  // unknown build time, far from the receive time
  return record;
}

constexpr std::string_view kPath = "/nix/store/00000000000000000000000000000000-hello-2.12";

std::vector<uint8_t> Encode(const PathRecord& record) {
  std::vector<uint8_t> out;
  EncodePathRecord(record, kPath, out);
  return out;
}

// The same record in format 2 (schema version 4: no checksum), so the structure checks can be tried
// on hand-changed bytes that a checksum would otherwise refuse first.
std::vector<uint8_t> EncodeFormat2(const PathRecord& record) {
  std::vector<uint8_t> out = Encode(record);
  out.resize(out.size() - 8);
  out[0] = 2;
  return out;
}

absl::StatusOr<PathRecord> Decode(std::span<const uint8_t> bytes) { return DecodePathRecord(bytes, kPath); }

TEST(PathRecordTest, RoundTripsEveryField) {
  const PathRecord record = Sample();
  auto decoded = Decode(Encode(record));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, record);
}

// Found by tests/fuzz/path_record_fuzzer: times are stored as differences, and a damaged record
// (or extreme times) made them overflow int64 (undefined behaviour, caught by UBSan in the asan
// build). Every int64 time round-trips, and arithmetic on stored values never overflows.
TEST(PathRecordTest, ExtremeTimesRoundTripWithoutOverflow) {
  PathRecord record = Sample();
  record.signatures[0].received_unix = INT64_MIN;
  record.signatures[0].build_time_unix = INT64_MAX;
  record.signatures[1].received_unix = INT64_MAX;
  record.signatures[1].build_time_unix = INT64_MIN;
  record.signatures[2].received_unix = -32;
  auto decoded = Decode(Encode(record));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, record);
}

TEST(PathRecordTest, EmptyRecordRoundTrips) {
  auto decoded = Decode(Encode(PathRecord{}));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, PathRecord{});
}

TEST(PathRecordTest, RepeatedDeriverIsStoredOnce) {
  PathRecord one = Sample();
  one.signatures.resize(1);
  PathRecord two = one;
  two.signatures.push_back(Sig(0, 2, one.signatures[0].received_unix, one.signatures[0].deriver));
  // The second signature costs its 64 bytes and a few bytes of ids, times and tags, not the deriver.
  EXPECT_LT(Encode(two).size() - Encode(one).size(), 64u + 11u);
}

TEST(PathRecordTest, EveryTruncationIsRefused) {
  for (const std::vector<uint8_t>& bytes : {Encode(Sample()), EncodeFormat2(Sample())}) {
    for (size_t size = 0; size < bytes.size(); ++size) {
      auto decoded = Decode(std::span(bytes.data(), size));
      EXPECT_FALSE(decoded.ok()) << "size " << size;
      EXPECT_TRUE(decoded.status().code() == absl::StatusCode::kInvalidArgument ||
                  decoded.status().code() == absl::StatusCode::kDataLoss)
          << decoded.status();
    }
  }
}

TEST(PathRecordTest, MalformedRecordsAreRefusedWithTheProblem) {
  const std::vector<uint8_t> good = EncodeFormat2(Sample());
  auto problem = [](std::vector<uint8_t> bytes) { return std::string(Decode(bytes).status().message()); };
  {
    auto bytes = good;
    bytes[0] = 7;
    EXPECT_THAT(problem(bytes), HasSubstr("unknown format 7"));
  }
  {
    auto bytes = good;
    bytes.push_back(0);
    EXPECT_THAT(problem(bytes), HasSubstr("1 trailing bytes"));
  }
  {
    PathRecord record = Sample();
    record.signatures[0].claim = 2;  // only claims 0 and 1 exist
    EXPECT_THAT(problem(EncodeFormat2(record)), HasSubstr("a signature of claim 2 of 2"));
  }
  {
    // A claim count no record of this size can hold.
    EXPECT_THAT(problem({1, 0xff, 0xff, 0xff, 0x7f}), HasSubstr("claim count"));
  }
  {
    // A reference whose name is not a store path name.
    PathRecord record;
    record.claims.push_back(RecordClaim{.nar_hash = {}, .nar_size = 1, .references = {TestStorePath("ok")}});
    auto bytes = EncodeFormat2(record);
    // The name "ok" is the last two bytes before the signature count.
    bytes[bytes.size() - 3] = '/';
    EXPECT_THAT(problem(bytes), HasSubstr("a reference"));
  }
  {
    // "Same deriver as before" on the first signature.
    PathRecord record = Sample();
    record.signatures.resize(1);
    record.signatures[0].deriver.clear();
    auto bytes = EncodeFormat2(record);
    // The deriver tag follows claim, key id, 64 signature bytes, received (5 bytes), observed id.
    const size_t tag = bytes.size() - 1 /*origin*/ - 1 /*time*/ - 1 /*kind*/ - 1 /*system*/ - 1 /*output*/ - 1;
    ASSERT_EQ(bytes[tag], 0);
    bytes[tag] = 1;
    EXPECT_THAT(problem(bytes), HasSubstr("a deriver repeating none"));
  }
}

TEST(PathRecordTest, OriginRoundTripsAndOlderFormatsAreStillRead) {
  PathRecord record = Sample();
  record.signatures[0].origin_id = 7;
  auto decoded = Decode(Encode(record));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, record);
  // Format 2 (schema version 4): the same bytes without the checksum.
  auto two = Decode(EncodeFormat2(record));
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, record);

  // Format 1: format 2 without the origin id after each signature.
  PathRecord one = Sample();
  one.signatures.resize(1);
  std::vector<uint8_t> bytes = EncodeFormat2(one);
  ASSERT_EQ(bytes.back(), 0);  // origin 0
  bytes[0] = 1;
  bytes.pop_back();
  auto old = Decode(bytes);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(*old, one);
  bytes[0] = 4;
  auto unknown = Decode(bytes);
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("unknown format 4"));
}

// Issue: a changed byte inside a stored record gave a CONFIRMED answer with a fingerprint nobody
// signed, or altered signatures, with no error.
TEST(PathRecordTest, EveryChangedByteFailsTheChecksumNamingThePath) {
  const std::vector<uint8_t> good = Encode(Sample());
  ASSERT_EQ(good[0], 3);
  for (size_t i = 1; i < good.size(); ++i) {
    for (uint8_t flip : {uint8_t{0x01}, uint8_t{0x80}}) {
      std::vector<uint8_t> bytes = good;
      bytes[i] ^= flip;
      auto decoded = Decode(bytes);
      ASSERT_FALSE(decoded.ok()) << "byte " << i;
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
      EXPECT_THAT(std::string(decoded.status().message()), HasSubstr(std::string(kPath))) << "byte " << i;
    }
  }
}

TEST(PathRecordTest, ARecordMovedToAnotherPathsRowFailsTheChecksum) {
  auto moved = DecodePathRecord(Encode(Sample()), "/nix/store/00000000000000000000000000000000-hello-2.13");
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(moved.status().message()), HasSubstr("fails its checksum"));
}

}  // namespace
}  // namespace attest::storage
