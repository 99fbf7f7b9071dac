//! Attach a namespace to a network (a veth pair, an address, routes), and detach it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel, Mode};

use super::ipam::{self, Host, NetState};
use super::model::LinkChange;
use super::network::Network;
use super::state::{Locked, Store};
use super::{check_ifname, index_of, named, TOOL};

/// How to attach a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachSpec {
    /// Who is attached, as the caller names it (a container id; netns-bridge uses the
    /// namespace's name, or `pid:PID`). With `ifname`, it names the attachment.
    pub key: String,
    /// The interface inside (`eth0`).
    pub ifname: String,
    /// The address; None: the first free one.
    pub ip: Option<Ipv4Addr>,
    /// The MAC address inside; None: the kernel picks a random one.
    pub mac: Option<[u8; 6]>,
    /// The name the other hosts of the network resolve.
    pub hostname: Option<String>,
    /// Whether `hostname` is listed in the network's hosts file (and the lease names
    /// that file). Docker's default bridge has no name resolution: attach with `false`
    /// to behave as it does.
    pub hosts: bool,
    /// More names on the network (docker's `--network-alias`), listed with `hostname`.
    pub aliases: Vec<String>,
    /// Put the host end in hairpin mode (see [`Kernel::link_set_hairpin`]), so the
    /// namespace reaches itself through a port published to it.
    pub hairpin: bool,
}

impl AttachSpec {
    /// `key` on `eth0`, the first free address, a random MAC, no name, hosts file on.
    pub fn new(key: &str) -> AttachSpec {
        AttachSpec {
            key: key.into(),
            ifname: "eth0".into(),
            ip: None,
            mac: None,
            hostname: None,
            hosts: true,
            aliases: vec![],
            hairpin: false,
        }
    }
}

/// What an attach gave: the namespace's address on the network and the names of the
/// interfaces. [`detach`] undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The address inside.
    pub ip: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The default route's next hop (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The MAC address inside, when known (the one asked for, or read back from the
    /// kernel after a live attach).
    pub mac: Option<[u8; 6]>,
    /// The host end of the veth pair, a port of the bridge.
    pub host_veth: String,
    /// The interface inside.
    pub ifname: String,
    /// The network's hosts file, when the attach asked to be listed in it.
    pub hosts_path: Option<PathBuf>,
    /// The network's name.
    pub network: String,
}

impl Lease {
    fn of(h: &Host, net: &NetState, store: &Store, mac: Option<[u8; 6]>) -> Lease {
        Lease {
            ip: h.ip,
            prefix: net.subnet.len,
            gateway: net.gateway,
            mac,
            host_veth: h.host_if.clone(),
            ifname: h.ifname.clone(),
            hosts_path: h.hosts.then(|| store.hosts_path(net.name())),
            network: net.name().to_string(),
        }
    }
}

/// The host end's name: `veth` and a hash of bridge, key and interface, so that it
/// fits in 15 bytes and [`detach`] finds it again without any record.
pub(crate) fn host_if(key: &str, ifname: &str, bridge: &str) -> String {
    format!("veth{}", ipam::short_hash(&format!("{bridge}/{key}/{ifname}")))
}

/// A MAC address `aa:bb:cc:dd:ee:ff` as its six bytes.
pub fn mac_bytes(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s.split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    <[u8; 6]>::try_from(v).ok()
}

