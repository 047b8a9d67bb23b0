// NixStoreDb against a real store built by real Nix (Debian's nix-bin 2.8) in a chroot store, compared
// with what `nix path-info --json` says about the same store; and against copies of that database
// changed the way Nix changes it (a writer with the WAL open, a commit between two reads).
#include "consensus/text.h"
#include "client/nix_store_db.h"

#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "storage/sqlite.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

namespace sqlite = storage::sqlite;

namespace fs = std::filesystem;
using ::attest::testing::ReadFileOrDie;
using ::attest::testing::RunResult;
using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAreArray;
using nlohmann::json;

// dep <- withdeps (two outputs, `out` refers to dep), and an output that refers to itself. PATH in the
// sandbox is unset: shell builtins only.
constexpr std::string_view kExpression = R"(
let
  system = builtins.currentSystem;
  dep = derivation {
    name = "nsdb-dep"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo dep > $out" ];
  };
in {
  inherit dep;
  withdeps = derivation {
    name = "nsdb-withdeps"; inherit system; builder = "/bin/sh";
    outputs = [ "out" "doc" ];
    args = [ "-c" "echo ${dep} > $out; echo docs > $doc" ];
  };
  self = derivation {
    name = "nsdb-self"; inherit system; builder = "/bin/sh";
    args = [ "-c" "echo $out > $out" ];
  };
}
)";

// One Nix environment, isolated as in the shared reference's common.sh, with two chroot stores:
// `built` (everything built there) and `copied` (one output copied in, so not `ultimate`).
class NixStores final {
 public:
  NixStores() {
    for (const char* sub : {"etc", "xdg-cache", "home", "tmp"}) fs::create_directories(dir_.File(sub));
    WriteFileOrDie(dir_.File("etc/nix.conf"),
                   "experimental-features = nix-command\n"
                   "substituters =\n"
                   "build-users-group =\n"
                   "sandbox = true\n"
                   "extra-sandbox-paths = /bin /usr /lib /lib64?\n");
    WriteFileOrDie(dir_.File("drvs.nix"), kExpression);
    WriteFileOrDie(dir_.File("source.txt"), "a source, added, not built\n");
  }

