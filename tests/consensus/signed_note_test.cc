#include "consensus/signed_note.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "consensus/encoding.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kEmDash = "\xE2\x80\x94";

std::string ReadVector(std::string_view file) {
  return attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/signed_note/" +
                                        std::string(file));
}

// A one-line file (a vkey or skey), without its newline.
std::string ReadLine(std::string_view file) {
  return std::string(absl::StripTrailingAsciiWhitespace(ReadVector(file)));
}

std::vector<uint8_t> Hex(std::string_view hex) { return *HexDecode(hex); }

PublicKey VerifierKey(std::string_view file) {
  auto key = ParseNoteVerifierKey(ReadLine(file));
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

// The signature lines of a note: everything after the last blank line.
std::string SignatureLines(const std::string& note) { return note.substr(note.rfind("\n\n") + 2); }

TEST(SignedNoteTest, C2spSpecExampleVerifies) {
  const PublicKey key = VerifierKey("c2sp_example.vkey");
  EXPECT_EQ(key.name(), "example.com/foo");
  EXPECT_EQ(NoteKeyId(key), 0x530d903au);
  EXPECT_EQ(NoteVerifierKey(key), ReadLine("c2sp_example.vkey"));

  const std::string text = ReadVector("c2sp_example.note");
  auto note = SignedNote::Parse(text);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(note->text, "This is an example message.\n");
  ASSERT_EQ(note->signatures.size(), 1u);
  EXPECT_EQ(note->signatures[0].key_name, "example.com/foo");
  EXPECT_EQ(note->signatures[0].key_id, 0x530d903au);
  EXPECT_EQ(note->signatures[0].signature.size(), 64u);
  EXPECT_TRUE(VerifyNote(*note, key).ok());
  EXPECT_EQ(note->Serialize(), text);
}

TEST(SignedNoteTest, GoNoteExampleIsReproducedByteForByte) {
  // Go's signer key is "PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>"; its base64 contains '+'.
  const std::string skey = ReadLine("go_peter_neumann.skey");
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) pos = skey.find('+', pos) + 1;
  auto typed_seed = Base64Decode(std::string_view(skey).substr(pos));
  ASSERT_TRUE(typed_seed.ok()) << typed_seed.status();
  ASSERT_EQ(typed_seed->size(), 33u);
  ASSERT_EQ((*typed_seed)[0], 0x01);
  auto key =
      SecretKey::FromSeed("PeterNeumann", std::span<const uint8_t>(typed_seed->data() + 1, 32));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(NoteVerifierKey(key->public_key()), ReadLine("go_peter_neumann.vkey"));

  auto note = SignNote(
      "If you think cryptography is the answer to your problem,\n"
      "then you don't know what your problem is.\n",
      *key);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(note->Serialize(), ReadVector("go_peter_neumann.note"));
}

TEST(SignedNoteTest, NoteWithTwoSignersVerifiesForEach) {
  const std::string text = ReadVector("go_two_signers.note");
  auto note = SignedNote::Parse(text);
  ASSERT_TRUE(note.ok()) << note.status();
  ASSERT_EQ(note->signatures.size(), 2u);
  EXPECT_TRUE(VerifyNote(*note, VerifierKey("go_peter_neumann.vkey")).ok());
  EXPECT_TRUE(VerifyNote(*note, VerifierKey("go_enoch_root.vkey")).ok());
  EXPECT_EQ(note->Serialize(), text);
}

