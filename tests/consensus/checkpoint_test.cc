#include "consensus/checkpoint.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "consensus/encoding.h"
#include "consensus/signed_note.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kEmDash = "\xE2\x80\x94";
// MTH of the RFC 6962 8-leaf test tree (reference section 8, row 2).
constexpr std::string_view kEightLeafRootHex =
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";

std::string ReadVector(std::string_view file) {
  return attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/tlog/" +
                                        std::string(file));
}

std::string ReadLine(std::string_view file) {
  return std::string(absl::StripTrailingAsciiWhitespace(ReadVector(file)));
}

MerkleHash HashFromHex(std::string_view hex) {
  const std::vector<uint8_t> bytes = *HexDecode(hex);
  MerkleHash hash{};
  std::copy(bytes.begin(), bytes.end(), hash.begin());
  return hash;
}

// The 32-byte seed ("secret") of an RFC 8032 section 7.1 test, from tests/testdata.
std::vector<uint8_t> Rfc8032Seed(std::string_view test_name) {
  const std::string text =
      attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/rfc8032_ed25519.txt");
  const size_t block = text.find("name: " + std::string(test_name) + "\n");
  EXPECT_NE(block, std::string::npos) << test_name;
  const size_t secret = text.find("secret: ", block) + 8;
  return *HexDecode(std::string_view(text).substr(secret, 64));
}

SecretKey SelfDerivedLogKey() {
  return *SecretKey::FromSeed("example.com/log", Rfc8032Seed("TEST 2"));
}
SecretKey SelfDerivedWitnessKey() {
  return *SecretKey::FromSeed("witness.example/w1", Rfc8032Seed("TEST 1"));
}

Checkpoint SelfDerivedCheckpoint() {
  return Checkpoint{.origin = "example.com/log", .size = 8, .root = HashFromHex(kEightLeafRootHex)};
}

std::string SignatureLines(const std::string& note) { return note.substr(note.rfind("\n\n") + 2); }

TEST(CheckpointTest, SelfDerivedVectorIsReproducedByteForByte) {
  const SecretKey log_key = SelfDerivedLogKey();
  const SecretKey witness_key = SelfDerivedWitnessKey();
  EXPECT_EQ(NoteVerifierKey(log_key.public_key()), ReadLine("self_derived_log.vkey"));
  EXPECT_EQ(CosignatureVerifierKey(witness_key.public_key()),
            ReadLine("self_derived_witness.vkey"));
  EXPECT_EQ(CosignatureKeyId(witness_key.public_key()), 0xeb762cc2u);

  const Checkpoint checkpoint = SelfDerivedCheckpoint();
  EXPECT_EQ(checkpoint.Body(),
            "example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n");
  absl::StatusOr<SignedNote> note = SignCheckpoint(checkpoint, log_key);
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<NoteSignature> cosignature = Cosign(checkpoint, 1700000000, witness_key);
  ASSERT_TRUE(cosignature.ok()) << cosignature.status();
  EXPECT_EQ(cosignature->signature.size(), 72u);
  note->signatures.push_back(*cosignature);

  const std::string file = ReadVector("self_derived_checkpoint.note");
  EXPECT_EQ(note->Serialize(), file);
  EXPECT_EQ(
      SignatureLines(note->Serialize()),
      std::string(kEmDash) +
          " example.com/log SGLVN/DugTY/5WQasGhjGbjy0XIkDBbzdyewSiY8JuNtjLb2o5YT5O7FZ9nmyv4YVlg"
          "gaQL4LuYJCJVh08ZY3qTXZwA=\n" +
          std::string(kEmDash) +
          " witness.example/w1 63YswgAAAABlU/EAiuS5ba1GMXG0oqJQY0rpSJLIzOEWnsVCb3Z7lwj+DckSGUn"
          "8Cr9n8OFPOE7+YFApeNvjv3MHkk1b2mjf+4WEBg==\n");

  // And the published bytes verify with the published keys.
  absl::StatusOr<PublicKey> log_vkey = ParseNoteVerifierKey(ReadLine("self_derived_log.vkey"));
  ASSERT_TRUE(log_vkey.ok()) << log_vkey.status();
  absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(file, *log_vkey);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(*verified, checkpoint);
  absl::StatusOr<PublicKey> witness_vkey =
      ParseCosignatureVerifierKey(ReadLine("self_derived_witness.vkey"));
  ASSERT_TRUE(witness_vkey.ok()) << witness_vkey.status();
  EXPECT_EQ(*witness_vkey, witness_key.public_key());
  absl::StatusOr<uint64_t> time = VerifyCosignature(*SignedNote::Parse(file), *witness_vkey);
  ASSERT_TRUE(time.ok()) << time.status();
  EXPECT_EQ(*time, 1700000000u);
}

