#!/usr/bin/env bash
# Second device call: the copy kernel's grid orders (grid / flat / flat with streaming cache
# hints) alternated, each checked by cuda_transfer_test first; the decode split default (16
# blocks an SM) against the old 4; results tarred (the device returns few files).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j2; mkdir -p "$J"
{
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu,power.draw --format=csv
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -2
for k in grid flat flat-cs; do
  echo "== cuda_transfer_test $k"; PDSERVE_COPY_KERNEL=$k timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -2
done
for round in 1 2 3; do
  for k in grid flat flat-cs; do
    SECONDS=0
    PDSERVE_COPY_KERNEL=$k timeout 120 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$k-$round.json" >"$J/transfer-$k-$round.txt" 2>&1
    echo "== transfer $k $round: rc $? in ${SECONDS}s"
    grep -E "^cuda-ipc " "$J/transfer-$k-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
for round in 1 2 3; do
  for v in b16 b4; do
    case $v in b16) e=() ;; b4) e=(PDSERVE_DECODE_BLOCKS_PER_SM=4) ;; esac
    env "${e[@]}" timeout 120 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$v-$round.json" >"$J/kernels-$v-$round.txt" 2>&1
    echo "== kernels $v $round: rc $?"; grep -E "^decode|^checksum|baseline" "$J/kernels-$v-$round.txt"
  done
done
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j2.tar.gz" j2
