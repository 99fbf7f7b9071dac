//! layer-diff: diff, pack (reproducible), apply, the hostile-tar corpus, and interop
//! with umoci and skopeo (peers tier).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, cmd, require, stderr_of, stdout_of, Tier};

fn ld(args: &[&str]) -> std::process::Output {
    cmd("layer-diff").args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ------------------------------------------------------------ tree listings ------

/// One line per entry of a tree: path, type, mode, owner, size, content digest or
/// link target, hard-link group, xattrs (overlay's own left out). Two trees are
/// equal for a layer's purposes when their listings are.
pub(crate) fn listing(root: &Path) -> Vec<String> {
    need("getfattr", "attr");
    let mut out = Vec::new();
    let mut inodes: std::collections::HashMap<u64, String> = Default::default();
    walk(root, root, &mut out, &mut inodes);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, inodes: &mut std::collections::HashMap<u64, String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("link->{}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            let mut h: u64 = 1469598103934665603;
            for b in &data {
                h = (h ^ *b as u64).wrapping_mul(1099511628211);
            }
            let group = if m.nlink() > 1 {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone();
                format!(" hardlink-group={first}")
            } else {
                String::new()
            };
            format!("file size={} fnv={h:x}{group}", data.len())
        } else if ft.is_char_device() || ft.is_block_device() {
            format!("dev {} rdev={:#x}", if ft.is_char_device() { 'c' } else { 'b' }, m.rdev())
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            "other".into()
        };
        let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
        let o = Command::new("getfattr")
            .args(["-h", "-d", "-m", "-", "--absolute-names"])
            .arg(&p)
            .output()
            .expect("run getfattr (Debian package attr)");
        assert!(o.status.success(), "getfattr {}: {}", p.display(), stderr_of(&o));
        let xa = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains('=') && !l.contains("overlay."))
            .collect::<Vec<_>>()
            .join(";");
        out.push(format!("{rel} {what} mode={mode:o} owner={}:{} xattrs=[{xa}]", m.uid(), m.gid()));
        if ft.is_dir() {
            walk(root, &p, out, inodes);
        }
    }
}

fn need(program: &str, package: &str) {
    let ok = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().map(|o| o.status.success());
    assert!(
        ok.unwrap_or(false),
        "this test needs `{program}` (Debian package `{package}`): apt-get install -y {package}"
    );
}

