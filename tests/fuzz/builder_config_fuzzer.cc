// The builder's config file (client::ParseBuilderConfig, TOML through toml++).
#include <cstddef>
#include <cstdint>

#include "client/builder_config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::client;
  absl::StatusOr<BuilderConfig> config =
      ParseBuilderConfig(attest::fuzz::AsText(data, size), "/etc/attest/builder.toml");
  if (!config.ok()) {
    FUZZ_CHECK(config.status().code() == absl::StatusCode::kInvalidArgument, config.status().ToString());
    return 0;
  }
  FUZZ_CHECK(!config->nodes.empty(), "a config without nodes was accepted");
  return 0;
}
