#include "consensus/log_entry.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "consensus/attestation.h"
#include "consensus/dispute.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/path_info.h"
#include "consensus/policy.h"
#include "consensus/policy_update.h"
#include "consensus/sha256.h"
#include "consensus/signed_note.h"
#include "consensus/store_path.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestClaim;
using ::attest::testing::TestClaimWithReferences;
using ::attest::testing::TestKey;
using ::attest::testing::TestStorePath;
using ::testing::HasSubstr;

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

// A real Nix 2.8 signature (from a Nix 2.8 run: builderA-1 signed withdeps with `nix store sign`), the
// same one attestation_test.cc checks.
constexpr char kFingerprint[] =
    "1;/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps;sha256:"
    "0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k;160;"
    "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep";
constexpr char kSignature[] =
    "builderA-1:YkhVQl6mm0ub9868pMBHhzgxtu3vJvUeiiYxOTMIkMwqV5+eimGJ65DOx8xzjRj+jBY+IDmfyy3i/"
    "VPlDr5qDw==";
constexpr char kPublicKey[] = "builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=";

// The golden entry, written out by hand: every field, in the fixed order, each line ending in '\n'.
constexpr char kGoldenEntry[] =
    "attest/log/attestation/v1\n"
    "fingerprint 1;/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps;sha256:"
    "0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k;160;"
    "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep\n"
    "signature builderA-1:YkhVQl6mm0ub9868pMBHhzgxtu3vJvUeiiYxOTMIkMwqV5+eimGJ65DOx8xzjRj+jBY+"
    "IDmfyy3i/VPlDr5qDw==\n"
    "observed-key builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=\n"
    "deriver /nix/store/54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv\n"
    "output out\n"
    "system x86_64-linux\n"
    "kind rebuild\n"
    "built 1795576781\n"
    "received 1795576800\n";

// Only the required fields.
constexpr char kMinimalEntry[] =
    "attest/log/attestation/v1\n"
    "fingerprint 1;/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps;sha256:"
    "0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k;160;"
    "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep\n"
    "signature builderA-1:YkhVQl6mm0ub9868pMBHhzgxtu3vJvUeiiYxOTMIkMwqV5+eimGJ65DOx8xzjRj+jBY+"
    "IDmfyy3i/VPlDr5qDw==\n"
    "received 0\n";

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  EXPECT_TRUE(value.ok()) << value.status();
  if (!value.ok()) std::abort();
  return *std::move(value);
}

// An entry with no optional field and received time 0.
AttestationEntry EntryOf(const PathInfo& claim, const Signature& signature) {
  return AttestationEntry{.attestation = Attestation{claim, signature, BuildMetadata{}},
                          .observed_key = std::nullopt,
                          .received_unix = 0};
}

AttestationEntry MinimalEntry() {
  return EntryOf(OrDie(PathInfo::ParseFingerprint(kFingerprint)),
                 OrDie(Signature::Parse(kSignature)));
}

AttestationEntry GoldenEntry() {
  AttestationEntry entry = MinimalEntry();
  entry.observed_key = OrDie(PublicKey::Parse(kPublicKey));
  entry.attestation.metadata = BuildMetadata{
      .deriver = "/nix/store/54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv",
      .output_name = "out",
      .system = "x86_64-linux",
      .build_kind = BuildKind::kRebuild,
      .build_time_unix = 1795576781,
  };
  entry.received_unix = 1795576800;
  return entry;
}

// Encodes, parses back, and checks both directions of the round trip. Returns the bytes.
std::string ExpectRoundTrip(const AttestationEntry& entry) {
  absl::StatusOr<std::string> bytes = EncodeAttestationEntry(entry);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return "";
  absl::StatusOr<LogEntry> parsed = ParseLogEntry(*bytes);
  EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << *bytes;
  if (!parsed.ok()) return *bytes;
  EXPECT_EQ(parsed->kind, LogEntryKind::kAttestation);
  EXPECT_TRUE(parsed->note.empty());
  EXPECT_EQ(parsed->attestation, entry);
  absl::StatusOr<std::string> again = EncodeLogEntry(*parsed);
  EXPECT_TRUE(again.ok()) << again.status();
  if (again.ok()) {
    EXPECT_EQ(*again, *bytes);
  }
  return *bytes;
}

// ---- Format -----------------------------------------------------------------------------------

TEST(LogEntryTest, KindValuesAreStable) {
  EXPECT_EQ(static_cast<int>(LogEntryKind::kAttestation), 1);
  EXPECT_EQ(static_cast<int>(LogEntryKind::kDispute), 2);
  EXPECT_EQ(static_cast<int>(LogEntryKind::kResolution), 3);
  EXPECT_EQ(static_cast<int>(LogEntryKind::kDisputePart), 4);
  EXPECT_EQ(static_cast<int>(LogEntryKind::kPolicy), 5);
  EXPECT_EQ(kMaxLogEntryBytes, 65535u);
}

TEST(LogEntryTest, GoldenBytes) {
  absl::StatusOr<std::string> bytes = EncodeAttestationEntry(GoldenEntry());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, kGoldenEntry);

  absl::StatusOr<LogEntry> parsed = ParseLogEntry(kGoldenEntry);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, LogEntryKind::kAttestation);
  EXPECT_EQ(parsed->attestation, GoldenEntry());
}

TEST(LogEntryTest, GoldenBytesWithOnlyRequiredFields) {
  absl::StatusOr<std::string> bytes = EncodeAttestationEntry(MinimalEntry());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, kMinimalEntry);
  EXPECT_EQ(ExpectRoundTrip(MinimalEntry()), kMinimalEntry);
}

