// server/gateway: the real node (SQLite, gRPC in process, HTTP on loopback) in front of binary caches
// written by real Nix (`nix copy --to file://...`, uncompressed and xz), served as file:// directories
// and over HTTP by `python3 -m http.server`. Attestations go in through the node's Submit, so the ingest
// hook that keeps cached answers honest is exercised too.
#include "server/gateway.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "consensus/dispute.h"
#include "consensus/narinfo.h"
#include "consensus/resolution.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.grpc.pb.h"
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
using ::attest::testing::HttpTestClient;
using ::attest::testing::PollUntil;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::Run;
using ::attest::testing::RunResult;
using ::attest::testing::Signed;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::attest::testing::WriteNodeDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using namespace std::chrono_literals;

// ---- fixture -------------------------------------------------------------------------------------

enum class UpstreamKind { kFileUncompressed, kFileXz, kHttp };

std::string KindName(const ::testing::TestParamInfo<UpstreamKind>& info) {
  switch (info.param) {
    case UpstreamKind::kFileUncompressed:
      return "FileUncompressed";
    case UpstreamKind::kFileXz:
      return "FileXz";
    case UpstreamKind::kHttp:
      return "Http";
  }
  return "?";
}

// A port nothing listens on.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

class GatewayTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Caches().error.empty()) << "building the binary caches with Nix failed: " << Caches().error;
  }
  void TearDown() override {
    if (node_) node_->Shutdown(absl::Now() + absl::Seconds(5));
    node_.reset();
  }

  // Copies a cache into this test's directory (tests change it) and returns the copy's path.
  std::string CopyCache(const std::string& from) {
    const std::string to = dir_.File("cache");
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


  void StartNode(const std::string& upstream, const std::string& gateway_extra = "") {
    const std::string config_path = WriteNodeDir(
        dir_, federation_, absl::StrCat("\n[gateway]\nupstream = \"", upstream, "\"\npriority = 42\n", gateway_extra));
    auto config = LoadNodeConfig(config_path);
    ASSERT_TRUE(config.ok()) << config.status();
    auto node = Node::Open(*config, [this] { return absl::FromUnixSeconds(now_.load()); });
    ASSERT_TRUE(node.ok()) << node.status();
    node_ = *std::move(node);
    ASSERT_TRUE(node_->Start().ok());
    ASSERT_NE(node_->gateway(), nullptr);
    stub_ = v1::Attestations::NewStub(node_->InProcessChannel());
  }

  int port() const { return node_->http_port(); }

  // The claim the upstream narinfo of `name` makes (what builders that agree with it sign).
  consensus::PathInfo ClaimOf(const std::string& name, const std::string& cache) {
    auto narinfo = consensus::ParseNarInfo(
        ReadFileOrDie(absl::StrCat(cache, "/", HashPart(Caches().paths.at(name)), ".narinfo")), name);
    EXPECT_TRUE(narinfo.ok()) << narinfo.status();
    return narinfo->claim;
  }
  // The same path with other contents.
  consensus::PathInfo OtherClaim(const consensus::PathInfo& claim) {
    auto other = consensus::PathInfo::Create(
        claim.path, consensus::NarHash::FromDigest(consensus::Sha256("other contents")), claim.nar_size + 1, {});
    EXPECT_TRUE(other.ok());
    return *other;
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

  HttpAnswer NarInfo(const std::string& name) {
    auto answer = HttpGet(port(), "/" + HashPart(Caches().paths.at(name)) + ".narinfo");
    EXPECT_TRUE(answer.has_value());
    return answer.value_or(HttpAnswer{});
  }

  void Advance(absl::Duration by) { now_ += absl::ToInt64Seconds(by); }

  TempDir dir_;
  Federation federation_;
  std::atomic<int64_t> now_{testing::kTestNow};
  std::unique_ptr<Daemon> python_;
  std::unique_ptr<Node> node_;
  std::unique_ptr<v1::Attestations::Stub> stub_;
};

// ---- every upstream kind -------------------------------------------------------------------------

class GatewayTest : public GatewayTestBase, public ::testing::WithParamInterface<UpstreamKind> {
 protected:
  void SetUp() override {
    GatewayTestBase::SetUp();
    if (HasFatalFailure()) return;
    cache_ = CopyCache(GetParam() == UpstreamKind::kFileXz ? Caches().xz_dir : Caches().none_dir);
    const std::string upstream = GetParam() == UpstreamKind::kHttp ? ServeOverHttp(cache_) : "file://" + cache_;
    ASSERT_FALSE(upstream.empty());
    StartNode(upstream);
  }
  consensus::PathInfo Claim(const std::string& name) { return ClaimOf(name, cache_); }

  std::string cache_;
};

INSTANTIATE_TEST_SUITE_P(Upstreams, GatewayTest,
                         ::testing::Values(UpstreamKind::kFileUncompressed, UpstreamKind::kFileXz, UpstreamKind::kHttp),
                         KindName);

TEST_P(GatewayTest, CacheInfoNamesTheStoreAndPriority) {
  auto answer = HttpGet(port(), "/nix-cache-info");
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(answer->body, "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 42\n");
  EXPECT_EQ(answer->Header("content-type"), "text/x-nix-cache-info");
}

TEST_P(GatewayTest, ConfirmedPathIsServedWithSignaturesThatVerify) {
  const consensus::PathInfo claim = Claim("withdeps");
  Attest(claim, federation_.alice);
  Attest(claim, federation_.bob);
  HttpAnswer answer = NarInfo("withdeps");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.Header("content-type"), "text/x-nix-narinfo");

  auto served = consensus::ParseNarInfo(answer.body, "served");
  ASSERT_TRUE(served.ok()) << served.status() << "\n" << answer.body;
  EXPECT_EQ(served->claim, claim);
  ASSERT_EQ(served->claim.references.size(), 1u);
  EXPECT_EQ(served->claim.references[0].full(), Caches().paths.at("dep"));

  const std::vector<consensus::PublicKey> trusted{federation_.alice.public_key(), federation_.bob.public_key(),
                                                  federation_.carol.public_key(), federation_.node_key.public_key()};
  consensus::NarInfoVerification verification = consensus::VerifyNarInfo(*served, trusted);
  EXPECT_THAT(verification.valid_keys, ElementsAre("alice-builder-1", "bob-builder-1", "node-1"));
  ASSERT_EQ(verification.checks.size(), 3u) << answer.body;
  for (const auto& check : verification.checks) {
    EXPECT_EQ(check.result, consensus::SignatureCheck::Result::kValid) << check.detail;
  }
  // A client that trusts only the node's key accepts it.
  const std::vector<consensus::PublicKey> node_only{federation_.node_key.public_key()};
  EXPECT_TRUE(consensus::VerifyNarInfo(*served, node_only).ok());

  // Everything but the signatures is the upstream's, with the NAR fetched through the gateway.
  auto upstream = consensus::ParseNarInfo(
      ReadFileOrDie(absl::StrCat(cache_, "/", HashPart(Caches().paths.at("withdeps")), ".narinfo")), "upstream");
  ASSERT_TRUE(upstream.ok());
  EXPECT_EQ(served->url, upstream->url);
  EXPECT_THAT(served->url, StartsWith("nar/"));
  EXPECT_EQ(served->compression, upstream->compression);
  EXPECT_EQ(served->file_hash, upstream->file_hash);
  EXPECT_EQ(served->file_size, upstream->file_size);
  EXPECT_EQ(served->deriver, upstream->deriver);
  EXPECT_THAT(answer.body, HasSubstr("\nReferences: " + Caches().paths.at("dep").substr(11) + "\n"));

  // HEAD (Nix's isValidPath) gives the same status.
  auto head = HttpGet(port(), "/" + HashPart(claim.path.full()) + ".narinfo", "HEAD");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
}

