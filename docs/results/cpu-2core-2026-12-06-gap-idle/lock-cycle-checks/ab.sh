#!/usr/bin/env bash
# old (main at ecf8476: Abseil's lock-cycle checks on) against new (off), alternating
for r in 1 2 3; do
  for v in old new; do
    [ $r = 2 ] && v=$([ $v = old ] && echo new || echo old)
    /tmp/pdserve-$v bench control-plane --requests 200 --warmup 20 --json /tmp/lc/$v-r$r.json > /tmp/lc/$v-r$r.txt 2>&1
    echo "$v r$r: $(grep '^gap median' /tmp/lc/$v-r$r.txt) | TTFT p50 $(grep '^TTFT  ' /tmp/lc/$v-r$r.txt | awk '{print $(NF-2)}')"
  done
done
