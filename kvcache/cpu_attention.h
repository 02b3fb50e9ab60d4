#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "absl/status/statusor.h"
#include "kvcache/kv_cache.h"

namespace pdserve {

// CPU kernels over the paged cache. Float outputs are laid out [position][layer][q head][dim]
// (prefill) and [layer][q head][dim] (decode); an empty output span means "compute, then drop"
// (the work is still done: kernels are benchmarked), unless compute_attention is false (the
// roofline compute mode, where only K/V bytes are written and the checksum read).
struct AttentionOptions {
  bool compute_attention = true;
  int threads = 0;  // <= 0: all cores
};

// KV reads and writes from this size on use several threads (AttentionOptions::threads): one
// core generates or checks ~11-19 GB/s, so a 2048-token llama3-8b request's 256 MiB does not fit
// in one modelled H100 decode step on one thread. Smaller jobs stay on one thread, so as not to
// take the core another worker's time-critical work is on.
inline constexpr int64_t kLargeKvBytes = int64_t{96} << 20;

// Writes K and V of tokens[i] at position start_pos + i into the cache through `block_table`.
absl::Status WriteKv(const KvCache& cache, std::span<const BlockId> block_table,
                     std::span<const int32_t> tokens, int start_pos, int threads = 0);

// WriteKv on `threads` threads as given, whatever the call's size: a caller making a large
// prompt's K/V chunk by chunk decides by the whole prompt (kLargeKvBytes). With `sum`, also adds
// the checksum of the rows written to *sum (KvChecksum's terms, each row summed just after it
// was written, while it is in cache: no second pass over the pool).
absl::Status WriteKvChunk(const KvCache& cache, std::span<const BlockId> block_table,
                          std::span<const int32_t> tokens, int start_pos, int threads,
                          uint64_t* sum = nullptr);

// Prefill of one prompt chunk: writes its K/V, then causal GQA attention of each chunk position
// over positions [0, its own] read back from the cache. `tokens` is the chunk; positions before
// start_pos must already be in the cache.
absl::Status PrefillAttention(const KvCache& cache, std::span<const BlockId> block_table,
                              std::span<const int32_t> tokens, int start_pos,
                              std::span<float> out, const AttentionOptions& options = {});

struct DecodeSequence {
  std::span<const BlockId> block_table;
  int32_t last_token = 0;  // token at position seq_len - 1: the query
  int seq_len = 0;         // KV positions [0, seq_len) are read
  uint64_t seed = 0;
  std::span<float> out;    // [layer][q head][dim] or empty
  // The checksum of positions [0, seq_len) when the caller carries it forward (roofline mode:
  // the decode engine verified the prompt's KV once and adds each new position's rows): then
  // only the attention probe reads the cache. Unset: every KV word is read this step.
  std::optional<uint64_t> carried_checksum;
};

struct DecodeResult {
  uint64_t checksum = 0;
  int32_t probe = 0;  // the attention probe's argmax position (synthetic_model.h)
  int32_t token = 0;  // the token at position seq_len
};

// One decode step for a batch of sequences: paged attention over each sequence's KV, the
// checksum of every KV word read (or the carried one), the attention probe, and the next token.
absl::StatusOr<std::vector<DecodeResult>> DecodeAttention(const KvCache& cache,
                                                          std::span<const DecodeSequence> batch,
                                                          const AttentionOptions& options = {});

// Checksum of KV positions [begin, end) of one sequence read from the cache: every layer, KV
// head, K and V row (the sum of synthetic_model.h's word terms).
absl::StatusOr<uint64_t> KvChecksum(const KvCache& cache, std::span<const BlockId> block_table,
                                    int begin, int end, int threads = 1);

// The attention probe of a sequence whose last token (at seq_len - 1) is `last_token`: the
// argmax position of the probe head's q.k over positions [0, seq_len), read from the cache.
absl::StatusOr<int32_t> AttentionProbe(const KvCache& cache, std::span<const BlockId> block_table,
                                       int32_t last_token, int seq_len);

// FLOPs of causal attention for a chunk (QK^T and PV, 2 FLOPs per multiply-add).
double PrefillAttentionFlops(const ModelConfig& config, int start_pos, int chunk_len);

}  // namespace pdserve
