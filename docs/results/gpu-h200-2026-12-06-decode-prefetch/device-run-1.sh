#!/usr/bin/env bash
# Device call 1 (H200): the mma decode kernel with L2 prefetch of the next tiles
# (PDSERVE_DECODE_PREFETCH = 0..3 tiles), the register-buffer variant with it, and 24 splits an
# SM (PDSERVE_DECODE_BLOCKS_PER_SM) with it; three rounds alternating the settings; cuda_test's decode
# tests with and without prefetch (the decode tests compare tokens, checksums and attention with the CPU);
# bench transfer (cuda-ipc rows) twice; the control-plane bench on the
# host's CPUs. Everything goes to $OUT as it runs.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
echo "== cuda_test decode"; timeout 150 "$B/bin/cuda_test" --gtest_brief=1 --gtest_filter='*Decode*' 2>&1 | tail -3
echo "== cuda_test decode, PDSERVE_DECODE_PREFETCH=2"
PDSERVE_DECODE_PREFETCH=2 timeout 150 "$B/bin/cuda_test" --gtest_brief=1 --gtest_filter='*Decode*' 2>&1 | tail -3
for round in 1 2 3; do
  for v in p0 p1 p2 p3 reg-p2 b24-p2; do
    case $v in
      p0) e=() ;;
      p1) e=(PDSERVE_DECODE_PREFETCH=1) ;;
      p2) e=(PDSERVE_DECODE_PREFETCH=2) ;;
      p3) e=(PDSERVE_DECODE_PREFETCH=3) ;;
      reg-p0) e=(PDSERVE_DECODE_KERNEL=mma-registers) ;;
      reg-p2) e=(PDSERVE_DECODE_KERNEL=mma-registers PDSERVE_DECODE_PREFETCH=2) ;;
      b12-p2) e=(PDSERVE_DECODE_BLOCKS_PER_SM=12 PDSERVE_DECODE_PREFETCH=2) ;;
      b24-p2) e=(PDSERVE_DECODE_BLOCKS_PER_SM=24 PDSERVE_DECODE_PREFETCH=2) ;;
    esac
    env "${e[@]}" timeout 100 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$v-$round.json" >"$J/kernels-$v-$round.txt" 2>&1
    echo "== kernels $v $round: rc $?"
    grep -E "^(decode|checksum) " "$J/kernels-$v-$round.txt" | awk '{print $1, $2, $3, $4, $5, $9}'
  done
done
for round in 1 2; do
  timeout 100 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$round.json" >"$J/transfer-$round.txt" 2>&1
  echo "== transfer $round: rc $?"; grep -E "^cuda-ipc " "$J/transfer-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
done
# Issue 15's control-plane share of TTFT on this host's CPUs (16 cores; tiny, real CPU compute,
# one request at a time): the default path against the path before (gRPC, allocate first).
echo "== cpus: $(nproc)"
for round in 1 2; do
  for m in new before; do
    f=()
    [ $m = before ] && f=(--no-fast-lane --allocate-first)
    timeout 120 "$B/bin/pdserve" bench control-plane --requests 200 --warmup 20 --input-len 128 "${f[@]}" --json "$J/cp-$m-len128-r$round.json" >"$J/cp-$m-len128-r$round.txt" 2>&1
    echo "== control-plane $m round $round: rc $? $(grep 'gap median' "$J/cp-$m-len128-r$round.txt")"
  done
done
} 2>&1 | tee "$J/all.log"
