// SHA-256 of a byte string (libsodium). Thread-safe.
#ifndef ATTEST_CONSENSUS_SHA256_H_
#define ATTEST_CONSENSUS_SHA256_H_

#include <array>
#include <cstdint>
#include <string_view>

namespace attest::consensus {

std::array<uint8_t, 32> Sha256(std::string_view data);

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_SHA256_H_
