//! nftables: how a process asks the kernel for packet-filter and NAT rules, over a
//! `NETLINK_NETFILTER` socket. A rule is a small program for the kernel's nftables
//! virtual machine (payload loads, comparisons, NAT, verdicts); a change is a batch
//! of messages the kernel applies whole or not at all.
//!
//! The messages are built here by hand, attribute by attribute, because no
//! permissively licensed, maintained pure-Rust crate encodes them (rustables is
//! GPL-3.0), and because the bytecode a rule compiles to is what the lab wants the
//! student to see. <https://man7.org/linux/man-pages/man8/nft.8.html>

use std::io::ErrorKind;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_sys::{protocols, Socket, SocketAddr};

use super::errno_of;
use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, Mode, SysError};

const NLA_F_NESTED: u16 = 0x8000;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFPROTO_IPV4: u8 = 2;

fn encode_expr(e: &Expr, a: &mut Attrs) {
    a.str(1, e.name());
    a.nest(2, |d| match e {
        Expr::Payload { transport, offset, len } => {
            d.be32(1, 1);
            d.be32(2, if *transport { 2 } else { 1 });
            d.be32(3, *offset);
            d.be32(4, *len);
        }
        Expr::Mask(mask) => {
            d.be32(1, 1);
            d.be32(2, 1);
            d.be32(3, mask.len() as u32);
            d.nest(4, |v| v.put(1, mask));
            d.nest(5, |v| v.put(1, &vec![0; mask.len()]));
        }
        Expr::Cmp { eq, data } => {
            d.be32(1, 1);
            d.be32(2, if *eq { 0 } else { 1 });
            d.nest(3, |v| v.put(1, data));
        }
        Expr::Meta(key) => {
            d.be32(2, *key as u32);
            d.be32(1, 1);
        }
        Expr::FibDaddrType => {
            d.be32(1, 1);
            d.be32(2, 3);
            d.be32(3, 2);
        }
        Expr::Imm { reg, data } => {
            d.be32(1, *reg);
            d.nest(2, |v| v.put(1, data));
        }
        Expr::Dnat => {
            d.be32(1, 1);
            d.be32(2, NFPROTO_IPV4 as u32);
            d.be32(3, 1);
            d.be32(5, 2);
            d.be32(7, 2);
        }
        Expr::Masq => {}
        Expr::Drop => {
            d.be32(1, 0);
            d.nest(2, |v| v.nest(2, |vd| vd.be32(1, 0)));
        }
    });
}

fn msg_call(m: &NftMsg) -> &'static str {
    match m {
        NftMsg::Table(_) => "NFT_MSG_NEWTABLE",
        NftMsg::DelTable(_) => "NFT_MSG_DELTABLE",
        NftMsg::Chain { .. } => "NFT_MSG_NEWCHAIN",
        NftMsg::Rule { .. } => "NFT_MSG_NEWRULE",
        NftMsg::DelRule { .. } => "NFT_MSG_DELRULE",
    }
}

fn msg_shown(m: &NftMsg) -> String {
    match m {
        NftMsg::Table(t) | NftMsg::DelTable(t) => format!("{{family: ip, table: {}}}", quote(t, 32)),
        NftMsg::Chain { table, name, kind, hook, prio } => format!(
            "{{table: {}, chain: {}, type: {kind}, hook: {}, priority: {prio}}}",
            quote(table, 32),
            quote(name, 32),
            format!("{hook:?}").to_lowercase()
        ),
        NftMsg::Rule { table, chain, text, exprs, comment } => {
            let names: Vec<&str> = exprs.iter().map(|e| e.name()).collect();
            format!(
                "{{table: {}, chain: {}, rule: {}, exprs: [{}], comment: {}}}",
                quote(table, 32),
                quote(chain, 32),
                quote(text, 120),
                names.join(", "),
                quote(comment, 64)
            )
        }
        NftMsg::DelRule { table, chain, handle, comment } => format!(
            "{{table: {}, chain: {}, handle: {handle}, comment: {}}}",
            quote(table, 32),
            quote(chain, 32),
            quote(comment, 64)
        ),
    }
}

