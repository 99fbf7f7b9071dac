//! Helpers shared by every test module: the binary under test, temp dirs, tiers,
//! snapshot filters.

#![allow(dead_code)]

use std::path::PathBuf;

/// A command for one of contlab's binaries, with color off, no inherited trace
/// settings and no inherited descriptors, so outputs are stable.
pub fn cmd(bin: &str) -> assert_cmd::Command {
    let mut std_cmd = std::process::Command::new(bin_path(bin));
    no_inherited_fds(&mut std_cmd);
    let mut c = assert_cmd::Command::from_std(std_cmd);
    c.env("NO_COLOR", "1").env_remove("CONTLAB_ROOT").env_remove("CONTLAB_FAULT");
    c
}

/// Start `c` with descriptors 0, 1 and 2 only, as from a terminal: whatever the test
/// runner holds open (a lock taken with `flock(1)`, a CI agent's pipes) would otherwise
/// shift every descriptor number the traces show.
pub fn no_inherited_fds(c: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range(2) is async-signal-safe; CLOSE_RANGE_CLOEXEC (Linux 5.11)
    // only marks the descriptors, so std's own exec-error pipe keeps working.
    unsafe {
        c.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 4u32);
            Ok(())
        })
    }
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
        opted_out(name, why);
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

/// The tests that did not run because the caller opted out, with why; printed after
/// libtest's summary (an `atexit(3)` handler), so a run that opted out never looks
/// like a run that tested everything: libtest counts those tests as passed.
static OPTED_OUT: std::sync::Mutex<Vec<(String, String, &'static str)>> = std::sync::Mutex::new(Vec::new());

/// Record that the current test did not run because `tier` was opted out.
pub fn opted_out(tier: &str, why: &'static str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let mut v = OPTED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    if v.is_empty() {
        extern "C" fn report() {
            let v = OPTED_OUT.lock().unwrap_or_else(|e| e.into_inner());
            let mut tiers: Vec<&str> = v.iter().map(|(t, _, _)| t.as_str()).collect();
            tiers.sort();
            tiers.dedup();
            let mut text = format!(
                "\nNOT TESTED: {} test(s) did not run (counted as passed above) because CONTLAB_OPT_OUT={} opted out:\n",
                v.len(),
                tiers.join(",")
            );
            for (tier, test, why) in v.iter() {
                text.push_str(&format!("  {test} [{tier}]: {why}\n"));
            }
            use std::io::Write;
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        // SAFETY: registering a plain extern "C" function with no arguments.
        unsafe { libc::atexit(report) };
    }
    v.push((tier.to_string(), test, why));
}

/// Run `c` with its stdin, stdout and stderr on a new pseudo-terminal (as from a
/// terminal emulator) and return its exit status and everything it wrote there.
pub fn run_on_pty(mut c: std::process::Command) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::os::fd::AsFd;
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = || std::process::Stdio::from(pty.slave.as_fd().try_clone_to_owned().expect("dup the pty"));
    c.stdin(slave()).stdout(slave()).stderr(slave());
    let mut child = c.spawn().expect("start the command on the pty");
    // The Command still holds its copies of the slave: close them, and ours, so the
    // master reads EIO once the child (and its children) have closed theirs.
    drop(c);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Reading the master fails with EIO once the last slave descriptor is closed.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (child.wait().expect("wait"), String::from_utf8_lossy(&out).into_owned())
}

/// A command running on a pseudo-terminal the test drives, as a user at a terminal
/// would: type keys, wait for text on the screen.
pub struct Terminal {
    master: std::fs::File,
    /// The command.
    pub child: std::process::Child,
    /// Everything the command wrote so far.
    pub seen: String,
}

impl Terminal {
    /// Start `c` on a new terminal of 24 rows and 80 columns.
    pub fn start(mut c: std::process::Command) -> Terminal {
        use std::os::fd::AsFd;
        let ws = nix::pty::Winsize { ws_row: 24, ws_col: 80, ws_xpixel: 0, ws_ypixel: 0 };
        let pty = nix::pty::openpty(Some(&ws), None).expect("openpty");
        let slave = || std::process::Stdio::from(pty.slave.as_fd().try_clone_to_owned().expect("dup the pty"));
        c.stdin(slave()).stdout(slave()).stderr(slave());
        {
            use std::os::unix::process::CommandExt;
            // A session of its own with the terminal as its controlling terminal, as a
            // shell in a terminal emulator has.
            unsafe {
                c.pre_exec(|| {
                    libc::setsid();
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                    Ok(())
                });
            }
        }
        let child = c.spawn().expect("start the command on the terminal");
        drop(c);
        drop(pty.slave);
        Terminal { master: std::fs::File::from(pty.master), child, seen: String::new() }
    }

    /// Type `keys`.
    pub fn send(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).expect("write to the terminal");
    }

    /// Wait until `text` appears in what the command wrote after `from` (a byte offset
    /// in `seen`), up to 30 s; returns the offset after it. Panics with the screen.
    pub fn expect_from(&mut self, from: usize, text: &str) -> usize {
        use std::io::Read;
        use std::os::fd::AsFd;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(i) = self.seen.get(from..).and_then(|s| s.find(text)) {
                return from + i + text.len();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                panic!("{text:?} did not appear on the terminal within 30 s; it shows:\n{}", self.seen);
            }
            let hup = {
                let mut fds = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
                let ms = left.as_millis().min(1000) as u16;
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
                if !fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(nix::poll::PollFlags::POLLIN | nix::poll::PollFlags::POLLHUP))
                {
                    continue;
                }
                fds[0].revents().is_some_and(|r| {
                    r.contains(nix::poll::PollFlags::POLLHUP) && !r.contains(nix::poll::PollFlags::POLLIN)
                })
            };
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) if hup => {
                    if self.seen.get(from..).and_then(|s| s.find(text)).is_none() {
                        panic!("the terminal closed before {text:?} appeared; it showed:\n{}", self.seen);
                    }
                }
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => {}
            }
        }
    }

    /// Wait until `text` appears (anywhere in what was written).
    pub fn expect(&mut self, text: &str) -> usize {
        self.expect_from(0, text)
    }

    /// Wait for the command to end (up to 30 s); its status.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                let mut rest = Vec::new();
                let _ = nix::fcntl::fcntl(
                    std::os::fd::AsFd::as_fd(&self.master),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                let _ = self.master.read_to_end(&mut rest);
                self.seen.push_str(&String::from_utf8_lossy(&rest));
                return (st, self.seen);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the command did not end within 30 s; the terminal shows:\n{}", self.seen);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
