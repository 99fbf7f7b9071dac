#!/bin/sh
# img-pull benchmark: pull + unpack of a ~200 MB image in 5 layers from a local
# docker-registry, against skopeo copy + umoci unpack, and podman pull when it runs
# here. Then the peak RSS of img-pull (pull, unpack) for that image and a 1 GB one.
#
# Needs: docker-registry skopeo umoci hyperfine time (podman optional), root.
# Results: bench/results/img-pull.{json,md}, medians and ratios on stdout.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
results="$here/results"
mkdir -p "$results"
for t in docker-registry skopeo umoci hyperfine; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing: apt-get install -y $t" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time is missing: apt-get install -y time" >&2; exit 1; }
(cd "$top" && cargo build --release --bin img-pull >&2)
img="$top/target/release/img-pull"

work=$(mktemp -d /tmp/contlab-bench-img.XXXXXX)
reg_pid=
cleanup() { [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/reg.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/regdata
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/reg.yml" >/dev/null 2>&1 &
reg_pid=$!
i=0; until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done

# make_image NAME LAYERS MB_PER_LAYER: half random (incompressible), half text.
make_image() {
    name=$1 n=$2 mb=$3
    lay="$work/layout-$name"
    umoci init --layout "$lay" && umoci new --image "$lay:t"
    umoci unpack --image "$lay:t" "$work/b-$name" >/dev/null
    k=1
    while [ $k -le "$n" ]; do
        mkdir -p "$work/b-$name/rootfs/layer$k"
        head -c $((mb * 1024 * 1024 / 2)) /dev/urandom > "$work/b-$name/rootfs/layer$k/random"
        yes "contlab layer $k: some compressible text for gzip" | head -c $((mb * 1024 * 1024 / 2)) > "$work/b-$name/rootfs/layer$k/text"
        # --refresh-bundle: the next repack diffs against this one, one layer each
        # (without it every repack replaces the last layer: a 1-layer image).
        umoci repack --refresh-bundle --image "$lay:t" "$work/b-$name" >/dev/null
        k=$((k+1))
    done
    skopeo copy --dest-tls-verify=false "oci:$lay:t" "docker://127.0.0.1:$port/bench/$name:t" >/dev/null
    rm -rf "$work/b-$name" "$lay"
}
echo "building the test images..." >&2
make_image small 5 40
ref="127.0.0.1:$port/bench/small:t"
layers=$(skopeo inspect --tls-verify=false "docker://$ref" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["Layers"]))')
[ "$layers" = 5 ] || { echo "bench: the test image has $layers layer(s), not 5" >&2; exit 1; }

s="$work/store" d="$work/rootfs" o="$work/oci" b="$work/bundle" p="$work/podman"
runs=${RUNS:-5}
set -- \
    -n img-pull "$img -q --root $s pull $ref >/dev/null && $img -q --root $s unpack $ref $d" \
    -n skopeo+umoci "skopeo copy -q --src-tls-verify=false docker://$ref oci:$o:t && umoci unpack --image $o:t $b >/dev/null"
podman_ok=no
if command -v podman >/dev/null && sh -c "ulimit -n 1024; ulimit -u 1024; podman --root $p/r --runroot $p/rr --storage-driver vfs pull -q --tls-verify=false $ref" >/dev/null 2>&1; then
    podman_ok=yes
    set -- "$@" -n "podman pull" "sh -c 'ulimit -n 1024; ulimit -u 1024; podman --root $p/r --runroot $p/rr --storage-driver overlay pull -q --tls-verify=false $ref >/dev/null'"
fi
hyperfine --warmup 1 --runs "$runs" \
    --prepare "rm -rf $s $d $o $b; if [ -d $p ]; then sh -c 'ulimit -n 1024; ulimit -u 1024; podman --root $p/r --runroot $p/rr --storage-driver overlay system reset -f' >/dev/null 2>&1; rm -rf $p; fi" \
    --export-json "$results/img-pull.json" --export-markdown "$results/img-pull.md" "$@" >&2

python3 - "$results/img-pull.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["img-pull"]["median"]
for name, x in r.items():
    print(f"{name:14s} median {x['median']:.3f} s   img-pull/{name} = {base / x['median']:.2f}x")
EOF
[ "$podman_ok" = yes ] || echo "podman pull: not measured (podman could not pull here; see its error by running it by hand)"

rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}'; }
rm -rf "$s" "$d"
echo "peak RSS (~200 MB image): pull $(rss "$img" -q --root "$s" pull "$ref") kB, unpack $(rss "$img" -q --root "$s" unpack "$ref" "$d") kB"
rm -rf "$s" "$d"
if [ "${BIG:-1}" = 1 ]; then
    echo "building a 1 GB image..." >&2
    make_image big 5 200
    big="127.0.0.1:$port/bench/big:t"
    echo "peak RSS (~1 GB image):   pull $(rss "$img" -q --root "$s" pull "$big") kB, unpack $(rss "$img" -q --root "$s" unpack "$big" "$d") kB"
fi
