// `attest wanted` in-process through RunCli, against a gRPC server on loopback that implements only
// attest.v1.Rebuilds/Wanted, with canned answers (and records what it was asked).
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

class CannedWanted final : public v1::Rebuilds::Service {
 public:
  grpc::Status Wanted(grpc::ServerContext*, const v1::WantedRequest* request,
                      v1::WantedResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(*request);
    if (!fail_with_.ok()) return fail_with_;
    *response = answer_;
    return grpc::Status::OK;
  }

  void Answer(v1::WantedResponse answer) {
    std::lock_guard<std::mutex> lock(mu_);
    answer_ = std::move(answer);
  }
  void FailWith(grpc::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_with_ = std::move(status);
  }
  std::vector<v1::WantedRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  v1::WantedResponse answer_;
  grpc::Status fail_with_ = grpc::Status::OK;
  std::vector<v1::WantedRequest> requests_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

constexpr char kHello[] = "/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-hello-2.12";
constexpr char kHelloDrv[] = "/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-hello-2.12.drv";
constexpr char kHelloDrv2[] = "/nix/store/2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c-hello-2.12.drv";
constexpr char kLib[] = "/nix/store/3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d-libfoo-1.0-dev";
constexpr char kLibDrv[] = "/nix/store/4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f4f-libfoo-1.0.drv";
constexpr char kCurl[] = "/nix/store/5g5g5g5g5g5g5g5g5g5g5g5g5g5g5g5g-curl-8.0";
constexpr char kOpenssl[] = "/nix/store/6h6h6h6h6h6h6h6h6h6h6h6h6h6h6h6h-openssl-3.0";
constexpr char kOpensslDrv[] = "/nix/store/7i7i7i7i7i7i7i7i7i7i7i7i7i7i7i7i-openssl-3.0.drv";

v1::WantedDeriver Deriver(const std::string& drv, const std::string& output, bool available) {
  v1::WantedDeriver d;
  d.set_drv_path(drv);
  d.set_output_name(output);
  d.set_available(available);
  return d;
}

// hello: pending, alice attested, two derivations known (one available), bob's builder holds a lease;
// libfoo-dev: unknown, no attestation yet; curl: no known derivation. openssl: disputed.
v1::WantedResponse Queue() {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  v1::WantedResponse answer;
  answer.set_quorum(2);
  answer.set_demand_paths(17);
  v1::WantedPath* hello = answer.add_wanted();
  hello->set_store_path(kHello);
  hello->set_verdict(v1::PENDING);
  hello->set_demand(12.25);
  hello->set_last_requested_unix(now - 60);
  hello->set_operators_needed(1);
  hello->add_operators("alice-ci");
  *hello->add_derivers() = Deriver(kHelloDrv, "out", true);
  *hello->add_derivers() = Deriver(kHelloDrv2, "out", false);
  v1::RebuildLease* lease = hello->add_leases();
  lease->set_store_path(kHello);
  lease->set_operator_("bob-labs");
  lease->set_builder("bob-builder-1");
  lease->set_expires_unix(now + 240);
  v1::WantedPath* lib = answer.add_wanted();
  lib->set_store_path(kLib);
  lib->set_verdict(v1::UNKNOWN);
  lib->set_demand(3);
  lib->set_operators_needed(2);
  *lib->add_derivers() = Deriver(kLibDrv, "dev", false);
  v1::WantedPath* curl = answer.add_wanted();
  curl->set_store_path(kCurl);
  curl->set_verdict(v1::UNKNOWN);
  curl->set_demand(1);
  curl->set_operators_needed(2);
  v1::WantedPath* openssl = answer.add_disputed();
  openssl->set_store_path(kOpenssl);
  openssl->set_verdict(v1::DISPUTED);
  openssl->set_demand(40);
  openssl->add_operators("alice-ci");
  openssl->add_operators("bob-labs");
  openssl->set_dispute_id("d-42");
  *openssl->add_derivers() = Deriver(kOpensslDrv, "out", true);
  return answer;
}

class WantedCommandTest : public ::testing::Test {
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
          return absl::InternalError("the wanted command opens its own channel");
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

