#include "client/spool.h"

#include <dirent.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

SpoolRecord Record(std::string_view name, std::string root = "/", int64_t queued_at = 1000) {
  SpoolRecord record;
  record.store_path = TestStorePath(name).full();
  record.drv_path = TestStorePath(std::string(name) + ".drv").full();
  record.output_name = "out";
  record.store_root = std::move(root);
  record.queued_at_unix_ms = queued_at;
  return record;
}

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

TEST(SpoolTest, OpenCreatesTheDirectoryPrivateAndRefusesAFile) {
  TempDir tmp;
  const std::string dir = tmp.File("spool");
  ASSERT_TRUE(Spool::Open(dir).ok());
  struct stat st{};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  WriteFileOrDie(tmp.File("file"), "x");
  absl::StatusOr<Spool> not_dir = Spool::Open(tmp.File("file"));
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(not_dir.status().message()), HasSubstr("not a directory"));

  absl::StatusOr<Spool> no_parent = Spool::Open(tmp.File("missing/spool"));
  ASSERT_FALSE(no_parent.ok());
  EXPECT_EQ(no_parent.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(no_parent.status().message()), HasSubstr("missing/spool"));
}

TEST(SpoolTest, IdsAreStablePerStoreRootAndPath) {
  const SpoolRecord a = Record("hello");
  SpoolRecord same = a;
  same.drv_path.clear();
  same.queued_at_unix_ms = 99;
  same.acknowledged_by = {"node:1"};
  EXPECT_EQ(Spool::IdFor(a), Spool::IdFor(same));
  EXPECT_EQ(Spool::IdFor(a), Spool::IdFor(Record("hello", "")));  // "" is the system store
  EXPECT_EQ(Spool::IdFor(Record("hello", "/tmp/store")), Spool::IdFor(Record("hello", "/tmp/store/")));
  EXPECT_NE(Spool::IdFor(a), Spool::IdFor(Record("hello", "/tmp/store")));
  EXPECT_NE(Spool::IdFor(a), Spool::IdFor(Record("world")));
  // Readable: the store path's hash part comes first.
  EXPECT_EQ(Spool::IdFor(a).substr(0, 32), std::string(TestStorePath("hello").hash_part()));
}

TEST(SpoolTest, AddWritesAWholeRecordAndListReadsItBack) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.File("spool"));
  ASSERT_TRUE(spool.ok()) << spool.status();
  SpoolRecord record = Record("hello", "/srv/store");
  record.store_uri = "local?root=/srv/store";
  absl::StatusOr<std::string> id = spool->Add(record);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, Spool::IdFor(record));
  // Exactly one file, the record itself: no temp file left behind.
  EXPECT_THAT(FilesIn(spool->dir()), ElementsAre(*id + ".json"));

  const auto json = nlohmann::json::parse(ReadFileOrDie(spool->dir() + "/" + *id + ".json"));
  EXPECT_EQ(json["version"], 1);
  EXPECT_EQ(json["storePath"], record.store_path);
  EXPECT_EQ(json["storeRoot"], "/srv/store");
  EXPECT_EQ(json["storeUri"], "local?root=/srv/store");

  absl::StatusOr<SpoolListing> listing = spool->List();
  ASSERT_TRUE(listing.ok()) << listing.status();
  EXPECT_THAT(listing->errors, IsEmpty());
  ASSERT_THAT(listing->entries, SizeIs(1));
  const SpoolRecord& back = listing->entries[0].record;
  EXPECT_EQ(listing->entries[0].id, *id);
  EXPECT_EQ(back.store_path, record.store_path);
  EXPECT_EQ(back.drv_path, record.drv_path);
  EXPECT_EQ(back.output_name, "out");
  EXPECT_EQ(back.store_root, "/srv/store");
  EXPECT_EQ(back.store_uri, record.store_uri);
  EXPECT_EQ(back.queued_at_unix_ms, 1000);
  EXPECT_THAT(back.acknowledged_by, IsEmpty());
  EXPECT_EQ(back.attempts, 0);
}

