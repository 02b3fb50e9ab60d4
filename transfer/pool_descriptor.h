#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "kvcache/kv_layout.h"

namespace pdserve::transfer {

// What a peer needs to write into a registered pool, common to every backend, plus the
// backend's own fields (names, addresses, keys; binary values base64-encoded by the backend).
// Serialised as JSON: small, versioned, and readable in a log when something does not match.
struct PoolDescriptor {
  std::string backend;
  std::string agent;     // the owning worker's agent name
  uint64_t pool_id = 0;  // random per registration: tells a re-created pool from a stale one
  KvLayout layout = KvLayout::kLayerMajor;
  uint32_t num_blocks = 0;
  int num_layers = 0;
  int64_t fragment_bytes = 0;  // one block of one layer
  std::map<std::string, std::string> fields;

  int64_t block_bytes() const { return fragment_bytes * num_layers; }
  int64_t region_bytes() const { return block_bytes() * num_blocks; }

  std::string Serialize() const;
  // InvalidArgument for anything that is not a well-formed descriptor.
  static absl::StatusOr<PoolDescriptor> Parse(const std::string& bytes);

  // The backend field `key`, or InvalidArgument naming it.
  absl::StatusOr<std::string> Field(const std::string& key) const;
};

PoolDescriptor DescribePool(const std::string& backend, const std::string& agent,
                            const KvGeometry& geometry);

// InvalidArgument unless a peer pool can receive blocks of `local`'s shape: same backend,
// layout, layer count and fragment size (block counts may differ).
absl::Status CheckCompatible(const KvGeometry& local, const std::string& backend,
                             const PoolDescriptor& peer);

// A fresh random 64-bit id.
uint64_t RandomId();

}  // namespace pdserve::transfer
