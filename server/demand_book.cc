#include "server/demand_book.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "consensus/text.h"
#include "storage/files.h"

namespace attest::server {
namespace {

using consensus::AbslView;
using consensus::Cat;
using consensus::StdView;

constexpr std::string_view kFileMagic = "attest-demand-book";
constexpr int kFileVersion = 1;
// One snapshot line: the longest store path (11 + 32 + 1 + 211 bytes) and three numbers.
constexpr size_t kMaxLineBytes = 320;

// Time measured in half-lives since the Unix epoch: demand d recorded at clock c has the score
// log2(d) + c, and its demand at clock n is 2^(score - n). Any fixed origin would do; the epoch keeps
// the score independent of when the process started. A non-positive half-life means no decay.
double HalfLives(absl::Time now, absl::Duration half_life) {
  if (half_life <= absl::ZeroDuration()) return 0;
  return absl::FDivDuration(now - absl::UnixEpoch(), half_life);
}

// The fixed window of length `window` that holds `now`, counted from the Unix epoch. Fixed windows
// let a whole window's memory be dropped at once when it ends, instead of a timestamp per entry.
int64_t WindowOf(absl::Time now, absl::Duration window) {
  absl::Duration remainder;
  int64_t index = absl::IDivDuration(now - absl::UnixEpoch(), window, &remainder);
  if (remainder < absl::ZeroDuration()) --index;  // floor, for times before the epoch
  return index;
}

std::string FormatDouble(double value) {
  char buffer[64];
  // Shortest form that reads back as the same double.
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (error != std::errc()) return "nan";
  return std::string(buffer, end);
}

template <typename T>
bool ParseNumber(std::string_view text, T& value) {
  if (text.empty()) return false;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size();
}

}  // namespace

struct DemandBook::State {
  struct PathDemand {
    double score = 0;  // log2(demand) + HalfLives(time of that demand)
    int64_t requests = 0;
    absl::Time last_requested;
  };
  // Node-based so that the index can point at entries: the path is stored once.
  using Paths = absl::node_hash_map<consensus::StorePath, PathDemand>;
  using Node = Paths::value_type;

  struct IndexKey {
    double score;
    const Node* node;
  };
  // Highest score first, ties by path; the score is in the key so that the tree compares without
  // following pointers, except on ties.
  struct ByDemand {
    bool operator()(const IndexKey& a, const IndexKey& b) const {
      if (a.score != b.score) return a.score > b.score;
      return a.node->first < b.node->first;
    }
  };

  mutable absl::Mutex mu;
  Paths paths ABSL_GUARDED_BY(mu);
  absl::btree_set<IndexKey, ByDemand> index ABSL_GUARDED_BY(mu);

  // The (client, path) pairs counted in the current repeat window, as two 64-bit hashes: a collision
  // of both within one window among a few million pairs is negligible, and costs one uncounted request.
  int64_t repeat_window ABSL_GUARDED_BY(mu) = std::numeric_limits<int64_t>::min();
  absl::flat_hash_set<std::pair<uint64_t, uint64_t>> recent ABSL_GUARDED_BY(mu);
  // Requests counted per client in the current budget window.
  int64_t budget_window ABSL_GUARDED_BY(mu) = std::numeric_limits<int64_t>::min();
  absl::flat_hash_map<std::string, int64_t> clients ABSL_GUARDED_BY(mu);

  uint64_t counted ABSL_GUARDED_BY(mu) = 0;
  uint64_t repeats ABSL_GUARDED_BY(mu) = 0;
  uint64_t rate_limited ABSL_GUARDED_BY(mu) = 0;
  uint64_t full ABSL_GUARDED_BY(mu) = 0;

  void Insert(const consensus::StorePath& path, PathDemand demand) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto [it, inserted] = paths.emplace(path, demand);
    index.insert(IndexKey{demand.score, &*it});
  }

  void Erase(Paths::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    index.erase(IndexKey{it->second.score, &*it});
    paths.erase(it);
  }

