//! `netns-bridge`'s command line: flags → a spec → one of the lab's operations →
//! what the tool prints. Nothing here talks to the kernel except through them.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::Kernel;

use super::attach::{attach, detach, remove_attached};
use super::ports::{nat, publish, published, unpublish, Proto, PublishSpec};
use super::vxlan::{vxlan_add, vxlan_remove, VxlanSpec};
use super::{ipam, named, show, AttachSpec, Network, NetworkSpec, Store, NETNS_DIR, TOOL};

/// Network namespaces, bridges, veth pairs, NAT and published ports, over netlink.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = "netns-bridge", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub sub: Sub,
    /// Trace options.
    #[command(flatten)]
    pub common: CommonOpts,
}

impl Cli {
    /// Whether the command runs a command for the user (`netns exec`: its own
    /// failures then exit 125) or is a tool (exit 1).
    pub fn role(&self) -> Role {
        match &self.sub {
            Sub::Netns(NetnsCmd::Exec { .. }) => Role::Wrapper,
            _ => Role::Tool,
        }
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Named network namespaces under /run/netns (like `ip netns`).
    #[command(subcommand)]
    Netns(NetnsCmd),
    /// Bridges: the virtual switch of a network, with its subnet.
    #[command(subcommand)]
    Bridge(BridgeCmd),
    /// Plug a namespace into a bridge with a veth pair; give it an address and a route.
    Attach(AttachArgs),
    /// Unplug a namespace from a bridge and release its address.
    Detach(DetachArgs),
    /// Masquerade the network's traffic to the outside (and turn on ip_forward).
    Nat(NatArgs),
    /// Publish a port: HOST_PORT on this host reaches PORT at --to (DNAT).
    Publish(PublishArgs),
    /// Remove a published port.
    Unpublish(UnpublishArgs),
    /// VXLAN ports: join the same bridge on two hosts (an overlay network).
    #[command(subcommand)]
    Vxlan(VxlanCmd),
    /// The topology: bridges, ports, namespaces, addresses, routes, published ports.
    Show(ShowArgs),
}

/// `netns ...`.
#[derive(Subcommand, Debug)]
pub enum NetnsCmd {
    /// Create a named network namespace (bound on /run/netns/NAME).
    Add {
        /// Its name.
        name: String,
    },
    /// List the named network namespaces.
    Ls,
    /// Remove a named namespace (and release its addresses).
    Rm {
        /// Its name.
        name: String,
    },
    /// Run a command inside a named namespace (with the network's hosts file).
    Exec {
        /// Its name.
        name: String,
        /// The command.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// `bridge ...`.
#[derive(Subcommand, Debug)]
pub enum BridgeCmd {
    /// Create a bridge; its address is the network's gateway.
    Create {
        /// The bridge's name (at most 15 bytes).
        name: String,
        /// Gateway address and prefix, e.g. 10.200.0.1/24.
        #[arg(long, value_name = "A.B.C.D/LEN")]
        subnet: String,
    },
    /// Remove a bridge with no attached namespace (and its NAT rules).
    Rm {
        /// The bridge's name.
        name: String,
    },
    /// List contlab's bridges.
    Ls,
}

/// Which namespace: by name, or a process's.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A named namespace (/run/netns/NAME), e.g. one made by `netns add` or `ip netns add`.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// The network namespace of a running process (/proc/PID/ns/net).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
}

impl Target {
    fn key(&self) -> String {
        match (&self.netns, self.pid) {
            (Some(n), _) => n.clone(),
            (None, Some(p)) => format!("pid:{p}"),
            _ => String::new(),
        }
    }
    fn path(&self) -> PathBuf {
        match (&self.netns, self.pid) {
            (Some(n), _) if n.contains('/') => PathBuf::from(n),
            (Some(n), _) => Path::new(NETNS_DIR).join(n),
            (None, Some(p)) => PathBuf::from(format!("/proc/{p}/ns/net")),
            _ => PathBuf::new(),
        }
    }
}

/// `attach`.
#[derive(Args, Debug)]
pub struct AttachArgs {
    /// The bridge (network) to plug into.
    #[arg(long)]
    pub bridge: String,
    /// The namespace.
    #[command(flatten)]
    pub target: Target,
    /// `auto` (the first free address) or A.B.C.D[/LEN] inside the subnet.
    #[arg(long, default_value = "auto")]
    pub ip: String,
    /// The interface name inside.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
    /// The MAC address inside (aa:bb:cc:dd:ee:ff); default: random.
    #[arg(long)]
    pub mac: Option<String>,
    /// The name the other hosts of the network resolve (hosts file).
    #[arg(long)]
    pub name: Option<String>,
    /// List no name in the network's hosts file (docker's default bridge: no names).
    #[arg(long, conflicts_with = "name")]
    pub no_hosts: bool,
}

/// `detach`.
#[derive(Args, Debug)]
pub struct DetachArgs {
    /// The bridge.
    #[arg(long)]
    pub bridge: String,
    /// The namespace.
    #[command(flatten)]
    pub target: Target,
    /// The interface name inside.
    #[arg(long, default_value = "eth0")]
    pub ifname: String,
}

/// `nat`.
#[derive(Args, Debug)]
pub struct NatArgs {
    /// The bridge.
    pub name: String,
    /// Remove the masquerade and isolation rules instead.
    #[arg(long)]
    pub off: bool,
}

/// `publish`.
#[derive(Args, Debug)]
pub struct PublishArgs {
    /// [HOST_IP:]HOST_PORT:PORT[/tcp|udp], as docker's `-p 8080:80` (`-p 127.0.0.1:8080:80`:
    /// on that address of the host only).
    pub spec: String,
    /// The address inside a network that receives the connections.
    #[arg(long, value_name = "A.B.C.D")]
    pub to: Ipv4Addr,
}

/// `unpublish`.
#[derive(Args, Debug)]
pub struct UnpublishArgs {
    /// [HOST_IP:]HOST_PORT[/tcp|udp].
    pub spec: String,
}

/// `vxlan ...`.
#[derive(Subcommand, Debug)]
pub enum VxlanCmd {
    /// Add a vxlan port to a bridge, tunnelling to the same VNI on --remote.
    Add {
        /// The bridge.
        bridge: String,
        /// VXLAN network identifier (the same on both hosts).
        #[arg(long)]
        vni: u32,
        /// The other host's underlay address.
        #[arg(long)]
        remote: Ipv4Addr,
        /// The underlay interface.
        #[arg(long)]
        dev: Option<String>,
        /// UDP port.
        #[arg(long, default_value_t = 4789)]
        port: u16,
    },
    /// Remove a vxlan port.
    Rm {
        /// The bridge.
        bridge: String,
        /// VXLAN network identifier.
        #[arg(long)]
        vni: u32,
    },
}

/// `show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Graphviz (dot) instead of text.
    #[arg(long, conflicts_with = "json")]
    pub dot: bool,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `netns-bridge` as the command line asked.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    let read_only = matches!(cli.sub, Sub::Show(_) | Sub::Netns(NetnsCmd::Ls) | Sub::Bridge(BridgeCmd::Ls));
    if !read_only {
        need_root(&k)?;
    }
    let store = Store::from_env();
    match cli.sub {
        Sub::Netns(c) => netns_cmd(&k, &store, c),
        Sub::Bridge(c) => bridge_cmd(&k, &store, c),
        Sub::Attach(a) => attach_cmd(&k, &store, &a),
        Sub::Detach(a) => {
            super::check_ifname("bridge", &a.bridge)?;
            let net = Network::load(&store, &a.bridge)?;
            if let Some(lease) = detach(&k, &net, &a.target.key(), &a.ifname)? {
                out(&format!("{}\n", lease.ip))?;
            }
            Ok(Exit::Ok)
        }
        Sub::Nat(a) => {
            nat(&k, &Network::load(&store, &a.name)?, !a.off)?;
            Ok(Exit::Ok)
        }
        Sub::Publish(a) => {
            let (host_ip, host_port, port, proto) = parse_port_spec(&a.spec, true)?;
            let Some(net) = Network::list(&store)?.into_iter().find(|n| n.subnet.contains(a.to)) else {
                return Err(Error::failed(
                    format!("{} is in no contlab network", a.to),
                    "give --to the address of an attached namespace (see `netns-bridge show`)",
                ));
            };
            let spec = PublishSpec { host_ip, host_port, proto, to: SocketAddrV4::new(a.to, port) };
            let p = publish(&k, &net, &spec)?;
            let on = p.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
            out(&format!("{on}{}/{} -> {}\n", p.host_port, p.proto, p.to))?;
            Ok(Exit::Ok)
        }
        Sub::Unpublish(a) => {
            let (host_ip, host_port, _, proto) = parse_port_spec(&a.spec, false)?;
            let found = published(&store)?
                .into_iter()
                .find(|p| p.host_port == host_port && p.proto == proto && (host_ip.is_none() || p.host_ip == host_ip));
            let Some(p) = found else {
                return Err(Error::failed(
                    format!("port {host_port}/{proto} is not published"),
                    "see `netns-bridge show`",
                ));
            };
            unpublish(&k, &Network::load(&store, &p.network)?, p.host_ip, host_port, proto)?;
            Ok(Exit::Ok)
        }
        Sub::Vxlan(VxlanCmd::Add { bridge, vni, remote, dev, port }) => {
            let name = vxlan_add(&k, &Network::load(&store, &bridge)?, &VxlanSpec { vni, remote, dev, port })?;
            out(&format!("{name}\n"))?;
            Ok(Exit::Ok)
        }
        Sub::Vxlan(VxlanCmd::Rm { bridge, vni }) => {
            vxlan_remove(&k, &Network::load(&store, &bridge)?, vni)?;
            Ok(Exit::Ok)
        }
        Sub::Show(a) => {
            let topo = show::topology(&k, &store, Path::new(NETNS_DIR))?;
            let text = if a.json {
                serde_json::to_string_pretty(&topo).map_err(|e| {
                    Error::failed(format!("cannot encode the topology: {e}"), "this is a bug: report it")
                })? + "\n"
            } else if a.dot {
                show::dot(&topo)
            } else {
                show::text(&topo)
            };
            out(&text)?;
            Ok(Exit::Ok)
        }
    }
}

/// The tool's own output, on stdout (a closed pipe ends it quietly).
fn out(s: &str) -> Result<()> {
    std::io::stdout().lock().write_all(s.as_bytes()).map_err(Error::Output)
}

fn need_root(k: &Kernel) -> Result<()> {
    if k.ids().euid != 0 {
        return Err(Error::failed(
            "this command must run as root: namespaces, bridges and nftables need CAP_NET_ADMIN and CAP_SYS_ADMIN",
            "run it with sudo (or as root in a VM)",
        ));
    }
    Ok(())
}

fn check_nsname(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "invalid namespace name {name:?}: a file name under {NETNS_DIR}, without '/'"
        )));
    }
    Ok(())
}

