// server/http_server: the HTTP port on loopback. Routing, keep-alive, methods and limits, jobs that
// block without holding an event thread, streamed and file bodies, overload, idle timeout, connection
// limits (in all and per client address), the request deadline against trickling clients, nosniff on
// every reply, and Stop with connections parked.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/http_test_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::HttpAnswer;
using ::attest::testing::HttpGet;
using ::attest::testing::HttpTestClient;
using ::attest::testing::PollUntil;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::Optional;

using namespace std::chrono_literals;

HttpResponse Text(std::string text) { return HttpResponse::Text(200, std::move(text)); }

// A stream the test feeds by hand.
class FedStream final : public HttpStream {
 public:
  struct Feed {
    absl::Mutex mu;
    std::string pending;
    bool ended = false;
    bool failed = false;
    bool destroyed = false;
    std::function<void()> wake;

    void Push(std::string bytes) {
      std::function<void()> w;
      {
        absl::MutexLock lock(&mu);
        pending += bytes;
        w = wake;
      }
      if (w) w();
    }
    void End(bool failure = false) {
      std::function<void()> w;
      {
        absl::MutexLock lock(&mu);
        ended = true;
        failed = failure;
        w = wake;
      }
      if (w) w();
    }
    bool IsDestroyed() {
      absl::MutexLock lock(&mu);
      return destroyed;
    }
  };

  explicit FedStream(std::shared_ptr<Feed> feed) : feed_(std::move(feed)) {}
  ~FedStream() override {
    absl::MutexLock lock(&feed_->mu);
    feed_->destroyed = true;
    feed_->wake = nullptr;
  }
  void SetWake(std::function<void()> wake) override {
    absl::MutexLock lock(&feed_->mu);
    feed_->wake = std::move(wake);
  }
  Chunk Read(char* buffer, size_t max) override {
    absl::MutexLock lock(&feed_->mu);
    if (!feed_->pending.empty()) {
      const size_t n = std::min(max, feed_->pending.size());
      std::memcpy(buffer, feed_->pending.data(), n);
      feed_->pending.erase(0, n);
      return Chunk{.kind = Chunk::Kind::kData, .bytes = n};
    }
    if (feed_->ended) return Chunk{.kind = feed_->failed ? Chunk::Kind::kError : Chunk::Kind::kEnd};
    return Chunk{.kind = Chunk::Kind::kWait};
  }

 private:
  std::shared_ptr<Feed> feed_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpRouter router, HttpServerOptions options = {}) {
    auto server = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }
  int port() const { return server_->port(); }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, RoutesExactThenLongestPrefix) {
  HttpRouter router;
  router.Exact("/healthz", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  router.Prefix("/", [](const HttpRequest& r) { return HttpReply::Now(Text("root " + std::string(r.path))); });
  router.Prefix("/nar/", [](const HttpRequest& r) { return HttpReply::Now(Text("nar " + std::string(r.path))); });
  router.Exact("/nar/special", [](const HttpRequest&) { return HttpReply::Now(Text("special")); });
  StartServer(std::move(router));

  auto healthz = HttpGet(port(), "/healthz");
  ASSERT_TRUE(healthz.has_value());
  EXPECT_EQ(healthz->status, 200);
  EXPECT_EQ(healthz->body, "ok\n");
  EXPECT_EQ(healthz->Header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(HttpGet(port(), "/nar/x.nar")->body, "nar /nar/x.nar\n");
  EXPECT_EQ(HttpGet(port(), "/nar/special")->body, "special\n");
  EXPECT_EQ(HttpGet(port(), "/abc.narinfo")->body, "root /abc.narinfo\n");
  // The query string is not part of the path; percent escapes are decoded.
  EXPECT_EQ(HttpGet(port(), "/nar/a%2Fb?x=1")->body, "nar /nar/a/b\n");
}

TEST_F(HttpServerTest, UnroutedPathIs404) {
  HttpRouter router;
  router.Exact("/healthz", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  StartServer(std::move(router));
  auto answer = HttpGet(port(), "/nope");
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 404);
}

TEST_F(HttpServerTest, KeepsConnectionsAliveAcrossRequests) {
  std::atomic<int> calls{0};
  HttpRouter router;
  router.Prefix("/", [&](const HttpRequest& r) {
    ++calls;
    return HttpReply::Now(Text(std::string(r.path)));
  });
  StartServer(std::move(router));
  HttpTestClient client(port());
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 50; ++i) {
    auto answer = client.Get("/r" + std::to_string(i));
    ASSERT_TRUE(answer.has_value()) << "request " << i << " on the same connection";
    EXPECT_EQ(answer->body, "/r" + std::to_string(i) + "\n");
    EXPECT_NE(answer->Header("connection"), "close");
  }
  // Pipelined: two requests in one write, two answers in order.
  ASSERT_TRUE(client.SendRaw("GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(client.ReadAnswer()->body, "/p1\n");
  EXPECT_EQ(client.ReadAnswer()->body, "/p2\n");
  EXPECT_EQ(calls.load(), 52);
}

TEST_F(HttpServerTest, HeadAnswersHeadersOnly) {
  HttpRouter router;
  router.Exact("/x", [](const HttpRequest& r) { return HttpReply::Now(Text(std::string(r.method) + " body")); });
  StartServer(std::move(router));
  HttpTestClient client(port());
  auto head = client.Request("HEAD", "/x");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), "10");  // "HEAD body\n"
  // Nothing but the head was sent: the next answer on the connection parses cleanly.
  auto get = client.Get("/x");
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->body, "GET body\n");
}

