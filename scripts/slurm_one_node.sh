#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian's slurm-wlm and munge, no systemd): munged,
# slurmctld and slurmd as background daemons, everything (key, slurm.conf, state, logs, PIDs) in one
# folder, nothing written under /etc. For trying ns-internals-sweep --executor slurm on a workstation
# and for the real-SLURM tests (tests/test_sweep_real_slurm.py); .ci/run starts and stops it.
set -euo pipefail

DIR=${SLURM_ONE_NODE_DIR:-/tmp/nerfinternals-slurm}
PORT=${SLURM_ONE_NODE_PORT:-16817}  # slurmctld; slurmd listens on PORT + 1

usage() {
  cat <<USAGE
usage: scripts/slurm_one_node.sh start|stop|status [-h]

  start    write a munge key and slurm.conf into \$SLURM_ONE_NODE_DIR (default $DIR), start munged,
           slurmctld and slurmd, wait until the node is idle (at most 60 s) and print the line
           to point the SLURM commands at it:  export SLURM_CONF=$DIR/slurm.conf
  stop     stop the three daemons by their PIDs (files in the folder); the folder stays
  status   say whether the controller answers

One node: this host, \$(nproc) CPUs, 90 % of its memory (a job without --mem gets its CPUs' share), no GPUs (no GRES), one partition "debug"
(the default), no accounting (sacct is not available: ns-internals-sweep --status reads squeue and
the job logs instead). Ports $PORT (slurmctld) and $((PORT + 1)) (slurmd): SLURM_ONE_NODE_PORT moves
them. Needs: apt-get install slurm-wlm munge. Exit status 2 with one error line when a daemon is
missing or does not come up (its log is named).
USAGE
}

die() {
  echo "error: $*" >&2
  exit 2
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }

stop() {
  local name
  for name in slurmd slurmctld munged; do
    if pid_alive "$DIR/$name.pid"; then
      kill "$(cat "$DIR/$name.pid")" 2>/dev/null || true
      for _ in $(seq 50); do pid_alive "$DIR/$name.pid" || break; sleep 0.1; done
      if pid_alive "$DIR/$name.pid"; then kill -9 "$(cat "$DIR/$name.pid" 2>/dev/null)" 2>/dev/null || true; fi
    fi
    rm -f "$DIR/$name.pid"
  done
}

start() {
  local tool
  for tool in munged mungekey slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] \
      || die "$tool not found: apt-get install slurm-wlm munge"
  done
  export PATH="$PATH:/usr/sbin"
  if pid_alive "$DIR/slurmctld.pid"; then
    echo "already running: export SLURM_CONF=$DIR/slurm.conf"
    return
  fi
  stop
  mkdir -p "$DIR"/{munge,ctld,spool,log}
  chmod 700 "$DIR/munge"
  local host user mem
  host=$(hostname -s)
  user=$(id -un)
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  [ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" >/dev/null
  chmod 400 "$DIR/munge/munge.key"
  cat >"$DIR/slurm.conf" <<CONF
# A one-node cluster written by scripts/slurm_one_node.sh
ClusterName=nerfinternals
SlurmctldHost=$host
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
DefMemPerCPU=$((mem / $(nproc)))
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed" \
    --force >/dev/null 2>&1 || die "munged did not start: see $DIR/log/munged.log"
  export SLURM_CONF="$DIR/slurm.conf"
  slurmctld -D -f "$SLURM_CONF" >>"$DIR/log/slurmctld.out" 2>&1 &
  echo $! >"$DIR/slurmctld.pid"
  slurmd -D -f "$SLURM_CONF" >>"$DIR/log/slurmd.out" 2>&1 &
  echo $! >"$DIR/slurmd.pid"
  for _ in $(seq 120); do
    if [ "$(sinfo --noheader --format=%t 2>/dev/null | tr -d ' ')" = idle ]; then
      echo "export SLURM_CONF=$DIR/slurm.conf"
      return
    fi
    pid_alive "$DIR/slurmctld.pid" || { stop; die "slurmctld stopped: see $DIR/log/slurmctld.log"; }
    pid_alive "$DIR/slurmd.pid" || { stop; die "slurmd stopped: see $DIR/log/slurmd.log"; }
    sleep 0.5
  done
  stop
  die "the node did not come up within 60 s: see $DIR/log/slurmctld.log and $DIR/log/slurmd.log"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if SLURM_CONF="$DIR/slurm.conf" sinfo >/dev/null 2>&1; then
      echo "up: export SLURM_CONF=$DIR/slurm.conf"
    else
      echo "down"
      exit 1
    fi
    ;;
  -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
