#include "client/cli_args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::vector<OptionSpec>& Specs() {
  static const std::vector<OptionSpec> specs = {
      {"node", OptionKind::kValue, OptionRepeat::kOnce, "ADDR", "node"},
      {"trusted-key", OptionKind::kValue, OptionRepeat::kMany, "KEY", "key"},
      {"json", OptionKind::kFlag, OptionRepeat::kOnce, "", "json"},
  };
  return specs;
}

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) { return ParseArgs(args, Specs()); }

TEST(CliArgsTest, OptionsMayComeAfterPositionals) {
  auto args = Parse({"/nix/store/a", "--node", "host:1", "/nix/store/b", "--json"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positionals(), ElementsAre("/nix/store/a", "/nix/store/b"));
  EXPECT_EQ(args->Value("node"), "host:1");
  EXPECT_TRUE(args->Has("json"));
}

TEST(CliArgsTest, EqualsFormIsTheSameAsSeparateValue) {
  auto args = Parse({"--node=host:7420"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->Value("node"), "host:7420");
  // A value may itself contain '='.
  args = Parse({"--trusted-key=name:abc="});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->Values("trusted-key"), ElementsAre("name:abc="));
}

TEST(CliArgsTest, RepeatedOptionsKeepEveryValueInOrder) {
  auto args = Parse({"--trusted-key", "a:1", "x", "--trusted-key=b:2"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->Values("trusted-key"), ElementsAre("a:1", "b:2"));
  EXPECT_THAT(args->positionals(), ElementsAre("x"));
}

TEST(CliArgsTest, SingleOptionGivenTwiceIsAnError) {
  auto args = Parse({"--node", "a", "--node", "b"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("--node is given more than once"));
}

TEST(CliArgsTest, DashIsAPositional) {
  auto args = Parse({"-", "--json"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positionals(), ElementsAre("-"));
}

TEST(CliArgsTest, DoubleDashEndsOptions) {
  auto args = Parse({"--json", "--", "--node", "-weird-file"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_THAT(args->positionals(), ElementsAre("--node", "-weird-file"));
  EXPECT_FALSE(args->Has("node"));
}

TEST(CliArgsTest, UnknownOptionIsAnErrorWithAHint) {
  auto args = Parse({"--nod", "x"});
  ASSERT_FALSE(args.ok());
  EXPECT_EQ(args.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("unknown option --nod"));
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("did you mean --node?"));

  args = Parse({"--completely-different"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), ::testing::Not(HasSubstr("did you mean")));

  args = Parse({"-x"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("unknown option"));
}

TEST(CliArgsTest, MissingValueIsAnError) {
  auto args = Parse({"--node"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("--node needs a value"));
  // A following known option is not taken as the value.
  args = Parse({"--node", "--json", "/nix/store/x"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("--node needs a value"));
}

TEST(CliArgsTest, FlagTakesNoValue) {
  auto args = Parse({"--json=yes"});
  ASSERT_FALSE(args.ok());
  EXPECT_THAT(std::string(args.status().message()), HasSubstr("takes no value"));
}

TEST(CliArgsTest, AbsentOptions) {
  auto args = Parse({});
  ASSERT_TRUE(args.ok());
  EXPECT_FALSE(args->Value("node").has_value());
  EXPECT_THAT(args->Values("trusted-key"), IsEmpty());
  EXPECT_THAT(args->positionals(), IsEmpty());
}

TEST(CliArgsTest, HelpIsFoundAnywhereBeforeDoubleDash) {
  EXPECT_TRUE(WantsHelp(std::vector<std::string>{"x", "--help"}));
  EXPECT_TRUE(WantsHelp(std::vector<std::string>{"-h"}));
  EXPECT_FALSE(WantsHelp(std::vector<std::string>{"--", "--help"}));
  EXPECT_FALSE(WantsHelp(std::vector<std::string>{"x"}));
}

}  // namespace
}  // namespace attest::client
