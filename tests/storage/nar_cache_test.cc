#include "storage/nar_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace attest::storage {
namespace {

using ::attest::testing::TempDir;
using ::attest::testing::WriteFileOrDie;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Bytes that depend on the key and the size, so a reader can tell which writer's NAR it got.
std::string Content(std::string_view key, uint64_t size) {
  std::string bytes(size, '\0');
  uint32_t state = static_cast<uint32_t>(std::hash<std::string_view>()(key)) ^ static_cast<uint32_t>(size * 2654435761u);
  for (char& c : bytes) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  return bytes;
}

std::span<const uint8_t> Span(const std::string& bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
}

absl::Status Put(NarCache& cache, std::string_view key, const std::string& bytes) {
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> writer = cache.Begin(key, bytes.size());
  if (!writer.ok()) return writer.status();
  // In pieces, as a relay appends.
  for (size_t done = 0; done < bytes.size(); done += 4096) {
    const size_t n = std::min<size_t>(4096, bytes.size() - done);
    if (absl::Status s = (*writer)->Append(Span(bytes).subspan(done, n)); !s.ok()) return s;
  }
  return (*writer)->Commit();
}

std::string ReadAll(int fd) {
  std::string out;
  char buffer[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// Name -> size of every file in `dir` (directories as -1).
std::map<std::string, int64_t> FilesIn(const std::string& dir) {
  std::map<std::string, int64_t> files;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return files;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;
    files[name] = S_ISDIR(st.st_mode) ? -1 : static_cast<int64_t>(st.st_size);
  }
  ::closedir(d);
  return files;
}

void SetMtime(const std::string& path, time_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

std::unique_ptr<NarCache> OpenOrDie(const std::string& directory, uint64_t max_bytes) {
  absl::StatusOr<std::unique_ptr<NarCache>> cache =
      NarCache::Open(NarCacheOptions{.directory = directory, .max_bytes = max_bytes});
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(*cache) : nullptr;
}

TEST(NarCacheTest, WriteCommitLookupRoundTrip) {
  TempDir tmp;
  const std::string directory = tmp.File("a/b/nars");  // parents created
  std::unique_ptr<NarCache> cache = OpenOrDie(directory, 1 << 20);
  ASSERT_NE(cache, nullptr);
  const std::string bytes = Content("abc-1", 100000);
  ASSERT_TRUE(Put(*cache, "abc-1", bytes).ok());

  std::optional<NarCache::Hit> hit = cache->Lookup("abc-1");
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->verified);
  EXPECT_EQ(hit->size, bytes.size());
  EXPECT_EQ(ReadAll(hit->fd.get()), bytes);
  EXPECT_FALSE(cache->Lookup("abc-2").has_value());

  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.bytes, bytes.size());
  EXPECT_EQ(stats.reserved, 0u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_THAT(FilesIn(directory), ElementsAre(Pair("abc-1.nar", 100000)));
  struct stat st;
  ASSERT_EQ(::stat((directory + "/abc-1.nar").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777 & ~0022, 0644 & ~0022);
}

TEST(NarCacheTest, EmptyNarRoundTrips) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 100);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "empty", "").ok());
  std::optional<NarCache::Hit> hit = cache->Lookup("empty");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->size, 0u);
  EXPECT_EQ(ReadAll(hit->fd.get()), "");
}

TEST(NarCacheTest, OpenRefusesBadOptionsAndUnusableDirectories) {
  TempDir tmp;
  absl::StatusOr<std::unique_ptr<NarCache>> cache = NarCache::Open(NarCacheOptions{.directory = "", .max_bytes = 10});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument) << cache.status();
  cache = NarCache::Open(NarCacheOptions{.directory = tmp.path(), .max_bytes = 0});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kInvalidArgument) << cache.status();

  WriteFileOrDie(tmp.File("file"), "not a directory");
  cache = NarCache::Open(NarCacheOptions{.directory = tmp.File("file"), .max_bytes = 10});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kFailedPrecondition) << cache.status();
  EXPECT_THAT(cache.status().message(), HasSubstr(tmp.File("file")));
  cache = NarCache::Open(NarCacheOptions{.directory = tmp.File("file/below"), .max_bytes = 10});
  EXPECT_EQ(cache.status().code(), absl::StatusCode::kFailedPrecondition) << cache.status();
  EXPECT_THAT(cache.status().message(), HasSubstr(tmp.File("file/below")));
}

