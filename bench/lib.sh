# bench/lib.sh — what the mini benchmarks share; sourced, not run.
#
#   bench_mini NAME     MINI (release, built unless given, with img-pull beside it), WORK (a temporary
#                       directory), STORE=$WORK/store, m() = mini -q --root STORE,
#                       a cleanup on exit that removes the containers and WORK
#                       (KEEP=1 keeps them), and the integration tests' lock held
#                       (fd 9) for the rest of the run.

bench_mini() {
    HERE=$(cd "$(dirname "$0")/.." && pwd)
    MINI=${MINI:-}
    if [ -z "$MINI" ]; then
        (cd "$HERE" && cargo build --release --bin mini --bin img-pull >&2)
        MINI=${CARGO_TARGET_DIR:-$HERE/target}/release/mini
    fi
    MINI=$(readlink -f "$MINI")
    WORK=$(mktemp -d "/tmp/contlab-bench-$1.XXXXXX")
    STORE=$WORK/store
    [ -n "${KEEP:-}" ] || trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
    exec 9>/tmp/contlab-tests.lock
    flock 9
}

m() { "$MINI" -q --root "$STORE" "$@"; }

bench_cleanup() {
    local ids
    ids=$(m ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || m rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# bench_busybox_layout WORK: a busybox root filesystem in WORK/rootfs (sets r) and an
# OCI layout of it in WORK/layout (sets L), image `x`, packed by umoci.
bench_busybox_layout() {
    local work=$1 busybox a
    busybox=$(command -v busybox)
    r=$work/rootfs
    mkdir -p "$r"/{bin,proc,sys,dev,tmp,etc,root}
    cp "$busybox" "$r/bin/busybox"
    for a in $("$busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
    echo rootfs > "$r/etc/hostname"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' > "$r/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
    L=$work/layout
    umoci init --layout "$L"
    umoci new --image "$L:x"
    umoci unpack --image "$L:x" "$work/b" >/dev/null
    cp -a "$r/." "$work/b/rootfs/"
    umoci repack --image "$L:x" "$work/b" >/dev/null
    umoci config --image "$L:x" --config.cmd=/bin/sh --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    rm -rf "$work/b"
}
