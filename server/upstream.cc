#include "server/upstream.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "consensus/text.h"
#include "server/worker_pool.h"
#include "storage/files.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// A relayed NAR is read from the upstream until this much is waiting for the client, then the upstream
// transfer waits (TCP back-pressure) until the client caught up.
constexpr size_t kRelayHighWater = size_t{1} << 20;

std::string StripTrailingSlashes(std::string_view text) {
  while (text.size() > 1 && text.back() == '/') text.remove_suffix(1);
  return std::string(text);
}

// ---- file:// ------------------------------------------------------------------------------------

class FileUpstream final : public Upstream {
 public:
  FileUpstream(std::string url, std::string directory) : url_(std::move(url)), directory_(std::move(directory)) {}

  absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) override {
    const std::string path = Cat(directory_, "/", hash_part, ".narinfo");
    absl::StatusOr<std::string> text = storage::ReadFileToString(path, kMaxNarInfoBytes);
    if (text.ok()) return text;
    switch (text.status().code()) {
      case absl::StatusCode::kNotFound:
        return absl::NotFoundError(Cat("upstream ", url_, ": no ", path));
      case absl::StatusCode::kResourceExhausted:
        return absl::ResourceExhaustedError(
            Cat("upstream ", url_, ": ", path, " is larger than ", kMaxNarInfoBytes, " bytes"));
      default:
        return absl::UnavailableError(Cat("upstream ", url_, ": ", StdView(text.status().message())));
    }
  }

  absl::StatusOr<HttpBody> OpenNar(std::string_view file_name) override {
    const std::string path = Cat(directory_, "/nar/", file_name);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return OpenFailure(path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::NotFoundError(Cat("upstream ", url_, ": ", path, " is not a regular file"));
    }
    return HttpBody(HttpFile{.fd = fd, .size = static_cast<uint64_t>(st.st_size)});
  }

  const std::string& url() const override { return url_; }
  void Cancel() override {}  // file reads do not wait

 private:
  absl::Status OpenFailure(const std::string& path, int err) const {
    if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(Cat("upstream ", url_, ": no ", path));
    return absl::UnavailableError(Cat("upstream ", url_, ": opening ", path, ": ", std::strerror(err)));
  }

  const std::string url_;
  const std::string directory_;
};

// ---- http(s):// ---------------------------------------------------------------------------------

struct CurlDeleter final {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

// One NAR transfer, shared by the thread that runs it and the stream that hands its bytes to the client.
struct NarTransfer final {
  absl::Mutex mu;
  absl::CondVar changed;
  std::string buffer ABSL_GUARDED_BY(mu);
  size_t head ABSL_GUARDED_BY(mu) = 0;  // bytes of `buffer` already handed out
  bool started ABSL_GUARDED_BY(mu) = false;
  bool headers_done ABSL_GUARDED_BY(mu) = false;
  long status ABSL_GUARDED_BY(mu) = 0;
  std::optional<uint64_t> length ABSL_GUARDED_BY(mu);
  bool finished ABSL_GUARDED_BY(mu) = false;
  bool succeeded ABSL_GUARDED_BY(mu) = false;
  std::string error ABSL_GUARDED_BY(mu);
  bool cancelled ABSL_GUARDED_BY(mu) = false;
  std::function<void()> wake ABSL_GUARDED_BY(mu);
  CURL* curl = nullptr;  // set and used only by the relay thread
  // Read by libcurl's progress callback: this transfer, or the whole upstream, was cancelled.
  std::atomic<bool> abort{false};
  const std::atomic<bool>* upstream_cancelled = nullptr;

  void Cancel() {
    abort.store(true);
    absl::MutexLock lock(&mu);
    cancelled = true;
    wake = nullptr;  // no wake after the stream is gone
    changed.SignalAll();
  }
  // Called with `mu` held: tells the consumer something changed.
  void Notify() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    changed.SignalAll();
    if (wake) wake();
  }
};

