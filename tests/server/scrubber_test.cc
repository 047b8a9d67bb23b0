// server/scrubber: a pass over a real node's SQLite file finds every kind of damage it is meant to
// (a changed path record, a replaced log tile, a changed log entry) and names it; a clean database
// passes; problems reach /healthz and /metrics. The file is changed with the sqlite3 library while
// the node keeps it open, as damage on disk would be.
#include "consensus/text.h"
#include "server/scrubber.h"

#include <memory>
#include <string>
#include <vector>

#include <sqlite3.h>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "tests/server/http_test_client.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::HttpGet;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Background passes off: each test runs its passes itself.
constexpr std::string_view kConfig = "\n[log]\ncheckpoint_interval = \"1h\"\n[scrub]\ninterval = \"0s\"\n";

// Runs `sql` on the database file through a connection of its own.
void Damage(const std::string& file, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error != nullptr ? error : "") << "\n" << sql;
  EXPECT_EQ(sqlite3_changes(db), 1) << "the damage changed exactly one row: " << sql;
  sqlite3_free(error);
  sqlite3_close(db);
}

class ScrubberTest : public ::testing::Test {
 protected:
  // (Re)starts the node on the same database with `extra` after [node].
  void StartNode(const std::string& extra) {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
    WriteNodeDir(dir_, federation_, extra);
    auto config = LoadNodeConfig(dir_.File("node.toml"));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
  }

  void SetUp() override {
    StartNode(std::string(kConfig));
    ASSERT_NE(node_, nullptr);
    // 300 paths: two level-0 tiles (one full, one partial).
    auto stub = v1::Attestations::NewStub(node_->InProcessChannel());
    v1::SubmitRequest request;
    for (int i = 0; i < 300; ++i) {
      *request.add_attestations() = Signed(TestClaim(consensus::Cat("pkg-", i)), federation_.alice);
    }
    v1::SubmitResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
    ASSERT_TRUE(node_->log_publisher()->PublishNow().ok());
  }
  void TearDown() override {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
  }

  ScrubReport Pass() {
    absl::StatusOr<ScrubReport> report = node_->CheckDatabase();
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : ScrubReport{};
  }
  std::string File() const { return dir_.File("attest.db"); }

  Federation federation_;
  TempDir dir_;
  std::unique_ptr<Node> node_;
};

TEST_F(ScrubberTest, ACleanDatabaseChecksOut) {
  const ScrubReport report = Pass();
  EXPECT_THAT(report.problems, IsEmpty());
  EXPECT_EQ(report.path_rows, 300);
  EXPECT_EQ(report.log_entries, 300);
  EXPECT_EQ(report.log_tiles, 3);  // tile/0/000, tile/0/001.p/44 and tile/1/000.p/1
}

TEST_F(ScrubberTest, AChangedPathRecordIsFoundAndNamed) {
  Damage(File(), "UPDATE paths SET record = CAST(substr(record, 1, 20) || X'00' || substr(record, 22) AS BLOB) "
                 "WHERE name = 'pkg-7' AND substr(record, 21, 1) <> X'00'");
  const ScrubReport report = Pass();
  ASSERT_FALSE(report.problems.empty());
  EXPECT_THAT(report.problems[0], HasSubstr(TestClaim("pkg-7").path.full()));
  EXPECT_THAT(report.problems[0], HasSubstr("fails its checksum"));
  // The log entries rebuilt from that record cannot be checked either, and say why.
  for (const std::string& problem : report.problems) EXPECT_THAT(problem, HasSubstr("pkg-7"));
}

// Issue: a replaced log_tiles row went unnoticed while the node kept signing checkpoints.
TEST_F(ScrubberTest, AReplacedLogTileIsFound) {
  Damage(File(), "UPDATE log_tiles SET hashes = randomblob(length(hashes)) WHERE id = 0");
  const ScrubReport report = Pass();
  ASSERT_FALSE(report.problems.empty());
  EXPECT_THAT(report.problems[0], HasSubstr("log entry 0 does not hash to its leaf in tile/0/000"));
  // The entries still give the signed root; the tile above no longer agrees with the replaced one.
  EXPECT_THAT(report.problems.back(), HasSubstr("tile/1/000.p/1 hash 0 is not the root of tile/0/000"));
}

// Issue: index damage made a path with data answer UNKNOWN, and nothing noticed. Here the index on hash
// heads loses the entry of one row (rebuilt without it, under its usual definition), as a damaged
// index page would: the row is still in the table, and the scrub names it.
TEST_F(ScrubberTest, ARowTheIndexNoLongerFindsIsFoundAndNamed) {
  Damage(File(),
         "DROP INDEX paths_by_hash; CREATE INDEX paths_by_hash ON paths(hash_head) WHERE name <> 'pkg-7'; "
         "PRAGMA writable_schema = ON; "
         "UPDATE sqlite_schema SET sql = 'CREATE INDEX paths_by_hash ON paths(hash_head)' "
         "WHERE name = 'paths_by_hash'; PRAGMA writable_schema = OFF;");
  const ScrubReport report = Pass();
  ASSERT_EQ(report.problems.size(), 1u) << ::testing::PrintToString(report.problems);
  EXPECT_THAT(report.problems[0], HasSubstr("is not found through the index paths_by_hash"));
  EXPECT_THAT(report.problems[0], HasSubstr("rebuild it with REINDEX"));
}

TEST_F(ScrubberTest, BackgroundPassesReportProblemsThroughHealthAndMetrics) {
  EXPECT_EQ(HttpGet(node_->http_port(), "/healthz")->body, "ok\n");
  StartNode("\n[log]\ncheckpoint_interval = \"1h\"\n[scrub]\ninterval = \"50ms\"\nrate = 0\n");
  ASSERT_NE(node_, nullptr);
  Damage(File(), "UPDATE log_tiles SET hashes = randomblob(length(hashes)) WHERE id = 1");

  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  std::string health;
  while (absl::Now() < deadline) {
    health = HttpGet(node_->http_port(), "/healthz").value_or(::attest::testing::HttpAnswer{}).body;
    if (health.find("degraded") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(health, HasSubstr("degraded: the last scrub found"));
  EXPECT_THAT(health, HasSubstr("tile/0/001.p/44"));
  EXPECT_GT(node_->scrubber()->Health().passes, 0);
  const std::string metrics = HttpGet(node_->http_port(), "/metrics")->body;
  EXPECT_THAT(metrics, HasSubstr("attest_scrub_problems "));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("attest_scrub_problems 0\n")));
}

}  // namespace
}  // namespace attest::server
