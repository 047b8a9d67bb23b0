#include "client/hook.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/builder_config.h"
#include "client/nix_store_location.h"
#include "client/spool.h"
#include "consensus/derivation.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "storage/files.h"

namespace attest::client {
namespace {

using consensus::Cat;
using consensus::Derivation;
using consensus::DerivationOutput;
using consensus::QuoteForError;
using consensus::StorePath;

constexpr std::string_view kNotAffected = "the build is not affected; run `attest push --scan` later to attest it";

// A derivation is kilobytes, rarely megabytes (a large environment); the bound only keeps a wrong
// file from being read into memory.
constexpr size_t kMaxDerivationBytes = 256 << 20;

// Reads the derivation with plain syscalls (the hook's time budget is a few milliseconds).
absl::StatusOr<std::string> ReadDerivationFile(const std::string& path) {
  absl::StatusOr<std::string> text = storage::ReadFileToString(path, kMaxDerivationBytes);
  if (text.ok()) return text;
  const absl::Status& status = text.status();
  const bool unopened = absl::IsNotFound(status) || absl::IsPermissionDenied(status);
  return absl::Status(status.code(), Cat(unopened ? "cannot open " : "cannot read ", status.message()));
}

// One output the hook will queue.
struct BuiltOutput final {
  std::string name;  // empty when it cannot be told
  // nullopt for a floating content-addressed or deferred output Nix did not list: `attest push` reads
  // its path from the realisation Nix registered (the hook does no lookups of its own).
  std::optional<StorePath> path;
};

// The built outputs: from OUT_PATHS when Nix filled it (2.8.1 and later; 2.8.0 only for the original of
// a resolved CA derivation), else every output of the .drv (Nix 2.8.0 leaves OUT_PATHS empty,
// NixOS/nix#6446): those with a path in the .drv, and the floating content-addressed and deferred ones
// without a path (Nix 2.8.0 runs the hook for a CA derivation, and for the resolved derivation of one
// with CA inputs, with OUT_PATHS empty).
std::vector<BuiltOutput> BuiltOutputs(const Derivation& drv, std::string_view out_paths,
                                      std::vector<std::string>& notes) {
  std::vector<BuiltOutput> built;
  std::vector<std::string_view> listed;
  for (std::string_view rest = out_paths; !rest.empty();) {
    const size_t space = rest.find_first_of(" \t\n");
    if (space != 0) listed.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  if (listed.empty()) {
    for (const DerivationOutput& output : drv.outputs) {
      built.push_back({output.name, output.path});
    }
    return built;
  }
  for (std::string_view text : listed) {
    absl::StatusOr<StorePath> path = StorePath::Parse(text);
    if (!path.ok()) {
      notes.push_back(Cat("OUT_PATHS entry ", QuoteForError(text), " skipped: ", path.status().message()));
      continue;
    }
    std::string name;
    for (const DerivationOutput& output : drv.outputs) {
      if (output.path == *path) name = output.name;
    }
    if (name.empty()) {
      // A floating CA output's path is not in the .drv; Nix names it after the derivation and output.
      int matches = 0;
      for (const DerivationOutput& output : drv.outputs) {
        if (!output.path && drv.OutputPathName(output.name) == path->name()) {
          name = output.name;
          ++matches;
        }
      }
      if (matches != 1) {
        name.clear();
        notes.push_back(Cat(path->full(), " is not an output the .drv names; queued without an output name"));
      }
    }
    built.push_back({std::move(name), *std::move(path)});
  }
  return built;
}

// `attest rebuild` leaves <spool>/.rebuilding/<drv base name> holding the build kind before it builds a
// wanted derivation, so that the records made here carry that kind (and the path is spooled once).
struct RebuildMarker final {
  std::string path;  // empty when there is none
  std::string kind;  // "rebuild" or "check"
};

RebuildMarker ReadRebuildMarker(const std::string& spool_dir, const StorePath& drv_path,
                                const std::function<void(std::string_view)>& say) {
  const std::string path = Cat(spool_dir, "/.rebuilding/", drv_path.base_name());
  absl::StatusOr<std::string> text = storage::ReadFileToString(path, 64);
  if (!text.ok()) {
    if (!absl::IsNotFound(text.status())) say(Cat("warning: rebuild marker ", text.status().message(), "; ignored"));
    return {};
  }
  std::string kind = *text;
  while (!kind.empty() && (kind.back() == '\n' || kind.back() == ' ')) kind.pop_back();
  if (kind != "rebuild" && kind != "check") {
    say(Cat("warning: rebuild marker ", path, " holds ", QuoteForError(kind),
            ", not rebuild or check; queued as a first build"));
    return {};
  }
  return {path, kind};
}

}  // namespace

void QueueBuiltOutputs(std::string_view config_flag, const EnvLookup& var, std::ostream& log) {
  auto say = [&](std::string_view message) { log << "attest hook: " << message << "\n"; };
  // Every failure ends here: logged, and nothing else (the caller exits 0 so Nix carries on).
  auto give_up = [&](std::string_view problem) { say(Cat(problem, "; ", kNotAffected)); };

  const std::string drv_text = var("DRV_PATH").value_or("");
  if (drv_text.empty()) {
    return give_up(
        "DRV_PATH is not set: nothing to queue (Nix sets it when it runs its post-build-hook; run by hand, set "
        "DRV_PATH to the .drv that was built)");
  }
  absl::StatusOr<StorePath> drv_path = StorePath::Parse(drv_text);
  if (drv_path.ok() && !drv_path->IsDerivation()) {
    drv_path = absl::InvalidArgumentError(Cat(drv_text, " does not end in .drv"));
  }
  if (!drv_path.ok()) return give_up(Cat("DRV_PATH is not a derivation path: ", drv_path.status().message()));

  absl::StatusOr<std::string> config_path =
      BuilderConfigPath(config_flag, var("ATTEST_BUILDER_CONFIG").value_or(""));
  if (!config_path.ok()) return give_up(Cat(drv_text, " not queued: ", config_path.status().message()));
  absl::StatusOr<BuilderConfig> config = LoadBuilderConfig(*config_path);
  if (!config.ok()) return give_up(Cat(drv_text, " not queued: ", config.status().message()));

  std::error_code ec;
  const std::filesystem::path working_dir = std::filesystem::current_path(ec);
  absl::StatusOr<NixStoreLocation> store = NixStoreLocationFromEnvironment(var, ec ? "/" : working_dir.string());
  if (!store.ok()) return give_up(Cat(drv_text, " not queued: ", store.status().message()));

  const std::string drv_file = store->PhysicalPath(drv_path->full());
  absl::StatusOr<std::string> text = ReadDerivationFile(drv_file);
  if (!text.ok()) {
    return give_up(Cat(drv_text, " not queued: ", text.status().message(), " (store root ", store->root,
                       " from the store setting ", QuoteForError(store->uri), ")"));
  }
  absl::StatusOr<Derivation> drv = consensus::ParseDerivation(*text, drv_file);
  if (!drv.ok()) return give_up(Cat(drv_text, " not queued: ", drv.status().message()));

  std::vector<std::string> notes;
  const std::vector<BuiltOutput> built = BuiltOutputs(*drv, var("OUT_PATHS").value_or(""), notes);
  for (const std::string& note : notes) say(Cat(drv_text, ": ", note));
  if (built.empty()) return give_up(Cat(drv_text, ": no output to queue"));

  absl::StatusOr<Spool> spool = Spool::Open(config->spool_dir);
  if (!spool.ok()) return give_up(Cat(drv_text, " not queued: ", spool.status().message()));
  const RebuildMarker marker = ReadRebuildMarker(spool->dir(), *drv_path, say);
  bool all_queued = true;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  for (const BuiltOutput& output : built) {
    if (!output.path) {
      SpoolRecord record;
      record.drv_path = drv_path->full();
      record.output_name = output.name;
      record.build_kind = marker.kind;
      record.store_root = store->root;
      record.store_uri = store->uri;
      record.queued_at_unix_ms = now_ms;
      absl::StatusOr<std::string> id = spool->Add(record);
      if (!id.ok()) {
        say(Cat(drv_text, "^", output.name, " not queued: ", id.status().message(), "; ", kNotAffected));
        all_queued = false;
        continue;
      }
      say(Cat("queued ", output.name, " of ", drv_text,
              " (content-addressed: `attest push` takes its path from the realisation Nix registered)",
              marker.kind.empty() ? "" : Cat(" (", marker.kind, ")"), " in ", spool->dir(), " (", *id, ")"));
      continue;
    }
    const std::string physical = store->PhysicalPath(output.path->full());
    struct stat st {};
    if (lstat(physical.c_str(), &st) != 0) {
      // Queued anyway (a record is never dropped), but push will need the store root to be right.
      say(Cat("warning: ", output.path->full(), " is not at ", physical, " (", std::strerror(errno),
              "); queued anyway, but `attest push` reads it there (is the store root ", store->root, " right?)"));
    }
    SpoolRecord record;
    record.store_path = output.path->full();
    record.drv_path = drv_path->full();
    record.output_name = output.name;
    record.build_kind = marker.kind;
    record.store_root = store->root;
    record.store_uri = store->uri;
    record.queued_at_unix_ms = now_ms;
    absl::StatusOr<std::string> id = spool->Add(record);
    if (!id.ok()) {
      say(Cat(output.path->full(), " not queued: ", id.status().message(), "; ", kNotAffected));
      all_queued = false;
      continue;
    }
    say(Cat("queued ", output.name.empty() ? "?" : output.name, " ", output.path->full(),
            marker.kind.empty() ? "" : Cat(" (", marker.kind, ")"), " in ", spool->dir(), " (", *id, ")"));
  }
  // The marker is taken only when every output is queued; otherwise `attest rebuild` finds it after
  // the build and queues the outputs itself.
  if (!marker.path.empty() && all_queued && std::remove(marker.path.c_str()) != 0 && errno != ENOENT) {
    say(Cat("warning: cannot remove ", marker.path, " (", std::strerror(errno),
            "); `attest rebuild` may queue these outputs again, which is harmless"));
  }
}


void RunHookNeverFailing(std::string_view config_flag, const EnvLookup& var, std::ostream& log) {
  // Our code does not throw, but the standard library may (std::bad_alloc); the hook's contract is to
  // exit 0 regardless, so nothing may escape it.
  try {
    QueueBuiltOutputs(config_flag, var, log);
  } catch (const std::exception& e) {
    log << "attest hook: internal error: " << e.what() << "; " << kNotAffected << "\n";
  } catch (...) {
    log << "attest hook: internal error; " << kNotAffected << "\n";
  }
}

}  // namespace attest::client
