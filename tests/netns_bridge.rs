//! netns-bridge: every privileged test runs its commands in a fresh network namespace
//! and a private mount namespace (`unshare --net --mount`), with a tmpfs on /run/netns
//! and its own run directory, so no host interface, namespace or rule is touched and
//! no packet leaves the machine. Peers: iproute2 (`ip`), nftables (`nft`),
//! busybox-static (`busybox nc|httpd|ping`), util-linux (`unshare`, `nsenter`).
//!
//! A new network namespace starts with the host's `net.ipv4.ip_forward` (the kernel
//! copies init_net's settings), 1 on any machine running dockerd: each sandbox sets
//! the value its script relies on (0 unless it says otherwise).

use std::path::Path;
use std::process::Command;

use crate::harness;

fn need(prog: &str, package: &str) {
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .any(|d| Path::new(d).join(prog).exists());
    assert!(found, "{prog} is missing: install the Debian package {package} (apt-get install -y {package})");
}

/// Run `script` (sh -eu) in a throwaway network + mount namespace whose ip_forward is
/// 0; returns (status, stdout, stderr).
fn sandbox(script: &str) -> (i32, String, String) {
    sandbox_forwarding(0, script)
}

/// [`sandbox`], with the namespace's ip_forward set to `forward` first.
fn sandbox_forwarding(forward: u8, script: &str) -> (i32, String, String) {
    need("unshare", "util-linux");
    need("ip", "iproute2");
    need("nft", "nftables");
    need("busybox", "busybox-static");
    let bin = harness::bin_path("netns-bridge");
    let dir = bin.parent().unwrap().to_string_lossy().into_owned();
    let run = harness::tmp();
    let prelude = format!(
        "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns\n\
         export CONTLAB_RUN_DIR={run} PATH={dir}:/usr/sbin:/sbin:$PATH NO_COLOR=1\n\
         echo {forward} > /proc/sys/net/ipv4/ip_forward\n\
         ip link set lo up\n\
         nb() {{ netns-bridge -q \"$@\"; }}\n\
         inns() {{ n=$1; shift; ip netns exec \"$n\" \"$@\"; }}\n",
        run = run.path().display()
    );
    let mut unshare = Command::new("unshare");
    harness::no_inherited_fds(&mut unshare);
    let out = unshare
        // A PID namespace too, with the script as its PID 1: when the script ends,
        // the kernel kills every daemon it started (httpd, nc), so none outlives
        // the test. --mount-proc keeps PIDs in /proc consistent for `--pid P`.
        .args(["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "sh", "-euc"])
        .arg(format!("{prelude}{script}"))
        .output()
        .expect("unshare");
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    (out.status.code().unwrap_or(-1), o, e)
}

fn ok(script: &str) -> String {
    let (code, out, err) = sandbox(script);
    assert_eq!(code, 0, "script failed ({code})\n--- stdout\n{out}\n--- stderr\n{err}");
    out
}

#[test]
fn usage_errors_exit_2() {
    harness::cmd("netns-bridge").args(["bridge"]).assert().code(2);
    harness::cmd("netns-bridge").args(["attach", "--bridge", "br0"]).assert().code(2);
    harness::cmd("netns-bridge").args(["publish", "8080:80"]).assert().code(2);
}

#[test]
fn dry_run_plan_of_bridge_create() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let (code, _, err) = sandbox("netns-bridge --dry-run bridge create br0 --subnet 10.200.0.1/24");
    assert_eq!(code, 0, "{err}");
    harness::snapshot_settings().bind(|| insta::assert_snapshot!("netns_bridge_dry_run_bridge_create", err));
}

#[test]
fn two_hosts_on_one_bridge_exchange_icmp_and_tcp_by_name() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
nb netns add c1 >/dev/null; nb netns add c2 >/dev/null
nb bridge create br0 --subnet 10.200.0.1/24
nb attach --bridge br0 --netns c1
nb attach --bridge br0 --netns c2
nb netns exec c1 busybox ping -c3 -i0.2 -W2 c2 >/dev/null && echo PING-BY-NAME-OK
nb netns exec c2 cat /etc/hosts | grep -q "10.200.0.2	c1" && echo HOSTS-OK
inns c2 busybox nc -l -p 7000 > "$CONTLAB_RUN_DIR/got" &
sleep 0.3
echo hello-over-tcp | inns c1 busybox nc -w 2 10.200.0.3 7000
wait
cat "$CONTLAB_RUN_DIR/got"
busybox ping -c3 -i0.2 -W2 10.200.0.2 >/dev/null && echo HOST-PINGS-C1
"#);
    assert!(out.contains("10.200.0.2/24\n10.200.0.3/24"), "{out}");
    for m in ["PING-BY-NAME-OK", "HOSTS-OK", "hello-over-tcp", "HOST-PINGS-C1"] {
        assert!(out.contains(m), "missing {m}:\n{out}");
    }
}