  void EraseLeast() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto last = std::prev(index.end());
    auto it = paths.find(last->node->first);
    index.erase(last);
    paths.erase(it);
  }

  void Clear() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    index.clear();
    paths.clear();
  }

  // Forgets the paths whose demand at `clock` fell below `drop_below`. They are the tail of the index,
  // so this costs only the entries it removes.
  void DropDecayed(double clock, double drop_below) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (!(drop_below > 0)) return;
    const double threshold = std::log2(drop_below) + clock;
    while (!index.empty()) {
      auto last = std::prev(index.end());
      if (last->score >= threshold) break;
      EraseLeast();
    }
  }

  // The memory of a window is dropped when the clock enters another one (or goes back to an earlier).
  void RollWindows(absl::Time now, const DemandOptions& options) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (options.repeat_window > absl::ZeroDuration()) {
      const int64_t window = WindowOf(now, options.repeat_window);
      if (window != repeat_window) {
        recent.clear();
        repeat_window = window;
      }
    }
    if (options.budget_window > absl::ZeroDuration()) {
      const int64_t window = WindowOf(now, options.budget_window);
      if (window != budget_window) {
        clients.clear();
        budget_window = window;
      }
    }
  }
};

DemandBook::DemandBook(DemandOptions options) : state_(std::make_unique<State>()), options_(options) {}

DemandBook::~DemandBook() = default;

DemandCount DemandBook::Record(const consensus::StorePath& path, std::string_view client, absl::Time now) {
  State& state = *state_;
  const double clock = HalfLives(now, options_.half_life);
  absl::MutexLock lock(&state.mu);
  state.RollWindows(now, options_);
  state.DropDecayed(clock, options_.drop_below);

  // The budget comes first: a client over it is told so even for a path it asked before.
  const bool budgeted = options_.budget_window > absl::ZeroDuration();
  auto client_it = state.clients.end();
  if (budgeted) {
    client_it = state.clients.find(AbslView(client));
    const bool over = client_it == state.clients.end() ? state.clients.size() >= options_.max_clients
                                                       : client_it->second >= options_.client_budget;
    if (over || options_.client_budget <= 0) {
      ++state.rate_limited;
      return DemandCount::kRateLimited;
    }
  }

  const bool repeats_suppressed = options_.repeat_window > absl::ZeroDuration();
  const std::pair<uint64_t, uint64_t> pair{absl::Hash<absl::string_view>()(AbslView(client)),
                                           absl::Hash<consensus::StorePath>()(path)};
  if (repeats_suppressed) {
    if (state.recent.contains(pair)) {
      ++state.repeats;
      return DemandCount::kRepeat;
    }
    // Full of pairs: new ones are not counted rather than forgetting old ones, which would let a
    // flood of addresses make honest clients' repeats count again.
    if (state.recent.size() >= options_.max_recent) {
      ++state.rate_limited;
      return DemandCount::kRateLimited;
    }
  }

  auto it = state.paths.find(path);
  if (it == state.paths.end()) {
    // A newcomer's demand is 1, so its score is the clock.
    if (state.paths.size() >= options_.max_paths) {
      // Only a strictly higher demand replaces the least: on a tie the path already counted stays, so
      // that a stream of single requests for new paths does not churn the book.
      if (state.index.empty() || !(clock > std::prev(state.index.end())->score)) {
        ++state.full;
        return DemandCount::kFull;
      }
      state.EraseLeast();
    }
    state.Insert(path, State::PathDemand{.score = clock, .requests = 1, .last_requested = now});
  } else {
    State::PathDemand& demand = it->second;
    state.index.erase(State::IndexKey{demand.score, &*it});
    demand.score = std::log2(std::exp2(demand.score - clock) + 1) + clock;
    demand.requests += 1;
    demand.last_requested = std::max(demand.last_requested, now);
    state.index.insert(State::IndexKey{demand.score, &*it});
  }

  if (repeats_suppressed) state.recent.insert(pair);
  if (budgeted) {
    if (client_it == state.clients.end()) {
      state.clients.emplace(std::string(client), 1);
    } else {
      ++client_it->second;
    }
  }
  ++state.counted;
  return DemandCount::kCounted;
}

void DemandBook::Forget(const consensus::StorePath& path) {
  absl::MutexLock lock(&state_->mu);
  auto it = state_->paths.find(path);
  if (it != state_->paths.end()) state_->Erase(it);
}