TEST_P(GatewayTest, NarDownloadIsByteIdenticalToTheUpstreamFile) {
  for (const char* name : {"hello", "big"}) {
    const consensus::PathInfo claim = Claim(name);
    Attest(claim, federation_.alice);
    Attest(claim, federation_.carol);
    HttpAnswer answer = NarInfo(name);
    ASSERT_EQ(answer.status, 200) << answer.body;
    auto served = consensus::ParseNarInfo(answer.body, "served");
    ASSERT_TRUE(served.ok());
    const std::string expected = ReadFileOrDie(cache_ + "/" + served->url);
    HttpTestClient client(port());
    for (int round = 0; round < 2; ++round) {  // twice on one connection: the connection stays usable
      auto nar = client.Get("/" + served->url);
      ASSERT_TRUE(nar.has_value()) << name;
      EXPECT_EQ(nar->status, 200);
      EXPECT_EQ(nar->Header("content-type"), "application/x-nix-nar");
      EXPECT_EQ(nar->body.size(), expected.size()) << name;
      EXPECT_TRUE(nar->body == expected) << name << ": the NAR differs from the upstream file";
      if (served->file_size) {
        EXPECT_EQ(nar->body.size(), *served->file_size);
      }
    }
  }
}

TEST_P(GatewayTest, EveryCaseButConfirmedIs404) {
  // unknown: the upstream has it, nobody attested it.
  EXPECT_EQ(NarInfo("unknown").status, 404);
  // pending: one operator of the two needed.
  Attest(Claim("pending"), federation_.alice);
  HttpAnswer pending = NarInfo("pending");
  EXPECT_EQ(pending.status, 404);
  EXPECT_THAT(pending.body, HasSubstr("PENDING"));
  // disputed: two operators disagree.
  Attest(Claim("disputed"), federation_.alice);
  Attest(Claim("disputed"), federation_.carol);
  Attest(OtherClaim(Claim("disputed")), federation_.bob);
  HttpAnswer disputed = NarInfo("disputed");
  EXPECT_EQ(disputed.status, 404);
  EXPECT_THAT(disputed.body, HasSubstr("DISPUTED"));
  // upstream mismatch: confirmed, but not what the upstream narinfo describes.
  Attest(OtherClaim(Claim("mismatch")), federation_.alice);
  Attest(OtherClaim(Claim("mismatch")), federation_.bob);
  HttpAnswer mismatch = NarInfo("mismatch");
  EXPECT_EQ(mismatch.status, 404);
  EXPECT_THAT(mismatch.body, HasSubstr("upstream narinfo describes other contents"));
  // confirmed, but the upstream has no narinfo.
  const consensus::PathInfo absent = testing::TestClaim("gw-not-in-upstream");
  Attest(absent, federation_.alice);
  Attest(absent, federation_.bob);
  EXPECT_EQ(HttpGet(port(), "/" + HashPart(absent.path.full()) + ".narinfo")->status, 404);
  // Malformed narinfo names.
  for (const std::string& target :
       {std::string("/abc.narinfo"), "/" + std::string(32, 'e') + ".narinfo",
        "/" + HashPart(Caches().paths.at("hello")) + ".narinfo.xz", std::string("/index.html")}) {
    auto answer = HttpGet(port(), target);
    ASSERT_TRUE(answer.has_value()) << target;
    EXPECT_EQ(answer->status, 404) << target;
  }
  // And what is confirmed still is served.
  Attest(Claim("hello"), federation_.alice);
  Attest(Claim("hello"), federation_.bob);
  EXPECT_EQ(NarInfo("hello").status, 200);
}

