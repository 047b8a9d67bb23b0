#include "storage/path_id_index.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attest::storage {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kSeed = 0x1234567887654321ULL;

// Rows with ids first..last; heads[id] is the head of row id.
absl::Status AddRows(PathIdIndex& index, const std::vector<int64_t>& heads, int64_t last) {
  return index.CatchUp(last, [&](int64_t after, PathIdIndex::AddRow add) {
    for (int64_t id = after + 1; id <= last; ++id) add(heads[id], id);
    return absl::OkStatus();
  });
}

std::vector<int64_t> IdsOf(const PathIdIndex& index, int64_t head) {
  std::vector<int64_t> ids;
  const int64_t heads[] = {head};
  index.Find(heads, [&](size_t i, int64_t id) {
    EXPECT_EQ(i, 0u);
    ids.push_back(id);
  });
  return ids;
}

std::vector<int64_t> RandomHeads(size_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> heads(count + 1);  // heads[0] unused: ids start at 1
  for (int64_t& head : heads) head = static_cast<int64_t>(rng());
  return heads;
}

TEST(PathIdIndexTest, FindsEveryRowThroughGrowth) {
  PathIdIndex index(size_t{64} << 20, kSeed);
  ASSERT_TRUE(index.usable());
  EXPECT_EQ(index.covered(), 0);
  const std::vector<int64_t> heads = RandomHeads(100000, 1);
  // In steps, so the table grows several times between catch-ups.
  for (int64_t last : {10, 1000, 1001, 50000, 100000}) {
    ASSERT_TRUE(AddRows(index, heads, last).ok());
    EXPECT_EQ(index.covered(), last);
  }
  ASSERT_TRUE(index.usable());
  for (int64_t id = 1; id <= 100000; ++id) {
    ASSERT_THAT(IdsOf(index, heads[id]), Contains(id)) << id;
  }
  // 100,000 rows at most 80% full: 131,072 slots of 8 bytes.
  EXPECT_EQ(index.bytes(), 131072u * 8);
}

TEST(PathIdIndexTest, FindAnswersEachHeadByItsPosition) {
  PathIdIndex index(size_t{1} << 20, kSeed);
  const std::vector<int64_t> heads = RandomHeads(3, 2);
  ASSERT_TRUE(AddRows(index, heads, 3).ok());
  const std::vector<int64_t> asked = {heads[3], heads[1], heads[3]};
  std::vector<std::pair<size_t, int64_t>> found;
  index.Find(asked, [&](size_t i, int64_t id) { found.emplace_back(i, id); });
  EXPECT_THAT(found, UnorderedElementsAre(std::pair<size_t, int64_t>{0, 3}, std::pair<size_t, int64_t>{1, 1},
                                          std::pair<size_t, int64_t>{2, 3}));
}

TEST(PathIdIndexTest, RowsSharingAHeadAreAllFound) {
  PathIdIndex index(size_t{1} << 20, kSeed);
  std::vector<int64_t> heads = {0, 77, 5, 77, 77};
  ASSERT_TRUE(AddRows(index, heads, 4).ok());
  EXPECT_THAT(IdsOf(index, 77), UnorderedElementsAre(1, 3, 4));
  EXPECT_THAT(IdsOf(index, 5), UnorderedElementsAre(2));
}

TEST(PathIdIndexTest, HeadsNeverAddedFindNothing) {
  PathIdIndex index(size_t{64} << 20, kSeed);
  const std::vector<int64_t> heads = RandomHeads(100000, 3);
  ASSERT_TRUE(AddRows(index, heads, 100000).ok());
  // Other random heads: a candidate needs the same 32-bit tag, about one in 40,000 lookups here.
  const std::vector<int64_t> others = RandomHeads(10000, 4);
  size_t candidates = 0;
  index.Find(others, [&](size_t, int64_t) { ++candidates; });
  EXPECT_LE(candidates, 3u);
  EXPECT_THAT(IdsOf(PathIdIndex(size_t{1} << 20, kSeed), 42), IsEmpty());
}

