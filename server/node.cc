#include "server/node.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include "consensus/checkpoint.h"
#include "consensus/quorum.h"
#include "consensus/signed_note.h"
#include "consensus/text.h"
#include "proto/grpc/health/v1/health.pb.h"
#include "server/log.h"
#include "server/node_metrics.h"
#include "server/rebuild_metrics.h"
#include "server/request_parse_interceptor.h"
#include "server/tls_files.h"
#include "server/web/web_routes.h"
#include "storage/binary_cache.h"
#include "storage/files.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// A node key file is about a hundred bytes; a policy a few kilobytes. The limits only keep a wrong
// path (a disk image, /dev/zero) from being read into memory.
constexpr size_t kMaxKeyFileBytes = 64 * 1024;
constexpr size_t kMaxPolicyFileBytes = 16 << 20;

// Reads a whole file. `what` says what the file is for, so the message tells the operator which
// setting to fix. A missing file is NOT_FOUND; anything else that keeps it from being read (a
// directory, permissions, its size) is a state to fix first: FAILED_PRECONDITION.
absl::StatusOr<std::string> ReadTextFile(const std::string& path, size_t max_bytes, std::string_view what) {
  absl::StatusOr<std::string> text = storage::ReadFileToString(path, max_bytes);
  if (text.ok()) return text;
  const std::string message = Cat(StdView(text.status().message()), " (", what, ")");
  if (absl::IsNotFound(text.status())) return absl::NotFoundError(message);
  return absl::FailedPreconditionError(message);
}

// Prefixes a message with the file it is about, unless it already names it.
absl::Status AboutFile(const std::string& path, const absl::Status& status) {
  const std::string_view message = StdView(status.message());
  if (message.find(path) != std::string_view::npos) return status;
  return absl::Status(status.code(), Cat(path, ": ", message));
}

absl::StatusOr<consensus::SecretKey> LoadNodeKey(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path, kMaxKeyFileBytes, "the node's secret key, made by `nix key generate-secret`");
  if (!text.ok()) return text.status();
  absl::StatusOr<consensus::SecretKey> key = consensus::SecretKey::Parse(*text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(Cat(path, ": not a usable node key: ", StdView(key.status().message())));
  }
  // The node signs checkpoints and cosignatures that standard C2SP clients verify; their signer
  // names are stricter than Nix's (no '+').
  if (absl::Status s = consensus::ValidateNoteKeyName(key->name()); !s.ok()) {
    return absl::InvalidArgumentError(Cat(path, ": the key's name cannot sign checkpoints standard log clients verify: ",
                                          StdView(s.message()), " (generate a key with a plain name)"));
  }
  // It also names the node's log (the checkpoint origin).
  if (absl::Status s = consensus::ValidateLogOrigin(key->name()); !s.ok()) {
    return absl::InvalidArgumentError(Cat(path, ": the key's name cannot name the node's log: ",
                                          StdView(s.message()), " (generate a key with a plain name)"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    LogWarning(Cat("node key file ", path, " is readable by other users; consider chmod 600"));
  }
  return key;
}

enum class Health { kServing, kNotServing };

// grpc.health.v1: the overall status ("") and each attest.v1 service's.
void SetHealth(grpc::Server* server, Health health) {
  grpc::HealthCheckServiceInterface* service = server->GetHealthCheckService();
  if (service == nullptr) return;
  const bool serving = health == Health::kServing;
  service->SetServingStatus("", serving);
  for (const char* name : {v1::Attestations::service_full_name(), v1::Disputes::service_full_name(),
                           v1::Policy::service_full_name(), v1::LogService::service_full_name(),
                           v1::Federation::service_full_name()}) {
    service->SetServingStatus(name, serving);
  }
}

std::string ShowAddress(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return Cat("[", host, "]:", port);
  return Cat(host, ":", port);
}

DemandOptions DemandOptionsOf(const RebuildConfig& config) {
  DemandOptions options;
  options.half_life = config.demand_half_life;
  options.client_budget = config.demand_budget;
  options.max_paths = static_cast<size_t>(config.max_demand_paths);
  return options;
}

std::string DemandFileOf(const NodeConfig& config) { return Cat(config.database_path, ".demand"); }

// The NAR sources of the node under `policy`: the policy's operator caches, then the node's own
// [[source]] mirrors and [gateway] upstream (which only the node config changes).
std::vector<NarSourceSpec> NodeNarSources(const NodeConfig& config, const consensus::Policy& policy) {
  std::vector<NarSourceSpec> mirrors;
  for (const NarSourceConfig& source : config.sources) {
    mirrors.push_back(NarSourceSpec{
        .url = source.url, .kind = NarSourceKind::kMirror, .operator_name = "", .priority = source.priority});
  }
  return NarSourcesOf(policy, mirrors, config.gateway ? config.gateway->upstream : "");
}

bool SameSources(const std::vector<NarSourceSpec>& a, const std::vector<NarSourceSpec>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const NarSourceSpec& x, const NarSourceSpec& y) {
    return x.url == y.url && x.kind == y.kind && x.operator_name == y.operator_name && x.priority == y.priority;
  });
}

}  // namespace

