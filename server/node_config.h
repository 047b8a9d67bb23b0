// NodeConfig: the node's own settings, read from a TOML file (the policy is a separate file, shared by
// the federation; this one is local to the node).
//
//   [node]
//   grpc = "127.0.0.1:7700"          # gRPC listen address; port 0 picks a free port
//   http = "127.0.0.1:7780"          # HTTP listen address ("" = no HTTP listener)
//   database = "attest.db"           # SQLite file (created when absent)
//   key = "node.sec"                 # the node's Nix secret key (nix key generate-secret)
//   policy = "policy.toml"           # the federation's policy
//   observe_unknown_keys = false     # store (never count) attestations of keys not in the policy
//   max_batch = 10000                # most attestations in one Submit
//   max_status_paths = 10000         # most store paths in one Status request
//   max_status_answer_bytes = 4194304  # largest Status answer (4 MiB); larger is RESOURCE_EXHAUSTED
//   max_message_bytes = 67108864     # largest gRPC request accepted (64 MiB)
//   verify_threads = 2               # threads verifying signatures
//   rpc_threads = 8                  # handler threads for submissions, and as many for reads
//   allow_non_loopback = false       # serve plaintext (no [tls]) on a non-loopback address; with [tls]
//                                    # any address may be bound without it
//   http_threads = 2                 # HTTP event threads
//   http_job_threads = 16            # HTTP work that may block (upstream fetches, storage reads)
//   http_max_connections = 1024      # more HTTP connections wait in the listen queue
//   http_max_connections_per_ip = 128  # HTTP connections from one client address (0 = no limit)
//   http_idle_timeout = 30           # seconds before an idle HTTP connection is closed
//   http_request_head_timeout = 20   # seconds for a whole HTTP request to arrive, however it trickles
//
//   [tls]                            # TLS on both ports (gRPC and HTTPS); absent = plaintext
//   cert = "node.crt"                # PEM certificate chain, the node's certificate first
//   key = "node.key"                 # PEM private key of that certificate (not encrypted)
//   client_ca = "clients.crt"        # optional: require client certificates signed by these CAs
//
//   [gateway]                        # the substituter gateway on the HTTP port (see server/gateway.h)
//   upstream = "https://cache.nixos.org"   # http(s)://... or file:///absolute/dir (binary cache layout)
//   priority = 30                    # /nix-cache-info Priority
//   positive_ttl = 3600              # seconds an upstream narinfo is believed
//   negative_ttl = 60                # seconds an upstream "no such narinfo" is believed
//   failure_ttl = 5                  # seconds an upstream failure is believed (requests answer 404)
//   cache_entries = 50000            # hash parts kept in memory
//   upstream_timeout = 10            # seconds for a narinfo fetch, or until a NAR's headers arrive
//   nar_streams = 32                 # NARs relayed from an http upstream at once
//   nar_cache = "attest.db.nar-cache"  # verified NARs relayed from sources (default: database + ".nar-cache")
//   nar_cache_mib = 10240            # its size bound
//   max_nar_mib = 4096               # largest NAR relayed from sources (<= nar_cache_mib); larger: 404
//   nar_fetches = 16                 # NAR transfers from sources at once
//   source_timeout = 10              # seconds to connect to a source, and for a whole narinfo
//   nar_transfer_timeout = 600       # seconds for one whole NAR file from one source
//   nar_stall_timeout = 30           # seconds without a byte before a NAR transfer fails over
//
//   [log]                            # the node's transparency log (server/log_publisher.h)
//   checkpoint_interval = "1s"       # how often the log is checked for growth and a checkpoint signed
//                                    # (a duration: "500ms", "1s", "2m"; 10ms to 1h)
//
//   [scrub]                          # re-checks the stored data in the background (server/scrubber.h)
//   interval = "24h"                 # between passes; "0s": no background passes
//   rate = 20000                     # path rows plus log entries checked per second at most (0: no limit)
//
//   [rebuild]                        # the rebuild queue (docs/rebuilds.md)
//   count_demand = true              # count requests for paths short of CONFIRMED (false: the queue
//                                    # stays empty; derivations and leases work as ever)
//   demand_half_life = "24h"         # a path's demand halves in this time (1m to 8760h)
//   demand_budget = 1000             # requests one client address may add to demand per minute
//   max_demand_paths = 1000000       # paths with demand kept (about 150 bytes each)
//   lease = "30m"                    # how long a rebuilder's lease on a path lasts unless renewed
//
//   [federation]                     # following peers' logs (server/replication.h)
//   poll_interval = "500ms"          # how often each peer's checkpoint is fetched (10ms to 1h)
//   max_backoff = "5s"               # cap of the retry backoff after a failed round (10ms to 1h)
//   batch_entries = 4096             # most peer entries applied in one transaction (bounds memory)
//
//   [[peer]]                         # a peer whose log this node follows (one table per peer)
//   grpc = "node-b.example.org:7700" # its gRPC address (policy hash, consistency proofs);
//                                    # "https://host:port" when the peer serves TLS
//   http = "node-b.example.org:7780" # its HTTP address (/log/checkpoint, /log/tile/...); "host:port",
//                                    # "http://host:port" or "https://host:port"
//   key = "node-b:base64..."         # its node key (Nix public key); the name is the peer's name
//   ca = "federation-ca.crt"         # optional: PEM CA(s) that sign the peer's TLS certificate
//                                    # (default: the system's trusted CAs)
//
//   [[source]]                       # a binary cache of this node's own holding NARs of the
//   url = "https://mirror.example.org"  # federation's builds (a mirror, a local cache; not an operator)
//   priority = 0                     # optional, 0 to 10000: lower is tried first; ties in file order
//
// Relative paths resolve against the directory of the config file. Unknown keys and tables are errors.
// Value types; thread-safe.
#ifndef ATTEST_SERVER_NODE_CONFIG_H_
#define ATTEST_SERVER_NODE_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace attest::server {

