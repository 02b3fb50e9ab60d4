// The decode engine's checks of carried checksums (decode_engine.h): the full read of a joining
// prompt, the background check of a claimed prompt checksum, and the final full read of a
// finished request, on the loop thread or the verifier thread.

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "decode_worker/decode_engine.h"

namespace pdserve::decode {

bool DecodeEngine::VerifyJoined(size_t index) {
  Running& r = running_[index];
  const int64_t t0 = MonotonicMicros();
  absl::StatusOr<uint64_t> sum =
      KvChecksum(cache_, r.table, 0, r.seq_len, options_.attention.threads);
  r.accounting.verify_us += MonotonicMicros() - t0;
  if (!sum.ok()) {
    FinishRunning(index, sum.status());
    return false;
  }
  r.checksum = *sum;
  r.verified = true;
  return true;
}

absl::Status DecodeEngine::VerifyFinished(const Running& r) {
  absl::StatusOr<uint64_t> sum =
      KvChecksum(cache_, r.table, 0, r.seq_len, options_.attention.threads);
  if (!sum.ok()) return sum.status();
  if (*sum != r.checksum) {
    return absl::DataLossError(absl::StrFormat(
        "request %s: its KV changed while it was decoding (checksum of positions [0, %d) is "
        "%016x at the end, %016x carried from the verified prompt and its own writes): a block "
        "it owned was overwritten",
        r.id, r.seq_len, *sum, r.checksum));
  }
  return absl::OkStatus();
}

void DecodeEngine::QueueJoinCheck(size_t index) {
  Running& r = running_[index];
  r.checksum = *r.claimed;
  r.verified = true;
  absl::MutexLock lock(&mu_);
  const uint64_t epoch = requests_.at(r.id).epoch;
  join_checking_.insert(epoch);
  // The prompt's blocks only: the loop thread appends the generated positions' rows behind
  // them meanwhile, which are other bytes.
  verify_queue_.push_back(JoinCheck{.id = r.id,
                                    .epoch = epoch,
                                    .blocks = r.table,
                                    .prompt_len = r.seq_len,
                                    .claimed = *r.claimed});
}

void DecodeEngine::HandOffToVerifier(size_t index) {
  absl::MutexLock lock(&mu_);
  Request& request = requests_.at(running_[index].id);
  request.state = State::kVerifying;
  running_count_--;
  verify_queue_.push_back(std::move(running_[index]));
  running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(index));
}

void DecodeEngine::VerifierLoop() {
  while (true) {
    VerifyJob job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return verifier_stop_ || !verify_queue_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (verifier_stop_) return;
      job = std::move(verify_queue_.front());
      verify_queue_.pop_front();
    }
    if (JoinCheck* check = std::get_if<JoinCheck>(&job)) {
      RunJoinCheck(*check);
    } else {
      RunFinalCheck(std::move(std::get<Running>(job)));
    }
  }
}

void DecodeEngine::RunJoinCheck(const JoinCheck& check) {
  const int64_t t0 = MonotonicMicros();
  absl::StatusOr<uint64_t> sum =
      KvChecksum(cache_, check.blocks, 0, check.prompt_len, options_.attention.threads);
  const int64_t spent = MonotonicMicros() - t0;
  absl::Status status = sum.status();
  if (sum.ok() && *sum != check.claimed) {
    status = absl::DataLossError(absl::StrFormat(
        "request %s: its prompt KV did not land as sent (checksum of positions [0, %d) is %016x "
        "in this worker's blocks, the prefill worker sent %016x)",
        check.id, check.prompt_len, *sum, check.claimed));
  }
  absl::MutexLock lock(&mu_);
  step_counters_.verify_us += static_cast<uint64_t>(spent);
  step_counters_.claimed_checks++;
  if (!status.ok()) step_counters_.claims_refuted++;
  join_checking_.erase(check.epoch);
  if (auto d = deferred_free_.find(check.epoch); d != deferred_free_.end()) {
    ReturnBlocksLocked(d->second.first, d->second.second);
    deferred_free_.erase(d);
  }
  auto it = requests_.find(check.id);
  if (it == requests_.end() || it->second.epoch != check.epoch) return;  // it ended already
  Request& r = it->second;
  r.join_verify_us += spent;
  if (status.ok()) return;
  // kVerifying (or handed over before the loop thread sees the release): its final check,
  // queued behind this one, reports it.
  r.join_check = status;
  if (r.state == State::kRunning) {
    // The loop thread ends it before its next step, with this error.
    r.release_requested = true;
    r.release_reason = status;
    releases_pending_ = true;
  }
}

void DecodeEngine::RunFinalCheck(Running r) {
  absl::Status join_check;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = requests_.find(r.id); it != requests_.end()) {
      join_check = it->second.join_check;
      r.accounting.verify_us += it->second.join_verify_us;
    }
  }
  const int64_t t0 = MonotonicMicros();
  absl::Status status = join_check.ok() ? VerifyFinished(r) : join_check;
  const int64_t spent = MonotonicMicros() - t0;
  r.accounting.verify_us += spent;
  {
    absl::MutexLock lock(&mu_);
    step_counters_.verify_us += static_cast<uint64_t>(spent);
    FreeLocked(r.id);
    if (status.ok()) finished_++;
  }
  // Blocks are free before the stream says so, as in FinishRunning.
  r.stream->SetAccounting(r.accounting);
  r.stream->Finish(std::move(status), WallMicros());
}

}  // namespace pdserve::decode