absl::StatusOr<PolicyAndKey> LoadPolicyAndKey(const NodeConfig& config) {
  absl::StatusOr<std::string> policy_text = ReadTextFile(config.policy_path, kMaxPolicyFileBytes, "the federation's policy");
  if (!policy_text.ok()) return policy_text.status();
  absl::StatusOr<consensus::Policy> policy = consensus::Policy::ParseToml(*policy_text, config.policy_path);
  if (!policy.ok()) return AboutFile(config.policy_path, policy.status());
  absl::StatusOr<consensus::SecretKey> key = LoadNodeKey(config.key_path);
  if (!key.ok()) return key.status();
  return PolicyAndKey{.policy = *std::move(policy), .key = *std::move(key)};
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeConfig& config) {
  return Open(config, NodeOptions{});
}

absl::StatusOr<NodeStore> OpenSqliteStore(const NodeConfig& config) {
  auto store = storage::SqliteAttestationStore::Open(config.database_path, storage::SqliteOptions{});
  if (!store.ok()) return store.status();
  storage::SqliteAttestationStore* sqlite = store->get();
  return NodeStore{.store = *std::move(store), .sqlite = sqlite};
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeConfig& config, Clock clock) {
  return Open(config, NodeOptions{.clock = std::move(clock), .open_store = OpenSqliteStore, .serve_checkpoint = nullptr});
}