struct GatewayConfig final {
  // Binary cache URL (http(s):// or file:///absolute/dir). Optional when the node has other sources of
  // NARs (the policy's operator caches, [[source]] tables): then it is one more source, the last.
  std::string upstream;
  int priority = 30;
  int positive_ttl_seconds = 3600;
  int negative_ttl_seconds = 60;
  int failure_ttl_seconds = 5;
  int cache_entries = 50000;
  int upstream_timeout_seconds = 10;
  int nar_streams = 32;
  // The NAR relay from the sources (server/nar_relay.h), used when the node has any source besides
  // an upstream.
  std::string nar_cache;             // directory of verified NARs; default "<database>.nar-cache"
  int64_t nar_cache_mib = 10240;     // its bound
  int64_t max_nar_mib = 4096;        // largest NAR relayed (at most nar_cache_mib); larger: 404
  int nar_fetches = 16;              // NAR transfers from sources at once
  int source_timeout_seconds = 10;   // connect, and a whole narinfo, per source
  int nar_transfer_timeout_seconds = 600;  // a whole NAR file from one source
  int nar_stall_timeout_seconds = 30;      // a NAR transfer without a byte for this long fails over
};

// A file the config names: its resolved path, and where the config names it ("node.toml:42:8: ", or
// "" for a config built in code), so a problem found when the file is read points at the setting.
struct ConfigFile final {
  std::string path = {};
  std::string where = {};
};

// [tls]: one certificate for both ports. With client_ca set, clients must present a certificate that
// chains to one of its CAs.
struct TlsConfig final {
  ConfigFile cert = {};       // PEM chain, the node's certificate first
  ConfigFile key = {};        // PEM private key of cert
  ConfigFile client_ca = {};  // path "" = client certificates are not requested
};

struct PeerConfig final {
  std::string name;        // the name of its key (its log's origin)
  std::string grpc;        // host:port, or https://host:port (TLS)
  std::string http;        // host:port (plain http), http://host:port or https://host:port
  std::string public_key;  // the peer node's Nix public key, name:base64
  ConfigFile ca;           // PEM CA(s) for the peer's TLS certificate; path "" = the system's CAs
  // This node's [tls] certificate and key, presented when a TLS peer asks for a client certificate
  // (copied from [tls] by ParseNodeConfig; paths "" = none).
  ConfigFile client_cert;
  ConfigFile client_key;
};

// [[source]]: a Nix binary cache of the node's own choosing that holds NARs of the federation's builds
// (a mirror, a local cache). It is not an operator and vouches for nothing: it is only a place to
// fetch bytes from. They are read for the gateway's NAR relay, which is being built: it will try the
// caches of the operators that agreed on a path first, then these, in increasing priority, equal
// priorities in file order, and check whatever comes from any of them against the confirmed NAR hash.
// Until then nothing reads `sources`.
struct NarSourceConfig final {
  std::string url;   // normalised by consensus::ValidateCacheUrl (http(s):// or file:///absolute/dir)
  int priority = 0;  // kMinSourcePriority..kMaxSourcePriority; lower is tried first
  // "node.toml:42:1: " (the [[source]] table), so a problem found when the source is first used (a
  // missing file:// directory) points at the setting; "" for a config built in code.
  std::string where = {};
};

