#!/usr/bin/env bash
# Fourth device call: the copy kernel's new default (flat, 512 threads, 128 KiB a block) against
# a few neighbours, each checked by cuda_transfer_test first, three rounds alternated.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j4; mkdir -p "$J"
V="default grid flat-t1024 flat-t512-c256 flat-t512-l4"
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -1
for k in $V; do
  echo "== cuda_transfer_test $k"; PDSERVE_COPY_KERNEL=$k timeout 60 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -1
done
for round in 1 2 3; do
  for k in $V; do
    PDSERVE_COPY_KERNEL=$k PDSERVE_BENCH_TRANSFER_ONLY=cuda-ipc timeout 60 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$k-$round.json" >"$J/transfer-$k-$round.txt" 2>&1
    echo "== transfer $k $round: rc $?"
    grep -E "^cuda-ipc " "$J/transfer-$k-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j4.tar.gz" j4