  Result Wanted(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"wanted", "--node", address_, "--timeout", "5"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Cli(args);
  }

  CannedWanted service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(WantedCommandTest, HelpHasUsageAndAnExample) {
  Result r = Cli({"wanted", "--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: attest wanted --node ADDR [--operator NAME] [--limit N] [--json]"));
  const size_t example = r.out.find("\nExample:\n");
  ASSERT_NE(example, std::string::npos);
  EXPECT_THAT(r.out.substr(example), HasSubstr("attest wanted --node"));
  EXPECT_THAT(Cli({"--help"}).out, HasSubstr("wanted"));
  EXPECT_TRUE(service_.requests().empty());
}

TEST_F(WantedCommandTest, TableShowsTheQueueThenTheDisputedPaths) {
  service_.Answer(Queue());
  Result r = Wanted();
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_THAT(r.out, ContainsRegex("PATH +VERDICT +DEMAND +NEEDS +OPERATORS +DERIVER +AVAILABLE +LEASES\n"));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat(kHello, " +PENDING +12.2 +1 operator +alice-ci +", kHelloDrv,
                                                "!out +yes +bob-labs \\(bob-builder-1, [34]m[0-9s]* left\\)\n")));
  // A second derivation of the same path: its own line, under the first.
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat("\n +", kHelloDrv2, "!out +no *\n")));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat(kLib, " +UNKNOWN +3.0 +2 operators +- +", kLibDrv, "!dev +no +-\n")));
  EXPECT_THAT(r.out, ContainsRegex(absl::StrCat(kCurl, " +UNKNOWN +1.0 +2 operators +- +\\(unknown\\) +no +-\n")));
  // The queue comes first, the disputed paths after their own heading.
  const size_t heading = r.out.find("\nDisputed (");
  ASSERT_NE(heading, std::string::npos) << r.out;
  EXPECT_LT(r.out.find(kCurl), heading);
  EXPECT_GT(r.out.find(kOpenssl), heading);
  EXPECT_THAT(r.out.substr(heading), ContainsRegex("PATH +VERDICT +DEMAND +DISPUTE +OPERATORS"));
  EXPECT_THAT(r.out.substr(heading), ContainsRegex(absl::StrCat(kOpenssl, " +DISPUTED +40.0 +d-42 +alice-ci, bob-labs +",
                                                                kOpensslDrv, "!out +yes +-\n")));
  EXPECT_THAT(r.out, HasSubstr("3 wanted, 1 disputed shown; the node counts demand for 17 paths; quorum 2 operators"));

  ASSERT_EQ(service_.requests().size(), 1u);
  EXPECT_EQ(service_.requests()[0].operator_(), "");
  EXPECT_EQ(service_.requests()[0].limit(), 0) << "without --limit the node's default applies";
}

TEST_F(WantedCommandTest, AnEmptyQueueIsSaid) {
  v1::WantedResponse empty;
  empty.set_quorum(2);
  service_.Answer(empty);
  Result r = Wanted();
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("nothing wanted"));
  EXPECT_THAT(r.out, Not(HasSubstr("Disputed")));
  EXPECT_THAT(r.out, HasSubstr("0 wanted, 0 disputed shown"));
}

