// SqliteAttestationStore: opening the file, the write transaction, the pool of reader connections
// and the background WAL checkpoints; every public method takes the writer or a reader here and
// retries while the file is busy. What each table family reads and writes is in its own file
// (storage/sqlite_store_internal.h lists them).
#include "storage/sqlite_attestation_store.h"

#include <algorithm>
#include <random>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "consensus/text.h"
#include "storage/batch_validation.h"
#include "storage/log_tree.h"
#include "storage/path_record.h"
#include "storage/sqlite.h"
#include "storage/sqlite_store_internal.h"

namespace attest::storage {
namespace sqlite_store {

absl::Status Corrupt(const std::string& file, std::string_view what) {
  return absl::DataLossError(consensus::Cat(
      "database file ", file, " is corrupt or not an attest database (", what,
      "): restore from a replica or backup"));
}

absl::Status PrepareStatements(Connection& db, std::initializer_list<StatementSql> all) {
  for (const auto& [statement, sql] : all) {
    auto prepared = db.Prepare(sql);
    if (!prepared.ok()) return prepared.status();
    *statement = std::move(*prepared);
  }
  return absl::OkStatus();
}

}  // namespace sqlite_store

namespace {

using consensus::StorePath;
using sqlite::Connection;
using sqlite::Transaction;
using sqlite_store::CheckIdentity;
using sqlite_store::CreateOrMigrate;
using sqlite_store::kKeyCounterPrefix;
using sqlite_store::kPageSizeBytes;
using sqlite_store::ReadIdentity;

// Retries `attempt` while it fails with UNAVAILABLE (busy past the busy timeout, or a transient I/O
// error), at most options.busy_retries more times, with a short growing pause.
inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& result) {
  return result.status();
}

template <typename Attempt>
auto WithBusyRetries(const SqliteOptions& options, Attempt&& attempt) -> decltype(attempt()) {
  for (int tries = 1;; ++tries) {
    auto result = attempt();
    if (result.ok() || !absl::IsUnavailable(StatusOf(result))) return result;
    if (tries > options.busy_retries) {
      return absl::UnavailableError(
          consensus::Cat(StatusOf(result).message(), " (gave up after ", tries, " attempts)"));
    }
    absl::SleepFor(absl::Milliseconds(10) * (1 << std::min(tries, 6)));
  }
}

// Unpredictable, so that nobody can choose store paths that crowd one place of the path index.
uint64_t RandomSeed() {
  std::random_device device;
  return uint64_t{device()} << 32 | device();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Writer: the one connection that writes.

absl::StatusOr<std::unique_ptr<SqliteAttestationStore::Writer>> SqliteAttestationStore::Writer::Create(
    std::unique_ptr<Connection> db) {
  auto writer = std::unique_ptr<Writer>(new Writer(std::move(db)));
  for (absl::Status (Writer::*prepare)() : {&Writer::PreparePathsStatements, &Writer::PrepareDisputesStatements,
                                            &Writer::PrepareLogStatements, &Writer::PreparePeersStatements,
                                            &Writer::PrepareDerivationsStatements,
                                            &Writer::PreparePoliciesStatements,
                                            &Writer::PrepareRealisationsStatements}) {
    if (absl::Status status = (writer.get()->*prepare)(); !status.ok()) return status;
  }
  if (absl::Status status = writer->ResumeLog(); !status.ok()) return status;
  return writer;
}

// One transaction for everything the batch holds, whichever role it concerns (storage/store_writer.h).
absl::StatusOr<std::vector<WriteOutcome>> SqliteAttestationStore::Writer::WriteOnce(const WriteBatch& batch) {
  if (batch.peer_progress.has_value()) {
    if (absl::Status status = ValidatePeerProgress(*batch.peer_progress); !status.ok()) return status;
  } else if (absl::Status status = CheckPeerEntries(batch, std::nullopt); !status.ok()) {
    return status;
  }
  auto entries = LogEntriesOf(batch);
  if (!entries.ok()) return entries.status();
  auto tx = Transaction::Begin(*db_, Transaction::Kind::kWrite);
  if (!tx.ok()) return tx.status();
  paths_.clear();
  realisation_rows_.clear();
  // Attestations to append to the log: their row, the signature's position in it, their entry.
  struct Logged {
    const PathRow* row;
    size_t signature;
    size_t entry;
  };
  std::vector<Logged> logged;

  // Every store path the batch writes to, with its stored row when there is one, in a few
  // statements.
  std::vector<const StorePath*> mentioned;
  for (const StoredAttestation& stored : batch.attestations) {
    mentioned.push_back(&stored.attestation.claim.path);
  }
  for (const StoredDispute& dispute : batch.disputes) {
    if (!dispute.subject.is_realisation()) mentioned.push_back(&dispute.subject.path());
  }
  if (absl::Status status = LoadPaths(mentioned); !status.ok()) return status;

  std::vector<WriteOutcome> outcomes;
  outcomes.reserve(batch.attestations.size() + batch.realisations.size());
  int64_t inserted = 0;
  absl::flat_hash_map<std::string_view, int64_t> per_key;
  for (size_t i = 0; i < batch.attestations.size(); ++i) {
    const StoredAttestation& stored = batch.attestations[i];
    // Validated here rather than up front: it is cheap, and a refused item in the middle of a
    // batch then exercises the same rollback that disk-full and I/O errors rely on.
    if (absl::Status status = ValidateStoredAttestation(stored, i, batch.attestations.size());
        !status.ok()) {
      return status;
    }
    auto outcome = AddAttestation(stored);
    if (!outcome.ok()) {
      return absl::Status(outcome.status().code(),
                          consensus::Cat("attestation ", i + 1, " of ", batch.attestations.size(),
                                         ": ", outcome.status().message()));
    }
    if (*outcome == WriteOutcome::kInserted) {
      ++inserted;
      ++per_key[stored.attestation.key_name()];
      if (batch.log_append == LogAppend::kAll) {
        const PathRow& row = paths_.at(stored.attestation.claim.path.full());
        logged.push_back(Logged{.row = &row, .signature = row.record.signatures.size() - 1, .entry = i});
      }
    }
    outcomes.push_back(*outcome);
  }
  int64_t new_paths = 0;
  if (absl::Status status = StoreChangedPaths(new_paths); !status.ok()) return status;
  // Realisations after the attestations: their outcomes and log entries follow the attestations'.
  int64_t realisations_inserted = 0;
  int64_t new_realisation_keys = 0;
  std::vector<size_t> logged_realisations;  // indexes into batch.realisations
  for (size_t i = 0; i < batch.realisations.size(); ++i) {
    const StoredRealisation& stored = batch.realisations[i];
    if (absl::Status status = ValidateStoredRealisation(stored, i, batch.realisations.size()); !status.ok()) {
      return status;
    }
    auto added = AddRealisation(stored);
    if (!added.ok()) {
      return absl::Status(added.status().code(), consensus::Cat("realisation ", i + 1, " of ",
                                                                batch.realisations.size(), ": ",
                                                                added.status().message()));
    }
    if (added->outcome == WriteOutcome::kInserted) {
      ++realisations_inserted;
      if (added->first_of_key) ++new_realisation_keys;
      if (batch.log_append == LogAppend::kAll) logged_realisations.push_back(i);
    }
    outcomes.push_back(added->outcome);
  }
  if (absl::Status status = StoreChangedRealisations(); !status.ok()) return status;
  for (size_t i = 0; i < batch.disputes.size(); ++i) {
    if (absl::Status status = ValidateStoredDispute(batch.disputes[i], i, batch.disputes.size());
        !status.ok()) {
      return status;
    }
    if (absl::Status status = UpsertDispute(batch.disputes[i]); !status.ok()) {
      return absl::Status(status.code(), consensus::Cat("dispute ", i + 1, " of ",
                                                        batch.disputes.size(), ": ",
                                                        status.message()));
    }
  }
  for (const Logged& item : logged) {
    if (absl::Status status = AppendLogEntry(item.row->id, static_cast<int64_t>(item.signature),
                                             std::nullopt, entries->attestations[item.entry]);
        !status.ok()) {
      return status;
    }
  }
  // A realisation entry is kept whole in the row (not rebuilt from the realisation record, whose
  // received time may later become earlier).
  for (size_t i : logged_realisations) {
    const std::string& entry = entries->realisations[i];
    if (absl::Status status = AppendLogEntry(std::nullopt, std::nullopt, entry, entry); !status.ok()) return status;
  }
  for (size_t i = 0; entries->logged && i < batch.disputes.size(); ++i) {
    const std::vector<std::string>& dispute_entries = entries->disputes[i];
    for (const std::string& entry : dispute_entries) {
      // A record logged whole keeps its signed note in the row; a record logged in parts keeps
      // each part entry itself (EncodeNoteEntry gives both back as entries).
      const std::string_view kept = dispute_entries.size() == 1 ? std::string_view(batch.disputes[i].signed_record)
                                                                 : std::string_view(entry);
      if (absl::Status status = AppendLogEntry(std::nullopt, std::nullopt, kept, entry); !status.ok()) {
        return status;
      }
    }
  }
  for (size_t i = 0; i < batch.resolutions.size(); ++i) {
    const StoredResolution& resolution = batch.resolutions[i];
    if (absl::Status status = ValidateStoredResolution(resolution, i, batch.resolutions.size()); !status.ok()) {
      return status;
    }
    auto stored = InsertResolution(resolution);
    if (!stored.ok()) return stored.status();
    if (*stored && batch.log_append == LogAppend::kAll) {
      if (absl::Status status =
              AppendLogEntry(std::nullopt, std::nullopt, resolution.signed_note, entries->resolutions[i]);
          !status.ok()) {
        return status;
      }
    }
  }
  if (absl::Status status = UpdateDisputeStates(batch); !status.ok()) return status;
  if (absl::Status status = StoreChangedTiles(); !status.ok()) return status;
  if (batch.peer_progress.has_value()) {
    if (absl::Status status = StorePeerProgress(batch); !status.ok()) return status;
  }
  if (absl::Status status = StoreRejectedEntries(batch); !status.ok()) return status;
  if (absl::Status status = BumpCounter("attestations", inserted); !status.ok()) return status;
  if (absl::Status status = BumpCounter("paths", new_paths); !status.ok()) return status;
  if (absl::Status status = BumpCounter("realisations", realisations_inserted); !status.ok()) return status;
  if (absl::Status status = BumpCounter("realisation_keys", new_realisation_keys); !status.ok()) return status;
  for (const auto& [key_name, count] : per_key) {
    if (absl::Status status = BumpCounter(consensus::Cat(kKeyCounterPrefix, key_name), count); !status.ok()) {
      return status;
    }
  }
  if (absl::Status status = tx->Commit(); !status.ok()) return status;
  paths_.clear();  // its keys view the caller's batch
  realisation_rows_.clear();
  committed_log_ = log_;
  return outcomes;
}

void SqliteAttestationStore::Writer::ForgetUncommitted() {
  log_ = committed_log_;
  key_ids_.clear();
  observed_key_ids_.clear();
  label_ids_.clear();
  paths_.clear();
  realisation_rows_.clear();
}

// ---------------------------------------------------------------------------------------------
// Reader: one read-only connection.

absl::StatusOr<std::unique_ptr<SqliteAttestationStore::Reader>> SqliteAttestationStore::Reader::Open(
    const std::string& path, const SqliteOptions& options, PathIdIndex& path_ids) {
  auto db = Connection::Open(path, sqlite::OpenMode::kReadWrite, options.busy_timeout);
  if (!db.ok()) return db.status();
  if (absl::Status status = (*db)->Execute(
          consensus::Cat("PRAGMA query_only = ON; PRAGMA cache_size = -", options.reader_cache_kib,
                         "; PRAGMA mmap_size = ", options.mmap_bytes),
          "configuring a reader");
      !status.ok()) {
    return status;
  }
  auto reader = std::unique_ptr<Reader>(new Reader(std::move(*db), path_ids));
  for (absl::Status (Reader::*prepare)() : {&Reader::PreparePathsStatements, &Reader::PrepareDisputesStatements,
                                            &Reader::PrepareLogStatements, &Reader::PreparePeersStatements,
                                            &Reader::PrepareDerivationsStatements,
                                            &Reader::PrepareRealisationsStatements}) {
    if (absl::Status status = (reader.get()->*prepare)(); !status.ok()) return status;
  }
  return reader;
}

// Returns a reader to the pool when the call is done with it.
class SqliteAttestationStore::ReaderLease {
 public:
  ReaderLease(SqliteAttestationStore& store, std::unique_ptr<Reader> reader)
      : store_(store), reader_(std::move(reader)) {}
  ~ReaderLease() { store_.ReleaseReader(std::move(reader_)); }
  ReaderLease(const ReaderLease&) = delete;
  ReaderLease& operator=(const ReaderLease&) = delete;
  Reader* operator->() { return reader_.get(); }

 private:
  SqliteAttestationStore& store_;
  std::unique_ptr<Reader> reader_;
};

// ---------------------------------------------------------------------------------------------
// Checkpointer: copies the WAL back into the database file on its own thread and connection, so
// that writers only append to the WAL and fsync it. The writer's WAL hook nudges it; when the WAL
// still grows past a hard limit (the checkpointer cannot catch up while writes keep coming), the
// writer checkpoints itself and restarts the WAL, which bounds the WAL and the cost of reading it.

class SqliteAttestationStore::Checkpointer {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpointer>> Start(const std::string& path,
                                                             const SqliteOptions& options) {
    auto db = Connection::Open(path, sqlite::OpenMode::kReadWrite, options.busy_timeout);
    if (!db.ok()) return db.status();
    return std::unique_ptr<Checkpointer>(new Checkpointer(std::move(*db)));
  }

  ~Checkpointer() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    thread_.join();
  }

  void Nudge() {
    absl::MutexLock lock(&mu_);
    pending_ = true;
  }

 private:
  explicit Checkpointer(std::unique_ptr<Connection> db)
      : db_(std::move(db)), thread_([this] { Run(); }) {}

  void Run() {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Checkpointer* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->pending_ || self->stop_;
            },
            this));
        if (stop_) return;
        pending_ = false;
      }
      // A failure (another checkpoint running, a busy reader) is retried on the next nudge; the
      // writer's hard limit bounds the WAL meanwhile.
      db_->Checkpoint(Connection::CheckpointMode::kPassive).IgnoreError();
    }
  }

  std::unique_ptr<Connection> db_;
  absl::Mutex mu_;
  bool pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Opening

