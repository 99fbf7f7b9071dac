//! # Networks: what `docker network create` makes, and how a container joins one
//!
//! A docker network is no kernel object either. A *bridge* network is what the
//! netns-bridge lab builds by hand: a bridge interface with an address (the gateway),
//! a subnet to hand addresses out of, and nftables rules: a masquerade so its
//! containers reach the outside, and `forward` drops between it and every other
//! network, which is all the isolation of two networks is. `mini network create web`
//! asks the kernel for exactly that, through [`crate::netns`]; the network's name,
//! ID, labels and options are mini's own record, `ROOT/networks/NAME.json`.
//!
//! | docker | mini asks the kernel |
//! |---|---|
//! | `network create [--subnet S] NAME` | `RTM_NEWLINK {kind: bridge}` `br-ID12`, `RTM_NEWADDR` of the gateway, nftables masquerade and isolation rules |
//! | `--internal` | no masquerade; `forward` drops of everything in or out of the bridge |
//! | `run --network NAME` / `network connect` | a veth pair into the container's namespace (`eth0`, `eth1`...), its address, the default route via the first network |
//! | `-p 8080:80`, `-P` | DNAT rules from the host's port to the container's address and a hairpin masquerade; the veth in hairpin mode |
//! | the embedded DNS, `127.0.0.11` | a UDP socket bound inside the container's namespace, held by its monitor ([`super::dns`]) |
//! | `network rm` | the rules, the bridge, the record |
//!
//! ## Three networks exist from the start
//!
//! `bridge` is mini's default bridge (`mini0`, its address from the settings' `bip`:
//! docker's `docker0`), `host` is no network namespace of the container's own, and
//! `none` is a namespace with only `lo`. They cannot be removed.
//!
//! ## Names: the default bridge has none
//!
//! On a user-defined network a container finds the others by name: its
//! /etc/resolv.conf says `nameserver 127.0.0.11`, and the answers come from the
//! networks' state, so a container that joins is found at once and one that leaves is
//! gone at once. On the default bridge there is no such resolver (docker's neither):
//! containers reach each other by address, or by the legacy `--link`, which writes the
//! other container's address into /etc/hosts once, at start.
//!
//! ## Subnets
//!
//! Without `--subnet`, a network gets the first /24 (the pool's `size`) of the
//! settings' `default-address-pools` (mini's default: `10.100.0.0/16`, in no docker or
//! podman default pool, since either may run on the same machine) that overlaps no
//! other network and no route of the host (`RTM_GETROUTE`): a subnet that a route
//! already sends elsewhere would make both unreachable.
//!
//! ## Overlay networks: one network across hosts
//!
//! `--driver overlay` is docker's classic multi-host network, from before swarm: the
//! hosts share a *cluster store* (docker's `--cluster-store`, a key-value store such
//! as etcd; mini's settings name a directory every host mounts) holding the network's
//! record and its one address pool, so no two hosts hand out the same address and
//! every host's resolver finds every container. On each host the network is a bridge
//! of its own with a VXLAN port (`RTM_NEWLINK {kind: vxlan, id: VNI, group:
//! 239.1.1.1, dev: UNDERLAY}`, the settings' `cluster-advertise` interface): frames
//! for the other hosts travel inside UDP datagrams (port 4789), flooded to the
//! multicast group until the bridges have learned where each MAC address lives
//! (RFC 7348's flood and learn). An overlay network has no way out (docker adds a
//! second bridge, docker_gwbridge, for that) and publishes no port.
//!
//! ## Addresses and ports across stop and start
//!
//! As docker does, a container's address is given at start and released at stop
//! (`--ip` asks for one, on a network whose subnet was given by the user), and so are
//! its published ports: a random host port (`-p 80`, `-P`) may change across a
//! restart. A host port already published is refused with docker's "port is already
//! allocated", which is bookkeeping of the published ports, not a failed bind.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::netns::{self, ipam::Subnet, AttachSpec, Network, NetworkSpec, Proto, PublishSpec};

use super::resources::Settings;
use super::state::{Container, Containers, Endpoint, PortBinding, PortSpec};

/// The networks that exist without being created.
pub const BUILTIN: [&str; 3] = ["bridge", "host", "none"];

/// The multicast group of the overlay networks' VXLAN ports.
pub const OVERLAY_GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);

/// The address of the embedded resolver, inside each container on a user network.
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// A pool of subnets for networks created without `--subnet` (daemon.json's
/// `default-address-pools` entry).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pool {
    /// The range the subnets are cut from: `10.100.0.0/16`.
    pub base: String,
    /// The prefix length of each subnet: 24.
    pub size: u8,
}

/// mini's default pool.
pub fn default_pools() -> Vec<Pool> {
    vec![Pool { base: "10.100.0.0/16".into(), size: 24 }]
}

