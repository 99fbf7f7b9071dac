#!/usr/bin/env bash
# bench/cp.sh — `mini cp` of a 200 MB directory (200 files of 1 MB and 2000 small
# ones) into a running container and back out, against `tar c | tar x` of the same
# directory between two host directories, in the same hyperfine run. mini resolves
# every path with openat2(RESOLVE_IN_ROOT) and copies entry by entry relative to
# directory descriptors; tar is the plain copy a student would otherwise write.
#
#   bench/cp.sh                          # release binaries (built if missing)
#   MINI=target/debug/mini RUNS=5 bench/cp.sh
#
# Results: bench/results/cp.{json,md} and the ratios in bench/results/cp.txt.
# Everything lives under one temporary directory, removed on exit; the container runs
# with --network none; the run holds the integration tests' lock.
# Needs: hyperfine, busybox-static, tar, root.
set -euo pipefail

RUNS=${RUNS:-10}
WARMUP=${WARMUP:-1}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_mini cp

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp" "$WORK/src/big" "$WORK/src/small"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in $("$WORK/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf - . | m import - bench/busybox >/dev/null
for i in $(seq 200); do head -c 1048576 /dev/urandom > "$WORK/src/big/f$i"; done
for i in $(seq 2000); do echo "small $i" > "$WORK/src/small/f$i"; done
echo "source: $(du -sh "$WORK/src" | cut -f1), $(find "$WORK/src" | wc -l) entries" >&2
m run -d --network none --name box bench/busybox sleep 100000 >/dev/null

mkdir -p "$HERE/bench/results"
hyperfine --runs "$RUNS" --warmup "$WARMUP" \
    --export-json "$HERE/bench/results/cp.json" --export-markdown "$HERE/bench/results/cp.md" \
    -n "tar c | tar x (host to host)" --prepare "rm -rf $WORK/out && mkdir $WORK/out" \
    "tar -C $WORK/src -cf - . | tar -C $WORK/out -xf -" \
    -n "mini cp host → container" --prepare "$MINI -q --root $STORE exec box rm -rf /in" \
    "$MINI -q --root $STORE cp $WORK/src box:/in" \
    -n "mini cp container → host" --prepare "rm -rf $WORK/back" \
    "$MINI -q --root $STORE cp box:/in $WORK/back"

python3 - "$HERE/bench/results/cp.json" <<'EOF' | tee "$HERE/bench/results/cp.txt"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
tar, into, out = (x["median"] for x in r)
print(f"200 MB directory: tar|tar {tar*1000:.0f} ms; mini cp in {into*1000:.0f} ms ({into/tar:.2f}x), out {out*1000:.0f} ms ({out/tar:.2f}x)")
EOF
