//! # Control groups: what `cg-limit` does, and what the kernel does for it
//!
//! Namespaces decide what a process can *see*; control groups (cgroups) decide how
//! much it can *use*. A cgroup is a set of processes that the kernel accounts and
//! limits together: their memory, CPU time, number of tasks, I/O. Every process is in
//! exactly one cgroup (per hierarchy), its children start in the same one, and there
//! is no system call to learn: the whole interface is a filesystem, *cgroupfs*,
//! usually mounted at `/sys/fs/cgroup` (cgroups(7),
//! <https://man7.org/linux/man-pages/man7/cgroups.7.html>).
//!
//! * `mkdir /sys/fs/cgroup/contlab/web` creates a cgroup; the kernel fills the new
//!   directory with *interface files* (`memory.max`, `cgroup.procs`...).
//! * writing into an interface file sets a limit: `echo 67108864 > memory.max`;
//! * writing a PID into `cgroup.procs` moves that process (all its threads) into the
//!   group; what it forks afterwards is born there;
//! * reading an interface file reports usage: `memory.current`, `cpu.stat`;
//! * `rmdir` removes a group, once it holds no process and no child group.
//!
//! That is all `docker run --memory 64m --cpus 0.5 --pids-limit 20` does for limits,
//! and all `cg-limit` does. Every one of those requests appears in its trace.
//!
//! ## Two versions: v1 (one tree per controller) and v2 (one unified tree)
//!
//! **cgroup v1** (Linux 2.6.24, 2008) mounts one *hierarchy* per controller (or per
//! group of controllers): `/sys/fs/cgroup/memory/`, `/sys/fs/cgroup/cpu/`,
//! `/sys/fs/cgroup/pids/`... each its own tree. A process has a place in each tree,
//! and those places are independent: to limit a command's memory and CPU, `cg-limit`
//! makes `contlab/NAME` in the memory tree **and** in the cpu tree (and cpuacct,
//! which on this course's machines is a separate hierarchy, to measure CPU time),
//! and writes the process into the `cgroup.procs` of each. The file names differ
//! per controller and carry their history: `memory.limit_in_bytes`,
//! `cpu.cfs_quota_us`. <https://docs.kernel.org/admin-guide/cgroup-v1/index.html>
//!
//! **cgroup v2** (Linux 4.5, 2016; the default of every major distribution since
//! 2021) has a single tree, mounted at `/sys/fs/cgroup`, where every controller
//! lives. A process is in one place. Two rules come with it
//! (<https://docs.kernel.org/admin-guide/cgroup-v2.html>):
//!
//! * **Controllers are handed down explicitly.** `cgroup.controllers` lists those a
//!   group may use; writing `+memory +pids` into a group's `cgroup.subtree_control`
//!   enables them *for its children*, whose `memory.*` and `pids.*` files appear
//!   then. `cg-limit` does it at the root and in `contlab/` before it makes a group.
//! * **No internal processes.** A group that hands controllers to children holds no
//!   process of its own (the root excepted): processes live in the leaves. The
//!   write into `cgroup.subtree_control` of a group that has processes fails with
//!   `EBUSY`. That is why `contlab/` only contains groups.
//!
//! Many machines are *hybrid*: the controllers are mounted as v1 hierarchies, and a
//! cgroup2 tree at `/sys/fs/cgroup/unified` only tracks processes for systemd (here
//! it holds just `hugetlb`). `cg-limit` starts by asking the kernel which setup it is
//! (see [`detect`]), with `statfs(2)`: the magic number of `/sys/fs/cgroup` is
//! `CGROUP2_SUPER_MAGIC` for v2 and `TMPFS_MAGIC` for a directory of v1 mounts, whose
//! places and controllers it then reads from `/proc/self/mountinfo`.
//!
//! ## What `cg-limit run --memory 64M --cpus 0.5 --pids 20 -- CMD` writes
//!
//! | step | cgroup v2 | cgroup v1 |
//! |---|---|---|
//! | hand controllers down | `+cpu +io +memory +pids` → `cgroup.subtree_control` of the root and of `contlab/` | (nothing: each hierarchy has its controller) |
//! | make the group | `mkdir contlab/run-PID` | `mkdir memory/contlab/run-PID`, `cpu/...`, `cpuacct/...`, `pids/...`, `blkio/...` |
//! | memory | `memory.max` = 67108864, `memory.swap.max` = 0 | `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` = 67108864 |
//! | CPU | `cpu.max` = `50000 100000` | `cpu.cfs_period_us` = 100000, `cpu.cfs_quota_us` = 50000 |
//! | tasks | `pids.max` = 20 | `pids.max` = 20 |
//! | join | the child writes `0` (itself) into `cgroup.procs`, then execs CMD | the same, in every hierarchy |
//! | after | read `memory.events`, `pids.events`; `rmdir` | read `memory.oom_control`, `pids.events`; `rmdir` each |
//!
//! The child joins **before** `execve(2)`: there is no instant when CMD runs outside
//! the limits. (It writes `0`, "the writing process", rather than its PID: the
//! kernel reads a PID in the writer's PID namespace, and `0` stays right even
//! inside a new one.) The groups live under a `contlab/` parent, left in place
//! between runs, so they are easy to find (`cg-limit ls`, `cg-limit top`).
//!
//! ## What goes wrong (and how the lab shows it)
//!
//! * **OOM kill.** When a group's memory reaches the limit, the kernel first reclaims
//!   (drops page cache, swaps if the group may); when that is not enough, the
//!   group's OOM killer picks a process and sends it `SIGKILL`. The command dies with
//!   status 137 (128 + 9), and `memory.events` (v2) / `memory.oom_control` (v1)
//!   counts an `oom_kill`. Without also limiting memory+swap, a machine with swap
//!   would slow the process down instead, hence `memory.swap.max` = 0 (v2) and
//!   `memory.memsw.limit_in_bytes` (v1: it must stay ≥ `memory.limit_in_bytes`, so
//!   raising a limit writes memsw first).
//! * **pids.max.** Once the group holds `pids.max` tasks, `fork(2)` and `clone(2)`
//!   fail with `EAGAIN` ("sh: Cannot fork", "Resource temporarily unavailable");
//!   `pids.events` counts each refusal as `max`. A fork bomb stops there.
//! * **CPU throttling.** With `cpu.max` = `50000 100000`, the group may run 50 ms of
//!   CPU time (summed over all CPUs) per 100 ms period; past it, its tasks are not
//!   scheduled until the next period. A busy loop gets about half a CPU; `cpu.stat`
//!   counts the periods (`nr_periods`), the throttled ones (`nr_throttled`) and the
//!   time spent waiting (`throttled_usec`; v1: `throttled_time` in ns). Latency
//!   suffers even when average use is low: a burst of work is stopped mid-period.
//!   <https://docs.kernel.org/scheduler/sched-bwc.html>
//! * **v1 cpuset.** A new v1 cpuset group starts with *empty* `cpuset.cpus` and
//!   `cpuset.mems`, and no task may join it (`ENOSPC`) until both are set: `cg-limit`
//!   copies them from the parent.
//! * **Leftovers.** A group with processes cannot be removed (`EBUSY`). When the
//!   command of `run` ends but some of its children still live, they are killed, as
//!   a container's processes are when its first process exits. `rm --kill` writes
//!   `1` into `cgroup.kill` (v2, Linux 5.14+), which kills the whole group at once,
//!   or sends `SIGKILL` to each PID of `cgroup.procs` until it stays empty.
//!
//!
//! ## Freezing (docker pause) and devices
//!
//! * **Freezing.** A frozen group's processes are not scheduled at all until it is
//!   thawed; they get no signal and notice nothing but the time that passed. v2:
//!   `cgroup.freeze` = 1, and the kernel says `frozen 1` in `cgroup.events` once every
//!   task has stopped. v1: the `freezer` hierarchy, `freezer.state` = `FROZEN`,
//!   which reads `FREEZING` until every task is stopped. (A v1 group is made in the
//!   freezer hierarchy only when it is first frozen; its processes are moved in.)
//!   <https://docs.kernel.org/admin-guide/cgroup-v1/freezer-subsystem.html>
//! * **Devices.** v1's `devices` controller keeps an allow-list per group: `a` into
//!   `devices.deny` forbids every device, then each `devices.allow` line (`c 1:3 rwm`:
//!   read, write and mknod of the character device 1:3, /dev/null) lets one back in.
//!   A process may still *see* a node in /dev; opening it fails with `EPERM`. cgroup v2
//!   has no such files: the same check is an eBPF program (`BPF_PROG_TYPE_CGROUP_DEVICE`)
//!   attached to the group; [`devices`] writes it from the same rules.
//!   <https://docs.kernel.org/admin-guide/cgroup-v1/devices.html>
//!
//! ## As a library: [`Group`]
//!
//! A runtime does not run `cg-limit`: it calls [`Group::create`] with [`Limits`]
//! (which removes what it made if any step fails), has its container's first process
//! [`Group::join`] before exec (writing `0` into each of [`Group::procs_files`]), and
//! later reads [`Group::stats`] and [`Group::events`], [`Group::freeze`]s,
//! [`Group::kill`]s and [`Group::remove`]s it. [`run_command`] is `cg-limit run`
//! made of those steps. No operation prints: `run`'s reports (an OOM kill, refused
//! forks) are [`Report`] values handed to the caller's function.
//!
//! The parts: [`limits`] holds the limits and their parsers, [`detect`] finds the
//! setup, [`v2`] and [`v1`] write the files, [`show`] reads them back, [`top`]
//! watches them; the command line is an adapter apart (`cli.rs`).