TEST_F(HttpServerTest, OtherMethodsAre405AndTheServerKeepsServing) {
  std::atomic<int> calls{0};
  HttpRouter router;
  router.Prefix("/", [&](const HttpRequest&) {
    ++calls;
    return HttpReply::Now(Text("ok"));
  });
  StartServer(std::move(router));
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"}) {
    HttpTestClient client(port());
    ASSERT_TRUE(
        client.SendRaw(std::string(method) + " /nix-cache-info HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"));
    auto answer = client.ReadAnswer();
    ASSERT_TRUE(answer.has_value()) << method;
    EXPECT_EQ(answer->status, 405) << method;
    EXPECT_EQ(answer->Header("allow"), "GET, HEAD") << method;
    EXPECT_THAT(answer->body, HasSubstr("use GET or HEAD"));
  }
  EXPECT_EQ(calls.load(), 0) << "no handler saw a refused method";
  EXPECT_EQ(HttpGet(port(), "/")->status, 200);
}

TEST_F(HttpServerTest, OversizedTargetsAndHeadsAreRefusedCleanly) {
  HttpRouter router;
  router.Prefix("/", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  StartServer(std::move(router));

  // Over kMaxPathBytes but within what the library buffers: 414 from us.
  auto long_target = HttpGet(port(), "/" + std::string(kMaxPathBytes + 10, 'a'));
  ASSERT_TRUE(long_target.has_value());
  EXPECT_EQ(long_target->status, 414);

  // Larger than the per-connection buffer: the library refuses it (an error status, or a close).
  {
    HttpTestClient client(port());
    ASSERT_TRUE(client.connected());
    client.SendRaw("GET /" + std::string(100000, 'b') + " HTTP/1.1\r\nHost: x\r\n\r\n");
    auto answer = client.ReadAnswer(false, 10s);
    if (answer.has_value()) {
      EXPECT_GE(answer->status, 400);
      EXPECT_LT(answer->status, 500);
    }
  }
  // A head with a huge header.
  {
    HttpTestClient client(port());
    client.SendRaw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200000, 'c') + "\r\n\r\n");
    auto answer = client.ReadAnswer(false, 10s);
    if (answer.has_value()) {
      EXPECT_GE(answer->status, 400);
    }
  }
  // Garbage and a TLS hello.
  for (const std::string& garbage : {std::string("\x16\x03\x01\x02\x00garbage\r\n\r\n", 16), std::string(5000, '\xff'),
                                     std::string("GET\r\n\r\n"), std::string("GET / HTTP/9.9\r\n\r\n")}) {
    HttpTestClient client(port());
    client.SendRaw(garbage);
    client.WaitForClose(5s);
  }
  auto still = HttpGet(port(), "/");
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->status, 200);
}

