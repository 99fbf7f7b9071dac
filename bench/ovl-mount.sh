#!/usr/bin/env bash
# ovl-mount benchmarks (hyperfine, as root), results under bench/results/:
#  mount + umount of an overlay with 2, 50 and 200 lower layers through the new mount
#  API, against util-linux `mount -t overlay` (mount(2), one-page option string: it
#  cannot take the 200-layer list, so the peer runs at 2 and 50 layers only).
# Env: RUNS=20.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
[ "$(id -u)" = 0 ] || { echo "bench/ovl-mount.sh mounts: run it as root" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "bench needs hyperfine (apt-get install -y hyperfine)" >&2; exit 1; }
cargo build --release --bin ovl-mount >&2
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/release/ovl-mount
OUT=bench/results; mkdir -p "$OUT"
W=$(mktemp -d /var/tmp/contlab-bench-XXXXXX)
trap 'umount -l "$W"/m* 2>/dev/null || true; rm -rf "$W"' EXIT
args=()
for n in 2 50 200; do
  lowers=()
  for i in $(seq 1 "$n"); do
    d="$W/layers$n/layer-$(printf %03d "$i")"; mkdir -p "$d"; echo "$i" >"$d/f$i"; lowers+=("$d")
  done
  list=$(IFS=:; echo "${lowers[*]}")
  mkdir -p "$W/u$n" "$W/w$n" "$W/m$n"
  args+=(-n "ovl-mount-$n" "$BIN -q mount --lower $list --upper $W/u$n --work $W/w$n $W/m$n && umount $W/m$n")
  if [ "${#list}" -lt 3900 ]; then
    args+=(-n "mount-t-overlay-$n" "mount -t overlay overlay -o lowerdir=$list,upperdir=$W/u$n,workdir=$W/w$n $W/m$n && umount $W/m$n")
  fi
done
hyperfine --warmup 3 --runs "$RUNS" --export-json "$OUT/ovl-mount.json" "${args[@]}" >&2
python3 - "$OUT/ovl-mount.json" <<'PY'
import json, sys
r = {x["command"]: sorted(x["times"])[len(x["times"])//2] for x in json.load(open(sys.argv[1]))["results"]}
for k, v in r.items():
    print(f"{k}: {v*1000:.2f} ms")
for n in (2, 50):
    a, b = r.get(f"ovl-mount-{n}"), r.get(f"mount-t-overlay-{n}")
    if a and b:
        print(f"{n} layers: ovl-mount / mount -t overlay = {a/b:.2f}x")
print("200 layers: mount -t overlay cannot (option string > 4096 bytes); ovl-mount", f"{r['ovl-mount-200']*1000:.2f} ms")
PY
