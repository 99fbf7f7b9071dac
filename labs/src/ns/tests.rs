//! Unit tests: the flags' implications, and the requests each part of a [`Spec`]
//! makes, in order, against the recording kernel (failures injected where a rollback
//! or a fallback is at stake).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::kernel::{Event, Kind, Ret};

const ROOT: UserIds = UserIds { uid: 0, euid: 0, gid: 0, egid: 0 };
const USER: UserIds = UserIds { uid: 1000, euid: 1000, gid: 1000, egid: 1000 };

fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
    let mut a = RunArgs { command: vec!["true".into()], ..RunArgs::default() };
    f(&mut a);
    a
}

fn launch() -> Launch {
    Launch { argv: vec!["true".into()], init: false, detach: false, report: |_| {} }
}

/// (pid, call, first argument) of every request (not notes).
fn calls(k: &Kernel) -> Vec<(i32, String, String)> {
    k.events()
        .into_iter()
        .filter(|e| e.kind != Kind::Note)
        .map(|e: Event| (e.pid, e.call, e.args.first().cloned().unwrap_or_default()))
        .collect()
}

fn names(k: &Kernel, skip: &[&str]) -> Vec<String> {
    calls(k).into_iter().map(|c| c.1).filter(|c| !skip.contains(&c.as_str())).collect()
}

#[test]
fn implications() {
    let s = args(|a| {
        a.hostname = Some("box".into());
        a.mount_proc = true;
    })
    .spec(ROOT)
    .unwrap();
    assert_eq!(s.kinds, vec![NsKind::Mount, NsKind::Uts]);
    let s = args(|a| a.all = true).spec(USER).unwrap();
    assert_eq!(s.kinds.len(), 8);
    assert_eq!(s.uid_map, vec![IdMap { inside: 0, outside: 1000, count: 1 }]);
    assert!(!s.needs_map_helper(USER));
    let s = args(|a| a.masked_path = vec!["/proc/kcore".into()]).spec(ROOT).unwrap();
    assert_eq!(s.kinds, vec![NsKind::Mount], "masking needs a mount namespace");
}

#[test]
fn explicit_maps_need_the_helper() {
    let s = args(|a| a.uid_map = vec!["0:100000:65536".into()]).spec(ROOT).unwrap();
    assert!(s.needs_map_helper(ROOT));
    assert_eq!(s.kinds, vec![NsKind::User]);
    let s = args(|a| a.uid_map = vec!["0:1000:1".into()]).spec(USER).unwrap();
    assert!(!s.needs_map_helper(USER), "one's own id can be mapped from inside");
}

#[test]
fn bad_flags_are_usage_errors() {
    for bad in ["0:1", "a:b:c", "0:1:0", "0:1:2:3", ""] {
        assert!(matches!(IdMap::parse(bad), Err(Error::Usage(_))), "{bad}");
    }
    let both = args(|a| {
        a.map_root = true;
        a.uid_map = vec!["0:0:1".into()];
    });
    assert!(matches!(both.spec(ROOT), Err(Error::Usage(_))));
    for f in [
        args(|a| a.bind = vec!["/only-a-source".into()]),
        args(|a| a.env = vec!["NOEQUALS".into()]),
        args(|a| a.setuid = Some("1000".into())),
        args(|a| a.setuid = Some("a:b".into())),
    ] {
        assert!(matches!(f.spec(ROOT), Err(Error::Usage(_))), "{f:?}");
    }
}

#[test]
fn a_spec_is_checked_before_anything_is_made() {
    let m = |t: &str| Mount {
        source: None,
        target: t.into(),
        fstype: Some("tmpfs".into()),
        flags: MsFlags::empty(),
        data: None,
    };
    for spec in [
        Spec { kinds: vec![NsKind::Mount], mounts: vec![m("../etc")], ..Spec::default() },
        Spec { kinds: vec![NsKind::Mount], mounts: vec![m("")], ..Spec::default() },
        Spec { kinds: vec![NsKind::Mount], masked: vec!["relative".into()], ..Spec::default() },
        Spec { kinds: vec![NsKind::Uts], mounts: vec![m("tmp")], ..Spec::default() },
        Spec { rootfs: Some("/srv/root".into()), ..Spec::default() },
    ] {
        let k = Kernel::recording(TOOL);
        assert!(create(&k, &spec, ROOT, &launch()).is_err(), "{spec:?}");
        assert!(calls(&k).is_empty(), "refused before any request: {:?}", calls(&k));
    }
}

