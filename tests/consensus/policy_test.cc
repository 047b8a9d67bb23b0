#include "consensus/policy.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/quorum.h"
#include "consensus/tally.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::consensus {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TestClaim;
using ::attest::testing::TestKey;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string Pub(std::string_view name) { return TestKey(name).public_key().ToString(); }

std::string Message(const absl::Status& status) {
  return std::string(status.message().data(), status.message().size());
}

std::string TestdataPath(std::string_view name) {
  return absl::StrCat(ATTEST_TESTDATA_DIR, "/policy/", std::string(name));
}

// Substitutes {alice-1} etc. with the TestKey public key of that name, so the TOML in a test reads
// like the file a person writes, and line numbers in it are the ones asserted.
std::string WithKeys(std::string_view text) {
  std::string out(text);
  for (std::string_view name : {"alice-1", "alice-2", "bob-1", "carol-1", "maint-1", "maint-2"}) {
    out = absl::StrReplaceAll(out, {{absl::StrCat("{", std::string(name), "}"), Pub(name)}});
  }
  return out;
}

// A valid three-operator policy; line numbers of later test variants are relative to this layout.
constexpr char kGood[] = R"(quorum = 2

[[operator]]
name = "alice"
builders = ["{alice-1}", "{alice-2}"]

[[operator]]
name = "bob"
builders = ["{bob-1}"]

[[operator]]
name = "carol"
builders = ["{carol-1}"]

[[maintainer]]
key = "{maint-1}"
)";

// Parses `text` (after WithKeys) and expects INVALID_ARGUMENT at `line` whose message contains
// `problem`.
void ExpectErrorAt(std::string_view text, int line, std::string_view problem) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(text), "bad.toml");
  ASSERT_FALSE(policy.ok()) << "parsed:\n" << text;
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(policy.status()), StartsWith(absl::StrCat("bad.toml:", line, ":")));
  EXPECT_THAT(Message(policy.status()), HasSubstr(std::string(problem)));
  // Every message says what to do, in parentheses at the end.
  EXPECT_THAT(Message(policy.status()), ::testing::EndsWith(")"));
}

// Pinned hash of testdata/policy/good.toml (see HashGoldenForNixKeyFile).
constexpr char kGoodTomlHash[] =
    "sha256:ee29ded8443b6e1137b978d6ca26671b8b11635a4024f7547c7c84ecc6071bcb";

// ---- good files --------------------------------------------------------------------------------

TEST(PolicyTest, ParsesGoodPolicy) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(kGood), "good.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->quorum(), 2);
  ASSERT_EQ(policy->operators().size(), 3u);
  EXPECT_EQ(policy->operators()[0].name, "alice");
  EXPECT_EQ(policy->operators()[0].builders.size(), 2u);
  EXPECT_EQ(policy->operators()[1].name, "bob");
  EXPECT_EQ(policy->operators()[2].name, "carol");
  ASSERT_EQ(policy->maintainers().size(), 1u);
  EXPECT_EQ(policy->maintainers()[0], TestKey("maint-1").public_key());

  ASSERT_NE(policy->FindBuilder("alice-2"), nullptr);
  EXPECT_EQ(*policy->FindBuilder("alice-2"), TestKey("alice-2").public_key());
  ASSERT_NE(policy->OperatorOf("alice-2"), nullptr);
  EXPECT_EQ(*policy->OperatorOf("alice-2"), "alice");
  EXPECT_EQ(*policy->OperatorOf("bob-1"), "bob");
  EXPECT_EQ(policy->FindBuilder("maint-1"), nullptr);  // a maintainer is not a builder
  EXPECT_EQ(policy->OperatorOf("maint-1"), nullptr);
  EXPECT_EQ(policy->FindBuilder("nobody"), nullptr);
  ASSERT_NE(policy->FindMaintainer("maint-1"), nullptr);
  EXPECT_EQ(policy->FindMaintainer("alice-1"), nullptr);
}

// One rule for key names (ValidateKeyName): every character Nix allows in a key name that nix.conf
// and a page can carry, '+' included, is fine for builders and maintainers alike.
TEST(PolicyTest, KeyNamesWithTheCharactersNixAllowsLoad) {
  const std::vector<std::string> builders = {"ci+eu.example.org/b_1", "b=2@example.org", "ünïcode-例", "<b&'>"};
  const std::string maintainer = "maint+ops.example/m_1=@é";
  std::string toml = "quorum = 1\n[[operator]]\nname = \"alice+ci\"\nbuilders = [";
  for (const std::string& name : builders) toml += Cat("\"", TestKey(name).public_key().ToString(), "\", ");
  toml += Cat("]\n[[maintainer]]\nkey = \"", TestKey(maintainer).public_key().ToString(), "\"\n");
  absl::StatusOr<Policy> policy = Policy::ParseToml(toml, "nix-names.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  for (const std::string& name : builders) {
    ASSERT_NE(policy->FindBuilder(name), nullptr) << name;
    EXPECT_EQ(*policy->OperatorOf(name), "alice+ci");
  }
  ASSERT_NE(policy->FindMaintainer(maintainer), nullptr);
  // And the canonical text, which every node hashes, carries them unchanged.
  EXPECT_THAT(policy->CanonicalText(), HasSubstr(Cat("maintainer ", TestKey(maintainer).public_key().ToString())));
}

TEST(PolicyTest, KeyNamesThatWouldDisplayFalselyAreRefused) {
  const std::string key = Cat("builder-\xE2\x80\xAE" "1:", Base64Encode(TestKey("x").public_key().bytes()));
  absl::StatusOr<Policy> policy = Policy::ParseToml(
      Cat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"", key, "\"]\n"), "bidi.toml");
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(policy.status().message()), HasSubstr("bidi.toml:"));
  EXPECT_THAT(std::string(policy.status().message()), HasSubstr("bidirectional"));
}

TEST(PolicyTest, ValidateOperatorNameIsThePoliciesRule) {
  for (std::string_view name : {"alice-ci", "a.b_c@d+e", "x"}) {
    EXPECT_TRUE(ValidateOperatorName(name).ok()) << name;
  }
  for (std::string_view name : {"", "a b", "alice\nbob", "\n", "ünï", "a/b"}) {
    EXPECT_EQ(ValidateOperatorName(name).code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_FALSE(ValidateOperatorName(std::string(129, 'a')).ok());
}

// Debian's toml++ 3.3 has undefined behaviour in its UTF-8 decoding on some invalid input: such
// text must be refused before it reaches toml++, with the position of the first bad byte.
TEST(PolicyTest, RefusesInvalidUtf8BeforeParsingToml) {
  const std::string good = WithKeys(kGood);
  struct Case {
    std::string text;
    std::string where;
  };
  const std::vector<Case> cases = {
      {"# caf\xE9\n" + good, "policy.toml:1:6: byte 0xE9"},           // Latin-1 in a comment
      {"quorum = 2 # \xC0\xAF\n", "policy.toml:1:14: byte 0xC0"},   // overlong '/'
      {"x = \"\xED\xA0\x80\"\n", "policy.toml:1:6: byte 0xED"},     // a surrogate in a string
      {"x = \"\xF4\x90\x80\x80\"\n", "policy.toml:1:6: byte 0xF4"}, // above U+10FFFF
      {"\x80 = 1\n", "policy.toml:1:1: byte 0x80"},                  // a lone continuation byte as a key
      {"quorum = 2\n# \xE2\x82", "policy.toml:2:3: byte 0xE2"},      // truncated at the end of the file
      {"\xFF\xFE", "policy.toml:1:1: byte 0xFF"},                    // a UTF-16 byte order mark
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = Policy::ParseToml(c.text, "policy.toml");
    ASSERT_FALSE(policy.ok()) << QuoteForError(c.text);
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string message(StdView(policy.status().message()));
    EXPECT_THAT(message, StartsWith(c.where)) << QuoteForError(c.text);
    EXPECT_THAT(message, HasSubstr("not valid UTF-8"));
  }
  // Valid UTF-8 beyond ASCII is fine.
  absl::StatusOr<Policy> policy = Policy::ParseToml("# café, 日本, 😀\n" + good, "policy.toml");
  EXPECT_TRUE(policy.ok()) << policy.status();
}

TEST(PolicyTest, MaintainersAreOptional) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]
)"),
                                                    "p.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->maintainers().empty());
}

TEST(PolicyTest, CanonicalTextGolden) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(kGood), "good.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  // Builders sorted by key text, operators by name.
  std::vector<std::string> alice = {Pub("alice-1"), Pub("alice-2")};
  std::sort(alice.begin(), alice.end());
  EXPECT_EQ(policy->CanonicalText(),
            absl::StrCat("attest-policy/v1\n"
                         "quorum 2\n"
                         "operator alice\n"
                         "builder ",
                         alice[0], "\n", "builder ", alice[1], "\n",
                         "operator bob\n"
                         "builder ",
                         Pub("bob-1"), "\n",
                         "operator carol\n"
                         "builder ",
                         Pub("carol-1"), "\n", "maintainer ", Pub("maint-1"), "\n"));
  EXPECT_THAT(policy->Hash(), StartsWith("sha256:"));
  EXPECT_EQ(policy->Hash().size(), 7u + 64u);
}

TEST(PolicyTest, HashGoldenForNixKeyFile) {
  // Pinned: every node of a federation compares this value, so it must never drift between
  // versions. If the canonical text changes on purpose, that is a new "attest-policy/vN".
  absl::StatusOr<Policy> policy =
      Policy::ParseToml(ReadFileOrDie(TestdataPath("good.toml")), "good.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->CanonicalText(),
            "attest-policy/v1\n"
            "quorum 2\n"
            "operator alice-ci\n"
            "builder alice-builder-1:1DGlt7s1ECc+BT6SBJUc/Cm1v2AtecC+Pqc8xPtCJQY=\n"
            "builder alice-builder-2:XS2XDrHM2vU3FootBSOED1g7cYJSidyQ6zzrDSraxJs=\n"
            "operator bob\n"
            "builder bob-builder-1:SIzNrnyjSk+3+i8fy7+ohSUGyHrZW8O45O+5Vyl6p9U=\n"
            "operator carol\n"
            "builder carol-builder-1:wtgObNuh2ExUVrdD6m2ZllcRFezYMuZNgw2U66lt72Q=\n"
            "maintainer maint-1:zk7YDpydUwQPBO5c1xk7nFRrDGteGSy9MC2NKgVqNMs=\n");
  EXPECT_EQ(policy->Hash(), kGoodTomlHash);
}

