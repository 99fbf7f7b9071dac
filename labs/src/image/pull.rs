//! `pull`: an image from a registry into the store, with progress reported through a
//! callback (the command line draws docker's lines or bars from it; a runtime may show
//! anything).
//!
//! ## Threads
//!
//! Layers download in parallel, `jobs` at a time, each on its own thread, with a thread
//! beside each that decompresses and hashes the bytes for the diff_id check (see
//! [`super::pipe::Verifier`]). Only the calling thread touches the [`Kernel`]: workers
//! send it their notes and progress. The partial files are opened (created) by the
//! calling thread before the workers start; workers only write bytes into them. Every
//! thread is joined before [`pull`] returns, success or failure, so a caller may
//! `fork(2)` right after (mini does).
//!
//! ## What stays behind
//!
//! A pull refused for what it was served (a digest, size or diff_id that does not
//! match, a bad status or manifest) removes every partial download it wrote to: the
//! store is left byte for byte as it was. A pull *interrupted* (the connection broke
//! after the resume attempts, a timeout, a full disk) keeps what it downloaded in
//! `ROOT/tmp/HEX.partial`, and says so: the next pull resumes it with `Range`;
//! `img-pull rm` removes it. A killed pull (`SIGKILL`) leaves the same, and maybe a
//! temp file (`tmp/blob.PID.N`, `oci/index.json.tmp`) that the next pull removes.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use sha2::Digest as _;

use super::manifest::{self, Descriptor, Document, Platform};
use super::reference::{self, Reference};
use super::registry::{self, short, Registry, Stop};
use super::store::{self, Image, LayerInfo, Store};
use super::{pipe, TOOL};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to choose in a multi-platform image.
    pub platform: Platform,
    /// Layers downloaded at once (at least 1).
    pub jobs: usize,
    /// How to reach the registry.
    pub registry: registry::Options,
}

impl Default for PullOptions {
    /// This machine's platform, 6 layers at once, 30 s without data before giving up.
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform::host(),
            jobs: 6,
            registry: registry::Options { timeout: Duration::from_secs(30), ..Default::default() },
        }
    }
}

/// What a pull reports as it goes (docker's progress lines); `index` is the layer's
/// place in the manifest, bottom first, as in [`Progress::Layers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The manifest is being resolved: docker's `TAG: Pulling from PATH`.
    Resolving {
        /// The tag (or digest) asked for.
        tag: String,
        /// The repository path (`library/alpine`).
        path: String,
    },
    /// The image's layers, bottom first: short id (12 hex digits) and compressed size.
    Layers(Vec<(String, u64)>),
    /// The layer is in the store already: `ID: Already exists`.
    Exists {
        /// Which layer.
        index: usize,
    },
    /// The layer is downloading: `bytes` so far.
    Downloading {
        /// Which layer.
        index: usize,
        /// Bytes received (a resumed download starts at what it had).
        bytes: u64,
    },
    /// The layer is downloaded; its diff_id check is finishing.
    Verifying {
        /// Which layer.
        index: usize,
    },
    /// The layer is downloaded and verified: docker's `Download complete`.
    DownloadComplete {
        /// Which layer.
        index: usize,
    },
    /// The layer is ready to be stored: `ID: Pull complete`.
    PullComplete {
        /// Which layer.
        index: usize,
    },
    /// The layer failed (the pull fails).
    Failed {
        /// Which layer.
        index: usize,
    },
    /// The registry's digest of what was pulled: `Digest: sha256:…`.
    Digest(String),
    /// The end: `Status: Downloaded newer image for NAME`, or (`up_to_date`) `Status:
    /// Image is up to date for NAME`.
    Status {
        /// The image was already there under this name and digest.
        up_to_date: bool,
        /// The reference as docker shows it (`alpine:3.17`).
        name: String,
    },
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

/// Reach `r`'s registry (ping, and learn how it authenticates).
pub(crate) fn connect(k: &Kernel, r: &Reference, opts: &registry::Options) -> Result<Registry> {
    let host = api_host(r);
    k.note(format!("registry {} (API at {host})", r.domain));
    Registry::connect(&|s| k.note(s), &r.domain, &host, opts)
}

/// What a download worker reports to the calling thread (which owns the Kernel).
enum Msg {
    Note(String),
    Progress(usize, u64),
    Downloaded(usize),
    Done(usize, std::result::Result<LayerInfo, Stop>),
}

/// A partial download this pull opened: where, and whether it was there before.
struct Partial {
    path: PathBuf,
    existed: bool,
}