TEST(LogEntryTest, RoundTripsWithAndWithoutEveryOptionalField) {
  const AttestationEntry full = GoldenEntry();
  // Bit i set: optional field i present (observed-key, deriver, output, system, kind, built).
  for (int mask = 0; mask < (1 << 6); ++mask) {
    AttestationEntry entry = MinimalEntry();
    entry.received_unix = full.received_unix;
    BuildMetadata& m = entry.attestation.metadata;
    if (mask & 1) entry.observed_key = full.observed_key;
    if (mask & 2) m.deriver = full.attestation.metadata.deriver;
    if (mask & 4) m.output_name = full.attestation.metadata.output_name;
    if (mask & 8) m.system = full.attestation.metadata.system;
    if (mask & 16) m.build_kind = full.attestation.metadata.build_kind;
    if (mask & 32) m.build_time_unix = full.attestation.metadata.build_time_unix;
    const std::string bytes = ExpectRoundTrip(entry);
    // The entry is the golden one with exactly the absent lines left out.
    std::string expected;
    int line_index = 0;
    for (absl::string_view line : absl::StrSplit(kGoldenEntry, '\n', absl::SkipEmpty())) {
      const bool optional = line_index >= 3 && line_index <= 8;
      if (!optional || (mask & (1 << (line_index - 3)))) absl::StrAppend(&expected, line, "\n");
      ++line_index;
    }
    EXPECT_EQ(bytes, expected) << "mask " << mask;
  }
}

TEST(LogEntryTest, EveryBuildKindRoundTrips) {
  for (BuildKind kind : {BuildKind::kFirstBuild, BuildKind::kRebuild, BuildKind::kCheck,
                         BuildKind::kImported}) {
    AttestationEntry entry = MinimalEntry();
    entry.attestation.metadata.build_kind = kind;
    EXPECT_THAT(ExpectRoundTrip(entry),
                HasSubstr(absl::StrCat("\nkind ", std::string(BuildKindName(kind)), "\n")));
  }
}

TEST(LogEntryTest, ExtremeTimesRoundTrip) {
  AttestationEntry entry = MinimalEntry();
  entry.attestation.metadata.build_time_unix = std::numeric_limits<int64_t>::max();
  entry.received_unix = std::numeric_limits<int64_t>::max();
  EXPECT_THAT(ExpectRoundTrip(entry), HasSubstr("\nbuilt 9223372036854775807\n"
                                                "received 9223372036854775807\n"));
}

// ---- Real Nix signatures ------------------------------------------------------------------------

using Block = std::map<std::string, std::string>;

// The "key: value" blocks of a data file in tests/testdata/nix_signatures (blank-line separated).
std::vector<Block> NixSignatureBlocks(const std::string& file) {
  const std::string text = attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) +
                                                          "/nix_signatures/" + file);
  std::vector<Block> blocks(1);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) {
      if (!blocks.back().empty()) blocks.emplace_back();
      continue;
    }
    if (line[0] == '#') continue;
    const size_t colon = line.find(": ");
    if (colon == absl::string_view::npos) continue;
    blocks.back()[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 2));
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