absl::StatusOr<std::unique_ptr<SqliteAttestationStore>> SqliteAttestationStore::Open(
    const std::string& path, const SqliteOptions& options) {
  if (options.max_readers < 1 || options.busy_retries < 0 ||
      options.busy_timeout < absl::ZeroDuration() || options.writer_cache_kib < 0 ||
      options.reader_cache_kib < 0 || options.mmap_bytes < 0 || options.checkpoint_pages < 1) {
    return absl::InvalidArgumentError(
        "SqliteOptions: max_readers and checkpoint_pages must be >= 1; retries, timeout, cache "
        "and mmap sizes >= 0");
  }
  return WithBusyRetries(
      options, [&]() -> absl::StatusOr<std::unique_ptr<SqliteAttestationStore>> {
        auto db = Connection::Open(path, sqlite::OpenMode::kReadWriteCreate, options.busy_timeout);
        if (!db.ok()) return db.status();
        // Refuse foreign and newer files before changing anything in them (journal mode included).
        auto identity = ReadIdentity(**db);
        if (!identity.ok()) return identity.status();
        if (absl::Status status = CheckIdentity(**db, *identity); !status.ok()) return status;
        if ((*db)->IsReadOnly()) {
          return absl::FailedPreconditionError(consensus::Cat(
              "database file ", path,
              " is read-only for this user: attestd needs to write it, its directory and its "
              "-wal and -shm files (check owner and permissions)"));
        }
        // The page size can only be chosen before the first table exists (and before WAL).
        if (identity->objects == 0) {
          if (absl::Status status = (*db)->Execute(
                  consensus::Cat("PRAGMA page_size = ", kPageSizeBytes), "choosing the page size");
              !status.ok()) {
            return status;
          }
        }
        auto journal_mode = (*db)->QueryText("PRAGMA journal_mode = WAL", "enabling WAL");
        if (!journal_mode.ok()) return journal_mode.status();
        if (*journal_mode != "wal") {
          return absl::FailedPreconditionError(consensus::Cat(
              "database file ", path, " cannot use WAL (journal mode stays ", *journal_mode,
              "): put it on a local file system that supports shared memory"));
        }
        // Option values are integers of this program's config, not outside input.
        if (absl::Status status = (*db)->Execute(
                consensus::Cat("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; "
                               "PRAGMA cache_size = -",
                               options.writer_cache_kib, "; PRAGMA mmap_size = ", options.mmap_bytes),
                "configuring the database");
            !status.ok()) {
          return status;
        }
        if (absl::Status status = CreateOrMigrate(**db); !status.ok()) return status;
        auto writer = Writer::Create(std::move(*db));
        if (!writer.ok()) return writer.status();
        auto checkpointer = Checkpointer::Start(path, options);
        if (!checkpointer.ok()) return checkpointer.status();
        // Replaces SQLite's automatic checkpoint, which would copy pages back into the file
        // inside the committing Write.
        Connection* writer_db = &(*writer)->connection();
        const int soft = options.checkpoint_pages;
        const int hard = options.checkpoint_pages * 4;
        (*writer)->connection().SetWalHook(
            [checkpointer = checkpointer->get(), writer_db, soft, hard](int pages) {
              if (pages >= hard) {
                writer_db->Checkpoint(Connection::CheckpointMode::kRestart).IgnoreError();
              } else if (pages >= soft) {
                checkpointer->Nudge();
              }
            });
        auto store = std::unique_ptr<SqliteAttestationStore>(new SqliteAttestationStore(
            path, options, std::move(*writer), std::move(*checkpointer)));
        if (absl::Status status = store->LoadPathIndex(); !status.ok()) return status;
        return store;
      });
}

