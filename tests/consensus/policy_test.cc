#include "consensus/policy.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "consensus/attestation.h"
#include "consensus/encoding.h"
#include "consensus/keys.h"
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

}  // namespace
}  // namespace attest::consensus
