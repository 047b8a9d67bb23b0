#include "consensus/encoding.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Hex(std::string_view hex) {
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

// Produced by Nix 2.8.0: `nix hash to-base32 --type <type> <hex>` (hex from md5sum/sha1sum/...).
struct Nix32Case {
  const char* hex;
  const char* nix32;
};
constexpr Nix32Case kNixGolden[] = {
    // md5 of "" and "abc" (16 bytes: 26 characters, 2 padding bits)
    {"d41d8cd98f00b204e9800998ecf8427e", "3y8bwfr609h3lh9ch0izcqq7fl"},
    {"900150983cd24fb0d6963f7d28e17f72", "3jgzhjhz9zjvbb0kyj7jc500ch"},
    // sha1 of "" and "abc" (20 bytes: 32 characters, the store path hash size)
    {"da39a3ee5e6b4b0d3255bfef95601890afd80709", "143xibwh31h9bvxzalr0sjvbbvpa6ffs"},
    {"a9993e364706816aba3e25717850c26c9cd0d89d", "kpcd173cq987hw957sx6m0868wv3x6d9"},
    {"ffffffffffffffffffffffffffffffffffffffff", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"},
    // The most significant digit comes from the LAST byte: Nix reads the bytes little-endian.
    {"0000000000000000000000000000000000000001", "04000000000000000000000000000000"},
    {"8000000000000000000000000000000000000000", "00000000000000000000000000000040"},
    // sha256 of "" and "abc"
    {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"},
    {"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
     "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"},
    // The NAR hash Nix 2.8 printed for hello-attest.
    {"0c0375921ce5ee07591031b6b3c31919083f7d6116d28b1dc251c22079778640",
     "0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc"},
    // sha512 of "abc" (64 bytes: 103 characters)
    {"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3fee"
     "bbd"
     "454d4423643ce80e2a9ac94fa54ca49f",
     "2gs8k559z4rlahfx0y688s49m2vvszylcikrfinm30ly9rak69236nkam5ydvly1ai7xac99vxfc4ii84hawjbk876bly"
     "k1jf"
     "hkbbyx"},
};

TEST(EncodingTest, Nix32LengthIsCeilingOfEightFifths) {
  EXPECT_EQ(Nix32Length(0), 0u);
  EXPECT_EQ(Nix32Length(1), 2u);
  EXPECT_EQ(Nix32Length(16), 26u);
  EXPECT_EQ(Nix32Length(20), 32u);
  EXPECT_EQ(Nix32Length(32), 52u);
  EXPECT_EQ(Nix32Length(64), 103u);
}

TEST(EncodingTest, Nix32MatchesNixGoldenValues) {
  for (const Nix32Case& c : kNixGolden) {
    const std::vector<uint8_t> bytes = Hex(c.hex);
    EXPECT_EQ(Nix32Encode(bytes), c.nix32) << c.hex;
    auto decoded = Nix32Decode(c.nix32, bytes.size());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, bytes) << c.nix32;
  }
}

TEST(EncodingTest, Nix32RoundTripsEveryLength) {
  for (size_t n = 0; n <= 70; ++n) {
    std::vector<uint8_t> bytes(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(i * 37 + n * 11 + 0xA5);
    const std::string text = Nix32Encode(bytes);
    EXPECT_EQ(text.size(), Nix32Length(n));
    auto decoded = Nix32Decode(text, n);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(EncodingTest, Nix32RejectsWrongLength) {
  auto r = Nix32Decode("0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0q", 32);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("51 characters"));
  EXPECT_THAT(r.status().message(), HasSubstr("52"));
}

TEST(EncodingTest, Nix32RejectsLettersOutsideTheAlphabet) {
  for (char bad : {'e', 'o', 't', 'u', 'A', '-', '='}) {
    std::string text = "0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc";
    text[10] = bad;
    auto r = Nix32Decode(text, 32);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("offset 10")) << bad;
  }
}

TEST(EncodingTest, Nix32RejectsNonZeroPaddingBits) {
  // 16 bytes = 128 bits in 26 digits (130 bits): the first digit may only use its low 3 bits.
  // Nix 2.8 agrees: `nix hash to-base16 --type md5 zzzzzzzzzzzzzzzzzzzzzzzzzz` is an error.
  EXPECT_TRUE(Nix32Decode("7zzzzzzzzzzzzzzzzzzzzzzzzz", 16).ok());
  auto r = Nix32Decode("8zzzzzzzzzzzzzzzzzzzzzzzzz", 16);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("bits beyond 16 bytes"));
  // 32 bytes = 256 bits in 52 digits (260 bits): the first digit must be 0 or 1.
  EXPECT_TRUE(Nix32Decode(std::string("1") + std::string(51, 'z'), 32).ok());
  EXPECT_FALSE(Nix32Decode(std::string("2") + std::string(51, 'z'), 32).ok());
}

TEST(EncodingTest, HexRoundTripsAndAcceptsUpperCase) {
  const std::vector<uint8_t> bytes = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(HexEncode(bytes), "000fa5ff");
  auto lower = HexDecode("000fa5ff");
  auto upper = HexDecode("000FA5FF");
  ASSERT_TRUE(lower.ok() && upper.ok());
  EXPECT_EQ(*lower, bytes);
  EXPECT_EQ(*upper, bytes);
  EXPECT_TRUE(HexDecode("").ok());
}

TEST(EncodingTest, HexRejectsOddLengthAndNonHex) {
  auto odd = HexDecode("abc");
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(odd.status().message(), HasSubstr("odd"));
  auto bad = HexDecode("00g0");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'g' at offset 2"));
}

TEST(EncodingTest, Base64MatchesRfc4648Vectors) {
  // RFC 4648 section 10.
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(Base64Encode(AsBytes(plain)), encoded);
    auto decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status();
    EXPECT_EQ(std::string(decoded->begin(), decoded->end()), plain);
  }
}

