#include "storage/binary_cache.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "consensus/text.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using consensus::Cat;

constexpr std::string_view kHash = "0123456789abcdfghijklmnpqrsvwxyz";  // 32 nix32 characters

bool Contains(const absl::Status& status, std::string_view part) {
  return absl::StrContains(status.message(), consensus::AbslView(part));
}

// ---- a scripted HTTP/1.1 server on 127.0.0.1 ------------------------------------------------------
//
// Answers each request path with a scripted reply, including the misbehaviour a real server would not
// produce: a body shorter than its Content-Length, a body that never ends, headers and then silence.
// Every wait is sliced so the destructor ends all connections within a fraction of a second.

struct Reply {
  std::string head;  // status line and header lines, each ending in \r\n; the blank line is added
  std::string body;
  enum class Then { kKeepAlive, kClose, kEndless, kStall } then = Then::kKeepAlive;
};

Reply Ok(std::string body) {
  Reply r;
  r.head = Cat("HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\n");
  r.body = std::move(body);
  return r;
}

Reply Status(int code, std::string_view reason) {
  Reply r;
  r.body = Cat("status ", code);
  r.head = Cat("HTTP/1.1 ", code, " ", reason, "\r\nContent-Length: ", r.body.size(), "\r\n");
  return r;
}

Reply Redirect(std::string_view location) {
  Reply r;
  r.head = Cat("HTTP/1.1 302 Found\r\nLocation: ", location, "\r\nContent-Length: 0\r\n");
  return r;
}

class ScriptedHttpServer final {
 public:
  ScriptedHttpServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(listen_fd_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~ScriptedHttpServer() {
    stop_.store(true);
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(connection_threads_);
    }
    for (std::thread& t : threads) t.join();
    ::close(listen_fd_);
  }

