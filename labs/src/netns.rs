//! # Container networking: namespaces, bridges, veth pairs, NAT — what `netns-bridge` does
//!
//! A new network namespace (`unshare(CLONE_NEWNET)`, network_namespaces(7)) has its own
//! interfaces, addresses, routes, ports and firewall, and starts with nothing but a
//! loopback interface `lo`, **down**. That is why, in the course, `python3 -m
//! http.server` inside `ip netns exec mynet` cannot be reached even from inside until
//! `ip link set lo up`: connecting to 127.0.0.1 is "connection refused" (no route).
//!
//! Docker's default network is built from three kernel objects, all made by netlink
//! messages (rtnetlink(7)), which this lab sends one by one:
//!
//! 1. **a bridge** (`RTM_NEWLINK {kind: bridge}`), `docker0`: a software switch on the
//!    host. Its own address (`RTM_NEWADDR`, 172.17.0.1/16 for docker0) makes the host a
//!    member of the network and the containers' gateway.
//! 2. **a veth pair** per container (`RTM_NEWLINK {kind: veth, peer: ...}`): a virtual
//!    cable. One end is created directly inside the container's namespace
//!    (`IFLA_NET_NS_FD`) as `eth0`, the other stays on the host and is plugged into the
//!    bridge (`IFLA_MASTER`). Then, inside: address, `up`, `lo` up, and a default route
//!    via the gateway (`RTM_NEWROUTE`).
//! 3. **NAT rules** (nftables, `NFT_MSG_NEWRULE`): masquerade so containers reach the
//!    outside with the host's address, and DNAT for published ports (`-p 8080:80`).
//!    The kernel only forwards between interfaces when `net.ipv4.ip_forward` is 1.
//!
//! To act inside a namespace, a process enters it with setns(2) and opens a netlink
//! socket there; the socket stays bound to that namespace after the process returns.
//!
//! ## Named namespaces: `/run/netns`
//!
//! A namespace lives as long as something refers to it: a process inside, an open
//! file descriptor, or a **bind mount** of its `/proc/PID/ns/net` file. `ip netns add
//! NAME` creates an empty file `/run/netns/NAME`, unshares a network namespace, and
//! bind-mounts `/proc/self/ns/net` onto that file; `netns add` does exactly the same,
//! so `ip netns exec` and `netns-bridge netns exec` see each other's namespaces.
//! /run/netns is made a *shared* mount first so the bind mounts appear in other mount
//! namespaces too. `--pid PID` names instead the namespace of a running process
//! (`/proc/PID/ns/net`), which is how a runtime attaches a container it just started.
//!
//! ## Addresses (IPAM) and names
//!
//! Each network has a state file under `$CONTLAB_RUN_DIR` (default /run/contlab):
//! its subnet, gateway, the addresses handed out, published ports. Every command that
//! changes it first takes `flock(2)` on `$CONTLAB_RUN_DIR/lock`, so two `attach` at the
//! same time never take the same address. A hosts file per network lists each named
//! host; `netns exec` bind-mounts it on /etc/hosts, so `ping c2` works as in the course.
//!
//! ## What goes wrong
//!
//! - Two networks whose subnets overlap would make routing ambiguous: refused.
//! - Interface names are at most 15 bytes (`IFNAMSIZ` is 16 with the NUL).
//! - A failure half-way through `attach` deletes the host end of the veth pair, which
//!   deletes both ends; the lease is written only once everything worked.
//! - Without isolation rules, once `ip_forward` is on the host routes between all its
//!   networks: `nat` adds `forward` drop rules between contlab's networks, as docker does.
//! - Published ports from localhost need `route_localnet` on the bridge (packets from
//!   127.0.0.1 may not otherwise be routed out) and a masquerade of those sources.
//! - `detach` is slow by nature: `RTM_DELLINK` of a veth pair returns only once the
//!   kernel has waited for an RCU barrier (every reader of the interface gone), about
//!   20 ms on a small machine, and `ip link del` or a CNI plugin wait just as long.

pub mod ipam;
pub mod model;
pub mod nat;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::cli::CommonOpts;
use crate::error::{Error, Hint, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{CloneFlags, Errno, Kernel, MntFlags, MsFlags, SysError};
use ipam::{Lease, Network, Publish, Subnet, Vxlan};
use model::{LinkChange, NftMsg};

/// Where named network namespaces are bound, as `ip netns` does.
pub const NETNS_DIR: &str = "/run/netns";

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
    /// HOST_PORT:PORT[/tcp|udp], as docker's `-p 8080:80`.
    pub spec: String,
    /// The address inside a network that receives the connections.
    #[arg(long, value_name = "A.B.C.D")]
    pub to: Ipv4Addr,
}

/// `unpublish`.
#[derive(Args, Debug)]
pub struct UnpublishArgs {
    /// HOST_PORT[/tcp|udp].
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
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let role = match &cli.sub {
        Sub::Netns(NetnsCmd::Exec { .. }) => Role::Wrapper,
        _ => Role::Tool,
    };
    let k = cli.common.kernel("netns-bridge").map_err(|e| (e, role))?;
    let r = dispatch(&k, cli.sub);
    r.map(|e| (e, role)).map_err(|e| (e, role))
}

