#include "loadgen/sharegpt.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/synthetic_model.h"
#include "nlohmann/json.hpp"

namespace pdserve::loadgen {
namespace {

using nlohmann::json;

// The text of turn `i` of an entry, or nullptr when the entry has no such turn.
const std::string* Turn(const json& entry, size_t i) {
  if (!entry.is_object()) return nullptr;
  auto c = entry.find("conversations");
  if (c == entry.end() || !c->is_array() || c->size() <= i || !(*c)[i].is_object()) {
    return nullptr;
  }
  auto v = (*c)[i].find("value");
  return v != (*c)[i].end() && v->is_string() ? v->get_ptr<const std::string*>() : nullptr;
}

}  // namespace

absl::StatusOr<std::vector<RequestSpec>> MakeShareGptWorkload(std::string_view json_text, int n,
                                                              uint64_t seed, int32_t vocab_size,
                                                              const ShareGptOptions& o) {
  const json data = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (data.is_discarded() || !data.is_array()) {
    return absl::InvalidArgumentError(
        "sharegpt dataset: not a JSON array of {\"conversations\": [...]} entries");
  }
  // The entries with a prompt and a reply, in an order shuffled by the seed (Fisher-Yates with
  // the model's own mixer, so the same seed picks the same requests everywhere).
  std::vector<size_t> order;
  for (size_t i = 0; i < data.size(); ++i) {
    if (Turn(data[i], 0) != nullptr && Turn(data[i], 1) != nullptr) order.push_back(i);
  }
  uint64_t state = model::Mix64(seed ^ 0x5a4e6e47ull);
  for (size_t i = order.size(); i > 1; --i) {
    state = model::Mix64(state + i);
    std::swap(order[i - 1], order[state % i]);
  }
  std::vector<RequestSpec> kept;
  for (size_t i : order) {
    if (static_cast<int>(kept.size()) == n) break;
    std::vector<int32_t> prompt = model::TokenizeText(*Turn(data[i], 0), vocab_size);
    const int prompt_len = static_cast<int>(prompt.size());
    const int output_len = o.fixed_output_len > 0
                               ? o.fixed_output_len
                               : static_cast<int>(
                                     model::TokenizeText(*Turn(data[i], 1), vocab_size).size());
    if (prompt_len < o.min_len || (o.fixed_output_len <= 0 && output_len < o.min_len) ||
        prompt_len > o.max_prompt_len || prompt_len + output_len > o.max_total_len) {
      continue;
    }
    RequestSpec spec;
    spec.input_len = prompt_len;
    spec.output_len = output_len;
    spec.prompt = std::move(prompt);
    kept.push_back(std::move(spec));
  }
  if (kept.empty() && n > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sharegpt dataset: none of its ", data.size(),
        " entries has a prompt and a reply within the length limits (prompt and output >= ",
        o.min_len, " tokens, prompt <= ", o.max_prompt_len, ", both <= ", o.max_total_len, ")"));
  }
  std::vector<RequestSpec> specs;
  specs.reserve(static_cast<size_t>(std::max(n, 0)));
  for (int i = 0; i < n; ++i) {
    RequestSpec spec = kept[static_cast<size_t>(i) % kept.size()];
    spec.index = i;
    spec.seed = RequestSeed(seed, i);
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<std::vector<RequestSpec>> LoadShareGptWorkload(const std::string& path, int n,
                                                              uint64_t seed, int32_t vocab_size,
                                                              const ShareGptOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("sharegpt dataset: cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<std::vector<RequestSpec>> specs =
      MakeShareGptWorkload(text.str(), n, seed, vocab_size, options);
  if (!specs.ok()) {
    return absl::Status(specs.status().code(), absl::StrCat(path, ": ", specs.status().message()));
  }
  return specs;
}

}  // namespace pdserve::loadgen
