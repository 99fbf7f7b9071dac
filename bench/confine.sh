#!/usr/bin/env bash
# bench/confine.sh — what mini's confinement costs, in hyperfine runs:
#
#   1. a container start, `mini run --rm --network none IMG true`, with docker's
#      default seccomp profile (mini's default), with `--security-opt
#      seccomp=unconfined` (no filter), and with `--privileged` (no filter, no masks,
#      the host's devices, every capability): what each layer adds to a start;
#   2. syscall-heavy work inside: `dd if=/dev/zero of=/dev/null bs=1 count=N` (2N
#      read/write calls, each passing the filter) with and without the filter;
#      and the same `dd` on the host, outside any container.
#
#   bench/confine.sh            # builds release binaries
#   RUNS=20 WARMUP=2 COUNT=500000 bench/confine.sh
#
# Results: bench/results/confine-{start,syscalls}.{json,md}, the summary in
# bench/results/confine.txt. Everything lives in one temporary directory removed on
# exit (bench/lib.sh's bench_mini); the run holds the integration tests' lock.
# Needs: hyperfine umoci busybox-static python3 util-linux; root.
set -euo pipefail

RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
COUNT=${COUNT:-500000}
IMG=bench/busybox

# shellcheck source=bench/lib.sh
source "$(dirname "$(realpath "$0")")/lib.sh"

summary() {
    python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"]
for x in r:
    print(f"{x['command']:<40} {x['median']*1000:8.1f} ms   x{x['median']/base:.2f}")
PY
}

[ "$(id -u)" = 0 ] || { echo "run as root: containers need CAP_SYS_ADMIN" >&2; exit 1; }
for t in hyperfine umoci busybox python3 flock; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing: apt-get install -y hyperfine umoci busybox-static python3 util-linux" >&2; exit 1; }
done
bench_mini confine
cd "$HERE"
BIN=$(dirname "$MINI")
OUT=$PWD/bench/results
mkdir -p "$OUT"
rm -f "$OUT"/confine-*.json "$OUT"/confine-*.md "$OUT/confine.txt"
m="$MINI -q --root $STORE"
export CONTLAB_RUN_DIR=$WORK/run

bench_busybox_layout "$WORK"
"$BIN/img-pull" -q --root "$STORE" import "$L:x" -t "$IMG" >&2
$m run --rm --network none $IMG true

echo "== 1. a container start with docker's seccomp profile, unconfined, privileged" >&2
hyperfine -N --warmup "$WARMUP" --runs "$RUNS" --export-json "$OUT/confine-start.json" \
    --export-markdown "$OUT/confine-start.md" \
    -n "default (seccomp profile)" "$m run --rm --network none $IMG true" \
    -n "seccomp=unconfined" "$m run --rm --network none --security-opt seccomp=unconfined $IMG true" \
    -n "privileged" "$m run --rm --network none --privileged $IMG true" >&2

echo "== 2. $((2 * COUNT)) read/write calls inside, with and without the filter" >&2
dd="dd if=/dev/zero of=/dev/null bs=1 count=$COUNT"
hyperfine -N --warmup 1 --runs "$((RUNS / 3 + 3))" --export-json "$OUT/confine-syscalls.json" \
    --export-markdown "$OUT/confine-syscalls.md" \
    -n "default (seccomp profile)" "$m run --rm --network none $IMG $dd" \
    -n "seccomp=unconfined" "$m run --rm --network none --security-opt seccomp=unconfined $IMG $dd" \
    -n "on the host" "busybox $dd" >&2
{
    echo "== 1. mini run --rm IMG true (this machine, $(uname -r))"
    summary "$OUT/confine-start.json"
    echo "== 2. mini run --rm IMG $dd"
    summary "$OUT/confine-syscalls.json"
} | tee "$OUT/confine.txt"
