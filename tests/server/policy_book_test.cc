// server/policy_book: the policy a node decides under, over the real memory store's policy chain.
#include "server/policy_book.h"

#include <memory>
#include <string>
#include <vector>

#include "consensus/policy_update.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/memory_attestation_store.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::ApprovedLink;
using ::attest::testing::Federation;
using ::attest::testing::SuccessorToml;
using ::attest::testing::TestKey;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kReceived = 1700000000;

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

class PolicyBookTest : public ::testing::Test {
 protected:
  std::unique_ptr<PolicyBook> OpenBook(const consensus::Policy& file, std::string* notice = nullptr) {
    absl::StatusOr<std::unique_ptr<PolicyBook>> book = PolicyBook::Open(file, &store_, notice);
    EXPECT_TRUE(book.ok()) << book.status();
    return book.ok() ? *std::move(book) : nullptr;
  }
  // The successor of `parent` that revokes bob's key, approved by the maintainer.
  consensus::PolicyLink RevokeBob(const consensus::Policy& parent) {
    return ApprovedLink(SuccessorToml(parent, federation_.PolicyTomlRevokingBob()), {&federation_.maintainer});
  }
  std::vector<storage::StoredPolicyLink> Chain() {
    absl::StatusOr<std::vector<storage::StoredPolicyLink>> chain = store_.PolicyChain();
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? *chain : std::vector<storage::StoredPolicyLink>{};
  }

  Federation federation_;
  storage::MemoryAttestationStore store_;
};

TEST_F(PolicyBookTest, AnEmptyChainDecidesUnderTheFileWithoutANotice) {
  const consensus::Policy file = federation_.MakePolicy();
  std::string notice;
  std::unique_ptr<PolicyBook> book = OpenBook(file, &notice);
  ASSERT_NE(book, nullptr);
  EXPECT_EQ(book->current()->Hash(), file.Hash());
  EXPECT_EQ(book->current_link(), nullptr);
  EXPECT_THAT(notice, IsEmpty());
  EXPECT_TRUE(book->IsCurrentOrAncestor(file.Hash()));
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> since = book->LinksSince(file.Hash());
  ASSERT_TRUE(since.ok()) << since.status();
  EXPECT_THAT(*since, IsEmpty());
}

