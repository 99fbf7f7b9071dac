//! # Images: what `img-pull` does, and what `docker pull` does behind the daemon
//!
//! An image is not a file. It is a small graph of *content-addressed* blobs: each is
//! named by the sha256 of its bytes, so a name can never point at other content, and
//! two images that share a layer share its blob.
//!
//! ```text
//! index (optional)  ──►  manifest (one platform)  ──►  config   (JSON: env, cmd, rootfs.diff_ids, history)
//!  linux/amd64           sha256:…                 └─►  layer 1  (tar.gz: the files of the first step)
//!  linux/arm64 …                                  └─►  layer 2  (tar.gz: what the next step changed)
//! ```
//!
//! The **image ID** docker shows is the digest of the config, which lists the digests
//! of the *uncompressed* layers (`diff_ids`, `docker inspect --format '{{json
//! .RootFS.Layers}}'`). So, to the course's question "is the image ID the same for
//! your classmates?": yes — the same bytes give the same sha256 on every machine.
//!
//! ## Pulling, request by request
//!
//! `img-pull pull alpine:3.17`:
//!
//! 1. The reference is normalised as docker does: `docker.io/library/alpine:3.17`
//!    (see [`reference`]). Docker Hub's API answers at `registry-1.docker.io`.
//! 2. `GET /v2/` — the *ping*. `401` with `WWW-Authenticate: Bearer realm=…,service=…`
//!    says where to get a token; `Basic` asks for a password on every request
//!    (see [`auth`]).
//! 3. `GET https://auth.docker.io/token?service=registry.docker.io&scope=repository:library/alpine:pull`
//!    — anonymously, or with the credentials of `img-pull login`.
//! 4. `GET /v2/library/alpine/manifests/3.17` with `Accept:` the four manifest types.
//!    A multi-platform image answers with an *index*; we choose this machine's
//!    platform (or `--platform`) and fetch that manifest by digest.
//! 5. `GET /v2/library/alpine/blobs/sha256:…` for the config, then for each layer,
//!    up to `--jobs` at once. Docker Hub redirects (307) to a CDN; the Authorization
//!    header is not sent there. Each layer streams to `tmp/HEX.partial` while its
//!    size is counted and its sha256 computed, and a thread beside the download
//!    decompresses the same bytes and hashes them: at the end the sha256 must be
//!    the digest, and the decompressed sha256 the config's diff_id, or nothing is
//!    kept. An interrupted download resumes with `Range: bytes=N-` (this run or the
//!    next).
//! 6. The verified blobs are `rename(2)`d into `blobs/sha256/`, then index.json
//!    gets the name, by write + `fsync(2)` + `rename(2)`; all under `flock(2)`.
//!
//! Each HTTP request is a note in the trace (`GET https://… → 200`), beside the file
//! system calls: the protocol becomes visible.
//!
//! ## The store is an OCI image layout
//!
//! `ROOT/oci` (ROOT = `/var/lib/contlab`, `$CONTLAB_ROOT` or `--root`) is a standard
//! OCI layout: `skopeo inspect oci:ROOT/oci:docker.io/library/alpine:3.17` and
//! `umoci unpack --image ROOT/oci:…` read it. See [`store`].
//!
//! ## From layers to a root file system
//!
//! `img-pull unpack REF DIR` applies each layer in order with [`crate::layer::apply`]
//! (while other threads decompress the next bytes and hash them for the diff_id check,
//! see [`pipe`]):
//! a file in an upper layer replaces the one below, and a *whiteout* `.wh.NAME`
//! deletes it (`.wh..wh..opq`: everything below in that directory). With
//! `--layers`, each layer is extracted on its own, whiteouts kept as overlayfs wants
//! them (0/0 character devices, the `trusted.overlay.opaque` xattr), ready for
//! `ovl-mount`: this is what docker's overlay2 driver keeps under
//! /var/lib/docker/overlay2.
//!
//! ## What goes wrong
//!
//! - `manifest unknown`: wrong tag; `denied`/401: private repository, log in.
//! - `x509: certificate signed by unknown authority` (here: "not trusted"): pass the
//!   registry's CA with `--ca-cert`. Plain HTTP is only tried for localhost or
//!   `--insecure`, as docker does.
//! - A digest or size that does not match: the registry (or something in between)
//!   served other bytes; they are discarded and the store is left as it was.

pub mod archive;
pub mod auth;
pub mod manifest;
pub mod pipe;
pub mod reference;
pub mod registry;
pub mod store;

use std::collections::VecDeque;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sha2::Digest as _;

use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Kernel, Mode};
use manifest::{Descriptor, Document, Platform};
use reference::Reference;
use registry::{short, Registry};
use store::{Image, LayerInfo, Store};

/// Pull images from registries into an OCI store, look at them, unpack, save, push.
///
/// Every request made of the kernel is printed on stderr, strace-style, and every
/// HTTP request as a note beside them.
#[derive(Parser, Debug)]
#[command(name = "img-pull", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
    /// The store's directory (an OCI layout lives in ROOT/oci).
    #[arg(long, global = true, value_name = "DIR", env = "CONTLAB_ROOT", default_value = "/var/lib/contlab")]
    pub root: PathBuf,
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// How to reach registries (pull, push, login).
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Allow plain HTTP for this registry (always allowed for localhost).
    #[arg(long)]
    pub insecure: bool,
    /// Trust this CA certificate (PEM) besides the system's.
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// Credentials USER:PASSWORD (default: ~/.docker/config.json).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Seconds without data before a connection is given up.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

