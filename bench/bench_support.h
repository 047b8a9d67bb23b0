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

}  // namespace attest::bench

#endif  // ATTEST_BENCH_BENCH_SUPPORT_H_
