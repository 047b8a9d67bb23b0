#include "client/nix_store_db.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_split.h"
#include "consensus/text.h"
#include "storage/sqlite.h"

namespace attest::client {
namespace {

namespace sqlite = storage::sqlite;

using consensus::Cat;
using consensus::StorePath;

constexpr std::string_view kSelectPath =
    "SELECT id, hash, registrationTime, deriver, narSize, ultimate, sigs, ca FROM ValidPaths WHERE path = ?";
constexpr std::string_view kSelectRefs =
    "SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?";
constexpr std::string_view kSelectBuilt =
    "SELECT path, deriver, registrationTime FROM ValidPaths WHERE ultimate = 1 ORDER BY id";

constexpr std::string_view kHasRealisationsTable =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('Realisations', 'RealisationsRefs')";
constexpr std::string_view kSelectRealisation =
    "SELECT r.id, v.path, r.signatures FROM Realisations r JOIN ValidPaths v ON v.id = r.outputPath "
    "WHERE r.drvPath = ? AND r.outputName = ?";
constexpr std::string_view kSelectDependentRealisations =
    "SELECT d.drvPath, d.outputName, v.path FROM RealisationsRefs x JOIN Realisations d ON d.id = "
    "x.realisationReference JOIN ValidPaths v ON v.id = d.outputPath WHERE x.referrer = ?";
constexpr std::string_view kSelectAnyRealisation = "SELECT 1 FROM Realisations LIMIT 1";

// "sha256:<64 lower-case hex>" -> the hex; empty when it is not that.
std::string DrvHashHex(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!text.starts_with(kPrefix)) return "";
  text.remove_prefix(kPrefix.size());
  if (text.size() != 64) return "";
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  }
  return std::string(text);
}

// Whether the store has the realisation tables (ca-derivations was enabled at some point).
absl::StatusOr<bool> HasRealisationTables(sqlite::Connection& connection) {
  absl::StatusOr<std::unique_ptr<sqlite::Statement>> statement = connection.Prepare(kHasRealisationsTable);
  if (!statement.ok()) return statement.status();
  sqlite::Statement::Use use = (*statement)->Begin("looking for Nix's realisation tables");
  absl::StatusOr<bool> row = use.Step();
  if (!row.ok()) return row.status();
  return *row && use.Int(0) == 2;
}

// What identifies one version of the database file. A checkpoint by Nix rewrites pages in place, which
// moves mtime and ctime; a VACUUM or restore replaces the inode.
struct FileIdentity final {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_sec = 0, mtime_nsec = 0, ctime_sec = 0, ctime_nsec = 0;
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

absl::StatusOr<FileIdentity> Identify(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    if (error == ENOENT) {
      return absl::NotFoundError(Cat("Nix's database ", path, " does not exist (is the store root right?)"));
    }
    return absl::FailedPreconditionError(Cat("cannot stat Nix's database ", path, ": ", std::strerror(error)));
  }
  return FileIdentity{.dev = st.st_dev,
                      .ino = st.st_ino,
                      .size = st.st_size,
                      .mtime_sec = st.st_mtim.tv_sec,
                      .mtime_nsec = st.st_mtim.tv_nsec,
                      .ctime_sec = st.st_ctim.tv_sec,
                      .ctime_nsec = st.st_ctim.tv_nsec};
}

bool Exists(const std::string& path) {
  struct stat st{};
  return ::lstat(path.c_str(), &st) == 0;
}

// Re-words errors from the shared SQLite layer (which speaks of attest's own database) for Nix's.
absl::Status NixDbError(const absl::Status& status, const std::string& db) {
  const std::string where = Cat("reading Nix's database ", db, ": ");
  switch (status.code()) {
    case absl::StatusCode::kDataLoss:
      return absl::DataLossError(Cat(where, "the file is corrupt or not an SQLite database (",
                                     status.message(), "); check it with `nix-store --verify`"));
    case absl::StatusCode::kInternal:
      // An SQL error on Nix's own tables: the schema is not the one we know.
      return absl::FailedPreconditionError(
          Cat(where, "it does not have the tables of a Nix store database (", status.message(),
              "); is it a Nix store, and is its Nix version supported?"));
    case absl::StatusCode::kFailedPrecondition:
      return absl::FailedPreconditionError(
          Cat(where, status.message(), " (reading needs read access to the file and its directory)"));
    default:
      return absl::Status(status.code(), Cat(where, status.message()));
  }
}

