#pragma once

#include "nlohmann/json.hpp"

namespace pdserve::loadgen {

// The result JSON's "metric_definitions": field (or field family) -> what it measures, so that a
// reader of a saved result does not have to guess which tool's definition a number follows
// (vllm's, where the name is vllm's). "convention" holds the one-line summary the table prints.
nlohmann::ordered_json MetricDefinitionsJson();

}  // namespace pdserve::loadgen