TEST_P(GatewayTest, VerdictChangesAreVisibleToTheNextRequest) {
  const consensus::PathInfo claim = Claim("later");
  Attest(claim, federation_.alice);
  EXPECT_EQ(NarInfo("later").status, 404);
  const uint64_t hits = node_->gateway()->stats().cache_hits;
  EXPECT_EQ(NarInfo("later").status, 404);
  EXPECT_EQ(node_->gateway()->stats().cache_hits, hits + 1) << "the second 404 came from the table";

  Attest(claim, federation_.bob);  // quorum reached
  EXPECT_EQ(NarInfo("later").status, 200) << "a cached 404 must not outlive the verdict";
  EXPECT_EQ(NarInfo("later").status, 200);
  const uint64_t fetches = node_->gateway()->stats().upstream_fetches;

  Attest(OtherClaim(claim), federation_.carol);  // now DISPUTED
  HttpAnswer disputed = NarInfo("later");
  EXPECT_EQ(disputed.status, 404) << "a cached CONFIRMED must not outlive the verdict";
  EXPECT_THAT(disputed.body, HasSubstr("DISPUTED"));
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, fetches) << "the upstream answer stayed cached";
}

TEST_P(GatewayTest, BadNarRequestsGetCleanErrorsAndTheNodeKeepsServing) {
  for (const char* target : {"/nar/../nix-cache-info", "/nar/..%2F..%2Fetc%2Fpasswd", "/nar/%2e%2e/%2e%2e/etc/passwd",
                             "/nar/", "/nar/.hidden", "/nar/a/b.nar"}) {
    auto answer = HttpGet(port(), target);
    ASSERT_TRUE(answer.has_value()) << target;
    EXPECT_EQ(answer->status, 400) << target;
  }
  EXPECT_EQ(HttpGet(port(), "/nar/0000000000000000000000000000000000000000000000000000.nar")->status, 404);
  // The library hands over the decoded path as a C string, so an encoded NUL ends it: "/nar/x", which the
  // upstream does not have.
  EXPECT_EQ(HttpGet(port(), "/nar/x%00y.nar")->status, 404);
  auto huge = HttpGet(port(), "/nar/" + std::string(10000, 'a'));
  ASSERT_TRUE(huge.has_value());
  EXPECT_EQ(huge->status, 414);
  HttpTestClient put(port());
  put.SendRaw("PUT /nix-cache-info HTTP/1.1\r\nHost: x\r\nContent-Length: 21\r\n\r\nStoreDir: /nix/store\n");
  auto refused = put.ReadAnswer();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 405);
  EXPECT_EQ(HttpGet(port(), "/healthz")->body, "ok\n");
  EXPECT_EQ(HttpGet(port(), "/nix-cache-info")->status, 200);
}