TEST(CheckpointTest, C2spCosignatureExampleDecodes) {
  const std::string file = ReadVector("c2sp_cosignature_example.note");
  absl::StatusOr<SignedNote> note = SignedNote::Parse(file);
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<Checkpoint> checkpoint = Checkpoint::ParseBody(note->text);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(checkpoint->size, 20852163u);
  EXPECT_EQ(checkpoint->Body(), note->text);

  ASSERT_EQ(note->signatures.size(), 2u);
  const NoteSignature& cosig = note->signatures[1];
  EXPECT_EQ(cosig.key_name, "witness.example.com/w1");
  EXPECT_EQ(cosig.key_id, 0x8d66cf3fu);
  ASSERT_EQ(cosig.signature.size(), 72u);
  uint64_t timestamp = 0;
  for (int i = 0; i < 8; ++i) timestamp = timestamp << 8 | cosig.signature[i];
  EXPECT_EQ(timestamp, 1679315147u);
  // The spec's example of the signed message is exactly what CosignedMessage builds.
  EXPECT_EQ(CosignedMessage(*checkpoint, timestamp), ReadVector("c2sp_cosigned_message.txt"));
}

TEST(CheckpointTest, SumGolangOrgTreeNoteVerifiesWithExplicitOrigin) {
  absl::StatusOr<PublicKey> key = ParseNoteVerifierKey(ReadLine("sum_golang_org.vkey"));
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<SignedNote> note = SignedNote::Parse(ReadVector("sum_golang_org.note"));
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<Checkpoint> checkpoint = VerifyCheckpoint(*note, *key, "go.sum database tree");
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->origin, "go.sum database tree");
  EXPECT_EQ(checkpoint->size, 6476701u);
  EXPECT_EQ(Base64Encode(checkpoint->root), "mb8QLQIs0Z0yP5Cstq6guj87oXWeC9gEM8oVikmm9Wk=");

  // Our own logs' rule (origin = key name) does not hold for the Go checksum database.
  absl::StatusOr<Checkpoint> strict = VerifyCheckpoint(ReadVector("sum_golang_org.note"), *key);
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(strict.status().message()),
              HasSubstr("has origin 'go.sum database tree'"));
  absl::StatusOr<Checkpoint> wrong =
      VerifyCheckpoint(*note, *key, "Go rocks but I might have the wrong ID");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(CheckpointTest, RealWitnessedCheckpointVerifies) {
  // A CT log checkpoint carrying an RFC 6962 STH signature, an Ed25519 log signature and four
  // cosignatures by public witnesses.
  const std::string file = ReadVector("arche2025h1_cosigned.note");
  absl::StatusOr<PublicKey> log_key = ParseNoteVerifierKey(ReadLine("arche2025h1_log.vkey"));
  ASSERT_TRUE(log_key.ok()) << log_key.status();
  absl::StatusOr<Checkpoint> checkpoint = VerifyCheckpoint(file, *log_key);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_EQ(checkpoint->size, 1432088532u);

  absl::StatusOr<PublicKey> witness = ParseCosignatureVerifierKey(ReadLine("remora_witness.vkey"));
  ASSERT_TRUE(witness.ok()) << witness.status();
  EXPECT_EQ(CosignatureVerifierKey(*witness), ReadLine("remora_witness.vkey"));
  absl::StatusOr<SignedNote> note = SignedNote::Parse(file);
  ASSERT_TRUE(note.ok()) << note.status();
  absl::StatusOr<uint64_t> time = VerifyCosignature(*note, *witness);
  ASSERT_TRUE(time.ok()) << time.status();
  EXPECT_EQ(*time, 1779573024u);

  // The log key is not a witness key: its id as a cosigner differs, so nothing matches.
  EXPECT_EQ(VerifyCosignature(*note, *log_key).status().code(), absl::StatusCode::kUnauthenticated);
  // A changed size breaks both.
  SignedNote changed = *note;
  changed.text.replace(changed.text.find("1432088532"), 10, "1432088533");
  EXPECT_EQ(VerifyCheckpoint(changed.Serialize(), *log_key).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyCosignature(changed, *witness).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(CheckpointTest, BodyRoundTripsAtTheBounds) {
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{70000}, kMaxTreeSize}) {
    Checkpoint checkpoint{.origin = "attest.example/node-1", .size = size};
    checkpoint.root[0] = 0xff;
    checkpoint.root[31] = static_cast<uint8_t>(size);
    absl::StatusOr<Checkpoint> parsed = Checkpoint::ParseBody(checkpoint.Body());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, checkpoint);
  }
  // Origins of other logs may contain spaces and non-ASCII letters.
  for (std::string_view origin :
       {"go.sum database tree", "rekor.sigstore.dev - 1193050959916656506",
        "ünïcode.example/log"}) {
    const Checkpoint checkpoint{.origin = std::string(origin), .size = 3};
    absl::StatusOr<Checkpoint> parsed = Checkpoint::ParseBody(checkpoint.Body());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->origin, origin);
  }
}

