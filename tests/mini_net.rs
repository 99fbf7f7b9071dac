//! mini's networks (issue 13): the course's network exercises (NET-*), each in a fresh
//! network namespace, with docker's behaviour and messages; a dockerd in the sandbox
//! for the messages and formats compared line by line.

use crate::harness::{require, Tier};
use crate::mini::{ok, sandbox, section, DOCKERD};

/// The host's /etc/resolv.conf, fixed for the test (the sandbox's mount namespace is
/// private): what a container's is made from must not be this machine's.
const RESOLV: &str = "printf 'nameserver 192.0.2.53\\nsearch host.example\\n' > \"$T/resolv.conf\"; mount --bind \"$T/resolv.conf\" /etc/resolv.conf\n";

/// An "outside" machine: a namespace `outside` joined to the sandbox (the host) by a
/// veth pair, 192.0.2.1 on the host's side and 192.0.2.2 on its own, and a default
/// route back; `get NS HOST PORT` fetches `/` with the host's wget from a namespace,
/// `get -c CTR HOST PORT` with busybox's nc from a container.
const OUTSIDE: &str = r#"
ip netns add outside
ip link add out0 type veth peer name eth0 netns outside
ip addr add 192.0.2.1/24 dev out0; ip link set out0 up
ip -n outside addr add 192.0.2.2/24 dev eth0; ip -n outside link set eth0 up; ip -n outside link set lo up
ip -n outside route add default via 192.0.2.1
get() { if [ "$1" = -c ]; then shift; printf 'GET / HTTP/1.0\r\n\r\n' | m exec -i "$1" nc -w 2 "$2" "$3" 2>&1 | tail -1
        else ip netns exec "$1" wget -qO- -T 2 "http://$2:$3/"; fi; }
web() { n=$1; shift; m run -d --name "$n" "$@" test/alpine sh -c "mkdir /www; echo hello from \$HOSTNAME > /www/index.html; exec httpd -f -p 80 -h /www" >/dev/null
  until m exec "$n" netstat -ltn | grep -q ':80 '; do sleep 0.05; done; }
"#;

#[test]
fn user_networks_resolve_names_and_the_default_bridge_does_not() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{RESOLV}{}",
        r#"