TEST_F(PolicyBookTest, AdoptMakesTheSuccessorCurrentStoresItAndRunsTheListenersInOrder) {
  const consensus::Policy file = federation_.MakePolicy();
  std::unique_ptr<PolicyBook> book = OpenBook(file);
  ASSERT_NE(book, nullptr);
  const std::shared_ptr<const consensus::Policy> before = book->current();
  std::vector<std::string> heard;
  book->AddListener([&](const consensus::Policy& now, const consensus::Policy& was) {
    heard.push_back(consensus::Cat("first ", now.version(), " after ", was.version()));
  });
  book->AddListener([&](const consensus::Policy& now, const consensus::Policy&) {
    heard.push_back(consensus::Cat("second ", now.version()));
  });

  absl::StatusOr<PolicyBook::Adopted> adopted = book->Adopt(RevokeBob(file), "", kReceived);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(adopted->policy->version(), 2);
  EXPECT_EQ(adopted->previous->Hash(), file.Hash());
  EXPECT_THAT(adopted->counted_approvals, ::testing::ElementsAre("maintainer-1"));
  EXPECT_THAT(heard, ::testing::ElementsAre("first 2 after 1", "second 2"));

  EXPECT_EQ(book->current()->Hash(), adopted->policy->Hash());
  EXPECT_EQ(book->current()->Lifecycle("bob-builder-1").state, consensus::KeyState::kRevoked);
  // The snapshot taken before stays what it was.
  EXPECT_EQ(before->Hash(), file.Hash());
  EXPECT_TRUE(book->IsCurrentOrAncestor(file.Hash()));
  EXPECT_TRUE(book->IsCurrentOrAncestor(adopted->policy->Hash()));
  ASSERT_NE(book->current_link(), nullptr);
  EXPECT_EQ(book->current_link()->origin, "");
  EXPECT_EQ(book->current_link()->received_unix, kReceived);
  EXPECT_THAT(book->current_counted_approvals(), ::testing::ElementsAre("maintainer-1"));

  const std::vector<storage::StoredPolicyLink> chain = Chain();
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].hash, adopted->policy->Hash());
  EXPECT_EQ(chain[0].parent, file.Hash());
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> since = book->LinksSince(file.Hash());
  ASSERT_TRUE(since.ok()) << since.status();
  EXPECT_EQ(*since, chain);
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> none = book->LinksSince(adopted->policy->Hash());
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(PolicyBookTest, RefusedUpdatesChangeNothing) {
  const consensus::Policy file = federation_.MakePolicy();
  std::unique_ptr<PolicyBook> book = OpenBook(file);
  ASSERT_NE(book, nullptr);
  int listened = 0;
  book->AddListener([&](const consensus::Policy&, const consensus::Policy&) { ++listened; });
  const std::string body = federation_.PolicyTomlRevokingBob();

  // Approved by a key that is no maintainer.
  const consensus::SecretKey stranger = TestKey("stranger-1");
  absl::StatusOr<PolicyBook::Adopted> unapproved =
      book->Adopt(ApprovedLink(SuccessorToml(file, body), {&stranger}), "", kReceived);
  ASSERT_FALSE(unapproved.ok());
  EXPECT_EQ(unapproved.status().code(), absl::StatusCode::kPermissionDenied) << unapproved.status();

  // A successor of another policy (wrong parent).
  const consensus::Policy other = federation_.MakePolicy(3);
  absl::StatusOr<PolicyBook::Adopted> orphan = book->Adopt(RevokeBob(other), "", kReceived);
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kFailedPrecondition) << orphan.status();

  // Not a policy at all.
  absl::StatusOr<PolicyBook::Adopted> garbage =
      book->Adopt(consensus::PolicyLink{.toml = "quorum = [", .approvals = {}}, "", kReceived);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument) << garbage.status();

  EXPECT_EQ(book->current()->Hash(), file.Hash());
  EXPECT_EQ(book->current_link(), nullptr);
  EXPECT_EQ(listened, 0);
  EXPECT_THAT(Chain(), IsEmpty());

  // Adopted once, the same link again is a replay: ALREADY_EXISTS, nothing more stored or heard.
  const consensus::PolicyLink link = RevokeBob(file);
  ASSERT_TRUE(book->Adopt(link, "", kReceived).ok());
  absl::StatusOr<PolicyBook::Adopted> replay = book->Adopt(link, "", kReceived);
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.status().code(), absl::StatusCode::kAlreadyExists) << replay.status();
  EXPECT_EQ(listened, 1);
  EXPECT_EQ(Chain().size(), 1u);
}

TEST_F(PolicyBookTest, AFixedBookTakesNoUpdates) {
  const consensus::Policy policy = federation_.MakePolicy();
  PolicyBook book(policy);
  absl::StatusOr<PolicyBook::Adopted> adopted = book.Adopt(RevokeBob(policy), "", kReceived);
  ASSERT_FALSE(adopted.ok());
  EXPECT_EQ(adopted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(book.current()->Hash(), policy.Hash());
}

TEST_F(PolicyBookTest, OpenWithTheHeadAsFileDecidesUnderItQuietly) {
  const consensus::Policy file = federation_.MakePolicy();
  std::string head_hash;
  std::string head_toml;
  {
    std::unique_ptr<PolicyBook> book = OpenBook(file);
    ASSERT_NE(book, nullptr);
    absl::StatusOr<PolicyBook::Adopted> adopted = book->Adopt(RevokeBob(file), "node-a", kReceived);
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    head_hash = adopted->policy->Hash();
    head_toml = Chain().at(0).toml;
  }
  absl::StatusOr<consensus::Policy> head = consensus::Policy::ParseToml(head_toml, "head.toml");
  ASSERT_TRUE(head.ok()) << head.status();
  std::string notice;
  std::unique_ptr<PolicyBook> reopened = OpenBook(*head, &notice);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->current()->Hash(), head_hash);
  EXPECT_THAT(notice, IsEmpty());
  ASSERT_NE(reopened->current_link(), nullptr);
  EXPECT_EQ(reopened->current_link()->origin, "node-a");
  EXPECT_TRUE(reopened->IsCurrentOrAncestor(file.Hash()));
}