class RelayedNar final : public HttpStream {
 public:
  explicit RelayedNar(std::shared_ptr<NarTransfer> transfer) : transfer_(std::move(transfer)) {}
  ~RelayedNar() override { transfer_->Cancel(); }

  void SetWake(std::function<void()> wake) override {
    absl::MutexLock lock(&transfer_->mu);
    transfer_->wake = std::move(wake);
  }

  Chunk Read(char* out, size_t max) override {
    NarTransfer& t = *transfer_;
    absl::MutexLock lock(&t.mu);
    const size_t available = t.buffer.size() - t.head;
    if (available > 0) {
      const size_t n = std::min(available, max);
      std::memcpy(out, t.buffer.data() + t.head, n);
      t.head += n;
      if (t.head == t.buffer.size()) {
        t.buffer.clear();
        t.head = 0;
      } else if (t.head > kRelayHighWater / 2) {
        t.buffer.erase(0, t.head);
        t.head = 0;
      }
      t.changed.SignalAll();  // the transfer may be waiting for room
      return Chunk{.kind = Chunk::Kind::kData, .bytes = n};
    }
    if (t.finished) return Chunk{.kind = t.succeeded ? Chunk::Kind::kEnd : Chunk::Kind::kError};
    return Chunk{.kind = Chunk::Kind::kWait};
  }

 private:
  std::shared_ptr<NarTransfer> transfer_;
};

class HttpUpstream final : public Upstream {
 public:
  HttpUpstream(std::string url, UpstreamOptions options)
      : url_(std::move(url)),
        options_(options),
        relays_(std::make_unique<WorkerPool>("nar-relay", std::max(1, options.max_nar_streams))) {}

  ~HttpUpstream() override { relays_.reset(); }

  absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) override {
    const std::string target = Cat(url_, "/", hash_part, ".narinfo");
    if (cancelled_.load()) return absl::UnavailableError(Cat("upstream ", target, ": the node is stopping"));
    CurlHandle curl = Acquire();
    if (!curl) return absl::UnavailableError("libcurl could not make a handle");
    struct Sink {
      std::string text;
      bool too_large = false;
    } sink;
    char error[CURL_ERROR_SIZE] = {0};
    Configure(curl.get(), target, error);
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
    curl_easy_setopt(curl.get(), CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(
        curl.get(), CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t count, void* user) -> size_t {
          auto* s = static_cast<Sink*>(user);
          if (s->text.size() + size * count > kMaxNarInfoBytes) {
            s->too_large = true;
            return 0;
          }
          s->text.append(data, size * count);
          return size * count;
        });
    const CURLcode code = curl_easy_perform(curl.get());
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    Release(std::move(curl));
    if (sink.too_large) {
      return absl::ResourceExhaustedError(
          Cat("upstream ", target, " is larger than ", kMaxNarInfoBytes, " bytes; not a narinfo"));
    }
    if (code != CURLE_OK) {
      return absl::UnavailableError(Cat("upstream ", target, ": ", error[0] != 0 ? error : curl_easy_strerror(code)));
    }
    if (status == 200) return std::move(sink.text);
    if (IsAbsent(status)) return absl::NotFoundError(Cat("upstream ", target, ": HTTP ", status));
    return absl::UnavailableError(Cat("upstream ", target, ": HTTP ", status));
  }

  absl::StatusOr<HttpBody> OpenNar(std::string_view file_name) override {
    const std::string target = Cat(url_, "/nar/", file_name);
    if (cancelled_.load()) return absl::UnavailableError(Cat("upstream ", target, ": the node is stopping"));
    auto transfer = std::make_shared<NarTransfer>();
    relays_->Schedule([this, transfer, target] { Relay(*transfer, target); });

    NarTransfer& t = *transfer;
    absl::MutexLock lock(&t.mu);
    const absl::Time deadline = absl::Now() + options_.timeout;
    while (!t.headers_done && !t.changed.WaitWithDeadline(&t.mu, deadline)) {
    }
    if (!t.headers_done) {
      const bool started = t.started;
      t.cancelled = true;
      t.abort.store(true);
      t.changed.SignalAll();
      if (!started) {
        return absl::UnavailableError(Cat("upstream ", target, ": all ", relays_->size(),
                                          " NAR relays are busy (raise max_nar_streams in [gateway])"));
      }
      return absl::UnavailableError(
          Cat("upstream ", target, ": no answer within ", absl::FormatDuration(options_.timeout)));
    }
    if (t.status == 200) {
      HttpStreamBody body{.stream = std::make_unique<RelayedNar>(transfer), .size = t.length};
      return HttpBody(std::move(body));
    }
    t.cancelled = true;
    t.abort.store(true);
    t.changed.SignalAll();
    if (IsAbsent(t.status)) return absl::NotFoundError(Cat("upstream ", target, ": HTTP ", t.status));
    if (t.status != 0) return absl::UnavailableError(Cat("upstream ", target, ": HTTP ", t.status));
    return absl::UnavailableError(Cat("upstream ", target, ": ", t.error));
  }

  const std::string& url() const override { return url_; }

  void Cancel() override { cancelled_.store(true); }

 private:
  static bool IsAbsent(long status) { return status == 404 || status == 403 || status == 410; }

  // Options every request shares. `error` must outlive the transfer.
  void Configure(CURL* curl, const std::string& target, char* error) const {
    curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(options_.timeout)));
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "attestd-gateway");
    // Checked about once a second and on every chunk: a cancelled upstream ends its transfers.
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &cancelled_);
    curl_easy_setopt(
        curl, CURLOPT_XFERINFOFUNCTION, +[](void* cancelled, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
          return static_cast<std::atomic<bool>*>(cancelled)->load() ? 1 : 0;
        });
  }

  // Runs one NAR transfer on a relay thread, feeding `t` until the end, a failure or a cancel.
  void Relay(NarTransfer& t, const std::string& target) {
    {
      absl::MutexLock lock(&t.mu);
      if (t.cancelled) return;
      t.started = true;
    }
    CurlHandle curl = Acquire();
    char error[CURL_ERROR_SIZE] = {0};
    CURLcode code = CURLE_FAILED_INIT;
    if (curl) {
      Configure(curl.get(), target, error);
      // A stalled upstream ends the transfer (the client's connection is parked meanwhile and would
      // otherwise wait forever); a long pause by the client ends it too, which it survives by retrying.
      curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME,
                       static_cast<long>(std::max<int64_t>(60, absl::ToInt64Seconds(options_.timeout))));
      t.curl = curl.get();
      t.upstream_cancelled = &cancelled_;
      curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &t);
      curl_easy_setopt(
          curl.get(), CURLOPT_XFERINFOFUNCTION, +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
            const auto& transfer = *static_cast<NarTransfer*>(user);
            return transfer.abort.load() || transfer.upstream_cancelled->load() ? 1 : 0;
          });
      curl_easy_setopt(curl.get(), CURLOPT_HEADERDATA, &t);
      curl_easy_setopt(curl.get(), CURLOPT_HEADERFUNCTION, &HttpUpstream::OnHeader);
      curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &t);
      curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &HttpUpstream::OnData);
      code = curl_easy_perform(curl.get());
    }
    {
      absl::MutexLock lock(&t.mu);
      t.finished = true;
      if (code == CURLE_OK) {
        t.succeeded = t.headers_done && t.status == 200;
      } else if (!t.cancelled) {
        t.error = error[0] != 0 ? error : curl_easy_strerror(code);
      }
      t.headers_done = true;
      t.Notify();
    }
    // Keep the handle (and its connection) for reuse only after a complete transfer.
    if (curl && code == CURLE_OK) Release(std::move(curl));
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto& t = *static_cast<NarTransfer*>(user);
    const size_t bytes = size * count;
    const std::string_view line(data, bytes);
    if (t.abort.load()) return 0;
    if (line != "\r\n" && line != "\n") return bytes;
    // The end of one response's headers. Redirects are followed and 1xx answers skipped, so only the
    // final response counts.
    long status = 0;
    curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || (status >= 300 && status < 400)) return bytes;
    curl_off_t length = -1;
    curl_easy_getinfo(t.curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    absl::MutexLock lock(&t.mu);
    t.status = status;
    if (length >= 0) t.length = static_cast<uint64_t>(length);
    t.headers_done = true;
    t.Notify();
    return status == 200 ? bytes : 0;  // the body of an error is not relayed: stop here
  }

  static size_t OnData(char* data, size_t size, size_t count, void* user) {
    auto& t = *static_cast<NarTransfer*>(user);
    const size_t bytes = size * count;
    absl::MutexLock lock(&t.mu);
    while (!t.cancelled && t.buffer.size() - t.head >= kRelayHighWater) t.changed.Wait(&t.mu);
    if (t.cancelled) return 0;  // aborts the transfer
    t.buffer.append(data, bytes);
    t.Notify();
    return bytes;
  }

  CurlHandle Acquire() {
    {
      absl::MutexLock lock(&handles_mu_);
      if (!handles_.empty()) {
        CurlHandle curl = std::move(handles_.back());
        handles_.pop_back();
        curl_easy_reset(curl.get());  // options only; the connection cache stays
        return curl;
      }
    }
    return CurlHandle(curl_easy_init());
  }

  void Release(CurlHandle curl) {
    absl::MutexLock lock(&handles_mu_);
    if (handles_.size() < 64) handles_.push_back(std::move(curl));
  }

  const std::string url_;
  const UpstreamOptions options_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex handles_mu_;
  std::vector<CurlHandle> handles_ ABSL_GUARDED_BY(handles_mu_);
  std::unique_ptr<WorkerPool> relays_;
};

}  // namespace

