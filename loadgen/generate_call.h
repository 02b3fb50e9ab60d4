#pragma once

#include <cstdint>

#include "grpcpp/grpcpp.h"
#include "loadgen/call_tracker.h"
#include "loadgen/request_record.h"
#include "pdserve.grpc.pb.h"

namespace pdserve::loadgen {

// One streaming Router.Generate call on gRPC's callback API: no thread per request; gRPC's
// callback threads deliver chunks and the timestamps are taken there, as the bytes arrive. The
// object must outlive the call (until the tracker has counted it done).
class GenerateCall final : public grpc::ClientReadReactor<pdserve::v1::GenerateResponse> {
 public:
  // `record` is filled in as chunks arrive; times are relative to `t0_ns` (MonotonicNanos).
  GenerateCall(RequestRecord* record, CallTracker* tracker, int64_t t0_ns);

  // Sends `request` (which must live until the call is done) with a deadline of `timeout_s`.
  void Start(pdserve::v1::Router::Stub* stub, const pdserve::v1::GenerateRequest* request,
             double timeout_s);

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  RequestRecord* record_;
  CallTracker* tracker_;
  const int64_t t0_ns_;
  int64_t send_ns_ = 0;
  int64_t last_event_ns_ = -1;
  bool saw_finished_ = false;
  grpc::ClientContext context_;
  pdserve::v1::GenerateResponse response_;
};

// Durations of a server timeline; fields the server left at 0 count as absent.
ServerTimeline TimelineFromProto(const pdserve::v1::RequestTimeline& timeline);

}  // namespace pdserve::loadgen
