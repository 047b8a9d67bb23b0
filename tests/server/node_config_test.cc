// server/node_config: parsing, defaults, path resolution, and errors that point at file, line, column.
#include "consensus/text.h"
#include "server/node_config.h"

#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/server_test_util.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::testing::HasSubstr;
using ::testing::AllOf;
using ::testing::Not;
using ::testing::StartsWith;

constexpr std::string_view kMinimal =
    "[node]\n"
    "key = \"node.sec\"\n"
    "policy = \"policy.toml\"\n";

std::string ErrorOf(std::string_view text, std::string_view file = "/etc/attest/node.toml") {
  auto config = ParseNodeConfig(text, file);
  EXPECT_FALSE(config.ok()) << "parsed: " << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(consensus::StdView(config.status().message()));
}

TEST(NodeConfigTest, RefusesInvalidUtf8BeforeParsingToml) {
  // toml++ 3.3 misbehaves on some invalid UTF-8: it must never see it.
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "# \xE9t\xE9\n"),
              AllOf(StartsWith("/etc/attest/node.toml:4:3: byte 0xE9"), HasSubstr("not valid UTF-8")));
  EXPECT_THAT(ErrorOf("[node]\nkey = \"node\xED\xA0\x80.sec\"\n"), StartsWith("/etc/attest/node.toml:2:12: byte 0xED"));
  EXPECT_THAT(ErrorOf("[node]\n\xF8\x88\x80\x80\x80 = 1\n"), StartsWith("/etc/attest/node.toml:2:1: byte 0xF8"));
  EXPECT_THAT(ErrorOf("[node]\n# \xF0\x9F\x98"), StartsWith("/etc/attest/node.toml:2:3: byte 0xF0"));
}

