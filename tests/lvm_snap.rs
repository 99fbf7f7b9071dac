//! lvm-snap: usage errors and the missing device-mapper on this machine (any tier),
//! loop devices for real (root tier: this kernel has loop but no device-mapper), and
//! everything device-mapper in `guest` (the vm tier, Debian's kernel under qemu).

use crate::harness;

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn says_device_mapper_is_missing_and_how_to_get_it() {
    let misc = std::fs::read_to_string("/proc/misc").unwrap_or_default();
    let o = harness::cmd("lvm-snap").arg("table").output().unwrap();
    if misc.contains("device-mapper") {
        // A kernel with device-mapper (the VM): then the command works.
        assert!(o.status.success(), "{}", stderr_of(&o));
        return;
    }
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(e.contains("lvm-snap: device-mapper is not available in this kernel"), "{e}");
    assert!(e.contains("modprobe dm_mod") && e.contains("CONFIG_BLK_DEV_DM"), "{e}");
    assert!(e.contains(r#"openat(AT_FDCWD, "/dev/mapper/control", O_RDWR|O_CLOEXEC) = -1 ENOENT"#), "{e}");
}

#[test]
fn bad_input_is_a_usage_error() {
    let cases: &[(&[&str], &str)] = &[
        (&["lv", "create", "data", "--size", "8M"], "expected VG/LV"),
        (&["lv", "create", "vg-0/data", "--size", "8M"], "no '-'"),
        (&["lv", "create", "vg0/data", "--size", "8Q"], "invalid size \"8Q\""),
        (&["snap", "create", "vg0/data", "s1", "--size", "8M", "--chunk", "12K"], "invalid chunk size"),
        (&["thin", "pool", "create", "p", "--data", "/dev/loop0", "--meta", "/dev/loop0", "--block", "10K"], "--block"),
        (&["loop", "detach", "/dev/sda"], "not a loop device"),
    ];
    for (args, want) in cases {
        let o = harness::cmd("lvm-snap").args(*args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains(want), "{args:?}: {}", stderr_of(&o));
    }
}

#[test]
fn dry_run_of_a_thin_volume_shows_the_decoded_ioctls() {
    // A machine without device-mapper, on any machine: the first openat (that of
    // /dev/mapper/control) answers ENOENT, by the fault hook. The dry run then shows
    // the changes it would ask for, and its queries as not made (`= ?`): nothing is
    // said to exist, or to be free, that nobody could ask about.
    let o = harness::cmd("lvm-snap")
        .env("CONTLAB_FAULT", "openat:1:ENOENT")
        .args(["--dry-run", "thin", "create", "pool", "big", "--size", "10G"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let trace = stderr_of(&o);
    assert!(trace.contains(r#"DM_TARGET_MSG, {name: "pool", sector: 0, message: "create_thin 0"}) = 0"#), "{trace}");
    assert!(trace.contains(r#"DM_DEV_STATUS, {name: "pool"}) = ? (no device-mapper to ask)"#), "{trace}");
    assert!(
        !trace.contains("DM_DEV_STATUS, {name: \"pool-big\"}) = 0"),
        "a name nobody asked about is not 'taken': {trace}"
    );
    harness::snapshot_settings().bind(|| insta::assert_snapshot!("lvm-snap_dry_thin_create", trace));
}

#[test]
fn loop_devices_need_root() {
    use std::os::unix::process::CommandExt;
    let dir = harness::tmp();
    let f = dir.path().join("a.img");
    std::fs::write(&f, vec![0u8; 4096]).unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut c = std::process::Command::new(harness::bin_path("lvm-snap"));
    c.args(["loop", "attach"]).arg(&f).env("NO_COLOR", "1");
    if nix::unistd::geteuid().is_root() {
        c.uid(65534).gid(65534);
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("run lvm-snap as root"), "{}", stderr_of(&o));
}

/// Root tier: this kernel has loop devices, so attach/detach run for real here.
#[test]
fn loop_attach_and_detach_for_real() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let dir = harness::tmp();
    let f = dir.path().join("pv.img");
    let o = harness::cmd("lvm-snap").args(["loop", "attach", "--create", "--size", "16M"]).arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let e = stderr_of(&o);
    assert!(e.contains("ioctl(/dev/loop-control, LOOP_CTL_GET_FREE) = "), "{e}");
    assert!(e.contains(&format!("ioctl({dev}, LOOP_CONFIGURE, {{fd: ")), "{e}");
    let n = dev.trim_start_matches("/dev/loop");
    let backing = std::fs::read_to_string(format!("/sys/block/loop{n}/loop/backing_file")).unwrap();
    let ls = harness::cmd("lvm-snap").args(["-q", "loop", "ls"]).output().unwrap();
    let detach = harness::cmd("lvm-snap").args(["loop", "detach", &dev]).output().unwrap();
    assert_eq!(backing.trim(), f.to_str().unwrap());
    assert!(String::from_utf8_lossy(&ls.stdout).contains(&dev));
    assert!(detach.status.success(), "{}", stderr_of(&detach));
    assert!(stderr_of(&detach).contains("LOOP_CLR_FD) = 0"));
    assert!(!std::path::Path::new(&format!("/sys/block/loop{n}/loop")).exists(), "{dev} still attached");

    // With autoclear and nobody holding it, the device is gone when lvm-snap exits.
    let o = harness::cmd("lvm-snap").args(["loop", "attach", "--autoclear"]).arg(&f).output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(stderr_of(&o).contains("LO_FLAGS_AUTOCLEAR"));
    let n = dev.trim_start_matches("/dev/loop");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!std::path::Path::new(&format!("/sys/block/loop{n}/loop")).exists(), "autoclear left {dev} attached");
}

/// The vm tier: real device-mapper. Each test builds its own loop files in the
/// guest's /tmp (RAM) and removes everything it made, even when it fails.
mod guest {
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::Path;
    use std::process::Command;

    use crate::harness;

    fn lvm(args: &[&str]) -> String {
        let o = harness::cmd("lvm-snap").args(args).output().unwrap();
        assert!(o.status.success(), "lvm-snap {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn lvm_fails(args: &[&str]) -> String {
        let o = harness::cmd("lvm-snap").args(args).output().unwrap();
        assert!(!o.status.success(), "lvm-snap {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn peer(cmd: &str, args: &[&str]) -> String {
        let o = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
            panic!("{cmd} is needed for this test (Debian package dmsetup / thin-provisioning-tools): {e}")
        });
        assert!(o.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Loop files and whatever sits on them; dropping it removes all dm devices and
    /// detaches the loops (with the peers, so a failing test cannot leave debris).
    struct Lab {
        devs: Vec<String>,
    }

    impl Lab {
        fn new(tag: &str, sizes: &[&str]) -> Lab {
            let mut devs = Vec::new();
            for (i, s) in sizes.iter().enumerate() {
                let f = format!("/tmp/{tag}{i}.img");
                let _ = std::fs::remove_file(&f);
                devs.push(lvm(&["-q", "loop", "attach", "--create", "--size", s, &f]).trim().to_string());
            }
            Lab { devs }
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            let _ = Command::new("dmsetup").args(["remove_all", "--force"]).output();
            for d in &self.devs {
                let _ = harness::cmd("lvm-snap").args(["-q", "loop", "detach", d]).output();
            }
        }
    }

    fn write_at(dev: &str, off: u64, data: &[u8]) {
        let mut f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(data).unwrap();
        f.sync_all().unwrap();
    }

    fn read_at(dev: &str, off: u64, len: usize) -> Vec<u8> {
        let mut f = std::fs::File::open(dev).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut b = vec![0u8; len];
        f.read_exact(&mut b).unwrap();
        b
    }

    fn sorted_lines(s: &str) -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect();
        v.sort();
        v
    }

    fn no_devices_left() {
        let ls = peer("dmsetup", &["ls"]);
        assert!(ls.contains("No devices found") || ls.trim().is_empty(), "dm devices left: {ls}");
        let loops = peer("losetup", &["-a"]);
        assert!(loops.trim().is_empty(), "loop devices left: {loops}");
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn snapshot_keeps_the_old_data_and_merge_rolls_back() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        {
            let lab = Lab::new("snap", &["64M", "64M"]);
            lvm(&["-q", "vg", "create", "vgs", &lab.devs[0], &lab.devs[1]]);
            lvm(&["-q", "lv", "create", "vgs/data", "--size", "16M"]);
            let origin = "/dev/mapper/vgs-data";
            write_at(origin, 0, &vec![b'A'; 1 << 20]);
            let o =
                harness::cmd("lvm-snap").args(["snap", "create", "vgs/data", "s1", "--size", "8M"]).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let trace = String::from_utf8_lossy(&o.stderr);
            // LVM's order: the origin is suspended while the snapshot is born.
            let pos = |s: &str| trace.find(s).unwrap_or_else(|| panic!("{s} missing in\n{trace}"));
            let suspend = pos(r#"DM_DEV_SUSPEND, {name: "vgs-data", flags: DM_SUSPEND_FLAG}"#);
            let snap = pos(r#"DM_TABLE_LOAD, {name: "vgs-s1", table: "0 32768 snapshot "#);
            let origin_load = pos(r#"DM_TABLE_LOAD, {name: "vgs-data", table: "0 32768 snapshot-origin "#);
            let resume = trace[origin_load..].find(r#"DM_DEV_SUSPEND, {name: "vgs-data"}"#).map(|i| i + origin_load);
            assert!(suspend < snap && snap < origin_load && resume.is_some(), "{trace}");

            write_at(origin, 4096, b"BBBBBBBB");
            assert_eq!(
                read_at("/dev/mapper/vgs-s1", 4096, 8),
                b"AAAAAAAA",
                "the snapshot shows the data from before it"
            );
            assert_eq!(read_at(origin, 4096, 8), b"BBBBBBBB", "the origin shows the new data");

            // table and status: the same lines as dmsetup.
            assert_eq!(sorted_lines(&lvm(&["-q", "table"])), sorted_lines(&peer("dmsetup", &["table"])));
            assert_eq!(sorted_lines(&lvm(&["-q", "status"])), sorted_lines(&peer("dmsetup", &["status"])));
            let st = lvm(&["-q", "snap", "status", "vgs/s1"]);
            assert!(st.contains("vgs/s1") && st.contains("valid"), "{st}");

            let m = harness::cmd("lvm-snap").args(["snap", "merge", "vgs/s1"]).output().unwrap();
            assert!(m.status.success(), "{}", String::from_utf8_lossy(&m.stderr));
            assert!(String::from_utf8_lossy(&m.stderr).contains("snapshot-merge"));
            assert_eq!(read_at(origin, 4096, 8), b"AAAAAAAA", "merge rolled the origin back");
            assert_eq!(peer("dmsetup", &["table", "vgs-data"]).split_whitespace().nth(2), Some("linear"));

            lvm(&["-q", "lv", "rm", "vgs/data"]);
            lvm(&["-q", "vg", "rm", "vgs"]);
            for d in &lab.devs {
                lvm(&["-q", "loop", "detach", d]);
            }
            no_devices_left();
        }
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn a_full_cow_store_invalidates_the_snapshot() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let lab = Lab::new("cow", &["64M"]);
        lvm(&["-q", "vg", "create", "vgc", &lab.devs[0], "--extent", "1M"]);
        lvm(&["-q", "lv", "create", "vgc/data", "--size", "16M"]);
        lvm(&["-q", "snap", "create", "vgc/data", "s1", "--size", "1M"]);
        // 2 MiB of writes cannot fit a 1 MiB COW store.
        let mut f = std::fs::OpenOptions::new().write(true).open("/dev/mapper/vgc-data").unwrap();
        let _ = f.write_all(&vec![b'Z'; 2 << 20]);
        let _ = f.sync_all();
        let busy = lvm_fails(&["-q", "snap", "merge", "vgc/s1"]);
        assert!(busy.contains("vgc/data is in use"), "{busy}");
        drop(f);
        let st = lvm(&["-q", "snap", "status", "vgc/s1"]);
        assert!(st.contains("Invalid") && st.contains("filled up"), "{st}");
        let e = lvm_fails(&["-q", "snap", "merge", "vgc/s1"]);
        assert!(e.contains("Invalid"), "{e}");
        lvm(&["-q", "snap", "rm", "vgc/s1"]);
        lvm(&["-q", "lv", "rm", "vgc/data"]);
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn thin_volumes_larger_than_the_pool_and_thin_snapshots() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let lab = Lab::new("thin", &["64M", "8M"]);
        lvm(&[
            "-q",
            "thin",
            "pool",
            "create",
            "pool",
            "--data",
            &lab.devs[0],
            "--meta",
            &lab.devs[1],
            "--error-if-no-space",
        ]);
        lvm(&["-q", "thin", "create", "pool", "big", "--size", "1G"]);
        write_at("/dev/mapper/pool-big", 0, &vec![b'O'; 1 << 20]);
        let s = harness::cmd("lvm-snap").args(["thin", "snap", "pool", "big", "snap1"]).output().unwrap();
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        assert!(String::from_utf8_lossy(&s.stderr).contains(r#"message: "create_snap 1 0""#));
        write_at("/dev/mapper/pool-big", 0, b"NEW!");
        assert_eq!(read_at("/dev/mapper/pool-snap1", 0, 4), b"OOOO");
        assert_eq!(read_at("/dev/mapper/pool-big", 0, 4), b"NEW!");
        let st = lvm(&["-q", "thin", "status", "pool"]);
        assert!(st.contains("pool pool: data") && st.contains("big") && st.contains("snap1"), "{st}");

        // Fill the pool: 64 MiB of data blocks for a 1 GiB volume.
        let mut f = std::fs::OpenOptions::new().write(true).open("/dev/mapper/pool-big").unwrap();
        let chunk = vec![b'F'; 1 << 20];
        let mut err = None;
        for _ in 0..80 {
            if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_data()) {
                err = Some(e);
                break;
            }
        }
        drop(f);
        assert!(err.is_some(), "writing more than the pool holds must fail");
        let st = lvm(&["-q", "thin", "status", "pool"]);
        assert!(st.contains("is FULL") && st.contains("error_if_no_space"), "{st}");

        assert_eq!(sorted_lines(&lvm(&["-q", "table"])), sorted_lines(&peer("dmsetup", &["table"])));
        lvm(&["-q", "thin", "rm", "pool", "snap1"]);
        lvm(&["-q", "thin", "rm", "pool", "big"]);
        lvm(&["-q", "thin", "pool", "rm", "pool"]);
        peer("thin_check", &[&lab.devs[1]]);
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn pv_move_really_moves_a_linear_volume_online() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let lab = Lab::new("mv", &["64M", "64M"]);
        let (a, b) = (&lab.devs[0], &lab.devs[1]);
        let minor = |d: &str| d.trim_start_matches("/dev/loop").to_string();
        lvm(&["-q", "vg", "create", "vgm", a, b]);
        lvm(&["-q", "lv", "create", "vgm/data", "--size", "8M"]);
        let before = peer("dmsetup", &["table", "vgm-data"]);
        assert!(before.contains(&format!(" 7:{} ", minor(a))), "the first extents come from the first PV: {before}");
        let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        write_at("/dev/mapper/vgm-data", 0, &data);
        // Held open during the move, as a mounted filesystem would hold it.
        let held = std::fs::File::open("/dev/mapper/vgm-data").unwrap();
        let m = harness::cmd("lvm-snap").args(["pv", "move", a]).output().unwrap();
        let e = String::from_utf8_lossy(&m.stderr);
        assert!(m.status.success(), "{e}");
        assert_eq!(String::from_utf8_lossy(&m.stdout), format!("{a} emptied\n"));
        assert!(e.contains(r#"DM_DEV_CREATE, {name: "vgm-pvmove0""#) && e.contains("mirror core"), "{e}");
        assert!(e.contains(r#"DM_DEV_REMOVE, {name: "vgm-pvmove0"}"#), "the temporary mirror goes: {e}");
        drop(held);
        let after = peer("dmsetup", &["table", "vgm-data"]);
        assert_eq!(after.trim(), format!("0 16384 linear 7:{} 2048", minor(b)), "now on the other PV");
        assert_eq!(read_at("/dev/mapper/vgm-data", 0, data.len()), data, "every byte made the move");
        assert!(!peer("dmsetup", &["ls"]).contains("pvmove"), "no temporary device left");
        let show = lvm(&["-q", "vg", "show", "vgm"]);
        assert!(show.contains(&format!("-> {b} PE     0-1")), "the metadata says where it went: {show}");
        // The metadata on the disks agrees: deactivate, activate, same data.
        lvm(&["-q", "vg", "deactivate", "vgm"]);
        lvm(&["-q", "vg", "activate", "vgm"]);
        assert_eq!(read_at("/dev/mapper/vgm-data", 0, data.len()), data);
        let again = lvm(&["-q", "pv", "move", a]);
        assert_eq!(again, format!("{a} empty already\n"));
        lvm(&["-q", "lv", "rm", "vgm/data"]);
        lvm(&["-q", "vg", "rm", "vgm"]);
    }

    /// What a devicemapper storage driver needs, through the library on a real kernel:
    /// a pool on given devices, thin ids created, snapshotted while active, activated
    /// under names of the caller's choosing, deactivated, deleted.
    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn thin_operations_by_id_for_a_storage_driver() {
        use contlab::dm::{thin, Dm};
        use contlab::kernel::{Kernel, Mode, Tracer};
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let lab = Lab::new("drv", &["64M", "8M"]);
        let k = Kernel::new("mini", Mode::Live, Tracer::silent());
        let _s = k.scope(contlab::dm::TOOL);
        let dm = Dm::open(&k).unwrap();
        let spec = thin::PoolSpec {
            name: "drvpool".into(),
            data: lab.devs[0].clone().into(),
            meta: lab.devs[1].clone().into(),
            block: 128,
            error_if_no_space: true,
        };
        assert_eq!(thin::pool_create(&dm, &spec).unwrap(), Path::new("/dev/mapper/drvpool"));
        thin::create_thin(&dm, "drvpool", 10).unwrap();
        let base = thin::activate(&dm, "drvpool", 10, "drv-base", 2097152).unwrap();
        write_at(base.to_str().unwrap(), 4096, b"layer-0");
        // A snapshot of an active volume: the library suspends it meanwhile.
        thin::snapshot(&dm, "drvpool", 10, 11).unwrap();
        let ctr = thin::activate(&dm, "drvpool", 11, "drv-ctr", 2097152).unwrap();
        write_at(ctr.to_str().unwrap(), 4096, b"changed");
        assert_eq!(read_at(base.to_str().unwrap(), 4096, 7), b"layer-0");
        assert_eq!(read_at(ctr.to_str().unwrap(), 4096, 7), b"changed");
        assert_eq!(thin::device_of(&dm, "drvpool", 11).unwrap().as_deref(), Some("drv-ctr"));
        assert!(thin::create_thin(&dm, "drvpool", 10).unwrap_err().errno() == Some(contlab::kernel::Errno::EEXIST));
        let st = peer("dmsetup", &["status", "drv-base"]);
        assert!(st.contains(" thin "), "{st}");
        thin::deactivate(&dm, "drv-ctr").unwrap();
        thin::deactivate(&dm, "drv-base").unwrap();
        // A deactivated id keeps its data: activate it again under another name.
        let again = thin::activate(&dm, "drvpool", 11, "drv-again", 2097152).unwrap();
        assert_eq!(read_at(again.to_str().unwrap(), 4096, 7), b"changed");
        thin::deactivate(&dm, "drv-again").unwrap();
        thin::delete_thin(&dm, "drvpool", 11).unwrap();
        thin::delete_thin(&dm, "drvpool", 10).unwrap();
        thin::pool_remove(&dm, "drvpool").unwrap();
        peer("thin_check", &[&lab.devs[1]]);
        assert!(!Path::new("/dev/mapper/drv-ctr").exists() && !Path::new("/dev/mapper/drvpool").exists());
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn striped_mirrored_extended_moved_and_found_again_after_reattach() {
        if !harness::require(harness::Tier::Guest) {
            return;
        }
        let lab = Lab::new("lvm", &["64M", "64M", "64M"]);
        let (a, b, c) = (&lab.devs[0], &lab.devs[1], &lab.devs[2]);
        lvm(&["-q", "vg", "create", "vgl", a, b]);
        lvm(&["-q", "lv", "create", "vgl/st", "--size", "16M", "--stripes", "2"]);
        lvm(&["-q", "lv", "create", "vgl/mi", "--size", "8M", "--mirror"]);
        lvm(&["-q", "lv", "create", "vgl/lin", "--size", "8M"]);
        let t = peer("dmsetup", &["table"]);
        assert!(t.contains("vgl-st: 0 32768 striped 2 128"), "{t}");
        assert!(t.contains("vgl-mi: 0 16384 mirror core 1 1024 2"), "{t}");
        write_at("/dev/mapper/vgl-lin", 0, &vec![b'L'; 1 << 20]);
        lvm(&["-q", "lv", "extend", "vgl/lin", "--size", "+8M"]);
        assert_eq!(peer("blockdev", &["--getsize64", "/dev/mapper/vgl-lin"]).trim(), "16777216");

        // Online move of lin off its PV: add nothing, move to the other PV.
        let show = lvm(&["-q", "vg", "show", "vgl"]);
        assert!(show.contains("LE"), "{show}");
        let on_a = peer("dmsetup", &["table", "vgl-lin"]);
        let src = if on_a.contains(&format!("7:{} ", a.trim_start_matches("/dev/loop"))) { a } else { b };
        let dst = if src == a { b } else { a };
        // Both PVs hold a stripe and a mirror leg: a clear refusal, nothing changed (the
        // move itself is proven by pv_move_really_moves_a_linear_volume_online).
        let m = harness::cmd("lvm-snap").args(["pv", "move", src, "--to", dst]).output().unwrap();
        let e = String::from_utf8_lossy(&m.stderr);
        assert_eq!(m.status.code(), Some(1), "{e}");
        assert!(e.contains("striped or mirrored"), "{e}");
        assert_eq!(peer("dmsetup", &["table", "vgl-lin"]), on_a, "a refused move changes no table");

        // Bad input: a PV in use, a size off the extent grid.
        let busy = lvm_fails(&["pv", "init", a]);
        assert!(busy.contains("already") || busy.contains("in use"), "{busy}");
        let grid = lvm_fails(&["lv", "create", "vgl/odd", "--size", "5M"]);
        assert!(grid.contains("not a multiple of the extent size"), "{grid}");
        // A COW store larger than it can ever use is reduced to that, as lvcreate does:
        // 16 MiB of origin in 8 KiB chunks, 5 table chunks and the header round up to
        // five 4 MiB extents.
        let big = harness::cmd("lvm-snap")
            .args(["-q", "snap", "create", "vgl/lin", "huge", "--size", "32M"])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&big.stderr);
        assert!(big.status.success(), "{said}");
        assert_eq!(said, "  Reducing COW size 32.00 MiB down to maximum usable size 20.00 MiB.\n");
        assert_eq!(peer("blockdev", &["--getsize64", "/dev/mapper/vgl-huge-cow"]).trim(), "20971520");
        lvm(&["-q", "snap", "rm", "vgl/huge"]);
        let _ = c;

        // Reboot-like: deactivate, detach the loops, attach again, activate.
        lvm(&["-q", "vg", "deactivate", "vgl"]);
        for d in &lab.devs {
            lvm(&["-q", "loop", "detach", d]);
        }
        let mut again = Vec::new();
        for i in 0..3 {
            again.push(lvm(&["-q", "loop", "attach", &format!("/tmp/lvm{i}.img")]).trim().to_string());
        }
        let act = lvm(&["-q", "vg", "activate", "vgl"]);
        assert!(act.contains("/dev/mapper/vgl-lin"), "{act}");
        assert_eq!(read_at("/dev/mapper/vgl-lin", 0, 4), b"LLLL");
        lvm(&["-q", "vg", "deactivate", "vgl"]);
        for d in &again {
            lvm(&["-q", "loop", "detach", d]);
        }
        assert!(Path::new("/dev/mapper/control").exists());
    }
}