TEST(CheckpointTest, ParseBodyRejectsEveryMalformedBody) {
  const std::string root = "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=";
  ASSERT_TRUE(Checkpoint::ParseBody("example.com/log\n8\n" + root + "\n").ok());
  struct Case {
    std::string body;
    std::string fragment;
  };
  const Case cases[] = {
      {"", "empty"},
      {"example.com/log\n8\n" + root, "does not end in a newline"},
      {"example.com/log\n8\n", "has 2 lines; expected exactly 3"},
      {"example.com/log\n", "has 1 lines"},
      {"example.com/log\n8\n" + root + "\nextension\n", "line 4 'extension' is an extension line"},
      {"example.com/log\n8\n" + root + "\n\n", "line 4 '' is an extension line"},
      {"\n8\n" + root + "\n", "line 1 (origin) is empty"},
      {"tab\there\n8\n" + root + "\n", "line 1 (origin) 'tab\\there' has a control character"},
      {"del\x7f\n8\n" + root + "\n", "control character or invalid UTF-8 at byte offset 3"},
      {"bad \xC3\x28\n8\n" + root + "\n", "invalid UTF-8 at byte offset 4"},
      {"overlong \xC0\xAF\n8\n" + root + "\n", "invalid UTF-8"},
      {"surrogate \xED\xA0\x80\n8\n" + root + "\n", "invalid UTF-8"},
      {"cr\r\n8\n" + root + "\n", "line 1 (origin)"},
      {"example.com/log\n\n" + root + "\n", "line 2 (tree size) '' is not a decimal number"},
      {"example.com/log\n08\n" + root + "\n", "line 2 (tree size) '08' is not a decimal"},
      {"example.com/log\n-8\n" + root + "\n", "line 2 (tree size) '-8'"},
      {"example.com/log\n+8\n" + root + "\n", "line 2 (tree size) '+8'"},
      {"example.com/log\n 8\n" + root + "\n", "line 2 (tree size) ' 8'"},
      {"example.com/log\n8 \n" + root + "\n", "line 2 (tree size) '8 '"},
      {"example.com/log\n0x8\n" + root + "\n", "line 2 (tree size) '0x8'"},
      {"example.com/log\n18446744073709551616\n" + root + "\n", "line 2 (tree size)"},
      {"example.com/log\n9223372036854775808\n" + root + "\n",
       "line 2 (tree size) 9223372036854775808 exceeds 2^63-1"},
      {"example.com/log\n8\n\n", "line 3 (root hash) ''"},
      {"example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n", "line 3 (root hash)"},
      {"example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n", "line 3 (root hash)"},
      {"example.com/log\n8\n XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "line 3 (root hash)"},
      {"example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==\n",
       "line 3 (root hash) 'XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQw==' decodes to 31 bytes"},
      {"example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQygA\n", "decodes to 33 bytes"},
      {"example.com/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQygAAA==\n",
       "decodes to 34 bytes; a SHA-256 root hash has 32"},
      {"example.com/log\n8\n" + root + "\r\n", "line 3 (root hash)"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Checkpoint> parsed = Checkpoint::ParseBody(c.body);
    ASSERT_FALSE(parsed.ok()) << "accepted " << absl::CHexEscape(c.body);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.fragment))
        << absl::CHexEscape(c.body);
  }
}

