// Which Nix store `attest hook` runs in, and where its files live on this machine.
//
// Nix runs the post-build-hook with its whole environment plus NIX_CONFIG: its effective settings as
// `name = value` lines, `store = ...` among them. The `store` setting decides where the store is:
//   ""  "auto"  "daemon"  "local"  "unix://..."      the system store: root "/"
//   "/some/dir"  "./dir"  (a path, as `--store DIR`)   a chroot store: root /some/dir (relative to the
//                                                      working directory Nix ran in, which the hook
//                                                      inherits)
//   "local?root=/some/dir"  ("auto?root=", ...)        a chroot store: root /some/dir
//   anything else (ssh://, ssh-ng://, s3://, file://, http(s)://, ...)   not a store whose files and
//                                                      database attest can read: FAILED_PRECONDITION
// The store's files are at <root>/nix/store and its database at <root>/nix/var/nix/db. Settings that
// move them elsewhere (NIX_STORE_DIR, `?store=`, `?real=`, `?state=`, and NIX_STATE_DIR for the system
// store) are refused with FAILED_PRECONDITION naming them, since a record must let `attest push` find the
// same files later. When NIX_CONFIG has no `store` line (the hook run by hand), $NIX_REMOTE is used, as
// Nix does, and then "auto".
//
// Pure functions over injected environment lookups; thread-safe.
#ifndef ATTEST_CLIENT_NIX_STORE_LOCATION_H_
#define ATTEST_CLIENT_NIX_STORE_LOCATION_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace attest::client {

struct NixStoreLocation final {
  // "/" for the system store; the directory of a chroot store, absolute, without a trailing slash.
  std::string root = "/";
  // The `store` setting as Nix had it ("" when it had none).
  std::string uri;

  // Where a store path's files are on this machine: <root><store_path>.
  std::string PhysicalPath(std::string_view store_path) const;
};

// Looks up an environment variable (std::getenv in the process, a map in tests).
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// The value of setting `name` in NIX_CONFIG text (newline-separated `name = value` lines; '#' starts a
// comment; the last line for a name wins, as in Nix). nullopt when absent.
std::optional<std::string> NixConfigValue(std::string_view nix_config, std::string_view name);

// The root of the store named by a `store` setting value; `working_dir` anchors a relative path.
// FAILED_PRECONDITION for stores attest cannot read (remote, binary caches, moved store or state
// directories), naming the setting; INVALID_ARGUMENT for malformed query parameters.
absl::StatusOr<std::string> StoreRootForUri(std::string_view uri, std::string_view working_dir);

// The store the hook runs in, from $NIX_CONFIG (else $NIX_REMOTE), $NIX_STORE_DIR and $NIX_STATE_DIR.
// Errors as StoreRootForUri.
absl::StatusOr<NixStoreLocation> NixStoreLocationFromEnvironment(const EnvLookup& env,
                                                                 std::string_view working_dir);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_NIX_STORE_LOCATION_H_
