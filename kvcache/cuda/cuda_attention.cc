// Host side of the GPU kernels: validates a batch, packs its block tables and work lists into
// one upload, launches, and copies back what the caller asked for.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kvcache/cuda/cuda_check.h"
#include "kvcache/cuda/cuda_kernels.h"
#include "kvcache/cuda/device_buffer.h"
#include "kvcache/cuda/device_geometry_host.h"
#include "kvcache/cuda/device_scope.h"
#include "kvcache/cuda/kernels.h"

namespace pdserve::cuda {

absl::StatusOr<DeviceGeometry> MakeDeviceGeometry(const KvGeometry& geometry) {
  const ModelConfig& c = geometry.config();
  if (c.block_size <= 0 || (c.block_size & (c.block_size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPU kernels need a power-of-two block size, not ", c.block_size));
  }
  DeviceGeometry g;
  const bool layer_major = geometry.layout() == KvLayout::kLayerMajor;
  g.block_stride = layer_major ? geometry.fragment_bytes() : geometry.block_bytes();
  g.layer_stride = layer_major ? geometry.fragment_bytes() * geometry.num_blocks()
                               : geometry.fragment_bytes();
  g.row_bytes = geometry.row_bytes();
  g.head_stride = int64_t{c.block_size} * g.row_bytes;
  g.kind_stride = int64_t{c.num_kv_heads} * g.head_stride;
  g.block_size = c.block_size;
  while ((1 << g.block_shift) < c.block_size) ++g.block_shift;
  return g;
}

namespace {

// Host-side packing of one upload: sections aligned to 16 bytes.
class UploadBuilder {
 public:
  void Clear() { bytes_.clear(); }
  template <typename T>
  size_t Add(const T* data, size_t count) {
    const size_t off = (bytes_.size() + 15) & ~size_t{15};
    bytes_.resize(off + count * sizeof(T));
    if (count > 0) std::memcpy(bytes_.data() + off, data, count * sizeof(T));
    return off;
  }
  const std::vector<std::byte>& bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

absl::Status CheckTable(const KvCache& cache, std::span<const BlockId> table, int64_t positions) {
  const int64_t needed = cache.config().BlocksForTokens(positions);
  if (static_cast<int64_t>(table.size()) < needed) {
    return absl::InvalidArgumentError(absl::StrCat("block table has ", table.size(), " blocks, ",
                                                   positions, " positions need ", needed));
  }
  for (int64_t i = 0; i < needed; ++i) {
    if (table[i] >= cache.geometry().num_blocks()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block ", table[i], " out of range (pool has ", cache.geometry().num_blocks(), ")"));
    }
  }
  return absl::OkStatus();
}

// Blocks per SM the decode split aims at (env PDSERVE_DECODE_BLOCKS_PER_SM, 1..64, for
// benchmarking). 16 rather than 4: one sequence of 2048 / 8192 tokens then gets 8 splits instead
// of 2-4, and its decode step ran at 0.76-0.85x / 0.85-0.88x of the checksum-only pass instead
// of 0.69-0.71x / 0.70-0.73x (H200, 2026-12-05, two runs of three rounds); batch 8 unchanged.
int64_t DecodeBlocksPerSm() {
  static const int64_t value = [] {
    const char* v = std::getenv("PDSERVE_DECODE_BLOCKS_PER_SM");
    const int64_t n = v == nullptr ? 16 : std::atoll(v);
    return n >= 1 && n <= 64 ? n : int64_t{16};
  }();
  return value;
}

}  // namespace

struct CudaAttention::Impl {
  const KvCache* cache = nullptr;
  ModelConfig config;
  DeviceGeometry geo;
  KernelShape shape;
  int device = 0;
  int num_sms = 0;
  bool sm90 = false;  // compute capability 9.0: the wgmma kernels run
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  UploadBuilder upload;
  PinnedBuffer upload_h;
  DeviceBuffer upload_d;
  DeviceBuffer out_d, part_d, result_d, sink_d;
  PinnedBuffer result_h;
  // Reused host vectors (no allocation per call once grown).
  std::vector<uint32_t> tables;
  std::vector<ChunkDev> chunks;
  std::vector<int32_t> tokens, token_chunk;
  std::vector<TileDev> tiles;
  std::vector<DecodeSeqDev> seqs;
  std::vector<DecodeWorkDev> work;
  std::vector<PrefillChunk> appends;
  double last_ms = 0;
  int last_splits = 1;
  PrefillKernel prefill_kernel = PrefillKernel::kAuto;

  bool UseSm90Prefill() const {
    return prefill_kernel == PrefillKernel::kAuto && sm90 &&
           PrefillSm90ShapeSupported(config.head_dim, config.QueryHeadsPerKvHead());
  }

  ~Impl() {
    if (stream != nullptr) {
      cudaStreamSynchronize(stream);
      cudaStreamDestroy(stream);
    }
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }

  // Copies the packed upload to the device; returns the device base address.
  absl::StatusOr<std::byte*> Upload() {
    const auto& bytes = upload.bytes();
    const size_t n = std::max<size_t>(bytes.size(), 16);
    RETURN_IF_ERROR(upload_h.Reserve(n));
    RETURN_IF_ERROR(upload_d.Reserve(n));
    // The previous call's copy from the pinned buffer has finished: every call ends in a sync.
    std::memcpy(upload_h.get(), bytes.data(), bytes.size());
    PDSERVE_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(upload_d.get(), upload_h.get(), bytes.size(), cudaMemcpyHostToDevice, stream));
    return upload_d.get();
  }

  // Packs chunks (block tables, tokens, per-token chunk index, query tiles heaviest first).
  absl::Status PackChunks(std::span<const PrefillChunk> batch, PrefillArgs& args) {
    tables.clear();
    chunks.clear();
    tokens.clear();
    token_chunk.clear();
    tiles.clear();
    int max_table_entries = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const PrefillChunk& c = batch[i];
      if (c.start_pos < 0) return absl::InvalidArgumentError("negative start position");
      const int n = static_cast<int>(c.tokens.size());
      RETURN_IF_ERROR(CheckTable(*cache, c.block_table, int64_t{c.start_pos} + n));
      const int64_t used = config.BlocksForTokens(int64_t{c.start_pos} + n);
      chunks.push_back({static_cast<int32_t>(tables.size()), n, c.start_pos,
                        static_cast<int32_t>(tokens.size())});
      tables.insert(tables.end(), c.block_table.begin(), c.block_table.begin() + used);
      max_table_entries = std::max(max_table_entries, static_cast<int>(used));
      tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
      token_chunk.insert(token_chunk.end(), n, static_cast<int32_t>(i));
      for (int q0 = 0; q0 < n; q0 += kPrefillTileRows) {
        tiles.push_back({static_cast<int32_t>(i), q0});
      }
    }
    // Causal tiles late in a prompt have the most keys: start them first.
    std::stable_sort(tiles.begin(), tiles.end(), [&](const TileDev& a, const TileDev& b) {
      return chunks[a.chunk].start_pos + a.q0 > chunks[b.chunk].start_pos + b.q0;
    });
    upload.Clear();
    const size_t o_tables = upload.Add(tables.data(), tables.size());
    const size_t o_chunks = upload.Add(chunks.data(), chunks.size());
    const size_t o_tokens = upload.Add(tokens.data(), tokens.size());
    const size_t o_token_chunk = upload.Add(token_chunk.data(), token_chunk.size());
    const size_t o_tiles = upload.Add(tiles.data(), tiles.size());
    ASSIGN_OR_RETURN(std::byte* base, Upload());
    args.shape = shape;
    args.geo = geo;
    args.pool = cache->base();
    args.tables = reinterpret_cast<const uint32_t*>(base + o_tables);
    args.chunks = reinterpret_cast<const ChunkDev*>(base + o_chunks);
    args.tokens = reinterpret_cast<const int32_t*>(base + o_tokens);
    args.token_chunk = reinterpret_cast<const int32_t*>(base + o_token_chunk);
    args.total_tokens = static_cast<int>(tokens.size());
    args.tiles = reinterpret_cast<const TileDev*>(base + o_tiles);
    args.num_tiles = static_cast<int>(tiles.size());
    args.max_table_entries = max_table_entries;
    args.sink = sink_d.get<float>();
    return absl::OkStatus();
  }

  absl::Status Finish() {
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(stop, stream));
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    float ms = 0;
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, start, stop));
    last_ms = ms;
    return absl::OkStatus();
  }
};

