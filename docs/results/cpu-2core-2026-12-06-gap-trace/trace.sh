#!/usr/bin/env bash
# How the gap trace was taken (root, 2-vCPU VM): uprobes on one copy of pdserve that every
# process of the bench's cluster runs, plus the scheduler's switch and wake-up events.
set -eu
cp build/bin/pdserve /tmp/pdtrace
T=/sys/kernel/tracing
echo > $T/uprobe_events
addr() { nm -C /tmp/pdtrace | grep -F " T $1(" | head -1 | cut -d' ' -f1; }
probe() { echo "p:pd/$1 /tmp/pdtrace:0x$(addr "$2")" >> $T/uprobe_events; }
probe r_start pdserve::router::RouterService::Start
probe r_sched pdserve::router::RouterService::ScheduleLocked
probe r_runbatch pdserve::router::RouterService::RunBatch
probe fl_cstart pdserve::service::FastLaneClient::Start
probe fl_submitcall pdserve::service::FastLaneServer::SubmitCall
probe fl_runcall pdserve::service::FastLaneServer::RunCall
probe fl_readloop pdserve::service::FastLaneServer::ReadLoop
probe p_runbatch pdserve::prefill::PrefillService::RunBatch
probe p_enginerun pdserve::prefill::PrefillEngine::Run
probe p_submitunless pdserve::prefill::PrefillEngine::SubmitUnlessStopped
probe d_start pdserve::decode::DecodeEngine::Start
probe d_reserved pdserve::decode::DecodeEngine::RunReservedStep
perf record -q -o perf.data -e 'pd:*' -e sched:sched_switch -e sched:sched_wakeup \
  -e sched:sched_waking -a -- build/bin/pdserve bench control-plane --requests 40 --warmup 10 \
  --binary /tmp/pdtrace --floor-hops 0 > bench.txt 2>&1
perf script -i perf.data -F comm,tid,cpu,time,event,trace > s.txt
python3 segments.py s.txt > segments.txt
python3 show_slow.py s.txt > two-requests.txt
echo > $T/uprobe_events
