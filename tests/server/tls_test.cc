// TLS on the node's ports: [tls] parsing and its errors, the loopback rule, the TLS files read at
// start, and real nodes on 127.0.0.1 answering gRPC over TLS and HTTPS (libcurl) with certificates
// made by the `openssl` command, refusing plaintext, requiring client certificates when asked to, and
// following a TLS peer.
#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/node.h"
#include "server/node_config.h"
#include "server/tls_files.h"
#include "tests/server/server_test_util.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_certificates.h"

namespace attest::server {
namespace {

using ::attest::testing::CertificateFiles;
using ::attest::testing::Federation;
using ::attest::testing::MakeTestCa;
using ::attest::testing::MakeTestCertificate;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::string_view kMinimal =
    "[node]\n"
    "key = \"node.sec\"\n"
    "policy = \"policy.toml\"\n";

std::string Message(const absl::Status& status) { return std::string(consensus::StdView(status.message())); }

std::string ErrorOf(const std::string& text, const std::string& file = "/etc/attest/node.toml") {
  auto config = ParseNodeConfig(text, file);
  EXPECT_FALSE(config.ok()) << text;
  return config.ok() ? "" : Message(config.status());
}

// ---- [tls] in the config ---------------------------------------------------------------------------

TEST(TlsConfigTest, ReadsTheTableAndResolvesPathsAgainstTheConfigFile) {
  auto config = ParseNodeConfig(std::string(kMinimal) +
                                    "[tls]\ncert = \"tls/node.crt\"\nkey = \"/secure/node.key\"\n"
                                    "client_ca = \"clients.crt\"\n",
                                "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->tls.has_value());
  EXPECT_EQ(config->tls->cert.path, "/etc/attest/tls/node.crt");
  EXPECT_EQ(config->tls->key.path, "/secure/node.key");
  EXPECT_EQ(config->tls->client_ca.path, "/etc/attest/clients.crt");
  // A problem found when the file is read points at the setting.
  EXPECT_THAT(config->tls->cert.where, StartsWith("/etc/attest/node.toml:5:8: [tls] cert \"tls/node.crt\""));
}

TEST(TlsConfigTest, WithoutTheTableThereIsNoTls) {
  auto config = ParseNodeConfig(std::string(kMinimal), "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->tls.has_value());
}

TEST(TlsConfigTest, CertAndKeyGoTogether) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\ncert = \"node.crt\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:4:"), HasSubstr("[tls] has a cert but no key")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\nkey = \"node.key\"\n"), HasSubstr("a key but no cert"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\nclient_ca = \"ca.crt\"\n"), HasSubstr("neither cert nor key"));
}

TEST(TlsConfigTest, BadValuesNameTheLineAndTheProblem) {
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\ncert = \"a\"\nkey = \"b\"\npassword = \"x\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:7:1: "), HasSubstr("unknown key \"password\" in [tls]"),
                    HasSubstr("cert, key, client_ca")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\ncert = \"\"\nkey = \"b\"\n"),
              AllOf(StartsWith("/etc/attest/node.toml:5:8: "), HasSubstr("[tls] cert is empty")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "[tls]\ncert = 1\nkey = \"b\"\n"), HasSubstr("not a string"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "tls = true\n"), HasSubstr("unknown key \"tls\" in [node]"));
}

TEST(TlsConfigTest, NonLoopbackWithoutTlsOrPlaintextOptInIsRefused) {
  const std::string error = ErrorOf(std::string(kMinimal) + "grpc = \"0.0.0.0:7700\"\n");
  EXPECT_THAT(error, AllOf(StartsWith("/etc/attest/node.toml:4:8: "), HasSubstr("not a loopback address"),
                           HasSubstr("[tls]"), HasSubstr("allow_non_loopback = true")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "http = \"192.0.2.7:7780\"\n"), HasSubstr("http = \"192.0.2.7:7780\""));
}