TEST(CheckpointTest, ValidateLogOriginRefusesNamesOfOtherStatements) {
  for (std::string_view origin : {"example.com/log", "attest.example/node-1", "ünïcode", "a:b"}) {
    EXPECT_TRUE(ValidateLogOrigin(origin).ok()) << origin;
  }
  struct Case {
    std::string_view origin;
    std::string_view fragment;
  };
  const Case cases[] = {
      {"", "empty"},
      {"go.sum database tree", "whitespace"},
      {"a+b", "contains '+'"},
      {"attest/dispute/v1", "starts with 'attest/'"},
      {"attest/checkpoint/v1", "starts with 'attest/'"},
      {"cosignature/v1", "starts with 'cosignature/'"},
      {"1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin", "starts with '1;'"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateLogOrigin(c.origin);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.origin;
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(c.fragment))) << c.origin;
  }
}

TEST(CheckpointTest, SignCheckpointRequiresTheOriginToBeTheKeyName) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  Checkpoint checkpoint{.origin = "attest.example/node-2", .size = 1};
  absl::StatusOr<SignedNote> other = SignCheckpoint(checkpoint, node);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("is not the name of the node key 'attest.example/node-1'"));

  const SecretKey reserved = attest::testing::TestKey("attest/dispute/v1");
  checkpoint.origin = "attest/dispute/v1";
  EXPECT_THAT(std::string(SignCheckpoint(checkpoint, reserved).status().message()),
              HasSubstr("reserved"));

  checkpoint.origin = "attest.example/node-1";
  checkpoint.size = kMaxTreeSize + 1;
  EXPECT_THAT(std::string(SignCheckpoint(checkpoint, node).status().message()),
              HasSubstr("exceeds 2^63-1"));

  checkpoint.size = 5;
  absl::StatusOr<SignedNote> note = SignCheckpoint(checkpoint, node);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(note->text, checkpoint.Body());
  absl::StatusOr<Checkpoint> verified = VerifyCheckpoint(note->Serialize(), node.public_key());
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(*verified, checkpoint);
}

TEST(CheckpointTest, VerifyCheckpointFailures) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  const std::string good = SignCheckpoint(checkpoint, node)->Serialize();

  // Another key, or the same name with another key.
  const SecretKey stranger = attest::testing::TestKey("attest.example/node-2");
  EXPECT_EQ(VerifyCheckpoint(good, stranger.public_key()).status().code(),
            absl::StatusCode::kUnauthenticated);
  const SecretKey rotated = attest::testing::TestKey("attest.example/node-1", "rotated");
  absl::StatusOr<Checkpoint> wrong_key = VerifyCheckpoint(good, rotated.public_key());
  EXPECT_EQ(wrong_key.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(wrong_key.status().message()), HasSubstr("carries no signature"));

  // A changed body.
  std::string changed = good;
  changed.replace(changed.find("\n5\n"), 3, "\n6\n");
  absl::StatusOr<Checkpoint> tampered = VerifyCheckpoint(changed, node.public_key());
  EXPECT_EQ(tampered.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(tampered.status().message()), HasSubstr("does not verify"));

  // Not a note at all.
  EXPECT_EQ(VerifyCheckpoint(checkpoint.Body(), node.public_key()).status().code(),
            absl::StatusCode::kInvalidArgument);

  // A note the key signed that is not a checkpoint (a dispute record) is not accepted as one.
  const std::string dispute = SignNote("attest/dispute/v1\nid d-00\n", node)->Serialize();
  absl::StatusOr<Checkpoint> not_checkpoint = VerifyCheckpoint(dispute, node.public_key());
  EXPECT_EQ(not_checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_checkpoint.status().message()), HasSubstr("has 2 lines"));

  // A checkpoint the key signed for another origin (SignNote does not know about origins).
  const Checkpoint foreign{.origin = "attest.example/other-log", .size = 5};
  const std::string other_log = SignNote(foreign.Body(), node)->Serialize();
  absl::StatusOr<Checkpoint> other = VerifyCheckpoint(other_log, node.public_key());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("has origin 'attest.example/other-log', not 'attest.example/node-1'"));
}

