#!/usr/bin/env bash
# Device call: the CUDA suites with main at 98ad4f5 (the decode worker's first step on the
# receive path included): cuda_test and cuda_cluster_test.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 "$B/bin/cuda_test" --gtest_brief=1 >"$J/t.txt" 2>&1
echo "== cuda_test: rc $?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure" "$J/t.txt" | head -12
# cuda_cluster_test runs pdserve by the absolute path it was built with.
mkdir -p /work/main/build/bin && ln -sf "$B/bin/pdserve" /work/main/build/bin/pdserve
timeout 250 "$B/bin/cuda_cluster_test" --gtest_brief=1 >"$J/t.txt" 2>&1
echo "== cuda_cluster_test: rc $?"; grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is|error" "$J/t.txt" | head -30
rm -f "$J/t.txt"
} 2>&1 | tee "$J/all.log"
