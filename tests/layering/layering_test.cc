// The module layering of STYLE.md ("the folders are the architecture"), checked on every #include of the
// source tree:
//
//   module     may use                                        never
//   consensus  Abseil, libsodium (+ toml++ for the policy)    protobuf, gRPC, SQLite, storage, server, client,
//                                                             files, sockets, clocks, randomness
//   storage    consensus, Abseil, SQLite (private)            protobuf, gRPC, proto, server, client
//   proto      protobuf, gRPC, consensus (conversion)         storage, server, client
//   server     consensus, storage interface, proto            client
//   client     consensus, proto, storage (its own spool)      server, a node's database
//
// A violation names the file, the line and the rule it breaks. The checker itself is tested on made-up
// sources, so the test cannot pass by finding nothing to check.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Rule {
  std::string_view module;
  // Include paths that start with one of these are refused in the module, with the reason.
  std::vector<std::pair<std::string_view, std::string_view>> never;
};

// Include prefixes: a project module ("storage/"), a library ("grpcpp/"), or a system header ("fstream").
const std::vector<Rule>& Rules() {
  static const std::vector<Rule> rules = {
      {"consensus",
       {{"proto/", "consensus is the pure domain: no wire types"},
        {"storage/", "consensus is the lowest layer"},
        {"server/", "consensus is the lowest layer"},
        {"client/", "consensus is the lowest layer"},
        {"google/protobuf", "no protobuf in the domain"},
        {"grpc", "no gRPC in the domain"},
        {"sqlite3", "no SQLite in the domain"},
        {"fstream", "no files in the domain (content comes in as arguments)"},
        {"filesystem", "no files in the domain"},
        {"sys/socket", "no sockets in the domain"},
        {"chrono", "no clocks in the domain (time comes in as an argument)"},
        {"absl/time/clock", "no clocks in the domain (time comes in as an argument)"},
        {"random", "no randomness in the domain (seeds come in as arguments)"}}},
      {"storage",
       {{"proto/", "storage knows domain types, not wire messages"},
        {"google/protobuf", "no protobuf in storage"},
        {"grpc", "no gRPC in storage"},
        {"server/", "storage is below the node"},
        {"client/", "storage is below the CLI"}}},
      {"proto",
       {{"storage/", "wire conversion does not touch storage"},
        {"server/", "proto is below the node"},
        {"client/", "proto is below the CLI"}}},
      {"server", {{"client/", "the node never uses the CLI's code"}}},
      {"client",
       {{"server/", "the CLI talks to a node over the wire, never through its code"},
        {"storage/sqlite_attestation_store", "the CLI never opens a node's database"}}},
  };
  return rules;
}

struct Violation {
  std::string where;  // file:line
  std::string include;
  std::string reason;

  std::string ToString() const { return where + ": #include <" + include + ">: " + reason; }
};

// The violations in one source file's text; `path` is relative to the source root ("storage/x.cc").
std::vector<Violation> CheckSource(std::string_view path, std::string_view text) {
  const std::string_view module = path.substr(0, path.find('/'));
  const Rule* rule = nullptr;
  for (const Rule& r : Rules()) {
    if (r.module == module) rule = &r;
  }
  std::vector<Violation> found;
  if (rule == nullptr) return found;
  std::istringstream lines{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    const size_t hash = line.find_first_not_of(" \t");
    if (hash == std::string::npos || line.compare(hash, 1, "#") != 0) continue;
    const size_t directive = line.find_first_not_of(" \t", hash + 1);
    if (directive == std::string::npos || line.compare(directive, 7, "include") != 0) continue;
    const size_t open = line.find_first_of("<\"", directive + 7);
    if (open == std::string::npos) continue;
    const size_t close = line.find(line[open] == '<' ? '>' : '"', open + 1);
    if (close == std::string::npos) continue;
    const std::string included = line.substr(open + 1, close - open - 1);
    for (const auto& [prefix, reason] : rule->never) {
      if (included.starts_with(prefix)) {
        found.push_back(Violation{std::string(path) + ":" + std::to_string(number), included, std::string(reason)});
      }
    }
  }
  return found;
}

TEST(LayeringCheckerTest, FindsWhatTheTableForbidsAndNothingElse) {
  EXPECT_THAT(CheckSource("storage/x.cc", "#include \"storage/sqlite.h\"\n#include \"proto/attest/v1/attest.pb.h\"\n"),
              ElementsAre(::testing::Field(&Violation::where, "storage/x.cc:2")));
  EXPECT_THAT(CheckSource("consensus/y.h", "#include <string>\n  #  include <fstream>\n#include <grpcpp/grpcpp.h>\n")
                  .size(),
              2u);
  EXPECT_THAT(CheckSource("client/z.cc", "#include \"server/node.h\"\n")[0].ToString(),
              HasSubstr("client/z.cc:1: #include <server/node.h>: the CLI talks to a node over the wire"));
  EXPECT_THAT(CheckSource("server/w.cc", "#include \"storage/sqlite_attestation_store.h\"\n#include \"proto/x.h\"\n"),
              IsEmpty());
  EXPECT_THAT(CheckSource("tests/t.cc", "#include \"server/node.h\"\n"), IsEmpty());  // tests may use anything
}

TEST(LayeringTest, EveryModuleIncludesOnlyWhatItMayUse) {
  const std::filesystem::path root = ATTEST_SOURCE_DIR;
  std::vector<std::string> violations;
  int files = 0;
  for (const Rule& rule : Rules()) {
    const std::filesystem::path dir = root / rule.module;
    ASSERT_TRUE(std::filesystem::is_directory(dir)) << dir;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
      const std::string extension = entry.path().extension().string();
      if (!entry.is_regular_file() || (extension != ".h" && extension != ".cc")) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      ++files;
      for (const Violation& v : CheckSource(std::filesystem::relative(entry.path(), root).string(), text.str())) {
        violations.push_back(v.ToString());
      }
    }
  }
  EXPECT_GT(files, 100) << "the source tree was not found under " << root;
  EXPECT_THAT(violations, IsEmpty());
}

}  // namespace
}  // namespace attest
