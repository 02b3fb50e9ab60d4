// A worker SIGKILLed across "hosts": the router in one namespace, prefill and decode workers on
// three more, KV over UCX tcp across the veth links, requests in flight. Every request either
// finishes with the model's tokens or fails UNAVAILABLE naming itself (each wait bounded: no
// hang), the router drops the dead worker, later requests are served by the survivors, no KV
// block stays taken on them, and no process or namespace is left behind (the fixture checks).
// Skipped where namespaces cannot be made. Its own binary: see tests/e2e/netns_hosts.h.

#include <atomic>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_client.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/netns_hosts.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

constexpr int kPrompt = 32;

// Where each worker runs: prefill-0 and decode-0 on h1, prefill-1 and decode-1 on h2, decode-2
// alone on h3; the router alone on h0.
struct Placement {
  std::string name;
  int host;
};
const Placement kPrefill[] = {{"prefill-0", 1}, {"prefill-1", 2}};
const Placement kDecode[] = {{"decode-0", 1}, {"decode-1", 2}, {"decode-2", 3}};

class NetnsKillTest : public NetnsHostsFixture {
 protected:
  NetnsKillTest() : NetnsHostsFixture("pdkill", "10.213.12", 4) {}

  // The cluster, with extra flags for the router and each role; returns once all registered.
  void StartCluster(std::vector<std::string> router_args, std::vector<std::string> prefill_args,
                    std::vector<std::string> decode_args) {
    const std::vector<std::string> common = {"--cluster-secret-file", secret_, "--transfer",
                                             "ucx"};
    std::vector<std::string> router = {"router", "--listen", Host(0), "--port", "50051",
                                       "--internal-port", "50052", "--http-port", "-1"};
    router.insert(router.end(), common.begin(), common.end());
    router.insert(router.end(), router_args.begin(), router_args.end());
    Spawn("router", 0, router);
    auto worker = [&](const std::string& role, const Placement& p,
                      const std::vector<std::string>& extra) {
      std::vector<std::string> args = {role, "--worker-id", p.name, "--listen", Host(p.host),
                                       "--host-id", absl::StrCat("host-", p.host), "--router",
                                       absl::StrCat(Host(0), ":50052"), "--num-blocks",
                                       num_blocks_.contains(p.name) ? num_blocks_[p.name] : "128",
                                       "--threads", "1", "--metrics-port", "-1"};
      args.insert(args.end(), common.begin(), common.end());
      args.insert(args.end(), extra.begin(), extra.end());
      Spawn(p.name, p.host, args);
    };
    for (const Placement& p : kPrefill) worker("prefill", p, prefill_args);
    decode_args.push_back("--poison-freed-kv");
    for (const Placement& p : kDecode) worker("decode", p, decode_args);
    EnterNamespace(0);
    ASSERT_TRUE(WaitForListener(Host(0), 50051, absl::Seconds(30))) << "the router did not start";
    client_ = std::make_unique<Client>(absl::StrCat(Host(0), ":50051"));
    const int all = std::size(kPrefill) + std::size(kDecode);
    ASSERT_TRUE(WaitFor([&] { return Workers() == all; }, absl::Seconds(30)))
        << "workers did not register: " << Workers() << " of " << all;
  }

  int Workers() {
    absl::StatusOr<v1::ClusterStatus> s = client_->Status();
    return s.ok() ? s->workers_size() : -1;
  }

  bool Registered(const std::string& id) {
    absl::StatusOr<v1::ClusterStatus> s = client_->Status();
    if (!s.ok()) return true;  // unknown: keep waiting
    for (const v1::WorkerStatus& w : s->workers()) {
      if (w.worker_id() == id) return true;
    }
    return false;
  }