#[test]
fn two_bridges_are_isolated_even_with_nat() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // The course: two networks, a container on each; the host reaches both, they do
    // not reach each other. Before `nat`, whether the host routes from one to the
    // other depends on ip_forward (a fresh host: 0; a docker host: 1); after it, the
    // isolation rules drop that traffic either way.
    for forward in [0, 1] {
        let (code, out, err) = sandbox_forwarding(
            forward,
            r#"
nb netns add a >/dev/null; nb netns add b >/dev/null
nb bridge create net1 --subnet 10.1.0.1/24 >/dev/null
nb bridge create net2 --subnet 10.2.0.1/24 >/dev/null
nb attach --bridge net1 --netns a >/dev/null
nb attach --bridge net2 --netns b >/dev/null
busybox ping -c3 -i0.2 -W2 10.1.0.2 >/dev/null && echo HOST-A
busybox ping -c3 -i0.2 -W2 10.2.0.2 >/dev/null && echo HOST-B
inns a busybox ping -c3 -i0.2 -W2 10.2.0.2 >/dev/null && echo A-TO-B-ROUTED || echo A-TO-B-BLOCKED
nb nat net1; nb nat net2
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
inns a busybox ping -c1 -W1 10.2.0.2 >/dev/null && echo A-TO-B-ROUTED-WITH-NAT || echo A-TO-B-BLOCKED-WITH-NAT
echo "drop rules: $(nft list chain ip contlab forward | grep -c drop)"
"#,
        );
        assert_eq!(code, 0, "ip_forward={forward}\n{out}\n{err}");
        let before = if forward == 0 { "A-TO-B-BLOCKED\n" } else { "A-TO-B-ROUTED\n" };
        let want = format!("HOST-A\nHOST-B\n{before}ip_forward=1\nA-TO-B-BLOCKED-WITH-NAT\ndrop rules: 4\n");
        assert_eq!(out, want, "ip_forward={forward}\n{err}");
    }
}

#[test]
fn lo_down_refuses_then_lo_up_serves() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // The course's `ip netns add mynet` + `python3 -m http.server` exercise, with busybox httpd.
    let out = ok(r#"
nb netns add mynet >/dev/null
nb netns ls
mkdir -p "$CONTLAB_RUN_DIR/www"; echo served > "$CONTLAB_RUN_DIR/www/index.html"
inns mynet busybox httpd -p 8000 -h "$CONTLAB_RUN_DIR/www"
inns mynet ip -br link show lo
printf 'GET / HTTP/1.0\r\n\r\n' | inns mynet busybox nc -w 1 127.0.0.1 8000 2>&1 || echo REFUSED
inns mynet ip link set lo up
printf 'GET / HTTP/1.0\r\n\r\n' | inns mynet busybox nc -w 2 127.0.0.1 8000 | tail -1
"#);
    assert!(out.starts_with("mynet\n"), "{out}");
    assert!(out.contains("DOWN"), "{out}");
    assert!(out.contains("REFUSED"), "{out}");
    assert!(out.trim_end().ends_with("served"), "{out}");
}

