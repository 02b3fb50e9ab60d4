#include "bench/fault_load.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/synthetic_model.h"

namespace pdserve::bench {

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kVerified: return "verified";
    case Verdict::kCleanError: return "clean-error";
    case Verdict::kWrongTokens: return "wrong-tokens";
    case Verdict::kNeverEnded: return "never-ended";
  }
  return "?";
}

FaultLoad::FaultLoad(const std::string& endpoint, const ModelConfig& model,
                     FaultLoadOptions options)
    : stub_(v1::Router::NewStub(
          grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()))),
      model_(model),
      options_(options) {}

FaultLoad::~FaultLoad() { Stop(); }

void FaultLoad::Start() {
  for (int i = 0; i < options_.streams; ++i) threads_.emplace_back([this, i] { Stream(i); });
}

void FaultLoad::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void FaultLoad::Pause() { paused_ = true; }
void FaultLoad::Resume() { paused_ = false; }

bool FaultLoad::WaitIdle(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (in_flight_ > 0) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

void FaultLoad::Watch(const std::string& worker, int64_t after_ns) {
  absl::MutexLock lock(&mu_);
  watch_[worker] = Watcher{.after_ns = after_ns};
}

int64_t FaultLoad::ServedAfter(const std::string& worker) {
  absl::MutexLock lock(&mu_);
  auto it = watch_.find(worker);
  return it == watch_.end() ? 0 : it->second.served_ns;
}

std::vector<RequestRecord> FaultLoad::Records() {
  absl::MutexLock lock(&mu_);
  return records_;
}

void FaultLoad::Stream(int index) {
  std::mt19937_64 rng(options_.seed * 1000003 + static_cast<uint64_t>(index));
  auto uniform = [&rng](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, std::max(lo, hi))(rng);
  };
  for (uint64_t n = 0; !stop_; ++n) {
    if (paused_) {
      absl::SleepFor(absl::Milliseconds(5));
      continue;
    }
    in_flight_++;
    // Re-checked after counting ourselves: Pause + WaitIdle then sees no request slip through.
    if (paused_) {
      in_flight_--;
      continue;
    }
    const int max_tokens = uniform(options_.min_tokens, options_.max_tokens);
    int prompt = uniform(options_.min_prompt, options_.max_prompt);
    if (burst_left_.fetch_sub(1) > 0) prompt = options_.burst_prompt;
    prompt = std::min(prompt, model_.max_model_len - max_tokens);
    const uint64_t seed = (options_.seed << 40) ^ (static_cast<uint64_t>(index) << 32) ^ n;
    Finish(RunOne(absl::StrCat("f", index, "-", n), prompt, max_tokens, seed));
    in_flight_--;
  }
}

RequestRecord FaultLoad::RunOne(const std::string& id, int prompt_len, int max_tokens,
                                uint64_t seed) {
  RequestRecord r;
  r.id = id;
  r.start_ns = MonotonicNanos();
  v1::GenerateRequest request;
  request.set_request_id(id);
  request.set_prompt_len(prompt_len);
  request.set_max_tokens(max_tokens);
  request.set_seed(seed);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.client_deadline));
  std::vector<int32_t> tokens;
  v1::GenerateResponse chunk;
  auto reader = stub_->Generate(&ctx, request);
  while (reader->Read(&chunk)) {
    tokens.insert(tokens.end(), chunk.tokens().begin(), chunk.tokens().end());
    if (chunk.finished()) {
      r.prefill_worker = chunk.timeline().prefill_worker();
      r.decode_worker = chunk.timeline().decode_worker();
    }
  }
  const grpc::Status status = reader->Finish();
  r.end_ns = MonotonicNanos();
  r.status_code = status.error_code();
  r.message = status.error_message();
  r.tokens = static_cast<int>(tokens.size());
  const std::vector<int32_t> expected = model::ReferenceGenerate(
      model::SyntheticPrompt(seed, prompt_len, model_.vocab_size), max_tokens, model_, seed);
  const bool prefix_ok = tokens.size() <= expected.size() &&
                         std::equal(tokens.begin(), tokens.end(), expected.begin());
  const bool client_timeout = status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
                              absl::Nanoseconds(r.end_ns - r.start_ns) >=
                                  options_.client_deadline - absl::Seconds(1);
  if (!prefix_ok || (status.ok() && tokens.size() != expected.size())) {
    r.verdict = Verdict::kWrongTokens;
  } else if (client_timeout) {
    r.verdict = Verdict::kNeverEnded;
  } else if (status.ok()) {
    r.verdict = Verdict::kVerified;
  } else {
    // An error without a message is not "clear": the client cannot tell what happened.
    r.verdict = r.message.empty() ? Verdict::kNeverEnded : Verdict::kCleanError;
  }
  return r;
}

void FaultLoad::Finish(const RequestRecord& record) {
  absl::MutexLock lock(&mu_);
  if (record.verdict == Verdict::kVerified) {
    for (const std::string* worker : {&record.prefill_worker, &record.decode_worker}) {
      auto it = watch_.find(*worker);
      if (it != watch_.end() && it->second.served_ns == 0 &&
          record.start_ns >= it->second.after_ns) {
        it->second.served_ns = record.end_ns;
      }
    }
  }
  records_.push_back(record);
}

}  // namespace pdserve::bench
