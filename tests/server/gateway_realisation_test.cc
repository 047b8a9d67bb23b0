// server/gateway: realisations of content-addressed derivations. A real SQLite store holds what three
// operators' builders signed, the gateway serves it over a real HTTP server on loopback, and the
// upstream is a file:// binary cache holding the narinfo real Nix 2.8 wrote for a CA output
// (reference run f_ca_derivation: ca-top, CA: fixed:r:sha256:..., referring to ca-base).
#include "server/gateway.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/narinfo.h"
#include "consensus/realisation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/policy_book.h"
#include "server/upstream.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/server/http_test_client.h"
#include "tests/server/server_test_util.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::Federation;
using ::attest::testing::HttpAnswer;
using ::attest::testing::HttpGet;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::testing::HasSubstr;

// From the reference run (Nix 2.8.0, `nix copy` of ca-top.drv into a file:// cache).
constexpr char kTopDrvHash[] = "7f44388f57da34719cecaa95bd2dd9cb6cbe84f66510af9aa2709cfef802ea24";
constexpr char kBaseKey[] = "sha256:881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a!out";
constexpr char kTopDrv[] = "/nix/store/ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top.drv";
constexpr char kTopPath[] = "/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top";
constexpr char kBasePath[] = "/nix/store/n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base";
constexpr char kTopHashPart[] = "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay";
constexpr char kTopCa[] = "fixed:r:sha256:1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2";
constexpr char kTopNarInfo[] =
    "StorePath: /nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\n"
    "URL: nar/1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2.nar\n"
    "Compression: none\n"
    "FileHash: sha256:1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2\n"
    "FileSize: 184\n"
    "NarHash: sha256:1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2\n"
    "NarSize: 184\n"
    "References: n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\n"
    "Deriver: ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top.drv\n"
    "CA: fixed:r:sha256:1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2\n";

