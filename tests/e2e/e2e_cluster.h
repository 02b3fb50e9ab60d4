#pragma once

// Starting real clusters (the pdserve binary, as child processes) for end-to-end tests.

#include <functional>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cluster/cluster.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_client.h"

namespace pdserve::e2e {

// tiny preset, small pools, one kernel thread per worker: several processes share 2 cores.
inline cluster::ClusterOptions Options(const std::string& transfer, int prefill = 2,
                                       int decode = 2) {
  cluster::ClusterOptions o;
  o.binary = PDSERVE_BINARY;
  o.transfer = transfer;
  o.num_prefill = prefill;
  o.num_decode = decode;
  o.prefill_blocks = 256;
  o.decode_blocks = 256;
  o.threads = 1;
  // Freed decode blocks are poisoned: a request that read blocks it no longer owns (another
  // request's stale KV of the same prefix) fails verification instead of passing.
  o.decode_args = {"--poison-freed-kv"};
  o.ready_timeout = absl::Seconds(60);
  o.drain_grace = absl::Seconds(10);
  // UCX picks among these on one host; no RDMA devices here.
  o.env = {{"UCX_TLS", "tcp,posix,cma"}};
  return o;
}

inline std::unique_ptr<cluster::Cluster> Start(const cluster::ClusterOptions& options) {
  absl::StatusOr<std::unique_ptr<cluster::Cluster>> c = cluster::Cluster::Start(options);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  return std::move(*c);
}

// Every pool of every worker has all its blocks free and the router reserves none.
inline void ExpectAllBlocksFree(Client& client) {
  absl::StatusOr<v1::ClusterStatus> status = client.Status();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_GT(status->workers_size(), 0);
  for (const v1::WorkerStatus& w : status->workers()) {
    EXPECT_TRUE(w.live()) << w.worker_id();
    EXPECT_EQ(w.capacity().free_blocks(), w.capacity().total_blocks()) << w.worker_id();
    EXPECT_EQ(w.reserved_blocks(), 0u) << w.worker_id();
  }
  EXPECT_EQ(status->waiting_requests(), 0u);
  EXPECT_EQ(status->running_requests(), 0u);
}

// Polls `condition` every 5 ms until it holds (true) or `timeout` passes (false).
inline bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

}  // namespace pdserve::e2e