#[test]
fn publish_reaches_the_server_from_outside_and_from_localhost() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
nb netns add web >/dev/null; nb netns add client >/dev/null
nb bridge create br0 --subnet 10.200.0.1/24 >/dev/null
nb attach --bridge br0 --netns web >/dev/null
mkdir -p "$CONTLAB_RUN_DIR/www"; echo hello-published > "$CONTLAB_RUN_DIR/www/index.html"
inns web busybox httpd -p 80 -h "$CONTLAB_RUN_DIR/www"
nb nat br0
nb publish 8080:80 --to 10.200.0.2
get() { printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 2 "$@" | tail -1; }
get 127.0.0.1 8080
get 10.200.0.1 8080
# a client elsewhere: another namespace joined to this host by a veth "uplink"
ip link add up0 type veth peer name eth0 netns client
ip addr add 192.168.77.1/24 dev up0; ip link set up0 up
inns client ip addr add 192.168.77.2/24 dev eth0; inns client ip link set eth0 up; inns client ip link set lo up
printf 'GET / HTTP/1.0\r\n\r\n' | inns client busybox nc -w 2 192.168.77.1 8080 | tail -1
nft list ruleset | grep -c 'contlab:br0:publish:8080/tcp'
nb unpublish 8080
get 127.0.0.1 8080; echo AFTER
nft list ruleset | grep -c publish || true
"#);
    assert_eq!(out.matches("hello-published").count(), 3, "{out}");
    assert!(out.contains("8080/tcp -> 10.200.0.2:80"), "{out}");
    assert!(out.contains("\n4\n"), "four rules per published port (two DNAT, two masquerade): {out}");
    assert!(out.ends_with("AFTER\n0\n"), "unpublished: no answer, no rule left: {out}");
}

#[test]
fn publish_on_one_host_address_only() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // docker's -p 127.0.0.1:8080:80: the port is published on that address only, and
    // the same port can be published again on another address, not on every address.
    let (code, out, err) = sandbox(
        r#"
nb netns add web >/dev/null
nb bridge create br0 --subnet 10.200.0.1/24 >/dev/null
nb attach --bridge br0 --netns web >/dev/null
mkdir -p "$CONTLAB_RUN_DIR/www"; echo only-on-lo > "$CONTLAB_RUN_DIR/www/index.html"
inns web busybox httpd -p 80 -h "$CONTLAB_RUN_DIR/www"
nb publish 127.0.0.1:8080:80 --to 10.200.0.2
get() { printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 2 "$@" 2>/dev/null | tail -1; }
echo "lo: $(get 127.0.0.1 8080)"
echo "gw: $(get 10.200.0.1 8080)"
nb publish 8080:81 --to 10.200.0.2 || echo "every-address=$?"
nb publish 10.200.0.1:8080:80 --to 10.200.0.2
echo "gw: $(get 10.200.0.1 8080)"
nft list ruleset | grep -c 'dnat to'
nb unpublish 127.0.0.1:8080
echo "lo: $(get 127.0.0.1 8080)"
nft list ruleset | grep -o 'ip daddr [0-9.]* tcp dport 8080' | sort -u
"#,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out,
        "127.0.0.1:8080/tcp -> 10.200.0.2:80\nlo: only-on-lo\ngw: \nevery-address=1\n\
         10.200.0.1:8080/tcp -> 10.200.0.2:80\ngw: only-on-lo\n4\nlo: \nip daddr 10.200.0.1 tcp dport 8080\n",
        "{err}"
    );
    assert!(err.contains("port 8080/tcp is in use: already published to 10.200.0.2:80 on br0"), "{err}");
}

#[test]
fn a_second_network_keeps_the_first_default_route() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // docker network connect: one namespace on two bridges.
    let out = ok(r#"
nb netns add c1 >/dev/null
nb bridge create front --subnet 10.210.0.1/24 >/dev/null
nb bridge create back --subnet 10.211.0.1/24 >/dev/null
nb attach --bridge front --netns c1
netns-bridge attach --bridge back --netns c1 --ifname eth1 2>&1 >/dev/null | grep -o "already has a default route"
inns c1 ip -4 route | sort
inns c1 busybox ping -c3 -i0.2 -W2 10.211.0.1 >/dev/null && echo BACK-GATEWAY-REACHABLE
"#);
    assert_eq!(
        out,
        "10.210.0.2/24\nalready has a default route\n10.210.0.0/24 dev eth0 proto kernel scope link src 10.210.0.2 \n10.211.0.0/24 dev eth1 proto kernel scope link src 10.211.0.2 \ndefault via 10.210.0.1 dev eth0 \nBACK-GATEWAY-REACHABLE\n"
    );
}