pub mod detect;
pub mod devices;
pub mod limits;
pub mod show;
pub mod top;
pub mod v1;
pub mod v2;

mod cli;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Hint, Result};
use crate::exit::Exit;
use crate::kernel::{Errno, Exited, Kernel, Mode, Pid, Signal, SysError};

pub use cli::{execute, Cli, Cmd, LimitArgs, RunArgs};
pub use detect::Setup;
pub use limits::{Cpus, DeviceKind, DeviceRule, Limits, Max};
pub use show::{Events, Sample, Stats};

/// The tool this lab is, as its trace and messages name it.
pub const TOOL: &str = "cg-limit";

/// The parent group every contlab group lives under (`/sys/fs/cgroup/contlab`).
pub const PARENT: &str = "contlab";

/// Run `cg-limit` as parsed by `cli`: the exit code, or the error.
pub fn run(cli: Cli) -> Result<Exit> {
    cli::run(cli)
}

/// A group's name under `contlab/`: segments separated by `/`, none empty, none `.`
/// or `..`, no leading `/`, no name that could be a kernel interface file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

/// Names in a cgroup directory that are interface files, not child groups.
const INTERFACE_FILES: [&str; 3] = ["tasks", "notify_on_release", "release_agent"];

/// Whether a directory entry of a cgroup is (probably) a child group: not a
/// `cgroup.*`/`<controller>.*` interface file, not a v1 `tasks` file.
pub(crate) fn is_group_entry(name: &str) -> bool {
    if INTERFACE_FILES.contains(&name) || name.starts_with("cgroup.") || name.starts_with("irq.") {
        return false;
    }
    !detect::KNOWN.iter().any(|c| name.strip_prefix(c).is_some_and(|r| r.starts_with('.')))
}