impl NetArgs {
    fn options(&self) -> Result<registry::Options> {
        let creds = match &self.creds {
            Some(c) => Some(auth::Credentials::parse(c).map_err(Error::Usage)?),
            None => None,
        };
        Ok(registry::Options {
            insecure: self.insecure,
            ca_cert: self.ca_cert.clone(),
            creds,
            timeout: Duration::from_secs(self.timeout.max(1)),
        })
    }
}

/// The subcommands, named after docker's.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Download an image (docker pull).
    Pull {
        /// `alpine`, `alpine:3.17`, `localhost:5000/x/y:tag`, `name@sha256:…`.
        reference: String,
        /// The platform to choose in a multi-platform image (default: this machine's).
        #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
        platform: Option<String>,
        /// Layers downloaded at once.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=64))]
        jobs: u32,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// List the images (docker images).
    #[command(alias = "images")]
    Ls {
        /// Show the registry digest too.
        #[arg(long)]
        digests: bool,
        /// Only the image IDs (what `docker images -q` prints; `-q` is every contlab
        /// tool's "no trace").
        #[arg(long)]
        ids: bool,
    },
    /// Show an image's details as JSON (docker inspect).
    Inspect {
        /// The image (reference or ID).
        image: String,
        /// One field, Go-template style: `{{json .RootFS.Layers}}`, `{{.Id}}`.
        #[arg(short, long)]
        format: Option<String>,
        /// Print the raw manifest instead (`manifest`), or the raw config (`config`).
        #[arg(long, value_parser = ["manifest", "config"])]
        raw: Option<String>,
    },
    /// Show an image's build steps (docker history).
    History {
        /// The image.
        image: String,
        /// Do not cut long CREATED BY lines.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Remove an image's name, then every blob nothing refers to (docker rmi).
    #[command(alias = "rmi")]
    Rm {
        /// The images.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Apply an image's layers into a directory: a root file system.
    Unpack {
        /// The image.
        image: String,
        /// Where (created if missing; must be empty).
        dir: PathBuf,
        /// Instead: extract each layer on its own in the store (cached by diff_id),
        /// overlay whiteouts kept, link them as DIR/0, DIR/1… and print the overlayfs
        /// lowerdir= value on stdout.
        #[arg(long)]
        layers: bool,
    },
    /// Write images to a tar file in `docker save` format.
    Save {
        /// The images.
        #[arg(required = true)]
        images: Vec<String>,
        /// The tar file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Read images from a tar file made by `docker save`, `podman save` or ours.
    Load {
        /// The tar file.
        #[arg(short, long)]
        input: PathBuf,
    },
    /// Copy an image into a separate OCI layout directory (`skopeo copy … oci:DIR:TAG`).
    Export {
        /// The image.
        image: String,
        /// The layout directory (created if missing).
        dir: PathBuf,
    },
    /// Copy an image from an OCI layout directory: `DIR` or `DIR:NAME`.
    Import {
        /// The layout, optionally `:NAME` (its org.opencontainers.image.ref.name).
        source: String,
        /// The reference to give it in the store (default: the name in the layout).
        #[arg(long, short)]
        tag: Option<String>,
    },
    /// Give an image another name (docker tag).
    Tag {
        /// The image.
        image: String,
        /// The new reference.
        target: String,
    },
    /// Upload an image to its registry (docker push).
    Push {
        /// The image, named with the registry to push to.
        image: String,
        /// Push under this reference instead.
        target: Option<String>,
        /// Upload blobs in PATCH chunks of this many bytes (default: one PUT).
        #[arg(long, value_name = "BYTES")]
        chunk_size: Option<u64>,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Store credentials for a registry in ~/.docker/config.json (docker login).
    Login {
        /// The registry (`localhost:5000`; default Docker Hub).
        #[arg(default_value = "docker.io")]
        registry: String,
        /// The user.
        #[arg(short, long)]
        username: String,
        /// The password (prefer --password-stdin).
        #[arg(short, long)]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Network options.
        #[command(flatten)]
        net: NetArgs,
    },
    /// Remove a registry's credentials from ~/.docker/config.json.
    Logout {
        /// The registry.
        #[arg(default_value = "docker.io")]
        registry: String,
    },
}

/// Run `img-pull`.
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let wrap = |e| (e, Role::Tool);
    let k = cli.common.kernel("img-pull").map_err(wrap)?;
    let out = std::io::stdout();
    let mut out = out.lock();
    let r = dispatch(&k, &cli.root, cli.cmd, &mut out);
    r.map(|()| (Exit::Ok, Role::Tool)).map_err(wrap)
}

fn dispatch(k: &Kernel, root: &Path, cmd: Cmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        Cmd::Pull { reference, platform, jobs, net } => {
            let r = parse_ref(&reference)?;
            let platform = match platform {
                Some(p) => Platform::parse(&p).map_err(Error::Usage)?,
                None => Platform::host(),
            };
            pull(k, root, &r, &platform, jobs as usize, &net.options()?, out)
        }
        Cmd::Ls { digests, ids } => ls(k, root, digests, ids, out),
        Cmd::Inspect { image, format, raw } => inspect(k, root, &image, format.as_deref(), raw.as_deref(), out),
        Cmd::History { image, no_trunc } => history(k, root, &image, no_trunc, out),
        Cmd::Rm { images } => rm(k, root, &images, out),
        Cmd::Unpack { image, dir, layers } => {
            if layers {
                unpack_layers(k, root, &image, &dir, out)
            } else {
                unpack(k, root, &image, &dir)
            }
        }
        Cmd::Save { images, output } => archive::save(k, root, &images, output.as_deref()),
        Cmd::Load { input } => archive::load(k, root, &input, out),
        Cmd::Export { image, dir } => archive::export(k, root, &image, &dir, out),
        Cmd::Import { source, tag } => archive::import(k, root, &source, tag.as_deref(), out),
        Cmd::Tag { image, target } => {
            let t = parse_ref(&target)?;
            let st = Store::open(k, root, true)?;
            let img = st.resolve(&image)?;
            st.tag(k, &t.to_string(), img.desc.clone())?;
            Ok(())
        }
        Cmd::Push { image, target, chunk_size, net } => {
            push(k, root, &image, target.as_deref(), chunk_size, &net.options()?, out)
        }
        Cmd::Login { registry, username, password, password_stdin, net } => {
            login(k, &registry, username, password, password_stdin, &net, out)
        }
        Cmd::Logout { registry } => {
            let (path, changed) = auth::store(&registry_domain(&registry)?, None)
                .map_err(|e| Error::failed(e, "check ~/.docker (or $DOCKER_CONFIG)"))?;
            k.note(format!("credentials file: {}", path.display()));
            if changed {
                writeln!(out, "Removing login credentials for {registry}")?;
            } else {
                writeln!(out, "Not logged in to {registry}")?;
            }
            Ok(())
        }
    }
}

fn parse_ref(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| {
        Error::Usage(format!(
            "{e}\n  hint: references look like alpine, alpine:3.17, localhost:5000/team/app:1.0, name@sha256:…"
        ))
    })
}

/// A registry name as `login` takes it: `localhost:5000`, `docker.io`, or an URL.
fn registry_domain(s: &str) -> Result<String> {
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let r = parse_ref(&format!("{s}/x"))?;
    Ok(if s == "index.docker.io" || s == "registry-1.docker.io" { reference::DOCKER_HUB.into() } else { r.domain })
}

/// Where the API of `r`'s registry answers. `$CONTLAB_DOCKER_HUB_API` replaces
/// registry-1.docker.io (a mirror, or the local stand-in the tests run).
fn api_host(r: &Reference) -> String {
    if r.domain == reference::DOCKER_HUB {
        if let Ok(h) = std::env::var("CONTLAB_DOCKER_HUB_API") {
            if !h.is_empty() {
                return h;
            }
        }
    }
    r.api_host().to_string()
}

fn connect(k: &Kernel, r: &Reference, opts: &registry::Options) -> Result<Registry> {
    let host = api_host(r);
    k.note(format!("registry {} (API at {host})", r.domain));
    Registry::connect(&|s| k.note(s), &r.domain, &host, opts)
}

// ---------------------------------------------------------------- pull

/// What a download worker reports to the main thread (which owns the Kernel).
enum Msg {
    Note(String),
    Progress(usize, u64),
    Done(usize, Result<LayerInfo>),
}

/// Docker-style progress: bars on a terminal, plain lines otherwise.
struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<indicatif::ProgressBar>)>,
}

