// End-to-end: gRPC server reflection of a real attestd, through the reflection protocol. Every service
// the node lists must be describable: asked for the file containing its name, the node answers with a
// file that defines the service, and the files it sends define every method's request and response
// messages, so a reflection-driven client (grpcurl and the like) can call it. The health service is
// gRPC's built-in one, whose own messages are not protobuf descriptors: the node must still describe it.
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/node_harness.h"
#include "tests/e2e/reflection_client.pb.h"

namespace attest::testing {
namespace {

using reflection::ReflectionRequest;
using reflection::ReflectionResponse;
using ReflectionStub = grpc::TemplatedGenericStub<ReflectionRequest, ReflectionResponse>;

constexpr char kReflectionMethod[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

// One question on a stream of its own: write it, read one answer, half-close, wait for the status.
class ReflectionQuestion final : public grpc::ClientBidiReactor<ReflectionRequest, ReflectionResponse> {
 public:
  ReflectionQuestion(ReflectionStub& stub, ReflectionRequest request) : request_(std::move(request)) {
    context_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    stub.PrepareBidiStreamingCall(&context_, kReflectionMethod, grpc::StubOptions(), this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }

  // The answer; nullopt (with a test failure naming the status) when none came.
  std::optional<ReflectionResponse> Wait() {
    done_.WaitForNotification();
    EXPECT_TRUE(status_.ok()) << status_.error_code() << " " << status_.error_message();
    if (!answered_) {
      ADD_FAILURE() << "no answer to " << request_.ShortDebugString();
      return std::nullopt;
    }
    return response_;
  }

  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override { answered_ = ok; }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }

 private:
  grpc::ClientContext context_;
  ReflectionRequest request_;
  ReflectionResponse response_;
  bool answered_ = false;
  grpc::Status status_;
  absl::Notification done_;
};

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    builder_ = MakeNixKey(dir_, "alice-builder-1");
    node_ = std::make_unique<NodeHarness>(dir_, PolicyToml(1, {{"alice-ci", {builder_.public_text}}}));
    ASSERT_TRUE(node_->Start());
    stub_ = std::make_unique<ReflectionStub>(
        grpc::CreateChannel(node_->grpc_address(), grpc::InsecureChannelCredentials()));
  }

  std::optional<ReflectionResponse> Ask(ReflectionRequest request) {
    ReflectionQuestion question(*stub_, std::move(request));
    return question.Wait();
  }

  TempDir dir_;
  NixKeyPair builder_;
  std::unique_ptr<NodeHarness> node_;
  std::unique_ptr<ReflectionStub> stub_;
};

TEST_F(ReflectionTest, EveryListedServiceCanBeDescribed) {
  ReflectionRequest list;
  list.set_list_services("*");
  std::optional<ReflectionResponse> listed = Ask(list);
  ASSERT_TRUE(listed.has_value());
  ASSERT_TRUE(listed->has_list_services_response()) << listed->ShortDebugString();
  std::vector<std::string> services;
  for (const auto& service : listed->list_services_response().service()) services.push_back(service.name());
  EXPECT_THAT(services, ::testing::IsSupersetOf({"attest.v1.Attestations", "attest.v1.Disputes", "attest.v1.Policy",
                                                 "attest.v1.LogService", "attest.v1.Federation",
                                                 "grpc.health.v1.Health",
                                                 "grpc.reflection.v1alpha.ServerReflection"}));

  for (const std::string& service : services) {
    SCOPED_TRACE(service);
    ReflectionRequest question;
    question.set_file_containing_symbol(service);
    std::optional<ReflectionResponse> answer = Ask(question);
    ASSERT_TRUE(answer.has_value());
    ASSERT_TRUE(answer->has_file_descriptor_response())
        << "the node cannot describe a service it lists: " << answer->error_response().error_message();
    // The file defining the symbol and what it depends on: every message they define, and the service.
    std::set<std::string> messages;
    std::optional<google::protobuf::ServiceDescriptorProto> defined;
    for (const std::string& bytes : answer->file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      ASSERT_TRUE(file.ParseFromString(bytes)) << "not a FileDescriptorProto";
      const std::string prefix = file.package().empty() ? "." : "." + file.package() + ".";
      for (const auto& message : file.message_type()) messages.insert(prefix + message.name());
      for (const auto& candidate : file.service()) {
        if (prefix.substr(1) + candidate.name() == service) defined = candidate;
      }
    }
    ASSERT_TRUE(defined.has_value()) << "no file sent defines " << service;
    EXPECT_GT(defined->method_size(), 0);
    for (const auto& method : defined->method()) {
      EXPECT_TRUE(messages.count(method.input_type())) << method.name() << " takes " << method.input_type()
                                                       << ", which no file sent defines";
      EXPECT_TRUE(messages.count(method.output_type())) << method.name() << " returns " << method.output_type()
                                                        << ", which no file sent defines";
    }
  }
}

TEST_F(ReflectionTest, HealthMessagesCanBeDescribed) {
  for (const std::string symbol : {"grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse"}) {
    ReflectionRequest question;
    question.set_file_containing_symbol(symbol);
    std::optional<ReflectionResponse> answer = Ask(question);
    ASSERT_TRUE(answer.has_value());
    EXPECT_TRUE(answer->has_file_descriptor_response()) << symbol << ": " << answer->error_response().error_message();
  }
  ReflectionRequest unknown;
  unknown.set_file_containing_symbol("attest.v1.NoSuchService");
  std::optional<ReflectionResponse> answer = Ask(unknown);
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->has_error_response()) << "a name the node does not know is an error, not an empty file";
}

}  // namespace
}  // namespace attest::testing
