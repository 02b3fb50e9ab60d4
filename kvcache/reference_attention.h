#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/model_config.h"

namespace pdserve {

// The naive reference for the kernels' float math: K, V and Q straight from the synthetic
// model (no cache), double accumulation. Returns [layer][q head][dim] for the query token at
// position `pos` = tokens.size() - 1 attending over positions [0, pos].
std::vector<float> ReferenceAttention(const ModelConfig& config, std::span<const int32_t> tokens);

}  // namespace pdserve
