// The receive side: the worker's active-message handlers, run by the progress thread. Data
// messages (from peers without a put lane) land in this pool; notifications from senders that
// present the cluster credential go to the inbox that TakeNotifications / WaitForNotification
// read.
#include <ucp/api/ucp.h>

#include <cstring>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "transfer/sender_credential.h"
#include "transfer/ucx/ucx_transport_impl.h"

namespace pdserve::transfer::ucx {

// A data message (kDataAmId): its bytes at the offset its header names in this pool. Runs on
// the progress thread, before any notification the sender sent after it.
ucs_status_t UcxEngine::OnData(void* arg, const void* header, size_t header_length, void* data,
                                  size_t length, const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxEngine*>(arg);
  std::byte* pool = self->pool_data_.load(std::memory_order_acquire);
  uint64_t dst = 0;
  if (header_length == sizeof(dst)) std::memcpy(&dst, header, sizeof(dst));
  if (pool == nullptr || header_length != sizeof(dst) ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0 ||  // sent eager: never
      dst > self->pool_bytes_.load(std::memory_order_relaxed) ||
      length > self->pool_bytes_.load(std::memory_order_relaxed) - dst) {
    self->log_->error("agent {}: dropped a malformed KV data message ({} bytes at {})",
                      self->options_.agent_name, length, dst);
    return UCS_OK;
  }
  std::memcpy(pool + dst, data, length);
  return UCS_OK;
}

ucs_status_t UcxEngine::OnNotification(void* arg, const void* header, size_t header_length,
                                          void* data, size_t length,
                                          const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxEngine*>(arg);
  // Anyone who learnt this worker's address can send it active messages: only a sender that
  // presents the cluster credential announces KV. Bounded before anything is kept.
  absl::StatusOr<SenderHeader> sender =
      DecodeSenderHeader(std::string_view(static_cast<const char*>(header), header_length));
  absl::Status ok = sender.ok()
                        ? CheckSenderCredential(self->options_.peer_credential, sender->credential)
                        : sender.status();
  if (ok.ok() && length > kMaxNotificationBytes) {
    ok = absl::InvalidArgumentError(absl::StrCat("notification of ", length, " bytes"));
  }
  if (!ok.ok()) {
    const uint64_t n = self->notifications_refused_.fetch_add(1) + 1;
    if (n <= 10 || n % 1000 == 0) {
      self->log_->warn("agent {}: dropped a KV notification from '{}': {} ({} so far)",
                       self->options_.agent_name,
                       absl::CEscape(sender.ok() ? sender->agent : std::string()), ok.ToString(),
                       n);
    }
    return UCS_OK;
  }
  self->inbox_.Push(
      {std::move(sender->agent), std::string(static_cast<const char*>(data), length)});
  return UCS_OK;
}

}  // namespace pdserve::transfer::ucx