TEST(LogEntryTest, RealNixSignaturesVerifyAfterRoundTrip) {
  int checked = 0;
  for (const char* file : {"nix_2.8_signatures.txt", "nix_reference_signatures.txt"}) {
    for (const Block& block : NixSignatureBlocks(file)) {
      if (!block.contains("fingerprint") || !block.contains("signature") ||
          !block.contains("public-key")) {
        continue;
      }
      SCOPED_TRACE(block.at("signature"));
      const PublicKey key = OrDie(PublicKey::Parse(block.at("public-key")));
      AttestationEntry entry = EntryOf(OrDie(PathInfo::ParseFingerprint(block.at("fingerprint"))),
                                       OrDie(Signature::Parse(block.at("signature"))));
      entry.attestation.metadata.build_kind = BuildKind::kImported;
      entry.observed_key = key;
      entry.received_unix = 1795576800;

      const std::string bytes = ExpectRoundTrip(entry);
      absl::StatusOr<LogEntry> parsed = ParseLogEntry(bytes);
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      // The fingerprint line carries Nix's signed bytes exactly.
      EXPECT_THAT(bytes, HasSubstr("\nfingerprint " + block.at("fingerprint") + "\n"));
      EXPECT_TRUE(VerifyAttestationEntry(*parsed->attestation, key).ok());
      // With the key the entry itself carries, too.
      ASSERT_TRUE(parsed->attestation->observed_key.has_value());
      EXPECT_TRUE(
          VerifyAttestationEntry(*parsed->attestation, *parsed->attestation->observed_key).ok());
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

TEST(LogEntryTest, VerifyFailsForAChangedClaimOrAnotherKey) {
  const PublicKey key = OrDie(PublicKey::Parse(kPublicKey));
  EXPECT_TRUE(VerifyAttestationEntry(GoldenEntry(), key).ok());

  // A log entry edited to claim another NAR size still parses, but no longer verifies.
  const std::string edited = absl::StrReplaceAll(kGoldenEntry, {{";160;", ";161;"}});
  absl::StatusOr<LogEntry> parsed = ParseLogEntry(edited);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const absl::Status changed = VerifyAttestationEntry(*parsed->attestation, key);
  EXPECT_EQ(changed.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Message(changed), HasSubstr("builderA-1"));

  const absl::Status other =
      VerifyAttestationEntry(GoldenEntry(), TestKey("builderA-1", "impostor").public_key());
  EXPECT_EQ(other.code(), absl::StatusCode::kUnauthenticated);
}

// ---- Size limit -------------------------------------------------------------------------------

// An attestation entry of exactly `size` bytes, made long by references with long names.
AttestationEntry EntryOfSize(size_t size) {
  const Attestation small = SignAttestation(TestClaim("big"), TestKey("builder-1"));
  AttestationEntry entry = EntryOf(small.claim, small.signature);
  entry.received_unix = 1700000000;
  const size_t base = OrDie(EncodeAttestationEntry(entry)).size();
  // Each reference adds "/nix/store/" + 32 + "-" + name, plus a ',' after all but the last:
  // (size - base) + 1 == sum over references of (45 + name length), names 1..211 bytes.
  const size_t total = size - base + 1;
  const size_t count = (total + 255) / 256;
  const size_t name_bytes = total - 45 * count;
  std::vector<StorePath> refs;
  for (size_t i = 0; i < count; ++i) {
    const size_t length = name_bytes / count + (i < name_bytes % count ? 1 : 0);
    std::string name = absl::StrCat("r", i, "-");
    name.resize(length, 'x');
    refs.push_back(TestStorePath(name));
  }
  const PathInfo claim = OrDie(PathInfo::Create(small.claim.path, small.claim.nar_hash,
                                                small.claim.nar_size, std::move(refs)));
  entry.attestation = SignAttestation(claim, TestKey("builder-1"));
  return entry;
}

TEST(LogEntryTest, SizeLimitIsExactly65535Bytes) {
  const AttestationEntry fits = EntryOfSize(65535);
  const std::string bytes = ExpectRoundTrip(fits);
  EXPECT_EQ(bytes.size(), 65535u);
  EXPECT_TRUE(VerifyAttestationEntry(fits, TestKey("builder-1").public_key()).ok());

  const AttestationEntry too_big = EntryOfSize(65536);
  const absl::StatusOr<std::string> refused = EncodeAttestationEntry(too_big);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused.status()), HasSubstr("65536 bytes"));
  EXPECT_THAT(Message(refused.status()), HasSubstr("at most 65535"));
  EXPECT_THAT(Message(refused.status()),
              HasSubstr(absl::StrCat(too_big.attestation.claim.references.size(),
                                     " references this long cannot be logged")));

  // The parser refuses a 65536-byte entry before reading it (one more digit of received time).
  const std::string longer =
      absl::StrReplaceAll(bytes, {{"\nreceived 1700000000\n", "\nreceived 17000000000\n"}});
  ASSERT_EQ(longer.size(), 65536u);
  const absl::StatusOr<LogEntry> parsed = ParseLogEntry(longer);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(Message(parsed.status()), HasSubstr("65536 bytes"));
}

// ---- Malformed entries ------------------------------------------------------------------------

std::string Replace(std::string_view from, std::string_view to) {
  std::string text = kGoldenEntry;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(LogEntryTest, MalformedEntriesAreRejectedNamingLineAndProblem) {
  const std::string golden = kGoldenEntry;
  const std::string sig_line = absl::StrCat("signature ", kSignature, "\n");
  struct Case {
    std::string name;
    std::string bytes;
    int line;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"empty", "", 1, "the entry is empty"},
      {"unknown first line", Replace("attestation/v1\n", "attestation/v2\n"), 1,
       "unknown entry type 'attest/log/attestation/v2'"},
      {"header only, no newline", "attest/log/attestation/v1", 1, "does not end in a newline"},
      {"CRLF line ends", absl::StrReplaceAll(golden, {{"\n", "\r\n"}}), 1,
       "unknown entry type 'attest/log/attestation/v1\\r'"},
      {"unknown field", Replace("output out\n", "colour blue\noutput out\n"), 6,
       "unknown field 'colour'"},
      {"duplicate field", Replace("output out\n", "output out\noutput out\n"), 7,
       "duplicate field 'output' (first on line 6)"},
      {"out of order",
       Replace("output out\nsystem x86_64-linux\n", "system x86_64-linux\noutput out\n"), 7,
       "field 'output' is out of order: it belongs before 'system' (line 6)"},
      {"missing required field", Replace(sig_line, ""), 3,
       "missing required field 'signature' before 'observed-key'"},
      {"missing last field", Replace("received 1795576800\n", ""), 9,
       "the entry ends without the required field 'received'"},
      {"trailing garbage", golden + "extra\n", 11, "unexpected 'extra' after the received line"},
      {"trailing blank line", golden + "\n", 11, "unexpected '' after the received line"},
      {"blank line inside", Replace("output out\n", "\noutput out\n"), 6, "is empty"},
      {"missing final newline", golden.substr(0, golden.size() - 1), 10,
       "does not end in a newline"},
      {"empty value", Replace("output out\n", "output \n"), 6, "field 'output' has no value"},
      {"no value", Replace("output out\n", "output\n"), 6, "field 'output' has no value"},
      {"leading zero", Replace("received 1795576800", "received 01795576800"), 10,
       "received '01795576800' is not a canonical decimal"},
      {"signed decimal", Replace("built 1795576781", "built +1795576781"), 9,
       "built '+1795576781' is not a canonical decimal"},
      {"decimal overflow", Replace("received 1795576800", "received 9223372036854775808"), 10,
       "received '9223372036854775808' is not a canonical decimal"},
      {"built zero", Replace("built 1795576781", "built 0"), 9,
       "built time 0 (unknown) is written by leaving the built line out"},
      {"bad base64", Replace("builderA-1:Ykh", "builderA-1:Yk!"), 3, "is not valid base64"},
      {"signature of the wrong length",
       Replace(sig_line, absl::StrCat("signature builderA-1:", std::string(84, 'A'), "\n")), 3,
       "decodes to 63 bytes"},
      {"non-canonical NAR size in the fingerprint", Replace(";160;", ";0160;"), 2,
       "NAR size '0160' is not a plain decimal"},
      {"unsorted references in the fingerprint",
       Replace("-dep\n", "-dep,/nix/store/00000000000000000000000000000000-a\n"), 2,
       "references are not sorted"},
      {"observed key of another name",
       Replace("observed-key builderA-1:", "observed-key builderB-1:"), 4,
       "observed key is named 'builderB-1' but the signature is by 'builderA-1'"},
      {"observed key with two spaces before it",
       Replace("observed-key builderA-1:", "observed-key  builderA-1:"), 4,
       "is not in canonical form"},
      {"observed key with a trailing space", Replace("CY0=\n", "CY0= \n"), 4,
       "is not in canonical form"},
      {"signature with a trailing space", Replace("Dw==\n", "Dw== \n"), 3, "signature"},
      {"observed key of the wrong length", Replace("CY0=\n", "CY0AAAA=\n"), 4,
       "decodes to 35 bytes"},
      {"deriver not a .drv", Replace("-withdeps.drv\n", "-withdeps\n"), 5,
       "is not a .drv store path"},
      {"system with white space", Replace("system x86_64-linux", "system  x86_64-linux"), 7,
       "build metadata system ' x86_64-linux' contains whitespace"},
      {"unknown build kind", Replace("kind rebuild", "kind fast"), 8, "unknown build kind 'fast'"},
      {"spelled-out unspecified kind", Replace("kind rebuild", "kind unspecified"), 8,
       "kind 'unspecified' is written by leaving the kind line out"},
      {"dispute header with garbage", "attest/log/dispute/v1\nhello\n", 2, "dispute note"},
  };
  std::set<std::string> distinct;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    distinct.insert(c.bytes);
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry(c.bytes);
    ASSERT_FALSE(parsed.ok()) << c.bytes;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(parsed.status()),
                HasSubstr(absl::StrCat("log entry line ", c.line, ": ")));
    EXPECT_THAT(Message(parsed.status()), HasSubstr(c.problem));
  }
  EXPECT_EQ(distinct.size(), cases.size());
}

