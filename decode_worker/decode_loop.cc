// The decode engine's batch loop (decode_engine.h): which requests join the running batch,
// one step of the batch, and what its end means for each request. Admission, reservations and
// release are in decode_engine.cc.

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/logging.h"
#include "decode_worker/decode_engine.h"

namespace pdserve::decode {

bool DecodeEngine::TakeWorkLocked() {
  if (stop_) return false;
  if (releases_pending_) {
    releases_pending_ = false;
    for (size_t i = 0; i < running_.size();) {
      Request& r = requests_.at(running_[i].id);
      if (!r.release_requested) {
        ++i;
        continue;
      }
      running_[i].stream->Finish(r.release_reason, WallMicros());
      FreeLocked(running_[i].id);
      running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  for (const std::string& id : joins_) {
    Request& r = requests_.at(id);
    r.state = State::kRunning;
    running_count_++;
    running_.push_back(Running{.id = id,
                               .stream = r.stream,
                               .table = r.blocks,
                               .last_token = r.prompt.back(),
                               .seq_len = r.prompt_len,
                               .generated = 0,
                               .max_tokens = r.max_tokens,
                               .seed = r.seed,
                               .pending_write = false,
                               .claimed = r.claimed_checksum,
                               .accounting = {.join_us = WallMicros()}});
    r.prompt.clear();
    r.prompt.shrink_to_fit();
  }
  joins_.clear();
  return true;
}

void DecodeEngine::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stop_ || (!stepping_ && (releases_pending_ || !joins_.empty() || has_running_));
      };
      mu_.Await(absl::Condition(&has_work));
      if (!TakeWorkLocked()) return;
      stepping_ = true;
    }
    StepOnce();
  }
}

void DecodeEngine::RunReservedStep() {
  {
    absl::MutexLock lock(&mu_);
    if (!TakeWorkLocked()) {
      stepping_ = false;  // stopping: the destructor waits for this
      return;
    }
  }
  StepOnce();
}

bool DecodeEngine::CheapFirstStepLocked(const Request& r) const {
  if (options_.inline_step_kv_bytes <= 0 || options_.device != nullptr) return false;
  if (int64_t{r.prompt_len} * cache_.config().KvBytesPerToken() > options_.inline_step_kv_bytes) {
    return false;
  }
  absl::Duration lasts = options_.min_step;
  if (options_.roofline.has_value()) {
    const int len = r.prompt_len;
    lasts = std::max(lasts, absl::Seconds(options_.roofline->DecodeStepSeconds({&len, 1})));
  }
  return lasts <= options_.inline_step_max;
}

void DecodeEngine::StepOnce() {
  if (options_.on_join) {
    for (size_t i = running_.size(); i-- > 0;) {
      if (!running_[i].joined) continue;
      running_[i].joined = false;
      if (absl::Status staged = options_.on_join(running_[i].table); !staged.ok()) {
        FinishRunning(i, absl::InternalError(absl::StrCat(
                             "request ", running_[i].id, ": staging its prompt KV to the device: ",
                             staged.message())));
      }
    }
  }
  if (!running_.empty()) Step();
  absl::MutexLock lock(&mu_);
  stepping_ = false;
  has_running_ = !running_.empty();
}

void DecodeEngine::FinishRunning(size_t index, absl::Status status) {
  Running& r = running_[index];
  {
    absl::MutexLock lock(&mu_);
    if (auto it = requests_.find(r.id); it != requests_.end()) {
      r.accounting.verify_us += it->second.join_verify_us;
    }
    FreeLocked(r.id);
    if (status.ok()) finished_++;
  }
  // Blocks are free before the stream says so: a caller that saw the end can reuse them.
  r.stream->SetAccounting(r.accounting);
  r.stream->Finish(std::move(status), WallMicros());
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
}

