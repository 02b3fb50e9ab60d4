#!/usr/bin/env bash
# gap against the idle time before each request, alternating order per round
cd /work/main
for round in 1 2; do
  for g in 20 100 300 1000; do
    build/bin/pdserve bench control-plane --gap-ms $g --requests 100 --warmup 10 --floor-hops 0 --json /tmp/cp/sp-$g-r$round.json > /tmp/cp/sp-$g-r$round.txt 2>&1
    echo "gap-ms $g round $round: $(grep '^gap median' /tmp/cp/sp-$g-r$round.txt)"
  done
done
