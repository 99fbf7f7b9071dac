#!/usr/bin/env bash
# bench/build.sh — `mini build` against `podman build` and `docker build` (docker.io's
# classic builder, DOCKER_BUILDKIT=0) on one 10-instruction Dockerfile, in the same
# hyperfine run, two ways:
#
#   cold:   every build with --no-cache; before each run the previous result and its
#           intermediate images are removed (hyperfine --prepare), so each run makes
#           the same 10 steps from the same base image
#   cached: one warm-up build, then builds that find every step in the cache
#
#   mini -q --root STORE build --network none [--no-cache] -q -t bench/built CTX
#   podman --root .. --runroot .. --storage-driver vfs [--runtime runc] build --network none [--no-cache] -q -t bench/built CTX
#   DOCKER_BUILDKIT=0 /usr/bin/docker build --network none [--no-cache] -q -t bench/built CTX
#
# The base image is busybox (bench_busybox_layout), imported into mini's store by
# img-pull, then `mini save`d and loaded into podman and docker: the same image ID and
# the same name in all three (bench/base:latest; podman's localhost/bench/base:latest). The context: the Dockerfile (FROM,
# ENV, ARG, WORKDIR, COPY, RUN, LABEL, EXPOSE, USER, CMD) and four files, one of them
# 4 MB of random bytes. mini runs with -q (no kernel trace), as the other benchmarks.
# podman runs with its default OCI runtime if a probe build works here, else with
# `--runtime runc`, else `--isolation chroot` (the results say which).
#
#   bench/build.sh                       # release binaries (built if MINI is not given)
#   MINI=target/debug/mini RUNS=3 bench/build.sh
#
# The whole run is inside one `unshare --net --mount --pid` (the script re-executes
# itself there: loopback up, /run/netns a tmpfs, ip_forward 0), with a private dockerd
# (--bridge=none --iptables=false, its own socket, data root and exec root) and
# podman's storage under the run's temporary directory: nothing on the host changes and
# no packet leaves the machine. The daemon is stopped and the directory removed on exit
# (KEEP=1 keeps the directory); the run holds the integration tests' lock.
# Results: bench/results/build-{cold,cached}.{json,md}, the ratios (means) in
# bench/results/build.txt; RUNS=N (default 10).
# Needs: hyperfine, podman, docker.io (dockerd and /usr/bin/docker), umoci,
# busybox-static, jq, iproute2, util-linux; root.
set -euo pipefail

RUNS=${RUNS:-10}
SELF=$(realpath "$0")
ROOT=$(cd "$(dirname "$SELF")/.." && pwd)

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_in_namespace "$SELF" "$@"
bench_mini build
bench_peers
OUT=$ROOT/bench/results
mkdir -p "$OUT"

# ---- the context ------------------------------------------------------------------------
CTX=$WORK/context
mkdir -p "$CTX/files"
head -c 4194304 /dev/urandom > "$CTX/files/blob.bin"
echo "hello from the build context" > "$CTX/files/hello.txt"
printf '[app]\nmode = bench\nworkers = 2\n' > "$CTX/files/app.ini"
printf '#!/bin/sh\nls -l /app /app/data | wc -l\n' > "$CTX/files/start.sh"
chmod 755 "$CTX/files/start.sh"
cat > "$CTX/Dockerfile" <<'EOF'
FROM bench/base
ENV APP_HOME=/app APP_MODE=bench
ARG VERSION=1.0
WORKDIR /app
COPY files/ /app/
RUN mkdir -p /app/data && for i in $(seq 1 50); do echo $i > /app/data/$i; done
LABEL org.opencontainers.image.title="contlab build bench" org.opencontainers.image.version="${VERSION}"
EXPOSE 8080
USER nobody
CMD ["/app/start.sh"]
EOF

MB="$MINI -q --root $STORE build --network none"
DB="$D build --network none"
# podman: its default OCI runtime if it can run a RUN step here, else runc (crun refuses
# cgroup v1 with a v2 hierarchy beside it, "hybrid mode"), else chroot isolation (which
# allows no --network but the host's: here the namespace's, loopback only).
probe() { $P "$@" --no-cache -q -t bench/probe "$CTX" >"$WORK/podman-probe.log" 2>&1; }
if probe build --network none; then
    ISOLATION="oci, $($P info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null || echo default)"
    PB="$P build --network none"
