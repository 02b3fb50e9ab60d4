#include "decode_worker/decode_engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include <cstring>
#include "common/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace pdserve::decode {

DecodeStream::Chunk DecodeStream::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &DecodeStream::ReadyLocked), timeout);
  Chunk chunk;
  chunk.position = first_position_ + static_cast<int>(read_);
  chunk.tokens.assign(tokens_.begin() + static_cast<std::ptrdiff_t>(read_), tokens_.end());
  read_ = tokens_.size();
  chunk.finished = finished_;
  chunk.status = status_;
  chunk.first_token_us = first_token_us_;
  chunk.finish_us = finish_us_;
  chunk.accounting = accounting_;
  return chunk;
}

void DecodeStream::WaitForActivity(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(this, &DecodeStream::ReadyLocked), timeout);
}

void DecodeStream::SetAccounting(const DecodeAccounting& accounting) {
  absl::MutexLock lock(&mu_);
  accounting_ = accounting;
}

void DecodeStream::Push(int32_t token, int64_t now_us) {
  absl::MutexLock lock(&mu_);
  if (tokens_.empty()) first_token_us_ = now_us;
  tokens_.push_back(token);
}

void DecodeStream::Finish(absl::Status status, int64_t now_us) {
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  finished_ = true;
  status_ = std::move(status);
  finish_us_ = now_us;
}

DecodeEngine::DecodeEngine(KvCache& cache, DecodeEngineOptions options)
    : cache_(cache), options_(std::move(options)) {
  {
    absl::MutexLock lock(&mu_);
    next_epoch_ = static_cast<uint64_t>(std::max<int64_t>(1, WallMicros()));
  }
  loop_ = std::thread([this] {
    NameThisThread("decode-loop");
    Loop();
  });
  if (options_.carry_checksum) verifier_ = std::thread([this] {
    NameThisThread("decode-verify");
    VerifierLoop();
  });
}

DecodeStepCounters DecodeEngine::StepCounters() const {
  absl::MutexLock lock(&mu_);
  return step_counters_;
}

void DecodeEngine::PoisonLocked(const std::vector<BlockId>& blocks) {
  if (!options_.poison_freed_blocks || cache_.memory().kind() != MemoryKind::kHost) return;
  const KvGeometry& g = cache_.geometry();
  for (BlockId b : blocks) {
    if (b >= g.num_blocks()) continue;
    for (int f = 0; f < g.fragments_per_block(); ++f) {
      std::memset(cache_.base() + g.FragmentOffset(b, f), 0xA5,
                  static_cast<size_t>(g.transfer_fragment_bytes()));
    }
  }
}

DecodeEngine::~DecodeEngine() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  loop_.join();
  {
    // A reserved step on another thread ends before running_ goes.
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !stepping_; };
    mu_.Await(absl::Condition(&idle));
  }
  {
    absl::MutexLock lock(&mu_);
    verifier_stop_ = true;
  }
  if (verifier_.joinable()) verifier_.join();
  absl::MutexLock lock(&mu_);
  const absl::Status stopped = absl::UnavailableError("the decode worker is shutting down");
  for (VerifyJob& job : verify_queue_) {
    if (Running* r = std::get_if<Running>(&job)) r->stream->Finish(stopped, WallMicros());
  }
  verify_queue_.clear();
  join_checking_.clear();
  for (auto& [epoch, deferred] : deferred_free_) ReturnBlocksLocked(deferred.first, deferred.second);
  deferred_free_.clear();
  for (Running& r : running_) r.stream->Finish(stopped, WallMicros());
  running_.clear();
  std::vector<std::string> ids;
  for (auto& [id, request] : requests_) {
    if (request.stream) request.stream->Finish(stopped, WallMicros());
    ids.push_back(id);
  }
  for (const std::string& id : ids) FreeLocked(id);
  // The process ends with the pool: no writer can reach these blocks through it any more.
  std::vector<uint64_t> epochs;
  for (const auto& [epoch, q] : quarantine_) epochs.push_back(epoch);
  for (uint64_t epoch : epochs) LiftLocked(epoch);
}

