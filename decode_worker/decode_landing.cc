// How a Decode call waits for its prompt's KV (decode_service.h: AwaitLanding, WaitForKv).

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "decode_worker/decode_service.h"

namespace pdserve::decode {

absl::Status DecodeService::AwaitLanding(grpc::ServerContext& ctx, const std::string& notification,
                                         absl::Duration timeout, DecodeStream& stream,
                                         const std::function<void()>& start) {
  // Set by the receive path once `start` returned; `start` itself wakes this thread only
  // through `stream` (a token, or its end when the start failed).
  auto ran = std::make_shared<std::atomic<bool>>(false);
  // `start` is the caller's and outlives every run of this: AwaitLanding returns only once it
  // ran or its watch was withdrawn before it could.
  absl::Status watched = transport_.WatchNotification(notification, [ran, &start] {
    start();
    ran->store(true);
  });
  if (watched.code() == absl::StatusCode::kUnimplemented) {
    absl::Status landed = WaitForKv(ctx, notification, timeout);
    if (landed.ok()) start();
    return landed;
  }
  if (!watched.ok()) return watched;
  const absl::Time deadline = SteadyNow() + timeout;
  absl::Status why;
  while (true) {
    const absl::Duration left = deadline - SteadyNow();
    // The slices only bound how late a cancelled call is seen.
    stream.WaitForActivity(std::max(absl::ZeroDuration(), std::min(left, options_.cancel_poll)));
    if (ran->load()) return absl::OkStatus();
    if (ctx.IsCancelled()) {
      why = absl::CancelledError("the call was cancelled");
      break;
    }
    if (SteadyNow() >= deadline) {
      why = absl::DeadlineExceededError(
          absl::StrCat("no notification within ", absl::FormatDuration(timeout)));
      break;
    }
  }
  if (transport_.UnwatchNotification(notification)) return why;  // it never runs now
  // It ran, or runs now on the receive path: the request started after all.
  while (!ran->load()) stream.WaitForActivity(absl::Milliseconds(1));
  return absl::OkStatus();
}

absl::Status DecodeService::WaitForKv(grpc::ServerContext& ctx, const std::string& notification,
                                      absl::Duration timeout) {
  // The wait returns the moment the notification is there; the slices only bound how late a
  // cancelled call is seen (the transport's wait does not know the call).
  const absl::Time deadline = SteadyNow() + timeout;
  while (true) {
    const absl::Duration left = deadline - SteadyNow();
    absl::Status landed = transport_.WaitForNotification(
        notification, std::max(absl::ZeroDuration(), std::min(left, options_.cancel_poll)));
    if (landed.code() != absl::StatusCode::kDeadlineExceeded) return landed;
    if (ctx.IsCancelled()) return absl::CancelledError("the call was cancelled");
    if (SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no notification within ", absl::FormatDuration(timeout)));
    }
  }
}

}  // namespace pdserve::decode