TEST(PolicyTest, HashIgnoresFormattingCommentsAndOrder) {
  absl::StatusOr<Policy> a =
      Policy::ParseToml(ReadFileOrDie(TestdataPath("good.toml")), "good.toml");
  absl::StatusOr<Policy> b =
      Policy::ParseToml(ReadFileOrDie(TestdataPath("good_reordered.toml")), "good_reordered.toml");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->Hash(), b->Hash());
  EXPECT_EQ(a->CanonicalText(), b->CanonicalText());
  // The accessors are in canonical order too, so anything derived from them agrees across nodes.
  ASSERT_EQ(b->operators().size(), 3u);
  EXPECT_EQ(b->operators()[0].name, "alice-ci");
  EXPECT_EQ(b->operators()[0].builders[0].name(), "alice-builder-1");

  std::string commented = absl::StrCat("# a new comment\n\n", WithKeys(kGood), "\n# trailing\n");
  absl::StatusOr<Policy> c = Policy::ParseToml(WithKeys(kGood), "x.toml");
  absl::StatusOr<Policy> d = Policy::ParseToml(commented, "y.toml");
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_EQ(c->Hash(), d->Hash());
}

TEST(PolicyTest, HashChangesWithQuorumKeysAndNames) {
  absl::StatusOr<Policy> base = Policy::ParseToml(WithKeys(kGood), "p.toml");
  ASSERT_TRUE(base.ok()) << base.status();
  std::vector<std::string> variants = {
      absl::StrReplaceAll(kGood, {{"quorum = 2", "quorum = 3"}}),
      absl::StrReplaceAll(kGood, {{"{bob-1}", "{maint-2}"}}),
      absl::StrReplaceAll(kGood, {{"key = \"{maint-1}\"", "key = \"{maint-2}\""}}),
      absl::StrReplaceAll(kGood, {{"name = \"carol\"", "name = \"carol2\""}}),
      // A builder moved to another operator changes who counts.
      absl::StrReplaceAll(kGood, {{"[\"{alice-1}\", \"{alice-2}\"]", "[\"{alice-1}\"]"},
                                  {"[\"{bob-1}\"]", "[\"{bob-1}\", \"{alice-2}\"]"}}),
  };
  for (const std::string& variant : variants) {
    absl::StatusOr<Policy> other = Policy::ParseToml(WithKeys(variant), "p.toml");
    ASSERT_TRUE(other.ok()) << other.status() << "\n" << variant;
    EXPECT_NE(other->Hash(), base->Hash()) << variant;
  }
}

// ---- caches ------------------------------------------------------------------------------------

// A one-operator policy whose line 5 is `caches = [<urls>]`; the first URL starts at column 11.
std::string WithCaches(std::string_view urls) {
  return absl::StrCat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"{alice-1}\"]\ncaches = [",
                      std::string(urls), "]\n");
}

TEST(PolicyTest, CachesAreKeptInTheOperatorsOrderAndNormalised) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(
      WithKeys(WithCaches(R"("https://b.example.org/", "file:///srv/alice/", "http://a.example.org:8080")")),
      "p.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_THAT(policy->operators()[0].caches,
              ElementsAre("https://b.example.org", "file:///srv/alice", "http://a.example.org:8080"));
  // Another operator may list the same cache (a shared mirror): only one operator's list must not repeat.
  absl::StatusOr<Policy> shared = Policy::ParseToml(WithKeys(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]
caches = ["https://shared.example.org"]
[[operator]]
name = "bob"
builders = ["{bob-1}"]
caches = ["https://shared.example.org/"]
)"),
                                                    "p.toml");
  ASSERT_TRUE(shared.ok()) << shared.status();
  EXPECT_EQ(shared->operators()[1].caches, shared->operators()[0].caches);
}

TEST(PolicyTest, HashGoldenWithCaches) {
  // Pinned like HashGoldenForNixKeyFile: cache lines follow their operator's builders, in the operator's
  // order, normalised; an operator without caches (carol) has none.
  absl::StatusOr<Policy> policy =
      Policy::ParseToml(ReadFileOrDie(TestdataPath("good_with_caches.toml")), "good_with_caches.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->CanonicalText(),
            "attest-policy/v1\n"
            "quorum 2\n"
            "operator alice-ci\n"
            "builder alice-builder-1:1DGlt7s1ECc+BT6SBJUc/Cm1v2AtecC+Pqc8xPtCJQY=\n"
            "builder alice-builder-2:XS2XDrHM2vU3FootBSOED1g7cYJSidyQ6zzrDSraxJs=\n"
            "cache https://cache.alice-ci.example.org\n"
            "cache file:///srv/alice-ci/cache\n"
            "operator bob\n"
            "builder bob-builder-1:SIzNrnyjSk+3+i8fy7+ohSUGyHrZW8O45O+5Vyl6p9U=\n"
            "cache http://[2001:db8::b0b]:8080/nix\n"
            "operator carol\n"
            "builder carol-builder-1:wtgObNuh2ExUVrdD6m2ZllcRFezYMuZNgw2U66lt72Q=\n"
            "maintainer maint-1:zk7YDpydUwQPBO5c1xk7nFRrDGteGSy9MC2NKgVqNMs=\n");
  EXPECT_EQ(policy->Hash(), "sha256:ddefc8b301f9efb0748b5f0db3d14c7f454bdd285bd4af9e572421a15db449d7");
  EXPECT_NE(policy->Hash(), kGoodTomlHash);
}

