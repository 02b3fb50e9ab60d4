#include "doctor/results_folder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace pdserve::doctor {
namespace {

namespace fs = std::filesystem;

// Rates compare as numbers: report-inputs.json writes "1", summary.csv may write "1" or "1.0".
bool SameRate(const std::string& a, const std::string& b) {
  if (a == b) return true;
  char* end_a = nullptr;
  char* end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
  return end_a != a.c_str() && end_b != b.c_str() && x == y;
}

// summary.csv's rows, keyed by column name. A folder without it still loads (the cell JSON
// holds every figure summary.csv has).
std::vector<std::map<std::string, std::string>> ReadSummary(const std::string& path) {
  std::vector<std::map<std::string, std::string>> rows;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return rows;
  const std::vector<std::string> header = SplitCsvLine(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> fields = SplitCsvLine(line);
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < fields.size(); ++i) row[header[i]] = fields[i];
    rows.push_back(std::move(row));
  }
  return rows;
}

// The cell's JSON: where the bench wrote it (the folder itself) or where committed folders keep
// it (runs/). Null when neither has it or it does not parse (the doctor then says "not recorded"
// for what only the timelines hold, rather than failing on a partial folder).
nlohmann::json ReadCellJson(const std::string& dir, const std::string& file) {
  if (file.empty()) return nullptr;
  for (const fs::path& p : {fs::path(dir) / file, fs::path(dir) / "runs" / file}) {
    std::ifstream in(p);
    if (!in) continue;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object()) return j;
  }
  return nullptr;
}

// The cell's per-request CSV (same stem as its JSON), numeric columns only.
std::vector<std::map<std::string, double>> ReadRequestsCsv(const std::string& dir,
                                                           const std::string& json_file) {
  std::vector<std::map<std::string, double>> rows;
  if (json_file.size() < 5) return rows;
  const std::string csv = json_file.substr(0, json_file.size() - 5) + ".csv";
  for (const fs::path& p :
       {fs::path(dir) / "requests" / csv, fs::path(dir) / "runs" / csv, fs::path(dir) / csv}) {
    std::ifstream in(p);
    std::string line;
    if (!std::getline(in, line)) continue;
    const std::vector<std::string> header = SplitCsvLine(line);
    while (std::getline(in, line)) {
      const std::vector<std::string> fields = SplitCsvLine(line);
      std::map<std::string, double> row;
      for (size_t i = 0; i < header.size() && i < fields.size(); ++i) {
        char* end = nullptr;
        const double x = std::strtod(fields[i].c_str(), &end);
        if (!fields[i].empty() && end != fields[i].c_str() && *end == '\0') row[header[i]] = x;
      }
      rows.push_back(std::move(row));
    }
    break;
  }
  return rows;
}

// Sums every number stored under a key "registrations" anywhere in `j`; false when none.
bool SumRegistrations(const nlohmann::json& j, double* sum) {
  bool found = false;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "registrations" && it.value().is_number()) {
        *sum += it.value().get<double>();
        found = true;
      } else if (it.value().is_structured()) {
        found = SumRegistrations(it.value(), sum) || found;
      }
    }
  } else if (j.is_array()) {
    for (const nlohmann::json& v : j) {
      if (v.is_structured()) found = SumRegistrations(v, sum) || found;
    }
  }
  return found;
}

// Each backend's transports line: from the sweep options (one line per backend) where recorded,
// else cut out of the joined `backends` string ("local: ...; ucx-tcp: ..."), whose lines may
// hold "; " themselves, so it is cut only before a known backend label.
std::map<std::string, std::string> TransportLines(const nlohmann::json& inputs,
                                                  const std::vector<std::string>& backends) {
  std::vector<std::string> lines;
  for (const nlohmann::json& t : inputs.value("sweep", nlohmann::json::object())
                                     .value("transports", nlohmann::json::array())) {
    if (t.is_string()) lines.push_back(t.get<std::string>());
  }
  if (lines.empty()) {
    const std::string joined = inputs.value("backends", "");
    std::vector<size_t> starts;
    for (const std::string& b : backends) {
      const std::string key = b + ": ";
      if (absl::StartsWith(joined, key)) starts.push_back(0);
      for (size_t at = joined.find("; " + key); at != std::string::npos;
           at = joined.find("; " + key, at + 1)) {
        starts.push_back(at + 2);
      }
    }
    std::sort(starts.begin(), starts.end());
    starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
    for (size_t i = 0; i < starts.size(); ++i) {
      const size_t end = i + 1 < starts.size() ? starts[i + 1] - 2 : joined.size();
      lines.push_back(joined.substr(starts[i], end - starts[i]));
    }
  }
  std::map<std::string, std::string> out;
  for (const std::string& line : lines) {
    const size_t colon = line.find(": ");
    if (colon != std::string::npos) out[line.substr(0, colon)] = line.substr(colon + 2);
  }
  return out;
}

}  // namespace

