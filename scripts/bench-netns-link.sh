#!/usr/bin/env bash
# KV transfer across a link between network namespaces (issue 17, "Across hosts"), two parts:
#
#  1. transfer: `pdserve bench transfer --receiver-netns` (bench/transfer_link.h) from host 1 to
#     host 2 over UCX tcp on the veth link, against ucx_perftest over the same link in the same
#     run (ratio pdserve / perftest per row), unshaped and with the link rate-limited.
#  2. serving: router (host 0), prefill (host 1) and decode (host 2) in their own namespaces,
#     llama3-8b shapes with roofline compute, KV over UCX tcp; one request at a time at each
#     prompt length, unshaped and rate-limited rounds alternating on the same cluster. Per length:
#     the measured KV transfer time against bytes / rate + link latency, and the TTFT increase
#     against that model minus the unshaped transfer time, with their ratios.
#
#   scripts/bench-netns-link.sh [--out DIR] [--rate-mbit R] [--lens "128 512 2048"]
#                               [--requests N] [--rounds K] [--binary PATH]
#                               [--skip-transfer] [--skip-serving]
#
# Needs root, iproute2 with tbf (scripts/netns-hosts.sh), ucx_perftest (ucx-utils). Its own
# namespace set (PDSERVE_NETNS_PREFIX, default pdlink; subnet 10.219.0), removed at exit with
# every process it started. Not a test: it prints figures and judges nothing but the ratios.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
export PDSERVE_NETNS_PREFIX="${PDSERVE_NETNS_PREFIX:-pdlink}"
export PDSERVE_NETNS_SUBNET="${PDSERVE_NETNS_SUBNET:-10.219.0}"
out="" rate_mbit=10000 lens="128 512 2048" requests=4 rounds=3 skip_transfer="" skip_serving=""
binary="$here/../build/bin/pdserve"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --rate-mbit) rate_mbit="$2"; shift 2 ;;
    --lens) lens="$2"; shift 2 ;;
    --requests) requests="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --skip-transfer) skip_transfer=1; shift ;;
    --skip-serving) skip_serving=1; shift ;;
    *) echo "bench-netns-link: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ "$(id -u)" == 0 ]] || { echo "bench-netns-link: needs root (network namespaces)" >&2; exit 1; }
[[ -x "$binary" ]] ||
  { echo "bench-netns-link: no pdserve binary at $binary (--binary)" >&2; exit 1; }
