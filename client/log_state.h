// What an auditor remembers about one node's transparency log between runs of `attest log verify`:
// the node key it pinned (given once with --node-key, never taken from the node) and the last
// checkpoint it verified. The next run checks that the log it is shown extends that checkpoint.
//
// On disk, one small JSON file per log (version 1):
//   {"version": 1,
//    "origin": "node-a",
//    "node_key": "node-a:<base64 of 32 bytes>",
//    "checkpoint": {"size": 12, "root": "<base64 of 32 bytes>", "note": "<the signed note>"}}
// The note is the evidence; size and root are there for people and scripts and must agree with it.
// ParseLogState re-verifies the note with the pinned key, so a state file whose fields were edited, or
// whose note is not signed by its key, is refused (DATA_LOSS) instead of being trusted.
//
// The default file is $XDG_STATE_HOME/attest/logs/<origin, '/' replaced by '_'>.json, or
// $HOME/.local/state/attest/logs/... when XDG_STATE_HOME is unset, empty or relative (XDG Base
// Directory rules). SaveLogState creates the directories and replaces the file atomically (temp
// file in the same directory, fsync, rename, fsync of the directory): a reader sees the old state or
// the new one, never a torn file.
//
// Value types and free functions; thread-compatible. Two auditors running at once on one state file
// do not corrupt it (each replaces it whole); the last one to finish wins.
#ifndef ATTEST_CLIENT_LOG_STATE_H_
#define ATTEST_CLIENT_LOG_STATE_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/checkpoint.h"
#include "consensus/keys.h"

namespace attest::client {

inline constexpr int kLogStateVersion = 1;

struct LogState final {
  consensus::PublicKey node_key;    // pinned; its name is the log's origin
  consensus::Checkpoint checkpoint;  // the last verified one (origin, size, root)
  std::string note;                  // that checkpoint's signed note, as the node served it
};

// Makes the state for a checkpoint note that verifies with `node_key` (consensus::VerifyCheckpoint).
// INVALID_ARGUMENT for a malformed note; UNAUTHENTICATED when it does not verify with the key.
absl::StatusOr<LogState> MakeLogState(const consensus::PublicKey& node_key, std::string_view note);

// The JSON text of the file comment, ending in '\n'.
std::string SerializeLogState(const LogState& state);

// Inverse of SerializeLogState. DATA_LOSS with what is wrong (not JSON, a missing or mistyped field,
// an unknown version, a key or note that does not parse, a note that does not verify with the key,
// fields that disagree with the note).
absl::StatusOr<LogState> ParseLogState(std::string_view text);

// Looks up an environment variable; nullopt when unset (CommandEnv::env_var).
using EnvLookup = std::function<std::optional<std::string>(std::string_view)>;

// "<origin with every '/' replaced by '_'>.json". Origins never contain control characters or
// white space (consensus::ValidateLogOrigin), so the result is one path component; the state file
// records the origin itself, so two origins that map to one name cannot be mistaken for each other.
std::string LogStateFileName(std::string_view origin);

// The default state file of the log `origin` (see the file comment). FAILED_PRECONDITION when neither
// an absolute XDG_STATE_HOME nor an absolute HOME is set (pass --state FILE then).
absl::StatusOr<std::string> DefaultLogStatePath(std::string_view origin, const EnvLookup& env_var);

// Reads the state file. nullopt when it does not exist (nothing pinned yet). DATA_LOSS naming the
// file when it is corrupt (ParseLogState), not a regular file, or implausibly large;
// PERMISSION_DENIED / UNAVAILABLE when it cannot be read.
absl::StatusOr<std::optional<LogState>> LoadLogState(const std::string& path);

// Replaces (or creates) the state file atomically, creating missing parent directories (mode 0700).
// FAILED_PRECONDITION when a directory cannot be created or written (permissions, a file in the
// way); RESOURCE_EXHAUSTED when the disk is full; UNAVAILABLE for other I/O errors. On error the
// previous file is left as it was.
absl::Status SaveLogState(const std::string& path, const LogState& state);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_LOG_STATE_H_
