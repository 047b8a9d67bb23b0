#include "tests/support/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "consensus/encoding.h"
#include "consensus/nar_hash.h"
#include "consensus/sha256.h"
#include "consensus/text.h"
#include "gtest/gtest.h"

namespace attest::testing {

consensus::SecretKey TestKey(std::string_view name, std::string_view seed_tag) {
  auto seed = consensus::Sha256(std::string(name) + "|" + std::string(seed_tag));
  auto key = consensus::SecretKey::FromSeed(name, seed);
  if (!key.ok()) {
    ADD_FAILURE() << key.status();
    std::abort();
  }
  return std::move(*key);
}

consensus::StorePath TestStorePath(std::string_view name) {
  auto digest = consensus::Sha256(std::string("path|") + std::string(name));
  std::string hash = consensus::Nix32Encode(std::span<const uint8_t>(digest.data(), 20));
  auto path = consensus::StorePath::Parse("/nix/store/" + hash + "-" + std::string(name));
  if (!path.ok()) {
    ADD_FAILURE() << path.status();
    std::abort();
  }
  return *path;
}

consensus::PathInfo TestClaim(std::string_view name, std::string_view content, uint64_t nar_size) {
  auto claim = consensus::PathInfo::Create(
      TestStorePath(name), consensus::NarHash::FromDigest(consensus::Sha256(content)), nar_size, {});
  if (!claim.ok()) {
    ADD_FAILURE() << claim.status();
    std::abort();
  }
  return *claim;
}

consensus::PathInfo TestClaimWithReferences(std::string_view name, std::string_view content, size_t references) {
  std::vector<consensus::StorePath> refs;
  refs.reserve(references);
  for (size_t i = 0; i < references; ++i) refs.push_back(TestStorePath(consensus::Cat("dependency-", i)));
  auto claim = consensus::PathInfo::Create(TestStorePath(name),
                                           consensus::NarHash::FromDigest(consensus::Sha256(content)), 1234,
                                           std::move(refs));
  if (!claim.ok()) {
    ADD_FAILURE() << claim.status();
    std::abort();
  }
  return *claim;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/attest-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    std::abort();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileOrDie(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) {
    ADD_FAILURE() << "cannot write " << path;
    std::abort();
  }
}

}  // namespace attest::testing
