#include "server/node_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "consensus/cache_url.h"
#include "consensus/keys.h"

// The distro's toml++ is built with exceptions (see consensus/policy.cc); toml::parse_error is caught
// here and turned into a Status, so no exception leaves this file.
#include <toml++/toml.h>

#include "consensus/text.h"
#include "consensus/toml_text.h"
#include "storage/files.h"

namespace attest::server {
namespace {

// A node config is a few KiB; anything near this is not one.
constexpr size_t kMaxConfigBytes = size_t{1} << 20;

using consensus::AbslView;
using consensus::Cat;
using consensus::StdView;

constexpr std::string_view kNodeKeys =
    "grpc, http, database, key, policy, observe_unknown_keys, max_batch, max_status_paths, "
    "max_status_answer_bytes, max_message_bytes, verify_threads, rpc_threads, allow_non_loopback, http_threads, "
    "http_job_threads, http_max_connections, http_max_connections_per_ip, http_idle_timeout, "
    "http_request_head_timeout";
constexpr std::string_view kLogKeys = "checkpoint_interval";
constexpr std::string_view kTables =
    "[node], [tls], [gateway], [log], [scrub], [rebuild], [federation], [[peer]] and [[source]]";
constexpr std::string_view kScrubKeys = "interval, rate";
constexpr std::string_view kRebuildKeys = "count_demand, demand_half_life, demand_budget, max_demand_paths, lease";
constexpr std::string_view kTlsKeys = "cert, key, client_ca";
constexpr std::string_view kFederationKeys = "poll_interval, max_backoff, batch_entries";
constexpr std::string_view kPeerKeys = "grpc, http, key, ca";
constexpr std::string_view kSourceKeys = "url, priority";
constexpr std::string_view kGatewayKeys =
    "upstream, priority, positive_ttl, negative_ttl, failure_ttl, cache_entries, upstream_timeout, nar_streams, "
    "nar_cache, nar_cache_mib, max_nar_mib, nar_fetches, source_timeout, nar_transfer_timeout, nar_stall_timeout";

struct IntegerSetting final {
  std::string_view name;
  int64_t min;
  int64_t max;
};

constexpr IntegerSetting kBatchEntries{"batch_entries", 1, 65536};
constexpr IntegerSetting kMaxBatch{"max_batch", 1, 1000000};
constexpr IntegerSetting kMaxStatusPaths{"max_status_paths", 1, 1000000};
constexpr IntegerSetting kMaxStatusAnswerBytes{"max_status_answer_bytes", 1024, int64_t{1} << 30};
constexpr IntegerSetting kMaxMessageBytes{"max_message_bytes", 1024, int64_t{1} << 30};
constexpr IntegerSetting kVerifyThreads{"verify_threads", 1, 256};
constexpr IntegerSetting kRpcThreads{"rpc_threads", 1, 1024};
constexpr IntegerSetting kHttpThreads{"http_threads", 1, 64};
constexpr IntegerSetting kHttpJobThreads{"http_job_threads", 1, 1024};
constexpr IntegerSetting kHttpMaxConnections{"http_max_connections", 1, 100000};
constexpr IntegerSetting kHttpMaxConnectionsPerIp{"http_max_connections_per_ip", 0, 100000};
constexpr IntegerSetting kHttpIdleTimeout{"http_idle_timeout", 1, 3600};
constexpr IntegerSetting kHttpRequestHeadTimeout{"http_request_head_timeout", 1, 3600};
constexpr IntegerSetting kPriority{"priority", 0, 10000};
constexpr IntegerSetting kPositiveTtl{"positive_ttl", 0, 30 * 86400};
constexpr IntegerSetting kNegativeTtl{"negative_ttl", 0, 86400};
constexpr IntegerSetting kFailureTtl{"failure_ttl", 0, 3600};
constexpr IntegerSetting kCacheEntries{"cache_entries", 1, 10000000};
constexpr IntegerSetting kUpstreamTimeout{"upstream_timeout", 1, 300};
constexpr IntegerSetting kNarStreams{"nar_streams", 1, 1024};
constexpr IntegerSetting kNarCacheMib{"nar_cache_mib", 1, int64_t{1} << 30};
constexpr IntegerSetting kMaxNarMib{"max_nar_mib", 1, int64_t{1} << 30};
constexpr IntegerSetting kNarFetches{"nar_fetches", 1, 1024};
constexpr IntegerSetting kSourceTimeout{"source_timeout", 1, 300};
constexpr IntegerSetting kNarTransferTimeout{"nar_transfer_timeout", 10, 7 * 86400};
constexpr IntegerSetting kNarStallTimeout{"nar_stall_timeout", 1, 3600};
constexpr IntegerSetting kSourcePriority{"priority", kMinSourcePriority, kMaxSourcePriority};

// The gateway's upstream: http(s)://host... or file:///absolute/dir. Whether a directory exists is
// checked when the node opens it.
absl::Status CheckUpstream(std::string_view value, std::string_view where) {
  const bool file = value.substr(0, 7) == "file://";
  const bool http = value.substr(0, 7) == "http://" || value.substr(0, 8) == "https://";
  if (!file && !http) {
    return absl::InvalidArgumentError(
        Cat(where, "upstream = \"", StdView(absl::CHexEscape(AbslView(value))),
            "\" is not a binary cache URL (write http://host:port, https://host or file:///absolute/dir)"));
  }
  if (file && (value.size() < 8 || value[7] != '/')) {
    return absl::InvalidArgumentError(Cat(where, "upstream = \"", StdView(absl::CHexEscape(AbslView(value))),
                                          "\": a file:// upstream needs an absolute path (file:///srv/cache)"));
  }
  if (http && value.substr(value.find("://") + 3).empty()) {
    return absl::InvalidArgumentError(Cat(where, "upstream = \"", StdView(absl::CHexEscape(AbslView(value))),
                                          "\" has no host"));
  }
  if (value.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(Cat(where, "upstream = \"", StdView(absl::CHexEscape(AbslView(value))),
                                          "\" has a query or fragment; give the plain cache URL (parameters like "
                                          "?compression= belong to `nix copy`)"));
  }
  return absl::OkStatus();
}

absl::Status CheckCheckpointInterval(absl::Duration interval, std::string_view where) {
  if (interval < kMinCheckpointInterval || interval > kMaxCheckpointInterval) {
    return absl::InvalidArgumentError(Cat(where, "checkpoint_interval is ",
                                          absl::FormatDuration(interval), "; it must be between ",
                                          absl::FormatDuration(kMinCheckpointInterval), " and ",
                                          absl::FormatDuration(kMaxCheckpointInterval)));
  }
  return absl::OkStatus();
}

std::string Where(std::string_view file, const toml::source_region& region) {
  return consensus::TomlWhere(file, region);
}

std::string_view TypeName(const toml::node& node) { return consensus::TomlTypeName(node); }

std::string Quoted(std::string_view text) { return Cat("\"", StdView(absl::CHexEscape(AbslView(text))), "\""); }

std::vector<std::pair<const toml::key*, const toml::node*>> EntriesInFileOrder(const toml::table& table) {
  return consensus::TomlEntriesInFileOrder(table);
}

absl::Status CheckInteger(const IntegerSetting& setting, int64_t value, std::string_view where) {
  if (value < setting.min || value > setting.max) {
    return absl::InvalidArgumentError(Cat(where, setting.name, " is ", value, "; it must be between ",
                                          setting.min, " and ", setting.max));
  }
  return absl::OkStatus();
}

// Whether a non-loopback listen address is acceptable: with TLS, or with the explicit plaintext opt-in.
enum class ExposedListening { kRefused, kTls, kPlaintextAllowed };

ExposedListening Exposure(const NodeConfig& config) {
  if (config.tls) return ExposedListening::kTls;
  return config.allow_non_loopback ? ExposedListening::kPlaintextAllowed : ExposedListening::kRefused;
}

// "grpc"/"http" values. An empty http address turns the listener off; grpc is always needed.
absl::Status CheckAddress(std::string_view setting, std::string_view value, ExposedListening exposure,
                          std::string_view where) {
  if (value.empty() && setting == "http") return absl::OkStatus();
  auto address = ParseListenAddress(value);
  if (!address.ok()) {
    return absl::InvalidArgumentError(Cat(where, setting, " = ", Quoted(value), ": ",
                                          StdView(address.status().message())));
  }
  if (exposure == ExposedListening::kRefused && !address->IsLoopback()) {
    return absl::InvalidArgumentError(
        Cat(where, setting, " = ", Quoted(value),
            " is not a loopback address and the node has no [tls]; serving plaintext beyond this machine must "
            "be asked for: configure [tls] (cert and key), or set `allow_non_loopback = true` in [node] "
            "(e.g. behind a TLS-terminating proxy), or listen on 127.0.0.1"));
  }
  return absl::OkStatus();
}

std::string ResolvePath(std::string_view value, std::string_view config_file) {
  std::filesystem::path path{std::string(value)};
  if (path.is_absolute()) return path.lexically_normal().string();
  std::filesystem::path base = std::filesystem::path(std::string(config_file)).parent_path();
  return (base / path).lexically_normal().string();
}

bool IsHttps(std::string_view address) { return address.substr(0, 8) == "https://"; }

// A [[peer]] address: "host:port", or with a scheme: http:// (plaintext) or https:// (TLS); gRPC has no
// plaintext scheme of its own here, so grpc takes "host:port" or "https://host:port".
absl::Status CheckPeerAddress(std::string_view setting, std::string_view value, std::string_view where) {
  std::string_view rest = value;
  if (IsHttps(rest)) {
    rest.remove_prefix(8);
  } else if (setting == "http" && rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  }
  if (rest.find("://") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(where, "[[peer]] ", setting, " = ", Quoted(value), ": write \"host:port\", or \"https://host:port\" ",
            "for a peer that serves TLS", setting == "http" ? " (or \"http://host:port\")" : ""));
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (absl::StatusOr<ListenAddress> parsed = ParseListenAddress(rest); !parsed.ok() || parsed->port == 0) {
    return absl::InvalidArgumentError(
        Cat(where, "[[peer]] ", setting, " = ", Quoted(value), ": ",
            parsed.ok() ? "port 0 cannot be dialed" : StdView(parsed.status().message())));
  }
  return absl::OkStatus();
}

class ConfigReader final {
 public:
  explicit ConfigReader(std::string_view file) : file_(file) {}

