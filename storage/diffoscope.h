// Diffoscope: compares two trees (two unpacked NARs of one disputed store path) with Debian's
// `diffoscope`, which looks inside what differs (ELF sections, archives, compressed files, ...) and says
// why two builds are not byte-identical.
//
// The tool runs as a child process, started without a shell (posix_spawnp), stdin from /dev/null, in a
// process group of its own, with TMPDIR set to a fresh directory that is removed afterwards (diffoscope
// and its helpers unpack into it). It is bounded:
//   - time: at the deadline the whole group gets SIGKILL (helpers included) and the run is
//     DEADLINE_EXCEEDED; diffoscope is also asked (`--timeout`) to stop descending into containers
//     before that, so a large input usually yields a partial report rather than none;
//   - output: `--max-report-size` and `--max-text-report-size` make diffoscope cut its own reports, and
//     the text read from it is capped again here (the rest is read and dropped, so the child never
//     blocks on a full pipe).
// The command line is
//   diffoscope --no-progress --text - --text-color never --exclude-directory-metadata yes
//              --max-report-size N --max-text-report-size N [--html FILE --max-page-size N] [--timeout S]
//              -- A B
// (flags as in diffoscope 240, Debian 12).
//
// Thread-safe: RunDiffoscope keeps no state; concurrent runs are independent processes.
#ifndef ATTEST_STORAGE_DIFFOSCOPE_H_
#define ATTEST_STORAGE_DIFFOSCOPE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace attest::storage {

struct DiffoscopeOptions final {
  // The program: a name looked up in PATH, or a path. Tests put a stand-in here.
  std::string program = "diffoscope";
  absl::Duration time_limit = absl::Minutes(5);
  // Cap on the text report kept in DiffoscopeResult::text (and diffoscope's own --max-text-report-size).
  size_t max_text_bytes = size_t{1} << 20;
  // diffoscope's --max-report-size, which bounds the HTML report (and its page size).
  uint64_t max_report_bytes = uint64_t{4} << 20;
  // Where to write diffoscope's HTML report (self-contained, no JavaScript); empty: none. diffoscope
  // writes it only when the trees differ.
  std::string html_path;
  // Where the run's temporary directory is made; empty: $TMPDIR, else /tmp.
  std::string scratch_parent;
  // The directory diffoscope runs in; empty: this process's. Relative `a`, `b`, html_path (and a
  // program given as a relative path) are relative to it, and the reports name `a` and `b` as given,
  // so relative paths keep the caller's directories out of the reports.
  std::string working_directory;
  // Asked about every 200 ms while diffoscope runs (null: never); true stops the run: the process
  // group gets SIGKILL and the run is CANCELLED. For a caller that shuts down.
  std::function<bool()> cancelled;
};

enum class DiffoscopeVerdict { kSame, kDifferent };

struct DiffoscopeResult final {
  DiffoscopeVerdict verdict = DiffoscopeVerdict::kSame;  // exit status 0: same; 1: differences
  std::string text;                                      // the text report; empty when the same
  bool text_truncated = false;                           // more text than max_text_bytes was dropped
  std::string html_path;                                 // options.html_path when diffoscope wrote it
  absl::Duration elapsed;
};

// Compares `a` with `b` (directories or files).
//   UNAVAILABLE        the program is not installed ("install the Debian package diffoscope")
//   DEADLINE_EXCEEDED  killed at time_limit (the message says how long it ran)
//   UNKNOWN            diffoscope failed: exit status other than 0 or 1, or killed by a signal it was
//                      not sent here (the message carries the end of its stderr)
//   CANCELLED          options.cancelled said so (the process group was killed)
//   INVALID_ARGUMENT   `a` or `b` is empty
//   RESOURCE_EXHAUSTED no process, pipe or temporary directory could be made
absl::StatusOr<DiffoscopeResult> RunDiffoscope(const std::string& a, const std::string& b,
                                               const DiffoscopeOptions& options = {});

// The files diffoscope reports as differing, from its text report, relative to `b` (the second tree
// as it was given to RunDiffoscope), in report order: every "+++ B/..." heading whose path is inside
// `b`, minus directories that only contain other headings. Members of archives (paths that do not
// start with `b`) are not listed: their archive is. Files present on one side only appear in
// diffoscope's "file list" section and are not listed. A file that itself differs is "" when `b` is a
// file.
std::vector<std::string> DifferingFiles(std::string_view text, std::string_view b);

}  // namespace attest::storage

#endif  // ATTEST_STORAGE_DIFFOSCOPE_H_
