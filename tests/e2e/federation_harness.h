// FederationHarness: a federation of real attestd processes on 127.0.0.1 for end-to-end tests.
//
// Every node gets its own directory, its own node key (real `nix key generate-secret`; the key name
// is the node's name and its log's origin) and fixed loopback ports (so a node restarted after a
// kill comes back on the same address), one shared policy (operators with one builder key each,
// made by real Nix too), and a config listing the other nodes as [[peer]]: checkpoints every 100 ms,
// peers polled every 100 ms, backoff capped at 1 s, and one tile (256 entries) per transaction, so a
// node catching up applies many batches. With PeerLinks::kForwarded each follower reaches each peer
// through its own pair of TcpForwarders (gRPC and HTTP), so Isolate(i) cuts node i off from the
// others in both directions while the test still reaches every node directly.
//
// The helpers talk to the nodes over gRPC (generated stubs, a deadline on every call) and wait by
// polling every 100 ms until a deadline; they never sleep to synchronise.
//
// Not thread-safe: one test thread drives it.
#ifndef ATTEST_TESTS_E2E_FEDERATION_HARNESS_H_
#define ATTEST_TESTS_E2E_FEDERATION_HARNESS_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "tests/e2e/node_harness.h"
#include "tests/e2e/tcp_forwarder.h"
#include "tests/support/test_support.h"

namespace attest::testing {

// How long the helpers wait for the federation to reach a state.
inline constexpr std::chrono::seconds kFederationDeadline{60};

struct FederationNodeSpec final {
  std::string name;  // node key name = log origin, e.g. "node-a"
  // Another quorum in this node's policy (same operators and builders), which gives it another policy
  // hash; 0: the federation's policy.
  int policy_quorum = 0;
  // The node runs attestd_forking (NodeBinary::kForkingAttestd): its log hands out a forged second
  // checkpoint of every size to every other request.
  bool fork_log = false;
  bool follows_others = true;  // lists the other nodes (those that are followed) as [[peer]]
  bool followed = true;        // the other nodes that follow list it as [[peer]]
};

enum class PeerLinks {
  kDirect,     // peers' configs hold the node's real ports
  kForwarded,  // one TcpForwarder pair per (follower, peer): links can be cut
};

struct BuilderSpec final {
  std::string operator_name;  // e.g. "alice-ci"
  std::string key_name;       // e.g. "alice-builder-1"
};

struct FederationOptions final {
  std::vector<FederationNodeSpec> nodes;
  std::vector<BuilderSpec> builders = {
      {"alice-ci", "alice-builder-1"}, {"bob-labs", "bob-builder-1"}, {"carol-home", "carol-builder-1"}};
  int quorum = 2;
  PeerLinks links = PeerLinks::kDirect;
  // Maintainer key names (keys made by real Nix, listed as [[maintainer]] in the policy) and the
  // policy's update_threshold (written only when there are maintainers).
  std::vector<std::string> maintainers = {};
  int update_threshold = 1;
};

// Three nodes "node-a", "node-b", "node-c" (and more with `count` up to 5), all following each other.
FederationOptions DefaultFederation(int count = 3, PeerLinks links = PeerLinks::kDirect);

// A builder: its Nix key files and the parsed secret key (signs attestations in-process).
struct Builder final {
  std::string operator_name;
  NixKeyPair key;
  consensus::SecretKey secret;
};

// What a node answers for one store path, reduced to what must agree across nodes.
struct PathView final {
  std::string path;
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  std::set<std::string> signatures;    // of the counted attestations, "<key name>:<base64>"
  std::set<std::string> fingerprints;  // of the tallies
  std::string dispute_id;
  std::string policy_hash;