absl::StatusOr<std::unique_ptr<Node>> Node::Open(const NodeConfig& config, NodeOptions options) {
  if (absl::Status s = ValidateNodeConfig(config); !s.ok()) return s;

  absl::StatusOr<PolicyAndKey> loaded = LoadPolicyAndKey(config);
  if (!loaded.ok()) return loaded.status();
  const consensus::SecretKey& key = loaded->key;

  // The NAR relay: when the gateway has sources besides (or instead of) an upstream.
  std::vector<NarSourceSpec> nar_sources;
  std::unique_ptr<storage::NarCache> nar_cache;
  if (config.gateway) {
    const bool has_sources = !config.sources.empty() ||
                             std::any_of(loaded->policy.operators().begin(), loaded->policy.operators().end(),
                                         [](const consensus::Operator& op) { return !op.caches.empty(); });
    if (!has_sources && config.gateway->upstream.empty()) {
      return absl::InvalidArgumentError(
          Cat(config.config_file.empty() ? "" : Cat(config.config_file, ": "),
              "[gateway] has no source of NARs: set upstream = \"https://cache.example.org\", add [[source]] "
              "tables, or list caches for the operators in the policy"));
    }
    if (has_sources) {
      nar_sources = NodeNarSources(config, loaded->policy);
      for (const NarSourceSpec& spec : nar_sources) {
        if (auto opened = storage::BinaryCache::Open(spec.url); !opened.ok()) {
          return absl::InvalidArgumentError(Cat("NAR source ", spec.url, ": ", StdView(opened.status().message())));
        }
      }
      const std::string directory =
          config.gateway->nar_cache.empty() ? Cat(config.database_path, ".nar-cache") : config.gateway->nar_cache;
      absl::StatusOr<std::unique_ptr<storage::NarCache>> opened = storage::NarCache::Open(storage::NarCacheOptions{
          .directory = directory, .max_bytes = static_cast<uint64_t>(config.gateway->nar_cache_mib) << 20});
      if (!opened.ok()) {
        return absl::Status(opened.status().code(), Cat(config.config_file.empty() ? "" : Cat(config.config_file, ": "),
                                                        "[gateway] nar_cache: ", StdView(opened.status().message())));
      }
      nar_cache = *std::move(opened);
    }
  }

  std::unique_ptr<Upstream> upstream;
  if (config.gateway && !config.gateway->upstream.empty() && nar_sources.empty()) {
    absl::StatusOr<std::unique_ptr<Upstream>> opened = OpenUpstream(
        config.gateway->upstream,
        UpstreamOptions{.timeout = absl::Seconds(config.gateway->upstream_timeout_seconds),
                        .max_nar_streams = config.gateway->nar_streams});
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          Cat(config.config_file.empty() ? "" : Cat(config.config_file, ": "), "[gateway] ",
                              StdView(opened.status().message())));
    }
    upstream = *std::move(opened);
  }

  if (absl::Status status = Replicator::CheckPeers(config, key); !status.ok()) return status;

  // Last, because opening creates the database when it does not exist.
  absl::StatusOr<NodeStore> store = options.open_store(config);
  if (!store.ok()) return AboutFile(config.database_path, store.status());

  // A database that lost entries this key already signed must not start a second history under it.
  if (absl::Status status = CheckLogExtendsRecordedCheckpoint(*store->store, key.public_key(),
                                                              SignedCheckpointFile(SignedCheckpointFile::PathFor(
                                                                  config.database_path)),
                                                              config.database_path);
      !status.ok()) {
    return status;
  }

  // The policy the node decides under: the file, or the newer policy the stored chain leads to.
  std::string notice;
  absl::StatusOr<std::unique_ptr<PolicyBook>> policy =
      PolicyBook::Open(std::move(loaded->policy), store->store.get(), &notice);
  if (!policy.ok()) return AboutFile(config.database_path, policy.status());
  if (!notice.empty()) LogWarning(notice);

  auto node = std::unique_ptr<Node>(new Node(config, *std::move(policy), std::move(loaded->key),
                                             std::move(store->store), store->sqlite, std::move(upstream),
                                             std::move(nar_cache), std::move(nar_sources), std::move(options.clock),
                                             options.serve_checkpoint));
  if (absl::Status status = node->resolutions_->Load(*node->store_); !status.ok()) {
    return AboutFile(config.database_path, status);
  }
  // Demand is soft state: a snapshot that cannot be read starts the counts afresh.
  if (absl::Status loaded_demand = node->demand_.LoadFrom(DemandFileOf(config), node->clock_());
      !loaded_demand.ok()) {
    LogWarning(Cat("the demand counts start empty: ", StdView(loaded_demand.message())));
  }
  return node;
}