#[test]
fn detach_releases_the_address_and_the_veth() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
nb netns add c1 >/dev/null; nb netns add c2 >/dev/null
nb bridge create br0 --subnet 10.200.0.1/24 >/dev/null
nb attach --bridge br0 --netns c1
nb detach --bridge br0 --netns c1
ip -o link show type veth | wc -l
inns c1 ip -o link show | wc -l
nb attach --bridge br0 --netns c2
"#);
    assert_eq!(out, "10.200.0.2/24\n10.200.0.2\n0\n1\n10.200.0.2/24\n");
}

#[test]
fn interop_with_ip_netns_and_nft() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
ip netns add theirs
nb netns add ours >/dev/null
ip netns list | sort
nb bridge create br0 --subnet 10.9.0.1/24 >/dev/null
nb attach --bridge br0 --netns theirs --ip 10.9.0.50/24
ip netns exec ours ip -br link | cut -d' ' -f1
ip netns exec theirs ip -4 -o addr show eth0 | grep -o '10.9.0.50/24'
nb nat br0
nft list ruleset | grep -o 'ip saddr 10.9.0.0/24 oifname != "br0" masquerade comment "contlab:br0:nat"'
nb netns rm ours; ip netns list
"#);
    assert!(out.starts_with("ours\ntheirs\n"), "{out}");
    assert!(out.contains("10.9.0.50/24\nlo\n10.9.0.50/24\n"), "{out}");
    assert!(out.contains("masquerade comment \"contlab:br0:nat\"\ntheirs"), "{out}");
}

#[test]
fn failures_leave_nothing_behind() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let (code, out, err) = sandbox(
        r#"
nb netns add a >/dev/null; nb netns add b >/dev/null; nb netns add c >/dev/null
nb bridge create tiny --subnet 10.7.0.1/30 >/dev/null
nb bridge create big --subnet 10.9.0.1/24 >/dev/null
nb attach --bridge tiny --netns a >/dev/null
nb attach --bridge tiny --netns b && exit 9 || echo "exhausted=$?"
busybox sleep 0.1 & pid=$!; wait $pid
nb attach --bridge big --pid $pid && exit 9 || echo "gone=$?"
nb netns add a && exit 9 || echo "dupns=$?"
nb bridge create tiny --subnet 10.8.0.1/24 && exit 9 || echo "dupbr=$?"
nb attach --bridge tiny --netns c --ip 10.7.0.2 && exit 9 || echo "taken=$?"
ip -o link show type veth | wc -l
inns b ip -o link show | wc -l
ls /run/netns | tr '\n' ' '; echo
"#,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    for m in ["exhausted=1", "gone=1", "dupns=1", "dupbr=1", "taken=1", "\n1\n1\na b c \n"] {
        assert!(out.contains(m), "missing {m:?}:\n{out}\n{err}");
    }
    assert!(err.contains("no free address left in 10.7.0.0/30"), "{err}");
    assert!(err.contains("the process has exited"), "{err}");
    assert!(err.contains("a namespace named \"a\" exists"), "{err}");
    assert!(err.contains("address 10.7.0.2 is taken by a"), "{err}");
}

#[test]
fn half_done_attach_is_undone() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // eth0 exists inside already: the veth cannot be created; with --ifname lo the
    // kernel refuses at creation too. Either way no veth stays on the host.
    let (code, out, err) = sandbox(
        r#"
nb netns add a >/dev/null
nb bridge create br0 --subnet 10.6.0.1/24 >/dev/null
inns a ip link add eth0 type veth peer name x0
nb attach --bridge br0 --netns a && exit 9 || echo "clash=$?"
ip -o link show type veth | wc -l
nb show --json | grep -c '"ip"' || true
"#,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("clash=1\n0\n0\n"), "{out}\n{err}");
    assert!(err.contains("EEXIST"), "{err}");
}

