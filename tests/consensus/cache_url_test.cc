#include "consensus/cache_url.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::consensus {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ErrorOf(std::string_view url) {
  absl::StatusOr<std::string> normalised = ValidateCacheUrl(url);
  EXPECT_FALSE(normalised.ok()) << "accepted: " << url << " as " << *normalised;
  if (normalised.ok()) return "";
  EXPECT_EQ(normalised.status().code(), absl::StatusCode::kInvalidArgument) << url;
  std::string message(StdView(normalised.status().message()));
  // Every refusal says what to write instead, in parentheses at the end.
  EXPECT_THAT(message, EndsWith(")")) << url;
  return message;
}

TEST(CacheUrlTest, AcceptsHttpHttpsAndAbsoluteFileUrls) {
  for (std::string_view url : {"https://cache.nixos.org", "http://127.0.0.1:8080", "http://[::1]:5000/nix",
                               "https://cache.example.org/prefix/sub-dir_1.~x", "file:///srv/cache",
                               "file:///var/lib/alice/cache-2", "https://s3.eu-west-1.amazonaws.com/bucket",
                               "https://cache.example.org/a%20b", "http://cache:1/x@y:z!$&'()*+,;="}) {
    absl::StatusOr<std::string> normalised = ValidateCacheUrl(url);
    ASSERT_TRUE(normalised.ok()) << url << ": " << normalised.status();
    EXPECT_EQ(*normalised, url);
  }
}

TEST(CacheUrlTest, TrailingSlashesAreRemoved) {
  for (auto [url, normalised] : std::vector<std::pair<std::string_view, std::string_view>>{
           {"https://cache.example.org/", "https://cache.example.org"},
           {"https://cache.example.org/prefix//", "https://cache.example.org/prefix"},
           {"http://[::1]:5000/", "http://[::1]:5000"},
           {"file:///srv/cache/", "file:///srv/cache"}}) {
    absl::StatusOr<std::string> out = ValidateCacheUrl(url);
    ASSERT_TRUE(out.ok()) << url << ": " << out.status();
    EXPECT_EQ(*out, normalised) << url;
  }
}

TEST(CacheUrlTest, RefusesOtherSchemes) {
  EXPECT_THAT(ErrorOf("ftp://cache.example.org"), HasSubstr("has the scheme 'ftp', which attest does not fetch"));
  EXPECT_THAT(ErrorOf("ssh://builder.example.org"), HasSubstr("has the scheme 'ssh'"));
  EXPECT_THAT(ErrorOf("s3://nix-cache?region=eu-west-1"),
              AllOf(HasSubstr("is an s3:// URL"), HasSubstr("https://<bucket>.s3.<region>.amazonaws.com")));
  EXPECT_THAT(ErrorOf("ftp:cache"), HasSubstr("is not an http://, https:// or file:// URL"));
  EXPECT_THAT(ErrorOf("cache.example.org"), HasSubstr("is not an http://, https:// or file:// URL"));
  EXPECT_THAT(ErrorOf("HTTPS://cache.example.org"), HasSubstr("scheme in upper case (write https://"));
}

TEST(CacheUrlTest, RefusesRelativeAndRootFilePaths) {
  EXPECT_THAT(ErrorOf("file://srv/cache"), HasSubstr("needs an absolute path (write file:///srv/cache"));
  EXPECT_THAT(ErrorOf("file://localhost/srv/cache"), HasSubstr("needs an absolute path"));
  EXPECT_THAT(ErrorOf("file://"), HasSubstr("needs an absolute path"));
  EXPECT_THAT(ErrorOf("file:///"), HasSubstr("names the root directory"));
  EXPECT_THAT(ErrorOf("file:///srv/../etc"), HasSubstr("'.' or '..' segment"));
  EXPECT_THAT(ErrorOf("file:///srv/./cache"), HasSubstr("'.' or '..' segment"));
  EXPECT_THAT(ErrorOf("file:///srv//cache"), HasSubstr("an empty, '.' or '..' segment"));
  EXPECT_THAT(ErrorOf("file:///srv/a%2Fb"), HasSubstr("without percent-escapes"));
  EXPECT_THAT(ErrorOf("file:///srv/{cache}"), HasSubstr("a file:// path may use letters, digits"));
}

