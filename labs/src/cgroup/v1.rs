//! cgroup v1: one tree per hierarchy; a group is a directory in each.
//! <https://docs.kernel.org/admin-guide/cgroup-v1/index.html>
//!
//! The hierarchies used, when mounted: `memory`, `cpu`, `cpuacct` (CPU time is
//! accounted there, and on this course's machines it is a separate mount), `pids`,
//! `blkio` (I/O bytes for `top`), `cpuset` when `--cpuset` is given, `devices` when
//! device rules are, and `freezer` from the first freeze on. A group `contlab/web`
//! is `memory/contlab/web`, `cpu/contlab/web`, ... and a process joins it by being
//! written into the `cgroup.procs` of each.
//!
//! Files, per hierarchy (<https://docs.kernel.org/admin-guide/cgroup-v1/memory.html>,
//! <https://docs.kernel.org/scheduler/sched-bwc.html>,
//! <https://docs.kernel.org/admin-guide/cgroup-v1/pids.html>,
//! <https://docs.kernel.org/admin-guide/cgroup-v1/cpusets.html>,
//! <https://docs.kernel.org/admin-guide/cgroup-v1/blkio-controller.html>):
//!
//! * memory: `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes`
//!   (memory+swap, which must stay ≥ the former); `-1` lifts them.
//! * cpu: `cpu.cfs_period_us` and `cpu.cfs_quota_us` (`-1`: no quota).
//! * pids: `pids.max`.
//! * blkio: `blkio.weight` (10..1000, default 500: the CFQ scheduler, gone since
//!   Linux 5.0) or `blkio.bfq.weight` (1..1000, default 100: the BFQ scheduler). Both
//!   exist only below the root of the hierarchy, and only act on disks whose I/O
//!   scheduler is theirs (`/sys/block/DEV/queue/scheduler`); with neither file,
//!   `--io-weight` fails with a message saying so.
//! * cpuset: `cpuset.cpus` and `cpuset.mems` start empty in a new group, and a task
//!   can join only once both are set; they are copied from the parent.
//! * devices: `devices.deny` `a` (nothing), then one `devices.allow` line per rule
//!   (<https://docs.kernel.org/admin-guide/cgroup-v1/devices.html>).
//! * freezer: `freezer.state` `FROZEN` / `THAWED`; it reads `FREEZING` until every
//!   task has stopped (<https://docs.kernel.org/admin-guide/cgroup-v1/freezer-subsystem.html>).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::detect::Hierarchy;
use super::limits::{Limits, Max};
use super::show::{CpuNow, Events, LimitsNow, MemoryNow, PidsNow, Sample, Stats};
use super::{
    has_file, keyed, privileged, read_opt, read_u64, wait_until, walk, write, Backend, GroupName, Made, PARENT,
};
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

/// The controllers whose hierarchies cg-limit uses (a group is in the cpuset,
/// devices and freezer hierarchies only when asked for).
const USED: [&str; 8] = ["memory", "cpu", "cpuacct", "pids", "blkio", "cpuset", "devices", "freezer"];

/// The hierarchies every group is made in (when mounted), to account its use.
const ACCOUNTING: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "blkio"];

/// The cgroup v1 implementation, over the hierarchies found by [`super::detect`].
#[derive(Debug, Clone)]
pub struct Legacy {
    hierarchies: Vec<Hierarchy>,
}

impl Legacy {
    /// The v1 implementation over `hierarchies` (from /proc/self/mountinfo, or a fake
    /// tree in tests).
    pub fn new(hierarchies: Vec<Hierarchy>) -> Legacy {
        Legacy { hierarchies }
    }

    /// Where controller `c` is mounted.
    fn mount(&self, c: &str) -> Option<&Path> {
        self.hierarchies.iter().find(|h| h.controllers.iter().any(|x| x == c)).map(|h| h.mount.as_path())
    }

