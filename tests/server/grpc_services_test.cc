// The attest.v1 adapters of server/grpc_services.h over an in-process channel: Federation/ListSources
// hands out what the injected status function reports, field by field.
#include "server/grpc_services.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/nar_source_status.h"
#include "server/worker_pool.h"

namespace attest::server {
namespace {

std::vector<NarSourceStatus> TwoSources() {
  NarSourceStatus bad;
  bad.spec = {.url = "https://cache.alice.example", .kind = NarSourceKind::kOperator, .operator_name = "alice-ci",
              .priority = 0};
  bad.reachable = true;
  bad.last_error = "GET https://cache.alice.example/nar/x.nar.xz: timed out after 30s";
  bad.last_error_unix = 1795582000;
  bad.narinfos_found = 7;
  bad.paths_served = 5;
  bad.bytes_served = 12'345'678'901;
  bad.mismatches = 2;
  bad.last_mismatch = "/nix/store/00000000000000000000000000000000-hello: NarHash sha256:1abc, confirmed sha256:0xyz";
  bad.last_mismatch_unix = 1795582660;

  NarSourceStatus down;
  down.spec = {.url = "file:///srv/mirror", .kind = NarSourceKind::kMirror, .operator_name = "", .priority = 10};
  down.reachable = false;
  down.last_error = "open /srv/mirror/abc.narinfo: permission denied";
  down.last_error_unix = 1795582700;
  return {bad, down};
}

class ListSourcesTest : public ::testing::Test {
 protected:
  void Serve(NarSourceStatusFn sources) {
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
      server_.reset();
    }
    service_ = std::make_unique<FederationService>(nullptr, std::move(sources), &pool_);
    grpc::ServerBuilder builder;
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Federation::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  grpc::Status List(v1::ListSourcesResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub_->ListSources(&context, v1::ListSourcesRequest(), response);
  }

  WorkerPool pool_{"read", 2};
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Federation::Stub> stub_;
};

TEST_F(ListSourcesTest, EveryFieldOfEverySourceInTheNodesOrder) {
  std::atomic<int> calls{0};
  Serve([&calls] {
    ++calls;
    return TwoSources();
  });
  v1::ListSourcesResponse response;
  grpc::Status status = List(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(calls.load(), 1);
  ASSERT_EQ(response.sources_size(), 2);

  const v1::NarSource& bad = response.sources(0);
  EXPECT_EQ(bad.url(), "https://cache.alice.example");
  EXPECT_EQ(bad.kind(), v1::NarSource::OPERATOR);
  EXPECT_EQ(bad.operator_name(), "alice-ci");
  EXPECT_EQ(bad.priority(), 0);
  EXPECT_TRUE(bad.reachable());
  EXPECT_EQ(bad.last_error(), "GET https://cache.alice.example/nar/x.nar.xz: timed out after 30s");
  EXPECT_EQ(bad.last_error_unix(), 1795582000);
  EXPECT_EQ(bad.narinfos_found(), 7u);
  EXPECT_EQ(bad.paths_served(), 5u);
  EXPECT_EQ(bad.bytes_served(), 12'345'678'901u);
  EXPECT_EQ(bad.mismatches(), 2u);
  EXPECT_EQ(bad.last_mismatch(),
            "/nix/store/00000000000000000000000000000000-hello: NarHash sha256:1abc, confirmed sha256:0xyz");
  EXPECT_EQ(bad.last_mismatch_unix(), 1795582660);

  const v1::NarSource& down = response.sources(1);
  EXPECT_EQ(down.url(), "file:///srv/mirror");
  EXPECT_EQ(down.kind(), v1::NarSource::MIRROR);
  EXPECT_EQ(down.operator_name(), "");
  EXPECT_EQ(down.priority(), 10);
  EXPECT_FALSE(down.reachable());
  EXPECT_EQ(down.last_error(), "open /srv/mirror/abc.narinfo: permission denied");
  EXPECT_EQ(down.last_error_unix(), 1795582700);
  EXPECT_EQ(down.paths_served(), 0u);
  EXPECT_EQ(down.mismatches(), 0u);
  EXPECT_EQ(down.last_mismatch(), "");
}

TEST_F(ListSourcesTest, EachCallAsksAgain) {
  std::atomic<int> calls{0};
  Serve([&calls] {
    const int n = ++calls;
    NarSourceStatus upstream;
    upstream.spec = {.url = "https://cache.nixos.org", .kind = NarSourceKind::kUpstream, .operator_name = "",
                     .priority = 0};
    upstream.paths_served = static_cast<uint64_t>(n);
    return std::vector<NarSourceStatus>{upstream};
  });
  v1::ListSourcesResponse first, second;
  ASSERT_TRUE(List(&first).ok());
  ASSERT_TRUE(List(&second).ok());
  ASSERT_EQ(second.sources_size(), 1);
  EXPECT_EQ(second.sources(0).kind(), v1::NarSource::UPSTREAM);
  EXPECT_EQ(second.sources(0).url(), "https://cache.nixos.org");
  EXPECT_EQ(first.sources(0).paths_served(), 1u);
  EXPECT_EQ(second.sources(0).paths_served(), 2u);
}

TEST_F(ListSourcesTest, NoGatewayIsAnEmptyListNotAnError) {
  Serve(nullptr);
  v1::ListSourcesResponse response;
  grpc::Status status = List(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sources_size(), 0);

  Serve([] { return std::vector<NarSourceStatus>(); });
  status = List(&response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.sources_size(), 0);
}

TEST(NarSourceKindTest, Names) {
  EXPECT_EQ(NarSourceKindName(NarSourceKind::kOperator), "operator");
  EXPECT_EQ(NarSourceKindName(NarSourceKind::kMirror), "mirror");
  EXPECT_EQ(NarSourceKindName(NarSourceKind::kUpstream), "upstream");
}

}  // namespace
}  // namespace attest::server
