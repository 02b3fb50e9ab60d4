#!/usr/bin/env bash
# serving KV transfer vs the same-run microbenchmark: default 100 us thread slice against the kernel's default (PDSERVE_THREAD_SLICE_US=0), alternating
for r in 1 2; do
  for v in slice100 slice0; do
    [ $r = 2 ] && v=$([ $v = slice100 ] && echo slice0 || echo slice100)
    e=""; [ $v = slice0 ] && e="PDSERVE_THREAD_SLICE_US=0"
    rm -rf /tmp/sl/$v-r$r
    env $e /work/main/build/bin/pdserve bench --backends local,ucx-posix --input-lens 128,512 --output-lens 64 --rates 1,4 --result-dir /tmp/sl/$v-r$r > /tmp/sl/$v-r$r.log 2>&1
    echo "$v r$r rc $? $(date +%T)"
  done
done
