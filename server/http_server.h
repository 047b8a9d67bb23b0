// HttpServer: the node's HTTP port, on libmicrohttpd.
//
// What it does for every route: HTTP/1.1 with keep-alive, a bounded number of connections in all and
// from one client address, an idle timeout, a deadline for receiving each request whole (so a client
// that trickles its head a byte at a time cannot hold a connection for long), GET and HEAD only
// (anything else is 405 with `Allow: GET, HEAD`), request targets of at most kMaxPathBytes (414 beyond),
// request heads that fit in 32 KiB (larger ones are refused by the library and the connection closed),
// 404 for paths no route claims, and `X-Content-Type-Options: nosniff` on every reply it makes.
//
// Routes form a table (HttpRouter): exact paths first, then the longest matching prefix. A handler runs
// on one of the event threads and answers in one of two ways:
//   - HttpReply::Now(response): the answer is ready (must not block: a cache hit, a constant);
//   - HttpReply::Later(job): `job` may block (storage, an upstream fetch). The connection is parked
//     (it holds no thread), `job` runs on the server's work pool, and its response is sent when it is
//     done. More than max_pending_jobs jobs at once: 503 with Retry-After.
// A response body is a string, a shared immutable string (cached answers, no copy), an open file (sent
// with sendfile) or an HttpStream (produced elsewhere, e.g. relayed from an upstream; the connection is
// parked while the stream has nothing to give, never busy-polled).
//
// Thread-safety: Start and Stop may be called from any thread; handlers run concurrently on the event
// threads (http_threads of them) and jobs on the work pool. Stop (and the destructor) stops accepting,
// lets running jobs finish, cancels streams and closes every connection.
#ifndef ATTEST_SERVER_HTTP_SERVER_H_
#define ATTEST_SERVER_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/node_config.h"
#include "server/tls_files.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace attest::server {

class WorkerPool;

inline constexpr size_t kMaxPathBytes = 4096;

// A body produced while it is sent. Implementations are thread-safe: Read runs on an event thread
// while the producer runs elsewhere.
class HttpStream {
 public:
  struct Chunk final {
    enum class Kind { kData, kWait, kEnd, kError };
    Kind kind = Kind::kWait;
    size_t bytes = 0;  // for kData: bytes copied (> 0)
  };
  virtual ~HttpStream() = default;

  // Called once, before the first Read. After a Read returned kWait, the stream calls `wake` (from any
  // thread) once it has data, has ended or has failed. Extra calls are harmless. `wake` stays safe to
  // call after the stream is destroyed, but the destructor must make sure the producer stops.
  virtual void SetWake(std::function<void()> wake) = 0;
  // Copies up to `max` bytes into `buffer` without blocking.
  virtual Chunk Read(char* buffer, size_t max) = 0;
};

struct HttpFile final {
  int fd = -1;  // owned by the response from then on (closed after sending, or on any failure)
  uint64_t size = 0;
};

struct HttpStreamBody final {
  std::unique_ptr<HttpStream> stream;
  std::optional<uint64_t> size;  // Content-Length when known; chunked otherwise
};

using HttpBody = std::variant<std::string, std::shared_ptr<const std::string>, HttpFile, HttpStreamBody>;

struct HttpResponse final {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  HttpBody body;

  // A text response ("<message>\n" for errors, so curl and browsers show it).
  static HttpResponse Text(int status, std::string text);
};

class HttpReply final {
 public:
  using Job = std::function<HttpResponse()>;
  static HttpReply Now(HttpResponse response) { return HttpReply(std::move(response)); }
  static HttpReply Later(Job job) { return HttpReply(std::move(job)); }

  bool ready() const { return std::holds_alternative<HttpResponse>(value_); }
  HttpResponse& response() { return std::get<HttpResponse>(value_); }
  Job& job() { return std::get<Job>(value_); }

 private:
  explicit HttpReply(HttpResponse response) : value_(std::move(response)) {}
  explicit HttpReply(Job job) : value_(std::move(job)) {}
  std::variant<HttpResponse, Job> value_;
};

struct HttpRequest final {
  std::string_view method;  // "GET" or "HEAD" (other methods never reach a handler)
  std::string_view path;    // percent-decoded, without the query string
  // The query string's arguments in order, names and values percent-decoded with `+` as a space
  // ("?a=1&b" gives {"a", "1"}, {"b", ""}). Owned by the request: a Later job copies what it needs.
  std::vector<std::pair<std::string, std::string>> query;
  // The client's address without port ("127.0.0.1", "::1"; "" when unknown). Behind a reverse proxy
  // this is the proxy's.
  std::string client_address;

  // The value of the first argument named `name`, or nullptr.
  const std::string* QueryValue(std::string_view name) const;
};

using HttpHandler = std::function<HttpReply(const HttpRequest&)>;