TEST_F(WantedCommandTest, JsonHasEveryField) {
  service_.Answer(Queue());
  Result r = Wanted({"--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json object = json::parse(r.out);
  EXPECT_EQ(object["quorum"], 2);
  EXPECT_EQ(object["demandPaths"], 17);
  ASSERT_EQ(object["wanted"].size(), 3u);
  ASSERT_EQ(object["disputed"].size(), 1u);
  const json& hello = object["wanted"][0];
  EXPECT_EQ(hello["path"], kHello);
  EXPECT_EQ(hello["verdict"], "PENDING");
  EXPECT_DOUBLE_EQ(hello["demand"].get<double>(), 12.25);
  EXPECT_GT(hello["lastRequested"].get<int64_t>(), 0);
  EXPECT_EQ(hello["operatorsNeeded"], 1);
  EXPECT_EQ(hello["operators"], json::array({"alice-ci"}));
  ASSERT_EQ(hello["derivers"].size(), 2u);
  EXPECT_EQ(hello["derivers"][0], json({{"drvPath", kHelloDrv}, {"outputName", "out"}, {"available", true}}));
  EXPECT_EQ(hello["derivers"][1]["available"], false);
  ASSERT_EQ(hello["leases"].size(), 1u);
  EXPECT_EQ(hello["leases"][0]["operator"], "bob-labs");
  EXPECT_EQ(hello["leases"][0]["builder"], "bob-builder-1");
  EXPECT_GT(hello["leases"][0]["expires"].get<int64_t>(), hello["lastRequested"].get<int64_t>());
  EXPECT_EQ(hello["disputeId"], "");
  EXPECT_EQ(object["wanted"][2]["derivers"], json::array());
  const json& openssl = object["disputed"][0];
  EXPECT_EQ(openssl["verdict"], "DISPUTED");
  EXPECT_EQ(openssl["disputeId"], "d-42");
  EXPECT_EQ(openssl["operatorsNeeded"], 0);
}

TEST_F(WantedCommandTest, OperatorAndLimitArePassedToTheNode) {
  service_.Answer(Queue());
  Result r = Wanted({"--operator", "bob-labs", "--limit", "20"});
  ASSERT_EQ(r.code, 0) << r.err;
  Result from_env = Cli({"wanted", "--operator", "carol"}, address_);  // the node from $ATTEST_NODE
  ASSERT_EQ(from_env.code, 0) << from_env.err;
  const std::vector<v1::WantedRequest> requests = service_.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].operator_(), "bob-labs");
  EXPECT_EQ(requests[0].limit(), 20);
  EXPECT_EQ(requests[1].operator_(), "carol");
}

TEST_F(WantedCommandTest, BadLimitIsAUsageError) {
  for (const char* limit : {"0", "-3", "ten", "10001", "2.5", ""}) {
    Result r = Wanted({"--limit", limit});
    EXPECT_EQ(r.code, 2) << limit;
    EXPECT_THAT(r.err, HasSubstr("must be a whole number from 1 to 10000")) << limit;
    EXPECT_TRUE(r.out.empty()) << limit;
  }
  EXPECT_EQ(Cli({"wanted"}).code, 2) << "no node";
  EXPECT_EQ(Wanted({"extra"}).code, 2);
  EXPECT_TRUE(service_.requests().empty()) << "usage errors do not ask the node";
  EXPECT_EQ(Wanted({"--limit", "10000"}).code, 0);
}

TEST_F(WantedCommandTest, AnOlderNodeIsExplained) {
  service_.FailWith(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown service attest.v1.Rebuilds"));
  Result r = Wanted();
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_THAT(r.err, HasSubstr("attest wanted: node " + address_ + ": Wanted: unknown service"));
  EXPECT_THAT(r.err, HasSubstr("an older attestd has no rebuild queue"));
}

TEST_F(WantedCommandTest, UnreachableNodeIsAClearFailure) {
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  Result r = Cli({"wanted", "--node", address_, "--timeout", "1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.out.empty());
  EXPECT_THAT(r.err, HasSubstr("attest wanted: node " + address_ + ": Wanted: "));
  EXPECT_THAT(r.err, ::testing::AnyOf(HasSubstr("is attestd running and listening there?"),
                                      HasSubstr("no complete answer within 1s")));
}

}  // namespace
}  // namespace attest::client
