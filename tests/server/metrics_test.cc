// server/metrics and the node's /metrics and gRPC health: the exposition text exactly, and a real node
// (SQLite, gRPC, HTTP on loopback) counting what it was sent.
#include "consensus/text.h"
#include "server/metrics.h"

#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "server/node.h"
#include "server/node_metrics.h"
#include "tests/server/http_test_client.h"
#include "tests/server/server_test_util.h"

namespace attest::server {
namespace {

using ::attest::testing::ApprovedLink;
using ::attest::testing::Federation;
using ::attest::testing::SuccessorToml;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::WriteNodeDir;
using ::grpc::health::v1::HealthCheckRequest;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// ---- The registry and the exposition format ------------------------------------------------------

TEST(MetricsRegistryTest, RendersTheExpositionFormatExactly) {
  MetricsRegistry registry;
  CounterFamily& requests = registry.AddCounter("attest_test_requests_total", "Requests, by answer.", {"answer"});
  requests.Labels({"served"}).Increment(3);
  requests.Labels({"missing"}).Increment();
  registry.AddGauge("attest_test_size_bytes", "Size.").Get().Set(1234.5);
  const double bounds[] = {0.1, 1};
  Histogram& latency =
      registry.AddHistogram("attest_test_latency_seconds", "Latency.", {"source"}, bounds).Labels({"submit"});
  latency.Observe(0.0625);
  latency.Observe(0.5);
  latency.Observe(1);  // on a bound: counted in that bucket (le = less or equal)
  latency.Observe(3);

  EXPECT_EQ(registry.Render(),
            "# HELP attest_test_requests_total Requests, by answer.\n"
            "# TYPE attest_test_requests_total counter\n"
            "attest_test_requests_total{answer=\"missing\"} 1\n"
            "attest_test_requests_total{answer=\"served\"} 3\n"
            "# HELP attest_test_size_bytes Size.\n"
            "# TYPE attest_test_size_bytes gauge\n"
            "attest_test_size_bytes 1234.5\n"
            "# HELP attest_test_latency_seconds Latency.\n"
            "# TYPE attest_test_latency_seconds histogram\n"
            "attest_test_latency_seconds_bucket{source=\"submit\",le=\"0.1\"} 1\n"
            "attest_test_latency_seconds_bucket{source=\"submit\",le=\"1\"} 3\n"
            "attest_test_latency_seconds_bucket{source=\"submit\",le=\"+Inf\"} 4\n"
            "attest_test_latency_seconds_sum{source=\"submit\"} 4.5625\n"
            "attest_test_latency_seconds_count{source=\"submit\"} 4\n");
}

TEST(MetricsRegistryTest, HistogramWithoutLabelsAndEmptyFamiliesRender) {
  MetricsRegistry registry;
  registry.AddCounter("attest_test_peers_total", "Nothing yet.", {"peer"});
  const double bounds[] = {0.5};
  registry.AddHistogram("attest_test_seconds", "Unlabelled.", {}, bounds);
  EXPECT_EQ(registry.Render(),
            "# HELP attest_test_peers_total Nothing yet.\n"
            "# TYPE attest_test_peers_total counter\n"
            "# HELP attest_test_seconds Unlabelled.\n"
            "# TYPE attest_test_seconds histogram\n"
            "attest_test_seconds_bucket{le=\"0.5\"} 0\n"
            "attest_test_seconds_bucket{le=\"+Inf\"} 0\n"
            "attest_test_seconds_sum 0\n"
            "attest_test_seconds_count 0\n");
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.AddGauge("attest_test_info", "Help with a \\ backslash\nand a newline.", {"peer", "note"})
      .Labels({"node-\"b\"", "a\\b\nc"})
      .Set(1);
  EXPECT_EQ(registry.Render(),
            "# HELP attest_test_info Help with a \\\\ backslash\\nand a newline.\n"
            "# TYPE attest_test_info gauge\n"
            "attest_test_info{peer=\"node-\\\"b\\\"\",note=\"a\\\\b\\nc\"} 1\n");
  EXPECT_EQ(EscapeLabelValue("plain"), "plain");
}

TEST(MetricsRegistryTest, FormatsValuesInTheirShortestExactForm) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(1), "1");
  EXPECT_EQ(FormatMetricValue(0.0005), "0.0005");
  EXPECT_EQ(FormatMetricValue(1700000000), "1700000000");
  EXPECT_EQ(FormatMetricValue(1700000000.25), "1700000000.25");
  EXPECT_EQ(FormatMetricValue(-2.5), "-2.5");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(1e-9), "1e-09");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
}