bool IsServableNarFileName(std::string_view file_name) {
  if (file_name.empty() || file_name.size() > 255 || file_name.front() == '.') return false;
  return std::all_of(file_name.begin(), file_name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '+' || c == '-';
  });
}

absl::StatusOr<std::unique_ptr<Upstream>> OpenUpstream(std::string_view url, UpstreamOptions options) {
  if (url.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(Cat("upstream ", consensus::QuoteForError(url),
                                          ": has a query or fragment; give the plain cache URL (parameters "
                                          "like ?compression= belong to `nix copy`, not to the gateway)"));
  }
  if (url.substr(0, 7) == "file://") {
    const std::string directory = StripTrailingSlashes(url.substr(7));
    if (directory.empty() || directory.front() != '/') {
      return absl::InvalidArgumentError(Cat("upstream ", consensus::QuoteForError(url),
                                            ": a file:// upstream needs an absolute path (file:///srv/cache)"));
    }
    struct stat st {};
    if (::stat(directory.c_str(), &st) != 0) {
      return absl::NotFoundError(Cat("upstream directory ", directory, ": ", std::strerror(errno),
                                     " (make it with `nix copy --to file://", directory, "`)"));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(Cat("upstream ", directory, " is not a directory"));
    }
    return std::unique_ptr<Upstream>(new FileUpstream(Cat("file://", directory), directory));
  }
  const bool http = url.substr(0, 7) == "http://";
  const bool https = url.substr(0, 8) == "https://";
  if (!http && !https) {
    return absl::InvalidArgumentError(
        Cat("upstream ", consensus::QuoteForError(url), ": expected http://, https:// or file:///path"));
  }
  const std::string_view rest = url.substr(http ? 7 : 8);
  if (rest.empty() || rest.front() == '/') {
    return absl::InvalidArgumentError(Cat("upstream ", consensus::QuoteForError(url), ": no host"));
  }
  InitCurlOnce();
  return std::unique_ptr<Upstream>(new HttpUpstream(StripTrailingSlashes(url), options));
}

void InitCurlOnce() {
  static std::once_flag curl_initialised;
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace attest::server
