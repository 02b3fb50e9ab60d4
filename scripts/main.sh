#!/usr/bin/env bash
# README command 1, the main job: installs what is missing, builds pdserve, then runs the
# serving benchmark comparing KV transfer backends (local, ucx-posix, ucx-tcp) over the seed
# matrix and writes a report. Extra arguments go to `pdserve bench` (e.g. --quick: about 3
# minutes instead of 15-20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PDSERVE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${PDSERVE_JOBS:-2}" --target pdserve
exec "$build/bin/pdserve" bench "$@"
