#!/usr/bin/env bash
# bench/mini.sh — how long does `mini run --rm IMAGE true` take, against the runtimes a
# student would otherwise use, in the same hyperfine runs:
#
#   1. `mini run --rm --network none IMG true` (image in the store) vs `crun run` and
#      `runc run` on a prepared OCI bundle of the same rootfs, vs `podman run --rm
#      --network none` and Debian's docker.io (`docker run --rm --network none`, with a
#      private dockerd) on the same image. Goals: mini ≤ 1.5× crun, podman ≥ 15× mini.
#      Two more mini rows for diagnosis: with the trace formatted (to /dev/null), and
#      with the store on a tmpfs (what the store's fsyncs and ext4 journal cost).
#   2. the same `mini run --rm IMG true` on the default bridge vs `--network none`;
#   3. `mini run -d IMG sleep 1000` + `mini rm -f` as one command (bridge, none);
#   4. `mini ps -a` with no container, then with N (50) detached containers;
#   5. the memory of each of those N containers' monitor (`mini __monitor`): VmRSS,
#      and Pss and private memory from /proc/PID/smaps_rollup. Goal: ≤ 2 MB per
#      container. For scale, the same for PEER_N (10) detached podman containers'
#      conmon and docker containers' containerd-shim-runc-v2.
#
#   bench/mini.sh            # builds release binaries, runs, prints medians + ratios
#   RUNS=30 WARMUP=3 N=20 PEER_N=5 SETTLE=1 bench/mini.sh   # quicker, noisier
#
# Results: bench/results/mini-*.{json,md}, the summary in bench/results/mini.txt.
# Steps 2-5 run in a fresh network + mount namespace (a tmpfs on /run/netns,
# CONTLAB_RUN_DIR in a temporary directory): no host interface, route or nftables
# rule is touched. Everything the run makes (stores, bundle, podman storage, dockerd,
# containers, cgroups, mounts) lives under one temporary directory or is listed
# before the run, and is removed on exit, failure or ^C. The run holds the
# integration tests' lock (/tmp/contlab-tests.lock): both touch
# /sys/fs/cgroup/*/contlab and /run/netns, and a test beside it would skew the numbers.
#
# What the peers need on this kind of machine (hybrid cgroups: v1 controllers, and a
# cgroup2 tree on /sys/fs/cgroup/unified holding only `hugetlb`):
#   - crun 1.8 refuses hybrid mode ("cgroups in hybrid mode not supported, drop all
#     controllers from cgroupv2"). Its commands run in a private mount namespace where
#     /sys/fs/cgroup/unified is replaced by an empty tmpfs: crun sees plain v1, and
#     the directories it still makes there for the "0::" line land in that tmpfs,
#     which goes with the namespace (an unmount alone would leave them in the host's
#     /sys/fs/cgroup tmpfs, hidden under the cgroup2 mount). All of step 1 runs in
#     that namespace, so every runtime is measured in the same place; mini and runc
#     do not use the cgroup2 tree here.
#   - podman 4.3 runs crun: the same namespace, and its crun fails with "setrlimit
#     RLIMIT_NOFILE: Operation not permitted" unless nofile/nproc are lowered to 1024
#     first (`prlimit`, an exec with no shell in between).
#   - dockerd 20.10 starts with its own --data-root, --exec-root, -H unix://SOCKET,
#     --pidfile, --bridge=none --iptables=false; Debian's docker client talks to it
#     through DOCKER_HOST. Images come in with `docker load` / `podman load` of one
#     `skopeo copy oci:... docker-archive:...` tar.
# Needs: hyperfine umoci skopeo crun runc podman docker.io busybox-static util-linux
# iproute2 python3 time; root.
set -euo pipefail

RUNS=${RUNS:-100}
WARMUP=${WARMUP:-10}
N=${N:-50}
PEER_N=${PEER_N:-10}
IMG=bench/busybox
SETTLE=${SETTLE:-3}

