// Strict decimal parsing shared by the text formats (narinfo, path-info JSON). Thread-safe.
#ifndef ATTEST_CONSENSUS_STRICT_DECIMAL_H_
#define ATTEST_CONSENSUS_STRICT_DECIMAL_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace attest::consensus {

// Digits only, no sign, no leading zero (except "0" itself), no overflow. nullopt otherwise.
inline std::optional<uint64_t> ParseStrictDecimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

}  // namespace attest::consensus

#endif  // ATTEST_CONSENSUS_STRICT_DECIMAL_H_
