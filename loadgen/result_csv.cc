#include "loadgen/result_csv.h"

#include <cmath>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace pdserve::loadgen {
namespace {

// RFC 4180: quote fields with separators or quotes, double the quotes.
std::string Quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\"", "\"\""}}), "\"");
}

std::string Ms(double v) { return absl::StrFormat("%.4f", v); }
// Empty where the server did not report the value.
std::string MaybeMs(double v) { return std::isnan(v) ? std::string() : Ms(v); }

}  // namespace

std::string FormatRequestsCsv(const BenchmarkResult& result) {
  std::string out =
      "index,request_id,success,error,input_len,max_tokens,output_len,scheduled_s,send_s,"
      "ttft_ms,tpot_ms,e2el_ms,mean_itl_ms,max_itl_ms,chunks,queue_ms,prefill_ms,transfer_ms,"
      "decode_ms,server_ttft_ms,kv_bytes,transfer_ops,prefill_worker,decode_worker,"
      "transfer_backend,modelled_prefill_ms,prefill_mock_cpu_ms,modelled_first_step_ms,"
      "decode_verify_cpu_ms,dispatch_ms,handoff_ms,join_ms,first_step_ms,control_plane_ms,"
      "transfer_copy_wait_ms\n";
  for (const RequestRecord& r : result.requests) {
    double itl_sum = 0, itl_max = 0;
    for (double g : r.itl_s) {
      itl_sum += g;
      itl_max = std::max(itl_max, g);
    }
    const double itl_mean = r.itl_s.empty() ? 0.0 : itl_sum / r.itl_s.size();
    absl::StrAppend(&out, r.index, ",", Quote(r.request_id), ",", r.success ? 1 : 0, ",",
                    Quote(r.error), ",", r.input_len, ",", r.max_tokens, ",", r.output_tokens, ",",
                    absl::StrFormat("%.6f,%.6f", r.scheduled_s, r.send_s), ",");
    if (r.success) {
      absl::StrAppend(&out, Ms(r.ttft_s * 1e3), ",", r.output_tokens > 1 ? Ms(r.TpotS() * 1e3) : "",
                      ",", Ms(r.e2el_s * 1e3), ",", Ms(itl_mean * 1e3), ",", Ms(itl_max * 1e3),
                      ",", r.event_tokens.size(), ",");
    } else {
      out += ",,,,,,";
    }
    const ServerTimeline& t = r.timeline;
    if (t.present) {
      absl::StrAppend(&out, Ms(t.queue_ms), ",", Ms(t.prefill_ms), ",", Ms(t.transfer_ms), ",",
                      Ms(t.decode_ms), ",", Ms(t.server_ttft_ms), ",", t.kv_bytes, ",",
                      t.transfer_ops, ",", Quote(t.prefill_worker), ",", Quote(t.decode_worker),
                      ",", Quote(t.transfer_backend), ",", MaybeMs(t.modelled_prefill_ms), ",",
                      MaybeMs(t.prefill_mock_cpu_ms), ",", MaybeMs(t.modelled_first_step_ms), ",",
                      MaybeMs(t.decode_verify_cpu_ms), ",", MaybeMs(t.dispatch_ms), ",",
                      MaybeMs(t.handoff_ms), ",", MaybeMs(t.join_ms), ",",
                      MaybeMs(t.first_step_ms), ",", MaybeMs(r.ControlPlaneMs()), ",",
                      Ms(t.transfer_copy_wait_ms), "\n");
    } else {
      out += ",,,,,,,,,,,,,,,,,,,\n";
    }
  }
  return out;
}

absl::Status WriteRequestsCsv(const BenchmarkResult& result, const std::string& path) {
  std::ofstream out(path);
  out << FormatRequestsCsv(result);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace pdserve::loadgen
