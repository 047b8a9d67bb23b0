#include "consensus/encoding.h"

#include <sodium.h>

#include <array>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "consensus/text.h"

namespace attest::consensus {
namespace {

// Shows a character in an error message without letting control bytes into logs.
std::string Printable(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0xf];
}

constexpr int8_t kInvalid = -1;

constexpr std::array<int8_t, 256> MakeReverseTable(std::string_view alphabet) {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = kInvalid;
  for (size_t i = 0; i < alphabet.size(); ++i) {
    table[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}

constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::array<int8_t, 256> kNix32Reverse = MakeReverseTable(kNix32Alphabet);
constexpr std::array<int8_t, 256> kBase64Reverse = MakeReverseTable(kBase64Alphabet);

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

size_t Nix32Length(size_t byte_count) { return (byte_count * 8 + 4) / 5; }

// Nix (libutil/hash.cc, printHash32) reads the bytes as one little-endian number and prints its
// 5-bit digits from the most significant down; digit n covers bits [5n, 5n+5).
std::string Nix32Encode(std::span<const uint8_t> bytes) {
  const size_t len = Nix32Length(bytes.size());
  // Written in place (no push_back): every store path and fingerprint a status answer holds is
  // formatted through here.
  std::string out(len, '\0');
  for (size_t n = 0; n < len; ++n) {
    const size_t b = n * 5;
    const size_t i = b / 8;
    const size_t j = b % 8;
    unsigned int c = bytes[i] >> j;
    if (i + 1 < bytes.size()) c |= static_cast<unsigned int>(bytes[i + 1]) << (8 - j);
    out[len - 1 - n] = kNix32Alphabet[c & 0x1f];
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> Nix32Decode(std::string_view text, size_t byte_count) {
  const size_t expected = Nix32Length(byte_count);
  if (text.size() != expected) {
    return absl::InvalidArgumentError(
        Cat("nix32 text has ", text.size(), " characters; ", byte_count, " bytes need ", expected));
  }
  std::vector<uint8_t> out(byte_count, 0);
  for (size_t n = 0; n < text.size(); ++n) {
    const char c = text[text.size() - n - 1];
    const int8_t digit = kNix32Reverse[static_cast<unsigned char>(c)];
    if (digit == kInvalid) {
      return absl::InvalidArgumentError(
          Cat("nix32 text has ", Printable(c), " at offset ", text.size() - n - 1,
              ", which is not in the nix32 alphabet \"", kNix32Alphabet, "\" (no e, o, t, u)"));
    }
    const size_t b = n * 5;
    const size_t i = b / 8;
    const size_t j = b % 8;
    const unsigned int d = static_cast<unsigned int>(digit);
    out[i] |= static_cast<uint8_t>(d << j);
    const unsigned int carry = d >> (8 - j);
    if (i + 1 < byte_count) {
      out[i + 1] |= static_cast<uint8_t>(carry);
    } else if (carry != 0) {
      // The first character carries bits beyond the last byte; Nix rejects those too, so every
      // value has exactly one nix32 spelling.
      return absl::InvalidArgumentError(
          Cat("nix32 text starts with ", Printable(text[0]), ", which sets bits beyond ",
              byte_count, " bytes (the text is not the encoding of any hash of this size)"));
    }
  }
  return out;
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> HexDecode(std::string_view text) {
  if (text.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        Cat("hex text has an odd number of characters (", text.size(), ")"));
  }
  std::vector<uint8_t> out;
  out.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    const int hi = HexValue(text[i]);
    const int lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) {
      const size_t bad = hi < 0 ? i : i + 1;
      return absl::InvalidArgumentError(Cat("hex text has ", Printable(text[bad]), " at offset ",
                                            bad, ", which is not a hex digit"));
    }
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

std::string Base64Encode(std::span<const uint8_t> bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const size_t whole = bytes.size() / 3 * 3;
  out.resize(whole / 3 * 4);
  for (char* at = out.data(); i < whole; i += 3, at += 4) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8 | bytes[i + 2];
    at[0] = kBase64Alphabet[v >> 18];
    at[1] = kBase64Alphabet[(v >> 12) & 63];
    at[2] = kBase64Alphabet[(v >> 6) & 63];
    at[3] = kBase64Alphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest == 1) {
    const uint32_t v = uint32_t{bytes[i]} << 16;
    out.push_back(kBase64Alphabet[v >> 18]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    const uint32_t v = uint32_t{bytes[i]} << 16 | uint32_t{bytes[i + 1]} << 8;
    out.push_back(kBase64Alphabet[v >> 18]);
    out.push_back(kBase64Alphabet[(v >> 12) & 63]);
    out.push_back(kBase64Alphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

// Strict so that every byte string has exactly one accepted text: signatures and keys are compared
// and stored as text elsewhere, and two spellings of one signature must not count twice.
absl::StatusOr<std::vector<uint8_t>> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError(
        Cat("base64 text has ", text.size(),
            " characters, not a multiple of 4 (standard base64 is '='-padded)"));
  }
  size_t padding = 0;
  if (!text.empty() && text.back() == '=')
    padding = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  const size_t data_chars = text.size() - padding;
  std::vector<uint8_t> out;
  out.reserve(text.size() / 4 * 3);  // never reallocates, so no stray copy of the bytes is left
  // Secret keys are decoded here too: a half-decoded key must not linger in freed memory.
  struct WipeUnlessKept {
    std::vector<uint8_t>& bytes;
    bool keep = false;
    ~WipeUnlessKept() {
      if (!keep) sodium_memzero(bytes.data(), bytes.size());
    }
  } wipe{out};
  uint32_t acc = 0;
  int acc_bits = 0;
  for (size_t i = 0; i < data_chars; ++i) {
    const char c = text[i];
    const int8_t v = kBase64Reverse[static_cast<unsigned char>(c)];
    if (v == kInvalid) {
      return absl::InvalidArgumentError(Cat(
          "base64 text has ", Printable(c), " at offset ", i,
          c == '='                 ? " before the end (padding belongs only at the end)"
          : (c == '-' || c == '_') ? " (that is URL-safe base64; standard base64 uses '+' and '/')"
                                   : ", which is not in the standard base64 alphabet"));
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    acc_bits += 6;
    if (acc_bits >= 8) {
      acc_bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> acc_bits));
      acc &= (1u << acc_bits) - 1;
    }
  }
  if (acc != 0) {
    return absl::InvalidArgumentError(
        "base64 text has non-zero bits in its last character before the padding (not the canonical "
        "encoding of any byte string)");
  }
  wipe.keep = true;
  return out;
}

}  // namespace attest::consensus
