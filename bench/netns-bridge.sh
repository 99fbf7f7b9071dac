#!/bin/sh
# Benchmark of netns-bridge: attach + detach of one namespace against the CNI bridge
# plugin (ADD/DEL, host-local IPAM) and against the same steps with `ip`; then 200
# namespaces on one bridge (the time per attach must stay flat). `veth-floor` is only
# `ip link add` + `ip link del` of a veth pair: the kernel's own cost of the cycle (the
# delete waits for an RCU barrier, ~20 ms here), which no tool can go below.
# Everything runs in a throwaway network + mount namespace: no host interface is touched.
# Needs: hyperfine, iproute2, containernetworking-plugins, util-linux, python3; root.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NETNS_BRIDGE:-$ROOT/target/release/netns-bridge}
# Always rebuild (a no-op when up to date): never measure a stale binary.
[ -n "${NETNS_BRIDGE:-}" ] || cargo build -q --release --manifest-path "$ROOT/Cargo.toml" --bin netns-bridge >&2
for p in hyperfine ip unshare python3 /usr/lib/cni/bridge /usr/lib/cni/host-local; do
  command -v "$p" >/dev/null 2>&1 || [ -x "$p" ] || { echo "missing $p: apt-get install -y hyperfine iproute2 containernetworking-plugins util-linux python3" >&2; exit 1; }
done
OUT=$ROOT/bench/results; mkdir -p "$OUT"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
export BIN OUT WORK

cat > "$WORK/inner.sh" <<'INNER'
mount -t tmpfs tmpfs /run/netns 2>/dev/null || { mkdir -p /run/netns; mount -t tmpfs tmpfs /run/netns; }
export CONTLAB_RUN_DIR=$WORK/run
ip link set lo up
NB="$BIN -q"
$NB netns add bench0 >/dev/null
$NB bridge create bb0 --subnet 10.250.0.1/16 >/dev/null
ip link add brip type bridge; ip addr add 10.252.0.1/16 dev brip; ip link set brip up
cat > "$WORK/cni.json" <<JSON
{"cniVersion": "0.4.0", "name": "cnibench", "type": "bridge", "bridge": "cni0",
 "isGateway": true, "ipMasq": false,
 "ipam": {"type": "host-local", "subnet": "10.251.0.0/16", "dataDir": "$WORK/cni"}}
JSON
cat > "$WORK/cni.sh" <<SH
#!/bin/sh
set -e
export CNI_CONTAINERID=bench CNI_NETNS=/run/netns/bench0 CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni
CNI_COMMAND=ADD /usr/lib/cni/bridge < "$WORK/cni.json" >/dev/null
CNI_COMMAND=DEL /usr/lib/cni/bridge < "$WORK/cni.json" >/dev/null
SH
cat > "$WORK/ip.sh" <<'SH'
#!/bin/sh
set -e
ip link add vethb type veth peer name eth0 netns bench0
ip link set vethb master brip up
ip -n bench0 addr add 10.252.0.2/16 dev eth0
ip -n bench0 link set eth0 up
ip -n bench0 link set lo up
ip -n bench0 route add default via 10.252.0.1
ip link del vethb
SH
cat > "$WORK/floor.sh" <<'SH'
#!/bin/sh
set -e
ip link add vethf type veth peer name eth1 netns bench0
ip link del vethf
SH
cat > "$WORK/nb.sh" <<SH
#!/bin/sh
set -e
$NB attach --bridge bb0 --netns bench0 >/dev/null
$NB detach --bridge bb0 --netns bench0 >/dev/null
SH
chmod +x "$WORK"/*.sh
hyperfine --warmup 5 --runs 60 -N --export-json "$OUT/netns-bridge-attach.json" \
  -n netns-bridge "$WORK/nb.sh" -n cni-bridge "$WORK/cni.sh" -n ip-commands "$WORK/ip.sh" \
  -n veth-floor "$WORK/floor.sh" >&2

# 200 namespaces on one bridge: time each attach.
i=1; : > "$WORK/times"
while [ $i -le 200 ]; do
  $NB netns add s$i >/dev/null
  t0=$(date +%s%N); $NB attach --bridge bb0 --netns s$i >/dev/null; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000 )) >> "$WORK/times"; i=$((i + 1))
done
cp "$WORK/times" "$OUT/netns-bridge-200.txt"
INNER
unshare --net --mount --propagation private sh -eu "$WORK/inner.sh" </dev/null

python3 - "$OUT" <<'PY'
import json, sys, statistics as st
out = sys.argv[1]
r = {x["command"]: x for x in json.load(open(f"{out}/netns-bridge-attach.json"))["results"]}
med = {k: st.median(v["times"]) * 1000 for k, v in r.items()}
print("attach+detach of one namespace (median of %d runs):" % len(r["netns-bridge"]["times"]))
for k in ("netns-bridge", "cni-bridge", "ip-commands", "veth-floor"):
    print(f"  {k:13s} {med[k]:7.2f} ms   ratio to netns-bridge {med[k] / med['netns-bridge']:.2f}x")
print(f"  netns-bridge / CNI = {med['netns-bridge'] / med['cni-bridge']:.2f} (goal <= 0.5)")
print(f"  above the kernel floor: netns-bridge {med['netns-bridge'] - med['veth-floor']:.2f} ms,"
      f" cni-bridge {med['cni-bridge'] - med['veth-floor']:.2f} ms")
t = [int(x) / 1000 for x in open(f"{out}/netns-bridge-200.txt")]
q = [st.median(t[i:i + 50]) for i in range(0, 200, 50)]
print("200 attaches on one bridge, median ms per block of 50: " + " ".join(f"{x:.2f}" for x in q)
      + f"   (last/first = {q[-1] / q[0]:.2f})")
PY