TEST(SignedNoteTest, SelfDerivedCheckpointVectorIsReproduced) {
  // Self-derived vector: log key = RFC 8032 TEST 2 seed.
  auto log_key = SecretKey::FromSeed(
      "example.com/log", Hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
  ASSERT_TRUE(log_key.ok()) << log_key.status();
  EXPECT_EQ(NoteVerifierKey(log_key->public_key()),
            "example.com/log+4862d537+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM");

  const std::string checkpoint =
      "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n";
  auto signed_note = SignNote(checkpoint, *log_key);
  ASSERT_TRUE(signed_note.ok()) << signed_note.status();
  EXPECT_EQ(SignatureLines(signed_note->Serialize()),
            std::string(kEmDash) +
                " example.com/log "
                "SGLVN/DugTY/5WQasGhjGbjy0XIkDBbzdyewSiY8JuNtjLb2o5YT5O7FZ9nmyv4YVlggaQL4"
                "LuYJCJVh08ZY3qTXZwA=\n");

  // The published note also carries a witness cosignature (type 0x04: 8-byte timestamp, then the
  // signature); Parse keeps its bytes, and VerifyNote for the log key ignores it.
  const std::string file = ReadVector("self_derived_checkpoint.note");
  auto parsed = SignedNote::Parse(file);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->text, checkpoint);
  ASSERT_EQ(parsed->signatures.size(), 2u);
  EXPECT_EQ(parsed->Serialize(), file);
  EXPECT_TRUE(VerifyNote(*parsed, log_key->public_key()).ok());

  const NoteSignature& cosig = parsed->signatures[1];
  EXPECT_EQ(cosig.key_name, "witness.example/w1");
  EXPECT_EQ(cosig.key_id, 0xeb762cc2u);
  ASSERT_EQ(cosig.signature.size(), 72u);
  uint64_t timestamp = 0;
  for (int i = 0; i < 8; ++i) timestamp = timestamp << 8 | cosig.signature[i];
  EXPECT_EQ(timestamp, 1700000000u);
  auto witness =
      SecretKey::FromSeed("witness.example/w1",
                          Hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  ASSERT_TRUE(witness.ok());
  EXPECT_TRUE(witness->public_key().VerifyBytes(
      "cosignature/v1\ntime 1700000000\n" + checkpoint,
      std::span<const uint8_t, 64>(cosig.signature.data() + 8, 64)));
}

TEST(SignedNoteTest, SignAndAddSignatureRoundTrip) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  const SecretKey other = attest::testing::TestKey("attest.example/node-2");
  auto note = SignNote("attest/dispute/v1\nid d-00\n\nblank line inside the text is fine\n", node);
  ASSERT_TRUE(note.ok()) << note.status();
  AddNoteSignature(*note, other);
  const std::string wire = note->Serialize();
  auto parsed = SignedNote::Parse(wire);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->text, note->text);
  EXPECT_TRUE(VerifyNote(*parsed, node.public_key()).ok());
  EXPECT_TRUE(VerifyNote(*parsed, other.public_key()).ok());
  EXPECT_EQ(parsed->Serialize(), wire);
}

TEST(SignedNoteTest, VerifyFailsOnChangedTextOrMissingSigner) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  SignedNote note = *SignNote("hello\n", node);
  note.text = "hellO\n";
  absl::Status changed = VerifyNote(note, node.public_key());
  EXPECT_EQ(changed.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(changed.message()), HasSubstr("does not verify"));

  const SecretKey stranger = attest::testing::TestKey("attest.example/node-9");
  absl::Status missing = VerifyNote(*SignNote("hello\n", node), stranger.public_key());
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("carries no signature by key"));

  // Same name, other key: the key id differs, so the line is not this key's and is ignored.
  const SecretKey same_name = attest::testing::TestKey("attest.example/node-1", "rotated");
  EXPECT_THAT(std::string(VerifyNote(*SignNote("hello\n", node), same_name.public_key()).message()),
              HasSubstr("carries no signature"));
}

TEST(SignedNoteTest, OneBadSignatureByTheKeyRejectsTheNote) {
  // The spec: a signature from a known key that fails must reject the note, even if another
  // signature by that key verifies.
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  SignedNote note = *SignNote("hello\n", node);
  NoteSignature bad = note.signatures[0];
  bad.signature[0] ^= 1;
  note.signatures.push_back(bad);
  EXPECT_EQ(VerifyNote(note, node.public_key()).code(), absl::StatusCode::kUnauthenticated);
  // And a wrong length never verifies.
  note.signatures.back().signature.resize(63);
  EXPECT_EQ(VerifyNote(note, node.public_key()).code(), absl::StatusCode::kUnauthenticated);
}

