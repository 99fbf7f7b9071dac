//! Unit tests of `apply`: name checks, and the rollback of a refused layer at every
//! step, recorded (dry run) and for real (in a temp dir, as any user).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::*;
use crate::kernel::{Event, Ret, Sink, Target, TraceFormat, Tracer};

#[test]
fn names_are_cleaned_or_refused() {
    assert_eq!(clean("d", b"./a//b/./c").unwrap(), "a/b/c");
    assert_eq!(clean("d", b"./").unwrap(), "");
    assert!(clean("d", b"/etc/passwd").is_err());
    assert!(clean("d", b"a/../../x").is_err());
    assert!(clean("d", b"..").is_err());
    assert!(is_aside(".contlab-apply/x") && is_aside(".contlab-apply-2") && !is_aside(".contlab-applyx"));
}

#[test]
fn pax_times() {
    assert_eq!(parse_time("12.5"), Some((12, 500_000_000)));
    assert_eq!(parse_time("7"), Some((7, 0)));
}

/// A temp dir removed when dropped.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("contlab-apply-unit-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a tree holds, byte for byte: path → type, mode, owner, content or target.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_file() {
                format!("{:?}", std::fs::read(&p).unwrap())
            } else if md.is_dir() {
                stack.push(p.clone());
                "dir".into()
            } else {
                format!("{:?}", md.file_type())
            };
            let mode = if md.file_type().is_symlink() { 0 } else { md.mode() };
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            m.insert(rel, format!("{mode:o} {}:{} nlink={} {what}", md.uid(), md.gid(), md.nlink()));
        }
    }
    m
}

/// The tree a layer is applied onto: a file it replaces, one its whiteout deletes, a
/// directory it keeps (changing its mode) and one whose old content an opaque
/// whiteout clears.
fn base(dir: &Path) {
    std::fs::write(dir.join("x"), "old x").unwrap();
    std::fs::write(dir.join("gone"), "deleted by .wh.gone").unwrap();
    std::fs::create_dir_all(dir.join("d/sub")).unwrap();
    std::fs::write(dir.join("d/old"), "cleared by d/.wh..wh..opq").unwrap();
    std::fs::write(dir.join("d/sub/deep"), "deep").unwrap();
    std::fs::create_dir_all(dir.join("k")).unwrap();
    std::fs::set_permissions(dir.join("k"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A layer of every kind of entry apply makes, touching each part of [`base`].
fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, et: tar::EntryType, mode: u32, link: Option<&str>, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(et);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, name, data).unwrap();
    };
    add("a", tar::EntryType::Regular, 0o644, None, b"new a");
    add("x", tar::EntryType::Regular, 0o600, None, b"new x");
    add("s", tar::EntryType::Symlink, 0o777, Some("a"), b"");
    add("h", tar::EntryType::Link, 0o644, Some("a"), b"");
    add("k/", tar::EntryType::Directory, 0o700, None, b"");
    add("k/inside", tar::EntryType::Regular, 0o644, None, b"in k");
    add("n/m/", tar::EntryType::Directory, 0o750, None, b"");
    add("n/m/f", tar::EntryType::Regular, 0o644, None, b"nested");
    add("p", tar::EntryType::Fifo, 0o644, None, b"");
    add(".wh.gone", tar::EntryType::Regular, 0, None, b"");
    add("d/.wh..wh..opq", tar::EntryType::Regular, 0, None, b"");
    add("d/mine", tar::EntryType::Regular, 0o644, None, b"mine");
    add("z", tar::EntryType::Regular, 0o644, None, b"last");
    b.into_inner().unwrap()
}

fn opts() -> ApplyOptions {
    ApplyOptions { overlay_whiteouts: false, same_owner: false, allow_devices: false }
}

/// A live kernel that keeps every event in memory.
fn live() -> (Kernel, Rc<RefCell<Vec<Event>>>) {
    let k = Kernel::new(crate::layer::TOOL, Mode::Live, Tracer::silent());
    let mem = Rc::new(RefCell::new(Vec::new()));
    k.tracer().add_sink(Sink::new(Target::Memory(mem.clone()), TraceFormat::Json, false, false));
    (k, mem)
}

/// The calls of `ev` that change the system, each as (call, its occurrence among the
/// events of that name), so that a failure can be injected there.
fn steps(ev: &[Event]) -> Vec<(String, u64)> {
    let changes = ["mkdirat", "symlinkat", "linkat", "mknodat", "fchmodat", "utimensat", "renameat2", "unlinkat"];
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut v = Vec::new();
    for e in ev {
        let n = seen.entry(e.call.clone()).or_default();
        *n += 1;
        let creates = e.call == "openat" && e.args.iter().any(|a| a.contains("O_CREAT"));
        if changes.contains(&e.call.as_str()) || creates {
            v.push((e.call.clone(), *n));
        }
    }
    v
}

