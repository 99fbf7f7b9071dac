#!/usr/bin/env bash
# bench/lvm-snap.sh — lvm-snap against dmsetup and lvm2, inside the VM tier.
#
#   tests/vm/run -- bench/lvm-snap.sh         (from the repository root, after cargo build)
#
# 1. snapshot creation: `lvm-snap snap create` vs the same dm steps by dmsetup vs
#    `lvcreate -s` (each run is undone by hyperfine's --prepare);
# 2. thin snapshot of a 1 GiB vs a 100 GiB thin volume (must be flat: O(1));
# 3. read/write throughput of a snapshot vs its origin (the COW cost).
# Needs: hyperfine, dmsetup, lvm2 (Debian packages). Results: bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${CONTLAB_IN_VM:-}" ] || { echo "run me inside the VM: tests/vm/run -- bench/lvm-snap.sh" >&2; exit 2; }
for t in hyperfine dmsetup lvcreate; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y hyperfine dmsetup lvm2" >&2; exit 1; }
done
B=$PWD/target/debug/lvm-snap
[ -x "$B" ] || { echo "build first: cargo build" >&2; exit 1; }
out=${BENCH_OUT:-bench/results}
mkdir -p "$out" 2>/dev/null || out=/tmp/results
mkdir -p "$out"
export DM_DISABLE_UDEV=1
LVMCONF='activation{udev_sync=0 udev_rules=0 monitoring=0} global{use_lvmetad=0} devices{obtain_device_list_from_udev=0}'
W=(--warmup 2 --runs ${RUNS:-10} --style basic)

L=(); for i in 0 1 2 3; do L+=("$($B -q loop attach --create --size 256M /tmp/b$i.img)"); done
cleanup() {
    dmsetup remove_all --force >/dev/null 2>&1 || true
    for d in "${L[@]}"; do $B -q loop detach "$d" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# --- 1. snapshot creation --------------------------------------------------
$B -q vg create vgb "${L[0]}" >/dev/null
$B -q lv create vgb/data --size 64M >/dev/null
# dmsetup doing lvm-snap's steps on its own linear device over loop1
dmsetup create dso --table "0 131072 linear ${L[1]} 2048"
dm_snap='dmsetup create dso-real --table "0 131072 linear '${L[1]}' 2048" &&
  dmsetup create dss-cow --table "0 16384 linear '${L[1]}' 200000" &&
  dd if=/dev/zero of=/dev/mapper/dss-cow bs=4096 count=1 conv=notrunc status=none &&
  dmsetup suspend dso &&
  dmsetup create dss --table "0 131072 snapshot /dev/mapper/dso-real /dev/mapper/dss-cow P 16" &&
  dmsetup load dso --table "0 131072 snapshot-origin /dev/mapper/dso-real" && dmsetup resume dso'
dm_undo='dmsetup remove dss 2>/dev/null; dmsetup remove dss-cow 2>/dev/null;
  dmsetup suspend dso 2>/dev/null; dmsetup load dso --table "0 131072 linear '${L[1]}' 2048" 2>/dev/null;
  dmsetup resume dso 2>/dev/null; dmsetup remove dso-real 2>/dev/null; true'
pvcreate -q --config "$LVMCONF" "${L[2]}" >/dev/null
vgcreate -q --config "$LVMCONF" vgp "${L[2]}" >/dev/null
lvcreate -q --config "$LVMCONF" -L 64M -n data vgp -y >/dev/null
hyperfine "${W[@]}" --export-json "$out/lvm-snap-create.json" \
    --prepare "$B -q snap rm vgb/s >/dev/null 2>&1; true" -n "lvm-snap snap create" "$B -q snap create vgb/data s --size 8M" \
    --prepare "$dm_undo" -n "dmsetup (same steps)" "$dm_snap" \
    --prepare "lvremove -q -f --config '$LVMCONF' vgp/s >/dev/null 2>&1; true" -n "lvcreate -s" "lvcreate -q --config '$LVMCONF' -s -L 8M -n s vgp/data"

# --- 3. throughput: origin vs snapshot (snapshot vgb/s exists now) ----------
# Reads of 32 MiB, direct I/O; writes of 32 MiB to the origin (each first write to
# a chunk copies the old chunk to the COW store first) vs to a plain LV.
$B -q lv create vgb/plain --size 64M >/dev/null
$B -q snap rm vgb/s >/dev/null; $B -q snap create vgb/data s --size 64M >/dev/null
hyperfine "${W[@]}" --export-json "$out/lvm-snap-io.json" \
    -n "read origin" "dd if=/dev/mapper/vgb-data of=/dev/null bs=1M count=32 iflag=direct status=none" \
    -n "read snapshot" "dd if=/dev/mapper/vgb-s of=/dev/null bs=1M count=32 iflag=direct status=none" \
    -n "write plain LV" "dd if=/dev/zero of=/dev/mapper/vgb-plain bs=1M count=32 oflag=direct status=none" \
    --prepare "$B -q snap rm vgb/s >/dev/null 2>&1; $B -q snap create vgb/data s --size 64M >/dev/null" \
    -n "write origin with a snapshot (COW)" "dd if=/dev/zero of=/dev/mapper/vgb-data bs=1M count=32 oflag=direct status=none"

# --- 2. thin snapshots: 1 GiB vs 100 GiB -------------------------------------
$B -q thin pool create tp --data "${L[3]}" --meta vgb/plain >/dev/null 2>&1 || {
    $B -q lv rm vgb/plain; $B -q lv create vgb/tmeta --size 16M >/dev/null
    $B -q thin pool create tp --data "${L[3]}" --meta vgb/tmeta >/dev/null; }
$B -q thin create tp small --size 1G >/dev/null
$B -q thin create tp huge --size 100G >/dev/null
dd if=/dev/urandom of=/dev/mapper/tp-small bs=1M count=16 status=none
dd if=/dev/urandom of=/dev/mapper/tp-huge bs=1M count=16 status=none
hyperfine "${W[@]}" --export-json "$out/lvm-snap-thin.json" \
    --prepare "$B -q thin rm tp s1 >/dev/null 2>&1; true" -n "thin snap of 1 GiB" "$B -q thin snap tp small s1" \
    --prepare "$B -q thin rm tp s2 >/dev/null 2>&1; true" -n "thin snap of 100 GiB" "$B -q thin snap tp huge s2"

echo
echo "== medians (s) and ratios =="
python3 - "$out" <<'PY'
import json, sys, statistics
d = sys.argv[1]
def med(f):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(f"{d}/{f}"))["results"]}
c = med("lvm-snap-create.json"); io = med("lvm-snap-io.json"); t = med("lvm-snap-thin.json")
for k, v in {**c, **io, **t}.items(): print(f"{k:40s} {v*1000:9.1f} ms")
base = c["lvm-snap snap create"]
print(f"snap create: lvm-snap / dmsetup = {base / c['dmsetup (same steps)']:.2f}, lvm-snap / lvcreate -s = {base / c['lvcreate -s']:.2f}")
print(f"thin snap 100 GiB / 1 GiB = {t['thin snap of 100 GiB'] / t['thin snap of 1 GiB']:.2f} (flat = 1)")
print(f"read snapshot / origin = {io['read snapshot'] / io['read origin']:.2f}; write origin with COW / plain = {io['write origin with a snapshot (COW)'] / io['write plain LV']:.2f}")
PY
