#!/usr/bin/env bash
# Test "hosts" on one machine: N network namespaces joined by veth pairs to a bridge that lives in
# a namespace of its own, so that nothing is added to, or changed on, the host's own interfaces.
# Addresses come from a private test range and are set only inside the namespaces made here; no
# route leads out, so no packet leaves the machine.
#
#   scripts/netns-hosts.sh up N [--delay-us D] [--rate-mbit R]   # prints "<namespace> <address>"
#   scripts/netns-hosts.sh down                                  # removes what `up` made
#   scripts/netns-hosts.sh addresses                             # prints them again
#   scripts/netns-hosts.sh shape [--delay-us D] [--rate-mbit R]  # re-shapes the links of the set
#                                                                # (no option: unshaped)
#
# Namespaces: ${PDSERVE_NETNS_PREFIX}-h0 .. -h<N-1> (host i has ${PDSERVE_NETNS_SUBNET}.<i+1>/24)
# and ${PDSERVE_NETNS_PREFIX}-br (the bridge). Defaults: prefix "pdserve", subnet 10.213.0.
# A test picks its own prefix so that it never touches a set made by hand.
# --delay-us / --rate-mbit shape each host's link, egress only: a packet between two hosts is
# delayed D once (a round trip 2 D) and each host sends at most R Mbit/s. A delay needs tc netem
# (kernel CONFIG_NET_SCH_NETEM; the rate then goes with it); a rate alone uses a token bucket
# (tbf), which every kernel with CONFIG_NET_SCH_TBF has, netem or not. Without sch_netem,
# --delay-us fails (naming CONFIG_NET_SCH_NETEM) and removes what it made.
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

# Why netem is missing, as far as the kernel tells.
netem_hint() {
  if [[ -r /proc/config.gz ]] && command -v zcat >/dev/null 2>&1; then
    local line
    line="$(zcat /proc/config.gz | grep -E '^(# )?CONFIG_NET_SCH_NETEM[= ]' || true)"
    echo "kernel config: ${line:-no CONFIG_NET_SCH_NETEM line}"
  else
    echo "is CONFIG_NET_SCH_NETEM set and the sch_netem module loadable?"
  fi
}

# The qdisc on host namespace $1's eth0 (delay_us / rate_mbit of `up`).
shape_link() {
  local ns="$1"
  if [[ -n "$delay_us" ]]; then
    local netem=(delay "${delay_us}us")
    [[ -n "$rate_mbit" ]] && netem+=(rate "${rate_mbit}mbit")
    ip netns exec "$ns" tc qdisc replace dev eth0 root netem "${netem[@]}" 2>/dev/null ||
      { down; die "--delay-us needs tc netem, which failed in $ns ($(netem_hint));" \
        "delay cannot be emulated on this kernel (--rate-mbit alone uses tbf); removed the set"; }
  elif [[ -n "$rate_mbit" ]]; then
    # Burst: PDSERVE_NETNS_BURST_US (default 250 us) at the rate, at least 64 KiB (one GSO
    # packet off a veth passes whole instead of being cut into MTU segments); queue: 5 ms at the
    # rate, at least 1 MiB, so that TCP sees a queue rather than drops. 10 Gbit/s: 312 KB
    # burst, 6.25 MB queue.
    local burst_us="${PDSERVE_NETNS_BURST_US:-250}"
    [[ "$burst_us" =~ ^[1-9][0-9]{0,5}$ ]] ||
      die "PDSERVE_NETNS_BURST_US: 1..999999, got '$burst_us'"
    local bytes_per_s=$((rate_mbit * 125000))
    local burst=$((bytes_per_s / 1000000 * burst_us)) limit=$((bytes_per_s / 200))
    ((burst < 65536)) && burst=65536
    ((limit < 1048576)) && limit=1048576
    ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "${rate_mbit}mbit" \
      burst "$burst" limit "$limit" ||
      { down; die "tc tbf failed in $ns (is CONFIG_NET_SCH_TBF set?); removed the set"; }
  fi
}

# --delay-us / --rate-mbit into delay_us / rate_mbit (read by shape_link).
shaping_options() {
  delay_us="" rate_mbit=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --delay-us) delay_us="${2:?--delay-us needs a value}"; shift 2 ;;
      --rate-mbit) rate_mbit="${2:?--rate-mbit needs a value}"; shift 2 ;;
      *) die "unknown option '$1'" ;;
    esac
  done
  [[ -z "$delay_us" || "$delay_us" =~ ^[0-9]+$ ]] || die "--delay-us: microseconds, got '$delay_us'"
  [[ -z "$rate_mbit" || "$rate_mbit" =~ ^[1-9][0-9]{0,6}$ ]] ||
    die "--rate-mbit: Mbit/s (1..9999999), got '$rate_mbit'"
}

# Links of an existing set, shaped anew (the processes in it keep running): the same qdisc as
# `up` with these options would make; no option removes the shaping. A failure to shape
# removes the set, as in `up`.
shape() {
  shaping_options "$@"
  local ns found=""
  for ns in $(our_namespaces | grep -v -- "-br\$"); do
    found=1
    if [[ -z "$delay_us$rate_mbit" ]]; then
      ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
    else
      shape_link "$ns"
    fi
  done
  [[ -n "$found" ]] || die "no set with prefix '$prefix' (run up first)"
}

up() {
  local n="$1"; shift
  shaping_options "$@"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || (( n < 1 || n > 200 )); then die "N must be 1..200, got '$n'"; fi
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
    shape_link "$ns"
  done
  trap - ERR
  addresses
}

need_tools
case "${1:-}" in
  up) shift; up "${1:?usage: $0 up N [--delay-us D] [--rate-mbit R]}" "${@:2}" ;;
  down) down ;;
  addresses) addresses ;;
  shape) shift; shape "$@" ;;
  *) die "usage: $0 up N [--delay-us D --rate-mbit R] | down | addresses | shape [...]" ;;
esac
