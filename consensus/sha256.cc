#include "consensus/sha256.h"

#include <sodium.h>

namespace attest::consensus {

std::array<uint8_t, 32> Sha256(std::string_view data) {
  static_assert(crypto_hash_sha256_BYTES == 32);
  std::array<uint8_t, 32> out{};
  // crypto_hash_sha256 cannot fail, and needs no sodium_init(): it has no runtime-selected code.
  crypto_hash_sha256(out.data(), reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return out;
}

}  // namespace attest::consensus
