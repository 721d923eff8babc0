#!/usr/bin/env bash
# A real single-node SLURM for tests: munged + slurmctld + slurmd on this host, no slurmdbd, no systemd.
#
#   tests/slurm/cluster.sh install   apt packages (root, Debian/Ubuntu); a no-op when already there
#   tests/slurm/cluster.sh start     write the config, start the three daemons, wait until the node is idle
#   tests/slurm/cluster.sh stop      stop exactly the daemons 'start' started (by their PID files)
#
# State lives under $SLURM_TEST_DIR (default /tmp/ss-slurm): munge key and socket, PID files, spool,
# logs. The config goes to /etc/slurm/{slurm,gres}.conf, where every client finds it (also srun
# inside a job, whose environment the Snakemake jobstep plugin strips of SLURM_* variables, so
# $SLURM_CONF cannot be used). 'start' refuses to overwrite a slurm.conf it did not write; 'stop'
# removes its own, so afterwards client tools fail at once instead of waiting ~9 s for a
# controller that is gone (the Snakemake plugin asks `scontrol show config` on every start).
# The node has two fake GPUs (gres.conf File=/dev/null and /dev/zero), enough for --gpus scheduling
# (two, so the generator's 2-process job, --gpus=2, fits).
# Only localhost traffic: slurmctld/slurmd listen on ports 6817/6818 of this host.
set -euo pipefail

DIR=${SLURM_TEST_DIR:-/tmp/ss-slurm}
CONF=/etc/slurm/slurm.conf
GRES=/etc/slurm/gres.conf
MARK="# written by synthetic-simplicity tests/slurm/cluster.sh"
HOST=$(hostname -s)

die() { echo "cluster.sh: $*" >&2; exit 1; }

install_packages() {
    local missing=()
    for bin in slurmctld slurmd sbatch munged; do command -v "$bin" >/dev/null || missing+=("$bin"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install slurm (missing: ${missing[*]})"
    command -v apt-get >/dev/null || die "no apt-get: install slurmctld slurmd slurm-client munge yourself"
    # No init system here: keep the packages' postinst scripts from trying to start services.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout -s KILL 300 apt-get update -qq
    timeout -s KILL 300 apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
    [ "$made_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root (slurmd runs jobs as their user)"
    for bin in slurmctld slurmd sbatch munged; do command -v "$bin" >/dev/null || die "$bin missing: run '$0 install'"; done
    pid_alive "$DIR/run/slurmctld.pid" && die "already running (pid $(cat "$DIR/run/slurmctld.pid")); '$0 stop' first"
    for f in "$CONF" "$GRES"; do
        [ -e "$f" ] && ! grep -qxF "$MARK" "$f" && die "$f exists and was not written by $0; not touching it"
    done
    rm -rf "$DIR"
    mkdir -p "$DIR"/{run,log,ctld,d,munge} /etc/slurm
    chmod 700 "$DIR/munge"

    # munge: own key and socket under $DIR, so a system munged (if any) is left alone.
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"

    # The node line is this host's own description (CPUs, sockets, memory), plus the fake GPU.
    local node
    node=$(slurmd -C | head -1)
    cat >"$CONF" <<EOF
$MARK
ClusterName=sstest
SlurmctldHost=$HOST
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CryptoType=crypto/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container: track job processes by process group, no task binding.
ProctrackType=proctrack/pgid
TaskPlugin=task/none
# --gpus needs cons_tres; memory is a consumable, so --mem is enforced by the scheduler.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
GresTypes=gpu
# No slurmdbd: Snakemake must use --slurm-status-command squeue, which needs finished jobs to stay
# visible to squeue for longer than the plugin's poll interval (MinJobAge >= 300 s).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
# A node that was down comes back by itself when slurmd registers again.
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$node Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    printf '%s\nName=gpu File=/dev/null\nName=gpu File=/dev/zero\n' "$MARK" >"$GRES"

    slurmctld -i -f "$CONF"
    slurmd -f "$CONF"

    local i
    for i in $(seq 1 60); do
        if timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
            echo "cluster.sh: node $HOST idle after ${i}s (state in $DIR)"
            return 0
        fi
        sleep 1
    done
    echo "--- slurmctld.log" >&2; tail -20 "$DIR/log/slurmctld.log" >&2 || true
    echo "--- slurmd.log" >&2; tail -20 "$DIR/log/slurmd.log" >&2 || true
    stop
    die "node did not become idle within 60 s"
}

stop() {
    local name pid i
    # A Snakemake the test left running (the test records it; it runs in its own process group):
    # TERM lets it cancel its jobs.
    if pid_alive "$DIR/run/snakemake.pid"; then
        pid=$(cat "$DIR/run/snakemake.pid")
        kill -TERM -- "-$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/run/snakemake.pid"
    # Jobs next (their process groups belong to slurmd), then the daemons, each by its own PID file.
    if pid_alive "$DIR/run/slurmctld.pid"; then
        timeout 10 scancel --user "$(id -un)" 2>/dev/null || true
        sleep 1
    fi
    for name in slurmd slurmctld munged; do
        pid_alive "$DIR/run/$name.pid" || continue
        pid=$(cat "$DIR/run/$name.pid")
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
        rm -f "$DIR/run/$name.pid"
    done
    # Without a config, client tools (and the Snakemake plugin's scontrol probe) fail at once.
    local f
    for f in "$CONF" "$GRES"; do
        if [ -e "$f" ] && grep -qxF "$MARK" "$f"; then rm -f "$f"; fi
    done
}

case "${1:-}" in
    install) install_packages ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 install|start|stop" ;;
esac
