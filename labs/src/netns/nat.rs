//! NAT and published ports as nftables rules, compiled by hand to the bytecode the
//! kernel runs. `nft` does this compilation for you; here each rule is spelled out so
//! the trace shows what a `masquerade` or a `dnat to` really is: load a field of the
//! packet into a register, compare it, and act.
//!
//! Everything lives in one table, `table ip contlab`, with four base chains:
//!
//! | chain | hook | what contlab puts there |
//! |---|---|---|
//! | `prerouting` | `type nat hook prerouting priority -100` | DNAT of published ports, for packets arriving from elsewhere |
//! | `output` | `type nat hook output priority -100` | the same DNAT for connections made on this host (to localhost too) |
//! | `postrouting` | `type nat hook postrouting priority 100` | masquerade of the network's traffic going out; of 127.0.0.0/8 sources going into the bridge |
//! | `forward` | `type filter hook forward priority 0` | drop between two different networks (docker's isolation) |
//!
//! Each rule carries a comment `contlab:BRIDGE:...`: contlab finds its own rules again
//! by listing the table and reading the comments, then deletes them by handle.

use std::net::Ipv4Addr;

use super::ipam::Subnet;
use super::model::{Expr, Hook, MetaKey, NftMsg};

/// The table name: `nft list table ip contlab`.
pub const TABLE: &str = "contlab";

fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(16, 0);
    v
}

/// The table and the four base chains (creating them again is not an error).
pub fn skeleton() -> Vec<NftMsg> {
    let chain =
        |name: &str, kind, hook, prio| NftMsg::Chain { table: TABLE.into(), name: name.into(), kind, hook, prio };
    vec![
        NftMsg::Table(TABLE.into()),
        chain("prerouting", "nat", Hook::Prerouting, -100),
        chain("output", "nat", Hook::Output, -100),
        chain("postrouting", "nat", Hook::Postrouting, 100),
        chain("forward", "filter", Hook::Forward, 0),
    ]
}

fn rule(chain: &str, text: String, exprs: Vec<Expr>, comment: String) -> NftMsg {
    NftMsg::Rule { table: TABLE.into(), chain: chain.into(), text, exprs, comment }
}

fn saddr_in(net: &Subnet) -> Vec<Expr> {
    let mask = u32::MAX.checked_shl(32 - net.len as u32).unwrap_or(0);
    vec![
        Expr::Payload { transport: false, offset: 12, len: 4 },
        Expr::Mask(mask.to_be_bytes().to_vec()),
        Expr::Cmp { eq: true, data: net.net.octets().to_vec() },
    ]
}

/// `ip saddr NET oifname != BRIDGE masquerade`: traffic of the network leaving by
/// any other interface takes the address of that interface.
pub fn masquerade(bridge: &str, net: &Subnet) -> NftMsg {
    let mut e = saddr_in(net);
    e.push(Expr::Meta(MetaKey::Oifname));
    e.push(Expr::Cmp { eq: false, data: ifname(bridge) });
    e.push(Expr::Masq);
    rule(
        "postrouting",
        format!("ip saddr {net} oifname != \"{bridge}\" masquerade"),
        e,
        format!("contlab:{bridge}:nat"),
    )
}

/// `iifname A oifname B drop`: no routing from one network into another. Its comment,
/// `contlab:OWNER:isolate:OTHER`, names both bridges, so that removing either network
/// removes it.
pub fn isolate(from: &str, to: &str, owner: &str) -> NftMsg {
    let other = if from == owner { to } else { from };
    let e = vec![
        Expr::Meta(MetaKey::Iifname),
        Expr::Cmp { eq: true, data: ifname(from) },
        Expr::Meta(MetaKey::Oifname),
        Expr::Cmp { eq: true, data: ifname(to) },
        Expr::Drop,
    ];
    rule("forward", format!("iifname \"{from}\" oifname \"{to}\" drop"), e, format!("contlab:{owner}:isolate:{other}"))
}

/// The comment of a published port's rules: `contlab:BRIDGE:publish:8080/tcp`, or
/// `contlab:BRIDGE:publish:127.0.0.1:8080/tcp` for a port published on one address.
pub fn publish_comment(bridge: &str, host_ip: Option<Ipv4Addr>, host_port: u16, proto: &str) -> String {
    match host_ip {
        None => format!("contlab:{bridge}:publish:{host_port}/{proto}"),
        Some(ip) => format!("contlab:{bridge}:publish:{ip}:{host_port}/{proto}"),
    }
}

