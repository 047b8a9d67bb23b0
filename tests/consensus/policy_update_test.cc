#include "consensus/policy_update.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Message(const absl::Status& status) { return std::string(status.message().data(), status.message().size()); }

// Replaces every occurrence of each `from`, in order.
std::string ReplaceAll(std::string text, const std::vector<std::pair<std::string, std::string>>& replacements) {
  for (const auto& [from, to] : replacements) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

std::string Pub(std::string_view name) { return TestKey(name).public_key().ToString(); }

// 2026-12-01T00:00:00Z, maint-old's cut-off.
constexpr int64_t kCutOff = 1796083200;
constexpr int64_t kBefore = kCutOff - 1;

// The body every policy of these tests shares: three operators, five maintainers of whom maint-old is
// retired and maint-lost revoked; `{chain}` is replaced by the chain settings.
std::string PolicyToml(std::string_view chain, std::string_view extra = "") {
  return ReplaceAll(R"({chain}
update_threshold = 2
quorum = 2

[[operator]]
name = "alice"
builders = ["{alice-1}"]

[[operator]]
name = "bob"
builders = ["{bob-1}"]

[[operator]]
name = "carol"
builders = ["{carol-1}"]
{extra}
[[maintainer]]
key = "{maint-1}"

[[maintainer]]
key = "{maint-2}"

[[maintainer]]
key = "{maint-3}"

[[maintainer]]
key = "{maint-old}"
retired = "2026-12-01T00:00:00Z"

[[maintainer]]
key = "{maint-lost}"
revoked = "compromised"
)",
                             {{"{chain}", std::string(chain)},
                              {"{extra}", std::string(extra)},
                              {"{alice-1}", Pub("alice-1")},
                              {"{bob-1}", Pub("bob-1")},
                              {"{carol-1}", Pub("carol-1")},
                              {"{maint-1}", Pub("maint-1")},
                              {"{maint-2}", Pub("maint-2")},
                              {"{maint-3}", Pub("maint-3")},
                              {"{maint-old}", Pub("maint-old")},
                              {"{maint-lost}", Pub("maint-lost")}});
}

Policy Parse(std::string_view toml) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(toml, "test.toml");
  EXPECT_TRUE(policy.ok()) << policy.status() << "\n" << toml;
  return *std::move(policy);
}

// The successor of `parent` with version `version` (by default its parent's + 1).
std::string SuccessorToml(const Policy& parent, std::string_view extra = "", int64_t version = 0) {
  return PolicyToml(Cat("parent = \"", parent.Hash(), "\"\nversion = ", version == 0 ? parent.version() + 1 : version),
                    extra);
}

const Policy& Genesis() {
  static const Policy* const policy = new Policy(Parse(PolicyToml("# the first policy")));
  return *policy;
}

// `toml` approved by the named keys (the signature of each over the successor's approval statement).
PolicyLink Approved(std::string toml, const std::vector<std::string>& keys) {
  const Policy successor = Parse(toml);
  PolicyLink link{.toml = std::move(toml), .approvals = {}};
  for (const std::string& key : keys) link.approvals.push_back(ApprovePolicy(successor, TestKey(key)));
  return link;
}

constexpr std::string_view kAddDave = "\n[[operator]]\nname = \"dave\"\nbuilders = [\"dave-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n";

// ---- Approvals -------------------------------------------------------------------------------

TEST(PolicyUpdateTest, TheApprovalStatementIsTheHeaderAndThePolicyLine) {
  EXPECT_EQ(PolicyApprovalMessage("sha256:0123abcd"), "attest/policy-approval/v1\npolicy sha256:0123abcd\n");
  EXPECT_EQ(kPolicyApprovalHeader, "attest/policy-approval/v1");
}

TEST(PolicyUpdateTest, AnApprovalIsTheMaintainersSignatureOverThePolicysStatement) {
  const Policy policy = Genesis();
  const Signature approval = ApprovePolicy(policy, TestKey("maint-1"));
  EXPECT_EQ(approval.key_name, "maint-1");
  EXPECT_TRUE(TestKey("maint-1").public_key().Verify(PolicyApprovalMessage(policy.Hash()), approval).ok());
  // Bound to the hash: not a valid approval of another policy, and not one by another key.
  const Policy other = Parse(SuccessorToml(policy));
  EXPECT_FALSE(TestKey("maint-1").public_key().Verify(PolicyApprovalMessage(other.Hash()), approval).ok());
  EXPECT_FALSE(TestKey("maint-2").public_key().Verify(PolicyApprovalMessage(policy.Hash()), approval).ok());
  // Deterministic (Ed25519): the same approval every time.
  EXPECT_EQ(ApprovePolicy(policy, TestKey("maint-1")), approval);
}

