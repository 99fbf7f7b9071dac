//! img-pull: the registry protocol against Debian's docker-registry (CNCF
//! distribution) and a local stand-in for Docker Hub's token flow, interop with
//! skopeo, umoci and podman, and hostile servers.
//!
//! Peers tier: a missing peer (docker-registry, skopeo, umoci, tar, gzip, htpasswd)
//! FAILS the test with the package to install.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness;
use contlab::image::registry::sha256_digest;

// ------------------------------------------------------------------ peers

fn need(bin: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    for dir in ["/usr/sbin", "/sbin", "/usr/bin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("peers tier: `{bin}` is missing: apt-get install -y {package}");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "nothing listens on 127.0.0.1:{port} after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A docker-registry on 127.0.0.1, killed when dropped.
pub struct LocalRegistry {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    /// Start one, with htpasswd basic auth if `user` is given.
    pub fn start(user: Option<(&str, &str)>) -> LocalRegistry {
        Self::start_with(user, None)
    }

    /// Start one serving HTTPS with this certificate and key (PEM files).
    pub fn start_tls(cert: &Path, key: &Path) -> LocalRegistry {
        Self::start_with(None, Some((cert, key)))
    }

    fn start_with(user: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> LocalRegistry {
        let bin = need("docker-registry", "docker-registry");
        let dir = harness::tmp();
        let mut auth = String::new();
        if let Some((u, p)) = user {
            let h = need("htpasswd", "apache2-utils");
            let line = run(Command::new(h).args(["-Bbn", u, p]));
            std::fs::write(dir.path().join("htpasswd"), line).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: contlab\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let tls = tls
            .map(|(c, k)| format!("  tls:\n    certificate: {}\n    key: {}\n", c.display(), k.display()))
            .unwrap_or_default();
        // Port 0: the registry binds a free port itself and says which in its log
        // ("listening on 127.0.0.1:PORT"), so no other process can take it meanwhile.
        let cfg = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n{tls}{auth}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), cfg).unwrap();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let mut log = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let port = loop {
            let mut line = String::new();
            if log.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("docker-registry ended before it listened:\n{seen}");
            }
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                break digits.parse::<u16>().unwrap_or_else(|_| panic!("a port in {line:?}"));
            }
            seen.push_str(&line);
        };
        // The rest of its log is drained, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        wait_port(port);
        LocalRegistry { child, port, _dir: dir }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------------ test images

pub fn gz_layer(dir: &Path) -> (Vec<u8>, String) {
    let tar = need("tar", "tar");
    need("gzip", "gzip");
    let out = Command::new(tar)
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=user.*", "--sort=name", "--mtime=@1700000000"])
        // --xattrs makes a POSIX (pax) archive, which records atime and ctime unless
        // told not to: without this the same tree gives another layer at every run.
        .args(["--pax-option=delete=atime,delete=ctime", "-C"])
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
    let diff = sha256_digest(&out.stdout);
    let mut gz = Command::new("gzip").args(["-n", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let data = out.stdout.clone();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let o = gz.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    (o.stdout, diff)
}

pub fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    let d = sha256_digest(bytes);
    let p = layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
    d
}

/// Build an image manifest in `layout` from layer directories; returns
/// (manifest digest, manifest size).
pub fn build_image(layout: &Path, layers: &[PathBuf], arch: &str) -> (String, usize) {
    let mut descs = vec![];
    let mut diffs = vec![];
    let mut history = vec![];
    for (i, l) in layers.iter().enumerate() {
        let (gz, diff) = gz_layer(l);
        let d = put_blob(layout, &gz);
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": gz.len()}));
        diffs.push(diff);
        history.push(serde_json::json!({"created": "2023-11-14T22:13:20Z", "created_by": format!("/bin/sh -c #(nop) layer {i}")}));
    }
    history.push(serde_json::json!({"created": "2023-11-14T22:13:20Z", "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]", "empty_layer": true}));
    let config = serde_json::json!({
        "created": "2023-11-14T22:13:20Z", "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diffs}, "history": history,
    });
    let cb = serde_json::to_vec(&config).unwrap();
    let cd = put_blob(layout, &cb);
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cb.len()},
        "layers": descs,
    });
    let mb = serde_json::to_vec(&m).unwrap();
    (put_blob(layout, &mb), mb.len())
}

/// Name a manifest (or index) in the layout's index.json.
pub fn name_in_layout(layout: &Path, tag: &str, media_type: &str, digest: &str, size: usize) {
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let p = layout.join("index.json");
    let mut ix: serde_json::Value = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::json!({"schemaVersion": 2, "manifests": []}));
    ix["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": media_type, "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": tag}}));
    std::fs::write(p, serde_json::to_vec(&ix).unwrap()).unwrap();
}

fn layer_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The test images, in an OCI layout: `single` (busybox-static), `multi` (3 layers:
/// busybox; files, owners, an xattr, links; whiteouts and an opaque dir), `multiarch`
/// (an index: amd64 = multi, arm64 = a one-file image).
pub fn test_layout(work: &Path) -> PathBuf {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.is_file(), "peers tier: /bin/busybox is missing: apt-get install -y busybox-static");
    let layout = work.join("layout");
    let l1 = layer_dir(work, "l1");
    std::fs::create_dir_all(l1.join("bin")).unwrap();
    std::fs::copy(busybox, l1.join("bin/busybox")).unwrap();
    for a in ["sh", "ls", "cat", "nc"] {
        std::os::unix::fs::symlink("busybox", l1.join("bin").join(a)).unwrap();
    }
    let l2 = layer_dir(work, "l2");
    std::fs::create_dir_all(l2.join("etc/conf.d")).unwrap();
    std::fs::create_dir_all(l2.join("home/user")).unwrap();
    std::fs::write(l2.join("etc/conf.d/a"), "a\n").unwrap();
    std::fs::write(l2.join("etc/conf.d/b"), "b\n").unwrap();
    std::fs::write(l2.join("etc/gone"), "to be deleted\n").unwrap();
    std::fs::write(l2.join("home/user/notes"), "mine\n").unwrap();
    std::fs::hard_link(l2.join("home/user/notes"), l2.join("home/user/notes.link")).unwrap();
    run(Command::new("chown").args(["-R", "1000:1000"]).arg(l2.join("home/user")));
    run(Command::new("chmod").args(["4755"]).arg(l2.join("etc/conf.d/a")));
    run(Command::new(need("setfattr", "attr")).args(["-n", "user.contlab", "-v", "yes"]).arg(l2.join("etc/conf.d/b")));
    let l3 = layer_dir(work, "l3");
    std::fs::create_dir_all(l3.join("etc/conf.d")).unwrap();
    std::fs::write(l3.join("etc/.wh.gone"), "").unwrap();
    std::fs::write(l3.join("etc/conf.d/.wh..wh..opq"), "").unwrap();
    std::fs::write(l3.join("etc/conf.d/c"), "c\n").unwrap();
    let (d, n) = build_image(&layout, std::slice::from_ref(&l1), "amd64");
    name_in_layout(&layout, "single", "application/vnd.oci.image.manifest.v1+json", &d, n);
    let (md, mn) = build_image(&layout, &[l1, l2, l3], "amd64");
    name_in_layout(&layout, "multi", "application/vnd.oci.image.manifest.v1+json", &md, mn);
    let la = layer_dir(work, "arm");
    std::fs::write(la.join("ARCH"), "arm64\n").unwrap();
    let (ad, an) = build_image(&layout, &[la], "arm64");
    let ix = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn, "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": ad, "size": an, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
    ]});
    let ib = serde_json::to_vec(&ix).unwrap();
    let id = put_blob(&layout, &ib);
    name_in_layout(&layout, "multiarch", "application/vnd.oci.image.index.v1+json", &id, ib.len());
    layout
}