echo "== ls"; m network create mynet >/dev/null; m network create --driver=bridge --subnet=192.168.0.0/24 monreseau0 >/dev/null
m network ls --format '{{.Name}} {{.Driver}} {{.Scope}}'
echo "== inspect"; m network inspect --format '{{json .IPAM.Config}} {{.Driver}} {{.Internal}}' monreseau0
m network inspect --format '{{index .Options "com.docker.network.bridge.name"}}' bridge
m network inspect --format '{{json .Options}}' mynet
echo "== by-name"; m run -d --name c1 --network monreseau0 test/alpine sleep 300 >/dev/null
m run -d --name c2 --network monreseau0 --network-alias two test/alpine sleep 300 >/dev/null
m exec c2 ping -c1 -W1 c1 | head -1; m exec c1 ping -c1 -W1 two | head -1; m exec c1 nslookup c2 127.0.0.11 | grep -A1 '^Name'
m exec c1 cat /etc/resolv.conf
echo "== default-bridge"; m run -d --name c3 test/alpine sleep 300 >/dev/null; m run -d --name c4 test/alpine sleep 300 >/dev/null
m exec c4 ping -c1 -W1 c3 2>&1; echo "code $?"
ip4=$(m inspect --format '{{.NetworkSettings.IPAddress}}' c3); m exec c4 ping -c1 -W1 $ip4 >/dev/null && echo "by address: ok"
m exec c4 grep -c nameserver.127.0.0.11 /etc/resolv.conf
echo "== ifconfig"; m exec c1 ip -4 -o addr show eth0 | awk '{print $4}'; m exec c3 ip -4 -o addr show eth0 | awk '{print $4}'
m run --rm --network none test/alpine ip -o link | cut -d: -f2
m run --rm --network mynet test/alpine ip -4 -o addr show eth0 | awk '{print $4}'
echo "== live"; m rm -f c2 >/dev/null; m exec c1 ping -c1 -W1 c2 2>&1 | head -1
m run -d --name c2 --network monreseau0 test/alpine sleep 300 >/dev/null; m exec c1 ping -c1 -W1 c2 | head -1
echo "== veth"; inside=$(m exec c1 cat /sys/class/net/eth0/address); seen=$(m inspect --format '{{.NetworkSettings.Networks.monreseau0.MacAddress}}' c1)
[ "$inside" = "$seen" ] && echo "inspect shows the container end"
br=br-$(m network inspect --format '{{.Id}}' monreseau0 | cut -c1-12)
ip -o link show master $br | grep -c veth
for v in $(ip -o link show master $br | awk -F'[:@ ]+' '{print $2}'); do [ "$(cat /sys/class/net/$v/address)" != "$inside" ] || echo same; done; echo "host ends differ"
echo "== named-bridge"; m network create -o com.docker.network.bridge.name=titi titi >/dev/null; ip -o link show titi | cut -d: -f2
m network inspect --format '{{json .Options}}' titi
echo "== script"; m run --script --network mynet test/alpine ip -4 -o addr show eth0 > "$T/s.sh"
sh "$T/s.sh" 2>/dev/null | awk '/eth0/ {print $4}' | cut -d. -f1-3; grep -c 'attach --netns "$id" --bridge br-' "$T/s.sh"
"#
    ));
    assert_eq!(
        section(&out, "ls"),
        "bridge bridge local\nhost host local\nmonreseau0 bridge local\nmynet bridge local\nnone null local\n"
    );
    assert_eq!(section(&out, "inspect"), "[{\"Subnet\":\"192.168.0.0/24\"}] bridge false\nmini0\n{}\n");
    let by_name = section(&out, "by-name");
    assert!(
        by_name.starts_with("PING c1 (192.168.0.2): 56 data bytes\nPING two (192.168.0.3): 56 data bytes\n"),
        "{by_name}"
    );
    assert!(by_name.contains("Name:\tc2\nAddress: 192.168.0.3\n"), "{by_name}");
    assert!(by_name.ends_with("\nsearch host.example\nnameserver 127.0.0.11\noptions ndots:0\n"), "{by_name}");
    assert_eq!(
        section(&out, "default-bridge"),
        "ping: bad address 'c3'\ncode 1\nby address: ok\n0\n",
        "no names on the default bridge, as docker's"
    );
    let ifc = section(&out, "ifconfig");
    let lines: Vec<&str> = ifc.lines().collect();
    assert_eq!(lines[0], "192.168.0.2/24");
    assert!(lines[1].starts_with("10.87.0.") && lines[1].ends_with("/16"), "{ifc}");
    assert_eq!(lines[2], " lo", "none: lo only");
    assert!(lines[3].starts_with("10.100.0.") && lines[3].ends_with("/24"), "mynet's subnet from the pool: {ifc}");
    assert_eq!(
        section(&out, "live"),
        "ping: bad address 'c2'\nPING c2 (192.168.0.3): 56 data bytes\n",
        "names follow containers leaving and joining"
    );
    assert_eq!(section(&out, "veth"), "inspect shows the container end\n2\nhost ends differ\n");
    assert_eq!(section(&out, "script"), "10.100.0\n1\n", "--script plugs the namespace into the network's bridge");
    let named = section(&out, "named-bridge");
    assert!(named.starts_with(" titi\n") && named.contains("\"com.docker.network.bridge.name\":\"titi\""), "{named}");
}

#[test]
fn published_ports_expose_random_ports_hairpin_and_conflicts() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{RESOLV}{OUTSIDE}{}",
        r#"
