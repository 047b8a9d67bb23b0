// NixTestEnv: real Nix (Debian's 2.8) isolated from the host for client tests that run `nix-store`
// in-process (client/nix_export.h inherits this process's environment): a private NIX_CONF_DIR with
// its own nix.conf (no substituters, sandboxed builds as root with /bin /usr /lib visible, as
// tests/e2e/nix_harness.cc sets it up), private caches, HOME and TMPDIR, set with setenv for the
// object's lifetime and restored afterwards. Every store is a chroot store under the temp dir.
//
// Not thread-safe: construct it before starting threads (gRPC servers) that may read the environment.
#ifndef ATTEST_TESTS_CLIENT_NIX_TEST_ENV_H_
#define ATTEST_TESTS_CLIENT_NIX_TEST_ENV_H_

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {

class NixTestEnv final {
 public:
  // `extra_conf` is appended to nix.conf (e.g. "post-build-hook = /path\n").
  explicit NixTestEnv(const TempDir& dir, const std::string& extra_conf = "") : dir_(dir) {
    for (const char* sub : {"nix/etc", "nix/xdg-cache", "nix/home", "nix/tmp"}) {
      std::filesystem::create_directories(dir_.File(sub));
    }
    WriteFileOrDie(dir_.File("nix/etc/nix.conf"),
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n" +
                       extra_conf);
    Set("NIX_CONF_DIR", dir_.File("nix/etc"));
    Set("XDG_CACHE_HOME", dir_.File("nix/xdg-cache"));
    Set("HOME", dir_.File("nix/home"));
    Set("TMPDIR", dir_.File("nix/tmp"));
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR",
                            "ATTEST_BUILDER_CONFIG"}) {
      Set(var, std::nullopt);
    }
  }
  ~NixTestEnv() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  NixTestEnv(const NixTestEnv&) = delete;
  NixTestEnv& operator=(const NixTestEnv&) = delete;

  // Sets (or, with nullopt, unsets) a variable until destruction.
  void Set(const std::string& name, const std::optional<std::string>& value) {
    if (!saved_.contains(name)) {
      const char* old = std::getenv(name.c_str());
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
    }
    if (value) {
      ::setenv(name.c_str(), value->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }

  // The directory of chroot store `name` (Nix creates it on first use).
  std::string Store(const std::string& name) const { return dir_.File("store-" + name); }

  // Runs a Nix program with this environment.
  RunResult Nix(const std::vector<std::string>& argv) const { return Run(argv, "", std::chrono::seconds(120)); }

  // `nix-instantiate --store STORE FILE -A ATTR` (no -A for an empty ATTR): the .drv path ("" with a
  // test failure on error).
  std::string Instantiate(const std::string& store, const std::string& file, const std::string& attr) const {
    std::vector<std::string> argv = {"nix-instantiate", "--store", store, file};
    if (!attr.empty()) argv.insert(argv.end(), {"-A", attr});
    RunResult result = Nix(argv);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::string out = result.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }

  // The one output path of `drv` in `store` (nix-store --query --outputs).
  std::string OutputOf(const std::string& store, const std::string& drv) const {
    RunResult result = Nix({"nix-store", "--store", store, "--query", "--outputs", drv});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::string out = result.out;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }

  // True when `path` is valid in `store`.
  bool Valid(const std::string& store, const std::string& path) const {
    return Nix({"nix-store", "--store", store, "--check-validity", path}).exit_code == 0;
  }

 private:
  const TempDir& dir_;
  std::map<std::string, std::optional<std::string>> saved_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_CLIENT_NIX_TEST_ENV_H_
