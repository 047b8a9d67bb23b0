// A node that equivocates, for tests of fork detection: a CheckpointServing (server/log_publisher.h)
// that hands out a forged second checkpoint of the node's log.
//
// For the latest checkpoint the node signed (size > 0), it signs with the node key a second checkpoint
// of the same size whose last leaf hash is altered: its root differs, yet it is consistent with every
// smaller checkpoint, so only comparing checkpoints of this size (or a later one) shows the fork. The
// forgery is never stored. Answers alternate: the 1st, 3rd, ... client gets the genuine checkpoint,
// the 2nd, 4th, ... the forgery. Tiles and proofs follow the genuine log. When the log cannot be read
// to forge, the genuine checkpoint is served (and a warning logged).
//
// Used in-process through NodeOptions::serve_checkpoint, and by attestd_forking
// (tests/e2e/forking_attestd_main.cc) for end-to-end tests.
//
// Thread-safe.
#ifndef ATTEST_TESTS_SUPPORT_CHECKPOINT_FORGERY_H_
#define ATTEST_TESTS_SUPPORT_CHECKPOINT_FORGERY_H_

#include "consensus/keys.h"
#include "server/log_publisher.h"
#include "storage/transparency_log_store.h"

namespace attest::testing {

// A server::CheckpointServingFactory. `log` and `node_key` must outlive what it returns.
server::CheckpointServing ForgeEveryOtherCheckpoint(storage::TransparencyLogStore* log,
                                                    const consensus::SecretKey& node_key);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SUPPORT_CHECKPOINT_FORGERY_H_
