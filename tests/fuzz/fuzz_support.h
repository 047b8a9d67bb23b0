// Shared by the fuzz targets: a check that aborts with a message (libFuzzer saves the input that
// made it fire as a crash), deterministic test keys, and the text view of the input.
#ifndef ATTEST_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define ATTEST_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "consensus/keys.h"
#include "consensus/sha256.h"

namespace attest::fuzz {

// A property of the parser that failed: a finding, like a crash.
[[noreturn]] inline void Fail(const char* file, int line, const char* condition, std::string_view detail) {
  std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n%.*s\n", file, line, condition,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

#define FUZZ_CHECK(condition, detail)                                         \
  do {                                                                        \
    if (!(condition)) ::attest::fuzz::Fail(__FILE__, __LINE__, #condition, (detail)); \
  } while (false)

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The same key for the same name in every run (its seed is SHA-256 of the name), so seed corpora can
// carry signatures that verify.
inline consensus::SecretKey FuzzKey(std::string_view name) {
  auto key = consensus::SecretKey::FromSeed(name, consensus::Sha256(std::string("attest-fuzz|") + std::string(name)));
  if (!key.ok()) std::abort();
  return *std::move(key);
}

}  // namespace attest::fuzz

#endif  // ATTEST_TESTS_FUZZ_FUZZ_SUPPORT_H_
