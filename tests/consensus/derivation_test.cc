#include "consensus/derivation.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using Kind = DerivationOutput::Kind;

// Made by tests/testdata/derivations/generate.sh with real Nix 2.8 (nix-instantiate); see the script.
const std::string kDir = std::string(ATTEST_TESTDATA_DIR) + "/derivations/";
constexpr std::string_view kMulti = "8z762dpw3m5h6jk3pb3546ym371d9kqv-attest-multi.drv";
constexpr std::string_view kEscapes = "2fjgb79nkh53vm9rcqkml79zrhhkav42-attest-escapes.drv";
constexpr std::string_view kFixed = "xlyf9whaqfjj4wya1j7kyqabx7lgp8b4-attest-fixed.drv";
constexpr std::string_view kFixedRec = "qwskv8fa4zpsfnjpj8v9vzdbds8592f8-attest-fixed-rec.drv";
constexpr std::string_view kCa = "4gzfb6hm6cs68x8bcbds6ac09g5d9wlg-attest-ca.drv";
constexpr std::string_view kCaTop = "zd9b0qw2vripvg4plm0v37lazd95dzmy-attest-ca-top.drv";
constexpr std::string_view kDep = "lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv";

std::string ReadDrv(std::string_view base_name) { return testing::ReadFileOrDie(kDir + std::string(base_name)); }

Derivation ParseOrDie(std::string_view base_name) {
  absl::StatusOr<Derivation> drv = ParseDerivation(ReadDrv(base_name), base_name);
  EXPECT_TRUE(drv.ok()) << drv.status();
  return drv.ok() ? *std::move(drv) : Derivation{};
}

// Expects INVALID_ARGUMENT naming the byte offset and containing `fragment`.
void ExpectRejected(std::string_view text, size_t offset, std::string_view fragment) {
  absl::StatusOr<Derivation> drv = ParseDerivation(text, "t.drv");
  ASSERT_FALSE(drv.ok()) << "accepted: " << text;
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(drv.status().message());
  EXPECT_THAT(message, HasSubstr("t.drv: byte " + std::to_string(offset) + ": ")) << text;
  EXPECT_THAT(message, HasSubstr(std::string(fragment))) << text;
}

// Every field of every generated .drv against what `nix show-derivation` printed for the same file.
TEST(DerivationTest, AgreesWithNixShowDerivationOnEveryGeneratedFile) {
  const nlohmann::json shown = nlohmann::json::parse(testing::ReadFileOrDie(kDir + "show-derivation.json"));
  ASSERT_GE(shown.size(), 8u);
  for (const auto& [drv_path, expected] : shown.items()) {
    SCOPED_TRACE(drv_path);
    const std::string base_name = drv_path.substr(drv_path.rfind('/') + 1);
    const Derivation drv = ParseOrDie(base_name);

    std::map<std::string, std::vector<std::string>> outputs;  // name -> {path, hashAlgo, hash}
    for (const DerivationOutput& output : drv.outputs) {
      outputs[output.name] = {output.path ? output.path->full() : "", output.hash_algo, output.hash};
    }
    std::map<std::string, std::vector<std::string>> expected_outputs;
    for (const auto& [name, output] : expected["outputs"].items()) {
      expected_outputs[name] = {output.value("path", ""), output.value("hashAlgo", ""), output.value("hash", "")};
    }
    EXPECT_EQ(outputs, expected_outputs);

    std::map<std::string, std::vector<std::string>> inputs;
    for (const DerivationInput& input : drv.input_derivations) inputs[input.drv_path.full()] = input.output_names;
    EXPECT_EQ(inputs, (expected["inputDrvs"].get<std::map<std::string, std::vector<std::string>>>()));

    std::vector<std::string> sources;
    for (const StorePath& source : drv.input_sources) sources.push_back(source.full());
    EXPECT_EQ(sources, expected["inputSrcs"].get<std::vector<std::string>>());

    EXPECT_EQ(drv.platform, expected["system"].get<std::string>());
    EXPECT_EQ(drv.builder, expected["builder"].get<std::string>());
    EXPECT_EQ(drv.args, expected["args"].get<std::vector<std::string>>());
    std::map<std::string, std::string> env(drv.env.begin(), drv.env.end());
    EXPECT_EQ(env.size(), drv.env.size()) << "duplicate environment names";
    EXPECT_EQ(env, (expected["env"].get<std::map<std::string, std::string>>()));
  }
}

