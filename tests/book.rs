//! The book tier: every command the book shows runs here, and its output must be the
//! transcript the book includes. `CONTLAB_BLESS=1 cargo test book` rewrites them.
//!
//! A transcript is two files in book/transcripts/: `NAME.sh` (the command line, as the
//! reader types it) and `NAME.out` (what it prints, stdout and stderr interleaved as
//! on a terminal). Numbers that change from run to run become stable placeholders:
//! the first PID seen is 4242, the next 4243...; namespace inodes count up from
//! 4026532200; temp dirs are /tmp/lab; the mount table's size (`read("/proc/self/mountinfo",
//! ...) = N`) changes whenever anything mounts, so its length shows as `LEN`.
//!
//! Transcripts named `NAME.vm.sh` need the vm tier's kernel (device-mapper, pure
//! cgroup v2): `book::guest` runs them inside the VM, and when blessing, sends the new
//! outputs back to the host in its output (`vm::guest_suite` writes them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{require, Tier};

fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book")
}

/// Replace each distinct match of a number pattern by a counter, in order of appearance.
fn renumber(text: &str, re_start: &str, is_it: impl Fn(&str) -> bool, first: u64) -> String {
    let mut map: HashMap<String, u64> = HashMap::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(re_start) {
        let (head, tail) = rest.split_at(i + re_start.len());
        out.push_str(head);
        let n: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !n.is_empty() && is_it(&n) {
            let next = first + map.len() as u64;
            let v = *map.entry(n.clone()).or_insert(next);
            out.push_str(&v.to_string());
        } else {
            out.push_str(&n);
        }
        rest = &tail[n.len()..];
    }
    out.push_str(rest);
    out
}