TEST(SpoolTest, AddingTheSamePathTwiceKeepsTheFirstRecord) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  SpoolRecord first = Record("hello");
  auto id = spool->Add(first);
  ASSERT_TRUE(id.ok());
  first.acknowledged_by = {"node-a:1"};
  first.attempts = 2;
  ASSERT_TRUE(spool->Update(*id, first).ok());

  SpoolRecord again = Record("hello", "/", 5000);
  auto id2 = spool->Add(again);
  ASSERT_TRUE(id2.ok()) << id2.status();
  EXPECT_EQ(*id2, *id);
  auto listing = spool->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_THAT(listing->entries, SizeIs(1));
  // The acknowledgement survives a repeated Add (a --check rebuild runs the hook again).
  EXPECT_THAT(listing->entries[0].record.acknowledged_by, ElementsAre("node-a:1"));
  EXPECT_EQ(listing->entries[0].record.queued_at_unix_ms, 1000);
  EXPECT_THAT(FilesIn(spool->dir()), SizeIs(1));

  // The same path from another store is another record.
  ASSERT_TRUE(spool->Add(Record("hello", "/other/store")).ok());
  EXPECT_THAT(FilesIn(spool->dir()), SizeIs(2));
}

TEST(SpoolTest, UpdateReplacesAndRemoveDeletes) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  SpoolRecord record = Record("hello");
  auto id = spool->Add(record);
  ASSERT_TRUE(id.ok());
  record.acknowledged_by = {"a:1", "b:2"};
  record.attempts = 3;
  record.last_error = "b:2: UNAVAILABLE: connection refused \xff";  // invalid UTF-8 must not break it
  ASSERT_TRUE(spool->Update(*id, record).ok());
  auto listing = spool->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_THAT(listing->entries, SizeIs(1));
  EXPECT_THAT(listing->entries[0].record.acknowledged_by, ElementsAre("a:1", "b:2"));
  EXPECT_EQ(listing->entries[0].record.attempts, 3);
  EXPECT_THAT(listing->entries[0].record.last_error, HasSubstr("connection refused"));
  EXPECT_THAT(FilesIn(spool->dir()), SizeIs(1));

  ASSERT_TRUE(spool->Remove(*id).ok());
  EXPECT_THAT(FilesIn(spool->dir()), IsEmpty());
  EXPECT_TRUE(spool->Remove(*id).ok());  // absent: still OK
  // Updating a removed record does not bring it back.
  EXPECT_EQ(spool->Update(*id, record).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(FilesIn(spool->dir()), IsEmpty());
}

TEST(SpoolTest, RefusesInvalidRecordsAndIds) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  SpoolRecord bad = Record("hello");
  bad.store_path = "/tmp/not-a-store-path";
  EXPECT_EQ(spool->Add(bad).status().code(), absl::StatusCode::kInvalidArgument);
  SpoolRecord relative = Record("hello", "relative/root");
  EXPECT_EQ(spool->Add(relative).status().code(), absl::StatusCode::kInvalidArgument);
  SpoolRecord bad_drv = Record("hello");
  bad_drv.drv_path = "hello.drv";
  EXPECT_EQ(spool->Add(bad_drv).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spool->Remove("../etc/passwd").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spool->Remove("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spool->Update(".hidden", Record("hello")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FilesIn(spool->dir()), IsEmpty());
}

// A floating content-addressed output: no path yet, the derivation output instead.
TEST(SpoolTest, ARecordWithoutAPathNamesItsDerivationOutput) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  SpoolRecord floating = Record("ca");
  floating.store_path.clear();
  auto id = spool->Add(floating);
  ASSERT_TRUE(id.ok()) << id.status();
  // The id has a path id's shape (the ledger reads only that) but differs per output and from the .drv's.
  EXPECT_EQ(id->size(), 32u + 1 + 12);
  EXPECT_EQ(id->substr(0, 32), TestStorePath("ca.drv").hash_part());
  SpoolRecord dev = floating;
  dev.output_name = "dev";
  EXPECT_NE(Spool::IdFor(dev), *id);
  EXPECT_EQ(spool->Add(floating).value(), *id);  // idempotent
  auto listing = spool->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_THAT(listing->entries, SizeIs(1));
  EXPECT_EQ(listing->entries[0].record, floating);
  EXPECT_THAT(ReadFileOrDie(tmp.File(*id + ".json")), HasSubstr("\"storePath\":\"\""));

  // Without the derivation output it says nothing: refused.
  SpoolRecord nameless = floating;
  nameless.output_name.clear();
  EXPECT_EQ(spool->Add(nameless).status().code(), absl::StatusCode::kInvalidArgument);
  SpoolRecord driverless = floating;
  driverless.drv_path.clear();
  EXPECT_EQ(spool->Add(driverless).status().code(), absl::StatusCode::kInvalidArgument);
}

