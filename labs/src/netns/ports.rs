//! NAT and published ports: nftables rules in `table ip contlab` (see [`super::nat`]),
//! and `ip_forward`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::Kernel;

use super::ipam::{NetState, Publish};
use super::nat as rules;
use super::network::Network;
use super::state::Store;
use super::{remove_rules, TOOL};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp`, `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn of(s: &str) -> Proto {
        if s == "udp" {
            Proto::Udp
        } else {
            Proto::Tcp
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port to publish: connections to `host_port` on this host (on `host_ip` only,
/// when given) go to `to` inside the network (docker's `-p [IP:]8080:80`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSpec {
    /// Only this address of the host; None: any (docker's `0.0.0.0`).
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the host.
    pub host_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
    /// The address and port of the attached namespace that receive them.
    pub to: SocketAddrV4,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    /// The network it leads into.
    pub network: String,
    /// The host address it is published on (None: every local address).
    pub host_ip: Option<Ipv4Addr>,
    /// The port on the host.
    pub host_port: u16,
    /// TCP or UDP.
    pub proto: Proto,
    /// Where the connections go.
    pub to: SocketAddrV4,
}

impl Published {
    fn of(p: &Publish, net: &NetState) -> Published {
        Published {
            network: net.name().to_string(),
            host_ip: p.host_ip,
            host_port: p.host_port,
            proto: Proto::of(&p.proto),
            to: SocketAddrV4::new(p.to, p.port),
        }
    }

    /// Whether it takes the same host port as `(host_ip, host_port, proto)`: same port
    /// and protocol, on the same address or on every address.
    pub fn clashes(&self, host_ip: Option<Ipv4Addr>, host_port: u16, proto: Proto) -> bool {
        self.host_port == host_port
            && self.proto == proto
            && (self.host_ip.is_none() || host_ip.is_none() || self.host_ip == host_ip)
    }
}

/// Every port published on the networks of `store` (what docker's port allocator
/// knows: a runtime asks it whether a host port is taken before it publishes).
pub fn published(store: &Store) -> Result<Vec<Published>> {
    Ok(store.read()?.iter().flat_map(|n| n.published.iter().map(|p| Published::of(p, n))).collect())
}

/// `write("/proc/sys/net/ipv4/ip_forward", "1")`: route packets between interfaces.
/// A new network namespace starts with the value of the host's initial namespace (the
/// kernel copies init_net's settings), 0 on a fresh machine, 1 wherever dockerd runs.
fn forwarding(k: &Kernel) -> Result<()> {
    k.why("route packets between interfaces (a new namespace starts with the host's value, 0 unless something set it)")
        .write_file(Path::new("/proc/sys/net/ipv4/ip_forward"), "1")?;
    Ok(())
}

/// Masquerade the network's traffic to the outside and isolate it from the other
/// networks (`on`), as docker does for each bridge; or remove those rules. Turning
/// it on also turns on `ip_forward`. A failure to save the state removes the rules
/// just added.
pub fn nat(k: &Kernel, net: &Network, on: bool) -> Result<()> {
    let _s = k.scope(TOOL);
    let mut st = net.store.lock(k)?;
    let cur = st.get(&net.name)?.clone();
    let br = cur.bridge.clone();
    let ours = |c: &str| c == format!("contlab:{br}:nat") || c.starts_with(&format!("contlab:{br}:isolate"));
    if !on {
        let n = remove_rules(k, ours)?;
        k.note(format!("{n} rules removed"));
        st.get_mut(&net.name)?.nat = false;
        return st.save(k, &net.name);
    }
    if cur.nat {
        k.note(format!("masquerading is already on for {}", net.name));
        return Ok(());
    }
    forwarding(k)?;
    let mut batch = rules::skeleton();
    batch.push(rules::masquerade(&br, &cur.subnet));
    for o in st.nets.iter().filter(|o| o.bridge != br) {
        batch.push(rules::isolate(&br, &o.bridge, &br));
        batch.push(rules::isolate(&o.bridge, &br, &br));
    }
    k.why("one transaction: the table, its chains and the rules, applied together or not at all").nft(&batch)?;
    st.get_mut(&net.name)?.nat = true;
    if let Err(e) = st.save(k, &net.name) {
        let _ = remove_rules(k.why("undo: the state could not be saved"), ours);
        return Err(e);
    }
    Ok(())
}

/// Make `net` internal (docker's `--internal`): the forward rules of
/// [`rules::internal`], so nothing is routed between it and any other interface. No
/// masquerade is added: call this instead of [`nat()`].
pub fn internal(k: &Kernel, net: &Network) -> Result<()> {
    let _s = k.scope(TOOL);
    let st = net.store.lock(k)?;
    let cur = st.get(&net.name)?;
    let mut batch = rules::skeleton();
    batch.extend(rules::internal(&cur.bridge));
    k.why("an internal network: nothing is routed in or out of its bridge").nft(&batch)?;
    Ok(())
}

/// Whether something listens on `port` in this namespace (/proc/net/tcp, tcp6, udp,
/// udp6), on `host_ip` or on every address (any address when `host_ip` is None).
fn listening(k: &Kernel, host_ip: Option<Ipv4Addr>, port: u16, proto: Proto) -> bool {
    let want = format!(":{port:04X}");
    let proto = proto.as_str();
    [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")].iter().any(|file| {
        let Ok(text) = k.why("is the host port already taken by a listening socket?").read_file(Path::new(file)) else {
            return false;
        };
        text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[1].ends_with(&want)
                && (proto == "udp" || f[3] == "0A")
                && host_ip.is_none_or(|ip| bound_to(f[1].split(':').next().unwrap_or(""), ip))
        })
    })
}

