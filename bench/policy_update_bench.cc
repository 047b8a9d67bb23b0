// Policy updates across a running federation: how long from submitting a signed successor policy to one
// node until every node of a 3-node federation decides under it.
//
// Three real attestd on loopback, each following the other two (checkpoint_interval and poll_interval
// 100 ms, as the end-to-end tests run them). Three operators with one builder key each, quorum 2, two
// maintainers (update_threshold 2). One path is attested by operator-0's and operator-1's builders and
// is CONFIRMED on all three nodes before the first round. Then every round signs the next policy of the
// chain in-process (parent = the current policy's hash, version + 1, both maintainers approve it):
// odd rounds revoke operator-1's builder key (the path falls to PENDING: one operator left), even
// rounds list it as active again (CONFIRMED). The link goes to node 0 (Policy/SubmitPolicy) and the
// bench polls Status for the path on all three nodes every 5 ms until each gives the new verdict.
// Printed: median, p90 and max of that time (from sending SubmitPolicy), and of node 0's own.
//
//   policy_update_bench --attestd build/server/attestd [--rounds 20] [--dir DIR]
//                       [--checkpoint-interval 100ms] [--poll-interval 100ms]
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
#include "consensus/attestation.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"

namespace attest::bench {
namespace {

struct Args {
  std::string attestd;
  int rounds = 20;
  std::string dir;
  std::string checkpoint_interval = "100ms";
  std::string poll_interval = "100ms";
};

[[noreturn]] void Usage(const std::string& problem) {
  if (!problem.empty()) std::fprintf(stderr, "policy_update_bench: %s\n", problem.c_str());
  std::fprintf(stderr,
               "usage: policy_update_bench --attestd PATH [--rounds N] [--dir DIR] [--checkpoint-interval D]\n"
               "         [--poll-interval D]   (D is an attestd duration, \"100ms\")\n");
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--attestd") args.attestd = value;
    else if (flag == "--rounds") args.rounds = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else if (flag == "--checkpoint-interval") args.checkpoint_interval = value;
    else if (flag == "--poll-interval") args.poll_interval = value;
    else Usage("unknown flag " + flag);
  }
  if (args.attestd.empty()) Usage("--attestd is required");
  if (args.rounds < 1) Usage("--rounds must be positive");
  return args;
}

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "policy_update_bench: %s\n", message.c_str());
  std::exit(1);
}

struct NodeSetup final {
  std::string dir;
  std::string key_name;
  std::string grpc;
  std::string http;
  std::string public_key() const { return BenchKey(key_name).public_key().ToString(); }
};

// The policy of version `version` (1: the file the nodes start with), with operator-1's builder key
// revoked when `revoke_b`. Each version is a whole statement: a key revoked in one version is active
// again in the next simply by being listed without `revoked`.
std::string PolicyToml(const std::vector<consensus::SecretKey>& builders,
                       const std::vector<consensus::SecretKey>& maintainers, int64_t version,
                       const std::string& parent, bool revoke_b) {
  std::string text;
  if (version > 1) absl::StrAppend(&text, "version = ", version, "\nparent = \"", parent, "\"\n");
  absl::StrAppend(&text, "update_threshold = ", maintainers.size(), "\nquorum = 2\n");
  for (size_t i = 0; i < builders.size(); ++i) {
    const std::string key = builders[i].public_key().ToString();
    absl::StrAppend(&text, "\n[[operator]]\nname = \"operator-", i, "\"\nbuilders = [",
                    i == 1 && revoke_b ? absl::StrCat("{key = \"", key, "\", revoked = \"compromised\"}")
                                       : absl::StrCat("\"", key, "\""),
                    "]\n");
  }
  for (const consensus::SecretKey& m : maintainers) {
    absl::StrAppend(&text, "\n[[maintainer]]\nkey = \"", m.public_key().ToString(), "\"\n");
  }
  return text;
}

consensus::Policy ParsePolicy(const std::string& toml, const std::string& what) {
  auto policy = consensus::Policy::ParseToml(toml, what);
  if (!policy.ok()) Fail(absl::StrCat(what, ": ", policy.status().message()));
  return std::move(*policy);
}

class NodeRpc final {
 public:
  explicit NodeRpc(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        attestations_(v1::Attestations::NewStub(channel_)),
        federation_(v1::Federation::NewStub(channel_)),
        policy_(v1::Policy::NewStub(channel_)) {}

  int FollowingPeers() {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetFederationStatusResponse response;
    if (!federation_->GetFederationStatus(&context, {}, &response).ok()) return 0;
    int following = 0;
    for (const v1::PeerStatus& p : response.peers()) following += p.state() == v1::PeerStatus::FOLLOWING;
    return following;
  }

  // The verdict and the hash of the policy it was decided under.
  std::pair<v1::Verdict, std::string> Verdict(const std::string& path) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::StatusRequest request;
    request.add_store_paths(path);
    v1::StatusResponse response;
    grpc::Status status = attestations_->Status(&context, request, &response);
    if (!status.ok()) Fail("Status: " + status.error_message());
    return {response.statuses(0).verdict(), response.statuses(0).policy_hash()};
  }

