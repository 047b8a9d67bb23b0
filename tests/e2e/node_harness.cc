#include "tests/e2e/node_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace attest::testing {

NixKeyPair MakeNixKey(const TempDir& dir, const std::string& name) {
  NixKeyPair key;
  key.name = name;
  key.secret_file = dir.File(name + ".sec");
  RunResult secret =
      Run({"nix", "--extra-experimental-features", "nix-command", "key", "generate-secret", "--key-name", name});
  EXPECT_EQ(secret.exit_code, 0) << secret.err;
  WriteFileOrDie(key.secret_file, secret.out);
  RunResult pub = Run({"nix", "--extra-experimental-features", "nix-command", "key", "convert-secret-to-public"},
                      secret.out);
  EXPECT_EQ(pub.exit_code, 0) << pub.err;
  key.public_text = pub.out;
  while (!key.public_text.empty() && (key.public_text.back() == '\n' || key.public_text.back() == ' ')) {
    key.public_text.pop_back();
  }
  return key;
}

std::string PolicyToml(int quorum, const std::vector<OperatorSpec>& operators) {
  std::string out = absl::StrCat("quorum = ", quorum, "\n");
  for (const auto& op : operators) {
    absl::StrAppend(&out, "\n[[operator]]\nname = \"", op.name, "\"\nbuilders = [");
    for (size_t i = 0; i < op.builder_public_keys.size(); ++i) {
      absl::StrAppend(&out, i ? ", " : "", "\"", op.builder_public_keys[i], "\"");
    }
    absl::StrAppend(&out, "]\n");
    if (!op.caches.empty()) {
      absl::StrAppend(&out, "caches = [");
      for (size_t i = 0; i < op.caches.size(); ++i) absl::StrAppend(&out, i ? ", " : "", "\"", op.caches[i], "\"");
      absl::StrAppend(&out, "]\n");
    }
  }
  return out;
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot find a free loopback port";
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

NodeHarness::NodeHarness(const TempDir& dir, const std::string& policy_toml, const std::string& extra_node_toml,
                         NodePorts ports, NodeBinary binary)
    : dir_(dir), binary_(binary) {
  WriteFileOrDie(dir.File("policy.toml"), policy_toml);
  if (!std::filesystem::exists(dir.File("node.sec"))) {
    MakeNixKey(dir, "node");  // writes node.sec
  }
  WriteFileOrDie(dir.File("node.toml"), absl::StrCat("[node]\n"
                                                     "grpc = \"127.0.0.1:", ports.grpc, "\"\n"
                                                     "http = \"127.0.0.1:", ports.http, "\"\n"
                                                     "database = \"attest.db\"\n"
                                                     "key = \"node.sec\"\n"
                                                     "policy = \"policy.toml\"\n",
                                                     extra_node_toml));
}

bool NodeHarness::Start() {
  const char* attestd = binary_ == NodeBinary::kForkingAttestd ? ATTESTD_FORKING_BIN : ATTESTD_BIN;
  daemon_ = std::make_unique<Daemon>(std::vector<std::string>{attestd, "--config", config_path()},
                                     dir_.File(absl::StrCat("attestd-", starts_++)));
  auto line = daemon_->WaitForLine("grpc listening on ", std::chrono::seconds(30));
  if (!line) {
    ADD_FAILURE() << "attestd did not start; stderr:\n" << daemon_->Stderr();
    return false;
  }
  grpc_address_ = line->substr(line->find("grpc listening on ") + std::string("grpc listening on ").size());
  while (!grpc_address_.empty() && isspace(static_cast<unsigned char>(grpc_address_.back()))) {
    grpc_address_.pop_back();
  }
  // attestd prints the HTTP line right after the gRPC one.
  auto http_line = daemon_->WaitForLine("http listening on ", std::chrono::seconds(5));
  http_address_.clear();
  if (http_line) {
    http_address_ = http_line->substr(http_line->find("http listening on ") + std::string("http listening on ").size());
    while (!http_address_.empty() && isspace(static_cast<unsigned char>(http_address_.back()))) http_address_.pop_back();
  }
  return true;
}

std::string NodeHarness::public_key() const {
  RunResult result = Run({ATTEST_BIN, "key", "public", dir_.File("node.sec")});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::string key = result.out;
  while (!key.empty() && isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
  return key;
}

std::optional<int> NodeHarness::Stop(int signal) {
  if (!daemon_) return std::nullopt;
  return daemon_->Signal(signal, std::chrono::seconds(10));
}

RunResult NodeHarness::Cli(const std::vector<std::string>& args, const std::string& input) const {
  std::vector<std::string> argv{ATTEST_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, input);
}

std::string NodeHarness::Verdict(const std::string& path) const {
  RunResult status = Cli({"status", "--node", grpc_address_, "--json", path});
  nlohmann::json parsed = nlohmann::json::parse(status.out, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_array() || parsed.size() != 1 || !parsed[0].contains("verdict")) {
    ADD_FAILURE() << "attest status: " << status.out << status.err;
    return "";
  }
  return parsed[0]["verdict"].get<std::string>();
}

}  // namespace attest::testing
