//! IP address management: subnets, the addresses handed out on each network, and the
//! state files that remember them (one JSON file per network under the state root,
//! changed only while holding the lock file, so two `attach` at once never collide).
//!
//! The records here are what is written on disk; the values the lab's operations
//! return ([`super::Network`], [`super::Lease`], [`super::Published`]) are built
//! from them. Fields added after the first format are written only when they differ
//! from their default, so a state file netns-bridge wrote before still reads the same.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An IPv4 network: `10.200.0.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    /// The network address (host bits zero).
    pub net: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Subnet {
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - len as u32).unwrap_or(0)
    }
    /// The subnet `ip` belongs to with prefix `len`.
    pub fn of(ip: Ipv4Addr, len: u8) -> Subnet {
        Subnet { net: Ipv4Addr::from(u32::from(ip) & Self::mask(len)), len }
    }
    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == u32::from(self.net)
    }
    /// Whether the two share any address.
    pub fn overlaps(&self, o: &Subnet) -> bool {
        self.contains(o.net) || o.contains(self.net)
    }
    /// The broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) | !Self::mask(self.len))
    }
    /// Whether `ip` may be given to a host: inside, and neither the network nor the
    /// broadcast address.
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && ip != self.net && (self.len >= 31 || ip != self.broadcast())
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// Parse `A.B.C.D/LEN` (or `A.B.C.D` when `default_len` is given).
pub fn parse_cidr(s: &str, default_len: Option<u8>) -> Result<(Ipv4Addr, u8)> {
    let bad = || Error::Usage(format!("invalid address {s:?}: expected A.B.C.D/LEN, e.g. 10.200.0.1/24"));
    let (ip, len) = match (s.split_once('/'), default_len) {
        (Some((ip, len)), _) => (ip, len.parse::<u8>().map_err(|_| bad())?),
        (None, Some(d)) => (s, d),
        (None, None) => return Err(bad()),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&len) {
        return Err(Error::Usage(format!(
            "invalid prefix length /{len} in {s:?}: a bridge network needs /8 to /30 (room for a gateway and hosts)"
        )));
    }
    Ok((ip, len))
}

/// One address handed out: which namespace and interface holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The address.
    pub ip: Ipv4Addr,
    /// The namespace as the user named it: `c1`, or `pid:4242`.
    pub netns: String,
    /// Its file (`/run/netns/c1`, `/proc/4242/ns/net`).
    pub netns_path: String,
    /// The interface inside (`eth0`).
    pub ifname: String,
    /// The host end of the veth pair, a port of the bridge.
    pub host_if: String,
    /// The name other hosts of the network resolve (hosts file).
    pub hostname: Option<String>,
    /// Whether the name is listed in the network's hosts file (docker's default
    /// bridge has no name resolution: a runtime imitating it attaches with `false`).
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub hosts: bool,
    /// More names of the host on this network (docker's `--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Host {
    /// Whether `name` is one of this host's names on the network (its hostname or an
    /// alias), as a resolver compares them: without case.
    pub fn answers_to(&self, name: &str) -> bool {
        self.hostname
            .as_deref()
            .into_iter()
            .chain(self.aliases.iter().map(String::as_str))
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// A published port: DNAT from the host's HOST_PORT to IP:PORT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// Port on the host.
    pub host_port: u16,
    /// Port inside.
    pub port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
    /// The address inside the network.
    pub to: Ipv4Addr,
    /// Only connections to this address of the host (docker's `-p 127.0.0.1:8080:80`);
    /// None: any local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
}

/// A vxlan port joining this bridge to the same bridge on another host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vxlan {
    /// Interface name.
    pub name: String,
    /// VXLAN network identifier.
    pub vni: u32,
    /// The other host.
    pub remote: Ipv4Addr,
}

/// Everything contlab remembers about one bridge network: its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The network's name, when it is not its bridge's (netns-bridge names a network
    /// by its bridge; a runtime may call `bridge` a network whose bridge is `docker0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The bridge interface.
    pub bridge: String,
    /// The subnet.
    pub subnet: Subnet,
    /// The bridge's own address: the hosts' default gateway.
    pub gateway: Ipv4Addr,
    /// Masquerading on.
    #[serde(default)]
    pub nat: bool,
    /// Addresses handed out.
    #[serde(default)]
    pub leases: Vec<Host>,
    /// Published ports.
    #[serde(default)]
    pub published: Vec<Publish>,
    /// vxlan ports.
    #[serde(default)]
    pub vxlans: Vec<Vxlan>,
    /// Where addresses are handed out from, when narrower than the subnet (docker's
    /// `--ip-range`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Subnet>,
}

impl NetState {
    /// The network's name: its own, or its bridge's.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.bridge)
    }

    /// The first free host address (gateway and leases excluded), or None when full.
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let first = u32::from(range.net).max(u32::from(self.subnet.net) + 1);
        // The range's own last address is a host when the range is inside the subnet;
        // the subnet's broadcast never is.
        let last = u32::from(range.broadcast()).min(u32::from(self.subnet.broadcast()).saturating_sub(1));
        (first..=last).map(Ipv4Addr::from).find(|ip| *ip != self.gateway && !self.leases.iter().any(|l| l.ip == *ip))
    }

    /// The hosts file of this network: the gateway, then each named host that asked
    /// to be listed.
    pub fn hosts_file(&self) -> String {
        use std::fmt::Write;
        let mut s = String::with_capacity(96 + 32 * self.leases.len());
        s.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        let _ = writeln!(s, "{}\tgateway.{}", self.gateway, self.bridge);
        for l in self.leases.iter().filter(|l| l.hosts) {
            if let Some(h) = &l.hostname {
                let _ = write!(s, "{}\t{h}", l.ip);
                for a in &l.aliases {
                    let _ = write!(s, " {a}");
                }
                s.push('\n');
            }
        }
        s
    }
}