/// A network, as `network inspect` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// Its name.
    pub name: String,
    /// Its ID: 64 hex digits.
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// `--internal`: no route in or out.
    pub internal: bool,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// `-o`s.
    pub options: BTreeMap<String, String>,
    /// Its subnet (`10.100.0.0/24`), gateway and `--ip-range`.
    pub subnet: String,
    /// The gateway, the bridge's own address.
    pub gateway: String,
    /// Where addresses are handed out from (empty: the whole subnet).
    pub ip_range: String,
    /// Whether the user gave the subnet (`--ip` needs it, as in docker).
    pub user_subnet: bool,
    /// Whether the user gave the gateway: docker's inspect shows a gateway it chose
    /// itself only for a subnet it chose too.
    #[serde(default)]
    pub user_gateway: bool,
    /// The bridge interface (the netns-bridge network of the same name).
    pub bridge: String,
    /// An overlay network's VXLAN network identifier.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vni: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Record {
    /// Whether it is one of [`BUILTIN`].
    pub fn is_builtin(&self) -> bool {
        BUILTIN.contains(&self.name.as_str())
    }

    fn builtin(name: &str, s: &Settings) -> Record {
        let (driver, bridge) = match name {
            "bridge" => ("bridge", s.bridge.as_str()),
            "host" => ("host", ""),
            _ => ("null", ""),
        };
        let mut r = Record {
            name: name.into(),
            id: stable_id(name),
            created: "0001-01-01T00:00:00Z".into(),
            driver: driver.into(),
            bridge: bridge.into(),
            ..Record::default()
        };
        if name == "bridge" {
            if let Ok((gw, len)) = s.bip() {
                r.subnet = Subnet::of(gw, len).to_string();
                r.gateway = gw.to_string();
            }
            r.options = [
                ("com.docker.network.bridge.default_bridge", "true"),
                ("com.docker.network.bridge.enable_ip_masquerade", "true"),
                ("com.docker.network.bridge.name", bridge),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        }
        r
    }

    fn spec(&self) -> Result<NetworkSpec> {
        let (gw, len) = netns::ipam::parse_cidr(&format!("{}/{}", self.gateway, prefix_of(&self.subnet)), None)?;
        let mut spec = NetworkSpec::bridge(&self.bridge, gw, len);
        if !self.ip_range.is_empty() {
            let (ip, l) = netns::ipam::parse_cidr(&self.ip_range, None)?;
            spec.ip_range = Some(Subnet::of(ip, l));
        }
        Ok(spec)
    }

    fn is_overlay(&self) -> bool {
        self.driver == "overlay"
    }

    /// docker's `Scope`: `global` for an overlay network (every host has it), else `local`.
    pub fn scope(&self) -> &'static str {
        if self.is_overlay() {
            "global"
        } else {
            "local"
        }
    }

    /// The first 12 digits of its ID, as `network ls` shows it.
    pub fn short_id(&self) -> String {
        crate::image::registry::short(&self.id)
    }

    fn masquerade(&self) -> bool {
        !self.internal
            && !self.is_overlay()
            && self.options.get("com.docker.network.bridge.enable_ip_masquerade").is_none_or(|v| v != "false")
    }
}

fn prefix_of(cidr: &str) -> u8 {
    cidr.split_once('/').and_then(|(_, l)| l.parse().ok()).unwrap_or(24)
}

/// The ID of a built-in network (`bridge`, `host`, `none`): the sha256 of its name
/// (docker's are random); of an endpoint, of the container and its veth.
pub fn stable_id(name: &str) -> String {
    use sha2::Digest;
    crate::image::registry::hex(&sha2::Sha256::digest(format!("contlab network {name}")))
}

/// What `network create` was asked.
#[derive(Debug, Clone, Default)]
pub struct CreateSpec {
    /// The name.
    pub name: String,
    /// `bridge`, or `overlay` (across the hosts of the cluster store).
    pub driver: String,
    /// `--subnet`, `--gateway`, `--ip-range`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `-o KEY=VALUE`.
    pub options: Vec<String>,
    /// `--label KEY=VALUE`.
    pub labels: Vec<String>,
}

fn daemon(msg: impl std::fmt::Display, hint: &str) -> Error {
    Error::failed(format!("Error response from daemon: {msg}"), hint)
}

/// No network of that name or ID.
pub fn not_found(what: &str) -> Error {
    daemon(format!("network {what} not found"), "see `mini network ls`")
}

fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((l.clone(), String::new())))
        .collect()
}

/// mini's networks: the records under `ROOT/networks`, the built-in three, and the
/// netns-bridge networks they are made of.
pub struct Networks<'k> {
    k: &'k Kernel,
    dir: PathBuf,
    settings: Settings,
}

/// No cluster store: overlay networks cannot be made.
fn no_cluster() -> Error {
    daemon(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        "mini's overlay networks need a cluster store: set cluster-store (a directory the hosts share) and cluster-advertise (the interface that reaches them) in mini's settings",
    )
}

