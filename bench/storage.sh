#!/usr/bin/env bash
# bench/storage.sh — what mini's storage costs a container start, in hyperfine runs:
#
#   1. (this machine) `mini run --rm --network none IMG true` without a mount, then
#      with `-v NAME:/data` (a named volume), `-v /host/dir:/data` (a bind),
#      `--tmpfs /data`, and `--mount source=TMPFSVOL,target=/data` (a named volume of
#      the local driver with type=tmpfs: its filesystem mounted on the host at each
#      start, unmounted at each stop). Ratios to the run without a mount.
#   2. (in the vm tier, `--vm`: device-mapper exists there) the same run on the
#      overlay2 driver vs the devicemapper driver (`mini -s devicemapper`): a thin
#      snapshot per container, activated and mounted. Ratio devicemapper / overlay2.
#
#   bench/storage.sh            # both (builds release binaries)
#   RUNS=20 WARMUP=2 bench/storage.sh
#
# Results: bench/results/storage-*.{json,md}, the summary in bench/results/storage.txt.
# Everything lives in one temporary directory (stores, volumes, the bind's directory)
# removed on exit; the run holds the integration tests' lock.
# Needs: hyperfine umoci busybox-static python3 util-linux; root; for step 2 the vm
# tier's packages (see tests/vm/README.md).
set -euo pipefail

RUNS=${RUNS:-50}
WARMUP=${WARMUP:-5}
IMG=bench/busybox

# shellcheck source=bench/lib.sh
source "$(dirname "$(realpath "$0")")/lib.sh"

# A store at $1 holding $IMG: busybox packed by umoci, imported by img-pull.
busybox_store() {
    bench_busybox_layout "$2"
    "$BIN/img-pull" -q --root "$1" import "$L:x" -t "$IMG" >&2
}

# Medians (ms) and ratios to the first command of a hyperfine JSON export.
summary() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"]
for x in r:
    print(f"{x['command']:<44} {x['median']*1000:8.1f} ms   x{x['median']/base:.2f}")
PY
}

if [ "${1:-}" = --in-vm ]; then
    # ---- step 2, inside the VM ------------------------------------------------------
    BIN=$2 OUT=$3
    WORK=$(mktemp -d /tmp/contlab-bench-storage.XXXXXX)
    STORE=$WORK/store
    busybox_store "$STORE" "$WORK"
    m="$BIN/mini -q --root $STORE"
    export CONTLAB_RUN_DIR=$WORK/run
    $m run --rm --network none $IMG true
    $m -s devicemapper run --rm --network none $IMG true
    # The guest's writes vanish at power-off: the summary goes back on stdout.
    hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$WORK/storage-dm.json" \
        -n "overlay2" "$m run --rm --network none $IMG true" \
        -n "devicemapper" "$m -s devicemapper run --rm --network none $IMG true" >&2
    summary "$WORK/storage-dm.json"
    dmsetup remove_all --force
    losetup -D
    exit 0
fi

SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: containers need CAP_SYS_ADMIN" >&2; exit 1; }
for t in hyperfine umoci busybox python3 flock; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing: apt-get install -y hyperfine umoci busybox-static python3 util-linux" >&2; exit 1; }
done
if [ -z "${BENCH_STORAGE_LOCKED:-}" ]; then
    echo "bench: waiting for /tmp/contlab-tests.lock (no test may run beside the benchmark)" >&2
    exec flock -o /tmp/contlab-tests.lock env BENCH_STORAGE_LOCKED=1 "$SELF" "$@"
fi
cargo build --release -q --bin mini --bin img-pull
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
OUT=$PWD/bench/results
mkdir -p "$OUT"
rm -f "$OUT"/storage-*.json "$OUT"/storage-*.md "$OUT/storage.txt"
WORK=$(mktemp -d /tmp/contlab-bench-storage.XXXXXX)
STORE=$WORK/store
m="$BIN/mini -q --root $STORE"
cleanup() {
    local ids
    ids=$($m ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || $m rm -f $ids >/dev/null || true
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export CONTLAB_RUN_DIR=$WORK/run

echo "== 1. a container start without a mount, with a volume, a bind, a tmpfs" >&2
busybox_store "$STORE" "$WORK"
mkdir -p "$WORK/bind"
$m volume create vol >/dev/null
$m volume create --opt type=tmpfs --opt device=tmpfs --opt o=size=16m tvol >/dev/null
$m run --rm --network none -v vol:/data $IMG true
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$OUT/storage-volumes.json" \
    --export-markdown "$OUT/storage-volumes.md" \
    -n "no mount" "$m run --rm --network none $IMG true" \
    -n "named volume (-v vol:/data)" "$m run --rm --network none -v vol:/data $IMG true" \
    -n "bind (-v /dir:/data)" "$m run --rm --network none -v $WORK/bind:/data $IMG true" \
    -n "tmpfs (--tmpfs /data)" "$m run --rm --network none --tmpfs /data $IMG true" \
    -n "tmpfs volume (--mount source=tvol)" "$m run --rm --network none --mount source=tvol,target=/data $IMG true" >&2
{
    echo "== 1. mini run --rm with mounts (this machine, $(uname -r))"
    summary "$OUT/storage-volumes.json"
} | tee "$OUT/storage.txt"

echo "== 2. overlay2 vs devicemapper, in the vm tier" >&2
{
    echo "== 2. overlay2 vs devicemapper (vm tier, $(ls /boot/vmlinuz-* | sort -V | tail -1))"
    tests/vm/run --timeout 1800 -- "$SELF" --in-vm "$BIN" "$OUT" | grep -E '^(overlay2|devicemapper) '
} | tee -a "$OUT/storage.txt"
