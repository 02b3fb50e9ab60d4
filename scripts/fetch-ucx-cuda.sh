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
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
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
# zip does not keep the symlinks of the original tree: recreate the unversioned names.
for so in "$dest"/lib/*.so.* "$dest"/lib/ucx/*.so.*; do
  [ -e "$so" ] || continue
  base=${so%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done
echo "$version" >"$dest/.version"
echo "fetch-ucx-cuda: libucx-cu13 $version in $dest"
ls "$dest/lib" "$dest/lib/ucx"
