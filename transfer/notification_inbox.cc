#include "transfer/notification_inbox.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer {

void NotificationInbox::Push(Notification n) {
  absl::MutexLock lock(&mu_);
  pending_.push_back(std::move(n));
  ++received_;
}

std::vector<Notification> NotificationInbox::TakeAll() {
  // Swap under the lock, move out after: the receive path's Push never waits behind a long
  // copy (a local receiver's listener would stop draining its senders' rings meanwhile).
  std::deque<Notification> taken;
  {
    absl::MutexLock lock(&mu_);
    taken.swap(pending_);
  }
  return std::vector<Notification>(std::make_move_iterator(taken.begin()),
                                   std::make_move_iterator(taken.end()));
}

absl::Status NotificationInbox::WaitFor(const std::string& message, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto find = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::find_if(pending_.begin(), pending_.end(),
                        [&](const Notification& n) { return n.message == message; });
  };
  auto arrived = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return find() != pending_.end(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat("no KV transfer notification '", message, "' within ",
                     absl::FormatDuration(timeout), ": the batch did not complete"));
  }
  pending_.erase(find());
  return absl::OkStatus();
}

uint64_t NotificationInbox::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

}  // namespace pdserve::transfer
