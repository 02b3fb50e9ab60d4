#pragma once

// Prometheus's text exposition format, version 0.0.4: what GET /metrics answers.
//
// Per family: "# HELP name help" (help with `\` and newline escaped), "# TYPE name type", then
// one line per series: `name{label="value",...} value`. Label values escape `\`, `"` and
// newline. A histogram writes cumulative name_bucket{...,le="bound"} lines ending with
// le="+Inf", then name_sum and name_count. Values are written in the shortest form that reads
// back exactly (so a counter of bytes stays exact), with NaN, +Inf and -Inf spelled out.

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "metrics/metric_family.h"
#include "metrics/registry.h"

namespace pdserve::metrics {

// The Content-Type of a text exposition.
inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

std::string EscapeLabelValue(absl::string_view value);
std::string EscapeHelp(absl::string_view help);
std::string FormatValue(double value);
absl::string_view TypeName(MetricType type);

std::string TextExposition(const std::vector<FamilySnapshot>& families);
// Runs the registry's collectors and writes every family.
std::string TextExposition(const Registry& registry);

}  // namespace pdserve::metrics
