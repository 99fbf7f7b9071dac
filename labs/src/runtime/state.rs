//! Where mini keeps its containers: one directory each under the store root, a JSON
//! record written atomically, a lock per container and one for names.
//!
//! ```text
//! ROOT/                        /var/lib/contlab, $CONTLAB_ROOT or --root (img-pull's store too)
//!   containers/
//!     names.lock               flock(2)ed while a name is taken, changed or freed
//!     ID/
//!       config.json            the container: what it is (image, command, limits) and its state
//!       lock                   flock(2)ed while the container's state changes
//!       hostname hosts resolv.conf   bind-mounted onto the container's /etc/...
//!       ID-json.log            its output, docker's json-file format
//!       trace.jsonl            every request its monitor and processes made of the kernel
//!       attach.sock            the monitor's socket (attach, exec, stop)
//!   overlay/
//!     ID-init/diff             the init layer: empty mount points (etc/hostname, dev/pts...)
//!     ID/diff ID/work ID/merged   the container's own layer, overlayfs's work dir, its root
//! ```
//!
//! Any number of `mini` processes may run at once: a writer takes the container's lock,
//! reads the record, changes it and writes it back (`write` a temp file, then
//! `rename(2)` over the old one), so a reader sees the old record or the new one, never
//! half. There is no `fsync(2)` before the rename: it would make every `mini run` wait
//! for the disk a dozen times, and what it guards against (a power cut leaving a record
//! empty) costs little here: ext4 flushes a file renamed over another one anyway
//! (`auto_da_alloc`), and a record lost that way only forgets a container that the
//! power cut stopped. The image store, whose blobs are worth keeping, does sync them. A record says `running` only while its monitor lives: the monitor's PID *and*
//! its start time (field 22 of /proc/PID/stat) are recorded, so a PID reused by another
//! process after a crash is not mistaken for the monitor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel};
use crate::lock::{lock, FileLock};

/// A container's lifecycle state, as `docker inspect`'s `State.Status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (`docker create`).
    #[default]
    Created,
    /// Its first process runs.
    Running,
    /// Frozen by the cgroup freezer (`docker pause`).
    Paused,
    /// Being restarted.
    Restarting,
    /// Being removed.
    Removing,
    /// Its first process ended.
    Exited,
    /// Its monitor died without recording the end: `mini rm -f` cleans up.
    Dead,
}

impl Status {
    /// The name docker uses (`running`, `exited`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether the container's processes exist (running or paused).
    pub fn is_up(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// What the container's processes are doing, and how they ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunState {
    /// The lifecycle state.
    pub status: Status,
    /// The container's first process, as the host sees it (0 when not running).
    pub pid: i32,
    /// The monitor's PID and start time (clock ticks since boot): who is responsible.
    pub monitor_pid: i32,
    /// `/proc/PID/stat` field 22 of the monitor.
    pub monitor_start: u64,
    /// The first process's exit status (128+N for signal N).
    pub exit_code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// Why the container could not start or its monitor died.
    pub error: String,
    /// RFC 3339 times.
    pub started_at: String,
    /// RFC 3339 times.
    pub finished_at: String,
}

/// A container's networks as its run made them (see [`super::network`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetState {
    /// The network namespace's file (`/run/netns/mini-ID12`).
    pub netns: String,
    /// One per network it is attached to, the first holding the default route.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Its published ports, as they were given out.
    #[serde(default)]
    pub ports: Vec<PortBinding>,
}

impl NetState {
    /// The endpoint on network `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.network == name)
    }
}

/// A container's place on one network: docker's `NetworkSettings.Networks.NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The network's name, and its ID.
    pub network: String,
    /// The network's ID.
    pub network_id: String,
    /// Its address, prefix length, gateway and MAC address on it.
    pub ip: String,
    /// Prefix length.
    pub prefix: u8,
    /// The gateway (the bridge's address).
    pub gateway: String,
    /// The MAC address of its interface.
    pub mac: String,
    /// The network's bridge.
    pub bridge: String,
    /// The host end of the veth pair.
    pub veth: String,
    /// The interface inside (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Its names on the network besides its own (`--network-alias`, and its short ID).
    pub aliases: Vec<String>,
}

/// A published port: docker's `NetworkSettings.Ports["80/tcp"]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortBinding {
    /// The container's port and protocol: `80/tcp`.
    pub container_port: String,
    /// The host address it is published on (`0.0.0.0`: every one).
    pub host_ip: String,
    /// The host port.
    pub host_port: u16,
    /// The bridge whose rules publish it (where it is unpublished again).
    #[serde(default)]
    pub bridge: String,
}

