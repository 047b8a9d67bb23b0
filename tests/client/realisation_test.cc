// Realisations on the builder side, with real Nix 2.8 and the experimental feature ca-derivations: a
// chain of floating content-addressed derivations (base, and top over base) built with attest-hook as
// post-build-hook. The hook spools the outputs Nix 2.8.0 does not name (OUT_PATHS empty for base and
// for the resolved top); push computes the realisation ids Nix registered (compared with `nix
// realisation info --json`), signs them in both formats and submits them with the path attestations;
// `attest status` and `attest verify` with realisation keys (a tampered answer is caught); `attest
// import` of a .doi `nix copy` wrote (Nix 2.8 format) and of one made here (Nix 2.35 format).
// The derivations are those of the reference run f_ca_derivation.sh (Nix 2.8.0, ca-derivations).
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "client/cli.h"
#include "client/command.h"
#include "client/pusher.h"
#include "client/spool.h"
#include "client/status_json.h"
#include "client/status_verify.h"
#include "consensus/policy.h"
#include "consensus/realisation.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "server/node.h"
#include "server/node_config.h"
#include "tests/client/nix_test_env.h"
#include "tests/client/push_test_util.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::FakePushNode;
using ::attest::testing::FakePushNodes;
using ::attest::testing::NixTestEnv;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::RunResult;
using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using nlohmann::json;

constexpr char kExpression[] = R"(
let
  ca = name: cmd: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" cmd ];
    __contentAddressed = true;
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
  };
in rec {
  base = ca "ca-base" "echo ca-base-content > $out";
  top = ca "ca-top" "echo ${base} > $out; /bin/cat ${base} >> $out";
}
)";

std::string Trimmed(std::string text) { return std::string(absl::StripAsciiWhitespace(text)); }

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

// One Nix store with base and top built (and signed by Nix with the builder key) through the hook.
class RealisationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    nix_ = new NixTestEnv(*dir_, std::string("experimental-features = nix-command ca-derivations\n"
                                             "post-build-hook = ") +
                                     ATTEST_HOOK_BIN + "\n");
    nix_->Set("ATTEST_BUILDER_CONFIG", dir_->File("builder.toml"));
    WriteFileOrDie(dir_->File("builder.sec"), TestKey("builder-1").ExportText());
    WriteFileOrDie(dir_->File("builder.toml"), "key = \"builder.sec\"\nspool = \"spool\"\nnodes = [\"node-a:7700\"]\n");
    WriteFileOrDie(dir_->File("ca.nix"), kExpression);
    base_drv_ = new std::string(nix_->Instantiate(Store(), dir_->File("ca.nix"), "base"));
    top_drv_ = new std::string(nix_->Instantiate(Store(), dir_->File("ca.nix"), "top"));
    RunResult built = nix_->Nix({"nix-build", "--store", Store(), "--option", "secret-key-files",
                                 dir_->File("builder.sec"), dir_->File("ca.nix"), "-A", "top", "--no-out-link"});
    ASSERT_EQ(built.exit_code, 0) << built.err;
    build_log_ = new std::string(built.err);
    top_out_ = new std::string(Trimmed(built.out));
    RunResult info = nix_->Nix({"nix", "realisation", "info", "--store", Store(), "--json", *base_drv_, *top_drv_});
    ASSERT_EQ(info.exit_code, 0) << info.err;
    nix_realisations_ = new json(json::parse(info.out));
    // The spool as the hook left it, before any push.
    auto spool = Spool::Open(dir_->File("spool"));
    ASSERT_TRUE(spool.ok()) << spool.status();
    auto listing = spool->List();
    ASSERT_TRUE(listing.ok()) << listing.status();
    spooled_ = new std::vector<SpoolEntry>(listing->entries);
    std::filesystem::copy(dir_->File("spool"), dir_->File("spool-as-hooked"),
                          std::filesystem::copy_options::recursive);
  }
  static void TearDownTestSuite() {
    delete spooled_;
    delete nix_realisations_;
    delete top_out_;
    delete build_log_;
    delete top_drv_;
    delete base_drv_;
    delete nix_;
    delete dir_;
  }

  static std::string Store() { return nix_->Store("builder"); }

  // The 2.8 realisation Nix registered with this output path, from `nix realisation info --json`.
  static const json* NixRealisationOf(const std::string& out_path) {
    for (const json& r : *nix_realisations_) {
      if ("/nix/store/" + r["outPath"].get<std::string>() == out_path) return &r;
    }
    return nullptr;
  }
  static std::string BaseOut() {
    for (const json& r : *nix_realisations_) {
      const std::string path = "/nix/store/" + r["outPath"].get<std::string>();
      if (path != *top_out_) return path;
    }
    return "";
  }

  // A fresh copy of the spool the hook wrote, pushed to `nodes` ("node-a:7700").
  PushReport PushFreshSpool(FakePushNodes& nodes, const std::string& name) {
    return PushFreshSpool(nodes.Connector(), "node-a:7700", name);
  }
  PushReport PushFreshSpool(NodeConnector connect, const std::string& address, const std::string& name) {
    std::filesystem::copy(dir_->File("spool-as-hooked"), dir_->File(name), std::filesystem::copy_options::recursive);
    auto spool = Spool::Open(dir_->File(name));
    EXPECT_TRUE(spool.ok());
    PushOptions options;
    options.nodes = {address};
    options.give_up_after = absl::Seconds(20);
    Pusher pusher(*std::move(spool), TestKey("builder-1"), options, std::move(connect), PushClock::Real());
    return pusher.PushOnce();
  }

  CliResult Cli(FakePushNodes& nodes, std::vector<std::string> args) { return Cli(nodes.Connector(), args); }
  CliResult Cli(NodeConnector connect, std::vector<std::string> args) {
    std::istringstream in;
    std::ostringstream out, err;
    CommandEnv env{
        .in = in,
        .out = out,
        .err = err,
        .connect_node = std::move(connect),
        .random_bytes = [](std::span<uint8_t> bytes) { std::fill(bytes.begin(), bytes.end(), 7); },
        .default_node = "",
        .env_var = [](std::string_view) -> std::optional<std::string> { return std::nullopt; },
    };
    CliResult r;
    r.code = RunCli(args, env);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  static TempDir* dir_;
  static NixTestEnv* nix_;
  static std::string* base_drv_;
  static std::string* top_drv_;
  static std::string* top_out_;
  static std::string* build_log_;
  static json* nix_realisations_;
  static std::vector<SpoolEntry>* spooled_;
};

