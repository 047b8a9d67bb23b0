// Transparency-log checkpoints: the body (Checkpoint::ParseBody, which must give back the same
// bytes through Body()) and whole checkpoint notes verified with a log key (VerifyCheckpoint).
#include <cstddef>
#include <cstdint>

#include "consensus/checkpoint.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const PublicKey log_key = attest::fuzz::FuzzKey("node-1").public_key();
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<Checkpoint> body = Checkpoint::ParseBody(input);
  if (body.ok()) {
    FUZZ_CHECK(body->Body() == input, body->Body());
    FUZZ_CHECK(body->size <= kMaxTreeSize, input);
  }
  absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(input, log_key);
  if (verified.ok()) {
    FUZZ_CHECK(verified->origin == log_key.name(), input);
  }
  if (absl::StatusOr<SignedNote> note = SignedNote::Parse(input); note.ok()) {
    (void)VerifyCheckpoint(*note, log_key, "go.sum database tree");
  }
  return 0;
}
