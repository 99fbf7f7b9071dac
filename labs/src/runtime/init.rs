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
//!    container's directory, and the `--device`s.
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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kernel::{CloneFlags, Errno, Kernel, MntFlags, MsFlags, Signal, WinSize};

/// docker's default capabilities (CapEff `00000000a80425fb`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// docker's masked paths: unreadable inside (what they show would leak the host).
pub const MASKED: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// docker's read-only paths.
pub const READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The device nodes of docker's default /dev: name, major, minor.
pub const DEFAULT_DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

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
}

/// Everything the first process needs to become the container: mini's counterpart of
/// an OCI runtime bundle's `config.json`, written to `ROOT/containers/ID/spec.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The overlay's merged directory: the new root.
    pub rootfs: PathBuf,
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
    /// The network.
    pub net: Option<Net>,
    /// The `cgroup.procs` files to join (one per v1 hierarchy; one on v2).
    pub cgroup_procs: Vec<PathBuf>,
    /// Whether to mount a cgroup2 filesystem at /sys/fs/cgroup (pure v2 hosts).
    pub cgroup2: bool,
    /// Files of the container's directory bound onto the root's (`/etc/hosts`).
    pub binds: Vec<(PathBuf, String)>,
    /// Extra device nodes (`--device`).
    pub devices: Vec<Device>,
    /// Resource limits: name, soft, hard.
    pub rlimits: Vec<(String, u64, u64)>,
    /// A terminal (`-t`), of this size.
    pub tty: Option<WinSize>,
    /// A tiny init as PID 1 that starts the command, forwards signals, reaps zombies.
    pub init: bool,
}

/// What the child uses for stdin/stdout/stderr: pipe ends from the monitor, or (with a
/// terminal) the socket to send the terminal's master back on.
pub enum Stdio {
    /// stdin, stdout, stderr.
    Pipes(OwnedFd, OwnedFd, OwnedFd),
    /// The child makes a terminal and sends its master on this socket.
    Console(UnixStream),
}

fn ms(k: &Kernel, src: Option<&str>, target: &Path, fstype: Option<&str>, fl: MsFlags, data: Option<&str>) -> Result<(), String> {
    k.mount(src, target, fstype, fl, data).map_err(|e| e.to_string())
}