TEST(DerivationTest, MultipleOutputsDependenciesAndOutputPathNames) {
  const Derivation drv = ParseOrDie(kMulti);
  EXPECT_EQ(drv.name(), "attest-multi");
  ASSERT_EQ(drv.outputs.size(), 4u);
  std::vector<std::string> names;
  for (const DerivationOutput& output : drv.outputs) {
    names.push_back(output.name);
    EXPECT_EQ(output.kind(), Kind::kInputAddressed) << output.name;
    ASSERT_TRUE(output.path.has_value());
    // Nix names an output's path "<name>" for out and "<name>-<output>" otherwise.
    EXPECT_EQ(output.path->name(), drv.OutputPathName(output.name));
  }
  EXPECT_THAT(names, ElementsAre("bin", "dev", "doc", "out"));
  ASSERT_NE(drv.FindOutput("out"), nullptr);
  EXPECT_EQ(drv.FindOutput("out")->path->full(), "/nix/store/7pgg1fh0rkm9qfgb2njwm2saywhlv5lr-attest-multi");
  EXPECT_EQ(drv.FindOutput("lib"), nullptr);
  ASSERT_EQ(drv.input_derivations.size(), 2u);
  EXPECT_EQ(drv.input_derivations[0].drv_path.full(), "/nix/store/" + std::string(kDep));
  EXPECT_THAT(drv.input_derivations[1].output_names, ElementsAre("dev", "out"));
  ASSERT_EQ(drv.input_sources.size(), 1u);
  EXPECT_EQ(drv.input_sources[0].name(), "attest-multi-builder.sh");
  EXPECT_EQ(drv.EnvValue("outputs"), "out doc dev bin");
  EXPECT_EQ(drv.EnvValue("nope"), std::nullopt);
}

TEST(DerivationTest, DecodesEveryEscapeNixWritesAndKeepsOtherBytes) {
  const Derivation drv = ParseOrDie(kEscapes);
  EXPECT_EQ(drv.EnvValue("quote"), "say \"hi\"");
  EXPECT_EQ(drv.EnvValue("backslash"), "C:\\dir\\");
  EXPECT_EQ(drv.EnvValue("newline"), "line1\nline2\n");
  EXPECT_EQ(drv.EnvValue("tab"), "a\tb");
  EXPECT_EQ(drv.EnvValue("cr"), "a\rb");
  EXPECT_EQ(drv.EnvValue("all"), "\"\\\n\r\t");
  EXPECT_EQ(drv.EnvValue("control"), "bell\x07 esc\x1b");
  EXPECT_EQ(drv.EnvValue("unicode"), "gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93");
  EXPECT_EQ(drv.EnvValue("dollar"), "${not interpolated}");
  EXPECT_EQ(drv.EnvValue("empty"), "");
  EXPECT_THAT(drv.args, ElementsAre("-c", "printf '%s\\n' \"$quote\" > $out", "tab\there"));
}

TEST(DerivationTest, ClassifiesFixedAndFloatingContentAddressedOutputs) {
  const Derivation fixed = ParseOrDie(kFixed);
  ASSERT_EQ(fixed.outputs.size(), 1u);
  EXPECT_EQ(fixed.outputs[0].kind(), Kind::kFixed);
  EXPECT_EQ(fixed.outputs[0].hash_algo, "sha256");
  EXPECT_EQ(fixed.outputs[0].hash.size(), 64u);
  EXPECT_TRUE(fixed.outputs[0].path.has_value());

  const Derivation recursive = ParseOrDie(kFixedRec);
  EXPECT_EQ(recursive.outputs[0].kind(), Kind::kFixed);
  EXPECT_EQ(recursive.outputs[0].hash_algo, "r:sha256");

  for (std::string_view file : {kCa, kCaTop}) {
    const Derivation ca = ParseOrDie(file);
    ASSERT_EQ(ca.outputs.size(), 1u);
    EXPECT_EQ(ca.outputs[0].kind(), Kind::kFloating) << file;
    EXPECT_FALSE(ca.outputs[0].path.has_value()) << file;
    EXPECT_EQ(ca.outputs[0].hash_algo, "r:sha256");
    EXPECT_EQ(ca.outputs[0].hash, "");
  }
  const Derivation deferred =
      *ParseDerivation(R"(Derive([("out","","","")],[],[],"x86_64-linux","/bin/sh",[],[]))", "d");
  EXPECT_EQ(deferred.outputs[0].kind(), Kind::kDeferred);
}

