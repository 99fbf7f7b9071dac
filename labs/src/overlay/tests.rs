//! Unit tests of the overlay lab, against the recording kernel.

use super::*;
use crate::kernel::Event;

#[test]
fn mountinfo_overlay_lines() {
    let t = "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
             120 29 0:52 / /tmp/m\\040x rw,relatime - overlay overlay rw,lowerdir=/l1:/l\\:2,upperdir=/u,workdir=/w,index=off\n";
    let v = parse_mountinfo(t);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].merged, "/tmp/m x");
    assert_eq!(v[0].lower, vec!["/l1", "/l:2"]);
    assert_eq!(v[0].upper.as_deref(), Some("/u"));
    assert_eq!(v[0].options, vec!["index=off"]);
    let d = v[0].graph_driver_data();
    assert_eq!((d.lower_dir.as_str(), d.merged_dir.as_str()), ("/l1:/l:2", "/tmp/m x"));
}

#[test]
fn data_string_escapes_colons() {
    let s = Resolved { lowers: vec!["/a:b".into(), "/c".into()], upper: None, options: vec!["index=on".into()] };
    assert_eq!(s.data(), "lowerdir=/a\\:b:/c,index=on");
}

#[test]
fn options_in_a_fixed_order() {
    let o = Options {
        index: Some(false),
        redirect_dir: Some(Redirect::Follow),
        xino: Some(Xino::Auto),
        metacopy: Some(true),
        userxattr: true,
        volatile: true,
    };
    assert_eq!(o.to_vec(), ["index=off", "redirect_dir=follow", "xino=auto", "metacopy=on", "userxattr", "volatile"]);
    assert!(Options::default().to_vec().is_empty());
}

fn calls(k: &Kernel) -> Vec<String> {
    k.events().iter().filter(|e| e.call != "note").map(Event::call_text).collect()
}

#[test]
fn dry_run_records_the_new_mount_api() {
    let k = Kernel::recording(TOOL);
    let spec = Spec {
        lowers: vec!["/".into(), "/".into()],
        upper: Some("/nonexistent-contlab/u".into()),
        work: Some("/nonexistent-contlab/w".into()),
        options: Options { volatile: true, index: Some(false), ..Options::default() },
        create_dirs: true,
    };
    let m = mount(&k, &spec, Path::new("/nonexistent-contlab/m"), false).unwrap();
    assert_eq!(m.target, Path::new("/nonexistent-contlab/m"));
    assert_eq!(m.created.len(), 3, "{m:?}");
    let calls = calls(&k);
    let first = calls.iter().position(|c| c.starts_with("fsopen")).unwrap();
    assert_eq!(calls[first], "fsopen(\"overlay\", FSOPEN_CLOEXEC) = 3");
    assert_eq!(calls.iter().filter(|c| c.contains("\"lowerdir+\", \"/\"")).count(), 2, "{calls:?}");
    assert!(calls.iter().any(|c| c.contains("FSCONFIG_SET_FLAG, \"volatile\"")), "{calls:?}");
    assert!(calls.last().unwrap().starts_with("move_mount(4<detached mount>"), "{calls:?}");
}

/// A spec whose directories do not exist, made by the mount: what a failed mount
/// must take back.
fn fresh_spec(root: &Path) -> Spec {
    Spec {
        lowers: vec!["/".into()],
        upper: Some(root.join("upper")),
        work: Some(root.join("work")),
        options: Options { index: Some(false), userxattr: true, ..Options::default() },
        create_dirs: true,
    }
}

/// The paths of the successful requests named `call`, in order.
fn made(ev: &[Event], call: &str) -> Vec<String> {
    ev.iter()
        .filter(|e| e.call == call && matches!(e.ret, crate::kernel::Ret::Ok(_)))
        .map(|e| e.args[0].clone())
        .collect()
}

