#!/usr/bin/env bash
# Issue 19's run on a host with two GPUs (device kind nvidia-h200-x2 or nvidia-h100-x2), in one
# device call. Build here, then:
#   PDSERVE_BUNDLE_SH=<the device lending tool's bundle.sh, not part of this repository> \
#   bash scripts/bundle-ucx-cuda.sh \
#     $PWD/.bundle-ucxgpu build-ucxgpu/bin/pdserve build-ucxgpu/tests/cuda/{cuda_test,cuda_transfer_test,nccl_test,ucx_cuda_test,cuda_cluster_test}
#   cp docs/device-plans/two-gpu-run.sh .bundle-ucxgpu/script.sh
#   mkdir -p .bundle-pack && tar -cJf .bundle-pack/b.tar.xz .bundle-ucxgpu
# device: carry [".bundle-pack"], command "tar -xJf .bundle-pack/b.tar.xz && bash .bundle-ucxgpu/script.sh"
# It runs the CUDA suites on both GPUs (nccl_test needs two), the transfer bench across the GPUs
# (cuda-ipc with peer access, ucx over cuda_ipc, nccl; ratios to cudaMemcpyPeer), and the serving
# bench with prefill on GPU 0 and decode on GPU 1 (cuda-ipc, ucx, nccl, colocated).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
export NCCL_NVLS_ENABLE=0
J=$OUT/j; mkdir -p "$J"
{
echo "== devices"; nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version --format=csv
nvidia-smi topo -m 2>&1 | head -8
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== nccl_test"; NCCL_DEBUG=WARN timeout 240 "$B/bin/nccl_test" 2>&1 | tail -25
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_transfer_test"; timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
echo "== ucx_cuda_test"; timeout 120 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | tail -3
echo "== cuda_cluster_test"; timeout 150 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | tail -4
for round in 1 2; do
  SECONDS=0
  timeout 200 "$B/bin/pdserve" bench transfer --device cuda --across-gpus \
    --json "$J/transfer-across-$round.json" >"$J/transfer-across-$round.txt" 2>&1
  echo "== transfer across GPUs $round: rc $? in ${SECONDS}s"; cat "$J/transfer-across-$round.txt"
done
echo "== serving, prefill GPU 0, decode GPU 1"; SECONDS=0
timeout 420 "$B/bin/pdserve" bench --device cuda --backends local,ucx,nccl,colocated \
  --prefill-gpus 0 --decode-gpus 1 --input-lens 512,2048 --output-lens 64 --rates 1 \
  --min-prompts 20 --max-prompts 20 --cell-seconds 20 \
  --result-dir "$OUT/serving" >"$OUT/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; tail -40 "$OUT/serving.log"
} 2>&1 | tee "$OUT/all.log"