consensus::StorePath PathOf(const std::string& text) {
  auto path = consensus::StorePath::Parse(text);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

class GatewayRealisationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitCurlOnce();
    auto store = storage::SqliteAttestationStore::Open(dir_.File("attest.db"), storage::SqliteOptions{});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    std::filesystem::create_directories(dir_.File("cache"));
    WriteFileOrDie(dir_.File("cache/nix-cache-info"), "StoreDir: /nix/store\n");
    WriteNarInfo(kTopNarInfo);
    StartGateway();
  }
  void TearDown() override { StopGateway(); }

  void StartGateway() {
    auto upstream = OpenUpstream("file://" + dir_.File("cache"), UpstreamOptions{});
    ASSERT_TRUE(upstream.ok()) << upstream.status();
    GatewayOptions options;
    options.metrics = &metrics_;
    gateway_ = std::make_unique<Gateway>(book_, store_.get(), federation_.node_key, *std::move(upstream),
                                         [] { return testing::FixedNow(); }, options);
    HttpRouter router;
    gateway_->AddRoutes(router);
    auto server = HttpServer::Start(ListenAddress{.host = "127.0.0.1", .port = 0}, std::move(router));
    ASSERT_TRUE(server.ok()) << server.status();
    http_ = *std::move(server);
  }
  void StopGateway() {
    if (gateway_) gateway_->Stop();
    if (http_) http_->Stop();
    http_.reset();
    gateway_.reset();
  }

  void WriteNarInfo(const std::string& text) {
    WriteFileOrDie(dir_.File(absl::StrCat("cache/", kTopHashPart, ".narinfo")), text);
  }

  // ca-top's realisation in the 2.8 format (its dependent realisation is ca-base's), mapping to `out`.
  consensus::Realisation TopRealisation(const std::string& out = kTopPath) {
    auto key = consensus::RealisationKey::FromDrvHash(kTopDrvHash, "out");
    EXPECT_TRUE(key.ok()) << key.status();
    auto claim = consensus::Realisation::Create(*key, PathOf(out), {{kBaseKey, PathOf(kBasePath)}});
    EXPECT_TRUE(claim.ok()) << claim.status();
    return *claim;
  }
  // The same output in the 2.35 format (keyed by the .drv).
  consensus::Realisation TopBuildTrace(const std::string& out = kTopPath) {
    auto key = consensus::RealisationKey::FromDrvPath(PathOf(kTopDrv), "out");
    EXPECT_TRUE(key.ok()) << key.status();
    auto claim = consensus::Realisation::Create(*key, PathOf(out));
    EXPECT_TRUE(claim.ok()) << claim.status();
    return *claim;
  }
  // ca-top's path claim as its narinfo states it.
  consensus::PathInfo TopClaim() {
    auto narinfo = consensus::ParseNarInfo(kTopNarInfo, "ca-top");
    EXPECT_TRUE(narinfo.ok()) << narinfo.status();
    return narinfo->claim;
  }

  // Stores realisation attestations as the ingest pipeline does, then tells the gateway.
  void AttestRealisation(const consensus::Realisation& claim, const std::vector<const consensus::SecretKey*>& keys) {
    storage::WriteBatch batch;
    for (const consensus::SecretKey* key : keys) {
      batch.realisations.push_back(storage::StoredRealisation{.attestation = consensus::SignRealisation(claim, *key),
                                                              .received_unix = testing::kTestNow,
                                                              .observed_key = std::nullopt,
                                                              .origin = ""});
    }
    auto written = store_->Write(batch);
    ASSERT_TRUE(written.ok()) << written.status();
    const std::vector<consensus::Realisation> claims{claim};
    gateway_->RealisationsChanged(claims);
  }
  void AttestPath(const consensus::PathInfo& claim, const std::vector<const consensus::SecretKey*>& keys) {
    storage::WriteBatch batch;
    for (const consensus::SecretKey* key : keys) {
      batch.attestations.push_back(storage::StoredAttestation{.attestation = consensus::SignAttestation(claim, *key),
                                                              .received_unix = testing::kTestNow,
                                                              .observed_key = std::nullopt,
                                                              .origin = ""});
    }
    auto written = store_->Write(batch);
    ASSERT_TRUE(written.ok()) << written.status();
    const std::vector<consensus::StorePath> paths{claim.path};
    gateway_->PathsChanged(paths);
  }

  HttpAnswer Get(const std::string& target) {
    auto answer = HttpGet(http_->port(), target);
    EXPECT_TRUE(answer.has_value()) << target;
    return answer.value_or(HttpAnswer{});
  }
  std::string RealisationTarget() { return absl::StrCat("/realisations/sha256:", kTopDrvHash, "!out.doi"); }
  std::string BuildTraceTarget() { return "/build-trace-v2/ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top.drv/out.doi"; }

  // Every signature of `file` verifies over its claim's fingerprint with the key its name gives: the
  // builders' from the federation, the node's own. Returns the key names in file order.
  std::vector<std::string> VerifiedSigners(const consensus::RealisationFile& file) {
    const std::map<std::string, const consensus::SecretKey*> keys = {
        {"alice-builder-1", &federation_.alice}, {"bob-builder-1", &federation_.bob},
        {"carol-builder-1", &federation_.carol}, {"outsider-1", &federation_.outsider},
        {"node-1", &federation_.node_key}};
    std::vector<std::string> names;
    for (const consensus::Signature& signature : file.signatures) {
      auto it = keys.find(signature.key_name);
      if (it == keys.end()) {
        ADD_FAILURE() << "signature by an unknown key " << signature.key_name;
        continue;
      }
      const consensus::RealisationAttestation attestation{.claim = file.claim, .signature = signature, .metadata = {}};
      EXPECT_TRUE(consensus::VerifyRealisation(attestation, it->second->public_key()).ok()) << signature.key_name;
      names.push_back(signature.key_name);
    }
    return names;
  }

  uint64_t Requests(const std::string& route, const std::string& answer) {
    const std::string needle =
        absl::StrCat("attest_gateway_requests_total{route=\"", route, "\",answer=\"", answer, "\"} ");
    const std::string text = metrics_.Render();
    const size_t at = text.find(needle);
    if (at == std::string::npos) return 0;
    return std::stoull(text.substr(at + needle.size()));
  }

  TempDir dir_;
  Federation federation_;
  PolicyBook book_{federation_.MakePolicy(2)};
  MetricsRegistry metrics_;
  std::unique_ptr<storage::SqliteAttestationStore> store_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(GatewayRealisationTest, ConfirmedRealisationServedOnBothEndpointsWithEverySignatureVerifying) {
  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.bob, &federation_.carol});
  AttestRealisation(TopBuildTrace(), {&federation_.alice, &federation_.bob, &federation_.carol});

  for (const std::string& target :
       {RealisationTarget(), absl::StrCat("/realisations/sha256%3A", kTopDrvHash, "%21out.doi"), BuildTraceTarget()}) {
    SCOPED_TRACE(target);
    HttpAnswer answer = Get(target);
    ASSERT_EQ(answer.status, 200) << answer.body;
    EXPECT_EQ(answer.Header("content-type"), "application/json");
    auto file = consensus::ParseRealisationFile(answer.body);
    ASSERT_TRUE(file.ok()) << file.status() << "\n" << answer.body;
    EXPECT_EQ(file->claim, target == BuildTraceTarget() ? TopBuildTrace() : TopRealisation());
    EXPECT_EQ(VerifiedSigners(*file),
              (std::vector<std::string>{"alice-builder-1", "bob-builder-1", "carol-builder-1", "node-1"}));
    // What Nix reads is what it would write for this realisation and these signatures.
    EXPECT_EQ(answer.body, consensus::FormatRealisationFile(file->claim, file->signatures));
  }
  // A second request is a cache hit with the same answer.
  const uint64_t hits = gateway_->stats().cache_hits;
  EXPECT_EQ(Get(RealisationTarget()).status, 200);
  EXPECT_EQ(gateway_->stats().cache_hits, hits + 1);
  EXPECT_EQ(Requests("realisation", "served"), 4u);
}

