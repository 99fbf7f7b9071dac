//! What a container's run needs from the kernel, made by the labs in order, and removed
//! in reverse: on `stop` (by the monitor, once the first process has ended), on a
//! failure halfway, and by `mini rm -f` after anything was killed.
//!
//! | made at | what | lab | undone by |
//! |---|---|---|---|
//! | create | `overlay/ID/{diff,work,merged}`, the init layer `overlay/ID-init/diff`, `/etc` files | mini | `rm` |
//! | create | named and anonymous volumes, `volumes/NAME/_data` | mini | `volume rm`, `rm -v` |
//! | start | the overlay mounted on `merged` (lowers: init layer, then the image's, top first) | ovl-mount | `umount2` |
//! | start | a volume's filesystem on its `_data` (local driver options), mount points in the root | mini | `umount2` when no running container uses it |
//! | start | the cgroup `contlab/mini/ID` with the limits | cg-limit | kill its processes, `rmdir` |
//! | start | `/run/netns/mini-ID12`, a veth pair into it, an address on the default bridge | netns-bridge | `RTM_DELLINK`, umount + unlink |
//!
//! Each object is written into the container's record (`made`) as soon as it exists,
//! so a `mini` or a monitor killed halfway leaves a record of exactly what to remove,
//! and removing is idempotent: what is already gone is skipped.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroups, Group, GroupName, Limits, Max};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, MntFlags};
use crate::netns;
use crate::overlay;

use super::devmapper;
use super::init::{Device, Net, Spec};
use super::state::{mkdir_once, Container, Containers};

/// mini's settings (`/etc/contlab/mini.json`, or `$CONTLAB_MINI_CONFIG`), as
/// daemon.json is docker's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Settings {
    /// The default bridge's address and prefix (daemon.json's `bip`): `10.87.0.1/16`.
    ///
    /// Not docker's 172.17.0.1/16 on purpose: a real docker0 may exist on the same
    /// machine (this project's tests run dockerd beside mini), and two bridges with
    /// one subnet break both. 10.87.0.0/16 is in no docker or podman default pool.
    pub bip: String,
    /// The default bridge's name (docker's `docker0`).
    pub bridge: String,
    /// Where cgroupfs is mounted.
    pub cgroup_root: PathBuf,
    /// Where containers' network namespaces are bound (`ip netns` lists them).
    pub netns_dir: PathBuf,
    /// The storage driver of new containers (daemon.json's `storage-driver`):
    /// `overlay2` or `devicemapper`.
    #[serde(rename = "storage-driver", alias = "storage_driver")]
    pub storage_driver: String,
    /// daemon.json's `userns-remap`: `default` (the user dockremap), `USER[:GROUP]`, or
    /// empty (no user namespace). See [`super::userns`].
    #[serde(rename = "userns-remap")]
    pub userns_remap: String,
    /// Where networks created without `--subnet` take theirs (daemon.json's
    /// `default-address-pools`); see [`super::network`].
    #[serde(rename = "default-address-pools")]
    pub default_address_pools: Vec<super::network::Pool>,
    /// docker's classic `--cluster-store`: where the hosts of overlay networks keep
    /// what they share (the networks, their addresses). Here a directory every host
    /// mounts; docker used a key-value store (consul, etcd, zookeeper).
    #[serde(rename = "cluster-store")]
    pub cluster_store: String,
    /// docker's `--cluster-advertise`: the interface that reaches the other hosts (the
    /// underlay of the overlay networks' VXLAN tunnels).
    #[serde(rename = "cluster-advertise")]
    pub cluster_advertise: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            bip: "10.87.0.1/16".into(),
            bridge: "mini0".into(),
            cgroup_root: std::env::var_os("CONTLAB_CGROUP_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/sys/fs/cgroup".into()),
            netns_dir: "/run/netns".into(),
            storage_driver: "overlay2".into(),
            userns_remap: String::new(),
            default_address_pools: super::network::default_pools(),
            cluster_store: String::new(),
            cluster_advertise: String::new(),
        }
    }
}