fn skopeo_push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
    let mut c = Command::new(need("skopeo", "skopeo"));
    c.args(["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    c.arg(format!("oci:{}:{tag}", layout.display())).arg(format!("docker://{dest}"));
    run(&mut c);
}

/// A fixture: a registry with the test images pushed.
struct Fixture {
    reg: LocalRegistry,
    work: tempfile::TempDir,
}

fn fixture(user: Option<(&str, &str)>) -> Fixture {
    let reg = LocalRegistry::start(user);
    let work = harness::tmp();
    let layout = test_layout(work.path());
    let creds = user.map(|(u, p)| format!("{u}:{p}"));
    for t in ["single", "multi", "multiarch"] {
        skopeo_push(&layout, t, &format!("{}/test/{t}:1", reg.host()), creds.as_deref());
    }
    Fixture { reg, work }
}

fn img(root: &Path, home: &Path) -> assert_cmd::Command {
    let mut c = harness::cmd("img-pull");
    c.arg("--root").arg(root).env("DOCKER_CONFIG", home.join(".docker")).env_remove("CONTLAB_DOCKER_HUB_API");
    c
}

fn ok(c: &mut assert_cmd::Command) -> (String, String) {
    let o = c.output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{c:?} failed ({:?})\nstdout:\n{out}\nstderr:\n{err}", o.status);
    (out, err)
}

fn fails(c: &mut assert_cmd::Command) -> String {
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{c:?} should fail with 1\nstdout:{}\nstderr:\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// The whole store, byte for byte: every path under ROOT (tmp/ and the lock file
/// included) with its type, mode and content (a symlink: its target). What a refused
/// command must leave exactly as it was.
fn store_state(root: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                let b = std::fs::read(&p).unwrap();
                format!("{} bytes {}", b.len(), sha256_digest(&b))
            };
            m.insert(p.strip_prefix(root).unwrap().display().to_string(), format!("{:o} {what}", md.mode()));
        }
    }
    m
}

/// What is in ROOT/tmp (downloads in progress, temp files).
fn tmp_names(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// ------------------------------------------------------------------ tree comparison

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: c is a valid C string, buf is writable for its length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let mut out = BTreeMap::new();
    if n <= 0 {
        return out;
    }
    for name in buf[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cn = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 4096];
        // SAFETY: valid strings and a writable buffer.
        let m = unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), v.as_mut_ptr() as *mut libc::c_void, v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// path → (type+mode, uid, gid, link target or content digest, xattrs, nlink>1)
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
                sha256_digest(&std::fs::read(&p).unwrap())
            } else {
                String::new()
            };
            if md.is_dir() {
                stack.push(p.clone());
            }
            let x: Vec<String> = xattrs(&p)
                .into_iter()
                .filter(|(k, _)| k.starts_with("user."))
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
                .collect();
            m.insert(
                p.strip_prefix(root).unwrap().display().to_string(),
                format!(
                    "{:o} {}:{} {what} {x:?} links={}",
                    md.mode(),
                    md.uid(),
                    md.gid(),
                    if md.is_file() { md.nlink() } else { 0 }
                ),
            );
        }
    }
    m
}

fn umoci_rootfs(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let bundle = work.join(format!("umoci-{}", tag.replace(['/', ':'], "_")));
    run(Command::new(need("umoci", "umoci"))
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle));
    bundle.join("rootfs")
}

// ------------------------------------------------------------------ the tests

#[test]
fn pull_unpack_matches_skopeo_and_umoci() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let fx = fixture(None);
    let root = harness::tmp();
    let home = harness::tmp();
    let r = format!("{}/test/multi:1", fx.reg.host());
    let (out, err) = ok(img(root.path(), home.path()).args(["pull", &r]));
    assert!(out.contains("1: Pulling from test/multi"), "{out}");
    assert_eq!(out.matches("Pull complete").count(), 3, "{out}");
    assert!(out.contains("Digest: sha256:") && out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(
        err.contains("GET http://") && err.contains("→ 200") && err.contains("rename("),
        "the trace shows the protocol and the atomic writes:\n{err}"
    );
    // Again: nothing to download.
    let (out2, _) = ok(img(root.path(), home.path()).args(["pull", &r]));
    assert_eq!(out2.matches("Already exists").count(), 3, "{out2}");
    assert!(out2.contains("Status: Image is up to date"), "{out2}");
    // Our flat rootfs equals skopeo copy + umoci unpack of the same image.
    let ours = fx.work.path().join("ours");
    ok(img(root.path(), home.path()).args(["unpack", &r]).arg(&ours));
    let oci = fx.work.path().join("skopeo-oci");
    run(Command::new(need("skopeo", "skopeo"))
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{r}"))
        .arg(format!("oci:{}:multi", oci.display())));
    let theirs = umoci_rootfs(&oci, "multi", fx.work.path());
    let (a, b) = (tree(&ours), tree(&theirs));
    assert!(
        !a.contains_key("etc/gone") && !a.contains_key("etc/conf.d/a") && a.contains_key("etc/conf.d/c"),
        "whiteouts applied: {a:#?}"
    );
    assert_eq!(a, b, "img-pull unpack and umoci unpack differ");
    // umoci reads our store directly too.
    let direct = umoci_rootfs(&root.path().join("oci"), &r.to_string(), fx.work.path());
    assert_eq!(tree(&direct), a);
}

