// The builder's config file, read by `attest hook` and `attest push` (TOML):
//
//   key   = "/etc/nix/attest-builder.sec"   # the builder's Nix secret key file ("name:base64")
//   spool = "/var/spool/attest"             # where the hook leaves records for push
//   nodes = ["node1.example:7700", "127.0.0.1:7700"]   # node gRPC addresses; https://host:port = TLS
//   tls_ca = "/etc/attest/federation-ca.crt"   # optional: PEM CA(s) of the nodes' TLS certificates
//
// Named by `--config FILE` or, when absent, by $ATTEST_BUILDER_CONFIG (Nix runs the hook with no
// arguments). Relative paths in the file are relative to the file's directory. Unknown keys are
// errors naming the file, line and key.
//
// Value types and pure functions apart from reading the file; thread-safe.
#ifndef ATTEST_CLIENT_BUILDER_CONFIG_H_
#define ATTEST_CLIENT_BUILDER_CONFIG_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace attest::client {

struct BuilderConfig final {
  std::string key_file;            // absolute or relative to the config file's directory, resolved
  std::string spool_dir;           // resolved like key_file
  std::vector<std::string> nodes;  // "host:port" or "https://host:port", at least one
  std::string tls_ca_file;         // resolved like key_file; "" = the system's CAs (for https:// nodes)
  std::string source;              // the config file's path, for messages
};

// Parses config text; `path` names the file in messages and anchors relative paths.
// INVALID_ARGUMENT "<path>:<line>:<col>: <problem>" for syntax errors, unknown keys, wrong types,
// a missing key/spool, an empty or malformed node address.
absl::StatusOr<BuilderConfig> ParseBuilderConfig(std::string_view text, std::string_view path);

// Reads and parses the file. NOT_FOUND / PERMISSION_DENIED naming the file.
absl::StatusOr<BuilderConfig> LoadBuilderConfig(const std::string& path);

// The config file to use: `flag` when non-empty, else `env_value` ($ATTEST_BUILDER_CONFIG) when
// non-empty, else FAILED_PRECONDITION telling the user to pass --config or set the variable.
absl::StatusOr<std::string> BuilderConfigPath(std::string_view flag, std::string_view env_value);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_BUILDER_CONFIG_H_