impl Settings {
    /// Read the settings file (missing: the defaults), once per process: the trace
    /// shows the first read, later calls reuse it.
    pub fn load(k: &Kernel) -> Result<Settings> {
        thread_local! {
            static READ: std::cell::OnceCell<Settings> = const { std::cell::OnceCell::new() };
        }
        READ.with(|r| {
            if let Some(s) = r.get() {
                return Ok(s.clone());
            }
            let s = Settings::read(k)?;
            let _ = r.set(s.clone());
            Ok(s)
        })
    }

    fn read(k: &Kernel) -> Result<Settings> {
        let path = std::env::var_os("CONTLAB_MINI_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/etc/contlab/mini.json".into());
        if !k.exists(&path) {
            return Ok(Settings::default());
        }
        match k.why("mini's settings: the default bridge's name and subnet, cgroupfs").read_file(&path) {
            Ok(b) => serde_json::from_str(&b).map_err(|e| {
                Error::failed(
                    format!("mini's settings {} are not valid: {e}", path.display()),
                    "fix the JSON, e.g. {\"bip\": \"10.87.0.1/16\"}",
                )
            }),
            Err(_) => Ok(Settings::default()),
        }
    }

    pub(super) fn bip(&self) -> Result<(Ipv4Addr, u8)> {
        netns::ipam::parse_cidr(&self.bip, Some(16))
    }
}

thread_local! {
    static CGROUPS: std::cell::RefCell<Option<(PathBuf, std::rc::Rc<Cgroups>)>> = const { std::cell::RefCell::new(None) };
}

/// The cgroup setup under `root`, detected once per process (it does not change while
/// a command runs; the monitor asks at the start and at the end of a container).
pub fn cgroups(k: &Kernel, root: &Path) -> Result<std::rc::Rc<Cgroups>> {
    if let Some(c) = CGROUPS.with(|c| c.borrow().as_ref().filter(|(r, _)| r == root).map(|(_, c)| c.clone())) {
        return Ok(c);
    }
    let c = std::rc::Rc::new(Cgroups::detect(k, root)?);
    CGROUPS.with(|slot| *slot.borrow_mut() = Some((root.to_path_buf(), c.clone())));
    Ok(c)
}

/// The cgroup of a container: `contlab/mini/ID`.
pub fn group_name(c: &Container) -> GroupName {
    format!("mini/{}", c.id).parse().unwrap_or_else(|_| GroupName::transient())
}

/// The network namespace file of a container.
pub fn netns_path(s: &Settings, c: &Container) -> PathBuf {
    s.netns_dir.join(format!("mini-{}", c.short_id()))
}

/// docker's `--memory-swap` (memory+swap): -1 is no limit; unset with `--memory`
/// given, swap as large as the memory limit (twice it in all).
pub fn memory_swap(memory: Option<u64>, memory_swap: Option<i64>) -> Option<Max> {
    match (memory, memory_swap) {
        (None, _) => None,
        (Some(_), Some(-1)) => Some(Max::Max),
        (Some(_), Some(t)) => Some(Max::Value(t as u64)),
        (Some(m), None) => Some(Max::Value(m.saturating_mul(2))),
    }
}

fn limits(c: &Container) -> Limits {
    let cfg = &c.config;
    Limits {
        memory: cfg.memory.map(Max::Value),
        memory_swap: memory_swap(cfg.memory, cfg.memory_swap),
        cpu_shares: cfg.cpu_shares,
        // docker's NanoCpus over a 100 ms period: 1.5 CPUs = 150000 us every 100000 us.
        cpus: cfg
            .nano_cpus
            .map(|n| crate::cgroup::Cpus::Quota { quota_us: (n / 10_000).max(1000), period_us: 100_000 }),
        pids: cfg.pids_limit.filter(|p| *p > 0).map(|p| Max::Value(p as u64)),
        cpuset: cfg.cpuset_cpus.clone(),
        ..Limits::default()
    }
}