TEST_F(PolicyBookTest, OpenWithAnOlderFileKeepsTheNewerPolicyAndSaysSo) {
  const consensus::Policy file = federation_.MakePolicy();
  std::string head_hash;
  {
    std::unique_ptr<PolicyBook> book = OpenBook(file);
    ASSERT_NE(book, nullptr);
    absl::StatusOr<PolicyBook::Adopted> adopted = book->Adopt(RevokeBob(file), "", kReceived);
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    head_hash = adopted->policy->Hash();
  }
  std::string notice;
  std::unique_ptr<PolicyBook> reopened = OpenBook(file, &notice);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->current()->Hash(), head_hash);
  EXPECT_EQ(reopened->current()->version(), 2);
  EXPECT_THAT(notice, HasSubstr("is older than the adopted policy"));
  EXPECT_THAT(notice, HasSubstr(file.Hash()));
  EXPECT_THAT(notice, HasSubstr("deciding under version 2"));
  EXPECT_THAT(reopened->current_counted_approvals(), ::testing::ElementsAre("maintainer-1"));
  // The next update continues from the head.
  absl::StatusOr<PolicyBook::Adopted> next = reopened->Adopt(
      ApprovedLink(SuccessorToml(*reopened->current(), federation_.PolicyTomlRevokingBob(3)),
                   {&federation_.maintainer}),
      "", kReceived + 10);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->policy->version(), 3);
  EXPECT_EQ(Chain().size(), 2u);
}

TEST_F(PolicyBookTest, OpenWithAnUnrelatedFileDecidesUnderTheFileAndSaysSo) {
  const consensus::Policy file = federation_.MakePolicy();
  std::string head_hash;
  {
    std::unique_ptr<PolicyBook> book = OpenBook(file);
    ASSERT_NE(book, nullptr);
    absl::StatusOr<PolicyBook::Adopted> adopted = book->Adopt(RevokeBob(file), "", kReceived);
    ASSERT_TRUE(adopted.ok()) << adopted.status();
    head_hash = adopted->policy->Hash();
  }
  const consensus::Policy unrelated = federation_.MakePolicy(3);
  std::string notice;
  std::unique_ptr<PolicyBook> reopened = OpenBook(unrelated, &notice);
  ASSERT_NE(reopened, nullptr);
  EXPECT_EQ(reopened->current()->Hash(), unrelated.Hash());
  EXPECT_EQ(reopened->current_link(), nullptr);
  EXPECT_THAT(notice, HasSubstr("is not in the current policy chain"));
  EXPECT_THAT(notice, HasSubstr("starting a new segment"));
  // The chain starts again from the file: the old chain is not this book's any more.
  EXPECT_FALSE(reopened->IsCurrentOrAncestor(head_hash));
  EXPECT_FALSE(reopened->IsCurrentOrAncestor(file.Hash()));
  absl::StatusOr<std::vector<storage::StoredPolicyLink>> since = reopened->LinksSince(file.Hash());
  ASSERT_FALSE(since.ok());
  EXPECT_EQ(since.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(since.status()), HasSubstr("not in this node's policy chain"));
}

