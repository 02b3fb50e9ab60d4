#include "kvcache/reference_attention.h"

#include <cmath>

#include "common/synthetic_model.h"

namespace pdserve {

std::vector<float> ReferenceAttention(const ModelConfig& c, std::span<const int32_t> tokens) {
  const int n = static_cast<int>(tokens.size());
  const int d = c.head_dim;
  const int pos = n - 1;
  std::vector<float> out(static_cast<size_t>(c.num_layers) * c.num_q_heads * d);
  std::vector<float> row(d);
  std::vector<double> scores(n);
  for (int layer = 0; layer < c.num_layers; ++layer) {
    for (int qh = 0; qh < c.num_q_heads; ++qh) {
      const int kvh = qh / c.QueryHeadsPerKvHead();
      std::vector<float> q(d);
      model::QueryRow(c, tokens[pos], pos, layer, qh, q.data());
      double max_score = -INFINITY;
      for (int j = 0; j < n; ++j) {
        const uint64_t seed = model::RowSeed(tokens[j], j, layer, kvh, model::kKey);
        double s = 0;
        for (int e = 0; e < d; ++e) s += double{q[e]} * model::ElementValue(seed, e);
        scores[j] = s / std::sqrt(static_cast<double>(d));
        max_score = std::max(max_score, scores[j]);
      }
      double denom = 0;
      for (int j = 0; j < n; ++j) denom += (scores[j] = std::exp(scores[j] - max_score));
      float* dst = out.data() + (static_cast<size_t>(layer) * c.num_q_heads + qh) * d;
      for (int e = 0; e < d; ++e) {
        double acc = 0;
        for (int j = 0; j < n; ++j) {
          const uint64_t seed = model::RowSeed(tokens[j], j, layer, kvh, model::kValue);
          acc += scores[j] / denom * model::ElementValue(seed, e);
        }
        dst[e] = static_cast<float>(acc);
      }
    }
  }
  return out;
}

}  // namespace pdserve