TEST_F(GatewayRealisationTest, OnlyTheAgreeingSideSignsAndExcludedOutsidersDoNotCount) {
  // Two operators agree (quorum 2); a key outside the policy signed too and must not appear.
  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.carol});
  storage::WriteBatch batch;
  batch.realisations.push_back(
      storage::StoredRealisation{.attestation = consensus::SignRealisation(TopRealisation(), federation_.outsider),
                                 .received_unix = testing::kTestNow,
                                 .observed_key = federation_.outsider.public_key(),
                                 .origin = ""});
  ASSERT_TRUE(store_->Write(batch).ok());
  const std::vector<consensus::Realisation> claims{TopRealisation()};
  gateway_->RealisationsChanged(claims);

  HttpAnswer answer = Get(RealisationTarget());
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto file = consensus::ParseRealisationFile(answer.body);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(VerifiedSigners(*file), (std::vector<std::string>{"alice-builder-1", "carol-builder-1", "node-1"}));
}

TEST_F(GatewayRealisationTest, UnknownPendingAndDisputedAre404WithTheReason) {
  HttpAnswer unknown = Get(RealisationTarget());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.body, HasSubstr(absl::StrCat("realisation sha256:", kTopDrvHash, "!out is UNKNOWN")));
  HttpAnswer unknown_trace = Get(BuildTraceTarget());
  EXPECT_EQ(unknown_trace.status, 404);
  EXPECT_THAT(unknown_trace.body, HasSubstr(absl::StrCat("realisation ", kTopDrv, "^out is UNKNOWN")));

  // One operator: PENDING, saying what the quorum still needs (the cached UNKNOWN was dropped).
  AttestRealisation(TopRealisation(), {&federation_.alice});
  HttpAnswer pending = Get(RealisationTarget());
  EXPECT_EQ(pending.status, 404);
  EXPECT_THAT(pending.body, HasSubstr("is PENDING (rule default, needs "));
  EXPECT_THAT(pending.body, HasSubstr("alice-ci"));

  // Another operator maps the same output to another path: DISPUTED.
  AttestRealisation(TopRealisation("/nix/store/2xnlz1767m56p96dy4ji1k3qqzdyfi0l-ca-top"), {&federation_.bob});
  HttpAnswer disputed = Get(RealisationTarget());
  EXPECT_EQ(disputed.status, 404);
  EXPECT_THAT(disputed.body, HasSubstr(absl::StrCat("realisation sha256:", kTopDrvHash, "!out is DISPUTED")));
  // Still DISPUTED when a third operator joins one side: no 200, ever, for a disputed output.
  AttestRealisation(TopRealisation(), {&federation_.carol});
  EXPECT_EQ(Get(RealisationTarget()).status, 404);

  EXPECT_EQ(Requests("realisation", "unknown"), 2u);
  EXPECT_EQ(Requests("realisation", "pending"), 1u);
  EXPECT_EQ(Requests("realisation", "disputed"), 2u);
}

