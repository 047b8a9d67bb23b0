// A real node (SQLite file, gRPC, HTTP port) filled with real signed attestations for the web page
// tests: confirmed and pending paths, two disputes (one with references that differ, one with a
// flagged builder), and maintainer resolutions written on request. Plus a small HTTP client.
#ifndef ATTEST_TESTS_WEB_WEB_FIXTURE_H_
#define ATTEST_TESTS_WEB_WEB_FIXTURE_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/path_info.h"
#include "consensus/realisation.h"
#include "consensus/resolution.h"
#include "server/node.h"
#include "tests/support/test_support.h"

namespace attest::testing {

struct HttpGetAnswer final {
  long status = 0;  // 0 when the request failed
  std::string content_type;
  std::string body;
  std::string location;
  std::string headers;  // the response's header lines as received
};

// GET with libcurl (30 s deadline), without following redirects.
HttpGetAnswer HttpGet(const std::string& url);

// alice-ci (two builders), bob-labs, carol-home; quorum 2; maintainer maint-1.
struct WebFederation final {
  consensus::SecretKey alice1 = TestKey("alice-builder-1");
  consensus::SecretKey alice2 = TestKey("alice-builder-2");
  consensus::SecretKey bob = TestKey("bob-builder-1");
  consensus::SecretKey carol = TestKey("carol-builder-1");
  consensus::SecretKey maintainer = TestKey("maint-1");
  consensus::SecretKey node_key = TestKey("node-1");

  std::string PolicyToml() const;
};

// What the fixture stored.
struct WebData final {
  consensus::StorePath confirmed = TestStorePath("hello-2.12");
  consensus::StorePath pending = TestStorePath("zlib-1.3");
  // alice-builder-1 and bob agree; carol differs in NAR hash, size and one reference.
  consensus::StorePath refs_dispute = TestStorePath("openssl-3.0.8");
  // alice-builder-2 signs both sides (flagged); bob on one side, carol on the other.
  consensus::StorePath flagged_dispute = TestStorePath("python3-3.11.6");
  // The NAR hashes ("sha256:<nix32>") of the two sides of the refs dispute.
  std::string refs_majority_hash;
  std::string refs_minority_hash;
  std::string refs_dispute_id;
  std::string flagged_dispute_id;
  // References only one side of the refs dispute has.
  std::string only_majority_reference;
  std::string only_minority_reference;
};

class WebNode final {
 public:
  // Opens and starts the node and stores WebData through its Submit RPC. Failures are test failures
  // (check ok()).
  WebNode();
  ~WebNode();

  bool ok() const { return node_ != nullptr; }
  server::Node& node() { return *node_; }
  const WebData& data() const { return data_; }
  const WebFederation& federation() const { return federation_; }
  std::string Url(std::string_view target) const;

  // Signs a maintainer's resolution of the dispute about `path` (all its current fingerprints) and
  // submits it with the ResolveDispute RPC.
  void Resolve(const consensus::StorePath& path, consensus::ResolutionOutcome outcome, std::string note,
               std::vector<std::string> builders, int64_t time_unix);

  // Submits attestations with the Submit RPC, as builders do; every one must be accepted.
  void Submit(const std::vector<consensus::Attestation>& attestations);
  // The same for realisation attestations (consensus/realisation.h).
  void SubmitRealisations(const std::vector<consensus::RealisationAttestation>& realisations);

 private:

  WebFederation federation_;
  WebData data_;
  TempDir dir_;
  std::unique_ptr<server::Node> node_;
};

}  // namespace attest::testing

#endif  // ATTEST_TESTS_WEB_WEB_FIXTURE_H_
