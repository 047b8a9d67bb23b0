// HttpServer: the node's HTTP port. For now it answers only GET /healthz ("ok"); the binary-cache
// gateway, log tiles and dispute pages come later behind this class.
//
// One background thread accepts connections and answers each in turn (HTTP/1.0 style: one request per
// connection, then close), reading at most 8 KiB of request head with a 2 s timeout, so a slow or
// hostile client costs at most that.
//
// Thread-safe: Stop may be called from any thread; the destructor stops.
#ifndef ATTEST_SERVER_HTTP_SERVER_H_
#define ATTEST_SERVER_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "server/node_config.h"

namespace attest::server {

class HttpServer final {
 public:
  // Binds and starts serving. FAILED_PRECONDITION naming the address when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const ListenAddress& address);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // Stops accepting and joins the thread. Idempotent.
  void Stop();

 private:
  HttpServer(int listen_fd, int wake_read, int wake_write, int port);
  void Serve();
  void Answer(int connection);

  const int listen_fd_;
  const int wake_read_;
  const int wake_write_;
  const int port_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_HTTP_SERVER_H_
