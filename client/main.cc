// attest: the command-line tool. Everything but the process wiring lives in client/cli.h.
#include <sodium.h>

#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/cli.h"
#include "client/node_client.h"

int main(int argc, char** argv) {
  if (sodium_init() < 0) {
    std::cerr << "attest: libsodium failed to initialise\n";
    return 1;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* default_node = std::getenv("ATTEST_NODE");
  attest::client::CommandEnv env{
      .in = std::cin,
      .out = std::cout,
      .err = std::cerr,
      .connect_node = attest::client::ConnectGrpcNode,
      .random_bytes = [](std::span<uint8_t> bytes) { randombytes_buf(bytes.data(), bytes.size()); },
      .default_node = default_node != nullptr ? default_node : "",
      .env_var = [](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
      },
  };
  const int code = attest::client::RunCli(args, env);
  std::cout.flush();
  return code;
}
