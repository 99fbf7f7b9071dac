//! mini, the runtime: the course's basics exercises (BASICS-EX1..3, RUN-*) as tests,
//! its lifecycle commands against docker's strings and exit codes, and its faults.
//!
//! Every test runs its script as PID 1 of fresh network, mount and PID namespaces
//! (so the default bridge, its veths and the containers' network namespaces are the
//! test's own, and nothing outlives it), with a store of its own holding the course's
//! images, built here from Debian's static busybox: `test/alpine` (an Alpine-like
//! root with /etc/os-release and users), `test/ex01` (with /flag and /.dockerenv),
//! `test/ex03` (with /ex03), `test/web` (an nginx-like page at /usr/share/nginx/html
//! and a VOLUME /var/cache/web).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::{bin_path, busybox_rootfs, no_inherited_fds, require, tmp, Tier};

/// The OCI layout holding the test images, built once per test binary.
pub(crate) fn layout() -> &'static Path {
    static L: OnceLock<PathBuf> = OnceLock::new();
    L.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("contlab-mini-images-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("base");
        busybox_rootfs(&base);
        std::fs::write(base.join("etc/os-release"), "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.17.3\nPRETTY_NAME=\"Alpine Linux v3.17\"\n").unwrap();
        std::fs::write(
            base.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nuser1:x:1111:1111::/home/user1:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(base.join("etc/group"), "root:x:0:\nwheel:x:10:user1\nnogroup:x:65534:\nuser1:x:1111:\n").unwrap();
        let ex01 = dir.join("ex01");
        std::fs::create_dir_all(&ex01).unwrap();
        std::fs::write(ex01.join("flag"), "Well done !!! you've finished exercice\n").unwrap();
        std::fs::write(ex01.join(".dockerenv"), "").unwrap();
        let web = dir.join("web");
        std::fs::create_dir_all(web.join("usr/share/nginx/html")).unwrap();
        std::fs::write(web.join("usr/share/nginx/html/index.html"), "<h1>Welcome to nginx!</h1>\n").unwrap();
        let ex03 = dir.join("ex03");
        std::fs::create_dir_all(ex03.join("ex03")).unwrap();
        let layout = dir.join("layout");
        let env = serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
        image(&layout, "alpine", &[&base], serde_json::json!({"Cmd": ["/bin/sh"], "Env": env}));
        image(&layout, "ex01", &[&base, &ex01], serde_json::json!({"Cmd": ["/bin/sh"], "Env": env}));
        image(&layout, "ex03", &[&base, &ex03], serde_json::json!({"Cmd": ["/bin/sh"], "Env": env}));
        image(
            &layout,
            "web",
            &[&base, &web],
            serde_json::json!({"Cmd": ["/bin/sh"], "Env": env, "Volumes": {"/var/cache/web": {}}}),
        );
        image(
            &layout,
            "entry",
            &[&base],
            serde_json::json!({"Entrypoint": ["/bin/echo", "entry"], "Cmd": ["default"], "Env": env, "WorkingDir": "/srv/app", "StopSignal": "SIGUSR1"}),
        );
        layout
    })
}

/// One image of layers `dirs` (bottom first) with `config`, named `name` in `layout`.
pub(crate) fn image(layout: &Path, name: &str, dirs: &[&Path], config: serde_json::Value) {
    let mut descs = vec![];
    let mut diffs = vec![];
    for d in dirs {
        let (gz, diff) = crate::img_pull::gz_layer(d);
        let digest = crate::img_pull::put_blob(layout, &gz);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": gz.len()}));
        diffs.push(diff);
    }
    let cfg = serde_json::json!({"created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
        "config": config, "rootfs": {"type": "layers", "diff_ids": diffs}});
    let cb = serde_json::to_vec(&cfg).unwrap();
    let cd = crate::img_pull::put_blob(layout, &cb);
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cb.len()}, "layers": descs});
    let mb = serde_json::to_vec(&m).unwrap();
    let md = crate::img_pull::put_blob(layout, &mb);
    crate::img_pull::name_in_layout(layout, name, "application/vnd.oci.image.manifest.v1+json", &md, mb.len());
}

