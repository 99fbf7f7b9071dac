//! ovl-mount: dry-run traces, real overlay mounts (privileged tier), 200 lower
//! layers through the new mount API, bad input, and the course's storage exercises
//! 1–3 done with ovl-mount and layer-diff.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, cmd, require, stderr_of, stdout_of, Tier};

fn ovl(args: &[&str]) -> std::process::Output {
    cmd("ovl-mount").args(args).output().unwrap()
}

fn ld(args: &[&str]) -> std::process::Output {
    cmd("layer-diff").args(args).output().unwrap()
}

/// The stdout of a command that must succeed.
fn ok_out(o: std::process::Output) -> String {
    assert!(o.status.success(), "{:?}: {}", o.status, stderr_of(&o));
    stdout_of(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Unmounts (lazily, so a failed test never leaves a busy mount) when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// lower/upper/work/merged under `root`, as in the course's exercise 1.
fn dirs(root: &Path, lowers: &[&str]) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in lowers.iter().chain(["upper", "work", "merged"].iter()) {
        let p = root.join(d);
        std::fs::create_dir_all(&p).unwrap();
        v.push(p);
    }
    v
}

fn mount(lower: &str, upper: &Path, work: &Path, merged: &Path) -> Mounted {
    let o = ovl(&["mount", "--lower", lower, "--upper", s(upper), "--work", s(work), s(merged)]);
    assert!(o.status.success(), "mount: {}", stderr_of(&o));
    Mounted(merged.to_path_buf())
}

fn is_mounted(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(s(p)))
}

// ------------------------------------------------------------ dry run / usage ----

