#include "prefill_worker/destination_board.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace pdserve::prefill {

void DestinationBoard::DropStaleLocked() {
  const absl::Time now = SteadyNow();
  std::erase_if(posts_, [now](const auto& p) { return now - p.second.posted > kKeep; });
}

absl::Status DestinationBoard::Post(const Key& key, Destination destination) {
  absl::MutexLock lock(&mu_);
  DropStaleLocked();
  if (posts_.contains(key)) {
    return absl::AlreadyExistsError(absl::StrCat("request ", key.first, " (decode epoch ",
                                                 key.second, ") has a destination already"));
  }
  if (posts_.size() >= kMaxPending) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request ", key.first, ": ", kMaxPending, " destinations wait to be taken already"));
  }
  posts_.emplace(key, Posted{std::move(destination), SteadyNow()});
  return absl::OkStatus();
}

DestinationBoard::Destination DestinationBoard::Take(const Key& key, absl::Duration timeout,
                                                     const std::function<bool()>& stop) {
  // Measured on the monotonic clock; absl's timed wait gets slices of it (it reads the wall
  // clock), short enough that `stop` is seen soon too.
  const absl::Time deadline = SteadyNow() + timeout;
  absl::MutexLock lock(&mu_);
  auto posted = [this, &key]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return posts_.contains(key); };
  while (!posted()) {
    if (stop && stop()) {
      return absl::CancelledError(absl::StrCat("request ", key.first,
                                               ": cancelled while waiting for its destination"));
    }
    const absl::Duration left = deadline - SteadyNow();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(
          absl::StrCat("request ", key.first, ": its decode blocks did not come within ",
                       absl::FormatDuration(timeout)));
    }
    mu_.AwaitWithTimeout(absl::Condition(&posted), std::min(left, absl::Milliseconds(5)));
  }
  auto it = posts_.find(key);
  Destination out = std::move(it->second.destination);
  posts_.erase(it);
  return out;
}

bool DestinationBoard::Has(const Key& key) const {
  absl::MutexLock lock(&mu_);
  return posts_.contains(key);
}

size_t DestinationBoard::pending() const {
  absl::MutexLock lock(&mu_);
  return posts_.size();
}

}  // namespace pdserve::prefill