/// HTTPS as Docker Hub serves it: a registry with a certificate for 127.0.0.1, made
/// by openssl. Trusted through --ca-cert, and through the system's roots (rustls-native-certs
/// reads SSL_CERT_FILE, as OpenSSL does); refused when nothing vouches for it.
#[test]
fn https_with_ca_cert_and_system_roots() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let work = harness::tmp();
    // A CA, and the registry's certificate signed by it (webpki, rightly, refuses a
    // CA certificate used as the server's own).
    let w = work.path();
    let ssl = need("openssl", "openssl");
    run(Command::new(&ssl)
        .current_dir(w)
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=contlab test CA", "-keyout", "ca.key", "-out", "ca.pem"]));
    run(Command::new(&ssl)
        .current_dir(w)
        .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1"])
        .args(["-keyout", "key.pem", "-out", "req.csr"]));
    std::fs::write(
        w.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new(&ssl)
        .current_dir(w)
        .args(["x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key"])
        .args(["-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "cert.pem"]));
    let (cert, key) = (w.join("ca.pem"), w.join("key.pem"));
    let reg = LocalRegistry::start_tls(&w.join("cert.pem"), &key);
    let layout = test_layout(work.path());
    skopeo_push(&layout, "single", &format!("{}/test/single:1", reg.host()), None);
    let r = format!("{}/test/single:1", reg.host());
    let home = harness::tmp();

    // --ca-cert: HTTPS end to end, no fallback to plain HTTP.
    let root = harness::tmp();
    let (out, err) = ok(img(root.path(), home.path()).args(["pull", "--ca-cert"]).arg(&cert).arg(&r));
    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    assert!(err.contains("GET https://127.0.0.1:") && !err.contains("GET http://"), "HTTPS only:\n{err}");

    // The system's roots (here SSL_CERT_FILE): the code path of a pull from Docker Hub.
    let root = harness::tmp();
    let (_, err) = ok(img(root.path(), home.path()).env("SSL_CERT_FILE", &cert).args(["pull", &r]));
    assert!(err.contains("GET https://127.0.0.1:") && !err.contains("GET http://"), "HTTPS only:\n{err}");

    // Nothing vouches for the certificate: the TLS handshake fails; the plain-HTTP
    // fallback docker allows for local registries then fails too, and nothing is stored.
    let root = harness::tmp();
    let err = fails(img(root.path(), home.path()).env("SSL_CERT_FILE", "/dev/null").args(["pull", &r]));
    assert!(err.contains("HTTPS failed") && err.contains("UnknownIssuer") && err.contains("--ca-cert"), "{err}");
    assert!(!root.path().join("oci/index.json").exists(), "nothing stored");
    assert!(tmp_names(root.path()).is_empty(), "nothing left in tmp/: {:?}", tmp_names(root.path()));
}

#[test]
fn store_is_an_oci_layout_skopeo_reads() {
    let fx = fixture(None);
    let root = harness::tmp();
    let home = harness::tmp();
    let r = format!("{}/test/single:1", fx.reg.host());
    ok(img(root.path(), home.path()).args(["pull", &r]));
    let js = run(Command::new(need("skopeo", "skopeo"))
        .arg("inspect")
        .arg(format!("oci:{}:{r}", root.path().join("oci").display())));
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    let (ls, _) = ok(img(root.path(), home.path()).arg("ls"));
    // The CREATED column is an age from the wall clock (render::tests pins its
    // wording at a fixed now): here only that it is one.
    let row = ls.lines().find(|l| l.contains("test/single")).unwrap_or_else(|| panic!("{ls}"));
    let age = row.split("   ").map(str::trim).filter(|c| !c.is_empty()).nth(3).unwrap_or_default();
    assert!(ls.starts_with("REPOSITORY") && (age.ends_with(" ago") || age == "N/A"), "CREATED {age:?} in {ls}");
    let (layers, _) = ok(img(root.path(), home.path()).args(["inspect", "--format", "{{json .RootFS.Layers}}", &r]));
    let ours: Vec<String> = serde_json::from_str(layers.trim()).unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{js}");
    let (id, _) = ok(img(root.path(), home.path()).args(["inspect", "--format", "{{.Id}}", &r]));
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{r}", root.path().join("oci").display())));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(id.trim(), m["config"]["digest"].as_str().unwrap(), "the image ID is the config's digest");
    let (h, _) = ok(img(root.path(), home.path()).args(["history", &r]));
    assert!(h.contains("CMD [") && h.contains("<missing>"), "{h}");
    // rm + gc: the store is empty again.
    let (rm, _) = ok(img(root.path(), home.path()).args(["rm", &r]));
    assert!(rm.contains("Untagged:") && rm.contains("Deleted: 3 blob(s)"), "{rm}");
    assert_eq!(std::fs::read_dir(root.path().join("oci/blobs/sha256")).unwrap().count(), 0);
}

#[test]
fn index_picks_the_platform() {
    let fx = fixture(None);
    let home = harness::tmp();
    let r = format!("{}/test/multiarch:1", fx.reg.host());
    let root = harness::tmp();
    let (_, err) = ok(img(root.path(), home.path()).args(["pull", &r]));
    assert!(err.contains("2 platforms; linux/amd64"), "{err}");
    let (arch, _) = ok(img(root.path(), home.path()).args(["inspect", "-f", "{{.Architecture}}", &r]));
    assert_eq!(arch.trim(), "amd64");
    let root2 = harness::tmp();
    ok(img(root2.path(), home.path()).args(["pull", "--platform", "linux/arm64", &r]));
    let (arch, _) = ok(img(root2.path(), home.path()).args(["inspect", "-f", "{{.Architecture}}", &r]));
    assert_eq!(arch.trim(), "arm64");
    let e = fails(img(harness::tmp().path(), home.path()).args(["pull", "--platform", "linux/s390x", &r]));
    assert!(e.contains("no manifest for platform linux/s390x") && e.contains("linux/arm64/v8"), "{e}");
}

#[test]
fn save_load_export_import_round_trip() {
    let fx = fixture(None);
    let root = harness::tmp();
    let home = harness::tmp();
    let r = format!("{}/test/multi:1", fx.reg.host());
    ok(img(root.path(), home.path()).args(["pull", &r]));
    let tar = fx.work.path().join("saved.tar");
    ok(img(root.path(), home.path()).args(["save", &r, "-o"]).arg(&tar));
    // skopeo reads our docker-save archive.
    let js =
        run(Command::new(need("skopeo", "skopeo")).arg("inspect").arg(format!("docker-archive:{}", tar.display())));
    assert!(js.contains("\"Layers\""), "{js}");
    // We load it back into an empty store, with the same image ID.
    let root2 = harness::tmp();
    let (out, _) = ok(img(root2.path(), home.path()).args(["load", "-i"]).arg(&tar));
    assert!(out.contains(&format!("Loaded image: {r}")), "{out}");
    let id = |root: &Path| ok(img(root, home.path()).args(["inspect", "-f", "{{.Id}}", &r])).0;
    assert_eq!(id(root.path()), id(root2.path()), "same config, same image ID");
    // We load skopeo's docker-archive (theirs).
    let theirs = fx.work.path().join("theirs.tar");
    run(Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{r}"))
        .arg(format!("docker-archive:{}:x/y:z", theirs.display())));
    let root3 = harness::tmp();
    let (out, _) = ok(img(root3.path(), home.path()).args(["load", "-i"]).arg(&theirs));
    assert!(out.contains("Loaded image: x/y:z"), "{out}");
    // OCI layout export, read by skopeo; import back.
    let lay = fx.work.path().join("exported");
    ok(img(root.path(), home.path()).args(["export", &r]).arg(&lay));
    run(Command::new("skopeo").arg("inspect").arg(format!("oci:{}:1", lay.display())));
    let root4 = harness::tmp();
    ok(img(root4.path(), home.path()).args(["import", &format!("{}:1", lay.display()), "--tag", "imported:1"]));
    assert_eq!(ok(img(root4.path(), home.path()).args(["inspect", "-f", "{{.Id}}", "imported:1"])).0, id(root.path()));
}

#[test]
fn podman_loads_our_save() {
    let fx = fixture(None);
    let root = harness::tmp();
    let home = harness::tmp();
    let r = format!("{}/test/single:1", fx.reg.host());
    ok(img(root.path(), home.path()).args(["pull", &r]));
    let tar = fx.work.path().join("saved.tar");
    ok(img(root.path(), home.path()).args(["save", &r, "-o"]).arg(&tar));
    need("podman", "podman");
    let pr = harness::tmp();
    let podman = |args: &str| {
        let script = format!(
            "ulimit -n 1024; ulimit -u 1024; exec podman --root {0}/root --runroot {0}/run --storage-driver vfs {args}",
            pr.path().display()
        );
        Command::new("sh").args(["-c", &script]).output().unwrap()
    };
    let load = podman(&format!("load -i {}", tar.display()));
    assert!(load.status.success(), "podman load failed:\n{}", harness::stderr_of(&load));
    // The name must be in what `podman images` lists (its stdout alone), not merely in
    // one of podman's messages.
    let images = podman("images --format '{{.Repository}}:{{.Tag}}'");
    assert!(images.status.success(), "podman images failed:\n{}", harness::stderr_of(&images));
    let listed: Vec<String> = harness::stdout_of(&images).lines().map(str::to_string).collect();
    assert!(listed.contains(&r), "podman images lists {r}: {listed:?}");
}

#[test]
fn basic_auth_login_push_logout() {
    let fx = fixture(Some(("ann", "s3cret")));
    let home = harness::tmp();
    let root = harness::tmp();
    let r = format!("{}/test/multi:1", fx.reg.host());
    let e = fails(img(root.path(), home.path()).args(["pull", &r]));
    assert!(e.contains("wants Basic authentication") && e.contains("img-pull login"), "{e}");
    let e = fails(
        img(root.path(), home.path())
            .args(["login", &fx.reg.host(), "-u", "ann", "--password-stdin"])
            .write_stdin("wrong\n"),
    );
    assert!(e.contains("refused the credentials"), "{e}");
    let (out, _) = ok(img(root.path(), home.path())
        .args(["login", &fx.reg.host(), "-u", "ann", "--password-stdin"])
        .write_stdin("s3cret\n"));
    assert!(out.contains("Login Succeeded"));
    let cfg = std::fs::read_to_string(home.path().join(".docker/config.json")).unwrap();
    assert!(cfg.contains(&fx.reg.host()) && cfg.contains("YW5uOnMzY3JldA=="), "{cfg}");
    ok(img(root.path(), home.path()).args(["pull", &r]));
    // Push: monolithic to a new repository (the layers mount from test/multi).
    let (out, err) = ok(img(root.path(), home.path()).args(["push", &r, &format!("{}/other/copy:2", fx.reg.host())]));
    assert!(out.contains("Mounted from test/multi"), "cross-repository mount:\n{out}\n{err}");
    // Chunked to a third, after renaming it locally (no other repository to mount from).
    let local = harness::tmp();
    let tar = fx.work.path().join("s.tar");
    ok(img(root.path(), home.path()).args(["save", &r, "-o"]).arg(&tar));
    ok(img(local.path(), home.path()).args(["load", "-i"]).arg(&tar));
    let target = format!("{}/chunked/img:3", fx.reg.host());
    ok(img(local.path(), home.path()).args(["tag", &r, &target]));
    ok(img(local.path(), home.path()).args(["rm", &r]));
    let (out, err) = ok(img(local.path(), home.path()).args(["push", &target, "--chunk-size", "65536"]));
    assert!(out.contains(": Pushed") && err.contains("PATCH "), "chunked upload:\n{out}\n{err}");
    assert!(out.contains("3: digest: sha256:"), "{out}");
    let js = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--creds", "ann:s3cret"])
        .arg(format!("docker://{target}")));
    assert!(js.contains("\"Layers\""), "{js}");
    let (out, _) = ok(img(root.path(), home.path()).args(["logout", &fx.reg.host()]));
    assert!(out.contains("Removing login credentials"));
    fails(img(harness::tmp().path(), home.path()).args(["pull", &target]));
}

// ------------------------------------------------------------------ a stand-in for Docker Hub, and hostile servers

#[derive(Clone)]
enum Behave {
    Normal,
    /// Accept, then never answer.
    Stall,
    /// Send the headers and `n` bytes, then close; later requests are served.
    TruncateOnce(usize),
    /// Like TruncateOnce, but what comes after (the Range request) is corrupt.
    TruncateThenCorrupt(usize),
    /// Every answer (a Range one too) sends its headers and `n` bytes, then closes:
    /// a connection that keeps breaking.
    Cut(usize),
    /// Announce and send this many extra bytes.
    Longer,
    /// Redirect here.
    Redirect(String),
}

#[derive(Clone)]
struct Route {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    behave: Behave,
}

#[derive(Default)]
struct HubState {
    routes: HashMap<String, Route>,
    /// Require Bearer tokens (Docker Hub's flow) and these Basic credentials at /token.
    token: bool,
    creds: Option<String>,
    log: Vec<String>,
    hits: HashMap<String, usize>,
    auth_at_cdn: bool,
    cdn: String,
}

struct Hub {
    port: u16,
    state: Arc<Mutex<HubState>>,
}

fn respond(s: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut h = format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    let _ = s.write_all(h.as_bytes());
    let _ = s.write_all(body);
}

impl Hub {
    fn start(token: bool, creds: Option<&str>) -> Hub {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HubState { token, creds: creds.map(str::to_string), ..Default::default() }));
        // Blob storage answers on another loopback address, as Docker Hub's CDN is
        // another host: the client must not send the registry's token there.
        let cdn = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback)");
        let cdn_port = cdn.local_addr().unwrap().port();
        state.lock().unwrap().cdn = format!("127.0.0.2:{cdn_port}");
        for l in [l, cdn] {
            let st = state.clone();
            std::thread::spawn(move || {
                for c in l.incoming().flatten() {
                    let st = st.clone();
                    std::thread::spawn(move || serve(c, port, st));
                }
            });
        }
        Hub { port, state }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn route(&self, path: &str, r: Route) {
        self.state.lock().unwrap().routes.insert(path.to_string(), r);
    }

    /// Serve every image of an OCI layout under `name` (tags = ref names).
    fn serve_layout(&self, layout: &Path, name: &str) {
        for e in std::fs::read_dir(layout.join("blobs/sha256")).unwrap().flatten() {
            let body = std::fs::read(e.path()).unwrap();
            let d = format!("sha256:{}", e.file_name().to_string_lossy());
            let mt = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string));
            if let Some(mt) = mt.filter(|m| m.contains("manifest") || m.contains("index")) {
                self.route(
                    &format!("/v2/{name}/manifests/{d}"),
                    Route { status: 200, content_type: mt, body: body.clone(), behave: Behave::Normal },
                );
            }
            self.route(
                &format!("/v2/{name}/blobs/{d}"),
                Route { status: 200, content_type: "application/octet-stream".into(), body, behave: Behave::Normal },
            );
        }
        let ix: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        for m in ix["manifests"].as_array().unwrap() {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap();
            let d = m["digest"].as_str().unwrap();
            let r = self.state.lock().unwrap().routes[&format!("/v2/{name}/manifests/{d}")].clone();
            self.route(&format!("/v2/{name}/manifests/{tag}"), r);
        }
    }

    fn blob_path(&self, name: &str, layout: &Path, tag: &str, layer: usize) -> String {
        let ix: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let d = ix["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap(),
        )
        .unwrap();
        format!("/v2/{name}/blobs/{}", m["layers"][layer]["digest"].as_str().unwrap())
    }

    fn set(&self, path: &str, f: impl FnOnce(&mut Route)) {
        let mut st = self.state.lock().unwrap();
        f(st.routes.get_mut(path).unwrap_or_else(|| panic!("no route {path}")));
    }
}

