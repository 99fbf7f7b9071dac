//! Reading a group back: its limits, what it uses, and what the kernel counted.
//!
//! | what | cgroup v2 | cgroup v1 |
//! |---|---|---|
//! | memory now / peak | `memory.current`, `memory.peak` | `memory.usage_in_bytes`, `memory.max_usage_in_bytes` |
//! | CPU time | `cpu.stat` `usage_usec` | `cpuacct.usage` (ns, in the cpuacct hierarchy) |
//! | throttling | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_usec` | `cpu.stat` `nr_periods`, `nr_throttled`, `throttled_time` (ns) |
//! | tasks | `pids.current`, `pids.peak` | the same |
//! | OOM kills | `memory.events` `oom_kill` | `memory.oom_control` `oom_kill` |
//! | refused forks | `pids.events` `max` | the same |
//!
//! Every field is optional: a file that is missing (a controller not enabled, an
//! older kernel) shows as `-` in text and `null` in JSON.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::limits::{human_bytes, Max};
use super::PARENT;

/// The limits a group has now, as its files say.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct LimitsNow {
    /// `memory.max` / `memory.limit_in_bytes`, bytes or "max".
    pub memory_max: Option<Max>,
    /// The CPU quota per period in µs, or "max".
    pub cpu_quota_us: Option<Max>,
    /// The CFS period in µs.
    pub cpu_period_us: Option<u64>,
    /// `pids.max`.
    pub pids_max: Option<Max>,
    /// `io.weight` / `blkio.weight` (v1: in that file's own 10..1000 scale).
    pub io_weight: Option<u64>,
    /// `cpuset.cpus`.
    pub cpuset_cpus: Option<String>,
}

/// Memory use, in bytes.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MemoryNow {
    /// Now.
    pub current: Option<u64>,
    /// The highest since the group was made.
    pub peak: Option<u64>,
}

/// CPU use and throttling.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CpuNow {
    /// CPU time used by the group, in µs, all CPUs summed.
    pub usage_usec: Option<u64>,
    /// Quota periods that had runnable tasks.
    pub nr_periods: Option<u64>,
    /// Periods in which the group used its quota and was stopped.
    pub nr_throttled: Option<u64>,
    /// Total time the group's tasks waited for the next period, in µs.
    pub throttled_usec: Option<u64>,
}

/// Tasks (processes and threads).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PidsNow {
    /// Now.
    pub current: Option<u64>,
    /// The highest since the group was made.
    pub peak: Option<u64>,
}

/// What the kernel counted against the group's limits.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Events {
    /// Times the memory limit was hit (v2 `memory.events` `max`; v1 `memory.failcnt`).
    pub memory_max: Option<u64>,
    /// Times the group ran out of memory (v2 `memory.events` `oom`).
    pub oom: Option<u64>,
    /// Processes killed by the OOM killer.
    pub oom_kill: Option<u64>,
    /// Forks refused because of `pids.max` (`pids.events` `max`).
    pub pids_max: Option<u64>,
}

/// Everything `cg-limit show` reports about a group.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// `web`.
    pub name: String,
    /// `contlab/web`.
    pub cgroup: String,
    /// `v2` or `v1`.
    pub version: &'static str,
    /// The group's directories (one per v1 hierarchy).
    pub dirs: Vec<PathBuf>,
    /// The PIDs in `cgroup.procs`.
    pub procs: Vec<i32>,
    /// Limits.
    pub limits: LimitsNow,
    /// Memory use.
    pub memory: MemoryNow,
    /// CPU use and throttling.
    pub cpu: CpuNow,
    /// Tasks.
    pub pids: PidsNow,
    /// Events.
    pub events: Events,
}

/// One sample of a group's counters, for `cg-limit top`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// Tasks in the group and below.
    pub tasks: Option<u64>,
    /// CPU time used so far, in ns.
    pub cpu_ns: Option<u64>,
    /// Memory in use, in bytes.
    pub memory: Option<u64>,
    /// Bytes read from block devices so far.
    pub read_bytes: Option<u64>,
    /// Bytes written to block devices so far.
    pub write_bytes: Option<u64>,
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn bytes(v: Option<u64>) -> String {
    v.map(human_bytes).unwrap_or_else(|| "-".into())
}

fn secs(us: Option<u64>) -> String {
    us.map(|u| format!("{:.3}s", u as f64 / 1e6)).unwrap_or_else(|| "-".into())
}

impl Stats {
    /// The group as `cg-limit show` prints it.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let l = &self.limits;
        let _ = writeln!(s, "group      {PARENT}/{} (cgroup {})", self.name, self.version);
        for d in &self.dirs {
            let _ = writeln!(s, "directory  {}", d.display());
        }
        let procs: Vec<String> = self.procs.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(
            s,
            "processes  {}{}",
            self.procs.len(),
            if procs.is_empty() { String::new() } else { format!(": {}", procs.join(" ")) }
        );
        let _ = writeln!(
            s,
            "memory     current {}  peak {}  max {}",
            bytes(self.memory.current),
            bytes(self.memory.peak),
            l.memory_max.map(|m| m.human_bytes()).unwrap_or_else(|| "-".into())
        );
        let quota = match (l.cpu_quota_us, l.cpu_period_us) {
            (Some(Max::Value(q)), Some(p)) if p > 0 => format!("{q}/{p} us ({:.2} CPU)", q as f64 / p as f64),
            (Some(Max::Max), _) => "max".into(),
            _ => "-".into(),
        };
        let _ = writeln!(s, "cpu        usage {}  quota {quota}", secs(self.cpu.usage_usec));
        let _ = writeln!(
            s,
            "throttled  {} of {} periods, {}",
            opt(&self.cpu.nr_throttled),
            opt(&self.cpu.nr_periods),
            secs(self.cpu.throttled_usec)
        );
        let _ = writeln!(
            s,
            "pids       current {}  peak {}  max {}",
            opt(&self.pids.current),
            opt(&self.pids.peak),
            opt(&l.pids_max)
        );
        let _ = writeln!(s, "io         weight {}", opt(&l.io_weight));
        let _ = writeln!(
            s,
            "cpuset     cpus {}",
            l.cpuset_cpus.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "-".into())
        );
        let e = &self.events;
        let _ = writeln!(
            s,
            "events     memory max {}  oom {}  oom_kill {}  pids max {}",
            opt(&e.memory_max),
            opt(&e.oom),
            opt(&e.oom_kill),
            opt(&e.pids_max)
        );
        s
    }
}
