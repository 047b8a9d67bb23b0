#include "tests/e2e/tcp_forwarder.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attest::testing {
namespace {

constexpr size_t kReadChunk = 64 * 1024;

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Closes with a reset (SO_LINGER 0) rather than a FIN: the other end sees the connection fail at
// once, as it would when a network path dies, instead of an orderly end of stream.
void CloseWithReset(int fd) {
  linger reset{.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  close(fd);
}

bool WouldBlock(int error) { return error == EAGAIN || error == EWOULDBLOCK || error == EINTR; }

}  // namespace

// One relayed connection: the accepted client socket and the socket to the target.
class TcpForwarder::Relay final {
 public:
  struct Side final {
    int fd = -1;
    std::string out;  // bytes read from the other side, waiting to be written to this one
    bool read_eof = false;
    bool write_shut = false;
    bool hung_up = false;  // POLLHUP: nothing more can be written to it
  };

  enum class TargetConnect { kDone, kInProgress };

  Relay(int client_fd, int target_fd, TargetConnect connect) : connecting_(connect == TargetConnect::kInProgress) {
    sides_[0].fd = client_fd;
    sides_[1].fd = target_fd;
  }
  ~Relay() {
    for (Side& side : sides_) {
      if (side.fd < 0) continue;
      if (reset_) {
        CloseWithReset(side.fd);
      } else {
        close(side.fd);
      }
    }
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  void ResetOnClose() { reset_ = true; }

  enum class ConnectOutcome { kNone, kConnected, kFailed };
  // What became of a pending connect to the target in the last Handle (reported once).
  ConnectOutcome TakeConnectOutcome() {
    const ConnectOutcome outcome = connect_outcome_;
    connect_outcome_ = ConnectOutcome::kNone;
    return outcome;
  }

  // Fills two pollfd entries (client, target) for the current state.
  void Events(pollfd* fds, size_t buffer_bytes) const {
    for (int i = 0; i < 2; ++i) {
      const Side& side = sides_[i];
      const Side& other = sides_[1 - i];
      short events = 0;
      if (connecting_) {
        events = i == 1 ? POLLOUT : 0;
      } else {
        if (WantsRead(side, other, buffer_bytes)) events |= POLLIN;
        if (!side.out.empty() && !side.hung_up) events |= POLLOUT;
      }
      // poll reports POLLHUP whatever was asked; leave out a hung-up side with nothing to do.
      const bool idle = events == 0 && (side.hung_up || side.read_eof);
      fds[i] = {.fd = idle ? -1 : side.fd, .events = events, .revents = 0};
    }
  }

  // Handles what poll reported. Returns false when the relay is finished (or failed) and must go.
  bool Handle(const pollfd* fds, size_t buffer_bytes) {
    if (connecting_) {
      const short revents = fds[1].revents;
      if (revents == 0) return true;
      int error = 0;
      socklen_t len = sizeof(error);
      if (getsockopt(sides_[1].fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
        connect_outcome_ = ConnectOutcome::kFailed;
        ResetOnClose();
        return false;
      }
      connect_outcome_ = ConnectOutcome::kConnected;
      connecting_ = false;
      return true;
    }
    for (int i = 0; i < 2; ++i) {
      Side& side = sides_[i];
      Side& other = sides_[1 - i];
      const short revents = fds[i].revents;
      if (revents & POLLERR) {
        ResetOnClose();
        return false;
      }
      if ((revents & (POLLIN | POLLHUP)) && WantsRead(side, other, buffer_bytes)) {
        char chunk[kReadChunk];
        const size_t room = std::min(sizeof(chunk), buffer_bytes - other.out.size());
        const ssize_t got = read(side.fd, chunk, room);
        if (got > 0) {
          other.out.append(chunk, static_cast<size_t>(got));
        } else if (got == 0) {
          side.read_eof = true;
        } else if (!WouldBlock(errno)) {
          ResetOnClose();
          return false;
        }
      }
      if (revents & POLLHUP) side.hung_up = true;
      if ((revents & POLLOUT) && !side.out.empty()) {
        const ssize_t put = send(side.fd, side.out.data(), side.out.size(), MSG_NOSIGNAL);
        if (put > 0) {
          side.out.erase(0, static_cast<size_t>(put));
        } else if (put < 0 && !WouldBlock(errno)) {
          ResetOnClose();
          return false;
        }
      }
    }
    for (int i = 0; i < 2; ++i) {
      Side& side = sides_[i];
      Side& other = sides_[1 - i];
      // Bytes for a side that hung up can never be delivered.
      if (side.hung_up && !side.out.empty()) {
        ResetOnClose();
        return false;
      }
      // Pass an end of stream on once everything before it was delivered.
      if (side.read_eof && other.out.empty() && !other.write_shut) {
        shutdown(other.fd, SHUT_WR);
        other.write_shut = true;
      }
    }
    return !(sides_[0].read_eof && sides_[1].read_eof && sides_[0].write_shut && sides_[1].write_shut);
  }

 private:
  static bool WantsRead(const Side& side, const Side& other, size_t buffer_bytes) {
    return !side.read_eof && other.out.size() < buffer_bytes && !other.write_shut;
  }

  Side sides_[2];
  bool connecting_ = false;
  bool reset_ = false;
  ConnectOutcome connect_outcome_ = ConnectOutcome::kNone;
};

absl::StatusOr<std::unique_ptr<TcpForwarder>> TcpForwarder::Start(int target_port, const TcpForwarderOptions& options) {
  if (target_port < 1 || target_port > 65535 || options.listen_port < 0 || options.listen_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("ports must be within 1..65535 (listen 0 = any): target ",
                                                   target_port, ", listen ", options.listen_port));
  }
  if (options.max_connections < 1 || options.buffer_bytes < 1) {
    return absl::InvalidArgumentError("max_connections and buffer_bytes must be positive");
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = Loopback(options.listen_port);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on 127.0.0.1:", options.listen_port, ": ", std::strerror(error)));
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    const int error = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(error)));
  }
  return std::unique_ptr<TcpForwarder>(
      new TcpForwarder(fd, wake[0], wake[1], ntohs(addr.sin_port), target_port, options));
}

