// Shared by the server tests of the rebuild loop: well-formed .drv files made in code, with the output
// paths and store paths Nix would give them (consensus/derivation_paths.h, itself checked against real
// Nix in tests/consensus). Header-only.
#ifndef ATTEST_TESTS_SERVER_DERIVATION_TEST_UTIL_H_
#define ATTEST_TESTS_SERVER_DERIVATION_TEST_UTIL_H_

#include <algorithm>
#include <map>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/derivation.h"
#include "consensus/derivation_paths.h"
#include "consensus/store_path.h"
#include "gtest/gtest.h"

namespace attest::testing {

struct TestDrv final {
  consensus::StorePath path;      // the .drv
  std::string contents;           // its ATerm text
  consensus::StorePath out;       // its output "out"
  consensus::Derivation parsed;
  // Every input derivation it needs, transitively (HashModulo follows them all).
  std::vector<std::pair<consensus::StorePath, consensus::Derivation>> inputs_closure;
};

// An input-addressed derivation `name` (one output "out") whose builder script names its inputs.
inline TestDrv MakeTestDrv(const std::string& name, const std::vector<const TestDrv*>& inputs = {},
                           const std::string& script = "echo hello > $out") {
  consensus::Derivation drv;
  drv.platform = "x86_64-linux";
  drv.builder = "/bin/sh";
  std::string text = script;
  for (const TestDrv* input : inputs) {
    drv.input_derivations.push_back(consensus::DerivationInput{.drv_path = input->path, .output_names = {"out"}});
    absl::StrAppend(&text, " ", input->out.full());
  }
  std::sort(drv.input_derivations.begin(), drv.input_derivations.end(),
            [](const auto& a, const auto& b) { return a.drv_path < b.drv_path; });
  drv.args = {"-c", text};
  drv.outputs.push_back(consensus::DerivationOutput{.name = "out", .path = std::nullopt, .hash_algo = "", .hash = ""});
  drv.env = {{"builder", "/bin/sh"}, {"name", name}, {"out", ""}, {"system", "x86_64-linux"}};

  // The output path follows from the derivation with its outputs masked; the graph needs its inputs.
  consensus::DerivationGraph graph;
  std::vector<std::pair<consensus::StorePath, consensus::Derivation>> closure;
  for (const TestDrv* input : inputs) {
    closure.insert(closure.end(), input->inputs_closure.begin(), input->inputs_closure.end());
    closure.emplace_back(input->path, input->parsed);
  }
  for (const auto& [path, parsed] : closure) graph.Add(path, parsed);
  // Output paths are named after the .drv's name, so the stand-in path has the right one.
  absl::StatusOr<consensus::StorePath> placeholder =
      consensus::StorePath::Parse(absl::StrCat("/nix/store/00000000000000000000000000000000-", name, ".drv"));
  EXPECT_TRUE(placeholder.ok());
  consensus::Derivation masked = drv;
  masked.outputs[0].path = consensus::StorePath::Parse(
      absl::StrCat("/nix/store/00000000000000000000000000000000-", name)).value();
  graph.Add(*placeholder, masked);
  absl::StatusOr<std::map<std::string, consensus::StorePath>> outputs = graph.ExpectedOutputPaths(*placeholder);
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  const consensus::StorePath out = outputs->at("out");
  drv.outputs[0].path = out;
  drv.env[2].second = out.full();
  std::string contents = consensus::UnparseDerivation(drv);
  absl::StatusOr<consensus::StorePath> path = consensus::TextStorePath(
      absl::StrCat(name, ".drv"), contents, consensus::DerivationReferences(drv));
  EXPECT_TRUE(path.ok()) << path.status();
  return TestDrv{.path = *path,
                 .contents = std::move(contents),
                 .out = out,
                 .parsed = std::move(drv),
                 .inputs_closure = std::move(closure)};
}

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SERVER_DERIVATION_TEST_UTIL_H_
