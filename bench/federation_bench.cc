// Federation: how fast a node catches up with a peer's log, and how fast a verdict spreads.
//
// Catch-up: a peer's database is filled with N attestations appended to its log (SQLite store
// directly, real signatures: the follower verifies every one), attestd serves it, and a fresh attestd
// that lists it as its only [[peer]] replays the whole log; timed from the follower's start until its
// GetFederationStatus shows cursor == peer_size == N. Measured in the same run: this machine's ingest
// rate, the same attestations submitted over gRPC into a fresh attestd (ingest_bench's load), and the
// ratio catch-up / ingest. Also the follower's memory and database bytes per attestation.
//
// Convergence: three nodes on loopback, each following the other two. Each round submits a fresh
// path's attestations (quorum of them) to node A and, from A's acknowledgement, polls Status on B and
// C every 2 ms until both give A's verdict. Printed: median, p90, p99 and max of that time.
//
//   federation_bench --attestd build/server/attestd [--entries 1000000] [--rounds 200] [--quick]
//                    [--dir DIR] [--quorum 2] [--checkpoint-interval 100ms] [--poll-interval 100ms]
//                    [--catch-up-poll-interval 50ms] [--batch-entries N] [--inflight 4]
//                    [--only catch-up|convergence]
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "bench/ingest_load.h"
#include "consensus/attestation.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "storage/sqlite_attestation_store.h"

namespace attest::bench {
namespace {

constexpr int kBatch = 1000;
constexpr int64_t kReceivedUnix = 1790000000;

struct Args {
  std::string attestd;
  int64_t entries = 1000000;
  int rounds = 200;
  std::string dir;
  int quorum = 2;
  std::string checkpoint_interval = "100ms";
  std::string poll_interval = "100ms";
  std::string catch_up_poll_interval = "50ms";
  int batch_entries = 0;  // 0: attestd's default
  int inflight = 4;
  bool catch_up = true;
  bool convergence = true;
};

[[noreturn]] void Usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "federation_bench: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: federation_bench --attestd PATH [--entries N] [--rounds M] [--quick] [--dir DIR]\n"
               "         [--quorum 1|2] [--checkpoint-interval D] [--poll-interval D] [--catch-up-poll-interval D]\n"
               "         [--batch-entries N] [--inflight N] [--only catch-up|convergence]\n"
               "  --quick: 20,000 entries and 20 rounds (a smoke run); D is an attestd duration (\"100ms\")\n");
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  bool quick = false, entries_given = false, rounds_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--quick") {
      quick = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") Usage("");
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--attestd") {
      args.attestd = value;
    } else if (flag == "--entries") {
      args.entries = std::atoll(value.c_str());
      entries_given = true;
    } else if (flag == "--rounds") {
      args.rounds = std::atoi(value.c_str());
      rounds_given = true;
    } else if (flag == "--dir") {
      args.dir = value;
    } else if (flag == "--quorum") {
      args.quorum = std::atoi(value.c_str());
    } else if (flag == "--checkpoint-interval") {
      args.checkpoint_interval = value;
    } else if (flag == "--poll-interval") {
      args.poll_interval = value;
    } else if (flag == "--catch-up-poll-interval") {
      args.catch_up_poll_interval = value;
    } else if (flag == "--batch-entries") {
      args.batch_entries = std::atoi(value.c_str());
    } else if (flag == "--inflight") {
      args.inflight = std::atoi(value.c_str());
    } else if (flag == "--only") {
      if (value != "catch-up" && value != "convergence") Usage("--only takes catch-up or convergence");
      args.catch_up = value == "catch-up";
      args.convergence = value == "convergence";
    } else {
      Usage("unknown flag " + flag);
    }
  }
  if (quick) {
    if (!entries_given) args.entries = 20000;
    if (!rounds_given) args.rounds = 20;
  }
  if (args.attestd.empty()) Usage("--attestd is required");
  if (args.entries < 1) Usage("--entries must be positive");
  if (args.rounds < 1) Usage("--rounds must be positive");
  if (args.quorum < 1 || args.quorum > 3) Usage("--quorum must be 1, 2 or 3 (three operators)");
  if (args.inflight < 1) Usage("--inflight must be positive");
  return args;
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) {
    std::fprintf(stderr, "federation_bench: %s: %s\n", what.c_str(), std::string(status.message()).c_str());
    std::exit(1);
  }
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "federation_bench: %s\n", message.c_str());
  std::exit(1);
}

// One node of a benchmark federation: its key, its addresses, its directory.
struct NodeSetup final {
  std::string dir;
  std::string key_name;
  std::string grpc;
  std::string http;
  std::string public_key() const { return BenchKey(key_name).public_key().ToString(); }
};