TEST(PolicyUpdateTest, ApprovalFilesSkipCommentsAndBlankLinesAndTrimLines) {
  const Signature a = ApprovePolicy(Genesis(), TestKey("maint-1"));
  const Signature b = ApprovePolicy(Genesis(), TestKey("maint-2"));
  const std::string text = Cat("# approvals of version 2\n\n  ", a.ToString(), "  \r\n\t\n# next\n", b.ToString());
  absl::StatusOr<std::vector<Signature>> approvals = ParseApprovals(text, "maint.sig");
  ASSERT_TRUE(approvals.ok()) << approvals.status();
  EXPECT_THAT(*approvals, ElementsAre(a, b));
}

TEST(PolicyUpdateTest, MalformedApprovalFilesAreRefusedNamingTheLine) {
  const std::string a = ApprovePolicy(Genesis(), TestKey("maint-1")).ToString();
  const std::string b = ApprovePolicy(Genesis(), TestKey("maint-2")).ToString();
  struct Case {
    std::string what;
    std::string text;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "maint.sig: holds no approval"},
      {"only comments", "# nothing yet\n\n", "maint.sig: holds no approval"},
      {"not a signature", Cat(a, "\nhello\n"), "maint.sig:2: "},
      {"a public key instead", Cat("# x\n", Pub("maint-1"), "\n"), "maint.sig:2: "},
      {"no key name", Cat("\n\n", a.substr(a.find(':')), "\n"), "maint.sig:3: "},
      {"two signatures on a line", Cat(a, " ", b, "\n"), "maint.sig:1: "},
      {"the same key twice", Cat(a, "\n", b, "\n\n", a, "\n"), "maint.sig:4: a second approval by key 'maint-1' (the first is on line 1)"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<Signature>> approvals = ParseApprovals(c.text, "maint.sig");
    ASSERT_FALSE(approvals.ok()) << c.what;
    EXPECT_EQ(approvals.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(Message(approvals.status()), HasSubstr(c.fragment)) << c.what;
  }
}

// ---- VerifyPolicyLink ------------------------------------------------------------------------

TEST(PolicyUpdateTest, ALinkApprovedByExactlyTheThresholdIsAdopted) {
  const std::string toml = SuccessorToml(Genesis(), kAddDave);
  const PolicyLink link = Approved(toml, {"maint-2", "maint-1"});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(adopted->Hash(), Parse(toml).Hash());
  EXPECT_EQ(adopted->parent(), Genesis().Hash());
  EXPECT_EQ(adopted->version(), 2);
  EXPECT_THAT(CountedApprovals(Genesis(), link, kBefore), ElementsAre("maint-1", "maint-2"));
}

TEST(PolicyUpdateTest, TheHashIsOverTheCanonicalTextSoCommentsDoNotMatter) {
  const std::string toml = SuccessorToml(Genesis());
  PolicyLink link = Approved(toml, {"maint-1", "maint-2"});
  link.toml = Cat("# reviewed by maint-1 and maint-2\n", link.toml, "\n# end\n");
  EXPECT_TRUE(VerifyPolicyLink(Genesis(), link, kBefore).ok());
}

TEST(PolicyUpdateTest, OneApprovalShortIsPermissionDeniedSayingWhatCountedAndWhyOthersDidNot) {
  const std::string toml = SuccessorToml(Genesis());
  const Policy successor = Parse(toml);
  PolicyLink link = Approved(toml, {"maint-1", "maint-lost", "alice-1", "maint-old"});
  // maint-3 signed something else.
  link.approvals.push_back(TestKey("maint-3").Sign(PolicyApprovalMessage(Genesis().Hash())));
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kCutOff + 60);
  ASSERT_FALSE(adopted.ok());
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  const std::string message = Message(adopted.status());
  EXPECT_THAT(message, HasSubstr(Cat("policy ", successor.Hash(), " has 1 approval that counts (maint-1)")));
  EXPECT_THAT(message, HasSubstr(Cat("the current policy ", Genesis().Hash(), " needs 2 of its maintainers")));
  EXPECT_THAT(message, HasSubstr("maint-lost: revoked (compromised)"));
  EXPECT_THAT(message, HasSubstr("alice-1: not a maintainer of the current policy"));
  EXPECT_THAT(message, HasSubstr("maint-old: retired at 2026-12-01T00:00:00Z, and the update was received at "
                                 "2026-12-01T00:01:00Z"));
  EXPECT_THAT(message, HasSubstr("maint-3: the signature does not verify"));
  EXPECT_THAT(CountedApprovals(Genesis(), link, kCutOff + 60), ElementsAre("maint-1"));
}