TEST(TlsConfigTest, NonLoopbackIsAcceptedWithTls) {
  // [tls] may come after the addresses.
  auto config = ParseNodeConfig(std::string(kMinimal) + "grpc = \"0.0.0.0:7700\"\nhttp = \"[::]:7780\"\n"
                                                        "[tls]\ncert = \"node.crt\"\nkey = \"node.key\"\n",
                                "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->allow_non_loopback);
  EXPECT_TRUE(ValidateNodeConfig(*config).ok());
}

TEST(TlsConfigTest, PlaintextOnNonLoopbackIsAnExplicitChoice) {
  auto config = ParseNodeConfig(std::string(kMinimal) + "grpc = \"0.0.0.0:7700\"\nallow_non_loopback = true\n", "n.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(config->allow_non_loopback);
  EXPECT_FALSE(config->tls.has_value());
}

TEST(TlsConfigTest, ValidateRefusesNonLoopbackPlaintextBuiltInCode) {
  NodeConfig config;
  config.database_path = "a.db";
  config.key_path = "node.sec";
  config.policy_path = "policy.toml";
  config.grpc_address = "0.0.0.0:7700";
  EXPECT_THAT(Message(ValidateNodeConfig(config)), HasSubstr("not a loopback address"));
  config.tls = TlsConfig{.cert = {.path = "node.crt", .where = ""}, .key = {.path = "node.key", .where = ""}};
  EXPECT_TRUE(ValidateNodeConfig(config).ok());
  config.tls->key.path.clear();
  EXPECT_THAT(Message(ValidateNodeConfig(config)), HasSubstr("[tls] needs both cert and key"));
}

TEST(TlsConfigTest, PeerAddressesAndCa) {
  const std::string peer = absl::StrCat("[[peer]]\nkey = \"", TestKey("node-b").public_key().ToString(), "\"\n");
  auto config = ParseNodeConfig(std::string(kMinimal) + "[tls]\ncert = \"node.crt\"\nkey = \"node.key\"\n" + peer +
                                    "grpc = \"https://b.example:7700\"\nhttp = \"https://b.example:7780\"\n"
                                    "ca = \"federation-ca.crt\"\n",
                                "/etc/attest/node.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->peers.size(), 1u);
  EXPECT_EQ(config->peers[0].grpc, "https://b.example:7700");
  EXPECT_EQ(config->peers[0].ca.path, "/etc/attest/federation-ca.crt");
  // This node's certificate is what it shows a peer that asks for a client certificate.
  EXPECT_EQ(config->peers[0].client_cert.path, "/etc/attest/node.crt");
  EXPECT_EQ(config->peers[0].client_key.path, "/etc/attest/node.key");

  EXPECT_THAT(ErrorOf(std::string(kMinimal) + peer + "grpc = \"b:1\"\nhttp = \"b:2\"\nca = \"ca.crt\"\n"),
              AllOf(HasSubstr("[[peer]] ca \"ca.crt\""), HasSubstr("plaintext"), HasSubstr("https://host:port")));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + peer + "grpc = \"grpcs://b:1\"\nhttp = \"b:2\"\n"),
              HasSubstr("[[peer]] grpc = \"grpcs://b:1\""));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + peer + "grpc = \"b:1\"\nhttp = \"b\"\n"),
              HasSubstr("[[peer]] http = \"b\""));
  auto plain = ParseNodeConfig(std::string(kMinimal) + peer + "grpc = \"b:1\"\nhttp = \"http://b:2\"\n", "n.toml");
  EXPECT_TRUE(plain.ok()) << plain.status();
}

// The commented [tls] block of deploy/node.example.toml is valid when uncommented.
TEST(TlsConfigTest, ExampleTlsBlockParsesWhenUncommented) {
  const std::string file = std::string(ATTEST_SOURCE_DIR) + "/deploy/node.example.toml";
  std::string text = testing::ReadFileOrDie(file);
  int uncommented = 0;
  for (const std::string line : {"# [tls]\n", "# cert = ", "# key = ", "# client_ca = "}) {
    const size_t at = text.find(line);
    ASSERT_NE(at, std::string::npos) << line;
    text.erase(at, 2);
    ++uncommented;
  }
  auto config = ParseNodeConfig(text, file);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->tls.has_value());
  EXPECT_EQ(config->tls->cert.path, "/etc/attest/tls/node.crt");
  EXPECT_EQ(config->tls->client_ca.path, "/etc/attest/tls/clients-ca.crt");
  EXPECT_EQ(uncommented, 4);
}

// ---- the TLS files -----------------------------------------------------------------------------------

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = MakeTestCa(dir_, "ca");
    node_ = MakeTestCertificate(dir_, "node", ca_);
  }
  static ConfigFile At(const std::string& path, std::string_view setting) {
    return ConfigFile{.path = path, .where = absl::StrCat("node.toml:9:8: [tls] ", std::string(setting), ": ")};
  }
  TempDir dir_;
  CertificateFiles ca_;
  CertificateFiles node_;
};