  absl::StatusOr<NodeConfig> Read(const toml::table& root) {
    config_.config_file = std::string(file_);
    for (const auto& [key, node] : EntriesInFileOrder(root)) {
      const std::string name(key->str());
      absl::Status status;
      if (name == "node") {
        status = ReadNode(*key, *node);
      } else if (name == "tls") {
        status = ReadTls(*key, *node);
      } else if (name == "gateway") {
        status = ReadGateway(*key, *node);
      } else if (name == "log") {
        status = ReadLog(*key, *node);
      } else if (name == "scrub") {
        status = ReadScrub(*key, *node);
      } else if (name == "rebuild") {
        status = ReadRebuild(*key, *node);
      } else if (name == "federation") {
        status = ReadFederation(*key, *node);
      } else if (name == "peer") {
        status = ReadPeers(*key, *node);
      } else if (name == "source") {
        status = ReadSources(*key, *node);
      } else if (node->is_table()) {
        status = absl::InvalidArgumentError(
            Cat(Where(file_, key->source()), "unknown table [", StdView(absl::CHexEscape(name)),
                "] (a node config has ", kTables,
                "; the federation's policy is a separate file, named by `policy` in [node])"));
      } else {
        status = absl::InvalidArgumentError(
            Cat(Where(file_, key->source()), "unknown key ", Quoted(name),
                " at the top level (settings go under [node]; known there: ", kNodeKeys, ")"));
      }
      if (!status.ok()) return status;
    }
    if (absl::Status s = Finish(); !s.ok()) return s;
    return std::move(config_);
  }