TEST(PolicyTest, WithoutCachesTheHashIsTheOneBeforeCachesExisted) {
  // An empty list is no caches: the text and hash of good.toml (pinned in HashGoldenForNixKeyFile).
  std::string text = ReadFileOrDie(TestdataPath("good.toml"));
  text = absl::StrReplaceAll(text, {{"name = \"bob\"\n", "name = \"bob\"\ncaches = []\n"}});
  ASSERT_THAT(text, HasSubstr("caches = []"));
  absl::StatusOr<Policy> policy = Policy::ParseToml(text, "good.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->Hash(), kGoodTomlHash);
  EXPECT_THAT(policy->CanonicalText(), Not(HasSubstr("cache")));
}

TEST(PolicyTest, HashChangesWhenACacheIsAddedChangedMovedOrReordered) {
  const std::string alice = "name = \"alice\"\n";
  const std::string bob = "name = \"bob\"\n";
  auto with = [&](std::string_view alice_caches, std::string_view bob_caches) {
    std::string text(kGood);
    if (!alice_caches.empty()) text = absl::StrReplaceAll(text, {{alice, Cat(alice, "caches = [", alice_caches, "]\n")}});
    if (!bob_caches.empty()) text = absl::StrReplaceAll(text, {{bob, Cat(bob, "caches = [", bob_caches, "]\n")}});
    absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(text), "p.toml");
    EXPECT_TRUE(policy.ok()) << policy.status() << "\n" << text;
    return policy.ok() ? policy->Hash() : std::string();
  };
  const std::string none = with("", "");
  const std::string one = with(R"("https://a.example.org")", "");
  const std::string two = with(R"("https://a.example.org", "https://b.example.org")", "");
  const std::vector<std::string> hashes = {
      none,
      one,
      two,
      with(R"("https://b.example.org", "https://a.example.org")", ""),  // reordered: another preference
      with(R"("https://a.example.org", "https://c.example.org")", ""),  // another cache
      with("", R"("https://a.example.org")"),                           // the same cache, another operator's
  };
  for (size_t i = 0; i < hashes.size(); ++i) {
    for (size_t j = i + 1; j < hashes.size(); ++j) EXPECT_NE(hashes[i], hashes[j]) << i << " vs " << j;
  }
  // A trailing slash is not another cache.
  EXPECT_EQ(with(R"("https://a.example.org/", "https://b.example.org//")", ""), two);
}

TEST(PolicyTest, RejectsCachesThatAreNotAListOfStrings) {
  ExpectErrorAt(WithKeys("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"{alice-1}\"]\n"
                         "caches = \"https://cache.example.org\"\n"),
                5, "caches of operator \"alice\" is a string, not an array (write caches = [");
  ExpectErrorAt(WithCaches(R"("https://cache.example.org", 7)"), 5,
                "cache of operator \"alice\" is an integer, not a string (write the URL in quotes)");
  ExpectErrorAt(WithCaches(R"(["https://cache.example.org"])"), 5, "is an array, not a string");
  // [[operator.caches]] tables are not URLs either.
  ExpectErrorAt(WithKeys("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"{alice-1}\"]\n"
                         "caches = { url = \"https://cache.example.org\" }\n"),
                5, "is a table, not an array");
}

TEST(PolicyTest, RejectsBadCacheUrlsAtTheirPosition) {
  struct Case {
    std::string urls;
    std::string where;
    std::string problem;
  };
  const std::string long_url = Cat("https://cache.example.org/", std::string(1000, 'x'));
  const std::vector<Case> cases = {
      {R"("ftp://cache.example.org")", "bad.toml:5:11: ", "has the scheme 'ftp', which attest does not fetch from"},
      {R"("s3://nix-cache")", "bad.toml:5:11: ", "is an s3:// URL"},
      {R"("https://ok.example.org", "file://srv/cache")", "bad.toml:5:37: ", "needs an absolute path"},
      {R"("cache")", "bad.toml:5:11: ", "is not an http://, https:// or file:// URL"},
      {R"("")", "bad.toml:5:11: ", "cache URL is empty"},
      {R"("https://alice:pw@cache.example.org")", "bad.toml:5:11: ", "has a user name or password"},
      {R"("https://cache.example.org#x")", "bad.toml:5:11: ", "has a fragment"},
      {R"("https://cache.example.org?priority=10")", "bad.toml:5:11: ", "has a query"},
      {R"("https://cache.example.org/\n")", "bad.toml:5:11: ", "control character 0x0A"},
      {R"("https://cache.example.org/\u0000")", "bad.toml:5:11: ", "control character 0x00"},
      {R"("https://cache.example.org/ x")", "bad.toml:5:11: ", "contains a space"},
      {Cat("\"", long_url, "\""), "bad.toml:5:11: ", "is 1026 bytes long (use at most 1024 bytes"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(WithCaches(c.urls)), "bad.toml");
    ASSERT_FALSE(policy.ok()) << c.urls;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << c.urls;
    EXPECT_THAT(Message(policy.status()), StartsWith(Cat(c.where, "operator \"alice\": cache URL "))) << c.urls;
    EXPECT_THAT(Message(policy.status()), HasSubstr(c.problem)) << c.urls;
    EXPECT_THAT(Message(policy.status()), ::testing::EndsWith(")")) << c.urls;
  }
  // The password is not repeated.
  EXPECT_THAT(Message(Policy::ParseToml(WithKeys(WithCaches(R"("https://alice:pw@cache.example.org")")), "bad.toml")
                          .status()),
              Not(HasSubstr(":pw@")));
}

TEST(PolicyTest, RejectsACacheListedTwiceByOneOperator) {
  ExpectErrorAt(WithCaches(R"("https://a.example.org", "https://b.example.org", "https://a.example.org")"), 5,
                "bad.toml:5:61: operator \"alice\" lists the cache 'https://a.example.org' twice, first at "
                "bad.toml:5:11 (list each cache once");
  // Spelled with a trailing slash it is the same cache.
  ExpectErrorAt(WithCaches(R"("file:///srv/cache", "file:///srv/cache/")"), 5,
                "lists the cache 'file:///srv/cache' twice");
}

TEST(PolicyTest, CreateValidatesAndNormalisesCaches) {
  PublicKey a = TestKey("a").public_key();
  absl::StatusOr<Policy> policy =
      Policy::Create(1, {{.name = "x", .builders = {a}, .caches = {"https://c.example.org/", "file:///srv/c"}}}, {});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_THAT(policy->operators()[0].caches, ElementsAre("https://c.example.org", "file:///srv/c"));
  // The same policy from TOML has the same text and hash.
  absl::StatusOr<Policy> parsed = Policy::ParseToml(
      Cat("quorum = 1\n[[operator]]\nname = \"x\"\nbuilders = [\"", a.ToString(),
          "\"]\ncaches = [\"https://c.example.org\", \"file:///srv/c/\"]\n"),
      "p.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->CanonicalText(), policy->CanonicalText());
  EXPECT_EQ(parsed->Hash(), policy->Hash());

  for (auto [caches, problem] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"ftp://c.example.org"}, "operator \"x\": cache URL 'ftp://c.example.org' has the scheme 'ftp'"},
           {{"file://relative"}, "needs an absolute path"},
           {{""}, "cache URL is empty"},
           {{"https://u:p@c.example.org"}, "user name or password"},
           {{"https://c.example.org", "https://c.example.org/"},
            "operator \"x\" lists the cache 'https://c.example.org' twice (list each cache once"}}) {
    absl::StatusOr<Policy> bad = Policy::Create(1, {{.name = "x", .builders = {a}, .caches = caches}}, {});
    ASSERT_FALSE(bad.ok()) << problem;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(bad.status()), HasSubstr(problem));
  }
}

TEST(PolicyTest, KeysMadeByNixWork) {
  absl::StatusOr<Policy> policy =
      Policy::ParseToml(ReadFileOrDie(TestdataPath("good.toml")), "good.toml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  absl::StatusOr<SecretKey> secret =
      SecretKey::Parse(ReadFileOrDie(TestdataPath("nix-alice-builder-1.secret")));
  ASSERT_TRUE(secret.ok()) << secret.status();
  const PublicKey* in_policy = policy->FindBuilder("alice-builder-1");
  ASSERT_NE(in_policy, nullptr);
  EXPECT_EQ(secret->public_key(), *in_policy);

  Attestation attestation = SignAttestation(TestClaim("hello-2.12"), *secret);
  EXPECT_TRUE(VerifyAttestation(attestation, *in_policy).ok());
  std::vector<Attestation> attestations = {attestation};
  TallyResult tally = Tally(*policy, attestations);
  EXPECT_EQ(tally.verdict, Verdict::kPending);
  ASSERT_EQ(tally.fingerprints.size(), 1u);
  EXPECT_THAT(tally.fingerprints[0].operators, ElementsAre("alice-ci"));
}

// ---- Create ------------------------------------------------------------------------------------

TEST(PolicyTest, CreateSortsIntoCanonicalOrder) {
  std::vector<Operator> operators = {
      {"zed", {TestKey("z-2").public_key(), TestKey("z-1").public_key()}},
      {"amy", {TestKey("a-1").public_key()}},
  };
  absl::StatusOr<Policy> policy = Policy::Create(1, operators, {TestKey("m").public_key()});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->operators()[0].name, "amy");
  EXPECT_EQ(policy->operators()[1].name, "zed");
  EXPECT_LT(policy->operators()[1].builders[0].ToString(),
            policy->operators()[1].builders[1].ToString());
  EXPECT_EQ(*policy->OperatorOf("z-2"), "zed");

  std::reverse(operators.begin(), operators.end());
  absl::StatusOr<Policy> reversed = Policy::Create(1, operators, {TestKey("m").public_key()});
  ASSERT_TRUE(reversed.ok());
  EXPECT_EQ(reversed->Hash(), policy->Hash());
}

TEST(PolicyTest, CreateRejectsInvalidPolicies) {
  PublicKey a = TestKey("a").public_key();
  PublicKey b = TestKey("b").public_key();
  struct Case {
    std::string label;
    int quorum;
    std::vector<Operator> operators;
    std::vector<PublicKey> maintainers;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"quorum zero", 0, {{"x", {a}}}, {}, "quorum is 0"},
      {"quorum too big", 2, {{"x", {a}}}, {}, "quorum is 2 but the policy has only 1 operator"},
      {"no operators", 1, {}, {}, "only 0 operators"},
      {"empty name", 1, {{"", {a}}}, {}, "operator name is empty"},
      {"name with space", 1, {{"alice ci", {a}}}, {}, "contains a character"},
      {"duplicate operator", 1, {{"x", {a}}, {"x", {b}}}, {}, "duplicate operator name \"x\""},
      {"no builders", 1, {{"x", {}}}, {}, "operator \"x\" has no builders"},
      {"same key twice", 1, {{"x", {a, a}}}, {}, "duplicate key name \"a\""},
      {"builder is maintainer", 1, {{"x", {a}}}, {a}, "duplicate key name \"a\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Policy> policy = Policy::Create(c.quorum, c.operators, c.maintainers);
    ASSERT_FALSE(policy.ok()) << c.label;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
    EXPECT_THAT(Message(policy.status()), HasSubstr(c.expected)) << c.label;
  }
}

// ---- TOML errors, each at its line -------------------------------------------------------------

TEST(PolicyTest, RejectsTomlSyntaxError) {
  ExpectErrorAt("quorum = 2\n[[operator]\nname = \"x\"\n", 2, "TOML syntax error");
  // A key repeated in one table is a TOML error too, at the repetition.
  ExpectErrorAt("quorum = 2\nquorum = 3\n", 2, "TOML syntax error");
}

TEST(PolicyTest, RejectsUnknownTopLevelKeys) {
  ExpectErrorAt("quorum = 1\nquorom = 2\n[[operator]]\nname = \"a\"\nbuilders = [\"{alice-1}\"]\n",
                2, "unknown key 'quorom' in the policy");
  // Node settings do not belong in the policy, and the message says where they go.
  ExpectErrorAt(absl::StrCat(kGood, "\n[gateway]\nupstream = \"https://cache.nixos.org\"\n"), 18,
                "node's own config file");
  ExpectErrorAt(absl::StrCat(kGood, "\n[[peer]]\nurl = \"https://node\"\n"), 18,
                "unknown key 'peer'");
  // Per-path rules exist now: a rule without names is refused at its table, never silently ignored.
  ExpectErrorAt(absl::StrCat(kGood, "\n[[rule]]\nquorum = 3\n"), 18, "rule 1 has no names");
}

TEST(PolicyTest, RejectsUnknownKeysInOperator) {
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
weight = 2
builders = ["{alice-1}"]
)",
                4, "unknown key 'weight' in [[operator]]");
  // The classic TOML slip: a top-level key written below a table header belongs to that table.
  ExpectErrorAt(R"([[operator]]
name = "alice"
builders = ["{alice-1}"]
quorum = 1
)",
                4, "top-level keys such as quorum go above the first table");
}

TEST(PolicyTest, RejectsUnknownKeysInMaintainer) {
  ExpectErrorAt(absl::StrCat(kGood, "name = \"m\"\n"), 17, "unknown key 'name' in [[maintainer]]");
}

TEST(PolicyTest, RejectsWrongTypes) {
  ExpectErrorAt("quorum = \"2\"\n", 1, "quorum is a string, not an integer");
  ExpectErrorAt("quorum = 2.0\n", 1, "quorum is a floating-point number, not an integer");
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = 7
builders = ["{alice-1}"]
)",
                3, "operator name is an integer, not a string");
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = "{alice-1}"
)",
                4, "builders of operator \"alice\" is a string, not an array");
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = [
  "{alice-1}",
  42,
]
)",
                6, "is an integer, not a string");
  // [operator] (one table) instead of [[operator]] (an array of tables).
  ExpectErrorAt(R"(quorum = 1
[operator]
name = "alice"
builders = ["{alice-1}"]
)",
                2,
                "\"operator\" is a table, not an array of tables (write each entry as a "
                "[[operator]] table)");
  ExpectErrorAt("quorum = 1\nmaintainer = \"{maint-1}\"\n", 2,
                "\"maintainer\" is a string, not an array of tables");
  ExpectErrorAt(absl::StrCat(kGood, "[[maintainer]]\nkey = [\"{maint-2}\"]\n"), 18,
                "maintainer key is an array, not a string");
}

TEST(PolicyTest, RejectsBadKeyTexts) {
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["alice-1"]
)",
                4, "builder key of operator \"alice\" is not a Nix public key");
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["alice-1:not*base64"]
)",
                4, "is not a Nix public key");
  ExpectErrorAt(absl::StrCat(kGood, "[[maintainer]]\nkey = \"m2:AAAA\"\n"), 18,
                "maintainer key is not a Nix public key");
}

TEST(PolicyTest, RejectsSecretKeyWithoutEchoingIt) {
  std::string secret = TestKey("alice-1").ExportText();
  std::string text =
      absl::StrCat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"", secret, "\"]\n");
  absl::StatusOr<Policy> policy = Policy::ParseToml(text, "bad.toml");
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(policy.status()), StartsWith("bad.toml:4:"));
  EXPECT_THAT(Message(policy.status()), HasSubstr("SECRET key"));
  EXPECT_THAT(Message(policy.status()), Not(HasSubstr(secret.substr(secret.find(':') + 1, 20))));
}

TEST(PolicyTest, RejectsDuplicateKeyNames) {
  // The same key name under two operators: reported at the second, naming the first.
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]
[[operator]]
name = "bob"
builders = ["{alice-1}"]
)",
                7, "duplicate key name \"alice-1\"");
  // Within one operator.
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}",
            "{alice-1}"]
)",
                5, "bad.toml:4:");
  // A builder key that is also a maintainer key.
  ExpectErrorAt(absl::StrCat(kGood, "[[maintainer]]\nkey = \"{bob-1}\"\n"), 18,
                "maintainer key has the same name as the builder key of operator \"bob\"");
  // Two maintainers with the same name but different bytes.
  std::string other_bytes =
      absl::StrCat("maint-1:", Pub("maint-2").substr(Pub("maint-2").find(':') + 1));
  ExpectErrorAt(absl::StrCat(kGood, "[[maintainer]]\nkey = \"", other_bytes, "\"\n"), 18,
                "duplicate key name \"maint-1\"");
}