TEST(NodeConfigTest, MinimalConfigGetsDefaultsAndResolvesPathsAgainstItsDirectory) {
  auto config = ParseNodeConfig(kMinimal, "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->grpc_address, "127.0.0.1:7700");
  EXPECT_EQ(config->http_address, "127.0.0.1:7780");
  EXPECT_EQ(config->key_path, "/etc/attest/node.sec");
  EXPECT_EQ(config->policy_path, "/etc/attest/policy.toml");
  EXPECT_EQ(config->database_path, "/etc/attest/attest.db");
  EXPECT_FALSE(config->observe_unknown_keys);
  EXPECT_FALSE(config->allow_non_loopback);
  EXPECT_EQ(config->max_batch, 10000);
  EXPECT_EQ(config->verify_threads, 2);
  EXPECT_EQ(config->max_message_bytes, 64 << 20);
  EXPECT_EQ(config->max_status_answer_bytes, 4 << 20);
  EXPECT_EQ(config->http_threads, 2);
  EXPECT_EQ(config->http_job_threads, 16);
  EXPECT_EQ(config->http_max_connections, 1024);
  EXPECT_EQ(config->http_max_connections_per_ip, 128);
  EXPECT_EQ(config->http_idle_timeout_seconds, 30);
  EXPECT_EQ(config->http_request_head_timeout_seconds, 20);
  EXPECT_FALSE(config->gateway.has_value());
  EXPECT_EQ(config->checkpoint_interval, absl::Seconds(1));
  EXPECT_TRUE(config->peers.empty());
  EXPECT_TRUE(ValidateNodeConfig(*config).ok());
}

TEST(NodeConfigTest, EveryKeyIsRead) {
  auto config = ParseNodeConfig(
      "[node]\n"
      "grpc = \"[::1]:7701\"\n"
      "http = \"127.0.0.1:7781\"\n"
      "database = \"/var/lib/attest/db.sqlite\"\n"
      "key = \"../keys/node.sec\"\n"
      "policy = \"policy.toml\"\n"
      "observe_unknown_keys = true\n"
      "max_batch = 500\n"
      "max_status_paths = 2000\n"
      "max_status_answer_bytes = 65536\n"
      "max_message_bytes = 1048576\n"
      "verify_threads = 4\n"
      "rpc_threads = 3\n"
      "allow_non_loopback = false\n"
      "http_threads = 3\n"
      "http_job_threads = 5\n"
      "http_max_connections = 77\n"
      "http_max_connections_per_ip = 0\n"
      "http_idle_timeout = 9\n"
      "http_request_head_timeout = 7\n"
      "\n"
      "[gateway]\n"
      "upstream = \"https://cache.nixos.org\"\n"
      "priority = 41\n"
      "positive_ttl = 100\n"
      "negative_ttl = 0\n"
      "failure_ttl = 2\n"
      "cache_entries = 1000\n"
      "upstream_timeout = 4\n"
      "nar_streams = 6\n"
      "\n"
      "[federation]\n"
      "poll_interval = \"250ms\"\n"
      "max_backoff = \"3s\"\n"
      "batch_entries = 1024\n"
      "\n"
      "[[peer]]\n"
      "grpc = \"node-b.example.org:7700\"\n"
      "http = \"node-b.example.org:7780\"\n"
      "key = \"node-b:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n",
      "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->grpc_address, "[::1]:7701");
  EXPECT_EQ(config->http_address, "127.0.0.1:7781");
  EXPECT_EQ(config->database_path, "/var/lib/attest/db.sqlite");
  EXPECT_EQ(config->key_path, "/etc/keys/node.sec");
  EXPECT_TRUE(config->observe_unknown_keys);
  EXPECT_EQ(config->max_batch, 500);
  EXPECT_EQ(config->max_status_paths, 2000);
  EXPECT_EQ(config->max_status_answer_bytes, 65536);
  EXPECT_EQ(config->max_message_bytes, 1048576);
  EXPECT_EQ(config->verify_threads, 4);
  EXPECT_EQ(config->rpc_threads, 3);
  EXPECT_EQ(config->http_threads, 3);
  EXPECT_EQ(config->http_job_threads, 5);
  EXPECT_EQ(config->http_max_connections, 77);
  EXPECT_EQ(config->http_max_connections_per_ip, 0);
  EXPECT_EQ(config->http_idle_timeout_seconds, 9);
  EXPECT_EQ(config->http_request_head_timeout_seconds, 7);
  ASSERT_TRUE(config->gateway.has_value());
  EXPECT_EQ(config->gateway->upstream, "https://cache.nixos.org");
  EXPECT_EQ(config->gateway->priority, 41);
  EXPECT_EQ(config->gateway->positive_ttl_seconds, 100);
  EXPECT_EQ(config->gateway->negative_ttl_seconds, 0);
  EXPECT_EQ(config->gateway->failure_ttl_seconds, 2);
  EXPECT_EQ(config->gateway->cache_entries, 1000);
  EXPECT_EQ(config->gateway->upstream_timeout_seconds, 4);
  EXPECT_EQ(config->gateway->nar_streams, 6);
  EXPECT_TRUE(ValidateNodeConfig(*config).ok());
  ASSERT_EQ(config->peers.size(), 1u);
  EXPECT_EQ(config->peers[0].name, "node-b");
  EXPECT_EQ(config->peers[0].grpc, "node-b.example.org:7700");
  EXPECT_EQ(config->peers[0].http, "node-b.example.org:7780");
  EXPECT_EQ(config->peers[0].public_key, "node-b:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_EQ(config->federation.poll_interval, absl::Milliseconds(250));
  EXPECT_EQ(config->federation.max_backoff, absl::Seconds(3));
  EXPECT_EQ(config->federation.batch_entries, 1024);
}

TEST(NodeConfigTest, PeerErrorsNameTheProblem) {
  const std::string key = "key = \"node-b:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n";
  const std::string base = "[node]\nkey = \"k\"\npolicy = \"p\"\n[[peer]]\n";
  EXPECT_THAT(ErrorOf(base + "grpc = \"a:1\"\n" + key), HasSubstr("[[peer]] has no http"));
  EXPECT_THAT(ErrorOf(base + "grpc = \"a:1\"\nhttp = \"a:2\"\nkey = \"node-b:abc\"\n"),
              HasSubstr("[[peer]] key: "));
  EXPECT_THAT(ErrorOf(base + "grpc = \"a:1\"\nhttp = \"a:2\"\nname = \"x\"\n" + key),
              HasSubstr("unknown key \"name\" in [[peer]]"));
  EXPECT_THAT(ErrorOf(base + "grpc = \"a:1\"\nhttp = \"a:2\"\n" + key + "[[peer]]\ngrpc = \"b:1\"\nhttp = \"b:2\"\n" + key),
              HasSubstr("two [[peer]] tables have keys named \"node-b\""));
  EXPECT_THAT(ErrorOf("[node]\nkey = \"k\"\npolicy = \"p\"\n[federation]\npoll_interval = \"0s\"\n"),
              HasSubstr("poll_interval = \"0s\" is out of range"));
  EXPECT_THAT(ErrorOf("[node]\nkey = \"k\"\npolicy = \"p\"\n[federation]\nbogus = 1\n"),
              HasSubstr("unknown key \"bogus\" in [federation]"));
}

TEST(NodeConfigTest, UnknownKeyNamesFileLineAndKey) {
  std::string error = ErrorOf(
      "[node]\n"
      "key = \"node.sec\"\n"
      "colour = \"blue\"\n"
      "policy = \"policy.toml\"\n");
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:3:1: "));
  EXPECT_THAT(error, HasSubstr("unknown key \"colour\" in [node]"));
}

TEST(NodeConfigTest, UnknownTableIsAnError) {
  std::string error = ErrorOf(std::string(kMinimal) + "\n[gatway]\nupstream = \"x\"\n");
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:5:"));
  EXPECT_THAT(error, HasSubstr("unknown table [gatway]"));
}

TEST(NodeConfigTest, UnknownTopLevelKeyIsAnError) {
  std::string error = ErrorOf("quorum = 2\n" + std::string(kMinimal));
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:1:1: "));
  EXPECT_THAT(error, HasSubstr("unknown key \"quorum\""));
}

TEST(NodeConfigTest, UnknownKeysInGatewayAndPeerAreErrors) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"http://x\"\nttl = 5\n"),
              AllOf(StartsWith("/etc/attest/node.toml:6:1: "), HasSubstr("unknown key \"ttl\" in [gateway]")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[[peer]]\ngrpc = \"b:1\"\naddress = \"x:1\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:6:1: "), HasSubstr("unknown key \"address\" in [[peer]]")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[[peer]]\ngrpc = \"x:1\"\n"), HasSubstr("[[peer]] has no http"));
  EXPECT_THAT(ErrorOf("peer = 3\n" + std::string(kMinimal)), HasSubstr("not an array of tables"));
}

