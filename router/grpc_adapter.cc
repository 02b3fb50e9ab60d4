#include "router/grpc_adapter.h"

namespace pdserve::router {

RequestTimes TimesOf(const v1::RequestTimeline& t) {
  return RequestTimes{.arrival_us = t.arrival_us(),
                      .scheduled_us = t.scheduled_us(),
                      .prefill_start_us = t.prefill_start_us(),
                      .prefill_end_us = t.prefill_end_us(),
                      .transfer_start_us = t.transfer_start_us(),
                      .transfer_end_us = t.transfer_end_us(),
                      .first_token_us = t.first_token_us(),
                      .finish_us = t.finish_us(),
                      .kv_bytes = t.kv_bytes(),
                      .prefill_worker = t.prefill_worker(),
                      .decode_worker = t.decode_worker(),
                      .transfer_ops = t.transfer_ops(),
                      .transfer_backend = t.transfer_backend(),
                      .transports = t.transports(),
                      .modelled_prefill_us = t.modelled_prefill_us(),
                      .prefill_mock_cpu_us = t.prefill_mock_cpu_us(),
                      .decode_join_us = t.decode_join_us(),
                      .modelled_first_step_us = t.modelled_first_step_us(),
                      .decode_verify_cpu_us = t.decode_verify_cpu_us(),
                      .allocated_us = t.allocated_us(),
                      .decode_admitted_us = t.decode_admitted_us(),
                      .kv_landed_us = t.kv_landed_us(),
                      .first_token_relayed_us = t.first_token_relayed_us(),
                      .transfer_batches = t.transfer_batches(),
                      .transfer_busy_us = t.transfer_busy_us(),
                      .transfer_copy_wait_us = t.transfer_copy_wait_us()};
}

v1::RequestTimeline TimelineOf(const RequestTimes& times) {
  v1::RequestTimeline t;
  t.set_arrival_us(times.arrival_us);
  t.set_scheduled_us(times.scheduled_us);
  t.set_prefill_start_us(times.prefill_start_us);
  t.set_prefill_end_us(times.prefill_end_us);
  t.set_transfer_start_us(times.transfer_start_us);
  t.set_transfer_end_us(times.transfer_end_us);
  t.set_first_token_us(times.first_token_us);
  t.set_finish_us(times.finish_us);
  t.set_kv_bytes(times.kv_bytes);
  t.set_prefill_worker(times.prefill_worker);
  t.set_decode_worker(times.decode_worker);
  t.set_transfer_ops(times.transfer_ops);
  t.set_transfer_backend(times.transfer_backend);
  t.set_transports(times.transports);
  t.set_modelled_prefill_us(times.modelled_prefill_us);
  t.set_prefill_mock_cpu_us(times.prefill_mock_cpu_us);
  t.set_decode_join_us(times.decode_join_us);
  t.set_modelled_first_step_us(times.modelled_first_step_us);
  t.set_decode_verify_cpu_us(times.decode_verify_cpu_us);
  t.set_allocated_us(times.allocated_us);
  t.set_decode_admitted_us(times.decode_admitted_us);
  t.set_kv_landed_us(times.kv_landed_us);
  t.set_first_token_relayed_us(times.first_token_relayed_us);
  t.set_transfer_batches(times.transfer_batches);
  t.set_transfer_busy_us(times.transfer_busy_us);
  t.set_transfer_copy_wait_us(times.transfer_copy_wait_us);
  return t;
}

}  // namespace pdserve::router
