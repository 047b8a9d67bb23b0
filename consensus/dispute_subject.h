// DisputeSubject: what a dispute (and a maintainer's statement about it) is about. Either a store path,
// when counted builders signed different narinfo fingerprints for it, or a derivation output, when
// counted builders signed realisations mapping it to different output paths (a nondeterministic
// content-addressed derivation, consensus/realisation.h).
//
// Both kinds share one id scheme (DisputeId): the id is derived from the subject's text alone, so every
// node names a dispute the same way. A store path never contains '!' or '^' and a realisation key always
// does, so the two kinds of text, and therefore their ids, cannot collide.
//
// In signed notes the subject is one line: "path <full store path>" or "realisation <canonical key>".
//
// Immutable value type; thread-safe.
#ifndef ATTEST_CONSENSUS_DISPUTE_SUBJECT_H_
#define ATTEST_CONSENSUS_DISPUTE_SUBJECT_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/realisation.h"
#include "consensus/store_path.h"

namespace attest::consensus {

class DisputeSubject final {
 public:
  // Implicit: most disputes are about store paths, and a key is as plainly a subject.
  DisputeSubject(StorePath path);      // NOLINT(google-explicit-constructor)
  DisputeSubject(RealisationKey key);  // NOLINT(google-explicit-constructor)

  bool is_realisation() const { return realisation_.has_value(); }
  // The store path; only for !is_realisation().
  const StorePath& path() const { return *path_; }
  // The derivation output; only for is_realisation().
  const RealisationKey& realisation() const { return *realisation_; }

  // The full store path, or the key's canonical text: what the id hashes and the notes name.
  std::string ToString() const;
  // What a person searches and reads (disputes filtered by name match it): the path's name
  // ("hello-2.12"), or a realisation key's text (it names the derivation in the 2.35 format).
  std::string Name() const;
  // "store path" or "derivation output": for messages.
  std::string_view KindName() const;

  // The note line without its '\n': "path <full>" or "realisation <key>".
  std::string NoteLine() const;
  // Parses NoteLine()'s output. INVALID_ARGUMENT naming the problem (neither keyword, a bad path or key).
  static absl::StatusOr<DisputeSubject> ParseNoteLine(std::string_view line);
  // Parses a path or a key, told apart by RealisationKey::LooksLikeKey.
  static absl::StatusOr<DisputeSubject> Parse(std::string_view text);

  // OK when `fingerprint` is a claim about this subject: a narinfo fingerprint of the path, or a
  // realisation fingerprint of the key. INVALID_ARGUMENT naming the problem otherwise ("fingerprint is
  // about X, not Y", or why it does not parse).
  absl::Status CheckFingerprint(std::string_view fingerprint) const;

  friend bool operator==(const DisputeSubject&, const DisputeSubject&) = default;

 private:
  std::optional<StorePath> path_;
  std::optional<RealisationKey> realisation_;
};

// "d-" + the first 16 bytes of SHA-256("attest/dispute-id/v1\n" + subject.ToString()), in hex.
std::string DisputeId(const DisputeSubject& subject);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_DISPUTE_SUBJECT_H_
