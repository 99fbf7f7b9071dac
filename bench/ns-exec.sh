#!/usr/bin/env bash
# bench/ns-exec.sh — how long does it take to start a command in five new
# namespaces? ns-exec against util-linux unshare(1), in the same hyperfine run.
#
#   bench/ns-exec.sh            # builds release binaries, runs, prints medians + ratio
#
# Goal (issue: the spine): ns-exec ≤ 1.2× unshare. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install -y hyperfine" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root: creating namespaces needs CAP_SYS_ADMIN" >&2; exit 1; }
cargo build --release -q --bin ns-exec
out=bench/results; mkdir -p "$out"
ns=target/release/ns-exec
hyperfine -N --warmup 20 --runs 300 \
  --export-json "$out/ns-exec.json" --export-markdown "$out/ns-exec.md" \
  -n unshare "unshare -pfmiun --fork true" \
  -n ns-exec "$ns -q --pid --mount --uts --ipc --net -- true" \
  -n "ns-exec (trace to file)" "$ns --trace-file /dev/null --pid --mount --uts --ipc --net -- true"
python3 - "$out/ns-exec.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["unshare"]["median"]
for name, x in r.items():
    print(f"{name:28s} median {x['median']*1000:7.3f} ms   ratio {x['median']/base:5.2f}x")
PY
