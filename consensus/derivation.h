// Derivation: a Nix `.drv` file, parsed from the ATerm text Nix writes into the store.
//
//   Derive([("out","/nix/store/<hash>-x","",""),...],           outputs: name, path, hash algo, hash
//          [("/nix/store/<hash>-y.drv",["out"]),...],           input derivations and their outputs used
//          ["/nix/store/<hash>-src"],                           input sources
//          "x86_64-linux","/bin/sh",["-c","..."],               platform, builder, args
//          [("name","value"),...])                              environment
//
// Strings use Nix's escapes (\" \\ \n \r \t); every other byte, control bytes and UTF-8 included, is
// written as is. The parser is strict: it accepts what Nix (2.8 and later, without the experimental
// `DrvWithVersion` form of dynamic derivations) writes, and rejects anything else with the byte offset
// of the problem: unknown escapes, raw newlines/tabs/carriage returns inside strings (Nix never writes
// them), malformed or duplicate store paths, duplicate output or environment names, an output whose
// path/hash-algo/hash combination Nix would not write, anything after the closing parenthesis.
//
// Output kinds (Nix 2.8 derivations.cc, parseDerivationOutput):
//   input-addressed  ("out", "/nix/store/...", "", "")
//   fixed-output     ("out", "/nix/store/...", "sha256" or "r:sha256", "<hex>")
//   floating CA      ("out", "", "r:sha256", "")      the path is known only after the build
//   deferred         ("out", "", "", "")              input-addressed over floating CA inputs
//
// Pure functions and value types; thread-safe.
#ifndef ATTEST_CONSENSUS_DERIVATION_H_
#define ATTEST_CONSENSUS_DERIVATION_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/store_path.h"

namespace attest::consensus {

struct DerivationOutput final {
  enum class Kind { kInputAddressed, kFixed, kFloating, kDeferred };

  std::string name;                // "out", "dev", ...
  std::optional<StorePath> path;   // nullopt when the .drv leaves it empty (floating CA, deferred)
  std::string hash_algo;           // as written: "", "sha256", "r:sha256", "text:sha256", ...
  std::string hash;                // lower-case hex for fixed-output outputs, else empty

  Kind kind() const;
};

struct DerivationInput final {
  StorePath drv_path;                     // a ".drv" store path
  std::vector<std::string> output_names;  // the outputs of it this derivation uses
};

struct Derivation final {
  std::vector<DerivationOutput> outputs;  // in file order (Nix writes them sorted by name)
  std::vector<DerivationInput> input_derivations;
  std::vector<StorePath> input_sources;
  std::string platform;  // "x86_64-linux"
  std::string builder;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // in file order, names unique

  // The output with that name, or nullptr.
  const DerivationOutput* FindOutput(std::string_view output_name) const;
  // The value of an environment variable, or nullopt.
  std::optional<std::string_view> EnvValue(std::string_view key) const;
  // The derivation's name: the "name" environment variable (empty when absent).
  std::string_view name() const;
  // The name part of an output's store path, as Nix forms it: "<name>" for "out",
  // "<name>-<output>" for the others. For a floating CA output this is how its built path is named.
  std::string OutputPathName(std::string_view output_name) const;
};

// Parses .drv text. `source` names the input in messages:
// INVALID_ARGUMENT "<source>: byte <offset>: <problem>" (offset counted from 0).
absl::StatusOr<Derivation> ParseDerivation(std::string_view text, std::string_view source);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_DERIVATION_H_
