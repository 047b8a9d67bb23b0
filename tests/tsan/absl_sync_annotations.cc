// ThreadSanitizer annotations for Abseil's synchronization primitives, linked into every executable of
// the ThreadSanitizer build (ATTEST_TSAN, scripts/test --tsan) and nothing else.
//
// Why: Debian's libabsl_synchronization is not compiled with -fsanitize=thread, so the annotations
// Abseil's own Mutex carries are compiled out and its lock word is an uninstrumented atomic. TSan then
// sees no happens-before edge from a Mutex::Unlock to the next Lock and reports every access guarded by
// an absl::Mutex (ABSL_GUARDED_BY) as a race: noise that would bury real races.
//
// How: the executable defines the out-of-line members of Mutex, CondVar, Notification and
// BlockingCounter itself. The dynamic linker binds every caller (our code, gRPC, Abseil's own
// cross-calls, which go through the PLT) to these definitions first; each tells TSan what the operation
// does (the __tsan_mutex_* interface, as Abseil does when it is built with TSan) and calls the library's
// definition, found with dlsym(RTLD_NEXT). Memory accesses inside a lock or unlock are ignored by TSan
// (between __tsan_mutex_pre_* and __tsan_mutex_post_*); that covers absl::Condition predicates, which
// Abseil may evaluate on the unlocking thread on behalf of a waiter.
//
// Limits: Await and CondVar waits are annotated as exclusive (our code never waits holding a reader
// lock); Notification::HasBeenNotified is inline and reads an atomic the library writes, so only the
// waiting functions create an edge (our code uses WaitForNotification).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/base/options.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

#define ATTEST_STRINGIFY_INNER(x) #x
#define ATTEST_STRINGIFY(x) ATTEST_STRINGIFY_INNER(x)

enum class Constness { kMutable, kConst };

// The mangled name of absl::<rest>, e.g. AbslSymbol(kMutable, "5Mutex4LockEv") for absl::Mutex::Lock(),
// with the inline namespace this Abseil was configured with.
std::string AbslSymbol(Constness constness, std::string_view rest) {
  std::string name = constness == Constness::kConst ? "_ZNK4absl" : "_ZN4absl";
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const std::string_view inline_namespace = ATTEST_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  name += std::to_string(inline_namespace.size());
  name += inline_namespace;
#endif
  name += rest;
  return name;
}

template <typename Function>
Function Library(Constness constness, std::string_view rest) {
  const std::string name = AbslSymbol(constness, rest);
  void* address = dlsym(RTLD_NEXT, name.c_str());
  if (address == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found in the Abseil library (%s)\n", name.c_str(),
                 dlerror());
    std::abort();
  }
  return reinterpret_cast<Function>(address);
}

// Abseil calls its own public members (WaitWithTimeout calls WaitWithDeadline, BlockingCounter::Wait
// calls Lock and Await); the nested calls on the same mutex reach these definitions again and must
// not be annotated twice. Each outermost call annotates; nested ones only forward.
thread_local int nesting = 0;

class Nested final {
 public:
  Nested() { ++nesting; }
  ~Nested() { --nesting; }
  Nested(const Nested&) = delete;
  Nested& operator=(const Nested&) = delete;
};

bool Outermost() { return nesting == 0; }

// Await and the CondVar waits release the held mutex and hold it again on return.
void BeforeWait(absl::Mutex* mu) {
  __tsan_mutex_pre_unlock(mu, 0);
  __tsan_mutex_post_unlock(mu, 0);
  __tsan_mutex_pre_lock(mu, 0);
}

// The timed LockWhen forms hold the mutex on return whether or not the condition became true.
template <typename Limit>
bool TimedLockWhen(absl::Mutex* mu, bool (*library)(absl::Mutex*, const absl::Condition&, Limit),
                   const absl::Condition& cond, Limit limit, unsigned flags) {
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(mu, flags);
  bool result;
  {
    Nested nested;
    result = library(mu, cond, limit);
  }
  if (annotate) __tsan_mutex_post_lock(mu, flags, 0);
  return result;
}

// The timed Await forms hold the mutex again on return, whether or not the condition became true.
template <typename Limit>
bool TimedAwait(absl::Mutex* mu, bool (*library)(absl::Mutex*, const absl::Condition&, Limit),
                const absl::Condition& cond, Limit limit) {
  const bool annotate = Outermost();
  if (annotate) BeforeWait(mu);
  bool result;
  {
    Nested nested;
    result = library(mu, cond, limit);
  }
  if (annotate) __tsan_mutex_post_lock(mu, 0, 0);
  return result;
}

template <typename Limit>
bool TimedWait(absl::CondVar* cv, bool (*library)(absl::CondVar*, absl::Mutex*, Limit), absl::Mutex* mu,
               Limit limit) {
  const bool annotate = Outermost();
  if (annotate) BeforeWait(mu);
  bool timed_out;
  {
    Nested nested;
    timed_out = library(cv, mu, limit);
  }
  if (annotate) __tsan_mutex_post_lock(mu, 0, 0);
  return timed_out;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  static const auto library = Library<void (*)(Mutex*)>(Constness::kMutable, "5MutexD2Ev");
  __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  library(this);
}

