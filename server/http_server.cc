#include "server/http_server.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "consensus/text.h"
#include "server/worker_pool.h"

namespace attest::server {
namespace {

// The client's address without port ("127.0.0.1", "::1"); "" when the library cannot tell.
std::string ClientAddressOf(MHD_Connection* connection) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info == nullptr || info->client_addr == nullptr) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (info->client_addr->sa_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(info->client_addr);
    if (inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text)) != nullptr) return text;
  } else if (info->client_addr->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(info->client_addr);
    if (inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text)) != nullptr) return text;
  }
  return "";
}

using consensus::Cat;

// MHD keeps the request head (and its own bookkeeping) in a per-connection pool of this size; a head
// that does not fit is refused by the library.
constexpr size_t kConnectionMemory = 32 * 1024;
// Bytes asked from an HttpStream per call; also what the library buffers per streamed response.
constexpr size_t kStreamBlock = 64 * 1024;

// Marks a request whose head arrived but that has not been answered yet (no allocation per request on
// the hot path; only parked requests get an Exchange).
char kHeadSeen = 0;

// ConnectionClock::waiting_since while the connection's request is being answered (no deadline runs).
constexpr int64_t kAnswering = -1;

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string ShowAddress(const ListenAddress& address) {
  return Cat(address.host.find(':') == std::string::npos ? address.host : Cat("[", address.host, "]"), ":",
             address.port);
}

}  // namespace

// A connection that may be suspended while it waits for a job or a stream. Shared between the event
// thread that parks it and whoever wakes it (a job, a stream producer, Stop).
struct HttpServer::Parking final {
  explicit Parking(MHD_Connection* c, const std::atomic<bool>* stop) : connection(c), stop_requested(stop) {}

  // Resumes the connection when it is parked; otherwise remembers the wake so the next Park returns
  // at once instead of sleeping through it.
  void Wake() {
    absl::MutexLock lock(&mu);
    if (parked && connection != nullptr) {
      parked = false;
      MHD_resume_connection(connection);
    } else {
      woken = true;
    }
  }

  // Called on the connection's event thread from a library callback. True when the connection is now
  // suspended; false when a wake arrived meanwhile (check again) or the server is stopping.
  bool Park() {
    absl::MutexLock lock(&mu);
    if (stop_requested->load()) return false;
    if (woken) {
      woken = false;
      return false;
    }
    parked = true;
    MHD_suspend_connection(connection);
    return true;
  }

  void Close() {
    absl::MutexLock lock(&mu);
    connection = nullptr;
  }

  absl::Mutex mu;
  MHD_Connection* connection ABSL_GUARDED_BY(mu);
  const std::atomic<bool>* const stop_requested;
  bool parked ABSL_GUARDED_BY(mu) = false;
  bool woken ABSL_GUARDED_BY(mu) = false;
  std::optional<HttpResponse> result ABSL_GUARDED_BY(mu);  // a job's answer
};

struct HttpServer::Exchange final {
  std::shared_ptr<Parking> parking;
};

// The library's idle timeout restarts with every byte, so a client sending one byte every few seconds
// would keep a connection forever; this clock measures how long the connection has been waiting for a
// whole request instead. Written on the connection's event thread, read by the sweeper.
struct HttpServer::ConnectionClock final {
  explicit ConnectionClock(int socket) : fd(socket) {}

  // The request is in (or being refused): no deadline until its answer has been sent.
  void Answering() { waiting_since.store(kAnswering, std::memory_order_relaxed); }
  // The answer went out: the next request's time starts.
  void Waiting() { waiting_since.store(SteadyNanos(), std::memory_order_relaxed); }

  static ConnectionClock* Of(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == nullptr ? nullptr : static_cast<ConnectionClock*>(info->socket_context);
  }

  const int fd;
  std::atomic<int64_t> waiting_since{SteadyNanos()};
  bool cut = false;  // shut down by the sweeper (guarded by the server's clocks_mu_)
};

// The body of a streamed response, owned by the library's response object.
struct StreamedBody final {
  HttpServer* server;
  std::unique_ptr<HttpStream> stream;
  std::shared_ptr<HttpServer::Parking> parking;
};

struct HttpServerCallbacks final {
  // Once Stop has begun, new connections are accepted and closed at once. (MHD_quiesce_daemon would
  // leave them in the backlog instead, but with epoll and a thread pool it races the workers, which
  // remove the listen socket from their epoll sets themselves, and libmicrohttpd 0.9.75 then aborts the
  // process: "Failed to remove listen FD from epoll set".)
  static MHD_Result AcceptWhileServing(void* cls, const sockaddr* /*address*/, socklen_t /*length*/) {
    return static_cast<HttpServer*>(cls)->stop_requested_.load() ? MHD_NO : MHD_YES;
  }

