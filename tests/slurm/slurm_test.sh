#!/usr/bin/env bash
# Slurm, for real: starts munged, slurmctld and slurmd (Debian's munge and slurm-wlm) with a
# generated slurm.conf in a temp folder, submits deploy/slurm/pdserve.sbatch with sbatch, waits
# until the job reports every worker registered, sends requests whose tokens are checked against
# the synthetic model, then scancels the job and checks that nothing of it is left: no process
# of the job, no KV segment of its workers in /dev/shm, no secret; the daemons stopped.
#
#   tests/slurm/slurm_test.sh PDSERVE_BINARY SOURCE_DIR [NODES]     (ctest: slurm_test*)
#
# NODES (default 1) Slurm nodes, each a network namespace of its own (scripts/netns-hosts.sh,
# addresses of a private test range, nothing leaves the machine) with its own slurmd; slurmctld
# and the clients in node 0's. One node: router, prefill and decode on it, KV over `local`.
# Three: router and prefill on node 0, decode on nodes 1 and 2 (one step spanning both), KV over
# UCX on tcp across the namespaces' links: the job's multi-node form, run for real.
# Namespaces also keep slurmctld and slurmd (no bind-address option) off the host's interfaces.
# Where none can be made, one node runs on the host's loopback (ports picked here) and more skip.
# Exit 77 (ctest's skip) when not root or slurm-wlm / munge are missing. Everything the test
# made (daemons, job, namespaces, temp folder) is removed by the EXIT trap, failed or not.
set -euo pipefail

