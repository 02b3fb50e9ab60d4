// An idle decode engine's first step on the thread that starts the request (Start's
// `step_here`, RunReservedStep): the decode worker's receive path takes it so that the first
// token does not wait for the loop thread to wake (issue 15).
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/synthetic_model.h"
#include "decode_worker/decode_engine.h"
#include "gtest/gtest.h"
#include "kvcache/cpu_attention.h"
#include "tests/decode_worker/drain_stream.h"

namespace pdserve::decode {
namespace {

ModelConfig Tiny() { return *PresetConfig("tiny"); }

std::unique_ptr<KvCache> Pool(uint32_t blocks) {
  return *KvCache::CreateInHostMemory(Tiny(), blocks, KvLayout::kLayerMajor);
}

DecodeEngineOptions Inline(int64_t kv_bytes = int64_t{1} << 20) {
  DecodeEngineOptions o;
  o.inline_step_kv_bytes = kv_bytes;
  return o;
}

struct Started {
  std::shared_ptr<DecodeStream> stream;
  bool step_here = false;
};

// Allocates, writes the prompt's KV as a transfer would, and starts the request.
Started StartRequest(DecodeEngine& engine, const KvCache& cache, const std::string& id,
                     const std::vector<int32_t>& prompt, int max_tokens, uint64_t seed) {
  absl::StatusOr<std::vector<BlockId>> blocks =
      engine.Allocate(id, static_cast<int>(prompt.size()), max_tokens);
  EXPECT_TRUE(blocks.ok()) << blocks.status();
  EXPECT_TRUE(WriteKv(cache, *blocks, prompt, 0).ok());
  Started out;
  absl::StatusOr<std::shared_ptr<DecodeStream>> stream =
      engine.Start(id, prompt, max_tokens, seed, std::nullopt, nullptr, &out.step_here);
  EXPECT_TRUE(stream.ok()) << stream.status();
  out.stream = *stream;
  return out;
}

TEST(DecodeInlineStepTest, AReservedFirstStepRunsOnTheCallersThreadAndNoneOther) {
  auto cache = Pool(64);
  DecodeEngine engine(*cache, Inline());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(3, 21, Tiny().vocab_size);
  const std::vector<int32_t> expected = model::ReferenceGenerate(prompt, 12, Tiny(), 3);
  Started r = StartRequest(engine, *cache, "r1", prompt, 12, 3);
  ASSERT_TRUE(r.step_here) << "an idle engine and 5 KiB of prompt KV: the step is the caller's";
  // The loop thread leaves the reserved step alone, however long the caller takes.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(r.stream->Next(absl::ZeroDuration()).tokens.empty())
      << "the loop thread took a step reserved for the caller";
  engine.RunReservedStep();
  // The first token is there when the call returns: it was made on this thread (the loop
  // thread, woken as the step ended, may have made more meanwhile: TSan slows this one down).
  DecodeStream::Chunk first = r.stream->Next(absl::ZeroDuration());
  ASSERT_GE(first.tokens.size(), 1u);
  EXPECT_EQ(first.tokens[0], expected[0]);
  // The loop thread takes the following steps.
  std::vector<int32_t> tokens = first.tokens;
  absl::Status status = first.status;
  if (!first.finished) {
    auto [rest, end] = Drain(*r.stream);
    tokens.insert(tokens.end(), rest.begin(), rest.end());
    status = end;
  }
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(tokens, expected);
}

TEST(DecodeInlineStepTest, NoStepIsReservedWhileTheEngineRunsOthersOrForACostlyStep) {
  auto cache = Pool(128);
  DecodeEngineOptions busy = Inline();
  busy.inline_step_max = absl::Milliseconds(5);
  busy.min_step = absl::Milliseconds(2);  // steps long enough to start another one meanwhile
  DecodeEngine engine(*cache, busy);
  const std::vector<int32_t> prompt = model::SyntheticPrompt(5, 16, Tiny().vocab_size);
  Started long_running = StartRequest(engine, *cache, "long", prompt, 200, 5);
  ASSERT_TRUE(long_running.step_here);
  engine.RunReservedStep();
  ASSERT_FALSE(long_running.stream->Next(absl::Seconds(30)).tokens.empty());
  Started second = StartRequest(engine, *cache, "second", prompt, 4, 6);
  EXPECT_FALSE(second.step_here) << "a running batch: the loop thread takes the join";
  auto [tokens, status] = Drain(*second.stream);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(tokens, model::ReferenceGenerate(prompt, 4, Tiny(), 6));
  ASSERT_TRUE(engine.Release("long", absl::CancelledError("test")).ok());

  // Idle engines, but a step over the limits: more prompt KV than allowed (16 tokens of tiny
  // are 4 KiB), a step lasting longer than allowed, or the option off.
  DecodeEngineOptions slow = Inline();
  slow.min_step = absl::Milliseconds(1);
  for (const DecodeEngineOptions& o : {Inline(1024), slow, DecodeEngineOptions{}}) {
    auto pool = Pool(64);
    DecodeEngine idle(*pool, o);
    Started s = StartRequest(idle, *pool, "r", prompt, 3, 7);
    EXPECT_FALSE(s.step_here);
    auto [t, st] = Drain(*s.stream);
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_EQ(t, model::ReferenceGenerate(prompt, 3, Tiny(), 7));
  }
}

TEST(DecodeInlineStepTest, AnEngineStoppingWhileAReservedStepIsPendingEndsTheRequest) {
  auto cache = Pool(64);
  auto engine = std::make_unique<DecodeEngine>(*cache, Inline());
  const std::vector<int32_t> prompt = model::SyntheticPrompt(9, 8, Tiny().vocab_size);
  Started r = StartRequest(*engine, *cache, "r", prompt, 4, 9);
  ASSERT_TRUE(r.step_here);
  // The destructor waits for the reserved step; the caller (the receive path) runs it late,
  // after the stop began: it takes nothing, and the destructor ends the request.
  DecodeEngine* raw = engine.get();
  std::thread caller([raw] {
    absl::SleepFor(absl::Milliseconds(50));
    raw->RunReservedStep();
  });
  engine.reset();
  caller.join();
  auto [tokens, status] = Drain(*r.stream);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
}

}  // namespace
}  // namespace pdserve::decode
