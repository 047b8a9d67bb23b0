#include "server/peer_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "consensus/text.h"
#include "server/upstream.h"

namespace attest::server {
namespace {

using consensus::Cat;
using consensus::StdView;

// A checkpoint note is a few hundred bytes; an entry bundle holds at most 256 entries of at most
// 65535 bytes each (plus their 2-byte lengths).
constexpr size_t kMaxCheckpointBytes = 64 << 10;
constexpr size_t kMaxBundleBytes = size_t{256} * (65535 + 2);

struct Sink {
  std::string body;
  size_t max_bytes = 0;
  bool too_large = false;
};

absl::Status FromGrpc(const grpc::Status& status, std::string_view what) {
  const std::string message = Cat(what, ": ", status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::CANCELLED:
      return absl::CancelledError(message);
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return absl::UnavailableError(message);
    case grpc::StatusCode::NOT_FOUND:
      return absl::NotFoundError(message);
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return absl::OutOfRangeError(message);
    default:
      return absl::FailedPreconditionError(message);
  }
}

constexpr std::string_view kHttps = "https://";

bool IsHttps(std::string_view address) { return address.substr(0, kHttps.size()) == kHttps; }

// gRPC's own reconnect backoff grows to 120 s by default: a peer that comes back after a long outage
// would wait that long for its followers. Capped like the follower's own retries.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, const std::string& ca_pem,
                                           const TlsIdentity& identity, absl::Duration max_reconnect_backoff) {
  grpc::ChannelArguments args;
  const int max_ms = static_cast<int>(std::max<int64_t>(100, absl::ToInt64Milliseconds(max_reconnect_backoff)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(max_ms, 100));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(max_ms, 100));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  if (!IsHttps(address)) return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  ssl.pem_private_key = identity.private_key_pem;
  ssl.pem_cert_chain = identity.cert_chain_pem;
  std::string target = address.substr(kHttps.size());
  if (!target.empty() && target.back() == '/') target.pop_back();
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

}  // namespace

PeerClient::PeerClient(const PeerConfig& peer, absl::Duration timeout, absl::Duration max_reconnect_backoff)
    : peer_(peer),
      timeout_(timeout),
      tls_(LoadTls(peer)),
      channel_(MakeChannel(peer.grpc, tls_.ca_pem, tls_.identity, max_reconnect_backoff)),
      policy_(v1::Policy::NewStub(channel_)),
      log_(v1::LogService::NewStub(channel_)),
      curl_((InitCurlOnce(), curl_easy_init())) {}

PeerClient::~PeerClient() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

PeerClient::Tls PeerClient::LoadTls(const PeerConfig& peer) {
  Tls tls;
  if (!IsHttps(peer.grpc) && !IsHttps(peer.http)) return tls;
  if (!peer.ca.path.empty()) {
    absl::StatusOr<std::string> ca = LoadCaCertificates(peer.ca);
    if (!ca.ok()) {
      tls.problem = absl::FailedPreconditionError(Cat("peer ", peer.name, ": ", StdView(ca.status().message())));
      return tls;
    }
    tls.ca_pem = *std::move(ca);
  }
  if (!peer.client_cert.path.empty() && !peer.client_key.path.empty()) {
    absl::StatusOr<TlsIdentity> identity = LoadTlsIdentity(peer.client_cert, peer.client_key);
    if (!identity.ok()) {
      tls.problem = absl::FailedPreconditionError(Cat("peer ", peer.name, ": ", StdView(identity.status().message())));
      return tls;
    }
    tls.identity = *std::move(identity);
  }
  return tls;
}

void PeerClient::Cancel() { cancelled_.store(true); }

std::unique_ptr<grpc::ClientContext> PeerClient::Context() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  return context;
}

absl::StatusOr<std::string> PeerClient::PolicyHash() {
  if (cancelled_.load()) return absl::CancelledError("stopping");
  if (!tls_.problem.ok()) return tls_.problem;
  v1::PolicyInfo info;
  auto context = Context();
  grpc::Status status = policy_->GetPolicy(context.get(), v1::GetPolicyRequest(), &info);
  if (!status.ok()) return FromGrpc(status, Cat("peer ", peer_.name, " (", peer_.grpc, "): Policy.GetPolicy"));
  return info.hash();
}

absl::StatusOr<std::vector<PeerClient::ChainLink>> PeerClient::PolicyChain(std::string_view since) {
  if (cancelled_.load()) return absl::CancelledError("stopping");
  if (!tls_.problem.ok()) return tls_.problem;
  v1::GetPolicyChainRequest request;
  request.set_since(std::string(since));
  v1::GetPolicyChainResponse response;
  auto context = Context();
  grpc::Status status = policy_->GetPolicyChain(context.get(), request, &response);
  if (!status.ok()) return FromGrpc(status, Cat("peer ", peer_.name, " (", peer_.grpc, "): Policy.GetPolicyChain"));
  std::vector<ChainLink> links;
  links.reserve(static_cast<size_t>(response.links_size()));
  for (int i = 0; i < response.links_size(); ++i) {
    const v1::PolicyLink& in = response.links(i);
    ChainLink out;
    out.link.toml = in.toml();
    out.received_unix = in.received_unix();
    for (const std::string& text : in.approvals()) {
      absl::StatusOr<consensus::Signature> approval = consensus::Signature::Parse(text);
      if (!approval.ok()) {
        return absl::InvalidArgumentError(Cat("peer ", peer_.name, " (", peer_.grpc, "): policy link ", i + 1,
                                              " carries an approval that does not parse: ",
                                              StdView(approval.status().message())));
      }
      out.link.approvals.push_back(*std::move(approval));
    }
    links.push_back(std::move(out));
  }
  return links;
}

