// The whole Nix integration, end to end, with real Nix (Debian's nix-bin 2.8) and real processes:
//
//   three builder stores (keys of two operators) build the same raw derivations with `attest hook` as
//   their post-build-hook, and `attest push` ships the spooled records to a real attestd;
//   one builder copies its outputs into a file:// binary cache, the gateway's upstream;
//   a fourth, empty client store whose only substituter is the gateway and whose only trusted key is
//   the node's realises the same derivations: deterministic ones are substituted (not built), the
//   nondeterministic one is DISPUTED, gets a 404 and is built locally, and a path no builder attested
//   is built locally too;
//   with the node stopped, a builder's build still succeeds and the spool keeps its record until the
//   node is back.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/nix_harness.h"
#include "tests/e2e/node_harness.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Raw derivations (no nixpkgs). PATH inside the sandbox is unset, so tools are called by absolute path.
constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  sh = args: name: derivation ({ inherit name system; builder = "/bin/sh"; } // args);
in rec {
  hello = sh { args = [ "-c" "echo hello from attest > $out" ]; } "e2e-hello";
  # A chain: each output refers to the one below it, so substituting top needs the whole closure.
  base = sh { args = [ "-c" "echo base > $out" ]; } "e2e-base";
  middle = sh { args = [ "-c" "echo ${base} > $out" ]; } "e2e-middle";
  top = sh { args = [ "-c" "echo ${middle} > $out" ]; } "e2e-top";
  # Writes the time: every build differs.
  nondet = sh { args = [ "-c" "/bin/date +%s%N > $out" ]; } "e2e-nondet";
  # Built by no builder.
  lonely = sh { args = [ "-c" "echo nobody attested me > $out" ]; } "e2e-lonely";
  # A closure whose base only one operator attests: builder a builds both, builder b gets soloBase by
  # copying it from a's store and builds only soloTop.
  soloBase = sh { args = [ "-c" "echo attested by one operator > $out" ]; } "e2e-solo-base";
  soloTop = sh { args = [ "-c" "echo ${soloBase} > $out" ]; } "e2e-solo-top";
  # Built while the node is down.
  later = sh { args = [ "-c" "echo built while the node was down > $out" ]; } "e2e-later";
}
)";

class SubstitutionE2eTest : public ::testing::Test {
 protected:
  SubstitutionE2eTest() : nix_(dir_) { WriteFileOrDie(dir_.File("drvs.nix"), kExpression); }

  HookBuilder MakeBuilder(const std::string& name, const NixKeyPair& key, const std::string& node_address) {
    return MakeHookBuilder(dir_, nix_, name, key.secret_file, node_address);
  }
  RunResult BuildWithHook(const HookBuilder& b, const std::vector<std::string>& attrs) {
    return ::attest::testing::BuildWithHook(nix_, b, dir_.File("drvs.nix"), attrs);
  }
  static RunResult Push(const HookBuilder& b) { return PushSpool(b); }
  static size_t SpoolSize(const HookBuilder& b) { return SpoolRecords(b); }
  std::string OutPath(const std::string& store, const std::string& attr) {
    return nix_.OutPath(store, dir_.File("drvs.nix"), attr);
  }
  static std::string Verdict(const NodeHarness& node, const std::string& path) { return node.Verdict(path); }

  // GET http://<address><target> with Python's standard library; returns the HTTP status (0: no answer).
  static int HttpStatus(const std::string& address, const std::string& target) {
    RunResult result = ::attest::testing::Run({"python3", "-c",
                            "import sys, urllib.request, urllib.error\n"
                            "try:\n"
                            "    print(urllib.request.urlopen('http://' + sys.argv[1] + sys.argv[2], timeout=20).status)\n"
                            "except urllib.error.HTTPError as e:\n"
                            "    print(e.code)\n",
                            address, target});
    int code = 0;
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(result.out), &code) ? code : 0;
  }

  TempDir dir_;
  NixSandbox nix_;
};

