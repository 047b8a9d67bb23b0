// DemandBook: decayed ordering, repeat suppression, budgets, bounds and the snapshot file.
#include "server/demand_book.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::server {
namespace {

using ::attest::testing::ReadFileOrDie;
using ::attest::testing::TempDir;
using ::attest::testing::TestStorePath;
using ::attest::testing::WriteFileOrDie;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// On a whole hour, so that the fixed hour and minute windows start there.
const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

DemandOptions HourlyOptions() {
  return DemandOptions{.half_life = absl::Hours(1),
                       .drop_below = 0.001,
                       .max_paths = 1000,
                       .repeat_window = absl::Hours(1),
                       .client_budget = 1000,
                       .budget_window = absl::Minutes(1),
                       .max_clients = 1000,
                       .max_recent = 100'000};
}

std::vector<std::string> Order(const DemandBook& book, absl::Time now) {
  std::vector<std::string> paths;
  book.ForEachByDemand(now, [&paths](const DemandEntry& entry) {
    paths.emplace_back(entry.path.name());
    return true;
  });
  return paths;
}

std::vector<DemandEntry> Entries(const DemandBook& book, absl::Time now) {
  std::vector<DemandEntry> entries;
  book.ForEachByDemand(now, [&entries](const DemandEntry& entry) {
    entries.push_back(entry);
    return true;
  });
  return entries;
}

// `count` requests for the path from distinct clients.
void Ask(DemandBook& book, std::string_view name, int count, absl::Time now, const std::string& client_tag = "c") {
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(book.Record(TestStorePath(name), absl::StrCat(client_tag, i), now), DemandCount::kCounted)
        << name << " request " << i;
  }
}

TEST(DemandBookTest, OldDemandRanksBelowRecentDemandOnceItDecayed) {
  DemandBook book(HourlyOptions());
  Ask(book, "old", 8, kT0);
  Ask(book, "older", 4, kT0);
  EXPECT_THAT(book.DemandOf(TestStorePath("old"), kT0), DoubleNear(8, 1e-6));
  EXPECT_THAT(Order(book, kT0), ElementsAre("old", "older"));

  const absl::Time later = kT0 + absl::Hours(2);
  Ask(book, "new", 3, later, "d");
  EXPECT_THAT(book.DemandOf(TestStorePath("old"), later), DoubleNear(2, 1e-6));
  EXPECT_THAT(book.DemandOf(TestStorePath("new"), later), DoubleNear(3, 1e-6));
  EXPECT_THAT(Order(book, later), ElementsAre("new", "old", "older"));
  // Passing time changes the values, not the order.
  EXPECT_THAT(Order(book, later + absl::Hours(5)), ElementsAre("new", "old", "older"));

  const std::vector<DemandEntry> entries = Entries(book, later);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].path, TestStorePath("new"));
  EXPECT_THAT(entries[0].demand, DoubleNear(3, 1e-6));
  EXPECT_EQ(entries[0].requests, 3);
  EXPECT_EQ(entries[0].last_requested, later);
  EXPECT_THAT(entries[1].demand, DoubleNear(2, 1e-6));
  EXPECT_EQ(entries[1].requests, 8);  // not decayed
  EXPECT_EQ(entries[1].last_requested, kT0);
}

TEST(DemandBookTest, RequestsAddToDecayedDemand) {
  DemandBook book(HourlyOptions());
  Ask(book, "p", 4, kT0);
  Ask(book, "p", 1, kT0 + absl::Hours(1), "d");  // 4 halved to 2, plus 1
  EXPECT_THAT(book.DemandOf(TestStorePath("p"), kT0 + absl::Hours(1)), DoubleNear(3, 1e-6));
  EXPECT_THAT(book.DemandOf(TestStorePath("p"), kT0 + absl::Hours(2)), DoubleNear(1.5, 1e-6));
  EXPECT_EQ(book.DemandOf(TestStorePath("never-asked"), kT0), 0);
}

TEST(DemandBookTest, EqualDemandIsOrderedByPath) {
  DemandBook book(HourlyOptions());
  const std::vector<std::string> names = {"b", "c", "a", "d"};
  for (const std::string& name : names) Ask(book, name, 2, kT0);
  std::vector<std::string> full_paths;
  book.ForEachByDemand(kT0, [&full_paths](const DemandEntry& entry) {
    full_paths.push_back(entry.path.full());
    return true;
  });
  ASSERT_EQ(full_paths.size(), 4u);
  EXPECT_TRUE(std::is_sorted(full_paths.begin(), full_paths.end()));
}