TEST_F(TlsFilesTest, ReadsAMatchingCertificateAndKey) {
  auto tls = LoadServerTls(TlsConfig{.cert = At(node_.cert, "cert"), .key = At(node_.key, "key"),
                                     .client_ca = At(ca_.cert, "client_ca")});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_THAT(tls->identity.cert_chain_pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(tls->identity.private_key_pem, HasSubstr("PRIVATE KEY-----"));
  EXPECT_THAT(tls->client_ca_pem, HasSubstr("-----BEGIN CERTIFICATE-----"));
}

TEST_F(TlsFilesTest, MissingFileNamesTheSetting) {
  auto tls = LoadServerTls(TlsConfig{.cert = At(dir_.File("absent.crt"), "cert"), .key = At(node_.key, "key")});
  ASSERT_EQ(tls.status().code(), absl::StatusCode::kNotFound) << tls.status();
  EXPECT_THAT(Message(tls.status()), AllOf(StartsWith("node.toml:9:8: [tls] cert: "), HasSubstr("no such file")));
}

TEST_F(TlsFilesTest, FileWithoutPemIsInvalid) {
  WriteFileOrDie(dir_.File("garbage.crt"), "not a certificate\n");
  auto tls = LoadServerTls(TlsConfig{.cert = At(dir_.File("garbage.crt"), "cert"), .key = At(node_.key, "key")});
  ASSERT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument) << tls.status();
  EXPECT_THAT(Message(tls.status()), AllOf(StartsWith("node.toml:9:8: [tls] cert: "), HasSubstr("no PEM certificate")));

  // A certificate where the key belongs.
  tls = LoadServerTls(TlsConfig{.cert = At(node_.cert, "cert"), .key = At(node_.cert, "key")});
  EXPECT_THAT(Message(tls.status()), AllOf(StartsWith("node.toml:9:8: [tls] key: "), HasSubstr("no PEM private key")));

  auto ca = LoadCaCertificates(At(node_.key, "client_ca"));
  EXPECT_THAT(Message(ca.status()), HasSubstr("no PEM certificate"));
}

TEST_F(TlsFilesTest, KeyOfAnotherCertificateIsRefused) {
  CertificateFiles other = MakeTestCertificate(dir_, "other", ca_);
  auto tls = LoadServerTls(TlsConfig{.cert = At(node_.cert, "cert"), .key = At(other.key, "key")});
  ASSERT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument) << tls.status();
  EXPECT_THAT(Message(tls.status()), HasSubstr("does not belong to the first certificate"));
}

TEST_F(TlsFilesTest, EncryptedKeyIsRefusedWithTheFix) {
  attest::testing::RunResult encrypted =
      attest::testing::Run({"openssl", "pkey", "-in", node_.key, "-aes256", "-passout", "pass:secret", "-out",
                            dir_.File("encrypted.key")});
  ASSERT_EQ(encrypted.exit_code, 0) << encrypted.err;
  auto tls = LoadServerTls(TlsConfig{.cert = At(node_.cert, "cert"), .key = At(dir_.File("encrypted.key"), "key")});
  EXPECT_THAT(Message(tls.status()), AllOf(HasSubstr("encrypted private key"), HasSubstr("openssl pkey")));
}

// ---- real nodes --------------------------------------------------------------------------------------

struct HttpResult final {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::string error;
};

struct CurlOptions final {
  std::string ca = {};           // "" = the system's CAs
  std::string client_cert = {};  // "" = none
  std::string client_key = {};
};

HttpResult CurlGet(const std::string& url, const CurlOptions& options = {}) {
  HttpResult result;
  CURL* curl = curl_easy_init();
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  if (!options.ca.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca.c_str());
  if (!options.client_cert.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT, options.client_cert.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, options.client_key.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &result.body);
  curl_easy_setopt(
      curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t count, void* user) -> size_t {
        static_cast<std::string*>(user)->append(data, size * count);
        return size * count;
      });
  result.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
  result.error = error;
  curl_easy_cleanup(curl);
  return result;
}

struct GrpcCredentials final {
  std::string ca_file = {};      // "" = the system's CAs
  std::string client_cert = {};  // "" = none
  std::string client_key = {};
};

