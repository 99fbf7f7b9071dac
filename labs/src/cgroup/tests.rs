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
        ..Limits::default()
    }
}

/// The setup of the (fake) tree at `root`.
fn cgroups(k: &Kernel, root: &Path) -> Cgroups {
    Cgroups::detect(k, root).unwrap()
}

fn create(k: &Kernel, root: &Path, g: &str, l: Limits) -> Result<Group> {
    Group::create(k, &cgroups(k, root), &name(g), &l)
}

#[test]
fn create_on_v2_writes_these_files() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    let g = create(&k, t.path(), "web", limits()).unwrap();
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
    assert_eq!(g.dirs(), [t.path().join("contlab/web")]);
    assert_eq!(g.procs_files(), [t.path().join("contlab/web/cgroup.procs")]);
}

#[test]
fn v2_enables_only_missing_controllers_and_errors_on_absent_ones() {
    let t = fake_v2();
    std::fs::write(t.path().join("cgroup.subtree_control"), "cpu memory\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let l = Limits { pids: Some(Max::Value(5)), ..Limits::default() };
    create(&k, t.path(), "a", l).unwrap();
    assert_eq!(writes(&k, t.path())[0], ("/cgroup.subtree_control".to_string(), "+io +pids".to_string()));

    std::fs::write(t.path().join("cgroup.controllers"), "cpu io memory\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let l = Limits { pids: Some(Max::Value(5)), ..Limits::default() };
    let e = create(&k, t.path(), "a", l).unwrap_err();
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
    create(&k, t.path(), "web", l).unwrap();
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
    create(&k, t.path(), "w", l.clone()).unwrap();
    assert!(writes(&k, t.path()).contains(&("/blkio/contlab/w/blkio.weight".into(), "500".into())), "CFQ scale x5");
    assert!(k.events().iter().any(|e| e.call == "note" && e.args[0].contains("assuming it would have blkio.weight")));

    // An existing group without either file: a clear error naming both.
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
        std::fs::create_dir_all(t.path().join(h).join("contlab/w")).unwrap();
        std::fs::write(t.path().join(h).join("contlab/w/cgroup.procs"), "").unwrap();
    }
    let k = Kernel::recording("cg-limit");
    let e = Group::open(&k, &cgroups(&k, t.path()), &name("w")).unwrap().set(&k, &l).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("io weight not available"), "{msg}");
    assert!(msg.contains("blkio.weight") && msg.contains("blkio.bfq.weight"), "{msg}");
    assert!(msg.contains("/blkio/contlab/w"), "{msg}");

    // With BFQ's file: its own 1..1000 scale, and a note on when it acts.
    std::fs::write(t.path().join("blkio/contlab/w/blkio.bfq.weight"), "100\n").unwrap();
    let k = Kernel::recording("cg-limit");
    Group::open(&k, &cgroups(&k, t.path()), &name("w")).unwrap().set(&k, &l).unwrap();
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
    let e = create(&k, t.path(), "half", l).unwrap_err();
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

fn run_spec(g: &str) -> Run {
    Run { name: name(g), limits: limits(), argv: vec!["true".into()], keep: false }
}

#[test]
fn run_joins_before_exec_and_removes_the_group() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    let mut reports = 0;
    let st = run_command(&k, &cgroups(&k, t.path()), &run_spec("r"), &mut |_| reports += 1).unwrap();
    assert_eq!(st, Exited::Code(0));
    assert_eq!(reports, 0, "a dry run reads no event");
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

/// Make each mkdir and each write of a successful `create` fail in turn: the error
/// comes back, nothing is made after it, and the rmdirs after it remove exactly the
/// directories made before it, last made first (parents included: nothing is left).
fn rolls_back_at_every_step(root: &Path, l: &Limits) -> usize {
    let k = Kernel::recording("cg-limit");
    create(&k, root, "lab/web", l.clone()).unwrap();
    let count = |call: &str| k.events().iter().filter(|e| e.call == call).count();
    let steps: Vec<(&str, usize)> =
        (1..=count("mkdir")).map(|n| ("mkdir", n)).chain((1..=count("write")).map(|n| ("write", n))).collect();
    for &(call, n) in &steps {
        let k = Kernel::recording("cg-limit");
        let cg = cgroups(&k, root);
        k.inject(call, n as u64, Errno::EACCES);
        let e = Group::create(&k, &cg, &name("lab/web"), l).unwrap_err();
        assert!(e.to_string().contains("EACCES") && e.to_string().contains("run cg-limit as root"), "{call} #{n}: {e}");
        let ev = k.events();
        let failed = ev.iter().position(|e| e.ret == Ret::Err(Errno::EACCES)).unwrap();
        assert_eq!(ev[failed].call, call);
        let paths = |evs: &[crate::kernel::Event], c: &str| -> Vec<String> {
            evs.iter().filter(|e| e.call == c).map(|e| e.args[0].clone()).collect()
        };
        let mut made = paths(&ev[..failed], "mkdir");
        made.reverse();
        assert_eq!(paths(&ev[failed..], "rmdir"), made, "{call} #{n}: the undo removes what was made, last first");
        assert!(
            ev[failed + 1..].iter().all(|e| e.call != "mkdir" && e.call != "write"),
            "{call} #{n}: nothing is made after the failure"
        );
    }
    steps.len()
}

#[test]
fn create_rolls_back_at_every_step_on_v2() {
    let t = fake_v2();
    let steps = rolls_back_at_every_step(t.path(), &limits());
    assert_eq!(steps, 3 + 7, "mkdir contlab, contlab/lab, contlab/lab/web; 3 subtree_control + 4 limits");
}

#[test]
fn create_rolls_back_at_every_step_on_v1() {
    let t = fake_v1(true);
    let rule = limits::parse_device_rule("c 1:3 rwm").unwrap();
    let l = Limits { cpuset: Some("0".into()), devices: Some(vec![rule]), ..limits() };
    let steps = rolls_back_at_every_step(t.path(), &l);
    assert!(steps > 20, "{steps} steps: 7 hierarchies x 3 directories, cpusets, limits, devices");
}

#[test]
fn run_discards_the_group_when_the_command_cannot_join_it() {
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    // 6 writes make the group (2 subtree_control, 4 limits); the 7th is the child's join.
    k.inject("write", 7, Errno::EACCES);
    let e = run_command(&k, &cgroups(&k, t.path()), &run_spec("r"), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("joining the group contlab/r"), "{e}");
    assert_eq!(calls(&k, t.path(), "rmdir"), ["/contlab/r", "/contlab"], "what create made, last first");
    assert!(!k.events().iter().any(|e| e.call == "execve"));
}

#[test]
fn devices_v1_deny_all_then_allow_each_rule_v2_attaches_a_program() {
    let rules: Vec<DeviceRule> =
        ["c 1:3 rwm", "c 1:5 rw"].iter().map(|r| limits::parse_device_rule(r).unwrap()).collect();
    let l = Limits { devices: Some(rules), ..Limits::default() };
    let t = fake_v1(false);
    let k = Kernel::recording("cg-limit");
    create(&k, t.path(), "d", l.clone()).unwrap();
    assert!(calls(&k, t.path(), "mkdir").contains(&"/devices/contlab/d".to_string()));
    let dev: Vec<(String, String)> = writes(&k, t.path()).into_iter().filter(|w| w.0.starts_with("/devices")).collect();
    let want = [("devices.deny", "a"), ("devices.allow", "c 1:3 rwm"), ("devices.allow", "c 1:5 rw")];
    let want: Vec<(String, String)> =
        want.iter().map(|(f, v)| (format!("/devices/contlab/d/{f}"), v.to_string())).collect();
    assert_eq!(dev, want);
    // Without rules, no group in the devices (or freezer) hierarchy.
    let k = Kernel::recording("cg-limit");
    create(&k, t.path(), "plain", limits()).unwrap();
    assert!(!calls(&k, t.path(), "mkdir").iter().any(|m| m.starts_with("/devices") || m.starts_with("/freezer")));
    // cgroup v2: no file; an eBPF program loaded, then attached to the group's directory.
    let t = fake_v2();
    let k = Kernel::recording("cg-limit");
    create(&k, t.path(), "d", l).unwrap();
    assert!(!writes(&k, t.path()).iter().any(|w| w.0.contains("devices")));
    let bpf: Vec<String> = k.events().into_iter().filter(|e| e.call == "bpf").map(|e| e.args[0].clone()).collect();
    assert_eq!(bpf, ["BPF_PROG_LOAD", "BPF_PROG_ATTACH"]);
    let attach = k.events().into_iter().filter(|e| e.call == "bpf").nth(1).unwrap().args[1].clone();
    assert!(attach.contains("contlab/d>") && attach.contains("BPF_CGROUP_DEVICE"), "{attach}");
    assert!(k
        .events()
        .iter()
        .any(|e| e.call == "note" && e.args[0].contains("eBPF") && e.args[0].contains("c 1:3 rwm")));
}

#[test]
fn freeze_and_thaw_on_v2() {
    let t = fake_v2();
    fake_v2_group(&t.path().join("contlab/web"), "42\n");
    std::fs::write(t.path().join("contlab/web/cgroup.freeze"), "0\n").unwrap();
    let k = Kernel::recording("cg-limit");
    let cg = cgroups(&k, t.path());
    let mut g = Group::open(&k, &cg, &name("web")).unwrap();
    g.freeze(&k).unwrap();
    g.thaw(&k).unwrap();
    let freeze = "/contlab/web/cgroup.freeze".to_string();
    assert_eq!(writes(&k, t.path()), [(freeze.clone(), "1".into()), (freeze, "0".into())]);
    assert!(k.events().iter().any(|e| e.call == "note" && e.args[0].contains("not waiting until every task")));

    // Live, on the fake tree: the write happens, then cgroup.events is read until it
    // says frozen 1.
    std::fs::write(t.path().join("contlab/web/cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    let k = Kernel::new("cg-limit", Mode::Live, Tracer::silent());
    let mut g = Group::open(&k, &cgroups(&k, t.path()), &name("web")).unwrap();
    g.freeze(&k).unwrap();
    assert_eq!(std::fs::read_to_string(t.path().join("contlab/web/cgroup.freeze")).unwrap(), "1\n");
}

#[test]
fn freeze_on_v1_joins_the_freezer_hierarchy_first() {
    let t = fake_v1(false);
    for h in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
        std::fs::create_dir_all(t.path().join(h).join("contlab/web")).unwrap();
        std::fs::write(t.path().join(h).join("contlab/web/cgroup.procs"), "42\n").unwrap();
    }
    let k = Kernel::recording("cg-limit");
    let cg = cgroups(&k, t.path());
    let mut g = Group::open(&k, &cg, &name("web")).unwrap();
    g.thaw(&k).unwrap();
    assert!(writes(&k, t.path()).is_empty(), "nothing frozen, nothing to thaw");
    g.freeze(&k).unwrap();
    assert_eq!(calls(&k, t.path(), "mkdir"), ["/freezer/contlab", "/freezer/contlab/web"]);
    assert_eq!(
        writes(&k, t.path()),
        [
            ("/freezer/contlab/web/cgroup.procs".to_string(), "42".to_string()),
            ("/freezer/contlab/web/freezer.state".to_string(), "FROZEN".to_string())
        ]
    );
    assert!(g.dirs().contains(&t.path().join("freezer/contlab/web")));
}
