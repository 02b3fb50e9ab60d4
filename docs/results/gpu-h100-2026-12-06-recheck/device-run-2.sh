#!/usr/bin/env bash
# Device call (stop 43, call 2): main at 871eabe (GPU code of 98ad4f5). Kernels and cuda-ipc
# copies (issue 18), the share of KV transfer hidden under the GPU prefill with 256- and
# 128-token streamed chunks (issue 15), and, on an H200 only, P/D vs colocated under MPS.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT
start=$(date +%s)
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
run() {  # label, env...
  local label=$1; shift
  env "$@" timeout 100 "$B/bin/pdserve" bench kernels --device cuda >"$J/k.txt" 2>&1
  echo "== kernels $label: rc $? (elapsed $(( $(date +%s) - start )) s)"
  grep -E "^(decode|checksum|baseline) " "$J/k.txt"
}
for round in 1 2 3; do
  run "split-loads r$round"
  run "serial r$round" PDSERVE_DECODE_KERNEL=mma-serial
done
for round in 1 2; do
  timeout 100 "$B/bin/pdserve" bench transfer --device cuda >"$J/t.txt" 2>&1
  echo "== transfer round $round: rc $? (elapsed $(( $(date +%s) - start )) s)"; grep -E "^(cuda-ipc|baseline|backend) " "$J/t.txt"
done
rm -f "$J/k.txt" "$J/t.txt"
mkdir -p "$J/r"
for chunk in 256 128; do
  timeout 150 "$B/bin/pdserve" bench --device cuda --backends local --stream-chunk-tokens $chunk \
    --input-lens 2048 --output-lens 64 --rates 1 --min-prompts 30 --max-prompts 30 \
    --cell-seconds 30 --result-dir "$J/r/stream$chunk" >"$J/r/stream$chunk.log" 2>&1
  echo "== streamed $chunk: rc $? (elapsed $(( $(date +%s) - start )) s)"
  grep -h -o '"mean_kv_hidden_share": *[0-9.e-]*' "$J"/r/stream$chunk/*.json | head -3
  grep -E "completed" "$J/r/stream$chunk.log" | tail -1
done
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  nvidia-cuda-mps-control -d; echo "== mps control daemon: rc $?"
  timeout 360 "$B/bin/pdserve" bench --device cuda --backends local,local-zc,colocated --input-lens 512,2048 \
    --output-lens 64 --rates 1 --min-prompts 40 --max-prompts 40 --cell-seconds 40 --result-dir "$J/r/mps" >"$J/r/mps.log" 2>&1
  echo "== serving (MPS): rc $? (elapsed $(( $(date +%s) - start )) s)"
  echo quit | nvidia-cuda-mps-control
  cat "$J/r/mps/colocated_ratios.csv" 2>/dev/null
fi
rm -rf "$J"/r/*/logs-* 2>/dev/null
tar -czf "$J/results.tar.gz" -C "$J" r && rm -rf "$J/r"
} 2>&1 | tee "$J/all.log"
