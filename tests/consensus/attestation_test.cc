#include "consensus/attestation.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

TEST(AttestationTest, SignedAttestationVerifies) {
  const SecretKey key = attest::testing::TestKey("builder-eu-1");
  const PathInfo claim = attest::testing::TestClaim("hello");
  BuildMetadata metadata;
  metadata.output_name = "out";
  const Attestation a = SignAttestation(claim, key, metadata);
  EXPECT_EQ(a.key_name(), "builder-eu-1");
  EXPECT_EQ(a.claim, claim);
  EXPECT_EQ(a.metadata.output_name, "out");
  EXPECT_TRUE(VerifyAttestation(a, key.public_key()).ok());
  // It is a plain Nix signature over the fingerprint: usable as a narinfo Sig: line.
  EXPECT_TRUE(key.public_key().Verify(claim.Fingerprint(), a.signature).ok());
}

TEST(AttestationTest, MetadataIsNotSigned) {
  const SecretKey key = attest::testing::TestKey("builder-eu-1");
  Attestation a = SignAttestation(attest::testing::TestClaim("hello"), key);
  a.metadata.system = "aarch64-linux";
  a.metadata.build_kind = BuildKind::kCheck;
  EXPECT_TRUE(VerifyAttestation(a, key.public_key()).ok());
}

TEST(AttestationTest, ChangedClaimFailsNamingTheKey) {
  const SecretKey key = attest::testing::TestKey("builder-eu-1");
  Attestation a = SignAttestation(attest::testing::TestClaim("hello", "content", 1234), key);
  a.claim.nar_size = 1235;
  const absl::Status status = VerifyAttestation(a, key.public_key());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()), HasSubstr("builder-eu-1"));
  EXPECT_THAT(std::string(status.message()), HasSubstr(a.claim.path.full()));
}

TEST(AttestationTest, OtherKeyFails) {
  const SecretKey signer = attest::testing::TestKey("builder-eu-1");
  const Attestation a = SignAttestation(attest::testing::TestClaim("hello"), signer);
  // Same name, different key material (a rotated or impersonated key).
  const SecretKey impostor = attest::testing::TestKey("builder-eu-1", "other seed");
  EXPECT_EQ(VerifyAttestation(a, impostor.public_key()).code(), absl::StatusCode::kUnauthenticated);
  // Different name.
  const absl::Status status =
      VerifyAttestation(a, attest::testing::TestKey("builder-us-1").public_key());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("'builder-eu-1', not by key 'builder-us-1'"));
}

TEST(AttestationTest, RealNixSignatureIsAnAttestation) {
  // A Nix 2.8 run: builderA-1 signed withdeps with `nix store sign`.
  auto claim = PathInfo::ParseFingerprint(
      "1;/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps;sha256:"
      "0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k;160;"
      "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep");
  ASSERT_TRUE(claim.ok()) << claim.status();
  auto sig = Signature::Parse(
      "builderA-1:YkhVQl6mm0ub9868pMBHhzgxtu3vJvUeiiYxOTMIkMwqV5+eimGJ65DOx8xzjRj+jBY+IDmfyy3i/"
      "VPlDr5qDw==");
  ASSERT_TRUE(sig.ok()) << sig.status();
  auto key = PublicKey::Parse("builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=");
  ASSERT_TRUE(key.ok()) << key.status();
  BuildMetadata imported;
  imported.build_kind = BuildKind::kImported;
  const Attestation a{*claim, *sig, imported};
  EXPECT_TRUE(VerifyAttestation(a, *key).ok());

  // And signing the same claim with the same secret key gives Nix's bytes.
  auto secret = SecretKey::Parse(
      "builderA-1:W3lhuGIkgyX1jaKFX3NFUXTIPPsiq8FnIrsCNejuzrnMuNRbrqHpyktkGz0I0OviACdyMOI9JYQ3f/"
      "oaTGEJjQ==");
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(SignAttestation(*claim, *secret).signature, *sig);
}

TEST(AttestationTest, BuildKindNames) {
  EXPECT_EQ(BuildKindName(BuildKind::kUnspecified), "unspecified");
  EXPECT_EQ(BuildKindName(BuildKind::kFirstBuild), "build");
  EXPECT_EQ(BuildKindName(BuildKind::kRebuild), "rebuild");
  EXPECT_EQ(BuildKindName(BuildKind::kCheck), "check");
  EXPECT_EQ(BuildKindName(BuildKind::kImported), "imported");
}

TEST(AttestationTest, ValidMetadataIsAccepted) {
  EXPECT_TRUE(ValidateBuildMetadata({}).ok());
  BuildMetadata full;
  full.deriver = "/nix/store/54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv";
  full.output_name = "doc";
  full.system = "x86_64-linux";
  full.build_kind = BuildKind::kRebuild;
  full.build_time_unix = 1795576781;
  EXPECT_TRUE(ValidateBuildMetadata(full).ok());
}

TEST(AttestationTest, MalformedMetadataIsRejected) {
  struct Case {
    BuildMetadata metadata;
    std::string fragment;
  };
  std::vector<Case> cases(7);
  cases[0].metadata.deriver = "54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv";
  cases[0].fragment = "relative";
  cases[1].metadata.deriver = "/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps";
  cases[1].fragment = "not a .drv";
  cases[2].metadata.output_name = "out put";
  cases[2].fragment = "output name";
  cases[3].metadata.output_name = std::string(256, 'o');
  cases[3].fragment = "256 bytes";
  cases[4].metadata.system = "x86_64-linux\n";
  cases[4].fragment = "system";
  cases[5].metadata.build_kind = static_cast<BuildKind>(9);
  cases[5].fragment = "unknown build kind 9";
  cases[6].metadata.build_time_unix = -1;
  cases[6].fragment = "negative";
  for (const Case& c : cases) {
    const absl::Status status = ValidateBuildMetadata(c.metadata);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.fragment;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.fragment));
  }
}

// Metadata is shown as it is (`attest disputes show`, the dispute pages), so it follows the
// displayed-text rule, like a resolution's note.
TEST(AttestationTest, MetadataThatWouldDisplayFalselyIsRejected) {
  for (const std::string& value :
       {std::string("x86_64-\xC2\x9B" "2J"), std::string("out\xC2\x85"), std::string("x86_64-\xE2\x80\xAE" "xunil"),
        std::string("out\xE2\x81\xA6"), std::string("out\xE2\x80\x8F"), std::string("out\xD8\x9C"),
        std::string("out\xE2\x80\xA8"), std::string("out\xC2\xA0" "x"), std::string("out\xE9")}) {
    for (std::string BuildMetadata::*field : {&BuildMetadata::output_name, &BuildMetadata::system}) {
      BuildMetadata metadata;
      metadata.*field = value;
      const absl::Status status = ValidateBuildMetadata(metadata);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(value);
      EXPECT_THAT(std::string(status.message()), HasSubstr("build metadata ")) << absl::CHexEscape(value);
    }
  }
  BuildMetadata unicode;
  unicode.output_name = "ünïcode";
  unicode.system = "x86_64-linux";
  EXPECT_TRUE(ValidateBuildMetadata(unicode).ok());
}

}  // namespace
}  // namespace attest::consensus
