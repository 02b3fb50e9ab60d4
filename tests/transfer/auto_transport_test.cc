// `auto`: local to a peer that names this host, ucx to one that names another, per peer; a peer
// that names this host but whose pool cannot be mapped goes over ucx and is counted, and a
// descriptor from another process is checked before either engine sees it.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/transfer/test_pattern.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {
namespace {

using ::testing::HasSubstr;

struct Side {
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> transport;
};

Side Make(const std::string& agent, const std::string& host, uint64_t seed) {
  setenv("UCX_TLS", "tcp", 1);  // the network engine, whatever this host offers
  TransportOptions o;
  o.backend = "auto";
  o.agent_name = agent;
  o.host_id = host;
  Side s;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(o, *PresetConfig("tiny"), 16, KvLayout::kLayerMajor);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return s;
  s.cache = std::move(*cache);
  testing::FillPattern(s.cache->base(), s.cache->geometry().region_bytes(), seed);
  absl::StatusOr<std::unique_ptr<KvTransport>> t = MakeKvTransport(o);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return s;
  s.transport = std::move(*t);
  EXPECT_TRUE(s.transport->RegisterPool(*s.cache).ok());
  return s;
}

bool SameBlock(const Side& a, BlockId ab, const Side& b, BlockId bb) {
  const KvGeometry& g = a.cache->geometry();
  for (int f = 0; f < g.fragments_per_block(); ++f) {
    if (std::memcmp(a.cache->base() + g.FragmentOffset(ab, f),
                    b.cache->base() + g.FragmentOffset(bb, f),
                    static_cast<size_t>(g.transfer_fragment_bytes())) != 0) {
      return false;
    }
  }
  return true;
}

// Sends block `src` of `from` into block `dst` of `to` and waits for its notification there.
void SendAndCheck(Side& from, PeerId peer, BlockId src, Side& to, BlockId dst,
                  const std::string& note) {
  const BlockCopy copies[] = {{src, dst}};
  absl::StatusOr<TransferId> id = from.transport->Submit(peer, copies, note);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(from.transport->Wait(*id, absl::Seconds(10)).ok());
  ASSERT_TRUE(to.transport->WaitForNotification(note, absl::Seconds(10)).ok()) << note;
  EXPECT_TRUE(SameBlock(from, src, to, dst)) << note;
  absl::StatusOr<TransferStats> stats = from.transport->Stats(*id);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->bytes, static_cast<uint64_t>(from.cache->geometry().block_bytes()));
}

TEST(AutoTransportTest, LocalToThePeerOnThisHostUcxToThePeerOnAnother) {
  Side decode = Make("decode-a", "host-a", 1);
  Side near = Make("prefill-a", "host-a", 2);
  Side far = Make("prefill-b", "host-b", 3);
  const std::string descriptor = *decode.transport->ExportDescriptor();
  absl::StatusOr<PeerId> p_near = near.transport->LoadPeer(descriptor);
  absl::StatusOr<PeerId> p_far = far.transport->LoadPeer(descriptor);
  ASSERT_TRUE(p_near.ok()) << p_near.status();
  ASSERT_TRUE(p_far.ok()) << p_far.status();
  EXPECT_EQ(near.transport->PeerBackend(*p_near), "auto/local");
  EXPECT_EQ(far.transport->PeerBackend(*p_far), "auto/ucx");
  SendAndCheck(near, *p_near, 3, decode, 5, "req-near");
  SendAndCheck(far, *p_far, 7, decode, 9, "req-far");
  // Each notification once, whichever engine brought it, and counted once.
  EXPECT_EQ(decode.transport->WaitForNotification("req-near", absl::ZeroDuration()).code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(decode.transport->counters().notifications_received, 2u);
  const TransportCounters n = near.transport->counters();
  EXPECT_THAT(n.transports, HasSubstr("local for 1 peer(s)"));
  EXPECT_THAT(n.transports, HasSubstr("ucx for 0 peer(s)"));
  EXPECT_EQ(n.same_host_network_peers, 0u);
  EXPECT_THAT(far.transport->counters().transports, HasSubstr("ucx for 1 peer(s)"));
  // A removed peer's id is gone for Submit and PeerBackend alike.
  ASSERT_TRUE(near.transport->RemovePeer(*p_near).ok());
  const BlockCopy copies[] = {{1, 1}};
  EXPECT_EQ(near.transport->Submit(*p_near, copies, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(AutoTransportTest, APeerOnThisHostWhosePoolCannotBeMappedGoesOverUcxAndIsCounted) {
  Side decode = Make("decode-a", "host-a", 4);
  Side prefill = Make("prefill-a", "host-a", 5);
  // What a worker in a container with its own /dev/shm would send: its pool is not in ours.
  nlohmann::json outer = nlohmann::json::parse(*decode.transport->ExportDescriptor());
  nlohmann::json local = nlohmann::json::parse(outer["fields"]["local"].get<std::string>());
  local["fields"]["shm_name"] = "/pdserve-auto-test-not-here";
  outer["fields"]["local"] = local.dump();
  absl::StatusOr<PeerId> peer = prefill.transport->LoadPeer(outer.dump());
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(prefill.transport->PeerBackend(*peer), "auto/ucx");
  EXPECT_EQ(prefill.transport->counters().same_host_network_peers, 1u);
  SendAndCheck(prefill, *peer, 2, decode, 4, "req-unmapped");
}

TEST(AutoTransportTest, ADescriptorIsCheckedBeforeEitherEngineSeesIt) {
  Side decode = Make("decode-a", "host-a", 6);
  Side prefill = Make("prefill-a", "host-a", 7);
  const nlohmann::json good = nlohmann::json::parse(*decode.transport->ExportDescriptor());
  auto load = [&](const nlohmann::json& d) { return prefill.transport->LoadPeer(d.dump()); };
  nlohmann::json long_host = good;
  long_host["fields"]["host"] = std::string(300, 'h');
  EXPECT_EQ(load(long_host).status().code(), absl::StatusCode::kInvalidArgument);
  nlohmann::json no_ucx = good;
  no_ucx["fields"]["host"] = "host-b";
  no_ucx["fields"].erase("ucx");
  EXPECT_EQ(load(no_ucx).status().code(), absl::StatusCode::kInvalidArgument);
  nlohmann::json bad_local = good;
  bad_local["fields"]["local"] = "{not json";
  EXPECT_EQ(load(bad_local).status().code(), absl::StatusCode::kInvalidArgument);
  nlohmann::json other_backend = good;
  other_backend["backend"] = "local";
  absl::StatusOr<PeerId> refused = load(other_backend);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("backend 'local'"));
  EXPECT_EQ(prefill.transport->counters().peers_loaded, 0u);
}

}  // namespace
}  // namespace pdserve::transfer