/// A successful execve can only be reported by the parent once the exec is done, while
/// the new program already runs: its first output may come before that line. Put the
/// line where the exec happened (after the child's last line before it), which is one
/// of the real interleavings, so transcripts are stable.
fn exec_in_place(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let prefix = |l: &str| l.split_once("] ").map(|(p, _)| p.to_string());
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.contains("] execve(") && l.ends_with(") = 0") {
            let p = prefix(l);
            // Its --explain line (if any) moves with it.
            let n = if lines.get(i + 1).is_some_and(|l| l.trim_start().starts_with('↳')) { 2 } else { 1 };
            if let Some(j) = (0..i).rev().find(|&j| lines[j].starts_with('[') && prefix(lines[j]) == p) {
                let mut at = j + 1;
                while lines.get(at).is_some_and(|l| l.trim_start().starts_with('↳')) {
                    at += 1;
                }
                let moved: Vec<&str> = lines.drain(i..i + n).collect();
                for (k, l) in moved.into_iter().enumerate() {
                    lines.insert(at + k, l);
                }
            }
        }
        i += 1;
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Stable placeholders for what changes between runs.
pub fn normalise(raw: &str, tmp: &Path) -> String {
    let s = exec_in_place(&raw.replace(&tmp.display().to_string(), "/tmp/lab"));
    // PIDs: in trace prefixes, fork() results, JSON "pid" fields and lines that are a
    // lone number (what --detach prints); then wherever the same number stands where a
    // PID stands (`pid_context`), never elsewhere: a PID of 254 must not rewrite a
    // device major of 254.
    let mut pids: Vec<String> = Vec::new();
    let mut add = |n: String| {
        if !n.is_empty() && !pids.contains(&n) {
            pids.push(n);
        }
    };
    let digits = |t: &str| -> String { t.chars().take_while(|c| c.is_ascii_digit()).collect() };
    for line in s.lines() {
        if let Some((_, rest)) = line.strip_prefix('[').and_then(|r| r.split_once(' ')) {
            // `[mini ▸ ns-exec PID]`: the lab's name comes before the PID.
            let rest = rest.strip_prefix("\u{25b8} ").and_then(|r| r.split_once(' ')).map_or(rest, |(_, r)| r);
            add(digits(rest));
        }
        for part in line.split("fork() = ").skip(1) {
            add(digits(part));
        }
        for part in line.split("/proc/").skip(1) {
            add(digits(part));
        }
        // A group named after the shell's PID (`--name bomb-$$`), unique per run.
        for part in line.split("contlab/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_ascii_lowercase()).collect();
            if let Some(rest) = part[name.len()..].strip_prefix('-').filter(|_| !name.is_empty()) {
                add(digits(rest));
            }
        }
        for part in line.split("\"pid\":").skip(1) {
            add(digits(part));
        }
    }
    // A line that is a lone number (what `--detach` prints) is a PID only when the same
    // number also stands where a PID stands elsewhere (a `fork() = N`, a table's first
    // column): a lone `memory.max` value of 67108864 stays what it is, so a changed
    // limit shows in the diff.
    for line in s.lines() {
        if line.len() >= 3 && line.len() < 9 && line.chars().all(|c| c.is_ascii_digit()) && elsewhere_as_pid(&s, line) {
            add(line.to_string());
        }
    }
    let mut s = s;
    // Longest first, so 42 never replaces part of 4242; whole numbers only.
    let mut order: Vec<(usize, &String)> = pids.iter().enumerate().collect();
    order.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
    for (i, p) in order {
        s = replace_number(&s, p, &format!("§{i}§"));
    }
    for i in 0..pids.len() {
        s = s.replace(&format!("§{i}§"), &(4242 + i).to_string());
    }
    let s: String = s
        .lines()
        .map(|l| match (l.contains("read(\"/proc/self/mountinfo\""), l.rfind(") = ")) {
            (true, Some(i)) => format!("{}) = LEN\n", &l[..i]),
            _ => format!("{l}\n"),
        })
        .collect();
    let s = if raw.ends_with('\n') { s } else { s.trim_end_matches('\n').to_string() };
    renumber(&s, "4026", |n| n.len() == 6, 4026532200 - 4026000000)
}

/// Whether a number that follows `before` (and precedes `after`) stands where a PID
/// stands: a trace prefix `[tool N]`, `fork() = N`, `wait4(N`, `kill(N`, `/proc/N/`,
/// a transient group `run-N` or a group named `NAME-$$`, JSON `"pid":N`, wait4's
/// result `NULL) = N`, an image store's temp file `tmp/blob.N.`, or a table's first
/// column / a line of its own.
fn pid_context(before: &str, after: &str) -> bool {
    let line = before.rsplit('\n').next().unwrap_or("");
    let prefix = line.strip_prefix('[').is_some_and(|r| {
        r.ends_with(' ')
            && r.trim_end().chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ' || c == '\u{25b8}')
    });
    let leading = line.chars().all(|c| c == ' ') && (after.is_empty() || after.starts_with(['\n', ' ']));
    let group = line
        .rsplit_once("contlab/")
        .and_then(|(_, n)| n.strip_suffix('-'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_lowercase()));
    prefix
        || leading
        || group
        || ["fork() = ", "wait4(", "kill(", "/proc/", "run-", "\"pid\":", "NULL) = ", "tmp/blob."]
            .iter()
            .any(|p| line.ends_with(p))
}

/// Whether the whole number `num` appears in `s` in a PID context other than a line of
/// its own.
fn elsewhere_as_pid(s: &str, num: &str) -> bool {
    let b = s.as_bytes();
    s.match_indices(num).any(|(i, _)| {
        let whole = (i == 0 || !b[i - 1].is_ascii_digit()) && b.get(i + num.len()).is_none_or(|c| !c.is_ascii_digit());
        let line_start = s[..i].rfind('\n').map(|j| j + 1).unwrap_or(0);
        whole && i > line_start && pid_context(&s[..i], &s[i + num.len()..])
    })
}

fn replace_number(s: &str, num: &str, with: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(num) {
            let before = i == 0 || !b[i - 1].is_ascii_digit();
            let after = i + num.len() >= s.len() || !b[i + num.len()].is_ascii_digit();
            if before && after && pid_context(&out, &s[i + num.len()..]) {
                // Keep right-aligned table columns aligned: adjust the spaces before.
                // The placeholder becomes a 4-digit PID (4242...) in the end.
                let (old, new) = (num.len(), 4);
                // (only in columns: after two spaces or more, never after `= `).
                if out.ends_with("  ") {
                    if new < old {
                        out.push_str(&" ".repeat(old - new));
                    } else {
                        for _ in 0..(new - old) {
                            if out.ends_with("  ") {
                                out.pop();
                            }
                        }
                    }
                }
                out.push_str(with);
                i += num.len();
                continue;
            }
        }
        let c = s[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Run one transcript's command as the reader would, from a fresh temp dir (inside
/// the network namespace `netns` when given).
fn run(cmd: &str, netns: Option<&str>, mini: bool) -> String {
    let t = crate::harness::tmp();
    let bins = crate::harness::bin_path("ns-exec").parent().unwrap().to_path_buf();
    let path = format!("/usr/sbin:/usr/bin:/sbin:/bin:{}", bins.display());
    let mut sh = match netns {
        // mini's transcripts enter the network namespace only: `ip netns exec` mounts
        // a new /sys, which hides the cgroup hierarchies a container's group goes in.
        Some(ns) if mini => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("/bin/sh");
            c
        }
        Some(ns) => {
            let mut c = Command::new(registries::ip());
            c.args(["netns", "exec", ns, "/bin/sh"]);
            c
        }
        None => Command::new("/bin/sh"),
    };
    crate::harness::no_inherited_fds(&mut sh);
    let o = sh
        .arg("-c")
        // Everything the shell runs writes its stderr where stdout goes, in order.
        .arg(format!("exec 2>&1\n{cmd}"))
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/root")
        .env("LANG", "C")
        .current_dir(t.path())
        .output()
        .unwrap();
    let s = normalise(&String::from_utf8_lossy(&o.stdout), t.path());
    // mini's transcripts share one network namespace, so a link's index depends on the
    // transcripts that ran before: numbered in order of appearance from 10.
    if mini {
        renumber(&s, "{index: ", |_| true, 10)
    } else {
        s
    }
}

/// The transcripts run on the host (`vm == false`) or in the VM (`NAME.vm.sh`).
fn transcripts_for(vm: bool) -> Vec<(String, PathBuf)> {
    transcripts().into_iter().filter(|(n, _)| n.ends_with(".vm") == vm).collect()
}

fn transcripts() -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(book().join("transcripts"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sh"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    v
}

#[test]
fn transcripts_match_what_the_commands_print() {
    if !require(Tier::Root) {
        return;
    }
    let mut list = transcripts_for(false);
    // While writing a chapter: CONTLAB_BLESS=1 CONTLAB_ONLY=mini-a,mini-b blesses those
    // only (without CONTLAB_BLESS every transcript is compared).
    if let (Some(_), Ok(only)) = (std::env::var_os("CONTLAB_BLESS"), std::env::var("CONTLAB_ONLY")) {
        list.retain(|(n, _)| only.split(',').any(|o| o == n));
    }
    // img-pull's and mini's transcripts pull from the registries, in their namespace.
    let pulls = |name: &str| name.starts_with("img-") || name.starts_with("mini-");
    let regs = list.iter().any(|(n, _)| pulls(n)).then(registries::start);
    let netns = |name: &str| regs.as_ref().filter(|_| pulls(name)).map(|r| r.netns.clone());
    check(list, netns, |name, _, got| {
        std::fs::write(book().join("transcripts").join(format!("{name}.out")), got).unwrap();
    });
}

/// The registries the `img-*` transcripts talk to, in a network namespace of this run
/// (`contlab-book-PID`, where the `img-*` commands run too), so that the ports the book
/// shows are this run's own: Debian's docker-registry on
/// 127.0.0.1:5042 (open, like Docker Hub for pulls) and 127.0.0.1:5043 (htpasswd:
/// user `student`, password `s3cret`), filled with two reproducible images pushed by
/// img-pull itself: `lab/busybox:1.0` (one layer: /bin/busybox and links, /etc/os-release)
/// and `lab/hello:1.0` (that layer plus /srv/hello.txt). Layers are packed by
/// `layer-diff pack --clamp-mtime 0`, configs carry no dates: the digests depend only
/// on the bytes of /bin/busybox (Debian's busybox-static), so they are the same on every
/// run and every machine with that package.
mod registries {
    use super::*;
    use std::io::BufRead;
    use std::process::{Child, Stdio};

    pub struct Registries {
        children: Vec<Child>,
        _dir: tempfile::TempDir,
        /// The network namespace they listen in.
        pub netns: String,
    }

    impl Drop for Registries {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new(ip()).args(["netns", "del", &self.netns]).status();
        }
    }

    /// iproute2's `ip`.
    pub fn ip() -> PathBuf {
        ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("book tier: the img-* transcripts run in a network namespace: apt-get install -y iproute2")
    }

    const HTPASSWD: &str = "student:$2y$05$IsLKY2R2TeAWNU9YyDobH.YdCzKwWdmdoKC.OB2Nm5fnJm2mpu10u\n";

    fn ok(c: &mut Command) -> String {
        let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert!(
            o.status.success(),
            "book registries: {c:?} failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A layer packed from `dir`: its descriptor and diff_id.
    fn layer(dir: &Path, layout: &Path) -> (serde_json::Value, String) {
        let tgz = dir.with_extension("tar.gz");
        let out = ok(Command::new(crate::harness::bin_path("layer-diff"))
            .args(["-q", "pack", "--clamp-mtime", "0", "-o"])
            .arg(&tgz)
            .arg(dir));
        let field = |k: &str| {
            out.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_else(|| panic!("no {k} in {out}")).trim().to_string()
        };
        let digest = field("digest ");
        std::fs::rename(&tgz, layout.join("blobs/sha256").join(&digest[7..])).unwrap();
        let d = serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": field("size ").parse::<u64>().unwrap()});
        (d, field("diff_id "))
    }

    fn blob(layout: &Path, v: &serde_json::Value, media_type: &str) -> serde_json::Value {
        let b = serde_json::to_vec(v).unwrap();
        let d = contlab::image::registry::sha256_digest(&b);
        std::fs::write(layout.join("blobs/sha256").join(&d[7..]), &b).unwrap();
        serde_json::json!({"mediaType": media_type, "digest": d, "size": b.len()})
    }

    /// An image (layers + history of `(created_by, is_layer)` + Cmd), named `name` in the layout.
    fn image(
        layout: &Path,
        layers: &[(serde_json::Value, String)],
        history: &[(&str, bool)],
        cmd: &[&str],
        name: &str,
    ) -> serde_json::Value {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let hist: Vec<_> = history
            .iter()
            .map(|(by, layer)| {
                if *layer {
                    serde_json::json!({"created_by": by})
                } else {
                    serde_json::json!({"created_by": by, "empty_layer": true})
                }
            })
            .collect();
        let config = serde_json::json!({"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.1).collect::<Vec<_>>()}, "history": hist});
        let c = blob(layout, &config, "application/vnd.oci.image.config.v1+json");
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": c,
            "layers": layers.iter().map(|l| &l.0).collect::<Vec<_>>()});
        let mut d = blob(layout, &m, "application/vnd.oci.image.manifest.v1+json");
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        d
    }

    pub fn start() -> Registries {
        // The ports are fixed, but in a network namespace of this run: nothing else
        // listens there, and two runs never meet.
        let netns = format!("contlab-book-{}", std::process::id());
        ok(Command::new(ip()).args(["netns", "add", &netns]));
        ok(Command::new(ip()).args(["-n", &netns, "link", "set", "lo", "up"]));
        let bin =
            ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"].into_iter().map(Path::new).find(|p| p.is_file());
        let bin =
            bin.expect("book tier: the img-* transcripts need docker-registry: apt-get install -y docker-registry");
        let dir = crate::harness::tmp();
        let mut regs = Registries { children: vec![], _dir: dir, netns: netns.clone() };
        for (port, auth) in [(5042, false), (5043, true)] {
            let dir = &regs._dir;
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}/data{port}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().display()
            );
            if auth {
                std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
                cfg +=
                    &format!("auth:\n  htpasswd:\n    realm: contlab\n    path: {}/htpasswd\n", dir.path().display());
            }
            let yml = dir.path().join(format!("config{port}.yml"));
            std::fs::write(&yml, cfg).unwrap();
            let mut child = Command::new(ip())
                .args(["netns", "exec", &netns])
                .arg(bin)
                .arg("serve")
                .arg(&yml)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start docker-registry");
            // It says when it listens; the rest of its log is drained, unread.
            let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
            regs.children.push(child);
            let mut seen = String::new();
            loop {
                let mut line = String::new();
                let n = log.read_line(&mut line).unwrap_or(0);
                assert!(n > 0, "book tier: docker-registry on 127.0.0.1:{port} ended before listening:\n{seen}");
                if line.contains(&format!("listening on 127.0.0.1:{port}")) {
                    break;
                }
                seen.push_str(&line);
            }
            std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        }
        // The images, in an OCI layout.
        let d = regs._dir.path();
        let layout = d.join("layout");
        std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
        let (base, app) = (d.join("base"), d.join("app"));
        for sub in ["bin", "etc"] {
            std::fs::create_dir_all(base.join(sub)).unwrap();
        }
        std::fs::create_dir_all(app.join("srv")).unwrap();
        std::fs::copy("/bin/busybox", base.join("bin/busybox"))
            .expect("book tier: /bin/busybox is missing: apt-get install -y busybox-static");
        for a in ["sh", "ls", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", base.join("bin").join(a)).unwrap();
        }
        std::fs::write(base.join("etc/os-release"), "NAME=\"contlab busybox\"\nVERSION_ID=1.0\n").unwrap();
        std::fs::write(app.join("srv/hello.txt"), "Hello from a layer!\n").unwrap();
        ok(Command::new("chmod").args(["-R", "u=rwX,go=rX"]).arg(&base).arg(&app));
        ok(Command::new("chmod").arg("755").arg(base.join("bin/busybox")));
        let (l1, l2) = (layer(&base, &layout), layer(&app, &layout));
        let busybox = image(
            &layout,
            std::slice::from_ref(&l1),
            &[("ADD busybox.tar / # buildkit", true), ("CMD [\"sh\"]", false)],
            &["sh"],
            "busybox",
        );
        let hello = image(
            &layout,
            &[l1, l2],
            &[
                ("ADD busybox.tar / # buildkit", true),
                ("CMD [\"sh\"]", false),
                ("COPY hello.txt /srv/ # buildkit", true),
                ("CMD [\"cat\" \"/srv/hello.txt\"]", false),
            ],
            &["cat", "/srv/hello.txt"],
            "hello",
        );
        std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(
            layout.join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [busybox, hello]})).unwrap(),
        )
        .unwrap();
        let img = || {
            let mut c = Command::new(ip());
            c.args(["netns", "exec", &netns]).arg(crate::harness::bin_path("img-pull"));
            c.arg("-q").arg("--root").arg(d.join("store")).env("DOCKER_CONFIG", d.join("docker"));
            c
        };
        for n in ["busybox", "hello"] {
            let r = format!("127.0.0.1:5042/lab/{n}:1.0");
            ok(img().arg("import").arg(format!("{}:{n}", layout.display())).args(["--tag", &r]));
            ok(img().args(["push", &r]));
        }
        regs
    }
}

