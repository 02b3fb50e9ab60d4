#!/usr/bin/env bash
# README command 1, the main job: installs what is missing, builds pdserve, then runs the
# serving benchmark comparing KV transfer backends (local, ucx-posix, ucx-tcp) and P/D against
# colocated workers over the seed matrix and writes a report. Extra arguments go to `pdserve
# bench` (e.g. --quick: about 4 minutes instead of about 19).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PDSERVE_BUILD_DIR:-build}
launcher=()
if command -v ccache >/dev/null; then  # as scripts/test.sh: one cache for every checkout
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
            -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
source scripts/ucx-cuda-flags.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
  "${ucx_cmake_flags[@]}" >/dev/null
cmake --build "$build" -j "${PDSERVE_JOBS:-2}" --target pdserve
exec "$build/bin/pdserve" bench "$@"
