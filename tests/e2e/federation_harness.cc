#include "tests/e2e/federation_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proto/convert.h"

namespace attest::testing {
namespace {

constexpr auto kRpcDeadline = std::chrono::seconds(5);

std::chrono::system_clock::time_point RpcDeadline() { return std::chrono::system_clock::now() + kRpcDeadline; }

std::string TrimmedTail(const std::string& text, int lines) {
  std::vector<std::string> all = absl::StrSplit(text, '\n', absl::SkipEmpty());
  const size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string out;
  for (size_t i = first; i < all.size(); ++i) absl::StrAppend(&out, "      ", all[i], "\n");
  return out;
}

std::string PeerLine(const v1::PeerStatus& peer) {
  return absl::StrCat(
      peer.name(), " ", PeerStateName(peer.state()), " peer_size=", peer.peer_size(), " cursor=", peer.cursor(),
      " lag=", peer.lag_entries(), " rejected=", peer.rejected_entries(),
      peer.last_error().empty() ? std::string() : absl::StrCat(" last_error=\"", peer.last_error(), "\""));
}

// A loopback port no other node or forwarder of this harness uses.
int DistinctPort(std::set<int>& taken) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int port = FreeLoopbackPort();
    if (port != 0 && taken.insert(port).second) return port;
  }
  ADD_FAILURE() << "cannot find a distinct free loopback port";
  return 0;
}

std::string PeerToml(const std::string& grpc, const std::string& http, const std::string& key) {
  return absl::StrCat("\n[[peer]]\ngrpc = \"", grpc, "\"\nhttp = \"", http, "\"\nkey = \"", key, "\"\n");
}

// Reads an HTTP/1.1 response (Content-Length or chunked or until close) from `raw`.
HttpResponse ParseHttpResponse(const std::string& raw) {
  HttpResponse response;
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    response.error = absl::StrCat("no complete HTTP header in ", raw.size(), " bytes");
    return response;
  }
  const std::string head = raw.substr(0, header_end);
  std::string body = raw.substr(header_end + 4);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], absl::MaxSplits(' ', 2));
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status)) {
    response.error = absl::StrCat("bad status line: ", lines[0]);
    return response;
  }
  bool chunked = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string lower = lines[i];
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    if (lower.rfind("transfer-encoding:", 0) == 0 && lower.find("chunked") != std::string::npos) chunked = true;
  }
  if (!chunked) {
    response.body = std::move(body);
    return response;
  }
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t line_end = body.find("\r\n", pos);
    if (line_end == std::string::npos) break;
    const size_t size = std::strtoul(body.substr(pos, line_end - pos).c_str(), nullptr, 16);
    if (size == 0) break;
    response.body.append(body, line_end + 2, size);
    pos = line_end + 2 + size + 2;
  }
  return response;
}

// "<key name>:<first 10 characters of the signature>...": enough to tell signatures apart in messages.
std::string ShortSignatures(const std::set<std::string>& signatures) {
  std::vector<std::string> short_forms;
  for (const std::string& signature : signatures) {
    const size_t colon = signature.find(':');
    short_forms.push_back(colon == std::string::npos ? signature : signature.substr(0, colon + 11) + "...");
  }
  return absl::StrCat("{", absl::StrJoin(short_forms, ", "), "}");
}

}  // namespace

struct FederationHarness::Node final {
  FederationNodeSpec spec;
  std::unique_ptr<TempDir> dir;  // before `harness`, which refers to it
  NixKeyPair key;
  int grpc_port = 0;
  int http_port = 0;
  std::string grpc_address;
  std::string http_address;
  std::unique_ptr<NodeHarness> harness;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Attestations::Stub> attestations;
  std::unique_ptr<v1::Federation::Stub> federation;
};

struct FederationHarness::Link final {
  std::unique_ptr<TcpForwarder> grpc;
  std::unique_ptr<TcpForwarder> http;
};

FederationOptions DefaultFederation(int count, PeerLinks links) {
  FederationOptions options;
  options.links = links;
  for (int i = 0; i < count; ++i) {
    options.nodes.push_back({.name = absl::StrCat("node-", std::string(1, static_cast<char>('a' + i)))});
  }
  return options;
}

const char* VerdictName(v1::Verdict verdict) {
  switch (verdict) {
    case v1::UNKNOWN:
      return "UNKNOWN";
    case v1::PENDING:
      return "PENDING";
    case v1::CONFIRMED:
      return "CONFIRMED";
    case v1::DISPUTED:
      return "DISPUTED";
    default:
      return "UNSPECIFIED";
  }
}

