// Content-addressed derivations end to end, with real Nix (Debian's nix-bin 2.8, experimental
// `ca-derivations`) and real processes:
//
//   three builder stores of three operators build a small CA chain (top over base) and a
//   nondeterministic CA derivation, with `attest-hook` as their post-build-hook, and `attest push`
//   ships the realisations their Nix registered (both formats) with the outputs' path attestations;
//   the chain's realisations are CONFIRMED under every key Nix registered (the derivation as written,
//   and the resolved one), in both formats; the nondeterministic one is DISPUTED with every output
//   path as evidence; an empty client store whose only substituter is the gateway and whose only
//   trusted key is the node's substitutes the CONFIRMED CA closure instead of building it.
#include <filesystem>
#include <map>
#include <set>
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
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Floating CA derivations (no nixpkgs); tools by absolute path, PATH is unset in the sandbox.
constexpr std::string_view kExpression = R"(
let
  ca = name: cmd: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" cmd ];
    __contentAddressed = true;
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
  };
in rec {
  base = ca "e2e-ca-base" "echo ca base > $out";
  # Refers to base's output: built from a resolved derivation, with a dependent realisation.
  top = ca "e2e-ca-top" "echo ${base} > $out; /bin/cat ${base} >> $out";
  # Writes the time: every builder gets a different output path for the same derivation output.
  nondet = ca "e2e-ca-nondet" "/bin/date +%s%N > $out";
}
)";

const std::vector<std::string> kCaOptions = {"--option", "experimental-features", "nix-command ca-derivations"};

class CaDerivationE2eTest : public ::testing::Test {
 protected:
  CaDerivationE2eTest() : nix_(dir_) { WriteFileOrDie(expression(), kExpression); }

  std::string expression() const { return dir_.File("ca.nix"); }

  RunResult Nix(std::vector<std::string> argv, const std::map<std::string, std::string>& env = {}) const {
    argv.insert(argv.begin() + 1, kCaOptions.begin(), kCaOptions.end());
    return nix_.Nix(argv, env);
  }

  RunResult Build(const HookBuilder& b, const std::vector<std::string>& attrs) const {
    std::vector<std::string> argv = {"nix-build", "--store", b.store, "--option", "post-build-hook",
                                     ATTEST_HOOK_BIN, "--no-out-link", expression()};
    for (const std::string& attr : attrs) argv.insert(argv.end(), {"-A", attr});
    return Nix(argv, {{"ATTEST_BUILDER_CONFIG", b.config}});
  }

  std::string Instantiate(const std::string& store, const std::string& attr) const {
    RunResult drv = Nix({"nix-instantiate", "--store", store, expression(), "-A", attr});
    EXPECT_EQ(drv.exit_code, 0) << drv.err;
    return std::string(absl::StripTrailingAsciiWhitespace(drv.out));
  }

  // `nix realisation info --json DRV` in `store`: the one realisation Nix registered for its "out".
  nlohmann::json Realisation(const std::string& store, const std::string& drv) const {
    RunResult info = Nix({"nix", "realisation", "info", "--store", store, "--json", drv});
    EXPECT_EQ(info.exit_code, 0) << info.err;
    nlohmann::json parsed = nlohmann::json::parse(info.out, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_array() || parsed.size() != 1) {
      ADD_FAILURE() << "nix realisation info " << drv << ": " << info.out << info.err;
      return nlohmann::json::object();
    }
    return parsed[0];
  }

  // The deriver Nix recorded for a built CA output: the resolved derivation it actually built.
  std::string Deriver(const std::string& store, const std::string& path) const {
    const nlohmann::json info = nix_.PathInfo(store, {path});
    if (info.size() != 1 || !info[0].contains("deriver")) {
      ADD_FAILURE() << "no deriver for " << path << ": " << info.dump();
      return "";
    }
    return info[0]["deriver"].get<std::string>();
  }

  // GET http://<address><target>; the HTTP status (0: no answer) and the body.
  static std::pair<int, std::string> HttpGet(const std::string& address, const std::string& target) {
    RunResult result = ::attest::testing::Run({"python3", "-c",
                            "import sys, urllib.request, urllib.error\n"
                            "try:\n"
                            "    r = urllib.request.urlopen('http://' + sys.argv[1] + sys.argv[2], timeout=20)\n"
                            "    print(r.status); sys.stdout.write(r.read().decode())\n"
                            "except urllib.error.HTTPError as e:\n"
                            "    print(e.code); sys.stdout.write(e.read().decode(errors='replace'))\n",
                            address, target});
    const size_t newline = result.out.find('\n');
    int code = 0;
    if (newline == std::string::npos || !absl::SimpleAtoi(result.out.substr(0, newline), &code)) return {0, ""};
    return {code, result.out.substr(newline + 1)};
  }

