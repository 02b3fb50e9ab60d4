#!/usr/bin/env bash
# Installs what is missing, builds pdserve and runs every test (README command 2), then the
# sanitizer and fuzz stages (scripts/analysis.sh; PDSERVE_ANALYSIS=0 skips them locally, CI
# runs them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
build=${PDSERVE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${PDSERVE_JOBS:-2}"
(cd "$build" && ctest --output-on-failure -j "${PDSERVE_TEST_JOBS:-2}" --timeout 600)
if [ "${PDSERVE_ANALYSIS:-1}" != 0 ]; then
  bash scripts/analysis.sh
fi
