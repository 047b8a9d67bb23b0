// Node: one attestd. Open() builds everything the config names (policy, node key, store (SQLite unless
// NodeOptions names another),
// ingest pipeline, query handlers, log publisher, gRPC services) without listening; Start() publishes
// the log's checkpoint, then binds the gRPC port (with health checking and reflection) and the HTTP
// port; Shutdown() stops taking calls, drains the ones in flight until a deadline and stops.
//
// Thread-safety: Open, Start and Shutdown are called from one thread (main); everything the node serves
// runs on gRPC and pool threads. Destruction shuts down (deadline: now) when Shutdown was not called.
#ifndef ATTEST_SERVER_NODE_H_
#define ATTEST_SERVER_NODE_H_

#include <functional>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/keys.h"
#include "consensus/policy.h"
#include "server/checkpoint_file.h"
#include "server/dispute_differ.h"
#include "server/dispute_view.h"
#include "server/gateway.h"
#include "server/grpc_services.h"
#include "server/http_server.h"
#include "server/ingest.h"
#include "server/log_http.h"
#include "server/log_proofs.h"
#include "server/log_publisher.h"
#include "server/metrics.h"
#include "server/nar_source_status.h"
#include "server/node_config.h"
#include "server/policy_book.h"
#include "server/replication.h"
#include "server/resolution_book.h"
#include "server/scrubber.h"
#include "server/status_query.h"
#include "server/nar_relay.h"
#include "server/demand_book.h"
#include "server/derivation_intake.h"
#include "server/rebuild_book.h"
#include "server/rebuild_handler.h"
#include "server/rebuild_queue.h"
#include "server/upstream.h"
#include "storage/nar_cache.h"
#include "server/worker_pool.h"
#include "storage/attestation_store.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::server {

// The federation's policy and the node's key, as the config names them, read and checked as Node::Open
// does (errors as Open's for those files). For tools that work on a node's data offline (restore).
struct PolicyAndKey final {
  consensus::Policy policy;
  consensus::SecretKey key;
};
absl::StatusOr<PolicyAndKey> LoadPolicyAndKey(const NodeConfig& config);

// The store a node runs on and, when it is SQLite, the same object as SQLite (its path rows are
// scrubbed, attestd --check-database runs SQLite's quick_check); null otherwise.
struct NodeStore final {
  std::unique_ptr<storage::AttestationStore> store;
  storage::SqliteAttestationStore* sqlite = nullptr;
};
// Opens the store for `config`. Called last by Node::Open, which prefixes errors with the config's
// database path.
using StoreFactory = std::function<absl::StatusOr<NodeStore>(const NodeConfig& config)>;
// The default: SqliteAttestationStore at config.database_path ([node] database), created when absent.
absl::StatusOr<NodeStore> OpenSqliteStore(const NodeConfig& config);

// Makes what clients are handed when they ask for the log's checkpoint (LogPublisherOptions::
// serve_checkpoint), given the node's log and key; both outlive what it returns.
using CheckpointServingFactory =
    std::function<CheckpointServing(storage::TransparencyLogStore* log, const consensus::SecretKey& node_key)>;

struct NodeOptions final {
  // The node's notion of now (tests pass a fixed or stepping clock).
  Clock clock = [] { return absl::Now(); };
  // Where the node keeps its state (tests pass a MemoryAttestationStore).
  StoreFactory open_store = OpenSqliteStore;
  // Null (every real node): clients get the latest signed checkpoint. Tests of fork detection pass a
  // forger (tests/support/checkpoint_forgery.h).
  CheckpointServingFactory serve_checkpoint;
};

