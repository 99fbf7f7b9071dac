//! cg-limit: CLI behaviour and dry-run traces on fake cgroup trees (any user), real
//! cgroups as root on this machine (cgroup v1/hybrid): an OOM kill, a fork bomb
//! stopped by pids.max, CPU throttling; and the same on pure cgroup v2 in the vm tier
//! (`guest`).
//!
//! Every test that makes a real group gives it a unique name and holds a [`Group`]
//! guard, which runs `cg-limit rm NAME --kill` when the test ends, even by a panic.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{self, cmd, require, stderr_of, stdout_of, Tier};

/// A stable PATH, so the `access(2)` lines of the PATH search are the same everywhere.
const PATH: &str = "/usr/bin:/bin";

fn cg() -> assert_cmd::Command {
    let mut c = cmd("cg-limit");
    c.env("PATH", PATH).env_remove("CONTLAB_CGROUP_ROOT");
    c
}

fn run(args: &[&str]) -> std::process::Output {
    cg().args(args).output().unwrap()
}

/// Snapshot filters for cg-limit traces: the temp dir's filesystem type, the host's
/// mountinfo, the transient group's PID.
fn settings() -> insta::Settings {
    let mut s = harness::snapshot_settings();
    s.add_filter(r"f_type=[A-Za-z0-9_]+", "f_type=FS");
    s.add_filter(r#"read\("/proc/self/mountinfo", .*"#, r#"read("/proc/self/mountinfo", "...") = N"#);
    s.add_filter(r"run-\d+", "run-PID");
    s
}

fn files(dir: &Path, names: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (n, v) in names {
        std::fs::write(dir.join(n), v).unwrap();
    }
}

/// A fake cgroup v2 root, as the vm tier's kernel has it: controllers available, none
/// handed down yet.
fn fake_v2(root: &Path) {
    files(
        root,
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", "1\n"),
        ],
    );
}

/// A fake cgroup v1/hybrid root, as this machine has it (cpu and cpuacct separate).
fn fake_v1(root: &Path) {
    for h in ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd"] {
        files(&root.join(h), &[("cgroup.procs", "1\n"), ("tasks", "1\n")]);
    }
    files(&root.join("memory"), &[("memory.memsw.limit_in_bytes", "9223372036854771712\n")]);
    files(&root.join("cpuset"), &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
    files(&root.join("unified"), &[("cgroup.controllers", "hugetlb\n"), ("cgroup.procs", "1\n")]);
}

// ---------------------------------------------------------------- dry run ----------