TEST(MetricsRegistryTest, RegisteringANameAgainReturnsTheSameFamily) {
  MetricsRegistry registry;
  CounterFamily& first = registry.AddCounter("attest_test_total", "Help.", {"result"});
  CounterFamily& second = registry.AddCounter("attest_test_total", "Help.", {"result"});
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(&first.Labels({"ok"}), &second.Labels({"ok"}));
  second.Labels({"ok"}).Increment(2);
  EXPECT_EQ(first.Labels({"ok"}).value(), 2u);
}

TEST(MetricsRegistryTest, CountsEveryIncrementFromManyThreads) {
  MetricsRegistry registry;
  Counter& counter = registry.AddCounter("attest_test_total", "Help.").Get();
  const double bounds[] = {1};
  Histogram& histogram = registry.AddHistogram("attest_test_seconds", "Help.", {}, bounds).Get();
  Gauge& gauge = registry.AddGauge("attest_test_gauge", "Help.").Get();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        counter.Increment();
        histogram.Observe(0.5);
        gauge.Add(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), uint64_t{kThreads} * kPerThread);
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.cumulative.back(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(snapshot.sum, 0.5 * kThreads * kPerThread);
  EXPECT_EQ(gauge.value(), double{kThreads} * kPerThread);
}

TEST(MetricsRegistryTest, ScrapeRunsCollectorsAndPassesTheirErrorOn) {
  MetricsRegistry registry;
  Gauge& gauge = registry.AddGauge("attest_test_gauge", "Help.").Get();
  int runs = 0;
  registry.AddCollector([&] {
    gauge.Set(++runs);
    return absl::OkStatus();
  });
  absl::StatusOr<std::string> text = registry.Scrape();
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("attest_test_gauge 1\n"));
  EXPECT_THAT(*registry.Scrape(), HasSubstr("attest_test_gauge 2\n"));

  registry.AddCollector([] { return absl::UnavailableError("the store is busy"); });
  absl::StatusOr<std::string> failed = registry.Scrape();
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(runs, 3);  // collectors before the failing one still ran
}

// ---- A real node -----------------------------------------------------------------------------------

