//! Unit tests of the lab's flows, on fake trees with a recording kernel (and, where
//! a real directory must change, a live kernel on a temp dir).

use super::*;
use crate::kernel::{Kind, Ret, Tracer};
use testing::*;

fn name(s: &str) -> GroupName {
    s.parse().unwrap()
}

#[test]
fn group_names() {
    for ok in ["web", "lab/db", "run-42", "a.b", "x_y"] {
        assert!(ok.parse::<GroupName>().is_ok(), "{ok}");
    }
    let cases = [
        ("", "empty"),
        ("/web", "leading /"),
        ("..", ".. are not allowed"),
        ("a/../b", ".. are not allowed"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("./a", ". and .."),
        ("memory.max", "interface file"),
        ("a/cgroup.procs", "interface file"),
        ("tasks", "interface file"),
        ("a\nb", "control characters"),
    ];
    for (bad, why) in cases {
        let e = bad.parse::<GroupName>().unwrap_err();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
    assert_eq!(
        name("a/b/c").ancestors_in(Path::new("/r")),
        [PathBuf::from("/r/contlab"), PathBuf::from("/r/contlab/a"), PathBuf::from("/r/contlab/a/b")]
    );
    assert_eq!(name("x").dir_in(Path::new("/r")), PathBuf::from("/r/contlab/x"));
    assert!(GroupName::transient().as_str().starts_with("run-"));
}

#[test]
fn interface_files_are_not_groups() {
    for f in [
        "cgroup.procs",
        "memory.max",
        "cpu.stat",
        "cpuacct.usage",
        "tasks",
        "io.weight",
        "pids.events",
        "notify_on_release",
    ] {
        assert!(!is_group_entry(f), "{f}");
    }
    for g in ["web", "run-42", "memoryhog", "a.b"] {
        assert!(is_group_entry(g), "{g}");
    }
}

#[test]
fn flat_keyed_files() {
    let t = "usage_usec 1500000\nnr_throttled 10\n";
    assert_eq!(keyed(t, "nr_throttled"), Some(10));
    assert_eq!(keyed(t, "usage_usec"), Some(1500000));
    assert_eq!(keyed(t, "usage"), None);
}

#[test]
fn eacces_says_run_as_root() {
    let err = SysError { call: "mkdir(\"/sys/fs/cgroup/contlab\", 0o755)".into(), errno: Errno::EACCES };
    let msg = privileged::<()>(Err(err)).unwrap_err().to_string();
    assert!(msg.contains("EACCES"), "{msg}");
    assert!(msg.contains("hint: cgroup files belong to root: run cg-limit as root"), "{msg}");
    let err = SysError { call: "write(...)".into(), errno: Errno::EROFS };
    let msg = privileged::<()>(Err(err)).unwrap_err().to_string();
    assert!(msg.contains("read-only"), "{msg}");
}

/// The writes (path relative to the fake root, value) a recording kernel saw.
fn writes(k: &Kernel, root: &Path) -> Vec<(String, String)> {
    k.events()
        .into_iter()
        .filter(|e| e.call == "write")
        .map(|e| {
            let p = e.args[0].trim_matches('"').replace(&*root.to_string_lossy(), "");
            (p, e.args[1].trim_matches('"').to_string())
        })
        .collect()
}

fn calls(k: &Kernel, root: &Path, call: &str) -> Vec<String> {
    k.events()
        .into_iter()
        .filter(|e| e.call == call)
        .map(|e| e.args[0].trim_matches('"').replace(&*root.to_string_lossy(), ""))
        .collect()
}

fn limits() -> Limits {
    Limits {
        memory: Some(Max::Value(64 << 20)),
        cpus: Some(Cpus::Quota { quota_us: 50_000, period_us: 100_000 }),
        pids: Some(Max::Value(20)),
        io_weight: None,
        cpuset: None,
    }
}

#[test]
fn create_on_v2_writes_these_files() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    let mut out = Vec::new();
    let cmd = Cmd::Create { name: name("web"), limits: limits() };
    execute(&k, t.path(), cmd, &mut out).unwrap();
    assert_eq!(calls(&k, t.path(), "mkdir"), ["/contlab", "/contlab/web"]);
    let w = writes(&k, t.path());
    let want: Vec<(String, String)> = [
        ("/cgroup.subtree_control", "+cpu +io +memory +pids"),
        ("/contlab/cgroup.subtree_control", "+cpu +io +memory +pids"),
        ("/contlab/web/memory.max", "67108864"),
        ("/contlab/web/memory.swap.max", "0"),
        ("/contlab/web/cpu.max", "50000 100000"),
        ("/contlab/web/pids.max", "20"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(w, want);
    assert_eq!(String::from_utf8(out).unwrap(), format!("{}/contlab/web\n", t.path().display()));
}

#[test]
fn v2_enables_only_missing_controllers_and_errors_on_absent_ones() {
    let t = fake_v2();
    std::fs::write(t.path().join("cgroup.subtree_control"), "cpu memory\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let l = Limits { pids: Some(Max::Value(5)), ..Limits::default() };
    execute(&k, t.path(), Cmd::Create { name: name("a"), limits: l }, &mut Vec::new()).unwrap();
    assert_eq!(writes(&k, t.path())[0], ("/cgroup.subtree_control".to_string(), "+io +pids".to_string()));

    std::fs::write(t.path().join("cgroup.controllers"), "cpu io memory\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let l = Limits { pids: Some(Max::Value(5)), ..Limits::default() };
    let e = execute(&k, t.path(), Cmd::Create { name: name("a"), limits: l }, &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("the pids controller is not available"), "{msg}");
    assert!(msg.contains("cgroup.controllers"), "{msg}");
    assert!(calls(&k, t.path(), "mkdir").is_empty(), "nothing is made before the check");
}

#[test]
fn create_on_v1_writes_these_files() {
    let t = fake_v1(true);
    let k = Kernel::recording("cg-limit");
    let mut l = limits();
    l.cpuset = Some("0".into());
    execute(&k, t.path(), Cmd::Create { name: name("web"), limits: l }, &mut Vec::new()).unwrap();
    let mk = calls(&k, t.path(), "mkdir");
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio", "cpuset"] {
        assert!(mk.contains(&format!("/{h}/contlab")), "{h}: {mk:?}");
        assert!(mk.contains(&format!("/{h}/contlab/web")), "{h}: {mk:?}");
    }
    assert!(!mk.iter().any(|m| m.starts_with("/systemd") || m.starts_with("/unified")), "{mk:?}");
    let w = writes(&k, t.path());
    let has = |p: &str, v: &str| w.contains(&(p.to_string(), v.to_string()));
    assert!(has("/memory/contlab/web/memory.limit_in_bytes", "67108864"), "{w:?}");
    assert!(has("/memory/contlab/web/memory.memsw.limit_in_bytes", "67108864"), "{w:?}");
    assert!(has("/cpu/contlab/web/cpu.cfs_period_us", "100000"), "{w:?}");
    assert!(has("/cpu/contlab/web/cpu.cfs_quota_us", "50000"), "{w:?}");
    assert!(has("/pids/contlab/web/pids.max", "20"), "{w:?}");
    // cpuset: the parent copies the root's cpus and mems; the group gets the
    // asked cpus and the mems copied down.
    assert!(has("/cpuset/contlab/cpuset.cpus", "0-1"), "{w:?}");
    assert!(has("/cpuset/contlab/cpuset.mems", "0"), "{w:?}");
    assert!(has("/cpuset/contlab/web/cpuset.cpus", "0"), "{w:?}");
    assert!(has("/cpuset/contlab/web/cpuset.mems", "0"), "{w:?}");
    let limit = w.iter().position(|x| x.0.ends_with("memory.limit_in_bytes")).unwrap();
    let memsw = w.iter().position(|x| x.0.ends_with("memory.memsw.limit_in_bytes")).unwrap();
    assert!(limit < memsw, "a new group's limit is lowered before memsw");
}

#[test]
fn v1_io_weight_needs_a_weight_file() {
    // The weight files exist only below a hierarchy's root. A dry-run create cannot
    // look into the group it does not make, so it assumes and says so.
    let t = fake_v1(false);
    let k = Kernel::recording("cg-limit");
    let l = Limits { io_weight: Some(100), ..Limits::default() };
    execute(&k, t.path(), Cmd::Create { name: name("w"), limits: l.clone() }, &mut Vec::new()).unwrap();
    assert!(writes(&k, t.path()).contains(&("/blkio/contlab/w/blkio.weight".into(), "500".into())), "CFQ scale x5");
    assert!(k.events().iter().any(|e| e.call == "note" && e.args[0].contains("assuming it would have blkio.weight")));

    // An existing group without either file: a clear error naming both.
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
        std::fs::create_dir_all(t.path().join(h).join("contlab/w")).unwrap();
        std::fs::write(t.path().join(h).join("contlab/w/cgroup.procs"), "").unwrap();
    }
    let k = Kernel::recording("cg-limit");
    let e = execute(&k, t.path(), Cmd::Set { name: name("w"), limits: l.clone() }, &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("io weight not available"), "{msg}");
    assert!(msg.contains("blkio.weight") && msg.contains("blkio.bfq.weight"), "{msg}");
    assert!(msg.contains("/blkio/contlab/w"), "{msg}");

    // With BFQ's file: its own 1..1000 scale, and a note on when it acts.
    std::fs::write(t.path().join("blkio/contlab/w/blkio.bfq.weight"), "100\n").unwrap();
    let k = Kernel::recording("cg-limit");
    execute(&k, t.path(), Cmd::Set { name: name("w"), limits: l }, &mut Vec::new()).unwrap();
    assert_eq!(writes(&k, t.path()), [("/blkio/contlab/w/blkio.bfq.weight".to_string(), "100".to_string())]);
    assert!(k.events().iter().any(|e| e.call == "note" && e.args[0].contains("scheduler is bfq")));
}

#[test]
fn a_failed_create_removes_what_it_made() {
    // A live kernel on a fake v2 tree: mkdir really happens, and the write of
    // cpu.max fails because the fake group has no such file (ENOENT here; on a
    // real tree EINVAL or EACCES would do the same).
    let t = fake_v2();
    fake_v2_group(&t.path().join("contlab"), "");
    std::fs::write(t.path().join("contlab/cgroup.subtree_control"), "cpu io memory pids\n").unwrap();
    let k = Kernel::new("cg-limit", Mode::Live, Tracer::silent());
    let l = Limits { cpus: Some(Cpus::Max), ..Limits::default() };
    let e = execute(&k, t.path(), Cmd::Create { name: name("half"), limits: l }, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("cpu.max"), "{e}");
    assert!(!t.path().join("contlab/half").exists(), "the half-made group was removed");
    assert!(t.path().join("contlab").exists(), "the shared parent stays");
}

#[test]
fn show_reads_a_v2_group() {
    let t = fake_v2();
    fake_v2_group(&t.path().join("contlab/web"), "42\n43\n");
    std::fs::write(t.path().join("contlab/web/memory.max"), "67108864\n").unwrap();
    std::fs::write(t.path().join("contlab/web/cpu.max"), "50000 100000\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let mut out = Vec::new();
    execute(&k, t.path(), Cmd::Show { name: name("web"), json: true }, &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["version"], "v2");
    assert_eq!(v["procs"], serde_json::json!([42, 43]));
    assert_eq!(v["limits"]["memory_max"], 67108864);
    assert_eq!(v["limits"]["cpu_quota_us"], 50000);
    assert_eq!(v["limits"]["pids_max"], "max");
    assert_eq!(v["limits"]["io_weight"], 100);
    assert_eq!(v["memory"]["peak"], 2097152);
    assert_eq!(v["cpu"]["usage_usec"], 1500000);
    assert_eq!(v["cpu"]["nr_throttled"], 10);
    assert_eq!(v["cpu"]["throttled_usec"], 900000);
    assert_eq!(v["pids"]["current"], 2);
    assert_eq!(v["events"]["oom_kill"], 1);
    assert_eq!(v["events"]["pids_max"], 4);

    let mut out = Vec::new();
    execute(&k, t.path(), Cmd::Show { name: name("web"), json: false }, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for want in ["contlab/web", "64.0M", "1.500s", "10 of 20 periods", "oom_kill 1", "pids max 4", "42 43"] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

#[test]
fn show_names_the_missing_path() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    let e = execute(&k, t.path(), Cmd::Show { name: name("nosuch"), json: false }, &mut Vec::new()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&format!("{}/contlab/nosuch does not exist", t.path().display())), "{msg}");
}

#[test]
fn rm_refuses_a_busy_group_and_kills_with_cgroup_kill() {
    let t = fake_v2();
    fake_v2_group(&t.path().join("contlab/busy"), "42\n");
    let k = Kernel::recording("cg-limit");
    let e = execute(&k, t.path(), Cmd::Rm { name: name("busy"), kill: false }, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("not empty: 1 process(es) in cgroup.procs (42)"), "{e}");
    assert!(e.to_string().contains("cg-limit rm busy --kill"), "{e}");
    assert!(calls(&k, t.path(), "rmdir").is_empty());

    // With cgroup.kill (v2, Linux 5.14+): one write kills the group.
    std::fs::write(t.path().join("contlab/busy/cgroup.kill"), "").unwrap();
    let k = Kernel::recording("cg-limit");
    execute(&k, t.path(), Cmd::Rm { name: name("busy"), kill: true }, &mut Vec::new()).unwrap();
    assert_eq!(writes(&k, t.path()), [("/contlab/busy/cgroup.kill".to_string(), "1".to_string())]);
    assert_eq!(calls(&k, t.path(), "rmdir"), ["/contlab/busy"]);

    // Without it: SIGKILL to each PID.
    std::fs::remove_file(t.path().join("contlab/busy/cgroup.kill")).unwrap();
    let k = Kernel::recording("cg-limit");
    execute(&k, t.path(), Cmd::Rm { name: name("busy"), kill: true }, &mut Vec::new()).unwrap();
    let kills: Vec<_> = k.events().into_iter().filter(|e| e.call == "kill").collect();
    assert_eq!(kills.len(), 1);
    assert_eq!(kills[0].args, ["42", "SIGKILL"]);
}

#[test]
fn ls_lists_nested_groups() {
    let t = fake_v2();
    fake_v2_group(&t.path().join("contlab/a"), "");
    fake_v2_group(&t.path().join("contlab/a/b"), "");
    fake_v2_group(&t.path().join("contlab/c"), "");
    let k = Kernel::recording("cg-limit");
    let mut out = Vec::new();
    execute(&k, t.path(), Cmd::Ls, &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "a\na/b\nc\n");
}

#[test]
fn run_joins_before_exec_and_removes_the_group() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    let a = RunArgs { limits: limits(), name: Some(name("r")), keep: false, cmd: vec!["true".into()] };
    let exit = execute(&k, t.path(), Cmd::Run(a), &mut Vec::new()).unwrap();
    assert_eq!(exit, Exit::Status(0));
    let ev = k.events();
    let join = ev.iter().position(|e| e.call == "write" && e.args[0].ends_with("cgroup.procs\"")).unwrap();
    let exec = ev.iter().position(|e| e.call == "execve").unwrap();
    let mkdir = ev.iter().rposition(|e| e.call == "mkdir").unwrap();
    let rmdir = ev.iter().position(|e| e.call == "rmdir").unwrap();
    assert!(mkdir < join && join < exec && exec < rmdir, "mkdir, join, exec, rmdir in order");
    assert_eq!(ev[join].args[1], "\"0\"");
    assert_ne!(ev[join].pid, ev[0].pid, "the child joins, not cg-limit");
    assert!(matches!(ev[exec].ret, Ret::Ok(_)));
    assert!(ev.iter().all(|e| e.kind != Kind::Note || !e.args[0].contains("oom")));
}
