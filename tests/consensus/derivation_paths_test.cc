#include "consensus/derivation_paths.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Made by tests/testdata/derivations/generate.sh with real Nix 2.8 (nix-instantiate); see its README.
const std::string kDir = std::string(ATTEST_TESTDATA_DIR) + "/derivations/";

StorePath Path(std::string_view text) {
  absl::StatusOr<StorePath> path = StorePath::Parse(text);
  EXPECT_TRUE(path.ok()) << path.status();
  return *std::move(path);
}

StorePath Golden(std::string_view base_name) { return Path("/nix/store/" + std::string(base_name)); }

std::string ReadDrv(const StorePath& path) { return testing::ReadFileOrDie(kDir + std::string(path.base_name())); }

Derivation ParseOrDie(std::string_view text) {
  absl::StatusOr<Derivation> drv = ParseDerivation(text, "test");
  EXPECT_TRUE(drv.ok()) << drv.status();
  return drv.ok() ? *std::move(drv) : Derivation{};
}

// Every .drv file Nix wrote, by store path.
std::map<StorePath, std::string> GoldenFiles() {
  std::map<StorePath, std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(kDir)) {
    const std::string name = entry.path().filename().string();
    if (!name.ends_with(".drv")) continue;
    files.emplace(Golden(name), testing::ReadFileOrDie(entry.path().string()));
  }
  return files;
}

nlohmann::json Manifest() { return nlohmann::json::parse(testing::ReadFileOrDie(kDir + "manifest.json")); }

// A graph of every golden derivation, each checked with VerifyDerivationFile first.
DerivationGraph GoldenGraph() {
  DerivationGraph graph;
  for (const auto& [path, contents] : GoldenFiles()) {
    absl::StatusOr<Derivation> drv = VerifyDerivationFile(path, contents);
    EXPECT_TRUE(drv.ok()) << drv.status();
    if (drv.ok()) graph.Add(path, *std::move(drv));
  }
  return graph;
}

StorePath ManifestDrv(std::string_view attr) {
  return Path(Manifest()["derivations"][std::string(attr)]["drvPath"].get<std::string>());
}

// The text path of a derivation, as Nix would name it.
StorePath DrvPathOf(const Derivation& drv, std::string_view name) {
  const std::vector<StorePath> references = DerivationReferences(drv);
  absl::StatusOr<StorePath> path = TextStorePath(std::string(name) + ".drv", UnparseDerivation(drv), references);
  EXPECT_TRUE(path.ok()) << path.status();
  return *std::move(path);
}

TEST(DerivationPathsTest, EveryGoldenFileVerifiesUnderItsPathAndUnparsesByteForByte) {
  const std::map<StorePath, std::string> files = GoldenFiles();
  ASSERT_GE(files.size(), 12u);
  for (const auto& [path, contents] : files) {
    SCOPED_TRACE(path.full());
    absl::StatusOr<Derivation> drv = VerifyDerivationFile(path, contents);
    ASSERT_TRUE(drv.ok()) << drv.status();
    EXPECT_EQ(UnparseDerivation(*drv), contents);
  }
}

