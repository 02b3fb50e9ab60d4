#!/usr/bin/env bash
# The stages that look for the next bug (docs/testing.md), run by scripts/test.sh after the
# normal tests. Two clang builds, each of only the targets its tests need:
#   build-asan: ASan + UBSan, -Wthread-safety as an error, the libFuzzer targets. Runs the
#               transfer and end-to-end tests (real router and worker processes, all built
#               with the sanitizers), then every fuzz target for PDSERVE_FUZZ_SECONDS.
#   build-tsan: TSan. Runs the transfer tests, the prefill / decode engine tests, and the router,
#               HTTP, load generator and metrics unit tests (tests/sanitizers/tsan.supp names
#               the uninstrumented libraries whose internals it does not report).
# A sanitizer report in any process (test binaries and the cluster processes they start) fails
# the stage: every process writes its reports under <build>/sanitizer-reports/.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${PDSERVE_JOBS:-2}
fuzz_seconds=${PDSERVE_FUZZ_SECONDS:-30}
suppressions=$PWD/tests/sanitizers

configure() {  # configure DIR CMAKE_ARGS...
  local dir=$1
  shift
  local launcher=()
  if command -v ccache >/dev/null; then
    export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1  # as scripts/test.sh: shared across checkouts
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPDSERVE_CUDA=OFF \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ "${launcher[@]}" "$@" >/dev/null
}

# Runs ctest in DIR with ARGS; fails when a test failed or any process left a report.
run_tests() {  # run_tests DIR CTEST_ARGS...
  local dir=$1
  shift
  local reports=$PWD/$dir/sanitizer-reports
  rm -rf "$reports" && mkdir -p "$reports"
  local status=0
  (cd "$dir" && ASAN_OPTIONS="log_path=$reports/asan:halt_on_error=1:detect_leaks=1" \
     LSAN_OPTIONS="suppressions=$suppressions/lsan.supp:print_suppressions=0" \
     UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
     TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=1:second_deadlock_stack=1:suppressions=$suppressions/tsan.supp" \
     ctest --output-on-failure --timeout 600 "$@") || status=$?
  if compgen -G "$reports/*" >/dev/null; then
    echo "analysis: sanitizer reports in $reports:"
    for f in "$reports"/*; do echo "== $f"; head -n 80 "$f"; done
    status=1
  fi
  return $status
}

start=$SECONDS
echo "analysis: ASan + UBSan build (clang, -Wthread-safety)"
configure build-asan -DPDSERVE_SANITIZE=address,undefined -DPDSERVE_THREAD_SAFETY=ON \
  -DPDSERVE_FUZZ=ON -DPDSERVE_FUZZ_SECONDS="$fuzz_seconds"
cmake --build build-asan -j "$jobs" --target e2e_test transfer_test transfer_test_peer \
  request_validation_fuzzer pool_descriptor_fuzzer notify_channel_fuzzer prefill_items_fuzzer
# Only the targets above are built: gtest_discover_tests names the others *_NOT_BUILT.
run_tests build-asan -j "${PDSERVE_TEST_JOBS:-2}" -LE fuzz -E _NOT_BUILT
echo "analysis: fuzzing, ${fuzz_seconds}s per target"
run_tests build-asan -j "${PDSERVE_TEST_JOBS:-2}" -L fuzz

echo "analysis: TSan build"
configure build-tsan -DPDSERVE_SANITIZE=thread
cmake --build build-tsan -j "$jobs" --target transfer_test transfer_test_peer \
  prefill_worker_test decode_worker_test router_test http_api_test loadgen_test service_test \
  loadgen_openai_test metrics_test
# The openai-package test needs the pdserve binary, which this build does not make.
run_tests build-tsan -j "${PDSERVE_TEST_JOBS:-2}" -E "_NOT_BUILT|OpenAiPythonSdkTest"
echo "analysis: passed in $((SECONDS - start)) s"
