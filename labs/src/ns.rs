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

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::cli::CommonOpts;
use crate::error::{Error, Hint, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{CloneFlags, Errno, Kernel, MntFlags, MsFlags, NsKind, Pid, SigmaskHow, Signal};

/// Run a command in new namespaces, join a process's namespaces, or list them.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = "ns-exec", version)]
pub struct Cli {
    /// `show`, or nothing to run a command.
    #[command(subcommand)]
    pub sub: Option<Sub>,
    /// What to run, in which namespaces.
    #[command(flatten)]
    pub run: RunArgs,
    /// The trace flags every binary shares.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// Subcommands other than running a command.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// List the namespaces of processes (the inodes of /proc/PID/ns/*), marking with
    /// `*` those that differ from PID 1's.
    Show(ShowArgs),
}

/// `ns-exec show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Processes to show (default: PID 1, this process, and every process whose
    /// namespaces differ from PID 1's in at least one kind).
    pub pids: Vec<i32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compare with this process instead of PID 1 (the host's init).
    #[arg(long = "ref", value_name = "PID", default_value_t = 1)]
    pub reference: i32,
}

/// Running a command in new namespaces (or, with --enter, in existing ones).
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// New mount namespace.
    #[arg(short = 'm', long)]
    pub mount: bool,
    /// New UTS namespace (hostname).
    #[arg(short = 'u', long)]
    pub uts: bool,
    /// New IPC namespace.
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// New PID namespace: the command is PID 1 in it.
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// New network namespace (only a loopback interface, down).
    #[arg(short = 'n', long)]
    pub net: bool,
    /// New user namespace (see --map-root, --uid-map).
    #[arg(short = 'U', long)]
    pub user: bool,
    /// New cgroup namespace.
    #[arg(short = 'C', long)]
    pub cgroup: bool,
    /// New time namespace (see --monotonic, --boottime).
    #[arg(short = 'T', long)]
    pub time: bool,
    /// All eight kinds (with a user namespace mapping you to root inside).
    #[arg(short = 'a', long)]
    pub all: bool,

    /// Set the hostname in the new UTS namespace (implies --uts).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Mount a fresh /proc for the new PID namespace (implies --mount).
    #[arg(long)]
    pub mount_proc: bool,
    /// Run a tiny init as PID 1 that starts the command, reaps orphaned zombies and
    /// forwards signals (requires --pid).
    #[arg(long, requires = "pid")]
    pub init: bool,
    /// Make DIR the root filesystem with pivot_root(2) (implies --mount).
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,

    /// Map root inside the user namespace to your own uid/gid (implies --user).
    #[arg(short = 'r', long)]
    pub map_root: bool,
    /// A uid mapping INSIDE:OUTSIDE:COUNT, repeatable (implies --user).
    #[arg(long, value_name = "IN:OUT:COUNT")]
    pub uid_map: Vec<String>,
    /// A gid mapping INSIDE:OUTSIDE:COUNT, repeatable (implies --user).
    #[arg(long, value_name = "IN:OUT:COUNT")]
    pub gid_map: Vec<String>,

    /// Offset CLOCK_MONOTONIC by SECS in the new time namespace (implies --time).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub monotonic: Option<i64>,
    /// Offset CLOCK_BOOTTIME (uptime) by SECS in the new time namespace (implies --time).
    #[arg(long, value_name = "SECS", allow_hyphen_values = true)]
    pub boottime: Option<i64>,

    /// Join the namespaces of process PID instead of creating new ones (as nsenter
    /// does). With kind flags, join only those; without, every kind that differs.
    #[arg(short = 'e', long, value_name = "PID")]
    pub enter: Option<i32>,

    /// Start the command in the background and print its PID on stdout.
    #[arg(short = 'd', long)]
    pub detach: bool,

    /// The command and its arguments.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// One line of a uid_map or gid_map file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The namespaces a run asks for, after implications (`--hostname` implies `--uts`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The kinds to create.
    pub kinds: Vec<NsKind>,
    /// uid_map lines (empty: no mapping written).
    pub uid_map: Vec<IdMap>,
    /// gid_map lines.
    pub gid_map: Vec<IdMap>,
    /// Whether a helper in the parent user namespace must write the maps.
    pub map_helper: bool,
}

