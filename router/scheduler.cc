#include "router/scheduler.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace pdserve::router {

Scheduler::Scheduler(const SchedulerConfig& config) : config_(config) {}

uint32_t Scheduler::BlocksForTokens(int64_t tokens) const {
  return static_cast<uint32_t>((tokens + config_.block_size - 1) / config_.block_size);
}

void Scheduler::AddPrefillWorker(const std::string& id, uint32_t total_blocks, bool in_place) {
  RemoveWorker(id);
  prefill_[id] = WorkerLoad{.id = id, .total_blocks = total_blocks, .in_place = in_place};
}

void Scheduler::AddDecodeWorker(const std::string& id, uint32_t total_blocks) {
  RemoveWorker(id);
  decode_[id] = WorkerLoad{.id = id, .total_blocks = total_blocks};
}

void Scheduler::AddColocatedWorker(const std::string& id, uint32_t total_blocks) {
  RemoveWorker(id);
  // Its prefill side reserves nothing (prompt blocks are part of the decode reservation); its
  // total is the pool's, so that CheckFits reads "the prompt fits the pool".
  prefill_[id] = WorkerLoad{.id = id, .total_blocks = total_blocks, .colocated = true};
  decode_[id] = WorkerLoad{.id = id, .total_blocks = total_blocks, .colocated = true};
}

std::vector<std::string> Scheduler::RemoveWorker(const std::string& id) {
  std::vector<std::string> affected;
  // Orphaned batches and placements keep their entries (the caller still reports them done) but
  // no longer name the worker, so a worker re-registering under the same id starts clean.
  if (prefill_.erase(id) > 0) {
    for (auto& [batch_id, batch] : batches_) {
      if (batch.prefill_worker != id) continue;
      affected.insert(affected.end(), batch.request_ids.begin(), batch.request_ids.end());
      batch.prefill_worker.clear();
    }
  }
  if (decode_.erase(id) > 0) {
    for (auto& [request_id, placed] : placed_) {
      if (placed.decode_worker != id) continue;
      affected.push_back(request_id);
      placed.decode_worker.clear();
    }
  }
  return affected;
}

bool Scheduler::SetAccepting(const std::string& id, bool accepting, int placement_budget) {
  bool changed = false;
  // Both sides of a colocated worker.
  for (auto* workers : {&prefill_, &decode_}) {
    auto it = workers->find(id);
    if (it == workers->end()) continue;
    WorkerLoad& w = it->second;
    if (w.accepting == accepting && w.placement_budget == placement_budget) continue;
    w.accepting = accepting;
    w.placement_budget = placement_budget;
    changed = true;
  }
  return changed;
}

namespace {
bool MayPlace(const WorkerLoad& w) { return w.accepting && w.placement_budget != 0; }
void UseBudget(WorkerLoad& w) {
  if (w.placement_budget > 0) w.placement_budget--;
}
}  // namespace

int Scheduler::PlacedOn(const std::string& id) const {
  int placed = 0;
  for (const auto& [request_id, p] : placed_) placed += p.decode_worker == id;
  for (const auto& [batch_id, batch] : batches_) {
    if (batch.prefill_worker == id) placed += static_cast<int>(batch.request_ids.size());
  }
  return placed;
}

