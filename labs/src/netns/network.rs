//! Networks: a bridge with an address (the gateway), and its state file.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

use super::ipam::{NetState, Subnet};
use super::model::LinkChange;
use super::state::{no_network, Locked, Store};
use super::{check_ifname, index_of, remove_rules, TOOL};

/// What a network is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Its name: the key of its state file (netns-bridge uses the bridge's name).
    pub name: String,
    /// The bridge interface (at most 15 bytes).
    pub bridge: String,
    /// The bridge's own address: the hosts' gateway.
    pub gateway: Ipv4Addr,
    /// The subnet's prefix length (8 to 30).
    pub prefix: u8,
    /// Hand out addresses from this part of the subnet only (None: all of it).
    pub ip_range: Option<Subnet>,
}

impl NetworkSpec {
    /// A network named after its bridge, as netns-bridge makes them.
    pub fn bridge(bridge: &str, gateway: Ipv4Addr, prefix: u8) -> NetworkSpec {
        NetworkSpec { name: bridge.into(), bridge: bridge.into(), gateway, prefix, ip_range: None }
    }

    fn subnet(&self) -> Subnet {
        Subnet::of(self.gateway, self.prefix)
    }

    fn check(&self) -> Result<()> {
        check_ifname("bridge", &self.bridge)?;
        if self.name.is_empty() || self.name.contains(['/', '\0']) || self.name.starts_with('.') {
            return Err(Error::Usage(format!("invalid network name {:?}: a file name, without '/'", self.name)));
        }
        if !(8..=30).contains(&self.prefix) {
            return Err(Error::Usage(format!(
                "invalid prefix length /{}: a bridge network needs /8 to /30 (room for a gateway and hosts)",
                self.prefix
            )));
        }
        let sub = self.subnet();
        if !sub.is_host(self.gateway) {
            return Err(Error::Usage(format!(
                "{} is the network or broadcast address of {sub}: give the gateway, e.g. {}/{}",
                self.gateway,
                Ipv4Addr::from(u32::from(sub.net) + 1),
                self.prefix
            )));
        }
        if let Some(r) = self.ip_range {
            if !sub.contains(r.net) || r.len < sub.len {
                return Err(Error::Usage(format!("the address range {r} is not inside the subnet {sub}")));
            }
        }
        Ok(())
    }
}

/// A network as the lab's operations name it: which bridge, which subnet, and the
/// state root it is remembered in. Operations on it ([`super::attach`],
/// [`super::publish`], [`super::nat()`]...) take the lock and read its current state
/// again, so a `Network` value never goes stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// The bridge interface.
    pub bridge: String,
    /// The subnet.
    pub subnet: Subnet,
    /// The bridge's address, the hosts' default route.
    pub gateway: Ipv4Addr,
    /// Masquerading on (as last read).
    pub nat: bool,
    /// Where it is remembered.
    #[serde(skip)]
    pub store: Store,
}

impl Network {
    pub(crate) fn of(n: &NetState, store: &Store) -> Network {
        Network {
            name: n.name().to_string(),
            bridge: n.bridge.clone(),
            subnet: n.subnet,
            gateway: n.gateway,
            nat: n.nat,
            store: store.clone(),
        }
    }

    /// The network `name` remembered in `store` (read without the lock).
    pub fn load(store: &Store, name: &str) -> Result<Network> {
        let nets = store.read()?;
        let n = nets.iter().find(|n| n.name() == name).ok_or_else(|| no_network(name))?;
        Ok(Network::of(n, store))
    }

    /// Every network remembered in `store`.
    pub fn list(store: &Store) -> Result<Vec<Network>> {
        Ok(store.read()?.iter().map(|n| Network::of(n, store)).collect())
    }

    /// Create a network: `RTM_NEWLINK {kind: bridge}`, `RTM_NEWADDR` of the gateway
    /// on it, `RTM_NEWLINK {flags: IFF_UP}`, then its state file. A name already
    /// taken, or a subnet overlapping another network's, is refused; on a failure
    /// half-way, the bridge is deleted again.
    pub fn create(k: &Kernel, store: &Store, spec: &NetworkSpec) -> Result<Network> {
        let _s = k.scope(TOOL);
        spec.check()?;
        let mut st = store.lock(k)?;
        if st.nets.iter().any(|n| n.name() == spec.name) {
            return Err(Error::failed(
                format!("a contlab network named {:?} already exists", spec.name),
                format!("pick another name, or remove it: netns-bridge bridge rm {}", spec.name),
            ));
        }
        create_locked(k, &mut st, spec)
    }