void DecodeEngine::Step() {
  // A colocated worker's device runs this step or a prefill batch, never both at once.
  std::optional<SharedDevice::Turn> turn;
  if (options_.device) turn.emplace(*options_.device);
  const absl::Time start = absl::Now();
  const ModelConfig& config = cache_.config();
  const bool carry = options_.carry_checksum && !options_.decode_step;
  int64_t verify_us = 0;
  // Joined since the last step: read their prompt KV in full once.
  if (carry) {
    for (size_t i = running_.size(); i-- > 0;) {
      if (running_[i].verified) continue;
      if (running_[i].claimed.has_value()) {
        QueueJoinCheck(i);
        continue;
      }
      const int64_t before = running_[i].accounting.verify_us;
      if (VerifyJoined(i)) verify_us += running_[i].accounting.verify_us - before;
    }
  }
  // KV of the tokens produced last step, growing block tables from the reservations.
  for (size_t i = 0; i < running_.size();) {
    Running& r = running_[i];
    if (!r.pending_write) {
      ++i;
      continue;
    }
    if (r.seq_len / config.block_size >= static_cast<int>(r.table.size())) {
      absl::StatusOr<std::vector<BlockId>> block;
      {
        absl::MutexLock lock(&mu_);
        block = cache_.allocator().Allocate(1);
        if (block.ok()) {
          requests_.at(r.id).blocks.push_back((*block)[0]);
          unallocated_reserved_--;
        }
      }
      if (!block.ok()) {
        FinishRunning(i, absl::InternalError(absl::StrCat("request ", r.id,
                                                          ": no block within its reservation: ",
                                                          block.status().ToString())));
        continue;
      }
      r.table.push_back((*block)[0]);
    }
    absl::Status written =
        options_.decode_step
            ? absl::OkStatus()  // decode_step writes it on the device
            : WriteKv(cache_, r.table, std::span<const int32_t>(&r.last_token, 1), r.seq_len, 1);
    if (written.ok() && carry) {
      // Read back what was written: the carried sum covers the bytes in the cache.
      const int64_t t0 = MonotonicMicros();
      absl::StatusOr<uint64_t> added = KvChecksum(cache_, r.table, r.seq_len, r.seq_len + 1);
      r.accounting.verify_us += MonotonicMicros() - t0;
      if (added.ok()) r.checksum += *added;
      written = added.status();
    }
    if (!written.ok()) {
      FinishRunning(i, written);
      continue;
    }
    r.seq_len++;
    r.pending_write = false;
    ++i;
  }
  if (running_.empty()) return;

  batch_.clear();
  for (const Running& r : running_) {
    batch_.push_back(DecodeSequence{.block_table = r.table,
                                    .last_token = r.last_token,
                                    .seq_len = r.seq_len,
                                    .seed = r.seed,
                                    .carried_checksum = carry ? std::optional<uint64_t>(r.checksum)
                                                              : std::nullopt});
  }
  absl::StatusOr<std::vector<DecodeResult>> results =
      options_.decode_step ? options_.decode_step(batch_)
                           : DecodeAttention(cache_, batch_, options_.attention);
  if (!results.ok()) {
    while (!running_.empty()) FinishRunning(running_.size() - 1, results.status());
    return;
  }
  const absl::Duration work = absl::Now() - start;
  absl::Duration step_time = options_.min_step;
  absl::Duration modelled = absl::ZeroDuration();
  if (options_.roofline.has_value()) {
    std::vector<int> seq_lens;
    seq_lens.reserve(running_.size());
    for (const Running& r : running_) seq_lens.push_back(r.seq_len);
    modelled = absl::Seconds(options_.roofline->DecodeStepSeconds(seq_lens));
    step_time = std::max(step_time, modelled);
  }
  {
    absl::MutexLock lock(&mu_);
    DecodeStepCounters& c = step_counters_;
    c.steps++;
    c.work_us += static_cast<uint64_t>(absl::ToInt64Microseconds(work));
    c.modelled_us += static_cast<uint64_t>(absl::ToInt64Microseconds(modelled));
    c.verify_us += static_cast<uint64_t>(verify_us);
    if (modelled > absl::ZeroDuration() && work > modelled) {
      c.overrun_steps++;
      c.overrun_us += static_cast<uint64_t>(absl::ToInt64Microseconds(work - modelled));
    }
  }
  // Simulated device time: the step lasts as long as the modelled GPU would take.
  if (absl::Duration left = step_time - (absl::Now() - start); left > absl::ZeroDuration()) {
    absl::SleepFor(left);
  }
  const int64_t now_us = WallMicros();
  for (size_t i = 0; i < running_.size(); ++i) {
    Running& r = running_[i];
    r.last_token = (*results)[i].token;
    if (r.generated == 0) {
      r.accounting.modelled_first_step_us = absl::ToInt64Microseconds(modelled);
    }
    r.generated++;
    r.pending_write = true;
    r.stream->Push(r.last_token, now_us);
  }
  for (size_t i = running_.size(); i-- > 0;) {
    if (running_[i].generated < running_[i].max_tokens) continue;
    if (carry) {
      HandOffToVerifier(i);
    } else {
      FinishRunning(i, absl::OkStatus());
    }
  }
}

}  // namespace pdserve::decode