TEST(CacheUrlTest, RefusesEmptyAndOverlongUrls) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("cache URL is empty"));
  const std::string longest = "https://cache.example.org/" + std::string(kMaxCacheUrlLength - 26, 'a');
  ASSERT_EQ(longest.size(), kMaxCacheUrlLength);
  EXPECT_TRUE(ValidateCacheUrl(longest).ok());
  EXPECT_THAT(ErrorOf(longest + "a"), HasSubstr("is 1025 bytes long (use at most 1024 bytes"));
}

TEST(CacheUrlTest, RefusesCredentialsWithoutRepeatingThem) {
  for (std::string_view url : {"https://alice:s3cret@cache.example.org", "http://s3cret@cache.example.org/x",
                               "https://alice:s3cret@cache.example.org\n", "file://s3cret@/srv/cache"}) {
    const std::string message = ErrorOf(url);
    EXPECT_THAT(message, HasSubstr("user name or password")) << url;
    EXPECT_THAT(message, Not(HasSubstr("s3cret"))) << url;
  }
  // An '@' in the path is not a user name.
  EXPECT_TRUE(ValidateCacheUrl("https://cache.example.org/~alice@ci").ok());
}

TEST(CacheUrlTest, RefusesFragmentsAndQueries) {
  EXPECT_THAT(ErrorOf("https://cache.example.org#main"), HasSubstr("has a fragment"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/x/#"), HasSubstr("has a fragment"));
  EXPECT_THAT(ErrorOf("https://cache.example.org?priority=30"), HasSubstr("has a query"));
  EXPECT_THAT(ErrorOf("file:///srv/cache?compression=none"), HasSubstr("has a query"));
}

TEST(CacheUrlTest, RefusesControlCharactersSpacesAndNonAscii) {
  EXPECT_THAT(ErrorOf("https://cache.example.org/\nx"),
              AllOf(HasSubstr("control character 0x0A"), HasSubstr("'https://cache.example.org/\\nx'")));
  EXPECT_THAT(ErrorOf(std::string("https://cache.example.org/\0x", 27)), HasSubstr("control character 0x00"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/\x7f"), HasSubstr("control character 0x7F"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/\tx"), HasSubstr("control character 0x09"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/a b"), HasSubstr("contains a space (percent-encode it as %20)"));
  EXPECT_THAT(ErrorOf(" https://cache.example.org"), HasSubstr("contains a space"));
  EXPECT_THAT(ErrorOf("https://cach\xC3\xA9.example.org"), HasSubstr("non-ASCII"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/\xE2\x80\xAE"), HasSubstr("non-ASCII"));
}

TEST(CacheUrlTest, RefusesMalformedHostsPortsAndPaths) {
  EXPECT_THAT(ErrorOf("https://"), HasSubstr("has no host"));
  EXPECT_THAT(ErrorOf("https:///nix"), HasSubstr("has no host"));
  EXPECT_THAT(ErrorOf("http://:8080"), HasSubstr("has no host"));
  EXPECT_THAT(ErrorOf("http://cache:0"), HasSubstr("port that is not a number from 1 to 65535"));
  EXPECT_THAT(ErrorOf("http://cache:65536"), HasSubstr("port"));
  EXPECT_THAT(ErrorOf("http://cache:"), HasSubstr("port"));
  EXPECT_THAT(ErrorOf("http://cache:80x"), HasSubstr("port"));
  EXPECT_THAT(ErrorOf("http://[::1"), HasSubstr("malformed IPv6 host"));
  EXPECT_THAT(ErrorOf("http://[cache]:80"), HasSubstr("malformed IPv6 host"));
  EXPECT_THAT(ErrorOf("http://[::1]x"), HasSubstr("malformed IPv6 host"));
  EXPECT_THAT(ErrorOf("http://ca\"che/"), HasSubstr("has a host with '\"'"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/a<b>"), HasSubstr("has '<' in its path (percent-encode it"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/a\\b"), HasSubstr("has '\\' in its path"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/%zz"), HasSubstr("not followed by two hex digits"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/%2"), HasSubstr("not followed by two hex digits"));
  EXPECT_THAT(ErrorOf("https://cache.example.org/../x"), HasSubstr("'..' segment"));
  EXPECT_THAT(ErrorOf("https://cache.example.org//x"), HasSubstr("an empty, '.' or '..' segment"));
}

}  // namespace
}  // namespace attest::consensus
