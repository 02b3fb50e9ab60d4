#include "bench/mock_cost_bench.h"

#include <cstdio>

#include "absl/strings/str_format.h"
#include "bench/baselines.h"
#include "bench/best_of.h"
#include "common/clock.h"
#include "common/roofline.h"
#include "common/status_macros.h"
#include "common/synthetic_model.h"
#include "common/synthetic_rows.h"
#include "kvcache/cpu_attention.h"

namespace pdserve::bench {

absl::StatusOr<nlohmann::json> RunMockCostBench(const MockCostOptions& o) {
  ASSIGN_OR_RETURN(ModelConfig config, PresetConfig(o.preset));
  ASSIGN_OR_RETURN(KvLayout layout, ParseKvLayout(o.layout));
  ASSIGN_OR_RETURN(GpuSpec gpu, GpuSpecByName(o.gpu));
  const RooflineModel roofline(config, gpu);
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\nthe mock's own work, 1 thread (preset %s, %s; row kernels: %s)\n",
              config.name.c_str(), std::string(KvLayoutName(layout)).c_str(),
              model::rows_internal::VectorPathInUse() ? "AVX-512" : "portable");
  std::printf("%-10s %-16s %9s %9s %10s %9s %16s %8s\n", "work", "shape", "time ms", "GB/s",
              "memcpy x1", "ratio", "modelled GB/s", "hidden");
  for (int len : o.prompt_lens) {
    const auto blocks = static_cast<uint32_t>(config.BlocksForTokens(len));
    // Two prompts' worth of blocks, used alternately, so no run reads what the last one wrote
    // while it was still in cache.
    ASSIGN_OR_RETURN(auto cache, KvCache::CreateInHostMemory(config, 2 * blocks, layout));
    ASSIGN_OR_RETURN(std::vector<BlockId> a, cache->allocator().Allocate(blocks));
    ASSIGN_OR_RETURN(std::vector<BlockId> b, cache->allocator().Allocate(blocks));
    const std::vector<int32_t> prompt = model::SyntheticPrompt(3, len, config.vocab_size);
    const double bytes = static_cast<double>(len) * config.KvBytesPerToken();
    const double memcpy_gbps = MeasureMemcpyGBps(static_cast<size_t>(bytes), 1, o.min_seconds);
    bool flip = false;
    ASSIGN_OR_RETURN(double gen_s, BestSeconds(o.min_seconds, [&] {
                       flip = !flip;
                       return WriteKv(*cache, flip ? a : b, prompt, 0, 1);
                     }));
    ASSIGN_OR_RETURN(double read_s, BestSeconds(o.min_seconds, [&]() -> absl::Status {
                       flip = !flip;
                       return KvChecksum(*cache, flip ? a : b, 0, len, 1).status();
                     }));
    // The modelled device writes the prompt's KV within its prefill time, and a decode step
    // reads a request's KV within one step; the mock's work hides when it is at least as fast.
    const std::vector<int> one = {len};
    const double prefill_s = roofline.PrefillSeconds(one);
    const double step_s = roofline.DecodeStepSeconds(one);
    struct Row {
      const char* work;
      double seconds, modelled_s;
    };
    for (const Row& r : {Row{"generate", gen_s, prefill_s}, Row{"verify", read_s, step_s}}) {
      const double gbps = bytes / r.seconds / 1e9;
      const double needed = bytes / r.modelled_s / 1e9;
      std::printf("%-10s %-16s %9.2f %9.2f %10.2f %8.2fx %16.2f %8s\n", r.work,
                  absl::StrFormat("1 x %d tokens", len).c_str(), r.seconds * 1e3, gbps,
                  memcpy_gbps, gbps / memcpy_gbps, needed, gbps >= needed ? "yes" : "no");
      rows.push_back({{"work", r.work},
                      {"prompt_len", len},
                      {"seconds", r.seconds},
                      {"gbps", gbps},
                      {"memcpy_1t_gbps", memcpy_gbps},
                      {"ratio_to_memcpy", gbps / memcpy_gbps},
                      {"modelled_seconds", r.modelled_s},
                      {"needed_gbps", needed},
                      {"hidden", gbps >= needed}});
    }
  }
  std::printf("(generate: K/V of the prompt written into the pool, against the modelled %s "
              "prefill of the prompt; verify: the checksum read of the whole KV, against one "
              "modelled decode step of that request alone)\n",
              gpu.name.c_str());
  return rows;
}

}  // namespace pdserve::bench
