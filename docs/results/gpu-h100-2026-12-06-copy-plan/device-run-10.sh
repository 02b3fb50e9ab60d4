#!/usr/bin/env bash
# Device call: cuda-ipc before (pd-old, a2fe9d0) and after (31c25e5), alternating, three rounds;
# then bench kernels --device cuda (decode against the checksum row) twice.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for round in 1 2 3; do
  for v in old new; do
    exe="$B/bin/pdserve"; [ $v = old ] && exe="$B/bin/pd-old"
    timeout 100 "$exe" bench transfer --device cuda >"$J/t.txt" 2>&1
    echo "== transfer $v round $round: rc $?"
    grep -E "^cuda-ipc " "$J/t.txt"
  done
done
for round in 1 2; do
  timeout 150 "$B/bin/pdserve" bench kernels --device cuda >"$J/k.txt" 2>&1
  echo "== kernels round $round: rc $?"
  grep -E "^(decode|checksum|baseline) " "$J/k.txt"
done
rm -f "$J/t.txt" "$J/k.txt"
} 2>&1 | tee "$J/all.log"