TEST(DerivationPathsTest, GivesExactlyTheOutputPathsNixComputed) {
  DerivationGraph graph = GoldenGraph();
  const nlohmann::json manifest = Manifest();
  int checked = 0;
  int floating = 0;
  for (const auto& [attr, entry] : manifest["derivations"].items()) {
    SCOPED_TRACE(attr);
    const StorePath drv_path = Path(entry["drvPath"].get<std::string>());
    ASSERT_TRUE(graph.Contains(drv_path));
    std::map<std::string, std::string> nix_outputs = entry["outputs"].get<std::map<std::string, std::string>>();
    if (!nix_outputs.begin()->second.starts_with("/nix/store/")) {
      // Floating content-addressed: Nix itself has only a placeholder before the build.
      EXPECT_EQ(graph.ExpectedOutputPaths(drv_path).status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_EQ(graph.CheckOutputPaths(drv_path).code(), absl::StatusCode::kFailedPrecondition);
      ++floating;
      continue;
    }
    absl::StatusOr<std::map<std::string, StorePath>> expected = graph.ExpectedOutputPaths(drv_path);
    ASSERT_TRUE(expected.ok()) << expected.status();
    std::map<std::string, std::string> ours;
    for (const auto& [name, path] : *expected) ours.emplace(name, path.full());
    EXPECT_EQ(ours, nix_outputs);
    EXPECT_TRUE(graph.CheckOutputPaths(drv_path).ok()) << graph.CheckOutputPaths(drv_path);
    ++checked;
  }
  // dep, lib, multi, escapes, fixed, fixed-rec, fixed-sha1, fixed-twin, on-fixed; ca, ca-top.
  EXPECT_EQ(checked, 9);
  EXPECT_EQ(floating, 2);
}

TEST(DerivationPathsTest, ThreeLevelChainInAnyOrderOfQueries) {
  // Asking for the top first computes the levels below it on the way; asking again, or for a lower
  // level afterwards, must give what a fresh graph gives.
  DerivationGraph top_first = GoldenGraph();
  DerivationGraph bottom_first = GoldenGraph();
  const StorePath multi = ManifestDrv("multi");
  const StorePath lib = ManifestDrv("lib");
  const StorePath dep = ManifestDrv("dep");
  absl::StatusOr<Sha256Digest> multi_hash = top_first.HashModulo(multi);
  ASSERT_TRUE(multi_hash.ok()) << multi_hash.status();
  absl::StatusOr<Sha256Digest> lib_hash = top_first.HashModulo(lib);
  ASSERT_TRUE(lib_hash.ok());
  ASSERT_TRUE(bottom_first.HashModulo(dep).ok());
  ASSERT_TRUE(bottom_first.HashModulo(lib).ok());
  EXPECT_EQ(*bottom_first.HashModulo(lib), *lib_hash);
  EXPECT_EQ(*bottom_first.HashModulo(multi), *multi_hash);
  EXPECT_EQ(*top_first.HashModulo(multi), *multi_hash);
  EXPECT_NE(*multi_hash, *lib_hash);
}

TEST(DerivationPathsTest, FixedOutputTwinsShareOneOutputPathAndOneInputHash) {
  DerivationGraph graph = GoldenGraph();
  const StorePath fixed = ManifestDrv("fixed");
  const StorePath twin = ManifestDrv("fixed-twin");
  ASSERT_NE(fixed, twin);  // different builders, so different .drv files
  absl::StatusOr<Sha256Digest> fixed_hash = graph.HashModulo(fixed);
  ASSERT_TRUE(fixed_hash.ok()) << fixed_hash.status();
  EXPECT_EQ(*graph.HashModulo(twin), *fixed_hash);
  EXPECT_EQ(graph.ExpectedOutputPaths(fixed)->at("out"), graph.ExpectedOutputPaths(twin)->at("out"));
  // attest-on-fixed names four input derivations, and Nix hashed three (the twins merged): only
  // then are its output paths the ones Nix computed (checked above), so check the premise here.
  EXPECT_EQ(graph.Find(ManifestDrv("on-fixed"))->input_derivations.size(), 4u);
}

TEST(DerivationPathsTest, FixedOutputPathsByMode) {
  DerivationGraph graph = GoldenGraph();
  // Recursive sha256 is a "source" path of the hash itself; flat and recursive sha1 go through
  // "output:out". Both kinds are covered by the golden manifest; here the formulas themselves.
  const Derivation& rec = *graph.Find(ManifestDrv("fixed-rec"));
  ASSERT_EQ(rec.outputs[0].hash_algo, "r:sha256");
  Sha256Digest digest{};  // the golden file's hash is all zero bytes (sha256-AAAA...)
  EXPECT_EQ(rec.outputs[0].hash, std::string(64, '0'));
  EXPECT_EQ(*MakeStorePath("source", digest, "attest-fixed-rec"), *rec.outputs[0].path);

  const Derivation& sha1 = *graph.Find(ManifestDrv("fixed-sha1"));
  ASSERT_EQ(sha1.outputs[0].hash_algo, "r:sha1");
  EXPECT_EQ(*MakeStorePath("output:out", Sha256("fixed:out:r:sha1:" + sha1.outputs[0].hash + ":"), "attest-fixed-sha1"),
            *sha1.outputs[0].path);
  // The FO hash is a function of the output only, whatever the builder.
  EXPECT_EQ(*graph.HashModulo(ManifestDrv("fixed-sha1")),
            Sha256("fixed:out:r:sha1:" + sha1.outputs[0].hash + ":" + sha1.outputs[0].path->full()));
}

TEST(DerivationPathsTest, TextStorePathOfSourcesAsNixNamedThem) {
  const nlohmann::json manifest = Manifest();
  ASSERT_EQ(manifest["sources"].size(), 3u);
  bool saw_reference = false;
  for (const auto& [path_text, entry] : manifest["sources"].items()) {
    SCOPED_TRACE(path_text);
    const StorePath path = Path(path_text);
    std::vector<StorePath> references;
    for (const auto& reference : entry["references"]) references.push_back(Path(reference.get<std::string>()));
    saw_reference = saw_reference || !references.empty();
    const std::string contents = testing::ReadFileOrDie(kDir + "sources/" + std::string(path.base_name()));
    absl::StatusOr<StorePath> computed = TextStorePath(path.name(), contents, references);
    ASSERT_TRUE(computed.ok()) << computed.status();
    EXPECT_EQ(*computed, path);
    // The references count: without them the path differs.
    if (!references.empty()) {
      EXPECT_NE(*TextStorePath(path.name(), contents, {}), path);
    }
  }
  EXPECT_TRUE(saw_reference);
}

TEST(DerivationPathsTest, TextStorePathTakesReferencesInAnyOrder) {
  const std::vector<StorePath> sorted = {testing::TestStorePath("a"), testing::TestStorePath("b")};
  const std::vector<StorePath> reversed = {sorted[1], sorted[0]};
  EXPECT_EQ(*TextStorePath("x", "hello", sorted), *TextStorePath("x", "hello", reversed));
  EXPECT_NE(*TextStorePath("x", "hello", sorted), *TextStorePath("x", "hello", {}));
}

TEST(DerivationPathsTest, DerivationReferencesAreInputsAndSourcesSorted) {
  DerivationGraph graph = GoldenGraph();
  const Derivation& multi = *graph.Find(ManifestDrv("multi"));
  const std::vector<StorePath> references = DerivationReferences(multi);
  ASSERT_EQ(references.size(), 3u);
  EXPECT_TRUE(std::is_sorted(references.begin(), references.end()));
  EXPECT_THAT(references, ::testing::UnorderedElementsAre(ManifestDrv("lib"), ManifestDrv("dep"),
                                                          multi.input_sources[0]));
}

TEST(DerivationPathsTest, MakeStorePathRejectsInvalidNames) {
  const Sha256Digest zero{};
  for (std::string_view name : {std::string_view(""), std::string_view(".hidden"), std::string_view("has space"),
                                std::string_view("slash/name"), std::string_view("nul\0", 4)}) {
    absl::StatusOr<StorePath> path = MakeStorePath("source", zero, name);
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_EQ(MakeStorePath("source", zero, std::string(212, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MakeStorePath("source", zero, std::string(211, 'a')).ok());
}

TEST(DerivationPathsTest, UnparseRoundTripsEveryEscape) {
  Derivation drv = ParseOrDie(ReadDrv(ManifestDrv("escapes")));
  ASSERT_TRUE(drv.EnvValue("all").has_value());
  EXPECT_EQ(*drv.EnvValue("all"), "\"\\\n\r\t");
  drv.builder = "a\"b\\c\nd\re\tf";
  const std::string text = UnparseDerivation(drv);
  EXPECT_THAT(text, HasSubstr(R"("a\"b\\c\nd\re\tf")"));
  EXPECT_EQ(UnparseDerivation(ParseOrDie(text)), text);
}

// --- tampering ---

TEST(DerivationPathsTest, OneChangedByteNoLongerBelongsToThePath) {
  const StorePath dep = ManifestDrv("dep");
  std::string contents = ReadDrv(dep);
  const size_t at = contents.find("echo dep");
  ASSERT_NE(at, std::string::npos);
  contents[at + 5] = 'D';
  absl::StatusOr<Derivation> drv = VerifyDerivationFile(dep, contents);
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr(dep.full() + ": its contents give /nix/store/"));
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr("the file does not belong to this path"));
}

TEST(DerivationPathsTest, ContentsUnderAnotherPathAreRejected) {
  const StorePath lib = ManifestDrv("lib");
  absl::StatusOr<Derivation> drv = VerifyDerivationFile(lib, ReadDrv(ManifestDrv("dep")));
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr("the file does not belong to this path"));

  // Same contents, same hash part, another name: the name is hashed too.
  const StorePath renamed = Path("/nix/store/" + std::string(ManifestDrv("dep").hash_part()) + "-attest-deq.drv");
  EXPECT_EQ(VerifyDerivationFile(renamed, ReadDrv(ManifestDrv("dep"))).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DerivationPathsTest, VerifyRejectsNonDrvPathsOversizeAndUnparsable) {
  const StorePath dep = ManifestDrv("dep");
  absl::StatusOr<Derivation> drv = VerifyDerivationFile(testing::TestStorePath("attest-dep"), ReadDrv(dep));
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr("not a derivation path"));

  drv = VerifyDerivationFile(dep, std::string(kMaxDerivationBytes + 1, 'D'));
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr("more than the 1048576"));

  drv = VerifyDerivationFile(dep, ReadDrv(dep) + " ");
  EXPECT_EQ(drv.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(drv.status().message()), HasSubstr(dep.full() + ": byte "));
}

TEST(DerivationPathsTest, MissingInputDerivationIsNotFoundUntilAdded) {
  const StorePath multi = ManifestDrv("multi");
  const StorePath lib = ManifestDrv("lib");
  DerivationGraph graph;
  for (const StorePath& path : {multi, ManifestDrv("dep")}) graph.Add(path, *VerifyDerivationFile(path, ReadDrv(path)));
  absl::StatusOr<Sha256Digest> hash = graph.HashModulo(multi);
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr(lib.full() + ", an input derivation of " + multi.full()));
  EXPECT_EQ(graph.CheckOutputPaths(multi).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(graph.HashModulo(testing::TestStorePath("absent.drv")).status().code(), absl::StatusCode::kNotFound);

  graph.Add(lib, *VerifyDerivationFile(lib, ReadDrv(lib)));
  EXPECT_TRUE(graph.CheckOutputPaths(multi).ok()) << graph.CheckOutputPaths(multi);
}

TEST(DerivationPathsTest, ChangedOutputPathIsCaughtOnlyByTheOutputCheck) {
  // The attack the output check is for: a .drv that names an output path of someone else's choosing,
  // correctly text-addressed, so VerifyDerivationFile accepts it.
  const StorePath dep = ManifestDrv("dep");
  const std::string original = ReadDrv(dep);
  const std::string nix_out = Manifest()["derivations"]["dep"]["outputs"]["out"].get<std::string>();
  const std::string forged_out = testing::TestStorePath("attest-dep").full();
  std::string forged = original;
  for (size_t at = forged.find(nix_out); at != std::string::npos; at = forged.find(nix_out, at)) {
    forged.replace(at, nix_out.size(), forged_out);
  }
  ASSERT_NE(forged, original);
  const StorePath forged_path = DrvPathOf(ParseOrDie(forged), "attest-dep");
  absl::StatusOr<Derivation> drv = VerifyDerivationFile(forged_path, forged);
  ASSERT_TRUE(drv.ok()) << drv.status();

  DerivationGraph graph;
  graph.Add(forged_path, *std::move(drv));
  const absl::Status status = graph.CheckOutputPaths(forged_path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), forged_path.full() + ": output out is written as " + forged_out +
                                  " but the derivation gives " + nix_out);
}