/// A sandbox that stays: a holder process in fresh net, mount and PID namespaces, and
/// commands run inside them with `nsenter` (for tests that drive terminals over time).
pub(crate) struct Sandbox {
    _t: tempfile::TempDir,
    holder: std::process::Child,
    env: Vec<(String, String)>,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        let t = tmp();
        let store = t.path().join("store");
        import_images(&store);
        let mut c = Command::new("unshare");
        no_inherited_fds(&mut c);
        let holder = c
            .args(["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "sh", "-c"])
            .arg("mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && ip link set lo up && echo 0 > /proc/sys/net/ipv4/ip_forward && touch $0.ready && exec sleep 600")
            .arg(t.path().join("holder"))
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("unshare (util-linux)");
        let ready = t.path().join("holder.ready");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready.exists() {
            assert!(std::time::Instant::now() < deadline, "the sandbox did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let bins = bin_path("mini").parent().unwrap().to_path_buf();
        let env = vec![
            ("CONTLAB_RUN_DIR".into(), t.path().join("run").display().to_string()),
            ("CONTLAB_ROOT".into(), store.display().to_string()),
            ("PATH".into(), format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bins.display())),
            ("NO_COLOR".into(), "1".into()),
            ("TERM".into(), "xterm".into()),
            ("T".into(), t.path().display().to_string()),
        ];
        Sandbox { _t: t, holder, env }
    }

    /// `sh -c line` inside the sandbox.
    pub(crate) fn cmd(&self, line: &str) -> Command {
        // The holder is `unshare`; its child (the shell, then sleep) is in the namespaces.
        let pid = std::fs::read_to_string(format!("/proc/{}/task/{}/children", self.holder.id(), self.holder.id()))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        let mut c = Command::new("nsenter");
        no_inherited_fds(&mut c);
        c.args(["-t", &pid, "-n", "-m", "-p", "--", "sh", "-c", line]).env_clear();
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run `line` to its end; stdout (asserting success).
    pub(crate) fn ok(&self, line: &str) -> String {
        let o = self.cmd(line).output().unwrap();
        assert!(
            o.status.success(),
            "{line}: {:?}\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.ok_quiet("mini -q rm -f $(mini -q ps -aq) >/dev/null 2>&1");
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

impl Sandbox {
    fn ok_quiet(&self, line: &str) -> std::io::Result<std::process::Output> {
        self.cmd(line).output()
    }
}

pub fn import_images(store: &Path) {
    let layout = layout();
    for name in ["alpine", "ex01", "ex03", "entry", "web"] {
        let o = Command::new(bin_path("img-pull"))
            .args(["-q", "--root"])
            .arg(store)
            .arg("import")
            .arg(format!("{}:{name}", layout.display()))
            .args(["-t", &format!("test/{name}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "import {name}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The script lines that start Debian's dockerd inside the sandbox, with a store and a
/// socket of its own under `$T` (no bridge, no iptables: nothing of the host changes),
/// and wait for it; `DOCKER_HOST` points at it, and `DOCKER_BUILDKIT=0` picks the
/// classic builder. Stop it with `kill "$(cat "$T/docker.pid")"; wait`.
pub(crate) const DOCKERD: &str = r#"
command -v dockerd >/dev/null || { echo "dockerd is missing: apt-get install -y docker.io"; exit 1; }
dockerd --data-root "$T/docker" --exec-root "$T/docker-run" -H "unix://$T/docker.sock" --pidfile "$T/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false >"$T/dockerd.log" 2>&1 &
export DOCKER_HOST="unix://$T/docker.sock" DOCKER_BUILDKIT=0
i=0; until /usr/bin/docker version >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 300 ] && { echo "dockerd did not start in 60 s:"; cat "$T/dockerd.log"; exit 1; }; sleep 0.2
done
docker() { /usr/bin/docker "$@"; }
"#;

/// podman beside mini in a sandbox, as `p`: its runtimes refuse this machine's hybrid
/// cgroups and its high rlimits, so the sandbox's private mount namespace loses the
/// unified hierarchy and the limits go down; its storage is under `$T`.
pub(crate) const PODMAN: &str = r#"
command -v podman >/dev/null || { echo "podman is missing: apt-get install -y podman"; exit 1; }
umount /sys/fs/cgroup/unified 2>/dev/null; ulimit -n 1024
p() { podman --root "$T/podman" --runroot "$T/podman-run" --storage-driver vfs "$@"; }
"#;

/// The result of a sandboxed script.
pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) out: String,
    pub(crate) err: String,
}

/// Run `script` (sh, `set -u`, not `-e`: scripts check codes themselves) in fresh net,
/// mount and PID namespaces with a store of its own holding the test images; `mini`
/// and the other tools first in PATH, and `T` the store's directory.
pub(crate) fn sandbox(script: &str) -> Ran {
    let t = tmp();
    let store = t.path().join("store");
    import_images(&store);
    let bins = bin_path("mini").parent().unwrap().to_path_buf();
    let prelude = format!(
        "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns\n\
         export CONTLAB_RUN_DIR={run} CONTLAB_ROOT={store} PATH={bins}:/usr/sbin:/usr/bin:/sbin:/bin NO_COLOR=1 T={dir}\n\
         echo 0 > /proc/sys/net/ipv4/ip_forward\n\
         ip link set lo up\n\
         m() {{ mini -q \"$@\"; }}\n",
        run = t.path().join("run").display(),
        store = store.display(),
        bins = bins.display(),
        dir = t.path().display(),
    );
    let mut c = Command::new("unshare");
    no_inherited_fds(&mut c);
    let o = c
        .args(["--net", "--mount", "--propagation", "private", "--pid", "--fork", "--mount-proc", "sh", "-uc"])
        .arg(format!("{prelude}{script}"))
        .current_dir(t.path())
        .output()
        .expect("unshare (util-linux)");
    Ran {
        code: o.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&o.stdout).into(),
        err: String::from_utf8_lossy(&o.stderr).into(),
    }
}

pub(crate) fn ok(script: &str) -> String {
    let r = sandbox(script);
    assert_eq!(r.code, 0, "script failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}", r.code, r.out, r.err);
    r.out
}

/// The lines after `marker` up to the next marker line (`== name`).
pub(crate) fn section<'a>(out: &'a str, marker: &str) -> &'a str {
    let start = out
        .find(&format!("== {marker}\n"))
        .map(|i| i + marker.len() + 4)
        .unwrap_or_else(|| panic!("no section {marker} in:\n{out}"));
    let rest = &out[start..];
    &rest[..rest.find("\n== ").map(|i| i + 1).unwrap_or(rest.len())]
}

#[test]
fn run_prints_the_command_output_and_ps_shows_it_exited() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
echo "== run"; m run test/alpine echo "Hello world"; echo "code $?"
echo "== ps"; m ps -a --format '{{.Image}} {{.Command}} {{.Status}}'
echo "== ps-q"; m ps -q | wc -l; m ps -aq | wc -l
"#);
    assert_eq!(section(&out, "run"), "Hello world\ncode 0\n");
    let ps = section(&out, "ps");
    assert!(ps.starts_with("test/alpine \"echo Hello world\" Exited (0) "), "{ps}");
    assert_eq!(section(&out, "ps-q"), "0\n1\n");
}

#[test]
fn exit_codes_are_dockers() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(
        r#"
m run test/alpine sh -c 'exit 3'; echo "code $?"
m run test/alpine nosuchcommand; echo "code $?"
m run test/alpine /etc/passwd; echo "code $?"
m run test/alpine sh -c 'kill -9 $$'; echo "code $?"
m run test/alpine sh -c 'sleep 60 & kill -9 $!; wait $!'; echo "code $?"
m run no/such-image true; echo "code $?"
m run --memory 64x test/alpine true; echo "code $?"
"#,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    // PID 1 of a PID namespace ignores the signals it has no handler for, SIGKILL from
    // inside included: docker's container exits 0 there too.
    assert_eq!(r.out, "code 3\ncode 127\ncode 126\ncode 0\ncode 137\ncode 125\ncode 125\n", "{}", r.err);
    assert!(r.err.contains("exec: \"nosuchcommand\": executable file not found in $PATH"), "{}", r.err);
    assert!(r.err.contains("exec: \"/etc/passwd\": permission denied"), "{}", r.err);
    assert!(r.err.contains("invalid size: '64x'"), "{}", r.err);
}

#[test]
fn basics_ex1_one_container_per_run_named_and_from_one_image() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
echo "== pwd"; m run test/ex01 pwd
echo "== flag"; m run test/ex01 cat flag
echo "== dockerenv"; m run test/ex01 ls -a / | grep -c '^.dockerenv$'
echo "== count"; m ps -a --filter ancestor=test/ex01 -q | wc -l
echo "== states"; m ps -a --filter ancestor=test/ex01 --format '{{.State}}' | sort -u
echo "== names"; m ps -a --format '{{.Names}}' | grep -c '^[a-z]*_[a-z]*[0-9]*$'
echo "== images"; for c in $(m ps -aq); do m inspect --format '{{.Image}}' $c; done | sort -u | wc -l
echo "== image-id"; m inspect --format '{{.Image}}' $(m ps -lq) | cut -c1-19
echo "== store-id"; img-pull -q inspect --format '{{.Id}}' test/ex01 | cut -c1-19
"#);
    assert_eq!(section(&out, "pwd"), "/\n");
    assert_eq!(section(&out, "flag"), "Well done !!! you've finished exercice\n");
    assert_eq!(section(&out, "dockerenv"), "1\n");
    assert_eq!(section(&out, "count"), "3\n");
    assert_eq!(section(&out, "states"), "exited\n");
    assert_eq!(section(&out, "names"), "3\n");
    assert_eq!(section(&out, "images"), "1\n");
    assert_eq!(section(&out, "image-id"), section(&out, "store-id"));
}

#[test]
fn a_new_container_gets_a_new_layer_and_start_keeps_the_old_one() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run --name first test/ex03 touch /ex03/fantasio
echo "== new"; m run --rm test/ex03 ls /ex03 | wc -l
echo "== diff"; ls "$T/store/overlay/$(m inspect --format '{{.Id}}' first)/diff/ex03"
m rename first zorglub
echo "== renamed"; m ps -a --format '{{.Names}}' | grep zorglub
m start -a zorglub
echo "== kept"; m run --rm test/ex03 true; cat "$(m inspect --format '{{.GraphDriver.Data.UpperDir}}' zorglub)/ex03/fantasio" && echo kept
"#);
    assert_eq!(section(&out, "new"), "0\n");
    assert_eq!(section(&out, "diff"), "fantasio\n");
    assert_eq!(section(&out, "renamed"), "zorglub\n");
    assert_eq!(section(&out, "kept"), "kept\n");
}

#[test]
fn detached_containers_logs_exec_stop_start_kill_wait_rm() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
id=$(m run -d --name c1 test/alpine sh -c 'echo started; echo oops >&2; while :; do sleep 1; done')
echo "== id"; echo "$id" | grep -c '^[0-9a-f]\{64\}$'
until m logs c1 2>&1 | grep -q oops; do sleep 0.1; done
echo "== logs"; m logs c1 2>/dev/null
echo "== logs-stderr"; m logs c1 2>&1 >/dev/null
echo "== logs-t"; m logs -t c1 2>/dev/null | grep -c '^20[0-9-]*T[0-9:.]*Z started$'
echo "== exec"; m exec c1 sh -c 'echo $$; hostname; ps -o pid,comm | sed 1d | wc -l'
echo "== exec-code"; m exec c1 sh -c 'exit 7'; echo $?
echo "== up"; m ps --format '{{.Names}} {{.State}}'
echo "== stop"; m stop -t 1 c1; m inspect --format '{{.State.Status}} {{.State.ExitCode}}' c1
echo "== start"; m start c1; m inspect --format '{{.State.Status}} {{.RestartCount}}' c1
echo "== kill"; m kill -s KILL c1; m wait c1
echo "== rm"; m rm c1; m ps -aq | wc -l
"#);
    assert_eq!(section(&out, "id"), "1\n");
    assert_eq!(section(&out, "logs"), "started\n");
    assert_eq!(section(&out, "logs-stderr"), "oops\n");
    assert_eq!(section(&out, "logs-t"), "1\n");
    let exec = section(&out, "exec");
    let lines: Vec<&str> = exec.lines().collect();
    assert_ne!(lines[0], "1", "an exec'd process is not PID 1: {exec}");
    assert_eq!(lines[1].len(), 12, "the hostname is the short ID: {exec}");
    assert_eq!(section(&out, "exec-code"), "7\n");
    assert_eq!(section(&out, "up"), "c1 running\n");
    assert_eq!(section(&out, "stop"), "c1\nexited 137\n", "sh as PID 1 ignores SIGTERM: killed after -t");
    assert_eq!(section(&out, "start"), "c1\nrunning 0\n");
    assert_eq!(section(&out, "kill"), "c1\n137\n");
    assert_eq!(section(&out, "rm"), "c1\n0\n");
}

#[test]
fn root_inside_is_root_outside_and_pid_1_and_the_kernel_are_shared() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run -d --name top test/alpine sleep 300 >/dev/null
pid=$(m inspect --format '{{.State.Pid}}' top)
echo "== host-user"; ps -o user= -p $pid
echo "== host-comm"; ps -o comm= -p $pid
echo "== inside"; m exec top ps -o pid,user,comm | awk 'NR==2 {print $1, $2, $3}'
echo "== uname"; [ "$(m run --rm test/alpine uname -rv)" = "$(uname -rv)" ] && echo same
echo "== dev"; m run --rm -t test/alpine ls -1 /dev | tr -d '\r' | tr '\n' ' '; echo
echo "== device"; m run --rm --device /dev/loop-control test/alpine ls /dev/loop-control
echo "== mount"; m run --rm test/alpine mount | head -1 | cut -d' ' -f1-5
echo "== host-sees-overlay"; grep -c "$(m inspect --format '{{.GraphDriver.Data.MergedDir}}' top)" /proc/self/mountinfo
echo "== caps"; m run --rm test/alpine grep CapEff /proc/self/status
echo "== masked"; m run --rm test/alpine cat /proc/kcore | wc -c
echo "== ro"; m run --rm test/alpine sh -c 'echo 1 > /proc/sys/kernel/hostname' 2>&1 | grep -c 'Read-only'
m rm -f top >/dev/null
"#);
    assert_eq!(section(&out, "host-user"), "root\n");
    assert_eq!(section(&out, "host-comm"), "sleep\n");
    assert_eq!(section(&out, "inside"), "1 root sleep\n");
    assert_eq!(section(&out, "uname"), "same\n");
    let dev = section(&out, "dev");
    for d in [
        "console", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
        "urandom", "zero",
    ] {
        assert!(dev.split_whitespace().any(|x| x == d), "{d} missing in /dev: {dev}");
    }
    assert!(!dev.contains("sda") && !dev.contains("loop-control"), "{dev}");
    assert_eq!(section(&out, "device"), "/dev/loop-control\n");
    assert_eq!(section(&out, "mount"), "overlay on / type overlay\n");
    assert_eq!(section(&out, "host-sees-overlay"), "1\n");
    assert_eq!(section(&out, "caps"), "CapEff:\t00000000a80425fb\n");
    assert_eq!(section(&out, "masked"), "0\n");
    assert_eq!(section(&out, "ro"), "1\n");
}