TEST(CosignatureTest, CosignatureOverAnotherBodyOrTimestampFails) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  const SecretKey witness = attest::testing::TestKey("attest.example/witness");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  SignedNote note = *SignCheckpoint(checkpoint, node);
  note.signatures.push_back(*Cosign(checkpoint, 1700000000, witness));
  ASSERT_EQ(*VerifyCosignature(note, witness.public_key()), 1700000000u);
  // The cosignature survives serialisation.
  EXPECT_EQ(*VerifyCosignature(*SignedNote::Parse(note.Serialize()), witness.public_key()),
            1700000000u);

  // A cosignature of another checkpoint, moved onto this note.
  SignedNote moved = note;
  moved.signatures.back() =
      *Cosign(Checkpoint{.origin = "attest.example/node-1", .size = 6}, 1700000000, witness);
  absl::StatusOr<uint64_t> other_body = VerifyCosignature(moved, witness.public_key());
  EXPECT_EQ(other_body.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(other_body.status().message()), HasSubstr("does not verify"));

  // The timestamp changed after cosigning.
  SignedNote retimed = note;
  retimed.signatures.back().signature[7] ^= 1;
  absl::StatusOr<uint64_t> other_time = VerifyCosignature(retimed, witness.public_key());
  EXPECT_EQ(other_time.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(other_time.status().message()), HasSubstr("time 1700000001"));

  // A flipped signature bit.
  SignedNote flipped = note;
  flipped.signatures.back().signature[40] ^= 1;
  EXPECT_EQ(VerifyCosignature(flipped, witness.public_key()).status().code(),
            absl::StatusCode::kUnauthenticated);

  // The body changed after cosigning.
  SignedNote changed = note;
  changed.text = Checkpoint{.origin = "attest.example/node-1", .size = 7}.Body();
  EXPECT_EQ(VerifyCosignature(changed, witness.public_key()).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(CosignatureTest, MalformedCosignatureLinesAreRejected) {
  const SecretKey node = attest::testing::TestKey("attest.example/node-1");
  const SecretKey witness = attest::testing::TestKey("attest.example/witness");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  SignedNote note = *SignCheckpoint(checkpoint, node);

  absl::StatusOr<uint64_t> none = VerifyCosignature(note, witness.public_key());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(none.status().message()),
              HasSubstr("no cosignature by witness 'attest.example/witness'"));

  const NoteSignature good = *Cosign(checkpoint, 1700000000, witness);
  struct Case {
    std::vector<uint8_t> payload;
    std::string fragment;
  };
  std::vector<uint8_t> without_timestamp(good.signature.begin() + 8, good.signature.end());
  std::vector<uint8_t> truncated(good.signature.begin(), good.signature.end() - 1);
  std::vector<uint8_t> extended = good.signature;
  extended.push_back(0);
  std::vector<uint8_t> huge_time = good.signature;
  huge_time[0] = 0x80;
  const Case cases[] = {
      {without_timestamp, "holds 64 bytes after the key id"},
      {truncated, "holds 71 bytes"},
      {extended, "holds 73 bytes"},
      {huge_time, "above 2^63-1"},
  };
  for (const Case& c : cases) {
    SignedNote bad = note;
    NoteSignature line = good;
    line.signature = c.payload;
    bad.signatures.push_back(line);
    // Through the wire format too: SignedNote::Parse keeps any payload length.
    absl::StatusOr<SignedNote> parsed = SignedNote::Parse(bad.Serialize());
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    absl::StatusOr<uint64_t> result = VerifyCosignature(*parsed, witness.public_key());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << c.fragment;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.fragment));
    // One bad line by the witness rejects the note even next to a good one.
    bad.signatures.push_back(good);
    EXPECT_EQ(VerifyCosignature(bad, witness.public_key()).status().code(),
              absl::StatusCode::kUnauthenticated)
        << c.fragment;
  }
}

