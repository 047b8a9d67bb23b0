// C2SP signed notes (consensus::SignedNote::Parse) and note verifier keys (ParseNoteVerifierKey).
// The parser is strict, so an accepted note serialises back to the same bytes.
#include <cstddef>
#include <cstdint>

#include "consensus/signed_note.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attest::consensus;
  static const PublicKey key = attest::fuzz::FuzzKey("node-1").public_key();
  const std::string_view input = attest::fuzz::AsText(data, size);
  absl::StatusOr<SignedNote> note = SignedNote::Parse(input);
  if (note.ok()) {
    FUZZ_CHECK(note->Serialize() == input, note->Serialize());
    (void)VerifyNote(*note, key);
  }
  absl::StatusOr<PublicKey> vkey = ParseNoteVerifierKey(input);
  if (vkey.ok()) {
    // Not byte for byte: the key id's hex may be upper case, as Go's parser allows.
    absl::StatusOr<PublicKey> again = ParseNoteVerifierKey(NoteVerifierKey(*vkey));
    FUZZ_CHECK(again.ok() && *again == *vkey, NoteVerifierKey(*vkey));
    FUZZ_CHECK(ValidateNoteKeyName(vkey->name()).ok(), vkey->name());
  }
  return 0;
}
