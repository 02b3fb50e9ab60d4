#include "router/progress_watchdog.h"

namespace pdserve::router {

ProgressWatchdog::Watch::~Watch() { owner_->Remove(key_); }

void ProgressWatchdog::Watch::Progress(absl::Time now) {
  if (entry_->next_token == absl::InfiniteDuration()) return;  // not watched
  const int64_t now_us = absl::ToUnixMicros(now);
  entry_->last_us.store(now_us, std::memory_order_relaxed);
  entry_->deadline_us.store(now_us + absl::ToInt64Microseconds(entry_->next_token),
                            std::memory_order_relaxed);
}

std::unique_ptr<ProgressWatchdog::Watch> ProgressWatchdog::Start(
    const std::string& request_id, const std::string& worker, absl::Time now,
    absl::Duration first_token, absl::Duration next_token, std::function<void()> cancel) {
  auto entry = std::make_shared<Watch::Entry>();
  entry->request_id = request_id;
  entry->worker = worker;
  entry->cancel = std::move(cancel);
  entry->next_token = next_token;
  entry->last_us = absl::ToUnixMicros(now);
  const bool enabled = first_token > absl::ZeroDuration() && next_token > absl::ZeroDuration();
  entry->deadline_us = enabled ? absl::ToUnixMicros(now + first_token) : INT64_MAX;
  if (!enabled) entry->next_token = absl::InfiniteDuration();
  absl::MutexLock lock(&mu_);
  const uint64_t key = next_key_++;
  if (enabled) entries_[key] = entry;
  return std::unique_ptr<Watch>(new Watch(this, key, std::move(entry)));
}

std::vector<ProgressWatchdog::Stalled> ProgressWatchdog::Sweep(absl::Time now) {
  const int64_t now_us = absl::ToUnixMicros(now);
  std::vector<Stalled> stalled;
  absl::MutexLock lock(&mu_);
  for (auto& [key, e] : entries_) {
    if (e->stalled.load() || now_us <= e->deadline_us.load(std::memory_order_relaxed)) continue;
    e->stalled.store(true);
    // Under the lock: the Watch (and the context cancel refers to) cannot be destroyed meanwhile.
    if (e->cancel) e->cancel();
    stalled.push_back(
        Stalled{e->request_id, e->worker, absl::Microseconds(now_us - e->last_us.load())});
  }
  return stalled;
}

size_t ProgressWatchdog::watched() const {
  absl::MutexLock lock(&mu_);
  return entries_.size();
}

void ProgressWatchdog::Remove(uint64_t key) {
  absl::MutexLock lock(&mu_);
  entries_.erase(key);
}

}  // namespace pdserve::router