TEST(PolicyUpdateTest, NoApprovalAtAllIsPermissionDenied) {
  const PolicyLink link = Approved(SuccessorToml(Genesis()), {});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("has 0 approvals that count;"));
}

TEST(PolicyUpdateTest, ARevokedMaintainersApprovalDoesNotCount) {
  const PolicyLink link = Approved(SuccessorToml(Genesis()), {"maint-1", "maint-lost"});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("maint-lost: revoked (compromised)"));
  EXPECT_THAT(CountedApprovals(Genesis(), link, kBefore), ElementsAre("maint-1"));
}

TEST(PolicyUpdateTest, ARetiredMaintainerCountsForUpdatesReceivedBeforeItsCutOffOnly) {
  const PolicyLink link = Approved(SuccessorToml(Genesis()), {"maint-1", "maint-old"});
  EXPECT_TRUE(VerifyPolicyLink(Genesis(), link, kBefore).ok());
  EXPECT_THAT(CountedApprovals(Genesis(), link, kBefore), ElementsAre("maint-1", "maint-old"));
  // At the cut-off itself, after it, and when the time is unknown: it does not count.
  for (int64_t received : {kCutOff, kCutOff + 1, int64_t{0}}) {
    absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, received);
    EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied) << received;
    EXPECT_THAT(Message(adopted.status()), HasSubstr("maint-old: retired at 2026-12-01T00:00:00Z")) << received;
    EXPECT_THAT(CountedApprovals(Genesis(), link, received), ElementsAre("maint-1"));
  }
  EXPECT_THAT(Message(VerifyPolicyLink(Genesis(), link, 0).status()), HasSubstr("received at an unknown time"));
}

TEST(PolicyUpdateTest, AKeyThatIsNoMaintainerDoesNotCount) {
  // A builder of the policy, and a key the policy does not know at all.
  const PolicyLink link = Approved(SuccessorToml(Genesis()), {"maint-1", "alice-1", "stranger-1"});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("alice-1: not a maintainer of the current policy"));
  EXPECT_THAT(Message(adopted.status()), HasSubstr("stranger-1: not a maintainer of the current policy"));
}