# Before each measurement: dirty pages written back and the kernel's deferred work of
# the last step done (network namespaces and veths are torn down by a workqueue after
# the last process leaves; a backlog of them slows the next step's runs).
settle() { sync; sleep "$SETTLE"; }

# ---- steps 2-5: inside the fresh network + mount namespace (the script re-runs itself)
sandbox() {
    # /run/netns exists on the host (checked); this tmpfs is only this namespace's.
    mount -t tmpfs -o mode=755 contlab-bench /run/netns
    ip link set lo up
    export CONTLAB_RUN_DIR=$WORK/run
    m="$MINI -q --root $STORE" # global: the EXIT trap runs after this function returns
    # shellcheck disable=SC2317 # called by the trap
    sandbox_cleanup() {
        local ids
        ids=$($m ps -aq 2>/dev/null || true)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || $m rm -f $ids >/dev/null || echo "bench: mini rm -f failed in the sandbox" >&2
    }
    trap sandbox_cleanup EXIT
    trap 'exit 130' INT TERM

    echo "== 2. default bridge vs --network none (fresh network namespace)" >&2
    $m run --rm "$IMG" true || { echo "bench: mini run on the default bridge failed" >&2; exit 1; }
    settle
    hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
        --export-json "$OUT/mini-bridge.json" --export-markdown "$OUT/mini-bridge.md" \
        -n "mini --network none" "$m run --rm --network none $IMG true" \
        -n "mini (default bridge)" "$m run --rm $IMG true" >&2
    leftovers "after step 2"

    echo "== 3. run -d + rm -f" >&2
    settle
    hyperfine --warmup "$WARMUP" --runs "$RUNS" \
        --export-json "$OUT/mini-detach.json" --export-markdown "$OUT/mini-detach.md" \
        -n "run -d + rm -f (default bridge)" "id=\$($m run -d $IMG sleep 1000) && $m rm -f \$id >/dev/null" \
        -n "run -d + rm -f (--network none)" "id=\$($m run -d --network none $IMG sleep 1000) && $m rm -f \$id >/dev/null" >&2
    leftovers "after step 3"

    echo "== 4. ps -a with 0, then $N containers" >&2
    settle
    hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
        --export-json "$OUT/mini-ps0.json" -n "ps -a (0 containers)" "$m ps -a" >&2
    local i=1 up
    while [ "$i" -le "$N" ]; do
        $m run -d --name "bench-$i" "$IMG" sleep 1000 >/dev/null
        i=$((i + 1))
    done
    up=$($m ps -q | wc -l)
    [ "$up" = "$N" ] || { echo "bench: $up running containers after $N run -d, not $N" >&2; $m ps -a >&2; exit 1; }
    settle
    hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
        --export-json "$OUT/mini-ps.json" --export-markdown "$OUT/mini-ps.md" \
        -n "ps -a ($N containers)" "$m ps -a" \
        -n "ps -aq ($N containers)" "$m ps -aq" >&2

    echo "== 5. the monitors' memory ($N running containers)" >&2
    sleep 1 # every monitor in its steady state (waiting on its container)
    python3 "$WORK/rss.py" "$OUT/mini-rss.json" "$N" mini "$STORE" __monitor
    /usr/bin/time -f "%e" -o "$OUT/mini-rm-all.txt" $m rm -f $($m ps -aq) >/dev/null
    echo "rm -f of $N running containers: $(cat "$OUT/mini-rm-all.txt") s" >&2
    leftovers "after step 5"
}

