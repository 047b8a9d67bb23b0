// attestd: the attest node. Its flags, signals and exit codes are RunAttestd's (server/node_main.h),
// shared with the test build of attestd; a real node runs with the default NodeOptions.
//
//   attestd --config FILE     run the node described by FILE (see docs/node.md)
//   attestd restore --from-peers --config FILE
//                             get the node's log back from its peers (server/restore.h), then exit
//   attestd --help | --version
//
// Exit codes: 0 after a clean shutdown (SIGTERM / SIGINT), 1 on a startup error (one line on stderr
// naming the file and the problem), 2 on a usage error.
#include "server/node.h"
#include "server/node_main.h"

int main(int argc, char** argv) { return attest::server::RunAttestd(argc, argv, attest::server::NodeOptions{}); }