const char* PeerStateName(v1::PeerStatus::State state) {
  switch (state) {
    case v1::PeerStatus::CONNECTING:
      return "CONNECTING";
    case v1::PeerStatus::FOLLOWING:
      return "FOLLOWING";
    case v1::PeerStatus::POLICY_MISMATCH:
      return "POLICY_MISMATCH";
    case v1::PeerStatus::FORKED:
      return "FORKED";
    default:
      return "UNSPECIFIED";
  }
}

std::string PathView::DebugString() const {
  return absl::StrCat(VerdictName(verdict), " signatures=", ShortSignatures(signatures),
                      " fingerprints=", fingerprints.size(),
                      dispute_id.empty() ? std::string() : absl::StrCat(" dispute=", dispute_id));
}

bool PollEvery(const std::function<bool()>& condition, std::chrono::milliseconds deadline,
               std::chrono::milliseconds interval) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(interval);
  }
}

FederationHarness::FederationHarness(FederationOptions options) : options_(std::move(options)) {
  std::vector<OperatorSpec> operators;
  for (const BuilderSpec& spec : options_.builders) {
    NixKeyPair key = MakeNixKey(shared_dir_, spec.key_name);
    absl::StatusOr<consensus::SecretKey> secret = consensus::SecretKey::Parse(ReadFileOrDie(key.secret_file));
    if (!secret.ok()) {
      ADD_FAILURE() << "builder key " << spec.key_name << ": " << secret.status();
      std::abort();
    }
    operators.push_back({spec.operator_name, {key.public_text}});
    builders_.push_back({spec.operator_name, std::move(key), std::move(*secret)});
  }
  policy_toml_ = PolicyToml(options_.quorum, operators);
  if (!options_.maintainers.empty()) {
    // Top-level keys go before the first table.
    policy_toml_ = absl::StrCat("update_threshold = ", options_.update_threshold, "\n", policy_toml_);
    for (const std::string& name : options_.maintainers) {
      maintainers_.push_back(MakeNixKey(shared_dir_, name));
      absl::StrAppend(&policy_toml_, "\n[[maintainer]]\nkey = \"", maintainers_.back().public_text, "\"\n");
    }
  }

  std::set<int> ports;
  for (const FederationNodeSpec& spec : options_.nodes) {
    auto node = std::make_unique<Node>();
    node->spec = spec;
    node->dir = std::make_unique<TempDir>();
    node->key = MakeNixKey(*node->dir, spec.name);
    WriteFileOrDie(node->dir->File("node.sec"), ReadFileOrDie(node->key.secret_file));
    std::filesystem::permissions(node->dir->File("node.sec"),
                                 std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    node->grpc_port = DistinctPort(ports);
    node->http_port = DistinctPort(ports);
    node->grpc_address = absl::StrCat("127.0.0.1:", node->grpc_port);
    node->http_address = absl::StrCat("127.0.0.1:", node->http_port);
    nodes_.push_back(std::move(node));
  }

  for (int i = 0; i < size(); ++i) {
    Node& node = at(i);
    std::string extra = absl::StrCat(
        "\n[log]\ncheckpoint_interval = \"100ms\"\n"
        "\n[federation]\npoll_interval = \"100ms\"\nmax_backoff = \"1s\"\nbatch_entries = 256\n");
    if (node.spec.follows_others) {
      for (int j = 0; j < size(); ++j) {
        const Node& peer = at(j);
        if (j == i || !peer.spec.followed) continue;
        std::string grpc = peer.grpc_address;
        std::string http = peer.http_address;
        if (options_.links == PeerLinks::kForwarded) {
          auto link = std::make_unique<Link>();
          absl::StatusOr<std::unique_ptr<TcpForwarder>> grpc_forwarder = TcpForwarder::Start(peer.grpc_port);
          absl::StatusOr<std::unique_ptr<TcpForwarder>> http_forwarder = TcpForwarder::Start(peer.http_port);
          if (!grpc_forwarder.ok() || !http_forwarder.ok()) {
            ADD_FAILURE() << "forwarder: " << grpc_forwarder.status() << " " << http_forwarder.status();
            std::abort();
          }
          link->grpc = std::move(*grpc_forwarder);
          link->http = std::move(*http_forwarder);
          grpc = link->grpc->address();
          http = link->http->address();
          links_[{i, j}] = std::move(link);
        }
        absl::StrAppend(&extra, PeerToml(grpc, http, peer.key.public_text));
      }
    }
    node.harness = std::make_unique<NodeHarness>(
        *node.dir, node.spec.policy_quorum == 0 ? policy_toml_ : PolicyToml(node.spec.policy_quorum, operators), extra,
        NodePorts{.grpc = node.grpc_port, .http = node.http_port},
        node.spec.fork_log ? NodeBinary::kForkingAttestd : NodeBinary::kAttestd);
  }
}

FederationHarness::~FederationHarness() {
  for (int i = 0; i < size(); ++i) DropChannel(i);
  for (auto& node : nodes_) {
    if (node->harness && node->harness->daemon() && node->harness->daemon()->Running()) {
      if (!node->harness->Stop(SIGTERM).has_value()) node->harness->Stop(SIGKILL);
    }
  }
}

FederationHarness::Node& FederationHarness::at(int node) { return *nodes_.at(static_cast<size_t>(node)); }
const FederationHarness::Node& FederationHarness::at(int node) const { return *nodes_.at(static_cast<size_t>(node)); }

const std::string& FederationHarness::name(int node) const { return at(node).spec.name; }

int FederationHarness::index_of(const std::string& name) const {
  for (int i = 0; i < size(); ++i) {
    if (at(i).spec.name == name) return i;
  }
  return -1;
}

NodeHarness& FederationHarness::node(int node) { return *at(node).harness; }
const TempDir& FederationHarness::dir(int node) const { return *at(node).dir; }
std::string FederationHarness::database_path(int node) const { return at(node).dir->File("attest.db"); }
const std::string& FederationHarness::node_public_key(int node) const { return at(node).key.public_text; }
const std::string& FederationHarness::grpc_address(int node) const { return at(node).grpc_address; }
const std::string& FederationHarness::http_address(int node) const { return at(node).http_address; }

bool FederationHarness::Start(int i) {
  Node& node = at(i);
  if (!node.harness->Start()) return false;
  if (node.harness->grpc_address() != node.grpc_address) {
    ADD_FAILURE() << node.spec.name << " listens on " << node.harness->grpc_address() << ", not " << node.grpc_address;
    return false;
  }
  // A fresh channel per start: the old one may be in a long reconnect backoff after a kill.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  node.channel = grpc::CreateCustomChannel(node.grpc_address, grpc::InsecureChannelCredentials(), args);
  node.attestations = v1::Attestations::NewStub(node.channel);
  node.federation = v1::Federation::NewStub(node.channel);
  return true;
}

bool FederationHarness::StartAll() {
  for (int i = 0; i < size(); ++i) {
    if (!Start(i)) return false;
  }
  return true;
}

std::optional<int> FederationHarness::Stop(int node, int signal) {
  DropChannel(node);
  return at(node).harness->Stop(signal);
}

void FederationHarness::DropChannel(int node) {
  // An idle client connection holds up attestd's drain on SIGTERM for seconds; the next Start()
  // makes a new channel anyway.
  Node& n = at(node);
  n.attestations.reset();
  n.federation.reset();
  n.channel.reset();
}

void FederationHarness::Isolate(int node) {
  ASSERT_EQ(options_.links, PeerLinks::kForwarded) << "Isolate needs PeerLinks::kForwarded";
  for (auto& [ends, link] : links_) {
    if (ends.first == node || ends.second == node) {
      link->grpc->Cut();
      link->http->Cut();
    }
  }
}

void FederationHarness::Reconnect(int node) {
  ASSERT_EQ(options_.links, PeerLinks::kForwarded) << "Reconnect needs PeerLinks::kForwarded";
  for (auto& [ends, link] : links_) {
    if (ends.first == node || ends.second == node) {
      link->grpc->Restore();
      link->http->Restore();
    }
  }
}

consensus::Attestation FederationHarness::Attest(int builder, std::string_view name, std::string_view content) const {
  return consensus::SignAttestation(TestClaim(name, content), builders_.at(static_cast<size_t>(builder)).secret);
}

v1::Attestations::Stub* FederationHarness::attestations_stub(int node) { return at(node).attestations.get(); }
v1::Federation::Stub* FederationHarness::federation_stub(int node) { return at(node).federation.get(); }

::testing::AssertionResult FederationHarness::Submit(int node,
                                                     const std::vector<consensus::Attestation>& attestations) {
  v1::SubmitRequest request;
  for (const consensus::Attestation& attestation : attestations) {
    *request.add_attestations() = proto::ToProto(attestation);
  }
  if (attestations_stub(node) == nullptr) return ::testing::AssertionFailure() << name(node) << " is not running";
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  v1::SubmitResponse response;
  const grpc::Status status = attestations_stub(node)->Submit(&context, request, &response);
  if (!status.ok()) {
    return ::testing::AssertionFailure() << "Submit to " << name(node) << ": " << status.error_code() << " "
                                         << status.error_message();
  }
  if (response.results_size() != request.attestations_size()) {
    return ::testing::AssertionFailure() << "Submit to " << name(node) << ": " << response.results_size()
                                         << " results for " << request.attestations_size() << " attestations";
  }
  for (int i = 0; i < response.results_size(); ++i) {
    const v1::SubmitResult& result = response.results(i);
    if (result.outcome() != v1::SubmitResult::ACCEPTED && result.outcome() != v1::SubmitResult::ALREADY_PRESENT) {
      return ::testing::AssertionFailure()
             << "Submit to " << name(node) << ": attestation " << i << " outcome "
             << v1::SubmitResult::Outcome_Name(result.outcome()) << " " << result.message();
    }
  }
  return ::testing::AssertionSuccess();
}

absl::StatusOr<std::vector<PathView>> FederationHarness::Status(int node, const std::vector<std::string>& paths) {
  v1::StatusRequest request;
  for (const std::string& path : paths) request.add_store_paths(path);
  if (attestations_stub(node) == nullptr)
    return absl::FailedPreconditionError(absl::StrCat(name(node), " is not running"));
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  v1::StatusResponse response;
  const grpc::Status status = attestations_stub(node)->Status(&context, request, &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("Status on ", name(node), ": ", status.error_code(), " ", status.error_message()));
  }
  if (response.statuses_size() != request.store_paths_size()) {
    return absl::InternalError(absl::StrCat("Status on ", name(node), ": ", response.statuses_size(), " answers for ",
                                            request.store_paths_size(), " paths"));
  }
  std::vector<PathView> views;
  for (const v1::PathStatus& answer : response.statuses()) {
    PathView view;
    view.path = answer.store_path();
    view.verdict = answer.verdict();
    view.dispute_id = answer.dispute_id();
    view.policy_hash = answer.policy_hash();
    for (const v1::CountedAttestation& counted : answer.attestations()) view.signatures.insert(counted.signature());
    for (const v1::FingerprintTally& tally : answer.fingerprints()) view.fingerprints.insert(tally.fingerprint());
    views.push_back(std::move(view));
  }
  return views;
}

