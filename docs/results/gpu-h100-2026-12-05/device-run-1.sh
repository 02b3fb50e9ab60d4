#!/usr/bin/env bash
# One device call on an H100 (issue 18's "H100 and H200" figures): the GPU suites, bench
# transfer (cuda-ipc and ucx between device pools, ratios to the same run's D2D copy) and bench
# kernels (decode against the checksum-only pass) two rounds each, ucx_perftest's put
# bandwidth on device memory, and a short serving run (cuda-ipc against ucx).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/h; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
echo "== ucx_cuda_test"; timeout 150 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -6
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -8
for round in 1 2; do
  SECONDS=0
  timeout 150 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$round.json" >"$J/transfer-$round.txt" 2>&1
  echo "== transfer $round: rc $? in ${SECONDS}s"
  grep -E "^(cuda-ipc|ucx) " "$J/transfer-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  SECONDS=0
  timeout 120 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$round.json" >"$J/kernels-$round.txt" 2>&1
  echo "== kernels $round: rc $? in ${SECONDS}s"; grep -E "^decode|^checksum" "$J/kernels-$round.txt"
done
grep -i -A3 "transports used" "$J/transfer-1.txt"
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
timeout 200 "$B/bin/pdserve" bench --device cuda --backends local,ucx --input-lens 512,2048 \
  --output-lens 64 --rates 1 --min-prompts 20 --max-prompts 20 --cell-seconds 20 \
  --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; grep -E "KV transfer mean|^\[(cuda-ipc|ucx) [0-9]" "$J/serving.log"
grep -A6 "^## Backends against" "$J/serving/report.md"
} 2>&1 | tee "$J/all.log"
cp "$J/all.log" "$OUT/" 2>/dev/null; rm -rf "$J/serving/logs-"*
tar -C /tmp -czf "$OUT/h.tar.gz" h
