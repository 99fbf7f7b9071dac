//! The container's first process, between fork(2) and execve(2): what turns a copy of
//! the monitor into "a container". Every step is a request of the ns-exec, cg-limit or
//! netns-bridge lab, and the trace shows them in this order:
//!
//! 1. `prctl(PR_SET_PDEATHSIG, SIGKILL)`: if the monitor dies, so does the container.
//! 2. the network: `setns(2)` into the container's network namespace (made and wired by
//!    netns-bridge before), or `unshare(CLONE_NEWNET)` for `--network none` (only `lo`),
//!    or nothing for `--network host`.
//! 3. the cgroup: `write("…/cgroup.procs", "0")`, before anything runs in it.
//! 4. `unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWCGROUP)`: its own mounts,
//!    hostname, IPC, and a cgroup root at its own group. (Its PID namespace was made by
//!    the monitor, whose next child is PID 1 there: this process.)
//! 5. mounts, inside the overlay root: `/proc`, a tmpfs `/dev` filled as docker fills
//!    it (null, zero, full, random, urandom, tty; pts, shm, mqueue; the fd links),
//!    `/sys` read-only, `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` bound from the
//!    container's directory, the `--device`s, then the volumes, bind mounts and tmpfs
//!    ([`super::volumes`]).
//! 6. `pivot_root(".", ".")` onto the overlay, and the old root detached.
//! 7. docker's masked paths (`/proc/kcore`, `/proc/keys`...: /dev/null or an empty
//!    read-only tmpfs on top) and read-only paths (`/proc/sys`, `/proc/sysrq-trigger`...).
//! 8. `sethostname(2)`; with `-t`, a terminal made *inside* the container's devpts (its
//!    master goes back to the monitor over a socket, as runc's console socket does).
//! 9. resource limits, then the capabilities: the bounding set dropped to docker's 14,
//!    then the user (`setgroups`, `setgid`, `setuid`) and the remaining sets.
//! 10. `chdir(2)` to the working directory, the environment, and `execve(2)`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::kernel::{CloneFlags, Errno, Kernel, MsFlags, NsKind, Signal, WinSize};

pub use crate::ns::{DOCKER_CAPS as DEFAULT_CAPS, DOCKER_MASKED as MASKED, DOCKER_READONLY as READONLY};

/// Where the container's network comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Net {
    /// Join this network namespace file (the default bridge's).
    Join(PathBuf),
    /// A new one with only `lo` (`--network none`).
    New,
    /// The host's (`--network host`).
    Host,
}

/// What the monitor needs to answer DNS at 127.0.0.11 inside the container (see
/// [`super::dns`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolver {
    /// The container's network namespace file.
    pub netns: PathBuf,
    /// Its key in the networks' leases (its ID).
    pub key: String,
    /// Where the networks' state is (netns-bridge's state root, and the cluster
    /// store's for overlay networks).
    pub state_roots: Vec<PathBuf>,
    /// The resolvers other names are forwarded to (`--dns`, else the host's).
    pub upstream: Vec<std::net::SocketAddr>,
}

/// A device node to make in the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its path inside (`/dev/fuse`).
    pub path: String,
    /// `c` or `b`.
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// The host's node, when not at the same path (`--device /dev/a:/dev/b`).
    #[serde(default)]
    pub host: Option<String>,
}

