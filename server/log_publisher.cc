#include "server/log_publisher.h"

#include <algorithm>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "server/checkpoint_file.h"
#include "server/log.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

std::string ShowRoot(const consensus::MerkleHash& root) { return consensus::Base64Encode(root); }

std::shared_ptr<const PublishedCheckpoint> MakePublished(uint64_t size, const consensus::MerkleHash& root,
                                                         std::string note) {
  return std::make_shared<const PublishedCheckpoint>(
      PublishedCheckpoint{.size = size, .root = root, .note = std::make_shared<const std::string>(std::move(note))});
}

}  // namespace

consensus::TileFetcher StoredTileFetcher(storage::TransparencyLogStore* store) {
  return [store](std::span<const consensus::TileId> tiles) { return store->LogTiles(tiles); };
}

LogPublisher::LogPublisher(storage::TransparencyLogStore* store, const consensus::SecretKey& node_key, Clock clock,
                           LogPublisherOptions options)
    : store_(store), node_key_(node_key), origin_(node_key.name()), clock_(std::move(clock)), options_(options) {}

LogPublisher::~LogPublisher() { Stop(); }

void LogPublisher::Start() {
  PublishNow().IgnoreError();  // reported through Health() and the log
  if (const auto latest = Latest()) {
    LogInfo(Cat("log ", origin_, ": serving the checkpoint of size ", latest->size));
  }
  absl::MutexLock lock(&run_mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void LogPublisher::Stop() {
  {
    absl::MutexLock lock(&run_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void LogPublisher::Run() {
  run_mu_.Lock();
  while (!stopping_) {
    run_mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval);
    if (stopping_) break;
    run_mu_.Unlock();
    // The outcome is reported through Health() and the log.
    PublishNow().IgnoreError();
    run_mu_.Lock();
  }
  run_mu_.Unlock();
}

std::shared_ptr<const PublishedCheckpoint> LogPublisher::Latest() const {
  absl::MutexLock lock(&state_mu_);
  return latest_;
}

std::shared_ptr<const PublishedCheckpoint> LogPublisher::ForClient() const {
  std::shared_ptr<const PublishedCheckpoint> latest = Latest();
  if (latest == nullptr || !options_.serve_checkpoint) return latest;
  return options_.serve_checkpoint(std::move(latest));
}

LogHealth LogPublisher::Health() const {
  absl::MutexLock lock(&state_mu_);
  return health_;
}

absl::Status LogPublisher::PublishNow() {
  absl::MutexLock lock(&publish_mu_);
  absl::Status status = PublishLocked();
  if (status.ok()) status = RecordLatest();
  return Report(std::move(status));
}

absl::Status LogPublisher::RecordLatest() {
  const std::shared_ptr<const PublishedCheckpoint> latest = Latest();
  if (options_.checkpoint_file == nullptr || latest == nullptr) return absl::OkStatus();
  if (recorded_ && recorded_size_ == latest->size) return absl::OkStatus();
  if (absl::Status s = options_.checkpoint_file->Record(*latest->note); !s.ok()) {
    detail_ = std::string(StdView(s.message()));
    return absl::Status(s.code(), "recording the signed checkpoint beside the database failed (details are in "
                                  "the node's log); a database that is later emptied would go unnoticed");
  }
  recorded_ = true;
  recorded_size_ = latest->size;
  return absl::OkStatus();
}

absl::Status LogPublisher::StorageError(std::string_view action, const absl::Status& status) {
  detail_ = Cat(action, " failed: ", StdView(status.message()));
  absl::Status safe(status.code(), consensus::AbslView(Cat(action, " failed: the node's storage answered ",
                                                           StdView(absl::StatusCodeToString(status.code())),
                                                           " (details are in the node's log)")));
  // Corrupt storage does not heal by waiting.
  if (status.code() == absl::StatusCode::kDataLoss) return Freeze(std::move(safe));
  return safe;
}

absl::Status LogPublisher::PublishLocked() {
  if (!frozen_.ok()) {
    return absl::FailedPreconditionError(
        Cat("log publishing is stopped until the node restarts: ", StdView(frozen_.message())));
  }
  if (!loaded_) {
    if (absl::Status s = LoadLatestLocked(); !s.ok()) return s;
  }
  absl::StatusOr<storage::LogHead> head = store_->GetLogHead();
  if (!head.ok()) return StorageError("reading the log head", head.status());
  const std::shared_ptr<const PublishedCheckpoint> last = Latest();
  if (last != nullptr) {
    if (head->size < last->size) {
      return Freeze(absl::DataLossError(Cat(
          "the log holds ", head->size, " entries but a checkpoint of size ", last->size,
          " was signed: entries were lost (was the database restored from an old backup?); a log never "
          "shrinks, so this one cannot go on (start a new log with a new node key)")));
    }
    if (head->size == last->size) {
      if (head->root != last->root) {
        return Freeze(absl::DataLossError(Cat("the log's root at size ", head->size, " (", ShowRoot(head->root),
                                              ") differs from the signed checkpoint of that size (",
                                              ShowRoot(last->root), ")")));
      }
      return absl::OkStatus();  // nothing new
    }
  }
  if (absl::Status s = CheckStoredLog(*head, last.get()); !s.ok()) return s;
  return Sign(*head);
}

absl::Status LogPublisher::LoadLatestLocked() {
  absl::StatusOr<std::optional<storage::StoredCheckpoint>> stored = store_->LatestCheckpoint();
  if (!stored.ok()) return StorageError("reading the latest checkpoint", stored.status());
  if (stored->has_value()) {
    const storage::StoredCheckpoint& checkpoint = **stored;
    absl::StatusOr<consensus::Checkpoint> verified =
        consensus::VerifyCheckpoint(checkpoint.note, node_key_.public_key());
    if (!verified.ok()) {
      return Freeze(absl::DataLossError(
          Cat("the stored checkpoint of size ", checkpoint.size, " does not verify with the node key ",
              node_key_.name(), ": ", StdView(verified.status().message()),
              " (a log keeps its key for life: was the node key replaced?)")));
    }
    if (verified->size != checkpoint.size || verified->root != checkpoint.root) {
      return Freeze(absl::DataLossError(Cat("the stored checkpoint recorded as size ", checkpoint.size,
                                            " signs size ", verified->size, " and root ",
                                            ShowRoot(verified->root))));
    }
    auto published = MakePublished(checkpoint.size, checkpoint.root, checkpoint.note);
    absl::MutexLock lock(&state_mu_);
    latest_ = published;
    health_.has_checkpoint = true;
    health_.signed_size = checkpoint.size;
  }
  loaded_ = true;
  return absl::OkStatus();
}

absl::Status LogPublisher::CheckStoredLog(const storage::LogHead& head, const PublishedCheckpoint* last) {
  const uint64_t size = head.size;
  const consensus::TileHashReader reader(size, StoredTileFetcher(store_));
  absl::StatusOr<consensus::MerkleHash> root = consensus::TreeHash(size, reader);
  if (!root.ok()) {
    return StorageError(Cat("recomputing the log's root at size ", size, " from its tiles"), root.status());
  }
  if (*root != head.root) {
    return Freeze(absl::DataLossError(Cat("the log's root at size ", size, " recomputed from the stored tiles (",
                                          ShowRoot(*root), ") differs from the root the writer kept (",
                                          ShowRoot(head.root), ")")));
  }
  if (last != nullptr && last->size > 0) {
    absl::StatusOr<std::vector<consensus::MerkleHash>> proof =
        consensus::ConsistencyProof(last->size, size, reader);
    if (!proof.ok()) {
      return StorageError(Cat("proving size ", size, " consistent with size ", last->size), proof.status());
    }
    if (absl::Status s = consensus::VerifyConsistency(last->size, size, last->root, *root, *proof); !s.ok()) {
      return Freeze(absl::DataLossError(Cat("the stored log of size ", size,
                                            " does not extend the signed checkpoint of size ", last->size, ": ",
                                            StdView(s.message()))));
    }
  }

  // Every entry appended since the last checkpoint must hash to its leaf in the stored tiles, one
  // level-0 tile (and entry bundle) at a time.
  for (uint64_t first = last != nullptr ? last->size : 0; first < size;) {
    const uint64_t n = first / consensus::kFullTileWidth;
    const consensus::TileId tile = *consensus::TileForSize(0, n, size);
    const uint64_t tile_start = n * consensus::kFullTileWidth;
    const uint64_t end = tile_start + static_cast<uint64_t>(tile.width);
    const uint64_t count = end - first;
    absl::StatusOr<std::vector<std::string>> tiles = store_->LogTiles(std::span<const consensus::TileId>(&tile, 1));
    if (!tiles.ok()) return StorageError(Cat("reading ", consensus::TilePath(tile)), tiles.status());
    const size_t want = static_cast<size_t>(tile.width) * consensus::kTileHashBytes;
    if (tiles->size() != 1 || tiles->front().size() != want) {
      return Freeze(absl::DataLossError(Cat("the store returned ", tiles->size() == 1 ? tiles->front().size() : 0,
                                            " bytes for ", consensus::TilePath(tile), "; expected ", want)));
    }
    absl::StatusOr<std::vector<std::string>> entries = store_->LogEntries(first, count);
    if (!entries.ok()) {
      return StorageError(Cat("reading log entries ", first, " to ", end - 1), entries.status());
    }
    if (entries->size() != count) {
      return Freeze(absl::DataLossError(
          Cat("the store returned ", entries->size(), " entries for ", count, " (from entry ", first, ")")));
    }
    const std::string& hashes = tiles->front();
    for (uint64_t i = 0; i < count; ++i) {
      const consensus::MerkleHash leaf = consensus::LeafHash((*entries)[i]);
      const size_t offset = static_cast<size_t>(first - tile_start + i) * consensus::kTileHashBytes;
      if (!std::equal(leaf.begin(), leaf.end(), reinterpret_cast<const uint8_t*>(hashes.data() + offset))) {
        return Freeze(absl::DataLossError(Cat("log entry ", first + i, " does not hash to its leaf hash in ",
                                              consensus::TilePath(tile), " (the entry or the tile was altered)")));
      }
    }
    first = end;
  }
  return absl::OkStatus();
}

absl::Status LogPublisher::Sign(const storage::LogHead& head) {
  const consensus::Checkpoint checkpoint{.origin = origin_, .size = head.size, .root = head.root};
  absl::StatusOr<consensus::SignedNote> note = consensus::SignCheckpoint(checkpoint, node_key_);
  if (!note.ok()) {
    return Freeze(absl::InternalError(
        Cat("signing the checkpoint of size ", head.size, ": ", StdView(note.status().message()))));
  }
  std::string text = note->Serialize();
  const storage::StoredCheckpoint stored{
      .size = head.size, .root = head.root, .note = text, .signed_unix = absl::ToUnixSeconds(clock_())};
  if (absl::Status s = store_->StoreCheckpoint(stored); !s.ok()) {
    if (s.code() == absl::StatusCode::kAlreadyExists) {
      detail_ = Cat("storing the checkpoint of size ", head.size, ": ", StdView(s.message()));
      return Freeze(absl::AlreadyExistsError(
          Cat("the store already holds a checkpoint of size ", head.size, " with another root than ",
              ShowRoot(head.root), ": signing this one would fork the log")));
    }
    return StorageError(Cat("storing the checkpoint of size ", head.size), s);
  }
  auto published = MakePublished(head.size, head.root, std::move(text));
  {
    absl::MutexLock lock(&state_mu_);
    latest_ = published;
    health_.has_checkpoint = true;
    health_.signed_size = head.size;
  }
  return absl::OkStatus();
}

absl::Status LogPublisher::Freeze(absl::Status status) {
  frozen_ = status;
  const std::shared_ptr<const PublishedCheckpoint> last = Latest();
  LogError(Cat("log publishing stopped: ", detail_.empty() ? StdView(status.message()) : std::string_view(detail_),
               "; the node signs no further checkpoint of log ", origin_, " and keeps serving ",
               last ? Cat("the checkpoint of size ", last->size) : std::string("no checkpoint"),
               " (a restart checks again)"));
  detail_.clear();
  last_problem_ = status;
  absl::MutexLock lock(&state_mu_);
  health_.frozen = true;
  health_.problem = std::string(StdView(status.message()));
  return status;
}

absl::Status LogPublisher::Report(absl::Status status) {
  if (status.ok()) {
    if (!last_problem_.ok()) {
      const std::shared_ptr<const PublishedCheckpoint> last = Latest();
      LogInfo(Cat("log publishing works again: log ", origin_, " serves the checkpoint of size ",
                  last ? last->size : 0));
    }
    last_problem_ = absl::OkStatus();
    absl::MutexLock lock(&state_mu_);
    health_.problem.clear();
    return status;
  }
  // Freeze logged its problem already; a frozen publisher's later refusals repeat it.
  if (frozen_.ok() && status != last_problem_) {
    LogError(Cat("log publishing: ", detail_.empty() ? StdView(status.message()) : std::string_view(detail_)));
  }
  detail_.clear();
  last_problem_ = status;
  absl::MutexLock lock(&state_mu_);
  if (frozen_.ok()) health_.problem = std::string(StdView(status.message()));
  return status;
}

}  // namespace attest::server
