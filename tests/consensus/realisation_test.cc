#include "consensus/realisation.h"

#include <random>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "consensus/attestation.h"
#include "consensus/keys.h"
#include "consensus/store_path.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadData(std::string_view name) {
  return attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/realisations/" +
                                        std::string(name));
}

// The data files hold no white space inside strings: removing it gives the compact form Nix dumps.
std::string Compact(std::string_view json) {
  std::string out;
  for (char c : json) {
    if (c != ' ' && c != '\n' && c != '\t' && c != '\r') out += c;
  }
  return out;
}

// The signed part of a compact Nix 2.8 realisation: the object without its "signatures" member,
// which Nix writes last.
std::string WithoutSignatures(std::string_view compact) {
  const size_t at = compact.find(",\"signatures\":");
  EXPECT_NE(at, std::string_view::npos);
  return Cat(compact.substr(0, at), "}");
}

// {"keyName": "...", "sig": "..."} as Nix 2.35 writes a signature.
Signature StructuredSignature(std::string_view json) {
  std::smatch name;
  std::smatch sig;
  const std::string text(json);
  EXPECT_TRUE(std::regex_search(text, name, std::regex("\"keyName\": *\"([^\"]+)\"")));
  EXPECT_TRUE(std::regex_search(text, sig, std::regex("\"sig\": *\"([^\"]+)\"")));
  absl::StatusOr<Signature> parsed = Signature::Parse(Cat(name[1].str(), ":", sig[1].str()));
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return *parsed;
}

PublicKey BuilderA() {
  absl::StatusOr<PublicKey> key = PublicKey::Parse(ReadData("nix-2.8-builderA-1.pub"));
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

RealisationKey MustKey(std::string_view text) {
  absl::StatusOr<RealisationKey> key = RealisationKey::Parse(text);
  EXPECT_TRUE(key.ok()) << key.status();
  return *key;
}

StorePath MustBase(std::string_view base) {
  absl::StatusOr<StorePath> path = StorePath::ParseBaseName(base);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

constexpr std::string_view kHex = "881aa2e7fc72fca6d3f39b12573752d7a82a347ee9c3d6b458482436800b3e8a";
constexpr std::string_view kHex2 = "7f44388f57da34719cecaa95bd2dd9cb6cbe84f66510af9aa2709cfef802ea24";
constexpr std::string_view kDrv = "/nix/store/has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv";

// ---- Real Nix 2.8 output -------------------------------------------------------------------------

TEST(RealisationNix28Test, CacheFileWithADependentParsesVerifiesAndRoundTrips) {
  const std::string doi = ReadData("nix-2.8-ca-top.doi");
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(doi);
  ASSERT_TRUE(file.ok()) << file.status();
  const Realisation& claim = file->claim;
  EXPECT_EQ(claim.key.format(), RealisationFormat::kDrvHash);
  EXPECT_EQ(claim.key.ToString(), Cat("sha256:", kHex2, "!out"));
  EXPECT_EQ(claim.key.drv_hash(), kHex2);
  EXPECT_EQ(claim.key.output_name(), "out");
  EXPECT_EQ(claim.out_path.full(), "/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top");
  ASSERT_EQ(claim.dependent.size(), 1u);
  EXPECT_EQ(claim.dependent[0].first, Cat("sha256:", kHex, "!out"));
  EXPECT_EQ(claim.dependent[0].second.full(), "/nix/store/n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base");
  ASSERT_EQ(file->signatures.size(), 1u);
  EXPECT_EQ(file->signatures[0].key_name, "builderA-1");

  // The fingerprint is the file without its signatures, byte for byte.
  EXPECT_EQ(claim.Fingerprint(), WithoutSignatures(doi));
  const RealisationAttestation attestation{claim, file->signatures[0], {}};
  EXPECT_TRUE(VerifyRealisation(attestation, BuilderA()).ok());
  // The file is written back exactly as Nix wrote it.
  EXPECT_EQ(FormatRealisationFile(claim, file->signatures), doi);
  // And the fingerprint parses back strictly.
  absl::StatusOr<Realisation> reparsed = Realisation::ParseFingerprint(claim.Fingerprint());
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_EQ(*reparsed, claim);
  EXPECT_EQ(claim.key.CachePath(), Cat("realisations/sha256:", kHex2, "!out.doi"));
}

TEST(RealisationNix28Test, CacheFileWithoutDependentsParsesAndVerifies) {
  const std::string doi = ReadData("nix-2.8-ca-base.doi");
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(doi);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_TRUE(file->claim.dependent.empty());
  EXPECT_EQ(file->claim.Fingerprint(), WithoutSignatures(doi));
  ASSERT_EQ(file->signatures.size(), 1u);
  EXPECT_TRUE(VerifyRealisation({file->claim, file->signatures[0], {}}, BuilderA()).ok());
  EXPECT_EQ(FormatRealisationFile(file->claim, file->signatures), doi);
}

TEST(RealisationNix28Test, IndentedRealisationParsesAndItsSignatureVerifies) {
  // Any white space is accepted in a file: the signature is checked over the rebuilt fingerprint.
  const std::string json = ReadData("nix-2.8-ca-top-resolved.json");
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(json);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->claim.Fingerprint(), WithoutSignatures(Compact(json)));
  ASSERT_EQ(file->signatures.size(), 1u);
  EXPECT_TRUE(VerifyRealisation({file->claim, file->signatures[0], {}}, BuilderA()).ok());
  // The signed fingerprint in its indented form is not what Nix signs.
  const std::string indented = Cat(json.substr(0, json.rfind(',', json.find("\"signatures\""))), "\n}");
  absl::StatusOr<Realisation> strict = Realisation::ParseFingerprint(indented);
  ASSERT_FALSE(strict.ok());
  EXPECT_THAT(strict.status().message(), HasSubstr("byte 1: expected '\\\"', found '\\n'"));
}

TEST(RealisationNix28Test, AnotherOutPathOrDependentBreaksTheRealSignature) {
  absl::StatusOr<RealisationFile> top = ParseRealisationFile(ReadData("nix-2.8-ca-top.doi"));
  ASSERT_TRUE(top.ok()) << top.status();
  RealisationAttestation moved{top->claim, top->signatures[0], {}};
  moved.claim.out_path = MustBase("2xnlz1767m56p96dy4ji1k3qqzdyfi0l-ca-top");
  absl::Status status = VerifyRealisation(moved, BuilderA());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr(Cat("sha256:", kHex2, "!out")));
  EXPECT_THAT(status.message(), HasSubstr("builderA-1"));

  RealisationAttestation no_deps{top->claim, top->signatures[0], {}};
  no_deps.claim.dependent.clear();
  EXPECT_EQ(VerifyRealisation(no_deps, BuilderA()).code(), absl::StatusCode::kUnauthenticated);
}