TEST(DerivationPathsTest, ChangedFixedOutputPathIsCaught) {
  const StorePath fixed = ManifestDrv("fixed");
  const std::string nix_out = Manifest()["derivations"]["fixed"]["outputs"]["out"].get<std::string>();
  Derivation drv = ParseOrDie(ReadDrv(fixed));
  drv.outputs[0].path = testing::TestStorePath("attest-fixed");
  const StorePath forged_path = DrvPathOf(drv, "attest-fixed");
  DerivationGraph graph;
  graph.Add(forged_path, *VerifyDerivationFile(forged_path, UnparseDerivation(drv)));
  const absl::Status status = graph.CheckOutputPaths(forged_path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("but the derivation gives " + nix_out));
}

TEST(DerivationPathsTest, ChangedInputChangesTheOutputPaths) {
  // The same top derivation over a different dependency: its output paths move, so the ones Nix
  // wrote into the file no longer check.
  const StorePath lib = ManifestDrv("lib");
  Derivation dep = ParseOrDie(ReadDrv(ManifestDrv("dep")));
  dep.args[1] = "echo other > $out";
  const StorePath other_dep = DrvPathOf(dep, "attest-dep");
  Derivation top = ParseOrDie(ReadDrv(lib));
  top.input_derivations[0].drv_path = other_dep;
  const StorePath top_path = DrvPathOf(top, "attest-lib");
  DerivationGraph graph;
  graph.Add(other_dep, dep);
  graph.Add(top_path, top);
  const absl::Status status = graph.CheckOutputPaths(top_path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("is written as"));
}