fn dispatch(k: &Kernel, sub: Sub) -> Result<Exit> {
    let read_only = matches!(sub, Sub::Show(_) | Sub::Netns(NetnsCmd::Ls) | Sub::Bridge(BridgeCmd::Ls));
    if !read_only {
        need_root(k)?;
    }
    match sub {
        Sub::Netns(NetnsCmd::Add { name }) => netns_add(k, &name),
        Sub::Netns(NetnsCmd::Ls) => netns_ls(k),
        Sub::Netns(NetnsCmd::Rm { name }) => netns_rm(k, &name),
        Sub::Netns(NetnsCmd::Exec { name, command }) => netns_exec(k, &name, &command),
        Sub::Bridge(BridgeCmd::Create { name, subnet }) => bridge_create(k, &name, &subnet),
        Sub::Bridge(BridgeCmd::Rm { name }) => bridge_rm(k, &name),
        Sub::Bridge(BridgeCmd::Ls) => bridge_ls(k),
        Sub::Attach(a) => attach(k, &a),
        Sub::Detach(a) => detach(k, &a),
        Sub::Nat(a) => nat_cmd(k, &a),
        Sub::Publish(a) => publish(k, &a),
        Sub::Unpublish(a) => unpublish(k, &a),
        Sub::Vxlan(VxlanCmd::Add { bridge, vni, remote, dev, port }) => {
            vxlan_add(k, &bridge, vni, remote, dev.as_deref(), port)
        }
        Sub::Vxlan(VxlanCmd::Rm { bridge, vni }) => vxlan_rm(k, &bridge, vni),
        Sub::Show(a) => show(k, &a),
    }
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

fn check_ifname(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "invalid {what} name {name:?}: an interface name has 1 to 15 bytes (IFNAMSIZ is 16 with the NUL), without '/', ':' or spaces"
        )));
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

// ----- state -----------------------------------------------------------------------

struct State {
    run: PathBuf,
    nets: Vec<Network>,
}

/// Take the lock, then read every network's state. The lock is held until the
/// returned guard is dropped (the end of the command).
fn locked(k: &Kernel) -> Result<(impl Sized, State)> {
    let run = ipam::run_dir();
    for d in [run.clone(), ipam::net_dir(&run)] {
        if !k.exists(&d) {
            match k.mkdir(&d, 0o755) {
                Err(e) if e.errno != Errno::EEXIST => Err(e)?,
                _ => {}
            }
        }
    }
    let guard = crate::lock::lock(
        k.why("serialize changes of the networks' state: concurrent attaches must not take the same address"),
        &run.join("lock"),
        true,
        None,
    )?;
    let nets = ipam::load_all(&run)?;
    Ok((guard, State { run, nets }))
}

fn unlocked() -> Result<State> {
    let run = ipam::run_dir();
    let nets = ipam::load_all(&run)?;
    Ok(State { run, nets })
}

impl State {
    fn get(&self, bridge: &str) -> Result<&Network> {
        self.nets.iter().find(|n| n.bridge == bridge).ok_or_else(|| no_network(bridge))
    }
    fn get_mut(&mut self, bridge: &str) -> Result<&mut Network> {
        self.nets.iter_mut().find(|n| n.bridge == bridge).ok_or_else(|| no_network(bridge))
    }
    fn save(&self, k: &Kernel, n: &Network) -> Result<()> {
        let text = serde_json::to_string_pretty(n).map_err(std::io::Error::from)? + "\n";
        // Both written in place, without O_TRUNC: the same inode (a bind mount of the
        // hosts file sees the change), and no block freed then allocated again at
        // each attach (on a filesystem mounted with `discard`, freeing a block makes
        // the kernel discard it before the call returns).
        k.rewrite_file(&ipam::state_path(&self.run, &n.bridge), &text)?;
        k.rewrite_file(&ipam::hosts_path(&self.run, &n.bridge), &n.hosts_file())?;
        Ok(())
    }
}

fn no_network(bridge: &str) -> Error {
    Error::failed(
        format!("no contlab network named {bridge:?}"),
        format!("create it first: netns-bridge bridge create {bridge} --subnet 10.200.0.1/24 (see `netns-bridge bridge ls`)"),
    )
}