/// Run each transcript (in the network namespace `netns` gives it, if any) and compare;
/// with CONTLAB_BLESS set, hand each new output to `bless` instead.
fn check(list: Vec<(String, PathBuf)>, netns: impl Fn(&str) -> Option<String>, bless: impl Fn(&str, &Path, &str)) {
    let blessing = std::env::var_os("CONTLAB_BLESS").is_some();
    let mut wrong = Vec::new();
    for (name, sh) in list {
        let cmd = std::fs::read_to_string(&sh).unwrap().trim_end().to_string();
        let got = run(&cmd, netns(&name).as_deref(), name.starts_with("mini-"));
        if blessing {
            bless(&name, &sh, &got);
            continue;
        }
        let want = std::fs::read_to_string(book().join("transcripts").join(format!("{name}.out"))).unwrap_or_default();
        if want != got {
            wrong.push(format!("--- {name}: the book shows\n{want}\n--- but the command prints\n{got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "transcripts out of date (CONTLAB_BLESS=1 cargo test book regenerates):\n{}",
        wrong.join("\n")
    );
}

/// The marker a guest prints before a blessed transcript: `@@transcript NAME LEN`.
pub const BLESS_MARK: &str = "@@transcript ";

/// Transcripts that need the VM's kernel.
mod guest {
    use super::*;
    use std::io::Write;

    #[test]
    #[ignore = "vm tier: runs inside the VM (vm::guest_suite)"]
    fn vm_transcripts_match() {
        if !require(Tier::Guest) {
            return;
        }
        check(
            transcripts_for(true),
            |_| None,
            |name, _, got| {
                // The guest's filesystem is thrown away at power-off: send the output to
                // the host through stdout (not captured by the test harness).
                let msg = format!("{BLESS_MARK}{name} {}\n{got}\n", got.len());
                let _ = std::io::stdout().write_all(msg.as_bytes());
            },
        );
    }
}

#[test]
fn every_include_exists_and_every_transcript_is_shown() {
    let src = book().join("src");
    let mut shown = std::collections::HashSet::new();
    for e in std::fs::read_dir(&src).unwrap().flatten().filter(|e| e.path().extension().is_some_and(|x| x == "md")) {
        let text = std::fs::read_to_string(e.path()).unwrap();
        for part in text.split("{{#include ").skip(1) {
            let target = part.split("}}").next().unwrap().trim();
            let file = target.split(':').next().unwrap();
            let p = src.join(file);
            assert!(p.exists(), "{} includes a missing file {}", e.path().display(), p.display());
            if let Some(stem) = p.file_stem() {
                shown.insert(stem.to_string_lossy().into_owned());
            }
        }
    }
    // A picture's transcript is shown as its drawing (the pictures test checks that).
    for (name, _) in transcripts().into_iter().filter(|(n, _)| picture_of(n).is_none()) {
        assert!(shown.contains(&name), "transcript {name} is not shown in any chapter");
        assert!(book().join("transcripts").join(format!("{name}.out")).exists(), "{name}.out missing");
    }
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    for link in summary.split("](").skip(1) {
        let f = link.split(')').next().unwrap();
        assert!(src.join(f).exists(), "SUMMARY.md links a missing chapter {f}");
    }
}

/// The anchor mdBook gives a heading: lowercase, only letters, digits, spaces, `-` and
/// `_` kept, spaces made `-`.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The course map (book/src/course-map.md, in the introduction) has one row per row of
/// the course's inventory, in its order, and each row links sections that exist or
/// says why it is not shown. The ids are kept in tests/data/course-ids.txt; where the
/// course's own inventory is beside the repository (`../shared/course/inventory.md`),
/// they must be its ids.
#[test]
fn the_course_map_has_every_row_and_every_section_it_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ids: Vec<String> =
        std::fs::read_to_string(root.join("tests/data/course-ids.txt")).unwrap().lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 216, "the inventory has 216 rows");
    let inventory = root.join("../shared/course/inventory.md");
    if let Ok(text) = std::fs::read_to_string(&inventory) {
        let theirs: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .filter_map(|l| l.split(" |").next())
            .filter(|id| id.starts_with(|c: char| c.is_ascii_uppercase()) && id.contains('-'))
            .map(str::to_string)
            .collect();
        assert_eq!(theirs, ids, "tests/data/course-ids.txt is not the inventory's list of ids");
    }
    let src = book().join("src");
    let intro = std::fs::read_to_string(src.join("intro.md")).unwrap();
    assert!(intro.contains("{{#include course-map.md}}"), "the introduction holds the course map");
    let map = std::fs::read_to_string(src.join("course-map.md")).unwrap();
    let rows: Vec<Vec<String>> = map
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| row ") && !l.starts_with("|---"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let got: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>(), "one row per inventory row, in its order");
    let mut anchors: HashMap<String, Vec<String>> = HashMap::new();
    for r in &rows {
        assert_eq!(r.len(), 3, "{}: a row is id | what | where", r[0]);
        let where_ = &r[2];
        if let Some(why) = where_.strip_prefix("not shown: ") {
            assert!(!why.trim().is_empty(), "{}: say why it is not shown", r[0]);
            continue;
        }
        let links: Vec<&str> = where_.split("](").skip(1).map(|l| l.split(')').next().unwrap()).collect();
        assert!(!links.is_empty(), "{}: a link to a section, or `not shown: why`", r[0]);
        for link in links {
            let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
            let path = src.join(file);
            assert!(path.exists(), "{}: {file} is not a chapter", r[0]);
            if anchor.is_empty() {
                continue;
            }
            let known = anchors.entry(file.to_string()).or_insert_with(|| {
                std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with("##"))
                    .map(|l| anchor_of(l.trim_start_matches('#')))
                    .collect()
            });
            assert!(known.iter().any(|a| a == anchor), "{}: {file} has no section #{anchor}", r[0]);
        }
    }
}