  RunResult Nix(std::vector<std::string> args) const {
    std::vector<std::string> argv = {"env"};
    for (const char* var : {"NIX_CONFIG", "NIX_REMOTE", "NIX_PATH", "NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_LOG_DIR"}) {
      argv.insert(argv.end(), {"-u", var});
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return ::attest::testing::Run(argv, "", std::chrono::seconds(300),
                                  {{"NIX_CONF_DIR", dir_.File("etc")},
                                   {"XDG_CACHE_HOME", dir_.File("xdg-cache")},
                                   {"HOME", dir_.File("home")},
                                   {"TMPDIR", dir_.File("tmp")}});
  }

  // Builds everything; copies `withdeps` (and so its closure) to the second store; adds a source;
  // signs one path. Returns false with test failures on the way when Nix did not cooperate.
  bool Make() {
    RunResult build = Nix({"nix-build", "--store", built(), dir_.File("drvs.nix"), "--no-out-link"});
    EXPECT_EQ(build.exit_code, 0) << build.err;
    if (build.exit_code != 0) return false;
    RunResult withdeps =
        Nix({"nix-build", "--store", built(), dir_.File("drvs.nix"), "-A", "withdeps.out", "--no-out-link"});
    EXPECT_EQ(withdeps.exit_code, 0) << withdeps.err;
    withdeps_ = std::string(absl::StripTrailingAsciiWhitespace(withdeps.out));
    RunResult copy = Nix({"nix", "copy", "--no-check-sigs", "--from", built(), "--to", copied(), withdeps_});
    EXPECT_EQ(copy.exit_code, 0) << copy.err;
    RunResult add = Nix({"nix-store", "--store", built(), "--add", dir_.File("source.txt")});
    EXPECT_EQ(add.exit_code, 0) << add.err;
    source_ = std::string(absl::StripTrailingAsciiWhitespace(add.out));
    RunResult key = Nix({"nix", "key", "generate-secret", "--key-name", "nsdb-test-1"});
    EXPECT_EQ(key.exit_code, 0) << key.err;
    WriteFileOrDie(dir_.File("key.sec"), key.out);
    RunResult sign = Nix({"nix", "store", "sign", "--store", built(), "--key-file", dir_.File("key.sec"), withdeps_});
    EXPECT_EQ(sign.exit_code, 0) << sign.err;
    return build.exit_code == 0 && withdeps.exit_code == 0 && copy.exit_code == 0 && add.exit_code == 0 &&
           sign.exit_code == 0;
  }

  // `nix path-info --json --sigs --all` for a store, keyed by path.
  std::map<std::string, json> PathInfoJson(const std::string& store) const {
    RunResult info = Nix({"nix", "path-info", "--json", "--sigs", "--all", "--store", store});
    EXPECT_EQ(info.exit_code, 0) << info.err;
    std::map<std::string, json> by_path;
    const json list = json::parse(info.out, nullptr, false);
    EXPECT_TRUE(list.is_array()) << info.out;
    if (!list.is_array()) return by_path;
    for (const json& entry : list) by_path[entry.at("path").get<std::string>()] = entry;
    return by_path;
  }

  std::string built() const { return dir_.File("built"); }
  std::string copied() const { return dir_.File("copied"); }
  const std::string& withdeps() const { return withdeps_; }
  const std::string& source() const { return source_; }
  std::string File(std::string_view name) const { return dir_.File(name); }

 private:
  TempDir dir_;
  std::string withdeps_;
  std::string source_;
};

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

// A copy of a store's database directory under a new root, for tests that change it.
std::string CopyDatabase(const std::string& from_root, const std::string& to_root) {
  const fs::path from = fs::path(from_root) / "nix/var/nix/db";
  const fs::path to = fs::path(to_root) / "nix/var/nix/db";
  fs::create_directories(to);
  fs::copy_file(from / "db.sqlite", to / "db.sqlite");
  return (to / "db.sqlite").string();
}

class NixStoreDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    stores_ = new NixStores();
    made_ = stores_->Make();
  }
  static void TearDownTestSuite() {
    delete stores_;
    stores_ = nullptr;
  }
  void SetUp() override {
    if (!made_) GTEST_FAIL() << "building the test stores with Nix failed (see the first test's output)";
  }

  static NixStores* stores_;
  static bool made_;
};
NixStores* NixStoreDbTest::stores_ = nullptr;
bool NixStoreDbTest::made_ = false;

TEST_F(NixStoreDbTest, EveryPathMatchesNixPathInfo) {
  auto db = NixStoreDb::Open(stores_->built());
  ASSERT_TRUE(db.ok()) << db.status();
  const std::map<std::string, json> expected = stores_->PathInfoJson(stores_->built());
  ASSERT_GE(expected.size(), 8u);  // 3 drvs, 5 outputs, 1 source
  std::vector<consensus::StorePath> paths;
  for (const auto& [path, info] : expected) paths.push_back(*consensus::StorePath::Parse(path));
  auto infos = (*db)->PathInfos(paths);
  ASSERT_TRUE(infos.ok()) << infos.status();
  ASSERT_EQ(infos->size(), paths.size());
  size_t with_references = 0, self_referencing = 0, signed_paths = 0;
  for (size_t i = 0; i < paths.size(); ++i) {
    const json& want = expected.at(paths[i].full());
    SCOPED_TRACE(paths[i].full());
    ASSERT_TRUE((*infos)[i].ok()) << (*infos)[i].status();
    const NixStorePathInfo& got = *(*infos)[i];
    EXPECT_EQ(got.path, paths[i]);
    ASSERT_TRUE(got.nar_hash.has_value());
    EXPECT_EQ(got.nar_hash->ToSri(), want.at("narHash").get<std::string>());
    EXPECT_EQ(got.nar_size, want.at("narSize").get<uint64_t>());
    std::vector<std::string> references;
    for (const auto& r : got.references) references.push_back(r.full());
    EXPECT_THAT(references, UnorderedElementsAreArray(want.at("references").get<std::vector<std::string>>()));
    EXPECT_TRUE(std::is_sorted(got.references.begin(), got.references.end()));
    EXPECT_EQ(got.deriver, want.value("deriver", ""));
    EXPECT_EQ(got.ultimate, want.value("ultimate", false));
    EXPECT_EQ(got.registration_time, want.at("registrationTime").get<int64_t>());
    EXPECT_EQ(got.signatures, want.value("signatures", std::vector<std::string>()));
    EXPECT_EQ(got.ca, want.value("ca", ""));
    with_references += references.empty() ? 0 : 1;
    self_referencing += std::count(references.begin(), references.end(), paths[i].full());
    signed_paths += got.signatures.empty() ? 0 : 1;

    // The claim is the Nix fingerprint of exactly these values.
    auto claim = got.Claim();
    ASSERT_TRUE(claim.ok()) << claim.status();
    std::vector<std::string> sorted_refs = references;
    std::sort(sorted_refs.begin(), sorted_refs.end());
    std::string refs_text;
    for (const auto& r : sorted_refs) refs_text += (refs_text.empty() ? "" : ",") + r;
    EXPECT_EQ(claim->Fingerprint(),
              consensus::Cat("1;", paths[i].full(), ";", consensus::NarHash::Parse(want.at("narHash").get<std::string>())->ToNix32(),
                             ";", want.at("narSize").get<uint64_t>(), ";", refs_text));
  }
  // The store really has what the test is about.
  EXPECT_GE(with_references, 3u);  // withdeps.out -> dep, the drvs, self
  EXPECT_EQ(self_referencing, 1u);
  EXPECT_EQ(signed_paths, 1u);
}