impl<'k> Networks<'k> {
    /// The networks of the store at `root`.
    pub fn open(k: &'k Kernel, root: &Path) -> Result<Networks<'k>> {
        Ok(Networks { k, dir: root.join("networks"), settings: Settings::load(k)? })
    }

    /// Where the kernel side of this host's networks is remembered (netns-bridge's
    /// state root).
    pub fn lab_store(&self) -> netns::Store {
        netns::Store::from_env()
    }

    /// The cluster store's directory, when the settings name one.
    fn cluster(&self) -> Option<PathBuf> {
        (!self.settings.cluster_store.is_empty()).then(|| PathBuf::from(&self.settings.cluster_store))
    }

    /// Where the kernel side of `rec` is remembered: the cluster store's for an
    /// overlay network (its addresses are shared by the hosts).
    pub fn lab_store_of(&self, rec: &Record) -> Result<netns::Store> {
        match (rec.is_overlay(), self.cluster()) {
            (false, _) => Ok(self.lab_store()),
            (true, Some(c)) => {
                super::state::mkdir_once(self.k, &c, 0o755)?;
                Ok(cluster_lab(&c))
            }
            (true, None) => Err(no_cluster()),
        }
    }

    /// Every state root a resolver reads: this host's, and the cluster store's.
    pub fn lab_stores(&self) -> Vec<netns::Store> {
        lab_stores(&self.settings)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn cluster_path(&self, name: &str) -> Option<PathBuf> {
        self.cluster().map(|c| c.join("networks").join(format!("{name}.json")))
    }

    /// Take the networks' lock (create and remove take turns).
    pub fn lock(&self) -> Result<crate::lock::FileLock> {
        super::state::mkdir_once(self.k, &self.dir, 0o700)?;
        Ok(crate::lock::lock(
            self.k.why("create and remove of networks take turns"),
            &self.dir.join("lock"),
            true,
            None,
        )?)
    }

    fn stored(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        let dirs = std::iter::once(self.dir.clone()).chain(self.cluster().map(|c| c.join("networks")));
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let r: Record = serde_json::from_str(&text).map_err(|e| {
                    Error::failed(
                        format!("the network record {} is damaged: {e}", p.display()),
                        "remove it and the network's bridge by hand",
                    )
                })?;
                // An overlay network this host joined is in both: the cluster's wins.
                out.retain(|o| o.name != r.name);
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Every network, the built-in ones included, sorted by name as docker's client
    /// lists them.
    pub fn all(&self) -> Result<Vec<Record>> {
        let mut v: Vec<Record> = BUILTIN.iter().map(|n| Record::builtin(n, &self.settings)).collect();
        v.extend(self.stored()?);
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// The network named `what`, or whose ID is or starts with `what`.
    pub fn get(&self, what: &str) -> Result<Record> {
        let what = if what == "default" { "bridge" } else { what };
        let all = self.all()?;
        if let Some(r) = all.iter().find(|r| r.name == what || r.id == what) {
            return Ok(r.clone());
        }
        let by_prefix: Vec<&Record> = all.iter().filter(|r| !what.is_empty() && r.id.starts_with(what)).collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found(what)),
            _ => Err(daemon(
                format!("network {what} is ambiguous ({} matches found based on ID prefix)", by_prefix.len()),
                "give more of the ID, or the name",
            )),
        }
    }

    /// `network create`: the bridge, its address and rules (netns-bridge), then the
    /// record. Docker's refusals: a name taken, an overlapping subnet, a gateway
    /// outside the subnet. A failure after the bridge exists removes it again.
    pub fn create(&self, spec: &CreateSpec) -> Result<Record> {
        let k = self.k;
        if !super::names::valid_name(&spec.name) {
            return Err(daemon(
                format!("invalid name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", spec.name),
                "pick another name",
            ));
        }
        let overlay = spec.driver == "overlay";
        if !matches!(spec.driver.as_str(), "" | "bridge" | "overlay") {
            return Err(daemon(
                format!("plugin \"{}\" not found", spec.driver),
                "mini's networks use the bridge or the overlay driver",
            ));
        }
        if overlay && (self.cluster().is_none() || self.settings.cluster_advertise.is_empty()) {
            return Err(no_cluster());
        }
        if overlay && spec.internal {
            return Err(daemon(
                "mini's overlay networks have no way out already: --internal adds nothing to them",
                "create it without --internal",
            ));
        }
        if self.all()?.iter().any(|r| r.name == spec.name) {
            return Err(daemon(format!("network with name {} already exists", spec.name), "pick another name"));
        }
        let id = super::names::new_id();
        let options = key_values(&spec.options);
        let bridge =
            options.get("com.docker.network.bridge.name").cloned().unwrap_or_else(|| format!("br-{}", &id[..12]));
        // Subnets of this host's networks and of the cluster's: none may overlap.
        // (the records' too: a state root on tmpfs does not outlive a reboot, the records do)
        let mut taken = vec![];
        for l in self.lab_stores() {
            taken.extend(l.read()?.iter().map(|n| n.subnet));
        }
        for r in self.all()? {
            if let Ok((ip, len)) = netns::ipam::parse_cidr(&r.subnet, None) {
                taken.push(Subnet::of(ip, len));
            }
        }
        let (subnet, user_subnet) = match &spec.subnet {
            Some(s) => {
                let (ip, len) = cidr(s)?;
                let sub = Subnet::of(ip, len);
                if taken.iter().any(|t| t.overlaps(&sub)) {
                    return Err(daemon(
                        "Pool overlaps with other one on this address space",
                        "choose a disjoint --subnet (see `mini network inspect`)",
                    ));
                }
                (sub, true)
            }
            None => (self.free_subnet(&taken)?, false),
        };
        if spec.gateway.is_some() && spec.subnet.is_none() || spec.ip_range.is_some() && spec.subnet.is_none() {
            return Err(daemon("--gateway and --ip-range need --subnet", "give the subnet as well"));
        }
        let gateway = match &spec.gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| Error::Usage(format!("invalid gateway address {g:?}")))?;
                if !subnet.is_host(g) {
                    return Err(daemon(
                        format!("no matching subnet for gateway {g}"),
                        "the gateway must be a host address of the subnet",
                    ));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(subnet.net) + 1),
        };
        let ip_range = match &spec.ip_range {
            Some(r) => {
                let (ip, len) = cidr(r)?;
                let r = Subnet::of(ip, len);
                if !subnet.contains(r.net) || r.len < subnet.len {
                    return Err(daemon(
                        format!("no matching subnet for range {r}"),
                        "the range must be inside the subnet",
                    ));
                }
                r.to_string()
            }
            None => String::new(),
        };
        let mut rec = Record {
            name: spec.name.clone(),
            id,
            created: crate::units::rfc3339(crate::units::now_nanos()),
            driver: if overlay { "overlay" } else { "bridge" }.into(),
            internal: spec.internal,
            labels: key_values(&spec.labels),
            options,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            ip_range,
            user_subnet,
            user_gateway: spec.gateway.is_some(),
            bridge,
            vni: 0,
        };
        if overlay {
            // The same VNI on every host: docker's first is 4096; the ID picks one.
            rec.vni = match rec.options.get("com.docker.network.driver.overlay.vxlanid_list") {
                Some(v) => v.parse().map_err(|_| Error::Usage(format!("invalid VXLAN id {v:?}")))?,
                None => 4096 + u32::from_str_radix(&rec.id[..5], 16).unwrap_or(0) % 100_000,
            };
        }
        let lab = self.lab_store_of(&rec)?;
        let net = {
            let _s = k.scope(netns::TOOL);
            Network::create(k, &lab, &rec.spec()?)?
        };
        let rest = (|| -> Result<()> {
            let _s = k.scope(netns::TOOL);
            if rec.internal {
                netns::internal(k, &net)?;
            } else if rec.masquerade() {
                netns::nat(k, &net, true)?;
            }
            if overlay {
                self.vxlan_port(&rec, &net)?;
            }
            Ok(())
        })()
        .and_then(|()| self.write_record(&rec));
        if let Err(e) = rest {
            let _s = k.scope(netns::TOOL);
            let _ = net.remove(k);
            return Err(e);
        }
        Ok(rec)
    }

