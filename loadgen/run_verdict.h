#pragma once

#include <string>

#include "loadgen/benchmark_result.h"

namespace pdserve::loadgen {

// Exit codes of `pdserve loadgen`. A run whose requests failed is a result (the table and JSON
// are written), but not a success: scripts that only look at the exit status must not take a
// run that served nothing for a measurement.
enum LoadgenExitCode : int {
  kExitOk = 0,
  kExitSomeFailed = 1,  // some requests failed (or returned tokens --verify rejected)
  kExitAllFailed = 2,   // no request completed
  kExitNoRun = 3,       // the run could not start or its results could not be written
};

struct RunVerdict {
  int exit_code = kExitOk;
  std::string message;  // for stderr; empty when every request completed
};

// What a finished run means: failed requests make it kExitSomeFailed / kExitAllFailed unless
// `allow_failures`; requests whose tokens differ from the model (--verify) always do, since
// wrong tokens are not an accepted kind of failure.
RunVerdict JudgeRun(const BenchmarkResult& result, bool allow_failures);

}  // namespace pdserve::loadgen
