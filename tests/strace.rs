//! The trace tells the whole truth: each tool's main operations run under `strace -f`,
//! and every system call strace sees change the system (mkdir, rename, unlink, rmdir,
//! symlink, link, chown, chmod, mknod, an open that creates, setxattr, mount, umount,
//! pivot_root...) must have its event in the tool's JSON trace. A change made beside
//! the kernel layer (a `std::fs::remove_file` in a lab) fails this test.
//!
//! What the command a tool runs does (`ns-exec -- touch x`) is not the tool's: strace
//! follows children, so a process is dropped from the comparison once it has exec'd a
//! program that is not a contlab binary, and so are the processes it forks.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use crate::harness::{bin_path, no_inherited_fds, require, tmp, Tier};

/// A system call that changes the system, as strace printed it.
#[derive(Debug, Clone)]
struct Change {
    pid: u32,
    syscall: String,
    /// The path it changed (the last one of the call, for rename/link).
    path: String,
    line: String,
}

/// The names our JSON trace may give a syscall strace reports.
fn families(syscall: &str) -> &'static [&'static str] {
    match syscall {
        "mkdir" | "mkdirat" => &["mkdir", "mkdirat"],
        "rename" | "renameat" | "renameat2" => &["rename", "renameat", "renameat2"],
        "unlink" | "unlinkat" | "rmdir" => &["unlink", "unlinkat", "rmdir"],
        "symlink" | "symlinkat" => &["symlink", "symlinkat"],
        "link" | "linkat" => &["link", "linkat"],
        "chown" | "fchown" | "lchown" | "fchownat" => &["chown", "fchown", "lchown", "fchownat"],
        "chmod" | "fchmod" | "fchmodat" => &["chmod", "fchmod", "fchmodat"],
        "mknod" | "mknodat" => &["mknod", "mknodat"],
        // A kernel request that creates a file may be one event for several syscalls
        // (a state file rewritten in place: open + write; a sparse file: open + ftruncate).
        "open" | "openat" | "openat2" | "creat" => &["open", "openat", "openat2", "creat", "write", "ftruncate"],
        "setxattr" | "lsetxattr" | "fsetxattr" => &["setxattr", "lsetxattr", "fsetxattr"],
        "mount" => &["mount"],
        "umount2" => &["umount2"],
        "move_mount" => &["move_mount"],
        "pivot_root" => &["pivot_root"],
        _ => &[],
    }
}

const WATCHED: &str = "mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,symlink,symlinkat,link,linkat,\
chown,fchown,lchown,fchownat,chmod,fchmod,fchmodat,mknod,mknodat,open,openat,openat2,creat,setxattr,lsetxattr,\
fsetxattr,mount,umount2,move_mount,pivot_root,execve,clone,clone3,fork,vfork";

