#include "transfer/notification_inbox.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace pdserve::transfer {

namespace {
size_t BytesOf(const Notification& n) { return n.sender.size() + n.message.size(); }
}  // namespace

bool NotificationInbox::Push(Notification n) {
  uint64_t dropped = 0;
  std::function<void()> watched;
  {
    absl::MutexLock lock(&mu_);
    if (auto w = watches_.find(n.message); w != watches_.end()) {
      watched = std::move(w->second);
      watches_.erase(w);
      ++received_;
    } else if (pending_.size() < kMaxPending && pending_bytes_ + BytesOf(n) <= kMaxPendingBytes) {
      pending_bytes_ += BytesOf(n);
      pending_.push_back(std::move(n));
      ++received_;
    } else {
      dropped = ++dropped_;
    }
  }
  if (dropped == 0) {
    if (watched) watched();  // outside the lock: it may take its owner's locks
    if (pushed_) pushed_();
    return true;
  }
  // Outside the lock; the first few and then every 1000th, so that a flood does not flood
  // the log.
  if (dropped <= 10 || dropped % 1000 == 0) {
    ComponentLogger("transfer")->warn(
        "KV notification inbox full ({} notifications / {} bytes unconsumed): dropped '{}' from "
        "'{}' ({} dropped so far)",
        kMaxPending, kMaxPendingBytes, absl::CEscape(n.message.substr(0, 128)),
        absl::CEscape(n.sender.substr(0, 128)), dropped);
  }
  return false;
}

std::vector<Notification> NotificationInbox::TakeAll() {
  // Swap under the lock, move out after: the receive path's Push never waits behind a long
  // copy (a local receiver's listener would stop draining its senders' rings meanwhile).
  std::deque<Notification> taken;
  {
    absl::MutexLock lock(&mu_);
    taken.swap(pending_);
    pending_bytes_ = 0;
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
  const auto found = find();
  pending_bytes_ -= BytesOf(*found);
  pending_.erase(found);
  return absl::OkStatus();
}

absl::Status NotificationInbox::Watch(const std::string& message,
                                      std::function<void()> arrived) {
  {
    absl::MutexLock lock(&mu_);
    if (watches_.contains(message)) {
      return absl::AlreadyExistsError(
          absl::StrCat("KV notification '", absl::CEscape(message), "' is watched already"));
    }
    auto found = std::find_if(pending_.begin(), pending_.end(),
                              [&](const Notification& n) { return n.message == message; });
    if (found == pending_.end()) {
      watches_.emplace(message, std::move(arrived));
      return absl::OkStatus();
    }
    pending_bytes_ -= BytesOf(*found);
    pending_.erase(found);
  }
  arrived();
  return absl::OkStatus();
}

bool NotificationInbox::Unwatch(const std::string& message) {
  absl::MutexLock lock(&mu_);
  return watches_.erase(message) > 0;
}

uint64_t NotificationInbox::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

uint64_t NotificationInbox::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

void NotificationInbox::SetObserver(std::function<void()> pushed,
                                    std::function<void(const std::string&)> sender_lost) {
  pushed_ = std::move(pushed);
  sender_lost_ = std::move(sender_lost);
}

void NotificationInbox::SenderLost(const std::string& sender) const {
  if (sender_lost_) sender_lost_(sender);
}

}  // namespace pdserve::transfer
