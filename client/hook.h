// The post-build-hook's work, shared by `attest hook` and the lean `attest-hook` program: read the
// derivation Nix just built (DRV_PATH, OUT_PATHS, the store from NIX_CONFIG), and queue one durable spool
// record per built output for `attest push`.
//
// It never touches the network or the secret key and never fails: every problem is written to `log`
// with what to do about it, because a failing hook aborts the whole Nix run. `attest-hook` exists
// because loading the full CLI (gRPC, protobuf, OpenSSL, SQLite: about 60 shared libraries) costs
// tens of milliseconds per build; this part needs none of them.
#ifndef ATTEST_CLIENT_HOOK_H_
#define ATTEST_CLIENT_HOOK_H_

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace attest::client {

// Reads an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// Queues the outputs of $DRV_PATH. `config_flag` is --config (empty: $ATTEST_BUILDER_CONFIG).
void QueueBuiltOutputs(std::string_view config_flag, const EnvLookup& env, std::ostream& log);

// QueueBuiltOutputs, with anything the standard library might throw caught and logged.
void RunHookNeverFailing(std::string_view config_flag, const EnvLookup& env, std::ostream& log);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_HOOK_H_