TEST(CosignatureTest, NoteSignaturesAndCosignaturesDoNotStandInForEachOther) {
  const SecretKey key = attest::testing::TestKey("attest.example/node-1");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  EXPECT_NE(CosignatureKeyId(key.public_key()), NoteKeyId(key.public_key()));

  // A log signature by a key is not its cosignature ...
  SignedNote signed_only = *SignCheckpoint(checkpoint, key);
  EXPECT_THAT(std::string(VerifyCosignature(signed_only, key.public_key()).status().message()),
              HasSubstr("no cosignature"));
  // ... and a cosignature is not a log signature.
  SignedNote cosigned_only{.text = checkpoint.Body(), .signatures = {*Cosign(checkpoint, 1, key)}};
  EXPECT_THAT(
      std::string(VerifyCheckpoint(cosigned_only.Serialize(), key.public_key()).status().message()),
      HasSubstr("carries no signature"));
  EXPECT_EQ(*VerifyCosignature(cosigned_only, key.public_key()), 1u);
}

TEST(CosignatureTest, LatestOfSeveralValidCosignaturesIsReturned) {
  const SecretKey witness = attest::testing::TestKey("attest.example/witness");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  SignedNote note{.text = checkpoint.Body(),
                  .signatures = {*Cosign(checkpoint, 20, witness), *Cosign(checkpoint, 30, witness),
                                 *Cosign(checkpoint, 10, witness)}};
  EXPECT_EQ(*VerifyCosignature(note, witness.public_key()), 30u);
}

TEST(CosignatureTest, CosignRefusesWhatVerifiersWouldReject) {
  const SecretKey witness = attest::testing::TestKey("attest.example/witness");
  const Checkpoint checkpoint{.origin = "attest.example/node-1", .size = 5};
  EXPECT_TRUE(Cosign(checkpoint, kMaxCosignatureTimestamp, witness).ok());
  absl::StatusOr<NoteSignature> late = Cosign(checkpoint, kMaxCosignatureTimestamp + 1, witness);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("exceeds 2^63-1"));

  const SecretKey plus = attest::testing::TestKey("witness+1");
  EXPECT_THAT(std::string(Cosign(checkpoint, 1, plus).status().message()), HasSubstr("'+'"));

  absl::StatusOr<NoteSignature> empty_origin =
      Cosign(Checkpoint{.origin = "", .size = 5}, 1, witness);
  EXPECT_EQ(empty_origin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(empty_origin.status().message()), HasSubstr("line 1 (origin) is empty"));
  EXPECT_EQ(Cosign(Checkpoint{.origin = "a\nb", .size = 5}, 1, witness).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CosignatureTest, CosignedMessageIsTheSpecLayout) {
  const Checkpoint checkpoint{.origin = "example.com/log", .size = 0};
  EXPECT_EQ(CosignedMessage(checkpoint, 0),
            "cosignature/v1\ntime 0\nexample.com/log\n0\n"
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
}

TEST(CosignatureTest, ParseCosignatureVerifierKeyErrorsAreSpecific) {
  struct Case {
    std::string vkey;
    std::string fragment;
  };
  const Case cases[] = {
      {"example.com/log+4862d537+AT1AF8PoQ4lakrcKp00bfrycmCzPLsSWjMDNVfEq9GYM",
       "key type 0x01; a witness cosignature key has type 0x04 (0x01 is a note signer key"},
      {"witness.example/w1+eb762cc3+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea",
       "key id eb762cc3, but its name and key give eb762cc2"},
      {"witness.example/w1+eb762cc+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea", "8 hex digits"},
      {"witness.example/w1+eb762cc2", "does not have the form"},
      {"+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea", "note key name is empty"},
      {"witness.example/w1+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1EaAAAA",
       "35 key bytes"},
      {"witness.example/w1+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1E",
       "witness verifier key"},
      {"a:b+eb762cc2+BNdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea", "':'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PublicKey> key = ParseCosignatureVerifierKey(c.vkey);
    ASSERT_FALSE(key.ok()) << c.vkey;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(key.status().message()), HasSubstr(c.fragment)) << c.vkey;
  }
  // Every single-byte change of a valid key is refused.
  const std::string vkey = ReadLine("self_derived_witness.vkey");
  for (size_t i = 0; i < vkey.size(); ++i) {
    std::string mangled = vkey;
    ++mangled[i];
    EXPECT_FALSE(ParseCosignatureVerifierKey(mangled).ok()) << mangled;
  }
}

}  // namespace
}  // namespace attest::consensus
