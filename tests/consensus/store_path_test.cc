#include "consensus/store_path.h"

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::consensus {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kHello = "/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest";
constexpr std::string_view kHash = "1in1wmhvfcdb12hvcqs3svmki3bp3h3l";

// Expects INVALID_ARGUMENT with every one of `fragments` in the message.
void ExpectRejected(std::string_view input, std::initializer_list<std::string_view> fragments) {
  auto path = StorePath::Parse(input);
  ASSERT_FALSE(path.ok()) << "accepted " << input;
  EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument) << input;
  for (std::string_view fragment : fragments) {
    EXPECT_THAT(std::string(path.status().message()), HasSubstr(std::string(fragment))) << input;
  }
}

TEST(StorePathTest, ParsesRealPathsAndExposesParts) {
  auto path = StorePath::Parse(kHello);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(path->full(), kHello);
  EXPECT_EQ(path->hash_part(), kHash);
  EXPECT_EQ(path->name(), "hello-attest");
  EXPECT_EQ(path->base_name(), "1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest");
  EXPECT_FALSE(path->IsDerivation());

  auto drv = StorePath::Parse("/nix/store/54mg1lgw5a359aplgx66dlx4pqm9ag1v-withdeps.drv");
  ASSERT_TRUE(drv.ok()) << drv.status();
  EXPECT_TRUE(drv->IsDerivation());
}

TEST(StorePathTest, AcceptsEveryCharacterNixAllowsInNames) {
  for (std::string_view name :
       {"a", "A-Z_0.9+x?y=z", "curl-7.82.0-bin", "-leading-dash", "source?", "x..y"}) {
    auto path = StorePath::Parse(std::string(kStoreDir) + "/" + std::string(kHash) + "-" +
                                 std::string(name));
    EXPECT_TRUE(path.ok()) << name << ": " << path.status();
  }
  // Exactly the maximum length.
  std::string longest = std::string(kStoreDir) + "/" + std::string(kHash) + "-" +
                        std::string(kMaxStorePathNameLength, 'n');
  EXPECT_TRUE(StorePath::Parse(longest).ok());
}

TEST(StorePathTest, ParseBaseNameMatchesParse) {
  auto base = StorePath::ParseBaseName("z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep");
  ASSERT_TRUE(base.ok()) << base.status();
  EXPECT_EQ(base->full(), "/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep");
  EXPECT_EQ(*base, *StorePath::Parse("/nix/store/z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep"));

  auto full = StorePath::ParseBaseName(kHello);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(full.status().message()), HasSubstr("base name"));
  EXPECT_FALSE(StorePath::ParseBaseName("").ok());
  EXPECT_FALSE(StorePath::ParseBaseName("z4asv3j07d89ywjf8fxkn7sg6mf5s9q5-dep/bin").ok());
  EXPECT_FALSE(StorePath::ParseBaseName("z4asv3j07d89ywjf8fxkn7sg6mf5s9qe-dep").ok());
}

TEST(StorePathTest, RejectsEmptyAndRelativePaths) {
  ExpectRejected("", {"empty"});
  ExpectRejected("nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest",
                 {"relative", "nix/store/1in1"});
  ExpectRejected("1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest", {"relative"});
}

TEST(StorePathTest, RejectsOtherStoreDirectories) {
  ExpectRejected("/gnu/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest",
                 {"not in the Nix store /nix/store", "/gnu/store"});
  ExpectRejected("/nix/storex/1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest",
                 {"not in the Nix store"});
  ExpectRejected("/nix/store", {"not in the Nix store"});
}

TEST(StorePathTest, RejectsWrongHashLength) {
  ExpectRejected("/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3-hello-attest",
                 {"<32-character hash>-<name>"});
  ExpectRejected("/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3ll-hello-attest",
                 {"<32-character hash>-<name>"});
  ExpectRejected("/nix/store/1in1wmhvfcdb12hvcqs3svmki3bp3h3l", {"<32-character hash>-<name>"});
  ExpectRejected("/nix/store/", {"<32-character hash>-<name>"});
}

TEST(StorePathTest, RejectsHashCharactersOutsideNix32) {
  for (char bad : {'e', 'o', 't', 'u', 'A', '_', '.'}) {
    std::string path(kHello);
    path[11 + 5] = bad;
    ExpectRejected(path, {"nix32 alphabet", "hash part"});
  }
}

TEST(StorePathTest, RejectsBadNames) {
  const std::string prefix = std::string(kStoreDir) + "/" + std::string(kHash) + "-";
  ExpectRejected(prefix, {"empty name"});
  ExpectRejected(prefix + ".hidden", {"starting with '.'"});
  ExpectRejected(prefix + "..", {"starting with '.'"});
  ExpectRejected(prefix + "with space", {"' '", "in its name"});
  ExpectRejected(prefix + "semi;colon", {"';'"});
  ExpectRejected(prefix + "comma,x", {"','"});
  ExpectRejected(prefix + "tab\there", {"'\\t'"});
  ExpectRejected(prefix + "nul" + std::string(1, '\0'), {"'\\x00'"});
  ExpectRejected(prefix + "caf\xc3\xa9", {"in its name"});
  ExpectRejected(prefix + std::string(kMaxStorePathNameLength + 1, 'n'),
                 {"212 characters", "at most 211"});
}

TEST(StorePathTest, RejectsTrailingSlashAndSubPaths) {
  ExpectRejected(std::string(kHello) + "/", {"trailing slash or a sub-path"});
  ExpectRejected(std::string(kHello) + "/bin/hello", {"trailing slash or a sub-path"});
  ExpectRejected("/nix/store//1in1wmhvfcdb12hvcqs3svmki3bp3h3l-hello-attest",
                 {"trailing slash or a sub-path"});
}

TEST(StorePathTest, MessagesTruncateHugeInput) {
  const std::string huge = std::string(kHello) + std::string(100000, '!');
  auto path = StorePath::Parse(huge);
  ASSERT_FALSE(path.ok());
  EXPECT_LT(path.status().message().size(), 400u);
  EXPECT_THAT(std::string(path.status().message()), HasSubstr("100056 bytes"));
}

TEST(StorePathTest, OrdersAndHashesByFullPath) {
  auto a = *StorePath::Parse("/nix/store/0jqd0rlxzra1rs38rdxl43yh6rxchgc6-curl-7.82.0");
  auto b = *StorePath::Parse("/nix/store/6w8g7njm4mck5dmjxws0z1xnrxvl81xa-glibc-2.34-115");
  EXPECT_LT(a, b);
  EXPECT_NE(a, b);
  absl::flat_hash_set<StorePath> set = {a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

}  // namespace
}  // namespace attest::consensus
