//! Test helpers: fake cgroup trees in temp dirs, made of the interface files a
//! real tree has, so the lab's logic runs against them without privileges.

use std::fs;
use std::path::Path;

fn files(dir: &Path, names: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (n, v) in names {
        fs::write(dir.join(n), v).unwrap();
    }
}

/// A fake cgroup v2 root: the interface files of a real root.
pub fn fake_v2() -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix("contlab-fake-v2-").tempdir().unwrap();
    files(
        t.path(),
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", "1\n"),
            ("cpu.stat", "usage_usec 100\n"),
        ],
    );
    t
}

/// The files of a fake v2 group with the given controllers enabled.
pub fn fake_v2_group(dir: &Path, procs: &str) {
    files(
        dir,
        &[
            ("cgroup.controllers", "cpu io memory pids\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", procs),
            ("cgroup.events", "populated 0\nfrozen 0\n"),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.current", "1048576\n"),
            ("memory.peak", "2097152\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("cpu.max", "max 100000\n"),
            ("cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 20\nnr_throttled 10\nthrottled_usec 900000\n"),
            ("pids.max", "max\n"),
            ("pids.current", "2\n"),
            ("pids.events", "max 4\n"),
            ("io.weight", "default 100\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"),
            ("cpuset.cpus", ""),
        ],
    );
}

/// A fake cgroup v1 root: blkio, cpu, cpuacct, cpuset, devices, freezer, memory, pids
/// hierarchies (as on the course's machines: cpu and cpuacct separate), optionally a
/// `unified/`.
pub fn fake_v1(hybrid: bool) -> tempfile::TempDir {
    let t = tempfile::Builder::new().prefix("contlab-fake-v1-").tempdir().unwrap();
    let r = t.path();
    let common = [("cgroup.procs", "1\n"), ("tasks", "1\n")];
    files(&r.join("memory"), &common);
    files(
        &r.join("memory"),
        &[("memory.limit_in_bytes", "9223372036854771712\n"), ("memory.memsw.limit_in_bytes", "9223372036854771712\n")],
    );
    files(&r.join("cpu"), &common);
    files(&r.join("cpu"), &[("cpu.cfs_quota_us", "-1\n"), ("cpu.cfs_period_us", "100000\n")]);
    files(&r.join("cpuacct"), &common);
    files(&r.join("cpuset"), &common);
    files(&r.join("cpuset"), &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
    files(&r.join("pids"), &common);
    files(&r.join("blkio"), &common);
    files(&r.join("devices"), &common);
    files(&r.join("devices"), &[("devices.list", "a *:* rwm\n")]);
    files(&r.join("freezer"), &common);
    files(&r.join("systemd"), &common);
    if hybrid {
        files(&r.join("unified"), &[("cgroup.controllers", "hugetlb\n"), ("cgroup.procs", "1\n")]);
    }
    t
}
