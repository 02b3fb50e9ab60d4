#pragma once

// `pdserve bench transfer --receiver-netns NS --listen A --receiver-listen B`: KV throughput
// over UCX's tcp transport across a link between two network namespaces (scripts/netns-hosts.sh,
// driven by scripts/bench-netns-link.sh), against ucx_perftest over the same link in the same
// run. This process is the sender and must already run in its own namespace (the one holding
// A); the receiver (bench/transfer_pair.h) and the perftest server run in NS (holding B).
//
// Rows: llama3-8b, 16-token blocks (2 MiB), requests of 16 / 128 / 512 / 2048 tokens, both
// layouts. Over tcp the ucx backend moves a batch as eager data active messages of at most
// 256 KiB (transfer/ucx/ucx_transport.h), so the baseline is ucx_perftest ucp_am_bw with messages
// of the row's mean message size, between the same two namespaces, UCX_TLS=tcp and
// UCX_NET_DEVICES=eth0 like pdserve's, run twice a round: with UCX's defaults (rendezvous for
// large messages) and eager (UCX_RNDV_THRESH=inf, our protocol); the faster is the baseline.
// Ours and perftest's runs alternate (3 rounds) and each side reports its median round; the
// best-round ratio is printed too (a shared 2-core host puts whole rounds of either side in a
// slow mode). Neither side is pinned (PDSERVE_LINK_PIN=1 pins them like the same-host rows).
// Table on stdout; CSV on request. Not a test: no thresholds.

#include <string>

#include "absl/status/status.h"

namespace pdserve::bench {

struct TransferLinkOptions {
  std::string receiver_netns;   // the receiver's network namespace
  std::string listen;           // this (sending) side's address, in this process's namespace
  std::string receiver_listen;  // the receiver's address, in receiver_netns
  std::string device = "eth0";  // the link's interface on both sides (UCX_NET_DEVICES)
  double min_seconds = 0.5;     // per round of ours
  std::string csv_path;         // empty: no CSV
  std::string label;            // a label for the CSV's rows ("unlimited", "tbf-10gbit")
};

absl::Status RunTransferLinkBench(const TransferLinkOptions& options);

}  // namespace pdserve::bench
