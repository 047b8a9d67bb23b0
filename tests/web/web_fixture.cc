#include "tests/web/web_fixture.h"

#include <curl/curl.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "consensus/dispute.h"
#include "consensus/signed_note.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "proto/convert.h"
#include "server/node_config.h"

namespace attest::testing {
namespace {

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

consensus::PathInfo Claim(const consensus::StorePath& path, std::string_view content, uint64_t size,
                          std::vector<consensus::StorePath> references) {
  auto claim = consensus::PathInfo::Create(path, TestClaim(path.name(), content).nar_hash, size, std::move(references));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *std::move(claim);
}

consensus::BuildMetadata Metadata(const consensus::StorePath& path, consensus::BuildKind kind) {
  return consensus::BuildMetadata{.deriver = TestStorePath(absl::StrCat(std::string(path.name()), ".drv")).full(),
                                  .output_name = "out",
                                  .system = "x86_64-linux",
                                  .build_kind = kind,
                                  .build_time_unix = 1700000000};
}

}  // namespace

HttpGetAnswer HttpGet(const std::string& url) {
  HttpGetAnswer answer;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return answer;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer.headers);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type != nullptr) answer.content_type = type;
    char* location = nullptr;
    curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &location);
    if (location != nullptr) answer.location = location;
  }
  curl_easy_cleanup(curl);
  return answer;
}

std::string WebFederation::PolicyToml() const {
  return absl::StrCat("quorum = 2\n",
                      "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice1.public_key().ToString(), "\", \"",
                      alice2.public_key().ToString(), "\"]\n",
                      "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", bob.public_key().ToString(), "\"]\n",
                      "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", carol.public_key().ToString(), "\"]\n",
                      "[[maintainer]]\nkey = \"", maintainer.public_key().ToString(), "\"\n");
}

