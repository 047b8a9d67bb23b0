// The gateway without an upstream: narinfos of attest's own and NARs relayed, verified, from the caches
// of the operators that agree (server/nar_relay.h). Real node (SQLite, gRPC in process, HTTP on
// loopback), binary caches written by real Nix (tests/server/nix_caches.h) served as file:// directories
// and over HTTP by `python3 -m http.server`; the caches are damaged, removed and lied about by the tests.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "consensus/narinfo.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
#include "server/gateway.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/server/http_test_client.h"
#include "tests/server/nix_caches.h"
#include "tests/server/server_test_util.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Daemon;
using ::attest::testing::ServeDirectoryOverHttp;
using ::attest::testing::StaticHttpServer;
using ::attest::testing::Federation;
using ::attest::testing::HttpAnswer;
using ::attest::testing::HttpGet;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::attest::testing::WriteNodeDir;
using ::testing::HasSubstr;

using namespace std::chrono_literals;

// The NAR hash of bytes, as a narinfo writes it.
std::string NarHashOf(const std::string& bytes) {
  return consensus::NarHash::FromDigest(consensus::Sha256(bytes)).ToNix32();
}

// The value of `key` in narinfo text ("" when absent).
std::string Field(const std::string& narinfo, const std::string& key) {
  const std::string prefix = key + ": ";
  std::istringstream lines(narinfo);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
  }
  return "";
}

class GatewayRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Caches().error.empty()) << "building the binary caches with Nix failed: " << Caches().error;
  }
  void TearDown() override { StopNode(); }

  // A private copy of a cache written by Nix (tests damage them).
  std::string CopyCache(const std::string& from, const std::string& name) {
    const std::string to = dir_.File(name);
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
    return to;
  }

  // Starts `python3 -m http.server` on `directory`; returns its URL.
  std::string ServeOverHttp(const std::string& directory) {
    StaticHttpServer server = ServeDirectoryOverHttp(directory, dir_.File("python-http"));
    if (server.url.empty()) ADD_FAILURE() << server.error;
    python_ = std::move(server.daemon);
    return server.url;
  }


  // The policy's operators with their caches (URLs; none for an operator not named).
  void StartNode(const std::map<std::string, std::string>& caches, const std::string& gateway_extra = "",
                 const std::string& tables = "") {
    const std::string config_path =
        WriteNodeDir(dir_, federation_, absl::StrCat("\n[gateway]\npriority = 42\n", gateway_extra, tables));
    std::string policy = federation_.PolicyToml();
    for (const auto& [op, url] : caches) {
      const std::string header = absl::StrCat("name = \"", op, "\"\n");
      policy = absl::StrReplaceAll(policy, {{header, absl::StrCat(header, "caches = [\"", url, "\"]\n")}});
    }
    WriteFileOrDie(dir_.File("policy.toml"), policy);
    auto config = LoadNodeConfig(config_path);
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config);
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    ASSERT_NE(node_->gateway(), nullptr);
    stub_ = v1::Attestations::NewStub(node_->InProcessChannel());
  }
  void StopNode() {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
  }

  int port() const { return node_->http_port(); }

  consensus::PathInfo Claim(const std::string& name) {
    auto narinfo = consensus::ParseNarInfo(
        ReadFileOrDie(absl::StrCat(Caches().none_dir, "/", HashPart(Caches().paths.at(name)), ".narinfo")), name);
    EXPECT_TRUE(narinfo.ok()) << narinfo.status();
    return narinfo->claim;
  }

  void Attest(const consensus::PathInfo& claim, const consensus::SecretKey& key) {
    v1::SubmitRequest request;
    *request.add_attestations() = Signed(claim, key);
    v1::SubmitResponse response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 30s);
    grpc::Status status = stub_->Submit(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.results_size(), 1);
    ASSERT_EQ(response.results(0).outcome(), v1::SubmitResult::ACCEPTED) << response.results(0).message();
  }
  void Confirm(const std::string& name) {
    Attest(Claim(name), federation_.alice);
    Attest(Claim(name), federation_.bob);
  }

  HttpAnswer Get(const std::string& target) {
    auto answer = HttpGet(port(), target);
    EXPECT_TRUE(answer.has_value()) << target;
    return answer.value_or(HttpAnswer{});
  }
  HttpAnswer NarInfo(const std::string& name) { return Get("/" + HashPart(Caches().paths.at(name)) + ".narinfo"); }
  // The NAR the gateway serves for `name`, fetched the way Nix does (narinfo, then its URL).
  HttpAnswer Nar(const std::string& name) {
    HttpAnswer narinfo = NarInfo(name);
    EXPECT_EQ(narinfo.status, 200) << narinfo.body;
    return Get("/" + Field(narinfo.body, "URL"));
  }

  NarSourceStatus StatusOf(const std::string& url) {
    for (const NarSourceStatus& status : node_->gateway()->SourceStatus()) {
      if (status.spec.url == url) return status;
    }
    ADD_FAILURE() << "no source " << url;
    return {};
  }

  // The NAR file of `name` in a cache directory (from its narinfo's URL).
  std::string NarFileIn(const std::string& cache, const std::string& name) {
    const std::string text = ReadFileOrDie(absl::StrCat(cache, "/", HashPart(Caches().paths.at(name)), ".narinfo"));
    return absl::StrCat(cache, "/", Field(text, "URL"));
  }

  TempDir dir_;
  Federation federation_;
  std::unique_ptr<Daemon> python_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> stub_;
};

