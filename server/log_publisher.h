// LogPublisher: signs the checkpoints of the node's own transparency log, and holds the one it serves.
//
// The ingest writer appends to the log inside its write transaction (WriteBatch::log_append); the
// store keeps the log's head (size and root, kept incrementally by the writer), its hash tiles and a
// way to rebuild every entry. The publisher turns that into signed checkpoints (C2SP tlog-checkpoint,
// origin = the node key's name). On Start, then every `interval` when the log grew, or on PublishNow:
//   1. It re-derives what it is about to sign from storage (reference 9.8 rule 2): the root of the
//      head's size from the stored tiles (TreeHash over a TileHashReader) must equal the head's root;
//      a consistency proof from the same tiles must link the last signed checkpoint to that root (the
//      new tree extends what was signed); every entry appended since the last signed checkpoint
//      (store.LogEntries) must hash (LeafHash) to its level-0 tile hash.
//   2. It signs the checkpoint and stores it (StoreCheckpoint) before serving it.
// A failed check, a log smaller than the last signed size, a stored checkpoint that does not verify,
// or a store that already holds another root for the size (ALREADY_EXISTS) freezes publishing (rule
// 3): nothing is signed any more until the node restarts (which checks again), the error is logged
// once and shown by Health(), and the last good checkpoint keeps being served. Other storage errors
// (a busy database) are shown by Health() and retried at the next tick. A size below the last signed
// one is never signed.
//
// What a client that asks for the checkpoint is handed (ForClient) is the latest signed one, unless the
// node was given a CheckpointServing (LogPublisherOptions::serve_checkpoint, NodeOptions): tests of
// fork detection inject one that hands out a forged second checkpoint (tests/support/checkpoint_forgery.h).
//
// Thread-safe. The store and the key are borrowed and must outlive the publisher.
#ifndef ATTEST_SERVER_LOG_PUBLISHER_H_
#define ATTEST_SERVER_LOG_PUBLISHER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "consensus/keys.h"
#include "consensus/merkle.h"
#include "consensus/tlog_tiles.h"
#include "storage/transparency_log_store.h"

namespace attest::server {

// A signed checkpoint as served.
struct PublishedCheckpoint final {
  uint64_t size = 0;
  consensus::MerkleHash root{};
  std::shared_ptr<const std::string> note;  // the signed note, serialised (never null)
};

// Maps the latest signed checkpoint (never null) to the one a client that asks for the checkpoint is
// handed (/log/checkpoint, LogService.GetCheckpoint); tiles and proofs always follow the genuine one.
// Called concurrently from request threads; must not return null.
using CheckpointServing =
    std::function<std::shared_ptr<const PublishedCheckpoint>(std::shared_ptr<const PublishedCheckpoint> latest)>;

class SignedCheckpointFile;  // server/checkpoint_file.h

struct LogPublisherOptions final {
  absl::Duration interval = absl::Seconds(1);  // how often the log head is polled
  // Null: clients get the latest signed checkpoint (every real node). See CheckpointServing.
  CheckpointServing serve_checkpoint;
  // Where the newest signed checkpoint is also kept, outside the database (server/checkpoint_file.h);
  // borrowed, null for none. Written after each checkpoint is stored, and at the first attempt after
  // Start (a database from before the file existed). A failed write is a problem shown by Health()
  // and retried at the next tick; it does not stop publishing.
  const SignedCheckpointFile* checkpoint_file = nullptr;
};

struct LogHealth final {
  bool has_checkpoint = false;
  uint64_t signed_size = 0;  // of the served checkpoint (0 without one)
  bool frozen = false;       // publishing stopped for good (until restart)
  // What went wrong at the last attempt, fit for clients (no file names or SQL); "" when it went fine.
  std::string problem;
};

// Reads the node's stored hash tiles (store.LogTiles), for TileHashReader.
consensus::TileFetcher StoredTileFetcher(storage::TransparencyLogStore* store);

class LogPublisher final {
 public:
  using Clock = std::function<absl::Time()>;

