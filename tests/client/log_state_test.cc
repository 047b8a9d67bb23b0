#include "client/log_state.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "consensus/checkpoint.h"
#include "consensus/encoding.h"
#include "consensus/merkle.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::TestKey;
using ::attest::testing::WriteFileOrDie;
using ::testing::HasSubstr;
using nlohmann::json;

consensus::MerkleHash Root(std::string_view seed) { return consensus::LeafHash(seed); }

// A checkpoint note of the log `key.name()` signed by `key`.
std::string SignedCheckpoint(const consensus::SecretKey& key, uint64_t size, const consensus::MerkleHash& root) {
  absl::StatusOr<consensus::SignedNote> note =
      consensus::SignCheckpoint(consensus::Checkpoint{.origin = key.name(), .size = size, .root = root}, key);
  EXPECT_TRUE(note.ok()) << note.status();
  return note->Serialize();
}

LogState StateOf(const consensus::SecretKey& key, uint64_t size, std::string_view seed) {
  absl::StatusOr<LogState> state = MakeLogState(key.public_key(), SignedCheckpoint(key, size, Root(seed)));
  EXPECT_TRUE(state.ok()) << state.status();
  return *std::move(state);
}

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.insert(name);
  }
  closedir(d);
  return names;
}

void ExpectSameState(const LogState& a, const LogState& b) {
  EXPECT_EQ(a.node_key, b.node_key);
  EXPECT_EQ(a.checkpoint, b.checkpoint);
  EXPECT_EQ(a.note, b.note);
}

TEST(LogStateTest, MakeLogStateTakesTheCheckpointFromTheNote) {
  const consensus::SecretKey key = TestKey("node-a");
  const LogState state = StateOf(key, 7, "seven");
  EXPECT_EQ(state.checkpoint.origin, "node-a");
  EXPECT_EQ(state.checkpoint.size, 7u);
  EXPECT_EQ(state.checkpoint.root, Root("seven"));
  EXPECT_EQ(state.node_key, key.public_key());
}

