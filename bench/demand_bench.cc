// The demand book (server/demand_book.h) at the size the rebuild queue is specified for.
//
// Records requests for --paths distinct store paths (demand skewed: path i is asked about
// --paths / (i + 1) times, at least once and at most about 1,000, by distinct clients over a simulated
// day), then prints:
// the CPU time of one Record (new path, known path, repeat), the walk of the top 1,000 by demand
// (median and p99 of --walks walks, at later and later times so decay is exercised), the resident
// memory per path, and the snapshot's save and load times and bytes per path.
//
//   demand_bench [--paths 100000] [--walks 200] [--dir DIR]
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/bench_support.h"
#include "server/demand_book.h"

namespace attest::bench {
namespace {

struct Args {
  int64_t paths = 100'000;
  int walks = 200;
  std::string dir = "/tmp";
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--paths") args.paths = std::atoll(value.c_str());
    else if (flag == "--walks") args.walks = std::atoi(value.c_str());
    else if (flag == "--dir") args.dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (args.paths <= 0 || args.walks <= 0 || argc % 2 == 0) {
    std::fprintf(stderr, "usage: demand_bench [--paths N] [--walks N] [--dir DIR]\n");
    std::exit(2);
  }
  return args;
}

// This thread's CPU time: on a shared machine it is steadier than wall time, and the book is
// single-threaded work under one lock.
double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

long ResidentKiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

double Percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(fraction * static_cast<double>(values.size())))];
}

int Run(const Args& args) {
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  const absl::Duration day = absl::Hours(24);
  std::vector<consensus::StorePath> paths;
  paths.reserve(static_cast<size_t>(args.paths));
  for (int64_t i = 0; i < args.paths; ++i) paths.push_back(BenchStorePath("demand", static_cast<uint64_t>(i)));

  // Budgets and bounds wide enough that only the book's own work is measured.
  server::DemandOptions options{.max_paths = static_cast<size_t>(args.paths),
                                .client_budget = std::numeric_limits<int64_t>::max(),
                                .max_clients = 10'000'000,
                                .max_recent = 100'000'000};
  const long rss_before = ResidentKiB();
  server::DemandBook book(options);

  // New paths: one request each, at the start of the day.
  double timer = CpuSeconds();
  for (int64_t i = 0; i < args.paths; ++i) book.Record(paths[static_cast<size_t>(i)], "client-0", start);
  const double new_ns = (CpuSeconds() - timer) * 1e9 / static_cast<double>(args.paths);

  // Known paths: the skewed rest in rounds over the day (time only moves forward), round r asking
  // every path that wants more than r requests, from client r.
  const int64_t rounds = std::min<int64_t>(args.paths - 1, 1000);
  int64_t known = 0;
  timer = CpuSeconds();
  for (int64_t r = 1; r <= rounds; ++r) {
    const absl::Time now = start + day * (static_cast<double>(r) / static_cast<double>(rounds + 2));
    const std::string client = absl::StrCat("client-", r);
    for (int64_t i = 0; i < args.paths && args.paths / (i + 1) - 1 >= r; ++i) {
      book.Record(paths[static_cast<size_t>(i)], client, now);
      ++known;
    }
  }
  const double known_ns = known > 0 ? (CpuSeconds() - timer) * 1e9 / static_cast<double>(known) : 0;

  // Repeats: one client asks every path, then asks again within the hour.
  const absl::Time late = start + day - absl::Minutes(30);
  for (int64_t i = 0; i < args.paths; ++i) book.Record(paths[static_cast<size_t>(i)], "client-late", late);
  timer = CpuSeconds();
  int64_t repeats = 0;
  for (int64_t i = 0; i < args.paths; ++i) {
    repeats += book.Record(paths[static_cast<size_t>(i)], "client-late", late + absl::Minutes(1)) ==
               server::DemandCount::kRepeat;
  }
  const double repeat_ns = (CpuSeconds() - timer) * 1e9 / static_cast<double>(args.paths);
  const long rss_after = ResidentKiB();

  std::vector<double> walk_ms;
  for (int w = 0; w < args.walks; ++w) {
    const absl::Time now = start + day + absl::Minutes(w);
    int seen = 0;
    timer = CpuSeconds();
    book.ForEachByDemand(now, [&seen](const server::DemandEntry&) { return ++seen < 1000; });
    walk_ms.push_back((CpuSeconds() - timer) * 1e3);
  }

  const std::string file = absl::StrCat(args.dir, "/demand_bench.", getpid());
  timer = CpuSeconds();
  if (absl::Status saved = book.SaveTo(file, start + day); !saved.ok()) {
    std::fprintf(stderr, "save: %s\n", std::string(saved.message()).c_str());
    return 1;
  }
  const double save_ms = (CpuSeconds() - timer) * 1e3;
  struct stat st{};
  stat(file.c_str(), &st);
  server::DemandBook loaded(options);
  timer = CpuSeconds();
  if (absl::Status status = loaded.LoadFrom(file, start + day); !status.ok()) {
    std::fprintf(stderr, "load: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  const double load_ms = (CpuSeconds() - timer) * 1e3;
  unlink(file.c_str());

  const server::DemandStats stats = book.stats();
  std::printf("paths in the book           %zu (requests counted %llu, repeats %llu of %lld)\n", stats.paths,
              static_cast<unsigned long long>(stats.counted), static_cast<unsigned long long>(stats.repeats),
              static_cast<long long>(args.paths));
  std::printf("Record, new path            %.0f ns\n", new_ns);
  std::printf("Record, known path          %.0f ns (%lld requests)\n", known_ns, static_cast<long long>(known));
  std::printf("Record, repeat              %.0f ns\n", repeat_ns);
  std::printf("top 1,000 walk              median %.3f ms, p99 %.3f ms (%d walks)\n", Percentile(walk_ms, 0.5),
              Percentile(walk_ms, 0.99), args.walks);
  std::printf("resident memory             %.0f bytes per path (paths, index, recent pairs and clients)\n",
              static_cast<double>(rss_after - rss_before) * 1024 / static_cast<double>(args.paths));
  std::printf("snapshot                    %.0f bytes per path, save %.1f ms, load %.1f ms (%zu paths loaded)\n",
              static_cast<double>(st.st_size) / static_cast<double>(args.paths), save_ms, load_ms,
              loaded.stats().paths);
  return 0;
}

}  // namespace
}  // namespace attest::bench

int main(int argc, char** argv) { return attest::bench::Run(attest::bench::ParseArgs(argc, argv)); }