namespace {

std::unique_ptr<NarRelay> MakeNarRelay(const NodeConfig& config, std::vector<NarSourceSpec> sources,
                                       storage::NarCache* cache, Clock clock, MetricsRegistry* metrics) {
  if (!config.gateway || cache == nullptr) return nullptr;
  const GatewayConfig& g = *config.gateway;
  absl::StatusOr<std::unique_ptr<NarRelay>> relay = NarRelay::Create(
      std::move(sources), cache, metrics, std::move(clock),
      NarRelayOptions{.cache_options = {.connect_timeout = absl::Seconds(g.source_timeout_seconds),
                                        .transfer_timeout = absl::Seconds(g.nar_transfer_timeout_seconds),
                                        .stall_timeout = absl::Seconds(g.nar_stall_timeout_seconds)},
                      .max_concurrent_fetches = g.nar_fetches,
                      .max_nar_bytes = static_cast<uint64_t>(g.max_nar_mib) << 20,
                      .found_ttl = absl::Seconds(g.positive_ttl_seconds),
                      .missing_ttl = absl::Seconds(g.negative_ttl_seconds)});
  // Node::Open opened every source URL already; nothing else can fail.
  if (!relay.ok()) {
    LogError(Cat("the NAR relay cannot start: ", StdView(relay.status().message())));
    std::abort();
  }
  return *std::move(relay);
}

std::unique_ptr<Gateway> MakeGateway(const NodeConfig& config, const PolicyBook& policy,
                                     storage::Ledger* store, const consensus::SecretKey& key,
                                     std::unique_ptr<Upstream> upstream, NarRelay* relay, Clock clock,
                                     const ResolutionBook* resolutions, MetricsRegistry* metrics, DemandBook* demand,
                                     storage::DerivationStore* derivations) {
  std::function<void(const consensus::StorePath&, std::string_view)> on_not_confirmed;
  if (config.rebuild.count_demand) {
    on_not_confirmed = [demand, clock](const consensus::StorePath& path, std::string_view client) {
      demand->Record(path, client, clock());
    };
  }
  if (!config.gateway || (!upstream && relay == nullptr)) return nullptr;
  const GatewayConfig& g = *config.gateway;
  return std::make_unique<Gateway>(policy, store, key, std::move(upstream), std::move(clock),
                                   GatewayOptions{.priority = g.priority,
                                                  .positive_ttl = absl::Seconds(g.positive_ttl_seconds),
                                                  .negative_ttl = absl::Seconds(g.negative_ttl_seconds),
                                                  .failure_ttl = absl::Seconds(g.failure_ttl_seconds),
                                                  .max_entries = static_cast<size_t>(g.cache_entries),
                                                  .resolutions = resolutions,
                                                  .metrics = metrics,
                                                  .relay = relay,
                                                  .on_not_confirmed = std::move(on_not_confirmed),
                                                  .path_of_hash_part = [derivations](std::string_view hash_part)
                                                      -> std::optional<consensus::StorePath> {
                                                    absl::StatusOr<std::optional<consensus::StorePath>> path =
                                                        derivations->OutputPathByHashPart(hash_part);
                                                    return path.ok() ? *path : std::nullopt;
                                                  }});
}


// The node's NAR sources for the dispute diffs: with or without [gateway].
std::unique_ptr<DisputeDiffer> MakeDisputeDiffer(const NodeConfig& config, const consensus::Policy& policy,
                                                 const DisputeView* view) {
  absl::StatusOr<std::unique_ptr<DisputeDiffer>> differ =
      DisputeDiffer::Open(view, NodeNarSources(config, policy),
                          DisputeDifferOptions{.directory = Cat(config.database_path, ".dispute-diffs")});
  if (!differ.ok()) {
    LogWarning(Cat("dispute diffs are off: ", StdView(differ.status().message())));
    return nullptr;
  }
  return *std::move(differ);
}

}  // namespace

