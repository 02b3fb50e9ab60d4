// How a Decode call waits for its prompt's KV (decode_service.h: AwaitLanding, WaitForKv).

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "decode_worker/decode_service.h"

namespace pdserve::decode {

absl::Status DecodeService::WaitInSlices(grpc::ServerContext& ctx, absl::Duration timeout,
                                         const std::function<absl::StatusOr<bool>(absl::Duration)>& done) {
  // `done` returns the moment its event is there; the slices only bound how late a cancelled
  // call is seen (the transport's and the stream's waits do not know the call).
  const absl::Time deadline = SteadyNow() + timeout;
  while (true) {
    const absl::Duration left = deadline - SteadyNow();
    absl::StatusOr<bool> ended =
        done(std::max(absl::ZeroDuration(), std::min(left, options_.cancel_poll)));
    if (!ended.ok()) return ended.status();
    if (*ended) return absl::OkStatus();
    if (ctx.IsCancelled()) return absl::CancelledError("the call was cancelled");
    if (SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no notification within ", absl::FormatDuration(timeout)));
    }
  }
}

absl::Status DecodeService::WaitForKv(grpc::ServerContext& ctx, const std::string& notification,
                                      absl::Duration timeout) {
  return WaitInSlices(ctx, timeout, [&](absl::Duration slice) -> absl::StatusOr<bool> {
    absl::Status landed = transport_.WaitForNotification(notification, slice);
    if (landed.code() == absl::StatusCode::kDeadlineExceeded) return false;
    if (!landed.ok()) return landed;
    return true;
  });
}

absl::Status DecodeService::AwaitLanding(grpc::ServerContext& ctx, const std::string& notification,
                                         absl::Duration timeout, DecodeStream& stream,
                                         const std::function<bool()>& start) {
  // Set by the receive path once `start` returned; `start` itself wakes this thread only
  // through `stream` (a token, or its end when the start failed).
  auto ran = std::make_shared<std::atomic<bool>>(false);
  // `start` is the caller's and outlives every run of this until `ran` is set: AwaitLanding
  // returns only once it ran or its watch was withdrawn before it could. A first step the
  // engine reserved runs after that, touching only the engine (which outlives the transport):
  // the first token leaves from the receive path, with no wake-up of the loop thread.
  DecodeEngine& engine = engine_;
  absl::Status watched = transport_.WatchNotification(notification, [ran, &start, &engine] {
    const bool step_here = start();
    ran->store(true);
    if (step_here) engine.RunReservedStep();
  });
  if (watched.code() == absl::StatusCode::kUnimplemented) {
    absl::Status landed = WaitForKv(ctx, notification, timeout);
    if (landed.ok() && start()) engine_.RunReservedStep();
    return landed;
  }
  if (!watched.ok()) return watched;
  const absl::Status waited =
      WaitInSlices(ctx, timeout, [&](absl::Duration slice) -> absl::StatusOr<bool> {
        stream.WaitForActivity(slice);
        return ran->load();
      });
  if (waited.ok() || !transport_.UnwatchNotification(notification)) {
    // It ran, or runs now on the receive path: the request started after all.
    while (!ran->load()) stream.WaitForActivity(absl::Milliseconds(1));
    return absl::OkStatus();
  }
  return waited;  // withdrawn: it never runs now
}

}  // namespace pdserve::decode