// ---- Encoder checks ---------------------------------------------------------------------------

TEST(LogEntryTest, EncoderRefusesWhatCouldNotBeParsedBack) {
  struct Case {
    std::string name;
    AttestationEntry entry;
    std::string fragment;
  };
  std::vector<Case> cases;
  auto add = [&](std::string name, std::string fragment, auto edit) {
    AttestationEntry entry = GoldenEntry();
    edit(entry);
    cases.push_back({std::move(name), std::move(entry), std::move(fragment)});
  };
  add("observed key of another name",
      "observed key is named 'builderB-1' but the signature is by 'builderA-1'",
      [](AttestationEntry& e) { e.observed_key = TestKey("builderB-1").public_key(); });
  add("newline in system", "build metadata system",
      [](AttestationEntry& e) { e.attestation.metadata.system = "x86_64-linux\nreceived 1"; });
  add("newline in output name", "build metadata output name",
      [](AttestationEntry& e) { e.attestation.metadata.output_name = "out\n"; });
  add("deriver not a .drv", "not a .drv store path", [](AttestationEntry& e) {
    e.attestation.metadata.deriver = "/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps";
  });
  add("unknown build kind", "unknown build kind 9", [](AttestationEntry& e) {
    e.attestation.metadata.build_kind = static_cast<BuildKind>(9);
  });
  add("negative build time", "negative",
      [](AttestationEntry& e) { e.attestation.metadata.build_time_unix = -1; });
  add("negative received time", "received time -1 is negative",
      [](AttestationEntry& e) { e.received_unix = -1; });
  add("signature key name with a newline", "signature: key name",
      [](AttestationEntry& e) { e.attestation.signature.key_name = "builderA-1\nreceived"; });
  add("claim not made by PathInfo::Create", "invalid claim",
      [](AttestationEntry& e) { e.attestation.claim.nar_size = 0; });
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<std::string> bytes = EncodeAttestationEntry(c.entry);
    ASSERT_FALSE(bytes.ok()) << *bytes;
    EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(bytes.status()), HasSubstr(c.fragment));
  }
}

TEST(LogEntryTest, EncodeLogEntryChecksTheKindMatchesTheContent) {
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kAttestation,
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = std::nullopt})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{
                                  .kind = LogEntryKind::kDispute,
                                  .attestation = GoldenEntry(),
                                  .note = {},
                                  .part = std::nullopt,
                              })
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = static_cast<LogEntryKind>(3),
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = std::nullopt})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kDisputePart,
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = std::nullopt})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kDisputePart,
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = DisputePart{.record_sha256 = "not hex", .index = 1, .count = 2,
                                                           .bytes = "x"}})
                   .ok());
}

// ---- Policy entries ---------------------------------------------------------------------------

std::string HexHash(char digit) { return Cat("sha256:", std::string(64, digit)); }

constexpr char kPolicyToml[] = "# version 3: org-e joins\nparent = \"sha256:aaa\"\nversion = 3\nquorum = 2\n";

PolicyEntry GoldenPolicy() {
  return PolicyEntry{.policy_hash = HexHash('b'),
                     .parent = HexHash('a'),
                     .version = 3,
                     .approvals = {TestKey("maint-2").Sign("approve"), TestKey("maint-1").Sign("approve")},
                     .received_unix = 1795576800,
                     .toml = kPolicyToml};
}

// Written out by hand from the format in log_entry.h.
std::string GoldenPolicyBytes() {
  const PolicyEntry entry = GoldenPolicy();
  return Cat("attest/log/policy/v1\n", "policy ", HexHash('b'), "\n", "parent ", HexHash('a'), "\n", "version 3\n",
             "approval ", entry.approvals[0].ToString(), "\n", "approval ", entry.approvals[1].ToString(), "\n",
             "received 1795576800\n", "toml ", std::string_view(kPolicyToml).size(), "\n", kPolicyToml);
}

TEST(LogEntryTest, PolicyEntryGoldenBytesAndRoundTrip) {
  const absl::StatusOr<std::string> bytes = EncodePolicyEntry(GoldenPolicy());
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, GoldenPolicyBytes());
  const absl::StatusOr<LogEntry> parsed = ParseLogEntry(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, LogEntryKind::kPolicy);
  EXPECT_EQ(parsed->policy, GoldenPolicy());
  EXPECT_FALSE(parsed->attestation.has_value());
  EXPECT_FALSE(parsed->part.has_value());
  EXPECT_TRUE(parsed->note.empty());
  EXPECT_EQ(OrDie(EncodeLogEntry(*parsed)), *bytes);
  // The log keeps the entry itself as its note, and gives it back as it is.
  EXPECT_EQ(OrDie(EncodeNoteEntry(*bytes)), *bytes);
}

TEST(LogEntryTest, PolicyEntryTomlIsRawBytesToTheEnd) {
  for (std::string toml : {std::string("quorum = 1"), std::string("quorum = 1\n\n"),
                           std::string("a = 1\nreceived 5\ntoml 3\n"), std::string("\0\xff\r\n", 4),
                           std::string(kMaxPolicyTomlBytes, '#')}) {
    PolicyEntry entry = GoldenPolicy();
    entry.toml = toml;
    const absl::StatusOr<std::string> bytes = EncodePolicyEntry(entry);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry(*bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->policy->toml, toml);
  }
}

TEST(LogEntryTest, PolicyEntryWithOneAndWithTheMostApprovalsRoundTrips) {
  for (size_t count : {size_t{1}, kMaxPolicyApprovals}) {
    PolicyEntry entry = GoldenPolicy();
    entry.approvals.clear();
    for (size_t i = 0; i < count; ++i) entry.approvals.push_back(TestKey(Cat("maint-", i)).Sign("approve"));
    entry.received_unix = 0;
    entry.version = std::numeric_limits<int64_t>::max();
    const absl::StatusOr<std::string> bytes = EncodePolicyEntry(entry);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry(*bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed->policy, entry);
  }
}