    /// The network `spec.name`: created when missing (as [`Network::create`]); when it
    /// exists with the same bridge and subnet it is returned as it is, after making
    /// its bridge again if the interface is gone (a state root that outlived a
    /// reboot). A network of that name with another bridge or subnet is refused.
    pub fn ensure(k: &Kernel, store: &Store, spec: &NetworkSpec) -> Result<Network> {
        let _s = k.scope(TOOL);
        spec.check()?;
        let mut st = store.lock(k)?;
        let Some(n) = st.nets.iter().find(|n| n.name() == spec.name).cloned() else {
            return create_locked(k, &mut st, spec);
        };
        if n.bridge != spec.bridge || n.subnet != spec.subnet() || n.gateway != spec.gateway {
            return Err(Error::failed(
                format!(
                    "the network {:?} exists with bridge {} and {} (gateway {}), not {} and {}/{}",
                    spec.name, n.bridge, n.subnet, n.gateway, spec.bridge, spec.gateway, spec.prefix
                ),
                "use the existing network as it is, or remove it first",
            ));
        }
        match k.why("is the network's bridge still there?").link_by_name(None, &n.bridge) {
            Ok(_) => Ok(Network::of(&n, store)),
            Err(e) if e.errno == Errno::ENODEV => {
                k.note(format!("the bridge {} of the network {} is gone: making it again", n.bridge, spec.name));
                make_bridge(k, &n.bridge, n.gateway, n.subnet.len)?;
                Ok(Network::of(&n, store))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Remove this network: refused while hosts are attached; otherwise its nftables
    /// rules, its vxlan ports and its bridge are deleted, then its state files.
    pub fn remove(&self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        let mut st = self.store.lock(k)?;
        let net = st.get(&self.name)?.clone();
        let name = &net.bridge;
        if !net.leases.is_empty() {
            let who: Vec<&str> = net.leases.iter().map(|l| l.netns.as_str()).collect();
            return Err(Error::failed(
                format!("the network {:?} still has attached namespaces: {}", self.name, who.join(", ")),
                format!("detach them first: netns-bridge detach --bridge {} --netns NAME", self.name),
            ));
        }
        remove_rules(k, |c| c.starts_with(&format!("contlab:{name}:")) || c.ends_with(&format!(":isolate:{name}")))?;
        for v in &net.vxlans {
            let _ = k.link_del(None, &v.name);
        }
        match k.why("deleting the bridge frees its ports").link_del(None, name) {
            Err(e) if e.errno == Errno::ENODEV => k.note(format!("the bridge {name} was already gone")),
            r => r?,
        }
        st.forget(k, &self.name)
    }
}

/// The bridge, its address and `up`: deleted again if a step fails.
fn make_bridge(k: &Kernel, name: &str, gw: Ipv4Addr, len: u8) -> Result<()> {
    k.why("the network's virtual switch")
        .link_add_bridge(None, name)
        .hint(Errno::EEXIST, &format!("an interface named {name:?} exists already on this host: pick another name"))?;
    let rest = (|| -> Result<()> {
        let idx = index_of(k, None, name)?;
        k.why("the bridge's address is the network's gateway, and makes the host a member")
            .addr_add(None, idx, name, gw, len)?;
        k.link_set(None, idx, name, &LinkChange { up: true, master: None })?;
        Ok(())
    })();
    if rest.is_err() {
        undo_bridge(k, name);
    }
    rest
}

fn undo_bridge(k: &Kernel, name: &str) {
    if k.why("undo: the bridge is half configured").link_del(None, name).is_err() {
        k.note(format!("leftover: remove it with `ip link del {name}`"));
    }
}

fn create_locked(k: &Kernel, st: &mut Locked, spec: &NetworkSpec) -> Result<Network> {
    let sub = spec.subnet();
    if let Some(o) = st.nets.iter().find(|n| n.bridge == spec.bridge) {
        return Err(Error::failed(
            format!("the bridge {} already belongs to the network {:?}", spec.bridge, o.name()),
            "pick another bridge name",
        ));
    }
    if let Some(o) = st.nets.iter().find(|n| n.subnet.overlaps(&sub)) {
        return Err(Error::failed(
            format!("the subnet {sub} overlaps {} of the network {:?}", o.subnet, o.name()),
            "routing to two networks sharing addresses would be ambiguous: choose a disjoint subnet",
        ));
    }
    make_bridge(k, &spec.bridge, spec.gateway, spec.prefix)?;
    let net = NetState {
        name: (spec.name != spec.bridge).then(|| spec.name.clone()),
        bridge: spec.bridge.clone(),
        subnet: sub,
        gateway: spec.gateway,
        nat: false,
        leases: vec![],
        published: vec![],
        vxlans: vec![],
        ip_range: spec.ip_range,
    };
    st.nets.push(net.clone());
    if let Err(e) = st.save(k, &spec.name) {
        st.nets.retain(|n| n.name() != spec.name);
        undo_bridge(k, &spec.bridge);
        return Err(e);
    }
    Ok(Network::of(&net, &st.store))
}
