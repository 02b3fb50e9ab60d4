#pragma once

// Who may use a `local` notification socket (notify_channel.h) and how much the receiver keeps
// for it: a process of this user (SO_PEERCRED, checked on both ends) whose hello carries the
// cluster credential (transfer/sender_credential.h), within the bounds below.

#include <cstddef>

#include "common/cluster_secret.h"

namespace pdserve::transfer::notify {

inline constexpr size_t kMaxSenders = 64;  // connections at once, hello or not
// Socket packets read ahead of their turn (their sequence number is later than a ring slot
// still missing). A sane sender has at most its in-flight batches' worth out of order.
inline constexpr size_t kMaxPendingPackets = 1024;
inline constexpr size_t kMaxPendingBytes = 4 << 20;

// The peer check itself is common's (CheckPeerIsSameUser, common/cluster_secret.h).
using ::pdserve::CheckPeerIsSameUser;

}  // namespace pdserve::transfer::notify
