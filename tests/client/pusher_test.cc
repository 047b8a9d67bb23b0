// The pusher in-process: a Nix store made without Nix (push_test_util.h), fake nodes that verify what
// they get, and an injected clock, so backoff and the 30 s give-up are checked as deadlines, not waited for.
#include "client/pusher.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "client/nar.h"
#include "client/spool.h"
#include "consensus/attestation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/push_test_util.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::FakeNixStore;
using ::attest::testing::FakePushNode;
using ::attest::testing::FakePushNodes;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::RealNix;
using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr char kNodeA[] = "node-a:7700";
constexpr char kNodeB[] = "node-b:7700";

class FakeClock final {
 public:
  PushClock Clock() {
    return PushClock{.now = [this] { return now; },
                     .sleep = [this](absl::Duration d) {
                       EXPECT_GE(d, absl::ZeroDuration());
                       sleeps.push_back(d);
                       now += d;
                       if (on_sleep) on_sleep();
                     }};
  }
  absl::Time now = absl::FromUnixSeconds(1700000000);
  std::vector<absl::Duration> sleeps;
  std::function<void()> on_sleep;
};

class PusherTest : public ::testing::Test {
 protected:
  PusherTest() : store_(tmp_.File("store")), spool_(*Spool::Open(tmp_.File("spool"))) {
    nodes_.Add(kNodeA, key_.public_key()).advance_clock = [this](absl::Duration d) { clock_.now += d; };
    nodes_.Add(kNodeB, key_.public_key()).advance_clock = [this](absl::Duration d) { clock_.now += d; };
    options_.nodes = {kNodeA, kNodeB};
  }

  // Builds `name` in the fake store and spools it as the hook would; returns the record id.
  std::string Spooled(const std::string& name, FakeNixStore::Kind kind = FakeNixStore::Kind::kBuilt,
                      const std::vector<std::string>& references = {}) {
    const std::string path = store_.Add(name, "contents of " + name + "\n", kind, references);
    return SpoolPath(path, name);
  }
  std::string SpoolPath(const std::string& path, const std::string& name) {
    SpoolRecord record;
    record.store_path = path;
    record.drv_path = TestStorePath(name + ".drv").full();
    record.output_name = "out";
    record.store_root = store_.root();
    record.queued_at_unix_ms = absl::ToUnixMillis(clock_.now);
    auto id = spool_.Add(record);
    EXPECT_TRUE(id.ok()) << id.status();
    return *id;
  }

  Pusher MakePusher() {
    return Pusher(spool_, TestKey("builder-1"), options_, nodes_.Connector(), clock_.Clock(),
                  [this](std::string_view line) { log_.emplace_back(line); });
  }

  std::vector<SpoolEntry> Entries() {
    auto listing = spool_.List();
    EXPECT_TRUE(listing.ok());
    return listing.ok() ? listing->entries : std::vector<SpoolEntry>{};
  }

  TempDir tmp_;
  FakeNixStore store_;
  Spool spool_;
  consensus::SecretKey key_ = TestKey("builder-1");
  FakePushNodes nodes_;
  FakeClock clock_;
  PushOptions options_;
  std::vector<std::string> log_;
};

auto Outcome(const std::string& node, OutcomeKind kind) {
  return AllOf(Field(&PushOutcome::node, node), Field(&PushOutcome::kind, kind));
}

TEST_F(PusherTest, DeliversSignedClaimsFromTheNixDatabaseToEveryNode) {
  const std::string dep = store_.Add("dep", "dep\n");
  const std::string id = Spooled("hello", FakeNixStore::Kind::kBuilt, {dep});
  const std::string hello = TestStorePath("hello").full();
  const std::string id2 = SpoolPath(dep, "dep");

  PushReport report = MakePusher().PushOnce();
  ASSERT_TRUE(report.fatal.ok()) << report.fatal;
  EXPECT_EQ(report.remaining, 0u);
  EXPECT_FALSE(report.gave_up);
  EXPECT_THAT(report.delivered, UnorderedElementsAre(hello, dep));
  EXPECT_THAT(report.outcomes, SizeIs(4));
  EXPECT_THAT(report.outcomes, Contains(Outcome(kNodeA, OutcomeKind::kAccepted)));
  EXPECT_THAT(report.outcomes, Contains(Outcome(kNodeB, OutcomeKind::kAccepted)));
  EXPECT_THAT(Entries(), IsEmpty());
  EXPECT_TRUE(clock_.sleeps.empty());

  for (const char* address : {kNodeA, kNodeB}) {
    const auto& stored = nodes_.at(address).stored;
    ASSERT_TRUE(stored.contains(hello)) << address;
    const consensus::Attestation& a = stored.at(hello);
    // The claim is what the Nix database says: hash and size of the files, references.
    auto digest = HashNar(store_.root() + hello);
    ASSERT_TRUE(digest.ok());
    EXPECT_EQ(a.claim.nar_hash, digest->hash);
    EXPECT_EQ(a.claim.nar_size, digest->size);
    ASSERT_THAT(a.claim.references, SizeIs(1));
    EXPECT_EQ(a.claim.references[0].full(), dep);
    EXPECT_TRUE(consensus::VerifyAttestation(a, key_.public_key()).ok());
    EXPECT_EQ(a.metadata.deriver, TestStorePath("hello.drv").full());
    EXPECT_EQ(a.metadata.output_name, "out");
    EXPECT_EQ(a.metadata.build_kind, consensus::BuildKind::kFirstBuild);
    EXPECT_EQ(a.metadata.build_time_unix, 1700000002);  // registrationTime
  }
  // Delivered records are in the ledger, which --scan consults.
  auto ledger = PushLedger(spool_.dir()).Read();
  ASSERT_TRUE(ledger.ok());
  EXPECT_THAT(*ledger, UnorderedElementsAre(id, id2));
}

