// RequestCore::Run: the blocking form of Start, for front ends that give each call a thread of
// their own (gRPC's synchronous server). The core's threads queue the events here; the caller's
// thread writes them, so a slow client paces only its own call.

#include "router/request_core.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

namespace pdserve::router {
namespace {

class BlockingSink final : public EventSink {
 public:
  bool OnEvent(const TokenEvent& event) override {
    std::lock_guard lock(mu_);
    if (gone_) return false;
    events_.push_back(event);
    ready_.notify_one();
    return true;
  }
  void OnDone(const absl::Status& status) override {
    std::lock_guard lock(mu_);
    done_ = status;
    ready_.notify_one();
  }

  // Writes what arrives to `sink` until the core ended the request; cancels `call` once the
  // client is gone (the core still ends the request, which Run waits for).
  absl::Status Drain(TokenSink& sink, Call& call) {
    std::unique_lock lock(mu_);
    bool cancelled = false;
    while (true) {
      ready_.wait_for(lock, std::chrono::milliseconds(50),
                      [this] { return !events_.empty() || done_.has_value(); });
      while (!events_.empty()) {
        TokenEvent event = std::move(events_.front());
        events_.pop_front();
        if (gone_) continue;
        lock.unlock();
        const bool written = sink.Write(event);
        lock.lock();
        if (!written) gone_ = true;
      }
      if (done_.has_value()) return *done_;
      if (!cancelled && (gone_ || sink.Cancelled())) {
        cancelled = true;
        gone_ = true;
        lock.unlock();
        call.Cancel();
        lock.lock();
      }
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<TokenEvent> events_;
  std::optional<absl::Status> done_;
  bool gone_ = false;
};

}  // namespace

absl::Status RequestCore::Run(const GenerateParams& params, TokenSink& sink) {
  auto blocking = std::make_shared<BlockingSink>();
  std::shared_ptr<Call> call = Start(params, blocking);
  return blocking->Drain(sink, *call);
}

}  // namespace pdserve::router