/// Pull `r` into the store at `root` (opened exclusively for the time of the pull):
/// see the module documentation of [`super`] for the steps. Returns the image as
/// stored (in a dry run, as it would be).
pub fn pull(
    k: &Kernel,
    root: &Path,
    r: &Reference,
    opts: &PullOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Image> {
    k.note(format!("reference {:?} means {r}", r.familiar()));
    let st = Store::open(k, root, true)?;
    st.clean_tmp(k)?;
    let reg = connect(k, r, &opts.registry)?;
    let log = |s: String| k.note(s);
    let name = r.path.as_str();
    let tag = r.tag.as_deref().or(r.digest.as_deref()).unwrap_or("latest").to_string();
    progress(Progress::Resolving { tag, path: r.path.clone() });
    let (bytes, mt, digest, doc) = reg.manifest(&log, name, r.api_reference())?;
    let repo_digest = digest.clone();
    let mut index_bytes = None;
    let (mbytes, mt, mdigest, m) = match doc {
        Document::Image(m) => (bytes, mt, digest, m),
        Document::Index(ix) => {
            let d = manifest::choose(&ix, &opts.platform)
                .map_err(|e| Error::failed(format!("{r}: {e}"), "choose one with --platform OS/ARCH"))?;
            k.note(format!("{mt}: {} platforms; {} → {}", ix.manifests.len(), opts.platform, short(&d.digest)));
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
    progress(Progress::Layers(m.layers.iter().map(|l| (short(&l.digest), l.size)).collect()));
    let mut todo = VecDeque::new();
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
            progress(Progress::Exists { index: i });
        } else if todo.iter().any(|j: &usize| m.layers[*j].digest == l.digest) {
            // The same blob twice in one image: fetched once.
        } else {
            todo.push_back(i);
        }
    }
    let mut desc = Descriptor::new(&mt, &mdigest, mbytes.len() as u64);
    if k.mode() == Mode::DryRun {
        for i in &todo {
            k.note(format!("would download layer {} ({} bytes)", m.layers[*i].digest, m.layers[*i].size));
        }
        progress(Progress::Digest(repo_digest));
        desc.annotations = Some(BTreeMap::from([(store::REF_NAME.to_string(), r.to_string())]));
        return Ok(Image {
            names: vec![r.to_string()],
            desc,
            manifest_bytes: mbytes,
            manifest: m,
            config_bytes,
            config,
        });
    }
    let jobs = opts.jobs.max(1).min(todo.len().max(1));
    k.note(format!("{} layer(s) to download, {jobs} at a time", todo.len()));
    // The partial files, created here (by the thread that owns the kernel).
    let mut partials: Vec<Partial> = Vec::new();
    let mut queue: VecDeque<(usize, File)> = VecDeque::new();
    for &i in &todo {
        let path = st.partial_path(&m.layers[i].digest);
        let existed = path.exists();
        let opened = k.open_create(&path, "open (creating if needed) a download, resumed where an earlier one stopped");
        partials.push(Partial { path, existed });
        match opened {
            Ok(Some(f)) => queue.push_back((i, f)),
            Ok(None) => unreachable!("a live kernel opens the file"),
            Err(e) => {
                discard(k, &partials, true);
                return Err(e.into());
            }
        }
    }
    let results = download_all(k, &reg, name, &m, &config.rootfs.diff_ids, &st, queue, jobs, progress);
    let mut first_err: Option<Error> = None;
    let mut refused = false;
    for (i, res) in results {
        match res {
            Ok(info) => infos[i] = Some(info),
            Err(stop) => {
                refused |= matches!(stop, Stop::Refused(_));
                if first_err.is_none() {
                    first_err = Some(stop.into_error());
                }
            }
        }
    }
    if let Some(e) = first_err {
        discard(k, &partials, refused);
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
        st.put_layer_info(k, &d.digest, infos[*i].as_ref().expect("downloaded"))?;
    }
    st.put_bytes(k, &config_bytes)?;
    st.put_bytes(k, &mbytes)?;
    if let Some(b) = &index_bytes {
        st.put_bytes(k, b)?;
    }
    let total: u64 = infos.iter().flatten().map(|i| i.size).sum();
    let mut ann = BTreeMap::new();
    ann.insert(store::REPO_DIGEST.to_string(), repo_digest.clone());
    ann.insert(store::SIZE.to_string(), total.to_string());
    desc.annotations = Some(ann);
    desc.platform = Some(Platform {
        architecture: config.architecture.clone(),
        os: config.os.clone(),
        variant: None,
        os_version: None,
    });
    st.tag(k, &r.to_string(), desc.clone())?;
    progress(Progress::Digest(repo_digest));
    progress(Progress::Status { up_to_date, name: r.familiar() });
    desc.annotations.get_or_insert_with(BTreeMap::new).insert(store::REF_NAME.into(), r.to_string());
    let names = st
        .index()?
        .manifests
        .iter()
        .filter(|d| d.digest == mdigest)
        .filter_map(|d| d.annotation(store::REF_NAME).map(str::to_string))
        .collect();
    Ok(Image { names, desc, manifest_bytes: mbytes, manifest: m, config_bytes, config })
}

/// After a failed pull: remove the partial downloads it wrote to when the pull was
/// refused (`all`); when it was interrupted, only the empty ones, and say where the
/// others are kept.
fn discard(k: &Kernel, partials: &[Partial], all: bool) {
    let mut kept = Vec::new();
    for p in partials {
        let size = std::fs::metadata(&p.path).map(|m| m.len()).ok();
        match size {
            None => {}
            Some(n) if all || n == 0 => {
                k.why(if all {
                    "the pull was refused: its downloads go, the store stays as it was"
                } else {
                    "nothing of it arrived"
                });
                let _ = k.unlink(&p.path);
            }
            Some(n) => {
                kept.push(format!("{} ({n} bytes{})", p.path.display(), if p.existed { ", resumed" } else { "" }))
            }
        }
    }
    if !kept.is_empty() {
        k.note(format!(
            "interrupted: kept {} partial download(s) for the next pull to resume (`{TOOL} rm` removes them): {}",
            kept.len(),
            kept.join(", ")
        ));
    }
}

/// Download the layers of `queue` on `jobs` threads, every one joined before this
/// returns. Returns each layer's result.
#[allow(clippy::too_many_arguments)]
fn download_all(
    k: &Kernel,
    reg: &Registry,
    name: &str,
    m: &manifest::Manifest,
    diff_ids: &[String],
    st: &Store,
    queue: VecDeque<(usize, File)>,
    jobs: usize,
    progress: &mut dyn FnMut(Progress),
) -> Vec<(usize, std::result::Result<LayerInfo, Stop>)> {
    let queue = Mutex::new(queue);
    // Set by the first worker that fails: no worker takes a new layer after it.
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut results = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (queue, failed) = (&queue, &failed);
            s.spawn(move || loop {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let Some((i, mut file)) = queue.lock().expect("queue").pop_front() else { break };
                let d = &m.layers[i];
                let note = |t: String| {
                    let _ = tx.send(Msg::Note(t));
                };
                let part = st.partial_path(&d.digest);
                // The diff_id is checked as the bytes arrive, beside the download.
                let mut check = pipe::Verifier::new(&diff_ids[i], &part);
                let res = reg
                    .download(
                        &note,
                        name,
                        d,
                        &mut file,
                        &part,
                        &|n| {
                            let _ = tx.send(Msg::Progress(i, n));
                        },
                        &mut |t| check.tap(t),
                    )
                    .and_then(|()| {
                        let _ = tx.send(Msg::Downloaded(i));
                        check.finish(&part).map_err(Stop::Refused)
                    });
                if res.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                let _ = tx.send(Msg::Done(i, res));
            });
        }
        drop(tx);
        for msg in rx {
            match msg {
                Msg::Note(t) => k.note(t),
                Msg::Progress(i, n) => progress(Progress::Downloading { index: i, bytes: n }),
                Msg::Downloaded(i) => progress(Progress::Verifying { index: i }),
                Msg::Done(i, Ok(info)) => {
                    k.note(format!(
                        "layer {} verified: sha256 matches, diff_id {}, {} bytes uncompressed",
                        short(&m.layers[i].digest),
                        short(&info.diff_id),
                        info.size
                    ));
                    progress(Progress::DownloadComplete { index: i });
                    progress(Progress::PullComplete { index: i });
                    results.push((i, Ok(info)));
                }
                Msg::Done(i, Err(e)) => {
                    progress(Progress::Failed { index: i });
                    // No more work is handed out (the failing worker said so before it
                    // reported); running downloads end on their own.
                    queue.lock().expect("queue").clear();
                    results.push((i, Err(e)));
                }
            }
        }
    });
    results
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
pub(crate) fn verify_diff_id(part: &Path, want: &str) -> Result<LayerInfo> {
    let f = std::fs::File::open(part)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", part.display()), "check the disk"))?;
    check_diff_id(f, part, want)
}

/// Decompress a layer (the blob `part`, or its bytes as they are downloaded) and
/// check that its sha256 is the config's diff_id.
pub(crate) fn check_diff_id(blob: impl Read, part: &Path, want: &str) -> Result<LayerInfo> {
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