#[test]
fn image_config_and_flags_follow_dockers_rules() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
echo "== entry"; m run --rm test/entry
echo "== entry-args"; m run --rm test/entry a b
echo "== entrypoint-flag"; m run --rm --entrypoint /bin/echo test/entry
echo "== entrypoint-empty"; m run --rm --entrypoint "" test/entry echo plain
echo "== workdir"; m run --rm --entrypoint pwd test/entry
echo "== w"; m run --rm -w /tmp test/alpine pwd
echo "== env"; printf 'A=from-file\n# comment\nB=b\n' > envfile; C=host m run --rm --env-file envfile -e A=from-flag -e C test/alpine sh -c 'echo $A $B $C $HOSTNAME'
echo "== hostname"; m run --rm -h host1 test/alpine hostname
echo "== user"; m run --rm -u user1 test/alpine id
echo "== uid-gid"; m run --rm -u 1113:1113 test/alpine id
echo "== stop-signal"; m create --name sig test/entry >/dev/null; m inspect --format '{{.Config.StopSignal}} {{.Config.WorkingDir}}' sig
echo "== labels"; m create --name lb -l a=1 -l b test/alpine >/dev/null; m inspect --format '{{json .Config.Labels}}' lb
echo "== init"; m run --rm --init test/alpine ps -o pid,comm | sed 1d | awk '{print $1}' | tr '\n' ' '; echo
echo "== ulimit"; m run --rm --ulimit nofile=512:1024 test/alpine sh -c 'ulimit -n; ulimit -Hn'
echo "== memory"; m run -d --name mem --memory 64m --pids-limit 50 test/alpine sleep 60 >/dev/null; cat /sys/fs/cgroup/memory/contlab/mini/$(m inspect --format '{{.Id}}' mem)/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/contlab/mini/$(m inspect --format '{{.Id}}' mem)/memory.max
m rm -f mem >/dev/null
"#);
    assert_eq!(section(&out, "entry"), "entry default\n");
    assert_eq!(section(&out, "entry-args"), "entry a b\n");
    assert_eq!(section(&out, "entrypoint-flag"), "\n", "--entrypoint drops the image's Cmd");
    assert_eq!(section(&out, "entrypoint-empty"), "plain\n");
    assert_eq!(section(&out, "workdir"), "/srv/app\n", "the image's WorkingDir, made when missing");
    assert_eq!(section(&out, "w"), "/tmp\n");
    assert_eq!(section(&out, "env").split_whitespace().take(3).collect::<Vec<_>>(), ["from-flag", "b", "host"]);
    assert_eq!(section(&out, "hostname"), "host1\n");
    assert_eq!(
        section(&out, "user"),
        "uid=1111(user1) gid=1111(user1) groups=10(wheel),1111(user1)\n",
        "the kernel keeps groups sorted"
    );
    assert_eq!(section(&out, "uid-gid"), "uid=1113 gid=1113 groups=1113\n");
    assert_eq!(section(&out, "stop-signal"), "SIGUSR1 /srv/app\n");
    assert_eq!(section(&out, "labels"), "{\"a\":\"1\",\"b\":\"\"}\n");
    assert_eq!(section(&out, "init"), "1 2 \n", "PID 1 is the tiny init, the command its child");
    assert_eq!(section(&out, "ulimit"), "512\n1024\n");
    assert_eq!(section(&out, "memory"), "67108864\n");
}