  void On(const std::string& path, Reply reply) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_[path] = std::move(reply);
  }

  std::string url() const { return Cat("http://127.0.0.1:", port_); }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  std::vector<std::string> request_heads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return request_heads_;
  }

 private:
  // Waits until `fd` is ready for `events`; false when the server stops first.
  bool WaitFor(int fd, short events) const {
    while (!stop_.load()) {
      pollfd p{.fd = fd, .events = events, .revents = 0};
      const int n = ::poll(&p, 1, 50);
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
    return false;
  }

  bool SendAll(int fd, std::string_view bytes) const {
    while (!bytes.empty()) {
      if (!WaitFor(fd, POLLOUT)) return false;
      const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  void AcceptLoop() {
    while (WaitFor(listen_fd_, POLLIN)) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      connection_threads_.emplace_back([this, fd] {
        Serve(fd);
        ::close(fd);
      });
    }
  }

  void Serve(int fd) {
    std::string input;
    while (true) {
      size_t end;
      while ((end = input.find("\r\n\r\n")) == std::string::npos) {
        if (!WaitFor(fd, POLLIN)) return;
        char buffer[4096];
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return;
        input.append(buffer, static_cast<size_t>(n));
      }
      const std::string head = input.substr(0, end);
      input.erase(0, end + 4);
      const size_t first = head.find(' ');
      const size_t second = head.find(' ', first + 1);
      const std::string path = head.substr(first + 1, second - first - 1);
      requests_.fetch_add(1);
      Reply reply;
      {
        std::lock_guard<std::mutex> lock(mu_);
        request_heads_.push_back(head);
        auto it = replies_.find(path);
        reply = it != replies_.end() ? it->second : Status(404, "Not Found");
      }
      if (!SendAll(fd, Cat(reply.head, "\r\n", reply.body))) return;
      switch (reply.then) {
        case Reply::Then::kKeepAlive:
          continue;
        case Reply::Then::kClose:
          return;
        case Reply::Then::kEndless: {
          const std::string chunk(64 << 10, 'x');
          while (SendAll(fd, chunk)) {
          }
          return;
        }
        case Reply::Then::kStall: {
          // Nothing more: wait until the client gives up (closes) or the server stops.
          char buffer[256];
          while (WaitFor(fd, POLLIN)) {
            const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
          }
          return;
        }
      }
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::map<std::string, Reply> replies_;
  std::vector<std::string> request_heads_;
  std::vector<std::thread> connection_threads_;
  std::thread accept_thread_;
};

// ---- helpers --------------------------------------------------------------------------------------

std::unique_ptr<BinaryCache> OpenOrDie(const std::string& url, BinaryCacheOptions options = {}) {
  absl::StatusOr<std::unique_ptr<BinaryCache>> cache = BinaryCache::Open(url, options);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? *std::move(cache) : nullptr;
}

// Fetches a NAR file into `out`.
absl::Status FetchInto(BinaryCache& cache, std::string_view file_name, uint64_t max_bytes, std::string& out) {
  return cache.FetchNarFile(file_name, max_bytes, [&out](std::span<const uint8_t> piece) {
    out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    return absl::OkStatus();
  });
}

// Bytes that differ from position to position, so a reordered or repeated piece shows.
std::string PatternBytes(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  return s;
}

class BinaryCacheFileTest : public ::testing::Test {
 protected:
  BinaryCacheFileTest() { EXPECT_EQ(::mkdir(dir_.File("nar").c_str(), 0755), 0); }
  std::string Url() const { return Cat("file://", dir_.path()); }
  testing::TempDir dir_;
};

// ---- file:// --------------------------------------------------------------------------------------

TEST_F(BinaryCacheFileTest, NarInfoFound) {
  testing::WriteFileOrDie(dir_.File(Cat(kHash, ".narinfo")), "StorePath: /nix/store/x\n");
  auto cache = OpenOrDie(Url() + "/");
  EXPECT_EQ(cache->url(), Url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "StorePath: /nix/store/x\n");
}

TEST_F(BinaryCacheFileTest, MissingNarInfoIsNotFound) {
  auto cache = OpenOrDie(Url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound) << text.status();
  EXPECT_TRUE(Contains(text.status(), Cat("no ", dir_.path(), "/", kHash, ".narinfo"))) << text.status();
}

TEST_F(BinaryCacheFileTest, MissingDirectoryIsUnavailableNotAnOpenError) {
  auto cache = OpenOrDie(Cat("file://", dir_.File("absent")));
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kUnavailable) << text.status();
  EXPECT_TRUE(Contains(text.status(), "is missing")) << text.status();
  std::string out;
  absl::Status nar = FetchInto(*cache, "a.nar", 100, out);
  EXPECT_EQ(nar.code(), absl::StatusCode::kUnavailable) << nar;
}

TEST_F(BinaryCacheFileTest, NotARegularFileIsNotFound) {
  ASSERT_EQ(::mkdir(dir_.File(Cat(kHash, ".narinfo")).c_str(), 0755), 0);
  auto cache = OpenOrDie(Url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound) << text.status();
  EXPECT_TRUE(Contains(text.status(), "is not a regular file")) << text.status();

  // A FIFO must not block the open (nobody will ever write to it).
  ASSERT_EQ(::mkfifo(dir_.File("nar/fifo.nar").c_str(), 0644), 0);
  std::string out;
  absl::Status nar = FetchInto(*cache, "fifo.nar", 100, out);
  EXPECT_EQ(nar.code(), absl::StatusCode::kNotFound) << nar;
  EXPECT_TRUE(Contains(nar, "is not a regular file")) << nar;
}

TEST_F(BinaryCacheFileTest, SymlinkInNarIsRefused) {
  testing::WriteFileOrDie(dir_.File("outside"), "secret");
  ASSERT_EQ(::symlink(dir_.File("outside").c_str(), dir_.File("nar/link.nar").c_str()), 0);
  auto cache = OpenOrDie(Url());
  std::string out;
  absl::Status status = FetchInto(*cache, "link.nar", 100, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
  EXPECT_TRUE(Contains(status, "is a symbolic link")) << status;
  EXPECT_EQ(out, "");
}

TEST_F(BinaryCacheFileTest, NarStreamedByteIdentical) {
  const std::string nar = PatternBytes((1 << 20) + 12345);  // several 256 KiB reads and a tail
  testing::WriteFileOrDie(dir_.File("nar/abc.nar.xz"), nar);
  auto cache = OpenOrDie(Url());
  std::string out;
  int pieces = 0;
  absl::Status status = cache->FetchNarFile("abc.nar.xz", nar.size(), [&](std::span<const uint8_t> piece) {
    ++pieces;
    EXPECT_LE(piece.size(), size_t{256} << 10);
    out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(out == nar) << "got " << out.size() << " bytes of " << nar.size();
  EXPECT_GE(pieces, 5);
}

TEST_F(BinaryCacheFileTest, NarLongerThanMaxBytesIsDataLoss) {
  testing::WriteFileOrDie(dir_.File("nar/big.nar"), PatternBytes(5000));
  auto cache = OpenOrDie(Url());
  std::string out;
  absl::Status status = FetchInto(*cache, "big.nar", 4999, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(Contains(status, "is longer than 4999 bytes")) << status;
  EXPECT_LE(out.size(), 4999u);
}

TEST_F(BinaryCacheFileTest, NarInfoLargerThanLimitIsResourceExhausted) {
  testing::WriteFileOrDie(dir_.File(Cat(kHash, ".narinfo")), std::string(kMaxSourceNarInfoBytes + 1, 'a'));
  auto cache = OpenOrDie(Url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kResourceExhausted) << text.status();
  EXPECT_TRUE(Contains(text.status(), "not a narinfo")) << text.status();
}

TEST_F(BinaryCacheFileTest, SinkErrorIsReturnedUnchanged) {
  testing::WriteFileOrDie(dir_.File("nar/a.nar"), "abcdef");
  auto cache = OpenOrDie(Url());
  const absl::Status refusal = absl::ResourceExhaustedError("the relay's disk is full");
  absl::Status status = cache->FetchNarFile("a.nar", 100, [&](std::span<const uint8_t>) { return refusal; });
  EXPECT_EQ(status, refusal);
}

TEST_F(BinaryCacheFileTest, CancelFailsLaterCalls) {
  testing::WriteFileOrDie(dir_.File("nar/a.nar"), "abcdef");
  auto cache = OpenOrDie(Url());
  cache->Cancel();
  std::string out;
  absl::Status status = FetchInto(*cache, "a.nar", 100, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(Contains(status, "cancelled")) << status;
  EXPECT_EQ(out, "");
}

// ---- arguments ------------------------------------------------------------------------------------

TEST(BinaryCacheTest, OpenRefusesUrlsThatAreNotCaches) {
  for (std::string_view url : {"ftp://example.org/cache", "file://relative/dir", "s3://bucket", "https://u:p@h/x",
                               "http://h/cache?compression=xz", ""}) {
    absl::StatusOr<std::unique_ptr<BinaryCache>> cache = BinaryCache::Open(url);
    EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_TRUE(Contains(cache.status(), "binary cache URL")) << cache.status();
  }
}

TEST(BinaryCacheTest, BadHashPartIsInvalidArgument) {
  auto cache = OpenOrDie("http://127.0.0.1:1/cache");  // never contacted
  for (std::string_view hash : {std::string_view(""), std::string_view("0123456789abcdfghijklmnpqrsvwxy"),
                                std::string_view("0123456789abcdfghijklmnpqrsvwxyze"),
                                std::string_view("0123456789abcdfghijklmnpqrsvwxye"),  // 'e' is not nix32
                                std::string_view("../../../../etc/passwd__________")}) {
    absl::StatusOr<std::string> text = cache->FetchNarInfo(hash);
    EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument) << hash;
    EXPECT_TRUE(Contains(text.status(), "nix32")) << text.status();
  }
}

TEST(BinaryCacheTest, BadFileNameIsInvalidArgument) {
  testing::TempDir dir;
  auto cache = OpenOrDie(Cat("file://", dir.path()));
  for (std::string_view name : {"", "../x.nar", ".hidden", "a/b.nar", "a b", "x.nar?y"}) {
    std::string out;
    absl::Status status = FetchInto(*cache, name, 100, out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_TRUE(Contains(status, "NAR file name")) << status;
  }
}

TEST(BinaryCacheTest, IsSourceNarFileName) {
  EXPECT_TRUE(IsSourceNarFileName("1bcd0p4s1nqqjsbklmwi9mkcjrh0yyk4kbpdmzx7lrwl2xqbgy59.nar.xz"));
  EXPECT_TRUE(IsSourceNarFileName("a.nar.zst"));
  EXPECT_TRUE(IsSourceNarFileName("A_b+c-d.nar"));
  EXPECT_TRUE(IsSourceNarFileName(std::string(255, 'a')));
  EXPECT_FALSE(IsSourceNarFileName(std::string(256, 'a')));
  EXPECT_FALSE(IsSourceNarFileName(""));
  EXPECT_FALSE(IsSourceNarFileName(".nar"));
  EXPECT_FALSE(IsSourceNarFileName(".."));
  EXPECT_FALSE(IsSourceNarFileName("a/b"));
  EXPECT_FALSE(IsSourceNarFileName("a%2fb"));
  EXPECT_FALSE(IsSourceNarFileName(std::string("a\0b", 3)));
}

TEST(BinaryCacheTest, SourceNarFileName) {
  EXPECT_EQ(SourceNarFileName("nar/abc.nar.xz", "https://c.example"), "abc.nar.xz");
  EXPECT_EQ(SourceNarFileName("https://c.example/nar/abc.nar", "https://c.example"), "abc.nar");
  EXPECT_EQ(SourceNarFileName("https://c.example/sub/nar/abc.nar", "https://c.example/sub/"), "abc.nar");
  EXPECT_EQ(SourceNarFileName("file:///srv/cache/nar/abc.nar", "file:///srv/cache"), "abc.nar");
  // Anything but the cache's own nar/ directory.
  EXPECT_EQ(SourceNarFileName("https://other.example/nar/abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("https://c.example.evil/nar/abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("https://c.example/other/nar/abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("/nar/abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("nar/", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("nar/../abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("nar/sub/abc.nar", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("nar/.hidden", "https://c.example"), std::nullopt);
  EXPECT_EQ(SourceNarFileName("https://c.example/nar/abc.nar", ""), std::nullopt);
}

// ---- http:// --------------------------------------------------------------------------------------

TEST(BinaryCacheHttpTest, NarInfoFoundAndConnectionReused) {
  ScriptedHttpServer server;
  server.On(Cat("/cache/", kHash, ".narinfo"), Ok("StorePath: /nix/store/x\n"));
  auto cache = OpenOrDie(server.url() + "/cache/");
  EXPECT_EQ(cache->url(), server.url() + "/cache");
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, "StorePath: /nix/store/x\n");
  }
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.connections(), 1);
}

TEST(BinaryCacheHttpTest, NarStreamedByteIdenticalWithoutContentDecoding) {
  ScriptedHttpServer server;
  const std::string nar = PatternBytes((3 << 20) + 7);
  // A server that labels the file as gzip-encoded: the bytes must still arrive exactly as stored.
  Reply reply = Ok(nar);
  reply.head += "Content-Encoding: gzip\r\n";
  server.On("/nar/abc.nar.xz", reply);
  auto cache = OpenOrDie(server.url());
  std::string out;
  absl::Status status = FetchInto(*cache, "abc.nar.xz", nar.size(), out);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(out == nar) << "got " << out.size() << " bytes of " << nar.size();
  const std::vector<std::string> heads = server.request_heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_FALSE(absl::StrContains(absl::AsciiStrToLower(heads[0]), "accept-encoding")) << heads[0];
}

TEST(BinaryCacheHttpTest, AnnouncedLongerThanMaxBytesIsDataLoss) {
  ScriptedHttpServer server;
  server.On("/nar/big.nar", Ok(PatternBytes(5000)));
  auto cache = OpenOrDie(server.url());
  std::string out;
  absl::Status status = FetchInto(*cache, "big.nar", 4000, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(Contains(status, "longer than 4000 bytes")) << status;
  EXPECT_LE(out.size(), 4000u);
}

TEST(BinaryCacheHttpTest, Status500IsUnavailable) {
  ScriptedHttpServer server;
  server.On(Cat("/", kHash, ".narinfo"), Status(500, "Internal Server Error"));
  server.On("/nar/a.nar", Status(502, "Bad Gateway"));
  auto cache = OpenOrDie(server.url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kUnavailable) << text.status();
  EXPECT_TRUE(Contains(text.status(), "HTTP 500")) << text.status();
  std::string out;
  absl::Status nar = FetchInto(*cache, "a.nar", 1000, out);
  EXPECT_EQ(nar.code(), absl::StatusCode::kUnavailable) << nar;
  EXPECT_TRUE(Contains(nar, "HTTP 502")) << nar;
  EXPECT_EQ(out, "");  // an error page is never handed to the sink
}

TEST(BinaryCacheHttpTest, Status404IsNotFound) {
  ScriptedHttpServer server;
  server.On("/nar/gone.nar", Status(410, "Gone"));
  auto cache = OpenOrDie(server.url());
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);  // not scripted: 404
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound) << text.status();
  EXPECT_TRUE(Contains(text.status(), "HTTP 404")) << text.status();
  std::string out;
  absl::Status nar = FetchInto(*cache, "gone.nar", 1000, out);
  EXPECT_EQ(nar.code(), absl::StatusCode::kNotFound) << nar;
  EXPECT_TRUE(Contains(nar, "HTTP 410")) << nar;
  EXPECT_EQ(out, "");
}

TEST(BinaryCacheHttpTest, BodyShorterThanContentLengthIsDataLoss) {
  ScriptedHttpServer server;
  Reply reply;
  reply.head = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n";
  reply.body = "only ten!!";
  reply.then = Reply::Then::kClose;
  server.On("/nar/short.nar", reply);
  auto cache = OpenOrDie(server.url());
  std::string out;
  absl::Status status = FetchInto(*cache, "short.nar", 1000, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(Contains(status, "ended after 10 bytes, before the end the cache announced")) << status;
  EXPECT_EQ(out, "only ten!!");  // given to the sink; the caller discards it on the error
}

TEST(BinaryCacheHttpTest, ChunkedBodyCutOffIsDataLoss) {
  ScriptedHttpServer server;
  Reply reply;
  reply.head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n";
  reply.body = "5\r\nhello\r\n100\r\npartial";  // a 256-byte chunk cut off after 7
  reply.then = Reply::Then::kClose;
  server.On("/nar/cut.nar", reply);
  auto cache = OpenOrDie(server.url());
  std::string out;
  absl::Status status = FetchInto(*cache, "cut.nar", 1000, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(Contains(status, "ended after 12 bytes")) << status;
}

TEST(BinaryCacheHttpTest, ConcurrentFetchesFromOneCache) {
  ScriptedHttpServer server;
  const std::string nar = PatternBytes(300000);
  server.On("/nar/a.nar", Ok(nar));
  auto cache = OpenOrDie(server.url());
  std::vector<absl::Status> statuses(8);
  std::vector<std::string> outs(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < statuses.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 3 && statuses[i].ok(); ++round) {
        outs[i].clear();
        statuses[i] = FetchInto(*cache, "a.nar", nar.size(), outs[i]);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < statuses.size(); ++i) {
    EXPECT_TRUE(statuses[i].ok()) << statuses[i];
    EXPECT_TRUE(outs[i] == nar) << "thread " << i << " got " << outs[i].size() << " bytes";
  }
  EXPECT_EQ(server.requests(), 24);
  EXPECT_LE(server.connections(), 8);  // connections are reused between rounds
}

TEST(BinaryCacheHttpTest, EndlessBodyStopsAtMaxBytes) {
  ScriptedHttpServer server;
  Reply reply;
  reply.head = "HTTP/1.1 200 OK\r\nConnection: close\r\n";  // no length: the body ends when the server closes
  reply.then = Reply::Then::kEndless;
  server.On("/nar/endless.nar", reply);
  auto cache = OpenOrDie(server.url());
  const uint64_t max_bytes = 2 << 20;
  uint64_t received = 0;
  const absl::Time start = absl::Now();
  absl::Status status = cache->FetchNarFile("endless.nar", max_bytes, [&](std::span<const uint8_t> piece) {
    received += piece.size();
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_TRUE(Contains(status, "longer than 2097152 bytes")) << status;
  EXPECT_LE(received, max_bytes);
  EXPECT_GT(received, 0u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(BinaryCacheHttpTest, StalledBodyIsUnavailableAfterStallTimeout) {
  ScriptedHttpServer server;
  // Headers and then nothing; headers, a few bytes and then nothing.
  for (std::string_view body : {"", "a few bytes"}) {
    Reply reply;
    reply.head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n";
    reply.body = std::string(body);
    reply.then = Reply::Then::kStall;
    server.On("/nar/stalled.nar", reply);
    auto cache = OpenOrDie(server.url(), BinaryCacheOptions{.stall_timeout = absl::Seconds(1)});
    std::string out;
    const absl::Time start = absl::Now();
    absl::Status status = FetchInto(*cache, "stalled.nar", 100000, out);
    const absl::Duration took = absl::Now() - start;
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_TRUE(Contains(status, "stalled, no byte for 1s")) << status;
    EXPECT_EQ(out, body);
    EXPECT_GE(took, absl::Milliseconds(900));
    EXPECT_LT(took, absl::Seconds(4)) << "the stall was noticed late";
  }
}

TEST(BinaryCacheHttpTest, RedirectToSameOriginIsFollowed) {
  ScriptedHttpServer server;
  server.On("/cache/nar/a.nar", Redirect("/elsewhere/a.nar"));  // relative
  server.On("/elsewhere/a.nar", Redirect(Cat(server.url(), "/final/a.nar")));  // absolute, same origin
  server.On("/final/a.nar", Ok("the nar"));
  auto cache = OpenOrDie(server.url() + "/cache");
  std::string out;
  absl::Status status = FetchInto(*cache, "a.nar", 100, out);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(out, "the nar");
  EXPECT_EQ(server.requests(), 3);
}

TEST(BinaryCacheHttpTest, RedirectLoopIsUnavailable) {
  ScriptedHttpServer server;
  server.On("/nar/loop.nar", Redirect("/nar/loop.nar"));
  server.On(Cat("/", kHash, ".narinfo"), Redirect(Cat("/", kHash, ".narinfo")));
  auto cache = OpenOrDie(server.url());
  std::string out;
  absl::Status status = FetchInto(*cache, "loop.nar", 100, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(Contains(status, "redirect loop")) << status;
  EXPECT_EQ(server.requests(), 6);  // the first request and 5 redirects followed
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kUnavailable) << text.status();
  EXPECT_TRUE(Contains(text.status(), "redirect loop")) << text.status();
}

TEST(BinaryCacheHttpTest, RedirectToAnotherOriginIsPermissionDenied) {
  ScriptedHttpServer server;
  ScriptedHttpServer other;
  other.On("/nar/a.nar", Ok("bytes from elsewhere"));
  const std::string other_port = Cat(other.url(), "/nar/a.nar");
  const std::string other_host = Cat("http://localhost:", server.port(), "/nar/a.nar");
  const std::string other_scheme = Cat("https://127.0.0.1:", server.port(), "/nar/a.nar");
  server.On("/nar/port.nar", Redirect(other_port));
  server.On("/nar/host.nar", Redirect(other_host));
  server.On("/nar/scheme.nar", Redirect(other_scheme));
  auto cache = OpenOrDie(server.url());
  for (const auto& [name, location] : std::vector<std::pair<std::string, std::string>>{
           {"port.nar", other_port}, {"host.nar", other_host}, {"scheme.nar", other_scheme}}) {
    std::string out;
    absl::Status status = FetchInto(*cache, name, 100, out);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << status;
    EXPECT_TRUE(Contains(status, Cat(server.url(), "/nar/", name))) << status;
    EXPECT_TRUE(Contains(status, location)) << status;
    EXPECT_EQ(out, "");
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(other.requests(), 0);
  EXPECT_EQ(other.connections(), 0);
}

TEST(BinaryCacheHttpTest, CancelEndsAStalledTransfer) {
  ScriptedHttpServer server;
  Reply reply;
  reply.head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n";
  reply.body = "a few bytes";
  reply.then = Reply::Then::kStall;
  server.On("/nar/stalled.nar", reply);
  auto cache = OpenOrDie(server.url());  // default stall_timeout: 30 s, far beyond the test
  std::atomic<uint64_t> received{0};
  absl::Status status;
  std::thread fetch([&] {
    status = cache->FetchNarFile("stalled.nar", 100000, [&](std::span<const uint8_t> piece) {
      received += piece.size();
      return absl::OkStatus();
    });
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (received.load() == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  ASSERT_GT(received.load(), 0u) << "the transfer never started";
  const absl::Time cancelled_at = absl::Now();
  cache->Cancel();
  fetch.join();
  EXPECT_LT(absl::Now() - cancelled_at, absl::Seconds(3));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(Contains(status, "cancelled")) << status;

  absl::StatusOr<std::string> later = cache->FetchNarInfo(kHash);
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable) << later.status();
  EXPECT_EQ(server.requests(), 1);  // the later call did not reach the server
}

TEST(BinaryCacheHttpTest, NarInfoLargerThanLimitIsResourceExhausted) {
  ScriptedHttpServer server;
  server.On(Cat("/", kHash, ".narinfo"), Ok(std::string(kMaxSourceNarInfoBytes + 1, 'a')));
  Reply unannounced;  // the same without a Content-Length: stopped while reading
  unannounced.head = "HTTP/1.1 200 OK\r\nConnection: close\r\n";
  unannounced.then = Reply::Then::kEndless;
  const std::string other_hash = "1123456789abcdfghijklmnpqrsvwxyz";
  server.On(Cat("/", other_hash, ".narinfo"), unannounced);
  auto cache = OpenOrDie(server.url());
  for (std::string_view hash : {kHash, std::string_view(other_hash)}) {
    absl::StatusOr<std::string> text = cache->FetchNarInfo(hash);
    EXPECT_EQ(text.status().code(), absl::StatusCode::kResourceExhausted) << text.status();
    EXPECT_TRUE(Contains(text.status(), "larger than 1048576 bytes")) << text.status();
  }
}

TEST(BinaryCacheHttpTest, SinkErrorIsReturnedUnchanged) {
  ScriptedHttpServer server;
  server.On("/nar/a.nar", Ok(PatternBytes(100000)));
  auto cache = OpenOrDie(server.url());
  const absl::Status refusal = absl::DataLossError("NAR hash mismatch at byte 5");
  absl::Status status = cache->FetchNarFile("a.nar", 100000, [&](std::span<const uint8_t>) { return refusal; });
  EXPECT_EQ(status, refusal);
}

TEST(BinaryCacheHttpTest, UnreachableIsUnavailable) {
  // A port nobody listens on: bind one, learn its number, close it.
  int port = 0;
  {
    ScriptedHttpServer gone;
    port = gone.port();
  }
  auto cache = OpenOrDie(Cat("http://127.0.0.1:", port));
  absl::StatusOr<std::string> text = cache->FetchNarInfo(kHash);
  EXPECT_EQ(text.status().code(), absl::StatusCode::kUnavailable) << text.status();
  EXPECT_TRUE(Contains(text.status(), Cat("http://127.0.0.1:", port, "/", kHash, ".narinfo"))) << text.status();
}

}  // namespace
}  // namespace attest::storage