TEST(RealisationNix28Test, MemberOrderAndWhiteSpaceDoNotMatterInAFile) {
  const std::string reordered = Cat(
      "  {\n \"signatures\" : [\"builderA-1:G9kPJ/KQy1/PP3G0HLopw+fzU29OlwrXllNYYyORklXnfv8BGImpMlNSeTofFlSK5OGn60tqaiueqjBMKW3LBQ==\"],\n",
      "\t\"outPath\":\"n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\" ,\"id\" : \"sha256:", kHex,
      "!out\", \"dependentRealisations\" : { } }\n");
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(reordered);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<RealisationFile> original = ParseRealisationFile(ReadData("nix-2.8-ca-base.doi"));
  ASSERT_TRUE(original.ok()) << original.status();
  EXPECT_EQ(file->claim, original->claim);
  EXPECT_EQ(file->signatures, original->signatures);
}

// ---- Nix's unit test vectors ---------------------------------------------------------------------

TEST(RealisationNixVectorsTest, Nix234RealisationsParseAndFormatAsNixWritesThem) {
  for (std::string_view name : {"nix-2.34-simple.json", "nix-2.34-with-dependent-realisations.json",
                                "nix-2.34-with-signature.json"}) {
    SCOPED_TRACE(name);
    const std::string json = ReadData(name);
    absl::StatusOr<RealisationFile> file = ParseRealisationFile(json);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->claim.key.ToString(),
              "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad!foo");
    EXPECT_EQ(file->claim.out_path.base_name(), "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv");
    // Nix's fingerprint is its JSON without the signatures: compact, members sorted.
    EXPECT_EQ(file->claim.Fingerprint(), WithoutSignatures(Compact(json)));
    EXPECT_EQ(FormatRealisationFile(file->claim, file->signatures), Compact(json));
    absl::StatusOr<Realisation> strict = Realisation::ParseFingerprint(WithoutSignatures(Compact(json)));
    ASSERT_TRUE(strict.ok()) << strict.status();
    EXPECT_EQ(*strict, file->claim);
  }
  absl::StatusOr<RealisationFile> with_deps =
      ParseRealisationFile(ReadData("nix-2.34-with-dependent-realisations.json"));
  ASSERT_TRUE(with_deps.ok());
  ASSERT_EQ(with_deps->claim.dependent.size(), 1u);
  absl::StatusOr<RealisationFile> signed_file = ParseRealisationFile(ReadData("nix-2.34-with-signature.json"));
  ASSERT_TRUE(signed_file.ok());
  ASSERT_EQ(signed_file->signatures.size(), 1u);
  EXPECT_EQ(signed_file->signatures[0].key_name, "asdf");
}

