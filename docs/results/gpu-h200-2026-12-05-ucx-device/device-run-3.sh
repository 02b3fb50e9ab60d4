#!/usr/bin/env bash
# Third device call (H200, short: little device time was left): ucx's device copy launched on the
# submitting thread (PDSERVE_UCX_DEVICE_INLINE=1) checked by the GPU tests and measured in
# serving against cuda-ipc; the doctor's staging item on a ucx-staged cluster; one bench
# transfer round. Everything is written to $OUT as it goes.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== ucx_cuda_test PDSERVE_UCX_DEVICE_INLINE=1"
PDSERVE_UCX_DEVICE_INLINE=1 timeout 100 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -6
echo "== cuda_cluster_test"; PDSERVE_UCX_DEVICE_INLINE=1 timeout 150 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -8
for v in 0 1; do
  PDSERVE_UCX_DEVICE_INLINE=$v timeout 60 "$B/bin/pdserve" bench transfer --device cuda >"$J/transfer-inline$v.txt" 2>&1
  echo "== transfer inline=$v: rc $?"; grep -E "^(cuda-ipc|ucx) " "$J/transfer-inline$v.txt" | awk '{print $1, $2, $3, $4, $NF}'
done
echo "== serving (ucx inline)"; SECONDS=0
PDSERVE_UCX_DEVICE_INLINE=1 timeout 150 "$B/bin/pdserve" bench --device cuda --backends local,ucx \
  --input-lens 512,2048 --output-lens 64 --rates 1,4 --min-prompts 20 --max-prompts 20 \
  --cell-seconds 20 --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; grep -E "KV transfer mean|^\[(cuda-ipc|ucx) [0-9]" "$J/serving.log"
grep -A8 "^## Backends against" "$J/serving/report.md"
} 2>&1 | tee "$J/all.log"
rm -rf "$J/serving/logs-"*  # the workers' logs: too many files to bring back
