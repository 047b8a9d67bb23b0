// End-to-end: a federation of real attestd processes on loopback that follow each other's logs.
// Attestations submitted to any node reach every node, so every node gives the same answer; a node
// that was killed or cut off catches up; a node that equivocates, logs a forged attestation or runs
// another policy is detected and not believed. Also the TcpForwarder that cuts links in these tests.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/attestation_store.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/e2e/federation_harness.h"
#include "tests/e2e/tcp_forwarder.h"
#include "tests/support/subprocess.h"

namespace attest::testing {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr int kAlice = 0;
constexpr int kBob = 1;
constexpr int kCarol = 2;

std::string PathOf(std::string_view name) { return TestStorePath(name).full(); }
std::string SignatureOf(const consensus::Attestation& attestation) { return attestation.signature.ToString(); }

// --- TcpForwarder -------------------------------------------------------------------------------

// Connects to 127.0.0.1:port (blocking); -1 on failure.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t put = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    data.remove_prefix(static_cast<size_t>(put));
  }
  return true;
}

enum class ReadEnd { kData, kEndOfStream, kReset, kTimeout };

// Reads up to `want` bytes (stopping early at end of stream or a reset) within `deadline`.
ReadEnd ReadUpTo(int fd, size_t want, std::string* out, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  char buffer[65536];
  while (out->size() < want) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) return ReadEnd::kTimeout;
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t got = read(fd, buffer, std::min(sizeof(buffer), want - out->size()));
    if (got > 0) {
      out->append(buffer, static_cast<size_t>(got));
    } else if (got == 0) {
      return ReadEnd::kEndOfStream;
    } else if (errno != EINTR) {
      return ReadEnd::kReset;
    }
  }
  return ReadEnd::kData;
}

// A connection that carries nothing any more: end of stream or reset, without data, promptly.
bool IsDead(int fd) {
  std::string data;
  const ReadEnd end = ReadUpTo(fd, 1, &data, std::chrono::seconds(5));
  return end == ReadEnd::kEndOfStream || end == ReadEnd::kReset;
}

// An echo server on 127.0.0.1: one thread per connection, each writing back what it reads until the
// client's end of stream, then closing.
class EchoServer final {
 public:
  EchoServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "echo server: " << std::strerror(errno);
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~EchoServer() {
    stopping_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    {
      std::lock_guard lock(mu_);
      for (int fd : connections_) shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& worker : workers_) worker.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void Accept() {
    while (!stopping_) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) continue;
        return;
      }
      std::lock_guard lock(mu_);
      connections_.push_back(fd);
      workers_.emplace_back([fd] {
        char buffer[32768];
        while (true) {
          const ssize_t got = read(fd, buffer, sizeof(buffer));
          if (got < 0 && errno == EINTR) continue;
          if (got <= 0 || !SendAll(fd, std::string_view(buffer, static_cast<size_t>(got)))) break;
        }
        close(fd);
      });
    }
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<int> connections_;
  std::vector<std::thread> workers_;
  std::thread acceptor_;
};

std::string RandomBytes(size_t size) {
  std::mt19937 random(42);
  std::string data(size, '\0');
  for (char& c : data) c = static_cast<char>(random());
  return data;
}

TEST(FederationForwarderTest, RelaysLargeTransfersBothWays) {
  EchoServer echo;
  absl::StatusOr<std::unique_ptr<TcpForwarder>> forwarder =
      TcpForwarder::Start(echo.port(), {.buffer_bytes = 64 * 1024});
  ASSERT_TRUE(forwarder.ok()) << forwarder.status();
  const int fd = ConnectLoopback((*forwarder)->port());
  ASSERT_GE(fd, 0);
  // More than the forwarder and the kernel buffer at once: the relay must apply back-pressure, not
  // drop or grow without bound.
  const std::string sent = RandomBytes(4 << 20);
  std::thread writer([&] { EXPECT_TRUE(SendAll(fd, sent)); });
  std::string received;
  EXPECT_EQ(ReadUpTo(fd, sent.size(), &received, std::chrono::seconds(30)), ReadEnd::kData);
  writer.join();
  EXPECT_TRUE(received == sent) << "received " << received.size() << " bytes, not the " << sent.size() << " sent";
  EXPECT_EQ((*forwarder)->Stats().accepted, 1);
  close(fd);
  EXPECT_TRUE(PollEvery([&] { return (*forwarder)->Stats().open_connections == 0; }, std::chrono::seconds(10),
                        std::chrono::milliseconds(20)));
}

TEST(FederationForwarderTest, PassesAHalfCloseOn) {
  EchoServer echo;
  absl::StatusOr<std::unique_ptr<TcpForwarder>> forwarder = TcpForwarder::Start(echo.port());
  ASSERT_TRUE(forwarder.ok()) << forwarder.status();
  const int fd = ConnectLoopback((*forwarder)->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "ping"));
  shutdown(fd, SHUT_WR);
  std::string received;
  // The echo server answers, sees the end of stream and closes: both arrive through the relay.
  EXPECT_EQ(ReadUpTo(fd, 100, &received, std::chrono::seconds(10)), ReadEnd::kEndOfStream);
  EXPECT_EQ(received, "ping");
  close(fd);
}

