#include "loadgen/saved_result.h"

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "loadgen/verify.h"

namespace pdserve::loadgen {
namespace {

using Json = nlohmann::json;

constexpr const char* kArrays[] = {"prompt_token_ids", "output_token_ids", "request_seeds",
                                   "max_tokens",       "errors",           "request_ids"};

absl::StatusOr<ModelConfig> ModelOf(const Json& result) {
  auto it = result.find("model");
  if (it == result.end() || !it->is_object()) {
    return absl::FailedPreconditionError("the result names no model (saved by an older loadgen?)");
  }
  ModelOverrides o;
  o.preset = it->value("preset", "");
  o.block_size = it->value("block_size", 0);
  o.dtype = it->value("dtype", "");
  o.num_layers = it->value("num_layers", 0);
  o.max_model_len = it->value("max_model_len", 0);
  return ResolveModelConfig(o);
}

// Request `i` of the file as the spec it was sent as and the record of what came back.
absl::Status ReadRequest(const Json& j, size_t i, const ModelConfig& model, RequestSpec& spec,
                         RequestRecord& record) {
  record.request_id = j["request_ids"][i].get<std::string>();
  record.error = j["errors"][i].get<std::string>();
  spec.index = record.index = static_cast<int>(i);
  spec.seed = record.seed = j["request_seeds"][i].get<uint64_t>();
  spec.output_len = record.max_tokens = j["max_tokens"][i].get<int>();
  spec.prompt = j["prompt_token_ids"][i].get<std::vector<int32_t>>();
  record.tokens = j["output_token_ids"][i].get<std::vector<int32_t>>();
  auto invalid = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("request ", record.request_id, ": ", parts...));
  };
  if (spec.output_len < 1) return invalid("max_tokens ", spec.output_len, " < 1");
  // Bounds the reference's work: a file cannot make the verifier run away.
  if (spec.prompt.empty() ||
      static_cast<int64_t>(spec.prompt.size()) + spec.output_len > model.max_model_len) {
    return invalid("prompt of ", spec.prompt.size(), " tokens + max_tokens ", spec.output_len,
                   " is empty or beyond max_model_len ", model.max_model_len);
  }
  for (int32_t t : spec.prompt) {
    if (t < 0 || t >= model.vocab_size) return invalid("prompt token ", t, " outside the vocabulary");
  }
  spec.input_len = record.input_len = static_cast<int>(spec.prompt.size());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SavedResultCheck> VerifySavedResult(const Json& j) {
  if (!j.is_object() || !j.contains("prompt_token_ids")) {
    return absl::FailedPreconditionError(
        "the result has no token ids: run pdserve loadgen with --save-token-ids");
  }
  SavedResultCheck check;
  ASSIGN_OR_RETURN(check.model, ModelOf(j));
  const size_t n = j["prompt_token_ids"].is_array() ? j["prompt_token_ids"].size() : 0;
  for (const char* key : kArrays) {
    if (!j.contains(key) || !j[key].is_array() || j[key].size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", key, "\" must be an array of ", n, " entries, one per request"));
    }
  }
  std::vector<RequestSpec> specs;
  std::vector<RequestRecord> records;
  for (size_t i = 0; i < n; ++i) {
    RequestSpec spec;
    RequestRecord record;
    try {
      RETURN_IF_ERROR(ReadRequest(j, i, check.model, spec, record));
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("request ", i, ": ", e.what()));
    }
    // A request that failed only the run's own verification has all its tokens: check it again.
    if (!record.error.empty() && !absl::StartsWith(record.error, "verify:")) {
      check.failed_in_run++;
      continue;
    }
    record.success = true;
    record.output_tokens = static_cast<int>(record.tokens.size());
    record.error.clear();
    specs.push_back(std::move(spec));
    records.push_back(std::move(record));
  }
  check.requests = static_cast<int>(n);
  check.checked = static_cast<int>(records.size());
  VerifyRecords(specs, check.model, records);
  for (const RequestRecord& r : records) {
    if (!r.success) check.mismatched.push_back(r.request_id);
  }
  return check;
}

absl::StatusOr<SavedResultCheck> VerifySavedResultFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  Json j = Json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path, ": not JSON"));
  absl::StatusOr<SavedResultCheck> check = VerifySavedResult(j);
  if (!check.ok()) {
    return absl::Status(check.status().code(),
                        absl::StrCat(path, ": ", check.status().message()));
  }
  return check;
}

}  // namespace pdserve::loadgen