  std::string DebugString() const;
  friend bool operator==(const PathView&, const PathView&) = default;
};

// What the test expects of a path on every node.
struct ExpectedPath final {
  std::string path;
  v1::Verdict verdict = v1::VERDICT_UNSPECIFIED;
  std::set<std::string> signatures;  // exactly these attestations are counted
};

struct HttpResponse final {
  int status = 0;  // 0: no answer
  std::string body;
  std::string error;  // why there is no answer
};

class FederationHarness final {
 public:
  // Makes the keys, picks the ports, starts the forwarders and writes every config; starts no node.
  explicit FederationHarness(FederationOptions options);
  ~FederationHarness();  // stops every running node (SIGTERM, SIGKILL after 10 s)
  FederationHarness(const FederationHarness&) = delete;
  FederationHarness& operator=(const FederationHarness&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& name(int node) const;
  int index_of(const std::string& name) const;  // -1 when unknown
  NodeHarness& node(int node);
  const TempDir& dir(int node) const;
  std::string database_path(int node) const;
  const std::string& node_public_key(int node) const;
  const std::string& grpc_address(int node) const;  // its real address (not through a forwarder)
  const std::string& http_address(int node) const;
  const std::string& policy_toml() const { return policy_toml_; }
  const Builder& builder(int builder) const { return builders_.at(static_cast<size_t>(builder)); }
  // Maintainer m's Nix key files (options.maintainers[m]).
  const NixKeyPair& maintainer(int m) const { return maintainers_.at(static_cast<size_t>(m)); }

  // Starts node i (waits until it listens; a test failure when it does not come up).
  bool Start(int node);
  bool StartAll();
  // Sends `signal` and waits up to 10 s for the node to exit; the exit status, or nullopt.
  std::optional<int> Stop(int node, int signal = SIGTERM);

  // Cuts (or restores) every link between node i and the others, both directions. kForwarded only.
  void Isolate(int node);
  void Reconnect(int node);

  // An attestation by builder b over TestClaim(name, content).
  consensus::Attestation Attest(int builder, std::string_view name, std::string_view content) const;
  // Submits over gRPC; ok when every attestation was ACCEPTED or ALREADY_PRESENT.
  ::testing::AssertionResult Submit(int node, const std::vector<consensus::Attestation>& attestations);

  absl::StatusOr<std::vector<PathView>> Status(int node, const std::vector<std::string>& paths);
  absl::StatusOr<v1::GetFederationStatusResponse> FederationStatus(int node);
  // The peer entry named `peer` in node i's federation status, if present.
  static std::optional<v1::PeerStatus> FindPeer(const v1::GetFederationStatusResponse& status, const std::string& peer);

  // Polls until every node in `nodes` (all when empty) answers exactly `expected` for each path
  // (verdict and counted signatures) and all of them answer the same (fingerprints, dispute id,
  // policy hash too). The failure names what each node answered last.
  ::testing::AssertionResult WaitForAgreement(const std::vector<ExpectedPath>& expected, std::vector<int> nodes = {},
                                              std::chrono::milliseconds deadline = kFederationDeadline);
  // Polls node i's federation status until `condition` holds for it; the failure shows the last one.
  ::testing::AssertionResult WaitForFederationStatus(
      int node, const std::string& what, const std::function<bool(const v1::GetFederationStatusResponse&)>& condition,
      std::chrono::milliseconds deadline = kFederationDeadline);
  // Polls until node i follows `peer` with no lag and the cursor at the peer's size >= min_size.
  ::testing::AssertionResult WaitCaughtUp(int node, const std::string& peer, uint64_t min_size = 0,
                                          std::chrono::milliseconds deadline = kFederationDeadline);

  // GET on node i's HTTP port (HTTP/1.1, Connection: close, 10 s deadline).
  HttpResponse HttpGet(int node, const std::string& target);

  // Every node's federation status and the tail of its stderr: for failure messages.
  std::string Describe();

 private:
  struct Node;
  struct Link;

  // Null while the node is not running (never started, or stopped).
  v1::Attestations::Stub* attestations_stub(int node);
  v1::Federation::Stub* federation_stub(int node);
  void DropChannel(int node);
  Node& at(int node);
  const Node& at(int node) const;

  FederationOptions options_;
  TempDir shared_dir_;  // builder keys
  std::vector<Builder> builders_;
  std::vector<NixKeyPair> maintainers_;
  std::string policy_toml_;
  std::vector<std::unique_ptr<Node>> nodes_;
  // (follower, peer) -> its forwarders; empty with PeerLinks::kDirect.
  std::map<std::pair<int, int>, std::unique_ptr<Link>> links_;
};

// Polls `condition` every `interval` until it holds or `deadline` passes; true when it held.
bool PollEvery(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds interval = std::chrono::milliseconds(100));

const char* VerdictName(v1::Verdict verdict);
const char* PeerStateName(v1::PeerStatus::State state);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_E2E_FEDERATION_HARNESS_H_
