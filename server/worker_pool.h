// WorkerPool: a fixed set of threads running scheduled tasks in FIFO order.
//
// The node has two: one verifies signatures (CPU-bound, sized to the cores it may use), one runs RPC
// handlers whose work may block (storage reads, waiting for the writer), so gRPC's own threads are
// never held up.
//
// Thread-safe. The destructor runs every task already scheduled, then joins the threads; scheduling
// after destruction began is a programming error.
#ifndef ATTEST_SERVER_WORKER_POOL_H_
#define ATTEST_SERVER_WORKER_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace attest::server {

class WorkerPool final {
 public:
  // `threads` >= 1. Threads are named "<name>-<i>" (shown by top -H, ps -L), name at most 10 chars.
  WorkerPool(std::string_view name, int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Schedule(std::function<void()> task);
  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Run();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_WORKER_POOL_H_
