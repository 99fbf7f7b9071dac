//! Helpers shared by every test module: the binary under test, temp dirs, tiers,
//! snapshot filters.

#![allow(dead_code)]

use std::path::PathBuf;

/// A command for one of contlab's binaries, with color off and no inherited trace
/// settings, so outputs are stable.
pub fn cmd(bin: &str) -> assert_cmd::Command {
    let mut std_cmd = std::process::Command::new(bin_path(bin));
    // The tool starts with only stdin, stdout and stderr, as from a shell: descriptors
    // this test process inherited (`flock LOCK cargo test` passes its lock as fd 3)
    // would shift the descriptor numbers a trace shows.
    // SAFETY: close_range(2) is async-signal-safe and touches only the child's table.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut std_cmd, || {
            libc::syscall(libc::SYS_close_range, 3, libc::c_uint::MAX, 0);
            Ok(())
        });
    }
    let mut c = assert_cmd::Command::from_std(std_cmd);
    c.env("NO_COLOR", "1").env_remove("CONTLAB_ROOT");
    c
}

/// The path of a built binary.
pub fn bin_path(bin: &str) -> PathBuf {
    assert_cmd::cargo::cargo_bin(bin)
}

/// A fresh temporary directory, removed when dropped.
pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("contlab-test-").tempdir().expect("temp dir")
}

/// Test tiers that need something of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Root on this machine: real namespaces, mounts, cgroups.
    Root,
    /// Inside the VM booted by `vm::guest_suite` (pure cgroup v2, device-mapper).
    Guest,
}

/// Check that the machine provides `tier`. A missing privilege FAILS the test with
/// the reason. The one way out is explicit: `CONTLAB_OPT_OUT=root` (or `vm`),
/// which CI never sets; then this returns false and the caller returns, after a
/// line on stderr that says so.
pub fn require(tier: Tier) -> bool {
    let (name, ok, why) = match tier {
        Tier::Root => (
            "root",
            nix::unistd::geteuid().is_root(),
            "the privileged tier needs root (real namespaces, mounts, cgroups); run the tests as root",
        ),
        Tier::Guest => (
            "vm",
            std::env::var_os("CONTLAB_IN_VM").is_some(),
            "this test belongs to the vm tier: it runs inside the VM started by vm::guest_suite, not on the host",
        ),
    };
    if ok {
        return true;
    }
    let opted: Vec<String> =
        std::env::var("CONTLAB_OPT_OUT").unwrap_or_default().split(',').map(str::to_string).collect();
    if opted.iter().any(|o| o == name) {
        eprintln!("opted out of the {name} tier by CONTLAB_OPT_OUT={name}: not tested");
        return false;
    }
    panic!("{why} (or opt out explicitly with CONTLAB_OPT_OUT={name})");
}

/// insta settings that replace what changes from run to run: PIDs in trace prefixes,
/// temp paths, inode numbers, environment sizes.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"\[([a-z-]+) \d+\]", "[$1 PID]");
    s.add_filter(r"/tmp/contlab-test-[A-Za-z0-9]+", "[TMP]");
    s.add_filter(r"/\* \d+ vars \*/", "/* N vars */");
    s.add_filter(r"\b\d{9,}\b", "[INODE]");
    s.add_filter(r"/proc/\d+/", "/proc/PID/");
    s.add_filter(r"NULL\) = \d+", "NULL) = CHILD");
    s.add_filter(r"fork\(\) = \d+", "fork() = CHILD");
    s.add_filter(r"(wait4|kill)\(\d+", "$1(CHILD");
    s.add_filter(r"= \d+ \[\{WIF", "= CHILD [{WIF");
    s.set_prepend_module_to_snapshot(false);
    s
}

/// A minimal root filesystem in `dir`: Debian's static busybox and its applets, plus
/// the empty directories a container expects (proc, sys, dev, tmp).
pub fn busybox_rootfs(dir: &std::path::Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox is missing: install Debian's busybox-static (apt-get install busybox-static)");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let out = std::process::Command::new(busybox).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    std::fs::write(dir.join("etc/hostname"), "rootfs\n").unwrap();
}

/// The stderr of a finished command, as text.
pub fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stdout of a finished command, as text.
pub fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A contlab binary started with `CONTLAB_FAULT=CALL:N:stop`: it stops itself (SIGSTOP)
/// just before its Nth request named CALL. Returns once it is stopped there, so a fault
/// test can `kill -9` it at exactly that step; panics (with the output so far) if the
/// process ends or does not stop within 60 s.
pub fn stopped_at(mut cmd: std::process::Command, call: &str, nth: u32) -> std::process::Child {
    use std::process::Stdio;
    cmd.env("CONTLAB_FAULT", format!("{call}:{nth}:stop"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the command under test");
    let stat = format!("/proc/{}/stat", child.id());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = std::fs::read_to_string(&stat).ok().and_then(|s| {
            let after = s.rsplit_once(") ")?.1.to_string();
            after.chars().next()
        });
        match state {
            Some('T') | Some('t') => return child,
            Some('Z') | None => {
                let out = child.wait_with_output().expect("collect the output");
                panic!(
                    "the command ended before its request {call} #{nth} ({:?}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            _ if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                panic!("the command did not reach its request {call} #{nth} within 60 s");
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// SIGKILL a child (stopped or not) and collect it.
pub fn kill9(mut child: std::process::Child) -> std::process::Output {
    let _ = child.kill();
    child.wait_with_output().expect("collect the killed command")
}