TEST(LogStateTest, MakeLogStateRefusesANoteByAnotherKey) {
  const consensus::SecretKey key = TestKey("node-a");
  const consensus::SecretKey impostor = TestKey("node-a", "other seed");
  absl::StatusOr<LogState> state = MakeLogState(key.public_key(), SignedCheckpoint(impostor, 7, Root("x")));
  ASSERT_FALSE(state.ok());
  EXPECT_EQ(state.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(LogStateTest, SerializeAndParseRoundTrip) {
  const LogState state = StateOf(TestKey("node-a"), 42, "root");
  const std::string text = SerializeLogState(state);
  const json document = json::parse(text);
  EXPECT_EQ(document["version"], 1);
  EXPECT_EQ(document["origin"], "node-a");
  EXPECT_EQ(document["node_key"], state.node_key.ToString());
  EXPECT_EQ(document["checkpoint"]["size"], 42);
  EXPECT_EQ(document["checkpoint"]["root"], consensus::Base64Encode(Root("root")));
  EXPECT_EQ(document["checkpoint"]["note"], state.note);

  absl::StatusOr<LogState> parsed = ParseLogState(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSameState(*parsed, state);
}

TEST(LogStateTest, SaveThenLoadRoundTripsAndCreatesPrivateParents) {
  TempDir tmp;
  const std::string path = tmp.File("a/b/attest/logs/node-a.json");
  const LogState state = StateOf(TestKey("node-a"), 3, "three");
  ASSERT_TRUE(SaveLogState(path, state).ok());

  absl::StatusOr<std::optional<LogState>> loaded = LoadLogState(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  ExpectSameState(**loaded, state);

  struct stat st{};
  ASSERT_EQ(stat(tmp.File("a/b/attest").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(FilesIn(tmp.File("a/b/attest/logs")), std::set<std::string>{"node-a.json"}) << "no temp file left";
}

TEST(LogStateTest, LoadOfAMissingFileIsNothingPinned) {
  TempDir tmp;
  absl::StatusOr<std::optional<LogState>> loaded = LoadLogState(tmp.File("absent.json"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE(loaded->has_value());
}

TEST(LogStateTest, DefaultPathPrefersAnAbsoluteXdgStateHome) {
  auto path = DefaultLogStatePath("node-a", Env({{"XDG_STATE_HOME", "/x/state"}, {"HOME", "/home/u"}}));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/x/state/attest/logs/node-a.json");

  path = DefaultLogStatePath("node-a", Env({{"XDG_STATE_HOME", "/x/state/"}}));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/x/state/attest/logs/node-a.json");
}

TEST(LogStateTest, DefaultPathFallsBackToHomeWhenXdgStateHomeIsUnsetEmptyOrRelative) {
  for (const auto& env : {Env({{"HOME", "/home/u"}}), Env({{"XDG_STATE_HOME", ""}, {"HOME", "/home/u"}}),
                          Env({{"XDG_STATE_HOME", "relative/state"}, {"HOME", "/home/u"}})}) {
    auto path = DefaultLogStatePath("node-a", env);
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, "/home/u/.local/state/attest/logs/node-a.json");
  }
}

TEST(LogStateTest, DefaultPathReplacesSlashesInTheOrigin) {
  EXPECT_EQ(LogStateFileName("example.org/log/a"), "example.org_log_a.json");
  auto path = DefaultLogStatePath("example.org/log", Env({{"HOME", "/home/u"}}));
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(*path, "/home/u/.local/state/attest/logs/example.org_log.json");
}

TEST(LogStateTest, DefaultPathNeedsSomeAbsoluteDirectory) {
  for (const auto& env : {Env({}), Env({{"HOME", ""}}), Env({{"HOME", "home"}, {"XDG_STATE_HOME", "s"}})}) {
    auto path = DefaultLogStatePath("node-a", env);
    ASSERT_FALSE(path.ok());
    EXPECT_EQ(path.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(path.status().message(), HasSubstr("--state"));
  }
  EXPECT_FALSE(DefaultLogStatePath("node-a", EnvLookup()).ok()) << "no environment at all";
}

// Every way a state file can be wrong is refused with a message that names the file and the problem.
TEST(LogStateTest, CorruptFilesAreRefusedClearly) {
  const consensus::SecretKey key = TestKey("node-a");
  const LogState state = StateOf(key, 5, "five");
  const json good = json::parse(SerializeLogState(state));

  std::vector<std::pair<std::string, std::string>> cases;  // content, expected part of the message
  cases.emplace_back("", "not JSON");
  cases.emplace_back(SerializeLogState(state).substr(0, 40), "not JSON");
  cases.emplace_back("[1, 2]", "not a JSON object");
  {
    json j = good;
    j.erase("node_key");
    cases.emplace_back(j.dump(), "\"node_key\" is missing");
  }
  {
    json j = good;
    j["version"] = 2;
    cases.emplace_back(j.dump(), "version 2");
  }
  {
    json j = good;
    j["checkpoint"]["size"] = "5";
    cases.emplace_back(j.dump(), "\"size\" is not");
  }
  {
    json j = good;
    j["checkpoint"]["root"] = consensus::Base64Encode(Root("edited"));
    cases.emplace_back(j.dump(), "\"root\" is");
  }
  {
    json j = good;
    j["checkpoint"]["size"] = 6;
    cases.emplace_back(j.dump(), "\"size\" is 6");
  }
  {
    json j = good;
    j["checkpoint"]["note"] = SignedCheckpoint(TestKey("node-a", "impostor"), 5, Root("five"));
    cases.emplace_back(j.dump(), "does not verify with the pinned key");
  }
  {
    json j = good;
    j["node_key"] = TestKey("node-b").public_key().ToString();
    cases.emplace_back(j.dump(), "named 'node-b'");
  }
  {
    json j = good;
    j["node_key"] = "node-a:not base64";
    cases.emplace_back(j.dump(), "\"node_key\"");
  }

  TempDir tmp;
  const std::string path = tmp.File("state.json");
  for (const auto& [content, expected] : cases) {
    WriteFileOrDie(path, content);
    absl::StatusOr<std::optional<LogState>> loaded = LoadLogState(path);
    ASSERT_FALSE(loaded.ok()) << content;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << content;
    EXPECT_THAT(loaded.status().message(), HasSubstr(path)) << content;
    EXPECT_THAT(loaded.status().message(), HasSubstr("corrupt")) << content;
    EXPECT_THAT(loaded.status().message(), HasSubstr(expected)) << content;
    EXPECT_THAT(loaded.status().message(), HasSubstr("--node-key")) << "says how to start over";
  }
}

TEST(LogStateTest, ADirectoryOrAHugeFileIsNotAStateFile) {
  TempDir tmp;
  ASSERT_EQ(mkdir(tmp.File("dir.json").c_str(), 0700), 0);
  auto loaded = LoadLogState(tmp.File("dir.json"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);

  WriteFileOrDie(tmp.File("huge.json"), std::string(2 << 20, ' '));
  loaded = LoadLogState(tmp.File("huge.json"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
}

// The file is replaced by rename, never rewritten in place: a reader holding the old file (here, a
// hard link to it) keeps the whole old state, and the name shows the whole new one.
TEST(LogStateTest, SaveReplacesTheFileAtomically) {
  TempDir tmp;
  const std::string path = tmp.File("node-a.json");
  const consensus::SecretKey key = TestKey("node-a");
  const LogState old_state = StateOf(key, 5, "five");
  const LogState new_state = StateOf(key, 9, "nine");
  ASSERT_TRUE(SaveLogState(path, old_state).ok());
  const std::string old_text = ReadFileOrDie(path);
  ASSERT_EQ(link(path.c_str(), tmp.File("reader-view").c_str()), 0);
  struct stat before{};
  ASSERT_EQ(stat(path.c_str(), &before), 0);

  ASSERT_TRUE(SaveLogState(path, new_state).ok());

  struct stat after{};
  ASSERT_EQ(stat(path.c_str(), &after), 0);
  EXPECT_NE(before.st_ino, after.st_ino) << "a new file was renamed over the old one";
  EXPECT_EQ(ReadFileOrDie(tmp.File("reader-view")), old_text);
  auto loaded = LoadLogState(path);
  ASSERT_TRUE(loaded.ok() && loaded->has_value()) << loaded.status();
  ExpectSameState(**loaded, new_state);
  EXPECT_EQ(FilesIn(tmp.path()), (std::set<std::string>{"node-a.json", "reader-view"}));
}

TEST(LogStateTest, AFailedSaveLeavesNoTempFileBehind) {
  TempDir tmp;
  // A directory where the file should go: the rename fails after the temp file was written.
  ASSERT_EQ(mkdir(tmp.File("node-a.json").c_str(), 0700), 0);
  absl::Status saved = SaveLogState(tmp.File("node-a.json"), StateOf(TestKey("node-a"), 1, "one"));
  EXPECT_FALSE(saved.ok());
  EXPECT_THAT(saved.message(), HasSubstr("node-a.json"));
  EXPECT_EQ(FilesIn(tmp.path()), std::set<std::string>{"node-a.json"});

  // A file in the way of a directory to create.
  WriteFileOrDie(tmp.File("blocker"), "x");
  saved = SaveLogState(tmp.File("blocker/logs/node-a.json"), StateOf(TestKey("node-a"), 1, "one"));
  EXPECT_EQ(saved.code(), absl::StatusCode::kFailedPrecondition) << saved;
  EXPECT_THAT(saved.message(), HasSubstr("blocker"));
}

}  // namespace
}  // namespace attest::client