/// Fail each step of the new mount API in turn (fsopen, every fsconfig, fsmount,
/// move_mount) and the mount(2) of the legacy path: each time the mount fails and
/// the rmdirs that follow remove exactly the directories it made, newest first.
#[test]
fn a_failed_mount_removes_what_it_made_at_every_step() {
    let root = Path::new("/nonexistent-contlab-rollback");
    let target = root.join("merged");
    // How many fsconfig calls a successful mount makes: source, 1 lower, upper, work,
    // 2 options, create.
    let ok = Kernel::recording(TOOL);
    mount(&ok, &fresh_spec(root), &target, false).unwrap();
    let n_fsconfig = ok.events().iter().filter(|e| e.call == "fsconfig").count() as u64;
    assert_eq!(n_fsconfig, 7);
    let mut steps: Vec<(&str, u64, bool)> = vec![("fsopen", 1, false), ("fsmount", 1, false)];
    steps.extend((1..=n_fsconfig).map(|n| ("fsconfig", n, false)));
    steps.push(("move_mount", 1, false));
    steps.push(("mount", 1, true));
    for (call, nth, legacy) in steps {
        let k = Kernel::recording(TOOL);
        k.inject(call, nth, Errno::EPERM);
        let err = mount(&k, &fresh_spec(root), &target, legacy).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::EPERM), "{call} #{nth}: {err}");
        let ev = k.events();
        let mut mkdirs = made(&ev, "mkdir");
        assert_eq!(mkdirs.len(), 3, "{call} #{nth}: the mount made merged, upper and work");
        mkdirs.reverse();
        assert_eq!(made(&ev, "rmdir"), mkdirs, "{call} #{nth}: the rollback removes exactly what was made");
        let failed = ev.iter().position(|e| e.call == call && matches!(e.ret, crate::kernel::Ret::Err(_))).unwrap();
        let first_rmdir = ev.iter().position(|e| e.call == "rmdir").unwrap();
        assert!(first_rmdir > failed, "{call} #{nth}: the rollback comes after the failure");
        assert!(!ev.iter().any(|e| e.call == "move_mount" && matches!(e.ret, crate::kernel::Ret::Ok(_))));
    }
}

/// A mount that creates nothing takes nothing back; a directory it finds is never
/// removed.
#[test]
fn a_failed_mount_never_removes_what_was_there() {
    let k = Kernel::recording(TOOL);
    k.inject("fsmount", 1, Errno::ENOMEM);
    let spec = Spec { lowers: vec!["/".into()], ..Spec::default() };
    assert!(mount(&k, &spec, Path::new("/"), false).is_err());
    assert!(!k.events().iter().any(|e| e.call == "rmdir"));
}

#[test]
fn bad_specs_are_refused_before_any_change() {
    let k = Kernel::recording(TOOL);
    let e = mount(&k, &Spec::default(), Path::new("/"), false).unwrap_err();
    assert!(matches!(e, Error::Usage(_)), "{e}");
    let half = Spec { lowers: vec!["/".into()], upper: Some("/".into()), ..Spec::default() };
    assert!(matches!(mount(&k, &half, Path::new("/"), false).unwrap_err(), Error::Usage(_)));
    let vol =
        Spec { lowers: vec!["/".into()], options: Options { volatile: true, ..Options::default() }, ..Spec::default() };
    assert!(matches!(mount(&k, &vol, Path::new("/"), false).unwrap_err(), Error::Usage(_)));
    assert!(!k.events().iter().any(|e| ["mkdir", "fsopen", "mount"].contains(&e.call.as_str())));
}

#[test]
fn kernel_releases_before_6_8_have_no_lowerdir_plus() {
    assert!(super::release_before("6.1.0-57-amd64", (6, 8)));
    assert!(super::release_before("5.15.0", (6, 8)));
    assert!(!super::release_before("6.8.0-rc1", (6, 8)));
    assert!(!super::release_before("6.12.3+deb13-amd64", (6, 8)));
    assert!(!super::release_before("garbage", (6, 8)));
}
