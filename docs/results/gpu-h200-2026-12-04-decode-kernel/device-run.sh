#!/usr/bin/env bash
# One device call for the decode-kernel work (gpudecode helper): CUDA tests against the CPU,
# then `bench kernels --device cuda` with the old binary and the new kernel's variants.
set -u
B=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$B/env.sh"
BENCHES=${BENCHES:-"before mma"}
mkdir -p /tmp/kj
{
echo "== device"; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
# cuda_cluster_test runs the pdserve binary by the absolute path it was built with.
mkdir -p /work/wt-gpudecode/build-h/bin && ln -sf "$B/bin/pdserve" /work/wt-gpudecode/build-h/bin/pdserve
echo "== cuda_test"; timeout 240 "$B/bin/cuda_test" --gtest_brief=1 2>&1 | tail -40
for v in $BENCHES; do
  echo "== bench $v"
  case ${v%%-[0-9]} in
    before) cmd=("$B/bin/pdserve-before") ;;
    async3) cmd=(env PDSERVE_DECODE_KERNEL=mma-async3 "$B/bin/pdserve") ;;
    serial) cmd=(env PDSERVE_DECODE_KERNEL=mma-serial "$B/bin/pdserve") ;;
    registers) cmd=(env PDSERVE_DECODE_KERNEL=mma-registers "$B/bin/pdserve") ;;
    cores) cmd=(env PDSERVE_DECODE_KERNEL=cuda-cores "$B/bin/pdserve") ;;
    b8) cmd=(env PDSERVE_DECODE_BLOCKS_PER_SM=8 "$B/bin/pdserve") ;;
    b32) cmd=(env PDSERVE_DECODE_BLOCKS_PER_SM=32 "$B/bin/pdserve") ;;
    *) cmd=("$B/bin/pdserve") ;;
  esac
  SECONDS=0
  timeout 120 "${cmd[@]}" bench kernels --device cuda --json "/tmp/kj/k-$v.json" > /tmp/k-$v.txt 2>&1
  echo "rc $? in ${SECONDS}s"; grep -E "baseline|^decode|^checksum" /tmp/k-$v.txt
  { echo "== bench $v"; cat /tmp/k-$v.txt; } >> "$OUT/bench.txt"
done
tar -C /tmp/kj -cf "$OUT/kjson.tar" .
if [ "${CLUSTER:-1}" = 1 ]; then
  echo "== cuda_cluster_test"; timeout 150 "$B/bin/cuda_cluster_test" --gtest_brief=1 2>&1 | tail -15
fi
} 2>&1 | tee "$OUT/all.log"