TEST(FederationForwarderTest, CutResetsConnectionsAndRefusesNewOnesUntilRestored) {
  EchoServer echo;
  absl::StatusOr<std::unique_ptr<TcpForwarder>> forwarder = TcpForwarder::Start(echo.port());
  ASSERT_TRUE(forwarder.ok()) << forwarder.status();
  TcpForwarder& relay = **forwarder;
  EXPECT_EQ(relay.address(), absl::StrCat("127.0.0.1:", relay.port()));

  const int before = ConnectLoopback(relay.port());
  ASSERT_GE(before, 0);
  ASSERT_TRUE(SendAll(before, "hello"));
  std::string received;
  ASSERT_EQ(ReadUpTo(before, 5, &received, std::chrono::seconds(10)), ReadEnd::kData);
  EXPECT_EQ(received, "hello");

  relay.Cut();
  EXPECT_TRUE(relay.is_cut());
  EXPECT_EQ(relay.Stats().open_connections, 0);
  EXPECT_TRUE(IsDead(before)) << "a relayed connection survived the cut";
  close(before);

  const int during = ConnectLoopback(relay.port());  // the kernel accepts; the relay resets it
  if (during >= 0) {
    SendAll(during, "lost");
    EXPECT_TRUE(IsDead(during)) << "a connection made while cut was relayed";
    close(during);
  }
  EXPECT_GE(relay.Stats().refused, 1);

  relay.Restore();
  EXPECT_FALSE(relay.is_cut());
  const int after = ConnectLoopback(relay.port());
  ASSERT_GE(after, 0);
  ASSERT_TRUE(SendAll(after, "again"));
  received.clear();
  EXPECT_EQ(ReadUpTo(after, 5, &received, std::chrono::seconds(10)), ReadEnd::kData)
      << "refused " << relay.Stats().refused << ", accepted " << relay.Stats().accepted;
  EXPECT_EQ(received, "again");
  close(after);
  EXPECT_EQ(relay.Stats().accepted, 2);
}

TEST(FederationForwarderTest, IsBoundedAndResetsWhenTheTargetIsDown) {
  EchoServer echo;
  absl::StatusOr<std::unique_ptr<TcpForwarder>> forwarder = TcpForwarder::Start(echo.port(), {.max_connections = 2});
  ASSERT_TRUE(forwarder.ok()) << forwarder.status();
  std::vector<int> open;
  for (int i = 0; i < 2; ++i) {
    open.push_back(ConnectLoopback((*forwarder)->port()));
    ASSERT_GE(open.back(), 0);
    ASSERT_TRUE(SendAll(open.back(), "x"));
    std::string received;
    ASSERT_EQ(ReadUpTo(open.back(), 1, &received, std::chrono::seconds(10)), ReadEnd::kData);
  }
  const int third = ConnectLoopback((*forwarder)->port());
  if (third >= 0) {
    EXPECT_TRUE(IsDead(third)) << "more connections than max_connections were relayed";
    close(third);
  }
  EXPECT_EQ((*forwarder)->Stats().open_connections, 2);
  EXPECT_EQ((*forwarder)->Stats().refused, 1);
  for (int fd : open) close(fd);

  const int unused_port = FreeLoopbackPort();
  absl::StatusOr<std::unique_ptr<TcpForwarder>> nowhere = TcpForwarder::Start(unused_port);
  ASSERT_TRUE(nowhere.ok()) << nowhere.status();
  const int fd = ConnectLoopback((*nowhere)->port());
  if (fd >= 0) {
    EXPECT_TRUE(IsDead(fd));
    close(fd);
  }
  EXPECT_TRUE(PollEvery([&] { return (*nowhere)->Stats().refused == 1; }, std::chrono::seconds(10),
                        std::chrono::milliseconds(20)));

  EXPECT_FALSE(TcpForwarder::Start(0).ok());
  EXPECT_FALSE(TcpForwarder::Start(70000).ok());
  EXPECT_FALSE(TcpForwarder::Start(echo.port(), {.max_connections = 0}).ok());
}

// --- The federation -----------------------------------------------------------------------------

// `nix path-info --json` output (list form) for claims, as a builder's CLI reads it.
std::string PathInfoJson(const std::vector<consensus::PathInfo>& claims) {
  json list = json::array();
  for (const consensus::PathInfo& claim : claims) {
    list.push_back({{"path", claim.path.full()},
                    {"narHash", claim.nar_hash.ToSri()},
                    {"narSize", claim.nar_size},
                    {"references", json::array()},
                    {"registrationTime", 1795582660},
                    {"ultimate", true}});
  }
  return list.dump();
}