Node::Node(NodeConfig config, std::unique_ptr<PolicyBook> policy, consensus::SecretKey key,
           std::unique_ptr<storage::AttestationStore> store, storage::SqliteAttestationStore* sqlite,
           std::unique_ptr<Upstream> upstream, std::unique_ptr<storage::NarCache> nar_cache,
           std::vector<NarSourceSpec> nar_sources, Clock clock, const CheckpointServingFactory& serve_checkpoint)
    : config_(std::move(config)),
      policy_(std::move(policy)),
      key_(std::move(key)),
      clock_(clock),
      store_(std::move(store)),
      sqlite_(sqlite),
      checkpoint_file_(SignedCheckpointFile::PathFor(config_.database_path)),
      resolutions_(std::make_unique<ResolutionBook>(*policy_)),
      demand_(DemandOptionsOf(config_.rebuild)),
      rebuild_book_(RebuildBookOptions{.lease_duration = config_.rebuild.lease}),
      derivation_intake_(store_.get(), store_.get(), clock),
      rebuild_queue_(*policy_, store_.get(), store_.get(), &demand_, &rebuild_book_, resolutions_.get(), clock),
      rebuild_handler_(*policy_, &rebuild_queue_, &derivation_intake_, &rebuild_book_, clock),
      nar_cache_(std::move(nar_cache)),
      nar_relay_(MakeNarRelay(config_, std::move(nar_sources), nar_cache_.get(), clock, &metrics_)),
      gateway_(MakeGateway(config_, *policy_, store_.get(), key_, std::move(upstream), nar_relay_.get(), clock,
                           resolutions_.get(), &metrics_, &demand_, store_.get())),
      ingestor_(*policy_, store_.get(), store_.get(), key_, clock,
                IngestOptions{.observe_unknown_keys = config_.observe_unknown_keys,
                              .max_batch = config_.max_batch,
                              .verify_threads = config_.verify_threads,
                              // A commit may open a dispute (dispute_differ_ is made below, before any
                              // commit).
                              .on_commit = [this](std::span<const consensus::StorePath> paths) {
                                if (gateway_) gateway_->PathsChanged(paths);
                                if (dispute_differ_) dispute_differ_->Wake();
                                ForgetConfirmedDemand(paths);
                              },
                              .on_realisations_commit =
                                  [this](std::span<const consensus::Realisation> claims) {
                                    if (gateway_) gateway_->RealisationsChanged(claims);
                                  },
                              .resolutions = resolutions_.get(),
                              .on_exclusions_changed = gateway_ ? std::function<void()>([gateway = gateway_.get()] {
                                gateway->VerdictsChanged();
                              })
                                                                : nullptr,
                              .metrics = &metrics_,
                              .accepting_writes = [this] { return AcceptingWrites(); }}),
      status_query_(*policy_, store_.get(),
                    StatusQueryOptions{.max_paths = config_.max_status_paths,
                                       .max_answer_bytes = config_.max_status_answer_bytes,
                                       .resolutions = resolutions_.get(),
                                       .metrics = &metrics_}),
      dispute_view_(*policy_, store_.get(), resolutions_.get()),
      dispute_differ_(MakeDisputeDiffer(config_, *policy_->current(), &dispute_view_)),
      log_publisher_(std::make_unique<LogPublisher>(
          store_.get(), key_, clock,
          LogPublisherOptions{.interval = config_.checkpoint_interval,
                              .serve_checkpoint = serve_checkpoint ? serve_checkpoint(store_.get(), key_) : nullptr,
                              .checkpoint_file = &checkpoint_file_})),
      log_proofs_(store_.get(), log_publisher_.get()),
      log_http_(store_.get(), log_publisher_.get()),
      submit_pool_(std::make_unique<WorkerPool>("submit", config_.rpc_threads)),
      read_pool_(std::make_unique<WorkerPool>("read", config_.rpc_threads)),
      attestations_service_(&ingestor_, &status_query_, submit_pool_.get(), read_pool_.get(),
                            !config_.rebuild.count_demand ? StatusAnswerHook() :
                            [this, clock](const v1::StatusResponse& answer, std::string_view client) {
                              const absl::Time now = clock();
                              for (const v1::PathStatus& status : answer.statuses()) {
                                if (status.has_repeat_of() || status.verdict() == v1::CONFIRMED) continue;
                                absl::StatusOr<consensus::StorePath> path =
                                    consensus::StorePath::Parse(status.store_path());
                                if (path.ok()) demand_.Record(*path, client, now);
                              }
                            }),
      disputes_service_(&dispute_view_, &ingestor_, read_pool_.get(), submit_pool_.get()),
      policy_service_(policy_.get(), key_.public_key(), read_pool_.get(), submit_pool_.get(), clock,
                      &RefusedPolicyUpdates(metrics_)),
      log_service_(&log_proofs_, read_pool_.get()),
      replicator_(std::make_unique<Replicator>(config_, policy_.get(), key_, store_.get(), &ingestor_, clock, &metrics_)),
      federation_service_(replicator_.get(), [this] { return NarSourceStatuses(); }, read_pool_.get()),
      rebuilds_service_(&rebuild_handler_, read_pool_.get(), submit_pool_.get()),
      scrubber_(std::make_unique<Scrubber>(
          store_.get(), sqlite_,
          ScrubOptions{.interval = config_.scrub_interval, .items_per_second = config_.scrub_rate, .quick_check = false},
          &metrics_)) {
  // The operators' caches come from the policy: an update that changes them changes where the relay and
  // the dispute differ fetch bytes from, without a restart (before cached verdicts are dropped below).
  policy_->AddListener([this](const consensus::Policy& now, const consensus::Policy& before) {
    const std::vector<NarSourceSpec> sources = NodeNarSources(config_, now);
    if (SameSources(sources, NodeNarSources(config_, before))) return;
    if (nar_relay_) {
      if (absl::Status set = nar_relay_->SetSources(sources); !set.ok()) {
        LogError(Cat("policy: the NAR relay keeps its sources from before the update: ", StdView(set.message())));
      }
    } else if (gateway_ && std::any_of(now.operators().begin(), now.operators().end(),
                                       [](const consensus::Operator& op) { return !op.caches.empty(); })) {
      LogWarning("policy: the new policy lists operator caches, but this node's gateway started without NAR "
                 "sources (it passes its upstream's NARs through); restart the node to relay from the caches");
    }
    if (dispute_differ_) dispute_differ_->SetSources(sources);
  });
  // After an adoption no verdict computed under the previous policy may be served: the statements in
  // force are verified again (a maintainer may have been removed or revoked) and cached answers dropped.
  policy_->AddListener([this](const consensus::Policy&, const consensus::Policy&) {
    if (absl::Status reloaded = resolutions_->Load(*store_); !reloaded.ok()) {
      LogError(Cat("policy: re-reading the maintainers' statements under the new policy failed (those read "
                   "before stay in force): ",
                   StdView(reloaded.message())));
    }
    if (gateway_) gateway_->VerdictsChanged();
  });
  AddNodeMetrics(metrics_, store_.get(), config_.database_path, absl::Now());
  AddPolicyMetrics(metrics_, *policy_);
  AddRebuildMetrics(metrics_, &demand_, &rebuild_book_, &derivation_intake_, store_.get(), clock);
}