  // n concurrent requests of kPrompt + max_tokens tokens, seeds 700 + i, each bounded by 60 s
  // (a hang ends DEADLINE_EXCEEDED, which CheckOutcomes rejects).
  void StartLoad(int n, int max_tokens) {
    out_.resize(n);
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, i, max_tokens] {
        out_[i] = client_->Generate(
            Client::Request(absl::StrCat("K", i), kPrompt, max_tokens, 700 + i),
            [this] { started_++; }, absl::Seconds(60));
      });
    }
  }

  // Joins the load; every request equals the reference or failed UNAVAILABLE naming itself.
  // Returns how many failed; `killed` served none of the ones that succeeded.
  int CheckOutcomes(int max_tokens, const std::string& killed) {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    int failed = 0;
    for (size_t i = 0; i < out_.size(); ++i) {
      const Outcome& o = out_[i];
      const std::string id = absl::StrCat("K", i);
      if (o.status.ok()) {
        EXPECT_EQ(o.tokens, Expected(kPrompt, max_tokens, 700 + i)) << id;
        EXPECT_NE(o.timeline.decode_worker(), killed) << id;
        EXPECT_NE(o.timeline.prefill_worker(), killed) << id;
      } else {
        failed++;
        EXPECT_EQ(o.status.error_code(), grpc::StatusCode::UNAVAILABLE)
            << id << ": " << o.status.error_message();
        EXPECT_THAT(o.status.error_message(), HasSubstr(id));
      }
    }
    return failed;
  }

  // The router dropped `killed` (once) and the survivors serve verified requests.
  void ExpectDroppedAndSurvivorsServe(const std::string& killed) {
    EXPECT_TRUE(WaitFor([&] { return !Registered(killed); }, absl::Seconds(15)))
        << "the router still lists " << killed;
    for (int i = 0; i < 4; ++i) {
      const uint64_t seed = 900 + i;
      Outcome after = client_->Generate(
          Client::Request(absl::StrCat("after-", i), 50, 10, seed), nullptr, absl::Seconds(30));
      ASSERT_TRUE(after.status.ok()) << after.status.error_message();
      EXPECT_EQ(after.tokens, Expected(50, 10, seed));
      EXPECT_NE(after.timeline.decode_worker(), killed);
      EXPECT_NE(after.timeline.prefill_worker(), killed);
    }
    absl::StatusOr<v1::ClusterStatus> s = client_->Status();
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->workers_size(), std::size(kPrefill) + std::size(kDecode) - 1);
    EXPECT_EQ(s->dropped_workers(), 1u);
  }

  // The survivors once idle: nothing running, nothing reserved, and every block free or
  // quarantined (none held for a request); the last status seen, or nullopt on timeout.
  std::optional<v1::ClusterStatus> AwaitIdle(absl::Duration timeout) {
    std::optional<v1::ClusterStatus> idle;
    WaitFor(
        [&] {
          absl::StatusOr<v1::ClusterStatus> s = client_->Status();
          if (!s.ok() || s->running_requests() != 0 || s->waiting_requests() != 0) return false;
          for (const v1::WorkerStatus& w : s->workers()) {
            const v1::WorkerCapacity& c = w.capacity();
            if (!w.live() || w.reserved_blocks() != 0 ||
                c.free_blocks() + c.quarantined_blocks() != c.total_blocks()) {
              return false;
            }
          }
          idle = *s;
          return true;
        },
        timeout);
    return idle;
  }

  // Every pool of every survivor entirely free, within `timeout`.
  void ExpectAllFreeWithin(absl::Duration timeout) {
    WaitFor(
        [&] {
          std::optional<v1::ClusterStatus> s = AwaitIdle(absl::Seconds(1));
          if (!s.has_value()) return false;
          for (const v1::WorkerStatus& w : s->workers()) {
            if (w.capacity().free_blocks() != w.capacity().total_blocks()) return false;
          }
          return true;
        },
        timeout);
    ExpectAllBlocksFree(*client_);
  }

  void TearDown() override {
    for (std::thread& t : threads_) t.join();  // a failed ASSERT left them running
    threads_.clear();
    NetnsHostsFixture::TearDown();
  }

  std::map<std::string, std::string> num_blocks_;  // of one worker, instead of 128
  std::unique_ptr<Client> client_;
  std::vector<Outcome> out_;
  std::vector<std::thread> threads_;
  std::atomic<int> started_{0};
};

