// The DerivationStore contract (storage/derivation_store.h), run against every implementation the
// way tests/storage/attestation_store_contract_test.cc runs the other roles.
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "consensus/store_path.h"
#include "consensus/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/attestation_store.h"
#include "storage/memory_attestation_store.h"
#include "storage/sqlite_attestation_store.h"
#include "tests/storage/fault_injecting_store.h"
#include "tests/storage/storage_test_util.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using consensus::StorePath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::attest::testing::TempDir;
using ::attest::testing::TestStorePath;

struct Implementation {
  std::string name;
  std::function<std::unique_ptr<AttestationStore>(const TempDir&)> open;
};

// A derivation named `name` (".drv" appended) with the given input derivations (names, sorted here)
// and outputs (output name -> output path name). The store does not parse contents, so they only
// need to differ between derivations.
StoredDerivation Drv(std::string_view name, std::vector<std::string> inputs = {},
                     std::vector<std::pair<std::string, std::string>> outputs = {{"out", ""}},
                     int64_t received = 1700000300) {
  StoredDerivation drv{.path = TestStorePath(consensus::Cat(name, ".drv")),
                       .contents = consensus::Cat("Derive([(\"out\",\"/nix/store/...-", name, "\")])"),
                       .input_derivations = {},
                       .outputs = {},
                       .received_unix = received};
  for (const std::string& input : inputs) drv.input_derivations.push_back(TestStorePath(consensus::Cat(input, ".drv")));
  std::ranges::sort(drv.input_derivations);
  for (const auto& [output, path_name] : outputs) {
    drv.outputs.push_back(DerivationOutputPath{
        .output_name = output,
        .path = TestStorePath(path_name.empty() ? std::string(name) : path_name)});
  }
  return drv;
}

// A store path with an explicit hash part, for lookups by hash part.
StorePath PathWithHash(std::string_view hash_part, std::string_view name) {
  auto path = StorePath::Parse(consensus::Cat(consensus::kStoreDir, "/", hash_part, "-", name));
  EXPECT_TRUE(path.ok()) << path.status();
  return *path;
}

class DerivationStoreContractTest : public ::testing::TestWithParam<Implementation> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }

  std::vector<WriteOutcome> PutOk(const std::vector<StoredDerivation>& derivations) {
    auto outcomes = store_->PutDerivations(derivations);
    EXPECT_TRUE(outcomes.ok()) << outcomes.status();
    return outcomes.ok() ? *outcomes : std::vector<WriteOutcome>{};
  }
  std::vector<bool> HasOk(const std::vector<StorePath>& paths) {
    auto held = store_->HasDerivations(paths);
    EXPECT_TRUE(held.ok()) << held.status();
    return held.ok() ? *held : std::vector<bool>{};
  }
  std::vector<std::optional<StoredDerivation>> GetOk(const std::vector<StorePath>& paths) {
    auto got = store_->GetDerivations(paths);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<std::optional<StoredDerivation>>{};
  }
  std::vector<std::vector<DerivationOfOutput>> ProducingOk(const std::vector<StorePath>& outputs) {
    auto producing = store_->DerivationsProducing(outputs);
    EXPECT_TRUE(producing.ok()) << producing.status();
    return producing.ok() ? *producing : std::vector<std::vector<DerivationOfOutput>>{};
  }
  std::optional<StorePath> ByHashOk(std::string_view hash_part) {
    auto path = store_->OutputPathByHashPart(hash_part);
    EXPECT_TRUE(path.ok()) << path.status();
    return path.ok() ? *path : std::nullopt;
  }
  DerivationStats StatsOk() {
    auto stats = store_->GetDerivationStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : DerivationStats{.derivations = -1, .content_bytes = -1};
  }

  TempDir dir_;
  std::unique_ptr<AttestationStore> store_;
};

constexpr WriteOutcome kInserted = WriteOutcome::kInserted;
constexpr WriteOutcome kAlreadyPresent = WriteOutcome::kAlreadyPresent;