// The samples of an exposition text: "name{labels}" -> value. HELP and TYPE lines are checked to come
// before their samples.
std::map<std::string, double> ParseExposition(const std::string& text) {
  std::map<std::string, double> samples;
  for (absl::string_view piece : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const std::string_view line = consensus::StdView(piece);
    if (line.substr(0, 1) == "#") continue;
    const size_t space = line.rfind(' ');
    EXPECT_NE(space, std::string_view::npos) << line;
    if (space == std::string_view::npos) continue;
    double value = 0;
    const std::string_view number = line.substr(space + 1);
    if (number == "+Inf") {
      value = std::numeric_limits<double>::infinity();
    } else {
      EXPECT_TRUE(absl::SimpleAtod(consensus::AbslView(number), &value)) << line;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

class NodeMetricsTest : public ::testing::Test {
 protected:
  void StartNode(const std::string& extra_node = "") {
    auto config = LoadNodeConfig(WriteNodeDir(dir_, federation_, extra_node));
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    attestations_ = v1::Attestations::NewStub(node_->InProcessChannel());
  }

  v1::SubmitResponse Submit(const std::vector<v1::Attestation>& items) {
    v1::SubmitRequest request;
    for (const auto& item : items) *request.add_attestations() = item;
    v1::SubmitResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status status = attestations_->Submit(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  ::attest::testing::HttpAnswer Scrape() {
    ::attest::testing::HttpTestClient client(node_->http_port());
    EXPECT_TRUE(client.connected());
    return client.Get("/metrics").value_or(::attest::testing::HttpAnswer{});
  }

  std::map<std::string, double> Samples() {
    ::attest::testing::HttpAnswer answer = Scrape();
    EXPECT_EQ(answer.status, 200) << answer.body;
    return ParseExposition(answer.body);
  }

  Federation federation_;
  TempDir dir_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> attestations_;
};

TEST_F(NodeMetricsTest, CountsSubmissionsByResultAndReason) {
  StartNode();
  const auto claim = TestClaim("hello");
  v1::Attestation good = Signed(claim, federation_.alice);
  v1::Attestation bad_signature = Signed(TestClaim("tampered"), federation_.bob);
  bad_signature.mutable_path_info()->set_nar_size(bad_signature.path_info().nar_size() + 1);
  v1::Attestation malformed = Signed(TestClaim("malformed"), federation_.carol);
  malformed.mutable_path_info()->set_store_path("/nix/store/not-a-store-path");

  // Batch 1: accepted, accepted, a duplicate of the first, a bad signature, an unknown key, a
  // malformed store path.
  v1::SubmitResponse first = Submit({good, Signed(claim, federation_.bob), good, bad_signature,
                                     Signed(TestClaim("outsider"), federation_.outsider), malformed});
  ASSERT_EQ(first.results_size(), 6);
  EXPECT_EQ(first.results(0).outcome(), v1::SubmitResult::ACCEPTED);
  EXPECT_EQ(first.results(3).outcome(), v1::SubmitResult::REJECTED);
  // Batch 2: a resubmission.
  v1::SubmitResponse second = Submit({good});
  EXPECT_EQ(second.results(0).outcome(), v1::SubmitResult::ALREADY_PRESENT);

  // Status of a confirmed path (asked twice) and an unknown one.
  v1::StatusRequest request;
  request.add_store_paths(claim.path.full());
  request.add_store_paths(claim.path.full());
  request.add_store_paths(TestClaim("never-built").path.full());
  v1::StatusResponse status;
  grpc::ClientContext context;
  ASSERT_TRUE(attestations_->Status(&context, request, &status).ok());

  ::attest::testing::HttpAnswer answer = Scrape();
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.Header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(answer.body, HasSubstr("# TYPE attest_submitted_attestations_total counter\n"));
  EXPECT_THAT(answer.body, HasSubstr("# TYPE attest_commit_seconds histogram\n"));
  const std::map<std::string, double> samples = ParseExposition(answer.body);
  auto at = [&](const std::string& key) {
    auto it = samples.find(key);
    EXPECT_NE(it, samples.end()) << "no sample " << key << " in\n" << answer.body;
    return it == samples.end() ? -1.0 : it->second;
  };
  EXPECT_EQ(at("attest_submitted_attestations_total{result=\"accepted\"}"), 2);
  EXPECT_EQ(at("attest_submitted_attestations_total{result=\"already_present\"}"), 1);
  EXPECT_EQ(at("attest_submitted_attestations_total{result=\"observed\"}"), 0);
  EXPECT_EQ(at("attest_submitted_attestations_total{result=\"rejected\"}"), 4);
  EXPECT_EQ(at("attest_rejected_attestations_total{reason=\"duplicate\"}"), 1);
  EXPECT_EQ(at("attest_rejected_attestations_total{reason=\"bad_signature\"}"), 1);
  EXPECT_EQ(at("attest_rejected_attestations_total{reason=\"unknown_key\"}"), 1);
  EXPECT_EQ(at("attest_rejected_attestations_total{reason=\"malformed_store_path\"}"), 1);
  EXPECT_EQ(at("attest_rejected_attestations_total{reason=\"missing_public_key\"}"), 0);
  EXPECT_EQ(at("attest_submit_batches_total{result=\"ok\"}"), 2);
  // Two Submit calls were verified; each had something to write, so at least one group commit each
  // unless they were merged (they were sequential here, so exactly two).
  EXPECT_EQ(at("attest_verify_seconds_count{source=\"submit\"}"), 2);
  EXPECT_EQ(at("attest_verify_seconds_bucket{source=\"submit\",le=\"+Inf\"}"), 2);
  EXPECT_EQ(at("attest_commit_seconds_count{source=\"submit\"}"), 2);
  EXPECT_GT(at("attest_commit_seconds_sum{source=\"submit\"}"), 0);
  EXPECT_EQ(at("attest_status_path_verdicts_total{verdict=\"confirmed\"}"), 2);
  EXPECT_EQ(at("attest_status_path_verdicts_total{verdict=\"unknown\"}"), 1);
  EXPECT_EQ(at("attest_status_path_verdicts_total{verdict=\"disputed\"}"), 0);
  EXPECT_EQ(at("attest_attestations"), 2);
  EXPECT_EQ(at("attest_store_paths"), 1);
  EXPECT_EQ(at("attest_disputes"), 0);
  EXPECT_GT(at("attest_database_bytes{file=\"database\"}"), 0);
  EXPECT_GE(at("attest_database_bytes{file=\"wal\"}"), 0);
  EXPECT_EQ(at(consensus::Cat("attest_build_info{version=\"", AttestVersion(), "\"}")), 1);
  EXPECT_GT(at("attest_process_start_time_seconds"), 1.7e9);
  // No [[peer]]: no peer metrics.
  EXPECT_THAT(answer.body, ::testing::Not(HasSubstr("attest_peer_lag_entries")));

  // Buckets are cumulative.
  std::vector<double> buckets;
  for (double bound : kLatencyBuckets) {
    buckets.push_back(at(consensus::Cat("attest_commit_seconds_bucket{source=\"submit\",le=\"", FormatMetricValue(bound),
                                      "\"}")));
  }
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_LE(buckets[i - 1], buckets[i]);
  EXPECT_LE(buckets.back(), 2);
}

TEST_F(NodeMetricsTest, ShowsThePolicyAndFollowsItsUpdates) {
  StartNode();
  const std::shared_ptr<const consensus::Policy> file = node_->policy().current();
  const std::string file_info = consensus::Cat("attest_policy_info{hash=\"", file->Hash(), "\"}");
  std::map<std::string, double> samples = Samples();
  EXPECT_EQ(samples["attest_policy_version"], 1);
  EXPECT_EQ(samples[file_info], 1);
  EXPECT_EQ(samples["attest_policy_rules"], 0);
  EXPECT_EQ(samples["attest_policy_groups"], 0);
  EXPECT_EQ(samples["attest_policy_updates_total{outcome=\"adopted\"}"], 0);
  EXPECT_EQ(samples["attest_policy_updates_total{outcome=\"refused\"}"], 0);

  // The successor revokes bob and adds a group and a rule that uses it.
  const std::string body = consensus::Cat(
      federation_.PolicyTomlRevokingBob(),
      "[[group]]\nname = \"independent\"\nthreshold = 1\nmembers = [\"bob-labs\", \"carol-home\"]\n",
      "[[rule]]\nnames = [\"openssl-*\"]\nquorum = {threshold = 2, members = [\"alice-ci\", \"independent\"]}\n");
  // Submitted with the approval of a key that is no maintainer: refused, and counted.
  const consensus::SecretKey stranger = ::attest::testing::TestKey("stranger-1");
  const consensus::PolicyLink unapproved = ApprovedLink(SuccessorToml(*file, body), {&stranger});
  ASSERT_EQ(unapproved.approvals.size(), 1u);
  v1::PolicyLink wire;
  wire.set_toml(unapproved.toml);
  wire.add_approvals(unapproved.approvals[0].ToString());
  auto policy_stub = v1::Policy::NewStub(node_->InProcessChannel());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubmitPolicyResponse response;
  const grpc::Status refused = policy_stub->SubmitPolicy(&context, wire, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED) << refused.error_message();

  absl::StatusOr<PolicyBook::Adopted> adopted =
      node_->policy().Adopt(ApprovedLink(SuccessorToml(*file, body), {&federation_.maintainer}), "", 1700000000);
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  samples = Samples();
  EXPECT_EQ(samples["attest_policy_version"], 2);
  EXPECT_EQ(samples[consensus::Cat("attest_policy_info{hash=\"", adopted->policy->Hash(), "\"}")], 1);
  EXPECT_EQ(samples[file_info], 0);  // the replaced policy is no longer the current one
  EXPECT_EQ(samples["attest_policy_rules"], 1);
  EXPECT_EQ(samples["attest_policy_groups"], 1);
  EXPECT_EQ(samples["attest_policy_updates_total{outcome=\"adopted\"}"], 1);
  EXPECT_EQ(samples["attest_policy_updates_total{outcome=\"refused\"}"], 1);
}

TEST_F(NodeMetricsTest, CountsDisputesAndBatchFailures) {
  StartNode("max_batch = 2\n");
  const auto claim = TestClaim("contested");
  Submit({Signed(claim, federation_.alice), Signed(TestClaim("contested", "other bytes"), federation_.bob)});

  v1::SubmitRequest request;
  for (int i = 0; i < 3; ++i) *request.add_attestations() = Signed(TestClaim(consensus::Cat("p", i)), federation_.alice);
  v1::SubmitResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(attestations_->Submit(&context, request, &response).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  std::map<std::string, double> samples = Samples();
  EXPECT_EQ(samples["attest_disputes"], 1);
  EXPECT_EQ(samples["attest_submit_batches_total{result=\"ok\"}"], 1);
  EXPECT_EQ(samples["attest_submit_batches_total{result=\"resource_exhausted\"}"], 1);
}

TEST_F(NodeMetricsTest, CountsGatewayRequestsByAnswer) {
  TempDir upstream;
  StartNode(consensus::Cat("\n[gateway]\nupstream = \"file://", upstream.path(), "\"\n"));
  auto get = [&](std::string_view target) {
    ::attest::testing::HttpTestClient client(node_->http_port());
    return client.Get(target).value_or(::attest::testing::HttpAnswer{}).status;
  };
  EXPECT_EQ(get("/nix-cache-info"), 200);
  const std::string narinfo = consensus::Cat("/", TestClaim("absent").path.hash_part(), ".narinfo");
  EXPECT_EQ(get(narinfo), 404);
  EXPECT_EQ(get(narinfo), 404);  // from the cache: counted the same
  EXPECT_EQ(get("/not-a-narinfo"), 404);
  EXPECT_EQ(get("/nar/absent.nar"), 404);
  EXPECT_EQ(get("/nar/bad~name"), 400);

  std::map<std::string, double> samples = Samples();
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"nix_cache_info\",answer=\"served\"}"], 1);
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"narinfo\",answer=\"upstream_missing\"}"], 2);
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"narinfo\",answer=\"not_narinfo\"}"], 1);
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"narinfo\",answer=\"served\"}"], 0);
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"nar\",answer=\"upstream_missing\"}"], 1);
  EXPECT_EQ(samples["attest_gateway_requests_total{route=\"nar\",answer=\"bad_name\"}"], 1);
}

