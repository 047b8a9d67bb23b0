// The builder's spool: a directory of small files, one per built store path waiting to be attested.
// `attest hook` adds records inside Nix's build loop (fast, never blocking on the network);
// `attest push` reads them, signs and submits, and removes a record only after every node acknowledged
// it. The spool is the hand-off that makes a dead node, network or pusher lose nothing.
//
// On disk: `<dir>/<id>.json`, added as `<dir>/.tmp-<id>-<pid>-<n>-<t>` + fsync + link + fsync(dir),
// replaced by storage::WriteFileAtomically (`<dir>/.<id>.json.tmp-...` + fsync + rename +
// fsync(dir)), so a record is either whole or absent, and Add returns only once it is durable. The id
// is `<hash part of the store path>-<12 hex digits of SHA-256 of the store root>`, so adding the same path
// of the same store twice keeps one record (idempotent). Files that do not parse are reported by List,
// never deleted silently. Names starting with '.' are not records: temp files (one left behind by a
// crash mid-write is ignored and may be deleted), and `attest push`'s ledger and lock (client/pusher.h).
//
// Record (JSON object, version 1):
//   {"version": 1, "storePath": "/nix/store/...-hello", "drvPath": "/nix/store/...-hello.drv",
//    "outputName": "out", "buildKind": "", "storeRoot": "/", "storeUri": "", "queuedAt": 1764000000000,
//    "acknowledgedBy": ["127.0.0.1:7700"], "attempts": 0, "lastError": ""}
//
// A derivation output whose path Nix did not tell the hook (a floating content-addressed output; Nix
// 2.8.0 runs the hook with OUT_PATHS empty) is a record with "storePath": "" and both "drvPath" and
// "outputName" set; `attest push` finds its path in the realisation Nix registered. Its id is the
// .drv's hash part and 12 hex digits of SHA-256 of the store root and the output name. Records
// written before this form all have a storePath and read as before.
//
// Safe for one hook process and one pusher at a time per record: every change is an atomic rename.
#ifndef ATTEST_CLIENT_SPOOL_H_
#define ATTEST_CLIENT_SPOOL_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace attest::client {

struct SpoolRecord final {
  // the built output, as Nix names it ("/nix/store/<hash>-<name>"); empty when not known yet (a floating
  // content-addressed output: drv_path and output_name say which, its realisation gives the path)
  std::string store_path;
  std::string drv_path;     // the derivation that built it; empty when unknown (push --scan)
  std::string output_name;  // "out", "dev", ...; empty when unknown
  // How it was built, when not a first build: "rebuild" (`attest rebuild` built a wanted path) or
  // "check" (`nix-store --realise --check` built it again and Nix found the same bytes; such a record
  // is attested even though the path is not `ultimate`, since the check itself was a local build).
  // "" = a first build. Written only when not empty.
  std::string build_kind;
  // Where the store's files live on this machine: "/" for the system store; the directory of a chroot
  // store (`--store /some/dir` or `local?root=/some/dir`). The path's files are at
  // <storeRoot><storePath> and its database at <storeRoot>/nix/var/nix/db/db.sqlite.
  std::string store_root = "/";
  std::string store_uri;  // the `store` setting Nix ran with, as given (may be empty)
  int64_t queued_at_unix_ms = 0;
  std::vector<std::string> acknowledged_by;  // node addresses that acknowledged the attestation
  // Push failures recorded so far. A failure that repeats the recorded one is not written again, so a
  // node that stays down does not make every retry rewrite every record.
  int64_t attempts = 0;
  std::string last_error;  // the latest push failure, for people to read

  friend bool operator==(const SpoolRecord&, const SpoolRecord&) = default;
};

// A record file's contents (JSON, version 1), as List reads them. DATA_LOSS naming the problem for a
// torn or foreign file or an invalid record; FAILED_PRECONDITION for a record of another version.
absl::StatusOr<SpoolRecord> ParseSpoolRecord(std::string_view text);
// The file contents Add and Update write; ParseSpoolRecord gives back the record (with store_root
// normalised).
std::string SerialiseSpoolRecord(const SpoolRecord& record);

struct SpoolEntry final {
  std::string id;  // file name without ".json"
  SpoolRecord record;
};

struct SpoolListing final {
  std::vector<SpoolEntry> entries;  // sorted by queued_at, then id
  std::vector<std::string> errors;  // "<file>: <problem>" for files that do not parse
};

class Spool final {
 public:
  // Opens (creating with mode 0700 if missing) the spool directory. FAILED_PRECONDITION naming the
  // directory when it cannot be created or is not a directory.
  static absl::StatusOr<Spool> Open(std::string dir);

  const std::string& dir() const { return dir_; }

  // The id a record gets: stable for (store_root, store_path), or (store_root, drv_path, output_name)
  // when store_path is empty.
  static std::string IdFor(const SpoolRecord& record);

  // Adds the record durably; returns its id. An existing record for the same path is left as it is
  // (it may carry acknowledgements). INVALID_ARGUMENT when store_path or a non-empty drv_path is not a
  // store path, or store_root is not absolute; RESOURCE_EXHAUSTED when the disk is full;
  // FAILED_PRECONDITION when the directory may not be written; UNAVAILABLE for other I/O errors.
  absl::StatusOr<std::string> Add(const SpoolRecord& record);
  // Replaces the record with that id durably (push uses it to note acknowledgements and failures).
  // NOT_FOUND when the record is gone (it is not recreated); INVALID_ARGUMENT for an id that is not a
  // record id or an invalid record; I/O errors as Add.
  absl::Status Update(std::string_view id, const SpoolRecord& record);
  // Removes the record (durably: fsync of the directory). Removing an absent id is OK.
  absl::Status Remove(std::string_view id);
  // Every record, and a "<file>: <problem>" line for each `*.json` file that is not a valid record
  // (torn, foreign, or written by a newer attest). FAILED_PRECONDITION / UNAVAILABLE when the directory
  // cannot be read.
  absl::StatusOr<SpoolListing> List() const;

 private:
  explicit Spool(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace attest::client

#endif  // ATTEST_CLIENT_SPOOL_H_
