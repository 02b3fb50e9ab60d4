#pragma once

// Runs prefill batches into the worker's own paged KV pool and ships each prompt's KV to the
// decode worker that will continue it. Per item: take blocks from the own pool, run the kernels
// (chunk by chunk for long prompts), submit the block copies to the decode peer with the request
// id as notification (so the copy of one item overlaps the kernels of the next), then wait for
// every transfer, free the own blocks and report timings. Batches run one at a time: the kernels
// already use the worker's cores.

#include <cstdint>
#include <functional>
#include <span>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/roofline.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/kv_cache.h"
#include "transfer/kv_transport.h"

namespace pdserve::prefill {

struct PrefillEngineOptions {
  AttentionOptions attention;
  std::optional<RooflineModel> roofline;  // batch lasts at least the modelled GPU time
  int chunk_tokens = 512;                 // longest chunk one kernel call processes
  absl::Duration transfer_timeout = absl::Seconds(30);
  // Every batch's kernels last at least this long (tests use it to have batches in flight).
  absl::Duration min_batch = absl::ZeroDuration();
  // GPU compute (--compute cuda): runs one prompt chunk into `blocks` of the pool instead of the
  // CPU kernels (the worker binds it to its CudaAttention; the engine stays free of CUDA).
  std::function<absl::Status(std::span<const BlockId> blocks, std::span<const int32_t> tokens,
                             int start_pos)>
      compute_chunk;
  // Runs after an item's kernels and before its transfer: a worker whose kernels write a device
  // pool but whose transport sends from a host pool stages the item's blocks here (ucx-staged).
  std::function<absl::Status(std::span<const BlockId> blocks)> after_compute;
};

struct PrefillItemSpec {
  std::string request_id;
  std::vector<int32_t> prompt;
  std::string decode_worker;
  std::vector<BlockId> decode_blocks;  // destination, in logical order
};

struct PrefillItemOutcome {
  std::string request_id;
  absl::Status status;
  int64_t prefill_start_us = 0;
  int64_t prefill_end_us = 0;
  int64_t transfer_start_us = 0;
  int64_t transfer_end_us = 0;
  uint64_t kv_bytes = 0;
  uint32_t transfer_ops = 0;
  int64_t modelled_us = 0;  // roofline: modelled device time of the item's batch
  int64_t mock_us = 0;      // host time generating the item's K/V (the mock's own work)
};

struct PrefillCounters {
  uint64_t requests = 0;
  uint64_t kv_bytes = 0;
  uint32_t running = 0;
  // Batches: host work (kernels or K/V generation) against the modelled device time.
  uint64_t batches = 0;
  uint64_t overrun_batches = 0;  // host work longer than the modelled time
  uint64_t work_us = 0;
  uint64_t modelled_us = 0;
  uint64_t mock_us = 0;
  uint64_t overrun_us = 0;
};

class PrefillEngine {
 public:
  PrefillEngine(KvCache& cache, transfer::KvTransport& transport, PrefillEngineOptions options);

  // Loads (or replaces) a decode worker's pool as a transfer peer.
  absl::Status AddPeer(const std::string& worker_id, const std::string& descriptor);
  absl::Status RemovePeer(const std::string& worker_id);

  // Every item gets an outcome; the own pool's blocks are free again when this returns.
  std::vector<PrefillItemOutcome> Run(const std::vector<PrefillItemSpec>& items);

  PrefillCounters counters() const;
  const KvCache& cache() const { return cache_; }

 private:
  struct Inflight {
    size_t index;
    std::vector<BlockId> own_blocks;
    std::optional<transfer::TransferId> transfer;
  };
  // Kernels for one item into `own_blocks`.
  absl::Status Compute(const PrefillItemSpec& item, const std::vector<BlockId>& own_blocks);

  KvCache& cache_;
  transfer::KvTransport& transport_;
  const PrefillEngineOptions options_;

  absl::Mutex run_mu_;  // one batch at a time
  mutable absl::Mutex mu_;
  std::map<std::string, transfer::PeerId> peers_ ABSL_GUARDED_BY(mu_);
  PrefillCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace pdserve::prefill
