//! rtnetlink: how a process asks the kernel to create interfaces, addresses, routes
//! (rtnetlink, `NETLINK_ROUTE`); packet-filter rules are in `nft.rs`.
//!
//! A netlink socket is a datagram socket whose other end is the kernel. Each request
//! is one message (`RTM_NEWLINK`, `RTM_NEWADDR`, `NFT_MSG_NEWRULE`...) made of a fixed
//! header and a list of type-length-value attributes; the kernel answers with an
//! acknowledgement carrying an errno (0: done). A netlink socket belongs to the network
//! namespace it was *created* in, so acting inside another namespace means: enter it
//! with setns(2), open a socket, come back. The socket keeps talking to that namespace.
//!
//! rtnetlink messages are encoded by `netlink-packet-route` (pinned); nftables messages
//! are built here by hand, attribute by attribute, because no permissively licensed,
//! maintained pure-Rust crate encodes them (rustables is GPL-3.0), and because the
//! bytecode a rule compiles to is what the lab wants the student to see.
//! <https://man7.org/linux/man-pages/man7/netlink.7.html>
//! <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols, Socket, SocketAddr};
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode as Perm;

use serde::Serialize;

use super::errno_of;
use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

/// An open network-namespace file (`/run/netns/NAME` or `/proc/PID/ns/net`): holding it
/// keeps the namespace alive, and its descriptor names the namespace in requests.
#[derive(Debug)]
struct NetnsFile {
    fd: Option<OwnedFd>,
    path: String,
}

impl NetnsFile {
    fn raw(&self) -> i32 {
        self.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1)
    }
    fn shown(&self) -> String {
        format!("{}<{}>", self.raw(), self.path)
    }
}

/// A netlink socket bound to one network namespace.
struct Rtnl {
    sock: Socket,
    seq: Cell<u32>,
    /// The receive buffer, allocated once per socket (not 64 KiB zeroed per request).
    rx: RefCell<Vec<u8>>,
}

impl Rtnl {
    fn next(&self) -> u32 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }
}

/// The namespaces a [`Kernel`] opened, and the rtnetlink socket opened in each (key:
/// the namespace file's path; "" for the process's own namespace). Kept in the
/// `Kernel` value, so two kernels (or a forked child's) never share sockets by accident.
#[derive(Default)]
pub(crate) struct OpenNs(HashMap<PathBuf, (Option<NetnsFile>, Option<Rtnl>)>, HashSet<PathBuf>);

/// The ethernet address as `aa:bb:cc:dd:ee:ff`.
fn mac_text(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":")
}