CudaAttention::CudaAttention(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaAttention::~CudaAttention() = default;

absl::StatusOr<std::unique_ptr<CudaAttention>> CudaAttention::Create(const KvCache& cache) {
  if (cache.memory().kind() != MemoryKind::kCuda) {
    return absl::InvalidArgumentError("CudaAttention needs a KV pool in device memory");
  }
  const ModelConfig& c = cache.config();
  if (c.dtype != DType::kBF16) {
    return absl::UnimplementedError(
        absl::StrCat("GPU kernels are bf16 only, not ", std::string(DTypeName(c.dtype))));
  }
  if (!PrefillShapeSupported(c.head_dim) ||
      !DecodeShapeSupported(c.head_dim, c.QueryHeadsPerKvHead())) {
    return absl::UnimplementedError(absl::StrCat("no GPU kernel for head_dim ", c.head_dim, " with ",
                                                 c.QueryHeadsPerKvHead(), " query heads per KV head"));
  }
  auto impl = std::make_unique<Impl>();
  impl->cache = &cache;
  impl->config = c;
  ASSIGN_OR_RETURN(impl->geo, MakeDeviceGeometry(cache.geometry()));
  impl->shape = {c.num_layers, c.num_q_heads, c.num_kv_heads, c.head_dim, c.vocab_size};
  impl->device = cache.memory().device();
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaSetDevice(impl->device));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&impl->num_sms, cudaDevAttrMultiProcessorCount, impl->device));
  int major = 0, minor = 0;
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, impl->device));
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, impl->device));
  impl->sm90 = major == 9 && minor == 0;
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&impl->start));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventCreate(&impl->stop));
  RETURN_IF_ERROR(impl->sink_d.Reserve(sizeof(float)));
  return std::unique_ptr<CudaAttention>(new CudaAttention(std::move(impl)));
}