void Node::ForgetConfirmedDemand(std::span<const consensus::StorePath> paths) {
  // Only the few committed paths that have demand are read, off the writer's thread.
  std::vector<consensus::StorePath> wanted;
  const absl::Time now = clock_();
  for (const consensus::StorePath& path : paths) {
    if (demand_.DemandOf(path, now) > 0) wanted.push_back(path);
  }
  if (wanted.empty()) return;
  read_pool_->Schedule([this, wanted = std::move(wanted)] {
    for (const consensus::StorePath& path : wanted) {
      absl::StatusOr<consensus::Verdict> verdict = rebuild_queue_.VerdictOf(path);
      if (verdict.ok() && *verdict == consensus::Verdict::kConfirmed) demand_.Forget(path);
    }
  });
}

Node::~Node() { Shutdown(absl::Now()); }

std::vector<NarSourceStatus> Node::NarSourceStatuses() const {
  return nar_relay_ ? nar_relay_->Status() : std::vector<NarSourceStatus>{};
}

absl::Status Node::AcceptingWrites() const {
  const LogHealth health = log_publisher_->Health();
  if (!health.frozen) return absl::OkStatus();
  // What is written now could never reach a signed checkpoint: acknowledging it would be a promise the
  // log cannot keep.
  return absl::UnavailableError(Cat("this node's transparency log cannot extend its signed checkpoint (",
                                    health.problem, "), so it acknowledges no writes until its operator "
                                    "repairs it; submit to another node or retry later"));
}

