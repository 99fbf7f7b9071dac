//! # Namespaces: what `ns-exec` does, and what the kernel does for it
//!
//! A namespace wraps one global resource of the kernel so that the processes inside
//! see their own instance of it. Linux has eight kinds (namespaces(7)):
//!
//! | kind | flag | what the processes inside get |
//! |---|---|---|
//! | mount | `CLONE_NEWNS` | their own mount table: mounts made inside stay inside |
//! | uts | `CLONE_NEWUTS` | their own hostname (`uname -n`) |
//! | ipc | `CLONE_NEWIPC` | their own System V IPC objects and message queues |
//! | pid | `CLONE_NEWPID` | their own process numbers; the first process is PID 1 |
//! | net | `CLONE_NEWNET` | their own interfaces (only `lo`, down), routes, ports |
//! | user | `CLONE_NEWUSER` | their own uids: root inside can be uid 1000 outside |
//! | cgroup | `CLONE_NEWCGROUP` | their own cgroup root in /proc/self/cgroup |
//! | time | `CLONE_NEWTIME` | their own offsets for the monotonic and boot clocks |
//!
//! Each process's namespaces are listed in `/proc/PID/ns/` as magic links like
//! `net:[4026531840]`: two processes share a namespace when the numbers (inodes) are
//! equal. That is how the course compares a container's process with a host
//! process, and what `ns-exec show` prints.
//!
//! ## The order of the calls
//!
//! `ns-exec --pid --mount --uts --hostname box -- sh` makes these requests:
//!
//! 1. `unshare(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID)`: ns-exec itself moves into the new
//!    mount and UTS namespaces. Not into the PID namespace: a process never changes
//!    its own PID, so `CLONE_NEWPID` only decides where its *next child* lives.
//! 2. `fork()`: that child is PID 1 of the new PID namespace. Everything below happens
//!    in it.
//! 3. `sethostname("box")`: only this UTS namespace sees it.
//! 4. `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`: the new mount namespace starts
//!    as a copy of the old one, and mount points that were *shared* would still
//!    propagate mounts back to the host. Making everything private cuts that link.
//! 5. with `--mount-proc`: `mount("proc", "/proc", "proc", ...)`. /proc shows the PID
//!    namespace of the process that mounted it; without a fresh /proc, `ps` inside
//!    still lists every process of the host.
//! 6. `execve("/bin/sh", ...)`: the command replaces the child; namespaces are kept
//!    across exec.
//!
//! The parent waits (`wait4`) and passes on the signals it receives, so Ctrl-C and
//! `kill` reach the command, as `docker run` does.
//!
//! ## A new root: why pivot_root and not chroot
//!
//! `--rootfs DIR` gives the command a different `/`. chroot(2) would only change the
//! process's idea of `/`: the old root stays mounted in its mount namespace, a
//! process with CAP_SYS_CHROOT can walk back out (chroot into a subdirectory, then
//! `..` past it), and every host mount stays reachable. pivot_root(2) changes the
//! root *mount* of the whole mount namespace and lets us unmount the old one:
//!
//! 1. `mount(DIR, DIR, NULL, MS_BIND|MS_REC)`: pivot_root needs the new root to be a
//!    mount point; a bind mount of the directory onto itself makes it one.
//! 2. `chdir(DIR)` then `pivot_root(".", ".")`: the new root goes to `/` and the old
//!    root is stacked on top of it at the same place (the trick runc uses; no
//!    `put_old` directory is needed inside the image).
//! 3. `umount2(".", MNT_DETACH)`: detach the old root, stacked on top. From now on
//!    nothing of the host's tree is reachable from inside.
//!
//! ## Users: root inside, nobody outside
//!
//! `--user` creates a user namespace. Until its `uid_map` is written, every id inside
//! shows as 65534 (nobody). `--map-root` writes `0 <your uid> 1`: you are root inside,
//! with all capabilities *over the namespaces this user namespace owns*, and still
//! yourself for the rest of the system. An unprivileged process must first write
//! `deny` to `/proc/PID/setgroups` (otherwise it could drop supplementary groups it
//! was denied by). Without a user namespace, root in the container **is** root on the
//! host: the same uid 0, the course's "root in container = root on host".
//!
//! Maps with several ranges, or for ids that are not yours, must be written by a
//! process that stays in the parent namespace with CAP_SETUID there; ns-exec forks a
//! helper for that, which waits for the signal that the namespace exists.
//!
//! ## Joining: `--enter PID`
//!
//! `setns(2)` moves the caller into an existing namespace, named by an open
//! `/proc/PID/ns/*` file, as `nsenter` and `docker exec` do. All files are opened
//! first (entering the mount namespace changes what /proc shows), then joined, user
//! namespace first. As for unshare, joining a PID namespace applies to children, so
//! the command runs in a forked child.
//!
//! ## The container a child becomes: [`Spec`]
//!
//! A runtime describes the container's first process as plain data, a [`Spec`], and
//! the lab turns it into requests on both sides of the fork:
//!
//! * **the parent** ([`unshare`]): `unshare(2)` of the kinds asked for, the uid/gid
//!   maps (written by itself or by the map helper), the time namespace's offsets;
//! * **the child** ([`setup_child`], what [`Kernel::spawn_env`]'s setup closure calls),
//!   in this order, each step needing the ones before:
//!   1. `sethostname(2)`;
//!   2. propagation: `MS_REC|MS_PRIVATE` on `/`;
//!   3. with a root filesystem: bind it onto itself, `chdir` into it, mount `/proc`,
//!      then the spec's extra mounts ([`Mount`], in order, targets relative to the new
//!      root: `/dev`, `/dev/pts`, `/sys`... each target must exist in the tree: making
//!      mount points is the caller's job), then `pivot_root(".", ".")` and the
//!      detach of the old root;
//!   4. read-only paths: a bind mount of the path onto itself, remounted `MS_RDONLY`
//!      (`/proc/sys`, `/proc/sysrq-trigger`: what runc's `readonlyPaths` are for);
//!   5. masked paths: `/dev/null` bound over a file, or an empty read-only tmpfs over
//!      a directory when that bind says `ENOTDIR` (runc's `maskedPaths`:
//!      `/proc/kcore`, `/sys/firmware`...); a path that does not exist is skipped;
//!   6. the working directory;
//!   7. the user: `setgroups(2)` (skipped when this user namespace denies it),
//!      `setgid(2)`, `setuid(2)`, last, since leaving uid 0 drops the capabilities
//!      every step above needed.
//!
//!   Then `execve(2)` with the spec's environment; a program name without `/` is
//!   searched in *that* environment's `PATH`, inside the new root.
//!
//! Mount targets are paths in a tree someone else made (an image, a volume another
//! container writes to), and the kernel follows symbolic links in them: before
//! `pivot_root` an absolute link would lead a mount onto the host's tree
//! (CVE-2021-30465 raced such a link into place). So each target of the spec's
//! mounts, read-only and masked paths is first opened with
//! `openat2(RESOLVE_IN_ROOT)`, the new root taken as `/` (a link resolves inside it,
//! as it will for the container), and the mount made on `/proc/self/fd/N`, that very
//! file. The `/dev/null` masked paths hide behind is checked to be the null device
//! first (CVE-2025-31133 made it a link to a writable /proc file).
//!
//! The operations print nothing: [`create`] and [`enter`] return a [`Ran`] (the PID
//! of a detached command, or how the command ended), [`show`] a [`Table`]. The map
//! helper and the tiny init are child processes with no caller to return an error
//! to: they hand it to the [`Launch::report`] function the caller gave (the CLI
//! writes it on stderr) and exit with the documented code.