TEST(DemandBookTest, VisitStopsWhenTheCallbackSaysSo) {
  DemandBook book(HourlyOptions());
  Ask(book, "one", 1, kT0);
  Ask(book, "two", 2, kT0);
  Ask(book, "three", 3, kT0);
  std::vector<std::string> seen;
  book.ForEachByDemand(kT0, [&seen](const DemandEntry& entry) {
    seen.emplace_back(entry.path.name());
    return seen.size() < 2;
  });
  EXPECT_THAT(seen, ElementsAre("three", "two"));
}

TEST(DemandBookTest, OneClientCountsOncePerPathPerRepeatWindow) {
  DemandBook book(HourlyOptions());
  const consensus::StorePath path = TestStorePath("p");
  EXPECT_EQ(book.Record(path, "192.0.2.1", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(path, "192.0.2.1", kT0 + absl::Minutes(1)), DemandCount::kRepeat);
  EXPECT_EQ(book.Record(path, "192.0.2.1", kT0 + absl::Minutes(59)), DemandCount::kRepeat);
  // Another client, and the same client for another path, count.
  EXPECT_EQ(book.Record(path, "192.0.2.2", kT0 + absl::Minutes(2)), DemandCount::kCounted);
  EXPECT_EQ(book.Record(TestStorePath("q"), "192.0.2.1", kT0 + absl::Minutes(2)), DemandCount::kCounted);
  // The next window counts the client again.
  EXPECT_EQ(book.Record(path, "192.0.2.1", kT0 + absl::Hours(1)), DemandCount::kCounted);
  EXPECT_EQ(book.Record(path, "192.0.2.1", kT0 + absl::Hours(1) + absl::Minutes(5)), DemandCount::kRepeat);

  const std::vector<DemandEntry> entries = Entries(book, kT0 + absl::Hours(1));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].path, path);
  EXPECT_EQ(entries[0].requests, 3);
  const DemandStats stats = book.stats();
  EXPECT_EQ(stats.counted, 4u);
  EXPECT_EQ(stats.repeats, 3u);
  EXPECT_EQ(stats.paths, 2u);
}

TEST(DemandBookTest, ClientBudgetRunsOutAndRenewsWithTheWindow) {
  DemandOptions options = HourlyOptions();
  options.client_budget = 3;
  DemandBook book(options);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(book.Record(TestStorePath(absl::StrCat("p", i)), "198.51.100.7", kT0), DemandCount::kCounted);
  }
  EXPECT_EQ(book.Record(TestStorePath("p3"), "198.51.100.7", kT0 + absl::Seconds(30)), DemandCount::kRateLimited);
  EXPECT_EQ(book.DemandOf(TestStorePath("p3"), kT0 + absl::Seconds(30)), 0);
  // Other clients have their own budget.
  EXPECT_EQ(book.Record(TestStorePath("p3"), "198.51.100.8", kT0 + absl::Seconds(30)), DemandCount::kCounted);
  // The next minute renews it.
  EXPECT_EQ(book.Record(TestStorePath("p4"), "198.51.100.7", kT0 + absl::Minutes(1)), DemandCount::kCounted);
  EXPECT_EQ(book.stats().rate_limited, 1u);
  EXPECT_EQ(book.stats().counted, 5u);
}