    /// Write `rec` into this host's records, and an overlay network's into the
    /// cluster store too (which the other hosts read).
    fn write_record(&self, rec: &Record) -> Result<()> {
        let text = format!("{}\n", serde_json::to_string_pretty(rec).unwrap_or_default());
        let mut paths = vec![self.path(&rec.name)];
        if rec.is_overlay() {
            let p = self.cluster_path(&rec.name).ok_or_else(no_cluster)?;
            if let Some(d) = p.parent() {
                for dir in [d.parent().unwrap_or(d), d] {
                    super::state::mkdir_once(self.k, dir, 0o755)?;
                }
            }
            paths.push(p);
        }
        super::state::mkdir_once(self.k, &self.dir, 0o700)?;
        for p in paths {
            if !self.k.exists(&p) {
                self.k.why("the network's record: its name, ID, labels and options").write_new_file(
                    &p,
                    text.as_bytes(),
                    0o600,
                )?;
            }
        }
        Ok(())
    }

    /// An overlay network's VXLAN port on this host, unless it has one: the tunnel to
    /// the other hosts, over the `cluster-advertise` interface.
    fn vxlan_port(&self, rec: &Record, net: &Network) -> Result<()> {
        let k = self.k;
        let name = format!("vxlan{}", rec.vni);
        if k.why("does this host have the overlay's tunnel yet?").link_by_name(None, &name).is_ok() {
            return Ok(());
        }
        let spec = netns::VxlanSpec {
            vni: rec.vni,
            remote: OVERLAY_GROUP,
            dev: Some(self.settings.cluster_advertise.clone()),
            port: 4789,
        };
        netns::vxlan_add(k, net, &spec)?;
        Ok(())
    }

    /// The first subnet of the pools that overlaps no network and no route.
    fn free_subnet(&self, taken: &[Subnet]) -> Result<Subnet> {
        let routes: Vec<Subnet> = self
            .k
            .why("which subnets does the host already route? a new network must not hide them")
            .routes(None)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.dst.map(|(ip, len)| Subnet::of(ip, len)))
            .filter(|s| s.len > 0)
            .collect();
        let mut bip = vec![];
        if let Ok((gw, len)) = self.settings.bip() {
            bip.push(Subnet::of(gw, len));
        }
        for p in &self.settings.default_address_pools {
            let (base, len) = cidr(&p.base)?;
            let base = Subnet::of(base, len);
            if p.size < base.len.max(8) || p.size > 30 {
                continue;
            }
            let step = 1u32 << (32 - p.size as u32);
            let count = 1u64 << (p.size - base.len);
            for i in 0..count {
                let s = Subnet::of(Ipv4Addr::from(u32::from(base.net) + i as u32 * step), p.size);
                if !taken.iter().chain(&routes).chain(&bip).any(|t| t.overlaps(&s)) {
                    return Ok(s);
                }
            }
        }
        Err(daemon(
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
            "give --subnet, or widen default-address-pools in mini's settings",
        ))
    }

    /// `network rm`: refused for the built-in networks and while a container is
    /// attached; otherwise its rules and bridge go (netns-bridge), then the record.
    pub fn remove(&self, rec: &Record) -> Result<()> {
        let k = self.k;
        if rec.is_builtin() {
            return Err(daemon(
                format!("{} is a pre-defined network and cannot be removed", rec.name),
                "remove the networks you created",
            ));
        }
        let lab = self.lab_store_of(rec)?;
        if rec.is_overlay() {
            return self.remove_overlay(rec, &lab);
        }
        match Network::load(&lab, &rec.bridge) {
            Ok(net) => {
                let st = lab.read()?;
                if st.iter().any(|n| n.name() == rec.bridge && !n.leases.is_empty()) {
                    return Err(daemon(
                        format!(
                            "error while removing network: network {} id {} has active endpoints",
                            rec.name, rec.id
                        ),
                        "stop or disconnect its containers first",
                    ));
                }
                let _s = k.scope(netns::TOOL);
                net.remove(k)?;
            }
            Err(_) => k.note(format!("the network {}'s bridge {} is already gone", rec.name, rec.bridge)),
        }
        k.why("forget the network's record").unlink(&self.path(&rec.name))?;
        Ok(())
    }

    /// `network rm` of an overlay network: refused while a container of any host is
    /// attached; this host's bridge and tunnel go, and the cluster's record and
    /// state with them. Another host's bridge goes with its own `network rm`, which
    /// finds only its record left.
    fn remove_overlay(&self, rec: &Record, lab: &netns::Store) -> Result<()> {
        let k = self.k;
        let _s = k.scope(netns::TOOL);
        let shared = lab.read()?.into_iter().find(|n| n.name() == rec.bridge);
        if shared.as_ref().is_some_and(|n| !n.leases.is_empty()) {
            return Err(daemon(
                format!("error while removing network: network {} id {} has active endpoints", rec.name, rec.id),
                "stop or disconnect its containers first, on every host",
            ));
        }
        for link in [format!("vxlan{}", rec.vni), rec.bridge.clone()] {
            if k.why("this host's part of the overlay").link_by_name(None, &link).is_ok() {
                k.link_del(None, &link)?;
            }
        }
        if shared.is_some() {
            let mut st = lab.lock(k)?;
            st.forget(k, &rec.bridge)?;
        }
        for p in std::iter::once(self.path(&rec.name)).chain(self.cluster_path(&rec.name)) {
            if k.exists(&p) {
                k.why("forget the network's record").unlink(&p)?;
            }
        }
        Ok(())
    }

    /// The netns-bridge network of `rec`, made again if it is gone (a state root that
    /// did not outlive a reboot), with its rules.
    pub fn lab_network(&self, rec: &Record) -> Result<Network> {
        let k = self.k;
        let _s = k.scope(netns::TOOL);
        let lab = self.lab_store_of(rec)?;
        let existed = Network::load(&lab, &rec.bridge).is_ok();
        let net = Network::ensure(k, &lab, &rec.spec()?)?;
        if rec.is_overlay() {
            // This host joins: its own bridge (made by ensure), its tunnel, its record.
            self.vxlan_port(rec, &net)?;
            self.write_record(rec)?;
            return Ok(net);
        }
        if rec.internal {
            if !existed {
                netns::internal(k, &net)?;
            }
        } else if rec.masquerade() && !net.nat {
            netns::nat(k, &net, true)?;
        }
        Ok(net)
    }

    /// `network inspect`'s object: docker's fields, with the running containers
    /// attached.
    pub fn inspect(&self, rec: &Record, containers: &[Container]) -> Value {
        let mut attached = serde_json::Map::new();
        for c in containers.iter().filter(|c| c.state.status.is_up()) {
            if let Some(e) = c.net.endpoint(&rec.name) {
                attached.insert(
                    c.id.clone(),
                    json!({"Name": c.name, "EndpointID": endpoint_id(c, e), "MacAddress": e.mac,
                           "IPv4Address": format!("{}/{}", e.ip, e.prefix), "IPv6Address": ""}),
                );
            } else if rec.name == "host" && c.config.network == "host" {
                attached.insert(
                    c.id.clone(),
                    json!({"Name": c.name, "EndpointID": "", "MacAddress": "", "IPv4Address": "", "IPv6Address": ""}),
                );
            }
        }
        let mut config = serde_json::Map::new();
        if !rec.subnet.is_empty() {
            config.insert("Subnet".into(), json!(rec.subnet));
            if !rec.ip_range.is_empty() {
                config.insert("IPRange".into(), json!(rec.ip_range));
            }
            if !rec.user_subnet || rec.user_gateway {
                config.insert("Gateway".into(), json!(rec.gateway));
            }
        }
        json!({
            "Name": rec.name,
            "Id": rec.id,
            "Created": rec.created,
            "Scope": rec.scope(),
            "Driver": rec.driver,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": if rec.is_builtin() { Value::Null } else { json!({}) },
                     "Config": if config.is_empty() { json!([]) } else { json!([config]) }},
            "Internal": rec.internal,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": attached,
            "Options": rec.options,
            "Labels": rec.labels,
        })
    }
}

