#!/usr/bin/env bash
# Run the README's Slurm array example for real on this machine (by hand, not in CI; needs root and apt):
# installs Debian's slurm-wlm + munge, starts a single-node Slurm (slurmctld + slurmd on this hostname,
# SelectType=select/cons_tres), submits a 3-task array job over a small corpus with checkpoints/tiny-random, and
# checks that the shards' outputs equal one single-process run byte for byte. Stops the daemons it started.
#
#   cargo build --release && nice -n 19 scripts/slurm_demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
BIN=${BIN:-$REPO/target/release/w2vbert-infer}
WORK=${WORK:-/tmp/w2vbert-slurm-demo}
SHARDS=3
HOST=$(hostname -s)
[ -x "$BIN" ] || { echo "build first: cargo build --release ($BIN missing)"; exit 1; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key, then the daemon (as the munge user, as its package expects).
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    STARTED_MUNGE=1
fi
munge -n | unmunge >/dev/null

# Slurm: one node (this host) with all its CPUs, cons_tres, no cgroups, no accounting.
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=w2vbert-demo
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=demo Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i
slurmd
cleanup() {
    scontrol shutdown >/dev/null 2>&1 || true
    if [ "${STARTED_MUNGE:-0}" = 1 ] && [ -f /run/munge/munged.pid ]; then kill "$(cat /run/munge/munged.pid)" || true; fi
}
trap cleanup EXIT
for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && break
    sleep 1
done
sinfo

# A small corpus in nested folders (same file names in different folders).
rm -rf "$WORK"; mkdir -p "$WORK/corpus" "$WORK/logs"
A=$REPO/tests/fixtures/audio
i=0
for spk in spk1 spk2 spk3 spk4; do
    for f in arctic_a0007.wav dec_s24.wav dec.flac dec.mp3 espeak_22050.wav; do
        mkdir -p "$WORK/corpus/$spk/s$((i % 2))"
        cp "$A/$f" "$WORK/corpus/$spk/s$((i % 2))/$f"
        i=$((i + 1))
    done
done

# Reference: one process.
"$BIN" --checkpoint "$REPO/checkpoints/tiny-random" --threads 1 --quiet --output-dir "$WORK/single" "$WORK/corpus"

# The README's sbatch script.
cat > "$WORK/w2vbert.sbatch" <<SB
#!/bin/bash
#SBATCH --job-name=w2vbert
#SBATCH --array=0-$((SHARDS - 1))
#SBATCH --cpus-per-task=1
#SBATCH --output=$WORK/logs/%A_%a.log
set -euo pipefail
"$BIN" \\
    --checkpoint "$REPO/checkpoints/tiny-random" \\
    --num-shards "\$SLURM_ARRAY_TASK_COUNT" --shard-index "\$SLURM_ARRAY_TASK_ID" \\
    --threads "\$SLURM_CPUS_PER_TASK" --json \\
    --output-dir "$WORK/sharded" "$WORK/corpus"
SB
cd "$WORK"
sbatch --wait "$WORK/w2vbert.sbatch"
echo "--- task logs"
for f in "$WORK"/logs/*.log; do echo "$(basename "$f"): $(cat "$f")"; done
echo "--- comparison"
if diff -r "$WORK/single" "$WORK/sharded"; then
    echo "OK: $SHARDS Slurm array tasks wrote $(find "$WORK/sharded" -type f | wc -l) files, identical to the single-process run"
else
    echo "FAIL: sharded outputs differ from the single-process run"
    exit 1
fi
