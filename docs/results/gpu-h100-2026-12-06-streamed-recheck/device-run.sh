#!/usr/bin/env bash
# Device call (stop 45): main at 96d447c. Issue 15: the share of the KV transfer hidden under
# the GPU prefill (CUDA kernels, local backend, 2048-token prompts) with 128- and 256-token
# streamed chunks, alternating, on whatever card came.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
start=$(date +%s)
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p "$J/r"
for round in 1 2; do
for chunk in 128 256; do
  d="$J/r/s${chunk}r$round"
  timeout 150 "$B/bin/pdserve" bench --device cuda --backends local --stream-chunk-tokens $chunk \
    --input-lens 2048 --output-lens 64 --rates 1 --min-prompts 30 --max-prompts 30 \
    --cell-seconds 30 --result-dir "$d" >"$d.log" 2>&1
  echo "== streamed $chunk round $round: rc $? (elapsed $(( $(date +%s) - start )) s)"
  grep -h -o '"mean_kv_hidden_share": *[0-9.e-]*' "$d"/*.json | head -3
  grep -E "^\| local \| in2048/out64 \| 1 \| [0-9.]+ \|" "$d/report.md" | head -2
done
done
rm -rf "$J"/r/*/logs-* 2>/dev/null
tar -czf "$J/results.tar.gz" -C "$J" r && rm -rf "$J/r"
} 2>&1 | tee "$J/all.log"