impl Progress {
    fn new(layers: &[(String, u64)]) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bars: None };
        }
        let mp = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template("{prefix}: {msg:<16} [{bar:40}] {bytes}/{total_bytes}")
            .expect("template")
            .progress_chars("=> ");
        let bars = layers
            .iter()
            .map(|(id, size)| {
                let b = mp.add(indicatif::ProgressBar::new(*size));
                b.set_style(style.clone());
                b.set_prefix(id.clone());
                b.set_message("Waiting");
                b
            })
            .collect();
        Progress { bars: Some((mp, bars)) }
    }
    fn set(&self, i: usize, n: u64) {
        if let Some((_, b)) = &self.bars {
            b[i].set_message("Downloading");
            b[i].set_position(n);
        }
    }
    fn done(&self, i: usize, id: &str, msg: &str, out: &mut dyn Write) -> Result<()> {
        match &self.bars {
            Some((_, b)) => b[i].finish_with_message(msg.to_string()),
            None => writeln!(out, "{id}: {msg}")?,
        }
        Ok(())
    }
    fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bars {
            Some((mp, _)) => mp.suspend(f),
            None => f(),
        }
    }
}

/// `img-pull pull`: see the module documentation for the steps.
pub fn pull(
    k: &Kernel,
    root: &Path,
    r: &Reference,
    platform: &Platform,
    jobs: usize,
    opts: &registry::Options,
    out: &mut dyn Write,
) -> Result<()> {
    k.note(format!("reference {:?} means {r}", r.familiar()));
    let st = Store::open(k, root, true)?;
    let reg = connect(k, r, opts)?;
    let log = |s: String| k.note(s);
    let name = r.path.as_str();
    writeln!(out, "{}: Pulling from {}", r.tag.as_deref().or(r.digest.as_deref()).unwrap_or("latest"), r.path)?;
    let (bytes, mt, digest, doc) = reg.manifest(&log, name, r.api_reference())?;
    let repo_digest = digest.clone();
    let mut index_bytes = None;
    let (mbytes, mt, mdigest, m) = match doc {
        Document::Image(m) => (bytes, mt, digest, m),
        Document::Index(ix) => {
            let d = manifest::choose(&ix, platform)
                .map_err(|e| Error::failed(format!("{r}: {e}"), "choose one with --platform OS/ARCH"))?;
            k.note(format!("{mt}: {} platforms; {platform} → {}", ix.manifests.len(), short(&d.digest)));
            index_bytes = Some(bytes);
            let (b, mt2, dg, doc2) = reg.manifest(&log, name, &d.digest)?;
            if b.len() as u64 != d.size {
                return Err(Error::failed(
                    format!("size mismatch: the index says manifest {} is {} bytes, got {}", d.digest, d.size, b.len()),
                    "nothing was stored",
                ));
            }
            match doc2 {
                Document::Image(m) => (b, mt2, dg, m),
                Document::Index(_) => {
                    return Err(Error::failed(
                        format!("{} is an index inside an index", d.digest),
                        "nested indexes are not supported",
                    ))
                }
            }
        }
    };
    k.note(format!("manifest {mdigest}: {} layer(s), config {}", m.layers.len(), short(&m.config.digest)));
    // Already there under that name and digest?
    let ixs = st.index()?;
    let up_to_date =
        ixs.manifests.iter().any(|d| d.digest == mdigest && d.annotation(store::REF_NAME) == Some(&r.to_string()));
    let config_bytes = if st.has_blob(&m.config.digest) {
        st.read_blob(&m.config.digest, manifest::MAX_CONFIG)?
    } else {
        reg.small_blob(&log, name, &m.config, manifest::MAX_CONFIG)?
    };
    let config =
        manifest::parse_config(&config_bytes).map_err(|e| Error::failed(format!("{r}: {e}"), "nothing was stored"))?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::failed(
            format!("the config lists {} diff_ids for {} layers", config.rootfs.diff_ids.len(), m.layers.len()),
            "the image is malformed; nothing was stored",
        ));
    }
    // Which layers to fetch.
    let ids: Vec<(String, u64)> = m.layers.iter().map(|l| (short(&l.digest), l.size)).collect();
    let mut todo = VecDeque::new();
    let progress = Progress::new(&ids);
    let mut infos: Vec<Option<LayerInfo>> = vec![None; m.layers.len()];
    for (i, l) in m.layers.iter().enumerate() {
        if l.media_type == manifest::DOCKER_LAYER_FOREIGN {
            return Err(Error::failed(
                format!("layer {} is a foreign (Windows) layer", l.digest),
                "this image is not for Linux",
            ));
        }
        if st.has_blob(&l.digest) {
            let info = st
                .layer_info(&l.digest)
                .unwrap_or(LayerInfo { diff_id: config.rootfs.diff_ids[i].clone(), size: l.size });
            infos[i] = Some(info);
            progress.done(i, &ids[i].0, "Already exists", out)?;
        } else if todo.iter().any(|j: &usize| m.layers[*j].digest == l.digest) {
            // The same blob twice in one image: fetched once.
        } else {
            todo.push_back(i);
        }
    }
    if k.mode() == Mode::DryRun {
        for i in &todo {
            k.note(format!("would download layer {} ({} bytes)", m.layers[*i].digest, m.layers[*i].size));
        }
        writeln!(out, "Digest: {repo_digest}")?;
        return Ok(());
    }
    let jobs = jobs.max(1).min(todo.len().max(1));
    k.note(format!("{} layer(s) to download, {jobs} at a time", todo.len()));
    let queue = Mutex::new(todo.clone());
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut first_err: Option<Error> = None;
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (queue, reg, st, m, config) = (&queue, &reg, &st, &m, &config);
            s.spawn(move || loop {
                let Some(i) = queue.lock().expect("queue").pop_front() else { break };
                let d = &m.layers[i];
                let note = |t: String| {
                    let _ = tx.send(Msg::Note(t));
                };
                let part = st.partial_path(&d.digest);
                // The diff_id is checked as the bytes arrive, beside the download.
                let mut check = pipe::Verifier::new(&config.rootfs.diff_ids[i], &part);
                let res = reg
                    .download(
                        &note,
                        name,
                        d,
                        &part,
                        &|n| {
                            let _ = tx.send(Msg::Progress(i, n));
                        },
                        &mut |t| check.tap(t),
                    )
                    .and_then(|()| check.finish(&part));
                if res.is_err() && res.as_ref().err().is_some_and(|e| e.to_string().contains("diff_id")) {
                    let _ = std::fs::remove_file(&part);
                }
                let _ = tx.send(Msg::Done(i, res));
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Note(t) => progress.suspend(|| k.note(t)),
                Msg::Progress(i, n) => progress.set(i, n),
                Msg::Done(i, Ok(info)) => {
                    progress.suspend(|| {
                        k.note(format!(
                            "layer {} verified: sha256 matches, diff_id {}, {} bytes uncompressed",
                            short(&m.layers[i].digest),
                            short(&info.diff_id),
                            info.size
                        ))
                    });
                    let _ = progress.done(i, &ids[i].0, "Pull complete", out);
                    infos[i] = Some(info);
                }
                Msg::Done(i, Err(e)) => {
                    let _ = progress.done(i, &ids[i].0, "Failed", out);
                    // Stop handing out work; running downloads end on their own.
                    queue.lock().expect("queue").clear();
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    // Duplicated blobs inside one image share the info of their first occurrence.
    for i in 0..m.layers.len() {
        if infos[i].is_none() {
            let j = m.layers.iter().position(|l| l.digest == m.layers[i].digest).expect("present");
            infos[i] = infos[j].clone();
        }
    }
    // Everything verified: publish the blobs, then the name.
    for i in &todo {
        let d = &m.layers[*i];
        st.commit(k, &st.partial_path(&d.digest), &d.digest)?;
        st.put_layer_info(&d.digest, infos[*i].as_ref().expect("downloaded"))?;
    }
    st.put_bytes(k, &config_bytes)?;
    st.put_bytes(k, &mbytes)?;
    if let Some(b) = &index_bytes {
        st.put_bytes(k, b)?;
    }
    let total: u64 = infos.iter().flatten().map(|i| i.size).sum();
    let mut desc = Descriptor::new(&mt, &mdigest, mbytes.len() as u64);
    let mut ann = std::collections::BTreeMap::new();
    ann.insert(store::REPO_DIGEST.to_string(), repo_digest.clone());
    ann.insert(store::SIZE.to_string(), total.to_string());
    desc.annotations = Some(ann);
    desc.platform = Some(Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: None,
        os_version: None,
    });
    st.tag(k, &r.to_string(), desc)?;
    writeln!(out, "Digest: {repo_digest}")?;
    if up_to_date {
        writeln!(out, "Status: Image is up to date for {}", r.familiar())?;
    } else {
        writeln!(out, "Status: Downloaded newer image for {}", r.familiar())?;
    }
    Ok(())
}

/// A reader that hashes what passes through it and counts it.
pub struct HashReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    /// Bytes read so far.
    pub count: u64,
}