mod cli;
pub mod seccomp;
mod show;

pub use cli::{Cli, RunArgs, ShowArgs, Sub};
pub use show::{show, NsRow, Table};

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Hint, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{
    CloneFlags, Errno, Exited, Fd, Gated, Kernel, MntFlags, MsFlags, NsKind, Pid, SigmaskHow, Signal, UserIds,
};

/// The tool this lab is, as its trace and messages name it.
pub const TOOL: &str = "ns-exec";

/// Run `ns-exec` as the command line asked: the exit code, or the error.
pub fn run(cli: Cli) -> Result<Exit> {
    cli::run(cli)
}

/// One line of a uid_map or gid_map file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    /// The first id inside the namespace.
    pub inside: u32,
    /// The id it stands for outside.
    pub outside: u32,
    /// How many consecutive ids.
    pub count: u32,
}

impl IdMap {
    /// Parse `INSIDE:OUTSIDE:COUNT`.
    pub fn parse(s: &str) -> Result<IdMap> {
        let bad = || {
            Error::Usage(format!(
                "invalid id mapping {s:?}: expected INSIDE:OUTSIDE:COUNT with three numbers, e.g. 0:100000:65536"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [a, b, c] = parts[..] else { return Err(bad()) };
        let n = |x: &str| x.trim().parse::<u32>().map_err(|_| bad());
        let m = IdMap { inside: n(a)?, outside: n(b)?, count: n(c)? };
        if m.count == 0 {
            return Err(bad());
        }
        Ok(m)
    }
}

/// A mount made inside the new root before `pivot_root(2)`: the arguments of one
/// `mount(2)`, with the target relative to the new root (`dev`, `/dev/pts`: a leading
/// `/` is allowed and means the same). Without a root filesystem, targets are taken
/// from `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// What to mount: a device, a directory to bind (a host path, still reachable
    /// before `pivot_root`), or a name for a virtual filesystem (`proc`, `tmpfs`).
    pub source: Option<String>,
    /// Where, relative to the new root. It must exist.
    pub target: PathBuf,
    /// The filesystem type (`tmpfs`, `sysfs`, `devpts`); `None` for a bind.
    pub fstype: Option<String>,
    /// `MS_*` flags (`MS_BIND|MS_REC`, `MS_NOSUID|MS_NOEXEC`...).
    pub flags: MsFlags,
    /// The filesystem's own options (`mode=755,size=65536k`).
    pub data: Option<String>,
}

/// Who the command runs as, inside its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id (`setuid(2)`).
    pub uid: u32,
    /// The group id (`setgid(2)`).
    pub gid: u32,
    /// The supplementary groups (`setgroups(2)`); empty drops them all.
    pub groups: Vec<u32>,
}

/// The offsets of a new time namespace, in seconds (`/proc/self/timens_offsets`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clocks {
    /// Added to CLOCK_MONOTONIC.
    pub monotonic: i64,
    /// Added to CLOCK_BOOTTIME (what `uptime` shows).
    pub boottime: i64,
}