TEST(PolicyTest, RejectsOneKeyUnderTwoNames) {
  // Same public key bytes named twice would let one signer count for two operators.
  std::string renamed =
      absl::StrCat("bob-renamed:", Pub("alice-1").substr(Pub("alice-1").find(':') + 1));
  ExpectErrorAt(absl::StrCat(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]
[[operator]]
name = "bob"
builders = [")",
                             renamed, "\"]\n"),
                7, "is the same public key as the builder key of operator \"alice\"");
}

TEST(PolicyTest, RejectsDuplicateOperatorNames) {
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]

[[operator]]
name = "alice"
builders = ["{alice-2}"]
)",
                7, "duplicate operator name \"alice\", first at bad.toml:3:8");
}

TEST(PolicyTest, RejectsBadOperatorNames) {
  ExpectErrorAt("quorum = 1\n[[operator]]\nname = \"\"\nbuilders = [\"{alice-1}\"]\n", 3,
                "operator name is empty");
  ExpectErrorAt("quorum = 1\n[[operator]]\nname = \"alice ci\"\nbuilders = [\"{alice-1}\"]\n", 3,
                "contains a character outside");
}

TEST(PolicyTest, RejectsBadQuorum) {
  ExpectErrorAt(absl::StrReplaceAll(kGood, {{"quorum = 2", "quorum = 0"}}), 1, "quorum is 0");
  ExpectErrorAt(absl::StrReplaceAll(kGood, {{"quorum = 2", "quorum = -1"}}), 1, "quorum is -1");
  ExpectErrorAt(absl::StrReplaceAll(kGood, {{"quorum = 2", "quorum = 4"}}), 1,
                "quorum is 4 but the policy has only 3 operators");
  ExpectErrorAt(absl::StrCat("# comment\n\n",
                             absl::StrReplaceAll(kGood, {{"quorum = 2", "quorum = 99999999999"}})),
                3, "quorum is 99999999999");
  ExpectErrorAt("quorum = 1\n", 1, "only 0 operators");
  ExpectErrorAt(absl::StrReplaceAll(kGood, {{"quorum = 2\n", "\n"}}), 1,
                "the policy has no quorum");
}

TEST(PolicyTest, RejectsOperatorWithoutBuilders) {
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = ["{alice-1}"]

[[operator]]
name = "bob"
)",
                6, "operator \"bob\" has no builders");
  ExpectErrorAt(R"(quorum = 1
[[operator]]
name = "alice"
builders = []
)",
                4, "operator \"alice\" has no builders");
}

TEST(PolicyTest, RejectsTablesWithoutRequiredKeys) {
  ExpectErrorAt("quorum = 1\n[[operator]]\nbuilders = [\"{alice-1}\"]\n", 2,
                "[[operator]] has no name");
  ExpectErrorAt(absl::StrCat(kGood, "\n[[maintainer]]\n"), 18, "[[maintainer]] has no key");
}


// ---- issue 17: groups, structured quorums, rules, key lifecycles, the chain -----------------------

constexpr char kParent[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr int64_t kCutoff = 1796083200;  // 2026-12-01T00:00:00Z

Quorum Any(int k) {
  Quorum quorum;
  quorum.any = k;
  return quorum;
}
Quorum Of(int threshold, std::vector<std::string> members) {
  Quorum quorum;
  quorum.of = Threshold{threshold, std::move(members)};
  return quorum;
}
KeyLifecycle RetiredAt(int64_t cutoff) {
  KeyLifecycle lifecycle;
  lifecycle.state = KeyState::kRetired;
  lifecycle.retired_unix = cutoff;
  return lifecycle;
}
KeyLifecycle RevokedFor(std::string reason) {
  KeyLifecycle lifecycle;
  lifecycle.state = KeyState::kRevoked;
  lifecycle.revoked_reason = std::move(reason);
  return lifecycle;
}

// Every new form at once; line numbers of the variants below are relative to this layout.
constexpr char kExtended[] = R"(version = 3
parent = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
update_threshold = 2

[quorum]
threshold = 2
members = ["alice", "independent"]

[[group]]
name = "independent"
threshold = 1
members = ["carol", "bob"]

[[rule]]
names = ["openssl-*", "linux-*"]
quorum = 3

[[rule]]
names = ["glibc-*"]
quorum = {threshold = 2, members = ["bob", "carol"]}

[[operator]]
name = "alice"
builders = ["{alice-1}", {key = "{alice-2}", retired = "2026-12-01T00:00:00Z"}]

[[operator]]
name = "bob"
builders = ["{bob-1}"]

[[operator]]
name = "carol"
builders = [{key = "{carol-1}", revoked = "compromised"}]

[[maintainer]]
key = "{maint-1}"

[[maintainer]]
key = "{maint-2}"
)";

Policy ParseOrDie(std::string_view text) {
  absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(text), "p.toml");
  EXPECT_TRUE(policy.ok()) << policy.status() << "\n" << text;
  if (!policy.ok()) std::abort();
  return *std::move(policy);
}

TEST(PolicyExtendedTest, ParsesEveryNewForm) {
  const Policy policy = ParseOrDie(kExtended);
  EXPECT_EQ(policy.version(), 3);
  EXPECT_EQ(policy.parent(), kParent);
  EXPECT_EQ(policy.update_threshold(), 2);
  EXPECT_EQ(policy.quorum(), 0);  // a threshold table has no single k
  EXPECT_EQ(policy.default_quorum(),
            Of(2, {"alice", "independent"}));

  ASSERT_EQ(policy.groups().size(), 1u);
  EXPECT_EQ(policy.groups()[0].name, "independent");
  EXPECT_EQ(policy.groups()[0].threshold, (Threshold{.threshold = 1, .members = {"carol", "bob"}}));  // as written
  ASSERT_NE(policy.FindGroup("independent"), nullptr);
  EXPECT_EQ(policy.FindGroup("independent"), &policy.groups()[0]);
  EXPECT_EQ(policy.FindGroup("alice"), nullptr);  // an operator is not a group

  ASSERT_EQ(policy.rules().size(), 2u);
  EXPECT_THAT(policy.rules()[0].names, ElementsAre("openssl-*", "linux-*"));
  EXPECT_EQ(policy.rules()[0].quorum, Any(3));
  EXPECT_THAT(policy.rules()[1].names, ElementsAre("glibc-*"));
  EXPECT_EQ(policy.rules()[1].quorum, Of(2, {"bob", "carol"}));

  // Retired and revoked keys stay the operator's keys (their attestations stay stored, as evidence).
  EXPECT_EQ(*policy.OperatorOf("alice-2"), "alice");
  EXPECT_EQ(*policy.OperatorOf("carol-1"), "carol");
  EXPECT_EQ(policy.operators()[0].builders.size(), 2u);
  EXPECT_EQ(policy.Lifecycle("alice-1"), KeyLifecycle{});
  EXPECT_EQ(policy.Lifecycle("alice-2"), RetiredAt(kCutoff));
  EXPECT_EQ(policy.Lifecycle("carol-1"), RevokedFor("compromised"));
  EXPECT_EQ(policy.Lifecycle("nobody").state, KeyState::kActive);
  EXPECT_EQ(policy.maintainers().size(), 2u);
}

TEST(PolicyExtendedTest, QuorumFormsAreEquivalent) {
  const std::string operators(std::string_view(kGood).substr(std::string_view(kGood).find("\n[[operator]]")));
  const std::vector<std::string> heads = {
      "[quorum]\nthreshold = 2\nmembers = [\"alice\", \"bob\", \"carol\"]\n",
      "quorum = {threshold = 2, members = [\"alice\", \"bob\", \"carol\"]}\n",
      "quorum = { members = [\"carol\", \"alice\", \"bob\"], threshold = 2 }\n",
  };
  const Policy first = ParseOrDie(heads[0] + operators);
  EXPECT_EQ(first.quorum(), 0);
  EXPECT_EQ(first.default_quorum().of->threshold, 2);
  for (const std::string& head : heads) {
    const Policy policy = ParseOrDie(head + operators);
    EXPECT_EQ(policy.Hash(), first.Hash()) << head;
  }
  // "2 of all three" is not the flat "any 2": another policy, another hash.
  EXPECT_NE(ParseOrDie(kGood).Hash(), first.Hash());
  EXPECT_EQ(ParseOrDie(kGood).quorum(), 2);
}

// The canonical text of every new line, pinned.
TEST(PolicyExtendedTest, CanonicalTextGolden) {
  const Policy policy = ParseOrDie(kExtended);
  std::vector<std::string> alice = {Pub("alice-1"), Pub("alice-2")};
  std::sort(alice.begin(), alice.end());
  std::vector<std::string> maintainers = {Pub("maint-1"), Pub("maint-2")};
  std::sort(maintainers.begin(), maintainers.end());
  EXPECT_EQ(policy.CanonicalText(),
            Cat("attest-policy/v1\n"
                "version 3\n"
                "parent ", kParent, "\n"
                "update-threshold 2\n"
                "quorum-threshold 2 alice independent\n"
                "group independent 1 bob carol\n"
                "rule 1 any:3 linux-* openssl-*\n"
                "rule 2 threshold:2:bob,carol glibc-*\n"
                "operator alice\n"
                "builder ", alice[0], "\n"
                "builder ", alice[1], "\n"
                "operator bob\n"
                "builder ", Pub("bob-1"), "\n"
                "operator carol\n"
                "builder ", Pub("carol-1"), "\n"
                "maintainer ", maintainers[0], "\n"
                "maintainer ", maintainers[1], "\n"
                "retired alice-2 1796083200\n"
                "revoked carol-1 compromised\n"));
}