#[test]
fn bad_input_gets_dockers_messages_and_leaves_nothing() {
    if !require(Tier::Root) {
        return;
    }
    let r = sandbox(
        r#"
m rm nosuch; echo "code $?"
m run --name twin test/alpine true; m run --name twin test/alpine true; echo "code $?"
# Two of 17 IDs share their first hex digit, surely: create until two do.
p=""; for i in $(seq 17); do m create test/alpine >/dev/null; p=$(m ps -aq | cut -c1 | sort | uniq -d | head -1); [ -n "$p" ] && break; done
m rm $p; echo "ambiguous $?"
# A copy nobody may run, wherever the build tree is.
d=$(mktemp -d /tmp/mini-notroot.XXXXXX); chmod 755 "$d"; cp "$(command -v mini)" "$d/"
setpriv --reuid 65534 --regid 65534 --clear-groups "$d/mini" -q run test/alpine true; echo "notroot $?"; rm -rf "$d"
m exec twin true; echo "code $?"
m run -d --name up test/alpine sleep 60 >/dev/null; m rm up; echo "code $?"
m rm -f up >/dev/null
m kill twin; echo "code $?"
echo "== swap"; m run --memory-swap 64m test/alpine true; echo "code $?"; m run -m 64m --memory-swap 32m test/alpine true; echo "code $?"
echo "== left"; [ "$(ls "$T/store/overlay" | grep -v -- -init$)" = "$(m ps -aq --no-trunc | sort)" ] && echo "a layer per container"; ls /run/netns | wc -l
"#,
    );
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(section(&r.out, "left"), "a layer per container\n0\n", "{}", r.err);
    assert!(r.out.starts_with("code 1\ncode 125\n"), "{}\n{}", r.out, r.err);
    assert!(r.err.contains("Error response from daemon: No such container: nosuch"), "{}", r.err);
    assert!(r.err.contains("Conflict. The container name \"/twin\" is already in use by container"), "{}", r.err);
    assert!(r.err.contains("is not running"), "{}", r.err);
    assert!(r.err.contains("You cannot remove a running container"), "{}", r.err);
    assert!(r.out.contains("code 1\ncode 1\n"), "{}", r.out);
    assert!(r.out.contains("ambiguous 1\n"), "{}", r.out);
    assert!(r.err.contains("Error response from daemon: Multiple IDs found with provided prefix: "), "{}", r.err);
    assert!(r.out.contains("notroot 125\n"), "{}", r.out);
    assert!(r.out.contains("== swap\ncode 125\ncode 125\n"), "{}", r.out);
    assert!(r.err.contains("You should always set the Memory limit when using Memoryswap limit"), "{}", r.err);
    assert!(r.err.contains("Minimum memoryswap limit should be larger than memory limit"), "{}", r.err);
    assert!(r.err.contains("mini run needs root"), "{}", r.err);
}