TEST_F(PusherTest, SendsInBatches) {
  options_.batch_size = 2;
  for (int i = 0; i < 5; ++i) Spooled("p" + std::to_string(i));
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 0u);
  EXPECT_THAT(nodes_.at(kNodeA).batch_sizes, ElementsAre(2, 2, 1));
  EXPECT_THAT(nodes_.at(kNodeB).batch_sizes, ElementsAre(2, 2, 1));
}

TEST_F(PusherTest, NodeDownKeepsRecordsWithBackoffThenDeliversWhenItIsBack) {
  options_.nodes = {kNodeA};
  Spooled("hello");
  Spooled("world");
  nodes_.at(kNodeA).mode = FakePushNode::Mode::kDown;
  const absl::Time start = clock_.now;
  PushReport report = MakePusher().PushOnce();
  EXPECT_TRUE(report.fatal.ok());
  EXPECT_TRUE(report.gave_up);
  EXPECT_EQ(report.remaining, 2u);
  EXPECT_LE(clock_.now - start, absl::Seconds(30));
  // Retried, with growing waits, and stopped before the 30 s were over.
  EXPECT_GE(nodes_.at(kNodeA).calls, 4);
  ASSERT_GE(clock_.sleeps.size(), 3u);
  EXPECT_LT(clock_.sleeps[0], clock_.sleeps[1]);
  EXPECT_LT(clock_.sleeps[1], clock_.sleeps[2]);
  EXPECT_THAT(report.outcomes, Contains(Outcome(kNodeA, OutcomeKind::kNotSent)));
  std::vector<SpoolEntry> kept = Entries();
  ASSERT_THAT(kept, SizeIs(2));
  for (const SpoolEntry& entry : kept) {
    EXPECT_THAT(entry.record.acknowledged_by, IsEmpty());
    EXPECT_THAT(entry.record.last_error, HasSubstr("UNAVAILABLE"));
    // A node that stays down is one failure worth recording, not one per retry.
    EXPECT_EQ(entry.record.attempts, 1);
  }
  EXPECT_THAT(log_, Contains(HasSubstr("retrying in")));

  nodes_.at(kNodeA).mode = FakePushNode::Mode::kUp;
  PushReport again = MakePusher().PushOnce();
  EXPECT_EQ(again.remaining, 0u);
  EXPECT_FALSE(again.gave_up);
  EXPECT_THAT(again.delivered, SizeIs(2));
  EXPECT_THAT(nodes_.at(kNodeA).stored, SizeIs(2));
}

TEST_F(PusherTest, GivesUpWithinThirtySecondsWhenNodesHang) {
  Spooled("hello");
  nodes_.at(kNodeA).mode = FakePushNode::Mode::kHanging;
  nodes_.at(kNodeB).mode = FakePushNode::Mode::kHanging;
  const absl::Time start = clock_.now;
  PushReport report = MakePusher().PushOnce();
  EXPECT_TRUE(report.gave_up);
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_LE(clock_.now - start, absl::Seconds(30));
  EXPECT_GE(clock_.now - start, absl::Seconds(20));  // it did keep trying meanwhile
  // Every call had a deadline no later than the give-up time, and short ones.
  ASSERT_FALSE(nodes_.connects.empty());
  absl::Duration total;
  for (const NodeOptions& o : nodes_.connects) {
    EXPECT_GT(o.timeout, absl::ZeroDuration());
    EXPECT_LE(o.timeout, options_.rpc_timeout);
    total += o.timeout;
  }
  EXPECT_LE(total, absl::Seconds(30));
}