#[test]
fn inode_parsing() {
    assert_eq!(show::inode_of("net:[4026531840]"), Some(4026531840));
    assert_eq!(show::inode_of("garbage"), None);
}

#[test]
fn dry_run_unshares_then_forks_then_sets_up_the_child() {
    let k = Kernel::recording(TOOL);
    let s = args(|a| {
        a.pid = true;
        a.hostname = Some("box".into());
        a.mount_proc = true;
    })
    .spec(ROOT)
    .unwrap();
    create(&k, &s, ROOT, &launch()).unwrap();
    let n = names(&k, &["access"]);
    assert_eq!(
        n,
        ["unshare", "rt_sigprocmask", "fork", "sethostname", "mount", "mount", "rt_sigaction", "execve", "wait4"]
    );
    assert_eq!(calls(&k)[0].2, "CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID");
}

#[test]
fn the_map_helper_writes_where_it_really_runs() {
    // The helper waits for SIGUSR1, sent once the parent has unshared: its writes come
    // after the parent's unshare and kill, under the helper's own PID.
    let k = Kernel::recording(TOOL);
    let s = args(|a| {
        a.uid_map = vec!["0:100000:65536".into()];
        a.gid_map = vec!["0:100000:65536".into()];
    })
    .spec(ROOT)
    .unwrap();
    create(&k, &s, ROOT, &launch()).unwrap();
    let c = calls(&k);
    let n: Vec<&str> = c.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        &n[..9],
        ["rt_sigprocmask", "fork", "unshare", "kill", "rt_sigtimedwait", "write", "write", "wait4", "rt_sigprocmask"]
    );
    let me = c[0].0;
    assert!(c[4].0 != me && c[5].0 == c[4].0 && c[6].0 == c[4].0, "the helper's own requests: {c:?}");
    assert!(c[5].2.ends_with("/uid_map\"") && c[6].2.ends_with("/gid_map\""), "{c:?}");
    assert_eq!((c[3].0, c[7].0), (me, me));
}

#[test]
fn a_failed_unshare_kills_the_helper_before_it_writes() {
    let k = Kernel::recording(TOOL);
    k.inject("unshare", 1, Errno::EPERM);
    let s = args(|a| a.uid_map = vec!["0:100000:65536".into()]).spec(USER).unwrap();
    let e = create(&k, &s, USER, &launch()).unwrap_err();
    assert!(e.to_string().contains("unprivileged user namespaces"), "{e}");
    let c = calls(&k);
    let n: Vec<&str> = c.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(n, ["rt_sigprocmask", "fork", "unshare", "kill", "wait4"], "{c:?}");
    let ev = k.events();
    let fork = ev.iter().find(|e| e.call == "fork").unwrap();
    let kill = ev.iter().find(|e| e.call == "kill").unwrap();
    assert_eq!(Ret::Ok(kill.args[0].clone()), fork.ret, "kill names the helper");
    assert_eq!(kill.args[1], "SIGKILL");
}

fn full_spec(rootfs: &str) -> Spec {
    Spec {
        kinds: vec![NsKind::User, NsKind::Mount, NsKind::Uts, NsKind::Pid],
        hostname: Some("box".into()),
        rootfs: Some(rootfs.into()),
        mount_proc: true,
        mounts: vec![
            Mount {
                source: Some("tmpfs".into()),
                target: "/dev".into(),
                fstype: Some("tmpfs".into()),
                flags: MsFlags::MS_NOSUID,
                data: Some("mode=755".into()),
            },
            Mount {
                source: Some("/srv/data".into()),
                target: "data".into(),
                fstype: None,
                flags: MsFlags::MS_BIND | MsFlags::MS_REC,
                data: None,
            },
        ],
        masked: vec!["/proc/kcore".into()],
        readonly: vec!["/proc/sys".into()],
        uid_map: vec![IdMap { inside: 0, outside: 0, count: 1 }],
        gid_map: vec![IdMap { inside: 0, outside: 0, count: 1 }],
        clocks: Clocks::default(),
        env: Some(vec!["PATH=/opt/bin:/usr/bin".into(), "HOME=/root".into()]),
        cwd: Some("/data".into()),
        user: Some(User { uid: 1000, gid: 100, groups: vec![10, 20] }),
        ..Spec::default()
    }
}