m network create web >/dev/null
echo "== publish"; web ws --network web -p 8080:80 --hostname ws
get outside 192.0.2.1 8080; wget -qO- http://127.0.0.1:8080/
m run -d --name cl --network web test/alpine sleep 300 >/dev/null
gw=$(m inspect --format '{{.NetworkSettings.Networks.web.Gateway}}' ws)
get -c cl $gw 8080; get -c ws $gw 8080; get -c cl ws 80
echo "== expose"; web ex --expose 80 --hostname ex; m port ex; echo "code $?"
m inspect --format '{{json .NetworkSettings.Ports}}' ex
echo "== random"; busybox nc -l -p 32768 >/dev/null & L=$!; until cat /proc/net/tcp /proc/net/tcp6 | grep -q ':8000 '; do sleep 0.05; done
web rp -P --expose 80 --expose 9000/udp --hostname rp
m port rp; m port rp 80; get outside 192.0.2.1 $(m port rp 80 | cut -d: -f2)
m ps --filter name=rp --format '{{.Ports}}'
m run -d --name rq -p 127.0.0.1::80 test/alpine sleep 300 >/dev/null; m port rq; kill $L
echo "== conflict"; m run -d --name w2 -p 8080:80 test/alpine sleep 300 >/dev/null 2>"$T/e"; echo "code $?"; grep -o ': Bind for.*' "$T/e"
m ps -a --filter name=w2 --format '{{.Status}}'
echo "== released"; m stop -t 0 ws >/dev/null; nft list table ip contlab | grep -c 'dport 8080' ; m port ws; m start w2 >/dev/null; m port w2
echo "== isolated"; web other --hostname other; m network create second >/dev/null; m run -d --name sc --network second test/alpine sleep 300 >/dev/null
o=$(m inspect --format '{{.NetworkSettings.IPAddress}}' other); get -c sc $o 80; m exec sc ping -c1 -W1 192.0.2.2 | grep -c '1 packets received'
echo "== internal"; m network create --internal lab >/dev/null; m run -d --name in1 --network lab test/alpine sleep 300 >/dev/null
m run -d --name in2 --network lab test/alpine sleep 300 >/dev/null
m exec in1 ping -c1 -W1 192.0.2.2 >/dev/null 2>&1; echo "outside: $?"; m exec in1 ping -c1 -W1 in2 | grep -c '1 packets received'
"#
    ));
    assert_eq!(
        section(&out, "publish"),
        "hello from ws\nhello from ws\nhello from ws\nhello from ws\nhello from ws\n",
        "from outside, from localhost, from the network through the host (hairpin), from itself, by name"
    );
    assert_eq!(section(&out, "expose"), "code 0\n{\"80/tcp\":null}\n", "--expose publishes nothing");
    assert_eq!(
        section(&out, "random"),
        "80/tcp -> 0.0.0.0:32769\n9000/udp -> 0.0.0.0:32768\n0.0.0.0:32769\nhello from rp\n\
         0.0.0.0:32769->80/tcp, 0.0.0.0:32768->9000/udp\n80/tcp -> 127.0.0.1:32770\n",
        "the first free port of the ephemeral range, per protocol (32768/tcp: a host process listens on it)"
    );
    assert_eq!(
        section(&out, "conflict"),
        "code 125\n: Bind for 0.0.0.0:8080 failed: port is already allocated\nCreated\n",
        "docker's port allocator's words, exit 125, the container left created"
    );
    assert_eq!(
        section(&out, "released"),
        "0\n80/tcp -> 0.0.0.0:8080\n",
        "stop releases the port, the next one takes it"
    );
    assert_eq!(section(&out, "isolated"), "nc: timed out\n1\n", "no way between networks; out, masqueraded");
    assert_eq!(section(&out, "internal"), "outside: 1\n1\n", "--internal: no way out, the network inside works");
}