TEST_P(DerivationStoreContractTest, EmptyStoreHoldsNoDerivations) {
  const StorePath drv = TestStorePath("hello-2.12.drv");
  const StorePath out = TestStorePath("hello-2.12");
  EXPECT_THAT(HasOk({drv}), ElementsAre(false));
  EXPECT_THAT(GetOk({drv}), ElementsAre(std::nullopt));
  EXPECT_THAT(ProducingOk({out}), ElementsAre(IsEmpty()));
  EXPECT_EQ(ByHashOk(out.hash_part()), std::nullopt);
  EXPECT_EQ(StatsOk(), (DerivationStats{.derivations = 0, .content_bytes = 0}));
  EXPECT_THAT(PutOk({}), IsEmpty());
  EXPECT_THAT(HasOk({}), IsEmpty());
}

TEST_P(DerivationStoreContractTest, EveryFieldRoundTripsByteForByte) {
  StoredDerivation drv = Drv("openssl-3.0.8", {"perl-5.36", "zlib-1.3", "glibc-2.37"},
                             {{"bin", "openssl-3.0.8-bin"}, {"dev", "openssl-3.0.8-dev"}, {"out", "openssl-3.0.8"}},
                             1234567890123);
  // Contents are bytes, not text: NUL, invalid UTF-8 and a trailing newline survive.
  drv.contents = std::string("Derive(\0\xff\xfe\n", 11) + std::string(70000, 'x') + "\n";
  const StoredDerivation plain = Drv("zlib-1.3", {}, {{"out", ""}}, 0);
  // A derivation without a known output path (content-addressed) and without inputs.
  StoredDerivation floating = Drv("floating-1", {}, {});
  EXPECT_THAT(PutOk({drv, plain, floating}), ElementsAre(kInserted, kInserted, kInserted));
  EXPECT_THAT(GetOk({drv.path, plain.path, floating.path}), ElementsAre(drv, plain, floating));
}

TEST_P(DerivationStoreContractTest, AnswersInInputOrderIncludingUnknownAndRepeatedPaths) {
  const StoredDerivation a = Drv("a-1");
  const StoredDerivation b = Drv("b-1", {"a-1"});
  PutOk({a, b});
  const StorePath unknown = TestStorePath("unknown-1.drv");
  EXPECT_THAT(HasOk({b.path, unknown, a.path, b.path}), ElementsAre(true, false, true, true));
  EXPECT_THAT(GetOk({b.path, unknown, a.path, b.path}), ElementsAre(b, std::nullopt, a, b));
  // A held output path is not a held derivation.
  EXPECT_THAT(HasOk({TestStorePath("a-1")}), ElementsAre(false));
}

TEST_P(DerivationStoreContractTest, APathAlreadyHeldKeepsTheFirstCopy) {
  const StoredDerivation first = Drv("hello-2.12", {"glibc-2.37"}, {{"out", ""}}, 100);
  EXPECT_THAT(PutOk({first}), ElementsAre(kInserted));
  // Another copy claiming the same path (a caller that did not verify) changes nothing held.
  StoredDerivation second = Drv("hello-2.12", {"bash-5.2"}, {{"out", "other-2.12"}}, 200);
  second.contents = "different bytes";
  const StoredDerivation other = Drv("other-1");
  EXPECT_THAT(PutOk({other, second}), ElementsAre(kInserted, kAlreadyPresent));
  EXPECT_THAT(GetOk({first.path}), ElementsAre(first));
  EXPECT_THAT(ProducingOk({TestStorePath("other-2.12")}), ElementsAre(IsEmpty()));
  EXPECT_EQ(StatsOk(), (DerivationStats{.derivations = 2,
                                        .content_bytes = static_cast<int64_t>(first.contents.size() +
                                                                              other.contents.size())}));
}

TEST_P(DerivationStoreContractTest, APathTwiceInOneCallIsStoredOnceTheFirstKept) {
  const StoredDerivation first = Drv("hello-2.12", {}, {{"out", ""}}, 100);
  StoredDerivation again = Drv("hello-2.12", {}, {{"out", ""}}, 200);
  again.contents = "later copy";
  const StoredDerivation other = Drv("other-1");
  EXPECT_THAT(PutOk({first, other, again, first}), ElementsAre(kInserted, kInserted, kAlreadyPresent, kAlreadyPresent));
  EXPECT_THAT(GetOk({first.path}), ElementsAre(first));
  EXPECT_EQ(StatsOk().derivations, 2);
  EXPECT_THAT(ProducingOk({TestStorePath("hello-2.12")}),
              ElementsAre(ElementsAre(DerivationOfOutput{.drv_path = first.path, .output_name = "out"})));
}

