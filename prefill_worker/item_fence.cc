#include "prefill_worker/item_fence.h"

#include "absl/strings/str_cat.h"

namespace pdserve::prefill {

absl::Status ItemFence::Admit(const Key& key) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = items_.try_emplace(key, State::kAdmitted);
  if (inserted) return absl::OkStatus();
  if (it->second == State::kCancelled) {
    return absl::FailedPreconditionError(absl::StrCat(
        "request ", key.first, " (decode epoch ", key.second, ") was cancelled before it came"));
  }
  return absl::AlreadyExistsError(absl::StrCat("request ", key.first, " (decode epoch ",
                                               key.second, ") is running or ran on this worker"));
}

bool ItemFence::Cancelled(const Key& key) const {
  absl::MutexLock lock(&mu_);
  auto it = items_.find(key);
  return it != items_.end() && it->second == State::kCancelled;
}

bool ItemFence::BeginSubmit(const Key& key) {
  absl::MutexLock lock(&mu_);
  auto it = items_.find(key);
  if (it == items_.end() || it->second != State::kAdmitted) return false;
  it->second = State::kSubmitted;
  return true;
}

void ItemFence::Finish(const Key& key, bool submitted, bool ok, bool in_flight) {
  absl::MutexLock lock(&mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return;
  const State before = it->second;
  if (before == State::kCancelled) return;  // already remembered by Cancel
  if (!submitted) {
    it->second = State::kFailed;
  } else if (in_flight) {
    it->second = State::kInFlight;
    return;  // not ended: not forgettable yet
  } else {
    it->second = ok ? State::kCompleted : State::kFailed;
  }
  RememberLocked(key);
}

CancelOutcome ItemFence::Cancel(const Key& key, absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  auto it = items_.find(key);
  if (it == items_.end()) {
    items_.emplace(key, State::kCancelled);
    RememberLocked(key);
    return CancelOutcome::kNotStarted;
  }
  if (it->second == State::kAdmitted) {
    it->second = State::kCancelled;
    RememberLocked(key);
    return CancelOutcome::kCancelled;
  }
  auto ended = [this, &key]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto found = items_.find(key);
    return found == items_.end() ||
           (found->second != State::kSubmitted && found->second != State::kInFlight);
  };
  mu_.AwaitWithTimeout(absl::Condition(&ended), wait);
  it = items_.find(key);
  if (it == items_.end()) return CancelOutcome::kFailed;  // forgotten: it ended long ago
  switch (it->second) {
    case State::kCancelled:
      return CancelOutcome::kCancelled;
    case State::kCompleted:
      return CancelOutcome::kCompleted;
    case State::kFailed:
      return CancelOutcome::kFailed;
    case State::kAdmitted:
    case State::kSubmitted:
    case State::kInFlight:
      break;
  }
  return CancelOutcome::kInFlight;
}

void ItemFence::RememberLocked(const Key& key) {
  ended_.push_back(key);
  while (ended_.size() > remembered_) {
    items_.erase(ended_.front());
    ended_.pop_front();
  }
}

}  // namespace pdserve::prefill