bin=${1:?usage: slurm_test.sh PDSERVE_BINARY SOURCE_DIR [NODES]}
src=${2:?usage: slurm_test.sh PDSERVE_BINARY SOURCE_DIR [NODES]}
nodes=${3:-1}
skip() { echo "SKIP slurm_test: $*"; exit 77; }
fail() { echo "FAIL slurm_test: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (it starts slurmctld, slurmd and munged)"
for tool in munged slurmctld slurmd sbatch srun squeue scancel scontrol sinfo nsenter; do
  command -v "$tool" >/dev/null ||
    skip "no '$tool': install slurm-wlm and munge (bash scripts/install-deps.sh)"
done
# scripts/analysis.sh's TSan build makes only some targets, pdserve not among them.
[ -x "$bin" ] || skip "no pdserve binary at $bin (not built in this build folder)"
[[ "$nodes" =~ ^[1-9]$ ]] || fail "NODES: 1-9, not '$nodes'"

tmp=$(mktemp -d /tmp/pdserve-slurm-XXXXXX)
chmod 755 "$tmp"  # munged checks every folder above its socket
export PDSERVE_NETNS_PREFIX="pdslurm$$" PDSERVE_NETNS_SUBNET=10.213.9
netns=0
daemon_pids=()
job=""
served=()
# Runs a command in node I's network namespace (nsenter, not `ip netns exec`: that remounts
# /sys, and slurmd wants the host's /sys/fs/cgroup); on the host without namespaces.
on_node() {
  local i=$1
  shift
  if [ "$netns" = 1 ]; then
    nsenter --net="/var/run/netns/$PDSERVE_NETNS_PREFIX-h$i" "$@"
  else
    "$@"
  fi
}
# Starts a daemon in node I's namespace in the background; nsenter execs it, so that its pid
# is $! (a function in the background would be a subshell whose death leaves the daemon).
start_daemon() {
  local i=$1
  shift
  if [ "$netns" = 1 ]; then
    nsenter --net="/var/run/netns/$PDSERVE_NETNS_PREFIX-h$i" "$@" &
  else
    "$@" &
  fi
  daemon_pids+=($!)
}
# squeue lists a job until it has ended (completing included: steps still being killed).
job_ended() {
  ! on_node 0 squeue -h -j "$job" -t pending,running,suspended,completing,configuring \
    2>/dev/null | grep -q .
}
# The job's processes: every process whose environment carries its SLURM_JOB_ID.
job_pids() {  # job_pids JOBID
  grep -laszx "SLURM_JOB_ID=$1" /proc/[0-9]*/environ 2>/dev/null |
    sed 's|/proc/\([0-9]*\)/environ|\1|' || true
}
stop_daemons() {
  local p
  [ ${#daemon_pids[@]} -gt 0 ] || return 0
  kill -TERM "${daemon_pids[@]}" 2>/dev/null || true
  for p in "${daemon_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$p" 2>/dev/null && { kill -KILL "$p"; echo "daemon $p needed SIGKILL" >&2; return 1; }
  done
  daemon_pids=()
}
cleanup() {
  local rc=$? p
  trap - EXIT
  if [ -n "$job" ]; then  # a failed run: cancel the job, then make sure nothing of it survives
    on_node 0 scancel "$job" 2>/dev/null || true
    for _ in $(seq 75); do job_ended && break; sleep 0.2; done
  fi
  stop_daemons || true
  if [ -n "$job" ]; then
    for p in $(job_pids "$job"); do
      kill -KILL "$p" 2>/dev/null && echo "killed leftover process $p" >&2
    done
  fi
  # Whatever a check found left over goes too (the pids are the job's, now gone).
  for p in "${served[@]}"; do rm -f /dev/shm/pdserve-kv-"$p"-*; done
  if [ "$rc" -ne 0 ]; then
    for f in "$tmp"/job.out "$tmp"/job/pdserve/*.log "$tmp"/slurm*.log; do
      [ -f "$f" ] && { echo "---- $f"; tail -n 25 "$f"; }
    done
  fi
  [ "$netns" = 0 ] || bash "$src/scripts/netns-hosts.sh" down || true
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s, fails naming WHAT after SECONDS.
wait_until() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - start)) -lt "$limit" ] || fail "$what after $limit s"
    sleep 0.2
  done
}

addrs=()
if ip netns add "${PDSERVE_NETNS_PREFIX}-probe" 2>/dev/null; then
  ip netns delete "${PDSERVE_NETNS_PREFIX}-probe"
  netns=1
  bash "$src/scripts/netns-hosts.sh" up "$nodes" >/dev/null
  for ((i = 0; i < nodes; i++)); do addrs+=("$PDSERVE_NETNS_SUBNET.$((i + 1))"); done
  echo "$nodes slurm node(s) in network namespaces $PDSERVE_NETNS_PREFIX-h*: ${addrs[*]}"
elif [ "$nodes" -eq 1 ]; then
  addrs=(127.0.0.1)
  echo "no network namespace (ip netns add failed): one node on the host's loopback"
else
  skip "$nodes nodes need network namespaces (ip netns add failed)"
fi

# A TCP port not bound now in node 0's namespace (random, so that runs on the host do not meet).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    on_node 0 ss -Htan "sport = :$p" | grep -q . || { echo "$p"; return; }
  done
}

# munge: its own key (0400 in a 0700 folder) and socket; slurm reaches it through AuthInfo.
mkdir -m 700 "$tmp/munge-key"
mkdir -m 755 "$tmp/munge"
head -c 1024 /dev/urandom >"$tmp/munge-key/munge.key"
chmod 400 "$tmp/munge-key/munge.key"
start_daemon 0 munged --foreground --socket="$tmp/munge/socket" \
  --key-file="$tmp/munge-key/munge.key" --pid-file="$tmp/munge/munged.pid" \
  --log-file="$tmp/munge-key/munged.log" --seed-file="$tmp/munge-key/munged.seed" \
  >"$tmp/munged.out" 2>&1
wait_until 10 "munged did not create its socket" test -S "$tmp/munge/socket"

host=$(hostname -s)
mkdir -p "$tmp/state" "$tmp/job"
for ((i = 0; i < nodes; i++)); do mkdir -p "$tmp/spool-pdn$i"; done
# Just enough for NODES nodes: no cgroups (linuxproc, task/none), no accounting, CPUs as
# consumable (cons_tres) so that --exact steps share a node as on a real cluster. Every node is
# this machine (NodeHostname) reached at its namespace's address; slurmd -N says which it is.
{
  cat <<EOF
ClusterName=pdserve-test
SlurmctldHost=$host(${addrs[0]})
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool-%n
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd-%n.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=10
GresTypes=gpu
EOF
  for ((i = 0; i < nodes; i++)); do
    echo "NodeName=pdn$i NodeHostname=$host NodeAddr=${addrs[$i]} CPUs=$(nproc) Gres=gpu:2" \
      "State=UNKNOWN"
  done
  echo "PartitionName=test Nodes=pdn[0-$((nodes - 1))] Default=YES MaxTime=10 State=UP"
} >"$tmp/slurm.conf"
# Two stand-in GPUs per node (/dev/null and /dev/zero: nothing opens them), so that the job's GPU
# form runs: Slurm binds each worker task to one with --gpus-per-task, through
# CUDA_VISIBLE_DEVICES (no cgroup device isolation here, so the indices are the node's).
printf 'Name=gpu File=/dev/null\nName=gpu File=/dev/zero\n' >"$tmp/gres.conf"
export SLURM_CONF="$tmp/slurm.conf"
start_daemon 0 slurmctld -D -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1
for ((i = 0; i < nodes; i++)); do
  start_daemon "$i" slurmd -D -N "pdn$i" -f "$SLURM_CONF" >"$tmp/slurmd-pdn$i.out" 2>&1
done
nodes_idle() { [ "$(on_node 0 sinfo -h -t idle -o %D 2>/dev/null)" = "$nodes" ]; }
wait_until 30 "not all $nodes node(s) idle in slurm" nodes_idle

# The job: ports picked by the router (written to the job folder), small pools, short drain;
# across namespaces, UCX on tcp only (the links between them; posix shm would also reach).
want_prefill=1 want_decode=$([ "$nodes" -ge 3 ] && echo 2 || echo 1)
export PDSERVE_BIN="$bin" PDSERVE_JOB_DIR="$tmp/job/pdserve" PDSERVE_PORT=0
export PDSERVE_INTERNAL_PORT=0 PDSERVE_HTTP_PORT=0 PDSERVE_READY_TIMEOUT_S=40
export PDSERVE_PREFILL_NODES=1 PDSERVE_DECODE_NODES=$((nodes > 1 ? nodes - 1 : 1)) UCX_TLS=tcp
export PDSERVE_WORKER_ARGS="--num-blocks 256 --metrics-port -1 --drain-grace-s 5"
export PDSERVE_GPUS_PER_TASK=1
job=$(cd "$tmp/job" && on_node 0 sbatch --parsable --nodes="$nodes" --gpus-per-node=2 --time=5 \
  --output="$tmp/job.out" "$src/deploy/slurm/pdserve.sbatch")
echo "submitted job $job"
ready() { [ -s "$PDSERVE_JOB_DIR/ready" ] || { job_ended && fail "job $job ended before ready"; }; }
wait_until 50 "job $job not ready" ready
endpoint=$(head -n 1 "$PDSERVE_JOB_DIR/ready")
echo "job $job ready: router at $endpoint"
status=$(on_node 0 "$bin" status --endpoint "$endpoint")
echo "$status"
count() { awk -v role="$1" '$2 == role && $5 == "ok"' <<<"$status" | wc -l; }
[ "$(count prefill)" -eq "$want_prefill" ] || fail "not $want_prefill prefill worker(s) ok"
[ "$(count decode)" -eq "$want_decode" ] || fail "not $want_decode decode worker(s) ok"
# Each worker on the node its step put it on, registered at that node's address.
grep -q "^prefill-pdn0-0 .* ${addrs[0]}:" <<<"$status" || fail "prefill-pdn0-0 not at ${addrs[0]}"
for ((i = 1; i < nodes; i++)); do
  grep -q "^decode-pdn$i-0 .* ${addrs[$i]}:" <<<"$status" ||
    fail "decode-pdn$i-0 not at ${addrs[$i]}"
done
[ "$(stat -c %a "$PDSERVE_JOB_DIR/cluster.secret")" = 600 ] || fail "the secret is not mode 0600"

job_pdserve_pids() {
  local p
  for p in $(job_pids "$job"); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$bin")" ] && echo "$p"
  done
  return 0
}
mapfile -t served < <(job_pdserve_pids)
want_procs=$((1 + want_prefill + want_decode))
[ ${#served[@]} -eq "$want_procs" ] ||
  fail "expected $want_procs pdserve processes in job $job (router, workers): ${#served[@]}"
# GPUs: one per worker task, the router none; prefill and decode sharing node 0 (one node) on
# different ones.
env_of() { tr '\0' '\n' <"/proc/$1/environ" | sed -n "s/^$2=//p"; }
worker_gpus=()
for p in "${served[@]}"; do
  role=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $2}')
  g=$(env_of "$p" CUDA_VISIBLE_DEVICES)
  if [ "$role" = router ]; then
    [ -z "$g" ] || fail "the router got GPUs '$g'"
  else
    [[ "$g" =~ ^[01]$ ]] || fail "$role process $p: CUDA_VISIBLE_DEVICES '$g', not one GPU"
    worker_gpus+=("$(env_of "$p" SLURMD_NODENAME):$g")
  fi
done
echo "worker GPUs (node:index): ${worker_gpus[*]}"
[ "$(printf '%s\n' "${worker_gpus[@]}" | sort -u | wc -l)" -eq "${#worker_gpus[@]}" ] ||
  fail "two workers on one node share a GPU: ${worker_gpus[*]}"
segments() {  # the KV pool segments of the job's processes in /dev/shm
  local p
  for p in "${served[@]}"; do ls /dev/shm | grep -E "^pdserve-kv-$p-" || true; done
}
[ "$nodes" -gt 1 ] || [ -n "$(segments)" ] ||
  fail "no KV pool segment of the job's workers in /dev/shm (the leak check would see nothing)"

# Verified requests: loadgen checks every token against the model the router reports, and the
# saved token ids are checked again offline.
on_node 0 "$bin" loadgen --target "$endpoint" --num-prompts 16 --random-input-len 96 \
  --random-output-len 12 --request-rate inf --verify --save-token-ids --progress off \
  --output-json "$tmp/loadgen.json" >"$tmp/loadgen.out" 2>&1 ||
  { cat "$tmp/loadgen.out"; fail "loadgen failed"; }
check=$("$bin" loadgen verify --result "$tmp/loadgen.json")
echo "$check"
grep -q "^verify: OK, 16 checked requests" <<<"$check" || fail "not 16 requests verified"
# The KV really moved (across the namespaces' links with more than one node): "KV MiB out".
kv=$(on_node 0 "$bin" status --endpoint "$endpoint" | awk '$2 == "prefill" {print $12}')
awk -v kv="$kv" 'BEGIN { exit !(kv > 0) }' || fail "the prefill worker sent no KV ('$kv' MiB)"

on_node 0 scancel "$job"
wait_until 40 "job $job still in squeue after scancel" job_ended
ended=$job
job=""  # the job is gone: from here on the checks decide, and cleanup has nothing to cancel
left=$(job_pids "$ended")
[ -z "$left" ] || fail "processes of job $ended left after scancel: $left"
for p in "${served[@]}"; do ! kill -0 "$p" 2>/dev/null || fail "pdserve process $p left"; done
[ -z "$(segments)" ] || fail "KV segments left in /dev/shm: $(segments)"
[ ! -e "$PDSERVE_JOB_DIR/cluster.secret" ] || fail "the job left its secret behind"
stop_daemons || fail "a daemon did not stop on SIGTERM"
echo "PASS slurm_test: job $ended on $nodes node(s) served 16 verified requests, left nothing"
