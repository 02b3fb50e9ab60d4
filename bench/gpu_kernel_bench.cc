#include "bench/gpu_kernel_bench.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "kvcache/cpu_attention.h"
#include "nlohmann/json.hpp"
#if defined(PDSERVE_HAS_CUDA)
#include "kvcache/cuda/cuda_kernels.h"
#endif

namespace pdserve::bench {

#if !defined(PDSERVE_HAS_CUDA)

absl::Status RunGpuKernelBench(const GpuKernelBenchOptions&) {
  return absl::UnavailableError("this pdserve was built without CUDA (configure with -DPDSERVE_CUDA=ON)");
}

#else

namespace {

// Median of `iterations` values of `measure` (milliseconds) after one warm-up.
template <typename Measure>
absl::StatusOr<double> MedianMs(int iterations, Measure measure) {
  std::vector<double> times;
  for (int i = 0; i <= iterations; ++i) {
    ASSIGN_OR_RETURN(double ms, measure());
    if (i > 0) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

absl::Status RunGpuKernelBench(const GpuKernelBenchOptions& options) {
  if (!cuda::CudaAvailable()) return absl::UnavailableError("no CUDA device on this machine");
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(options.preset));
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(options.layout));
  ASSIGN_OR_RETURN(std::string device, cuda::DeviceDescription());
  const int iters = std::max(1, options.iterations);

  std::printf("pdserve bench kernels --device cuda  (preset %s, %s, bf16)\n", config.name.c_str(),
              std::string(KvLayoutName(layout)).c_str());
  std::printf("device    %s\n", device.c_str());
  ASSIGN_OR_RETURN(cuda::DeviceBaselines base,
                   cuda::MeasureDeviceBaselines(size_t{2} << 30, 8192, iters));
  std::printf("baseline  cudaMemcpy D2D 2 GiB       %9.1f GB/s (bytes read + written)\n",
              base.d2d_copy_gbps);
  std::printf("baseline  cuBLAS bf16 GEMM %d^3  %9.1f TFLOP/s\n\n", base.gemm_size, base.gemm_tflops);

  nlohmann::json json;
  json["device"] = device;
  json["preset"] = config.name;
  json["layout"] = KvLayoutName(layout);
  json["iterations"] = iters;
  json["baselines"] = {{"d2d_copy_gbps_read_plus_write", base.d2d_copy_gbps},
                       {"d2d_copy_bytes", base.d2d_copy_bytes},
                       {"cublas_bf16_gemm_tflops", base.gemm_tflops},
                       {"gemm_size", base.gemm_size}};
  json["prefill"] = nlohmann::json::array();
  json["decode"] = nlohmann::json::array();
  json["dense"] = nlohmann::json::array();

  std::printf("%-9s %-20s %9s %10s %11s %8s  %s\n", "kernel", "shape", "time ms", "TFLOP/s",
              "GB/s", "ratio", "baseline");
  const int batch = std::max(1, options.decode_batch);
  for (int len : options.prompt_lens) {
    const uint32_t per_seq = static_cast<uint32_t>(config.BlocksForTokens(len));
    ASSIGN_OR_RETURN(auto cache, cuda::CreateDeviceKvCache(config, per_seq * batch, layout));
    ASSIGN_OR_RETURN(auto attention, cuda::CudaAttention::Create(*cache));
    std::vector<std::vector<BlockId>> tables;
    for (int b = 0; b < batch; ++b) {
      ASSIGN_OR_RETURN(std::vector<BlockId> t, cache->allocator().Allocate(per_seq));
      tables.push_back(std::move(t));
    }
    const std::vector<int32_t> prompt = model::SyntheticPrompt(1, len, config.vocab_size);

    // Prefill of one prompt: K/V generation into the pool + causal attention, with the kernel
    // the workers use and, where that is wgmma, the mma.sync kernel for comparison.
    std::vector<cuda::PrefillChunk> one = {{tables[0], prompt, 0}};
    ASSIGN_OR_RETURN(double write_ms, MedianMs(iters, [&]() -> absl::StatusOr<double> {
                       RETURN_IF_ERROR(attention->WriteKv(one));
                       return attention->last_kernel_ms();
                     }));
    const double flops = PrefillAttentionFlops(config, 0, len);
    std::vector<cuda::PrefillKernel> kernels = {cuda::PrefillKernel::kAuto};
    if (attention->prefill_kernel_name() != "mma.sync") kernels.push_back(cuda::PrefillKernel::kMmaSync);
    for (cuda::PrefillKernel kernel : kernels) {
      attention->set_prefill_kernel(kernel);
      const std::string kernel_name = attention->prefill_kernel_name();
      ASSIGN_OR_RETURN(double prefill_ms, MedianMs(iters, [&]() -> absl::StatusOr<double> {
                         RETURN_IF_ERROR(attention->Prefill(one));
                         return attention->last_kernel_ms();
                       }));
      const double tflops = flops / (prefill_ms * 1e-3) / 1e12;
      const double attn_tflops = flops / (std::max(prefill_ms - write_ms, 1e-6) * 1e-3) / 1e12;
      std::printf("%-9s %-20s %9.3f %10.1f %11s %7.3fx  cuBLAS GEMM (%s; attention alone %.1f TFLOP/s, %.3fx)\n",
                  "prefill", absl::StrFormat("1 x %d tokens", len).c_str(), prefill_ms, tflops, "-",
                  tflops / base.gemm_tflops, kernel_name.c_str(), attn_tflops,
                  attn_tflops / base.gemm_tflops);
      json["prefill"].push_back({{"prompt_len", len},
                                 {"kernel", kernel_name},
                                 {"ms", prefill_ms},
                                 {"kv_write_ms", write_ms},
                                 {"flops", flops},
                                 {"tflops", tflops},
                                 {"ratio_to_gemm", tflops / base.gemm_tflops},
                                 {"attention_only_tflops", attn_tflops},
                                 {"attention_only_ratio_to_gemm", attn_tflops / base.gemm_tflops}});
    }
    attention->set_prefill_kernel(cuda::PrefillKernel::kAuto);

    // Decode: every sequence holds its own copy of the prompt's K/V.
    std::vector<cuda::PrefillChunk> all;
    for (auto& t : tables) all.push_back({t, prompt, 0});
    RETURN_IF_ERROR(attention->WriteKv(all));
    for (int b : {batch, 1}) {
      std::vector<DecodeSequence> seqs;
      for (int i = 0; i < b; ++i) seqs.push_back({tables[i], prompt.back(), len, 7, {}});
      const double bytes = static_cast<double>(len) * config.KvBytesPerToken() * b;
      for (bool attn : {true, false}) {
        int splits = 1;
        ASSIGN_OR_RETURN(double ms, MedianMs(iters, [&]() -> absl::StatusOr<double> {
                           RETURN_IF_ERROR(attention->Decode(seqs, {.compute_attention = attn}).status());
                           splits = attention->last_decode_max_splits();
                           return attention->last_kernel_ms();
                         }));
        const double gbps = bytes / (ms * 1e-3) / 1e9;
        const std::string name = attn ? "decode" : "checksum";
        std::printf("%-9s %-20s %9.3f %10s %11.1f %7.3fx  D2D copy (%d split%s; %s)\n", name.c_str(),
                    absl::StrFormat("%d x %d tokens", b, len).c_str(), ms, "-", gbps,
                    gbps / base.d2d_copy_gbps, splits, splits == 1 ? "" : "s",
                    attention->decode_kernel_name().c_str());
        json["decode"].push_back({{"kernel", name},
                                  {"batch", b},
                                  {"seq_len", len},
                                  {"ms", ms},
                                  {"bytes_read", bytes},
                                  {"gbps", gbps},
                                  {"splits", splits},
                                  {"decode_kernel", attention->decode_kernel_name()},
                                  {"ratio_to_d2d_copy", gbps / base.d2d_copy_gbps}});
      }
      if (batch == 1) break;
    }
  }

  if (options.dense) {
    const int max_tokens = *std::max_element(options.prompt_lens.begin(), options.prompt_lens.end());
    ASSIGN_OR_RETURN(auto dense, cuda::DenseLayers::Create(config, std::max(max_tokens, batch)));
    std::vector<int> sizes = options.prompt_lens;
    sizes.push_back(batch);
    for (int tokens : sizes) {
      ASSIGN_OR_RETURN(double ms, MedianMs(iters, [&]() -> absl::StatusOr<double> {
                         RETURN_IF_ERROR(dense->Forward(tokens));
                         return dense->last_ms();
                       }));
      const double tflops = dense->FlopsPerToken() * tokens / (ms * 1e-3) / 1e12;
      std::printf("%-9s %-20s %9.3f %10.1f %11s %7.3fx  cuBLAS GEMM\n", "dense",
                  absl::StrFormat("%d tokens, %d layers", tokens, config.num_layers).c_str(), ms,
                  tflops, "-", tflops / base.gemm_tflops);
      json["dense"].push_back({{"tokens", tokens}, {"ms", ms}, {"tflops", tflops},
                               {"ratio_to_gemm", tflops / base.gemm_tflops}});
    }
  }
  std::printf("\n(prefill = K/V generation into the paged pool + causal GQA attention, FLOPs of the "
              "causal triangle; decode = paged attention + fused checksum + next token, bytes = K/V "
              "read; checksum = the K/V read alone)\n");
  if (!options.json_path.empty()) {
    std::ofstream out(options.json_path);
    out << json.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", options.json_path));
    std::printf("results written to %s\n", options.json_path.c_str());
  }
  return absl::OkStatus();
}

#endif

}  // namespace pdserve::bench