fn serve(mut c: TcpStream, port: u16, st: Arc<Mutex<HubState>>) {
    let mut first = [0u8; 1];
    if c.peek(&mut first).is_err() || first[0] == 0x16 {
        return; // a TLS ClientHello: this server speaks plain HTTP only
    }
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let (path, query) =
        target.split_once('?').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or((target.clone(), String::new()));
    let auth = headers.get("authorization").cloned().unwrap_or_default();
    let mut s = st.lock().unwrap();
    s.log.push(format!(
        "{method} {target} auth={}",
        if auth.is_empty() { "-" } else { &auth[..auth.find(' ').unwrap_or(0)] }
    ));
    *s.hits.entry(path.clone()).or_default() += 1;
    let hits = s.hits[&path];
    let realm = format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"registry.docker.io\"");
    if path == "/token" {
        if let Some(want) = &s.creds {
            use base64_free::encode;
            if auth != format!("Basic {}", encode(want.as_bytes())) && !auth.is_empty() {
                drop(s);
                return respond(&mut c, 401, &[], br#"{"details":"incorrect username or password"}"#);
            }
        }
        let scope = query.split('&').filter_map(|kv| kv.strip_prefix("scope=")).collect::<Vec<_>>().join(" ");
        let body =
            serde_json::to_vec(&serde_json::json!({"token": format!("tok:{scope}"), "expires_in": 300})).unwrap();
        drop(s);
        return respond(&mut c, 200, &[("Content-Type", "application/json".into())], &body);
    }
    if path.starts_with("/cdn/") {
        if !auth.is_empty() {
            s.auth_at_cdn = true;
        }
        let real = path.replacen("/cdn", "", 1);
        let route = s.routes.get(&real).cloned();
        drop(s);
        return send_route(&mut c, route, &headers, hits);
    }
    if s.token && !auth.starts_with("Bearer tok:") {
        let name = path
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .unwrap_or("")
            .split("/blobs/")
            .next()
            .unwrap_or("")
            .to_string();
        let ch = if path == "/v2/" { realm } else { format!("{realm},scope=\"repository:{name}:pull\"") };
        drop(s);
        return respond(
            &mut c,
            401,
            &[("WWW-Authenticate", ch), ("Content-Type", "application/json".into())],
            br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#,
        );
    }
    if path == "/v2/" {
        drop(s);
        return respond(&mut c, 200, &[], b"{}");
    }
    let route = s.routes.get(&path).cloned();
    let token = s.token;
    let cdn = s.cdn.clone();
    drop(s);
    // Docker Hub sends blobs to its CDN with a 307.
    if token && path.contains("/blobs/") && method == "GET" {
        return respond(&mut c, 307, &[("Location", format!("http://{cdn}/cdn{path}"))], b"");
    }
    send_route(&mut c, route, &headers, hits)
}