TEST_F(HttpServerTest, LaterJobsDoNotHoldTheEventThread) {
  absl::Notification release;
  std::atomic<int> job_threads_seen{0};
  HttpRouter router;
  router.Exact("/slow", [&](const HttpRequest&) {
    return HttpReply::Later([&] {
      ++job_threads_seen;
      release.WaitForNotification();
      return Text("slow done");
    });
  });
  router.Exact("/fast", [](const HttpRequest&) { return HttpReply::Now(Text("fast")); });
  // One event thread: if a job blocked it, /fast could not be answered.
  StartServer(std::move(router), HttpServerOptions{.threads = 1, .job_threads = 4});

  std::vector<std::unique_ptr<HttpTestClient>> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(std::make_unique<HttpTestClient>(port()));
    ASSERT_TRUE(slow.back()->SendRaw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  ASSERT_TRUE(PollUntil([&] { return job_threads_seen.load() == 3; }, 10s));
  for (int i = 0; i < 20; ++i) {
    auto fast = HttpGet(port(), "/fast");
    ASSERT_TRUE(fast.has_value());
    EXPECT_EQ(fast->body, "fast\n");
  }
  release.Notify();
  for (auto& client : slow) {
    auto answer = client->ReadAnswer();
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->body, "slow done\n");
    // The connection stays usable after a parked request.
    EXPECT_EQ(client->Get("/fast")->body, "fast\n");
  }
}

TEST_F(HttpServerTest, TooManyPendingJobsAre503) {
  absl::Notification release;
  std::atomic<int> started{0};
  HttpRouter router;
  router.Exact("/slow", [&](const HttpRequest&) {
    return HttpReply::Later([&] {
      ++started;
      release.WaitForNotification();
      return Text("done");
    });
  });
  StartServer(std::move(router), HttpServerOptions{.job_threads = 2, .max_pending_jobs = 2});
  HttpTestClient a(port()), b(port());
  a.SendRaw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  b.SendRaw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(PollUntil([&] { return started.load() == 2; }, 10s));
  auto third = HttpGet(port(), "/slow");
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->status, 503);
  EXPECT_EQ(third->Header("retry-after"), "1");
  release.Notify();
  EXPECT_EQ(a.ReadAnswer()->status, 200);
  EXPECT_EQ(b.ReadAnswer()->status, 200);
}

