// End-to-end: a federation of three real attestd changes its policy while running. Maintainers sign a
// successor with the real CLI (`attest policy sign`), one node receives it (`attest policy submit`),
// and every node moves to it without a restart:
//   - a builder key revoked as compromised stops counting everywhere: a CONFIRMED path turns PENDING;
//   - an update one approval short, and a replayed older update, are refused and change nothing;
//   - a retired key's attestations received before its cut-off keep counting, later ones do not;
//   - a node restarted with its original policy file keeps the newer policy.
#include <chrono>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "consensus/policy.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/federation_harness.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kAlice = 0;
constexpr int kBob = 1;
constexpr int kCarol = 2;

std::string PathOf(std::string_view name) { return TestStorePath(name).full(); }
std::string SignatureOf(const consensus::Attestation& attestation) { return attestation.signature.ToString(); }

std::string HashOf(const std::string& toml) {
  absl::StatusOr<consensus::Policy> policy = consensus::Policy::ParseToml(toml, "policy.toml");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? policy->Hash() : std::string();
}

// `toml` as the successor of `parent_toml`: its parent's hash and version written at the top.
std::string Successor(const std::string& parent_toml, int version, const std::string& toml) {
  return absl::StrCat("parent = \"", HashOf(parent_toml), "\"\nversion = ", version, "\n", toml);
}

// The policy body with one builder entry (its key string, quoted) replaced by `entry`.
std::string WithBuilderEntry(const std::string& toml, const std::string& public_key, const std::string& entry) {
  return absl::StrReplaceAll(toml, {{absl::StrCat("\"", public_key, "\""), entry}});
}

class PolicyUpdateTest : public ::testing::Test {
 protected:
  PolicyUpdateTest() : federation_(Options()) {}

  static FederationOptions Options() {
    FederationOptions options = DefaultFederation(3);
    options.maintainers = {"maint-1", "maint-2", "maint-3"};
    options.update_threshold = 2;
    return options;
  }

  // Writes `toml` into the test's directory and returns its path.
  std::string WritePolicy(const std::string& name, const std::string& toml) {
    const std::string file = federation_.dir(0).File(name);
    WriteFileOrDie(file, toml);
    return file;
  }

  // `attest policy sign` by maintainer m; the approval file's path.
  std::string Sign(int m, const std::string& policy_file) {
    RunResult r = federation_.node(0).Cli({"policy", "sign", "--key", federation_.maintainer(m).secret_file, policy_file});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string file = absl::StrCat(policy_file, ".", m, ".sig");
    WriteFileOrDie(file, r.out);
    return file;
  }

  RunResult Submit(int node, const std::string& policy_file, const std::vector<std::string>& signatures) {
    std::vector<std::string> args = {"policy", "submit", "--node", federation_.grpc_address(node), "--policy",
                                     policy_file};
    for (const std::string& s : signatures) {
      args.push_back("--signature");
      args.push_back(s);
    }
    return federation_.node(0).Cli(args);
  }

  // Polls until every node answers `path` with `hash` as its policy.
  ::testing::AssertionResult WaitForPolicy(const std::string& path, const std::string& hash) {
    std::string last;
    const bool done = PollEvery(
        [&] {
          for (int i = 0; i < federation_.size(); ++i) {
            absl::StatusOr<std::vector<PathView>> views = federation_.Status(i, {path});
            if (!views.ok() || views->empty() || (*views)[0].policy_hash != hash) {
              last = absl::StrCat(federation_.name(i), " answers under ",
                                  views.ok() && !views->empty() ? (*views)[0].policy_hash : "(no answer)");
              return false;
            }
          }
          return true;
        },
        kFederationDeadline);
    if (done) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "not every node moved to " << hash << ": " << last << "\n"
                                         << federation_.Describe();
  }

  FederationHarness federation_;
};

