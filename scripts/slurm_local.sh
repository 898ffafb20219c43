#!/usr/bin/env bash
# Start or stop a one-node Slurm cluster on this machine (for `make test-cluster`).
#   scripts/slurm_local.sh start DIR   -> writes DIR/slurm.conf, starts munged, slurmctld, slurmd
#   scripts/slurm_local.sh stop DIR    -> stops the daemons it started (pids in DIR/*.pid)
# Needs root and Debian's slurm-wlm + munge (installed when missing).
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?state directory}")

install_if_missing() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

start() {
  install_if_missing
  mkdir -p "$dir"/{state,spool,log,munge}
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=neuroattn
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  # munge: a key of our own, a socket of our own, so nothing system-wide is touched
  if [ ! -f "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom bs=1 count=1024 of="$dir/munge/munge.key" 2>/dev/null
    chmod 400 "$dir/munge/munge.key"
  fi
  mkdir -p /run/munge
  munged --force --key-file="$dir/munge/munge.key" --socket=/run/munge/munge.socket.2 \
    --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  # srun inside batch jobs reads the default path, so the config is installed there
  # (an existing one is kept aside and put back by `stop`).
  mkdir -p /etc/slurm
  if [ -f /etc/slurm/slurm.conf ] && ! grep -q '^ClusterName=neuroattn' /etc/slurm/slurm.conf; then
    mv /etc/slurm/slurm.conf "$dir/slurm.conf.orig"
  fi
  cp "$dir/slurm.conf" /etc/slurm/slurm.conf
  slurmctld -f /etc/slurm/slurm.conf
  slurmd -f /etc/slurm/slurm.conf
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "slurm: node $host up ($cpus CPUs, $mem MB)"
      return 0
    fi
    sleep 1
  done
  echo "slurm: node did not come up; logs in $dir/log" >&2
  sinfo >&2 || true
  return 1
}

stop() {
  for name in slurmd slurmctld munged; do
    if [ -f "$dir/$name.pid" ]; then
      pid=$(cat "$dir/$name.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$dir/$name.pid"
    fi
  done
  if grep -q '^ClusterName=neuroattn' /etc/slurm/slurm.conf 2>/dev/null; then
    rm -f /etc/slurm/slurm.conf
    [ -f "$dir/slurm.conf.orig" ] && mv "$dir/slurm.conf.orig" /etc/slurm/slurm.conf
  fi
  return 0
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