TEST_P(DerivationStoreContractTest, DerivationsProducingAreSortedByDrvPathThenOutputName) {
  // Three derivations list one output path (fixed-output derivations fetching the same file), one of
  // them under two output names; written in an order that is not the answer's.
  const std::string shared = "source.tar.gz";
  std::vector<StoredDerivation> drvs = {Drv("fetch-c", {}, {{"out", shared}}),
                                        Drv("fetch-a", {}, {{"dev", shared}, {"out", shared}}),
                                        Drv("fetch-b", {}, {{"out", shared}}),
                                        Drv("unrelated-1", {}, {{"out", ""}})};
  PutOk(drvs);
  std::vector<DerivationOfOutput> expected;
  for (const StoredDerivation& drv : drvs) {
    for (const DerivationOutputPath& output : drv.outputs) {
      if (output.path == TestStorePath(shared)) {
        expected.push_back(DerivationOfOutput{.drv_path = drv.path, .output_name = output.output_name});
      }
    }
  }
  std::ranges::sort(expected, [](const DerivationOfOutput& x, const DerivationOfOutput& y) {
    return std::tie(x.drv_path, x.output_name) < std::tie(y.drv_path, y.output_name);
  });
  ASSERT_EQ(expected.size(), 4u);
  const std::vector<DerivationOfOutput> unrelated = {
      DerivationOfOutput{.drv_path = drvs[3].path, .output_name = "out"}};
  EXPECT_THAT(ProducingOk({TestStorePath(shared), TestStorePath("nobody-1"), TestStorePath("unrelated-1"),
                           TestStorePath(shared)}),
              ElementsAre(expected, IsEmpty(), unrelated, expected));
  // A derivation's own path is not an output of it.
  EXPECT_THAT(ProducingOk({drvs[3].path}), ElementsAre(IsEmpty()));
}

TEST_P(DerivationStoreContractTest, OutputPathsAreFoundByTheirHashPart) {
  const std::string h0 = std::string(31, '1') + "0";
  const std::string h1 = std::string(31, '1') + "1";
  const std::string h2 = std::string(31, '1') + "2";
  // h1 lies between h0 and h2 in byte order: a lookup must not stray to a neighbour.
  StoredDerivation drv = Drv("neighbours-1", {}, {});
  drv.outputs = {DerivationOutputPath{.output_name = "a", .path = PathWithHash(h0, "zeta")},
                 DerivationOutputPath{.output_name = "b", .path = PathWithHash(h2, "alpha")}};
  PutOk({drv});
  EXPECT_EQ(ByHashOk(h0), PathWithHash(h0, "zeta"));
  EXPECT_EQ(ByHashOk(h2), PathWithHash(h2, "alpha"));
  EXPECT_EQ(ByHashOk(h1), std::nullopt);
  // Only outputs count, not the derivations themselves.
  EXPECT_EQ(ByHashOk(drv.path.hash_part()), std::nullopt);
  // Two listed paths sharing a hash part (never in practice): the first in byte order.
  StoredDerivation sharing = Drv("sharing-1", {}, {});
  sharing.outputs = {DerivationOutputPath{.output_name = "out", .path = PathWithHash(h1, "b-name")},
                     DerivationOutputPath{.output_name = "z", .path = PathWithHash(h1, "a+name")}};
  PutOk({sharing});
  EXPECT_EQ(ByHashOk(h1), PathWithHash(h1, "a+name"));
}