SqliteAttestationStore::SqliteAttestationStore(std::string path, SqliteOptions options,
                                               std::unique_ptr<Writer> writer,
                                               std::unique_ptr<Checkpointer> checkpointer)
    : path_(std::move(path)),
      options_(options),
      writer_(std::move(writer)),
      path_ids_(std::make_unique<PathIdIndex>(options_.path_index_max_bytes, RandomSeed())),
      checkpointer_(std::move(checkpointer)) {}

absl::Status SqliteAttestationStore::LoadPathIndex() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LoadPathIndex(); });
}

SqliteAttestationStore::~SqliteAttestationStore() = default;

absl::StatusOr<std::unique_ptr<SqliteAttestationStore::Reader>>
SqliteAttestationStore::AcquireReader() {
  {
    absl::MutexLock lock(&pool_mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
      return !idle_readers_.empty() || open_readers_ < options_.max_readers;
    };
    pool_mu_.Await(absl::Condition(&available));
    if (!idle_readers_.empty()) {
      std::unique_ptr<Reader> reader = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return reader;
    }
    ++open_readers_;
  }
  auto reader = Reader::Open(path_, options_, *path_ids_);
  if (!reader.ok()) {
    absl::MutexLock lock(&pool_mu_);
    --open_readers_;
  }
  return reader;
}

