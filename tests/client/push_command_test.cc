// `attest push` in-process through RunCli: config from --config or $ATTEST_BUILDER_CONFIG, the report
// (text and --json), exit codes, --scan, --watch stopped by SIGTERM. The push logic itself is covered by
// pusher_test.cc.
#include <csignal>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/cli.h"
#include "client/spool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/push_test_util.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::FakeNixStore;
using ::attest::testing::FakePushNode;
using ::attest::testing::FakePushNodes;
using ::attest::testing::PollUntil;
using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using nlohmann::json;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class PushCommandTest : public ::testing::Test {
 protected:
  PushCommandTest() : store_(dir_.File("store")) {
    WriteFileOrDie(dir_.File("builder.sec"), TestKey("builder-1").ExportText());
    WriteFileOrDie(dir_.File("builder.toml"),
                   "key = \"builder.sec\"\nspool = \"spool\"\nnodes = [\"node-a:7700\", \"node-b:7700\"]\n");
    nodes_.Add("node-a:7700", TestKey("builder-1").public_key());
    nodes_.Add("node-b:7700", TestKey("builder-1").public_key());
  }

  Result Cli(std::vector<std::string> args, std::map<std::string, std::string> environment = {}) {
    std::istringstream in;
    std::ostringstream out, err;
    CommandEnv env{
        .in = in,
        .out = out,
        .err = err,
        .connect_node = nodes_.Connector(),
        .random_bytes = [](std::span<uint8_t> bytes) { std::fill(bytes.begin(), bytes.end(), 7); },
        .default_node = "",
        .env_var = [environment](std::string_view name) -> std::optional<std::string> {
          const auto it = environment.find(std::string(name));
          if (it == environment.end()) return std::nullopt;
          return it->second;
        },
    };
    Result r;
    r.code = RunCli(args, env);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  Spool TheSpool() { return *Spool::Open(dir_.File("spool")); }

  std::string Spooled(const std::string& name, FakeNixStore::Kind kind = FakeNixStore::Kind::kBuilt) {
    const std::string path = store_.Add(name, name + "\n", kind);
    SpoolRecord record;
    record.store_path = path;
    record.drv_path = TestStorePath(name + ".drv").full();
    record.output_name = "out";
    record.store_root = store_.root();
    Spool spool = TheSpool();
    EXPECT_TRUE(spool.Add(record).ok());
    return path;
  }

  size_t Remaining() {
    auto listing = TheSpool().List();
    EXPECT_TRUE(listing.ok());
    return listing.ok() ? listing->entries.size() : 0;
  }

  TempDir dir_;
  FakeNixStore store_;
  FakePushNodes nodes_;
};

TEST_F(PushCommandTest, ShipsTheSpoolAndExitsZeroWhenItIsEmpty) {
  const std::string hello = Spooled("hello");
  Spooled("world");
  Result r = Cli({"push", "--config", dir_.File("builder.toml")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("accepted        " + hello + " -> node-a:7700\n"));
  EXPECT_THAT(r.out, HasSubstr("accepted        " + hello + " -> node-b:7700\n"));
  EXPECT_THAT(r.out, HasSubstr("delivered       " + hello + "\n"));
  EXPECT_THAT(r.err, HasSubstr("2 delivered to every node, 0 left in the spool"));
  EXPECT_EQ(Remaining(), 0u);
  EXPECT_THAT(nodes_.at("node-a:7700").stored, SizeIs(2));
  EXPECT_THAT(nodes_.at("node-b:7700").stored, SizeIs(2));
}

TEST_F(PushCommandTest, DerivationsSentAreCountedAndTheirProblemsAreWarnings) {
  // The derivation of hello, in the store as Nix would keep it.
  const std::string hello = TestStorePath("hello").full();
  const std::string drv = store_.Add(
      "hello.drv", "Derive([(\"out\",\"" + hello + "\",\"\",\"\")],[],[],\"x86_64-linux\",\"/bin/sh\",[\"-c\",\"true\"],"
                   "[(\"name\",\"hello\")])");
  Spooled("hello");
  nodes_.at("node-a:7700").takes_derivations = true;
  nodes_.at("node-b:7700").takes_derivations = true;
  nodes_.at("node-b:7700").refuse_derivations[drv] = absl::InvalidArgumentError("its contents give another path");
  Result r = Cli({"push", "--config", dir_.File("builder.toml")});
  EXPECT_EQ(r.code, 0) << "a derivation problem does not fail the push: " << r.err;
  EXPECT_EQ(Remaining(), 0u);
  EXPECT_THAT(r.err, HasSubstr("1 delivered to every node, 0 left in the spool " + dir_.File("spool") +
                               "; 2 derivations sent (1 new)\n"));
  EXPECT_THAT(r.err, HasSubstr("attest push: warning: node node-b:7700: derivation " + drv +
                               " rejected: INVALID_ARGUMENT: its contents give another path\n"));
  EXPECT_EQ(nodes_.at("node-a:7700").derivations.size(), 1u);

  Spooled("world");  // its derivation is not in the store: no closure, a warning for each node
  Result json_run = Cli({"push", "--config", dir_.File("builder.toml"), "--json"});
  EXPECT_EQ(json_run.code, 0) << json_run.err;
  const json document = json::parse(json_run.out);
  EXPECT_EQ(document["derivationsSent"], 0);
  EXPECT_EQ(document["derivationsStored"], 0);
  ASSERT_EQ(document["derivationErrors"].size(), 2u);
  EXPECT_THAT(document["derivationErrors"][0].get<std::string>(), HasSubstr("is not in the store at "));
  EXPECT_THAT(json_run.err, HasSubstr("attest push: warning: derivation " + TestStorePath("world.drv").full()));
}

TEST_F(PushCommandTest, ConfigComesFromTheEnvironmentWhenNotGiven) {
  Spooled("hello");
  Result r = Cli({"push"}, {{"ATTEST_BUILDER_CONFIG", dir_.File("builder.toml")}});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Remaining(), 0u);

  Result none = Cli({"push"});
  EXPECT_EQ(none.code, 2);
  EXPECT_THAT(none.err, AllOf(HasSubstr("--config"), HasSubstr("ATTEST_BUILDER_CONFIG")));

  Result missing = Cli({"push", "--config", dir_.File("nope.toml")});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("nope.toml"));
}