elif probe --runtime runc build --network none; then
    echo "bench: podman build with its default OCI runtime failed here; using --runtime runc" >&2
    ISOLATION="oci, runc (--runtime runc)"
    P="$P --runtime runc"
    PB="$P build --network none"
elif probe build --isolation chroot; then
    echo "bench: podman build with an OCI runtime failed here; using --isolation chroot" >&2
    ISOLATION=chroot
    PB="$P build --isolation chroot"
else
    echo "bench: podman build fails here:" >&2
    cat "$WORK/podman-probe.log" >&2
    exit 1
fi
$P rmi -f bench/probe >/dev/null 2>&1 || true
$P image prune -f >/dev/null
echo "bench: podman isolation: $ISOLATION" >&2

# One build each, and what it made: the same configuration and files in all three.
check() { # NAME INSPECT [RUN]
    local cfg files="(not run)"
    cfg=$($2 -f '{{.Config.User}} {{json .Config.ExposedPorts}} {{json .Config.Cmd}} {{.Config.WorkingDir}}' bench/built)
    [ -z "${3:-}" ] || files=$($3 --rm --network none --user 0 bench/built sh -c 'ls /app/data | wc -l; wc -c < /app/blob.bin')
    echo "bench: $1: $cfg; files: $(echo $files)" >&2
}
$MB --no-cache -q -t bench/built "$CTX" >/dev/null
check mini "m image inspect" "m run"
$PB --no-cache -q -t bench/built "$CTX" >/dev/null
check podman "$P image inspect" "$([ "$ISOLATION" = chroot ] || echo "$P run")"
$DB --no-cache -q -t bench/built "$CTX" >/dev/null
check docker "$D image inspect" "$D run"

# The stores between the benchmarks: the base image and one build's images each (the
# cold runs' --prepare leaves nothing behind), no container left by mini.
stores() {
    echo "bench: images (-a) $1: mini $(m images -a -q | wc -l), podman $($P images -a -q | wc -l)," \
        "docker $($D images -a -q | wc -l); mini containers: $(m ps -a -q | wc -l)" >&2
}
stores "after one build each"

hf() { # NAME, then hyperfine's arguments
    local n=$1
    shift
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$OUT/build-$n.json" --export-markdown "$OUT/build-$n.md" "$@"
}

# Cold: the previous run's image and its intermediate images removed before each run.
hf cold \
    --prepare "$MINI -q --root $STORE rmi -f bench/built >/dev/null 2>&1 || true" \
    -n "mini build --no-cache" "$MB --no-cache -q -t bench/built $CTX" \
    --prepare "$P rmi -f bench/built >/dev/null 2>&1 || true; $P image prune -f >/dev/null" \
    -n "podman build --no-cache" "$PB --no-cache -q -t bench/built $CTX" \
    --prepare "$D rmi -f bench/built >/dev/null 2>&1 || true" \
    -n "docker build --no-cache" "$DB --no-cache -q -t bench/built $CTX"

stores "after the cold runs"

# Cached: hyperfine's warm-up build fills the cache, every timed build uses it.
hf cached \
    -n "mini build (cached)" "$MB -q -t bench/built $CTX" \
    -n "podman build (cached)" "$PB -q -t bench/built $CTX" \
    -n "docker build (cached)" "$DB -q -t bench/built $CTX"

stores "after the cached runs"

mean() { jq -r --argjson i "$2" '.results[$i].mean' "$OUT/build-$1.json"; }
{
    echo "== mini build vs podman build vs docker build (classic builder), a 10-instruction Dockerfile"
    echo "   mini: $MINI_FROM; podman $(podman --version | awk '{print $3}'), isolation $ISOLATION, vfs;" \
        "docker.io $($D version -f '{{.Server.Version}}') ($($D info -f '{{.Driver}}')); RUNS=$RUNS"
    for n in cold cached; do
        read -r mi po dk < <(echo "$(mean $n 0) $(mean $n 1) $(mean $n 2)")
        awk -v n="$n" -v m="$mi" -v p="$po" -v d="$dk" 'BEGIN {
            printf "%-7s mini %8.1f ms   podman %8.1f ms   docker %8.1f ms   mini/docker %.2f   mini/podman %.2f\n",
                n, m * 1000, p * 1000, d * 1000, m / d, m / p }'
    done
} | tee "$OUT/build.txt"