#[test]
fn the_readme_demo_is_a_transcript() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let dir = book().join("transcripts");
    let cmd = std::fs::read_to_string(dir.join("readme-demo.sh")).unwrap();
    let out = std::fs::read_to_string(dir.join("readme-demo.out")).unwrap();
    let block = format!("```console\n$ {}\n{}```", cmd.trim_end(), out);
    assert!(readme.contains(&block), "README's demo must be book/transcripts/readme-demo.{{sh,out}}:\n{block}");
}

#[test]
fn exec_line_goes_where_the_exec_happened() {
    let raw = "[t 5] access(\"/bin/sh\", X_OK) = 0\nhello\n[t 5] execve(\"/bin/sh\", [\"sh\"], /* 4 vars */) = 0\n[t 4] wait4(5) = 5\n";
    assert_eq!(
        exec_in_place(raw),
        "[t 5] access(\"/bin/sh\", X_OK) = 0\n[t 5] execve(\"/bin/sh\", [\"sh\"], /* 4 vars */) = 0\nhello\n[t 4] wait4(5) = 5\n"
    );
}

#[test]
fn pids_are_replaced_only_where_pids_stand() {
    let t = Path::new("/tmp/x");
    let raw = "[lvm-snap 254] fork() = 255\n[lvm-snap 255] ioctl(DM_TABLE_LOAD, {table: \"0 8 linear 254:0 0\"}) = 0\n";
    assert_eq!(
        normalise(raw, t),
        "[lvm-snap 4242] fork() = 4243\n[lvm-snap 4243] ioctl(DM_TABLE_LOAD, {table: \"0 8 linear 254:0 0\"}) = 0\n"
    );
    let raw = "[mini \u{25b8} ns-exec 14529] mount(\"tmpfs\", \"run\", \"tmpfs\", MS_NOSUID, \"size=14529\") = 0\n";
    assert_eq!(
        normalise(raw, t),
        "[mini \u{25b8} ns-exec 4242] mount(\"tmpfs\", \"run\", \"tmpfs\", MS_NOSUID, \"size=14529\") = 0\n"
    );
}

