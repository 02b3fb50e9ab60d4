#!/usr/bin/env bash
# fetch-ucx-cuda.sh [DIR]
# Downloads the PyPI wheel libucx-cu13 (UCX 1.22 built with the cuda_copy / cuda_ipc transports)
# and unpacks its libucx/ folder (include/, lib/, lib/cmake/ucx, lib/ucx/ plugins) into DIR
# (default: .ucx-cuda at the repo root, git-ignored). Debian's UCX has no CUDA transports; this
# one is only for the GPU build:
#   cmake -S . -B build-gpu -G Ninja -DPDSERVE_CUDA=ON -DPDSERVE_UCX_ROOT=$PWD/.ucx-cuda
# The version is pinned so that a rebuild gets the same UCX.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$root/.ucx-cuda}
version=1.22.0
# The wheel's CUDA plugins (lib/ucx/libucm_cuda, libuct_cuda) carry a RUNPATH of the wheel's
# build machine, and libucm_cuda needs the cudart that auditwheel renamed
# (libcudart-<hash>.so.13...). UCX dlopens its plugins, so the executable's RUNPATH does not
# apply to their dependencies: point theirs at lib/ (patchelf) and name this machine's
# libcudart.so.13 there under the wheel's name. Without patchelf: LD_LIBRARY_PATH=$dest/lib.
fixup() {
  local want cudart d
  want=$(readelf -d "$dest/lib/ucx/libucm_cuda.so.0" 2>/dev/null | sed -n 's/.*\[\(libcudart-[^]]*\)\].*/\1/p')
  if [ -n "$want" ] && [ ! -e "$dest/lib/$want" ]; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
      if [ -e "$d/libcudart.so.13" ]; then cudart="$d/libcudart.so.13"; break; fi
    done
    [ -n "${cudart:-}" ] && ln -sf "$cudart" "$dest/lib/$want"
  fi
  if command -v patchelf >/dev/null; then
    for so in "$dest"/lib/ucx/*.so.0; do patchelf --set-rpath '$ORIGIN/..' "$so"; done
  else
    echo "fetch-ucx-cuda: no patchelf; run with LD_LIBRARY_PATH=$dest/lib for the CUDA plugins" >&2
  fi
}
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
  fixup
  echo "fetch-ucx-cuda: $dest already holds libucx-cu13 $version"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$tmp" "libucx-cu13==$version"
wheel=$(ls "$tmp"/libucx_cu13-*.whl)
python3 - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
[ -d "$tmp/unpacked/libucx/lib" ] || { echo "fetch-ucx-cuda: no libucx/lib in $wheel" >&2; exit 1; }
rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$tmp/unpacked/libucx" "$dest"
# ucx_perftest (UCX's own benchmark, a baseline in the device plans) needs the wheel's renamed
# libgomp; the renamed cudart beside it is not kept (fixup names the host's).
cp "$tmp"/unpacked/libucx_cu13.libs/libgomp-*.so* "$dest/lib/" 2>/dev/null || true
# zip does not keep the symlinks of the original tree: recreate the unversioned names.
for so in "$dest"/lib/*.so.* "$dest"/lib/ucx/*.so.*; do
  [ -e "$so" ] || continue
  base=${so%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done
fixup
echo "$version" >"$dest/.version"
echo "fetch-ucx-cuda: libucx-cu13 $version in $dest"
ls "$dest/lib" "$dest/lib/ucx"