impl FromStr for GroupName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<GroupName, String> {
        if s.is_empty() {
            return Err("the group name is empty".into());
        }
        if s.starts_with('/') {
            return Err(format!("{s:?}: give the name under contlab/, without a leading /"));
        }
        for seg in s.split('/') {
            if seg.is_empty() {
                return Err(format!("{s:?} has an empty segment (a // or a trailing /)"));
            }
            if seg == "." || seg == ".." {
                return Err(format!("{s:?}: . and .. are not allowed (the group must stay under contlab/)"));
            }
            if seg.chars().any(|c| c.is_control()) {
                return Err(format!("{s:?}: control characters are not allowed"));
            }
            if seg.len() > 255 {
                return Err(format!("{s:?}: a segment is longer than 255 bytes"));
            }
            if !is_group_entry(seg) {
                return Err(format!(
                    "{s:?}: {seg:?} looks like a cgroup interface file (cgroup.*, memory.*, tasks...); choose another name"
                ));
            }
        }
        Ok(GroupName(s.to_string()))
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl GroupName {
    /// The name as given (`web`, `lab/db`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The transient name of `cg-limit run`: `run-PID`.
    pub fn transient() -> GroupName {
        GroupName(format!("run-{}", std::process::id()))
    }

    /// The group's directory in the tree rooted at `root`: `root/contlab/NAME`.
    pub fn dir_in(&self, root: &Path) -> PathBuf {
        root.join(PARENT).join(&self.0)
    }

    /// The directories from `root/contlab` down to the group's parent.
    pub fn ancestors_in(&self, root: &Path) -> Vec<PathBuf> {
        let mut v = vec![root.join(PARENT)];
        let segs: Vec<&str> = self.0.split('/').collect();
        for i in 1..segs.len() {
            v.push(root.join(PARENT).join(segs[..i].join("/")));
        }
        v
    }
}

/// What `create` (or `set`, `freeze`) made in this invocation, in order, so that a
/// failure can remove it again and never leave a half-made group behind. The
/// parents (`contlab/`, `contlab/lab` for `lab/db`) are removed too when they were
/// made here, unless another group has appeared in them meanwhile.
#[derive(Debug, Default)]
pub struct Made {
    /// Each directory made, and whether it is a parent (shared with other groups).
    dirs: Vec<(PathBuf, bool)>,
}

impl Made {
    /// Whether `dir` was made by this invocation (in a dry run: would have been).
    pub fn has(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|(d, _)| d == dir)
    }