#[test]
fn connect_disconnect_host_none_container_and_the_etc_files() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(&format!(
        "{RESOLV}{}",
        r#"
m network create --subnet 192.168.0.0/24 monreseau0 >/dev/null
m run -d --name c1 --network monreseau0 test/alpine sleep 300 >/dev/null; m run -d --name c2 test/alpine sleep 300 >/dev/null
echo "== connect"; m exec c2 ping -c1 -W1 c1 2>&1 | head -1
m network connect --alias deux monreseau0 c2; m exec c2 ip -o link | grep -c 'eth[01]@'
m exec c2 ping -c1 -W1 c1 | head -1; m exec c1 ping -c1 -W1 deux | head -1
m inspect --format '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}' c2 | sed 's/10\.87\.0\.[0-9]*/10.87.0.X/'
m network inspect --format '{{range .Containers}}{{.Name}} {{.IPv4Address}};{{end}}' monreseau0 | tr ';' '\n' | grep . | sort
m network connect monreseau0 c2 2>&1 | grep -o 'endpoint with name.*' 
echo "== disconnect"; m network disconnect monreseau0 c2; m exec c2 ip -o link | grep -c 'eth[01]@'; m exec c1 ping -c1 -W1 deux 2>&1 | head -1
echo "== stop-start"; m network connect monreseau0 c2; m stop -t 0 c2 >/dev/null; m inspect --format '{{.NetworkSettings.Networks.monreseau0.IPAddress}}.' c2
m start c2 >/dev/null; m exec c2 ip -o link | grep -c 'eth[01]@'; m exec c1 ping -c1 -W1 c2 | grep -c '1 packets received'
echo "== ip"; m run -d --name f1 --network monreseau0 --ip 192.168.0.50 test/alpine sleep 300 >/dev/null
m exec f1 ip -4 -o addr show eth0 | awk '{print $4}'; m stop -t 0 f1 >/dev/null; m start f1 >/dev/null; m inspect --format '{{.NetworkSettings.Networks.monreseau0.IPAddress}}' f1
echo "== host"; m run -d --name h1 --network host test/alpine sleep 300 >/dev/null
m inspect --format '[{{.NetworkSettings.IPAddress}}] {{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' h1
[ "$(m exec h1 ip -o link | cut -d: -f2 | cut -d@ -f1)" = "$(ip -o link | cut -d: -f2 | cut -d@ -f1)" ] && echo "same interfaces"
m network inspect --format '{{range .Containers}}{{.Name}}{{end}}' host
echo "== container"; m run -d --name j1 --network container:c1 test/alpine sleep 300 >/dev/null
[ "$(m exec j1 ip -4 -o addr show eth0 | awk '{print $4}')" = "$(m exec c1 ip -4 -o addr show eth0 | awk '{print $4}')" ] && echo "same address"
[ "$(m exec j1 hostname)" = "$(m exec c1 hostname)" ] && echo "same hostname"
m exec j1 ping -c1 -W1 c2 | grep -c '1 packets received'
echo "== hosts"; m run -d --name db test/alpine sleep 300 >/dev/null
m run --rm --link db:mongo --add-host gw:host-gateway --add-host box:10.1.2.3 --dns-search lab.example --dns-option ndots:3 --dns 9.9.9.9 test/alpine sh -c 'grep -v -e localhost -e ip6 /etc/hosts | head -3; cat /etc/resolv.conf' \
  | sed "s/$(m inspect --format '{{.Id}}' db | cut -c1-12)/DBID/; s/10\.87\.0\.[0-9]*/10.87.0.X/g"
"#
    ));
    assert_eq!(
        section(&out, "connect"),
        "ping: bad address 'c1'\n2\nPING c1 (192.168.0.2): 56 data bytes\nPING deux (192.168.0.3): 56 data bytes\n\
         bridge=10.87.0.X monreseau0=192.168.0.3 \nc1 192.168.0.2/24\nc2 192.168.0.3/24\nendpoint with name c2 already exists in network monreseau0\n",
        "NET-11: a new interface per network, the first stays; names at once"
    );
    assert_eq!(section(&out, "disconnect"), "1\nping: bad address 'deux'\n");
    assert_eq!(section(&out, "stop-start"), ".\n2\n1\n", "the address is released at stop, attached again at start");
    assert_eq!(section(&out, "ip"), "192.168.0.50/24\n192.168.0.50\n", "--ip is kept across stop and start");
    assert_eq!(section(&out, "host"), "[] host host\nsame interfaces\nh1\n", "network inspect host lists it");
    assert_eq!(section(&out, "container"), "same address\nsame hostname\n1\n");
    assert_eq!(
        section(&out, "hosts"),
        "10.87.0.X\tgw\n10.1.2.3\tbox\n10.87.0.X\tmongo DBID db\nsearch lab.example\nnameserver 9.9.9.9\noptions ndots:3\n",
        "--add-host, --link (docker's line), --dns-search, --dns-option, --dns"
    );
}

#[test]
fn the_default_bridge_and_the_pools_come_from_the_settings() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
echo '{"bip": "10.10.0.1/16", "bridge": "docker0", "default-address-pools": [{"base": "10.200.0.0/16", "size": 28}]}' > "$T/mini.json"
export CONTLAB_MINI_CONFIG="$T/mini.json"
echo "== bip"; m run -d --name c1 test/alpine sleep 300 >/dev/null; ip -4 -o addr show docker0 | awk '{print $4}'
m inspect --format '{{.NetworkSettings.IPAddress}} {{.NetworkSettings.Gateway}}' c1
echo "== pools"; ip route add 10.200.0.0/28 dev lo; m network create p1 >/dev/null; m network create p2 >/dev/null
m network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' p1 p2
"#);
    assert_eq!(section(&out, "bip"), "10.10.0.1/16\n10.10.0.2 10.10.0.1\n", "NET-15: docker0 re-addressed");
    assert_eq!(section(&out, "pools"), "10.200.0.16/28\n10.200.0.32/28\n", "a subnet a route uses is skipped");
}

