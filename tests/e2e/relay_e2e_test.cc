// The gateway without an upstream (relay mode), end to end with real Nix and real processes:
//
//   three operators (alice-ci, bob-labs, carol-home), each with its own builder key and store, build the
//   same raw deterministic closure with `attest hook` as post-build-hook; `attest push` ships the
//   records to a real attestd whose policy lists each operator's binary cache and whose [gateway] has
//   no upstream;
//   each builder copies the closure to its own cache: alice uncompressed (file://), bob xz (file://),
//   carol xz served over HTTP by `python3 -m http.server` on 127.0.0.1;
//   an empty client store whose only substituter is the gateway and whose only trusted key is the node's
//   substitutes the whole CONFIRMED closure (nothing built), its NARs taken from alice, the first
//   eligible source;
//   then alice's cache lies (one byte of every NAR file changed, sizes kept) and bob's is gone: a second
//   empty client store still substitutes everything, from carol, with the right bytes, and alice's
//   mismatches are reported (/metrics, the node's log, `attest sources`, the operators page).
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// A small closure of raw derivations (no nixpkgs): top refers to middle and tool, middle to base and
// tool. top is a directory with a file, a symbolic link and a file naming a store path, so the NARs
// hold every kind of entry. PATH inside the sandbox is unset: tools are called by absolute path.
constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  sh = args: name: derivation ({ inherit name system; builder = "/bin/sh"; } // args);
in rec {
  base = sh { args = [ "-c" "echo relay base > $out" ]; } "relay-base";
  tool = sh { args = [ "-c" "echo relay tool > $out" ]; } "relay-tool";
  middle = sh { args = [ "-c" "echo ${base} ${tool} > $out" ]; } "relay-middle";
  top = sh {
    args = [ "-c" ''
      set -e
      /bin/mkdir $out
      echo top of the closure > $out/data
      echo ${middle} > $out/refers
      /bin/ln -s ${tool} $out/tool
    '' ];
  } "relay-top";
}
)";

constexpr const char* kClosure[] = {"base", "tool", "middle", "top"};

int PortOf(const std::string& host_port) {
  int port = 0;
  const size_t colon = host_port.rfind(':');
  return colon != std::string::npos && absl::SimpleAtoi(host_port.substr(colon + 1), &port) ? port : 0;
}

// The value of the counter `name{source="<url>"}` in a /metrics text; 0 when the series is absent (a
// labelled counter appears at its first increment).
double SourceCounter(const std::string& metrics, const std::string& name, const std::string& url) {
  const std::string series = name + "{source=\"" + url + "\"} ";
  size_t at = metrics.starts_with(series) ? 0 : metrics.find("\n" + series);
  if (at == std::string::npos) return 0;
  if (at != 0) ++at;
  const size_t end = metrics.find('\n', at);
  const size_t from = at + series.size();
  const std::string value_text = metrics.substr(from, end == std::string::npos ? end : end - from);
  double value = 0;
  EXPECT_TRUE(absl::SimpleAtod(value_text, &value)) << value_text;
  return value;
}

// Makes the uncompressed NAR file at `path` lie: the first byte of the first regular file's contents is
// changed. Same size, still a well-formed NAR, other contents: only the hash check can catch it.
void CorruptNar(const std::string& path) {
  std::string nar = ReadFileOrDie(path);
  const size_t size = nar.size();
  // "contents" (a NAR string: 8-byte length, the text), then the file's 8-byte length and its bytes.
  const size_t token = nar.find("contents");
  ASSERT_NE(token, std::string::npos) << path << " has no regular file";
  const size_t first_byte = token + 8 + 8;
  ASSERT_LT(first_byte, size) << path;
  nar[first_byte] = nar[first_byte] == 'X' ? 'Y' : 'X';
  WriteFileOrDie(path, nar);
  ASSERT_EQ(std::filesystem::file_size(path), size);
}

class RelayE2eTest : public ::testing::Test {
 protected:
  RelayE2eTest() : nix_(dir_) { WriteFileOrDie(expression_, kExpression); }