/// A network a container is to be attached to: the `--network` one, then those of
/// `network connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The network's name.
    pub network: String,
    /// `--ip`: the address asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `--network-alias` / `--alias`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// A `-p` request: docker's `HostConfig.PortBindings` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortSpec {
    /// The container's port and protocol: `80/tcp`.
    pub container_port: String,
    /// The host address (empty: every one).
    pub host_ip: String,
    /// The host port (0: the first free one of the ephemeral range).
    pub host_port: u16,
}

/// What a container was made with: docker's `Config` and `HostConfig`, the parts mini
/// honours.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// The image as the user named it (`alpine`, `alpine:3.17`).
    pub image: String,
    /// The image ID (`sha256:...`), the config's digest.
    pub image_id: String,
    /// The program and its arguments, after docker's Entrypoint/Cmd rules.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `Config.Entrypoint` and `Config.Cmd` as they were decided (image's, or flags').
    pub entrypoint: Vec<String>,
    /// See `entrypoint`.
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, image's first, then `-e`/`--env-file`.
    pub env: Vec<String>,
    /// `uid[:gid]` or a name, as given; empty for root.
    pub user: String,
    /// The working directory inside.
    pub working_dir: String,
    /// The hostname inside (the short ID unless `--hostname`).
    pub hostname: String,
    /// Labels: the image's, then `--label`.
    pub labels: BTreeMap<String, String>,
    /// The signal `stop` sends first (`SIGTERM` unless the image or `--stop-signal` says).
    pub stop_signal: String,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: Option<u32>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// The ports the image exposes and `--expose` adds (`80/tcp`), for `-P`.
    pub exposed_ports: Vec<String>,
    /// `--memory`, in bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`, in bytes (-1: unlimited).
    pub memory_swap: Option<i64>,
    /// `--cpus`, in billionths of a CPU (docker's NanoCpus).
    pub nano_cpus: Option<u64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--dns IP`: the container's nameservers, in place of the host's.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--device HOST[:CONTAINER[:PERMS]]`.
    pub devices: Vec<(String, String, String)>,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--init`.
    pub init: bool,
    /// `--network`: `bridge`, `none`, `host`, `container:NAME`, or a network's name
    /// (docker's `HostConfig.NetworkMode`).
    pub network: String,
    /// The networks to attach at start, in order (`--network`'s, then `network
    /// connect`'s); empty for `none`, `host` and `container:`.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// `-p`.
    #[serde(default)]
    pub publish: Vec<PortSpec>,
    /// `-P`: every exposed port to a free host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--dns-search`.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP` (IP may be `host-gateway`).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    #[serde(default)]
    pub links: Vec<String>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac_address: String,
    /// `-v` as typed (docker's HostConfig.Binds).
    #[serde(default)]
    pub binds: Vec<String>,
    /// `--read-only`.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// `--cap-add`, as typed.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// `--cap-drop`, as typed.
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt`, as typed.
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// The text of `--security-opt seccomp=PATH`'s profile, read at create.
    #[serde(default)]
    pub seccomp_profile: String,
    /// `--volumes-from` as typed.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// The image's VOLUMEs.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `--userns`, as typed (`host`, or empty).
    #[serde(default)]
    pub userns_mode: String,
    /// The user namespace's uid map, fixed at create (empty: none).
    #[serde(default)]
    pub uid_map: Vec<crate::ns::IdMap>,
    /// Its gid map.
    #[serde(default)]
    pub gid_map: Vec<crate::ns::IdMap>,
}

/// One container, as `config.json` holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Its name, without docker's leading `/`.
    pub name: String,
    /// When it was made (RFC 3339).
    pub created: String,
    /// What it was made with.
    pub config: Config,
    /// What its processes are doing.
    pub state: RunState,
    /// Its network, once attached.
    pub net: NetState,
    /// How many times it was restarted.
    pub restart_count: u32,
    /// The image's layers, extracted once per diff_id, bottom first.
    pub layers: Vec<String>,
    /// The kernel objects that exist for it right now, so that `rm -f` (or a monitor
    /// after a crash) removes exactly what is there: `overlay`, `cgroup`, `netns`,
    /// `veth`, `lease`.
    pub made: Vec<String>,
    /// Its volumes, bind mounts and tmpfs mounts, in the order they are mounted.
    #[serde(default)]
    pub mounts: Vec<super::volumes::MountPoint>,
    /// Its storage driver: empty for overlay2, `devicemapper`.
    #[serde(default)]
    pub driver: String,
    /// With devicemapper: its thin volume.
    #[serde(default)]
    pub device: Option<super::devmapper::Device>,
    /// With devicemapper: its volume's device-mapper name (docker's DeviceName).
    #[serde(default)]
    pub device_name: String,
}

impl Container {
    /// The first 12 digits of the ID, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Whether kernel object `what` was made and not removed yet.
    pub fn has(&self, what: &str) -> bool {
        self.made.iter().any(|m| m == what)
    }

    /// Record that `what` exists now (once).
    pub fn mark(&mut self, what: &str) {
        if !self.has(what) {
            self.made.push(what.to_string());
        }
    }

    /// Record that `what` is gone.
    pub fn unmark(&mut self, what: &str) {
        self.made.retain(|m| m != what);
    }
}

/// The paths of one store root.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The store root.
    pub root: PathBuf,
}

impl Paths {
    /// The paths under `root`.
    pub fn new(root: &Path) -> Paths {
        Paths { root: root.to_path_buf() }
    }
    /// ROOT/containers.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// ROOT/containers/ID.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers().join(id)
    }
    /// ROOT/containers/ID/config.json.
    pub fn config(&self, id: &str) -> PathBuf {
        self.dir(id).join("config.json")
    }
    /// The json-file log.
    pub fn log(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }
    /// The container's trace file.
    pub fn trace(&self, id: &str) -> PathBuf {
        self.dir(id).join("trace.jsonl")
    }
    /// The monitor's socket.
    pub fn socket(&self, id: &str) -> PathBuf {
        self.dir(id).join("attach.sock")
    }
    /// ROOT/overlay/ID (diff, work, merged below).
    pub fn layer(&self, id: &str) -> PathBuf {
        self.root.join("overlay").join(id)
    }
    /// ROOT/overlay/ID-init.
    pub fn init_layer(&self, id: &str) -> PathBuf {
        self.root.join("overlay").join(format!("{id}-init"))
    }
}

/// Parse field 22 (starttime) of `/proc/PID/stat`.
pub fn start_time_of(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let after = stat.rsplit_once(") ")?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The container store: its records and locks.
pub struct Containers<'k> {
    k: &'k Kernel,
    /// Its paths.
    pub paths: Paths,
}

impl<'k> Containers<'k> {
    /// The containers of the store at `root`, making `containers/` and `overlay/` if
    /// they are missing.
    pub fn open(k: &'k Kernel, root: &Path) -> Result<Containers<'k>> {
        let paths = Paths::new(root);
        for d in [paths.root.clone(), paths.containers(), paths.root.join("overlay")] {
            mkdir_once(k, &d, 0o711)?;
        }
        Ok(Containers { k, paths })
    }

    /// Take the names lock (held while the returned guard lives).
    pub fn lock_names(&self) -> Result<FileLock> {
        let path = self.paths.containers().join("names.lock");
        Ok(lock(
            self.k.why("one name per container: take the names lock"),
            &path,
            true,
            Some("waiting for another mini to free the names lock"),
        )?)
    }

    /// Take a container's lock.
    pub fn lock(&self, id: &str) -> Result<FileLock> {
        let path = self.paths.dir(id).join("lock");
        Ok(lock(
            self.k.why("change the container's state, one mini at a time"),
            &path,
            true,
            Some("waiting for another mini to finish with this container"),
        )?)
    }

    /// Every container's ID, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let dir = self.paths.containers();
        let names = self
            .k
            .why("every directory here is a container")
            .read_dir(&dir)
            .map_err(|e| io_err("cannot list the containers in", &dir, e))?;
        let mut v: Vec<String> =
            names.into_iter().filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit())).collect();
        v.sort();
        Ok(v)
    }

    /// Read a container's record (as it is on disk; see [`Containers::refresh`]).
    pub fn load(&self, id: &str) -> Result<Container> {
        let path = self.paths.config(id);
        let bytes = self.k.read_file(&path).map_err(|e| io_err("cannot read the container record", &path, e))?;
        self.parse(id, &path, bytes.as_bytes())
    }

    /// [`Containers::load`], counted: one of the many reads of `ps`.
    fn load_counted(&self, id: &str) -> Result<Container> {
        let path = self.paths.config(id);
        let bytes = self.k.read_counted(&path).map_err(|e| io_err("cannot read the container record", &path, e))?;
        self.parse(id, &path, &bytes)
    }

    fn parse(&self, id: &str, path: &Path, bytes: &[u8]) -> Result<Container> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::failed(
                format!("the container record {} is not valid JSON: {e}", path.display()),
                format!("remove the container with `mini rm -f {}`", &id[..12]),
            )
        })
    }

    /// Every container, refreshed (a dead monitor is noticed), newest first.
    pub fn all(&self) -> Result<Vec<Container>> {
        let mut v = Vec::new();
        for id in self.ids()? {
            // A record being written for the first time may not exist yet: skip it.
            if let Ok(mut c) = self.load_counted(&id) {
                self.refresh(&mut c);
                v.push(c);
            }
        }
        v.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
        self.k.flush_counts("read every container's record, and its monitor's /proc/PID/stat");
        Ok(v)
    }

    /// Write a container's record atomically: a new temp file, then a rename over the
    /// old one (no fsync: after a crash, the kernel's own state is what counts).
    pub fn save(&self, c: &Container) -> Result<()> {
        let path = self.paths.config(&c.id);
        let tmp = self.paths.dir(&c.id).join(format!(".config.json.{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(c)
            .map_err(|e| Error::failed(format!("cannot encode the container record: {e}"), "this is a bug in mini"))?;
        let _ = self.k.unlink(&tmp);
        self.k.why("write the new record beside the old one").write_new_file(&tmp, &bytes, 0o600)?;
        self.k.why("publish it: readers see the old record or the new one, never half").rename_over(&tmp, &path)?;
        Ok(())
    }

    /// Notice a monitor that died without recording the container's end: the record
    /// says running, but the monitor's PID is gone or belongs to another process.
    pub fn refresh(&self, c: &mut Container) {
        if !c.state.status.is_up() || c.state.monitor_pid <= 0 {
            return;
        }
        let stat = self.k.read_counted(Path::new(&format!("/proc/{}/stat", c.state.monitor_pid))).ok();
        let alive = stat.map(|b| String::from_utf8_lossy(&b).into_owned()).as_deref().and_then(start_time_of)
            == Some(c.state.monitor_start);
        if !alive {
            c.state.status = Status::Dead;
            c.state.error = format!(
                "the container's monitor (PID {}) is gone: its processes were killed with it; remove the container with `mini rm -f {}`",
                c.state.monitor_pid,
                c.short_id()
            );
        }
    }

    /// Find a container by full ID, name, or unique ID prefix, as docker does.
    pub fn find(&self, what: &str) -> Result<Container> {
        let ids = self.ids()?;
        let by_id = |id: &str| -> Result<Container> {
            let mut c = self.load(id)?;
            self.refresh(&mut c);
            Ok(c)
        };
        if ids.iter().any(|i| i == what) {
            return by_id(what);
        }
        let name = what.strip_prefix('/').unwrap_or(what);
        for id in &ids {
            if let Ok(c) = self.load(id) {
                if c.name == name {
                    return by_id(id);
                }
            }
        }
        let matching: Vec<&String> = ids.iter().filter(|i| !what.is_empty() && i.starts_with(what)).collect();
        match matching.len() {
            1 => by_id(matching[0]),
            0 => Err(no_such_container(what)),
            _ => Err(Error::Failed {
                what: format!("Error response from daemon: Multiple IDs found with provided prefix: {what}"),
                hint: Some("give more digits of the ID, or the container's name".into()),
            }),
        }
    }

    /// The container named `name`, if any (the names lock should be held).
    pub fn by_name(&self, name: &str) -> Result<Option<Container>> {
        for id in self.ids()? {
            if let Ok(c) = self.load(&id) {
                if c.name == name {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }
}

/// docker's message for an unknown container (exit 1).
pub fn no_such_container(what: &str) -> Error {
    Error::Failed { what: format!("Error response from daemon: No such container: {what}"), hint: None }
}

/// `mkdir(2)` unless it exists.
pub fn mkdir_once(k: &Kernel, dir: &Path, mode: u32) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    match k.mkdir(dir, mode) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == Errno::EEXIST => Ok(()),
        Err(e) if e.errno == Errno::EACCES || e.errno == Errno::EPERM => Err(Error::failed(
            format!("cannot make {}: {}", dir.display(), e.errno.desc()),
            "mini needs root: run it as root (sudo mini ...), or give another store with --root DIR",
        )),
        Err(e) => Err(e.into()),
    }
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::failed(
        format!("{what} {}: {e}", path.display()),
        "check the store root (--root, $CONTLAB_ROOT) and its disk",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_spaces_in_the_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67 1844";
        assert_eq!(start_time_of(stat), Some(987654));
        assert_eq!(start_time_of("garbage"), None);
    }

    #[test]
    fn status_names_are_dockers() {
        assert_eq!(serde_json::to_string(&Status::Exited).unwrap(), "\"exited\"");
        assert!(Status::Paused.is_up() && !Status::Dead.is_up());
    }
}