TEST_F(HttpServerTest, StreamsBodiesAsTheyAreProduced) {
  auto feed = std::make_shared<FedStream::Feed>();
  HttpRouter router;
  router.Exact("/stream", [feed](const HttpRequest&) {
    HttpResponse response;
    response.content_type = "application/x-nix-nar";
    response.body = HttpStreamBody{.stream = std::make_unique<FedStream>(feed), .size = std::nullopt};
    return HttpReply::Now(std::move(response));
  });
  StartServer(std::move(router));
  HttpTestClient client(port());
  ASSERT_TRUE(client.SendRaw("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Nothing to send yet: the connection is parked, the head may or may not be out.
  feed->Push("first part;");
  // The first part arrives before the stream has ended: it really is streamed.
  std::string seen;
  ASSERT_TRUE(PollUntil(
      [&] {
        seen += client.ReadFor(50ms);
        return seen.find("first part;") != std::string::npos;
      },
      10s))
      << seen;
  EXPECT_THAT(seen, HasSubstr("Transfer-Encoding: chunked"));
  const std::string big(300000, 'z');
  feed->Push(big);
  feed->Push("last");
  feed->End();
  seen += client.ReadFor(2s);
  EXPECT_THAT(seen, HasSubstr("last"));
  EXPECT_TRUE(seen.size() > big.size());
  EXPECT_TRUE(seen.find("\r\n0\r\n\r\n") != std::string::npos) << "the chunked body is terminated";
  ASSERT_TRUE(PollUntil([&] { return feed->IsDestroyed(); }, 10s));
}

TEST_F(HttpServerTest, StreamWithKnownSizeAndAFailingStream) {
  auto good = std::make_shared<FedStream::Feed>();
  auto bad = std::make_shared<FedStream::Feed>();
  HttpRouter router;
  router.Exact("/good", [good](const HttpRequest&) {
    HttpResponse response;
    response.body = HttpStreamBody{.stream = std::make_unique<FedStream>(good), .size = 11};
    return HttpReply::Now(std::move(response));
  });
  router.Exact("/plain", [](const HttpRequest&) { return HttpReply::Now(Text("plain")); });
  router.Exact("/bad", [bad](const HttpRequest&) {
    HttpResponse response;
    response.body = HttpStreamBody{.stream = std::make_unique<FedStream>(bad), .size = 100};
    return HttpReply::Now(std::move(response));
  });
  StartServer(std::move(router));
  std::thread feeder([&] {
    good->Push("hello ");
    good->Push("world");
    good->End();
    bad->Push("partial");
    bad->End(/*failure=*/true);
  });
  auto answer = HttpGet(port(), "/good");
  feeder.join();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->Header("content-length"), "11");
  EXPECT_EQ(answer->body, "hello world");
  // A failing stream cuts the connection short: the client sees fewer bytes than announced.
  HttpTestClient client(port());
  client.SendRaw("GET /bad HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_FALSE(client.ReadAnswer(false, 10s).has_value());
  auto plain = HttpGet(port(), "/plain");
  ASSERT_TRUE(plain.has_value()) << "the server still serves";
  EXPECT_EQ(plain->status, 200);
}

TEST_F(HttpServerTest, FileAndSharedBodies) {
  testing::TempDir dir;
  std::string content;
  for (int i = 0; i < 200000; ++i) content.push_back(static_cast<char>(i * 7));
  testing::WriteFileOrDie(dir.File("blob"), content);
  auto shared = std::make_shared<const std::string>("shared text\n");
  HttpRouter router;
  router.Exact("/file", [&](const HttpRequest&) {
    HttpResponse response;
    const int fd = ::open(dir.File("blob").c_str(), O_RDONLY | O_CLOEXEC);
    response.body = HttpFile{.fd = fd, .size = content.size()};
    return HttpReply::Now(std::move(response));
  });
  router.Exact("/shared", [&](const HttpRequest&) {
    HttpResponse response;
    response.body = shared;
    return HttpReply::Now(std::move(response));
  });
  StartServer(std::move(router));
  HttpTestClient client(port());
  for (int i = 0; i < 3; ++i) {
    auto file = client.Get("/file");
    ASSERT_TRUE(file.has_value());
    EXPECT_TRUE(file->body == content) << "file body differs (" << file->body.size() << " bytes)";
    EXPECT_EQ(client.Get("/shared")->body, "shared text\n");
  }
  // The library frees a response after its last byte went out, which may be just after the client read it.
  EXPECT_TRUE(PollUntil([&] { return shared.use_count() == 1; }, 10s)) << "responses released the shared body";
}

TEST_F(HttpServerTest, IdleConnectionsAreClosed) {
  HttpRouter router;
  router.Prefix("/", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  StartServer(std::move(router), HttpServerOptions{.idle_timeout_seconds = 1});
  HttpTestClient silent(port());
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.WaitForClose(10s)) << "a connection that says nothing is closed";
  HttpTestClient half(port());
  half.SendRaw("GET / HTTP/1.1\r\nHo");  // a slow client that stops mid-head
  EXPECT_TRUE(half.WaitForClose(10s));
  EXPECT_EQ(HttpGet(port(), "/")->status, 200);
}

TEST_F(HttpServerTest, ConnectionLimitHoldsBackExtraConnections) {
  HttpRouter router;
  router.Prefix("/", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  StartServer(std::move(router), HttpServerOptions{.threads = 1, .max_connections = 2});
  auto first = std::make_unique<HttpTestClient>(port());
  HttpTestClient second(port());
  ASSERT_EQ(first->Get("/")->status, 200);
  ASSERT_EQ(second.Get("/")->status, 200);
  HttpTestClient third(port());
  ASSERT_TRUE(third.SendRaw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(third.ReadFor(300ms), "") << "no answer while two connections are open";
  first.reset();
  auto answer = third.ReadAnswer(false, 10s);
  ASSERT_TRUE(answer.has_value()) << "answered once a slot freed";
  EXPECT_EQ(answer->status, 200);
}

// 127.0.0.2 is a second client as the server sees it (all of 127.0.0.0/8 is loopback on Linux).
constexpr in_addr_t kOtherClient = (127u << 24) | 2u;

HttpRouter HealthzRouter() {
  HttpRouter router;
  router.Exact("/healthz", [](const HttpRequest&) { return HttpReply::Now(Text("ok")); });
  return router;
}

TEST_F(HttpServerTest, OneClientAddressCannotTakeEveryConnection) {
  // Without the per-address limit, eight idle connections from 127.0.0.1 would fill the server and
  // the other client would wait in the listen queue until the idle timeout (60 s) freed a slot.
  StartServer(HealthzRouter(), HttpServerOptions{.threads = 1,
                                                 .max_connections = 8,
                                                 .max_connections_per_ip = 4,
                                                 .idle_timeout_seconds = 60,
                                                 .request_head_timeout_seconds = 60});
  std::vector<std::unique_ptr<HttpTestClient>> idle;
  for (int i = 0; i < 8; ++i) {
    idle.push_back(std::make_unique<HttpTestClient>(port()));
    ASSERT_TRUE(idle.back()->connected());
  }
  // Those beyond the limit are closed by the server as soon as it accepts them.
  std::vector<bool> closed(idle.size(), false);
  auto closed_count = [&] { return std::count(closed.begin(), closed.end(), true); };
  EXPECT_TRUE(PollUntil(
      [&] {
        for (size_t i = 0; i < idle.size(); ++i) {
          if (!closed[i]) closed[i] = idle[i]->WaitForClose(10ms);
        }
        return closed_count() >= 4;
      },
      10s))
      << closed_count() << " of 8 connections from one address were closed; expected the 4 beyond the limit";

  HttpTestClient other(port(), kOtherClient);
  ASSERT_TRUE(other.connected()) << "cannot bind a client socket to 127.0.0.2";
  auto answer = other.Get("/healthz", 10s);
  ASSERT_TRUE(answer.has_value()) << "a client at another address is answered";
  EXPECT_EQ(answer->status, 200);

  // The connections within the limit still work, and one more from the full address is closed.
  for (size_t i = 0; i < idle.size(); ++i) {
    if (closed[i]) continue;
    EXPECT_THAT(idle[i]->Get("/healthz", 10s), Optional(Field(&HttpAnswer::status, 200)));
    break;
  }
  HttpTestClient one_more(port());
  EXPECT_TRUE(one_more.WaitForClose(10s)) << "a fifth connection from 127.0.0.1 is closed";
  EXPECT_EQ(closed_count(), 4);

  // Once the address's connections close, it is served again.
  idle.clear();
  EXPECT_TRUE(PollUntil(
      [&] {
        auto again = HttpGet(port(), "/healthz");
        return again.has_value() && again->status == 200;
      },
      10s));
}

TEST_F(HttpServerTest, ARequestTrickledAByteAtATimeIsCutOffAtTheDeadline) {
  // The idle timeout (60 s) never fires: a byte arrives every half second. The request deadline
  // (2 s) must.
  StartServer(HealthzRouter(), HttpServerOptions{.idle_timeout_seconds = 60, .request_head_timeout_seconds = 2});
  const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(200, 'a') + "\r\n\r\n";
  HttpTestClient fresh(port());
  // A kept-alive connection whose second request trickles: the deadline starts again after an answer.
  HttpTestClient kept(port());
  ASSERT_THAT(kept.Get("/healthz"), Optional(Field(&HttpAnswer::status, 200)));
  struct Trickler {
    HttpTestClient* client;
    size_t sent = 0;
    bool closed = false;
  };
  std::vector<Trickler> slow{{.client = &fresh}, {.client = &kept}};
  const auto start = std::chrono::steady_clock::now();
  int healthz_answered = 0;
  for (int round = 0; round < 40; ++round) {
    bool all_closed = true;
    for (Trickler& t : slow) {
      if (t.closed) continue;
      ASSERT_LT(t.sent, head.size()) << "the whole request went out before the connection was closed";
      if (t.client->SendRaw(head.substr(t.sent, 1))) ++t.sent;
      // Waiting for the close paces the trickle: one byte per connection every half second.
      t.closed = t.client->WaitForClose(250ms);
      all_closed = all_closed && t.closed;
    }
    // Meanwhile other clients are answered.
    EXPECT_THAT(HttpGet(port(), "/healthz"), Optional(Field(&HttpAnswer::status, 200)));
    ++healthz_answered;
    if (all_closed) break;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(slow[0].closed) << "a new connection trickling its request is closed";
  EXPECT_TRUE(slow[1].closed) << "a kept-alive connection trickling its next request is closed";
  EXPECT_LT(elapsed, 15s) << "closed by the 2 s deadline, not by the 60 s idle timeout";
  EXPECT_GE(slow[0].sent, 3u) << "the client was never silent for long";
  EXPECT_GT(healthz_answered, 0);
  EXPECT_THAT(HttpGet(port(), "/healthz"), Optional(Field(&HttpAnswer::status, 200)));
}

TEST_F(HttpServerTest, TheDeadlineDoesNotCutAnAnswerThatTakesLonger) {
  absl::Notification release;
  HttpRouter router;
  router.Exact("/slow", [&](const HttpRequest&) {
    return HttpReply::Later([&] {
      release.WaitForNotification();
      return Text("late but whole");
    });
  });
  StartServer(std::move(router), HttpServerOptions{.idle_timeout_seconds = 60, .request_head_timeout_seconds = 1});
  HttpTestClient client(port());
  ASSERT_TRUE(client.SendRaw("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  // Well past the 1 s deadline (checked every 250 ms) while the job runs.
  EXPECT_EQ(client.ReadFor(2500ms), "");
  release.Notify();
  auto answer = client.ReadAnswer(false, 10s);
  ASSERT_TRUE(answer.has_value()) << "the connection was cut while its answer was being prepared";
  EXPECT_EQ(answer->body, "late but whole\n");
}

TEST_F(HttpServerTest, EveryReplySaysNosniff) {
  HttpRouter router;
  router.Exact("/now", [](const HttpRequest&) { return HttpReply::Now(Text("<b>not html</b>")); });
  router.Exact("/later", [](const HttpRequest&) { return HttpReply::Later([] { return Text("<b>later</b>"); }); });
  StartServer(std::move(router));
  HttpTestClient client(port());
  for (const char* target : {"/now", "/later", "/unrouted"}) {
    auto answer = client.Get(target);
    ASSERT_TRUE(answer.has_value()) << target;
    EXPECT_EQ(answer->Header("x-content-type-options"), "nosniff") << target << " " << answer->status;
  }
  HttpTestClient refused(port());
  ASSERT_TRUE(refused.SendRaw("DELETE /now HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto answer = refused.ReadAnswer();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 405);
  EXPECT_EQ(answer->Header("x-content-type-options"), "nosniff");
  auto too_long = HttpGet(port(), "/" + std::string(kMaxPathBytes + 10, 'a'));
  ASSERT_TRUE(too_long.has_value());
  EXPECT_EQ(too_long->status, 414);
  EXPECT_EQ(too_long->Header("x-content-type-options"), "nosniff");
}

TEST_F(HttpServerTest, StopWakesParkedConnectionsAndWaitsForJobs) {
  auto feed = std::make_shared<FedStream::Feed>();
  absl::Notification job_started;
  absl::Notification release_job;
  HttpRouter router;
  router.Exact("/stream", [feed](const HttpRequest&) {
    HttpResponse response;
    response.body = HttpStreamBody{.stream = std::make_unique<FedStream>(feed), .size = std::nullopt};
    return HttpReply::Now(std::move(response));
  });
  router.Exact("/job", [&](const HttpRequest&) {
    return HttpReply::Later([&] {
      job_started.Notify();
      release_job.WaitForNotification();
      return Text("job answer");
    });
  });
  StartServer(std::move(router));
  HttpTestClient streaming(port());
  streaming.SendRaw("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  feed->Push("some");
  std::string seen;
  ASSERT_TRUE(PollUntil(
      [&] {
        seen += streaming.ReadFor(50ms);
        return seen.find("some") != std::string::npos;
      },
      10s));
  HttpTestClient waiting(port());
  waiting.SendRaw("GET /job HTTP/1.1\r\nHost: x\r\n\r\n");
  job_started.WaitForNotification();

  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    server_->Stop();
    stopped = true;
  });
  // Stop waits for the running job; its answer still goes out.
  release_job.Notify();
  auto answer = waiting.ReadAnswer(false, 10s);
  ASSERT_TRUE(PollUntil([&] { return stopped.load(); }, 20s)) << "Stop returned with a stream parked";
  stopper.join();
  if (answer.has_value()) {
    EXPECT_EQ(answer->body, "job answer\n");
  }
  EXPECT_TRUE(streaming.WaitForClose(5s));
  EXPECT_TRUE(feed->IsDestroyed());
  feed->Push("after stop");  // waking a gone connection is harmless
  HttpTestClient late(port());
  EXPECT_FALSE(late.connected() && late.Get("/job", 2s).has_value());
}

// Stopping while the event threads are busy used to race libmicrohttpd's own removal of the listen
// socket from their epoll sets and abort the whole process about one stop in a few hundred.
TEST_F(HttpServerTest, StoppingWhileClientsConnectNeverAborts) {
  for (int round = 0; round < 150; ++round) {
    HttpRouter router;
    router.Prefix("/", [](const HttpRequest& r) { return HttpReply::Now(Text(std::string(r.path))); });
    StartServer(std::move(router), HttpServerOptions{.threads = 4});
    std::atomic<bool> done{false};
    // Connections opened and dropped without waiting (a blocking connect could wait on a full backlog).
    std::thread dialer([&, p = port()] {
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_port = htons(static_cast<uint16_t>(p));
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      while (!done.load()) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
        ::close(fd);
      }
    });
    HttpTestClient client(port());
    auto answer = client.Get("/round");
    ASSERT_TRUE(answer.has_value()) << "round " << round;
    EXPECT_EQ(answer->body, "/round\n");
    server_->Stop();
    done = true;
    dialer.join();
    server_.reset();
  }
}

TEST_F(HttpServerTest, ManyConcurrentClients) {
  HttpRouter router;
  router.Prefix("/later/", [](const HttpRequest& r) {
    std::string path(r.path);
    return HttpReply::Later([path] { return Text(path); });
  });
  router.Prefix("/", [](const HttpRequest& r) { return HttpReply::Now(Text(std::string(r.path))); });
  StartServer(std::move(router));
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      HttpTestClient client(port());
      for (int i = 0; i < 100; ++i) {
        const std::string target = (i % 2 ? "/later/" : "/") + std::to_string(t) + "-" + std::to_string(i);
        auto answer = client.Get(target);
        if (answer && answer->body == target + "\n") ++good;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(good.load(), 800);
}

TEST_F(HttpServerTest, PortInUseIsAClearError) {
  HttpRouter router;
  StartServer(HttpRouter());
  auto second = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = port()}, std::move(router));
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(std::to_string(port())));
}

}  // namespace
}  // namespace attest::server