/// Attach the network namespace at `netns` (`/run/netns/NAME`, `/proc/PID/ns/net`) to
/// `net`, as `spec` says:
///
/// 1. `RTM_NEWLINK {kind: veth}`: the pair, its peer created directly inside the
///    namespace (`IFLA_NET_NS_FD`) as `spec.ifname`;
/// 2. `RTM_NEWLINK {master, IFF_UP}`: the host end plugged into the bridge;
/// 3. inside (a socket opened there by `setns(2)`): `RTM_NEWADDR`, the interface and
///    `lo` up, `RTM_NEWROUTE` default via the gateway (a namespace on a second network
///    keeps its first default route);
/// 4. the lease in the network's state and hosts files.
///
/// A failure at any step deletes the host end, which deletes both ends (and the
/// address and routes on the inside end); the lease is written only once everything
/// worked. `lo` stays up: bringing up a namespace's loopback undoes nothing of the
/// caller's. An attach killed half-way leaves at most the veth pair, which [`detach`]
/// (or removing the namespace) deletes.
pub fn attach(k: &Kernel, net: &Network, netns: &Path, spec: &AttachSpec) -> Result<Lease> {
    let _s = k.scope(TOOL);
    check_ifname("interface", &spec.ifname)?;
    let mut st = net.store.lock(k)?;
    let cur = st.get(&net.name)?;
    let ip = match spec.ip {
        None => cur.allocate().ok_or_else(|| {
            Error::failed(
                format!(
                    "no free address left in {} (network {:?}, {} hosts attached)",
                    cur.subnet,
                    cur.name(),
                    cur.leases.len()
                ),
                "detach a namespace, or create a network with a larger subnet",
            )
        })?,
        Some(ip) => {
            if !cur.subnet.is_host(ip) || ip == cur.gateway {
                return Err(Error::Usage(format!(
                    "address {ip}/{} is not a free host address of the network {:?} ({}, gateway {})",
                    cur.subnet.len,
                    cur.name(),
                    cur.subnet,
                    cur.gateway
                )));
            }
            if let Some(l) = cur.leases.iter().find(|l| l.ip == ip) {
                return Err(Error::failed(
                    format!("address {ip} is taken by {}", l.netns),
                    "pick another, or use --ip auto",
                ));
            }
            ip
        }
    };
    if cur.leases.iter().any(|l| l.netns == spec.key && l.ifname == spec.ifname) {
        return Err(Error::failed(
            format!("{} is already attached to {} as {}", spec.key, cur.name(), spec.ifname),
            "detach it first, or give another --ifname".to_string(),
        ));
    }
    if let (Some(h), true) = (&spec.hostname, spec.hosts) {
        if let Some(l) = cur.leases.iter().find(|l| l.hosts && l.hostname.as_deref() == Some(h)) {
            return Err(Error::failed(
                format!("the name {h:?} is already used on {} by {}", cur.name(), l.netns),
                "give another --name",
            ));
        }
    }
    k.netns_open(netns).map_err(|e| named::missing(e.into(), netns))?;
    let br = index_of(k, None, &cur.bridge)?;
    let hv = host_if(&spec.key, &spec.ifname, &cur.bridge);
    k.why("a virtual cable: one end created inside the namespace, the other on the host")
        .link_add_veth(None, &hv, &spec.ifname, netns, spec.mac)
        .hint(
            Errno::EEXIST,
            &format!("an interface named {} or {hv} exists already: pick another --ifname", spec.ifname),
        )?;
    let undo = |k: &Kernel, why: &str| {
        if k.why(why).link_del(None, &hv).is_err() {
            k.note(format!("leftover: remove it with `ip link del {hv}`"));
        }
    };
    let mac = match configure(k, cur, &hv, br, netns, &spec.ifname, ip).and_then(|(m, hidx)| {
        if spec.hairpin {
            k.link_set_hairpin(hidx, &hv)?;
        }
        Ok(m)
    }) {
        Ok(m) => m.or(spec.mac),
        Err(e) => {
            undo(k, "undo: deleting the host end deletes both ends of the pair");
            return Err(e);
        }
    };
    let host = Host {
        ip,
        netns: spec.key.clone(),
        netns_path: netns.to_string_lossy().into_owned(),
        ifname: spec.ifname.clone(),
        host_if: hv.clone(),
        hostname: spec.hostname.clone(),
        hosts: spec.hosts,
        aliases: spec.aliases.clone(),
    };
    st.get_mut(&net.name)?.leases.push(host.clone());
    if let Err(e) = st.save(k, &net.name) {
        undo(k, "undo: the lease could not be saved");
        return Err(e);
    }
    Ok(Lease::of(&host, st.get(&net.name)?, &st.store, mac))
}