#[test]
fn setup_child_makes_each_part_of_the_spec_in_order() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_str().unwrap();
    let k = Kernel::recording(TOOL);
    create(&k, &full_spec(root), ROOT, &launch()).unwrap();
    let c = calls(&k);
    let fork = c.iter().position(|c| c.1 == "fork").unwrap();
    let child: Vec<(String, String)> =
        c[fork + 1..].iter().filter(|x| x.0 == c[fork + 1].0).map(|x| (x.1.clone(), x.2.clone())).collect();
    let quoted = format!("{root:?}");
    let want: Vec<(&str, &str)> = vec![
        ("sethostname", "\"box\""),
        ("mount", "NULL"),
        ("mount", &quoted),
        ("chdir", &quoted),
        ("mount", "\"proc\""),
        // Each mount's target resolved inside the new root first (CVE-2021-30465).
        ("openat2", "AT_FDCWD"),
        ("mount", "\"tmpfs\""),
        ("openat2", "AT_FDCWD"),
        ("mount", "\"/srv/data\""),
        ("pivot_root", "\".\""),
        ("umount2", "\".\""),
        ("chdir", "\"/\""),
        ("openat2", "AT_FDCWD"),
        ("mount", "\"/proc/self/fd/5\""),
        ("openat2", "AT_FDCWD"),
        ("mount", "NULL"),
        // /dev/null checked to be the null device before it hides anything (CVE-2025-31133).
        ("openat2", "AT_FDCWD"),
        ("fstat", "5"),
        ("openat2", "AT_FDCWD"),
        ("mount", "\"/proc/self/fd/5\""),
        ("chdir", "\"/data\""),
        // The working directory must be inside the new root (CVE-2024-21626).
        ("getcwd", ""),
        ("read", "\"/proc/self/setgroups\""),
        ("setgroups", "2"),
        ("setgid", "100"),
        ("setuid", "1000"),
        // SIGPIPE's default action back, for the command (a Rust program ignores it).
        ("rt_sigaction", "SIGPIPE"),
        // The PATH of the spec's environment (a dry run looks in this machine's tree).
        ("access", "\"/opt/bin/true\""),
        ("access", "\"/usr/bin/true\""),
        ("execve", "\"/usr/bin/true\""),
    ];
    let got: Vec<(&str, &str)> = child.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(got, want);
    let ev = k.events();
    let arg = |call: &str, nth: usize| ev.iter().filter(|e| e.call == call).nth(nth).unwrap().args.clone();
    // Targets inside the new root are relative to it (we are chdir'ed there).
    assert_eq!(arg("openat2", 0)[1], "\"dev\"");
    assert_eq!(arg("openat2", 1)[1], "\"data\"");
    assert_eq!(arg("mount", 3)[1], "\"/proc/self/fd/5\"", "mounted on the descriptor, not on a path");
    assert_eq!(arg("openat2", 2)[1], "\"proc/sys\"");
    assert_eq!(arg("openat2", 4)[1], "\"dev/null\"");
    assert_eq!(arg("mount", 6)[3], "MS_RDONLY|MS_REMOUNT|MS_BIND|MS_REC");
    assert_eq!(arg("setgroups", 0)[1], "[10, 20]");
    assert_eq!(arg("execve", 0)[2], "/* 2 vars */", "the spec's environment, not ours");
}