/// `mount(2)` `MS_SHARED|MS_REC` on `dir`, first bind-mounting it onto itself when it
/// is not a mount point yet: namespaces bound below it then show in every mount
/// namespace that shares it (what `ip netns add` does to /run/netns).
fn make_shared_dir(k: &Kernel, dir: &Path) -> std::result::Result<(), SysError> {
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match k.mount(Some(""), dir, Some("none"), shared, None) {
        Err(e) if e.errno == Errno::EINVAL => {
            k.why("not a mount point yet: bind it onto itself to make it one").mount(
                Some(&dir.to_string_lossy()),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            k.mount(Some(""), dir, Some("none"), shared, None)
        }
        r => r,
    }
}

/// `mount(2)` `MS_BIND` of this process's network namespace (`/proc/self/ns/net`)
/// onto `target`: the namespace now lives as long as the mount, with no process in it.
fn bind_netns(k: &Kernel, target: &Path) -> std::result::Result<(), SysError> {
    k.mount(Some("/proc/self/ns/net"), target, Some("none"), MsFlags::MS_BIND, None)
}

/// What `ip netns exec` does to the mounts after joining a network namespace:
/// `unshare(CLONE_NEWNS)`, make `/` a slave, remount /sys so it lists this
/// namespace's interfaces, and bind `hosts` (if any) onto /etc/hosts.
fn netns_exec_mounts(k: &Kernel, hosts: Option<&Path>) -> std::result::Result<(), SysError> {
    k.unshare(CloneFlags::CLONE_NEWNS)?;
    k.why("mounts made from here on must not propagate back to the host").mount(
        Some(""),
        Path::new("/"),
        Some("none"),
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None,
    )?;
    k.why("/sys shows the interfaces of the namespace that mounted it: mount it again from here")
        .umount2(Path::new("/sys"), MntFlags::MNT_DETACH)?;
    k.mount(Some("sysfs"), Path::new("/sys"), Some("sysfs"), MsFlags::empty(), None)?;
    if let Some(h) = hosts {
        k.why("give the command the network's hosts file, so peers resolve by name").mount(
            Some(&h.to_string_lossy()),
            Path::new("/etc/hosts"),
            Some("none"),
            MsFlags::MS_BIND,
            None,
        )?;
    }
    Ok(())
}

fn index_of(k: &Kernel, ns: Option<&Path>, name: &str) -> Result<u32> {
    match k.link_by_name(ns, name) {
        Ok(l) => Ok(l.index),
        Err(_) if k.mode() == crate::kernel::Mode::DryRun => Ok(0),
        Err(e) if e.errno == Errno::ENODEV => {
            Err(Error::failed(format!("no interface named {name:?}"), "check with `netns-bridge show`"))
        }
        Err(e) => Err(e.into()),
    }
}

// ----- netns -----------------------------------------------------------------------

fn netns_add(k: &Kernel, name: &str) -> Result<Exit> {
    check_nsname(name)?;
    let dir = Path::new(NETNS_DIR);
    if !k.exists(dir) {
        match k.mkdir(dir, 0o755) {
            Err(e) if e.errno != Errno::EEXIST => Err(e)?,
            _ => {}
        }
    }
    make_shared_dir(
        k.why("namespaces bound below /run/netns must show in every mount namespace, as with ip netns"),
        dir,
    )?;
    let path = dir.join(name);
    k.why("the file the namespace will be bind-mounted on").create_excl(&path).hint(
        Errno::EEXIST,
        &format!("a namespace named {name:?} exists: pick another name, or `netns-bridge netns rm {name}`"),
    )?;
    let child = k.fork_with(|k| {
        let r = k
            .why("a new, empty network namespace: only lo, down")
            .unshare(CloneFlags::CLONE_NEWNET)
            .and_then(|_| bind_netns(k.why("keep the namespace alive with no process in it"), &path));
        match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("netns-bridge: {}", Error::from(e));
                1
            }
        }
    })?;
    let st = k.wait(child)?;
    if st != crate::kernel::Exited::Code(0) {
        let _ = k.why("undo: the namespace was not created").unlink(&path);
        return Err(Error::failed(format!("could not create the namespace {name:?}"), "see the error above"));
    }
    println!("{}", path.display());
    Ok(Exit::Ok)
}

fn netns_ls(k: &Kernel) -> Result<Exit> {
    let names = match k.read_dir(Path::new(NETNS_DIR)) {
        Ok(v) => v,
        Err(e) if e.errno == Errno::ENOENT => vec![],
        Err(e) => Err(e)?,
    };
    let st = unlocked()?;
    let mut out = String::new();
    for n in names {
        let nets: Vec<String> = st
            .nets
            .iter()
            .flat_map(|net| net.leases.iter().filter(|l| l.netns == n).map(|l| format!("{} {}", net.bridge, l.ip)))
            .collect();
        match nets.is_empty() {
            true => out.push_str(&format!("{n}\n")),
            false => out.push_str(&format!("{n}\t{}\n", nets.join(", "))),
        }
    }
    print_out(&out)
}

fn print_out(s: &str) -> Result<Exit> {
    use std::io::Write;
    std::io::stdout().lock().write_all(s.as_bytes())?;
    Ok(Exit::Ok)
}

fn netns_rm(k: &Kernel, name: &str) -> Result<Exit> {
    check_nsname(name)?;
    let path = Path::new(NETNS_DIR).join(name);
    let (_lock, mut st) = locked(k)?;
    k.why(
        "the mount is what keeps the namespace alive; once gone, its interfaces (and their veth peers) are destroyed",
    )
    .umount2(&path, MntFlags::MNT_DETACH)
    .hint(Errno::EINVAL, &format!("{} is not a namespace mount", path.display()))
    .map_err(|e| missing_ns(e, name))?;
    k.unlink(&path)?;
    let nets: Vec<Network> = st.nets.clone();
    for n in nets {
        if n.leases.iter().any(|l| l.netns == name) {
            k.note(format!("release the addresses of {name} on {}", n.bridge));
            let net = st.get_mut(&n.bridge)?;
            net.leases.retain(|l| l.netns != name);
            let net = net.clone();
            st.save(k, &net)?;
        }
    }
    Ok(Exit::Ok)
}

fn missing_ns(e: Error, name: &str) -> Error {
    match e.errno() {
        Some(Errno::ENOENT) => Error::failed(
            format!("no network namespace named {name:?} ({NETNS_DIR}/{name} does not exist)"),
            "list them with `netns-bridge netns ls`, create one with `netns-bridge netns add NAME`",
        ),
        _ => e,
    }
}

fn netns_exec(k: &Kernel, name: &str, command: &[String]) -> Result<Exit> {
    check_nsname(name)?;
    let path = Path::new(NETNS_DIR).join(name);
    k.netns_open(&path).map_err(|e| missing_ns(e.into(), name))?;
    let st = unlocked()?;
    let hosts =
        st.nets.iter().find(|n| n.leases.iter().any(|l| l.netns == name)).map(|n| ipam::hosts_path(&st.run, &n.bridge));
    k.why("run the command in the namespace").setns_net(&path)?;
    netns_exec_mounts(k, hosts.as_deref())?;
    let child = k.spawn(command, |_| Ok(()))?;
    let status = k.wait(child.pid)?;
    Ok(Exit::of(status))
}