impl RunArgs {
    /// The kinds the flags name, with their implications (`--hostname` means a UTS
    /// namespace, `--rootfs` a mount namespace...), in the order unshare creates them.
    pub fn kinds(&self) -> Vec<NsKind> {
        use NsKind::*;
        let want = [
            (User, self.user || self.map_root || !self.uid_map.is_empty() || !self.gid_map.is_empty()),
            (Mount, self.mount || self.mount_proc || self.rootfs.is_some()),
            (Uts, self.uts || self.hostname.is_some()),
            (Ipc, self.ipc),
            (Pid, self.pid),
            (Net, self.net),
            (Cgroup, self.cgroup),
            (Time, self.time || self.monotonic.is_some() || self.boottime.is_some()),
        ];
        want.iter().filter(|w| w.1 || self.all).map(|w| w.0).collect()
    }

    /// Work out which namespaces to create, and the id maps, from the flags.
    pub fn plan(&self, ids: crate::kernel::UserIds) -> Result<Plan> {
        use NsKind::*;
        let kinds = self.kinds();
        let parse = |v: &[String]| v.iter().map(|s| IdMap::parse(s)).collect::<Result<Vec<_>>>();
        let (mut uid_map, mut gid_map) = (parse(&self.uid_map)?, parse(&self.gid_map)?);
        let explicit = !uid_map.is_empty() || !gid_map.is_empty();
        if kinds.contains(&User) && !explicit {
            // --map-root, --user alone with --all, or --user: map root to ourselves.
            if self.map_root || self.all || self.user {
                uid_map = vec![IdMap { inside: 0, outside: ids.euid, count: 1 }];
                gid_map = vec![IdMap { inside: 0, outside: ids.egid, count: 1 }];
            }
        }
        if self.map_root && explicit {
            return Err(Error::Usage("--map-root and --uid-map/--gid-map are exclusive: choose one".into()));
        }
        // A single mapping of our own ids can be written by ourselves from inside;
        // anything else needs CAP_SETUID/CAP_SETGID in the parent namespace.
        let own = |m: &[IdMap], id: u32| m.is_empty() || (m.len() == 1 && m[0].outside == id && m[0].count == 1);
        let map_helper = explicit && !(own(&uid_map, ids.euid) && own(&gid_map, ids.egid));
        Ok(Plan { kinds, uid_map, gid_map, map_helper })
    }
}

fn flags_of(kinds: &[NsKind]) -> CloneFlags {
    kinds.iter().fold(CloneFlags::empty(), |f, k| f | k.flag())
}

fn map_text(m: &[IdMap]) -> String {
    m.iter().map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count)).collect()
}

/// Run `ns-exec` as the command line asked.
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let role = if cli.sub.is_some() { Role::Tool } else { Role::Wrapper };
    let k = cli.common.kernel("ns-exec").map_err(|e| (e, role))?;
    let r = match cli.sub {
        Some(Sub::Show(a)) => show(&k, &a),
        None if cli.run.enter.is_some() => enter(&k, &cli.run),
        None => create(&k, &cli.run),
    };
    r.map(|e| (e, role)).map_err(|e| (e, role))
}

fn need_command(a: &RunArgs) -> Result<()> {
    if a.command.is_empty() {
        return Err(Error::Usage(
            "no command given: put the command after the options, e.g. `ns-exec --pid --mount-proc -- sh`".into(),
        ));
    }
    Ok(())
}

