// The PolicyStore contract (storage/policy_store.h), run against every implementation the way
// tests/storage/derivation_store_contract_test.cc runs the derivation role; then what only the SQLite
// store can show (a reopened file, a transaction that fails half way).
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/policy_update.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/attestation_store.h"
#include "storage/memory_attestation_store.h"
#include "storage/sqlite.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/storage/fault_injecting_store.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<AttestationStore>(const TempDir&)> open;
};

std::string HashOf(std::string_view what) { return consensus::Cat("sha256:", consensus::HexEncode(consensus::Sha256(what))); }

// A link named `name` after `parent` (names, hashed), approved by `maintainers`. The store checks only
// the chain, not signatures, so the approvals sign anything.
StoredPolicyLink Link(std::string_view name, std::string_view parent, int64_t version,
                      std::vector<std::string> maintainers = {"maint-1", "maint-2"}, std::string origin = "") {
  StoredPolicyLink link{.hash = HashOf(name),
                        .parent = HashOf(parent),
                        .version = version,
                        .toml = consensus::Cat("# policy ", name, ", with a comment and bytes \xc3\xa9\n",
                                               "parent = \"", HashOf(parent), "\"\nversion = ", version, "\nquorum = 1\n"),
                        .approvals = {},
                        .received_unix = 1700000000 + version,
                        .origin = std::move(origin)};
  for (const std::string& maintainer : maintainers) {
    link.approvals.push_back(TestKey(maintainer).Sign(consensus::PolicyApprovalMessage(link.hash)));
  }
  return link;
}

class PolicyStoreContractTest : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }

  std::vector<StoredPolicyLink> ChainOk() {
    auto chain = store_->PolicyChain();
    EXPECT_TRUE(chain.ok()) << chain.status();
    return chain.ok() ? *chain : std::vector<StoredPolicyLink>{};
  }
  LogHead HeadOk() {
    auto head = store_->GetLogHead();
    EXPECT_TRUE(head.ok()) << head.status();
    return head.ok() ? *head : LogHead{.size = 999999, .root = {}};
  }

  TempDir dir_;
  std::unique_ptr<AttestationStore> store_;
};

TEST_P(PolicyStoreContractTest, AFreshStoreHoldsNoChain) {
  EXPECT_THAT(ChainOk(), IsEmpty());
}

TEST_P(PolicyStoreContractTest, LinksAreReadBackInChainOrderWithEveryField) {
  // The first link may continue any policy; it need not be version 2.
  const StoredPolicyLink a = Link("v5", "v4", 5);
  const StoredPolicyLink b = Link("v6", "v5", 6, {"maint-3", "maint-1"}, "node-b");
  const StoredPolicyLink c = Link("v7", "v6", 7, {"maint-2"});
  for (const StoredPolicyLink& link : {a, b, c}) ASSERT_TRUE(store_->PutPolicyLink(link).ok()) << link.hash;
  EXPECT_THAT(ChainOk(), ElementsAre(a, b, c));
}

TEST_P(PolicyStoreContractTest, ALinkSubmittedHereIsLoggedAsAPolicyEntry) {
  WriteBatch logged = testing::Batch({testing::Attest(attest::testing::TestClaim("a-1"), "builder-1")});
  logged.log_append = LogAppend::kAll;
  ASSERT_TRUE(store_->Write(logged).ok());
  const LogHead before = HeadOk();
  ASSERT_EQ(before.size, 1u);
  const StoredPolicyLink link = Link("v2", "v1", 2);
  ASSERT_TRUE(store_->PutPolicyLink(link).ok());
  const LogHead after = HeadOk();
  ASSERT_EQ(after.size, 2u);
  auto entries = store_->LogEntries(1, 1);
  ASSERT_TRUE(entries.ok()) << entries.status();
  auto parsed = consensus::ParseLogEntry((*entries)[0]);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->kind, consensus::LogEntryKind::kPolicy);
  EXPECT_EQ(*parsed->policy, (consensus::PolicyEntry{.policy_hash = link.hash,
                                                     .parent = link.parent,
                                                     .version = 2,
                                                     .approvals = link.approvals,
                                                     .received_unix = link.received_unix,
                                                     .toml = link.toml}));
  // The tree holds exactly those bytes as its second leaf.
  auto first = store_->LogEntries(0, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(after.root, consensus::NodeHash(consensus::LeafHash((*first)[0]), consensus::LeafHash((*entries)[0])));
}