fn send_route(c: &mut TcpStream, route: Option<Route>, headers: &HashMap<String, String>, hits: usize) {
    let Some(r) = route else {
        return respond(
            c,
            404,
            &[("Content-Type", "application/json".into())],
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#,
        );
    };
    let ct = ("Content-Type", r.content_type.clone());
    let range = headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok());
    match r.behave {
        Behave::Stall => std::thread::sleep(Duration::from_secs(30)),
        Behave::Redirect(to) => respond(c, 302, &[("Location", to)], b""),
        Behave::Longer => {
            let mut b = r.body.clone();
            b.extend_from_slice(b"EXTRA BYTES");
            respond(c, r.status, &[ct], &b)
        }
        Behave::Cut(n) => {
            let (status, part, cr) = match range {
                Some(start) if start < r.body.len() => {
                    (206, &r.body[start..], Some(format!("bytes {start}-{}/{}", r.body.len() - 1, r.body.len())))
                }
                _ => (200, &r.body[..], None),
            };
            let mut h = format!(
                "HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {}\r\n",
                part.len(),
                r.content_type
            );
            if let Some(cr) = cr {
                h.push_str(&format!("Content-Range: {cr}\r\n"));
            }
            h.push_str("\r\n");
            let _ = c.write_all(h.as_bytes());
            let _ = c.write_all(&part[..n.min(part.len())]);
        }
        Behave::TruncateOnce(n) | Behave::TruncateThenCorrupt(n) if hits == 1 => {
            let h = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: {}\r\n\r\n",
                r.body.len(),
                r.content_type
            );
            let _ = c.write_all(h.as_bytes());
            let _ = c.write_all(&r.body[..n]);
        }
        b => match range {
            Some(start) if start < r.body.len() => {
                let mut part = r.body[start..].to_vec();
                if matches!(b, Behave::TruncateThenCorrupt(_)) {
                    part[0] ^= 0xff;
                }
                let cr = ("Content-Range", format!("bytes {start}-{}/{}", r.body.len() - 1, r.body.len()));
                respond(c, 206, &[ct, cr], &part)
            }
            _ => respond(c, r.status, &[ct], &r.body),
        },
    }
}

