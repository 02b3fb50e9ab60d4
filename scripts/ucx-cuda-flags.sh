# Sourced by scripts/main.sh and scripts/test.sh (README commands 1 and 2): on a host with an
# NVIDIA GPU and nvcc, pdserve builds against a CUDA-aware UCX (the pinned libucx-cu13 wheel,
# scripts/fetch-ucx-cuda.sh) so that `--transfer ucx` and `pdserve bench --device cuda` move
# device memory over UCX's cuda_ipc / cuda_copy out of the box; Debian's UCX has no CUDA
# transports and would leave only `ucx-staged`. Elsewhere (CI: nvcc, no GPU) Debian's UCX.
# PDSERVE_CUDA_UCX=1 / 0 forces the choice. Sets the array ucx_cmake_flags.
ucx_cmake_flags=()
pdserve_cuda_ucx=${PDSERVE_CUDA_UCX:-auto}
if [ "$pdserve_cuda_ucx" = auto ]; then
  pdserve_cuda_ucx=0
  if [ -x /usr/local/cuda/bin/nvcc ] && command -v nvidia-smi >/dev/null &&
     nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    pdserve_cuda_ucx=1
  fi
fi
if [ "$pdserve_cuda_ucx" = 1 ]; then
  # pip downloads the wheel (nothing is installed into Python); patchelf points the wheel's
  # plugins at the libraries next to them.
  pdserve_need=()
  for p in python3-pip patchelf; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pdserve_need+=("$p")
  done
  if [ ${#pdserve_need[@]} -gt 0 ]; then
    pdserve_sudo=""; [ "$(id -u)" -ne 0 ] && pdserve_sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $pdserve_sudo apt-get install -y -qq --no-install-recommends \
      "${pdserve_need[@]}" >/dev/null
  fi
  bash scripts/fetch-ucx-cuda.sh >/dev/null
  ucx_cmake_flags=(-DPDSERVE_UCX_ROOT="$PWD/.ucx-cuda")
  echo "GPU host: building against the CUDA-aware UCX in $PWD/.ucx-cuda (PDSERVE_CUDA_UCX=0: Debian's)"
fi