void Mutex::Lock() {
  static const auto library = Library<void (*)(Mutex*)>(Constness::kMutable, "5Mutex4LockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, 0);
  {
    Nested nested;
    library(this);
  }
  if (annotate) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLock() {
  static const auto library = Library<void (*)(Mutex*)>(Constness::kMutable, "5Mutex10ReaderLockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  {
    Nested nested;
    library(this);
  }
  if (annotate) __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::TryLock() {
  static const auto library = Library<bool (*)(Mutex*)>(Constness::kMutable, "5Mutex7TryLockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, __tsan_mutex_try_lock);
  bool locked;
  {
    Nested nested;
    locked = library(this);
  }
  if (annotate) {
    __tsan_mutex_post_lock(this, __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  }
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto library = Library<bool (*)(Mutex*)>(Constness::kMutable, "5Mutex13ReaderTryLockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, __tsan_mutex_try_read_lock);
  bool locked;
  {
    Nested nested;
    locked = library(this);
  }
  if (annotate) {
    __tsan_mutex_post_lock(this, locked ? __tsan_mutex_try_read_lock : __tsan_mutex_try_read_lock_failed, 0);
  }
  return locked;
}

void Mutex::Unlock() {
  static const auto library = Library<void (*)(Mutex*)>(Constness::kMutable, "5Mutex6UnlockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_unlock(this, 0);
  {
    Nested nested;
    library(this);
  }
  if (annotate) __tsan_mutex_post_unlock(this, 0);
}

void Mutex::ReaderUnlock() {
  static const auto library = Library<void (*)(Mutex*)>(Constness::kMutable, "5Mutex12ReaderUnlockEv");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_unlock(this, __tsan_mutex_read_lock);
  {
    Nested nested;
    library(this);
  }
  if (annotate) __tsan_mutex_post_unlock(this, __tsan_mutex_read_lock);
}

// The LockWhen family: a lock whose acquisition waits for the condition.
void Mutex::LockWhen(const Condition& cond) {
  static const auto library =
      Library<void (*)(Mutex*, const Condition&)>(Constness::kMutable, "5Mutex8LockWhenERKNS0_9ConditionE");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, 0);
  {
    Nested nested;
    library(this, cond);
  }
  if (annotate) __tsan_mutex_post_lock(this, 0, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto library = Library<void (*)(Mutex*, const Condition&)>(
      Constness::kMutable, "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  const bool annotate = Outermost();
  if (annotate) __tsan_mutex_pre_lock(this, __tsan_mutex_read_lock);
  {
    Nested nested;
    library(this, cond);
  }
  if (annotate) __tsan_mutex_post_lock(this, __tsan_mutex_read_lock, 0);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Duration)>(
      Constness::kMutable, "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return TimedLockWhen(this, library, cond, timeout, 0);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Time)>(
      Constness::kMutable, "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return TimedLockWhen(this, library, cond, deadline, 0);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Duration)>(
      Constness::kMutable, "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return TimedLockWhen(this, library, cond, timeout, __tsan_mutex_read_lock);
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Time)>(
      Constness::kMutable, "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return TimedLockWhen(this, library, cond, deadline, __tsan_mutex_read_lock);
}

// Await: called holding the mutex; releases it while waiting.
void Mutex::Await(const Condition& cond) {
  static const auto library =
      Library<void (*)(Mutex*, const Condition&)>(Constness::kMutable, "5Mutex5AwaitERKNS0_9ConditionE");
  const bool annotate = Outermost();
  if (annotate) BeforeWait(this);
  {
    Nested nested;
    library(this, cond);
  }
  if (annotate) __tsan_mutex_post_lock(this, 0, 0);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Duration)>(
      Constness::kMutable, "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return TimedAwait(this, library, cond, timeout);
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto library = Library<bool (*)(Mutex*, const Condition&, Time)>(
      Constness::kMutable, "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return TimedAwait(this, library, cond, deadline);
}

// CondVar waits: called holding `mu`; release it while waiting and hold it again on return.
void CondVar::Wait(Mutex* mu) {
  static const auto library =
      Library<void (*)(CondVar*, Mutex*)>(Constness::kMutable, "7CondVar4WaitEPNS0_5MutexE");
  const bool annotate = Outermost();
  if (annotate) BeforeWait(mu);
  {
    Nested nested;
    library(this, mu);
  }
  if (annotate) __tsan_mutex_post_lock(mu, 0, 0);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto library = Library<bool (*)(CondVar*, Mutex*, Duration)>(
      Constness::kMutable, "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return TimedWait(this, library, mu, timeout);
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto library = Library<bool (*)(CondVar*, Mutex*, Time)>(
      Constness::kMutable, "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return TimedWait(this, library, mu, deadline);
}

// Notification: Notify happens before every wait that returns notified. The library's fast path reads
// an atomic TSan cannot see, hence the explicit edge on the object's address.
void Notification::Notify() {
  static const auto library = Library<void (*)(Notification*)>(Constness::kMutable, "12Notification6NotifyEv");
  __tsan_release(this);
  library(this);
}

void Notification::WaitForNotification() const {
  static const auto library =
      Library<void (*)(const Notification*)>(Constness::kConst, "12Notification19WaitForNotificationEv");
  library(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto library = Library<bool (*)(const Notification*, Duration)>(
      Constness::kConst, "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = library(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto library = Library<bool (*)(const Notification*, Time)>(
      Constness::kConst, "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = library(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

// BlockingCounter: every DecrementCount happens before Wait returns (the library counts with an
// atomic TSan cannot see).
bool BlockingCounter::DecrementCount() {
  static const auto library =
      Library<bool (*)(BlockingCounter*)>(Constness::kMutable, "15BlockingCounter14DecrementCountEv");
  __tsan_release(this);
  return library(this);
}

void BlockingCounter::Wait() {
  static const auto library = Library<void (*)(BlockingCounter*)>(Constness::kMutable, "15BlockingCounter4WaitEv");
  library(this);
  __tsan_acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
