#include "metrics/text_format.h"

#include <charconv>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace pdserve::metrics {

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  // Shortest round-trip form: 1e+12 bytes would lose digits with a fixed precision of 6.
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

namespace {

// `{a="x",b="y"` plus `extra` (the histogram's le), closed; empty when there is no label.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     absl::string_view extra_name = {}, absl::string_view extra_value = {}) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"", EscapeLabelValue(values[i]),
                    "\"");
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", extra_name, "=\"", extra_value, "\"");
  }
  if (!out.empty()) out += "}";
  return out;
}

void WriteHistogram(const FamilySnapshot& f, const SeriesSnapshot& s, std::string& out) {
  const Histogram::Snapshot& h = *s.histogram;
  for (size_t i = 0; i < h.cumulative.size(); ++i) {
    const std::string le = i < f.bounds.size() ? FormatValue(f.bounds[i]) : "+Inf";
    absl::StrAppend(&out, f.name, "_bucket", LabelSet(f.label_names, s.label_values, "le", le), " ",
                    h.cumulative[i], "\n");
  }
  const std::string labels = LabelSet(f.label_names, s.label_values);
  absl::StrAppend(&out, f.name, "_sum", labels, " ", FormatValue(h.sum), "\n");
  absl::StrAppend(&out, f.name, "_count", labels, " ", h.count(), "\n");
}

}  // namespace

std::string TextExposition(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& f : families) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", EscapeHelp(f.help), "\n");
    absl::StrAppend(&out, "# TYPE ", f.name, " ", TypeName(f.type), "\n");
    for (const SeriesSnapshot& s : f.series) {
      if (s.histogram.has_value()) {
        WriteHistogram(f, s, out);
      } else {
        absl::StrAppend(&out, f.name, LabelSet(f.label_names, s.label_values), " ",
                        FormatValue(s.value), "\n");
      }
    }
  }
  return out;
}

std::string TextExposition(const Registry& registry) { return TextExposition(registry.Snapshot()); }

}  // namespace pdserve::metrics
