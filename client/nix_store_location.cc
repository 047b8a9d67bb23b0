#include "client/nix_store_location.h"

#include <filesystem>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "consensus/text.h"

namespace attest::client {
namespace {

using consensus::AbslView;
using consensus::Cat;
using consensus::QuoteForError;
using consensus::StdView;

constexpr std::string_view kStoreDir = "/nix/store";
constexpr std::string_view kStateDir = "/nix/var/nix";
constexpr std::string_view kUseLocal =
    "attest reads the store's files and database directly, so the hook must run in a local store: the "
    "system store or a chroot store (--store DIR)";

std::string_view Trim(std::string_view text) { return StdView(absl::StripAsciiWhitespace(AbslView(text))); }

// An absolute, normalised directory without a trailing slash ("/" stays "/").
std::string NormalDir(std::string_view dir, std::string_view working_dir) {
  std::filesystem::path path{std::string(dir)};
  if (path.is_relative()) path = std::filesystem::path(std::string(working_dir)) / path;
  std::string text = path.lexically_normal().string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text.empty() ? "/" : text;
}

absl::StatusOr<std::string> PercentDecode(std::string_view text, std::string_view uri) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) {
      return absl::InvalidArgumentError(
          Cat("store setting ", QuoteForError(uri), " has a malformed %-escape in its parameters"));
    }
    out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
    i += 2;
  }
  return out;
}

// "a=1&b=2" as Nix's decodeQuery reads it (a parameter without '=' is ignored, as there).
absl::StatusOr<std::map<std::string, std::string>> DecodeQuery(std::string_view query, std::string_view uri) {
  std::map<std::string, std::string> params;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    absl::StatusOr<std::string> name = PercentDecode(item.substr(0, eq), uri);
    if (!name.ok()) return name.status();
    absl::StatusOr<std::string> value = PercentDecode(item.substr(eq + 1), uri);
    if (!value.ok()) return value.status();
    params[*name] = *value;
  }
  return params;
}

// Refuses parameters that move the store's files or database away from <root>/nix/store and
// <root>/nix/var/nix, where `attest push` will look.
absl::Status CheckLayoutParams(const std::map<std::string, std::string>& params, const std::string& root,
                               std::string_view uri) {
  const std::string prefix = root == "/" ? "" : root;
  const std::map<std::string, std::string> defaults = {
      {"store", std::string(kStoreDir)},
      {"real", prefix + std::string(kStoreDir)},
      {"state", prefix + std::string(kStateDir)},
  };
  for (const auto& [name, expected] : defaults) {
    auto it = params.find(name);
    if (it == params.end() || NormalDir(it->second, "/") == expected) continue;
    return absl::FailedPreconditionError(
        Cat("store setting ", QuoteForError(uri), " moves the store with ?", name, "=",
            QuoteForError(it->second), ", which attest does not support: it expects the store's files at ",
            prefix, kStoreDir, " and its database under ", prefix, kStateDir,
            " (use --store DIR or local?root=DIR without ?", name, "=)"));
  }
  return absl::OkStatus();
}

// The scheme when `uri` is a URL as Nix's parseURL reads it ("ssh://host", "file:///x", "unix:///socket"),
// nullopt for the other forms (paths, "local?root=...", "daemon", ...).
std::optional<std::string_view> UrlScheme(std::string_view uri) {
  if (uri.empty() || !absl::ascii_isalpha(static_cast<unsigned char>(uri[0]))) return std::nullopt;
  for (size_t i = 1; i < uri.size(); ++i) {
    const char c = uri[i];
    if (c == ':') return uri.substr(0, i);
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') break;
  }
  return std::nullopt;
}

}  // namespace

std::string NixStoreLocation::PhysicalPath(std::string_view store_path) const {
  if (root == "/") return std::string(store_path);
  return Cat(root, store_path);
}

std::optional<std::string> NixConfigValue(std::string_view nix_config, std::string_view name) {
  std::optional<std::string> value;
  while (!nix_config.empty()) {
    const size_t newline = nix_config.find('\n');
    std::string_view line = nix_config.substr(0, newline);
    nix_config = newline == std::string_view::npos ? std::string_view() : nix_config.substr(newline + 1);
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    if (Trim(line.substr(0, eq)) != name) continue;
    value = std::string(Trim(line.substr(eq + 1)));
  }
  return value;
}

absl::StatusOr<std::string> StoreRootForUri(std::string_view uri, std::string_view working_dir) {
  const std::string_view trimmed = Trim(uri);
  const std::optional<std::string_view> scheme = UrlScheme(trimmed);
  std::string_view base = trimmed;
  std::string_view query;
  if (const size_t q = trimmed.find('?'); q != std::string_view::npos) {
    base = trimmed.substr(0, q);
    query = trimmed.substr(q + 1);
  }
  absl::StatusOr<std::map<std::string, std::string>> params = DecodeQuery(query, uri);
  if (!params.ok()) return params.status();

  std::string root;
  if (scheme) {
    if (*scheme != "unix") {
      return absl::FailedPreconditionError(Cat("the hook runs in the store ", QuoteForError(uri), " (a ", *scheme,
                                               ": store), not a local one; ", kUseLocal));
    }
    // unix://<socket>: the daemon's store, the system store unless ?root= says otherwise.
    root = params->count("root") ? NormalDir(params->at("root"), working_dir) : "/";
  } else if (base.empty() || base == "auto" || base == "daemon" || base == "local") {
    root = params->count("root") ? NormalDir(params->at("root"), working_dir) : "/";
  } else if (base.find('/') != std::string_view::npos) {
    // A path, as `--store DIR` gives: a local store rooted there (Nix ignores ?root= then).
    root = NormalDir(base, working_dir);
  } else {
    return absl::FailedPreconditionError(
        Cat("the hook runs in the store ", QuoteForError(uri), ", which is not a store type attest knows; ",
            kUseLocal));
  }
  if (absl::Status s = CheckLayoutParams(*params, root, uri); !s.ok()) return s;
  return root;
}

absl::StatusOr<NixStoreLocation> NixStoreLocationFromEnvironment(const EnvLookup& env,
                                                                 std::string_view working_dir) {
  if (std::optional<std::string> store_dir = env("NIX_STORE_DIR");
      store_dir && !store_dir->empty() && NormalDir(*store_dir, "/") != kStoreDir) {
    return absl::FailedPreconditionError(
        Cat("NIX_STORE_DIR is ", QuoteForError(*store_dir), ": attest handles only stores whose store directory is ",
            kStoreDir, " (the one binary caches and every attestation name); unset NIX_STORE_DIR"));
  }
  NixStoreLocation location;
  std::optional<std::string> uri = NixConfigValue(env("NIX_CONFIG").value_or(""), "store");
  if (!uri) uri = env("NIX_REMOTE");
  location.uri = uri.value_or("");
  absl::StatusOr<std::string> root = StoreRootForUri(location.uri, working_dir);
  if (!root.ok()) return root.status();
  location.root = *std::move(root);
  if (location.root == "/") {
    // Only the system store takes its database location from NIX_STATE_DIR; a chroot store's is fixed.
    if (std::optional<std::string> state_dir = env("NIX_STATE_DIR");
        state_dir && !state_dir->empty() && NormalDir(*state_dir, "/") != kStateDir) {
      return absl::FailedPreconditionError(
          Cat("NIX_STATE_DIR is ", QuoteForError(*state_dir), ": attest reads the system store's database under ",
              kStateDir, "; unset NIX_STATE_DIR or use a chroot store (--store DIR)"));
    }
  }
  return location;
}

}  // namespace attest::client