#[test]
fn dry_run_mount_shows_the_new_mount_api() {
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1", "l2"]);
    let lower = format!("{}:{}", s(&d[0]), s(&d[1]));
    let o = ovl(&[
        "--dry-run",
        "mount",
        "--lower",
        &lower,
        "--upper",
        s(&d[2]),
        "--work",
        s(&d[3]),
        "--index",
        "off",
        "--volatile",
        s(&d[4]),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(!is_mounted(&d[4]));
    let mut st = harness::snapshot_settings();
    // A directory's st_size is the filesystem's business (4096 on ext4, less on tmpfs).
    st.add_filter(r"S_IFDIR\|(\d+), st_size=\d+", "S_IFDIR|$1, st_size=SIZE");
    st.bind(|| insta::assert_snapshot!("ovl_mount_dry_run_mount", stderr_of(&o)));
}

#[test]
fn usage_and_bad_input() {
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1"]);
    // Missing workdir.
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&d[1]), "--work", s(&t.path().join("nowork")), s(&d[3])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("work directory") && stderr_of(&o).contains("does not exist"), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("--mkdir"));
    // --upper without --work is a usage error.
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&d[1]), s(&d[3])]);
    assert_eq!(o.status.code(), Some(2));
    // lower == upper.
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&d[0]), "--work", s(&d[2]), s(&d[3])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("both the upper and a lower"), "{}", stderr_of(&o));
    // Overlapping upper and work.
    let nested = d[1].join("work");
    std::fs::create_dir_all(&nested).unwrap();
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&d[1]), "--work", s(&nested), s(&d[3])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("overlap"), "{}", stderr_of(&o));
    // Not an overlay.
    for sub in ["inspect", "umount"] {
        let o = ovl(&[sub, s(&d[3])]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr_of(&o).contains("is not an overlay mount point"), "{}", stderr_of(&o));
    }
    let o = ovl(&["-q", "which", s(&d[3]), "/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("is not an overlay mount point"));
    let o = ovl(&["whiteouts", s(&t.path().join("nope"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("is not a directory"));
    assert!(!is_mounted(&d[3]));
}

#[test]
fn workdir_on_another_filesystem_is_refused() {
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1"]);
    let shm = tempfile::Builder::new().prefix("contlab-test-").tempdir_in("/dev/shm").unwrap();
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&d[1]), "--work", s(shm.path()), s(&d[3])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("not on the same filesystem"), "{}", stderr_of(&o));
    assert!(!is_mounted(&d[3]));
}

// ------------------------------------------------------------ privileged ---------

#[test]
fn read_only_overlay_without_upper() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1", "l2"]);
    std::fs::write(d[0].join("top"), "1").unwrap();
    std::fs::write(d[1].join("bottom"), "2").unwrap();
    let o = ovl(&["mount", "--lower", &format!("{}:{}", s(&d[0]), s(&d[1])), s(&d[4])]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let _g = Mounted(d[4].clone());
    assert!(stderr_of(&o).contains("read-only"));
    assert!(d[4].join("top").exists() && d[4].join("bottom").exists());
    assert!(std::fs::write(d[4].join("new"), "x").is_err(), "no upper: read-only");
    let o = ovl(&["-q", "umount", s(&d[4])]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(!is_mounted(&d[4]));
}

#[test]
fn two_hundred_lower_layers_with_lowerdir_plus() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let mut lowers = Vec::new();
    for i in 0..200 {
        let l = t.path().join(format!("layers/layer-{i:03}-{}", "x".repeat(20)));
        std::fs::create_dir_all(&l).unwrap();
        std::fs::write(l.join(format!("f{i:03}")), format!("{i}")).unwrap();
        std::fs::write(l.join("same"), format!("{i}")).unwrap();
        lowers.push(s(&l).to_string());
    }
    let joined = lowers.join(":");
    assert!(joined.len() > 4096, "the layer list alone exceeds a page: {}", joined.len());
    let d = dirs(t.path(), &[]);
    // mount(2) cannot take it: a clear error, nothing mounted.
    let o = ovl(&["mount", "--legacy", "--lower", &joined, "--upper", s(&d[0]), "--work", s(&d[1]), s(&d[2])]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("more than one page"), "{}", stderr_of(&o));
    assert!(!is_mounted(&d[2]));
    // The new mount API can.
    let o = ovl(&["mount", "--lower", &joined, "--upper", s(&d[0]), "--work", s(&d[1]), s(&d[2])]);
    let e = stderr_of(&o);
    if e.contains("falling back to mount(2)") {
        panic!("this kernel lacks fsconfig lowerdir+ (Linux < 6.8): {e}");
    }
    assert!(o.status.success(), "{e}");
    let _g = Mounted(d[2].clone());
    assert_eq!(e.matches("\"lowerdir+\"").count(), 200);
    assert!(d[2].join("f000").exists() && d[2].join("f199").exists());
    assert_eq!(std::fs::read_to_string(d[2].join("same")).unwrap(), "0", "the first lower is on top");
    let v: serde_json::Value = serde_json::from_str(&ok_out(ovl(&["-q", "inspect", "--json", s(&d[2])]))).unwrap();
    assert_eq!(v["Layers"], 200);
    let w = ok_out(ovl(&["-q", "which", s(&d[2]), "/f150"]));
    assert!(w.contains("lower151"), "{w}");
}

#[test]
fn options_reach_the_kernel() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1"]);
    let o = ovl(&[
        "mount",
        "--lower",
        s(&d[0]),
        "--upper",
        s(&d[1]),
        "--work",
        s(&d[2]),
        "--index",
        "on",
        "--redirect-dir",
        "on",
        "--xino",
        "on",
        "--volatile",
        s(&d[3]),
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let _g = Mounted(d[3].clone());
    let out = ok_out(ovl(&["-q", "inspect", s(&d[3])]));
    // (xino=on is not listed when every layer is on one filesystem: nothing to do.)
    for opt in ["index=on", "redirect_dir=on", "volatile"] {
        assert!(out.contains(opt), "{opt} in {out}");
    }
}

#[test]
fn refused_layers_say_why_and_leave_no_mount() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let d = dirs(t.path(), &["l1"]);
    // metacopy=on with redirect_dir=off is refused by overlayfs itself.
    let o = ovl(&[
        "mount",
        "--lower",
        s(&d[0]),
        "--upper",
        s(&d[1]),
        "--work",
        s(&d[2]),
        "--metacopy",
        "on",
        "--redirect-dir",
        "off",
        s(&d[3]),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr_of(&o));
    assert!(stderr_of(&o).contains("FSCONFIG_CMD_CREATE") && stderr_of(&o).contains("dmesg"), "{}", stderr_of(&o));
    assert!(!is_mounted(&d[3]));
    // An overlay cannot be the upper of another: the kernel's own message is quoted,
    // read back from the filesystem context.
    let _g = mount(s(&d[0]), &d[1], &d[2], &d[3]);
    let (up, wk, m2) = (d[3].join("up"), d[3].join("wk"), t.path().join("m2"));
    for p in [&up, &wk, &m2] {
        std::fs::create_dir_all(p).unwrap();
    }
    let o = ovl(&["mount", "--lower", s(&d[0]), "--upper", s(&up), "--work", s(&wk), s(&m2)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("the kernel says: e overlay:") && stderr_of(&o).contains("not supported as upperdir"),
        "{}",
        stderr_of(&o)
    );
    assert!(!is_mounted(&m2));
}

// ------------------------------------------------------------ course exercises ---

/// Storage exercise 1: lower/upper/work/merged; what happens on add, modify,
/// delete.
#[test]
fn course_exercise_1_add_modify_delete() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    // ➜ mkdir lower upper merged workdir
    let d = dirs(t.path(), &["lower"]);
    let (lower, upper, work, merged) = (&d[0], &d[1], &d[2], &d[3]);
    std::fs::write(lower.join("existing"), "from the image\n").unwrap();
    std::fs::write(lower.join("doomed"), "bye\n").unwrap();
    // ➜ mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=workdir merged
    let _g = mount(s(lower), upper, work, merged);
    // Added in merged → created in upper; lower unchanged.
    std::fs::write(merged.join("added"), "new\n").unwrap();
    assert!(upper.join("added").exists() && !lower.join("added").exists());
    let w = ok_out(ovl(&["-q", "which", s(merged), "/added"]));
    assert!(w.starts_with("/added: created in upper"), "{w}");
    // Modified → copied up whole; the lower keeps the original.
    let mut f = std::fs::OpenOptions::new().append(true).open(merged.join("existing")).unwrap();
    std::io::Write::write_all(&mut f, b"changed\n").unwrap();
    drop(f);
    assert_eq!(std::fs::read_to_string(upper.join("existing")).unwrap(), "from the image\nchanged\n");
    assert_eq!(std::fs::read_to_string(lower.join("existing")).unwrap(), "from the image\n");
    let w = ok_out(ovl(&["-q", "which", s(merged), "/existing"]));
    assert!(w.contains("copied up") && w.contains("lower1"), "{w}");
    // Deleted → a whiteout (char device 0/0) in upper; the lower still has it.
    std::fs::remove_file(merged.join("doomed")).unwrap();
    let m = std::fs::symlink_metadata(upper.join("doomed")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0, "ls -l upper shows c--------- 0, 0");
    assert!(lower.join("doomed").exists());
    assert_eq!(ok_out(ovl(&["-q", "whiteouts", s(upper)])), "whiteout /doomed\n");
    let w = ok_out(ovl(&["-q", "which", s(merged), "/doomed"]));
    assert!(w.contains("whited out"), "{w}");
    assert_eq!(ok_out(ld(&["-q", "diff", s(upper), "--lower", s(lower)])), "A /added\nC /existing\nD /doomed\n");
}

/// A small image in layers: the base (like fedora:26) and Docker's `-init` layer.
fn image_layers(root: &Path) -> (PathBuf, PathBuf) {
    let base = root.join("image/base");
    let init = root.join("image/init");
    for d in ["etc", "usr/bin", "opt/tool", "mnt", "home", "root"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    std::fs::write(base.join("etc/issue"), "Fedora release 26\n").unwrap();
    std::fs::write(base.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(base.join("etc/motd"), "").unwrap();
    std::fs::write(base.join("usr/bin/uniq"), "#!uniq\n").unwrap();
    std::fs::write(base.join("opt/tool/run"), "x").unwrap();
    std::fs::create_dir_all(init.join("etc")).unwrap();
    std::fs::write(init.join("etc/hostname"), "container\n").unwrap();
    (init, base)
}

/// Storage exercise 2: how many lower layers, where are LowerDir/UpperDir/
/// MergedDir (docker inspect's GraphDriver), the content of the upper layer, a file
/// created from the outside in MergedDir, and `mount | grep overlay`.
#[test]
fn course_exercise_2_graphdriver_and_mount_grep_overlay() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let (init, base) = image_layers(t.path());
    let c = dirs(t.path(), &[]);
    let (upper, work, merged) = (&c[0], &c[1], &c[2]);
    let lower = format!("{}:{}", s(&init), s(&base));
    let _g = mount(&lower, upper, work, merged);
    // In the container: touch patate.txt; rm /etc/issue; echo pouf >> /etc/passwd
    std::fs::write(merged.join("patate.txt"), "").unwrap();
    std::fs::remove_file(merged.join("etc/issue")).unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(merged.join("etc/passwd")).unwrap();
    std::io::Write::write_all(&mut f, b"pouf\n").unwrap();
    drop(f);
    // docker inspect → GraphDriver: two lower layers (the image and -init).
    let o = ovl(&["-q", "inspect", "--json", s(merged)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&o)).unwrap();
    let data = &v["GraphDriver"]["Data"];
    assert_eq!(data["LowerDir"], lower);
    assert_eq!(data["UpperDir"], s(upper));
    assert_eq!(data["WorkDir"], s(work));
    assert_eq!(data["MergedDir"], s(merged));
    assert_eq!(v["Layers"], 2);
    // `mount | grep overlay` gives the same: inspect reads the same kernel table.
    let mnt = Command::new("sh").args(["-c", "mount | grep overlay"]).output().unwrap();
    let line = stdout_of(&mnt).lines().find(|l| l.contains(s(merged))).unwrap_or_default().to_string();
    assert!(line.contains(&format!("upperdir={}", s(upper))), "{line}");
    // The upper layer holds exactly the container's changes (tree upper).
    assert_eq!(ok_out(ovl(&["-q", "whiteouts", s(upper)])), "whiteout /etc/issue\n");
    let mut upper_files: Vec<String> = Vec::new();
    for e in ["patate.txt", "etc/issue", "etc/passwd"] {
        if upper.join(e).symlink_metadata().is_ok() {
            upper_files.push(e.into());
        }
    }
    assert_eq!(upper_files.len(), 3);
    // From the host, create Hello_from_the_outside in MergedDir: the container sees it.
    std::fs::write(Path::new(data["MergedDir"].as_str().unwrap()).join("Hello_from_the_outside"), "").unwrap();
    assert!(merged.join("Hello_from_the_outside").exists() && upper.join("Hello_from_the_outside").exists());
}

/// Storage exercise 3: rm -rf /opt /mnt /usr/bin/uniq; dd 8500 bytes to
/// /home/random; append to /etc/motd; `docker diff` (exactly the course's lines),
/// `docker commit` (one new layer of about 8.5 kB), and a new container from it.
#[test]
fn course_exercise_3_diff_commit_and_a_new_container() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let (_, base) = image_layers(t.path());
    let c = dirs(t.path(), &[]);
    let (upper, work, merged) = (&c[0], &c[1], &c[2]);
    {
        let _g = mount(s(&base), upper, work, merged);
        std::fs::remove_dir_all(merged.join("opt")).unwrap();
        std::fs::remove_dir_all(merged.join("mnt")).unwrap();
        std::fs::remove_file(merged.join("usr/bin/uniq")).unwrap();
        let random: Vec<u8> = (0..8500u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        std::fs::write(merged.join("home/random"), random).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(merged.join("etc/motd")).unwrap();
        std::io::Write::write_all(&mut f, b"Tagada tsoin tsoin\n").unwrap();
        drop(f);
        let o = ovl(&["-q", "umount", s(merged)]);
        assert!(o.status.success(), "{}", stderr_of(&o));
    }
    // docker diff mydebian (the course's output, less bash's /root/.bash_history).
    let o = ld(&["-q", "diff", s(upper), "--lower", s(&base)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(
        stdout_of(&o),
        "C /etc\nC /etc/motd\nC /home\nA /home/random\nC /usr\nC /usr/bin\nD /usr/bin/uniq\nD /mnt\nD /opt\n"
    );
    // docker commit mydebian debian:new → one new layer, about 8.5 kB.
    let layer = t.path().join("commit.tar");
    let o = ld(&["-q", "pack", s(upper), "-o", s(&layer)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(stdout_of(&o).contains("whiteouts 3"), "{}", stdout_of(&o));
    let size = std::fs::metadata(&layer).unwrap().len();
    assert!(
        (8500..16_000).contains(&size),
        "the new layer is about 8.5 kB of content (docker history: 8.93kB): {size}"
    );
    // A new container from debian:new: its layers are the base and the commit.
    let newlayer = t.path().join("image/new");
    let o = ld(&["-q", "apply", "--overlay", s(&layer), s(&newlayer)]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let c2 = dirs(&t.path().join("c2"), &[]);
    let _g = mount(&format!("{}:{}", s(&newlayer), s(&base)), &c2[0], &c2[1], &c2[2]);
    let m2 = &c2[2];
    assert!(!m2.join("opt").exists() && !m2.join("mnt").exists() && !m2.join("usr/bin/uniq").exists());
    assert_eq!(std::fs::metadata(m2.join("home/random")).unwrap().len(), 8500);
    assert!(std::fs::read_to_string(m2.join("etc/motd")).unwrap().ends_with("Tagada tsoin tsoin\n"));
    assert!(m2.join("etc/passwd").exists());
}

// ------------------------------------------------------------ killed (SIGKILL) ---

/// `ovl-mount mount --mkdir` killed at each step of the new mount API (fsopen, every
/// fsconfig, fsmount, move_mount): nothing is mounted (a context or a detached mount
/// goes with the process), only the directories --mkdir made remain, and the same
/// command then mounts, `ovl-mount umount` unmounts. An `umount` killed before its
/// umount2(2) leaves the overlay mounted, and `ovl-mount umount` again removes it.
#[test]
fn a_killed_mount_leaves_no_mount_and_umount_cleans_up() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    let lower = t.path().join("lower");
    std::fs::create_dir_all(&lower).unwrap();
    std::fs::write(lower.join("f"), "x").unwrap();
    let c = t.path().join("c");
    let (upper, work, merged) = (c.join("upper"), c.join("work"), c.join("merged"));
    let mount_cmd = || {
        let mut m = Command::new(harness::bin_path("ovl-mount"));
        m.args(["mount", "--mkdir", "--lower", s(&lower), "--upper", s(&upper), "--work", s(&work), s(&merged)]);
        m
    };
    // source, lowerdir+, upperdir, workdir, FSCONFIG_CMD_CREATE.
    let mut steps = vec![("fsopen", 1), ("fsmount", 1), ("move_mount", 1)];
    steps.extend((1..=5).map(|n| ("fsconfig", n)));
    for (call, nth) in steps {
        std::fs::create_dir_all(&c).unwrap();
        let killed = harness::kill9(harness::stopped_at(mount_cmd(), call, nth));
        assert!(!killed.status.success(), "{call} #{nth}");
        assert!(!is_mounted(&merged), "{call} #{nth}: a killed mount leaves no mount");
        for d in [&upper, &work, &merged] {
            assert!(d.is_dir(), "{call} #{nth}: {} made by --mkdir stays", d.display());
        }
        let _g = Mounted(merged.clone());
        ok_out(mount_cmd().output().unwrap());
        assert!(is_mounted(&merged), "{call} #{nth}: the same command mounts");
        ok_out(ovl(&["-q", "umount", s(&merged)]));
        assert!(!is_mounted(&merged));
        std::fs::remove_dir_all(&c).unwrap();
    }
    std::fs::create_dir_all(&c).unwrap();
    let _g = Mounted(merged.clone());
    ok_out(mount_cmd().output().unwrap());
    let mut u = Command::new(harness::bin_path("ovl-mount"));
    u.args(["umount", s(&merged)]);
    harness::kill9(harness::stopped_at(u, "umount2", 1));
    assert!(is_mounted(&merged), "killed before umount2(2): still mounted");
    ok_out(ovl(&["-q", "umount", s(&merged)]));
    assert!(!is_mounted(&merged));
}