TEST_F(PusherTest, OneNodeRejectsTheOtherAccepts) {
  const std::string id = Spooled("hello");
  const std::string hello = TestStorePath("hello").full();
  nodes_.at(kNodeB).refuse[hello] =
      absl::UnauthenticatedError("key builder-1 is not a builder key in the policy");
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_FALSE(report.gave_up);  // nothing to wait for: the rejection is final
  EXPECT_TRUE(clock_.sleeps.empty());
  EXPECT_THAT(report.outcomes, Contains(Outcome(kNodeA, OutcomeKind::kAccepted)));
  EXPECT_THAT(report.outcomes, Contains(AllOf(Outcome(kNodeB, OutcomeKind::kRejected),
                                              Field(&PushOutcome::code, 16),
                                              Field(&PushOutcome::message, HasSubstr("not a builder key")))));
  std::vector<SpoolEntry> kept = Entries();
  ASSERT_THAT(kept, SizeIs(1));
  EXPECT_THAT(kept[0].record.acknowledged_by, ElementsAre(kNodeA));
  EXPECT_THAT(kept[0].record.last_error, AllOf(HasSubstr(kNodeB), HasSubstr("UNAUTHENTICATED")));
  EXPECT_EQ(nodes_.at(kNodeB).calls, 1);

  // The next push asks only the node that has not acknowledged; once it accepts, the record goes.
  nodes_.at(kNodeB).refuse.clear();
  PushReport again = MakePusher().PushOnce();
  EXPECT_EQ(again.remaining, 0u);
  EXPECT_EQ(nodes_.at(kNodeA).calls, 1);
  EXPECT_EQ(nodes_.at(kNodeB).calls, 2);
  EXPECT_THAT(again.outcomes, ElementsAre(Outcome(kNodeB, OutcomeKind::kAccepted)));
  auto ledger = PushLedger(spool_.dir()).Read();
  ASSERT_TRUE(ledger.ok());
  EXPECT_THAT(*ledger, ElementsAre(id));
}

TEST_F(PusherTest, RetryableItemRejectionsAreRetriedInTheSameRun) {
  options_.nodes = {kNodeA};
  Spooled("hello");
  const std::string hello = TestStorePath("hello").full();
  nodes_.at(kNodeA).refuse[hello] = absl::ResourceExhaustedError("ingest queue full");
  clock_.on_sleep = [this, hello] { nodes_.at(kNodeA).refuse.clear(); };
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 0u);
  EXPECT_EQ(nodes_.at(kNodeA).calls, 2);
  EXPECT_THAT(clock_.sleeps, SizeIs(1));
  // The report keeps the latest outcome per record and node.
  EXPECT_THAT(report.outcomes, ElementsAre(Outcome(kNodeA, OutcomeKind::kAccepted)));
}

TEST_F(PusherTest, ObservedIsNotAnAcknowledgement) {
  options_.nodes = {kNodeA};
  Spooled("hello");
  nodes_.at(kNodeA).mode = FakePushNode::Mode::kObserving;
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_THAT(report.outcomes, ElementsAre(AllOf(Outcome(kNodeA, OutcomeKind::kObserved),
                                                 Field(&PushOutcome::message, HasSubstr("add the key to the policy")))));
  EXPECT_THAT(Entries()[0].record.last_error, HasSubstr("observation only"));
}

TEST_F(PusherTest, RefusesPathsNixDoesNotMarkAsBuiltHere) {
  Spooled("substituted", FakeNixStore::Kind::kSubstituted);
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_EQ(nodes_.at(kNodeA).calls + nodes_.at(kNodeB).calls, 0);
  ASSERT_THAT(report.outcomes, SizeIs(1));
  EXPECT_EQ(report.outcomes[0].kind, OutcomeKind::kRefused);
  EXPECT_EQ(report.outcomes[0].node, "");
  EXPECT_THAT(report.outcomes[0].message, AllOf(HasSubstr("ultimate"), HasSubstr("independent rebuild")));
  EXPECT_THAT(Entries()[0].record.last_error, HasSubstr("ultimate"));
}

TEST_F(PusherTest, PathGoneFromTheStoreIsKeptAndExplained) {
  const std::string id = Spooled("collected");
  store_.Delete(TestStorePath("collected").full());
  Spooled("fine");
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_THAT(report.delivered, ElementsAre(TestStorePath("fine").full()));
  EXPECT_THAT(report.outcomes, Contains(AllOf(Field(&PushOutcome::kind, OutcomeKind::kSkipped),
                                              Field(&PushOutcome::code, 5),
                                              Field(&PushOutcome::message, HasSubstr(id + ".json")))));
}

TEST_F(PusherTest, MissingStoreDatabaseKeepsRecords) {
  SpoolRecord record;
  record.store_path = TestStorePath("elsewhere").full();
  record.store_root = tmp_.File("no-such-store");
  ASSERT_TRUE(spool_.Add(record).ok());
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  ASSERT_THAT(report.outcomes, SizeIs(1));
  EXPECT_THAT(report.outcomes[0].message, HasSubstr("root of a Nix store"));
}

TEST_F(PusherTest, HashesThePathWhenTheDatabaseLacksItsSize) {
  options_.nodes = {kNodeA};
  const std::string path =
      store_.Add("old", "registered by an old Nix\n", FakeNixStore::Kind::kBuilt, {}, FakeNixStore::Row::kWithoutNarSize);
  SpoolPath(path, "old");
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 0u);
  auto digest = HashNar(store_.root() + path);
  ASSERT_TRUE(digest.ok());
  const consensus::Attestation& a = nodes_.at(kNodeA).stored.at(path);
  EXPECT_EQ(a.claim.nar_hash, digest->hash);
  EXPECT_EQ(a.claim.nar_size, digest->size);
}