/// Everything the first process needs to become the container: mini's counterpart of
/// an OCI runtime bundle's `config.json`, written to `ROOT/containers/ID/spec.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The overlay's merged directory: the new root.
    pub rootfs: PathBuf,
    /// The embedded resolver the monitor runs for it (on a user-defined network).
    #[serde(default)]
    pub resolver: Option<Resolver>,
    /// The command (program first).
    pub argv: Vec<String>,
    /// The environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// User and groups.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The hostname.
    pub hostname: String,
    /// Capabilities to keep (`CAP_CHOWN`...).
    pub caps: Vec<String>,
    /// `--privileged`: no masked or read-only paths, /sys writable, the host's devices.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The seccomp profile (`None`: no filter).
    #[serde(default)]
    pub seccomp: Option<crate::ns::seccomp::Profile>,
    /// The network.
    pub net: Option<Net>,
    /// The `cgroup.procs` files to join (one per v1 hierarchy; one on v2).
    pub cgroup_procs: Vec<PathBuf>,
    /// Whether to mount a cgroup2 filesystem at /sys/fs/cgroup (pure v2 hosts).
    pub cgroup2: bool,
    /// Files of the container's directory bound onto the root's (`/etc/hosts`).
    pub binds: Vec<(PathBuf, String)>,
    /// Volumes, bind mounts and tmpfs, parents first (`-v`, `--mount`, `--tmpfs`).
    #[serde(default)]
    pub mounts: Vec<super::volumes::InitMount>,
    /// `--read-only`: the root mount read-only.
    #[serde(default)]
    pub readonly_root: bool,
    /// Extra device nodes (`--device`).
    pub devices: Vec<Device>,
    /// Resource limits: name, soft, hard.
    pub rlimits: Vec<(String, u64, u64)>,
    /// A terminal (`-t`), of this size.
    pub tty: Option<WinSize>,
    /// A tiny init as PID 1 that starts the command, forwards signals, reaps zombies.
    pub init: bool,
    /// The user namespace's uid map (docker's userns-remap; empty: none, root inside is
    /// root outside).
    #[serde(default)]
    pub uid_map: Vec<crate::ns::IdMap>,
    /// Its gid map.
    #[serde(default)]
    pub gid_map: Vec<crate::ns::IdMap>,
}

impl Spec {
    /// Whether the container has a user namespace of its own.
    pub fn remapped(&self) -> bool {
        !self.uid_map.is_empty()
    }
}

/// What the child uses for stdin/stdout/stderr: pipe ends from the monitor, or (with a
/// terminal) the socket to send the terminal's master back on.
pub enum Stdio {
    /// stdin, stdout, stderr.
    Pipes(OwnedFd, OwnedFd, OwnedFd),
    /// The child makes a terminal and sends its master on this socket.
    Console(UnixStream),
}