fn cidr(s: &str) -> Result<(Ipv4Addr, u8)> {
    netns::ipam::parse_cidr(s, None).map_err(|_| Error::Usage(format!("invalid CIDR address: {s}")))
}

/// docker's EndpointID: here the sha256 of the container and its veth.
pub fn endpoint_id(c: &Container, e: &Endpoint) -> String {
    stable_id(&format!("{}/{}", c.id, e.veth))
}

// ---- ports -------------------------------------------------------------------------

/// Parse docker's `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` (ranges `8000-8001:80-81`
/// too), with docker's messages.
pub fn parse_publish(s: &str) -> Result<Vec<PortSpec>> {
    let bad = |what: &str, v: &str| Error::Container { code: 125, message: format!("Invalid {what}: {v}") };
    let (rest, proto) = s.rsplit_once('/').unwrap_or((s, "tcp"));
    if !matches!(proto, "tcp" | "udp") {
        // docker takes sctp too; mini's DNAT rules match TCP and UDP only.
        return Err(bad("proto", proto));
    }
    let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [c, h] => ("", *h, *c),
        [c, h, ip] => (*ip, *h, *c),
        _ => return Err(bad("containerPort", s)),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
        return Err(bad("ip address", ip));
    }
    let range = |v: &str, what: &str| -> Result<(u16, u16)> {
        let (a, b) = v.split_once('-').unwrap_or((v, v));
        match (a.parse::<u16>(), b.parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b && (a > 0 || what == "hostPort") => Ok((a, b)),
            _ => Err(bad(what, v)),
        }
    };
    let (c0, c1) = range(ctr, "containerPort")?;
    let (h0, h1) = if host.is_empty() { (0, 0) } else { range(host, "hostPort")? };
    if host.is_empty() || h0 == 0 {
        return Ok((c0..=c1)
            .map(|p| PortSpec { container_port: format!("{p}/{proto}"), host_ip: ip.into(), host_port: 0 })
            .collect());
    }
    if h1 - h0 != c1 - c0 {
        if h0 == h1 || c0 == c1 {
            // docker: a host range for one container port picks one free port of it.
            return Err(bad("ranges", &format!("{host}:{ctr}: mini needs ranges of the same length")));
        }
        return Err(bad("ranges", &format!("{host}:{ctr}")));
    }
    Ok((0..=(c1 - c0))
        .map(|i| PortSpec { container_port: format!("{}/{proto}", c0 + i), host_ip: ip.into(), host_port: h0 + i })
        .collect())
}

/// Parse `--expose PORT[/PROTO]` or a range: `80/tcp` items.
pub fn parse_expose(s: &str) -> Result<Vec<String>> {
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let (a, b) = p.split_once('-').unwrap_or((p, p));
    match (a.parse::<u16>(), b.parse::<u16>()) {
        (Ok(a), Ok(b)) if a <= b && a > 0 && matches!(proto, "tcp" | "udp") => {
            Ok((a..=b).map(|x| format!("{x}/{proto}")).collect())
        }
        _ => Err(Error::Container { code: 125, message: format!("invalid range format for --expose: {s}") }),
    }
}