fn mkdir_p(k: &Kernel, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir_p(k, parent)?;
    }
    match k.mkdir(dir, 0o755) {
        Err(e) if e.errno != Errno::EEXIST => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// The mounts of step 5, made at `root` (the merged dir, before pivot_root).
fn mounts(k: &Kernel, spec: &Spec, root: &Path) -> Result<(), String> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    for d in ["proc", "dev", "sys"] {
        mkdir_p(k, &at(d))?;
    }
    k.why("/proc of the container's own PID namespace");
    ms(k, Some("proc"), &at("/proc"), Some("proc"), nosuid_nodev_noexec, None)?;
    k.why("docker's /dev: a small tmpfs with only the devices a container may use");
    ms(k, Some("tmpfs"), &at("/dev"), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    for d in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        mkdir_p(k, &at(d))?;
    }
    k.why("a devpts of its own: its terminals are /dev/pts/0, 1... and not the host's");
    ms(k, Some("devpts"), &at("/dev/pts"), Some("devpts"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("newinstance,ptmxmode=0666,mode=0620,gid=5"))?;
    ms(k, Some("shm"), &at("/dev/shm"), Some("tmpfs"), nosuid_nodev_noexec, Some("mode=1777,size=65536k"))?;
    ms(k, Some("mqueue"), &at("/dev/mqueue"), Some("mqueue"), nosuid_nodev_noexec, None)?;
    for (name, major, minor) in DEFAULT_DEVICES {
        k.mknod(&at(&format!("/dev/{name}")), 'c', 0o666, major, minor).map_err(|e| e.to_string())?;
    }
    for d in &spec.devices {
        let p = at(&d.path);
        if let Some(parent) = p.parent() {
            mkdir_p(k, parent)?;
        }
        k.why("--device: the host's device, at the same numbers").mknod(&p, d.kind, d.mode, d.major, d.minor).map_err(|e| e.to_string())?;
    }
    for (link, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore")] {
        k.symlink(target, &at(&format!("/dev/{link}"))).map_err(|e| e.to_string())?;
    }
    k.why("the kernel's view of devices and drivers, read-only");
    ms(k, Some("sysfs"), &at("/sys"), Some("sysfs"), nosuid_nodev_noexec | MsFlags::MS_RDONLY, None)?;
    if spec.cgroup2 {
        mkdir_p(k, &at("/sys/fs/cgroup")).ok();
        k.why("the container's own cgroup tree (its cgroup namespace makes its group the root), read-only");
        ms(k, Some("cgroup"), &at("/sys/fs/cgroup"), Some("cgroup2"), nosuid_nodev_noexec | MsFlags::MS_RDONLY, None)?;
    }
    for (src, dst) in &spec.binds {
        k.why("a file of the container's directory, so the host can rewrite it (docker does the same)");
        ms(k, Some(&src.to_string_lossy()), &at(dst), None, MsFlags::MS_BIND, None)?;
    }
    Ok(())
}

/// Step 7: docker's masked and read-only paths, after pivot_root.
fn mask(k: &Kernel) -> Result<(), String> {
    for p in MASKED {
        let path = Path::new(p);
        match k.lstat(path) {
            Ok(Some(m)) if m.is_dir() => {
                k.why("hide what this directory shows of the host: an empty read-only tmpfs on top");
                ms(k, Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, None)?;
            }
            Ok(Some(_)) => {
                k.why("hide what this file shows of the host: /dev/null on top");
                ms(k, Some("/dev/null"), path, None, MsFlags::MS_BIND, None)?;
            }
            _ => {}
        }
    }
    for p in READONLY {
        let path = Path::new(p);
        if !matches!(k.lstat(path), Ok(Some(_))) {
            continue;
        }
        k.why("make it read-only: bind it onto itself, then remount the bind read-only");
        ms(k, Some(p), path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        ms(k, Some(p), path, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC, None)?;
    }
    Ok(())
}

/// Step 8 with `-t`: open a terminal in the container's devpts, send its master to the
/// monitor, and make the slave this process's terminal and stdio.
fn console(k: &Kernel, sock: &UnixStream, size: WinSize) -> Result<(), String> {
    let pty = k.openpty(Some(size)).map_err(|e| e.to_string())?;
    k.why("hand the terminal's master to the monitor, which relays it to the user")
        .send_fds(sock, b"console", &[pty.master.as_fd()])
        .map_err(|e| e.to_string())?;
    drop(pty.master);
    k.setsid().map_err(|e| e.to_string())?;
    k.set_controlling_tty(pty.slave.as_fd()).map_err(|e| e.to_string())?;
    for fd in 0..3 {
        k.dup2(pty.slave.as_fd(), fd).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Steps 1 to 10 but the exec (see the module documentation): the setup closure given
/// to [`Kernel::spawn`] in the monitor's child.
pub fn setup(k: &Kernel, spec: &Spec, stdio: Stdio) -> Result<(), String> {
    k.why("die with the monitor: a container never outlives the process responsible for it")
        .set_parent_death_signal(Signal::SIGKILL)
        .map_err(|e| e.to_string())?;
    if let Stdio::Pipes(i, o, e) = &stdio {
        for (fd, n) in [(i, 0), (o, 1), (e, 2)] {
            k.dup2(fd.as_fd(), n).map_err(|e| e.to_string())?;
        }
    }
    {
        let _s = k.scope("netns-bridge");
        match &spec.net {
            Some(Net::Join(path)) => {
                let fd = k.open_read(path).map_err(|e| e.to_string())?;
                k.why("the network namespace netns-bridge wired to the bridge: eth0, its address, its route")
                    .setns(&fd, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| e.to_string())?;
            }
            Some(Net::New) => {
                k.why("--network none: a network namespace with only lo").unshare(CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            }
            Some(Net::Host) | None => {}
        }
    }
    {
        let _s = k.scope("cg-limit");
        for f in &spec.cgroup_procs {
            k.why("join the container's cgroup before anything runs (0 = the writing process)")
                .write_file(f, "0")
                .map_err(|e| format!("joining the cgroup: {e}"))?;
        }
    }
    let _s = k.scope("ns-exec");
    let flags = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWCGROUP;
    k.why("its own mounts, hostname, IPC objects, and a cgroup root at its own group").unshare(flags).map_err(|e| e.to_string())?;
    k.why("mounts made from here on stay in the container")
        .mount(None, Path::new("/"), None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
        .map_err(|e| e.to_string())?;
    let root = spec.rootfs.as_path();
    mounts(k, spec, root)?;
    k.chdir(root).map_err(|e| e.to_string())?;
    k.why("make the overlay the root mount; the old root is stacked on top of it")
        .pivot_root(Path::new("."), Path::new("."))
        .map_err(|e| e.to_string())?;
    k.why("detach the old root: nothing of the host's tree stays reachable")
        .umount2(Path::new("."), MntFlags::MNT_DETACH)
        .map_err(|e| e.to_string())?;
    k.chdir(Path::new("/")).map_err(|e| e.to_string())?;
    mask(k)?;
    if !spec.hostname.is_empty() {
        k.why("the container's hostname, in its own UTS namespace").sethostname(&spec.hostname).map_err(|e| e.to_string())?;
    }
    if let (Stdio::Console(sock), Some(size)) = (&stdio, spec.tty) {
        console(k, sock, size)?;
    }
    for (name, soft, hard) in &spec.rlimits {
        k.why("--ulimit").set_rlimit(name, *soft, *hard).map_err(|e| e.to_string())?;
    }
    let keep: Vec<crate::kernel::Cap> = spec.caps.iter().filter_map(|c| c.parse().ok()).collect();
    k.why("root in a container is not all of root: only docker's 14 capabilities stay possible")
        .drop_bounding(&keep)
        .map_err(|e| e.to_string())?;
    k.flush_counts("dropped from the bounding set");
    if spec.uid != 0 || spec.gid != 0 || !spec.groups.is_empty() {
        k.keep_caps(true).map_err(|e| e.to_string())?;
        k.setgroups(&spec.groups).map_err(|e| e.to_string())?;
        k.setgid(spec.gid).map_err(|e| e.to_string())?;
        k.setuid(spec.uid).map_err(|e| e.to_string())?;
    }
    k.set_caps(&keep).map_err(|e| e.to_string())?;
    k.chdir(Path::new(if spec.cwd.is_empty() { "/" } else { &spec.cwd })).map_err(|e| e.to_string())?;
    // The environment execve(2) passes, and the PATH the command is searched in: the
    // container's, not mini's.
    for (key, _) in std::env::vars_os() {
        // SAFETY: this process is single-threaded (a child of fork made to exec).
        unsafe { std::env::remove_var(key) };
    }
    for kv in &spec.env {
        if let Some((key, v)) = kv.split_once('=') {
            // SAFETY: as above.
            unsafe { std::env::set_var(key, v) };
        }
    }
    let _ = std::os::fd::AsRawFd::as_raw_fd(&std::io::stdin());
    Ok(())
}

/// The tiny init of `--init`: PID 1 starts the command, forwards the signals it gets,
/// and reaps every child that ends; it exits with the command's status.
pub fn tiny_init(k: &Kernel, argv: &[String]) -> i32 {
    k.note("--init: PID 1 is a tiny init that starts the command, forwards signals and reaps zombies");
    if k.block_forwarded().is_err() {
        return 125;
    }
    let child = match k.spawn(argv, |_| Ok(())) {
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