/// A rich tree: files, modes with set-id bits, owners, a symlink, hard links, an
/// xattr, a FIFO, a device node, nested directories.
fn rich_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
    std::fs::write(dir.join("etc/motd"), "hello\n").unwrap();
    std::fs::write(dir.join("etc/conf.d/a.conf"), "a=1\n").unwrap();
    std::fs::write(dir.join("usr/bin/tool"), vec![7u8; 10_000]).unwrap();
    std::fs::set_permissions(dir.join("usr/bin/tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(dir.join("usr/bin/tool"), dir.join("usr/bin/tool-alias")).unwrap();
    std::os::unix::fs::symlink("../etc/motd", dir.join("usr/motd-link")).unwrap();
    std::os::unix::fs::chown(dir.join("etc/conf.d/a.conf"), Some(1000), Some(1001)).unwrap();
    assert!(Command::new("mkfifo").arg(dir.join("usr/fifo")).status().unwrap().success());
    assert!(Command::new("mknod").arg(dir.join("usr/null")).args(["c", "1", "3"]).status().unwrap().success());
    assert!(Command::new("setfattr")
        .args(["-n", "user.contlab", "-v", "layer"])
        .arg(dir.join("etc/motd"))
        .status()
        .unwrap()
        .success());
}

// ------------------------------------------------------------ pack / apply -------

#[test]
fn pack_is_reproducible_with_clamped_times() {
    if !require(Tier::Root) {
        return;
    }
    need("setfattr", "attr");
    let t = harness::tmp();
    let tree = t.path().join("tree");
    rich_tree(&tree);
    let a = ld(&["-q", "pack", s(&tree), "-o", s(&t.path().join("a.tar.gz")), "--clamp-mtime", "1700000000"]);
    assert!(a.status.success(), "{}", stderr_of(&a));
    // Touch every file: new mtimes, same content. Clamped, the digest must not move.
    assert!(Command::new("touch").arg(tree.join("etc/motd")).status().unwrap().success());
    let b = ld(&["-q", "pack", s(&tree), "-o", s(&t.path().join("b.tar.gz")), "--clamp-mtime", "1700000000"]);
    assert_eq!(stdout_of(&a), stdout_of(&b), "same tree, same clamp: same diff_id and digest");
    assert!(stdout_of(&a).starts_with("diff_id sha256:"));
    let da = std::fs::read(t.path().join("a.tar.gz")).unwrap();
    let sha = Command::new("sha256sum").arg(t.path().join("a.tar.gz")).output().unwrap();
    let printed = stdout_of(&a);
    assert!(printed.contains(&format!("digest sha256:{}", &stdout_of(&sha)[..64])), "{printed}");
    assert!(printed.contains(&format!("size {}", da.len())));
    // The diff_id is the sha256 of the uncompressed tar.
    let unz = Command::new("sh")
        .args(["-c", &format!("gzip -dc {} | sha256sum", s(&t.path().join("a.tar.gz")))])
        .output()
        .unwrap();
    assert!(printed.contains(&format!("diff_id sha256:{}", &stdout_of(&unz)[..64])));
}

#[test]
fn pack_then_apply_round_trips_modes_owners_links_xattrs_devices() {
    if !require(Tier::Root) {
        return;
    }
    need("setfattr", "attr");
    let t = harness::tmp();
    let tree = t.path().join("tree");
    rich_tree(&tree);
    for out in ["l.tar", "l.tar.gz"] {
        let o = ld(&["-q", "pack", s(&tree), "-o", s(&t.path().join(out))]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let dest = t.path().join(format!("x-{out}"));
        let o = ld(&["-q", "apply", s(&t.path().join(out)), s(&dest)]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert_eq!(listing(&tree), listing(&dest), "{out}");
    }
}

#[test]
fn apply_handles_whiteouts_flat_and_overlay_in_and_out_of_order() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let base = t.path().join("base");
    std::fs::create_dir_all(base.join("opt/old")).unwrap();
    std::fs::create_dir_all(base.join("d")).unwrap();
    std::fs::write(base.join("opt/old/f"), "x").unwrap();
    std::fs::write(base.join("d/lower"), "x").unwrap();
    std::fs::write(base.join("gone"), "x").unwrap();
    // Whiteouts after the entries they must spare (out of order) and before (in order).
    let tar = t.path().join("w.tar");
    let mut b = RawTar::default();
    b.dir("opt/");
    b.file("opt/new", b"n");
    b.file("opt/.wh..wh..opq", b"");
    b.file(".wh.gone", b"");
    b.file("d/.wh..wh..opq", b"");
    b.dir("d/");
    b.file("d/mine", b"m");
    b.file("d/.wh.mine", b"");
    b.write(&tar);
    let flat = t.path().join("flat");
    assert!(Command::new("cp").arg("-a").arg(&base).arg(&flat).status().unwrap().success());
    let o = ld(&["apply", s(&tar), s(&flat)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stdout_of(&o).contains("whiteouts 4"), "{}", stdout_of(&o));
    assert!(flat.join("opt/new").exists() && !flat.join("opt/old").exists());
    assert!(!flat.join("gone").exists());
    assert!(flat.join("d/mine").exists(), "a whiteout never removes what its own layer wrote");
    assert!(!flat.join("d/lower").exists());
    // --overlay: whiteouts become 0/0 devices and the opaque xattr.
    let ov = t.path().join("ov");
    let o = ld(&["apply", "--overlay", s(&tar), s(&ov)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("mknodat(<") && e.contains("\"gone\", S_IFCHR|0000, makedev(0, 0)) = 0"), "{e}");
    assert!(e.contains("\"trusted.overlay.opaque\", \"y\""), "{e}");
    let m = std::fs::symlink_metadata(ov.join("gone")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0);
    let w = cmd("ovl-mount").args(["-q", "whiteouts", s(&ov)]).output().unwrap();
    assert!(w.status.success(), "{}", stderr_of(&w));
    assert_eq!(stdout_of(&w), "opaque /d\nwhiteout /gone\nopaque /opt\n");
}

#[test]
fn diff_tree_compares_two_directories() {
    let t = harness::tmp();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::create_dir_all(d.join("usr/bin")).unwrap();
        std::fs::write(d.join("etc/keep"), "k").unwrap();
    }
    std::fs::write(a.join("usr/bin/uniq"), "u").unwrap();
    std::fs::write(b.join("etc/new"), "n").unwrap();
    std::fs::create_dir(a.join("mnt")).unwrap();
    // A naive diff compares mtimes: the two copies of etc/keep must have the same one,
    // whatever the clock did between the two writes.
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for d in [&a, &b] {
        std::fs::File::options().write(true).open(d.join("etc/keep")).unwrap().set_modified(t).unwrap();
    }
    let o = ld(&["-q", "diff", "--tree", s(&a), s(&b)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "C /etc\nA /etc/new\nC /usr\nC /usr/bin\nD /usr/bin/uniq\nD /mnt\n");
}

#[test]
fn dry_run_apply_writes_nothing() {
    let t = harness::tmp();
    let tar = t.path().join("l.tar");
    let mut b = RawTar::default();
    b.file("a", b"x");
    b.file(".wh.b", b"");
    b.write(&tar);
    let dest = t.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    let o = ld(&["--dry-run", "apply", s(&tar), s(&dest)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
    let mut st = harness::snapshot_settings();
    // Who runs it (root keeps owners and devices) and which descriptor numbers the
    // process inherited are not what the snapshot is about.
    st.add_filter(r"ruid=\d+, euid=\d+, suid=\d+", "ruid=UID, euid=UID, suid=UID");
    st.add_filter(r"rgid=\d+, egid=\d+, sgid=\d+", "rgid=GID, egid=GID, sgid=GID");
    st.add_filter(r"O_CLOEXEC\) = \d+", "O_CLOEXEC) = FD");
    st.add_filter(r"f_bavail\*f_frsize=(\d+|\[INODE\])", "f_bavail*f_frsize=FREE");
    st.bind(|| insta::assert_snapshot!("layer_diff_dry_run_apply", stderr_of(&o)));
}

// ------------------------------------------------------------ bad input ----------

#[test]
fn bad_inputs_fail_clearly_and_leave_nothing() {
    let t = harness::tmp();
    let junk = t.path().join("junk");
    std::fs::write(&junk, vec![0x42u8; 3000]).unwrap();
    let dest = t.path().join("d1");
    let o = ld(&["-q", "apply", s(&junk), s(&dest)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("reading the layer"), "{}", stderr_of(&o));
    assert!(!dest.exists(), "a directory created by a failed apply is removed");

    // A truncated gzip.
    let mut b = RawTar::default();
    b.file("big", &vec![1u8; 200_000]);
    let tar = t.path().join("t.tar");
    b.write(&tar);
    assert!(Command::new("gzip").arg("-k").arg(&tar).status().unwrap().success());
    let gz = std::fs::read(t.path().join("t.tar.gz")).unwrap();
    let cut = t.path().join("cut.tar.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let dest = t.path().join("d2");
    let o = ld(&["-q", "apply", s(&cut), s(&dest)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("truncated"), "{}", stderr_of(&o));
    assert!(!dest.exists());

    // Empty file, missing file, diff of a missing upper.
    let empty = t.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let o = ld(&["-q", "apply", s(&empty), s(&t.path().join("d3"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("empty"), "{}", stderr_of(&o));
    assert!(!t.path().join("d3").exists() && !t.path().join(".d3.partial").exists());
    let o = ld(&["-q", "diff", s(&t.path().join("nope")), "--lower", s(t.path())]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("does not exist"));
    let o = ld(&["-q", "diff", s(t.path()), "--lower", s(t.path())]);
    assert!(stderr_of(&o).contains("both as upper and as a lower"), "{}", stderr_of(&o));
    let o = ld(&["diff", "--tree", s(t.path())]);
    assert_eq!(o.status.code(), Some(2));
}

// ------------------------------------------------------------ hostile corpus -----

/// A minimal tar writer that writes exactly what it is told, including the names
/// a well-behaved writer would refuse.
#[derive(Default)]
pub(crate) struct RawTar {
    data: Vec<u8>,
}

impl RawTar {
    fn header(&mut self, name: &str, typ: u8, size: u64, link: &str, mode: u32) {
        self.header_sized(name, typ, &octal(size, 12), link, mode, (0, 0));
    }

    pub(crate) fn header_sized(&mut self, name: &str, typ: u8, size: &[u8], link: &str, mode: u32, dev: (u32, u32)) {
        let mut h = [0u8; 512];
        assert!(name.len() <= 100 && link.len() <= 100);
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(&octal(mode as u64, 8));
        h[108..116].copy_from_slice(&octal(0, 8));
        h[116..124].copy_from_slice(&octal(0, 8));
        h[124..136].copy_from_slice(size);
        h[136..148].copy_from_slice(&octal(1_600_000_000, 12));
        h[156] = typ;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[329..337].copy_from_slice(&octal(dev.0 as u64, 8));
        h[337..345].copy_from_slice(&octal(dev.1 as u64, 8));
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(&octal(sum as u64, 8));
        self.data.extend_from_slice(&h);
    }

    fn body(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.data.extend(std::iter::repeat_n(0u8, pad));
    }

    pub(crate) fn file(&mut self, name: &str, data: &[u8]) {
        self.header(name, b'0', data.len() as u64, "", 0o644);
        self.body(data);
    }
    pub(crate) fn dir(&mut self, name: &str) {
        self.header(name, b'5', 0, "", 0o755);
    }
    pub(crate) fn symlink(&mut self, name: &str, target: &str) {
        self.header(name, b'2', 0, target, 0o777);
    }
    fn hardlink(&mut self, name: &str, target: &str) {
        self.header(name, b'1', 0, target, 0o644);
    }
    pub(crate) fn device(&mut self, name: &str, typ: u8) {
        self.header_sized(name, typ, &octal(0, 12), "", 0o600, (1, 3));
    }
    fn pax(&mut self, records: &[(&str, &str)]) {
        let mut body = Vec::new();
        for (k, v) in records {
            let rest = format!(" {k}={v}\n");
            let mut len = rest.len() + 1;
            while format!("{len}{rest}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{rest}").as_bytes());
        }
        self.header("PaxHeader", b'x', body.len() as u64, "", 0o644);
        self.body(&body);
    }
    pub(crate) fn write(mut self, path: &Path) {
        self.data.extend(std::iter::repeat_n(0u8, 1024));
        std::fs::write(path, &self.data).unwrap();
    }
}

fn octal(v: u64, width: usize) -> Vec<u8> {
    let s = format!("{:0w$o}\0", v, w = width - 1);
    s.into_bytes()
}

/// A scene for one hostile layer: an `outside` directory with a file the layer
/// must not touch, and an empty `dest`.
struct Scene {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let t = harness::tmp();
        let root = t.path().to_path_buf();
        std::fs::create_dir(root.join("outside")).unwrap();
        std::fs::write(root.join("outside/target"), "keep").unwrap();
        std::fs::create_dir(root.join("dest")).unwrap();
        Scene { _t: t, root }
    }
    fn outside(&self) -> String {
        s(&self.root.join("outside")).to_string()
    }
    /// Apply `b` to dest; return the output after checking that the outside is intact.
    fn apply(&self, b: RawTar, extra: &[&str]) -> std::process::Output {
        let tar = self.root.join("hostile.tar");
        b.write(&tar);
        let before = listing(&self.root.join("outside"));
        let mut args = vec!["-q", "apply"];
        args.extend_from_slice(extra);
        let (t, d) = (s(&tar).to_string(), s(&self.root.join("dest")).to_string());
        args.push(&t);
        args.push(&d);
        let o = ld(&args);
        assert_eq!(listing(&self.root.join("outside")), before, "the outside directory changed");
        assert_eq!(std::fs::read_to_string(self.root.join("outside/target")).unwrap(), "keep");
        let top: Vec<_> = std::fs::read_dir(&self.root).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(top.len(), 3, "nothing new beside dest: {top:?}");
        o
    }
    /// The layer must be refused with `needle` in the message, and leave dest exactly
    /// as it was (what the layer wrote before the bad entry is taken back).
    fn refused(&self, b: RawTar, extra: &[&str], needle: &str) {
        let dest = listing(&self.root.join("dest"));
        let o = self.apply(b, extra);
        assert_eq!(o.status.code(), Some(1), "must be refused: {}", stderr_of(&o));
        let e = stderr_of(&o);
        assert!(e.contains("refusing layer entry") && e.contains(needle), "{e}");
        assert_eq!(listing(&self.root.join("dest")), dest, "dest is as it was before the refused layer");
    }
}

#[test]
fn hostile_01_dotdot() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.file("../evil", b"x");
    sc.refused(b, &[], "`..`");
}

#[test]
fn hostile_02_absolute_path() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    let p = format!("{}/evil", sc.outside());
    b.file(&p, b"x");
    sc.refused(b, &[], "absolute path");
}

#[test]
fn hostile_03_dotdot_in_the_middle() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.dir("a/");
    b.file("a/../../evil", b"x");
    sc.refused(b, &[], "`..`");
}

#[test]
fn hostile_04_through_absolute_symlink() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.symlink("link", &sc.outside());
    b.file("link/evil", b"x");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_05_through_relative_symlink_climbing_out() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.symlink("link", "../outside");
    b.file("link/evil", b"x");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_06_through_a_chain_of_symlinks() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.dir("d/");
    b.symlink("d/b", "../../outside");
    b.symlink("a", "d/b");
    b.file("a/evil", b"x");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_07_hardlink_climbing_out() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.hardlink("h", "../outside/target");
    sc.refused(b, &[], "outside the layer");
}

#[test]
fn hostile_08_hardlink_to_absolute_path() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    let p = format!("{}/target", sc.outside());
    b.hardlink("h", &p);
    sc.refused(b, &[], "outside the layer");
}

#[test]
fn hostile_09_hardlink_through_a_symlink() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.symlink("l", &sc.outside());
    b.hardlink("h", "l/target");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_10_file_over_a_planted_symlink_is_replaced_not_followed() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    let p = format!("{}/target", sc.outside());
    b.symlink("x", &p);
    b.file("x", b"overwritten?");
    let o = sc.apply(b, &[]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let m = std::fs::symlink_metadata(sc.root.join("dest/x")).unwrap();
    assert!(m.is_file(), "the symlink was replaced by the file");
}

#[test]
fn hostile_11_char_device_refused_when_not_permitted() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.device("null", b'3');
    sc.refused(b, &["--no-devices"], "device node 1:3 not permitted");
}

#[test]
fn hostile_12_block_device_refused_when_not_permitted() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.device("sda", b'4');
    sc.refused(b, &["--no-devices"], "not permitted");
}

#[test]
fn hostile_13_absurd_size() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    // 2^50 bytes in the base-256 encoding of the size field.
    let mut size = [0u8; 12];
    size[0] = 0x80;
    size[5] = 0x04;
    b.header_sized("huge", b'0', &size, "", 0o644, (0, 0));
    sc.refused(b, &[], "bytes free");
}

#[test]
fn hostile_14_whiteout_through_a_symlink() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.symlink("l", &sc.outside());
    b.file("l/.wh.target", b"");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_15_opaque_whiteout_through_a_symlink() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.symlink("l", "../outside");
    b.file("l/.wh..wh..opq", b"");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_16_whiteout_naming_dotdot() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.file(".wh..", b"");
    sc.refused(b, &[], "a whiteout must name a file");
}

#[test]
fn hostile_17_directory_replaced_by_a_symlink_then_written_through() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.dir("d/");
    b.file("d/ok", b"fine");
    b.symlink("d", &sc.outside());
    b.file("d/evil", b"x");
    sc.refused(b, &[], "leaves");
}

