// The node's config file (server::ParseNodeConfig, TOML through toml++) and listen addresses
// (ParseListenAddress). What parses also passes the config checks code-built configs go through.
#include <cstddef>
#include <cstdint>

#include "server/node_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::server;
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<NodeConfig> config = ParseNodeConfig(input, "/etc/attest/node.toml");
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument, config.status().ToString());
  } else {
    const absl::Status valid = ValidateNodeConfig(*config);
    FUZZ_CHECK(valid.ok(), valid.ToString());
  }
  absl::StatusOr<ListenAddress> address = ParseListenAddress(input);
  if (address.ok()) FUZZ_CHECK(address->port >= 0 && address->port <= 65535, input);
  return 0;
}
