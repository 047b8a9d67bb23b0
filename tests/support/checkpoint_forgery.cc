#include "tests/support/checkpoint_forgery.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "consensus/checkpoint.h"
#include "consensus/merkle.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/log.h"

namespace attest::testing {
namespace {

using server::PublishedCheckpoint;

class Forger final {
 public:
  Forger(storage::TransparencyLogStore* log, const consensus::SecretKey& node_key) : log_(log), node_key_(node_key) {}

  std::shared_ptr<const PublishedCheckpoint> Serve(std::shared_ptr<const PublishedCheckpoint> genuine) {
    absl::MutexLock lock(&mu_);
    if (genuine->size == 0) return genuine;  // no leaf to alter
    if (forged_ == nullptr || forged_->size != genuine->size) {
      forged_ = Forge(*genuine);
      if (forged_ == nullptr) return genuine;
    }
    return answers_++ % 2 == 1 ? forged_ : genuine;
  }

 private:
  // The genuine tree with its last leaf hash altered, signed; null when the log cannot be read.
  std::shared_ptr<const PublishedCheckpoint> Forge(const PublishedCheckpoint& genuine) const {
    const consensus::TileHashReader reader(genuine.size, server::StoredTileFetcher(log_));
    absl::StatusOr<consensus::CompactRange> prefix = consensus::CompactRange::FromStored(genuine.size - 1, reader);
    const consensus::SubtreeId last_leaf{.level = 0, .index = genuine.size - 1};
    absl::StatusOr<std::vector<consensus::MerkleHash>> leaf =
        reader.ReadHashes(std::span<const consensus::SubtreeId>(&last_leaf, 1));
    if (!prefix.ok() || !leaf.ok() || leaf->size() != 1) {
      server::LogWarning(consensus::Cat("checkpoint forgery: cannot read the log to forge a checkpoint of size ",
                                        genuine.size, "; serving the genuine one"));
      return nullptr;
    }
    consensus::MerkleHash altered = leaf->front();
    altered[0] ^= 0x01;
    prefix->Append(altered);
    const consensus::Checkpoint forged{.origin = node_key_.name(), .size = genuine.size, .root = prefix->Root()};
    absl::StatusOr<consensus::SignedNote> note = consensus::SignCheckpoint(forged, node_key_);
    if (!note.ok()) {
      server::LogWarning(consensus::Cat("checkpoint forgery: signing failed: ", consensus::StdView(note.status().message())));
      return nullptr;
    }
    return std::make_shared<const PublishedCheckpoint>(PublishedCheckpoint{
        .size = forged.size, .root = forged.root, .note = std::make_shared<const std::string>(note->Serialize())});
  }

  storage::TransparencyLogStore* const log_;
  const consensus::SecretKey& node_key_;
  absl::Mutex mu_;
  std::shared_ptr<const PublishedCheckpoint> forged_ ABSL_GUARDED_BY(mu_);
  uint64_t answers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

server::CheckpointServing ForgeEveryOtherCheckpoint(storage::TransparencyLogStore* log,
                                                    const consensus::SecretKey& node_key) {
  server::LogWarning(consensus::Cat("test build: the log ", node_key.name(),
                                    " hands out a second, forged checkpoint of every size to every other request"));
  auto forger = std::make_shared<Forger>(log, node_key);
  return [forger](std::shared_ptr<const PublishedCheckpoint> genuine) { return forger->Serve(std::move(genuine)); };
}

}  // namespace attest::testing
