#!/usr/bin/env bash
# ctest: the `openai` Python package against a real `pdserve cluster`. Exit 77 (ctest's
# SKIP_RETURN_CODE) with a message when the package cannot be installed (no network, no venv).
# Usage: openai_sdk_test.sh PDSERVE_BINARY VENV_DIR
set -uo pipefail
pdserve=$1
venv=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "SKIP: cannot create a Python venv in $venv"; exit 77
  fi
  if ! timeout 180 "$venv/bin/pip" install --quiet --disable-pip-version-check openai \
      >"$venv.pip.log" 2>&1; then
    echo "SKIP: 'pip install openai' failed (offline?): $(tail -n 2 "$venv.pip.log")"; exit 77
  fi
fi
log=$(mktemp -d)
trap 'kill -TERM $cluster 2>/dev/null; wait $cluster 2>/dev/null; rm -rf "$log"' EXIT
"$pdserve" cluster --prefill 1 --decode 1 --threads 1 --num-blocks 256 >"$log/out" 2>&1 &
cluster=$!
url=
for _ in $(seq 1 600); do
  url=$(sed -n 's/.*OpenAI-compatible HTTP API at \(http:[^ ]*\).*/\1/p' "$log/out")
  [ -n "$url" ] && break
  kill -0 $cluster 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then echo "cluster did not start:"; cat "$log/out"; exit 1; fi
"$venv/bin/python" "$here/openai_sdk_check.py" "$url" tiny