TEST(NarCacheTest, WriterDestroyedWithoutCommitLeavesNothing) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  {
    absl::StatusOr<std::unique_ptr<NarCache::Writer>> writer = cache->Begin("half", 1000);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->Append(Span(Content("half", 500))).ok());
    EXPECT_EQ(cache->stats().reserved, 1000u);
    EXPECT_EQ(FilesIn(tmp.path()).size(), 1u);  // the .part file
  }
  EXPECT_TRUE(FilesIn(tmp.path()).empty());
  EXPECT_EQ(cache->stats().reserved, 0u);
  EXPECT_FALSE(cache->Lookup("half").has_value());
  // The whole bound is free again.
  EXPECT_TRUE(Put(*cache, "full", Content("full", 1000)).ok());
}

TEST(NarCacheTest, AppendBeyondTheSizeAndShortCommitAreFailedPrecondition) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  const std::string bytes = Content("k", 10);

  absl::StatusOr<std::unique_ptr<NarCache::Writer>> writer = cache->Begin("k", 10);
  ASSERT_TRUE(writer.ok()) << writer.status();
  absl::Status status = (*writer)->Append(Span(Content("x", 11)));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("11"));
  ASSERT_TRUE((*writer)->Append(Span(bytes).subspan(0, 5)).ok());
  status = (*writer)->Commit();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("5 bytes appended"));
  EXPECT_FALSE(cache->Lookup("k").has_value());
  // A short Commit is not the end: the rest may follow.
  ASSERT_TRUE((*writer)->Append(Span(bytes).subspan(5)).ok());
  status = (*writer)->Append(Span(bytes).subspan(0, 1));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ((*writer)->Commit().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*writer)->Append(Span(bytes)).code(), absl::StatusCode::kFailedPrecondition);
  writer->reset();  // destroying a committed writer keeps the file

  std::optional<NarCache::Hit> hit = cache->Lookup("k");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(ReadAll(hit->fd.get()), bytes);
  EXPECT_EQ(cache->stats().reserved, 0u);
  EXPECT_EQ(cache->stats().bytes, 10u);
}

TEST(NarCacheTest, EvictsTheLeastRecentlyUsedAndALookupCountsAsUse) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 300);
  ASSERT_NE(cache, nullptr);
  for (const char* key : {"a", "b", "c"}) ASSERT_TRUE(Put(*cache, key, Content(key, 100)).ok());
  ASSERT_TRUE(cache->Lookup("a").has_value());  // a is now more recent than b and c

  ASSERT_TRUE(Put(*cache, "d", Content("d", 100)).ok());
  EXPECT_FALSE(cache->Lookup("b").has_value());
  EXPECT_EQ(cache->stats().evictions, 1u);
  EXPECT_THAT(FilesIn(tmp.path()),
              ElementsAre(Pair("a.nar", 100), Pair("c.nar", 100), Pair("d.nar", 100)));

  // Least recent first is now c, a, d: 150 more bytes evict c, then a.
  ASSERT_TRUE(Put(*cache, "e", Content("e", 150)).ok());
  EXPECT_FALSE(cache->Lookup("c").has_value());
  EXPECT_FALSE(cache->Lookup("a").has_value());
  EXPECT_TRUE(cache->Lookup("d").has_value());
  EXPECT_TRUE(cache->Lookup("e").has_value());
  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.evictions, 3u);
  EXPECT_EQ(stats.bytes, 250u);
  EXPECT_EQ(stats.entries, 2u);
}

TEST(NarCacheTest, TheBoundIsNeverExceeded) {
  TempDir tmp;
  constexpr uint64_t kMax = 10000;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), kMax);
  ASSERT_NE(cache, nullptr);
  std::mt19937 random(7);
  for (int i = 0; i < 120; ++i) {
    const std::string key = "k" + std::to_string(random() % 40);
    const uint64_t size = random() % 3000;
    ASSERT_TRUE(Put(*cache, key, Content(key, size)).ok()) << i;
    if (random() % 3 == 0) cache->Lookup("k" + std::to_string(random() % 40));
    const NarCacheStats stats = cache->stats();
    ASSERT_LE(stats.bytes + stats.reserved, kMax) << i;
    int64_t on_disk = 0;
    for (const auto& [name, file_size] : FilesIn(tmp.path())) on_disk += file_size;
    ASSERT_EQ(static_cast<uint64_t>(on_disk), stats.bytes) << i;
  }
  EXPECT_GT(cache->stats().evictions, 0u);
}