#[test]
fn a_masked_directory_gets_an_empty_tmpfs_and_a_missing_path_is_skipped() {
    let spec = Spec {
        kinds: vec![NsKind::Mount],
        masked: vec!["/sys/firmware".into(), "/proc/nope".into()],
        ..Spec::default()
    };
    let k = Kernel::recording(TOOL);
    // mount #1 is the propagation change; #2 the first mask's bind.
    k.inject("mount", 2, Errno::ENOTDIR).inject("mount", 4, Errno::ENOENT);
    create(&k, &spec, ROOT, &launch()).unwrap();
    let m: Vec<Vec<String>> = k.events().into_iter().filter(|e| e.call == "mount").map(|e| e.args).collect();
    assert_eq!(m.len(), 4, "{m:?}");
    // No root of its own: paths are the host's, /dev/null still checked (1:3).
    assert!(!k.events().iter().any(|e| e.call == "openat2"), "nothing to resolve a root in");
    let checks = k.events().into_iter().filter(|e| e.call == "fstat").count();
    assert_eq!(checks, 2, "/dev/null checked before each mask");
    assert_eq!((m[1][0].as_str(), m[1][1].as_str()), ("\"/dev/null\"", "\"/sys/firmware\""));
    assert_eq!((m[2][0].as_str(), m[2][2].as_str(), m[2][3].as_str()), ("\"tmpfs\"", "\"tmpfs\"", "MS_RDONLY"));
    assert_eq!(m[3][1], "\"/proc/nope\"");
    let notes: Vec<String> =
        k.events().into_iter().filter(|e| e.kind == Kind::Note).map(|e| e.args[0].clone()).collect();
    assert!(notes.iter().any(|n| n.contains("/proc/nope") && n.contains("not masked")), "{notes:?}");
    assert!(k.events().iter().any(|e| e.call == "execve" && matches!(e.ret, Ret::Ok(_))));
}

#[test]
fn a_failed_setup_step_stops_before_exec() {
    let t = tempfile::tempdir().unwrap();
    let k = Kernel::recording(TOOL);
    k.inject("pivot_root", 1, Errno::EINVAL);
    let e = create(&k, &full_spec(t.path().to_str().unwrap()), ROOT, &launch()).unwrap_err();
    assert!(e.to_string().contains("pivot_root"), "{e}");
    assert!(!k.events().iter().any(|e| e.call == "execve" || e.call == "setuid"), "nothing after the failure");
}

static REPORTED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn the_tiny_init_reports_its_errors_through_the_callers_function() {
    let k = Kernel::recording(TOOL);
    k.inject("sethostname", 1, Errno::EPERM);
    let spec = Spec { kinds: vec![NsKind::Uts, NsKind::Pid], hostname: Some("x".into()), ..Spec::default() };
    let l = Launch {
        init: true,
        report: |_| {
            REPORTED.fetch_add(1, Ordering::SeqCst);
        },
        ..launch()
    };
    create(&k, &spec, ROOT, &l).unwrap();
    assert_eq!(REPORTED.load(Ordering::SeqCst), 1, "the init's setup error went to report()");
    assert!(!k.events().iter().any(|e| e.call == "execve"));
}

#[test]
fn join_opens_everything_first_then_enters_user_first() {
    let k = Kernel::recording(TOOL);
    let me = std::process::id() as i32;
    let got = join(&k, me, Some(&[NsKind::Net, NsKind::User, NsKind::Mount])).unwrap();
    assert_eq!(got, [NsKind::User, NsKind::Net, NsKind::Mount]);
    let n = names(&k, &[]);
    assert_eq!(n, ["access", "openat", "openat", "openat", "setns", "setns", "setns"]);
    let setns: Vec<String> = k.events().into_iter().filter(|e| e.call == "setns").map(|e| e.args[1].clone()).collect();
    assert_eq!(setns, ["CLONE_NEWUSER", "CLONE_NEWNET", "CLONE_NEWNS"]);
    // Our own namespaces, compared with ourselves: nothing differs, nothing to join.
    let k = Kernel::recording(TOOL);
    assert_eq!(join(&k, me, None).unwrap(), []);
    assert!(!k.events().iter().any(|e| e.call == "setns"));
}
