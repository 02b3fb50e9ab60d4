#!/usr/bin/env bash
# Test "hosts" on one machine: N network namespaces joined by veth pairs to a bridge that lives in
# a namespace of its own, so that nothing is added to, or changed on, the host's own interfaces.
# Addresses come from a private test range and are set only inside the namespaces made here; no
# route leads out, so no packet leaves the machine.
#
#   scripts/netns-hosts.sh up N [--delay-us D] [--rate-mbit R]   # prints "<namespace> <address>"
#   scripts/netns-hosts.sh down                                  # removes what `up` made
#   scripts/netns-hosts.sh addresses                             # prints them again
#
# Namespaces: ${PDSERVE_NETNS_PREFIX}-h0 .. -h<N-1> (host i has ${PDSERVE_NETNS_SUBNET}.<i+1>/24)
# and ${PDSERVE_NETNS_PREFIX}-br (the bridge). Defaults: prefix "pdserve", subnet 10.213.0.
# A test picks its own prefix so that it never touches a set made by hand.
# --delay-us / --rate-mbit put a tc netem qdisc on each host's link, egress only: a packet between
# two hosts is delayed D once (a round trip 2 D) and each host sends at most R Mbit/s.
# `up` is idempotent: it first removes a set of the same prefix, then makes it afresh.
# Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2 (scripts/install-deps.sh).
set -euo pipefail

prefix="${PDSERVE_NETNS_PREFIX:-pdserve}"
subnet="${PDSERVE_NETNS_SUBNET:-10.213.0}"

die() { echo "netns-hosts: $*" >&2; exit 1; }

[[ "$prefix" =~ ^[a-z][a-z0-9-]{0,15}$ ]] || die "PDSERVE_NETNS_PREFIX '$prefix': 1-16 of [a-z0-9-]"
# Private ranges only (RFC 1918): the addresses must never mean a real host.
[[ "$subnet" =~ ^(10\.[0-9]{1,3}\.[0-9]{1,3}|192\.168\.[0-9]{1,3}|172\.(1[6-9]|2[0-9]|3[01])\.[0-9]{1,3})$ ]] ||
  die "PDSERVE_NETNS_SUBNET '$subnet': three octets of a private range, e.g. 10.213.0"

need_tools() {
  for tool in ip tc; do
    command -v "$tool" >/dev/null 2>&1 ||
      die "'$tool' not found: install iproute2 (bash scripts/install-deps.sh)"
  done
}

bridge_ns="${prefix}-br"

# Only our own namespaces: the exact bridge name and <prefix>-h<digits>.
our_namespaces() {
  ip netns list 2>/dev/null | awk '{print $1}' |
    grep -E "^(${prefix}-br|${prefix}-h[0-9]+)\$" || true
}

down() {
  local ns
  for ns in $(our_namespaces); do
    # Deleting a namespace deletes the veth ends and the bridge inside it with it.
    ip netns delete "$ns"
  done
}

addresses() {
  local ns
  for ns in $(our_namespaces | grep -v -- "-br\$" | sort -V); do
    echo "$ns $(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)"
  done
}

up() {
  local n="$1"; shift
  local delay_us="" rate_mbit=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --delay-us) delay_us="${2:?--delay-us needs a value}"; shift 2 ;;
      --rate-mbit) rate_mbit="${2:?--rate-mbit needs a value}"; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  if ! [[ "$n" =~ ^[0-9]+$ ]] || (( n < 1 || n > 200 )); then die "N must be 1..200, got '$n'"; fi
  [[ -z "$delay_us" || "$delay_us" =~ ^[0-9]+$ ]] || die "--delay-us: microseconds, got '$delay_us'"
  [[ -z "$rate_mbit" || "$rate_mbit" =~ ^[0-9]+$ ]] || die "--rate-mbit: Mbit/s, got '$rate_mbit'"
  down
  # A half-made set is removed, not left behind.
  trap 'down; die "up failed; removed what was made"' ERR
  ip netns add "$bridge_ns"
  ip -n "$bridge_ns" link set lo up
  ip -n "$bridge_ns" link add br0 type bridge
  ip -n "$bridge_ns" link set br0 up
  local i ns
  for ((i = 0; i < n; i++)); do
    ns="${prefix}-h${i}"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # Made inside the bridge namespace, one end moved straight into the host namespace: neither
    # end ever exists in the namespace this script runs in.
    ip -n "$bridge_ns" link add "h${i}" type veth peer name eth0 netns "$ns"
    ip -n "$bridge_ns" link set "h${i}" master br0 up
    ip -n "$ns" addr add "${subnet}.$((i + 1))/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [[ -n "$delay_us$rate_mbit" ]]; then
      local netem=()
      [[ -n "$delay_us" ]] && netem+=(delay "${delay_us}us")
      [[ -n "$rate_mbit" ]] && netem+=(rate "${rate_mbit}mbit")
      ip netns exec "$ns" tc qdisc replace dev eth0 root netem "${netem[@]}" ||
        { down; die "tc netem failed in $ns (is the sch_netem module available?); removed the set"; }
    fi
  done
  trap - ERR
  addresses
}

need_tools
case "${1:-}" in
  up) shift; up "${1:?usage: $0 up N [--delay-us D] [--rate-mbit R]}" "${@:2}" ;;
  down) down ;;
  addresses) addresses ;;
  *) die "usage: $0 up N [--delay-us D --rate-mbit R] | down | addresses" ;;
esac
