// Shared helpers for tests: deterministic keys, temporary directories, files.
#ifndef ATTEST_TESTS_SUPPORT_TEST_SUPPORT_H_
#define ATTEST_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "consensus/keys.h"
#include "consensus/path_info.h"

namespace attest::testing {

// A deterministic key: the 32-byte seed is SHA-256(name || seed_tag).
consensus::SecretKey TestKey(std::string_view name, std::string_view seed_tag = "");

// A store path "/nix/store/<hash derived from name>-<name>".
consensus::StorePath TestStorePath(std::string_view name);

// A valid claim for TestStorePath(name), with a NAR hash derived from `content`.
consensus::PathInfo TestClaim(std::string_view name, std::string_view content = "content",
                              uint64_t nar_size = 1234);

// TestClaim with `references` references ("/nix/store/<hash>-dependency-<i>", about 60 bytes each in
// the fingerprint): 700 give a fingerprint of about 43 KB, 2,000 one larger than a log entry holds.
consensus::PathInfo TestClaimWithReferences(std::string_view name, std::string_view content, size_t references);

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir final {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

std::string ReadFileOrDie(const std::string& path);
void WriteFileOrDie(const std::string& path, std::string_view content);

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SUPPORT_TEST_SUPPORT_H_