// ----- bridges ---------------------------------------------------------------------

fn bridge_create(k: &Kernel, name: &str, subnet: &str) -> Result<Exit> {
    check_ifname("bridge", name)?;
    let (gw, len) = ipam::parse_cidr(subnet, None)?;
    let sub = Subnet::of(gw, len);
    if !sub.is_host(gw) {
        return Err(Error::Usage(format!(
            "{gw} is the network or broadcast address of {sub}: give the gateway, e.g. {}/{len}",
            Ipv4Addr::from(u32::from(sub.net) + 1)
        )));
    }
    let (_lock, st) = locked(k)?;
    if st.nets.iter().any(|n| n.bridge == name) {
        return Err(Error::failed(
            format!("a contlab network named {name:?} already exists"),
            format!("pick another name, or remove it: netns-bridge bridge rm {name}"),
        ));
    }
    if let Some(o) = st.nets.iter().find(|n| n.subnet.overlaps(&sub)) {
        return Err(Error::failed(
            format!("the subnet {sub} overlaps {} of the network {:?}", o.subnet, o.bridge),
            "routing to two networks sharing addresses would be ambiguous: choose a disjoint subnet",
        ));
    }
    k.why("the network's virtual switch")
        .link_add_bridge(None, name)
        .hint(Errno::EEXIST, &format!("an interface named {name:?} exists already on this host: pick another name"))?;
    let undo = |k: &Kernel, e: Error| -> Error {
        if k.why("undo: the bridge is half configured").link_del(None, name).is_err() {
            k.note(format!("leftover: remove it with `ip link del {name}`"));
        }
        e
    };
    let idx = index_of(k, None, name).map_err(|e| undo(k, e))?;
    k.why("the bridge's address is the network's gateway, and makes the host a member")
        .addr_add(None, idx, name, gw, len)
        .map_err(|e| undo(k, e.into()))?;
    k.link_set(None, idx, name, &LinkChange { up: true, master: None }).map_err(|e| undo(k, e.into()))?;
    let net = Network {
        bridge: name.into(),
        subnet: sub,
        gateway: gw,
        nat: false,
        leases: vec![],
        published: vec![],
        vxlans: vec![],
    };
    st.save(k, &net).map_err(|e| undo(k, e))?;
    println!("{name} {gw}/{len}");
    Ok(Exit::Ok)
}

fn bridge_rm(k: &Kernel, name: &str) -> Result<Exit> {
    let (_lock, st) = locked(k)?;
    let net = st.get(name)?.clone();
    if !net.leases.is_empty() {
        let who: Vec<&str> = net.leases.iter().map(|l| l.netns.as_str()).collect();
        return Err(Error::failed(
            format!("the network {name:?} still has attached namespaces: {}", who.join(", ")),
            format!("detach them first: netns-bridge detach --bridge {name} --netns NAME"),
        ));
    }
    remove_rules(k, |c| c.starts_with(&format!("contlab:{name}:")) || c == format!("contlab:isolate:{name}"))?;
    for v in &net.vxlans {
        let _ = k.link_del(None, &v.name);
    }
    match k.why("deleting the bridge frees its ports").link_del(None, name) {
        Err(e) if e.errno == Errno::ENODEV => k.note(format!("the bridge {name} was already gone")),
        r => r?,
    }
    k.note("forget the network's state files");
    if k.mode() == crate::kernel::Mode::Live {
        let _ = std::fs::remove_file(ipam::state_path(&st.run, name));
        let _ = std::fs::remove_file(ipam::hosts_path(&st.run, name));
    }
    Ok(Exit::Ok)
}

fn bridge_ls(_k: &Kernel) -> Result<Exit> {
    let st = unlocked()?;
    let mut out = String::from("BRIDGE\tSUBNET\tGATEWAY\tNAT\tHOSTS\n");
    for n in &st.nets {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            n.bridge,
            n.subnet,
            n.gateway,
            if n.nat { "on" } else { "off" },
            n.leases.len()
        ));
    }
    print_out(&out)
}

/// Delete every rule of contlab's table whose comment matches.
fn remove_rules(k: &Kernel, matches: impl Fn(&str) -> bool) -> Result<usize> {
    let rules = k.nft_rules(nat::TABLE)?;
    let del: Vec<NftMsg> = rules
        .into_iter()
        .filter(|r| matches(&r.comment))
        .map(|r| NftMsg::DelRule { table: nat::TABLE.into(), chain: r.chain, handle: r.handle, comment: r.comment })
        .collect();
    if !del.is_empty() {
        k.nft(&del)?;
    }
    Ok(del.len())
}

// ----- attach / detach -------------------------------------------------------------

fn host_if(key: &str, ifname: &str, bridge: &str) -> String {
    format!("veth{}", ipam::short_hash(&format!("{bridge}/{key}/{ifname}")))
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s.split(':').filter_map(|p| u8::from_str_radix(p, 16).ok()).collect();
    if v.len() != 6 || s.split(':').count() != 6 || v[0] & 1 == 1 {
        return Err(Error::Usage(format!("invalid MAC address {s:?}: six hex bytes aa:bb:cc:dd:ee:ff, unicast")));
    }
    Ok([v[0], v[1], v[2], v[3], v[4], v[5]])
}