/// The quoted strings of a strace argument list, in order, with `N</path>` fd
/// decorations (strace -y) kept as paths.
fn strings(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b: Vec<char> = args.chars().collect();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' && i + 1 < b.len() {
                        i += 1;
                    }
                    s.push(b[i]);
                    i += 1;
                }
                out.push(s);
            }
            '<' => {
                let mut s = String::new();
                i += 1;
                while i < b.len() && b[i] != '>' {
                    s.push(b[i]);
                    i += 1;
                }
                out.push(format!("<{s}>"));
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parse strace's output (`-f -y -qq -o FILE`), keeping the successful changes made by
/// contlab's own processes.
fn changes(text: &str) -> Vec<Change> {
    let mut foreign: HashSet<u32> = HashSet::new();
    let mut pending: HashMap<u32, String> = HashMap::new();
    let mut out = Vec::new();
    for raw in text.lines() {
        let Some((pid, rest)) = raw.split_once(' ') else { continue };
        let Ok(pid) = pid.trim().parse::<u32>() else { continue };
        let rest = rest.trim_start();
        // Join "<unfinished ...>" with its "<... NAME resumed>".
        let line = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(r) = rest.strip_prefix("<... ") {
            let tail = r.split_once("resumed>").map(|(_, t)| t).unwrap_or("");
            format!("{}{}", pending.remove(&pid).unwrap_or_default(), tail)
        } else {
            rest.to_string()
        };
        let Some((name, args)) = line.split_once('(') else { continue };
        // `args) = RET`, with padding before `=` on resumed lines.
        let Some((args, ret)) = args.rsplit_once(" = ") else { continue };
        let args = args.trim_end().strip_suffix(')').unwrap_or(args);
        let ok = !ret.trim_start().starts_with('-') && !ret.trim_start().starts_with('?');
        if ["clone", "clone3", "fork", "vfork"].contains(&name) {
            if foreign.contains(&pid) {
                if let Ok(child) = ret.split_whitespace().next().unwrap_or("").parse::<u32>() {
                    foreign.insert(child);
                }
            }
            continue;
        }
        // A process is ours from its exec of a contlab binary, foreign from its exec of
        // anything else; a forked child is what its parent was, until it execs.
        if name == "execve" {
            if ok {
                let prog = strings(args).into_iter().next().unwrap_or_default();
                let ours =
                    ["ns-exec", "cg-limit", "ovl-mount", "layer-diff", "img-pull", "netns-bridge", "lvm-snap", "mini"]
                        .iter()
                        .any(|b| prog.ends_with(&format!("/{b}")));
                if ours {
                    foreign.remove(&pid);
                } else {
                    foreign.insert(pid);
                }
            }
            continue;
        }
        if foreign.contains(&pid) {
            continue;
        }
        if !ok || families(name).is_empty() {
            continue;
        }
        if name.starts_with("open") && !args.contains("O_CREAT") {
            continue;
        }
        let s = strings(args);
        // The path a call changes: its last string (rename's and link's new name),
        // joined to the directory descriptor before it for *at calls.
        let Some(last) = s.iter().rev().find(|x| !x.starts_with('<')).cloned().or_else(|| s.last().cloned()) else {
            continue;
        };
        let path = last.trim_start_matches('<').trim_end_matches('>').to_string();
        out.push(Change { pid, syscall: name.to_string(), path, line: raw.to_string() });
    }
    out
}

/// Every change strace saw must have a JSON event of its family naming the same file
/// (its last path component), made by a process of the same tool. Returns the ones
/// that have none.
fn untraced(changes: &[Change], events: &[serde_json::Value], ignore: &[&Path]) -> Vec<String> {
    let mut missing = Vec::new();
    for c in changes {
        if ignore.iter().any(|p| c.path == p.to_string_lossy()) {
            continue;
        }
        let base = Path::new(&c.path).file_name().map(|b| b.to_string_lossy().into_owned()).unwrap_or(c.path.clone());
        let fam = families(&c.syscall);
        let found = events.iter().any(|e| {
            let call = e["call"].as_str().unwrap_or("");
            let args = e["args"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>())
                .unwrap_or_default();
            fam.contains(&call) && e["errno"].is_null() && args.iter().any(|a| a.contains(base.as_str()))
        });
        if !found {
            missing.push(format!("pid {}: {}", c.pid, c.line));
        }
    }
    missing
}

/// Run `script` (sh) with the contlab binaries first in PATH, under `strace -f`, with
/// every contlab tool writing JSON Lines to one trace file; return what was missing.
fn check(script: &str, setup: impl FnOnce(&Path)) -> Vec<String> {
    let t = tmp();
    let dir = t.path();
    setup(dir);
    let out = dir.join("strace.txt");
    let trace = dir.join("trace.jsonl");
    let bins = bin_path("ns-exec").parent().unwrap().to_path_buf();
    let mut c = Command::new("strace");
    no_inherited_fds(&mut c);
    c.args(["-f", "-y", "-qq", "-s", "256", "-e"])
        .arg(format!("trace={WATCHED}"))
        .arg("-o")
        .arg(&out)
        .args(["sh", "-euc", script])
        .current_dir(dir)
        .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bins.display()))
        .env("NO_COLOR", "1")
        .env("T", &trace);
    let o = c.output().expect("strace is missing: apt-get install -y strace");
    assert!(
        o.status.success(),
        "the script failed under strace ({:?}):\n{script}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a JSON trace line does not parse ({e}): {l}")))
        .collect();
    assert!(!events.is_empty(), "the tools wrote no JSON trace to {}", trace.display());
    untraced(&changes(&text), &events, &[&trace])
}