// Every node lists every other node of `nodes` as FOLLOWING, caught up, with nothing rejected and
// the same policy.
void ExpectAllFollowing(FederationHarness& federation, const std::vector<int>& nodes) {
  for (int node : nodes) {
    for (int peer : nodes) {
      if (peer == node) continue;
      EXPECT_TRUE(federation.WaitCaughtUp(node, federation.name(peer)));
    }
    absl::StatusOr<v1::GetFederationStatusResponse> status = federation.FederationStatus(node);
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(status->node(), federation.name(node));
    for (const v1::ForkEvidence& fork : status->forks()) {
      const int forked = federation.index_of(fork.peer());
      EXPECT_TRUE(std::find(nodes.begin(), nodes.end(), forked) == nodes.end())
          << "an honest peer reported forked: " << fork.DebugString();
    }
    for (int peer : nodes) {
      if (peer == node) continue;
      const std::optional<v1::PeerStatus> found = FederationHarness::FindPeer(*status, federation.name(peer));
      ASSERT_TRUE(found.has_value()) << status->DebugString();
      EXPECT_EQ(found->rejected_entries(), 0u) << found->DebugString();
      EXPECT_EQ(found->peer_policy_hash(), status->policy_hash()) << found->DebugString();
      EXPECT_EQ(found->public_key(), federation.node_public_key(peer));
      EXPECT_TRUE(found->last_error().empty()) << found->DebugString();
      EXPECT_GT(found->last_success_unix(), 0) << found->DebugString();
    }
  }
}

// Waits until `node` reports `peer` as not followed any more (the last round failed).
::testing::AssertionResult WaitUnreachable(FederationHarness& federation, int node, const std::string& peer) {
  return federation.WaitForFederationStatus(
      node, absl::StrCat("reporting ", peer, " unreachable"), [&](const v1::GetFederationStatusResponse& status) {
        const std::optional<v1::PeerStatus> found = FederationHarness::FindPeer(status, peer);
        return found && found->state() == v1::PeerStatus::CONNECTING && !found->last_error().empty();
      });
}

TEST(FederationConvergenceTest, SubmissionsSpreadAcrossNodesGiveTheSameAnswerEverywhere) {
  FederationHarness federation(DefaultFederation(3));
  ASSERT_TRUE(federation.StartAll());
  constexpr int kA = 0, kB = 1, kC = 2;

  // Each builder submits to another node; alice uses the CLI, as a builder would.
  const consensus::Attestation alice_hello = federation.Attest(kAlice, "fed-hello", "same bytes");
  const consensus::Attestation alice_nondet = federation.Attest(kAlice, "fed-nondet", "built at 1");
  RunResult cli = federation.node(kA).Cli({"submit", "--node", federation.grpc_address(kA), "--key",
                                           federation.builder(kAlice).key.secret_file, "--not-built-here-ok", "-"},
                                          PathInfoJson({alice_hello.claim, alice_nondet.claim}));
  ASSERT_EQ(cli.exit_code, 0) << cli.out << cli.err;

  const consensus::Attestation bob_hello = federation.Attest(kBob, "fed-hello", "same bytes");
  const consensus::Attestation bob_nondet = federation.Attest(kBob, "fed-nondet", "built at 2");
  ASSERT_TRUE(federation.Submit(kB, {bob_hello, bob_nondet}));
  const consensus::Attestation carol_hello = federation.Attest(kCarol, "fed-hello", "same bytes");
  const consensus::Attestation carol_single = federation.Attest(kCarol, "fed-single", "only carol");
  ASSERT_TRUE(federation.Submit(kC, {carol_hello, carol_single}));

  const std::vector<ExpectedPath> expected = {
      {PathOf("fed-hello"),
       v1::CONFIRMED,
       {SignatureOf(alice_hello), SignatureOf(bob_hello), SignatureOf(carol_hello)}},
      {PathOf("fed-nondet"), v1::DISPUTED, {SignatureOf(alice_nondet), SignatureOf(bob_nondet)}},
      {PathOf("fed-single"), v1::PENDING, {SignatureOf(carol_single)}},
      {PathOf("fed-nobody"), v1::UNKNOWN, {}},
  };
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  ExpectAllFollowing(federation, {kA, kB, kC});

  // What the CLI shows, and an offline re-check of every node's answer against the policy alone.
  WriteFileOrDie(federation.dir(kA).File("shared-policy.toml"), federation.policy_toml());
  std::string dispute_id;
  for (int node = 0; node < federation.size(); ++node) {
    RunResult status = federation.node(node).Cli(
        {"status", "--json", "--node", federation.grpc_address(node), PathOf("fed-hello"), PathOf("fed-nondet")});
    EXPECT_EQ(status.exit_code, 1) << "fed-nondet is not CONFIRMED: " << status.out << status.err;
    const json answer = json::parse(status.out);
    ASSERT_EQ(answer.size(), 2u);
    EXPECT_EQ(answer[0]["verdict"], "CONFIRMED") << federation.name(node);
    EXPECT_EQ(answer[1]["verdict"], "DISPUTED") << federation.name(node);
    if (dispute_id.empty()) dispute_id = answer[1]["dispute_id"];
    EXPECT_EQ(answer[1]["dispute_id"], dispute_id) << federation.name(node);
    RunResult verify = federation.node(node).Cli(
        {"verify", "--policy", federation.dir(kA).File("shared-policy.toml"), "-"}, status.out);
    EXPECT_EQ(verify.exit_code, 0) << federation.name(node) << ": " << verify.out << verify.err;
  }
  EXPECT_FALSE(dispute_id.empty());

  // Each node serves each peer's checkpoint with its own cosignature, and both signatures verify.
  for (int node = 0; node < federation.size(); ++node) {
    absl::StatusOr<consensus::PublicKey> node_key = consensus::PublicKey::Parse(federation.node_public_key(node));
    ASSERT_TRUE(node_key.ok()) << node_key.status();
    for (int peer = 0; peer < federation.size(); ++peer) {
      if (peer == node) continue;
      const HttpResponse response = federation.HttpGet(node, "/federation/checkpoint/" + federation.name(peer));
      ASSERT_EQ(response.status, 200) << federation.name(node) << " " << response.error << response.body;
      absl::StatusOr<consensus::PublicKey> peer_key = consensus::PublicKey::Parse(federation.node_public_key(peer));
      ASSERT_TRUE(peer_key.ok()) << peer_key.status();
      absl::StatusOr<consensus::SignedNote> note = consensus::SignedNote::Parse(response.body);
      ASSERT_TRUE(note.ok()) << note.status() << "\n" << response.body;
      absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(response.body, *peer_key);
      EXPECT_TRUE(checkpoint.ok()) << checkpoint.status() << "\n" << response.body;
      if (checkpoint.ok()) {
        EXPECT_GE(checkpoint->size, 2u) << "the peer logged its submissions";
      }
      EXPECT_TRUE(consensus::VerifyCosignature(*note, *node_key).ok())
          << federation.name(node) << " did not cosign " << federation.name(peer) << "'s checkpoint:\n"
          << response.body;
    }
  }
}