TEST_F(PusherTest, RecordsAcknowledgedEverywhereAreRemovedWithoutSending) {
  // A pusher that died after noting the last acknowledgement but before removing the record.
  const std::string id = Spooled("hello");
  SpoolRecord record = Entries()[0].record;
  record.acknowledged_by = {kNodeB, kNodeA};
  ASSERT_TRUE(spool_.Update(id, record).ok());
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 0u);
  EXPECT_THAT(report.delivered, ElementsAre(TestStorePath("hello").full()));
  EXPECT_EQ(nodes_.at(kNodeA).calls + nodes_.at(kNodeB).calls, 0);
}

TEST_F(PusherTest, AWrongNumberOfResultsIsAFinalFailure) {
  options_.nodes = {kNodeA};
  Spooled("hello");
  nodes_.at(kNodeA).answer_too_few = true;
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_EQ(nodes_.at(kNodeA).calls, 1);
  EXPECT_THAT(report.outcomes, ElementsAre(AllOf(Outcome(kNodeA, OutcomeKind::kNotSent),
                                                 Field(&PushOutcome::message, HasSubstr("0 results for 1")))));
}

TEST_F(PusherTest, UnreadableSpoolFilesAreReportedAndCountAsRemaining) {
  Spooled("hello");
  WriteFileOrDie(spool_.dir() + "/garbage.json", "{not json");
  PushReport report = MakePusher().PushOnce();
  EXPECT_THAT(report.spool_errors, ElementsAre(HasSubstr("garbage.json")));
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_THAT(report.delivered, SizeIs(1));
}

