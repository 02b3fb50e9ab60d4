#!/usr/bin/env bash
# Device call (H100): issue 18's two open GPU targets with the current kernels, three rounds:
# decode attention vs the checksum (pure read) row at batch 8 and 1 (bench kernels --device
# cuda), and cuda-ipc copies vs a D2D copy (bench transfer --device cuda, cuda-ipc rows).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
for round in 1 2 3; do
  timeout 100 "$B/bin/pdserve" bench kernels --device cuda >"$J/k.txt" 2>&1
  echo "== kernels round $round: rc $?"
  grep -E "^(decode|checksum|baseline) " "$J/k.txt"
done
for round in 1 2; do
  timeout 150 "$B/bin/pdserve" bench transfer --device cuda >"$J/t.txt" 2>&1
  echo "== transfer round $round: rc $?"; grep -E "^(cuda-ipc|baseline|backend) " "$J/t.txt"
done
rm -f "$J/k.txt" "$J/t.txt"
} 2>&1 | tee "$J/all.log"
