// ThreadSanitizer and Debian's Abseil: libabsl_synchronization is not built with TSan, so TSan
// sees neither absl::Mutex's locking nor the ordering it gives, and reports every access that
// an absl::Mutex protects as a race. Abseil built with TSan would tell it through its
// ABSL_TSAN_MUTEX_* annotations; this file does the same from outside: it defines the Mutex
// and CondVar entry points our code calls (the executable's definitions win over the shared
// library's, for the calls from this tree), calls the library's own (dlsym RTLD_NEXT) and
// tells TSan what happened: acquire after taking the lock, release before letting it go, both
// around a wait that lets go of it inside (Await, CondVar::Wait), and both around each
// evaluation of a wait's Condition (Observed, below).
//
// Linked into the TSan test binaries only (tests/CMakeLists.txt). What it does not give TSan:
// lock-order (deadlock) checks for absl::Mutex, and the ordering of Abseil's own classes built
// on it inside the library, except absl::Notification's Notify and WaitForNotification*
// (wrapped below; HasBeenNotified is inline and stays unseen) and absl::BlockingCounter (this
// tree does not use it).

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

static_assert(ABSL_OPTION_USE_INLINE_NAMESPACE == 1, "the mangled names below name the namespace");

namespace {

#define PDSERVE_STR2(x) #x
#define PDSERVE_STR(x) PDSERVE_STR2(x)

// The library's definition of absl::<inline namespace>::<suffix> (a const member function's
// name starts _ZNK).
template <typename Fn>
Fn Real(const char* suffix, bool const_member = false) {
  const char* ns = PDSERVE_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(const_member ? "_ZNK4absl" : "_ZN4absl") +
                           std::to_string(std::strlen(ns)) + ns + suffix;
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found in Abseil\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(f);
}

void Acquired(const void* mu) { __tsan_acquire(const_cast<void*>(mu)); }
void Releasing(const void* mu) { __tsan_release(const_cast<void*>(mu)); }

// Abseil evaluates a wait's Condition inside the library with the lock held, on the waiting
// thread or on whichever thread is unlocking, where the wrappers below cannot see it. The
// Condition passed on is this one: it tells TSan "held" around each evaluation.
struct Observed {
  const void* mu;
  const absl::Condition* cond;
  static bool Eval(Observed* o) {
    Acquired(o->mu);
    const bool met = o->cond->Eval();
    Releasing(o->mu);
    return met;
  }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using MutexFn = void (*)(Mutex*);
using TryFn = bool (*)(Mutex*);
using WhenFn = void (*)(Mutex*, const Condition&);
using WhenTimeoutFn = bool (*)(Mutex*, const Condition&, Duration);
using WhenDeadlineFn = bool (*)(Mutex*, const Condition&, Time);

void Mutex::Lock() {
  static const auto real = Real<MutexFn>("5Mutex4LockEv");
  real(this);
  Acquired(this);
}
void Mutex::ReaderLock() {
  static const auto real = Real<MutexFn>("5Mutex10ReaderLockEv");
  real(this);
  Acquired(this);
}
bool Mutex::TryLock() {
  static const auto real = Real<TryFn>("5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) Acquired(this);
  return locked;
}
bool Mutex::ReaderTryLock() {
  static const auto real = Real<TryFn>("5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) Acquired(this);
  return locked;
}
void Mutex::Unlock() {
  static const auto real = Real<MutexFn>("5Mutex6UnlockEv");
  Releasing(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  static const auto real = Real<MutexFn>("5Mutex12ReaderUnlockEv");
  Releasing(this);
  real(this);
}

// LockWhen*: the lock is held on return whatever the result.
void Mutex::LockWhen(const Condition& cond) {
  static const auto real = Real<WhenFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  Observed observed{this, &cond};
  real(this, Condition(&Observed::Eval, &observed));
  Acquired(this);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto real = Real<WhenFn>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Observed observed{this, &cond};
  real(this, Condition(&Observed::Eval, &observed));
  Acquired(this);
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<WhenTimeoutFn>("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), timeout);
  Acquired(this);
  return met;
}
bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<WhenTimeoutFn>("5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), timeout);
  Acquired(this);
  return met;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), deadline);
  Acquired(this);
  return met;
}
bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), deadline);
  Acquired(this);
  return met;
}

// Await*: lets go of the lock while it waits, holds it again on return.
void Mutex::Await(const Condition& cond) {
  static const auto real = Real<WhenFn>("5Mutex5AwaitERKNS0_9ConditionE");
  Releasing(this);
  Observed observed{this, &cond};
  real(this, Condition(&Observed::Eval, &observed));
  Acquired(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static const auto real =
      Real<WhenTimeoutFn>("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Releasing(this);
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), timeout);
  Acquired(this);
  return met;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static const auto real =
      Real<WhenDeadlineFn>("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Releasing(this);
  Observed observed{this, &cond};
  const bool met = real(this, Condition(&Observed::Eval, &observed), deadline);
  Acquired(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Releasing(mu);
  real(this, mu);
  Acquired(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Releasing(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquired(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static const auto real =
      Real<bool (*)(CondVar*, Mutex*, Time)>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Releasing(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquired(mu);
  return timed_out;
}

void Notification::Notify() {
  static const auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  Releasing(this);
  real(this);
}
void Notification::WaitForNotification() const {
  static const auto real =
      Real<void (*)(const Notification*)>("12Notification19WaitForNotificationEv", true);
  real(this);
  Acquired(this);
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (notified) Acquired(this);
  return notified;
}
bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (notified) Acquired(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
