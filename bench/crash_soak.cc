// Crash soak: kill -9 a node many times and account for every acknowledged attestation.
//
// Phase 1, a node under load: attestd on a fresh directory (SQLite, the default), several clients
// submitting batches of real signed attestations at once. At a random moment of the load the node is
// killed with SIGKILL and started again on the same directory. Then:
//   - the restart time: from the new process's start until a Status call is answered;
//   - every attestation of an acknowledged batch (an OK Submit answer whose result is ACCEPTED or
//     ALREADY_PRESENT) must be in the node's Status answer: the ones of this cycle after every
//     restart, all of them every --full-check-every cycles and at the end;
//   - the log: the latest checkpoint seen before the kill and the first one after must both verify
//     with the node key, the size may not shrink, and the node's consistency proof between them must
//     verify (consensus::VerifyConsistency); every new checkpoint seen during the load is checked the
//     same way against the one before it; after the restart the node must sign a checkpoint holding at
//     least every acknowledged attestation;
//   - the batches that were in flight at the kill (no answer: in doubt) are submitted again, as a
//     shipper would; each item must then come back ACCEPTED (it was not committed) or ALREADY_PRESENT
//     (it was, just not acknowledged).
// At the end every attestation ever submitted has been acknowledged, and the node's log must hold
// exactly that many entries (no entry lost, none appended twice).
//
// Phase 2, a follower during catch-up: a leader whose log holds --leader-entries attestations
// (written once per run straight into its database, as federation_bench does), and a follower with
// the leader as its only [[peer]]. The follower is killed at random moments while it replays the
// leader's log and restarted each time; its reported cursor must never be behind the one it reported
// before the kill. When it has caught up (cursor == the leader's checkpoint size), its Status answers
// for every path must equal the leader's (verdict, fingerprints, the same signatures: none lost, none
// doubled), with nothing rejected, and its own log must be empty (replicated entries are stored with
// their origin, not appended). Then a fresh follower starts, until --follower-cycles kills.
//
// Prints cycles, acknowledged, lost, restart times, catch-up times and checks passed/failed; exits 1
// at the first lost attestation or inconsistency (with the seed and cycle to reproduce it), 0 otherwise.
//
//   crash_soak --attestd build/server/attestd [--cycles 100] [--follower-cycles 20] [--seed S] [--dir DIR]
//              [--clients 4] [--batch 200] [--cycle-attestations 8000] [--kill-window-ms 50:500]
//              [--leader-entries 30000] [--follower-kill-window-ms 100:1500] [--full-check-every 10]
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/bench_support.h"
#include "bench/ingest_load.h"
#include "consensus/checkpoint.h"
#include "consensus/merkle.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "storage/sqlite_attestation_store.h"

extern char** environ;

namespace attest::bench {
namespace {

constexpr int kStatusChunk = 1000;  // paths per Status request
constexpr int64_t kReceivedUnix = 1790000000;

struct Window final {
  int min_ms = 0;
  int max_ms = 0;
};

struct Args final {
  std::string attestd;
  int cycles = 100;
  int follower_cycles = 20;
  uint64_t seed = 0;
  bool seed_given = false;
  std::string dir;
  int clients = 4;
  int batch = 200;
  int cycle_attestations = 8000;
  Window kill_window{50, 500};
  int64_t leader_entries = 30000;
  Window follower_kill_window{100, 1500};
  int full_check_every = 10;
  std::string checkpoint_interval = "100ms";
  std::string poll_interval = "50ms";
};

[[noreturn]] void Usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "crash_soak: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: crash_soak --attestd PATH [--cycles N] [--follower-cycles N] [--seed S] [--dir DIR]\n"
               "         [--clients N] [--batch N] [--cycle-attestations N] [--kill-window-ms MIN:MAX]\n"
               "         [--leader-entries N] [--follower-kill-window-ms MIN:MAX] [--full-check-every N]\n"
               "         [--checkpoint-interval D] [--poll-interval D]\n"
               "  --cycles 0 or --follower-cycles 0 skips that phase; D is an attestd duration (\"100ms\")\n");
  std::exit(2);
}

Window ParseWindow(const std::string& flag, const std::string& value) {
  const size_t colon = value.find(':');
  if (colon == std::string::npos) Usage(flag + " takes MIN:MAX in milliseconds");
  Window window{std::atoi(value.substr(0, colon).c_str()), std::atoi(value.substr(colon + 1).c_str())};
  if (window.min_ms < 0 || window.max_ms < window.min_ms) Usage(flag + ": need 0 <= MIN <= MAX");
  return window;
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") Usage("");
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--attestd") {
      args.attestd = value;
    } else if (flag == "--cycles") {
      args.cycles = std::atoi(value.c_str());
    } else if (flag == "--follower-cycles") {
      args.follower_cycles = std::atoi(value.c_str());
    } else if (flag == "--seed") {
      args.seed = std::strtoull(value.c_str(), nullptr, 10);
      args.seed_given = true;
    } else if (flag == "--dir") {
      args.dir = value;
    } else if (flag == "--clients") {
      args.clients = std::atoi(value.c_str());
    } else if (flag == "--batch") {
      args.batch = std::atoi(value.c_str());
    } else if (flag == "--cycle-attestations") {
      args.cycle_attestations = std::atoi(value.c_str());
    } else if (flag == "--kill-window-ms") {
      args.kill_window = ParseWindow(flag, value);
    } else if (flag == "--leader-entries") {
      args.leader_entries = std::atoll(value.c_str());
    } else if (flag == "--follower-kill-window-ms") {
      args.follower_kill_window = ParseWindow(flag, value);
    } else if (flag == "--full-check-every") {
      args.full_check_every = std::atoi(value.c_str());
    } else if (flag == "--checkpoint-interval") {
      args.checkpoint_interval = value;
    } else if (flag == "--poll-interval") {
      args.poll_interval = value;
    } else {
      Usage("unknown flag " + flag);
    }
  }
  if (args.attestd.empty()) Usage("--attestd is required");
  if (args.cycles < 0 || args.follower_cycles < 0) Usage("cycles cannot be negative");
  if (args.clients < 1 || args.batch < 1 || args.cycle_attestations < args.batch) {
    Usage("--clients and --batch must be positive, --cycle-attestations at least --batch");
  }
  if (args.leader_entries < 3) Usage("--leader-entries must be at least 3");
  if (args.full_check_every < 1) Usage("--full-check-every must be positive");
  if (!args.seed_given) args.seed = std::random_device{}();
  return args;
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "crash_soak: %s\n", message.c_str());
  std::exit(1);
}