impl<R: Read> HashReader<R> {
    /// Wrap `inner`.
    pub fn new(inner: R) -> Self {
        HashReader { inner, hasher: sha2::Sha256::new(), count: 0 }
    }
    /// `sha256:HEX` of everything read.
    pub fn digest(self) -> String {
        format!("sha256:{}", registry::hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Decompress a downloaded layer and check that its sha256 is the config's diff_id.
fn verify_diff_id(part: &Path, want: &str) -> Result<LayerInfo> {
    let f = std::fs::File::open(part)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", part.display()), "check the disk"))?;
    check_diff_id(f, part, want)
}

/// Decompress a layer (the blob `part`, or its bytes as they are downloaded) and
/// check that its sha256 is the config's diff_id.
fn check_diff_id(blob: impl Read, part: &Path, want: &str) -> Result<LayerInfo> {
    let mut h = HashReader::new(crate::layer::decompress(std::io::BufReader::with_capacity(256 << 10, blob))?);
    std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| {
        Error::failed(
            format!("cannot decompress the layer {}: {e}", part.display()),
            "the layer is corrupt; nothing was stored",
        )
    })?;
    let size = h.count;
    let got = h.digest();
    if got != want {
        return Err(Error::failed(
            format!("diff_id mismatch: the decompressed layer hashes to {got}, the config says {want}"),
            "the image is corrupt; nothing was stored",
        ));
    }
    Ok(LayerInfo { diff_id: got, size })
}

// ---------------------------------------------------------------- ls, inspect, history, rm

fn human_size(n: u64) -> String {
    // docker uses decimal units (units.HumanSize).
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        // Go's %.4g: four significant digits, trailing zeros dropped.
        let int_digits = if v >= 100.0 {
            3
        } else if v >= 10.0 {
            2
        } else {
            1
        };
        let s = format!("{v:.prec$}", prec = 4 - int_digits);
        let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
        format!("{s}{}", units[u])
    }
}

/// Days since the epoch for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Seconds since the epoch of an RFC 3339 time (`2023-01-09T17:05:20.656498097Z`).
fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let n = |a: usize, z: usize| s.get(a..z)?.parse::<i64>().ok();
    let days = days_from_civil(n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let mut t = days * 86400 + n(11, 13)? * 3600 + n(14, 16)? * 60 + n(17, 19)?;
    let rest = &s[19..];
    let tz = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        let h = off.get(0..2)?.parse::<i64>().ok()?;
        let m = off.get(3..5)?.parse::<i64>().ok()?;
        t -= sign * (h * 3600 + m * 60);
    }
    Some(t)
}

