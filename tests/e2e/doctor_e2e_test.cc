// `pdserve doctor --endpoint` against real clusters, each slow-transfer cause provoked for real:
// UCX on tcp between two processes of one host (transports), a registration per batch (ucx's
// PDSERVE_UCX_REGISTER_PER_BATCH: registration), and layer-major 16-token blocks of a small model
// (thousands of tiny copies per request: small-ops). A local cluster reads ok on
// the transport items. The figures come from the prefill workers' own transport counters.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/doctor_findings.h"
#include "tests/e2e/e2e_cluster.h"
#include "tests/e2e/e2e_process.h"

namespace pdserve::e2e {
namespace {

using ::testing::HasSubstr;

// Serves a few verified requests, then asks the doctor about the cluster: item -> verdict of
// the first prefill worker's findings (JSON output).
std::map<std::string, std::string> Verdicts(cluster::ClusterOptions o, std::string* figures) {
  std::unique_ptr<cluster::Cluster> c = Start(o);
  if (c == nullptr) return {};
  std::map<std::string, std::string> verdicts;
  for (const auto& [item, f] : DoctorFindings(*c, 100, 50)) {
    verdicts[item] = f.verdict;
    absl::StrAppend(figures, item, ": ", f.figure, "\n");
  }
  return verdicts;
}

TEST(DoctorE2eTest, UcxOnTcpBetweenProcessesOfOneHostIsATransportWarning) {
  cluster::ClusterOptions o = Options("ucx", 1, 1);
  o.env = {{"UCX_TLS", "tcp"}};
  std::string figures;
  std::map<std::string, std::string> v = Verdicts(o, &figures);
  EXPECT_EQ(v["transports"], "warn") << figures;
  EXPECT_EQ(v["registration"], "ok") << figures;
  EXPECT_EQ(v["staging"], "ok") << figures;
  EXPECT_THAT(figures, HasSubstr("reached over a network transport"));
}

// A connector that registers memory for every transfer (checklist item "re-registration"),
// provoked with ucx's study knob: each batch maps its source span (ucp_mem_map) and unmaps it.
TEST(DoctorE2eTest, ARegistrationPerBatchIsARegistrationWarning) {
  cluster::ClusterOptions o = Options("ucx", 1, 1);
  o.env = {{"PDSERVE_UCX_REGISTER_PER_BATCH", "1"}};
  std::string figures;
  std::map<std::string, std::string> v = Verdicts(o, &figures);
  EXPECT_EQ(v["registration"], "warn") << figures;
  EXPECT_EQ(v["transports"], "ok") << figures;
  // The pool's one registration, then one per batch (three requests, at least one batch each).
  EXPECT_THAT(figures, ::testing::ContainsRegex("registration: ([4-9]|[1-9][0-9]+) registration"));
}

TEST(DoctorE2eTest, TinyLayerMajorBlocksAreSmallOpsAndLocalTransportsAreOk) {
  cluster::ClusterOptions o = Options("local", 1, 1);
  o.layout = "layer-major";
  std::string figures;
  std::map<std::string, std::string> v = Verdicts(o, &figures);
  EXPECT_EQ(v["small-ops"], "fail") << figures;
  EXPECT_EQ(v["transports"], "ok") << figures;
  EXPECT_EQ(v["registration"], "ok") << figures;
  EXPECT_EQ(v["overlap"], "n/a") << figures;
  // Both workers registered where they sit: one host, host pools, the NUMA node their CPUs are
  // on (this host's CPUs are all on one node, so both name the same).
  EXPECT_EQ(v["placement"], "ok") << figures;
  EXPECT_THAT(figures, HasSubstr("placement: decode-0: same host"));
}

TEST(DoctorE2eTest, AFolderOrAnEndpointIsRequiredAndAnUnreachableRouterIsAnError) {
  EXPECT_NE(RunPdserve({"doctor"}).code, 0);
  Exit e = RunPdserve({"doctor", "--endpoint", "127.0.0.1:1"});
  EXPECT_NE(e.code, 0);
  EXPECT_THAT(e.output, HasSubstr("127.0.0.1:1"));
}

}  // namespace
}  // namespace pdserve::e2e
