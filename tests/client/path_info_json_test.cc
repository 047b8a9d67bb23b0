#include "client/path_info_json.h"

#include <string>

#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_support.h"

namespace attest::client {
namespace {

using ::attest::testing::TestStorePath;
using nlohmann::json;
using ::testing::HasSubstr;

// Real output of Debian's Nix 2.8 `nix path-info --json --sigs` after `nix store sign` with two keys
// (captured from a Nix 2.8 run).
constexpr std::string_view kNix28List =
    R"([{"path":"/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest","narHash":"sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA=","narSize":144,"references":[],"deriver":"/nix/store/hh80jchqbkyvyfn2p4djxywmb2r0hknq-hello-attest.drv","registrationTime":1795576781,"ultimate":true,"signatures":["builderA-1:x+pCnhYA5nAMdoKlA3say0nLdfwHxGGsSo4MDeRkAVsr3DMlassPgYUr97ELW4B3HmYdEnESrNlnNdSEclEKDA==","builderB-1:p/qWkLIpPMYHgue7nK8OfMEQLu2RobI7uvxCfGDPdvca0Pg2/0YRvxbWkJi4p7LD1nHjg07Y4M9OWDnOQzz1Cw=="]},{"path":"/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps","narHash":"sha256-88RGANdHt3tMS5ihoIhZ+V7W0WC4sqLnRLGft3SS3mA=","narSize":160,"references":["/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep"],"deriver":"/nix/store/54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv","registrationTime":1795576781,"ultimate":true,"signatures":["builderA-1:YkhVQl6mm0ub9868pMBHhzgxtu3vJvUeiiYxOTMIkMwqV5+eimGJ65DOx8xzjRj+jBY+IDmfyy3i/VPlDr5qDw==","builderB-1:qVzMSMIfsikiu19Y9W+IRIeRGvnkMrMXLHbR4URuo3kLnSlctWat6zim1wl10Rua8U7u9d80AE/pDFZ1f45cCQ=="]}])";
constexpr std::string_view kBuilderAPublicKey = "builderA-1:zLjUW66h6cpLZBs9CNDr4gAncjDiPSWEN3/6GkxhCY0=";

// The same hash as the SRI above, as Nix writes it in fingerprints and narinfos.
constexpr std::string_view kNix32 = "sha256:0h46fxwj1hjiq8fqplhnc5yky20r371v7dii21chgvp53j97a0qc";

TEST(PathInfoJsonTest, ParsesNix28ListForm) {
  auto infos = ParsePathInfoJson(kNix28List);
  ASSERT_TRUE(infos.ok()) << infos.status();
  ASSERT_EQ(infos->size(), 2u);
  const NixPathInfo& hello = (*infos)[0];
  EXPECT_EQ(hello.claim.Fingerprint(),
            std::string("1;/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest;") + std::string(kNix32) +
                ";144;");
  ASSERT_TRUE(hello.deriver.has_value());
  EXPECT_EQ(hello.deriver->full(), "/nix/store/hh80jchqbkyvyfn2p4djxywmb2r0hknq-hello-attest.drv");
  EXPECT_EQ(hello.output_name, "out");
  EXPECT_TRUE(hello.ultimate);
  EXPECT_EQ(hello.registration_time, 1795576781);
  EXPECT_EQ(hello.signatures.size(), 2u);
}

TEST(PathInfoJsonTest, ParsedClaimsHaveTheFingerprintNixSigned) {
  // Nix's own signatures verify over the fingerprints computed from the parsed JSON, so the parse
  // (hash conversion, reference handling) reproduces exactly what Nix signs.
  auto key = consensus::PublicKey::Parse(kBuilderAPublicKey);
  ASSERT_TRUE(key.ok()) << key.status();
  auto infos = ParsePathInfoJson(kNix28List);
  ASSERT_TRUE(infos.ok()) << infos.status();
  for (const NixPathInfo& info : *infos) {
    auto sig = consensus::Signature::Parse(info.signatures[0]);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EXPECT_TRUE(key->Verify(info.claim.Fingerprint(), *sig).ok()) << info.claim.Fingerprint();
  }
}

TEST(PathInfoJsonTest, ParsesNewerMapForm) {
  const std::string text = R"({
    "/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps": {
      "narHash": "sha256-DAN1khzl7gdZEDG2s8MZGQg/fWEW0osdwlHCIHl3hkA=",
      "narSize": 160,
      "references": ["/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep"],
      "deriver": null,
      "ultimate": false
    }})";
  auto infos = ParsePathInfoJson(text);
  ASSERT_TRUE(infos.ok()) << infos.status();
  ASSERT_EQ(infos->size(), 1u);
  EXPECT_EQ((*infos)[0].claim.path.full(), "/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps");
  EXPECT_FALSE((*infos)[0].ultimate);
  EXPECT_FALSE((*infos)[0].deriver.has_value());
}