TEST_F(PolicyUpdateTest, RevocationRetirementRefusalsAndARestartAcrossAFederation) {
  ASSERT_TRUE(federation_.StartAll());
  constexpr int kA = 0, kB = 1, kC = 2;
  const std::string v1_toml = federation_.policy_toml();
  const std::string v1_hash = HashOf(v1_toml);

  // A path CONFIRMED by alice and bob everywhere.
  const consensus::Attestation alice_p = federation_.Attest(kAlice, "revoked-p", "p");
  const consensus::Attestation bob_p = federation_.Attest(kBob, "revoked-p", "p");
  ASSERT_TRUE(federation_.Submit(kA, {alice_p, bob_p}));
  ASSERT_TRUE(federation_.WaitForAgreement(
      {{PathOf("revoked-p"), v1::CONFIRMED, {SignatureOf(alice_p), SignatureOf(bob_p)}}}));

  // Version 2 revokes bob's key as compromised.
  const std::string bob_key = federation_.builder(kBob).key.public_text;
  const std::string v2_toml =
      Successor(v1_toml, 2, WithBuilderEntry(v1_toml, bob_key, absl::StrCat("{key = \"", bob_key,
                                                                            "\", revoked = \"compromised\"}")));
  const std::string v2_file = WritePolicy("v2.toml", v2_toml);
  const std::string v2_hash = HashOf(v2_toml);
  const std::string m1 = Sign(0, v2_file);

  // One approval short of update_threshold = 2: refused, nothing changes.
  RunResult short_one = Submit(kB, v2_file, {m1});
  EXPECT_NE(short_one.exit_code, 0) << short_one.out;
  EXPECT_THAT(short_one.err, HasSubstr("has 1 approval that counts (maint-1)")) << short_one.err;
  EXPECT_THAT(short_one.err, HasSubstr("needs 2 of its maintainers")) << short_one.err;
  ASSERT_TRUE(WaitForPolicy(PathOf("revoked-p"), v1_hash));
  ASSERT_TRUE(federation_.WaitForAgreement(
      {{PathOf("revoked-p"), v1::CONFIRMED, {SignatureOf(alice_p), SignatureOf(bob_p)}}}));

  // With a second maintainer it is adopted by node B, and every node follows without a restart.
  const std::string m2 = Sign(1, v2_file);
  RunResult adopted = Submit(kB, v2_file, {m1, m2});
  ASSERT_EQ(adopted.exit_code, 0) << adopted.err;
  EXPECT_THAT(adopted.out, HasSubstr(v2_hash));
  ASSERT_TRUE(WaitForPolicy(PathOf("revoked-p"), v2_hash));
  ASSERT_TRUE(federation_.WaitForAgreement({{PathOf("revoked-p"), v1::PENDING, {SignatureOf(alice_p)}}}));

  // Replaying the update on another node: it is current already, or (once v3 exists) not a successor.
  RunResult replay = Submit(kC, v2_file, {m1, m2});
  EXPECT_NE(replay.exit_code, 0);

  // Retirement: alice's attestation of Q is received before the cut-off, that of R after it.
  const consensus::Attestation alice_q = federation_.Attest(kAlice, "retired-q", "q");
  const consensus::Attestation carol_q = federation_.Attest(kCarol, "retired-q", "q");
  ASSERT_TRUE(federation_.Submit(kA, {alice_q, carol_q}));
  const int64_t cut_off = static_cast<int64_t>(std::time(nullptr)) + 1;
  ASSERT_TRUE(PollEvery([&] { return static_cast<int64_t>(std::time(nullptr)) >= cut_off; }, std::chrono::seconds(5),
                        std::chrono::milliseconds(20)));
  const consensus::Attestation alice_r = federation_.Attest(kAlice, "retired-r", "r");
  const consensus::Attestation carol_r = federation_.Attest(kCarol, "retired-r", "r");
  ASSERT_TRUE(federation_.Submit(kA, {alice_r, carol_r}));
  // Both CONFIRMED while alice's key is active.
  ASSERT_TRUE(federation_.WaitForAgreement(
      {{PathOf("retired-q"), v1::CONFIRMED, {SignatureOf(alice_q), SignatureOf(carol_q)}},
       {PathOf("retired-r"), v1::CONFIRMED, {SignatureOf(alice_r), SignatureOf(carol_r)}}}));

  char cut_off_text[32];
  const std::time_t cut_off_time = static_cast<std::time_t>(cut_off);
  std::tm utc{};
  gmtime_r(&cut_off_time, &utc);
  std::strftime(cut_off_text, sizeof(cut_off_text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  const std::string alice_key = federation_.builder(kAlice).key.public_text;
  const std::string v3_body = WithBuilderEntry(
      absl::StrReplaceAll(v2_toml, {{absl::StrCat("parent = \"", v1_hash, "\"\nversion = 2\n"), ""}}), alice_key,
      absl::StrCat("{key = \"", alice_key, "\", retired = \"", cut_off_text, "\"}"));
  const std::string v3_toml = Successor(v2_toml, 3, v3_body);
  const std::string v3_file = WritePolicy("v3.toml", v3_toml);
  const std::string v3_hash = HashOf(v3_toml);
  RunResult retired = Submit(kC, v3_file, {Sign(1, v3_file), Sign(2, v3_file)});
  ASSERT_EQ(retired.exit_code, 0) << retired.err;
  ASSERT_TRUE(WaitForPolicy(PathOf("retired-q"), v3_hash));
  ASSERT_TRUE(federation_.WaitForAgreement(
      {{PathOf("retired-q"), v1::CONFIRMED, {SignatureOf(alice_q), SignatureOf(carol_q)}},
       {PathOf("retired-r"), v1::PENDING, {SignatureOf(carol_r)}},
       {PathOf("revoked-p"), v1::PENDING, {SignatureOf(alice_p)}}}));

  // The v2 update replayed now that v3 is current: its parent is not the current policy.
  RunResult old_replay = Submit(kA, v2_file, {m1, m2});
  EXPECT_NE(old_replay.exit_code, 0);
  EXPECT_THAT(old_replay.err, HasSubstr("not the current policy")) << old_replay.err;

  // Node C restarted with its original (version 1) policy file keeps version 3.
  ASSERT_TRUE(federation_.Stop(kC).has_value());
  ASSERT_TRUE(federation_.Start(kC));
  ASSERT_TRUE(WaitForPolicy(PathOf("retired-r"), v3_hash));
  ASSERT_TRUE(federation_.WaitForAgreement(
      {{PathOf("retired-q"), v1::CONFIRMED, {SignatureOf(alice_q), SignatureOf(carol_q)}},
       {PathOf("retired-r"), v1::PENDING, {SignatureOf(carol_r)}},
       {PathOf("revoked-p"), v1::PENDING, {SignatureOf(alice_p)}}}));
}

}  // namespace
}  // namespace attest::testing