TEST_F(NixStoreDbTest, CopiedPathsAreValidButNotUltimate) {
  auto db = NixStoreDb::Open(stores_->copied() + "/");
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ((*db)->store_root(), stores_->copied());
  auto info = (*db)->PathInfo(*consensus::StorePath::Parse(stores_->withdeps()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->ultimate);
  EXPECT_EQ(info->references.size(), 1u);
  const json want = stores_->PathInfoJson(stores_->copied()).at(stores_->withdeps());
  EXPECT_FALSE(want.value("ultimate", false));
  auto built = (*db)->BuiltPaths();
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_THAT(*built, IsEmpty());
}

TEST_F(NixStoreDbTest, BuiltPathsAreTheUltimateOnesInRegistrationOrder) {
  auto db = NixStoreDb::Open(stores_->built());
  ASSERT_TRUE(db.ok()) << db.status();
  size_t skipped = 99;
  auto built = (*db)->BuiltPaths(&skipped);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(skipped, 0u);
  std::vector<std::string> got;
  for (const NixBuiltPath& p : *built) {
    got.push_back(p.path.full());
    EXPECT_TRUE(p.deriver.ends_with(".drv")) << p.path.full();
    EXPECT_GT(p.registration_time, 0);
  }
  std::vector<std::string> want;
  for (const auto& [path, info] : stores_->PathInfoJson(stores_->built())) {
    if (info.value("ultimate", false)) want.push_back(path);
  }
  EXPECT_EQ(want.size(), 4u);  // dep, withdeps out and doc, self: not the source, not the drvs
  EXPECT_THAT(got, UnorderedElementsAreArray(want));
  EXPECT_THAT(got, ::testing::Not(::testing::Contains(stores_->source())));
  // dep was registered before withdeps, which refers to it.
  const auto dep_at = std::find_if(got.begin(), got.end(), [](const std::string& p) { return p.ends_with("-nsdb-dep"); });
  const auto withdeps_at = std::find(got.begin(), got.end(), stores_->withdeps());
  EXPECT_LT(dep_at, withdeps_at);
}

TEST_F(NixStoreDbTest, UnknownPathIsNotFound) {
  auto db = NixStoreDb::Open(stores_->built());
  ASSERT_TRUE(db.ok()) << db.status();
  const auto absent = ::attest::testing::TestStorePath("never-built");
  auto info = (*db)->PathInfo(absent);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr(absent.full()));
  EXPECT_THAT(std::string(info.status().message()), HasSubstr(stores_->built()));
  // In a batch, only that entry fails.
  auto infos = (*db)->PathInfos(std::vector{absent, *consensus::StorePath::Parse(stores_->withdeps())});
  ASSERT_TRUE(infos.ok());
  EXPECT_EQ((*infos)[0].status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*infos)[1].ok());
}

