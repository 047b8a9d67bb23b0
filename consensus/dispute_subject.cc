#include "consensus/dispute_subject.h"

#include <array>
#include <cstdint>
#include <span>
#include <utility>

#include "consensus/encoding.h"
#include "consensus/path_info.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

constexpr std::string_view kDisputeIdDomain = "attest/dispute-id/v1\n";
constexpr size_t kDisputeIdBytes = 16;
constexpr std::string_view kPathKeyword = "path ";
constexpr std::string_view kRealisationKeyword = "realisation ";

}  // namespace

DisputeSubject::DisputeSubject(StorePath path) : path_(std::move(path)) {}
DisputeSubject::DisputeSubject(RealisationKey key) : realisation_(std::move(key)) {}

std::string DisputeSubject::ToString() const { return is_realisation() ? realisation_->ToString() : path_->full(); }

std::string DisputeSubject::Name() const {
  return is_realisation() ? realisation_->ToString() : std::string(path_->name());
}

std::string_view DisputeSubject::KindName() const { return is_realisation() ? "derivation output" : "store path"; }

std::string DisputeSubject::NoteLine() const {
  return is_realisation() ? Cat(kRealisationKeyword, realisation_->ToString()) : Cat(kPathKeyword, path_->full());
}

absl::StatusOr<DisputeSubject> DisputeSubject::ParseNoteLine(std::string_view line) {
  if (line.starts_with(kPathKeyword)) {
    absl::StatusOr<StorePath> path = StorePath::Parse(line.substr(kPathKeyword.size()));
    if (!path.ok()) return path.status();
    return DisputeSubject(*std::move(path));
  }
  if (line.starts_with(kRealisationKeyword)) {
    const std::string_view text = line.substr(kRealisationKeyword.size());
    absl::StatusOr<RealisationKey> key = RealisationKey::Parse(text);
    if (!key.ok()) return key.status();
    // Canonical text only, so a note round-trips byte for byte.
    if (key->ToString() != text) {
      return absl::InvalidArgumentError(
          Cat("realisation key ", QuoteForError(text), " is not in its canonical form ", key->ToString()));
    }
    return DisputeSubject(*std::move(key));
  }
  return absl::InvalidArgumentError(
      Cat("expected \"path <store path>\" or \"realisation <key>\", got ", QuoteForError(line)));
}

absl::StatusOr<DisputeSubject> DisputeSubject::Parse(std::string_view text) {
  if (RealisationKey::LooksLikeKey(text)) {
    absl::StatusOr<RealisationKey> key = RealisationKey::Parse(text);
    if (!key.ok()) return key.status();
    return DisputeSubject(*std::move(key));
  }
  absl::StatusOr<StorePath> path = StorePath::Parse(text);
  if (!path.ok()) return path.status();
  return DisputeSubject(*std::move(path));
}

absl::Status DisputeSubject::CheckFingerprint(std::string_view fingerprint) const {
  if (is_realisation()) {
    absl::StatusOr<Realisation> claim = Realisation::ParseFingerprint(fingerprint);
    if (!claim.ok()) return claim.status();
    if (claim->key != *realisation_) {
      return absl::InvalidArgumentError(
          Cat("fingerprint is about ", claim->key.ToString(), ", not ", realisation_->ToString()));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<PathInfo> claim = PathInfo::ParseFingerprint(fingerprint);
  if (!claim.ok()) return claim.status();
  if (claim->path != *path_) {
    return absl::InvalidArgumentError(Cat("fingerprint is about ", claim->path.full(), ", not ", path_->full()));
  }
  return absl::OkStatus();
}

std::string DisputeId(const DisputeSubject& subject) {
  std::array<uint8_t, 32> digest = Sha256(Cat(kDisputeIdDomain, subject.ToString()));
  return Cat("d-", HexEncode(std::span<const uint8_t>(digest.data(), kDisputeIdBytes)));
}

}  // namespace attest::consensus
