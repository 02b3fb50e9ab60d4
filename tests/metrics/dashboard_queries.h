#pragma once

// The series a Grafana dashboard (deploy/grafana/pdserve.json) queries, for tests that check
// each one is exported. PromQL is not parsed in full: quoted strings and [ranges] are dropped,
// then every identifier with a colon is a metric name (every series pdserve exports is
// namespaced, vllm: or pdserve:, and PromQL's functions, keywords and label names never carry
// one). So that a query on a name without a colon cannot slip through, an identifier right
// before a selector `{` that has no colon is reported too. Histogram sample suffixes are kept
// (name_bucket): the caller compares with sample names.

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "nlohmann/json.hpp"

namespace pdserve::metrics_test {

// Every "expr" string of the dashboard, and its template variables' queries.
inline void CollectQueries(const nlohmann::json& j, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if ((key == "expr" || key == "query" || key == "definition") && value.is_string()) {
        out.push_back(value.get<std::string>());
      } else {
        CollectQueries(value, out);
      }
    }
  } else if (j.is_array()) {
    for (const nlohmann::json& v : j) CollectQueries(v, out);
  }
}

inline std::string WithoutQuotedAndRanges(const std::string& q) {
  std::string out;
  char skip_until = 0;
  for (size_t i = 0; i < q.size(); ++i) {
    const char c = q[i];
    if (skip_until != 0) {
      if (c == '\\') ++i;
      if (c == skip_until) skip_until = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      skip_until = c;
    } else if (c == '[') {
      skip_until = ']';
    } else {
      out += c;
    }
    if (skip_until != 0) out += ' ';
  }
  return out;
}

inline bool IsIdentChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}

// Metric names one PromQL query reads (see the top of this file).
inline std::set<std::string> MetricNames(const std::string& query) {
  const std::string q = WithoutQuotedAndRanges(query);
  std::set<std::string> names;
  for (size_t i = 0; i < q.size();) {
    if (!IsIdentChar(q[i]) || absl::ascii_isdigit(static_cast<unsigned char>(q[i]))) {
      // Skip numbers whole (1e9, 0.99) so that their digits do not start an identifier.
      if (absl::ascii_isdigit(static_cast<unsigned char>(q[i]))) {
        while (i < q.size() && (IsIdentChar(q[i]) || q[i] == '.')) ++i;
      } else {
        ++i;
      }
      continue;
    }
    const size_t start = i;
    if (q[i] == '$') ++i;
    while (i < q.size() && IsIdentChar(q[i])) ++i;
    const std::string ident = q.substr(start, i - start);
    size_t next = i;
    while (next < q.size() && q[next] == ' ') ++next;
    const bool selector = next < q.size() && q[next] == '{';
    if (ident.find(':') != std::string::npos || selector) names.insert(ident);
  }
  return names;
}

inline std::set<std::string> DashboardMetricNames(const std::string& path, std::string* error) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::set<std::string> names;
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    *error = "cannot parse " + path + " as JSON";
    return names;
  }
  std::vector<std::string> queries;
  CollectQueries(j, queries);
  for (const std::string& q : queries) {
    for (const std::string& n : MetricNames(q)) names.insert(n);
  }
  return names;
}

// A histogram family's sample names end in _bucket, _sum or _count; others are the name itself.
inline std::string FamilyOf(const std::string& sample) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s = suffix;
    if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
      return sample.substr(0, sample.size() - s.size());
    }
  }
  return sample;
}

}  // namespace pdserve::metrics_test
