// Shared by the server tests: a three-operator federation (quorum 2), signed wire attestations, and a
// node directory (policy, node key, config) in a temp dir. Header-only.
#ifndef ATTEST_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define ATTEST_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.pb.h"
#include "proto/convert.h"
#include "tests/support/test_support.h"

namespace attest::testing {

inline constexpr int64_t kTestNow = 1700000000;

inline absl::Time FixedNow() { return absl::FromUnixSeconds(kTestNow); }

// alice-ci, bob-labs and carol-home, one builder each; quorum 2; one maintainer. `outsider` is in no policy.
struct Federation {
  consensus::SecretKey alice = TestKey("alice-builder-1");
  consensus::SecretKey bob = TestKey("bob-builder-1");
  consensus::SecretKey carol = TestKey("carol-builder-1");
  consensus::SecretKey outsider = TestKey("outsider-1");
  consensus::SecretKey node_key = TestKey("node-1");
  // May resolve disputes (the policy's only maintainer).
  consensus::SecretKey maintainer = TestKey("maintainer-1");

  std::string PolicyToml(int quorum = 2) const {
    return absl::StrCat("quorum = ", quorum, "\n",
                        "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice.public_key().ToString(), "\"]\n",
                        "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", bob.public_key().ToString(), "\"]\n",
                        "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", carol.public_key().ToString(), "\"]\n",
                        "[[maintainer]]\nkey = \"", maintainer.public_key().ToString(), "\"\n");
  }
  consensus::Policy MakePolicy(int quorum = 2) const {
    auto policy = consensus::Policy::ParseToml(PolicyToml(quorum), "policy.toml");
    EXPECT_TRUE(policy.ok()) << policy.status();
    return *std::move(policy);
  }
  // The same federation with bob's builder key revoked as compromised (none of its attestations count).
  std::string PolicyTomlRevokingBob(int quorum = 2) const {
    return absl::StrCat("quorum = ", quorum, "\n",
                        "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice.public_key().ToString(), "\"]\n",
                        "[[operator]]\nname = \"bob-labs\"\nbuilders = [{key = \"", bob.public_key().ToString(),
                        "\", revoked = \"compromised\"}]\n",
                        "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", carol.public_key().ToString(), "\"]\n",
                        "[[maintainer]]\nkey = \"", maintainer.public_key().ToString(), "\"\n");
  }
};

// `body` (a policy's TOML without version and parent) as the successor of `parent`.
inline std::string SuccessorToml(const consensus::Policy& parent, const std::string& body) {
  return absl::StrCat("version = ", parent.version() + 1, "\nparent = \"", parent.Hash(), "\"\n", body);
}

// A link carrying `toml` approved by each of `maintainers` (a TOML that does not parse gets no approval).
inline consensus::PolicyLink ApprovedLink(const std::string& toml,
                                          const std::vector<const consensus::SecretKey*>& maintainers) {
  consensus::PolicyLink link{.toml = toml, .approvals = {}};
  auto policy = consensus::Policy::ParseToml(toml, "successor.toml");
  if (!policy.ok()) return link;
  for (const consensus::SecretKey* key : maintainers) link.approvals.push_back(consensus::ApprovePolicy(*policy, *key));
  return link;
}

inline v1::Attestation Signed(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
  return proto::ToProto(consensus::SignAttestation(claim, key));
}

// Writes policy.toml, node.sec and node.toml into `dir`; returns the config path.
inline std::string WriteNodeDir(const TempDir& dir, const Federation& federation, const std::string& extra_node = "",
                                int quorum = 2) {
  WriteFileOrDie(dir.File("policy.toml"), federation.PolicyToml(quorum));
  WriteFileOrDie(dir.File("node.sec"), federation.node_key.ExportText() + "\n");
  const std::string config = dir.File("node.toml");
  WriteFileOrDie(config, absl::StrCat("[node]\n"
                                      "grpc = \"127.0.0.1:0\"\n"
                                      "http = \"127.0.0.1:0\"\n"
                                      "database = \"attest.db\"\n"
                                      "key = \"node.sec\"\n"
                                      "policy = \"policy.toml\"\n",
                                      extra_node));
  return config;
}

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SERVER_SERVER_TEST_UTIL_H_