fn netns_cmd(k: &Kernel, store: &Store, c: NetnsCmd) -> Result<Exit> {
    match c {
        NetnsCmd::Add { name } => {
            check_nsname(&name)?;
            let path = Path::new(NETNS_DIR).join(&name);
            named::create(k, &path)?;
            out(&format!("{}\n", path.display()))?;
            Ok(Exit::Ok)
        }
        NetnsCmd::Ls => {
            let names = named::list(k, Path::new(NETNS_DIR))?;
            let nets = store.read()?;
            let mut s = String::new();
            for n in names {
                let on: Vec<String> = nets
                    .iter()
                    .flat_map(|net| {
                        net.leases.iter().filter(|l| l.netns == n).map(|l| format!("{} {}", net.name(), l.ip))
                    })
                    .collect();
                match on.is_empty() {
                    true => s.push_str(&format!("{n}\n")),
                    false => s.push_str(&format!("{n}\t{}\n", on.join(", "))),
                }
            }
            out(&s)?;
            Ok(Exit::Ok)
        }
        NetnsCmd::Rm { name } => {
            check_nsname(&name)?;
            remove_attached(k, store, &Path::new(NETNS_DIR).join(&name), &name)?;
            Ok(Exit::Ok)
        }
        NetnsCmd::Exec { name, command } => {
            check_nsname(&name)?;
            let path = Path::new(NETNS_DIR).join(&name);
            let hosts = store
                .read()?
                .iter()
                .find(|n| n.leases.iter().any(|l| l.netns == name && l.hosts))
                .map(|n| store.hosts_path(n.name()));
            named::enter(k, &path, hosts.as_deref())?;
            let child = k.spawn(&command, |_| Ok(()))?;
            let status = k.wait(child.pid)?;
            Ok(Exit::of(status))
        }
    }
}

