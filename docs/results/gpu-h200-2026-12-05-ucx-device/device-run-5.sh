#!/usr/bin/env bash
# Fifth device call (run5/): ucx device copies finished on the submitting thread while the
# progress thread sleeps (FinishDeviceCopiesHere); the GPU tests; serving with 30 prompts a cell
# (cuda-ipc against ucx, 512 and 2048 tokens, 1 and 4 req/s). Small files in $OUT, the rest in
# one tarball.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/r6; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
for v in 0; do echo "== ucx_cuda_test PDSERVE_UCX_DEVICE_PUTS=$v"; PDSERVE_UCX_DEVICE_PUTS=$v timeout 120 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -8; done
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -8
for round in 1; do
  SECONDS=0
  timeout 100 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$round.json" >"$J/transfer-$round.txt" 2>&1
  echo "== transfer $round: rc $? in ${SECONDS}s"
  grep -E "^(cuda-ipc|ucx) " "$J/transfer-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
done
echo "== serving"; SECONDS=0
timeout 260 "$B/bin/pdserve" bench --device cuda --backends local,ucx \
  --input-lens 512,2048 --output-lens 64 --rates 1,4 --min-prompts 30 --max-prompts 30 \
  --cell-seconds 30 --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; grep -E "KV transfer mean|^\[(cuda-ipc|ucx) [0-9]" "$J/serving.log"
grep -A8 "^## Backends against" "$J/serving/report.md"
rm -rf "$J/serving/logs-"*
} 2>&1 | tee "$OUT/all.log"
cp "$J/serving.log" "$OUT/" 2>/dev/null; cp "$J/serving/report.md" "$OUT/" 2>/dev/null
tar -C /tmp -czf "$OUT/r6.tar.gz" r6
