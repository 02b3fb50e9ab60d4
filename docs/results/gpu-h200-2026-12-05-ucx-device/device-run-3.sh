#!/usr/bin/env bash
# Third device call (H200, or an H100 when that is what comes: the same plan gives its figures): ucx's device copy now launched on the submitting thread (the
# progress thread, woken beside the copy, sends the notification); the prefill worker reports
# ucx-staged to the doctor. GPU tests, bench transfer twice, then serving cuda-ipc against ucx
# (20 prompts a cell, 512 and 2048 tokens, 1 and 4 req/s); cuda-ipc copy variants alternated
# (side streams for runs of 4 MiB and more, a persistent grid of 528 or 1056 blocks).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
for v in 0 1; do echo "== ucx_cuda_test PDSERVE_UCX_DEVICE_PUTS=$v"; PDSERVE_UCX_DEVICE_PUTS=$v timeout 150 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -8; done
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -12
V="default streams4 streams8 grid528 grid1056"
env_of() { case $1 in default) echo "" ;; streams4) echo PDSERVE_CUDA_IPC_STREAMS=4 ;; streams8) echo PDSERVE_CUDA_IPC_STREAMS=8 ;;
  grid528) echo PDSERVE_COPY_GRID_BLOCKS=528 ;; grid1056) echo PDSERVE_COPY_GRID_BLOCKS=1056 ;; esac; }
for v in streams4 grid528; do
  echo "== cuda_transfer_test $v (side streams for every run)"
  env $(env_of $v) PDSERVE_CUDA_IPC_STREAM_RUN_BYTES=16 timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -2
done
for round in 1 2; do
  for v in $V; do
    SECONDS=0
    env $(env_of $v) timeout 150 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$v-$round.json" >"$J/transfer-$v-$round.txt" 2>&1
    echo "== transfer $v $round: rc $? in ${SECONDS}s"
    grep -E "^(cuda-ipc|ucx) " "$J/transfer-$v-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
for round in 1 2; do
  SECONDS=0
  timeout 120 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$round.json" >"$J/kernels-$round.txt" 2>&1
  echo "== kernels $round: rc $? in ${SECONDS}s"; grep -E "^decode|^checksum" "$J/kernels-$round.txt"
done
echo "== ucx_perftest put_bw, device memory both sides"
port=13600
for s in 65536 8388608; do
  n=$(( s >= 2097152 ? 2000 : 20000 )); port=$((port+1))
  UCX_TLS=posix,cma,cuda_copy,cuda_ipc timeout 60 "$B/bin/ucx_perftest" -p $port >/dev/null 2>&1 &
  sleep 1
  echo "-- size $s x $n"
  UCX_TLS=posix,cma,cuda_copy,cuda_ipc timeout 60 "$B/bin/ucx_perftest" 127.0.0.1 -p $port -t ucp_put_bw -m cuda,cuda -s $s -n $n -w 200 2>&1 | tail -1
  wait
done
echo "== serving"; SECONDS=0
timeout 300 "$B/bin/pdserve" bench --device cuda --backends local,ucx --input-lens 512,2048 \
  --output-lens 64 --rates 1,4 --min-prompts 20 --max-prompts 20 --cell-seconds 20 \
  --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; grep -E "KV transfer mean|^\[(cuda-ipc|ucx) [0-9]" "$J/serving.log"
grep -A8 "^## Backends against" "$J/serving/report.md"
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j.tar.gz" j