/// The ports a container asks to publish: its `-p`s, and with `-P` every exposed
/// port not among them, to a free host port.
pub fn wanted_ports(c: &Container) -> Vec<PortSpec> {
    let mut v = c.config.publish.clone();
    if c.config.publish_all {
        for p in &c.config.exposed_ports {
            if !v.iter().any(|s| &s.container_port == p) {
                v.push(PortSpec { container_port: p.clone(), host_ip: String::new(), host_port: 0 });
            }
        }
    }
    v
}

/// The ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`), where docker's
/// port allocator takes random host ports from.
fn port_range(k: &Kernel) -> (u16, u16) {
    let text = k
        .why("random host ports come from the ephemeral range, as docker's allocator takes them")
        .read_file(Path::new("/proc/sys/net/ipv4/ip_local_port_range"))
        .unwrap_or_default();
    let v: Vec<u16> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    match v.as_slice() {
        [a, b] if a <= b => (*a, *b),
        _ => (49153, 65535),
    }
}

fn split_port(p: &str) -> (u16, Proto) {
    let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    (n.parse().unwrap_or(0), if proto == "udp" { Proto::Udp } else { Proto::Tcp })
}

// ---- a container's run -------------------------------------------------------------

/// The record's mark of an attachment to the bridge `bridge` as `ifname` (see
/// [`super::resources`]): what [`release`] detaches, even when the run was killed
/// before the endpoint was written.
pub fn lease_mark(bridge: &str, ifname: &str) -> String {
    format!("lease:{bridge}:{ifname}")
}

/// Attach the container's namespace at `netns` to each of its networks, then publish
/// its ports. Each object is marked in the record before it is made.
pub fn attach_all(
    k: &Kernel,
    nets: &Networks,
    c: &mut Container,
    netns: &Path,
    save: &dyn Fn(&Container) -> Result<()>,
) -> Result<()> {
    let mut wanted = c.config.endpoints.clone();
    if wanted.is_empty() && c.config.network == "bridge" {
        // A record from before networks were listed: the default bridge, as it was.
        wanted.push(super::state::EndpointConfig { network: "bridge".into(), ..Default::default() });
    }
    let mut first = None;
    for (i, want) in wanted.iter().enumerate() {
        let rec = nets.get(&want.network)?;
        let ifname = format!("eth{i}");
        let net = attach_one(k, nets, c, &rec, want.ip.as_deref(), &want.aliases, &ifname, netns, save)?;
        first.get_or_insert((rec, net));
    }
    match first {
        Some((rec, net)) => publish_ports(k, c, &rec, &net, save),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn attach_one(
    k: &Kernel,
    nets: &Networks,
    c: &mut Container,
    rec: &Record,
    ip: Option<&str>,
    aliases: &[String],
    ifname: &str,
    netns: &Path,
    save: &dyn Fn(&Container) -> Result<()>,
) -> Result<Network> {
    let net = nets.lab_network(rec)?;
    let user = rec.name != "bridge";
    let mut a = AttachSpec::new(&c.id);
    a.ifname = ifname.into();
    a.hairpin = true;
    a.hosts = user;
    a.hostname = Some(if user { c.name.clone() } else { c.config.hostname.clone() });
    if user {
        a.aliases = aliases.to_vec();
        a.aliases.push(c.short_id().to_string());
    }
    if let Some(ip) = ip {
        let ip: Ipv4Addr = ip.parse().map_err(|_| Error::Usage(format!("invalid IPv4 address: {ip}")))?;
        let sub: Subnet = net.subnet;
        if !sub.is_host(ip) || ip == net.gateway {
            return Err(daemon(
                format!("Invalid address {ip}: It does not belong to any of this network's subnets"),
                "give an address of the network's subnet",
            ));
        }
        let lab = nets.lab_store_of(rec)?.read()?;
        if lab.iter().any(|n| n.name() == net.name && n.leases.iter().any(|l| l.ip == ip)) {
            return Err(daemon("Address already in use", "give another --ip, or none"));
        }
        a.ip = Some(ip);
    }
    if !c.config.mac_address.is_empty() && ifname == "eth0" {
        a.mac = Some(parse_mac(&c.config.mac_address)?);
    }
    c.mark(&lease_mark(&net.bridge, ifname));
    save(c)?;
    let lease = {
        let _s = k.scope(netns::TOOL);
        netns::attach(k, &net, netns, &a).map_err(|e| match e {
            Error::Failed { what: message, .. } if message.contains("is already used on") => daemon(
                format!("endpoint with name {} already exists in network {}", c.name, rec.name),
                "the name is taken on that network",
            ),
            e => e,
        })?
    };
    c.net.endpoints.push(Endpoint {
        network: rec.name.clone(),
        network_id: rec.id.clone(),
        ip: lease.ip.to_string(),
        prefix: lease.prefix,
        gateway: lease.gateway.to_string(),
        mac: lease.mac.map(super::resources::mac_text).unwrap_or_default(),
        bridge: net.bridge.clone(),
        veth: lease.host_veth.clone(),
        ifname: ifname.into(),
        aliases: a.aliases.clone(),
    });
    save(c)?;
    Ok(net)
}

/// `--mac-address`: six hex bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    netns::mac_bytes(s).ok_or_else(|| Error::Container {
        code: 125,
        message: format!("invalid argument \"{s}\" for \"--mac-address\" flag: invalid MAC address"),
    })
}