TEST(NarCacheTest, ANarLargerThanTheCacheIsResourceExhausted) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "small", Content("small", 100)).ok());
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> writer = cache->Begin("huge", 1001);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kResourceExhausted) << writer.status();
  EXPECT_THAT(writer.status().message(), HasSubstr("1001 bytes"));
  EXPECT_THAT(writer.status().message(), HasSubstr("1000 bytes"));
  EXPECT_TRUE(cache->Lookup("small").has_value());  // nothing evicted for it
  EXPECT_EQ(cache->stats().reserved, 0u);
}

TEST(NarCacheTest, WritersInProgressCountAgainstTheBound) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "x", Content("x", 300)).ok());
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> first = cache->Begin("first", 600);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(cache->stats().reserved, 600u);

  absl::StatusOr<std::unique_ptr<NarCache::Writer>> second = cache->Begin("second", 500);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("500 bytes"));
  EXPECT_THAT(second.status().message(), HasSubstr("1000 bytes"));
  EXPECT_THAT(second.status().message(), HasSubstr("600 of them reserved by 1 transfers in progress"));
  EXPECT_TRUE(cache->Lookup("x").has_value());  // a Begin that fails evicts nothing

  second = cache->Begin("second", 400);  // fits once x is evicted
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(cache->Lookup("x").has_value());
  NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.reserved, 1000u);
  EXPECT_EQ(stats.bytes, 0u);

  ASSERT_TRUE((*first)->Append(Span(Content("first", 600))).ok());
  ASSERT_TRUE((*first)->Commit().ok());
  stats = cache->stats();
  EXPECT_EQ(stats.reserved, 400u);
  EXPECT_EQ(stats.bytes, 600u);
  second->reset();
  EXPECT_EQ(cache->stats().reserved, 0u);
}

TEST(NarCacheTest, TwoWritersOfOneKeyTheLastCommitWins) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> one = cache->Begin("same", 30);
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> two = cache->Begin("same", 40);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(FilesIn(tmp.path()).size(), 2u);  // two distinct .part files
  ASSERT_TRUE((*one)->Append(Span(Content("same", 30))).ok());
  ASSERT_TRUE((*two)->Append(Span(Content("same", 40))).ok());
  ASSERT_TRUE((*two)->Commit().ok());
  ASSERT_TRUE((*one)->Commit().ok());

  std::optional<NarCache::Hit> hit = cache->Lookup("same");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->size, 30u);
  EXPECT_EQ(ReadAll(hit->fd.get()), Content("same", 30));
  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.bytes, 30u);
  EXPECT_EQ(stats.entries, 1u);
  EXPECT_EQ(stats.reserved, 0u);
  EXPECT_THAT(FilesIn(tmp.path()), ElementsAre(Pair("same.nar", 30)));
}

TEST(NarCacheTest, ReopenIndexesFilesUnverifiedDeletesPartsAndLeavesOtherFilesAlone) {
  TempDir tmp;
  {
    std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
    ASSERT_NE(cache, nullptr);
    ASSERT_TRUE(Put(*cache, "kept", Content("kept", 100)).ok());
  }
  // What a crash during a write leaves.
  WriteFileOrDie(tmp.File("crashed.1.part"), Content("crashed", 50));
  WriteFileOrDie(tmp.File("other-7.3.part"), "partial");
  WriteFileOrDie(tmp.File("placed-by-hand.nar"), Content("placed-by-hand", 20));
  WriteFileOrDie(tmp.File("README"), "junk");
  WriteFileOrDie(tmp.File("Upper.nar"), std::string(500, 'x'));  // not a key
  WriteFileOrDie(tmp.File("a.b.nar"), std::string(500, 'x'));    // not a key
  ASSERT_EQ(::mkdir(tmp.File("dir.nar").c_str(), 0755), 0);      // not a file
  ASSERT_EQ(::mkdir(tmp.File("dir.part").c_str(), 0755), 0);     // not a writer's
  ASSERT_EQ(::symlink(tmp.File("README").c_str(), tmp.File("link.nar").c_str()), 0);

  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, 120u);
  EXPECT_EQ(stats.reserved, 0u);
  EXPECT_EQ(stats.evictions, 0u);
  std::optional<NarCache::Hit> hit = cache->Lookup("kept");
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->verified);
  EXPECT_EQ(ReadAll(hit->fd.get()), Content("kept", 100));
  hit = cache->Lookup("placed-by-hand");
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->verified);
  EXPECT_FALSE(cache->Lookup("link").has_value());
  EXPECT_FALSE(cache->Lookup("dir").has_value());
  EXPECT_THAT(FilesIn(tmp.path()),
              ElementsAre(Pair("README", 4), Pair("Upper.nar", 500), Pair("a.b.nar", 500), Pair("dir.nar", -1),
                          Pair("dir.part", -1), Pair("kept.nar", 100), Pair("link.nar", 4), Pair("placed-by-hand.nar", 20)));

  cache->MarkVerified("kept");
  hit = cache->Lookup("kept");
  ASSERT_TRUE(hit.has_value());
  EXPECT_TRUE(hit->verified);
  hit = cache->Lookup("placed-by-hand");
  ASSERT_TRUE(hit.has_value());
  EXPECT_FALSE(hit->verified);
  cache->MarkVerified("absent");  // no entry: nothing happens
  EXPECT_EQ(cache->stats().entries, 2u);
}