TEST(SignedNoteTest, ParseRejectsMalformedNotes) {
  const std::string good_sig_line = std::string(kEmDash) +
                                    " example.com/foo "
                                    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXs"
                                    "YjOBH3mFXmRKuwHjG1Yu72IneyaQM=";
  ASSERT_TRUE(SignedNote::Parse("This is an example message.\n\n" + good_sig_line + "\n").ok());
  struct Case {
    std::string note;
    std::string fragment;
  };
  const Case cases[] = {
      {"text\n" + good_sig_line + "\n", "no blank line"},
      {"text", "no blank line"},
      {"", "no blank line"},
      {"text\n\n" + good_sig_line, "does not end in a newline"},
      {"text\n\n", "no signature lines"},
      {"text\n\n- example.com/foo AAAAAAA=\n", "does not start with"},
      {"text\n\n" + std::string(kEmDash) + "example.com/foo AAAAAAA=\n", "does not start with"},
      {"text\n\n" + std::string(kEmDash) + " example.com/foo\n", "no space"},
      {"text\n\n" + std::string(kEmDash) + " example.com/foo \n", "decodes to 0 bytes"},
      {"text\n\n" + std::string(kEmDash) + " example.com/foo AAAAAA==\n", "decodes to 4 bytes"},
      {"text\n\n" + std::string(kEmDash) + " example.com/foo AAAAAAA\n", "multiple of 4"},
      {"text\n\n" + std::string(kEmDash) + " example.com/foo  AAAAAA=\n", "' ' at offset 0"},
      {"text\n\n" + std::string(kEmDash) + "  AAAAAAA=\n", "note key name is empty"},
      {"text\n\n" + std::string(kEmDash) + " a\xE2\x80\xAE" "b AAAAAAA=\n", "bidirectional"},
      {"text\n\n" + std::string(kEmDash) +
           " a\xC2\xA0"
           "b AAAAAAA=\n",
       "whitespace"},
      {"text\n\n" + good_sig_line + "\n\n", "no signature lines"},
      {"tab\there\n\n" + good_sig_line + "\n", "control character 0x09 at byte offset 3"},
      {"cr\r\n\n" + good_sig_line + "\n", "control character 0x0d"},
      {"del\x7f\n\n" + good_sig_line + "\n", "control character 0x7f"},
      {"nul" + std::string(1, '\0') + "\n\n" + good_sig_line + "\n", "control character 0x00"},
      {"bad \xC3\x28\n\n" + good_sig_line + "\n", "not valid UTF-8 at byte offset 4"},
      {"overlong \xC0\xAF\n\n" + good_sig_line + "\n", "not valid UTF-8"},
      {"surrogate \xED\xA0\x80\n\n" + good_sig_line + "\n", "not valid UTF-8"},
      {"truncated \xE2\x80\n\n" + good_sig_line + "\n", "not valid UTF-8"},
  };
  for (const Case& c : cases) {
    auto note = SignedNote::Parse(c.note);
    ASSERT_FALSE(note.ok()) << "accepted " << absl::CHexEscape(c.note);
    EXPECT_EQ(note.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(note.status().message()), HasSubstr(c.fragment))
        << absl::CHexEscape(c.note);
  }
}

TEST(SignedNoteTest, ParseAcceptsAtMostOneHundredSignatures) {
  const std::string line =
      std::string(kEmDash) + " k " + Base64Encode(std::vector<uint8_t>(68, 1)) + "\n";
  std::string note = "text\n\n";
  for (int i = 0; i < 100; ++i) note += line;
  auto hundred = SignedNote::Parse(note);
  ASSERT_TRUE(hundred.ok()) << hundred.status();
  EXPECT_EQ(hundred->signatures.size(), 100u);
  auto too_many = SignedNote::Parse(note + line);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("more than 100"));
}

TEST(SignedNoteTest, SignNoteRejectsUnusableTextAndNames) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  EXPECT_THAT(std::string(SignNote("", node).status().message()), HasSubstr("empty"));
  EXPECT_THAT(std::string(SignNote("no newline", node).status().message()),
              HasSubstr("does not end in a newline"));
  EXPECT_THAT(std::string(SignNote("tab\t\n", node).status().message()),
              HasSubstr("control character"));
}