void Check(const absl::Status& status, const std::string& what) {
  if (!status.ok()) Fail(absl::StrCat(what, ": ", status.message()));
}

std::string Milliseconds(const std::vector<double>& seconds) {
  if (seconds.empty()) return "-";
  return absl::StrCat(static_cast<int>(NearestRankPercentile(seconds, 0.5) * 1000 + 0.5), " / ",
                      static_cast<int>(NearestRankPercentile(seconds, 0.9) * 1000 + 0.5), " / ",
                      static_cast<int>(NearestRankPercentile(seconds, 1.0) * 1000 + 0.5), " ms");
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::trunc);
  out << content;
  if (!out.flush()) Fail("cannot write " + path);
}

// --- Processes ---

// The attestd processes running now, so that a run ended by Fail (std::exit skips destructors) does
// not leave them behind. Only processes this program started are ever signalled.
std::vector<pid_t>& LiveNodes() {
  static auto* pids = new std::vector<pid_t>();  // never destroyed: StopLiveNodes runs at exit
  return *pids;
}

void StopLiveNodes() {
  for (pid_t pid : LiveNodes()) kill(pid, SIGTERM);
  for (pid_t pid : LiveNodes()) waitpid(pid, nullptr, 0);
  LiveNodes().clear();
}

// One node directory (node.toml, key, policy, database) and the attestd process running on it, if
// any. Each start writes stdout to attestd.out (where the address is read) and appends stderr to
// attestd.err, so the log of every run survives the kills.
class Attestd final {
 public:
  Attestd(std::string attestd, std::string dir) : attestd_(std::move(attestd)), dir_(std::move(dir)) {}
  ~Attestd() {
    if (pid_ > 0) Stop(SIGTERM);
  }
  Attestd(const Attestd&) = delete;
  Attestd& operator=(const Attestd&) = delete;

  struct Addresses final {
    std::string grpc;
    std::string http;
  };

  // Spawns attestd and waits (60 s at most) until it prints its gRPC and HTTP addresses. The clock
  // starts at the spawn: started_at().
  Addresses Start() {
    const std::string out = dir_ + "/attestd.out";
    const std::string err = dir_ + "/attestd.err";
    const std::string config = dir_ + "/node.toml";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char*> argv{const_cast<char*>(attestd_.c_str()), const_cast<char*>("--config"),
                            const_cast<char*>(config.c_str()), nullptr};
    started_at_ = std::chrono::steady_clock::now();
    const int spawned = posix_spawn(&pid_, attestd_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) Fail("cannot start " + attestd_);
    LiveNodes().push_back(pid_);
    const auto deadline = started_at_ + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      Addresses addresses;
      std::ifstream in(out);
      for (std::string line; std::getline(in, line);) {
        for (auto [needle, field] : {std::pair{"grpc listening on ", &addresses.grpc},
                                     std::pair{"http listening on ", &addresses.http}}) {
          const size_t at = line.find(needle);
          if (at != std::string::npos) *field = line.substr(at + std::string(needle).size());
        }
      }
      if (!addresses.grpc.empty() && !addresses.http.empty()) return addresses;
      int wait_status = 0;
      if (waitpid(pid_, &wait_status, WNOHANG) == pid_) {
        std::erase(LiveNodes(), pid_);
        pid_ = -1;
        Fail(absl::StrCat("attestd exited while starting (status ", wait_status, "); see ", err));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    Fail("attestd did not print its addresses within 60 s; see " + err);
  }

  // Sends `signal` to the process (only this one, by its pid) and reaps it.
  void Stop(int signal) {
    if (pid_ <= 0) return;
    kill(pid_, signal);
    waitpid(pid_, nullptr, 0);
    std::erase(LiveNodes(), pid_);
    pid_ = -1;
  }

  const std::string& dir() const { return dir_; }
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }

 private:
  const std::string attestd_;
  const std::string dir_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_at_;
};

// --- Node files ---

std::string PolicyToml(const std::vector<std::string>& builder_public_keys) {
  std::string text = "quorum = 2\n";
  for (size_t i = 0; i < builder_public_keys.size(); ++i) {
    absl::StrAppend(&text, "\n[[operator]]\nname = \"operator-", i, "\"\nbuilders = [\"", builder_public_keys[i],
                    "\"]\n");
  }
  return text;
}

// node.toml (ports chosen by attestd at each start), node.sec and policy.toml in `dir`; `extra` is
// appended to node.toml.
void WriteNodeConfig(const std::string& dir, const std::string& key_name, const std::string& extra) {
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/policy.toml", PolicyToml(PublicKeys(IngestBuilders())));
  WriteFile(dir + "/node.sec", BenchKey(key_name).ExportText());
  WriteFile(dir + "/node.toml",
            absl::StrCat("[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ndatabase = \"attest.db\"\n"
                         "key = \"node.sec\"\npolicy = \"policy.toml\"\n\n",
                         extra));
}

// --- RPCs ---

// A signed checkpoint the soak has verified with the node key.
struct SignedTree final {
  uint64_t size = 0;
  consensus::MerkleHash root{};
  std::string note;
};

class NodeClient final {
 public:
  NodeClient(const std::string& address, consensus::PublicKey node_key)
      : channel_(MakeChannel(address)),
        attestations_(v1::Attestations::NewStub(channel_)),
        log_(v1::LogService::NewStub(channel_)),
        federation_(v1::Federation::NewStub(channel_)),
        node_key_(std::move(node_key)) {}