/// The container a child process becomes: its namespaces, its root, its mounts, who
/// it is and what it gets as environment. See the module documentation for the
/// order in which each part is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// The namespaces to create, in the order unshare(2)'s flags list them.
    pub kinds: Vec<NsKind>,
    /// The hostname of the new UTS namespace.
    pub hostname: Option<String>,
    /// The new root filesystem (a bind mount of it, `pivot_root(".", ".")`, the old
    /// root detached).
    pub rootfs: Option<PathBuf>,
    /// Mount a fresh `/proc` (for the new PID namespace).
    pub mount_proc: bool,
    /// Mounts made inside the new root before `pivot_root`, in order.
    pub mounts: Vec<Mount>,
    /// Paths (inside the container) hidden behind `/dev/null` or an empty tmpfs.
    pub masked: Vec<PathBuf>,
    /// Paths (inside the container) made read-only.
    pub readonly: Vec<PathBuf>,
    /// uid_map lines (empty: none written).
    pub uid_map: Vec<IdMap>,
    /// gid_map lines.
    pub gid_map: Vec<IdMap>,
    /// The offsets of a new time namespace.
    pub clocks: Clocks,
    /// The command's environment, `KEY=VALUE` (`None`: this process's own).
    pub env: Option<Vec<String>>,
    /// The working directory, inside the container.
    pub cwd: Option<PathBuf>,
    /// Who the command runs as (`None`: who this process is).
    pub user: Option<User>,
    /// docker's minimal `/dev` in the new root: a tmpfs with null, zero, full, random,
    /// urandom, tty, a devpts of its own (pts, ptmx), shm, mqueue and the fd links, then
    /// these extra device nodes (`--device`).
    pub dev: Option<Vec<DevNode>>,
    /// Mount `/sys` read-only in the new root (and, on a cgroup v2 host, the
    /// container's own cgroup tree read-only at /sys/fs/cgroup).
    pub sys: Option<SysMount>,
    /// The capabilities to keep (`CAP_CHOWN`...): the bounding set is dropped to them,
    /// then they are the permitted, effective and inheritable sets (`None`: all kept).
    pub caps: Option<Vec<String>>,
    /// A network namespace to join (`/run/netns/NAME`) before anything is unshared:
    /// one that netns-bridge made and plugged into a bridge.
    pub netns: Option<PathBuf>,
    /// Remount the new root read-only after `pivot_root` (docker's `--read-only`).
    pub readonly_root: bool,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` before the capabilities are dropped: no setuid
    /// binary, no file capability gives the command more (docker's
    /// `--security-opt no-new-privileges`).
    pub no_new_privs: bool,
    /// seccomp programs ([`seccomp`]), each instruction `(code, jt, jf, k)`, loaded in
    /// order before the capabilities are dropped (`None`: no filter).
    pub seccomp: Option<Vec<seccomp::Program>>,
    /// The process was cloned into a user namespace of its own that does not own its
    /// network namespace (docker's userns-remap): the device nodes are bind mounts of
    /// the host's (mknod(2) of a device needs CAP_MKNOD in the initial user namespace),
    /// and `/sys` is the host's, bound read-only, where sysfs refuses to be mounted
    /// (only the owner of a network namespace may mount a sysfs for it).
    pub in_user_ns: bool,
}

/// A device node made in the new root's /dev.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DevNode {
    /// Its path inside (`/dev/fuse`).
    pub path: PathBuf,
    /// `c` (character) or `b` (block).
    pub kind: char,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// The host's node, bound in a user namespace (`None`: the same path as inside).
    #[serde(default)]
    pub host: Option<PathBuf>,
}

/// What [`Spec::sys`] mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SysMount {
    /// `/sys` read-only.
    Sysfs,
    /// `/sys` read-only and a cgroup2 tree read-only at `/sys/fs/cgroup`.
    SysfsAndCgroup2,
    /// `/sys` writable (docker's `--privileged`).
    SysfsWritable,
}

/// The device nodes of docker's default /dev: name, major, minor.
pub const DOCKER_DEVICES: [(&str, u64, u64); 6] =
    [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];

/// docker's default capabilities (CapEff `00000000a80425fb`).
pub const DOCKER_CAPS: [&str; 14] = [
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
pub const DOCKER_MASKED: [&str; 11] = [
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
pub const DOCKER_READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

impl Spec {
    /// Whether the id maps must be written by a helper that stays in the parent user
    /// namespace: a single mapping of the caller's own ids (`ids`, from
    /// [`Kernel::ids`]) can be written from inside, anything else needs
    /// CAP_SETUID/CAP_SETGID in the parent namespace.
    pub fn needs_map_helper(&self, ids: UserIds) -> bool {
        let explicit = !self.uid_map.is_empty() || !self.gid_map.is_empty();
        let own = |m: &[IdMap], id: u32| m.is_empty() || (m.len() == 1 && m[0].outside == id && m[0].count == 1);
        explicit && !(own(&self.uid_map, ids.euid) && own(&self.gid_map, ids.egid))
    }

    fn has(&self, kind: NsKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// Refuse what cannot be right before anything is made: mount targets that climb
    /// out of the new root, mounts or path lists that need a mount namespace.
    pub fn check(&self) -> Result<()> {
        let climbs = |p: &Path| p.components().any(|c| c == Component::ParentDir);
        for m in &self.mounts {
            if climbs(&m.target) || m.target.as_os_str().is_empty() {
                return Err(Error::failed(
                    format!("the mount target {:?} is empty or climbs out of the new root with ..", m.target),
                    "give mount targets as paths inside the new root, such as dev or /dev/pts",
                ));
            }
        }
        for p in self.masked.iter().chain(&self.readonly) {
            if climbs(p) || !p.is_absolute() {
                return Err(Error::failed(
                    format!("the path {p:?} to mask or make read-only must be absolute, without .."),
                    "give paths as the container sees them, such as /proc/kcore",
                ));
            }
        }
        let mounts = !self.mounts.is_empty() || !self.masked.is_empty() || !self.readonly.is_empty();
        if (mounts || self.rootfs.is_some() || self.mount_proc) && !self.has(NsKind::Mount) {
            return Err(Error::failed(
                "mounts, a root filesystem or masked/read-only paths need a new mount namespace",
                "add the mount namespace (NsKind::Mount, --mount) so that nothing is mounted on the host",
            ));
        }
        Ok(())
    }
}

/// How the command starts once the namespaces are there.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Run a tiny init as PID 1, which starts the command, forwards signals and reaps
    /// orphans.
    pub init: bool,
    /// Do not wait: the command gets a session of its own and /dev/null as stdio, and
    /// the operation returns its PID.
    pub detach: bool,
    /// What a child process with no caller to return to (the map helper, the tiny
    /// init) does with its error before exiting: the CLI writes it on stderr.
    pub report: fn(&Error),
}

/// What running a command gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// A detached command, running.
    Started {
        /// Its PID, as this process sees it.
        pid: Pid,
    },
    /// The command ended so.
    Exited(Exited),
}

fn flags_of(kinds: &[NsKind]) -> CloneFlags {
    kinds.iter().fold(CloneFlags::empty(), |f, k| f | k.flag())
}

fn map_text(m: &[IdMap]) -> String {
    m.iter().map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count)).collect()
}

fn need_argv(argv: &[String]) -> Result<()> {
    if argv.is_empty() {
        return Err(Error::Usage("no command to run: the argv is empty".into()));
    }
    Ok(())
}

/// Create the namespaces of `spec` and run the command in them: [`unshare`] here,
/// then fork, [`setup_child`] in the child, exec (see [`Launch`]). `ids` are the
/// caller's (from [`Kernel::ids`]): whether the maps need a helper depends on them.
pub fn create(k: &Kernel, spec: &Spec, ids: UserIds, launch: &Launch) -> Result<Ran> {
    let _s = k.scope(TOOL);
    need_argv(&launch.argv)?;
    spec.check()?;
    if spec.kinds.is_empty() {
        k.note("no namespace asked for: the command runs in this process's namespaces");
    }
    if let Some(dir) = &spec.rootfs {
        if !k.exists(&dir.join(".")) {
            return Err(Error::failed(
                format!("the root filesystem {} does not exist or is not a directory", dir.display()),
                "give --rootfs a directory holding a whole tree (e.g. one made by `img-pull unpack` or `busybox --install`)",
            ));
        }
    }
    unshare(k, spec, ids, launch.report)?;
    run_command(k, launch, spec.env.as_deref(), spec.has(NsKind::Pid), |k| setup_child(k, spec))
}

/// The parent's side of `spec`: `unshare(2)` of its kinds, then the uid/gid maps
/// (from here, or by a helper forked first that stays outside: see
/// [`Spec::needs_map_helper`]) and the offsets of a new time namespace, which must be
/// written before the first child exists. A new PID namespace applies to the next
/// child. `report` is what the map helper does with its error (it has no caller).
///
/// A runtime whose PID namespace comes from the parent may call it in the
/// container's first process instead, before [`setup_child`], with the other kinds.
pub fn unshare(k: &Kernel, spec: &Spec, ids: UserIds, report: fn(&Error)) -> Result<()> {
    let _s = k.scope(TOOL);
    if let Some(path) = &spec.netns {
        let fd = k
            .why("join the network namespace first: its interfaces (eth0, plugged into a bridge) become the command's")
            .open_read(path)
            .hint(Errno::ENOENT, "no such network namespace: make one with `netns-bridge netns add NAME`")?;
        k.setns(&fd, CloneFlags::CLONE_NEWNET)
            .hint(Errno::EPERM, "joining a network namespace needs CAP_SYS_ADMIN: run as root")?;
    }
    let me = Pid::from_raw(std::process::id() as i32);
    let mut helper = if spec.needs_map_helper(ids) { Some(start_map_helper(k, spec, me, report)?) } else { None };
    let unshared = match spec.kinds.is_empty() {
        true => Ok(()),
        false => k
            .why("give the command its own copy of each resource named by the flags")
            .unshare(flags_of(&spec.kinds))
            .map_err(|e| unshare_hint(e.into(), spec, ids.euid)),
    };
    if let Err(e) = unshared {
        // Undo: the helper waits for a namespace that will never exist.
        if let Some(h) = &mut helper {
            let _ = k.kill_gated(h, Signal::SIGKILL);
            let _ = k.wait(h.pid());
        }
        return Err(e);
    }
    if spec.has(NsKind::User) {
        match &mut helper {
            Some(h) => finish_map_helper(k, h)?,
            // From inside, even root has no CAP_SETGID in the parent namespace any more:
            // the kernel accepts our own gid_map only once setgroups is denied.
            None => write_maps(k, Path::new("/proc/self"), spec, true)?,
        }
    }
    if spec.has(NsKind::Time) {
        let text = format!("monotonic {} 0\nboottime {} 0\n", spec.clocks.monotonic, spec.clocks.boottime);
        k.why("shift the clocks the command will see; only possible before the first child exists")
            .write_file(Path::new("/proc/self/timens_offsets"), &text)?;
    }
    Ok(())
}

fn unshare_hint(e: Error, spec: &Spec, euid: u32) -> Error {
    let hint = match e.errno() {
        Some(Errno::EPERM) if spec.has(NsKind::User) && euid != 0 => {
            "unprivileged user namespaces are disabled on this machine (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or run as root"
        }
        Some(Errno::EPERM) => {
            "creating namespaces needs CAP_SYS_ADMIN: run as root, or add --map-root to create a user namespace first, in which you are root"
        }
        Some(Errno::EINVAL) if spec.has(NsKind::Time) => {
            "this kernel has no time namespaces (they need Linux 5.6 and CONFIG_TIME_NS)"
        }
        Some(Errno::EINVAL) => "this kernel lacks one of the namespace kinds asked for (check CONFIG_*_NS)",
        Some(Errno::ENOSPC) | Some(Errno::EUSERS) => {
            "the limit on namespaces is reached (/proc/sys/user/max_*_namespaces)"
        }
        _ => return e,
    };
    match e {
        Error::Kernel { err, .. } => Error::Kernel { err, hint: Some(hint.into()) },
        other => other,
    }
}

fn write_maps(k: &Kernel, proc_dir: &Path, spec: &Spec, deny_setgroups: bool) -> Result<()> {
    if deny_setgroups && !spec.gid_map.is_empty() {
        k.why("without CAP_SETGID in the parent namespace, gid_map may be written only after giving up setgroups(2)")
            .write_file(&proc_dir.join("setgroups"), "deny")?;
    }
    if !spec.uid_map.is_empty() {
        k.why("say which uids inside stand for which uids outside; until then everyone is nobody (65534)")
            .write_file(&proc_dir.join("uid_map"), &map_text(&spec.uid_map))
            .hint(Errno::EPERM, "only your own uid may be mapped without CAP_SETUID: use --map-root, or run as root")?;
    }
    if !spec.gid_map.is_empty() {
        k.why("the same for group ids")
            .write_file(&proc_dir.join("gid_map"), &map_text(&spec.gid_map))
            .hint(Errno::EPERM, "only your own gid may be mapped without CAP_SETGID: use --map-root, or run as root")?;
    }
    Ok(())
}

/// Write a process's uid and gid maps from outside its user namespace (a runtime does
/// this for the container's first process before letting it go on): the step a
/// [`Kernel::clone_with`] of `CLONE_NEWUSER` runs before releasing its child, hence
/// the kernel's error (the failed write) rather than the lab's.
pub fn write_id_maps(
    k: &Kernel,
    pid: Pid,
    uid_map: &[IdMap],
    gid_map: &[IdMap],
) -> std::result::Result<(), crate::kernel::SysError> {
    let spec = Spec { uid_map: uid_map.to_vec(), gid_map: gid_map.to_vec(), ..Default::default() };
    write_maps(k, &PathBuf::from(format!("/proc/{pid}")), &spec, false).map_err(|e| match e {
        Error::Kernel { err, .. } => err,
        other => crate::kernel::SysError { call: other.to_string(), errno: Errno::EINVAL },
    })
}

/// Become the root of the user namespace this process was cloned into (or joined): its
/// ids are still the host's (uid 0 outside, which the namespace does not map: it
/// shows as 65534 and may create no file), until `setgroups(2)`, `setgid(2)` and
/// `setuid(2)` to 0 *inside* make it 100000 outside. Its capabilities in the
/// namespace are kept.
pub fn become_ns_root(k: &Kernel) -> Result<()> {
    k.why("no supplementary group of the host's").setgroups(&[])?;
    k.why("gid 0 of the user namespace (100000 outside)").setgid(0)?;
    k.why("uid 0 of the user namespace: root inside, an unprivileged uid outside").setuid(0)?;
    Ok(())
}

/// A user namespace holding these maps and no process: `clone(CLONE_NEWUSER)` of a child
/// that only waits, its maps written from here, its `/proc/PID/ns/user` opened, then the
/// child killed. The open descriptor keeps the namespace alive; it is what
/// [`idmapped_bind`] gives `mount_setattr(2)`, as crun and podman do.
pub fn user_namespace(k: &Kernel, uid_map: &[IdMap], gid_map: &[IdMap]) -> Result<Fd> {
    let pid = k.why("a user namespace that only carries the id maps").clone_with(
        CloneFlags::CLONE_NEWUSER,
        |k, pid| write_id_maps(k, pid, uid_map, gid_map),
        |k| {
            let _ = k.set_parent_death_signal(Signal::SIGKILL);
            let _ = k.why("hold the namespace until the parent has its descriptor").sigwait(&[Signal::SIGUSR1]);
            0
        },
    )?;
    let fd = k.open_child_ns(&PathBuf::from(format!("/proc/{pid}/ns/user")));
    let _ = k.kill(pid, Signal::SIGKILL);
    let _ = k.wait(pid);
    Ok(fd?)
}

/// `dir` bound at `target`, idmapped through `userns`'s maps: `open_tree(2)` a detached
/// copy of it, `mount_setattr(2)` `MOUNT_ATTR_IDMAP`, then `move_mount(2)`. A file owned
/// by 0 on disk is owned, through this mount, by the namespace's root outside (100000);
/// what that uid writes here is stored as 0.
pub fn idmapped_bind(k: &Kernel, dir: &Path, target: &Path, userns: &Fd) -> Result<()> {
    let m = k.why("a detached bind mount of the directory").open_tree_clone(dir)?;
    k.mount_setattr_idmap(&m, userns).hint(
        Errno::EINVAL,
        "this filesystem or kernel cannot idmap mounts (Linux 5.12+, on ext4, xfs, btrfs; tmpfs only from 6.3)",
    )?;
    k.move_mount(&m, target)?;
    Ok(())
}

/// Fork a helper that stays in the parent user namespace, waits for SIGUSR1 (sent once
/// we have unshared), then writes our maps from outside, with its capabilities there.
fn start_map_helper(k: &Kernel, spec: &Spec, target: Pid, report: fn(&Error)) -> Result<Gated<'static>> {
    k.why("hold SIGUSR1 so the map helper cannot miss it").sigprocmask(SigmaskHow::SIG_BLOCK, &[Signal::SIGUSR1])?;
    let spec = spec.clone();
    let h = k.fork_gated(move |k| {
        if k.why("wait until the parent has created its user namespace").sigwait(&[Signal::SIGUSR1]).is_err() {
            return 1;
        }
        let dir = PathBuf::from(format!("/proc/{target}"));
        match write_maps(k, &dir, &spec, false) {
            Ok(()) => 0,
            Err(e) => {
                report(&e);
                1
            }
        }
    })?;
    Ok(h)
}

fn finish_map_helper(k: &Kernel, helper: &mut Gated<'_>) -> Result<()> {
    k.why("tell the map helper our user namespace exists").kill_gated(helper, Signal::SIGUSR1)?;
    let st = k.wait(helper.pid())?;
    k.sigprocmask(SigmaskHow::SIG_UNBLOCK, &[Signal::SIGUSR1])?;
    if st != Exited::Code(0) {
        return Err(Error::failed(
            "the helper could not write the uid/gid maps (see the trace above)",
            "mapping ids other than your own needs root (CAP_SETUID/CAP_SETGID in the parent namespace)",
        ));
    }
    Ok(())
}

/// What the first process inside does before exec, in this order: hostname,
/// propagation, the new root (bind, /proc, the spec's mounts, `pivot_root`, detach
/// of the old root), read-only and masked paths, working directory, user. The setup
/// closure of [`Kernel::spawn_env`] calls it; so can a runtime's own child.
pub fn setup_child(k: &Kernel, spec: &Spec) -> Result<()> {
    let _s = k.scope(TOOL);
    spec.check()?;
    if let Some(h) = &spec.hostname {
        k.why("only this UTS namespace sees the new name").sethostname(h)?;
    }
    if spec.has(NsKind::Mount) {
        k.why("stop mount events propagating between this namespace and the host").mount(
            None,
            Path::new("/"),
            None,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None,
        )?;
    }
    let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_hint = "mounting proc in a user namespace also needs a new PID namespace: add --pid";
    match &spec.rootfs {
        Some(dir) => {
            k.why("pivot_root needs the new root to be a mount point: bind the directory onto itself").mount(
                Some(&dir.to_string_lossy()),
                dir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            k.chdir(dir)?;
            let mut sources = Vec::new();
            if spec.in_user_ns {
                // The paths to the root and to the binds' sources are the host root's
                // (0700 directories of the store), which the namespace's root could not
                // walk: the sources are held by descriptors first.
                for m in &spec.mounts {
                    let bind = m.flags.contains(MsFlags::MS_BIND) && m.fstype.is_none();
                    sources.push(match (&m.source, bind) {
                        (Some(s), true) => Some(k.open_mount_source(Path::new(s))?),
                        _ => None,
                    });
                }
                become_ns_root(k)?;
            }
            if spec.mount_proc {
                k.why("a /proc that shows this PID namespace, inside the new root")
                    .mount(Some("proc"), Path::new("proc"), Some("proc"), proc_flags, None)
                    .hint(Errno::EPERM, proc_hint)
                    .hint(Errno::ENOENT, "the new root has no /proc directory to mount on: create DIR/proc")?;
            }
            if let Some(nodes) = &spec.dev {
                docker_dev(k, nodes, spec.in_user_ns)?;
            }
            if let Some(sys) = spec.sys {
                sys_mounts(k, sys, spec.in_user_ns)?;
            }
            // We are in the new root: a relative target is a path inside it.
            extra_mounts(k, spec, &sources, true, |t| t.strip_prefix("/").unwrap_or(t).to_path_buf())?;
            k.why("make the current directory the root mount; the old root is stacked on top of it")
                .pivot_root(Path::new("."), Path::new("."))
                .hint(Errno::EINVAL, "pivot_root refuses a root on a shared mount or a rootfs (initramfs) root; check that DIR is not itself the root of the machine")?;
            k.why("detach the old root: nothing of the host's tree stays reachable")
                .umount2(Path::new("."), MntFlags::MNT_DETACH)?;
            k.chdir(Path::new("/"))?;
            if spec.readonly_root {
                k.why("--read-only: the root mount itself read-only (the mounts on it keep their own flags)").mount(
                    None,
                    Path::new("/"),
                    None,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                    None,
                )?;
            }
        }
        None => {
            if spec.mount_proc {
                k.why("a /proc that shows this PID namespace (otherwise ps lists the host's processes)")
                    .mount(Some("proc"), Path::new("/proc"), Some("proc"), proc_flags, None)
                    .hint(Errno::EPERM, proc_hint)?;
            }
            extra_mounts(k, spec, &[], false, |t| Path::new("/").join(t))?;
        }
    }
    // Resolved inside the new root only where it has its own /proc (for the
    // /proc/self/fd/N the mounts are made on); without a root, paths are the host's.
    let in_root = spec.rootfs.is_some() && spec.mount_proc;
    for p in &spec.readonly {
        readonly_path(k, p, in_root)?;
    }
    for p in &spec.masked {
        mask_path(k, p, in_root)?;
    }
    if let Some(dir) = &spec.cwd {
        k.why("the command's working directory")
            .chdir(dir)
            .hint(Errno::ENOENT, "the working directory does not exist inside the container")?;
        inside_root(k)?;
    }
    confine(k, spec, spec.caps.as_deref(), spec.user.as_ref())
}

/// Refuse a working directory outside the root (one reached through a descriptor a
/// runtime left open, `-w /proc/self/fd/N`: CVE-2024-21626), as runc does.
pub fn inside_root(k: &Kernel) -> Result<()> {
    match k.why("the working directory must be inside the new root").getcwd() {
        Err(e) if e.errno == Errno::ENOENT => Err(Error::Failed {
            what: "current working directory is outside of container mount namespace root -- possible container breakout detected".into(),
            hint: Some("give a working directory inside the container (-w /some/dir)".into()),
        }),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(()),
    }
}

/// The last step before exec: the capabilities (bounding set dropped to `caps`), then
/// the user (`setgroups`, `setgid`, `setuid`, keeping the capabilities across), then the
/// permitted/effective/inheritable sets. A runtime that must do something between the
/// mounts and this (make a terminal) calls it itself.
pub fn confine(k: &Kernel, spec: &Spec, caps: Option<&[String]>, user: Option<&User>) -> Result<()> {
    let _s = k.scope(TOOL);
    let keep: Option<Vec<crate::kernel::Cap>> = caps
        .map(|c| {
            c.iter()
                .map(|n| {
                    n.parse().map_err(|_| {
                        Error::Usage(format!("unknown capability {n:?}: give a name such as CAP_NET_ADMIN"))
                    })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    if spec.no_new_privs {
        k.why("no-new-privileges: from here on, no exec can raise the process's privileges (setuid bits, file capabilities)")
            .no_new_privs()?;
    }
    if let Some(programs) = &spec.seccomp {
        for p in programs {
            k.why("seccomp: the system calls the command may make (the rest fail, never reaching the kernel's code)")
                .seccomp_filter(p)?;
        }
    }
    if let Some(keep) = &keep {
        k.why("root in a container is not all of root: only these capabilities stay possible").drop_bounding(keep)?;
        k.flush_counts("dropped from the bounding set");
    }
    if let Some(u) = user {
        if keep.is_some() && (u.uid != 0 || u.gid != 0) {
            k.keep_caps(true)?;
        }
        become_user(k, spec, u)?;
    }
    if let Some(keep) = &keep {
        k.why("the capabilities the command runs with (a non-root user loses them at exec, as with docker)")
            .set_caps(keep)?;
    }
    Ok(())
}

/// docker's minimal /dev (see [`Spec::dev`]), in the new root (the current directory).
fn docker_dev(k: &Kernel, nodes: &[DevNode], bind: bool) -> Result<()> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mkdir = |p: &str| match k.mkdir(Path::new(p), 0o755) {
        Err(e) if e.errno != Errno::EEXIST => Err(e),
        _ => Ok(()),
    };
    mkdir("dev")?;
    k.why("docker's /dev: a small tmpfs with only the devices a container may use").mount(
        Some("tmpfs"),
        Path::new("dev"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for d in ["dev/pts", "dev/shm", "dev/mqueue"] {
        mkdir(d)?;
    }
    k.why("a devpts of its own: its terminals are /dev/pts/0, 1... not the host's").mount(
        Some("devpts"),
        Path::new("dev/pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    k.mount(Some("shm"), Path::new("dev/shm"), Some("tmpfs"), nosuid_nodev_noexec, Some("mode=1777,size=65536k"))?;
    k.mount(Some("mqueue"), Path::new("dev/mqueue"), Some("mqueue"), nosuid_nodev_noexec, None)?;
    // The nodes get exactly their modes (0666 for /dev/null: any user writes to it),
    // not the modes less this process's umask.
    let old = k.why("device nodes are made with exactly their modes").umask(0)?;
    if bind {
        k.note("in a user namespace no device node may be made: each is a bind mount of the host's");
    }
    let node = |p: &Path, host: &Path, kind: char, mode: u32, major: u64, minor: u64| -> Result<()> {
        if bind {
            k.why("a mount point for the host's node").write_new_file(p, b"", 0o600)?;
            k.why("the host's device node, bound (the same node, the host's permissions)").mount(
                Some(&host.to_string_lossy()),
                p,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
            Ok(())
        } else {
            Ok(k.mknod(p, kind, mode, major, minor)?)
        }
    };
    for (name, major, minor) in DOCKER_DEVICES {
        node(&Path::new("dev").join(name), &Path::new("/dev").join(name), 'c', 0o666, major, minor)?;
    }
    for n in nodes {
        let p = Path::new(".").join(n.path.strip_prefix("/").unwrap_or(&n.path));
        if let Some(parent) = p.parent() {
            if !parent.exists() {
                mkdir(&parent.to_string_lossy())?;
            }
        }
        k.why("the host's device, at the same numbers");
        node(&p, n.host.as_deref().unwrap_or(&n.path), n.kind, n.mode, n.major, n.minor)?;
    }
    k.umask(old)?;
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        k.symlink(Path::new(target), &Path::new("dev").join(link))?;
    }
    Ok(())
}

/// `/sys` read-only, and a cgroup2 tree on pure v2 hosts (see [`Spec::sys`]).
fn sys_mounts(k: &Kernel, sys: SysMount, in_user_ns: bool) -> Result<()> {
    let ro = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    if !Path::new("sys").exists() {
        k.mkdir(Path::new("sys"), 0o755)?;
    }
    let (flags, why) = match sys {
        SysMount::SysfsWritable => {
            (ro - MsFlags::MS_RDONLY, "the kernel's view of devices and drivers, writable (--privileged)")
        }
        _ => (ro, "the kernel's view of devices and drivers, read-only"),
    };
    match k.why(why).mount(Some("sysfs"), Path::new("sys"), Some("sysfs"), flags, None) {
        Err(e) if e.errno == Errno::EPERM && in_user_ns => {
            k.note("sysfs belongs to the network namespace's owner, the host: the host's /sys is bound instead (as runc does)");
            k.mount(Some("/sys"), Path::new("sys"), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
            if sys != SysMount::SysfsWritable {
                k.why("the bind and every mount under it (the host's cgroups, securityfs...) read-only")
                    .make_tree_readonly(Path::new("sys"))?;
            }
        }
        r => r?,
    }
    if sys == SysMount::SysfsAndCgroup2 {
        k.why("the container's own cgroup tree (its cgroup namespace makes its group the root), read-only").mount(
            Some("cgroup"),
            Path::new("sys/fs/cgroup"),
            Some("cgroup2"),
            ro,
            None,
        )?;
    }
    Ok(())
}

/// The spec's mounts; `in_root`: each target resolved inside the new root (the current
/// directory), see [`Kernel::mount_in_root`].
/// `sources`: descriptors held for the binds' sources (see [`setup_child`]), by index.
fn extra_mounts(
    k: &Kernel,
    spec: &Spec,
    sources: &[Option<crate::kernel::FsFd>],
    in_root: bool,
    at: impl Fn(&Path) -> PathBuf,
) -> Result<()> {
    let per_mount = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for (i, m) in spec.mounts.iter().enumerate() {
        let target = at(&m.target);
        let bind = m.flags.contains(MsFlags::MS_BIND);
        let held = sources.get(i).and_then(|s| s.as_ref()).map(|s| s.proc_path());
        let source = held.as_deref().or(m.source.as_deref());
        // A bind ignores the flags given with it: they are set by remounting the new
        // mount (what mount(8) does for `-o bind,ro`).
        let first = if bind { m.flags & !per_mount } else { m.flags };
        let mount = |source: Option<&str>, fstype: Option<&str>, fl: MsFlags, data: Option<&str>| {
            if in_root {
                k.mount_in_root(source, &target, fstype, fl, data)
            } else {
                k.mount(source, &target, fstype, fl, data)
            }
        };
        k.why("one of the container's mounts, made before pivot_root while host paths are still reachable");
        mount(source, m.fstype.as_deref(), first, m.data.as_deref())
            .hint(Errno::ENOENT, "the mount point (or a bind's source) does not exist: create it in the tree first")?;
        if bind && m.flags.intersects(per_mount) {
            k.why("a bind takes its flags (ro, nosuid...) by being remounted");
            mount(None, None, MsFlags::MS_REMOUNT | MsFlags::MS_BIND | (m.flags & per_mount), None)?;
        }
    }
    Ok(())
}

/// runc's `readonlyPath`: bind the path onto itself, then remount the bind read-only.
fn readonly_path(k: &Kernel, p: &Path, in_root: bool) -> Result<()> {
    let shown = p.to_string_lossy();
    if !in_root {
        return readonly_path_plain(k, p);
    }
    let fd = match k.why("the path to make read-only, resolved inside the root").open_target_in_root(p) {
        Err(e) if e.errno == Errno::ENOENT => {
            k.note(format!("{shown} does not exist in the container: nothing to make read-only"));
            return Ok(());
        }
        r => r?,
    };
    let at = fd.proc_path();
    k.why("make a path read-only: first a bind mount of it onto itself...").mount(
        Some(&at),
        Path::new(&at),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    k.why("...then remount that bind read-only (the flags of a bind change only by remounting it)")
        .mount_in_root(
            None,
            p,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
            None,
        )
        .hint(
            Errno::EPERM,
            "in a user namespace, a remount must keep the locked flags (nosuid, nodev, noexec) of the mount",
        )?;
    Ok(())
}

/// [`readonly_path`] by path (no root of the container's own to resolve in).
fn readonly_path_plain(k: &Kernel, p: &Path) -> Result<()> {
    let shown = p.to_string_lossy();
    match k.why("make a path read-only: first a bind mount of it onto itself...").mount(
        Some(&shown),
        p,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    ) {
        Err(e) if e.errno == Errno::ENOENT => {
            k.note(format!("{shown} does not exist: nothing to make read-only"));
            return Ok(());
        }
        r => r?,
    }
    k.why("...then remount that bind read-only (the flags of a bind change only by remounting it)").mount(
        None,
        p,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC,
        None,
    )?;
    Ok(())
}

/// runc's `maskPath`: /dev/null over a file; an empty read-only tmpfs over a directory.
/// The /dev/null bound is first checked to be the null device (1:3): a container that
/// made its /dev/null a link to a /proc file, or bound something over it, would
/// otherwise have that file bound writable over the masked path (CVE-2025-31133).
fn mask_path(k: &Kernel, p: &Path, in_root: bool) -> Result<()> {
    let mount = |src: Option<&str>, fstype: Option<&str>, fl: MsFlags| {
        if in_root {
            k.mount_in_root(src, p, fstype, fl, None)
        } else {
            k.mount(src, p, fstype, fl, None)
        }
    };
    k.why("the /dev/null to hide files behind");
    let opened = if in_root {
        k.open_target_in_root(Path::new("/dev/null"))
    } else {
        k.open_mount_source(Path::new("/dev/null"))
    };
    let null = match opened {
        Err(e) if e.errno == Errno::ENOENT => {
            k.note(format!("the container has no /dev/null: {} not masked", p.display()));
            return Ok(());
        }
        r => r?,
    };
    if !k.why("is it really the null device?").is_char_device(&null, (1, 3))? {
        return Err(Error::failed(
            "the container's /dev/null is not the null device (1:3): possible attack (CVE-2025-31133), nothing masked with it",
            "the container must not replace /dev/null; recreate the container",
        ));
    }
    // Without a /proc of the root's own, the null device checked is bound by path.
    let src = if in_root { null.proc_path() } else { "/dev/null".to_string() };
    k.why("hide a file: bind /dev/null over it");
    match mount(Some(&src), None, MsFlags::MS_BIND) {
        Ok(()) => Ok(()),
        Err(e) if e.errno == Errno::ENOENT => {
            k.note(format!("{} does not exist in the container: not masked", p.display()));
            Ok(())
        }
        Err(e) if e.errno == Errno::ENOTDIR => {
            k.why("a directory: hide it under an empty read-only tmpfs");
            mount(Some("tmpfs"), Some("tmpfs"), MsFlags::MS_RDONLY)?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn become_user(k: &Kernel, spec: &Spec, u: &User) -> Result<()> {
    let denied = spec.has(NsKind::User)
        && k.why("does this user namespace allow setgroups(2)?")
            .read_file(Path::new("/proc/self/setgroups"))
            .is_ok_and(|s| s.trim() == "deny");
    if denied {
        k.note("setgroups is denied in this user namespace (its gid_map was written from inside): keeping the groups");
    } else {
        k.why("the supplementary groups of the command (none of the caller's)").setgroups(&u.groups).hint(
            Errno::EPERM,
            "setting groups needs CAP_SETGID (root, or root in a user namespace that allows setgroups)",
        )?;
    }
    k.why("the command's group").setgid(u.gid).hint(Errno::EINVAL, "that gid is not mapped in this user namespace")?;
    k.why("the command's user, last: leaving uid 0 drops the capabilities the steps above needed")
        .setuid(u.uid)
        .hint(Errno::EINVAL, "that uid is not mapped in this user namespace")?;
    Ok(())
}

/// Start the command (directly, or under the tiny init) after `setup`, with `env`
/// (`None`: ours), then wait or detach.
fn run_command(
    k: &Kernel,
    launch: &Launch,
    env: Option<&[String]>,
    pid_ns: bool,
    setup: impl FnOnce(&Kernel) -> Result<()>,
) -> Result<Ran> {
    k.why("hold the signals we forward to the command until we wait for them").block_forwarded()?;
    let detach = launch.detach;
    let prepare = |k: &Kernel| -> Result<()> {
        if detach {
            k.why("a detached command keeps no terminal and no pipe of ours").setsid()?;
            k.redirect_stdio(Path::new("/dev/null"))?;
        }
        setup(k)
    };
    if pid_ns && !launch.init {
        k.note("the command will be PID 1 of its PID namespace; the host sees it under the PID fork() returns");
    }
    let pid = if launch.init {
        k.fork_with(|k| match prepare(k) {
            Err(e) => {
                (launch.report)(&e);
                Exit::ToolFailed.code() as i32
            }
            Ok(()) => tiny_init(k, &launch.argv, env, launch.report),
        })?
    } else {
        k.spawn_env(&launch.argv, env, |k| prepare(k).map_err(|e| e.to_string()))?.pid
    };
    if detach {
        return Ok(Ran::Started { pid });
    }
    Ok(Ran::Exited(k.wait_forwarding(pid, false)?))
}

/// PID 1's job: start the command, forward signals to it, reap every child that ends
/// (orphans are re-parented to PID 1, and a PID 1 that does not wait for them leaves
/// zombies), and exit with the command's status.
fn tiny_init(k: &Kernel, argv: &[String], env: Option<&[String]>, report: fn(&Error)) -> i32 {
    k.note("tiny init: PID 1 starts the command, forwards signals, reaps zombies");
    let child = match k.spawn_env(argv, env, |_| Ok(())) {
        Ok(s) => s.pid,
        Err(e) => {
            let e = Error::from(e);
            report(&e);
            return crate::exit::code_for(&e, Role::Wrapper).code() as i32;
        }
    };
    match k.wait_forwarding(child, true) {
        Ok(st) => Exit::of(st).code() as i32,
        Err(e) => {
            report(&Error::from(e));
            Exit::ToolFailed.code() as i32
        }
    }
}

/// Join the namespaces of process `pid` with `setns(2)`, as nsenter does: `kinds`, or
/// (`None`) every kind in which it differs from this process. Every
/// `/proc/PID/ns/*` file is opened first (joining the mount namespace changes what
/// /proc shows), then joined in [`NsKind::ALL`]'s order, user namespace first.
/// Returns the kinds joined. A PID namespace joined applies to the next child.
pub fn join(k: &Kernel, pid: i32, kinds: Option<&[NsKind]>) -> Result<Vec<NsKind>> {
    Ok(join_open(k, pid, kinds)?.into_iter().map(|(n, _)| n).collect())
}

/// [`join`], keeping the namespace files open (their numbers stay taken while the
/// command starts, as the trace of `--enter` has always shown).
fn join_open(k: &Kernel, pid: i32, kinds: Option<&[NsKind]>) -> Result<Vec<(NsKind, Fd)>> {
    let _s = k.scope(TOOL);
    let proc = PathBuf::from(format!("/proc/{pid}/ns"));
    if !k.exists(&proc) {
        return Err(Error::failed(
            format!("process {pid} does not exist ({} is missing)", proc.display()),
            format!("give --enter the PID of a running process ({TOOL} --detach prints one)"),
        ));
    }
    let kinds: Vec<NsKind> = match kinds {
        None => NsKind::ALL
            .into_iter()
            .filter(|n| {
                let theirs = k.readlink(&proc.join(n.proc_name()));
                let ours = k.readlink(&Path::new("/proc/self/ns").join(n.proc_name()));
                matches!((theirs, ours), (Ok(t), Ok(o)) if t != o)
            })
            .collect(),
        Some(chosen) => NsKind::ALL.into_iter().filter(|n| chosen.contains(n)).collect(),
    };
    if kinds.is_empty() {
        k.note(format!("process {pid} shares all its namespaces with us: nothing to join"));
    }
    let mut fds = Vec::new();
    for n in &kinds {
        let fd = k
            .why("open every namespace first: joining the mount namespace changes what /proc shows")
            .open_read(&proc.join(n.proc_name()))
            .hint(Errno::ENOENT, "this kernel has no namespace of that kind")?;
        fds.push((*n, fd));
    }
    for (n, fd) in &fds {
        k.setns(fd, n.flag())
            .hint(Errno::EPERM, "joining another process's namespaces needs CAP_SYS_ADMIN: run as root")?;
    }
    Ok(fds)
}

/// [`join`] the namespaces of `pid`, then run the command there (with this process's
/// environment; a joined PID namespace is the command's).
pub fn enter(k: &Kernel, pid: i32, kinds: Option<&[NsKind]>, launch: &Launch) -> Result<Ran> {
    let _s = k.scope(TOOL);
    need_argv(&launch.argv)?;
    let joined = join_open(k, pid, kinds)?;
    let pid_ns = joined.iter().any(|(n, _)| *n == NsKind::Pid);
    run_command(k, launch, None, pid_ns, |_| Ok(()))
}

#[cfg(test)]
mod tests;
