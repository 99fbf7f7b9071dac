//! The objects the network lab talks about: what the kernel reports (links, addresses,
//! routes) and what the lab asks nftables for (tables, chains, rules as bytecode).
//! Plain data: the kernel layer (`kernel/netlink.rs`) turns them into netlink messages.

use std::net::Ipv4Addr;

use serde::Serialize;

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

/// The netfilter hooks a base chain can attach to (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Packets arriving, before routing (DNAT of published ports).
    Prerouting = 0,
    /// Packets routed through this host (isolation between bridges).
    Forward = 2,
    /// Packets made by this host (DNAT of connections to its own addresses).
    Output = 3,
    /// Packets leaving, after routing (masquerade).
    Postrouting = 4,
}

/// One nftables expression: a step of the small virtual machine a rule runs. Loads go
/// to register 1 (a second value for NAT to register 2); a `Cmp` that fails ends the
/// rule. This is what `nft --debug=netlink` prints for a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `payload load LEN b @ network|transport header + OFFSET => reg 1`.
    Payload {
        /// Transport (TCP/UDP) header instead of the network (IP) one.
        transport: bool,
        /// Byte offset in that header.
        offset: u32,
        /// Bytes to load.
        len: u32,
    },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    Mask(Vec<u8>),
    /// `cmp eq|neq reg 1 DATA`.
    Cmp {
        /// Equal (true) or different (false).
        eq: bool,
        /// The bytes to compare with.
        data: Vec<u8>,
    },
    /// `meta load KEY => reg 1`.
    Meta(MetaKey),
    /// `fib daddr type => reg 1`: the route type of the destination (2 = local).
    FibDaddrType,
    /// `immediate reg N DATA`.
    Imm {
        /// Register (1 or 2).
        reg: u32,
        /// Value.
        data: Vec<u8>,
    },
    /// `nat dnat ip addr_min reg 1 proto_min reg 2`.
    Dnat,
    /// `masq`: SNAT to the address of the outgoing interface.
    Masq,
    /// `immediate reg 0 drop`: the verdict.
    Drop,
}

/// What `meta` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// Name of the interface the packet came in by (`NFT_META_IIFNAME`).
    Iifname = 6,
    /// Name of the interface it leaves by (`NFT_META_OIFNAME`).
    Oifname = 7,
    /// The transport protocol number (`NFT_META_L4PROTO`): 6 tcp, 17 udp.
    L4proto = 16,
}

impl Expr {
    /// The expression's name in the kernel (`payload`, `cmp`...).
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::Cmp { .. } => "cmp",
            Expr::Meta(_) => "meta",
            Expr::FibDaddrType => "fib",
            Expr::Imm { .. } | Expr::Drop => "immediate",
            Expr::Dnat => "nat",
            Expr::Masq => "masq",
        }
    }
}

/// One message of an nftables transaction.
#[derive(Debug, Clone)]
pub enum NftMsg {
    /// `NFT_MSG_NEWTABLE`: `table ip NAME` (no error if it exists).
    Table(String),
    /// `NFT_MSG_DELTABLE`.
    DelTable(String),
    /// `NFT_MSG_NEWCHAIN`: a base chain `type nat|filter hook H priority P`.
    Chain {
        /// Table.
        table: String,
        /// Chain name.
        name: String,
        /// `nat` or `filter`.
        kind: &'static str,
        /// Where packets enter it.
        hook: Hook,
        /// Order among chains on the same hook.
        prio: i32,
    },
    /// `NFT_MSG_NEWRULE`, appended to a chain, with a comment (`NFTA_RULE_USERDATA`).
    Rule {
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// The rule as `nft list ruleset` prints it (for the trace).
        text: String,
        /// Its bytecode.
        exprs: Vec<Expr>,
        /// The comment: how contlab finds its own rules again.
        comment: String,
    },
    /// `NFT_MSG_DELRULE` by handle.
    DelRule {
        /// Table.
        table: String,
        /// Chain.
        chain: String,
        /// The rule's handle.
        handle: u64,
        /// Its comment (for the trace).
        comment: String,
    },
}

/// A rule found by an `NFT_MSG_GETRULE` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    /// Chain.
    pub chain: String,
    /// Handle (to delete it).
    pub handle: u64,
    /// Its comment, if any.
    pub comment: String,
}
