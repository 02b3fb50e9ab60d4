#include "metrics/exposition_parser.h"

#include <cmath>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace pdserve::metrics {
namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}

// Reads a name at the start of `in`, consuming it; empty when there is none.
absl::string_view TakeName(absl::string_view& in) {
  size_t n = 0;
  while (n < in.size() && IsNameChar(in[n])) ++n;
  absl::string_view name = in.substr(0, n);
  in.remove_prefix(n);
  return name;
}

void SkipSpaces(absl::string_view& in) {
  while (!in.empty() && (in.front() == ' ' || in.front() == '\t')) in.remove_prefix(1);
}

// A quoted label value at the start of `in` (the opening quote included), unescaped.
absl::StatusOr<std::string> TakeQuoted(absl::string_view& in) {
  if (!absl::ConsumePrefix(&in, "\"")) return absl::InvalidArgumentError("expected '\"'");
  std::string out;
  while (!in.empty()) {
    const char c = in.front();
    in.remove_prefix(1);
    if (c == '"') return out;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (in.empty()) break;
    const char e = in.front();
    in.remove_prefix(1);
    if (e == 'n') {
      out += '\n';
    } else if (e == '\\' || e == '"') {
      out += e;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown escape \\", std::string(1, e)));
    }
  }
  return absl::InvalidArgumentError("unterminated label value");
}

absl::StatusOr<LabelMap> TakeLabels(absl::string_view& in) {
  LabelMap labels;
  if (!absl::ConsumePrefix(&in, "{")) return labels;
  while (true) {
    SkipSpaces(in);
    if (absl::ConsumePrefix(&in, "}")) return labels;
    const absl::string_view name = TakeName(in);
    if (name.empty()) return absl::InvalidArgumentError("expected a label name");
    SkipSpaces(in);
    if (!absl::ConsumePrefix(&in, "=")) return absl::InvalidArgumentError("expected '='");
    SkipSpaces(in);
    absl::StatusOr<std::string> value = TakeQuoted(in);
    if (!value.ok()) return value.status();
    if (!labels.emplace(name, *std::move(value)).second) {
      return absl::InvalidArgumentError(absl::StrCat("label ", name, " given twice"));
    }
    SkipSpaces(in);
    if (absl::ConsumePrefix(&in, ",")) continue;
    if (absl::ConsumePrefix(&in, "}")) return labels;
    return absl::InvalidArgumentError("expected ',' or '}'");
  }
}

absl::StatusOr<double> ParseValue(absl::string_view token) {
  if (token == "+Inf" || token == "Inf") return std::numeric_limits<double>::infinity();
  if (token == "-Inf") return -std::numeric_limits<double>::infinity();
  if (token == "NaN") return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  if (!absl::SimpleAtod(token, &v) || std::isnan(v) || std::isinf(v)) {
    return absl::InvalidArgumentError(absl::StrCat("'", token, "' is not a sample value"));
  }
  return v;
}

absl::Status ParseComment(absl::string_view line, Exposition& out) {
  line.remove_prefix(1);
  SkipSpaces(line);
  const bool help = absl::ConsumePrefix(&line, "HELP ");
  if (!help && !absl::ConsumePrefix(&line, "TYPE ")) return absl::OkStatus();  // a comment
  SkipSpaces(line);
  const std::string name(TakeName(line));
  if (name.empty()) return absl::InvalidArgumentError("HELP/TYPE without a metric name");
  SkipSpaces(line);
  if (!help) {
    out.types[name] = std::string(line);
    return absl::OkStatus();
  }
  std::string text;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && (line[i + 1] == 'n' || line[i + 1] == '\\')) {
      text += line[i + 1] == 'n' ? '\n' : '\\';
      ++i;
    } else {
      text += line[i];
    }
  }
  out.help[name] = std::move(text);
  return absl::OkStatus();
}

absl::Status ParseSample(absl::string_view line, Exposition& out) {
  SeriesKey key;
  key.name = std::string(TakeName(line));
  if (key.name.empty()) return absl::InvalidArgumentError("expected a metric name");
  absl::StatusOr<LabelMap> labels = TakeLabels(line);
  if (!labels.ok()) return labels.status();
  key.labels = *std::move(labels);
  SkipSpaces(line);
  std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (fields.empty() || fields.size() > 2) {
    return absl::InvalidArgumentError("expected a value and at most a timestamp");
  }
  absl::StatusOr<double> value = ParseValue(fields[0]);
  if (!value.ok()) return value.status();
  int64_t timestamp = 0;
  if (fields.size() == 2 && !absl::SimpleAtoi(fields[1], &timestamp)) {
    return absl::InvalidArgumentError(absl::StrCat("'", fields[1], "' is not a timestamp"));
  }
  if (!out.samples.emplace(std::move(key), *value).second) {
    return absl::InvalidArgumentError("the same series appears twice");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Exposition> ParseExposition(absl::string_view text) {
  Exposition out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    SkipSpaces(line);
    if (line.empty()) continue;
    absl::Status parsed = line.front() == '#' ? ParseComment(line, out) : ParseSample(line, out);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("exposition line ", number, ": ",
                                                     parsed.message(), ": ", line.substr(0, 200)));
    }
  }
  return out;
}

std::optional<double> Exposition::Value(absl::string_view name, const LabelMap& labels) const {
  auto it = samples.find(SeriesKey{std::string(name), labels});
  if (it == samples.end()) return std::nullopt;
  return it->second;
}

double Exposition::Sum(absl::string_view name, const LabelMap& match) const {
  double sum = 0;
  for (const auto& [key, value] : samples) {
    if (key.name != name) continue;
    bool all = true;
    for (const auto& [label, want] : match) {
      auto it = key.labels.find(label);
      all = all && it != key.labels.end() && it->second == want;
    }
    if (all) sum += value;
  }
  return sum;
}

std::set<std::string> Exposition::SampleNames() const {
  std::set<std::string> names;
  for (const auto& [key, value] : samples) names.insert(key.name);
  return names;
}

}  // namespace pdserve::metrics