/// "3 weeks ago", as docker's units.HumanDuration.
fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_time) else { return "N/A".into() };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let s = (now - t).max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let txt = if s < 1 {
        "Less than a second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if d < 14 {
        format!("{d} days")
    } else if d < 60 {
        format!("{} weeks", d / 7)
    } else if d < 365 * 2 {
        format!("{} months", d / 30)
    } else {
        format!("{} years", d / 365)
    };
    format!("{txt} ago")
}

fn image_size(st: &Store, img: &Image) -> u64 {
    if let Some(s) = img.desc.annotation(store::SIZE).and_then(|s| s.parse().ok()) {
        return s;
    }
    img.manifest.layers.iter().map(|l| st.layer_info(&l.digest).map(|i| i.size).unwrap_or(l.size)).sum()
}

fn split_name(n: &str) -> (String, String) {
    match Reference::parse(n) {
        Ok(r) => (r.familiar_name(), r.tag.clone().unwrap_or_else(|| "<none>".into())),
        Err(_) => (n.to_string(), "<none>".into()),
    }
}

fn ls(k: &Kernel, root: &Path, digests: bool, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let imgs = st.images()?;
    if quiet {
        for i in &imgs {
            writeln!(out, "{}", short(i.id()))?;
        }
        return Ok(());
    }
    let mut rows = vec![];
    for i in &imgs {
        let (repo, tag) = split_name(i.names.first().map(String::as_str).unwrap_or("<none>"));
        let mut row = vec![repo, tag];
        if digests {
            row.push(i.desc.annotation(store::REPO_DIGEST).unwrap_or(&i.desc.digest).to_string());
        }
        row.extend([short(i.id()), ago(i.config.created.as_deref()), human_size(image_size(&st, i))]);
        rows.push(row);
    }
    let mut head = vec!["REPOSITORY", "TAG"];
    if digests {
        head.push("DIGEST");
    }
    head.extend(["IMAGE ID", "CREATED", "SIZE"]);
    table(out, &head, &rows)
}

