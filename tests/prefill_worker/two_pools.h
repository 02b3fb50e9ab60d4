#pragma once

// The set-up the prefill engine's unit tests share: a prefill pool and a decode pool of tiny
// blocks in host memory, each registered with its own FakeTransport (fake_transport.h), an
// engine whose peer "decode-0" is the decode pool, and a decode stream read to its end.

#include <cstdint>
#include <memory>
#include <vector>

#include "decode_worker/decode_engine.h"
#include "gtest/gtest.h"
#include "prefill_worker/prefill_engine.h"
#include "tests/prefill_worker/fake_transport.h"

namespace pdserve::prefill {

inline ModelConfig Tiny() { return *PresetConfig("tiny"); }

// Every token of a decode stream, until it finishes.
inline std::vector<int32_t> Drain(decode::DecodeStream& stream) {
  std::vector<int32_t> tokens;
  while (true) {
    auto chunk = stream.Next(absl::Seconds(30));
    tokens.insert(tokens.end(), chunk.tokens.begin(), chunk.tokens.end());
    if (chunk.finished) return tokens;
  }
}

class TwoPoolsTest : public ::testing::Test {
 protected:
  explicit TwoPoolsTest(uint32_t decode_blocks = 64) : decode_blocks_(decode_blocks) {}

  void SetUp() override {
    prefill_cache_ = *KvCache::CreateInHostMemory(Tiny(), 64, KvLayout::kLayerMajor);
    decode_cache_ = *KvCache::CreateInHostMemory(Tiny(), decode_blocks_, KvLayout::kLayerMajor);
    ASSERT_TRUE(prefill_transport_.RegisterPool(*prefill_cache_).ok());
    ASSERT_TRUE(decode_transport_.RegisterPool(*decode_cache_).ok());
  }

  // An engine on the prefill pool whose peer "decode-0" is the decode pool (`peer_blocks`: the
  // pool size its registration states; 0: none stated).
  std::unique_ptr<PrefillEngine> MakeEngine(PrefillEngineOptions options,
                                            uint32_t peer_blocks = 0) {
    auto engine = std::make_unique<PrefillEngine>(*prefill_cache_, prefill_transport_, options);
    EXPECT_TRUE(
        engine->AddPeer("decode-0", *decode_transport_.ExportDescriptor(), peer_blocks).ok());
    return engine;
  }

  const uint32_t decode_blocks_;
  std::unique_ptr<KvCache> prefill_cache_, decode_cache_;
  FakeTransport prefill_transport_, decode_transport_;
};

}  // namespace pdserve::prefill
