#!/usr/bin/env bash
# Second device call (H200): ucx between device pools on one host now copies through the peer's
# pool as UCX maps it (ucp_rkey_ptr over cuda_ipc) with the batched copy kernel; checked on the
# GPU (round trips, a killed receiver, the cluster), then bench transfer three rounds with the
# default and one with UCX's puts (PDSERVE_UCX_DEVICE_PUTS=1), ucx_perftest as the put baseline,
# and a short serving run (cuda-ipc against ucx, 512 and 2048 tokens, 1 and 4 req/s).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
for v in 0 1; do echo "== ucx_cuda_test PDSERVE_UCX_DEVICE_PUTS=$v"; PDSERVE_UCX_DEVICE_PUTS=$v timeout 150 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -12; done
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -12
for round in 1 2 3; do
  for v in default puts; do
    [ $v = puts ] && [ $round != 2 ] && continue
    case $v in default) e=() ;; puts) e=(PDSERVE_UCX_DEVICE_PUTS=1) ;; esac
    SECONDS=0
    env "${e[@]}" timeout 150 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$v-$round.json" >"$J/transfer-$v-$round.txt" 2>&1
    echo "== transfer $v $round: rc $? in ${SECONDS}s"
    grep -E "^(cuda-ipc|ucx) " "$J/transfer-$v-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
grep -i -A4 "transports" "$J/transfer-default-1.txt" | head -12
echo "== ucx_perftest put_bw, device memory both sides"
port=13500
for s in 65536 2097152 8388608; do
  n=$(( s >= 2097152 ? 2000 : 20000 )); port=$((port+1))
  UCX_TLS=posix,cma,cuda_copy,cuda_ipc timeout 60 "$B/bin/ucx_perftest" -p $port >/dev/null 2>&1 &
  sleep 1
  echo "-- size $s x $n"
  UCX_TLS=posix,cma,cuda_copy,cuda_ipc timeout 60 "$B/bin/ucx_perftest" 127.0.0.1 -p $port -t ucp_put_bw -m cuda,cuda -s $s -n $n -w 200 2>&1 | tail -1
  wait
done
echo "== serving"; SECONDS=0
timeout 330 "$B/bin/pdserve" bench --device cuda --backends local,ucx --input-lens 512,2048 \
  --output-lens 64 --rates 1,4 --min-prompts 20 --max-prompts 20 --cell-seconds 20 \
  --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; tail -45 "$J/serving.log"
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j.tar.gz" j