absl::StatusOr<std::vector<BlockId>> DecodeEngine::Allocate(const std::string& request_id,
                                                            int prompt_len, int max_tokens,
                                                            uint64_t* epoch,
                                                            uint64_t wanted_epoch) {
  if (prompt_len <= 0 || max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("request ", request_id, ": prompt_len ",
                                                   prompt_len, " and max_tokens ", max_tokens,
                                                   " must be positive"));
  }
  const ModelConfig& config = cache_.config();
  // One reservation holds at most one sequence of the model: a caller cannot take the whole
  // pool with one call.
  if (int64_t{prompt_len} + max_tokens > config.max_model_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", request_id, ": prompt_len ", prompt_len, " + max_tokens ", max_tokens,
        " exceeds max_model_len ", config.max_model_len));
  }
  const auto reserved =
      static_cast<uint32_t>(config.BlocksForTokens(int64_t{prompt_len} + max_tokens));
  const auto prompt_blocks = static_cast<uint32_t>(config.BlocksForTokens(prompt_len));
  absl::MutexLock lock(&mu_);
  if (requests_.contains(request_id)) {
    return absl::AlreadyExistsError(absl::StrCat("request ", request_id, " is already allocated"));
  }
  // Epochs name reservations engine-wide (quarantine, deferred frees): a chosen one must be new.
  auto epoch_in_use = [this](uint64_t e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (quarantine_.contains(e) || join_checking_.contains(e) || deferred_free_.contains(e)) {
      return true;
    }
    return live_epochs_.contains(e);
  };
  if (wanted_epoch != 0 && epoch_in_use(wanted_epoch)) {
    return absl::AlreadyExistsError(absl::StrCat("request ", request_id, ": epoch ", wanted_epoch,
                                                 " is in use on this decode worker"));
  }
  const uint32_t free = cache_.allocator().num_free();
  const uint32_t unreserved = free > unallocated_reserved_ ? free - unallocated_reserved_ : 0;
  if (reserved > unreserved) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "request ", request_id, " needs ", reserved, " KV blocks; the decode pool has ", unreserved,
        " unreserved of ", cache_.allocator().num_blocks()));
  }
  absl::StatusOr<std::vector<BlockId>> blocks = cache_.allocator().Allocate(prompt_blocks);
  if (!blocks.ok()) return blocks.status();
  Request& r = requests_[request_id];
  r.blocks = *blocks;
  r.reserved = reserved;
  r.prompt_len = prompt_len;
  r.max_tokens = max_tokens;
  r.allocated_at = SteadyNow();
  if (wanted_epoch != 0) {
    r.epoch = wanted_epoch;
  } else {
    // Chosen epochs may lie anywhere: skip those in use (no-op while none are chosen).
    while (epoch_in_use(next_epoch_)) ++next_epoch_;
    r.epoch = next_epoch_++;
  }
  live_epochs_.insert(r.epoch);
  if (epoch != nullptr) *epoch = r.epoch;
  unallocated_reserved_ += reserved - prompt_blocks;
  reserved_total_ += reserved;
  return blocks;
}