/// Make the container's directories at create: its own layer (diff, work, merged), the
/// init layer with the empty mount points docker's `-init` layer holds, and the files
/// bound onto /etc (hostname, hosts, resolv.conf).
pub fn create_dirs(k: &Kernel, store: &Containers, c: &Container) -> Result<()> {
    let p = &store.paths;
    mkdir_once(k, &p.dir(&c.id), 0o710)?;
    let layer = p.layer(&c.id);
    mkdir_once(k, &layer, 0o710)?;
    for d in ["diff", "work", "merged"] {
        mkdir_once(k, &layer.join(d), 0o755)?;
    }
    let init = p.init_layer(&c.id).join("diff");
    mkdir_once(k, &p.init_layer(&c.id), 0o710)?;
    mkdir_once(k, &init, 0o755)?;
    for d in ["dev", "dev/pts", "dev/shm", "etc", "proc", "sys"] {
        mkdir_once(k, &init.join(d), 0o755)?;
    }
    for f in ["etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console"] {
        k.why("an empty mount point in the init layer, as docker's -init layer holds").write_new_file(
            &init.join(f),
            b"",
            0o644,
        )?;
    }
    let dir = p.dir(&c.id);
    k.write_new_file(&dir.join("hostname"), format!("{}\n", c.config.hostname).as_bytes(), 0o644)?;
    k.write_new_file(&dir.join("hosts"), HOSTS.as_bytes(), 0o644)?;
    k.write_new_file(&dir.join("resolv.conf"), resolv_conf(&host_resolv(k), &c.config).as_bytes(), 0o644)?;
    if !c.config.working_dir.is_empty() {
        // docker makes the working directory when the image lacks it: here, in the
        // container's own layer, so it shows in `diff` as docker's does.
        let rel = c.config.working_dir.trim_start_matches('/');
        let mut d = layer.join("diff");
        for part in Path::new(rel).components() {
            d.push(part);
            if !layer_has(c, &store.paths, &d) {
                mkdir_once(k, &d, 0o755)?;
            }
        }
    }
    Ok(())
}

fn layer_has(c: &Container, paths: &super::state::Paths, upper_path: &Path) -> bool {
    let rel = upper_path.strip_prefix(paths.layer(&c.id).join("diff")).unwrap_or(upper_path);
    c.layers.iter().any(|l| Path::new(l).join(rel).is_dir())
}