/// The rules of `publish HOST_PORT:PORT/PROTO --to IP`: DNAT in prerouting and output
/// for packets to a local address of this host (`fib daddr type local`; with
/// `host_ip`, to that address only: `ip daddr HOST_IP`), and masquerade of
/// 127.0.0.0/8 sources into the bridge (a reply to 127.0.0.1 could not leave the
/// container otherwise); and the *hairpin* masquerade: a host of the network reaching
/// the published port through a host address is answered through the host too
/// (`ip saddr NET ip daddr TO dport PORT oifname BRIDGE masquerade`), or the answer
/// would come straight from the other host's address and be refused.
pub fn publish(
    bridge: &str,
    net: &Subnet,
    host_ip: Option<Ipv4Addr>,
    host_port: u16,
    to: Ipv4Addr,
    port: u16,
    proto: &str,
) -> Vec<NftMsg> {
    let l4 = if proto == "udp" { 17u8 } else { 6u8 };
    let comment = publish_comment(bridge, host_ip, host_port, proto);
    let (daddr, daddr_text) = match host_ip {
        None => (
            vec![Expr::FibDaddrType, Expr::Cmp { eq: true, data: 2u32.to_ne_bytes().to_vec() }],
            "fib daddr type local".to_string(),
        ),
        Some(ip) => (
            vec![
                Expr::Payload { transport: false, offset: 16, len: 4 },
                Expr::Cmp { eq: true, data: ip.octets().to_vec() },
            ],
            format!("ip daddr {ip}"),
        ),
    };
    let dnat = |chain: &str| {
        let mut e = daddr.clone();
        e.extend([
            Expr::Meta(MetaKey::L4proto),
            Expr::Cmp { eq: true, data: vec![l4] },
            Expr::Payload { transport: true, offset: 2, len: 2 },
            Expr::Cmp { eq: true, data: host_port.to_be_bytes().to_vec() },
            Expr::Imm { reg: 1, data: to.octets().to_vec() },
            Expr::Imm { reg: 2, data: port.to_be_bytes().to_vec() },
            Expr::Dnat,
        ]);
        rule(chain, format!("{daddr_text} {proto} dport {host_port} dnat to {to}:{port}"), e, comment.clone())
    };
    let mut lo = saddr_in(&Subnet { net: Ipv4Addr::new(127, 0, 0, 0), len: 8 });
    lo.push(Expr::Meta(MetaKey::Oifname));
    lo.push(Expr::Cmp { eq: true, data: ifname(bridge) });
    lo.push(Expr::Masq);
    let mut hairpin = saddr_in(net);
    hairpin.extend([
        Expr::Payload { transport: false, offset: 16, len: 4 },
        Expr::Cmp { eq: true, data: to.octets().to_vec() },
        Expr::Meta(MetaKey::L4proto),
        Expr::Cmp { eq: true, data: vec![l4] },
        Expr::Payload { transport: true, offset: 2, len: 2 },
        Expr::Cmp { eq: true, data: port.to_be_bytes().to_vec() },
        Expr::Meta(MetaKey::Oifname),
        Expr::Cmp { eq: true, data: ifname(bridge) },
        Expr::Masq,
    ]);
    vec![
        dnat("prerouting"),
        dnat("output"),
        rule("postrouting", format!("ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade"), lo, comment.clone()),
        rule(
            "postrouting",
            format!("ip saddr {net} ip daddr {to} {proto} dport {port} oifname \"{bridge}\" masquerade"),
            hairpin,
            comment.clone(),
        ),
    ]
}

/// The rules of an *internal* network (docker's `--internal`): nothing routed into or
/// out of the bridge, `iifname BRIDGE oifname != BRIDGE drop` and the reverse. Its
/// hosts reach each other (switched by the bridge, not routed) and the gateway.
pub fn internal(bridge: &str) -> Vec<NftMsg> {
    let side = |first: MetaKey, second: MetaKey| {
        vec![
            Expr::Meta(first),
            Expr::Cmp { eq: true, data: ifname(bridge) },
            Expr::Meta(second),
            Expr::Cmp { eq: false, data: ifname(bridge) },
            Expr::Drop,
        ]
    };
    let comment = format!("contlab:{bridge}:internal");
    vec![
        rule(
            "forward",
            format!("iifname \"{bridge}\" oifname != \"{bridge}\" drop"),
            side(MetaKey::Iifname, MetaKey::Oifname),
            comment.clone(),
        ),
        rule(
            "forward",
            format!("oifname \"{bridge}\" iifname != \"{bridge}\" drop"),
            side(MetaKey::Oifname, MetaKey::Iifname),
            comment,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_compiles_to_payload_mask_cmp_meta_cmp_masq() {
        let n = Subnet::of("10.200.0.1".parse().unwrap(), 24);
        let NftMsg::Rule { exprs, text, .. } = masquerade("br0", &n) else { panic!() };
        let names: Vec<&str> = exprs.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["payload", "bitwise", "cmp", "meta", "cmp", "masq"]);
        assert_eq!(text, "ip saddr 10.200.0.0/24 oifname != \"br0\" masquerade");
        assert_eq!(exprs[1], Expr::Mask(vec![255, 255, 255, 0]));
    }

    #[test]
    fn publish_matches_local_destinations_and_the_port() {
        let n = Subnet::of("10.200.0.1".parse().unwrap(), 24);
        let r = publish("br0", &n, None, 8080, "10.200.0.2".parse().unwrap(), 80, "tcp");
        assert_eq!(r.len(), 4);
        let NftMsg::Rule { text, .. } = &r[3] else { panic!() };
        assert_eq!(text, "ip saddr 10.200.0.0/24 ip daddr 10.200.0.2 tcp dport 80 oifname \"br0\" masquerade");
        let NftMsg::Rule { exprs, chain, .. } = &r[0] else { panic!() };
        assert_eq!(chain, "prerouting");
        assert!(exprs.contains(&Expr::Cmp { eq: true, data: vec![0x1f, 0x90] }));
        assert!(exprs.contains(&Expr::Imm { reg: 2, data: vec![0, 80] }));
    }

    #[test]
    fn publish_on_one_host_address_matches_that_destination() {
        let n = Subnet::of("10.200.0.1".parse().unwrap(), 24);
        let r = publish("br0", &n, Some("127.0.0.1".parse().unwrap()), 8080, "10.200.0.2".parse().unwrap(), 80, "tcp");
        let NftMsg::Rule { exprs, text, comment, .. } = &r[1] else { panic!() };
        assert_eq!(text, "ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.200.0.2:80");
        assert_eq!(comment, "contlab:br0:publish:127.0.0.1:8080/tcp");
        assert_eq!(exprs[0], Expr::Payload { transport: false, offset: 16, len: 4 });
        assert_eq!(exprs[1], Expr::Cmp { eq: true, data: vec![127, 0, 0, 1] });
    }
}