  grpc::Status Submit(const v1::SubmitRequest& request, v1::SubmitResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    return attestations_->Submit(&context, request, response);
  }

  grpc::Status Status(const std::vector<std::string>& paths, v1::StatusResponse* response,
                      std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    v1::StatusRequest request;
    for (const std::string& path : paths) request.add_store_paths(path);
    return attestations_->Status(&context, request, response);
  }

  // The node's latest checkpoint, verified with the node key. nullopt when the node has signed none
  // yet or cannot be reached (`error` says which); a checkpoint that does not verify ends the run.
  std::optional<SignedTree> Checkpoint(std::string* error) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetCheckpointResponse response;
    grpc::Status status = log_->GetCheckpoint(&context, {}, &response);
    if (!status.ok()) {
      *error = absl::StrCat("GetCheckpoint: code ", status.error_code(), ": ", status.error_message());
      return std::nullopt;
    }
    if (!response.publishing_error().empty()) {
      Fail("the node stopped publishing its log: " + response.publishing_error());
    }
    absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(response.checkpoint(), node_key_);
    if (!checkpoint.ok()) {
      Fail(absl::StrCat("the node's checkpoint does not verify with its key: ", checkpoint.status().message(),
                        "\n", response.checkpoint()));
    }
    return SignedTree{.size = checkpoint->size, .root = checkpoint->root, .note = response.checkpoint()};
  }

  // OK when `newer` extends `older`: not smaller, and the node's consistency proof between them
  // verifies against both signed roots.
  absl::Status CheckConsistent(const SignedTree& older, const SignedTree& newer) {
    if (newer.size < older.size) {
      return absl::DataLossError(absl::StrCat("the log shrank from ", older.size, " to ", newer.size, " entries"));
    }
    std::vector<consensus::MerkleHash> proof;
    if (older.size > 0 && older.size < newer.size) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::GetConsistencyProofRequest request;
      request.set_old_size(older.size);
      request.set_new_size(newer.size);
      v1::GetConsistencyProofResponse response;
      grpc::Status status = log_->GetConsistencyProof(&context, request, &response);
      if (!status.ok()) {
        return absl::UnavailableError(absl::StrCat("GetConsistencyProof(", older.size, ", ", newer.size,
                                                   "): code ", status.error_code(), ": ", status.error_message()));
      }
      for (const std::string& hash : response.hashes()) {
        if (hash.size() != 32) return absl::DataLossError("a consistency proof hash is not 32 bytes");
        consensus::MerkleHash h;
        std::copy(hash.begin(), hash.end(), h.begin());
        proof.push_back(h);
      }
    }
    absl::Status verified = consensus::VerifyConsistency(older.size, newer.size, older.root, newer.root, proof);
    if (!verified.ok()) {
      return absl::DataLossError(absl::StrCat("checkpoint of size ", older.size, " is not consistent with size ",
                                              newer.size, ": ", verified.message(), "\nolder:\n", older.note,
                                              "newer:\n", newer.note));
    }
    return absl::OkStatus();
  }

  std::optional<v1::PeerStatus> Peer(std::string* error) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetFederationStatusResponse response;
    grpc::Status status = federation_->GetFederationStatus(&context, {}, &response);
    if (!status.ok()) {
      *error = absl::StrCat("GetFederationStatus: code ", status.error_code(), ": ", status.error_message());
      return std::nullopt;
    }
    if (response.peers_size() != 1) {
      *error = absl::StrCat(response.peers_size(), " peers in the federation status");
      return std::nullopt;
    }
    return response.peers(0);
  }

 private:
  static std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
    grpc::ChannelArguments arguments;
    arguments.SetInt("grpc.use_local_subchannel_pool", 1);  // each client its own connection
    arguments.SetMaxReceiveMessageSize(64 << 20);
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), arguments);
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::LogService::Stub> log_;
  std::unique_ptr<v1::Federation::Stub> federation_;
  const consensus::PublicKey node_key_;
};

struct Serving final {
  Attestd::Addresses address;
  std::unique_ptr<NodeClient> client;
  double restart_seconds = 0;  // from the spawn until a Status call was answered
};

// Starts the node and waits until it answers a Status call.
Serving StartServing(Attestd& node, const consensus::PublicKey& node_key, const std::string& probe_path) {
  Serving serving;
  serving.address = node.Start();
  serving.client = std::make_unique<NodeClient>(serving.address.grpc, node_key);
  const auto deadline = node.started_at() + std::chrono::seconds(60);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    v1::StatusResponse response;
    grpc::Status status = serving.client->Status({probe_path}, &response, std::chrono::seconds(1));
    if (status.ok()) {
      serving.restart_seconds = SecondsSince(node.started_at());
      return serving;
    }
    last = status.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  Fail("the node printed its address but answered no Status call within 60 s: " + last);
}

