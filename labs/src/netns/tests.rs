//! The lab against the recording kernel: the requests an operation makes, and what
//! its rollback removes when one of them fails. No privileges needed: changes are
//! recorded, not made; the namespace used is the test's own (`/proc/self/ns/net`),
//! which anyone may open.

use std::net::Ipv4Addr;
use std::path::Path;

use super::ipam::{NetState, Subnet};
use super::*;
use crate::kernel::{Event, Kind};

const BRIDGE: &str = "cltest0";
const NS: &str = "/proc/self/ns/net";

/// A state root holding one network, `cltest0` on 10.77.0.0/24.
fn lab() -> (tempfile::TempDir, Network, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    let st = NetState {
        name: None,
        bridge: BRIDGE.into(),
        subnet: Subnet::of(Ipv4Addr::new(10, 77, 0, 1), 24),
        gateway: Ipv4Addr::new(10, 77, 0, 1),
        nat: false,
        leases: vec![],
        published: vec![],
        vxlans: vec![],
        ip_range: None,
    };
    let json = serde_json::to_string_pretty(&st).unwrap() + "\n";
    std::fs::write(store.state_path(BRIDGE), &json).unwrap();
    let net = Network::load(&store, BRIDGE).unwrap();
    (dir, net, json)
}

/// The requests that change the system (what a rollback must answer for), as the
/// trace prints them, with the reason given for undo steps.
fn changes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            (matches!(e.kind, Kind::Netlink | Kind::File) || e.call == "unlink")
                && !e.call.starts_with("RTM_GET")
                && !e.call.starts_with("NFT_MSG_GET")
                && e.call != "read"
        })
        .map(|e| {
            let undo =
                e.why.as_deref().filter(|w| w.starts_with("undo")).map(|w| format!("  [{w}]")).unwrap_or_default();
            format!("{}{undo}", e.call_text())
        })
        .collect()
}

fn hv() -> String {
    attach::host_if("c1", "eth0", BRIDGE)
}

/// Every change a successful attach makes, in order.
fn attach_plan() -> Vec<String> {
    let hv = hv();
    vec![
        format!("RTM_NEWLINK {{kind: veth, name: \"{hv}\", peer: \"eth0\", peer_netns: "),
        format!("RTM_NEWLINK {{name: \"{hv}\", flags: IFF_UP, master: \"{BRIDGE}\"}} = 0"),
        "RTM_NEWADDR {dev: \"eth0\", local: 10.77.0.2/24, broadcast: 10.77.0.255} = 0".into(),
        "RTM_NEWLINK {name: \"eth0\", flags: IFF_UP} = 0".into(),
        "RTM_NEWLINK {name: \"lo\", flags: IFF_UP} = 0".into(),
        "RTM_NEWROUTE {dst: default, gateway: 10.77.0.1, table: main} = 0".into(),
        format!("write(\"{{ROOT}}/net/{BRIDGE}.json\""),
        format!("write(\"{{ROOT}}/net/{BRIDGE}.hosts\""),
    ]
}

fn matches_plan(got: &[String], want: &[String], root: &Path) -> bool {
    got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| g.starts_with(&w.replace("{ROOT}", &root.to_string_lossy())))
}

