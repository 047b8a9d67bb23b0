// The systemd units in deploy/systemd/: `systemd-analyze verify` accepts them without a warning (with
// ExecStart pointing at the programs just built, since verify checks that they exist), `systemd-analyze
// security` rates their sandbox, the sandbox settings are there, and the users, spool and paths they
// name agree with the sysusers and tmpfiles entries and with the example configs in deploy/.
// `systemd-analyze verify` loads units into a manager of its own, so systemd need not be PID 1.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/deploy/deploy_files.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_support.h"

namespace attest::testing {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const std::string kSystemdDir = std::string(ATTEST_SOURCE_DIR) + "/deploy/systemd/";
const std::string kDeployDir = std::string(ATTEST_SOURCE_DIR) + "/deploy/";

std::vector<UnitSetting> Unit(const std::string& name) { return ParseUnit(ReadFileOrDie(kSystemdDir + name)); }

// A copy of the unit in `dir` whose ExecStart runs the built program instead of the installed one.
std::string UnitWithBuiltPrograms(const TempDir& dir, const std::string& name) {
  const std::string text = ReadFileOrDie(kSystemdDir + name);
  const std::string rewritten =
      absl::StrReplaceAll(text, {{"ExecStart=/usr/local/bin/attestd ", absl::StrCat("ExecStart=", ATTESTD_BIN, " ")},
                                 {"ExecStart=/usr/local/bin/attest ", absl::StrCat("ExecStart=", ATTEST_BIN, " ")}});
  EXPECT_NE(rewritten, text) << name << ": ExecStart does not run /usr/local/bin/attestd or /usr/local/bin/attest";
  WriteFileOrDie(dir.File(name), rewritten);
  return dir.File(name);
}

class SystemdAnalyzeTest : public ::testing::Test {
 protected:
  // Skips when systemd-analyze is missing, or cannot verify even a trivial unit on this machine (then
  // what it says about ours would say nothing about them).
  void SetUp() override {
    std::optional<std::string> found = FindOnPath("systemd-analyze");
    if (!found) GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd)";
    analyze_ = *found;
    WriteFileOrDie(dir_.File("probe.service"), "[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n");
    RunResult probe = attest::testing::Run({analyze_, "verify", "--man=no", dir_.File("probe.service")});
    if (probe.exit_code != 0 || !probe.out.empty() || !probe.err.empty()) {
      GTEST_SKIP() << "systemd-analyze verify does not work here (a trivial unit gives exit " << probe.exit_code
                   << "): " << probe.out << probe.err;
    }
  }

  std::string analyze_;
  TempDir dir_;
};

TEST_F(SystemdAnalyzeTest, VerifyAcceptsTheUnitsWithoutAWarning) {
  for (const char* name : {"attestd.service", "attest-push.service", "attest-rebuild.service"}) {
    const std::string unit = UnitWithBuiltPrograms(dir_, name);
    RunResult verify = attest::testing::Run({analyze_, "verify", "--man=no", unit});
    EXPECT_EQ(verify.exit_code, 0) << name << ":\n" << verify.out << verify.err;
    EXPECT_EQ(verify.out + verify.err, "") << name;
  }
}

TEST_F(SystemdAnalyzeTest, VerifyCatchesAMissingProgram) {
  // The check above means something: verify does look at ExecStart (and at unknown keys).
  if (std::filesystem::exists("/usr/local/bin/attestd")) GTEST_SKIP() << "attestd is installed on this machine";
  std::string text = ReadFileOrDie(kSystemdDir + "attestd.service");
  WriteFileOrDie(dir_.File("attestd.service"), text);
  RunResult missing = attest::testing::Run({analyze_, "verify", "--man=no", dir_.File("attestd.service")});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.out + missing.err, HasSubstr("/usr/local/bin/attestd"));

  UnitWithBuiltPrograms(dir_, "attestd.service");
  text = ReadFileOrDie(dir_.File("attestd.service"));
  WriteFileOrDie(dir_.File("attestd.service"), absl::StrReplaceAll(text, {{"ProtectHome=yes", "ProtectHomes=yes"}}));
  RunResult typo = attest::testing::Run({analyze_, "verify", "--man=no", dir_.File("attestd.service")});
  EXPECT_THAT(typo.out + typo.err, HasSubstr("Unknown key 'ProtectHomes'"));
}

TEST_F(SystemdAnalyzeTest, SecurityRatesBothSandboxesLowExposure) {
  for (const char* name : {"attestd.service", "attest-push.service"}) {
    const std::string unit = UnitWithBuiltPrograms(dir_, name);
    // Exposure runs from 0 (locked down) to 10 (unsandboxed); a network service cannot reach 0, since it
    // needs Internet sockets and the host's network. Threshold is in tenths.
    RunResult security =
        attest::testing::Run({analyze_, "security", "--no-pager", "--offline=true", "--threshold=20", unit});
    if (security.err.find("unrecognized option") != std::string::npos) {
      GTEST_SKIP() << "this systemd-analyze has no offline security check: " << security.err;
    }
    EXPECT_EQ(security.exit_code, 0) << name << " exposure above 2.0:\n" << security.out << security.err;
    const std::string marker = absl::StrCat("Overall exposure level for ", name, ": ");
    const size_t at = security.out.find(marker);
    ASSERT_NE(at, std::string::npos) << security.out;
    double exposure = 10;
    ASSERT_TRUE(absl::SimpleAtod(security.out.substr(at + marker.size(), 3), &exposure)) << security.out;
    EXPECT_LE(exposure, 2.0) << name << ":\n" << security.out;
  }
}

