// Byte encodings Nix uses: nix32 (Nix's base-32), base16 and standard base64.
//
// Pure functions; thread-safe.
#ifndef ATTEST_CONSENSUS_ENCODING_H_
#define ATTEST_CONSENSUS_ENCODING_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace attest::consensus {

// Nix's base-32 alphabet ("0123456789abcdfghijklmnpqrsvwxyz", no e o t u).
inline constexpr std::string_view kNix32Alphabet = "0123456789abcdfghijklmnpqrsvwxyz";

// Length of the nix32 text for `byte_count` bytes: ceil(8 * n / 5).
size_t Nix32Length(size_t byte_count);

// Encodes as Nix does (most significant 5-bit group first, walking the bytes from the end).
std::string Nix32Encode(std::span<const uint8_t> bytes);

// Decodes nix32 text into exactly `byte_count` bytes. INVALID_ARGUMENT on a wrong length, a character
// outside the alphabet, or non-zero padding bits.
absl::StatusOr<std::vector<uint8_t>> Nix32Decode(std::string_view text, size_t byte_count);

// Lower-case hex.
std::string HexEncode(std::span<const uint8_t> bytes);
// Accepts upper and lower case. INVALID_ARGUMENT on odd length or a non-hex character.
absl::StatusOr<std::vector<uint8_t>> HexDecode(std::string_view text);

// Standard alphabet, '=' padded.
std::string Base64Encode(std::span<const uint8_t> bytes);
// Strict: standard alphabet, correct padding, no whitespace. INVALID_ARGUMENT otherwise.
absl::StatusOr<std::vector<uint8_t>> Base64Decode(std::string_view text);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_ENCODING_H_