#[test]
fn attach_records_the_netlink_plan_and_returns_the_lease() {
    let (dir, net, _) = lab();
    let k = Kernel::recording(TOOL);
    let lease = attach(&k, &net, Path::new(NS), &AttachSpec::new("c1")).unwrap();
    let got = changes(&k.events());
    assert!(matches_plan(&got, &attach_plan(), dir.path()), "{got:#?}");
    assert_eq!(lease.ip, Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!((lease.prefix, lease.gateway), (24, Ipv4Addr::new(10, 77, 0, 1)));
    assert_eq!(lease.host_veth, hv());
    assert_eq!(lease.hosts_path, Some(net.store.hosts_path(BRIDGE)));
    assert!(k.events().iter().all(|e| e.lab == TOOL), "every request is the lab's");
}

/// Fail each change of an attach in turn: what was made before the failure is undone,
/// and nothing else.
#[test]
fn a_failed_attach_removes_exactly_what_it_made() {
    let hv = hv();
    let del = format!("RTM_DELLINK {{name: \"{hv}\"}} = 0");
    // (request, occurrence, how many changes of the plan were made before it)
    let steps = [
        ("RTM_NEWLINK", 1, 0),
        ("RTM_NEWLINK", 2, 1),
        ("RTM_NEWADDR", 1, 2),
        ("RTM_NEWLINK", 3, 3),
        ("RTM_NEWLINK", 4, 4),
        ("RTM_NEWROUTE", 1, 5),
        ("write", 1, 6),
        ("write", 2, 7),
    ];
    for (call, nth, made) in steps {
        let (dir, net, json) = lab();
        let k = Kernel::recording(TOOL);
        k.inject(call, nth, Errno::EIO);
        let err = attach(&k, &net, Path::new(NS), &AttachSpec::new("c1")).expect_err("the injected failure");
        assert_eq!(err.errno(), Some(Errno::EIO), "{call} #{nth}: {err}");
        let got = changes(&k.events());
        let plan = attach_plan();
        // The made steps, then the failed one...
        assert!(matches_plan(&got[..made], &plan[..made], dir.path()), "{call} #{nth}: {got:#?}");
        assert!(got[made].contains("= -1 EIO "), "{call} #{nth}: {got:#?}");
        // ...then exactly their undo: the state file put back when the hosts file
        // failed, and the veth pair deleted once it exists.
        let mut undo = Vec::new();
        if call == "write" && nth == 2 {
            undo.push(format!("write(\"{}\"", net.store.state_path(BRIDGE).display()));
        }
        if made > 0 {
            undo.push(del.clone());
        }
        let rest = &got[made + 1..];
        assert_eq!(rest.len(), undo.len(), "{call} #{nth}: {got:#?}");
        for (r, u) in rest.iter().zip(&undo) {
            assert!(r.starts_with(u.as_str()) && r.contains("[undo"), "{call} #{nth}: {r} is not {u}");
        }
        // The state on disk is what it was (a dry run writes nothing, and the lease is
        // never recorded before the end).
        assert_eq!(std::fs::read_to_string(net.store.state_path(BRIDGE)).unwrap(), json);
    }
}

#[test]
fn a_second_network_keeps_the_first_default_route() {
    let (_dir, net, _) = lab();
    let k = Kernel::recording(TOOL);
    k.inject("RTM_NEWROUTE", 1, Errno::EEXIST);
    let lease = attach(&k, &net, Path::new(NS), &AttachSpec::new("c1")).expect("EEXIST on the default route is fine");
    assert_eq!(lease.ip, Ipv4Addr::new(10, 77, 0, 2));
    let notes: Vec<String> = k.events().iter().filter(|e| e.kind == Kind::Note).map(|e| e.call_text()).collect();
    assert!(notes.iter().any(|n| n.contains("already has a default route")), "{notes:?}");
    assert!(!changes(&k.events()).iter().any(|c| c.starts_with("RTM_DELLINK")));
}

#[test]
fn attach_without_the_hosts_file_is_left_out_of_it() {
    let (_dir, net, _) = lab();
    let k = Kernel::recording(TOOL);
    let spec = AttachSpec { hostname: Some("web".into()), hosts: false, ..AttachSpec::new("c1") };
    let lease = attach(&k, &net, Path::new(NS), &spec).unwrap();
    assert_eq!(lease.hosts_path, None);
    let hosts = k.events().into_iter().find(|e| e.call == "write" && e.args[0].ends_with(".hosts\"")).unwrap();
    assert!(!hosts.args[1].contains("web"), "{:?}", hosts.args);
}

#[test]
fn bridge_create_undoes_itself_at_every_step() {
    // (request, occurrence, changes made before it, their undo)
    let del = "RTM_DELLINK {name: \"clnew0\"} = 0";
    let steps: [(&str, u64, usize, &[&str]); 5] = [
        ("RTM_NEWLINK", 1, 0, &[]),
        ("RTM_NEWADDR", 1, 1, &[del]),
        ("RTM_NEWLINK", 2, 2, &[del]),
        ("write", 1, 3, &[del]),
        ("write", 2, 4, &["unlink(", del]),
    ];
    for (call, nth, made, undo) in steps {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let k = Kernel::recording(TOOL);
        k.inject(call, nth, Errno::ENOSPC);
        let spec = NetworkSpec::bridge("clnew0", Ipv4Addr::new(10, 78, 0, 1), 24);
        let err = Network::create(&k, &store, &spec).expect_err("the injected failure");
        assert_eq!(err.errno(), Some(Errno::ENOSPC), "{call} #{nth}: {err}");
        let got = changes(&k.events());
        assert!(got[made].contains("= -1 ENOSPC"), "{call} #{nth}: {got:#?}");
        let rest = &got[made + 1..];
        assert_eq!(rest.len(), undo.len(), "{call} #{nth}: {got:#?}");
        for (r, u) in rest.iter().zip(undo) {
            assert!(r.starts_with(u) && r.contains("[undo"), "{call} #{nth}: {r} is not {u}");
        }
    }
}

#[test]
fn nat_removes_its_rules_when_the_state_cannot_be_saved() {
    let (_dir, net, _) = lab();
    let k = Kernel::recording(TOOL);
    k.inject("write", 2, Errno::EIO); // ip_forward is write #1, the state file #2
    assert_eq!(nat(&k, &net, true).unwrap_err().errno(), Some(Errno::EIO));
    let undo = k.events().into_iter().find(|e| e.why.as_deref() == Some("undo: the state could not be saved"));
    assert_eq!(undo.map(|e| e.call), Some("NFT_MSG_GETRULE".to_string()), "the undo looks its rules up to delete them");
}

#[test]
fn ensure_returns_the_network_makes_a_missing_one_and_refuses_another_subnet() {
    let (dir, net, _) = lab();
    let store = Store::new(dir.path());
    let k = Kernel::recording(TOOL);
    let same = NetworkSpec::bridge(BRIDGE, Ipv4Addr::new(10, 77, 0, 1), 24);
    // Remembered, but its bridge is not on this machine (no cltest0 here): made again.
    assert_eq!(Network::ensure(&k, &store, &same).unwrap(), net);
    let made = changes(&k.events());
    assert!(made[0].starts_with(&format!("RTM_NEWLINK {{kind: bridge, name: \"{BRIDGE}\"")), "{made:#?}");
    assert!(!made.iter().any(|c| c.starts_with("write(")), "the state file is not rewritten: {made:#?}");
    let other = NetworkSpec::bridge(BRIDGE, Ipv4Addr::new(10, 79, 0, 1), 24);
    let e = Network::ensure(&k, &store, &other).unwrap_err();
    assert!(e.to_string().contains("exists with bridge cltest0 and 10.77.0.0/24"), "{e}");
    let named = NetworkSpec {
        name: "bridge".into(),
        bridge: "clbr1".into(),
        gateway: Ipv4Addr::new(10, 80, 0, 1),
        prefix: 16,
        ip_range: None,
    };
    let k = Kernel::recording(TOOL);
    let n = Network::ensure(&k, &store, &named).unwrap();
    assert_eq!((n.name.as_str(), n.bridge.as_str()), ("bridge", "clbr1"));
    let w = k.events().into_iter().find(|e| e.call == "write").unwrap();
    assert!(
        w.args[0].ends_with("net/bridge.json\""),
        "a network's state file is named after the network: {:?}",
        w.args
    );
}

#[test]
fn names() {
    assert!(check_ifname("bridge", "br0").is_ok());
    assert!(matches!(check_ifname("bridge", "a-very-long-name"), Err(Error::Usage(_))));
    assert!(attach::host_if("c1", "eth0", "br0").len() <= 15);
}

#[test]
fn dry_run_bridge_create_records_the_netlink_plan() {
    let k = Kernel::recording("netns-bridge");
    k.link_add_bridge(None, "br0").unwrap();
    k.addr_add(None, 0, "br0", "10.200.0.1".parse().unwrap(), 24).unwrap();
    let calls: Vec<String> = k.events().iter().map(|e| e.call_text()).collect();
    assert!(
        calls.contains(&"RTM_NEWLINK {kind: bridge, name: \"br0\", flags: NLM_F_CREATE|NLM_F_EXCL} = 0".to_string()),
        "{calls:?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("RTM_NEWADDR {dev: \"br0\", local: 10.200.0.1/24")), "{calls:?}");
}