// Real Nix as the client: a fresh store that trusts only the node's key substitutes a confirmed closure
// through the gateway and builds what is not confirmed.
TEST_P(GatewayTest, RealNixSubstitutesConfirmedPathsAndBuildsTheRest) {
  for (const char* name : {"dep", "withdeps"}) {
    Attest(Claim(name), federation_.alice);
    Attest(Claim(name), federation_.bob);
  }
  Attest(Claim("pending"), federation_.alice);
  std::map<std::string, std::string> env = Caches().env;
  env["XDG_CACHE_HOME"] = dir_.File("client-xdg");  // Nix's narinfo disk cache, fresh
  const std::string client = dir_.File("client-store");
  const std::vector<std::string> options{"--option",
                                         "substituters",
                                         absl::StrCat("http://127.0.0.1:", port()),
                                         "--option",
                                         "trusted-public-keys",
                                         federation_.node_key.public_key().ToString(),
                                         "--option",
                                         "narinfo-cache-negative-ttl",
                                         "0"};

  std::vector<std::string> realise{"nix-store", "--store", client, "--realise", Caches().paths.at("withdeps")};
  realise.insert(realise.end(), options.begin(), options.end());
  RunResult substituted = testing::Run(realise, "", 120s, env);
  ASSERT_EQ(substituted.exit_code, 0) << substituted.err;
  EXPECT_THAT(substituted.err, HasSubstr("copying path '" + Caches().paths.at("withdeps")));
  EXPECT_THAT(substituted.err, HasSubstr("copying path '" + Caches().paths.at("dep")));
  EXPECT_THAT(substituted.err, ::testing::Not(HasSubstr("building")));
  RunResult info =
      testing::Run({"nix", "path-info", "--store", client, "--sigs", Caches().paths.at("withdeps")}, "", 60s, env);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_THAT(info.out, HasSubstr("node-1:"));

  // PENDING: 404, so Nix builds it itself.
  std::vector<std::string> build{"nix-build", "--store", client,         Caches().dir->File("gw.nix"),
                                 "-A",        "pending", "--no-out-link"};
  build.insert(build.end(), options.begin(), options.end());
  RunResult built = testing::Run(build, "", 120s, env);
  ASSERT_EQ(built.exit_code, 0) << built.err;
  EXPECT_THAT(built.err, HasSubstr("building '"));
  EXPECT_THAT(built.out, HasSubstr(Caches().paths.at("pending")));
}

// ---- caching and upstream failures ---------------------------------------------------------------

class GatewayCacheTest : public GatewayTestBase {};

