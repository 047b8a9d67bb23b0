// NixStoreDb: a read-only view of a Nix store's own SQLite database, <root>/nix/var/nix/db/db.sqlite,
// for the builder side (`attest push` reads narHash, narSize, references and `ultimate` from it).
//
// Nix's schema (version 10, unchanged from Nix 2.0 to at least 2.35):
//   ValidPaths(id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca)
//   Refs(referrer, reference)          -- ValidPaths ids; a self-reference is a row too
// With the experimental feature ca-derivations (Nix 2.8 src/libstore/ca-specific-schema.sql; created
// only when the feature is on, so absent in most stores):
//   Realisations(id, drvPath, outputName, outputPath, signatures)
//                                      -- drvPath holds "sha256:<hex>" (the realisation key's hash, not
//                                         a path); outputPath is a ValidPaths id
//   RealisationsRefs(referrer, realisationReference)   -- Realisations ids: dependent realisations
// `hash` is "sha256:<base16>" as written by Nix 2.8 (older Nix wrote other encodings; every form
// consensus::NarHash parses is accepted). `ultimate` is 1 for paths built on this machine and NULL for
// substituted or copied ones; `sigs` is space-separated.
//
// Never writes Nix's database, and avoids leaving files next to it: Nix keeps it in WAL mode, and a
// plain SQLITE_OPEN_READONLY connection to a WAL database creates -wal and -shm files when they are
// missing (and cannot remove them again, being read-only). So each read is one snapshot taken in one
// of two ways:
//   - no -wal file: no Nix process has the database open and everything is in the main file. It is
//     read with `immutable=1` (no locks, no -wal/-shm), and the file's identity (device, inode, size,
//     mtime, ctime) and the absence of -wal are checked again afterwards; if anything changed (Nix
//     wrote meanwhile), the read is repeated.
//   - a -wal file: Nix has it open (or crashed with it open); a normal read-only connection reads
//     through the WAL with the usual locking and `busy_timeout`, using the -shm that Nix made.
// After `max_snapshot_attempts` changed snapshots it falls back to the normal read-only connection.
//
// Thread-compatible: one caller at a time per object; objects for the same store are independent.
#ifndef ATTEST_CLIENT_NIX_STORE_DB_H_
#define ATTEST_CLIENT_NIX_STORE_DB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"

namespace attest::client {

// What Nix's database says about one valid path.
struct NixStorePathInfo final {
  consensus::StorePath path;
  std::optional<consensus::NarHash> nar_hash;  // absent only when the row holds no usable hash
  uint64_t nar_size = 0;                       // 0 when the row has none (very old Nix)
  std::vector<consensus::StorePath> references;  // sorted; includes a self-reference
  std::string deriver;                           // full .drv path, or empty
  bool ultimate = false;                         // built on this machine (not substituted)
  int64_t registration_time = 0;                 // seconds since the epoch
  std::vector<std::string> signatures;           // the `sigs` column, split
  std::string ca;                                // content-address assertion, or empty

  // The claim an attestation signs. FAILED_PRECONDITION when the row lacks the NAR hash or size (the
  // caller can hash the path's files instead); INVALID_ARGUMENT when it does not make a valid claim
  // (e.g. more than consensus::kMaxReferences references).
  absl::StatusOr<consensus::PathInfo> Claim() const;
};

// A path Nix marks as built here (`ultimate`).
struct NixBuiltPath final {
  consensus::StorePath path;
  std::string deriver;  // full .drv path, or empty
  int64_t registration_time = 0;
};

// A realisation Nix registered (Realisations and RealisationsRefs).
struct NixRealisation final {
  std::string drv_hash;     // the 64 lower-case hex digits of "sha256:<hex>"
  std::string output_name;  // "out", ...
  consensus::StorePath out_path;
  // Dependent realisations: ("sha256:<hex>!<output>", output path), sorted by key, unique.
  std::vector<std::pair<std::string, consensus::StorePath>> dependent;
  std::vector<std::string> signatures;  // the `signatures` column, split
};

// Which realisation to look up: the hex of its derivation's hash and the output name.
struct NixRealisationId final {
  std::string drv_hash;
  std::string output_name;
  friend auto operator<=>(const NixRealisationId&, const NixRealisationId&) = default;
};

struct NixStoreDbOptions final {
  // How long to wait for a lock Nix holds (only for the WAL read; see the file comment).
  absl::Duration busy_timeout = absl::Seconds(5);
  // Immutable snapshots to try before using a normal read-only connection.
  int max_snapshot_attempts = 5;
};

class NixStoreDb final {
 public:
  // <store_root>/nix/var/nix/db/db.sqlite ("/" is the system store).
  static std::string DatabasePath(std::string_view store_root);

  // Checks that the database exists and looks like Nix's (the ValidPaths and Refs tables). NOT_FOUND
  // when there is no database ("is <root> a Nix store root?"); FAILED_PRECONDITION when it cannot be
  // read (permissions) or is not a Nix store database; DATA_LOSS when it is corrupt.
  static absl::StatusOr<std::unique_ptr<NixStoreDb>> Open(std::string store_root, NixStoreDbOptions options = {});

  const std::string& store_root() const { return store_root_; }
  const std::string& database_path() const { return database_path_; }

  // One path. NOT_FOUND when the path is not valid in this store (never built or substituted here,
  // or garbage-collected); DATA_LOSS when its row is malformed; UNAVAILABLE when Nix holds the
  // database locked past the busy timeout; other codes as Open.
  absl::StatusOr<NixStorePathInfo> PathInfo(const consensus::StorePath& path);

  // Several paths in one snapshot: one result per input, in order (NOT_FOUND / DATA_LOSS per path as
  // PathInfo). The outer status fails only when the database cannot be read at all.
  absl::StatusOr<std::vector<absl::StatusOr<NixStorePathInfo>>> PathInfos(
      std::span<const consensus::StorePath> paths);

  // The realisations registered for `ids`, in one snapshot: one result per input, in order; nullopt
  // when none is registered (also when the store has no Realisations table: ca-derivations was never
  // enabled). The outer status fails when the database cannot be read, or DATA_LOSS when a row is
  // malformed (a hash that is not "sha256:<64 hex>", an output path that is not a store path).
  absl::StatusOr<std::vector<std::optional<NixRealisation>>> Realisations(std::span<const NixRealisationId> ids);

  // True when the store has any realisation (a cheap check before computing derivation hashes).
  absl::StatusOr<bool> HasRealisations();

  // Every valid path marked `ultimate`, in registration order. Rows whose path is not a store path
  // under /nix/store are skipped (counted in `skipped` when given).
  absl::StatusOr<std::vector<NixBuiltPath>> BuiltPaths(size_t* skipped = nullptr);

 private:
  NixStoreDb(std::string store_root, std::string database_path, NixStoreDbOptions options)
      : store_root_(std::move(store_root)), database_path_(std::move(database_path)), options_(options) {}

  std::string store_root_;
  std::string database_path_;
  NixStoreDbOptions options_;
};

}  // namespace attest::client

#endif  // ATTEST_CLIENT_NIX_STORE_DB_H_