// Policy.GetPolicy over a fresh channel with `credentials`.
grpc::Status GetPolicyOver(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  // A fresh connection per call (the tests compare credentials, not reuse one).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::Policy::NewStub(grpc::CreateCustomChannel(address, credentials, args));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::PolicyInfo info;
  return stub->GetPolicy(&context, v1::GetPolicyRequest(), &info);
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const GrpcCredentials& options) {
  grpc::SslCredentialsOptions ssl;
  if (!options.ca_file.empty()) ssl.pem_root_certs = testing::ReadFileOrDie(options.ca_file);
  if (!options.client_cert.empty()) {
    ssl.pem_cert_chain = testing::ReadFileOrDie(options.client_cert);
    ssl.pem_private_key = testing::ReadFileOrDie(options.client_key);
  }
  return grpc::SslCredentials(ssl);
}

class TlsNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ca_ = MakeTestCa(dir_, "ca");
    node_cert_ = MakeTestCertificate(dir_, "node", ca_);
  }

  // Writes the node's files with `tls_table` appended and starts it; nullptr (with a failure) when
  // it does not start.
  std::unique_ptr<Node> StartNode(const std::string& tls_table) {
    const std::string path = testing::WriteNodeDir(dir_, federation_);
    WriteFileOrDie(path, testing::ReadFileOrDie(path) + tls_table);
    auto config = LoadNodeConfig(path);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto node = Node::Open(*config);
    EXPECT_TRUE(node.ok()) << node.status();
    if (!node.ok()) return nullptr;
    absl::Status started = (*node)->Start();
    EXPECT_TRUE(started.ok()) << started;
    return started.ok() ? *std::move(node) : nullptr;
  }

  std::string TlsTable(const std::string& extra = "") const {
    return absl::StrCat("[tls]\ncert = \"node.crt\"\nkey = \"node.key\"\n", extra);
  }

  TempDir dir_;
  Federation federation_;
  CertificateFiles ca_;
  CertificateFiles node_cert_;
};

TEST_F(TlsNodeTest, GrpcAnswersOverTlsWithTheCaAndRefusesPlaintext) {
  std::unique_ptr<Node> node = StartNode(TlsTable());
  ASSERT_NE(node, nullptr);
  const std::string address = node->grpc_address();

  grpc::Status with_ca = GetPolicyOver(address, Tls({.ca_file = ca_.cert}));
  EXPECT_TRUE(with_ca.ok()) << with_ca.error_message();
  // The certificate names 127.0.0.1 and localhost: both verify.
  grpc::Status by_name = GetPolicyOver(absl::StrCat("localhost:", node->grpc_port()), Tls({.ca_file = ca_.cert}));
  EXPECT_TRUE(by_name.ok()) << by_name.error_message();

  grpc::Status plaintext = GetPolicyOver(address, grpc::InsecureChannelCredentials());
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE) << plaintext.error_message();
  // Without the CA, the test CA is not among the system's: the handshake fails.
  grpc::Status untrusted = GetPolicyOver(address, Tls({}));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE) << untrusted.error_message();
}

TEST_F(TlsNodeTest, HttpPortServesHttpsOnly) {
  std::unique_ptr<Node> node = StartNode(TlsTable());
  ASSERT_NE(node, nullptr);
  const int port = node->http_port();

  HttpResult https = CurlGet(absl::StrCat("https://127.0.0.1:", port, "/healthz"), {.ca = ca_.cert});
  ASSERT_EQ(https.code, CURLE_OK) << https.error;
  EXPECT_EQ(https.status, 200);
  EXPECT_EQ(https.body, "ok\n");
  HttpResult by_name = CurlGet(absl::StrCat("https://localhost:", port, "/log/checkpoint"), {.ca = ca_.cert});
  ASSERT_EQ(by_name.code, CURLE_OK) << by_name.error;
  EXPECT_EQ(by_name.status, 200);

  HttpResult plaintext = CurlGet(absl::StrCat("http://127.0.0.1:", port, "/healthz"));
  EXPECT_TRUE(plaintext.code != CURLE_OK || plaintext.status != 200)
      << "plain HTTP got " << plaintext.status << " " << plaintext.body;
  EXPECT_NE(plaintext.body, "ok\n");
  HttpResult untrusted = CurlGet(absl::StrCat("https://127.0.0.1:", port, "/healthz"));
  EXPECT_EQ(untrusted.code, CURLE_PEER_FAILED_VERIFICATION) << untrusted.error;
}