TEST(FederationRestartTest, AKilledNodeCatchesUpAfterARestartOnTheSameAddress) {
  FederationHarness federation(DefaultFederation(3));
  ASSERT_TRUE(federation.StartAll());
  constexpr int kA = 0, kB = 1, kC = 2;

  const consensus::Attestation alice_1 = federation.Attest(kAlice, "restart-1", "r1");
  const consensus::Attestation carol_1 = federation.Attest(kCarol, "restart-1", "r1");
  ASSERT_TRUE(federation.Submit(kA, {alice_1}));
  ASSERT_TRUE(federation.Submit(kC, {carol_1}));
  std::vector<ExpectedPath> expected = {
      {PathOf("restart-1"), v1::CONFIRMED, {SignatureOf(alice_1), SignatureOf(carol_1)}}};
  ASSERT_TRUE(federation.WaitForAgreement(expected));

  const std::optional<int> killed = federation.Stop(kC, SIGKILL);
  ASSERT_TRUE(killed.has_value());
  EXPECT_TRUE(WIFSIGNALED(*killed));
  EXPECT_TRUE(WaitUnreachable(federation, kA, federation.name(kC)));
  EXPECT_TRUE(WaitUnreachable(federation, kB, federation.name(kC)));

  // The others carry on without it.
  const consensus::Attestation alice_2 = federation.Attest(kAlice, "restart-2", "r2");
  const consensus::Attestation bob_2 = federation.Attest(kBob, "restart-2", "r2");
  const consensus::Attestation alice_3 = federation.Attest(kAlice, "restart-3", "first");
  const consensus::Attestation bob_3 = federation.Attest(kBob, "restart-3", "second");
  std::vector<consensus::Attestation> alice_bulk = {alice_2, alice_3};
  std::vector<consensus::Attestation> bob_bulk = {bob_2, bob_3};
  // Enough for several entry bundles and transactions (one tile each) per peer.
  for (int i = 0; i < 600; ++i) {
    const std::string name = absl::StrCat("restart-bulk-", i);
    alice_bulk.push_back(federation.Attest(kAlice, name, name));
    bob_bulk.push_back(federation.Attest(kBob, name, name));
    expected.push_back({PathOf(name), v1::CONFIRMED, {SignatureOf(alice_bulk.back()), SignatureOf(bob_bulk.back())}});
  }
  ASSERT_TRUE(federation.Submit(kA, alice_bulk));
  ASSERT_TRUE(federation.Submit(kB, bob_bulk));
  expected.push_back({PathOf("restart-2"), v1::CONFIRMED, {SignatureOf(alice_2), SignatureOf(bob_2)}});
  expected.push_back({PathOf("restart-3"), v1::DISPUTED, {SignatureOf(alice_3), SignatureOf(bob_3)}});
  ASSERT_TRUE(federation.WaitForAgreement(expected, {kA, kB}));

  // Back on the same ports with the same database, killed again while it catches up, and back once
  // more: it resumes where its last transaction left off, and is followed again.
  ASSERT_TRUE(federation.Start(kC));
  uint64_t applied = 0;
  ASSERT_TRUE(federation.WaitForFederationStatus(kC, "applying node-a's entries",
                                                 [&](const v1::GetFederationStatusResponse& status) {
                                                   const std::optional<v1::PeerStatus> peer =
                                                       FederationHarness::FindPeer(status, federation.name(kA));
                                                   applied = peer ? peer->cursor() : 0;
                                                   return applied > 1;
                                                 }));
  ASSERT_TRUE(federation.Stop(kC, SIGKILL).has_value());
  ASSERT_TRUE(federation.Start(kC));
  absl::StatusOr<v1::GetFederationStatusResponse> resumed = federation.FederationStatus(kC);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  const std::optional<v1::PeerStatus> resumed_peer = FederationHarness::FindPeer(*resumed, federation.name(kA));
  ASSERT_TRUE(resumed_peer.has_value());
  EXPECT_GE(resumed_peer->cursor(), applied) << "the cursor moved backwards over a kill";
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  const consensus::Attestation carol_4 = federation.Attest(kCarol, "restart-4", "r4");
  ASSERT_TRUE(federation.Submit(kC, {carol_4}));
  expected.push_back({PathOf("restart-4"), v1::PENDING, {SignatureOf(carol_4)}});
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  ExpectAllFollowing(federation, {kA, kB, kC});
}