TEST(PathIdIndexTest, FetchesOnlyWhenBehind) {
  PathIdIndex index(size_t{1} << 20, kSeed);
  const std::vector<int64_t> heads = RandomHeads(20, 5);
  ASSERT_TRUE(AddRows(index, heads, 10).ok());
  int fetches = 0;
  int64_t asked_after = -1;
  auto fetch = [&](int64_t after, PathIdIndex::AddRow add) {
    ++fetches;
    asked_after = after;
    for (int64_t id = after + 1; id <= 20; ++id) add(heads[id], id);
    return absl::OkStatus();
  };
  ASSERT_TRUE(index.CatchUp(10, fetch).ok());
  ASSERT_TRUE(index.CatchUp(3, fetch).ok());  // an older snapshot
  EXPECT_EQ(fetches, 0);
  ASSERT_TRUE(index.CatchUp(20, fetch).ok());
  EXPECT_EQ(fetches, 1);
  EXPECT_EQ(asked_after, 10);
  EXPECT_EQ(index.covered(), 20);
  EXPECT_THAT(IdsOf(index, heads[15]), Contains(15));
}

TEST(PathIdIndexTest, FailedFetchLeavesTheIndexAsItWas) {
  PathIdIndex index(size_t{1} << 20, kSeed);
  const std::vector<int64_t> heads = RandomHeads(20, 6);
  ASSERT_TRUE(AddRows(index, heads, 10).ok());
  absl::Status failed = index.CatchUp(20, [&](int64_t after, PathIdIndex::AddRow add) {
    for (int64_t id = after + 1; id <= 15; ++id) add(heads[id], id);
    return absl::DataLossError("disk I/O error");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(index.covered(), 10);
  EXPECT_TRUE(index.usable());
  EXPECT_THAT(IdsOf(index, heads[12]), IsEmpty());
  ASSERT_TRUE(AddRows(index, heads, 20).ok());
  EXPECT_THAT(IdsOf(index, heads[12]), UnorderedElementsAre(12));
}

TEST(PathIdIndexTest, GivesUpWhenItWouldOutgrowItsBudget) {
  PathIdIndex index(8192, kSeed);  // 1,024 slots: 819 rows
  const std::vector<int64_t> heads = RandomHeads(1000, 7);
  ASSERT_TRUE(AddRows(index, heads, 819).ok());
  EXPECT_TRUE(index.usable());
  EXPECT_EQ(index.bytes(), 8192u);
  ASSERT_TRUE(AddRows(index, heads, 820).ok());  // not an error: readers fall back
  EXPECT_FALSE(index.usable());
  EXPECT_EQ(index.bytes(), 0u);
}

TEST(PathIdIndexTest, GivesUpOnIdsBeyond32Bits) {
  PathIdIndex index(size_t{1} << 20, kSeed);
  const int64_t big = int64_t{std::numeric_limits<uint32_t>::max()} + 1;
  ASSERT_TRUE(index.CatchUp(big, [&](int64_t, PathIdIndex::AddRow add) {
                     add(1, 1);
                     add(2, big);
                     return absl::OkStatus();
                   }).ok());
  EXPECT_FALSE(index.usable());
}

TEST(PathIdIndexTest, ZeroBudgetTurnsItOff) {
  PathIdIndex index(0, kSeed);
  EXPECT_FALSE(index.usable());
  int fetches = 0;
  ASSERT_TRUE(index.CatchUp(5, [&](int64_t, PathIdIndex::AddRow) {
                     ++fetches;
                     return absl::OkStatus();
                   }).ok());
  EXPECT_EQ(fetches, 0);
}

// Readers find every row the index covered before they looked, while another thread catches up and
// the table grows under them.
TEST(PathIdIndexTest, FindsRunConcurrentlyWithCatchUps) {
  PathIdIndex index(size_t{64} << 20, kSeed);
  const std::vector<int64_t> heads = RandomHeads(200000, 8);
  std::atomic<bool> done{false};
  std::atomic<int> misses{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      std::mt19937_64 rng(r);
      while (!done.load()) {
        const int64_t covered = index.covered();
        if (covered == 0) continue;
        const int64_t id = 1 + static_cast<int64_t>(rng() % covered);
        std::vector<int64_t> ids = IdsOf(index, heads[id]);
        if (std::ranges::find(ids, id) == ids.end()) ++misses;
      }
    });
  }
  for (int64_t last = 1000; last <= 200000; last += 1000) ASSERT_TRUE(AddRows(index, heads, last).ok());
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(misses.load(), 0);
}

}  // namespace
}  // namespace attest::storage
