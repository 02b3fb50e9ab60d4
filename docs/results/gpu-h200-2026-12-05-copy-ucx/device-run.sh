#!/usr/bin/env bash
# One device call: CUDA tests (with the CUDA-aware UCX of the libucx-cu13 wheel), cuda-ipc copy
# variants and decode-kernel variants alternated, then a short serving run (cuda-ipc, ucx over
# cuda_ipc, colocated). Carried as .bundle-ucxgpu (scripts/bundle-ucx-cuda.sh).
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=$OUT/j; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
ucx_info -v | head -3
ucx_info -d 2>&1 | grep -E "Transport:" | sort | uniq -c
# cuda_cluster_test runs the pdserve binary by the absolute path it was built with.
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
echo "== cuda_test"; timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -4
echo "== cuda_test decode, mma-serial4"
PDSERVE_DECODE_KERNEL=mma-serial4 timeout 120 "$B/bin/cuda_test" --gtest_brief=1 --gtest_filter='*Decode*' 2>&1 | tail -3
for v in default few0 chunk256 api1m api16; do
  case $v in
    default) e=() ;; few0) e=(PDSERVE_COPY_FEW_OPS=0) ;; chunk256) e=(PDSERVE_COPY_CHUNK_KIB=256) ;;
    api1m) e=(PDSERVE_CUDA_IPC_BATCH_API_BYTES=1048576) ;; api16) e=(PDSERVE_CUDA_IPC_BATCH_API_BYTES=16) ;;
  esac
  echo "== cuda_transfer_test $v"; env "${e[@]}" timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
done
echo "== ucx_cuda_test"; timeout 120 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | tail -4
for round in 1 2; do
  for v in few0 default chunk256 api1m api16; do
    case $v in
      default) e=() ;; few0) e=(PDSERVE_COPY_FEW_OPS=0) ;; chunk256) e=(PDSERVE_COPY_CHUNK_KIB=256) ;;
      api1m) e=(PDSERVE_CUDA_IPC_BATCH_API_BYTES=1048576) ;; api16) e=(PDSERVE_CUDA_IPC_BATCH_API_BYTES=16) ;;
    esac
    SECONDS=0
    env "${e[@]}" timeout 120 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$v-$round.json" >"$J/transfer-$v-$round.txt" 2>&1
    echo "== transfer $v $round: rc $? in ${SECONDS}s"
    grep -E "^(cuda-ipc|ucx) " "$J/transfer-$v-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
grep -A3 "transports used" "$J/transfer-default-1.txt"
for round in 1 2 3; do
  for v in mma serial4 b8 b16; do
    case $v in
      mma) e=() ;; serial4) e=(PDSERVE_DECODE_KERNEL=mma-serial4) ;;
      b8) e=(PDSERVE_DECODE_BLOCKS_PER_SM=8) ;; b16) e=(PDSERVE_DECODE_BLOCKS_PER_SM=16) ;;
    esac
    SECONDS=0
    env "${e[@]}" timeout 120 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$v-$round.json" >"$J/kernels-$v-$round.txt" 2>&1
    echo "== kernels $v $round: rc $? in ${SECONDS}s"; grep -E "^decode|^checksum" "$J/kernels-$v-$round.txt"
  done
done
echo "== cuda_cluster_test"; timeout 150 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | tail -6
echo "== serving"; SECONDS=0
timeout 330 "$B/bin/pdserve" bench --device cuda --backends local,ucx,colocated --input-lens 512,2048 \
  --output-lens 64 --rates 1 --min-prompts 20 --max-prompts 20 --cell-seconds 20 \
  --result-dir "$OUT/serving" >"$OUT/serving.log" 2>&1
echo "rc $? in ${SECONDS}s"; tail -40 "$OUT/serving.log"
} 2>&1 | tee "$OUT/all.log"