fn table(out: &mut dyn Write, head: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i + 1 == n { c } else { format!("{c:<width$}   ", width = w[i]) })
            .collect::<String>()
    };
    writeln!(out, "{}", line(head.iter().map(|s| s.to_string()).collect()))?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

/// The JSON `docker inspect` shows for an image (the fields students use).
pub fn inspect_json(st: &Store, img: &Image) -> serde_json::Value {
    let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes).unwrap_or_default();
    let tags: Vec<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .filter(|r| r.digest.is_none())
        .map(|r| r.familiar())
        .collect();
    let repo_digests: Vec<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| {
            format!("{}@{}", r.familiar_name(), img.desc.annotation(store::REPO_DIGEST).unwrap_or(&img.desc.digest))
        })
        .collect();
    serde_json::json!({
        "Id": img.id(),
        "RepoTags": tags,
        "RepoDigests": repo_digests,
        "Created": cfg.get("created"),
        "Author": cfg.get("author"),
        "Architecture": cfg.get("architecture"),
        "Variant": cfg.get("variant"),
        "Os": cfg.get("os"),
        "Size": image_size(st, img),
        "Config": cfg.get("config"),
        "RootFS": {"Type": img.config.rootfs.kind, "Layers": img.config.rootfs.diff_ids},
        "Manifest": {"Digest": img.desc.digest, "MediaType": img.desc.media_type,
            "Layers": img.manifest.layers.iter().map(|l| serde_json::json!({"Digest": l.digest, "Size": l.size, "MediaType": l.media_type})).collect::<Vec<_>>()},
        "Metadata": {"Store": st.oci.display().to_string()},
    })
}

/// A small Go-template subset: `{{.A.B}}`, `{{json .A.B}}`, text around them.
pub fn render_format(fmt: &str, v: &serde_json::Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = fmt;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| Error::Usage(format!("unclosed {{{{ in --format {fmt:?}")))?;
        let expr = after[..end].trim();
        let (json, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        if !path.starts_with('.') {
            return Err(Error::Usage(format!(
                "--format supports {{{{.Field.Sub}}}} and {{{{json .Field}}}}, not {expr:?}"
            )));
        }
        let mut cur = v;
        for part in path[1..].split('.').filter(|p| !p.is_empty()) {
            cur = cur.get(part).ok_or_else(|| {
                Error::failed(format!("no field {part:?} in {path}"), "`img-pull inspect IMAGE` shows the fields")
            })?;
        }
        if json {
            out.push_str(&serde_json::to_string(cur).expect("json"));
        } else {
            out.push_str(&go_text(cur));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn go_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "<no value>".into(),
        serde_json::Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        serde_json::Value::Object(o) => {
            format!("map[{}]", o.iter().map(|(k, v)| format!("{k}:{}", go_text(v))).collect::<Vec<_>>().join(" "))
        }
        other => other.to_string(),
    }
}

fn inspect(
    k: &Kernel,
    root: &Path,
    image: &str,
    format: Option<&str>,
    raw: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(image)?;
    match raw {
        Some("manifest") => {
            out.write_all(&img.manifest_bytes)?;
            writeln!(out)?;
            return Ok(());
        }
        Some(_) => {
            out.write_all(&img.config_bytes)?;
            writeln!(out)?;
            return Ok(());
        }
        None => {}
    }
    let v = inspect_json(&st, &img);
    match format {
        Some(f) => writeln!(out, "{}", render_format(f, &v)?)?,
        None => writeln!(out, "{}", serde_json::to_string_pretty(&serde_json::json!([v])).expect("json"))?,
    }
    Ok(())
}