TEST(PolicyUpdateTest, ASignatureThatDoesNotVerifyDoesNotCount) {
  const std::string toml = SuccessorToml(Genesis());
  PolicyLink link = Approved(toml, {"maint-1", "maint-2"});
  link.approvals[1].bytes[10] ^= 0x01;
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("maint-2: the signature does not verify"));
  // An approval of the genesis policy itself is no approval of its successor.
  link.approvals[1] = ApprovePolicy(Genesis(), TestKey("maint-2"));
  EXPECT_EQ(VerifyPolicyLink(Genesis(), link, kBefore).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(PolicyUpdateTest, ALinkFromAnotherParentIsFailedPreconditionNamingBothHashes) {
  const Policy sibling = Parse(SuccessorToml(Genesis(), kAddDave));
  const std::string toml = SuccessorToml(sibling);  // version 3, parent: the sibling
  const PolicyLink link = Approved(toml, {"maint-1", "maint-2"});
  const Policy current = Parse(SuccessorToml(Genesis()));  // version 2, another one
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(current, link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(adopted.status()), HasSubstr(Cat("replaces ", sibling.Hash())));
  EXPECT_THAT(Message(adopted.status()), HasSubstr(Cat("not the current policy ", current.Hash())));
  EXPECT_THAT(Message(adopted.status()), HasSubstr("made from another policy"));
}

TEST(PolicyUpdateTest, ReplayingTheCurrentLinkIsAlreadyExists) {
  const std::string toml = SuccessorToml(Genesis());
  const PolicyLink link = Approved(toml, {"maint-1", "maint-2"});
  const Policy current = *VerifyPolicyLink(Genesis(), link, kBefore);
  absl::StatusOr<Policy> again = VerifyPolicyLink(current, link, kBefore);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(Message(again.status()), HasSubstr(current.Hash()));
}

TEST(PolicyUpdateTest, ReplayingAnOlderLinkIsFailedPrecondition) {
  const PolicyLink first = Approved(SuccessorToml(Genesis()), {"maint-1", "maint-2"});
  const Policy v2 = *VerifyPolicyLink(Genesis(), first, kBefore);
  const PolicyLink second = Approved(SuccessorToml(v2, kAddDave), {"maint-1", "maint-3"});
  const Policy v3 = *VerifyPolicyLink(v2, second, kBefore);
  ASSERT_EQ(v3.version(), 3);
  absl::StatusOr<Policy> replayed = VerifyPolicyLink(v3, first, kBefore);
  EXPECT_EQ(replayed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(replayed.status()), HasSubstr(Cat("replaces ", Genesis().Hash())));
  EXPECT_THAT(Message(replayed.status()), HasSubstr(Cat("not the current policy ", v3.Hash(), " (version 3)")));
  EXPECT_THAT(Message(replayed.status()), HasSubstr("an older update replayed"));
}

TEST(PolicyUpdateTest, AVersionThatIsNotTheParentsPlusOneIsFailedPrecondition) {
  for (int64_t version : {3, 7}) {
    const PolicyLink link = Approved(SuccessorToml(Genesis(), "", version), {"maint-1", "maint-2"});
    absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
    EXPECT_EQ(adopted.status().code(), absl::StatusCode::kFailedPrecondition) << version;
    EXPECT_THAT(Message(adopted.status()), HasSubstr(Cat("has version ", version)));
    EXPECT_THAT(Message(adopted.status()), HasSubstr("it must have version 2"));
  }
}

TEST(PolicyUpdateTest, ASuccessorWithoutAParentIsFailedPrecondition) {
  const PolicyLink link = Approved(PolicyToml("version = 2", kAddDave), {"maint-1", "maint-2"});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(adopted.status()), HasSubstr(Cat("names no parent; a successor of the current policy must say "
                                                       "`parent = \"",
                                                       Genesis().Hash(), "\"`")));
}

TEST(PolicyUpdateTest, TomlThatDoesNotParseIsInvalidArgumentAtItsLine) {
  const PolicyLink link{.toml = "quorum = 2\nnonsense = 1\n", .approvals = {}};
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("policy update:2:"));
  EXPECT_THAT(CountedApprovals(Genesis(), link, kBefore), IsEmpty());
}

TEST(PolicyUpdateTest, OversizeTomlIsInvalidArgument) {
  PolicyLink link = Approved(SuccessorToml(Genesis()), {"maint-1", "maint-2"});
  link.toml += std::string(kMaxPolicyTomlBytes + 1 - link.toml.size(), '#');
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("policy update of 49153 bytes; a policy update holds at most 49152"));
  // One byte less is fine (a comment: the hash does not change).
  link.toml.pop_back();
  EXPECT_TRUE(VerifyPolicyLink(Genesis(), link, kBefore).ok());
}

TEST(PolicyUpdateTest, TooManyApprovalsIsInvalidArgument) {
  std::vector<std::string> keys = {"maint-1", "maint-2"};
  for (size_t i = keys.size(); i <= kMaxPolicyApprovals; ++i) keys.push_back(Cat("extra-", i));
  const PolicyLink link = Approved(SuccessorToml(Genesis()), keys);
  ASSERT_EQ(link.approvals.size(), kMaxPolicyApprovals + 1);
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("65 approvals; at most 64"));
}

TEST(PolicyUpdateTest, AnApprovalKeyNamedTwiceIsInvalidArgument) {
  PolicyLink link = Approved(SuccessorToml(Genesis()), {"maint-1", "maint-2"});
  link.approvals.push_back(link.approvals[0]);
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(Genesis(), link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("approvals 1 and 3 are both by key 'maint-1'"));
}