fn rt_send(r: &Rtnl, msg: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, Errno> {
    let seq = r.next();
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
    packet.header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
    packet.header.sequence_number = seq;
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    r.sock.send(&buf, 0).map_err(errno_of)?;
    let mut out = Vec::new();
    let mut rx = r.rx.borrow_mut();
    loop {
        let n = r.sock.recv(&mut &mut rx[..], 0).map_err(errno_of)?;
        let mut off = 0;
        while off < n {
            let msg: NetlinkMessage<RouteNetlinkMessage> =
                NetlinkMessage::deserialize(&rx[off..n]).map_err(|_| Errno::EBADMSG)?;
            let len = msg.header.length as usize;
            if msg.header.sequence_number == seq {
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            Some(c) => Err(Errno::from_raw(-c.get())),
                            None => Ok(out),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
    }
}

fn link_of(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        master: None,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Controller(i) => l.master = Some(*i),
            LinkAttribute::Address(b) if b.len() == 6 => l.mac = Some(mac_text(b)),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn link_msg(index: u32, name: Option<&str>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if let Some(n) = name {
        m.attributes.push(LinkAttribute::IfName(n.to_string()));
    }
    m
}

const HOP: Call = Call {
    kind: Kind::Syscall,
    name: "setns",
    man: "setns(2)",
    what: "step into a network namespace just long enough to open a socket there (sockets stay bound to the namespace they were created in)",
    effect: Effect::Query,
};

const RTM_NEWLINK: Call = Call {
    kind: Kind::Netlink,
    name: "RTM_NEWLINK",
    man: "rtnetlink(7)",
    what: "ask the kernel to create a network interface, or to change one (up, master, name, namespace)",
    effect: Effect::Change,
};

impl OpenNs {
    /// Run `f` with the rtnetlink socket of namespace `ns` (None: this process's own).
    fn with_sock<T>(&self, ns: Option<&Path>, f: impl FnOnce(&Rtnl) -> Result<T, Errno>) -> Result<T, Errno> {
        let key = ns.map(Path::to_path_buf).unwrap_or_default();
        match self.0.get(&key) {
            Some((_, Some(r))) => f(r),
            _ => Err(Errno::EBADF),
        }
    }

    fn fd(&self, ns: &Path) -> i32 {
        self.0.get(ns).and_then(|(f, _)| f.as_ref().map(|f| f.raw())).unwrap_or(-1)
    }

    fn shown(&self, ns: &Path) -> String {
        self.0
            .get(ns)
            .and_then(|(f, _)| f.as_ref().map(|f| f.shown()))
            .unwrap_or_else(|| format!("-1<{}>", ns.display()))
    }

    /// setns(2) into `ns` (opened before).
    fn hop(&self, ns: &Path) -> Result<(), Errno> {
        match self.0.get(ns) {
            Some((Some(NetnsFile { fd: Some(f), .. }), _)) => nix::sched::setns(f, CloneFlags::CLONE_NEWNET),
            _ => Err(Errno::EBADF),
        }
    }
}

impl Kernel {
    /// `openat(2)` a network-namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`) and
    /// keep it open: the descriptor names the namespace in later requests, and holding
    /// it keeps the namespace alive. Opening twice reuses the first descriptor.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    pub fn netns_open(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a namespace file; the descriptor names the namespace and keeps it alive",
            effect: Effect::Query,
        };
        if self.netns.borrow().0.get(path).is_some_and(|e| e.0.is_some()) {
            return Ok(());
        }
        let shown = path.to_string_lossy().into_owned();
        let f = self.perform(
            &C,
            vec!["AT_FDCWD".into(), quote(&shown, 256), "O_RDONLY|O_CLOEXEC".into()],
            || unreachable!(),
            || {
                let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Perm::empty())?;
                Ok(NetnsFile { fd: Some(fd), path: shown.clone() })
            },
            |f| f.raw().to_string(),
        )?;
        self.netns.borrow_mut().0.entry(path.to_path_buf()).or_insert((None, None)).0 = Some(f);
        Ok(())
    }

    /// Forget a namespace opened by [`Kernel::netns_open`] (close its descriptor and socket).
    pub fn netns_close(&self, path: &Path) {
        self.netns.borrow_mut().0.remove(path);
    }

    /// `socket(2)` `AF_NETLINK`/`NETLINK_ROUTE`, opened inside the namespace `ns` (or
    /// this process's own): setns(2) there, open the socket, setns(2) back. The socket
    /// keeps talking to the namespace it was born in. Later requests reuse it.
    ///
    /// A dry run that cannot step into `ns` (setns needs CAP_SYS_ADMIN) says so in the
    /// trace and goes on without a socket there: the changes meant for that namespace
    /// are still shown (they are only recorded), and queries there cannot be made.
    /// <https://man7.org/linux/man-pages/man7/rtnetlink.7.html>
    fn sock(&self, ns: Option<&Path>) -> Result<(), SysError> {
        const SOCK: Call = Call {
            kind: Kind::Syscall,
            name: "socket",
            man: "netlink(7)",
            what: "open a netlink socket: a channel to the kernel's network configuration",
            effect: Effect::Query,
        };
        let key = ns.map(Path::to_path_buf).unwrap_or_default();
        {
            let open = self.netns.borrow();
            if open.0.get(&key).is_some_and(|e| e.1.is_some()) || open.1.contains(&key) {
                return Ok(());
            }
        }
        if let Some(ns) = ns {
            match self.hop_to(ns) {
                Err(e) if self.mode == super::Mode::DryRun => {
                    self.note(format!(
                        "the dry run cannot enter {} ({:?}): what it would ask there is shown, not sent; queries there cannot be made",
                        ns.display(),
                        e.errno
                    ));
                    self.netns.borrow_mut().1.insert(key);
                    return Ok(());
                }
                r => r?,
            }
        }
        let r = self.perform(
            &SOCK,
            vec!["AF_NETLINK".into(), "SOCK_RAW|SOCK_CLOEXEC".into(), "NETLINK_ROUTE".into()],
            || unreachable!(),
            || {
                let mut s = Socket::new(protocols::NETLINK_ROUTE).map_err(errno_of)?;
                s.bind_auto().map_err(errno_of)?;
                s.connect(&SocketAddr::new(0, 0)).map_err(errno_of)?;
                let fd = s.as_raw_fd();
                Ok((Rtnl { sock: s, seq: Cell::new(0), rx: RefCell::new(vec![0u8; 1 << 16]) }, fd))
            },
            |(_, fd)| fd.to_string(),
        );
        if ns.is_some() {
            self.hop_home()?;
        }
        let (r, _) = r?;
        self.netns.borrow_mut().0.entry(key).or_insert((None, None)).1 = Some(r);
        Ok(())
    }

    /// `RTM_GETLINK` dump: every interface of the socket's namespace.
    pub fn links(&self, ns: Option<&Path>) -> Result<Vec<Link>, SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_GETLINK",
            man: "rtnetlink(7)",
            what: "list the network interfaces of a namespace",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec!["{flags: NLM_F_DUMP}".into()],
            || unreachable!(),
            || {
                let msgs = self
                    .netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::GetLink(LinkMessage::default()), NLM_F_DUMP))?;
                Ok(msgs
                    .iter()
                    .filter_map(|m| match m {
                        RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                        _ => None,
                    })
                    .collect::<Vec<_>>())
            },
            |v: &Vec<Link>| format!("{} links", v.len()),
        )
    }

    /// `RTM_GETLINK` for one interface, by name (`IFLA_IFNAME`): its index, without
    /// dumping every interface of the namespace.
    pub fn link_by_name(&self, ns: Option<&Path>, name: &str) -> Result<Link, SysError> {
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_GETLINK",
            man: "rtnetlink(7)",
            what: "look up one network interface by name",
            effect: Effect::Query,
        };
        self.sock(ns)?;
        self.perform(
            &C,
            vec![format!("{{name: {}}}", quote(name, 16))],
            || unreachable!(),
            || {
                let msgs = self
                    .netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::GetLink(link_msg(0, Some(name))), 0))?;
                msgs.iter()
                    .find_map(|m| match m {
                        RouteNetlinkMessage::NewLink(l) => Some(link_of(l)),
                        _ => None,
                    })
                    .ok_or(Errno::ENODEV)
            },
            |l: &Link| format!("0 {{index: {}}}", l.index),
        )
    }

    /// `RTM_GETADDR` dump: the IPv4 addresses of the socket's namespace.
    pub fn addrs(&self, ns: Option<&Path>) -> Result<Vec<Addr>, SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_GETADDR",
            man: "rtnetlink(7)",
            what: "list the addresses of a namespace's interfaces",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec!["{family: AF_INET, flags: NLM_F_DUMP}".into()],
            || unreachable!(),
            || {
                let mut q = AddressMessage::default();
                q.header.family = AddressFamily::Inet;
                let msgs = self
                    .netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::GetAddress(q), NLM_F_DUMP))?;
                let mut out = Vec::new();
                for m in msgs {
                    if let RouteNetlinkMessage::NewAddress(a) = m {
                        for at in &a.attributes {
                            if let AddressAttribute::Local(std::net::IpAddr::V4(ip)) = at {
                                out.push(Addr { index: a.header.index, ip: *ip, prefix: a.header.prefix_len });
                            }
                        }
                    }
                }
                Ok(out)
            },
            |v: &Vec<Addr>| format!("{} addresses", v.len()),
        )
    }

    /// `RTM_GETROUTE` dump: the IPv4 routes of the main table.
    pub fn routes(&self, ns: Option<&Path>) -> Result<Vec<Route>, SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_GETROUTE",
            man: "rtnetlink(7)",
            what: "list the routing table of a namespace",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec!["{family: AF_INET, table: main, flags: NLM_F_DUMP}".into()],
            || unreachable!(),
            || {
                let mut q = RouteMessage::default();
                q.header.address_family = AddressFamily::Inet;
                let msgs =
                    self.netns.borrow().with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::GetRoute(q), NLM_F_DUMP))?;
                let mut out = Vec::new();
                for m in msgs {
                    let RouteNetlinkMessage::NewRoute(rm) = m else { continue };
                    if rm.header.table != RouteMessage::default().header.table
                        && rm.header.table != netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN
                    {
                        continue;
                    }
                    let mut rt = Route { dst: None, gateway: None, oif: None };
                    for a in &rm.attributes {
                        match a {
                            RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                                rt.dst = Some((*ip, rm.header.destination_prefix_length))
                            }
                            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => rt.gateway = Some(*ip),
                            RouteAttribute::Oif(i) => rt.oif = Some(*i),
                            _ => {}
                        }
                    }
                    let table = rm
                        .attributes
                        .iter()
                        .find_map(|a| if let RouteAttribute::Table(t) = a { Some(*t) } else { None })
                        .unwrap_or(rm.header.table as u32);
                    if table == 254 {
                        out.push(rt);
                    }
                }
                Ok(out)
            },
            |v: &Vec<Route>| format!("{} routes", v.len()),
        )
    }

    /// `RTM_NEWLINK` with `IFLA_INFO_KIND "bridge"`: a software switch. Frames that
    /// arrive on one port leave by the port that leads to their destination address.
    pub fn link_add_bridge(&self, ns: Option<&Path>, name: &str) -> Result<(), SysError> {
        self.sock(ns)?;
        let mut m = link_msg(0, Some(name));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.perform(
            &RTM_NEWLINK,
            vec![format!("{{kind: bridge, name: {}, flags: NLM_F_CREATE|NLM_F_EXCL}}", quote(name, 16))],
            || (),
            || {
                self.netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL))
                    .map(|_| ())
            },
            |_| "0".into(),
        )
    }

    /// `RTM_NEWLINK` with `IFLA_INFO_KIND "veth"`: a virtual cable, two interfaces where
    /// what enters one leaves the other. `IFLA_NET_NS_FD` in the peer's part creates
    /// that end directly inside the namespace `peer_ns`.
    pub fn link_add_veth(
        &self,
        ns: Option<&Path>,
        name: &str,
        peer: &str,
        peer_ns: &Path,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), SysError> {
        self.sock(ns)?;
        let mut p = link_msg(0, Some(peer));
        self.netns_open(peer_ns)?;
        p.attributes.push(LinkAttribute::NetNsFd(self.netns.borrow().fd(peer_ns)));
        if let Some(mac) = peer_mac {
            p.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut m = link_msg(0, Some(name));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        let mac = peer_mac.map(|m| format!(", peer_address: {}", mac_text(&m))).unwrap_or_default();
        self.perform(
            &RTM_NEWLINK,
            vec![format!(
                "{{kind: veth, name: {}, peer: {}, peer_netns: {}{mac}}}",
                quote(name, 16),
                quote(peer, 16),
                self.netns.borrow().shown(peer_ns)
            )],
            || (),
            || {
                self.netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL))
                    .map(|_| ())
            },
            |_| "0".into(),
        )
    }

    /// `RTM_NEWLINK` with `IFLA_INFO_KIND "vxlan"`: an ethernet tunnel over UDP. Frames
    /// sent to it are wrapped in UDP datagrams to `remote`, port `port`, tagged with
    /// the VXLAN network identifier `vni`: how an overlay network spans hosts.
    pub fn link_add_vxlan(
        &self,
        ns: Option<&Path>,
        name: &str,
        vni: u32,
        remote: Ipv4Addr,
        dev: Option<(u32, &str)>,
        port: u16,
    ) -> Result<(), SysError> {
        self.sock(ns)?;
        let mut data = vec![InfoVxlan::Id(vni), InfoVxlan::Group(remote), InfoVxlan::Port(port)];
        if let Some((i, _)) = dev {
            data.push(InfoVxlan::Link(i));
        }
        let mut m = link_msg(0, Some(name));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(data)),
        ]));
        let dev_s = dev.map(|(_, n)| format!(", dev: {}", quote(n, 16))).unwrap_or_default();
        // The same attribute (IFLA_VXLAN_GROUP) is a remote or, multicast, a group.
        let word = if remote.is_multicast() { "group" } else { "remote" };
        self.perform(
            &RTM_NEWLINK,
            vec![format!(
                "{{kind: vxlan, name: {}, id: {vni}, {word}: {remote}, dstport: {port}{dev_s}}}",
                quote(name, 16)
            )],
            || (),
            || {
                self.netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL))
                    .map(|_| ())
            },
            |_| "0".into(),
        )
    }

    /// `RTM_NEWLINK` on an existing interface: bring it up, enslave it to a bridge.
    pub fn link_set(&self, ns: Option<&Path>, index: u32, name: &str, ch: &LinkChange) -> Result<(), SysError> {
        self.sock(ns)?;
        let mut m = link_msg(index, None);
        let mut shown = vec![format!("name: {}", quote(name, 16))];
        if ch.up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            shown.push("flags: IFF_UP".into());
        }
        if let Some((master, mname)) = &ch.master {
            let (master, mname) = (*master, mname.as_str());
            m.attributes.push(LinkAttribute::Controller(master));
            shown.push(format!("master: {}", quote(mname, 16)));
        }
        self.perform(
            &RTM_NEWLINK,
            vec![format!("{{{}}}", shown.join(", "))],
            || (),
            || self.netns.borrow().with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewLink(m), 0)).map(|_| ()),
            |_| "0".into(),
        )
    }

    /// `RTM_SETLINK` (family `AF_BRIDGE`, `IFLA_PROTINFO {IFLA_BRPORT_MODE: 1}`) — put a
    /// bridge port in *hairpin* mode: the bridge may send a frame back out of the port
    /// it came in by, so a container can reach itself through its own published port
    /// (`bridge link set dev PORT hairpin on`).
    /// <https://man7.org/linux/man-pages/man8/bridge.8.html>
    pub fn link_set_hairpin(&self, index: u32, name: &str) -> Result<(), SysError> {
        const RTM_SETLINK: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_SETLINK",
            man: "rtnetlink(7)",
            what: "change a bridge port's settings (AF_BRIDGE): here its hairpin mode",
            effect: Effect::Change,
        };
        const IFLA_BRPORT_MODE: u16 = 4;
        self.sock(None)?;
        let mut m = link_msg(index, None);
        m.header.interface_family = AddressFamily::Bridge;
        m.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            netlink_packet_route::link::LinkProtoInfoBridge::Other(netlink_packet_core::DefaultNla::new(
                IFLA_BRPORT_MODE,
                vec![1],
            )),
        ]));
        self.perform(
            &RTM_SETLINK,
            vec![format!(
                "{{family: AF_BRIDGE, name: {}, IFLA_PROTINFO: {{IFLA_BRPORT_MODE: hairpin}}}}",
                quote(name, 16)
            )],
            || (),
            || self.netns.borrow().with_sock(None, |r| rt_send(r, RouteNetlinkMessage::SetLink(m), 0)).map(|_| ()),
            |_| "0".into(),
        )
    }

    /// `RTM_DELLINK` — delete an interface. Deleting one end of a veth pair deletes
    /// both; deleting a bridge frees its ports.
    pub fn link_del(&self, ns: Option<&Path>, name: &str) -> Result<(), SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_DELLINK",
            man: "rtnetlink(7)",
            what: "ask the kernel to delete a network interface (both ends, for a veth pair)",
            effect: Effect::Change,
        };
        let m = link_msg(0, Some(name));
        self.perform(
            &C,
            vec![format!("{{name: {}}}", quote(name, 16))],
            || (),
            || self.netns.borrow().with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::DelLink(m), 0)).map(|_| ()),
            |_| "0".into(),
        )
    }

    /// `RTM_NEWADDR` — give an interface an IPv4 address; the kernel also adds the
    /// route to the connected network (`proto kernel scope link`).
    pub fn addr_add(
        &self,
        ns: Option<&Path>,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_NEWADDR",
            man: "rtnetlink(7)",
            what: "give an interface an address; the kernel adds the route to its network by itself",
            effect: Effect::Change,
        };
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.header.scope = AddressScope::Universe;
        m.attributes.push(AddressAttribute::Local(ip.into()));
        m.attributes.push(AddressAttribute::Address(ip.into()));
        let bits = u32::from(ip) | (u32::MAX.checked_shr(prefix as u32).unwrap_or(0));
        m.attributes.push(AddressAttribute::Broadcast(Ipv4Addr::from(bits)));
        self.perform(
            &C,
            vec![format!("{{dev: {}, local: {ip}/{prefix}, broadcast: {}}}", quote(name, 16), Ipv4Addr::from(bits))],
            || (),
            || {
                self.netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewAddress(m), NLM_F_CREATE | NLM_F_EXCL))
                    .map(|_| ())
            },
            |_| "0".into(),
        )
    }

    /// `RTM_NEWROUTE` — add a route: `dst` (None: the default route) via `gateway`.
    pub fn route_add(&self, ns: Option<&Path>, dst: Option<(Ipv4Addr, u8)>, gateway: Ipv4Addr) -> Result<(), SysError> {
        self.sock(ns)?;
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "RTM_NEWROUTE",
            man: "rtnetlink(7)",
            what: "add a route to the routing table",
            effect: Effect::Change,
        };
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        if let Some((d, len)) = dst {
            m.header.destination_prefix_length = len;
            m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(d)));
        }
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        let d = dst.map(|(d, l)| format!("{d}/{l}")).unwrap_or_else(|| "default".into());
        self.perform(
            &C,
            vec![format!("{{dst: {d}, gateway: {gateway}, table: main}}")],
            || (),
            || {
                self.netns
                    .borrow()
                    .with_sock(ns, |r| rt_send(r, RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL))
                    .map(|_| ())
            },
            |_| "0".into(),
        )
    }
}