/// Publish the container's ports on `net`, its first network (`rec`).
fn publish_ports(
    k: &Kernel,
    c: &mut Container,
    rec: &Record,
    net: &Network,
    save: &dyn Fn(&Container) -> Result<()>,
) -> Result<()> {
    let wanted = wanted_ports(c);
    let Some(first) = c.net.endpoints.first().cloned().filter(|_| !wanted.is_empty()) else { return Ok(()) };
    if rec.is_overlay() {
        return Err(daemon(
            format!("mini publishes ports on bridge networks only, and {} is an overlay network", rec.name),
            "connect the container to a bridge network first, or publish nothing",
        ));
    }
    let to: Ipv4Addr = first.ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let range = port_range(k);
    for p in wanted {
        let (port, proto) = split_port(&p.container_port);
        let host_ip = host_addr(&p.host_ip);
        let shown = shown_addr(host_ip);
        let taken = netns::published(&net.store)?;
        let host_port = if p.host_port != 0 {
            if let Some(_t) = taken.iter().find(|t| t.clashes(host_ip, p.host_port, proto)) {
                return Err(daemon(
                    format!(
                        "driver failed programming external connectivity on endpoint {} ({}): Bind for {}:{} failed: port is already allocated",
                        c.name,
                        endpoint_id(c, &first),
                        shown,
                        p.host_port
                    ),
                    "publish another host port, or stop the container that has it",
                ));
            }
            p.host_port
        } else {
            (range.0..=range.1)
                .find(|hp| !taken.iter().any(|t| t.clashes(host_ip, *hp, proto)))
                .ok_or_else(|| daemon("all ports are allocated", "free some published ports"))?
        };
        let mut host_port = host_port;
        loop {
            c.mark("ports");
            c.net.ports.push(PortBinding {
                container_port: p.container_port.clone(),
                host_ip: shown.clone(),
                host_port,
                bridge: net.bridge.clone(),
            });
            save(c)?;
            let _s = k.scope(netns::TOOL);
            let spec = PublishSpec { host_ip, host_port, proto, to: std::net::SocketAddrV4::new(to, port) };
            let Err(e) = netns::publish(k, net, &spec) else { break };
            c.net.ports.pop();
            save(c)?;
            let listened = matches!(&e, Error::Failed { what, .. } if what.contains("listens on it"));
            // A random port a host process listens on: the next one of the range.
            let next = (host_port.saturating_add(1)..=range.1)
                .find(|hp| !taken.iter().any(|t| t.clashes(host_ip, *hp, proto)));
            if let (true, 0, Some(next)) = (listened, p.host_port, next) {
                host_port = next;
                continue;
            }
            if !listened {
                return Err(e);
            }
            return Err(daemon(
                format!(
                    "driver failed programming external connectivity on endpoint {} ({}): Error starting userland proxy: listen {proto}4 {shown}:{host_port}: bind: address already in use",
                    c.name,
                    endpoint_id(c, &first),
                ),
                "a process of the host listens on that port: publish another",
            ));
        }
    }
    Ok(())
}

/// A published host address as netns takes it: `None` for every address (`0.0.0.0`).
fn host_addr(ip: &str) -> Option<Ipv4Addr> {
    ip.parse().ok().filter(|ip: &Ipv4Addr| !ip.is_unspecified())
}

/// A published host address as docker shows it.
fn shown_addr(ip: Option<Ipv4Addr>) -> String {
    ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into())
}

/// Take a published port's rules off `net`.
fn unpublish(k: &Kernel, net: &Network, p: &PortBinding) -> Result<()> {
    let (_, proto) = split_port(&p.container_port);
    netns::unpublish(k, net, host_addr(&p.host_ip), p.host_port, proto).map(|_| ())
}

/// The state roots of networks: this host's, and with a cluster store (`s`) the
/// cluster's, which the hosts share.
fn lab_stores(s: &Settings) -> Vec<netns::Store> {
    let mut v = vec![netns::Store::from_env()];
    if !s.cluster_store.is_empty() {
        v.push(cluster_lab(Path::new(&s.cluster_store)));
    }
    v
}

/// The cluster store's state root (overlay networks' bridges and leases).
fn cluster_lab(cluster: &Path) -> netns::Store {
    netns::Store::new(cluster.join("run"))
}

/// Undo [`attach_all`]: unpublish the ports, detach every network (what is already
/// gone is skipped). Never stops halfway; returns the errors it met, as notes.
pub fn release(k: &Kernel, c: &mut Container, s: &Settings) -> Vec<String> {
    let mut errors = vec![];
    let labs = lab_stores(s);
    // The network of a bridge, in whichever state root has it.
    let load = |bridge: &str| {
        labs.iter()
            .find_map(|l| Network::load(l, bridge).ok())
            .ok_or_else(|| Error::failed(format!("no contlab network named {bridge:?}"), "it was removed already"))
    };
    let gone = |e: &Error| {
        let t = e.to_string();
        t.contains("is not published") || t.contains("no contlab network") || t.contains("is not attached")
    };
    let _s = k.scope(netns::TOOL);
    if c.has("ports") {
        let mut ok = true;
        let first = c.net.endpoints.first().map(|e| e.bridge.clone()).unwrap_or_default();
        for p in c.net.ports.clone() {
            // (a record from before ports named their bridge: the first network's)
            let bridge = if p.bridge.is_empty() { first.clone() } else { p.bridge.clone() };
            match load(&bridge).and_then(|n| unpublish(k, &n, &p)) {
                Ok(_) => {}
                Err(e) if gone(&e) => {}
                Err(e) => {
                    ok = false;
                    errors.push(format!("published port {}: {e}", p.host_port));
                }
            }
        }
        if ok {
            c.net.ports.clear();
            c.unmark("ports");
        }
    }
    // Every attachment the record marks, the legacy `lease` (the default bridge, eth0) too.
    let marks: Vec<String> = c.made.iter().filter(|m| m.starts_with("lease")).cloned().collect();
    for m in marks {
        let (bridge, ifname) = match m.strip_prefix("lease:").and_then(|r| r.rsplit_once(':')) {
            Some((bridge, ifname)) => (bridge.to_string(), ifname.to_string()),
            None => (s.bridge.clone(), "eth0".into()),
        };
        match load(&bridge).and_then(|n| netns::detach(k, &n, &c.id, &ifname)) {
            Ok(_) => c.unmark(&m),
            Err(e) if gone(&e) => c.unmark(&m),
            Err(e) => errors.push(format!("network address: {e}")),
        }
    }
    c.net.endpoints.clear();
    errors
}