// The operator replaces the federation's policy by hand (file X, with its own maintainers), after the
// node had adopted updates of the old one: X's updates are adopted, kept across restarts, and a
// restart with the old file starts yet another segment.
TEST_F(PolicyBookTest, AnUnrelatedFileStartsANewSegmentThatTakesUpdatesAndSurvivesRestarts) {
  const consensus::Policy v1 = federation_.MakePolicy();
  std::string v2_hash;
  {
    std::unique_ptr<PolicyBook> book = OpenBook(v1);
    ASSERT_NE(book, nullptr);
    absl::StatusOr<PolicyBook::Adopted> v2 = book->Adopt(RevokeBob(v1), "", kReceived);
    ASSERT_TRUE(v2.ok()) << v2.status();
    v2_hash = v2->policy->Hash();
  }

  const consensus::SecretKey x_maintainer = TestKey("x-maintainer-1");
  const std::string x_body =
      consensus::Cat("quorum = 1\n[[operator]]\nname = \"alice-ci\"\nbuilders = [\"",
                     federation_.alice.public_key().ToString(), "\"]\n[[maintainer]]\nkey = \"",
                     x_maintainer.public_key().ToString(), "\"\n");
  absl::StatusOr<consensus::Policy> x = consensus::Policy::ParseToml(x_body, "x.toml");
  ASSERT_TRUE(x.ok()) << x.status();
  const consensus::PolicyLink x2_link = ApprovedLink(
      SuccessorToml(*x, consensus::Cat("quorum = 1\n[[operator]]\nname = \"carol-home\"\nbuilders = [\"",
                                       federation_.carol.public_key().ToString(), "\"]\n[[maintainer]]\nkey = \"",
                                       x_maintainer.public_key().ToString(), "\"\n")),
      {&x_maintainer});
  std::string x2_hash;
  {
    std::string notice;
    std::unique_ptr<PolicyBook> book = OpenBook(*x, &notice);
    ASSERT_NE(book, nullptr);
    EXPECT_EQ(book->current()->Hash(), x->Hash());
    EXPECT_THAT(notice, HasSubstr(x->Hash()));
    EXPECT_THAT(notice, HasSubstr("starting a new segment"));
    // X's successor needs X's maintainers: the old policy's maintainer approves nothing here.
    absl::StatusOr<PolicyBook::Adopted> by_old = book->Adopt(
        ApprovedLink(SuccessorToml(*x, federation_.PolicyToml()), {&federation_.maintainer}), "",
        kReceived + 10);
    ASSERT_FALSE(by_old.ok());
    EXPECT_EQ(by_old.status().code(), absl::StatusCode::kPermissionDenied) << by_old.status();
    // The update the store used to refuse (its parent X is no stored link's hash): a new segment.
    absl::StatusOr<PolicyBook::Adopted> x2 = book->Adopt(x2_link, "", kReceived + 20);
    ASSERT_TRUE(x2.ok()) << x2.status();
    EXPECT_EQ(x2->policy->version(), 2);
    x2_hash = x2->policy->Hash();
    EXPECT_EQ(book->current()->Hash(), x2_hash);
  }
  std::vector<storage::StoredPolicyLink> chain = Chain();
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].hash, v2_hash);
  EXPECT_EQ(chain[1].hash, x2_hash);
  EXPECT_EQ(chain[1].parent, x->Hash());
  EXPECT_EQ(chain[1].version, chain[0].version);  // versions start again in the new segment

  {
    // Restarted with X again: X is the start of the current segment, so its successor stays current.
    std::string notice;
    std::unique_ptr<PolicyBook> book = OpenBook(*x, &notice);
    ASSERT_NE(book, nullptr);
    EXPECT_EQ(book->current()->Hash(), x2_hash);
    EXPECT_THAT(notice, HasSubstr("is older than the adopted policy"));
    EXPECT_THAT(notice, HasSubstr(x2_hash));
    EXPECT_THAT(book->current_counted_approvals(), ::testing::ElementsAre("x-maintainer-1"));
    EXPECT_TRUE(book->IsCurrentOrAncestor(x->Hash()));
    EXPECT_TRUE(book->IsCurrentOrAncestor(x2_hash));
    // The old segment is history, not ancestry.
    EXPECT_FALSE(book->IsCurrentOrAncestor(v1.Hash()));
    EXPECT_FALSE(book->IsCurrentOrAncestor(v2_hash));
    absl::StatusOr<std::vector<storage::StoredPolicyLink>> since = book->LinksSince(x->Hash());
    ASSERT_TRUE(since.ok()) << since.status();
    ASSERT_EQ(since->size(), 1u);
    EXPECT_EQ(since->at(0).hash, x2_hash);
    EXPECT_EQ(book->LinksSince(v1.Hash()).status().code(), absl::StatusCode::kNotFound);
  }

  {
    // Restarted with v1: it is in the chain's older segment only, so it is unrelated to the current one
    // and starts a new segment, like any file the operator sets by hand.
    std::string notice;
    std::unique_ptr<PolicyBook> book = OpenBook(v1, &notice);
    ASSERT_NE(book, nullptr);
    EXPECT_EQ(book->current()->Hash(), v1.Hash());
    EXPECT_EQ(book->current_link(), nullptr);
    EXPECT_THAT(notice, HasSubstr(v1.Hash()));
    EXPECT_THAT(notice, HasSubstr("is not in the current policy chain"));
    EXPECT_THAT(notice, HasSubstr("older, abandoned part"));
    EXPECT_THAT(notice, HasSubstr("starting a new segment"));
    EXPECT_FALSE(book->IsCurrentOrAncestor(x2_hash));
    EXPECT_TRUE(book->IsCurrentOrAncestor(v1.Hash()));
    // And it takes a new successor of v1.
    absl::StatusOr<PolicyBook::Adopted> next = book->Adopt(
        ApprovedLink(SuccessorToml(v1, federation_.PolicyTomlRevokingBob(3)), {&federation_.maintainer}), "",
        kReceived + 30);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_EQ(next->policy->version(), 2);
  }
  EXPECT_EQ(Chain().size(), 3u);
}

}  // namespace
}  // namespace attest::server
