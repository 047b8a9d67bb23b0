// deploy/nixos/module.nix with the Nix at hand (Debian's nix-bin 2.8, no nixpkgs): it parses; its
// options carry every key of the example configs in deploy/ with the same defaults; the services it
// declares have the sandbox of the units in deploy/systemd/; and the node config it writes is one
// attestd starts with. The evaluation uses a stand-in for lib and pkgs (nixos_module_eval.nix), so the
// NixOS module system itself is not exercised here.
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/deploy/deploy_files.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kModule = std::string(ATTEST_SOURCE_DIR) + "/deploy/nixos/module.nix";
const std::string kEval = std::string(ATTEST_SOURCE_DIR) + "/tests/deploy/nixos_module_eval.nix";
const std::string kDeployDir = std::string(ATTEST_SOURCE_DIR) + "/deploy/";

// The keys of an example TOML file per table ("" for the top level), with their values as written
// ("..." without the quotes). The commented-out [[peer]] example of node.example.toml counts as a table.
std::map<std::string, std::map<std::string, std::string>> ExampleKeys(const std::string& file) {
  std::map<std::string, std::map<std::string, std::string>> tables;
  std::string table;
  for (absl::string_view raw : absl::StrSplit(ReadFileOrDie(file), '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    const bool commented = absl::ConsumePrefix(&line, "# ");
    if (absl::StartsWith(line, "[")) {
      table = std::string(
          absl::StripSuffix(absl::StripSuffix(absl::StripPrefix(absl::StripPrefix(line, "["), "["), "]"), "]"));
      continue;
    }
    if (commented && table != "peer" && table != "source") continue;
    const size_t equals = line.find(" = ");
    if (equals == absl::string_view::npos) continue;
    const std::string key(line.substr(0, equals));
    if (key.empty() ||
        !std::all_of(key.begin(), key.end(), [](char c) { return absl::ascii_isalnum(c) || c == '_'; })) {
      continue;
    }
    std::optional<std::string> value = ExampleValue(line, key);
    tables[table][key] = value.value_or("");
  }
  return tables;
}

// A JSON scalar as an example file writes it (strings without quotes).
std::string AsExampleText(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

// A serviceConfig value as it appears in a unit file.
std::vector<std::string> AsUnitValues(const std::string& key, const json& value) {
  if (value.is_boolean()) return {value.get<bool>() ? "yes" : "no"};
  if (value.is_string()) return {value.get<std::string>()};
  if (value.is_number()) return {value.dump()};
  std::vector<std::string> items;
  for (const json& item : value) items.push_back(item.get<std::string>());
  // Space-separated lists in one line; the others one line per item, as the units write them.
  if (key == "RestrictAddressFamilies") return {absl::StrJoin(items, " ")};
  return items;
}

// The generated TOML value written as TOML: tables of scalars, and lists of tables as [[name]].
std::string AsToml(const json& document) {
  std::string out;
  for (const auto& [table, body] : document.items()) {
    auto write_scalars = [&](const json& entries) {
      for (const auto& [key, value] : entries.items()) absl::StrAppend(&out, key, " = ", value.dump(), "\n");
    };
    if (body.is_array()) {
      for (const json& entry : body) {
        absl::StrAppend(&out, "[[", table, "]]\n");
        write_scalars(entry);
      }
    } else {
      absl::StrAppend(&out, "[", table, "]\n");
      write_scalars(body);
    }
  }
  return out;
}

class NixosModuleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!FindOnPath("nix-instantiate")) GTEST_SKIP() << "nix-instantiate is not installed (Debian package nix-bin)";
    // A store and configuration of its own, so this needs neither root nor the machine's /nix.
    std::filesystem::create_directories(dir_.File("etc"));
    WriteFileOrDie(dir_.File("etc/nix.conf"), "build-users-group =\n");
  }

  RunResult NixInstantiate(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"env", "-u",         "NIX_CONFIG",      "-u",      "NIX_PATH",
                                     "-u",  "NIX_REMOTE", "nix-instantiate", "--store", dir_.File("store")};
    argv.insert(argv.end(), args.begin(), args.end());
    return attest::testing::Run(argv, "", std::chrono::seconds(120),
                                {{"NIX_CONF_DIR", dir_.File("etc")},
                                 {"HOME", dir_.File("home")},
                                 {"XDG_CACHE_HOME", dir_.File("cache")},
                                 {"NIX_STATE_DIR", dir_.File("state")},
                                 {"NIX_LOG_DIR", dir_.File("log")}});
  }

  json Evaluate() {
    RunResult eval = NixInstantiate({"--eval", "--strict", "--json", kEval, "--arg", "module", kModule});
    EXPECT_EQ(eval.exit_code, 0) << eval.err;
    return json::parse(eval.out, nullptr, /*allow_exceptions=*/false);
  }

  TempDir dir_;
};