#[test]
fn bad_network_input_gets_dockers_messages() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(
        r#"
e() { echo "== $1"; shift; "$@" >"$T/o" 2>&1; c=$?; grep -v '^  hint' "$T/o"; echo "code $c"; }
m network create --subnet 192.168.0.0/24 n1 >/dev/null
e overlap m network create --subnet 192.168.0.128/25 n2
e exists m network create n1
e unknown-run m run --rm --network nope test/alpine true
e unknown-rm m network rm nope
e unknown-inspect m network inspect nope
m run -d --name c1 --network n1 test/alpine sleep 300 >/dev/null
e in-use m network rm n1
e outside m run --rm --network n1 --ip 10.0.0.5 test/alpine true
e taken m run --rm --network n1 --ip "$(m inspect --format '{{.NetworkSettings.Networks.n1.IPAddress}}' c1)" test/alpine true
e default-ip m run --rm --ip 10.87.0.9 test/alpine true
e bad-p m run --rm -p 80:abc test/alpine true
e bad-proto m run --rm -p 80/sctpx test/alpine true
e builtin m network rm bridge
e alias m run --rm --network-alias x test/alpine true
"#,
    );
    let out = r.out;
    let s = |k| section(&out, k).trim_end().to_string();
    assert_eq!(
        s("overlap"),
        "mini: Error response from daemon: Pool overlaps with other one on this address space\ncode 1"
    );
    assert_eq!(s("exists"), "mini: Error response from daemon: network with name n1 already exists\ncode 1");
    assert_eq!(s("unknown-run"), "mini: Error response from daemon: network nope not found\ncode 125");
    assert_eq!(s("unknown-rm"), "Error: No such network: nope\ncode 1", "docker's client's words");
    let inspect = s("unknown-inspect");
    assert!(
        inspect.contains("[]\n") && inspect.contains("Error: No such network: nope\n") && inspect.ends_with("code 1"),
        "{inspect}"
    );
    assert!(
        s("in-use").contains("error while removing network: network n1 id ")
            && s("in-use").contains(" has active endpoints\ncode 1")
    );
    assert_eq!(s("outside"), "mini: Error response from daemon: Invalid address 10.0.0.5: It does not belong to any of this network's subnets\ncode 125");
    assert_eq!(s("taken"), "mini: Error response from daemon: Address already in use\ncode 125");
    assert_eq!(s("default-ip"), "mini: Error response from daemon: user specified IP address is supported only when connecting to networks with user configured subnets\ncode 125");
    assert_eq!(s("bad-p"), "mini: Invalid containerPort: abc\ncode 125");
    assert_eq!(s("bad-proto"), "mini: Invalid proto: sctpx\ncode 125");
    assert_eq!(
        s("builtin"),
        "Error response from daemon: bridge is a pre-defined network and cannot be removed\ncode 1"
    );
    assert_eq!(s("alias"), "mini: Error response from daemon: network-scoped alias is supported only for containers in user defined networks\ncode 125");
}

#[test]
fn kill_9_mid_attach_leaves_what_rm_f_and_network_rm_remove_and_fifty_containers_share_a_network() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m network create big >/dev/null
echo "== kill"; (mini --trace=json run -d --name k1 --network big -p 7000:80 test/alpine sleep 300 2>"$T/k1.trace" >/dev/null &
  until grep -q RTM_NEWADDR "$T/k1.trace" 2>/dev/null; do sleep 0.01; done; pkill -9 -f "name k1"); wait
m rm -f k1 >/dev/null; ip -o link | grep -c veth; nft list table ip contlab | grep -c 7000; m network rm big
m network create big >/dev/null
echo "== fifty"; i=0; while [ $i -lt 50 ]; do m run -d --name n$i --network big test/alpine sleep 300 >/dev/null || echo "run $i failed"; i=$((i+1)); done
m network inspect --format '{{len .Containers}}' big; m exec n0 ping -c1 -W1 n49 | grep -c '1 packets received'
m rm -f $(m ps -aq) >/dev/null; ip -o link | grep -c veth; m network rm big; ip -o link | grep -c br-; true
"#);
    assert_eq!(section(&out, "kill"), "0\n0\nbig\n", "nothing left after rm -f: no veth, no rule; the network goes");
    assert_eq!(section(&out, "fifty"), "50\n1\n0\nbig\n0\n");
}