TEST_F(GatewayRelayTest, ServesAConfirmedPathFromAnOperatorsCacheWithoutAnyUpstream) {
  const std::string alice = "file://" + CopyCache(Caches().xz_dir, "alice");
  const std::string bob = "file://" + CopyCache(Caches().none_dir, "bob");
  StartNode({{"alice-ci", alice}, {"bob-labs", bob}});
  Confirm("hello");

  HttpAnswer narinfo = NarInfo("hello");
  ASSERT_EQ(narinfo.status, 200) << narinfo.body;
  const consensus::PathInfo claim = Claim("hello");
  EXPECT_EQ(Field(narinfo.body, "StorePath"), claim.path.full());
  EXPECT_EQ(Field(narinfo.body, "Compression"), "none");
  EXPECT_EQ(Field(narinfo.body, "NarHash"), claim.nar_hash.ToNix32());
  EXPECT_EQ(Field(narinfo.body, "FileSize"), absl::StrCat(claim.nar_size));
  EXPECT_EQ(Field(narinfo.body, "URL").rfind("nar/" + HashPart(claim.path.full()) + "-", 0), 0u) << narinfo.body;
  // The builders' and the node's signatures verify over the narinfo's own fingerprint.
  auto parsed = consensus::ParseNarInfo(narinfo.body, "gateway");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::vector<consensus::PublicKey> keys{federation_.alice.public_key(), federation_.bob.public_key(),
                                               federation_.node_key.public_key()};
  EXPECT_EQ(consensus::VerifyNarInfo(*parsed, keys).valid_keys.size(), 3u);

  HttpAnswer nar = Get("/" + Field(narinfo.body, "URL"));
  ASSERT_EQ(nar.status, 200);
  EXPECT_EQ(nar.body.size(), claim.nar_size);
  EXPECT_EQ(NarHashOf(nar.body), claim.nar_hash.ToNix32());
  // From the first confirming operator's cache (xz, decompressed on the way).
  EXPECT_EQ(StatusOf(alice).paths_served, 1u);
  EXPECT_EQ(StatusOf(bob).paths_served, 0u);
}

TEST_F(GatewayRelayTest, ACacheAddedByAPolicyUpdateIsUsedWithoutARestart) {
  // Alice's cache lacks hello; bob lists no cache yet.
  const std::string alice_dir = CopyCache(Caches().none_dir, "alice");
  const std::string bob = "file://" + CopyCache(Caches().none_dir, "bob");
  std::filesystem::remove(absl::StrCat(alice_dir, "/", HashPart(Caches().paths.at("hello")), ".narinfo"));
  StartNode({{"alice-ci", "file://" + alice_dir}});
  Confirm("hello");
  // (Not asked for hello yet: the gateway believes a source's "no such narinfo" for negative_ttl.)
  ASSERT_EQ(node_->gateway()->SourceStatus().size(), 1u);

  // A signed update lists bob's cache; the running node relays from it at once.
  const std::string alice_header = "name = \"alice-ci\"\n";
  const std::string bob_header = "name = \"bob-labs\"\n";
  const std::string body = absl::StrReplaceAll(
      federation_.PolicyToml(), {{alice_header, absl::StrCat(alice_header, "caches = [\"file://", alice_dir, "\"]\n")},
                                 {bob_header, absl::StrCat(bob_header, "caches = [\"", bob, "\"]\n")}});
  const std::shared_ptr<const consensus::Policy> current = node_->policy().current();
  absl::StatusOr<PolicyBook::Adopted> adopted = node_->policy().Adopt(
      ::attest::testing::ApprovedLink(::attest::testing::SuccessorToml(*current, body), {&federation_.maintainer}), "",
      absl::ToUnixSeconds(absl::Now()));
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  ASSERT_EQ(adopted->policy->operators()[1].caches.size(), 1u);

  HttpAnswer nar = Nar("hello");
  ASSERT_EQ(nar.status, 200) << nar.body;
  EXPECT_EQ(NarHashOf(nar.body), Claim("hello").nar_hash.ToNix32());
  EXPECT_EQ(StatusOf(bob).paths_served, 1u);
  // Alice's cache is kept as it was (policy order: alice, then bob).
  const std::vector<NarSourceStatus> sources = node_->gateway()->SourceStatus();
  ASSERT_EQ(sources.size(), 2u);
  EXPECT_EQ(sources[0].spec.url, "file://" + alice_dir);
  EXPECT_EQ(sources[1].spec.url, bob);
}

