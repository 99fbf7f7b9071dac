//! # The embedded DNS: how containers find each other by name
//!
//! On a user-defined docker network every container's /etc/resolv.conf says
//! `nameserver 127.0.0.11`. Nothing in the container listens there: the daemon does, on
//! a socket it made inside the container's network namespace. A query for the name of a
//! container, or one of its network aliases, on a network the asker shares with it is
//! answered from the daemon's own records; every other name is forwarded to the host's
//! resolvers (those of the host's /etc/resolv.conf, or `--dns`). The records change the
//! moment a container joins or leaves a network, and so do the answers: no hosts file is
//! rewritten. docker's default bridge has no such resolver, which is why its containers
//! cannot reach each other by name.
//!
//! mini has no daemon. The process that lives as long as the container, its monitor,
//! holds a UDP socket bound to 127.0.0.11:53 *inside* the container's network namespace:
//! the socket was made there, after a
//! [setns(2)](https://man7.org/linux/man-pages/man2/setns.2.html) into it, and a socket
//! stays in the namespace it was born in (see
//! [`Kernel::udp_bind_in`](crate::kernel::Kernel::udp_bind_in) and [`super::resolver`]).
//! The answers come from the networks' state files, read again at each query.
//!
//! This module is only the wire format of DNS, as
//! [RFC 1035](https://www.rfc-editor.org/rfc/rfc1035) defines it: parse a query, answer
//! it, or say that it must be forwarded. It does no I/O. UDP only: there is no TCP
//! fallback, and an answer larger than 512 bytes (RFC 1035, section 4.2.1) loses records
//! until it fits, with the TC (truncated) bit set. In practice the A records of a few
//! containers fit many times over. The TTL of an answer is docker's, 600 seconds.

use std::net::Ipv4Addr;

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, Question, ResourceRecord, CLASS, OPCODE, QCLASS, QTYPE, RCODE, TYPE};

/// The time to live of the records answered, in seconds: docker's.
const TTL: u32 = 600;
/// The largest message sent over UDP to an asker that did not say it takes more.
const UDP_MAX: usize = 512;
/// The length of a DNS header: id, flags and the four section counts.
const HEADER: usize = 12;
/// The OPCODE bits in the third byte of a header (RFC 1035, section 4.1.1).
const OPCODE_BITS: u8 = 0x78;

/// What to do with a datagram received on 127.0.0.11:53.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back to the asker.
    Answer(Vec<u8>),
    /// Not a name of the networks: send the query as it is to an upstream resolver, and
    /// its answer back.
    Forward,
    /// Not a DNS query (garbage, a response, no question): drop it.
    Drop,
}

/// Answer `query` from `lookup` (a name without its trailing dot, as asked, → the
/// addresses of the containers that answer to it on the asker's networks; empty: not
/// ours). A known name gets one A record per address to an A query (class IN), and an
/// empty NOERROR answer to any other type (it exists, without such records), as docker's
/// does. An unknown one is [`Reply::Forward`], or NXDOMAIN if `forward` is false. Only
/// the first question is answered; an opcode other than a standard query gets NOTIMP.
pub fn answer(query: &[u8], forward: bool, lookup: &dyn Fn(&str) -> Vec<Ipv4Addr>) -> Reply {
    let Ok(q) = Packet::parse(query) else { return Reply::Drop };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Reply::Drop;
    }
    let first = q.questions.first().cloned();
    if q.opcode() != OPCODE::StandardQuery {
        return build(query, &q, first, RCODE::NotImplemented, &[]);
    }
    let Some(question) = first else { return Reply::Drop };
    let internet = matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY);
    let addrs = if internet { lookup(&question.qname.to_string()) } else { Vec::new() };
    if addrs.is_empty() {
        if forward {
            return Reply::Forward;
        }
        return build(query, &q, Some(question), RCODE::NameError, &[]);
    }
    let wants_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY);
    let addrs = if wants_a { addrs } else { Vec::new() };
    build(query, &q, Some(question), RCODE::NoError, &addrs)
}

/// The answer to `q`: its id, RD as asked, RA set, AA not (docker's flags), `question`
/// echoed and an A record of its name for each of `addrs`, cut to fit in [`UDP_MAX`].
fn build<'a>(query: &[u8], q: &Packet<'a>, question: Option<Question<'a>>, rcode: RCODE, addrs: &[Ipv4Addr]) -> Reply {
    let mut r = Packet::new_reply(q.id());
    *r.rcode_mut() = rcode;
    r.set_flags(PacketFlag::RECURSION_AVAILABLE);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        r.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    if let Some(question) = question {
        for a in addrs {
            let rr = ResourceRecord::new(question.qname.clone(), CLASS::IN, TTL, RData::A(A::from(*a)));
            r.answers.push(rr);
        }
        r.questions.push(question);
    }
    loop {
        // Compressed: every record's name is a 2-byte pointer to the question's.
        let Ok(mut bytes) = r.build_bytes_vec_compressed() else { return Reply::Drop };
        if bytes.len() <= UDP_MAX || r.answers.is_empty() {
            // The opcode is copied from the query as its four bits, even one that
            // simple_dns has no name for.
            if let (Some(b), Some(asked)) = (bytes.get_mut(2), query.get(2)) {
                *b = (*b & !OPCODE_BITS) | (asked & OPCODE_BITS);
            }
            return Reply::Answer(bytes);
        }
        r.answers.pop();
        r.set_flags(PacketFlag::TRUNCATION);
    }
}

