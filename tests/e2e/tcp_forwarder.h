// TcpForwarder: a TCP relay on 127.0.0.1 for end-to-end tests. Every connection made to its port is
// relayed, byte for byte in both directions, to 127.0.0.1:<target port>. Cut() resets every relayed
// connection and makes new ones fail (accepted and reset at once) until Restore(): pointing a node's
// peers at forwarders instead of its real ports lets a test partition it while every process keeps
// running.
//
// One thread per forwarder, poll(2) based. Bounded: at most `max_connections` relayed connections at
// once (more are reset on arrival) and at most `buffer_bytes` buffered per direction of a connection
// (reading from a side stops while its buffer is full). Half-closes are passed on (shutdown(SHUT_WR)).
//
// Thread-safety: every public method may be called from any thread.
#ifndef ATTEST_TESTS_E2E_TCP_FORWARDER_H_
#define ATTEST_TESTS_E2E_TCP_FORWARDER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace attest::testing {

struct TcpForwarderOptions final {
  int listen_port = 0;  // 0: any free port
  int max_connections = 64;
  size_t buffer_bytes = 256 * 1024;
};

struct TcpForwarderStats final {
  int open_connections = 0;
  int64_t accepted = 0;  // connections relayed to the target (counted once connected to it)
  int64_t refused = 0;   // reset on arrival: cut, over the limit, or the target refused
};

class TcpForwarder final {
 public:
  // Listens on 127.0.0.1 and starts relaying to 127.0.0.1:target_port (which need not be listening
  // yet: a connection made while it is not is reset). INVALID_ARGUMENT for a port outside 1..65535
  // or a non-positive limit; UNAVAILABLE when the socket, the wake pipe or the bind fails.
  static absl::StatusOr<std::unique_ptr<TcpForwarder>> Start(int target_port, const TcpForwarderOptions& options = {});
  ~TcpForwarder();  // stops the thread and closes every socket
  TcpForwarder(const TcpForwarder&) = delete;
  TcpForwarder& operator=(const TcpForwarder&) = delete;

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:<port>"
  int target_port() const { return target_port_; }

  // Resets every relayed connection and refuses new ones. Returns once the relay thread has closed
  // them, so no byte passes after it returns.
  void Cut();
  // Relays new connections again.
  void Restore();
  bool is_cut() const;
  TcpForwarderStats Stats() const;

 private:
  class Relay;

  TcpForwarder(int listen_fd, int wake_read_fd, int wake_write_fd, int port, int target_port,
               const TcpForwarderOptions& options);
  void Run();
  void Wake();
  void CountRefused();

  const int listen_fd_;
  const int wake_read_fd_;
  const int wake_write_fd_;
  const int port_;
  const int target_port_;
  const TcpForwarderOptions options_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t cuts_requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t cuts_applied_ ABSL_GUARDED_BY(mu_) = 0;
  TcpForwarderStats stats_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_E2E_TCP_FORWARDER_H_