TEST(EncodingTest, Base64MatchesNixSriForm) {
  const std::vector<uint8_t> digest =
      Hex("0c0375921ce5ee07591031b6b3c31919083f7d6116d28b1dc251c22079778640");
  EXPECT_EQ(Base64Encode(digest), "DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA=");
}

TEST(EncodingTest, Base64IsStrict) {
  struct Bad {
    std::string_view text;
    std::string_view why;
  };
  const Bad cases[] = {
      {"Zg", "multiple of 4"},          // padding missing
      {"Zg=", "multiple of 4"},         // padding short
      {"Zm9v\n", "multiple of 4"},      // trailing newline
      {"Zm 9", "' ' at offset 2"},      // whitespace
      {"Zh==", "non-zero bits"},        // 'h' leaves bits set after the last byte
      {"Zm9=", "non-zero bits"},        // same, one padding character
      {"Z===", "'=' at offset 1"},      // too much padding
      {"Zg==Zg==", "'=' at offset 2"},  // padding in the middle
      {"ab-_", "URL-safe"},             // other alphabet
      {"Zm9v*A==", "'*' at offset 4"},
  };
  for (const Bad& c : cases) {
    auto r = Base64Decode(c.text);
    ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr(c.why)) << c.text;
  }
}

TEST(EncodingTest, Base64RoundTripsEveryByteValue) {
  std::vector<uint8_t> all(256);
  for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
  for (size_t n = 0; n <= all.size(); n += 17) {
    std::vector<uint8_t> bytes(all.begin(), all.begin() + n);
    auto decoded = Base64Decode(Base64Encode(bytes));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, bytes);
  }
}

TEST(EncodingTest, QuoteForErrorEscapesAndTruncates) {
  EXPECT_EQ(QuoteForError("plain"), "'plain'");
  EXPECT_EQ(QuoteForError("a\nb\x01"), "'a\\nb\\x01'");
  const std::string long_input(1000, 'x');
  const std::string quoted = QuoteForError(long_input);
  EXPECT_EQ(quoted, "'" + std::string(100, 'x') + "'... (1000 bytes)");
}

TEST(EncodingTest, CatAcceptsStdStringView) {
  const std::string_view view = "view";
  EXPECT_EQ(Cat("a", view, std::string("s"), 42, absl::string_view("absl")), "aviews42absl");
  EXPECT_EQ(StdView(AbslView(view)), view);
}

}  // namespace
}  // namespace attest::consensus