#[test]
fn normalise_is_stable() {
    let t = Path::new("/tmp/contlab-test-x");
    let raw = "[ns-exec 917] fork() = 918\n[ns-exec 918] x\nnet:[4026532555] net:[4026532555] user:[4026531837]\n/tmp/contlab-test-x/a\n";
    assert_eq!(
        normalise(raw, t),
        "[ns-exec 4242] fork() = 4243\n[ns-exec 4243] x\nnet:[4026532200] net:[4026532200] user:[4026532201]\n/tmp/lab/a\n"
    );
}

/// `mdbook build` (the version .ci/run installs) makes the book without an error or a
/// warning, and every link between its pages leads to a page that exists and, with a
/// `#fragment`, to an element of that page with that id.
#[test]
fn mdbook_builds_the_book_and_every_internal_link_resolves() {
    let t = crate::harness::tmp();
    let out = t.path().join("html");
    let o = Command::new("mdbook")
        .arg("build")
        .arg(book())
        .arg("--dest-dir")
        .arg(&out)
        .output()
        .expect("mdbook is missing: cargo install mdbook --version 0.5.4 --locked (.ci/run does)");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "mdbook build failed:\n{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "mdbook build warned:\n{log}");
    let pages: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    assert!(pages.len() > 10, "the book has its chapters: {pages:?}");
    let ids = |html: &str| -> Vec<String> {
        html.split(" id=\"").skip(1).filter_map(|r| r.split('"').next()).map(str::to_string).collect()
    };
    let mut broken = vec![];
    let mut checked = 0;
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        let name = page.file_name().unwrap().to_string_lossy().into_owned();
        for href in html.split("href=\"").skip(1).filter_map(|r| r.split('"').next()) {
            if href.contains("://") || href.starts_with("mailto:") || href.ends_with(".css") || href.ends_with(".js") {
                continue;
            }
            let (file, frag) = href.split_once('#').unwrap_or((href, ""));
            let target = if file.is_empty() { page.clone() } else { out.join(file) };
            if file.is_empty() && frag.is_empty() || !file.is_empty() && !file.ends_with(".html") {
                continue;
            }
            checked += 1;
            match std::fs::read_to_string(&target) {
                Err(_) => broken.push(format!("{name}: {href} (no page {file})")),
                Ok(t) if !frag.is_empty() && !ids(&t).iter().any(|i| i == frag) => {
                    broken.push(format!("{name}: {href} (no #{frag} there)"))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(checked > 100, "only {checked} links checked");
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
}

/// The book's pictures: each `NAME.dot` transcript prints a Graphviz graph that its
/// command made from what the kernel reports (namespaces, layers, links, dm tables),
/// and dot(1) draws it as `book/src/pictures/NAME.svg`, which a chapter shows. The
/// drawings are compared as the transcripts are (CONTLAB_BLESS draws them again), without
/// the line naming graphviz's version.
#[test]
fn pictures_are_drawn_from_their_transcripts_and_shown() {
    let dir = book().join("transcripts");
    let pictures = book().join("src/pictures");
    let blessing = std::env::var_os("CONTLAB_BLESS").is_some();
    let chapters: String = std::fs::read_dir(book().join("src"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".sh")).map(str::to_string))
        .filter(|n| picture_of(n).is_some())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "the namespaces, layers, network and dm pictures: {names:?}");
    let mut wrong = Vec::new();
    for name in names {
        let graph = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap_or_default();
        let mut dot = Command::new("dot")
            .arg("-Tsvg")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dot ({e}): install graphviz (apt-get install graphviz)"));
        std::io::Write::write_all(&mut dot.stdin.take().unwrap(), graph.as_bytes()).unwrap();
        let o = dot.wait_with_output().unwrap();
        assert!(o.status.success(), "{name}: dot refused the graph: {}\n{graph}", String::from_utf8_lossy(&o.stderr));
        let svg: String = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("<!-- Generated by graphviz"))
            .map(|l| format!("{l}\n"))
            .collect();
        let file = picture_of(&name).unwrap();
        assert!(chapters.contains(&format!("pictures/{file}")), "no chapter shows pictures/{file}");
        if blessing {
            std::fs::create_dir_all(&pictures).unwrap();
            std::fs::write(pictures.join(&file), &svg).unwrap();
        } else if std::fs::read_to_string(pictures.join(&file)).unwrap_or_default() != svg {
            wrong.push(file);
        }
    }
    assert!(wrong.is_empty(), "pictures out of date (CONTLAB_BLESS=1 cargo test book redraws them): {wrong:?}");
}

/// The picture a transcript draws: `NAME.svg` for `NAME.dot` (`NAME.dot.vm` in the VM).
fn picture_of(transcript: &str) -> Option<String> {
    let stem = transcript.strip_suffix(".vm").unwrap_or(transcript);
    stem.strip_suffix(".dot").map(|n| format!("{n}.svg"))
}
