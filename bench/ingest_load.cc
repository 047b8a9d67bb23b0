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

std::vector<v1::SubmitRequest> PresignIngestLoad(int64_t count, int batch,
                                                 const std::vector<consensus::SecretKey>& builders) {
  const int64_t batches = (count + batch - 1) / batch;
  std::vector<v1::SubmitRequest> requests(batches);
  std::vector<std::thread> signers;
  for (int t = 0; t < 2; ++t) {
    signers.emplace_back([&, t] {
      for (int64_t b = t; b < batches; b += 2) {
        for (int64_t i = b * batch; i < std::min(count, (b + 1) * batch); ++i) {
          *requests[b].add_attestations() = proto::ToProto(IngestAttestation(i, builders));
        }
      }
    });
  }
  for (auto& t : signers) t.join();
  return requests;
}

SubmitFigures SubmitAll(const std::string& address, const std::vector<v1::SubmitRequest>& requests, int inflight) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Attestations::NewStub(channel);
  std::atomic<size_t> next{0};
  std::atomic<int64_t> acknowledged{0};
  std::atomic<int64_t> failed{0};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> senders;
  for (int t = 0; t < inflight; ++t) {
    senders.emplace_back([&] {
      for (size_t b = next++; b < requests.size(); b = next++) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        v1::SubmitResponse response;
        grpc::Status status = stub->Submit(&context, requests[b], &response);
        if (!status.ok()) {
          std::fprintf(stderr, "batch %zu failed: %s\n", b, status.error_message().c_str());
          failed += requests[b].attestations_size();
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

}  // namespace attest::bench