/// base64 for the test server (the tests crate has no base64 dependency).
mod base64_free {
    pub fn encode(b: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for ch in b.chunks(3) {
            let n = (ch[0] as u32) << 16 | (*ch.get(1).unwrap_or(&0) as u32) << 8 | *ch.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= ch.len() {
                    s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}

fn hub_with_images(token: bool, creds: Option<&str>) -> (Hub, tempfile::TempDir, PathBuf) {
    let work = harness::tmp();
    let layout = test_layout(work.path());
    let hub = Hub::start(token, creds);
    hub.serve_layout(&layout, "library/busybox");
    (hub, work, layout)
}

#[test]
fn docker_hub_token_flow() {
    let (hub, _work, _layout) = hub_with_images(true, Some("ann:pw"));
    let home = harness::tmp();
    let root = harness::tmp();
    // `busybox:multi` is docker.io/library/busybox:multi, whose API is (here) the stand-in.
    let (out, err) =
        ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:multi"]));
    assert!(
        out.contains("multi: Pulling from library/busybox")
            && out.contains("Status: Downloaded newer image for busybox:multi"),
        "{out}"
    );
    assert!(
        err.contains("Bearer token from realm http://127.0.0.1")
            && err.contains("scope=repository%3Alibrary%2Fbusybox%3Apull"),
        "{err}"
    );
    assert!(err.contains("redirected to another host") || err.contains("/cdn/"), "{err}");
    let st = hub.state.lock().unwrap();
    assert!(!st.auth_at_cdn, "the Authorization header must not follow a redirect to blob storage");
    assert!(
        st.log.iter().any(|l| l.starts_with("GET /token") && l.ends_with("auth=-")),
        "anonymous token: {:?}",
        st.log
    );
    drop(st);
    // With credentials (wrong, then right).
    let e = fails(img(harness::tmp().path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args([
        "pull",
        "--creds",
        "ann:bad",
        "busybox:single",
    ]));
    assert!(e.contains("refused the credentials of \"ann\""), "{e}");
    ok(img(harness::tmp().path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args([
        "pull",
        "--creds",
        "ann:pw",
        "docker.io/library/busybox:single",
    ]));
    assert!(hub.state.lock().unwrap().log.iter().any(|l| l.starts_with("GET /token") && l.ends_with("auth=Basic")));
}

/// An image sharing no layer with `busybox:multi`: in a store before a pull of
/// multi, every layer of multi is downloaded.
const UNRELATED: [&str; 3] = ["--platform", "linux/arm64", "busybox:multiarch"];

/// Run a pull against a hostile hub; it must fail with `want` in the message and
/// leave a store (holding one image already) unchanged, byte for byte, tmp/ included.
fn hostile(setup: impl FnOnce(&Hub, &Path), r: &str, extra: &[&str], want: &str) {
    let (hub, _work, layout) = hub_with_images(false, None);
    let home = harness::tmp();
    let root = harness::tmp();
    ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).arg("pull").args(UNRELATED));
    setup(&hub, &layout);
    let before = store_state(root.path());
    let e = fails(
        img(root.path(), home.path())
            .env("CONTLAB_DOCKER_HUB_API", hub.host())
            .args(["pull", "--timeout", "2"])
            .args(extra)
            .arg(r),
    );
    assert!(e.contains(want), "expected {want:?} in:\n{e}");
    assert_eq!(before, store_state(root.path()), "the store changed after a refused pull");
}

#[test]
fn hostile_digest_mismatch() {
    hostile(
        |h, l| h.set(&h.blob_path("library/busybox", l, "multi", 1), |r| r.body[100] ^= 1),
        "busybox:multi",
        &[],
        "digest mismatch",
    );
}

#[test]
fn hostile_size_lie() {
    hostile(
        |h, l| h.set(&h.blob_path("library/busybox", l, "multi", 2), |r| r.behave = Behave::Longer),
        "busybox:multi",
        &[],
        "size mismatch",
    );
}

#[test]
fn hostile_manifest_too_large() {
    hostile(
        |h, _| {
            h.set("/v2/library/busybox/manifests/multi", |r| {
                r.body = [b"{\"a\":\"".to_vec(), vec![b'x'; 5 << 20], b"\"}".to_vec()].concat()
            })
        },
        "busybox:multi",
        &[],
        "more than the 4194304 allowed",
    );
}

#[test]
fn hostile_wrong_media_type() {
    hostile(
        |h, _| {
            h.set("/v2/library/busybox/manifests/multi", |r| {
                r.content_type = "application/vnd.docker.distribution.manifest.list.v2+json".into()
            })
        },
        "busybox:multi",
        &[],
        "but was served as",
    );
}

#[test]
fn hostile_redirect_loop() {
    hostile(
        |h, l| {
            let p = h.blob_path("library/busybox", l, "multi", 1);
            let url = format!("http://{}{p}", h.host());
            h.set(&p, |r| r.behave = Behave::Redirect(url));
        },
        "busybox:multi",
        &[],
        "redirect loop",
    );
}

#[test]
fn hostile_stalled_server_times_out() {
    hostile(
        |h, _| h.set("/v2/library/busybox/manifests/multi", |r| r.behave = Behave::Stall),
        "busybox:multi",
        &[],
        "timed out",
    );
}

#[test]
fn hostile_corrupt_resume_is_refused() {
    hostile(
        |h, l| {
            h.set(&h.blob_path("library/busybox", l, "multi", 0), |r| r.behave = Behave::TruncateThenCorrupt(100_000))
        },
        "busybox:multi",
        &[],
        "digest mismatch",
    );
}

#[test]
fn truncated_blob_resumes_with_range() {
    let (hub, _work, layout) = hub_with_images(false, None);
    let p = hub.blob_path("library/busybox", &layout, "multi", 0);
    hub.set(&p, |r| r.behave = Behave::TruncateOnce(100_000));
    let home = harness::tmp();
    let root = harness::tmp();
    let (_, err) =
        ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:multi"]));
    assert!(err.contains("resuming") && err.contains("at byte 100000"), "{err}");
    assert!(hub.state.lock().unwrap().hits[&p] >= 2);
}

/// An interrupted pull (the connection keeps breaking) is not a refusal: what arrived
/// stays in tmp/HEX.partial, the pull says so, and the next pull resumes it with Range
/// and leaves tmp/ empty; `img-pull rm` removes what an interrupted pull kept.
#[test]
fn interrupted_pull_keeps_its_partial_and_the_next_resumes() {
    let (hub, _work, layout) = hub_with_images(false, None);
    let home = harness::tmp();
    let root = harness::tmp();
    let pull = |r: &[&str]| {
        let mut c = img(root.path(), home.path());
        c.env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "--jobs", "1"]).args(r);
        c
    };
    ok(&mut pull(&UNRELATED));
    let p = hub.blob_path("library/busybox", &layout, "multi", 0);
    hub.set(&p, |r| r.behave = Behave::Cut(50_000));
    let before = store_state(root.path());
    let e = fails(&mut pull(&["busybox:multi"]));
    assert!(e.contains("downloads resume"), "{e}");
    assert!(e.contains("kept 1 partial download(s) for the next pull to resume"), "{e}");
    let hex = p.rsplit("sha256:").next().unwrap().to_string();
    assert_eq!(tmp_names(root.path()), vec![format!("{hex}.partial")], "only the interrupted download stays");
    let kept = std::fs::metadata(root.path().join("tmp").join(format!("{hex}.partial"))).unwrap().len();
    assert_eq!(kept, 4 * 50_000, "what arrived in the 4 attempts is kept");
    let after = store_state(root.path());
    let changed: Vec<_> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(changed, vec![&format!("tmp/{hex}.partial")], "nothing else changed");
    // The next pull resumes it.
    hub.set(&p, |r| r.behave = Behave::Normal);
    let (out, err) = ok(&mut pull(&["busybox:multi"]));
    assert!(err.contains(&format!("at byte {kept}")), "resumed:\n{err}");
    assert!(out.contains("Status: Downloaded newer image for busybox:multi"), "{out}");
    assert!(tmp_names(root.path()).is_empty(), "{:?}", tmp_names(root.path()));
    // What an interrupted pull keeps, `rm` removes.
    hub.set(&p, |r| r.behave = Behave::Cut(50_000));
    let other = harness::tmp();
    let again = |root: &Path| {
        let mut c = img(root, home.path());
        c.env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "--jobs", "1", "busybox:multi"]);
        c
    };
    ok(img(other.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).arg("pull").args(UNRELATED));
    fails(&mut again(other.path()));
    assert!(!tmp_names(other.path()).is_empty());
    ok(img(other.path(), home.path()).args(["rm", "busybox:multiarch"]));
    assert!(
        tmp_names(other.path()).is_empty(),
        "rm removes what interrupted pulls left: {:?}",
        tmp_names(other.path())
    );
}

