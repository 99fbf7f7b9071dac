//! cgroup v2: one tree, controllers handed down through `cgroup.subtree_control`.
//! <https://docs.kernel.org/admin-guide/cgroup-v2.html>
//!
//! To make `contlab/web` with a memory limit on a fresh v2 machine (no controller
//! enabled anywhere, as in the course VM):
//!
//! 1. `read /sys/fs/cgroup/cgroup.controllers`: which controllers exist at all;
//! 2. `write /sys/fs/cgroup/cgroup.subtree_control "+cpu +io +memory +pids"`: the
//!    root's children get those controllers (and their files);
//! 3. `mkdir /sys/fs/cgroup/contlab`, then the same write into its
//!    `cgroup.subtree_control`, so contlab's children get them too;
//! 4. `mkdir /sys/fs/cgroup/contlab/web`: `memory.max`, `cpu.max`, `pids.max`... appear;
//! 5. write the limits.
//!
//! cg-limit always hands down cpu, io, memory and pids when the kernel offers them, so
//! that `show` and `top` can report usage even for limits not set, and cpuset only
//! when `--cpuset` asks for it.
//!
//! Freezing needs no controller: every non-root group has `cgroup.freeze` (Linux
//! 5.2+); writing `1` stops its tasks, and `cgroup.events` says `frozen 1` once they
//! all are. Device control has no file at all in v2: it is an eBPF program
//! (`BPF_PROG_TYPE_CGROUP_DEVICE`) attached to the group ([`super::devices`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::limits::{Limits, Max};
use super::show::{CpuNow, Events, LimitsNow, MemoryNow, PidsNow, Sample, Stats};
use super::{has_file, keyed, read_opt, read_u64, wait_until, walk, write, Backend, GroupName, Made, PARENT};
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

/// The order the kernel lists controllers in; `+a +b` writes follow it.
const ORDER: [&str; 8] = ["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"];

/// Controllers enabled for every contlab group, when available, for accounting.
const ACCOUNTING: [&str; 4] = ["cpu", "io", "memory", "pids"];

/// The cgroup v2 implementation, for the tree mounted at `root`.
#[derive(Debug, Clone)]
pub struct Unified {
    root: PathBuf,
}

impl Unified {
    /// The unified tree at `root` (`/sys/fs/cgroup`, or a fake tree in tests).
    pub fn new(root: PathBuf) -> Unified {
        Unified { root }
    }

    fn dir(&self, g: &GroupName) -> PathBuf {
        g.dir_in(&self.root)
    }