TEST(PathInfoJsonTest, MapFormWithBaseNamesAndStructuredHash) {
  // json-format 2 (Nix 2.33+): base names and a structured hash.
  const std::string text = R"({
    "5y0id92994amq4kz6cavskc0q861hmz5-withdeps": {
      "version": 2,
      "narHash": {"algorithm": "sha256", "format": "base16",
                  "hash": "0c0375921ce5ee075910031ab2c3191908 3f7d6116d28b1dc251c2207977864 0"},
      "narSize": 160,
      "references": ["z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep"],
      "ca": null, "storeDir": "/nix/store", "ultimate": true,
      "signatures": [{"keyName": "k", "sig": "abc"}]
    }})";
  // The test hash above has spaces to catch sloppy parsing: it must fail.
  EXPECT_FALSE(ParsePathInfoJson(text).ok());

  json fixed = json::parse(text);
  auto digest = consensus::NarHash::Parse(kNix32);
  ASSERT_TRUE(digest.ok());
  fixed["5y0id92994amq4kz6cavskc0q861hmz5-withdeps"]["narHash"]["hash"] = digest->ToHex();
  auto infos = ParsePathInfoJson(fixed.dump());
  ASSERT_TRUE(infos.ok()) << infos.status();
  EXPECT_EQ((*infos)[0].claim.nar_hash.ToNix32(), kNix32);
  EXPECT_EQ((*infos)[0].claim.references[0].full(), "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep");
  EXPECT_EQ((*infos)[0].signatures, std::vector<std::string>{"k:abc"});
}

TEST(PathInfoJsonTest, AcceptsEveryNarHashFormNixPrints) {
  auto hash = consensus::NarHash::Parse(kNix32);
  ASSERT_TRUE(hash.ok());
  const std::string base64 = hash->ToSri().substr(7);
  const std::vector<json> forms = {
      hash->ToSri(),              // 2.8 path-info
      std::string(kNix32),        // narinfo style
      "sha256:" + hash->ToHex(),  // base16 (local DB)
      "sha256:" + base64,         // base64 with ':'
      json{{"algorithm", "sha256"}, {"format", "nix32"}, {"hash", std::string(kNix32.substr(7))}},
      json{{"algorithm", "sha256"}, {"format", "base64"}, {"hash", base64}},
      json{{"algorithm", "sha256"}, {"format", "sri"}, {"hash", hash->ToSri()}},
  };
  for (const json& form : forms) {
    json list = json::array({{{"path", TestStorePath("h").full()},
                              {"narHash", form},
                              {"narSize", 144},
                              {"references", json::array()},
                              {"ultimate", true}}});
    auto infos = ParsePathInfoJson(list.dump());
    ASSERT_TRUE(infos.ok()) << form.dump() << ": " << infos.status();
    EXPECT_EQ((*infos)[0].claim.nar_hash, *hash) << form.dump();
  }
}

json Entry() {
  return json{{"path", TestStorePath("x").full()},
              {"narHash", std::string(kNix32)},
              {"narSize", 144},
              {"references", json::array()}};
}

void ExpectError(const json& entry, std::string_view fragment) {
  auto infos = ParsePathInfoJson(json::array({entry}).dump());
  ASSERT_FALSE(infos.ok()) << entry.dump();
  EXPECT_EQ(infos.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(infos.status().message()), HasSubstr(std::string(fragment))) << entry.dump();
  EXPECT_THAT(std::string(infos.status().message()), HasSubstr("entry 1"))
      << "the message must name the entry";
}

TEST(PathInfoJsonTest, MissingOrMalformedFieldsAreNamed) {
  json e = Entry();
  e.erase("narHash");
  ExpectError(e, "narHash");
  e = Entry();
  e.erase("narSize");
  ExpectError(e, "narSize");
  e = Entry();
  e.erase("references");
  ExpectError(e, "references");
  e = Entry();
  e.erase("path");
  ExpectError(e, "path");
  e = Entry();
  e["narSize"] = -1;
  ExpectError(e, "narSize");
  e = Entry();
  e["narSize"] = 0;
  ExpectError(e, "NAR size 0");
  e = Entry();
  e["narHash"] = "md5:abc";
  ExpectError(e, "narHash");
  e = Entry();
  e["path"] = "/usr/bin/x";
  ExpectError(e, "path");
  e = Entry();
  e["references"] = json::array({"not a path"});
  ExpectError(e, "reference");
  e = Entry();
  e["deriver"] = TestStorePath("not-a-drv").full();
  ExpectError(e, "deriver");
  e = Entry();
  e["valid"] = false;
  ExpectError(e, "not valid");
}

TEST(PathInfoJsonTest, InvalidPathInMapFormIsAnError) {
  auto infos = ParsePathInfoJson(R"({"/nix/store/5y0id92994amq4kz6cavskc0q861hmz5-withdeps": null})");
  ASSERT_FALSE(infos.ok());
  EXPECT_THAT(std::string(infos.status().message()), HasSubstr("not valid in the store"));
}

TEST(PathInfoJsonTest, NotJsonOrWrongShape) {
  EXPECT_FALSE(ParsePathInfoJson("/nix/store/abc").ok());
  EXPECT_FALSE(ParsePathInfoJson("42").ok());
  auto empty = ParsePathInfoJson("[]");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(PathInfoJsonTest, GuessesOutputNameFromDeriver) {
  auto drv = consensus::StorePath::Parse("/nix/store/5rwxzi7pal3qhpsyfc16gzkh939q1np6-curl-7.82.0.drv");
  auto bin = consensus::StorePath::Parse("/nix/store/syd87l2rxw8cbsxmxl853h0r6pdwhwjr-curl-7.82.0-bin");
  auto out = consensus::StorePath::Parse("/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0");
  auto other = consensus::StorePath::Parse("/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115");
  ASSERT_TRUE(drv.ok() && bin.ok() && out.ok() && other.ok());
  EXPECT_EQ(GuessOutputName(*bin, *drv), "bin");
  EXPECT_EQ(GuessOutputName(*out, *drv), "out");
  EXPECT_EQ(GuessOutputName(*other, *drv), "");
}

}  // namespace
}  // namespace attest::client
