#include "consensus/nar_hash.h"

#include <string>

#include "absl/status/status.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

// One hash, three ways, as Nix 2.8 printed it for hello-attest (captured from Nix 2.8 runs).
constexpr std::string_view kNix32 = "sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc";
constexpr std::string_view kSri = "sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA=";
constexpr std::string_view kHex =
    "0c0375921ce5ee07591031b6b3c31919083f7d6116d28b1dc251c22079778640";

void ExpectRejected(std::string_view input, std::initializer_list<std::string_view> fragments) {
  auto hash = NarHash::Parse(input);
  ASSERT_FALSE(hash.ok()) << "accepted " << input;
  EXPECT_EQ(hash.status().code(), absl::StatusCode::kInvalidArgument) << input;
  for (std::string_view fragment : fragments) {
    EXPECT_THAT(std::string(hash.status().message()), HasSubstr(std::string(fragment))) << input;
  }
}

TEST(NarHashTest, AcceptsEveryFormNixPrints) {
  const std::string forms[] = {
      std::string(kNix32),
      std::string(kSri),
      "sha256:" + std::string(kHex),
      "sha256:DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA=",
      "sha256:0C0375921CE5EE07591031B6B3C31919083F7D6116D28B1DC251C22079778640",
  };
  for (const std::string& form : forms) {
    auto hash = NarHash::Parse(form);
    ASSERT_TRUE(hash.ok()) << form << ": " << hash.status();
    EXPECT_EQ(hash->ToNix32(), kNix32) << form;
    EXPECT_EQ(hash->ToSri(), kSri) << form;
    EXPECT_EQ(hash->ToHex(), kHex) << form;
  }
}

TEST(NarHashTest, FromDigestAgreesWithSha256) {
  // sha256("") printed by `nix hash to-base32`.
  const NarHash hash = NarHash::FromDigest(Sha256(""));
  EXPECT_EQ(hash.ToNix32(), "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73");
  EXPECT_EQ(hash.ToHex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*NarHash::Parse(hash.ToSri()), hash);
}

TEST(NarHashTest, RejectsOtherAlgorithms) {
  ExpectRejected("md5:3y8bwfr609h3lh9ch0izcqq7fl", {"md5", "only sha256"});
  ExpectRejected("sha1:143xibwh31h9bvxzalr0sjvbbvpa6ffs", {"sha1", "only sha256"});
  ExpectRejected(
      "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/"
      "SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==",
      {"sha512", "only sha256"});
  ExpectRejected("blake3:abc", {"unknown algorithm 'blake3'"});
  ExpectRejected("SHA256:" + std::string(kHex), {"unknown algorithm 'SHA256'"});
}

TEST(NarHashTest, RejectsMissingPrefix) {
  ExpectRejected(kHex, {"no algorithm prefix"});
  ExpectRejected("0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc", {"no algorithm prefix"});
  ExpectRejected("", {"no algorithm prefix"});
}

TEST(NarHashTest, RejectsWrongLengthsSayingFoundAndExpected) {
  ExpectRejected("sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0q",
                 {"51 characters", "52 (nix32)", "64 (hex)", "44 (base64)"});
  ExpectRejected("sha256:", {"0 characters"});
  ExpectRejected("sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA",
                 {"43 characters", "expected 44"});
}

TEST(NarHashTest, RejectsBadCharacters) {
  // An 'e' is not nix32.
  ExpectRejected("sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qe",
                 {"not valid nix32", "'e'"});
  ExpectRejected("sha256:0c0375921ce5ee07591031b6b3c31919083f7d6116d28b1dc251c2207977864g",
                 {"not valid hex", "'g'"});
  ExpectRejected("sha256-DAN1khzl7gdZEDG2s8MZGQg_fWEW0osdwlHCIHl3hkA=", {"not valid base64"});
  // Padding bits set beyond 256 bits: not the spelling of any hash.
  ExpectRejected("sha256:2h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc",
                 {"not valid nix32"});
}

TEST(NarHashTest, RejectsBase64OfWrongSize) {
  // 44 base64 characters with "==" hold 32 bytes only with one '='; two '=' is 31 bytes.
  ExpectRejected("sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hg==", {"31 bytes"});
}

}  // namespace
}  // namespace attest::consensus