TEST_F(GatewayCacheTest, UpstreamAnswersAreCachedForTheirTtl) {
  const std::string cache = CopyCache(Caches().none_dir);
  StartNode("file://" + cache, "positive_ttl = 600\nnegative_ttl = 60\n");
  const consensus::PathInfo hello = ClaimOf("hello", cache);
  Attest(hello, federation_.alice);
  Attest(hello, federation_.bob);
  const std::string hello_file = cache + "/" + HashPart(hello.path.full()) + ".narinfo";
  const std::string hello_text = ReadFileOrDie(hello_file);
  ASSERT_EQ(NarInfo("hello").status, 200);
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 1u);

  // The upstream loses it: the gateway keeps the answer until positive_ttl passes.
  std::filesystem::remove(hello_file);
  Advance(absl::Seconds(599));
  EXPECT_EQ(NarInfo("hello").status, 200);
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 1u);
  Advance(absl::Seconds(2));
  EXPECT_EQ(NarInfo("hello").status, 404);
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 2u);

  // It comes back: the negative answer holds for negative_ttl.
  WriteFileOrDie(hello_file, hello_text);
  Advance(absl::Seconds(59));
  EXPECT_EQ(NarInfo("hello").status, 404);
  Advance(absl::Seconds(2));
  EXPECT_EQ(NarInfo("hello").status, 200);
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 3u);
}

TEST_F(GatewayCacheTest, ABuilderExcludedByAMaintainerNoLongerCountsForCachedAnswers) {
  const std::string cache = CopyCache(Caches().none_dir);
  StartNode("file://" + cache, "positive_ttl = 600\n");
  const consensus::PathInfo hello = ClaimOf("hello", cache);
  Attest(hello, federation_.alice);
  Attest(hello, federation_.carol);
  ASSERT_EQ(NarInfo("hello").status, 200);  // now cached

  // carol is caught lying about another path and excluded by a maintainer.
  const consensus::PathInfo good = testing::TestClaim("elsewhere", "good");
  const consensus::PathInfo evil = testing::TestClaim("elsewhere", "evil");
  Attest(good, federation_.alice);
  Attest(evil, federation_.carol);
  std::vector<std::string> fingerprints = {good.Fingerprint(), evil.Fingerprint()};
  std::sort(fingerprints.begin(), fingerprints.end());
  auto note = consensus::SignResolution(consensus::Resolution{.dispute_id = consensus::DisputeId(good.path),
                                                              .subject = good.path,
                                                              .outcome = consensus::ResolutionOutcome::kMalicious,
                                                              .fingerprints = fingerprints,
                                                              .builders = {"carol-builder-1"},
                                                              .time_unix = now_.load(),
                                                              .note = "caught"},
                                        federation_.maintainer);
  ASSERT_TRUE(note.ok()) << note.status();
  v1::ResolveDisputeRequest request;
  request.set_signed_statement(note->Serialize());
  v1::ResolveDisputeResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 30s);
  grpc::Status status = v1::Disputes::NewStub(node_->InProcessChannel())->ResolveDispute(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // Only alice counts for hello now: PENDING, so the cached narinfo is no longer served.
  EXPECT_EQ(NarInfo("hello").status, 404);
}

TEST_F(GatewayCacheTest, AnAdoptedPolicyUpdateDropsEveryCachedVerdict) {
  const std::string cache = CopyCache(Caches().none_dir);
  StartNode("file://" + cache, "positive_ttl = 600\n");
  const consensus::PathInfo hello = ClaimOf("hello", cache);
  Attest(hello, federation_.alice);
  Attest(hello, federation_.bob);
  ASSERT_EQ(NarInfo("hello").status, 200);  // now cached

  // bob's key leaks: a signed update revokes it.
  const consensus::PolicyLink link = testing::ApprovedLink(
      testing::SuccessorToml(federation_.MakePolicy(), federation_.PolicyTomlRevokingBob()), {&federation_.maintainer});
  absl::StatusOr<PolicyBook::Adopted> adopted = node_->policy().Adopt(link, "", now_.load());
  ASSERT_TRUE(adopted.ok()) << adopted.status();

  // Only alice counts for hello now: the cached narinfo is no longer served.
  EXPECT_EQ(NarInfo("hello").status, 404);
}

