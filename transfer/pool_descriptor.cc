#include "transfer/pool_descriptor.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace pdserve::transfer {
namespace {
constexpr char kFormat[] = "pdserve-kv-pool/1";
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
  if (j.value("format", "") != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat("KV pool descriptor has format '", j.value("format", ""), "', expected ",
                     kFormat));
  }
  PoolDescriptor d;
  try {
    d.backend = j.at("backend").get<std::string>();
    d.agent = j.at("agent").get<std::string>();
    d.pool_id = j.at("pool_id").get<uint64_t>();
    absl::StatusOr<KvLayout> layout = ParseKvLayout(j.at("layout").get<std::string>());
    if (!layout.ok()) return layout.status();
    d.layout = *layout;
    d.num_blocks = j.at("num_blocks").get<uint32_t>();
    d.num_layers = j.at("num_layers").get<int>();
    d.fragment_bytes = j.at("fragment_bytes").get<int64_t>();
    d.fields = j.at("fields").get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("KV pool descriptor: ", e.what()));
  }
  if (d.num_blocks == 0 || d.num_layers <= 0 || d.fragment_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV pool descriptor of agent '", d.agent, "' has an empty geometry (", d.num_blocks,
        " blocks, ", d.num_layers, " layers, ", d.fragment_bytes, " bytes per fragment)"));
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