impl Kernel {
    /// `socket(2)` `AF_INET`/`SOCK_DGRAM` and `bind(2)` to `addr`, inside the network
    /// namespace `ns` (or this process's own): setns(2) there, make the socket, setns(2)
    /// back. The socket stays in the namespace it was born in, so a process outside it
    /// (a container's monitor) can answer datagrams sent to 127.0.0.11 inside.
    /// <https://man7.org/linux/man-pages/man7/udp.7.html>
    pub fn udp_bind_in(
        &self,
        ns: Option<&Path>,
        addr: std::net::SocketAddrV4,
    ) -> Result<std::net::UdpSocket, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "bind",
            man: "udp(7)",
            what: "make a UDP socket and bind it to an address and port: datagrams sent there arrive on it",
            effect: Effect::Change,
        };
        if let Some(ns) = ns {
            self.hop_to(ns)?;
        }
        let r = self.perform(
            &C,
            vec!["AF_INET".into(), "SOCK_DGRAM|SOCK_CLOEXEC".into(), addr.to_string()],
            || unreachable!("sockets are live-only"),
            || std::net::UdpSocket::bind(addr).map_err(errno_of),
            |s| s.as_raw_fd().to_string(),
        );
        if ns.is_some() {
            self.hop_home()?;
        }
        r
    }

    /// setns(2) into `ns` for as long as a socket is made there ([`Kernel::hop_home`]
    /// comes back): both namespace files are opened first.
    fn hop_to(&self, ns: &Path) -> Result<(), SysError> {
        self.netns_open(ns)?;
        self.netns_open(Path::new(HOME_NS))?;
        self.hop(ns)
    }

    /// setns(2) back into this thread's own network namespace, after [`Kernel::hop_to`].
    fn hop_home(&self) -> Result<(), SysError> {
        self.hop(Path::new(HOME_NS))
    }

    /// The setns(2) of a hop, into a namespace file opened already.
    fn hop(&self, ns: &Path) -> Result<(), SysError> {
        self.perform(
            &HOP,
            vec![self.netns.borrow().shown(ns), "CLONE_NEWNET".into()],
            || (),
            || self.netns.borrow().hop(ns),
            |_| "0".into(),
        )
    }
}