/// `/etc/hosts` as docker writes it before the container has an address.
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// `/etc/hosts` at start: docker's lines, `--add-host`s (`host-gateway` is the
/// default bridge's address), `--link`s (`IP\tALIAS ID NAME`, the linked container's
/// address on the default bridge), then the container's own address.
fn etc_hosts(store: &Containers, c: &Container, s: &Settings) -> Result<String> {
    let own: Option<Ipv4Addr> = c.net.endpoints.first().and_then(|e| e.ip.parse().ok());
    let mut text = HOSTS.to_string();
    for h in &c.config.extra_hosts {
        let (name, ip) = h.split_once(':').unwrap_or((h.as_str(), ""));
        let ip = if ip == "host-gateway" { s.bip()?.0.to_string() } else { ip.to_string() };
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    for l in &c.config.links {
        let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        let other = store.find(name)?;
        let Some(e) = other.net.endpoints.first().filter(|_| other.state.status.is_up()) else {
            return Err(Error::failed(
                format!(
                    "Error response from daemon: Cannot link to a non running container: /{} AS /{}/{alias}",
                    other.name, c.name
                ),
                "start it first",
            ));
        };
        let mut names = vec![alias.to_string(), other.short_id().to_string()];
        if alias != other.name {
            names.push(other.name.clone());
        }
        text.push_str(&format!("{}\t{}\n", e.ip, names.join(" ")));
    }
    if let Some(ip) = own {
        text.push_str(&format!("{ip}\t{}\n", c.config.hostname));
    }
    Ok(text)
}

/// The running container `container:NAME` names.
fn joined(store: &Containers, mode: &str) -> Result<Container> {
    let name = mode.trim_start_matches("container:");
    let other = store.find(name)?;
    if !other.state.status.is_up() || other.state.pid <= 0 {
        return Err(Error::failed(
            format!("Error response from daemon: cannot join network of a non running container: {}", other.id),
            "start that container first",
        ));
    }
    Ok(other)
}

/// `/etc/resolv.conf`: the host's, without the nameservers on 127.0.0.0/8 (unreachable
/// from a container's own loopback), or public ones if none is left, as docker does;
/// with `--dns`, those in place of the host's nameservers; `--dns-search` and
/// `--dns-option` in place of its search and options lines. On a user network
/// ([`super::network::on_user_network`]), the one nameserver is mini's resolver at 127.0.0.11 (which forwards
/// the rest to those servers), with docker's `options ndots:0`.
pub fn resolv_conf(host: &str, cfg: &super::state::Config) -> String {
    let embedded = super::network::on_user_network(cfg);
    let mut out = String::new();
    let mut servers = 0;
    for l in host.lines() {
        let t = l.trim_start();
        if let Some(ns) = t.strip_prefix("nameserver") {
            if embedded || !cfg.dns.is_empty() || ns.trim().starts_with("127.") || ns.trim() == "::1" {
                continue;
            }
            servers += 1;
        }
        if (t.starts_with("search") || t.starts_with("domain")) && !cfg.dns_search.is_empty()
            || t.starts_with("options") && (embedded || !cfg.dns_options.is_empty())
        {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !cfg.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", cfg.dns_search.join(" ")));
    }
    if embedded {
        out.push_str(&format!("nameserver {}\n", super::network::RESOLVER));
        servers += 1;
    } else {
        for ns in &cfg.dns {
            out.push_str(&format!("nameserver {ns}\n"));
            servers += 1;
        }
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    let mut options: Vec<String> = if embedded { vec!["ndots:0".into()] } else { vec![] };
    options.extend(cfg.dns_options.iter().cloned());
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The host's /etc/resolv.conf (empty when it has none): what a container's is made
/// from, and where its resolver forwards.
pub fn host_resolv(k: &Kernel) -> String {
    k.why("the host's resolvers, for the container's").read_file(Path::new("/etc/resolv.conf")).unwrap_or_default()
}

/// The resolvers the embedded one forwards to: `--dns`, else the host's (from the
/// host's namespace, where the monitor runs, 127.0.0.53 too), port 53.
fn upstream_servers(host: &str, dns: &[String]) -> Vec<std::net::SocketAddr> {
    let host = if dns.is_empty() { host } else { "" };
    let listed = host.lines().filter_map(|l| l.trim_start().strip_prefix("nameserver")).map(|s| s.trim().to_string());
    dns.iter()
        .cloned()
        .chain(listed)
        // The forwarding socket is IPv4 (bound to 0.0.0.0).
        .filter_map(|s| s.parse::<std::net::Ipv4Addr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip.into(), 53))
        .collect()
}

/// Record that `what` is about to be made, and save the record at once: a kill while
/// (or right after) it is made leaves it known, and removing it is idempotent. Written
/// *before* the object, never after: after would leave a window where it exists and
/// no record says so.
fn intend(store: &Containers, c: &mut Container, what: &str) -> Result<()> {
    c.mark(what);
    store.save(c)
}

/// Make what the run needs (see the module documentation) and the spec the first
/// process follows; on a failure, remove what was made.
pub fn prepare(k: &Kernel, store: &Containers, c: &mut Container, s: &Settings, caps: &[String]) -> Result<Spec> {
    match prepare_inner(k, store, c, s, caps) {
        Ok(spec) => Ok(spec),
        Err(e) => {
            release(k, store, c);
            let _ = store.save(c);
            Err(e)
        }
    }
}

fn prepare_inner(k: &Kernel, store: &Containers, c: &mut Container, s: &Settings, caps: &[String]) -> Result<Spec> {
    let p = store.paths.clone();
    let layer = p.layer(&c.id);
    let rootfs = if c.driver == devmapper::NAME {
        let dir = devmapper::rootfs(&p.root, &c.id);
        intend(store, c, devmapper::MOUNTED)?;
        k.note("the container's root: its thin snapshot (devicemapper driver), activated and mounted");
        devmapper::Driver::open(k, &p.root)?.mount(&c.id, &dir, false)?;
        dir
    } else {
        layer.join("merged")
    };
    let remap = super::userns::remap_of(c);
    if c.driver != devmapper::NAME {
        let mut lowers = vec![p.init_layer(&c.id).join("diff")];
        lowers.extend(c.layers.iter().map(PathBuf::from));
        let (mut upper, mut work) = (layer.join("diff"), layer.join("work"));
        // With a user namespace, the layers are seen through idmapped mounts of their
        // own (see super::userns).
        if let Some(r) = &remap {
            intend(store, c, "idmap")?;
            let v = super::userns::mount_view(k, &p.root, &c.id, r, &lowers, &layer)?;
            lowers = v.lowers;
            (upper, work) = (v.rw.join("diff"), v.rw.join("work"));
        }
        intend(store, c, "overlay")?;
        let _s = k.scope(overlay::TOOL);
        let spec = overlay::Spec {
            lowers,
            upper: Some(upper),
            work: Some(work),
            options: overlay::Options::default(),
            create_dirs: false,
        };
        k.note(format!(
            "the container's root: an overlay of {} image layers, the init layer and its own",
            c.layers.len()
        ));
        super::userns::as_root_inside(k, super::userns::root_of(c), || {
            overlay::mount(k, &spec, &layer.join("merged"), false)
        })?;
    }
    let mounts = super::volumes::prepare(k, &p.root, c, &rootfs, &|c| store.save(c))?;
    // The /etc files are bound after a user's mount that covers them (`-v x:/etc`),
    // so their mount points must exist in it.
    for f in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
        if c.mounts.iter().any(|m| f.strip_prefix(m.destination.as_str()).is_some_and(|r| r.starts_with('/'))) {
            super::userns::as_root_inside(k, super::userns::root_of(c), || {
                super::volumes::point_for(k, &c.mounts, &rootfs, f, true)
            })?;
        }
    }
    intend(store, c, "cgroup")?;
    let cg_setup;
    let procs = {
        let _s = k.scope(crate::cgroup::TOOL);
        cg_setup = cgroups(k, &s.cgroup_root)?;
        let mut l = limits(c);
        l.devices = Some(device_rules(k, c));
        let g = Group::create(k, &cg_setup, &group_name(c), &l)?;
        g.procs_files()
    };
    let host = host_resolv(k);
    let mut files = p.dir(&c.id);
    let mut hostname = c.config.hostname.clone();
    let mut resolver = None;
    let net = match c.config.network.as_str() {
        "none" => Net::New,
        "host" => Net::Host,
        m if m.starts_with("container:") => {
            // Its network namespace, and its hostname and /etc files, are the other's.
            let other = joined(store, m)?;
            files = p.dir(&other.id);
            hostname = other.config.hostname.clone();
            Net::Join(PathBuf::from(format!("/proc/{}/ns/net", other.state.pid)))
        }
        _ => {
            let path = netns_path(s, c);
            let nets = super::network::Networks::open(k, &p.root)?;
            {
                let _s = k.scope(netns::TOOL);
                mkdir_once(k, &s.netns_dir, 0o755)?;
                c.net.netns = path.display().to_string();
                intend(store, c, "netns")?;
                netns::create(k, &path)?;
            }
            super::network::attach_all(k, &nets, c, &path, &|c| store.save(c))?;
            // The resolver listens in every namespace of its own, the default bridge's
            // too: its /etc/resolv.conf names it only once it is on a user network
            // (at start, or by `network connect`), as docker's does.
            // (none when it has no network left: its `lo` is down, 127.0.0.11 unbound)
            resolver = (!c.net.endpoints.is_empty()).then(|| super::init::Resolver {
                netns: path.clone(),
                key: c.id.clone(),
                state_roots: nets.lab_stores().iter().map(|s| s.root().to_path_buf()).collect(),
                upstream: upstream_servers(&host, &c.config.dns),
            });
            Net::Join(path)
        }
    };
    if !c.config.network.starts_with("container:") {
        let hosts = etc_hosts(store, c, s)?;
        k.why("the container's /etc/hosts: its own address, --add-host and --link names")
            .rewrite_file(&p.dir(&c.id).join("hosts"), &hosts)?;
        let resolv = resolv_conf(&host, &c.config);
        k.why("the container's /etc/resolv.conf").rewrite_file(&p.dir(&c.id).join("resolv.conf"), &resolv)?;
    }
    let (uid, gid, groups, home) = user_of(k, c, &rootfs)?;
    let opts = super::spec::security_opts(&c.config.security_opt)?;
    let mut env = c.config.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    let dir = p.dir(&c.id);
    if let Some((uid, gid)) = super::userns::root_of(c) {
        // docker's: a remapped container's root may edit its own /etc files.
        for f in ["hostname", "hosts", "resolv.conf"] {
            k.why("userns-remap: the file belongs to the container's root").chown(&dir.join(f), uid, gid)?;
        }
    }
    let spec = Spec {
        rootfs,
        resolver,
        argv: std::iter::once(c.config.path.clone()).chain(c.config.args.iter().cloned()).collect(),
        env,
        cwd: if c.config.working_dir.is_empty() { "/".into() } else { c.config.working_dir.clone() },
        uid,
        gid,
        groups,
        hostname,
        caps: caps.to_vec(),
        privileged: c.config.privileged,
        no_new_privileges: opts.no_new_privileges,
        seccomp: seccomp_profile(c, opts.seccomp)?,
        net: Some(net),
        cgroup_procs: procs,
        cgroup2: matches!(*cg_setup, Cgroups::V2(_)),
        binds: vec![
            (files.join("hostname"), "/etc/hostname".into()),
            (files.join("hosts"), "/etc/hosts".into()),
            (files.join("resolv.conf"), "/etc/resolv.conf".into()),
        ],
        devices: devices(k, c)?,
        mounts,
        readonly_root: c.config.readonly_rootfs,
        rlimits: c.config.ulimits.clone(),
        tty: c.config.tty.then_some(crate::kernel::WinSize { rows: 24, cols: 80 }),
        init: c.config.init,
        uid_map: c.config.uid_map.clone(),
        gid_map: c.config.gid_map.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&spec).unwrap_or_default();
    let path = dir.join("spec.json");
    let _ = k.unlink(&path);
    k.why("what the first process becomes: mini's counterpart of an OCI bundle's config.json")
        .write_new_file(&path, &bytes, 0o600)?;
    Ok(spec)
}

pub(super) fn mac_text(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The user of the container, resolved in its own /etc/passwd and /etc/group.
fn user_of(k: &Kernel, c: &Container, root: &Path) -> Result<(u32, u32, Vec<u32>, String)> {
    let read = |f: &str| -> Result<String> {
        Ok(k.read_in_root(root, f)?.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default())
    };
    let u = super::spec::resolve_user(&c.config.user, &read("etc/passwd")?, &read("etc/group")?)?;
    Ok((u.uid, u.gid, u.groups, u.home))
}

/// The `--device`s, with the numbers of the host's nodes.
fn devices(k: &Kernel, c: &Container) -> Result<Vec<Device>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut v = Vec::new();
    if c.config.privileged {
        host_devices(k, Path::new("/dev"), "/dev", &mut v)?;
        k.flush_counts("the host's device nodes, for --privileged");
    }
    for (host, ctr, _perms) in &c.config.devices {
        let missing = |e: String| {
            Error::failed(
                format!("Error gathering device information while adding custom device \"{host}\": {e}"),
                "give a device node of this host, e.g. /dev/fuse",
            )
        };
        // A symlink (/dev/disk/by-id/...) names the node it points to.
        let mut node = PathBuf::from(host);
        for _ in 0..8 {
            match k.readlink(&node) {
                Ok(t) => node = node.parent().unwrap_or(Path::new("/")).join(t),
                Err(_) => break,
            }
        }
        let m = k
            .why("the device's type and numbers, for the container's node and cgroup rule")
            .lstat(&node)
            .map_err(|e| missing(e.to_string()))?
            .ok_or_else(|| missing("no such file or directory".into()))?;
        let kind = if m.file_type().is_block_device() {
            'b'
        } else if m.file_type().is_char_device() {
            'c'
        } else {
            return Err(Error::failed(
                format!("error gathering device information while adding custom device \"{host}\": not a device node"),
                "give a device node, e.g. /dev/fuse",
            ));
        };
        let rdev = m.rdev();
        v.push(Device {
            path: ctr.clone(),
            kind,
            major: (rdev >> 8) & 0xfff,
            minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
            mode: m.mode() & 0o7777,
            host: Some(node.display().to_string()),
        });
    }
    Ok(v)
}

/// The seccomp profile of `c`: docker's default, none (`--privileged`,
/// `seccomp=unconfined`), or the one given at create.
fn seccomp_profile(c: &Container, opt: super::spec::SeccompOpt) -> Result<Option<crate::ns::seccomp::Profile>> {
    if c.config.privileged {
        return Ok(None);
    }
    Ok(match opt {
        super::spec::SeccompOpt::Default => Some(crate::ns::seccomp::docker_default()),
        super::spec::SeccompOpt::Unconfined => None,
        super::spec::SeccompOpt::Profile(path) => Some(crate::ns::seccomp::parse(&c.config.seccomp_profile, &path)?),
    })
}

/// Every device node of the host's `dir` and below (docker's `--privileged`), but its
/// terminals and the nodes the container's /dev has anyway (`getdents64`, `fstatat`:
/// counted, not printed).
fn host_devices(k: &Kernel, dir: &Path, shown: &str, v: &mut Vec<Device>) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let fd = k.open_tree(dir)?;
    for name in k.list_at(&fd, shown, ".")? {
        let path = format!("{shown}/{name}");
        if ["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx"].contains(&path.as_str())
            || crate::ns::DOCKER_DEVICES.iter().any(|(n, _, _)| path == format!("/dev/{n}"))
        {
            continue;
        }
        let Some(m) = k.stat_at(&fd, &name)? else { continue };
        let ft = m.file_type();
        if ft.is_dir() && path.matches('/').count() < 3 {
            host_devices(k, &dir.join(&name), &path, v)?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let rdev = m.rdev();
            v.push(Device {
                path,
                kind: if ft.is_block_device() { 'b' } else { 'c' },
                major: (rdev >> 8) & 0xfff,
                minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
                mode: m.mode() & 0o7777,
                host: None,
            });
        }
    }
    Ok(())
}

/// docker's default device allow-list: `mknod` of any node; read, write and mknod of
/// null, zero, full, random, urandom, tty, console, ptmx, the pty slaves and tun.
pub const DOCKER_DEVICE_RULES: [&str; 12] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

/// docker's default device allow-list (the cgroup v1 devices controller), plus the
/// `--device`s.
fn device_rules(k: &Kernel, c: &Container) -> Vec<crate::cgroup::DeviceRule> {
    if c.config.privileged {
        // --privileged: every device.
        return crate::cgroup::limits::parse_device_rule("a").into_iter().collect();
    }
    let mut rules: Vec<String> = DOCKER_DEVICE_RULES.iter().map(|s| s.to_string()).collect();
    if let Ok(ds) = devices(k, c) {
        for (d, (_, _, perms)) in ds.iter().zip(&c.config.devices) {
            rules.push(format!("{} {}:{} {perms}", d.kind, d.major, d.minor));
        }
    }
    rules.iter().filter_map(|r| crate::cgroup::limits::parse_device_rule(r).ok()).collect()
}

/// Whether the kernel's OOM killer killed a process of the container's cgroup.
pub fn oom_killed(k: &Kernel, c: &Container) -> bool {
    let s = Settings::load(k).unwrap_or_default();
    let _s = k.scope(crate::cgroup::TOOL);
    let Ok(cg) = cgroups(k, &s.cgroup_root) else { return false };
    Group::open(k, &cg, &group_name(c)).map(|g| g.events(k).oom_kill.unwrap_or(0) > 0).unwrap_or(false)
}

/// Remove what the run made (see the module documentation), in reverse, skipping what
/// is already gone. Never stops halfway: a step that fails is noted, the next tried.
pub fn release(k: &Kernel, store: &Containers, c: &mut Container) {
    let s = Settings::load(k).unwrap_or_default();
    let note = |what: &str, e: Error| k.note(format!("could not remove the container's {what}: {e}"));
    for e in super::network::release(k, c, &s) {
        k.note(format!("could not remove the container's {e}"));
    }
    if c.has("netns") {
        let _s = k.scope(netns::TOOL);
        let path = netns_path(&s, c);
        match netns::remove(k, &path) {
            Ok(()) => c.unmark("netns"),
            Err(_) if !k.exists(&path) => c.unmark("netns"),
            Err(e) => note("network namespace", e),
        }
    }
    if c.has("cgroup") {
        let _s = k.scope(crate::cgroup::TOOL);
        let r = cgroups(k, &s.cgroup_root).and_then(|cg| match Group::open(k, &cg, &group_name(c)) {
            Ok(g) => g.remove(k, true),
            Err(_) => Ok(()),
        });
        match r {
            Ok(()) => c.unmark("cgroup"),
            Err(e) => note("cgroup", e),
        }
    }
    super::volumes::release(k, &store.paths.root, c, &|| store.all().unwrap_or_default(), &|c| store.save(c));
    if c.has(devmapper::MOUNTED) {
        let dir = devmapper::rootfs(&store.paths.root, &c.id);
        match devmapper::Driver::open(k, &store.paths.root).and_then(|d| d.umount(&c.id, &dir)) {
            Ok(()) => c.unmark(devmapper::MOUNTED),
            Err(e) => note("thin volume's mount", e),
        }
    }
    if c.has("overlay") {
        let _s = k.scope(overlay::TOOL);
        let merged = store.paths.layer(&c.id).join("merged");
        let r = match overlay::Mounted::existing(k, &merged) {
            Ok(m) => m.umount(k, false).or_else(|_| k.umount2(&merged, MntFlags::MNT_DETACH).map_err(Error::from)),
            Err(_) => Ok(()),
        };
        match r {
            Ok(()) => c.unmark("overlay"),
            Err(e) => note("root filesystem mount", e),
        }
    }
    if c.has("idmap") && !c.has("overlay") {
        match super::userns::umount_view(k, &store.paths.root, &c.id) {
            Ok(()) => c.unmark("idmap"),
            Err(e) => note("the store's idmapped view", e),
        }
    }
    let _ = store.save(c);
}

/// Remove a container: what its run made, then its directories and record.
pub fn remove(k: &Kernel, store: &Containers, c: &Container) -> Result<()> {
    let mut c = c.clone();
    release(k, store, &mut c);
    if !c.made.is_empty() {
        return Err(Error::failed(
            format!("could not remove the container {}: still there: {}", c.short_id(), c.made.join(", ")),
            "see the trace above for why; `mini rm -f` tries again",
        ));
    }
    let p = &store.paths;
    // A container whose volumes were never made (create failed before the pool
    // existed) has nothing in it: no pool is made just to delete nothing. What a
    // killed create left pending, the next open deletes.
    let pool_exists = k.exists(&p.root.join("devicemapper/devices.json"));
    if c.driver == devmapper::NAME && (c.device.is_some() || pool_exists) {
        match devmapper::Driver::open(k, &p.root) {
            Ok(mut d) => {
                d.remove(&c.id)?;
                d.remove(&devmapper::init_key(&c.id))?;
            }
            Err(e) if c.device.is_some() => return Err(e),
            Err(_) => {}
        }
        let dir = devmapper::rootfs(&p.root, &c.id);
        if k.exists(&dir) {
            k.rmdir(&dir)?;
        }
    }
    for dir in [p.layer(&c.id), p.init_layer(&c.id), p.dir(&c.id)] {
        remove_tree(k, &dir)?;
    }
    Ok(())
}

/// Remove a directory and all below it, each unlink and rmdir a request.
pub fn remove_tree(k: &Kernel, dir: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return Ok(()) };
    if !k.exists(dir) {
        return Ok(());
    }
    let fd = k.open_tree(parent)?;
    let shown = parent.display().to_string();
    k.remove_all_at(&fd, &shown, &name.to_string_lossy())?;
    k.flush_counts(&format!("removed {}", dir.display()));
    Ok(())
}