NodeSetup MakeNodeSetup(const std::string& dir, const std::string& key_name) {
  std::filesystem::create_directories(dir);
  return NodeSetup{.dir = dir,
                   .key_name = key_name,
                   .grpc = absl::StrCat("127.0.0.1:", FreeLoopbackPort()),
                   .http = absl::StrCat("127.0.0.1:", FreeLoopbackPort())};
}

std::string PolicyToml(const std::vector<std::string>& builder_public_keys, int quorum) {
  std::string text = absl::StrCat("quorum = ", quorum, "\n");
  for (size_t i = 0; i < builder_public_keys.size(); ++i) {
    absl::StrAppend(&text, "\n[[operator]]\nname = \"operator-", i, "\"\nbuilders = [\"", builder_public_keys[i],
                    "\"]\n");
  }
  return text;
}

// node.toml, node.sec and policy.toml in node.dir; `extra` is appended to node.toml.
void WriteNodeConfig(const NodeSetup& node, const std::string& policy, const std::vector<NodeSetup>& peers,
                     const std::string& extra) {
  WriteFileOrExit(node.dir + "/policy.toml", policy);
  WriteFileOrExit(node.dir + "/node.sec", BenchKey(node.key_name).ExportText());
  std::string toml =
      absl::StrCat("[node]\ngrpc = \"", node.grpc, "\"\nhttp = \"", node.http,
                   "\"\ndatabase = \"attest.db\"\nkey = \"node.sec\"\npolicy = \"policy.toml\"\n\n", extra);
  for (const NodeSetup& peer : peers) {
    absl::StrAppend(&toml, "\n[[peer]]\ngrpc = \"", peer.grpc, "\"\nhttp = \"", peer.http, "\"\nkey = \"",
                    peer.public_key(), "\"\n");
  }
  WriteFileOrExit(node.dir + "/node.toml", toml);
}

// The RPCs the benchmark asks a node, each with a deadline.
class NodeRpc final {
 public:
  explicit NodeRpc(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        attestations_(v1::Attestations::NewStub(channel_)),
        federation_(v1::Federation::NewStub(channel_)),
        log_(v1::LogService::NewStub(channel_)) {}

  std::optional<v1::GetFederationStatusResponse> FederationStatus(std::string* error = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetFederationStatusResponse response;
    grpc::Status status = federation_->GetFederationStatus(&context, {}, &response);
    if (!status.ok()) {
      if (error != nullptr) {
        *error = absl::StrCat("GetFederationStatus: code ", status.error_code(), ": ", status.error_message());
      }
      return std::nullopt;
    }
    return response;
  }

  // The size of the node's latest signed checkpoint; 0 when it has none yet or cannot be asked.
  uint64_t CheckpointSize() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetCheckpointResponse response;
    if (!log_->GetCheckpoint(&context, {}, &response).ok()) return 0;
    return response.size();
  }

  v1::Verdict Verdict(const std::string& path) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::StatusRequest request;
    request.add_store_paths(path);
    v1::StatusResponse response;
    grpc::Status status = attestations_->Status(&context, request, &response);
    if (!status.ok()) Fail("Status: " + status.error_message());
    return response.statuses(0).verdict();
  }

  // True when every attestation was accepted.
  bool Submit(const v1::SubmitRequest& request, std::string* error) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitResponse response;
    grpc::Status status = attestations_->Submit(&context, request, &response);
    if (!status.ok()) {
      *error = status.error_message();
      return false;
    }
    for (const v1::SubmitResult& result : response.results()) {
      if (result.outcome() != v1::SubmitResult::ACCEPTED) {
        *error = result.message();
        return false;
      }
    }
    return true;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Federation::Stub> federation_;
  std::unique_ptr<v1::LogService::Stub> log_;
};

std::string PeerLine(const v1::PeerStatus& p) {
  return absl::StrCat(p.name(), " state ", v1::PeerStatus::State_Name(p.state()), " peer_size ", p.peer_size(),
                      " cursor ", p.cursor(), " rejected ", p.rejected_entries(),
                      p.last_error().empty() ? "" : " last_error: ", p.last_error());
}

