#!/usr/bin/env bash
# Device call (the GPU host's CPUs only): issue 15's control-plane bench with the 100 us thread
# slice (default) and without (PDSERVE_THREAD_SLICE_US=0), alternating, three rounds, real CPU
# compute (tiny).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== cpus: $(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g'); kernel $(uname -r)"
for round in 1 2 3; do
  for s in 0 100; do
    PDSERVE_THREAD_SLICE_US=$s timeout 120 "$B/bin/pdserve" bench control-plane --binary "$B/bin/pdserve" --requests 200 --warmup 20 >"$J/cp-slice$s-r$round.txt" 2>&1
    echo "== slice $s round $round: rc $? $(grep 'gap median' "$J/cp-slice$s-r$round.txt")"
    grep -E "^(queue|dispatch|submit|join|first step) " "$J/cp-slice$s-r$round.txt"
  done
done
} 2>&1 | tee "$J/all.log"