// The route table. Not thread-safe while being filled; read-only once the server started.
class HttpRouter final {
 public:
  // `path` exactly ("/healthz").
  void Exact(std::string path, HttpHandler handler);
  // Every path starting with `prefix` ("/nar/"); the longest matching prefix wins.
  void Prefix(std::string prefix, HttpHandler handler);
  // The handler for `path`, or nullptr.
  const HttpHandler* Find(std::string_view path) const;

 private:
  std::vector<std::pair<std::string, HttpHandler>> exact_;
  std::vector<std::pair<std::string, HttpHandler>> prefixes_;  // longest first
};

struct HttpServerOptions final {
  int threads = 2;                // event threads (each serves its share of the connections)
  int max_connections = 1024;     // more wait in the listen queue until one closes
  // Most connections from one client address (an IPv4 address, or a whole IPv6 address); more are
  // closed as soon as they are accepted, so one client cannot take every slot. 0: no such limit (for a
  // node behind a reverse proxy on the same machine, where every client has the proxy's address).
  int max_connections_per_ip = 128;
  int idle_timeout_seconds = 30;  // a connection with no traffic for this long is closed
  // A request (its head, and a body if one is sent) must have arrived this many seconds after the
  // connection opened or the previous answer was sent; otherwise the connection is closed, even if
  // it never went silent for idle_timeout_seconds. A kept-alive connection waiting for its next
  // request is closed after this too. Checked about every quarter of it (at most every second).
  int request_head_timeout_seconds = 20;
  int job_threads = 8;            // the work pool for HttpReply::Later jobs (they mostly wait)
  int max_pending_jobs = 4096;    // jobs queued or running; more get 503
  // HTTPS with this certificate and key when set (plain HTTP otherwise). With a client CA, every
  // request must come with a client certificate that chains to it; others get 403.
  std::shared_ptr<const ServerTls> tls = nullptr;
};

class HttpServer final {
 public:
  // Binds `address` and serves `router`. FAILED_PRECONDITION naming the address when it cannot be bound
  // or the library cannot start (with options.tls: or refuses the certificate and key).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const ListenAddress& address, HttpRouter router,
                                                           HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // Stops accepting, waits for running jobs, cancels parked streams, closes all connections. Idempotent.
  void Stop();

  struct Parking;          // a parked (suspended) connection; internal
  struct Exchange;         // per-request state; internal
  struct ConnectionClock;  // when a connection began waiting for its request; internal

 private:
  friend struct HttpServerCallbacks;
  HttpServer(HttpRouter router, HttpServerOptions options, int listen_fd, int port);

  // The library's access callback; returns false when the connection must be closed.
  bool Access(MHD_Connection* connection, std::string_view url, std::string_view method, size_t* upload_data_size,
              void** request_state);
  void Completed(void** request_state);
  // Queues `response` on `connection`; false when the library refused it (the connection is closed).
  bool Send(MHD_Connection* connection, std::string_view method, HttpResponse response);
  // Parks the connection and runs `job` on the pool; false when stopping or overloaded.
  bool RunLater(MHD_Connection* connection, Exchange* exchange, HttpReply::Job job);
  // A parking registered for Stop, or nullptr when stopping.
  std::shared_ptr<Parking> NewParking(MHD_Connection* connection);
  void Forget(const Parking* parking);
  // The library's connection notices: a clock for every open connection, for the request deadline.
  void ConnectionOpened(MHD_Connection* connection, void** socket_context);
  void ConnectionClosed(void** socket_context);
  // The sweeper thread: closes connections whose request did not arrive in time.
  void SweepSlowRequests();

  const HttpRouter router_;
  const HttpServerOptions options_;
  const int listen_fd_;
  const int port_;
  MHD_Daemon* daemon_ = nullptr;
  // Whether daemon_ took over listen_fd_ (it closes it in MHD_stop_daemon).
  bool daemon_started_ = false;
  std::unique_ptr<WorkerPool> jobs_;

  // Set first thing in Stop: from then on nothing parks and no job starts.
  std::atomic<bool> stop_requested_{false};
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int pending_jobs_ ABSL_GUARDED_BY(mu_) = 0;
  // Every connection that is parked or may park (jobs and streams), so Stop can wake them all.
  absl::flat_hash_map<const Parking*, std::shared_ptr<Parking>> parkings_ ABSL_GUARDED_BY(mu_);

  absl::Mutex clocks_mu_;
  // Every open connection's clock (owned here; the library holds a pointer as the socket context).
  absl::flat_hash_set<ConnectionClock*> clocks_ ABSL_GUARDED_BY(clocks_mu_);
  bool sweeper_stopping_ ABSL_GUARDED_BY(clocks_mu_) = false;
  std::thread sweeper_;
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_HTTP_SERVER_H_