#[test]
fn rm_f_removes_every_kernel_object_and_rm_f_after_kill_9_of_the_monitor_too() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run -d --name ka test/alpine sleep 300 >/dev/null
id=$(m inspect --format '{{.Id}}' ka)
mon=$(python3 -c "import json;print(json.load(open('$T/store/containers/$id/config.json'))['state']['monitor_pid'])")
kill -9 $mon; sleep 0.2
echo "== dead"; m ps -a --format '{{.Names}} {{.State}}'
echo "== rm"; m rm -f ka
echo "== mounts"; grep -c "$id" /proc/self/mountinfo
echo "== cgroups"; find /sys/fs/cgroup -maxdepth 4 -name "$id" | wc -l
echo "== netns"; ls /run/netns | wc -l
echo "== veths"; ip -o link show type veth | wc -l
echo "== dirs"; ls "$T/store/overlay" "$T/store/containers" | grep -c "$id"
true
"#);
    assert_eq!(section(&out, "dead"), "ka dead\n");
    assert_eq!(section(&out, "rm"), "ka\n");
    for (s, n) in [("mounts", "0\n"), ("cgroups", "0\n"), ("netns", "0\n"), ("veths", "0\n"), ("dirs", "0\n")] {
        assert_eq!(section(&out, s), n, "{s} left after rm -f:\n{out}");
    }
}

#[test]
fn hello_world_runs_offline() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run hello-world
echo "== images"; m images --quiet | wc -l
echo "== ps"; m ps -a --format '{{.Image}} {{.Status}}' | cut -c1-23
echo "== again"; m run hello-world | grep -c 'Hello from mini'
echo "== pull"; m pull hello-world | tail -1
"#);
    assert!(out.contains("Hello from mini!"), "{out}");
    assert!(out.contains("I am PID 1"), "{out}");
    assert!(out.contains("CapEff 00000000a80425fb"), "{out}");
    assert_eq!(section(&out, "images"), "6\n");
    assert_eq!(section(&out, "ps"), "hello-world Exited (0) \n");
    assert_eq!(section(&out, "again"), "1\n");
    assert_eq!(section(&out, "pull"), "Status: Image is up to date for hello-world:latest\n");
}

#[test]
fn basics_ex2_interactive_shell_detach_attach_exec_start_ai() {
    if !require(Tier::Root) {
        return;
    }
    use crate::harness::Terminal;
    let sb = Sandbox::new();
    // S1, Q1: an interactive shell; a file made in it; Ctrl-D ends the container.
    let mut t = Terminal::start(sb.cmd("mini -q run -it test/ex03 /bin/sh"));
    t.expect("/ # ");
    t.send(b"touch ex03/fantasio; echo made $((6*7))\r");
    let at = t.expect("made 42");
    // Ctrl-D is end-of-file only at the shell's prompt: typed while the command still
    // runs, the terminal is in cooked mode and the shell never reads it.
    t.expect_from(at, "/ # ");
    t.send(b"\x04");
    let (st, _) = t.wait();
    assert!(st.success(), "Ctrl-D ends the shell, and mini run with it: {st:?}");
    assert_eq!(sb.ok("mini -q ps -a --format '{{.Image}} {{.Status}}' | cut -c1-21"), "test/ex03 Exited (0) \n");
    // S2, Q2: a new container does not see the file.
    let mut z = Terminal::start(sb.cmd("mini -q run -it --name zorglub test/ex03 sh"));
    let at = z.expect("/ # ");
    z.send(b"ls /ex03 | wc -l\r");
    z.expect_from(at, "0\r\n");
    // S3, Q3, Q4: touch it again, then Ctrl-P Ctrl-Q: back on the host, still Up.
    z.send(b"touch /ex03/fantasio\r");
    z.send(b"\x10\x11");
    let (st, _) = z.wait();
    assert!(st.success(), "detaching is a success: {st:?}");
    assert_eq!(sb.ok("mini -q ps --format '{{.Names}} {{.State}}'"), "zorglub running\n");
    // Q5, Q6: attach from two terminals: both see the same shell's output.
    let mut a1 = Terminal::start(sb.cmd("mini -q attach zorglub"));
    let mut a2 = Terminal::start(sb.cmd("mini -q attach zorglub"));
    // An empty line makes the shell print its prompt to every attached terminal: once
    // each terminal has seen one, both are attached.
    for t in [&mut a1, &mut a2] {
        t.send(b"\r");
        t.expect("# ");
    }
    let (f1, f2) = (a1.seen.len(), a2.seen.len());
    a1.send(b"ls /ex03\r");
    a1.expect_from(f1, "fantasio");
    a2.expect_from(f2, "fantasio");
    // Q7, Q8: exec starts a second shell beside PID 1.
    let mut e = Terminal::start(sb.cmd("mini -q exec -it zorglub sh"));
    let at = e.expect("# ");
    // (ps into a file first: in a pipeline, grep's process may still be a forked sh.)
    e.send(b"ls /ex03; ps -o comm > /tmp/ps; grep -c '^sh$' /tmp/ps\r");
    e.expect_from(at, "fantasio");
    e.expect_from(at, "2\r\n");
    // Q10: ending the exec'd shell leaves the container running.
    e.send(b"exit\r");
    let (st, _) = e.wait();
    assert!(st.success(), "{st:?}");
    assert_eq!(sb.ok("mini -q ps --format '{{.Names}}'"), "zorglub\n");
    // Q11: Ctrl-D in the attached shell ends PID 1: the container stops.
    a1.send(b"exit\r");
    let (st1, _) = a1.wait();
    let (st2, _) = a2.wait();
    assert!(st1.success() && st2.success(), "{st1:?} {st2:?}");
    assert_eq!(sb.ok("mini -q ps -q | wc -l"), "0\n");
    // Q12: start -ai: the writable layer is still there.
    let mut s = Terminal::start(sb.cmd("mini -q start -ai zorglub"));
    s.send(b"\r");
    let at = s.expect("# ");
    s.send(b"ls ex03/\r");
    s.expect_from(at, "fantasio");
    s.send(b"exit 4\r");
    let (st, _) = s.wait();
    assert_eq!(st.code(), Some(4), "start -a exits with the container's status");
}

#[test]
fn a_terminal_gets_the_callers_size_and_its_changes() {
    if !require(Tier::Root) {
        return;
    }
    use crate::harness::Terminal;
    let sb = Sandbox::new();
    let mut t = Terminal::start(sb.cmd("mini -q run -it --rm test/alpine sh"));
    t.expect("# ");
    t.send(b"stty size\r");
    t.expect("24 80");
    t.send(b"exit\r");
    let (st, screen) = t.wait();
    assert!(st.success(), "{screen}");
}