TEST_F(GatewayRelayTest, AnOperatorNotOnTheConfirmedSideIsNeverAskedForTheBytes) {
  const std::string alice_dir = CopyCache(Caches().none_dir, "alice");
  const std::string bob_dir = CopyCache(Caches().none_dir, "bob");
  const std::string carol_dir = CopyCache(Caches().none_dir, "carol");
  const std::string alice = "file://" + alice_dir;
  const std::string bob = "file://" + bob_dir;
  const std::string carol = "file://" + carol_dir;
  // Carol's copy is damaged: fetching from it would be recorded as a mismatch.
  std::string bytes = ReadFileOrDie(NarFileIn(carol_dir, "withdeps"));
  bytes[bytes.size() - 20] ^= 0x20;
  WriteFileOrDie(NarFileIn(carol_dir, "withdeps"), bytes);
  StartNode({{"alice-ci", alice}, {"bob-labs", bob}, {"carol-home", carol}});
  Confirm("hello");
  HttpAnswer first = Nar("hello");
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(NarHashOf(first.body), Claim("hello").nar_hash.ToNix32());

  // Alice's cache is gone and bob's lost the NAR file: no confirming operator has the bytes.
  Confirm("withdeps");
  std::filesystem::remove_all(alice_dir);
  std::filesystem::remove(NarFileIn(bob_dir, "withdeps"));
  HttpAnswer narinfo = NarInfo("withdeps");
  ASSERT_EQ(narinfo.status, 200) << "bob's narinfo still describes the confirmed contents";
  HttpAnswer nar = Get("/" + Field(narinfo.body, "URL"));
  EXPECT_EQ(nar.status, 404) << "carol did not attest withdeps: her bytes are not asked for";
  const NarSourceStatus untouched = StatusOf(carol);
  EXPECT_EQ(untouched.mismatches, 0u);
  EXPECT_EQ(untouched.paths_served, 0u);
  EXPECT_EQ(untouched.narinfos_found, 0u);
  EXPECT_FALSE(StatusOf(alice).reachable);
  EXPECT_THAT(StatusOf(alice).last_error, HasSubstr(alice_dir));
}

TEST_F(GatewayRelayTest, ACorruptNarFailsOverAndIsRecordedAsAMismatch) {
  const std::string alice_dir = CopyCache(Caches().none_dir, "alice");
  const std::string alice = "file://" + alice_dir;
  const std::string bob_dir = CopyCache(Caches().xz_dir, "bob");
  const std::string bob_url = ServeOverHttp(bob_dir);
  ASSERT_FALSE(bob_url.empty());
  // One byte of alice's NAR file changed: same size, other contents.
  std::string bytes = ReadFileOrDie(NarFileIn(alice_dir, "hello"));
  bytes[bytes.size() - 20] ^= 0x20;
  WriteFileOrDie(NarFileIn(alice_dir, "hello"), bytes);
  StartNode({{"alice-ci", alice}, {"bob-labs", bob_url}});
  Confirm("hello");

  HttpAnswer nar = Nar("hello");
  ASSERT_EQ(nar.status, 200);
  EXPECT_EQ(NarHashOf(nar.body), Claim("hello").nar_hash.ToNix32()) << "only verified bytes leave the node";
  const NarSourceStatus bad = StatusOf(alice);
  EXPECT_EQ(bad.mismatches, 1u);
  EXPECT_THAT(bad.last_mismatch, HasSubstr(Caches().paths.at("hello")));
  EXPECT_THAT(bad.last_mismatch, HasSubstr("hash mismatch"));
  EXPECT_EQ(bad.paths_served, 0u);
  EXPECT_EQ(StatusOf(bob_url).paths_served, 1u);
  HttpAnswer metrics = Get("/metrics");
  EXPECT_THAT(metrics.body, HasSubstr(absl::StrCat("attest_nar_source_mismatches_total{source=\"", alice, "\"} 1")));
}

