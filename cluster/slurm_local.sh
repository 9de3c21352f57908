#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (localhost, 2 CPUs, no cgroups), for tests and demos.
#
#   cluster/slurm_local.sh start    # install slurm-wlm + munge if missing (root + apt), write slurm.conf,
#                                   # start munged, slurmctld, slurmd; prints `export SLURM_CONF=...`
#   cluster/slurm_local.sh status   # sinfo
#   cluster/slurm_local.sh stop     # stop the three daemons this script started
#
# Everything lives in $COD_SLURM_DIR (default /tmp/cod-slurm): slurm.conf, state, spool, logs, pids.
# Daemons run under `nice -n 19`, so every job step they start inherits the lowest CPU priority.
# Exit code 3 (with one line on stderr) when SLURM cannot be installed or started here.
set -euo pipefail
D=${COD_SLURM_DIR:-/tmp/cod-slurm}
CPUS=${COD_SLURM_CPUS:-2}
HOST=$(hostname -s)
PARTITION=${COD_SLURM_PARTITION:-debug}
export SLURM_CONF=$D/slurm.conf

die() { echo "slurm_local: $*" >&2; exit 3; }

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "slurm-wlm/munge missing and not root: apt-get install slurm-wlm munge"
  command -v apt-get >/dev/null || die "slurm-wlm/munge missing and no apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || \
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q slurm-wlm munge >/dev/null 2>&1; } || \
    die "apt-get install slurm-wlm munge failed"
}

write_conf() {
  mkdir -p "$D"/state "$D"/spool "$D"/munge
  local mem
  mem=$(awk '/MemTotal/ {print int($2/1024*0.8)}' /proc/meminfo)
  cat > "$SLURM_CONF" <<CONF
# written by cluster/slurm_local.sh: one node, localhost, no cgroups
ClusterName=codlocal
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldPort=${COD_SLURM_PORT:-6817}
SlurmdPort=$(( ${COD_SLURM_PORT:-6817} + 1 ))
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
KillWait=2
MinJobAge=600
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=60 State=UP OverSubscribe=NO
CONF
}

start() {
  install
  write_conf
  # munge: a key (Debian's package ships one), then the daemon with its own socket under $D
  if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey -c -f -k /etc/munge/munge.key) || \
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
    chmod 400 /etc/munge/munge.key
  fi
  chown -R root:root /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
  mkdir -p /run/munge
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force --foreground >"$D"/munged.log 2>&1 &
    echo $! >"$D"/munged.pid
    for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munged did not start (see $D/munged.log)"
  fi
  [ -f "$D"/slurmctld.pid ] && kill -0 "$(cat "$D"/slurmctld.pid)" 2>/dev/null || \
    nice -n 19 slurmctld -f "$SLURM_CONF" -i || die "slurmctld did not start (see $D/slurmctld.log)"
  [ -f "$D"/slurmd.pid ] && kill -0 "$(cat "$D"/slurmd.pid)" 2>/dev/null || \
    nice -n 19 slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $D/slurmd.log)"
  for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1 || true)
    case "$state" in idle*|mix*|alloc*) break;; down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true;; esac
    sleep 0.5
  done
  case "$state" in idle*|mix*|alloc*) ;; *) die "node $HOST not up (state '${state:-none}'; see $D/slurmd.log, $D/slurmctld.log)";; esac
  echo "export SLURM_CONF=$SLURM_CONF   # partition $PARTITION, node $HOST, $CPUS CPUs"
}

stop() {
  for d in slurmd slurmctld munged; do
    f=$D/$d.pid
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$f"
  done
  echo "stopped slurmd, slurmctld, munged ($D)"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
