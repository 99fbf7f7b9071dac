//! The embedded resolver's sockets, as the container's monitor holds them: one bound
//! to 127.0.0.11:53 inside the container's network namespace, where its
//! /etc/resolv.conf sends every query, and one in the host's namespace, from which the
//! names that are not the networks' are forwarded to the host's resolvers (or
//! `--dns`'s). The answers themselves are [`super::dns`]'s.
//!
//! Making the two sockets is traced (`setns(2)`, `bind(2)`); the datagrams are the
//! tool's own data, as the bytes of a terminal the monitor relays: a query is no
//! request of the kernel's configuration, and a trace line per lookup would bury the
//! rest.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::kernel::Kernel;
use crate::netns;

use super::dns::{self, Reply};
use super::init::Resolver;

/// A query forwarded upstream, waiting for its answer.
struct Pending {
    asker: SocketAddr,
    id: u16,
    since: Instant,
}

/// The resolver of one container.
pub struct Responder {
    inside: UdpSocket,
    outside: UdpSocket,
    upstream: Vec<SocketAddr>,
    pending: HashMap<u16, Pending>,
    labs: Vec<netns::Store>,
    key: String,
}

/// How long a forwarded query waits for its answer before it is forgotten (the asker
/// has retried or given up by then: glibc waits 5 s).
const FORGET: Duration = Duration::from_secs(10);

impl Responder {
    /// Bind 127.0.0.11:53 inside `r.netns`, and a socket for forwarding on the host.
    pub fn open(k: &Kernel, r: &Resolver) -> Result<Responder> {
        let inside = k
            .why("the embedded resolver: the container's /etc/resolv.conf names 127.0.0.11")
            .udp_bind_in(Some(&r.netns), SocketAddrV4::new(super::network::RESOLVER, 53))?;
        let outside = k
            .why("forward the names that are not the networks' to the host's resolvers")
            .udp_bind_in(None, SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0))?;
        for s in [&inside, &outside] {
            k.io().set_nonblocking(s.as_fd()).map_err(|e| {
                crate::error::Error::failed(
                    format!("cannot make the resolver's socket non-blocking: {e}"),
                    "this is a bug",
                )
            })?;
        }
        Ok(Responder {
            inside,
            outside,
            upstream: r.upstream.clone(),
            pending: HashMap::new(),
            labs: r.state_roots.iter().map(netns::Store::new).collect(),
            key: r.key.clone(),
        })
    }

    /// The descriptors to poll for reading: queries, then upstream answers.
    pub fn fds(&self) -> [BorrowedFd<'_>; 2] {
        [self.inside.as_fd(), self.outside.as_fd()]
    }

    /// Answer (or forward) every query waiting on the inside socket.
    pub fn on_queries(&mut self, buf: &mut [u8]) {
        while let Ok((n, asker)) = self.inside.recv_from(buf) {
            let q = &buf[..n];
            let (labs, key) = (&self.labs, self.key.as_str());
            let lookup = |name: &str| labs.iter().flat_map(|l| super::network::resolve(l, key, name)).collect();
            match dns::answer(q, !self.upstream.is_empty(), &lookup) {
                Reply::Answer(a) => {
                    let _ = self.inside.send_to(&a, asker);
                }
                Reply::Forward => self.forward(q, asker),
                Reply::Drop => {}
            }
        }
        self.pending.retain(|_, p| p.since.elapsed() < FORGET);
    }

    fn forward(&mut self, q: &[u8], asker: SocketAddr) {
        let (Some(id), Some(server)) = (dns::message_id(q), self.upstream.first()) else { return };
        // A random id of its own for each forwarded query (a predictable one would let
        // an off-path sender forge the answer), none already waiting.
        let ours = (0..8).map(|_| rand::random::<u16>()).find(|i| !self.pending.contains_key(i)).unwrap_or(0);
        if let Some(m) = dns::with_id(q, ours) {
            if self.outside.send_to(&m, server).is_ok() {
                self.pending.insert(ours, Pending { asker, id, since: Instant::now() });
            }
        }
    }

    /// Pass every upstream answer back to the container that asked.
    pub fn on_answers(&mut self, buf: &mut [u8]) {
        while let Ok((n, from)) = self.outside.recv_from(buf) {
            if !self.upstream.contains(&from) {
                continue;
            }
            let Some(p) = dns::message_id(&buf[..n]).and_then(|id| self.pending.remove(&id)) else { continue };
            if let Some(a) = dns::with_id(&buf[..n], p.id) {
                let _ = self.inside.send_to(&a, p.asker);
            }
        }
    }
}
