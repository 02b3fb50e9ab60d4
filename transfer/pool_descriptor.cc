#include "transfer/pool_descriptor.h"

#include <limits>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pdserve::transfer {
namespace {
constexpr char kFormat[] = "pdserve-kv-pool/1";

// The integer `key` of `j` if it is one and fits T exactly. nlohmann's get<T> converts with a
// cast: a peer's -1 blocks would read as 4294967295, 4294967360 as 64, 1.5 bytes as 1, and
// 1e300 layers is undefined behaviour.
template <typename T>
absl::StatusOr<T> IntegerField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it != j.end() && it->is_number_unsigned()) {
    const auto v = it->get<uint64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  } else if (it != j.end() && it->is_number_integer()) {
    const auto v = it->get<int64_t>();
    if (std::in_range<T>(v)) return static_cast<T>(v);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "KV pool descriptor: '", key, "' is ", it == j.end() ? "missing" : "not an integer in [",
      it == j.end() ? "" : absl::StrCat(std::numeric_limits<T>::min(), ", ",
                                         std::numeric_limits<T>::max(), "]")));
}
}  // namespace

std::string PoolDescriptor::Serialize() const {
  nlohmann::json j;
  j["format"] = kFormat;
  j["backend"] = backend;
  j["agent"] = agent;
  j["pool_id"] = pool_id;
  j["layout"] = std::string(KvLayoutName(layout));
  j["num_blocks"] = num_blocks;
  j["num_layers"] = num_layers;
  j["fragment_bytes"] = fragment_bytes;
  j["fields"] = fields;
  return j.dump();
}

absl::StatusOr<PoolDescriptor> PoolDescriptor::Parse(const std::string& bytes) {
  nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("KV pool descriptor is not valid JSON");
  }
  // Not j.value("format", ""): it throws when the key holds something other than a string,
  // and nothing here catches it (a peer's {"format":0} ended the process; pool_descriptor_fuzzer).
  auto format = j.find("format");
  if (format == j.end() || !format->is_string() || *format != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV pool descriptor has format ", format == j.end() ? "(none)" : format->dump(),
        ", expected ", kFormat));
  }
  PoolDescriptor d;
  try {
    d.backend = j.at("backend").get<std::string>();
    d.agent = j.at("agent").get<std::string>();
    absl::StatusOr<KvLayout> layout = ParseKvLayout(j.at("layout").get<std::string>());
    if (!layout.ok()) return layout.status();
    d.layout = *layout;
    d.fields = j.at("fields").get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("KV pool descriptor: ", e.what()));
  }
  absl::StatusOr<uint64_t> pool_id = IntegerField<uint64_t>(j, "pool_id");
  absl::StatusOr<uint32_t> num_blocks = IntegerField<uint32_t>(j, "num_blocks");
  absl::StatusOr<int> num_layers = IntegerField<int>(j, "num_layers");
  absl::StatusOr<int64_t> fragment_bytes = IntegerField<int64_t>(j, "fragment_bytes");
  for (const absl::Status& s : {pool_id.status(), num_blocks.status(), num_layers.status(),
                                fragment_bytes.status()}) {
    if (!s.ok()) return s;
  }
  d.pool_id = *pool_id;
  d.num_blocks = *num_blocks;
  d.num_layers = *num_layers;
  d.fragment_bytes = *fragment_bytes;
  if (d.num_blocks == 0 || d.num_layers <= 0 || d.fragment_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV pool descriptor of agent '", d.agent, "' has an empty geometry (", d.num_blocks,
        " blocks, ", d.num_layers, " layers, ", d.fragment_bytes, " bytes per fragment)"));
  }
  // block_bytes() and region_bytes() must be computable: no pool is that large, and a product
  // that overflows would be undefined behaviour wherever it is used.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (d.fragment_bytes > kMax / d.num_layers || d.block_bytes() > kMax / d.num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV pool descriptor of agent '", d.agent, "' has a geometry too large to address (",
        d.num_blocks, " blocks, ", d.num_layers, " layers, ", d.fragment_bytes,
        " bytes per fragment)"));
  }
  return d;
}

absl::StatusOr<std::string> PoolDescriptor::Field(const std::string& key) const {
  auto it = fields.find(key);
  if (it == fields.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV pool descriptor of agent '", agent, "' lacks field '", key, "'"));
  }
  return it->second;
}

PoolDescriptor DescribePool(const std::string& backend, const std::string& agent,
                            const KvGeometry& geometry) {
  PoolDescriptor d;
  d.backend = backend;
  d.agent = agent;
  d.pool_id = RandomId();
  d.layout = geometry.layout();
  d.num_blocks = geometry.num_blocks();
  d.num_layers = geometry.config().num_layers;
  d.fragment_bytes = geometry.fragment_bytes();
  return d;
}

absl::Status CheckCompatible(const KvGeometry& local, const std::string& backend,
                             const PoolDescriptor& peer) {
  if (peer.backend != backend) {
    return absl::InvalidArgumentError(absl::StrCat("descriptor of agent '", peer.agent,
                                                   "' is for backend '", peer.backend,
                                                   "', this transport is '", backend, "'"));
  }
  if (peer.layout != local.layout() || peer.num_layers != local.config().num_layers ||
      peer.fragment_bytes != local.fragment_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV geometry mismatch with agent '", peer.agent, "': peer ",
        std::string(KvLayoutName(peer.layout)), " ", peer.num_layers, " layers x ",
        peer.fragment_bytes, " bytes per fragment, local ",
        std::string(KvLayoutName(local.layout())), " ", local.config().num_layers,
        " layers x ", local.fragment_bytes(), " bytes"));
  }
  return absl::OkStatus();
}

uint64_t RandomId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return rng();
}

}  // namespace pdserve::transfer