// Signers are Nix keys: a maintainer whose key name holds '+' (or any character Nix and
// ValidateKeyName allow) signs notes that parse and verify; only the node's own key, whose
// checkpoints standard clients read, needs C2SP's stricter names (checkpoint_test.cc).
TEST(SignedNoteTest, SignersMayHaveAnyNixKeyName) {
  for (std::string_view name : {"maint+ops", "a+b.c-d_e/f=g@h", "ünïcode+1", "+"}) {
    const SecretKey key = attest::testing::TestKey(name);
    auto note = SignNote("text\n", key);
    ASSERT_TRUE(note.ok()) << note.status();
    auto parsed = SignedNote::Parse(note->Serialize());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->signatures.size(), 1u);
    EXPECT_EQ(parsed->signatures[0].key_name, name);
    EXPECT_TRUE(VerifyNote(*parsed, key.public_key()).ok());
    EXPECT_EQ(ValidateNoteKeyName(name).code(), absl::StatusCode::kInvalidArgument) << name;
  }
}

TEST(SignedNoteTest, ParseNoteVerifierKeyAcceptsPlusInBase64) {
  // transparency-dev/formats note tests: a key whose base64 contains '+'.
  auto key = ParseNoteVerifierKey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6");
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->name(), "TEST");
  EXPECT_EQ(NoteVerifierKey(*key), "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6");
}

TEST(SignedNoteTest, ParseNoteVerifierKeyRejectsMangledKeys) {
  // As golang.org/x/mod/sumdb/note's TestNewVerifier: every proper substring and every
  // single-byte change of a valid key must be refused.
  const std::string vkey = ReadLine("go_peter_neumann.vkey");
  ASSERT_TRUE(ParseNoteVerifierKey(vkey).ok());
  for (size_t i = 0; i <= vkey.size(); ++i) {
    for (size_t j = i + 1; j <= vkey.size(); ++j) {
      if (i == 0 && j == vkey.size()) continue;
      EXPECT_FALSE(ParseNoteVerifierKey(vkey.substr(i, j - i)).ok()) << vkey.substr(i, j - i);
    }
  }
  for (size_t i = 0; i < vkey.size(); ++i) {
    std::string mangled = vkey;
    ++mangled[i];
    EXPECT_FALSE(ParseNoteVerifierKey(mangled).ok()) << mangled;
  }
}

TEST(SignedNoteTest, ParseNoteVerifierKeyErrorsAreSpecific) {
  struct Case {
    std::string vkey;
    std::string fragment;
  };
  const Case cases[] = {
      // A witness cosignature key (type 0x04), from transparency-dev/formats.
      {"remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2", "key type 0x04"},
      {"example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
       "key id 530d903b, but its name and key give 530d903a"},
      {"example.com/foo+530d903+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "8 hex digits"},
      {"example.com/foo", "does not have the form"},
      {"example.com/foo+530d903a", "does not have the form"},
      {"+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "note key name is empty"},
      {"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2kAAAA", "35 key bytes"},
  };
  for (const Case& c : cases) {
    auto key = ParseNoteVerifierKey(c.vkey);
    ASSERT_FALSE(key.ok()) << c.vkey;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(key.status().message()), HasSubstr(c.fragment)) << c.vkey;
  }
}

TEST(SignedNoteTest, ValidateNoteKeyName) {
  for (std::string_view name : {"example.com/log", "PeterNeumann", "a:b", "ünïcode", "a.b-c_d/e=f@g"}) {
    EXPECT_TRUE(ValidateNoteKeyName(name).ok()) << name;
    EXPECT_TRUE(ValidateNoteSignerName(name).ok()) << name;
  }
  EXPECT_THAT(std::string(ValidateNoteKeyName("a+b").message()), HasSubstr("contains '+'"));
  EXPECT_TRUE(ValidateNoteSignerName("a+b").ok());
  for (std::string_view name : {"", "a+b", "a\xE2\x80\xAE" "b", "a\xC2\x85" "b", "a b", "a\tb",
                                "a\xE2\x80\x83"
                                "b",
                                "a\xE3\x80\x80"
                                "b",
                                "\xFF"}) {
    EXPECT_EQ(ValidateNoteKeyName(name).code(), absl::StatusCode::kInvalidArgument)
        << absl::CHexEscape(AbslView(name));
  }
}

}  // namespace
}  // namespace attest::consensus