/// Steps 2 and 3 of [`attach`]; returns the inside end's MAC address when a live
/// kernel told it, and the host end's link index.
fn configure(
    k: &Kernel,
    net: &NetState,
    hv: &str,
    br: u32,
    ns: &Path,
    ifname: &str,
    ip: Ipv4Addr,
) -> Result<(Option<[u8; 6]>, u32)> {
    let hidx = index_of(k, None, hv)?;
    k.why("plug the host end into the bridge and switch it on").link_set(
        None,
        hidx,
        hv,
        &LinkChange { up: true, master: Some((br, net.bridge.clone())) },
    )?;
    let inside = Some(ns);
    let links = if k.mode() == Mode::Live { k.links(inside)? } else { vec![] };
    let find = |n: &str| links.iter().find(|l| l.name == n);
    let (idx, lo) = (find(ifname).map(|l| l.index).unwrap_or(0), find("lo").map(|l| l.index).unwrap_or(0));
    let mac = find(ifname).and_then(|l| l.mac.as_deref()).and_then(mac_bytes);
    k.why("the container's address on the network").addr_add(inside, idx, ifname, ip, net.subnet.len)?;
    k.link_set(inside, idx, ifname, &LinkChange { up: true, master: None })?;
    k.why("a new namespace's loopback is down: 127.0.0.1 is unreachable until it is up").link_set(
        inside,
        lo,
        "lo",
        &LinkChange { up: true, master: None },
    )?;
    match k
        .why("everything outside the network goes through the gateway, the bridge's address")
        .route_add(inside, None, net.gateway)
    {
        // A second network (docker network connect): the first one keeps the default
        // route, this one is reached through its own subnet's route.
        Err(e) if e.errno == Errno::EEXIST => k.note(format!(
            "{ifname}: the namespace already has a default route (through its first network); {} is reached directly on {ifname}",
            net.subnet
        )),
        r => r?,
    }
    Ok((mac, hidx))
}

/// Undo [`attach`]: release the address of `key` on `ifname` and delete the veth
/// pair (`RTM_DELLINK` of the host end deletes both; already gone when the namespace
/// was destroyed). Returns the lease it released, or None when there was none but an
/// attach interrupted before it saved the lease had left its veth pair, now deleted.
pub fn detach(k: &Kernel, net: &Network, key: &str, ifname: &str) -> Result<Option<Lease>> {
    let _s = k.scope(TOOL);
    let mut st = net.store.lock(k)?;
    let cur = st.get_mut(&net.name)?;
    let Some(pos) = cur.leases.iter().position(|l| l.netns == key && l.ifname == ifname) else {
        let hv = host_if(key, ifname, &cur.bridge);
        let not_attached = Error::failed(
            format!("{key} is not attached to {} as {ifname}", net.name),
            "see `netns-bridge show` for what is attached",
        );
        return match k.why("no lease: is there a veth pair left by an interrupted attach?").link_by_name(None, &hv) {
            Ok(_) => {
                k.why("delete the leftover pair: deleting the host end deletes both").link_del(None, &hv)?;
                Ok(None)
            }
            Err(e) if e.errno == Errno::ENODEV => Err(not_attached),
            Err(e) => Err(e.into()),
        };
    };
    let host = cur.leases.remove(pos);
    match k.why("deleting the host end deletes both ends of the veth pair").link_del(None, &host.host_if) {
        Err(e) if e.errno == Errno::ENODEV => {
            k.note(format!("{} is already gone (its namespace was destroyed)", host.host_if))
        }
        r => r?,
    }
    st.save(k, &net.name)?;
    Ok(Some(Lease::of(&host, st.get(&net.name)?, &st.store, None)))
}

/// Release every lease of `key`, on every network of `store`: its namespace is gone
/// (and its veth pairs with it). Returns the leases released.
pub fn forget(k: &Kernel, store: &Store, key: &str) -> Result<Vec<Lease>> {
    let _s = k.scope(TOOL);
    let mut st = store.lock(k)?;
    forget_locked(k, &mut st, key)
}

/// Remove the named namespace at `path` ([`super::remove`]) and release the leases
/// of `key` ([`forget`]), holding the lock throughout so that no attach to it can
/// come in between: what `netns-bridge netns rm` does.
pub fn remove_attached(k: &Kernel, store: &Store, path: &Path, key: &str) -> Result<Vec<Lease>> {
    let _s = k.scope(TOOL);
    let mut st = store.lock(k)?;
    named::remove(k, path)?;
    forget_locked(k, &mut st, key)
}

fn forget_locked(k: &Kernel, st: &mut Locked, key: &str) -> Result<Vec<Lease>> {
    let names: Vec<String> =
        st.nets.iter().filter(|n| n.leases.iter().any(|l| l.netns == key)).map(|n| n.name().to_string()).collect();
    let mut out = Vec::new();
    for name in names {
        k.note(format!("release the addresses of {key} on {name}"));
        let net = st.get_mut(&name)?;
        let (gone, kept): (Vec<Host>, Vec<Host>) = net.leases.drain(..).partition(|l| l.netns == key);
        net.leases = kept;
        st.save(k, &name)?;
        let net = st.get(&name)?;
        out.extend(gone.iter().map(|h| Lease::of(h, net, &st.store, None)));
    }
    Ok(out)
}
