#pragma once

// The GPU transfer tests' one scenario (cuda-ipc, ucx on device memory, nccl): the sender runs
// the prefill kernels for a 100-token synthetic prompt into blocks 3.. of its device pool and
// sends them to every other block, backwards, of the receiver's pool (nothing coalesces by
// accident); the receiver checks every byte of its pool against the CPU path and that its decode
// step gives the CPU's token.

#include <algorithm>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/synthetic_model.h"
#include "kvcache/cpu_attention.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "transfer/kv_transport.h"
#include "transfer/pool_descriptor.h"

namespace pdserve::testing_util {

inline constexpr int kPromptLen = 100;
inline constexpr uint32_t kPoolBlocks = 24;

// llama3-8b's shapes with two layers: real head and block sizes, a small pool.
inline ModelConfig TwoLayerLlama() {
  ModelConfig c = *PresetConfig("llama3-8b");
  c.num_layers = 2;
  return c;
}

inline std::vector<BlockId> ReceiverTable(const ModelConfig& c) {
  std::vector<BlockId> t;
  for (int i = 0; i < c.BlocksForTokens(kPromptLen); ++i) t.push_back(kPoolBlocks - 1 - 2 * i);
  return t;
}

inline std::vector<int32_t> Prompt(const ModelConfig& c) {
  return model::SyntheticPrompt(42, kPromptLen, c.vocab_size);
}

// Sender side: the prompt's K/V written by the GPU prefill kernels into `pool`, and the copies
// that take them to the receiver's table.
inline absl::StatusOr<std::vector<transfer::BlockCopy>> PrefillPrompt(const KvCache& pool) {
  const ModelConfig& c = pool.config();
  absl::StatusOr<std::unique_ptr<cuda::CudaAttention>> attention =
      cuda::CudaAttention::Create(pool);
  if (!attention.ok()) return attention.status();
  std::vector<BlockId> src(c.BlocksForTokens(kPromptLen));
  std::iota(src.begin(), src.end(), 3);
  const std::vector<int32_t> prompt = Prompt(c);
  std::vector<cuda::PrefillChunk> chunk = {{src, prompt, 0}};
  if (absl::Status s = (*attention)->Prefill(chunk); !s.ok()) return s;
  const std::vector<BlockId> dst = ReceiverTable(c);
  std::vector<transfer::BlockCopy> copies;
  for (size_t i = 0; i < src.size(); ++i) copies.push_back({src[i], dst[i]});
  return copies;
}

// Receiver side, after the notification: 0 when the pool holds the CPU's bytes for the prompt
// through the receiving table (zeros elsewhere) and decodes to the CPU's token; else 4 (CPU
// reference), 5 (read back), 6 (bytes differ), 7 (GPU attention), 8 (token differs).
inline int CheckReceivedPrompt(const KvCache& pool) {
  const ModelConfig& c = pool.config();
  const KvLayout layout = pool.geometry().layout();
  auto expected = *KvCache::CreateInHostMemory(c, kPoolBlocks, layout);
  const std::vector<int32_t> prompt = Prompt(c);
  const std::vector<BlockId> table = ReceiverTable(c);
  if (!WriteKv(*expected, table, prompt, 0).ok()) return 4;
  std::vector<std::byte> got(expected->geometry().region_bytes());
  if (!cuda::CopyDeviceToHost(pool.memory(), 0, got).ok()) return 5;
  if (!std::equal(got.begin(), got.end(), expected->base())) return 6;
  auto attention = cuda::CudaAttention::Create(pool);
  if (!attention.ok()) return 7;
  DecodeSequence s{table, prompt.back(), kPromptLen, 9, {}};
  auto gpu = (*attention)->Decode(std::span(&s, 1));
  auto cpu = DecodeAttention(*expected, std::span(&s, 1));
  if (!gpu.ok() || !cpu.ok() || (*gpu)[0].token != (*cpu)[0].token) return 8;
  return 0;
}

// The receiver's descriptor with 64 times the blocks it allocated: a peer's word the sender must
// check against the device allocation it maps (kvcache/cuda/device_range.h) before believing it.
// Returns the status LoadPeer gave it (the caller expects InvalidArgument).
inline absl::Status LoadInflatedPeer(transfer::KvTransport& sender, const std::string& descriptor) {
  absl::StatusOr<transfer::PoolDescriptor> d = transfer::PoolDescriptor::Parse(descriptor);
  if (!d.ok()) return d.status();
  d->num_blocks *= 64;
  return sender.LoadPeer(d->Serialize()).status();
}

}  // namespace pdserve::testing_util