TEST_F(NixosModuleTest, ParsesWithNix) {
  RunResult parse = NixInstantiate({"--parse", kModule});
  EXPECT_EQ(parse.exit_code, 0) << parse.err;
  EXPECT_THAT(parse.out, HasSubstr("services"));

  // The parse is a real check: it refuses a syntax error and (Nix resolves names while parsing) a
  // misspelt variable.
  const std::string text = ReadFileOrDie(kModule);
  WriteFileOrDie(dir_.File("typo.nix"), absl::StrReplaceAll(text, {{"builderCfg.spool;", "builderCfg.spool"}}));
  EXPECT_NE(NixInstantiate({"--parse", dir_.File("typo.nix")}).exit_code, 0);
  WriteFileOrDie(dir_.File("name.nix"),
                 absl::StrReplaceAll(text, {{"mkIf builderCfg.enable", "mkIf builderCgf.enable"}}));
  RunResult misspelt = NixInstantiate({"--parse", dir_.File("name.nix")});
  EXPECT_NE(misspelt.exit_code, 0);
  EXPECT_THAT(misspelt.err, HasSubstr("undefined variable 'builderCgf'"));
}

TEST_F(NixosModuleTest, SettingsMirrorEveryKeyOfTheNodeExampleWithItsDefaults) {
  const json result = Evaluate();
  ASSERT_TRUE(result.is_object());
  const json& settings = result["options"]["settings"];
  const auto example = ExampleKeys(kDeployDir + "node.example.toml");
  std::set<std::string> example_tables;
  for (const auto& [table, keys] : example) example_tables.insert(table);
  std::set<std::string> module_tables;
  for (const auto& [table, keys] : settings.items()) module_tables.insert(table);
  EXPECT_EQ(module_tables, example_tables);
  EXPECT_EQ(example_tables, (std::set<std::string>{"node", "gateway", "log", "scrub", "rebuild", "federation", "peer", "source"}));
  for (const auto& [table, keys] : example) {
    std::set<std::string> module_keys;
    for (const auto& [key, value] : settings[table].items()) module_keys.insert(key);
    std::set<std::string> example_keys;
    for (const auto& [key, value] : keys) example_keys.insert(key);
    EXPECT_EQ(module_keys, example_keys) << "[" << table << "]";
    for (const auto& [key, value] : keys) {
      const json& module_default = settings[table][key];
      // The policy defaults to the file written from services.attest.policy; [[peer]] and the gateway's
      // upstream have no default.
      if (module_default.is_null() || (table == "node" && key == "policy")) continue;
      EXPECT_EQ(AsExampleText(module_default), value) << "[" << table << "] " << key;
    }
  }
}