 private:
  absl::Status ReadNode(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, key.source()), "\"node\" is ", TypeName(node), ", not a table (write [node])"));
    }
    node_where_ = Where(file_, table->source());
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      const std::string where = Where(file_, value->source());
      absl::Status status;
      if (name == "grpc" || name == "http") {
        auto text = String(*entry_key, *value);
        if (!text.ok()) return text.status();
        (name == "grpc" ? config_.grpc_address : config_.http_address) = *text;
        (name == "grpc" ? grpc_where_ : http_where_) = where;
      } else if (name == "database" || name == "key" || name == "policy") {
        auto text = String(*entry_key, *value);
        if (!text.ok()) return text.status();
        if (text->empty()) {
          return absl::InvalidArgumentError(Cat(where, name, " is empty; give a file path"));
        }
        std::string resolved = ResolvePath(*text, file_);
        if (name == "database") config_.database_path = std::move(resolved);
        if (name == "key") config_.key_path = std::move(resolved);
        if (name == "policy") config_.policy_path = std::move(resolved);
      } else if (name == "observe_unknown_keys" || name == "allow_non_loopback") {
        auto flag = Boolean(*entry_key, *value);
        if (!flag.ok()) return flag.status();
        (name == "observe_unknown_keys" ? config_.observe_unknown_keys : config_.allow_non_loopback) = *flag;
      } else if (name == kMaxBatch.name) {
        status = Integer(kMaxBatch, *value, config_.max_batch);
      } else if (name == kMaxStatusPaths.name) {
        status = Integer(kMaxStatusPaths, *value, config_.max_status_paths);
      } else if (name == kMaxStatusAnswerBytes.name) {
        status = Integer(kMaxStatusAnswerBytes, *value, config_.max_status_answer_bytes);
      } else if (name == kMaxMessageBytes.name) {
        status = Integer(kMaxMessageBytes, *value, config_.max_message_bytes);
      } else if (name == kVerifyThreads.name) {
        status = Integer(kVerifyThreads, *value, config_.verify_threads);
      } else if (name == kRpcThreads.name) {
        status = Integer(kRpcThreads, *value, config_.rpc_threads);
      } else if (name == kHttpThreads.name) {
        status = Integer(kHttpThreads, *value, config_.http_threads);
      } else if (name == kHttpJobThreads.name) {
        status = Integer(kHttpJobThreads, *value, config_.http_job_threads);
      } else if (name == kHttpMaxConnections.name) {
        status = Integer(kHttpMaxConnections, *value, config_.http_max_connections);
      } else if (name == kHttpMaxConnectionsPerIp.name) {
        status = Integer(kHttpMaxConnectionsPerIp, *value, config_.http_max_connections_per_ip);
      } else if (name == kHttpIdleTimeout.name) {
        status = Integer(kHttpIdleTimeout, *value, config_.http_idle_timeout_seconds);
      } else if (name == kHttpRequestHeadTimeout.name) {
        status = Integer(kHttpRequestHeadTimeout, *value, config_.http_request_head_timeout_seconds);
      } else {
        status = absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ",
                                                Quoted(name), " in [node] (known keys: ", kNodeKeys, ")"));
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status ReadTls(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, key.source()), "\"tls\" is ", TypeName(node), ", not a table (write [tls])"));
    }
    const std::string where = Where(file_, key.source());
    TlsConfig tls;
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      ConfigFile* target = name == "cert"        ? &tls.cert
                           : name == "key"       ? &tls.key
                           : name == "client_ca" ? &tls.client_ca
                                                 : nullptr;
      if (target == nullptr) {
        return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                              " in [tls] (known keys: ", kTlsKeys, ")"));
      }
      absl::StatusOr<ConfigFile> file = FileSetting(*entry_key, *value, Cat("[tls] ", name));
      if (!file.ok()) return file.status();
      *target = *std::move(file);
    }
    if (tls.cert.path.empty() || tls.key.path.empty()) {
      return absl::InvalidArgumentError(
          Cat(where, "[tls] has ",
              tls.cert.path.empty() ? (tls.key.path.empty() ? "neither cert nor key" : "a key but no cert")
                                    : "a cert but no key",
              "; TLS needs both: cert = \"node.crt\" (PEM certificate chain) and key = \"node.key\" (its PEM "
              "private key). Remove [tls] to serve plaintext on loopback"));
    }
    config_.tls = std::move(tls);
    return absl::OkStatus();
  }

  // A string setting naming a file: resolved against the config file's directory.
  absl::StatusOr<ConfigFile> FileSetting(const toml::key& key, const toml::node& value, std::string_view shown) {
    auto text = String(key, value);
    if (!text.ok()) return text.status();
    const std::string where = Where(file_, value.source());
    if (text->empty()) return absl::InvalidArgumentError(Cat(where, shown, " is empty; give a file path"));
    return ConfigFile{.path = ResolvePath(*text, file_), .where = Cat(where, shown, " ", Quoted(*text), ": ")};
  }

  absl::Status ReadGateway(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(Cat(Where(file_, key.source()), "\"gateway\" is ", TypeName(node),
                                            ", not a table (write [gateway])"));
    }
    GatewayConfig gateway;
    gateway_where_ = Where(file_, key.source());
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      absl::Status status;
      if (name == "upstream") {
        auto text = String(*entry_key, *value);
        if (!text.ok()) return text.status();
        status = CheckUpstream(*text, Where(file_, value->source()));
        gateway.upstream = *text;
      } else if (name == kPriority.name) {
        status = Integer(kPriority, *value, gateway.priority);
      } else if (name == kPositiveTtl.name) {
        status = Integer(kPositiveTtl, *value, gateway.positive_ttl_seconds);
      } else if (name == kNegativeTtl.name) {
        status = Integer(kNegativeTtl, *value, gateway.negative_ttl_seconds);
      } else if (name == kFailureTtl.name) {
        status = Integer(kFailureTtl, *value, gateway.failure_ttl_seconds);
      } else if (name == kCacheEntries.name) {
        status = Integer(kCacheEntries, *value, gateway.cache_entries);
      } else if (name == kUpstreamTimeout.name) {
        status = Integer(kUpstreamTimeout, *value, gateway.upstream_timeout_seconds);
      } else if (name == kNarStreams.name) {
        status = Integer(kNarStreams, *value, gateway.nar_streams);
      } else if (name == "nar_cache") {
        auto file = FileSetting(*entry_key, *value, "nar_cache");
        if (!file.ok()) return file.status();
        gateway.nar_cache = file->path;
      } else if (name == kNarCacheMib.name) {
        status = Integer(kNarCacheMib, *value, gateway.nar_cache_mib);
      } else if (name == kMaxNarMib.name) {
        status = Integer(kMaxNarMib, *value, gateway.max_nar_mib);
      } else if (name == kNarFetches.name) {
        status = Integer(kNarFetches, *value, gateway.nar_fetches);
      } else if (name == kSourceTimeout.name) {
        status = Integer(kSourceTimeout, *value, gateway.source_timeout_seconds);
      } else if (name == kNarTransferTimeout.name) {
        status = Integer(kNarTransferTimeout, *value, gateway.nar_transfer_timeout_seconds);
      } else if (name == kNarStallTimeout.name) {
        status = Integer(kNarStallTimeout, *value, gateway.nar_stall_timeout_seconds);
      } else {
        status = absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                                " in [gateway] (known keys: ", kGatewayKeys, ")"));
      }
      if (!status.ok()) return status;
    }
    if (gateway.max_nar_mib > gateway.nar_cache_mib) {
      return absl::InvalidArgumentError(Cat(gateway_where_, "[gateway] max_nar_mib (", gateway.max_nar_mib,
                                            ") is larger than nar_cache_mib (", gateway.nar_cache_mib,
                                            "): a NAR is relayed through the cache, so it must fit in it"));
    }
    config_.gateway = std::move(gateway);
    return absl::OkStatus();
  }

  absl::Status ReadLog(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, key.source()), "\"log\" is ", TypeName(node), ", not a table (write [log])"));
    }
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      const std::string where = Where(file_, value->source());
      if (name != "checkpoint_interval") {
        return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                              " in [log] (known keys: ", kLogKeys, ")"));
      }
      const auto* text = value->as_string();
      if (text == nullptr) {
        return absl::InvalidArgumentError(Cat(where, name, " is ", TypeName(*value),
                                              ", not a duration (write it in quotes with a unit: \"1s\", "
                                              "\"500ms\", \"2m\")"));
      }
      absl::Duration interval;
      if (!absl::ParseDuration(text->get(), &interval)) {
        return absl::InvalidArgumentError(Cat(where, name, " = ", Quoted(text->get()),
                                              " is not a duration (a number with a unit: \"1s\", \"500ms\", "
                                              "\"2m\", \"1h\")"));
      }
      if (absl::Status s = CheckCheckpointInterval(interval, where); !s.ok()) return s;
      config_.checkpoint_interval = interval;
    }
    return absl::OkStatus();
  }

  absl::Status ReadScrub(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, key.source()), "\"scrub\" is ", TypeName(node), ", not a table (write [scrub])"));
    }
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      const std::string where = Where(file_, value->source());
      if (name == "rate") {
        const auto* rate = value->as_integer();
        if (rate == nullptr || rate->get() < 0 || rate->get() > 10'000'000) {
          return absl::InvalidArgumentError(Cat(where, "rate must be a whole number of path rows and log entries per "
                                                       "second, 0 (no limit) to 10000000"));
        }
        config_.scrub_rate = static_cast<int>(rate->get());
        continue;
      }
      if (name != "interval") {
        return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                              " in [scrub] (known keys: ", kScrubKeys, ")"));
      }
      const auto* text = value->as_string();
      absl::Duration interval;
      if (text == nullptr || !absl::ParseDuration(text->get(), &interval) || interval < absl::ZeroDuration()) {
        return absl::InvalidArgumentError(Cat(where, "interval must be a duration in quotes (\"24h\", \"30m\"), "
                                                     "or \"0s\" for no background scrub"));
      }
      config_.scrub_interval = interval;
    }
    return absl::OkStatus();
  }

  absl::Status ReadRebuild(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, key.source()), "\"rebuild\" is ", TypeName(node), ", not a table (write [rebuild])"));
    }
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      const std::string where = Where(file_, value->source());
      if (name == "count_demand") {
        const auto* flag = value->as_boolean();
        if (flag == nullptr) return absl::InvalidArgumentError(Cat(where, "count_demand must be true or false"));
        config_.rebuild.count_demand = flag->get();
        continue;
      }
      if (name == "demand_budget" || name == "max_demand_paths") {
        const auto* number = value->as_integer();
        const int64_t low = 1;
        const int64_t high = name == "demand_budget" ? 1'000'000 : 100'000'000;
        if (number == nullptr || number->get() < low || number->get() > high) {
          return absl::InvalidArgumentError(Cat(where, name, " must be a whole number from ", low, " to ", high));
        }
        (name == "demand_budget" ? config_.rebuild.demand_budget : config_.rebuild.max_demand_paths) = number->get();
        continue;
      }
      if (name != "demand_half_life" && name != "lease") {
        return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                              " in [rebuild] (known keys: ", kRebuildKeys, ")"));
      }
      const auto* text = value->as_string();
      absl::Duration duration;
      if (text == nullptr || !absl::ParseDuration(text->get(), &duration) || duration < absl::Minutes(1) ||
          duration > absl::Hours(24 * 365)) {
        return absl::InvalidArgumentError(
            Cat(where, name, " must be a duration in quotes (\"24h\", \"30m\"), from 1m to 8760h"));
      }
      (name == "lease" ? config_.rebuild.lease : config_.rebuild.demand_half_life) = duration;
    }
    return absl::OkStatus();
  }

  absl::Status ReadFederation(const toml::key& key, const toml::node& node) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(Cat(Where(file_, key.source()), "\"federation\" is ", TypeName(node),
                                            ", not a table (write [federation])"));
    }
    for (const auto& [entry_key, value] : EntriesInFileOrder(*table)) {
      const std::string name(entry_key->str());
      const std::string where = Where(file_, value->source());
      absl::Status status;
      if (name == "poll_interval" || name == "max_backoff") {
        absl::Duration& target =
            name == "poll_interval" ? config_.federation.poll_interval : config_.federation.max_backoff;
        status = DurationSetting(name, *value, where, kMinFederationInterval, kMaxFederationInterval, target);
      } else if (name == kBatchEntries.name) {
        status = Integer(kBatchEntries, *value, config_.federation.batch_entries);
      } else {
        status = absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                                " in [federation] (known keys: ", kFederationKeys, ")"));
      }
      if (!status.ok()) return status;
    }
    return absl::OkStatus();
  }

  absl::Status DurationSetting(std::string_view name, const toml::node& value, const std::string& where,
                               absl::Duration min, absl::Duration max, absl::Duration& out) {
    const auto* text = value.as_string();
    absl::Duration duration;
    if (text == nullptr || !absl::ParseDuration(text->get(), &duration)) {
      return absl::InvalidArgumentError(Cat(where, name, " is not a duration (write it in quotes with a unit: "
                                                         "\"500ms\", \"1s\", \"2m\")"));
    }
    if (duration < min || duration > max) {
      return absl::InvalidArgumentError(Cat(where, name, " = ", Quoted(text->get()), " is out of range (",
                                            StdView(absl::FormatDuration(min)), " to ",
                                            StdView(absl::FormatDuration(max)), ")"));
    }
    out = duration;
    return absl::OkStatus();
  }

  absl::Status ReadPeers(const toml::key& key, const toml::node& node) {
    const toml::array* array = node.as_array();
    const bool tables = array != nullptr && std::all_of(array->begin(), array->end(),
                                                         [](const toml::node& n) { return n.is_table(); });
    if (!tables) {
      return absl::InvalidArgumentError(Cat(Where(file_, key.source()), "\"peer\" is ", TypeName(node),
                                            ", not an array of tables (write each peer as a [[peer]] table)"));
    }
    for (const toml::node& element : *array) {
      PeerConfig peer;
      const std::string where = Where(file_, element.source());
      for (const auto& [entry_key, value] : EntriesInFileOrder(*element.as_table())) {
        const std::string name(entry_key->str());
        if (name != "grpc" && name != "http" && name != "key" && name != "ca") {
          return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                                " in [[peer]] (known keys: ", kPeerKeys, ")"));
        }
        if (name == "ca") {
          absl::StatusOr<ConfigFile> ca = FileSetting(*entry_key, *value, "[[peer]] ca");
          if (!ca.ok()) return ca.status();
          peer.ca = *std::move(ca);
          continue;
        }
        auto text = String(*entry_key, *value);
        if (!text.ok()) return text.status();
        if (name == "grpc" || name == "http") {
          if (absl::Status s = CheckPeerAddress(name, *text, Where(file_, value->source())); !s.ok()) return s;
        }
        if (name == "grpc") peer.grpc = *text;
        if (name == "http") peer.http = *text;
        if (name == "key") {
          auto public_key = consensus::PublicKey::Parse(*text);
          if (!public_key.ok()) {
            return absl::InvalidArgumentError(Cat(Where(file_, value->source()), "[[peer]] key: ",
                                                  StdView(public_key.status().message()),
                                                  " (the peer node's Nix public key, name:base64)"));
          }
          peer.public_key = *text;
          peer.name = public_key->name();
        }
      }
      for (auto [name, field] : {std::pair<std::string_view, const std::string*>{"grpc", &peer.grpc},
                                 {"http", &peer.http},
                                 {"key", &peer.public_key}}) {
        if (field->empty()) {
          return absl::InvalidArgumentError(Cat(where, "[[peer]] has no ", name, " (a peer needs grpc, http and key: ",
                                                "its gRPC and HTTP addresses and its node's Nix public key)"));
        }
      }
      if (!peer.ca.path.empty() && !IsHttps(peer.grpc) && !IsHttps(peer.http)) {
        return absl::InvalidArgumentError(
            Cat(peer.ca.where, "the peer's addresses are plaintext, so the CA would not be used; write them as "
                               "grpc = \"https://host:port\" and http = \"https://host:port\" for a peer that "
                               "serves TLS, or remove ca"));
      }
      for (const PeerConfig& other : config_.peers) {
        if (other.name == peer.name) {
          return absl::InvalidArgumentError(Cat(where, "two [[peer]] tables have keys named ", Quoted(peer.name),
                                                " (each peer is known by its key's name, which must be unique)"));
        }
      }
      config_.peers.push_back(std::move(peer));
    }
    return absl::OkStatus();
  }

  absl::Status ReadSources(const toml::key& key, const toml::node& node) {
    const toml::array* array = node.as_array();
    const bool tables = array != nullptr && std::all_of(array->begin(), array->end(),
                                                         [](const toml::node& n) { return n.is_table(); });
    if (!tables) {
      return absl::InvalidArgumentError(Cat(Where(file_, key.source()), "\"source\" is ", TypeName(node),
                                            ", not an array of tables (write each source as a [[source]] table)"));
    }
    for (const toml::node& element : *array) {
      NarSourceConfig source{.url = {}, .priority = 0, .where = Where(file_, element.source())};
      for (const auto& [entry_key, value] : EntriesInFileOrder(*element.as_table())) {
        const std::string name(entry_key->str());
        if (name == "url") {
          auto text = String(*entry_key, *value);
          if (!text.ok()) return text.status();
          absl::StatusOr<std::string> url = consensus::ValidateCacheUrl(*text);
          if (!url.ok()) {
            return absl::InvalidArgumentError(
                Cat(Where(file_, value->source()), "[[source]] url: ", StdView(url.status().message())));
          }
          source.url = *std::move(url);
        } else if (name == kSourcePriority.name) {
          if (absl::Status s = Integer(kSourcePriority, *value, source.priority); !s.ok()) return s;
        } else {
          return absl::InvalidArgumentError(Cat(Where(file_, entry_key->source()), "unknown key ", Quoted(name),
                                                " in [[source]] (known keys: ", kSourceKeys, ")"));
        }
      }
      if (source.url.empty()) {
        return absl::InvalidArgumentError(
            Cat(source.where, "[[source]] has no url (the binary cache to fetch NARs from: url = "
                              "\"https://mirror.example.org\" or \"file:///srv/cache\")"));
      }
      for (const NarSourceConfig& other : config_.sources) {
        if (other.url == source.url) {
          return absl::InvalidArgumentError(
              Cat(source.where, "two [[source]] tables have the url ", Quoted(source.url), ", the first at ",
                  other.where.substr(0, other.where.size() - 2),
                  " (list each source once; a trailing slash does not make another source)"));
        }
      }
      config_.sources.push_back(std::move(source));
    }
    return absl::OkStatus();
  }

  // Checks that need the whole file: required keys, and the loopback rule ([tls] and the plaintext opt-in
  // may be written after the addresses).
  absl::Status Finish() {
    const std::string where = node_where_.empty() ? Cat(file_, ":1:1: ") : node_where_;
    for (auto [name, value] : {std::pair<std::string_view, const std::string*>{"key", &config_.key_path},
                               {"policy", &config_.policy_path}}) {
      if (value->empty()) {
        return absl::InvalidArgumentError(
            Cat(where, "[node] has no ", name, " (", name == "key" ? "the node's Nix secret key file, made by `nix key generate-secret`" : "the federation's policy file", ")"));
      }
    }
    if (config_.database_path.empty()) config_.database_path = ResolvePath("attest.db", file_);
    if (config_.tls) {
      for (PeerConfig& peer : config_.peers) {
        peer.client_cert = config_.tls->cert;
        peer.client_key = config_.tls->key;
      }
    }
    if (absl::Status s = CheckAddress("grpc", config_.grpc_address, Exposure(config_),
                                      grpc_where_.empty() ? where : grpc_where_);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckAddress("http", config_.http_address, Exposure(config_),
                                      http_where_.empty() ? where : http_where_);
        !s.ok()) {
      return s;
    }
    if (config_.gateway && config_.http_address.empty()) {
      return absl::InvalidArgumentError(Cat(gateway_where_, "[gateway] is served on the HTTP port, but http = \"\" "
                                                            "turns it off (set http in [node], or remove [gateway])"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const toml::key& key, const toml::node& node) {
    const auto* value = node.as_string();
    if (value == nullptr) {
      return absl::InvalidArgumentError(Cat(Where(file_, node.source()), key.str(), " is ", TypeName(node),
                                            ", not a string (write it in quotes)"));
    }
    return value->get();
  }

  absl::StatusOr<bool> Boolean(const toml::key& key, const toml::node& node) {
    const auto* value = node.as_boolean();
    if (value == nullptr) {
      return absl::InvalidArgumentError(
          Cat(Where(file_, node.source()), key.str(), " is ", TypeName(node), ", not a boolean (true or false)"));
    }
    return value->get();
  }

  template <typename T>
  absl::Status Integer(const IntegerSetting& setting, const toml::node& node, T& out) {
    const std::string where = Where(file_, node.source());
    const auto* value = node.as_integer();
    if (value == nullptr) {
      return absl::InvalidArgumentError(Cat(where, setting.name, " is ", TypeName(node), ", not an integer"));
    }
    if (absl::Status s = CheckInteger(setting, value->get(), where); !s.ok()) return s;
    out = static_cast<T>(value->get());
    return absl::OkStatus();
  }

  const std::string_view file_;
  NodeConfig config_;
  std::string node_where_;
  std::string grpc_where_;
  std::string http_where_;
  std::string gateway_where_;
};

}  // namespace

bool ListenAddress::IsLoopback() const {
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress address;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError("an IPv6 address is written \"[address]:port\", e.g. \"[::1]:7700\"");
    }
    address.host = std::string(text.substr(1, close - 1));
    in6_addr v6{};
    if (inet_pton(AF_INET6, address.host.c_str(), &v6) != 1) {
      return absl::InvalidArgumentError(Cat(Quoted(address.host), " is not an IPv6 address"));
    }
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError("expected \"host:port\", e.g. \"127.0.0.1:7700\"");
    }
    address.host = std::string(text.substr(0, colon));
    if (address.host.find(':') != std::string::npos) {
      return absl::InvalidArgumentError("write an IPv6 address in brackets: \"[::1]:7700\"");
    }
    for (char c : address.host) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') {
        return absl::InvalidArgumentError(Cat("host ", Quoted(address.host), " is not a host name or IPv4 address"));
      }
    }
    port_text = text.substr(colon + 1);
  }
  int port = -1;
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(AbslView(port_text), &port) || port > 65535) {
    return absl::InvalidArgumentError(Cat("port ", Quoted(port_text), " is not a number from 0 to 65535"));
  }
  address.port = port;
  return address;
}