binary="$(readlink -f "$binary")"
[[ "$rate_mbit" =~ ^[1-9][0-9]*$ ]] || { echo "--rate-mbit: Mbit/s" >&2; exit 2; }
for n in $lens $requests $rounds; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-netns-link: not a count: '$n'" >&2; exit 2; }
done
work="$(mktemp -d /tmp/pdlink-XXXXXX)"
[[ -n "$out" ]] || out="$work"
mkdir -p "$out"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash "$here/netns-hosts.sh" down || true
  rm -f "$work/secret"
  [[ "$out" == "$work" ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns() { echo "${PDSERVE_NETNS_PREFIX}-h$1"; }
addr() { echo "${PDSERVE_NETNS_SUBNET}.$(($1 + 1))"; }
bash "$here/netns-hosts.sh" up 3 >/dev/null

if [[ -z "$skip_transfer" ]]; then
  echo "== 1. KV transfer over the link, host 1 -> host 2 (UCX tcp), vs ucx_perftest"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
  for shaping in unshaped "tbf-${rate_mbit}mbit"; do
    if [[ "$shaping" == unshaped ]]; then
      bash "$here/netns-hosts.sh" shape
    else
      bash "$here/netns-hosts.sh" shape --rate-mbit "$rate_mbit"
    fi
    echo "-- $shaping"
    ip netns exec "$(ns 1)" "$binary" bench transfer --receiver-netns "$(ns 2)" \
      --listen "$(addr 1)" --receiver-listen "$(addr 2)" --label "$shaping" \
      --csv "$out/transfer-$shaping.csv" 2>&1 |
      grep -v -e "runs on this host but UCX reaches it over tcp" -e "unused env variable"
  done
  bash "$here/netns-hosts.sh" shape
fi
[[ -z "$skip_serving" ]] || exit 0

echo "== 2. Serving across namespaces: router h0, prefill h1, decode h2 (llama3-8b, roofline)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/secret"
chmod 600 "$work/secret"
max_len=0
for l in $lens; do ((l > max_len)) && max_len=$l; done
blocks=$(((max_len + 64) / 16 + 8))
common=(--cluster-secret-file "$work/secret" --transfer ucx --preset llama3-8b)
worker=(--router "$(addr 0):50052" --num-blocks "$blocks" --threads 1 --metrics-port -1
        --compute roofline --gpu h100)
spawn() {  # name host args...
  local name="$1" host="$2"; shift 2
  UCX_TLS=tcp ip netns exec "$(ns "$host")" "$binary" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
}
spawn router 0 router --listen "$(addr 0)" --port 50051 --internal-port 50052 --http-port -1 \
  "${common[@]}"
sleep 1
spawn prefill 1 prefill --worker-id prefill-0 --listen "$(addr 1)" --host-id host-1 \
  "${common[@]}" "${worker[@]}"
spawn decode 2 decode --worker-id decode-0 --listen "$(addr 2)" --host-id host-2 \
  "${common[@]}" "${worker[@]}"
for _ in $(seq 100); do
  s="$(ip netns exec "$(ns 0)" "$binary" status --endpoint "$(addr 0):50051" 2>/dev/null || true)"
  grep -q prefill-0 <<<"$s" && grep -q decode-0 <<<"$s" && break
  sleep 0.3
done
grep -q decode-0 <<<"$s" ||
  { echo "workers did not register" >&2; tail -n 20 "$work"/*.log >&2; exit 1; }

# One-way latency of the prefill -> decode link (ucx_perftest am_lat, 8 B, UCX tcp on eth0).
latency_us() {  # port
  local port="$1" v=""
  UCX_TLS=tcp UCX_NET_DEVICES=eth0 timeout 30 ip netns exec "$(ns 2)" ucx_perftest -p "$port" \
    >/dev/null 2>&1 &
  local server=$!
  for _ in $(seq 40); do
    sleep 0.1
    v="$(UCX_TLS=tcp UCX_NET_DEVICES=eth0 timeout 20 ip netns exec "$(ns 1)" ucx_perftest \
      "$(addr 2)" -p "$port" -t ucp_am_lat -s 8 -n 20000 2>/dev/null | awk '/^Final:/{print $5}')"
    [[ -n "$v" ]] && break
  done
  wait "$server" 2>/dev/null || true
  echo "${v:-0}"
}

csv="$out/serving-requests.csv"
echo "round,shaping,input_len,latency_us,ttft_ms,transfer_ms,kv_bytes,transfer_ops" >"$csv"
for ((r = 1; r <= rounds; r++)); do
  for shaping in unshaped limited; do
    if [[ "$shaping" == unshaped ]]; then
      bash "$here/netns-hosts.sh" shape
    else
      bash "$here/netns-hosts.sh" shape --rate-mbit "$rate_mbit"
    fi
    lat="$(latency_us "$((23000 + 10 * r + ${#shaping}))")"
    for l in $lens; do
      f="$work/lg-$r-$shaping-$l"
      ip netns exec "$(ns 0)" "$binary" loadgen --target "$(addr 0):50051" \
        --num-prompts "$requests" --num-warmups 1 --max-concurrency 1 --request-rate inf \
        --random-input-len "$l" --random-output-len 4 --seed "$((r * 1000 + l))" --verify \
        --progress off --output-json "$f.json" --output-csv "$f.csv" >"$f.log" 2>&1 ||
        { echo "loadgen failed ($shaping, $l tokens):" >&2; tail -n 20 "$f.log" >&2; exit 1; }
      grep -E "Successful requests|verif" "$f.log" | sed "s/^/  [$r $shaping $l] /" | head -3
      # Columns by name: ttft_ms, transfer_ms, kv_bytes, transfer_ops.
      awk -F, -v r="$r" -v s="$shaping" -v l="$l" -v lat="$lat" '
        NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["success"] == 1 { print r "," s "," l "," lat "," $c["ttft_ms"] "," $c["transfer_ms"] \
                             "," $c["kv_bytes"] "," $c["transfer_ops"] }' "$f.csv" >>"$csv"
    done
    if [[ "$shaping" == limited ]]; then
      echo "  [$r limited] prefill's link: $(ip netns exec "$(ns 1)" tc -s qdisc show dev eth0 |
        grep -oE 'Sent [0-9]+ bytes|dropped [0-9]+|overlimits [0-9]+' | tr '\n' ' ')"
    fi
  done
done
bash "$here/netns-hosts.sh" shape

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Per prompt length: medians over $rounds rounds x $requests requests;" \
  "model = bytes / rate + latency"
gbps="$(awk -v r="$rate_mbit" 'BEGIN{printf "%.3f", r / 8000}')"
echo "(rate ${rate_mbit} Mbit/s = $gbps GB/s on the wire; latency: ucx_perftest am_lat one way)"
awk -F, -v rate="$rate_mbit" -v lens="$lens" -v summary="$out/serving-summary.csv" '
  function median(key, n,   i, j, t, a) {
    n = cnt[key]; for (i = 1; i <= n; i++) a[i] = v[key, i]
    for (i = 2; i <= n; i++) {  # insertion sort: a dozen values
      t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t
    }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function add(key, x) { v[key, ++cnt[key]] = x }
  NR > 1 { add($2 "," $3 ",ttft", $5); add($2 "," $3 ",xfer", $6); add($2 "," $3 ",lat", $4)
           bytes[$3] = $7 }
  END {
    printf "%6s %7s %8s %8s %8s %6s %8s %8s %8s %6s %8s %8s %6s %s\n", "tokens", "KV MiB",
      "xfer off", "xfer on", "model", "ratio", "TTFT off", "TTFT on", "TTFT mdl", "ratio",
      "+TTFT", "+model", "ratio", "within 20%"
    print "tokens,kv_bytes,latency_us,transfer_unshaped_ms,transfer_limited_ms,model_ms," \
      "transfer_ratio,ttft_unshaped_ms,ttft_limited_ms,ttft_model_ms,ttft_ratio," \
      "ttft_increase_ms,model_increase_ms,increase_ratio,within_20pct" > summary
    n = split(lens, L, " ")
    for (k = 1; k <= n; k++) {
      l = L[k]; b = bytes[l]
      xo = median("unshaped," l ",xfer"); xl = median("limited," l ",xfer")
      to = median("unshaped," l ",ttft"); tl = median("limited," l ",ttft")
      lat = median("limited," l ",lat")
      model = b / (rate * 125000) * 1000 + lat / 1000
      tm = to - xo + model  # TTFT with the transfer stage replaced by the model
      inc = tl - to; minc = model - xo
      r1 = xl / model; r2 = tl / tm; r3 = (minc > 0) ? inc / minc : 0
      ok = (r1 >= 0.8 && r1 <= 1.2 && r2 >= 0.8 && r2 <= 1.2) ? "yes" : "no"
      printf "%6d %7.1f %8.2f %8.2f %8.2f %6.2f %8.2f %8.2f %8.2f %6.2f %8.2f %8.2f %6.2f %s\n",
        l, b / 1048576, xo, xl, model, r1, to, tl, tm, r2, inc, minc, r3, ok
      printf "%d,%d,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%s\n", l, b, lat,
        xo, xl, model, r1, to, tl, tm, r2, inc, minc, r3, ok > summary
    }
  }' "$csv"
echo "xfer: the kv_transfer stage; model: bytes / rate + latency; TTFT mdl: TTFT off with its"
echo "transfer replaced by the model; +TTFT: TTFT on - TTFT off; +model: model - xfer off;"
echo "ratio: measured / model"
echo "(within 20%: the transfer and TTFT ratios; +TTFT is a difference of two noisy medians)"
echo "files: $out"