TEST_F(PusherTest, AnotherPusherHoldingTheSpoolIsWaitedForThenReported) {
  Spooled("hello");
  const int fd = ::open((spool_.dir() + "/.push.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const absl::Time start = clock_.now;
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.fatal.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(report.fatal.message()), HasSubstr("another `attest push`"));
  EXPECT_LE(clock_.now - start, absl::Seconds(30));
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_EQ(nodes_.at(kNodeA).calls, 0);

  // Released (as when that process exits): the lock is free again.
  ::close(fd);
  EXPECT_EQ(MakePusher().PushOnce().remaining, 0u);
}

TEST_F(PusherTest, WatchDeliversNewRecordsAndRecoversFromADownNode) {
  options_.nodes = {kNodeA};
  Spooled("early");
  nodes_.at(kNodeA).mode = FakePushNode::Mode::kDown;
  const absl::Time start = clock_.now;
  bool added_late = false;
  clock_.on_sleep = [&] {
    if (clock_.now - start > absl::Seconds(5)) nodes_.at(kNodeA).mode = FakePushNode::Mode::kUp;
    if (!added_late && clock_.now - start > absl::Seconds(20)) {
      added_late = true;
      Spooled("late");
    }
  };
  std::vector<PushReport> passes;
  Pusher pusher = MakePusher();
  absl::Status status = pusher.Watch([&] { return clock_.now - start > absl::Seconds(60); },
                                     [&](const PushReport& r) { passes.push_back(r); });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(Entries(), IsEmpty());
  EXPECT_THAT(nodes_.at(kNodeA).stored, SizeIs(2));
  std::vector<std::string> delivered;
  for (const PushReport& r : passes) delivered.insert(delivered.end(), r.delivered.begin(), r.delivered.end());
  EXPECT_THAT(delivered, ElementsAre(TestStorePath("early").full(), TestStorePath("late").full()));
  // The late record went out within a poll interval or two of appearing, not at the next rescan.
  EXPECT_LE(nodes_.at(kNodeA).calls, 10);
  // Idle time is spent sleeping in poll-interval steps, not spinning.
  EXPECT_LE(clock_.sleeps.size(), 120u);
  for (absl::Duration d : clock_.sleeps) EXPECT_LE(d, options_.poll_interval);
}

TEST_F(PusherTest, WatchStopsBetweenBatches) {
  options_.nodes = {kNodeA};
  options_.batch_size = 1;
  for (int i = 0; i < 3; ++i) Spooled("p" + std::to_string(i));
  Pusher pusher = MakePusher();
  // Stop as soon as the first batch went out: the rest stay in the spool, unmarked.
  absl::Status status = pusher.Watch([&] { return nodes_.at(kNodeA).calls >= 1; }, {});
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(nodes_.at(kNodeA).calls, 1);
  std::vector<SpoolEntry> left = Entries();
  ASSERT_THAT(left, SizeIs(2));
  for (const SpoolEntry& e : left) EXPECT_EQ(e.record.last_error, "");
}

TEST(PushLedgerTest, AppendsDurablyAndIgnoresATornLine) {
  TempDir tmp;
  PushLedger ledger(tmp.path());
  auto empty = ledger.Read();
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT(*empty, IsEmpty());
  auto id = [](const std::string& name) {
    SpoolRecord record;
    record.store_path = TestStorePath(name).full();
    return Spool::IdFor(record);
  };
  ASSERT_TRUE(ledger.Append({id("a"), id("b")}).ok());
  // A crash in the middle of the next append leaves part of a line.
  const std::string torn = id("c").substr(0, 20);
  WriteFileOrDie(ledger.path(), ReadFileOrDie(ledger.path()) + torn);
  auto read = ledger.Read();
  ASSERT_TRUE(read.ok());
  EXPECT_THAT(*read, UnorderedElementsAre(id("a"), id("b")));
  // The next append starts on a line of its own; the fragment never reads as an id.
  ASSERT_TRUE(ledger.Append({id("d")}).ok());
  read = ledger.Read();
  ASSERT_TRUE(read.ok());
  EXPECT_THAT(*read, UnorderedElementsAre(id("a"), id("b"), id("d")));
  EXPECT_EQ(ReadFileOrDie(ledger.path()), id("a") + "\n" + id("b") + "\n" + torn + "\n" + id("d") + "\n");
}

TEST_F(PusherTest, ScanSpoolsBuiltPathsNeverAttestedAndOnlyOnce) {
  const std::string a = store_.Add("scan-a", "a\n");
  const std::string b = store_.Add("scan-b", "b\n", FakeNixStore::Kind::kBuilt, {a});
  store_.Add("scan-substituted", "s\n", FakeNixStore::Kind::kSubstituted);
  SpoolPath(b, "scan-b");  // the hook spooled b already

  auto first = ScanForUnattested(spool_, store_.root(), clock_.now);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->built, 2u);
  EXPECT_EQ(first->already_spooled, 1u);
  EXPECT_THAT(first->added, ElementsAre(a));
  std::vector<SpoolEntry> entries = Entries();
  ASSERT_THAT(entries, SizeIs(2));
  for (const SpoolEntry& e : entries) {
    if (e.record.store_path != a) continue;
    EXPECT_EQ(e.record.drv_path, TestStorePath("scan-a.drv").full());
    EXPECT_EQ(e.record.output_name, "out");
    EXPECT_EQ(e.record.store_root, store_.root());
  }
  // Nothing twice at once.
  auto again = ScanForUnattested(spool_, store_.root(), clock_.now);
  ASSERT_TRUE(again.ok());
  EXPECT_THAT(again->added, IsEmpty());
  EXPECT_EQ(again->already_spooled, 2u);

  // Delivered paths are in the ledger: not spooled again.
  ASSERT_EQ(MakePusher().PushOnce().remaining, 0u);
  auto after_push = ScanForUnattested(spool_, store_.root(), clock_.now);
  ASSERT_TRUE(after_push.ok());
  EXPECT_THAT(after_push->added, IsEmpty());
  EXPECT_EQ(after_push->already_attested, 2u);

  // A lost ledger costs re-submissions only, which the nodes answer as already present.
  ASSERT_EQ(::unlink(PushLedger(spool_.dir()).path().c_str()), 0);
  auto lost = ScanForUnattested(spool_, store_.root(), clock_.now);
  ASSERT_TRUE(lost.ok());
  EXPECT_THAT(lost->added, SizeIs(2));
  PushReport resent = MakePusher().PushOnce();
  EXPECT_EQ(resent.remaining, 0u);
  EXPECT_THAT(resent.outcomes, SizeIs(4));
  for (const PushOutcome& o : resent.outcomes) EXPECT_EQ(o.kind, OutcomeKind::kAlreadyPresent);
}

TEST_F(PusherTest, NoNodesIsAnErrorNotAnEmptySpool) {
  Spooled("hello");
  options_.nodes.clear();
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.fatal.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report.remaining, 1u);
  EXPECT_THAT(Entries(), SizeIs(1));
}

// ---------------------------------------------------------------------------------------------
// Build kinds

TEST_F(PusherTest, BuildKindComesFromTheRecord) {
  options_.nodes = {kNodeA};
  const std::map<std::string, consensus::BuildKind> expected = {
      {"kind-first", consensus::BuildKind::kFirstBuild},
      {"kind-rebuild", consensus::BuildKind::kRebuild},
      {"kind-check", consensus::BuildKind::kCheck}};
  for (const auto& [name, kind] : expected) {
    SpoolRecord record;
    record.store_path = store_.Add(name, name + "\n");
    record.build_kind = kind == consensus::BuildKind::kRebuild ? "rebuild"
                        : kind == consensus::BuildKind::kCheck ? "check"
                                                               : "";
    record.store_root = store_.root();
    ASSERT_TRUE(spool_.Add(record).ok());
  }
  PushReport report = MakePusher().PushOnce();
  EXPECT_EQ(report.remaining, 0u);
  for (const auto& [name, kind] : expected) {
    const std::string path = TestStorePath(name).full();
    ASSERT_TRUE(nodes_.at(kNodeA).stored.contains(path)) << name;
    const consensus::Attestation& a = nodes_.at(kNodeA).stored.at(path);
    EXPECT_EQ(a.metadata.build_kind, kind) << name;
    EXPECT_TRUE(consensus::VerifyAttestation(a, key_.public_key()).ok()) << name;
  }
}