/// This thread's own network namespace, where a hop comes back to.
const HOME_NS: &str = "/proc/thread-self/ns/net";

impl Kernel {
    /// `setns(2)` into the network namespace `ns` for good (not a hop: `netns exec`).
    pub fn setns_net(&self, ns: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setns",
            man: "setns(2)",
            what: "move this process into an existing namespace, named by an open namespace file",
            effect: Effect::Change,
        };
        self.netns_open(ns)?;
        self.perform(
            &C,
            vec![self.netns.borrow().shown(ns), "CLONE_NEWNET".into()],
            || (),
            || self.netns.borrow().hop(ns),
            |_| "0".into(),
        )
    }
}

/// An interface, as an `RTM_GETLINK` dump describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// `br0`, `veth1a2b`, `eth0`.
    pub name: String,
    /// `bridge`, `veth`, `vxlan`... (`IFLA_INFO_KIND`); None for physical/loopback.
    pub kind: Option<String>,
    /// The bridge it is a port of (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// `IFF_UP`.
    pub up: bool,
    /// The hardware address.
    pub mac: Option<String>,
}

/// An IPv4 address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addr {
    /// ifindex.
    pub index: u32,
    /// The address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Destination network (None: the default route).
    pub dst: Option<(Ipv4Addr, u8)>,
    /// Next hop.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

