#include "server/replication.h"

#include <algorithm>
#include <future>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/log_entry.h"
#include "consensus/merkle.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "consensus/tlog_tiles.h"
#include "server/log.h"
#include "server/peer_client.h"

namespace attest::server {

using consensus::Cat;
using consensus::StdView;

namespace {

// Each call to a peer is bounded by this; a stopping node interrupts them sooner.
constexpr absl::Duration kPeerCallTimeout = absl::Seconds(5);
constexpr int kRecentRejections = 100;
constexpr std::string_view kFederationPrefix = "/federation/";

std::string ShowRoot(const consensus::MerkleHash& root) {
  return consensus::Base64Encode(root);
}

}  // namespace

// One peer: its thread, its progress, and what it reports.
class Follower final {
 public:
  Follower(const PeerConfig& peer, consensus::PublicKey peer_key, const NodeConfig& config,
           PolicyBook* policy, const consensus::SecretKey& node_key, storage::PeerStore* store,
           Ingestor* ingestor, Clock clock)
      : peer_(peer),
        peer_key_(std::move(peer_key)),
        config_(config),
        policy_(policy),
        node_key_(node_key),
        store_(store),
        ingestor_(ingestor),
        clock_(std::move(clock)),
        client_(peer, kPeerCallTimeout, config.federation.max_backoff) {}

  ~Follower() { Stop(); }

  const PeerConfig& peer() const { return peer_; }

  absl::Status Load() {
    absl::StatusOr<std::optional<storage::PeerProgress>> progress = store_->GetPeerProgress(peer_.name);
    if (!progress.ok()) return progress.status();
    absl::StatusOr<std::vector<storage::ForkEvidence>> forks = store_->ListForkEvidence();
    if (!forks.ok()) return forks.status();
    absl::MutexLock lock(&mu_);
    if (progress->has_value()) {
      progress_ = **progress;
    } else {
      progress_.peer = peer_.name;
    }
    for (const storage::ForkEvidence& fork : *forks) {
      if (fork.peer == peer_.name) state_ = v1::PeerStatus::FORKED;
    }
    if (state_ == v1::PeerStatus::FORKED) last_error_ = "the peer forked its log (see the evidence); not followed";
    return absl::OkStatus();
  }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    client_.Cancel();
    if (thread_.joinable()) thread_.join();
  }

  void FillStatus(v1::PeerStatus& out) {
    absl::MutexLock lock(&mu_);
    out.set_name(peer_.name);
    out.set_grpc(peer_.grpc);
    out.set_http(peer_.http);
    out.set_public_key(peer_.public_key);
    out.set_state(state_);
    // The newest checkpoint whose signature verified, even when the round that saw it failed before
    // it was stored (its entries could not be fetched, say): the figures say what the peer claims
    // and how far this node is behind it, and lag = size - cursor always holds.
    const uint64_t peer_size = std::max(newest_seen_size_, progress_.checkpoint_size);
    out.set_peer_size(peer_size);
    out.set_cursor(progress_.cursor);
    out.set_lag_entries(peer_size - progress_.cursor);
    out.set_last_success_unix(last_success_unix_);
    out.set_last_error(last_error_);
    out.set_peer_policy_hash(peer_policy_hash_);
    out.set_cosigned_checkpoint(progress_.cosigned_checkpoint);
  }

  std::string CosignedCheckpoint() {
    absl::MutexLock lock(&mu_);
    return progress_.cosigned_checkpoint;
  }