/// Create namespaces and run the command in them.
pub fn create(k: &Kernel, a: &RunArgs) -> Result<Exit> {
    need_command(a)?;
    let ids = k.ids();
    let plan = a.plan(ids)?;
    if plan.kinds.is_empty() {
        k.note("no namespace asked for: the command runs in this process's namespaces");
    }
    if let Some(dir) = &a.rootfs {
        if !k.exists(&dir.join(".")) {
            return Err(Error::failed(
                format!("the root filesystem {} does not exist or is not a directory", dir.display()),
                "give --rootfs a directory holding a whole tree (e.g. one made by `img-pull unpack` or `busybox --install`)",
            ));
        }
    }
    let me = Pid::from_raw(std::process::id() as i32);
    let helper = if plan.map_helper { Some(start_map_helper(k, &plan, me)?) } else { None };

    let has = |n: NsKind| plan.kinds.contains(&n);
    let unshared = match plan.kinds.is_empty() {
        true => Ok(()),
        false => k
            .why("give the command its own copy of each resource named by the flags")
            .unshare(flags_of(&plan.kinds))
            .map_err(|e| unshare_hint(e.into(), &plan, ids.euid)),
    };
    if let Err(e) = unshared {
        if let Some(h) = helper {
            let _ = k.kill(h, Signal::SIGKILL);
            let _ = k.wait(h);
        }
        return Err(e);
    }
    if has(NsKind::User) {
        match helper {
            Some(h) => finish_map_helper(k, h)?,
            // From inside, even root has no CAP_SETGID in the parent namespace any more:
            // the kernel accepts our own gid_map only once setgroups is denied.
            None => write_maps(k, Path::new("/proc/self"), &plan, true)?,
        }
    }
    if has(NsKind::Time) {
        let text = format!("monotonic {} 0\nboottime {} 0\n", a.monotonic.unwrap_or(0), a.boottime.unwrap_or(0));
        k.why("shift the clocks the command will see; only possible before the first child exists")
            .write_file(Path::new("/proc/self/timens_offsets"), &text)?;
    }
    launch(k, a, has(NsKind::Pid), |k| child_setup(k, a, &plan))
}

