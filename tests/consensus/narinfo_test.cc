#include "consensus/narinfo.h"

#include <string>

#include "consensus/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kCacheNixosOrgKey =
    "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
// transparency-logs.md §8, vector 10: what cache.nixos.org signed.
constexpr std::string_view kCurlFingerprint =
    "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;"
    "sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;"
    "/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,"
    "/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,"
    "/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,"
    "/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n";

std::string CurlNarInfo() {
  return ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) +
                       "/narinfo/syd87l2rxw8cbsxmxl853h0r6pdwhwjr.narinfo");
}

consensus::PublicKey Key(std::string_view text) {
  auto key = consensus::PublicKey::Parse(text);
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

TEST(NarInfoTest, ParsesTheRealCacheNixosOrgNarInfo) {
  auto narinfo = ParseNarInfo(CurlNarInfo(), "curl.narinfo");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  EXPECT_EQ(narinfo->claim.Fingerprint(), kCurlFingerprint);
  EXPECT_EQ(narinfo->url, "nar/05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56.nar.xz");
  EXPECT_EQ(narinfo->compression, "xz");
  EXPECT_EQ(narinfo->file_hash, "sha256:05ra3y72i3qjri7xskf9qj8kb29r6naqy1sqpbs3azi3xcigmj56");
  EXPECT_EQ(narinfo->file_size, 68852u);
  ASSERT_TRUE(narinfo->deriver.has_value());
  EXPECT_EQ(narinfo->deriver->full(), "/nix/store/5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv");
  EXPECT_THAT(narinfo->signatures, ElementsAre("cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+"
                                               "vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1hkeKZBQ=="));
}

TEST(NarInfoTest, RealNarInfoVerifiesWithTheCacheNixosOrgKey) {
  auto narinfo = ParseNarInfo(CurlNarInfo(), "curl.narinfo");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  const std::vector<consensus::PublicKey> trusted = {Key(kCacheNixosOrgKey)};
  const NarInfoVerification v = VerifyNarInfo(*narinfo, trusted);
  EXPECT_TRUE(v.ok());
  EXPECT_THAT(v.valid_keys, ElementsAre("cache.nixos.org-1"));
}

TEST(NarInfoTest, WrongKeyWithTheSameNameDoesNotVerify) {
  auto narinfo = ParseNarInfo(CurlNarInfo(), "curl.narinfo");
  ASSERT_TRUE(narinfo.ok());
  const consensus::PublicKey impostor =
      *consensus::PublicKey::FromBytes("cache.nixos.org-1", TestKey("impostor").public_key().bytes());
  const std::vector<consensus::PublicKey> trusted = {impostor};
  const NarInfoVerification v = VerifyNarInfo(*narinfo, trusted);
  EXPECT_FALSE(v.ok());
  ASSERT_EQ(v.checks.size(), 1u);
  EXPECT_EQ(v.checks[0].result, SignatureCheck::Result::kDoesNotVerify);
}

TEST(NarInfoTest, RightKeyUnderAnotherNameDoesNotCount) {
  // As in Nix: the signature names its key, and only the trusted key of that name is tried.
  auto narinfo = ParseNarInfo(CurlNarInfo(), "curl.narinfo");
  ASSERT_TRUE(narinfo.ok());
  const std::vector<consensus::PublicKey> trusted = {
      Key("cache.nixos.org-2:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=")};
  const NarInfoVerification v = VerifyNarInfo(*narinfo, trusted);
  EXPECT_FALSE(v.ok());
  ASSERT_EQ(v.checks.size(), 1u);
  EXPECT_EQ(v.checks[0].result, SignatureCheck::Result::kUntrustedKey);
  EXPECT_EQ(v.checks[0].key_name, "cache.nixos.org-1");
}

TEST(NarInfoTest, AlteredClaimDoesNotVerify) {
  std::string text = CurlNarInfo();
  const size_t at = text.find("NarSize: 196040");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 15, "NarSize: 196041");
  auto narinfo = ParseNarInfo(text, "curl.narinfo");
  ASSERT_TRUE(narinfo.ok());
  const std::vector<consensus::PublicKey> trusted = {Key(kCacheNixosOrgKey)};
  EXPECT_FALSE(VerifyNarInfo(*narinfo, trusted).ok());
}

TEST(NarInfoTest, MissingTrailingNewlineIsRejectedAsNixDoes) {
  std::string text = CurlNarInfo();
  ASSERT_EQ(text.back(), '\n');
  text.pop_back();
  auto narinfo = ParseNarInfo(text, "curl.narinfo");
  ASSERT_FALSE(narinfo.ok());
  EXPECT_EQ(narinfo.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(narinfo.status().message()), HasSubstr("curl.narinfo:10:"));
  EXPECT_THAT(std::string(narinfo.status().message()), HasSubstr("newline"));
}