  static MHD_Result Access(void* cls, MHD_Connection* connection, const char* url, const char* method,
                           const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                           void** request_state) {
    auto* server = static_cast<HttpServer*>(cls);
    if (*request_state == nullptr && server->options_.tls != nullptr &&
        !server->options_.tls->client_ca_pem.empty() && !ClientCertificateVerified(connection)) {
      return server->Send(connection, method == nullptr ? "" : method,
                          HttpResponse::Text(403, "this node requires a client certificate signed by its client CA "
                                                  "(curl: --cert FILE --key FILE)"))
                 ? MHD_YES
                 : MHD_NO;
    }
    return server->Access(connection, url == nullptr ? "" : url, method == nullptr ? "" : method, upload_data_size,
                          request_state)
               ? MHD_YES
               : MHD_NO;
  }

  // The library asks TLS clients for a certificate when it has a trust list, but leaves checking it to
  // the application: it must be present and chain to the client CA.
  static bool ClientCertificateVerified(MHD_Connection* connection) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (info == nullptr || info->tls_session == nullptr) return false;
    auto session = static_cast<gnutls_session_t>(info->tls_session);
    unsigned int list_size = 0;
    if (gnutls_certificate_get_peers(session, &list_size) == nullptr || list_size == 0) return false;
    unsigned int verdict = 0;
    return gnutls_certificate_verify_peers2(session, &verdict) == GNUTLS_E_SUCCESS && verdict == 0;
  }

  static void Completed(void* cls, MHD_Connection* connection, void** request_state,
                        MHD_RequestTerminationCode /*reason*/) {
    if (HttpServer::ConnectionClock* clock = HttpServer::ConnectionClock::Of(connection)) clock->Waiting();
    static_cast<HttpServer*>(cls)->Completed(request_state);
  }

  static void NotifyConnection(void* cls, MHD_Connection* connection, void** socket_context,
                               MHD_ConnectionNotificationCode code) {
    auto* server = static_cast<HttpServer*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      server->ConnectionOpened(connection, socket_context);
    } else {
      server->ConnectionClosed(socket_context);
    }
  }

  static ssize_t ReadStream(void* cls, uint64_t /*pos*/, char* buffer, size_t max) {
    auto* body = static_cast<StreamedBody*>(cls);
    while (true) {
      const HttpStream::Chunk chunk = body->stream->Read(buffer, max);
      switch (chunk.kind) {
        case HttpStream::Chunk::Kind::kData:
          return static_cast<ssize_t>(chunk.bytes);
        case HttpStream::Chunk::Kind::kEnd:
          return MHD_CONTENT_READER_END_OF_STREAM;
        case HttpStream::Chunk::Kind::kError:
          return MHD_CONTENT_READER_END_WITH_ERROR;
        case HttpStream::Chunk::Kind::kWait:
          break;
      }
      // Returning 0 without suspending would make the library poll us in a loop, so either park or
      // read again (a wake came in between, so there is something to read).
      if (body->parking->Park()) return 0;
      if (body->parking->stop_requested->load()) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
  }

  static void FreeStream(void* cls) {
    auto* body = static_cast<StreamedBody*>(cls);
    body->parking->Close();
    body->server->Forget(body->parking.get());
    delete body;  // the stream's destructor stops its producer
  }

  static void FreeSharedString(void* cls) { delete static_cast<std::shared_ptr<const std::string>*>(cls); }

  // The library has already split the query string, decoded `+` and percent escapes.
  static MHD_Result AddQueryArgument(void* cls, MHD_ValueKind /*kind*/, const char* name, const char* value) {
    static_cast<std::vector<std::pair<std::string, std::string>>*>(cls)->emplace_back(
        name == nullptr ? "" : name, value == nullptr ? "" : value);
    return MHD_YES;
  }
};

HttpResponse HttpResponse::Text(int status, std::string text) {
  HttpResponse response;
  response.status = status;
  if (text.empty() || text.back() != '\n') text.push_back('\n');
  response.body = std::move(text);
  return response;
}

void HttpRouter::Exact(std::string path, HttpHandler handler) {
  exact_.emplace_back(std::move(path), std::move(handler));
}

void HttpRouter::Prefix(std::string prefix, HttpHandler handler) {
  prefixes_.emplace_back(std::move(prefix), std::move(handler));
  std::stable_sort(prefixes_.begin(), prefixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const std::string* HttpRequest::QueryValue(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) return &value;
  }
  return nullptr;
}