#[test]
fn kill_9_of_mini_or_its_monitor_at_each_step_leaves_what_rm_f_removes() {
    if !require(Tier::Root) {
        return;
    }
    // Each step: the request before which `mini run -d` (or its monitor) stops itself,
    // then gets SIGKILL. What was made by then must be in the record, and `rm -f` must
    // remove all of it: mounts, cgroups, network namespaces, veths, directories.
    let steps = [
        ("fsmount", 1),     // the overlay being mounted
        ("mkdir", 3),       // the cgroup being made
        ("RTM_NEWLINK", 1), // the veth being made
        ("RTM_NEWADDR", 1), // its address
        ("rename", 4),      // a record being published
        ("fork", 2),        // the monitor being started
        ("bind", 1),        // the monitor, before it listens (it inherits CONTLAB_FAULT)
        ("pivot_root", 1),  // the container's first process, before its new root
    ];
    for (call, nth) in steps {
        let out = ok(&format!(
            r#"
CONTLAB_FAULT={call}:{nth}:stop mini -q run -d --name f1 test/alpine sleep 300 >/dev/null 2>&1 &
cli=$!
# Wait until some process of ours has stopped itself at that request.
for i in $(seq 1 300); do
  s=$(for p in $(pgrep -f 'mini -q'); do awk '{{print $3}}' /proc/$p/stat 2>/dev/null; done | grep -c T)
  [ "$s" -gt 0 ] && break; sleep 0.05
done
for p in $(pgrep -f 'mini -q'); do kill -9 $p 2>/dev/null; done
kill -9 $(pgrep -f 'sleep 300') 2>/dev/null
wait $cli 2>/dev/null
ids=$(ls "$T/store/containers" | grep -v lock)
m rm -f f1 >/dev/null 2>&1
for c in $(m ps -aq); do m rm -f $c >/dev/null 2>&1; done
echo "== left"
grep -c "$T/store/overlay" /proc/self/mountinfo
for id in $ids; do find /sys/fs/cgroup -maxdepth 5 -name "$id"; done | wc -l
ls /run/netns | wc -l
ip -o link show type veth | wc -l
ls "$T/store/containers" | grep -vc lock
ls "$T/store/overlay" | wc -l
"#
        ));
        assert_eq!(section(&out, "left"), "0\n0\n0\n0\n0\n0\n", "after kill -9 at {call} #{nth}: something was left");
    }
}

#[test]
fn twenty_concurrent_runs_and_fifty_detached_containers_stay_consistent() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
for i in $(seq 1 20); do m run --rm test/alpine sh -c "echo run $i" > out.$i 2>&1 & done
wait
echo "== runs"; cat out.* | sort | uniq | wc -l; cat out.* | grep -c '^run '
echo "== after-runs"; m ps -aq | wc -l
for i in $(seq 1 50); do m run -d --name d$i test/alpine sleep 300 >/dev/null & done
wait
echo "== detached"; m ps -q | wc -l; m ps --format '{{.Names}}' | sort | uniq | wc -l
echo "== ips"; for c in $(m ps -q); do m inspect --format '{{.NetworkSettings.IPAddress}}' $c; done | sort | uniq | wc -l
m rm -f $(m ps -aq) >/dev/null
echo "== left"; m ps -aq | wc -l; ls /run/netns | wc -l; ip -o link show type veth | wc -l
"#);
    assert_eq!(section(&out, "runs"), "20\n20\n");
    assert_eq!(section(&out, "after-runs"), "0\n");
    assert_eq!(section(&out, "detached"), "50\n50\n");
    assert_eq!(section(&out, "ips"), "50\n", "every container has an address of its own");
    assert_eq!(section(&out, "left"), "0\n0\n0\n");
}

#[test]
fn run_script_makes_the_same_container_out_of_the_five_tools() {
    if !require(Tier::Root) {
        return;
    }
    // What the process sees: its cgroup and namespaces' shape, /dev, /sys, its
    // capabilities, its seccomp filters (and one call they refuse), the device list (a
    // node it may make but not open), masked paths, its network, environment and working directory;
    // the processes it can see (ps into a file: in a pipe, wc may or may not be seen).
    let probe = "cat /proc/self/cgroup | wc -l; echo $(ls /dev); grep -E 'Cap(Eff|Bnd)|NoNewPrivs|Seccomp' /proc/self/status; \
                 unshare -U true 2>&1; mknod /tmp/loop b 7 0 && head -c1 /tmp/loop 2>&1 | grep -o 'not permitted'; cat /proc/kcore 2>&1 | wc -c; mount | grep -c ' /sys .*ro,'; ip -4 -o addr | grep -c eth0; \
                 ip route | cut -d' ' -f1-3; env | grep -v HOSTNAME | sort; pwd; echo $$; ps -o pid,comm > /tmp/ps; wc -l < /tmp/ps";
    let out = ok(&format!(
        r#"
probe=$(cat <<'EOF'
{probe}
EOF
)
echo "== script"; m run --script test/alpine sh -c "$probe" > s.sh && sh s.sh 2>err || {{ echo "failed: $?"; cat err; }}
echo "== run"; m run --rm test/alpine sh -c "$probe"
echo "== users"; for u in 5 5:6 nobody; do m run --script --network none -u $u test/alpine id > u.sh && sh u.sh 2>/dev/null; m run --rm --network none -u $u test/alpine id; done
echo "== left"; grep -c contlab-script /proc/self/mountinfo; netns-bridge -q show | grep -c script; echo done
"#
    ));
    let script = section(&out, "script");
    assert!(script.contains("10.87.0.0/16 dev eth0"), "{out}");
    assert!(script.contains("Seccomp:\t2\n") && script.contains("Operation not permitted"), "docker's filter: {out}");
    assert!(script.contains("\nnot permitted\n"), "docker's device list: {out}");
    assert_eq!(script, section(&out, "run"), "the script's container is mini's:\n{out}");
    assert_eq!(section(&out, "left"), "0\n0\ndone\n", "the script cleans up after itself:\n{out}");
    // -u as numbers, numbers and a group, and a name of the image's /etc/passwd: the
    // same ids and groups by hand as in mini run.
    let users = section(&out, "users");
    let users: Vec<&str> = users.lines().collect();
    assert_eq!(users.len(), 6, "{out}");
    for pair in users.chunks(2) {
        assert_eq!(pair[0], pair[1], "the script's user is mini's:\n{out}");
    }
    assert!(users[4].starts_with("uid=65534(nobody)"), "{out}");
}

