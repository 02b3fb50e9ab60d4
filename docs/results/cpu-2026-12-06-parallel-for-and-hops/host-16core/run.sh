#!/usr/bin/env bash
# Device call (H200 host, its 16 CPU cores; no GPU work): ParallelFor with kept threads (new)
# against a thread spawned per helper per call (old), on the control-plane bench (tiny, real
# CPU compute: prefill stage and gap) and the CPU kernel bench; three alternating rounds.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
{
echo "== cpus: $(nproc) $(lscpu | grep 'Model name' | sed 's/  */ /g')"
for round in 1 2 3; do
  for v in old new; do
    exe="$B/bin/pdserve"; [ $v = old ] && exe="$B/bin/pd-old"
    timeout 120 "$exe" bench control-plane --binary "$exe" --requests 200 --warmup 20 --json "$J/cp-$v-r$round.json" >"$J/cp-$v-r$round.txt" 2>&1
    echo "== control-plane real $v round $round: rc $? $(grep 'gap median' "$J/cp-$v-r$round.txt")"
    grep -E "^(prefill  |first step|TTFT  )" "$J/cp-$v-r$round.txt"
  done
done
for round in 1 2; do
  for v in old new; do
    exe="$B/bin/pdserve"; [ $v = old ] && exe="$B/bin/pd-old"
    timeout 120 "$exe" bench kernels --preset tiny --prompt-lens 128 512 --json "$J/kernels-$v-r$round.json" >"$J/kernels-$v-r$round.txt" 2>&1
    echo "== kernels cpu tiny $v round $round: rc $?"
    grep -E "^(prefill|decode|checksum) " "$J/kernels-$v-r$round.txt"
  done
done
for v in old new; do
  exe="$B/bin/pdserve"; [ $v = old ] && exe="$B/bin/pd-old"
  timeout 120 "$exe" bench control-plane --binary "$exe" --compute roofline --requests 200 --warmup 20 --json "$J/cp-roofline-$v.json" >"$J/cp-roofline-$v.txt" 2>&1
  echo "== control-plane roofline $v: rc $? $(grep 'gap median' "$J/cp-roofline-$v.txt")"
done
} 2>&1 | tee "$J/all.log"
