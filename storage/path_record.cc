#include "storage/path_record.h"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "consensus/encoding.h"
#include "consensus/sha256.h"
#include "consensus/text.h"

namespace attest::storage {
namespace {

// Bumped if the encoding ever changes; a record with an unknown format byte is refused, not guessed
// at. Format 1 lacks the origin id (every signature was submitted to the node); format 2 lacks the
// checksum; both are still read.
constexpr uint8_t kFormatWithoutOrigin = 1;
constexpr uint8_t kFormatWithoutChecksum = 2;
constexpr uint8_t kFormat = 3;
constexpr size_t kChecksumBytes = 8;

// The first bytes of SHA-256 over a header, the row's store path and the record (format byte and
// body): a changed byte, or a record moved to another path's row, no longer matches.
std::array<uint8_t, kChecksumBytes> Checksum(std::string_view path, std::span<const uint8_t> record,
                                             std::string_view header = "attest/path-record/v3") {
  std::string input = consensus::Cat(header, "\n", path, "\n");
  input.append(reinterpret_cast<const char*>(record.data()), record.size());
  const std::array<uint8_t, 32> digest = consensus::Sha256(input);
  std::array<uint8_t, kChecksumBytes> out;
  std::copy_n(digest.begin(), kChecksumBytes, out.begin());
  return out;
}
constexpr size_t kPathHashBytes = 20;

// Deriver tags: none, the previous signature's deriver (builders of one path almost always name
// the same .drv), or explicit bytes (the tag minus kDeriverExplicit is their length).
constexpr uint64_t kDeriverNone = 0;
constexpr uint64_t kDeriverSame = 1;
constexpr uint64_t kDeriverExplicit = 2;

void PutVarint(std::vector<uint8_t>& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<uint8_t>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<uint8_t>(value));
}

// Signed differences (times relative to each other) as small unsigned varints.
uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }
// Times are stored as differences. They are taken modulo 2^64 so that no stored value (a damaged
// record holds any) makes the arithmetic overflow, and every int64 time round-trips.
int64_t WrappingAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t WrappingSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}

void PutBytes(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}
void PutBytes(std::vector<uint8_t>& out, std::string_view bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Reads from the front of a record; the first failure sticks and names what was being read.
class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> in) : in_(in) {}

  bool Varint(uint64_t& value, std::string_view what) {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return Fail(what);
      const uint8_t byte = in_.front();
      in_ = in_.subspan(1);
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return Fail(what);
  }
  bool Int(int64_t& value, std::string_view what) {
    uint64_t v;
    if (!Varint(v, what)) return false;
    if (v > static_cast<uint64_t>(INT64_MAX)) return Fail(what);
    value = static_cast<int64_t>(v);
    return true;
  }
  bool Bytes(size_t n, std::span<const uint8_t>& out, std::string_view what) {
    if (in_.size() < n) return Fail(what);
    out = in_.first(n);
    in_ = in_.subspan(n);
    return true;
  }
  template <size_t N>
  bool Array(std::array<uint8_t, N>& out, std::string_view what) {
    std::span<const uint8_t> bytes;
    if (!Bytes(N, bytes, what)) return false;
    std::ranges::copy(bytes, out.begin());
    return true;
  }
  bool done() const { return in_.empty(); }
  size_t left() const { return in_.size(); }
  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string_view what) {
    if (error_.empty()) error_ = consensus::Cat("path record truncated in ", what);
    return false;
  }
  std::span<const uint8_t> in_;
  std::string error_;
};

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(consensus::Cat("malformed path record: ", what));
}

void EncodeSignatures(const std::vector<RecordSignature>& signatures, std::vector<uint8_t>& out) {
  PutVarint(out, signatures.size());
  int64_t previous_received = 0;
  const std::string* previous_deriver = nullptr;
  for (const RecordSignature& sig : signatures) {
    PutVarint(out, sig.claim);
    PutVarint(out, static_cast<uint64_t>(sig.key_id));
    PutBytes(out, sig.signature);
    PutVarint(out, ZigZag(WrappingSub(sig.received_unix, previous_received)));
    previous_received = sig.received_unix;
    PutVarint(out, static_cast<uint64_t>(sig.observed_key_id));
    if (sig.deriver.empty()) {
      PutVarint(out, kDeriverNone);
    } else if (previous_deriver != nullptr && *previous_deriver == sig.deriver) {
      PutVarint(out, kDeriverSame);
    } else {
      PutVarint(out, kDeriverExplicit + sig.deriver.size());
      PutBytes(out, sig.deriver);
    }
    previous_deriver = &sig.deriver;
    PutVarint(out, static_cast<uint64_t>(sig.output_id));
    PutVarint(out, static_cast<uint64_t>(sig.system_id));
    PutVarint(out, static_cast<uint64_t>(sig.build_kind));
    PutVarint(out, ZigZag(WrappingSub(sig.build_time_unix, sig.received_unix)));
    PutVarint(out, static_cast<uint64_t>(sig.origin_id));
  }
}