TEST_P(DerivationStoreContractTest, AMalformedHashPartIsInvalidArgument) {
  for (const std::string& bad : {std::string(""), std::string(31, '1'), std::string(33, '1'),
                                 std::string(31, '1') + "e",  // 'e' is not in the nix32 alphabet
                                 std::string(31, '1') + "-", std::string(31, '1') + "%"}) {
    auto path = store_->OutputPathByHashPart(bad);
    EXPECT_EQ(path.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(path.status().message(), HasSubstr("not a store path hash part")) << bad;
  }
}

TEST_P(DerivationStoreContractTest, StatsCountDerivationsAndTheirBytes) {
  const StoredDerivation a = Drv("a-1");
  const StoredDerivation b = Drv("b-22");
  const StoredDerivation c = Drv("c-333");
  PutOk({a, b});
  PutOk({b, c});
  EXPECT_EQ(StatsOk(), (DerivationStats{.derivations = 3,
                                        .content_bytes = static_cast<int64_t>(
                                            a.contents.size() + b.contents.size() + c.contents.size())}));
}

TEST_P(DerivationStoreContractTest, AnInvalidItemStoresNothingOfTheCall) {
  const StoredDerivation good = Drv("good-1");
  struct Case {
    std::string what;
    std::function<void(StoredDerivation&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"not a .drv", [](StoredDerivation& d) { d.path = TestStorePath("bad-1"); }, "is not a derivation"},
      {"empty contents", [](StoredDerivation& d) { d.contents.clear(); }, "empty contents"},
      {"input not a .drv",
       [](StoredDerivation& d) { d.input_derivations = {TestStorePath("glibc-2.37")}; },
       "input derivation"},
      {"inputs unsorted",
       [](StoredDerivation& d) {
         d.input_derivations = {TestStorePath("x.drv"), TestStorePath("y.drv")};
         std::ranges::sort(d.input_derivations, std::greater<>());
       },
       "not sorted and unique"},
      {"inputs repeated",
       [](StoredDerivation& d) { d.input_derivations = {TestStorePath("x.drv"), TestStorePath("x.drv")}; },
       "not sorted and unique"},
      {"outputs unsorted",
       [](StoredDerivation& d) {
         d.outputs = {DerivationOutputPath{.output_name = "out", .path = TestStorePath("bad-1")},
                      DerivationOutputPath{.output_name = "dev", .path = TestStorePath("bad-1-dev")}};
       },
       "not sorted by unique names"},
      {"outputs repeated",
       [](StoredDerivation& d) {
         d.outputs = {DerivationOutputPath{.output_name = "out", .path = TestStorePath("bad-1")},
                      DerivationOutputPath{.output_name = "out", .path = TestStorePath("bad-2")}};
       },
       "not sorted by unique names"},
      {"output without a name",
       [](StoredDerivation& d) {
         d.outputs = {DerivationOutputPath{.output_name = "", .path = TestStorePath("bad-1")}};
       },
       "has no name"},
      {"negative time", [](StoredDerivation& d) { d.received_unix = -1; }, "negative"},
  };
  for (const Case& c : cases) {
    StoredDerivation bad = Drv("bad-1", {}, {{"out", "bad-out-1"}});
    c.spoil(bad);
    auto outcomes = store_->PutDerivations(std::vector<StoredDerivation>{good, bad});
    EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(outcomes.status().message(), HasSubstr("derivation 2 of 2: ")) << c.what;
    EXPECT_THAT(outcomes.status().message(), HasSubstr(c.message)) << c.what;
  }
  EXPECT_THAT(HasOk({good.path, TestStorePath("bad-1.drv")}), ElementsAre(false, false));
  EXPECT_THAT(ProducingOk({TestStorePath("good-1"), TestStorePath("bad-out-1")}), ElementsAre(IsEmpty(), IsEmpty()));
  EXPECT_EQ(StatsOk(), (DerivationStats{.derivations = 0, .content_bytes = 0}));
}

// More derivations than one statement looks up at once (the SQLite store asks 100 at a time), asked
// for with repeats that fall into different chunks.
TEST_P(DerivationStoreContractTest, LargeCallsAreAnsweredWhole) {
  constexpr int kCount = 250;
  std::vector<StoredDerivation> drvs;
  for (int i = 0; i < kCount; ++i) {
    std::vector<std::string> inputs;
    if (i > 0) inputs.push_back(consensus::Cat("pkg-", i - 1));
    if (i > 1) inputs.push_back(consensus::Cat("pkg-", i - 2));
    drvs.push_back(Drv(consensus::Cat("pkg-", i), inputs, {{"dev", consensus::Cat("pkg-", i, "-dev")}, {"out", ""}}));
  }
  EXPECT_EQ(PutOk(drvs), std::vector<WriteOutcome>(kCount, kInserted));
  std::vector<StorePath> paths;
  std::vector<StorePath> outputs;
  std::vector<std::optional<StoredDerivation>> expected;
  std::vector<std::vector<DerivationOfOutput>> expected_producers;
  for (int round = 0; round < 2; ++round) {
    for (int i = kCount - 1; i >= 0; i -= 3) {
      paths.push_back(drvs[i].path);
      expected.push_back(drvs[i]);
      outputs.push_back(drvs[i].outputs[1].path);
      expected_producers.push_back({DerivationOfOutput{.drv_path = drvs[i].path, .output_name = "out"}});
    }
  }
  EXPECT_EQ(GetOk(paths), expected);
  EXPECT_EQ(HasOk(paths), std::vector<bool>(paths.size(), true));
  EXPECT_EQ(ProducingOk(outputs), expected_producers);
  EXPECT_EQ(PutOk(drvs), std::vector<WriteOutcome>(kCount, kAlreadyPresent));
  EXPECT_EQ(StatsOk().derivations, kCount);
}

// Derivations are not logged, not attestations and not replicated: storing them changes no other role.
TEST_P(DerivationStoreContractTest, DerivationsTouchNoOtherRole) {
  PutOk({Drv("a-1"), Drv("b-1", {"a-1"})});
  auto head = store_->GetLogHead();
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_EQ(head->size, 0u);
  auto stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->attestations, 0);
  EXPECT_EQ(stats->paths, 0);
  auto per_key = store_->AttestationsPerKey();
  ASSERT_TRUE(per_key.ok()) << per_key.status();
  EXPECT_THAT(*per_key, IsEmpty());
  // And writes of the other roles leave derivations alone.
  ASSERT_TRUE(store_->Write(testing::Batch({testing::Attest(attest::testing::TestClaim("a-1"), "builder-1")})).ok());
  EXPECT_EQ(StatsOk().derivations, 2);
}