    /// The mounts of `ctrls` that exist, each once (co-mounted controllers share one).
    fn mounts(&self, ctrls: &[&str]) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for c in ctrls {
            if let Some(m) = self.mount(c) {
                if !v.iter().any(|x| x == m) {
                    v.push(m.to_path_buf());
                }
            }
        }
        v
    }

    fn gdir(&self, c: &str, g: &GroupName) -> Option<PathBuf> {
        self.mount(c).map(|m| g.dir_in(m))
    }

    fn is_cpuset(&self, mount: &Path) -> bool {
        self.mount("cpuset") == Some(mount)
    }

    /// Check that every limit asked for has its hierarchy, before anything is made.
    fn check(&self, limits: &Limits) -> Result<()> {
        let needed = [
            ("memory", "--memory", limits.memory.is_some()),
            ("cpu", "--cpus", limits.cpus.is_some() || limits.cpu_shares.is_some()),
            ("pids", "--pids", limits.pids.is_some()),
            ("blkio", "--io-weight", limits.io_weight.is_some()),
            ("cpuset", "--cpuset", limits.cpuset.is_some()),
            ("devices", "--allow-device", limits.devices.is_some()),
        ];
        let mounted: Vec<String> = self.hierarchies.iter().map(|h| h.controllers.join(",")).collect();
        for (c, flag, asked) in needed {
            if asked && self.mount(c).is_none() {
                return Err(Error::failed(
                    format!("{flag}: no cgroup v1 hierarchy has the {c} controller (mounted: {})", mounted.join(" ")),
                    "mount it (`mount -t cgroup -o CONTROLLER cgroup /sys/fs/cgroup/CONTROLLER`), or drop that limit",
                ));
            }
        }
        Ok(())
    }

    /// The value a directory's parent has for `file`, walking up past directories made
    /// in this invocation (in a dry run they do not exist; their value would be the same).
    fn inherited(&self, k: &Kernel, made: &Made, dir: &Path, file: &str) -> Result<String> {
        let mut p = dir.parent().unwrap_or(dir);
        while made.has(p) {
            p = p.parent().unwrap_or(p);
        }
        let v = privileged(k.why("copy the parent's value: a new v1 cpuset starts empty").read_file(&p.join(file)))?;
        Ok(v.trim().to_string())
    }

    /// Give a new v1 cpuset group its cpus and mems; no task can join before.
    fn init_cpuset(&self, k: &Kernel, made: &Made, dir: &Path, cpus: Option<&str>) -> Result<()> {
        let cpus = match cpus {
            Some(c) => c.to_string(),
            None => self.inherited(k, made, dir, "cpuset.cpus")?,
        };
        write(k, &dir.join("cpuset.cpus"), &cpus, "the CPUs of this cpuset; a task cannot join a cpuset without CPUs")
            .hint(Errno::EINVAL, "those CPUs must exist and be in the parent's cpuset.cpus")?;
        let mems = self.inherited(k, made, dir, "cpuset.mems")?;
        write(
            k,
            &dir.join("cpuset.mems"),
            &mems,
            "the memory nodes of this cpuset; a task cannot join a cpuset without them",
        )
    }

    /// Make `g` (and its parents) in the hierarchy at `mount`.
    fn make_in(&self, k: &Kernel, mount: &Path, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<PathBuf> {
        let cpuset = self.is_cpuset(mount);
        for a in &g.ancestors_in(mount) {
            let new = made.ensure(k, a)?;
            if cpuset {
                let empty = new || read_opt(k, &a.join("cpuset.mems")).is_some_and(|m| m.trim().is_empty());
                if empty {
                    self.init_cpuset(k, made, a, None)?;
                }
            }
        }
        let dir = g.dir_in(mount);
        made.group(k, &dir, g)?;
        if cpuset {
            self.init_cpuset(k, made, &dir, limits.cpuset.as_deref())?;
        }
        Ok(dir)
    }

    fn apply(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &Made) -> Result<()> {
        if let (Some(m), Some(dir)) = (limits.memory, self.gdir("memory", g)) {
            let v = match m {
                Max::Max => "-1".to_string(),
                Max::Value(n) => n.to_string(),
            };
            let limit = dir.join("memory.limit_in_bytes");
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            let root = self.mount("memory").unwrap_or(Path::new("/"));
            let has_memsw = k
                .why("is swap accounted (memory.memsw.* files)? then memory+swap gets the same limit")
                .exists(&root.join("memory.memsw.limit_in_bytes"));
            let why = "the memory limit: past it the kernel reclaims, then its OOM killer kills a process of the group";
            let (sw, swap_why) = match limits.memory_swap {
                None => (v.clone(), "memory+swap limit = the memory limit: swap does not let the group escape it"),
                Some(Max::Max) => ("-1".to_string(), "memory+swap: no limit, the group may swap as much as it likes"),
                Some(Max::Value(n)) => {
                    (n.to_string(), "memory+swap limit (--memory-swap): swap past the memory limit up to it")
                }
            };
            match privileged(k.why(why).write_file(&limit, &v)) {
                Ok(_) => {
                    if has_memsw {
                        write(k, &memsw, &sw, swap_why)?;
                    } else if limits.memory_swap.is_some() {
                        k.note("this kernel does not account swap (no memory.memsw.* files): the memory+swap limit is not set");
                    }
                }
                Err(e) if e.errno() == Some(Errno::EINVAL) && has_memsw => {
                    k.note("memory.limit_in_bytes may not exceed memory.memsw.limit_in_bytes: raising memsw first");
                    write(k, &memsw, &sw, swap_why)?;
                    write(k, &limit, &v, why)?;
                }
                Err(e) => return Err(e),
            }
        }
        if let (Some(c), Some(dir)) = (limits.cpus, self.gdir("cpu", g)) {
            let (period, quota) = c.v1();
            write(
                k,
                &dir.join("cpu.cfs_period_us"),
                &period,
                "the CFS bandwidth period: the quota is granted anew every period",
            )?;
            write(
                k,
                &dir.join("cpu.cfs_quota_us"),
                &quota,
                "CPU time the group may use per period, summed over all CPUs; past it, it is throttled",
            )?;
        }
        if let (Some(w), Some(dir)) = (limits.cpu_shares, self.gdir("cpu", g)) {
            write(
                k,
                &dir.join("cpu.shares"),
                &w.to_string(),
                "the group's CPU weight against its siblings (1024 by default), when CPUs are contended",
            )?;
        }
        if let (Some(p), Some(dir)) = (limits.pids, self.gdir("pids", g)) {
            write(
                k,
                &dir.join("pids.max"),
                &p.to_string(),
                "fork() and clone() fail with EAGAIN once the group has this many tasks",
            )?;
        }
        if let (Some(w), Some(dir), Some(root)) = (limits.io_weight, self.gdir("blkio", g), self.mount("blkio")) {
            // Both files exist only below the root of the hierarchy.
            let file = if has_file(k, made, &dir, root, "blkio.weight") {
                "blkio.weight"
            } else if has_file(k, made, &dir, root, "blkio.bfq.weight") {
                k.note(
                    "blkio.bfq.weight only acts on disks whose I/O scheduler is bfq (/sys/block/DEV/queue/scheduler)",
                );
                "blkio.bfq.weight"
            } else {
                return Err(Error::failed(
                    format!(
                        "io weight not available: neither blkio.weight (the CFQ scheduler, removed in Linux 5.0) nor \
                         blkio.bfq.weight (the BFQ scheduler) exists in {}",
                        dir.display()
                    ),
                    "load the BFQ scheduler (`modprobe bfq`) and select it for the disk (/sys/block/DEV/queue/scheduler), or drop --io-weight",
                ));
            };
            let (v, why) = if file == "blkio.weight" {
                let v = (u64::from(w) * 5).clamp(10, 1000);
                (v, "this group's share of disk time; CFQ weights run 10..1000 (default 500): the weight is scaled x5")
            } else {
                let v = u64::from(w).clamp(1, 1000);
                (v, "this group's share of disk time; BFQ weights run 1..1000 (default 100)")
            };
            write(k, &dir.join(file), &v.to_string(), why)?;
        }
        if let (Some(c), Some(dir)) = (&limits.cpuset, self.gdir("cpuset", g)) {
            if !made.has(&dir) {
                write(k, &dir.join("cpuset.cpus"), c, "the CPUs the group's tasks may run on")
                    .hint(Errno::EINVAL, "those CPUs must exist and be in the parent's cpuset.cpus")?;
            }
        }
        if let (Some(rules), Some(dir)) = (&limits.devices, self.gdir("devices", g)) {
            write(k, &dir.join("devices.deny"), "a", "forbid every device first: the rules below let some back in")?;
            for r in rules {
                write(k, &dir.join("devices.allow"), &r.to_string(), "allow this device (TYPE MAJOR:MINOR ACCESS)")
                    .hint(Errno::EPERM, "a group may not allow a device its parent denies")?;
            }
        }
        Ok(())
    }

    /// Put the group in the hierarchy of `c` if it is not there yet (made, then its
    /// processes moved in, again until none is missing: one may fork meanwhile).
    fn join_hierarchy(
        &self,
        k: &Kernel,
        c: &str,
        g: &GroupName,
        dirs: &[PathBuf],
        made: &mut Made,
    ) -> Result<(PathBuf, Option<PathBuf>)> {
        let (Some(mount), Some(dir)) = (self.mount(c).map(Path::to_path_buf), self.gdir(c, g)) else {
            let mounted: Vec<String> = self.hierarchies.iter().map(|h| h.controllers.join(",")).collect();
            return Err(Error::failed(
                format!("no cgroup v1 hierarchy has the {c} controller (mounted: {})", mounted.join(" ")),
                format!("mount it (`mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}`)"),
            ));
        };
        if dirs.contains(&dir) {
            return Ok((dir, None));
        }
        k.note(format!("{PARENT}/{g} is not in the {c} hierarchy yet: making it there and moving its processes in"));
        self.make_in(k, &mount, g, &Limits::default(), made)?;
        let dry = k.mode() == crate::kernel::Mode::DryRun;
        for _ in 0..100 {
            let have: BTreeSet<i32> =
                if dry { BTreeSet::new() } else { super::procs(k, std::slice::from_ref(&dir))?.into_iter().collect() };
            let missing: Vec<i32> = super::procs(k, dirs)?.into_iter().filter(|p| !have.contains(p)).collect();
            if missing.is_empty() {
                break;
            }
            for pid in missing {
                write(
                    k,
                    &dir.join("cgroup.procs"),
                    &pid.to_string(),
                    "move the group's process into this hierarchy too",
                )
                .or_else(|e| if e.errno() == Some(Errno::ESRCH) { Ok(()) } else { Err(e) })?;
            }
            if dry {
                break;
            }
        }
        Ok((dir.clone(), Some(dir)))
    }

    fn hierarchy_dirs(&self, g: Option<&GroupName>) -> Vec<(PathBuf, PathBuf)> {
        self.mounts(&USED)
            .into_iter()
            .map(|m| {
                let d = match g {
                    Some(g) => g.dir_in(&m),
                    None => m.join(PARENT),
                };
                (m, d)
            })
            .collect()
    }

    /// The group's directory for controller `c`, when it exists among `dirs`.
    fn pick(&self, c: &str, g: &GroupName, dirs: &[PathBuf]) -> Option<PathBuf> {
        self.gdir(c, g).filter(|d| dirs.contains(d))
    }
}