  void Submit(const v1::SubmitRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitResponse response;
    grpc::Status status = attestations_->Submit(&context, request, &response);
    if (!status.ok()) Fail("Submit: " + status.error_message());
    for (const v1::SubmitResult& result : response.results()) {
      if (result.outcome() != v1::SubmitResult::ACCEPTED) Fail("Submit: " + result.message());
    }
  }

  v1::SubmitPolicyResponse SubmitPolicy(const v1::PolicyLink& link) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitPolicyResponse response;
    grpc::Status status = policy_->SubmitPolicy(&context, link, &response);
    if (!status.ok()) Fail(absl::StrCat("SubmitPolicy: code ", status.error_code(), ": ", status.error_message()));
    return response;
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
  std::unique_ptr<v1::Federation::Stub> federation_;
  std::unique_ptr<v1::Policy::Stub> policy_;
};

// Polls the path on `rpc` every 5 ms until each node gives `verdict` under `policy_hash`; the seconds
// from `start` at which each did (nullopt: not within 30 s).
std::vector<std::optional<double>> WaitForVerdict(std::vector<std::unique_ptr<NodeRpc>>& rpc, const std::string& path,
                                                  v1::Verdict verdict, const std::string& policy_hash,
                                                  std::chrono::steady_clock::time_point start) {
  std::vector<std::optional<double>> at(rpc.size());
  const auto deadline = start + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (size_t i = 0; i < rpc.size(); ++i) {
      if (at[i]) continue;
      auto [got, hash] = rpc[i]->Verdict(path);
      if (got == verdict && (policy_hash.empty() || hash == policy_hash)) {
        at[i] = SecondsSince(start);
      } else {
        all = false;
      }
    }
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return at;
}

