#include "server/log_proofs.h"

#include <string>
#include <utility>
#include <vector>

#include "consensus/merkle.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/grpc_status.h"

namespace attest::server {
namespace {

using consensus::Cat;

absl::Status BeyondSigned(std::string_view what, uint64_t value, uint64_t signed_size, bool any_signed) {
  return absl::OutOfRangeError(Cat(what, " ", value, " exceeds the size of the latest signed checkpoint (",
                                   any_signed ? Cat(signed_size) : std::string("none signed yet"),
                                   "); ask for a tree size the checkpoint covers, or retry after the next one"));
}

template <typename Response>
void AddHashes(const std::vector<consensus::MerkleHash>& hashes, Response& response) {
  for (const consensus::MerkleHash& hash : hashes) {
    response.add_hashes(std::string(reinterpret_cast<const char*>(hash.data()), hash.size()));
  }
}

}  // namespace

LogProofs::LogProofs(storage::TransparencyLogStore* store, LogPublisher* publisher)
    : store_(store), publisher_(publisher) {}

absl::StatusOr<v1::GetCheckpointResponse> LogProofs::GetCheckpoint() const {
  const std::shared_ptr<const PublishedCheckpoint> checkpoint = publisher_->ForClient();
  const LogHealth health = publisher_->Health();
  if (checkpoint == nullptr) {
    return absl::NotFoundError(Cat("log ", publisher_->origin(), " has no signed checkpoint yet",
                                   health.problem.empty() ? std::string("; retry later")
                                                          : Cat(" (", health.problem, ")")));
  }
  v1::GetCheckpointResponse response;
  response.set_checkpoint(*checkpoint->note);
  response.set_size(checkpoint->size);
  if (health.frozen) response.set_publishing_error(health.problem);
  return response;
}

absl::StatusOr<v1::GetInclusionProofResponse> LogProofs::GetInclusionProof(
    const v1::GetInclusionProofRequest& request) const {
  const uint64_t index = request.index();
  const uint64_t size = request.tree_size();
  if (size == 0) return absl::InvalidArgumentError("tree_size is 0: an empty tree includes no leaf");
  if (index >= size) {
    return absl::InvalidArgumentError(Cat("index ", index, " is not below tree_size ", size,
                                          ": a tree of that size has leaves 0 to ", size - 1));
  }
  const std::shared_ptr<const PublishedCheckpoint> latest = publisher_->Latest();
  const uint64_t signed_size = latest ? latest->size : 0;
  if (size > signed_size) return BeyondSigned("tree_size", size, signed_size, latest != nullptr);

  const consensus::TileHashReader reader(size, StoredTileFetcher(store_));
  absl::StatusOr<std::vector<consensus::MerkleHash>> proof = consensus::InclusionProof(index, size, reader);
  if (!proof.ok()) {
    return StorageFailure(Cat("computing the inclusion proof of entry ", index, " in size ", size), proof.status());
  }
  absl::StatusOr<std::vector<std::string>> entry = store_->LogEntries(index, 1);
  if (!entry.ok()) return StorageFailure(Cat("reading log entry ", index), entry.status());
  if (entry->size() != 1) {
    return StorageFailure(Cat("reading log entry ", index),
                          absl::InternalError(Cat("LogEntries returned ", entry->size(), " entries for 1")));
  }
  v1::GetInclusionProofResponse response;
  AddHashes(*proof, response);
  response.set_entry(std::move(entry->front()));
  return response;
}

absl::StatusOr<v1::GetConsistencyProofResponse> LogProofs::GetConsistencyProof(
    const v1::GetConsistencyProofRequest& request) const {
  const uint64_t old_size = request.old_size();
  const uint64_t new_size = request.new_size();
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        Cat("old_size ", old_size, " exceeds new_size ", new_size, ": a log only grows, so ask from the smaller size"));
  }
  const std::shared_ptr<const PublishedCheckpoint> latest = publisher_->Latest();
  const uint64_t signed_size = latest ? latest->size : 0;
  if (new_size > signed_size) return BeyondSigned("new_size", new_size, signed_size, latest != nullptr);

  const consensus::TileHashReader reader(new_size, StoredTileFetcher(store_));
  absl::StatusOr<std::vector<consensus::MerkleHash>> proof = consensus::ConsistencyProof(old_size, new_size, reader);
  if (!proof.ok()) {
    return StorageFailure(Cat("computing the consistency proof from size ", old_size, " to ", new_size),
                          proof.status());
  }
  v1::GetConsistencyProofResponse response;
  AddHashes(*proof, response);
  return response;
}

}  // namespace attest::server