// Runs `read` over one consistent snapshot of the database (see the header for the two ways).
template <typename T, typename Read>
absl::StatusOr<T> WithSnapshot(const std::string& db, const NixStoreDbOptions& options, Read read) {
  using sqlite::Connection;
  using sqlite::OpenMode;
  const std::string wal = db + "-wal";
  auto read_with = [&](OpenMode mode) -> absl::StatusOr<T> {
    absl::StatusOr<std::unique_ptr<Connection>> connection = Connection::Open(db, mode, options.busy_timeout);
    if (!connection.ok()) return NixDbError(connection.status(), db);
    absl::StatusOr<sqlite::Transaction> transaction =
        sqlite::Transaction::Begin(**connection, sqlite::Transaction::Kind::kRead);
    if (!transaction.ok()) return NixDbError(transaction.status(), db);
    absl::StatusOr<T> result = read(**connection);
    if (!result.ok()) return NixDbError(result.status(), db);
    return result;
  };
  for (int attempt = 0; attempt < options.max_snapshot_attempts; ++attempt) {
    absl::StatusOr<FileIdentity> before = Identify(db);
    if (!before.ok()) return before.status();
    if (Exists(wal)) return read_with(OpenMode::kReadOnly);
    absl::StatusOr<T> result = read_with(OpenMode::kReadOnlyImmutable);
    absl::StatusOr<FileIdentity> after = Identify(db);
    if (!after.ok()) return after.status();
    // Unchanged file and still no WAL: nobody wrote while we read, so `result` (data or error) is
    // about one consistent version of the database.
    if (*after == *before && !Exists(wal)) return result;
  }
  return read_with(OpenMode::kReadOnly);
}

// Reads one path into `out` (NOT_FOUND or DATA_LOSS about that path). The returned status is a failure
// to read the database itself (busy, I/O, corruption), which ends the whole snapshot.
absl::Status ReadOne(sqlite::Statement& select_path, sqlite::Statement& select_refs, const StorePath& path,
                     const std::string& store_root, absl::StatusOr<NixStorePathInfo>& out) {
  NixStorePathInfo info{.path = path,
                        .nar_hash = std::nullopt,
                        .nar_size = 0,
                        .references = {},
                        .deriver = {},
                        .ultimate = false,
                        .registration_time = 0,
                        .signatures = {},
                        .ca = {}};
  int64_t id = 0;
  {
    sqlite::Statement::Use use = select_path.Begin("looking up a store path");
    use.Bind(path.full());
    absl::StatusOr<bool> row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) {
      out = absl::NotFoundError(Cat("path ", path.full(), " is not valid in the Nix store at ", store_root,
                                    " (never built or substituted there, or garbage-collected)"));
      return absl::OkStatus();
    }
    id = use.Int(0);
    const std::string_view hash_text = use.IsNull(1) ? std::string_view() : use.Text(1);
    if (absl::StatusOr<consensus::NarHash> hash = consensus::NarHash::Parse(hash_text); hash.ok()) {
      info.nar_hash = *hash;
    }
    info.registration_time = use.IsNull(2) ? 0 : use.Int(2);
    if (!use.IsNull(3)) info.deriver = std::string(use.Text(3));
    const int64_t nar_size = use.IsNull(4) ? 0 : use.Int(4);
    info.nar_size = nar_size > 0 ? static_cast<uint64_t>(nar_size) : 0;
    info.ultimate = !use.IsNull(5) && use.Int(5) != 0;
    if (!use.IsNull(6)) {
      for (absl::string_view sig : absl::StrSplit(consensus::AbslView(use.Text(6)), ' ', absl::SkipEmpty())) {
        info.signatures.emplace_back(sig);
      }
    }
    if (!use.IsNull(7)) info.ca = std::string(use.Text(7));
  }
  sqlite::Statement::Use use = select_refs.Begin("reading references of a store path");
  use.Bind(id);
  for (;;) {
    absl::StatusOr<bool> row = use.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    absl::StatusOr<StorePath> reference = StorePath::Parse(use.Text(0));
    if (!reference.ok()) {
      out = absl::DataLossError(Cat("path ", path.full(), " has a reference Nix's database holds as ",
                                    consensus::QuoteForError(use.Text(0)), ", which is not a /nix/store path: ",
                                    reference.status().message()));
      return absl::OkStatus();
    }
    info.references.push_back(*std::move(reference));
  }
  std::sort(info.references.begin(), info.references.end());
  info.references.erase(std::unique(info.references.begin(), info.references.end()), info.references.end());
  out = std::move(info);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<consensus::PathInfo> NixStorePathInfo::Claim() const {
  if (!nar_hash.has_value()) {
    return absl::FailedPreconditionError(
        Cat("Nix's database holds no usable SHA-256 NAR hash for ", path.full()));
  }
  if (nar_size == 0) {
    return absl::FailedPreconditionError(Cat("Nix's database holds no NAR size for ", path.full()));
  }
  return consensus::PathInfo::Create(path, *nar_hash, nar_size, references);
}

