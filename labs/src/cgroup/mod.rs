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
//! The parts: [`limits`] parses the flags, [`detect`] finds the setup, [`v2`] and
//! [`v1`] write the files, [`show`] reads them back, [`top`] watches them.

pub mod detect;
pub mod limits;
pub mod show;
pub mod top;
pub mod v1;
pub mod v2;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::cli::CommonOpts;
use crate::error::{Error, Hint, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Errno, Kernel, Mode, Pid, Signal, SysError};

pub use detect::Setup;
pub use limits::{Cpus, Limits, Max};
pub use show::{Events, Sample, Stats};

/// The parent group every contlab group lives under (`/sys/fs/cgroup/contlab`).
pub const PARENT: &str = "contlab";

/// Put processes in control groups: limit their memory, CPU and number of tasks,
/// and watch what they use.
///
/// Works with cgroup v2 (one tree at /sys/fs/cgroup) and with cgroup v1 or hybrid
/// setups (one tree per controller), detected with statfs(2). Groups live under
/// `contlab/`. Every request made of the kernel is printed on stderr, strace-style;
/// the tool's own output goes to stdout.
///
/// Exit status: `run` exits with the command's status (128+N when it was killed by
/// signal N: 137 after an OOM kill), 125 when cg-limit itself failed, 126 when the
/// command cannot be run, 127 when it is not found. The other subcommands exit 1 on
/// failure. Usage errors (a bad limit, a missing command) exit 2.
#[derive(Parser, Debug)]
#[command(name = "cg-limit", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,

    /// Where cgroupfs is mounted. Tests point it at a fake tree in a temp dir.
    #[arg(long, global = true, value_name = "DIR", env = "CONTLAB_CGROUP_ROOT", default_value = "/sys/fs/cgroup")]
    pub cgroup_root: PathBuf,

    /// Trace options shared by every contlab tool.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run a command in a new group with limits, then remove the group.
    ///
    /// The child joins the group before it execs the command. Signals sent to
    /// cg-limit (Ctrl-C, kill) are passed on to the command. When the command ends,
    /// a line on stderr says whether it was OOM-killed or refused forks, leftover
    /// processes are killed, and the group is removed.
    Run(RunArgs),
    /// Create a group with limits; print its directory (one per v1 hierarchy).
    Create {
        /// The group, under contlab/ (`web`, `lab/db`).
        name: GroupName,
        /// The limits to set.
        #[command(flatten)]
        limits: Limits,
    },
    /// Change the limits of a group (those given; the others stay).
    Set {
        /// The group, under contlab/.
        name: GroupName,
        /// The limits to change.
        #[command(flatten)]
        limits: Limits,
    },
    /// Move a running process (all its threads) into a group.
    Add {
        /// The group, under contlab/.
        name: GroupName,
        /// The process to move.
        pid: i32,
    },
    /// Show a group's limits, usage (memory, CPU, throttling, tasks) and events.
    Show {
        /// The group, under contlab/.
        name: GroupName,
        /// Print JSON (numbers; limits are a number or "max"; null when not available).
        #[arg(long)]
        json: bool,
    },
    /// Watch the groups under contlab/, like systemd-cgtop: tasks, CPU, memory, I/O.
    ///
    /// When the view redraws on a terminal (stdout is a terminal, no --once or
    /// --iterations) and the trace would go to the same terminal, the trace is not
    /// shown, so it does not garble the screen: give --trace-file to keep it.
    Top(top::TopArgs),
    /// Remove a group. It must be empty, unless --kill.
    Rm {
        /// The group, under contlab/.
        name: GroupName,
        /// Kill the group's processes first (v2: write 1 to cgroup.kill; else SIGKILL
        /// each PID of cgroup.procs), wait until it is empty, then remove it.
        #[arg(long)]
        kill: bool,
    },
    /// List the groups under contlab/, one per line.
    Ls,
}

/// `cg-limit run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The limits of the group.
    #[command(flatten)]
    pub limits: Limits,
    /// Name the group contlab/NAME instead of the transient contlab/run-PID (it must
    /// not exist yet).
    #[arg(long, value_name = "NAME")]
    pub name: Option<GroupName>,
    /// Keep the group when the command ends (needs --name), to `show` it; remove it
    /// later with `cg-limit rm NAME --kill`. Nothing extra is printed.
    #[arg(long, requires = "name")]
    pub keep: bool,
    /// The command and its arguments, after `--`. Without one, cg-limit exits 2
    /// (usage error), before touching any cgroup.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "CMD")]
    pub cmd: Vec<String>,
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