#[test]
fn bad_input_gives_clear_errors() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let (code, out, err) = sandbox(
        r#"
nb bridge create br0 --subnet 10.5.0.1/24 >/dev/null
nb bridge create br1 --subnet 10.5.0.129/25 || echo "overlap=$?"
nb bridge create this-name-is-too-long --subnet 10.4.0.1/24 || echo "long=$?"
nb netns add x >/dev/null
nb attach --bridge br0 --netns x --ip 10.99.0.5/24 || echo "outside=$?"
nb attach --bridge br0 --netns nosuch || echo "missing=$?"
nb attach --bridge br0 --netns x >/dev/null
nb publish 8080:80 --to 10.5.0.2 >/dev/null
nb publish 8080:81 --to 10.5.0.2 || echo "inuse=$?"
busybox nc -l -p 9090 & sleep 0.2
nb publish 9090:80 --to 10.5.0.2 || echo "listening=$?"
kill $! 2>/dev/null || true
unshare --user netns-bridge -q bridge create br9 --subnet 10.3.0.1/24 || echo "notroot=$?"
"#,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    for m in ["overlap=1", "long=2", "outside=2", "missing=1", "inuse=1", "listening=1", "notroot=1"] {
        assert!(out.contains(m), "missing {m:?}:\n{out}\n{err}");
    }
    for m in [
        "the subnet 10.5.0.128/25 overlaps 10.5.0.0/24 of the network \"br0\"",
        "invalid bridge name \"this-name-is-too-long\": an interface name has 1 to 15 bytes",
        "address 10.99.0.5/24 is not a free host address of the network \"br0\"",
        "no network namespace named \"nosuch\"",
        "port 8080/tcp is in use: already published to 10.5.0.2:80 on br0",
        "port 9090/tcp is in use: a process on this host listens on it",
        "this command must run as root",
    ] {
        assert!(err.contains(m), "missing {m:?} in:\n{err}");
    }
}

#[test]
fn concurrent_attaches_never_collide() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
nb bridge create br0 --subnet 10.30.0.1/24 >/dev/null
for i in 1 2 3 4 5 6 7 8; do nb netns add n$i >/dev/null; done
for i in 1 2 3 4 5 6 7 8; do nb attach --bridge br0 --netns n$i > "$CONTLAB_RUN_DIR/ip$i" & done
wait
cat "$CONTLAB_RUN_DIR"/ip* | sort -u | wc -l
"#);
    assert_eq!(out.trim(), "8", "{out}");
}

#[test]
fn vxlan_joins_one_bridge_across_two_hosts() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    // Two "hosts" (namespaces hA, hB) joined by a veth underlay; a bridge with the same
    // subnet on each, a container on each, a vxlan port on each bridge.
    let out = ok(r#"
ip netns add hA; ip netns add hB
ip link add u0 netns hA type veth peer name u0 netns hB
ip -n hA addr add 192.168.50.1/24 dev u0; ip -n hA link set u0 up; ip -n hA link set lo up
ip -n hB addr add 192.168.50.2/24 dev u0; ip -n hB link set u0 up; ip -n hB link set lo up
nb netns add ca >/dev/null; nb netns add cb >/dev/null
A="env CONTLAB_RUN_DIR=$CONTLAB_RUN_DIR/A ip netns exec hA netns-bridge -q"
B="env CONTLAB_RUN_DIR=$CONTLAB_RUN_DIR/B ip netns exec hB netns-bridge -q"
mkdir -p "$CONTLAB_RUN_DIR/A" "$CONTLAB_RUN_DIR/B"
$A bridge create ov0 --subnet 10.40.0.1/24 >/dev/null
$B bridge create ov0 --subnet 10.40.0.254/24 >/dev/null
$A attach --bridge ov0 --netns ca --ip 10.40.0.10/24
$B attach --bridge ov0 --netns cb --ip 10.40.0.20/24
$A vxlan add ov0 --vni 42 --remote 192.168.50.2 --dev u0
$B vxlan add ov0 --vni 42 --remote 192.168.50.1 --dev u0
inns ca busybox ping -c2 -W2 10.40.0.20 >/dev/null && echo ACROSS-OK
$A show | grep vxlan
"#);
    assert!(out.contains("vxlan42\nvxlan42\nACROSS-OK"), "{out}");
    assert!(out.contains("port vxlan42 vxlan id 42 remote 192.168.50.2"), "{out}");
}

#[test]
fn show_json_and_dot_describe_the_topology() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let out = ok(r#"
nb netns add c1 >/dev/null
nb bridge create br0 --subnet 10.200.0.1/24 >/dev/null
nb attach --bridge br0 --netns c1 --name web --mac 02:42:0a:c8:00:02 >/dev/null
inns c1 cat /sys/class/net/eth0/address
nb show --json
nb show --dot | head -1
"#);
    let mac_end = out.find('\n').unwrap();
    assert_eq!(&out[..mac_end], "02:42:0a:c8:00:02");
    let json_end = out.rfind("graph contlab {").unwrap();
    let v: serde_json::Value = serde_json::from_str(&out[mac_end + 1..json_end]).expect("json");
    let b = &v["bridges"][0];
    assert_eq!(b["name"], "br0");
    assert_eq!(b["up"], true);
    assert_eq!(b["hosts"][0]["ip"], "10.200.0.2");
    assert_eq!(b["hosts"][0]["hostname"], "web");
    assert_eq!(b["ports"].as_array().unwrap().len(), 1);
    assert!(b["hosts"][0]["routes"].as_array().unwrap().iter().any(|r| r == "default via 10.200.0.1 dev eth0"));
}