absl::StatusOr<std::vector<consensus::MerkleHash>> PeerClient::ConsistencyProof(uint64_t old_size,
                                                                                 uint64_t new_size) {
  if (cancelled_.load()) return absl::CancelledError("stopping");
  if (!tls_.problem.ok()) return tls_.problem;
  v1::GetConsistencyProofRequest request;
  request.set_old_size(old_size);
  request.set_new_size(new_size);
  v1::GetConsistencyProofResponse response;
  auto context = Context();
  grpc::Status status = log_->GetConsistencyProof(context.get(), request, &response);
  if (!status.ok()) {
    return FromGrpc(status, Cat("peer ", peer_.name, " (", peer_.grpc, "): consistency proof ", old_size, " -> ",
                                new_size));
  }
  std::vector<consensus::MerkleHash> hashes;
  for (const std::string& hash : response.hashes()) {
    if (hash.size() != sizeof(consensus::MerkleHash)) {
      return absl::InvalidArgumentError(
          Cat("peer ", peer_.name, ": a consistency proof hash of ", hash.size(), " bytes"));
    }
    consensus::MerkleHash h;
    std::copy(hash.begin(), hash.end(), h.begin());
    hashes.push_back(h);
  }
  return hashes;
}

absl::StatusOr<std::string> PeerClient::Checkpoint() { return HttpGet("/log/checkpoint", kMaxCheckpointBytes); }

absl::StatusOr<std::vector<std::string>> PeerClient::EntryBundle(uint64_t index, int width) {
  return Bundle("/log/", index, width);
}

absl::StatusOr<std::string> PeerClient::MirroredCheckpoint(std::string_view origin) {
  return HttpGet(Cat("/federation/mirror/", origin, "/checkpoint"), kMaxCheckpointBytes);
}

absl::StatusOr<std::vector<std::string>> PeerClient::MirroredEntryBundle(std::string_view origin, uint64_t index,
                                                                         int width) {
  return Bundle(Cat("/federation/mirror/", origin, "/"), index, width);
}

absl::StatusOr<std::vector<std::string>> PeerClient::Bundle(std::string_view prefix, uint64_t index, int width) {
  const std::string path =
      Cat(prefix, consensus::TilePath(consensus::TileId{.level = 0, .index = index, .width = width, .entries = true}));
  absl::StatusOr<std::string> body = HttpGet(path, kMaxBundleBytes);
  if (!body.ok()) return body.status();
  absl::StatusOr<std::vector<std::string>> entries = consensus::DecodeEntryBundle(*body);
  if (!entries.ok()) {
    return absl::InvalidArgumentError(
        Cat("peer ", peer_.name, ": ", path, " is not an entry bundle: ", StdView(entries.status().message())));
  }
  if (entries->size() != static_cast<size_t>(width)) {
    return absl::InvalidArgumentError(
        Cat("peer ", peer_.name, ": ", path, " holds ", entries->size(), " entries, not ", width));
  }
  return entries;
}

absl::StatusOr<std::string> PeerClient::HttpGet(const std::string& path, size_t max_bytes) {
  if (cancelled_.load()) return absl::CancelledError("stopping");
  CURL* curl = static_cast<CURL*>(curl_);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  if (!tls_.problem.ok()) return tls_.problem;
  std::string base = peer_.http.find("://") == std::string::npos ? Cat("http://", peer_.http) : peer_.http;
  if (!base.empty() && base.back() == '/') base.pop_back();
  const std::string url = Cat(base, path);
  Sink sink{.body = {}, .max_bytes = max_bytes, .too_large = false};
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout_)));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout_)));
  if (IsHttps(url)) {
    // The blobs are copied by curl; without a CA blob curl uses the system's CAs.
    if (!tls_.ca_pem.empty()) {
      curl_blob ca{const_cast<char*>(tls_.ca_pem.data()), tls_.ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    }
    if (!tls_.identity.cert_chain_pem.empty()) {
      curl_blob cert{const_cast<char*>(tls_.identity.cert_chain_pem.data()), tls_.identity.cert_chain_pem.size(),
                     CURL_BLOB_COPY};
      curl_blob key{const_cast<char*>(tls_.identity.private_key_pem.data()), tls_.identity.private_key_pem.size(),
                    CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
      curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
      curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
      curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
    }
  }
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t count, void* user) -> size_t {
        auto* out = static_cast<Sink*>(user);
        if (out->body.size() + size * count > out->max_bytes) {
          out->too_large = true;
          return 0;  // aborts the transfer
        }
        out->body.append(data, size * count);
        return size * count;
      });
  // Checked about once a second by curl, and on every chunk: a stopping node does not wait for a
  // slow peer.
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &cancelled_);
  curl_easy_setopt(
      curl, CURLOPT_XFERINFOFUNCTION, +[](void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
        return static_cast<std::atomic<bool>*>(user)->load() ? 1 : 0;
      });
  const CURLcode code = curl_easy_perform(curl);
  if (cancelled_.load()) return absl::CancelledError("stopping");
  const std::string where = Cat("peer ", peer_.name, " GET ", url);
  if (sink.too_large) return absl::InvalidArgumentError(Cat(where, ": answer larger than ", max_bytes, " bytes"));
  if (code != CURLE_OK) {
    return absl::UnavailableError(Cat(where, ": ", error[0] != 0 ? error : curl_easy_strerror(code)));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200) return std::move(sink.body);
  const std::string said = Cat(where, ": HTTP ", status, " ", sink.body.substr(0, 200));
  if (status == 404) return absl::NotFoundError(said);
  if (status >= 500) return absl::UnavailableError(said);
  return absl::FailedPreconditionError(said);
}

}  // namespace attest::server
