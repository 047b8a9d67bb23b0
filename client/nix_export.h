// Handing derivations to Nix: the `nix-store --export` format written natively, and `nix-store` run as
// a child process (import, validity queries, builds).
//
// Export format (Nix 2.8 Store::exportPaths / exportPath, read back by `nix-store --import`):
//
//   for each path, every path after the paths it references:
//     u64 1
//     the NAR of the path              (client/nar.h; here always one regular, non-executable file)
//     u64 0x4558494e                   ("NIXE", the export magic)
//     str(store path)
//     u64 n, then n × str(reference)   (a .drv's references: its input derivations and input sources)
//     str(deriver)                     ("" for a .drv)
//     u64 0
//   u64 0                              (no more paths)
//
//   u64 = 8 bytes little-endian; str(s) = u64 length, the bytes, zero padding to a multiple of 8.
// `nix-store --import` recomputes the NAR hash and size from the bytes, requires every reference to be
// valid in the store or earlier in the stream, and (for a local store) does not ask for signatures.
//
// `nix-store` is looked up in PATH and runs with this process's environment (NIX_CONF_DIR, NIX_CONFIG
// and the rest reach it unchanged), stdin fed from memory, stdout and stderr collected, in a process
// group of its own. A run past its timeout (or cancelled) gets SIGTERM, so that Nix stops its builders
// (sandboxed builders live in PID namespaces that a signal to the group does not reach), and SIGKILL
// to the group if it has not exited 10 s later.
//
// Thread-safe: no shared state; concurrent runs are independent processes.
#ifndef ATTEST_CLIENT_NIX_EXPORT_H_
#define ATTEST_CLIENT_NIX_EXPORT_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/store_path.h"

namespace attest::client {

inline constexpr uint64_t kNixExportMagic = 0x4558494e;

// A text file to put into the store (a .drv), with what its store entry records.
struct ExportedFile final {
  consensus::StorePath path;
  std::string contents;
  std::vector<consensus::StorePath> references;  // any order; written sorted
  std::string deriver;                           // "" for a .drv
};

// The NAR of a single regular, non-executable file with these contents (what `nix-store --dump`
// writes for such a file).
std::string RegularFileNar(std::string_view contents);

// The export stream of `files`, written in the order given: the caller puts every file after the
// files it references (an order `nix-store --import` accepts).
std::string WriteNixExport(const std::vector<ExportedFile>& files);

// How a `nix-store` run ended.
struct NixStoreRun final {
  int exit_code = -1;  // -1 when it ended by a signal
  std::string out;     // stdout, whole
  std::string err;     // stderr, at most the last kMaxNixStderrBytes
};
inline constexpr size_t kMaxNixStderrBytes = size_t{256} << 10;

struct NixStoreRunOptions final {
  std::string input;                        // fed to stdin (then closed)
  absl::Duration timeout = absl::Hours(3);  // stopped (see the file comment) after this
  // Asked about every 200 ms while it runs (may be empty); true stops it as a timeout does (CANCELLED).
  std::function<bool()> cancelled;
};

// Runs `nix-store <args...>`. A run that exits non-zero is returned (not an error): callers read its
// stderr. Errors: UNAVAILABLE "nix-store not found in PATH" (install Nix), RESOURCE_EXHAUSTED no pipe
// or process, DEADLINE_EXCEEDED killed at the timeout, CANCELLED when `cancelled` said so.
absl::StatusOr<NixStoreRun> RunNixStore(const std::vector<std::string>& args, const NixStoreRunOptions& options);

// Nix's last error line (the last line starting "error: ", else the last non-empty line), without the
// "error: " prefix or terminal colour codes; when it follows a build's log, with the builder's last
// log line appended as " (last log line: ...)". Trimmed to `max_bytes` at a UTF-8 boundary: the
// one-line reason of a failed build.
std::string LastNixErrorLine(std::string_view err, size_t max_bytes);

// `--store STORE`, or nothing for Nix's default store.
std::vector<std::string> StoreArgs(const std::string& store);

// The paths among `paths` that are not valid in the store (`nix-store --check-validity
// --print-invalid`). UNKNOWN with Nix's last error line when nix-store fails; errors of RunNixStore.
absl::StatusOr<std::vector<consensus::StorePath>> InvalidPaths(const std::string& store,
                                                               const std::vector<consensus::StorePath>& paths);

// `nix-store --import` of WriteNixExport(files). UNKNOWN with Nix's last error line when Nix refuses
// it; errors of RunNixStore.
absl::Status ImportIntoStore(const std::string& store, const std::vector<ExportedFile>& files);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_NIX_EXPORT_H_