  TempDir dir_;
  NixSandbox nix_;
};

TEST_F(CaDerivationE2eTest, RealisationsReachQuorumAreDisputedAndAreSubstituted) {
  const NixKeyPair key_a = MakeNixKey(dir_, "alpha-builder-1");
  const NixKeyPair key_b = MakeNixKey(dir_, "beta-builder-1");
  const NixKeyPair key_c = MakeNixKey(dir_, "gamma-builder-1");
  const std::string cache = dir_.File("cache");
  std::filesystem::create_directories(cache);
  const NodePorts ports{.grpc = FreeLoopbackPort(), .http = FreeLoopbackPort()};
  NodeHarness node(dir_,
                   PolicyToml(2, {{"alpha", {key_a.public_text}},
                                  {"beta", {key_b.public_text}},
                                  {"gamma", {key_c.public_text}}}),
                   absl::StrCat("\n[gateway]\nupstream = \"file://", cache, "\"\npriority = 30\n"), ports);
  ASSERT_TRUE(node.Start());
  ASSERT_FALSE(node.http_address().empty());
  const std::vector<HookBuilder> builders = {MakeHookBuilder(dir_, nix_, "a", key_a.secret_file, node.grpc_address()),
                                             MakeHookBuilder(dir_, nix_, "b", key_b.secret_file, node.grpc_address()),
                                             MakeHookBuilder(dir_, nix_, "c", key_c.secret_file, node.grpc_address())};

  // 1. Every builder builds the chain and the nondeterministic one; push ships the spool.
  for (const HookBuilder& b : builders) {
    RunResult build = Build(b, {"top", "nondet"});
    ASSERT_EQ(build.exit_code, 0) << b.name << ": " << build.err;
    EXPECT_THAT(build.err, HasSubstr("running post-build-hook"));
    EXPECT_GT(SpoolRecords(b), 0u) << b.name << ": the hook spooled nothing for floating CA outputs: " << build.err;
    RunResult push = PushSpool(b);
    EXPECT_EQ(push.exit_code, 0) << b.name << ": " << push.out << push.err;
    EXPECT_EQ(SpoolRecords(b), 0u) << b.name << " still has records after a successful push: " << push.out;
  }

  // The keys Nix registered in builder a's store: base, top as written, top resolved.
  const std::string store_a = builders[0].store;
  const std::string base_drv = Instantiate(store_a, "base");
  const std::string top_drv = Instantiate(store_a, "top");
  const std::string nondet_drv = Instantiate(store_a, "nondet");
  const nlohmann::json base = Realisation(store_a, base_drv);
  const nlohmann::json top = Realisation(store_a, top_drv);
  ASSERT_TRUE(base.contains("id") && top.contains("id")) << base.dump() << top.dump();
  const std::string top_out = "/nix/store/" + top["outPath"].get<std::string>();
  const std::string base_out = "/nix/store/" + base["outPath"].get<std::string>();
  const std::string top_resolved_drv = Deriver(store_a, top_out);
  ASSERT_NE(top_resolved_drv, top_drv) << "Nix 2.8 builds a CA derivation with CA inputs from a resolved one";
  const nlohmann::json top_resolved = Realisation(store_a, top_resolved_drv);
  ASSERT_TRUE(top_resolved.contains("id")) << top_resolved.dump();
  EXPECT_NE(top_resolved["id"], top["id"]);

  // 2. Every realisation of the chain is CONFIRMED, in both formats, and answered with its path.
  const std::vector<std::string> confirmed_keys = {
      base["id"].get<std::string>(),  top["id"].get<std::string>(),  top_resolved["id"].get<std::string>(),
      base_drv + "^out",              top_drv + "^out",              top_resolved_drv + "^out"};
  for (const std::string& key : confirmed_keys) {
    EXPECT_EQ(node.Verdict(key), "CONFIRMED") << key;
  }
  RunResult status = node.Cli({"status", "--node", node.grpc_address(), top["id"].get<std::string>()});
  EXPECT_EQ(status.exit_code, 0) << status.out << status.err;
  EXPECT_THAT(status.out, HasSubstr("CONFIRMED"));
  EXPECT_THAT(status.out, HasSubstr(top["outPath"].get<std::string>()));
  // The CA paths themselves are attested by their NAR hash as before.
  EXPECT_EQ(node.Verdict(top_out), "CONFIRMED");
  EXPECT_EQ(node.Verdict(base_out), "CONFIRMED");

  // The JSON answer holds up offline against the policy file.
  RunResult json = node.Cli({"status", "--node", node.grpc_address(), "--json", top["id"].get<std::string>(),
                             top_resolved_drv + "^out"});
  ASSERT_EQ(json.exit_code, 0) << json.out << json.err;
  WriteFileOrDie(dir_.File("realisations.json"), json.out);
  RunResult verified = node.Cli({"verify", "--policy", node.policy_path(), dir_.File("realisations.json")});
  EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;

  // 3. The nondeterministic derivation: one key, three output paths, DISPUTED with each as evidence.
  const std::string nondet_id = Realisation(store_a, nondet_drv).value("id", "");
  ASSERT_FALSE(nondet_id.empty());
  EXPECT_EQ(node.Verdict(nondet_id), "DISPUTED");
  RunResult disputed = node.Cli({"status", "--node", node.grpc_address(), "--json", nondet_id});
  for (const HookBuilder& b : builders) {
    const nlohmann::json mine = Realisation(b.store, nondet_drv);
    ASSERT_EQ(mine.value("id", ""), nondet_id) << b.name << ": the same derivation output";
    EXPECT_THAT(disputed.out, HasSubstr(mine.value("outPath", "?"))) << b.name << "'s output path is not in the evidence";
  }
  // One signed dispute record for the derivation output, found by its key, with every output path.
  RunResult dispute = node.Cli({"disputes", "show", "--node", node.grpc_address(), "--json", nondet_id});
  ASSERT_EQ(dispute.exit_code, 0) << dispute.out << dispute.err;
  const nlohmann::json record = nlohmann::json::parse(dispute.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(record.value("path", ""), nondet_id) << dispute.out;
  EXPECT_TRUE(record.value("realisation", false)) << dispute.out;
  EXPECT_EQ(record["fingerprints"].size(), builders.size()) << dispute.out;
  EXPECT_THAT(record.value("signed_record", ""), HasSubstr("\nrealisation " + nondet_id + "\n"));
  for (const HookBuilder& b : builders) {
    EXPECT_THAT(dispute.out, HasSubstr(Realisation(b.store, nondet_drv).value("outPath", "?"))) << b.name;
  }
  // The dispute page shows the derivation output and the output paths side by side.
  auto [page_code, page] = HttpGet(node.http_address(), "/disputes/" + record.value("id", "") + ".json");
  EXPECT_EQ(page_code, 200) << page;
  EXPECT_THAT(page, HasSubstr("\"realisation_key\":\"" + nondet_id + "\""));
  EXPECT_THAT(page, HasSubstr("\"out_path\""));

  // 4. The gateway serves the CONFIRMED realisations in both formats and nothing for the dispute.
  auto [doi_code, doi] = HttpGet(node.http_address(), "/realisations/" + top["id"].get<std::string>() + ".doi");
  EXPECT_EQ(doi_code, 200) << doi;
  const nlohmann::json doi_json = nlohmann::json::parse(doi, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(doi_json.value("outPath", ""), top["outPath"].get<std::string>()) << doi;
  const std::string resolved_base = top_resolved_drv.substr(std::string("/nix/store/").size());
  auto [trace_code, trace] = HttpGet(node.http_address(), "/build-trace-v2/" + resolved_base + "/out.doi");
  EXPECT_EQ(trace_code, 200) << trace;
  EXPECT_THAT(trace, HasSubstr(top["outPath"].get<std::string>()));
  EXPECT_EQ(HttpGet(node.http_address(), "/realisations/" + nondet_id + ".doi").first, 404);

  // 5. Builder a publishes its CA outputs as the gateway's upstream (copying the .drv copies its outputs).
  RunResult copy = Nix({"nix", "copy", "--store", store_a, "--to", "file://" + cache + "?compression=none", top_drv});
  ASSERT_EQ(copy.exit_code, 0) << copy.err;

  // 6. An empty client store that trusts only the node substitutes the CA closure through the gateway.
  const std::string client = nix_.Store("client");
  RunResult substituted = Nix({"nix-build", "--store", client, "--no-out-link", expression(), "-A", "top",
                               "--option", "substituters", "http://" + node.http_address(),
                               "--option", "trusted-public-keys", node.public_key(),
                               "--option", "narinfo-cache-negative-ttl", "0"});
  ASSERT_EQ(substituted.exit_code, 0) << substituted.err;
  EXPECT_THAT(substituted.err, HasSubstr("copying path '" + top_out + "' from 'http://"));
  EXPECT_THAT(substituted.err, HasSubstr("copying path '" + base_out + "' from 'http://"));
  EXPECT_THAT(substituted.err, Not(HasSubstr("building '")));
  // The realisation the client registered came from the gateway: it carries the node's signature.
  const nlohmann::json client_top = Realisation(client, top_drv);
  EXPECT_EQ(client_top.value("outPath", ""), top["outPath"].get<std::string>());
  bool node_signed = false;
  for (const auto& sig : client_top.value("signatures", nlohmann::json::array())) {
    if (sig.get<std::string>().starts_with("node:")) node_signed = true;
  }
  EXPECT_TRUE(node_signed) << client_top.dump();
}

}  // namespace
}  // namespace attest::testing