TEST(FederationPartitionTest, AnIsolatedNodeConvergesOnceItsLinksAreRestored) {
  FederationHarness federation(DefaultFederation(3, PeerLinks::kForwarded));
  ASSERT_TRUE(federation.StartAll());
  constexpr int kA = 0, kB = 1, kC = 2;

  const consensus::Attestation alice_0 = federation.Attest(kAlice, "part-0", "p0");
  const consensus::Attestation bob_0 = federation.Attest(kBob, "part-0", "p0");
  ASSERT_TRUE(federation.Submit(kA, {alice_0}));
  ASSERT_TRUE(federation.Submit(kB, {bob_0}));
  ASSERT_TRUE(
      federation.WaitForAgreement({{PathOf("part-0"), v1::CONFIRMED, {SignatureOf(alice_0), SignatureOf(bob_0)}}}));

  federation.Isolate(kC);
  EXPECT_TRUE(WaitUnreachable(federation, kA, federation.name(kC)));
  EXPECT_TRUE(WaitUnreachable(federation, kB, federation.name(kC)));
  EXPECT_TRUE(WaitUnreachable(federation, kC, federation.name(kA)));
  EXPECT_TRUE(WaitUnreachable(federation, kC, federation.name(kB)));

  // Both sides of the partition keep taking submissions.
  const consensus::Attestation alice_1 = federation.Attest(kAlice, "part-1", "p1");
  const consensus::Attestation bob_1 = federation.Attest(kBob, "part-1", "p1");
  const consensus::Attestation carol_1 = federation.Attest(kCarol, "part-1", "p1");
  const consensus::Attestation carol_2 = federation.Attest(kCarol, "part-2", "only during the cut");
  const consensus::Attestation alice_3 = federation.Attest(kAlice, "part-3", "one result");
  const consensus::Attestation carol_3 = federation.Attest(kCarol, "part-3", "another result");
  ASSERT_TRUE(federation.Submit(kA, {alice_1, alice_3}));
  ASSERT_TRUE(federation.Submit(kB, {bob_1}));
  ASSERT_TRUE(federation.Submit(kC, {carol_1, carol_2, carol_3}));

  // A and B agree with each other and know nothing of what C took; C knows only its own.
  ASSERT_TRUE(
      federation.WaitForAgreement({{PathOf("part-1"), v1::CONFIRMED, {SignatureOf(alice_1), SignatureOf(bob_1)}},
                                   {PathOf("part-2"), v1::UNKNOWN, {}},
                                   {PathOf("part-3"), v1::PENDING, {SignatureOf(alice_3)}}},
                                  {kA, kB}));
  ASSERT_TRUE(federation.WaitForAgreement({{PathOf("part-1"), v1::PENDING, {SignatureOf(carol_1)}},
                                           {PathOf("part-2"), v1::PENDING, {SignatureOf(carol_2)}},
                                           {PathOf("part-3"), v1::PENDING, {SignatureOf(carol_3)}}},
                                          {kC}));

  federation.Reconnect(kC);
  ASSERT_TRUE(federation.WaitForAgreement({
      {PathOf("part-0"), v1::CONFIRMED, {SignatureOf(alice_0), SignatureOf(bob_0)}},
      {PathOf("part-1"), v1::CONFIRMED, {SignatureOf(alice_1), SignatureOf(bob_1), SignatureOf(carol_1)}},
      {PathOf("part-2"), v1::PENDING, {SignatureOf(carol_2)}},
      {PathOf("part-3"), v1::DISPUTED, {SignatureOf(alice_3), SignatureOf(carol_3)}},
  }));
  ExpectAllFollowing(federation, {kA, kB, kC});
}

