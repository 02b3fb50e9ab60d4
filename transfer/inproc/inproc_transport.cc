#include "transfer/inproc/inproc_transport.h"

#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "transfer/transport_front.h"

namespace pdserve::transfer::inproc {
namespace {

// A colocated worker's own pool: its kernels wrote the blocks in place before Submit, so a
// batch moves nothing and only announces them. The one peer it accepts is its own pool.
class InprocEngine final : public TransferEngine {
 public:
  explicit InprocEngine(const EngineContext& context) : context_(context) {}

  absl::Status Register(const KvCache&, PoolDescriptor& descriptor) override {
    descriptor.fields["pid"] = absl::StrCat(getpid());
    pool_id_ = descriptor.pool_id;
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& peer,
                                                      const KvGeometry&) override {
    int pid = 0;
    auto field = peer.fields.find("pid");
    if (peer.pool_id != pool_id_ || field == peer.fields.end() ||
        !absl::SimpleAtoi(field->second, &pid) || pid != getpid()) {
      // Another worker's pool: inproc moves nothing, so it can only serve its own pool.
      return absl::FailedPreconditionError(
          "inproc reaches only its own pool (a colocated worker); prefill and decode in two "
          "processes need a transfer backend that moves bytes (local, ucx)");
    }
    return std::make_shared<EnginePeer>();
  }

  void Disconnect(EnginePeer&) override {}

  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>&,
                                  const PlannedBatch& batch) override {
    const int64_t submit_ns = MonotonicNanos();
    for (const BlockCopy& c : batch.copies) {
      if (c.src != c.dst) {
        return absl::InvalidArgumentError(absl::StrCat(
            "inproc moves no bytes: block ", c.src, " -> ", c.dst,
            " names two blocks (the prefill side must write the reserved blocks themselves)"));
      }
    }
    const TransferId id = context_.table.AddFinished(0, 0, submit_ns, absl::OkStatus());
    if (!batch.notification.empty()) {
      (void)context_.inbox.Push(
          Notification{.sender = context_.options.agent_name, .message = batch.notification});
    }
    return id;
  }

  void AddCounters(TransportCounters& c) const override { c.transports = "none (one shared pool)"; }

 private:
  const EngineContext context_;
  uint64_t pool_id_ = 0;  // written once by Register, before any Connect
};

}  // namespace

absl::StatusOr<std::unique_ptr<KvTransport>> MakeInprocTransport(const TransportOptions& options) {
  return MakeFrontTransport(options, "inproc", [](const EngineContext& context) {
    return absl::StatusOr<std::unique_ptr<TransferEngine>>(
        std::make_unique<InprocEngine>(context));
  });
}

absl::StatusOr<std::unique_ptr<KvMemory>> AllocateInprocPoolMemory(size_t bytes) {
  return AllocateHostMemory(bytes);
}

}  // namespace pdserve::transfer::inproc
