// The load of ingest_bench, shared with the benchmarks that compare against it: attestations by three
// builders (one operator each), three per store path with five references each, pre-signed into Submit
// batches, and a loader that submits them to a node over gRPC with several batches in flight. An
// attestation counts when the node acknowledged it (committed).
#ifndef ATTEST_BENCH_INGEST_LOAD_H_
#define ATTEST_BENCH_INGEST_LOAD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "proto/attest/v1/attest.pb.h"

namespace attest::bench {

// The three builder keys ("bench-builder-0" to "-2"); put each in its own operator of the policy.
std::vector<consensus::SecretKey> IngestBuilders();
std::vector<std::string> PublicKeys(const std::vector<consensus::SecretKey>& keys);

// Attestation `i` of the load: path i / 3, builder i % 3.
consensus::Attestation IngestAttestation(int64_t i, const std::vector<consensus::SecretKey>& builders);

// Attestations [0, count) in Submit requests of `batch` each, signed on two threads.
std::vector<v1::SubmitRequest> PresignIngestLoad(int64_t count, int batch,
                                                 const std::vector<consensus::SecretKey>& builders);

// The same, each batch serialised (less than half the memory of the messages: a million
// attestations take about 0.9 GB instead of 2).
std::vector<std::string> PresignIngestLoadSerialized(int64_t count, int batch,
                                                     const std::vector<consensus::SecretKey>& builders);

struct SubmitFigures final {
  int64_t acknowledged = 0;  // ACCEPTED
  int64_t failed = 0;        // anything else, or in a batch whose call failed
  double seconds = 0;
  double PerSecond() const { return seconds > 0 ? acknowledged / seconds : 0; }
};

// Submits every request to the node at `address`, `inflight` calls at a time, each with a 60 s
// deadline; timed from the first call to the last answer. Failures are reported on stderr.
SubmitFigures SubmitAll(const std::string& address, const std::vector<v1::SubmitRequest>& requests, int inflight);
// The same for serialised requests; each is parsed by its sender just before its call (inside the
// timed span; a few milliseconds per 1,000 attestations, against about 100 ms for the call).
SubmitFigures SubmitAll(const std::string& address, const std::vector<std::string>& serialized_requests,
                        int inflight);

}  // namespace attest::bench

#endif  // ATTEST_BENCH_INGEST_LOAD_H_