const HttpHandler* HttpRouter::Find(std::string_view path) const {
  for (const auto& [exact, handler] : exact_) {
    if (path == exact) return &handler;
  }
  for (const auto& [prefix, handler] : prefixes_) {
    if (path.substr(0, prefix.size()) == prefix) return &handler;
  }
  return nullptr;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const ListenAddress& address, HttpRouter router,
                                                              HttpServerOptions options) {
  const std::string shown = ShowAddress(address);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(address.port);
  if (int rc = getaddrinfo(address.host.c_str(), port_text.c_str(), &hints, &found); rc != 0) {
    return absl::FailedPreconditionError(Cat("http address ", shown, ": ", gai_strerror(rc)));
  }
  const int fd = ::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) {
    const int err = errno;
    freeaddrinfo(found);
    return absl::FailedPreconditionError(Cat("http address ", shown, ": socket: ", std::strerror(err)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int bind_rc = ::bind(fd, found->ai_addr, found->ai_addrlen);
  const int bind_errno = errno;
  freeaddrinfo(found);
  if (bind_rc != 0 || ::listen(fd, 256) != 0) {
    const int err = bind_rc != 0 ? bind_errno : errno;
    ::close(fd);
    return absl::FailedPreconditionError(Cat("cannot listen on http address ", shown, ": ", std::strerror(err),
                                             " (is another process using the port?)"));
  }
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  int port = address.port;
  if (bound.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (bound.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);

  std::unique_ptr<HttpServer> server(new HttpServer(std::move(router), options, fd, port));
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  if (bound.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  // The library keeps pointers to the PEM text; server->options_ holds it while the daemon runs.
  std::vector<MHD_OptionItem> tls_options;
  if (const ServerTls* tls = server->options_.tls.get(); tls != nullptr) {
    flags |= MHD_USE_TLS;
    tls_options.push_back({MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(tls->identity.cert_chain_pem.c_str())});
    tls_options.push_back({MHD_OPTION_HTTPS_MEM_KEY, 0, const_cast<char*>(tls->identity.private_key_pem.c_str())});
    if (!tls->client_ca_pem.empty()) {
      tls_options.push_back({MHD_OPTION_HTTPS_MEM_TRUST, 0, const_cast<char*>(tls->client_ca_pem.c_str())});
    }
  }
  tls_options.push_back({MHD_OPTION_END, 0, nullptr});
  // clang-format off
  server->daemon_ = MHD_start_daemon(
      flags, 0, &HttpServerCallbacks::AcceptWhileServing, server.get(), &HttpServerCallbacks::Access, server.get(),
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd),
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned int>(std::max(1, options.threads)),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(std::max(1, options.max_connections)),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned int>(std::max(0, options.max_connections_per_ip)),
      MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned int>(std::max(1, options.idle_timeout_seconds)),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, kConnectionMemory,
      MHD_OPTION_NOTIFY_COMPLETED, &HttpServerCallbacks::Completed, server.get(),
      MHD_OPTION_NOTIFY_CONNECTION, &HttpServerCallbacks::NotifyConnection, server.get(),
      MHD_OPTION_ARRAY, tls_options.data(),
      MHD_OPTION_END);
  // clang-format on
  if (server->daemon_ == nullptr) {
    // The destructor closes the socket.
    return absl::FailedPreconditionError(
        Cat("cannot serve http", options.tls ? "s" : "", " on ", shown, ": libmicrohttpd did not start (",
            options.tls ? "did GnuTLS refuse the [tls] certificate or key? or " : "", "too many open files?)"));
  }
  server->daemon_started_ = true;
  server->sweeper_ = std::thread([raw = server.get()] { raw->SweepSlowRequests(); });
  return server;
}

HttpServer::HttpServer(HttpRouter router, HttpServerOptions options, int listen_fd, int port)
    : router_(std::move(router)),
      options_(options),
      listen_fd_(listen_fd),
      port_(port),
      jobs_(std::make_unique<WorkerPool>("http-job", std::max(1, options.job_threads))) {}

HttpServer::~HttpServer() {
  Stop();
  if (!daemon_started_) ::close(listen_fd_);  // a started daemon closed it when it stopped
  absl::MutexLock lock(&clocks_mu_);
  for (ConnectionClock* clock : clocks_) delete clock;  // none: the library reported every close
}

void HttpServer::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    stop_requested_.store(true);
  }
  // From here on new connections are refused (AcceptWhileServing).
  // Jobs already running or queued finish and wake their connections (which then get their answer or,
  // for new streams, a 503); no new job starts.
  jobs_.reset();
  // Every connection still parked (streams waiting for data) is woken; with stop_requested_ set it
  // cannot park again, so the library may then close everything (it must not stop with a suspended
  // connection).
  std::vector<std::shared_ptr<Parking>> parked;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [key, parking] : parkings_) parked.push_back(parking);
  }
  for (auto& parking : parked) parking->Wake();
  {
    absl::MutexLock lock(&clocks_mu_);
    sweeper_stopping_ = true;
  }
  if (sweeper_.joinable()) sweeper_.join();
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