TEST(DerivationPathsTest, FloatingAndDeferredOutputsAreNotChecked) {
  DerivationGraph graph = GoldenGraph();
  absl::StatusOr<Sha256Digest> hash = graph.HashModulo(ManifestDrv("ca"));
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr("floating content-addressed"));

  Derivation deferred = ParseOrDie(ReadDrv(ManifestDrv("dep")));
  deferred.outputs[0].path.reset();
  const StorePath path = DrvPathOf(deferred, "attest-dep");
  graph.Add(path, deferred);
  EXPECT_EQ(graph.CheckOutputPaths(path).code(), absl::StatusCode::kFailedPrecondition);

  // An input-addressed derivation over a floating one: the input is named.
  Derivation over = ParseOrDie(ReadDrv(ManifestDrv("dep")));
  over.input_derivations.push_back({.drv_path = ManifestDrv("ca"), .output_names = {"out"}});
  const StorePath over_path = DrvPathOf(over, "attest-dep");
  graph.Add(over_path, over);
  hash = graph.HashModulo(over_path);
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr(ManifestDrv("ca").full()));
}

TEST(DerivationPathsTest, DerivationsNixRefusesAreInvalid) {
  DerivationGraph graph = GoldenGraph();
  // Uses an output its input does not have.
  Derivation drv = ParseOrDie(ReadDrv(ManifestDrv("lib")));
  drv.input_derivations[0].output_names = {"dev"};
  StorePath path = DrvPathOf(drv, "attest-lib");
  graph.Add(path, drv);
  absl::StatusOr<Sha256Digest> hash = graph.HashModulo(path);
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr("uses output 'dev' of " + ManifestDrv("dep").full()));

  // Mixes an input-addressed and a fixed output.
  Derivation mixed = ParseOrDie(ReadDrv(ManifestDrv("lib")));
  mixed.outputs[0] = ParseOrDie(ReadDrv(ManifestDrv("fixed"))).outputs[0];
  mixed.outputs[0].name = "dev";
  path = DrvPathOf(mixed, "attest-lib");
  graph.Add(path, mixed);
  hash = graph.HashModulo(path);
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr("mixes"));

  // A fixed output not named out.
  Derivation renamed = ParseOrDie(ReadDrv(ManifestDrv("fixed")));
  renamed.outputs[0].name = "bin";
  path = DrvPathOf(renamed, "attest-fixed");
  graph.Add(path, renamed);
  EXPECT_EQ(graph.ExpectedOutputPaths(path).status().code(), absl::StatusCode::kInvalidArgument);
}

