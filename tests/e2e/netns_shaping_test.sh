#!/usr/bin/env bash
# scripts/netns-hosts.sh's link shaping: --rate-mbit puts a tbf on every host's link (whether or
# not the kernel has sch_netem), `shape` changes it on a live set and removes it, and --delay-us
# either puts netem there or, on a kernel without sch_netem, fails naming
# CONFIG_NET_SCH_NETEM and leaves no namespace behind. Exit 77 (skipped) without the privileges
# to make network namespaces, or without tc. No timing is asserted.
set -uo pipefail

script="$(cd "$(dirname "$0")/../.." && pwd)/scripts/netns-hosts.sh"
export PDSERVE_NETNS_PREFIX=pdshape-test PDSERVE_NETNS_SUBNET=10.218.0
probe="pdshape-probe-$$"
command -v tc >/dev/null 2>&1 || { echo "SKIP: no tc (iproute2)"; exit 77; }
if ! ip netns add "$probe" 2>/dev/null; then
  echo "SKIP: cannot make network namespaces (needs root or CAP_SYS_ADMIN + CAP_NET_ADMIN)"
  exit 77
fi
ip netns delete "$probe"
trap 'bash "$script" down >/dev/null 2>&1' EXIT

failures=0
check() {  # description, then the command that must succeed
  local what="$1"; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
qdisc() { ip netns exec "pdshape-test-h$1" tc qdisc show dev eth0; }
left() { ip netns list | awk '{print $1}' | grep -cE '^pdshape-test-(br|h[0-9]+)$'; }

out="$(bash "$script" up 2 --rate-mbit 10000)"
check "up 2 --rate-mbit prints both hosts" \
  test "$out" == "$(printf 'pdshape-test-h0 10.218.0.1\npdshape-test-h1 10.218.0.2')"
for h in 0 1; do
  check "host $h: tbf at 10Gbit" grep -qE '^qdisc tbf .* rate 10Gbit ' <<<"$(qdisc "$h")"
done
bash "$script" shape --rate-mbit 2000
check "shape --rate-mbit 2000 on the live set" grep -qE 'tbf .* rate 2Gbit ' <<<"$(qdisc 1)"
bash "$script" shape
check "shape without options removes it" bash -c "! grep -q tbf <<<'$(qdisc 0)$(qdisc 1)'"
check "shape --rate-mbit rejects a non-number" \
  bash -c "! bash '$script' shape --rate-mbit 1x 2>/dev/null"

err="$(bash "$script" up 2 --delay-us 100 2>&1 >/dev/null)"
rc=$?
if ((rc == 0)); then
  check "--delay-us: netem with the delay" grep -qE 'netem .*delay 100us' <<<"$(qdisc 0)"
else
  check "--delay-us without sch_netem names CONFIG_NET_SCH_NETEM" \
    grep -q CONFIG_NET_SCH_NETEM <<<"$err"
  check "--delay-us without sch_netem leaves no namespace" test "$(left)" == 0
fi
bash "$script" down
check "down removes every namespace of the set" test "$(left)" == 0
((failures == 0)) || { echo "$failures check(s) failed"; exit 1; }
echo "all checks passed"