TEST_P(PolicyStoreContractTest, APeersLinkIsStoredButNotLoggedAgain) {
  const StoredPolicyLink link = Link("v2", "v1", 2, {"maint-1"}, "node-b");
  ASSERT_TRUE(store_->PutPolicyLink(link).ok());
  EXPECT_EQ(HeadOk().size, 0u);
  EXPECT_THAT(ChainOk(), ElementsAre(link));
  // A later local link is logged: the log shows what this node was told, not what it learnt.
  ASSERT_TRUE(store_->PutPolicyLink(Link("v3", "v2", 3)).ok());
  EXPECT_EQ(HeadOk().size, 1u);
}

TEST_P(PolicyStoreContractTest, AHeldHashIsAlreadyExistsAndChangesNothing) {
  const StoredPolicyLink link = Link("v2", "v1", 2);
  ASSERT_TRUE(store_->PutPolicyLink(link).ok());
  const LogHead head = HeadOk();
  for (const StoredPolicyLink& again : {link, Link("v2", "v1", 2, {"maint-9"}, "node-c")}) {
    absl::Status status = store_->PutPolicyLink(again);
    EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
    EXPECT_THAT(status.message(), HasSubstr(link.hash));
  }
  // Also when it is not the last link.
  ASSERT_TRUE(store_->PutPolicyLink(Link("v3", "v2", 3)).ok());
  EXPECT_EQ(store_->PutPolicyLink(link).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(HeadOk().size, head.size + 1);
  EXPECT_EQ(ChainOk().size(), 2u);
}

TEST_P(PolicyStoreContractTest, ALinkAfterAnOlderStoredLinkOrWithAWrongVersionIsFailedPrecondition) {
  const StoredPolicyLink first = Link("v2", "v1", 2);
  const StoredPolicyLink second = Link("v3", "v2", 3);
  ASSERT_TRUE(store_->PutPolicyLink(first).ok());
  ASSERT_TRUE(store_->PutPolicyLink(second).ok());
  const LogHead head = HeadOk();
  {
    // A fork of old history: its parent is stored, but is not the last link.
    const StoredPolicyLink fork = Link("other-v3", "v2", 3);
    absl::Status status = store_->PutPolicyLink(fork);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
    EXPECT_THAT(status.message(), HasSubstr(first.hash));
    EXPECT_THAT(status.message(), HasSubstr(second.hash));
  }
  for (int64_t version : {2, 3, 5, 9}) {
    absl::Status status = store_->PutPolicyLink(Link("v4", "v3", version));
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << version << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(second.hash));
    EXPECT_THAT(status.message(), HasSubstr(consensus::Cat("version ", version)));
  }
  EXPECT_THAT(ChainOk(), ElementsAre(first, second));
  EXPECT_EQ(HeadOk().size, head.size);
  EXPECT_EQ(HeadOk().root, head.root);
  // The refusals left the log as it was: the next link is appended right after.
  ASSERT_TRUE(store_->PutPolicyLink(Link("v4", "v3", 4)).ok());
  EXPECT_EQ(HeadOk().size, head.size + 1);
}

