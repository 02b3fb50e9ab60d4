#!/usr/bin/env bash
# the host floor (3 bare hand-offs) against the idle time before each pass; 30 passes before and after a 30-request run
cd /work/main
for g in 20 100 300 1000; do
  build/bin/pdserve bench control-plane --gap-ms $g --requests 30 --warmup 5 --floor-hops 3 > /tmp/cp/fl-$g.txt 2>&1
  echo "gap-ms $g: $(grep '^host floor' /tmp/cp/fl-$g.txt | sed 's/.*passes): //')"
done
