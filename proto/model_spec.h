#pragma once

// v1::ModelSpec <-> ModelConfig: how the router, the workers and clients tell each other which
// model they serve. Header-only, so that every user of pdserve_proto and pdserve_common (router,
// service, loadgen, cli) has it without a library of its own.
//
//   *registration.mutable_model() = ModelSpecOf(config);          // sender: every field set
//   ASSIGN_OR_RETURN(ModelConfig theirs, ModelConfigOf(reg.model()));  // receiver: validated

#include <cstdint>
#include <limits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/model_config.h"
#include "pdserve.pb.h"

namespace pdserve {

inline v1::ModelSpec ModelSpecOf(const ModelConfig& config) {
  const ModelOverrides o = OverridesOf(config);
  v1::ModelSpec spec;
  spec.set_preset(o.preset);
  spec.set_block_size(static_cast<uint32_t>(o.block_size));
  spec.set_dtype(o.dtype);
  spec.set_num_layers(static_cast<uint32_t>(o.num_layers));
  spec.set_max_model_len(static_cast<uint32_t>(o.max_model_len));
  return spec;
}

// The config a spec from another process resolves to. InvalidArgument for a spec without a
// preset, an unknown preset or dtype, or values out of range (ModelConfig::Validate): the spec
// came over the wire and is checked like any other input.
inline absl::StatusOr<ModelConfig> ModelConfigOf(const v1::ModelSpec& spec) {
  if (spec.preset().empty()) return absl::InvalidArgumentError("model spec names no preset");
  // Values past int's range become -1, which Validate rejects (0 keeps the preset's value).
  auto as_int = [](uint32_t v) {
    return v > static_cast<uint32_t>(std::numeric_limits<int>::max()) ? -1 : static_cast<int>(v);
  };
  ModelOverrides o;
  o.preset = spec.preset();
  o.block_size = as_int(spec.block_size());
  o.dtype = spec.dtype();
  o.num_layers = as_int(spec.num_layers());
  o.max_model_len = as_int(spec.max_model_len());
  return ResolveModelConfig(o);
}

}  // namespace pdserve
