#pragma once

#include <vector>

#include "common/model_config.h"
#include "loadgen/request_record.h"
#include "loadgen/workload.h"

namespace pdserve::loadgen {

// Compares the tokens of every successful request with model::ReferenceGenerate(prompt,
// max_tokens, config, seed). A request that differs (a wrong token or a wrong count) becomes a
// failure with reason "verify: ..."; returns how many did. `specs[i]` is `records[i]`'s request.
int VerifyRecords(const std::vector<RequestSpec>& specs, const ModelConfig& config,
                  std::vector<RequestRecord>& records);

}  // namespace pdserve::loadgen