TEST_F(PusherTest, ACheckIsAttestedThoughNixDoesNotMarkThePathUltimate) {
  options_.nodes = {kNodeA};
  // `nix-store --realise --check` of a substituted path: built again here, same bytes, still not ultimate.
  SpoolRecord checked;
  checked.store_path = store_.Add("checked", "checked\n", FakeNixStore::Kind::kSubstituted);
  checked.build_kind = "check";
  checked.store_root = store_.root();
  ASSERT_TRUE(spool_.Add(checked).ok());
  // A "rebuild" record is no exemption: `attest rebuild` builds the path, so Nix marks it ultimate.
  SpoolRecord rebuilt = checked;
  rebuilt.store_path = store_.Add("not-rebuilt", "x\n", FakeNixStore::Kind::kSubstituted);
  rebuilt.build_kind = "rebuild";
  ASSERT_TRUE(spool_.Add(rebuilt).ok());

  PushReport report = MakePusher().PushOnce();
  EXPECT_THAT(report.delivered, ElementsAre(checked.store_path));
  ASSERT_TRUE(nodes_.at(kNodeA).stored.contains(checked.store_path));
  EXPECT_EQ(nodes_.at(kNodeA).stored.at(checked.store_path).metadata.build_kind, consensus::BuildKind::kCheck);
  EXPECT_FALSE(nodes_.at(kNodeA).stored.contains(rebuilt.store_path));
  EXPECT_THAT(report.outcomes, Contains(AllOf(Field(&PushOutcome::path, rebuilt.store_path),
                                              Field(&PushOutcome::kind, OutcomeKind::kRefused))));
  EXPECT_EQ(report.remaining, 1u);
}

// ---------------------------------------------------------------------------------------------
// Derivations, from a store real Nix made

// leaf <- mid <- top, and leaf <- other: closures that overlap. Raw derivations: /bin/sh only.
constexpr std::string_view kChain = R"(
let
  system = builtins.currentSystem;
  mk = name: script: derivation { inherit name system; builder = "/bin/sh"; args = [ "-c" script ]; };
  leaf = mk "pd-leaf" "echo leaf > $out";
  mid = mk "pd-mid" "echo ${leaf} > $out";
in {
  inherit leaf mid;
  top = mk "pd-top" "echo ${mid} > $out";
  other = mk "pd-other" "echo ${leaf} other > $out";
}
)";

class PusherDerivationsTest : public ::testing::Test {
 protected:
  // Builds the chain once for the suite (Nix takes seconds); each test has its own spool and nodes.
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    RealNix nix(dir_->File("nix"));
    const std::string expression = dir_->File("chain.nix");
    WriteFileOrDie(expression, kChain);
    root_ = new std::string(dir_->File("store"));
    drv_ = new std::map<std::string, std::string>();
    out_ = new std::map<std::string, std::string>();
    for (const char* attr : {"leaf", "mid", "top", "other"}) {
      (*drv_)[attr] = nix.Line({"nix-instantiate", "--store", *root_, expression, "-A", attr});
      (*out_)[attr] = nix.Line({"nix-build", "--store", *root_, expression, "-A", attr, "--no-out-link"});
    }
  }
  static void TearDownTestSuite() {
    delete drv_;
    delete out_;
    delete root_;
    delete dir_;
  }

  PusherDerivationsTest() : spool_(*Spool::Open(tmp_.File("spool"))) {
    nodes_.Add(kNodeA, key_.public_key()).takes_derivations = true;
    nodes_.Add(kNodeB, key_.public_key()).takes_derivations = true;
    options_.nodes = {kNodeA, kNodeB};
  }

  void SetUp() override {
    for (const char* attr : {"leaf", "mid", "top", "other"}) {
      ASSERT_THAT(drv_->at(attr), ::testing::EndsWith(".drv")) << "Nix did not instantiate " << attr;
      ASSERT_FALSE(out_->at(attr).empty()) << "Nix did not build " << attr;
    }
  }

  static const std::string& Drv(const std::string& attr) { return drv_->at(attr); }
  static std::string Contents(const std::string& drv) { return ReadFileOrDie(*root_ + drv); }

  // Spools an output as the hook does; kFromDatabase leaves the deriver to Nix's database.
  enum class DrvPath { kInRecord, kFromDatabase };
  void SpoolOutput(const std::string& attr, DrvPath drv_path = DrvPath::kInRecord) {
    SpoolRecord record;
    record.store_path = out_->at(attr);
    if (drv_path == DrvPath::kInRecord) record.drv_path = Drv(attr);
    record.store_root = *root_;
    ASSERT_TRUE(spool_.Add(record).ok());
  }

  PushReport Push() {
    Pusher pusher(spool_, TestKey("builder-1"), options_, nodes_.Connector(), clock_.Clock());
    PushReport report = pusher.PushOnce();
    EXPECT_TRUE(report.fatal.ok()) << report.fatal;
    EXPECT_EQ(report.remaining, 0u) << "derivations never keep a record";
    return report;
  }

  // The .drv paths of one SubmitDerivations request, in order.
  static std::vector<std::string> Files(const v1::SubmitDerivationsRequest& request) {
    std::vector<std::string> files;
    for (const v1::DerivationFile& file : request.derivations()) files.push_back(file.store_path());
    return files;
  }

  static TempDir* dir_;
  static std::string* root_;
  static std::map<std::string, std::string>* drv_;  // attribute -> .drv path
  static std::map<std::string, std::string>* out_;  // attribute -> output path

  TempDir tmp_;
  client::Spool spool_;
  consensus::SecretKey key_ = TestKey("builder-1");
  FakePushNodes nodes_;
  FakeClock clock_;
  PushOptions options_;
};