    /// Make the parent group `dir` unless it exists (`access` then `mkdir`).
    pub(crate) fn ensure(&mut self, k: &Kernel, dir: &Path) -> Result<bool> {
        if k.why("make the parent group unless it exists").exists(dir) {
            return Ok(false);
        }
        match privileged(k.why("a parent group: contlab's groups live below it").mkdir(dir, 0o755)) {
            Ok(()) => {
                self.dirs.push((dir.to_path_buf(), true));
                Ok(true)
            }
            Err(e) if e.errno() == Some(Errno::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Make the group's own directory; it must not exist.
    pub(crate) fn group(&mut self, k: &Kernel, dir: &Path, name: &GroupName) -> Result<()> {
        match privileged(
            k.why("make the group: the kernel fills the new directory with its interface files").mkdir(dir, 0o755),
        ) {
            Ok(()) => {
                self.dirs.push((dir.to_path_buf(), false));
                Ok(())
            }
            Err(e) if e.errno() == Some(Errno::EEXIST) => Err(exists_error(name, dir)),
            Err(e) => Err(e),
        }
    }

    /// Remove what was made, last made first; return what could not be removed. A
    /// parent that another group now lives in (`EBUSY`, `ENOTEMPTY`) stays: it is
    /// shared.
    pub(crate) fn undo(&mut self, k: &Kernel) -> Vec<PathBuf> {
        let mut left = Vec::new();
        while let Some((d, parent)) = self.dirs.pop() {
            match k.why("undo: remove what was made before the failure").rmdir(&d) {
                Ok(()) => {}
                Err(e) if parent && matches!(e.errno, Errno::EBUSY | Errno::ENOTEMPTY) => {
                    k.note(format!("{} holds another group now: it stays", d.display()));
                }
                Err(_) => left.push(d),
            }
        }
        left
    }
}

fn exists_error(name: &GroupName, dir: &Path) -> Error {
    Error::failed(
        format!("the group {PARENT}/{name} already exists ({})", dir.display()),
        format!("change its limits with `{TOOL} set {name} ...`, or remove it with `{TOOL} rm {name} --kill`"),
    )
}

/// Roll back after a failure, and say what was left if anything was.
fn rolled_back(k: &Kernel, made: &mut Made, err: Error, name: &GroupName) -> Error {
    let left = made.undo(k);
    if left.is_empty() {
        return err;
    }
    let list: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
    Error::failed(
        format!("{err}\n  and the group could not be removed again: {}", list.join(", ")),
        format!("remove it with `{TOOL} rm {name} --kill`"),
    )
}

/// The hint for a cgroupfs request refused for lack of privileges.
pub fn root_hint() -> String {
    format!("cgroup files belong to root: run {TOOL} as root (sudo), or use a cgroup subtree delegated to your user")
}

/// Attach the usual hints to a cgroupfs request: EACCES/EPERM → run as root; EROFS →
/// cgroupfs is read-only here.
pub(crate) fn privileged<T>(r: std::result::Result<T, SysError>) -> Result<T> {
    let Err(e) = r else { return r.map_err(Error::from) };
    let root = root_hint();
    let ro = format!(
        "cgroupfs is mounted read-only here (inside a container?): run {TOOL} on the host or in a privileged container"
    );
    Err(e).hint(Errno::EACCES, &root).hint(Errno::EPERM, &root).hint(Errno::EROFS, &ro)
}

/// Write one interface file, with the usual hints.
pub(crate) fn write(k: &Kernel, path: &Path, value: &str, why: &str) -> Result<()> {
    privileged(k.why(why).write_file(path, value)).map(|_| ())
}

/// Read an interface file; `None` when it is missing or unreadable (the failed read
/// is in the trace).
pub(crate) fn read_opt(k: &Kernel, path: &Path) -> Option<String> {
    k.read_file(path).ok()
}

/// A number file (`memory.current`).
pub(crate) fn read_u64(k: &Kernel, path: &Path) -> Option<u64> {
    read_opt(k, path)?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`cpu.stat`, `memory.events`: `key value`
/// per line).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Whether the group at `dir` has the interface file `file`. Some files exist only
/// in non-root groups (`memory.swap.max`, `blkio.bfq.weight`), and in a dry run the
/// new group is not made: then the nearest existing non-root ancestor is asked, and
/// when there is none (everything up to `root` would be made), the file is assumed
/// to exist (and the assumption noted).
pub(crate) fn has_file(k: &Kernel, made: &Made, dir: &Path, root: &Path, file: &str) -> bool {
    let mut p = dir;
    if k.mode() == Mode::DryRun {
        while made.has(p) {
            p = p.parent().unwrap_or(root);
        }
        if p == root {
            k.note(format!("dry run: the group is not made, so assuming it would have {file}"));
            return true;
        }
    }
    k.exists(&p.join(file))
}

/// The names of the child groups of `dir`, recursively, as `prefix/name`.
pub(crate) fn walk(k: &Kernel, dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    let Ok(names) = k.read_dir(dir) else { return };
    for n in names.into_iter().filter(|n| is_group_entry(n)) {
        let rel = if prefix.is_empty() { n.clone() } else { format!("{prefix}/{n}") };
        out.insert(rel.clone());
        walk(k, &dir.join(&n), &rel, out);
    }
}

/// What differs between cgroup v1 and v2, behind one interface: [`Cgroups`] picks the
/// implementation, [`Group`] calls it.
pub trait Backend {
    /// `"v2"` or `"v1"`.
    fn version(&self) -> &'static str;
    /// Make the group (and its parents), set `limits`; return the group's directories.
    fn create(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>>;
    /// Change limits of an existing group; return the directories it got (v1: a
    /// hierarchy it was not in yet).
    fn set(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>>;
    /// The group's directories that exist (v2: one; v1: one per hierarchy).
    fn dirs(&self, k: &Kernel, g: &GroupName) -> Vec<PathBuf>;
    /// The directory named in messages about the group.
    fn main_dir(&self, g: &GroupName) -> PathBuf;
    /// The file that kills a whole group at once (`cgroup.kill`), if there is one.
    fn kill_file(&self, k: &Kernel, dirs: &[PathBuf]) -> Option<PathBuf>;
    /// Freeze the group's processes and wait until they all are; return the
    /// directories it got (v1: the freezer hierarchy, the first time).
    fn freeze(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf], made: &mut Made) -> Result<Vec<PathBuf>>;
    /// Let a frozen group run again.
    fn thaw(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf]) -> Result<()>;
    /// Limits, usage and events.
    fn stats(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf]) -> Stats;
    /// The counters `run` reports on: OOM kills, refused forks.
    fn events(&self, k: &Kernel, g: &GroupName) -> Events;
    /// Every group under contlab/, as names relative to it.
    fn list(&self, k: &Kernel) -> BTreeSet<String>;
    /// One sample of a group's counters for `top` (`None`: contlab/ itself).
    fn sample(&self, k: &Kernel, g: Option<&GroupName>) -> Sample;
    /// Whether contlab/ exists.
    fn has_parent(&self, k: &Kernel) -> bool;
}

/// The cgroup setup of this machine, with its implementation: detect, then dispatch.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// cgroup v2.
    V2(v2::Unified),
    /// cgroup v1 or hybrid.
    V1(v1::Legacy),
}

impl Cgroups {
    /// Detect the setup under `root` ([`detect::detect`]) and pick the implementation.
    pub fn detect(k: &Kernel, root: &Path) -> Result<Cgroups> {
        let _s = k.scope(TOOL);
        Ok(match detect::detect(k, root)? {
            Setup::Unified { root, .. } => Cgroups::V2(v2::Unified::new(root)),
            Setup::Legacy { hierarchies, .. } => Cgroups::V1(v1::Legacy::new(hierarchies)),
        })
    }

    /// The implementation.
    pub fn backend(&self) -> &dyn Backend {
        match self {
            Cgroups::V2(b) => b,
            Cgroups::V1(b) => b,
        }
    }
}

/// Every group under contlab/, as names relative to it (`web`, `lab/db`).
pub fn list(k: &Kernel, cg: &Cgroups) -> BTreeSet<String> {
    let _s = k.scope(TOOL);
    cg.backend().list(k)
}

/// The PIDs in the group (the union over its directories), sorted.
pub(crate) fn procs(k: &Kernel, dirs: &[PathBuf]) -> Result<Vec<i32>> {
    let mut all = BTreeSet::new();
    for d in dirs {
        let text = privileged(k.why("which processes are in the group").read_file(&d.join("cgroup.procs")))?;
        all.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    Ok(all.into_iter().collect())
}

/// Kill every process of the group: `cgroup.kill` when the kernel has it, else
/// SIGKILL to each PID, again until none is left (a process may fork meanwhile).
pub(crate) fn kill_all(k: &Kernel, cg: &dyn Backend, dirs: &[PathBuf]) -> Result<()> {
    if let Some(f) = cg.kill_file(k, dirs) {
        return write(k, &f, "1", "kill every process of the group (and of its children) at once, with SIGKILL");
    }
    if k.mode() == Mode::DryRun {
        for p in procs(k, dirs)? {
            let _ = k.kill(Pid::from_raw(p), Signal::SIGKILL);
        }
        return Ok(());
    }
    for _ in 0..100 {
        let pids = procs(k, dirs)?;
        if pids.is_empty() {
            return Ok(());
        }
        for p in pids {
            match k
                .why("no cgroup.kill here: kill the group's processes one by one")
                .kill(Pid::from_raw(p), Signal::SIGKILL)
            {
                Ok(()) | Err(SysError { errno: Errno::ESRCH, .. }) => {}
                Err(e) => return Err(privileged::<()>(Err(e)).unwrap_err()),
            }
        }
        k.sleep(Duration::from_millis(10))?;
    }
    Ok(())
}

/// Wait until the group holds no process (killed processes take a moment to exit).
pub(crate) fn wait_empty(k: &Kernel, dirs: &[PathBuf], name: &GroupName) -> Result<()> {
    if k.mode() == Mode::DryRun {
        k.note("dry run: nothing was killed, so not waiting for the group to empty");
        return Ok(());
    }
    let mut nap = Duration::from_millis(5);
    let mut waited = Duration::ZERO;
    loop {
        let left = procs(k, dirs)?;
        if left.is_empty() {
            return Ok(());
        }
        if waited > Duration::from_secs(10) {
            return Err(Error::failed(
                format!("the group {PARENT}/{name} still holds processes {left:?} after 10 s"),
                format!("they may be stuck in the kernel (state D in `ps`); try `{TOOL} rm NAME --kill` again later"),
            ));
        }
        k.sleep(nap)?;
        waited += nap;
        nap = (nap * 2).min(Duration::from_millis(200));
    }
}

/// Read `file` until `done` says so (the kernel's own view of a state change that
/// takes a moment: a freeze), for at most 10 s. A dry run changed nothing: it notes
/// that and does not wait.
pub(crate) fn wait_until(k: &Kernel, file: &Path, what: &str, done: impl Fn(&str) -> bool, hint: &str) -> Result<()> {
    if k.mode() == Mode::DryRun {
        k.note(format!("dry run: nothing was changed, so not waiting until {what}"));
        return Ok(());
    }
    let mut nap = Duration::from_millis(1);
    let mut waited = Duration::ZERO;
    loop {
        let text = privileged(k.why(format!("wait until {what}")).read_file(file))?;
        if done(&text) {
            return Ok(());
        }
        if waited > Duration::from_secs(10) {
            return Err(Error::failed(
                format!("{} still says {:?} after 10 s: not {what}", file.display(), text.trim()),
                hint,
            ));
        }
        k.sleep(nap)?;
        waited += nap;
        nap = (nap * 2).min(Duration::from_millis(100));
    }
}

/// Remove the group's directories (`rmdir`, retried briefly on EBUSY: a process that
/// was just killed may still be leaving).
pub(crate) fn remove_dirs(k: &Kernel, dirs: &[PathBuf]) -> Result<()> {
    for d in dirs.iter().rev() {
        let mut tries = 0;
        loop {
            match k.why("remove the group: it is empty, so the kernel frees it").rmdir(d) {
                Ok(()) => break,
                Err(e) if e.errno == Errno::EBUSY && tries < 10 && k.mode() == Mode::Live => {
                    tries += 1;
                    k.sleep(Duration::from_millis(20))?;
                }
                Err(e) => return Err(privileged::<()>(Err(e)).unwrap_err()),
            }
        }
    }
    Ok(())
}

/// A control group under `contlab/`, as a handle: its directories (one per v1
/// hierarchy), and what it was made with, so a failure right after [`Group::create`]
/// can remove it again ([`Group::discard`]).
#[derive(Debug)]
pub struct Group {
    cgroups: Cgroups,
    name: GroupName,
    dirs: Vec<PathBuf>,
    made: Made,
}

impl Group {
    /// `mkdir(2)` the group `name` (and its parents) and write `limits` (v2: after
    /// handing the controllers down). If any step fails, what was made is removed
    /// again (parents too, unless another group lives there now): nothing is left.
    pub fn create(k: &Kernel, cg: &Cgroups, name: &GroupName, limits: &Limits) -> Result<Group> {
        let _s = k.scope(TOOL);
        let mut made = Made::default();
        let dirs = cg.backend().create(k, name, limits, &mut made).map_err(|e| rolled_back(k, &mut made, e, name))?;
        Ok(Group { cgroups: cg.clone(), name: name.clone(), dirs, made })
    }

    /// The existing group `name`, or an error naming where it was looked for.
    pub fn open(k: &Kernel, cg: &Cgroups, name: &GroupName) -> Result<Group> {
        let _s = k.scope(TOOL);
        let dirs = cg.backend().dirs(k, name);
        if dirs.is_empty() {
            return Err(Error::failed(
                format!("no group {PARENT}/{name}: {} does not exist", cg.backend().main_dir(name).display()),
                format!("`{TOOL} ls` lists the groups under {PARENT}/; `{TOOL} create {name}` makes one"),
            ));
        }
        Ok(Group { cgroups: cg.clone(), name: name.clone(), dirs, made: Made::default() })
    }

    fn backend(&self) -> &dyn Backend {
        self.cgroups.backend()
    }

    /// Its name under contlab/.
    pub fn name(&self) -> &GroupName {
        &self.name
    }

    /// Its directories (v2: one; v1: one per hierarchy it is in).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The `cgroup.procs` files a process writes `0` ("the writing process") into to
    /// join the group, one per directory: what a container's first process does
    /// before exec ([`Group::join`]).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The child's side: write `0` into each of [`Group::procs_files`], so this
    /// process (and all it forks or execs afterwards) is in the group. `0` stays
    /// right inside a new PID namespace, where our PID is another number.
    pub fn join(&self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        for f in self.procs_files() {
            k.why("join the group before exec (0 = the writing process); the command and its children stay in it")
                .write_file(&f, "0")
                .map_err(|e| Error::Failed {
                    what: format!("joining the group {PARENT}/{}: {e}", self.name),
                    hint: None,
                })?;
        }
        Ok(())
    }

    /// Change the limits given (the others stay). On cgroup v1, a limit of a
    /// hierarchy the group is not in yet makes it there and moves its processes in;
    /// a failure removes what this call made.
    pub fn set(&mut self, k: &Kernel, limits: &Limits) -> Result<()> {
        let _s = k.scope(TOOL);
        let mut made = Made::default();
        let added = self
            .backend()
            .set(k, &self.name, limits, &mut made)
            .map_err(|e| rolled_back(k, &mut made, e, &self.name))?;
        self.dirs.extend(added);
        Ok(())
    }

    /// Move process `pid` (all its threads) into the group.
    pub fn add(&self, k: &Kernel, pid: i32) -> Result<()> {
        let _s = k.scope(TOOL);
        for d in &self.dirs {
            privileged(
                k.why("move the process (all its threads) into the group")
                    .write_file(&d.join("cgroup.procs"), &pid.to_string()),
            )
            .hint(Errno::ESRCH, &format!("there is no process {pid} (has it ended?)"))?;
        }
        Ok(())
    }

    /// The PIDs in the group, sorted.
    pub fn procs(&self, k: &Kernel) -> Result<Vec<i32>> {
        let _s = k.scope(TOOL);
        procs(k, &self.dirs)
    }

    /// Its limits, usage and events, as `cg-limit show` prints them.
    pub fn stats(&self, k: &Kernel) -> Stats {
        let _s = k.scope(TOOL);
        self.backend().stats(k, &self.name, &self.dirs)
    }

    /// Bytes read from and written to block devices by the group's processes, all
    /// devices summed: `io.stat` (`rbytes=`, `wbytes=`) on v2,
    /// `blkio.throttle.io_service_bytes_recursive` (`Read`, `Write`) on v1.
    pub fn io_bytes(&self, k: &Kernel) -> (u64, u64) {
        let _s = k.scope(TOOL);
        let (mut r, mut w) = (0, 0);
        let v2 = matches!(self.cgroups, Cgroups::V2(_));
        for d in &self.dirs {
            if v2 {
                for kv in k.read_file(&d.join("io.stat")).unwrap_or_default().split_whitespace() {
                    match kv.split_once('=') {
                        Some(("rbytes", v)) => r += v.parse::<u64>().unwrap_or(0),
                        Some(("wbytes", v)) => w += v.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            } else if d.components().any(|c| c.as_os_str().to_string_lossy().split(',').any(|n| n == "blkio")) {
                let t = k.read_file(&d.join("blkio.throttle.io_service_bytes_recursive")).unwrap_or_default();
                for l in t.lines() {
                    match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                        [_, "Read", v] => r += v.parse::<u64>().unwrap_or(0),
                        [_, "Write", v] => w += v.parse::<u64>().unwrap_or(0),
                        _ => {}
                    }
                }
            }
        }
        (r, w)
    }

    /// Page cache the kernel may drop first (`inactive_file` in v2's `memory.stat`,
    /// `total_inactive_file` in v1's): what `docker stats` leaves out of MEM USAGE.
    pub fn inactive_file(&self, k: &Kernel) -> u64 {
        let _s = k.scope(TOOL);
        let key = if matches!(self.cgroups, Cgroups::V2(_)) { "inactive_file" } else { "total_inactive_file" };
        self.dirs
            .iter()
            .filter_map(|d| k.read_file(&d.join("memory.stat")).ok())
            .find_map(|t| t.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok()))
            .unwrap_or(0)
    }

    /// What the kernel counted: OOM kills, forks refused by `pids.max`.
    pub fn events(&self, k: &Kernel) -> Events {
        let _s = k.scope(TOOL);
        self.backend().events(k, &self.name)
    }

    /// Kill every process of the group (`cgroup.kill`, or SIGKILL to each) and wait
    /// until it is empty.
    pub fn kill(&self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        kill_all(k, self.backend(), &self.dirs)?;
        wait_empty(k, &self.dirs, &self.name)
    }

    /// Freeze its processes (docker pause) and wait until every one is frozen.
    pub fn freeze(&mut self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        let mut made = Made::default();
        let added = self.backend().freeze(k, &self.name, &self.dirs, &mut made)?;
        self.dirs.extend(added);
        Ok(())
    }

    /// Let its processes run again (docker unpause).
    pub fn thaw(&self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        self.backend().thaw(k, &self.name, &self.dirs)
    }

    /// `rmdir(2)` the group's directories. It must have no child group, and no
    /// process unless `kill` (then they are killed first, and waited for).
    pub fn remove(&self, k: &Kernel, kill: bool) -> Result<()> {
        let _s = k.scope(TOOL);
        let (name, dirs) = (&self.name, &self.dirs);
        let mut children = BTreeSet::new();
        for d in dirs {
            walk(k, d, name.as_str(), &mut children);
        }
        if !children.is_empty() {
            let list: Vec<String> = children.into_iter().collect();
            return Err(Error::failed(
                format!("the group {PARENT}/{name} has child groups: {}", list.join(", ")),
                format!(
                    "remove them first (`{TOOL} rm CHILD --kill`): the kernel removes only groups without children"
                ),
            ));
        }
        let pids = procs(k, dirs)?;
        if !pids.is_empty() {
            if !kill {
                let shown: Vec<String> = pids.iter().take(10).map(|p| p.to_string()).collect();
                return Err(Error::failed(
                    format!(
                        "the group {PARENT}/{name} is not empty: {} process(es) in cgroup.procs ({}{}); not removing it",
                        pids.len(),
                        shown.join(" "),
                        if pids.len() > 10 { " ..." } else { "" }
                    ),
                    format!("stop them first, or kill them with `{TOOL} rm {name} --kill`"),
                ));
            }
            k.note(format!("killing the {} process(es) of {PARENT}/{name} before removing it", pids.len()));
            kill_all(k, self.backend(), dirs)?;
            wait_empty(k, dirs, name)?;
        }
        remove_dirs(k, dirs)
    }

    /// Remove what [`Group::create`] made (the group's directories, and the parents
    /// made with them), as a failure right after creating it must; an error names what
    /// could not be removed. A group from [`Group::open`] made nothing: nothing goes.
    pub fn discard(mut self, k: &Kernel) -> Result<()> {
        let _s = k.scope(TOOL);
        let left = self.made.undo(k);
        if left.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
        Err(Error::failed(
            format!("the group {PARENT}/{} could not be removed: {}", self.name, list.join(", ")),
            format!("remove it with `{TOOL} rm {} --kill`", self.name),
        ))
    }

    fn discard_after(mut self, k: &Kernel, err: Error) -> Error {
        let name = self.name.clone();
        rolled_back(k, &mut self.made, err, &name)
    }
}

/// `cg-limit run`: a command in a new group.
#[derive(Debug, Clone)]
pub struct Run {
    /// The group (it must not exist).
    pub name: GroupName,
    /// Its limits.
    pub limits: Limits,
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// Keep the group when the command ends (no report, no clean-up).
    pub keep: bool,
}

/// What [`run_command`] tells its caller as it happens, after the command ended.
#[derive(Debug)]
pub enum Report<'a> {
    /// The kernel's OOM killer killed `count` processes of the group.
    OomKilled {
        /// The group.
        group: &'a GroupName,
        /// Processes killed.
        count: u64,
        /// The memory limit asked for.
        limit: Option<Max>,
    },
    /// `fork(2)` failed `count` times because of `pids.max`.
    ForksRefused {
        /// The group.
        group: &'a GroupName,
        /// Forks refused.
        count: u64,
        /// The task limit asked for.
        limit: Option<Max>,
    },
    /// Processes left in the group after the command ended could not be killed.
    LeftoversNotKilled {
        /// The group.
        group: &'a GroupName,
        /// Why.
        error: Error,
    },
    /// The group could not be removed at the end.
    NotRemoved {
        /// The group.
        group: &'a GroupName,
        /// Why.
        error: Error,
    },
}

/// Run a command in a new group: create it with the limits, spawn the command,
/// which joins it before exec, wait (passing on the signals this process gets), then
/// report what the kernel counted, kill what is left and remove the group (unless
/// `keep`). Failures after the command ended do not change its status: they are
/// [`Report`]s. Returns how the command ended.
pub fn run_command(k: &Kernel, cg: &Cgroups, run: &Run, report: &mut dyn FnMut(Report<'_>)) -> Result<Exited> {
    let _s = k.scope(TOOL);
    let name = &run.name;
    k.note(format!("run {:?} in {PARENT}/{name} with {}", run.argv.join(" "), run.limits.describe()));
    // Blocked first: a Ctrl-C while the group is being made waits, and is passed on to
    // the command, instead of killing cg-limit halfway and leaving the group behind.
    k.why("hold the signals meant for the command, to pass them on while waiting").block_forwarded()?;
    let group = Group::create(k, cg, name, &run.limits)?;
    let child = match k.spawn(&run.argv, |ck| group.join(ck).map_err(|e| e.to_string())) {
        Ok(s) => s.pid,
        Err(f) => return Err(group.discard_after(k, f.into())),
    };
    let status = k.wait_forwarding(child, false);
    if run.keep {
        return Ok(status?);
    }
    if k.mode() == Mode::Live {
        let ev = group.events(k);
        if let Some(n) = ev.oom_kill.filter(|n| *n > 0) {
            k.note(format!(
                "oom_kill {n}: the group reached its memory limit and the kernel's OOM killer killed {n} process(es)"
            ));
            report(Report::OomKilled { group: name, count: n, limit: run.limits.memory });
        }
        if let Some(n) = ev.pids_max.filter(|n| *n > 0) {
            k.note(format!("pids.events max {n}: fork(2) failed {n} time(s) in the group"));
            report(Report::ForksRefused { group: name, count: n, limit: run.limits.pids });
        }
        let left = group.procs(k).unwrap_or_default();
        if !left.is_empty() {
            k.note(format!(
                "{} process(es) still in the group after the command ended: killing them, as a container's processes die with its first one",
                left.len()
            ));
            if let Err(error) = group.kill(k) {
                report(Report::LeftoversNotKilled { group: name, error });
            }
        }
    }
    if let Err(error) = remove_dirs(k, group.dirs()) {
        report(Report::NotRemoved { group: name, error });
    }
    Ok(status?)
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
