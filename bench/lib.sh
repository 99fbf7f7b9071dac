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

# bench_in_namespace SCRIPT ARGS...: run the benchmark against its peers (dockerd,
# podman) in fresh net, mount and PID namespaces, so that nothing they make reaches
# the host: outside, check root and the tools, build mini and img-pull (release,
# unless MINI is given), re-execute SCRIPT inside; inside (SCRIPT --in-namespace),
# give the namespace its own /run (the runtimes' state, /run/netns), loopback up and
# ip_forward 0. TOOLS: the commands the benchmark needs.
bench_in_namespace() {
    local self=$1 t
    shift
    if [ "${1:-}" = --in-namespace ]; then
        mount -t tmpfs -o mode=755 tmpfs /run
        mkdir -p /run/netns
        mount -t tmpfs tmpfs /run/netns
        ip link set lo up
        echo 0 > /proc/sys/net/ipv4/ip_forward
        return
    fi
    [ "$(id -u)" = 0 ] || { echo "run me as root: containers, dockerd and podman's storage need it" >&2; exit 1; }
    for t in hyperfine podman dockerd /usr/bin/docker umoci busybox jq ip unshare flock; do
        command -v "$t" >/dev/null || {
            echo "bench: $t is missing: apt-get install -y hyperfine podman docker.io umoci busybox-static jq iproute2 util-linux" >&2
            exit 1
        }
    done
    # Built here, not in the namespace (which has no network for cargo).
    if [ -z "${MINI:-}" ]; then
        (cd "$(dirname "$self")/.." && cargo build --release --bin mini --bin img-pull >&2)
        MINI=${CARGO_TARGET_DIR:-$(cd "$(dirname "$self")/.." && pwd)/target}/release/mini
    fi
    export MINI
    exec unshare --net --mount --propagation private --pid --fork --mount-proc "$self" --in-namespace
}

# bench_peers: after bench_mini, inside bench_in_namespace: copies of mini and img-pull
# in WORK/bin (a build of the tree meanwhile does not replace the binary a monitor
# executes again), P (podman on vfs storage under WORK) and D (docker.io's client) with
# a private dockerd, the busybox image bench/base in all three stores, and a cleanup on
# exit that stops dockerd and unmounts what the peers left under WORK.
bench_peers() {
    local i
    IMG_PULL=$(dirname "$MINI")/img-pull
    [ -x "$IMG_PULL" ] || { echo "bench: $IMG_PULL is missing (it is built beside mini)" >&2; exit 1; }
    MINI_FROM=$MINI
    mkdir -p "$WORK/bin"
    cp "$MINI" "$IMG_PULL" "$WORK/bin/"
    MINI=$WORK/bin/mini IMG_PULL=$WORK/bin/img-pull
    export CONTLAB_RUN_DIR=$WORK/run
    # podman writes its blob-info cache in /var/lib/containers/cache whatever --root
    # says, and buildah's temporary files go to /var/tmp: both over directories of the
    # run, on the same disk.
    mkdir -p "$WORK/tmp" "$WORK/var-lib-containers" "$WORK/var-tmp"
    [ ! -d /var/lib/containers ] || mount --bind "$WORK/var-lib-containers" /var/lib/containers
    mount --bind "$WORK/var-tmp" /var/tmp
    # podman refuses this machine's high rlimits: it runs under lower ones (dockerd
    # keeps its own, 200 containers need more than 1024 descriptors).
    P="env TMPDIR=$WORK/tmp prlimit --nofile=1024:1024 podman --root $WORK/podman --runroot $WORK/podman-run --tmpdir $WORK/podman-tmp --storage-driver vfs --cgroup-manager cgroupfs --events-backend none"
    export DOCKER_HOST="unix://$WORK/docker.sock" DOCKER_CONFIG=$WORK/docker-config DOCKER_BUILDKIT=0
    D=/usr/bin/docker
    # (podman reads DOCKER_CONFIG too, and wants the file there)
    mkdir -p "$DOCKER_CONFIG"
    echo '{}' > "$DOCKER_CONFIG/config.json"
    trap bench_peers_cleanup EXIT
    bench_busybox_layout "$WORK" >/dev/null
    "$IMG_PULL" -q --root "$STORE" import "$L:x" -t bench/base >&2
    m save bench/base -o "$WORK/base.tar"
    $P load -q -i "$WORK/base.tar" >&2
    # No docker0 and no iptables rules unless the benchmark measures docker's networks
    # (DOCKER_NETWORKS=1): in the benchmark's own network namespace, they touch nothing
    # of the host either way.
    local net_flags="--bridge=none --iptables=false --ip6tables=false"
    [ -z "${DOCKER_NETWORKS:-}" ] || net_flags="--ip6tables=false"
    # shellcheck disable=SC2086
    dockerd --data-root "$WORK/docker" --exec-root "$WORK/docker-run" -H "$DOCKER_HOST" --pidfile "$WORK/docker.pid" \
        $net_flags >"$WORK/dockerd.log" 2>&1 9>&- &
    DOCKERD=$!
    i=0
    until $D version >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 300 ] && { echo "bench: dockerd did not start in 60 s:" >&2; cat "$WORK/dockerd.log" >&2; exit 1; }
        sleep 0.2
    done
    m save bench/base | $D load -q >&2
    echo "bench: bench/base: mini $(m image inspect -f '{{.Id}}' bench/base), podman sha256:$($P image inspect -f '{{.Id}}' bench/base)," \
        "docker $($D image inspect -f '{{.Id}}' bench/base)" >&2
}

bench_peers_cleanup() {
    if [ -n "${DOCKERD:-}" ]; then
        kill "$DOCKERD" 2>/dev/null || true
        wait "$DOCKERD" 2>/dev/null || true
    fi
    [ -n "${KEEP:-}" ] && { echo "bench: kept $WORK" >&2; return; }
    grep " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    bench_cleanup
}

# bench_podman_run FLAGS...: PR = `podman run --rm FLAGS` with podman's default OCI
# runtime if it runs a container here, else runc (crun refuses cgroup v1 with a v2
# hierarchy beside it, "hybrid mode"). After bench_peers.
bench_podman_run() {
    PR="$P run --rm $* --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
    if ! $PR bench/base true 2>"$WORK/podman-probe.log"; then
        PR="$P run --runtime runc --rm $* --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
        $PR bench/base true || { cat "$WORK/podman-probe.log" >&2; exit 1; }
        echo "bench: podman run with its default OCI runtime failed here; using --runtime runc" >&2
    fi
}
