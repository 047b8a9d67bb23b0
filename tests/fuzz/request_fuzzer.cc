// Every gRPC request a node takes, as bytes off the wire: the first byte picks the method, the rest
// is parsed as its request message (as gRPC does) and handed to the handler the service calls
// (server/grpc_services.cc), which converts it to domain types (proto/convert.h and the handlers'
// own checks). Also the conversions of proto/convert.h on their own, with their round trip.
// A bad request must be refused with a specific code: INTERNAL or UNKNOWN is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "proto/attest/v1/attest.pb.h"
#include "proto/convert.h"
#include "tests/fuzz/fuzz_node.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using attest::fuzz::FuzzNode;

void CheckCode(const absl::Status& status) {
  FUZZ_CHECK(status.code() != absl::StatusCode::kInternal && status.code() != absl::StatusCode::kUnknown,
             status.ToString());
}

template <typename Message>
bool Parse(std::string_view bytes, Message& message) {
  return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

void Conversions(std::string_view bytes) {
  using namespace attest;
  v1::Attestation attestation;
  if (Parse(bytes, attestation)) {
    absl::StatusOr<consensus::Attestation> domain = proto::FromProto(attestation);
    if (domain.ok()) {
      absl::StatusOr<consensus::Attestation> again = proto::FromProto(proto::ToProto(*domain));
      FUZZ_CHECK(again.ok() && *again == *domain, attestation.DebugString());
    } else {
      CheckCode(domain.status());
    }
  }
  v1::PathInfo path_info;
  if (Parse(bytes, path_info)) {
    absl::StatusOr<consensus::PathInfo> domain = proto::FromProto(path_info);
    if (domain.ok()) {
      absl::StatusOr<consensus::PathInfo> again = proto::FromProto(proto::ToProto(*domain));
      FUZZ_CHECK(again.ok() && *again == *domain, path_info.DebugString());
    }
  }
  v1::BuildMetadata metadata;
  if (Parse(bytes, metadata)) {
    absl::StatusOr<consensus::BuildMetadata> domain = proto::FromProto(metadata);
    if (domain.ok()) {
      absl::StatusOr<consensus::BuildMetadata> again = proto::FromProto(proto::ToProto(*domain));
      FUZZ_CHECK(again.ok() && *again == *domain, metadata.DebugString());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest;
  if (size == 0) return 0;
  // Protobuf logs every string field with invalid UTF-8 it parses; the status says enough.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  FuzzNode& node = FuzzNode::Get();
  const std::string_view bytes = fuzz::AsText(data + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      v1::SubmitRequest request;
      if (!Parse(bytes, request)) return 0;
      auto results = node.ingestor().Submit(request.attestations());
      if (!results.ok()) {
        CheckCode(results.status());
        return 0;
      }
      FUZZ_CHECK(results->size() == static_cast<size_t>(request.attestations_size()), "one result per item");
      for (const server::IngestResult& result : *results) CheckCode(result.status);
      return 0;
    }
    case 1: {
      v1::StatusRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(node.status_query().Run(request).status());
      return 0;
    }
    case 2: {
      v1::ListDisputesRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(server::ListDisputes(node.dispute_view(), request).status());
      return 0;
    }
    case 3: {
      v1::GetDisputeRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(server::GetDispute(node.dispute_view(), request).status());
      return 0;
    }
    case 4: {
      v1::ResolveDisputeRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(node.ingestor().Resolve(request.signed_statement()).status());
      return 0;
    }
    case 5: {
      v1::GetInclusionProofRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(node.log_proofs().GetInclusionProof(request).status());
      return 0;
    }
    case 6: {
      v1::GetConsistencyProofRequest request;
      if (!Parse(bytes, request)) return 0;
      CheckCode(node.log_proofs().GetConsistencyProof(request).status());
      return 0;
    }
    default:
      Conversions(bytes);
      return 0;
  }
}