/// `img-pull pull` killed (SIGKILL) at each stage that touches the store: before it
/// opens its partial downloads, before it publishes the first blob, before it
/// replaces index.json. The image is never half there (index.json is the old one),
/// what remains is only in tmp/ (or index.json.tmp), and running the same pull again
/// completes it and leaves nothing behind.
#[test]
fn a_killed_pull_is_completed_by_the_next() {
    let (hub, _work, _layout) = hub_with_images(false, None);
    let home = harness::tmp();
    // openat #2: the lock is #1 in a store that exists; then the partial downloads.
    for (call, nth) in [("openat", 2), ("rename", 1), ("rename", 3), ("fsync", 1)] {
        let root = harness::tmp();
        let mut first = img(root.path(), home.path());
        ok(first.env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:single"]));
        let index = std::fs::read(root.path().join("oci/index.json")).unwrap();
        let mut c = Command::new(harness::bin_path("img-pull"));
        c.arg("--root").arg(root.path()).env("DOCKER_CONFIG", home.path().join(".docker"));
        c.env("CONTLAB_DOCKER_HUB_API", hub.host()).env("NO_COLOR", "1").args(["pull", "busybox:multi"]);
        let killed = harness::kill9(harness::stopped_at(c, call, nth));
        assert!(!killed.status.success(), "{call} #{nth}: killed");
        assert_eq!(std::fs::read(root.path().join("oci/index.json")).unwrap(), index, "{call} #{nth}: the old index");
        let (ls, _) = ok(img(root.path(), home.path()).args(["ls"]));
        assert!(!ls.contains("multi"), "{call} #{nth}: the image is not there half-made:\n{ls}");
        // The documented clean-up: run the same pull again.
        let (out, _) =
            ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:multi"]));
        assert!(out.contains("Status: Downloaded newer image for busybox:multi"), "{call} #{nth}: {out}");
        assert!(tmp_names(root.path()).is_empty(), "{call} #{nth}: tmp/ holds {:?}", tmp_names(root.path()));
        assert!(!root.path().join("oci/index.json.tmp").exists(), "{call} #{nth}");
        let (layers, _) =
            ok(img(root.path(), home.path()).args(["inspect", "-f", "{{json .RootFS.Layers}}", "busybox:multi"]));
        assert_eq!(serde_json::from_str::<Vec<String>>(layers.trim()).unwrap().len(), 3, "{call} #{nth}");
    }
}

/// `img-pull unpack --layers` killed while it extracts a layer: the layer is not in
/// the store under its diff_id, only as layers/.HEX.partial, which the next unpack
/// removes before it extracts the layer again, and `rm` removes too.
#[test]
fn a_killed_unpack_leaves_only_a_partial_layer_that_the_next_run_removes() {
    if !harness::require(harness::Tier::Root) {
        return;
    }
    let (hub, _work, _layout) = hub_with_images(false, None);
    let home = harness::tmp();
    let root = harness::tmp();
    ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:multi"]));
    let links = harness::tmp();
    let mut c = Command::new(harness::bin_path("img-pull"));
    c.arg("--root").arg(root.path()).env("NO_COLOR", "1").args(["unpack", "--layers", "busybox:multi"]);
    c.arg(links.path().join("l"));
    // symlinkat #3: inside the first layer (busybox and its applets).
    harness::kill9(harness::stopped_at(c, "symlinkat", 3));
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(d).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    };
    let layers = root.path().join("layers");
    let left = names(&layers);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with('.') && left[0].ends_with(".partial"), "only a partial layer: {left:?}");
    let (lower, _) =
        ok(img(root.path(), home.path()).args(["unpack", "--layers", "busybox:multi"]).arg(links.path().join("l")));
    assert_eq!(lower.trim().split(':').count(), 3, "{lower}");
    let now = names(&layers);
    assert!(now.len() == 3 && now.iter().all(|n| !n.starts_with('.')), "the next run removed it: {now:?}");
    // And rm (its garbage collection) removes a partial layer too.
    let root2 = harness::tmp();
    ok(img(root2.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:single"]));
    let mut c = Command::new(harness::bin_path("img-pull"));
    c.arg("--root").arg(root2.path()).env("NO_COLOR", "1").args(["unpack", "--layers", "busybox:single"]);
    c.arg(links.path().join("s"));
    harness::kill9(harness::stopped_at(c, "symlinkat", 3));
    let layers2 = root2.path().join("layers");
    assert!(names(&layers2).iter().any(|n| n.ends_with(".partial")), "{:?}", names(&layers2));
    ok(img(root2.path(), home.path()).args(["rm", "busybox:single"]));
    assert!(names(&layers2).is_empty(), "{:?}", names(&layers2));
}

#[test]
fn hostile_path_traversal_layer_is_refused() {
    // A layer whose tar names ../escape: the pull stores it (blobs are opaque), the
    // unpack refuses it and writes nothing outside DIR.
    let work = harness::tmp();
    let layout = work.path().join("evil");
    let tarball = work.path().join("evil.tar");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("escape"), "pwned\n").unwrap();
    run(Command::new(need("tar", "tar"))
        .arg("-C")
        .arg(src.join("a"))
        .args(["-cf"])
        .arg(&tarball)
        .args(["-P", "../escape"]));
    let raw = std::fs::read(&tarball).unwrap();
    let diff = sha256_digest(&raw);
    let d = put_blob(&layout, &raw);
    let cfg = serde_json::to_vec(
        &serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}}),
    )
    .unwrap();
    let cd = put_blob(&layout, &cfg);
    let m = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": raw.len()}]}),
    )
    .unwrap();
    let md = put_blob(&layout, &m);
    name_in_layout(&layout, "evil", "application/vnd.oci.image.manifest.v1+json", &md, m.len());
    let hub = Hub::start(false, None);
    hub.serve_layout(&layout, "library/evil");
    let home = harness::tmp();
    let root = harness::tmp();
    ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "evil:evil"]));
    let dest = work.path().join("out/rootfs");
    std::fs::create_dir_all(work.path().join("out")).unwrap();
    let before = store_state(root.path());
    let e = fails(img(root.path(), home.path()).args(["unpack", "evil:evil"]).arg(&dest));
    assert!(!work.path().join("out/escape").exists(), "a layer wrote outside the root: {e}");
    assert!(e.contains("refusing layer entry \"../escape\"") && e.contains("`..` component"), "{e}");
    let left: Vec<_> = std::fs::read_dir(work.path().join("out")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a refused unpack leaves nothing beside it: {left:?}");
    assert_eq!(before, store_state(root.path()), "the store is as it was");
}

