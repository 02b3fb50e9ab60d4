#pragma once

// Re-verifying a saved `pdserve loadgen --save-token-ids` result without the cluster: every
// request's prompt ids, seed and max_tokens are in the JSON with the tokens it received and the
// target's model, so anyone can recompute model::ReferenceGenerate and compare
// (`pdserve loadgen verify --result FILE`).

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_config.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {

struct SavedResultCheck {
  ModelConfig model;                    // from the file's "model"
  int requests = 0;                     // in the file
  int checked = 0;                      // compared with the reference
  int failed_in_run = 0;                // ended with an error in the run (not a verify error):
                                        // their streams are incomplete, so not compared
  std::vector<std::string> mismatched;  // ids of checked requests whose tokens differ
};

// FailedPrecondition for a result saved without --save-token-ids or without a model;
// InvalidArgument for arrays of different lengths, wrong types, token ids outside the
// vocabulary, or a prompt + max_tokens beyond max_model_len (the file is input like any other).
absl::StatusOr<SavedResultCheck> VerifySavedResult(const nlohmann::json& result);
// As above from a file; NotFound when it cannot be opened, InvalidArgument when it is not JSON.
absl::StatusOr<SavedResultCheck> VerifySavedResultFile(const std::string& path);

}  // namespace pdserve::loadgen