fn bridge_cmd(k: &Kernel, store: &Store, c: BridgeCmd) -> Result<Exit> {
    match c {
        BridgeCmd::Create { name, subnet } => {
            super::check_ifname("bridge", &name)?;
            let (gw, len) = ipam::parse_cidr(&subnet, None)?;
            Network::create(k, store, &NetworkSpec::bridge(&name, gw, len))?;
            out(&format!("{name} {gw}/{len}\n"))?;
            Ok(Exit::Ok)
        }
        BridgeCmd::Rm { name } => {
            Network::load(store, &name)?.remove(k)?;
            Ok(Exit::Ok)
        }
        BridgeCmd::Ls => {
            let mut s = String::from("BRIDGE\tSUBNET\tGATEWAY\tNAT\tHOSTS\n");
            for n in &store.read()? {
                s.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    n.name(),
                    n.subnet,
                    n.gateway,
                    if n.nat { "on" } else { "off" },
                    n.leases.len()
                ));
            }
            out(&s)?;
            Ok(Exit::Ok)
        }
    }
}

fn attach_cmd(k: &Kernel, store: &Store, a: &AttachArgs) -> Result<Exit> {
    super::check_ifname("bridge", &a.bridge)?;
    super::check_ifname("interface", &a.ifname)?;
    let mac = a.mac.as_deref().map(parse_mac).transpose()?;
    let net = Network::load(store, &a.bridge)?;
    let ip = match a.ip.as_str() {
        "auto" => None,
        s => {
            let (ip, len) = ipam::parse_cidr(s, Some(net.subnet.len))?;
            if len != net.subnet.len {
                return Err(Error::Usage(format!(
                    "address {s} is not a free host address of the network {:?} ({}, gateway {})",
                    net.name, net.subnet, net.gateway
                )));
            }
            Some(ip)
        }
    };
    let spec = AttachSpec {
        key: a.target.key(),
        ifname: a.ifname.clone(),
        ip,
        mac,
        hostname: a.name.clone().or_else(|| a.target.netns.clone().filter(|n| !n.contains('/'))),
        hosts: !a.no_hosts,
        aliases: vec![],
        hairpin: false,
    };
    let lease = attach(k, &net, &a.target.path(), &spec)?;
    out(&format!("{}/{}\n", lease.ip, lease.prefix))?;
    Ok(Exit::Ok)
}

