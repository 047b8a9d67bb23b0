// `attest sources` in-process through RunCli, against a gRPC server on loopback that serves a canned
// attest.v1.Federation/ListSources answer (a real node answers in tests/e2e/cli_node_test.cc).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/attest/v1/attest.grpc.pb.h"

namespace attest::client {
namespace {

using nlohmann::json;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

class CannedSources final : public v1::Federation::Service {
 public:
  grpc::Status ListSources(grpc::ServerContext*, const v1::ListSourcesRequest*,
                           v1::ListSourcesResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    if (!fail_with_.ok()) return fail_with_;
    *response = answer_;
    return grpc::Status::OK;
  }

  void Answer(v1::ListSourcesResponse answer) {
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
  v1::ListSourcesResponse answer_;
  grpc::Status fail_with_ = grpc::Status::OK;
  int calls_ = 0;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

constexpr char kMismatch[] =
    "/nix/store/00000000000000000000000000000000-hello-2.12: NarHash sha256:1abc, confirmed sha256:0xyz";

v1::NarSource Operator(const std::string& name, const std::string& url) {
  v1::NarSource source;
  source.set_kind(v1::NarSource::OPERATOR);
  source.set_operator_name(name);
  source.set_url(url);
  source.set_reachable(true);
  return source;
}

// alice's cache served well, bob's lied once, a mirror is down, the upstream was never asked.
v1::ListSourcesResponse Mixed() {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  v1::ListSourcesResponse answer;
  v1::NarSource alice = Operator("alice-ci", "https://cache.alice.example");
  alice.set_narinfos_found(12);
  alice.set_paths_served(10);
  alice.set_bytes_served(123456789);
  v1::NarSource bob = Operator("bob-labs", "file:///srv/bob-cache");
  bob.set_narinfos_found(3);
  bob.set_paths_served(1);
  bob.set_bytes_served(4096);
  bob.set_mismatches(2);
  bob.set_last_mismatch(kMismatch);
  bob.set_last_mismatch_unix(now - 300);  // "5m ago"
  v1::NarSource mirror;
  mirror.set_kind(v1::NarSource::MIRROR);
  mirror.set_priority(10);
  mirror.set_url("http://127.0.0.1:8081/mirror");
  mirror.set_reachable(false);
  mirror.set_last_error("GET http://127.0.0.1:8081/mirror/x.narinfo: connection refused\n\x1b[31mred");
  mirror.set_last_error_unix(now - 7300);  // "2h ago"
  v1::NarSource upstream;
  upstream.set_kind(v1::NarSource::UPSTREAM);
  upstream.set_url("https://cache.nixos.org");
  upstream.set_reachable(true);
  *answer.add_sources() = alice;
  *answer.add_sources() = bob;
  *answer.add_sources() = mirror;
  *answer.add_sources() = upstream;
  return answer;
}

class SourcesCommandTest : public ::testing::Test {
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
          return absl::InternalError("the sources command opens its own channel");
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

  Result Sources(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"sources", "--node", address_, "--timeout", "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }

  CannedSources service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(SourcesCommandTest, HelpHasUsageExitStatusAndAnExample) {
  Result r = Cli({"sources", "--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: attest sources --node ADDR [--json] [--check]"));
  EXPECT_THAT(r.out, HasSubstr("with --check, 1 when a"));
  const size_t example = r.out.find("\nExample:\n");
  ASSERT_NE(example, std::string::npos);
  EXPECT_THAT(r.out.substr(example), HasSubstr("attest sources --node"));
  EXPECT_THAT(Cli({"--help"}).out, HasSubstr("sources"));
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(SourcesCommandTest, UsageErrorsExitTwoWithoutAskingTheNode) {
  Result no_node = Cli({"sources"});
  EXPECT_EQ(no_node.code, 2);
  EXPECT_THAT(no_node.err, HasSubstr("no node given"));
  Result extra = Cli({"sources", "--node", address_, "alice"});
  EXPECT_EQ(extra.code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument alice"));
  EXPECT_EQ(Cli({"sources", "--node", address_, "--check=yes"}).code, 2);
  EXPECT_EQ(service_.calls(), 0);
}

TEST_F(SourcesCommandTest, TableShowsEverySourceAndTheEvidence) {
  service_.Answer(Mixed());
  Result r = Sources();
  ASSERT_EQ(r.code, 0) << r.err;  // without --check, a successful answer is success
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_THAT(r.out, ContainsRegex("KIND +OPERATOR +URL +REACHABLE +NARINFOS +PATHS +BYTES +MISMATCHES"));
  EXPECT_THAT(r.out, ContainsRegex("operator +alice-ci +https://cache.alice.example +yes +12 +10 +123456789 +0\n"));
  EXPECT_THAT(r.out, ContainsRegex("operator +bob-labs +file:///srv/bob-cache +yes +3 +1 +4096 +2\n"));
  EXPECT_THAT(r.out, ContainsRegex("mirror \\(priority 10\\) +- +http://127.0.0.1:8081/mirror +NO +0 +0 +0 +0\n"));
  EXPECT_THAT(r.out, ContainsRegex("upstream +- +https://cache.nixos.org +yes +0 +0 +0 +0\n"));
  EXPECT_THAT(r.out, HasSubstr("file:///srv/bob-cache (bob-labs): BAD SOURCE: 2 mismatches, the last 5m ago ("));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("Z): ", kMismatch, "\n")));
  EXPECT_THAT(r.out, HasSubstr("http://127.0.0.1:8081/mirror (mirror): unreachable: the last contact failed 2h ago ("));
  EXPECT_THAT(r.out, HasSubstr("connection refused ?[31mred")) << "control bytes are not passed to the terminal";
  EXPECT_THAT(r.out, Not(HasSubstr("\x1b")));
}

TEST_F(SourcesCommandTest, CheckFailsOnUnreachableOrBadSources) {
  service_.Answer(Mixed());
  Result r = Sources({"--check"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.out, HasSubstr("BAD SOURCE"));  // the answer is still printed
  EXPECT_THAT(r.err, HasSubstr("1 of 4 sources unreachable: http://127.0.0.1:8081/mirror (mirror)"));
  EXPECT_THAT(r.err, HasSubstr("1 source served bytes that contradict the confirmed contents (mismatches): "
                               "file:///srv/bob-cache (bob-labs, 2)"));

  v1::ListSourcesResponse good;
  v1::NarSource alice = Operator("alice-ci", "https://cache.alice.example");
  alice.set_last_error("timed out");  // failed once, answered since: reachable
  alice.set_last_error_unix(absl::ToUnixSeconds(absl::Now()) - 30);
  *good.add_sources() = alice;
  service_.Answer(good);
  Result healthy = Sources({"--check"});
  EXPECT_EQ(healthy.code, 0) << healthy.err;
  EXPECT_THAT(healthy.out, HasSubstr("(alice-ci): reachable again; a contact failed 30s ago"));
}

TEST_F(SourcesCommandTest, JsonHasEveryField) {
  service_.Answer(Mixed());
  Result r = Sources({"--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json object = json::parse(r.out);
  EXPECT_EQ(object["healthy"], false);
  ASSERT_EQ(object["sources"].size(), 4u);
  const json& bob = object["sources"][1];
  EXPECT_EQ(bob["kind"], "operator");
  EXPECT_EQ(bob["operator"], "bob-labs");
  EXPECT_EQ(bob["url"], "file:///srv/bob-cache");
  EXPECT_EQ(bob["reachable"], true);
  EXPECT_EQ(bob["narinfos_found"], 3);
  EXPECT_EQ(bob["paths_served"], 1);
  EXPECT_EQ(bob["bytes_served"], 4096);
  EXPECT_EQ(bob["mismatches"], 2);
  EXPECT_EQ(bob["last_mismatch"], kMismatch);
  EXPECT_GT(bob["last_mismatch_unix"].get<int64_t>(), 0);
  const json& mirror = object["sources"][2];
  EXPECT_EQ(mirror["kind"], "mirror");
  EXPECT_EQ(mirror["priority"], 10);
  EXPECT_EQ(mirror["reachable"], false);
  EXPECT_EQ(mirror["last_error"], "GET http://127.0.0.1:8081/mirror/x.narinfo: connection refused\n\x1b[31mred");
  EXPECT_GT(mirror["last_error_unix"].get<int64_t>(), 0);
  EXPECT_EQ(object["sources"][3]["kind"], "upstream");

  EXPECT_EQ(Sources({"--json", "--check"}).code, 1);
}

TEST_F(SourcesCommandTest, NoSourcesIsSaidAndIsHealthy) {
  service_.Answer(v1::ListSourcesResponse());
  Result r = Cli({"sources", "--check"}, address_);  // the node from $ATTEST_NODE
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("this node has no NAR sources: it runs no [gateway]"));
  EXPECT_EQ(json::parse(Sources({"--json"}).out), json::parse(R"({"healthy": true, "sources": []})"));
}

TEST_F(SourcesCommandTest, NodeErrorsKeepTheirMeaning) {
  service_.FailWith(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method ListSources"));
  Result old_node = Sources();
  EXPECT_EQ(old_node.code, 1);
  EXPECT_TRUE(old_node.out.empty());
  EXPECT_THAT(old_node.err, HasSubstr("attest sources: node " + address_ + ": ListSources: unknown method"));
  EXPECT_THAT(old_node.err, HasSubstr("an older attestd does not report its NAR sources"));
}

}  // namespace
}  // namespace attest::client