  // Precondition: node_key.name() passes consensus::ValidateLogOrigin (Node::Open checks it). `store`
  // and `node_key` must outlive the publisher (the key is not copied: it is secret material).
  LogPublisher(storage::TransparencyLogStore* store, const consensus::SecretKey& node_key, Clock clock,
               LogPublisherOptions options);
  ~LogPublisher();
  LogPublisher(const LogPublisher&) = delete;
  LogPublisher& operator=(const LogPublisher&) = delete;

  // Publishes once (synchronously, so a started node serves a checkpoint of what it holds), then polls
  // every `interval` on its own thread. Problems are reported through Health(), not returned.
  void Start();
  // Stops the polling thread (waits for an attempt in progress). Idempotent.
  void Stop();

  // Signs a checkpoint of the log's current size when it grew since the last one (no-op otherwise).
  // OK when the served checkpoint then covers the size read. Errors:
  //   DATA_LOSS            a check failed, or the store reported corruption (publishing is frozen from
  //                        now on)
  //   ALREADY_EXISTS       the store holds another root for this size (frozen)
  //   INTERNAL             the checkpoint could not be signed (a bug; frozen)
  //   FAILED_PRECONDITION  publishing was frozen earlier
  //   what the store returned (UNAVAILABLE, ...), with a client-safe message; retried later
  absl::Status PublishNow();

  // The latest signed checkpoint: tiles and proofs are served for its size. nullptr before the first.
  std::shared_ptr<const PublishedCheckpoint> Latest() const;
  // The checkpoint to give a client that asks for it: Latest(), or what options.serve_checkpoint makes
  // of it. nullptr before the first.
  std::shared_ptr<const PublishedCheckpoint> ForClient() const;

  LogHealth Health() const;
  const std::string& origin() const { return origin_; }

 private:
  absl::Status PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status LoadLatestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // Step 1 of the file comment, for a log head of `head` after the checkpoint `last` (may be null).
  absl::Status CheckStoredLog(const storage::LogHead& head, const PublishedCheckpoint* last)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  absl::Status Sign(const storage::LogHead& head) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // Writes the latest checkpoint to options_.checkpoint_file unless it holds it already.
  absl::Status RecordLatest() ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // Records the outcome of an attempt: logs a problem when it is new, and recovery.
  absl::Status Report(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // Freezes publishing with `status` (an integrity failure), logs it and returns it.
  absl::Status Freeze(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  // A store error: keeps its detail for the node's log and returns the code with a client-safe
  // message; DATA_LOSS freezes.
  absl::Status StorageError(std::string_view action, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(publish_mu_);
  void Run();

  storage::TransparencyLogStore* const store_;
  const consensus::SecretKey& node_key_;  // must outlive the publisher
  const std::string origin_;
  const Clock clock_;
  const LogPublisherOptions options_;

  // Held for a whole attempt: one publisher at a time.
  absl::Mutex publish_mu_;
  bool loaded_ ABSL_GUARDED_BY(publish_mu_) = false;
  uint64_t recorded_size_ ABSL_GUARDED_BY(publish_mu_) = 0;  // in the checkpoint file, when recorded_
  bool recorded_ ABSL_GUARDED_BY(publish_mu_) = false;
  absl::Status frozen_ ABSL_GUARDED_BY(publish_mu_);
  absl::Status last_problem_ ABSL_GUARDED_BY(publish_mu_);
  std::string detail_ ABSL_GUARDED_BY(publish_mu_);  // of the problem being reported, for the log

  // What is served; short critical sections only.
  mutable absl::Mutex state_mu_;
  std::shared_ptr<const PublishedCheckpoint> latest_ ABSL_GUARDED_BY(state_mu_);
  LogHealth health_ ABSL_GUARDED_BY(state_mu_);

  absl::Mutex run_mu_;
  bool stopping_ ABSL_GUARDED_BY(run_mu_) = false;
  std::thread thread_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_LOG_PUBLISHER_H_
