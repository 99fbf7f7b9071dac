#!/usr/bin/env bash
# bench/net.sh — what a container's network costs, mini against docker.io and podman
# in the same run:
#
#   1. a container start, `run --rm IMG true`, on each runtime's default network
#      (mini's bridge, docker0, podman's) and with `--network none`;
#   2. 200 detached containers started one after the other on one user network: the
#      time of each start, the first 20 against the last 20 (it must stay flat: an
#      attach takes the network's lock and rewrites its state once);
#   3. the latency of a name lookup through the embedded resolver (127.0.0.11): 200
#      `nslookup` of another container's name inside one container, mini's resolver
#      (the container's monitor) against docker's (dockerd).
#
#   bench/net.sh                # builds release binaries
#   RUNS=20 N=200 bench/net.sh
#
# Everything runs in fresh namespaces (bench/lib.sh): dockerd gets its docker0 and
# iptables rules there, never on the host. Results: bench/results/net-*.{json,md},
# the summary in bench/results/net.txt.
# Needs: hyperfine podman docker.io iptables umoci busybox-static jq iproute2 util-linux; root.
set -euo pipefail

RUNS=${RUNS:-20}
N=${N:-200}
SELF=$(realpath "$0")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_in_namespace "$SELF" "$@"
bench_mini net
export DOCKER_NETWORKS=1
bench_peers
OUT=$ROOT/bench/results
mkdir -p "$OUT"
rm -f "$OUT"/net-*.json "$OUT"/net-*.md "$OUT/net.txt"

M="$MINI -q --root $STORE"
bench_podman_run

echo "== 1. a container start on the default network, and with none" >&2
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/net-start.json" --export-markdown "$OUT/net-start.md" \
    -n "mini bridge" "$M run --rm bench/base true" \
    -n "mini none" "$M run --rm --network none bench/base true" \
    -n "docker bridge" "$D run --rm bench/base true" \
    -n "docker none" "$D run --rm --network none bench/base true" \
    -n "podman default" "$PR bench/base true" \
    -n "podman none" "$PR --network none bench/base true" >&2

echo "== 2. $N containers on one network, started one after the other" >&2
starts() { # RUNTIME: the milliseconds of each of N starts, one per line
    local i t0 t1
    for i in $(seq "$N"); do
        t0=$(date +%s%N)
        $1 run -d --name "s$i" --network many bench/base sleep 3600 >/dev/null
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
    done
}
$M network create many >/dev/null
starts "$M" > "$WORK/mini-starts"
$D network create many >/dev/null
starts "$D" > "$WORK/docker-starts"
flat() { # FILE: median of the first 20 and of the last 20 starts, in ms, and their ratio
    local first last
    first=$(head -20 "$1" | sort -n | sed -n 10p)
    last=$(tail -20 "$1" | sort -n | sed -n 10p)
    awk -v f="$first" -v l="$last" 'BEGIN { printf "first 20: %.1f ms   last 20: %.1f ms   last/first x%.2f\n", f / 1000, l / 1000, l / f }'
}

echo "== 3. 200 name lookups through the embedded resolver" >&2
lookups='for i in $(seq 200); do nslookup s2 127.0.0.11 >/dev/null || exit 1; done'
hyperfine -N --warmup 1 --runs "$((RUNS / 2 + 3))" --export-json "$OUT/net-dns.json" --export-markdown "$OUT/net-dns.md" \
    -n "mini" "$M exec s1 sh -c '$lookups'" \
    -n "docker" "$D exec s1 sh -c '$lookups'" >&2

summary() { # FILE: each command's median, its ratio to the first row
    jq -r '.results | (.[0].median) as $b | .[] | "\(.command)\t\(.median * 1000)\t\(.median / $b)"' "$1" |
        awk -F'\t' '{ printf "%-16s %9.1f ms   x%.2f\n", $1, $2, $3 }'
}
{
    echo "== mini vs docker.io $($D version -f '{{.Server.Version}}') vs podman $($P --version | awk '{print $3}') ($(uname -r)); RUNS=$RUNS N=$N"
    echo "== 1. run --rm IMG true"
    summary "$OUT/net-start.json"
    echo "== 2. $N starts on one network"
    echo "mini    $(flat "$WORK/mini-starts")"
    echo "docker  $(flat "$WORK/docker-starts")"
    echo "== 3. 200 lookups of a container's name (one exec)"
    summary "$OUT/net-dns.json"
} | tee "$OUT/net.txt"
m rm -f $(m ps -aq) >/dev/null 2>&1 || true
$D rm -f $($D ps -aq) >/dev/null 2>&1 || true
