// `attest federation status` in-process through RunCli, against a gRPC server on loopback that serves
// a canned attest.v1.Federation answer (the real node is exercised in tests/e2e).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "consensus/attestation.h"
#include "consensus/log_entry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class CannedFederation final : public v1::Federation::Service {
 public:
  grpc::Status GetFederationStatus(grpc::ServerContext*, const v1::GetFederationStatusRequest*,
                                   v1::GetFederationStatusResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    if (!fail_with_.ok()) return fail_with_;
    *response = answer_;
    return grpc::Status::OK;
  }

  void Answer(v1::GetFederationStatusResponse answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  void FailWith(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_with_ = std::move(status);
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  v1::GetFederationStatusResponse answer_;
  grpc::Status fail_with_ = grpc::Status::OK;
  int calls_ = 0;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

constexpr char kNoteB[] = "node-b\n12\nq3Ffg2S1TnhLvwX2ujZ5XkC0rlNpVrrSkAZG3smz8Ro=\n\n— node-b AAAA\n";
constexpr char kNoteB2[] = "node-b\n12\nZZZZg2S1TnhLvwX2ujZ5XkC0rlNpVrrSkAZG3smz8Ro=\n\n— node-b BBBB\n";

v1::PeerStatus Peer(const std::string& name, v1::PeerStatus::State state, uint64_t size, uint64_t cursor) {
  v1::PeerStatus peer;
  peer.set_name(name);
  peer.set_grpc("127.0.0.1:7701");
  peer.set_http("127.0.0.1:7781");
  peer.set_public_key(name + ":AAAA");
  peer.set_state(state);
  peer.set_peer_size(size);
  peer.set_cursor(cursor);
  peer.set_lag_entries(size - cursor);
  peer.set_peer_policy_hash("sha256:aaaa");
  return peer;
}

v1::GetFederationStatusResponse Healthy() {
  v1::GetFederationStatusResponse answer;
  answer.set_node("node-a");
  answer.set_policy_hash("sha256:aaaa");
  v1::PeerStatus b = Peer("node-b", v1::PeerStatus::FOLLOWING, 1200, 1200);
  b.set_last_success_unix(absl::ToUnixSeconds(absl::Now()) - 7300);  // "2h ago"
  b.set_cosigned_checkpoint(kNoteB);
  v1::PeerStatus c = Peer("node-c", v1::PeerStatus::FOLLOWING, 40, 40);
  c.set_last_success_unix(absl::ToUnixSeconds(absl::Now()));
  *answer.add_peers() = b;
  *answer.add_peers() = c;
  return answer;
}

class FederationCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }

  Result Cli(std::vector<std::string> args, std::string default_node = "") {
    std::istringstream in;
    std::ostringstream out, err;
    CommandEnv env{
        .in = in,
        .out = out,
        .err = err,
        .connect_node = [](const NodeOptions&) -> absl::StatusOr<std::unique_ptr<NodeApi>> {
          return absl::InternalError("the federation command opens its own channel");
        },
        .random_bytes = [](std::span<uint8_t>) {},
        .default_node = std::move(default_node),
    };
    Result r;
    r.code = RunCli(args, env);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  Result Status(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"federation", "status", "--node", address_, "--timeout", "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }

  CannedFederation service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(FederationCommandTest, HelpHasUsageAndAnExample) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"federation", "status", "--help"}, {"federation", "status", "--node", "x:1", "-h"}}) {
    Result r = Cli(args);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: attest federation status --node ADDR [--json]"));
    const size_t example = r.out.find("\nExample:\n");
    ASSERT_NE(example, std::string::npos);
    EXPECT_THAT(r.out.substr(example), HasSubstr("attest federation status --node"));
    EXPECT_TRUE(r.err.empty());
  }
  Result group = Cli({"federation", "--help"});
  EXPECT_EQ(group.code, 0);
  EXPECT_THAT(group.out, HasSubstr("attest federation status"));
  Result top = Cli({"--help"});
  EXPECT_THAT(top.out, HasSubstr("federation status"));
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(FederationCommandTest, UsageErrorsExitTwoWithoutAskingTheNode) {
  Result no_node = Cli({"federation", "status"});
  EXPECT_EQ(no_node.code, 2);
  EXPECT_THAT(no_node.err, HasSubstr("no node given"));
  EXPECT_THAT(no_node.err, HasSubstr("attest federation status --help"));

  Result extra = Cli({"federation", "status", "--node", address_, "peers"});
  EXPECT_EQ(extra.code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument peers"));

  Result typo = Cli({"federation", "status", "--node", address_, "--jsn"});
  EXPECT_EQ(typo.code, 2);
  EXPECT_THAT(typo.err, HasSubstr("did you mean --json?"));

  EXPECT_EQ(Cli({"federation", "status", "--node"}).code, 2);
  EXPECT_EQ(Cli({"federation", "status", "--node", address_, "--timeout", "soon"}).code, 2);
  EXPECT_EQ(Cli({"federation", "status", "--node", address_, "--json=yes"}).code, 2);
  EXPECT_EQ(Cli({"federation", "status", "--node", "a:1", "--node", "b:1"}).code, 2);
  EXPECT_EQ(Cli({"federation"}).code, 2);
  Result unknown = Cli({"federation", "stats"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown subcommand 'stats'"));
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(FederationCommandTest, HealthyFederationPrintsTheTableAndExitsZero) {
  service_.Answer(Healthy());
  // Options after the subcommand in any order; the node from $ATTEST_NODE works too.
  Result r = Cli({"federation", "status", "--timeout", "5", "--node", address_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_THAT(r.out, HasSubstr("node    node-a\npolicy  sha256:aaaa\n"));
  EXPECT_THAT(r.out, HasSubstr("PEER"));
  EXPECT_THAT(r.out, HasSubstr("LAST ERROR"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-b +FOLLOWING +1200 +1200 +0 +0 +2h ago +-"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-c +FOLLOWING +40 +40 +0 +0 +[0-9]s ago +-"));
  EXPECT_THAT(r.out, Not(HasSubstr("FORK")));

  Result from_env = Cli({"federation", "status"}, address_);
  EXPECT_EQ(from_env.code, 0) << from_env.err;
}

TEST_F(FederationCommandTest, JsonHasEveryField) {
  service_.Answer(Healthy());
  Result r = Status({"--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json object = json::parse(r.out);
  EXPECT_EQ(object["node"], "node-a");
  EXPECT_EQ(object["policy_hash"], "sha256:aaaa");
  EXPECT_EQ(object["healthy"], true);
  ASSERT_EQ(object["peers"].size(), 2u);
  const json& b = object["peers"][0];
  EXPECT_EQ(b["name"], "node-b");
  EXPECT_EQ(b["state"], "FOLLOWING");
  EXPECT_EQ(b["grpc"], "127.0.0.1:7701");
  EXPECT_EQ(b["http"], "127.0.0.1:7781");
  EXPECT_EQ(b["public_key"], "node-b:AAAA");
  EXPECT_EQ(b["peer_size"], 1200);
  EXPECT_EQ(b["cursor"], 1200);
  EXPECT_EQ(b["lag_entries"], 0);
  EXPECT_GT(b["last_success_unix"].get<int64_t>(), 0);
  EXPECT_EQ(b["last_error"], "");
  EXPECT_EQ(b["rejected_entries"], 0);
  EXPECT_EQ(b["peer_policy_hash"], "sha256:aaaa");
  EXPECT_EQ(b["cosigned_checkpoint"], kNoteB);
  EXPECT_TRUE(object["forks"].empty());
  EXPECT_TRUE(object["recent_rejections"].empty());
}

TEST_F(FederationCommandTest, APeerNotFollowingExitsOneWithTheAnswerPrinted) {
  v1::GetFederationStatusResponse answer = Healthy();
  v1::PeerStatus* c = answer.mutable_peers(1);
  c->set_state(v1::PeerStatus::CONNECTING);
  c->set_last_error("GET http://127.0.0.1:7782/log/checkpoint: connection refused\n\x1b[31mred");
  c->set_peer_size(50);
  c->set_lag_entries(10);
  v1::PeerStatus d = Peer("node-d", v1::PeerStatus::POLICY_MISMATCH, 0, 0);
  d.set_peer_policy_hash("sha256:bbbb");
  *answer.add_peers() = d;
  service_.Answer(answer);

  Result r = Status();
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-c +CONNECTING +50 +40 +10 +0 +[0-9]s ago +GET http"));
  EXPECT_THAT(r.out, HasSubstr("connection refused ?[31mred")) << "control bytes are not passed to the terminal";
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-d +POLICY_MISMATCH +0 +0 +0 +0 +never +-"));
  EXPECT_THAT(r.out, HasSubstr("peer node-d reports policy sha256:bbbb, this node has sha256:aaaa"));
  EXPECT_THAT(r.err, HasSubstr("2 of 3 peers not following (node-c CONNECTING, node-d POLICY_MISMATCH)"));

  Result as_json = Status({"--json"});
  EXPECT_EQ(as_json.code, 1);
  const json object = json::parse(as_json.out);
  EXPECT_EQ(object["healthy"], false);
  EXPECT_EQ(object["peers"][1]["state"], "CONNECTING");
  EXPECT_EQ(object["peers"][2]["peer_policy_hash"], "sha256:bbbb");
}

TEST_F(FederationCommandTest, ForkEvidencePrintsBothCheckpoints) {
  v1::GetFederationStatusResponse answer = Healthy();
  answer.mutable_peers(0)->set_state(v1::PeerStatus::FORKED);
  v1::ForkEvidence* fork = answer.add_forks();
  fork->set_peer("node-b");
  fork->set_first_checkpoint(kNoteB);
  fork->set_second_checkpoint(kNoteB2);
  fork->set_reason("two different roots for size 12");
  fork->set_detected_unix(1795582660);
  service_.Answer(answer);

  Result r = Status();
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("FORK: peer node-b, detected 2026-11-25 "));
  EXPECT_THAT(r.out, HasSubstr("two different roots for size 12"));
  EXPECT_THAT(r.out, HasSubstr(std::string("--- first\n") + kNoteB + "--- second\n" + kNoteB2));
  EXPECT_THAT(r.err, HasSubstr("1 fork detected"));

  Result as_json = Status({"--json"});
  EXPECT_EQ(as_json.code, 1);
  const json object = json::parse(as_json.out);
  ASSERT_EQ(object["forks"].size(), 1u);
  EXPECT_EQ(object["forks"][0]["peer"], "node-b");
  EXPECT_EQ(object["forks"][0]["first_checkpoint"], kNoteB);
  EXPECT_EQ(object["forks"][0]["second_checkpoint"], kNoteB2);
  EXPECT_EQ(object["forks"][0]["reason"], "two different roots for size 12");
  EXPECT_EQ(object["forks"][0]["detected_unix"], 1795582660);
}

TEST_F(FederationCommandTest, RejectedEntriesAreListedAndExitOne) {
  consensus::Attestation attestation = consensus::SignAttestation(TestClaim("bad"), TestKey("mallory-1"));
  absl::StatusOr<std::string> entry = consensus::EncodeLogEntry(consensus::LogEntry{
      .kind = consensus::LogEntryKind::kAttestation,
      .attestation =
          consensus::AttestationEntry{.attestation = attestation, .observed_key = std::nullopt, .received_unix = 5},
      .note = "",
      .part = std::nullopt});
  ASSERT_TRUE(entry.ok()) << entry.status();

  v1::GetFederationStatusResponse answer = Healthy();
  answer.mutable_peers(1)->set_rejected_entries(2);
  v1::RejectedEntry* first = answer.add_recent_rejections();
  first->set_peer("node-c");
  first->set_index(17);
  first->set_reason("key mallory-1 is not a builder key in the policy");
  first->set_entry(*entry);
  first->set_detected_unix(absl::ToUnixSeconds(absl::Now()) - 300);
  v1::RejectedEntry* second = answer.add_recent_rejections();
  second->set_peer("node-c");
  second->set_index(18);
  second->set_reason("malformed entry");
  second->set_entry("garbage");
  service_.Answer(answer);

  Result r = Status();
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-c +FOLLOWING +40 +40 +0 +2 "));
  EXPECT_THAT(r.out, HasSubstr("Rejected entries (latest 2):"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-c +17 +5m ago +attestation of " + attestation.claim.path.full() +
                                              " signed by mallory-1 +key mallory-1"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("node-c +18 +never +7 bytes, unparseable +malformed entry"));
  EXPECT_THAT(r.err, HasSubstr("2 peer entries rejected"));

  const json object = json::parse(Status({"--json"}).out);
  ASSERT_EQ(object["recent_rejections"].size(), 2u);
  EXPECT_EQ(object["recent_rejections"][0]["index"], 17);
  EXPECT_EQ(object["recent_rejections"][1]["entry"], "Z2FyYmFnZQ==");
  EXPECT_EQ(object["peers"][1]["rejected_entries"], 2);
}

TEST_F(FederationCommandTest, NoPeersIsHealthy) {
  v1::GetFederationStatusResponse answer;
  answer.set_node("node-a");
  answer.set_policy_hash("sha256:aaaa");
  service_.Answer(answer);
  Result r = Status();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("no peers configured"));
}

TEST_F(FederationCommandTest, NodeErrorsKeepTheirMeaning) {
  service_.FailWith(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown service attest.v1.Federation"));
  Result old_node = Status();
  EXPECT_EQ(old_node.code, 1);
  EXPECT_TRUE(old_node.out.empty());
  EXPECT_THAT(old_node.err, HasSubstr("node " + address_ + ": GetFederationStatus: unknown service"));
  EXPECT_THAT(old_node.err, HasSubstr("an older attestd does not follow peers"));
}

TEST_F(FederationCommandTest, UnreachableNodeIsAClearFailure) {
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  Result r = Cli({"federation", "status", "--node", address_, "--timeout", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_THAT(r.err, HasSubstr("attest federation status: node " + address_ + ": GetFederationStatus: "));
  EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("is attestd running and listening there?"),
                                      HasSubstr("no complete answer within 1s")));
}

}  // namespace
}  // namespace attest::client