TEST_F(TlsNodeTest, ClientCaRequiresClientCertificatesOnBothPorts) {
  CertificateFiles client_ca = MakeTestCa(dir_, "client-ca");
  CertificateFiles client = MakeTestCertificate(dir_, "client", client_ca);
  CertificateFiles stranger = MakeTestCertificate(dir_, "stranger", ca_);  // signed by the wrong CA
  std::unique_ptr<Node> node = StartNode(TlsTable("client_ca = \"client-ca.crt\"\n"));
  ASSERT_NE(node, nullptr);

  grpc::Status with_cert = GetPolicyOver(
      node->grpc_address(), Tls({.ca_file = ca_.cert, .client_cert = client.cert, .client_key = client.key}));
  EXPECT_TRUE(with_cert.ok()) << with_cert.error_message();
  grpc::Status without = GetPolicyOver(node->grpc_address(), Tls({.ca_file = ca_.cert}));
  EXPECT_EQ(without.error_code(), grpc::StatusCode::UNAVAILABLE) << without.error_message();
  grpc::Status wrong_ca = GetPolicyOver(
      node->grpc_address(), Tls({.ca_file = ca_.cert, .client_cert = stranger.cert, .client_key = stranger.key}));
  EXPECT_EQ(wrong_ca.error_code(), grpc::StatusCode::UNAVAILABLE) << wrong_ca.error_message();

  const std::string url = absl::StrCat("https://127.0.0.1:", node->http_port(), "/healthz");
  HttpResult https = CurlGet(url, {.ca = ca_.cert, .client_cert = client.cert, .client_key = client.key});
  ASSERT_EQ(https.code, CURLE_OK) << https.error;
  EXPECT_EQ(https.status, 200);
  EXPECT_EQ(https.body, "ok\n");
  // The library asks for a certificate but does not insist; the server answers 403 without a valid one.
  HttpResult no_cert = CurlGet(url, {.ca = ca_.cert});
  ASSERT_EQ(no_cert.code, CURLE_OK) << no_cert.error;
  EXPECT_EQ(no_cert.status, 403);
  EXPECT_THAT(no_cert.body, HasSubstr("requires a client certificate"));
  HttpResult stranger_cert =
      CurlGet(url, {.ca = ca_.cert, .client_cert = stranger.cert, .client_key = stranger.key});
  ASSERT_EQ(stranger_cert.code, CURLE_OK) << stranger_cert.error;
  EXPECT_EQ(stranger_cert.status, 403);
}

TEST_F(TlsNodeTest, BadCertificateFileIsAStartupErrorNamingTheSetting) {
  const std::string path = testing::WriteNodeDir(dir_, federation_);
  WriteFileOrDie(path, testing::ReadFileOrDie(path) + "[tls]\ncert = \"missing.crt\"\nkey = \"node.key\"\n");
  auto config = LoadNodeConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto node = Node::Open(*config);
  ASSERT_TRUE(node.ok()) << node.status();
  absl::Status started = (*node)->Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kNotFound) << started;
  EXPECT_THAT(Message(started), AllOf(StartsWith(absl::StrCat(path, ":8:8: [tls] cert \"missing.crt\": ")),
                                      HasSubstr("no such file")));
}

