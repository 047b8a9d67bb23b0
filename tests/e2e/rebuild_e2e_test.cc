// The rebuild loop, end to end with real Nix and real processes (docs/rebuilds.md):
//
//   a node whose policy needs two operators (a, b) and lists operator a's binary cache;
//   builder A builds a raw dependency chain (base <- middle <- top) with `attest hook`, pushes (the
//   attestations, then the derivations), and publishes the closure in its cache;
//   a client asks the gateway for top: 404 (PENDING, one operator), and that request is demand:
//   `attest wanted` lists top with its deriver available from the node, /metrics counts it;
//   builder B starts from an EMPTY store and has no Nix expression at all: `attest rebuild --once`
//   takes its lease, fetches the derivation closure from the node, checks it, imports it, builds the
//   chain (top with substitution off), and its post-build-hook and push deliver top with build kind
//   rebuild, spooled once;
//   top is CONFIRMED now, leaves the queue, and an empty client store substitutes it through the gateway.
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/nix_harness.h"
#include "tests/e2e/node_harness.h"
#include "tests/server/http_test_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  sh = args: name: derivation ({ inherit name system; builder = "/bin/sh"; } // args);
in rec {
  base = sh { args = [ "-c" "echo rebuild base > $out" ]; } "rebuild-base";
  middle = sh { args = [ "-c" "echo ${base} > $out" ]; } "rebuild-middle";
  top = sh { args = [ "-c" "echo top needs ${middle} > $out" ]; } "rebuild-top";
}
)";

int PortOf(const std::string& host_port) {
  int port = 0;
  const size_t colon = host_port.rfind(':');
  return colon != std::string::npos && absl::SimpleAtoi(host_port.substr(colon + 1), &port) ? port : 0;
}

// The value of an unlabelled sample `name` (or `name{labels}`) in a /metrics text; -1 when absent.
double Sample(const std::string& metrics, const std::string& series) {
  const std::string prefix = series + " ";
  size_t at = metrics.starts_with(prefix) ? 0 : metrics.find("\n" + prefix);
  if (at == std::string::npos) return -1;
  if (at != 0) ++at;
  const size_t from = at + prefix.size();
  const size_t end = metrics.find('\n', from);
  double value = -1;
  EXPECT_TRUE(absl::SimpleAtod(metrics.substr(from, end == std::string::npos ? end : end - from), &value));
  return value;
}

class RebuildE2eTest : public ::testing::Test {
 protected:
  RebuildE2eTest() : nix_(dir_) { WriteFileOrDie(expression_, kExpression); }

  std::string Metrics(const NodeHarness& node) {
    std::optional<HttpAnswer> answer = HttpGet(PortOf(node.http_address()), "/metrics");
    EXPECT_TRUE(answer.has_value() && answer->status == 200) << "GET /metrics";
    return answer ? answer->body : "";
  }

  TempDir dir_;
  NixSandbox nix_;
  const std::string expression_ = dir_.File("chain.nix");
};