void SqliteAttestationStore::ReleaseReader(std::unique_ptr<Reader> reader) {
  absl::MutexLock lock(&pool_mu_);
  idle_readers_.push_back(std::move(reader));
}

absl::StatusOr<std::vector<WriteOutcome>> SqliteAttestationStore::Write(const WriteBatch& batch) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    auto outcomes = writer_->WriteOnce(batch);
    if (!outcomes.ok()) writer_->ForgetUncommitted();
    return outcomes;
  });
}

absl::StatusOr<std::vector<std::vector<StoredAttestation>>> SqliteAttestationStore::AttestationsFor(
    std::span<const consensus::StorePath> paths) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AttestationsFor(paths); });
}

absl::StatusOr<std::vector<std::vector<StoredRealisation>>> SqliteAttestationStore::RealisationsFor(
    std::span<const consensus::RealisationKey> keys) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->RealisationsFor(keys); });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::RealisationKeysFor(
    const consensus::StorePath& out_path) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->RealisationKeysFor(out_path); });
}

absl::StatusOr<std::optional<StoredDispute>> SqliteAttestationStore::GetDispute(
    const std::string& id) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->GetDispute(id); });
}

absl::StatusOr<std::vector<StoredDispute>> SqliteAttestationStore::ListDisputes(
    const DisputeQuery& query) {
  if (query.limit < 1) {
    return absl::InvalidArgumentError("dispute page limit must be at least 1");
  }
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->ListDisputes(query); });
}