TEST_F(GatewayRealisationTest, MalformedRealisationPathsAre400WithWhatIsWrong) {
  const std::string hex = kTopDrvHash;
  for (const std::string& target : {
           absl::StrCat("/realisations/sha256:", hex.substr(1), "!out.doi"),     // 63 digits
           absl::StrCat("/realisations/sha256:", hex, ".doi"),                   // no output
           absl::StrCat("/realisations/md5:", hex, "!out.doi"),                  // another algorithm
           absl::StrCat("/realisations/sha256:", hex, "!out"),                   // no .doi
           absl::StrCat("/realisations/sha256:", hex, "!out^out.doi"),           // '!' and '^' mixed
           std::string("/build-trace-v2/ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top/out.doi"),  // not a .drv
           std::string("/build-trace-v2/ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top.drv/.doi"),  // no output
       }) {
    SCOPED_TRACE(target);
    HttpAnswer answer = Get(target);
    EXPECT_EQ(answer.status, 400);
    // The parser's reason, naming the path, then the two forms that are understood.
    EXPECT_THAT(answer.body, ::testing::StartsWith("realisation cache path "));
    EXPECT_THAT(answer.body, HasSubstr(target.substr(1)));
    EXPECT_THAT(answer.body, HasSubstr(" (expected /realisations/sha256:<64 lower-case hex>!<output>.doi or"));
  }
  EXPECT_EQ(Requests("realisation", "bad_path"), 7u);
}

TEST_F(GatewayRealisationTest, CaPathNarInfoServedOnItsConfirmedRealisationThoughItsOwnTallyIsPending) {
  AttestPath(TopClaim(), {&federation_.alice});
  HttpAnswer before = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(before.status, 404);
  EXPECT_THAT(before.body, HasSubstr("is PENDING"));

  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.bob});
  HttpAnswer answer = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto narinfo = consensus::ParseNarInfo(answer.body, "gateway");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  EXPECT_EQ(narinfo->claim, TopClaim());
  EXPECT_EQ(narinfo->ca, kTopCa);
  // The path's one signer and the node, each over the path's fingerprint.
  ASSERT_EQ(narinfo->signatures.size(), 2u);
  auto builder = consensus::Signature::Parse(narinfo->signatures[0]);
  auto node = consensus::Signature::Parse(narinfo->signatures[1]);
  ASSERT_TRUE(builder.ok() && node.ok()) << answer.body;
  EXPECT_EQ(builder->key_name, "alice-builder-1");
  EXPECT_TRUE(federation_.alice.public_key().Verify(TopClaim().Fingerprint(), *builder).ok());
  EXPECT_EQ(node->key_name, "node-1");
  EXPECT_TRUE(federation_.node_key.public_key().Verify(TopClaim().Fingerprint(), *node).ok());
  EXPECT_EQ(Requests("narinfo", "served_ca"), 1u);

  // The realisation becomes DISPUTED: the narinfo served on it is withdrawn at once.
  AttestRealisation(TopRealisation("/nix/store/2xnlz1767m56p96dy4ji1k3qqzdyfi0l-ca-top"), {&federation_.carol});
  HttpAnswer after = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(after.status, 404);
  EXPECT_THAT(after.body, HasSubstr("is PENDING"));
}

