// A peer process for the transfer tests: owns one transport and one KV pool and obeys one
// command per line on stdin, answering on stdout (each reply line starts with "@ "). Tests start it
// with posix_spawn, so that each side of a transfer is a real process with its own UCX context /
// shared-memory mapping, and can be killed mid-batch.
//
//   transfer_test_peer BACKEND LAYOUT PRESET BLOCKS AGENT [UCX_TLS ("": unset)]
//   -> "descriptor <bytes>"
//   fill SEED                        -> ok
//   load DESCRIPTOR                  -> peer ID | err ...
//   send PEER MSG S:D,S:D,...        -> ok | err CODE ...
//   sendmany PEER PREFIX N PER DST0  -> ok | err ... (N batches in flight at once: batch i copies
//                                       blocks i*PER.. to DST0+i*PER.., message PREFIX-i)
//   sendsizes PEER PREFIX DST0 K,K,...
//                                    -> ok | err ... (all batches in flight at once: batch i copies
//                                       the next K_i blocks, from block 0 on, block b to DST0+b,
//                                       message PREFIX-i)
//   sendloop PEER PREFIX S:D,...     -> "started", then the same batch forever (PREFIX-0, -1...)
//   sendpair PEER MSG S:D,... S:D,...
//                                    -> "done CODE_A CODE_B": batch A (no notification), then
//                                       at once batch B with notification MSG, both waited for
//   wait MSG TIMEOUT_MS              -> ok | err ...
//   collect N TIMEOUT_MS             -> "got M1,M2,..." every notification taken, in arrival
//                                       order, once N arrived (plus any that come 20 ms after:
//                                       a duplicate shows) or at the timeout
//   counters                         -> registrations R notifications N
//   quit
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/transfer/test_pattern.h"
#include "transfer/kv_transport.h"