std::string NixStoreDb::DatabasePath(std::string_view store_root) {
  while (!store_root.empty() && store_root.back() == '/') store_root.remove_suffix(1);
  return Cat(store_root, "/nix/var/nix/db/db.sqlite");
}

absl::StatusOr<std::unique_ptr<NixStoreDb>> NixStoreDb::Open(std::string store_root, NixStoreDbOptions options) {
  if (store_root.empty()) store_root.push_back('/');
  while (store_root.size() > 1 && store_root.back() == '/') store_root.pop_back();
  std::string db = DatabasePath(store_root);
  if (absl::StatusOr<FileIdentity> identity = Identify(db); !identity.ok()) {
    if (absl::IsNotFound(identity.status())) {
      return absl::NotFoundError(Cat("no Nix database at ", db, ": is ", store_root,
                                     " the root of a Nix store (\"/\" for the system store, the directory "
                                     "given to --store for a chroot store)?"));
    }
    return identity.status();
  }
  absl::StatusOr<bool> checked = WithSnapshot<bool>(db, options, [](sqlite::Connection& connection) -> absl::StatusOr<bool> {
    for (std::string_view sql : {kSelectPath, kSelectRefs}) {
      if (absl::StatusOr<std::unique_ptr<sqlite::Statement>> statement = connection.Prepare(sql); !statement.ok()) {
        return statement.status();
      }
    }
    return true;
  });
  if (!checked.ok()) return checked.status();
  return std::unique_ptr<NixStoreDb>(new NixStoreDb(std::move(store_root), std::move(db), options));
}

absl::StatusOr<NixStorePathInfo> NixStoreDb::PathInfo(const consensus::StorePath& path) {
  absl::StatusOr<std::vector<absl::StatusOr<NixStorePathInfo>>> infos = PathInfos(std::span(&path, 1));
  if (!infos.ok()) return infos.status();
  return std::move((*infos)[0]);
}

absl::StatusOr<std::vector<absl::StatusOr<NixStorePathInfo>>> NixStoreDb::PathInfos(
    std::span<const consensus::StorePath> paths) {
  using Result = std::vector<absl::StatusOr<NixStorePathInfo>>;
  return WithSnapshot<Result>(
      database_path_, options_, [&](sqlite::Connection& connection) -> absl::StatusOr<Result> {
        absl::StatusOr<std::unique_ptr<sqlite::Statement>> select_path = connection.Prepare(kSelectPath);
        if (!select_path.ok()) return select_path.status();
        absl::StatusOr<std::unique_ptr<sqlite::Statement>> select_refs = connection.Prepare(kSelectRefs);
        if (!select_refs.ok()) return select_refs.status();
        Result results;
        results.reserve(paths.size());
        for (const StorePath& path : paths) {
          absl::StatusOr<NixStorePathInfo> info = absl::UnknownError("not read");
          if (absl::Status s = ReadOne(**select_path, **select_refs, path, store_root_, info); !s.ok()) return s;
          results.push_back(std::move(info));
        }
        return results;
      });
}

absl::StatusOr<bool> NixStoreDb::HasRealisations() {
  return WithSnapshot<bool>(database_path_, options_, [&](sqlite::Connection& connection) -> absl::StatusOr<bool> {
    absl::StatusOr<bool> tables = HasRealisationTables(connection);
    if (!tables.ok() || !*tables) return tables;
    absl::StatusOr<std::unique_ptr<sqlite::Statement>> select = connection.Prepare(kSelectAnyRealisation);
    if (!select.ok()) return select.status();
    sqlite::Statement::Use use = (*select)->Begin("looking for realisations");
    return use.Step();
  });
}