    /// The controllers `limits` need (an error when the kernel does not offer one),
    /// plus, when `accounting`, the ones used to report usage.
    fn wanted(&self, k: &Kernel, limits: &Limits, accounting: bool) -> Result<Vec<&'static str>> {
        let file = self.root.join("cgroup.controllers");
        let text = super::privileged(k.why("which controllers this cgroup v2 tree offers").read_file(&file))?;
        let available: BTreeSet<&str> = text.split_whitespace().collect();
        let mut needed = Vec::new();
        if limits.memory.is_some() {
            needed.push(("memory", "--memory"));
        }
        if limits.cpus.is_some() || limits.cpu_shares.is_some() {
            needed.push(("cpu", "--cpus"));
        }
        if limits.pids.is_some() {
            needed.push(("pids", "--pids"));
        }
        if limits.io_weight.is_some() {
            needed.push(("io", "--io-weight"));
        }
        if limits.cpuset.is_some() {
            needed.push(("cpuset", "--cpuset"));
        }
        for (c, flag) in &needed {
            if !available.contains(c) {
                return Err(Error::failed(
                    format!(
                        "{flag}: the {c} controller is not available in this cgroup v2 tree: {} lists only [{}]",
                        file.display(),
                        text.trim()
                    ),
                    "a controller bound to a cgroup v1 hierarchy (hybrid setup, see /proc/cgroups) or not built \
                     into the kernel cannot be used in v2; drop that limit, or boot with cgroup_no_v1=all",
                ));
            }
        }
        let mut want: Vec<&'static str> = needed.iter().map(|(c, _)| *c).collect();
        if accounting {
            want.extend(ACCOUNTING.iter().filter(|c| available.contains(*c)));
        }
        Ok(ORDER.iter().copied().filter(|c| want.contains(c)).collect())
    }

    /// Hand `want` down through the `cgroup.subtree_control` of `dir` (only those not
    /// enabled yet).
    fn enable(&self, k: &Kernel, dir: &Path, want: &[&str], made: &Made) -> Result<()> {
        let file = dir.join("cgroup.subtree_control");
        let on = if made.has(dir) {
            String::new() // a group made just now hands nothing down yet
        } else {
            super::privileged(
                k.why("which controllers this group already hands down to its children").read_file(&file),
            )?
        };
        let on: BTreeSet<&str> = on.split_whitespace().collect();
        let missing: Vec<String> = want.iter().filter(|c| !on.contains(*c)).map(|c| format!("+{c}")).collect();
        if missing.is_empty() {
            return Ok(());
        }
        write(
            k,
            &file,
            &missing.join(" "),
            "enable these controllers for the children of this group: their interface files appear in each child",
        )
        .hint(
            Errno::EBUSY,
            &format!(
                "{} holds processes of its own, and a cgroup v2 group that hands controllers down may not \
                 (the no-internal-processes rule): move them into a child group first",
                dir.display()
            ),
        )
        .hint(Errno::ENOENT, "a controller is not enabled in the parent's cgroup.subtree_control")
    }

    /// Make the parents of `g` and hand `want` down along the way.
    fn prepare(&self, k: &Kernel, g: &GroupName, want: &[&str], made: &mut Made) -> Result<()> {
        if want.is_empty() {
            for dir in g.ancestors_in(&self.root) {
                made.ensure(k, &dir)?;
            }
            return Ok(());
        }
        self.enable(k, &self.root, want, made)?;
        for dir in g.ancestors_in(&self.root) {
            made.ensure(k, &dir)?;
            self.enable(k, &dir, want, made)?;
        }
        Ok(())
    }

    fn apply(&self, k: &Kernel, dir: &Path, limits: &Limits, made: &Made) -> Result<()> {
        if let Some(m) = limits.memory {
            write(
                k,
                &dir.join("memory.max"),
                &m.to_string(),
                "the memory limit: past it the kernel reclaims, then its OOM killer kills a process of the group",
            )?;
            if has_file(k, made, dir, &self.root, "memory.swap.max") {
                // v2 limits swap alone: memory+swap minus memory.
                let (swap, why) = match (limits.memory_swap, m) {
                    (Some(Max::Max), _) | (None, Max::Max) => ("max".to_string(), "swap: no limit"),
                    (None, _) => ("0".to_string(), "no swap beyond the memory limit, so the limit really holds"),
                    (Some(Max::Value(t)), Max::Value(m)) => {
                        (t.saturating_sub(m).to_string(), "swap the group may use (--memory-swap minus --memory)")
                    }
                    (Some(Max::Value(t)), Max::Max) => (t.to_string(), "swap the group may use"),
                };
                write(k, &dir.join("memory.swap.max"), &swap, why)?;
            }
        }
        if let Some(c) = limits.cpus {
            write(
                k,
                &dir.join("cpu.max"),
                &c.v2(),
                "CPU bandwidth: at most QUOTA us of CPU time per PERIOD us, summed over all CPUs, then throttled",
            )?;
        }
        if let Some(w) = limits.cpu_shares {
            write(
                k,
                &dir.join("cpu.weight"),
                &super::limits::shares_to_weight(w).to_string(),
                "the group's CPU weight against its siblings (100 by default; docker's shares mapped onto 1..10000)",
            )?;
        }
        if let Some(p) = limits.pids {
            write(
                k,
                &dir.join("pids.max"),
                &p.to_string(),
                "fork() and clone() fail with EAGAIN once the group has this many tasks",
            )?;
        }
        if let Some(w) = limits.io_weight {
            let file = if has_file(k, made, dir, &self.root, "io.weight") {
                "io.weight"
            } else if has_file(k, made, dir, &self.root, "io.bfq.weight") {
                k.note("io.bfq.weight only acts on disks whose I/O scheduler is bfq (/sys/block/DEV/queue/scheduler)");
                "io.bfq.weight"
            } else {
                return Err(Error::failed(
                    format!(
                        "io weight not available: neither io.weight (blk-iocost) nor io.bfq.weight (the BFQ scheduler) exists in {}",
                        dir.display()
                    ),
                    "use a kernel with CONFIG_BLK_CGROUP_IOCOST, or select the bfq I/O scheduler for the disk; or drop --io-weight",
                ));
            };
            write(
                k,
                &dir.join(file),
                &format!("default {w}"),
                "this group's share of disk time against its siblings (default 100)",
            )?;
        }
        if let Some(c) = &limits.cpuset {
            write(k, &dir.join("cpuset.cpus"), c, "the CPUs the group's tasks may run on")
                .hint(Errno::EINVAL, "those CPUs must exist and be in the parent's cpuset.cpus.effective")?;
        }
        if let Some(rules) = &limits.devices {
            let shown: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            let prog = super::devices::program(rules);
            k.note(format!(
                "cgroup v2 has no devices.allow: the rules [{}] become an eBPF program of {} instructions, attached to the group",
                shown.join(", "),
                prog.len()
            ));
            let loaded = k
                .bpf_load_device_program(&prog, "contlab_devices")
                .hint(Errno::EPERM, "loading eBPF programs needs CAP_BPF and CAP_SYS_ADMIN (root)")?;
            k.bpf_attach_device_program(dir, &loaded)?;
        }
        Ok(())
    }
}