WebNode::WebNode() {
  WriteFileOrDie(dir_.File("policy.toml"), federation_.PolicyToml());
  WriteFileOrDie(dir_.File("node.sec"), federation_.node_key.ExportText() + "\n");
  std::filesystem::permissions(dir_.File("node.sec"), std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  WriteFileOrDie(dir_.File("node.toml"), "[node]\n"
                                         "grpc = \"127.0.0.1:0\"\n"
                                         "http = \"127.0.0.1:0\"\n"
                                         "database = \"attest.db\"\n"
                                         "key = \"node.sec\"\n"
                                         "policy = \"policy.toml\"\n");
  auto config = server::LoadNodeConfig(dir_.File("node.toml"));
  if (!config.ok()) {
    ADD_FAILURE() << config.status();
    return;
  }
  auto node = server::Node::Open(*config);
  if (!node.ok()) {
    ADD_FAILURE() << node.status();
    return;
  }
  if (absl::Status started = (*node)->Start(); !started.ok()) {
    ADD_FAILURE() << started;
    return;
  }
  node_ = *std::move(node);

  const consensus::StorePath libc = TestStorePath("glibc-2.38");
  const consensus::StorePath libssl_old = TestStorePath("zlib-1.2.13");
  const consensus::StorePath libssl_new = TestStorePath("zlib-1.3.1");
  data_.only_majority_reference = libssl_old.full();
  data_.only_minority_reference = libssl_new.full();
  const consensus::PathInfo refs_majority = Claim(data_.refs_dispute, "openssl reproducible", 5'000'000, {libc, libssl_old});
  const consensus::PathInfo refs_minority = Claim(data_.refs_dispute, "openssl other", 5'000'128, {libc, libssl_new});
  const consensus::PathInfo flagged_a = Claim(data_.flagged_dispute, "python a", 90'000'000, {libc});
  const consensus::PathInfo flagged_b = Claim(data_.flagged_dispute, "python b", 90'000'000, {libc});
  data_.refs_majority_hash = refs_majority.nar_hash.ToNix32();
  data_.refs_minority_hash = refs_minority.nar_hash.ToNix32();
  data_.refs_dispute_id = consensus::DisputeId(data_.refs_dispute);
  data_.flagged_dispute_id = consensus::DisputeId(data_.flagged_dispute);
  const consensus::PathInfo confirmed = Claim(data_.confirmed, "hello", 200'000, {libc});
  const consensus::PathInfo pending = Claim(data_.pending, "zlib", 100'000, {libc});

  using consensus::BuildKind;
  using consensus::SignAttestation;
  Submit({
      SignAttestation(confirmed, federation_.alice1, Metadata(data_.confirmed, BuildKind::kFirstBuild)),
      SignAttestation(confirmed, federation_.bob, Metadata(data_.confirmed, BuildKind::kRebuild)),
      SignAttestation(pending, federation_.carol, Metadata(data_.pending, BuildKind::kFirstBuild)),
      SignAttestation(refs_majority, federation_.alice1, Metadata(data_.refs_dispute, BuildKind::kFirstBuild)),
      SignAttestation(refs_majority, federation_.bob, Metadata(data_.refs_dispute, BuildKind::kRebuild)),
      SignAttestation(refs_minority, federation_.carol, Metadata(data_.refs_dispute, BuildKind::kCheck)),
      SignAttestation(flagged_a, federation_.alice2, Metadata(data_.flagged_dispute, BuildKind::kFirstBuild)),
      SignAttestation(flagged_b, federation_.alice2, Metadata(data_.flagged_dispute, BuildKind::kCheck)),
      SignAttestation(flagged_a, federation_.bob, Metadata(data_.flagged_dispute, BuildKind::kRebuild)),
      SignAttestation(flagged_b, federation_.carol, Metadata(data_.flagged_dispute, BuildKind::kRebuild)),
  });
}

WebNode::~WebNode() {
  if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
}

std::string WebNode::Url(std::string_view target) const {
  return absl::StrCat("http://127.0.0.1:", node_->http_port(), std::string(target));
}

void WebNode::Submit(const std::vector<consensus::Attestation>& attestations) {
  auto stub = v1::Attestations::NewStub(node_->InProcessChannel());
  v1::SubmitRequest request;
  for (const consensus::Attestation& a : attestations) *request.add_attestations() = proto::ToProto(a);
  v1::SubmitResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub->Submit(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), static_cast<int>(attestations.size()));
  for (const v1::SubmitResult& result : response.results()) {
    ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.DebugString();
  }
}

void WebNode::SubmitRealisations(const std::vector<consensus::RealisationAttestation>& realisations) {
  auto stub = v1::Attestations::NewStub(node_->InProcessChannel());
  v1::SubmitRequest request;
  for (const consensus::RealisationAttestation& r : realisations) *request.add_realisations() = proto::ToProto(r);
  v1::SubmitResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub->Submit(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), static_cast<int>(realisations.size()));
  for (const v1::SubmitResult& result : response.results()) {
    ASSERT_EQ(result.outcome(), v1::SubmitResult::ACCEPTED) << result.DebugString();
  }
}

void WebNode::Resolve(const consensus::StorePath& path, consensus::ResolutionOutcome outcome, std::string note,
                      std::vector<std::string> builders, int64_t time_unix) {
  const std::string id = consensus::DisputeId(path);
  auto stored = node_->store()->GetDispute(id);
  ASSERT_TRUE(stored.ok() && stored->has_value()) << "no dispute " << id;
  auto signed_record = consensus::SignedNote::Parse((*stored)->signed_record);
  ASSERT_TRUE(signed_record.ok());
  auto record = consensus::DisputeRecord::FromNoteText(signed_record->text);
  ASSERT_TRUE(record.ok());
  consensus::Resolution resolution{.dispute_id = id,
                                   .subject = path,
                                   .outcome = outcome,
                                   .fingerprints = {},
                                   .builders = std::move(builders),
                                   .time_unix = time_unix,
                                   .note = std::move(note)};
  for (const consensus::DisputeSide& side : record->sides) resolution.fingerprints.push_back(side.fingerprint);
  auto signed_note = consensus::SignResolution(resolution, federation_.maintainer);
  ASSERT_TRUE(signed_note.ok()) << signed_note.status();
  // Through the node, as `attest disputes resolve` does: it verifies, stores and updates the state.
  auto stub = v1::Disputes::NewStub(node_->InProcessChannel());
  v1::ResolveDisputeRequest request;
  request.set_signed_statement(signed_note->Serialize());
  v1::ResolveDisputeResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status status = stub->ResolveDispute(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(response.already_present());
}

}  // namespace attest::testing
