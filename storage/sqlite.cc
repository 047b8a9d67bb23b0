#include "storage/sqlite.h"

#include <sqlite3.h>

#include <filesystem>
#include <system_error>
#include <utility>
#include "consensus/text.h"


namespace attest::storage::sqlite {
namespace {

std::string WithDetail(std::string message, std::string_view detail) {
  if (!detail.empty()) message += consensus::Cat(" [sqlite: ", detail, "]");
  return message;
}

// Why a file could not be opened, from the file system's point of view: SQLite only says CANTOPEN.
absl::Status CantOpenStatus(const std::string& path, std::string_view detail) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file(path);
  fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(WithDetail(
        consensus::Cat("cannot open database file ", path, ": directory ", dir.string(),
                     " does not exist (create it, or check the configured database path)"),
        detail));
  }
  if (fs::is_directory(file, ec)) {
    return absl::FailedPreconditionError(WithDetail(
        consensus::Cat("cannot open database file ", path,
                     ": it is a directory (the database path must name a file)"),
        detail));
  }
  return absl::FailedPreconditionError(WithDetail(
      consensus::Cat("cannot open database file ", path,
                   ": check that it and its directory exist and that this user may read and write "
                   "both (WAL mode also creates ",
                   path, "-wal and ", path, "-shm)"),
      detail));
}

// A file name as the path of a SQLite URI: '%', '?', '#' and anything outside printable ASCII are
// percent-encoded (https://sqlite.org/uri.html).
std::string UriPath(std::string_view path) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || c == '%' || c == '?' || c == '#') {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

absl::Status ErrorStatus(int rc, std::string_view file, std::string_view context,
                         std::string_view detail) {
  const std::string where = consensus::Cat(context, " (database file ", file, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(WithDetail(
          consensus::Cat(where, ": the database is busy (another process holds a lock?): retry later"),
          detail));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(WithDetail(
          consensus::Cat(context, ": database file ", file,
                       " is corrupt or not an attest database: restore from a replica or backup"),
          detail));
    case SQLITE_CANTOPEN:
      return CantOpenStatus(std::string(file), detail);
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(WithDetail(
          consensus::Cat(where,
                       ": the database is read-only: check the permissions of the file, its "
                       "directory and its -wal/-shm files"),
          detail));
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(
          WithDetail(consensus::Cat(where, ": access denied: check file permissions"), detail));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(
          WithDetail(consensus::Cat(where, ": the disk is full: free space and retry"), detail));
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(WithDetail(consensus::Cat(where, ": out of memory"), detail));
    case SQLITE_TOOBIG:
      return absl::ResourceExhaustedError(
          WithDetail(consensus::Cat(where, ": value too large for the database"), detail));
    case SQLITE_IOERR:
      return absl::UnavailableError(WithDetail(
          consensus::Cat(where, ": I/O error: check the disk and retry later"), detail));
    default:
      return absl::InternalError(WithDetail(
          consensus::Cat(where, ": unexpected SQLite result ", rc, " (", sqlite3_errstr(rc), ")"),
          detail));
  }
}

// ---------------------------------------------------------------------------------------------
// Connection

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& path, OpenMode mode,
                                                             absl::Duration busy_timeout) {
  // NOMUTEX: callers serialise access to a connection themselves (see the header).
  const bool read_only = mode == OpenMode::kReadOnly || mode == OpenMode::kReadOnlyImmutable;
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
  if (mode == OpenMode::kReadWriteCreate) {
    flags |= SQLITE_OPEN_CREATE;
  } else {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return absl::NotFoundError(consensus::Cat("database file ", path, " does not exist"));
    }
  }
  std::string name = path;
  if (mode == OpenMode::kReadOnlyImmutable) {
    flags |= SQLITE_OPEN_URI;
    std::error_code ec;
    const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
    if (ec) return CantOpenStatus(path, ec.message());
    name = "file:" + UriPath(absolute.string()) + "?immutable=1";
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    if ((rc & 0xff) == SQLITE_CANTOPEN) return CantOpenStatus(path, detail);
    return ErrorStatus(rc, path, "opening the database", detail);
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)));
  return std::unique_ptr<Connection>(new Connection(db, path));
}

Connection::~Connection() { sqlite3_close_v2(db_); }

absl::Status Connection::Error(int rc, std::string_view context) const {
  return ErrorStatus(rc, path_, context, sqlite3_errmsg(db_));
}

absl::Status Connection::Execute(std::string_view sql, std::string_view context) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string detail = message != nullptr ? message : sqlite3_errmsg(db_);
  sqlite3_free(message);
  return ErrorStatus(rc, path_, context, detail);
}

absl::StatusOr<std::unique_ptr<Statement>> Connection::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = Error(rc, consensus::Cat("preparing statement `", sql, "`"));
    sqlite3_finalize(stmt);
    return status;
  }
  return std::unique_ptr<Statement>(new Statement(*this, stmt));
}

// Runs a one-row, one-column query and extracts column 0 with `read`.
template <typename T, typename Read>
absl::StatusOr<T> QueryOne(Connection& db, std::string_view sql, std::string_view context, Read read) {
  auto statement = db.Prepare(sql);
  if (!statement.ok()) {
    return absl::Status(statement.status().code(),
                        consensus::Cat(context, ": ", statement.status().message()));
  }
  auto use = (*statement)->Begin(context);
  auto row = use.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(consensus::Cat(context, ": `", sql, "` returned no row"));
  return read(use);
}

