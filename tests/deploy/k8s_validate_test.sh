#!/usr/bin/env bash
# ctest k8s_validate (check) and k8s_pods_netns (pods): tests/deploy/k8s_check.py and
# k8s_pods_test.py (their docstrings say what each checks), in a venv with the PyPI package
# kubernetes-validate, whose wheel carries the Kubernetes JSON schemas (no network at test
# time). Exit 77 (ctest's SKIP_RETURN_CODE) with a message when the package cannot be
# installed (pip offline, no venv module).
# Usage: k8s_validate_test.sh check|pods PDSERVE_BINARY VENV_DIR
set -uo pipefail
mode=$1
pdserve=$2
venv=$3
here=$(cd "$(dirname "$0")" && pwd)
# The sanitizer stages' TSan build makes no pdserve binary (scripts/analysis.sh): nothing to check.
if [ ! -x "$pdserve" ]; then
  echo "SKIP: no pdserve binary at $pdserve in this build"
  exit 77
fi
# Pinned: a new release may bundle other schema versions (the check uses the oldest and newest).
pkg=kubernetes-validate==1.37.0
install() {
  "$venv/bin/python" -c "import kubernetes_validate" 2>/dev/null && return 0
  python3 -m venv "$venv" >/dev/null 2>&1 || { echo "SKIP: cannot create a Python venv in $venv"; return 77; }
  timeout 180 "$venv/bin/pip" install --quiet --disable-pip-version-check "$pkg" >"$venv.pip.log" 2>&1 ||
    { echo "SKIP: 'pip install $pkg' failed (offline?): $(tail -n 2 "$venv.pip.log")"; return 77; }
}
# Both tests may start at once under ctest -j: one installs, the other waits for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
install
rc=$?
flock -u 9
[ $rc -eq 0 ] || exit $rc
case "$mode" in
  check) exec "$venv/bin/python" "$here/k8s_check.py" "$pdserve" "$here/../.." ;;
  pods) exec "$venv/bin/python" "$here/k8s_pods_test.py" "$pdserve" "$here/../.." ;;
  *) echo "usage: $0 check|pods PDSERVE_BINARY VENV_DIR"; exit 2 ;;
esac
