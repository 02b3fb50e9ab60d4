#!/usr/bin/env bash
# Third device call: the copy kernel's shapes (auto = flat for runs of >= 1 MiB on average,
# grid otherwise; and flat variants) alternated, each checked by cuda_transfer_test first; then
# P/D (cuda-ipc, zero-copy, ucx over cuda_ipc) against colocated at 512 tokens under CUDA MPS,
# 60 prompts per cell.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j3; mkdir -p "$J"
V="auto grid flat flat-128k flat-l4 flat-t512 flat-l16"
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv
for k in $V; do
  echo "== cuda_transfer_test $k"; PDSERVE_COPY_KERNEL=$k timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -1
done
for round in 1 2; do
  for k in $V; do
    PDSERVE_COPY_KERNEL=$k PDSERVE_BENCH_TRANSFER_ONLY=cuda-ipc timeout 120 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$k-$round.json" >"$J/transfer-$k-$round.txt" 2>&1
    echo "== transfer $k $round: rc $?"
    grep -E "^cuda-ipc " "$J/transfer-$k-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
MPS=$(command -v nvidia-cuda-mps-control || ls /usr/local/nvidia/bin/nvidia-cuda-mps-control /usr/bin/nvidia-cuda-mps-control 2>/dev/null | head -1)
echo "mps control: ${MPS:-none}"
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
"$MPS" -d && sleep 1 && echo "== serving under MPS" && SECONDS=0 &&
timeout 330 "$B/bin/pdserve" bench --device cuda --backends local,local-zc,ucx,colocated --input-lens 512 \
  --output-lens 64 --rates 1 --min-prompts 60 --max-prompts 60 --cell-seconds 60 \
  --result-dir "$J/serving-mps" >"$J/serving-mps.log" 2>&1
echo "rc $? in ${SECONDS}s"; echo quit | "$MPS"; sleep 1
grep -E "P/D TTFT|vs cuda-ipc|report:" "$J/serving-mps.log" | cut -c1-700
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j3.tar.gz" j3
