#include "bench/transfer_link.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/transfer_pair.h"
#include "bench/transfer_rows.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "transfer/copy_plan.h"
#include "transfer/kv_transport.h"

namespace pdserve::bench {
namespace {

using transfer_rows::MeasureBatches;
using transfer_rows::Measurement;
using transfer_rows::Median;

constexpr int kRounds = 3;
// Over tcp the ucx backend sends a batch's runs as data active messages of at most this many
// bytes (kMaxDataAmBytes, transfer/ucx/ucx_transport_batches.cc): the baseline's message size.
constexpr uint64_t kDataAmBytes = uint64_t{256} << 10;

// Unlike the same-host rows (SideCpus), neither side is pinned unless PDSERVE_LINK_PIN=1: over
// veth the kernel's TCP work (softirq, the qdisc's dequeue) runs beside the two busy processes,
// and with each pinned to one core of a 2-core host it had none to spare (tbf 10 Gbit/s,
// ucx_perftest 256 KiB: 0.3-0.5 GB/s pinned, 1.1 unpinned in the same minutes).
std::pair<int, int> LinkCpus() {
  const char* pin = std::getenv("PDSERVE_LINK_PIN");
  return pin != nullptr && std::string(pin) == "1" ? SideCpus() : std::pair<int, int>(-1, -1);
}

// Everything below goes into shell command lines: names and addresses are checked first.
bool SafeName(const std::string& s) {
  return std::regex_match(s, std::regex("[A-Za-z0-9_.-]{1,64}"));
}
bool Ipv4(const std::string& s) {
  return std::regex_match(s, std::regex("([0-9]{1,3}\\.){3}[0-9]{1,3}"));
}

// One ucx_perftest client run against a server started for it in `o.receiver_netns`; the
// "Final:" line's fields (empty when it failed). Both sides on the CPUs of our pair.
std::vector<std::string> RunPerftest(const TransferLinkOptions& o, const std::string& test,
                                     uint64_t size, uint64_t iters, bool eager = false) {
  static int port_seq = 0;
  const int port = 20000 + (getpid() * 7 + port_seq++) % 20000;
  const uint64_t warmup = std::max<uint64_t>(2, iters / 10);
  // eager: UCX_RNDV_THRESH=inf, so that perftest's messages go the way ours do (eager, never
  // rendezvous: ucx_transport_batches.cc); by default UCX picks rendezvous for large ones.
  const std::string env = absl::StrCat("UCX_TLS=tcp UCX_NET_DEVICES=", o.device, " ",
                                       eager ? "UCX_RNDV_THRESH=inf " : "");
  const auto [client_cpu, server_cpu] = LinkCpus();
  const std::string server_pin =
      server_cpu >= 0 ? absl::StrCat("taskset -c ", server_cpu, " ") : std::string();
  const std::string client_pin =
      client_cpu >= 0 ? absl::StrCat("taskset -c ", client_cpu, " ") : std::string();
  // The server serves one run and exits; timeout bounds it should the client never come.
  const std::string server =
      absl::StrCat(env, "timeout 60 ip netns exec ", o.receiver_netns, " ", server_pin,
                   "ucx_perftest -p ", port, " >/dev/null 2>&1 &");
  if (std::system(server.c_str()) != 0) return {};
  for (int attempt = 0; attempt < 40; ++attempt) {
    usleep(50000);  // let the server listen
    const std::string client =
        absl::StrCat(env, "timeout 40 ", client_pin, "ucx_perftest ", o.receiver_listen, " -p ",
                     port, " -t ", test, " -s ", size, " -n ", iters, " -w ", warmup, " 2>&1");
    FILE* f = popen(client.c_str(), "r");
    if (f == nullptr) return {};
    char line[512];
    std::vector<std::string> fields;
    while (std::fgets(line, sizeof(line), f) != nullptr) {
      if (std::strncmp(line, "Final:", 6) == 0) {
        fields = absl::StrSplit(line, ' ', absl::SkipWhitespace());
      }
    }
    const int rc = pclose(f);
    if (!fields.empty() || (WIFEXITED(rc) && WEXITSTATUS(rc) == 124)) return fields;
  }
  return {};
}

// ucp_am_bw with `size`-byte messages, about `budget` bytes: GB/s ("overall" MB/s of 2^20
// bytes), or -1.
double PerftestAmGBps(const TransferLinkOptions& o, uint64_t size, uint64_t budget, bool eager) {
  const uint64_t iters = std::clamp<uint64_t>(budget / std::max<uint64_t>(size, 1), 8, 200000);
  std::vector<std::string> f = RunPerftest(o, "ucp_am_bw", size, iters, eager);
  double mbps = 0;
  if (f.size() < 7 || !absl::SimpleAtod(f[6], &mbps)) return -1;
  return mbps * 1048576 / 1e9;
}

// ucp_am_lat with 8-byte messages: the link's one-way latency in microseconds (perftest
// reports half the round trip), or -1.
double PerftestLatencyUs(const TransferLinkOptions& o) {
  std::vector<std::string> f = RunPerftest(o, "ucp_am_lat", 8, 20000);
  double us = 0;
  if (f.size() < 5 || !absl::SimpleAtod(f[4], &us)) return -1;
  return us;
}

absl::StatusOr<std::unique_ptr<SenderPair>> OpenLinkPair(const TransferLinkOptions& o,
                                                       const Shape& shape, KvLayout layout,
                                                       uint32_t blocks) {
  ASSIGN_OR_RETURN(ModelConfig config, ShapeConfig(shape));
  const BackendSpec b{"ucx", "tcp"};
  transfer::TransportOptions topts;
  topts.backend = "ucx";
  topts.agent_name = "link-sender";
  topts.listen_host = o.listen;
  ASSIGN_OR_RETURN(std::unique_ptr<ReceiverProcess> receiver,
                   ReceiverProcess::Start(
                       ReceiverSpec(b, shape, layout, blocks, LinkCpus().second, o.receiver_listen),
                       o.receiver_netns));
  return ConnectSender(std::move(receiver), topts, config, blocks, layout);
}

}  // namespace

absl::Status RunTransferLinkBench(const TransferLinkOptions& o) {
  if (!SafeName(o.receiver_netns) || !SafeName(o.device) || !Ipv4(o.listen) ||
      !Ipv4(o.receiver_listen)) {
    return absl::InvalidArgumentError(
        "--receiver-netns NAME, --listen IPV4 and --receiver-listen IPV4 are needed "
        "(names: [A-Za-z0-9_.-])");
  }
  if (access("/usr/bin/ucx_perftest", X_OK) != 0) {
    return absl::FailedPreconditionError("ucx_perftest not found (apt-get install ucx-utils)");
  }
  SetLogLevel("warn");
  setenv("UCX_TLS", "tcp", 1);  // read when the contexts are made; the receiver inherits it
  const Shape shape{"llama3-8b", 16};
  const std::vector<uint32_t> batches = {1, 8, 32, 128};  // 16, 128, 512, 2048 tokens
  PinThread pinned(LinkCpus().first);

  const double latency_us = PerftestLatencyUs(o);
  std::printf("KV over UCX tcp, %s (this namespace) -> %s (%s), device %s%s%s\n", o.listen.c_str(),
              o.receiver_listen.c_str(), o.receiver_netns.c_str(), o.device.c_str(),
              o.label.empty() ? "" : ", ", o.label.c_str());
  std::printf("link latency (ucx_perftest ucp_am_lat, 8 B, one way): %.1f us\n", latency_us);
  std::printf("%-12s %6s %9s %5s %5s %7s %8s %8s %8s %6s %6s %8s\n", "layout", "tokens",
              "MiB/batch", "runs", "msgs", "KiB/msg", "perftest", "perftest", "pdserve", "ratio",
              "best", "p50 ms");
  std::printf("%-12s %6s %9s %5s %5s %7s %8s %8s %8s %6s %6s %8s\n", "", "", "", "", "", "", "GB/s",
              "eager", "GB/s", "", "ratio", "");
  std::ofstream csv;
  if (!o.csv_path.empty()) {
    csv.open(o.csv_path);
    csv << "label,layout,tokens,bytes_per_batch,runs_per_batch,messages_per_batch,bytes_per_"
           "message,"
           "perftest_am_bw_gbps,perftest_am_bw_eager_gbps,"
           "pdserve_gbps,ratio,best_ratio,p50_ms,latency_us,rounds_pdserve,rounds_perftest,rounds_"
           "perftest_eager\n";
  }
  std::string transports;
  double worst = 1e9, worst_best = 1e9;
  for (KvLayout layout : {KvLayout::kLayerMajor, KvLayout::kBlockMajor}) {
    const uint32_t pool = *std::max_element(batches.begin(), batches.end());
    ASSIGN_OR_RETURN(std::unique_ptr<SenderPair> pair, OpenLinkPair(o, shape, layout, pool));
    transports = pair->transport->counters().transports;
    for (uint32_t n : batches) {
      const std::vector<transfer::BlockCopy> copies = MakeCopies(n);
      // The messages the batch goes as: its coalesced runs, cut at kDataAmBytes.
      std::vector<transfer::CopyOp> ops;
      const auto& geometry = pair->cache->geometry();
      RETURN_IF_ERROR(transfer::PlanCopies(geometry, geometry, copies, ops));
      uint64_t messages = 0, total = 0;
      for (const transfer::CopyOp& op : ops) {
        messages += (op.bytes + kDataAmBytes - 1) / kDataAmBytes;
        total += op.bytes;
      }
      const uint64_t am_bytes = total / std::max<uint64_t>(1, messages);
      std::vector<Measurement> ours;
      std::vector<double> ours_gbps, theirs, theirs_eager;
      for (int round = 0; round < kRounds; ++round) {
        ASSIGN_OR_RETURN(Measurement m,
                         MeasureBatches(*pair->transport, pair->peer, copies, o.min_seconds, 3));
        ours.push_back(m);
        ours_gbps.push_back(m.gbps);
        // About as many bytes as our round moved, at least 256 MiB.
        const uint64_t budget = std::max<uint64_t>(
            uint64_t{256} << 20, static_cast<uint64_t>(m.gbps * 1e9 * o.min_seconds));
        theirs.push_back(PerftestAmGBps(o, am_bytes, budget, false));
        theirs_eager.push_back(PerftestAmGBps(o, am_bytes, budget, true));
      }
      std::sort(ours.begin(), ours.end(),
                [](const Measurement& x, const Measurement& y) { return x.gbps < y.gbps; });
      const Measurement& m = ours[ours.size() / 2];
      // Against the faster of perftest's two ways.
      const double base_default = Median(theirs), base_eager = Median(theirs_eager);
      const double base = std::max(base_default, base_eager);
      const double ratio = base > 0 ? m.gbps / base : -1;
      if (ratio > 0) worst = std::min(worst, ratio);
      // Best round against best round: on a shared host a round lands in one of two modes
      // (1-1.5 against 3-3.8 GB/s unshaped on 2 cores, whoever ran), and the best of each side
      // is what the link gives it.
      double best_theirs = -1;
      for (double x : theirs) best_theirs = std::max(best_theirs, x);
      for (double x : theirs_eager) best_theirs = std::max(best_theirs, x);
      const double best_ours = ours.back().gbps;  // sorted above
      const double best_ratio = best_theirs > 0 ? best_ours / best_theirs : -1;
      if (best_ratio > 0) worst_best = std::min(worst_best, best_ratio);
      const int tokens = static_cast<int>(n) * shape.block_size;
      std::printf("%-12s %6d %9.1f %5u %5llu %7.1f %8.3f %8.3f %8.3f %6.2f %6.2f %8.2f\n",
                  std::string(KvLayoutName(layout)).c_str(), tokens, m.bytes_per_batch / 1048576.0,
                  m.ops_per_batch, static_cast<unsigned long long>(messages), am_bytes / 1024.0,
                  base_default, base_eager, m.gbps, ratio, best_ratio, m.p50_ms);
      std::fflush(stdout);
      if (csv.is_open()) {
        auto join = [](const std::vector<double>& v) {
          std::string s;
          for (double x : v) absl::StrAppend(&s, s.empty() ? "" : " ", absl::StrFormat("%.3f", x));
          return s;
        };
        csv << o.label << "," << KvLayoutName(layout) << "," << tokens << "," << m.bytes_per_batch
            << "," << m.ops_per_batch << "," << messages << "," << am_bytes << "," << base_default
            << "," << base_eager << "," << m.gbps << "," << ratio << "," << best_ratio << ","
            << m.p50_ms << "," << latency_us << "," << join(ours_gbps) << "," << join(theirs) << ","
            << join(theirs_eager) << "\n";
      }
    }
  }
  std::printf("transports: %s\n", transports.c_str());
  std::printf(
      "lowest ratio pdserve / ucx_perftest: %.2f of the median rounds, %.2f of the best "
      "(target >= 0.9)\n",
      worst < 1e9 ? worst : -1.0, worst_best < 1e9 ? worst_best : -1.0);
  return absl::OkStatus();
}

}  // namespace pdserve::bench
