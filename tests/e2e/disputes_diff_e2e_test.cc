// End-to-end: `attest disputes diff` against a real attestd whose policy lists each operator's binary
// cache (file:// directories written here: hand-made NARs and narinfos). Two operators attest different
// NARs of one store path (a directory of two files, one of which differs), so the path is DISPUTED; the
// real CLI fetches both sides from the caches, verifies them and runs the real diffoscope.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/node_harness.h"

namespace attest::testing {
namespace {

using nlohmann::json;

// NAR string: u64 little-endian length, bytes, zero padding to a multiple of 8.
void NarString(std::string& out, std::string_view s) {
  uint64_t n = s.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(s);
  out.append((8 - s.size() % 8) % 8, '\0');
}

// The NAR of a directory of regular files (names in bytewise order, as Nix writes them).
std::string DirectoryNar(const std::map<std::string, std::string>& files, const std::string& executable = "") {
  std::string nar;
  for (std::string_view s : {"nix-archive-1", "(", "type", "directory"}) NarString(nar, s);
  for (const auto& [name, contents] : files) {
    for (std::string_view s : {"entry", "(", "name"}) NarString(nar, s);
    NarString(nar, name);
    for (std::string_view s : {"node", "(", "type", "regular"}) NarString(nar, s);
    if (name == executable) {
      NarString(nar, "executable");
      NarString(nar, "");
    }
    NarString(nar, "contents");
    NarString(nar, contents);
    NarString(nar, ")");
    NarString(nar, ")");
  }
  NarString(nar, ")");
  return nar;
}

struct Nar final {
  std::string bytes;
  consensus::NarHash hash;
};

// `executable`: the name of the one file with the executable bit, if any.
Nar MakeNar(const std::map<std::string, std::string>& files, const std::string& executable = "") {
  std::string bytes = DirectoryNar(files, executable);
  consensus::NarHash hash = consensus::NarHash::FromDigest(consensus::Sha256(bytes));
  return {std::move(bytes), hash};
}

// A binary cache directory holding `nar` as `path` (uncompressed, as `nix copy --to file://...`
// with compression=none writes it).
void WriteToCache(const std::string& cache_dir, const consensus::StorePath& path, const Nar& nar) {
  ::mkdir(cache_dir.c_str(), 0755);
  ::mkdir(absl::StrCat(cache_dir, "/nar").c_str(), 0755);
  const std::string file = absl::StrCat("nar/", nar.hash.ToHex(), ".nar");
  WriteFileOrDie(absl::StrCat(cache_dir, "/", file), nar.bytes);
  WriteFileOrDie(absl::StrCat(cache_dir, "/", std::string(path.hash_part()), ".narinfo"),
                 absl::StrCat("StorePath: ", path.full(), "\nURL: ", file, "\nCompression: none\nNarHash: ",
                              nar.hash.ToNix32(), "\nNarSize: ", nar.bytes.size(), "\nReferences: \n"));
}

std::string PathInfoJson(const consensus::StorePath& path, const Nar& nar) {
  return json::array({{{"path", path.full()},
                       {"narHash", nar.hash.ToSri()},
                       {"narSize", nar.bytes.size()},
                       {"references", json::array()},
                       {"registrationTime", 1795582660},
                       {"ultimate", true}}})
      .dump();
}

class DisputesDiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_ = MakeNixKey(dir_, "alice-builder-1");
    bob_ = MakeNixKey(dir_, "bob-builder-1");
    alice_cache_ = dir_.File("alice-cache");
    bob_cache_ = dir_.File("bob-cache");
    const std::string policy = absl::StrCat(
        "quorum = 2\n\n[[operator]]\nname = \"alice-ci\"\nbuilders = [\"", alice_.public_text,
        "\"]\ncaches = [\"file://", alice_cache_, "\"]\n\n[[operator]]\nname = \"bob-labs\"\nbuilders = [\"",
        bob_.public_text, "\"]\ncaches = [\"file://", bob_cache_, "\"]\n");
    node_ = std::make_unique<NodeHarness>(dir_, policy);
    ASSERT_TRUE(node_->Start());

    WriteToCache(alice_cache_, path_, alice_nar_);
    WriteToCache(bob_cache_, path_, bob_nar_);
    Submit(alice_, alice_nar_);
    Submit(bob_, bob_nar_);
    RunResult status = node_->Cli({"status", "--json", "--node", node_->grpc_address(), path_.full()});
    ASSERT_NE(status.exit_code, 2) << status.err;
    ASSERT_EQ(json::parse(status.out)[0]["verdict"], "DISPUTED") << status.out;
  }