TEST_F(NixosModuleTest, PolicyAndBuilderOptionsMirrorTheirExamples) {
  const json result = Evaluate();
  ASSERT_TRUE(result.is_object());
  std::map<std::string, std::set<std::string>> module_policy;
  for (const auto& [key, value] : result["options"]["policy"].items()) {
    if (value.is_object()) {
      for (const auto& [inner, unused] : value.items()) module_policy[key].insert(inner);
    } else {
      module_policy[""].insert(key);
    }
  }
  std::map<std::string, std::set<std::string>> example_policy;
  for (const auto& [table, keys] : ExampleKeys(kDeployDir + "policy.example.toml")) {
    for (const auto& [key, value] : keys) example_policy[table].insert(key);
  }
  EXPECT_EQ(module_policy, example_policy);

  // The builder config the module writes has the keys of builder.example.toml, the same spool.
  const json& builder_toml = result["push"]["builderToml"];
  std::set<std::string> written;
  for (const auto& [key, value] : builder_toml.items()) written.insert(key);
  std::set<std::string> example_builder;
  const auto builder_example = ExampleKeys(kDeployDir + "builder.example.toml");
  for (const auto& [key, value] : builder_example.at("")) example_builder.insert(key);
  EXPECT_EQ(written, example_builder);
  EXPECT_EQ(builder_toml["spool"],
            ExampleValue(ReadFileOrDie(kDeployDir + "builder.example.toml"), "spool").value_or(""));
}

TEST_F(NixosModuleTest, ServicesHaveTheSandboxOfTheSystemdUnits) {
  const json result = Evaluate();
  ASSERT_TRUE(result.is_object());
  for (const auto& [service, unit_file] : std::vector<std::pair<std::string, std::string>>{
           {"attestd", "attestd.service"}, {"push", "attest-push.service"}, {"rebuild", "attest-rebuild.service"}}) {
    const json& module = result[service];
    const std::vector<UnitSetting> unit = ParseUnit(ReadFileOrDie(kDeployDir + "systemd/" + unit_file));
    std::set<std::string> unit_keys;
    for (const UnitSetting& s : unit) {
      if (s.section == "Service") unit_keys.insert(s.key);
    }
    std::set<std::string> module_keys;
    for (const auto& [key, value] : module["serviceConfig"].items()) {
      module_keys.insert(key);
      if (key == "ExecStart") continue;  // a store path here
      EXPECT_EQ(AsUnitValues(key, value), UnitValues(unit, "Service", key)) << unit_file << ": " << key;
    }
    // Same settings both ways.
    EXPECT_EQ(module_keys, unit_keys) << unit_file;
    EXPECT_EQ(module["wantedBy"], json::array({UnitValue(unit, "Install", "WantedBy").value_or("")}));
    std::vector<std::string> after = absl::StrSplit(UnitValue(unit, "Unit", "After").value_or(""), ' ');
    EXPECT_EQ(module["after"], json(after)) << unit_file;
  }
  EXPECT_EQ(result["rebuild"]["serviceConfig"]["ExecStart"],
            "/nix/store/44444444444444444444444444444444-attest/bin/attest rebuild --watch --config "
            "/nix/store/00000000000000000000000000000000-attest-builder.toml");
  EXPECT_EQ(result["rebuild"]["trustedUsers"], json::array({"attest-push"}));
  EXPECT_EQ(result["attestd"]["serviceConfig"]["ExecStart"],
            "/nix/store/44444444444444444444444444444444-attest/bin/attestd --config "
            "/nix/store/00000000000000000000000000000000-attest-node.toml");
  EXPECT_EQ(result["push"]["serviceConfig"]["ExecStart"],
            "/nix/store/44444444444444444444444444444444-attest/bin/attest push --watch --config "
            "/nix/store/00000000000000000000000000000000-attest-builder.toml");
  EXPECT_EQ(result["attestd"]["users"], json::array({"attest"}));
  EXPECT_EQ(result["push"]["users"], json::array({"attest-push"}));
  EXPECT_EQ(result["attestd"]["firewall"], json::array({7700, 7780}));
  EXPECT_THAT(result["attestd"]["preStart"].get<std::string>(),
              HasSubstr("attest key generate --name 'node-1' \\\n    --out '/var/lib/attest/node.sec'"));
}

