#!/usr/bin/env bash
# Installs the Debian 12 packages pdserve needs to build, test and benchmark.
# Idempotent and quiet: does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libspdlog-dev libfmt-dev
  libucx-dev ucx-utils
  libcli11-dev nlohmann-json3-dev
  # the HTTP API (http/): Boost.Beast and Asio, header-only
  libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  gnuplot-nox procps iproute2
  # tests/e2e/clock_step_e2e_test.cc steps the cluster's wall clock with libfaketime
  faketime
  # tests/slurm/slurm_test.sh starts its own munged, slurmctld and slurmd (deploy/slurm/)
  slurm-wlm munge
  # scripts/analysis.sh: clang, its sanitizer and libFuzzer runtimes, llvm-symbolizer
  clang libclang-rt-14-dev llvm
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
else
  sudo=""
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
