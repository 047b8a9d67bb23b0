// RunAttestd: the whole of attestd's main (flags, signals, exit codes), with the options the node is
// opened with. server/main.cc runs it with the defaults; a test build of attestd passes its own
// NodeOptions (a forging CheckpointServing: tests/e2e/forking_attestd_main.cc), so both parse the same
// flags and behave alike everywhere else.
//
//   attestd --config FILE [--check-database]
//   attestd restore --from-peers --config FILE
//   attestd --help | --version
//
// Returns the process's exit code: 0 after a clean shutdown (SIGTERM / SIGINT), 1 on a startup error
// (one line on stderr naming the file and the problem), 2 on a usage error. Call it once, from main,
// before any thread is started (it blocks the shutdown signals for every thread).
#ifndef ATTEST_SERVER_NODE_MAIN_H_
#define ATTEST_SERVER_NODE_MAIN_H_

#include "server/node.h"

namespace attest::server {

int RunAttestd(int argc, char** argv, NodeOptions options);

}  // namespace attest::server

#endif  // ATTEST_SERVER_NODE_MAIN_H_