int64_t FileBytes(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

// The database with its WAL (what the node keeps on disk).
int64_t DatabaseBytes(const std::string& dir) {
  return FileBytes(dir + "/attest.db") + FileBytes(dir + "/attest.db-wal");
}

// --- Catch-up ---

void FillPeerDatabase(const std::string& file, const std::vector<std::string>& requests) {
  auto store = storage::SqliteAttestationStore::Open(file, {});
  Check(store.status(), "opening the peer's database");
  double write_seconds = 0;
  int64_t written = 0;
  for (const std::string& serialized : requests) {
    v1::SubmitRequest request;
    if (!request.ParseFromString(serialized)) Fail("a pre-signed batch does not parse");
    storage::WriteBatch batch;
    batch.log_append = storage::LogAppend::kAll;
    for (const v1::Attestation& message : request.attestations()) {
      auto attestation = proto::FromProto(message);
      Check(attestation.status(), "converting a pre-signed attestation");
      batch.attestations.push_back(storage::StoredAttestation{.attestation = *std::move(attestation),
                                                              .received_unix = kReceivedUnix,
                                                              .observed_key = std::nullopt,
                                                              .origin = ""});
    }
    auto start = std::chrono::steady_clock::now();
    Check((*store)->Write(batch).status(), "writing the peer's database");
    write_seconds += SecondsSince(start);
    written += static_cast<int64_t>(batch.attestations.size());
  }
  auto head = (*store)->GetLogHead();
  Check(head.status(), "reading the peer's log head");
  if (static_cast<int64_t>(head->size) != written) {
    Fail(absl::StrCat("the peer's log holds ", head->size, " entries, ", written, " written"));
  }
  std::printf("  peer database: %lld attestations in its log (Write: %.0f /s)\n", static_cast<long long>(written),
              written / write_seconds);
}

void RunCatchUp(const Args& args, const std::string& dir) {
  const std::vector<consensus::SecretKey> builders = IngestBuilders();
  const std::string policy = PolicyToml(PublicKeys(builders), 2);
  const int64_t n = args.entries;
  std::printf("catch-up: %lld attestations (3 builders, 5 references each, batches of %d)\n", static_cast<long long>(n),
              kBatch);

  std::printf("  pre-signing...\n");
  const std::vector<std::string> requests = PresignIngestLoadSerialized(n, kBatch, builders);

  // Ingest: the same attestations into a fresh node over gRPC, as ingest_bench measures it.
  NodeSetup ingest = MakeNodeSetup(dir + "/ingest", "bench-fed-ingest");
  WriteNodeConfig(ingest, policy, {}, "");
  SubmitFigures ingested;
  {
    std::printf("  ingest: submitting them over gRPC to a fresh attestd (%d in flight)...\n", args.inflight);
    TrackedNode node(args.attestd, ingest.dir);
    ingested = SubmitAll(node->address(), requests, args.inflight);
    if (ingested.failed > 0) Fail(absl::StrCat("ingest: ", ingested.failed, " attestations not accepted"));
  }
  std::filesystem::remove_all(ingest.dir);

  NodeSetup peer = MakeNodeSetup(dir + "/peer", "bench-fed-peer");
  std::printf("  filling the peer's database...\n");
  FillPeerDatabase(peer.dir + "/attest.db", requests);
  WriteNodeConfig(peer, policy, {}, "[log]\ncheckpoint_interval = \"100ms\"\n");
  TrackedNode peer_process(args.attestd, peer.dir);
  NodeRpc peer_rpc(peer.grpc);
  {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (peer_rpc.CheckpointSize() != static_cast<uint64_t>(n)) {
      if (std::chrono::steady_clock::now() > deadline) Fail("the peer signed no checkpoint of its whole log in 5 min");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  NodeSetup follower = MakeNodeSetup(dir + "/follower", "bench-fed-follower");
  std::string federation = absl::StrCat("[federation]\npoll_interval = \"", args.catch_up_poll_interval, "\"\n");
  if (args.batch_entries > 0) absl::StrAppend(&federation, "batch_entries = ", args.batch_entries, "\n");
  WriteNodeConfig(follower, policy, {peer}, federation);
  std::printf("  follower: replaying the peer's log (poll_interval %s, batch_entries %s)...\n",
              args.catch_up_poll_interval.c_str(),
              args.batch_entries > 0 ? std::to_string(args.batch_entries).c_str() : "default");

  const double peer_cpu_before = peer_process->CpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  auto follower_process = std::make_unique<TrackedNode>(args.attestd, follower.dir);
  NodeRpc follower_rpc(follower.grpc);
  long rss_max = 0;
  uint64_t last_cursor = 0;
  auto last_progress = std::chrono::steady_clock::now();
  auto last_report = last_progress;
  std::string last_line;
  while (true) {
    rss_max = std::max(rss_max, (*follower_process)->ResidentKiB());
    if (rss_max > 2L * 1024 * 1024) Fail("the follower uses more than 2 GiB of memory; stopped");
    std::string error;
    std::optional<v1::GetFederationStatusResponse> status = follower_rpc.FederationStatus(&error);
    if (status && status->peers_size() == 1) {
      const v1::PeerStatus& p = status->peers(0);
      last_line = PeerLine(p);
      if (p.state() == v1::PeerStatus::FORKED || p.state() == v1::PeerStatus::POLICY_MISMATCH) {
        Fail("the follower does not follow the peer: " + last_line);
      }
      if (p.cursor() == static_cast<uint64_t>(n) && p.peer_size() == static_cast<uint64_t>(n)) break;
      if (p.cursor() != last_cursor) {
        last_cursor = p.cursor();
        last_progress = std::chrono::steady_clock::now();
      }
    } else {
      last_line = status ? absl::StrCat(status->peers_size(), " peers in the status") : error;
    }
    if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(60)) {
      Fail("no progress for 60 s; last status: " + last_line);
    }
    if (std::chrono::steady_clock::now() - last_report > std::chrono::seconds(10)) {
      last_report = std::chrono::steady_clock::now();
      std::printf("    %.0f s: %s\n", SecondsSince(start), last_line.c_str());
      std::fflush(stdout);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const double seconds = SecondsSince(start);
  const double follower_cpu = (*follower_process)->CpuSeconds();
  const double peer_cpu = peer_process->CpuSeconds() - peer_cpu_before;
  const long rss_end = (*follower_process)->ResidentKiB();
  const long rss_peak = (*follower_process)->PeakResidentKiB();
  std::optional<v1::GetFederationStatusResponse> final_status = follower_rpc.FederationStatus();
  const uint64_t rejected =
      final_status && final_status->peers_size() == 1 ? final_status->peers(0).rejected_entries() : 0;
  follower_process.reset();  // SIGTERM: the WAL is checkpointed into the file on close
  const int64_t follower_bytes = DatabaseBytes(follower.dir);
  const int64_t peer_bytes = DatabaseBytes(peer.dir);

  const double catch_up_rate = n / seconds;
  const double nd = static_cast<double>(n);
  std::printf("\n");
  std::printf("catch-up of %lld entries          : %.2f s, %.0f attestations/s (%llu rejected)\n",
              static_cast<long long>(n), seconds, catch_up_rate, static_cast<unsigned long long>(rejected));
  std::printf("  CPU: follower %.1f s, peer %.1f s   : %.0f attestations per follower CPU second\n", follower_cpu,
              peer_cpu, nd / follower_cpu);
  std::printf("ingest over gRPC (same load)      : %.2f s, %.0f attestations/s (batch %d, %d in flight)\n",
              ingested.seconds, ingested.PerSecond(), kBatch, args.inflight);
  std::printf("ratio catch-up / ingest           : %.2f (target >= 0.5)\n", catch_up_rate / ingested.PerSecond());
  std::printf("follower resident memory          : %.1f MiB at the end, %.1f MiB peak\n", rss_end / 1024.0,
              rss_peak / 1024.0);
  std::printf("follower database                 : %.1f bytes per attestation (peer's, with its log: %.1f)\n",
              follower_bytes / nd, peer_bytes / nd);
  std::fflush(stdout);
}

// --- Convergence ---

v1::SubmitRequest RoundRequest(int round, int quorum, const std::vector<consensus::SecretKey>& builders) {
  const consensus::StorePath path = BenchStorePath("federation-bench-convergence", static_cast<uint64_t>(round));
  auto claim = consensus::PathInfo::Create(
      path, consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("converge|", round))), 4096 + round, {});
  consensus::BuildMetadata meta;
  meta.output_name = "out";
  meta.system = "x86_64-linux";
  meta.build_kind = consensus::BuildKind::kRebuild;
  v1::SubmitRequest request;
  for (int b = 0; b < quorum; ++b) {
    *request.add_attestations() = proto::ToProto(consensus::SignAttestation(*claim, builders[b], meta));
  }
  return request;
}

void RunConvergence(const Args& args, const std::string& dir) {
  const std::vector<consensus::SecretKey> builders = IngestBuilders();
  const std::string policy = PolicyToml(PublicKeys(builders), args.quorum);
  std::vector<NodeSetup> nodes;
  for (const char* name : {"a", "b", "c"}) {
    nodes.push_back(MakeNodeSetup(dir + "/converge-" + name, absl::StrCat("bench-fed-", name)));
  }
  const std::string extra = absl::StrCat("[log]\ncheckpoint_interval = \"", args.checkpoint_interval,
                                         "\"\n\n[federation]\npoll_interval = \"", args.poll_interval, "\"\n");
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::vector<NodeSetup> peers;
    for (size_t j = 0; j < nodes.size(); ++j) {
      if (j != i) peers.push_back(nodes[j]);
    }
    WriteNodeConfig(nodes[i], policy, peers, extra);
  }
  std::printf(
      "convergence: 3 nodes, each following the other two; quorum %d; checkpoint_interval %s, "
      "poll_interval %s; %d rounds\n",
      args.quorum, args.checkpoint_interval.c_str(), args.poll_interval.c_str(), args.rounds);
  std::vector<std::unique_ptr<TrackedNode>> processes;
  for (const NodeSetup& node : nodes) processes.push_back(std::make_unique<TrackedNode>(args.attestd, node.dir));
  std::vector<std::unique_ptr<NodeRpc>> rpc;
  for (const NodeSetup& node : nodes) rpc.push_back(std::make_unique<NodeRpc>(node.grpc));

  // Every node follows both of its peers before the first round.
  {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (size_t i = 0; i < nodes.size(); ++i) {
      std::string last;
      while (true) {
        std::optional<v1::GetFederationStatusResponse> status = rpc[i]->FederationStatus(&last);
        int following = 0;
        if (status) {
          last.clear();
          for (const v1::PeerStatus& p : status->peers()) {
            following += p.state() == v1::PeerStatus::FOLLOWING;
            absl::StrAppend(&last, "; ", PeerLine(p));
          }
        }
        if (following == 2) break;
        if (std::chrono::steady_clock::now() > deadline) {
          Fail(absl::StrCat("node ", nodes[i].key_name, " does not follow both peers within 60 s", last));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  std::mt19937_64 rng(42);
  const double jitter_ms = 100;  // decorrelates rounds from the nodes' timers
  std::vector<double> both, first;
  int timeouts = 0;
  for (int round = 0; round < args.rounds; ++round) {
    const v1::SubmitRequest request = RoundRequest(round, args.quorum, builders);
    const std::string path = request.attestations(0).path_info().store_path();
    std::string error;
    if (!rpc[0]->Submit(request, &error)) Fail(absl::StrCat("round ", round, ": submit to A: ", error));
    const auto acknowledged = std::chrono::steady_clock::now();
    const v1::Verdict verdict = rpc[0]->Verdict(path);
    std::optional<double> at_b, at_c;
    const auto deadline = acknowledged + std::chrono::seconds(30);
    while ((!at_b || !at_c) && std::chrono::steady_clock::now() < deadline) {
      if (!at_b && rpc[1]->Verdict(path) == verdict) at_b = SecondsSince(acknowledged);
      if (!at_c && rpc[2]->Verdict(path) == verdict) at_c = SecondsSince(acknowledged);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!at_b || !at_c) {
      ++timeouts;
      std::fprintf(stderr, "round %d: B or C did not reach %s within 30 s\n", round, v1::Verdict_Name(verdict).c_str());
      continue;
    }
    both.push_back(std::max(*at_b, *at_c) * 1000);
    first.push_back(std::min(*at_b, *at_c) * 1000);
    std::this_thread::sleep_for(
        std::chrono::duration<double, std::milli>(std::uniform_real_distribution<double>(0, jitter_ms)(rng)));
  }
  std::vector<long> rss;
  for (const auto& p : processes) rss.push_back((*p)->ResidentKiB());

  std::printf("\n");
  std::printf(
      "verdict on B and C after A's ack  : median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms "
      "(%zu rounds, %d timed out)\n",
      NearestRankPercentile(both, 0.5), NearestRankPercentile(both, 0.9), NearestRankPercentile(both, 0.99), NearestRankPercentile(both, 1.0), both.size(),
      timeouts);
  std::printf("first of B and C                  : median %.1f ms, p99 %.1f ms\n", NearestRankPercentile(first, 0.5),
              NearestRankPercentile(first, 0.99));
  std::printf("resident memory A, B, C           : %.1f, %.1f, %.1f MiB\n", rss[0] / 1024.0, rss[1] / 1024.0,
              rss[2] / 1024.0);
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/var/tmp/attest-federation-bench-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) Fail("cannot make a directory under /var/tmp");
    dir = dir_template;
  }
  std::filesystem::create_directories(dir);
  for (const char* sub : {"ingest", "peer", "follower", "converge-a", "converge-b", "converge-c"}) {
    std::filesystem::remove_all(std::filesystem::path(dir) / sub);  // what an earlier run left
  }
  std::atexit(StopTrackedNodes);
  std::printf("scratch directory %s\n", dir.c_str());
  if (args.catch_up) RunCatchUp(args, dir);
  if (args.catch_up && args.convergence) std::printf("\n");
  if (args.convergence) RunConvergence(args, dir);
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
