#!/usr/bin/env bash
# Device call: the GPU suites on the final build, then cuda-ipc before (pd-old, a2fe9d0) and
# after (pdserve: plan without a sort, 32 KiB blocks for a few runs, reused
# events), alternating, four rounds.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mkdir -p /work/main/build/bin && ln -sf "$B/bin/pdserve" /work/main/build/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -2
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -2
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | grep -v "^\[20" | tail -3
for round in 1 2 3 4; do
  for v in old new; do
    exe="$B/bin/pdserve"; [ $v = old ] && exe="$B/bin/pd-old"
    timeout 100 "$exe" bench transfer --device cuda >"$J/t.txt" 2>&1
    echo "== transfer $v round $round: rc $?"
    grep -E "^cuda-ipc " "$J/t.txt"
  done
done
rm -f "$J/t.txt"
} 2>&1 | tee "$J/all.log"