TEST(NodeConfigTest, GatewayDefaultsAndItsErrors) {
  auto config = ParseNodeConfig(std::string(kMinimal) + "[gateway]\nupstream = \"file:///srv/cache\"\n", "n.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->gateway.has_value());
  EXPECT_EQ(config->gateway->upstream, "file:///srv/cache");
  EXPECT_EQ(config->gateway->priority, 30);
  EXPECT_EQ(config->gateway->positive_ttl_seconds, 3600);
  EXPECT_EQ(config->gateway->negative_ttl_seconds, 60);
  EXPECT_EQ(config->gateway->failure_ttl_seconds, 5);
  EXPECT_EQ(config->gateway->cache_entries, 50000);
  EXPECT_EQ(config->gateway->upstream_timeout_seconds, 10);
  EXPECT_EQ(config->gateway->nar_streams, 32);

  // No upstream: allowed by the config (the sources may be the policy's operator caches, which the
  // node checks when it opens the policy).
  auto relay = ParseNodeConfig(std::string(kMinimal) + "[gateway]\npriority = 3\n", "/srv/attest/node.toml");
  ASSERT_TRUE(relay.ok()) << relay.status();
  EXPECT_EQ(relay->gateway->upstream, "");
  EXPECT_EQ(relay->gateway->nar_cache, "");
  EXPECT_EQ(relay->gateway->nar_cache_mib, 10240);
  EXPECT_EQ(relay->gateway->max_nar_mib, 4096);
  EXPECT_EQ(relay->gateway->nar_fetches, 16);
  EXPECT_EQ(relay->gateway->source_timeout_seconds, 10);
  EXPECT_EQ(relay->gateway->nar_transfer_timeout_seconds, 600);
  EXPECT_EQ(relay->gateway->nar_stall_timeout_seconds, 30);
  auto set = ParseNodeConfig(std::string(kMinimal) +
                                 "[gateway]\nnar_cache = \"nars\"\nnar_cache_mib = 100\nmax_nar_mib = 50\n"
                                 "nar_fetches = 3\nsource_timeout = 4\nnar_transfer_timeout = 60\nnar_stall_timeout = 7\n",
                             "/srv/attest/node.toml");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->gateway->nar_cache, "/srv/attest/nars");
  EXPECT_EQ(set->gateway->nar_cache_mib, 100);
  EXPECT_EQ(set->gateway->max_nar_mib, 50);
  EXPECT_EQ(set->gateway->nar_fetches, 3);
  EXPECT_EQ(set->gateway->source_timeout_seconds, 4);
  EXPECT_EQ(set->gateway->nar_transfer_timeout_seconds, 60);
  EXPECT_EQ(set->gateway->nar_stall_timeout_seconds, 7);
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nnar_cache_mib = 10\nmax_nar_mib = 11\n"),
              HasSubstr("max_nar_mib (11) is larger than nar_cache_mib (10)"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nnar_fetches = 0\n"), HasSubstr("nar_fetches is 0"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nnar_transfer_timeout = 5\n"),
              HasSubstr("nar_transfer_timeout is 5"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nnar_cache = \"\"\n"), HasSubstr("nar_cache is empty"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"s3://bucket\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:12: "), HasSubstr("not a binary cache URL")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"file://relative/dir\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:12: "), HasSubstr("needs an absolute path")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"file:///srv/c?compression=none\"\n"),
              HasSubstr("query"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"http://\"\n"), HasSubstr("no host"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"http://x\"\npriority = -1\n"),
              AllOf(StartsWith("/etc/attest/node.toml:6:12: "), HasSubstr("priority is -1")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"http://x\"\ncache_entries = 0\n"),
              HasSubstr("cache_entries is 0"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[gateway]\nupstream = \"http://x\"\nnegative_ttl = \"1h\"\n"),
              HasSubstr("negative_ttl is a string, not an integer"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http = \"\"\n[gateway]\nupstream = \"http://x\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:"), HasSubstr("http = \"\" turns it off")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http_threads = 0\n"), HasSubstr("http_threads is 0"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http_idle_timeout = 99999\n"), HasSubstr("http_idle_timeout"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http_max_connections_per_ip = -1\n"),
              HasSubstr("http_max_connections_per_ip is -1"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http_request_head_timeout = 0\n"),
              HasSubstr("http_request_head_timeout is 0"));

  NodeConfig built = *config;
  built.gateway->upstream = "ftp://x";
  EXPECT_THAT(std::string(ValidateNodeConfig(built).message()), HasSubstr("not a binary cache URL"));
  built.gateway->upstream = "http://x";
  built.gateway->nar_streams = 0;
  EXPECT_THAT(std::string(ValidateNodeConfig(built).message()), HasSubstr("nar_streams is 0"));
  built.gateway->nar_streams = 4;
  EXPECT_TRUE(ValidateNodeConfig(built).ok());
  built.http_address = "";
  EXPECT_THAT(std::string(ValidateNodeConfig(built).message()), HasSubstr("needs the HTTP port"));
}