/// A network + mount namespace that stays alive (a `sleep` holds it), so that a tool
/// can be started inside it with `nsenter`, stopped at a chosen request and killed.
struct Held {
    holder: std::process::Child,
    run: tempfile::TempDir,
}

impl Held {
    fn new() -> Held {
        need("nsenter", "util-linux");
        let run = harness::tmp();
        let mut holder = harness::no_inherited_fds(&mut Command::new("unshare"))
            .args(["--net", "--mount", "--propagation", "private", "sh", "-euc"])
            .arg(
                "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns\n\
                 echo 0 > /proc/sys/net/ipv4/ip_forward; ip link set lo up\n\
                 echo ready; exec sleep 600",
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line, "ready\n", "the sandbox did not start");
        Held { holder, run }
    }

    /// A command run inside the namespaces, with the sandbox's state root.
    fn cmd(&self, prog: &str) -> Command {
        let bin = harness::bin_path("netns-bridge");
        let dir = bin.parent().unwrap().to_string_lossy().into_owned();
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.holder.id().to_string()).args(["-n", "-m", "--", prog]);
        c.env("CONTLAB_RUN_DIR", self.run.path())
            .env("PATH", format!("{dir}:/usr/sbin:/sbin:{}", std::env::var("PATH").unwrap_or_default()))
            .env("NO_COLOR", "1");
        harness::no_inherited_fds(&mut c);
        c
    }

    fn nb(&self, args: &[&str]) -> std::process::Output {
        self.cmd("netns-bridge").arg("-q").args(args).output().unwrap()
    }

    fn sh(&self, script: &str) -> String {
        let o = self.cmd("sh").args(["-euc", script]).output().unwrap();
        assert!(o.status.success(), "{script}: {}", harness::stderr_of(&o));
        harness::stdout_of(&o)
    }

    /// What an attach of c1 to br0 can leave: veth ends on the host, interfaces in c1,
    /// leases in the state file, c1's line in the hosts file.
    fn leftovers(&self) -> String {
        let state = std::fs::read_to_string(self.run.path().join("net/br0.json")).unwrap_or_default();
        let leases = serde_json::from_str::<serde_json::Value>(&state).unwrap()["leases"].as_array().unwrap().len();
        let hosts = std::fs::read_to_string(self.run.path().join("net/br0.hosts")).unwrap_or_default();
        let out =
            self.sh("echo \"veth=$(ip -o link show type veth | wc -l) in-c1=$(ip netns exec c1 ip -o link | wc -l)\"");
        format!("{} leases={leases} hosts-c1={}", out.trim(), hosts.contains("\tc1\n"))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The requests of `attach --bridge br0 --netns c1`, in order, and what is left when
/// it is killed just before each: (request, occurrence, what remains).
const ATTACH_STAGES: &[(&str, u32, &str)] = &[
    ("flock", 1, "veth=0 in-c1=1 leases=0 hosts-c1=false"),
    ("RTM_NEWLINK", 1, "veth=0 in-c1=1 leases=0 hosts-c1=false"),
    ("RTM_NEWLINK", 2, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("RTM_NEWADDR", 1, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("RTM_NEWLINK", 3, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("RTM_NEWLINK", 4, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("RTM_NEWROUTE", 1, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("write", 1, "veth=1 in-c1=2 leases=0 hosts-c1=false"),
    ("write", 2, "veth=1 in-c1=2 leases=1 hosts-c1=false"),
];

/// kill -9 at each step of an attach, then the documented clean-up: `detach` (the
/// namespace is kept) removes what remains, and c1 attaches again as if nothing had
/// happened.
#[test]
fn an_attach_killed_at_any_step_is_cleaned_up_by_detach() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    for (call, nth, remains) in ATTACH_STAGES {
        let s = Held::new();
        for args in [&["netns", "add", "c1"][..], &["bridge", "create", "br0", "--subnet", "10.200.0.1/24"]] {
            assert!(s.nb(args).status.success(), "{args:?}");
        }
        let mut attach = s.cmd("netns-bridge");
        attach.args(["attach", "--bridge", "br0", "--netns", "c1"]);
        harness::kill9(harness::stopped_at(attach, call, *nth));
        assert_eq!(s.leftovers(), *remains, "killed before {call} #{nth}");
        let d = s.nb(&["detach", "--bridge", "br0", "--netns", "c1"]);
        let nothing_made = remains.starts_with("veth=0");
        assert_eq!(d.status.success(), !nothing_made, "detach after {call} #{nth}: {}", harness::stderr_of(&d));
        if nothing_made {
            assert!(harness::stderr_of(&d).contains("c1 is not attached to br0 as eth0"), "{}", harness::stderr_of(&d));
        }
        assert_eq!(
            s.leftovers(),
            "veth=0 in-c1=1 leases=0 hosts-c1=false",
            "after detach, killed before {call} #{nth}"
        );
        let again = s.nb(&["attach", "--bridge", "br0", "--netns", "c1"]);
        assert_eq!(harness::stdout_of(&again), "10.200.0.2/24\n", "{call} #{nth}: {}", harness::stderr_of(&again));
    }
}

/// kill -9 at each step of an attach, then the other documented clean-up: `netns rm`
/// (the namespace goes, its veth pair and its leases with it).
#[test]
fn an_attach_killed_at_any_step_is_cleaned_up_by_netns_rm() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    for (call, nth, remains) in ATTACH_STAGES {
        let s = Held::new();
        for args in [&["netns", "add", "c1"][..], &["bridge", "create", "br0", "--subnet", "10.200.0.1/24"]] {
            assert!(s.nb(args).status.success(), "{args:?}");
        }
        let mut attach = s.cmd("netns-bridge");
        attach.args(["attach", "--bridge", "br0", "--netns", "c1"]);
        harness::kill9(harness::stopped_at(attach, call, *nth));
        assert_eq!(s.leftovers(), *remains, "killed before {call} #{nth}");
        let rm = s.nb(&["netns", "rm", "c1"]);
        assert!(rm.status.success(), "netns rm after {call} #{nth}: {}", harness::stderr_of(&rm));
        let state = std::fs::read_to_string(s.run.path().join("net/br0.json")).unwrap();
        let hosts = std::fs::read_to_string(s.run.path().join("net/br0.hosts")).unwrap_or_default();
        // The kernel destroys a namespace (and the veth peers of its interfaces) in
        // its cleanup work, once the last reference is gone: wait for it, up to 10 s.
        let left = s
            .sh("for i in $(seq 100); do [ \"$(ip -o link show type veth | wc -l)\" = 0 ] && break; sleep 0.1; done\n\
             echo \"veth=$(ip -o link show type veth | wc -l) netns=$(ls /run/netns | wc -l)\"");
        assert_eq!(left, "veth=0 netns=0\n", "after netns rm, killed before {call} #{nth}");
        assert!(!state.contains("\"c1\"") && !hosts.contains("c1"), "{call} #{nth}: {state}{hosts}");
    }
}

/// kill -9 during `netns add`: before the file exists, and after it exists but before
/// the child bound a namespace on it; `netns rm` removes what remains and the name
/// can be used again.
#[test]
fn a_netns_add_killed_half_way_is_cleaned_up_by_netns_rm() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    for (call, nth, file_left) in [("openat", 1, false), ("fork", 1, true)] {
        let s = Held::new();
        let mut add = s.cmd("netns-bridge");
        add.args(["netns", "add", "c1"]);
        harness::kill9(harness::stopped_at(add, call, nth));
        assert_eq!(s.sh("ls /run/netns"), if file_left { "c1\n" } else { "" }, "killed before {call} #{nth}");
        if file_left {
            let rm = s.nb(&["netns", "rm", "c1"]);
            assert!(rm.status.success(), "{}", harness::stderr_of(&rm));
            assert_eq!(s.sh("ls /run/netns"), "");
        }
        assert!(s.nb(&["netns", "add", "c1"]).status.success(), "the name is free again after {call} #{nth}");
    }
}