absl::StatusOr<NodeConfig> ParseNodeConfig(std::string_view text, std::string_view file_path) {
  if (absl::Status s = consensus::CheckTomlUtf8(text, file_path); !s.ok()) return s;
  toml::table root;
  try {
    root = toml::parse(text, file_path);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(Cat(Where(file_path, error.source()), "TOML syntax error: ",
                                          error.description()));
  }
  return ConfigReader(file_path).Read(root);
}

absl::StatusOr<NodeConfig> LoadNodeConfig(const std::string& file_path) {
  absl::StatusOr<std::string> content = storage::ReadFileToString(file_path, kMaxConfigBytes);
  if (!content.ok()) {
    if (absl::IsNotFound(content.status())) {
      return absl::NotFoundError(Cat(file_path, ": no such file (give the node's config with --config FILE)"));
    }
    return content.status();
  }
  return ParseNodeConfig(*content, file_path);
}

absl::Status ValidateNodeConfig(const NodeConfig& config) {
  const std::string where = config.config_file.empty() ? "" : Cat(config.config_file, ": ");
  for (auto [name, value] : {std::pair<std::string_view, const std::string*>{"database", &config.database_path},
                             {"key", &config.key_path},
                             {"policy", &config.policy_path}}) {
    if (value->empty()) return absl::InvalidArgumentError(Cat(where, "[node] ", name, " is not set"));
  }
  if (absl::Status s = CheckAddress("grpc", config.grpc_address, Exposure(config), where); !s.ok()) return s;
  if (absl::Status s = CheckAddress("http", config.http_address, Exposure(config), where); !s.ok()) return s;
  if (config.tls && (config.tls->cert.path.empty() || config.tls->key.path.empty())) {
    return absl::InvalidArgumentError(Cat(where, "[tls] needs both cert and key"));
  }
  for (auto [setting, value] : {std::pair<IntegerSetting, int64_t>{kMaxBatch, config.max_batch},
                                {kMaxStatusPaths, config.max_status_paths},
                                {kMaxStatusAnswerBytes, config.max_status_answer_bytes},
                                {kMaxMessageBytes, config.max_message_bytes},
                                {kVerifyThreads, config.verify_threads},
                                {kRpcThreads, config.rpc_threads},
                                {kHttpThreads, config.http_threads},
                                {kHttpJobThreads, config.http_job_threads},
                                {kHttpMaxConnections, config.http_max_connections},
                                {kHttpMaxConnectionsPerIp, config.http_max_connections_per_ip},
                                {kHttpIdleTimeout, config.http_idle_timeout_seconds},
                                {kHttpRequestHeadTimeout, config.http_request_head_timeout_seconds}}) {
    if (absl::Status s = CheckInteger(setting, value, where); !s.ok()) return s;
  }
  if (absl::Status s = CheckCheckpointInterval(config.checkpoint_interval, Cat(where, "[log] ")); !s.ok()) {
    return s;
  }
  if (config.gateway) {
    const GatewayConfig& gateway = *config.gateway;
    const std::string gateway_where = Cat(where, "[gateway] ");
    if (config.http_address.empty()) {
      return absl::InvalidArgumentError(Cat(gateway_where, "needs the HTTP port, but [node] http is \"\""));
    }
    if (!gateway.upstream.empty()) {
      if (absl::Status s = CheckUpstream(gateway.upstream, gateway_where); !s.ok()) return s;
    }
    for (auto [setting, value] : {std::pair<IntegerSetting, int64_t>{kPriority, gateway.priority},
                                  {kPositiveTtl, gateway.positive_ttl_seconds},
                                  {kNegativeTtl, gateway.negative_ttl_seconds},
                                  {kFailureTtl, gateway.failure_ttl_seconds},
                                  {kCacheEntries, gateway.cache_entries},
                                  {kUpstreamTimeout, gateway.upstream_timeout_seconds},
                                  {kNarStreams, gateway.nar_streams},
                                  {kNarCacheMib, gateway.nar_cache_mib},
                                  {kMaxNarMib, gateway.max_nar_mib},
                                  {kNarFetches, gateway.nar_fetches},
                                  {kSourceTimeout, gateway.source_timeout_seconds},
                                  {kNarTransferTimeout, gateway.nar_transfer_timeout_seconds},
                                  {kNarStallTimeout, gateway.nar_stall_timeout_seconds}}) {
      if (absl::Status s = CheckInteger(setting, value, gateway_where); !s.ok()) return s;
    }
    if (gateway.max_nar_mib > gateway.nar_cache_mib) {
      return absl::InvalidArgumentError(Cat(gateway_where, "max_nar_mib (", gateway.max_nar_mib,
                                            ") is larger than nar_cache_mib (", gateway.nar_cache_mib,
                                            "): a NAR is relayed through the cache, so it must fit in it"));
    }
  }
  for (size_t i = 0; i < config.sources.size(); ++i) {
    const NarSourceConfig& source = config.sources[i];
    const std::string source_where = Cat(where, "[[source]] ", i + 1, " ");
    absl::StatusOr<std::string> url = consensus::ValidateCacheUrl(source.url);
    if (!url.ok()) return absl::InvalidArgumentError(Cat(source_where, "url: ", StdView(url.status().message())));
    if (*url != source.url) {
      return absl::InvalidArgumentError(Cat(source_where, "url ", Quoted(source.url), " is not normalised (write ",
                                            Quoted(*url), ")"));
    }
    if (absl::Status s = CheckInteger(kSourcePriority, source.priority, source_where); !s.ok()) return s;
    for (size_t j = 0; j < i; ++j) {
      if (config.sources[j].url == source.url) {
        return absl::InvalidArgumentError(
            Cat(source_where, "has the url of [[source]] ", j + 1, ", ", Quoted(source.url), " (list each source once)"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace attest::server