// A record written before records could lack a path reads as before.
TEST(SpoolTest, OlderRecordsStillRead) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  const std::string path = TestStorePath("old").full();
  WriteFileOrDie(tmp.File("old.json"), "{\"version\":1,\"storePath\":\"" + path +
                                           "\",\"drvPath\":\"\",\"outputName\":\"\",\"storeRoot\":\"/\",\"queuedAt\":5}\n");
  auto listing = spool->List();
  ASSERT_TRUE(listing.ok());
  EXPECT_THAT(listing->errors, IsEmpty());
  ASSERT_THAT(listing->entries, SizeIs(1));
  EXPECT_EQ(listing->entries[0].record.store_path, path);
}

TEST(SpoolTest, ListReportsUnparsableFilesAndKeepsThem) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE(spool->Add(Record("good")).ok());
  WriteFileOrDie(tmp.File("torn.json"), "{\"version\": 1, \"storePa");
  WriteFileOrDie(tmp.File("future.json"), R"({"version": 2, "storePath": "/nix/store/x"})");
  WriteFileOrDie(tmp.File("wrongtype.json"),
                 nlohmann::json{{"version", 1}, {"storePath", TestStorePath("w").full()}, {"attempts", "many"}}.dump());
  WriteFileOrDie(tmp.File("notapath.json"), R"({"version": 1, "storePath": "/etc/passwd"})");
  // Not records: ignored, not reported.
  WriteFileOrDie(tmp.File(".tmp-abc-1-2-3"), "partial");
  WriteFileOrDie(tmp.File("README"), "hello");

  auto listing = spool->List();
  ASSERT_TRUE(listing.ok()) << listing.status();
  ASSERT_THAT(listing->entries, SizeIs(1));
  EXPECT_EQ(listing->entries[0].record.store_path, TestStorePath("good").full());
  ASSERT_THAT(listing->errors, SizeIs(4));
  EXPECT_THAT(listing->errors[0], HasSubstr("future.json: record version 2"));
  EXPECT_THAT(listing->errors[1], HasSubstr("notapath.json"));
  EXPECT_THAT(listing->errors[2], HasSubstr("torn.json: not a JSON object"));
  EXPECT_THAT(listing->errors[3], HasSubstr("wrongtype.json: \"attempts\" is not an integer"));
  // Nothing was deleted.
  EXPECT_THAT(FilesIn(spool->dir()), SizeIs(7));
}

TEST(SpoolTest, ListIsSortedByQueueTimeThenId) {
  TempDir tmp;
  auto spool = Spool::Open(tmp.path());
  ASSERT_TRUE(spool.ok());
  ASSERT_TRUE(spool->Add(Record("c", "/", 300)).ok());
  ASSERT_TRUE(spool->Add(Record("a", "/", 100)).ok());
  ASSERT_TRUE(spool->Add(Record("b", "/", 200)).ok());
  ASSERT_TRUE(spool->Add(Record("b2", "/", 200)).ok());
  auto listing = spool->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_THAT(listing->entries, SizeIs(4));
  EXPECT_EQ(listing->entries[0].record.store_path, TestStorePath("a").full());
  EXPECT_EQ(listing->entries[3].record.store_path, TestStorePath("c").full());
  EXPECT_LT(listing->entries[1].id, listing->entries[2].id);
}

TEST(SpoolTest, RecordsSurviveReopening) {
  TempDir tmp;
  std::string id;
  {
    auto spool = Spool::Open(tmp.File("s"));
    ASSERT_TRUE(spool.ok());
    auto added = spool->Add(Record("kept"));
    ASSERT_TRUE(added.ok());
    id = *added;
  }
  auto reopened = Spool::Open(tmp.File("s") + "/");
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(reopened->dir(), tmp.File("s"));
  auto listing = reopened->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_THAT(listing->entries, SizeIs(1));
  EXPECT_EQ(listing->entries[0].id, id);
}

}  // namespace
}  // namespace attest::client
