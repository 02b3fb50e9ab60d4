#!/usr/bin/env bash
# Device call: decode kernel variants (4 blocks an SM) vs default, cuda-ipc copies at HEAD.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
start=$(date +%s)
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
for v in mma mma-split-loads mma-staggered mma-staggered-dense; do
  PDSERVE_DECODE_KERNEL=$v timeout 120 "$B/bin/cuda_test" --gtest_brief=1 --gtest_filter='*Decode*:*Generation*' >"$J/t.txt" 2>&1
  echo "== cuda_test decode, $v: rc $?"; tail -3 "$J/t.txt"
done
echo "elapsed $(( $(date +%s) - start )) s"
run() {  # label, env...
  local label=$1; shift
  env "$@" timeout 100 "$B/bin/pdserve" bench kernels --device cuda >"$J/k.txt" 2>&1
  echo "== kernels $label: rc $? (elapsed $(( $(date +%s) - start )) s)"
  grep -E "^(decode|checksum|baseline) " "$J/k.txt"
}
for round in 1 2 3 4; do
  run "default r$round" PDSERVE_DECODE_KERNEL=mma
  run "split-loads r$round" PDSERVE_DECODE_KERNEL=mma-split-loads
  run "staggered r$round" PDSERVE_DECODE_KERNEL=mma-staggered
  run "staggered-dense r$round" PDSERVE_DECODE_KERNEL=mma-staggered-dense
  [ $(( $(date +%s) - start )) -gt 330 ] && break
done
for round in 1 2; do
  [ $(( $(date +%s) - start )) -gt 450 ] && break
  timeout 120 "$B/bin/pdserve" bench transfer --device cuda >"$J/t.txt" 2>&1
  echo "== transfer round $round: rc $? (elapsed $(( $(date +%s) - start )) s)"; grep -E "^(cuda-ipc|baseline|backend) " "$J/t.txt"
done
rm -f "$J/k.txt" "$J/t.txt"
} 2>&1 | tee "$J/all.log"