TEST_F(NixStoreDbTest, ReadingLeavesNixsFilesAsTheyWere) {
  const std::string db_dir = stores_->built() + "/nix/var/nix/db";
  const std::set<std::string> files_before = FilesIn(db_dir);
  ASSERT_EQ(files_before.count("db.sqlite-wal"), 0u) << "Nix left its WAL behind; the test assumes it did not";
  const std::string bytes_before = ReadFileOrDie(db_dir + "/db.sqlite");
  struct stat before{};
  ASSERT_EQ(stat((db_dir + "/db.sqlite").c_str(), &before), 0);
  for (int i = 0; i < 3; ++i) {
    auto db = NixStoreDb::Open(stores_->built());
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->BuiltPaths().ok());
    ASSERT_TRUE((*db)->PathInfo(*consensus::StorePath::Parse(stores_->withdeps())).ok());
  }
  EXPECT_EQ(FilesIn(db_dir), files_before);  // in particular no db.sqlite-wal / db.sqlite-shm
  EXPECT_EQ(ReadFileOrDie(db_dir + "/db.sqlite"), bytes_before);
  struct stat after{};
  ASSERT_EQ(stat((db_dir + "/db.sqlite").c_str(), &after), 0);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  // And Nix still reads its store afterwards.
  RunResult verify = stores_->Nix({"nix-store", "--store", stores_->built(), "--verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
}

// Why the immutable snapshot exists: a plain read-only connection (what NixStoreDb falls back to when
// the file keeps changing) leaves -wal and -shm next to a WAL database that had none.
TEST_F(NixStoreDbTest, APlainReadOnlyConnectionWouldLeaveWalFilesBehind) {
  TempDir root;
  const std::string db_file = CopyDatabase(stores_->built(), root.path());
  auto db = NixStoreDb::Open(root.path(), NixStoreDbOptions{.max_snapshot_attempts = 0});
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_TRUE((*db)->PathInfo(*consensus::StorePath::Parse(stores_->withdeps())).ok());
  EXPECT_TRUE(fs::exists(db_file + "-shm"));
  EXPECT_TRUE(fs::exists(db_file + "-wal"));
}

// A Nix process with the database open keeps a WAL; a reader must see committed rows only, and see
// them whether or not they were checkpointed into the main file yet.
TEST_F(NixStoreDbTest, ReadsThroughTheWalOfAWriterThatHasItOpen) {
  TempDir root;
  const std::string db_file = CopyDatabase(stores_->built(), root.path());
  auto writer = sqlite::Connection::Open(db_file, sqlite::OpenMode::kReadWrite, absl::Seconds(1));
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_EQ(*(*writer)->QueryText("PRAGMA journal_mode", "journal mode"), "wal");
  // wal_autocheckpoint off: committed rows stay in the WAL, as in a long-running Nix process.
  ASSERT_TRUE((*writer)->Execute("PRAGMA wal_autocheckpoint = 0", "no checkpoints").ok());
  const auto added = ::attest::testing::TestStorePath("added-later");
  const std::string insert = consensus::Cat(
      "INSERT INTO ValidPaths(path, hash, registrationTime, deriver, narSize, ultimate) VALUES ('", added.full(),
      "', 'sha256:", std::string(64, 'a'), "', 1700000000, NULL, 120, 1)");
  {
    auto write = sqlite::Transaction::Begin(**writer, sqlite::Transaction::Kind::kWrite);
    ASSERT_TRUE(write.ok());
    ASSERT_TRUE((*writer)->Execute(insert, "insert").ok());
    ASSERT_TRUE(fs::exists(db_file + "-wal"));
    // Uncommitted: not visible.
    auto db = NixStoreDb::Open(root.path());
    ASSERT_TRUE(db.ok()) << db.status();
    EXPECT_EQ((*db)->PathInfo(added).status().code(), absl::StatusCode::kNotFound);
    ASSERT_TRUE(write->Commit().ok());
  }
  auto db = NixStoreDb::Open(root.path());
  ASSERT_TRUE(db.ok()) << db.status();
  auto info = (*db)->PathInfo(added);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->ultimate);
  EXPECT_EQ(info->nar_size, 120u);
  EXPECT_EQ(info->nar_hash->ToHex(), std::string(64, 'a'));
  auto built = (*db)->BuiltPaths();
  ASSERT_TRUE(built.ok());
  EXPECT_EQ(built->back().path, added);
  // The main file was not touched by the reader: the row is only in the WAL.
  const std::string main_file = ReadFileOrDie(db_file);
  EXPECT_EQ(main_file.find(added.full()), std::string::npos);
}