// The signatures of a record whose claims are `claims` many.
absl::Status DecodeSignatures(Cursor& in, size_t claims, bool has_origin, std::vector<RecordSignature>& signatures) {
  uint64_t count;
  if (!in.Varint(count, "the signature count")) return Malformed(in.error());
  if (count > in.left() / 70) return Malformed(consensus::Cat("signature count ", count));
  signatures.resize(count);
  int64_t previous_received = 0;
  const std::string* previous_deriver = nullptr;
  for (RecordSignature& sig : signatures) {
    uint64_t claim, received, deriver_tag, kind, build_time;
    if (!in.Varint(claim, "a signature's claim") || !in.Int(sig.key_id, "a key id") ||
        !in.Array(sig.signature, "a signature") || !in.Varint(received, "a receive time") ||
        !in.Int(sig.observed_key_id, "an observed key id") || !in.Varint(deriver_tag, "a deriver")) {
      return Malformed(in.error());
    }
    if (claim >= claims) {
      return Malformed(consensus::Cat("a signature of claim ", claim, " of ", claims));
    }
    sig.claim = static_cast<uint32_t>(claim);
    sig.received_unix = WrappingAdd(previous_received, UnZigZag(received));
    previous_received = sig.received_unix;
    if (deriver_tag == kDeriverSame) {
      if (previous_deriver == nullptr || previous_deriver->empty()) {
        return Malformed("a deriver repeating none");
      }
      sig.deriver = *previous_deriver;
    } else if (deriver_tag >= kDeriverExplicit) {
      std::span<const uint8_t> deriver;
      if (!in.Bytes(deriver_tag - kDeriverExplicit, deriver, "a deriver")) return Malformed(in.error());
      if (deriver.size() < kPathHashBytes) return Malformed("a deriver shorter than its hash");
      sig.deriver.assign(reinterpret_cast<const char*>(deriver.data()), deriver.size());
    }
    previous_deriver = &sig.deriver;
    if (!in.Int(sig.output_id, "an output id") || !in.Int(sig.system_id, "a system id") ||
        !in.Varint(kind, "a build kind") || !in.Varint(build_time, "a build time")) {
      return Malformed(in.error());
    }
    sig.build_kind = static_cast<int64_t>(std::min<uint64_t>(kind, INT64_MAX));
    sig.build_time_unix = WrappingAdd(sig.received_unix, UnZigZag(build_time));
    if (has_origin && !in.Int(sig.origin_id, "an origin id")) return Malformed(in.error());
  }
  return absl::OkStatus();
}

}  // namespace

void EncodePathRecord(const PathRecord& record, std::string_view path, std::vector<uint8_t>& out) {
  const size_t start = out.size();
  out.push_back(kFormat);
  PutVarint(out, record.claims.size());
  for (const RecordClaim& claim : record.claims) {
    PutBytes(out, claim.nar_hash);
    PutVarint(out, claim.nar_size);
    PutVarint(out, claim.references.size());
    for (const consensus::StorePath& ref : claim.references) {
      // A valid store path's hash part always decodes to 20 bytes.
      auto hash = consensus::Nix32Decode(ref.hash_part(), kPathHashBytes);
      PutBytes(out, *hash);
      PutVarint(out, ref.name().size());
      PutBytes(out, ref.name());
    }
  }
  EncodeSignatures(record.signatures, out);
  const std::array<uint8_t, kChecksumBytes> checksum = Checksum(path, std::span(out).subspan(start));
  out.insert(out.end(), checksum.begin(), checksum.end());
}