absl::Status Scheduler::CheckFits(const PendingRequest& r) const {
  const uint32_t prefill_blocks = BlocksForTokens(r.prompt_len);
  const uint32_t decode_blocks = BlocksForTokens(int64_t{r.prompt_len} + r.max_tokens);
  uint32_t largest_prefill = 0, largest_decode = 0;
  for (const auto& [id, w] : prefill_) {
    largest_prefill = std::max(largest_prefill, w.in_place ? std::numeric_limits<uint32_t>::max() : w.total_blocks);
  }
  for (const auto& [id, w] : decode_) largest_decode = std::max(largest_decode, w.total_blocks);
  if (prefill_blocks > largest_prefill) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", r.id, " can never be served: its prompt of ", r.prompt_len, " tokens needs ",
        prefill_blocks, " KV blocks but the largest prefill pool has ", largest_prefill));
  }
  if (decode_blocks > largest_decode) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", r.id, " can never be served: prompt ", r.prompt_len, " + max_tokens ",
        r.max_tokens, " tokens need ", decode_blocks,
        " KV blocks but the largest decode pool has ", largest_decode));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::Enqueue(const PendingRequest& request) {
  if (prefill_.empty() || decode_.empty()) {
    return absl::UnavailableError(absl::StrCat("request ", request.id, ": the cluster has ",
                                               prefill_.size(), " prefill and ", decode_.size(),
                                               " decode workers; it needs at least one of each"));
  }
  if (absl::Status fits = CheckFits(request); !fits.ok()) return fits;
  if (waiting_.size() >= config_.max_waiting) {
    return absl::ResourceExhaustedError(absl::StrCat("request ", request.id,
                                                     ": the waiting queue is full (",
                                                     config_.max_waiting, " requests); retry later"));
  }
  if (placed_.contains(request.id) ||
      std::any_of(waiting_.begin(), waiting_.end(),
                  [&](const PendingRequest& w) { return w.id == request.id; })) {
    return absl::AlreadyExistsError(absl::StrCat("request id ", request.id, " is already in use"));
  }
  waiting_.push_back(request);
  return absl::OkStatus();
}

void Scheduler::Requeue(const PendingRequest& request) { waiting_.push_front(request); }

bool Scheduler::CancelWaiting(const std::string& request_id) {
  auto it = std::find_if(waiting_.begin(), waiting_.end(),
                         [&](const PendingRequest& w) { return w.id == request_id; });
  if (it == waiting_.end()) return false;
  waiting_.erase(it);
  return true;
}

bool Scheduler::MayJoin(const PrefillBatchPlan& batch, int prompt_len, uint32_t prefill_blocks) {
  const WorkerLoad& w = prefill_.at(batch.prefill_worker);
  return MayPlace(w) && static_cast<int>(batch.items.size()) < config_.max_batch_size &&
         batch.tokens + prompt_len <= config_.max_batched_tokens &&
         (w.in_place || w.free_blocks() >= prefill_blocks);
}

WorkerLoad* Scheduler::PickDecode(uint32_t blocks, const PrefillBatchPlan* open_batch,
                                  int prompt_len) {
  // Whether a split decode worker's request would find a split prefill worker.
  const uint32_t prompt_blocks = BlocksForTokens(prompt_len);
  const bool split_prefill =
      (open_batch != nullptr && !prefill_.at(open_batch->prefill_worker).colocated &&
       MayJoin(*open_batch, prompt_len, prompt_blocks)) ||
      PickPrefill(prompt_blocks) != nullptr;
  WorkerLoad* best = nullptr;
  for (auto& [id, w] : decode_) {
    if (!MayPlace(w) || w.free_blocks() < blocks) continue;
    if (!w.colocated && !split_prefill) continue;
    if (w.colocated) {
      const WorkerLoad& own = prefill_.at(id);
      const bool joins = open_batch != nullptr && open_batch->prefill_worker == id &&
                         MayJoin(*open_batch, prompt_len, 0);
      if (!joins && (!MayPlace(own) || own.inflight_batches >= config_.max_inflight_batches)) {
        continue;
      }
    }
    if (best == nullptr || w.free_blocks() > best->free_blocks() ||
        (w.free_blocks() == best->free_blocks() && w.running_requests < best->running_requests)) {
      best = &w;
    }
  }
  return best;
}

WorkerLoad* Scheduler::PickPrefill(uint32_t blocks) {
  WorkerLoad* best = nullptr;
  for (auto& [id, w] : prefill_) {
    if (w.colocated || !MayPlace(w) || w.inflight_batches >= config_.max_inflight_batches ||
        (!w.in_place && w.free_blocks() < blocks)) {
      continue;
    }
    if (best == nullptr || w.inflight_tokens < best->inflight_tokens ||
        (w.inflight_tokens == best->inflight_tokens &&
         w.inflight_batches < best->inflight_batches)) {
      best = &w;
    }
  }
  return best;
}

std::optional<std::string> Scheduler::HeadPrefillWorker() {
  if (waiting_.empty()) return std::nullopt;
  // Schedule()'s choice for its first request, without its bookkeeping.
  const PendingRequest& r = waiting_.front();
  const WorkerLoad* decode =
      PickDecode(BlocksForTokens(int64_t{r.prompt_len} + r.max_tokens), nullptr, r.prompt_len);
  if (decode == nullptr) return std::nullopt;
  if (decode->colocated) return decode->id;
  const WorkerLoad* prefill = PickPrefill(BlocksForTokens(r.prompt_len));
  if (prefill == nullptr) return std::nullopt;
  return prefill->id;
}