/// Whether a socket bound to `hex` (/proc/net's local address: an IPv4 address as
/// the kernel's native-endian `%08X`, or an IPv6 one as four such words) takes
/// connections to `ip`: bound to it, or to every address.
fn bound_to(hex: &str, ip: Ipv4Addr) -> bool {
    let word = |s: &str| u32::from_str_radix(s, 16).map(|w| w.to_ne_bytes()).unwrap_or([1, 1, 1, 1]);
    match hex.len() {
        8 => {
            let a = Ipv4Addr::from(word(hex));
            a.is_unspecified() || a == ip
        }
        32 => {
            let w: Vec<[u8; 4]> = (0..4).map(|i| word(&hex[i * 8..i * 8 + 8])).collect();
            let any = w.iter().all(|x| *x == [0; 4]);
            let mapped = w[0] == [0; 4] && w[1] == [0; 4] && w[2] == [0, 0, 0xff, 0xff] && Ipv4Addr::from(w[3]) == ip;
            any || mapped
        }
        _ => true,
    }
}

/// Publish a port: DNAT from the host's port to an attached namespace's address,
/// from other machines (`prerouting`) and from this host itself (`output`), plus
/// `route_localnet` on the bridge and a masquerade so that `localhost:PORT` works.
/// Refused when the port is already published (docker's "port is already
/// allocated") or a process on this host listens on it (what a bind would answer,
/// "address already in use"). A failure to save the state removes the rules again.
pub fn publish(k: &Kernel, net: &Network, spec: &PublishSpec) -> Result<Published> {
    let _s = k.scope(TOOL);
    let mut st = net.store.lock(k)?;
    let cur = st.get(&net.name)?.clone();
    let (to, port, proto, host_port) = (*spec.to.ip(), spec.to.port(), spec.proto, spec.host_port);
    if !cur.subnet.contains(to) {
        return Err(Error::failed(
            format!("{to} is not in the network {:?} ({})", net.name, cur.subnet),
            "give the address of a namespace attached to it (see `netns-bridge show`)",
        ));
    }
    if !cur.leases.iter().any(|l| l.ip == to) {
        return Err(Error::failed(
            format!("no namespace holds {to} on {}", net.name),
            "attach one first, or check the address with `netns-bridge show`",
        ));
    }
    let all = st.nets.iter().flat_map(|n| n.published.iter().map(move |p| Published::of(p, n)));
    if let Some(p) = all.into_iter().find(|p| p.clashes(spec.host_ip, host_port, proto)) {
        return Err(Error::failed(
            format!("port {host_port}/{proto} is in use: already published to {} on {}", p.to, p.network),
            format!("choose another host port, or remove it: netns-bridge unpublish {host_port}/{proto}"),
        ));
    }
    if listening(k, spec.host_ip, host_port, proto) {
        return Err(Error::failed(
            format!("port {host_port}/{proto} is in use: a process on this host listens on it"),
            "choose another host port, or stop that process",
        ));
    }
    forwarding(k)?;
    k.why("let packets from 127.0.0.1 be routed to the bridge, so localhost:HOST_PORT works")
        .write_file(&Path::new("/proc/sys/net/ipv4/conf").join(&cur.bridge).join("route_localnet"), "1")?;
    let mut batch = rules::skeleton();
    batch.extend(rules::publish(&cur.bridge, &cur.subnet, spec.host_ip, host_port, to, port, proto.as_str()));
    k.why("DNAT: connections to this host's HOST_PORT go to the container").nft(&batch)?;
    let rec = Publish { host_port, port, proto: proto.as_str().into(), to, host_ip: spec.host_ip };
    st.get_mut(&net.name)?.published.push(rec.clone());
    if let Err(e) = st.save(k, &net.name) {
        let comment = rules::publish_comment(&cur.bridge, spec.host_ip, host_port, proto.as_str());
        let _ = remove_rules(k.why("undo: the state could not be saved"), |c| c == comment);
        return Err(e);
    }
    Ok(Published::of(&rec, &cur))
}