# What mini left: containers, mounts of the store, network namespaces, interfaces
# other than lo and the bridge (in the sandbox), cgroups that were not there before.
leftovers() {
    local what=$1 s bad="" links c
    for s in "$STORE" "$TSTORE"; do
        [ -z "$($MINI -q --root "$s" ps -aq)" ] || bad="$bad containers in $s: $($MINI -q --root "$s" ps -aq | tr '\n' ' ');"
        ! grep -q " $s/" /proc/self/mountinfo || bad="$bad mounts of $s: $(grep -c " $s/" /proc/self/mountinfo);"
    done
    for c in $(ls /run/netns); do
        grep -qxF "$c" <<<"$NETNS_BEFORE" || bad="$bad netns /run/netns/$c;"
    done
    if [ "${BENCH_MINI_PHASE:-}" = sandbox ]; then
        links=$(ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | grep -vx -e lo -e mini0 || true)
        [ -z "$links" ] || bad="$bad links: $(echo "$links" | tr '\n' ' ');"
    fi
    for c in $(mini_cgroups); do
        grep -qxF "$c" <<<"$MINI_CG_BEFORE" && continue
        bad="$bad cgroup $c (created $(stat -c %y "$c" | cut -c12-23), processes: $(tr '\n' ' ' < "$c/cgroup.procs"));"
    done
    [ -z "$bad" ] || echo "bench: mini left things behind $what:$bad" | tee -a "$OUT/mini-leaks.txt" >&2
}

# The containers' cgroups, in every hierarchy (contlab/mini/ID).
mini_cgroups() { find /sys/fs/cgroup/*/contlab/mini -mindepth 1 -maxdepth 1 -type d 2>/dev/null || true; }

if [ "${BENCH_MINI_PHASE:-}" = sandbox ]; then
    sandbox
    exit
fi

# ---- the host side: checks, the lock, build, images, peers, steps 1 and 5b ----------
SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: containers need CAP_SYS_ADMIN" >&2; exit 1; }
for t in hyperfine umoci skopeo crun runc podman dockerd busybox unshare prlimit mountpoint ip python3 flock; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing: apt-get install -y hyperfine umoci skopeo crun runc podman docker.io busybox-static util-linux iproute2 python3" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }
[ -d /run/netns ] || { echo "bench: /run/netns is missing (ip netns add x && ip netns del x makes it)" >&2; exit 1; }
# Debian's docker.io client, or whichever docker CLI is first in PATH.
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker) || { echo "bench: no docker client: apt-get install -y docker.io" >&2; exit 1; }

if [ -z "${BENCH_MINI_LOCKED:-}" ]; then
    echo "bench: waiting for /tmp/contlab-tests.lock (no test may run beside the benchmark)" >&2
    # -o: the lock's descriptor is not inherited by dockerd, monitors, containers.
    exec flock -o /tmp/contlab-tests.lock env BENCH_MINI_LOCKED=1 "$SELF" "$@"
fi

LOCK_PID=$PPID # flock, holding the lock while it lives
cargo build --release -q --bin mini --bin img-pull
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
MINI=$BIN/mini
OUT=$PWD/bench/results
mkdir -p "$OUT"
rm -f "$OUT"/mini-*.json "$OUT"/mini-*.md "$OUT"/mini-*.txt "$OUT/mini.txt"
WORK=$(mktemp -d /tmp/contlab-bench-mini.XXXXXX)
STORE=$WORK/store
TSTORE=$WORK/tmpfs/store
export MINI STORE WORK OUT IMG RUNS WARMUP N SETTLE
export CONTLAB_MINI_CONFIG=$WORK/mini.json # the defaults, whatever /etc/contlab says
echo '{"bip": "10.87.0.1/16", "bridge": "mini0"}' > "$CONTLAB_MINI_CONFIG"
P=(prlimit --nofile=1024 --nproc=1024 podman --root "$WORK/podman/root" --runroot "$WORK/podman/run"
    --tmpdir "$WORK/podman/tmp" --storage-driver overlay)
export DOCKER_HOST=unix://$WORK/docker.sock
DOCKERD_PID=
# What is there before the run, so that the clean-up removes only what the run made:
# the cgroup parents podman and docker make and never remove, mini's cgroups, named
# network namespaces, and the state directories the peers make at fixed paths whatever
# their --root options say (containerd's shim sockets, dockerd's plugins, crun's).
cg_before=$(ls -d /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/*/docker 2>/dev/null || true)
MINI_CG_BEFORE=$(mini_cgroups)
NETNS_BEFORE=$(ls /run/netns)
export MINI_CG_BEFORE NETNS_BEFORE TSTORE
FIXED_DIRS="/run/containerd/s /run/containerd /run/docker/plugins /run/docker /run/crun /run/runc /run/libpod"
# shellcheck disable=SC2086
fixed_before=$(ls -d $FIXED_DIRS 2>/dev/null || true)

