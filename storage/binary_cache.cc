#include "storage/binary_cache.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "consensus/cache_url.h"
#include "consensus/encoding.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "storage/files.h"

namespace attest::storage {
namespace {

using consensus::Cat;
using consensus::QuoteForError;

constexpr size_t kFileReadBytes = size_t{256} << 10;
constexpr int kMaxRedirects = 5;
// An error response's body is read and dropped up to this much, so the connection can be reused (a
// 404 is the common answer of a source that lacks a path); a longer one ends the connection.
constexpr size_t kMaxDiscardedBodyBytes = size_t{64} << 10;

absl::Status ValidateHashPart(std::string_view hash_part) {
  const bool ok = hash_part.size() == consensus::kStorePathHashLength &&
                  std::all_of(hash_part.begin(), hash_part.end(), [](char c) {
                    return consensus::kNix32Alphabet.find(c) != std::string_view::npos;
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat("narinfo name ", QuoteForError(hash_part), ": expected the ",
                                        consensus::kStorePathHashLength,
                                        " nix32 characters of a store path's hash part"));
}

absl::Status ValidateNarFileName(std::string_view file_name) {
  if (IsSourceNarFileName(file_name)) return absl::OkStatus();
  return absl::InvalidArgumentError(Cat("NAR file name ", QuoteForError(file_name),
                                        ": expected 1 to 255 characters of [A-Za-z0-9._+-], not starting "
                                        "with '.' (the file part of a narinfo's URL: nar/<file>)"));
}

// ---- file:// ------------------------------------------------------------------------------------

class FileBinaryCache final : public BinaryCache {
 public:
  FileBinaryCache(std::string url, std::string directory) : url_(std::move(url)), directory_(std::move(directory)) {}

  absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) override {
    if (absl::Status valid = ValidateHashPart(hash_part); !valid.ok()) return valid;
    if (cancelled_.load()) return Cancelled();
    const std::string path = Cat(directory_, "/", hash_part, ".narinfo");
    absl::StatusOr<ScopedFdAndSize> file = OpenRegular(path);
    if (!file.ok()) return file.status();
    if (file->size > kMaxSourceNarInfoBytes) return TooLargeNarInfo(path);
    std::string text;
    char buffer[16 << 10];
    while (true) {
      const ssize_t n = ::read(file->fd->get(), buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ReadFailure(path, errno);
      if (n == 0) break;
      if (text.size() + static_cast<size_t>(n) > kMaxSourceNarInfoBytes) return TooLargeNarInfo(path);
      text.append(buffer, static_cast<size_t>(n));
    }
    return text;
  }

  absl::Status FetchNarFile(std::string_view file_name, uint64_t max_bytes, const Sink& sink) override {
    if (absl::Status valid = ValidateNarFileName(file_name); !valid.ok()) return valid;
    if (cancelled_.load()) return Cancelled();
    const std::string path = Cat(directory_, "/nar/", file_name);
    absl::StatusOr<ScopedFdAndSize> file = OpenRegular(path);
    if (!file.ok()) return file.status();
    if (file->size > max_bytes) return TooLong(path, max_bytes);
    std::vector<uint8_t> buffer(kFileReadBytes);
    uint64_t total = 0;
    while (true) {
      if (cancelled_.load()) return Cancelled();
      const ssize_t n = ::read(file->fd->get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ReadFailure(path, errno);
      if (n == 0) return absl::OkStatus();
      // The file may grow while it is read: the limit holds for what is read, not what fstat said.
      if (static_cast<uint64_t>(n) > max_bytes - total) return TooLong(path, max_bytes);
      total += static_cast<uint64_t>(n);
      if (absl::Status status = sink(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(n)));
          !status.ok()) {
        return status;
      }
    }
  }

  const std::string& url() const override { return url_; }
  void Cancel() override { cancelled_.store(true); }

 private:
  struct ScopedFdAndSize {
    std::unique_ptr<ScopedFd> fd;
    uint64_t size = 0;
  };

  // Opens a regular file that is not a symbolic link. O_NONBLOCK so that a FIFO placed in the cache
  // cannot block the open; it has no effect on reading a regular file.
  absl::StatusOr<ScopedFdAndSize> OpenRegular(const std::string& path) const {
    int fd = -1;
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return OpenFailure(path, errno);
    auto scoped = std::make_unique<ScopedFd>(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return ReadFailure(path, errno);
    if (!S_ISREG(st.st_mode)) {
      return absl::NotFoundError(
          Cat("binary cache ", url_, ": ", path, " is not a regular file (a cache holds plain files only)"));
    }
    return ScopedFdAndSize{.fd = std::move(scoped), .size = static_cast<uint64_t>(st.st_size)};
  }

  absl::Status OpenFailure(const std::string& path, int err) const {
    if (err == ENOENT || err == ENOTDIR) {
      struct stat st {};
      if (::stat(directory_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return absl::UnavailableError(Cat("binary cache ", url_, ": the directory ", directory_,
                                          " is missing (is the disk mounted? `nix copy --to ", url_,
                                          "` creates it)"));
      }
      return absl::NotFoundError(Cat("binary cache ", url_, ": no ", path));
    }
    if (err == ELOOP) {
      return absl::PermissionDeniedError(Cat("binary cache ", url_, ": ", path,
                                             " is a symbolic link; a file:// cache is read without following "
                                             "links (copy the file into the cache instead)"));
    }
    return absl::UnavailableError(Cat("binary cache ", url_, ": opening ", path, ": ", std::strerror(err)));
  }

  absl::Status ReadFailure(const std::string& path, int err) const {
    return absl::UnavailableError(Cat("binary cache ", url_, ": reading ", path, ": ", std::strerror(err)));
  }

  absl::Status TooLargeNarInfo(const std::string& path) const {
    return absl::ResourceExhaustedError(
        Cat("binary cache ", url_, ": ", path, " is larger than ", kMaxSourceNarInfoBytes, " bytes; not a narinfo"));
  }

  absl::Status TooLong(const std::string& path, uint64_t max_bytes) const {
    return absl::DataLossError(Cat("binary cache ", url_, ": ", path, " is longer than ", max_bytes,
                                   " bytes, the size its narinfo allows"));
  }

  absl::Status Cancelled() const {
    return absl::UnavailableError(Cat("binary cache ", url_, ": cancelled (shutting down)"));
  }

  const std::string url_;
  const std::string directory_;
  std::atomic<bool> cancelled_{false};
};

// ---- http(s):// ---------------------------------------------------------------------------------

void InitCurlOnce() {
  static std::once_flag curl_initialised;
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter final {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct CurlUrlDeleter final {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

// Scheme, host and port of a URL, as libcurl reads it (scheme and host lower-cased by us, the port
// made explicit when the URL leaves it out).
struct Origin final {
  std::string scheme;
  std::string host;
  std::string port;
  bool operator==(const Origin&) const = default;
};

std::optional<Origin> OriginOf(const std::string& url) {
  std::unique_ptr<CURLU, CurlUrlDeleter> handle(curl_url());
  if (!handle || curl_url_set(handle.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return std::nullopt;
  Origin origin;
  const std::pair<CURLUPart, std::string*> parts[] = {
      {CURLUPART_SCHEME, &origin.scheme}, {CURLUPART_HOST, &origin.host}, {CURLUPART_PORT, &origin.port}};
  for (const auto& [part, out] : parts) {
    char* value = nullptr;
    if (curl_url_get(handle.get(), part, &value, CURLU_DEFAULT_PORT) != CURLUE_OK || value == nullptr) {
      return std::nullopt;
    }
    *out = value;
    curl_free(value);
  }
  absl::AsciiStrToLower(&origin.scheme);
  absl::AsciiStrToLower(&origin.host);
  return origin;
}

// What one request is for: the narinfo (kept in memory, bounded) or a NAR file (streamed to a sink).
struct Transfer final {
  CURL* curl = nullptr;
  const std::atomic<bool>* cancelled = nullptr;
  // The narinfo body, or the sink of a NAR file.
  std::string* text = nullptr;
  const BinaryCache::Sink* sink = nullptr;
  uint64_t max_bytes = 0;

  // Filled while the response arrives.
  long status = 0;
  bool body_started = false;
  uint64_t received = 0;   // body bytes of a 200 answer
  uint64_t discarded = 0;  // body bytes of any other answer
  bool too_long = false;
  bool stopped_other_status = false;
  absl::Status sink_status;

  // Stall detection for NAR files (zero for a narinfo, whose whole deadline is short). libcurl's own
  // low-speed check averages over several seconds, so a server that sent some bytes and then went
  // silent would be noticed only seconds after stall_timeout; this counts from the last byte.
  absl::Duration stall_timeout = absl::ZeroDuration();
  curl_off_t last_received = 0;
  absl::Time last_byte_at;
  bool stalled = false;
};

size_t OnData(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const size_t bytes = size * count;
  if (t.cancelled->load()) return 0;
  if (!t.body_started) {
    t.body_started = true;
    curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &t.status);
    if (t.status == 200) {
      curl_off_t length = -1;
      curl_easy_getinfo(t.curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
      // Announced too long: refused before a byte reaches the sink.
      if (length >= 0 && static_cast<uint64_t>(length) > t.max_bytes) {
        t.too_long = true;
        return 0;
      }
    }
  }
  if (t.status != 200) {
    t.discarded += bytes;
    if (t.discarded <= kMaxDiscardedBodyBytes) return bytes;
    t.stopped_other_status = true;
    return 0;
  }
  if (bytes > t.max_bytes - t.received) {
    t.too_long = true;
    return 0;
  }
  t.received += bytes;
  if (t.text != nullptr) {
    t.text->append(data, bytes);
    return bytes;
  }
  t.sink_status = (*t.sink)(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), bytes));
  return t.sink_status.ok() ? bytes : 0;
}

// Called at least once a second while a transfer runs, even when no byte arrives: Cancel ends a
// stalled transfer within about a second.
int OnProgress(void* user, curl_off_t, curl_off_t received, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.cancelled->load()) return 1;
  if (t.stall_timeout <= absl::ZeroDuration()) return 0;
  const absl::Time now = absl::Now();
  if (received != t.last_received) {
    t.last_received = received;
    t.last_byte_at = now;
    return 0;
  }
  if (now - t.last_byte_at < t.stall_timeout) return 0;
  t.stalled = true;
  return 1;
}

class HttpBinaryCache final : public BinaryCache {
 public:
  HttpBinaryCache(std::string url, BinaryCacheOptions options) : url_(std::move(url)), options_(options) {}

  absl::StatusOr<std::string> FetchNarInfo(std::string_view hash_part) override {
    if (absl::Status valid = ValidateHashPart(hash_part); !valid.ok()) return valid;
    std::string text;
    Transfer t;
    t.text = &text;
    t.max_bytes = kMaxSourceNarInfoBytes;
    absl::Status status = Fetch(Cat(url_, "/", hash_part, ".narinfo"), Kind::kNarInfo, t);
    if (!status.ok()) return status;
    return text;
  }

  absl::Status FetchNarFile(std::string_view file_name, uint64_t max_bytes, const Sink& sink) override {
    if (absl::Status valid = ValidateNarFileName(file_name); !valid.ok()) return valid;
    Transfer t;
    t.sink = &sink;
    t.max_bytes = max_bytes;
    return Fetch(Cat(url_, "/nar/", file_name), Kind::kNarFile, t);
  }

  const std::string& url() const override { return url_; }
  void Cancel() override { cancelled_.store(true); }

 private:
  enum class Kind { kNarInfo, kNarFile };

  // GETs `target`, following same-origin redirects, into `t`.
  absl::Status Fetch(const std::string& target, Kind kind, Transfer& t) {
    if (cancelled_.load()) return absl::UnavailableError(Cat("binary cache ", target, ": cancelled (shutting down)"));
    const std::optional<Origin> origin = OriginOf(target);
    if (!origin) return absl::InvalidArgumentError(Cat("binary cache ", QuoteForError(target), ": not a URL"));
    const absl::Duration budget = kind == Kind::kNarInfo ? options_.connect_timeout : options_.transfer_timeout;
    const absl::Time deadline = absl::Now() + budget;
    CurlHandle curl = Acquire();
    if (!curl) return absl::UnavailableError("libcurl could not make a handle (out of memory?)");
    std::string current = target;
    for (int redirects = 0;; ++redirects) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return absl::UnavailableError(
            Cat("binary cache ", target, ": no answer within ", absl::FormatDuration(budget)));
      }
      char error[CURL_ERROR_SIZE] = {0};
      const CURLcode code = Perform(curl.get(), current, kind, left, error, t);
      // Classify before giving the handle back.
      long status = 0;
      curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
      if (!t.body_started) t.status = status;
      std::string location;
      if (status >= 300 && status < 400) {
        char* redirect = nullptr;
        if (curl_easy_getinfo(curl.get(), CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect != nullptr) {
          location = redirect;
        }
      }
      const bool connection_fine = code == CURLE_OK;
      if (!t.sink_status.ok()) return t.sink_status;
      if (t.too_long) {
        if (kind == Kind::kNarInfo) {
          return absl::ResourceExhaustedError(
              Cat("binary cache ", current, ": larger than ", kMaxSourceNarInfoBytes, " bytes; not a narinfo"));
        }
        return absl::DataLossError(Cat("binary cache ", current, ": the NAR file is longer than ", t.max_bytes,
                                       " bytes, the size its narinfo allows; reading stopped there"));
      }
      if (code == CURLE_ABORTED_BY_CALLBACK && t.stalled) {
        return absl::UnavailableError(Cat("binary cache ", current, ": stalled, no byte for ",
                                          absl::FormatDuration(options_.stall_timeout), " (after ", t.received,
                                          " bytes of the body)"));
      }
      if (code == CURLE_ABORTED_BY_CALLBACK || (code == CURLE_WRITE_ERROR && cancelled_.load())) {
        return absl::UnavailableError(Cat("binary cache ", current, ": cancelled (shutting down)"));
      }
      if (!connection_fine && !t.stopped_other_status) {
        return TransferFailure(current, kind, code, error, t, deadline, budget);
      }
      if (status == 200) {
        Release(std::move(curl));
        return absl::OkStatus();
      }
      if (status >= 300 && status < 400) {
        if (location.empty()) {
          return absl::UnavailableError(Cat("binary cache ", current, ": HTTP ", status, " without a Location"));
        }
        if (redirects == kMaxRedirects) {
          return absl::UnavailableError(Cat("binary cache ", target, ": redirect loop (more than ", kMaxRedirects,
                                            " redirects in a row, the last to ", QuoteForError(location), ")"));
        }
        const std::optional<Origin> next = OriginOf(location);
        if (!next || !(*next == *origin)) {
          return absl::PermissionDeniedError(
              Cat("binary cache ", current, " redirects to ", QuoteForError(location),
                  ", another scheme, host or port; a source is read only at its own address (list that "
                  "address as the cache URL if it is the real cache)"));
        }
        current = std::move(location);
        t.body_started = false;
        t.discarded = 0;
        t.stopped_other_status = false;
        continue;
      }
      if (connection_fine) Release(std::move(curl));
      if (status == 404 || status == 403 || status == 410) {
        return absl::NotFoundError(Cat("binary cache ", current, ": HTTP ", status, " (the cache does not hold it)"));
      }
      return absl::UnavailableError(Cat("binary cache ", current, ": HTTP ", status));
    }
  }

  CURLcode Perform(CURL* curl, const std::string& target, Kind kind, absl::Duration left, char* error,
                   Transfer& t) {
    curl_easy_setopt(curl, CURLOPT_URL, target.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "attest");
    const long left_ms = std::max<long>(1, static_cast<long>(absl::ToInt64Milliseconds(left)));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     std::min(left_ms, static_cast<long>(absl::ToInt64Milliseconds(options_.connect_timeout))));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, left_ms);
    if (kind == Kind::kNarInfo) {
      // A narinfo may be stored compressed (S3 caches written with narinfo-compression); its decoded
      // size is what the limit bounds.
      curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    } else {
      // The bytes must be the file as stored: its hash is checked against the narinfo's FileHash.
      curl_easy_setopt(curl, CURLOPT_HTTP_CONTENT_DECODING, 0L);
      t.stall_timeout = options_.stall_timeout;
      t.last_received = 0;
      t.last_byte_at = absl::Now();
      // A backstop for the check in OnProgress, in case libcurl calls it less often than documented.
      curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                       std::max<long>(1, static_cast<long>(absl::ToInt64Seconds(options_.stall_timeout))));
    }
    t.curl = curl;
    t.cancelled = &cancelled_;
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnData);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    return curl_easy_perform(curl);
  }

  absl::Status TransferFailure(const std::string& target, Kind kind, CURLcode code, const char* error,
                               const Transfer& t, absl::Time deadline, absl::Duration budget) const {
    const std::string reason = error[0] != 0 ? error : curl_easy_strerror(code);
    if (code == CURLE_OPERATION_TIMEDOUT) {
      if (kind == Kind::kNarFile && absl::Now() < deadline - absl::Milliseconds(100)) {
        return absl::UnavailableError(Cat("binary cache ", target, ": stalled, no byte for ",
                                          absl::FormatDuration(options_.stall_timeout), " (", reason, ")"));
      }
      return absl::UnavailableError(
          Cat("binary cache ", target, ": timed out after ", absl::FormatDuration(budget), " (", reason, ")"));
    }
    if (kind == Kind::kNarFile && t.status == 200) {
      if (code == CURLE_PARTIAL_FILE) {
        return absl::DataLossError(Cat("binary cache ", target, ": the body ended after ", t.received,
                                       " bytes, before the end the cache announced (Content-Length or chunked encoding): ", reason));
      }
      if (t.received > 0) {
        return absl::DataLossError(
            Cat("binary cache ", target, ": the connection broke after ", t.received, " bytes of the body: ", reason));
      }
    }
    return absl::UnavailableError(Cat("binary cache ", target, ": ", reason));
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

  // Kept only after a transfer that ended cleanly, so that a broken connection is not reused.
  void Release(CurlHandle curl) {
    absl::MutexLock lock(&handles_mu_);
    if (handles_.size() < 16) handles_.push_back(std::move(curl));
  }

  const std::string url_;
  const BinaryCacheOptions options_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex handles_mu_;
  std::vector<CurlHandle> handles_ ABSL_GUARDED_BY(handles_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<BinaryCache>> BinaryCache::Open(std::string_view url, BinaryCacheOptions options) {
  absl::StatusOr<std::string> normalised = consensus::ValidateCacheUrl(url);
  if (!normalised.ok()) {
    return absl::InvalidArgumentError(Cat("binary cache URL: ", consensus::StdView(normalised.status().message())));
  }
  if (absl::StartsWith(*normalised, "file://")) {
    std::string directory = normalised->substr(7);
    return std::unique_ptr<BinaryCache>(new FileBinaryCache(*std::move(normalised), std::move(directory)));
  }
  InitCurlOnce();
  return std::unique_ptr<BinaryCache>(new HttpBinaryCache(*std::move(normalised), options));
}

bool IsSourceNarFileName(std::string_view file_name) {
  if (file_name.empty() || file_name.size() > 255 || file_name.front() == '.') return false;
  return std::all_of(file_name.begin(), file_name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '+' || c == '-';
  });
}

std::optional<std::string> SourceNarFileName(std::string_view narinfo_url, std::string_view cache_url) {
  while (!cache_url.empty() && cache_url.back() == '/') cache_url.remove_suffix(1);
  std::string_view rest = narinfo_url;
  if (absl::StartsWith(consensus::AbslView(rest), "nar/")) {
    rest.remove_prefix(4);
  } else {
    const std::string prefix = Cat(cache_url, "/nar/");
    if (cache_url.empty() || !absl::StartsWith(consensus::AbslView(rest), prefix)) return std::nullopt;
    rest.remove_prefix(prefix.size());
  }
  if (!IsSourceNarFileName(rest)) return std::nullopt;
  return std::string(rest);
}

}  // namespace attest::storage