void HttpServer::ConnectionOpened(MHD_Connection* connection, void** socket_context) {
  const MHD_ConnectionInfo* info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (info == nullptr) return;  // no clock: the deadline does not apply (the idle timeout still does)
  auto* clock = new ConnectionClock(info->connect_fd);
  *socket_context = clock;
  absl::MutexLock lock(&clocks_mu_);
  clocks_.insert(clock);
}

void HttpServer::ConnectionClosed(void** socket_context) {
  auto* clock = static_cast<ConnectionClock*>(*socket_context);
  if (clock == nullptr) return;
  *socket_context = nullptr;
  {
    absl::MutexLock lock(&clocks_mu_);
    clocks_.erase(clock);
  }
  delete clock;
}

void HttpServer::SweepSlowRequests() {
  const int64_t limit = int64_t{std::max(1, options_.request_head_timeout_seconds)} * 1'000'000'000;
  const absl::Duration period =
      std::min(absl::Seconds(1), absl::Seconds(std::max(1, options_.request_head_timeout_seconds)) / 4);
  absl::MutexLock lock(&clocks_mu_);
  while (!clocks_mu_.AwaitWithTimeout(absl::Condition(&sweeper_stopping_), period)) {
    const int64_t now = SteadyNanos();
    for (ConnectionClock* clock : clocks_) {
      const int64_t since = clock->waiting_since.load(std::memory_order_relaxed);
      if (clock->cut || since == kAnswering || now - since < limit) continue;
      // The library owns the socket; after shutdown its next read sees the end and it closes the
      // connection. The descriptor cannot have been reused: the library reports the close (which
      // takes clocks_mu_) before it closes the socket.
      ::shutdown(clock->fd, SHUT_RDWR);
      clock->cut = true;
    }
  }
}

std::shared_ptr<HttpServer::Parking> HttpServer::NewParking(MHD_Connection* connection) {
  absl::MutexLock lock(&mu_);
  if (stop_requested_.load()) return nullptr;
  auto parking = std::make_shared<Parking>(connection, &stop_requested_);
  parkings_.emplace(parking.get(), parking);
  return parking;
}

void HttpServer::Forget(const Parking* parking) {
  absl::MutexLock lock(&mu_);
  parkings_.erase(parking);
}

bool HttpServer::Access(MHD_Connection* connection, std::string_view url, std::string_view method,
                        size_t* upload_data_size, void** request_state) {
  if (*request_state == nullptr) {
    // The head is in. Refuse what no route serves before any body arrives (the library closes the
    // connection after answering a request whose body it did not read).
    if (method != "GET" && method != "HEAD") {
      HttpResponse response = HttpResponse::Text(
          405, Cat("method ", consensus::QuoteForError(method), " is not served here; use GET or HEAD"));
      response.headers.emplace_back("Allow", "GET, HEAD");
      return Send(connection, method, std::move(response));
    }
    if (url.size() > kMaxPathBytes) {
      return Send(
          connection, method,
          HttpResponse::Text(414, Cat("request target of ", url.size(), " bytes; the limit is ", kMaxPathBytes)));
    }
    *request_state = &kHeadSeen;
    return true;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;  // a GET with a body: the body is ignored
    return true;
  }
  // The whole request is in: from here on only the idle timeout applies until the answer is sent.
  if (ConnectionClock* clock = ConnectionClock::Of(connection)) clock->Answering();
  if (*request_state != &kHeadSeen) {
    // Woken after a job: its answer is ready (or the server is stopping).
    auto* exchange = static_cast<Exchange*>(*request_state);
    std::optional<HttpResponse> result;
    {
      absl::MutexLock lock(&exchange->parking->mu);
      result.swap(exchange->parking->result);
    }
    if (!result) return Send(connection, method, HttpResponse::Text(503, "the server is stopping; retry later"));
    return Send(connection, method, *std::move(result));
  }

  const HttpHandler* handler = router_.Find(url);
  if (handler == nullptr) return Send(connection, method, HttpResponse::Text(404, "not found"));
  HttpRequest request{.method = method, .path = url};
  request.client_address = ClientAddressOf(connection);
  MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, &HttpServerCallbacks::AddQueryArgument,
                            &request.query);
  HttpReply reply = (*handler)(request);
  if (reply.ready()) return Send(connection, method, std::move(reply.response()));

  auto* exchange = new Exchange{};
  *request_state = exchange;
  if (!RunLater(connection, exchange, std::move(reply.job()))) {
    HttpResponse busy = HttpResponse::Text(503, "the server is busy or stopping; retry later");
    busy.headers.emplace_back("Retry-After", "1");
    return Send(connection, method, std::move(busy));
  }
  return true;
}