TEST_F(NixosModuleTest, BuilderPartSetsAHookThatDropsToThePushUserAndCreatesTheSpool) {
  const json result = Evaluate();
  ASSERT_TRUE(result.is_object());
  const json& push = result["push"];
  EXPECT_THAT(push["postBuildHook"].get<std::string>(), ::testing::EndsWith("-attest-post-build-hook"));
  const std::string hook = push["postBuildHookText"].get<std::string>();
  EXPECT_THAT(hook, HasSubstr("setpriv --reuid=attest-push --regid=attest-push"));
  EXPECT_THAT(hook, HasSubstr("hook=/nix/store/44444444444444444444444444444444-attest/bin/attest-hook"));
  EXPECT_THAT(hook, HasSubstr("config=/nix/store/00000000000000000000000000000000-attest-builder.toml"));
  EXPECT_THAT(hook, ::testing::EndsWith("exit 0\n"));
  WriteFileOrDie(dir_.File("hook.sh"), hook);
  RunResult syntax = attest::testing::Run({"sh", "-n", dir_.File("hook.sh")});
  EXPECT_EQ(syntax.exit_code, 0) << syntax.err;

  // The spool line is the one of deploy/systemd/attest.tmpfiles.
  std::string tmpfiles_line;
  for (absl::string_view line : absl::StrSplit(ReadFileOrDie(kDeployDir + "systemd/attest.tmpfiles"), '\n')) {
    if (!line.empty() && line.front() != '#') tmpfiles_line = std::string(line);
  }
  EXPECT_THAT(push["tmpfiles"], ::testing::Contains(tmpfiles_line));
}

TEST_F(NixosModuleTest, WrittenNodeConfigStartsAttestd) {
  const json result = Evaluate();
  ASSERT_TRUE(result.is_object());
  json node_toml = result["attestd"]["nodeToml"];
  // Optional tables left unset are not written (TOML has no null; an empty [[peer]] list would be an
  // array of nothing, not of tables).
  EXPECT_FALSE(node_toml.contains("gateway"));
  EXPECT_FALSE(node_toml.contains("peer"));
  EXPECT_EQ(node_toml["node"]["policy"], "/nix/store/00000000000000000000000000000000-attest-policy.toml");

  // Everything as written, but files and ports of this test.
  RunResult key =
      attest::testing::Run({ATTEST_BIN, "key", "generate", "--name", "node-1", "--out", dir_.File("node.sec")});
  ASSERT_EQ(key.exit_code, 0) << key.err;
  WriteFileOrDie(
      dir_.File("policy.toml"),
      "quorum = 1\n[[operator]]\nname = \"op\"\nbuilders = [\"op-1:yljIATpkM1LMf26jx3hQXKfjwVjulKcvNyCt7YuMQSg=\"]\n");
  node_toml["node"]["database"] = dir_.File("attest.db");
  node_toml["node"]["key"] = dir_.File("node.sec");
  node_toml["node"]["policy"] = dir_.File("policy.toml");
  node_toml["node"]["grpc"] = "127.0.0.1:0";
  node_toml["node"]["http"] = "127.0.0.1:0";
  WriteFileOrDie(dir_.File("node.toml"), AsToml(node_toml));
  Daemon attestd({ATTESTD_BIN, "--config", dir_.File("node.toml")}, dir_.File("attestd"));
  ASSERT_TRUE(attestd.WaitForLine("grpc listening on ", std::chrono::seconds(30)).has_value())
      << ReadFileOrDie(dir_.File("node.toml")) << attestd.Stderr();
  // And it stops cleanly within the unit's TimeoutStopSec.
  std::optional<int> status = attestd.Signal(SIGTERM, std::chrono::seconds(15));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << attestd.Stderr();
}

}  // namespace
}  // namespace attest::testing