/// `[IP:]HOST_PORT:PORT[/PROTO]` (or, without `want_inner`, `[IP:]HOST_PORT[/PROTO]`):
/// (host address, host port, inner port, protocol).
fn parse_port_spec(s: &str, want_inner: bool) -> Result<(Option<Ipv4Addr>, u16, u16, Proto)> {
    let bad = || {
        Error::Usage(format!(
            "invalid port {s:?}: expected {}",
            if want_inner {
                "[HOST_IP:]HOST_PORT:PORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80"
            } else {
                "[HOST_IP:]HOST_PORT[/tcp|udp], e.g. 8080/tcp"
            }
        ))
    };
    let (ports, proto) = match s.split_once('/') {
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some(_) => return Err(bad()),
        None => (s, Proto::Tcp),
    };
    let num = |x: &str| x.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    let parts: Vec<&str> = ports.split(':').collect();
    let (ip, rest) = match parts.len() {
        n if n == 3 || (n == 2 && !want_inner) => (Some(parts[0].parse::<Ipv4Addr>().map_err(|_| bad())?), &parts[1..]),
        _ => (None, &parts[..]),
    };
    match (rest, want_inner) {
        ([h, c], true) => Ok((ip, num(h)?, num(c)?, proto)),
        ([h], false) => {
            let h = num(h)?;
            Ok((ip, h, h, proto))
        }
        _ => Err(bad()),
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s.split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    if v.len() != 6 || s.split(':').count() != 6 || v[0] & 1 == 1 {
        return Err(Error::Usage(format!("invalid MAC address {s:?}: six hex bytes aa:bb:cc:dd:ee:ff, unicast")));
    }
    Ok([v[0], v[1], v[2], v[3], v[4], v[5]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port_spec("8080:80", true).unwrap(), (None, 8080, 80, Proto::Tcp));
        assert_eq!(parse_port_spec("53:53/udp", true).unwrap(), (None, 53, 53, Proto::Udp));
        assert!(matches!(parse_port_spec("8080", true), Err(Error::Usage(_))));
        assert!(matches!(parse_port_spec("8080:0", true), Err(Error::Usage(_))));
        assert!(matches!(parse_port_spec("80:80/sctp", true), Err(Error::Usage(_))));
        assert_eq!(parse_port_spec("8080/udp", false).unwrap(), (None, 8080, 8080, Proto::Udp));
        let lo = Some(Ipv4Addr::LOCALHOST);
        assert_eq!(parse_port_spec("127.0.0.1:8080:80", true).unwrap(), (lo, 8080, 80, Proto::Tcp));
        assert_eq!(parse_port_spec("127.0.0.1:8080", false).unwrap(), (lo, 8080, 8080, Proto::Tcp));
        assert!(matches!(parse_port_spec("localhost:8080:80", true), Err(Error::Usage(_))));
        assert!(matches!(parse_port_spec("1:2:3:4", true), Err(Error::Usage(_))));
    }

    #[test]
    fn names() {
        assert!(check_nsname("../x").is_err());
        assert!(parse_mac("02:42:ac:11:00:02").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
    }
}
