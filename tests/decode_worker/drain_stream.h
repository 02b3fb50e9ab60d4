#pragma once

// Shared by the decode engine tests: reads a DecodeStream to its end.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "decode_worker/decode_engine.h"

namespace pdserve::decode {

// Every token of the stream and its final status.
inline std::pair<std::vector<int32_t>, absl::Status> Drain(DecodeStream& stream) {
  std::vector<int32_t> tokens;
  while (true) {
    DecodeStream::Chunk chunk = stream.Next(absl::Seconds(30));
    tokens.insert(tokens.end(), chunk.tokens.begin(), chunk.tokens.end());
    if (chunk.finished) return {tokens, chunk.status};
  }
}

}  // namespace pdserve::decode
