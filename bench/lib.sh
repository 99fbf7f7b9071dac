# bench/lib.sh — what the mini benchmarks share; sourced, not run.
#
#   bench_mini NAME     MINI (release, built unless given), WORK (a temporary
#                       directory), STORE=$WORK/store, m() = mini -q --root STORE,
#                       and a cleanup on exit that removes the containers and WORK
#                       (KEEP=1 keeps them).

bench_mini() {
    HERE=$(cd "$(dirname "$0")/.." && pwd)
    MINI=${MINI:-}
    if [ -z "$MINI" ]; then
        (cd "$HERE" && cargo build --release --bin mini >&2)
        MINI=${CARGO_TARGET_DIR:-$HERE/target}/release/mini
    fi
    MINI=$(readlink -f "$MINI")
    WORK=$(mktemp -d "/tmp/contlab-bench-$1.XXXXXX")
    STORE=$WORK/store
    [ -n "${KEEP:-}" ] || trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

m() { "$MINI" -q --root "$STORE" "$@"; }

bench_cleanup() {
    local ids
    ids=$(m ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || m rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
