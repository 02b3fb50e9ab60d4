#include "router/generate_reactor.h"

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "router/grpc_adapter.h"
#include "router/request_validation.h"
#include "service/grpc_util.h"

namespace pdserve::router {
namespace {

class GenerateReactor;

// What the core holds (a shared_ptr it may keep past the call): forwards to the reactor while
// the reactor lives, and drops events after.
class Relay final : public EventSink {
 public:
  explicit Relay(GenerateReactor* reactor) : reactor_(reactor) {}
  bool OnEvent(const TokenEvent& event) override;
  void OnDone(const absl::Status& status) override;
  void Detach() {
    std::lock_guard lock(mu_);
    reactor_ = nullptr;
  }

 private:
  std::mutex mu_;  // held while calling into the reactor, so Detach waits for such a call
  GenerateReactor* reactor_;
};

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  GenerateReactor(RequestCore& core, const v1::GenerateRequest& request)
      : relay_(std::make_shared<Relay>(this)) {
    // Start may end the request at once (an invalid one): Finish from the constructor is fine.
    std::shared_ptr<Call> call = core.Start(ParamsOf(request), relay_);
    bool cancel = false;
    {
      std::lock_guard lock(mu_);
      call_ = std::move(call);
      cancel = cancelled_;  // the client left before Start returned
    }
    if (cancel) call_->Cancel();
  }

  // From the relay, on a core thread. False once the client is gone: the core then cancels.
  bool Enqueue(const TokenEvent& event) {
    std::lock_guard lock(mu_);
    if (gone_) return false;
    queue_.push_back(event);
    Pump();
    return true;
  }
  void Done(const absl::Status& status) {
    std::lock_guard lock(mu_);
    done_ = status;
    Pump();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {  // the stream broke: nothing more reaches the client
      gone_ = true;
      queue_.clear();
    }
    Pump();
  }
  void OnCancel() override {
    std::shared_ptr<Call> call;
    {
      std::lock_guard lock(mu_);
      gone_ = true;
      cancelled_ = true;
      queue_.clear();
      call = call_;
    }
    // Outside mu_: Cancel may end the request on this thread, which calls Done.
    if (call != nullptr) call->Cancel();
  }
  void OnDone() override {
    relay_->Detach();  // waits for a relay call in progress; none reaches this reactor after
    delete this;
  }

 private:
  // Starts the next write, or Finish once the core ended the request and the queue is written.
  void Pump() {
    if (writing_ || finished_) return;
    if (!queue_.empty()) {
      const TokenEvent event = std::move(queue_.front());
      queue_.pop_front();
      out_.Clear();
      out_.set_request_id(event.request_id);
      out_.mutable_tokens()->Assign(event.tokens.begin(), event.tokens.end());
      out_.set_position(event.position);
      if (event.first) out_.set_prompt_tokens(event.prompt_tokens);
      if (event.finished) {
        out_.set_finished(true);
        out_.set_finish_reason(event.finish_reason);
        *out_.mutable_timeline() = TimelineOf(event.times);
      }
      writing_ = true;
      StartWrite(&out_);
      return;
    }
    if (done_.has_value()) {
      finished_ = true;
      Finish(service::ToGrpc(*done_));
    }
  }

  const std::shared_ptr<Relay> relay_;
  std::mutex mu_;
  std::shared_ptr<Call> call_;
  std::deque<TokenEvent> queue_;
  v1::GenerateResponse out_;  // the message being written: alive until OnWriteDone
  std::optional<absl::Status> done_;
  bool writing_ = false;
  bool finished_ = false;
  bool gone_ = false;
  bool cancelled_ = false;
};

bool Relay::OnEvent(const TokenEvent& event) {
  std::lock_guard lock(mu_);
  return reactor_ != nullptr && reactor_->Enqueue(event);
}

void Relay::OnDone(const absl::Status& status) {
  std::lock_guard lock(mu_);
  if (reactor_ != nullptr) reactor_->Done(status);
}

}  // namespace

grpc::ServerWriteReactor<v1::GenerateResponse>* StartGenerate(RequestCore& core,
                                                              const v1::GenerateRequest& request) {
  return new GenerateReactor(core, request);
}

}  // namespace pdserve::router