TempDir* RealisationTest::dir_ = nullptr;
NixTestEnv* RealisationTest::nix_ = nullptr;
std::string* RealisationTest::base_drv_ = nullptr;
std::string* RealisationTest::top_drv_ = nullptr;
std::string* RealisationTest::top_out_ = nullptr;
std::string* RealisationTest::build_log_ = nullptr;
json* RealisationTest::nix_realisations_ = nullptr;
std::vector<SpoolEntry>* RealisationTest::spooled_ = nullptr;

// Nix 2.8.0 runs the hook for base and for the resolved top with OUT_PATHS empty, and for the
// original top with OUT_PATHS set.
TEST_F(RealisationTest, TheHookSpoolsTheFloatingOutputsWithoutTheirPaths) {
  ASSERT_EQ(nix_realisations_->size(), 2u) << nix_realisations_->dump();
  std::map<std::string, std::string> path_by_drv;  // drv -> store path ("" when not known yet)
  for (const SpoolEntry& entry : *spooled_) {
    EXPECT_EQ(entry.record.output_name, "out");
    path_by_drv[entry.record.drv_path] = entry.record.store_path;
  }
  ASSERT_EQ(path_by_drv.size(), 3u) << *build_log_;
  EXPECT_EQ(path_by_drv.at(*base_drv_), "");
  EXPECT_EQ(path_by_drv.at(*top_drv_), *top_out_);
  // The third is the resolved top, another .drv with the same name.
  for (const auto& [drv, path] : path_by_drv) {
    if (drv == *base_drv_ || drv == *top_drv_) continue;
    EXPECT_THAT(drv, HasSubstr("-ca-top.drv"));
    EXPECT_EQ(path, "");
  }
  EXPECT_THAT(*build_log_, HasSubstr("takes its path from the realisation"));
}