/// The id of a DNS message (its first two bytes), to match an upstream's answer to the
/// query it forwarded; None if shorter than a header (12 bytes).
pub fn message_id(msg: &[u8]) -> Option<u16> {
    if msg.len() < HEADER {
        return None;
    }
    let id: [u8; 2] = msg.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(id))
}

/// `msg` with its id replaced (the forwarder gives each forwarded query an id of its
/// own, and puts the asker's back in the answer). None if `msg` is shorter than 12 bytes.
pub fn with_id(msg: &[u8], id: u16) -> Option<Vec<u8>> {
    message_id(msg)?;
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(msg.get(2..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::Name;
    use std::cell::RefCell;

    fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        p.set_flags(PacketFlag::RECURSION_DESIRED);
        p.questions.push(Question::new(Name::new(name).unwrap(), qtype.into(), CLASS::IN.into(), false));
        p.build_bytes_vec().unwrap()
    }

    fn lookup(name: &str) -> Vec<Ipv4Addr> {
        let known = name.eq_ignore_ascii_case("web");
        [Ipv4Addr::new(172, 18, 0, 2), Ipv4Addr::new(172, 18, 0, 3)].into_iter().filter(|_| known).collect()
    }

    fn reply(r: &Reply) -> Packet<'_> {
        let Reply::Answer(bytes) = r else { panic!("not an answer: {r:?}") };
        Packet::parse(bytes).unwrap()
    }

    fn addresses(p: &Packet<'_>) -> Vec<Ipv4Addr> {
        p.answers
            .iter()
            .map(|rr| match &rr.rdata {
                RData::A(a) => Ipv4Addr::from(a.address),
                other => panic!("not an A record: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn known_names() {
        let r = answer(&query(0x1234, "web", TYPE::A), true, &lookup);
        let p = reply(&r);
        assert_eq!((p.id(), p.rcode(), p.questions.len()), (0x1234, RCODE::NoError, 1));
        assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_AVAILABLE | PacketFlag::RECURSION_DESIRED));
        assert!(!p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));
        assert!(!p.has_flags(PacketFlag::TRUNCATION));
        assert_eq!(addresses(&p), lookup("web"));
        assert!(p.answers.iter().all(|rr| rr.ttl == 600 && rr.name.to_string() == "web"));
        let r = answer(&query(7, "web", TYPE::AAAA), true, &lookup);
        let p = reply(&r);
        assert_eq!((p.id(), p.rcode(), p.questions.len(), p.answers.len()), (7, RCODE::NoError, 1, 0));
    }

    #[test]
    fn unknown_names() {
        assert_eq!(answer(&query(1, "example.com", TYPE::A), true, &lookup), Reply::Forward);
        assert_eq!(answer(&query(1, "db", TYPE::A), true, &lookup), Reply::Forward);
        let r = answer(&query(2, "db", TYPE::A), false, &lookup);
        let p = reply(&r);
        assert_eq!((p.id(), p.rcode(), p.answers.len()), (2, RCODE::NameError, 0));
        assert_eq!(p.questions[0].qname.to_string(), "db");
    }

    #[test]
    fn names_are_looked_up_as_asked() {
        let asked = RefCell::new(String::new());
        let look = |n: &str| {
            asked.replace(n.to_string());
            lookup(n)
        };
        let r = answer(&query(3, "Web", TYPE::A), true, &look);
        assert_eq!(asked.borrow().as_str(), "Web");
        let p = reply(&r);
        assert_eq!(p.questions[0].qname.to_string(), "Web");
        assert_eq!(addresses(&p), lookup("web"));
    }

    #[test]
    fn what_is_no_query_is_dropped() {
        assert_eq!(answer(b"\x12\x34short", true, &lookup), Reply::Drop);
        assert_eq!(answer(b"not a dns message at all", true, &lookup), Reply::Drop);
        let mut response = query(7, "web", TYPE::A);
        response[2] |= 0x80;
        assert_eq!(answer(&response, true, &lookup), Reply::Drop);
        assert_eq!(answer(&Packet::new_query(8).build_bytes_vec().unwrap(), true, &lookup), Reply::Drop);
    }

    #[test]
    fn other_opcodes_are_not_implemented() {
        let mut q = query(9, "web", TYPE::A);
        q[2] |= 2 << 3;
        let r = answer(&q, true, &lookup);
        let p = reply(&r);
        assert_eq!((p.rcode(), p.opcode()), (RCODE::NotImplemented, OPCODE::ServerStatusRequest));
    }

    #[test]
    fn too_many_records_are_truncated() {
        let many = |_: &str| (0..200).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect::<Vec<_>>();
        let r = answer(&query(4, "web", TYPE::A), true, &many);
        assert!(matches!(&r, Reply::Answer(bytes) if bytes.len() <= UDP_MAX));
        let p = reply(&r);
        assert!(p.has_flags(PacketFlag::TRUNCATION) && !p.answers.is_empty() && p.answers.len() < 200);
    }

    #[test]
    fn ids() {
        let q = query(0xbeef, "web", TYPE::A);
        assert_eq!(message_id(&q), Some(0xbeef));
        let m = with_id(&q, 42).unwrap();
        assert_eq!((message_id(&m), &m[2..]), (Some(42), &q[2..]));
        assert_eq!(with_id(&m, 0xbeef), Some(q));
        assert_eq!((message_id(&[1, 2, 3]), with_id(&[0; 11], 1)), (None, None));
    }
}