/// For real: a failure injected at each request that changes the tree leaves the tree
/// exactly as it was, and the same layer then applies fully.
#[test]
fn a_refused_layer_leaves_the_tree_as_it_was_at_every_step() {
    let t = Tmp::new("live");
    let want = t.0.join("want");
    std::fs::create_dir(&want).unwrap();
    base(&want);
    let before = tree(&want);
    // A successful run: its requests are the steps to fail, and its result the check
    // that the layer does what it says.
    let (k, mem) = live();
    let stats = apply(&k, &layer()[..], &want, &opts()).unwrap();
    assert_eq!(stats.whiteouts, 2);
    let done = tree(&want);
    assert!(!done.contains_key("gone") && !done.contains_key("d/old") && !done.contains_key("d/sub"), "{done:#?}");
    assert!(done.contains_key("d/mine") && done.contains_key("n/m/f") && !done.keys().any(|p| is_aside(p)));
    let all = steps(&mem.borrow());
    assert!(all.len() > 30, "{all:?}");
    for (call, nth) in all {
        let dest = t.0.join(format!("{call}-{nth}"));
        std::fs::create_dir(&dest).unwrap();
        base(&dest);
        let (k, _) = live();
        k.inject(&call, nth, Errno::EIO);
        let r = apply(&k, &layer()[..], &dest, &opts());
        // The last unlinkat removes what was put aside, once the layer is complete:
        // failing it leaves a complete layer and an error.
        let committed = tree(&dest).keys().any(|p| p == "z");
        if committed && r.is_err() {
            assert_eq!(call, "unlinkat", "{call} #{nth}: only the final clean-up may fail after the layer is in");
            continue;
        }
        let e = r.expect_err(&format!("{call} #{nth} was made to fail"));
        assert_eq!(tree(&dest), before, "{call} #{nth} ({e}): the tree is not as it was");
    }
}

/// Recorded (dry run): the undo requests after an injected failure remove exactly
/// the names made before it, newest first, and move back exactly what was put aside.
#[test]
fn the_recorded_undo_takes_back_exactly_what_was_made() {
    let t = Tmp::new("dry");
    base(&t.0);
    let k = Kernel::recording(crate::layer::TOOL);
    apply(&k, &layer()[..], &t.0, &opts()).unwrap();
    let all = steps(&k.events());
    assert!(all.iter().any(|(c, _)| c == "renameat2") && all.iter().any(|(c, _)| c == "fchmodat"), "{all:?}");
    // The name an event is about: symlinkat(TARGET, <dir>, NAME), linkat(<d>, OLD, <d>, NEW, 0).
    let name = |e: &Event| match e.call.as_str() {
        "symlinkat" => e.args[2].clone(),
        "linkat" => e.args[3].clone(),
        _ => e.args[1].clone(),
    };
    for (call, nth) in all {
        let k = Kernel::recording(crate::layer::TOOL);
        k.inject(&call, nth, Errno::EIO);
        if apply(&k, &layer()[..], &t.0, &opts()).is_ok() {
            assert_eq!(call, "unlinkat", "{call} #{nth}: only the final clean-up comes after the layer is in");
            continue;
        }
        let ev = k.events();
        let at = ev.iter().position(|e| e.call == call && matches!(e.ret, Ret::Err(_))).unwrap();
        let ok = |e: &&Event| matches!(e.ret, Ret::Ok(_));
        let creates = |e: &&Event| {
            ["mkdirat", "symlinkat", "linkat", "mknodat"].contains(&e.call.as_str())
                || (e.call == "openat" && e.args.iter().any(|a| a.contains("O_CREAT")))
        };
        let mut made: Vec<String> =
            ev[..at].iter().filter(ok).filter(creates).map(name).filter(|n| !n.contains(ASIDE)).collect();
        made.reverse();
        let undone: Vec<String> =
            ev[at + 1..].iter().filter(|e| e.call == "unlinkat").map(name).filter(|n| !n.contains(ASIDE)).collect();
        assert_eq!(undone, made, "{call} #{nth}: the undo removes what was made, newest first");
        let aside: Vec<String> = ev[..at].iter().filter(ok).filter(|e| e.call == "renameat2").map(name).collect();
        let back: Vec<String> =
            ev[at + 1..].iter().filter(|e| e.call == "renameat2").map(|e| e.args[3].clone()).collect();
        assert_eq!(back, aside.iter().rev().cloned().collect::<Vec<_>>(), "{call} #{nth}: what was put aside is back");
        let aside_made = ev[..at].iter().filter(ok).any(|e| e.call == "mkdirat" && e.args[1].contains(ASIDE));
        let aside_gone = ev[at + 1..].iter().any(|e| e.call == "unlinkat" && e.args[1].contains(ASIDE));
        assert_eq!(aside_made, aside_gone, "{call} #{nth}: the aside directory goes with the rollback");
        // The kept directory gets its mode back.
        if ev[..at].iter().filter(ok).any(|e| e.call == "fchmodat" && e.args[1] == "\"k\"") {
            assert!(ev[at + 1..].iter().any(|e| e.call == "fchmodat" && e.args[1] == "\"k\"" && e.args[2] == "0755"));
        }
    }
}

/// A hostile layer plants a symlink to the outside, then writes through it: refused,
/// and the symlink (and the files before it) are gone again.
#[test]
fn a_planted_symlink_is_taken_back_with_the_refusal() {
    let t = Tmp::new("planted");
    let dest = t.0.join("dest");
    std::fs::create_dir(&dest).unwrap();
    base(&dest);
    let before = tree(&dest);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "x", &b"ok"[..]).unwrap();
    let mut l = tar::Header::new_ustar();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    l.set_link_name(&t.0).unwrap();
    b.append_data(&mut l, "escape", &b""[..]).unwrap();
    let mut f = tar::Header::new_ustar();
    f.set_entry_type(tar::EntryType::Regular);
    f.set_size(4);
    f.set_mode(0o644);
    f.set_path("escape/evil").unwrap();
    f.set_cksum();
    let mut raw = b.into_inner().unwrap();
    raw.truncate(raw.len() - 1024);
    raw.extend_from_slice(f.as_bytes());
    raw.extend_from_slice(b"evil");
    raw.extend(std::iter::repeat_n(0u8, 508 + 1024));
    let (k, _) = live();
    let e = apply(&k, &raw[..], &dest, &opts()).unwrap_err();
    assert!(e.to_string().contains("refusing layer entry \"escape/evil\""), "{e}");
    assert!(!t.0.join("evil").exists(), "nothing was written outside");
    assert_eq!(tree(&dest), before, "the symlink and the new x are taken back, the old x is back");
}