TEST_F(SubstitutionE2eTest, OnlyWhatIndependentBuildersAgreeOnIsSubstituted) {
  const NixKeyPair key_a = MakeNixKey(dir_, "alpha-builder-1");
  const NixKeyPair key_b = MakeNixKey(dir_, "beta-builder-1");
  const NixKeyPair key_c = MakeNixKey(dir_, "beta-builder-2");
  const std::string cache = dir_.File("cache");
  std::filesystem::create_directories(cache);
  const NodePorts ports{.grpc = FreeLoopbackPort(), .http = FreeLoopbackPort()};
  NodeHarness node(dir_,
                   PolicyToml(2, {{"alpha", {key_a.public_text}}, {"beta", {key_b.public_text, key_c.public_text}}}),
                   absl::StrCat("\n[gateway]\nupstream = \"file://", cache, "\"\npriority = 30\n"), ports);
  ASSERT_TRUE(node.Start());
  ASSERT_FALSE(node.http_address().empty());
  const std::vector<HookBuilder> builders = {MakeBuilder("a", key_a, node.grpc_address()),
                                             MakeBuilder("b", key_b, node.grpc_address()),
                                             MakeBuilder("c", key_c, node.grpc_address())};

  // 1. Every builder builds everything but `lonely` and `later`; the hook spools, push ships.
  const std::vector<std::string> built = {"hello", "top", "nondet"};
  for (const HookBuilder& b : builders) {
    RunResult build = BuildWithHook(b, built);
    ASSERT_EQ(build.exit_code, 0) << b.name << ": " << build.err;
    EXPECT_THAT(build.err, HasSubstr("running post-build-hook"));
    // hello, base, middle, top, nondet: one record per built output.
    EXPECT_EQ(SpoolSize(b), 5u) << b.name << ": " << build.err;
    RunResult push = Push(b);
    EXPECT_EQ(push.exit_code, 0) << b.name << ": " << push.out << push.err;
    EXPECT_EQ(SpoolSize(b), 0u) << b.name << " still has records after a successful push";
  }

  const std::string store_a = builders[0].store;
  const std::map<std::string, std::string> paths = {
      {"hello", OutPath(store_a, "hello")},   {"base", OutPath(store_a, "base")},
      {"middle", OutPath(store_a, "middle")}, {"top", OutPath(store_a, "top")},
      {"nondet", OutPath(store_a, "nondet")}, {"lonely", OutPath(store_a, "lonely")}};
  for (const char* det : {"hello", "base", "middle", "top"}) {
    EXPECT_EQ(Verdict(node, paths.at(det)), "CONFIRMED") << det;
  }
  EXPECT_EQ(Verdict(node, paths.at("nondet")), "DISPUTED");
  EXPECT_EQ(Verdict(node, paths.at("lonely")), "UNKNOWN");

  // 1b. One verdict for a whole closure: top's (top, middle, base) is CONFIRMED. In soloTop's closure,
  // soloBase is attested by alpha only (beta copied it instead of building it): PENDING, and named.
  RunResult closure = node.Cli({"status", "--node", node.grpc_address(), "--closure", paths.at("top")});
  EXPECT_EQ(closure.exit_code, 0) << closure.out << closure.err;
  EXPECT_THAT(closure.out, HasSubstr("CONFIRMED closure of " + paths.at("top") + ": 3 paths, every one CONFIRMED"));
  {
    RunResult solo_a = BuildWithHook(builders[0], {"soloTop"});
    ASSERT_EQ(solo_a.exit_code, 0) << solo_a.err;
    ASSERT_EQ(Push(builders[0]).exit_code, 0);
    const std::string solo_base = OutPath(store_a, "soloBase");
    RunResult copied = nix_.Nix({"nix", "copy", "--no-check-sigs", "--from", store_a, "--to", builders[1].store,
                                 solo_base});
    ASSERT_EQ(copied.exit_code, 0) << copied.err;
    RunResult solo_b = BuildWithHook(builders[1], {"soloTop"});
    ASSERT_EQ(solo_b.exit_code, 0) << solo_b.err;
    EXPECT_EQ(SpoolSize(builders[1]), 1u) << "builder b built only soloTop: " << solo_b.err;
    ASSERT_EQ(Push(builders[1]).exit_code, 0);
    const std::string solo_top = OutPath(store_a, "soloTop");
    EXPECT_EQ(Verdict(node, solo_top), "CONFIRMED");
    EXPECT_EQ(Verdict(node, solo_base), "PENDING");
    RunResult pending = node.Cli({"status", "--node", node.grpc_address(), "--closure", solo_top});
    EXPECT_EQ(pending.exit_code, 1) << pending.out << pending.err;
    EXPECT_THAT(pending.out, HasSubstr("PENDING closure of " + solo_top + ": 2 paths, 1 not CONFIRMED"));
    EXPECT_THAT(pending.out, HasSubstr("PENDING   " + solo_base));
    // The JSON answer holds up offline against the policy file.
    RunResult json = node.Cli({"status", "--node", node.grpc_address(), "--closure", "--json", solo_top});
    WriteFileOrDie(dir_.File("closure.json"), json.out);
    RunResult verified = node.Cli({"verify", "--policy", node.policy_path(), dir_.File("closure.json")});
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
    EXPECT_THAT(verified.out, HasSubstr("ok    closure of " + solo_top + " is PENDING"));
  }

  // 2. Builder a publishes its outputs (its nondet too) as the gateway's upstream binary cache.
  RunResult copy = nix_.Nix({"nix", "copy", "--store", store_a, "--to", "file://" + cache + "?compression=none",
                             paths.at("hello"), paths.at("top"), paths.at("nondet")});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;

  // 3. The gateway answers only for the confirmed paths.
  auto hash_part = [](const std::string& path) { return path.substr(std::string("/nix/store/").size(), 32); };
  EXPECT_EQ(HttpStatus(node.http_address(), "/nix-cache-info"), 200);
  EXPECT_EQ(HttpStatus(node.http_address(), "/" + hash_part(paths.at("hello")) + ".narinfo"), 200);
  EXPECT_EQ(HttpStatus(node.http_address(), "/" + hash_part(paths.at("nondet")) + ".narinfo"), 404);
  EXPECT_EQ(HttpStatus(node.http_address(), "/" + hash_part(paths.at("lonely")) + ".narinfo"), 404);

  // 4. An empty client store that trusts only the node, with the gateway as its only substituter.
  const std::string client = nix_.Store("client");
  const std::vector<std::string> client_options = {
      "--option", "substituters",          "http://" + node.http_address(),
      "--option", "trusted-public-keys",   node.public_key(),
      "--option", "narinfo-cache-negative-ttl", "0"};
  auto realise = [&](const std::vector<std::string>& attrs) {
    std::vector<std::string> argv = {"nix-build", "--store", client, "--no-out-link", dir_.File("drvs.nix")};
    argv.insert(argv.end(), client_options.begin(), client_options.end());
    for (const std::string& attr : attrs) argv.insert(argv.end(), {"-A", attr});
    return nix_.Nix(argv);
  };
  RunResult substituted = realise({"hello", "top"});
  ASSERT_EQ(substituted.exit_code, 0) << substituted.err;
  for (const char* det : {"hello", "base", "middle", "top"}) {
    EXPECT_THAT(substituted.err, HasSubstr("copying path '" + paths.at(det) + "' from 'http://"))
        << det << " was not substituted";
    EXPECT_THAT(substituted.err, Not(HasSubstr("building '" + paths.at(det))));
  }
  EXPECT_THAT(substituted.err, Not(HasSubstr("building '")));
  // Substituted, not built: not "ultimate" in the client store, and signed by the node.
  for (const nlohmann::json& info : nix_.PathInfo(client, {paths.at("hello"), paths.at("top")})) {
    EXPECT_FALSE(info.value("ultimate", false)) << info.dump();
    bool node_signed = false;
    for (const auto& sig : info.value("signatures", nlohmann::json::array())) {
      if (sig.get<std::string>().starts_with("node:")) node_signed = true;
    }
    EXPECT_TRUE(node_signed) << info.dump();
  }

  // The disputed path and the unattested one are built locally.
  for (const char* local : {"nondet", "lonely"}) {
    RunResult result = realise({local});
    ASSERT_EQ(result.exit_code, 0) << local << ": " << result.err;
    EXPECT_THAT(result.err, Not(HasSubstr("copying path '" + paths.at(local)))) << local;
    const nlohmann::json info = nix_.PathInfo(client, {paths.at(local)});
    ASSERT_EQ(info.size(), 1u);
    EXPECT_TRUE(info[0].value("ultimate", false)) << local << " was not built locally: " << info.dump();
  }

  // 5. The node goes down: a build still succeeds, the record waits in the spool.
  ASSERT_TRUE(node.Stop().has_value());
  const HookBuilder& a = builders[0];
  RunResult build = BuildWithHook(a, {"later"});
  ASSERT_EQ(build.exit_code, 0) << build.err;
  EXPECT_EQ(SpoolSize(a), 1u);
  const auto push_started = std::chrono::steady_clock::now();
  RunResult failed_push = Push(a);
  EXPECT_NE(failed_push.exit_code, 0) << "push must fail while records remain: " << failed_push.out;
  EXPECT_LT(std::chrono::steady_clock::now() - push_started, std::chrono::seconds(60))
      << "a one-shot push gives up within 30 s";
  EXPECT_EQ(SpoolSize(a), 1u) << "the record must survive a failed push";

  // 6. The node comes back on the same address; the next push delivers and empties the spool.
  ASSERT_TRUE(node.Start());
  RunResult push = Push(a);
  EXPECT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_EQ(SpoolSize(a), 0u);
  EXPECT_EQ(Verdict(node, OutPath(store_a, "later")), "PENDING") << "one operator so far";
}

TEST(AttestHookProgramTest, NeverFailsWhateverItIsGiven) {
  // A typo in nix.conf or a missing variable must not abort the Nix run: exit 0 and say what is wrong.
  RunResult typo = ::attest::testing::Run({ATTEST_HOOK_BIN, "--confg", "x"}, "", std::chrono::seconds(30),
                                          {{"DRV_PATH", ""}});
  EXPECT_EQ(typo.exit_code, 0);
  EXPECT_THAT(typo.err, HasSubstr("ignoring the argument '--confg'"));
  EXPECT_THAT(typo.err, HasSubstr("DRV_PATH is not set"));
  RunResult no_config = ::attest::testing::Run(
      {ATTEST_HOOK_BIN}, "", std::chrono::seconds(30),
      {{"DRV_PATH", "/nix/store/rnnd4njddkh87lydz4p5lka2k1mygdrw-e2e-hello.drv"}, {"ATTEST_BUILDER_CONFIG", ""}});
  EXPECT_EQ(no_config.exit_code, 0);
  EXPECT_THAT(no_config.err, HasSubstr("the build is not affected"));
}

}  // namespace
}  // namespace attest::testing
