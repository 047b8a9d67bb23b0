#include "consensus/keys.h"

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "consensus/encoding.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Block = std::map<std::string, std::string>;

// Reads the "key: value" blocks of a test data file (blank-line separated, '#' comments).
std::vector<Block> ReadBlocks(const std::string& file) {
  const std::string text =
      attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/" + file);
  std::vector<Block> blocks(1);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) {
      if (!blocks.back().empty()) blocks.emplace_back();
      continue;
    }
    if (line[0] == '#') continue;
    const size_t colon = line.find(": ");
    if (colon == absl::string_view::npos) {
      // "message: " with an empty value loses its trailing space in some editors.
      if (!line.empty() && line.back() == ':') {
        blocks.back()[std::string(line.substr(0, line.size() - 1))] = "";
        continue;
      }
      ADD_FAILURE() << file << ": bad line " << line;
      continue;
    }
    blocks.back()[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 2));
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

std::vector<uint8_t> Hex(const std::string& hex) {
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

std::string Str(const std::vector<uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

// --- RFC 8032 section 7.1 ---------------------------------------------------------------------

TEST(KeysTest, Rfc8032VectorsDeriveKeysAndSignaturesExactly) {
  const std::vector<Block> vectors = ReadBlocks("rfc8032_ed25519.txt");
  ASSERT_EQ(vectors.size(), 5u);
  for (const Block& v : vectors) {
    SCOPED_TRACE(v.at("name"));
    const std::vector<uint8_t> seed = Hex(v.at("secret"));
    const std::vector<uint8_t> message = Hex(v.at("message"));
    auto key = SecretKey::FromSeed("rfc8032", seed);
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(HexEncode(key->public_key().bytes()), v.at("public"));
    const Signature sig = key->Sign(Str(message));
    EXPECT_EQ(HexEncode(sig.bytes), v.at("signature"));
    EXPECT_TRUE(key->public_key().Verify(Str(message), sig).ok());

    // Any change to the message or the signature must fail.
    Signature flipped = sig;
    flipped.bytes[10] ^= 0x01;
    EXPECT_EQ(key->public_key().Verify(Str(message), flipped).code(),
              absl::StatusCode::kUnauthenticated);
    EXPECT_FALSE(key->public_key().VerifyBytes(Str(message) + "x", sig.bytes));
  }
}

// --- Real Nix keys and signatures -------------------------------------------------------------

// Every (key, fingerprint, signature) triple Nix 2.8 produced, from our script and from the
// reference captures (which include cache.nixos.org's own signature).
std::vector<Block> NixBlocks() {
  std::vector<Block> all = ReadBlocks("nix_signatures/nix_2.8_signatures.txt");
  std::vector<Block> reference = ReadBlocks("nix_signatures/nix_reference_signatures.txt");
  all.insert(all.end(), reference.begin(), reference.end());
  return all;
}

TEST(KeysTest, NixSignaturesVerify) {
  const std::vector<Block> blocks = NixBlocks();
  ASSERT_GE(blocks.size(), 11u);
  for (const Block& b : blocks) {
    SCOPED_TRACE(b.at("signature"));
    auto key = PublicKey::Parse(b.at("public-key"));
    ASSERT_TRUE(key.ok()) << key.status();
    EXPECT_EQ(key->ToString(), b.at("public-key"));
    auto sig = Signature::Parse(b.at("signature"));
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_EQ(sig->ToString(), b.at("signature"));
    EXPECT_TRUE(key->Verify(b.at("fingerprint"), *sig).ok());
  }
}

TEST(KeysTest, NixSignaturesFailWhenTampered) {
  for (const Block& b : NixBlocks()) {
    SCOPED_TRACE(b.at("signature"));
    const PublicKey key = *PublicKey::Parse(b.at("public-key"));
    const Signature sig = *Signature::Parse(b.at("signature"));
    const std::string fingerprint = b.at("fingerprint");

    // NAR size + 1, as the Nix 2.8 capture does.
    std::vector<std::string> parts = absl::StrSplit(fingerprint, ';');
    ASSERT_EQ(parts.size(), 5u);
    parts[3] = std::to_string(std::stoull(parts[3]) + 1);
    const absl::Status tampered = key.Verify(absl::StrJoin(parts, ";"), sig);
    EXPECT_EQ(tampered.code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(std::string(tampered.message()), HasSubstr("does not verify"));

    EXPECT_FALSE(key.Verify(fingerprint + "\n", sig).ok());  // a trailing newline is not signed
    Signature flipped = sig;
    flipped.bytes[63] ^= 0x80;
    EXPECT_FALSE(key.Verify(fingerprint, flipped).ok());
  }
}

TEST(KeysTest, CacheNixosOrgSignatureVerifies) {
  // A real signature from cache.nixos.org (its public narinfo of curl-7.82.0-bin).
  const PublicKey key =
      *PublicKey::Parse("cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=");
  const Signature sig = *Signature::Parse(
      "cache.nixos.org-1:TsTTb3WGTZKphvYdBHXwo6weVILmTytUjLB+"
      "vcX89fOjjRicCHmKA4RCPMVLkj6TMJ4GMX3HPVWRdD1"
      "hkeKZBQ==");
  const std::string fingerprint =
      "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:"
      "1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/"
      "0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/"
      "6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/"
      "j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/"
      "yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n";
  EXPECT_TRUE(key.Verify(fingerprint, sig).ok());
  // Dropping one reference (what a cache serving stripped metadata would do) breaks it.
  const std::string without_zlib =
      "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:"
      "1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/"
      "0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/"
      "6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/"
      "yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n";
  EXPECT_EQ(key.Verify(without_zlib, sig).code(), absl::StatusCode::kUnauthenticated);
}

TEST(KeysTest, SignReproducesNixSignaturesByteForByte) {
  int signed_count = 0;
  for (const Block& b : NixBlocks()) {
    if (!b.contains("secret-key")) continue;  // cache.nixos.org's secret is not ours to have
    SCOPED_TRACE(b.at("signature"));
    auto key = SecretKey::Parse(b.at("secret-key"));
    ASSERT_TRUE(key.ok()) << key.status();
    // The secret key text round-trips, and the public half is what `nix key
    // convert-secret-to-public` printed.
    EXPECT_EQ(key->ExportText(), b.at("secret-key"));
    EXPECT_EQ(key->public_key().ToString(), b.at("public-key"));
    EXPECT_EQ(key->Sign(b.at("fingerprint")).ToString(), b.at("signature"));
    ++signed_count;
  }
  EXPECT_GE(signed_count, 10);
}

// --- Parsing -----------------------------------------------------------------------------------

constexpr std::string_view kSecretA =
    "builderA-1:W3lhuGIkgyX1jaKFX3NFUXTIPPsiq8FnIrsCNejuzrnMuNRbrqHpyktkGz0I0OviACdyMOI9JYQ3f/"
    "oaTGEJjQ==";
constexpr std::string_view kPublicA = "builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=";

TEST(KeysTest, KeyFilesMayEndInWhitespace) {
  // `nix key generate-secret` writes no newline; editors and `echo` add one.
  for (std::string suffix : {"", "\n", "\r\n", "  \n\n"}) {
    auto secret = SecretKey::Parse(std::string(kSecretA) + suffix);
    ASSERT_TRUE(secret.ok()) << secret.status();
    auto pub = PublicKey::Parse(std::string(kPublicA) + suffix);
    ASSERT_TRUE(pub.ok()) << pub.status();
    EXPECT_EQ(secret->public_key(), *pub);
  }
}

TEST(KeysTest, SecretKeyParseErrorsAreSpecificAndNeverEchoTheKey) {
  struct Case {
    std::string text;
    std::string fragment;
  };
  const std::string payload(kSecretA.substr(kSecretA.find(':') + 1));
  std::string damaged_half = payload;
  damaged_half[60] = damaged_half[60] == 'A' ? 'B' : 'A';  // inside the public half
  const Case cases[] = {
      {payload, "has no ':'"},
      {":" + payload, "empty key name"},
      {"bad name:" + payload, "whitespace"},
      {"builderA-1:" + payload.substr(0, 40) + "*" + payload.substr(41),
       "not valid standard base64"},
      {std::string(kPublicA), "this is a public key, not a secret key"},
      {"builderA-1:" + Base64Encode(std::vector<uint8_t>(48, 7)), "decodes to 48 bytes"},
      {"builderA-1:" + damaged_half, "public half does not belong to its seed"},
  };
  for (const Case& c : cases) {
    auto key = SecretKey::Parse(c.text);
    ASSERT_FALSE(key.ok()) << c.text;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(key.status().message());
    EXPECT_THAT(message, HasSubstr(c.fragment));
    EXPECT_THAT(message, Not(HasSubstr(payload.substr(0, 12))));
  }
}

TEST(KeysTest, PublicKeyParseErrorsAreSpecific) {
  const std::string secret_payload(kSecretA.substr(kSecretA.find(':') + 1));
  auto secret_given = PublicKey::Parse("builderA-1:" + secret_payload);
  ASSERT_FALSE(secret_given.ok());
  EXPECT_THAT(std::string(secret_given.status().message()),
              HasSubstr("this is a secret key, not a public key"));
  EXPECT_THAT(std::string(secret_given.status().message()),
              Not(HasSubstr(secret_payload.substr(0, 12))));

  EXPECT_THAT(
      std::string(
          PublicKey::Parse("zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=").status().message()),
      HasSubstr("has no ':'"));
  EXPECT_THAT(std::string(PublicKey::Parse("builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6Gkx")
                              .status()
                              .message()),
              HasSubstr("not valid base64"));
  EXPECT_THAT(
      std::string(
          PublicKey::Parse("k:" + Base64Encode(std::vector<uint8_t>(31, 1))).status().message()),
      HasSubstr("decodes to 31 bytes"));
  EXPECT_FALSE(PublicKey::FromBytes("k", std::vector<uint8_t>(33, 1)).ok());
  EXPECT_FALSE(PublicKey::FromBytes("", std::vector<uint8_t>(32, 1)).ok());
}

TEST(KeysTest, SignatureParseErrorsAreSpecific) {
  const std::string sig64 = Base64Encode(std::vector<uint8_t>(64, 9));
  struct Case {
    std::string text;
    std::string fragment;
  };
  const Case cases[] = {
      {sig64, "has no ':'"},
      {":" + sig64, "empty key name"},
      {"a b:" + sig64, "whitespace"},
      {"k:" + sig64.substr(0, 86), "not valid base64"},
      {"k:" + sig64 + "\n", "not valid base64"},
      {"k:" + Base64Encode(std::vector<uint8_t>(63, 9)), "decodes to 63 bytes"},
      {"k:" + Base64Encode(std::vector<uint8_t>(65, 9)), "decodes to 65 bytes"},
      {"k:", "decodes to 0 bytes"},
  };
  for (const Case& c : cases) {
    auto sig = Signature::Parse(c.text);
    ASSERT_FALSE(sig.ok()) << c.text;
    EXPECT_EQ(sig.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(sig.status().message()), HasSubstr(c.fragment)) << c.text;
  }
  // The name is split at the first ':' only, as Nix does; the rest must then be base64.
  EXPECT_FALSE(Signature::Parse("a:b:" + sig64).ok());
}

TEST(KeysTest, ValidateKeyNameFollowsNixRules) {
  // Nix takes anything before the first ':'; every character it allows that can be written in
  // nix.conf and shown safely is accepted.
  for (std::string_view name : {"cache.nixos.org-1", "example.com/log", "a", "x+y", "ünïcode", "例え-1",
                                "a+b.c-d_e/f=g@h", "ci+eu@example.org/builder_1=", "+", "=", "<&\"'>"}) {
    EXPECT_TRUE(ValidateKeyName(name).ok()) << name;
    // So such a key parses, signs and verifies like any other.
    const SecretKey key = attest::testing::TestKey(name);
    auto parsed = PublicKey::Parse(key.public_key().ToString());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->name(), name);
    auto signature = Signature::Parse(key.Sign("message").ToString());
    ASSERT_TRUE(signature.ok()) << signature.status();
    EXPECT_TRUE(parsed->Verify("message", *signature).ok());
  }
  for (std::string_view name : {"", "a:b", "a b", "a\tb", "a\nb", "del\x7f", "c1\xC2\x9B", "bidi\xE2\x80\xAE" "1",
                                "isolate\xE2\x81\xA6", "nbsp\xC2\xA0" "x", "em\xE2\x80\x83space", "latin1\xE9"}) {
    EXPECT_EQ(ValidateKeyName(name).code(), absl::StatusCode::kInvalidArgument) << absl::CHexEscape(AbslView(name));
    // One rule: a key with such a name does not parse either.
    EXPECT_FALSE(PublicKey::Parse(Cat(name, ":", Base64Encode(std::vector<uint8_t>(32, 7)))).ok())
        << absl::CHexEscape(AbslView(name));
  }
  EXPECT_THAT(std::string(ValidateKeyName("builder-\xE2\x80\xAE" "1").message()),
              HasSubstr("bidirectional formatting character"));
  EXPECT_FALSE(ValidateKeyName(std::string(256, 'k')).ok());
  EXPECT_TRUE(ValidateKeyName(std::string(255, 'k')).ok());
}

TEST(KeysTest, VerifyChecksTheKeyName) {
  const SecretKey key = attest::testing::TestKey("builder-1");
  Signature sig = key.Sign("message");
  EXPECT_TRUE(key.public_key().Verify("message", sig).ok());
  sig.key_name = "builder-2";
  const absl::Status status = key.public_key().Verify("message", sig);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("by key 'builder-2', not by key 'builder-1'"));
  // The raw check ignores names (signed notes carry their own).
  EXPECT_TRUE(key.public_key().VerifyBytes("message", sig.bytes));
}

TEST(KeysTest, FromSeedRejectsWrongSeedSizeAndBadName) {
  EXPECT_FALSE(SecretKey::FromSeed("k", std::vector<uint8_t>(31, 0)).ok());
  EXPECT_FALSE(SecretKey::FromSeed("k", std::vector<uint8_t>(64, 0)).ok());
  EXPECT_FALSE(SecretKey::FromSeed("a:b", std::vector<uint8_t>(32, 0)).ok());
  EXPECT_TRUE(SecretKey::FromSeed("k", std::vector<uint8_t>(32, 0)).ok());
}

TEST(KeysTest, MovedFromSecretKeyIsZeroed) {
  SecretKey key = *SecretKey::Parse(kSecretA);
  SecretKey moved = std::move(key);
  EXPECT_EQ(moved.ExportText(), kSecretA);
  // The moved-from object keeps no key material.
  // NOLINTNEXTLINE(bugprone-use-after-move): checking exactly that.
  const std::string left = key.ExportText();
  EXPECT_THAT(left, Not(HasSubstr(std::string(kSecretA.substr(11, 20)))));
  EXPECT_THAT(left, HasSubstr(Base64Encode(std::vector<uint8_t>(64, 0))));

  SecretKey other = attest::testing::TestKey("other");
  other = std::move(moved);
  EXPECT_EQ(other.ExportText(), kSecretA);
}

}  // namespace
}  // namespace attest::consensus