TEST(NarCacheTest, ReopenWithASmallerBoundEvictsTheOldestFiles) {
  TempDir tmp;
  {
    std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
    ASSERT_NE(cache, nullptr);
    for (const char* key : {"a", "b", "c", "d"}) ASSERT_TRUE(Put(*cache, key, Content(key, 100)).ok());
  }
  SetMtime(tmp.File("a.nar"), 1'700'000'300);
  SetMtime(tmp.File("b.nar"), 1'700'000'100);  // oldest
  SetMtime(tmp.File("c.nar"), 1'700'000'400);
  SetMtime(tmp.File("d.nar"), 1'700'000'200);
  WriteFileOrDie(tmp.File("junk"), std::string(1000, 'j'));  // not counted, not evicted

  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 250);
  ASSERT_NE(cache, nullptr);
  NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.entries, 2u);
  EXPECT_EQ(stats.bytes, 200u);
  EXPECT_EQ(stats.evictions, 2u);
  EXPECT_THAT(FilesIn(tmp.path()), ElementsAre(Pair("a.nar", 100), Pair("c.nar", 100), Pair("junk", 1000)));

  // Modification time is also the LRU order of what remains: a goes before c.
  ASSERT_TRUE(Put(*cache, "e", Content("e", 100)).ok());
  EXPECT_FALSE(cache->Lookup("a").has_value());
  EXPECT_TRUE(cache->Lookup("c").has_value());
}

TEST(NarCacheTest, RemoveDeletesTheFileButAnOpenHitStillReads) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "gone", Content("gone", 300)).ok());
  std::optional<NarCache::Hit> hit = cache->Lookup("gone");
  ASSERT_TRUE(hit.has_value());
  cache->Remove("gone");
  EXPECT_FALSE(cache->Lookup("gone").has_value());
  EXPECT_TRUE(FilesIn(tmp.path()).empty());
  EXPECT_EQ(cache->stats().bytes, 0u);
  EXPECT_EQ(cache->stats().entries, 0u);
  EXPECT_EQ(ReadAll(hit->fd.get()), Content("gone", 300));
  cache->Remove("gone");    // again: nothing
  cache->Remove("Bad/Key");  // invalid: nothing
  EXPECT_EQ(cache->stats().evictions, 0u);
}

TEST(NarCacheTest, AnOpenHitStillReadsAfterEviction) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "old", Content("old", 1000)).ok());
  std::optional<NarCache::Hit> hit = cache->Lookup("old");
  ASSERT_TRUE(hit.has_value());
  ASSERT_TRUE(Put(*cache, "new", Content("new", 1000)).ok());  // evicts old while it is being read
  EXPECT_FALSE(cache->Lookup("old").has_value());
  EXPECT_EQ(cache->stats().evictions, 1u);
  EXPECT_THAT(FilesIn(tmp.path()), ElementsAre(Pair("new.nar", 1000)));
  EXPECT_EQ(ReadAll(hit->fd.get()), Content("old", 1000));
}

