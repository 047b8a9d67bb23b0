// Helpers shared by the benchmarks: start a real attestd with a generated config, read its address,
// sample its memory, and stop it. Benchmarks print figures; they assert nothing.
#ifndef ATTEST_BENCH_BENCH_SUPPORT_H_
#define ATTEST_BENCH_BENCH_SUPPORT_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "consensus/keys.h"
#include "consensus/store_path.h"

namespace attest::bench {

// Key with a deterministic seed derived from `name` (benchmarks must be repeatable).
consensus::SecretKey BenchKey(const std::string& name);

// A valid store path whose hash part is derived from (tag, index); `suffix` goes after the name.
consensus::StorePath BenchStorePath(const std::string& tag, uint64_t index, const std::string& suffix = "");

// Writes policy.toml (one operator per builder, quorum k) and node.toml into `dir`.
void WriteNodeFiles(const std::string& dir, const std::vector<std::string>& builder_public_keys, int quorum,
                    const std::string& database_path);

class NodeProcess final {
 public:
  // Starts `attestd --config <dir>/node.toml`, waits up to 60 s for its gRPC address. Exits the
  // benchmark with a message when it does not start.
  NodeProcess(const std::string& attestd, const std::string& dir);
  ~NodeProcess();  // SIGTERM, then waits
  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // VmRSS and VmHWM in KiB, from /proc.
  long ResidentKiB() const;
  long PeakResidentKiB() const;
  // User plus system CPU seconds the process has used so far (from /proc/<pid>/stat, 10 ms ticks).
  // On a busy machine this is steadier than wall time.
  double CpuSeconds() const;

 private:
  pid_t pid_ = -1;
  std::string address_;
};

double SecondsSince(std::chrono::steady_clock::time_point start);

// The value at quantile p (0 < p <= 1) of `values`, by nearest rank; 0 when there are none.
double NearestRankPercentile(std::vector<double> values, double p);

// A TCP port on 127.0.0.1 that was free a moment ago (nodes of a federation must know each other's
// addresses before any of them starts). Exits the benchmark with a message when there is none.
int FreeLoopbackPort();

// Writes `content` to `path`, replacing it; exits the benchmark with a message when it cannot.
void WriteFileOrExit(const std::string& path, const std::string& content);

// A NodeProcess that is also stopped by StopTrackedNodes, which a benchmark registers with std::atexit:
// a benchmark that gives up with std::exit (which skips destructors) leaves no attestd behind.
class TrackedNode final {
 public:
  TrackedNode(const std::string& attestd, const std::string& dir);
  ~TrackedNode();  // forgets the process, then ~NodeProcess stops it
  NodeProcess* operator->() { return &process_; }
  const NodeProcess* operator->() const { return &process_; }

 private:
  NodeProcess process_;
};
void StopTrackedNodes();

}  // namespace attest::bench

#endif  // ATTEST_BENCH_BENCH_SUPPORT_H_