fn attach(k: &Kernel, a: &AttachArgs) -> Result<Exit> {
    check_ifname("bridge", &a.bridge)?;
    check_ifname("interface", &a.ifname)?;
    let mac = a.mac.as_deref().map(parse_mac).transpose()?;
    let (_lock, mut st) = locked(k)?;
    let net = st.get(&a.bridge)?;
    let key = a.target.key();
    let nspath = a.target.path();
    let ip = match a.ip.as_str() {
        "auto" => net.allocate().ok_or_else(|| {
            Error::failed(
                format!(
                    "no free address left in {} (network {:?}, {} hosts attached)",
                    net.subnet,
                    net.bridge,
                    net.leases.len()
                ),
                "detach a namespace, or create a network with a larger subnet",
            )
        })?,
        s => {
            let (ip, len) = ipam::parse_cidr(s, Some(net.subnet.len))?;
            if len != net.subnet.len || !net.subnet.is_host(ip) || ip == net.gateway {
                return Err(Error::Usage(format!(
                    "address {s} is not a free host address of the network {:?} ({}, gateway {})",
                    net.bridge, net.subnet, net.gateway
                )));
            }
            if let Some(l) = net.leases.iter().find(|l| l.ip == ip) {
                return Err(Error::failed(
                    format!("address {ip} is taken by {}", l.netns),
                    "pick another, or use --ip auto",
                ));
            }
            ip
        }
    };
    if net.leases.iter().any(|l| l.netns == key && l.ifname == a.ifname) {
        return Err(Error::failed(
            format!("{key} is already attached to {} as {}", net.bridge, a.ifname),
            "detach it first, or give another --ifname".to_string(),
        ));
    }
    let hostname = a.name.clone().or_else(|| a.target.netns.clone().filter(|n| !n.contains('/')));
    if let Some(h) = &hostname {
        if let Some(l) = net.leases.iter().find(|l| l.hostname.as_deref() == Some(h)) {
            return Err(Error::failed(
                format!("the name {h:?} is already used on {} by {}", net.bridge, l.netns),
                "give another --name",
            ));
        }
    }
    k.netns_open(&nspath).map_err(|e| {
        let e: Error = e.into();
        match (e.errno(), &a.target.pid) {
            (Some(Errno::ENOENT), Some(p)) => Error::failed(
                format!("no process {p}: cannot open /proc/{p}/ns/net"),
                "the process has exited; start it again and attach its new PID",
            ),
            (Some(Errno::ENOENT), None) => missing_ns(e, &key),
            _ => e,
        }
    })?;
    let br = index_of(k, None, &net.bridge)?;
    let hv = host_if(&key, &a.ifname, &net.bridge);
    k.why("a virtual cable: one end created inside the namespace, the other on the host")
        .link_add_veth(None, &hv, &a.ifname, &nspath, mac)
        .hint(
            Errno::EEXIST,
            &format!("an interface named {} or {hv} exists already: pick another --ifname", a.ifname),
        )?;
    let configured = configure(k, net, &hv, br, &nspath, &a.ifname, ip);
    if let Err(e) = configured {
        if k.why("undo: deleting the host end deletes both ends of the pair").link_del(None, &hv).is_err() {
            k.note(format!("leftover: remove it with `ip link del {hv}`"));
        }
        return Err(e);
    }
    let lease = Lease {
        ip,
        netns: key,
        netns_path: nspath.to_string_lossy().into_owned(),
        ifname: a.ifname.clone(),
        host_if: hv.clone(),
        hostname,
    };
    st.get_mut(&a.bridge)?.leases.push(lease);
    let net = st.get(&a.bridge)?;
    if let Err(e) = st.save(k, net) {
        let _ = k.why("undo: the lease could not be saved").link_del(None, &hv);
        return Err(e);
    }
    println!("{ip}/{}", net.subnet.len);
    Ok(Exit::Ok)
}

fn configure(k: &Kernel, net: &Network, hv: &str, br: u32, ns: &Path, ifname: &str, ip: Ipv4Addr) -> Result<()> {
    let hidx = index_of(k, None, hv)?;
    k.why("plug the host end into the bridge and switch it on").link_set(
        None,
        hidx,
        hv,
        &LinkChange { up: true, master: Some((br, net.bridge.clone())) },
    )?;
    let inside = Some(ns);
    let links = if k.mode() == crate::kernel::Mode::Live { k.links(inside)? } else { vec![] };
    let find = |n: &str| links.iter().find(|l| l.name == n).map(|l| l.index).unwrap_or(0);
    let (idx, lo) = (find(ifname), find("lo"));
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
    Ok(())
}

fn detach(k: &Kernel, a: &DetachArgs) -> Result<Exit> {
    let (_lock, mut st) = locked(k)?;
    let key = a.target.key();
    let net = st.get_mut(&a.bridge)?;
    let Some(pos) = net.leases.iter().position(|l| l.netns == key && l.ifname == a.ifname) else {
        return Err(Error::failed(
            format!("{key} is not attached to {} as {}", a.bridge, a.ifname),
            "see `netns-bridge show` for what is attached",
        ));
    };
    let lease = net.leases.remove(pos);
    match k.why("deleting the host end deletes both ends of the veth pair").link_del(None, &lease.host_if) {
        Err(e) if e.errno == Errno::ENODEV => {
            k.note(format!("{} is already gone (its namespace was destroyed)", lease.host_if))
        }
        r => r?,
    }
    st.save(k, st.get(&a.bridge)?)?;
    println!("{}", lease.ip);
    Ok(Exit::Ok)
}

// ----- NAT and ports ---------------------------------------------------------------

fn forwarding(k: &Kernel) -> Result<()> {
    k.why("route packets between interfaces (off by default in every namespace)")
        .write_file(Path::new("/proc/sys/net/ipv4/ip_forward"), "1")?;
    Ok(())
}