// A chain of `levels` derivations, each using the one before; returns their paths, bottom first.
std::vector<StorePath> AddChain(DerivationGraph& graph, int levels) {
  std::vector<StorePath> paths;
  paths.reserve(levels);
  for (int i = 0; i < levels; ++i) {
    const std::string name = "chain-" + std::to_string(i);
    Derivation drv;
    drv.outputs.push_back({.name = "out",
                           .path = *MakeStorePath("output:out", Sha256(name), name),
                           .hash_algo = "",
                           .hash = ""});
    if (!paths.empty()) drv.input_derivations.push_back({.drv_path = paths.back(), .output_names = {"out"}});
    drv.platform = "x86_64-linux";
    drv.builder = "/bin/sh";
    drv.env = {{"name", name}, {"out", drv.outputs[0].path->full()}};
    paths.push_back(DrvPathOf(drv, name));
    graph.Add(paths.back(), std::move(drv));
  }
  return paths;
}

TEST(DerivationPathsTest, DeepChainIsRefusedWithoutExhaustingTheStack) {
  DerivationGraph graph;
  const std::vector<StorePath> chain = AddChain(graph, 20000);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Sha256Digest> hash = graph.HashModulo(chain.back());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr("longer than 10000"));
  EXPECT_EQ(graph.CheckOutputPaths(chain.back()).code(), absl::StatusCode::kInvalidArgument);
  // Refused as soon as the bound is passed, not after walking the chain (generous, for sanitizers).
  EXPECT_LT(elapsed, std::chrono::seconds(20));
}