TEST_F(GatewayRelayTest, ANarinfoThatContradictsTheConfirmedContentsIsSkipped) {
  const std::string alice_dir = CopyCache(Caches().none_dir, "alice");
  const std::string alice = "file://" + alice_dir;
  const std::string bob = "file://" + CopyCache(Caches().none_dir, "bob");
  const std::string narinfo_file = absl::StrCat(alice_dir, "/", HashPart(Caches().paths.at("hello")), ".narinfo");
  const consensus::PathInfo claim = Claim("hello");
  WriteFileOrDie(narinfo_file,
                 absl::StrReplaceAll(ReadFileOrDie(narinfo_file),
                                     {{absl::StrCat("NarSize: ", claim.nar_size), absl::StrCat("NarSize: ", claim.nar_size + 1)}}));
  StartNode({{"alice-ci", alice}, {"bob-labs", bob}});
  Confirm("hello");

  HttpAnswer nar = Nar("hello");
  ASSERT_EQ(nar.status, 200);
  EXPECT_EQ(NarHashOf(nar.body), claim.nar_hash.ToNix32());
  EXPECT_EQ(StatusOf(alice).mismatches, 1u);
  EXPECT_THAT(StatusOf(alice).last_mismatch, HasSubstr("narinfo says"));
  EXPECT_EQ(StatusOf(bob).paths_served, 1u);
}

TEST_F(GatewayRelayTest, WhenNoSourceHasBytesThatVerifyTheClientGets404AndNoBytes) {
  const std::string alice_dir = CopyCache(Caches().xz_dir, "alice");
  const std::string alice = "file://" + alice_dir;
  // xz data cut short: the decoder must notice, whatever the hash would say.
  std::string bytes = ReadFileOrDie(NarFileIn(alice_dir, "hello"));
  WriteFileOrDie(NarFileIn(alice_dir, "hello"), bytes.substr(0, bytes.size() / 2));
  StartNode({{"alice-ci", alice}});
  Confirm("hello");

  HttpAnswer narinfo = NarInfo("hello");
  ASSERT_EQ(narinfo.status, 200);
  HttpAnswer nar = Get("/" + Field(narinfo.body, "URL"));
  EXPECT_EQ(nar.status, 404);
  EXPECT_THAT(nar.body, HasSubstr("that verifies"));
  EXPECT_EQ(StatusOf(alice).mismatches, 1u);
  // The node keeps serving.
  Confirm("dep");
  EXPECT_EQ(Nar("dep").status, 200);
}

TEST_F(GatewayRelayTest, OnlyConfirmedPathsAreServedWhateverTheSourcesHold) {
  const std::string alice = "file://" + CopyCache(Caches().none_dir, "alice");
  StartNode({{"alice-ci", alice}});
  Attest(Claim("pending"), federation_.alice);
  HttpAnswer pending = NarInfo("pending");
  EXPECT_EQ(pending.status, 404);
  EXPECT_THAT(pending.body, HasSubstr("PENDING"));
  Attest(Claim("disputed"), federation_.alice);
  Attest(Claim("disputed"), federation_.carol);
  auto other = consensus::PathInfo::Create(Claim("disputed").path,
                                           consensus::NarHash::FromDigest(consensus::Sha256("other")), 9, {});
  ASSERT_TRUE(other.ok());
  Attest(*other, federation_.bob);
  HttpAnswer disputed = NarInfo("disputed");
  EXPECT_EQ(disputed.status, 404);
  EXPECT_THAT(disputed.body, HasSubstr("DISPUTED"));
  EXPECT_EQ(NarInfo("unknown").status, 404);
  // A NAR name the node never handed out.
  const std::string hash = HashPart(Caches().paths.at("pending"));
  EXPECT_EQ(Get("/nar/" + hash + "-" + std::string(52, '0') + ".nar").status, 404);
  EXPECT_EQ(Get("/nar/" + std::string(40, 'x') + ".nar").status, 404);
}