#[test]
fn ps_filters_formats_and_the_commands_that_manage_a_running_container() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
m run --name a1 -l tier=web test/alpine true
m run -d --name b2 -l tier=db test/alpine sh -c 'while :; do sleep 1; done' >/dev/null
m create --name c3 test/entry hello there, from a long command >/dev/null
echo "== n"; m ps -a -n 2 --format '{{.Names}}'
echo "== l"; m ps -l --format '{{.Names}}'
echo "== status"; m ps -a --filter status=exited --format '{{.Names}}'; m ps -a --filter status=created --format '{{.Names}}'
echo "== name"; m ps -a --filter name=b --format '{{.Names}}'
echo "== ancestor"; m ps -a --filter ancestor=test/entry --format '{{.Names}}'
echo "== label"; m ps -a --filter label=tier=web --format '{{.Names}}'; m ps -a --filter label=tier --format '{{.Names}}' | sort
echo "== q"; m ps -q | wc -l; m ps -aq | wc -l; m ps -aq --no-trunc | awk '{print length}' | sort -u
echo "== table"; m ps -a --format 'table {{.Names}}\t{{.Status}}' | head -1
echo "== rows"; m ps -a --format '{{.Names}}|{{.Status}}|{{.Command}}|{{.Labels}}' | sort
echo "== pause"; m pause b2; m inspect --format '{{.State.Status}} {{.State.Paused}}' b2; m ps --filter name=b2 --format '{{.Status}}'
m unpause b2; m inspect --format '{{.State.Status}} {{.State.Paused}}' b2
echo "== update"; m update --memory 64m --pids-limit 50 b2; m inspect --format '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}' b2
pid=$(m inspect --format '{{.State.Pid}}' b2)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  p=$(sed -n 's/^0:://p' /proc/$pid/cgroup); cat /sys/fs/cgroup$p/memory.max /sys/fs/cgroup$p/pids.max
else
  p=$(grep ':memory:' /proc/$pid/cgroup | cut -d: -f3); cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes
  p=$(grep ':pids:' /proc/$pid/cgroup | cut -d: -f3); cat /sys/fs/cgroup/pids$p/pids.max
