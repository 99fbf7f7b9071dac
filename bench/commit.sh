#!/usr/bin/env bash
# bench/commit.sh — `mini commit` packs the container's upper directory only, so its
# time follows the changes, not the image: a container that changed 100 files is
# committed over a small image (busybox, ~400 files) and over a big one (the same plus
# 100 000 files), in the same hyperfine run. Goal: big/small close to 1.
#
#   bench/commit.sh                      # release binaries (built if missing)
#   MINI=target/debug/mini RUNS=5 bench/commit.sh
#
# Results: bench/results/commit.{json,md} and the ratio in bench/results/commit.txt.
# Everything (the store, the images, the containers) lives under one temporary
# directory and is removed on exit; containers run with --network none; the run holds
# the integration tests' lock (both make cgroups under /sys/fs/cgroup/*/contlab).
# Needs: hyperfine, busybox-static, root.
set -euo pipefail

RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
FILES=${FILES:-100000}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_mini commit

# Two root filesystems: busybox, and busybox plus $FILES small files in 100 directories.
rootfs() {
    mkdir -p "$1/bin" "$1/tmp" "$1/etc" "$1/data"
    cp "$(command -v busybox)" "$1/bin/busybox"
    for a in $("$1/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
}
rootfs "$WORK/small"
rootfs "$WORK/big"
python3 - "$WORK/big/data" "$FILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "w") as f:
        f.write(f"file {i}\n")
EOF
for img in small big; do
    tar -C "$WORK/$img" -cf - . | m import - "bench/$img" >/dev/null
    m run --network none --name "c-$img" "bench/$img" \
        sh -c 'mkdir -p /data/changed && for i in $(seq 100); do echo "$i" > /data/changed/f$i; done'
done
echo "images: small $(find "$WORK/small" | wc -l) entries, big $(find "$WORK/big" | wc -l) entries; 100 changed files each" >&2

mkdir -p "$HERE/bench/results"
hyperfine --runs "$RUNS" --warmup "$WARMUP" -N \
    --export-json "$HERE/bench/results/commit.json" --export-markdown "$HERE/bench/results/commit.md" \
    -n "commit over a small image" "$MINI -q --root $STORE commit c-small bench/out-small" \
    -n "commit over a $FILES-file image" "$MINI -q --root $STORE commit c-big bench/out-big"

python3 - "$HERE/bench/results/commit.json" <<'EOF' | tee "$HERE/bench/results/commit.txt"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
small, big = (x["median"] for x in r)
print(f"commit of 100 changed files: small image {small*1000:.1f} ms, big image {big*1000:.1f} ms, big/small = {big/small:.2f}")
EOF