absl::StatusOr<v1::GetFederationStatusResponse> FederationHarness::FederationStatus(int node) {
  if (federation_stub(node) == nullptr)
    return absl::FailedPreconditionError(absl::StrCat(name(node), " is not running"));
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  v1::GetFederationStatusResponse response;
  const grpc::Status status =
      federation_stub(node)->GetFederationStatus(&context, v1::GetFederationStatusRequest(), &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("GetFederationStatus on ", name(node), ": ", status.error_code(), " ", status.error_message()));
  }
  return response;
}

std::optional<v1::PeerStatus> FederationHarness::FindPeer(const v1::GetFederationStatusResponse& status,
                                                          const std::string& peer) {
  for (const v1::PeerStatus& candidate : status.peers()) {
    if (candidate.name() == peer) return candidate;
  }
  return std::nullopt;
}

::testing::AssertionResult FederationHarness::WaitForAgreement(const std::vector<ExpectedPath>& expected,
                                                               std::vector<int> nodes,
                                                               std::chrono::milliseconds deadline) {
  if (nodes.empty()) {
    for (int i = 0; i < size(); ++i) nodes.push_back(i);
  }
  std::vector<std::string> paths;
  for (const ExpectedPath& path : expected) paths.push_back(path.path);
  std::string last;
  const bool agreed = PollEvery(
      [&] {
        std::ostringstream problems;
        std::optional<std::vector<PathView>> first;
        int first_node = -1;
        for (int node : nodes) {
          absl::StatusOr<std::vector<PathView>> views = Status(node, paths);
          if (!views.ok()) {
            problems << "  " << views.status().message() << "\n";
            continue;
          }
          for (size_t p = 0; p < expected.size(); ++p) {
            const PathView& view = (*views)[p];
            if (view.verdict != expected[p].verdict || view.signatures != expected[p].signatures) {
              problems << "  " << name(node) << " " << expected[p].path << ": " << view.DebugString()
                       << "\n    expected " << VerdictName(expected[p].verdict)
                       << " signatures=" << ShortSignatures(expected[p].signatures) << "\n";
            } else if (first && (*first)[p] != view) {
              problems << "  " << name(node) << " " << expected[p].path << " differs from " << name(first_node) << ": "
                       << view.DebugString() << " vs " << (*first)[p].DebugString() << "\n";
            }
          }
          if (!first) {
            first = std::move(*views);
            first_node = node;
          }
        }
        last = problems.str();
        return last.empty();
      },
      deadline);
  if (agreed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "no agreement within " << deadline.count() << " ms; last answers:\n"
                                       << last << Describe();
}

::testing::AssertionResult FederationHarness::WaitForFederationStatus(
    int node, const std::string& what, const std::function<bool(const v1::GetFederationStatusResponse&)>& condition,
    std::chrono::milliseconds deadline) {
  std::string last;
  const bool reached = PollEvery(
      [&] {
        absl::StatusOr<v1::GetFederationStatusResponse> status = FederationStatus(node);
        if (!status.ok()) {
          last = std::string(status.status().message());
          return false;
        }
        last = status->DebugString();
        return condition(*status);
      },
      deadline);
  if (reached) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name(node) << ": not " << what << " within " << deadline.count()
                                       << " ms; last federation status:\n"
                                       << last << "\n"
                                       << Describe();
}

::testing::AssertionResult FederationHarness::WaitCaughtUp(int node, const std::string& peer, uint64_t min_size,
                                                           std::chrono::milliseconds deadline) {
  return WaitForFederationStatus(
      node, absl::StrCat("following ", peer, " with no lag (size >= ", min_size, ")"),
      [&](const v1::GetFederationStatusResponse& status) {
        const std::optional<v1::PeerStatus> found = FindPeer(status, peer);
        return found && found->state() == v1::PeerStatus::FOLLOWING && found->lag_entries() == 0 &&
               found->peer_size() >= min_size && found->cursor() == found->peer_size();
      },
      deadline);
}

HttpResponse FederationHarness::HttpGet(int node, const std::string& target) {
  HttpResponse response;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    response.error = absl::StrCat("socket: ", std::strerror(errno));
    return response;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(at(node).http_port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    response.error = absl::StrCat("connect to ", at(node).http_address, ": ", std::strerror(errno));
    close(fd);
    return response;
  }
  const std::string request =
      absl::StrCat("GET ", target, " HTTP/1.1\r\nHost: ", at(node).http_address, "\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    response.error = absl::StrCat("send: ", std::strerror(errno));
    close(fd);
    return response;
  }
  std::string raw;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  char buffer[16384];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      response.error = absl::StrCat("no complete answer within 10 s (", raw.size(), " bytes)");
      close(fd);
      return response;
    }
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&pfd, 1, static_cast<int>(left)) <= 0) continue;
    const ssize_t got = read(fd, buffer, sizeof(buffer));
    if (got > 0) {
      raw.append(buffer, static_cast<size_t>(got));
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    break;  // end of stream (Connection: close) or an error: parse what arrived
  }
  close(fd);
  return ParseHttpResponse(raw);
}

std::string FederationHarness::Describe() {
  std::string out = "federation:\n";
  for (int i = 0; i < size(); ++i) {
    Node& node = at(i);
    const bool running = node.harness->daemon() && node.harness->daemon()->Running();
    absl::StrAppend(&out, "  ", node.spec.name, " (", node.grpc_address, ", ", running ? "running" : "not running",
                    ")\n");
    if (running) {
      absl::StatusOr<v1::GetFederationStatusResponse> status = FederationStatus(i);
      if (!status.ok()) {
        absl::StrAppend(&out, "    ", status.status().message(), "\n");
      } else {
        for (const v1::PeerStatus& peer : status->peers()) absl::StrAppend(&out, "    peer ", PeerLine(peer), "\n");
        absl::StrAppend(&out, "    forks: ", status->forks_size(),
                        ", recent rejections: ", status->recent_rejections_size(), "\n");
      }
    }
    if (node.harness->daemon()) {
      absl::StrAppend(&out, "    stderr (last lines):\n", TrimmedTail(node.harness->daemon()->Stderr(), 6));
    }
  }
  return out;
}

}  // namespace attest::testing
