// libFuzzer target: PoolDescriptor::Parse (transfer/pool_descriptor.h), which reads the JSON a
// peer worker sends through the router (AddPeer) before any transport maps or connects to what
// it names. The input is the descriptor's bytes (seeds in corpus/pool_descriptor). Checks beyond
// "no crash, no UB": an accepted descriptor has sizes that its own arithmetic can compute
// (region_bytes() does not overflow), survives Serialize -> Parse unchanged, and
// CheckCompatible answers OK or InvalidArgument.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model_config.h"
#include "kvcache/kv_layout.h"
#include "transfer/pool_descriptor.h"

using pdserve::transfer::PoolDescriptor;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<PoolDescriptor> d =
      PoolDescriptor::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!d.ok()) {
    if (d.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  if (d->num_blocks == 0 || d->num_layers <= 0 || d->fragment_bytes <= 0) std::abort();
  if (d->region_bytes() <= 0) std::abort();  // UBSan reports an overflow before this

  absl::StatusOr<PoolDescriptor> back = PoolDescriptor::Parse(d->Serialize());
  if (!back.ok() || back->backend != d->backend || back->agent != d->agent ||
      back->pool_id != d->pool_id || back->layout != d->layout ||
      back->num_blocks != d->num_blocks || back->num_layers != d->num_layers ||
      back->fragment_bytes != d->fragment_bytes || back->fields != d->fields) {
    std::abort();
  }

  static const pdserve::KvGeometry local(*pdserve::PresetConfig("tiny"), 64,
                                         pdserve::KvLayout::kLayerMajor);
  const absl::Status compatible = CheckCompatible(local, d->backend, *d);
  if (!compatible.ok() && compatible.code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
