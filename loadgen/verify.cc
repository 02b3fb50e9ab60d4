#include "loadgen/verify.h"

#include <atomic>
#include <string>

#include "common/logging.h"
#include "common/parallel_for.h"
#include "common/synthetic_model.h"

namespace pdserve::loadgen {
namespace {
constexpr int kLoggedMismatches = 5;
}  // namespace

int VerifyRecords(const std::vector<RequestSpec>& specs, const ModelConfig& config,
                  std::vector<RequestRecord>& records) {
  std::atomic<int> mismatches{0};
  auto log = ComponentLogger("loadgen");
  ParallelFor(static_cast<int>(records.size()), 0, [&](int i) {
    RequestRecord& r = records[i];
    if (!r.success) return;
    const RequestSpec& spec = specs[i];
    const std::vector<int32_t> expected =
        model::ReferenceGenerate(spec.prompt, spec.output_len, config, spec.seed);
    std::string detail;
    if (r.tokens.size() != expected.size()) {
      r.error = "verify: wrong number of tokens";
      detail = fmt::format("got {} tokens, expected {}", r.tokens.size(), expected.size());
    } else {
      for (size_t p = 0; p < expected.size(); ++p) {
        if (r.tokens[p] != expected[p]) {
          r.error = "verify: token differs from model::ReferenceGenerate";
          detail = fmt::format("token {} is {}, the reference says {}", p, r.tokens[p],
                               expected[p]);
          break;
        }
      }
    }
    if (r.error.empty()) return;
    r.success = false;
    // The first few are enough to debug with; the count is in the result.
    if (mismatches.fetch_add(1, std::memory_order_relaxed) < kLoggedMismatches) {
      log->warn("request {}: {}", r.request_id, detail);
    }
  });
  return mismatches.load();
}

}  // namespace pdserve::loadgen