fn nat_cmd(k: &Kernel, a: &NatArgs) -> Result<Exit> {
    let (_lock, mut st) = locked(k)?;
    let net = st.get(&a.name)?.clone();
    let name = net.bridge.clone();
    if a.off {
        let n = remove_rules(k, |c| c == format!("contlab:{name}:nat") || c == format!("contlab:{name}:isolate"))?;
        k.note(format!("{n} rules removed"));
        let net = st.get_mut(&name)?;
        net.nat = false;
        let net = net.clone();
        st.save(k, &net)?;
        return Ok(Exit::Ok);
    }
    if net.nat {
        k.note(format!("masquerading is already on for {name}"));
        return Ok(Exit::Ok);
    }
    forwarding(k)?;
    let mut batch = nat::skeleton();
    batch.push(nat::masquerade(&name, &net.subnet));
    for o in st.nets.iter().filter(|o| o.bridge != name) {
        batch.push(nat::isolate(&name, &o.bridge, &name));
        batch.push(nat::isolate(&o.bridge, &name, &name));
    }
    k.why("one transaction: the table, its chains and the rules, applied together or not at all").nft(&batch)?;
    let net = st.get_mut(&name)?;
    net.nat = true;
    let net = net.clone();
    st.save(k, &net)?;
    Ok(Exit::Ok)
}

fn parse_port_spec(s: &str, want_inner: bool) -> Result<(u16, u16, String)> {
    let bad = || {
        Error::Usage(format!(
            "invalid port {s:?}: expected {}",
            if want_inner { "HOST_PORT:PORT[/tcp|udp], e.g. 8080:80" } else { "HOST_PORT[/tcp|udp], e.g. 8080/tcp" }
        ))
    };
    let (ports, proto) = match s.split_once('/') {
        Some((p, pr)) if pr == "tcp" || pr == "udp" => (p, pr.to_string()),
        Some(_) => return Err(bad()),
        None => (s, "tcp".to_string()),
    };
    let num = |x: &str| x.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
    match (ports.split_once(':'), want_inner) {
        (Some((h, c)), true) => Ok((num(h)?, num(c)?, proto)),
        (None, false) => {
            let h = num(ports)?;
            Ok((h, h, proto))
        }
        _ => Err(bad()),
    }
}

/// Whether something listens on `port` in this namespace (/proc/net/tcp, tcp6, udp, udp6).
fn listening(k: &Kernel, port: u16, proto: &str) -> bool {
    let want = format!(":{port:04X}");
    [format!("/proc/net/{proto}"), format!("/proc/net/{proto}6")].iter().any(|file| {
        let Ok(text) = k.why("is the host port already taken by a listening socket?").read_file(Path::new(file)) else {
            return false;
        };
        text.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && (proto == "udp" || f[3] == "0A")
        })
    })
}

fn publish(k: &Kernel, a: &PublishArgs) -> Result<Exit> {
    let (host_port, port, proto) = parse_port_spec(&a.spec, true)?;
    let (_lock, mut st) = locked(k)?;
    let Some(net) = st.nets.iter().find(|n| n.subnet.contains(a.to)).cloned() else {
        return Err(Error::failed(
            format!("{} is in no contlab network", a.to),
            "give --to the address of an attached namespace (see `netns-bridge show`)",
        ));
    };
    if !net.leases.iter().any(|l| l.ip == a.to) {
        return Err(Error::failed(
            format!("no namespace holds {} on {}", a.to, net.bridge),
            "attach one first, or check the address with `netns-bridge show`",
        ));
    }
    if let Some((b, p)) = st
        .nets
        .iter()
        .flat_map(|n| n.published.iter().map(move |p| (&n.bridge, p)))
        .find(|(_, p)| p.host_port == host_port && p.proto == proto)
    {
        return Err(Error::failed(
            format!("port {host_port}/{proto} is in use: already published to {}:{} on {b}", p.to, p.port),
            format!("choose another host port, or remove it: netns-bridge unpublish {host_port}/{proto}"),
        ));
    }
    if listening(k, host_port, &proto) {
        return Err(Error::failed(
            format!("port {host_port}/{proto} is in use: a process on this host listens on it"),
            "choose another host port, or stop that process",
        ));
    }
    forwarding(k)?;
    k.why("let packets from 127.0.0.1 be routed to the bridge, so localhost:HOST_PORT works")
        .write_file(&Path::new("/proc/sys/net/ipv4/conf").join(&net.bridge).join("route_localnet"), "1")?;
    let mut batch = nat::skeleton();
    batch.extend(nat::publish(&net.bridge, host_port, a.to, port, &proto));
    k.why("DNAT: connections to this host's HOST_PORT go to the container").nft(&batch)?;
    let n = st.get_mut(&net.bridge)?;
    n.published.push(Publish { host_port, port, proto: proto.clone(), to: a.to });
    let n = n.clone();
    st.save(k, &n)?;
    println!("{host_port}/{proto} -> {}:{port}", a.to);
    Ok(Exit::Ok)
}

fn unpublish(k: &Kernel, a: &UnpublishArgs) -> Result<Exit> {
    let (host_port, _, proto) = parse_port_spec(&a.spec, false)?;
    let (_lock, mut st) = locked(k)?;
    let Some(bridge) = st
        .nets
        .iter()
        .find(|n| n.published.iter().any(|p| p.host_port == host_port && p.proto == proto))
        .map(|n| n.bridge.clone())
    else {
        return Err(Error::failed(format!("port {host_port}/{proto} is not published"), "see `netns-bridge show`"));
    };
    let comment = nat::publish_comment(&bridge, host_port, &proto);
    remove_rules(k, |c| c == comment)?;
    let n = st.get_mut(&bridge)?;
    n.published.retain(|p| !(p.host_port == host_port && p.proto == proto));
    let n = n.clone();
    st.save(k, &n)?;
    Ok(Exit::Ok)
}