// Nix 2.35's vectors name output "foo" of bar.drv "...-foo" (Nix would name it "bar-foo"), which the
// name check refuses; the fingerprint bytes and signatures are checked on the claim built directly.
Realisation Nix235Claim(std::string_view out_base) {
  absl::StatusOr<RealisationKey> key =
      RealisationKey::FromDrvPath(MustBase("g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv"), "foo");
  EXPECT_TRUE(key.ok()) << key.status();
  return Realisation{*key, MustBase(out_base), {}};
}

TEST(RealisationNixVectorsTest, Nix235FingerprintsAndSignaturesMatch) {
  absl::StatusOr<SecretKey> secret = SecretKey::Parse(ReadData("nix-2.35-test-key.sec"));
  ASSERT_TRUE(secret.ok()) << secret.status();
  struct Vector {
    std::string_view stem;
    std::string_view out_base;
  };
  for (const Vector& v : {Vector{"simple", "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo"},
                          Vector{"with-signature", "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv"}}) {
    SCOPED_TRACE(v.stem);
    const Realisation claim = Nix235Claim(v.out_base);
    EXPECT_EQ(claim.Fingerprint(), ReadData(Cat("nix-2.35-", v.stem, "-fingerprint.txt")));
    const Signature signature = StructuredSignature(ReadData(Cat("nix-2.35-", v.stem, "-sig.json")));
    EXPECT_TRUE(VerifyRealisation({claim, signature, {}}, secret->public_key()).ok());
    // Ed25519 is deterministic: signing the same fingerprint gives Nix's signature.
    EXPECT_EQ(SignRealisation(claim, *secret).signature, signature);
    EXPECT_EQ(claim.key.CachePath(), "build-trace-v2/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv/foo.doi");
  }
}

