#include "kvcache/cpu_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/parallel_for.h"
#include "common/synthetic_model.h"
#include "common/synthetic_rows.h"

namespace pdserve {
namespace {

absl::Status CheckTable(const KvCache& cache, std::span<const BlockId> table, int positions) {
  const int block_size = cache.config().block_size;
  const int64_t needed = (positions + block_size - 1) / block_size;
  if (static_cast<int64_t>(table.size()) < needed) {
    return absl::InvalidArgumentError(absl::StrCat("block table has ", table.size(),
                                                   " blocks, ", positions, " positions need ",
                                                   needed));
  }
  for (int64_t i = 0; i < needed; ++i) {
    if (table[i] >= cache.geometry().num_blocks()) {
      return absl::InvalidArgumentError(absl::StrCat("block ", table[i], " out of range (pool has ",
                                                     cache.geometry().num_blocks(), ")"));
    }
  }
  return absl::OkStatus();
}

// Converts one stored row to floats; the dtype switch sits outside the element loop so the
// loop vectorises.
void RowToFloat(const std::byte* row, DType dtype, int d, float* dst) {
  switch (dtype) {
    case DType::kBF16: {
      const auto* bits = reinterpret_cast<const uint16_t*>(row);
      for (int e = 0; e < d; ++e) dst[e] = Bf16BitsToFloat(bits[e]);
      break;
    }
    case DType::kFP16: {
      const auto* bits = reinterpret_cast<const uint16_t*>(row);
      for (int e = 0; e < d; ++e) dst[e] = Fp16BitsToFloat(bits[e]);
      break;
    }
    case DType::kFP32:
      std::memcpy(dst, row, sizeof(float) * d);
      break;
  }
}

// Reads `n` positions of one (layer, kv head, kind) from the cache into floats, row by row.
void GatherRows(const KvCache& cache, std::span<const BlockId> table, int layer, int head,
                uint32_t kind, int n, float* dst) {
  const ModelConfig& c = cache.config();
  for (int p = 0; p < n; ++p) {
    const std::byte* row = cache.RowPtr(table[p / c.block_size], p % c.block_size, layer, head, kind);
    RowToFloat(row, c.dtype, c.head_dim, dst + static_cast<size_t>(p) * c.head_dim);
  }
}

// Eight partial sums let the compiler vectorise without reassociating a single sum.
float Dot(const float* a, const float* b, int n) {
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// softmax(q K[0..n)^T / sqrt(d)) V[0..n) for one query row, into out[d].
void AttendOne(const float* q, const float* k, const float* v, int n, int d, float* scores,
               float* out) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  float max_score = -INFINITY;
  for (int j = 0; j < n; ++j) {
    scores[j] = Dot(q, k + j * d, d) * scale;
    max_score = std::max(max_score, scores[j]);
  }
  float denom = 0.0f;
  for (int j = 0; j < n; ++j) {
    scores[j] = std::exp(scores[j] - max_score);
    denom += scores[j];
  }
  std::fill(out, out + d, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float w = scores[j] / denom;
    const float* vj = v + j * d;
    for (int i = 0; i < d; ++i) out[i] += w * vj[i];
  }
}

}  // namespace

// Visits rows in memory order: per (block run, layer) item, K then V, head by head, the run's
// slots one after another. Both layouts keep a block's rows of one layer, kind and head
// contiguous, so an item sweeps one fragment front to back instead of scattering 256-byte rows
// over pages (which made K/V generation 4-15x slower than the same rows written in order).
// `row` returns a value that is summed (wrapping) per item and then over items: one atomic add
// per item, not per row (two threads adding per row kept a cache line bouncing between cores).
constexpr int64_t kParallelBytes = kLargeKvBytes;

template <typename Row>
uint64_t SumRowsInMemoryOrder(const KvCache& cache, std::span<const BlockId> table, int begin,
                              int end, int threads, Row row,
                              int64_t parallel_from = kParallelBytes) {
  const ModelConfig& c = cache.config();
  if (end <= begin) return 0;
  const int first_block = begin / c.block_size;
  const int runs = (end - 1) / c.block_size - first_block + 1;
  const int64_t bytes = int64_t{end - begin} * c.KvBytesPerToken();
  std::atomic<uint64_t> total{0};
  // Several threads only for reads and writes one thread cannot fit in a modelled step or
  // prefill (a 2048-token llama3-8b request, 256 MiB): below that, a second thread only takes
  // the core another worker's time-critical work was on.
  ParallelFor(runs * c.num_layers, bytes >= parallel_from ? threads : 1, [&](int item) {
    const int run = item / c.num_layers;
    const int layer = item % c.num_layers;
    const int b = first_block + run;
    const int lo = std::max(begin, b * c.block_size);
    const int hi = std::min(end, (b + 1) * c.block_size);
    uint64_t sum = 0;
    for (uint32_t kind : {model::kKey, model::kValue}) {
      for (int head = 0; head < c.num_kv_heads; ++head) {
        for (int pos = lo; pos < hi; ++pos) {
          sum += row(pos, layer, head, kind,
                     cache.RowPtr(table[b], pos - b * c.block_size, layer, head, kind));
        }
      }
    }
    total.fetch_add(sum, std::memory_order_relaxed);
  });
  return total.load();
}

absl::Status WriteKv(const KvCache& cache, std::span<const BlockId> table,
                     std::span<const int32_t> tokens, int start_pos, int threads) {
  // Several threads only from kParallelBytes on (SumRowsInMemoryOrder says why).
  const int64_t bytes = static_cast<int64_t>(tokens.size()) * cache.config().KvBytesPerToken();
  return WriteKvChunk(cache, table, tokens, start_pos, bytes >= kParallelBytes ? threads : 1);
}

absl::Status WriteKvChunk(const KvCache& cache, std::span<const BlockId> table,
                          std::span<const int32_t> tokens, int start_pos, int threads,
                          uint64_t* sum) {
  const ModelConfig& c = cache.config();
  const int n = static_cast<int>(tokens.size());
  if (start_pos < 0) return absl::InvalidArgumentError("negative start position");
  if (absl::Status s = CheckTable(cache, table, start_pos + n); !s.ok()) return s;
  const int words = static_cast<int>(c.RowBytes() / 8);
  const uint64_t written = SumRowsInMemoryOrder(
      cache, table, start_pos, start_pos + n, threads,
      [&](int pos, int layer, int head, uint32_t kind, std::byte* dst) {
        model::WriteRow(c, tokens[pos - start_pos], pos, layer, head, kind, dst);
        return sum == nullptr ? uint64_t{0}
                              : model::ChecksumRow(dst, words, model::RowSalt(pos, layer, head, kind));
      },
      /*parallel_from=*/0);
  if (sum != nullptr) *sum += written;
  return absl::OkStatus();
}

absl::Status PrefillAttention(const KvCache& cache, std::span<const BlockId> table,
                              std::span<const int32_t> tokens, int start_pos,
                              std::span<float> out, const AttentionOptions& options) {
  const ModelConfig& c = cache.config();
  const int n = static_cast<int>(tokens.size());
  const int total = start_pos + n;
  const int d = c.head_dim;
  const int group = c.QueryHeadsPerKvHead();
  const size_t out_size = static_cast<size_t>(n) * c.num_layers * c.num_q_heads * d;
  if (!out.empty() && out.size() != out_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefill output has ", out.size(), " floats, expected ", out_size));
  }
  if (absl::Status s = WriteKv(cache, table, tokens, start_pos, options.threads); !s.ok()) return s;
  if (!options.compute_attention) return absl::OkStatus();

  // One task per (layer, kv head): K and V of all positions are converted to float once, then
  // every query of the group attends causally over them.
  ParallelFor(c.num_layers * c.num_kv_heads, options.threads, [&](int item) {
    const int layer = item / c.num_kv_heads;
    const int head = item % c.num_kv_heads;
    std::vector<float> k(static_cast<size_t>(total) * d), v(k.size());
    std::vector<float> q(d), scores(total), result(d);
    GatherRows(cache, table, layer, head, model::kKey, total, k.data());
    GatherRows(cache, table, layer, head, model::kValue, total, v.data());
    for (int i = 0; i < n; ++i) {
      const int pos = start_pos + i;
      for (int g = 0; g < group; ++g) {
        const int qhead = head * group + g;
        model::QueryRow(c, tokens[i], pos, layer, qhead, q.data());
        float* dst = out.empty() ? result.data()
                                 : out.data() + ((static_cast<size_t>(i) * c.num_layers + layer) *
                                                     c.num_q_heads + qhead) * d;
        AttendOne(q.data(), k.data(), v.data(), pos + 1, d, scores.data(), dst);
      }
    }
  });
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> KvChecksum(const KvCache& cache, std::span<const BlockId> table,
                                    int begin, int end, int threads) {
  const ModelConfig& c = cache.config();
  if (begin < 0 || end < begin) return absl::InvalidArgumentError("bad checksum range");
  if (absl::Status s = CheckTable(cache, table, end); !s.ok()) return s;
  const int words = static_cast<int>(c.RowBytes() / 8);
  // Wrap-around adds of the partial sums commute: any split and order gives the same sum.
  return SumRowsInMemoryOrder(
      cache, table, begin, end, threads,
      [&](int pos, int layer, int head, uint32_t kind, const std::byte* row) {
        return model::ChecksumRow(row, words, model::RowSalt(pos, layer, head, kind));
      });
}

absl::StatusOr<int32_t> AttentionProbe(const KvCache& cache, std::span<const BlockId> table,
                                       int32_t last_token, int seq_len) {
  const ModelConfig& c = cache.config();
  if (seq_len <= 0) return absl::InvalidArgumentError("probe of an empty sequence");
  if (absl::Status s = CheckTable(cache, table, seq_len); !s.ok()) return s;
  const int layer = model::ProbeLayer(c.num_layers);
  // The GQA mapping under test: q head -> its group's KV head.
  const int kv_head = model::ProbeQHead(c.num_q_heads) / c.QueryHeadsPerKvHead();
  float query[1024];
  model::ProbeQuery(c, last_token, seq_len - 1, query);
  model::ProbeArgmax best;
  // A block's slots are consecutive rows in both layouts (KvGeometry::RowOffset): one pointer
  // per block, not per position (the decode worker probes every position of every running
  // request at every step).
  const size_t row_bytes = c.RowBytes();
  for (int start = 0; start < seq_len; start += c.block_size) {
    const std::byte* key =
        cache.RowPtr(table[start / c.block_size], 0, layer, kv_head, model::kKey);
    const int n = std::min(c.block_size, seq_len - start);
    for (int s = 0; s < n; ++s, key += row_bytes) {
      best.Offer(model::ProbeDot(query, key, c.head_dim, c.dtype), start + s);
    }
  }
  return best.pos;
}

absl::StatusOr<std::vector<DecodeResult>> DecodeAttention(const KvCache& cache,
                                                          std::span<const DecodeSequence> batch,
                                                          const AttentionOptions& options) {
  const ModelConfig& c = cache.config();
  const int d = c.head_dim;
  const int group = c.QueryHeadsPerKvHead();
  const int words = static_cast<int>(c.RowBytes() / 8);
  for (const DecodeSequence& seq : batch) {
    if (seq.seq_len <= 0) return absl::InvalidArgumentError("decode of an empty sequence");
    if (absl::Status s = CheckTable(cache, seq.block_table, seq.seq_len); !s.ok()) return s;
    const size_t out_size = static_cast<size_t>(c.num_layers) * c.num_q_heads * d;
    if (!seq.out.empty() && seq.out.size() != out_size) {
      return absl::InvalidArgumentError("decode output span has the wrong size");
    }
  }
  // Partial checksums from every (sequence, layer, kv head) task are added with wrap-around:
  // the order in which tasks finish does not matter.
  std::vector<std::atomic<uint64_t>> checksums(batch.size());
  for (auto& cs : checksums) cs.store(0, std::memory_order_relaxed);
  const int tasks_per_seq = c.num_layers * c.num_kv_heads;
  // With carried checksums and no attention (roofline) nothing here reads the cache: no task,
  // and no threads started every step.
  bool reads = options.compute_attention;
  for (const DecodeSequence& seq : batch) reads = reads || !seq.carried_checksum.has_value();
  ParallelFor(reads ? static_cast<int>(batch.size()) * tasks_per_seq : 0, options.threads,
              [&](int item) {
    const DecodeSequence& seq = batch[item / tasks_per_seq];
    const bool read_sum = !seq.carried_checksum.has_value();
    if (!read_sum && !options.compute_attention) return;
    const int layer = (item % tasks_per_seq) / c.num_kv_heads;
    const int head = item % c.num_kv_heads;
    const int n = seq.seq_len;
    uint64_t sum = 0;
    std::vector<float> k, v;
    if (options.compute_attention) {
      k.resize(static_cast<size_t>(n) * d);
      v.resize(k.size());
    }
    for (uint32_t kind : {model::kKey, model::kValue}) {
      float* dst = kind == model::kKey ? k.data() : v.data();
      for (int p = 0; p < n; ++p) {
        const std::byte* row =
            cache.RowPtr(seq.block_table[p / c.block_size], p % c.block_size, layer, head, kind);
        if (read_sum) sum += model::ChecksumRow(row, words, model::RowSalt(p, layer, head, kind));
        if (options.compute_attention) RowToFloat(row, c.dtype, d, dst + static_cast<size_t>(p) * d);
      }
    }
    checksums[item / tasks_per_seq].fetch_add(sum, std::memory_order_relaxed);
    if (!options.compute_attention) return;
    std::vector<float> q(d), scores(n), result(d);
    for (int g = 0; g < group; ++g) {
      const int qhead = head * group + g;
      model::QueryRow(c, seq.last_token, n - 1, layer, qhead, q.data());
      float* out = seq.out.empty()
                       ? result.data()
                       : seq.out.data() + (static_cast<size_t>(layer) * c.num_q_heads + qhead) * d;
      AttendOne(q.data(), k.data(), v.data(), n, d, scores.data(), out);
    }
  });
  std::vector<DecodeResult> results(batch.size());
  std::vector<absl::Status> probe_status(batch.size());
  // The probes read one K row per position: a few hundred microseconds for a whole batch, less
  // than what starting threads every step costs the worker whose time-critical work is on the
  // other core. Several threads only for very long batches.
  int64_t positions = 0;
  for (const DecodeSequence& seq : batch) positions += seq.seq_len;
  ParallelFor(static_cast<int>(batch.size()), positions >= (int64_t{1} << 17) ? options.threads : 1,
              [&](int i) {
    const DecodeSequence& seq = batch[i];
    absl::StatusOr<int32_t> probe =
        AttentionProbe(cache, seq.block_table, seq.last_token, seq.seq_len);
    if (!probe.ok()) {
      probe_status[i] = probe.status();
      return;
    }
    results[i].probe = *probe;
  });
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!probe_status[i].ok()) return probe_status[i];
    results[i].checksum = batch[i].carried_checksum.value_or(checksums[i].load());
    results[i].token = model::NextToken(batch[i].seed, batch[i].seq_len, results[i].checksum,
                                        results[i].probe, c.vocab_size);
  }
  return results;
}

double PrefillAttentionFlops(const ModelConfig& config, int start_pos, int chunk_len) {
  // Query at position p attends over p + 1 keys: sum over the chunk of (p + 1).
  const double keys = static_cast<double>(chunk_len) * start_pos +
                      static_cast<double>(chunk_len) * (chunk_len + 1) / 2.0;
  return 4.0 * keys * config.head_dim * config.num_q_heads * config.num_layers;
}

}  // namespace pdserve