TEST_F(NetnsKillTest, DecodeWorkerKilledMidRunAcrossNamespaces) {
  // 300 tokens at >= 3 ms a step: about a second of decoding per request.
  ASSERT_NO_FATAL_FAILURE(StartCluster({}, {}, {"--min-step-us", "3000"}));
  StartLoad(8, 300);
  ASSERT_TRUE(WaitFor([&] { return started_ == 8; }, absl::Seconds(30)));
  KillChild("decode-1");  // on h2, fed by prefill-0 on h1 and prefill-1 on h2
  const int failed = CheckOutcomes(300, "decode-1");
  EXPECT_GT(failed, 0);  // the requests decode-1 held
  EXPECT_LT(failed, 8);  // the others finished on decode-0 and decode-2
  ExpectDroppedAndSurvivorsServe("decode-1");
  // The dead reader's requests were released on their prefill workers: nothing is left.
  ExpectAllFreeWithin(absl::Seconds(15));
}

// The decode blocks the dead writer had been granted on other hosts: a pid means nothing there
// (docs/cluster.md, "Fenced KV"), so they stay quarantined (counted apart, never handed out)
// until the fence lease, short here, ends. decode-0, on prefill-0's own host, is left out of
// placement by a smaller pool (most free blocks first), so that every request prefill-0 holds has
// its blocks on another host; the same-host case (the pid is gone: freed at once) is
// FaultTest.DecodeBlocksOfRequestsLostWithPrefillWorkerAreFreed.
TEST_F(NetnsKillTest, PrefillWorkerKilledMidRunAcrossNamespaces) {
  constexpr int kLeaseS = 8;  // longer than a batch (1.5 s) plus the transfer timeout (2 s)
  num_blocks_["decode-0"] = "64";
  // Batches of two requests in flight for 1.5 s each.
  ASSERT_NO_FATAL_FAILURE(
      StartCluster({"--max-batch-size", "2"},
                   {"--min-batch-us", "1500000", "--transfer-timeout-s", "2"},
                   {"--fence-lease-s", absl::StrCat(kLeaseS)}));
  StartLoad(8, 20);
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client_->Status();
        if (!s.ok()) return false;
        for (const v1::WorkerStatus& w : s->workers()) {
          if (w.worker_id() == "prefill-0" && w.capacity().running_requests() > 0) return true;
        }
        return false;
      },
      absl::Seconds(30)));
  KillChild("prefill-0");  // on h1; the decode blocks of its batches are on h2 and h3
  // The router gave up on prefill-0's items: their blocks are quarantined (the lease has not
  // ended: it is longer than this wait).
  uint32_t quarantined = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<v1::ClusterStatus> s = client_->Status();
        quarantined = 0;
        for (int i = 0; s.ok() && i < s->workers_size(); ++i) {
          quarantined += s->workers(i).capacity().quarantined_blocks();
        }
        return quarantined > 0;
      },
      absl::Seconds(kLeaseS / 2)))
      << "no block quarantined on decode-1 or decode-2";
  std::printf("blocks quarantined on the other hosts: %u\n", quarantined);
  const int failed = CheckOutcomes(20, "prefill-0");
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 8);
  EXPECT_TRUE(AwaitIdle(absl::Seconds(15)).has_value())
      << "survivors never idle with every block free or quarantined";
  ExpectDroppedAndSurvivorsServe("prefill-0");
  ExpectAllFreeWithin(absl::Seconds(kLeaseS + 10));  // the lease ended the quarantines
}

}  // namespace
}  // namespace pdserve::e2e
