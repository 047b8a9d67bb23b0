// proto/convert: wire <-> domain, with errors that name the wire field.
#include "consensus/text.h"
#include "proto/convert.h"

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "consensus/encoding.h"
#include "consensus/path_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::proto {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

v1::PathInfo GoodPathInfo() {
  auto claim = consensus::PathInfo::Create(TestStorePath("hello"), TestClaim("x").nar_hash, 4096,
                                           {TestStorePath("glibc"), TestStorePath("bash")});
  EXPECT_TRUE(claim.ok());
  return ToProto(*claim);
}

TEST(ConvertTest, PathInfoRoundTrips) {
  auto claim = consensus::PathInfo::Create(TestStorePath("hello"), TestClaim("x").nar_hash, 4096,
                                           {TestStorePath("glibc"), TestStorePath("bash")});
  ASSERT_TRUE(claim.ok());
  auto back = FromProto(ToProto(*claim));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *claim);
  EXPECT_EQ(ToProto(*claim).nar_hash().rfind("sha256:", 0), 0u);
}

TEST(ConvertTest, AcceptsSriAndHexNarHashes) {
  v1::PathInfo message = GoodPathInfo();
  const auto hash = TestClaim("x").nar_hash;
  message.set_nar_hash(hash.ToSri());
  auto from_sri = FromProto(message);
  ASSERT_TRUE(from_sri.ok()) << from_sri.status();
  message.set_nar_hash("sha256:" + hash.ToHex());
  auto from_hex = FromProto(message);
  ASSERT_TRUE(from_hex.ok()) << from_hex.status();
  EXPECT_EQ(from_sri->nar_hash, hash);
  EXPECT_EQ(from_hex->nar_hash, hash);
}

TEST(ConvertTest, UnsortedReferencesAreSortedSoTheFingerprintMatchesNix) {
  v1::PathInfo message = GoodPathInfo();
  message.clear_references();
  message.add_references(TestStorePath("zzz").full());
  message.add_references(TestStorePath("aaa").full());
  auto info = FromProto(message);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(std::is_sorted(info->references.begin(), info->references.end()));
}

struct BadPathInfoCase {
  std::string name;
  std::function<void(v1::PathInfo&)> mutate;
  std::string expected;
};

class BadPathInfoTest : public ::testing::TestWithParam<BadPathInfoCase> {};

TEST_P(BadPathInfoTest, IsInvalidArgumentNamingTheField) {
  v1::PathInfo message = GoodPathInfo();
  GetParam().mutate(message);
  auto info = FromProto(message);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(info.status()), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadPathInfoTest,
    ::testing::Values(
        BadPathInfoCase{"MalformedStorePath", [](v1::PathInfo& m) { m.set_store_path("/nix/store/abc-hello"); },
                        "store_path: "},
        BadPathInfoCase{"PathOutsideStore", [](v1::PathInfo& m) { m.set_store_path("/usr/bin/hello"); },
                        "store_path: "},
        BadPathInfoCase{"BadHashEncoding",
                        [](v1::PathInfo& m) { m.set_nar_hash("sha256:" + std::string(52, 'e')); },
                        "nar_hash: "},
        BadPathInfoCase{"WrongHashLength", [](v1::PathInfo& m) { m.set_nar_hash("sha256:0123456789"); },
                        "nar_hash: "},
        BadPathInfoCase{"NarSizeZero", [](v1::PathInfo& m) { m.set_nar_size(0); }, "nar_size: "},
        BadPathInfoCase{"AbsurdNarSize", [](v1::PathInfo& m) { m.set_nar_size(consensus::kMaxNarSize + 1); },
                        "nar_size: "},
        BadPathInfoCase{"ReferenceNotAStorePath", [](v1::PathInfo& m) { m.add_references("/etc/passwd"); },
                        "references[2] is not a store path"},
        BadPathInfoCase{"DuplicateReference",
                        [](v1::PathInfo& m) { m.add_references(TestStorePath("glibc").full()); }, "references: "}),
    [](const auto& info) { return info.param.name; });

TEST(ConvertTest, AttestationRoundTripsWithMetadata) {
  consensus::BuildMetadata metadata;
  metadata.deriver = TestStorePath("hello.drv").full();
  metadata.output_name = "out";
  metadata.system = "x86_64-linux";
  metadata.build_kind = consensus::BuildKind::kRebuild;
  metadata.build_time_unix = 1700000000;
  consensus::Attestation attestation = consensus::SignAttestation(TestClaim("hello"), TestKey("b-1"), metadata);
  auto back = FromProto(ToProto(attestation));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, attestation);
}

