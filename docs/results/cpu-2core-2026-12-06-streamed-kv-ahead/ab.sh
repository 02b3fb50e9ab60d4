#!/bin/bash
for r in 3 4; do
 for v in old ahead; do
  d=/tmp/abw/$v-$r; rm -rf $d; mkdir -p $d
  /tmp/pdserve-$v bench --backends local,ucx-posix,colocated --input-lens 512,2048 --output-lens 64 --rates 1 --min-prompts 30 --cell-seconds 30 --stream-chunk-tokens 128 --result-dir $d > $d/log 2>&1
  echo "$v-$r rc $? $(date +%T)"
 done
done