TEST(DemandBookTest, UnknownClientsShareOneBudget) {
  DemandOptions options = HourlyOptions();
  options.client_budget = 2;
  DemandBook book(options);
  EXPECT_EQ(book.Record(TestStorePath("a"), "", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(TestStorePath("b"), "", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(TestStorePath("c"), "", kT0), DemandCount::kRateLimited);
  EXPECT_EQ(book.Record(TestStorePath("a"), "", kT0 + absl::Minutes(1)), DemandCount::kRepeat);
}

TEST(DemandBookTest, FullBookReplacesItsLeastDemandedPathOnlyForAHigherDemand) {
  DemandOptions options = HourlyOptions();
  options.max_paths = 2;
  DemandBook book(options);
  Ask(book, "popular", 4, kT0);
  Ask(book, "single", 1, kT0);
  // A newcomer's demand is 1: not above "single" now, so the book is full for it.
  EXPECT_EQ(book.Record(TestStorePath("newcomer"), "x", kT0), DemandCount::kFull);
  EXPECT_EQ(book.stats().full, 1u);
  EXPECT_THAT(Order(book, kT0), ElementsAre("popular", "single"));
  // An hour later "single" decayed to 0.5: the newcomer's 1 replaces it.
  const absl::Time later = kT0 + absl::Hours(1);
  EXPECT_EQ(book.Record(TestStorePath("newcomer"), "x", later), DemandCount::kCounted);
  EXPECT_THAT(Order(book, later), ElementsAre("popular", "newcomer"));
  EXPECT_EQ(book.DemandOf(TestStorePath("single"), later), 0);
  EXPECT_EQ(book.stats().paths, 2u);
  // A path in the book is counted whatever its rank.
  EXPECT_EQ(book.Record(TestStorePath("newcomer"), "y", later), DemandCount::kCounted);
  EXPECT_THAT(book.DemandOf(TestStorePath("newcomer"), later), DoubleNear(2, 1e-6));
}

TEST(DemandBookTest, ManyDistinctPathsStayWithinTheBound) {
  DemandOptions options = HourlyOptions();
  options.max_paths = 50;
  DemandBook book(options);
  for (int i = 0; i < 1000; ++i) {
    book.Record(TestStorePath(absl::StrCat("flood-", i)), absl::StrCat("c", i % 500),
                kT0 + absl::Seconds(i));
  }
  EXPECT_EQ(book.stats().paths, 50u);
  EXPECT_EQ(Entries(book, kT0 + absl::Seconds(1000)).size(), 50u);
  // The newest requests are the ones with the highest demand now, so they are the ones kept.
  const std::vector<std::string> order = Order(book, kT0 + absl::Seconds(1000));
  EXPECT_EQ(order.front(), "flood-999");
  EXPECT_EQ(order.back(), "flood-950");
}

TEST(DemandBookTest, ClientBoundRateLimitsNewClientsUntilTheWindowEnds) {
  DemandOptions options = HourlyOptions();
  options.max_clients = 2;
  DemandBook book(options);
  const consensus::StorePath path = TestStorePath("p");
  EXPECT_EQ(book.Record(path, "c1", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(path, "c2", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(path, "c3", kT0), DemandCount::kRateLimited);
  // Known clients go on.
  EXPECT_EQ(book.Record(TestStorePath("q"), "c1", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(path, "c3", kT0 + absl::Minutes(1)), DemandCount::kCounted);
  EXPECT_EQ(book.stats().rate_limited, 1u);
}

TEST(DemandBookTest, RecentPairBoundRateLimitsNewPairsUntilTheWindowEnds) {
  DemandOptions options = HourlyOptions();
  options.max_recent = 2;
  DemandBook book(options);
  EXPECT_EQ(book.Record(TestStorePath("a"), "c1", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(TestStorePath("b"), "c1", kT0), DemandCount::kCounted);
  EXPECT_EQ(book.Record(TestStorePath("c"), "c2", kT0), DemandCount::kRateLimited);
  // A pair already tracked is still a repeat: a flood does not make honest repeats count again.
  EXPECT_EQ(book.Record(TestStorePath("a"), "c1", kT0), DemandCount::kRepeat);
  EXPECT_EQ(book.Record(TestStorePath("c"), "c2", kT0 + absl::Hours(1)), DemandCount::kCounted);
}

TEST(DemandBookTest, PathsBelowDropBelowAreForgotten) {
  DemandOptions options = HourlyOptions();
  options.drop_below = 0.25;
  DemandBook book(options);
  Ask(book, "fading", 1, kT0);
  Ask(book, "strong", 4, kT0);
  const absl::Time two_half_lives = kT0 + absl::Hours(2);
  EXPECT_THAT(book.DemandOf(TestStorePath("fading"), two_half_lives), DoubleNear(0.25, 1e-6));
  EXPECT_THAT(Order(book, two_half_lives), ElementsAre("strong", "fading"));
  const absl::Time after = two_half_lives + absl::Minutes(1);
  EXPECT_EQ(book.DemandOf(TestStorePath("fading"), after), 0);
  EXPECT_THAT(Order(book, after), ElementsAre("strong"));
  EXPECT_EQ(book.stats().paths, 1u);
  // Asked again, it starts from 1, as a new path (above "strong", which decayed from 4 to just under 1).
  Ask(book, "fading", 1, after, "d");
  const std::vector<DemandEntry> entries = Entries(book, after);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].path, TestStorePath("fading"));
  EXPECT_EQ(entries[0].requests, 1);
  EXPECT_THAT(entries[0].demand, DoubleNear(1, 1e-6));
  EXPECT_EQ(entries[1].path, TestStorePath("strong"));
  EXPECT_EQ(entries[1].requests, 4);
}

TEST(DemandBookTest, ForgetDropsThePath) {
  DemandBook book(HourlyOptions());
  Ask(book, "confirmed", 5, kT0);
  Ask(book, "wanted", 1, kT0);
  book.Forget(TestStorePath("confirmed"));
  book.Forget(TestStorePath("not-in-the-book"));
  EXPECT_EQ(book.DemandOf(TestStorePath("confirmed"), kT0), 0);
  EXPECT_THAT(Order(book, kT0), ElementsAre("wanted"));
  EXPECT_EQ(book.stats().paths, 1u);
  Ask(book, "confirmed", 1, kT0, "other");
  EXPECT_EQ(Entries(book, kT0)[1].requests, 1);
}

TEST(DemandBookTest, SnapshotRoundTrip) {
  TempDir dir;
  const std::string file = dir.File("demand");
  DemandBook book(HourlyOptions());
  Ask(book, "a", 6, kT0);
  Ask(book, "b", 3, kT0 + absl::Minutes(30));
  Ask(book, "c", 1, kT0 + absl::Minutes(45));
  const absl::Time saved = kT0 + absl::Hours(1);
  ASSERT_TRUE(book.SaveTo(file, saved).ok());
  EXPECT_THAT(ReadFileOrDie(file), StartsWith("attest-demand-book 1\n"));

  DemandBook loaded(HourlyOptions());
  Ask(loaded, "replaced-by-the-load", 1, kT0);
  ASSERT_TRUE(loaded.LoadFrom(file, saved).ok());
  const std::vector<DemandEntry> before = Entries(book, saved);
  const std::vector<DemandEntry> after = Entries(loaded, saved);
  ASSERT_EQ(before.size(), 3u);
  ASSERT_EQ(after.size(), 3u);
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].path, before[i].path);
    EXPECT_THAT(after[i].demand, DoubleNear(before[i].demand, 1e-6));
    EXPECT_EQ(after[i].requests, before[i].requests);
    EXPECT_EQ(after[i].last_requested, before[i].last_requested);
  }
  // Loaded later, the demand decayed since the save.
  DemandBook restarted(HourlyOptions());
  ASSERT_TRUE(restarted.LoadFrom(file, saved + absl::Hours(1)).ok());
  EXPECT_THAT(restarted.DemandOf(TestStorePath("a"), saved + absl::Hours(1)), DoubleNear(1.5, 1e-6));
  EXPECT_EQ(restarted.stats().paths, 3u);
}

TEST(DemandBookTest, SnapshotOfABiggerBookKeepsTheMostDemandedPaths) {
  TempDir dir;
  DemandBook book(HourlyOptions());
  Ask(book, "a", 3, kT0);
  Ask(book, "b", 2, kT0);
  Ask(book, "c", 1, kT0);
  ASSERT_TRUE(book.SaveTo(dir.File("demand"), kT0).ok());
  DemandOptions options = HourlyOptions();
  options.max_paths = 2;
  DemandBook smaller(options);
  ASSERT_TRUE(smaller.LoadFrom(dir.File("demand"), kT0).ok());
  EXPECT_THAT(Order(smaller, kT0), ElementsAre("a", "b"));
}

TEST(DemandBookTest, SnapshotLeavesOutDemandDecayedToNothing) {
  TempDir dir;
  DemandOptions options = HourlyOptions();
  options.drop_below = 0;  // nothing is forgotten by decay
  DemandBook book(options);
  Ask(book, "ancient", 1, kT0);
  const absl::Time much_later = kT0 + absl::Hours(2000);  // 2^-2000: no double holds it
  Ask(book, "recent", 1, much_later);
  ASSERT_TRUE(book.SaveTo(dir.File("demand"), much_later).ok());
  DemandBook loaded(options);
  ASSERT_TRUE(loaded.LoadFrom(dir.File("demand"), much_later).ok());
  EXPECT_THAT(Order(loaded, much_later), ElementsAre("recent"));
}

TEST(DemandBookTest, MissingSnapshotIsAnEmptyBook) {
  TempDir dir;
  DemandBook book(HourlyOptions());
  EXPECT_TRUE(book.LoadFrom(dir.File("never-written"), kT0).ok());
  EXPECT_EQ(book.stats().paths, 0u);
}

TEST(DemandBookTest, DamagedSnapshotIsDataLossAndLeavesTheBookEmpty) {
  TempDir dir;
  const std::string good_file = dir.File("good");
  {
    DemandBook book(HourlyOptions());
    Ask(book, "a", 2, kT0);
    Ask(book, "b", 1, kT0);
    ASSERT_TRUE(book.SaveTo(good_file, kT0).ok());
  }
  const std::string good = ReadFileOrDie(good_file);
  const std::string path_a = TestStorePath("a").full();
  struct Case {
    std::string name;
    std::string content;
    std::string message;
  };
  std::vector<Case> cases = {
      {"garbage", "\x01\x02 not a snapshot\n", "no header"},
      {"newer", absl::StrCat("attest-demand-book 2\n", good.substr(good.find('\n') + 1)), "format '2'"},
      {"cut", good.substr(0, good.size() - 3), "line end"},
      {"no end line", good.substr(0, good.find("end ")), "without its end line"},
      {"wrong count", absl::StrCat(good.substr(0, good.find("end ")), "end 5\n"), "end line"},
      {"bad path", absl::StrCat("attest-demand-book 1\nsaved 0\n1 1 0 /nix/store/short-a\nend 1\n"), "line 3"},
      {"bad demand", absl::StrCat("attest-demand-book 1\nsaved 0\n-1 1 0 ", path_a, "\nend 1\n"), "demand"},
      {"twice", absl::StrCat("attest-demand-book 1\nsaved 0\n2 1 0 ", path_a, "\n1 1 0 ", path_a, "\nend 2\n"),
       "listed twice"},
      {"empty", "", "before its header"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string file = dir.File("damaged");
    WriteFileOrDie(file, c.content);
    DemandBook book(HourlyOptions());
    Ask(book, "present-before", 1, kT0);
    const absl::Status loaded = book.LoadFrom(file, kT0);
    EXPECT_EQ(loaded.code(), absl::StatusCode::kDataLoss) << loaded;
    EXPECT_THAT(loaded.message(), HasSubstr(file));
    EXPECT_THAT(loaded.message(), HasSubstr(c.message));
    EXPECT_EQ(book.stats().paths, 0u);
    EXPECT_TRUE(Order(book, kT0).empty());
  }
}

TEST(DemandBookTest, SaveIntoAMissingDirectoryNamesTheFile) {
  TempDir dir;
  DemandBook book(HourlyOptions());
  Ask(book, "a", 1, kT0);
  const std::string file = dir.File("no-such-directory/demand");
  const absl::Status saved = book.SaveTo(file, kT0);
  EXPECT_EQ(saved.code(), absl::StatusCode::kNotFound) << saved;
  EXPECT_THAT(saved.message(), HasSubstr(file));
}

TEST(DemandBookTest, ConcurrentRecordsAllCount) {
  DemandOptions options = HourlyOptions();
  options.max_clients = 10'000;
  DemandBook book(options);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  constexpr int kPaths = 10;
  std::atomic<int> counted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&book, &counted, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Distinct (client, path) pairs; clients stay within their budget of 1000 a minute.
        if (book.Record(TestStorePath(absl::StrCat("p", i % kPaths)), absl::StrCat("t", t, "-", i), kT0) ==
            DemandCount::kCounted) {
          ++counted;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counted.load(), kThreads * kPerThread);
  EXPECT_EQ(book.stats().counted, static_cast<uint64_t>(kThreads * kPerThread));
  int64_t requests = 0;
  double demand = 0;
  for (const DemandEntry& entry : Entries(book, kT0)) {
    requests += entry.requests;
    demand += entry.demand;
  }
  EXPECT_EQ(requests, kThreads * kPerThread);
  EXPECT_THAT(demand, DoubleNear(kThreads * kPerThread, 1e-3));
  EXPECT_EQ(book.stats().paths, static_cast<size_t>(kPaths));
}

}  // namespace
}  // namespace attest::server