TEST_F(RealisationTest, PushSignsTheRealisationsNixRegisteredInBothFormats) {
  FakePushNodes nodes;
  FakePushNode& node = nodes.Add("node-a:7700", TestKey("builder-1").public_key());
  const PushReport report = PushFreshSpool(nodes, "spool-push");
  for (const PushOutcome& o : report.outcomes) {
    EXPECT_TRUE(o.kind == OutcomeKind::kAccepted || o.kind == OutcomeKind::kAlreadyPresent)
        << o.path << ": " << o.message;
  }
  EXPECT_THAT(report.realisation_notes, IsEmpty());
  EXPECT_EQ(report.remaining, 0u);
  // The paths: both outputs, the floating ones found through their realisations.
  EXPECT_TRUE(node.stored.contains(*top_out_));
  EXPECT_TRUE(node.stored.contains(BaseOut()));
  EXPECT_THAT(report.delivered, ::testing::Contains(BaseOut()));

  // Every realisation `nix realisation info` shows was computed, signed and accepted, with the
  // fingerprint Nix signs (its JSON without the signatures: keys sorted, compact).
  for (const json& r : *nix_realisations_) {
    const std::string id = r["id"].get<std::string>();
    ASSERT_TRUE(node.stored_realisations.contains(id)) << id;
    json unsigned_realisation = r;
    unsigned_realisation.erase("signatures");
    const consensus::RealisationAttestation& ours = node.stored_realisations.at(id);
    EXPECT_EQ(ours.claim.Fingerprint(), unsigned_realisation.dump());
    EXPECT_TRUE(consensus::VerifyRealisation(ours, TestKey("builder-1").public_key()).ok());
    // Nix signed the same fingerprint with the same key: the same signature (Ed25519 is deterministic).
    EXPECT_EQ(ours.signature.ToString(), r["signatures"][0].get<std::string>());
  }
  // The Nix 2.35 form for each spooled derivation output, the resolved top included.
  for (const auto& [drv, out] : std::vector<std::pair<std::string, std::string>>{{*base_drv_, BaseOut()},
                                                                                 {*top_drv_, *top_out_}}) {
    const std::string key = drv + "^out";
    ASSERT_TRUE(node.stored_realisations.contains(key)) << key;
    EXPECT_EQ(node.stored_realisations.at(key).claim.out_path.full(), out);
    EXPECT_EQ(node.stored_realisations.at(key).metadata.deriver, drv);
  }
  // base, the resolved top and the original top: three Nix 2.8 realisations, three 2.35 ones.
  EXPECT_EQ(node.stored_realisations.size(), 6u);
  size_t realisation_outcomes = 0;
  for (const PushOutcome& o : report.outcomes) realisation_outcomes += consensus::RealisationKey::LooksLikeKey(o.path);
  EXPECT_EQ(realisation_outcomes, 6u);
}

// A node that rejects realisations keeps the record: it is acknowledged only with all its parts.
TEST_F(RealisationTest, ARecordIsAcknowledgedOnlyWithItsRealisations) {
  FakePushNodes nodes;
  nodes.Add("node-a:7700", TestKey("other-builder").public_key());  // verifies nothing we sign
  const PushReport report = PushFreshSpool(nodes, "spool-rejected");
  EXPECT_EQ(report.remaining, 3u);
  bool realisation_rejected = false;
  for (const PushOutcome& o : report.outcomes) {
    if (consensus::RealisationKey::LooksLikeKey(o.path) && o.kind == OutcomeKind::kRejected) realisation_rejected = true;
  }
  EXPECT_TRUE(realisation_rejected);
}

// Without realisations in the store (ca-derivations off where it was built), the floating record
// waits with a clear reason; a record with a path still sends its path attestation, with a note.
TEST_F(RealisationTest, WithoutItsRealisationARecordSaysWhy) {
  TempDir other;
  // The same store files, with a copy of its database without realisations.
  const std::string root = other.File("root");
  std::filesystem::create_directories(root + "/nix/var/nix/db");
  std::filesystem::create_symlink(Store() + "/nix/store", root + "/nix/store");
  for (const char* suffix : {"", "-wal"}) {
    const std::string from = Store() + "/nix/var/nix/db/db.sqlite" + suffix;
    if (std::filesystem::exists(from)) std::filesystem::copy_file(from, root + "/nix/var/nix/db/db.sqlite" + suffix);
  }
  {
    auto db = storage::sqlite::Connection::Open(root + "/nix/var/nix/db/db.sqlite",
                                                storage::sqlite::OpenMode::kReadWrite, absl::Seconds(5));
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Execute("DELETE FROM RealisationsRefs", "test").ok());
    ASSERT_TRUE((*db)->Execute("DELETE FROM Realisations", "test").ok());
  }
  auto spool = Spool::Open(other.File("spool"));
  ASSERT_TRUE(spool.ok());
  for (SpoolEntry entry : *spooled_) {
    entry.record.store_root = root;
    ASSERT_TRUE(spool->Add(entry.record).ok());
  }
  FakePushNodes nodes;
  FakePushNode& node = nodes.Add("node-a:7700", TestKey("builder-1").public_key());
  PushOptions options;
  options.nodes = {"node-a:7700"};
  Pusher pusher(*std::move(spool), TestKey("builder-1"), options, nodes.Connector(), PushClock::Real());
  const PushReport report = pusher.PushOnce();
  EXPECT_TRUE(node.stored.contains(*top_out_));
  EXPECT_THAT(node.stored_realisations, IsEmpty());
  ASSERT_EQ(report.realisation_notes.size(), 1u);
  EXPECT_THAT(report.realisation_notes[0], AllOf(HasSubstr(*top_drv_), HasSubstr("ca-derivations"),
                                                 HasSubstr("its path attestation goes alone")));
  size_t waiting = 0;
  for (const PushOutcome& o : report.outcomes) {
    if (o.kind != OutcomeKind::kSkipped) continue;
    ++waiting;
    EXPECT_THAT(o.path, HasSubstr(".drv^out"));
    EXPECT_THAT(o.message, AllOf(HasSubstr("is not known"), HasSubstr("registered no realisation")));
  }
  EXPECT_EQ(waiting, 2u);  // base and the resolved top
  EXPECT_EQ(report.remaining, 2u);
}