TEST_F(GatewayRelayTest, ANarLargerThanTheRelayTakesIsRefusedAtTheNarinfo) {
  const std::string alice = "file://" + CopyCache(Caches().none_dir, "alice");
  StartNode({{"alice-ci", alice}}, "nar_cache_mib = 2\nmax_nar_mib = 1\n");
  Confirm("big");
  HttpAnswer narinfo = NarInfo("big");
  EXPECT_EQ(narinfo.status, 404);
  EXPECT_THAT(narinfo.body, HasSubstr("larger than this node relays"));
  Confirm("hello");
  EXPECT_EQ(Nar("hello").status, 200);
}

TEST_F(GatewayRelayTest, ConcurrentRequestsForOneNarShareOneTransfer) {
  const std::string alice = "file://" + CopyCache(Caches().xz_dir, "alice");
  StartNode({{"alice-ci", alice}});
  Confirm("big");
  HttpAnswer narinfo = NarInfo("big");
  ASSERT_EQ(narinfo.status, 200);
  const std::string url = "/" + Field(narinfo.body, "URL");
  std::vector<std::thread> clients;
  std::vector<HttpAnswer> answers(8);
  for (size_t i = 0; i < answers.size(); ++i) {
    clients.emplace_back([&, i] { answers[i] = HttpGet(port(), url).value_or(HttpAnswer{}); });
  }
  for (std::thread& t : clients) t.join();
  for (const HttpAnswer& answer : answers) {
    EXPECT_EQ(answer.status, 200);
    EXPECT_EQ(NarHashOf(answer.body), Claim("big").nar_hash.ToNix32());
  }
  EXPECT_EQ(StatusOf(alice).paths_served, 1u) << "one transfer from the source, whatever the clients";
}

TEST_F(GatewayRelayTest, AfterARestartCachedNarsAreCheckedAgainBeforeTheyAreServed) {
  const std::string alice_dir = CopyCache(Caches().none_dir, "alice");
  const std::string alice = "file://" + alice_dir;
  const std::string bob = "file://" + CopyCache(Caches().none_dir, "bob");
  StartNode({{"alice-ci", alice}, {"bob-labs", bob}});
  Confirm("hello");
  ASSERT_EQ(Nar("hello").status, 200);
  StopNode();
  // The disk changed the cached NAR while the node was down.
  const std::string cache_dir = dir_.File("attest.db.nar-cache");
  int damaged = 0;
  for (const auto& entry : std::filesystem::directory_iterator(cache_dir)) {
    if (entry.path().extension() != ".nar") continue;
    std::string bytes = ReadFileOrDie(entry.path().string());
    bytes[bytes.size() / 2] ^= 1;
    WriteFileOrDie(entry.path().string(), bytes);
    ++damaged;
  }
  ASSERT_EQ(damaged, 1);
  std::filesystem::remove_all(alice_dir);
  StartNode({{"alice-ci", alice}, {"bob-labs", bob}});
  HttpAnswer nar = Nar("hello");
  ASSERT_EQ(nar.status, 200);
  EXPECT_EQ(NarHashOf(nar.body), Claim("hello").nar_hash.ToNix32());
  EXPECT_EQ(StatusOf(bob).paths_served, 1u) << "the damaged copy was fetched again";
}

TEST_F(GatewayRelayTest, AMirrorServesWhenNoOperatorListsACache) {
  const std::string mirror = "file://" + CopyCache(Caches().xz_dir, "mirror");
  StartNode({}, "", absl::StrCat("\n[[source]]\nurl = \"", mirror, "\"\npriority = 5\n"));
  Confirm("withdeps");
  HttpAnswer nar = Nar("withdeps");
  ASSERT_EQ(nar.status, 200);
  EXPECT_EQ(NarHashOf(nar.body), Claim("withdeps").nar_hash.ToNix32());
  const NarSourceStatus status = StatusOf(mirror);
  EXPECT_EQ(status.spec.kind, NarSourceKind::kMirror);
  EXPECT_EQ(status.paths_served, 1u);
}

TEST_F(GatewayRelayTest, AGatewayWithNoSourceOfNarsIsRefusedAtStart) {
  const std::string config_path = WriteNodeDir(dir_, federation_, "\n[gateway]\npriority = 42\n");
  auto config = LoadNodeConfig(config_path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(node.status().message(), HasSubstr("no source of NARs"));
}

}  // namespace
}  // namespace attest::server