/// `network connect`: add the network to the container's, and attach it now if it
/// runs (its resolver sees the new network at once).
pub fn connect(
    k: &Kernel,
    nets: &Networks,
    store: &Containers,
    c: &Container,
    rec: &Record,
    ip: Option<String>,
    aliases: Vec<String>,
) -> Result<()> {
    let _l = store.lock(&c.id)?;
    let mut c = store.load(&c.id)?;
    if matches!(c.config.network.as_str(), "host" | "none") || c.config.network.starts_with("container:") {
        return Err(daemon(
            "container cannot be disconnected from host network or connected to host network",
            "a container of --network host, none or container: has no networks of its own",
        ));
    }
    if rec.driver != "bridge" && rec.driver != "overlay" {
        return Err(daemon(
            format!("container cannot be connected to network {}", rec.name),
            "connect it to a bridge network",
        ));
    }
    if c.config.endpoints.iter().any(|e| e.network == rec.name) {
        return Err(daemon(
            format!("endpoint with name {} already exists in network {}", c.name, rec.name),
            "it is connected already",
        ));
    }
    if ip.is_some() && !rec.user_subnet {
        return Err(daemon(
            "user specified IP address is supported only when connecting to networks with user configured subnets",
            "create the network with --subnet",
        ));
    }
    let want = super::state::EndpointConfig { network: rec.name.clone(), ip: ip.clone(), aliases: aliases.clone() };
    if c.state.status.is_up() && !c.net.netns.is_empty() {
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !c.net.endpoints.iter().any(|e| &e.ifname == n))
            .unwrap_or_default();
        let path = PathBuf::from(&c.net.netns);
        attach_one(k, nets, &mut c, rec, ip.as_deref(), &aliases, &ifname, &path, &|c| store.save(c))?;
    }
    let was_user = on_user_network(&c.config);
    c.config.endpoints.push(want);
    store.save(&c)?;
    if !was_user && on_user_network(&c.config) {
        // Its resolver already listens (see super::resources): now /etc/resolv.conf
        // names it, rewritten in place, so the bind mount inside sees the change.
        let text = super::resources::resolv_conf(&super::resources::host_resolv(k), &c.config);
        k.why("the container is on a user network now: its names come from 127.0.0.11")
            .rewrite_file(&store.paths.dir(&c.id).join("resolv.conf"), &text)?;
    }
    Ok(())
}

/// `network disconnect`: detach it now if it runs, and forget it.
pub fn disconnect(k: &Kernel, nets: &Networks, store: &Containers, c: &Container, rec: &Record) -> Result<()> {
    let _l = store.lock(&c.id)?;
    let mut c = store.load(&c.id)?;
    if !c.config.endpoints.iter().any(|e| e.network == rec.name) {
        return Err(daemon(
            format!("container {} is not connected to network {}", c.id, rec.name),
            "see `mini inspect` for its networks",
        ));
    }
    if let Some(e) = c.net.endpoint(&rec.name).cloned() {
        let _s = k.scope(netns::TOOL);
        let net = Network::load(&nets.lab_store_of(rec)?, &e.bridge)?;
        // Its ports published through this network go with it.
        for p in c.net.ports.clone().iter().filter(|p| p.bridge == e.bridge) {
            unpublish(k, &net, p)?;
            c.net.ports.retain(|q| q != p);
            store.save(&c)?;
        }
        netns::detach(k, &net, &c.id, &e.ifname)?;
        c.unmark(&lease_mark(&e.bridge, &e.ifname));
        c.net.endpoints.retain(|x| x.network != rec.name);
    }
    c.config.endpoints.retain(|x| x.network != rec.name);
    store.save(&c)
}

/// The addresses of the containers that answer to `name` on the networks `key` (a
/// container ID) is attached to: what its resolver answers. Read without the lock: a
/// snapshot, taken again at each query, so it follows containers joining and leaving.
pub fn resolve(lab: &netns::Store, key: &str, name: &str) -> Vec<Ipv4Addr> {
    let name = name.trim_end_matches('.');
    let Ok(nets) = lab.read() else { return vec![] };
    let mut out = vec![];
    for n in nets.iter().filter(|n| n.leases.iter().any(|l| l.netns == key && l.hosts)) {
        for l in n.leases.iter().filter(|l| l.hosts && l.answers_to(name)) {
            if !out.contains(&l.ip) {
                out.push(l.ip);
            }
        }
    }
    out
}

/// Whether a container of `cfg` is on a user-defined network (its resolv.conf names the
/// embedded resolver).
pub fn on_user_network(cfg: &super::state::Config) -> bool {
    cfg.endpoints.iter().any(|e| e.network != "bridge")
}

/// `port`'s lines for `c`: `80/tcp -> 0.0.0.0:32768`.
pub fn port_lines(c: &Container, only: Option<&str>) -> Vec<String> {
    c.net
        .ports
        .iter()
        .filter(|p| only.is_none_or(|o| p.container_port == o || p.container_port == format!("{o}/tcp")))
        .map(|p| match only {
            // docker: `port C 80` prints the host's side only.
            Some(_) => format!("{}:{}", p.host_ip, p.host_port),
            None => format!("{} -> {}:{}", p.container_port, p.host_ip, p.host_port),
        })
        .collect()
}

/// The PORTS column of `ps`: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn ports_column(c: &Container) -> String {
    let mut v: Vec<String> =
        c.net.ports.iter().map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.container_port)).collect();
    for e in &c.config.exposed_ports {
        if !c.net.ports.iter().any(|p| &p.container_port == e) {
            v.push(e.clone());
        }
    }
    v.join(", ")
}
