// Binary caches written by real Nix for the gateway tests: a handful of raw derivations built once per
// test binary into a private store, copied with `nix copy` uncompressed and with xz.
#ifndef ATTEST_TESTS_SERVER_NIX_CACHES_H_
#define ATTEST_TESTS_SERVER_NIX_CACHES_H_

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::server {

using ::attest::testing::Run;
using ::attest::testing::RunResult;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;

// ---- the binary caches, built once with real Nix -------------------------------------------------

inline constexpr const char* kDerivations = R"(
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  dep = mk "gw-dep" "echo dep > $out";
in {
  inherit dep;
  hello = mk "gw-hello" "echo hello from the gateway test > $out";
  withdeps = mk "gw-withdeps" "echo ${dep} > $out";
  pending = mk "gw-pending" "echo pending > $out";
  disputed = mk "gw-disputed" "echo disputed > $out";
  mismatch = mk "gw-mismatch" "echo mismatch > $out";
  unknown = mk "gw-unknown" "echo unknown > $out";
  later = mk "gw-later" "echo later > $out";
  big = mk "gw-big" "/usr/bin/head -c 3000000 /dev/urandom > $out";
}
)";

struct NixCaches final {
  std::unique_ptr<TempDir> dir;
  std::map<std::string, std::string> env;    // isolates Nix from the host configuration
  std::string error;                         // why building them failed
  std::string none_dir;                      // nix copy --to file://...?compression=none
  std::string xz_dir;                        // nix copy --to file://... (xz)
  std::map<std::string, std::string> paths;  // "hello" -> /nix/store/...-gw-hello
};

inline std::string Describe(const RunResult& r) { return absl::StrCat("exit ", r.exit_code, ": ", r.err); }

inline NixCaches BuildCaches() {
  NixCaches caches;
  caches.dir = std::make_unique<TempDir>();
  const TempDir& d = *caches.dir;
  for (const char* sub : {"etc", "xdg", "home", "tmp"}) std::filesystem::create_directories(d.File(sub));
  WriteFileOrDie(d.File("etc/nix.conf"),
                 "experimental-features = nix-command\nsubstituters =\nbuild-users-group =\nsandbox = true\n"
                 "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
  WriteFileOrDie(d.File("gw.nix"), kDerivations);
  const std::map<std::string, std::string> env{{"NIX_CONF_DIR", d.File("etc")},
                                               {"XDG_CACHE_HOME", d.File("xdg")},
                                               {"HOME", d.File("home")},
                                               {"TMPDIR", d.File("tmp")},
                                               {"NIX_CONFIG", ""},
                                               {"NIX_REMOTE", ""}};
  caches.env = env;
  const std::string store = d.File("store");
  RunResult built = Run({"nix-build", "--store", store, d.File("gw.nix"), "--no-out-link"}, "", std::chrono::seconds(300), env);
  if (built.exit_code != 0) {
    caches.error = "nix-build: " + Describe(built);
    return caches;
  }
  std::vector<std::string> outputs;
  std::istringstream lines(built.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    outputs.push_back(line);
    caches.paths[line.substr(line.rfind("-gw-") + 4)] = line;
  }
  caches.none_dir = d.File("cache-none");
  caches.xz_dir = d.File("cache-xz");
  for (const std::string& to : {"file://" + caches.none_dir + "?compression=none", "file://" + caches.xz_dir}) {
    std::vector<std::string> argv{"nix", "copy", "--store", store, "--to", to};
    argv.insert(argv.end(), outputs.begin(), outputs.end());
    RunResult copied = Run(argv, "", std::chrono::seconds(300), env);
    if (copied.exit_code != 0) {
      caches.error = "nix copy: " + Describe(copied);
      return caches;
    }
  }
  return caches;
}

// Built once per test binary (real Nix builds take seconds); destroyed at exit, which removes its temp dir.
inline NixCaches& Caches() {
  static NixCaches caches = BuildCaches();
  return caches;
}

inline std::string HashPart(const std::string& path) { return path.substr(11, 32); }

}  // namespace attest::server

#endif  // ATTEST_TESTS_SERVER_NIX_CACHES_H_