 private:
  // The outcome of a round: OK, or what went wrong (kept as last_error).
  void Run() {
    absl::Duration backoff = config_.federation.poll_interval;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        if (state_ == v1::PeerStatus::FORKED) {
          mu_.Await(absl::Condition(&stopping_));
          return;
        }
      }
      absl::Status status = Round();
      absl::Duration wait = config_.federation.poll_interval;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        if (status.ok()) {
          if (!last_error_.empty()) LogInfo(Cat("following peer ", peer_.name, " again"));
          last_error_.clear();
          last_success_unix_ = absl::ToUnixSeconds(clock_());
          if (state_ != v1::PeerStatus::FORKED) state_ = v1::PeerStatus::FOLLOWING;
          backoff = config_.federation.poll_interval;
        } else {
          if (last_error_ != status.message()) {
            LogWarning(Cat("following peer ", peer_.name, ": ", StdView(status.message())));
          }
          last_error_ = std::string(StdView(status.message()));
          if (state_ == v1::PeerStatus::FOLLOWING) state_ = v1::PeerStatus::CONNECTING;
          wait = backoff;
          backoff = std::min(backoff * 2, config_.federation.max_backoff);
        }
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait);
      }
    }
  }

  void SetState(v1::PeerStatus::State state) {
    absl::MutexLock lock(&mu_);
    state_ = state;
  }

  // OK when the peer decides under this node's policy or one it led to (the peer is behind), or when
  // this node caught up with the peer by adopting the peer's links since its own policy, each verified
  // against the policy before it.
  absl::Status FollowPolicy(const std::string& peer_hash) {
    if (policy_->IsCurrentOrAncestor(peer_hash)) return absl::OkStatus();
    const std::string ours = policy_->current()->Hash();
    auto refuse = [&](std::string_view why) {
      return absl::FailedPreconditionError(
          Cat("the peer's policy ", peer_hash, " is not in this node's policy chain (this node decides under ", ours,
              "): not followed (", why, ")"));
    };
    absl::StatusOr<std::vector<PeerClient::ChainLink>> links = client_.PolicyChain(ours);
    if (links.status().code() == absl::StatusCode::kNotFound) {
      return refuse("the peer's chain does not contain this node's policy: the two are unrelated; the federation "
                    "must share one policy chain");
    }
    if (!links.ok()) {
      if (links.status().code() == absl::StatusCode::kInvalidArgument) {
        return refuse(Cat("its chain is malformed: ", StdView(links.status().message())));
      }
      if (links.status().code() == absl::StatusCode::kUnimplemented) {
        return refuse("the peer cannot hand on its policy chain (it runs a version without policy updates)");
      }
      return links.status();  // UNAVAILABLE and the like: asked again next round
    }
    if (links->empty()) return refuse("the peer answered no link after this node's policy");
    // The whole chain is verified before any of it is adopted: a peer whose chain breaks somewhere moves
    // this node nowhere, not part of the way.
    std::shared_ptr<const consensus::Policy> walked = policy_->current();
    bool reaches_peer = false;  // the peer may have moved on since it answered GetPolicy
    for (size_t i = 0; i < links->size(); ++i) {
      const PeerClient::ChainLink& link = (*links)[i];
      absl::StatusOr<consensus::Policy> next = consensus::VerifyPolicyLink(*walked, link.link, link.received_unix);
      if (!next.ok()) {
        return refuse(Cat("link ", i + 1, " of its chain does not verify: ", StdView(next.status().message())));
      }
      walked = std::make_shared<const consensus::Policy>(*std::move(next));
      reaches_peer = reaches_peer || walked->Hash() == peer_hash;
    }
    if (!reaches_peer) return refuse("its chain does not lead to the policy it decides under");
    for (const PeerClient::ChainLink& link : *links) {
      absl::StatusOr<PolicyBook::Adopted> adopted = policy_->Adopt(link.link, peer_.name, link.received_unix);
      if (!adopted.ok()) {
        // Another follower may have adopted the same link from another peer meanwhile.
        absl::StatusOr<consensus::Policy> linked = consensus::Policy::ParseToml(link.link.toml, "a peer's policy link");
        if (linked.ok() && policy_->IsCurrentOrAncestor(linked->Hash())) continue;
        switch (adopted.status().code()) {
          case absl::StatusCode::kInvalidArgument:
          case absl::StatusCode::kAlreadyExists:
          case absl::StatusCode::kFailedPrecondition:
          case absl::StatusCode::kPermissionDenied:
            return refuse(Cat("a link of its chain cannot be adopted: ", StdView(adopted.status().message())));
          default:
            return adopted.status();  // the store's trouble (UNAVAILABLE, ...): asked again next round
        }
      }
      LogPolicyAdoption(*adopted, Cat("peer ", peer_.name));
    }
    return absl::OkStatus();
  }

  absl::Status Round() {
    // 1. The policy.
    absl::StatusOr<std::string> policy_hash = client_.PolicyHash();
    if (!policy_hash.ok()) return policy_hash.status();
    {
      absl::MutexLock lock(&mu_);
      peer_policy_hash_ = *policy_hash;
    }
    if (absl::Status caught_up = FollowPolicy(*policy_hash); !caught_up.ok()) {
      SetState(v1::PeerStatus::POLICY_MISMATCH);
      return caught_up;
    }
    {
      absl::MutexLock lock(&mu_);
      if (state_ == v1::PeerStatus::POLICY_MISMATCH) state_ = v1::PeerStatus::CONNECTING;
    }

    // 2. The checkpoint.
    absl::StatusOr<std::string> note = client_.Checkpoint();
    if (!note.ok()) return note.status();
    absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(*note, peer_key_);
    if (!checkpoint.ok()) {
      return absl::Status(checkpoint.status().code(),
                          Cat("the peer's checkpoint does not verify with its key ", peer_.public_key, ": ",
                              StdView(checkpoint.status().message())));
    }
    {
      absl::MutexLock lock(&mu_);
      newest_seen_size_ = std::max(newest_seen_size_, checkpoint->size);
    }

    // 3. Consistency with the last verified checkpoint.
    storage::PeerProgress progress;
    {
      absl::MutexLock lock(&mu_);
      progress = progress_;
    }
    std::optional<consensus::Checkpoint> last;
    if (!progress.checkpoint.empty()) {
      absl::StatusOr<consensus::Checkpoint> parsed = consensus::VerifyCheckpoint(progress.checkpoint, peer_key_);
      if (!parsed.ok()) {
        return absl::DataLossError(Cat("the stored checkpoint of peer ", peer_.name,
                                       " no longer verifies: ", StdView(parsed.status().message())));
      }
      last = *parsed;
    }
    if (!last.has_value() || checkpoint->size > last->size) {
      if (last.has_value() && last->size > 0) {
        if (absl::Status s = CheckConsistent(*last, progress.checkpoint, *checkpoint, *note); !s.ok()) return s;
      }
      progress.checkpoint = *note;
      progress.checkpoint_size = checkpoint->size;
      progress.cosigned_checkpoint = CosignedNote(*note, *checkpoint);
      last = *checkpoint;
      if (progress.cursor == checkpoint->size) {
        // Nothing to fetch (an empty log): record the checkpoint itself.
        return Apply(PreparedBatch{.next = progress});
      }
    } else if (checkpoint->size == last->size) {
      if (checkpoint->root != last->root) {
        return Forked(progress.checkpoint, *note,
                      Cat("two checkpoints of size ", last->size, " with different roots (", ShowRoot(last->root),
                          " and ", ShowRoot(checkpoint->root), ")"));
      }
    } else {
      // An older checkpoint than the one verified (a cache, or a rollback): it must be a prefix.
      if (absl::Status s = CheckConsistent(*checkpoint, *note, *last, progress.checkpoint); !s.ok()) return s;
    }

    // 4. and 5. The entries up to the verified checkpoint, batch by batch. The next batch is
    // fetched, proven and parsed while the current one is verified and written.
    if (progress.cursor == last->size) return absl::OkStatus();
    absl::StatusOr<PreparedBatch> batch = PrepareBatch(progress, *last);
    while (true) {
      if (!batch.ok()) return batch.status();
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return absl::CancelledError("stopping");
      }
      std::future<absl::StatusOr<PreparedBatch>> following;
      if (batch->next.cursor < last->size) {
        // Its own copy of the progress: Apply below takes the batch apart.
        following = std::async(std::launch::async,
                               [this, next = batch->next, &last] { return PrepareBatch(next, *last); });
      }
      absl::Status applied = Apply(std::move(*batch));
      if (!following.valid()) return applied;
      absl::StatusOr<PreparedBatch> after = following.get();  // also on failure: it uses client_
      if (!applied.ok()) return applied;
      batch = std::move(after);
    }
  }

  // `older` (size m, note older_note) and `newer` (size n > m): the peer's proof must lead from one
  // root to the other, or the peer has forked.
  absl::Status CheckConsistent(const consensus::Checkpoint& older, const std::string& older_note,
                               const consensus::Checkpoint& newer, const std::string& newer_note) {
    if (older.size == 0) return absl::OkStatus();
    absl::StatusOr<std::vector<consensus::MerkleHash>> proof = client_.ConsistencyProof(older.size, newer.size);
    if (!proof.ok()) return proof.status();
    absl::Status verified = consensus::VerifyConsistency(older.size, newer.size, older.root, newer.root, *proof);
    if (verified.ok()) return absl::OkStatus();
    return Forked(older_note, newer_note,
                  Cat("the checkpoints of sizes ", older.size, " and ", newer.size,
                      " are not consistent: the peer's own consistency proof fails (", StdView(verified.message()), ")"));
  }

  absl::Status Forked(const std::string& first, const std::string& second, const std::string& reason) {
    storage::ForkEvidence evidence{.peer = peer_.name,
                                   .first_checkpoint = first,
                                   .second_checkpoint = second,
                                   .reason = reason,
                                   .detected_unix = absl::ToUnixSeconds(clock_())};
    if (absl::Status s = store_->StoreForkEvidence(evidence); !s.ok()) {
      return absl::Status(s.code(), Cat("storing the evidence that peer ", peer_.name, " forked: ", StdView(s.message())));
    }
    LogError(Cat("peer ", peer_.name, " forked its log: ", reason, "; evidence stored, the peer is no longer followed"));
    SetState(v1::PeerStatus::FORKED);
    return absl::AbortedError(Cat("the peer forked its log: ", reason, "; no longer followed"));
  }

  std::string CosignedNote(const std::string& note_text, const consensus::Checkpoint& checkpoint) {
    absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(note_text);
    if (!note.ok()) return "";
    absl::StatusOr<consensus::NoteSignature> cosignature =
        consensus::Cosign(checkpoint, static_cast<uint64_t>(std::max<int64_t>(0, absl::ToUnixSeconds(clock_()))), node_key_);
    if (!cosignature.ok()) {
      LogWarning(Cat("cannot cosign the checkpoint of peer ", peer_.name, ": ", StdView(cosignature.status().message())));
      return "";
    }
    note->signatures.push_back(*std::move(cosignature));
    return note->Serialize();
  }

  // A batch of the peer's entries, proven to be in its signed log, ready to be applied.
  struct PreparedBatch {
    storage::PeerProgress next;  // the progress once it is applied
    std::vector<ReplicatedAttestation> attestations;
    std::vector<ReplicatedRealisation> realisations;
    std::vector<ReplicatedResolution> resolutions;
    std::vector<storage::RejectedEntry> rejected;
    std::vector<std::string> entries;  // all of them, verbatim (ReplicationBatch::entries)
  };

  // Fetches, proves and parses entries [cursor, end) for the verified checkpoint `last`. Touches
  // nothing but client_ (never used by two threads at once) and its arguments.
  absl::StatusOr<PreparedBatch> PrepareBatch(const storage::PeerProgress& progress, const consensus::Checkpoint& last) {
    constexpr uint64_t kTile = consensus::kFullTileWidth;
    const uint64_t batch = std::max<uint64_t>(kTile, static_cast<uint64_t>(config_.federation.batch_entries) / kTile * kTile);
    uint64_t end = std::min(last.size, (progress.cursor + batch) / kTile * kTile);
    if (end <= progress.cursor) end = std::min(last.size, (progress.cursor / kTile + 1) * kTile);

    absl::StatusOr<consensus::CompactRange> range =
        consensus::CompactRange::FromHashes(progress.cursor, progress.frontier);
    if (!range.ok()) return absl::DataLossError(Cat("the stored frontier of peer ", peer_.name, ": ",
                                                    StdView(range.status().message())));
    std::vector<std::string> entries;
    entries.reserve(end - progress.cursor);
    for (uint64_t tile = progress.cursor / kTile; tile * kTile < end; ++tile) {
      const int width = static_cast<int>(std::min<uint64_t>(kTile, last.size - tile * kTile));
      absl::StatusOr<std::vector<std::string>> bundle = client_.EntryBundle(tile, width);
      if (!bundle.ok() && absl::IsNotFound(bundle.status()) && width < static_cast<int>(kTile)) {
        // The peer's log grew since the checkpoint, and it serves only the tiles of its latest one
        // (nodes before partial tiles of every signed size were served): a wider version of this
        // tile holds the same first entries.
        bundle = WiderBundle(tile);
      }
      if (!bundle.ok()) return bundle.status();
      const uint64_t first = std::max(progress.cursor, tile * kTile);
      const uint64_t stop = std::min(end, tile * kTile + bundle->size());
      for (uint64_t i = first; i < stop; ++i) entries.push_back(std::move((*bundle)[i - tile * kTile]));
    }
    if (entries.size() != end - progress.cursor) {
      return absl::InvalidArgumentError(Cat("the peer served ", entries.size(), " entries for [", progress.cursor,
                                            ", ", end, ")"));
    }
    for (const std::string& entry : entries) range->Append(consensus::LeafHash(entry));
    if (end == last.size) {
      if (range->Root() != last.root) {
        return absl::InvalidArgumentError(Cat("the peer's entries [", progress.cursor, ", ", end,
                                              ") do not lead to the root of its signed checkpoint of size ",
                                              last.size, ": not applied"));
      }
    } else {
      absl::StatusOr<std::vector<consensus::MerkleHash>> proof = client_.ConsistencyProof(end, last.size);
      if (!proof.ok()) return proof.status();
      if (absl::Status s = consensus::VerifyConsistency(end, last.size, range->Root(), last.root, *proof); !s.ok()) {
        return absl::InvalidArgumentError(Cat("the peer's entries [", progress.cursor, ", ", end,
                                              ") are not a prefix of its signed checkpoint of size ", last.size,
                                              " (", StdView(s.message()), "): not applied"));
      }
    }

    std::vector<std::string> kept = entries;
    std::vector<ReplicatedAttestation> attestations;
    std::vector<ReplicatedRealisation> realisations;
    std::vector<ReplicatedResolution> resolutions;
    std::vector<storage::RejectedEntry> rejected;
    const int64_t now_unix = absl::ToUnixSeconds(clock_());
    for (size_t i = 0; i < entries.size(); ++i) {
      const uint64_t index = progress.cursor + i;
      absl::StatusOr<consensus::LogEntry> parsed = consensus::ParseLogEntry(entries[i]);
      if (!parsed.ok()) {
        rejected.push_back(storage::RejectedEntry{.peer = peer_.name,
                                                  .index = index,
                                                  .reason = Cat("not a log entry: ", StdView(parsed.status().message())),
                                                  .entry = std::move(entries[i]),
                                                  .detected_unix = now_unix});
        continue;
      }
      // Maintainers' statements are stored as they are (and verified by the ingestor).
      if (parsed->kind == consensus::LogEntryKind::kResolution) {
        resolutions.push_back(
            ReplicatedResolution{.index = index, .entry = entries[i], .signed_note = std::move(parsed->note)});
        continue;
      }
      // The peer's dispute records are its own statements; this node makes its own from the
      // attestations. A peer's policy entries are not applied from its log: the node learns policies
      // through the peer's chain (GetPolicyChain), which it verifies link by link; the entry stays
      // among the peer's kept entries.
      // Realisation attestations are verified and stored like attestations (by the ingestor).
      if (parsed->kind == consensus::LogEntryKind::kRealisation) {
        realisations.push_back(ReplicatedRealisation{
            .index = index, .entry = std::move(entries[i]), .parsed = *std::move(parsed->realisation)});
        continue;
      }
      if (parsed->kind != consensus::LogEntryKind::kAttestation) continue;
      attestations.push_back(ReplicatedAttestation{
          .index = index, .entry = std::move(entries[i]), .parsed = *std::move(parsed->attestation)});
    }
    PreparedBatch prepared{.next = progress,
                           .attestations = std::move(attestations),
                           .realisations = std::move(realisations),
                           .resolutions = std::move(resolutions),
                           .rejected = std::move(rejected),
                           .entries = std::move(kept)};
    prepared.next.cursor = end;
    prepared.next.frontier.assign(range->hashes().begin(), range->hashes().end());
    return prepared;
  }

  // Tile `tile` at the width of the peer's current checkpoint (full when it is full by now). Only
  // the entries below the verified checkpoint are used, and they are proven against it.
  absl::StatusOr<std::vector<std::string>> WiderBundle(uint64_t tile) {
    absl::StatusOr<std::string> note = client_.Checkpoint();
    if (!note.ok()) return note.status();
    absl::StatusOr<consensus::Checkpoint> current = consensus::VerifyCheckpoint(*note, peer_key_);
    if (!current.ok()) return current.status();
    const uint64_t start = tile * consensus::kFullTileWidth;
    if (current->size <= start) return absl::NotFoundError(Cat("the peer's log no longer reaches tile ", tile));
    const int width = static_cast<int>(std::min<uint64_t>(consensus::kFullTileWidth, current->size - start));
    return client_.EntryBundle(tile, width);
  }

  absl::Status Apply(PreparedBatch prepared) {
    const storage::PeerProgress next = prepared.next;
    ReplicationBatch batch{.peer = peer_.name,
                           .attestations = std::move(prepared.attestations),
                           .realisations = std::move(prepared.realisations),
                           .resolutions = std::move(prepared.resolutions),
                           .rejected = std::move(prepared.rejected),
                           .progress = std::move(prepared.next),
                           .entries = std::move(prepared.entries)};
    absl::StatusOr<ReplicationCounts> counts = ingestor_->Replicate(std::move(batch));
    if (!counts.ok()) {
      return absl::Status(counts.status().code(),
                          Cat("storing entries of peer ", peer_.name, ": ", StdView(counts.status().message())));
    }
    if (counts->rejected > 0) {
      LogWarning(Cat("peer ", peer_.name, ": refused ", counts->rejected,
                     " entries whose attestation does not verify (see attest federation status)"));
    }
    absl::MutexLock lock(&mu_);
    progress_ = next;
    return absl::OkStatus();
  }

  const PeerConfig peer_;
  const consensus::PublicKey peer_key_;
  const NodeConfig& config_;
  PolicyBook* const policy_;
  const consensus::SecretKey& node_key_;
  storage::PeerStore* const store_;
  Ingestor* const ingestor_;
  const Clock clock_;
  PeerClient client_;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  storage::PeerProgress progress_ ABSL_GUARDED_BY(mu_);
  v1::PeerStatus::State state_ ABSL_GUARDED_BY(mu_) = v1::PeerStatus::CONNECTING;
  uint64_t newest_seen_size_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_success_unix_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  std::string peer_policy_hash_ ABSL_GUARDED_BY(mu_);
};

