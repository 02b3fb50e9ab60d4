#!/usr/bin/env bash
# Device call (stop 43, call 1): issue 18's two open H200 figures with main at 871eabe (GPU code
# of 98ad4f5): bench kernels (split loads default vs the old serial loop, alternating) and bench
# transfer (cuda-ipc rows); then issue 15's P/D vs colocated serving cells under CUDA MPS.
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
for round in 1 2 3; do
  timeout 100 "$B/bin/pdserve" bench transfer --device cuda >"$J/t.txt" 2>&1
  echo "== transfer round $round: rc $? (elapsed $(( $(date +%s) - start )) s)"; grep -E "^(cuda-ipc|baseline|backend) " "$J/t.txt"
done
rm -f "$J/k.txt" "$J/t.txt"
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
nvidia-cuda-mps-control -d; echo "== mps control daemon: rc $?"
timeout 420 "$B/bin/pdserve" bench --device cuda --backends local,local-zc,colocated --input-lens 512,2048 \
  --output-lens 64 --rates 1 --min-prompts 50 --max-prompts 50 --cell-seconds 50 --result-dir "$J/mps" >"$J/mps.log" 2>&1
echo "== serving (MPS): rc $? (elapsed $(( $(date +%s) - start )) s)"
echo quit | nvidia-cuda-mps-control
cp $CUDA_MPS_LOG_DIRECTORY/control.log "$J/mps/mps-control.log" 2>/dev/null
grep -E "completed|ratio" "$J/mps.log" | head -20
cat "$J/mps/colocated_ratios.csv" 2>/dev/null
} 2>&1 | tee "$J/all.log"