std::vector<std::string> SplitCsvLine(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c != '\r') {
      fields.back() += c;
    }
  }
  return fields;
}

std::optional<double> Cell::Metric(const std::string& name) const {
  if (result.is_object()) {
    const auto it = result.find(name);
    if (it != result.end() && it->is_number()) {
      const double v = it->get<double>();
      if (!std::isnan(v)) return v;
    }
  }
  const auto it = summary.find(name);
  if (it != summary.end() && !std::isnan(it->second)) return it->second;
  return std::nullopt;
}

const nlohmann::json& Cell::Timelines() const {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  if (!result.is_object()) return kEmpty;
  const auto it = result.find("server_timelines");
  return it != result.end() && it->is_array() ? *it : kEmpty;
}

bool ResultsFolder::OneHost() const { return absl::StrContains(cluster, "on one host"); }

absl::StatusOr<ResultsFolder> LoadResultsFolder(const std::string& dir) {
  if (!fs::is_directory(dir)) return absl::NotFoundError(absl::StrCat(dir, " is not a folder"));
  const std::string path = (fs::path(dir) / "report-inputs.json").string();
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        dir,
        " is not a pdserve bench results folder: it has no report-inputs.json (written by "
        "`pdserve bench --result-dir DIR`)"));
  }
  const nlohmann::json inputs = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (inputs.is_discarded() || !inputs.is_object() || !inputs.contains("runs") ||
      !inputs["runs"].is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is not a pdserve bench report-inputs file (no \"runs\" list)"));
  }
  ResultsFolder f;
  f.dir = dir;
  f.device = inputs.value("device", "");
  f.cluster = inputs.value("cluster", "");
  const nlohmann::json sweep = inputs.value("sweep", nlohmann::json::object());
  f.layout = sweep.value("layout", "");
  if (f.layout.empty()) {
    for (const char* l : {"layer-major", "block-major"}) {
      if (absl::StrContains(f.cluster, l)) f.layout = l;
    }
  }
  f.baseline_note = inputs.value("transfer_baseline_note", "");
  for (const nlohmann::json& b : inputs.value("transfer_baselines", nlohmann::json::array())) {
    f.baselines.push_back({.backend = b.value("backend", ""),
                           .input_len = b.value("input_len", 0),
                           .bytes = b.value("bytes", uint64_t{0}),
                           .p50_ms = b.value("p50_ms", 0.0)});
  }
  const auto summary = ReadSummary((fs::path(dir) / "summary.csv").string());
  for (const nlohmann::json& r : inputs["runs"]) {
    Cell c;
    c.backend = r.value("backend", "");
    c.input_len = r.value("input_len", 0);
    c.output_len = r.value("output_len", 0);
    c.rate = r.value("request_rate", "");
    c.error = r.value("error", "");
    c.result = ReadCellJson(dir, r.value("result_file", ""));
    if (c.result.is_null()) c.requests = ReadRequestsCsv(dir, r.value("result_file", ""));
    for (const auto& row : summary) {
      auto get = [&](const char* k) {
        const auto it = row.find(k);
        return it == row.end() ? std::string() : it->second;
      };
      if (get("backend") != c.backend || get("input_len") != std::to_string(c.input_len) ||
          get("output_len") != std::to_string(c.output_len) ||
          !SameRate(get("request_rate"), c.rate)) {
        continue;
      }
      for (const auto& [k, v] : row) {
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (!v.empty() && end != v.c_str() && *end == '\0') c.summary[k] = x;
      }
      c.host_bound = get("host_bound") == "1";
    }
    if (std::find(f.backends.begin(), f.backends.end(), c.backend) == f.backends.end()) {
      f.backends.push_back(c.backend);
    }
    double regs = 0;
    if (SumRegistrations(r, &regs) | SumRegistrations(c.result, &regs)) {
      f.registrations[c.backend] += regs;
    }
    if (f.block_size == 0 && c.result.is_object()) {
      f.block_size = c.result.value("model", nlohmann::json::object()).value("block_size", 0);
    }
    f.cells.push_back(std::move(c));
  }
  f.transports = TransportLines(inputs, f.backends);
  return f;
}

}  // namespace pdserve::doctor