TEST(LogEntryTest, PolicyEntryEncoderRefusesWhatCouldNotBeParsedBack) {
  struct Case {
    std::string what;
    std::function<void(PolicyEntry&)> spoil;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"empty hash", [](PolicyEntry& e) { e.policy_hash.clear(); }, "policy hash"},
      {"uppercase hash", [](PolicyEntry& e) { e.policy_hash = Cat("sha256:", std::string(64, 'B')); }, "policy hash"},
      {"short hash", [](PolicyEntry& e) { e.policy_hash = Cat("sha256:", std::string(63, 'b')); }, "policy hash"},
      {"no parent", [](PolicyEntry& e) { e.parent.clear(); }, "parent"},
      {"version 1", [](PolicyEntry& e) { e.version = 1; }, "version 1 is below 2"},
      {"negative version", [](PolicyEntry& e) { e.version = -3; }, "below 2"},
      {"no approval", [](PolicyEntry& e) { e.approvals.clear(); }, "0 approvals"},
      {"too many approvals",
       [](PolicyEntry& e) {
         e.approvals.clear();
         for (size_t i = 0; i <= kMaxPolicyApprovals; ++i) e.approvals.push_back(TestKey(Cat("m-", i)).Sign("a"));
       },
       "65 approvals"},
      {"approval twice", [](PolicyEntry& e) { e.approvals.push_back(e.approvals[0]); }, "both by key 'maint-2'"},
      {"bad key name", [](PolicyEntry& e) { e.approvals[1].key_name = "has space"; }, "approval 2"},
      {"negative time", [](PolicyEntry& e) { e.received_unix = -1; }, "negative"},
      {"empty TOML", [](PolicyEntry& e) { e.toml.clear(); }, "TOML of 0 bytes"},
      {"TOML too large", [](PolicyEntry& e) { e.toml = std::string(kMaxPolicyTomlBytes + 1, '#'); }, "TOML of 49153"},
      {"entry too large",
       [](PolicyEntry& e) {
         e.toml = std::string(kMaxPolicyTomlBytes, '#');
         e.approvals.clear();
         for (size_t i = 0; i < kMaxPolicyApprovals; ++i) {
           Signature signature = TestKey("m").Sign("a");
           signature.key_name = Cat(std::string(200, 'k'), i);
           e.approvals.push_back(signature);
         }
       },
       "a log entry holds at most 65535"},
  };
  for (const Case& c : cases) {
    PolicyEntry entry = GoldenPolicy();
    c.spoil(entry);
    const absl::StatusOr<std::string> bytes = EncodePolicyEntry(entry);
    ASSERT_FALSE(bytes.ok()) << c.what;
    EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(Message(bytes.status()), HasSubstr(c.fragment)) << c.what;
    EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kPolicy,
                                         .attestation = std::nullopt,
                                         .note = {},
                                         .part = std::nullopt,
                                         .policy = entry})
                     .ok())
        << c.what;
  }
}

TEST(LogEntryTest, MalformedPolicyEntriesAreRejectedNamingLineAndProblem) {
  const std::string golden = GoldenPolicyBytes();
  const PolicyEntry entry = GoldenPolicy();
  const std::string approval1 = Cat("approval ", entry.approvals[0].ToString(), "\n");
  const std::string approval2 = Cat("approval ", entry.approvals[1].ToString(), "\n");
  const std::string toml_line = Cat("toml ", std::string_view(kPolicyToml).size(), "\n");
  auto replace = [&](std::string_view from, std::string_view to) {
    std::string out = golden;
    const size_t at = out.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) out.replace(at, from.size(), to);
    return out;
  };
  std::string many_approvals = golden;
  {
    std::string lines;
    for (size_t i = 0; i <= kMaxPolicyApprovals; ++i) {
      lines += Cat("approval ", TestKey(Cat("m-", i)).Sign("a").ToString(), "\n");
    }
    many_approvals = replace(approval1 + approval2, lines);
  }
  struct Case {
    std::string what;
    std::string bytes;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"no newline after the header", "attest/log/policy/v1", "line 1: does not end in a newline"},
      {"nothing after the header", "attest/log/policy/v1\n", "line 2: does not end in a newline"},
      {"policy line missing", replace(Cat("policy ", HexHash('b'), "\n"), ""), "line 2: expected \"policy"},
      {"policy hash uppercase", replace(Cat("policy ", HexHash('b')), Cat("policy sha256:", std::string(64, 'B'))),
       "line 2: policy hash"},
      {"policy hash of another kind", replace(Cat("policy ", HexHash('b')), "policy md5:0123"), "line 2: policy hash"},
      {"policy line without its newline", Cat("attest/log/policy/v1\npolicy ", HexHash('b')),
       "line 2: does not end in a newline"},
      {"parent missing", replace(Cat("parent ", HexHash('a'), "\n"), ""), "line 3: expected \"parent"},
      {"parent malformed", replace(Cat("parent ", HexHash('a')), "parent sha256:xyz"), "line 3: parent hash"},
      {"version missing", replace("version 3\n", ""), "line 4: expected \"version"},
      {"version 1", replace("version 3\n", "version 1\n"), "line 4: version '1'"},
      {"version with a leading zero", replace("version 3\n", "version 03\n"), "line 4: version"},
      {"version signed", replace("version 3\n", "version +3\n"), "line 4: version"},
      {"version empty", replace("version 3\n", "version \n"), "line 4: version"},
      {"no approval", replace(approval1 + approval2, ""), "line 5: no approval line"},
      {"approval with bad base64", replace(approval1, "approval maint-2:!!!\n"), "line 5: approval"},
      {"approval not canonical", replace(approval1, Cat(" ", approval1)), "line 5: expected \"approval"},
      {"approval twice", replace(approval2, approval1), "line 6: a second approval by key 'maint-2'"},
      {"too many approvals", many_approvals, "line 69: more than 64 approvals"},
      {"unknown line among approvals", replace(approval2, "signature x:y\n"), "line 6: expected \"approval"},
      {"received missing", replace("received 1795576800\n", ""), "line 7: expected \"approval"},
      {"received negative", replace("received 1795576800\n", "received -1\n"), "line 7: received"},
      {"received with a leading zero", replace("received 1795576800\n", "received 01795576800\n"), "line 7: received"},
      {"toml line missing", replace(toml_line, ""), "line 8: expected \"toml"},
      {"toml length zero", replace(Cat(toml_line, kPolicyToml), "toml 0\n"), "line 8: toml length '0'"},
      {"toml length with a leading zero", replace(toml_line, Cat("toml 0", std::string_view(kPolicyToml).size(), "\n")),
       "line 8: toml length"},
      {"toml length over the limit", replace(toml_line, "toml 49153\n"), "line 8: toml length"},
      {"toml shorter than announced", golden.substr(0, golden.size() - 1), "announces 70 bytes but 69 follow"},
      {"toml longer than announced", golden + "x", "announces 70 bytes but 71 follow"},
      {"a line after the toml bytes counts as toml", golden + "received 1\n", "but 81 follow"},
      {"over the size limit", golden + std::string(kMaxLogEntryBytes, '#'), "at most 65535"},
  };
  ASSERT_EQ(std::string_view(kPolicyToml).size(), 70u);
  for (const Case& c : cases) {
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry(c.bytes);
    ASSERT_FALSE(parsed.ok()) << c.what;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(Message(parsed.status()), HasSubstr(c.fragment)) << c.what;
    EXPECT_FALSE(EncodeNoteEntry(c.bytes).ok()) << c.what;
  }
}