#[test]
fn dry_run_rm_shows_the_plan() {
    let (hub, _work, _layout) = hub_with_images(false, None);
    let home = harness::tmp();
    let root = harness::tmp();
    ok(img(root.path(), home.path()).env("CONTLAB_DOCKER_HUB_API", hub.host()).args(["pull", "busybox:single"]));
    let before = store_state(root.path());
    let o = img(root.path(), home.path()).args(["--dry-run", "rm", "busybox:single"]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(before, store_state(root.path()), "a dry run changes nothing");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let mut s = harness::snapshot_settings();
    s.add_filter(r"[0-9a-f]{64}", "[HEX]");
    s.bind(|| insta::assert_snapshot!("img_pull_dry_run_rm", err));
}

#[test]
fn usage_errors_exit_2() {
    let home = harness::tmp();
    let root = harness::tmp();
    let o = img(root.path(), home.path()).args(["pull", "team/UPPER"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be lowercase"));
    let e = fails(img(root.path(), home.path()).args(["inspect", "nothere"]));
    assert!(e.contains("no image \"nothere\"") && e.contains("img-pull ls"), "{e}");
}

/// Fuzz-style property tests of the reference and manifest parsers: random and
/// mutated inputs for a bounded time (CONTLAB_FUZZ_SECS, default 3 s); the parsers
/// must never panic, and what they accept must be well-formed.
mod fuzz {
    use contlab::image::manifest;
    use contlab::image::reference::Reference;
    use std::time::{Duration, Instant};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn budget() -> Duration {
        Duration::from_secs(std::env::var("CONTLAB_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3))
    }

    fn mutate(r: &mut Rng, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        for _ in 0..=r.below(4) {
            match r.below(4) {
                0 if !v.is_empty() => {
                    let i = r.below(v.len());
                    v[i] = alphabet[r.below(alphabet.len())];
                }
                1 => {
                    let i = r.below(v.len() + 1);
                    v.insert(i, alphabet[r.below(alphabet.len())]);
                }
                2 if !v.is_empty() => {
                    let i = r.below(v.len());
                    v.remove(i);
                }
                _ => {
                    let i = r.below(v.len() + 1);
                    let j = r.below(v.len() + 1);
                    let (a, b) = (i.min(j), i.max(j));
                    let dup = v[a..b].to_vec();
                    v.splice(a..a, dup);
                }
            }
        }
        v
    }

    #[test]
    fn references_never_panic_and_round_trip() {
        let seeds: &[&str] = &[
            "alpine",
            "alpine:3.17",
            "library/alpine",
            "docker.io/library/alpine",
            "localhost:5000/x/y:tag",
            "quay.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/a__b/c--d",
        ];
        let alphabet = b"abcAZ09.:/@_-[]sha256:ef ";
        let mut r = Rng(0x9e3779b97f4a7c15);
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < budget() {
            let pick = r.below(seeds.len());
            let s = mutate(&mut r, seeds[pick].as_bytes(), alphabet);
            let s = String::from_utf8_lossy(&s).into_owned();
            if let Ok(p) = Reference::parse(&s) {
                // Normalising twice gives the same thing (docker's invariant).
                let again =
                    Reference::parse(&p.to_string()).unwrap_or_else(|e| panic!("{s:?} → {p} does not re-parse: {e}"));
                assert_eq!(again, p, "{s:?}");
                assert!(p.path.bytes().all(|b| !b.is_ascii_uppercase()));
            }
            n += 1;
        }
        assert!(n > 1000, "only {n} cases in the time budget");
    }

    #[test]
    fn manifests_never_panic() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let seeds = [
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[{{"mediaType":"{}","digest":"{d}","size":2}}]}}"#,
                manifest::OCI_MANIFEST,
                manifest::OCI_LAYER_GZIP
            ),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{d}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
                manifest::OCI_INDEX,
                manifest::OCI_MANIFEST
            ),
        ];
        let alphabet = br#"{}[]":,0123456789abcdefsha:/.- schemaVersionmediaTypelayers"#;
        let types = [
            manifest::OCI_MANIFEST,
            manifest::OCI_INDEX,
            manifest::DOCKER_MANIFEST,
            manifest::DOCKER_LIST,
            "application/json",
            "",
        ];
        let mut r = Rng(0x2545f4914f6cdd1d);
        let t = Instant::now();
        let mut accepted = 0;
        while t.elapsed() < budget() {
            let pick = r.below(seeds.len());
            let s = mutate(&mut r, seeds[pick].as_bytes(), alphabet);
            if let Ok((_, doc)) = manifest::parse(&s, types[r.below(types.len())]) {
                accepted += 1;
                let digests: Vec<String> = match doc {
                    manifest::Document::Image(m) => {
                        std::iter::once(m.config.digest).chain(m.layers.into_iter().map(|l| l.digest)).collect()
                    }
                    manifest::Document::Index(ix) => ix.manifests.into_iter().map(|m| m.digest).collect(),
                };
                for d in digests {
                    assert!(
                        d.len() == 71 && !d.contains('/') && !d.contains(".."),
                        "an accepted manifest holds a digest unsafe as a path: {d}"
                    );
                }
            }
        }
        assert!(accepted > 0, "the seeds themselves must parse");
    }
}