// Node B follows node A, which serves TLS: over https:// with [[peer]] ca it replicates; without
// the CA it cannot verify A and says so.
TEST_F(TlsNodeTest, FollowsATlsPeerWithItsCa) {
  std::unique_ptr<Node> a = StartNode(TlsTable() + "[log]\ncheckpoint_interval = \"50ms\"\n");
  ASSERT_NE(a, nullptr);
  {
    auto stub = v1::Attestations::NewStub(a->InProcessChannel());
    v1::SubmitRequest request;
    *request.add_attestations() = Signed(TestClaim("hello"), federation_.alice);
    v1::SubmitResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
  }

  auto start_follower = [&](TempDir& dir, const std::string& ca_line) -> std::unique_ptr<Node> {
    WriteFileOrDie(dir.File("policy.toml"), federation_.PolicyToml());
    WriteFileOrDie(dir.File("node.sec"), TestKey("node-b").ExportText() + "\n");
    WriteFileOrDie(dir.File("ca.crt"), testing::ReadFileOrDie(ca_.cert));
    const std::string config_path = dir.File("node.toml");
    WriteFileOrDie(config_path,
                   absl::StrCat("[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nkey = \"node.sec\"\n"
                                "policy = \"policy.toml\"\n[federation]\npoll_interval = \"50ms\"\n"
                                "max_backoff = \"200ms\"\n[[peer]]\ngrpc = \"https://",
                                a->grpc_address(), "\"\nhttp = \"https://", a->http_address(), "\"\nkey = \"",
                                a->public_key().ToString(), "\"\n", ca_line));
    auto config = LoadNodeConfig(config_path);
    EXPECT_TRUE(config.ok()) << config.status();
    if (!config.ok()) return nullptr;
    auto node = Node::Open(*config);
    EXPECT_TRUE(node.ok()) << node.status();
    if (!node.ok() || !(*node)->Start().ok()) return nullptr;
    return *std::move(node);
  };
  auto peer_status = [](Node& node) {
    absl::StatusOr<v1::GetFederationStatusResponse> status = node.replicator()->Status();
    return status.ok() && status->peers_size() == 1 ? status->peers(0) : v1::PeerStatus{};
  };

  TempDir with_ca_dir;
  std::unique_ptr<Node> b = start_follower(with_ca_dir, "ca = \"ca.crt\"\n");
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(testing::PollUntil(
      [&] {
        const v1::PeerStatus peer = peer_status(*b);
        return peer.state() == v1::PeerStatus::FOLLOWING && peer.cursor() >= 1;
      },
      std::chrono::seconds(60)))
      << peer_status(*b).DebugString();

  TempDir without_ca_dir;
  std::unique_ptr<Node> c = start_follower(without_ca_dir, "");
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(testing::PollUntil([&] { return !peer_status(*c).last_error().empty(); }, std::chrono::seconds(60)));
  const v1::PeerStatus stranger = peer_status(*c);
  EXPECT_NE(stranger.state(), v1::PeerStatus::FOLLOWING);
  EXPECT_EQ(stranger.cursor(), 0u);
  EXPECT_THAT(stranger.last_error(), HasSubstr("peer"));
}

// A peer that requires client certificates is followed by a node whose [tls] certificate is signed
// by the peer's client CA: the node presents it on both the gRPC and the HTTPS connection.
TEST_F(TlsNodeTest, PresentsItsCertificateToAPeerThatRequiresOne) {
  std::unique_ptr<Node> a = StartNode(TlsTable("client_ca = \"ca.crt\"\n") + "[log]\ncheckpoint_interval = \"50ms\"\n");
  ASSERT_NE(a, nullptr);
  {
    auto stub = v1::Attestations::NewStub(a->InProcessChannel());
    v1::SubmitRequest request;
    *request.add_attestations() = Signed(TestClaim("hello"), federation_.alice);
    v1::SubmitResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Submit(&context, request, &response).ok());
  }
  TempDir dir;
  CertificateFiles b_cert = MakeTestCertificate(dir, "node-b", ca_);
  WriteFileOrDie(dir.File("policy.toml"), federation_.PolicyToml());
  WriteFileOrDie(dir.File("node.sec"), TestKey("node-b").ExportText() + "\n");
  const std::string config_path = dir.File("node.toml");
  WriteFileOrDie(config_path,
                 absl::StrCat("[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nkey = \"node.sec\"\n"
                              "policy = \"policy.toml\"\n[tls]\ncert = \"node-b.crt\"\nkey = \"node-b.key\"\n"
                              "[federation]\npoll_interval = \"50ms\"\nmax_backoff = \"200ms\"\n[[peer]]\n"
                              "grpc = \"https://", a->grpc_address(), "\"\nhttp = \"https://", a->http_address(),
                              "\"\nkey = \"", a->public_key().ToString(), "\"\nca = \"", ca_.cert, "\"\n"));
  auto config = LoadNodeConfig(config_path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto b = Node::Open(*config);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*b)->Start().ok());
  auto peer_status = [&] {
    absl::StatusOr<v1::GetFederationStatusResponse> status = (*b)->replicator()->Status();
    return status.ok() && status->peers_size() == 1 ? status->peers(0) : v1::PeerStatus{};
  };
  EXPECT_TRUE(testing::PollUntil(
      [&] { return peer_status().state() == v1::PeerStatus::FOLLOWING && peer_status().cursor() >= 1; },
      std::chrono::seconds(60)))
      << peer_status().DebugString();
}

}  // namespace
}  // namespace attest::server