TEST(PolicyExtendedTest, DefaultsWrittenOutKeepTheFlatHash) {
  // version = 1 and update_threshold = 1 are the defaults: no line, the hash of before.
  const Policy base = ParseOrDie(kGood);
  const Policy explicit_defaults = ParseOrDie(Cat("version = 1\nupdate_threshold = 1\n", kGood));
  EXPECT_EQ(explicit_defaults.CanonicalText(), base.CanonicalText());
  EXPECT_EQ(explicit_defaults.Hash(), base.Hash());
  // Create's flat form and a PolicySpec with the same content agree.
  absl::StatusOr<Policy> flat = Policy::Create(2, base.operators(), base.maintainers());
  absl::StatusOr<Policy> spec = Policy::Create(
      PolicySpec{.quorum = Any(2), .operators = base.operators(), .maintainers = base.maintainers()});
  ASSERT_TRUE(flat.ok() && spec.ok());
  EXPECT_EQ(flat->Hash(), base.Hash());
  EXPECT_EQ(spec->Hash(), base.Hash());
  EXPECT_EQ(spec->version(), 1);
  EXPECT_EQ(spec->update_threshold(), 1);
  EXPECT_TRUE(spec->parent().empty());
  EXPECT_TRUE(spec->groups().empty());
  EXPECT_TRUE(spec->rules().empty());
}

TEST(PolicyExtendedTest, HashIgnoresLayoutCommentsAndSpelling) {
  const Policy base = ParseOrDie(kExtended);
  // Everything the hash ignores changed at once: comments, the order of groups, members, globs within
  // a rule, operators, builder entries and maintainers; the quorum table inline; the cut-off unquoted.
  const Policy other = ParseOrDie(R"(# a successor
update_threshold = 2   # two maintainers sign the next one
parent = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
version = 3
quorum = {members = ["independent", "alice"], threshold = 2}

[[rule]]
names = ["linux-*", "openssl-*"]
quorum = 3

[[rule]]
quorum = {threshold = 2, members = ["carol", "bob"]}
names = ["glibc-*"]

[[operator]]
name = "carol"
builders = [{revoked = "compromised", key = "{carol-1}"}]

[[group]]
members = ["bob", "carol"]
name = "independent"
threshold = 1

[[maintainer]]
key = "{maint-2}"

[[operator]]
name = "bob"
builders = ["{bob-1}"]

[[operator]]
name = "alice"
builders = [{key = "{alice-2}", retired = 2026-12-01T00:00:00Z}, "{alice-1}"]

[[maintainer]]
key = "{maint-1}"
)");
  EXPECT_EQ(other.CanonicalText(), base.CanonicalText());
  EXPECT_EQ(other.Hash(), base.Hash());
}

TEST(PolicyExtendedTest, HashChangesWithEveryNewFact) {
  const Policy base = ParseOrDie(kExtended);
  const std::vector<std::pair<std::string, std::string>> changes = {
      {"version = 3", "version = 4"},
      {"0123456789abcdef\"", "0123456789abcdee\""},  // another parent
      {"update_threshold = 2", "update_threshold = 1"},
      {"threshold = 2\nmembers = [\"alice\", \"independent\"]", "threshold = 1\nmembers = [\"alice\", \"independent\"]"},
      {"members = [\"carol\", \"bob\"]", "members = [\"carol\", \"bob\", \"alice\"]"},
      {"name = \"independent\"\nthreshold = 1", "name = \"independent\"\nthreshold = 2"},
      {"names = [\"openssl-*\", \"linux-*\"]", "names = [\"openssl-*\"]"},
      {"quorum = 3", "quorum = 2"},
      {"quorum = {threshold = 2, members = [\"bob\", \"carol\"]}", "quorum = 2"},
      {"retired = \"2026-12-01T00:00:00Z\"", "retired = \"2026-12-01T00:00:01Z\""},
      {"{key = \"{alice-2}\", retired = \"2026-12-01T00:00:00Z\"}", "\"{alice-2}\""},
      {"{key = \"{alice-2}\", retired = \"2026-12-01T00:00:00Z\"}", "{key = \"{alice-2}\", revoked = \"lost\"}"},
      {"revoked = \"compromised\"", "revoked = \"misbehaving\""},
      {"[[maintainer]]\nkey = \"{maint-2}\"", "[[maintainer]]\nkey = \"{maint-2}\"\nretired = \"2030-01-01T00:00:00Z\""},
      // Rule order breaks ties between equally specific rules, so it is part of the policy.
      {"[[rule]]\nnames = [\"openssl-*\", \"linux-*\"]\nquorum = 3\n\n[[rule]]\nnames = [\"glibc-*\"]\n"
       "quorum = {threshold = 2, members = [\"bob\", \"carol\"]}",
       "[[rule]]\nnames = [\"glibc-*\"]\nquorum = {threshold = 2, members = [\"bob\", \"carol\"]}\n\n[[rule]]\n"
       "names = [\"openssl-*\", \"linux-*\"]\nquorum = 3"},
  };
  std::set<std::string> hashes = {base.Hash()};
  for (const auto& [from, to] : changes) {
    ASSERT_THAT(std::string(kExtended), HasSubstr(from));
    const Policy other = ParseOrDie(absl::StrReplaceAll(kExtended, {{from, to}}));
    EXPECT_NE(other.Hash(), base.Hash()) << from << " -> " << to;
    EXPECT_TRUE(hashes.insert(other.Hash()).second) << from << " -> " << to;
  }
}

TEST(PolicyExtendedTest, CreateFromASpecMatchesTheToml) {
  const Policy parsed = ParseOrDie(kExtended);
  PolicySpec spec{
      .quorum = Of(2, {"independent", "alice"}),
      .operators = {{"carol", {TestKey("carol-1").public_key()}},
                    {"bob", {TestKey("bob-1").public_key()}},
                    {"alice", {TestKey("alice-2").public_key(), TestKey("alice-1").public_key()}}},
      .maintainers = {TestKey("maint-2").public_key(), TestKey("maint-1").public_key()},
      .groups = {{.name = "independent", .threshold = {.threshold = 1, .members = {"bob", "carol"}}}},
      .rules = {{.names = {"linux-*", "openssl-*"}, .quorum = Any(3)},
                {.names = {"glibc-*"}, .quorum = Of(2, {"carol", "bob"})}},
      .lifecycles = {{"alice-2", RetiredAt(kCutoff)},
                     {"carol-1", RevokedFor("compromised")},
                     // An explicit "active" entry says nothing: no line.
                     {"bob-1", KeyLifecycle{}}},
      .parent = kParent,
      .version = 3,
      .update_threshold = 2,
  };
  absl::StatusOr<Policy> created = Policy::Create(spec);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->CanonicalText(), parsed.CanonicalText());
  EXPECT_EQ(created->Hash(), parsed.Hash());
}

TEST(PolicyExtendedTest, GroupsAreSortedByName) {
  PublicKey a = TestKey("a").public_key();
  PublicKey b = TestKey("b").public_key();
  absl::StatusOr<Policy> policy = Policy::Create(PolicySpec{
      .quorum = Of(1, {"zeta", "alpha"}),
      .operators = {{"x", {a}}, {"y", {b}}},
      .maintainers = {},
      .groups = {{.name = "zeta", .threshold = {.threshold = 1, .members = {"alpha", "y"}}},
                 {.name = "alpha", .threshold = {.threshold = 1, .members = {"x"}}}},
  });
  ASSERT_TRUE(policy.ok()) << policy.status();
  ASSERT_EQ(policy->groups().size(), 2u);
  EXPECT_EQ(policy->groups()[0].name, "alpha");
  EXPECT_EQ(policy->groups()[1].name, "zeta");
  ASSERT_NE(policy->FindGroup("zeta"), nullptr);
  EXPECT_THAT(policy->FindGroup("zeta")->threshold.members, ElementsAre("alpha", "y"));
  EXPECT_EQ(policy->FindGroup("alpha")->name, "alpha");
  EXPECT_EQ(policy->FindGroup("x"), nullptr);
  EXPECT_EQ(policy->FindGroup(""), nullptr);
  EXPECT_EQ(policy->FindGroup("zz"), nullptr);
  // Nested groups render in order of name, whatever the order given.
  EXPECT_THAT(policy->CanonicalText(),
              HasSubstr("quorum-threshold 1 alpha zeta\ngroup alpha 1 x\ngroup zeta 1 alpha y\n"));
}

// ---- key lifecycle ------------------------------------------------------------------------------

TEST(PolicyExtendedTest, KeyCountsByLifecycleAndReceiptTime) {
  PublicKey active = TestKey("active").public_key();
  PublicKey retired = TestKey("retired").public_key();
  PublicKey revoked = TestKey("revoked").public_key();
  PublicKey maint_retired = TestKey("maint-retired").public_key();
  PublicKey maint_revoked = TestKey("maint-revoked").public_key();
  PublicKey maint = TestKey("maint").public_key();
  absl::StatusOr<Policy> policy = Policy::Create(PolicySpec{
      .quorum = Any(1),
      .operators = {{"x", {active, retired, revoked}}},
      .maintainers = {maint, maint_retired, maint_revoked},
      .lifecycles = {{"retired", RetiredAt(kCutoff)},
                     {"revoked", RevokedFor("lost")},
                     {"maint-retired", RetiredAt(100)},
                     {"maint-revoked", RevokedFor("unspecified")}},
  });
  ASSERT_TRUE(policy.ok()) << policy.status();
  struct Case {
    std::string key;
    int64_t received;
    bool counts;
  };
  const std::vector<Case> cases = {
      // Active: whenever, known or not.
      {"active", kCutoff, true},
      {"active", 0, true},
      {"active", -1, true},
      {"active", INT64_MAX, true},
      // Retired: received strictly before the cut-off; an unknown time (0 or less) never counts.
      {"retired", 1, true},
      {"retired", kCutoff - 1, true},
      {"retired", kCutoff, false},
      {"retired", kCutoff + 1, false},
      {"retired", 0, false},
      {"retired", -7, false},
      // Revoked: never, past ones included.
      {"revoked", 1, false},
      {"revoked", 0, false},
      {"revoked", kCutoff, false},
      // Maintainers have the same lifecycle.
      {"maint", 5, true},
      {"maint-retired", 99, true},
      {"maint-retired", 100, false},
      {"maint-retired", 0, false},
      {"maint-revoked", 1, false},
      // A key the policy does not list never counts.
      {"nobody", 1, false},
      {"", 1, false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(policy->KeyCounts(c.key, c.received), c.counts) << c.key << " at " << c.received;
  }
  EXPECT_EQ(policy->Lifecycle("maint-retired"), RetiredAt(100));
  EXPECT_EQ(policy->Lifecycle("revoked").revoked_reason, "lost");
  EXPECT_EQ(policy->Lifecycle("active").state, KeyState::kActive);
  EXPECT_THAT(policy->CanonicalText(),
              HasSubstr("retired maint-retired 100\nretired retired 1796083200\nrevoked maint-revoked unspecified\n"
                        "revoked revoked lost\n"));
}

TEST(PolicyExtendedTest, KeyStateNames) {
  EXPECT_EQ(KeyStateName(KeyState::kActive), "active");
  EXPECT_EQ(KeyStateName(KeyState::kRetired), "retired");
  EXPECT_EQ(KeyStateName(KeyState::kRevoked), "revoked");
}

// Line 4 of this policy holds a retired builder entry whose time is `time` (written as is).
std::string WithRetired(std::string_view time) {
  return Cat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"{alice-1}\", {key = \"{alice-2}\", retired = ",
             time, "}]\n");
}

