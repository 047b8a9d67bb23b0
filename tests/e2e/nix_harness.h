// NixSandbox: runs Debian's real Nix (2.8) isolated from the host, as the shared reference scripts do:
// a private NIX_CONF_DIR with its own nix.conf (no substituters, sandboxed builds as root, the host's
// /bin /usr /lib visible inside the sandbox so raw derivations can use /bin/sh), private caches, HOME
// and TMPDIR. Every store is a chroot store (`--store DIR`), so tests need no daemon and touch nothing
// outside their temp dir. Shared by the end-to-end tests that build with Nix.
#ifndef ATTEST_TESTS_E2E_NIX_HARNESS_H_
#define ATTEST_TESTS_E2E_NIX_HARNESS_H_

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {

class NixSandbox final {
 public:
  // Writes <dir>/nix/etc/nix.conf and creates the cache, home and temp dirs under <dir>/nix.
  explicit NixSandbox(const TempDir& dir);

  // Runs a Nix command (argv[0] is the program: nix, nix-build, nix-store, ...) with the isolated
  // environment plus `extra_env`. NIX_CONFIG, NIX_REMOTE and the other NIX_* the runner may have are unset.
  RunResult Nix(const std::vector<std::string>& argv, const std::map<std::string, std::string>& extra_env = {},
                std::chrono::seconds timeout = std::chrono::seconds(300)) const;

  // The directory of chroot store `name` (created by Nix on first use).
  std::string Store(const std::string& name) const;

  // `nix path-info --json` of `paths` in `store`, as a list (Nix 2.8's form). Fails the test on error.
  nlohmann::json PathInfo(const std::string& store, const std::vector<std::string>& paths) const;

  // The output paths of the derivation `drv_path` in `store`.
  std::set<std::string> Outputs(const std::string& store, const std::string& drv_path) const;

  // The output path of attribute `attr` of the Nix file `expression`, instantiated in `store` (a raw
  // derivation's output path does not depend on the store). "" (with a test failure) on error.
  std::string OutPath(const std::string& store, const std::string& expression, const std::string& attr) const;

 private:
  const TempDir& dir_;
};

// A builder of the tests: its own chroot store, `attest-hook` as its post-build-hook (Nix runs it with
// no arguments; the builder config comes from ATTEST_BUILDER_CONFIG, the recommended setup) and
// `attest push` shipping its spool to one node.
struct HookBuilder final {
  std::string name;
  std::string store;
  std::string config;  // builder TOML
  std::string spool;
};

// Writes <dir>/builder-<name>.toml: signs with the secret key file `key_file`, spools in
// <dir>/spool-<name>, pushes to `node_address`.
HookBuilder MakeHookBuilder(const TempDir& dir, const NixSandbox& nix, const std::string& name,
                            const std::string& key_file, const std::string& node_address);

// nix-build of the attributes `attrs` of the Nix file `expression` in the builder's store, with the hook.
RunResult BuildWithHook(const NixSandbox& nix, const HookBuilder& builder, const std::string& expression,
                        const std::vector<std::string>& attrs);

// `attest push --config <builder config> extra...`.
RunResult PushSpool(const HookBuilder& builder, const std::vector<std::string>& extra = {});

// The records waiting in the builder's spool.
size_t SpoolRecords(const HookBuilder& builder);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_E2E_NIX_HARNESS_H_
