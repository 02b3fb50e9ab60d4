// libFuzzer target: a PrefillBatchRequest as the prefill worker receives it from the router,
// through PrefillEngine::Run: item validation (destination blocks, epochs), the item fence
// (prefill_worker/item_fence.h: admit, replay, cancel) and the kernels on the tiny model. The
// input's first byte picks the options (whether the decode peer's pool size is known to the
// engine, the chunk size, a Cancel before the batch and a replay after it); the rest is the
// serialised request (seeds in corpus/prefill_items).
//
// The transport is the unit tests' in-process fake with the bounds check every real backend
// makes before writing (transfer::PlanCopies): a destination that passes the engine but not the
// transport is an error status, not a write outside the peer's pool. Every item must get an
// outcome, and the own pool's blocks must all be free after the batch.

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "kvcache/kv_cache.h"
#include "pdserve.pb.h"
#include "prefill_worker/prefill_engine.h"
#include "tests/prefill_worker/fake_transport.h"
#include "transfer/copy_plan.h"

namespace pdserve::prefill {
namespace {

constexpr uint32_t kOwnBlocks = 64;
constexpr uint32_t kPeerBlocks = 32;

class CheckedTransport : public FakeTransport {
 public:
  const KvCache* own = nullptr;
  const KvCache* peer = nullptr;
  absl::StatusOr<transfer::TransferId> Submit(transfer::PeerId id,
                                              std::span<const transfer::BlockCopy> copies,
                                              const std::string& notification) override {
    std::vector<transfer::CopyOp> ops;
    absl::Status planned = transfer::PlanCopies(own->geometry(), peer->geometry(), copies, ops);
    if (!planned.ok()) return planned;
    return FakeTransport::Submit(id, copies, notification);
  }
};

struct Pools {
  std::unique_ptr<KvCache> own =
      *KvCache::CreateInHostMemory(*PresetConfig("tiny"), kOwnBlocks, KvLayout::kLayerMajor);
  std::unique_ptr<KvCache> peer =
      *KvCache::CreateInHostMemory(*PresetConfig("tiny"), kPeerBlocks, KvLayout::kLayerMajor);
};

std::vector<PrefillItemSpec> ItemsOf(const v1::PrefillBatchRequest& request) {
  // As PrefillService::Prefill converts them.
  std::vector<PrefillItemSpec> items;
  for (const v1::PrefillItem& in : request.items()) {
    items.push_back(
        PrefillItemSpec{.request_id = in.request_id(),
                        .prompt = {in.prompt_tokens().begin(), in.prompt_tokens().end()},
                        .decode_worker = in.decode_worker_id(),
                        .decode_blocks = {in.decode_blocks().block_ids().begin(),
                                          in.decode_blocks().block_ids().end()},
                        .decode_epoch = in.decode_epoch()});
  }
  return items;
}

}  // namespace
}  // namespace pdserve::prefill

// Protobuf logs every string field that is not UTF-8; the fuzzer makes many.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pdserve::prefill;
  if (size < 1) return 0;
  const uint8_t options = data[0];
  pdserve::v1::PrefillBatchRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  if (request.items_size() > 16) return 0;  // the kernels' time, not a bound of the product

  static Pools pools;
  CheckedTransport own_transport, peer_transport;
  own_transport.own = pools.own.get();
  own_transport.peer = pools.peer.get();
  if (!own_transport.RegisterPool(*pools.own).ok() ||
      !peer_transport.RegisterPool(*pools.peer).ok()) {
    std::abort();
  }
  PrefillEngineOptions engine_options;
  engine_options.chunk_tokens = (options & 2) ? 16 : 512;
  PrefillEngine engine(*pools.own, own_transport, engine_options);
  const uint32_t known_blocks = (options & 1) ? kPeerBlocks : 0;
  if (!engine.AddPeer("decode-0", *peer_transport.ExportDescriptor(), known_blocks).ok()) {
    std::abort();
  }

  const std::vector<PrefillItemSpec> items = ItemsOf(request);
  if (options & 4) {
    std::vector<ItemFence::Key> keys;
    for (size_t i = 0; i < items.size(); i += 2) {
      keys.emplace_back(items[i].request_id, items[i].decode_epoch);
    }
    (void)engine.Cancel(keys, absl::ZeroDuration());
  }
  for (int round = 0; round < ((options & 8) ? 2 : 1); ++round) {  // the second: a replay
    const std::vector<PrefillItemOutcome> out = engine.Run(items);
    if (out.size() != items.size()) std::abort();
    if (pools.own->allocator().num_free() != kOwnBlocks) std::abort();
  }
  return 0;
}