TEST_F(NixStoreDbTest, SeesACommitMadeBetweenTwoReads) {
  TempDir root;
  const std::string db_file = CopyDatabase(stores_->built(), root.path());
  auto db = NixStoreDb::Open(root.path());
  ASSERT_TRUE(db.ok()) << db.status();
  const auto added = ::attest::testing::TestStorePath("added-between");
  ASSERT_EQ((*db)->PathInfo(added).status().code(), absl::StatusCode::kNotFound);
  {
    // A short Nix process: opens, commits, closes (which checkpoints into the main file and removes
    // the WAL), so the next read is again an immutable one of a changed file.
    auto writer = sqlite::Connection::Open(db_file, sqlite::OpenMode::kReadWrite, absl::Seconds(1));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)
                    ->Execute(consensus::Cat("INSERT INTO ValidPaths(path, hash, registrationTime, narSize, ultimate) "
                                             "VALUES ('",
                                             added.full(), "', 'sha256:", std::string(64, 'b'), "', 1, 7, 1)"),
                              "insert")
                    .ok());
  }
  ASSERT_FALSE(fs::exists(db_file + "-wal"));
  auto info = (*db)->PathInfo(added);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->nar_size, 7u);
}

TEST_F(NixStoreDbTest, StoreRootsWithCharactersSpecialInUrisWork) {
  TempDir tmp;
  const std::string root = tmp.File("odd ?#%25 root");
  CopyDatabase(stores_->built(), root);
  auto db = NixStoreDb::Open(root);
  ASSERT_TRUE(db.ok()) << db.status();
  auto info = (*db)->PathInfo(*consensus::StorePath::Parse(stores_->withdeps()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->ultimate);
  EXPECT_FALSE(fs::exists(root + "/nix/var/nix/db/db.sqlite-wal"));
}

TEST_F(NixStoreDbTest, RowsWithoutHashOrSizeHaveNoClaim) {
  TempDir root;
  const std::string db_file = CopyDatabase(stores_->built(), root.path());
  {
    auto writer = sqlite::Connection::Open(db_file, sqlite::OpenMode::kReadWrite, absl::Seconds(1));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)
                    ->Execute(consensus::Cat("UPDATE ValidPaths SET narSize = NULL WHERE path = '",
                                             stores_->withdeps(), "'"),
                              "legacy row")
                    .ok());
  }
  auto db = NixStoreDb::Open(root.path());
  ASSERT_TRUE(db.ok());
  auto info = (*db)->PathInfo(*consensus::StorePath::Parse(stores_->withdeps()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->nar_size, 0u);
  EXPECT_EQ(info->Claim().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(info->Claim().status().message()), HasSubstr("no NAR size"));
}

TEST_F(NixStoreDbTest, OpenNamesWhatIsWrong) {
  TempDir tmp;
  auto missing = NixStoreDb::Open(tmp.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("root of a Nix store"));

  fs::create_directories(tmp.File("garbage/nix/var/nix/db"));
  WriteFileOrDie(tmp.File("garbage/nix/var/nix/db/db.sqlite"), std::string(8192, 'x'));
  auto garbage = NixStoreDb::Open(tmp.File("garbage"));
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(garbage.status().message()), HasSubstr("Nix's database"));

  fs::create_directories(tmp.File("other/nix/var/nix/db"));
  {
    auto other = sqlite::Connection::Open(tmp.File("other/nix/var/nix/db/db.sqlite"),
                                          sqlite::OpenMode::kReadWriteCreate, absl::Seconds(1));
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE((*other)->Execute("CREATE TABLE t(x)", "create").ok());
  }
  auto other = NixStoreDb::Open(tmp.File("other"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()), HasSubstr("tables of a Nix store database"));
}

}  // namespace
}  // namespace attest::client
