#include "client/builder_config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <system_error>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

// The distro's toml++ is built with exceptions (see consensus/policy.cc); toml::parse_error is caught
// here and turned into a Status, so no exception leaves this file.
#include <toml++/toml.h>

#include "consensus/text.h"
#include "consensus/toml_text.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::QuoteForError;

constexpr std::string_view kExample =
    "key = \"/etc/nix/attest-builder.sec\", spool = \"/var/spool/attest\", nodes = [\"node1.example:7700\"]";

std::string Where(std::string_view file, const toml::source_region& region) {
  return consensus::TomlWhere(file, region);
}

// "" when `text` is a "host:port" a gRPC client can dial: a host name or IPv4 address, or an IPv6
// address in brackets, and a port from 1 to 65535, optionally after https:// (TLS) or http://.
// Otherwise what is wrong.
std::string NodeAddressProblem(std::string_view text) {
  for (std::string_view scheme : {"https://", "http://"}) {
    if (text.substr(0, scheme.size()) == scheme) {
      text.remove_prefix(scheme.size());
      break;
    }
  }
  if (text.empty()) return "is empty; give \"host:port\", e.g. \"127.0.0.1:7700\"";
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return "is not \"[IPv6 address]:port\", e.g. \"[::1]:7700\"";
    }
    host = text.substr(1, close - 1);
    in6_addr v6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) {
      return Cat("has ", QuoteForError(host), " in brackets, which is not an IPv6 address");
    }
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return "has no port; give \"host:port\", e.g. \"127.0.0.1:7700\"";
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.empty()) return "has no host; give \"host:port\", e.g. \"127.0.0.1:7700\"";
    if (host.find("://") != std::string_view::npos) {
      return "has an unknown scheme; give \"host:port\", or \"https://host:port\" for a node with TLS";
    }
    if (host.find(':') != std::string_view::npos) return "looks like an IPv6 address; write it as \"[::1]:7700\"";
    const bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
    });
    if (!host_ok) return Cat("has the host ", QuoteForError(host), ", which is not a host name or IPv4 address");
  }
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  const int number = digits ? std::stoi(std::string(port)) : 0;
  if (number < 1 || number > 65535) return Cat("has the port ", QuoteForError(port), "; give a number from 1 to 65535");
  return "";
}

// Resolves a path from the file against the directory the file is in.
std::string ResolvePath(std::string_view value, const std::filesystem::path& anchor_dir) {
  std::filesystem::path path{std::string(value)};
  if (path.is_absolute()) return path.lexically_normal().string();
  return (anchor_dir / path).lexically_normal().string();
}

