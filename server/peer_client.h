// PeerClient: what a follower (server/replication.h) asks of one peer: its policy hash and
// consistency proofs over gRPC (Policy, LogService), its checkpoint and entry bundles over HTTP
// (C2SP tlog-tiles under /log/). Nothing it returns is trusted: the follower verifies all of it.
//
// A peer whose addresses are https:// is reached over TLS (gRPC and HTTP alike), verified with its
// [[peer]] ca (else the system's CAs); when this node has [tls], its certificate is presented to peers
// that ask for a client certificate.
//
// Calls are bounded by `timeout` and end early (CANCELLED) once Cancel() was called, so a node
// stops promptly. One PeerClient per follower thread; Cancel() may be called from any thread.
#ifndef ATTEST_SERVER_PEER_CLIENT_H_
#define ATTEST_SERVER_PEER_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "consensus/merkle.h"
#include "consensus/policy_update.h"
#include "consensus/tlog_tiles.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node_config.h"
#include "server/tls_files.h"

namespace attest::server {

class PeerClient final {
 public:
  // `max_reconnect_backoff` caps gRPC's reconnect backoff (the follower's max_backoff).
  PeerClient(const PeerConfig& peer, absl::Duration timeout, absl::Duration max_reconnect_backoff);
  ~PeerClient();
  PeerClient(const PeerClient&) = delete;
  PeerClient& operator=(const PeerClient&) = delete;

  // Errors name the peer and what failed: UNAVAILABLE (cannot connect, timeout, HTTP 5xx),
  // NOT_FOUND (HTTP 404), FAILED_PRECONDITION (another HTTP status), INVALID_ARGUMENT (a malformed
  // answer), CANCELLED (after Cancel()).
  absl::StatusOr<std::string> PolicyHash();
  // The peer's policy links after the policy `since` (Policy.GetPolicyChain), oldest first, with the
  // time the federation received each. NOT_FOUND when `since` is not in the peer's chain (unrelated
  // policies); INVALID_ARGUMENT when an approval does not parse.
  struct ChainLink final {
    consensus::PolicyLink link;
    int64_t received_unix = 0;
  };
  absl::StatusOr<std::vector<ChainLink>> PolicyChain(std::string_view since);
  absl::StatusOr<std::string> Checkpoint();  // the note text served at /log/checkpoint
  // The entries of level-0 tile `index` at `width` (entry bundle /log/tile/entries/...).
  absl::StatusOr<std::vector<std::string>> EntryBundle(uint64_t index, int width);
  absl::StatusOr<std::vector<consensus::MerkleHash>> ConsistencyProof(uint64_t old_size, uint64_t new_size);

  // What this peer keeps of another node's log, the log of `origin` (a node it follows; served under
  // /federation/mirror/<origin>/, server/replication.h): the checkpoint of `origin` it last verified,
  // with its cosignature, and the entries of `origin`'s log it applied, as entry bundles. Used to
  // give a node that lost its database its log back (server/restore.h).
  absl::StatusOr<std::string> MirroredCheckpoint(std::string_view origin);
  absl::StatusOr<std::vector<std::string>> MirroredEntryBundle(std::string_view origin, uint64_t index, int width);

  void Cancel();

 private:
  // The peer's TLS files, read when the client is made; a problem is returned by every call.
  struct Tls final {
    absl::Status problem;
    std::string ca_pem;     // "" = the system's CAs
    TlsIdentity identity;   // empty = no client certificate
  };
  static Tls LoadTls(const PeerConfig& peer);

  absl::StatusOr<std::string> HttpGet(const std::string& path, size_t max_bytes);
  // The entry bundle of level-0 tile `index` at `width` under `prefix` ("/log/", or a mirror's).
  absl::StatusOr<std::vector<std::string>> Bundle(std::string_view prefix, uint64_t index, int width);
  std::unique_ptr<grpc::ClientContext> Context() const;

  const PeerConfig peer_;
  const absl::Duration timeout_;
  const Tls tls_;
  std::atomic<bool> cancelled_{false};
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Policy::Stub> policy_;
  std::unique_ptr<v1::LogService::Stub> log_;
  void* curl_ = nullptr;  // CURL*, reused so connections are kept alive
};

}  // namespace attest::server

#endif  // ATTEST_SERVER_PEER_CLIENT_H_