TEST(NodeConfigTest, WrongTypeNamesTheValuePosition) {
  std::string error = ErrorOf(std::string(kMinimal) + "max_batch = \"lots\"\n");
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:4:13: "));
  EXPECT_THAT(error, HasSubstr("max_batch is a string, not an integer"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "observe_unknown_keys = 1\n"),
              AllOf(StartsWith("/etc/attest/node.toml:4:"), HasSubstr("not a boolean")));
  EXPECT_THAT(ErrorOf("[node]\nkey = 5\npolicy = \"p\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:2:7: "), HasSubstr("key is an integer, not a string")));
}

TEST(NodeConfigTest, OutOfRangeIntegersAreErrors) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "verify_threads = 0\n"),
              AllOf(StartsWith("/etc/attest/node.toml:4:"), HasSubstr("verify_threads is 0")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "max_batch = -1\n"), HasSubstr("max_batch is -1"));
}

TEST(NodeConfigTest, SyntaxErrorNamesLine) {
  std::string error = ErrorOf("[node]\nkey = \"node.sec\"\npolicy = \"policy.toml\n");
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:3:"));
  EXPECT_THAT(error, HasSubstr("TOML syntax error"));
}

TEST(NodeConfigTest, MissingRequiredKeysAreErrors) {
  EXPECT_THAT(ErrorOf("[node]\npolicy = \"p.toml\"\n"), HasSubstr("[node] has no key"));
  EXPECT_THAT(ErrorOf("[node]\nkey = \"k\"\n"), HasSubstr("[node] has no policy"));
  EXPECT_THAT(ErrorOf(""), AllOf(StartsWith("/etc/attest/node.toml:1:1: "), HasSubstr("has no key")));
  EXPECT_THAT(ErrorOf("[node]\nkey = \"\"\npolicy = \"p\"\n"), HasSubstr("key is empty"));
}