impl Backend for Unified {
    fn version(&self) -> &'static str {
        "v2"
    }

    fn create(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>> {
        let want = self.wanted(k, limits, true)?;
        self.prepare(k, g, &want, made)?;
        let dir = self.dir(g);
        made.group(k, &dir, g)?;
        self.apply(k, &dir, limits, made)?;
        Ok(vec![dir])
    }

    fn set(&self, k: &Kernel, g: &GroupName, limits: &Limits, made: &mut Made) -> Result<Vec<PathBuf>> {
        if limits.devices.is_some() {
            // Another program would be attached beside the first (BPF_F_ALLOW_MULTI:
            // both must allow), so the rules could only narrow, unlike v1's files.
            return Err(Error::failed(
                format!("cgroup v2: the device rules of {g} are an eBPF program attached when the group was made, which set does not replace"),
                "remove the group and create it again with the new --allow-device rules",
            ));
        }
        let want = self.wanted(k, limits, false)?;
        self.prepare(k, g, &want, made)?;
        self.apply(k, &self.dir(g), limits, made)?;
        Ok(vec![])
    }

    fn dirs(&self, k: &Kernel, g: &GroupName) -> Vec<PathBuf> {
        let d = self.dir(g);
        if k.why("does the group exist?").exists(&d) {
            vec![d]
        } else {
            vec![]
        }
    }

    fn main_dir(&self, g: &GroupName) -> PathBuf {
        self.dir(g)
    }

    fn kill_file(&self, k: &Kernel, dirs: &[PathBuf]) -> Option<PathBuf> {
        let f = dirs.first()?.join("cgroup.kill");
        k.why("cgroup.kill (Linux 5.14+) kills a whole group in one write").exists(&f).then_some(f)
    }

    fn freeze(&self, k: &Kernel, g: &GroupName, _dirs: &[PathBuf], _made: &mut Made) -> Result<Vec<PathBuf>> {
        let d = self.dir(g);
        write(k, &d.join("cgroup.freeze"), "1", "stop scheduling every task of the group (and of its children)")
            .hint(Errno::ENOENT, "cgroup.freeze needs Linux 5.2 or later")?;
        wait_until(
            k,
            &d.join("cgroup.events"),
            "every task of the group is frozen (frozen 1)",
            |t| keyed(t, "frozen") == Some(1),
            "a task stuck in the kernel (state D in `ps`) cannot be frozen; try again, or thaw it",
        )?;
        Ok(vec![])
    }

    fn thaw(&self, k: &Kernel, g: &GroupName, _dirs: &[PathBuf]) -> Result<()> {
        write(k, &self.dir(g).join("cgroup.freeze"), "0", "let the group's tasks be scheduled again")
            .hint(Errno::ENOENT, "cgroup.freeze needs Linux 5.2 or later")
    }

    fn stats(&self, k: &Kernel, g: &GroupName, dirs: &[PathBuf]) -> Stats {
        let Some(d) = dirs.first() else { return Stats::default() };
        let f = |n: &str| d.join(n);
        let cpu_max = read_opt(k, &f("cpu.max"));
        let (quota, period) = match cpu_max.as_deref().map(|s| s.split_whitespace().collect::<Vec<_>>()) {
            Some(v) if v.len() == 2 => (Max::from_file(v[0]), v[1].parse().ok()),
            _ => (None, None),
        };
        let weight = read_opt(k, &f("io.weight"))
            .or_else(|| read_opt(k, &f("io.bfq.weight")))
            .and_then(|s| keyed(&s, "default"));
        let cpu_stat = read_opt(k, &f("cpu.stat")).unwrap_or_default();
        let mem_events = read_opt(k, &f("memory.events"));
        let pids_events = read_opt(k, &f("pids.events"));
        Stats {
            name: g.to_string(),
            cgroup: format!("{PARENT}/{g}"),
            version: "v2",
            dirs: dirs.to_vec(),
            procs: super::procs(k, dirs).unwrap_or_default(),
            limits: LimitsNow {
                memory_max: read_opt(k, &f("memory.max")).and_then(|s| Max::from_file(&s)),
                cpu_quota_us: quota,
                cpu_period_us: period,
                pids_max: read_opt(k, &f("pids.max")).and_then(|s| Max::from_file(&s)),
                io_weight: weight,
                cpuset_cpus: read_opt(k, &f("cpuset.cpus")).map(|s| s.trim().to_string()),
            },
            memory: MemoryNow { current: read_u64(k, &f("memory.current")), peak: read_u64(k, &f("memory.peak")) },
            cpu: CpuNow {
                usage_usec: keyed(&cpu_stat, "usage_usec"),
                nr_periods: keyed(&cpu_stat, "nr_periods"),
                nr_throttled: keyed(&cpu_stat, "nr_throttled"),
                throttled_usec: keyed(&cpu_stat, "throttled_usec"),
            },
            pids: PidsNow { current: read_u64(k, &f("pids.current")), peak: read_u64(k, &f("pids.peak")) },
            events: Events {
                memory_max: mem_events.as_deref().and_then(|s| keyed(s, "max")),
                oom: mem_events.as_deref().and_then(|s| keyed(s, "oom")),
                oom_kill: mem_events.as_deref().and_then(|s| keyed(s, "oom_kill")),
                pids_max: pids_events.as_deref().and_then(|s| keyed(s, "max")),
            },
        }
    }

    fn events(&self, k: &Kernel, g: &GroupName) -> Events {
        let d = self.dir(g);
        let mem = k.why("did the OOM killer act in the group?").read_file(&d.join("memory.events")).ok();
        let pids = k.why("were forks refused by pids.max?").read_file(&d.join("pids.events")).ok();
        Events {
            memory_max: mem.as_deref().and_then(|s| keyed(s, "max")),
            oom: mem.as_deref().and_then(|s| keyed(s, "oom")),
            oom_kill: mem.as_deref().and_then(|s| keyed(s, "oom_kill")),
            pids_max: pids.as_deref().and_then(|s| keyed(s, "max")),
        }
    }

    fn list(&self, k: &Kernel) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        walk(k, &self.root.join(PARENT), "", &mut out);
        out
    }

    fn sample(&self, k: &Kernel, g: Option<&GroupName>) -> Sample {
        let d = match g {
            Some(g) => self.dir(g),
            None => self.root.join(PARENT),
        };
        let cpu = read_opt(k, &d.join("cpu.stat")).and_then(|s| keyed(&s, "usage_usec")).map(|u| u * 1000);
        let tasks = read_u64(k, &d.join("pids.current"));
        let (mut r, mut w) = (None, None);
        if let Some(io) = read_opt(k, &d.join("io.stat")) {
            let (mut rs, mut ws) = (0, 0);
            for field in io.split_whitespace() {
                if let Some(v) = field.strip_prefix("rbytes=") {
                    rs += v.parse::<u64>().unwrap_or(0);
                } else if let Some(v) = field.strip_prefix("wbytes=") {
                    ws += v.parse::<u64>().unwrap_or(0);
                }
            }
            (r, w) = (Some(rs), Some(ws));
        }
        Sample { tasks, cpu_ns: cpu, memory: read_u64(k, &d.join("memory.current")), read_bytes: r, write_bytes: w }
    }

    fn has_parent(&self, k: &Kernel) -> bool {
        k.exists(&self.root.join(PARENT))
    }
}