fn assert_all_traced(tool: &str, missing: Vec<String>) {
    assert!(
        missing.is_empty(),
        "{tool} changed the system without a trace event ({} calls):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// The flags every tool gets: JSON Lines into the shared trace file.
const J: &str = "-q --trace=json --trace-file \"$T\"";

#[test]
fn parser_follows_only_our_processes() {
    let s = "\
100 mkdir(\"/x/a\", 0755) = 0
100 clone(child_stack=NULL, flags=SIGCHLD) = 101
101 execve(\"/usr/bin/touch\", [\"touch\", \"f\"], 0x0 /* 3 vars */) = 0
101 openat(AT_FDCWD, \"f\", O_WRONLY|O_CREAT|O_NOCTTY|O_NONBLOCK, 0666) = 3</tmp/f>
100 openat(AT_FDCWD</tmp>, \"state.json\", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 4</tmp/state.json>
100 unlinkat(5</tmp/root/etc>, \"motd\", 0 <unfinished ...>
100 <... unlinkat resumed>)             = 0
100 openat(AT_FDCWD, \"/etc/passwd\", O_RDONLY|O_CLOEXEC) = 3</etc/passwd>
100 rmdir(\"/gone\") = -1 ENOENT (No such file or directory)
";
    let c = changes(s);
    let paths: Vec<&str> = c.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/x/a", "state.json", "motd"], "{c:?}");
    let ev = |call: &str, arg: &str| serde_json::json!({"call": call, "args": [arg], "errno": null});
    let events = vec![ev("mkdir", "\"/x/a\""), ev("write", "\"/tmp/state.json\""), ev("unlinkat", "\"motd\"")];
    assert!(untraced(&c, &events, &[]).is_empty());
    assert_eq!(untraced(&c, &events[..2], &[]).len(), 1, "a missing unlinkat event is found");
}

#[test]
fn ns_exec_traces_every_change() {
    if !require(Tier::Root) {
        return;
    }
    let script = format!(
        "ns-exec {J} --pid --mount-proc --uts --hostname box -- true
ns-exec {J} --pid --mount-proc --rootfs rootfs -- true
ns-exec {J} --user --map-root -- true"
    );
    assert_all_traced("ns-exec", check(&script, |d| crate::harness::busybox_rootfs(&d.join("rootfs"))));
}

#[test]
fn cg_limit_traces_every_change() {
    if !require(Tier::Root) {
        return;
    }
    let name = format!("strace-{}", std::process::id());
    let script = format!(
        "cg-limit {J} create {name} --memory 64M --pids 20 >/dev/null
cg-limit {J} set {name} --memory 32M
sleep 30 & p=$!
cg-limit {J} add {name} $p
cg-limit {J} rm {name} --kill
cg-limit {J} run --memory 64M -- true"
    );
    assert_all_traced("cg-limit", check(&script, |_| {}));
}

#[test]
fn ovl_mount_and_layer_diff_trace_every_change() {
    if !require(Tier::Root) {
        return;
    }
    let script = format!(
        "mkdir -p lower/etc lower/usr/bin upper work merged
echo hi > lower/etc/motd; echo x > lower/usr/bin/tool
ovl-mount {J} mount --lower lower --upper upper --work work merged
rm merged/usr/bin/tool; echo new > merged/etc/new; mkdir merged/opt
layer-diff {J} diff upper >/dev/null
layer-diff {J} pack upper -o layer.tar >/dev/null
ovl-mount {J} umount merged
mkdir rootfs && cp -a lower/. rootfs/
layer-diff {J} apply layer.tar rootfs >/dev/null
mkdir flat && layer-diff {J} apply --overlay layer.tar flat >/dev/null"
    );
    assert_all_traced("ovl-mount/layer-diff", check(&script, |_| {}));
}

#[test]
fn netns_bridge_traces_every_change() {
    if !require(Tier::Root) {
        return;
    }
    // In a throwaway network and mount namespace, with its own /run/netns and state dir.
    let script = format!(
        "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
export CONTLAB_RUN_DIR=$PWD/run
netns-bridge {J} netns add c1 >/dev/null
netns-bridge {J} bridge create br0 --subnet 10.231.0.1/24 >/dev/null
ip=$(netns-bridge {J} attach --netns c1 --bridge br0); ip=${{ip%/*}}
netns-bridge {J} nat br0 >/dev/null
netns-bridge {J} publish 8080:80 --to $ip >/dev/null
netns-bridge {J} unpublish 8080 >/dev/null
netns-bridge {J} detach --netns c1 --bridge br0 >/dev/null
netns-bridge {J} bridge rm br0 >/dev/null
netns-bridge {J} netns rm c1 >/dev/null"
    );
    let wrapped =
        format!("exec unshare --net --mount --propagation private sh -euc '{}'", script.replace('\'', "'\\''"));
    assert_all_traced("netns-bridge", check(&wrapped, |_| {}));
}

#[test]
fn img_pull_traces_every_change() {
    if !require(Tier::Root) {
        return;
    }
    let script = format!(
        "skopeo copy -q oci:layout:multi docker-archive:in.tar:test/one:1
img-pull {J} --root store load -i in.tar >/dev/null
img-pull {J} --root store tag test/one:1 test/one:2 >/dev/null
img-pull {J} --root store unpack test/one:1 rootfs >/dev/null
img-pull {J} --root store unpack --layers test/one:1 layers >/dev/null
img-pull {J} --root store save -o out.tar test/one:1 >/dev/null
img-pull {J} --root store2 load -i out.tar >/dev/null
img-pull {J} --root store rm test/one:2 >/dev/null
img-pull {J} --root store rm test/one:1 >/dev/null"
    );
    assert_all_traced(
        "img-pull",
        check(&script, |d| {
            crate::img_pull::test_layout(d);
        }),
    );
}

#[test]
fn mini_traces_every_change() {
    if !require(Tier::Root) {
        return;
    }
    // In a throwaway network and mount namespace: the default bridge, the containers'
    // network namespaces and its /run/netns are the test's own.
    let script = format!(
        "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
export CONTLAB_RUN_DIR=$PWD/run CONTLAB_ROOT=$PWD/store
mini {J} run --rm test/alpine true
id=$(mini {J} run -d --name strace test/alpine sleep 60)
mini {J} exec strace true
mini {J} stop -t 1 strace >/dev/null
mini {J} start strace >/dev/null
mini {J} rm -f strace >/dev/null
mini {J} run --rm --network none test/alpine true
mini {J} run hello-world >/dev/null"
    );
    let wrapped =
        format!("exec unshare --net --mount --propagation private sh -euc '{}'", script.replace('\'', "'\\''"));
    assert_all_traced("mini", check(&wrapped, |d| crate::mini::import_images(&d.join("store"))));
}

#[test]
fn mini_diff_commit_export_import_cp_trace_every_change() {
    if !require(Tier::Root) {
        return;
    }
    let script = format!(
        "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns
export CONTLAB_RUN_DIR=$PWD/run CONTLAB_ROOT=$PWD/store
mkdir -p src/d && echo x > src/d/f && ln -s f src/d/l
mini {J} run --name ch --network none test/alpine sh -c 'echo y > /etc/motd; rm /bin/ls'
mini {J} diff ch >/dev/null
mini {J} commit ch test/committed >/dev/null
mini {J} export -o fs.tar ch
mini {J} import fs.tar test/imported >/dev/null
mini {J} cp src ch:/tmp
mini {J} cp ch:/tmp/src back
mini {J} cp ch:/etc - >/dev/null
mini {J} run -d --name live --network none test/alpine sleep 60 >/dev/null
mini {J} cp src live:/tmp
mini {J} cp live:/tmp/src back2
mini {J} commit live test/live >/dev/null
mini {J} rm -f live ch >/dev/null"
    );
    let wrapped =
        format!("exec unshare --net --mount --propagation private sh -euc '{}'", script.replace('\'', "'\\''"));
    assert_all_traced("mini", check(&wrapped, |d| crate::mini::import_images(&d.join("store"))));
}