TEST(NarInfoTest, RepeatedReferenceNamesCountOnceLikeNixsSet) {
  std::string text = CurlNarInfo();
  const std::string refs = "References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 ";
  const size_t at = text.find(refs);
  ASSERT_NE(at, std::string::npos);
  text.insert(at + refs.size(), "0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0 ");
  auto narinfo = ParseNarInfo(text, "curl.narinfo");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  EXPECT_EQ(narinfo->claim.Fingerprint(), kCurlFingerprint);
}

TEST(NarInfoTest, SecondReferencesLineIsRejected) {
  std::string text = CurlNarInfo();
  text += "References: 0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0\n";
  auto narinfo = ParseNarInfo(text, "curl.narinfo");
  ASSERT_FALSE(narinfo.ok());
  EXPECT_THAT(std::string(narinfo.status().message()), HasSubstr("a second References line"));
}

TEST(NarInfoTest, MalformedSigIsReportedAndSkipped) {
  std::string text = CurlNarInfo();
  text += "Sig: cache.nixos.org-1:notbase64!!\n";
  text += "Sig: nocolon\n";
  auto narinfo = ParseNarInfo(text, "curl.narinfo");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  const std::vector<NarInfoSignature> sigs = ParseNarInfoSignatures(*narinfo);
  ASSERT_EQ(sigs.size(), 3u);
  EXPECT_TRUE(sigs[0].signature.has_value());
  EXPECT_FALSE(sigs[1].signature.has_value());
  EXPECT_FALSE(sigs[1].error.empty());
  EXPECT_FALSE(sigs[2].signature.has_value());

  const std::vector<consensus::PublicKey> trusted = {Key(kCacheNixosOrgKey)};
  const NarInfoVerification v = VerifyNarInfo(*narinfo, trusted);
  EXPECT_TRUE(v.ok()) << "the good signature still counts";
  ASSERT_EQ(v.checks.size(), 3u);
  EXPECT_EQ(v.checks[1].result, SignatureCheck::Result::kMalformed);
  EXPECT_EQ(v.checks[2].result, SignatureCheck::Result::kMalformed);
}

TEST(NarInfoTest, UnknownKeysAreIgnoredAndOrderDoesNotMatter) {
  const std::string text =
      "NarSize: 144\n"
      "X-Custom: whatever: with colons\n"
      "References: \n"
      "NarHash: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc\n"
      "StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\n"
      "Deriver: unknown-deriver\n";
  auto narinfo = ParseNarInfo(text, "x");
  ASSERT_TRUE(narinfo.ok()) << narinfo.status();
  EXPECT_EQ(narinfo->claim.Fingerprint(),
            "1;/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest;"
            "sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc;144;");
  EXPECT_FALSE(narinfo->deriver.has_value());
  EXPECT_TRUE(narinfo->signatures.empty());
}

TEST(NarInfoTest, RequiredFieldsAndMalformedLines) {
  const std::string good =
      "StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\n"
      "NarHash: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc\n"
      "NarSize: 144\n";
  ASSERT_TRUE(ParseNarInfo(good, "x").ok());
  struct Case {
    std::string text;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"NarHash: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc\nNarSize: 144\n",
       "no StorePath"},
      {"StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\nNarSize: 144\n", "no NarHash"},
      {"StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\n"
       "NarHash: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc\n",
       "no NarSize"},
      {good + "NarSize: 145\n", "a second NarSize"},
      {good + "garbage line\n", "x:4:"},
      {good + "Key:NoSpace\n", "not a 'Key: Value' line"},
      {good + "References: /nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep\n", "References"},
      {"StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\r\n", "\\r\\n"},
      {"", "empty"},
  };
  for (const Case& c : cases) {
    auto narinfo = ParseNarInfo(c.text, "x");
    ASSERT_FALSE(narinfo.ok()) << c.text;
    EXPECT_THAT(std::string(narinfo.status().message()), HasSubstr(c.fragment)) << c.text;
  }
  auto zero = ParseNarInfo(
      "StorePath: /nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest\n"
      "NarHash: sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc\nNarSize: 0\n",
      "x");
  ASSERT_FALSE(zero.ok());
  EXPECT_THAT(std::string(zero.status().message()), HasSubstr("NarSize is 0"));
}

TEST(NarInfoTest, SignatureByOurOwnKeyVerifies) {
  const consensus::SecretKey key = TestKey("builder-x");
  auto narinfo = ParseNarInfo(CurlNarInfo(), "curl.narinfo");
  ASSERT_TRUE(narinfo.ok());
  narinfo->signatures.push_back(key.Sign(narinfo->claim.Fingerprint()).ToString());
  const std::vector<consensus::PublicKey> trusted = {Key(kCacheNixosOrgKey), key.public_key()};
  const NarInfoVerification v = VerifyNarInfo(*narinfo, trusted);
  EXPECT_THAT(v.valid_keys, ElementsAre("builder-x", "cache.nixos.org-1"));
}

}  // namespace
}  // namespace attest::consensus