TEST_F(GatewayCacheTest, APendingReasonUnderAThresholdQuorumSaysWhatItStillNeeds) {
  const std::string cache = CopyCache(Caches().none_dir);
  StartNode("file://" + cache);
  // The federation moves to "alice-ci and one of the independent operators".
  const std::string body = absl::StrCat(
      "[quorum]\nthreshold = 2\nmembers = [\"alice-ci\", \"independent\"]\n",
      "[[group]]\nname = \"independent\"\nthreshold = 1\nmembers = [\"bob-labs\", \"carol-home\"]\n",
      "[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", federation_.alice.public_key().ToString(), "\"]\n",
      "[[operator]]\nname = \"bob-labs\"\nbuilders = [\"", federation_.bob.public_key().ToString(), "\"]\n",
      "[[operator]]\nname = \"carol-home\"\nbuilders = [\"", federation_.carol.public_key().ToString(), "\"]\n",
      "[[maintainer]]\nkey = \"", federation_.maintainer.public_key().ToString(), "\"\n");
  const consensus::PolicyLink link = testing::ApprovedLink(
      testing::SuccessorToml(*node_->policy().current(), body), {&federation_.maintainer});
  absl::StatusOr<PolicyBook::Adopted> adopted = node_->policy().Adopt(link, "", now_.load());
  ASSERT_TRUE(adopted.ok()) << adopted.status();

  Attest(ClaimOf("hello", cache), federation_.alice);
  const HttpAnswer pending = NarInfo("hello");
  EXPECT_EQ(pending.status, 404);
  EXPECT_THAT(pending.body, HasSubstr("is PENDING (rule default, needs 2 of (alice-ci, independent); independent = 1 "
                                      "of (bob-labs, carol-home): "));
  EXPECT_THAT(pending.body, HasSubstr("1 of 2 needed"));
  EXPECT_THAT(pending.body, HasSubstr("independent"));
  EXPECT_THAT(pending.body, ::testing::Not(HasSubstr("of 0 operators")));

  // Confirmed once an independent operator agrees.
  Attest(ClaimOf("hello", cache), federation_.carol);
  EXPECT_EQ(NarInfo("hello").status, 200);
}

TEST_F(GatewayCacheTest, TheTableIsBounded) {
  const std::string cache = CopyCache(Caches().none_dir);
  StartNode("file://" + cache, "cache_entries = 10\n");
  for (int i = 0; i < 40; ++i) {
    const consensus::StorePath path = testing::TestStorePath(absl::StrCat("gw-missing-", i));
    auto answer = HttpGet(port(), "/" + std::string(path.hash_part()) + ".narinfo");
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->status, 404);
    EXPECT_LE(node_->gateway()->stats().entries, 10u);
  }
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 40u);
}

TEST_F(GatewayCacheTest, AnUpstreamThatIsDownGets404sUntilItIsBack) {
  const std::string cache = CopyCache(Caches().none_dir);
  const int dead_port = ClosedPort();
  StartNode(absl::StrCat("http://127.0.0.1:", dead_port), "failure_ttl = 5\nupstream_timeout = 2\n");
  const consensus::PathInfo hello = ClaimOf("hello", cache);
  Attest(hello, federation_.alice);
  Attest(hello, federation_.bob);

  // Nix falls back to building on a narinfo 404 (an error status would fail the build without --fallback),
  // and treats a NAR 404 as a substitute that is gone.
  HttpAnswer narinfo = NarInfo("hello");
  EXPECT_EQ(narinfo.status, 404);
  EXPECT_THAT(narinfo.body, HasSubstr("upstream cache is unavailable"));
  auto upstream = consensus::ParseNarInfo(ReadFileOrDie(cache + "/" + HashPart(hello.path.full()) + ".narinfo"), "u");
  ASSERT_TRUE(upstream.ok());
  auto nar = HttpGet(port(), "/" + upstream->url);
  ASSERT_TRUE(nar.has_value());
  EXPECT_EQ(nar->status, 404);
  EXPECT_EQ(HttpGet(port(), "/nix-cache-info")->status, 200) << "the cache itself stays usable";

  // The upstream comes up on that port; after failure_ttl the path is served.
  python_ =
      std::make_unique<Daemon>(std::vector<std::string>{"python3", "-u", "-m", "http.server", std::to_string(dead_port),
                                                        "--bind", "127.0.0.1", "--directory", cache},
                               dir_.File("python-late"));
  ASSERT_TRUE(python_->WaitForLine("Serving HTTP on", 30000ms).has_value()) << python_->Stderr();
  EXPECT_EQ(NarInfo("hello").status, 404) << "the failure is believed for failure_ttl";
  Advance(absl::Seconds(6));
  EXPECT_EQ(NarInfo("hello").status, 200);
  auto relayed = HttpGet(port(), "/" + upstream->url);
  ASSERT_TRUE(relayed.has_value());
  EXPECT_EQ(relayed->status, 200);
  EXPECT_TRUE(relayed->body == ReadFileOrDie(cache + "/" + upstream->url));
}