// The sandbox both units share: what attestd and attest push tolerate (no privileges, threads, sockets,
// files in their own directories).
void ExpectSandbox(const std::vector<UnitSetting>& unit, const std::string& name) {
  const std::map<std::string, std::string> expected = {{"NoNewPrivileges", "yes"},
                                                       {"CapabilityBoundingSet", ""},
                                                       {"AmbientCapabilities", ""},
                                                       {"ProtectSystem", "strict"},
                                                       {"ProtectHome", "yes"},
                                                       {"PrivateTmp", "yes"},
                                                       {"PrivateDevices", "yes"},
                                                       {"PrivateUsers", "yes"},
                                                       {"ProtectKernelTunables", "yes"},
                                                       {"ProtectKernelModules", "yes"},
                                                       {"ProtectKernelLogs", "yes"},
                                                       {"ProtectControlGroups", "yes"},
                                                       {"ProtectClock", "yes"},
                                                       {"ProtectHostname", "yes"},
                                                       {"RestrictNamespaces", "yes"},
                                                       {"RestrictRealtime", "yes"},
                                                       {"RestrictSUIDSGID", "yes"},
                                                       {"LockPersonality", "yes"},
                                                       {"MemoryDenyWriteExecute", "yes"},
                                                       {"SystemCallArchitectures", "native"},
                                                       {"UMask", "0077"},
                                                       {"Restart", "on-failure"},
                                                       {"Type", "exec"}};
  for (const auto& [key, value] : expected) {
    EXPECT_EQ(UnitValue(unit, "Service", key), value) << name << ": " << key;
  }
  EXPECT_EQ(UnitValue(unit, "Service", "DynamicUser"), std::nullopt) << name;
  std::vector<std::string> families =
      absl::StrSplit(UnitValue(unit, "Service", "RestrictAddressFamilies").value_or(""), ' ', absl::SkipEmpty());
  EXPECT_THAT(families, UnorderedElementsAre("AF_UNIX", "AF_INET", "AF_INET6")) << name;
  EXPECT_THAT(UnitValues(unit, "Service", "SystemCallFilter"),
              ElementsAre("@system-service", "~@privileged @resources"))
      << name;
  EXPECT_EQ(UnitValue(unit, "Install", "WantedBy"), "multi-user.target") << name;
  EXPECT_EQ(UnitValue(unit, "Unit", "After"), "network-online.target") << name;
}

// "15s" -> 15; nullopt for other forms (the units write plain seconds).
std::optional<int> Seconds(const std::optional<std::string>& text) {
  int seconds = 0;
  if (!text || !text->ends_with("s") || !absl::SimpleAtoi(text->substr(0, text->size() - 1), &seconds)) {
    return std::nullopt;
  }
  return seconds;
}

TEST(SystemdUnitTest, AttestdRunsSandboxedAsItsOwnUserWithItsStateDirectory) {
  const std::vector<UnitSetting> unit = Unit("attestd.service");
  EXPECT_EQ(UnitValue(unit, "Service", "ExecStart"), "/usr/local/bin/attestd --config /etc/attest/node.toml");
  EXPECT_EQ(UnitValue(unit, "Service", "User"), "attest");
  EXPECT_EQ(UnitValue(unit, "Service", "Group"), "attest");
  EXPECT_EQ(UnitValue(unit, "Service", "StateDirectory"), "attest");
  EXPECT_EQ(UnitValue(unit, "Service", "StateDirectoryMode"), "0700");
  ExpectSandbox(unit, "attestd.service");
  // ProtectSystem=strict leaves only the state directory writable: the example's database (and the
  // -wal/-shm files next to it) must be in it.
  const std::string example = ReadFileOrDie(kDeployDir + "node.example.toml");
  EXPECT_THAT(ExampleValue(example, "database").value_or(""), ::testing::StartsWith("/var/lib/attest/"));
  EXPECT_THAT(ExampleValue(example, "policy").value_or(""), ::testing::StartsWith("/etc/attest/"));
  EXPECT_EQ(UnitValues(unit, "Service", "ReadWritePaths"), std::vector<std::string>{});
}

