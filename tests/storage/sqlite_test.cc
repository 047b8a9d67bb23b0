// The RAII layer over SQLite: statements reused, values bound, transactions rolled back unless
// committed, result codes mapped to specific status codes.
#include "storage/sqlite.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::storage::sqlite {
namespace {

using ::attest::testing::TempDir;
using ::testing::HasSubstr;

std::unique_ptr<Connection> OpenOrDie(const std::string& path) {
  auto db = Connection::Open(path, OpenMode::kReadWriteCreate, absl::Seconds(1));
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? std::move(*db) : nullptr;
}

TEST(SqliteTest, StatementIsReusedWithBoundValues) {
  TempDir dir;
  auto db = OpenOrDie(dir.File("t.db"));
  ASSERT_TRUE(db->Execute("CREATE TABLE t(k TEXT, v BLOB, n INTEGER)", "create").ok());
  auto insert = db->Prepare("INSERT INTO t(k, v, n) VALUES (?, ?, ?)");
  ASSERT_TRUE(insert.ok());
  // A value that would break formatted SQL is stored as it is.
  const std::string tricky = "it's'); DROP TABLE t; --";
  const std::vector<uint8_t> blob = {0, 1, 2, 255};
  for (int i = 0; i < 3; ++i) {
    auto use = (*insert)->Begin("insert");
    use.Bind(tricky).BindBlob(blob).Bind(int64_t{i});
    ASSERT_TRUE(use.Run().ok());
  }
  {
    auto use = (*insert)->Begin("insert");
    use.BindNull().BindBlob({}).Bind(int64_t{-1});
    ASSERT_TRUE(use.Run().ok());
  }
  auto select = db->Prepare("SELECT k, v, n FROM t WHERE n >= ? ORDER BY n");
  ASSERT_TRUE(select.ok());
  for (int round = 0; round < 2; ++round) {
    auto use = (*select)->Begin("select");
    use.Bind(int64_t{0});
    int rows = 0;
    while (true) {
      auto row = use.Step();
      ASSERT_TRUE(row.ok()) << row.status();
      if (!*row) break;
      EXPECT_EQ(use.Text(0), tricky);
      EXPECT_EQ(std::vector<uint8_t>(use.Blob(1).begin(), use.Blob(1).end()), blob);
      EXPECT_EQ(use.Int(2), rows);
      ++rows;
    }
    EXPECT_EQ(rows, 3);
  }
  // The empty blob is a blob, not NULL; NULL is NULL.
  auto empty = db->QueryInt("SELECT count(*) FROM t WHERE v = x'' AND k IS NULL", "count");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, 1);
}

TEST(SqliteTest, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  auto db = OpenOrDie(dir.File("t.db"));
  ASSERT_TRUE(db->Execute("CREATE TABLE t(x INTEGER)", "create").ok());
  {
    auto tx = Transaction::Begin(*db, Transaction::Kind::kWrite);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (1)", "insert").ok());
  }  // dropped without Commit
  {
    auto tx = Transaction::Begin(*db, Transaction::Kind::kWrite);
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (2)", "insert").ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  auto sum = db->QueryInt("SELECT total(x) FROM t", "sum");
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(*sum, 2);
}

TEST(SqliteTest, ErrorsCarryContextAndTheSpecificCode) {
  TempDir dir;
  auto db = OpenOrDie(dir.File("t.db"));
  ASSERT_TRUE(db->Execute("CREATE TABLE t(x INTEGER PRIMARY KEY)", "create").ok());
  ASSERT_TRUE(db->Execute("INSERT INTO t VALUES (1)", "insert").ok());
  absl::Status duplicate = db->Execute("INSERT INTO t VALUES (1)", "inserting a duplicate");
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(duplicate.message(), HasSubstr("inserting a duplicate"));
  EXPECT_THAT(duplicate.message(), HasSubstr(dir.File("t.db")));


  // A file that is not a database: DATA_LOSS with the operator's instruction.
  ::attest::testing::WriteFileOrDie(dir.File("text.db"), "plain text, certainly not SQLite\n");
  auto text = OpenOrDie(dir.File("text.db"));
  auto read = text->QueryInt("SELECT count(*) FROM sqlite_schema", "reading the schema");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(),
              HasSubstr("database file " + dir.File("text.db") +
                        " is corrupt or not an attest database: restore from a replica or backup"));

  // Another connection holding the write lock: UNAVAILABLE once the busy timeout expires.
  auto other = OpenOrDie(dir.File("t.db"));
  ASSERT_TRUE(other->Execute("BEGIN IMMEDIATE", "lock").ok());
  auto busy = Connection::Open(dir.File("t.db"), OpenMode::kReadWrite, absl::Milliseconds(20));
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ((*busy)->Execute("INSERT INTO t VALUES (5)", "inserting").code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(other->Execute("ROLLBACK", "unlock").ok());
}

TEST(SqliteTest, OpeningAMissingFileWithoutCreateIsNotFound) {
  TempDir dir;
  auto db = Connection::Open(dir.File("absent.db"), OpenMode::kReadWrite, absl::Seconds(1));
  EXPECT_EQ(db.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(db.status().message(), HasSubstr(dir.File("absent.db")));
}

}  // namespace
}  // namespace attest::storage::sqlite