TEST(NodeConfigTest, NonLoopbackNeedsExplicitOptIn) {
  std::string error = ErrorOf(std::string(kMinimal) + "grpc = \"0.0.0.0:7700\"\n");
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:4:8: "));
  EXPECT_THAT(error, HasSubstr("allow_non_loopback = true"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http = \"192.168.1.5:80\"\n"), HasSubstr("not a loopback address"));
  // The opt-in may come after the address.
  auto config = ParseNodeConfig(std::string(kMinimal) + "grpc = \"0.0.0.0:7700\"\nallow_non_loopback = true\n",
                                "node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->grpc_address, "0.0.0.0:7700");
  for (const char* loopback : {"127.0.0.1:1", "127.8.9.10:2", "localhost:0", "[::1]:0"}) {
    EXPECT_TRUE(ParseNodeConfig(std::string(kMinimal) + "grpc = \"" + loopback + "\"\n", "n.toml").ok()) << loopback;
  }
}

TEST(NodeConfigTest, MalformedAddressesAreErrors) {
  for (const char* bad : {"7700", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:x", "::1:7700",
                          "[::1]7700", "[nothex]:1", "a b:1"}) {
    auto address = ParseListenAddress(bad);
    EXPECT_FALSE(address.ok()) << bad;
    EXPECT_THAT(ErrorOf(std::string(kMinimal) + "grpc = \"" + bad + "\"\n"), HasSubstr("grpc = ")) << bad;
  }
  auto v6 = ParseListenAddress("[::1]:7700");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 7700);
  EXPECT_TRUE(v6->IsLoopback());
}

TEST(NodeConfigTest, LoadNamesMissingFile) {
  testing::TempDir dir;
  auto config = LoadNodeConfig(dir.File("nope.toml"));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(consensus::StdView(config.status().message())), HasSubstr("nope.toml"));
}

TEST(NodeConfigTest, LoadResolvesRelativeToTheFile) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.File("node.toml"), std::string(kMinimal));
  auto config = LoadNodeConfig(dir.File("node.toml"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->key_path, dir.File("node.sec"));
  EXPECT_EQ(config->config_file, dir.File("node.toml"));
}

TEST(NodeConfigTest, ValidateCatchesConfigsBuiltInCode) {
  NodeConfig config;
  config.database_path = "/tmp/a.db";
  config.key_path = "/tmp/k";
  config.policy_path = "/tmp/p";
  EXPECT_TRUE(ValidateNodeConfig(config).ok());
  config.grpc_address = "0.0.0.0:1";
  EXPECT_EQ(ValidateNodeConfig(config).code(), absl::StatusCode::kInvalidArgument);
  config.allow_non_loopback = true;
  EXPECT_TRUE(ValidateNodeConfig(config).ok());
  config.max_batch = 0;
  EXPECT_EQ(ValidateNodeConfig(config).code(), absl::StatusCode::kInvalidArgument);
}

TEST(NodeConfigTest, CheckpointIntervalIsADurationString) {
  for (const auto& [text, expected] : std::vector<std::pair<std::string, absl::Duration>>{
           {"250ms", absl::Milliseconds(250)}, {"1s", absl::Seconds(1)}, {"2m", absl::Minutes(2)},
           {"1h", absl::Hours(1)}, {"10ms", absl::Milliseconds(10)}, {"1m30s", absl::Seconds(90)}}) {
    auto config = ParseNodeConfig(consensus::Cat(kMinimal, "[log]\ncheckpoint_interval = \"", text, "\"\n"),
                                  "/etc/attest/node.toml");
    ASSERT_TRUE(config.ok()) << text << ": " << config.status();
    EXPECT_EQ(config->checkpoint_interval, expected) << text;
    EXPECT_TRUE(ValidateNodeConfig(*config).ok());
  }
}