absl::Status Replicator::CheckPeers(const NodeConfig& config, const consensus::SecretKey& node_key) {
  for (const PeerConfig& peer : config.peers) {
    absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(peer.public_key);
    if (!key.ok()) {
      return absl::InvalidArgumentError(Cat(config.config_file, ": [[peer]] ", peer.grpc, ": key: ",
                                            StdView(key.status().message())));
    }
    if (key->name() == node_key.name()) {
      return absl::InvalidArgumentError(Cat(config.config_file, ": [[peer]] key ", peer.public_key,
                                            " has this node's own key name '", node_key.name(),
                                            "' (a node does not follow itself; every node needs its own key name)"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Sets the attest_peer_* gauges of `metrics` from the peers' status (one member per peer).
void SetPeerMetrics(MetricsRegistry& metrics, const v1::GetFederationStatusResponse& status) {
  GaugeFamily& lag = metrics.AddGauge("attest_peer_lag_entries",
                                      "Entries the peer's newest checkpoint holds beyond what this node applied.",
                                      {"peer"});
  GaugeFamily& cursor =
      metrics.AddGauge("attest_peer_cursor_entries", "Entries of the peer's log this node has applied.", {"peer"});
  GaugeFamily& size = metrics.AddGauge("attest_peer_checkpoint_size_entries",
                                       "Size of the peer's latest checkpoint this node verified.", {"peer"});
  GaugeFamily& success =
      metrics.AddGauge("attest_peer_last_success_timestamp_seconds",
                       "Unix time of the last successful replication round with the peer (0: never).", {"peer"});
  GaugeFamily& rejected = metrics.AddGauge("attest_peer_rejected_entries",
                                           "Entries of the peer's log this node refused (recorded as refused).",
                                           {"peer"});
  GaugeFamily& state = metrics.AddGauge(
      "attest_peer_state", "1 for the state the follower of the peer is in, 0 for the others.", {"peer", "state"});
  constexpr std::pair<v1::PeerStatus::State, std::string_view> kStates[] = {
      {v1::PeerStatus::CONNECTING, "connecting"},
      {v1::PeerStatus::FOLLOWING, "following"},
      {v1::PeerStatus::POLICY_MISMATCH, "policy_mismatch"},
      {v1::PeerStatus::FORKED, "forked"}};
  for (const v1::PeerStatus& peer : status.peers()) {
    const std::string_view name = peer.name();
    lag.Labels({name}).Set(static_cast<double>(peer.lag_entries()));
    cursor.Labels({name}).Set(static_cast<double>(peer.cursor()));
    size.Labels({name}).Set(static_cast<double>(peer.peer_size()));
    success.Labels({name}).Set(static_cast<double>(peer.last_success_unix()));
    rejected.Labels({name}).Set(static_cast<double>(peer.rejected_entries()));
    for (const auto& [value, label] : kStates) state.Labels({name, label}).Set(peer.state() == value ? 1 : 0);
  }
}

}  // namespace

Replicator::Replicator(const NodeConfig& config, PolicyBook* policy, const consensus::SecretKey& node_key,
                       storage::PeerStore* store, Ingestor* ingestor, Clock clock, MetricsRegistry* metrics)
    : config_(config), policy_(policy), node_key_(node_key), store_(store) {
  for (const PeerConfig& peer : config.peers) {
    absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(peer.public_key);
    if (!key.ok() || key->name() == node_key.name()) {
      LogError(Cat("[[peer]] ", peer.grpc, " is left out: its key is unusable (see Replicator::CheckPeers)"));
      continue;
    }
    PeerConfig named = peer;
    named.name = key->name();
    followers_.push_back(
        std::make_unique<Follower>(named, *std::move(key), config, policy, node_key, store, ingestor, clock));
  }
  if (metrics != nullptr && !followers_.empty()) {
    metrics->AddCollector([this, metrics]() -> absl::Status {
      v1::GetFederationStatusResponse status;
      for (auto& follower : followers_) {
        v1::PeerStatus* peer = status.add_peers();
        follower->FillStatus(*peer);
        absl::StatusOr<int64_t> rejected = store_->CountRejectedEntries(peer->name());
        if (!rejected.ok()) {
          return absl::Status(rejected.status().code(), Cat("counting the refused entries of peer ", peer->name(),
                                                            ": ", StdView(rejected.status().message())));
        }
        peer->set_rejected_entries(static_cast<uint64_t>(*rejected));
      }
      SetPeerMetrics(*metrics, status);
      return absl::OkStatus();
    });
  }
}

Replicator::~Replicator() { Stop(); }

absl::Status Replicator::Start() {
  for (auto& follower : followers_) {
    if (absl::Status s = follower->Load(); !s.ok()) {
      return absl::Status(s.code(), Cat("loading the progress of peer ", follower->peer().name, ": ",
                                        StdView(s.message())));
    }
  }
  for (auto& follower : followers_) follower->Start();
  return absl::OkStatus();
}

void Replicator::Stop() {
  for (auto& follower : followers_) follower->Stop();
}

absl::StatusOr<v1::GetFederationStatusResponse> Replicator::Status() {
  v1::GetFederationStatusResponse response;
  response.set_node(node_key_.name());
  response.set_policy_hash(policy_->current()->Hash());
  for (auto& follower : followers_) {
    v1::PeerStatus* peer = response.add_peers();
    follower->FillStatus(*peer);
    absl::StatusOr<int64_t> rejected = store_->CountRejectedEntries(peer->name());
    if (!rejected.ok()) return rejected.status();
    peer->set_rejected_entries(static_cast<uint64_t>(*rejected));
  }
  absl::StatusOr<std::vector<storage::ForkEvidence>> forks = store_->ListForkEvidence();
  if (!forks.ok()) return forks.status();
  for (const storage::ForkEvidence& fork : *forks) {
    v1::ForkEvidence* out = response.add_forks();
    out->set_peer(fork.peer);
    out->set_first_checkpoint(fork.first_checkpoint);
    out->set_second_checkpoint(fork.second_checkpoint);
    out->set_reason(fork.reason);
    out->set_detected_unix(fork.detected_unix);
  }
  absl::StatusOr<std::vector<storage::RejectedEntry>> rejected = store_->RecentRejectedEntries("", kRecentRejections);
  if (!rejected.ok()) return rejected.status();
  for (const storage::RejectedEntry& entry : *rejected) {
    v1::RejectedEntry* out = response.add_recent_rejections();
    out->set_peer(entry.peer);
    out->set_index(entry.index);
    out->set_reason(entry.reason);
    out->set_entry(entry.entry);
    out->set_detected_unix(entry.detected_unix);
  }
  return response;
}

std::optional<std::string> Replicator::CosignedCheckpoint(const std::string& peer) {
  for (auto& follower : followers_) {
    if (follower->peer().name != peer) continue;
    std::string note = follower->CosignedCheckpoint();
    if (note.empty()) return std::nullopt;
    return note;
  }
  return std::nullopt;
}

void Replicator::AddRoutes(HttpRouter& router) {
  // The peer's latest checkpoint this node verified, with its cosignature.
  auto cosigned_checkpoint = [this](const std::string& peer) {
    std::optional<std::string> note = CosignedCheckpoint(peer);
    if (!note.has_value()) {
      return HttpReply::Now(HttpResponse::Text(
          404, Cat("this node has not verified a checkpoint of a peer named '", peer, "' (yet)")));
    }
    HttpResponse response;
    response.headers.emplace_back("Cache-Control", "no-cache");
    response.body = *std::move(note);
    return HttpReply::Now(std::move(response));
  };
  router.Prefix(Cat(kFederationPrefix, "checkpoint/"), [cosigned_checkpoint](const HttpRequest& request) {
    return cosigned_checkpoint(
        std::string(request.path.substr(kFederationPrefix.size() + std::string_view("checkpoint/").size())));
  });
  // A mirror of each followed peer's log as this node applied it (what `attestd restore --from-peers`
  // reads when that peer lost its database): its latest verified checkpoint, cosigned, and entry
  // bundles in the tlog-tiles layout, any width whose entries this node holds.
  router.Prefix(Cat(kFederationPrefix, "mirror/"), [this, cosigned_checkpoint](const HttpRequest& request) {
    const std::string_view rest =
        std::string_view(request.path).substr(kFederationPrefix.size() + std::string_view("mirror/").size());
    constexpr std::string_view kCheckpoint = "/checkpoint";
    if (rest.ends_with(kCheckpoint)) {
      return cosigned_checkpoint(std::string(rest.substr(0, rest.size() - kCheckpoint.size())));
    }
    const size_t tiles = rest.rfind("/tile/entries/");
    if (tiles == std::string_view::npos) {
      return HttpReply::Now(HttpResponse::Text(
          404, "a mirror serves /federation/mirror/<peer>/checkpoint and /federation/mirror/<peer>/tile/entries/..."));
    }
    const std::string peer(rest.substr(0, tiles));
    absl::StatusOr<consensus::TileId> tile = consensus::ParseTilePath(rest.substr(tiles + 1));
    if (!tile.ok()) return HttpReply::Now(HttpResponse::Text(400, std::string(StdView(tile.status().message()))));
    const bool followed = std::any_of(followers_.begin(), followers_.end(),
                                      [&peer](const auto& follower) { return follower->peer().name == peer; });
    if (!followed) return HttpReply::Now(HttpResponse::Text(404, Cat("this node follows no peer named '", peer, "'")));
    return HttpReply::Later([this, peer, tile = *tile] {
      absl::StatusOr<std::vector<std::string>> entries =
          store_->PeerLogEntries(peer, tile.index * consensus::kFullTileWidth, static_cast<uint64_t>(tile.width));
      if (absl::IsNotFound(entries.status())) {
        HttpResponse response = HttpResponse::Text(404, std::string(StdView(entries.status().message())));
        response.headers.emplace_back("Cache-Control", "no-cache");
        return response;
      }
      if (!entries.ok()) return HttpResponse::Text(503, std::string(StdView(entries.status().message())));
      absl::StatusOr<std::string> bundle = consensus::EncodeEntryBundle(*entries);
      if (!bundle.ok()) return HttpResponse::Text(500, std::string(StdView(bundle.status().message())));
      HttpResponse response;
      response.content_type = "application/octet-stream";
      response.body = *std::move(bundle);
      return response;
    });
  });
  router.Prefix(Cat(kFederationPrefix, "fork/"), [this](const HttpRequest& request) {
    const std::string peer(request.path.substr(kFederationPrefix.size() + std::string_view("fork/").size()));
    return HttpReply::Later([this, peer] {
      absl::StatusOr<std::vector<storage::ForkEvidence>> forks = store_->ListForkEvidence();
      if (!forks.ok()) return HttpResponse::Text(503, std::string(StdView(forks.status().message())));
      for (const storage::ForkEvidence& fork : *forks) {
        if (fork.peer != peer) continue;
        HttpResponse response;
        response.body = Cat("peer ", fork.peer, " forked its log: ", fork.reason, "\ndetected ",
                            absl::FormatTime(absl::FromUnixSeconds(fork.detected_unix), absl::UTCTimeZone()),
                            "\n\nfirst checkpoint:\n\n", fork.first_checkpoint, "\nsecond checkpoint:\n\n",
                            fork.second_checkpoint);
        return response;
      }
      return HttpResponse::Text(404, Cat("no fork evidence about a peer named '", peer, "'"));
    });
  });
}

}  // namespace attest::server