// Writers putting overlapping derivations at once: each path is inserted exactly once overall, and a
// reader never sees a derivation without its inputs and outputs.
TEST_P(DerivationStoreContractTest, ConcurrentPutsInsertEachPathOnce) {
  constexpr int kWriters = 4;
  constexpr int kCalls = 10;
  constexpr int kPerCall = 5;
  std::vector<StoredDerivation> all;
  for (int i = 0; i < kCalls * kPerCall; ++i) {
    all.push_back(Drv(consensus::Cat("shared-", i), {"dep-1", "dep-2"},
                      {{"dev", consensus::Cat("shared-", i, "-dev")}, {"out", ""}}));
  }
  std::atomic<int> inserted = 0;
  std::atomic<int> failures = 0;
  std::atomic<bool> done = false;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int c = 0; c < kCalls; ++c) {
        // Each writer goes through the calls in its own order.
        const int call = (c + w * 3) % kCalls;
        std::vector<StoredDerivation> part(all.begin() + call * kPerCall, all.begin() + (call + 1) * kPerCall);
        auto outcomes = store_->PutDerivations(part);
        if (!outcomes.ok() || outcomes->size() != part.size()) {
          ++failures;
          continue;
        }
        inserted += static_cast<int>(std::ranges::count(*outcomes, kInserted));
      }
    });
  }
  threads.emplace_back([&] {
    std::vector<StorePath> paths;
    for (const StoredDerivation& drv : all) paths.push_back(drv.path);
    while (!done) {
      auto got = store_->GetDerivations(paths);
      if (!got.ok()) {
        ++failures;
        continue;
      }
      for (size_t i = 0; i < got->size(); ++i) {
        if ((*got)[i].has_value() && *(*got)[i] != all[i]) ++failures;
      }
    }
  });
  for (int w = 0; w < kWriters; ++w) threads[w].join();
  done = true;
  threads.back().join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(inserted, kCalls * kPerCall);
  EXPECT_EQ(StatsOk().derivations, kCalls * kPerCall);
}

INSTANTIATE_TEST_SUITE_P(
    Implementations, DerivationStoreContractTest,
    ::testing::Values(
        Implementation{"Memory",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<MemoryAttestationStore>();
                       }},
        Implementation{"Sqlite",
                       [](const TempDir& dir) -> std::unique_ptr<AttestationStore> {
                         auto store = SqliteAttestationStore::Open(dir.File("attest.db"), {});
                         EXPECT_TRUE(store.ok()) << store.status();
                         if (!store.ok()) return nullptr;
                         return std::move(*store);
                       }},
        // The wrapper, with no fault planned, must be transparent.
        Implementation{"FaultInjectingWithoutFaults",
                       [](const TempDir&) -> std::unique_ptr<AttestationStore> {
                         return std::make_unique<testing::FaultInjectingStore>(
                             std::make_unique<MemoryAttestationStore>());
                       }}),
    [](const ::testing::TestParamInfo<Implementation>& info) { return info.param.name; });

}  // namespace
}  // namespace attest::storage
