#include "client/nix_store_location.h"

#include <map>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::client {
namespace {

using ::testing::HasSubstr;

// NIX_CONFIG as Nix 2.8 passes it to the post-build-hook (abridged; Nix writes every setting).
constexpr std::string_view kNixConfig =
    "allowed-uris = \n"
    "build-users-group = \n"
    "experimental-features = nix-command ca-derivations\n"
    "post-build-hook = /tmp/nix-e2e/c/env-hook.sh\n"
    "store = /tmp/nix-e2e/c/store-A\n"
    "substituters = \n"
    "system = x86_64-linux\n";

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

void ExpectRefused(std::string_view uri, absl::StatusCode code, std::string_view fragment) {
  absl::StatusOr<std::string> root = StoreRootForUri(uri, "/work");
  ASSERT_FALSE(root.ok()) << uri << " gave " << *root;
  EXPECT_EQ(root.status().code(), code) << uri;
  EXPECT_THAT(std::string(root.status().message()), HasSubstr(std::string(fragment))) << uri;
}

TEST(NixStoreLocationTest, ReadsSettingsFromNixConfigText) {
  EXPECT_EQ(NixConfigValue(kNixConfig, "store"), "/tmp/nix-e2e/c/store-A");
  EXPECT_EQ(NixConfigValue(kNixConfig, "substituters"), "");
  EXPECT_EQ(NixConfigValue(kNixConfig, "sandbox"), std::nullopt);
  EXPECT_EQ(NixConfigValue("", "store"), std::nullopt);
  // The last line wins, comments and surrounding blanks are ignored, names match exactly.
  EXPECT_EQ(NixConfigValue("store = /a\n  store=/b   # chroot\nstore-x = /c\n#store = /d\n", "store"), "/b");
  EXPECT_EQ(NixConfigValue("not a setting\nstore = local?root=/x\n", "store"), "local?root=/x");
}

TEST(NixStoreLocationTest, SystemStoreForms) {
  for (std::string_view uri : {"", "auto", "daemon", "local", " auto ", "unix:///nix/var/nix/daemon-socket/socket",
                               "local?state=/nix/var/nix", "daemon?store=/nix/store"}) {
    absl::StatusOr<std::string> root = StoreRootForUri(uri, "/work");
    ASSERT_TRUE(root.ok()) << uri << ": " << root.status();
    EXPECT_EQ(*root, "/") << uri;
  }
}

TEST(NixStoreLocationTest, ChrootStoreForms) {
  for (auto [uri, expected] : {std::pair{"/tmp/store-A", "/tmp/store-A"},
                               {"/tmp/store-A/", "/tmp/store-A"},
                               {"/tmp/x/../store-A", "/tmp/store-A"},
                               {"./store-A", "/work/store-A"},
                               {"stores/A", "/work/stores/A"},
                               {"local?root=/some/dir", "/some/dir"},
                               {"local?root=%2Fsome%2Fdir&priority=10", "/some/dir"},
                               {"auto?root=/some/dir", "/some/dir"},
                               {"local?root=/d&store=/nix/store&state=/d/nix/var/nix&real=/d/nix/store", "/d"}}) {
    absl::StatusOr<std::string> root = StoreRootForUri(uri, "/work");
    ASSERT_TRUE(root.ok()) << uri << ": " << root.status();
    EXPECT_EQ(*root, expected) << uri;
  }
}

TEST(NixStoreLocationTest, RefusesStoresWhoseFilesAttestCannotRead) {
  for (std::string_view uri : {"ssh://builder.example", "ssh-ng://root@host", "s3://bucket?region=eu-west-1",
                               "file:///var/cache/nix", "https://cache.nixos.org", "http://127.0.0.1:8080"}) {
    ExpectRefused(uri, absl::StatusCode::kFailedPrecondition, std::string(uri));
    ExpectRefused(uri, absl::StatusCode::kFailedPrecondition, "local store");
  }
  ExpectRefused("dummy", absl::StatusCode::kFailedPrecondition, "not a store type attest knows");
  ExpectRefused("local?root=/d&store=/gnu/store", absl::StatusCode::kFailedPrecondition, "?store=");
  ExpectRefused("local?root=/d&real=/elsewhere", absl::StatusCode::kFailedPrecondition, "?real=");
  ExpectRefused("local?state=/var/lib/nix", absl::StatusCode::kFailedPrecondition, "?state=");
  ExpectRefused("local?root=%zz", absl::StatusCode::kInvalidArgument, "%-escape");
  ExpectRefused("local?root=/d%2", absl::StatusCode::kInvalidArgument, "%-escape");
}

TEST(NixStoreLocationTest, FromTheHooksEnvironment) {
  absl::StatusOr<NixStoreLocation> chroot =
      NixStoreLocationFromEnvironment(Env({{"NIX_CONFIG", std::string(kNixConfig)}}), "/work");
  ASSERT_TRUE(chroot.ok()) << chroot.status();
  EXPECT_EQ(chroot->root, "/tmp/nix-e2e/c/store-A");
  EXPECT_EQ(chroot->uri, "/tmp/nix-e2e/c/store-A");
  EXPECT_EQ(chroot->PhysicalPath("/nix/store/x.drv"), "/tmp/nix-e2e/c/store-A/nix/store/x.drv");

  // No NIX_CONFIG (run by hand): NIX_REMOTE, as Nix's default for `store`; then auto.
  absl::StatusOr<NixStoreLocation> remote =
      NixStoreLocationFromEnvironment(Env({{"NIX_REMOTE", "local?root=/r"}}), "/work");
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ(remote->root, "/r");
  EXPECT_EQ(remote->uri, "local?root=/r");
  absl::StatusOr<NixStoreLocation> system = NixStoreLocationFromEnvironment(Env({}), "/work");
  ASSERT_TRUE(system.ok()) << system.status();
  EXPECT_EQ(system->root, "/");
  EXPECT_EQ(system->uri, "");
  EXPECT_EQ(system->PhysicalPath("/nix/store/x.drv"), "/nix/store/x.drv");
  // NIX_CONFIG's store beats NIX_REMOTE (Nix put the effective value there).
  EXPECT_EQ(NixStoreLocationFromEnvironment(Env({{"NIX_CONFIG", "store = daemon\n"}, {"NIX_REMOTE", "/r"}}), "/")
                ->root,
            "/");
}

TEST(NixStoreLocationTest, RefusesAMovedStoreOrStateDirectory) {
  absl::StatusOr<NixStoreLocation> moved =
      NixStoreLocationFromEnvironment(Env({{"NIX_STORE_DIR", "/gnu/store"}}), "/");
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(moved.status().message()), HasSubstr("NIX_STORE_DIR"));
  EXPECT_THAT(std::string(moved.status().message()), HasSubstr("/gnu/store"));
  EXPECT_TRUE(NixStoreLocationFromEnvironment(Env({{"NIX_STORE_DIR", "/nix/store/"}}), "/").ok());

  absl::StatusOr<NixStoreLocation> state =
      NixStoreLocationFromEnvironment(Env({{"NIX_STATE_DIR", "/var/lib/nix"}}), "/");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(state.status().message()), HasSubstr("NIX_STATE_DIR"));
  // A chroot store's database is under its root whatever NIX_STATE_DIR says (Nix 2.8 LocalFSStoreConfig).
  EXPECT_TRUE(
      NixStoreLocationFromEnvironment(Env({{"NIX_STATE_DIR", "/var/lib/nix"}, {"NIX_CONFIG", "store = /s\n"}}), "/")
          .ok());

  absl::StatusOr<NixStoreLocation> ssh =
      NixStoreLocationFromEnvironment(Env({{"NIX_CONFIG", "store = ssh-ng://builder\n"}}), "/");
  EXPECT_EQ(ssh.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ssh.status().message()), HasSubstr("ssh-ng://builder"));
}

}  // namespace
}  // namespace attest::client
