// Shared by the realisation server tests: realisation keys of both formats, output paths and signed
// wire realisation attestations. Header-only.
#ifndef ATTEST_TESTS_SERVER_REALISATION_TEST_UTIL_H_
#define ATTEST_TESTS_SERVER_REALISATION_TEST_UTIL_H_

#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "consensus/encoding.h"
#include "consensus/keys.h"
#include "consensus/nar_hash.h"
#include "consensus/realisation.h"
#include "consensus/sha256.h"
#include "consensus/store_path.h"
#include "gtest/gtest.h"
#include "proto/attest/v1/attest.pb.h"
#include "proto/convert.h"
#include "tests/support/test_support.h"

namespace attest::testing {

template <typename T>
T OrDie(absl::StatusOr<T> value) {
  if (!value.ok()) {
    ADD_FAILURE() << value.status();
    std::abort();
  }
  return *std::move(value);
}

// A Nix 2.8 key "sha256:<hex of sha256(name)>!<output>".
inline consensus::RealisationKey DrvHashKey(std::string_view name, std::string_view output = "out") {
  return OrDie(consensus::RealisationKey::FromDrvHash(
      consensus::NarHash::FromDigest(consensus::Sha256(std::string("drv|") + std::string(name))).ToHex(), output));
}

// A Nix 2.35 key "/nix/store/<hash>-<name>.drv^<output>".
inline consensus::RealisationKey DrvPathKey(std::string_view name, std::string_view output = "out") {
  return OrDie(consensus::RealisationKey::FromDrvPath(TestStorePath(std::string(name) + ".drv"), output));
}

// "/nix/store/<hash>-<name>", the hash depending on `variant` too: two variants are two outputs of one
// name (a nondeterministic CA derivation).
inline consensus::StorePath OutPath(std::string_view name, std::string_view variant = "") {
  if (variant.empty()) return TestStorePath(name);
  auto digest = consensus::Sha256(std::string("variant|") + std::string(variant) + "|" + std::string(name));
  return OrDie(consensus::StorePath::Parse(
      "/nix/store/" + consensus::Nix32Encode(std::span<const uint8_t>(digest.data(), 20)) + "-" + std::string(name)));
}

inline consensus::Realisation RealisationOf(const consensus::RealisationKey& key, const consensus::StorePath& out) {
  return OrDie(consensus::Realisation::Create(key, out));
}

inline v1::RealisationAttestation SignedRealisation(const consensus::Realisation& claim, const consensus::SecretKey& key) {
  return proto::ToProto(consensus::SignRealisation(claim, key));
}

}  // namespace attest::testing

#endif  // ATTEST_TESTS_SERVER_REALISATION_TEST_UTIL_H_