TEST_F(RebuildE2eTest, ASecondOperatorRebuildsWhatIsWantedFromTheNodesDerivationsAlone) {
  const NixKeyPair key_a = MakeNixKey(dir_, "a-builder-1");
  const NixKeyPair key_b = MakeNixKey(dir_, "b-builder-1");
  const std::string cache_a = dir_.File("cache-a");
  std::filesystem::create_directories(cache_a);
  NodeHarness node(dir_,
                   PolicyToml(2, {{"a", {key_a.public_text}, {"file://" + cache_a}}, {"b", {key_b.public_text}, {}}}),
                   "\n[gateway]\npriority = 30\n");
  ASSERT_TRUE(node.Start());
  const int http_port = PortOf(node.http_address());

  // 1. Builder A builds the chain with the hook, pushes attestations and derivations, fills its cache.
  const HookBuilder a = MakeHookBuilder(dir_, nix_, "a", key_a.secret_file, node.grpc_address());
  RunResult build = BuildWithHook(nix_, a, expression_, {"top"});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  ASSERT_EQ(SpoolRecords(a), 3u) << build.err;
  RunResult push = PushSpool(a);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_THAT(push.out + push.err, Not(HasSubstr("warning")));
  std::map<std::string, std::string> paths;
  for (const char* attr : {"base", "middle", "top"}) paths[attr] = nix_.OutPath(a.store, expression_, attr);
  const std::string top = paths.at("top");
  RunResult copy = nix_.Nix({"nix", "copy", "--store", a.store, "--to", "file://" + cache_a + "?compression=none", top});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;

  // The node holds the chain's derivations, checked, and serves them.
  RunResult instantiate = nix_.Nix({"nix-instantiate", "--store", a.store, expression_, "-A", "top"});
  ASSERT_EQ(instantiate.exit_code, 0) << instantiate.err;
  const std::string top_drv(absl::StripTrailingAsciiWhitespace(instantiate.out));
  std::optional<HttpAnswer> served_drv =
      HttpGet(http_port, "/drv/" + top_drv.substr(std::string("/nix/store/").size()));
  ASSERT_TRUE(served_drv.has_value());
  EXPECT_EQ(served_drv->status, 200) << served_drv->body;
  EXPECT_EQ(served_drv->body, ReadFileOrDie(a.store + top_drv));

  // 2. A client asks the gateway for top: 404, and the request is demand.
  const std::string top_hash = top.substr(std::string("/nix/store/").size(), 32);
  std::optional<HttpAnswer> narinfo = HttpGet(http_port, "/" + top_hash + ".narinfo");
  ASSERT_TRUE(narinfo.has_value());
  EXPECT_EQ(narinfo->status, 404) << narinfo->body;
  EXPECT_THAT(narinfo->body, HasSubstr("PENDING")) << "the gateway, not a status request, is the demand here";
  RunResult wanted = node.Cli({"wanted", "--node", node.grpc_address(), "--json"});
  ASSERT_EQ(wanted.exit_code, 0) << wanted.out << wanted.err;
  const nlohmann::json queue = nlohmann::json::parse(wanted.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(queue.is_object() && queue.contains("wanted")) << wanted.out;
  ASSERT_EQ(queue["wanted"].size(), 1u) << wanted.out;
  const nlohmann::json& entry = queue["wanted"][0];
  EXPECT_EQ(entry.value("path", ""), top) << entry.dump();
  EXPECT_EQ(entry.value("operatorsNeeded", 0), 1) << entry.dump();
  EXPECT_THAT(entry.dump(), HasSubstr(top_drv));
  EXPECT_THAT(entry.dump(), HasSubstr("\"available\":true"));
  std::string metrics = Metrics(node);
  EXPECT_EQ(Sample(metrics, "attest_rebuild_queue_paths"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "attest_demand_requests_total{outcome=\"counted\"}"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "attest_derivations"), 3) << metrics;
  // Operator a already attested it: nothing for a's rebuilders.
  RunResult wanted_by_a = node.Cli({"wanted", "--node", node.grpc_address(), "--operator", "a", "--json"});
  ASSERT_EQ(wanted_by_a.exit_code, 0) << wanted_by_a.err;
  EXPECT_EQ(nlohmann::json::parse(wanted_by_a.out, nullptr, false).value("wanted", nlohmann::json::array()).size(),
            0u)
      << wanted_by_a.out;

  // 3. Builder B: an empty store, no expression, its post-build-hook set in nix.conf.
  const HookBuilder b = MakeHookBuilder(dir_, nix_, "b", key_b.secret_file, node.grpc_address());
  {
    std::string conf = ReadFileOrDie(dir_.File("nix/etc/nix.conf"));
    WriteFileOrDie(dir_.File("nix/etc/nix.conf"), conf + "post-build-hook = " + ATTEST_HOOK_BIN + "\n");
  }
  RunResult rebuild = nix_.Nix({ATTEST_BIN, "rebuild", "--config", b.config, "--store", b.store, "--once"},
                               {{"ATTEST_BUILDER_CONFIG", b.config}}, std::chrono::seconds(300));
  ASSERT_EQ(rebuild.exit_code, 0) << rebuild.out << rebuild.err;
  EXPECT_THAT(rebuild.out, HasSubstr(top)) << rebuild.out;
  EXPECT_TRUE(std::filesystem::exists(b.store + top)) << "B built top in its own store";
  EXPECT_EQ(ReadFileOrDie(b.store + top), ReadFileOrDie(a.store + top));
  EXPECT_EQ(SpoolRecords(b), 0u) << "the rebuild pushed what it built";

  // 4. CONFIRMED by two operators, B's attestation says it was a rebuild, and the queue is empty.
  EXPECT_EQ(node.Verdict(top), "CONFIRMED");
  RunResult status = node.Cli({"status", "--node", node.grpc_address(), "--json", top});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("\"rebuild\"")) << status.out;
  RunResult after = node.Cli({"wanted", "--node", node.grpc_address(), "--json"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(nlohmann::json::parse(after.out, nullptr, false).value("wanted", nlohmann::json::array()).size(), 0u)
      << after.out;
  metrics = Metrics(node);
  EXPECT_EQ(Sample(metrics, "attest_rebuild_results_total{outcome=\"built\"}"), 1) << metrics;

  // 5. An empty client store substitutes top through the gateway (bytes from operator a's cache).
  RunResult client = nix_.Nix({"nix-store", "--store", nix_.Store("client"), "--realise", top, "--option",
                               "substituters", "http://" + node.http_address(), "--option", "trusted-public-keys",
                               node.public_key(), "--option", "narinfo-cache-negative-ttl", "0"});
  ASSERT_EQ(client.exit_code, 0) << client.err << "\nattestd:\n" << node.daemon()->Stderr();
  EXPECT_THAT(client.err, HasSubstr("copying path '" + top + "' from 'http://"));
  EXPECT_THAT(client.err, Not(HasSubstr("building '")));

  ASSERT_TRUE(node.Stop().has_value());
}

}  // namespace
}  // namespace attest::testing
