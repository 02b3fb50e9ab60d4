#!/usr/bin/env bash
# Installs what is missing, builds pdserve and runs every test (README command 2), then the
# sanitizer and fuzz stages (scripts/analysis.sh; PDSERVE_ANALYSIS=0 skips them locally, CI
# runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PDSERVE_BUILD_DIR:-build}
launcher=()
if command -v ccache >/dev/null; then
  # Another checkout of the same tree (CI's clean clone in another folder) reuses the cache:
  # ccache hashes paths relative to the checkout and leaves the working directory out.
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
            -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
source scripts/ucx-cuda-flags.sh
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${launcher[@]}" \
  "${ucx_cmake_flags[@]}" >/dev/null
cmake --build "$build" -j "${PDSERVE_JOBS:-2}"
(cd "$build" && ctest --output-on-failure -j "${PDSERVE_TEST_JOBS:-2}" --timeout 600)
if [ "${PDSERVE_ANALYSIS:-1}" != 0 ]; then
  bash scripts/analysis.sh
fi
