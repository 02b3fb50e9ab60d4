#!/usr/bin/env bash
# Third device call (H200; run3/; the earlier plan for it was never run and is folded in): ucx's
# device copy launched on the submitting thread (PDSERVE_UCX_DEVICE_INLINE=1) under the GPU
# tests and in serving against cuda-ipc; the doctor's staging verdict on a ucx-staged cluster
# (cuda_cluster_test); bench transfer three rounds alternating the defaults with the study knobs
# (inline launch, cuda-ipc side streams, a persistent copy grid); bench kernels two rounds.
# Everything is written to $OUT as it goes.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
echo "== ucx_cuda_test PDSERVE_UCX_DEVICE_INLINE=1"
PDSERVE_UCX_DEVICE_INLINE=1 timeout 120 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -6
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -10
for round in 1 2 3; do
  for v in default inline streams2 streams4 grid264 grid528; do
    case $v in
      default) e=() ;;
      inline) e=(PDSERVE_UCX_DEVICE_INLINE=1) ;;
      streams2) e=(PDSERVE_CUDA_IPC_STREAMS=2) ;;
      streams4) e=(PDSERVE_CUDA_IPC_STREAMS=4) ;;
      grid264) e=(PDSERVE_COPY_GRID_BLOCKS=264) ;;
      grid528) e=(PDSERVE_COPY_GRID_BLOCKS=528) ;;
    esac
    SECONDS=0
    env "${e[@]}" timeout 100 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$v-$round.json" >"$J/transfer-$v-$round.txt" 2>&1
    echo "== transfer $v $round: rc $? in ${SECONDS}s"
    grep -E "^(cuda-ipc|ucx) " "$J/transfer-$v-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
for round in 1 2; do
  SECONDS=0
  timeout 100 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$round.json" >"$J/kernels-$round.txt" 2>&1
  echo "== kernels $round: rc $? in ${SECONDS}s"; grep -E "^decode|^checksum" "$J/kernels-$round.txt"
done
echo "== serving (ucx inline)"; SECONDS=0
PDSERVE_UCX_DEVICE_INLINE=1 timeout 200 "$B/bin/pdserve" bench --device cuda --backends local,ucx \
  --input-lens 512,2048 --output-lens 64 --rates 1,4 --min-prompts 20 --max-prompts 20 \
  --cell-seconds 20 --result-dir "$J/serving" >"$J/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; grep -E "KV transfer mean|^\[(cuda-ipc|ucx) [0-9]" "$J/serving.log"
grep -A8 "^## Backends against" "$J/serving/report.md"
rm -rf "$J/serving/logs-"*  # the workers' logs: too many files to bring back
} 2>&1 | tee "$J/all.log"