ScheduleStep Scheduler::Schedule() {
  ScheduleStep step;
  // Requests that no longer fit any worker (the one that could hold them left) fail now rather
  // than wait forever at the head of the queue.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    absl::Status fits = CheckFits(*it);
    if (fits.ok()) {
      ++it;
    } else {
      step.rejected.push_back({it->id, fits});
      it = waiting_.erase(it);
    }
  }
  // The batch being filled is step.batches.back() while `open` is true.
  bool open = false;
  while (!waiting_.empty()) {
    const PendingRequest& r = waiting_.front();
    const uint32_t decode_blocks = BlocksForTokens(int64_t{r.prompt_len} + r.max_tokens);
    const PrefillBatchPlan* open_batch = open ? &step.batches.back() : nullptr;
    WorkerLoad* decode = PickDecode(decode_blocks, open_batch, r.prompt_len);
    if (decode == nullptr) break;  // FCFS: the head waits for blocks, and so does everyone else
    // A colocated worker's kernels write the decode reservation: no prefill blocks.
    uint32_t prefill_blocks = decode->colocated ? 0 : BlocksForTokens(r.prompt_len);

    bool joins_open = false;
    if (open_batch != nullptr) {
      const bool same_kind = decode->colocated
                                 ? open_batch->prefill_worker == decode->id
                                 : !prefill_.at(open_batch->prefill_worker).colocated;
      joins_open = same_kind && MayJoin(*open_batch, r.prompt_len, prefill_blocks);
    }
    WorkerLoad* prefill = nullptr;
    if (joins_open) {
      prefill = &prefill_.at(step.batches.back().prefill_worker);
    } else {
      prefill = decode->colocated ? &prefill_.at(decode->id) : PickPrefill(prefill_blocks);
      if (prefill == nullptr) break;
      step.batches.push_back(PrefillBatchPlan{.batch_id = next_batch_id_++,
                                              .prefill_worker = prefill->id});
      open = true;
      prefill->inflight_batches++;
      batches_[step.batches.back().batch_id] = InflightBatch{.prefill_worker = prefill->id};
    }
    if (prefill->in_place) prefill_blocks = 0;  // its kernels write the decode reservation
    PrefillBatchPlan& batch = step.batches.back();
    InflightBatch& inflight = batches_.at(batch.batch_id);
    batch.items.push_back(Placement{.request_id = r.id,
                                    .decode_worker = decode->id,
                                    .decode_blocks = decode_blocks,
                                    .prefill_blocks = prefill_blocks,
                                    .prompt_len = r.prompt_len});
    batch.tokens += r.prompt_len;
    inflight.blocks += prefill_blocks;
    inflight.tokens += r.prompt_len;
    inflight.request_ids.push_back(r.id);
    prefill->reserved_blocks += prefill_blocks;
    prefill->inflight_tokens += r.prompt_len;
    decode->reserved_blocks += decode_blocks;
    decode->running_requests++;
    UseBudget(*prefill);
    UseBudget(*decode);
    placed_[r.id] = PlacedRequest{.decode_worker = decode->id, .decode_blocks = decode_blocks};
    waiting_.pop_front();
  }
  return step;
}

void Scheduler::PrefillDone(uint64_t batch_id) {
  auto it = batches_.find(batch_id);
  if (it == batches_.end()) return;
  if (auto w = prefill_.find(it->second.prefill_worker); w != prefill_.end()) {
    w->second.reserved_blocks -= it->second.blocks;
    w->second.inflight_tokens -= it->second.tokens;
    w->second.inflight_batches--;
  }
  batches_.erase(it);
}

void Scheduler::DecodeDone(const std::string& request_id) {
  auto it = placed_.find(request_id);
  if (it == placed_.end()) return;
  if (auto w = decode_.find(it->second.decode_worker); w != decode_.end()) {
    w->second.reserved_blocks -= it->second.decode_blocks;
    w->second.running_requests--;
  }
  placed_.erase(it);
}

}  // namespace pdserve::router
