#!/usr/bin/env bash
# One device call (H200): the 2D copy for uniform layer-major runs (PDSERVE_COPY_2D) and UCX
# puts that name the pool's memory handle (PDSERVE_UCX_PUT_MEMH) alternated against the
# defaults, each checked on the GPU first; ucx_perftest's put bandwidth on device memory as the
# ucx rows' baseline; the decode split at 32 and 64 blocks an SM against 16; the GPU doctor test.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
J=/tmp/j; mkdir -p "$J"
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
mkdir -p /work/main/build-ucxgpu/bin && ln -sf "$B/bin/pdserve" /work/main/build-ucxgpu/bin/pdserve
for v in 0 1; do echo "== cuda_test PDSERVE_COPY_2D=$v"; PDSERVE_COPY_2D=$v timeout 120 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -3; done
echo "== cuda_transfer_test PDSERVE_COPY_2D=1"; PDSERVE_COPY_2D=1 timeout 120 "$B/bin/cuda_transfer_test" --gtest_brief=1 2>&1 | tail -3
for v in 0 1; do echo "== ucx_cuda_test PDSERVE_UCX_PUT_MEMH=$v"; PDSERVE_UCX_PUT_MEMH=$v timeout 120 "$B/bin/ucx_cuda_test" --gtest_brief=1 2>&1 | tail -3; done
echo "== ucx_perftest put_bw, device memory both sides"
port=13400
for s in 65536 2097152 8388608; do
  n=$(( s >= 2097152 ? 2000 : 20000 ))
  for tls in "posix,cma,cuda_copy,cuda_ipc"; do
    port=$((port+1))
    UCX_TLS=$tls timeout 60 "$B/bin/ucx_perftest" -p $port >/dev/null 2>&1 &
    sleep 1
    echo "-- size $s x $n, UCX_TLS=$tls"
    UCX_TLS=$tls timeout 60 "$B/bin/ucx_perftest" 127.0.0.1 -p $port -t ucp_put_bw -m cuda,cuda -s $s -n $n -w 200 2>&1 | tail -4
    wait
  done
done
for round in 1 2 3; do
  for v in default copy2d memh; do
    case $v in default) e=() ;; copy2d) e=(PDSERVE_COPY_2D=1 PDSERVE_BENCH_TRANSFER_ONLY=cuda-ipc) ;;
      memh) e=(PDSERVE_UCX_PUT_MEMH=1 PDSERVE_BENCH_TRANSFER_ONLY=ucx) ;; esac
    SECONDS=0
    env "${e[@]}" timeout 150 "$B/bin/pdserve" bench transfer --device cuda --json "$J/transfer-$v-$round.json" >"$J/transfer-$v-$round.txt" 2>&1
    echo "== transfer $v $round: rc $? in ${SECONDS}s"
    grep -E "^(cuda-ipc|ucx) " "$J/transfer-$v-$round.txt" | awk '{print $1, $2, $3, $4, $7, $8, $NF}'
  done
done
grep -B2 -A3 "transports used" "$J/transfer-default-1.txt"
for round in 1 2 3; do
  for v in b16 b32 b64; do
    SECONDS=0
    PDSERVE_DECODE_BLOCKS_PER_SM=${v#b} timeout 120 "$B/bin/pdserve" bench kernels --device cuda --json "$J/kernels-$v-$round.json" >"$J/kernels-$v-$round.txt" 2>&1
    echo "== kernels $v $round: rc $? in ${SECONDS}s"; grep -E "^decode|^checksum" "$J/kernels-$v-$round.txt"
  done
done
echo "== cuda_cluster_test"; timeout 200 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | tail -8
} 2>&1 | tee "$J/all.log"
tar -C /tmp -czf "$OUT/j.tar.gz" j