TEST(NodeConfigTest, BadCheckpointIntervalNamesTheProblem) {
  const std::string log = consensus::Cat(kMinimal, "[log]\n");
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"soon\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:23: "), HasSubstr("\"soon\" is not a duration")));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"5\"\n"), HasSubstr("is not a duration (a number with a unit"));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = 5\n"),
              AllOf(HasSubstr("checkpoint_interval is an integer"), HasSubstr("write it in quotes with a unit")));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"0s\"\n"), HasSubstr("it must be between 10ms and 1h"));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"-1s\"\n"), HasSubstr("it must be between 10ms and 1h"));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"2h\"\n"), HasSubstr("is 2h; it must be between 10ms and 1h"));
  EXPECT_THAT(ErrorOf(log + "checkpoint_interval = \"inf\"\n"), HasSubstr("it must be between"));
  EXPECT_THAT(ErrorOf(log + "interval = \"1s\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:1: "), HasSubstr("unknown key \"interval\" in [log]"),
                    HasSubstr("checkpoint_interval")));
  EXPECT_THAT(ErrorOf(consensus::Cat(kMinimal, "log = 1\n")), HasSubstr("unknown key \"log\""));

  NodeConfig config;
  config.database_path = "/tmp/a.db";
  config.key_path = "/tmp/k";
  config.policy_path = "/tmp/p";
  config.checkpoint_interval = absl::Milliseconds(1);
  absl::Status s = ValidateNodeConfig(config);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(consensus::StdView(s.message())), HasSubstr("[log] checkpoint_interval is 1ms"));
}