fn msg_encode(m: &NftMsg, seq: u32) -> Vec<u8> {
    let mut a = Attrs::default();
    let (ty, flags) = match m {
        NftMsg::Table(t) => {
            a.str(1, t);
            (NFT_MSG_NEWTABLE, NLM_F_CREATE)
        }
        NftMsg::DelTable(t) => {
            a.str(1, t);
            (NFT_MSG_DELTABLE, 0)
        }
        NftMsg::Chain { table, name, kind, hook, prio } => {
            a.str(1, table);
            a.str(3, name);
            a.nest(4, |h| {
                h.be32(1, *hook as u32);
                h.be32(2, *prio as u32);
            });
            a.be32(5, 1);
            a.str(7, kind);
            (NFT_MSG_NEWCHAIN, NLM_F_CREATE)
        }
        NftMsg::Rule { table, chain, exprs, comment, .. } => {
            a.str(1, table);
            a.str(2, chain);
            a.nest(4, |l| {
                for e in exprs {
                    l.nest(1, |x| encode_expr(e, x));
                }
            });
            // libnftnl's userdata TLV: type 0 (comment), length, NUL-terminated text.
            let mut ud = vec![0u8, (comment.len() + 1) as u8];
            ud.extend_from_slice(comment.as_bytes());
            ud.push(0);
            a.put(7, &ud);
            (NFT_MSG_NEWRULE, NLM_F_CREATE | 0x800)
        }
        NftMsg::DelRule { table, chain, handle, .. } => {
            a.str(1, table);
            a.str(2, chain);
            a.put(3, &handle.to_be_bytes());
            (NFT_MSG_DELRULE, 0)
        }
    };
    nfmsg((NFNL_SUBSYS_NFTABLES << 8) | ty, NLM_F_REQUEST | NLM_F_ACK | flags, seq, NFPROTO_IPV4, 0, &a.0)
}

#[derive(Default)]
struct Attrs(Vec<u8>);

impl Attrs {
    fn put(&mut self, ty: u16, data: &[u8]) {
        self.0.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }
    fn str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v);
    }
    fn be32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }
    fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) {
        let mut inner = Attrs::default();
        f(&mut inner);
        self.put(ty | NLA_F_NESTED, &inner.0);
    }
}

fn nfmsg(ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + payload.len();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&seq.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.push(family);
    v.push(0);
    v.extend_from_slice(&res_id.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Split a buffer of netlink messages: (type, seq, payload after the nlmsghdr).
fn nl_messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap_or_default());
        out.push((ty, seq, &buf[off + 16..off + len]));
        off += (len + 3) & !3;
    }
    out
}

/// Top-level attributes (type without flags, value).
fn nl_attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        let step = ((len + 3) & !3).min(b.len());
        b = &b[step..];
    }
    out
}

fn nft_socket() -> Result<Socket, Errno> {
    let mut s = Socket::new(protocols::NETLINK_NETFILTER).map_err(errno_of)?;
    s.bind_auto().map_err(errno_of)?;
    s.connect(&SocketAddr::new(0, 0)).map_err(errno_of)?;
    Ok(s)
}

