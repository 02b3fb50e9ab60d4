#pragma once

// A parser of Prometheus's text format 0.0.4, for tests and checks that read what a process
// serves on /metrics (and for tools that compare scrapes): every sample line becomes
// {name, labels} -> value; HELP and TYPE lines are kept per family. It reads what any exporter
// writes (label escapes, +Inf/-Inf/NaN, optional timestamps, a trailing comma in a label set),
// and refuses, naming the line, what is malformed or a series given twice.

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pdserve::metrics {

using LabelMap = std::map<std::string, std::string>;

struct SeriesKey {
  std::string name;  // as on the sample line: histograms' name_bucket, name_sum, name_count
  LabelMap labels;   // values unescaped
  auto operator<=>(const SeriesKey&) const = default;
};

struct Exposition {
  std::map<SeriesKey, double> samples;
  std::map<std::string, std::string> types;  // family name -> counter | gauge | histogram | ...
  std::map<std::string, std::string> help;   // family name -> help text (unescaped)

  // The sample with exactly these labels, if there is one.
  std::optional<double> Value(absl::string_view name, const LabelMap& labels = {}) const;
  // The sum over samples named `name` whose labels include every pair of `match` (0 if none).
  double Sum(absl::string_view name, const LabelMap& match = {}) const;
  // Distinct sample names (histograms contribute name_bucket, name_sum and name_count).
  std::set<std::string> SampleNames() const;
};

// InvalidArgument naming the line for malformed input or a series that appears twice.
absl::StatusOr<Exposition> ParseExposition(absl::string_view text);

}  // namespace pdserve::metrics
