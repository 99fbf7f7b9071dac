//! ns-exec: CLI behaviour, dry-run traces, and (as root) real namespaces.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{self, cmd, require, stderr_of, stdout_of, Tier};

/// A stable PATH so the `access(2)` lines of the PATH search are the same everywhere.
const PATH: &str = "/usr/bin:/bin";

fn ns() -> assert_cmd::Command {
    let mut c = cmd("ns-exec");
    c.env("PATH", PATH);
    c
}

fn run(args: &[&str]) -> std::process::Output {
    ns().args(args).output().unwrap()
}

/// Snapshot filters for ns-exec traces: those of every tool, and who runs the test
/// (`getresuid() = 0 [ruid=0, ...]` as root, 1000 as a user), which the plan shown
/// does not depend on.
fn settings() -> insta::Settings {
    let mut s = harness::snapshot_settings();
    s.add_filter(r"\[ruid=\d+, euid=\d+, suid=\d+\]", "[ruid=UID, euid=UID, suid=UID]");
    s.add_filter(r"\[rgid=\d+, egid=\d+, sgid=\d+\]", "[rgid=GID, egid=GID, sgid=GID]");
    s
}

// ---------------------------------------------------------------- dry run ----------

#[test]
fn dry_run_pid_uts_proc() {
    let o = run(&["--dry-run", "--pid", "--uts", "--hostname", "box", "--mount-proc", "--", "true"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "", "a dry run prints its plan on stderr only");
    settings().bind(|| insta::assert_snapshot!("ns_exec_dry_run_pid_uts_proc", stderr_of(&o)));
}

#[test]
fn dry_run_rootfs_pivot() {
    let t = harness::tmp();
    let o = run(&["--dry-run", "--pid", "--mount-proc", "--rootfs", t.path().to_str().unwrap(), "--", "/bin/sh"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    settings().bind(|| insta::assert_snapshot!("ns_exec_dry_run_rootfs", stderr_of(&o)));
}

#[test]
fn dry_run_explicit_maps_use_a_helper() {
    let o = run(&["--dry-run", "--uid-map", "0:100000:65536", "--gid-map", "0:100000:65536", "--", "true"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    settings().bind(|| insta::assert_snapshot!("ns_exec_dry_run_maps", stderr_of(&o)));
}

#[test]
fn dry_run_changes_nothing() {
    // A dry run that would set the hostname leaves the real one alone.
    let before = nix::unistd::gethostname().unwrap();
    let o = run(&["--dry-run", "-q", "--uts", "--hostname", "dry-run-should-not-apply", "--", "true"]);
    assert!(o.status.success());
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

// ---------------------------------------------------------------- usage ------------

#[test]
fn usage_errors_exit_2() {
    for (args, needle) in [
        (&["--pid"][..], "no command given"),
        (&["--uid-map", "0:1", "--", "true"][..], "invalid id mapping"),
        (&["--uid-map", "a:b:c", "--", "true"][..], "INSIDE:OUTSIDE:COUNT"),
        (&["--init", "--", "true"][..], "--pid"),
        (&["--no-such-flag", "--", "true"][..], "unexpected argument"),
        (&["--map-root", "--uid-map", "0:0:1", "--", "true"][..], "exclusive"),
        (&["--pid", "--seccomp", "/no/such/profile.json", "--", "true"][..], "cannot read the profile"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains(needle), "{args:?}: {}", stderr_of(&o));
    }
}

#[test]
fn show_json_lists_this_process() {
    let me = std::process::id().to_string();
    let o = run(&["-q", "show", "--json", &me]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["pid"].as_i64().unwrap().to_string(), me);
    assert!(v[0]["namespaces"]["net"].as_u64().unwrap() > 0);
}

#[test]
fn show_missing_pid_fails_with_a_message() {
    let o = run(&["-q", "show", "999999999"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("cannot read the namespaces of process 999999999"), "{}", stderr_of(&o));
}

// ---------------------------------------------------------------- exit codes (root) -

#[test]
fn exit_codes_follow_docker() {
    if !require(Tier::Root) {
        return;
    }
    let code = |args: &[&str]| run(args).status.code();
    assert_eq!(code(&["-q", "--", "sh", "-c", "exit 3"]), Some(3), "the command's status");
    assert_eq!(code(&["-q", "--", "no-such-command-xyz"]), Some(127), "not found");
    assert_eq!(code(&["-q", "--", "/etc/passwd"]), Some(126), "not executable");
    assert_eq!(code(&["-q", "--", "sh", "-c", "kill -9 $$"]), Some(137), "128 + SIGKILL");
    assert_eq!(code(&["-q", "--rootfs", "/no/such/dir", "--", "true"]), Some(125), "the tool failed");
    let o = run(&["-q", "--", "no-such-command-xyz"]);
    assert!(stderr_of(&o).contains("command not found in $PATH"), "{}", stderr_of(&o));
}

// ---------------------------------------------------------------- namespaces (root) -

fn ns_link(pid: &str, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_kind_gets_a_new_namespace() {
    if !require(Tier::Root) {
        return;
    }
    for (flag, kind) in [
        ("--mount", "mnt"),
        ("--uts", "uts"),
        ("--ipc", "ipc"),
        ("--net", "net"),
        ("--cgroup", "cgroup"),
        ("--user", "user"),
        // PID and time namespaces apply to children: the command is that child.
        ("--pid", "pid"),
        ("--time", "time"),
    ] {
        let o = run(&["-q", flag, "--", "readlink", &format!("/proc/self/ns/{kind}")]);
        assert!(o.status.success(), "{flag}: {}", stderr_of(&o));
        let inside = stdout_of(&o).trim().to_string();
        assert_ne!(inside, ns_link("self", kind), "{flag} must give a new {kind} namespace");
    }
}

#[test]
fn pid_1_in_its_namespace() {
    if !require(Tier::Root) {
        return;
    }
    let o = run(&["-q", "--pid", "--mount-proc", "--", "sh", "-c", "echo $$; ps -e -o pid= | wc -l"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = stdout_of(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"), "the command is PID 1");
    let procs: usize = lines.next().unwrap().trim().parse().unwrap();
    assert!(procs <= 3, "ps inside sees only the namespace's processes, saw {procs}");
}

#[test]
fn hostname_is_private() {
    if !require(Tier::Root) {
        return;
    }
    let before = nix::unistd::gethostname().unwrap();
    let o = run(&["-q", "--uts", "--hostname", "lab-box", "--", "hostname"]);
    assert_eq!(stdout_of(&o).trim(), "lab-box");
    assert_eq!(nix::unistd::gethostname().unwrap(), before, "the host's name is untouched");
}

#[test]
fn new_net_namespace_has_only_lo() {
    if !require(Tier::Root) {
        return;
    }
    let o = run(&["-q", "--net", "--", "cat", "/proc/net/dev"]);
    let ifaces: Vec<String> =
        stdout_of(&o).lines().skip(2).map(|l| l.split(':').next().unwrap().trim().to_string()).collect();
    assert_eq!(ifaces, ["lo"]);
}

/// The host's mounts at or below `dir` (mount points as /proc/self/mountinfo lists
/// them). A test that checks "nothing left" looks only at its own paths: other tests
/// mount and unmount elsewhere at the same time.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == dir || p.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

#[test]
fn rootfs_with_pivot_root_hides_the_host() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    harness::busybox_rootfs(t.path());
    assert_eq!(mounts_under(t.path()), Vec::<String>::new());
    let o = run(&[
        "-q",
        "--pid",
        "--mount-proc",
        "--uts",
        "--hostname",
        "rootfs",
        "--rootfs",
        t.path().to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "hostname; cat /proc/1/comm; ls /; test -e /work && echo HOST-VISIBLE; wc -l < /proc/self/mountinfo",
    ]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = stdout_of(&o);
    assert!(out.starts_with("rootfs\nsh\n"), "{out}");
    assert!(!out.contains("HOST-VISIBLE"), "the host's tree must not be reachable: {out}");
    let inside_mounts: usize = out.lines().last().unwrap().trim().parse().unwrap();
    assert_eq!(inside_mounts, 2, "only the new root and its /proc remain: {out}");
    assert_eq!(mounts_under(t.path()), Vec::<String>::new(), "no mount of the new root leaks to the host");
}

#[test]
fn a_spec_with_mounts_masks_user_env_and_cwd() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    harness::busybox_rootfs(t.path());
    for d in ["data", "scratch"] {
        std::fs::create_dir(t.path().join(d)).unwrap();
    }
    std::fs::write(t.path().join("dev/null"), "").unwrap(); // the mount point of a file bind
    let src = harness::tmp();
    std::fs::write(src.path().join("hello"), "hello from the host\n").unwrap();
    std::fs::set_permissions(src.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let bind = format!("{}:/data", src.path().display());
    let script = "pwd; id -u; id -G; echo \"$GREETING\"; env | grep -c CARGO; cat hello; \
                  touch /data/x 2>/dev/null || echo data-is-read-only; wc -c < /proc/uptime; ls -A /etc | wc -l; \
                  touch /scratch/y && echo scratch-is-writable";
    // The host's PATH has no /bin: `sh` is found through the command's own PATH, in the new root.
    let o = ns()
        .env("PATH", "/usr/bin")
        .args(["-q", "--pid", "--mount-proc", "--rootfs", t.path().to_str().unwrap()])
        .args(["--tmpfs", "/scratch", "--bind", "/dev/null:/dev/null", "--bind", &bind])
        .args(["--readonly-path", "/data", "--masked-path", "/proc/uptime", "--masked-path", "/etc"])
        .args(["--cwd", "/data", "--setuid", "1000:1000", "--groups", "27"])
        .args(["--env", "PATH=/bin", "--env", "GREETING=hi", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(
        stdout_of(&o),
        "/data\n1000\n1000 27\nhi\n0\nhello from the host\ndata-is-read-only\n0\n0\nscratch-is-writable\n",
        "{}",
        stderr_of(&o)
    );
    assert!(!src.path().join("x").exists(), "the bind is read-only");
    assert_eq!(mounts_under(t.path()), Vec::<String>::new(), "nothing mounted on the host");
}

/// The PIDs of `pid`'s children.
fn children_of(pid: u32) -> Vec<i32> {
    let f = format!("/proc/{pid}/task/{pid}/children");
    std::fs::read_to_string(f).unwrap_or_default().split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

#[test]
fn killed_at_each_step_of_the_new_root_it_leaves_no_mount() {
    if !require(Tier::Root) {
        return;
    }
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    // The steps of the child (no PID namespace: its PID 1 would ignore its own SIGSTOP):
    // mount #1 propagation, #2 the bind of the root, chdir #1 into it, mount #3 proc,
    // pivot_root, umount2 of the old root, chdir #2 to /.
    for (call, nth) in
        [("mount", 1), ("mount", 2), ("chdir", 1), ("mount", 3), ("pivot_root", 1), ("umount2", 1), ("chdir", 2)]
    {
        let t = harness::tmp();
        harness::busybox_rootfs(t.path());
        let mut tool = Command::new(harness::bin_path("ns-exec"))
            .args(["-q", "--mount-proc", "--rootfs", t.path().to_str().unwrap(), "--", "/bin/true"])
            .env("PATH", PATH)
            .env("CONTLAB_FAULT", format!("{call}:{nth}:stop"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The new root is made by ns-exec's child: wait until that one stops there.
        let t0 = std::time::Instant::now();
        let child = loop {
            if let Some(c) = children_of(tool.id()).into_iter().find(|c| matches!(state_of(*c), Some('T' | 't'))) {
                break c;
            }
            assert!(tool.try_wait().unwrap().is_none(), "{call} #{nth}: ns-exec ended before stopping there");
            assert!(t0.elapsed() < Duration::from_secs(60), "{call} #{nth}: the child never stopped");
            std::thread::sleep(Duration::from_millis(5));
        };
        kill(Pid::from_raw(child), Signal::SIGKILL).unwrap();
        let _ = tool.kill();
        tool.wait().unwrap();
        // Every mount was made in the child's private mount namespace, which died with it.
        assert_eq!(mounts_under(t.path()), Vec::<String>::new(), "{call} #{nth}: a mount leaked to the host");
        std::fs::remove_dir_all(t.path()).unwrap_or_else(|e| panic!("{call} #{nth}: the tree stays busy: {e}"));
    }
}

#[test]
fn root_in_container_is_root_on_host_unless_mapped() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    std::fs::set_permissions(t.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // Without a user namespace, uid 0 inside is uid 0 outside: the file is root's.
    let f1 = t.path().join("by-root");
    let o = run(&["-q", "--pid", "--", "touch", f1.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f1).unwrap()), 0);
    // An unprivileged user with --map-root is root inside, and still itself outside.
    let f2 = t.path().join("by-mapped-root");
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(harness::bin_path("ns-exec"))
        .args(["-q", "--map-root", "--", "sh", "-c"])
        .arg(format!("id -u; touch {}", f2.display()))
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o).trim(), "0", "root inside");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&f2).unwrap()), 65534, "nobody outside");
}

#[test]
fn explicit_maps_are_written_by_the_helper() {
    if !require(Tier::Root) {
        return;
    }
    let o =
        run(&["-q", "--uid-map", "0:100000:65536", "--gid-map", "0:100000:65536", "--", "cat", "/proc/self/uid_map"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let line: Vec<String> = stdout_of(&o).split_whitespace().map(str::to_string).collect();
    assert_eq!(line, ["0", "100000", "65536"]);
}

#[test]
fn unprivileged_explicit_maps_fail_cleanly() {
    if !require(Tier::Root) {
        return;
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(harness::bin_path("ns-exec"))
        .args(["--uid-map", "0:0:1", "--", "true"])
        .env("PATH", PATH)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "{}", stderr_of(&o));
    let err = stderr_of(&o);
    assert!(err.contains("uid_map") && err.contains("EPERM"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// A detached sleeper in new namespaces; killed when dropped.
struct Detached(i32);

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
    }
}

fn detach(args: &[&str]) -> Detached {
    let mut all = vec!["-q", "--detach"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "{}", stderr_of(&o));
    Detached(stdout_of(&o).trim().parse().expect("--detach prints the PID"))
}

#[test]
fn detach_prints_the_pid_and_enter_joins_it() {
    if !require(Tier::Root) {
        return;
    }
    let d = detach(&["--pid", "--net", "--uts", "--hostname", "joined", "--", "sleep", "30"]);
    let pid = d.0.to_string();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    // All kinds that differ (like nsenter -a):
    let o = run(&["-q", "--enter", &pid, "--", "sh", "-c", "hostname; readlink /proc/self/ns/net"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = stdout_of(&o);
    assert!(out.starts_with("joined\n"), "{out}");
    assert!(out.contains(&ns_link(&pid, "net")), "{out}");
    // Only the UTS namespace: the network stays ours.
    let o = run(&["-q", "--enter", &pid, "--uts", "--", "readlink", "/proc/self/ns/net"]);
    assert_eq!(stdout_of(&o).trim(), ns_link("self", "net"));
    // show marks what differs from the reference.
    let o = run(&["-q", "show", "--json", &pid]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let differs: Vec<&str> = v[0]["differs"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    for k in ["net", "pid", "uts"] {
        assert!(differs.contains(&k), "{differs:?}");
    }
}

#[test]
fn enter_a_missing_process_fails() {
    if !require(Tier::Root) {
        return;
    }
    let o = run(&["-q", "--enter", "999999999", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr_of(&o).contains("process 999999999 does not exist"), "{}", stderr_of(&o));
}

fn zombies_under(pid: i32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let Some(rest) = stat.rsplit_once(") ").map(|x| x.1) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f[0] == "Z" && f[1] == pid.to_string() {
            n += 1;
        }
    }
    n
}

#[test]
fn init_reaps_orphans_a_plain_pid_1_does_not() {
    if !require(Tier::Root) {
        return;
    }
    // The orphan (sleep 0.1) is re-parented to PID 1, which then execs `sleep`:
    // a program that never waits. Only an init collects the orphan.
    let script = ["--", "sh", "-c", "(sleep 0.1 &); exec sleep 30"];
    let plain = detach(&[&["--pid"][..], &script[..]].concat());
    let init = detach(&[&["--pid", "--init"][..], &script[..]].concat());
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(zombies_under(plain.0), 1, "a PID 1 that does not wait leaves a zombie");
    assert_eq!(zombies_under(init.0), 0, "the tiny init reaps it");
}

#[test]
fn signals_are_forwarded_to_the_command() {
    if !require(Tier::Root) {
        return;
    }
    let mut child = Command::new(harness::bin_path("ns-exec"))
        .args(["-q", "--pid", "--", "sh", "-c", "trap 'exit 42' TERM; sleep 20 & wait"])
        .env("PATH", PATH)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42), "SIGTERM reached the command, whose trap ran");
}

#[test]
fn time_namespace_shifts_uptime() {
    if !require(Tier::Root) {
        return;
    }
    let o = run(&["-q", "--boottime", "86400", "--", "cat", "/proc/uptime"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let inside: f64 = stdout_of(&o).split_whitespace().next().unwrap().parse().unwrap();
    let outside: f64 =
        std::fs::read_to_string("/proc/uptime").unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!((inside - outside - 86400.0).abs() < 5.0, "inside {inside}, outside {outside}");
}

/// The same behaviours on the VM's kernel (Debian's 6.1).
mod guest {
    use super::*;

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_pid_uts_user_rootfs() {
        if !require(Tier::Guest) {
            return;
        }
        let o = run(&[
            "-q",
            "--pid",
            "--mount-proc",
            "--uts",
            "--hostname",
            "vm-box",
            "--",
            "sh",
            "-c",
            "echo $$; hostname",
        ]);
        assert_eq!(stdout_of(&o), "1\nvm-box\n", "{}", stderr_of(&o));
        let t = harness::tmp();
        harness::busybox_rootfs(t.path());
        let o = run(&[
            "-q",
            "--pid",
            "--mount-proc",
            "--rootfs",
            t.path().to_str().unwrap(),
            "--",
            "/bin/sh",
            "-c",
            "cat /proc/1/comm; ls /work 2>&1 | head -1",
        ]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        assert!(stdout_of(&o).starts_with("sh\n"), "{}", stdout_of(&o));
        let o = run(&["-q", "--map-root", "--", "cat", "/proc/self/uid_map"]);
        assert_eq!(stdout_of(&o).split_whitespace().collect::<Vec<_>>(), ["0", "0", "1"]);
    }

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn guest_every_kind_and_time_offsets() {
        if !require(Tier::Guest) {
            return;
        }
        let o = run(&["-q", "--all", "--", "sh", "-c", "readlink /proc/self/ns/user /proc/self/ns/time"]);
        assert!(o.status.success(), "{}", stderr_of(&o));
        let out = stdout_of(&o);
        assert!(!out.contains(&ns_link("self", "user")), "{out}");
        assert!(!out.contains(&ns_link("self", "time")), "{out}");
        let o = run(&["-q", "--boottime", "86400", "--", "cat", "/proc/uptime"]);
        let inside: f64 = stdout_of(&o).split_whitespace().next().unwrap().parse().unwrap();
        assert!(inside > 86400.0, "{inside}");
    }
}

/// CVE-2021-30465's lesson: a symlink in a mount destination (shipped in the image, or
/// swapped in by another process while the container is set up) must not lead the
/// mount out of the new root. Here `data -> /srv/elsewhere`, absolute: before
/// pivot_root the kernel would follow it on the host's tree (the bind would land on the
/// host's /srv/elsewhere/x, then vanish with the old root). ns-exec opens each
/// destination with openat2(RESOLVE_IN_ROOT) and mounts on that descriptor: the link
/// resolves inside the root, as it will for the container, and the bind is there.
#[test]
fn a_symlinked_mount_destination_resolves_inside_the_root() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    harness::busybox_rootfs(t.path());
    std::fs::create_dir_all(t.path().join("srv/elsewhere/x")).unwrap();
    std::os::unix::fs::symlink("/srv/elsewhere", t.path().join("data")).unwrap();
    let src = harness::tmp();
    std::fs::write(src.path().join("hello"), "bound inside\n").unwrap();
    let bind = format!("{}:/data/x", src.path().display());
    let o = ns()
        .args(["-q", "--pid", "--mount-proc", "--rootfs", t.path().to_str().unwrap(), "--bind", &bind])
        .args(["--", "/bin/sh", "-c", "cat /data/x/hello /srv/elsewhere/x/hello"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "bound inside\nbound inside\n");
    assert!(!Path::new("/srv/elsewhere").exists(), "nothing made on the host");
    assert_eq!(mounts_under(t.path()), Vec::<String>::new(), "nothing mounted on the host");
}

/// CVE-2025-31133: masked paths are hidden behind the container's /dev/null. A root
/// whose /dev/null is a link to a writable /proc file (here /proc/sys/kernel/
/// core_pattern, which the host runs as root when a process dumps core) would get that
/// file bound over /proc/kcore. ns-exec checks that /dev/null is the null device (1:3)
/// first and refuses; with the real node the mask holds.
#[test]
fn a_fake_dev_null_is_refused_for_masking() {
    if !require(Tier::Root) {
        return;
    }
    let t = harness::tmp();
    harness::busybox_rootfs(t.path());
    std::fs::create_dir_all(t.path().join("dev")).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", t.path().join("dev/null")).unwrap();
    let root = t.path().to_str().unwrap();
    let o = ns()
        .args(["-q", "--pid", "--mount-proc", "--rootfs", root, "--masked-path", "/proc/uptime"])
        .args(["--", "/bin/sh", "-c", "cat /proc/uptime"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125), "refused before the command: {}", stdout_of(&o));
    assert!(
        stderr_of(&o).contains("is not the null device (1:3): possible attack (CVE-2025-31133)"),
        "{}",
        stderr_of(&o)
    );
    // The real null device: the mask holds.
    std::fs::remove_file(t.path().join("dev/null")).unwrap();
    let o = ns()
        .args(["-q", "--pid", "--mount-proc", "--rootfs", root, "--dev", "--masked-path", "/proc/uptime"])
        .args(["--", "/bin/sh", "-c", "wc -c < /proc/uptime"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "0\n");
    assert_eq!(mounts_under(t.path()), Vec::<String>::new(), "nothing mounted on the host");
}