/// Step 8 with `-t`: open a terminal in the container's devpts, send its master to the
/// monitor, and make the slave this process's terminal and stdio.
fn console(k: &Kernel, sock: &UnixStream, size: WinSize) -> Result<(), String> {
    let pty = k.openpty(Some(size)).map_err(|e| e.to_string())?;
    let console = std::path::Path::new("/dev/console");
    k.why("docker's /dev/console: the container's terminal, bound on an empty file")
        .write_new_file(console, b"", 0o600)
        .map_err(|e| e.to_string())?;
    k.mount(Some(&pty.name), console, None, MsFlags::MS_BIND, None).map_err(|e| e.to_string())?;
    k.why("hand the terminal's master to the monitor, which relays it to the user")
        .send_fds(sock, b"console", &[pty.master.as_fd()])
        .map_err(|e| e.to_string())?;
    drop(pty.master);
    k.tracer().detach_from_stderr();
    k.setsid().map_err(|e| e.to_string())?;
    k.set_controlling_tty(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    for fd in 0..3 {
        k.dup2(pty.slave.as_fd(), fd).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The ns-exec lab's spec for steps 5 to 7: docker's /dev and /sys, the /etc files,
/// pivot_root, masked and read-only paths, the hostname and working directory.
pub fn ns_spec(spec: &Spec) -> crate::ns::Spec {
    use crate::ns::{DevNode, Mount, SysMount};
    crate::ns::Spec {
        kinds: vec![NsKind::Mount, NsKind::Uts, NsKind::Ipc, NsKind::Cgroup],
        hostname: (!spec.hostname.is_empty()).then(|| spec.hostname.clone()),
        rootfs: Some(spec.rootfs.clone()),
        mount_proc: true,
        mounts: {
            let mut all: Vec<Mount> = spec
                .binds
                .iter()
                .map(|(src, dst)| Mount {
                    source: Some(src.display().to_string()),
                    target: dst.into(),
                    fstype: None,
                    flags: MsFlags::MS_BIND,
                    data: None,
                })
                .chain(spec.mounts.iter().map(|m| {
                    let (mut flags, _) = super::volumes::mount_options(&m.flags);
                    if m.fstype.is_empty() {
                        // docker's binds are recursive: a bind of a directory with mounts
                        // under it shows them too.
                        flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
                    }
                    Mount {
                        source: Some(m.source.clone()),
                        target: m.target.clone().into(),
                        fstype: (!m.fstype.is_empty()).then(|| m.fstype.clone()),
                        flags,
                        data: (!m.data.is_empty()).then(|| m.data.clone()),
                    }
                }))
                .collect();
            // Parents first, the /etc files among the user's mounts by depth (as docker
            // sorts them): `-v x:/etc` comes before /etc/hosts, not over it.
            all.sort_by_key(|m| m.target.components().count());
            all
        },
        readonly_root: spec.readonly_root,
        masked: if spec.privileged { vec![] } else { MASKED.iter().map(PathBuf::from).collect() },
        readonly: if spec.privileged { vec![] } else { READONLY.iter().map(PathBuf::from).collect() },
        no_new_privs: spec.no_new_privileges,
        dev: Some(
            spec.devices
                .iter()
                .map(|d| DevNode {
                    path: d.path.clone().into(),
                    kind: d.kind,
                    major: d.major,
                    minor: d.minor,
                    mode: d.mode,
                    host: d.host.as_ref().map(PathBuf::from),
                })
                .collect(),
        ),
        sys: Some(match (spec.privileged, spec.cgroup2) {
            (true, _) => SysMount::SysfsWritable,
            (false, true) => SysMount::SysfsAndCgroup2,
            (false, false) => SysMount::Sysfs,
        }),
        cwd: Some(if spec.cwd.is_empty() { "/".into() } else { spec.cwd.clone().into() }),
        in_user_ns: spec.remapped(),
        ..Default::default()
    }
}

/// Steps 1 to 10 but the exec (see the module documentation): the setup closure given
/// to [`Kernel::spawn`] in the monitor's child.
pub fn setup(k: &Kernel, spec: &Spec, stdio: Stdio) -> Result<(), String> {
    k.why("die with the monitor: a container never outlives the process responsible for it")
        .set_parent_death_signal(Signal::SIGKILL)
        .map_err(|e| e.to_string())?;
    k.set_undumpable().map_err(|e| e.to_string())?;
    k.tracer().detach_from_stderr();
    if let Stdio::Pipes(i, o, e) = &stdio {
        for (fd, n) in [(i, 0), (o, 1), (e, 2)] {
            k.dup2(fd.as_fd(), n).map_err(|e| e.to_string())?;
        }
    }
    {
        let _s = k.scope("netns-bridge");
        match &spec.net {
            // A user namespace's process was cloned inside it by the monitor: from
            // here it could not join a namespace that the host's user namespace owns.
            Some(Net::Join(_)) if spec.remapped() => {}
            Some(Net::Join(path)) => {
                let fd = k.open_read(path).map_err(|e| e.to_string())?;
                k.why("the network namespace netns-bridge wired to the bridge: eth0, its address, its route")
                    .setns(&fd, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())?;
            }
            Some(Net::New) => {
                k.why("--network none: a network namespace with only lo")
                    .unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())?;
            }
            Some(Net::Host) | None => {}
        }
    }
    if !spec.remapped() {
        // (With a user namespace the monitor wrote this process into its cgroup.)
        let _s = k.scope("cg-limit");
        for f in &spec.cgroup_procs {
            k.why("join the container's cgroup before anything runs (0 = the writing process)")
                .write_file(f, "0")
                .map_err(|e| format!("joining the cgroup: {e}"))?;
        }
    }
    let _s = k.scope(crate::ns::TOOL);
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWCGROUP;
    k.why("its own mounts, hostname, IPC objects, and a cgroup root at its own group")
        .unshare(flags)
        .map_err(|e| e.to_string())?;
    let mut ns_spec = ns_spec(spec);
    crate::ns::setup_child(k, &ns_spec).map_err(|e| e.to_string())?;
    if let (Stdio::Console(sock), Some(size)) = (&stdio, spec.tty) {
        console(k, sock, size)?;
    }
    for (name, soft, hard) in &spec.rlimits {
        k.why("--ulimit").set_rlimit(name, *soft, *hard).map_err(|e| e.to_string())?;
    }
    // The filter last, after the terminal's mounts: from here on, only the profile's calls.
    ns_spec.seccomp = seccomp_programs(k, spec).map_err(|e| e.to_string())?;
    confine_last(k, spec, &ns_spec, "container's process")
}

/// The last steps before exec, for the first process and for `mini exec`'s (`who`):
/// the capabilities, seccomp filter and user (`ns::confine`), the parent-death signal
/// again if the user changed, and no descriptor of the host's left open.
pub fn confine_last(k: &Kernel, spec: &Spec, ns_spec: &crate::ns::Spec, who: &str) -> Result<(), String> {
    let user = crate::ns::User { uid: spec.uid, gid: spec.gid, groups: spec.groups.clone() };
    let user = (spec.uid != 0 || spec.gid != 0 || !spec.groups.is_empty()).then_some(user);
    crate::ns::confine(k, ns_spec, Some(&spec.caps), user.as_ref()).map_err(|e| e.to_string())?;
    if spec.remapped() || user.is_some() {
        // A change of uid (the user namespace's root, --user) clears the signal.
        k.why("again: changing the user reset it")
            .set_parent_death_signal(Signal::SIGKILL)
            .map_err(|e| e.to_string())?;
    }
    k.why(format!("nothing of mini's reaches the {who}: no descriptor of the host's files"))
        .cloexec_from(3)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The container's seccomp profile as BPF programs, for its capabilities.
pub fn seccomp_programs(k: &Kernel, spec: &Spec) -> crate::error::Result<Option<Vec<crate::ns::seccomp::Program>>> {
    let Some(profile) = &spec.seccomp else { return Ok(None) };
    let (programs, unknown) = crate::ns::seccomp::compile(profile, &spec.caps)?;
    let len: usize = programs.iter().map(|p| p.len()).sum();
    k.note(format!(
        "seccomp: {} program(s), {len} BPF instructions{}",
        programs.len(),
        if unknown > 0 {
            format!(" ({unknown} call names this architecture does not have: skipped)")
        } else {
            String::new()
        }
    ));
    Ok(Some(programs))
}

/// The tiny init of `--init`: PID 1 starts the command, forwards the signals it gets,
/// and reaps every child that ends; it exits with the command's status.
pub fn tiny_init(k: &Kernel, argv: &[String], env: &[String]) -> i32 {
    k.note("--init: PID 1 is a tiny init that starts the command, forwards signals and reaps zombies");
    if k.block_forwarded().is_err() {
        return 125;
    }
    let child = match k.spawn_env(argv, Some(env), |_| Ok(())) {
        Ok(s) => s.pid,
        Err(crate::kernel::ExecFailure::Exec { errno: Errno::ENOENT, .. }) => return 127,
        Err(_) => return 126,
    };
    match k.wait_forwarding(child, true) {
        Ok(st) => crate::exit::Exit::of(st).code() as i32,
        Err(_) => 125,
    }
}

/// The raw number of a descriptor (for tests and traces).
pub fn raw(fd: &impl AsRawFd) -> i32 {
    fd.as_raw_fd()
}