class Node final {
 public:
  // Errors name the file and the problem ("<file>: <problem>", or "<file>:<line>:<col>: <problem>" for
  // TOML), with the code of the failure:
  //   INVALID_ARGUMENT     the config does not validate; the policy or the key file is malformed, or
  //                        the key's name cannot be a log origin (consensus::ValidateLogOrigin)
  //   NOT_FOUND            the policy or key file, or the database's directory, does not exist
  //   FAILED_PRECONDITION  a file cannot be read, or the database cannot be opened for writing / is
  //                        another application's / has a newer schema
  //   DATA_LOSS            the database file is corrupt
  static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeConfig& config);
  // Same, with the node's clock (tests).
  static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeConfig& config, Clock clock);
  // Same, with the node's clock and store (tests).
  static absl::StatusOr<std::unique_ptr<Node>> Open(const NodeConfig& config, NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Binds and serves. FAILED_PRECONDITION naming the address when a port cannot be bound.
  absl::Status Start();
  // Stops accepting calls, lets calls in flight finish until `deadline` (then cancels them) and waits
  // for their handlers. Idempotent.
  void Shutdown(absl::Time deadline);

  // After Start: the bound gRPC address "host:port" (port 0 in the config resolved), and ports.
  const std::string& grpc_address() const { return grpc_address_; }
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_ ? http_->port() : 0; }
  const std::string& http_address() const { return http_address_; }  // "" without HTTP
  // After Start: a channel to this node that bypasses the network (tests).
  std::shared_ptr<grpc::Channel> InProcessChannel();

  const NodeConfig& config() const { return config_; }
  // The policy the node decides under now, and the chain that led to it.
  PolicyBook& policy() const { return *policy_; }
  consensus::PublicKey public_key() const { return key_.public_key(); }
  storage::AttestationStore* store() const { return store_.get(); }
  // The substituter gateway, or nullptr without [gateway].
  Gateway* gateway() const { return gateway_.get(); }
  // Signs and holds the checkpoints of the node's log (Start publishes the first).
  LogPublisher* log_publisher() const { return log_publisher_.get(); }
  // Follows the peers of [[peer]] (started by Start).
  Replicator* replicator() const { return replicator_.get(); }
  // Re-checks the stored data ([scrub]; background passes start with Start).
  Scrubber* scrubber() const { return scrubber_.get(); }
  // Compares the bytes of open disputes (background passes start with Start); may be null.
  DisputeDiffer* dispute_differ() const { return dispute_differ_.get(); }
  // The rebuild loop's parts (tests and the pages).
  DemandBook* demand() { return &demand_; }
  RebuildBook* rebuild_book() { return &rebuild_book_; }
  const RebuildQueue* rebuild_queue() const { return &rebuild_queue_; }
  DerivationIntake* derivation_intake() { return &derivation_intake_; }
  // One whole scrub pass now, without pauses, with SQLite's quick_check (attestd --check-database);
  // the node need not be started.
  absl::StatusOr<ScrubReport> CheckDatabase();
  // What the node saw of each source of its gateway's NAR bytes, in the order they are tried; empty
  // without [gateway] or sources. Thread-safe (ListSources and the operators page call it).
  std::vector<NarSourceStatus> NarSourceStatuses() const;

 private:
  // OK while the log can extend its signed checkpoint; UNAVAILABLE (the Ingestor's accepting_writes)
  // once log publishing has stopped for good.
  absl::Status AcceptingWrites() const;
  // Drops the demand of committed paths that are CONFIRMED now (checked on the read pool).
  void ForgetConfirmedDemand(std::span<const consensus::StorePath> paths);
  void SaveDemand();

  Node(NodeConfig config, std::unique_ptr<PolicyBook> policy, consensus::SecretKey key,
       std::unique_ptr<storage::AttestationStore> store, storage::SqliteAttestationStore* sqlite,
       std::unique_ptr<Upstream> upstream, std::unique_ptr<storage::NarCache> nar_cache,
       std::vector<NarSourceSpec> nar_sources, Clock clock, const CheckpointServingFactory& serve_checkpoint);

  const NodeConfig config_;
  // Every component below reads the current policy from it; an adoption clears what caches verdicts.
  const std::unique_ptr<PolicyBook> policy_;
  const consensus::SecretKey key_;
  Clock clock_;
  const std::unique_ptr<storage::AttestationStore> store_;
  storage::SqliteAttestationStore* const sqlite_;  // store_, as SQLite (its path rows are scrubbed)
  // The newest signed checkpoint, kept beside the database (read by the publisher).
  const SignedCheckpointFile checkpoint_file_;
  // Before everything that writes metrics.
  MetricsRegistry metrics_;
  // Maintainers' statements in force; read by every tally (before the readers and the ingestor).
  const std::unique_ptr<ResolutionBook> resolutions_;
  // The rebuild loop (docs/rebuilds.md); before the gateway and the services, which count demand.
  DemandBook demand_;
  RebuildBook rebuild_book_;
  DerivationIntake derivation_intake_;
  RebuildQueue rebuild_queue_;
  RebuildHandler rebuild_handler_;
  // The gateway's NAR relay from the operators' caches and [[source]] mirrors (null without [gateway]
  // or without such sources); before the gateway, which uses it.
  const std::unique_ptr<storage::NarCache> nar_cache_;
  const std::unique_ptr<NarRelay> nar_relay_;
  // Before ingestor_: the ingest writer tells it about every commit.
  const std::unique_ptr<Gateway> gateway_;
  Ingestor ingestor_;
  StatusQuery status_query_;
  DisputeView dispute_view_;
  // Compares the bytes of each open dispute's two leading sides in the background (null when its
  // directory cannot be made); the dispute pages show its results.
  const std::unique_ptr<DisputeDiffer> dispute_differ_;
  // Before the services and the HTTP server, which read it.
  const std::unique_ptr<LogPublisher> log_publisher_;
  LogProofs log_proofs_;
  LogHttp log_http_;
  std::unique_ptr<WorkerPool> submit_pool_;
  std::unique_ptr<WorkerPool> read_pool_;
  AttestationsService attestations_service_;
  DisputesService disputes_service_;
  PolicyService policy_service_;
  LogService log_service_;
  // After the ingestor (it writes through it) and the read pool.
  const std::unique_ptr<Replicator> replicator_;
  FederationService federation_service_;
  RebuildsService rebuilds_service_;
  // Re-checks the stored data in the background ([scrub]).
  const std::unique_ptr<Scrubber> scrubber_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HttpServer> http_;
  std::string grpc_address_;
  std::string http_address_;
  int grpc_port_ = 0;
  bool shut_down_ = false;
  // Saves the demand book now and then (<database>.demand), and at shutdown.
  std::thread demand_saver_;
  absl::Notification stop_demand_saver_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_NODE_H_