// Polls the node's checkpoint until `done(tree)` holds (deadline 60 s).
template <typename Done>
SignedTree WaitForCheckpoint(NodeClient& client, const std::string& what, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string last = "no checkpoint yet";
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<SignedTree> tree = client.Checkpoint(&last);
    if (tree) {
      if (done(*tree)) return *tree;
      last = absl::StrCat("latest checkpoint has size ", tree->size);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Fail(absl::StrCat("no checkpoint ", what, " within 60 s (", last, ")"));
}

// Path -> the signatures of the counted attestations the node answers for it. Fails the run when the
// node does not answer.
std::map<std::string, std::set<std::string>> HeldSignatures(NodeClient& client, const std::set<std::string>& paths) {
  std::map<std::string, std::set<std::string>> held;
  std::vector<std::string> chunk;
  auto flush = [&] {
    v1::StatusResponse response;
    grpc::Status status = client.Status(chunk, &response);
    if (!status.ok()) Fail("the restarted node does not answer Status: " + status.error_message());
    for (const v1::PathStatus& path : response.statuses()) {
      std::set<std::string>& signatures = held[path.store_path()];
      for (const v1::CountedAttestation& a : path.attestations()) signatures.insert(a.signature());
    }
    chunk.clear();
  };
  for (const std::string& path : paths) {
    chunk.push_back(path);
    if (chunk.size() == kStatusChunk) flush();
  }
  if (!chunk.empty()) flush();
  return held;
}

// --- Phase 1: a node under load ---

struct Item final {
  std::string path;
  std::string signature;
};

enum class BatchState { kUnsent, kAcknowledged, kInDoubt };

struct Batch final {
  int64_t first = 0;  // global index of its first attestation
  v1::SubmitRequest request;
  BatchState state = BatchState::kUnsent;
};

struct LoadFigures final {
  int cycles = 0;
  int64_t submitted = 0;      // attestations in batches sent at least once
  int64_t acknowledged = 0;   // in acknowledged batches (after the resubmissions: all submitted)
  int64_t in_doubt = 0;       // in batches without an answer at a kill
  int64_t in_doubt_present = 0;  // of those, ALREADY_PRESENT when sent again (committed, unacknowledged)
  int64_t lost = 0;
  int64_t checked = 0;        // acknowledged attestations looked up after a restart (with repeats)
  int consistency_passed = 0;
  int consistency_failed = 0;
  int load_ran_out = 0;       // cycles whose pre-signed load was all acknowledged before the kill
  std::vector<double> restart_seconds;
  std::vector<double> kill_after_seconds;
  uint64_t final_log_size = 0;
};

std::vector<Batch> SignCycleLoad(int64_t first, int count, int batch_size,
                                 const std::vector<consensus::SecretKey>& builders, std::vector<Item>& items) {
  const int batches = (count + batch_size - 1) / batch_size;
  std::vector<Batch> load(static_cast<size_t>(batches));
  items.resize(static_cast<size_t>(first + count));
  std::vector<std::thread> signers;
  for (int t = 0; t < 2; ++t) {
    signers.emplace_back([&, t] {
      for (int b = t; b < batches; b += 2) {
        load[b].first = first + static_cast<int64_t>(b) * batch_size;
        for (int64_t i = load[b].first; i < std::min(first + count, load[b].first + batch_size); ++i) {
          v1::Attestation message = proto::ToProto(IngestAttestation(i, builders));
          items[static_cast<size_t>(i)] = Item{message.path_info().store_path(), message.signature()};
          *load[b].request.add_attestations() = std::move(message);
        }
      }
    });
  }
  for (std::thread& t : signers) t.join();
  return load;
}

// The indices among `indices` whose attestation the node does not hold.
std::vector<int64_t> Missing(NodeClient& client, const std::vector<Item>& items, const std::vector<int64_t>& indices) {
  std::set<std::string> paths;
  for (int64_t i : indices) paths.insert(items[static_cast<size_t>(i)].path);
  const auto held = HeldSignatures(client, paths);
  std::vector<int64_t> missing;
  for (int64_t i : indices) {
    const Item& item = items[static_cast<size_t>(i)];
    auto it = held.find(item.path);
    if (it == held.end() || !it->second.contains(item.signature)) missing.push_back(i);
  }
  return missing;
}

// Watches the node's checkpoints during the load: every new one must verify and be consistent with the
// one before it. latest() is the newest seen.
class CheckpointWatch final {
 public:
  CheckpointWatch(NodeClient* client, std::optional<SignedTree> start, LoadFigures* figures)
      : client_(client), latest_(std::move(start)), figures_(figures), thread_([this] { Run(); }) {}
  ~CheckpointWatch() { Finish(); }

  void Finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::optional<SignedTree> latest() {
    std::lock_guard<std::mutex> lock(mu_);
    return latest_;
  }

 private:
  void Run() {
    while (!stop_) {
      std::string error;
      std::optional<SignedTree> tree = client_->Checkpoint(&error);
      if (tree) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!latest_ || tree->size != latest_->size || tree->root != latest_->root) {
          if (latest_) {
            absl::Status consistent = client_->CheckConsistent(*latest_, *tree);
            if (consistent.code() == absl::StatusCode::kUnavailable) continue;  // killed in between
            if (!consistent.ok()) {
              ++figures_->consistency_failed;
              Fail(absl::StrCat("during the load: ", consistent.message()));
            }
            ++figures_->consistency_passed;
          }
          latest_ = *tree;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  NodeClient* const client_;
  std::mutex mu_;
  std::optional<SignedTree> latest_;
  LoadFigures* const figures_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends `batch`; true when the call succeeded and every item was ACCEPTED or ALREADY_PRESENT.
// `already_present` counts the latter. A REJECTED item ends the run: the load is valid.
bool SubmitBatch(NodeClient& client, const Batch& batch, int64_t* already_present) {
  v1::SubmitResponse response;
  grpc::Status status = client.Submit(batch.request, &response);
  if (!status.ok()) return false;
  if (response.results_size() != batch.request.attestations_size()) {
    Fail(absl::StrCat("a Submit answer has ", response.results_size(), " results for ",
                      batch.request.attestations_size(), " attestations"));
  }
  for (int i = 0; i < response.results_size(); ++i) {
    const v1::SubmitResult& result = response.results(i);
    if (result.outcome() == v1::SubmitResult::ALREADY_PRESENT) {
      ++*already_present;
    } else if (result.outcome() != v1::SubmitResult::ACCEPTED) {
      Fail(absl::StrCat("attestation ", batch.first + i, " was answered ",
                        v1::SubmitResult::Outcome_Name(result.outcome()), ": ", result.message()));
    }
  }
  return true;
}

void PrintLoadFigures(const LoadFigures& f) {
  std::printf("\nphase 1: node under load, kill -9 at a random moment of the load\n");
  std::printf("  cycles                           : %d\n", f.cycles);
  std::printf("  attestations acknowledged        : %lld (all submitted: %lld)\n",
              static_cast<long long>(f.acknowledged), static_cast<long long>(f.submitted));
  std::printf("  in doubt at a kill (no answer)   : %lld; sent again: %lld were already stored, the rest accepted\n",
              static_cast<long long>(f.in_doubt), static_cast<long long>(f.in_doubt_present));
  std::printf("  lost                             : %lld (%lld look-ups after restarts)\n",
              static_cast<long long>(f.lost), static_cast<long long>(f.checked));
  std::printf("  restart until Status answers     : median / p90 / max %s\n", Milliseconds(f.restart_seconds).c_str());
  std::printf("  kill after the load started      : median / max %d / %d ms\n",
              static_cast<int>(NearestRankPercentile(f.kill_after_seconds, 0.5) * 1000),
              static_cast<int>(NearestRankPercentile(f.kill_after_seconds, 1.0) * 1000));
  std::printf("  log consistency checks           : %d passed, %d failed\n", f.consistency_passed,
              f.consistency_failed);
  std::printf("  final log size                   : %llu entries (acknowledged attestations: %lld)\n",
              static_cast<unsigned long long>(f.final_log_size), static_cast<long long>(f.acknowledged));
  if (f.load_ran_out > 0) {
    std::printf("  cycles whose load ended before the kill: %d (raise --cycle-attestations)\n", f.load_ran_out);
  }
  std::fflush(stdout);
}

LoadFigures RunLoadPhase(const Args& args, const std::string& dir, std::mt19937_64& rng) {
  LoadFigures figures;
  const std::vector<consensus::SecretKey> builders = IngestBuilders();
  const std::string node_dir = dir + "/load";
  std::filesystem::remove_all(node_dir);
  WriteNodeConfig(node_dir, "crash-soak-node",
                  absl::StrCat("[log]\ncheckpoint_interval = \"", args.checkpoint_interval, "\"\n"));
  const consensus::PublicKey node_key = BenchKey("crash-soak-node").public_key();
  std::printf("phase 1: %d cycles; %d clients, batches of %d, %d pre-signed attestations per cycle, kill %d-%d ms "
              "into the load; node in %s\n",
              args.cycles, args.clients, args.batch, args.cycle_attestations, args.kill_window.min_ms,
              args.kill_window.max_ms, node_dir.c_str());
  std::fflush(stdout);

  std::vector<Item> items;             // every attestation signed so far, by global index
  std::vector<int64_t> acknowledged;   // global indices, in the order acknowledged
  const std::string probe = BenchStorePath("crash-soak-probe", 0).full();
  Attestd node(args.attestd, node_dir);
  Serving serving = StartServing(node, node_key, probe);
  std::optional<SignedTree> before;  // the latest checkpoint seen, carried across restarts
  std::uniform_int_distribution<int> kill_ms(args.kill_window.min_ms, args.kill_window.max_ms);

  for (int cycle = 1; cycle <= args.cycles; ++cycle) {
    const int64_t first = static_cast<int64_t>(items.size());
    std::vector<Batch> load = SignCycleLoad(first, args.cycle_attestations, args.batch, builders, items);
    const auto kill_after = std::chrono::milliseconds(kill_ms(rng));

    // The load, the checkpoint watch, and the kill.
    std::atomic<size_t> next{0};
    std::atomic<size_t> answered{0};
    std::atomic<bool> killed{false};
    std::mutex mu;
    std::vector<int64_t> cycle_acknowledged;
    {
      CheckpointWatch watch(serving.client.get(), before, &figures);
      std::vector<std::thread> clients;
      const auto load_start = std::chrono::steady_clock::now();
      for (int c = 0; c < args.clients; ++c) {
        clients.emplace_back([&] {
          NodeClient own(serving.address.grpc, node_key);
          int64_t already_present = 0;  // possible only for the resubmissions below
          while (!killed) {
            const size_t b = next++;
            if (b >= load.size()) break;
            Batch& batch = load[b];
            if (SubmitBatch(own, batch, &already_present)) {
              batch.state = BatchState::kAcknowledged;
              std::lock_guard<std::mutex> lock(mu);
              for (int64_t i = 0; i < batch.request.attestations_size(); ++i) {
                cycle_acknowledged.push_back(batch.first + i);
              }
            } else {
              batch.state = BatchState::kInDoubt;
            }
            ++answered;
          }
        });
      }
      std::this_thread::sleep_until(load_start + kill_after);
      if (answered == load.size()) ++figures.load_ran_out;
      // No client starts another call from here on; the calls in flight meet the kill.
      killed = true;
      node.Stop(SIGKILL);
      figures.kill_after_seconds.push_back(SecondsSince(load_start));
      for (std::thread& t : clients) t.join();
      watch.Finish();
      before = watch.latest();
    }
    for (const Batch& batch : load) {
      if (batch.state != BatchState::kUnsent) figures.submitted += batch.request.attestations_size();
    }

    // Restart; every acknowledged attestation must be there.
    serving = StartServing(node, node_key, probe);
    figures.restart_seconds.push_back(serving.restart_seconds);
    acknowledged.insert(acknowledged.end(), cycle_acknowledged.begin(), cycle_acknowledged.end());
    figures.acknowledged += static_cast<int64_t>(cycle_acknowledged.size());
    const bool full_check = cycle % args.full_check_every == 0;
    const std::vector<int64_t>& to_check = full_check ? acknowledged : cycle_acknowledged;
    const std::vector<int64_t> missing = Missing(*serving.client, items, to_check);
    figures.checked += static_cast<int64_t>(to_check.size());
    if (!missing.empty()) {
      figures.lost = static_cast<int64_t>(missing.size());
      figures.cycles = cycle;
      for (size_t m = 0; m < std::min<size_t>(missing.size(), 10); ++m) {
        const Item& item = items[static_cast<size_t>(missing[m])];
        std::fprintf(stderr, "lost: attestation %lld, %s, %s\n", static_cast<long long>(missing[m]),
                     item.path.c_str(), item.signature.c_str());
      }
      PrintLoadFigures(figures);
      Fail(absl::StrCat(missing.size(), " acknowledged attestations lost after the kill of cycle ", cycle,
                        " (reproduce with --seed ", args.seed, "; the node's directory is ", node_dir, ")"));
    }

    // The log after the restart: the checkpoint the node serves first, then one that holds every
    // acknowledged attestation, each consistent with the one before.
    std::string error;
    std::optional<SignedTree> after = serving.client->Checkpoint(&error);
    if (before && !after) {
      ++figures.consistency_failed;
      PrintLoadFigures(figures);
      Fail(absl::StrCat("cycle ", cycle, ": the node signed a checkpoint of size ", before->size,
                        " before the kill and serves none after the restart: ", error));
    }
    auto check = [&](const std::optional<SignedTree>& older, const SignedTree& newer) {
      if (!older) return;
      absl::Status consistent = serving.client->CheckConsistent(*older, newer);
      if (!consistent.ok()) {
        ++figures.consistency_failed;
        PrintLoadFigures(figures);
        Fail(absl::StrCat("cycle ", cycle, " (seed ", args.seed, "): ", consistent.message()));
      }
      ++figures.consistency_passed;
    };
    if (after) check(before, *after);
    const SignedTree covering = WaitForCheckpoint(
        *serving.client, absl::StrCat("holding the ", acknowledged.size(), " acknowledged attestations"),
        [&](const SignedTree& tree) { return tree.size >= acknowledged.size(); });
    check(after ? after : before, covering);
    before = covering;

    // The batches in flight at the kill, sent again as a shipper would.
    for (Batch& batch : load) {
      if (batch.state != BatchState::kInDoubt) continue;
      figures.in_doubt += batch.request.attestations_size();
      if (!SubmitBatch(*serving.client, batch, &figures.in_doubt_present)) {
        Fail(absl::StrCat("cycle ", cycle, ": the restarted node refused a batch sent again"));
      }
      batch.state = BatchState::kAcknowledged;
      for (int64_t i = 0; i < batch.request.attestations_size(); ++i) acknowledged.push_back(batch.first + i);
      figures.acknowledged += batch.request.attestations_size();
    }
    figures.cycles = cycle;
    if (cycle % 10 == 0 || cycle == args.cycles) {
      std::printf("  cycle %d: %lld acknowledged, restart %.0f ms, log size %llu%s\n", cycle,
                  static_cast<long long>(figures.acknowledged), serving.restart_seconds * 1000,
                  static_cast<unsigned long long>(covering.size), full_check ? ", all acknowledged checked" : "");
      std::fflush(stdout);
    }
  }

  // Every attestation sent is now acknowledged; all must be there, and the log must hold exactly them.
  const std::vector<int64_t> missing = Missing(*serving.client, items, acknowledged);
  figures.checked += static_cast<int64_t>(acknowledged.size());
  figures.lost = static_cast<int64_t>(missing.size());
  if (!missing.empty()) {
    PrintLoadFigures(figures);
    Fail(absl::StrCat(missing.size(), " acknowledged attestations missing at the end (seed ", args.seed, ")"));
  }
  if (figures.acknowledged != figures.submitted) {
    Fail(absl::StrCat("accounting: ", figures.acknowledged, " acknowledged but ", figures.submitted, " submitted"));
  }
  const SignedTree last = WaitForCheckpoint(
      *serving.client, absl::StrCat("holding all ", acknowledged.size(), " attestations"),
      [&](const SignedTree& tree) { return tree.size >= acknowledged.size(); });
  std::string error;
  if (before) {
    absl::Status consistent = serving.client->CheckConsistent(*before, last);
    consistent.ok() ? ++figures.consistency_passed : ++figures.consistency_failed;
    Check(consistent, "the final checkpoint");
  }
  figures.final_log_size = last.size;
  if (last.size != acknowledged.size()) {
    ++figures.consistency_failed;
    PrintLoadFigures(figures);
    Fail(absl::StrCat("the log holds ", last.size, " entries for ", acknowledged.size(),
                      " stored attestations (an entry appended twice?)"));
  }
  node.Stop(SIGTERM);
  return figures;
}

// --- Phase 2: a follower during catch-up ---

struct FollowerFigures final {
  int64_t leader_size = 0;
  int rounds = 0;
  int kills = 0;
  int kills_mid_catch_up = 0;  // the cursor was short of the leader's size at the last look before the kill
  int cursor_checks = 0;       // after a restart, the cursor was not behind the one reported before the kill
  int64_t paths_compared = 0;
  int64_t attestations_compared = 0;
  std::vector<double> restart_seconds;
  std::vector<double> catch_up_seconds;   // a fresh follower's start until caught up, kills included
  std::vector<double> uninterrupted_seconds;  // a round without kills (the last round, when it has none)
  std::vector<uint64_t> follower_log_sizes;
};

// What a node answers for a path, as one comparable string: verdict, fingerprints with their operators
// and builders, and the signatures (sorted, duplicates kept).
std::string PathAnswer(const v1::PathStatus& status, int64_t* signatures) {
  std::vector<std::string> fingerprints;
  for (const v1::FingerprintTally& tally : status.fingerprints()) {
    std::vector<std::string> operators(tally.operators().begin(), tally.operators().end());
    std::vector<std::string> builders(tally.builders().begin(), tally.builders().end());
    std::sort(operators.begin(), operators.end());
    std::sort(builders.begin(), builders.end());
    fingerprints.push_back(absl::StrCat(tally.fingerprint(), " by ", absl::StrJoin(operators, ","), " / ",
                                        absl::StrJoin(builders, ",")));
  }
  std::sort(fingerprints.begin(), fingerprints.end());
  std::vector<std::string> signed_by;
  for (const v1::CountedAttestation& a : status.attestations()) signed_by.push_back(a.signature());
  std::sort(signed_by.begin(), signed_by.end());
  *signatures += static_cast<int64_t>(signed_by.size());
  return absl::StrCat(v1::Verdict_Name(status.verdict()), "\n", absl::StrJoin(fingerprints, "\n"), "\n",
                      absl::StrJoin(signed_by, "\n"));
}

std::map<std::string, std::string> Answers(NodeClient& client, const std::vector<std::string>& paths,
                                           int64_t* signatures) {
  std::map<std::string, std::string> answers;
  for (size_t at = 0; at < paths.size(); at += kStatusChunk) {
    std::vector<std::string> chunk(paths.begin() + static_cast<ptrdiff_t>(at),
                                   paths.begin() + static_cast<ptrdiff_t>(std::min(paths.size(), at + kStatusChunk)));
    v1::StatusResponse response;
    grpc::Status status = client.Status(chunk, &response);
    if (!status.ok()) Fail("Status: " + status.error_message());
    for (const v1::PathStatus& path : response.statuses()) {
      answers[path.store_path()] = PathAnswer(path, signatures);
    }
  }
  return answers;
}

// The leader's database: `entries` attestations of ingest_bench's load appended to its log.
std::vector<std::string> FillLeader(const std::string& file, int64_t entries) {
  const std::vector<v1::SubmitRequest> requests = PresignIngestLoad(entries, 1000, IngestBuilders());
  auto store = storage::SqliteAttestationStore::Open(file, {});
  Check(store.status(), "opening the leader's database");
  std::set<std::string> paths;
  for (const v1::SubmitRequest& request : requests) {
    storage::WriteBatch batch;
    batch.log_append = storage::LogAppend::kAll;
    for (const v1::Attestation& message : request.attestations()) {
      paths.insert(message.path_info().store_path());
      auto attestation = proto::FromProto(message);
      Check(attestation.status(), "converting a pre-signed attestation");
      batch.attestations.push_back(storage::StoredAttestation{.attestation = *std::move(attestation),
                                                              .received_unix = kReceivedUnix,
                                                              .observed_key = std::nullopt,
                                                              .origin = ""});
    }
    Check((*store)->Write(batch).status(), "writing the leader's database");
  }
  return std::vector<std::string>(paths.begin(), paths.end());
}

// Polls the follower's view of its peer until `done(peer)` holds; fails on a fork or a policy mismatch,
// or when the cursor does not move for 60 s.
template <typename Done>
v1::PeerStatus WaitForPeer(NodeClient& client, Done done) {
  auto last_progress = std::chrono::steady_clock::now();
  uint64_t last_cursor = 0;
  std::string last = "no answer";
  while (std::chrono::steady_clock::now() - last_progress < std::chrono::seconds(60)) {
    std::optional<v1::PeerStatus> peer = client.Peer(&last);
    if (peer) {
      if (peer->state() == v1::PeerStatus::FORKED || peer->state() == v1::PeerStatus::POLICY_MISMATCH) {
        Fail(absl::StrCat("the follower stopped following the leader: ", v1::PeerStatus::State_Name(peer->state()),
                          " ", peer->last_error()));
      }
      if (done(*peer)) return *peer;
      if (peer->cursor() != last_cursor) {
        last_cursor = peer->cursor();
        last_progress = std::chrono::steady_clock::now();
      }
      last = absl::StrCat("cursor ", peer->cursor(), ", peer size ", peer->peer_size(), ", ", peer->last_error());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Fail("the follower made no progress for 60 s: " + last);
}

void PrintFollowerFigures(const FollowerFigures& f) {
  std::printf("\nphase 2: follower catching up with a %lld-entry log, kill -9 at random moments\n",
              static_cast<long long>(f.leader_size));
  std::printf("  kills                            : %d (%d with the cursor short of the leader's size), %d "
              "fresh followers\n",
              f.kills, f.kills_mid_catch_up, f.rounds);
  std::printf("  cursor after restart >= before   : %d of %d restarts\n", f.cursor_checks, f.kills);
  std::printf("  restart until Status answers     : median / p90 / max %s\n", Milliseconds(f.restart_seconds).c_str());
  std::printf("  catch-up, with kills and restarts: median / p90 / max %s\n", Milliseconds(f.catch_up_seconds).c_str());
  if (!f.uninterrupted_seconds.empty()) {
    std::printf("  catch-up without a kill          : median / p90 / max %s\n",
                Milliseconds(f.uninterrupted_seconds).c_str());
  }
  std::printf("  compared with the leader         : %lld paths, %lld attestations; lost 0, doubled 0, verdicts equal\n",
              static_cast<long long>(f.paths_compared), static_cast<long long>(f.attestations_compared));
  std::vector<std::string> sizes;
  for (uint64_t size : f.follower_log_sizes) sizes.push_back(std::to_string(size));
  std::printf("  follower's own log size          : %s (replicated entries are not appended again)\n",
              absl::StrJoin(sizes, ", ").c_str());
  std::fflush(stdout);
}

FollowerFigures RunFollowerPhase(const Args& args, const std::string& dir, std::mt19937_64& rng) {
  FollowerFigures figures;
  figures.leader_size = args.leader_entries;
  const uint64_t n = static_cast<uint64_t>(args.leader_entries);
  const std::string leader_dir = dir + "/leader";
  std::filesystem::remove_all(leader_dir);
  WriteNodeConfig(leader_dir, "crash-soak-leader",
                  absl::StrCat("[log]\ncheckpoint_interval = \"", args.checkpoint_interval, "\"\n"));
  std::printf("\nphase 2: %d follower kills; leader log of %lld entries, poll_interval %s, kill %d-%d ms after the "
              "follower serves\n",
              args.follower_cycles, static_cast<long long>(args.leader_entries), args.poll_interval.c_str(),
              args.follower_kill_window.min_ms, args.follower_kill_window.max_ms);
  std::printf("  filling the leader's database...\n");
  std::fflush(stdout);
  const std::vector<std::string> paths = FillLeader(leader_dir + "/attest.db", args.leader_entries);
  const consensus::PublicKey leader_key = BenchKey("crash-soak-leader").public_key();
  const consensus::PublicKey follower_key = BenchKey("crash-soak-follower").public_key();
  Attestd leader(args.attestd, leader_dir);
  Serving leader_serving = StartServing(leader, leader_key, paths[0]);
  WaitForCheckpoint(*leader_serving.client, absl::StrCat("of size ", n),
                    [&](const SignedTree& tree) { return tree.size == n; });
  int64_t leader_signatures = 0;
  const std::map<std::string, std::string> leader_answers = Answers(*leader_serving.client, paths, &leader_signatures);
  if (leader_signatures != args.leader_entries) {
    Fail(absl::StrCat("the leader answers ", leader_signatures, " attestations, ", args.leader_entries, " written"));
  }

  const std::string follower_dir = dir + "/follower";
  const std::string federation =
      absl::StrCat("[federation]\npoll_interval = \"", args.poll_interval, "\"\n\n[[peer]]\ngrpc = \"",
                   leader_serving.address.grpc, "\"\nhttp = \"", leader_serving.address.http, "\"\nkey = \"",
                   leader_key.ToString(), "\"\n");
  std::uniform_int_distribution<int> kill_ms(args.follower_kill_window.min_ms, args.follower_kill_window.max_ms);
  while (figures.kills < args.follower_cycles) {
    ++figures.rounds;
    std::filesystem::remove_all(follower_dir);
    WriteNodeConfig(follower_dir, "crash-soak-follower", federation);
    Attestd follower(args.attestd, follower_dir);
    const auto round_start = std::chrono::steady_clock::now();
    const int kills_before = figures.kills;
    std::optional<uint64_t> cursor_at_kill;
    Serving serving;
    while (true) {
      serving = StartServing(follower, follower_key, paths[0]);
      if (cursor_at_kill) {
        figures.restart_seconds.push_back(serving.restart_seconds);
        const v1::PeerStatus peer = WaitForPeer(*serving.client, [](const v1::PeerStatus&) { return true; });
        if (peer.cursor() < *cursor_at_kill) {
          Fail(absl::StrCat("the follower reported cursor ", *cursor_at_kill, " before the kill and ", peer.cursor(),
                            " after the restart (seed ", args.seed, ")"));
        }
        ++figures.cursor_checks;
      }
      if (figures.kills >= args.follower_cycles) break;
      const auto kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kill_ms(rng));
      bool caught_up = false;
      uint64_t cursor = 0;
      while (std::chrono::steady_clock::now() < kill_at) {
        std::string error;
        std::optional<v1::PeerStatus> peer = serving.client->Peer(&error);
        if (peer) {
          cursor = peer->cursor();
          if (peer->cursor() == n && peer->peer_size() == n) {
            caught_up = true;
            break;
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (caught_up) break;
      follower.Stop(SIGKILL);
      ++figures.kills;
      if (cursor < n) ++figures.kills_mid_catch_up;
      cursor_at_kill = cursor;
    }
    const v1::PeerStatus peer = WaitForPeer(
        *serving.client, [&](const v1::PeerStatus& p) { return p.cursor() == n && p.peer_size() == n; });
    figures.catch_up_seconds.push_back(SecondsSince(round_start));
    if (figures.kills == kills_before) figures.uninterrupted_seconds.push_back(SecondsSince(round_start));
    if (peer.rejected_entries() != 0) {
      Fail(absl::StrCat("the follower rejected ", peer.rejected_entries(), " of the leader's entries: ",
                        peer.last_error()));
    }

    int64_t follower_signatures = 0;
    const std::map<std::string, std::string> answers = Answers(*serving.client, paths, &follower_signatures);
    int mismatches = 0;
    for (const auto& [path, answer] : leader_answers) {
      auto it = answers.find(path);
      if (it == answers.end() || it->second != answer) {
        if (++mismatches <= 5) {
          std::fprintf(stderr, "%s\n  leader:\n%s\n  follower:\n%s\n", path.c_str(), answer.c_str(),
                       it == answers.end() ? "(no answer)" : it->second.c_str());
        }
      }
    }
    if (mismatches > 0 || follower_signatures != leader_signatures) {
      PrintFollowerFigures(figures);
      Fail(absl::StrCat("round ", figures.rounds, ": the follower's answers differ from the leader's for ", mismatches,
                        " paths; it holds ", follower_signatures, " attestations, the leader ", leader_signatures,
                        " (seed ", args.seed, "; the follower's directory is ", follower_dir, ")"));
    }
    figures.paths_compared += static_cast<int64_t>(paths.size());
    figures.attestations_compared += follower_signatures;
    std::string error;
    std::optional<SignedTree> own = serving.client->Checkpoint(&error);
    figures.follower_log_sizes.push_back(own ? own->size : 0);
    if (own && own->size != 0) {
      Fail(absl::StrCat("round ", figures.rounds, ": the follower appended ", own->size,
                        " entries to its own log; replicated entries are stored with their origin, not appended"));
    }
    std::printf("  follower %d: %d kills, caught up in %.1f s\n", figures.rounds, figures.kills - kills_before,
                figures.catch_up_seconds.back());
    std::fflush(stdout);
    follower.Stop(SIGTERM);
  }
  leader.Stop(SIGTERM);
  return figures;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/var/tmp/attest-crash-soak-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) Fail("cannot make a directory under /var/tmp");
    dir = dir_template;
  }
  std::filesystem::create_directories(dir);
  std::atexit(StopLiveNodes);
  std::printf("crash_soak: seed %llu, scratch directory %s\n", static_cast<unsigned long long>(args.seed),
              dir.c_str());
  std::mt19937_64 rng(args.seed);
  const auto start = std::chrono::steady_clock::now();
  std::optional<LoadFigures> load;
  std::optional<FollowerFigures> follower;
  if (args.cycles > 0) load = RunLoadPhase(args, dir, rng);
  const double load_seconds = SecondsSince(start);
  if (args.follower_cycles > 0) follower = RunFollowerPhase(args, dir, rng);
  if (load) PrintLoadFigures(*load);
  if (follower) PrintFollowerFigures(*follower);
  std::printf("\nran %.0f s (phase 1 %.0f s); nothing lost, every check passed\n", SecondsSince(start), load_seconds);
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