TempDir* PusherDerivationsTest::dir_ = nullptr;
std::string* PusherDerivationsTest::root_ = nullptr;
std::map<std::string, std::string>* PusherDerivationsTest::drv_ = nullptr;
std::map<std::string, std::string>* PusherDerivationsTest::out_ = nullptr;

TEST_F(PusherDerivationsTest, EachNodeGetsTheDerivationClosureOfWhatItAcknowledged) {
  SpoolOutput("top");
  SpoolOutput("other", DrvPath::kFromDatabase);
  PushReport report = Push();
  EXPECT_THAT(report.derivation_errors, IsEmpty());
  EXPECT_EQ(report.derivations_sent, 8u);
  EXPECT_EQ(report.derivations_stored, 8u);

  const std::set<std::string> closure = {Drv("leaf"), Drv("mid"), Drv("top"), Drv("other")};
  for (const char* address : {kNodeA, kNodeB}) {
    const FakePushNode& node = nodes_.at(address);
    // Asked once, each derivation once: leaf is in both closures.
    ASSERT_THAT(node.missing_requests, SizeIs(1)) << address;
    const auto& asked = node.missing_requests[0].store_paths();
    EXPECT_EQ(std::set<std::string>(asked.begin(), asked.end()), closure) << address;
    EXPECT_THAT(asked, SizeIs(4)) << address;
    // One request with all of it, byte for byte, each input before what uses it.
    ASSERT_THAT(node.derivation_requests, SizeIs(1)) << address;
    const std::vector<std::string> files = Files(node.derivation_requests[0]);
    ASSERT_THAT(files, SizeIs(4)) << address;
    auto at = [&](const std::string& attr) { return std::find(files.begin(), files.end(), Drv(attr)) - files.begin(); };
    EXPECT_LT(at("leaf"), at("mid"));
    EXPECT_LT(at("mid"), at("top"));
    EXPECT_LT(at("leaf"), at("other"));
    for (const v1::DerivationFile& file : node.derivation_requests[0].derivations()) {
      EXPECT_EQ(file.contents(), Contents(file.store_path()));
    }
    EXPECT_EQ(node.derivations.size(), 4u) << address;
  }
}

TEST_F(PusherDerivationsTest, OnlyWhatTheNodeLacksIsSentAndAnOlderNodeIsLeftAlone) {
  options_.nodes = {kNodeA, kNodeB};
  nodes_.at(kNodeA).derivations = {{Drv("leaf"), Contents(Drv("leaf"))}, {Drv("mid"), Contents(Drv("mid"))}};
  nodes_.at(kNodeB).takes_derivations = false;  // before the Rebuilds service
  SpoolOutput("top");
  PushReport report = Push();
  EXPECT_THAT(report.derivation_errors, IsEmpty()) << "an older node is no warning";
  ASSERT_THAT(nodes_.at(kNodeA).derivation_requests, SizeIs(1));
  EXPECT_THAT(Files(nodes_.at(kNodeA).derivation_requests[0]), ElementsAre(Drv("top")));
  EXPECT_EQ(report.derivations_sent, 1u);
  EXPECT_EQ(report.derivations_stored, 1u);
  EXPECT_THAT(nodes_.at(kNodeB).derivation_requests, IsEmpty());
  EXPECT_TRUE(nodes_.at(kNodeB).stored.contains(out_->at("top"))) << "the attestation itself went";

  // The node has the whole closure now: asked, nothing sent.
  SpoolOutput("mid");
  PushReport again = Push();
  EXPECT_THAT(again.derivation_errors, IsEmpty());
  EXPECT_EQ(again.derivations_sent, 0u);
  EXPECT_THAT(nodes_.at(kNodeA).missing_requests, SizeIs(2));
  EXPECT_THAT(nodes_.at(kNodeA).derivation_requests, SizeIs(1));
}

