#include "bench/kernel_bench.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/baselines.h"
#include "bench/best_of.h"
#include "bench/mock_cost_bench.h"
#include "common/clock.h"
#include "common/parallel_for.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "kvcache/cpu_attention.h"
#include "nlohmann/json.hpp"

namespace pdserve::bench {

absl::Status RunKernelBench(const KernelBenchOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(options.preset));
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(options.layout));
  const int threads = options.threads > 0 ? options.threads : DefaultThreads();

  const double memcpy_gbps = MeasureMemcpyGBps(size_t{256} << 20, threads, options.min_seconds);
  const double fma_gflops = MeasureFmaPeakGflops(threads, options.min_seconds);

  nlohmann::json json;
  json["preset"] = config.name;
  json["layout"] = KvLayoutName(layout);
  json["threads"] = threads;
  json["baselines"] = {{"memcpy_gbps", memcpy_gbps}, {"fma_peak_gflops", fma_gflops}};
  json["prefill"] = nlohmann::json::array();
  json["decode"] = nlohmann::json::array();

  std::printf("pdserve bench kernels  (CPU, preset %s, %s, %d threads)\n", config.name.c_str(),
              std::string(KvLayoutName(layout)).c_str(), threads);
  std::printf("baseline  memcpy 256 MiB            %8.2f GB/s\n", memcpy_gbps);
  std::printf("baseline  FMA loop peak             %8.2f GFLOP/s\n\n", fma_gflops);
  std::printf("%-8s %-22s %8s %12s %14s %10s\n", "kernel", "shape", "time ms", "GFLOP/s",
              "GB/s read", "ratio");

  for (int len : options.prompt_lens) {
    const uint32_t blocks = static_cast<uint32_t>(config.BlocksForTokens(len));
    ASSIGN_OR_RETURN(auto cache, KvCache::CreateInHostMemory(config, blocks * options.decode_batch,
                                                             layout));
    ASSIGN_OR_RETURN(std::vector<BlockId> table, cache->allocator().Allocate(blocks));
    const std::vector<int32_t> prompt = model::SyntheticPrompt(1, len, config.vocab_size);
    AttentionOptions attn{.compute_attention = true, .threads = threads};
    ASSIGN_OR_RETURN(double prefill_s, BestSeconds(options.min_seconds, [&] {
                       return PrefillAttention(*cache, table, prompt, 0, {}, attn);
                     }));
    const double gflops = PrefillAttentionFlops(config, 0, len) / prefill_s / 1e9;
    std::printf("%-8s %-22s %8.2f %12.2f %14s %9.3fx FMA peak\n", "prefill",
                absl::StrFormat("1 x %d tokens", len).c_str(), prefill_s * 1e3, gflops, "-",
                gflops / fma_gflops);
    json["prefill"].push_back({{"prompt_len", len},
                               {"seconds", prefill_s},
                               {"gflops", gflops},
                               {"ratio_to_fma_peak", gflops / fma_gflops}});

    // Decode: a batch of sequences of this length, each with its own blocks holding real KV.
    std::vector<std::vector<BlockId>> tables = {table};
    for (int b = 1; b < options.decode_batch; ++b) {
      ASSIGN_OR_RETURN(std::vector<BlockId> t, cache->allocator().Allocate(blocks));
      RETURN_IF_ERROR(WriteKv(*cache, t, prompt, 0, threads));
      tables.push_back(std::move(t));
    }
    std::vector<DecodeSequence> batch;
    for (auto& t : tables) {
      batch.push_back({.block_table = t, .last_token = prompt.back(), .seq_len = len, .seed = 7});
    }
    const double bytes = static_cast<double>(len) * config.KvBytesPerToken() * batch.size();
    for (bool attention : {true, false}) {
      AttentionOptions decode_opts{.compute_attention = attention, .threads = threads};
      ASSIGN_OR_RETURN(double decode_s, BestSeconds(options.min_seconds, [&]() -> absl::Status {
                         return DecodeAttention(*cache, batch, decode_opts).status();
                       }));
      const double gbps = bytes / decode_s / 1e9;
      const std::string name = attention ? "decode" : "checksum";
      std::printf("%-8s %-22s %8.2f %12s %14.2f %9.3fx memcpy\n", name.c_str(),
                  absl::StrFormat("%d x %d tokens", options.decode_batch, len).c_str(),
                  decode_s * 1e3, "-", gbps, gbps / memcpy_gbps);
      json["decode"].push_back({{"kernel", name},
                                {"batch", options.decode_batch},
                                {"seq_len", len},
                                {"seconds", decode_s},
                                {"bytes_read", bytes},
                                {"gbps", gbps},
                                {"ratio_to_memcpy", gbps / memcpy_gbps}});
    }
  }
  std::printf("\n(decode = paged attention + checksum; checksum = the KV read alone, as in the "
              "roofline compute mode)\n");
  MockCostOptions mock;
  mock.min_seconds = options.min_seconds;
  ASSIGN_OR_RETURN(json["mock"], RunMockCostBench(mock));
  if (!options.json_path.empty()) {
    std::ofstream out(options.json_path);
    out << json.dump(2) << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", options.json_path));
    std::printf("results written to %s\n", options.json_path.c_str());
  }
  return absl::OkStatus();
}

}  // namespace pdserve::bench