bool HttpServer::RunLater(MHD_Connection* connection, Exchange* exchange, HttpReply::Job job) {
  // All under mu_, so Stop (which sets stop_requested_ under mu_ before it drains the pool) never sees
  // a job scheduled after the pool is gone.
  absl::MutexLock lock(&mu_);
  if (stop_requested_.load() || pending_jobs_ >= options_.max_pending_jobs) return false;
  auto parking = std::make_shared<Parking>(connection, &stop_requested_);
  if (!parking->Park()) return false;
  parkings_.emplace(parking.get(), parking);
  exchange->parking = parking;
  ++pending_jobs_;
  jobs_->Schedule([this, parking, job = std::move(job)]() mutable {
    HttpResponse response = job();
    {
      absl::MutexLock lock(&parking->mu);
      parking->result = std::move(response);
    }
    parking->Wake();
    absl::MutexLock lock(&mu_);
    --pending_jobs_;
  });
  return true;
}

void HttpServer::Completed(void** request_state) {
  if (*request_state == nullptr || *request_state == &kHeadSeen) return;
  auto* exchange = static_cast<Exchange*>(*request_state);
  if (exchange->parking) {
    exchange->parking->Close();
    Forget(exchange->parking.get());
  }
  delete exchange;
  *request_state = nullptr;
}

bool HttpServer::Send(MHD_Connection* connection, std::string_view method, HttpResponse response) {
  // Also for answers given before the request was read whole (405, 414, 403): sending is not waiting.
  if (ConnectionClock* clock = ConnectionClock::Of(connection)) clock->Answering();
  MHD_Response* mhd = nullptr;
  if (auto* text = std::get_if<std::string>(&response.body)) {
    mhd = MHD_create_response_from_buffer(text->size(), text->data(), MHD_RESPMEM_MUST_COPY);
  } else if (auto* shared = std::get_if<std::shared_ptr<const std::string>>(&response.body)) {
    auto* keep = new std::shared_ptr<const std::string>(std::move(*shared));
    mhd = MHD_create_response_from_buffer_with_free_callback_cls((*keep)->size(), const_cast<char*>((*keep)->data()),
                                                                 &HttpServerCallbacks::FreeSharedString, keep);
    if (mhd == nullptr) delete keep;
  } else if (auto* file = std::get_if<HttpFile>(&response.body)) {
    mhd = MHD_create_response_from_fd64(file->size, file->fd);
    if (mhd == nullptr) ::close(file->fd);
  } else if (auto* streamed = std::get_if<HttpStreamBody>(&response.body)) {
    std::shared_ptr<Parking> parking = NewParking(connection);
    if (parking == nullptr) {
      return Send(connection, method, HttpResponse::Text(503, "the server is stopping; retry later"));
    }
    auto* body = new StreamedBody{.server = this, .stream = std::move(streamed->stream), .parking = parking};
    body->stream->SetWake([parking] { parking->Wake(); });
    mhd = MHD_create_response_from_callback(streamed->size.value_or(MHD_SIZE_UNKNOWN), kStreamBlock,
                                            &HttpServerCallbacks::ReadStream, body, &HttpServerCallbacks::FreeStream);
    if (mhd == nullptr) HttpServerCallbacks::FreeStream(body);
  }
  if (mhd == nullptr) return false;
  MHD_add_response_header(mhd, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  // Browsers must take the declared type: a text/plain answer quoting a request is never run as HTML.
  MHD_add_response_header(mhd, "X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : response.headers) MHD_add_response_header(mhd, name.c_str(), value.c_str());
  const MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned int>(response.status), mhd);
  MHD_destroy_response(mhd);
  return queued == MHD_YES;
}

}  // namespace attest::server