TEST(LogEntryTest, EncodeLogEntryChecksAPolicyEntryHoldsOnlyItsPolicy) {
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kPolicy,
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = std::nullopt,
                                       .policy = std::nullopt})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kPolicy,
                                       .attestation = std::nullopt,
                                       .note = "x",
                                       .part = std::nullopt,
                                       .policy = GoldenPolicy()})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kAttestation,
                                       .attestation = GoldenEntry(),
                                       .note = {},
                                       .part = std::nullopt,
                                       .policy = GoldenPolicy()})
                   .ok());
  EXPECT_FALSE(EncodeLogEntry(LogEntry{.kind = LogEntryKind::kResolution,
                                       .attestation = std::nullopt,
                                       .note = {},
                                       .part = std::nullopt,
                                       .policy = GoldenPolicy()})
                   .ok());
}

// ---- Dispute entries --------------------------------------------------------------------------

Policy MakePolicy() {
  return OrDie(Policy::Create(
      2,
      {{"alice", {TestKey("alice-1").public_key()}},
       {"bob", {TestKey("bob-1").public_key()}},
       {"carol", {TestKey("carol-1").public_key()}}},
      {TestKey("maint-1").public_key()}));
}

const SecretKey& NodeKey() {
  static const SecretKey* const key = new SecretKey(TestKey("node.example.org-1"));
  return *key;
}

// A signed dispute note about hello-2.12 made the way the node makes one.
std::string SignedDisputeNote() {
  const Policy policy = MakePolicy();
  const StorePath path = TestStorePath("hello-2.12");
  const PathInfo good = TestClaim("hello-2.12", "good");
  const PathInfo evil = TestClaim("hello-2.12", "evil");
  const std::vector<Attestation> attestations = {
      SignAttestation(good, TestKey("alice-1")), SignAttestation(good, TestKey("bob-1")),
      SignAttestation(evil, TestKey("bob-1")), SignAttestation(evil, TestKey("carol-1"))};
  const TallyResult tally = Tally(policy, attestations);
  EXPECT_EQ(tally.verdict, Verdict::kDisputed);
  const DisputeRecord record =
      OrDie(MakeDisputeRecord(policy, path, attestations, tally, 1700000000));
  return SignDisputeRecord(record, NodeKey()).Serialize();
}

TEST(LogEntryTest, DisputeEntryRoundTrips) {
  const std::string note = SignedDisputeNote();
  absl::StatusOr<std::string> bytes = EncodeDisputeEntry(note);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, "attest/log/dispute/v1\n" + note);
  EXPECT_EQ(bytes->substr(0, 40), "attest/log/dispute/v1\nattest/dispute/v1\n");

  absl::StatusOr<LogEntry> parsed = ParseLogEntry(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->kind, LogEntryKind::kDispute);
  EXPECT_FALSE(parsed->attestation.has_value());
  EXPECT_EQ(parsed->note, note);
  EXPECT_EQ(EncodeLogEntry(*parsed).value_or(""), *bytes);

  // The note inside still verifies with the node key and still holds the record.
  const SignedNote signed_note = OrDie(SignedNote::Parse(parsed->note));
  EXPECT_TRUE(VerifyNote(signed_note, NodeKey().public_key()).ok());
  const DisputeRecord record = OrDie(DisputeRecord::FromNoteText(signed_note.text));
  EXPECT_EQ(record.subject, consensus::DisputeSubject(TestStorePath("hello-2.12")));
  EXPECT_EQ(record.time_unix, 1700000000);
}

TEST(LogEntryTest, DisputeEntryRefusesWhatIsNotADisputeNote) {
  const std::string note = SignedDisputeNote();
  const std::string text = OrDie(SignedNote::Parse(note)).text;
  struct Case {
    std::string name;
    std::string note;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"empty", "", "dispute note is empty"},
      {"unsigned record text", text, "no blank line"},
      {"note of another kind",
       OrDie(SignNote("attest/resolution/v1\nid d-00\n", NodeKey())).Serialize(),
       "not the dispute header"},
      {"signed text that is not a valid record",
       OrDie(SignNote("attest/dispute/v1\nid d-00\n", NodeKey())).Serialize(), "dispute record"},
      {"missing final newline", note.substr(0, note.size() - 1), "newline"},
      {"extra line after the signatures", note + "trailing\n", "signature line"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<std::string> encoded = EncodeDisputeEntry(c.note);
    ASSERT_FALSE(encoded.ok());
    EXPECT_EQ(encoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(encoded.status()), HasSubstr(c.fragment));
    // And an entry holding it does not parse.
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry("attest/log/dispute/v1\n" + c.note);
    ASSERT_FALSE(parsed.ok());
    EXPECT_THAT(Message(parsed.status()), HasSubstr("line 2: dispute note"));
    EXPECT_THAT(Message(parsed.status()), HasSubstr(c.fragment));
  }
}

