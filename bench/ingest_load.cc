#include "bench/ingest_load.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "consensus/sha256.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"

namespace attest::bench {
namespace {

consensus::StorePath IngestPath(uint64_t i) { return BenchStorePath("ingest-bench", i); }

}  // namespace

std::vector<consensus::SecretKey> IngestBuilders() {
  std::vector<consensus::SecretKey> builders;
  for (int b = 0; b < 3; ++b) builders.push_back(BenchKey(absl::StrCat("bench-builder-", b)));
  return builders;
}

std::vector<std::string> PublicKeys(const std::vector<consensus::SecretKey>& keys) {
  std::vector<std::string> publics;
  for (const consensus::SecretKey& key : keys) publics.push_back(key.public_key().ToString());
  return publics;
}

consensus::Attestation IngestAttestation(int64_t i, const std::vector<consensus::SecretKey>& builders) {
  const uint64_t path_index = static_cast<uint64_t>(i) / 3;
  std::vector<consensus::StorePath> refs;
  for (uint64_t r = 1; r <= 5; ++r) refs.push_back(IngestPath(path_index + 1000000 * r));
  std::sort(refs.begin(), refs.end());
  auto claim = consensus::PathInfo::Create(
      IngestPath(path_index), consensus::NarHash::FromDigest(consensus::Sha256(absl::StrCat("nar|", path_index))),
      4096 + path_index, refs);
  consensus::BuildMetadata meta;
  meta.output_name = "out";
  meta.system = "x86_64-linux";
  meta.build_kind = consensus::BuildKind::kRebuild;
  return consensus::SignAttestation(*claim, builders[i % 3], meta);
}

namespace {

// Batch b of the load, in `out`.
void SignBatch(int64_t b, int64_t count, int batch, const std::vector<consensus::SecretKey>& builders,
               v1::SubmitRequest& out) {
  for (int64_t i = b * batch; i < std::min(count, (b + 1) * batch); ++i) {
    *out.add_attestations() = proto::ToProto(IngestAttestation(i, builders));
  }
}

// Calls make(b) for every batch b, on two threads.
template <typename Make>
void OnTwoThreads(int64_t batches, Make make) {
  std::vector<std::thread> signers;
  for (int t = 0; t < 2; ++t) {
    signers.emplace_back([&, t] {
      for (int64_t b = t; b < batches; b += 2) make(b);
    });
  }
  for (auto& t : signers) t.join();
}

}  // namespace

std::vector<v1::SubmitRequest> PresignIngestLoad(int64_t count, int batch,
                                                 const std::vector<consensus::SecretKey>& builders) {
  std::vector<v1::SubmitRequest> requests((count + batch - 1) / batch);
  OnTwoThreads(static_cast<int64_t>(requests.size()),
               [&](int64_t b) { SignBatch(b, count, batch, builders, requests[b]); });
  return requests;
}

std::vector<std::string> PresignIngestLoadSerialized(int64_t count, int batch,
                                                     const std::vector<consensus::SecretKey>& builders) {
  std::vector<std::string> requests((count + batch - 1) / batch);
  OnTwoThreads(static_cast<int64_t>(requests.size()), [&](int64_t b) {
    v1::SubmitRequest request;
    SignBatch(b, count, batch, builders, request);
    requests[b] = request.SerializeAsString();
  });
  return requests;
}

namespace {

// request(b, scratch) gives batch b (possibly built in scratch).
template <typename Request>
SubmitFigures SubmitBatches(const std::string& address, size_t batches, int inflight, Request request) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Attestations::NewStub(channel);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> acknowledged{0};
  std::atomic<int64_t> failed{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> senders;
  for (int t = 0; t < inflight; ++t) {
    senders.emplace_back([&] {
      v1::SubmitRequest scratch;
      for (size_t b = next++; b < batches; b = next++) {
        const v1::SubmitRequest& submitted = request(b, scratch);
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        v1::SubmitResponse response;
        grpc::Status status = stub->Submit(&context, submitted, &response);
        if (!status.ok()) {
          std::fprintf(stderr, "batch %zu failed: %s\n", b, status.error_message().c_str());
          failed += submitted.attestations_size();
          continue;
        }
        for (const auto& r : response.results()) {
          if (r.outcome() == v1::SubmitResult::ACCEPTED) {
            ++acknowledged;
          } else {
            ++failed;
          }
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  return SubmitFigures{.acknowledged = acknowledged.load(), .failed = failed.load(), .seconds = SecondsSince(start)};
}

}  // namespace

SubmitFigures SubmitAll(const std::string& address, const std::vector<v1::SubmitRequest>& requests, int inflight) {
  return SubmitBatches(address, requests.size(), inflight,
                       [&](size_t b, v1::SubmitRequest&) -> const v1::SubmitRequest& { return requests[b]; });
}

SubmitFigures SubmitAll(const std::string& address, const std::vector<std::string>& serialized_requests,
                        int inflight) {
  return SubmitBatches(address, serialized_requests.size(), inflight,
                       [&](size_t b, v1::SubmitRequest& scratch) -> const v1::SubmitRequest& {
                         if (!scratch.ParseFromString(serialized_requests[b])) {
                           std::fprintf(stderr, "batch %zu does not parse\n", b);
                           std::abort();
                         }
                         return scratch;
                       });
}

}  // namespace attest::bench
