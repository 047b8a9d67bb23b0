// A thin RAII layer over the SQLite C API, private to storage/.
//
//   Connection   one sqlite3 handle; closed on destruction.
//   Statement    prepared once, executed many times; each execution is a Statement::Use, which binds
//                values (never formatted into SQL), steps, reads columns, and resets the statement when
//                it goes out of scope (so a half-read SELECT never keeps a read snapshot open).
//   Transaction  BEGIN .. COMMIT; rolled back on destruction unless committed.
//
// Every SQLite result code is translated here, once, into an absl::Status with context (ErrorStatus):
//   SQLITE_BUSY / SQLITE_LOCKED  -> UNAVAILABLE (the caller retries a bounded number of times)
//   SQLITE_CORRUPT / SQLITE_NOTADB -> DATA_LOSS "database file X is corrupt or not an attest database:
//                                   restore from a replica or backup"
//   SQLITE_CANTOPEN -> NOT_FOUND (the directory is missing) or FAILED_PRECONDITION (permissions)
//   SQLITE_READONLY / SQLITE_PERM / SQLITE_AUTH -> FAILED_PRECONDITION
//   SQLITE_FULL / SQLITE_NOMEM / SQLITE_TOOBIG -> RESOURCE_EXHAUSTED
//   SQLITE_IOERR -> UNAVAILABLE;  SQLITE_CONSTRAINT and anything else -> INTERNAL (a bug of ours).
//
// Thread-safety: none of these types is thread-safe. A Connection and its Statements are used by one
// thread at a time; the owner serialises access (see SqliteAttestationStore).
#ifndef ATTEST_STORAGE_SQLITE_H_
#define ATTEST_STORAGE_SQLITE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace attest::storage::sqlite {

// Translates SQLite result code `rc` (primary or extended) into a Status. `file` is the database
// file, `context` what was being done ("inserting attestation"). `detail` is SQLite's own message
// (sqlite3_errmsg), appended for operators; the gRPC boundary strips it from client answers.
absl::Status ErrorStatus(int rc, std::string_view file, std::string_view context,
                         std::string_view detail);

enum class OpenMode {
  kReadWriteCreate,  // create the file when it does not exist
  kReadWrite,        // the file must exist
  // SQLITE_OPEN_READONLY; the file must exist. Never writes the database file, but on a WAL database
  // SQLite creates (and leaves behind) the -wal and -shm files when they are missing and the directory
  // is writable: a WAL reader needs the shared-memory index.
  kReadOnly,
  // kReadOnly plus the `immutable=1` URI parameter: SQLite takes no locks and creates no -wal/-shm
  // files, trusting that nobody changes the file while it is open. The caller must make that true or
  // detect changes itself (NixStoreDb compares the file's identity before and after reading).
  kReadOnlyImmutable,
};

class Statement;

class Connection final {
 public:
  // Opens `path`. NOT_FOUND when the file (kReadWrite) or its directory does not exist;
  // FAILED_PRECONDITION when it cannot be opened (permissions, a directory), naming the file.
  // Extended result codes are enabled and `busy_timeout` is installed.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, OpenMode mode,
                                                          absl::Duration busy_timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs SQL without parameters and without result rows (schema, pragmas, BEGIN/COMMIT).
  absl::Status Execute(std::string_view sql, std::string_view context);
  // Prepares a statement for repeated use (SQLITE_PREPARE_PERSISTENT).
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(std::string_view sql);

  // Reads a single integer (e.g. "PRAGMA user_version").
  absl::StatusOr<int64_t> QueryInt(std::string_view sql, std::string_view context);
  // Reads a single text value (e.g. "PRAGMA journal_mode=WAL").
  absl::StatusOr<std::string> QueryText(std::string_view sql, std::string_view context);

  // True when SQLite opened the file read-only (it does so silently when it may not write it).
  bool IsReadOnly() const;
  int64_t LastInsertRowId() const;
  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t Changes() const;

  enum class CheckpointMode {
    kPassive,  // copy what can be copied without waiting for anyone
    kRestart,  // wait (busy timeout) for readers, so that the next write starts the WAL afresh
  };
  // Copies WAL frames back into the database file. UNAVAILABLE when another checkpoint runs.
  absl::Status Checkpoint(CheckpointMode mode);
  // Called after every commit with the number of frames now in the WAL, on the committing thread.
  // Replaces SQLite's automatic checkpointing on this connection.
  void SetWalHook(std::function<void(int wal_pages)> hook);

  const std::string& path() const { return path_; }
  // ErrorStatus for `rc` with this connection's file and current error message.
  absl::Status Error(int rc, std::string_view context) const;

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
  std::function<void(int)> wal_hook_;
};

class Statement final {
 public:
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // One execution: bind parameters in order (1, 2, ...), then Step() or Run(). Resets the statement
  // and clears its bindings on destruction. At most one Use of a Statement at a time.
  class Use final {
   public:
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;

    Use& Bind(int64_t value);
    Use& Bind(std::string_view text);  // TEXT
    Use& BindBlob(std::span<const uint8_t> bytes);
    Use& BindNull();

    // True with a row available, false when done. Errors include the statement's context.
    absl::StatusOr<bool> Step();
    // Steps to completion; rows, if any, are ignored.
    absl::Status Run();

    bool IsNull(int column) const;
    int64_t Int(int column) const;
    std::string_view Text(int column) const;
    std::span<const uint8_t> Blob(int column) const;

   private:
    friend class Statement;
    Use(Statement& statement, std::string_view context)
        : statement_(statement), context_(context) {}
    absl::Status CheckBind(int rc);
    Statement& statement_;
    std::string_view context_;  // points at a literal
    int next_index_ = 1;
    absl::Status bind_status_;
  };

  // `context` must outlive the Use (pass a string literal): "looking up a store path".
  Use Begin(std::string_view context) { return Use(*this, context); }

 private:
  friend class Connection;
  Statement(Connection& connection, sqlite3_stmt* stmt) : connection_(connection), stmt_(stmt) {}
  Connection& connection_;
  sqlite3_stmt* stmt_;
};

class Transaction final {
 public:
  enum class Kind {
    kRead,   // BEGIN DEFERRED: a consistent snapshot for several reads
    kWrite,  // BEGIN IMMEDIATE: takes the write lock up front (no lock upgrade deadlocks)
  };
  static absl::StatusOr<Transaction> Begin(Connection& connection, Kind kind);
  // Rolls back unless Commit() succeeded.
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;

  absl::Status Commit();

 private:
  explicit Transaction(Connection* connection) : connection_(connection) {}
  Connection* connection_;  // null once committed, rolled back or moved from
};

}  // namespace attest::storage::sqlite

#endif  // ATTEST_STORAGE_SQLITE_H_
