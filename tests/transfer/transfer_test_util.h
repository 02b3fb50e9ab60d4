#pragma once

#include <cstdlib>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "tests/transfer/test_pattern.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer::testing {

// One backend configuration under test: the backend and, for UCX, the pinned UCX_TLS.
struct BackendCase {
  std::string backend;
  std::string tls;  // ucx: empty = UCX_TLS unset (UCX chooses); ignored by local
  std::string name;
};

inline void PrintTo(const BackendCase& c, std::ostream* os) { *os << c.name; }

inline std::vector<BackendCase> AllBackends() {
  return {{"local", "", "local"},
          {"ucx", "tcp", "ucx_tcp"},
          {"ucx", "posix", "ucx_posix"},
          {"ucx", "cma,posix", "ucx_cma"},
          {"ucx", "", "ucx_plain"}};
}

// A transport and its pool inside the test process.
struct Side {
  std::unique_ptr<KvCache> cache;
  std::unique_ptr<KvTransport> transport;
};

inline Side MakeSide(const BackendCase& c, const std::string& agent, const std::string& preset,
                     uint32_t blocks, KvLayout layout) {
  // UCX reads its environment when the context is created.
  if (!c.tls.empty()) {
    setenv("UCX_TLS", c.tls.c_str(), 1);
  } else if (c.backend == "ucx") {
    unsetenv("UCX_TLS");
  }
  TransportOptions options;
  options.backend = c.backend;
  options.agent_name = agent;
  Side side;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, *PresetConfig(preset), blocks, layout);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return side;
  side.cache = std::move(*cache);
  absl::StatusOr<std::unique_ptr<KvTransport>> transport = MakeKvTransport(options);
  EXPECT_TRUE(transport.ok()) << transport.status();
  if (!transport.ok()) return side;
  side.transport = std::move(*transport);
  absl::Status s = side.transport->RegisterPool(*side.cache);
  EXPECT_TRUE(s.ok()) << s;
  return side;
}

// Arguments for transfer_test_peer.
inline std::vector<std::string> PeerArgs(const BackendCase& c, KvLayout layout,
                                         const std::string& preset, uint32_t blocks,
                                         const std::string& agent) {
  std::vector<std::string> args = {c.backend, std::string(KvLayoutName(layout)), preset,
                                   std::to_string(blocks), agent};
  // ucx: always passed, so that an empty one unsets what the child inherited.
  if (c.backend == "ucx") args.push_back(c.tls);
  return args;
}

inline std::string CopiesArg(const std::vector<BlockCopy>& copies) {
  std::vector<std::string> parts;
  for (const BlockCopy& c : copies) parts.push_back(absl::StrCat(c.src, ":", c.dst));
  return absl::StrJoin(parts, ",");
}

// A pool of `blocks` blocks filled with FillPattern(seed): what a peer that ran `fill seed`
// holds, to compare against.
inline std::unique_ptr<KvCache> ExpectedPool(const std::string& preset, uint32_t blocks,
                                             KvLayout layout, uint64_t seed) {
  auto cache = *KvCache::CreateInHostMemory(*PresetConfig(preset), blocks, layout);
  FillPattern(cache->base(), cache->memory().size(), seed);
  return cache;
}

// Number of fragments of `copies` whose bytes in `dst` differ from those in `src`.
inline int MismatchedFragments(const KvCache& src, const KvCache& dst,
                               const std::vector<BlockCopy>& copies) {
  const KvGeometry& sg = src.geometry();
  const KvGeometry& dg = dst.geometry();
  int bad = 0;
  for (const BlockCopy& c : copies) {
    for (int f = 0; f < sg.fragments_per_block(); ++f) {
      if (std::memcmp(src.base() + sg.FragmentOffset(c.src, f), dst.base() + dg.FragmentOffset(c.dst, f),
                      sg.transfer_fragment_bytes()) != 0) {
        ++bad;
      }
    }
  }
  return bad;
}

// Blocks of `pool` other than `written` that hold a non-zero byte.
inline int DirtyBlocksOutside(const KvCache& pool, const std::vector<BlockId>& written) {
  const KvGeometry& g = pool.geometry();
  int dirty = 0;
  for (BlockId b = 0; b < g.num_blocks(); ++b) {
    if (std::find(written.begin(), written.end(), b) != written.end()) continue;
    bool nonzero = false;
    for (int f = 0; f < g.fragments_per_block() && !nonzero; ++f) {
      const std::byte* p = pool.base() + g.FragmentOffset(b, f);
      for (int64_t i = 0; i < g.transfer_fragment_bytes(); ++i) {
        if (p[i] != std::byte{0}) {
          nonzero = true;
          break;
        }
      }
    }
    dirty += nonzero;
  }
  return dirty;
}

}  // namespace pdserve::transfer::testing