TcpForwarder::TcpForwarder(int listen_fd, int wake_read_fd, int wake_write_fd, int port, int target_port,
                           const TcpForwarderOptions& options)
    : listen_fd_(listen_fd),
      wake_read_fd_(wake_read_fd),
      wake_write_fd_(wake_write_fd),
      port_(port),
      target_port_(target_port),
      options_(options) {
  thread_ = std::thread([this] { Run(); });
}

TcpForwarder::~TcpForwarder() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  Wake();
  thread_.join();
  close(listen_fd_);
  close(wake_read_fd_);
  close(wake_write_fd_);
}

std::string TcpForwarder::address() const { return absl::StrCat("127.0.0.1:", port_); }

void TcpForwarder::Wake() {
  const char byte = 1;
  // A full pipe already holds a wake-up; nothing is lost when this write fails.
  [[maybe_unused]] const ssize_t ignored = write(wake_write_fd_, &byte, 1);
}

void TcpForwarder::Cut() {
  uint64_t ticket = 0;
  {
    absl::MutexLock lock(&mu_);
    cut_ = true;
    ticket = ++cuts_requested_;
  }
  Wake();
  absl::MutexLock lock(&mu_);
  const auto applied = [this, ticket]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return cuts_applied_ >= ticket || stopping_; };
  mu_.Await(absl::Condition(&applied));
}

void TcpForwarder::Restore() {
  absl::MutexLock lock(&mu_);
  cut_ = false;
}

bool TcpForwarder::is_cut() const {
  absl::MutexLock lock(&mu_);
  return cut_;
}

TcpForwarderStats TcpForwarder::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void TcpForwarder::CountRefused() {
  absl::MutexLock lock(&mu_);
  ++stats_.refused;
}

void TcpForwarder::Run() {
  std::vector<std::unique_ptr<Relay>> relays;
  std::vector<pollfd> fds;
  while (true) {
    bool cut = false;
    uint64_t cuts_requested = 0;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      cut = cut_;
      cuts_requested = cuts_requested_;
    }
    if (cut && !relays.empty()) {
      for (auto& relay : relays) relay->ResetOnClose();
      relays.clear();
    }
    {
      absl::MutexLock lock(&mu_);
      cuts_applied_ = cuts_requested;
      stats_.open_connections = static_cast<int>(relays.size());
    }

    fds.assign(2 + 2 * relays.size(), pollfd{});
    fds[0] = {.fd = wake_read_fd_, .events = POLLIN, .revents = 0};
    fds[1] = {.fd = listen_fd_, .events = POLLIN, .revents = 0};
    for (size_t i = 0; i < relays.size(); ++i) relays[i]->Events(&fds[2 + 2 * i], options_.buffer_bytes);
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (read(wake_read_fd_, drain, sizeof(drain)) > 0) {
      }
    }

    // Relays first: new ones are appended after their pollfd entries were laid out. Counters are
    // updated before a finished relay closes its sockets, so a client never sees a reset that the
    // counters do not show yet.
    std::vector<bool> keep(relays.size());
    int64_t connected = 0, failed = 0;
    for (size_t i = 0; i < relays.size(); ++i) {
      keep[i] = relays[i]->Handle(&fds[2 + 2 * i], options_.buffer_bytes);
      switch (relays[i]->TakeConnectOutcome()) {
        case Relay::ConnectOutcome::kConnected:
          ++connected;
          break;
        case Relay::ConnectOutcome::kFailed:
          ++failed;
          break;
        case Relay::ConnectOutcome::kNone:
          break;
      }
    }
    if (connected != 0 || failed != 0) {
      absl::MutexLock lock(&mu_);
      stats_.accepted += connected;
      stats_.refused += failed;
    }
    std::vector<std::unique_ptr<Relay>> kept;
    kept.reserve(relays.size());
    for (size_t i = 0; i < relays.size(); ++i) {
      if (keep[i]) kept.push_back(std::move(relays[i]));
    }
    relays = std::move(kept);

    if (fds[1].revents & POLLIN) {
      while (true) {
        const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) break;  // EAGAIN: the queue is empty (other errors: try again next round)
        // Read for each connection: a Restore() may have come since the last one.
        {
          absl::MutexLock lock(&mu_);
          cut = cut_;
        }
        if (cut || relays.size() >= static_cast<size_t>(options_.max_connections)) {
          CountRefused();
          CloseWithReset(client);
          continue;
        }
        const int target = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        const sockaddr_in addr = Loopback(target_port_);
        const int rc = target < 0 ? -1 : connect(target, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
        if (rc == 0 || (rc < 0 && errno == EINPROGRESS)) {
          // A connect in progress is counted once it completes.
          relays.push_back(std::make_unique<Relay>(
              client, target, rc == 0 ? Relay::TargetConnect::kDone : Relay::TargetConnect::kInProgress));
          if (rc == 0) {
            absl::MutexLock lock(&mu_);
            ++stats_.accepted;
          }
        } else {
          if (target >= 0) close(target);
          CountRefused();
          CloseWithReset(client);
        }
      }
    }
  }
  for (auto& relay : relays) relay->ResetOnClose();
  relays.clear();
  absl::MutexLock lock(&mu_);
  stats_.open_connections = 0;
}

}  // namespace attest::testing