/// netns-bridge's state root: `$CONTLAB_RUN_DIR`, or /run/contlab.
pub fn default_root() -> PathBuf {
    std::env::var_os("CONTLAB_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/run/contlab"))
}

/// The directory of network state files under the state root.
pub fn net_dir(root: &Path) -> PathBuf {
    root.join("net")
}

/// The state file of network `name`.
pub fn state_path(root: &Path, name: &str) -> PathBuf {
    net_dir(root).join(format!("{name}.json"))
}

/// The hosts file of network `name` (bind-mounted on /etc/hosts by `netns exec`).
pub fn hosts_path(root: &Path, name: &str) -> PathBuf {
    net_dir(root).join(format!("{name}.hosts"))
}

/// Read every network's state (the tool's own files: plain reads, not kernel requests).
pub fn load_all(root: &Path) -> Result<Vec<NetState>> {
    let dir = net_dir(root);
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    let mut names: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    names.sort();
    for p in names {
        let text = std::fs::read_to_string(&p).map_err(|e| {
            Error::failed(format!("cannot read the network state {}: {e}", p.display()), "check the run directory")
        })?;
        let n: NetState = serde_json::from_str(&text).map_err(|e| {
            Error::failed(
                format!("the network state {} is damaged: {e}", p.display()),
                "remove it (and the bridge) by hand: rm that file; netns-bridge cannot repair it",
            )
        })?;
        out.push(n);
    }
    Ok(out)
}

/// A short, stable hash (FNV-1a), to name host-side veth ends.
pub fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str) -> NetState {
        let (gw, len) = parse_cidr(cidr, None).unwrap();
        NetState {
            name: None,
            bridge: "br0".into(),
            subnet: Subnet::of(gw, len),
            gateway: gw,
            nat: false,
            leases: vec![],
            published: vec![],
            vxlans: vec![],
            ip_range: None,
        }
    }

    #[test]
    fn subnets() {
        let a = Subnet::of("10.200.0.1".parse().unwrap(), 24);
        assert_eq!(a.to_string(), "10.200.0.0/24");
        assert_eq!(a.broadcast(), Ipv4Addr::new(10, 200, 0, 255));
        assert!(a.overlaps(&Subnet::of("10.200.0.128".parse().unwrap(), 25)));
        assert!(a.overlaps(&Subnet::of("10.0.0.0".parse().unwrap(), 8)));
        assert!(!a.overlaps(&Subnet::of("10.201.0.0".parse().unwrap(), 24)));
        assert!(!a.is_host("10.200.0.255".parse().unwrap()));
        assert!(!a.is_host("10.200.1.1".parse().unwrap()));
    }

    #[test]
    fn parse_errors_are_usage() {
        assert!(matches!(parse_cidr("10.0.0.1", None), Err(Error::Usage(_))));
        assert!(matches!(parse_cidr("10.0.0.300/24", None), Err(Error::Usage(_))));
        assert!(matches!(parse_cidr("10.0.0.1/31", None), Err(Error::Usage(_))));
        assert_eq!(parse_cidr("10.0.0.1", Some(24)).unwrap(), ("10.0.0.1".parse().unwrap(), 24));
    }

    #[test]
    fn allocation_skips_gateway_and_leases_then_runs_out() {
        let mut n = net("10.9.0.1/30");
        assert_eq!(n.allocate(), Some("10.9.0.2".parse().unwrap()));
        n.leases.push(Host {
            ip: "10.9.0.2".parse().unwrap(),
            netns: "a".into(),
            netns_path: "/run/netns/a".into(),
            ifname: "eth0".into(),
            host_if: "veth0".into(),
            hostname: Some("a".into()),
            hosts: true,
            aliases: vec![],
        });
        assert_eq!(n.allocate(), None);
        assert!(n.hosts_file().contains("10.9.0.2\ta\n"));
        n.leases[0].hosts = false;
        assert!(!n.hosts_file().contains("10.9.0.2"), "a host attached without the hosts file is not listed");
    }

    #[test]
    fn new_fields_are_written_only_when_set() {
        let mut n = net("10.9.0.1/24");
        let old = serde_json::to_string(&n).unwrap();
        assert!(!old.contains("name") && !old.contains("host_ip"), "{old}");
        n.name = Some("bridge".into());
        let back: NetState = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back.name(), "bridge");
        let h: Host = serde_json::from_str(
            r#"{"ip":"10.9.0.2","netns":"a","netns_path":"/run/netns/a","ifname":"eth0","host_if":"v","hostname":null}"#,
        )
        .unwrap();
        assert!(h.hosts, "a record without the field is listed, as before");
    }

    #[test]
    fn hash_is_stable() {
        assert_eq!(short_hash("c1/eth0"), short_hash("c1/eth0"));
        assert_ne!(short_hash("c1/eth0"), short_hash("c2/eth0"));
    }
}