absl::StatusOr<int64_t> SqliteAttestationStore::CountDisputes(const DisputeQuery& query) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->CountDisputes(query); });
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::ResolutionsFor(const std::string& dispute_id) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->ResolutionsFor(dispute_id); });
}

absl::StatusOr<std::vector<StoredResolution>> SqliteAttestationStore::AllResolutions() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AllResolutions(); });
}

absl::StatusOr<std::vector<KeyAttestationCount>> SqliteAttestationStore::AttestationsPerKey() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->AttestationsPerKey(); });
}

absl::StatusOr<StoreStats> SqliteAttestationStore::Stats() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->Stats(); });
}

absl::StatusOr<SqliteAttestationStore::RecordCheck> SqliteAttestationStore::CheckPathRecords(int64_t after_id,
                                                                                           int limit) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->CheckPathRecords(after_id, limit); });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::QuickCheck() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->QuickCheck(); });
}

absl::StatusOr<LogHead> SqliteAttestationStore::GetLogHead() {
  absl::MutexLock lock(&write_mu_);
  return writer_->log_head();
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::LogEntries(uint64_t first,
                                                                            uint64_t count) {
  // The size first: entries below it are committed and never change.
  auto head = GetLogHead();
  if (!head.ok()) return head.status();
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LogEntries(first, count, head->size); });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::LogTiles(
    std::span<const consensus::TileId> tiles) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LogTiles(tiles); });
}