#[test]
fn dockers_network_commands_say_the_same() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(&format!(
        "{DOCKERD}{}",
        r#"
for t in docker m; do
  echo "== $t"
  $t network create --subnet 192.168.7.0/24 -o com.docker.network.bridge.name=cmp$t --label a=b cmp >/dev/null
  $t network create --subnet 192.168.7.128/25 other 2>&1 | grep -o 'Pool overlaps.*'
  $t network create cmp 2>&1 | grep -o 'network with name.*'
  $t network inspect --format '{{json .IPAM.Config}} {{.Scope}} {{.Driver}} {{.Internal}} {{.EnableIPv6}} {{.Attachable}} {{json .Labels}} {{json .Containers}}' cmp
  $t network ls --filter name=cmp --format '{{.Name}} {{.Driver}} {{.Scope}}'
  $t network ls --filter label=a=b -q | wc -c
  $t network inspect none --format '{{.Driver}} {{.Scope}}'; $t network inspect host --format '{{.Driver}} {{.Scope}}'
  $t network rm nope 2>&1; $t network rm host 2>&1 | grep -o 'host is a.*'
  $t network rm cmp
done
kill "$(cat "$T/docker.pid")"; wait
"#
    ));
    let docker = section(&r.out, "docker").replace("mini: ", "").replace("docker: ", "");
    let mini = section(&r.out, "m").replace("mini: ", "").replace("  hint: see `mini network ls`\n", "");
    assert_eq!(mini, docker, "stderr:\n{}", r.err);
}

#[test]
fn an_overlay_network_spans_two_hosts_with_one_address_pool_and_names() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
# Two hosts: network namespaces joined by a cable (the underlay), each with its own
# mini store, run directory and settings; they share only the cluster store.
ip netns add hosta; ip netns add hostb
ip link add u0 netns hosta type veth peer name u0 netns hostb
for h in a b; do ip -n host$h link set lo up; ip -n host$h link set u0 up; done
ip -n hosta addr add 192.0.2.1/24 dev u0; ip -n hostb addr add 192.0.2.2/24 dev u0
for h in a b; do
  printf '{"bridge": "mini0", "cluster-store": "%s", "cluster-advertise": "u0"}' "$T/cluster" > "$T/$h.json"
done
on() { h=$1; shift; CONTLAB_ROOT="$T/$h-store" CONTLAB_RUN_DIR="$T/$h-run" CONTLAB_MINI_CONFIG="$T/$h.json" \
  nsenter --net=/run/netns/host$h mini -q "$@"; }
for h in a b; do m save test/alpine | on $h load -q >/dev/null; done
echo "== create"; on a network create --driver overlay --subnet 10.99.0.0/24 ov >/dev/null
on a network ls --filter driver=overlay --format '{{.Name}} {{.Driver}} {{.Scope}}'
on b network ls --filter driver=overlay --format '{{.Name}} {{.Driver}} {{.Scope}}'
echo "== run"; on a run -d --name c1 --network ov test/alpine sleep 300 >/dev/null
on b run -d --name c2 --network ov test/alpine sleep 300 >/dev/null
on a exec c1 ip -4 -o addr show eth0 | awk '{print $4}'; on b exec c2 ip -4 -o addr show eth0 | awk '{print $4}'
echo "== ping"; on b exec c2 ping -c1 -W2 c1 | sed -n '1p;/packets/p'; on a exec c1 ping -c1 -W2 c2 | sed -n '1p;/packets/p'
ip -n hostb -o -d link | grep -o 'vxlan id [0-9]* group 239.1.1.1 dev u0' | sed 's/id [0-9]*/id N/'
echo "== rm"; on a network rm ov 2>&1 | grep -o 'has active endpoints'
on a rm -f c1 >/dev/null; on b rm -f c2 >/dev/null
on a network rm ov; on b network rm ov; ip -n hosta -o link | grep -c -e vxlan -e br-; ip -n hostb -o link | grep -c -e vxlan -e br-; true
echo "== none"; m network create --driver overlay nope 2>&1 | grep -o 'not a swarm manager'
"#);
    assert_eq!(section(&out, "create"), "ov overlay global\nov overlay global\n", "the other host sees it");
    assert_eq!(section(&out, "run"), "10.99.0.2/24\n10.99.0.3/24\n", "one address pool for the two hosts");
    assert_eq!(
        section(&out, "ping"),
        "PING c1 (10.99.0.2): 56 data bytes\n1 packets transmitted, 1 packets received, 0% packet loss\n\
         PING c2 (10.99.0.3): 56 data bytes\n1 packets transmitted, 1 packets received, 0% packet loss\n\
         vxlan id N group 239.1.1.1 dev u0\n",
        "by name across the hosts, through the VXLAN tunnel"
    );
    assert_eq!(section(&out, "rm"), "has active endpoints\nov\nov\n0\n0\n", "each host's part goes with its rm");
    assert_eq!(section(&out, "none"), "not a swarm manager\n", "no cluster store: docker's words");
}
