//! The topology: what the kernel says (links, routes, inside each attached
//! namespace too) merged with the state files; and its renderers, text and Graphviz.
//! The renderers are pure functions of a [`Topology`].

use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::kernel::Kernel;

use super::ipam::{Host, Publish, Vxlan};
use super::model::{self, Link};
use super::state::Store;
use super::TOOL;

/// The topology `show --json` prints.
#[derive(Debug, Serialize)]
pub struct Topology {
    /// The networks.
    pub bridges: Vec<BridgeView>,
    /// Named namespaces (under /run/netns).
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
    /// What the state says of it.
    #[serde(flatten)]
    pub lease: Host,
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

fn name_of(links: &[Link], i: u32) -> String {
    links.iter().find(|l| l.index == i).map(|l| l.name.clone()).unwrap_or_else(|| format!("if{i}"))
}

/// Read the topology: the host's links and routes (`RTM_GETLINK`, `RTM_GETROUTE`
/// dumps), the networks of `store`, the routes inside each attached namespace
/// (through a socket opened there), and the namespaces named in `netns_dir`.
pub fn topology(k: &Kernel, store: &Store, netns_dir: &Path) -> Result<Topology> {
    let _s = k.scope(TOOL);
    let nets = store.read()?;
    let links = k.links(None)?;
    let routes: Vec<String> = k.routes(None)?.iter().map(|r| route_text(r, &|i| name_of(&links, i))).collect();
    let namespaces = k.read_dir(netns_dir).unwrap_or_default();
    let mut bridges = Vec::new();
    for n in &nets {
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
            name: n.name().to_string(),
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
    Ok(Topology { bridges, namespaces, routes })
}

fn published_text(p: &Publish) -> String {
    match p.host_ip {
        None => format!("{}/{}", p.host_port, p.proto),
        Some(ip) => format!("{ip}:{}/{}", p.host_port, p.proto),
    }
}

/// `show`'s text.
pub fn text(t: &Topology) -> String {
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
            s.push_str(&format!("  publish {} -> {}:{}\n", published_text(p), p.to, p.port));
        }
    }
    s.push_str(&format!("namespaces: {}\n", t.namespaces.join(" ")));
    for r in &t.routes {
        s.push_str(&format!("route {r}\n"));
    }
    s
}

/// `show --dot`: a Graphviz graph (`dot -Tsvg`).
pub fn dot(t: &Topology) -> String {
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
                "  host -- \"br:{}\" [label=\":{} -> {}:{}\", style=dotted];\n",
                b.name,
                published_text(p),
                p.to,
                p.port
            ));
        }
    }
    s.push_str("}\n");
    s
}
