#include "tests/fuzz/fuzz_node.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "absl/time/time.h"
#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "proto/convert.h"
#include "server/gateway.h"
#include "server/log_http.h"
#include "server/log_publisher.h"
#include "server/metrics.h"
#include "server/node_config.h"
#include "server/node_metrics.h"
#include "server/replication.h"
#include "server/resolution_book.h"
#include "server/upstream.h"
#include "server/web/web_routes.h"
#include "server/policy_book.h"
#include "storage/memory_attestation_store.h"
#include "tests/fuzz/fuzz_policy.h"
#include "tests/fuzz/fuzz_support.h"

namespace attest::fuzz {
namespace {

constexpr int64_t kNow = 1700000000;

consensus::StorePath Path(std::string_view name) {
  // 32 nix32 characters derived from the name, so each seed path is stable.
  std::string hash = consensus::Nix32Encode(consensus::Sha256(name)).substr(0, 32);
  auto path = consensus::StorePath::Parse(consensus::Cat("/nix/store/", hash, "-", name));
  if (!path.ok()) std::abort();
  return *std::move(path);
}

consensus::PathInfo Claim(const consensus::StorePath& path, std::string_view contents) {
  auto claim = consensus::PathInfo::Create(path, consensus::NarHash::FromDigest(consensus::Sha256(contents)), 1024,
                                           {});
  if (!claim.ok()) std::abort();
  return *std::move(claim);
}

void Check(const absl::Status& status, std::string_view what) {
  if (!status.ok()) Fail(__FILE__, __LINE__, "fixture", consensus::Cat(what, ": ", status.ToString()));
}

class Node final : public FuzzNode {
 public:
  Node()
      : policy_(FuzzPolicy()),
        key_(FuzzKey("node-1")),
        clock_([] { return absl::FromUnixSeconds(kNow); }),
        resolutions_(policy_),
        ingestor_(policy_, &store_, &store_, key_, clock_,
                  server::IngestOptions{.verify_threads = 1, .resolutions = &resolutions_, .metrics = &metrics_}),
        status_query_(policy_, &store_,
                      server::StatusQueryOptions{.read_threads = 1, .resolutions = &resolutions_,
                                                 .metrics = &metrics_}),
        dispute_view_(policy_, &store_, &resolutions_),
        publisher_(&store_, key_, clock_, server::LogPublisherOptions{}),
        log_proofs_(&store_, &publisher_),
        log_http_(&store_, &publisher_),
        replicator_(config_, &policy_, key_, &store_, &ingestor_, clock_, &metrics_) {
    Seed();
    server::AddMetricsRoute(router_, &metrics_);
    log_http_.AddRoutes(router_);
    replicator_.AddRoutes(router_);
    server::web::AddRoutes(router_, policy_, &store_, &status_query_, &dispute_view_, &resolutions_);
    gateway_ = std::make_unique<server::Gateway>(policy_, &store_, key_, OpenCache(), clock_,
                                                 server::GatewayOptions{.resolutions = &resolutions_,
                                                                        .metrics = &metrics_});
    gateway_->AddRoutes(router_);
  }

  ~Node() override {
    gateway_->Stop();
    std::error_code ec;
    std::filesystem::remove_all(cache_dir_, ec);
  }

  server::Ingestor& ingestor() override { return ingestor_; }
  const server::StatusQuery& status_query() override { return status_query_; }
  const server::DisputeView& dispute_view() override { return dispute_view_; }
  const server::LogProofs& log_proofs() override { return log_proofs_; }

  server::HttpResponse Serve(const server::HttpRequest& request) override {
    const server::HttpHandler* handler = router_.Find(request.path);
    if (handler == nullptr) return server::HttpResponse::Text(404, "not found");
    server::HttpReply reply = (*handler)(request);
    if (reply.ready()) return std::move(reply.response());
    return reply.job()();
  }

 private:
  // A confirmed path (alice and bob agree) and a disputed one (they disagree).
  void Seed() {
    google::protobuf::RepeatedPtrField<v1::Attestation> batch;
    const consensus::PathInfo confirmed = Claim(Path("hello-2.12"), "hello");
    confirmed_ = confirmed;
    *batch.Add() = proto::ToProto(consensus::SignAttestation(confirmed, FuzzKey("alice-builder-1")));
    *batch.Add() = proto::ToProto(consensus::SignAttestation(confirmed, FuzzKey("bob-builder-1")));
    const consensus::StorePath disputed = Path("openssl-3.0.11");
    *batch.Add() = proto::ToProto(consensus::SignAttestation(Claim(disputed, "a"), FuzzKey("alice-builder-1")));
    *batch.Add() = proto::ToProto(consensus::SignAttestation(Claim(disputed, "b"), FuzzKey("bob-builder-1")));
    auto results = ingestor_.Submit(batch);
    Check(results.status(), "seeding the store");
    for (const server::IngestResult& result : *results) Check(result.status, "seeding an attestation");
    Check(publisher_.PublishNow(), "publishing the first checkpoint");
  }

  // A file:// binary cache holding the confirmed path's narinfo and NAR file.
  std::unique_ptr<server::Upstream> OpenCache() {
    char pattern[] = "/tmp/attest-fuzz-cache-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    cache_dir_ = pattern;
    std::filesystem::create_directories(cache_dir_ + "/nar");
    std::ofstream(cache_dir_ + "/nar/hello.nar") << "nar bytes";
    std::ofstream(consensus::Cat(cache_dir_, "/", confirmed_->path.hash_part(), ".narinfo"))
        << "StorePath: " << confirmed_->path.full() << "\nURL: nar/hello.nar\nCompression: none\nNarHash: "
        << confirmed_->nar_hash.ToNix32() << "\nNarSize: " << confirmed_->nar_size << "\nReferences: \n";
    auto upstream = server::OpenUpstream(consensus::Cat("file://", cache_dir_), server::UpstreamOptions{});
    Check(upstream.status(), "opening the upstream cache");
    return *std::move(upstream);
  }

  server::PolicyBook policy_;
  const consensus::SecretKey key_;
  const server::NodeConfig config_;
  const server::Clock clock_;
  storage::MemoryAttestationStore store_;
  server::MetricsRegistry metrics_;
  server::ResolutionBook resolutions_;
  server::Ingestor ingestor_;
  server::StatusQuery status_query_;
  server::DisputeView dispute_view_;
  server::LogPublisher publisher_;
  server::LogProofs log_proofs_;
  server::LogHttp log_http_;
  server::Replicator replicator_;
  std::optional<consensus::PathInfo> confirmed_;
  std::string cache_dir_;
  std::unique_ptr<server::Gateway> gateway_;
  server::HttpRouter router_;
};

}  // namespace

FuzzNode& FuzzNode::Get() {
  // Never destroyed: the fuzzer ends the process with exit(), and worker threads may still run.
  static Node* node = new Node();
  return *node;
}

}  // namespace attest::fuzz