int Main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    char dir_template[] = "/var/tmp/attest-policy-update-bench-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) Fail("cannot make a directory under /var/tmp");
    dir = dir_template;
  }
  std::atexit(StopTrackedNodes);
  std::printf("scratch directory %s\n", dir.c_str());

  std::vector<consensus::SecretKey> builders, maintainers;
  for (int i = 0; i < 3; ++i) builders.push_back(BenchKey(absl::StrCat("policy-update-builder-", i)));
  for (int i = 0; i < 2; ++i) maintainers.push_back(BenchKey(absl::StrCat("policy-update-maintainer-", i)));
  std::string toml = PolicyToml(builders, maintainers, 1, "", false);
  consensus::Policy current = ParsePolicy(toml, "policy.toml");

  std::vector<NodeSetup> nodes;
  for (const char* name : {"a", "b", "c"}) {
    const std::string node_dir = absl::StrCat(dir, "/node-", name);
    std::filesystem::remove_all(node_dir);  // what an earlier run left
    std::filesystem::create_directories(node_dir);
    nodes.push_back(NodeSetup{.dir = node_dir,
                              .key_name = absl::StrCat("bench-policy-update-", name),
                              .grpc = absl::StrCat("127.0.0.1:", FreeLoopbackPort()),
                              .http = absl::StrCat("127.0.0.1:", FreeLoopbackPort())});
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeSetup& node = nodes[i];
    WriteFileOrExit(node.dir + "/policy.toml", toml);
    WriteFileOrExit(node.dir + "/node.sec", BenchKey(node.key_name).ExportText());
    std::string config = absl::StrCat("[node]\ngrpc = \"", node.grpc, "\"\nhttp = \"", node.http,
                                      "\"\ndatabase = \"attest.db\"\nkey = \"node.sec\"\npolicy = \"policy.toml\"\n",
                                      "\n[log]\ncheckpoint_interval = \"", args.checkpoint_interval,
                                      "\"\n\n[federation]\npoll_interval = \"", args.poll_interval, "\"\n");
    for (size_t j = 0; j < nodes.size(); ++j) {
      if (j == i) continue;
      absl::StrAppend(&config, "\n[[peer]]\ngrpc = \"", nodes[j].grpc, "\"\nhttp = \"", nodes[j].http,
                      "\"\nkey = \"", nodes[j].public_key(), "\"\n");
    }
    WriteFileOrExit(node.dir + "/node.toml", config);
  }
  std::printf("3 nodes, each following the other two; checkpoint_interval %s, poll_interval %s; %d rounds\n",
              args.checkpoint_interval.c_str(), args.poll_interval.c_str(), args.rounds);
  std::vector<std::unique_ptr<TrackedNode>> processes;
  for (const NodeSetup& node : nodes) processes.push_back(std::make_unique<TrackedNode>(args.attestd, node.dir));
  std::vector<std::unique_ptr<NodeRpc>> rpc;
  for (const NodeSetup& node : nodes) rpc.push_back(std::make_unique<NodeRpc>(node.grpc));
  {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (size_t i = 0; i < nodes.size(); ++i) {
      while (rpc[i]->FollowingPeers() != 2) {
        if (std::chrono::steady_clock::now() > deadline) Fail("a node does not follow both peers within 60 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  // The path, attested by operator-0 and operator-1: CONFIRMED everywhere before the first round.
  const consensus::StorePath path = BenchStorePath("policy-update-bench", 0);
  {
    auto claim = consensus::PathInfo::Create(
        path, consensus::NarHash::FromDigest(consensus::Sha256("policy-update-bench|nar")), 4096, {});
    if (!claim.ok()) Fail(std::string(claim.status().message()));
    consensus::BuildMetadata meta;
    meta.output_name = "out";
    meta.system = "x86_64-linux";
    meta.build_kind = consensus::BuildKind::kRebuild;
    v1::SubmitRequest request;
    for (int b = 0; b < 2; ++b) {
      *request.add_attestations() = proto::ToProto(consensus::SignAttestation(*claim, builders[b], meta));
    }
    rpc[0]->Submit(request);
    const auto start = std::chrono::steady_clock::now();
    for (const auto& at : WaitForVerdict(rpc, path.full(), v1::CONFIRMED, current.Hash(), start)) {
      if (!at) Fail("the path is not CONFIRMED on all three nodes within 30 s of its submission");
    }
  }

  std::mt19937_64 rng(42);
  std::vector<double> all_nodes_ms, node0_ms, submit_ms;
  int timeouts = 0;
  for (int round = 1; round <= args.rounds; ++round) {
    const bool revoke = round % 2 == 1;
    const std::string next_toml = PolicyToml(builders, maintainers, current.version() + 1, current.Hash(), revoke);
    consensus::Policy next = ParsePolicy(next_toml, absl::StrCat("policy version ", current.version() + 1));
    v1::PolicyLink link;
    link.set_toml(next_toml);
    for (const consensus::SecretKey& m : maintainers) link.add_approvals(consensus::ApprovePolicy(next, m).ToString());
    const v1::Verdict expected = revoke ? v1::PENDING : v1::CONFIRMED;

    const auto start = std::chrono::steady_clock::now();
    const v1::SubmitPolicyResponse adopted = rpc[0]->SubmitPolicy(link);
    submit_ms.push_back(SecondsSince(start) * 1000);
    if (adopted.hash() != next.Hash()) {
      Fail(absl::StrCat("round ", round, ": node 0 adopted ", adopted.hash(), ", the bench signed ", next.Hash()));
    }
    const std::vector<std::optional<double>> at = WaitForVerdict(rpc, path.full(), expected, next.Hash(), start);
    current = std::move(next);
    if (!at[0] || !at[1] || !at[2]) {
      ++timeouts;
      std::fprintf(stderr, "round %d: not every node gave %s under version %lld within 30 s\n", round,
                   v1::Verdict_Name(expected).c_str(), static_cast<long long>(current.version()));
      // The next round's update needs every node on this version, else its parent is unknown there.
      const auto more = WaitForVerdict(rpc, path.full(), expected, current.Hash(), std::chrono::steady_clock::now());
      if (!more[0] || !more[1] || !more[2]) Fail("a node did not adopt the update within 60 s; stopped");
      continue;
    }
    all_nodes_ms.push_back(std::max({*at[0], *at[1], *at[2]}) * 1000);
    node0_ms.push_back(*at[0] * 1000);
    std::printf("  round %2d: %s -> %-9s node 0 %.1f ms, all three %.1f ms\n", round,
                revoke ? "revoke operator-1's key " : "restore operator-1's key", v1::Verdict_Name(expected).c_str(),
                node0_ms.back(), all_nodes_ms.back());
    std::fflush(stdout);
    // Decorrelates rounds from the nodes' checkpoint and poll timers.
    std::this_thread::sleep_for(
        std::chrono::duration<double, std::milli>(std::uniform_real_distribution<double>(0, 100)(rng)));
  }
  std::vector<long> rss;
  for (const auto& p : processes) rss.push_back((*p)->ResidentKiB());

  std::printf("\n");
  std::printf("new verdict on all 3 nodes         : median %.1f ms, p90 %.1f ms, max %.1f ms (%zu rounds, %d timed "
              "out; target median <= 1000)\n",
              NearestRankPercentile(all_nodes_ms, 0.5), NearestRankPercentile(all_nodes_ms, 0.9), NearestRankPercentile(all_nodes_ms, 1.0),
              all_nodes_ms.size(), timeouts);
  std::printf("new verdict on node 0 (submitted to): median %.1f ms, max %.1f ms\n", NearestRankPercentile(node0_ms, 0.5),
              NearestRankPercentile(node0_ms, 1.0));
  std::printf("SubmitPolicy round trip            : median %.1f ms, max %.1f ms\n", NearestRankPercentile(submit_ms, 0.5),
              NearestRankPercentile(submit_ms, 1.0));
  std::printf("final policy                       : version %lld %s\n", static_cast<long long>(current.version()),
              current.Hash().c_str());
  std::printf("resident memory of the 3 nodes     : %.1f, %.1f, %.1f MiB\n", rss[0] / 1024.0, rss[1] / 1024.0,
              rss[2] / 1024.0);
  processes.clear();
  if (args.dir.empty()) std::filesystem::remove_all(dir);
  return timeouts == 0 ? 0 : 1;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Main(argc, argv); }