TEST(SystemdUnitTest, AttestdGetsTimeToDrainAndDescriptorsForEveryConnection) {
  const std::vector<UnitSetting> unit = Unit("attestd.service");
  // attestd drains for up to 10 s after SIGTERM; systemd's SIGKILL must come later.
  const std::optional<int> stop = Seconds(UnitValue(unit, "Service", "TimeoutStopSec"));
  ASSERT_TRUE(stop.has_value());
  EXPECT_GT(*stop, 10);
  EXPECT_LE(*stop, 30);
  // One descriptor per HTTP connection, with room for gRPC clients, upstream fetches and the database.
  int max_connections = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      ExampleValue(ReadFileOrDie(kDeployDir + "node.example.toml"), "http_max_connections").value_or(""),
      &max_connections));
  int limit = 0;
  ASSERT_TRUE(absl::SimpleAtoi(UnitValue(unit, "Service", "LimitNOFILE").value_or(""), &limit));
  EXPECT_GE(limit, max_connections + 256);
}

TEST(SystemdUnitTest, PushRunsSandboxedAsTheSpoolOwnerAndWritesOnlyTheSpool) {
  const std::vector<UnitSetting> unit = Unit("attest-push.service");
  EXPECT_EQ(UnitValue(unit, "Service", "ExecStart"),
            "/usr/local/bin/attest push --watch --config /etc/attest/builder.toml");
  EXPECT_EQ(UnitValue(unit, "Service", "User"), "attest-push");
  EXPECT_EQ(UnitValue(unit, "Service", "Group"), "attest-push");
  ExpectSandbox(unit, "attest-push.service");
  const std::optional<std::string> spool = ExampleValue(ReadFileOrDie(kDeployDir + "builder.example.toml"), "spool");
  ASSERT_TRUE(spool.has_value());
  EXPECT_THAT(UnitValues(unit, "Service", "ReadWritePaths"), ElementsAre(*spool));
  // A submission in flight has a 10 s deadline.
  const std::optional<int> stop = Seconds(UnitValue(unit, "Service", "TimeoutStopSec"));
  ASSERT_TRUE(stop.has_value());
  EXPECT_GT(*stop, 10);

  // The spool exists before the first build (tmpfiles), owned by the unit's user, private to it.
  std::vector<std::vector<std::string>> lines;
  for (absl::string_view line : absl::StrSplit(ReadFileOrDie(kSystemdDir + "attest.tmpfiles"), '\n')) {
    if (line.empty() || line.front() == '#') continue;
    lines.push_back(absl::StrSplit(line, ' ', absl::SkipEmpty()));
  }
  EXPECT_THAT(lines, ElementsAre(ElementsAre("d", *spool, "0700", "attest-push", "attest-push", "-")));
}

TEST(SystemdUnitTest, SysusersDeclaresTheUsersOfBothUnits) {
  std::set<std::string> users;
  for (absl::string_view line : absl::StrSplit(ReadFileOrDie(kSystemdDir + "attest.sysusers"), '\n')) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() >= 2 && fields[0] == "u") users.insert(fields[1]);
  }
  EXPECT_THAT(users, UnorderedElementsAre("attest", "attest-push"));
  EXPECT_THAT(users, Contains(UnitValue(Unit("attestd.service"), "Service", "User").value_or("")));
  EXPECT_THAT(users, Contains(UnitValue(Unit("attest-push.service"), "Service", "User").value_or("")));
}

TEST(SystemdUnitTest, SysusersAndTmpfilesCreateTheUsersAndASpoolOnlyThePushUserCanEnter) {
  // systemd-sysusers and systemd-tmpfiles applied to an empty root directory: the real programs read
  // the files, so a syntax error or an unknown user fails here.
  std::optional<std::string> sysusers = FindOnPath("systemd-sysusers");
  std::optional<std::string> tmpfiles = FindOnPath("systemd-tmpfiles");
  if (!sysusers || !tmpfiles) GTEST_SKIP() << "systemd-sysusers or systemd-tmpfiles is not installed";
  if (geteuid() != 0) GTEST_SKIP() << "creating files owned by other users needs root";
  TempDir root;
  std::filesystem::create_directories(root.File("etc"));
  RunResult users = attest::testing::Run({*sysusers, "--root=" + root.path(), kSystemdDir + "attest.sysusers"});
  ASSERT_EQ(users.exit_code, 0) << users.out << users.err;
  const std::string passwd = ReadFileOrDie(root.File("etc/passwd"));
  EXPECT_THAT(passwd, HasSubstr("attest:x:"));
  EXPECT_THAT(passwd, HasSubstr("attest-push:x:"));
  RunResult dirs =
      attest::testing::Run({*tmpfiles, "--root=" + root.path(), "--create", kSystemdDir + "attest.tmpfiles"});
  ASSERT_EQ(dirs.exit_code, 0) << dirs.out << dirs.err;
  struct stat st {};
  ASSERT_EQ(stat(root.File("var/spool/attest").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // The owner is attest-push as the root's passwd names it.
  bool found = false;
  for (absl::string_view line : absl::StrSplit(passwd, '\n')) {
    std::vector<std::string> fields = absl::StrSplit(line, ':');
    if (fields.size() > 3 && fields[0] == "attest-push") {
      found = true;
      EXPECT_EQ(std::to_string(st.st_uid), fields[2]);
      EXPECT_EQ(std::to_string(st.st_gid), fields[3]);
    }
  }
  EXPECT_TRUE(found) << passwd;
}

}  // namespace
}  // namespace attest::testing