/// What `create` made in this invocation, so that a failure can remove it again and
/// never leave a half-made group behind. The `contlab/` parents are kept: they are
/// shared with other groups.
#[derive(Debug, Default)]
pub struct Made {
    parents: Vec<PathBuf>,
    groups: Vec<PathBuf>,
}

impl Made {
    /// Whether `dir` was made by this invocation (in a dry run: would have been).
    pub fn has(&self, dir: &Path) -> bool {
        self.parents.iter().chain(&self.groups).any(|d| d == dir)
    }

    /// Make `dir` unless it exists (`access` then `mkdir`); `shared` marks the
    /// `contlab/` parent, which a rollback keeps.
    pub(crate) fn ensure(&mut self, k: &Kernel, dir: &Path, shared: bool) -> Result<bool> {
        if k.why("make the parent group unless it exists").exists(dir) {
            return Ok(false);
        }
        match privileged(k.why("a parent group: contlab's groups live below it").mkdir(dir, 0o755)) {
            Ok(()) => {
                if shared { &mut self.parents } else { &mut self.groups }.push(dir.to_path_buf());
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
                self.groups.push(dir.to_path_buf());
                Ok(())
            }
            Err(e) if e.errno() == Some(Errno::EEXIST) => Err(exists_error(name, dir)),
            Err(e) => Err(e),
        }
    }

    /// Remove what was made, deepest first; return what could not be removed.
    pub(crate) fn undo(&mut self, k: &Kernel) -> Vec<PathBuf> {
        let mut left = Vec::new();
        while let Some(d) = self.groups.pop() {
            if k.why("undo: remove the group made before the failure").rmdir(&d).is_err() {
                left.push(d);
            }
        }
        left
    }
}

fn exists_error(name: &GroupName, dir: &Path) -> Error {
    Error::failed(
        format!("the group {PARENT}/{name} already exists ({})", dir.display()),
        format!("change its limits with `cg-limit set {name} ...`, or remove it with `cg-limit rm {name} --kill`"),
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
        format!("remove it with `cg-limit rm {name} --kill`"),
    )
}

/// The hint for a cgroupfs request refused for lack of privileges.
pub const ROOT_HINT: &str =
    "cgroup files belong to root: run cg-limit as root (sudo), or use a cgroup subtree delegated to your user";