TEST(ConvertTest, AttestationErrorsNameTheField) {
  const v1::Attestation good = ToProto(consensus::SignAttestation(TestClaim("hello"), TestKey("b-1")));

  v1::Attestation missing = good;
  missing.clear_path_info();
  EXPECT_THAT(Message(FromProto(missing).status()), HasSubstr("path_info is missing"));

  v1::Attestation short_signature = good;
  short_signature.set_signature("b-1:" + consensus::Base64Encode(std::vector<uint8_t>(32, 1)));
  auto s = FromProto(short_signature).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("signature: "));
  EXPECT_THAT(Message(s), HasSubstr("32 bytes"));

  v1::Attestation bad_base64 = good;
  bad_base64.set_signature("b-1:not*base64!");
  s = FromProto(bad_base64).status();
  EXPECT_THAT(Message(s), HasSubstr("signature: "));
  EXPECT_THAT(Message(s), HasSubstr("base64"));

  v1::Attestation bad_deriver = good;
  bad_deriver.mutable_metadata()->set_deriver(TestStorePath("hello").full());
  EXPECT_THAT(Message(FromProto(bad_deriver).status()), HasSubstr("metadata: "));

  v1::Attestation bad_kind = good;
  bad_kind.mutable_metadata()->set_build_kind(static_cast<v1::BuildKind>(42));
  EXPECT_THAT(Message(FromProto(bad_kind).status()), HasSubstr("metadata.build_kind"));
}

// The field at fault comes as a type (rejections are counted by it), matching the message's field.
TEST(ConvertTest, AttestationErrorsSayTheFieldAsAType) {
  const v1::Attestation good = ToProto(consensus::SignAttestation(TestClaim("hello"), TestKey("b-1")));
  struct Case {
    std::function<void(v1::Attestation&)> mutate;
    AttestationField field;
  };
  const Case cases[] = {
      {[](v1::Attestation& m) { m.clear_path_info(); }, AttestationField::kPathInfo},
      {[](v1::Attestation& m) { m.mutable_path_info()->set_store_path("/tmp/x"); }, AttestationField::kStorePath},
      {[](v1::Attestation& m) { m.mutable_path_info()->set_nar_hash("sha256:nope"); }, AttestationField::kNarHash},
      {[](v1::Attestation& m) { m.mutable_path_info()->set_nar_size(0); }, AttestationField::kNarSize},
      {[](v1::Attestation& m) { m.mutable_path_info()->add_references("nope"); }, AttestationField::kReferences},
      {[](v1::Attestation& m) { m.set_signature("b-1:not*base64!"); }, AttestationField::kSignature},
      {[](v1::Attestation& m) { m.mutable_metadata()->set_build_kind(static_cast<v1::BuildKind>(42)); },
       AttestationField::kMetadata},
  };
  for (const Case& c : cases) {
    v1::Attestation bad = good;
    c.mutate(bad);
    AttestationField field = AttestationField::kPathInfo;
    auto converted = FromProto(bad, &field);
    ASSERT_FALSE(converted.ok()) << AttestationFieldName(c.field);
    EXPECT_EQ(field, c.field) << Message(converted.status());
    EXPECT_TRUE(Message(converted.status()).starts_with(AttestationFieldName(c.field))) << Message(converted.status());
  }
  AttestationField untouched = AttestationField::kSignature;
  EXPECT_TRUE(FromProto(good, &untouched).ok());
}

TEST(ConvertTest, VerdictsAndBuildKindsMapBothWays) {
  for (auto verdict : {consensus::Verdict::kUnknown, consensus::Verdict::kPending, consensus::Verdict::kConfirmed,
                       consensus::Verdict::kDisputed}) {
    auto back = FromProto(ToProto(verdict));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, verdict);
  }
  EXPECT_EQ(FromProto(v1::VERDICT_UNSPECIFIED).status().code(), absl::StatusCode::kInvalidArgument);
  for (auto kind : {consensus::BuildKind::kUnspecified, consensus::BuildKind::kFirstBuild,
                    consensus::BuildKind::kRebuild, consensus::BuildKind::kCheck, consensus::BuildKind::kImported}) {
    EXPECT_EQ(FromProto(ToProto(kind)), kind);
  }
}

}  // namespace
}  // namespace attest::proto