absl::Status SqliteAttestationStore::StoreCheckpoint(const StoredCheckpoint& checkpoint) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->StoreCheckpoint(checkpoint);
  });
}

absl::StatusOr<std::optional<PeerProgress>> SqliteAttestationStore::GetPeerProgress(const std::string& peer) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->GetPeerProgress(peer);
  });
}

absl::StatusOr<std::vector<RejectedEntry>> SqliteAttestationStore::RecentRejectedEntries(const std::string& peer,
                                                                                       int limit) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->RecentRejectedEntries(peer, limit);
  });
}

absl::StatusOr<std::vector<std::string>> SqliteAttestationStore::PeerLogEntries(const std::string& peer,
                                                                                 uint64_t first, uint64_t count) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->PeerLogEntries(peer, first, count); });
}

absl::StatusOr<int64_t> SqliteAttestationStore::CountRejectedEntries(const std::string& peer) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->CountRejectedEntries(peer);
  });
}

absl::Status SqliteAttestationStore::StoreForkEvidence(const ForkEvidence& evidence) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->StoreForkEvidence(evidence);
  });
}

absl::StatusOr<std::vector<ForkEvidence>> SqliteAttestationStore::ListForkEvidence() {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->ListForkEvidence();
  });
}

absl::StatusOr<std::optional<StoredCheckpoint>> SqliteAttestationStore::LatestCheckpoint() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->LatestCheckpoint(); });
}

absl::StatusOr<std::vector<WriteOutcome>> SqliteAttestationStore::PutDerivations(
    std::span<const StoredDerivation> derivations) {
  absl::MutexLock lock(&write_mu_);
  // A failed attempt rolled back everything it stored and left no cached ids (derivations use no
  // dictionaries), so it is simply tried again.
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    return writer_->PutDerivations(derivations);
  });
}

absl::StatusOr<std::vector<bool>> SqliteAttestationStore::HasDerivations(std::span<const consensus::StorePath> paths) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->HasDerivations(paths); });
}

absl::StatusOr<std::vector<std::optional<StoredDerivation>>> SqliteAttestationStore::GetDerivations(
    std::span<const consensus::StorePath> paths) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->GetDerivations(paths); });
}

absl::StatusOr<std::vector<std::vector<DerivationOfOutput>>> SqliteAttestationStore::DerivationsProducing(
    std::span<const consensus::StorePath> outputs) {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->DerivationsProducing(outputs); });
}

absl::StatusOr<std::optional<consensus::StorePath>> SqliteAttestationStore::OutputPathByHashPart(
    std::string_view hash_part) {
  if (absl::Status status = ValidateHashPart(hash_part); !status.ok()) return status;
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->OutputPathByHashPart(hash_part); });
}

absl::StatusOr<DerivationStats> SqliteAttestationStore::GetDerivationStats() {
  auto reader = AcquireReader();
  if (!reader.ok()) return reader.status();
  ReaderLease lease(*this, std::move(*reader));
  return WithBusyRetries(options_, [&] { return lease->GetDerivationStats(); });
}

absl::Status SqliteAttestationStore::PutPolicyLink(const StoredPolicyLink& link) {
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    absl::Status status = writer_->PutPolicyLink(link);
    // A rolled-back append must not stay in the writer's tree of the log.
    if (!status.ok()) writer_->ForgetUncommitted();
    return status;
  });
}

absl::StatusOr<std::vector<StoredPolicyLink>> SqliteAttestationStore::PolicyChain() {
  // On the writer's connection, as the peers' progress: the chain is read rarely (at start, for a
  // peer that is behind) and is a handful of rows.
  absl::MutexLock lock(&write_mu_);
  return WithBusyRetries(options_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) { return writer_->PolicyChain(); });
}

}  // namespace attest::storage
