#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kvcache/kv_layout.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {

// One contiguous copy: `bytes` from local region offset `src` to remote region offset `dst`.
struct CopyOp {
  uint64_t src = 0;
  uint64_t dst = 0;
  uint64_t bytes = 0;
};

// Turns logical block copies into the fewest contiguous operations: runs of blocks consecutive
// in both pools become one operation per transfer fragment (layer-major) or one in all
// (block-major), and operations that touch end to end in both regions are merged again (whole
// layers of a layer-major pool). Validates first, so a bad batch writes nothing:
// InvalidArgument for an empty batch, a block outside either pool or a destination named twice.
// `remote` has the local shape (checked with CheckCompatible) and the peer's block count.
absl::Status PlanCopies(const KvGeometry& local, const KvGeometry& remote,
                        std::span<const BlockCopy> copies, std::vector<CopyOp>& ops);

uint64_t TotalBytes(std::span<const CopyOp> ops);

// Cuts `ops` into at most `shares` pieces of equal bytes (the last one may be smaller),
// splitting operations where needed: the local backend's copy threads, and the memcpy baseline
// that mirrors them, each copy one piece. shares <= 1: one piece, `ops` itself.
std::vector<std::vector<CopyOp>> CutShares(std::span<const CopyOp> ops, int shares);

}  // namespace pdserve::transfer