absl::StatusOr<PathRecord> DecodePathRecord(std::span<const uint8_t> bytes, std::string_view path) {
  if (bytes.empty()) return Malformed("empty");
  if (bytes[0] != kFormat && bytes[0] != kFormatWithoutChecksum && bytes[0] != kFormatWithoutOrigin) {
    return Malformed(consensus::Cat("unknown format ", int{bytes[0]}));
  }
  if (bytes[0] == kFormat) {
    // Checked before anything is decoded: a damaged record is never half-believed.
    if (bytes.size() < 1 + kChecksumBytes) return Malformed("shorter than its checksum");
    const std::span<const uint8_t> record = bytes.first(bytes.size() - kChecksumBytes);
    const std::array<uint8_t, kChecksumBytes> expected = Checksum(path, record);
    if (!std::ranges::equal(expected, bytes.last(kChecksumBytes))) {
      return absl::DataLossError(consensus::Cat("the stored record of ", path,
                                                " fails its checksum (a byte of it was changed, or it was "
                                                "moved from another path's row)"));
    }
    bytes = record;
  }
  const bool has_origin = bytes[0] != kFormatWithoutOrigin;
  Cursor in(bytes.subspan(1));
  PathRecord record;
  uint64_t count;
  if (!in.Varint(count, "the claim count")) return Malformed(in.error());
  // Each claim takes at least 34 bytes: a count beyond that is corruption, not a reason to allocate.
  if (count > in.left() / 34) return Malformed(consensus::Cat("claim count ", count));
  record.claims.resize(count);
  std::string full;
  for (RecordClaim& claim : record.claims) {
    uint64_t refs;
    if (!in.Array(claim.nar_hash, "a NAR hash") || !in.Varint(claim.nar_size, "a NAR size") ||
        !in.Varint(refs, "a reference count")) {
      return Malformed(in.error());
    }
    if (refs > in.left() / (kPathHashBytes + 2)) return Malformed(consensus::Cat("reference count ", refs));
    claim.references.reserve(refs);
    for (uint64_t r = 0; r < refs; ++r) {
      std::span<const uint8_t> hash, name;
      uint64_t name_size;
      if (!in.Bytes(kPathHashBytes, hash, "a reference") || !in.Varint(name_size, "a reference") ||
          !in.Bytes(name_size, name, "a reference name")) {
        return Malformed(in.error());
      }
      full = consensus::Cat(consensus::kStoreDir, "/", consensus::Nix32Encode(hash), "-",
                            std::string_view(reinterpret_cast<const char*>(name.data()), name.size()));
      auto path = consensus::StorePath::Parse(full);
      if (!path.ok()) return Malformed(consensus::Cat("a reference: ", path.status().message()));
      claim.references.push_back(std::move(*path));
    }
  }
  if (absl::Status status = DecodeSignatures(in, record.claims.size(), has_origin, record.signatures); !status.ok()) {
    return status;
  }
  if (!in.done()) return Malformed(consensus::Cat(in.left(), " trailing bytes"));
  return record;
}

namespace {
constexpr uint8_t kRealisationFormat = 1;
constexpr std::string_view kRealisationChecksumHeader = "attest/realisation-record/v1";
}  // namespace

void EncodeRealisationRecord(const RealisationRecord& record, std::string_view key, std::vector<uint8_t>& out) {
  const size_t start = out.size();
  out.push_back(kRealisationFormat);
  PutVarint(out, record.fingerprints.size());
  for (const std::string& fingerprint : record.fingerprints) {
    PutVarint(out, fingerprint.size());
    PutBytes(out, fingerprint);
  }
  EncodeSignatures(record.signatures, out);
  const std::array<uint8_t, kChecksumBytes> checksum =
      Checksum(key, std::span(out).subspan(start), kRealisationChecksumHeader);
  out.insert(out.end(), checksum.begin(), checksum.end());
}

absl::StatusOr<RealisationRecord> DecodeRealisationRecord(std::span<const uint8_t> bytes, std::string_view key) {
  if (bytes.empty()) return Malformed("empty");
  if (bytes[0] != kRealisationFormat) return Malformed(consensus::Cat("unknown realisation format ", int{bytes[0]}));
  if (bytes.size() < 1 + kChecksumBytes) return Malformed("shorter than its checksum");
  const std::span<const uint8_t> body = bytes.first(bytes.size() - kChecksumBytes);
  if (!std::ranges::equal(Checksum(key, body, kRealisationChecksumHeader), bytes.last(kChecksumBytes))) {
    return absl::DataLossError(consensus::Cat("the stored realisation record of ", key,
                                              " fails its checksum (a byte of it was changed, or it was moved "
                                              "from another key's row)"));
  }
  Cursor in(body.subspan(1));
  RealisationRecord record;
  uint64_t count;
  if (!in.Varint(count, "the claim count")) return Malformed(in.error());
  if (count > in.left()) return Malformed(consensus::Cat("claim count ", count));
  record.fingerprints.resize(count);
  for (std::string& fingerprint : record.fingerprints) {
    uint64_t size;
    std::span<const uint8_t> text;
    if (!in.Varint(size, "a fingerprint") || !in.Bytes(size, text, "a fingerprint")) return Malformed(in.error());
    fingerprint.assign(reinterpret_cast<const char*>(text.data()), text.size());
  }
  if (absl::Status status = DecodeSignatures(in, record.fingerprints.size(), /*has_origin=*/true, record.signatures);
      !status.ok()) {
    return status;
  }
  if (!in.done()) return Malformed(consensus::Cat(in.left(), " trailing bytes"));
  return record;
}

}  // namespace attest::storage
