// Durability and startup: every acknowledged attestation survives SIGKILL of attestd in the middle of
// heavy submission; startup errors name the file and the problem.
#include <grpcpp/grpcpp.h>

#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

TEST(DurabilityTest, AcknowledgedAttestationsSurviveSigkill) {
  TempDir dir;
  consensus::SecretKey key = TestKey("load-builder-1");
  NodeHarness node(dir, PolicyToml(2, {{"loader", {key.public_key().ToString()}},
                                       {"other", {TestKey("other-1").public_key().ToString()}}}));
  ASSERT_TRUE(node.Start());

  auto channel = grpc::CreateChannel(node.grpc_address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Attestations::NewStub(channel);

  constexpr int kBatch = 250;
  std::vector<std::string> acknowledged;  // paths whose batch was answered OK
  std::mutex mu;
  std::atomic<bool> stop{false};
  std::atomic<int> acked_batches{0};
  std::thread loader([&] {
    for (int batch = 0; !stop.load(); ++batch) {
      v1::SubmitRequest request;
      std::vector<std::string> paths;
      for (int i = 0; i < kBatch; ++i) {
        std::string name = absl::StrCat("durable-", batch, "-", i);
        auto claim = TestClaim(name, name);
        *request.add_attestations() = proto::ToProto(consensus::SignAttestation(claim, key));
        paths.push_back(claim.path.full());
      }
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      v1::SubmitResponse response;
      grpc::Status status = stub->Submit(&context, request, &response);
      if (!status.ok()) return;  // the node is gone
      for (const auto& result : response.results()) {
        if (result.outcome() != v1::SubmitResult::ACCEPTED) return;
      }
      std::lock_guard lock(mu);
      acknowledged.insert(acknowledged.end(), paths.begin(), paths.end());
      acked_batches.fetch_add(1);
    }
  });

  // Kill while batches are in flight.
  ASSERT_TRUE(PollUntil([&] { return acked_batches.load() >= 20; }, std::chrono::seconds(120)));
  auto killed = node.Stop(SIGKILL);
  ASSERT_TRUE(killed.has_value());
  EXPECT_TRUE(WIFSIGNALED(*killed));
  stop = true;
  loader.join();

  ASSERT_TRUE(node.Start());
  channel = grpc::CreateChannel(node.grpc_address(), grpc::InsecureChannelCredentials());
  stub = v1::Attestations::NewStub(channel);
  std::lock_guard lock(mu);
  ASSERT_GE(acknowledged.size(), 20u * kBatch);
  size_t missing = 0;
  for (size_t start = 0; start < acknowledged.size(); start += 1000) {
    v1::StatusRequest request;
    for (size_t i = start; i < std::min(acknowledged.size(), start + 1000); ++i) {
      request.add_store_paths(acknowledged[i]);
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::StatusResponse response;
    ASSERT_TRUE(stub->Status(&context, request, &response).ok());
    ASSERT_EQ(response.statuses_size(), request.store_paths_size());
    for (const auto& s : response.statuses()) {
      if (s.verdict() != v1::PENDING || s.attestations_size() != 1) ++missing;
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged attestations";
}

// attestd --check-database: exit 0 on a sound database, 1 naming each problem on a damaged one, and
// an emptied database (its log lost what the key signed) is refused by the same command.
TEST(CheckDatabaseTest, ReportsASoundDatabaseAndNamesDamage) {
  TempDir dir;
  consensus::SecretKey key = TestKey("check-builder-1");
  NodeHarness node(dir, PolicyToml(1, {{"checker", {key.public_key().ToString()}}}));
  ASSERT_TRUE(node.Start());
  {
    auto stub = v1::Attestations::NewStub(grpc::CreateChannel(node.grpc_address(), grpc::InsecureChannelCredentials()));
    v1::SubmitRequest request;
    for (int i = 0; i < 20; ++i) {
      *request.add_attestations() =
          proto::ToProto(consensus::SignAttestation(TestClaim(absl::StrCat("checked-", i)), key));
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SubmitResponse response;
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
  }
  // The checkpoint of all 20 is signed (every second by default) and recorded beside the database.
  ASSERT_TRUE(PollUntil(
      [&] {
        std::ifstream in(dir.File("attest.db.signed-checkpoint"));
        std::stringstream text;
        text << in.rdbuf();
        return text.str().find("\n20\n") != std::string::npos;
      },
      std::chrono::seconds(60)));
  ASSERT_TRUE(node.Stop().has_value());

  RunResult sound = ::attest::testing::Run({ATTESTD_BIN, "--config", node.config_path(), "--check-database"}, "", std::chrono::seconds(60));
  EXPECT_EQ(sound.exit_code, 0) << sound.out << sound.err;
  EXPECT_NE(sound.out.find("20 path rows, 20 log entries, 1 log tiles checked: ok"), std::string::npos) << sound.out;

  RunResult damaged_run = ::attest::testing::Run({"sqlite3", dir.File("attest.db"),
                               "UPDATE log_tiles SET hashes = randomblob(length(hashes)) WHERE id = 0;"});
  ASSERT_EQ(damaged_run.exit_code, 0) << damaged_run.err;
  RunResult damaged = ::attest::testing::Run({ATTESTD_BIN, "--config", node.config_path(), "--check-database"}, "", std::chrono::seconds(60));
  EXPECT_EQ(damaged.exit_code, 1) << damaged.out << damaged.err;
  EXPECT_NE(damaged.out.find("problem: log entry 0 does not hash to its leaf in tile/0/000.p/20"), std::string::npos)
      << damaged.out;

  for (const char* suffix : {"", "-wal", "-shm"}) std::remove(dir.File(absl::StrCat("attest.db", suffix)).c_str());
  RunResult emptied = ::attest::testing::Run({ATTESTD_BIN, "--config", node.config_path(), "--check-database"}, "", std::chrono::seconds(60));
  EXPECT_EQ(emptied.exit_code, 1);
  EXPECT_NE(emptied.err.find("signed a checkpoint of size 20"), std::string::npos) << emptied.err;
}

class StartupErrorTest : public ::testing::Test {
 protected:
  RunResult StartWith(const std::string& policy, const std::string& extra = "") {
    NodeHarness node(dir_, policy, extra);
    return ::attest::testing::Run({ATTESTD_BIN, "--config", node.config_path()}, "", std::chrono::seconds(30));
  }
  std::string GoodPolicy() {
    return PolicyToml(1, {{"solo", {TestKey("solo-1").public_key().ToString()}}});
  }
  TempDir dir_;
};

TEST_F(StartupErrorTest, QuorumLargerThanOperatorsNamesPolicyFile) {
  RunResult r = StartWith(PolicyToml(3, {{"solo", {TestKey("solo-1").public_key().ToString()}}}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("policy.toml"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("quorum"), std::string::npos) << r.err;
}

TEST_F(StartupErrorTest, UnknownConfigKeyIsAnError) {
  RunResult r = StartWith(GoodPolicy(), "colour = \"blue\"\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("node.toml"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("colour"), std::string::npos) << r.err;
}

TEST_F(StartupErrorTest, CorruptDatabaseIsRefusedClearly) {
  WriteFileOrDie(dir_.File("attest.db"), std::string(8192, '\x5a'));
  RunResult r = StartWith(GoodPolicy());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("attest.db"), std::string::npos) << r.err;
}

TEST_F(StartupErrorTest, PublicKeyGivenAsNodeKeyIsRefused) {
  NodeHarness node(dir_, GoodPolicy());
  WriteFileOrDie(dir_.File("node.sec"), TestKey("n").public_key().ToString());
  RunResult r = ::attest::testing::Run({ATTESTD_BIN, "--config", node.config_path()}, "", std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("node.sec"), std::string::npos) << r.err;
}

TEST_F(StartupErrorTest, MissingConfigIsAUsageOrStartupError) {
  RunResult r = ::attest::testing::Run({ATTESTD_BIN, "--config", dir_.File("nope.toml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope.toml"), std::string::npos) << r.err;
  EXPECT_EQ(::attest::testing::Run({ATTESTD_BIN}).exit_code, 2);
}

}  // namespace
}  // namespace attest::testing
