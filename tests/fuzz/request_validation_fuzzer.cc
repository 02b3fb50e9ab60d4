// libFuzzer target: the router's validation of a client's GenerateRequest (router/
// request_validation.h), the first code that reads what a client sends. The input is a
// serialised GenerateRequest (seeds in corpus/request_validation); its first byte picks the
// model the cluster serves, so prompt bounds are explored against several vocabularies and
// maximum lengths. Checks beyond "no crash, no UB": an accepted prompt respects every bound
// the rest of the router and the workers rely on.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/model_config.h"
#include "google/protobuf/stubs/logging.h"
#include "pdserve.pb.h"
#include "router/request_validation.h"

namespace {

const pdserve::ModelConfig& ConfigFor(uint8_t choice) {
  static const pdserve::ModelConfig* configs[] = {
      new pdserve::ModelConfig(*pdserve::PresetConfig("tiny")),
      new pdserve::ModelConfig(*pdserve::PresetConfig("llama3-8b")),
  };
  return *configs[choice % 2];
}

}  // namespace

// Protobuf logs every string field that is not UTF-8; the fuzzer makes many.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const pdserve::ModelConfig& config = ConfigFor(data[0]);
  pdserve::v1::GenerateRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  auto prompt = pdserve::router::PromptOf(request, "fuzz", config);
  if (!prompt.ok()) {
    if (prompt.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  // What the scheduler and the workers take for granted of an accepted request.
  if (prompt->empty() || request.max_tokens() <= 0) std::abort();
  if (static_cast<int64_t>(prompt->size()) + request.max_tokens() > config.max_model_len) {
    std::abort();
  }
  for (int32_t t : *prompt) {
    if (t < 0 || t >= config.vocab_size) std::abort();
  }
  return 0;
}