TEST(PolicyExtendedTest, ParsesRetirementTimes) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"\"2026-12-01T00:00:00Z\"", kCutoff},
      {"2026-12-01T00:00:00Z", kCutoff},       // a TOML offset date-time in UTC
      {"2026-12-01 00:00:00Z", kCutoff},       // TOML allows a space for the T
      {"2026-12-01T01:00:00+00:00", kCutoff + 3600},
      {"\"2024-02-29T12:34:56Z\"", 1709210096},  // a leap day
      {"\"2000-02-29T00:00:01Z\"", 951782401},
      {"\"1970-01-01T00:00:00Z\"", 0},
      {"\"9999-12-31T23:59:59Z\"", 253402300799},
  };
  for (const auto& [time, unix] : cases) {
    absl::StatusOr<Policy> policy = Policy::ParseToml(WithKeys(WithRetired(time)), "p.toml");
    ASSERT_TRUE(policy.ok()) << time << ": " << policy.status();
    EXPECT_EQ(policy->Lifecycle("alice-2"), RetiredAt(unix)) << time;
  }
}

TEST(PolicyExtendedTest, RejectsBadRetirementTimes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"\"2026-12-01T00:00:00\"", "is not in UTC (it does not end in Z)"},
      {"\"2026-12-01T00:00:00+01:00\"", "is not in UTC"},
      {"\"2026-12-01T00:00:00.5Z\"", "has fractional seconds"},
      {"\"2026-13-01T00:00:00Z\"", "names no real time"},
      {"\"2026-02-29T00:00:00Z\"", "names no real time"},  // 2026 is no leap year
      {"\"2026-12-01T24:00:00Z\"", "names no real time"},
      {"\"2026-12-01T00:00:60Z\"", "names no real time"},  // no leap seconds
      {"\"2026-12-0xT00:00:00Z\"", "names no real time"},
      {"\"1969-12-31T23:59:59Z\"", "is before 1970"},
      {"\"2026-12-01\"", "is not of the form YYYY-MM-DDTHH:MM:SSZ"},
      {"\"2026-12-01t00:00:00z\"", "is not of the form YYYY-MM-DDTHH:MM:SSZ"},
      {"\"\"", "is not of the form YYYY-MM-DDTHH:MM:SSZ"},
      {"\"next tuesday\"", "is not of the form YYYY-MM-DDTHH:MM:SSZ"},
      {"2026-12-01T00:00:00", "is a local date-time, without a time zone"},
      {"2026-12-01T00:00:00+01:00", "has a UTC offset of 60 minutes"},
      {"2026-12-01T00:00:00.5Z", "has fractional seconds"},
      {"1969-12-31T23:59:59Z", "is before 1970"},
      {"2026-12-01", "is a date, not a date-time"},
      {"00:00:00", "is a time, not a date-time"},
      {"1796083200", "is an integer, not a date-time"},
  };
  for (const auto& [time, problem] : cases) {
    SCOPED_TRACE(time);
    ExpectErrorAt(WithRetired(time), 4, Cat("the retirement time of key \"alice-2\""));
    ExpectErrorAt(WithRetired(time), 4, problem);
  }
}

TEST(PolicyExtendedTest, RejectsBadLifecycleEntries) {
  struct Case {
    std::string entry;  // the second builder entry, on line 4
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"{key = \"{alice-2}\", revoked = \"stolen\"}",
       "key \"alice-2\" is revoked for 'stolen', which is not a revocation reason (use one of compromised, lost, "
       "misbehaving, unspecified)"},
      {"{key = \"{alice-2}\", revoked = \"Compromised\"}", "which is not a revocation reason"},
      {"{key = \"{alice-2}\", revoked = \"\"}", "which is not a revocation reason"},
      {"{key = \"{alice-2}\", revoked = true}", "the revocation reason of key \"alice-2\" is a boolean, not a string"},
      {"{key = \"{alice-2}\", retired = \"2026-12-01T00:00:00Z\", revoked = \"lost\"}",
       "key \"alice-2\" is both retired and revoked (keep one"},
      {"{key = \"{alice-2}\", expires = \"2026-12-01T00:00:00Z\"}",
       "unknown key 'expires' in a builder entry of operator \"alice\""},
      {"{retired = \"2026-12-01T00:00:00Z\"}", "builder entry of operator \"alice\" has no key"},
      {"{key = 7}", "builder key of operator \"alice\" is an integer, not a string"},
      {"{key = \"alice-2\"}", "is not a Nix public key"},
      {"{key = \"{alice-1}\", revoked = \"lost\"}", "duplicate key name \"alice-1\""},
      {"[\"{alice-2}\"]", "builder key of operator \"alice\" is an array, not a string or a table"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.entry);
    ExpectErrorAt(Cat("quorum = 1\n[[operator]]\nname = \"alice\"\nbuilders = [\"{alice-1}\", ", c.entry, "]\n"), 4,
                  c.problem);
  }
  // A maintainer's lifecycle is written in its table.
  ExpectErrorAt(Cat(kGood, "revoked = \"forgot\"\n"), 17, "key \"maint-1\" is revoked for 'forgot'");
  ExpectErrorAt(Cat(kGood, "retired = \"soon\"\n"), 17, "the retirement time of key \"maint-1\"");
  ExpectErrorAt(Cat(kGood, "weight = 1\n"), 17, "unknown key 'weight' in [[maintainer]]");
  const Policy policy = ParseOrDie(Cat(kGood, "retired = \"2026-12-01T00:00:00Z\"\n"));
  EXPECT_EQ(policy.Lifecycle("maint-1").state, KeyState::kRetired);
  EXPECT_THAT(policy.CanonicalText(), ::testing::EndsWith("\nretired maint-1 1796083200\n"));
  // A key in a table without a lifecycle is just an active key: the same policy as the string form.
  EXPECT_EQ(ParseOrDie(absl::StrReplaceAll(kGood, {{"[\"{bob-1}\"]", "[{key = \"{bob-1}\"}]"}})).Hash(),
            ParseOrDie(kGood).Hash());
}

// ---- malformed policies, each reported at its line ---------------------------------------------

// kGood's operators and maintainer, placed below whatever a case writes above them. With a head of
// H lines, the operators' lines are H+2 (alice's [[operator]]), H+3 (its name), ...
constexpr char kOperators[] = R"(
[[operator]]
name = "alice"
builders = ["{alice-1}", "{alice-2}"]

[[operator]]
name = "bob"
builders = ["{bob-1}"]

[[operator]]
name = "carol"
builders = ["{carol-1}"]

[[maintainer]]
key = "{maint-1}"
)";

