// What a prefill item may be given and where its KV may go: the checks of an item and of its
// destination (given with it, or posted while it runs: PrefillItemSpec::destination_follows).

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "prefill_worker/prefill_engine.h"

namespace pdserve::prefill {

absl::Status PrefillEngine::Validate(const PrefillItemSpec& item) const {
  // Bounded before any work: a prompt is at most one sequence of the model, and its id goes
  // into logs and notifications.
  if (item.request_id.empty() || item.request_id.size() > kMaxRequestIdBytes ||
      item.prompt.size() > static_cast<size_t>(cache_.config().max_model_len)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request '", absl::CEscape(item.request_id.substr(0, 64)), "': id of ",
        item.request_id.size(), " bytes (1 to ", kMaxRequestIdBytes, ") or prompt of ",
        item.prompt.size(), " tokens (at most max_model_len ", cache_.config().max_model_len,
        ")"));
  }
  if (item.prompt.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("request ", item.request_id, ": empty prompt"));
  }
  if (item.destination_follows && !item.decode_blocks.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", item.request_id, ": destination blocks given with a destination to follow"));
  }
  // The router checks tokens too, but a worker takes nobody's word: a token outside the
  // vocabulary would index past the model's tables.
  const int32_t vocab = cache_.config().vocab_size;
  for (size_t i = 0; i < item.prompt.size(); ++i) {
    if (item.prompt[i] < 0 || item.prompt[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("request ", item.request_id, ": token ",
                                                     item.prompt[i], " at position ", i,
                                                     " is outside the vocabulary [0, ", vocab,
                                                     ")"));
    }
  }
  if (item.decode_epoch == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", item.request_id, ": no decode epoch (the reservation's lease id) given"));
  }
  return item.destination_follows ? absl::OkStatus()
                                  : ValidateDestination(item, item.decode_blocks);
}

absl::Status PrefillEngine::ValidateDestination(const PrefillItemSpec& item,
                                                const std::vector<BlockId>& blocks) const {
  const auto needed =
      static_cast<uint32_t>(cache_.config().BlocksForTokens(static_cast<int64_t>(item.prompt.size())));
  if (blocks.size() != needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request ", item.request_id, ": prompt of ", item.prompt.size(), " tokens needs ", needed,
        " blocks, got ", blocks.size(), " destination blocks"));
  }
  uint32_t pool = 0;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = peers_.find(item.decode_worker); it != peers_.end()) pool = it->second.num_blocks;
  }
  absl::flat_hash_set<BlockId> seen;
  for (BlockId b : blocks) {
    if ((pool > 0 && b >= pool) || !seen.insert(b).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "request ", item.request_id, ": destination block ", b,
          pool > 0 && b >= pool ? absl::StrCat(" is outside decode worker ", item.decode_worker,
                                               "'s pool of ", pool, " blocks")
                                : std::string(" is named twice")));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlockId>> PrefillEngine::TakeDestination(
    const PrefillItemSpec& item, const std::function<bool()>& abandoned, absl::Time by) {
  if (!item.destination_follows) return item.decode_blocks;
  const ItemFence::Key key{item.request_id, item.decode_epoch};
  const absl::Duration wait =
      std::max(absl::ZeroDuration(), std::min(options_.transfer_timeout, by - absl::Now()));
  DestinationBoard::Destination taken =
      destinations_.Take(key, wait, [&] { return Stopped(key, abandoned); });
  if (!taken.ok()) {
    return absl::Status(taken.status().code(),
                        absl::StrCat("request ", item.request_id, ": no destination on decode worker ",
                                     item.decode_worker, ": ", taken.status().message()));
  }
  if (absl::Status valid = ValidateDestination(item, *taken); !valid.ok()) return valid;
  return taken;
}

absl::Status PrefillEngine::EnsureDestination(const PrefillItemSpec& item, Inflight& entry,
                                              const std::function<bool()>& abandoned,
                                              absl::Time by) {
  if (!entry.decode_blocks.empty()) return absl::OkStatus();
  // A destination that follows: it has had the kernels' time to come. Callers start the
  // item's transfer time only after this, so that a late destination counts as the control
  // plane's time, not the transfer's.
  absl::StatusOr<std::vector<BlockId>> destination = TakeDestination(item, abandoned, by);
  if (!destination.ok()) return destination.status();
  entry.decode_blocks = *std::move(destination);
  return absl::OkStatus();
}

bool PrefillEngine::DestinationReady(const PrefillItemSpec& item, const Inflight& entry) const {
  return !entry.decode_blocks.empty() || !item.destination_follows ||
         destinations_.Has({item.request_id, item.decode_epoch});
}

}  // namespace pdserve::prefill