TEST(RealisationNixVectorsTest, Nix235VectorsAreRefusedForTheirOutputName) {
  for (std::string_view name : {"nix-2.35-simple.json", "nix-2.35-with-signature.json",
                                "nix-2.35-with-signature-unstructured.json"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<RealisationFile> file = ParseRealisationFile(ReadData(name));
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(file.status().message(), HasSubstr("is not named bar-foo"));
    EXPECT_THAT(file.status().message(),
                HasSubstr("as derivation /nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv names its output foo"));
  }
  absl::StatusOr<Realisation> fingerprint =
      Realisation::ParseFingerprint(ReadData("nix-2.35-simple-fingerprint.txt"));
  ASSERT_FALSE(fingerprint.ok());
  EXPECT_THAT(fingerprint.status().message(), HasSubstr("is not named bar-foo"));
}

std::string Renamed(std::string text) {
  // Names the output as Nix would for output foo of bar.drv: "<hash>-bar-foo".
  const std::string to = "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar-foo\"";
  for (const std::string from : {"g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo.drv\"", "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-foo\""}) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

TEST(RealisationNixVectorsTest, Nix235FileLayoutsParseOnceTheOutputIsNamedAsNixNamesIt) {
  const std::string structured = Renamed(ReadData("nix-2.35-with-signature.json"));
  const std::string unstructured = Renamed(ReadData("nix-2.35-with-signature-unstructured.json"));
  absl::StatusOr<RealisationFile> a = ParseRealisationFile(structured);
  absl::StatusOr<RealisationFile> b = ParseRealisationFile(unstructured);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->claim, b->claim);
  EXPECT_EQ(a->signatures, b->signatures);
  EXPECT_EQ(a->claim.key.format(), RealisationFormat::kBuildTrace);
  EXPECT_EQ(a->claim.key.ToString(), "/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv^foo");
  EXPECT_EQ(a->claim.out_path.base_name(), "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar-foo");
  ASSERT_EQ(a->signatures.size(), 1u);
  EXPECT_EQ(a->signatures[0].key_name, "asdf");
  // Written back as Nix writes it (structured signatures), compact.
  EXPECT_EQ(FormatRealisationFile(a->claim, a->signatures), Compact(structured));
  EXPECT_EQ(a->claim.Fingerprint(), Renamed(ReadData("nix-2.35-with-signature-fingerprint.txt")));
  absl::StatusOr<RealisationFile> simple = ParseRealisationFile(Renamed(ReadData("nix-2.35-simple.json")));
  ASSERT_TRUE(simple.ok()) << simple.status();
  EXPECT_TRUE(simple->signatures.empty());
  EXPECT_EQ(FormatRealisationFile(simple->claim, {}), Compact(Renamed(ReadData("nix-2.35-simple.json"))));
}

// ---- Keys ----------------------------------------------------------------------------------------

TEST(RealisationKeyTest, ParsesBothFormats) {
  const RealisationKey old_key = MustKey(Cat("sha256:", kHex, "!dev"));
  EXPECT_EQ(old_key.format(), RealisationFormat::kDrvHash);
  EXPECT_EQ(old_key.output_name(), "dev");
  EXPECT_EQ(old_key.ExpectedOutPathName(), "");
  EXPECT_EQ(RealisationFormatName(old_key.format()), "nix-2.8");

  const RealisationKey full = MustKey(Cat(kDrv, "^out"));
  const RealisationKey base = MustKey("has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv^out");
  EXPECT_EQ(full, base);
  EXPECT_EQ(base.ToString(), Cat(kDrv, "^out"));
  EXPECT_EQ(full.format(), RealisationFormat::kBuildTrace);
  EXPECT_EQ(full.drv_path().full(), kDrv);
  EXPECT_EQ(full.drv_hash(), "");
  EXPECT_EQ(full.ExpectedOutPathName(), "ca-top");
  EXPECT_EQ(MustKey(Cat(kDrv, "^dev")).ExpectedOutPathName(), "ca-top-dev");
  EXPECT_EQ(RealisationFormatName(full.format()), "build-trace-v2");
  EXPECT_EQ(full.CachePath(), "build-trace-v2/has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv/out.doi");

  EXPECT_TRUE(RealisationKey::LooksLikeKey(Cat("sha256:", kHex, "!out")));
  EXPECT_TRUE(RealisationKey::LooksLikeKey(Cat(kDrv, "^out")));
  EXPECT_FALSE(RealisationKey::LooksLikeKey("/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top"));
}

TEST(RealisationKeyTest, RefusesMalformedKeysWithSpecificMessages) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::string upper(kHex.size(), 'A');
  const std::vector<Case> cases = {
      {"", "is empty"},
      {"/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top", "is not a realisation key"},
      {Cat("sha256:", kHex, "!out^out"), "mixes '!'"},
      {Cat(kDrv, "^out!x"), "mixes '!'"},
      {Cat("sha256:", kHex, "!out!dev"), "more than one '!'"},
      {Cat(kDrv, "^out^dev"), "more than one '^'"},
      {Cat(kHex, "!out"), "no hash algorithm"},
      {Cat("md5:", kHex, "!out"), "hash algorithm 'md5'"},
      {Cat("sha256:", kHex.substr(1), "!out"), "derivation hash of 63 characters"},
      {Cat("sha256:", upper, "!out"), "upper-case hex digit"},
      {Cat("sha256:", kHex.substr(1), "g!out"), "is not a hex digit"},
      {Cat("sha256:", kHex, "!"), "has no output name"},
      {Cat("sha256:", kHex, "!.out"), "starting with '.'"},
      {Cat("sha256:", kHex, "!o/t"), "in its output name"},
      {Cat("sha256:", kHex, "!", std::string(212, 'o')), "output name of 212 characters"},
      {"^out", "no derivation path"},
      {"/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top^out", "is not a .drv store path"},
      {"/nix/store/tooshort-ca-top.drv^out", "does not have the form"},
      {"/tmp/has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv^out", "is not in the Nix store"},
      {Cat(kDrv, "^"), "has no output name"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<RealisationKey> key = RealisationKey::Parse(c.text);
    ASSERT_FALSE(key.ok()) << c.text;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(key.status().message(), HasSubstr(c.message)) << c.text;
  }
  EXPECT_FALSE(RealisationKey::FromDrvHash("abc", "out").ok());
  EXPECT_FALSE(RealisationKey::FromDrvHash(kHex, "").ok());
  EXPECT_TRUE(RealisationKey::FromDrvHash(kHex, "out").ok());
  absl::StatusOr<RealisationKey> not_drv =
      RealisationKey::FromDrvPath(MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top"), "out");
  ASSERT_FALSE(not_drv.ok());
  EXPECT_THAT(not_drv.status().message(), HasSubstr("is not a .drv store path"));
}

TEST(RealisationKeyTest, CachePathsRoundTripAndBadOnesAreRefused) {
  for (const std::string& text : {Cat("sha256:", kHex, "!out"), Cat(kDrv, "^dev")}) {
    const RealisationKey key = MustKey(text);
    absl::StatusOr<RealisationKey> back = ParseRealisationCachePath(key.CachePath());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, key);
  }
  for (const std::string& bad :
       {Cat("realisations/sha256:", kHex, "!out"), Cat("realisations/sha256:", kHex, ".doi"),
        Cat("realisations/", kDrv.substr(11), "^out.doi"), std::string("build-trace-v2/out.doi"),
        std::string("build-trace-v2/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top/out.doi"),
        Cat("nar/sha256:", kHex, "!out.doi")}) {
    absl::StatusOr<RealisationKey> key = ParseRealisationCachePath(bad);
    EXPECT_FALSE(key.ok()) << bad;
    EXPECT_EQ(key.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// ---- Claims --------------------------------------------------------------------------------------

TEST(RealisationTest, BuildTraceOutputMustBeNamedAfterItsDerivation) {
  const RealisationKey key = MustKey(Cat(kDrv, "^out"));
  EXPECT_TRUE(Realisation::Create(key, MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top")).ok());
  absl::StatusOr<Realisation> wrong = Realisation::Create(key, MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-openssl"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().message(),
            Cat("output path /nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-openssl is not named ca-top, as "
                "derivation ",
                kDrv, " names its output out"));
  const RealisationKey dev = MustKey(Cat(kDrv, "^dev"));
  EXPECT_TRUE(Realisation::Create(dev, MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top-dev")).ok());
  EXPECT_FALSE(Realisation::Create(dev, MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top")).ok());
  // A 2.8 key names no derivation: any name goes.
  EXPECT_TRUE(Realisation::Create(MustKey(Cat("sha256:", kHex, "!out")),
                                  MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-anything"))
                  .ok());
  // Dependents only in the 2.8 format.
  absl::StatusOr<Realisation> deps = Realisation::Create(
      key, MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top"),
      {{Cat("sha256:", kHex, "!out"), MustBase("n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base")}});
  ASSERT_FALSE(deps.ok());
  EXPECT_THAT(deps.status().message(), HasSubstr("only the Nix 2.8 format"));
}

TEST(RealisationTest, DependentKeysMustBeSortedUniqueAndInTheOldFormat) {
  const RealisationKey key = MustKey(Cat("sha256:", kHex2, "!out"));
  const StorePath out = MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top");
  const StorePath dep = MustBase("n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base");
  const std::string a = Cat("sha256:", kHex, "!dev");
  const std::string b = Cat("sha256:", kHex, "!out");
  EXPECT_TRUE(Realisation::Create(key, out, {{a, dep}, {b, dep}}).ok());
  struct Case {
    std::vector<std::pair<std::string, StorePath>> dependent;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{b, dep}, {a, dep}}, "is not sorted"},
      {{{a, dep}, {a, dep}}, "appears twice"},
      {{{Cat(kDrv, "^out"), dep}}, "is in the Nix 2.35 format"},
      {{{"sha256:abc!out", dep}}, "derivation hash of 3 characters"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Realisation> claim = Realisation::Create(key, out, c.dependent);
    ASSERT_FALSE(claim.ok()) << c.message;
    EXPECT_THAT(claim.status().message(), HasSubstr(c.message));
  }
  // The same problems in a fingerprint and in a file.
  const std::string unsorted = Cat("{\"dependentRealisations\":{\"", b, "\":\"", dep.base_name(), "\",\"", a,
                                   "\":\"", dep.base_name(), "\"},\"id\":\"", key.ToString(),
                                   "\",\"outPath\":\"", out.base_name(), "\"}");
  absl::StatusOr<Realisation> parsed = Realisation::ParseFingerprint(unsorted);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), HasSubstr("is not sorted"));
  // A file may list them in any order (its fingerprint is rebuilt sorted).
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(unsorted);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->claim.dependent[0].first, a);
  const std::string twice = Cat("{\"dependentRealisations\":{\"", a, "\":\"", dep.base_name(), "\",\"", a,
                                "\":\"", dep.base_name(), "\"},\"id\":\"", key.ToString(),
                                "\",\"outPath\":\"", out.base_name(), "\"}");
  EXPECT_THAT(ParseRealisationFile(twice).status().message(), HasSubstr("duplicate member name"));
  EXPECT_THAT(Realisation::ParseFingerprint(twice).status().message(), HasSubstr("duplicate member name"));
  const std::string new_format = Cat("{\"dependentRealisations\":{\"", kDrv, "^out\":\"", dep.base_name(),
                                     "\"},\"id\":\"", key.ToString(), "\",\"outPath\":\"", out.base_name(), "\"}");
  EXPECT_THAT(ParseRealisationFile(new_format).status().message(), HasSubstr("is in the Nix 2.35 format"));
  EXPECT_THAT(Realisation::ParseFingerprint(new_format).status().message(),
              HasSubstr("is in the Nix 2.35 format"));
}

// ---- Strict fingerprints -------------------------------------------------------------------------

Realisation TopClaim() {
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(ReadData("nix-2.8-ca-top.doi"));
  EXPECT_TRUE(file.ok()) << file.status();
  return file->claim;
}

Realisation TraceClaim() {
  absl::StatusOr<Realisation> claim =
      Realisation::Create(MustKey(Cat(kDrv, "^out")), MustBase("bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top"));
  EXPECT_TRUE(claim.ok()) << claim.status();
  return *claim;
}

TEST(RealisationFingerprintTest, CanonicalFingerprintsOfBothFormatsParseBack) {
  for (const Realisation& claim : {TopClaim(), TraceClaim()}) {
    absl::StatusOr<Realisation> back = Realisation::ParseFingerprint(claim.Fingerprint());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, claim);
  }
  EXPECT_EQ(TraceClaim().Fingerprint(),
            "{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"},"
            "\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}}");
}

void ExpectNotCanonical(std::string_view text, size_t byte) {
  absl::StatusOr<Realisation> parsed = Realisation::ParseFingerprint(text);
  ASSERT_FALSE(parsed.ok()) << text;
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.status().message(), HasSubstr(Cat("not in the exact bytes Nix signs")));
  EXPECT_THAT(parsed.status().message(), HasSubstr(Cat("byte ", byte, ":"))) << text;
}

std::string Replace(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  text.replace(at, from.size(), to);
  return text;
}

TEST(RealisationFingerprintTest, NonCanonicalFingerprintsAreRefusedAtTheFirstDifferingByte) {
  for (const Realisation& claim : {TopClaim(), TraceClaim()}) {
    const std::string fp = claim.Fingerprint();
    SCOPED_TRACE(fp);
    // Trailing bytes: a newline, a space, another object.
    ExpectNotCanonical(fp + "\n", fp.size());
    ExpectNotCanonical(fp + " ", fp.size());
    ExpectNotCanonical(fp + "{}", fp.size());
    // A leading space.
    ExpectNotCanonical(" " + fp, 0);
    // A space after the first ':'.
    const size_t colon = fp.find(':');
    ExpectNotCanonical(Replace(fp, ":", ": "), colon + 1);
    // \u0061 for 'a' in the output path name ("ca-top").
    const size_t ca = fp.find("-ca-top\"}");
    ExpectNotCanonical(Replace(fp, "-ca-top\"}", "-c\\u0061-top\"}"), ca + 2);
    // An escaped '/' makes a sub-path of the output path: refused for what it means.
    absl::StatusOr<Realisation> slash = Realisation::ParseFingerprint(Replace(fp, "-ca-top\"}", "-ca\\/top\"}"));
    ASSERT_FALSE(slash.ok());
    EXPECT_THAT(slash.status().message(), HasSubstr("sub-path"));
  }
  // Member order.
  const std::string top = TopClaim().Fingerprint();
  const std::string outpath_first =
      Cat("{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\",", top.substr(1, top.find(",\"outPath\"") - 1), "}");
  ExpectNotCanonical(outpath_first, 2);
  const std::string trace = TraceClaim().Fingerprint();
  const std::string value_first =
      "{\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"},\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"}}";
  ExpectNotCanonical(value_first, 2);
  const std::string output_first = "{\"key\":{\"outputName\":\"out\",\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}}";
  ExpectNotCanonical(output_first, 9);
  // Without the (empty) dependentRealisations member Nix always writes.
  ExpectNotCanonical(Cat("{\"id\":\"sha256:", kHex2, "!out\",\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}"),
                     2);
}

TEST(RealisationFingerprintTest, MalformedFingerprintsNameTheProblem) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::string top = TopClaim().Fingerprint();
  const std::vector<Case> cases = {
      {"", "unexpected end of input"},
      {"[]", "is a JSON object, not an array"},
      {"{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}", "neither \"id\""},
      {top.substr(0, top.size() - 1) + ",\"signatures\":[]}", "no \"signatures\" member"},
      {Replace(top, "!out\",\"outPath\"", "!out\",\"extra\":\"x\",\"outPath\""), "unknown member 'extra'"},
      {Replace(top, "\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"", "7"), "member \"outPath\" is a number"},
      {Replace(top, "bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top", "/nix/store/bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top"),
       "realisation \"outPath\""},
      {Replace(top, "sha256:7f44", "sha1:7f44"), "hash algorithm 'sha1'"},
      {Replace(top, "!out\",\"outPath", "!out^x\",\"outPath"), "mixes '!'"},
      {Replace(top, "\"id\"", "\"i\x01d\""), "control character inside a string"},
      {"{\"key\":{\"drvPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}}",
       "is not a .drv store path"},
      {"{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}}",
       "has no \"outputName\" member"},
      {"{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"}}",
       "has no \"value\" member"},
      {"{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"",
       "not valid JSON"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Realisation> parsed = Realisation::ParseFingerprint(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message)) << c.text;
  }
}

// ---- Files ---------------------------------------------------------------------------------------

TEST(RealisationFileTest, MalformedFilesNameTheProblem) {
  const std::string doi = ReadData("nix-2.8-ca-base.doi");
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"not json", "not valid JSON: byte 0"},
      {doi + "x", "unexpected text after the JSON value"},
      {"{\"id\":1}", "member \"id\" is a number"},
      {Replace(doi, "\"outPath\":\"n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\",", ""), "has no \"outPath\" member"},
      {Replace(doi, "\"signatures\"", "\"signature\""), "unknown member 'signature'"},
      {Replace(doi, "builderA-1:G9kPJ", "builderA-1:!9kPJ"), "signature 1"},
      {Replace(doi, "\"builderA-1:", "{\"k\":\"builderA-1:"), "not valid JSON"},
      {Replace(doi, "[\"builderA-1", "[7,\"builderA-1"), "signature 1 is a number"},
      {Replace(doi, "\"dependentRealisations\":{}", "\"dependentRealisations\":[]"),
       "member \"dependentRealisations\" is an array"},
      {Replace(doi, "!out", "!out!out"), "more than one '!'"},
      {"{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\",\"signatures\":[{\"keyName\":\"a\"}]}}",
       "signature 1 has no \"sig\" member"},
      {"{\"key\":{\"drvPath\":\"has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-other\"}}",
       "is not named ca-top"},
      {"{\"key\":{\"drvPath\":\"/nix/store/has7z8wlinxy6gai7f9ywyi30mna5s9f-ca-top.drv\",\"outputName\":\"out\"},\"value\":{\"outPath\":\"bhcy0gf11g2sbhy5vcd19w6gmb2y6bay-ca-top\"}}",
       "expected a store path base name"},
      {std::string(100, '['), "nested deeper than"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<RealisationFile> file = ParseRealisationFile(c.text);
    ASSERT_FALSE(file.ok()) << c.text;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(file.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(RealisationFileTest, BuildTraceFileRoundTripsWithStructuredSignatures) {
  const Realisation claim = TraceClaim();
  const SecretKey a = TestKey("builder-a");
  const SecretKey b = TestKey("builder-b");
  const std::vector<Signature> signatures = {SignRealisation(claim, b).signature,
                                             SignRealisation(claim, a).signature};
  const std::string doi = FormatRealisationFile(claim, signatures);
  EXPECT_THAT(doi, HasSubstr("\"signatures\":[{\"keyName\":\"builder-b\",\"sig\":\""));
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(doi);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->claim, claim);
  EXPECT_EQ(file->signatures, signatures);  // file order kept
  for (const Signature& s : file->signatures) {
    EXPECT_TRUE(VerifyRealisation({claim, s, {}}, s.key_name == "builder-a" ? a.public_key() : b.public_key()).ok());
  }
}

// ---- Signatures across formats, metadata ---------------------------------------------------------

TEST(RealisationSignatureTest, ASignatureOverTheOtherFormatDoesNotVerify) {
  // The same output, keyed in each format.
  const SecretKey key = TestKey("builder-a");
  const Realisation old_format = TopClaim();
  const Realisation new_format = TraceClaim();
  ASSERT_EQ(old_format.out_path, new_format.out_path);
  const RealisationAttestation signed_old = SignRealisation(old_format, key);
  EXPECT_TRUE(VerifyRealisation(signed_old, key.public_key()).ok());
  const RealisationAttestation moved{new_format, signed_old.signature, {}};
  const absl::Status status = VerifyRealisation(moved, key.public_key());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(status.message(), HasSubstr(Cat(kDrv, "^out")));
  const RealisationAttestation back{old_format, SignRealisation(new_format, key).signature, {}};
  EXPECT_EQ(VerifyRealisation(back, key.public_key()).code(), absl::StatusCode::kUnauthenticated);
  // And another key's name is refused.
  EXPECT_EQ(VerifyRealisation(signed_old, TestKey("builder-b").public_key()).code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(RealisationSignatureTest, MetadataMustFitTheKey) {
  const Realisation trace = TraceClaim();
  BuildMetadata ok{.deriver = std::string(kDrv), .output_name = "out", .system = "x86_64-linux",
                   .build_kind = BuildKind::kRebuild, .build_time_unix = 5};
  EXPECT_TRUE(ValidateRealisationMetadata(trace, ok).ok());
  BuildMetadata other_drv = ok;
  other_drv.deriver = "/nix/store/ds4pq4gk211n8zr9gm10hic9xjfc0ryy-ca-top.drv";
  absl::Status status = ValidateRealisationMetadata(trace, other_drv);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("is not the derivation"));
  // A 2.8 key names no derivation: the builder's (e.g. resolved) .drv is fine.
  EXPECT_TRUE(ValidateRealisationMetadata(TopClaim(), other_drv).ok());
  BuildMetadata other_output = ok;
  other_output.output_name = "dev";
  EXPECT_THAT(ValidateRealisationMetadata(trace, other_output).message(), HasSubstr("is not the output out"));
  EXPECT_THAT(ValidateRealisationMetadata(TopClaim(), other_output).message(), HasSubstr("is not the output out"));
  BuildMetadata bad = ok;
  bad.build_time_unix = -1;
  EXPECT_FALSE(ValidateRealisationMetadata(trace, bad).ok());
}

// ---- Properties ----------------------------------------------------------------------------------

// Random byte edits of canonical fingerprints and files: whatever the strict parser accepts is
// canonical (Fingerprint() gives the input back), and nothing crashes.
TEST(RealisationPropertyTest, EveryAcceptedFingerprintIsCanonical) {
  const std::vector<std::string> seeds = {TopClaim().Fingerprint(), TraceClaim().Fingerprint(),
                                          ReadData("nix-2.8-ca-base.doi"), ReadData("nix-2.8-ca-top.doi"),
                                          Renamed(ReadData("nix-2.35-with-signature.json"))};
  const std::string alphabet = "{}[]\":,\\ \n!^/-.0123456789abcdefsu";
  std::mt19937 rng(42);  // fixed seed: failures reproduce
  int accepted = 0;
  for (int round = 0; round < 4000; ++round) {
    std::string text = seeds[round % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0:
          text[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.erase(at, 1);
          break;
        default:
          text.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    absl::StatusOr<Realisation> claim = Realisation::ParseFingerprint(text);
    if (claim.ok()) {
      ++accepted;
      ASSERT_EQ(claim->Fingerprint(), text);
    } else {
      ASSERT_EQ(claim.status().code(), absl::StatusCode::kInvalidArgument);
      ASSERT_FALSE(claim.status().message().empty());
    }
    absl::StatusOr<RealisationFile> file = ParseRealisationFile(text);
    if (file.ok()) {
      // A file that parses writes back to a file that parses to the same thing.
      absl::StatusOr<RealisationFile> again =
          ParseRealisationFile(FormatRealisationFile(file->claim, file->signatures));
      ASSERT_TRUE(again.ok()) << again.status();
      ASSERT_EQ(again->claim, file->claim);
      ASSERT_EQ(again->signatures, file->signatures);
    } else {
      ASSERT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
  // Some edits keep a fingerprint valid (another hash digit, another name character).
  EXPECT_GT(accepted, 0);
}

TEST(RealisationPropertyTest, TooManyDependentsAreRefusedByTheirCount) {
  // 10,001 dependents: over the limit, refused by count (not by quadratic duplicate checks).
  std::string json = "{\"dependentRealisations\":{";
  for (int i = 0; i <= 10000; ++i) {
    absl::StrAppend(&json, i == 0 ? "" : ",", "\"sha256:", std::string(59, 'a'), 10000 + i,
                    "!out\":\"n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\"");
  }
  absl::StrAppend(&json, "},\"id\":\"sha256:", std::string(kHex), "!out\",\"outPath\":\"n2226w6qslyyljhc8rc1smxyz9y12l6f-ca-base\"}");
  absl::StatusOr<RealisationFile> file = ParseRealisationFile(json);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(), HasSubstr("10001 dependent realisations; at most 10000"));
}

}  // namespace
}  // namespace attest::consensus