TEST(PolicyUpdateTest, APolicyWithoutMaintainersCannotBeUpdated) {
  const Policy fixed = Parse(Cat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"", Pub("alice-1"), "\"]\n"));
  const PolicyLink link = Approved(Cat("parent = \"", fixed.Hash(), "\"\nversion = 2\nquorum = 1\n[[operator]]\n"
                                       "name = \"alice\"\nbuilders = [\"", Pub("alice-1"), "\"]\n"),
                                   {"maint-1"});
  absl::StatusOr<Policy> adopted = VerifyPolicyLink(fixed, link, kBefore);
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Message(adopted.status()), HasSubstr("and has none, so it cannot be updated"));
}

// ---- DiffPolicies ----------------------------------------------------------------------------

TEST(PolicyUpdateTest, DiffOfAPolicyWithItselfIsEmpty) {
  EXPECT_THAT(DiffPolicies(Genesis(), Genesis()), IsEmpty());
  // Comments and layout are not differences.
  EXPECT_THAT(DiffPolicies(Genesis(), Parse(Cat("# reformatted\n", PolicyToml("")))), IsEmpty());
}

TEST(PolicyUpdateTest, DiffSaysWhatChangedOneLineEach) {
  const std::string v2 = ReplaceAll(
      SuccessorToml(Genesis(),
                    Cat("\n[[operator]]\nname = \"dave\"\nbuilders = [\"", Pub("dave-1"), "\"]\n",
                        "\n[[group]]\nname = \"independent\"\nthreshold = 2\nmembers = [\"bob\", \"carol\", \"dave\"]\n",
                        "\n[[rule]]\nnames = [\"linux-*\", \"openssl-*\"]\nquorum = 3\n")),
      {{"quorum = 2\n", "update_threshold = 3\n[quorum]\nthreshold = 2\nmembers = [\"alice\", \"independent\"]\n"},
       {"update_threshold = 2\n", ""},
       {Cat("builders = [\"", Pub("bob-1"), "\"]"),
        Cat("builders = [{key = \"", Pub("bob-1"), "\", revoked = \"compromised\"}, \"", Pub("bob-2"), "\"]")},
       {Cat("[[maintainer]]\nkey = \"", Pub("maint-3"), "\"\n"), ""}});
  const Policy after = Parse(v2);
  EXPECT_THAT(DiffPolicies(Genesis(), after),
              ElementsAre("~ version: 1 -> 2", Cat("~ parent: none -> ", Genesis().Hash()),
                          "~ update threshold: 2 -> 3", "~ quorum: any 2 operators -> 2 of (alice, independent)",
                          "+ group independent: 2 of (bob, carol, dave)",
                          "+ rule 1: linux-*, openssl-* needs any 3 operators", "+ operator dave",
                          Cat("+ builder ", Pub("bob-2"), " (bob)"), Cat("+ builder ", Pub("dave-1"), " (dave)"),
                          Cat("- maintainer ", Pub("maint-3")), "~ key bob-1: active -> revoked (compromised)"));
}

TEST(PolicyUpdateTest, DiffShowsRemovalsAndChangedRules) {
  const Policy before = Parse(PolicyToml("", "\n[[rule]]\nnames = [\"openssl-*\"]\nquorum = 2\n"));
  const std::string after_toml = ReplaceAll(
      PolicyToml("", "\n[[rule]]\nnames = [\"openssl-*\"]\nquorum = 1\n"),
      {{Cat("[[operator]]\nname = \"carol\"\nbuilders = [\"", Pub("carol-1"), "\"]\n"), ""},
       {"retired = \"2026-12-01T00:00:00Z\"", "retired = \"2027-01-01T12:30:05Z\""}});
  const Policy after = Parse(after_toml);
  EXPECT_THAT(DiffPolicies(before, after),
              ElementsAre("~ rule 1: openssl-* needs any 2 operators -> openssl-* needs any 1 operator",
                          "- operator carol", Cat("- builder ", Pub("carol-1"), " (carol)"),
                          "~ key maint-old: retired at 2026-12-01T00:00:00Z -> retired at 2027-01-01T12:30:05Z"));
  // And the other way round.
  EXPECT_THAT(DiffPolicies(after, before), ::testing::Contains("+ operator carol"));
  EXPECT_THAT(DiffPolicies(after, before), Not(::testing::Contains("- operator carol")));
}

}  // namespace
}  // namespace attest::consensus
