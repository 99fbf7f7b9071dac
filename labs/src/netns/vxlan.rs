//! VXLAN ports: one bridge spanning two hosts (an overlay network).

use std::net::Ipv4Addr;

use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

use super::ipam::Vxlan;
use super::model::LinkChange;
use super::network::Network;
use super::{index_of, TOOL};

/// A vxlan port to add to a network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// VXLAN network identifier (1 to 16777215), the same on both hosts.
    pub vni: u32,
    /// The other host's underlay address.
    pub remote: Ipv4Addr,
    /// The underlay interface.
    pub dev: Option<String>,
    /// The UDP port (4789, IANA's).
    pub port: u16,
}

/// Add a vxlan port to `net`'s bridge: `RTM_NEWLINK {kind: vxlan}` (`vxlanVNI`),
/// then plug it into the bridge. Frames the bridge sends out of it travel to the
/// same VNI on `remote`, inside UDP datagrams. Returns the interface's name; a
/// failure half-way deletes it.
pub fn vxlan_add(k: &Kernel, net: &Network, spec: &VxlanSpec) -> Result<String> {
    let _s = k.scope(TOOL);
    let vni = spec.vni;
    if vni == 0 || vni > 0xFF_FFFF {
        return Err(Error::Usage(format!("invalid VNI {vni}: 1 to 16777215")));
    }
    let mut st = net.store.lock(k)?;
    let cur = st.get(&net.name)?.clone();
    let name = format!("vxlan{vni}");
    let dev = match spec.dev.as_deref() {
        Some(d) => Some((index_of(k, None, d)?, d)),
        None => None,
    };
    let br = index_of(k, None, &cur.bridge)?;
    k.why("an ethernet tunnel over UDP: frames for the other host travel inside datagrams")
        .link_add_vxlan(None, &name, vni, spec.remote, dev, spec.port)
        .hint(Errno::EEXIST, &format!("{name} exists: VNI {vni} is already used on this host"))?;
    let r = index_of(k, None, &name).and_then(|i| {
        k.why("the tunnel becomes one more port of the bridge")
            .link_set(None, i, &name, &LinkChange { up: true, master: Some((br, cur.bridge.clone())) })
            .map_err(Error::from)
    });
    let r = r.and_then(|()| {
        st.get_mut(&net.name)?.vxlans.push(Vxlan { name: name.clone(), vni, remote: spec.remote });
        st.save(k, &net.name)
    });
    if let Err(e) = r {
        let _ = k.why("undo").link_del(None, &name);
        return Err(e);
    }
    Ok(name)
}

/// Remove the vxlan port `vni` of `net`.
pub fn vxlan_remove(k: &Kernel, net: &Network, vni: u32) -> Result<()> {
    let _s = k.scope(TOOL);
    let mut st = net.store.lock(k)?;
    let n = st.get_mut(&net.name)?;
    let name = format!("vxlan{vni}");
    if !n.vxlans.iter().any(|v| v.vni == vni) {
        return Err(Error::failed(format!("no vxlan {vni} on {}", net.name), "see `netns-bridge show`"));
    }
    n.vxlans.retain(|v| v.vni != vni);
    k.link_del(None, &name)?;
    st.save(k, &net.name)
}