fn history(k: &Kernel, root: &Path, image: &str, no_trunc: bool, out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(image)?;
    let mut layer_i = 0;
    let mut rows = vec![];
    let hist = if img.config.history.is_empty() {
        img.manifest.layers.iter().map(|_| manifest::History::default()).collect()
    } else {
        img.config.history.clone()
    };
    for h in &hist {
        let size = if h.empty_layer {
            0
        } else {
            let s = img
                .manifest
                .layers
                .get(layer_i)
                .map(|l| st.layer_info(&l.digest).map(|i| i.size).unwrap_or(l.size))
                .unwrap_or(0);
            layer_i += 1;
            s
        };
        let mut by = h.created_by.clone().unwrap_or_default();
        if !no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        rows.push(vec![
            "<missing>".to_string(),
            ago(h.created.as_deref()),
            by,
            human_size(size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first[0] = short(img.id());
    }
    table(out, &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], &rows)
}

fn rm(k: &Kernel, root: &Path, images: &[String], out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, true)?;
    let mut ix = st.index()?;
    for what in images {
        let img = st.resolve(what)?;
        // By name: untag that name only; by ID: every name of the image.
        let by_name = Reference::parse(what).ok().map(|r| r.to_string()).filter(|n| img.names.contains(n));
        let gone: Vec<String> = match &by_name {
            Some(n) => vec![n.clone()],
            None => img.names.clone(),
        };
        ix.manifests.retain(|d| {
            !(d.digest == img.desc.digest && d.annotation(store::REF_NAME).is_some_and(|n| gone.iter().any(|g| g == n)))
        });
        st.write_index(k, &ix)?;
        for g in &gone {
            writeln!(out, "Untagged: {}", Reference::parse(g).map(|r| r.familiar()).unwrap_or_else(|_| g.clone()))?;
        }
    }
    let (n, bytes) = st.gc(k, &ix)?;
    writeln!(out, "Deleted: {n} blob(s), {} freed", human_size(bytes))?;
    Ok(())
}

// ---------------------------------------------------------------- unpack

/// The blobs of `img`'s layers `which`, for [`pipe::stream`].
fn blobs(st: &Store, img: &Image, which: &[usize]) -> Vec<pipe::Blob> {
    which
        .iter()
        .map(|&i| pipe::Blob {
            digest: img.manifest.layers[i].digest.clone(),
            path: st.blob_path(&img.manifest.layers[i].digest),
        })
        .collect()
}

fn apply_layer(k: &Kernel, layers: &pipe::Layers, img: &Image, i: usize, dest: &Path, overlay: bool) -> Result<()> {
    let l = &img.manifest.layers[i];
    let want = &img.config.rootfs.diff_ids[i];
    let mut h = layers.next()?;
    let opts = crate::layer::ApplyOptions { overlay_whiteouts: overlay, ..crate::layer::ApplyOptions::for_caller(k) };
    k.note(format!(
        "layer {}/{}: {} ({}) → {}",
        i + 1,
        img.manifest.layers.len(),
        short(&l.digest),
        l.media_type,
        dest.display()
    ));
    let stats = crate::layer::apply(k, &mut h, dest, &opts)?;
    let (got, _) = h.finish().map_err(|e| {
        Error::failed(format!("reading layer {}: {e}", l.digest), "the blob is corrupt: pull the image again")
    })?;
    if k.mode() == Mode::Live && &got != want {
        return Err(Error::failed(
            format!("diff_id mismatch for layer {}: {got}, the config says {want}", l.digest),
            format!("the store is corrupt: `img-pull rm` the image, pull it again, and remove {}", dest.display()),
        ));
    }
    k.note(format!(
        "layer {}: {} entries, {} bytes, {} whiteouts",
        short(&l.digest),
        stats.entries,
        stats.bytes,
        stats.whiteouts
    ));
    Ok(())
}

fn unpack(k: &Kernel, root: &Path, image: &str, dir: &Path) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(image)?;
    if img.config.rootfs.diff_ids.len() != img.manifest.layers.len() {
        return Err(Error::failed("the config's diff_ids do not match the layers", "the image is malformed"));
    }
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::failed(
                    format!("{} is not empty", dir.display()),
                    "unpack into a new or empty directory",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            k.mkdir(dir, 0o755)?;
        }
        Err(e) => return Err(Error::failed(format!("cannot read {}: {e}", dir.display()), "give a directory")),
    }
    let all: Vec<usize> = (0..img.manifest.layers.len()).collect();
    pipe::stream(blobs(&st, &img, &all), |layers| {
        for i in 0..img.manifest.layers.len() {
            apply_layer(k, layers, &img, i, dir, false).map_err(|e| match e {
                Error::Failed { what, hint } => Error::Failed {
                    what,
                    hint: Some(format!(
                        "{}; remove the partial tree with: rm -rf {}",
                        hint.unwrap_or_default(),
                        dir.display()
                    )),
                },
                other => other,
            })?;
        }
        Ok(())
    })
}

fn unpack_layers(k: &Kernel, root: &Path, image: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, true)?;
    let img = st.resolve(image)?;
    if k.mode() == Mode::Live {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display()), "check the path"))?;
    }
    // The layers to extract: not in the cache yet, each diff_id once.
    let cache_of = |di: &str| st.root.join("layers").join(di.strip_prefix("sha256:").unwrap_or(di));
    let diff_ids = &img.config.rootfs.diff_ids;
    let todo: Vec<usize> = (0..diff_ids.len())
        .filter(|&i| !cache_of(&diff_ids[i]).is_dir() && !diff_ids[..i].contains(&diff_ids[i]))
        .collect();
    let mut lower = vec![];
    pipe::stream(blobs(&st, &img, &todo), |layers| {
        for (i, di) in diff_ids.iter().enumerate() {
            let hexid = di.strip_prefix("sha256:").unwrap_or(di);
            let cache = cache_of(di);
            if !todo.contains(&i) {
                k.note(format!("layer {}: already extracted in {} (shared by diff_id)", i + 1, cache.display()));
            } else {
                let tmp = st.root.join("layers").join(format!(".{hexid}.{}", std::process::id()));
                if k.mode() == Mode::Live {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                k.mkdir(&tmp, 0o755)?;
                if let Err(e) = apply_layer(k, layers, &img, i, &tmp, true) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(e);
                }
                k.why("publish the extracted layer under its diff_id only once it is complete");
                k.rename_over(&tmp, &cache)?;
            }
            let link = dir.join(i.to_string());
            if k.mode() == Mode::Live {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&cache, &link).map_err(|e| {
                    Error::failed(format!("cannot link {}: {e}", link.display()), "check the directory")
                })?;
            }
            lower.push(cache.display().to_string());
        }
        Ok(())
    })?;
    lower.reverse();
    writeln!(out, "{}", lower.join(":"))?;
    Ok(())
}