TEST_F(PusherDerivationsTest, FailuresAndRejectionsAreWarningsThatNeverKeepRecords) {
  nodes_.at(kNodeA).fail_derivations_with = absl::UnavailableError("node node-a:7700: MissingDerivations: overloaded");
  nodes_.at(kNodeB).refuse_derivations[Drv("top")] =
      absl::InvalidArgumentError("its contents give another store path");
  SpoolOutput("top");
  PushReport report = Push();
  EXPECT_THAT(report.delivered, ElementsAre(out_->at("top")));
  EXPECT_THAT(report.derivation_errors,
              UnorderedElementsAre(AllOf(HasSubstr("node node-a:7700: UNAVAILABLE: MissingDerivations: overloaded"),
                                         HasSubstr("the attestations are delivered")),
                                   AllOf(HasSubstr("node node-b:7700: derivation " + Drv("top")),
                                         HasSubstr("rejected: INVALID_ARGUMENT: its contents give another"))));
  EXPECT_EQ(report.derivations_sent, 3u);
  EXPECT_EQ(report.derivations_stored, 2u);
  EXPECT_THAT(nodes_.at(kNodeA).derivation_requests, IsEmpty());
}

TEST_F(PusherDerivationsTest, AClosureOverTheLimitsIsSkippedNamingItsDeriver) {
  options_.nodes = {kNodeA};
  options_.derivation_limits.max_files = 2;
  SpoolOutput("top");    // leaf, mid, top: one file too many
  SpoolOutput("other");  // leaf, other
  PushReport report = Push();
  EXPECT_THAT(report.derivation_errors,
              ElementsAre(AllOf(HasSubstr("derivation " + Drv("top") + ": not sent to node node-a:7700"),
                                HasSubstr("lacks 3 derivations of its closure, more than the 2"))));
  ASSERT_THAT(nodes_.at(kNodeA).derivation_requests, SizeIs(1));
  EXPECT_THAT(Files(nodes_.at(kNodeA).derivation_requests[0]), ElementsAre(Drv("leaf"), Drv("other")));

  // A file larger than a node takes: every closure with it is skipped.
  TempDir other_spool;
  spool_ = *client::Spool::Open(other_spool.File("spool"));
  options_.derivation_limits = DerivationLimits{.max_file_bytes = 16};
  nodes_.at(kNodeA).derivations.clear();
  nodes_.at(kNodeA).derivation_requests.clear();
  SpoolOutput("mid");
  PushReport big = Push();
  EXPECT_THAT(big.derivation_errors, ElementsAre(AllOf(HasSubstr("derivation " + Drv("mid") + ": not sent"),
                                                       HasSubstr("larger than the 16 bytes"))));
  EXPECT_THAT(nodes_.at(kNodeA).derivation_requests, IsEmpty());
  EXPECT_THAT(big.delivered, ElementsAre(out_->at("mid")));
}

TEST_F(PusherDerivationsTest, OverOneRequestTheClosuresAreSplitEachWhole) {
  options_.nodes = {kNodeA};
  options_.derivation_limits.max_files = 3;
  options_.derivation_limits.max_paths_per_query = 3;
  SpoolOutput("top");
  SpoolOutput("other");
  PushReport report = Push();
  EXPECT_THAT(report.derivation_errors, IsEmpty());
  const FakePushNode& node = nodes_.at(kNodeA);
  EXPECT_THAT(node.missing_requests, SizeIs(2)) << "4 paths, at most 3 per question";
  for (const auto& request : node.missing_requests) EXPECT_LE(request.store_paths_size(), 3);
  ASSERT_THAT(node.derivation_requests, SizeIs(2));
  std::vector<std::string> all;
  for (const auto& request : node.derivation_requests) {
    EXPECT_LE(request.derivations_size(), 3);
    for (const std::string& file : Files(request)) all.push_back(file);
  }
  // Each file once, and the node (which refuses a .drv whose inputs it lacks) stored them all.
  EXPECT_THAT(all, UnorderedElementsAre(Drv("leaf"), Drv("mid"), Drv("top"), Drv("other")));
  EXPECT_EQ(node.derivations.size(), 4u);
  EXPECT_EQ(report.derivations_stored, 4u);
}

TEST_F(PusherDerivationsTest, ADeriverGoneFromTheStoreIsReportedToNodesThatTakeDerivations) {
  nodes_.at(kNodeB).takes_derivations = false;
  SpoolRecord record;
  record.store_path = out_->at("leaf");
  record.drv_path = TestStorePath("pd-gone.drv").full();  // garbage-collected, say
  record.store_root = *root_;
  ASSERT_TRUE(spool_.Add(record).ok());
  PushReport report = Push();
  EXPECT_THAT(report.derivation_errors,
              ElementsAre(AllOf(HasSubstr("derivation " + record.drv_path + ": not sent to node node-a:7700"),
                                HasSubstr("is not in the store at " + *root_), HasSubstr("keep-derivations"))));
  EXPECT_THAT(report.delivered, ElementsAre(record.store_path));
}

TEST(PusherRetryableTest, OnlyTransientCodesAreRetryable) {
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(IsRetryable(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kUnauthenticated));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kPermissionDenied));
  EXPECT_FALSE(IsRetryable(absl::StatusCode::kInternal));
}

}  // namespace
}  // namespace attest::client
