#include "loadgen/run_verdict.h"

#include "absl/strings/str_cat.h"

namespace pdserve::loadgen {

RunVerdict JudgeRun(const BenchmarkResult& result, bool allow_failures) {
  const BenchmarkMetrics& m = result.metrics;
  const int total = m.completed + m.failed;
  RunVerdict verdict;
  if (m.failed == 0) return verdict;
  const int failing_code = m.completed == 0 ? kExitAllFailed : kExitSomeFailed;
  const std::string counts =
      absl::StrCat(m.failed, " of ", total, " requests failed (", m.error_counts.size(),
                   m.error_counts.size() == 1 ? " cause" : " causes",
                   ", counted under \"Errors by cause\")");
  if (result.verify_mismatches > 0) {
    verdict.exit_code = failing_code;
    verdict.message = absl::StrCat("verify: ", result.verify_mismatches,
                                   " requests differ from model::ReferenceGenerate; ", counts);
  } else if (allow_failures) {
    verdict.message = absl::StrCat(counts, "; exit status 0 because of --allow-failures");
  } else {
    verdict.exit_code = failing_code;
    verdict.message = absl::StrCat(counts, "; --allow-failures accepts that");
  }
  return verdict;
}

}  // namespace pdserve::loadgen