absl::StatusOr<std::shared_ptr<DecodeStream>> DecodeEngine::Start(
    const std::string& request_id, std::vector<int32_t> prompt_tokens, int max_tokens,
    uint64_t seed, std::optional<uint64_t> claimed_checksum,
    std::shared_ptr<DecodeStream> stream, bool* step_here) {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(request_id);
  if (it == requests_.end() || it->second.state != State::kAllocated) {
    return absl::FailedPreconditionError(
        absl::StrCat("request ", request_id, " has no allocation waiting to start"));
  }
  Request& r = it->second;
  if (static_cast<int>(prompt_tokens.size()) != r.prompt_len || max_tokens != r.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", request_id, ": prompt ", prompt_tokens.size(), " / max_tokens ", max_tokens,
        " differ from the allocation's ", r.prompt_len, " / ", r.max_tokens));
  }
  // Checked here, not only by the router: a token outside the vocabulary would index past the
  // model's tables on the loop thread.
  const int32_t vocab = cache_.config().vocab_size;
  for (size_t i = 0; i < prompt_tokens.size(); ++i) {
    if (prompt_tokens[i] < 0 || prompt_tokens[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("request ", request_id, ": token ",
                                                     prompt_tokens[i], " at position ", i,
                                                     " is outside the vocabulary [0, ", vocab,
                                                     ")"));
    }
  }
  r.state = State::kJoining;
  r.prompt = std::move(prompt_tokens);
  r.seed = seed;
  r.claimed_checksum = claimed_checksum;
  r.stream = stream != nullptr ? std::move(stream) : std::make_shared<DecodeStream>(r.prompt_len);
  joins_.push_back(request_id);
  // Reserved in the same critical section as the join: the loop thread's wait condition never
  // sees the join without the reservation, so it is not woken for nothing.
  if (step_here != nullptr) {
    *step_here = !stop_ && !stepping_ && !has_running_ && !releases_pending_ &&
                 joins_.size() == 1 && CheapFirstStepLocked(r);
    if (*step_here) stepping_ = true;
  }
  return r.stream;
}

absl::Status DecodeEngine::Release(const std::string& request_id, absl::Status reason,
                                   const ReleaseFence& fence) {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(request_id);
  if (it == requests_.end() || (fence.epoch != 0 && it->second.epoch != fence.epoch)) {
    if (FenceQuarantinedLocked(request_id, fence)) return absl::OkStatus();
    if (it != requests_.end()) {
      // A late release of an older reservation must not free the current one.
      return absl::FailedPreconditionError(
          absl::StrCat("request ", request_id, ": release names epoch ", fence.epoch,
                       " but its reservation has epoch ", it->second.epoch));
    }
    return absl::NotFoundError(absl::StrCat("request ", request_id, " holds no blocks"));
  }
  Request& r = it->second;
  switch (r.state) {
    case State::kAllocated:
      if (r.kv_landed || fence.writer_fenced) {
        FreeLocked(request_id);
      } else {
        QuarantineLocked(request_id, fence);
      }
      return absl::OkStatus();
    case State::kJoining:
      joins_.erase(std::remove(joins_.begin(), joins_.end(), request_id), joins_.end());
      r.stream->Finish(reason, WallMicros());
      FreeLocked(request_id);
      return absl::OkStatus();
    case State::kRunning:
      // The loop thread owns its state; it leaves the batch before the next step.
      r.release_requested = true;
      r.release_reason = std::move(reason);
      releases_pending_ = true;
      break;
    case State::kVerifying:
      break;  // every token is out; the verifier frees its blocks when the check ends
  }
  auto gone = [this, &request_id]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !requests_.contains(request_id);
  };
  if (!mu_.AwaitWithTimeout(absl::Condition(&gone), absl::Seconds(10))) {
    return absl::DeadlineExceededError(
        absl::StrCat("request ", request_id, " did not leave the decode batch within 10 s"));
  }
  return absl::OkStatus();
}

void DecodeEngine::FreeLocked(const std::string& id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Request& r = it->second;
  if (join_checking_.contains(r.epoch)) {
    // The verifier is still reading the prompt's blocks: they are freed when that read ends.
    deferred_free_[r.epoch] = {id, std::move(r.blocks)};
  } else {
    ReturnBlocksLocked(id, r.blocks);
  }
  unallocated_reserved_ -= r.reserved - static_cast<uint32_t>(r.blocks.size());
  reserved_total_ -= r.reserved;
  if (r.state == State::kRunning) running_count_--;
  live_epochs_.erase(r.epoch);
  requests_.erase(it);
}

}  // namespace pdserve::decode