  // Starts `python3 -m http.server` on `directory` (127.0.0.1, a free port); returns its URL.
  std::string ServeOverHttp(const std::string& directory) {
    StaticHttpServer server = ServeDirectoryOverHttp(directory, dir_.File("python-http"));
    if (server.url.empty()) ADD_FAILURE() << server.error;
    http_server_ = std::move(server.daemon);
    return server.url;
  }


  // nix-build of `top` in a new empty store whose only substituter is the gateway and whose only
  // trusted key is the node's.
  RunResult Realise(const NodeHarness& node, const std::string& store) {
    return nix_.Nix({"nix-build", "--store", store, "--no-out-link", expression_, "-A", "top", "--option",
                     "substituters", "http://" + node.http_address(), "--option", "trusted-public-keys",
                     node.public_key(), "--option", "narinfo-cache-negative-ttl", "0"});
  }

  // Every path of the closure was substituted from the gateway, none built, and each is signed by the
  // node and not "ultimate" (built locally) in `store`.
  void ExpectSubstituted(const RunResult& realised, const std::string& store) {
    for (const char* attr : kClosure) {
      EXPECT_THAT(realised.err, HasSubstr("copying path '" + paths_.at(attr) + "' from 'http://"))
          << attr << " was not substituted:\n"
          << realised.err;
    }
    EXPECT_THAT(realised.err, Not(HasSubstr("building '")));
    std::vector<std::string> closure;
    for (const char* attr : kClosure) closure.push_back(paths_.at(attr));
    const nlohmann::json infos = nix_.PathInfo(store, closure);
    EXPECT_EQ(infos.size(), closure.size());
    for (const nlohmann::json& info : infos) {
      EXPECT_FALSE(info.value("ultimate", false)) << info.dump();
      bool node_signed = false;
      for (const auto& sig : info.value("signatures", nlohmann::json::array())) {
        if (sig.get<std::string>().starts_with("node:")) node_signed = true;
      }
      EXPECT_TRUE(node_signed) << info.dump();
    }
    // The bytes are the builders' (a chroot store keeps its /nix/store under the store directory).
    EXPECT_EQ(ReadFileOrDie(store + paths_.at("top") + "/data"), "top of the closure\n");
    EXPECT_EQ(ReadFileOrDie(store + paths_.at("base")), "relay base\n");
  }

  static std::string Metrics(const NodeHarness& node) {
    std::optional<HttpAnswer> answer = HttpGet(PortOf(node.http_address()), "/metrics");
    EXPECT_TRUE(answer.has_value() && answer->status == 200) << "GET /metrics";
    return answer ? answer->body : "";
  }

  TempDir dir_;
  NixSandbox nix_;
  const std::string expression_ = dir_.File("closure.nix");
  std::map<std::string, std::string> paths_;  // attribute -> output path
  std::unique_ptr<Daemon> http_server_;
};