TEST(DerivationPathsTest, ChainOfExactlyTheBoundIsFollowed) {
  DerivationGraph at_bound;
  std::vector<StorePath> chain = AddChain(at_bound, kMaxDerivationDepth + 1);  // the top plus 10,000 below
  EXPECT_TRUE(at_bound.HashModulo(chain.back()).ok()) << at_bound.HashModulo(chain.back()).status();

  DerivationGraph over_bound;
  chain = AddChain(over_bound, kMaxDerivationDepth + 2);
  EXPECT_EQ(over_bound.HashModulo(chain.back()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DerivationPathsTest, CycleIsInvalid) {
  // Content-addressed .drv files cannot form a cycle, but a graph can be given any paths.
  const StorePath a = testing::TestStorePath("a.drv");
  const StorePath b = testing::TestStorePath("b.drv");
  Derivation drv = ParseOrDie(ReadDrv(ManifestDrv("dep")));
  Derivation drv_a = drv;
  drv_a.input_derivations.push_back({.drv_path = b, .output_names = {"out"}});
  Derivation drv_b = drv;
  drv_b.input_derivations.push_back({.drv_path = a, .output_names = {"out"}});
  DerivationGraph graph;
  graph.Add(a, drv_a);
  graph.Add(b, drv_b);
  absl::StatusOr<Sha256Digest> hash = graph.HashModulo(a);
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(hash.status().message()), HasSubstr("cycle"));

  const StorePath self = testing::TestStorePath("self.drv");
  Derivation drv_self = drv;
  drv_self.input_derivations.push_back({.drv_path = self, .output_names = {"out"}});
  graph.Add(self, drv_self);
  EXPECT_EQ(graph.HashModulo(self).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DerivationPathsTest, AddKeepsTheFirst) {
  DerivationGraph graph;
  const StorePath dep = ManifestDrv("dep");
  graph.Add(dep, ParseOrDie(ReadDrv(dep)));
  graph.Add(dep, ParseOrDie(ReadDrv(ManifestDrv("lib"))));
  ASSERT_NE(graph.Find(dep), nullptr);
  EXPECT_EQ(graph.Find(dep)->name(), "attest-dep");
  EXPECT_EQ(graph.Find(ManifestDrv("lib")), nullptr);
  EXPECT_FALSE(graph.Contains(ManifestDrv("lib")));
}

}  // namespace
}  // namespace attest::consensus
