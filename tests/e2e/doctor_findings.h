#pragma once

// `pdserve doctor --endpoint` asked about a running cluster after a few verified requests: the
// first prefill worker's findings, item -> verdict and figure. Shared by the doctor's CPU tests
// (tests/e2e/doctor_e2e_test.cc) and its GPU test (tests/cuda/cuda_cluster_test.cc).

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {

struct DoctorFinding {
  std::string verdict;  // ok, warn, fail
  std::string figure;
};

// Serves three requests of `prompt_len` tokens (seeds seed, seed + 1, seed + 2), each checked
// against the reference, then runs the doctor (JSON output) against the cluster.
inline std::map<std::string, DoctorFinding> DoctorFindings(cluster::Cluster& cluster,
                                                           int prompt_len, uint64_t seed) {
  Client client(cluster.endpoint());
  for (uint64_t i = 0; i < 3; ++i) {
    Outcome out = client.Generate(absl::StrCat("doc-", i), prompt_len, 4, seed + i);
    EXPECT_TRUE(out.status.ok()) << out.status.error_message();
    EXPECT_EQ(out.tokens, Expected(prompt_len, 4, seed + i));
  }
  Exit e = RunPdserve({"doctor", "--endpoint", cluster.endpoint(), "--json"});
  EXPECT_EQ(e.code, 0) << e.output;
  nlohmann::json j = nlohmann::json::parse(e.output, nullptr, false);
  std::map<std::string, DoctorFinding> found;
  if (!j.is_object() || !j.contains("backends") || j["backends"].empty()) {
    ADD_FAILURE() << "no doctor findings: " << e.output;
    return found;
  }
  EXPECT_TRUE(j.value("live", false)) << e.output;
  for (const auto& f : j["backends"][0]["findings"]) {
    found[f["item"].get<std::string>()] = {f["verdict"].get<std::string>(),
                                           f["figure"].get<std::string>()};
  }
  return found;
}

}  // namespace pdserve::e2e
