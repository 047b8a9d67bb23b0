// A small HTTP/1.1 client over a loopback socket for the server tests: keep-alive, Content-Length and
// chunked bodies, raw bytes for malformed requests. Header-only.
#ifndef ATTEST_TESTS_SERVER_HTTP_TEST_CLIENT_H_
#define ATTEST_TESTS_SERVER_HTTP_TEST_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace attest::testing {

struct HttpAnswer final {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool chunked = false;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class HttpTestClient final {
 public:
  explicit HttpTestClient(int port) : HttpTestClient(port, INADDR_LOOPBACK) {}
  // From another loopback address as source (e.g. 127.0.0.2, a second client as the server sees it;
  // Linux routes all of 127.0.0.0/8 to the loopback interface).
  HttpTestClient(int port, in_addr_t source_address) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source_address != INADDR_LOOPBACK) {
      sockaddr_in source{};
      source.sin_family = AF_INET;
      source.sin_addr.s_addr = htonl(source_address);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof(source)) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
      }
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~HttpTestClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  HttpTestClient(const HttpTestClient&) = delete;
  HttpTestClient& operator=(const HttpTestClient&) = delete;

  bool connected() const { return fd_ >= 0; }

  bool SendRaw(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Sends one request and reads its answer; nullopt when the connection closed or `timeout` passed first.
  std::optional<HttpAnswer> Request(std::string_view method, std::string_view target,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::string request = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (!SendRaw(request)) return std::nullopt;
    return ReadAnswer(method == "HEAD", timeout);
  }
  std::optional<HttpAnswer> Get(std::string_view target, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    return Request("GET", target, timeout);
  }

  // Reads one response.
  std::optional<HttpAnswer> ReadAnswer(bool head_request = false,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    deadline_ = std::chrono::steady_clock::now() + timeout;
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    HttpAnswer answer;
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    const size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) return std::nullopt;
    answer.status = std::atoi(status_line.c_str() + 9);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t next = head.find("\r\n", pos);
      if (next == std::string::npos) next = head.size();
      const std::string line = head.substr(pos, next - pos);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t value_start = colon + 1;
        while (value_start < line.size() && line[value_start] == ' ') ++value_start;
        answer.headers[name] = line.substr(value_start);
      }
      pos = next + 2;
    }
    if (head_request || answer.status == 204 || answer.status == 304) return answer;
    if (answer.Header("transfer-encoding") == "chunked") {
      answer.chunked = true;
      while (true) {
        size_t line;
        while ((line = buffer_.find("\r\n")) == std::string::npos) {
          if (!Fill()) return std::nullopt;
        }
        const size_t size = std::strtoul(buffer_.substr(0, line).c_str(), nullptr, 16);
        while (buffer_.size() < line + 2 + size + 2) {
          if (!Fill()) return std::nullopt;
        }
        answer.body += buffer_.substr(line + 2, size);
        buffer_.erase(0, line + 2 + size + 2);
        if (size == 0) return answer;
      }
    }
    if (!answer.Header("content-length").empty()) {
      const size_t length = std::strtoull(answer.Header("content-length").c_str(), nullptr, 10);
      while (buffer_.size() < length) {
        if (!Fill()) return std::nullopt;
      }
      answer.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
      return answer;
    }
    while (Fill()) {
    }
    answer.body = std::move(buffer_);
    buffer_.clear();
    return answer;
  }

  // True when the peer closes the connection (EOF or reset) before `timeout`.
  bool WaitForClose(std::chrono::milliseconds timeout) {
    deadline_ = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return true;
    }
  }

  // Reads whatever arrives within `timeout` (for checking that nothing does).
  std::string ReadFor(std::chrono::milliseconds timeout) {
    deadline_ = std::chrono::steady_clock::now() + timeout;
    while (Fill()) {
    }
    std::string out = std::move(buffer_);
    buffer_.clear();
    return out;
  }

  int fd() const { return fd_; }

 private:
  bool Fill() {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd_, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::string buffer_;
  std::chrono::steady_clock::time_point deadline_;
};

// One request on a fresh connection.
inline std::optional<HttpAnswer> HttpGet(int port, std::string_view target, std::string_view method = "GET") {
  HttpTestClient client(port);
  if (!client.connected()) return std::nullopt;
  return client.Request(method, target);
}

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SERVER_HTTP_TEST_CLIENT_H_