// ---- gRPC health -----------------------------------------------------------------------------------

TEST_F(NodeMetricsTest, HealthIsServingAfterStartAndNotServingOnceShutdownBegins) {
  StartNode();
  auto channel = grpc::CreateChannel(node_->grpc_address(), grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  auto check = [&](const std::string& service) {
    HealthCheckRequest request;
    request.set_service(service);
    HealthCheckResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status status = health->Check(&context, request, &response);
    return std::make_pair(status.error_code(), response.status());
  };
  for (const std::string service : {"", "attest.v1.Attestations", "attest.v1.Disputes", "attest.v1.Policy",
                                    "attest.v1.LogService", "attest.v1.Federation"}) {
    EXPECT_EQ(check(service), std::make_pair(grpc::StatusCode::OK, HealthCheckResponse::SERVING)) << service;
  }
  EXPECT_EQ(check("attest.v1.NoSuchService").first, grpc::StatusCode::NOT_FOUND);

  // A watcher sees NOT_SERVING once shutdown begins, while its own call is still being drained.
  grpc::ClientContext watch_context;
  HealthCheckRequest request;
  request.set_service("attest.v1.Attestations");
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> watch = health->Watch(&watch_context, request);
  HealthCheckResponse update;
  ASSERT_TRUE(watch->Read(&update));
  EXPECT_EQ(update.status(), HealthCheckResponse::SERVING);

  std::thread shutdown([this] { node_->Shutdown(absl::Now() + absl::Seconds(20)); });
  const bool read = watch->Read(&update);
  watch_context.TryCancel();
  shutdown.join();
  ASSERT_TRUE(read);
  EXPECT_EQ(update.status(), HealthCheckResponse::NOT_SERVING);
}

}  // namespace
}  // namespace attest::server