impl Kernel {
    /// One nftables transaction: `NFNL_MSG_BATCH_BEGIN`, the messages, `BATCH_END`,
    /// sent in a single sendmsg(2) on a `NETLINK_NETFILTER` socket. The kernel applies
    /// all of them or none. One event per message, with the kernel's answer to it.
    /// <https://man7.org/linux/man-pages/man8/nft.8.html>
    pub fn nft(&self, batch: &[NftMsg]) -> Result<(), SysError> {
        let results: Vec<Result<(), Errno>> = if self.mode == Mode::DryRun {
            batch.iter().map(|_| Ok(())).collect()
        } else {
            match nft_send(batch) {
                Ok(r) => r,
                Err(e) => batch.iter().map(|_| Err(e)).collect(),
            }
        };
        let mut first_err = None;
        for (m, res) in batch.iter().zip(results) {
            let call = Call {
                kind: Kind::Netlink,
                name: msg_call(m),
                man: "nft(8)",
                what: "a message of an nftables transaction: the kernel applies the whole batch or nothing",
                effect: Effect::Change,
            };
            let r = self.perform(&call, vec![msg_shown(m)], || (), || res, |_| "0".into());
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `NFT_MSG_GETRULE` dump of `table ip TABLE`: each rule's chain, handle, comment.
    /// An absent table gives an empty list.
    pub fn nft_rules(&self, table: &str) -> Result<Vec<NftRule>, SysError> {
        const C: Call = Call {
            kind: Kind::Netlink,
            name: "NFT_MSG_GETRULE",
            man: "nft(8)",
            what: "list the rules of an nftables table",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![format!("{{family: ip, table: {}, flags: NLM_F_DUMP}}", quote(table, 32))],
            || unreachable!(),
            || {
                let s = nft_socket()?;
                let mut a = Attrs::default();
                a.str(1, table);
                let req = nfmsg(
                    (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE,
                    NLM_F_REQUEST | NLM_F_DUMP,
                    1,
                    NFPROTO_IPV4,
                    0,
                    &a.0,
                );
                s.send(&req, 0).map_err(errno_of)?;
                let mut out = Vec::new();
                let mut rx = vec![0u8; 1 << 16];
                loop {
                    let n = s.recv(&mut &mut rx[..], 0).map_err(errno_of)?;
                    for (ty, _, body) in nl_messages(&rx[..n]) {
                        match ty {
                            3 => return Ok(out), // NLMSG_DONE
                            2 => {
                                let code = i32::from_ne_bytes(body[..4].try_into().unwrap_or_default());
                                return match code {
                                    0 => Ok(out),
                                    c if -c == Errno::ENOENT as i32 => Ok(out),
                                    c => Err(Errno::from_raw(-c)),
                                };
                            }
                            _ if body.len() >= 4 => {
                                let mut rule = NftRule { chain: String::new(), handle: 0, comment: String::new() };
                                for (t, v) in nl_attrs(&body[4..]) {
                                    match t {
                                        2 => rule.chain = cstr(v),
                                        3 if v.len() == 8 => {
                                            rule.handle = u64::from_be_bytes(v.try_into().unwrap_or_default())
                                        }
                                        7 if v.len() > 2 && v[0] == 0 => rule.comment = cstr(&v[2..]),
                                        _ => {}
                                    }
                                }
                                out.push(rule);
                            }
                            _ => {}
                        }
                    }
                }
            },
            |v: &Vec<NftRule>| format!("{} rules", v.len()),
        )
    }
}

fn cstr(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

fn nft_send(batch: &[NftMsg]) -> Result<Vec<Result<(), Errno>>, Errno> {
    let s = nft_socket()?;
    let mut buf = nfmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 1, 0, NFNL_SUBSYS_NFTABLES, &[]);
    for (i, m) in batch.iter().enumerate() {
        buf.extend(msg_encode(m, 2 + i as u32));
    }
    buf.extend(nfmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 2 + batch.len() as u32, 0, NFNL_SUBSYS_NFTABLES, &[]));
    s.send(&buf, 0).map_err(errno_of)?;
    // The kernel processes the batch inside sendmsg: every answer is queued by now.
    s.set_non_blocking(true).map_err(errno_of)?;
    let mut results: Vec<Option<Result<(), Errno>>> = vec![None; batch.len()];
    let mut rx = vec![0u8; 1 << 16];
    loop {
        let n = match s.recv(&mut &mut rx[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => return Err(errno_of(e)),
        };
        for (ty, seq, body) in nl_messages(&rx[..n]) {
            if ty != 2 || seq < 2 || body.len() < 4 {
                continue;
            }
            let i = (seq - 2) as usize;
            let code = i32::from_ne_bytes(body[..4].try_into().unwrap_or_default());
            if i < results.len() {
                results[i] = Some(if code == 0 { Ok(()) } else { Err(Errno::from_raw(-code)) });
            }
        }
    }
    let failed = results.iter().any(|r| matches!(r, Some(Err(_))));
    Ok(results.into_iter().map(|r| r.unwrap_or(if failed { Err(Errno::ECANCELED) } else { Ok(()) })).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_and_nested() {
        let mut a = Attrs::default();
        a.str(1, "ab");
        assert_eq!(a.0, vec![7, 0, 1, 0, b'a', b'b', 0, 0]);
        a.nest(2, |n| n.be32(1, 1));
        assert_eq!(&a.0[8..12], &[12, 0, 2, 0x80]);
        assert_eq!(nl_attrs(&a.0).len(), 2);
    }

    #[test]
    fn nft_dry_run_records_one_event_per_message() {
        let k = Kernel::recording("netns-bridge");
        k.nft(&[NftMsg::Table("contlab".into()), NftMsg::DelTable("contlab".into())]).unwrap();
        let ev = k.events();
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].call, "NFT_MSG_NEWTABLE");
        assert_eq!(ev[0].call_text(), "NFT_MSG_NEWTABLE {family: ip, table: \"contlab\"} = 0");
    }
}
