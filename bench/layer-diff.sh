#!/usr/bin/env bash
# layer-diff benchmarks (hyperfine), results under bench/results/:
#  1. `diff` from an overlay upper with 100 changes over lowers of 10k, 100k, 1M
#     files: its time must not grow with the lower (it walks the upper only).
#     Docker's "naive" diff (`diff --tree`, both trees walked) is shown beside it.
#  2. `pack` and `apply` of a 200 MB tree, gzip level 6, against GNU tar -czf/-xzf
#     (same compression) and `umoci unpack` of the same layer.
# Env: SIZES="10000 100000 1000000" (lower sizes), MB=200, RUNS=5.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 100000 1000000"}
MB=${MB:-200}
RUNS=${RUNS:-5}
for p in hyperfine tar gzip umoci jq; do
  command -v "$p" >/dev/null || { echo "bench needs $p (apt-get install -y $p)" >&2; exit 1; }
done
cargo build --release --bin layer-diff >&2
BIN=${CARGO_TARGET_DIR:-target}/release/layer-diff
OUT=bench/results; mkdir -p "$OUT"
W=$(mktemp -d /var/tmp/contlab-bench-XXXXXX); trap 'rm -rf "$W"' EXIT

echo "## diff: 100 changes over lowers of $SIZES files" >&2
make_lower() { # N files in directories of 1000
  local dir=$1 n=$2
  python3 - "$dir" "$n" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%07d" % i), "w") as f:
        f.write("x")
PY
}
make_upper() { # 40 modified, 30 added, 30 deleted (whiteouts): 100 changes
  local up=$1 low=$2
  for i in $(seq 0 39); do mkdir -p "$up/d0000"; printf y >"$up/d0000/f$(printf %07d "$i")"; done
  mkdir -p "$up/new"; for i in $(seq 0 29); do printf n >"$up/new/a$i"; done
  mkdir -p "$up/d0001"; for i in $(seq 1000 1029); do mknod "$up/d0001/f$(printf %07d "$i")" c 0 0; done
}
cmds=(); names=()
for n in $SIZES; do
  t0=$(date +%s)
  make_lower "$W/low$n" "$n"; make_upper "$W/up$n" "$W/low$n"
  echo "built a lower of $n files in $(( $(date +%s) - t0 )) s" >&2
  cmds+=("$BIN -q diff $W/up$n --lower $W/low$n"); names+=("diff-upper-$n")
done
first=$(echo "$SIZES" | awk '{print $1}')
# The naive diff needs the merged tree: lower + changes, as a copy.
cp -a "$W/low$first" "$W/merged$first"; cp -a "$W/up$first/new" "$W/merged$first/"
for i in $(seq 0 39); do printf y >"$W/merged$first/d0000/f$(printf %07d "$i")"; done
for i in $(seq 1000 1029); do rm "$W/merged$first/d0001/f$(printf %07d "$i")"; done
cmds+=("$BIN -q diff --tree $W/low$first $W/merged$first"); names+=("diff-tree-$first")
args=(); for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$OUT/layer-diff-diff.json" "${args[@]}" >&2
for n in $SIZES; do "$BIN" -q diff "$W/up$n" --lower "$W/low$n" | wc -l | xargs echo "changes found over $n:" >&2; done
rm -rf "$W"/low* "$W"/up* "$W"/merged*

echo "## pack/apply of a ${MB} MB tree" >&2
T="$W/tree"; mkdir -p "$T"
python3 - "$T" "$MB" <<'PY'
import os, sys, random, base64
root, mb = sys.argv[1], int(sys.argv[2])
random.seed(7)
total, i = 0, 0
while total < mb * 1024 * 1024:
    d = os.path.join(root, "dir%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    size = random.choice([4096, 65536, 262144, 1048576])
    data = base64.b64encode(os.urandom(size * 3 // 4))  # compressible like text-ish binaries
    with open(os.path.join(d, "file%05d" % i), "wb") as f:
        f.write(data)
    total += len(data); i += 1
os.symlink("dir000/file00000", os.path.join(root, "link"))
PY
du -sh "$T" >&2
"$BIN" -q pack "$T" -o "$W/ours.tar.gz" >"$W/packed.txt"
tar -C "$T" -czf "$W/gnu.tar.gz" .
ls -l "$W/ours.tar.gz" "$W/gnu.tar.gz" >&2
# An OCI layout holding our layer, for umoci.
L="$W/oci"; mkdir -p "$L/blobs/sha256"; echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
dig=$(sha256sum "$W/ours.tar.gz" | cut -c1-64); cp "$W/ours.tar.gz" "$L/blobs/sha256/$dig"
diffid=$(awk '/^diff_id/{print $2}' "$W/packed.txt")
cfg=$(jq -nc --arg d "$diffid" '{architecture:"amd64",os:"linux",config:{},rootfs:{type:"layers",diff_ids:[$d]}}')
cd_=$(printf %s "$cfg" | sha256sum | cut -c1-64); printf %s "$cfg" >"$L/blobs/sha256/$cd_"
man=$(jq -nc --arg c "sha256:$cd_" --argjson cs "${#cfg}" --arg l "sha256:$dig" --argjson ls "$(stat -c %s "$W/ours.tar.gz")" \
  '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$c,size:$cs},layers:[{mediaType:"application/vnd.oci.image.layer.v1.tar+gzip",digest:$l,size:$ls}]}')
md=$(printf %s "$man" | sha256sum | cut -c1-64); printf %s "$man" >"$L/blobs/sha256/$md"
jq -nc --arg m "sha256:$md" --argjson s "${#man}" '{schemaVersion:2,manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$m,size:$s,annotations:{"org.opencontainers.image.ref.name":"latest"}}]}' >"$L/index.json"

hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$OUT/layer-diff-pack.json" \
  -n layer-diff-pack "$BIN -q pack $T -o $W/p.tar.gz" \
  -n gnu-tar-czf "tar -C $T -czf $W/g.tar.gz ." >&2
hyperfine --warmup 1 --runs "$RUNS" --export-json "$OUT/layer-diff-apply.json" \
  --prepare "rm -rf $W/x" \
  -n layer-diff-apply "$BIN -q apply $W/ours.tar.gz $W/x" \
  -n gnu-tar-xzf "mkdir -p $W/x && tar -C $W/x -xzf $W/ours.tar.gz" \
  -n umoci-unpack "umoci unpack --image $L:latest $W/x" >&2

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
def med(f):
    return {r["command"]: sorted(r["times"])[len(r["times"])//2] for r in json.load(open(os.path.join(out, f)))["results"]}
d = med("layer-diff-diff.json")
print("diff (median s):", ", ".join(f"{k} {v:.4f}" for k, v in d.items()))
ups = [v for k, v in d.items() if k.startswith("diff-upper")]
print(f"diff-upper largest/smallest lower: {max(ups)/min(ups):.2f}x (flat = proportional to the changes)")
p = med("layer-diff-pack.json")
print(f"pack: layer-diff {p['layer-diff-pack']:.3f}s, GNU tar -czf {p['gnu-tar-czf']:.3f}s, ratio {p['layer-diff-pack']/p['gnu-tar-czf']:.2f}x")
a = med("layer-diff-apply.json")
print(f"apply: layer-diff {a['layer-diff-apply']:.3f}s, GNU tar -xzf {a['gnu-tar-xzf']:.3f}s ({a['layer-diff-apply']/a['gnu-tar-xzf']:.2f}x), umoci unpack {a['umoci-unpack']:.3f}s ({a['layer-diff-apply']/a['umoci-unpack']:.2f}x)")
PY