TEST(NodeConfigTest, SourcesAreReadInFileOrderWithTheirPriorities) {
  EXPECT_TRUE(ParseNodeConfig(kMinimal, "n.toml")->sources.empty());
  auto config = ParseNodeConfig(consensus::Cat(kMinimal,
                                               "[[source]]\n"
                                               "url = \"https://mirror.example.org/nix/\"\n"
                                               "priority = 20\n"
                                               "\n"
                                               "[[source]]\n"
                                               "url = \"file:///srv/nar-cache\"\n"
                                               "\n"
                                               "[[source]]\n"
                                               "priority = 10000\n"
                                               "url = \"http://[::1]:5000\"\n"),
                                "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->sources.size(), 3u);
  EXPECT_EQ(config->sources[0].url, "https://mirror.example.org/nix");  // normalised: no trailing slash
  EXPECT_EQ(config->sources[0].priority, 20);
  EXPECT_EQ(config->sources[0].where, "/etc/attest/node.toml:4:1: ");
  EXPECT_EQ(config->sources[1].url, "file:///srv/nar-cache");
  EXPECT_EQ(config->sources[1].priority, 0);  // the default
  EXPECT_EQ(config->sources[2].url, "http://[::1]:5000");
  EXPECT_EQ(config->sources[2].priority, 10000);
  EXPECT_TRUE(ValidateNodeConfig(*config).ok());
}

TEST(NodeConfigTest, SourceErrorsNameTheProblem) {
  const std::string base = consensus::Cat(kMinimal, "[[source]]\n");  // the table is line 4, its keys from 5
  // The URL rule is the policy's (consensus::ValidateCacheUrl).
  for (auto [url, problem] : std::vector<std::pair<std::string, std::string>>{
           {"ftp://mirror.example.org", "has the scheme 'ftp', which attest does not fetch from"},
           {"s3://bucket", "is an s3:// URL"},
           {"file://srv/cache", "needs an absolute path"},
           {"", "cache URL is empty"},
           {"https://mirror.example.org#x", "has a fragment"},
           {"https://mirror.example.org?priority=1", "has a query"},
           {"https://mirror.example.org/a\\tb", "control character 0x09"},
           {"https://mirror.example.org/" + std::string(1000, 'x'), "bytes long (use at most 1024 bytes"}}) {
    EXPECT_THAT(ErrorOf(base + "url = \"" + url + "\"\n"),
                AllOf(StartsWith("/etc/attest/node.toml:5:7: [[source]] url: cache URL "), HasSubstr(problem)))
        << url;
  }
  const std::string with_password = ErrorOf(base + "url = \"https://bob:hunter2@mirror.example.org\"\n");
  EXPECT_THAT(with_password, AllOf(HasSubstr("user name or password"), Not(HasSubstr("hunter2"))));

  EXPECT_THAT(ErrorOf(base + "url = 5\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:7: "), HasSubstr("url is an integer, not a string")));
  EXPECT_THAT(ErrorOf(base + "priority = 3\n"),
              AllOf(StartsWith("/etc/attest/node.toml:4:"), HasSubstr("[[source]] has no url")));
  EXPECT_THAT(ErrorOf(base + "url = \"http://m\"\npriority = -1\n"),
              AllOf(StartsWith("/etc/attest/node.toml:6:12: "), HasSubstr("priority is -1; it must be between 0 and 10000")));
  EXPECT_THAT(ErrorOf(base + "url = \"http://m\"\npriority = 10001\n"), HasSubstr("priority is 10001"));
  EXPECT_THAT(ErrorOf(base + "url = \"http://m\"\npriority = \"high\"\n"),
              HasSubstr("priority is a string, not an integer"));
  EXPECT_THAT(ErrorOf(base + "url = \"http://m\"\nkey = \"m:AAAA\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:6:1: "),
                    HasSubstr("unknown key \"key\" in [[source]] (known keys: url, priority)")));
  EXPECT_THAT(ErrorOf(base + "url = \"http://m/\"\n\n[[source]]\nurl = \"http://m\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:7:"),
                    HasSubstr("two [[source]] tables have the url \"http://m\", the first at /etc/attest/node.toml:4:")));
  EXPECT_THAT(ErrorOf(consensus::Cat(kMinimal, "[source]\nurl = \"http://m\"\n")),
              HasSubstr("\"source\" is a table, not an array of tables (write each source as a [[source]] table)"));
}

TEST(NodeConfigTest, ValidateChecksSourcesBuiltInCode) {
  NodeConfig config;
  config.database_path = "/tmp/a.db";
  config.key_path = "/tmp/k";
  config.policy_path = "/tmp/p";
  config.sources = {{.url = "https://a.example.org", .priority = 5}, {.url = "file:///srv/c", .priority = 0}};
  EXPECT_TRUE(ValidateNodeConfig(config).ok());
  auto message = [&] { return std::string(consensus::StdView(ValidateNodeConfig(config).message())); };
  config.sources[1].url = "ftp://c";
  EXPECT_THAT(message(), HasSubstr("[[source]] 2 url: cache URL 'ftp://c' has the scheme 'ftp'"));
  config.sources[1].url = "https://a.example.org/";
  EXPECT_THAT(message(), HasSubstr("is not normalised (write \"https://a.example.org\")"));
  config.sources[1].url = "https://a.example.org";
  EXPECT_THAT(message(), HasSubstr("[[source]] 2 has the url of [[source]] 1"));
  config.sources[1].url = "https://b.example.org";
  config.sources[1].priority = kMaxSourcePriority + 1;
  EXPECT_THAT(message(), HasSubstr("priority is 10001"));
  config.sources[1].priority = kMaxSourcePriority;
  EXPECT_TRUE(ValidateNodeConfig(config).ok());
}

TEST(NodeConfigTest, TestTableIsAnUnknownTable) {
  // Test-only behaviour is injected in code (NodeOptions), never switched on by a node's config.
  const std::string error = ErrorOf(consensus::Cat(kMinimal, "[test]\nfork_log = true\n"));
  EXPECT_THAT(error, StartsWith("/etc/attest/node.toml:4:2: unknown table [test]"));
  EXPECT_THAT(error, HasSubstr("a node config has [node], [tls], [gateway], [log], [scrub], [rebuild], [federation], [[peer]] "
                               "and [[source]]"));
}

}  // namespace
}  // namespace attest::server