// An upstream that answers with errors, or not at all, played by a server the test controls.
TEST_F(GatewayCacheTest, ErrorsAndSilenceFromTheUpstreamGive404) {
  const std::string cache = CopyCache(Caches().none_dir);
  std::atomic<int> requests{0};
  std::atomic<bool> hang{false};
  absl::Notification release;
  HttpRouter router;
  router.Prefix("/", [&](const HttpRequest&) {
    ++requests;
    if (!hang.load()) return HttpReply::Now(HttpResponse::Text(500, "upstream is broken"));
    return HttpReply::Later([&] {
      release.WaitForNotification();
      return HttpResponse::Text(502, "late");
    });
  });
  auto fake = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
  ASSERT_TRUE(fake.ok());
  StartNode(absl::StrCat("http://127.0.0.1:", (*fake)->port()), "failure_ttl = 0\nupstream_timeout = 1\n");
  const consensus::PathInfo hello = ClaimOf("hello", cache);
  Attest(hello, federation_.alice);
  Attest(hello, federation_.bob);

  EXPECT_EQ(NarInfo("hello").status, 404);
  EXPECT_EQ(HttpGet(port(), "/nar/abc.nar")->status, 404);
  EXPECT_GE(requests.load(), 2);

  hang = true;  // now it accepts and never answers within the timeout
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(NarInfo("hello").status, 404);
  EXPECT_EQ(HttpGet(port(), "/nar/abc.nar")->status, 404);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s) << "bounded by upstream_timeout";
  release.Notify();
  EXPECT_EQ(HttpGet(port(), "/healthz")->status, 200);
}

TEST_F(GatewayCacheTest, ConcurrentMissesShareOneUpstreamFetch) {
  std::atomic<int> requests{0};
  absl::Notification release;
  HttpRouter router;
  router.Prefix("/", [&](const HttpRequest&) {
    ++requests;
    return HttpReply::Later([&] {
      release.WaitForNotification();
      return HttpResponse::Text(404, "no");
    });
  });
  auto fake = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
  ASSERT_TRUE(fake.ok());
  StartNode(absl::StrCat("http://127.0.0.1:", (*fake)->port()));
  const std::string target = "/" + HashPart(Caches().paths.at("hello")) + ".narinfo";
  std::vector<std::unique_ptr<HttpTestClient>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<HttpTestClient>(port()));
    ASSERT_TRUE(clients.back()->SendRaw("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  ASSERT_TRUE(PollUntil([&] { return requests.load() >= 1; }, 10s));
  release.Notify();
  for (auto& client : clients) {
    auto answer = client->ReadAnswer();
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->status, 404);
  }
  EXPECT_EQ(requests.load(), 1);
  EXPECT_EQ(node_->gateway()->stats().upstream_fetches, 1u);
}

TEST_F(GatewayCacheTest, OpenRefusesAMissingUpstreamDirectory) {
  const std::string config_path =
      WriteNodeDir(dir_, federation_, "\n[gateway]\nupstream = \"file:///no/such/attest/cache\"\n");
  auto config = LoadNodeConfig(config_path);
  ASSERT_TRUE(config.ok()) << config.status();
  auto node = Node::Open(*config);
  ASSERT_FALSE(node.ok());
  EXPECT_EQ(node.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("/no/such/attest/cache"));
  EXPECT_THAT(std::string(node.status().message()), HasSubstr("node.toml"));
}

TEST(GatewayNarUrlTest, KeepsNarFilesAndRefusesTheRest) {
  EXPECT_EQ(GatewayNarUrl("nar/abc.nar.xz", "http://up"), "nar/abc.nar.xz");
  EXPECT_EQ(GatewayNarUrl("http://up/nar/abc.nar", "http://up"), "nar/abc.nar");
  EXPECT_EQ(GatewayNarUrl("https://mirror.example/x/abc.nar", "http://up"), "https://mirror.example/x/abc.nar");
  EXPECT_EQ(GatewayNarUrl("nar/../secret", "http://up"), std::nullopt);
  EXPECT_EQ(GatewayNarUrl("other/abc.nar", "http://up"), std::nullopt);
  EXPECT_EQ(GatewayNarUrl("", "http://up"), std::nullopt);
  EXPECT_EQ(GatewayNarUrl("file:///etc/passwd", "http://up"), std::nullopt);
}

}  // namespace
}  // namespace attest::server
