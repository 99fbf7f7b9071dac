#!/usr/bin/env bash
# bench/confine.sh — what confinement costs, mini against docker.io and podman in the
# same run:
#
#   1. a container start, `run --rm --network none IMG true`, with each runtime's
#      default seccomp profile, with `--security-opt seccomp=unconfined` (no filter),
#      and (mini only: docker 20.10's and podman's runc ask for capabilities this
#      machine's own bounding set lacks) with `--privileged`;
#   2. syscall-heavy work inside: `dd if=/dev/zero of=/dev/null bs=1 count=N` (2N
#      read/write calls, each passing the filter) with and without the filter, in the
#      three runtimes; and the same `dd` on the host, outside any container.
#
#   bench/confine.sh            # builds release binaries
#   RUNS=20 COUNT=500000 bench/confine.sh
#
# Everything runs in fresh namespaces with a private dockerd and podman storage in one
# temporary directory (bench/lib.sh: bench_in_namespace, bench_peers), removed on
# exit; the run holds the integration tests' lock. Results:
# bench/results/confine-{start,syscalls}.{json,md}, the summary in
# bench/results/confine.txt.
# Needs: hyperfine podman docker.io umoci busybox-static jq iproute2 util-linux; root.
set -euo pipefail

RUNS=${RUNS:-20}
COUNT=${COUNT:-500000}
SELF=$(realpath "$0")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_in_namespace "$SELF" "$@"
bench_mini confine
bench_peers
OUT=$ROOT/bench/results
mkdir -p "$OUT"
rm -f "$OUT"/confine-*.json "$OUT"/confine-*.md "$OUT/confine.txt"

M="$MINI -q --root $STORE run --rm --network none"
bench_podman_run --network none
DR="$D run --rm --network none"
U="--security-opt seccomp=unconfined"

echo "== 1. a container start: default profile, unconfined, privileged" >&2
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/confine-start.json" \
    --export-markdown "$OUT/confine-start.md" \
    -n "mini default" "$M bench/base true" \
    -n "mini unconfined" "$M $U bench/base true" \
    -n "mini privileged" "$M --privileged bench/base true" \
    -n "docker default" "$DR bench/base true" \
    -n "docker unconfined" "$DR $U bench/base true" \
    -n "podman default" "$PR bench/base true" \
    -n "podman unconfined" "$PR $U bench/base true" >&2

echo "== 2. $((2 * COUNT)) read/write calls inside, with and without the filter" >&2
dd="dd if=/dev/zero of=/dev/null bs=1 count=$COUNT"
hyperfine -N --warmup 1 --runs "$((RUNS / 3 + 3))" --export-json "$OUT/confine-syscalls.json" \
    --export-markdown "$OUT/confine-syscalls.md" \
    -n "mini default" "$M bench/base $dd" \
    -n "mini unconfined" "$M $U bench/base $dd" \
    -n "docker default" "$DR bench/base $dd" \
    -n "docker unconfined" "$DR $U bench/base $dd" \
    -n "podman default" "$PR bench/base $dd" \
    -n "podman unconfined" "$PR $U bench/base $dd" \
    -n "on the host" "busybox $dd" >&2

summary() { # FILE: each command's median, its ratio to mini's first row, and per runtime the filter's cost
    jq -r '.results | (.[0].median) as $b | .[] | "\(.command)\t\(.median * 1000)\t\(.median / $b)"' "$1" |
        awk -F'\t' '{ printf "%-22s %9.1f ms   x%.2f\n", $1, $2, $3 }'
}
{
    echo "== mini vs docker.io $($D version -f '{{.Server.Version}}') vs podman $($P --version | awk '{print $3}') ($(uname -r)); RUNS=$RUNS"
    echo "== 1. run --rm IMG true"
    summary "$OUT/confine-start.json"
    echo "== 2. run --rm IMG $dd"
    summary "$OUT/confine-syscalls.json"
} | tee "$OUT/confine.txt"