TEST_F(GatewayRealisationTest, CaPathNarInfoNotServedWhileItsRealisationIsPending) {
  AttestPath(TopClaim(), {&federation_.alice});
  AttestRealisation(TopRealisation(), {&federation_.alice});
  HttpAnswer answer = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(answer.status, 404);
  EXPECT_THAT(answer.body, HasSubstr(absl::StrCat(kTopPath, " is PENDING")));
}

TEST_F(GatewayRealisationTest, CaPathNarInfoNotServedWhenOnlyAnOperatorOutsideTheAgreeingSetSignedThePath) {
  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.bob});
  AttestPath(TopClaim(), {&federation_.carol});
  HttpAnswer answer = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(answer.status, 404);
  EXPECT_THAT(answer.body, HasSubstr(absl::StrCat(kTopPath, " is PENDING")));
  EXPECT_EQ(Requests("narinfo", "served_ca"), 0u);
}

TEST_F(GatewayRealisationTest, CaPathNarInfoNotServedWhenItsCaFieldDoesNotGiveThePath) {
  // The upstream narinfo claims another content address: the path does not verify itself, so its own
  // quorum is needed.
  std::string tampered = kTopNarInfo;
  tampered.replace(tampered.find(kTopCa), std::string(kTopCa).size(),
                   "fixed:r:sha256:0cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2");
  WriteNarInfo(tampered);
  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.bob});
  AttestPath(TopClaim(), {&federation_.alice});
  HttpAnswer answer = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(answer.status, 404);
  EXPECT_THAT(answer.body, HasSubstr("CA: field does not give its store path"));
}

TEST_F(GatewayRealisationTest, DisputedCaPathIsNotServedOnItsRealisation) {
  AttestRealisation(TopRealisation(), {&federation_.alice, &federation_.bob});
  AttestPath(TopClaim(), {&federation_.alice});
  consensus::PathInfo other = TopClaim();
  other.nar_size += 1;
  AttestPath(other, {&federation_.bob});
  HttpAnswer answer = Get(absl::StrCat("/", kTopHashPart, ".narinfo"));
  EXPECT_EQ(answer.status, 404);
  EXPECT_THAT(answer.body, HasSubstr("is DISPUTED"));
}

TEST(ContentAddressGivesPathTest, RealNix28CaOutputGivesItsPathAndNothingElseDoes) {
  auto narinfo = consensus::ParseNarInfo(kTopNarInfo, "ca-top");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  EXPECT_TRUE(ContentAddressGivesPath(kTopCa, narinfo->claim));
  EXPECT_FALSE(ContentAddressGivesPath("fixed:r:sha256:0cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2",
                                       narinfo->claim));
  EXPECT_FALSE(ContentAddressGivesPath("fixed:sha256:1cm31ibsnx335lcyqjnsz6vs4knbg5caliddf105prhb5qdvy2l2",
                                       narinfo->claim));
  EXPECT_FALSE(ContentAddressGivesPath("", narinfo->claim));
  // Without its reference the same hash names another path.
  consensus::PathInfo no_references = narinfo->claim;
  no_references.references.clear();
  EXPECT_FALSE(ContentAddressGivesPath(kTopCa, no_references));
}

}  // namespace
}  // namespace attest::server