/// What to change on an existing link with `RTM_NEWLINK`.
#[derive(Debug, Default, Clone)]
pub struct LinkChange {
    /// Bring it up (`IFF_UP`).
    pub up: bool,
    /// Make it a port of this bridge (`IFLA_MASTER`): (ifindex, name).
    pub master: Option<(u32, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parsing() {
        assert_eq!(mac_text(&[2, 0x42, 0xac, 0x11, 0, 2]), "02:42:ac:11:00:02");
    }

    #[test]
    fn a_dry_run_that_cannot_enter_a_namespace_says_so_and_goes_on() {
        let k = Kernel::recording("netns-bridge");
        k.inject("setns", 1, Errno::EPERM);
        let ns = Path::new("/proc/self/ns/net");
        k.addr_add(Some(ns), 2, "eth0", Ipv4Addr::new(10, 0, 0, 2), 24).unwrap();
        k.route_add(Some(ns), None, Ipv4Addr::new(10, 0, 0, 1)).unwrap();
        let text: Vec<String> = k.events().iter().map(|e| e.call_text()).collect();
        assert!(
            text.iter().any(|t| t.starts_with("# the dry run cannot enter /proc/self/ns/net (EPERM)")),
            "{text:#?}"
        );
        assert_eq!(text.iter().filter(|t| t.starts_with("setns(")).count(), 1, "no second attempt: {text:#?}");
        assert!(text.iter().any(|t| t.starts_with("RTM_NEWADDR {dev: \"eth0\"")), "{text:#?}");
        assert!(text.iter().any(|t| t.starts_with("RTM_NEWROUTE")), "{text:#?}");
    }
}