impl Backend for Legacy {
    fn version(&self) -> &'static str {
        "v1"
    }

    fn create(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>> {
        self.check(limits)?;
        let mut ctrls: Vec<&str> = ACCOUNTING.to_vec();
        if limits.cpuset.is_some() {
            ctrls.push("cpuset");
        }
        if limits.devices.is_some() {
            ctrls.push("devices");
        }
        let mounts = self.mounts(&ctrls);
        for m in &mounts {
            let d = g.dir_in(m);
            if k.why("the group must not exist yet, in any hierarchy").exists(&d) {
                return Err(super::exists_error(g, &d));
            }
        }
        let mut dirs = Vec::new();
        for m in &mounts {
            dirs.push(self.make_in(k, m, g, limits, made)?);
        }
        self.apply(k, g, limits, made)?;
        Ok(dirs)
    }

    fn set(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>> {
        self.check(limits)?;
        let existing = self.dirs(k, g);
        let asked = [
            ("memory", limits.memory.is_some()),
            ("cpu", limits.cpus.is_some() || limits.cpu_shares.is_some()),
            ("pids", limits.pids.is_some()),
            ("blkio", limits.io_weight.is_some()),
            ("cpuset", limits.cpuset.is_some()),
            ("devices", limits.devices.is_some()),
        ];
        // A limit in a hierarchy the group is not in yet: make it there and move the
        // group's processes in.
        let mut added = Vec::new();
        for (c, on) in asked {
            let Some(dir) = self.gdir(c, g).filter(|_| on) else { continue };
            if existing.contains(&dir) || added.contains(&dir) {
                continue;
            }
            k.note(format!("{PARENT}/{g} is not in the {c} hierarchy yet: making it there"));
            let m = self.mount(c).map(Path::to_path_buf).unwrap_or_default();
            added.push(self.make_in(k, &m, g, limits, made)?);
        }
        if !added.is_empty() {
            for pid in super::procs(k, &existing)? {
                for d in &added {
                    write(
                        k,
                        &d.join("cgroup.procs"),
                        &pid.to_string(),
                        "move the group's process into its new hierarchy too",
                    )
                    .or_else(|e| if e.errno() == Some(Errno::ESRCH) { Ok(()) } else { Err(e) })?;
                }
            }
        }
        self.apply(k, g, limits, made)?;
        Ok(added)
    }

    fn dirs(&self, k: &Kernel, g: &GroupName) -> Vec<PathBuf> {
        self.hierarchy_dirs(Some(g))
            .into_iter()
            .filter(|(_, d)| k.why("is the group in this hierarchy?").exists(d))
            .map(|(_, d)| d)
            .collect()
    }

    fn main_dir(&self, g: &GroupName) -> PathBuf {
        let m = self.mounts(&USED);
        g.dir_in(m.first().map(PathBuf::as_path).unwrap_or(Path::new("/sys/fs/cgroup/memory")))
    }

    fn kill_file(&self, _k: &Kernel, _dirs: &[PathBuf]) -> Option<PathBuf> {
        None // cgroup.kill is a cgroup v2 file
    }

    fn freeze(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf], made: &mut Made) -> Result<Vec<PathBuf>> {
        let (dir, added) = self.join_hierarchy(k, "freezer", g, dirs, made)?;
        write(k, &dir.join("freezer.state"), "FROZEN", "stop scheduling every task of the group")?;
        wait_until(
            k,
            &dir.join("freezer.state"),
            "every task of the group is frozen (FROZEN, not FREEZING)",
            |t| t.trim() == "FROZEN",
            "a task stuck in the kernel (state D in `ps`) cannot be frozen; try again, or thaw it",
        )?;
        Ok(added.into_iter().collect())
    }

    fn thaw(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf]) -> Result<()> {
        match self.pick("freezer", g, dirs) {
            Some(dir) => write(k, &dir.join("freezer.state"), "THAWED", "let the group's tasks be scheduled again"),
            None => {
                k.note(format!("{PARENT}/{g} is not in the freezer hierarchy: nothing of it is frozen"));
                Ok(())
            }
        }
    }

    fn stats(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf]) -> Stats {
        let at = |c: &str, file: &str| self.pick(c, g, dirs).map(|d| d.join(file));
        let read = |c: &str, file: &str| at(c, file).and_then(|p| read_opt(k, &p));
        let num = |c: &str, file: &str| at(c, file).and_then(|p| read_u64(k, &p));
        let cpu_stat = read("cpu", "cpu.stat").unwrap_or_default();
        let oom = read("memory", "memory.oom_control");
        let weight = read("blkio", "blkio.weight").or_else(|| read("blkio", "blkio.bfq.weight"));
        let weight = weight.and_then(|s| s.trim().parse().ok().or_else(|| keyed(&s, "default")));
        Stats {
            name: g.to_string(),
            cgroup: format!("{PARENT}/{g}"),
            version: "v1",
            dirs: dirs.to_vec(),
            procs: super::procs(k, dirs).unwrap_or_default(),
            limits: LimitsNow {
                memory_max: read("memory", "memory.limit_in_bytes").and_then(|s| Max::from_file(&s)),
                cpu_quota_us: read("cpu", "cpu.cfs_quota_us").and_then(|s| Max::from_file(&s)),
                cpu_period_us: num("cpu", "cpu.cfs_period_us"),
                pids_max: read("pids", "pids.max").and_then(|s| Max::from_file(&s)),
                io_weight: weight,
                cpuset_cpus: read("cpuset", "cpuset.cpus").map(|s| s.trim().to_string()),
            },
            memory: MemoryNow {
                current: num("memory", "memory.usage_in_bytes"),
                peak: num("memory", "memory.max_usage_in_bytes"),
            },
            cpu: CpuNow {
                usage_usec: num("cpuacct", "cpuacct.usage").map(|ns| ns / 1000),
                nr_periods: keyed(&cpu_stat, "nr_periods"),
                nr_throttled: keyed(&cpu_stat, "nr_throttled"),
                throttled_usec: keyed(&cpu_stat, "throttled_time").map(|ns| ns / 1000),
            },
            pids: PidsNow { current: num("pids", "pids.current"), peak: num("pids", "pids.peak") },
            events: Events {
                memory_max: num("memory", "memory.failcnt"),
                oom: None, // v1 has no such counter; under_oom is a state, not a count
                oom_kill: oom.as_deref().and_then(|s| keyed(s, "oom_kill")),
                pids_max: read("pids", "pids.events").and_then(|s| keyed(&s, "max")),
            },
        }
    }

    fn events(&self, k: &Kernel, g: &GroupName) -> Events {
        let oom = self
            .gdir("memory", g)
            .and_then(|d| k.why("did the OOM killer act in the group?").read_file(&d.join("memory.oom_control")).ok());
        let pids = self
            .gdir("pids", g)
            .and_then(|d| k.why("were forks refused by pids.max?").read_file(&d.join("pids.events")).ok());
        Events {
            memory_max: None,
            oom: None,
            oom_kill: oom.as_deref().and_then(|s| keyed(s, "oom_kill")),
            pids_max: pids.as_deref().and_then(|s| keyed(s, "max")),
        }
    }

    fn list(&self, k: &Kernel) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (_, d) in self.hierarchy_dirs(None) {
            walk(k, &d, "", &mut out);
        }
        out
    }

    fn sample(&self, k: &Kernel, g: Option<&GroupName>) -> Sample {
        let dir = |c: &str| {
            self.mount(c).map(|m| match g {
                Some(g) => g.dir_in(m),
                None => m.join(PARENT),
            })
        };
        let num = |c: &str, f: &str| dir(c).and_then(|d| read_u64(k, &d.join(f)));
        let (mut r, mut w) = (None, None);
        if let Some(io) = dir("blkio").and_then(|d| read_opt(k, &d.join("blkio.throttle.io_service_bytes_recursive"))) {
            let (mut rs, mut ws) = (0, 0);
            for l in io.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                match f.as_slice() {
                    [_, "Read", n] => rs += n.parse::<u64>().unwrap_or(0),
                    [_, "Write", n] => ws += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
            (r, w) = (Some(rs), Some(ws));
        }
        Sample {
            tasks: num("pids", "pids.current"),
            cpu_ns: num("cpuacct", "cpuacct.usage"),
            memory: num("memory", "memory.usage_in_bytes"),
            read_bytes: r,
            write_bytes: w,
        }
    }

    fn has_parent(&self, k: &Kernel) -> bool {
        self.hierarchy_dirs(None).iter().any(|(_, d)| k.exists(d))
    }
}