void DemandBook::ForEachByDemand(absl::Time now, const std::function<bool(const DemandEntry&)>& visit) const {
  State& state = *state_;
  const double clock = HalfLives(now, options_.half_life);
  absl::MutexLock lock(&state.mu);
  state.DropDecayed(clock, options_.drop_below);
  for (const State::IndexKey& key : state.index) {
    const DemandEntry entry{.path = key.node->first,
                            .demand = std::exp2(key.score - clock),
                            .requests = key.node->second.requests,
                            .last_requested = key.node->second.last_requested};
    if (!visit(entry)) return;
  }
}

double DemandBook::DemandOf(const consensus::StorePath& path, absl::Time now) const {
  const double clock = HalfLives(now, options_.half_life);
  absl::MutexLock lock(&state_->mu);
  auto it = state_->paths.find(path);
  if (it == state_->paths.end()) return 0;
  const double demand = std::exp2(it->second.score - clock);
  return demand < options_.drop_below ? 0 : demand;
}

DemandStats DemandBook::stats() const {
  absl::MutexLock lock(&state_->mu);
  return DemandStats{.paths = state_->paths.size(),
                     .counted = state_->counted,
                     .repeats = state_->repeats,
                     .rate_limited = state_->rate_limited,
                     .full = state_->full};
}

// The snapshot is text, one path per line, highest demand first:
//   attest-demand-book 1
//   saved <unix nanoseconds>
//   <demand at the saved time> <requests> <last requested, unix nanoseconds> <store path>
//   ...
//   end <number of path lines>
// Demand is written at the saved time rather than as a score, so that a node restarted with another
// half-life decays it from then on with the new one. The end line tells a cut file from a short one.
absl::Status DemandBook::SaveTo(const std::string& file, absl::Time now) const {
  std::string text;
  {
    const double clock = HalfLives(now, options_.half_life);
    absl::MutexLock lock(&state_->mu);
    state_->DropDecayed(clock, options_.drop_below);
    text.reserve(64 + state_->paths.size() * 100);
    absl::StrAppend(&text, AbslView(kFileMagic), " ", kFileVersion, "\nsaved ", absl::ToUnixNanos(now), "\n");
    size_t written = 0;
    for (const State::IndexKey& key : state_->index) {
      const double demand = std::exp2(key.score - clock);
      // Without drop_below, demand can decay to nothing a double holds; such a path is not wanted.
      if (!(demand > 0) || !std::isfinite(demand)) continue;
      absl::StrAppend(&text, FormatDouble(demand), " ", key.node->second.requests, " ",
                      absl::ToUnixNanos(key.node->second.last_requested), " ", key.node->first.full(), "\n");
      ++written;
    }
    absl::StrAppend(&text, "end ", written, "\n");
  }
  // Written outside the lock: Record must not wait for a disk.
  absl::Status written = storage::WriteFileAtomically(file, text, 0644);
  if (!written.ok()) {
    return absl::Status(written.code(), Cat("cannot save the demand book to ", file, ": ", StdView(written.message()),
                                            " (demand is kept in memory; fix the file's directory so the "
                                            "next save keeps it across a restart)"));
  }
  return absl::OkStatus();
}