// A node restarted with a policy file its chain does not hold continues that file: the first link
// after it names a parent no stored link has, and starts a new segment, with its own versions.
TEST_P(PolicyStoreContractTest, ALinkAfterAnUnheldParentStartsANewSegment) {
  const StoredPolicyLink v2 = Link("v2", "v1", 2);
  const StoredPolicyLink v3 = Link("v3", "v2", 3);
  const StoredPolicyLink x2 = Link("x2", "x1", 2, {"maint-7"});  // reuses version 2
  const StoredPolicyLink x3 = Link("x3", "x2", 3, {"maint-7"}, "node-b");
  for (const StoredPolicyLink& link : {v2, v3, x2, x3}) ASSERT_TRUE(store_->PutPolicyLink(link).ok()) << link.hash;
  EXPECT_THAT(ChainOk(), ElementsAre(v2, v3, x2, x3));
  EXPECT_EQ(HeadOk().size, 3u);  // x3 came from a peer
  const LogHead head = HeadOk();

  // Any stored hash is ALREADY_EXISTS, in whichever segment, whatever the parent now claimed.
  for (const StoredPolicyLink& again : {v2, v3, x2, x3, Link("v3", "x3", 4), Link("x2", "unheld", 2)}) {
    absl::Status status = store_->PutPolicyLink(again);
    EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << again.hash << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(again.hash));
  }
  // Forks of either segment are refused: only the last link may be extended.
  for (const StoredPolicyLink& fork : {Link("y", "v3", 4), Link("y", "v2", 3), Link("y", "x2", 3)}) {
    absl::Status status = store_->PutPolicyLink(fork);
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << fork.parent << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(fork.parent));
    EXPECT_THAT(status.message(), HasSubstr(x3.hash));
  }
  // Within the new segment the version still grows by one.
  EXPECT_EQ(store_->PutPolicyLink(Link("x4", "x3", 5)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->PutPolicyLink(Link("x4", "x3", 2)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(ChainOk(), ElementsAre(v2, v3, x2, x3));
  EXPECT_EQ(HeadOk().root, head.root);

  // The segment goes on; then another one starts, at any version, even from the file the first
  // segment started from (v1 is a parent in the chain, but no stored link's hash).
  const StoredPolicyLink x4 = Link("x4", "x3", 4);
  const StoredPolicyLink w2 = Link("w2", "v1", 2);
  const StoredPolicyLink z8 = Link("z8", "z7", 8);
  for (const StoredPolicyLink& link : {x4, w2, z8}) ASSERT_TRUE(store_->PutPolicyLink(link).ok()) << link.hash;
  EXPECT_THAT(ChainOk(), ElementsAre(v2, v3, x2, x3, x4, w2, z8));
  EXPECT_EQ(HeadOk().size, head.size + 3);
}

TEST_P(PolicyStoreContractTest, AMalformedLinkIsInvalidArgumentAndStoresNothing) {
  struct Case {
    std::string what;
    std::function<void(StoredPolicyLink&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no hash", [](StoredPolicyLink& l) { l.hash.clear(); }, "no hash"},
      {"hash not sha256", [](StoredPolicyLink& l) { l.hash = "md5:abc"; }, "policy hash"},
      {"no parent", [](StoredPolicyLink& l) { l.parent.clear(); }, "parent"},
      {"version 1", [](StoredPolicyLink& l) { l.version = 1; }, "version 1"},
      {"version 0", [](StoredPolicyLink& l) { l.version = 0; }, "version 0"},
      {"no TOML", [](StoredPolicyLink& l) { l.toml.clear(); }, "TOML of 0 bytes"},
      {"TOML too large", [](StoredPolicyLink& l) { l.toml = std::string(consensus::kMaxPolicyTomlBytes + 1, '#'); },
       "TOML of 49153 bytes"},
      {"negative time", [](StoredPolicyLink& l) { l.received_unix = -1; }, "negative"},
      {"no approval", [](StoredPolicyLink& l) { l.approvals.clear(); }, "0 approvals"},
      {"approval twice", [](StoredPolicyLink& l) { l.approvals.push_back(l.approvals.front()); }, "both by key"},
      {"approval with a bad key name", [](StoredPolicyLink& l) { l.approvals.front().key_name = "a:b"; },
       "approval 1"},
      {"entry over 65535 bytes",
       [](StoredPolicyLink& l) {
         l.toml = std::string(consensus::kMaxPolicyTomlBytes, '#');
         l.approvals.clear();
         for (int i = 0; i < 64; ++i) {
           consensus::Signature signature = TestKey("m").Sign("x");
           signature.key_name = consensus::Cat(std::string(200, 'k'), i);
           l.approvals.push_back(signature);
         }
       },
       "a log entry holds at most 65535"},
  };
  for (const std::string& origin : {"", "node-b"}) {
    for (const Case& c : cases) {
      StoredPolicyLink bad = Link("v2", "v1", 2, {"maint-1", "maint-2"}, origin);
      c.spoil(bad);
      absl::Status status = store_->PutPolicyLink(bad);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what << " " << origin << ": " << status;
      EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.what;
    }
  }
  EXPECT_THAT(ChainOk(), IsEmpty());
  EXPECT_EQ(HeadOk().size, 0u);
}

TEST_P(PolicyStoreContractTest, PolicyLinksTouchNoOtherRole) {
  ASSERT_TRUE(store_->PutPolicyLink(Link("v2", "v1", 2)).ok());
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->attestations, 0);
  EXPECT_EQ(stats->paths, 0);
  auto disputes = store_->CountDisputes(DisputeQuery{});
  ASSERT_TRUE(disputes.ok()) << disputes.status();
  EXPECT_EQ(*disputes, 0);
  // And the other roles' writes leave the chain alone.
  ASSERT_TRUE(store_->Write(testing::Batch({testing::Attest(attest::testing::TestClaim("a-1"), "builder-1")})).ok());
  EXPECT_EQ(ChainOk().size(), 1u);
}

// Nodes racing to adopt the same link (a submission and its retry): exactly one stores it.
TEST_P(PolicyStoreContractTest, ConcurrentPutsOfOneLinkStoreItOnce) {
  const StoredPolicyLink link = Link("v2", "v1", 2);
  std::atomic<int> stored = 0;
  std::atomic<int> other = 0;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      absl::Status status = store_->PutPolicyLink(link);
      if (status.ok()) {
        ++stored;
      } else if (status.code() != absl::StatusCode::kAlreadyExists) {
        ++other;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(stored, 1);
  EXPECT_EQ(other, 0);
  EXPECT_EQ(HeadOk().size, 1u);
  EXPECT_THAT(ChainOk(), ElementsAre(link));
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, PolicyStoreContractTest,
    ::testing::Values(
        Implementation{"Memory",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<MemoryAttestationStore>();
                       }},
        Implementation{"Sqlite",
                       [](const TempDir& dir) -> std::unique_ptr<AttestationStore> {
                         auto store = SqliteAttestationStore::Open(dir.File("attest.db"), {});
                         EXPECT_TRUE(store.ok()) << store.status();
                         if (!store.ok()) return nullptr;
                         return std::move(*store);
                       }},
        // The wrapper, with no fault planned, must be transparent.
        Implementation{"FaultInjectingWithoutFaults",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<testing::FaultInjectingStore>(
                             std::make_unique<MemoryAttestationStore>());
                       }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

// ---- What only some stores show ----

std::unique_ptr<SqliteAttestationStore> OpenSqlite(const std::string& file, const SqliteOptions& options = {}) {
  auto store = SqliteAttestationStore::Open(file, options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(SqlitePolicyStoreTest, TheChainAndItsLogEntrySurviveReopen) {
  TempDir dir;
  const std::string file = dir.File("attest.db");
  const StoredPolicyLink a = Link("v2", "v1", 2);
  const StoredPolicyLink b = Link("v3", "v2", 3, {"maint-2"}, "node-b");
  LogHead head;
  std::vector<std::string> entries;
  {
    auto store = OpenSqlite(file);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutPolicyLink(a).ok());
    ASSERT_TRUE(store->PutPolicyLink(b).ok());
    head = store->GetLogHead().value();
    entries = store->LogEntries(0, head.size).value();
  }
  auto store = OpenSqlite(file);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->PolicyChain().value(), ElementsAre(a, b));
  const LogHead reopened = store->GetLogHead().value();
  EXPECT_EQ(reopened.size, 1u);
  EXPECT_EQ(reopened.root, head.root);
  EXPECT_EQ(store->LogEntries(0, 1).value(), entries);
  // The chain goes on from where it was, and a replay is still recognised.
  EXPECT_EQ(store->PutPolicyLink(a).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->PutPolicyLink(Link("v4", "v2", 4)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->PutPolicyLink(Link("v4", "v3", 4)).ok());
}

// Two segments reusing version numbers, approvals of each kept with their link, survive a reopen, and
// the chain goes on from its last link.
TEST(SqlitePolicyStoreTest, TwoSegmentsSurviveReopen) {
  TempDir dir;
  const std::string file = dir.File("attest.db");
  const StoredPolicyLink v2 = Link("v2", "v1", 2, {"maint-1", "maint-2"});
  const StoredPolicyLink v3 = Link("v3", "v2", 3, {"maint-3"}, "node-b");
  const StoredPolicyLink x2 = Link("x2", "x1", 2, {"maint-8", "maint-7", "maint-9"});
  const StoredPolicyLink x3 = Link("x3", "x2", 3, {"maint-9"});
  {
    auto store = OpenSqlite(file);
    ASSERT_NE(store, nullptr);
    for (const StoredPolicyLink& link : {v2, v3, x2, x3}) ASSERT_TRUE(store->PutPolicyLink(link).ok()) << link.hash;
  }
  auto store = OpenSqlite(file);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->PolicyChain().value(), ElementsAre(v2, v3, x2, x3));
  EXPECT_EQ(store->GetLogHead().value().size, 3u);
  EXPECT_EQ(store->PutPolicyLink(v2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->PutPolicyLink(x3).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->PutPolicyLink(Link("v4", "v3", 4)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->PutPolicyLink(Link("x4", "x3", 3)).code(), absl::StatusCode::kFailedPrecondition);
  const StoredPolicyLink x4 = Link("x4", "x3", 4, {"maint-7"});
  ASSERT_TRUE(store->PutPolicyLink(x4).ok());
  EXPECT_THAT(store->PolicyChain().value(), ElementsAre(v2, v3, x2, x3, x4));
}

// A transaction that fails after the link's rows went in (here: the log refuses the entry) leaves
// nothing: no link, no log entry, and the log the writer keeps in memory is the committed one.
TEST(SqlitePolicyStoreTest, AWriteThatFailsHalfWayLeavesNothing) {
  TempDir dir;
  const std::string file = dir.File("attest.db");
  auto store = OpenSqlite(file);
  ASSERT_NE(store, nullptr);
  {
    auto db = sqlite::Connection::Open(file, sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute("CREATE TRIGGER refuse_log BEFORE INSERT ON log_entries "
                               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
                               "test setup")
                    .ok());
  }
  const StoredPolicyLink link = Link("v2", "v1", 2);
  absl::Status status = store->PutPolicyLink(link);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(store->PolicyChain().value(), IsEmpty());
  EXPECT_EQ(store->GetLogHead().value().size, 0u);
  {
    auto db = sqlite::Connection::Open(file, sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute("DROP TRIGGER refuse_log", "test setup").ok());
    EXPECT_EQ((*db)->QueryInt("SELECT count(*) FROM policy_approvals", "test").value(), 0);
  }
  ASSERT_TRUE(store->PutPolicyLink(link).ok());
  // The same link in a store that never failed gives the same log.
  MemoryAttestationStore reference;
  ASSERT_TRUE(reference.PutPolicyLink(link).ok());
  EXPECT_EQ(store->GetLogHead().value().root, reference.GetLogHead().value().root);
  EXPECT_EQ(store->GetLogHead().value().size, 1u);
}

TEST(SqlitePolicyStoreTest, ABusyDatabaseEndsInUnavailableAndNothingIsStored) {
  TempDir dir;
  const std::string file = dir.File("attest.db");
  auto store = OpenSqlite(file, {.busy_timeout = absl::Milliseconds(50), .busy_retries = 1});
  ASSERT_NE(store, nullptr);
  auto other = sqlite::Connection::Open(file, sqlite::OpenMode::kReadWrite, absl::Seconds(1));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Execute("BEGIN IMMEDIATE", "test lock").ok());
  const StoredPolicyLink link = Link("v2", "v1", 2);
  absl::Status status = store->PutPolicyLink(link);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  ASSERT_TRUE((*other)->Execute("ROLLBACK", "test unlock").ok());
  EXPECT_THAT(store->PolicyChain().value(), IsEmpty());
  EXPECT_EQ(store->GetLogHead().value().size, 0u);
  EXPECT_TRUE(store->PutPolicyLink(link).ok());
}

// The fault-injecting wrapper fails policy writes like the others: before the commit nothing is
// stored; after it, the link is held and a retry is told so.
TEST(FaultInjectingPolicyStoreTest, FailedWritesStoreNothingAndLostAcknowledgementsAreRecognised) {
  testing::FaultInjectingStore store(std::make_unique<MemoryAttestationStore>());
  const StoredPolicyLink link = Link("v2", "v1", 2);
  store.FailWrites(1, absl::UnavailableError("disk busy"));
  EXPECT_EQ(store.PutPolicyLink(link).code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.PolicyChain().value(), IsEmpty());
  EXPECT_EQ(store.GetLogHead().value().size, 0u);
  store.FailWritesAfterCommit(1, absl::UnavailableError("connection lost"));
  EXPECT_EQ(store.PutPolicyLink(link).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.PutPolicyLink(link).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(store.PolicyChain().value(), ElementsAre(link));
  store.FailReads(1, absl::UnavailableError("disk busy"));
  EXPECT_EQ(store.PolicyChain().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.write_calls(), 3);
}

}  // namespace
}  // namespace attest::storage