#[test]
fn dry_run_v2_trace() {
    let t = harness::tmp();
    fake_v2(t.path());
    let root = t.path().to_str().unwrap();
    let o = run(&[
        "--cgroup-root",
        root,
        "--dry-run",
        "run",
        "--memory",
        "64M",
        "--pids",
        "20",
        "--cpus",
        "0.5",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "");
    settings().bind(|| insta::assert_snapshot!("cg_limit_dry_run_v2", stderr_of(&o)));
    assert!(!t.path().join("contlab").exists(), "a dry run makes nothing");
    assert_eq!(std::fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap(), "", "nor writes");
}

#[test]
fn dry_run_v1_trace() {
    let t = harness::tmp();
    fake_v1(t.path());
    let root = t.path().to_str().unwrap();
    let o = run(&[
        "--cgroup-root",
        root,
        "--dry-run",
        "run",
        "--memory",
        "64M",
        "--pids",
        "20",
        "--cpus",
        "0.5",
        "--",
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    settings().bind(|| insta::assert_snapshot!("cg_limit_dry_run_v1", stderr_of(&o)));
    assert!(!t.path().join("memory/contlab").exists(), "a dry run makes nothing");
}

#[test]
fn json_trace_is_one_object_per_line() {
    let t = harness::tmp();
    fake_v2(t.path());
    let o = run(&[
        "--cgroup-root",
        t.path().to_str().unwrap(),
        "--dry-run",
        "--trace",
        "json",
        "create",
        "j",
        "--pids",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let events: Vec<serde_json::Value> =
        stderr_of(&o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    assert!(events.iter().all(|e| e["tool"] == "cg-limit"));
    let w = events.iter().find(|e| e["call"] == "write" && e["args"][0].as_str().unwrap().ends_with("pids.max\""));
    assert_eq!(w.unwrap()["args"][1], "\"5\"");
}

#[test]
fn the_env_var_sets_the_root() {
    let t = harness::tmp();
    fake_v2(t.path());
    files(&t.path().join("contlab/a"), &[("cgroup.procs", "")]);
    let o = cg().env("CONTLAB_CGROUP_ROOT", t.path()).args(["ls"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "a\n");
    assert!(stderr_of(&o).contains(&format!("statfs(\"{}\")", t.path().display())), "{}", stderr_of(&o));
}

// ---------------------------------------------------------------- usage ------------

#[test]
fn usage_errors_exit_2() {
    let t = harness::tmp();
    fake_v2(t.path());
    let root = t.path().to_str().unwrap();
    for (args, needle) in [
        (&["run", "--memory", "12XB", "--", "true"][..], "unknown unit \"XB\" in \"12XB\""),
        (&["create", "x", "--memory", "1.5G"][..], "1536M"),
        (&["run", "--memory", "64M"][..], "<CMD>"),
        (&["run", "--cpus", "0", "--", "true"][..], "positive number of CPUs"),
        (&["run", "--pids", "ten", "--", "true"][..], "not a number of tasks"),
        (&["run", "--io-weight", "0", "--", "true"][..], "1..=10000"),
        (&["run", "--cpuset", "1-0", "--", "true"][..], "not a CPU list"),
        (&["run", "--keep", "--", "true"][..], "--name"),
        (&["create", "../escape"][..], ". and .. are not allowed"),
        (&["create", "/abs"][..], "without a leading /"),
        (&["create", "a//b"][..], "empty segment"),
        (&["create", "memory.max"][..], "interface file"),
        (&["set", "x"][..], "give at least one limit"),
        (&["top", "--delay", "0"][..], "not a delay"),
    ] {
        let o = cg().args(["--cgroup-root", root]).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains(needle), "{args:?}: {}", stderr_of(&o));
    }
    assert!(!t.path().join("contlab").exists(), "a usage error touches nothing");
}

#[test]
fn show_of_a_missing_group_names_the_path() {
    let t = harness::tmp();
    fake_v2(t.path());
    let o = run(&["-q", "--cgroup-root", t.path().to_str().unwrap(), "show", "nosuchgroup"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    let want =
        format!("cg-limit: no group contlab/nosuchgroup: {}/contlab/nosuchgroup does not exist", t.path().display());
    assert!(stderr_of(&o).contains(&want), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("hint: `cg-limit ls`"), "{}", stderr_of(&o));
}

#[test]
fn rm_refuses_a_group_with_processes() {
    let t = harness::tmp();
    fake_v2(t.path());
    files(&t.path().join("contlab/busy"), &[("cgroup.procs", "4242\n")]);
    let o = run(&["-q", "--cgroup-root", t.path().to_str().unwrap(), "rm", "busy"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("is not empty: 1 process(es) in cgroup.procs (4242)"), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("cg-limit rm busy --kill"), "{}", stderr_of(&o));
    assert!(t.path().join("contlab/busy").exists());
}

#[test]
fn a_missing_controller_is_named() {
    let t = harness::tmp();
    fake_v2(t.path());
    std::fs::write(t.path().join("cgroup.controllers"), "cpu io memory\n").unwrap();
    let o = run(&["-q", "--cgroup-root", t.path().to_str().unwrap(), "run", "--pids", "5", "--", "true"]);
    assert_eq!(o.status.code(), Some(125), "run's own failures are 125: {}", stderr_of(&o));
    assert!(stderr_of(&o).contains("--pids: the pids controller is not available"), "{}", stderr_of(&o));
}

#[test]
fn top_once_prints_one_frame() {
    let t = harness::tmp();
    fake_v2(t.path());
    files(&t.path().join("contlab"), &[("pids.current", "3\n")]);
    files(
        &t.path().join("contlab/web"),
        &[("pids.current", "3\n"), ("memory.current", "1048576\n"), ("cpu.stat", "usage_usec 5\n")],
    );
    let o = run(&[
        "-q",
        "--cgroup-root",
        t.path().to_str().unwrap(),
        "top",
        "--once",
        "--delay",
        "0.05",
        "--order",
        "path",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = stdout_of(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("Path") && lines[0].ends_with("Tasks   %CPU   Memory  Input/s Output/s"), "{out}");
    assert!(lines[1].starts_with("/contlab ") && lines[2].starts_with("/contlab/web "), "{out}");
    assert!(lines[2].contains(" 3 ") && lines[2].contains("1.0M"), "{out}");
    assert!(!out.contains('\x1b'), "no screen control on a pipe");
}

#[test]
fn top_help_says_the_trace_is_hidden_on_a_terminal() {
    let o = run(&["top", "--help"]);
    assert!(stdout_of(&o).contains("the trace is not shown"), "{}", stdout_of(&o));
    assert!(stdout_of(&o).contains("--trace-file"), "{}", stdout_of(&o));
}

// ---------------------------------------------------------------- real groups ------

/// A group made by a test, removed (`cg-limit rm NAME --kill`) when dropped.
struct Group(String);

impl Group {
    /// A unique name for this test process and purpose.
    fn new(what: &str) -> Group {
        Group(format!("t-{what}-{}", std::process::id()))
    }
    fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = cg().args(["-q", "rm", &self.0, "--kill"]).output();
    }
}

/// `cg-limit show NAME --json`.
fn show(name: &str) -> serde_json::Value {
    let o = run(&["-q", "show", name, "--json"]);
    assert!(o.status.success(), "show {name}: {}", stderr_of(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Whether contlab/NAME exists in any of the group's directories, as `cg-limit ls`
/// says (which must succeed: a failed `ls` is no answer).
fn exists(name: &str) -> bool {
    let o = run(&["-q", "ls"]);
    assert!(o.status.success(), "cg-limit ls failed: {}", stderr_of(&o));
    stdout_of(&o).lines().any(|l| l == name)
}

/// The directories contlab/NAME has on this machine, looked at directly: the v2
/// tree's and every v1 hierarchy's.
fn dirs_of(name: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut v: Vec<std::path::PathBuf> = std::iter::once(root.to_path_buf())
        .chain(std::fs::read_dir(root).unwrap().flatten().map(|e| e.path()))
        .map(|h| h.join("contlab").join(name))
        .filter(|d| d.is_dir())
        .collect();
    v.sort();
    v
}

/// How many requests named `call` a cg-limit command line makes, from its dry run's
/// JSON trace (the same plan as the real run on this machine).
fn planned(args: &[&str], call: &str) -> u32 {
    let o = cg().args(["--dry-run", "--trace", "json"]).args(args).output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let n = stderr_of(&o)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|e| e["call"] == call)
        .count();
    n as u32
}

const HOG: &str = "b = bytearray(200 * 2**20)";

/// The checks shared by the host (v1) and the VM (v2).
mod checks {
    use super::*;

    pub fn oom_kill(tag: &str) {
        let g = Group::new(&format!("oom-{tag}"));
        let o = run(&["-q", "run", "--name", g.name(), "--keep", "--memory", "64M", "--", "python3", "-c", HOG]);
        assert_eq!(o.status.code(), Some(137), "killed by SIGKILL: {}", stderr_of(&o));
        assert!(!stderr_of(&o).contains("OOM killer"), "--keep prints nothing extra: {}", stderr_of(&o));
        let v = show(g.name());
        assert!(v["events"]["oom_kill"].as_u64().unwrap() >= 1, "{v:#}");
        assert_eq!(v["limits"]["memory_max"], 64 << 20, "{v:#}");
        let peak = v["memory"]["peak"].as_u64().unwrap();
        assert!(peak <= 64 << 20, "peak {peak} within the limit");
        let o = run(&["-q", "rm", g.name()]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert!(!exists(g.name()));

        // Without --keep: a line on stderr, the group removed, status 137.
        let g = Group::new(&format!("oom2-{tag}"));
        let o = run(&["-q", "run", "--name", g.name(), "--memory", "64M", "--", "python3", "-c", HOG]);
        assert_eq!(o.status.code(), Some(137), "{}", stderr_of(&o));
        assert!(
            stderr_of(&o).contains("reached its memory limit (64.0M): the kernel's OOM killer killed"),
            "{}",
            stderr_of(&o)
        );
        assert!(!exists(g.name()), "the transient group is gone");
    }

    pub fn fork_bomb(tag: &str) {
        let g = Group::new(&format!("fork-{tag}"));
        // The sleeps must not hold the output pipes, or `output()` would wait for them.
        let bomb = "for i in $(seq 60); do sleep 10 </dev/null >/dev/null 2>&1 & done; wait";
        let o = run(&["-q", "run", "--name", g.name(), "--keep", "--pids", "20", "--", "sh", "-c", bomb]);
        assert_ne!(o.status.code(), Some(0), "the shell fails when it cannot fork");
        assert!(stderr_of(&o).contains("fork"), "the shell reports fork failures: {}", stderr_of(&o));
        let v = show(g.name());
        assert!(v["events"]["pids_max"].as_u64().unwrap() > 0, "{v:#}");
        assert_eq!(v["limits"]["pids_max"], 20, "{v:#}");
        if let Some(peak) = v["pids"]["peak"].as_u64() {
            assert!(peak <= 20, "{v:#}");
        }
        // The sleeps are still there: rm refuses, rm --kill empties and removes.
        let o = run(&["-q", "rm", g.name()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
        assert!(stderr_of(&o).contains("is not empty"), "{}", stderr_of(&o));
        let o = run(&["-q", "rm", g.name(), "--kill"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert!(!exists(g.name()));

        // Without --keep: the summary line, and the leftover sleeps are killed.
        let g = Group::new(&format!("fork2-{tag}"));
        let t0 = Instant::now();
        let o = run(&["-q", "run", "--name", g.name(), "--pids", "20", "--", "sh", "-c", bomb]);
        assert!(stderr_of(&o).contains("reached its task limit (20): fork()/clone() failed"), "{}", stderr_of(&o));
        assert!(t0.elapsed() < Duration::from_secs(3), "the leftover sleeps were killed, not waited for");
        assert!(!exists(g.name()));
    }

    /// Give contlab/ and the group the highest CPU weight while the guard lives.
    ///
    /// The quota is a ceiling, not a promise: on a machine busy with other tests, a
    /// group of default weight may get less than its quota, and the measure would be
    /// of the contention, not of the quota. A test fixture, written directly.
    struct Favoured(Vec<(std::path::PathBuf, String)>);

    impl Drop for Favoured {
        fn drop(&mut self) {
            for (f, old) in &self.0 {
                let _ = std::fs::write(f, old.trim());
            }
        }
    }

    fn favour(dirs: &str) -> Favoured {
        let mut saved = Vec::new();
        for d in dirs.lines().map(Path::new) {
            for (file, max) in [("cpu.shares", "262144"), ("cpu.weight", "10000")] {
                for f in [d.parent().unwrap().join(file), d.join(file)] {
                    if let Ok(old) = std::fs::read_to_string(&f) {
                        std::fs::write(&f, max).unwrap();
                        saved.push((f, old));
                    }
                }
            }
        }
        assert!(!saved.is_empty(), "no cpu.shares or cpu.weight in {dirs}");
        Favoured(saved)
    }

    /// `cg-limit create` killed with SIGKILL just before each of its mkdirs and writes:
    /// what it made stays (a killed process undoes nothing), and the documented
    /// clean-up, `cg-limit rm NAME --kill`, removes all of it.
    pub fn killed_while_creating(tag: &str) {
        let g = Group::new(&format!("kill9-{tag}"));
        let args = ["create", g.name(), "--memory", "32M", "--pids", "5"];
        let mut seen_left = false;
        for call in ["mkdir", "write"] {
            let steps = planned(&args, call);
            assert!(steps > 0, "a create makes {call} requests");
            for nth in 1..=steps {
                let mut c = Command::new(harness::bin_path("cg-limit"));
                c.arg("-q").args(args).env("PATH", PATH).env_remove("CONTLAB_CGROUP_ROOT");
                harness::kill9(harness::stopped_at(c, call, nth));
                let left = dirs_of(g.name());
                seen_left |= !left.is_empty();
                let o = run(&["-q", "rm", g.name(), "--kill"]);
                if left.is_empty() {
                    assert_eq!(o.status.code(), Some(1), "{call} #{nth}: {}", stderr_of(&o));
                    assert!(stderr_of(&o).contains("no group"), "{call} #{nth}: {}", stderr_of(&o));
                } else {
                    assert!(o.status.success(), "{call} #{nth}: rm --kill of {left:?}: {}", stderr_of(&o));
                }
                assert_eq!(dirs_of(g.name()), Vec::<std::path::PathBuf>::new(), "{call} #{nth}: after rm --kill");
                assert!(!exists(g.name()), "{call} #{nth}");
            }
        }
        assert!(seen_left, "some steps leave part of the group, for rm --kill to remove");
    }

    /// `cg-limit run` killed with SIGKILL while its command runs: the group and the
    /// command stay; `rm` refuses a group with a process, `rm --kill` kills it and
    /// removes the group.
    pub fn killed_while_running(tag: &str) {
        let g = Group::new(&format!("kill9run-{tag}"));
        let mut c = Command::new(harness::bin_path("cg-limit"));
        c.args(["-q", "run", "--name", g.name(), "--pids", "5", "--", "sh", "-c"])
            .arg("exec sleep 60 </dev/null >/dev/null 2>&1")
            .env("PATH", PATH)
            .env_remove("CONTLAB_CGROUP_ROOT");
        harness::kill9(harness::stopped_at(c, "rt_sigtimedwait", 1));
        let procs = show(g.name())["procs"].as_array().cloned().unwrap_or_default();
        assert_eq!(procs.len(), 1, "the command outlives cg-limit, in its group: {procs:?}");
        let o = run(&["-q", "rm", g.name()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
        let o = run(&["-q", "rm", g.name(), "--kill"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert_eq!(dirs_of(g.name()), Vec::<std::path::PathBuf>::new());
        // Dead: gone, or a zombie until its new parent (init) reaps it.
        let stat = format!("/proc/{}/stat", procs[0].as_i64().unwrap());
        let state = std::fs::read_to_string(&stat).ok().and_then(|s| s.rsplit_once(") ")?.1.chars().next());
        assert!(matches!(state, None | Some('Z' | 'X')), "rm --kill killed the command: {state:?}");
    }

    /// The CPU time a group has used so far, in µs.
    fn cpu_used(name: &str) -> u64 {
        show(name)["cpu"]["usage_usec"].as_u64().unwrap()
    }

    /// `freeze` stops a busy loop (its CPU time stops growing), `thaw` lets it run.
    pub fn freeze_and_thaw(tag: &str) {
        let g = Group::new(&format!("freeze-{tag}"));
        assert!(run(&["-q", "create", g.name(), "--pids", "5"]).status.success());
        let mut busy = Command::new("sh").args(["-c", "while :; do :; done"]).stdin(Stdio::null()).spawn().unwrap();
        assert!(run(&["-q", "add", g.name(), &busy.id().to_string()]).status.success());
        let o = run(&["freeze", g.name()]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let frozen = cpu_used(g.name());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(cpu_used(g.name()), frozen, "a frozen group uses no CPU");
        let state = std::fs::read_to_string(format!("/proc/{}/stat", busy.id())).unwrap();
        assert!(state.rsplit_once(") ").unwrap().1.starts_with(['D', 'S', 'T']), "not running: {state}");
        let o = run(&["-q", "thaw", g.name()]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let t0 = Instant::now();
        while cpu_used(g.name()) == frozen {
            assert!(t0.elapsed() < Duration::from_secs(10), "the thawed loop never ran again");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(run(&["-q", "rm", g.name(), "--kill"]).status.success());
        let _ = busy.wait();
    }

    pub fn cpu_throttle(tag: &str) {
        let g = Group::new(&format!("cpu-{tag}"));
        let o = run(&["-q", "create", g.name(), "--cpus", "0.5"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let _favoured = favour(&stdout_of(&o));
        let mut busy = Command::new("sh").args(["-c", "while :; do :; done"]).stdin(Stdio::null()).spawn().unwrap();
        let o = run(&["-q", "add", g.name(), &busy.id().to_string()]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let before = show(g.name());
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let after = show(g.name());
        let wall = t0.elapsed().as_secs_f64();
        let used =
            (after["cpu"]["usage_usec"].as_u64().unwrap() - before["cpu"]["usage_usec"].as_u64().unwrap()) as f64 / 1e6;
        let expected = 0.5 * wall;
        assert!(
            (used - expected).abs() <= 0.3 * expected,
            "a busy loop under --cpus 0.5 used {used:.3} s of CPU in {wall:.3} s (expected {expected:.3} s ± 30%)"
        );
        assert!(after["cpu"]["nr_throttled"].as_u64().unwrap() > 0, "{after:#}");
        assert!(after["cpu"]["throttled_usec"].as_u64().unwrap() > 0, "{after:#}");
        assert_eq!(after["procs"], serde_json::json!([busy.id()]));
        let o = run(&["-q", "rm", g.name(), "--kill"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let st = busy.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9), "killed by rm --kill");
        assert!(!exists(g.name()));
    }
}

#[test]
fn oom_kill_exits_137_and_is_counted() {
    if !require(Tier::Root) {
        return;
    }
    checks::oom_kill("host");
}

#[test]
fn a_fork_bomb_stops_at_pids_max() {
    if !require(Tier::Root) {
        return;
    }
    checks::fork_bomb("host");
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    if !require(Tier::Root) {
        return;
    }
    checks::cpu_throttle("host");
}

#[test]
fn kill_9_at_each_step_of_create_then_rm_kill_removes_what_remains() {
    if !require(Tier::Root) {
        return;
    }
    checks::killed_while_creating("host");
}

#[test]
fn kill_9_while_the_command_runs_then_rm_kill_removes_the_group() {
    if !require(Tier::Root) {
        return;
    }
    checks::killed_while_running("host");
}

#[test]
fn freeze_stops_a_busy_loop_and_thaw_resumes_it() {
    if !require(Tier::Root) {
        return;
    }
    checks::freeze_and_thaw("host");
}

#[test]
fn only_the_allowed_devices_can_be_opened() {
    if !require(Tier::Root) {
        return;
    }
    // cgroup v1 here: devices.deny a, then devices.allow c 1:3 rwm (/dev/null).
    let g = Group::new("devices");
    let script = "echo x > /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 || echo zero-denied";
    let o = run(&["run", "--name", g.name(), "--allow-device", "c 1:3 rwm", "--", "sh", "-c", script]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "null-ok\nzero-denied\n", "{}", stderr_of(&o));
    let err = stderr_of(&o);
    assert!(err.contains("devices.deny\", \"a\") = 1"), "{err}");
    assert!(err.contains("devices.allow\", \"c 1:3 rwm\") = 9"), "{err}");
    assert!(!exists(g.name()));
}

#[test]
fn run_exit_codes_follow_docker() {
    if !require(Tier::Root) {
        return;
    }
    for (i, (args, code)) in [
        (&["sh", "-c", "exit 3"][..], 3),
        (&["no-such-command-xyz"][..], 127),
        (&["/etc/passwd"][..], 126),
        (&["sh", "-c", "kill -9 $$"][..], 137),
    ]
    .into_iter()
    .enumerate()
    {
        let g = Group::new(&format!("exit{i}"));
        let o = cg().args(["-q", "run", "--name", g.name(), "--pids", "10", "--"]).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr_of(&o));
        assert!(!exists(g.name()), "{args:?}: the group is removed");
    }
    let o = run(&["-q", "run", "--", "no-such-command-xyz"]);
    assert!(stderr_of(&o).contains("cannot run \"no-such-command-xyz\""), "{}", stderr_of(&o));
}

#[test]
fn run_joins_before_exec() {
    if !require(Tier::Root) {
        return;
    }
    let g = Group::new("join");
    let o = run(&["-q", "run", "--name", g.name(), "--pids", "10", "--", "cat", "/proc/self/cgroup"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let want = format!("/contlab/{}", g.name());
    let out = stdout_of(&o);
    let lines: Vec<&str> = out.lines().filter(|l| l.ends_with(&want)).collect();
    assert!(!lines.is_empty(), "the command runs in the group from its first instruction:\n{}", stdout_of(&o));
}

#[test]
fn run_forwards_signals_and_cleans_up() {
    if !require(Tier::Root) {
        return;
    }
    let g = Group::new("signal");
    let mut child = Command::new(harness::bin_path("cg-limit"))
        .args(["-q", "run", "--name", g.name(), "--", "sleep", "30"])
        .env("PATH", PATH)
        .spawn()
        .unwrap();
    // Wait until the command is in the group.
    let t0 = Instant::now();
    let filled = |name: &str| exists(name) && show(name)["procs"].as_array().is_some_and(|a| !a.is_empty());
    while !filled(g.name()) {
        assert!(t0.elapsed() < Duration::from_secs(10), "the group never filled");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(143), "sleep got the SIGTERM: 128 + 15");
    assert!(!exists(g.name()));
}

#[test]
fn leftover_processes_are_killed_when_the_command_ends() {
    if !require(Tier::Root) {
        return;
    }
    let g = Group::new("leftover");
    let t0 = Instant::now();
    let o = run(&["run", "--name", g.name(), "--", "sh", "-c", "sleep 30 & exit 0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(stderr_of(&o).contains("still in the group after the command ended: killing them"), "{}", stderr_of(&o));
    assert!(!exists(g.name()));
}

#[test]
fn create_set_show_ls_rm() {
    if !require(Tier::Root) {
        return;
    }
    let g = Group::new("cycle");
    let o = run(&["-q", "create", g.name(), "--memory", "32M", "--pids", "7"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    for d in stdout_of(&o).lines() {
        assert!(Path::new(d).is_dir(), "create prints the group's directories: {d}");
        assert!(d.ends_with(&format!("/contlab/{}", g.name())), "{d}");
    }
    let again = run(&["-q", "create", g.name()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr_of(&again).contains("already exists"), "{}", stderr_of(&again));
    // Raising the memory limit (v1: memsw first) and setting a CPU quota.
    let o = run(&["-q", "set", g.name(), "--memory", "128M", "--cpus", "1.5"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let v = show(g.name());
    assert_eq!(v["limits"]["memory_max"], 128 << 20, "{v:#}");
    assert_eq!(v["limits"]["cpu_quota_us"], 150000, "{v:#}");
    assert_eq!(v["limits"]["cpu_period_us"], 100000, "{v:#}");
    assert_eq!(v["limits"]["pids_max"], 7, "{v:#}");
    let o = run(&["-q", "set", g.name(), "--memory", "max", "--pids", "max"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let v = show(g.name());
    assert_eq!(v["limits"]["memory_max"], "max", "{v:#}");
    assert_eq!(v["limits"]["pids_max"], "max", "{v:#}");
    let text = stdout_of(&run(&["-q", "show", g.name()]));
    assert!(text.contains(&format!("group      contlab/{}", g.name())), "{text}");
    assert!(exists(g.name()));
    let o = run(&["-q", "add", g.name(), "999999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("ESRCH") && stderr_of(&o).contains("no process 999999999"), "{}", stderr_of(&o));
    let o = run(&["-q", "rm", g.name()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(!exists(g.name()));
}

#[test]
fn not_root_gets_told_to_run_as_root() {
    if !require(Tier::Root) {
        return;
    }
    // Drop to nobody with setpriv(1) (util-linux) and try both kinds of subcommand.
    let g = Group::new("nobody");
    let bin = harness::bin_path("cg-limit");
    for (args, code) in
        [(&["create", g.name(), "--memory", "64M"][..], 1), (&["run", "--pids", "5", "--", "true"][..], 125)]
    {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .arg("-q")
            .args(args)
            .env("PATH", PATH)
            .output()
            .expect("setpriv (util-linux)");
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr_of(&o));
        let err = stderr_of(&o);
        assert!(err.contains("EACCES (Permission denied)"), "{err}");
        assert!(err.contains("hint: cgroup files belong to root: run cg-limit as root"), "{err}");
    }
    assert!(!exists(g.name()));
}

#[test]
fn dry_run_on_this_machine_makes_nothing() {
    if !require(Tier::Root) {
        return;
    }
    let g = Group::new("dry");
    let o = run(&["--dry-run", "run", "--name", g.name(), "--memory", "64M", "--", "true"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("detected"), "{}", stderr_of(&o));
    assert!(!exists(g.name()));
}

/// The same behaviours on pure cgroup v2, inside the VM (`vm::guest_suite`): no
/// controller is enabled in the root's cgroup.subtree_control there, and no systemd.
mod guest {
    use super::*;

    fn subtree(dir: &str) -> String {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{dir}cgroup.subtree_control")).unwrap()
    }

    /// Put the tree in the state of a fresh boot, whatever ran before: no contlab/
    /// (its groups are removed by the tests that made them), nothing handed down at
    /// the root. A test fixture, written directly.
    fn fresh_v2_tree() {
        let contlab = Path::new("/sys/fs/cgroup/contlab");
        if contlab.exists() {
            std::fs::remove_dir(contlab)
                .unwrap_or_else(|e| panic!("{} still holds groups ({e}): see `cg-limit ls`", contlab.display()));
        }
        std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", "-cpu -io -memory -pids")
            .expect("take the controllers back from the root's children");
        for c in ["cpu", "io", "memory", "pids"] {
            assert!(!subtree("").split_whitespace().any(|x| x == c), "{c} still handed down: {}", subtree(""));
        }
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn detects_v2_and_hands_controllers_down() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        fresh_v2_tree();
        let g = Group::new("v2");
        let o = run(&["create", g.name(), "--memory", "64M"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let err = stderr_of(&o);
        assert!(err.contains("cgroup v2 (unified) detected"), "{err}");
        for dir in ["/sys/fs/cgroup", "/sys/fs/cgroup/contlab"] {
            let want = format!("write(\"{dir}/cgroup.subtree_control\", \"+cpu +io +memory +pids\") = 22");
            assert!(err.contains(&want), "cg-limit itself hands the controllers down at {dir}: {err}");
        }
        assert!(err.contains("mkdir(\"/sys/fs/cgroup/contlab\", 0o755) = 0"), "{err}");
        assert_eq!(stdout_of(&o).trim(), format!("/sys/fs/cgroup/contlab/{}", g.name()));
        for dir in ["", "contlab/"] {
            let on = subtree(dir);
            for c in ["cpu", "io", "memory", "pids"] {
                assert!(
                    on.split_whitespace().any(|x| x == c),
                    "{c} in /sys/fs/cgroup/{dir}cgroup.subtree_control: {on}"
                );
            }
        }
        let v = show(g.name());
        assert_eq!(v["version"], "v2");
        assert_eq!(v["limits"]["memory_max"], 64 << 20);
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn oom_kill_exits_137_and_is_counted() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::oom_kill("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn a_fork_bomb_stops_at_pids_max() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::fork_bomb("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn cpu_quota_throttles_a_busy_loop() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::cpu_throttle("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn kill_9_at_each_step_of_create_then_rm_kill_removes_what_remains() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::killed_while_creating("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn kill_9_while_the_command_runs_then_rm_kill_removes_the_group() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::killed_while_running("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn freeze_stops_a_busy_loop_and_thaw_resumes_it() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        checks::freeze_and_thaw("vm");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn device_rules_are_only_noted() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let g = Group::new("devices");
        let o = run(&["run", "--name", g.name(), "--allow-device", "c 1:3 rwm", "--", "true"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert!(stderr_of(&o).contains("eBPF"), "{}", stderr_of(&o));
        assert!(!stderr_of(&o).contains("devices.allow\""), "{}", stderr_of(&o));
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn rm_kill_uses_cgroup_kill() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let g = Group::new("kill");
        assert!(run(&["-q", "create", g.name(), "--pids", "50"]).status.success());
        let mut kids: Vec<_> = (0..3).map(|_| Command::new("sleep").arg("60").spawn().unwrap()).collect();
        for c in &kids {
            assert!(run(&["-q", "add", g.name(), &c.id().to_string()]).status.success());
        }
        let o = run(&["rm", g.name(), "--kill"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let want = format!("write(\"/sys/fs/cgroup/contlab/{}/cgroup.kill\", \"1\") = 1", g.name());
        assert!(stderr_of(&o).contains(&want), "{}", stderr_of(&o));
        for c in &mut kids {
            assert_eq!(std::os::unix::process::ExitStatusExt::signal(&c.wait().unwrap()), Some(9));
        }
        assert!(!exists(g.name()));
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn run_joins_before_exec() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let g = Group::new("join");
        let o = run(&["-q", "run", "--name", g.name(), "--cpus", "1", "--", "cat", "/proc/self/cgroup"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert_eq!(stdout_of(&o), format!("0::/contlab/{}\n", g.name()));
        assert!(!exists(g.name()));
    }
}

/// Device rules on cgroup v2: an eBPF program (`bpf(BPF_PROG_LOAD)` then
/// `BPF_PROG_ATTACH` to the group) decides each open: what a rule names opens, with
/// the access it gives, and nothing else. The test mounts a cgroup2 tree of its own
/// (every host has the v2 hierarchy, even when its controllers sit in v1), in a mount
/// namespace of its own.
#[test]
fn v2_device_rules_are_an_ebpf_program() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let script = format!(
        r#"set -e; mkdir {d}/cg; mount -t cgroup2 none {d}/cg
before=$(ls {d}/cg/contlab 2>/dev/null | wc -l)
cg-limit --cgroup-root {d}/cg run --allow-device 'c 1:3 rwm' --allow-device 'c 1:9 r' -- sh -c '
  echo hi > /dev/null && echo null: written
  head -c1 /dev/urandom > /dev/null && echo urandom: read
  (echo x > /dev/urandom) 2>/dev/null || echo urandom: write refused
  (head -c1 /dev/zero) 2>/dev/null || echo zero: refused'
[ "$(ls {d}/cg/contlab 2>/dev/null | wc -l)" = "$before" ] && echo group removed"#,
        d = t.path().display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env(
            "PATH",
            format!(
                "{}:{}",
                harness::bin_path("cg-limit").parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "null: written\nurandom: read\nurandom: write refused\nzero: refused\ngroup removed\n");
    let err = stderr_of(&o);
    assert!(err.contains("bpf(BPF_PROG_LOAD, {prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt="), "{err}");
    assert!(err.contains("attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI}"), "{err}");
}