absl::Status DemandBook::LoadFrom(const std::string& file, absl::Time now) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->Clear();
  }
  // The most a snapshot of max_paths paths can take (saturating: max_paths may be "no bound").
  const size_t max_bytes = options_.max_paths < std::numeric_limits<size_t>::max() / kMaxLineBytes - 3
                               ? (options_.max_paths + 3) * kMaxLineBytes
                               : std::numeric_limits<size_t>::max();
  absl::StatusOr<std::string> text = storage::ReadFileToString(
      file, storage::ReadFileOptions{.max_bytes = max_bytes, .types = storage::FileTypes::kRegularOnly});
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return absl::OkStatus();
    if (absl::IsResourceExhausted(text.status())) {
      return absl::DataLossError(Cat("the demand book ", file, " is larger than ", options_.max_paths,
                                     " paths can take: it is not a snapshot this node wrote (remove it; demand "
                                     "is counted again from now)"));
    }
    return absl::Status(text.status().code(),
                        Cat("cannot read the demand book: ", StdView(text.status().message())));
  }
  auto corrupt = [&file](size_t line, std::string_view what) {
    return absl::DataLossError(Cat("the demand book ", file, " line ", line, ": ", what,
                                   " (the snapshot is damaged or not one this node writes; it is ignored and "
                                   "demand is counted again from now)"));
  };

  // Parsed whole before anything enters the book, so that a damaged file leaves it empty.
  struct Line {
    consensus::StorePath path;
    double demand;
    int64_t requests;
    int64_t last_requested_ns;
    size_t number;
  };
  std::vector<Line> lines;
  int64_t saved_ns = 0;
  bool ended = false;
  size_t number = 0;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) return corrupt(number + 1, "the last line has no line end (cut short?)");
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline + 1);
    ++number;
    if (ended) return corrupt(number, "text after the end line");
    if (number == 1) {
      const std::string expected = Cat(kFileMagic, " ", kFileVersion);
      if (line != expected) {
        if (line.starts_with(Cat(kFileMagic, " "))) {
          return corrupt(number, Cat("format ", consensus::QuoteForError(line.substr(kFileMagic.size() + 1)),
                                     ", this node reads format ", kFileVersion, " (written by another version)"));
        }
        return corrupt(number, "not a demand book (no header)");
      }
      continue;
    }
    if (number == 2) {
      if (!line.starts_with("saved ") || !ParseNumber(line.substr(6), saved_ns)) {
        return corrupt(number, "expected \"saved <unix nanoseconds>\"");
      }
      continue;
    }
    if (line.starts_with("end ")) {
      size_t count = 0;
      if (!ParseNumber(line.substr(4), count) || count != lines.size()) {
        return corrupt(number, Cat("the end line does not give the ", lines.size(), " paths read"));
      }
      ended = true;
      continue;
    }
    // <demand> <requests> <last requested> <path>
    std::string_view fields[4];
    std::string_view remaining = line;
    for (int i = 0; i < 3; ++i) {
      const size_t space = remaining.find(' ');
      if (space == std::string_view::npos) return corrupt(number, "expected four fields");
      fields[i] = remaining.substr(0, space);
      remaining.remove_prefix(space + 1);
    }
    fields[3] = remaining;
    double demand = 0;
    int64_t requests = 0;
    int64_t last_requested_ns = 0;
    if (!ParseNumber(fields[0], demand) || !std::isfinite(demand) || !(demand > 0)) {
      return corrupt(number, "the demand is not a positive number");
    }
    if (!ParseNumber(fields[1], requests) || requests < 0) return corrupt(number, "the request count is not a count");
    if (!ParseNumber(fields[2], last_requested_ns)) return corrupt(number, "the time is not a number");
    absl::StatusOr<consensus::StorePath> path = consensus::StorePath::Parse(fields[3]);
    if (!path.ok()) return corrupt(number, StdView(path.status().message()));
    lines.push_back(Line{.path = *std::move(path),
                         .demand = demand,
                         .requests = requests,
                         .last_requested_ns = last_requested_ns,
                         .number = number});
  }
  if (number < 2) return corrupt(number + 1, "the file ends before its header");
  if (!ended) return corrupt(number + 1, "the file ends without its end line (cut short?)");

  const double saved_clock = HalfLives(absl::FromUnixNanos(saved_ns), options_.half_life);
  absl::MutexLock lock(&state_->mu);
  for (const Line& line : lines) {
    if (state_->paths.contains(line.path)) {
      state_->Clear();
      return corrupt(line.number, Cat(line.path.full(), " is listed twice"));
    }
    state_->Insert(line.path, State::PathDemand{.score = std::log2(line.demand) + saved_clock,
                                                .requests = line.requests,
                                                .last_requested = absl::FromUnixNanos(line.last_requested_ns)});
  }
  // A snapshot of a book with a larger bound keeps its most demanded paths.
  while (state_->paths.size() > options_.max_paths) state_->EraseLeast();
  state_->DropDecayed(HalfLives(now, options_.half_life), options_.drop_below);
  return absl::OkStatus();
}

}  // namespace attest::server
