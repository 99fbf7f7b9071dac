#!/usr/bin/env bash
# bench/cg-limit.sh — `cg-limit run` against a shell doing the same cgroupfs writes.
#
#   bench/cg-limit.sh                      as root, on this machine (cgroup v1/hybrid)
#   tests/vm/run -- bench/cg-limit.sh      on pure cgroup v2 (build first: cargo build --release)
#
# One hyperfine run compares:
#   cg-limit -q run --memory 64M -- true
#   sh -c '...'   the same requests by hand: mkdir the group, echo the limit(s), join
#                 it in a subshell (echo 0 > cgroup.procs), exec true, rmdir.
# "The same" means the same files cg-limit writes on this setup:
#   v2: contlab/G, memory.max, memory.swap.max, cgroup.procs (controllers are handed
#       down once, before timing, as cg-limit's first run leaves them);
#   v1: contlab/G in each hierarchy cg-limit uses (memory, cpu, cpuacct, pids, blkio),
#       memory.limit_in_bytes (+ memory.memsw.limit_in_bytes), cgroup.procs of each.
# Needs: hyperfine (installed with apt-get if missing), python3, root.
# Results: bench/results/cg-limit.json and .md (override with BENCH_OUT); RUNS=N.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CG_LIMIT:-${CARGO_TARGET_DIR:-$ROOT/target}/release/cg-limit}
[ "$(id -u)" = 0 ] || { echo "run me as root: cgroupfs writes need it" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
    [ -z "${CONTLAB_IN_VM:-}" ] || { echo "build first on the host: cargo build --release --bin cg-limit" >&2; exit 1; }
    cargo build --release --manifest-path "$ROOT/Cargo.toml" --bin cg-limit >&2
fi
if ! command -v hyperfine >/dev/null; then
    apt-get install -y hyperfine >&2 || { echo "missing hyperfine: apt-get install -y hyperfine" >&2; exit 1; }
fi
command -v python3 >/dev/null || { echo "missing python3: apt-get install -y python3" >&2; exit 1; }
CG=${CONTLAB_CGROUP_ROOT:-/sys/fs/cgroup}
OUT=${BENCH_OUT:-$ROOT/bench/results}
mkdir -p "$OUT" 2>/dev/null || OUT=/tmp/results
mkdir -p "$OUT"

# The first run of cg-limit makes contlab/ (and hands controllers down on v2): do it
# once now so both contenders start from the same tree.
"$BIN" -q create bench-prep --memory 64M >/dev/null
"$BIN" -q rm bench-prep

# Where a v1 controller is mounted, from /proc/self/mountinfo (as cg-limit finds it).
mnt() {
    awk -v c="$1" '{
        split($0, a, " - "); split(a[2], r, " ");
        if (r[1] != "cgroup") next;
        n = split(r[3], o, ",");
        for (i = 1; i <= n; i++) if (o[i] == c) { split(a[1], l, " "); print l[5]; exit }
    }' /proc/self/mountinfo
}

if [ "$(stat -f -c %T "$CG")" = cgroup2fs ]; then
    setup="cgroup v2"
    g="$CG/contlab/sh-\$\$"
    SH="mkdir $g && echo 67108864 > $g/memory.max && echo 0 > $g/memory.swap.max && (echo 0 > $g/cgroup.procs && exec true); rmdir $g"
else
    setup="cgroup v1/hybrid"
    dirs=()
    for c in memory cpu cpuacct pids blkio; do
        m=$(mnt "$c")
        [ -n "$m" ] && dirs+=("$m/contlab/sh-\$\$")
    done
    [ ${#dirs[@]} -gt 0 ] || { echo "no cgroup v1 hierarchy found in /proc/self/mountinfo" >&2; exit 1; }
    mem=${dirs[0]}
    SH="mkdir ${dirs[*]} && echo 67108864 > $mem/memory.limit_in_bytes"
    [ -e "$(mnt memory)/memory.memsw.limit_in_bytes" ] && SH+=" && echo 67108864 > $mem/memory.memsw.limit_in_bytes"
    join=""
    for d in "${dirs[@]}"; do join+="echo 0 > $d/cgroup.procs && "; done
    SH+=" && (${join}exec true); rmdir ${dirs[*]}"
fi
echo "$setup; the shell's steps:" >&2
echo "  sh -c '$SH'" >&2

hyperfine -N --warmup 10 --runs "${RUNS:-200}" --style basic \
    --export-json "$OUT/cg-limit.json" --export-markdown "$OUT/cg-limit.md" \
    -n "cg-limit -q run --memory 64M -- true" "$BIN -q run --memory 64M -- true" \
    -n "sh (the same writes)" "sh -c '$SH'"

# Nothing may be left behind by either contender.
left=$("$BIN" -q ls | grep -E '^(run|sh)-' || true)
[ -z "$left" ] || { echo "groups left behind: $left" >&2; exit 1; }

echo
echo "== medians ($setup) =="
python3 - "$OUT/cg-limit.json" <<'PY'
import json, statistics, sys
res = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: statistics.median(r["times"]) for r in res}
for name, t in med.items():
    print(f"{name:40s} {t * 1000:8.2f} ms")
a, b = list(med.values())
print(f"ratio cg-limit / sh = {a / b:.2f}")
PY