absl::StatusOr<BuilderConfig> Parse(std::string_view text, std::string_view shown_path,
                                    const std::filesystem::path& anchor_dir) {
  if (absl::Status s = consensus::CheckTomlUtf8(text, shown_path); !s.ok()) return s;
  toml::table root;
  try {
    root = toml::parse(text, shown_path);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(Cat(Where(shown_path, error.source()), "TOML syntax error: ",
                                          error.description(), " (fix the syntax at this position)"));
  }
  BuilderConfig config;
  config.source = std::string(shown_path);
  bool have_key = false;
  bool have_spool = false;
  bool have_nodes = false;
  for (const auto& [key, node] : consensus::TomlEntriesInFileOrder(root)) {
    const std::string name(key->str());
    const std::string where = Where(shown_path, node->source());
    if (name == "key" || name == "spool" || name == "tls_ca") {
      const auto* value = node->as_string();
      if (value == nullptr) {
        return absl::InvalidArgumentError(Cat(where, name, " is ", consensus::TomlTypeName(*node),
                                              ", not a string (write the path in quotes)"));
      }
      if (value->get().empty()) {
        return absl::InvalidArgumentError(Cat(where, name, " is empty; give ",
                                              name == "key"     ? "the builder's Nix secret key file"
                                              : name == "spool" ? "the spool directory"
                                                                : "the PEM file of the nodes' CA (or remove tls_ca)"));
      }
      std::string resolved = ResolvePath(value->get(), anchor_dir);
      if (name == "tls_ca") {
        config.tls_ca_file = std::move(resolved);
      } else if (name == "key") {
        config.key_file = std::move(resolved);
        have_key = true;
      } else {
        config.spool_dir = std::move(resolved);
        have_spool = true;
      }
    } else if (name == "nodes") {
      const toml::array* array = node->as_array();
      if (array == nullptr) {
        return absl::InvalidArgumentError(Cat(where, "nodes is ", consensus::TomlTypeName(*node),
                                              ", not a list (write nodes = [\"host:port\", ...])"));
      }
      if (array->empty()) {
        return absl::InvalidArgumentError(
            Cat(where, "nodes is empty; list at least one node's gRPC address, e.g. nodes = [\"127.0.0.1:7700\"]"));
      }
      absl::flat_hash_set<std::string> seen;
      for (size_t i = 0; i < array->size(); ++i) {
        const toml::node& element = *array->get(i);
        const std::string element_where = Where(shown_path, element.source());
        const auto* address = element.as_string();
        if (address == nullptr) {
          return absl::InvalidArgumentError(Cat(element_where, "node ", i + 1, " of nodes is ",
                                                consensus::TomlTypeName(element),
                                                ", not a string (write \"host:port\" in quotes)"));
        }
        const std::string problem = NodeAddressProblem(address->get());
        if (!problem.empty()) {
          return absl::InvalidArgumentError(
              Cat(element_where, "node address ", QuoteForError(address->get()), " ", problem));
        }
        if (!seen.insert(address->get()).second) {
          return absl::InvalidArgumentError(
              Cat(element_where, "node address ", QuoteForError(address->get()), " is listed twice"));
        }
        config.nodes.push_back(address->get());
      }
      have_nodes = true;
    } else if (node->is_table()) {
      return absl::InvalidArgumentError(
          Cat(Where(shown_path, key->source()), "unknown table [",
              consensus::StdView(absl::CHexEscape(consensus::AbslView(name))),
              "] (a builder config has only key, spool and nodes (and optionally tls_ca), at the top level; e.g. ",
              kExample, ")"));
    } else {
      return absl::InvalidArgumentError(
          Cat(Where(shown_path, key->source()), "unknown key ", QuoteForError(name),
              " (a builder config has key, spool and nodes, and optionally tls_ca; e.g. ", kExample, ")"));
    }
  }
  for (auto [present, name, what] :
       {std::tuple{have_key, "key", "the builder's Nix secret key file: key = \"/etc/nix/attest-builder.sec\""},
        std::tuple{have_spool, "spool", "the spool directory: spool = \"/var/spool/attest\""},
        std::tuple{have_nodes, "nodes", "the nodes' gRPC addresses: nodes = [\"127.0.0.1:7700\"]"}}) {
    if (!present) {
      return absl::InvalidArgumentError(Cat(shown_path, ": ", name, " is missing; add ", what));
    }
  }
  return config;
}

}  // namespace

absl::StatusOr<BuilderConfig> ParseBuilderConfig(std::string_view text, std::string_view path) {
  return Parse(text, path, std::filesystem::path(std::string(path)).parent_path());
}

absl::StatusOr<BuilderConfig> LoadBuilderConfig(const std::string& path) {
  // A builder config is a few hundred bytes; the bound only keeps a wrong path from being read.
  constexpr size_t kMaxConfigBytes = 1 << 20;
  absl::StatusOr<std::string> content = storage::ReadFileToString(path, kMaxConfigBytes);
  if (!content.ok()) {
    switch (content.status().code()) {
      case absl::StatusCode::kNotFound:
        return absl::NotFoundError(
            Cat("builder config ", path, ": no such file (pass --config FILE or set ATTEST_BUILDER_CONFIG)"));
      case absl::StatusCode::kPermissionDenied:
        return absl::PermissionDeniedError(Cat("builder config ", path, ": permission denied (",
                                               "the hook runs as the user that runs the build, root with a daemon)"));
      case absl::StatusCode::kFailedPrecondition:  // a directory
        return absl::FailedPreconditionError(Cat("builder config ", path, ": is a directory, not a config file"));
      default:
        return absl::FailedPreconditionError(Cat("builder config ", content.status().message()));
    }
  }
  std::error_code ec;
  // Relative paths in the file are anchored at the file's directory, made absolute now so the hook (run
  // in Nix's working directory) and push (run anywhere) agree on them.
  const std::filesystem::path anchor = std::filesystem::absolute(std::filesystem::path(path), ec).parent_path();
  if (ec) return absl::FailedPreconditionError(Cat("builder config ", path, ": ", ec.message()));
  return Parse(*content, path, anchor);
}

absl::StatusOr<std::string> BuilderConfigPath(std::string_view flag, std::string_view env_value) {
  if (!flag.empty()) return std::string(flag);
  if (!env_value.empty()) return std::string(env_value);
  return absl::FailedPreconditionError(
      "no builder config: pass --config FILE or set ATTEST_BUILDER_CONFIG to the config file (TOML with key, "
      "spool and nodes)");
}

}  // namespace attest::client
