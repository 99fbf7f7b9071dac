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
//!    The kernel only forwards between interfaces when `net.ipv4.ip_forward` is 1. A
//!    new network namespace does not start at 0: it copies the value of the host's
//!    initial namespace (init_net; `net.core.devconf_inherit_init_net` = 0, the
//!    default), so it is 1 in every namespace of a machine where dockerd runs.
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
//! Each network has a state file under a *state root* ([`Store`]; netns-bridge's is
//! `$CONTLAB_RUN_DIR`, default /run/contlab): its subnet, gateway, the addresses
//! handed out, published ports. Every operation that changes it first takes
//! `flock(2)` on `ROOT/lock`, so two `attach` at the same time never take the same
//! address. A hosts file per network lists each named host; `netns exec`
//! bind-mounts it on /etc/hosts, so `ping c2` works as in the course. Docker's
//! default bridge has no name resolution at all (only its user networks have, by a
//! DNS server): an attach with [`AttachSpec::hosts`] off leaves the host out of the
//! hosts file, and its lease names none.
//!
//! ## The operations
//!
//! The lab is a library; `netns-bridge` ([`cli`]) is one adapter over it, and a
//! runtime calls the same operations in-process. Each takes plain data, prints
//! nothing, and returns what it made:
//!
//! | operation | what it does |
//! |---|---|
//! | [`create`], [`remove`], [`list`], [`enter`] | named namespaces (`ip netns add/del/list/exec`) |
//! | [`Network::create`], [`Network::ensure`], [`Network::remove`], [`Network::load`] | a bridge, its gateway address, its state |
//! | [`attach`] → [`Lease`], [`detach`], [`forget`] | a veth pair, an address, the routes |
//! | [`nat()`] | masquerade and isolation rules, `ip_forward` |
//! | [`publish`] → [`Published`], [`unpublish`], [`published`] | DNAT of a host port |
//! | [`vxlan_add`], [`vxlan_remove`] | overlay ports |
//! | [`topology`], [`show::text`], [`show::dot`] | what is plugged where |
//!
//! ## What goes wrong
//!
//! - Two networks whose subnets overlap would make routing ambiguous: refused.
//! - Interface names are at most 15 bytes (`IFNAMSIZ` is 16 with the NUL).
//! - A failure half-way through `attach` deletes the host end of the veth pair, which
//!   deletes both ends; the lease is written only once everything worked. An attach
//!   killed half-way (`kill -9`) can leave the pair without a lease: `detach` finds
//!   it by its name (a hash of bridge, namespace and interface) and deletes it, and
//!   removing the namespace deletes it too.
//! - Without isolation rules, once `ip_forward` is on the host routes between all its
//!   networks: `nat` adds `forward` drop rules between contlab's networks, as docker does.
//! - Published ports from localhost need `route_localnet` on the bridge (packets from
//!   127.0.0.1 may not otherwise be routed out) and a masquerade of those sources.
//! - `detach` is slow by nature: `RTM_DELLINK` of a veth pair returns only once the
//!   kernel has waited for an RCU barrier (every reader of the interface gone), about
//!   20 ms on a small machine, and `ip link del` or a CNI plugin wait just as long.

mod attach;
pub mod cli;
pub mod ipam;
pub mod model;
mod named;
pub mod nat;
mod network;
mod ports;
pub mod show;
mod state;
mod vxlan;

use std::path::Path;

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, Mode};
use model::NftMsg;

pub use attach::{attach, detach, forget, mac_bytes, remove_attached, AttachSpec, Lease};
pub use cli::{run, Cli};
pub use named::{create, enter, list, remove};
pub use network::{Network, NetworkSpec};
pub use ports::{internal, nat, publish, published, unpublish, Proto, PublishSpec, Published};
pub use show::{topology, Topology};
pub use state::Store;
pub use vxlan::{vxlan_add, vxlan_remove, VxlanSpec};

/// The tool this lab is, as its trace and its messages name it.
pub const TOOL: &str = "netns-bridge";

/// Where named network namespaces are bound, as `ip netns` does.
pub const NETNS_DIR: &str = "/run/netns";

fn check_ifname(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) || name == "." || name == ".." {
        return Err(Error::Usage(format!(
            "invalid {what} name {name:?}: an interface name has 1 to 15 bytes (IFNAMSIZ is 16 with the NUL), without '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// The ifindex of interface `name` (`RTM_GETLINK` by name); 0 in a dry run that
/// cannot know it (an interface the plan has not really made).
fn index_of(k: &Kernel, ns: Option<&Path>, name: &str) -> Result<u32> {
    match k.link_by_name(ns, name) {
        Ok(l) => Ok(l.index),
        Err(_) if k.mode() == Mode::DryRun => Ok(0),
        Err(e) if e.errno == Errno::ENODEV => {
            Err(Error::failed(format!("no interface named {name:?}"), "check with `netns-bridge show`"))
        }
        Err(e) => Err(e.into()),
    }
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

#[cfg(test)]
mod tests;