fi
echo "== stats"; m stats --no-stream --format '{{.Name}}|{{.MemUsage}}|{{.BlockIO}}' b2
m stats --no-stream --format 'table {{.Name}}\t{{.PIDs}}' b2 | head -1
m stats --no-stream b2 | head -1
echo "== top"; m top b2 | head -1 | awk '{print $2, $NF}'; m top b2 | grep -c 'while :'
echo "== port"; m port b2; echo "code $?"
echo "== rename"; m rename c3 c4; m ps -a --filter name=c4 --format '{{.Names}}'
echo "== exec-d"; m exec -d b2 sh -c 'echo hi > /tmp/x'; until m exec b2 test -f /tmp/x; do sleep 0.1; done; m exec b2 cat /tmp/x
m run -d --name f1 test/alpine sh -c 'echo one; while [ ! -f /go ]; do sleep 0.1; done; echo two' >/dev/null
(m logs -f f1 > $T/follow.txt) & lp=$!
until grep -q one $T/follow.txt; do sleep 0.1; done
m exec f1 touch /go
wait $lp; echo "== follow"; cat $T/follow.txt
m run -d --name s1 --entrypoint sh test/entry -c 'trap "echo got USR1; exit 3" USR1; echo ready; while :; do sleep 0.1; done' >/dev/null
until m logs s1 | grep -q ready; do sleep 0.1; done
echo "== stopsignal"; m stop s1; m inspect --format '{{.State.ExitCode}} {{.Config.StopSignal}}' s1; m logs s1
echo "== inspect"; m inspect b2
echo "== version"; m version | grep -c '^ Kernel: *[0-9]'; m info | grep -E '^ +(Containers|Running|Storage Driver|Cgroup Driver):'
echo "== trace"; m trace --by-primitive a1 | grep '^── ' | sed 's/ (.*//'
"#);
    assert_eq!(section(&out, "n"), "c3\nb2\n", "ps -n 2: the two newest");
    assert_eq!(section(&out, "l"), "c3\n");
    assert_eq!(section(&out, "status"), "a1\nc3\n");
    assert_eq!(section(&out, "name"), "b2\n");
    assert_eq!(section(&out, "ancestor"), "c3\n");
    assert_eq!(section(&out, "label"), "a1\na1\nb2\n");
    assert_eq!(section(&out, "q"), "1\n3\n64\n");
    assert_eq!(section(&out, "table"), "NAMES     STATUS\n");
    let rows: Vec<&str> = section(&out, "rows").lines().collect();
    assert!(rows[0].starts_with("a1|Exited (0) ") && rows[0].ends_with("|\"true\"|tier=web"), "{rows:?}");
    assert!(rows[1].starts_with("b2|Up ") && rows[1].ends_with("|\"sh -c while :; do s…\"|tier=db"), "{rows:?}");
    assert_eq!(rows[2], "c3|Created|\"/bin/echo entry hel…\"|", "the command is quoted and cut at 20");
    let pause: Vec<&str> = section(&out, "pause").lines().collect();
    assert_eq!(pause[..2], ["b2", "paused true"]);
    assert!(pause[2].starts_with("Up ") && pause[2].ends_with(" (Paused)"), "{pause:?}");
    assert_eq!(pause[3..], ["b2", "running false"]);
    assert_eq!(section(&out, "update"), "b2\n67108864 50\n67108864\n50\n", "the record and the cgroup's files");
    let stats: Vec<&str> = section(&out, "stats").lines().collect();
    assert!(stats[0].starts_with("b2|") && stats[0].contains(" / 64MiB|"), "{stats:?}");
    assert_eq!(stats[1].split_whitespace().collect::<Vec<_>>(), ["NAME", "PIDS"]);
    let head: Vec<&str> = stats[2].split("   ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(head, ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]);
    assert_eq!(section(&out, "top"), "PID CMD\n1\n", "the host's ps -ef, the container's processes only");
    assert_eq!(section(&out, "port"), "code 0\n", "no published port: nothing printed");
    assert_eq!(section(&out, "rename"), "c4\n");
    assert_eq!(section(&out, "exec-d"), "hi\n");
    assert_eq!(section(&out, "follow"), "one\ntwo\n", "logs -f prints what comes and ends with the container");
    assert_eq!(section(&out, "stopsignal"), "s1\n3 SIGUSR1\nready\ngot USR1\n", "stop sends the image's StopSignal");
    assert_eq!(
        section(&out, "version"),
        "1\n Containers: 5\n  Running: 1\n Storage Driver: overlay2\n Cgroup Driver: cgroupfs\n"
    );
    let v: serde_json::Value = serde_json::from_str(section(&out, "inspect")).expect("inspect prints JSON");
    let c = &v[0];
    assert_eq!(c["Name"], "/b2");
    assert_eq!(c["Id"].as_str().map(str::len), Some(64));
    assert_eq!(c["State"]["Status"], "running");
    assert!(c["State"]["Pid"].as_i64().unwrap_or(0) > 0, "{c}");
    assert_eq!(c["Config"]["Labels"]["tier"], "db");
    assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sh", "-c", "while :; do sleep 1; done"]));
    assert_eq!(c["HostConfig"]["Memory"], 67108864);
    assert_eq!(c["GraphDriver"]["Name"], "overlay2");
    for k in ["LowerDir", "UpperDir", "MergedDir", "WorkDir"] {
        assert!(c["GraphDriver"]["Data"][k].as_str().is_some_and(|d| d.starts_with('/')), "{k}: {c}");
    }
    let ip = c["NetworkSettings"]["IPAddress"].as_str().unwrap_or_default();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "the default bridge gave an address: {c}");
    assert_eq!(c["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], ip);
    let trace = section(&out, "trace");
    for lab in ["mini", "ovl-mount", "cg-limit", "netns-bridge", "ns-exec"] {
        assert!(trace.lines().any(|l| l.contains(lab)), "{lab} has a part of run's trace:\n{trace}");
    }
}

#[test]
fn limits_restart_logs_exec_flags_templates_and_the_host_network() {
    if !require(Tier::Root) {
        return;
    }
    let out = ok(r#"
cg() { # cg PID CONTROLLER FILE_V1 FILE_V2: the file of PID's cgroup
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cat /sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$1/cgroup)/$4
  else cat /sys/fs/cgroup/$2$(grep -E "^[0-9]+:([a-z,]*,)?$2(,[a-z,]*)?:" /proc/$1/cgroup | cut -d: -f3)/$3; fi
}
echo "== oom"; m run --name o1 --network none --memory 16m --memory-swap 16m test/alpine tail /dev/zero; echo "code $?"
m inspect --format '{{.State.OOMKilled}} {{.State.ExitCode}}' o1
m run -d --name r1 --network none --stop-timeout 1 test/alpine sh -c 'echo start; while :; do sleep 0.1; done' >/dev/null
echo "== restart"; m restart r1; m inspect --format '{{.State.Status}} {{.RestartCount}} {{.Config.StopTimeout}}' r1
until [ "$(m logs r1 | wc -l)" = 2 ]; do sleep 0.1; done; m logs r1
m run --name t1 --network none test/alpine sh -c 'for i in 1 2 3 4 5; do echo $i; done' >/dev/null
echo "== tail"; m logs --tail 2 t1; m logs --since 2000-01-01T00:00:00Z t1 | wc -l; m logs --since 2099-01-01T00:00:00Z t1 | wc -l
echo "== exec"; m exec -u 1111 -w /tmp -e A=b r1 sh -c 'id -u; pwd; echo $A'; m exec -u user1 r1 id -G
echo "== cpus"; m update --cpus 0.5 r1; pid=$(m inspect --format '{{.State.Pid}}' r1)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cg $pid cpu - cpu.max; else echo "$(cg $pid cpu cpu.cfs_quota_us) $(cg $pid cpu cpu.cfs_period_us)"; fi
m inspect --format '{{.HostConfig.NanoCpus}}' r1
echo "== shares"; m run -d --name sh1 --network none --cpu-shares 512 --cpuset-cpus 0 test/alpine sleep 60 >/dev/null
pid=$(m inspect --format '{{.State.Pid}}' sh1)
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then cg $pid cpu - cpu.weight; else cg $pid cpu cpu.shares; fi
grep Cpus_allowed_list /proc/$pid/status | cut -f2
echo "== stopsig"; m run -d --name s2 --network none --stop-signal USR2 test/alpine sh -c 'trap "exit 4" USR2; echo ready; while :; do sleep 0.1; done' >/dev/null
until m logs s2 | grep -q ready; do sleep 0.1; done; m stop s2; m inspect --format '{{.State.ExitCode}} {{.Config.StopSignal}}' s2
echo "== tpl"; m inspect --format '{{range .Config.Env}}{{.}};{{end}}' t1 | sed 's/HOSTNAME=[0-9a-f]*/HOSTNAME=h/'
m inspect --format '{{index .Config.Cmd 0}} {{json .State.Running}} {{json .Config.Labels}}' t1
echo "== host"; [ "$(m run --rm --network host test/alpine ip -o link | cut -d: -f2)" = "$(ip -o link | cut -d: -f2)" ] && echo same links
m run --rm --network none test/alpine ip -o link | cut -d: -f2
echo "== dns"; m run --rm --network none --dns 9.9.9.9 --dns 2620:fe::fe test/alpine grep -c '^nameserver' /etc/resolv.conf
m run --rm --network none --dns 9.9.9.9 test/alpine grep '^nameserver' /etc/resolv.conf
echo "== sigpipe"; m run --rm --network none test/alpine sh -c 'i=$(grep SigIgn /proc/self/status | cut -f2); echo $(( 0x$i & (1 << 12) ))'
# The trace's reader goes away after one line: mini and its monitor carry on, and end.
echo "== closed-stderr"; timeout 60 sh -c "mini --trace=json run --rm --name cs --network none test/alpine echo hi 2>&1 >/dev/null | head -1 | grep -c getresuid"
echo "code $?"; m ps -aq --filter name=cs | wc -l
"#);
    assert_eq!(section(&out, "oom"), "code 137\ntrue 137\n", "the OOM killer's SIGKILL, recorded");
    assert_eq!(section(&out, "restart"), "r1\nrunning 0 1\nstart\nstart\n", "restart by hand counts no restart");
    assert_eq!(section(&out, "tail"), "4\n5\n5\n0\n");
    assert_eq!(section(&out, "exec"), "1111\n/tmp\nb\n1111 10\n", "-u name takes the image's groups");
    assert_eq!(section(&out, "cpus"), "r1\n50000 100000\n500000000\n");
    let shares = section(&out, "shares");
    assert!(shares == "512\n0\n" || shares == "59\n0\n", "v1 cpu.shares 512, or v2's weight for it: {shares}");
    assert_eq!(section(&out, "stopsig"), "s2\n4 SIGUSR2\n", "--stop-signal is what stop sends");
    assert_eq!(
        section(&out, "tpl"),
        "HOSTNAME=h;PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin;\nsh false {}\n"
    );
    assert_eq!(section(&out, "host"), "same links\n lo\n");
    assert_eq!(section(&out, "dns"), "2\nnameserver 9.9.9.9\n", "--dns replaces the host's nameservers");
    assert_eq!(section(&out, "sigpipe"), "0\n", "SIGPIPE (bit 12 of SigIgn) is not ignored in the container");
    assert_eq!(section(&out, "closed-stderr"), "1\ncode 0\n0\n", "a closed stderr ends no one and spins no one");
}