// A dispute record whose first side has `entries` attestations (by distinct operators and keys),
// signed by the node: about 114 bytes per attestation.
std::string LargeDisputeNote(int entries) {
  const StorePath path = TestStorePath("hello-2.12");
  std::array<std::string, 2> fingerprints = {TestClaim("hello-2.12", "good").Fingerprint(),
                                             TestClaim("hello-2.12", "evil").Fingerprint()};
  std::sort(fingerprints.begin(), fingerprints.end());
  DisputeRecord record{.id = DisputeId(path),
                       .subject = path,
                       .policy_hash = absl::StrCat("sha256:", std::string(64, 'a')),
                       .time_unix = 1700000000,
                       .sides = {{fingerprints[0], {}}, {fingerprints[1], {}}},
                       .flagged_builders = {}};
  for (int i = 0; i < entries; ++i) {
    Signature signature;
    const std::string number = std::to_string(10000 + i).substr(1);  // 4 digits, sorts as text
    signature.key_name = "k" + number;
    signature.bytes.fill(static_cast<uint8_t>(i));
    record.sides[0].entries.push_back({"op" + number, signature});
  }
  Signature last;
  last.key_name = "z-1";
  record.sides[1].entries.push_back({"z", last});
  return SignDisputeRecord(record, NodeKey()).Serialize();
}

TEST(LogEntryTest, DisputeEntrySizeLimit) {
  const std::string fits = LargeDisputeNote(500);
  ASSERT_LT(fits.size(), 65535u - 22);
  absl::StatusOr<std::string> bytes = EncodeDisputeEntry(fits);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(ParseLogEntry(*bytes).ok());

  const std::string too_big = LargeDisputeNote(600);
  ASSERT_GT(too_big.size(), 65535u);
  const absl::StatusOr<std::string> refused = EncodeDisputeEntry(too_big);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused.status()),
              HasSubstr(absl::StrCat("dispute entry would be ", too_big.size() + 22, " bytes")));
}

TEST(LogEntryTest, DisputeRecordTooLargeForOneEntryIsLoggedInParts) {
  // Small records stay one classic dispute entry.
  const std::string small = SignedDisputeNote();
  const std::vector<std::string> one = OrDie(EncodeDisputeEntries(small));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0], OrDie(EncodeDisputeEntry(small)));

  // About 150 KB: three parts, each a valid entry, that join back into the signed note.
  const std::string big = LargeDisputeNote(1300);
  ASSERT_GT(big.size(), 2 * kDisputePartBytes);
  const std::vector<std::string> entries = OrDie(EncodeDisputeEntries(big));
  ASSERT_EQ(entries.size(), 3u);
  std::vector<DisputePart> parts;
  for (size_t i = 0; i < entries.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_LE(entries[i].size(), kMaxLogEntryBytes);
    EXPECT_EQ(entries[i].substr(0, 27), "attest/log/dispute-part/v1\n");
    const LogEntry parsed = OrDie(ParseLogEntry(entries[i]));
    ASSERT_EQ(parsed.kind, LogEntryKind::kDisputePart);
    ASSERT_TRUE(parsed.part.has_value());
    EXPECT_EQ(parsed.part->index, i + 1);
    EXPECT_EQ(parsed.part->count, 3u);
    EXPECT_EQ(parsed.part->record_sha256, HexEncode(Sha256(big)));
    EXPECT_EQ(EncodeLogEntry(parsed).value_or(""), entries[i]);
    EXPECT_EQ(EncodeNoteEntry(entries[i]).value_or(""), entries[i]);
    parts.push_back(*parsed.part);
  }
  EXPECT_EQ(parts[0].bytes.size(), kDisputePartBytes);
  EXPECT_EQ(OrDie(AssembleDisputeParts(parts)), big);
  // Same facts, same bytes.
  EXPECT_EQ(OrDie(EncodeDisputeEntries(big)), entries);
}

TEST(LogEntryTest, DisputePartsThatDoNotJoinIntoTheRecordAreRefused) {
  const std::string big = LargeDisputeNote(1300);
  std::vector<DisputePart> parts;
  for (const std::string& entry : OrDie(EncodeDisputeEntries(big))) parts.push_back(*OrDie(ParseLogEntry(entry)).part);
  ASSERT_EQ(parts.size(), 3u);

  std::vector<DisputePart> missing = {parts[0], parts[1]};
  EXPECT_THAT(Message(AssembleDisputeParts(missing).status()), HasSubstr("has 3 parts; 2 were given"));
  std::vector<DisputePart> swapped = {parts[1], parts[0], parts[2]};
  EXPECT_THAT(Message(AssembleDisputeParts(swapped).status()), HasSubstr("found where part 1 belongs"));
  std::vector<DisputePart> changed = parts;
  changed[1].bytes[100] ^= 1;
  EXPECT_THAT(Message(AssembleDisputeParts(changed).status()), HasSubstr("another SHA-256"));
  std::vector<DisputePart> foreign = parts;
  foreign[2].record_sha256 = std::string(64, 'b');
  EXPECT_THAT(Message(AssembleDisputeParts(foreign).status()), HasSubstr("belongs to another record"));
  EXPECT_FALSE(AssembleDisputeParts({}).ok());
}

TEST(LogEntryTest, MalformedDisputePartEntriesAreRejected) {
  const std::string record = std::string(64, 'a');
  auto entry = [&](std::string_view record_line, std::string_view part_line, std::string_view bytes) {
    return Cat("attest/log/dispute-part/v1\n", record_line, "\n", part_line, "\n", bytes);
  };
  const std::string full(kDisputePartBytes, 'x');
  ASSERT_TRUE(ParseLogEntry(entry("record " + record, "part 1/2", full)).ok());
  ASSERT_TRUE(ParseLogEntry(entry("record " + record, "part 2/2", "x")).ok());
  struct Case {
    std::string name;
    std::string bytes;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"uppercase hash", entry("record " + std::string(64, 'A'), "part 1/2", full), "line 2"},
      {"short hash", entry("record " + std::string(63, 'a'), "part 1/2", full), "line 2"},
      {"no part line", "attest/log/dispute-part/v1\nrecord " + record + "\n", "line 3"},
      {"part 0", entry("record " + record, "part 0/2", full), "line 3"},
      {"index past count", entry("record " + record, "part 3/2", "x"), "line 3"},
      {"a single part", entry("record " + record, "part 1/1", "x"), "line 3"},
      {"leading zero", entry("record " + record, "part 01/2", full), "line 3"},
      {"too many parts", entry("record " + record, absl::StrCat("part 1/", kMaxDisputeParts + 1), full), "line 3"},
      {"empty slice", entry("record " + record, "part 2/2", ""), "line 4"},
      {"short slice before the last", entry("record " + record, "part 1/2", "x"), "line 4"},
      {"slice too long", entry("record " + record, "part 2/2", full + "x"), "line 4"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const absl::StatusOr<LogEntry> parsed = ParseLogEntry(c.bytes);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(parsed.status()), HasSubstr(c.fragment));
  }
}

