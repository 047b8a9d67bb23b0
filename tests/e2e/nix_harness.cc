#include "tests/e2e/nix_harness.h"

#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace attest::testing {

NixSandbox::NixSandbox(const TempDir& dir) : dir_(dir) {
  for (const char* sub : {"nix/etc", "nix/xdg-cache", "nix/home", "nix/tmp"}) {
    std::filesystem::create_directories(dir_.File(sub));
  }
  WriteFileOrDie(dir_.File("nix/etc/nix.conf"),
                 "experimental-features = nix-command\n"
                 "substituters =\n"
                 "build-users-group =\n"
                 "sandbox = true\n"
                 "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
}

RunResult NixSandbox::Nix(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env,
                          std::chrono::seconds timeout) const {
  std::vector<std::string> command = {"env"};
  for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR",
                          "ATTEST_BUILDER_CONFIG"}) {
    // `env -u` runs after Run() set extra_env, so a variable the caller sets must not be unset here.
    if (!extra_env.contains(var)) command.insert(command.end(), {"-u", var});
  }
  command.insert(command.end(), argv.begin(), argv.end());
  std::map<std::string, std::string> env = {{"NIX_CONF_DIR", dir_.File("nix/etc")},
                                            {"XDG_CACHE_HOME", dir_.File("nix/xdg-cache")},
                                            {"HOME", dir_.File("nix/home")},
                                            {"TMPDIR", dir_.File("nix/tmp")}};
  for (const auto& [name, value] : extra_env) env[name] = value;
  return Run(command, "", timeout, env);
}

std::string NixSandbox::Store(const std::string& name) const { return dir_.File("store-" + name); }

nlohmann::json NixSandbox::PathInfo(const std::string& store, const std::vector<std::string>& paths) const {
  std::vector<std::string> argv = {"nix", "path-info", "--json", "--store", store};
  argv.insert(argv.end(), paths.begin(), paths.end());
  RunResult result = Nix(argv);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  nlohmann::json parsed = nlohmann::json::parse(result.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(parsed.is_array()) << result.out;
  return parsed.is_array() ? parsed : nlohmann::json::array();
}

std::set<std::string> NixSandbox::Outputs(const std::string& store, const std::string& drv_path) const {
  RunResult result = Nix({"nix-store", "--store", store, "--query", "--outputs", drv_path});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::set<std::string> outputs;
  for (absl::string_view line : absl::StrSplit(result.out, '\n', absl::SkipEmpty())) outputs.emplace(line);
  return outputs;
}

std::string NixSandbox::OutPath(const std::string& store, const std::string& expression,
                                const std::string& attr) const {
  RunResult drv = Nix({"nix-instantiate", "--store", store, expression, "-A", attr});
  EXPECT_EQ(drv.exit_code, 0) << drv.err;
  const std::set<std::string> outputs = Outputs(store, std::string(absl::StripTrailingAsciiWhitespace(drv.out)));
  EXPECT_EQ(outputs.size(), 1u) << attr;
  return outputs.size() == 1 ? *outputs.begin() : "";
}

HookBuilder MakeHookBuilder(const TempDir& dir, const NixSandbox& nix, const std::string& name,
                            const std::string& key_file, const std::string& node_address) {
  HookBuilder builder{.name = name,
                      .store = nix.Store(name),
                      .config = dir.File("builder-" + name + ".toml"),
                      .spool = dir.File("spool-" + name)};
  WriteFileOrDie(builder.config, absl::StrCat("key = \"", key_file, "\"\nspool = \"", builder.spool,
                                              "\"\nnodes = [\"", node_address, "\"]\n"));
  return builder;
}

RunResult BuildWithHook(const NixSandbox& nix, const HookBuilder& builder, const std::string& expression,
                        const std::vector<std::string>& attrs) {
  std::vector<std::string> argv = {"nix-build",       "--store",     builder.store, "--option",
                                   "post-build-hook", ATTEST_HOOK_BIN, "--no-out-link", expression};
  for (const std::string& attr : attrs) argv.insert(argv.end(), {"-A", attr});
  return nix.Nix(argv, {{"ATTEST_BUILDER_CONFIG", builder.config}});
}

RunResult PushSpool(const HookBuilder& builder, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {ATTEST_BIN, "push", "--config", builder.config};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Run(argv, "", std::chrono::seconds(120));
}

size_t SpoolRecords(const HookBuilder& builder) {
  size_t records = 0;
  if (!std::filesystem::exists(builder.spool)) return 0;
  for (const auto& file : std::filesystem::directory_iterator(builder.spool)) {
    if (file.path().extension() == ".json" && file.path().filename().string()[0] != '.') ++records;
  }
  return records;
}

}  // namespace attest::testing
