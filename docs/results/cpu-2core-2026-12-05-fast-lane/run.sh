#!/usr/bin/env bash
# Control-plane A/B for issue 15: default (fast lane + allocate alongside), gRPC + alongside,
# and the path before (gRPC + allocate first), alternating, one request at a time.
set -u
cd /work/main
out=${1:-docs/results/cpu-2core-2026-12-05-fast-lane}
mkdir -p $out
bin=build/bin/pdserve
declare -A flags=([new]="" [grpc]="--no-fast-lane" [before]="--no-fast-lane --allocate-first")
for len in 128 512; do
  rounds=3; [ $len = 512 ] && rounds=2
  for r in $(seq 1 $rounds); do
    for m in new grpc before; do
      f=$out/$m-len$len-r$r
      timeout 300 $bin bench control-plane --requests 200 --warmup 20 --input-len $len ${flags[$m]} --json $f.json > $f.txt 2>&1
      echo "len $len round $r $m: $(grep 'gap median' $f.txt)"
    done
  done
done
for m in new before; do
  f=$out/$m-len128-gap1000
  timeout 300 $bin bench control-plane --requests 60 --warmup 5 --gap-ms 1000 ${flags[$m]} --json $f.json > $f.txt 2>&1
  echo "gap 1000 ms $m: $(grep 'gap median' $f.txt)"
done