  void Submit(const NixKeyPair& key, const Nar& nar) {
    const std::string file = dir_.File(key.name + "-pathinfo.json");
    WriteFileOrDie(file, PathInfoJson(path_, nar));
    RunResult r = node_->Cli({"submit", file, "--node", node_->grpc_address(), "--key", key.secret_file});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  RunResult Diff(std::vector<std::string> extra, const std::map<std::string, std::string>& env = {}) {
    std::vector<std::string> argv{ATTEST_BIN, "disputes", "diff", path_.full(), "--node", node_->grpc_address(),
                                  "--work-dir", dir_.path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::Run(argv, "", std::chrono::seconds(300), env);
  }

  // The work directories made under --work-dir are all gone.
  void ExpectNoWorkDirLeft() {
    RunResult ls =
        testing::Run({"sh", "-c", absl::StrCat("ls -d '", dir_.path(), "'/attest-diff-* 2>/dev/null || true")});
    EXPECT_EQ(ls.out, "") << "a work directory was left behind";
  }

  TempDir dir_;
  NixKeyPair alice_, bob_;
  std::string alice_cache_, bob_cache_;
  std::unique_ptr<NodeHarness> node_;
  consensus::StorePath path_ = TestStorePath("nondet");
  Nar alice_nar_ = MakeNar({{"same.txt", "identical on both sides\n"}, {"stamp.txt", "built at 1000\n"}});
  Nar bob_nar_ = MakeNar({{"same.txt", "identical on both sides\n"}, {"stamp.txt", "built at 2000\n"}});
};

TEST_F(DisputesDiffTest, FetchesBothSidesFromTheOperatorsCachesAndNamesTheDifferingFile) {
  const std::string html = dir_.File("report.html");
  RunResult r = Diff({"--html", html});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(path_.full()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(alice_nar_.hash.ToSri()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(bob_nar_.hash.ToSri()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetched from file://" + alice_cache_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetched from file://" + bob_cache_), std::string::npos) << r.out;
  const size_t list = r.out.find("differing files:\n  stamp.txt\n");
  EXPECT_NE(list, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("  same.txt\n"), std::string::npos) << "only the file that differs is listed:\n" << r.out;
  // The text report shows the two contents.
  EXPECT_NE(r.out.find(absl::StrCat("+++ b/", std::string(path_.base_name()), "/stamp.txt")), std::string::npos)
      << "the trees are named a/ and b/, not by the temporary directory:\n" << r.out;
  EXPECT_EQ(r.out.find(dir_.path() + "/attest-diff-"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("built at 1000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("built at 2000"), std::string::npos) << r.out;
  EXPECT_NE(ReadFileOrDie(html).find("stamp.txt"), std::string::npos);
  ExpectNoWorkDirLeft();
}

TEST_F(DisputesDiffTest, ASideWhoseCacheLacksTheNarFailsNamingItAndACacheGivenByTheMaintainerServes) {
  ASSERT_EQ(::unlink(absl::StrCat(bob_cache_, "/nar/", bob_nar_.hash.ToHex(), ".nar").c_str()), 0);
  RunResult r = Diff({});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("not available"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(bob_nar_.hash.ToNix32()), std::string::npos) << "the missing side is named:\n" << r.err;
  EXPECT_NE(r.err.find("(bob-labs)"), std::string::npos) << "with its operator:\n" << r.err;
  EXPECT_NE(r.err.find("file://" + bob_cache_), std::string::npos) << "the cache that failed is named:\n" << r.err;
  EXPECT_NE(r.err.find("--cache"), std::string::npos) << r.err;
  ExpectNoWorkDirLeft();

  // The maintainer has bob's bytes in a cache of their own, next to alice's (one cache may hold either side).
  const std::string mine = dir_.File("maintainer-cache");
  WriteToCache(mine, path_, bob_nar_);
  r = Diff({"--cache", "file://" + mine});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("fetched from file://" + mine), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fetched from file://" + alice_cache_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  stamp.txt\n"), std::string::npos) << r.out;
}

TEST_F(DisputesDiffTest, MissingDiffoscopeSaysToInstallIt) {
  const std::string empty_bin = dir_.File("empty-bin");
  ASSERT_EQ(::mkdir(empty_bin.c_str(), 0755), 0);
  RunResult r = Diff({}, {{"PATH", empty_bin}});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(r.term_signal, 0);
  EXPECT_NE(r.err.find("diffoscope"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("install the Debian package diffoscope"), std::string::npos) << r.err;
  ExpectNoWorkDirLeft();
  // Checked before any fetch: with a side's bytes missing too, the tool is what is reported.
  ASSERT_EQ(::unlink(absl::StrCat(bob_cache_, "/nar/", bob_nar_.hash.ToHex(), ".nar").c_str()), 0);
  r = Diff({}, {{"PATH", empty_bin}});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("install the Debian package diffoscope"), std::string::npos) << r.err;
  ExpectNoWorkDirLeft();
}

// NARs that differ only in what diffoscope does not compare (a file's executable bit): it finds the trees
// identical, and the command says so and succeeds.
class DisputesDiffMetadataTest : public DisputesDiffTest {
 protected:
  DisputesDiffMetadataTest() {
    alice_nar_ = MakeNar({{"run.sh", "echo hello\n"}}, "run.sh");
    bob_nar_ = MakeNar({{"run.sh", "echo hello\n"}});
  }
};

TEST_F(DisputesDiffMetadataTest, TreesDiffoscopeFindsIdenticalAreReportedAsSuch) {
  ASSERT_NE(alice_nar_.hash.ToSri(), bob_nar_.hash.ToSri());
  RunResult r = Diff({});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("diffoscope finds identical"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("differing files:"), std::string::npos) << r.out;
}

TEST_F(DisputesDiffTest, APathThatIsNotDisputedIsAClearFailure) {
  RunResult r = node_->Cli({"disputes", "diff", TestStorePath("hello").full(), "--node", node_->grpc_address()});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("no dispute"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("DISPUTED"), std::string::npos) << r.err;

  r = node_->Cli({"disputes", "diff", path_.full(), "--node", node_->grpc_address(), "--max-nar-mib", "0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace attest::testing