/// Remove a published port of `net` (its rules, found again by their comment, then
/// its record). Returns what was published.
pub fn unpublish(
    k: &Kernel,
    net: &Network,
    host_ip: Option<Ipv4Addr>,
    host_port: u16,
    proto: Proto,
) -> Result<Published> {
    let _s = k.scope(TOOL);
    let mut st = net.store.lock(k)?;
    let cur = st.get(&net.name)?.clone();
    let comment = rules::publish_comment(&cur.bridge, host_ip, host_port, proto.as_str());
    let Some(p) =
        cur.published.iter().find(|p| p.host_port == host_port && p.proto == proto.as_str() && p.host_ip == host_ip)
    else {
        // A publish killed between its rules and its record: the rules go all the same.
        if remove_rules(k.why("no record of the port: rules left by an interrupted publish?"), |c| c == comment)? > 0 {
            let to = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
            return Ok(Published { network: net.name.clone(), host_ip, host_port, proto, to });
        }
        return Err(Error::failed(format!("port {host_port}/{proto} is not published"), "see `netns-bridge show`"));
    };
    remove_rules(k, |c| c == comment)?;
    st.get_mut(&net.name)?.published.retain(|q| q != p);
    st.save(k, &net.name)?;
    Ok(Published::of(p, &cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        let lo: Ipv4Addr = "127.0.0.1".parse().unwrap();
        // 127.0.0.1 as the kernel prints it on a little-endian machine.
        let hex = format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]));
        assert!(bound_to(&hex, lo));
        assert!(!bound_to(&hex, "10.0.0.1".parse().unwrap()));
        assert!(bound_to("00000000", "10.0.0.1".parse().unwrap()), "0.0.0.0 takes every address");
        assert!(bound_to(&"0".repeat(32), lo), ":: takes every address");
        let word = |b: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(b));
        let mapped = format!("{}{}{}", "0".repeat(16), word([0, 0, 0xff, 0xff]), word([127, 0, 0, 1]));
        assert!(bound_to(&mapped, lo));
    }

    #[test]
    fn clashes_on_the_same_address_or_on_every_address() {
        let p = Published {
            network: "br0".into(),
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 8080,
            proto: Proto::Tcp,
            to: "10.0.0.2:80".parse().unwrap(),
        };
        assert!(p.clashes(None, 8080, Proto::Tcp));
        assert!(p.clashes(Some("127.0.0.1".parse().unwrap()), 8080, Proto::Tcp));
        assert!(!p.clashes(Some("10.1.1.1".parse().unwrap()), 8080, Proto::Tcp));
        assert!(!p.clashes(None, 8080, Proto::Udp));
    }
}