TEST_F(RelayE2eTest, ClosureComesFromTheAgreeingOperatorsCachesThroughALyingAndADeadOne) {
  const NixKeyPair key_alice = MakeNixKey(dir_, "alice-builder-1");
  const NixKeyPair key_bob = MakeNixKey(dir_, "bob-builder-1");
  const NixKeyPair key_carol = MakeNixKey(dir_, "carol-builder-1");
  const std::string alice_dir = dir_.File("cache-alice");
  const std::string bob_dir = dir_.File("cache-bob");
  const std::string carol_dir = dir_.File("cache-carol");
  for (const std::string& cache : {alice_dir, bob_dir, carol_dir}) std::filesystem::create_directories(cache);
  const std::string alice_url = "file://" + alice_dir;
  const std::string bob_url = "file://" + bob_dir;
  const std::string carol_url = ServeOverHttp(carol_dir);
  ASSERT_FALSE(carol_url.empty());

  // Quorum 2 of 3: all three agree, so all three are on the confirmed side and their caches eligible.
  NodeHarness node(dir_,
                   PolicyToml(2, {{"alice-ci", {key_alice.public_text}, {alice_url}},
                                  {"bob-labs", {key_bob.public_text}, {bob_url}},
                                  {"carol-home", {key_carol.public_text}, {carol_url}}}),
                   "\n[gateway]\npriority = 30\n");
  ASSERT_TRUE(node.Start());
  ASSERT_FALSE(node.http_address().empty());

  // 1. Every operator builds the closure with the hook and pushes: one record per output.
  const std::vector<HookBuilder> builders = {
      MakeHookBuilder(dir_, nix_, "alice", key_alice.secret_file, node.grpc_address()),
      MakeHookBuilder(dir_, nix_, "bob", key_bob.secret_file, node.grpc_address()),
      MakeHookBuilder(dir_, nix_, "carol", key_carol.secret_file, node.grpc_address())};
  for (const HookBuilder& builder : builders) {
    RunResult build = BuildWithHook(nix_, builder, expression_, {"top"});
    ASSERT_EQ(build.exit_code, 0) << builder.name << ": " << build.err;
    EXPECT_THAT(build.err, HasSubstr("running post-build-hook")) << builder.name;
    EXPECT_EQ(SpoolRecords(builder), 4u) << builder.name << ": " << build.err;
    RunResult push = PushSpool(builder);
    EXPECT_EQ(push.exit_code, 0) << builder.name << ": " << push.out << push.err;
    EXPECT_EQ(SpoolRecords(builder), 0u) << builder.name;
  }
  for (const char* attr : kClosure) paths_[attr] = nix_.OutPath(builders[0].store, expression_, attr);
  for (const char* attr : kClosure) EXPECT_EQ(node.Verdict(paths_.at(attr)), "CONFIRMED") << attr;

  // 2. Each operator publishes its closure in its own cache.
  const std::map<std::string, std::string> copy_to = {{"alice", alice_url + "?compression=none"},
                                                      {"bob", bob_url + "?compression=xz"},
                                                      {"carol", "file://" + carol_dir}};  // xz, Nix's default
  for (const HookBuilder& builder : builders) {
    RunResult copy =
        nix_.Nix({"nix", "copy", "--store", builder.store, "--to", copy_to.at(builder.name), paths_.at("top")});
    ASSERT_EQ(copy.exit_code, 0) << builder.name << ": " << copy.err;
  }
  std::vector<std::string> alice_nars;
  for (const auto& file : std::filesystem::directory_iterator(alice_dir + "/nar")) {
    if (file.path().extension() == ".nar") alice_nars.push_back(file.path().string());
  }
  ASSERT_EQ(alice_nars.size(), 4u) << "alice's cache holds the closure uncompressed";
  size_t carol_xz = 0;
  for (const auto& file : std::filesystem::directory_iterator(carol_dir + "/nar")) {
    carol_xz += file.path().string().ends_with(".nar.xz");
  }
  ASSERT_EQ(carol_xz, 4u) << "carol's cache holds the closure xz-compressed";

  // 3. The gateway's narinfo is attest's own: uncompressed, the NAR under the gateway's own nar/.
  const std::string top_hash = paths_.at("top").substr(std::string("/nix/store/").size(), 32);
  std::optional<HttpAnswer> narinfo = HttpGet(PortOf(node.http_address()), "/" + top_hash + ".narinfo");
  ASSERT_TRUE(narinfo.has_value());
  ASSERT_EQ(narinfo->status, 200) << narinfo->body;
  EXPECT_THAT(narinfo->body, HasSubstr("\nURL: nar/" + top_hash + "-"));
  EXPECT_THAT(narinfo->body, HasSubstr("\nCompression: none\n"));

  // An empty client store substitutes the whole closure; the first eligible source (alice: the
  // confirmed side's operators in name order) delivered every NAR, and nobody lied.
  const std::string client = nix_.Store("client");
  RunResult first = Realise(node, client);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  ExpectSubstituted(first, client);
  std::string metrics = Metrics(node);
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_paths_total", alice_url), 4) << metrics;
  for (const std::string& url : {alice_url, bob_url, carol_url}) {
    EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_mismatches_total", url), 0) << url;
  }

  // 4. Alice's cache lies and bob's is gone. The node keeps the NARs it verified in its NAR cache, and
  // served from there the second client would never reach a source. The node is therefore stopped, its
  // NAR cache removed (while it is stopped) and started again on the same database: the same closure,
  // still CONFIRMED, must now come from the sources again, and only carol's are good. Paths the first
  // client never fetched would exercise the sources too; the same closure says more: exactly what alice
  // delivered before is delivered without her, by a node that starts with one source gone. Alice's
  // narinfos stay true (only NAR bytes change), so she is still asked first and her lie must be caught
  // by verification, not by her narinfo.
  ASSERT_TRUE(node.Stop().has_value());
  const std::string nar_cache = dir_.File("attest.db.nar-cache");
  ASSERT_TRUE(std::filesystem::is_directory(nar_cache)) << "the node keeps verified NARs in " << nar_cache;
  std::filesystem::remove_all(nar_cache);
  for (const std::string& nar : alice_nars) ASSERT_NO_FATAL_FAILURE(CorruptNar(nar));
  std::filesystem::remove_all(bob_dir);
  ASSERT_TRUE(node.Start());

  const std::string second_client = nix_.Store("client-2");
  RunResult second = Realise(node, second_client);
  ASSERT_EQ(second.exit_code, 0) << second.err << "\nattestd:\n" << node.daemon()->Stderr();
  ExpectSubstituted(second, second_client);

  metrics = Metrics(node);
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_paths_total", carol_url), 4) << metrics;
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_paths_total", alice_url), 0) << metrics;
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_mismatches_total", alice_url), 4)
      << "every NAR alice served contradicted the confirmed contents:\n"
      << metrics;
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_mismatches_total", bob_url), 0) << "gone is not lying";
  EXPECT_GT(SourceCounter(metrics, "attest_nar_source_failures_total", bob_url), 0) << metrics;
  EXPECT_EQ(SourceCounter(metrics, "attest_nar_source_mismatches_total", carol_url), 0);
  EXPECT_THAT(node.daemon()->Stderr(), HasSubstr("NAR source " + alice_url + " (operator alice-ci) contradicts the "
                                                 "confirmed contents of " + paths_.at("top")));

  // `attest sources` shows the same: alice a bad source naming the path, bob unreachable, carol served all.
  RunResult sources = node.Cli({"sources", "--node", node.grpc_address(), "--json"});
  ASSERT_EQ(sources.exit_code, 0) << sources.out << sources.err;
  const nlohmann::json listed = nlohmann::json::parse(sources.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(listed.is_object() && listed.contains("sources")) << sources.out;
  EXPECT_FALSE(listed.value("healthy", true));
  std::map<std::string, nlohmann::json> by_url;
  for (const nlohmann::json& source : listed["sources"]) by_url[source.value("url", "")] = source;
  ASSERT_EQ(by_url.size(), 3u) << sources.out;
  EXPECT_EQ(by_url[alice_url].value("operator", ""), "alice-ci");
  EXPECT_EQ(by_url[alice_url].value("mismatches", 0), 4);
  EXPECT_THAT(by_url[alice_url].value("last_mismatch", ""), HasSubstr("/nix/store/"));
  EXPECT_FALSE(by_url[bob_url].value("reachable", true)) << by_url[bob_url].dump();
  EXPECT_EQ(by_url[bob_url].value("mismatches", 0), 0);
  EXPECT_EQ(by_url[carol_url].value("paths_served", 0), 4);
  RunResult check = node.Cli({"sources", "--node", node.grpc_address(), "--check"});
  EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr(alice_url + " (alice-ci): BAD SOURCE: 4 mismatches"));

  // And the Sources section of the operators page (its JSON twin).
  std::optional<HttpAnswer> page = HttpGet(PortOf(node.http_address()), "/operators.json");
  ASSERT_TRUE(page.has_value() && page->status == 200);
  const nlohmann::json operators = nlohmann::json::parse(page->body, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(operators.is_object() && operators.contains("sources")) << page->body;
  bool alice_shown = false;
  for (const nlohmann::json& source : operators["sources"]) {
    if (source.value("url", "") != alice_url) continue;
    alice_shown = true;
    EXPECT_TRUE(source.value("used", false)) << source.dump();
    EXPECT_EQ(source.value("mismatches", 0), 4) << source.dump();
  }
  EXPECT_TRUE(alice_shown) << page->body;

  ASSERT_TRUE(node.Stop().has_value());
  ASSERT_TRUE(http_server_->Signal(SIGTERM, std::chrono::seconds(10)).has_value());
}

}  // namespace
}  // namespace attest::testing