TEST(DerivationTest, EveryTruncationOfARealFileIsRejectedWithAnOffset) {
  const std::string text = ReadDrv(kMulti);
  for (size_t length = 0; length < text.size(); ++length) {
    absl::StatusOr<Derivation> drv = ParseDerivation(std::string_view(text).substr(0, length), "cut");
    ASSERT_FALSE(drv.ok()) << "accepted the first " << length << " bytes";
    EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(drv.status().message()), HasSubstr("cut: byte "));
  }
}

TEST(DerivationTest, RejectsMalformedInputWithTheOffsetOfTheProblem) {
  const std::string out = R"(("out","/nix/store/7pgg1fh0rkm9qfgb2njwm2saywhlv5lr-attest-multi","",""))";
  const std::string tail = R"(,[],[],"x86_64-linux","/bin/sh",[],[]))";
  // Sanity: the pieces make a valid derivation.
  ASSERT_TRUE(ParseDerivation("Derive([" + out + "]" + tail, "t").ok());

  ExpectRejected("", 0, "expected a derivation starting with \"Derive(\"");
  ExpectRejected("{\"json\": 1}", 0, "is this a .drv file");
  ExpectRejected("DrvWithVersion(\"xp-dyn-drv\",[])", 0, "dynamic derivations");
  ExpectRejected("Derive([]" + tail, 7, "no outputs");
  ExpectRejected("Derive([" + out + "]" + tail + "\n", 119, "after the closing ')'");
  ExpectRejected("Derive([" + out + " ]" + tail, 80, "expected ',' or ']'");
  ExpectRejected("Derive([" + out + "," + out + "]" + tail, 82, "output 'out' appears twice");
  ExpectRejected(R"(Derive([("out","/nix/store/short-x","","")])" + tail, 15, "path of output 'out'");
  ExpectRejected(R"(Derive([("o u t","","","")])" + tail, 9, "not a valid name");
  ExpectRejected(R"(Derive([("out","","","abcd")])" + tail, 21, "hash but no hash algorithm");
  ExpectRejected(R"(Derive([("out","","blake3","")])" + tail, 18, "hash algorithm 'blake3'");
  ExpectRejected(R"(Derive([("out","","sha256","abcd")])" + tail, 27, "64 lower-case hex digits");
  ExpectRejected(R"(Derive([("out","","sha1","0123456789abcdef0123456789abcdef01234567")])" + tail, 15,
                 "has a hash but no path");
  ExpectRejected("Derive([" + std::string(R"(("out","/nix/store/7pgg1fh0rkm9qfgb2njwm2saywhlv5lr-attest-multi","r:sha256",""))") +
                     "]" + tail,
                 15, "has a path; Nix leaves it empty");
  // Strings: unknown escapes, raw control characters Nix would have escaped, unterminated.
  ExpectRejected(R"(Derive([("out","","","")],[],[],"x86\x64","/bin/sh",[],[]))", 36, "unknown escape '\\\\x'");
  ExpectRejected("Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86\n64\",\"/bin/sh\",[],[])", 36, "raw newline");
  ExpectRejected("Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86\t64\",\"/bin/sh\",[],[])", 36, "raw tab");
  ExpectRejected("Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86_64", 39, "ends inside a string");
  ExpectRejected("Derive([(\"out\",\"\",\"\",\"\")],[],[],\"x86\\", 36, "ends inside an escape");
  // Inputs.
  ExpectRejected(R"(Derive([("out","","","")],[("/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep",["out"])],[],"s","b",[],[]))",
                 28, "does not end in .drv");
  ExpectRejected(R"(Derive([("out","","","")],[("/nix/store/lvvrdb67kv1cx8n7xnx5mm116h809p9p-attest-dep.drv",["out","out"])],[],"s","b",[],[]))",
                 96, "appears twice");
  ExpectRejected(R"(Derive([("out","","","")],[],["/tmp/src"],"s","b",[],[]))", 30, "input source");
  ExpectRejected(R"(Derive([("out","","","")],[],[],"s","b",[],[("a","1"),("a","2")]))", 55,
                 "environment variable 'a' appears twice");
  ExpectRejected(R"(Derive([("out","","","")],[],[],"s","b",[],[("a","1")])x)", 55, "after the closing");
  ExpectRejected(R"(Derive([("out","","","")],[],[],"s","b",[],[("a")]))", 48, "expected ','");
  ExpectRejected(R"(Derive([("out","","","")],[],[],s,"b",[],[]))", 32, "expected a string");
}

}  // namespace
}  // namespace attest::consensus
