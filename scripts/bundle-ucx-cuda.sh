#!/usr/bin/env bash
# bundle-ucx-cuda.sh OUT_DIR EXECUTABLE...
# Like a device bundle script (PDSERVE_BUNDLE_SH: the lending tool's bundle.sh, which it runs
# first; the repository ships none), for a GPU build against the
# libucx-cu13 wheel (-DPDSERVE_UCX_ROOT, scripts/fetch-ucx-cuda.sh): ships that UCX's libraries
# and its lib/ucx plugins (cma, cuda: cuda_copy + cuda_ipc, ucm_cuda) instead of Debian's,
# stripped, so that the carried tree stays small. On the GPU machine:
#   source OUT_DIR/env.sh && OUT_DIR/bin/<program> ...
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ucx=${PDSERVE_UCX_ROOT:-$root/.ucx-cuda}
out=${1:?usage: bundle-ucx-cuda.sh OUT_DIR EXECUTABLE...}
[ -f "$ucx/lib/libucp.so.0" ] || { echo "no UCX in $ucx: run scripts/fetch-ucx-cuda.sh" >&2; exit 2; }
bundle=${PDSERVE_BUNDLE_SH:?set PDSERVE_BUNDLE_SH to the device tool bundle.sh (not part of this repository)}
"$bundle" "$@" >/dev/null
rm -rf "$out/lib/ucx" "$out"/lib/libuc[mpst]*.so*
mkdir -p "$out/lib/ucx"
for lib in libucm libucp libucs libucs_signal libuct; do
  cp -L "$ucx/lib/$lib.so.0" "$out/lib/"
done
for plugin in libucm_cuda libuct_cma libuct_cuda; do
  cp -L "$ucx/lib/ucx/$plugin.so.0" "$out/lib/ucx/"
  ln -sf "$plugin.so.0" "$out/lib/ucx/$plugin.so"
done
strip --strip-unneeded "$out"/lib/libuc*.so.0 "$out"/lib/ucx/libuc[mt]*.so.0 "$out"/bin/*
# install -m 755: the wheel (a zip) keeps no execute bits.
install -m 755 "$ucx/bin/ucx_info" "$out/bin/" && strip --strip-unneeded "$out/bin/ucx_info"
# PDSERVE_BUNDLE_PERFTEST=1: also UCX's own benchmark (ucx_perftest and its CUDA memory module),
# the baseline for the ucx rows of `bench transfer --device cuda`, with the wheel's renamed
# libgomp (fetch-ucx-cuda.sh keeps it; the system's libgomp.so.1 under that name crashes it).
if [ "${PDSERVE_BUNDLE_PERFTEST:-0}" = 1 ]; then
  install -m 755 "$ucx/bin/ucx_perftest" "$out/bin/"
  cp -L "$ucx/lib/ucx/libucx_perftest_cuda.so.0" "$out/lib/ucx/"
  ln -sf libucx_perftest_cuda.so.0 "$out/lib/ucx/libucx_perftest_cuda.so"
  strip --strip-unneeded "$out/bin/ucx_perftest" "$out/lib/ucx/libucx_perftest_cuda.so.0"
  gomp=$(readelf -d "$ucx/bin/ucx_perftest" | sed -n 's/.*\[\(libgomp-[^]]*\)\].*/\1/p')
  [ -n "$gomp" ] && cp -L "$ucx/lib/$gomp" "$out/lib/"
fi
# The wheel's libucm_cuda was linked against a renamed cudart (auditwheel); its symbols carry the
# version libcudart.so.13, so the machine's own libcudart.so.13 satisfies it.
cudart_wanted=$(readelf -d "$out/lib/ucx/libucm_cuda.so.0" | sed -n 's/.*\[\(libcudart-[^]]*\)\].*/\1/p')
echo "cudart_wanted=$cudart_wanted" >>"$out/env.sh"
cat >>"$out/env.sh" <<'ENV'
if [ -n "$cudart_wanted" ] && [ ! -e "$here/lib/$cudart_wanted" ]; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    if [ -e "$d/libcudart.so.13" ]; then ln -sf "$d/libcudart.so.13" "$here/lib/$cudart_wanted"; break; fi
  done
fi
ENV
du -sh "$out"
