// The transfer front (transport_front.h) does the bookkeeping for any engine: these run it over
// a recording engine written here (the unit under test is the front; every real backend's own
// tests run through it too) and check that a bad descriptor, batch or peer never reaches the
// engine, that the descriptor carries the common part plus the engine's fields, and that
// handles, waits, notifications and counters are the front's.
#include "transfer/transport_front.h"

#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace pdserve::transfer {
namespace {

using ::testing::HasSubstr;

struct Calls {
  std::atomic<int> registered{0}, connected{0}, disconnected{0}, posted{0};
  uint64_t last_bytes = 0;
  size_t last_ops = 0;
};

// Completes every batch inside Post and delivers its notification to its own inbox (a transport
// that is its own peer), so that the front's waits and inbox are all there is to test.
class RecordingEngine final : public TransferEngine {
 public:
  RecordingEngine(const EngineContext& context, Calls* calls) : context_(context), calls_(calls) {}
  absl::Status Register(const KvCache&, PoolDescriptor& d) override {
    ++calls_->registered;
    d.fields["engine"] = "recording";
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<EnginePeer>> Connect(const PoolDescriptor& d,
                                                      const KvGeometry&) override {
    ++calls_->connected;
    if (d.fields.count("engine") == 0) return absl::InvalidArgumentError("no engine field");
    return std::make_shared<EnginePeer>();
  }
  void Disconnect(EnginePeer&) override { ++calls_->disconnected; }
  absl::StatusOr<TransferId> Post(const std::shared_ptr<EnginePeer>&,
                                  const PlannedBatch& batch) override {
    ++calls_->posted;
    calls_->last_bytes = batch.bytes;
    calls_->last_ops = batch.ops.size();
    const TransferId id = context_.table.AddFinished(
        batch.bytes, static_cast<uint32_t>(batch.ops.size()), 0, absl::OkStatus());
    if (!batch.notification.empty()) {
      context_.inbox.Push(Notification{.sender = "self", .message = batch.notification});
    }
    return id;
  }
  void AddCounters(TransportCounters& c) const override { c.transports = "recorded"; }

 private:
  const EngineContext context_;
  Calls* calls_;
};

struct Fixture {
  Calls calls;
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> t;
};

std::unique_ptr<Fixture> Make(uint32_t blocks = 8, KvLayout layout = KvLayout::kBlockMajor) {
  auto f = std::make_unique<Fixture>();
  TransportOptions o;
  o.backend = "inproc";  // a name from the backend table, for capabilities()
  o.agent_name = "front-test";
  f->cache = *KvCache::CreateInHostMemory(*PresetConfig("tiny"), blocks, layout);
  Calls* calls = &f->calls;
  f->t = *MakeFrontTransport(o, "inproc", [calls](const EngineContext& c) {
    return absl::StatusOr<std::unique_ptr<TransferEngine>>(
        std::make_unique<RecordingEngine>(c, calls));
  });
  return f;
}

TEST(TransportFrontTest, TheDescriptorIsTheCommonPartPlusTheEnginesFields) {
  auto f = Make();
  EXPECT_EQ(f->t->ExportDescriptor().status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(f->t->RegisterPool(*f->cache).ok());
  EXPECT_EQ(f->t->RegisterPool(*f->cache).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f->calls.registered, 1);
  absl::StatusOr<PoolDescriptor> d = PoolDescriptor::Parse(*f->t->ExportDescriptor());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->backend, "inproc");
  EXPECT_EQ(d->agent, "front-test");
  EXPECT_EQ(d->num_blocks, 8u);
  EXPECT_EQ(d->fields.at("engine"), "recording");
  EXPECT_EQ(f->t->counters().registrations, 1u);
}

TEST(TransportFrontTest, BadDescriptorsNeverReachTheEngine) {
  auto f = Make();
  auto other = Make(8, KvLayout::kLayerMajor);
  ASSERT_TRUE(other->t->RegisterPool(*other->cache).ok());
  EXPECT_EQ(f->t->LoadPeer(*other->t->ExportDescriptor()).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "no pool registered yet";
  ASSERT_TRUE(f->t->RegisterPool(*f->cache).ok());
  EXPECT_EQ(f->t->LoadPeer("not json").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PeerId> mismatch = f->t->LoadPeer(*other->t->ExportDescriptor());
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->calls.connected, 0);
  ASSERT_TRUE(f->t->LoadPeer(*f->t->ExportDescriptor()).ok());
  EXPECT_EQ(f->calls.connected, 1);
  EXPECT_EQ(f->t->counters().peers_loaded, 1u);
}

TEST(TransportFrontTest, BadBatchesAndUnknownPeersNeverReachTheEngine) {
  auto f = Make();
  ASSERT_TRUE(f->t->RegisterPool(*f->cache).ok());
  const PeerId peer = *f->t->LoadPeer(*f->t->ExportDescriptor());
  const BlockCopy outside[] = {{0, 8}};
  const BlockCopy twice[] = {{0, 1}, {2, 1}};
  const BlockCopy fine[] = {{0, 1}, {1, 2}, {5, 6}};
  EXPECT_EQ(f->t->Submit(peer, outside, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->t->Submit(peer, twice, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->t->Submit(peer, {}, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->t->Submit(peer, fine, std::string(kMaxNotificationBytes + 1, 'n')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->t->Submit(peer + 1, fine, "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f->calls.posted, 0);
  // A good one reaches it planned: blocks 0-1 -> 1-2 coalesce into one run (block-major).
  absl::StatusOr<TransferId> id = f->t->Submit(peer, fine, "rq@1");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(f->calls.posted, 1);
  EXPECT_EQ(f->calls.last_ops, 2u);
  EXPECT_EQ(f->calls.last_bytes, 3 * static_cast<uint64_t>(f->cache->geometry().block_bytes()));
  EXPECT_TRUE(f->t->Wait(*id, absl::Seconds(1)).ok());
  EXPECT_EQ(f->t->Stats(*id)->bytes, f->calls.last_bytes);
  EXPECT_EQ(f->t->Poll(*id).status().code(), absl::StatusCode::kNotFound) << "reaped by Wait";
  EXPECT_TRUE(f->t->WaitForNotification("rq@1", absl::ZeroDuration()).ok());
  const TransportCounters c = f->t->counters();
  EXPECT_EQ(c.batches_completed, 1u);
  EXPECT_EQ(c.notifications_received, 1u);
  EXPECT_EQ(c.transports, "recorded");
}

TEST(TransportFrontTest, ARemovedPeerIsDisconnectedOnceAndTakesNoBatch) {
  auto f = Make();
  ASSERT_TRUE(f->t->RegisterPool(*f->cache).ok());
  const PeerId peer = *f->t->LoadPeer(*f->t->ExportDescriptor());
  ASSERT_TRUE(f->t->RemovePeer(peer).ok());
  EXPECT_EQ(f->t->RemovePeer(peer).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f->calls.disconnected, 1);
  const BlockCopy one[] = {{0, 0}};
  EXPECT_EQ(f->t->Submit(peer, one, "").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(f->calls.posted, 0);
}

}  // namespace
}  // namespace pdserve::transfer