TEST(FederationForkTest, PeersDetectAnEquivocatingNodeAndServeTheEvidence) {
  FederationOptions options = DefaultFederation(3);
  options.nodes.push_back({.name = "node-f", .fork_log = true, .follows_others = false});
  FederationHarness federation(options);
  ASSERT_TRUE(federation.StartAll());
  constexpr int kF = 3;
  const std::string forker = federation.name(kF);
  absl::StatusOr<consensus::PublicKey> forker_key = consensus::PublicKey::Parse(federation.node_public_key(kF));
  ASSERT_TRUE(forker_key.ok()) << forker_key.status();

  ASSERT_TRUE(
      federation.Submit(kF, {federation.Attest(kAlice, "fork-0", "f0"), federation.Attest(kBob, "fork-1", "f1")}));
  // Honest traffic continues meanwhile.
  const consensus::Attestation alice_ok = federation.Attest(kAlice, "fork-honest", "h");
  const consensus::Attestation bob_ok = federation.Attest(kBob, "fork-honest", "h");
  ASSERT_TRUE(federation.Submit(0, {alice_ok}));
  ASSERT_TRUE(federation.Submit(1, {bob_ok}));

  for (int node = 0; node < 3; ++node) {
    SCOPED_TRACE(federation.name(node));
    ASSERT_TRUE(federation.WaitForFederationStatus(node, absl::StrCat("reporting ", forker, " FORKED with evidence"),
                                                   [&](const v1::GetFederationStatusResponse& status) {
                                                     const std::optional<v1::PeerStatus> peer =
                                                         FederationHarness::FindPeer(status, forker);
                                                     if (!peer || peer->state() != v1::PeerStatus::FORKED) return false;
                                                     for (const v1::ForkEvidence& fork : status.forks()) {
                                                       if (fork.peer() == forker) return true;
                                                     }
                                                     return false;
                                                   }));
    absl::StatusOr<v1::GetFederationStatusResponse> status = federation.FederationStatus(node);
    ASSERT_TRUE(status.ok()) << status.status();
    const v1::ForkEvidence* evidence = nullptr;
    for (const v1::ForkEvidence& fork : status->forks()) {
      if (fork.peer() == forker) evidence = &fork;
    }
    ASSERT_NE(evidence, nullptr);
    EXPECT_NE(evidence->first_checkpoint(), evidence->second_checkpoint());
    EXPECT_FALSE(evidence->reason().empty());
    EXPECT_GT(evidence->detected_unix(), 0);
    // Both notes are really signed by the forking node, and they cannot both hold.
    absl::StatusOr<consensus::Checkpoint> first =
        consensus::VerifyCheckpoint(evidence->first_checkpoint(), *forker_key);
    absl::StatusOr<consensus::Checkpoint> second =
        consensus::VerifyCheckpoint(evidence->second_checkpoint(), *forker_key);
    ASSERT_TRUE(first.ok()) << first.status() << "\n" << evidence->first_checkpoint();
    ASSERT_TRUE(second.ok()) << second.status() << "\n" << evidence->second_checkpoint();
    EXPECT_EQ(first->origin, forker);
    EXPECT_FALSE(*first == *second) << "the same checkpoint twice is no evidence";
    if (first->size == second->size) {
      EXPECT_NE(first->root, second->root);
    }

    // The evidence is on the HTTP port too.
    const HttpResponse served = federation.HttpGet(node, "/federation/fork/" + forker);
    EXPECT_EQ(served.status, 200) << served.error << served.body;
    EXPECT_THAT(served.body, HasSubstr(consensus::Base64Encode(first->root)));
    EXPECT_THAT(served.body, HasSubstr(consensus::Base64Encode(second->root)));
  }

  // The honest nodes still follow each other.
  ASSERT_TRUE(federation.WaitForAgreement(
      {{PathOf("fork-honest"), v1::CONFIRMED, {SignatureOf(alice_ok), SignatureOf(bob_ok)}}}, {0, 1, 2}));
  ExpectAllFollowing(federation, {0, 1, 2});
}