absl::Status Node::Start() {
  if (server_) return absl::FailedPreconditionError("the node is already started");
  absl::StatusOr<ListenAddress> grpc_address = ParseListenAddress(config_.grpc_address);
  if (!grpc_address.ok()) return grpc_address.status();
  // Read now, so a wrong certificate or key stops the start before anything listens.
  absl::StatusOr<std::optional<ServerTls>> tls = LoadNodeTlsFiles(config_);
  if (!tls.ok()) return tls.status();
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  std::shared_ptr<const ServerTls> http_tls;
  if (*tls) {
    grpc::SslServerCredentialsOptions ssl((*tls)->client_ca_pem.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = (*tls)->client_ca_pem;
    ssl.pem_key_cert_pairs.push_back({(*tls)->identity.private_key_pem, (*tls)->identity.cert_chain_pem});
    credentials = grpc::SslServerCredentials(ssl);
    http_tls = std::make_shared<const ServerTls>(**std::move(tls));
  }
  // Before serving: the first answer for /log/checkpoint already covers what the database holds.
  log_publisher_->Start();

  grpc::EnableDefaultHealthCheckService(true);
  // Reflection describes services from the process's generated descriptors. gRPC's built-in health
  // service encodes its messages without protobuf, so grpc.health.v1 would be listed but "not found":
  // naming a generated health message here links health.pb.cc (from its static library) into the
  // binary, and with it the registration of grpc/health/v1/health.proto.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.grpc_address, credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.max_message_bytes));
  // gRPC sets SO_REUSEPORT by default, which would let a second node on the same port share its
  // traffic silently; a port in use must be a startup error instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // A request that does not parse is INVALID_ARGUMENT with a message, not gRPC's bare UNIMPLEMENTED.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<RequestParseInterceptorFactory>());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.RegisterService(&attestations_service_);
  builder.RegisterService(&disputes_service_);
  builder.RegisterService(&policy_service_);
  builder.RegisterService(&log_service_);
  builder.RegisterService(&federation_service_);
  builder.RegisterService(&rebuilds_service_);
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    server_.reset();
    log_publisher_->Stop();
    return absl::FailedPreconditionError(Cat("cannot listen on grpc address ", config_.grpc_address,
                                             " (is another process using the port?)"));
  }
  grpc_address_ = ShowAddress(grpc_address->host, grpc_port_);
  // Not ready until the HTTP port and the followers run too.
  SetHealth(server_.get(), Health::kNotServing);

  if (!config_.http_address.empty()) {
    absl::StatusOr<ListenAddress> http_address = ParseListenAddress(config_.http_address);
    HttpRouter router;
    router.Exact("/healthz", [publisher = log_publisher_.get(), scrubber = scrubber_.get()](const HttpRequest&) {
      // Still 200: the node serves. A monitor that wants "ok" sees the problem.
      const LogHealth health = publisher->Health();
      if (!health.problem.empty()) {
        return HttpReply::Now(HttpResponse::Text(
            200, Cat("degraded: log publishing ", health.frozen ? "stopped" : "failing", ": ", health.problem)));
      }
      const ScrubHealth scrub = scrubber->Health();
      if (!scrub.problems.empty()) {
        return HttpReply::Now(HttpResponse::Text(200, Cat("degraded: the last scrub found ", scrub.problems.size(),
                                                          " problems in the stored data, the first: ",
                                                          scrub.problems.front())));
      }
      return HttpReply::Now(HttpResponse::Text(200, "ok"));
    });
    AddMetricsRoute(router, &metrics_);
    log_http_.AddRoutes(router);
    replicator_->AddRoutes(router);
    web::AddRoutes(router, *policy_, store_.get(), &status_query_, &dispute_view_, resolutions_.get(),
                   [this] { return NarSourceStatuses(); }, dispute_differ_.get(), &rebuild_queue_, &rebuild_book_,
                   &derivation_intake_, clock_);
    if (gateway_) gateway_->AddRoutes(router);
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        http_address.ok()
            ? HttpServer::Start(*http_address, std::move(router),
                                HttpServerOptions{.threads = config_.http_threads,
                                                  .max_connections = config_.http_max_connections,
                                                  .max_connections_per_ip = config_.http_max_connections_per_ip,
                                                  .idle_timeout_seconds = config_.http_idle_timeout_seconds,
                                                  .request_head_timeout_seconds =
                                                      config_.http_request_head_timeout_seconds,
                                                  // NAR fetches from sources wait on job threads.
                                                  .job_threads = config_.http_job_threads +
                                                                 (nar_relay_ ? config_.gateway->nar_fetches : 0),
                                                  .tls = std::move(http_tls)})
            : absl::StatusOr<std::unique_ptr<HttpServer>>(http_address.status());
    if (!http.ok()) {
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
      server_.reset();
      log_publisher_->Stop();
      return http.status();
    }
    http_ = *std::move(http);
    http_address_ = ShowAddress(http_address->host, http_->port());
  }
  if (absl::Status status = replicator_->Start(); !status.ok()) {
    Shutdown(absl::Now());
    return status;
  }
  scrubber_->Start();
  if (dispute_differ_) dispute_differ_->Start();
  demand_saver_ = std::thread([this] {
    while (!stop_demand_saver_.WaitForNotificationWithTimeout(absl::Minutes(5))) SaveDemand();
  });
  SetHealth(server_.get(), Health::kServing);
  const std::shared_ptr<const consensus::Policy> current = policy_->current();
  LogInfo(Cat("node started: grpc ", grpc_address_, http_ ? Cat(", http ", http_address_) : std::string(),
              config_.tls ? Cat(" (TLS", config_.tls->client_ca.path.empty() ? "" : ", client certificates required",
                                ")")
                          : std::string(),
              gateway_ ? (nar_relay_ ? Cat(" (gateway relaying NARs from ", nar_relay_->Status().size(), " sources)")
                                     : Cat(" (gateway for ", config_.gateway->upstream, ")"))
                       : std::string(),
              ", log ", log_publisher_->origin(), ", policy ", current->Hash(), " (version ", current->version(),
              ", quorum ", consensus::DescribeQuorum(*current, current->default_quorum()), ", ",
              current->operators().size(), " operators), node key ", key_.name(), ", database ",
              config_.database_path));
  return absl::OkStatus();
}