// ---------------------------------------------------------------- push, login

fn push(
    k: &Kernel,
    root: &Path,
    image: &str,
    target: Option<&str>,
    chunk: Option<u64>,
    opts: &registry::Options,
    out: &mut dyn Write,
) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(image)?;
    let t = match target {
        Some(t) => parse_ref(t)?,
        None => parse_ref(image)?,
    };
    if t.digest.is_some() {
        return Err(Error::Usage("push to a tag, not a digest".into()));
    }
    let tag = t.tag.clone().unwrap_or_else(|| "latest".into());
    writeln!(out, "The push refers to repository [{}]", t.name())?;
    let reg = connect(k, &t, opts)?;
    let log = |s: String| k.note(s);
    // A repository of the same registry this image also lives in: blobs can be mounted from it.
    let from: Option<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .find(|r| r.domain == t.domain && r.path != t.path)
        .map(|r| r.path);
    let mut scopes = vec![format!("repository:{}:pull,push", t.path)];
    if let Some(f) = &from {
        scopes.push(format!("repository:{f}:pull"));
    }
    let mut blobs: Vec<&Descriptor> = img.manifest.layers.iter().collect();
    blobs.push(&img.manifest.config);
    for d in blobs {
        let id = short(&d.digest);
        if reg.has_blob(&log, &t.path, &d.digest, &scopes)? {
            writeln!(out, "{id}: Layer already exists")?;
            continue;
        }
        let upload = match &from {
            Some(f) => match reg.start_upload(&log, &t.path, Some((&d.digest, f)), &scopes)? {
                None => {
                    writeln!(out, "{id}: Mounted from {f}")?;
                    continue;
                }
                Some(u) => u,
            },
            None => reg.start_upload(&log, &t.path, None, &scopes)?.expect("upload url"),
        };
        let p = st.blob_path(&d.digest);
        let mut f = std::fs::File::open(&p).map_err(|e| {
            Error::failed(format!("blob {} missing ({}): {e}", d.digest, p.display()), "pull the image again")
        })?;
        reg.upload(&log, upload, &mut f, d.size, &d.digest, chunk, &scopes)?;
        writeln!(out, "{id}: Pushed")?;
    }
    let dg = reg.put_manifest(&log, &t.path, &tag, &img.desc.media_type, &img.manifest_bytes, &scopes)?;
    writeln!(out, "{tag}: digest: {dg} size: {}", img.manifest_bytes.len())?;
    Ok(())
}

fn login(
    k: &Kernel,
    registry_name: &str,
    username: String,
    password: Option<String>,
    stdin: bool,
    net: &NetArgs,
    out: &mut dyn Write,
) -> Result<()> {
    let password = match (password, stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::failed(format!("reading the password from stdin: {e}"), "pipe it in"))?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => return Err(Error::Usage("give the password with --password-stdin (or -p)".into())),
    };
    let domain = registry_domain(registry_name)?;
    let creds = auth::Credentials { username, password };
    let mut opts = net.options()?;
    opts.creds = Some(creds.clone());
    let r = Reference::parse(&format!("{domain}/x")).map_err(Error::Usage)?;
    let reg = connect(k, &r, &opts)?;
    reg.check_login(&|s| k.note(s))?;
    let (path, _) =
        auth::store(&domain, Some(&creds)).map_err(|e| Error::failed(e, "check ~/.docker (or $DOCKER_CONFIG)"))?;
    k.note(format!(
        "credentials stored in {} (base64, not encrypted: as docker does without a credential helper)",
        path.display()
    ));
    writeln!(out, "Login Succeeded")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_docker() {
        assert_eq!(human_size(7_050_000), "7.05MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some(86400));
        assert_eq!(parse_time("1970-01-02T01:00:00.5+01:00"), Some(86400));
        let v =
            serde_json::json!({"RootFS": {"Layers": ["sha256:a"]}, "Id": "sha256:x", "Config": {"Cmd": ["sh", "-c"]}});
        assert_eq!(render_format("{{json .RootFS.Layers}}", &v).unwrap(), r#"["sha256:a"]"#);
        assert_eq!(render_format("id={{.Id}} {{.Config.Cmd}}", &v).unwrap(), "id=sha256:x [sh -c]");
        assert!(render_format("{{.Nope}}", &v).is_err());
    }

    #[test]
    fn dry_run_store_takes_the_lock_without_writing() {
        let k = Kernel::recording("img-pull");
        let dir = std::env::temp_dir().join(format!("contlab-img-unit-{}", std::process::id()));
        let st = Store::open(&k, &dir, true).unwrap();
        assert!(!dir.exists(), "a dry run creates nothing");
        st.write_index(&k, &st.index().unwrap()).unwrap();
        let ev = k.events();
        assert!(ev.iter().any(|e| e.call == "note" && e.args[0].contains("would write")));
    }
}