// The node's answer for a realisation key as PathStatusToJson shows it, built as a node answers:
// the agreed fingerprint once, the counted attestations by index.
v1::PathStatus AnswerFor(const consensus::RealisationAttestation& attestation, const consensus::Policy& policy) {
  v1::PathStatus status;
  status.set_store_path(attestation.claim.key.ToString());
  status.set_verdict(v1::CONFIRMED);
  status.set_quorum(policy.quorum());
  status.set_policy_hash(policy.Hash());
  status.set_policy_version(policy.version());
  v1::FingerprintTally* tally = status.add_fingerprints();
  tally->set_fingerprint(attestation.claim.Fingerprint());
  tally->add_operators("op-b");
  tally->add_builders(attestation.key_name());
  v1::CountedAttestation* counted = status.add_attestations();
  counted->set_fingerprint_index(0);
  counted->set_signature(attestation.signature.ToString());
  *counted->mutable_metadata() = proto::ToProto(attestation.metadata);
  return status;
}

TEST_F(RealisationTest, StatusShowsTheOutputPathAndVerifyCatchesATamperedAnswer) {
  FakePushNodes nodes;
  FakePushNode& node = nodes.Add("node-a:7700", TestKey("builder-1").public_key());
  PushFreshSpool(nodes, "spool-status");
  const json* top = NixRealisationOf(*top_out_);
  ASSERT_NE(top, nullptr);
  const std::string key = (*top)["id"].get<std::string>();
  ASSERT_TRUE(node.stored_realisations.contains(key));
  auto policy = consensus::Policy::Create(1, {{"op-b", {TestKey("builder-1").public_key()}}}, {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  node.statuses[key] = AnswerFor(node.stored_realisations.at(key), *policy);
  const std::string trace_key = *top_drv_ + "^out";
  node.statuses[trace_key] = AnswerFor(node.stored_realisations.at(trace_key), *policy);

  // Text: the verdict and the output path, for both key forms (the 2.35 one by its base name too).
  CliResult text = Cli(nodes, {"status", "--node", "node-a:7700", key,
                               std::filesystem::path(*top_drv_).filename().string() + "^out"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, AllOf(HasSubstr("CONFIRMED " + key + " -> " + *top_out_),
                              HasSubstr("CONFIRMED " + trace_key + " -> " + *top_out_)));

  // JSON, verified offline against the policy.
  CliResult answer = Cli(nodes, {"status", "--node", "node-a:7700", "--json", key, trace_key});
  ASSERT_EQ(answer.code, 0) << answer.err;
  const json document = json::parse(answer.out);
  ASSERT_EQ(document.size(), 2u);
  EXPECT_EQ(document[0]["realisation"], true);
  EXPECT_EQ(document[0]["outPath"], *top_out_);
  EXPECT_EQ(document[0]["attestations"][0]["key"], key);
  auto verified = VerifyStatusDocument(*policy, document);
  ASSERT_TRUE(verified.ok()) << verified.status();
  for (const PathVerification& p : verified->paths) EXPECT_TRUE(p.ok()) << p.path << ": " << p.problems.front();
  EXPECT_EQ(verified->paths[0].signatures_verified, 1u);

  // The same answer with the output path swapped for base's: the signature no longer verifies and
  // nothing supports CONFIRMED.
  json tampered = document;
  const std::string base_name = BaseOut().substr(std::string("/nix/store/").size());
  const std::string top_name = top_out_->substr(std::string("/nix/store/").size());
  std::string fingerprint = tampered[0]["attestations"][0]["fingerprint"].get<std::string>();
  fingerprint.replace(fingerprint.rfind(top_name), top_name.size(), base_name);
  tampered[0]["attestations"][0]["fingerprint"] = fingerprint;
  tampered[0]["attestations"][0]["outPath"] = BaseOut();
  tampered[0]["fingerprint"] = fingerprint;
  tampered[0]["fingerprints"][0]["fingerprint"] = fingerprint;
  tampered[0]["outPath"] = BaseOut();
  auto caught = VerifyStatusDocument(*policy, tampered);
  ASSERT_TRUE(caught.ok()) << caught.status();
  ASSERT_FALSE(caught->paths[0].ok());
  std::string problems;
  for (const std::string& p : caught->paths[0].problems) problems += p + "\n";
  EXPECT_THAT(problems, AllOf(HasSubstr("signature does not verify"), HasSubstr("claims CONFIRMED")));
  EXPECT_TRUE(caught->paths[1].ok());

  // A fingerprint that is not canonical is refused outright (strict parsing).
  json spaced = document;
  std::string loose = spaced[0]["attestations"][0]["fingerprint"].get<std::string>();
  loose.insert(1, " ");
  spaced[0]["attestations"][0]["fingerprint"] = loose;
  auto refused = VerifyStatusDocument(*policy, spaced);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->paths[0].ok());

  // A key that does not parse is a usage error, named.
  CliResult bad = Cli(nodes, {"status", "--node", "node-a:7700", "sha256:nothex!out"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("realisation key"));
}

TEST_F(RealisationTest, ImportTakesRealisationFilesOfBothFormats) {
  // Nix 2.8 writes realisations/<id>.doi when the .drv is copied (f_ca_derivation.txt).
  const std::string cache = dir_->File("cache");
  RunResult copied = nix_->Nix({"nix", "copy", "--store", Store(), "--to", "file://" + cache + "?compression=none",
                                *top_drv_});
  ASSERT_EQ(copied.exit_code, 0) << copied.err;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(cache + "/realisations")) {
    files.push_back(entry.path().string());
  }
  ASSERT_FALSE(files.empty());
  // A Nix 2.35 file for top, made here.
  auto trace_key = consensus::RealisationKey::Parse(*top_drv_ + "^out");
  ASSERT_TRUE(trace_key.ok());
  auto trace = consensus::Realisation::Create(*trace_key, *consensus::StorePath::Parse(*top_out_));
  ASSERT_TRUE(trace.ok()) << trace.status();
  const consensus::RealisationAttestation signed_trace = consensus::SignRealisation(*trace, TestKey("builder-1"));
  WriteFileOrDie(dir_->File("out.doi"),
                 consensus::FormatRealisationFile(*trace, std::vector<consensus::Signature>{signed_trace.signature}));
  files.push_back(dir_->File("out.doi"));

  FakePushNodes nodes;
  FakePushNode& node = nodes.Add("node-a:7700", TestKey("builder-1").public_key());
  std::vector<std::string> args = {"import", "--node", "node-a:7700", "--public-key",
                                   TestKey("builder-1").public_key().ToString()};
  args.insert(args.end(), files.begin(), files.end());
  CliResult imported = Cli(nodes, args);
  EXPECT_EQ(imported.code, 0) << imported.out << imported.err;
  for (const json& r : *nix_realisations_) {
    if (std::find_if(files.begin(), files.end(), [&](const std::string& f) {
          return f.find(r["id"].get<std::string>()) != std::string::npos;
        }) == files.end()) {
      continue;
    }
    const std::string id = r["id"].get<std::string>();
    ASSERT_TRUE(node.stored_realisations.contains(id)) << id << "\n" << imported.out;
    EXPECT_EQ(node.stored_realisations.at(id).metadata.build_kind, consensus::BuildKind::kImported);
  }
  ASSERT_TRUE(node.stored_realisations.contains(trace_key->ToString()));
  EXPECT_EQ(node.stored_realisations.at(trace_key->ToString()).metadata.build_kind, consensus::BuildKind::kImported);

  // A file whose claim was altered: reported, not sent.
  std::string altered = ReadFileOrDie(files.front());
  const std::string top_name = top_out_->substr(std::string("/nix/store/").size());
  const std::string base_name = BaseOut().substr(std::string("/nix/store/").size());
  const size_t at = altered.find(top_name) != std::string::npos ? altered.find(top_name) : altered.find(base_name);
  ASSERT_NE(at, std::string::npos);
  altered[at] = altered[at] == '0' ? '1' : '0';
  WriteFileOrDie(dir_->File("altered.doi"), altered);
  FakePushNodes fresh;
  FakePushNode& fresh_node = fresh.Add("node-a:7700", TestKey("builder-1").public_key());
  CliResult refused = Cli(fresh, {"import", "--node", "node-a:7700", "--public-key",
                                  TestKey("builder-1").public_key().ToString(), dir_->File("altered.doi")});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("does not verify"));
  EXPECT_THAT(fresh_node.stored_realisations, IsEmpty());
}

// Against a real node (server::Node on 127.0.0.1): push submits the realisations, status answers the
// keys of both formats, and `attest verify` re-checks the answer offline and catches a tampered one.
TEST_F(RealisationTest, ARealNodeTakesThePushAndAnswersTheKeys) {
  TempDir node_dir;
  WriteFileOrDie(node_dir.File("policy.toml"),
                 "quorum = 1\n[[operator]]\nname = \"op-b\"\nbuilders = [\"" +
                     TestKey("builder-1").public_key().ToString() + "\"]\n");
  WriteFileOrDie(node_dir.File("node.sec"), TestKey("node-1").ExportText() + "\n");
  WriteFileOrDie(node_dir.File("node.toml"), "[node]\ngrpc = \"127.0.0.1:0\"\nhttp = \"\"\ndatabase = \"attest.db\"\n"
                                             "key = \"node.sec\"\npolicy = \"policy.toml\"\n");
  auto config = server::LoadNodeConfig(node_dir.File("node.toml"));
  ASSERT_TRUE(config.ok()) << config.status();
  auto node = server::Node::Open(*config);
  ASSERT_TRUE(node.ok()) << node.status();
  ASSERT_TRUE((*node)->Start().ok());
  const std::string address = (*node)->grpc_address();

  const PushReport report = PushFreshSpool(ConnectGrpcNode, address, "spool-real-node");
  size_t realisations_accepted = 0;
  for (const PushOutcome& o : report.outcomes) {
    EXPECT_EQ(o.kind, OutcomeKind::kAccepted) << o.path << ": " << o.message;
    if (consensus::RealisationKey::LooksLikeKey(o.path) && o.kind == OutcomeKind::kAccepted) ++realisations_accepted;
  }
  EXPECT_EQ(realisations_accepted, 6u);
  EXPECT_EQ(report.remaining, 0u);
  for (const PushOutcome& o : report.outcomes) {
    if (report.remaining != 0) ADD_FAILURE() << o.record_id << " " << o.path << " " << OutcomeName(o.kind) << " " << o.message;
  }

  const json* top = NixRealisationOf(*top_out_);
  ASSERT_NE(top, nullptr);
  const std::string key = (*top)["id"].get<std::string>();
  const std::string trace_key = *top_drv_ + "^out";
  CliResult text = Cli(ConnectGrpcNode, {"status", "--node", address, key, trace_key});
  EXPECT_EQ(text.code, 0) << text.out << text.err;
  EXPECT_THAT(text.out, AllOf(HasSubstr("CONFIRMED " + key + " -> " + *top_out_),
                              HasSubstr("CONFIRMED " + trace_key + " -> " + *top_out_)));

  CliResult answer = Cli(ConnectGrpcNode, {"status", "--node", address, "--json", key, trace_key, *top_out_});
  ASSERT_EQ(answer.code, 0) << answer.err;
  WriteFileOrDie(node_dir.File("answer.json"), answer.out);
  CliResult verified = Cli(ConnectGrpcNode, {"verify", "--policy", node_dir.File("policy.toml"), node_dir.File("answer.json")});
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;

  json tampered = json::parse(answer.out);
  tampered[0]["verdict"] = "DISPUTED";
  WriteFileOrDie(node_dir.File("tampered.json"), tampered.dump());
  CliResult caught = Cli(ConnectGrpcNode, {"verify", "--policy", node_dir.File("policy.toml"), node_dir.File("tampered.json")});
  EXPECT_EQ(caught.code, 1) << caught.out << caught.err;
  EXPECT_THAT(caught.out + caught.err, HasSubstr("claims DISPUTED"));
  (*node)->Shutdown(absl::Now() + absl::Seconds(5));
}

}  // namespace
}  // namespace attest::client