fn unshare_hint(e: Error, plan: &Plan, euid: u32) -> Error {
    let hint = match e.errno() {
        Some(Errno::EPERM) if plan.kinds.contains(&NsKind::User) && euid != 0 => {
            "unprivileged user namespaces are disabled on this machine (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0), or run as root"
        }
        Some(Errno::EPERM) => {
            "creating namespaces needs CAP_SYS_ADMIN: run as root, or add --map-root to create a user namespace first, in which you are root"
        }
        Some(Errno::EINVAL) if plan.kinds.contains(&NsKind::Time) => {
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

fn write_maps(k: &Kernel, proc_dir: &Path, plan: &Plan, deny_setgroups: bool) -> Result<()> {
    if deny_setgroups && !plan.gid_map.is_empty() {
        k.why("without CAP_SETGID in the parent namespace, gid_map may be written only after giving up setgroups(2)")
            .write_file(&proc_dir.join("setgroups"), "deny")?;
    }
    if !plan.uid_map.is_empty() {
        k.why("say which uids inside stand for which uids outside; until then everyone is nobody (65534)")
            .write_file(&proc_dir.join("uid_map"), &map_text(&plan.uid_map))
            .hint(Errno::EPERM, "only your own uid may be mapped without CAP_SETUID: use --map-root, or run as root")?;
    }
    if !plan.gid_map.is_empty() {
        k.why("the same for group ids")
            .write_file(&proc_dir.join("gid_map"), &map_text(&plan.gid_map))
            .hint(Errno::EPERM, "only your own gid may be mapped without CAP_SETGID: use --map-root, or run as root")?;
    }
    Ok(())
}

/// Fork a helper that stays in the parent user namespace, waits for SIGUSR1 (sent once
/// we have unshared), then writes our maps from outside, with its capabilities there.
fn start_map_helper(k: &Kernel, plan: &Plan, target: Pid) -> Result<Pid> {
    k.why("hold SIGUSR1 so the map helper cannot miss it").sigprocmask(SigmaskHow::SIG_BLOCK, &[Signal::SIGUSR1])?;
    let plan = plan.clone();
    let h = k.fork_with(move |k| {
        if k.why("wait until the parent has created its user namespace").sigwait(&[Signal::SIGUSR1]).is_err() {
            return 1;
        }
        let dir = PathBuf::from(format!("/proc/{target}"));
        match write_maps(k, &dir, &plan, false) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ns-exec: {e}");
                1
            }
        }
    })?;
    Ok(h)
}

fn finish_map_helper(k: &Kernel, helper: Pid) -> Result<()> {
    k.why("tell the map helper our user namespace exists").kill(helper, Signal::SIGUSR1)?;
    let st = k.wait(helper)?;
    k.sigprocmask(SigmaskHow::SIG_UNBLOCK, &[Signal::SIGUSR1])?;
    if st != crate::kernel::Exited::Code(0) {
        return Err(Error::failed(
            "the helper could not write the uid/gid maps (see the trace above)",
            "mapping ids other than your own needs root (CAP_SETUID/CAP_SETGID in the parent namespace)",
        ));
    }
    Ok(())
}

/// What the first process inside does before exec: hostname, mounts, new root.
fn child_setup(k: &Kernel, a: &RunArgs, plan: &Plan) -> Result<()> {
    if let Some(h) = &a.hostname {
        k.why("only this UTS namespace sees the new name").sethostname(h)?;
    }
    if plan.kinds.contains(&NsKind::Mount) {
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
    match &a.rootfs {
        Some(dir) => {
            k.why("pivot_root needs the new root to be a mount point: bind the directory onto itself").mount(
                Some(&dir.to_string_lossy()),
                dir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            k.chdir(dir)?;
            if a.mount_proc {
                k.why("a /proc that shows this PID namespace, inside the new root")
                    .mount(Some("proc"), Path::new("proc"), Some("proc"), proc_flags, None)
                    .hint(Errno::EPERM, proc_hint)
                    .hint(Errno::ENOENT, "the new root has no /proc directory to mount on: create DIR/proc")?;
            }
            k.why("make the current directory the root mount; the old root is stacked on top of it")
                .pivot_root(Path::new("."), Path::new("."))
                .hint(Errno::EINVAL, "pivot_root refuses a root on a shared mount or a rootfs (initramfs) root; check that DIR is not itself the root of the machine")?;
            k.why("detach the old root: nothing of the host's tree stays reachable")
                .umount2(Path::new("."), MntFlags::MNT_DETACH)?;
            k.chdir(Path::new("/"))?;
        }
        None if a.mount_proc => {
            k.why("a /proc that shows this PID namespace (otherwise ps lists the host's processes)")
                .mount(Some("proc"), Path::new("/proc"), Some("proc"), proc_flags, None)
                .hint(Errno::EPERM, proc_hint)?;
        }
        None => {}
    }
    Ok(())
}

/// Start the command (directly, or under the tiny init), then wait or detach.
fn launch(k: &Kernel, a: &RunArgs, pid_ns: bool, setup: impl FnOnce(&Kernel) -> Result<()>) -> Result<Exit> {
    k.why("hold the signals we forward to the command until we wait for them").block_forwarded()?;
    let detach = a.detach;
    let prepare = |k: &Kernel| -> Result<()> {
        if detach {
            k.why("a detached command keeps no terminal and no pipe of ours").setsid()?;
            k.redirect_stdio(Path::new("/dev/null"))?;
        }
        setup(k)
    };
    if pid_ns && !a.init {
        k.note("the command will be PID 1 of its PID namespace; the host sees it under the PID fork() returns");
    }
    let pid = if a.init {
        k.fork_with(|k| match prepare(k) {
            Err(e) => {
                eprintln!("ns-exec: {e}");
                Exit::ToolFailed.code() as i32
            }
            Ok(()) => tiny_init(k, &a.command),
        })?
    } else {
        k.spawn(&a.command, |k| prepare(k).map_err(|e| e.to_string()))?.pid
    };
    if detach {
        println!("{pid}");
        return Ok(Exit::Ok);
    }
    Ok(Exit::of(k.wait_forwarding(pid, false)?))
}

/// PID 1's job: start the command, forward signals to it, reap every child that ends
/// (orphans are re-parented to PID 1, and a PID 1 that does not wait for them leaves
/// zombies), and exit with the command's status.
fn tiny_init(k: &Kernel, command: &[String]) -> i32 {
    k.note("tiny init: PID 1 starts the command, forwards signals, reaps zombies");
    let child = match k.spawn(command, |_| Ok(())) {
        Ok(s) => s.pid,
        Err(e) => {
            let e = Error::from(e);
            eprintln!("ns-exec: {e}");
            return crate::exit::code_for(&e, Role::Wrapper).code() as i32;
        }
    };
    match k.wait_forwarding(child, true) {
        Ok(st) => Exit::of(st).code() as i32,
        Err(e) => {
            eprintln!("ns-exec: {}", Error::from(e));
            Exit::ToolFailed.code() as i32
        }
    }
}

/// Join the namespaces of `--enter PID` and run the command there.
pub fn enter(k: &Kernel, a: &RunArgs) -> Result<Exit> {
    need_command(a)?;
    let target = a.enter.unwrap_or(0);
    let chosen = a.kinds();
    let proc = PathBuf::from(format!("/proc/{target}/ns"));
    if !k.exists(&proc) {
        return Err(Error::failed(
            format!("process {target} does not exist ({} is missing)", proc.display()),
            "give --enter the PID of a running process (ns-exec --detach prints one)",
        ));
    }
    // Without kind flags, join every kind in which the target differs from us.
    let kinds: Vec<NsKind> = if chosen.is_empty() {
        NsKind::ALL
            .into_iter()
            .filter(|n| {
                let theirs = k.readlink(&proc.join(n.proc_name()));
                let ours = k.readlink(&Path::new("/proc/self/ns").join(n.proc_name()));
                matches!((theirs, ours), (Ok(t), Ok(o)) if t != o)
            })
            .collect()
    } else {
        NsKind::ALL.into_iter().filter(|n| chosen.contains(n)).collect()
    };
    if kinds.is_empty() {
        k.note(format!("process {target} shares all its namespaces with us: nothing to join"));
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
    let pid_ns = kinds.contains(&NsKind::Pid);
    launch(k, a, pid_ns, |_| Ok(()))
}

/// One process's namespaces, as `ns-exec show --json` prints them.
#[derive(Debug, Serialize)]
pub struct NsRow {
    /// The process.
    pub pid: i32,
    /// Its command name (/proc/PID/comm).
    pub command: String,
    /// kind → inode number.
    pub namespaces: std::collections::BTreeMap<&'static str, u64>,
    /// The kinds whose inode differs from the reference process's (PID 1 by default).
    pub differs: Vec<&'static str>,
}

fn inode_of(link: &str) -> Option<u64> {
    // "net:[4026531840]"
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

fn ns_of(k: &Kernel, pid: i32) -> Option<std::collections::BTreeMap<&'static str, u64>> {
    let dir = PathBuf::from(format!("/proc/{pid}/ns"));
    let mut m = std::collections::BTreeMap::new();
    for n in NsKind::ALL {
        if let Some(i) = k.readlink(&dir.join(n.proc_name())).ok().as_deref().and_then(inode_of) {
            m.insert(n.proc_name(), i);
        }
    }
    (!m.is_empty()).then_some(m)
}

/// `ns-exec show`: the namespace table of the course's tp1.
pub fn show(k: &Kernel, a: &ShowArgs) -> Result<Exit> {
    let me = std::process::id() as i32;
    let (reference, init) = match ns_of(k, a.reference) {
        Some(ns) => (a.reference, ns),
        None => {
            // In some sandboxes even root may not look at PID 1 (no ptrace access).
            let ns = ns_of(k, me).ok_or_else(|| {
                Error::failed("cannot read /proc/self/ns", "is /proc mounted? (mount -t proc proc /proc)")
            })?;
            k.note(format!(
                "cannot read /proc/{}/ns (ptrace access denied): comparing with this process ({me}) instead",
                a.reference
            ));
            (me, ns)
        }
    };
    let pids: Vec<i32> = if a.pids.is_empty() {
        let mut all: Vec<i32> = k.read_dir(Path::new("/proc"))?.iter().filter_map(|n| n.parse().ok()).collect();
        all.sort();
        all
    } else {
        a.pids.clone()
    };
    let mut rows = Vec::new();
    for pid in pids {
        let Some(ns) = ns_of(k, pid) else {
            if !a.pids.is_empty() {
                return Err(Error::failed(
                    format!("cannot read the namespaces of process {pid} (/proc/{pid}/ns)"),
                    "check that the process exists; reading another user's process needs root",
                ));
            }
            continue;
        };
        let differs: Vec<&'static str> =
            ns.iter().filter(|(kind, ino)| init.get(*kind) != Some(ino)).map(|(kind, _)| *kind).collect();
        if a.pids.is_empty() && differs.is_empty() && pid != reference && pid != me {
            continue;
        }
        let command = k
            .read_file(&PathBuf::from(format!("/proc/{pid}/comm")))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        rows.push(NsRow { pid, command, namespaces: ns, differs });
    }
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    if a.json {
        serde_json::to_writer_pretty(&mut out, &rows).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(Exit::Ok);
    }
    let kinds = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
    write!(out, "{:>7}  {:<15}", "PID", "COMMAND")?;
    for kind in kinds {
        write!(out, " {kind:>11}")?;
    }
    writeln!(out)?;
    for r in &rows {
        write!(out, "{:>7}  {:<15}", r.pid, r.command)?;
        for kind in kinds {
            let cell = match r.namespaces.get(kind) {
                Some(i) if r.differs.contains(&kind) => format!("{i}*"),
                Some(i) => format!("{i} "),
                None => "- ".into(),
            };
            write!(out, " {cell:>11}")?;
        }
        writeln!(out)?;
    }
    if reference == me {
        writeln!(out, "* differs from the namespaces of ns-exec itself (PID {} could not be read)", a.reference)?;
    } else {
        writeln!(out, "* differs from PID {reference}")?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Kind, UserIds};

    const ROOT: UserIds = UserIds { uid: 0, euid: 0, gid: 0, egid: 0 };
    const USER: UserIds = UserIds { uid: 1000, euid: 1000, gid: 1000, egid: 1000 };

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut a = RunArgs { command: vec!["true".into()], ..RunArgs::default() };
        f(&mut a);
        a
    }

    #[test]
    fn implications() {
        let p = args(|a| {
            a.hostname = Some("box".into());
            a.mount_proc = true;
        })
        .plan(ROOT)
        .unwrap();
        assert_eq!(p.kinds, vec![NsKind::Mount, NsKind::Uts]);
        let p = args(|a| a.all = true).plan(USER).unwrap();
        assert_eq!(p.kinds.len(), 8);
        assert_eq!(p.uid_map, vec![IdMap { inside: 0, outside: 1000, count: 1 }]);
        assert!(!p.map_helper);
    }

    #[test]
    fn explicit_maps_need_the_helper() {
        let p = args(|a| a.uid_map = vec!["0:100000:65536".into()]).plan(ROOT).unwrap();
        assert!(p.map_helper);
        assert_eq!(p.kinds, vec![NsKind::User]);
        let p = args(|a| a.uid_map = vec!["0:1000:1".into()]).plan(USER).unwrap();
        assert!(!p.map_helper, "one's own id can be mapped from inside");
    }

    #[test]
    fn bad_maps_are_usage_errors() {
        for bad in ["0:1", "a:b:c", "0:1:0", "0:1:2:3", ""] {
            assert!(matches!(IdMap::parse(bad), Err(Error::Usage(_))), "{bad}");
        }
        let both = args(|a| {
            a.map_root = true;
            a.uid_map = vec!["0:0:1".into()];
        });
        assert!(matches!(both.plan(ROOT), Err(Error::Usage(_))));
    }

    #[test]
    fn inode_parsing() {
        assert_eq!(inode_of("net:[4026531840]"), Some(4026531840));
        assert_eq!(inode_of("garbage"), None);
    }

    #[test]
    fn dry_run_unshares_then_forks_then_sets_up_the_child() {
        let k = Kernel::recording("ns-exec");
        let a = args(|a| {
            a.pid = true;
            a.hostname = Some("box".into());
            a.mount_proc = true;
        });
        create(&k, &a).unwrap();
        let calls: Vec<(String, String)> = k
            .events()
            .into_iter()
            .filter(|e| e.kind == Kind::Syscall && !["access", "getresuid", "getresgid"].contains(&e.call.as_str()))
            .map(|e| (e.call, e.args.first().cloned().unwrap_or_default()))
            .collect();
        let names: Vec<&str> = calls.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["unshare", "rt_sigprocmask", "fork", "sethostname", "mount", "mount", "execve", "wait4"]);
        assert_eq!(calls[0].1, "CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID");
    }
}