// ----- vxlan -----------------------------------------------------------------------

fn vxlan_add(k: &Kernel, bridge: &str, vni: u32, remote: Ipv4Addr, dev: Option<&str>, port: u16) -> Result<Exit> {
    if vni == 0 || vni > 0xFF_FFFF {
        return Err(Error::Usage(format!("invalid VNI {vni}: 1 to 16777215")));
    }
    let (_lock, mut st) = locked(k)?;
    let net = st.get(bridge)?.clone();
    let name = format!("vxlan{vni}");
    let dev = match dev {
        Some(d) => Some((index_of(k, None, d)?, d)),
        None => None,
    };
    let br = index_of(k, None, bridge)?;
    k.why("an ethernet tunnel over UDP: frames for the other host travel inside datagrams")
        .link_add_vxlan(None, &name, vni, remote, dev, port)
        .hint(Errno::EEXIST, &format!("{name} exists: VNI {vni} is already used on this host"))?;
    let r = index_of(k, None, &name).and_then(|i| {
        k.why("the tunnel becomes one more port of the bridge")
            .link_set(None, i, &name, &LinkChange { up: true, master: Some((br, net.bridge.clone())) })
            .map_err(Error::from)
    });
    if let Err(e) = r {
        let _ = k.why("undo").link_del(None, &name);
        return Err(e);
    }
    let n = st.get_mut(bridge)?;
    n.vxlans.push(Vxlan { name: name.clone(), vni, remote });
    let n = n.clone();
    st.save(k, &n)?;
    println!("{name}");
    Ok(Exit::Ok)
}

fn vxlan_rm(k: &Kernel, bridge: &str, vni: u32) -> Result<Exit> {
    let (_lock, mut st) = locked(k)?;
    let n = st.get_mut(bridge)?;
    let name = format!("vxlan{vni}");
    if !n.vxlans.iter().any(|v| v.vni == vni) {
        return Err(Error::failed(format!("no vxlan {vni} on {bridge}"), "see `netns-bridge show`"));
    }
    n.vxlans.retain(|v| v.vni != vni);
    let n = n.clone();
    k.link_del(None, &name)?;
    st.save(k, &n)?;
    Ok(Exit::Ok)
}

// ----- show ------------------------------------------------------------------------

/// The topology `show --json` prints.
#[derive(Debug, Serialize)]
pub struct Topology {
    /// The networks.
    pub bridges: Vec<BridgeView>,
    /// Named namespaces under /run/netns.
    pub namespaces: Vec<String>,
    /// The host's IPv4 routes (main table).
    pub routes: Vec<String>,
}

/// One bridge as `show` sees it.
#[derive(Debug, Serialize)]
pub struct BridgeView {
    /// Name.
    pub name: String,
    /// Subnet.
    pub subnet: String,
    /// Gateway.
    pub gateway: Ipv4Addr,
    /// Whether the interface exists and is up.
    pub up: bool,
    /// Masquerading on.
    pub nat: bool,
    /// Ports: host-side interfaces enslaved to the bridge (from the kernel).
    pub ports: Vec<String>,
    /// Attached namespaces (from the state), with their routes.
    pub hosts: Vec<HostView>,
    /// Published ports.
    pub published: Vec<Publish>,
    /// vxlan ports.
    pub vxlans: Vec<Vxlan>,
}

/// One attached namespace.
#[derive(Debug, Serialize)]
pub struct HostView {
    /// The lease.
    #[serde(flatten)]
    pub lease: Lease,
    /// Its routes, read inside it (empty when the namespace is gone).
    pub routes: Vec<String>,
}

fn route_text(r: &model::Route, names: &impl Fn(u32) -> String) -> String {
    let dst = r.dst.map(|(d, l)| format!("{d}/{l}")).unwrap_or_else(|| "default".into());
    let mut s = dst;
    if let Some(g) = r.gateway {
        s.push_str(&format!(" via {g}"));
    }
    if let Some(o) = r.oif {
        s.push_str(&format!(" dev {}", names(o)));
    }
    s
}

fn show(k: &Kernel, a: &ShowArgs) -> Result<Exit> {
    let st = unlocked()?;
    let links = k.links(None)?;
    let name_of = |links: &[model::Link], i: u32| {
        links.iter().find(|l| l.index == i).map(|l| l.name.clone()).unwrap_or_else(|| format!("if{i}"))
    };
    let routes: Vec<String> = k.routes(None)?.iter().map(|r| route_text(r, &|i| name_of(&links, i))).collect();
    let namespaces = k.read_dir(Path::new(NETNS_DIR)).unwrap_or_default();
    let mut bridges = Vec::new();
    for n in &st.nets {
        let bl = links.iter().find(|l| l.name == n.bridge);
        let ports = bl
            .map(|b| links.iter().filter(|l| l.master == Some(b.index)).map(|l| l.name.clone()).collect())
            .unwrap_or_default();
        let mut hosts = Vec::new();
        for l in &n.leases {
            let p = Path::new(&l.netns_path);
            let routes = match k.netns_open(p) {
                Ok(()) => {
                    let inner = k.links(Some(p)).unwrap_or_default();
                    k.routes(Some(p))
                        .map(|v| v.iter().map(|r| route_text(r, &|i| name_of(&inner, i))).collect())
                        .unwrap_or_default()
                }
                Err(_) => vec![],
            };
            hosts.push(HostView { lease: l.clone(), routes });
        }
        bridges.push(BridgeView {
            name: n.bridge.clone(),
            subnet: n.subnet.to_string(),
            gateway: n.gateway,
            up: bl.is_some_and(|b| b.up),
            nat: n.nat,
            ports,
            hosts,
            published: n.published.clone(),
            vxlans: n.vxlans.clone(),
        });
    }
    let topo = Topology { bridges, namespaces, routes };
    let out = if a.json {
        serde_json::to_string_pretty(&topo).map_err(std::io::Error::from)? + "\n"
    } else if a.dot {
        dot(&topo)
    } else {
        text(&topo)
    };
    print_out(&out)
}

