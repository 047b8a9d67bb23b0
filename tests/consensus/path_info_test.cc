#include "consensus/path_info.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

StorePath Path(std::string_view text) {
  auto path = StorePath::Parse(text);
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

NarHash Hash(std::string_view text) {
  auto hash = NarHash::Parse(text);
  EXPECT_TRUE(hash.ok()) << hash.status();
  return *hash;
}

// The fingerprint lines of every Nix-made data file.
std::vector<std::string> NixFingerprints() {
  std::vector<std::string> out;
  for (const char* file :
       {"nix_signatures/nix_2.8_signatures.txt", "nix_signatures/nix_reference_signatures.txt"}) {
    const std::string text =
        attest::testing::ReadFileOrDie(std::string(ATTEST_TESTDATA_DIR) + "/" + file);
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      constexpr absl::string_view kPrefix = "fingerprint: ";
      if (line.substr(0, kPrefix.size()) == kPrefix) {
        out.emplace_back(line.substr(kPrefix.size()));
      }
    }
  }
  return out;
}

TEST(PathInfoTest, FingerprintMatchesNixWithoutReferences) {
  // From a Nix 2.8 run (`nix path-info --json` of a locally built path). The NAR hash comes in as SRI, as
  // `nix path-info --json` prints it.
  auto info =
      PathInfo::Create(Path("/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest"),
                       Hash("sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA="), 144, {});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->Fingerprint(),
            "1;/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest;sha256:"
            "0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc;144;");
}

TEST(PathInfoTest, FingerprintMatchesNixWithReferences) {
  auto info = PathInfo::Create(Path("/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps"),
                               Hash("sha256-88RGANdHt3tMS5ihoIhZ+V7W0WC4sqLnRLGft3SS3mA="), 160,
                               {Path("/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep")});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->Fingerprint(),
            "1;/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps;sha256:"
            "0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k;160;"
            "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep");
}

TEST(PathInfoTest, CreateSortsReferencesAsNixDoes) {
  // curl's references from cache.nixos.org, given in reverse order.
  std::vector<StorePath> refs = {
      Path("/nix/store/yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n"),
      Path("/nix/store/j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12"),
      Path("/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115"),
      Path("/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0"),
  };
  auto info = PathInfo::Create(Path("/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin"),
                               Hash("sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0"),
                               196040, refs);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(std::is_sorted(info->references.begin(), info->references.end()));
  EXPECT_EQ(info->Fingerprint(),
            "1;/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin;sha256:"
            "1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0;196040;/nix/store/"
            "0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0,/nix/store/"
            "6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115,/nix/store/"
            "j5jxw3iy7bbz4a57fh9g2xm2gxmyal8h-zlib-1.2.12,/nix/store/"
            "yxvjs9drzsphm9pcf42a4byzj1kb9m7k-openssl-1.1.1n");
}

TEST(PathInfoTest, SelfReferenceIsKept) {
  const StorePath self = Path("/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest");
  auto info = PathInfo::Create(self, NarHash::FromDigest({}), 1, {self});
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_THAT(info->Fingerprint(), ::testing::EndsWith(";1;" + self.full()));
}

TEST(PathInfoTest, RejectsZeroAndHugeNarSizes) {
  const StorePath path = attest::testing::TestStorePath("p");
  auto zero = PathInfo::Create(path, NarHash::FromDigest({}), 0, {});
  ASSERT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(zero.status().message()),
              HasSubstr("NAR size 0 is not valid: Nix never produces an empty NAR"));
  EXPECT_TRUE(PathInfo::Create(path, NarHash::FromDigest({}), kMaxNarSize, {}).ok());
  auto huge = PathInfo::Create(path, NarHash::FromDigest({}), kMaxNarSize + 1, {});
  ASSERT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(huge.status().message()), HasSubstr("exceeds the limit"));
}

TEST(PathInfoTest, RejectsDuplicateReferences) {
  const StorePath dep = attest::testing::TestStorePath("dep");
  auto info = PathInfo::Create(attest::testing::TestStorePath("p"), NarHash::FromDigest({}), 10,
                               {dep, attest::testing::TestStorePath("other"), dep});
  ASSERT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("lists reference " + dep.full() + " more than once"));
}

