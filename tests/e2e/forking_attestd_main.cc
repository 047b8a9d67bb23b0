// attestd_forking: attestd whose log equivocates, for end-to-end tests of fork detection. The same main
// as attestd (server/node_main.h), with a CheckpointServing that hands out a forged second checkpoint of
// every size to every other request (tests/support/checkpoint_forgery.h). Built only with the tests.
#include <utility>

#include "server/node.h"
#include "server/node_main.h"
#include "tests/support/checkpoint_forgery.h"

int main(int argc, char** argv) {
  attest::server::NodeOptions options;
  options.serve_checkpoint = attest::testing::ForgeEveryOtherCheckpoint;
  return attest::server::RunAttestd(argc, argv, std::move(options));
}
