#include "doctor/doctor_output.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pdserve::doctor {
namespace {

int Count(const Diagnosis& d, Verdict v) {
  int n = 0;
  for (const BackendDiagnosis& b : d.backends) {
    for (const Finding& f : b.findings) n += f.verdict == v ? 1 : 0;
  }
  return n;
}

}  // namespace

std::string RenderText(const Diagnosis& d) {
  std::string out =
      d.live ? absl::StrFormat("pdserve doctor: %s (%d prefill workers; counters since each "
                               "started)\n",
                               d.dir, d.backends.size())
             : absl::StrFormat("pdserve doctor: %s (%d cells, %d backends; %s)\n", d.dir,
                               d.cells, d.backends.size(),
                               d.timelines ? "per-request timelines read"
                                           : "no per-cell JSON: figures from summary.csv, "
                                             "timeline-only items not recorded");
  // Widths fit the longest item and workload names; the figure runs to the end of the line so
  // nothing is cut.
  constexpr const char* kRow = "  %-13s %-8s %-7s %s\n";
  for (const BackendDiagnosis& b : d.backends) {
    absl::StrAppend(&out, "\n", b.backend,
                    b.transports.empty() ? "" : absl::StrCat(" (", b.transports, ")"), "\n");
    absl::StrAppend(&out, absl::StrFormat(kRow, "item", "workload", "verdict", "figure"));
    for (const Finding& f : b.findings) {
      absl::StrAppend(&out,
                      absl::StrFormat(kRow, f.item, f.workload, VerdictName(f.verdict), f.figure));
      if (!f.fix.empty()) absl::StrAppend(&out, absl::StrFormat(kRow, "", "", "", "fix: " + f.fix));
    }
  }
  absl::StrAppend(&out, absl::StrFormat("\n%d warn, %d fail\n", Count(d, Verdict::kWarn),
                                        Count(d, Verdict::kFail)));
  return out;
}

nlohmann::json ToJson(const Diagnosis& d) {
  nlohmann::json backends = nlohmann::json::array();
  for (const BackendDiagnosis& b : d.backends) {
    nlohmann::json findings = nlohmann::json::array();
    for (const Finding& f : b.findings) {
      findings.push_back({{"item", f.item},
                          {"workload", f.workload},
                          {"verdict", VerdictName(f.verdict)},
                          {"figure", f.figure},
                          {"fix", f.fix}});
    }
    backends.push_back(
        {{"backend", b.backend}, {"transports", b.transports}, {"findings", std::move(findings)}});
  }
  return {{"dir", d.dir},
          {"cells", d.cells},
          {"timelines", d.timelines},
          {"live", d.live},
          {"backends", std::move(backends)},
          {"warn", Count(d, Verdict::kWarn)},
          {"fail", Count(d, Verdict::kFail)}};
}

}  // namespace pdserve::doctor
