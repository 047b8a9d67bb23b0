#include "client/status_json.h"

#include "consensus/path_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/convert.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::testing::HasSubstr;

// A CONFIRMED answer as a node sends it: the claim once, as a fingerprint, and attestations naming it.
v1::PathStatus Confirmed() {
  const consensus::PathInfo claim = TestClaim("hello");
  v1::PathStatus status;
  status.set_store_path(claim.path.full());
  status.set_verdict(v1::CONFIRMED);
  status.set_quorum(2);
  v1::FingerprintTally* side = status.add_fingerprints();
  side->set_fingerprint(claim.Fingerprint());
  for (const char* name : {"alice-builder-1", "bob-builder-1"}) {
    v1::CountedAttestation* counted = status.add_attestations();
    counted->set_signature(TestKey(name).Sign(claim.Fingerprint()).ToString());
    counted->set_fingerprint_index(0);
    counted->mutable_metadata()->set_output_name("out");
    counted->set_received_unix(1700000000);
  }
  return status;
}

TEST(PathStatusToJsonTest, EveryAttestationCarriesItsClaimAgain) {
  const consensus::PathInfo claim = TestClaim("hello");
  auto json = PathStatusToJson(Confirmed());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ((*json)["verdict"], "CONFIRMED");
  EXPECT_EQ((*json)["fingerprint"], claim.Fingerprint());
  ASSERT_EQ((*json)["attestations"].size(), 2u);
  for (const auto& object : (*json)["attestations"]) {
    EXPECT_EQ(object["path"], claim.path.full());
    EXPECT_EQ(object["narHash"], claim.nar_hash.ToNix32());
    EXPECT_EQ(object["narSize"], claim.nar_size);
    EXPECT_EQ(object["receivedTime"], 1700000000);
    // The rebuilt object parses back to an attestation whose signature verifies over the claim.
    auto attestation = AttestationFromJson(object);
    ASSERT_TRUE(attestation.ok()) << attestation.status();
    EXPECT_EQ(attestation->claim, claim);
    EXPECT_TRUE(consensus::VerifyAttestation(*attestation, TestKey(attestation->key_name()).public_key()).ok());
  }
}

TEST(PathStatusToJsonTest, AnAttestationOfAMissingFingerprintIsAnError) {
  v1::PathStatus status = Confirmed();
  status.mutable_attestations(1)->set_fingerprint_index(1);
  auto json = PathStatusToJson(status);
  ASSERT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(json.status().message(), HasSubstr("attestation of fingerprint 1 but only 1 fingerprints"));
  status.mutable_attestations(1)->set_fingerprint_index(-1);
  EXPECT_EQ(PathStatusToJson(status).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PathStatusToJsonTest, AMalformedFingerprintIsAnError) {
  v1::PathStatus status = Confirmed();
  status.mutable_fingerprints(0)->set_fingerprint("1;not a fingerprint");
  auto json = PathStatusToJson(status);
  ASSERT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(json.status().message(), HasSubstr("malformed fingerprint 0"));
}

TEST(PathStatusToJsonTest, UnknownHasNoFingerprint) {
  v1::PathStatus status;
  status.set_store_path(TestClaim("nothing").path.full());
  status.set_verdict(v1::UNKNOWN);
  auto json = PathStatusToJson(status);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ((*json)["fingerprint"], "");
  EXPECT_TRUE((*json)["attestations"].empty());
}

}  // namespace
}  // namespace attest::client
