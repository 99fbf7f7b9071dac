#!/usr/bin/env bash
# bench/mini-images.sh — mini's save, load and images against podman's, on one image.
#
#   bench/mini-images.sh        as root (podman's storage and mini's store are made here)
#
# The image: busybox's static binary and 64 MB of random bytes in 64 files, one layer,
# made by `podman import` and carried to mini by `podman save --format docker-archive`
# (so both hold the same layer). hyperfine then compares, each on a store of its own:
#   save:   mini -q save -o OUT IMG           podman save --format docker-archive -o OUT IMG
#   load:   mini -q --root NEW load -i TAR    podman --root NEW load -i TAR   (a fresh store per run)
#   images: mini -q images                    podman images
# Needs: hyperfine, podman, busybox-static (apt-get installs what is missing), root.
# Results: bench/results/mini-images-{save,load,images}.json and .md (override with BENCH_OUT); RUNS=N.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${MINI:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mini}
[ "$(id -u)" = 0 ] || { echo "run me as root: podman's storage needs it" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin mini >&2
for p in hyperfine podman; do
    command -v "$p" >/dev/null || apt-get install -y "$p" >&2 || { echo "missing $p: apt-get install -y $p" >&2; exit 1; }
done
[ -x /bin/busybox ] || apt-get install -y busybox-static >&2
OUT=${BENCH_OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
RUNS=${RUNS:-10}
W=$(mktemp -d /tmp/contlab-bench-images.XXXXXX)
trap 'rm -rf "$W"' EXIT
# podman refuses this machine's high rlimits.
ulimit -n 1024
P="podman --root $W/podman --runroot $W/podman-run --storage-driver vfs"

mkdir -p "$W/rootfs/bin" "$W/rootfs/data"
cp /bin/busybox "$W/rootfs/bin/" && ln -s busybox "$W/rootfs/bin/sh"
for i in $(seq 1 64); do head -c 1048576 /dev/urandom > "$W/rootfs/data/f$i"; done
tar -C "$W/rootfs" -cf "$W/rootfs.tar" .
$P import -q -c 'CMD ["/bin/sh"]' "$W/rootfs.tar" bench/images:1 >/dev/null
$P save -q --format docker-archive -o "$W/image.tar" bench/images:1
"$BIN" -q --root "$W/mini" load -i "$W/image.tar" >/dev/null

hf() { # NAME, then hyperfine's arguments
    local n=$1; shift
    hyperfine --runs "$RUNS" --warmup 1 --export-json "$OUT/mini-images-$n.json" --export-markdown "$OUT/mini-images-$n.md" "$@"
}
hf save -n "mini save" "$BIN -q --root $W/mini save -o $W/mini-out.tar localhost/bench/images:1" \
    -n "podman save" "$P save -q --format docker-archive -o $W/podman-out.tar bench/images:1; rm -f $W/podman-out.tar"
hf load --prepare "rm -rf $W/new $W/new-run" \
    -n "mini load" "$BIN -q --root $W/new load -i $W/image.tar" \
    -n "podman load" "podman --root $W/new --runroot $W/new-run --storage-driver vfs load -q -i $W/image.tar"
hf images -n "mini images" "$BIN -q --root $W/mini images" -n "podman images" "$P images"
cat "$OUT"/mini-images-*.md
