#include "transfer/nccl/nccl_protocol.h"

#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace pdserve::transfer::nccl {
namespace {

// Wire format: kind byte, version (u32), generation (u64), then the kind's fields; integers in
// this host's byte order (both ends share a host: the channel is a unix socket).
enum Kind : char { kInit = 'I', kRecv = 'R', kNotify = 'N', kAbort = 'A' };
constexpr size_t kHeaderBytes = 1 + 4 + 8;

template <typename T>
void Put(std::string& out, T value) {
  static_assert(std::is_trivially_copyable_v<T>);
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

// Reads fields off the front of hostile bytes; every read is bounds-checked.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  template <typename T>
  bool Get(T& value) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(&value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool Take(size_t n, std::string& out) {
    if (rest_.size() < n) return false;
    out.assign(rest_.data(), n);
    rest_.remove_prefix(n);
    return true;
  }
  size_t left() const { return rest_.size(); }

 private:
  std::string_view rest_;
};

absl::Status Malformed(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed nccl control message: ", what));
}

void PutHeader(std::string& out, Kind kind, uint64_t generation) {
  out.push_back(kind);
  Put<uint32_t>(out, kProtocolVersion);
  Put<uint64_t>(out, generation);
}

}  // namespace

std::string Encode(const ControlMessage& message) {
  std::string out;
  if (const auto* m = std::get_if<InitMessage>(&message)) {
    PutHeader(out, kInit, m->generation);
    Put<uint8_t>(out, m->layout == KvLayout::kLayerMajor ? 0 : 1);
    Put<uint32_t>(out, m->num_blocks);
    Put<uint32_t>(out, m->num_layers);
    Put<uint64_t>(out, m->fragment_bytes);
    out.append(m->unique_id);
  } else if (const auto* m = std::get_if<RecvMessage>(&message)) {
    PutHeader(out, kRecv, m->generation);
    Put<uint64_t>(out, m->batch);
    Put<uint32_t>(out, static_cast<uint32_t>(m->copies.size()));
    for (const BlockCopy& c : m->copies) {
      Put<uint32_t>(out, c.src);
      Put<uint32_t>(out, c.dst);
    }
  } else if (const auto* m = std::get_if<NotifyMessage>(&message)) {
    PutHeader(out, kNotify, m->generation);
    out.append(m->message);
  } else {
    PutHeader(out, kAbort, std::get<AbortMessage>(message).generation);
  }
  return out;
}

absl::StatusOr<ControlMessage> Decode(std::string_view bytes) {
  if (bytes.size() > kMaxControlBytes) return Malformed("too long");
  Reader in(bytes);
  char kind = 0;
  uint32_t version = 0;
  uint64_t generation = 0;
  if (!in.Get(kind) || !in.Get(version) || !in.Get(generation)) return Malformed("truncated");
  if (version != kProtocolVersion) {
    return Malformed(absl::StrCat("version ", version, " (this build speaks ", kProtocolVersion,
                                  ")"));
  }
  switch (kind) {
    case kInit: {
      InitMessage m{.generation = generation};
      uint8_t layout = 0;
      if (!in.Get(layout) || !in.Get(m.num_blocks) || !in.Get(m.num_layers) ||
          !in.Get(m.fragment_bytes) || !in.Take(kUniqueIdBytes, m.unique_id)) {
        return Malformed("truncated init");
      }
      if (layout > 1) return Malformed("unknown layout");
      m.layout = layout == 0 ? KvLayout::kLayerMajor : KvLayout::kBlockMajor;
      if (in.left() != 0) return Malformed("trailing bytes after init");
      return m;
    }
    case kRecv: {
      RecvMessage m{.generation = generation};
      uint32_t n = 0;
      if (!in.Get(m.batch) || !in.Get(n)) return Malformed("truncated recv");
      if (n == 0 || n > kMaxCopiesPerRecv) {
        return Malformed(absl::StrCat(n, " block pairs in one recv (1 to ", kMaxCopiesPerRecv,
                                      ")"));
      }
      if (in.left() != size_t{n} * 8) return Malformed("block pairs do not match their count");
      m.copies.resize(n);
      for (BlockCopy& c : m.copies) {
        in.Get(c.src);
        in.Get(c.dst);
      }
      return m;
    }
    case kNotify: {
      NotifyMessage m{.generation = generation};
      if (in.left() == 0 || in.left() > kMaxNotificationBytes) {
        return Malformed("notification empty or over the bound");
      }
      in.Take(in.left(), m.message);
      return m;
    }
    case kAbort:
      if (in.left() != 0) return Malformed("trailing bytes after abort");
      return AbortMessage{.generation = generation};
    default:
      return Malformed("unknown kind");
  }
}

std::vector<std::span<const BlockCopy>> ChunkCopies(std::span<const BlockCopy> copies) {
  std::vector<std::span<const BlockCopy>> chunks;
  for (size_t at = 0; at < copies.size(); at += kMaxCopiesPerRecv) {
    chunks.push_back(copies.subspan(at, std::min(kMaxCopiesPerRecv, copies.size() - at)));
  }
  return chunks;
}

absl::StatusOr<KvGeometry> SenderGeometry(const InitMessage& init, const KvGeometry& own) {
  if (init.layout != own.layout() ||
      init.num_layers != static_cast<uint32_t>(own.config().num_layers) ||
      init.fragment_bytes != static_cast<uint64_t>(own.fragment_bytes())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nccl sender's pool (", std::string(KvLayoutName(init.layout)), ", ", init.num_layers, " layers, ",
        init.fragment_bytes, "-byte fragments) does not match this pool (",
        std::string(KvLayoutName(own.layout())), ", ", own.config().num_layers, " layers, ",
        own.fragment_bytes(), "-byte fragments)"));
  }
  if (init.num_blocks == 0) return absl::InvalidArgumentError("nccl sender's pool has no blocks");
  return KvGeometry(own.config(), init.num_blocks, init.layout);
}

}  // namespace pdserve::transfer::nccl