/// Attach the usual hints to a cgroupfs request: EACCES/EPERM → run as root; EROFS →
/// cgroupfs is read-only here.
pub(crate) fn privileged<T>(r: std::result::Result<T, SysError>) -> Result<T> {
    r.hint(Errno::EACCES, ROOT_HINT).hint(Errno::EPERM, ROOT_HINT).hint(
        Errno::EROFS,
        "cgroupfs is mounted read-only here (inside a container?): run cg-limit on the host or in a privileged container",
    )
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
/// implementation, the lab's flows ([`run`]) call it.
pub trait Backend {
    /// `"v2"` or `"v1"`.
    fn version(&self) -> &'static str;
    /// Make the group (and its parents), set `limits`; return the group's directories.
    fn create(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>>;
    /// Change limits of an existing group.
    fn set(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<()>;
    /// The group's directories that exist (v2: one; v1: one per hierarchy).
    fn dirs(&self, k: &Kernel, g: &GroupName) -> Vec<PathBuf>;
    /// The directory named in messages about the group.
    fn main_dir(&self, g: &GroupName) -> PathBuf;
    /// The file that kills a whole group at once (`cgroup.kill`), if there is one.
    fn kill_file(&self, k: &Kernel, dirs: &[PathBuf]) -> Option<PathBuf>;
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
pub enum Cgroups {
    /// cgroup v2.
    V2(v2::Unified),
    /// cgroup v1 or hybrid.
    V1(v1::Legacy),
}

impl Cgroups {
    /// Detect the setup under `root` ([`detect::detect`]) and pick the implementation.
    pub fn detect(k: &Kernel, root: &Path) -> Result<Cgroups> {
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

/// The PIDs in the group (the union over its directories), sorted.
pub fn procs(k: &Kernel, dirs: &[PathBuf]) -> Result<Vec<i32>> {
    let mut all = BTreeSet::new();
    for d in dirs {
        let text = privileged(k.why("which processes are in the group").read_file(&d.join("cgroup.procs")))?;
        all.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    Ok(all.into_iter().collect())
}

/// Kill every process of the group: `cgroup.kill` when the kernel has it, else
/// SIGKILL to each PID, again until none is left (a process may fork meanwhile).
pub fn kill_all(k: &Kernel, cg: &dyn Backend, dirs: &[PathBuf]) -> Result<()> {
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
pub fn wait_empty(k: &Kernel, dirs: &[PathBuf], name: &GroupName) -> Result<()> {
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
                "they may be stuck in the kernel (state D in `ps`); try `cg-limit rm NAME --kill` again later",
            ));
        }
        k.sleep(nap)?;
        waited += nap;
        nap = (nap * 2).min(Duration::from_millis(200));
    }
}

/// Remove the group's directories (`rmdir`, retried briefly on EBUSY: a process that
/// was just killed may still be leaving).
pub fn remove_dirs(k: &Kernel, dirs: &[PathBuf]) -> Result<()> {
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

/// The group's directories, or an error naming where it was looked for.
fn require(k: &Kernel, cg: &dyn Backend, name: &GroupName) -> Result<Vec<PathBuf>> {
    let dirs = cg.dirs(k, name);
    if dirs.is_empty() {
        return Err(Error::failed(
            format!("no group {PARENT}/{name}: {} does not exist", cg.main_dir(name).display()),
            format!("`cg-limit ls` lists the groups under {PARENT}/; `cg-limit create {name}` makes one"),
        ));
    }
    Ok(dirs)
}

/// Run `cg-limit` as parsed by `cli`: the exit code and the role (wrapper for `run`,
/// tool for the rest), or the error.
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let role = if matches!(cli.cmd, Cmd::Run(_)) { Role::Wrapper } else { Role::Tool };
    let mut common = cli.common.clone();
    if let Cmd::Top(t) = &cli.cmd {
        if t.hides_trace(&common) {
            common.quiet = true;
        }
    }
    let k = common.kernel("cg-limit").map_err(|e| (e, role))?;
    let mut out = std::io::stdout().lock();
    match execute(&k, &cli.cgroup_root, cli.cmd, &mut out) {
        Ok(exit) => Ok((exit, role)),
        Err(e) => Err((e, role)),
    }
}

/// Do one subcommand with kernel `k` on the tree at `root`, writing the tool's output
/// to `out`.
pub fn execute(k: &Kernel, root: &Path, cmd: Cmd, out: &mut dyn Write) -> Result<Exit> {
    let cgroups = Cgroups::detect(k, root)?;
    let cg = cgroups.backend();
    match cmd {
        Cmd::Run(a) => run_command(k, cg, a),
        Cmd::Create { name, limits } => {
            let mut made = Made::default();
            k.note(format!("create {PARENT}/{name} with {}", limits.describe()));
            let dirs = cg.create(k, &name, &limits, &mut made).map_err(|e| rolled_back(k, &mut made, e, &name))?;
            for d in dirs {
                writeln!(out, "{}", d.display())?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Set { name, limits } => {
            if limits.is_empty() {
                return Err(Error::Usage(
                    "cg-limit set: give at least one limit (--memory, --cpus, --pids, --io-weight, --cpuset)".into(),
                ));
            }
            require(k, cg, &name)?;
            let mut made = Made::default();
            cg.set(k, &name, &limits, &mut made).map_err(|e| rolled_back(k, &mut made, e, &name))?;
            Ok(Exit::Ok)
        }
        Cmd::Add { name, pid } => {
            if pid <= 0 {
                return Err(Error::Usage(format!("cg-limit add: {pid} is not a process ID")));
            }
            for d in require(k, cg, &name)? {
                privileged(
                    k.why("move the process (all its threads) into the group")
                        .write_file(&d.join("cgroup.procs"), &pid.to_string()),
                )
                .hint(Errno::ESRCH, &format!("there is no process {pid} (has it ended?)"))?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Show { name, json } => {
            let dirs = require(k, cg, &name)?;
            let stats = cg.stats(k, &name, &dirs);
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&stats).unwrap_or_default())?;
            } else {
                out.write_all(stats.text().as_bytes())?;
            }
            Ok(Exit::Ok)
        }
        Cmd::Top(t) => top::run(k, cg, &t, out),
        Cmd::Rm { name, kill } => {
            let dirs = require(k, cg, &name)?;
            remove(k, cg, &name, &dirs, kill)?;
            Ok(Exit::Ok)
        }
        Cmd::Ls => {
            for g in cg.list(k) {
                writeln!(out, "{g}")?;
            }
            Ok(Exit::Ok)
        }
    }
}

/// `rm`: refuse a group with children, or with processes unless `kill`; else empty
/// it and remove it.
fn remove(k: &Kernel, cg: &dyn Backend, name: &GroupName, dirs: &[PathBuf], kill: bool) -> Result<()> {
    let mut children = BTreeSet::new();
    for d in dirs {
        walk(k, d, name.as_str(), &mut children);
    }
    if !children.is_empty() {
        let list: Vec<String> = children.into_iter().collect();
        return Err(Error::failed(
            format!("the group {PARENT}/{name} has child groups: {}", list.join(", ")),
            "remove them first (`cg-limit rm CHILD --kill`): the kernel removes only groups without children",
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
                format!("stop them first, or kill them with `cg-limit rm {name} --kill`"),
            ));
        }
        k.note(format!("killing the {} process(es) of {PARENT}/{name} before removing it", pids.len()));
        kill_all(k, cg, dirs)?;
        wait_empty(k, dirs, name)?;
    }
    remove_dirs(k, dirs)
}

/// `cg-limit run`: create, spawn joined, wait forwarding signals, report, remove.
fn run_command(k: &Kernel, cg: &dyn Backend, a: RunArgs) -> Result<Exit> {
    let name = a.name.clone().unwrap_or_else(GroupName::transient);
    let mut made = Made::default();
    k.note(format!("run {:?} in {PARENT}/{name} with {}", a.cmd.join(" "), a.limits.describe()));
    // Blocked first: a Ctrl-C while the group is being made waits, and is passed on to
    // the command, instead of killing cg-limit halfway and leaving the group behind.
    k.why("hold the signals meant for the command, to pass them on while waiting").block_forwarded()?;
    let dirs = cg.create(k, &name, &a.limits, &mut made).map_err(|e| rolled_back(k, &mut made, e, &name))?;
    let procs_files: Vec<PathBuf> = dirs.iter().map(|d| d.join("cgroup.procs")).collect();
    let spawned = k.spawn(&a.cmd, |ck| {
        for f in &procs_files {
            ck.why("join the group before exec (0 = the writing process); the command and its children stay in it")
                .write_file(f, "0")
                .map_err(|e| format!("joining the group {PARENT}/{name}: {e}"))?;
        }
        Ok(())
    });
    let child = match spawned {
        Ok(s) => s.pid,
        Err(f) => return Err(rolled_back(k, &mut made, f.into(), &name)),
    };
    let status = k.wait_forwarding(child, false);
    if a.keep {
        return Ok(Exit::of(status?));
    }
    if k.mode() == Mode::Live {
        report_events(k, cg, &name, &a.limits);
        let left = procs(k, &dirs).unwrap_or_default();
        if !left.is_empty() {
            k.note(format!(
                "{} process(es) still in the group after the command ended: killing them, as a container's processes die with its first one",
                left.len()
            ));
            if let Err(e) = kill_all(k, cg, &dirs).and_then(|_| wait_empty(k, &dirs, &name)) {
                eprintln!("cg-limit: {e}");
            }
        }
    }
    if let Err(e) = remove_dirs(k, &dirs) {
        eprintln!("cg-limit: could not remove the group {PARENT}/{name}: {e}\n  hint: remove it with `cg-limit rm {name} --kill`");
    }
    Ok(Exit::of(status?))
}

/// After `run`: say on stderr when the kernel OOM-killed or refused forks.
fn report_events(k: &Kernel, cg: &dyn Backend, name: &GroupName, limits: &Limits) {
    let ev = cg.events(k, name);
    if let Some(n) = ev.oom_kill.filter(|n| *n > 0) {
        let lim = limits.memory.map(|m| format!(" ({})", m.human_bytes())).unwrap_or_default();
        k.note(format!(
            "oom_kill {n}: the group reached its memory limit and the kernel's OOM killer killed {n} process(es)"
        ));
        eprintln!("cg-limit: the group {PARENT}/{name} reached its memory limit{lim}: the kernel's OOM killer killed {n} process(es) (SIGKILL, exit 137)");
    }
    if let Some(n) = ev.pids_max.filter(|n| *n > 0) {
        let lim = limits.pids.map(|m| format!(" ({m})")).unwrap_or_default();
        k.note(format!("pids.events max {n}: fork(2) failed {n} time(s) in the group"));
        eprintln!("cg-limit: the group {PARENT}/{name} reached its task limit{lim}: fork()/clone() failed {n} time(s) with EAGAIN");
    }
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