TEST(LogEntryTest, AnAttestationTooLargeToLogIsRefusedByTheSharedCheck) {
  const PathInfo fits = TestClaimWithReferences("many-refs", "a", 700);
  EXPECT_TRUE(CheckAttestationLoggable(SignAttestation(fits, TestKey("alice-1")), std::nullopt).ok());
  const PathInfo too_many = TestClaimWithReferences("many-refs", "a", 2000);
  const absl::Status refused = CheckAttestationLoggable(SignAttestation(too_many, TestKey("alice-1")), std::nullopt);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(refused), HasSubstr("2000 references"));
  // The check agrees with the encoder at the largest received time.
  EXPECT_FALSE(EncodeAttestationEntry(AttestationEntry{.attestation = SignAttestation(too_many, TestKey("alice-1")),
                                                       .observed_key = std::nullopt,
                                                       .received_unix = 1})
                   .ok());
}

// ---- Properties -------------------------------------------------------------------------------

class Generator final {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Coin() { return Below(2) == 0; }

  AttestationEntry Entry() {
    const std::string name = absl::StrCat("pkg-", Below(1000));
    std::set<StorePath> refs;
    for (uint64_t i = 0, n = Below(5); i < n; ++i) {
      refs.insert(TestStorePath(absl::StrCat("dep-", Below(10000))));
    }
    AttestationEntry entry = EntryOf(
        OrDie(PathInfo::Create(
            TestStorePath(name), NarHash::FromDigest(Sha256(absl::StrCat(Below(1u << 30)))),
            1 + Below(kMaxNarSize), std::vector<StorePath>(refs.begin(), refs.end()))),
        Signature{});
    Signature& signature = entry.attestation.signature;
    signature.key_name = absl::StrCat("builder-", Below(50), ".example.org-1");
    for (uint8_t& b : signature.bytes) b = static_cast<uint8_t>(Below(256));
    if (Coin()) {
      std::array<uint8_t, 32> key{};
      for (uint8_t& b : key) b = static_cast<uint8_t>(Below(256));
      entry.observed_key = OrDie(PublicKey::FromBytes(signature.key_name, key));
    }
    BuildMetadata& m = entry.attestation.metadata;
    if (Coin()) m.deriver = TestStorePath(name + ".drv").full();
    if (Coin()) m.output_name = std::array{"out", "dev", "doc", "lib", "bin"}[Below(5)];
    if (Coin()) m.system = std::array{"x86_64-linux", "aarch64-linux", "aarch64-darwin"}[Below(3)];
    m.build_kind = static_cast<BuildKind>(Below(5));
    m.build_time_unix = Coin() ? 0 : Time();
    entry.received_unix = Coin() ? 0 : Time();
    return entry;
  }

  // Mostly plausible times, sometimes the extremes.
  int64_t Time() {
    switch (Below(4)) {
      case 0:
        return 1;
      case 1:
        return std::numeric_limits<int64_t>::max();
      default:
        return static_cast<int64_t>(1600000000 + Below(200000000));
    }
  }

  // One random edit: replace, delete or insert a byte, favouring bytes that matter to the format.
  std::string Mutate(std::string bytes) {
    static constexpr std::string_view kBytes = "0123456789 \n\r-;:,=/+abdkx\x01\xff";
    const size_t at = Below(bytes.size() + 1);
    const char c = kBytes[Below(kBytes.size())];
    switch (Below(3)) {
      case 0:
        if (at < bytes.size()) bytes[at] = c;
        break;
      case 1:
        if (at < bytes.size()) bytes.erase(at, 1);
        break;
      default:
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), c);
        break;
    }
    return bytes;
  }

 private:
  std::mt19937_64 rng_;
};

TEST(LogEntryTest, PropertyGeneratedEntriesRoundTrip) {
  Generator gen(6962);
  for (int i = 0; i < 300; ++i) {
    const AttestationEntry entry = gen.Entry();
    SCOPED_TRACE(i);
    ExpectRoundTrip(entry);
  }
}

TEST(LogEntryTest, PropertyEveryAcceptedInputReEncodesToItself) {
  Generator gen(9162);
  std::vector<std::string> seeds = {kGoldenEntry, kMinimalEntry,
                                    "attest/log/dispute/v1\n" + SignedDisputeNote(), GoldenPolicyBytes()};
  for (int i = 0; i < 100; ++i) seeds.push_back(OrDie(EncodeAttestationEntry(gen.Entry())));
  int accepted = 0;
  int rejected = 0;
  for (const std::string& seed : seeds) {
    std::string bytes = seed;
    // A chain of edits from each seed, so inputs drift further from valid ones.
    for (int step = 0; step < 40; ++step) {
      bytes = step % 4 == 0 ? gen.Mutate(seed) : gen.Mutate(bytes);
      const absl::StatusOr<LogEntry> parsed = ParseLogEntry(bytes);
      if (!parsed.ok()) {
        ++rejected;
        EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
        EXPECT_THAT(Message(parsed.status()), HasSubstr("log entry"));
        continue;
      }
      ++accepted;
      const absl::StatusOr<std::string> again = EncodeLogEntry(*parsed);
      ASSERT_TRUE(again.ok()) << again.status() << "\n" << bytes;
      EXPECT_EQ(*again, bytes);
    }
  }
  // Both outcomes occur, so the property was exercised on accepted inputs.
  EXPECT_GT(accepted, 50);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace attest::consensus