void CudaAttention::set_prefill_kernel(PrefillKernel kernel) { impl_->prefill_kernel = kernel; }

std::string CudaAttention::prefill_kernel_name() const {
  return impl_->UseSm90Prefill() ? "wgmma" : "mma.sync";
}

absl::Status CudaAttention::WriteKv(std::span<const PrefillChunk> batch) {
  Impl& m = *impl_;
  const DeviceScope device(m.device);  // as Prefill and Decode: whichever thread calls
  PDSERVE_CUDA_RETURN_IF_ERROR(device.status());
  PrefillArgs args;
  RETURN_IF_ERROR(m.PackChunks(batch, args));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.start, m.stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(LaunchWriteKv(args, m.stream));
  return m.Finish();
}

absl::Status CudaAttention::Prefill(std::span<const PrefillChunk> batch, std::span<float> out,
                                    const AttentionOptions& options) {
  Impl& m = *impl_;
  const DeviceScope device(m.device);  // whichever thread calls
  PDSERVE_CUDA_RETURN_IF_ERROR(device.status());
  const ModelConfig& c = m.config;
  PrefillArgs args;
  RETURN_IF_ERROR(m.PackChunks(batch, args));
  const size_t out_floats =
      static_cast<size_t>(args.total_tokens) * c.num_layers * c.num_q_heads * c.head_dim;
  if (!out.empty() && out.size() != out_floats) {
    return absl::InvalidArgumentError(
        absl::StrCat("prefill output has ", out.size(), " floats, expected ", out_floats));
  }
  if (!out.empty()) {
    RETURN_IF_ERROR(m.out_d.Reserve(out_floats * sizeof(float)));
    args.out = m.out_d.get<float>();
  }
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.start, m.stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(LaunchWriteKv(args, m.stream));
  if (options.compute_attention) {
    PDSERVE_CUDA_RETURN_IF_ERROR(m.UseSm90Prefill() ? LaunchPrefillAttentionSm90(args, m.stream)
                                                    : LaunchPrefillAttention(args, m.stream));
  }
  RETURN_IF_ERROR(m.Finish());
  if (!out.empty()) {
    PDSERVE_CUDA_RETURN_IF_ERROR(
        cudaMemcpy(out.data(), args.out, out_floats * sizeof(float), cudaMemcpyDeviceToHost));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DecodeResult>> CudaAttention::Decode(
    std::span<const DecodeSequence> batch, const AttentionOptions& options, bool write_last_kv) {
  Impl& m = *impl_;
  // The loop thread, or the receive path for a first step (DecodeEngine::RunReservedStep).
  const DeviceScope device(m.device);
  PDSERVE_CUDA_RETURN_IF_ERROR(device.status());
  const ModelConfig& c = m.config;
  const int group = c.QueryHeadsPerKvHead();
  const size_t out_floats = static_cast<size_t>(c.num_layers) * c.num_q_heads * c.head_dim;
  int64_t total_len = 0;
  for (const DecodeSequence& seq : batch) {
    if (seq.seq_len <= 0) return absl::InvalidArgumentError("decode of an empty sequence");
    RETURN_IF_ERROR(CheckTable(*m.cache, seq.block_table, seq.seq_len));
    if (!seq.out.empty() && seq.out.size() != out_floats) {
      return absl::InvalidArgumentError("decode output span has the wrong size");
    }
    total_len += seq.seq_len;
  }
  if (batch.empty()) return std::vector<DecodeResult>{};
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaEventRecord(m.start, m.stream));
  if (write_last_kv) {
    // The previous step's token goes into the pool first, on the same stream.
    m.appends.clear();
    for (const DecodeSequence& seq : batch) {
      m.appends.push_back({seq.block_table, std::span(&seq.last_token, 1), seq.seq_len - 1});
    }
    PrefillArgs args;
    RETURN_IF_ERROR(m.PackChunks(m.appends, args));
    PDSERVE_CUDA_RETURN_IF_ERROR(LaunchWriteKv(args, m.stream));
    // The next upload reuses the pinned staging buffer: wait for this copy to leave it.
    PDSERVE_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(m.stream));
  }

  // Split the sequence dimension so that the grid has a few blocks per SM even for one short
  // sequence; a split is a multiple of 64 positions.
  const int64_t pairs = int64_t{c.num_layers} * c.num_kv_heads;
  int64_t partition = total_len * pairs / (DecodeBlocksPerSm() * int64_t{m.num_sms});
  partition = std::max<int64_t>(128, (partition + 63) / 64 * 64);
  m.tables.clear();
  m.seqs.clear();
  m.work.clear();
  int slots = 0, max_splits = 1;
  for (size_t i = 0; i < batch.size(); ++i) {
    const DecodeSequence& seq = batch[i];
    const int splits = static_cast<int>((seq.seq_len + partition - 1) / partition);
    max_splits = std::max(max_splits, splits);
    m.seqs.push_back({seq.seed, static_cast<int32_t>(m.tables.size()), seq.seq_len, seq.last_token,
                      slots, splits, 0});
    const int64_t used = c.BlocksForTokens(seq.seq_len);
    m.tables.insert(m.tables.end(), seq.block_table.begin(), seq.block_table.begin() + used);
    for (int s = 0; s < splits; ++s) m.work.push_back({static_cast<int32_t>(i), s});
    slots += splits;
  }
  m.last_splits = max_splits;
  m.upload.Clear();
  const size_t o_tables = m.upload.Add(m.tables.data(), m.tables.size());
  const size_t o_seqs = m.upload.Add(m.seqs.data(), m.seqs.size());
  const size_t o_work = m.upload.Add(m.work.data(), m.work.size());
  ASSIGN_OR_RETURN(std::byte* base, m.Upload());

  const size_t part_entries = static_cast<size_t>(slots) * c.num_layers * c.num_kv_heads * group;
  const size_t ml_bytes = part_entries * 2 * sizeof(float);
  const size_t acc_bytes = part_entries * c.head_dim * sizeof(float);
  const size_t probe_bytes = static_cast<size_t>(slots) * (sizeof(float) + sizeof(int32_t));
  RETURN_IF_ERROR(m.part_d.Reserve(ml_bytes + acc_bytes + probe_bytes));
  RETURN_IF_ERROR(m.out_d.Reserve(batch.size() * out_floats * sizeof(float)));
  // Per sequence: checksum, token, probe.
  const size_t result_bytes = batch.size() * (sizeof(uint64_t) + 2 * sizeof(int32_t));
  RETURN_IF_ERROR(m.result_d.Reserve(result_bytes));
  RETURN_IF_ERROR(m.result_h.Reserve(result_bytes));

  DecodeArgs args;
  args.shape = m.shape;
  args.geo = m.geo;
  args.pool = m.cache->base();
  args.tables = reinterpret_cast<const uint32_t*>(base + o_tables);
  args.seqs = reinterpret_cast<const DecodeSeqDev*>(base + o_seqs);
  args.num_seqs = static_cast<int>(batch.size());
  args.work = reinterpret_cast<const DecodeWorkDev*>(base + o_work);
  args.num_work = static_cast<int>(m.work.size());
  args.partition = static_cast<int>(partition);
  args.compute_attention = options.compute_attention;
  args.part_ml = m.part_d.get<float>();
  args.part_acc = m.part_d.get<float>(ml_bytes);
  args.checksums = m.result_d.get<unsigned long long>();
  args.tokens = m.result_d.get<int32_t>(batch.size() * sizeof(uint64_t));
  args.probes = m.result_d.get<int32_t>(batch.size() * (sizeof(uint64_t) + sizeof(int32_t)));
  args.probe_score = m.part_d.get<float>(ml_bytes + acc_bytes);
  args.probe_pos = m.part_d.get<int32_t>(ml_bytes + acc_bytes + slots * sizeof(float));
  args.out = m.out_d.get<float>();
  args.num_sms = m.num_sms;
  PDSERVE_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(args.checksums, 0, batch.size() * sizeof(uint64_t), m.stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(LaunchDecode(args, m.stream));
  PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(m.result_h.get(), m.result_d.get(), result_bytes,
                                               cudaMemcpyDeviceToHost, m.stream));
  RETURN_IF_ERROR(m.Finish());

  std::vector<DecodeResult> results(batch.size());
  const auto* sums = m.result_h.get<uint64_t>();
  const auto* toks = m.result_h.get<int32_t>(batch.size() * sizeof(uint64_t));
  const auto* probes = m.result_h.get<int32_t>(batch.size() * (sizeof(uint64_t) + sizeof(int32_t)));
  for (size_t i = 0; i < batch.size(); ++i) {
    results[i].checksum = sums[i];
    results[i].token = toks[i];
    results[i].probe = probes[i];
    if (!batch[i].out.empty() && options.compute_attention) {
      PDSERVE_CUDA_RETURN_IF_ERROR(cudaMemcpy(batch[i].out.data(), args.out + i * out_floats,
                                              out_floats * sizeof(float), cudaMemcpyDeviceToHost));
    }
  }
  return results;
}

std::string CudaAttention::decode_kernel_name() const {
  if (!DecodeMmaShapeSupported(impl_->config.head_dim, impl_->config.QueryHeadsPerKvHead())) {
    return "cuda cores";
  }
  switch (ChosenDecodeVariant()) {
    case DecodeVariant::kMma: return "mma.sync";
    case DecodeVariant::kMmaRegisters: return "mma.sync registers";
    case DecodeVariant::kMmaSerial: return "mma.sync serial";
    case DecodeVariant::kMmaSplitLoads: return "mma.sync split loads";
    case DecodeVariant::kCudaCores: return "cuda cores";
  }
  return "cuda cores";
}

double CudaAttention::last_kernel_ms() const { return impl_->last_ms; }
int CudaAttention::last_decode_max_splits() const { return impl_->last_splits; }

}  // namespace pdserve::cuda