# Run a long step in a session of its own, waited for in the background: bash runs no
# INT trap while a foreground child that handles SIGINT itself (mini, hyperfine) is
# running, so ^C would otherwise not stop the run; this way it reaches the trap at once,
# and the clean-up stops the whole step (its process group) before removing anything.
STEP_PID=
step() {
    local rc=0
    setsid "$@" &
    STEP_PID=$!
    wait "$STEP_PID" || rc=$?
    STEP_PID=
    return "$rc"
}

# CGV1 CMD...: CMD where /sys/fs/cgroup/unified is an empty tmpfs (crun's hybrid-mode
# refusal). An array, not a function, so that `step` (setsid) can run it too.
# shellcheck disable=SC2016 # expanded by that sh
CGV1=(unshare -m --propagation private sh -c '
    if mountpoint -q /sys/fs/cgroup/unified; then
        umount /sys/fs/cgroup/unified && mount -t tmpfs -o size=1m,mode=755 contlab-bench /sys/fs/cgroup/unified
    fi
    exec "$@"' sh)

# PIDs of processes with an argument naming the work directory (monitors, conmon,
# shims, dockerd), in the cgroups of containers of the run's stores, and in the
# cgroups podman and docker made during the run.
ours() {
    python3 - "$WORK" <<'PY'
import os, sys
work, me = sys.argv[1].encode(), str(os.getpid())
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        a = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
    except OSError:
        continue
    if p != me and any(work in x for x in a):
        print(p)
PY
    local c
    for c in $(mini_cgroups); do
        [ ! -d "$STORE/containers/${c##*/}" ] && [ ! -d "$TSTORE/containers/${c##*/}" ] || cat "$c/cgroup.procs"
    done
    for c in $(find /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/*/docker -mindepth 1 -type d 2>/dev/null); do
        grep -qxF "${c%/*}" <<<"$cg_before" || grep -qxF "${c%/*/*}" <<<"$cg_before" || cat "$c/cgroup.procs"
    done
}

cleanup() {
    local rc=$? ids s pids
    trap - EXIT INT TERM
    set +e
    if [ -n "$STEP_PID" ]; then
        echo "bench: interrupted: stopping the running step, then cleaning up" >&2
        kill -TERM -- "-$STEP_PID" 2>/dev/null
        for _ in $(seq 150); do kill -0 -- "-$STEP_PID" 2>/dev/null || break; sleep 0.2; done
    fi
    for s in "$STORE" "$TSTORE"; do
        ids=$($MINI -q --root "$s" ps -aq 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || $MINI -q --root "$s" rm -f $ids >/dev/null 2>&1
    done
    "${CGV1[@]}" crun --root "$WORK/crun" delete -f contlab-bench-crun >/dev/null 2>&1
    runc --root "$WORK/runc" delete -f contlab-bench-runc >/dev/null 2>&1
    [ ! -d "$WORK/podman" ] || "${CGV1[@]}" "${P[@]}" rm -af -t 0 >/dev/null 2>&1
    if [ -n "$DOCKERD_PID" ]; then
        ids=$("$DOCKER" ps -aq 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || "$DOCKER" rm -f $ids >/dev/null 2>&1
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$DOCKERD_PID" 2>/dev/null && { echo "bench: dockerd did not stop on SIGTERM: killed" >&2; kill -9 "$DOCKERD_PID"; }
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    # Last resort, after an interrupted run: whatever of ours still runs, by PID.
    pids=$(ours | sort -u | tr '\n' ' ')
    pids=${pids% }
    if [ -n "$pids" ]; then
        echo "bench: still running after the clean-up, killed:" >&2
        # shellcheck disable=SC2086
        ps -o pid=,args= -p "${pids// /,}" 2>/dev/null | sed 's/^/    /' >&2
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null
        sleep 0.5
    fi
    # Whatever is still mounted below the work directory (podman's storage, the tmpfs
    # store, an interrupted container), deepest first.
    awk -v w="$WORK/" 'index($5 "/", w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r mnt; do
        umount -l "$mnt"
    done
    # mini's cgroups this run made and left (none unless mini leaked: leftovers
    # reported them); only while the lock is held (a ^C ends flock first), when no
    # test can be making one of its own. Then podman's and docker's parents if this
    # run made them.
    for s in $(mini_cgroups); do
        grep -qxF "$s" <<<"$MINI_CG_BEFORE" && continue
        if [ "$(cat "/proc/$LOCK_PID/comm" 2>/dev/null)" = flock ]; then
            rmdir "$s"
        else
            echo "bench: not removed (the lock is gone, it may be a test's): $s" >&2
        fi
    done
    for s in $(ls -d /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/*/docker 2>/dev/null); do
        grep -qxF "$s" <<<"$cg_before" || find "$s" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    for s in $FIXED_DIRS; do
        [ ! -d "$s" ] || grep -qxF "$s" <<<"$fixed_before" || rmdir "$s" 2>/dev/null
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rss.py OUT COUNT EXE NEEDLE [MARKER]: VmRSS, Pss and private memory of the COUNT
# processes running EXE with an argument containing NEEDLE (and one equal to MARKER).
cat > "$WORK/rss.py" <<'PY'
import json, os, statistics, sys
out, n, exe, needle = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
marker = sys.argv[5].encode() if len(sys.argv) > 5 else None
rows = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        if os.path.basename(argv[0]).decode() != exe or not any(needle in a for a in argv):
            continue
        if marker is not None and marker not in argv:
            continue
        status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status").read().splitlines() if ":" in l)
        roll = dict(l.split(":", 1) for l in open(f"/proc/{pid}/smaps_rollup").read().splitlines()[1:] if ":" in l)
    except (FileNotFoundError, ProcessLookupError):
        continue
    kb = lambda d, k: int(d[k].split()[0])
    rows.append({"pid": int(pid), "vmrss_kb": kb(status, "VmRSS"), "pss_kb": kb(roll, "Pss"),
                 "private_kb": kb(roll, "Private_Clean") + kb(roll, "Private_Dirty")})
if len(rows) != n:
    sys.exit(f"bench: found {len(rows)} {exe} processes (an argument containing {needle.decode()}), expected {n}")
summary = {k: {"median": statistics.median(r[k] for r in rows), "max": max(r[k] for r in rows)}
           for k in ("vmrss_kb", "pss_kb", "private_kb")}
json.dump({"exe": exe, "processes": rows, "summary": summary}, open(out, "w"), indent=1)
PY

echo "== preparing: a busybox rootfs, an OCI layout, the stores, a bundle, podman, dockerd" >&2
# shellcheck source=bench/lib.sh
source bench/lib.sh
bench_busybox_layout "$WORK"
"$BIN/img-pull" -q --root "$STORE" import "$L:x" -t "$IMG" >&2
mkdir -p "$WORK/tmpfs"
mount -t tmpfs -o mode=700 contlab-bench "$WORK/tmpfs"
"$BIN/img-pull" -q --root "$TSTORE" import "$L:x" -t "$IMG" >&2

# The OCI bundle for crun and runc: the same rootfs, runc's default spec running `true`.
mkdir -p "$WORK/bundle"
cp -a "$r" "$WORK/bundle/rootfs"
(cd "$WORK/bundle" && runc spec)
python3 - "$WORK/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY

skopeo copy -q "oci:$L:x" "docker-archive:$WORK/image.tar:$IMG:latest"
"${P[@]}" load -q -i "$WORK/image.tar" >&2

mkdir -p "$WORK/docker"
# In a session of its own: a ^C to the benchmark must not stop dockerd before the
# clean-up has removed its containers.
setsid dockerd --data-root "$WORK/docker/data" --exec-root "$WORK/docker/exec" -H "$DOCKER_HOST" \
    --pidfile "$WORK/docker/pid" --bridge=none --iptables=false >"$WORK/docker/log" 2>&1 &
DOCKERD_PID=$!
for i in $(seq 150); do
    "$DOCKER" version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null && [ "$i" -lt 150 ] || { echo "bench: dockerd did not start:" >&2; tail -20 "$WORK/docker/log" >&2; exit 1; }
    sleep 0.2
done
"$DOCKER" load -q -i "$WORK/image.tar" >&2

# Each command once (the first mini run of a store also unpacks the layer), so that a
# failure says why instead of a hyperfine error.
m="$MINI -q --root $STORE"
"${CGV1[@]}" $m run --rm --network none "$IMG" true || { echo "bench: mini run failed" >&2; exit 1; }
"${CGV1[@]}" "$MINI" -q --root "$TSTORE" run --rm --network none "$IMG" true || { echo "bench: mini run (tmpfs store) failed" >&2; exit 1; }
"${CGV1[@]}" crun --root "$WORK/crun" run -b "$WORK/bundle" contlab-bench-crun || { echo "bench: crun run failed" >&2; exit 1; }
runc --root "$WORK/runc" run -b "$WORK/bundle" contlab-bench-runc || { echo "bench: runc run failed" >&2; exit 1; }
"${CGV1[@]}" "${P[@]}" run --rm --network none "$IMG" true || { echo "bench: podman run failed" >&2; exit 1; }
"$DOCKER" run --rm --network none "$IMG" true || { echo "bench: docker run failed" >&2; tail -20 "$WORK/docker/log" >&2; exit 1; }

echo "== 1. mini run --rm --network none vs crun, runc, podman, docker" >&2
settle
step "${CGV1[@]}" hyperfine -N --warmup "$WARMUP" --runs "$RUNS" \
    --export-json "$OUT/mini-run.json" --export-markdown "$OUT/mini-run.md" \
    -n mini "$m run --rm --network none $IMG true" \
    -n "mini (trace to /dev/null)" "$MINI --trace-file /dev/null --root $STORE run --rm --network none $IMG true" \
    -n "mini (store on tmpfs)" "$MINI -q --root $TSTORE run --rm --network none $IMG true" \
    -n crun "crun --root $WORK/crun run -b $WORK/bundle contlab-bench-crun" \
    -n runc "runc --root $WORK/runc run -b $WORK/bundle contlab-bench-runc" \
    -n podman "${P[*]} run --rm --network none $IMG true" \
    -n docker "$DOCKER run --rm --network none $IMG true" >&2
leftovers "after step 1"

# Steps 2-5, in a fresh network + mount namespace.
step unshare --net --mount --propagation private env BENCH_MINI_PHASE=sandbox "$SELF"
leftovers "on the host after steps 1-5"

echo "== 5b. the peers' monitors: conmon ($PEER_N podman containers), containerd-shim ($PEER_N docker containers)" >&2
export PEER_N
step "${CGV1[@]}" sh -c '
    set -e
    i=1
    while [ "$i" -le "$PEER_N" ]; do "$@" run -d --network none --name "bench-$i" "$IMG" sleep 1000 >/dev/null; i=$((i + 1)); done
    sleep 1
    python3 "$WORK/rss.py" "$OUT/mini-rss-conmon.json" "$PEER_N" conmon "$WORK"
    "$@" rm -f -t 0 -a >/dev/null' sh "${P[@]}"
i=1
while [ "$i" -le "$PEER_N" ]; do "$DOCKER" run -d --network none --name "bench-$i" "$IMG" sleep 1000 >/dev/null; i=$((i + 1)); done
sleep 1
python3 "$WORK/rss.py" "$OUT/mini-rss-shim.json" "$PEER_N" containerd-shim-runc-v2 "$WORK"
# shellcheck disable=SC2046
"$DOCKER" rm -f $("$DOCKER" ps -aq) >/dev/null

python3 - "$OUT" "$N" "$PEER_N" <<'PY' | tee "$OUT/mini.txt"
import json, os, sys
out, n, peer_n = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name):
    return {x["command"]: x for x in json.load(open(os.path.join(out, name)))["results"]}
def ms(x):
    return f"{x['median'] * 1000:8.2f} ms  (mean {x['mean'] * 1000:7.2f} ± {x['stddev'] * 1000:5.2f})"
run = load("mini-run.json")
base = run["mini"]["median"]
print("1. run --rm --network none IMG true         median      (mean ± σ)         / mini")
for name, x in run.items():
    print(f"   {name:28s} {ms(x)}  {x['median'] / base:6.2f}x")
def ratio(label, v, goal=None):
    verdict = "" if goal is None else ("  goal met" if goal(v) else "  goal MISSED")
    print(f"   {label:28s} {v:8.2f}x{verdict}")
ratio("mini/crun (goal <= 1.5x)", base / run["crun"]["median"], lambda v: v <= 1.5)
ratio("podman/mini (goal >= 15x)", run["podman"]["median"] / base, lambda v: v >= 15)
ratio("mini/runc", base / run["runc"]["median"])
ratio("docker/mini", run["docker"]["median"] / base)
br = load("mini-bridge.json")
none = br["mini --network none"]["median"]
print("2. default bridge vs --network none (fresh netns)")
for name, x in br.items():
    print(f"   {name:28s} {ms(x)}  {x['median'] / none:6.2f}x")
print("3. run -d IMG sleep 1000 + rm -f")
for name, x in load("mini-detach.json").items():
    print(f"   {name:32s} {ms(x)}")
print("4. ps")
for f in ("mini-ps0.json", "mini-ps.json"):
    for name, x in load(f).items():
        print(f"   {name:28s} {ms(x)}")
print("5. per-container monitor memory (kB)        VmRSS med/max     Pss med/max   private med/max")
for f, label in (("mini-rss.json", f"mini __monitor (x{n})"), ("mini-rss-conmon.json", f"podman's conmon (x{peer_n})"),
                 ("mini-rss-shim.json", f"docker's containerd-shim (x{peer_n})")):
    s = json.load(open(os.path.join(out, f)))["summary"]
    cols = "".join(f"  {s[k]['median']:7.0f} {s[k]['max']:7.0f}" for k in ("vmrss_kb", "pss_kb", "private_kb"))
    print(f"   {label:36s}{cols}")
s = json.load(open(os.path.join(out, "mini-rss.json")))["summary"]
print(f"   mini goal <= 2048 kB: VmRSS {'met' if s['vmrss_kb']['max'] <= 2048 else 'MISSED'},"
      f" Pss {'met' if s['pss_kb']['max'] <= 2048 else 'MISSED'}")
rm = open(os.path.join(out, "mini-rm-all.txt")).read().strip()
print(f"   rm -f of the {n} mini containers at once: {rm} s")
leaks = os.path.join(out, "mini-leaks.txt")
print("mini's leftovers: " + (open(leaks).read().strip() if os.path.exists(leaks) else "none"))
PY
