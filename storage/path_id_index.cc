#include "storage/path_id_index.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <utility>

namespace attest::storage {
namespace {

// Linear probing stays short up to this load (about 3 probes for a hit, 13 for a miss at 0.8).
constexpr size_t kMaxLoadPercent = 80;
constexpr size_t kMinSlots = 1024;

// splitmix64's finaliser: a bijection that spreads every input bit over the output.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

PathIdIndex::PathIdIndex(size_t max_bytes, uint64_t seed)
    : max_bytes_(max_bytes), seed_(seed), usable_(max_bytes >= kMinSlots * sizeof(uint64_t)) {}

uint32_t PathIdIndex::Tag(int64_t head) const {
  return static_cast<uint32_t>(Mix(static_cast<uint64_t>(head) ^ seed_) >> 32);
}

absl::Status PathIdIndex::CatchUp(int64_t newest, absl::FunctionRef<absl::Status(int64_t after, AddRow add)> fetch) {
  if (!usable() || newest <= covered()) return absl::OkStatus();
  absl::MutexLock serialise(&catch_up_mu_);
  const int64_t after = covered();
  if (!usable() || newest <= after) return absl::OkStatus();
  constexpr int64_t kMaxId = std::numeric_limits<uint32_t>::max();
  bool fits = newest <= kMaxId;
  // Staged as slots (8 bytes a row), inserted once fetch has succeeded. Ids are dense, so newest -
  // after is about the number of rows.
  std::vector<uint64_t> staged;
  if (fits) staged.reserve(std::min<size_t>(newest - after, max_bytes_ / sizeof(uint64_t)));
  absl::Status fetched = fetch(after, [&](int64_t head, int64_t id) {
    if (id <= 0 || id > kMaxId) fits = false;
    if (fits) staged.push_back(uint64_t{Tag(head)} << 32 | static_cast<uint64_t>(id));
  });
  if (!fetched.ok()) return fetched;

  absl::MutexLock lock(&mu_);
  if (!fits || !Reserve(staged.size())) {
    GiveUp();
    return absl::OkStatus();
  }
  for (uint64_t slot : staged) Place(slot);
  covered_.store(newest, std::memory_order_release);
  return absl::OkStatus();
}

void PathIdIndex::Find(std::span<const int64_t> heads, absl::FunctionRef<void(size_t, int64_t)> found) const {
  absl::ReaderMutexLock lock(&mu_);
  if (slots_.empty()) return;
  const size_t mask = slots_.size() - 1;
  for (size_t i = 0; i < heads.size(); ++i) {
    const uint32_t tag = Tag(heads[i]);
    for (size_t at = tag >> bucket_shift_; slots_[at] != 0; at = (at + 1) & mask) {
      if (static_cast<uint32_t>(slots_[at] >> 32) == tag) {
        found(i, static_cast<int64_t>(slots_[at] & 0xffffffffULL));
      }
    }
  }
}

size_t PathIdIndex::bytes() const {
  absl::ReaderMutexLock lock(&mu_);
  return slots_.size() * sizeof(uint64_t);
}

void PathIdIndex::Place(uint64_t slot) {
  const size_t mask = slots_.size() - 1;
  size_t at = static_cast<uint32_t>(slot >> 32) >> bucket_shift_;
  while (slots_[at] != 0) at = (at + 1) & mask;
  slots_[at] = slot;
  ++used_;
}

bool PathIdIndex::Reserve(size_t more) {
  const size_t needed = used_ + more;
  if (needed * 100 <= slots_.size() * kMaxLoadPercent) return true;
  size_t size = std::max(kMinSlots, slots_.size());
  while (needed * 100 > size * kMaxLoadPercent) size *= 2;
  // The bucket is the tag's top bits, so there can be at most 2^32 buckets.
  if (size > (size_t{1} << 32) || size * sizeof(uint64_t) > max_bytes_) return false;
  std::vector<uint64_t> old = std::exchange(slots_, std::vector<uint64_t>(size, 0));
  bucket_shift_ = 32 - std::countr_zero(size);
  used_ = 0;
  for (uint64_t slot : old) {
    if (slot != 0) Place(slot);
  }
  return true;
}

void PathIdIndex::GiveUp() {
  usable_.store(false, std::memory_order_release);
  std::vector<uint64_t>().swap(slots_);
  used_ = 0;
}

}  // namespace attest::storage