#[test]
fn hostile_18_unknown_entry_type() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.header("acl", b'A', 0, "", 0o644);
    sc.refused(b, &[], "not supported");
}

#[test]
fn hostile_19_pax_path_escaping() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.pax(&[("path", "../../evil")]);
    b.file("innocent", b"x");
    sc.refused(b, &[], "`..`");
}

#[test]
fn hostile_20_overlay_xattrs_never_taken_from_a_layer() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.pax(&[("SCHILY.xattr.trusted.overlay.redirect", "/etc")]);
    b.dir("d/");
    let o = sc.apply(b, &["--overlay"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    need("getfattr", "attr");
    let x = Command::new("getfattr").args(["-n", "trusted.overlay.redirect"]).arg(sc.root.join("dest/d")).output();
    let x = x.expect("run getfattr (Debian package attr)");
    assert!(!x.status.success(), "trusted.overlay.redirect must not be set");
    assert!(stderr_of(&x).contains("No such attribute"), "getfattr says why: {}", stderr_of(&x));
}

/// A hostile layer over a tree that holds files: it replaces one, whites another out,
/// plants a symlink to the outside and then writes through it. Refused, and the tree
/// is exactly as it was: the planted symlink and the new files are gone, the replaced
/// and the whited-out files are back.
#[test]
fn hostile_22_refused_over_an_existing_tree_leaves_it_as_it_was() {
    let sc = Scene::new();
    let dest = sc.root.join("dest");
    std::fs::create_dir_all(dest.join("etc")).unwrap();
    std::fs::write(dest.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    std::fs::write(dest.join("etc/motd"), "from the layer below\n").unwrap();
    let mut b = RawTar::default();
    b.file("etc/passwd", b"evil::0:0::/:/bin/sh\n");
    b.file("etc/.wh.motd", b"");
    b.file("new", b"n");
    b.symlink("escape", &sc.outside());
    b.file("escape/evil", b"x");
    sc.refused(b, &[], "leaves");
    assert_eq!(std::fs::read_to_string(dest.join("etc/passwd")).unwrap(), "root:x:0:0::/root:/bin/sh\n");
    assert!(!dest.join(".contlab-apply").exists());
}

/// `layer-diff apply` into a new directory, killed (SIGKILL) at each kind of step: DIR
/// never appears half-made, only .DIR.partial is left, and running the same command
/// again removes it and makes DIR whole.
#[test]
fn a_killed_apply_leaves_only_a_partial_directory_that_the_next_run_removes() {
    let t = harness::tmp();
    let mut b = RawTar::default();
    b.dir("etc/");
    b.file("etc/motd", b"hello\n");
    b.symlink("link", "etc/motd");
    b.file("last", b"z");
    let tar = t.path().join("l.tar");
    b.write(&tar);
    let dest = t.path().join("rootfs");
    let partial = t.path().join(".rootfs.partial");
    for (call, nth) in [("mkdirat", 1), ("openat", 3), ("symlinkat", 1), ("rename", 1)] {
        let mut c = Command::new(harness::bin_path("layer-diff"));
        c.args(["apply", "--no-same-owner"]).arg(&tar).arg(&dest);
        let killed = harness::kill9(harness::stopped_at(c, call, nth));
        assert!(!killed.status.success(), "{call} #{nth}");
        assert!(!dest.exists(), "{call} #{nth}: no half-made rootfs");
        assert!(partial.is_dir(), "{call} #{nth}: what remains is .rootfs.partial");
        let o = ld(&["apply", "--no-same-owner", s(&tar), s(&dest)]);
        assert!(o.status.success(), "{call} #{nth}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains("left by an earlier run that did not finish"), "{}", stderr_of(&o));
        assert!(!partial.exists(), "{call} #{nth}: the next run removed it");
        assert_eq!(std::fs::read_to_string(dest.join("etc/motd")).unwrap(), "hello\n");
        assert_eq!(std::fs::read_link(dest.join("link")).unwrap(), Path::new("etc/motd"));
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn hostile_21_truncated_entry() {
    let sc = Scene::new();
    let mut b = RawTar::default();
    b.header("short", b'0', 10_000, "", 0o644);
    b.data.extend_from_slice(&[1u8; 512]);
    let tar = sc.root.join("hostile.tar");
    std::fs::write(&tar, &b.data).unwrap();
    let o = ld(&["-q", "apply", s(&tar), s(&sc.root.join("dest"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("truncated"), "{}", stderr_of(&o));
}

// ------------------------------------------------------------ interop (peers) ----

/// Assemble an OCI image layout holding `layers` (paths of gzip layer blobs with
/// their diff_ids), so umoci and skopeo can read it.
fn oci_layout(dir: &Path, layers: &[(PathBuf, String)]) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (blob, diff_id) in layers {
        let (d, n) = put_blob(dir, &std::fs::read(blob).unwrap());
        descs.push(
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}),
        );
        diff_ids.push(diff_id.clone());
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cn) = put_blob(dir, config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    });
    let (md, mn) = put_blob(dir, manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
}

fn put_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let tmp = dir.join("blob.tmp");
    std::fs::write(&tmp, data).unwrap();
    let o = Command::new("sha256sum").arg(&tmp).output().unwrap();
    let hex = stdout_of(&o)[..64].to_string();
    std::fs::rename(&tmp, dir.join("blobs/sha256").join(&hex)).unwrap();
    (format!("sha256:{hex}"), data.len())
}

fn pack(dir: &Path, out: &Path) -> String {
    let o = ld(&["-q", "pack", s(dir), "-o", s(out), "--clamp-mtime", "1700000000"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    stdout_of(&o).lines().next().unwrap().strip_prefix("diff_id ").unwrap().to_string()
}

#[test]
fn interop_umoci_unpacks_our_layers_to_the_tree_apply_makes() {
    if !require(Tier::Root) {
        return;
    }
    need("umoci", "umoci");
    need("skopeo", "skopeo");
    need("setfattr", "attr");
    let t = harness::tmp();
    let base = t.path().join("base");
    rich_tree(&base);
    std::fs::create_dir_all(base.join("opt/sub")).unwrap();
    std::fs::write(base.join("opt/sub/f"), "f").unwrap();
    std::fs::write(base.join("rm-me"), "r").unwrap();
    // Layer 2: an upper dir with an opaque dir, a whiteout, a new and a modified file.
    let upper = t.path().join("upper");
    std::fs::create_dir_all(upper.join("opt")).unwrap();
    std::fs::write(upper.join("opt/fresh"), "new").unwrap();
    assert!(Command::new("setfattr")
        .args(["-n", "trusted.overlay.opaque", "-v", "y"])
        .arg(upper.join("opt"))
        .status()
        .unwrap()
        .success());
    assert!(Command::new("mknod").arg(upper.join("rm-me")).args(["c", "0", "0"]).status().unwrap().success());
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("etc/motd"), "changed\n").unwrap();
    let l1 = t.path().join("l1.tar.gz");
    let l2 = t.path().join("l2.tar.gz");
    let (d1, d2) = (pack(&base, &l1), pack(&upper, &l2));
    let layout = t.path().join("oci");
    oci_layout(&layout, &[(l1.clone(), d1), (l2.clone(), d2)]);

    // skopeo accepts the image and copies it without changing a digest.
    let o = Command::new("skopeo").args(["inspect", &format!("oci:{}:latest", s(&layout))]).output().unwrap();
    assert!(o.status.success(), "skopeo inspect: {}", stderr_of(&o));
    let copy = t.path().join("oci-copy");
    let o = Command::new("skopeo")
        .args(["copy", &format!("oci:{}:latest", s(&layout)), &format!("oci:{}:latest", s(&copy))])
        .output()
        .unwrap();
    assert!(o.status.success(), "skopeo copy: {}", stderr_of(&o));
    let mut blobs: Vec<_> =
        std::fs::read_dir(copy.join("blobs/sha256")).unwrap().map(|e| e.unwrap().file_name()).collect();
    blobs.sort();
    for l in [&l1, &l2] {
        let d = format!("sha256:{}", &stdout_of(&Command::new("sha256sum").arg(l).output().unwrap())[..64]);
        assert!(blobs.iter().any(|b| format!("sha256:{}", b.to_string_lossy()) == d), "layer {d} kept by skopeo");
    }

    // umoci unpacks it; our apply of the same layers gives the same tree.
    let bundle = t.path().join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image", &format!("{}:latest", s(&layout)), s(&bundle)])
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci unpack: {}", stderr_of(&o));
    let ours = t.path().join("ours");
    for l in [&l1, &l2] {
        let o = ld(&["-q", "apply", s(l), s(&ours)]);
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    assert_eq!(listing(&bundle.join("rootfs")), listing(&ours));
    assert!(!ours.join("rm-me").exists() && !ours.join("opt/sub").exists() && ours.join("opt/fresh").exists());
}

#[test]
fn interop_layers_made_by_umoci_apply_to_the_tree_umoci_unpacks() {
    if !require(Tier::Root) {
        return;
    }
    need("umoci", "umoci");
    need("setfattr", "attr");
    let t = harness::tmp();
    let img = t.path().join("img");
    let run = |args: &[&str]| {
        let o = Command::new("umoci").args(args).output().unwrap();
        assert!(o.status.success(), "umoci {args:?}: {}", stderr_of(&o));
    };
    run(&["init", "--layout", s(&img)]);
    run(&["new", "--image", &format!("{}:t", s(&img))]);
    let b1 = t.path().join("b1");
    run(&["unpack", "--image", &format!("{}:t", s(&img)), s(&b1)]);
    rich_tree(&b1.join("rootfs"));
    std::fs::write(b1.join("rootfs/rm-me"), "r").unwrap();
    std::fs::create_dir_all(b1.join("rootfs/opt/sub")).unwrap();
    std::fs::write(b1.join("rootfs/opt/sub/f"), "f").unwrap();
    run(&["repack", "--image", &format!("{}:t", s(&img)), s(&b1)]);
    let b2 = t.path().join("b2");
    run(&["unpack", "--image", &format!("{}:t", s(&img)), s(&b2)]);
    std::fs::remove_file(b2.join("rootfs/rm-me")).unwrap();
    std::fs::remove_dir_all(b2.join("rootfs/opt")).unwrap();
    std::fs::create_dir_all(b2.join("rootfs/opt")).unwrap();
    std::fs::write(b2.join("rootfs/opt/fresh"), "new").unwrap();
    std::fs::write(b2.join("rootfs/etc/motd"), "changed\n").unwrap();
    run(&["repack", "--image", &format!("{}:t", s(&img)), s(&b2)]);
    let b3 = t.path().join("b3");
    run(&["unpack", "--image", &format!("{}:t", s(&img)), s(&b3)]);
    // Read the manifest's layers and apply them in order.
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(img.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.join("blobs/sha256").join(md)).unwrap()).unwrap();
    let ours = t.path().join("ours");
    let layers = manifest["layers"].as_array().unwrap();
    assert!(layers.len() >= 2);
    for l in layers {
        let d = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let o = ld(&["-q", "apply", s(&img.join("blobs/sha256").join(d)), s(&ours)]);
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    assert_eq!(listing(&b3.join("rootfs")), listing(&ours));
}