TEST(PathInfoTest, RejectsTooManyReferences) {
  std::vector<StorePath> refs;
  for (size_t i = 0; i <= kMaxReferences; ++i) {
    refs.push_back(attest::testing::TestStorePath("dep" + std::to_string(i)));
  }
  auto too_many =
      PathInfo::Create(attest::testing::TestStorePath("p"), NarHash::FromDigest({}), 10, refs);
  ASSERT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_many.status().message()), HasSubstr("10001 references"));
  refs.pop_back();
  auto at_limit =
      PathInfo::Create(attest::testing::TestStorePath("p"), NarHash::FromDigest({}), 10, refs);
  ASSERT_TRUE(at_limit.ok()) << at_limit.status();
  // And the parser accepts what Create accepts.
  auto parsed = PathInfo::ParseFingerprint(at_limit->Fingerprint());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, *at_limit);
}

TEST(PathInfoTest, ParseFingerprintRoundTripsEveryNixFingerprint) {
  const std::vector<std::string> fingerprints = NixFingerprints();
  ASSERT_GE(fingerprints.size(), 11u);
  for (const std::string& fp : fingerprints) {
    auto info = PathInfo::ParseFingerprint(fp);
    ASSERT_TRUE(info.ok()) << fp << ": " << info.status();
    EXPECT_EQ(info->Fingerprint(), fp);
  }
}

TEST(PathInfoTest, ParseFingerprintIsStrict) {
  const std::string path = "/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps";
  const std::string nix32 = "sha256:0q6yj9sbg7xi8kks5cmqc38xcpprb64a18cq9d67pds7sw04di7k";
  const std::string dep = "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep";
  const std::string dep2 = "/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0";
  ASSERT_TRUE(PathInfo::ParseFingerprint("1;" + path + ";" + nix32 + ";160;" + dep).ok());
  struct Case {
    std::string fingerprint;
    std::string fragment;
  };
  const Case cases[] = {
      {"", "1 ';'-separated fields, not 5"},
      {"1;" + path + ";" + nix32 + ";160", "4 ';'-separated fields"},
      {"1;" + path + ";" + nix32 + ";160;" + dep + ";", "6 ';'-separated fields"},
      {"2;" + path + ";" + nix32 + ";160;", "version '2'"},
      {"1;withdeps;" + nix32 + ";160;", "relative"},
      {"1;" + path + ";sha256-88RGANdHt3tMS5ihoIhZ+V7W0WC4sqLnRLGft3SS3mA=;160;",
       "'sha256:' and 52 nix32 characters"},
      {"1;" + path +
           ";sha256:f3c44600d747b77b4c4b98a1a08859f95ed6d160b8b2a2e744b19fb77492de60;160;",
       "'sha256:' and 52 nix32 characters"},
      {"1;" + path + ";sha1:143xibwh31h9bvxzalr0sjvbbvpa6ffs;160;", "only sha256"},
      {"1;" + path + ";" + nix32 + ";0160;", "NAR size '0160'"},
      {"1;" + path + ";" + nix32 + ";+160;", "NAR size '+160'"},
      {"1;" + path + ";" + nix32 + "; 160;", "NAR size ' 160'"},
      {"1;" + path + ";" + nix32 + ";;", "NAR size ''"},
      {"1;" + path + ";" + nix32 + ";18446744073709551616;", "NAR size"},
      {"1;" + path + ";" + nix32 + ";0;", "NAR size 0 is not valid"},
      {"1;" + path + ";" + nix32 + ";160;" + dep + "," + dep2, "not sorted"},
      {"1;" + path + ";" + nix32 + ";160;" + dep + "," + dep, "not sorted and unique"},
      {"1;" + path + ";" + nix32 + ";160;" + dep + ",", "store path is empty"},
      {"1;" + path + ";" + nix32 + ";160;z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep", "relative"},
      {"1;" + path + ";" + nix32 + ";160;" + dep + " ", "in its name"},
  };
  for (const Case& c : cases) {
    auto info = PathInfo::ParseFingerprint(c.fingerprint);
    ASSERT_FALSE(info.ok()) << "accepted " << c.fingerprint;
    EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(info.status().message()), HasSubstr(c.fragment)) << c.fingerprint;
  }
}

TEST(PathInfoTest, EqualClaimsHaveEqualFingerprints) {
  const PathInfo a = attest::testing::TestClaim("x", "one");
  const PathInfo b = attest::testing::TestClaim("x", "one");
  const PathInfo c = attest::testing::TestClaim("x", "two");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.Fingerprint(), b.Fingerprint());
  EXPECT_NE(a.Fingerprint(), c.Fingerprint());
}

}  // namespace
}  // namespace attest::consensus