fn text(t: &Topology) -> String {
    let mut s = String::new();
    for b in &t.bridges {
        s.push_str(&format!(
            "bridge {} {}/{} {} nat:{}\n",
            b.name,
            b.gateway,
            b.subnet.split('/').nth(1).unwrap_or(""),
            if b.up { "up" } else { "DOWN" },
            if b.nat { "on" } else { "off" }
        ));
        for h in &b.hosts {
            s.push_str(&format!(
                "  port {} <-> {} {} {} {}\n",
                h.lease.host_if,
                h.lease.netns,
                h.lease.ifname,
                h.lease.ip,
                h.lease.hostname.as_deref().unwrap_or("-")
            ));
            for r in &h.routes {
                s.push_str(&format!("      route {r}\n"));
            }
        }
        for v in &b.vxlans {
            s.push_str(&format!("  port {} vxlan id {} remote {}\n", v.name, v.vni, v.remote));
        }
        for p in &b.published {
            s.push_str(&format!("  publish {}/{} -> {}:{}\n", p.host_port, p.proto, p.to, p.port));
        }
    }
    s.push_str(&format!("namespaces: {}\n", t.namespaces.join(" ")));
    for r in &t.routes {
        s.push_str(&format!("route {r}\n"));
    }
    s
}

fn dot(t: &Topology) -> String {
    let mut s =
        String::from("graph contlab {\n  node [fontname=\"monospace\"];\n  host [shape=box3d, label=\"host\"];\n");
    for b in &t.bridges {
        s.push_str(&format!(
            "  \"br:{0}\" [shape=box, label=\"{0}\\n{1}/{2}\"];\n  host -- \"br:{0}\" [label=\"{1}\"];\n",
            b.name,
            b.gateway,
            b.subnet.split('/').nth(1).unwrap_or("")
        ));
        for h in &b.hosts {
            s.push_str(&format!(
                "  \"ns:{0}\" [shape=ellipse, label=\"{0}\"];\n  \"br:{1}\" -- \"ns:{0}\" [taillabel=\"{2}\", headlabel=\"{3} {4}\"];\n",
                h.lease.netns, b.name, h.lease.host_if, h.lease.ifname, h.lease.ip
            ));
        }
        for v in &b.vxlans {
            s.push_str(&format!(
                "  \"remote:{0}\" [shape=cloud, label=\"{0}\"];\n  \"br:{1}\" -- \"remote:{0}\" [label=\"{2} vni {3}\", style=dashed];\n",
                v.remote, b.name, v.name, v.vni
            ));
        }
        for p in &b.published {
            s.push_str(&format!(
                "  host -- \"br:{}\" [label=\":{}/{} -> {}:{}\", style=dotted];\n",
                b.name, p.host_port, p.proto, p.to, p.port
            ));
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs() {
        assert_eq!(parse_port_spec("8080:80", true).unwrap(), (8080, 80, "tcp".into()));
        assert_eq!(parse_port_spec("53:53/udp", true).unwrap(), (53, 53, "udp".into()));
        assert!(matches!(parse_port_spec("8080", true), Err(Error::Usage(_))));
        assert!(matches!(parse_port_spec("8080:0", true), Err(Error::Usage(_))));
        assert!(matches!(parse_port_spec("80:80/sctp", true), Err(Error::Usage(_))));
        assert_eq!(parse_port_spec("8080/udp", false).unwrap(), (8080, 8080, "udp".into()));
    }

    #[test]
    fn names() {
        assert!(check_ifname("bridge", "br0").is_ok());
        assert!(matches!(check_ifname("bridge", "a-very-long-name"), Err(Error::Usage(_))));
        assert!(check_nsname("../x").is_err());
        assert!(host_if("c1", "eth0", "br0").len() <= 15);
        assert!(parse_mac("02:42:ac:11:00:02").is_ok());
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
    }

    #[test]
    fn dry_run_bridge_create_records_the_netlink_plan() {
        let k = Kernel::recording("netns-bridge");
        k.link_add_bridge(None, "br0").unwrap();
        k.addr_add(None, 0, "br0", "10.200.0.1".parse().unwrap(), 24).unwrap();
        let calls: Vec<String> = k.events().iter().map(|e| e.call_text()).collect();
        assert!(
            calls
                .contains(&"RTM_NEWLINK {kind: bridge, name: \"br0\", flags: NLM_F_CREATE|NLM_F_EXCL} = 0".to_string()),
            "{calls:?}"
        );
        assert!(calls.iter().any(|c| c.starts_with("RTM_NEWADDR {dev: \"br0\", local: 10.200.0.1/24")), "{calls:?}");
    }
}
