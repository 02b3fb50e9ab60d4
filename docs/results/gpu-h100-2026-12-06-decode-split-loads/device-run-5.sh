#!/usr/bin/env bash
# Device call: the committed decode kernel (split loads, default) against the old serial loop,
# alternating; all CUDA tests; cuda-ipc copies.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
start=$(date +%s)
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
timeout 200 "$B/bin/cuda_test" --gtest_brief=1 >"$J/t.txt" 2>&1
echo "== cuda_test (default kernel): rc $?"; tail -3 "$J/t.txt"
PDSERVE_DECODE_KERNEL=mma-serial timeout 120 "$B/bin/cuda_test" --gtest_brief=1 --gtest_filter='*Decode*:*Generation*' >"$J/t.txt" 2>&1
echo "== cuda_test decode, mma-serial: rc $?"; tail -3 "$J/t.txt"
# cuda_cluster_test runs pdserve by the absolute path it was built with.
mkdir -p /work/main/build/bin && ln -sf "$B/bin/pdserve" /work/main/build/bin/pdserve
timeout 150 "$B/bin/cuda_cluster_test" --gtest_brief=1 >"$J/t.txt" 2>&1
echo "== cuda_cluster_test: rc $?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure" "$J/t.txt" | head -12
echo "elapsed $(( $(date +%s) - start )) s"
run() {  # label, env...
  local label=$1; shift
  env "$@" timeout 100 "$B/bin/pdserve" bench kernels --device cuda >"$J/k.txt" 2>&1
  echo "== kernels $label: rc $? (elapsed $(( $(date +%s) - start )) s)"
  grep -E "^(decode|checksum|baseline) " "$J/k.txt"
}
for round in 1 2 3 4; do
  run "split-loads r$round"
  run "serial r$round" PDSERVE_DECODE_KERNEL=mma-serial
  [ $(( $(date +%s) - start )) -gt 400 ] && break
done
for round in 1 2 3; do
  [ $(( $(date +%s) - start )) -gt 480 ] && break
  timeout 100 "$B/bin/pdserve" bench transfer --device cuda >"$J/t.txt" 2>&1
  echo "== transfer round $round: rc $? (elapsed $(( $(date +%s) - start )) s)"; grep -E "^(cuda-ipc|baseline|backend) " "$J/t.txt"
done
rm -f "$J/k.txt" "$J/t.txt"
} 2>&1 | tee "$J/all.log"