absl::StatusOr<std::vector<std::optional<NixRealisation>>> NixStoreDb::Realisations(
    std::span<const NixRealisationId> ids) {
  using Result = std::vector<std::optional<NixRealisation>>;
  return WithSnapshot<Result>(database_path_, options_, [&](sqlite::Connection& connection) -> absl::StatusOr<Result> {
    Result results(ids.size());
    absl::StatusOr<bool> tables = HasRealisationTables(connection);
    if (!tables.ok()) return tables.status();
    if (!*tables) return results;
    absl::StatusOr<std::unique_ptr<sqlite::Statement>> select = connection.Prepare(kSelectRealisation);
    if (!select.ok()) return select.status();
    absl::StatusOr<std::unique_ptr<sqlite::Statement>> select_dependent =
        connection.Prepare(kSelectDependentRealisations);
    if (!select_dependent.ok()) return select_dependent.status();
    for (size_t i = 0; i < ids.size(); ++i) {
      const NixRealisationId& id = ids[i];
      const std::string key = Cat("sha256:", id.drv_hash, "!", id.output_name);
      std::optional<StorePath> out_path;
      std::vector<std::pair<std::string, StorePath>> dependent;
      std::vector<std::string> signatures;
      int64_t row_id = 0;
      {
        sqlite::Statement::Use use = (*select)->Begin("looking up a realisation");
        use.Bind(Cat("sha256:", id.drv_hash));
        use.Bind(id.output_name);
        absl::StatusOr<bool> row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) continue;
        row_id = use.Int(0);
        absl::StatusOr<StorePath> out = StorePath::Parse(use.Text(1));
        if (!out.ok()) {
          return absl::DataLossError(Cat("realisation ", key, " names output path ",
                                         consensus::QuoteForError(use.Text(1)), ": ", out.status().message()));
        }
        out_path = *std::move(out);
        if (!use.IsNull(2)) {
          for (absl::string_view sig : absl::StrSplit(consensus::AbslView(use.Text(2)), ' ', absl::SkipEmpty())) {
            signatures.emplace_back(sig);
          }
        }
      }
      sqlite::Statement::Use use = (*select_dependent)->Begin("reading dependent realisations");
      use.Bind(row_id);
      for (;;) {
        absl::StatusOr<bool> row = use.Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
        const std::string hex = DrvHashHex(use.Text(0));
        absl::StatusOr<StorePath> out = StorePath::Parse(use.Text(2));
        if (hex.empty() || !out.ok()) {
          return absl::DataLossError(Cat("realisation ", key, " has a dependent realisation Nix's database holds as ",
                                         consensus::QuoteForError(use.Text(0)), " -> ",
                                         consensus::QuoteForError(use.Text(2)), ", not a derivation hash and a path"));
        }
        dependent.emplace_back(Cat("sha256:", hex, "!", use.Text(1)), *std::move(out));
      }
      std::sort(dependent.begin(), dependent.end());
      dependent.erase(std::unique(dependent.begin(), dependent.end()), dependent.end());
      results[i] = NixRealisation{.drv_hash = id.drv_hash,
                                  .output_name = id.output_name,
                                  .out_path = *std::move(out_path),
                                  .dependent = std::move(dependent),
                                  .signatures = std::move(signatures)};
    }
    return results;
  });
}

absl::StatusOr<std::vector<NixBuiltPath>> NixStoreDb::BuiltPaths(size_t* skipped) {
  size_t skipped_rows = 0;
  absl::StatusOr<std::vector<NixBuiltPath>> built = WithSnapshot<std::vector<NixBuiltPath>>(
      database_path_, options_, [&](sqlite::Connection& connection) -> absl::StatusOr<std::vector<NixBuiltPath>> {
        skipped_rows = 0;  // a repeated snapshot starts over
        absl::StatusOr<std::unique_ptr<sqlite::Statement>> select = connection.Prepare(kSelectBuilt);
        if (!select.ok()) return select.status();
        std::vector<NixBuiltPath> paths;
        sqlite::Statement::Use use = (*select)->Begin("listing paths built here");
        for (;;) {
          absl::StatusOr<bool> row = use.Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          absl::StatusOr<StorePath> path = StorePath::Parse(use.Text(0));
          if (!path.ok()) {
            ++skipped_rows;
            continue;
          }
          paths.push_back(NixBuiltPath{.path = *std::move(path),
                                       .deriver = use.IsNull(1) ? "" : std::string(use.Text(1)),
                                       .registration_time = use.IsNull(2) ? 0 : use.Int(2)});
        }
        return paths;
      });
  if (skipped != nullptr) *skipped = skipped_rows;
  return built;
}

}  // namespace attest::client