TEST(FederationForgeryTest, AForgedAttestationInAPeersLogIsRefusedAndReported) {
  FederationHarness federation(DefaultFederation(3));
  constexpr int kA = 0, kB = 1, kC = 2;
  const std::string forger = federation.name(kC);

  // Node C's log holds, validly signed by C, an attestation whose builder signature does not verify:
  // written into its database before it starts, as a compromised node could.
  const consensus::Attestation valid_0 = federation.Attest(kAlice, "forge-valid-0", "v0");
  consensus::Attestation forged = federation.Attest(kBob, "forge-bad", "b");
  forged.signature.bytes[7] ^= 0x20;
  const consensus::Attestation valid_2 = federation.Attest(kCarol, "forge-valid-2", "v2");
  {
    absl::StatusOr<std::unique_ptr<storage::SqliteAttestationStore>> store =
        storage::SqliteAttestationStore::Open(federation.database_path(kC), storage::SqliteOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    const int64_t now = std::time(nullptr);
    storage::WriteBatch batch;
    for (const consensus::Attestation& attestation : {valid_0, forged, valid_2}) {
      // origin "": submitted to this node, so it is in its own log.
      batch.attestations.push_back(storage::StoredAttestation{
          .attestation = attestation, .received_unix = now, .observed_key = std::nullopt, .origin = ""});
    }
    batch.log_append = storage::LogAppend::kAll;
    absl::StatusOr<std::vector<storage::WriteOutcome>> written = (*store)->Write(batch);
    ASSERT_TRUE(written.ok()) << written.status();
    absl::StatusOr<storage::LogHead> head = (*store)->GetLogHead();
    ASSERT_TRUE(head.ok()) << head.status();
    ASSERT_EQ(head->size, 3u);
  }
  ASSERT_TRUE(federation.StartAll());

  for (int node : {kA, kB}) {
    SCOPED_TRACE(federation.name(node));
    ASSERT_TRUE(federation.WaitForFederationStatus(
        node, absl::StrCat("past ", forger, "'s entry 1, reporting it rejected"),
        [&](const v1::GetFederationStatusResponse& status) {
          const std::optional<v1::PeerStatus> peer = FederationHarness::FindPeer(status, forger);
          if (!peer || peer->cursor() < 3 || peer->rejected_entries() < 1) return false;
          for (const v1::RejectedEntry& rejected : status.recent_rejections()) {
            if (rejected.peer() == forger && rejected.index() == 1) return true;
          }
          return false;
        }));
    absl::StatusOr<v1::GetFederationStatusResponse> status = federation.FederationStatus(node);
    ASSERT_TRUE(status.ok()) << status.status();
    for (const v1::RejectedEntry& rejected : status->recent_rejections()) {
      if (rejected.peer() != forger) continue;
      EXPECT_EQ(rejected.index(), 1u) << "only entry 1 is forged: " << rejected.DebugString();
      EXPECT_FALSE(rejected.reason().empty());
      EXPECT_THAT(rejected.entry(), HasSubstr(SignatureOf(forged)));
      EXPECT_GT(rejected.detected_unix(), 0);
    }
    // A forged entry is not a fork: the peer is still followed.
    const std::optional<v1::PeerStatus> peer = FederationHarness::FindPeer(*status, forger);
    ASSERT_TRUE(peer.has_value());
    EXPECT_NE(peer->state(), v1::PeerStatus::FORKED);
    EXPECT_EQ(status->forks_size(), 0);
  }

  // The valid ones are stored and counted on the peers; the forged signature appears nowhere.
  const std::vector<ExpectedPath> expected = {
      {PathOf("forge-valid-0"), v1::PENDING, {SignatureOf(valid_0)}},
      {PathOf("forge-bad"), v1::UNKNOWN, {}},
      {PathOf("forge-valid-2"), v1::PENDING, {SignatureOf(valid_2)}},
  };
  ASSERT_TRUE(federation.WaitForAgreement(expected, {kA, kB}));
  // The honest nodes' answers re-check offline; a later submission still flows past the bad entry.
  const consensus::Attestation bob_valid_0 = federation.Attest(kBob, "forge-valid-0", "v0");
  ASSERT_TRUE(federation.Submit(kC, {bob_valid_0}));
  ASSERT_TRUE(federation.WaitForAgreement(
      {{PathOf("forge-valid-0"), v1::CONFIRMED, {SignatureOf(valid_0), SignatureOf(bob_valid_0)}},
       {PathOf("forge-bad"), v1::UNKNOWN, {}}},
      {kA, kB}));
}

TEST(FederationPolicyTest, APeerWithAnotherPolicyIsReportedAndNothingOfItIsStored) {
  FederationOptions options = DefaultFederation(2);
  options.nodes.push_back({.name = "node-m", .policy_quorum = 1});
  FederationHarness federation(options);
  ASSERT_TRUE(federation.StartAll());
  constexpr int kA = 0, kB = 1, kM = 2;
  const std::string other = federation.name(kM);

  // Valid under both policies, but node M counts by its own.
  ASSERT_TRUE(
      federation.Submit(kM, {federation.Attest(kAlice, "policy-m", "m"), federation.Attest(kBob, "policy-m", "m")}));
  const consensus::Attestation alice_ok = federation.Attest(kAlice, "policy-ok", "ok");
  const consensus::Attestation bob_ok = federation.Attest(kBob, "policy-ok", "ok");
  ASSERT_TRUE(federation.Submit(kA, {alice_ok}));
  ASSERT_TRUE(federation.Submit(kB, {bob_ok}));

  for (int node : {kA, kB}) {
    SCOPED_TRACE(federation.name(node));
    ASSERT_TRUE(federation.WaitForFederationStatus(node, absl::StrCat("reporting ", other, " POLICY_MISMATCH"),
                                                   [&](const v1::GetFederationStatusResponse& status) {
                                                     const std::optional<v1::PeerStatus> peer =
                                                         FederationHarness::FindPeer(status, other);
                                                     return peer && peer->state() == v1::PeerStatus::POLICY_MISMATCH;
                                                   }));
  }
  // A and B replicate each other (so following works) and hold nothing of M.
  ASSERT_TRUE(
      federation.WaitForAgreement({{PathOf("policy-ok"), v1::CONFIRMED, {SignatureOf(alice_ok), SignatureOf(bob_ok)}},
                                   {PathOf("policy-m"), v1::UNKNOWN, {}}},
                                  {kA, kB}));
  for (int node : {kA, kB}) {
    absl::StatusOr<v1::GetFederationStatusResponse> status = federation.FederationStatus(node);
    ASSERT_TRUE(status.ok()) << status.status();
    const std::optional<v1::PeerStatus> peer = FederationHarness::FindPeer(*status, other);
    ASSERT_TRUE(peer.has_value());
    EXPECT_EQ(peer->state(), v1::PeerStatus::POLICY_MISMATCH) << peer->DebugString();
    EXPECT_EQ(peer->cursor(), 0u) << "entries of a peer with another policy were applied";
    EXPECT_FALSE(peer->peer_policy_hash().empty());
    EXPECT_NE(peer->peer_policy_hash(), status->policy_hash());
  }
  // M, for its part, follows neither of them.
  ASSERT_TRUE(federation.WaitForFederationStatus(
      kM, "reporting both peers POLICY_MISMATCH", [&](const v1::GetFederationStatusResponse& status) {
        for (int node : {kA, kB}) {
          const std::optional<v1::PeerStatus> peer = FederationHarness::FindPeer(status, federation.name(node));
          if (!peer || peer->state() != v1::PeerStatus::POLICY_MISMATCH) {
            return false;
          }
        }
        return true;
      }));
}


// The size of `origin`'s checkpoint that node i verified and cosigned, served from its mirror of
// `origin`'s log (0 when none).
uint64_t MirroredSize(FederationHarness& federation, int node, int origin) {
  const HttpResponse answer =
      federation.HttpGet(node, absl::StrCat("/federation/mirror/", federation.name(origin), "/checkpoint"));
  if (answer.status != 200) return 0;
  absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(federation.node_public_key(origin));
  if (!key.ok()) return 0;
  absl::StatusOr<consensus::Checkpoint> checkpoint = consensus::VerifyCheckpoint(answer.body, *key);
  return checkpoint.ok() ? checkpoint->size : 0;
}

// The log in node i's database (the node stopped): every entry and the root.
std::pair<std::vector<std::string>, consensus::MerkleHash> LogOnDisk(FederationHarness& federation, int node) {
  auto store = storage::SqliteAttestationStore::Open(federation.database_path(node), storage::SqliteOptions{});
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return {};
  const storage::LogHead head = (*store)->GetLogHead().value_or(storage::LogHead{});
  return {(*store)->LogEntries(0, head.size).value_or(std::vector<std::string>{}), head.root};
}

TEST(FederationRestoreTest, ANodeWhoseDatabaseWasLostGetsTheSameLogBackFromItsPeers) {
  FederationHarness federation(DefaultFederation(3));
  ASSERT_TRUE(federation.StartAll());
  constexpr int kA = 0, kB = 1, kC = 2;

  // A's log: several entry bundles of attestations and a dispute, written in one transaction (so every
  // checkpoint A signs from now on is of all of it). B holds attestations of its own, which A replicates
  // (they change nothing in A's log: one operator each, no dispute).
  std::vector<consensus::Attestation> to_a, to_b;
  std::vector<ExpectedPath> expected;
  for (int i = 0; i < 300; ++i) {
    const std::string name = absl::StrCat("restore-", i);
    to_a.push_back(federation.Attest(kAlice, name, name));
    to_a.push_back(federation.Attest(kBob, name, name));
    expected.push_back({PathOf(name), v1::CONFIRMED, {SignatureOf(to_a[to_a.size() - 2]), SignatureOf(to_a.back())}});
  }
  to_a.push_back(federation.Attest(kCarol, "restore-0", "other bytes"));
  expected[0].verdict = v1::DISPUTED;
  expected[0].signatures.insert(SignatureOf(to_a.back()));
  for (int i = 0; i < 20; ++i) {
    const std::string name = absl::StrCat("restore-b-", i);
    to_b.push_back(federation.Attest(kBob, name, name));
    expected.push_back({PathOf(name), v1::PENDING, {SignatureOf(to_b.back())}});
  }
  ASSERT_TRUE(federation.Submit(kA, to_a));
  ASSERT_TRUE(federation.Submit(kB, to_b));
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  // Both followers hold A's whole log and cosigned a checkpoint of all of it.
  uint64_t size = 0;
  ASSERT_TRUE(PollEvery(
      [&] {
        const HttpResponse checkpoint = federation.HttpGet(kA, "/log/checkpoint");
        absl::StatusOr<consensus::PublicKey> key = consensus::PublicKey::Parse(federation.node_public_key(kA));
        if (checkpoint.status != 200 || !key.ok()) return false;
        absl::StatusOr<consensus::Checkpoint> parsed = consensus::VerifyCheckpoint(checkpoint.body, *key);
        size = parsed.ok() ? parsed->size : 0;
        return size > 0 && MirroredSize(federation, kB, kA) == size && MirroredSize(federation, kC, kA) == size;
      },
      kFederationDeadline))
      << "A signed " << size << "; B mirrors " << MirroredSize(federation, kB, kA) << ", C "
      << MirroredSize(federation, kC, kA) << "\n" << federation.Describe();

  // kill -9, and the database is gone; the signed-checkpoint file beside it survives.
  ASSERT_TRUE(federation.Stop(kA, SIGKILL).has_value());
  const auto [entries, root] = LogOnDisk(federation, kA);
  ASSERT_EQ(entries.size(), size);
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove(absl::StrCat(federation.database_path(kA), suffix).c_str());
  const std::string config = federation.node(kA).config_path();
  RunResult refused = ::attest::testing::Run({ATTESTD_BIN, "--config", config}, "", std::chrono::seconds(30));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("attestd restore --from-peers"));

  RunResult restored = ::attest::testing::Run({ATTESTD_BIN, "restore", "--from-peers", "--config", config}, "",
                                              std::chrono::seconds(120));
  ASSERT_EQ(restored.exit_code, 0) << restored.out << restored.err;
  EXPECT_THAT(restored.out, HasSubstr(absl::StrCat("restored ", size, " log entries of node-a")));
  const auto [back, back_root] = LogOnDisk(federation, kA);
  EXPECT_TRUE(back == entries) << "the restored log differs";
  EXPECT_EQ(back_root, root);

  // Started again, it answers as before (what it replicated comes back from its peers), its log goes
  // on, and nobody sees a fork.
  ASSERT_TRUE(federation.Start(kA));
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  const consensus::Attestation carol_2 = federation.Attest(kCarol, "restore-after", "r");
  ASSERT_TRUE(federation.Submit(kA, {carol_2}));
  expected.push_back({PathOf("restore-after"), v1::PENDING, {SignatureOf(carol_2)}});
  ASSERT_TRUE(federation.WaitForAgreement(expected));
  ExpectAllFollowing(federation, {kA, kB, kC});
}

}  // namespace
}  // namespace attest::testing