TEST(PolicyExtendedTest, RejectsMalformedPolicies) {
  struct Case {
    std::string head;
    int line;
    std::string problem;
  };
  const std::vector<Case> cases = {
      // Cycles, named.
      {"quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"g\"]\n", 3,
       "groups form a cycle: g -> g (a group may not contain itself through other groups"},
      {"quorum = 1\n"
       "[[group]]\nname = \"a\"\nthreshold = 1\nmembers = [\"alice\", \"b\"]\n"
       "[[group]]\nname = \"b\"\nthreshold = 1\nmembers = [\"c\"]\n"
       "[[group]]\nname = \"c\"\nthreshold = 1\nmembers = [\"bob\", \"a\"]\n",
       3, "groups form a cycle: a -> b -> c -> a"},
      {"quorum = 1\n"
       "[[group]]\nname = \"top\"\nthreshold = 1\nmembers = [\"x\"]\n"
       "[[group]]\nname = \"x\"\nthreshold = 1\nmembers = [\"y\"]\n"
       "[[group]]\nname = \"y\"\nthreshold = 1\nmembers = [\"x\"]\n",
       7, "groups form a cycle: x -> y -> x"},
      // Unknown members, at the member.
      {"[quorum]\nthreshold = 1\nmembers = [\"alice\", \"dave\"]\n", 3,
       "bad.toml:3:21: quorum lists 'dave', which is neither an operator nor a group of the policy"},
      {"quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"Alice\"]\n", 5,
       "group \"g\" lists 'Alice', which is neither an operator nor a group"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = {threshold = 1, members = [\"ghost\"]}\n", 4,
       "rule 1: quorum lists 'ghost', which is neither"},
      // Duplicate names: groups share the operators' namespace.
      {"quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"bob\"]\n"
       "[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"carol\"]\n",
       7, "duplicate group name \"g\", first at bad.toml:3:8"},
      {"quorum = 1\n[[group]]\nname = \"alice\"\nthreshold = 1\nmembers = [\"bob\"]\n", 8,
       "the operator name \"alice\" is also the name of a group, first at bad.toml:3:8"},
      {"quorum = 1\n[[group]]\nname = \"a b\"\nthreshold = 1\nmembers = [\"bob\"]\n", 3,
       "group name 'a b' contains a character outside"},
      {"quorum = 1\n[[group]]\nname = \"\"\nthreshold = 1\nmembers = [\"bob\"]\n", 3, "group name is empty"},
      {"quorum = 1\n[[group]]\nthreshold = 1\nmembers = [\"bob\"]\n", 2, "[[group]] has no name"},
      {"quorum = 1\n[[group]]\nname = 5\n", 3, "group name is an integer, not a string"},
      // Impossible or malformed thresholds.
      {"quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 3\nmembers = [\"bob\", \"carol\"]\n", 4,
       "group \"g\" has threshold 3 but only 2 members (it could never be satisfied"},
      {"[quorum]\nthreshold = 4\nmembers = [\"alice\", \"bob\", \"carol\"]\n", 2,
       "quorum has threshold 4 but only 3 members"},
      {"[quorum]\nthreshold = 0\nmembers = [\"alice\"]\n", 2, "quorum has threshold 0 (it is how many"},
      {"[quorum]\nthreshold = -2\nmembers = [\"alice\"]\n", 2, "quorum has threshold -2"},
      {"[quorum]\nthreshold = 1\nmembers = []\n", 3, "quorum has no members"},
      {"[quorum]\nthreshold = 1\nmembers = [\"bob\", \"alice\", \"bob\"]\n", 3,
       "bad.toml:3:28: quorum lists 'bob' twice, first at bad.toml:3:12"},
      {"[quorum]\nmembers = [\"alice\"]\n", 1, "quorum has no threshold"},
      {"[quorum]\nthreshold = 1\n", 1, "quorum has no members"},
      {"[quorum]\nthreshold = \"1\"\nmembers = [\"alice\"]\n", 2, "quorum threshold is a string, not an integer"},
      {"[quorum]\nthreshold = 1\nmembers = \"alice\"\n", 3, "quorum members is a string, not an array"},
      {"[quorum]\nthreshold = 1\nmembers = [\"alice\", 2]\n", 3, "a member of quorum is an integer, not a string"},
      {"[quorum]\nthreshold = 1\nmembers = [\"alice\"]\nweight = 2\n", 4, "unknown key 'weight' in [quorum]"},
      {"quorum = [2]\n", 1, "quorum is an array, not an integer or a table"},
      {"quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"bob\"]\nquorum = 2\n", 6,
       "unknown key 'quorum' in [[group]]"},
      {"quorum = 1\n[group]\nname = \"g\"\n", 2, "\"group\" is a table, not an array of tables"},
      // Rules.
      {"quorum = 1\n[[rule]]\nnames = [\"openssl-*\"]\n", 2,
       "rule 1 has no quorum (add quorum = K for any K operators, or quorum = {threshold = T, members = [...]})"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = 1\n[[rule]]\nquorum = 2\n", 5, "rule 2 has no names"},
      {"quorum = 1\n[[rule]]\nnames = []\nquorum = 2\n", 3, "rule 1 has no names"},
      {"quorum = 1\n[[rule]]\nnames = \"openssl-*\"\nquorum = 2\n", 3, "rule 1 names is a string, not an array"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\", 3]\nquorum = 2\n", 3, "a name of rule 1 is an integer, not a string"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\", \"\"]\nquorum = 2\n", 3,
       "bad.toml:3:16: rule 1 has an empty name pattern"},
      {"quorum = 1\n[[rule]]\nnames = [\"open ssl*\"]\nquorum = 2\n", 3,
       "rule 1 has the name pattern 'open ssl*', which contains white space"},
      {"quorum = 1\n[[rule]]\nnames = [\"caf\xC3\xA9-*\"]\nquorum = 2\n", 3, "not printable ASCII"},
      {Cat("quorum = 1\n[[rule]]\nnames = [\"", std::string(256, 'a'), "\"]\nquorum = 2\n"), 3,
       "rule 1 has a name pattern 256 bytes long (use at most 255"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = 4\n", 4,
       "rule 1: quorum is 4 but the policy has only 3 operators"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = 0\n", 4, "rule 1: quorum is 0"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = {threshold = 3, members = [\"alice\", \"bob\"]}\n", 4,
       "rule 1: quorum has threshold 3 but only 2 members"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = \"3\"\n", 4,
       "rule 1: quorum is a string, not an integer or a table"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = {threshold = 1, members = [\"bob\"], any = 2}\n", 4,
       "unknown key 'any' in the quorum of rule 1"},
      {"quorum = 1\n[[rule]]\nnames = [\"a*\"]\nquorum = 1\npriority = 2\n", 5, "unknown key 'priority' in [[rule]]"},
      // The chain settings.
      {"version = 0\nquorum = 1\n", 1, "version is 0 (versions start at 1"},
      {"version = \"2\"\nquorum = 1\n", 1, "version is a string, not an integer"},
      {"parent = \"sha256:abc\"\nversion = 2\nquorum = 1\n", 1,
       "parent is 'sha256:abc', not \"sha256:\" and 64 lowercase hex digits"},
      {Cat("version = 2\nparent = \"sha256:", std::string(64, 'A'), "\"\nquorum = 1\n"), 2, "64 lowercase hex digits"},
      {Cat("version = 2\nparent = \"", std::string(kParent).substr(7), "\"\nquorum = 1\n"), 2, "64 lowercase hex digits"},
      {"version = 2\nparent = 5\nquorum = 1\n", 2, "parent is an integer, not a string"},
      {Cat("parent = \"", kParent, "\"\nquorum = 1\n"), 1, "the policy has a parent but no version"},
      {Cat("version = 1\nparent = \"", kParent, "\"\nquorum = 1\n"), 1,
       "version is 1 but the policy has a parent (a successor's version is its parent's + 1"},
      {"update_threshold = 0\nquorum = 1\n", 1, "update_threshold is 0 (it is how many maintainers"},
      {"update_threshold = 2\nquorum = 1\n", 1,
       "update_threshold is 2 but the policy has only 1 maintainer that is not revoked (the policy could never be "
       "updated"},
      {"update_threshold = 2.0\nquorum = 1\n", 1, "update_threshold is a floating-point number, not an integer"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.head);
    ExpectErrorAt(Cat(c.head, kOperators), c.line, c.problem);
  }
}

TEST(PolicyExtendedTest, RejectsMalformedPoliciesBelowTheOperators) {
  // A key in two operators, even retired in one of them.
  ExpectErrorAt(Cat(kGood, "[[operator]]\nname = \"dave\"\nbuilders = [{key = \"{bob-1}\", retired = "
                           "\"2026-12-01T00:00:00Z\"}]\n"),
                19, "duplicate key name \"bob-1\"");
  // Every maintainer revoked: no successor could be approved.
  ExpectErrorAt(Cat(kGood, "revoked = \"compromised\"\n"), 17, "every maintainer key is revoked");
  // One of two revoked: update_threshold counts the others only.
  ExpectErrorAt(Cat("update_threshold = 2\n", kGood, "[[maintainer]]\nkey = \"{maint-2}\"\nrevoked = \"lost\"\n"),
                1, "update_threshold is 2 but the policy has only 1 maintainer that is not revoked");
  // ...and counts retired ones.
  EXPECT_EQ(ParseOrDie(Cat("update_threshold = 2\n", kGood,
                           "[[maintainer]]\nkey = \"{maint-2}\"\nretired = \"2026-12-01T00:00:00Z\"\n"))
                .update_threshold(),
            2);
  // Without maintainers the policy cannot be updated, so any threshold is accepted.
  EXPECT_EQ(ParseOrDie("update_threshold = 5\nquorum = 1\n[[operator]]\nname = \"a\"\nbuilders = [\"{alice-1}\"]\n")
                .update_threshold(),
            5);
  // An operator whose only key is revoked still has a builder key (it counts for nothing until it has
  // a new one, but its past attestations keep their owner).
  EXPECT_EQ(ParseOrDie(absl::StrReplaceAll(kGood, {{"[\"{carol-1}\"]", "[{key = \"{carol-1}\", revoked = \"lost\"}]"}}))
                .operators()
                .size(),
            3u);
  // The first problem in the file is the one reported, whichever kind it is.
  ExpectErrorAt(Cat("quorum = 1\n[[group]]\nname = \"g\"\nthreshold = 1\nmembers = [\"ghost\"]\n",
                    std::string_view(kGood).substr(11),
                    "[[rule]]\nnames = [\"\"]\nquorum = 1\n"),
                5, "lists 'ghost'");
}

TEST(PolicyExtendedTest, CreateRejectsMalformedSpecs) {
  PublicKey a = TestKey("a").public_key();
  PublicKey b = TestKey("b").public_key();
  PublicKey m = TestKey("m").public_key();
  // Two operators x (key a) and y (key b), maintainer m; each case changes one thing.
  auto base = [&] {
    return PolicySpec{.quorum = Any(1), .operators = {{"x", {a}}, {"y", {b}}}, .maintainers = {m}};
  };
  struct Case {
    std::string label;
    std::function<void(PolicySpec&)> change;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"no quorum", [](PolicySpec& s) { s.quorum = {}; }, "quorum is 0"},
      {"both forms", [](PolicySpec& s) { s.quorum = {.any = 1, .of = Threshold{1, {"x"}}}; },
       "quorum is both any 1 operators and a threshold"},
      {"flat too big", [](PolicySpec& s) { s.quorum = Any(3); }, "quorum is 3 but the policy has only 2 operators"},
      {"threshold too big", [](PolicySpec& s) { s.quorum = Of(3, {"x", "y"}); },
       "quorum has threshold 3 but only 2 members"},
      {"repeated member", [](PolicySpec& s) { s.quorum = Of(1, {"x", "x"}); }, "quorum lists 'x' twice"},
      {"unknown member", [](PolicySpec& s) { s.quorum = Of(1, {"x", "z"}); },
       "quorum lists 'z', which is neither an operator nor a group"},
      {"cycle",
       [](PolicySpec& s) {
         s.groups = {{"g1", {1, {"x", "g2"}}}, {"g2", {1, {"g1"}}}};
       },
       "groups form a cycle: g1 -> g2 -> g1"},
      {"group named like an operator", [](PolicySpec& s) { s.groups = {{"x", {1, {"y"}}}}; },
       "the group name \"x\" is also the name of an operator"},
      {"two groups of one name", [](PolicySpec& s) { s.groups = {{"g", {1, {"y"}}}, {"g", {1, {"x"}}}}; },
       "duplicate group name \"g\""},
      {"group without members", [](PolicySpec& s) { s.groups = {{"g", {1, {}}}}; }, "group \"g\" has no members"},
      {"rule without names", [](PolicySpec& s) { s.rules = {{.names = {}, .quorum = Any(1)}}; },
       "rule 1 has no names"},
      {"rule without quorum", [](PolicySpec& s) { s.rules = {{.names = {"a*"}, .quorum = {}}}; },
       "rule 1 has no quorum"},
      {"rule with a bad glob",
       [](PolicySpec& s) {
         s.rules = {{.names = {"a*"}, .quorum = Any(1)}, {.names = {"a\tb"}, .quorum = Any(1)}};
       },
       "rule 2 has the name pattern 'a\\tb', which contains white space"},
      {"rule quorum too big", [](PolicySpec& s) { s.rules = {{.names = {"a*"}, .quorum = Any(5)}}; },
       "rule 1: quorum is 5 but the policy has only 2 operators"},
      {"lifecycle of an unknown key",
       [](PolicySpec& s) { s.lifecycles = {{"ghost", RevokedFor("lost")}}; },
       "a lifecycle is given for key \"ghost\", which the policy does not list"},
      {"bad reason", [](PolicySpec& s) { s.lifecycles = {{"a", RevokedFor("x")}}; },
       "key \"a\" is revoked for 'x', which is not a revocation reason"},
      {"negative cut-off",
       [](PolicySpec& s) { s.lifecycles = {{"a", RetiredAt(-1)}}; },
       "key \"a\" is retired at -1, before 1970"},
      {"retired with a reason",
       [](PolicySpec& s) {
         s.lifecycles = {{"a", {.state = KeyState::kRetired, .retired_unix = 5, .revoked_reason = "lost"}}};
       },
       "is retired but has a revocation reason"},
      {"revoked with a cut-off",
       [](PolicySpec& s) {
         s.lifecycles = {{"m", {.state = KeyState::kRevoked, .retired_unix = 5, .revoked_reason = "lost"}}};
       },
       "is revoked but has a retirement cut-off"},
      {"bad parent", [](PolicySpec& s) { s.parent = "sha256:00"; s.version = 2; }, "parent is 'sha256:00'"},
      {"version 0", [](PolicySpec& s) { s.version = 0; }, "version is 0"},
      {"parent at version 1", [](PolicySpec& s) { s.parent = kParent; }, "version is 1 but the policy has a parent"},
      {"update threshold 0", [](PolicySpec& s) { s.update_threshold = 0; }, "update_threshold is 0"},
      {"update threshold above maintainers", [](PolicySpec& s) { s.update_threshold = 2; },
       "update_threshold is 2 but the policy has only 1 maintainer that is not revoked"},
      {"maintainers all revoked",
       [](PolicySpec& s) { s.lifecycles = {{"m", RevokedFor("lost")}}; },
       "every maintainer key is revoked"},
  };
  for (const Case& c : cases) {
    PolicySpec spec = base();
    c.change(spec);
    absl::StatusOr<Policy> policy = Policy::Create(std::move(spec));
    ASSERT_FALSE(policy.ok()) << c.label;
    EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << c.label;
    EXPECT_THAT(Message(policy.status()), HasSubstr(c.expected)) << c.label;
    EXPECT_THAT(Message(policy.status()), ::testing::EndsWith(")")) << c.label;
  }
  // The base itself is fine, and so are these.
  ASSERT_TRUE(Policy::Create(base()).ok());
  PolicySpec no_maintainers = base();
  no_maintainers.maintainers.clear();
  no_maintainers.update_threshold = 9;
  EXPECT_TRUE(Policy::Create(no_maintainers).ok());
  PolicySpec with_parent = base();
  with_parent.parent = kParent;
  with_parent.version = 2;
  absl::StatusOr<Policy> successor = Policy::Create(with_parent);
  ASSERT_TRUE(successor.ok()) << successor.status();
  EXPECT_THAT(successor->CanonicalText(),
              StartsWith(Cat("attest-policy/v1\nversion 2\nparent ", kParent, "\nquorum 1\n")));
  // A version above 1 is written even without a parent.
  PolicySpec versioned = base();
  versioned.version = 5;
  EXPECT_THAT(Policy::Create(versioned)->CanonicalText(), StartsWith("attest-policy/v1\nversion 5\nquorum 1\n"));
}

// ---- rules: which applies ----------------------------------------------------------------------

TEST(PolicyExtendedTest, RuleForPicksTheMostSpecificRule) {
  absl::StatusOr<Policy> policy = Policy::Create(PolicySpec{
      .quorum = Any(1),
      .operators = {{"x", {TestKey("a").public_key()}}, {"y", {TestKey("b").public_key()}},
                    {"z", {TestKey("c").public_key()}}},
      .maintainers = {},
      .rules = {
          {.names = {"*-doc", "openssl-*"}, .quorum = Any(2)},  // 0
          {.names = {"openssl-3*"}, .quorum = Any(3)},          // 1: 9 literals
          {.names = {"openssl-?.0.1*"}, .quorum = Any(1)},      // 2: 12 literals
          {.names = {"openssl-*"}, .quorum = Any(3)},           // 3: as specific as rule 0's: rule 0 wins
          {.names = {"zlib*-*"}, .quorum = Any(1)},             // 4: 5 literals, 2 stars
          {.names = {"zlib-*"}, .quorum = Any(2)},              // 5: 5 literals, 1 star: beats rule 4
          {.names = {"ab?*", "a?c*"}, .quorum = Any(1)},        // 6: a tie inside one rule
          {.names = {"exact"}, .quorum = Any(3)},               // 7
          {.names = {"exac?"}, .quorum = Any(1)},               // 8
      },
  });
  ASSERT_TRUE(policy.ok()) << policy.status();
  struct Case {
    std::string path_name;
    int index;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"hello-2.12", -1, "default"},
      {"", -1, "default"},
      {"openssl-1.1.1w", 0, "openssl-*"},  // rules 0 and 3 tie: the first listed
      {"openssl-3.1.0", 1, "openssl-3*"},
      {"openssl-3.0.1", 2, "openssl-?.0.1*"},
      {"openssl-3.0.10-bin", 2, "openssl-?.0.1*"},
      {"openssl-doc", 0, "openssl-*"},  // both of rule 0's globs match: the more specific is named
      {"nix-doc", 0, "*-doc"},
      {"zlib-1.3", 5, "zlib-*"},  // fewer stars beat the order
      {"zlibx-1.3", 4, "zlib*-*"},
      {"abcd", 6, "a?c*"},  // equal globs of one rule: the name does not depend on how they were written
      {"exact", 7, "exact"},
      {"exacT", 8, "exac?"},
      {"Openssl-3.0.1", -1, "default"},  // case matters, as in store paths
  };
  for (const Case& c : cases) {
    const AppliedRule applied = policy->RuleFor(c.path_name);
    EXPECT_EQ(applied.index, c.index) << c.path_name;
    EXPECT_EQ(applied.name, c.name) << c.path_name;
    const Quorum* expected = c.index < 0 ? &policy->default_quorum() : &policy->rules()[c.index].quorum;
    EXPECT_EQ(applied.quorum, expected) << c.path_name;
  }
  // Written the other way round, rule 6 names the same glob.
  absl::StatusOr<Policy> swapped = Policy::Create(PolicySpec{
      .quorum = Any(1),
      .operators = {{"x", {TestKey("a").public_key()}}},
      .maintainers = {},
      .rules = {{.names = {"a?c*", "ab?*"}, .quorum = Any(1)}},
  });
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(swapped->RuleFor("abcd").name, "a?c*");
}

TEST(PolicyExtendedTest, RuleForWithoutRulesIsTheDefault) {
  const Policy policy = ParseOrDie(kGood);
  const AppliedRule applied = policy.RuleFor("openssl-3.0.1");
  EXPECT_EQ(applied.index, -1);
  EXPECT_EQ(applied.name, "default");
  EXPECT_EQ(applied.quorum, &policy.default_quorum());
  EXPECT_EQ(applied.quorum->any, 2);
  // From TOML, in file order.
  const Policy extended = ParseOrDie(kExtended);
  EXPECT_EQ(extended.RuleFor("linux-6.6.1").index, 0);
  EXPECT_EQ(extended.RuleFor("linux-6.6.1").name, "linux-*");
  EXPECT_EQ(extended.RuleFor("glibc-2.39").index, 1);
  EXPECT_EQ(extended.RuleFor("glibc-2.39").quorum->of->threshold, 2);
  EXPECT_EQ(extended.RuleFor("hello-2.12").quorum, &extended.default_quorum());
}

TEST(PolicyExtendedTest, GlobMatches) {
  struct Case {
    std::string glob;
    std::string name;
    bool matches;
  };
  const std::vector<Case> cases = {
      {"*", "", true},
      {"*", "anything-1.0", true},
      {"", "", true},
      {"", "a", false},
      {"a", "", false},
      {"?", "", false},
      {"?", "a", true},
      {"?", "ab", false},
      {"a*c", "abc", true},
      {"a*c", "ac", true},
      {"a*c", "ab", false},
      {"a*c", "abcd", false},
      {"a?c", "abc", true},
      {"a?c", "ac", false},
      {"openssl-*", "openssl-3.0.1", true},
      {"openssl-*", "openssl", false},
      {"openssl-*", "libressl-3.8", false},
      {"*-doc", "hello-doc", true},
      {"*-doc", "hello-doc-x", false},
      {"*a*b", "xaxb", true},
      {"*a*b", "xaxbx", false},
      {"a*ab", "aaab", true},  // needs the star to give back characters
      {"a**b", "ab", true},
      {"*.*", "a.b.c", true},
      {"*x*y*z*", "axbyczd", true},
      {"*x*y*z*", "azbycxd", false},
      {"A", "a", false},
      {"[ab]", "a", false},  // brackets are characters here, not a class
      {"[ab]", "[ab]", true},
      {"\\*", "\\x", true},  // no escapes: the backslash is itself
  };
  for (const Case& c : cases) {
    EXPECT_EQ(GlobMatches(c.glob, c.name), c.matches) << "'" << c.glob << "' vs '" << c.name << "'";
  }
  // Long inputs stay fast (no exponential backtracking).
  EXPECT_FALSE(GlobMatches("*a*a*a*a*a*a*a*a*b", std::string(10000, 'a')));
  EXPECT_TRUE(GlobMatches("*a*a*a*a*a*a*a*a*b", std::string(10000, 'a') + "b"));
}

// ---- the documented example ------------------------------------------------------------------

// deploy/policy.example.toml shows optional settings as lines commented out with a single '#' and no
// space ("#[[group]]", "#name = ..."), prose with "# ". Both the file as shipped and the file with
// every such setting switched on must load.
TEST(PolicyExtendedTest, DeployExampleLoadsAsShippedAndWithEveryOption) {
  const std::string file = Cat(ATTEST_SOURCE_DIR, "/deploy/policy.example.toml");
  const std::string text = ReadFileOrDie(file);
  absl::StatusOr<Policy> shipped = Policy::ParseToml(text, "policy.example.toml");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  // A first policy: no parent, version 1. Its keys' lifecycles are shown live.
  EXPECT_TRUE(shipped->parent().empty());
  EXPECT_EQ(shipped->version(), 1);
  int retired = 0;
  int revoked = 0;
  for (const Operator& op : shipped->operators()) {
    for (const PublicKey& key : op.builders) {
      retired += shipped->Lifecycle(key.name()).state == KeyState::kRetired;
      revoked += shipped->Lifecycle(key.name()).state == KeyState::kRevoked;
    }
  }
  EXPECT_GE(retired, 1);
  EXPECT_GE(revoked, 1);

  std::string all_on;
  for (absl::string_view piece : absl::StrSplit(text, '\n')) {
    std::string_view line = StdView(piece);
    if (line.size() > 1 && line[0] == '#' && line[1] != ' ' && line[1] != '#') line.remove_prefix(1);
    all_on += Cat(line, "\n");
  }
  absl::StatusOr<Policy> full = Policy::ParseToml(all_on, "policy.example.toml (every option on)");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FALSE(full->groups().empty());
  EXPECT_FALSE(full->rules().empty());
  EXPECT_GE(full->update_threshold(), 2);
  EXPECT_NE(full->Hash(), shipped->Hash());
}
}  // namespace
}  // namespace attest::consensus