absl::StatusOr<int64_t> Connection::QueryInt(std::string_view sql, std::string_view context) {
  return QueryOne<int64_t>(*this, sql, context, [](auto& use) { return use.Int(0); });
}

absl::StatusOr<std::string> Connection::QueryText(std::string_view sql, std::string_view context) {
  return QueryOne<std::string>(*this, sql, context, [](auto& use) { return std::string(use.Text(0)); });
}

absl::Status Connection::Checkpoint(CheckpointMode mode) {
  int rc = sqlite3_wal_checkpoint_v2(
      db_, nullptr,
      mode == CheckpointMode::kRestart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE,
      nullptr, nullptr);
  if (rc == SQLITE_OK) return absl::OkStatus();
  return Error(rc, "checkpointing the WAL");
}

void Connection::SetWalHook(std::function<void(int wal_pages)> hook) {
  wal_hook_ = std::move(hook);
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3*, const char*, int pages) {
        static_cast<Connection*>(self)->wal_hook_(pages);
        return SQLITE_OK;
      },
      this);
}

bool Connection::IsReadOnly() const { return sqlite3_db_readonly(db_, "main") == 1; }

int64_t Connection::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }

int64_t Connection::Changes() const { return sqlite3_changes64(db_); }

// ---------------------------------------------------------------------------------------------
// Statement

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Use::~Use() {
  sqlite3_reset(statement_.stmt_);
  sqlite3_clear_bindings(statement_.stmt_);
}

absl::Status Statement::Use::CheckBind(int rc) {
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = statement_.connection_.Error(rc, consensus::Cat(context_, ": binding parameter ",
                                                                 next_index_));
  }
  ++next_index_;
  return bind_status_;
}

Statement::Use& Statement::Use::Bind(int64_t value) {
  CheckBind(sqlite3_bind_int64(statement_.stmt_, next_index_, value)).IgnoreError();
  return *this;
}

Statement::Use& Statement::Use::Bind(std::string_view text) {
  CheckBind(sqlite3_bind_text64(statement_.stmt_, next_index_, text.data(), text.size(),
                                SQLITE_TRANSIENT, SQLITE_UTF8))
      .IgnoreError();
  return *this;
}

Statement::Use& Statement::Use::BindBlob(std::span<const uint8_t> bytes) {
  // A zero-length blob must still be a blob, not NULL: sqlite3_bind_blob64 with a null pointer
  // binds NULL, so point at something.
  static constexpr uint8_t kEmpty = 0;
  const void* data = bytes.empty() ? &kEmpty : bytes.data();
  CheckBind(sqlite3_bind_blob64(statement_.stmt_, next_index_, data, bytes.size(), SQLITE_TRANSIENT))
      .IgnoreError();
  return *this;
}

Statement::Use& Statement::Use::BindNull() {
  CheckBind(sqlite3_bind_null(statement_.stmt_, next_index_)).IgnoreError();
  return *this;
}

absl::StatusOr<bool> Statement::Use::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(statement_.stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return statement_.connection_.Error(rc, context_);
}

absl::Status Statement::Use::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

bool Statement::Use::IsNull(int column) const {
  return sqlite3_column_type(statement_.stmt_, column) == SQLITE_NULL;
}

int64_t Statement::Use::Int(int column) const {
  return sqlite3_column_int64(statement_.stmt_, column);
}

std::string_view Statement::Use::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(statement_.stmt_, column);
  int size = sqlite3_column_bytes(statement_.stmt_, column);
  if (text == nullptr) return {};
  return {reinterpret_cast<const char*>(text), static_cast<size_t>(size)};
}

std::span<const uint8_t> Statement::Use::Blob(int column) const {
  const void* data = sqlite3_column_blob(statement_.stmt_, column);
  int size = sqlite3_column_bytes(statement_.stmt_, column);
  if (data == nullptr) return {};
  return {static_cast<const uint8_t*>(data), static_cast<size_t>(size)};
}

// ---------------------------------------------------------------------------------------------
// Transaction

absl::StatusOr<Transaction> Transaction::Begin(Connection& connection, Kind kind) {
  absl::Status status =
      kind == Kind::kWrite
          ? connection.Execute("BEGIN IMMEDIATE", "starting a write transaction")
          : connection.Execute("BEGIN DEFERRED", "starting a read transaction");
  if (!status.ok()) return status;
  return Transaction(&connection);
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)) {}

Transaction::~Transaction() {
  if (connection_ != nullptr) {
    // Nothing useful to do if the rollback itself fails: SQLite rolls back on its own when the
    // connection closes, and the next BEGIN reports a still-open transaction.
    connection_->Execute("ROLLBACK", "rolling back").IgnoreError();
  }
}

absl::Status Transaction::Commit() {
  if (connection_ == nullptr) return absl::InternalError("commit of a finished transaction");
  absl::Status status = connection_->Execute("COMMIT", "committing");
  if (status.ok()) connection_ = nullptr;
  return status;
}

}  // namespace attest::storage::sqlite
