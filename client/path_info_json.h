// Parsing `nix path-info --json` output: what a builder has in its store, ready to be signed.
//
// Accepted forms:
//   - Nix 2.8 .. 2.18, a list:   [{"path": "/nix/store/...", "narHash": ..., "narSize": ..., ...}, ...]
//   - Nix 2.19 and later, a map: {"/nix/store/...": {"narHash": ..., ...}, ...}
//     (a null value means the path is not valid in that store: an error)
// Store paths (the path, references, deriver) may be full paths or base names (json-format 2).
// narHash may be any form Nix prints: SRI "sha256-<base64>", "sha256:<nix32>", "sha256:<hex>",
// "sha256:<base64>", or the structured {"algorithm": "sha256", "format": ..., "hash": ...}.
// Only path, narHash, narSize and references are needed; deriver, ultimate, registrationTime and
// signatures are read when present; everything else is ignored.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CLIENT_PATH_INFO_JSON_H_
#define ATTEST_CLIENT_PATH_INFO_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "consensus/path_info.h"
#include "consensus/store_path.h"

namespace attest::client {

struct NixPathInfo final {
  consensus::PathInfo claim;
  std::optional<consensus::StorePath> deriver;
  // The output name, from an explicit "outputName" field or derived from the deriver's name (an output
  // "out" is named like the derivation, others "<drv name>-<output>"); empty when unknown.
  std::string output_name;
  bool ultimate = false;                // built here, not substituted
  int64_t registration_time = 0;        // seconds; 0 when absent
  std::vector<std::string> signatures;  // as listed; not checked here
};

// INVALID_ARGUMENT naming the entry (index and path) and the field that is missing or malformed.
absl::StatusOr<std::vector<NixPathInfo>> ParsePathInfoJson(std::string_view text);

// "out" when `output` is named like `deriver` without ".drv", "<x>" when it is "<drv name>-<x>",
// otherwise empty.
std::string GuessOutputName(const consensus::StorePath& output, const consensus::StorePath& deriver);

}  // namespace attest::client

#endif  // ATTEST_CLIENT_PATH_INFO_JSON_H_