TEST_F(PushCommandTest, NodeFlagsReplaceTheConfiguredNodes) {
  nodes_.Add("node-c:7700", TestKey("builder-1").public_key());
  Spooled("hello");
  Result r = Cli({"push", "--config", dir_.File("builder.toml"), "--node", "node-c:7700"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(nodes_.at("node-c:7700").stored, SizeIs(1));
  EXPECT_EQ(nodes_.at("node-a:7700").calls, 0);
  EXPECT_EQ(nodes_.at("node-b:7700").calls, 0);
}

TEST_F(PushCommandTest, ExitsOneWhileARejectedRecordRemains) {
  const std::string hello = Spooled("hello");
  nodes_.at("node-b:7700").refuse[hello] = absl::InvalidArgumentError("narSize does not match the NAR");
  Result r = Cli({"push", "--config", dir_.File("builder.toml"), "--json"});
  EXPECT_EQ(r.code, 1);
  const json report = json::parse(r.out);
  EXPECT_EQ(report["remaining"], 1);
  EXPECT_EQ(report["gaveUp"], false);
  ASSERT_EQ(report["outcomes"].size(), 2u);
  bool saw_rejection = false;
  for (const json& o : report["outcomes"]) {
    EXPECT_EQ(o["path"], hello);
    if (o["node"] == "node-b:7700") {
      saw_rejection = true;
      EXPECT_EQ(o["outcome"], "rejected");
      EXPECT_EQ(o["code"], 3);
      EXPECT_THAT(o["message"].get<std::string>(), HasSubstr("narSize does not match"));
    } else {
      EXPECT_EQ(o["outcome"], "accepted");
    }
  }
  EXPECT_TRUE(saw_rejection);
  EXPECT_EQ(Remaining(), 1u);
}

TEST_F(PushCommandTest, ANodeThatIsDownKeepsEveryRecordAndExitsOne) {
  Spooled("hello");
  Spooled("world");
  nodes_.at("node-a:7700").mode = FakePushNode::Mode::kDown;
  const absl::Time start = absl::Now();
  Result r = Cli({"push", "--config", dir_.File("builder.toml"), "--timeout", "1s", "--json"});
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(r.code, 1);
  const json report = json::parse(r.out);
  EXPECT_EQ(report["remaining"], 2);
  EXPECT_EQ(report["gaveUp"], true);
  EXPECT_THAT(r.err, HasSubstr("nodes did not answer in time"));
  EXPECT_EQ(Remaining(), 2u);
  EXPECT_GE(nodes_.at("node-a:7700").calls, 2);  // retried within the second

  nodes_.at("node-a:7700").mode = FakePushNode::Mode::kUp;
  Result again = Cli({"push", "--config", dir_.File("builder.toml")});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(Remaining(), 0u);
  // node-b had acknowledged both on the first run and is not asked again.
  EXPECT_EQ(nodes_.at("node-b:7700").calls, 1);
}

TEST_F(PushCommandTest, ScanSpoolsWhatTheHookMissedThenPushes) {
  const std::string missed = store_.Add("missed", "missed\n");
  store_.Add("substituted", "s\n", FakeNixStore::Kind::kSubstituted);
  Result r = Cli({"push", "--config", dir_.File("builder.toml"), "--scan", "--store-root", store_.root(), "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  const json report = json::parse(r.out);
  EXPECT_EQ(report["scan"]["built"], 1);
  EXPECT_EQ(report["scan"]["added"], json::array({missed}));
  EXPECT_EQ(report["delivered"], json::array({missed}));
  EXPECT_THAT(r.err, HasSubstr("1 spooled now"));

  Result again = Cli({"push", "--config", dir_.File("builder.toml"), "--scan", "--store-root", store_.root()});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_THAT(again.err, HasSubstr("1 already attested, 0 already spooled, 0 spooled now"));
  EXPECT_EQ(nodes_.at("node-a:7700").calls, 1);

  Result bad_root = Cli({"push", "--config", dir_.File("builder.toml"), "--scan", "--store-root", dir_.File("x")});
  EXPECT_EQ(bad_root.code, 1);
  EXPECT_THAT(bad_root.err, HasSubstr("root of a Nix store"));
}

TEST_F(PushCommandTest, UsageErrorsExitTwo) {
  const std::string config = dir_.File("builder.toml");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"push", "--config", config, "--store-root", "/"},
           {"push", "--config", config, "--scan", "--store-root", "relative/dir"},
           {"push", "--config", config, "extra-argument"},
           {"push", "--config", config, "--timeout", "soon"},
           {"push", "--config", config, "--bogus"},
       }) {
    Result r = Cli(args);
    EXPECT_EQ(r.code, 2) << args.back() << ": " << r.err;
  }
  Result help = Cli({"push", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, AllOf(HasSubstr("--watch"), HasSubstr("--scan"), HasSubstr("attest push --config")));
}

TEST_F(PushCommandTest, WatchShipsNewRecordsUntilSigterm) {
  Spooled("first");
  Result r;
  std::thread watcher([&] { r = Cli({"push", "--config", dir_.File("builder.toml"), "--watch", "--json"}); });
  const bool first = PollUntil([&] { return Remaining() == 0; }, std::chrono::seconds(60));
  EXPECT_TRUE(first);
  if (first) {
    Spooled("second");
    EXPECT_TRUE(PollUntil([&] { return Remaining() == 0; }, std::chrono::seconds(60)));
  }
  // The watcher has its handler installed (it delivered), so this only asks it to stop.
  std::raise(SIGTERM);
  watcher.join();
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("stopped"));
  EXPECT_THAT(nodes_.at("node-a:7700").stored, SizeIs(2));
  // One JSON object per pass that did something.
  size_t lines = 0;
  std::istringstream out(r.out);
  for (std::string line; std::getline(out, line);) {
    EXPECT_TRUE(json::parse(line, nullptr, false).is_object()) << line;
    ++lines;
  }
  EXPECT_GE(lines, 2u);
}

}  // namespace
}  // namespace attest::client