TEST(NarCacheTest, ALookupOfAVanishedOrChangedFileDropsTheEntry) {
  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(Put(*cache, "vanished", Content("vanished", 100)).ok());
  ASSERT_TRUE(Put(*cache, "grown", Content("grown", 100)).ok());
  ASSERT_EQ(::unlink(tmp.File("vanished.nar").c_str()), 0);
  WriteFileOrDie(tmp.File("grown.nar"), Content("grown", 150));

  EXPECT_FALSE(cache->Lookup("vanished").has_value());
  EXPECT_FALSE(cache->Lookup("grown").has_value());
  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.entries, 0u);
  EXPECT_EQ(stats.bytes, 0u);
  EXPECT_TRUE(FilesIn(tmp.path()).empty());  // the changed file was deleted, not left uncounted
}

TEST(NarCacheTest, InvalidKeys) {
  EXPECT_TRUE(IsNarCacheKey("0123456789abcdefghijklmnopqrstuvwxyz-"));
  EXPECT_TRUE(IsNarCacheKey(std::string(128, 'a')));
  for (const std::string& bad : {std::string(), std::string(129, 'a'), std::string("ABC"), std::string("a.b"),
                                 std::string("a/b"), std::string(".."), std::string("a b"), std::string("a_b"),
                                 std::string("a\0b", 3), std::string("é")}) {
    EXPECT_FALSE(IsNarCacheKey(bad)) << bad;
  }

  TempDir tmp;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), 1000);
  ASSERT_NE(cache, nullptr);
  absl::StatusOr<std::unique_ptr<NarCache::Writer>> writer = cache->Begin("../escape", 10);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument) << writer.status();
  EXPECT_THAT(writer.status().message(), HasSubstr("[0-9a-z-]"));
  writer = cache->Begin(std::string(100000, 'A'), 10);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(writer.status().message().size(), 300u);  // a hostile key is not copied whole
  WriteFileOrDie(tmp.File("x.nar"), "x");
  EXPECT_FALSE(cache->Lookup("../" + tmp.path().substr(tmp.path().rfind('/') + 1) + "/x").has_value());
  EXPECT_FALSE(cache->Lookup("").has_value());
  EXPECT_EQ(cache->stats().reserved, 0u);
}

// Several threads write, read and remove at once: the bound holds at every moment, every read
// returns the bytes some writer of that key committed, and in the end the index matches the disk.
TEST(NarCacheTest, ConcurrentWritersAndReadersKeepTheBound) {
  TempDir tmp;
  constexpr uint64_t kMax = 50000;
  std::unique_ptr<NarCache> cache = OpenOrDie(tmp.path(), kMax);
  ASSERT_NE(cache, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<int> committed{0}, exhausted{0}, hits{0}, bad{0};

  std::thread watcher([&] {
    while (!stop.load()) {
      const NarCacheStats stats = cache->stats();
      if (stats.bytes + stats.reserved > kMax) bad.fetch_add(1);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 random(t);
      for (int i = 0; i < 300; ++i) {
        const std::string key = "k" + std::to_string(random() % 16);
        switch (random() % 4) {
          case 0:
          case 1: {
            const uint64_t size = 1 + random() % 20000;
            absl::Status status = Put(*cache, key, Content(key, size));
            if (status.ok()) {
              committed.fetch_add(1);
            } else if (status.code() == absl::StatusCode::kResourceExhausted) {
              exhausted.fetch_add(1);
            } else {
              bad.fetch_add(1);
            }
            break;
          }
          case 2: {
            std::optional<NarCache::Hit> hit = cache->Lookup(key);
            if (!hit.has_value()) break;
            hits.fetch_add(1);
            if (ReadAll(hit->fd.get()) != Content(key, hit->size)) bad.fetch_add(1);
            break;
          }
          default:
            if (random() % 4 == 0) cache->Remove(key);
            break;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  stop.store(true);
  watcher.join();

  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(committed.load(), 100);
  EXPECT_GT(hits.load(), 10);
  const NarCacheStats stats = cache->stats();
  EXPECT_EQ(stats.reserved, 0u);
  EXPECT_LE(stats.bytes, kMax);
  EXPECT_GT(stats.evictions, 0u);
  int64_t on_disk = 0;
  uint64_t files = 0;
  for (const auto& [name, size] : FilesIn(tmp.path())) {
    EXPECT_TRUE(name.ends_with(".nar")) << name;  // no .part left behind
    on_disk += size;
    ++files;
  }
  EXPECT_EQ(static_cast<uint64_t>(on_disk), stats.bytes);
  EXPECT_EQ(files, stats.entries);
  (void)exhausted.load();  // may be 0 or not, depending on the interleaving
}

}  // namespace
}  // namespace attest::storage
