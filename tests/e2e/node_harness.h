// NodeHarness: writes a policy and node config into a temp dir, starts a real attestd on ephemeral
// loopback ports, and finds the CLI. Shared by the end-to-end tests.
#ifndef ATTEST_TESTS_E2E_NODE_HARNESS_H_
#define ATTEST_TESTS_E2E_NODE_HARNESS_H_

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {

struct NixKeyPair final {
  std::string name;
  std::string secret_file;
  std::string public_text;
};

// Makes a key with real `nix key generate-secret` / `convert-secret-to-public`.
NixKeyPair MakeNixKey(const TempDir& dir, const std::string& name);

struct OperatorSpec final {
  std::string name;
  std::vector<std::string> builder_public_keys;
  std::vector<std::string> caches = {};  // the operator's binary cache URLs (`caches` in the policy)
};

std::string PolicyToml(int quorum, const std::vector<OperatorSpec>& operators);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a node
// that must come back on the same address after a restart.
int FreeLoopbackPort();

struct NodePorts final {
  int grpc = 0;  // 0: any free port, chosen by attestd at each start
  int http = 0;
};

// Which attestd runs.
enum class NodeBinary {
  kAttestd,
  // attestd_forking (forking_attestd_main.cc): its log hands out a forged second checkpoint of every
  // size to every other request, for tests of fork detection.
  kForkingAttestd,
};

class NodeHarness final {
 public:
  // Writes node.toml (database attest.db, key node.sec, policy policy.toml in `dir`).
  NodeHarness(const TempDir& dir, const std::string& policy_toml, const std::string& extra_node_toml = "",
              NodePorts ports = {}, NodeBinary binary = NodeBinary::kAttestd);
  // Starts attestd and waits until it reports its gRPC address. Returns false (with a test failure)
  // when it does not come up within 30 s.
  bool Start();
  std::optional<int> Stop(int signal = SIGTERM);
  Daemon* daemon() { return daemon_.get(); }
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& http_address() const { return http_address_; }  // "host:port"
  // The node's public key ("node:<base64>"), as clients trust it.
  std::string public_key() const;
  std::string config_path() const { return dir_.File("node.toml"); }
  std::string policy_path() const { return dir_.File("policy.toml"); }

  // Runs the attest CLI with `args` (the node address is not added automatically).
  RunResult Cli(const std::vector<std::string>& args, const std::string& input = "") const;

  // The verdict of store path `path` (`attest status --json`): "CONFIRMED", "DISPUTED", ...; "" (with a
  // test failure) when the CLI gives no single answer.
  std::string Verdict(const std::string& path) const;

 private:
  const TempDir& dir_;
  const NodeBinary binary_;
  int starts_ = 0;
  std::string grpc_address_;
  std::string http_address_;
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_E2E_NODE_HARNESS_H_