absl::StatusOr<ScrubReport> Node::CheckDatabase() {
  Scrubber offline(store_.get(), sqlite_,
                   ScrubOptions{.interval = absl::ZeroDuration(), .items_per_second = 0, .quick_check = true}, nullptr);
  return offline.RunPass();
}

std::shared_ptr<grpc::Channel> Node::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return server_->InProcessChannel(args);
}

void Node::Shutdown(absl::Time deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  // Before anything drains, so load balancers stop sending calls here.
  if (server_) SetHealth(server_.get(), Health::kNotServing);
  // Followers first: they write through the ingestor, which must not see them after this.
  replicator_->Stop();
  scrubber_->Stop();
  if (dispute_differ_) dispute_differ_->Stop();
  // Entries appended from now on are signed at the next start.
  log_publisher_->Stop();
  if (gateway_) gateway_->Stop();
  if (http_) http_->Stop();
  if (server_) {
    server_->Shutdown(absl::ToChronoTime(deadline));
    server_->Wait();
  }
  if (demand_saver_.joinable()) {
    stop_demand_saver_.Notify();
    demand_saver_.join();
    SaveDemand();
  }
  if (server_) LogInfo("node stopped");
}

void Node::SaveDemand() {
  if (absl::Status saved = demand_.SaveTo(DemandFileOf(config_), clock_()); !saved.ok()) {
    LogWarning(Cat("saving the demand counts failed (they are kept in memory): ", StdView(saved.message())));
  }
}

}  // namespace attest::server
