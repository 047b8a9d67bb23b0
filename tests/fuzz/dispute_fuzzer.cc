// Dispute records (consensus::DisputeRecord): the note text (FromNoteText, strict: ToNoteText gives
// back the same bytes), whole signed notes (FromSignedNote), and the evidence check against a policy.
#include <cstddef>
#include <cstdint>

#include "consensus/dispute.h"
#include "tests/fuzz/fuzz_policy.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const Policy policy = attest::fuzz::FuzzPolicy();
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<DisputeRecord> record = DisputeRecord::FromNoteText(input);
  if (record.ok()) {
    FUZZ_CHECK(record->ToNoteText() == input, record->ToNoteText());
    FUZZ_CHECK(record->id == DisputeId(record->subject), record->id);
    (void)VerifyDisputeEvidence(*record, policy);
  }
  absl::StatusOr<DisputeRecord> from_note = DisputeRecord::FromSignedNote(input);
  if (from_note.ok()) {
    (void)VerifyDisputeEvidence(*from_note, policy);
  }
  return 0;
}