inline constexpr int kMinSourcePriority = 0;
inline constexpr int kMaxSourcePriority = 10000;

// [rebuild]: demand counting (server/demand_book.h) and rebuild leases (server/rebuild_book.h).
struct RebuildConfig final {
  bool count_demand = true;
  absl::Duration demand_half_life = absl::Hours(24);
  int64_t demand_budget = 1000;  // per client address per minute
  int64_t max_demand_paths = 1'000'000;
  absl::Duration lease = absl::Minutes(30);
};

struct FederationConfig final {
  absl::Duration poll_interval = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(5);
  int batch_entries = 4096;
};

inline constexpr absl::Duration kMinFederationInterval = absl::Milliseconds(10);
inline constexpr absl::Duration kMaxFederationInterval = absl::Hours(1);

struct NodeConfig final {
  std::string config_file;  // where it was read from ("" when built in code)
  std::string grpc_address = "127.0.0.1:7700";
  std::string http_address = "127.0.0.1:7780";  // "" = no HTTP listener
  std::string database_path;
  std::string key_path;
  std::string policy_path;
  bool observe_unknown_keys = false;
  int max_batch = 10000;
  int max_status_paths = 10000;
  int64_t max_status_answer_bytes = int64_t{4} << 20;
  int64_t max_message_bytes = int64_t{64} << 20;
  int verify_threads = 2;
  int rpc_threads = 8;
  // Serve plaintext (no [tls]) on a non-loopback address. With [tls] set, any address may be bound
  // without it.
  bool allow_non_loopback = false;
  int http_threads = 2;
  int http_job_threads = 16;
  int http_max_connections = 1024;
  int http_max_connections_per_ip = 128;  // 0: no per-address limit
  int http_idle_timeout_seconds = 30;
  int http_request_head_timeout_seconds = 20;
  std::optional<TlsConfig> tls;
  std::optional<GatewayConfig> gateway;
  // [log]
  absl::Duration checkpoint_interval = absl::Seconds(1);
  // [scrub] (server/scrubber.h): background passes over the stored data; zero interval: none.
  absl::Duration scrub_interval = absl::Hours(24);
  int scrub_rate = 20000;  // path rows plus log entries per second; 0: no limit
  RebuildConfig rebuild;
  FederationConfig federation;
  std::vector<PeerConfig> peers;
  std::vector<NarSourceConfig> sources;  // [[source]] tables, in file order
};

// Bounds of [log] checkpoint_interval.
inline constexpr absl::Duration kMinCheckpointInterval = absl::Milliseconds(10);
inline constexpr absl::Duration kMaxCheckpointInterval = absl::Hours(1);

// A parsed "host:port" listen address. IPv6 hosts are written in brackets ("[::1]:7700"); `host` is
// kept without them.
struct ListenAddress final {
  std::string host;
  int port = 0;
  bool IsLoopback() const;  // localhost, 127.0.0.0/8 or ::1
};

// INVALID_ARGUMENT unless `text` is "host:port" with a port in 0..65535.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

// Parses config text. `file_path` names the file in messages and is the base for relative paths.
// Every problem is INVALID_ARGUMENT "<file>:<line>:<column>: <problem>" (TOML syntax, unknown keys or
// tables, wrong types, values out of range, a missing required key, a non-loopback address with neither
// [tls] nor allow_non_loopback, [tls] cert without key (or the reverse), a [[source]] url refused by
// consensus::ValidateCacheUrl or written twice). Only `text` is read: not the
// environment, and no file (the TLS files are read and checked when the node starts,
// server/tls_files.h, with messages naming the setting).
absl::StatusOr<NodeConfig> ParseNodeConfig(std::string_view text, std::string_view file_path);

// Reads and parses the file. NOT_FOUND / FAILED_PRECONDITION "<file>: <reason>" when it cannot be read;
// otherwise as ParseNodeConfig.
absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& file_path);

// Checks a config built in code (ParseNodeConfig applies the same checks): addresses, limits, the
// loopback rule, [tls] (cert and key both set), the [gateway] values, the checkpoint interval and the
// [[source]] tables (valid, normalised, distinct URLs; priorities in range).
// INVALID_ARGUMENT naming the setting.
absl::Status ValidateNodeConfig(const NodeConfig& config);

}  // namespace attest::server

#endif  // ATTEST_SERVER_NODE_CONFIG_H_