namespace pdserve::transfer {
namespace {

std::vector<BlockCopy> ParseCopies(const std::string& text) {
  std::vector<BlockCopy> copies;
  for (absl::string_view pair : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(pair, ':');
    BlockCopy c;
    c.src = static_cast<BlockId>(std::stoul(parts.at(0)));
    c.dst = static_cast<BlockId>(std::stoul(parts.at(1)));
    copies.push_back(c);
  }
  return copies;
}

// Replies start with "@ ": libraries (UCX) may print their own lines on stdout.
void Reply(const std::string& line) {
  std::cout << "@ " << line << std::endl;  // flush: the test reads line by line
}

std::string Err(const absl::Status& s) {
  return "err " + std::string(absl::StatusCodeToString(s.code())) + " " + std::string(s.message());
}

int Main(int argc, char** argv) {
  if (argc < 6) {
    std::cerr << "usage: transfer_test_peer BACKEND LAYOUT PRESET BLOCKS AGENT [UCX_TLS]\n";
    return 2;
  }
  if (argc > 6 && argv[6][0] != '\0') {
    setenv("UCX_TLS", argv[6], 1);
  } else if (argc > 6) {
    unsetenv("UCX_TLS");  // UCX chooses
  }
  TransportOptions options;
  options.backend = argv[1];
  options.agent_name = argv[5];
  absl::StatusOr<ModelConfig> config = PresetConfig(argv[3]);
  absl::StatusOr<KvLayout> layout = ParseKvLayout(argv[2]);
  if (!config.ok() || !layout.ok()) return 2;
  absl::StatusOr<std::unique_ptr<KvCache>> cache =
      CreatePoolCache(options, *config, static_cast<uint32_t>(std::stoul(argv[4])), *layout);
  if (!cache.ok()) {
    Reply(Err(cache.status()));
    return 1;
  }
  absl::StatusOr<std::unique_ptr<KvTransport>> transport = MakeKvTransport(options);
  if (!transport.ok()) {
    Reply(Err(transport.status()));
    return 1;
  }
  KvTransport& t = **transport;
  if (absl::Status s = t.RegisterPool(**cache); !s.ok()) {
    Reply(Err(s));
    return 1;
  }
  absl::StatusOr<std::string> descriptor = t.ExportDescriptor();
  Reply(descriptor.ok() ? "descriptor " + *descriptor : Err(descriptor.status()));

  const absl::Duration kWait = absl::Seconds(30);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "fill") {
      uint64_t seed = 0;
      in >> seed;
      testing::FillPattern((*cache)->base(), (*cache)->memory().size(), seed);
      Reply("ok");
    } else if (cmd == "load") {
      std::string d;
      std::getline(in >> std::ws, d);
      absl::StatusOr<PeerId> peer = t.LoadPeer(d);
      Reply(peer.ok() ? "peer " + std::to_string(*peer) : Err(peer.status()));
    } else if (cmd == "send") {
      PeerId peer;
      std::string msg, copies;
      in >> peer >> msg >> copies;
      std::vector<BlockCopy> c = ParseCopies(copies);
      absl::StatusOr<TransferId> id = t.Submit(peer, c, msg);
      absl::Status s = id.ok() ? t.Wait(*id, kWait) : id.status();
      Reply(s.ok() ? "ok" : Err(s));
    } else if (cmd == "sendmany") {
      PeerId peer;
      std::string prefix;
      uint32_t n = 0, per = 0, dst0 = 0;
      in >> peer >> prefix >> n >> per >> dst0;
      std::vector<TransferId> ids;
      absl::Status s;
      for (uint32_t i = 0; i < n && s.ok(); ++i) {
        std::vector<BlockCopy> c;
        for (uint32_t b = 0; b < per; ++b) c.push_back({i * per + b, dst0 + i * per + b});
        absl::StatusOr<TransferId> id = t.Submit(peer, c, prefix + "-" + std::to_string(i));
        if (id.ok()) ids.push_back(*id); else s = id.status();
      }
      for (TransferId id : ids) {
        absl::Status w = t.Wait(id, kWait);
        if (s.ok()) s = w;
      }
      Reply(s.ok() ? "ok" : Err(s));
    } else if (cmd == "sendsizes") {
      PeerId peer;
      std::string prefix, sizes;
      uint32_t dst0 = 0;
      in >> peer >> prefix >> dst0 >> sizes;
      std::vector<TransferId> ids;
      absl::Status s;
      uint32_t next = 0;
      for (absl::string_view k : absl::StrSplit(sizes, ',', absl::SkipEmpty())) {
        uint32_t count = 0;
        if (!absl::SimpleAtoi(k, &count)) break;
        std::vector<BlockCopy> c;
        for (uint32_t b = 0; b < count; ++b, ++next) c.push_back({next, dst0 + next});
        absl::StatusOr<TransferId> id =
            t.Submit(peer, c, prefix + "-" + std::to_string(ids.size()));
        if (!id.ok()) {
          s = id.status();
          break;
        }
        ids.push_back(*id);
      }
      for (TransferId id : ids) {
        absl::Status w = t.Wait(id, kWait);
        if (s.ok()) s = w;
      }
      Reply(s.ok() ? "ok" : Err(s));
    } else if (cmd == "sendloop") {
      PeerId peer;
      std::string prefix, copies;
      in >> peer >> prefix >> copies;
      std::vector<BlockCopy> c = ParseCopies(copies);
      for (uint64_t i = 0;; ++i) {
        absl::StatusOr<TransferId> id = t.Submit(peer, c, prefix + "-" + std::to_string(i));
        if (i == 0) Reply("started");
        absl::Status s = id.ok() ? t.Wait(*id, kWait) : id.status();
        if (!s.ok()) {
          Reply(Err(s));
          break;
        }
      }
    } else if (cmd == "sendpair") {
      PeerId peer;
      std::string msg, a, b;
      in >> peer >> msg >> a >> b;
      const std::vector<BlockCopy> ca = ParseCopies(a), cb = ParseCopies(b);
      absl::StatusOr<TransferId> ia = t.Submit(peer, ca, "");
      absl::StatusOr<TransferId> ib = t.Submit(peer, cb, msg);
      const absl::Status sa = ia.ok() ? t.Wait(*ia, kWait) : ia.status();
      const absl::Status sb = ib.ok() ? t.Wait(*ib, kWait) : ib.status();
      Reply("done " + absl::StatusCodeToString(sa.code()) + " " +
            absl::StatusCodeToString(sb.code()));
    } else if (cmd == "wait") {
      std::string msg;
      int64_t ms = 0;
      in >> msg >> ms;
      absl::Status s = t.WaitForNotification(msg, absl::Milliseconds(ms));
      Reply(s.ok() ? "ok" : Err(s));
    } else if (cmd == "collect") {
      size_t n = 0;
      int64_t ms = 0;
      in >> n >> ms;
      std::vector<std::string> got;
      auto take = [&] {
        for (Notification& x : t.TakeNotifications()) got.push_back(std::move(x.message));
      };
      const absl::Time deadline = absl::Now() + absl::Milliseconds(ms);
      for (take(); got.size() < n && absl::Now() < deadline; take()) {
        absl::SleepFor(absl::Milliseconds(1));
      }
      absl::SleepFor(absl::Milliseconds(20));
      take();
      Reply("got " + absl::StrJoin(got, ","));
    } else if (cmd == "counters") {
      TransportCounters c = t.counters();
      Reply("registrations " + std::to_string(c.registrations) + " notifications " +
            std::to_string(c.notifications_received));
    } else if (cmd == "quit") {
      break;
    } else {
      Reply("err unknown command " + cmd);
    }
  }
  return 0;
}

}  // namespace
}  // namespace pdserve::transfer

int main(int argc, char** argv) { return pdserve::transfer::Main(argc, argv); }
