//! The image store: an OCI image layout on disk, shared safely.
//!
//! ```text
//! ROOT/                      /var/lib/contlab, $CONTLAB_ROOT or --root
//!   lock                     flock(2)ed: exclusive by writers, shared by readers
//!   oci/                     an OCI image layout (skopeo and umoci read it as oci:ROOT/oci:NAME)
//!     oci-layout             {"imageLayoutVersion": "1.0.0"}
//!     index.json             one descriptor per tagged image, named by the
//!                            org.opencontainers.image.ref.name annotation
//!     blobs/sha256/HEX       manifests, configs and layers, each stored once
//!   layerinfo/HEX.json       per layer blob: its diff_id and uncompressed size
//!   layers/HEX/              a layer extracted on its own (unpack --layers), by diff_id
//!   tmp/                     downloads in progress (HEX.partial, kept to resume) and
//!                            files being written (blob.PID.N)
//! ```
//!
//! Every file that others read is written beside its final place and then
//! `rename(2)`d over it: a blob appears whole or not at all, and index.json is
//! always either the old or the new one.
//!
//! Every change to the store is a request of the kernel layer, so it is in the trace:
//! its directories (`mkdir(2)`, one per missing level), every file it creates
//! (`openat(2)` with `O_CREAT|O_EXCL`), renames, links and removals (a directory's is
//! the kernel layer's walk of `unlinkat(2)`). What is not a request: writing the bytes
//! of a blob, a record or an archive into a file the kernel layer created, and reading
//! the store's own files.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::manifest::{self, Config, Descriptor, Index, Manifest};
use super::reference::Reference;
use super::registry::{hex, sha256_digest};
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel, Mode};
use crate::lock::FileLock;

/// The annotation OCI layouts name images by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The digest the registry gave for the image (index or manifest): `docker images --digests`.
pub const REPO_DIGEST: &str = "io.contlab.repo-digest";
/// The total uncompressed size of the layers.
pub const SIZE: &str = "io.contlab.size";
/// The image a built one was made on, one instruction earlier (docker's `Parent`):
/// `mini build`'s cache and `history`'s IMAGE column follow it.
pub const PARENT: &str = "io.contlab.parent";

/// The store, opened (and locked: shared for readers, exclusive for writers, until
/// dropped).
pub struct Store {
    /// ROOT.
    pub root: PathBuf,
    /// ROOT/oci, the OCI layout.
    pub oci: PathBuf,
    exclusive: bool,
    _lock: FileLock,
}

/// One image of the store, resolved.
#[derive(Debug, Clone)]
pub struct Image {
    /// Its names in index.json (`docker.io/library/alpine:3.17`).
    pub names: Vec<String>,
    /// The index.json descriptor of its manifest.
    pub desc: Descriptor,
    /// The manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// The config bytes.
    pub config_bytes: Vec<u8>,
    /// The config: how a container of it runs ([`Config::config`]: Env, Cmd,
    /// Entrypoint, WorkingDir, User, StopSignal, Labels, ExposedPorts, Volumes), its
    /// layers' diff_ids and its history.
    pub config: Config,
}

impl Image {
    /// The image ID, as docker shows it: the config's digest.
    pub fn id(&self) -> &str {
        &self.manifest.config.digest
    }
}

/// What is known of a layer blob: its diff_id and uncompressed size.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Its size.
    pub size: u64,
}

/// What [`Store::remove`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The names taken away, as given in index.json.
    pub untagged: Vec<String>,
    /// Blobs deleted because nothing refers to them any more.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

pub(crate) fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::failed(format!("{what} {}: {e}", path.display()), "check the store directory (--root) and its disk")
}

/// The default store root: `$CONTLAB_ROOT`, else /var/lib/contlab.
pub fn default_root() -> PathBuf {
    std::env::var_os("CONTLAB_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib/contlab"))
}

/// `mkdir -p`, as a recipe of single requests: `mkdir(2)` of each missing level,
/// parents first (whether a level is there is read, not asked). A dry run makes none.
pub fn mkdir_p(k: &Kernel, p: &Path) -> Result<()> {
    if k.mode() == Mode::DryRun || p.as_os_str().is_empty() || p.is_dir() {
        return Ok(());
    }
    if let Some(parent) = p.parent() {
        mkdir_p(k, parent)?;
    }
    match k.mkdir(p, 0o755) {
        Err(e) if e.errno == Errno::EEXIST && p.is_dir() => Ok(()),
        r => r
            .hint(Errno::EACCES, "run as root, or choose a store you own with --root DIR (or $CONTLAB_ROOT)")
            .hint(Errno::EPERM, "run as root, or choose a store you own with --root DIR (or $CONTLAB_ROOT)"),
    }
}

/// Create `path` with `O_CREAT|O_EXCL` for writing; one left by a killed run (the
/// name is taken: `EEXIST`) is removed first. A dry run creates nothing (`None`).
pub(crate) fn create_fresh(k: &Kernel, path: &Path, mode: u32, what: &'static str) -> Result<Option<File>> {
    match k.create_new(path, mode, what) {
        Err(e) if e.errno == Errno::EEXIST => {
            k.why("left by an earlier run that did not finish");
            k.unlink(path)?;
            Ok(k.create_new(path, mode, what)?)
        }
        r => Ok(r?),
    }
}

impl Store {
    /// Open the store at `root`, creating it if needed, and take its lock
    /// (exclusive for writers). Waiting for another writer is announced.
    pub fn open(k: &Kernel, root: &Path, exclusive: bool) -> Result<Store> {
        let oci = root.join("oci");
        mkdir_p(k, root)?;
        k.why("one writer at a time: concurrent pulls of the same image must not interleave");
        let lock = crate::lock::lock(
            k,
            &root.join("lock"),
            exclusive,
            Some("the store is locked by another img-pull: waiting"),
        )
        .hint(Errno::EACCES, "run as root, or choose a store you own with --root DIR (or $CONTLAB_ROOT)")?;
        let st = Store { root: root.to_path_buf(), oci, exclusive, _lock: lock };
        for d in [st.oci.join("blobs/sha256"), root.join("tmp"), root.join("layerinfo"), root.join("layers")] {
            mkdir_p(k, &d)?;
        }
        let layout = st.oci.join("oci-layout");
        if k.mode() == Mode::Live && !layout.exists() {
            st.write_file(k, &layout, b"{\"imageLayoutVersion\":\"1.0.0\"}", false)?;
        }
        Ok(st)
    }

    /// Whether the store was opened for writing.
    pub fn exclusive(&self) -> bool {
        self.exclusive
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.oci.join("blobs/sha256").join(hex_of(digest))
    }

    /// Whether the store has a blob.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Where a download in progress is kept.
    pub fn partial_path(&self, digest: &str) -> PathBuf {
        self.root.join("tmp").join(format!("{}.partial", hex_of(digest)))
    }

    /// A fresh temp path in ROOT/tmp (same file system as the blobs).
    pub fn temp_path(&self, what: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root.join("tmp").join(format!("{what}.{}.{n}", std::process::id()))
    }

    /// Create a temp file in ROOT/tmp to write into (`None` in a dry run).
    pub fn create_temp(&self, k: &Kernel, what: &str) -> Result<(PathBuf, Option<File>)> {
        let p = self.temp_path(what);
        let f = create_fresh(k, &p, 0o644, "create a file to write, beside its final place")?;
        Ok((p, f))
    }

    /// Write `bytes` to `dest` atomically: a temp file in ROOT/tmp, written (and with
    /// `sync`, `fsync(2)`ed), then `rename(2)`d over `dest`. A dry run writes nothing.
    pub fn write_file(&self, k: &Kernel, dest: &Path, bytes: &[u8], sync: bool) -> Result<()> {
        let (tmp, f) = self.create_temp(k, "blob")?;
        let Some(mut f) = f else { return Ok(()) };
        if let Err(e) = f.write_all(bytes) {
            let _ = k.unlink(&tmp);
            return Err(io("cannot write", &tmp, e));
        }
        if sync {
            k.fsync_file(&f, &tmp)?;
        }
        drop(f);
        k.rename_over(&tmp, dest)?;
        Ok(())
    }

    /// Publish a verified temp file as the blob `digest`: rename(2) makes it appear whole.
    pub fn commit(&self, k: &Kernel, tmp: &Path, digest: &str) -> Result<()> {
        let dest = self.blob_path(digest);
        k.why("publish the verified blob: it appears whole under its digest, or not at all");
        k.rename_over(tmp, &dest)?;
        Ok(())
    }

    /// Store bytes as a blob (manifest, config, index); returns the digest.
    pub fn put_bytes(&self, k: &Kernel, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        if self.has_blob(&digest) || k.mode() == Mode::DryRun {
            return Ok(digest);
        }
        let (tmp, f) = self.create_temp(k, "blob")?;
        if let Some(mut f) = f {
            if let Err(e) = f.write_all(bytes) {
                let _ = k.unlink(&tmp);
                return Err(io("cannot write", &tmp, e));
            }
        }
        self.commit(k, &tmp, &digest)?;
        Ok(digest)
    }

    /// Read a blob into memory (at most `max` bytes), verifying its digest.
    pub fn read_blob(&self, digest: &str, max: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        let f = File::open(&p).map_err(|e| {
            Error::failed(
                format!("blob {digest} is missing from the store ({}): {e}", p.display()),
                "pull the image again",
            )
        })?;
        let mut v = Vec::new();
        f.take(max + 1).read_to_end(&mut v).map_err(|e| io("cannot read", &p, e))?;
        if v.len() as u64 > max || sha256_digest(&v) != digest {
            return Err(Error::failed(
                format!("blob {digest} in the store is corrupt ({})", p.display()),
                "remove the image and pull it again",
            ));
        }
        Ok(v)
    }

    /// What index.json says (an empty index if there is none yet).
    pub fn index(&self) -> Result<Index> {
        let p = self.oci.join("index.json");
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::failed(
                    format!("{} is not a valid image index: {e}", p.display()),
                    "restore it, or move the store away",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(manifest::OCI_INDEX.into()),
                manifests: vec![],
                annotations: None,
            }),
            Err(e) => Err(io("cannot read", &p, e)),
        }
    }

    /// Replace index.json: write `index.json.tmp` (made with `O_CREAT|O_EXCL`; one
    /// left by a killed run is removed), `fsync(2)`, `rename(2)`.
    pub fn write_index(&self, k: &Kernel, ix: &Index) -> Result<()> {
        if k.mode() == Mode::DryRun {
            k.note(format!(
                "would write {} with {} image(s)",
                self.oci.join("index.json").display(),
                ix.manifests.len()
            ));
            return Ok(());
        }
        let p = self.oci.join("index.json");
        let tmp = self.oci.join("index.json.tmp");
        let text = serde_json::to_vec_pretty(ix).expect("json");
        let Some(mut f) = create_fresh(k, &tmp, 0o644, "create the new index beside the old one")? else {
            return Ok(());
        };
        f.write_all(&text).map_err(|e| io("cannot write", &tmp, e))?;
        k.why("the new index must be on disk before it replaces the old one");
        k.fsync_file(&f, &tmp)?;
        drop(f);
        k.why("readers (skopeo, umoci, another img-pull) see the old index or the new one, never half");
        k.rename_over(&tmp, &p)?;
        Ok(())
    }

    /// Name `desc` as `name` in index.json, replacing what had that name.
    pub fn tag(&self, k: &Kernel, name: &str, mut desc: Descriptor) -> Result<()> {
        let mut ix = self.index()?;
        ix.manifests.retain(|d| d.annotation(REF_NAME) != Some(name));
        desc.annotations.get_or_insert_with(BTreeMap::new).insert(REF_NAME.into(), name.into());
        ix.manifests.push(desc);
        self.write_index(k, &ix)
    }

    /// Record a new image in index.json: named `name` (replacing what had that name),
    /// or, without a name, as an untagged entry (docker's `<none>:<none>`, what
    /// `docker commit` without a repository makes) unless the image is there already.
    pub fn add_image(&self, k: &Kernel, desc: Descriptor, name: Option<&str>) -> Result<()> {
        if let Some(n) = name {
            return self.tag(k, n, desc);
        }
        let mut ix = self.index()?;
        if ix.manifests.iter().any(|d| d.digest == desc.digest) {
            return Ok(());
        }
        ix.manifests.push(desc);
        self.write_index(k, &ix)
    }

    /// Give `img` the name `target` too (docker tag).
    pub fn tag_image(&self, k: &Kernel, img: &Image, target: &Reference) -> Result<()> {
        self.tag(k, &target.to_string(), img.desc.clone())
    }

    /// Resolve what the user typed: a reference (`alpine`, `localhost:5000/x:1`), an
    /// image ID or a prefix of one (`sha256:abc`, `abc123`).
    pub fn resolve(&self, what: &str) -> Result<Image> {
        let ix = self.index()?;
        let by_name = Reference::parse(what).ok().map(|r| r.to_string());
        let mut found: Option<&Descriptor> = None;
        if let Some(n) = &by_name {
            found = ix.manifests.iter().find(|d| d.annotation(REF_NAME) == Some(n.as_str()));
        }
        if found.is_none() {
            let h = what.strip_prefix("sha256:").unwrap_or(what);
            if h.len() >= 4 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                let cands: Vec<&Descriptor> = ix
                    .manifests
                    .iter()
                    .filter(|d| {
                        hex_of(&d.digest).starts_with(h)
                            || self.config_digest(&d.digest).is_some_and(|c| hex_of(&c).starts_with(h))
                    })
                    .collect();
                let distinct: HashSet<&str> = cands.iter().map(|d| d.digest.as_str()).collect();
                if distinct.len() > 1 {
                    return Err(Error::failed(
                        format!("{what:?} is ambiguous: {} images match", distinct.len()),
                        "give more digits",
                    ));
                }
                found = cands.first().copied();
            }
        }
        let Some(desc) = found else {
            return Err(Error::failed(
                format!("no image {what:?} in the store {}", self.root.display()),
                "`img-pull ls` lists the images; `img-pull pull NAME` fetches one",
            ));
        };
        let names = ix
            .manifests
            .iter()
            .filter(|d| d.digest == desc.digest)
            .filter_map(|d| d.annotation(REF_NAME).map(str::to_string))
            .collect();
        self.load_image(desc.clone(), names)
    }

    fn config_digest(&self, manifest_digest: &str) -> Option<String> {
        let b = self.read_blob(manifest_digest, manifest::MAX_MANIFEST).ok()?;
        let m: Manifest = serde_json::from_slice(&b).ok()?;
        Some(m.config.digest)
    }

    /// Read an image's manifest and config from the store.
    pub fn load_image(&self, desc: Descriptor, names: Vec<String>) -> Result<Image> {
        let manifest_bytes = self.read_blob(&desc.digest, manifest::MAX_MANIFEST)?;
        let (_, doc) = manifest::parse(&manifest_bytes, &desc.media_type).map_err(|e| {
            Error::failed(format!("manifest {} in the store: {e}", desc.digest), "remove the image and pull it again")
        })?;
        let manifest::Document::Image(m) = doc else {
            return Err(Error::failed(
                format!("{} is an index, not an image manifest", desc.digest),
                "name a single-platform image",
            ));
        };
        let config_bytes = self.read_blob(&m.config.digest, manifest::MAX_CONFIG)?;
        let config = manifest::parse_config(&config_bytes).map_err(|e| {
            Error::failed(format!("config {}: {e}", m.config.digest), "remove the image and pull it again")
        })?;
        Ok(Image { names, desc, manifest_bytes, manifest: m, config_bytes, config })
    }

    /// Every image in index.json, in order.
    pub fn images(&self) -> Result<Vec<Image>> {
        let ix = self.index()?;
        let mut out = Vec::new();
        for d in ix.manifests {
            let name = d.annotation(REF_NAME).map(str::to_string).into_iter().collect();
            out.push(self.load_image(d, name)?);
        }
        Ok(out)
    }

    fn layer_info_path(&self, digest: &str) -> PathBuf {
        self.root.join("layerinfo").join(format!("{}.json", hex_of(digest)))
    }

    /// What is known of a layer blob (from layerinfo/).
    pub fn layer_info(&self, digest: &str) -> Option<LayerInfo> {
        let b = std::fs::read(self.layer_info_path(digest)).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// docker's size of a layer (its `DiffSize`, what `docker images`, `docker history`
    /// and `docker system df` add up): the bytes of the files it holds once extracted —
    /// regular files (a hard-linked one once) and symlinks (their target's length), not
    /// directories, not the tar's headers and padding. Taken from the record
    /// `layerinfo/HEX.du` ([`Store::record_layer_size`]), else counted in the extracted
    /// layer (`layers/DIFFHEX`), else in the blob's tar (read, not recorded), else the
    /// blob's own size.
    pub fn layer_size(&self, layer: &Descriptor, diff_id: &str) -> u64 {
        if let Some(n) = std::fs::read_to_string(self.du_path(&layer.digest)).ok().and_then(|s| s.trim().parse().ok()) {
            return n;
        }
        self.count_layer_size(layer, diff_id).unwrap_or(layer.size)
    }

    fn du_path(&self, digest: &str) -> PathBuf {
        self.root.join("layerinfo").join(format!("{}.du", hex_of(digest)))
    }

    fn count_layer_size(&self, layer: &Descriptor, diff_id: &str) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.root.join("layers").join(hex_of(diff_id));
        if dir.is_dir() {
            let mut seen = HashSet::new();
            let mut total = 0;
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).ok()?.flatten() {
                    let m = e.path().symlink_metadata().ok()?;
                    if m.is_dir() {
                        stack.push(e.path());
                    } else if m.len() > 0 && seen.insert(m.ino()) {
                        total += m.len();
                    }
                }
            }
            return Some(total);
        }
        let f = File::open(self.blob_path(&layer.digest)).ok()?;
        let r = crate::layer::decompress(std::io::BufReader::new(f)).ok()?;
        let mut ar = tar::Archive::new(r);
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for e in ar.entries().ok()? {
            let e = e.ok()?;
            let name =
                String::from_utf8_lossy(&e.path_bytes()).trim_start_matches("./").trim_end_matches('/').to_string();
            let n = match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => e.size(),
                tar::EntryType::Symlink => e.link_name_bytes().map(|t| t.len() as u64).unwrap_or(0),
                _ => 0,
            };
            sizes.insert(name, n);
        }
        Some(sizes.values().sum())
    }

    /// Count docker's size of a layer ([`Store::layer_size`]) and record it in
    /// `layerinfo/HEX.du` (written beside, renamed into place), so that listing images
    /// does not decompress their layers again. The store must be open for writing.
    pub fn record_layer_size(&self, k: &Kernel, layer: &Descriptor, diff_id: &str) -> Result<()> {
        if !self.exclusive || self.du_path(&layer.digest).exists() {
            return Ok(());
        }
        let Some(n) = self.count_layer_size(layer, diff_id) else { return Ok(()) };
        k.why("remember the layer's size once extracted: `images` need not decompress it again");
        self.write_file(k, &self.du_path(&layer.digest), n.to_string().as_bytes(), false)
    }

    /// Record what is known of a layer blob: written beside, renamed into place.
    pub fn put_layer_info(&self, k: &Kernel, digest: &str, info: &LayerInfo) -> Result<()> {
        let p = self.layer_info_path(digest);
        self.write_file(k, &p, &serde_json::to_vec(info).expect("json"), false)
    }

    /// Untag what the user named (a reference: that name only; an image ID: every name
    /// of the image), in one new index.json, then collect the garbage (see
    /// [`Store::gc`]). Every name is resolved before anything changes.
    pub fn remove(&self, k: &Kernel, what: &[String]) -> Result<Removed> {
        let mut ix = self.index()?;
        let mut gone_all = Vec::new();
        for w in what {
            let img = self.resolve(w)?;
            let by_name = Reference::parse(w).ok().map(|r| r.to_string()).filter(|n| img.names.contains(n));
            let gone: Vec<String> = match &by_name {
                Some(n) => vec![n.clone()],
                None => img.names.clone(),
            };
            ix.manifests.retain(|d| {
                !(d.digest == img.desc.digest && d.annotation(REF_NAME).is_some_and(|n| gone.iter().any(|g| g == n)))
            });
            gone_all.extend(gone);
        }
        self.write_index(k, &ix)?;
        let (blobs, bytes) = self.gc(k, &ix)?;
        Ok(Removed { untagged: gone_all, blobs, bytes })
    }

    /// Remove every blob (with its layerinfo record) and extracted layer that no
    /// image in `ix` refers to, and what interrupted commands left in ROOT/tmp
    /// (partial downloads included). Returns (blobs removed, bytes freed).
    /// `ix` is the index to keep (in a dry run, the one that would have been written).
    pub fn gc(&self, k: &Kernel, ix: &Index) -> Result<(usize, u64)> {
        self.gc_keeping(k, ix, &HashSet::new())
    }

    /// [`Store::gc`], keeping besides the layers whose diff_ids are in `in_use` (their
    /// extracted directories and their blobs) although no image in `ix` has them: the
    /// layers a container's overlay still stacks after its image was removed (`docker
    /// rmi -f` keeps them too, until the container goes).
    pub fn gc_keeping(&self, k: &Kernel, ix: &Index, in_use: &HashSet<String>) -> Result<(usize, u64)> {
        let mut keep: HashSet<String> = HashSet::new();
        let mut keep_diff: HashSet<String> = in_use.iter().map(|d| hex_of(d).to_string()).collect();
        for name in names_in(&self.root.join("layerinfo")) {
            let blob = name.trim_end_matches(".json");
            if self.layer_info(blob).is_some_and(|i| keep_diff.contains(hex_of(&i.diff_id))) {
                keep.insert(blob.to_string());
            }
        }
        for d in &ix.manifests {
            keep.insert(hex_of(&d.digest).to_string());
            if let Some(r) = d.annotation(REPO_DIGEST) {
                keep.insert(hex_of(r).to_string());
            }
            if let Ok(img) = self.load_image(d.clone(), vec![]) {
                keep.insert(hex_of(&img.manifest.config.digest).to_string());
                for l in &img.manifest.layers {
                    keep.insert(hex_of(&l.digest).to_string());
                }
                for di in &img.config.rootfs.diff_ids {
                    keep_diff.insert(hex_of(di).to_string());
                }
            }
        }
        let dir = self.oci.join("blobs/sha256");
        let mut n = 0;
        let mut bytes = 0;
        k.note(format!("garbage collection: {} blob(s) are still referenced by index.json", keep.len()));
        let mut infos = Vec::new();
        for name in k.read_dir(&dir)? {
            if keep.contains(&name) {
                continue;
            }
            let p = dir.join(&name);
            bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            k.why("no image in index.json refers to this blob any more");
            k.unlink(&p)?;
            infos.push(self.layer_info_path(&name));
            n += 1;
        }
        let dus: Vec<PathBuf> = infos.iter().map(|i| i.with_extension("du")).collect();
        for info in infos.iter().chain(&dus).filter(|i| i.exists()) {
            k.why("the record of a blob that is gone");
            k.unlink(info)?;
        }
        for name in names_in(&self.root.join("layers")) {
            if !keep_diff.contains(&name) {
                k.why("an extracted layer no image uses");
                remove(k, &self.root.join("layers").join(&name))?;
            }
        }
        for name in names_in(&self.root.join("tmp")) {
            k.why("left in tmp/ by a command that did not finish");
            remove(k, &self.root.join("tmp").join(&name))?;
        }
        Ok((n, bytes))
    }

    /// Remove what a killed command left in ROOT/tmp, except partial downloads (which
    /// the next pull resumes): only a writer (exclusive lock) may, as nobody else is
    /// writing then.
    pub fn clean_tmp(&self, k: &Kernel) -> Result<()> {
        if !self.exclusive || k.mode() == Mode::DryRun {
            return Ok(());
        }
        for name in names_in(&self.root.join("tmp")).into_iter().filter(|n| !n.ends_with(".partial")) {
            k.why("left in tmp/ by a command that did not finish");
            remove(k, &self.root.join("tmp").join(&name))?;
        }
        Ok(())
    }
}

/// The names in one of the store's own directories, sorted (a read: nothing when it
/// is missing).
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Remove a file (`unlink(2)`) or a directory with its content (the kernel layer's
/// walk of `unlinkat(2)`).
fn remove(k: &Kernel, p: &Path) -> Result<()> {
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        crate::layer::remove_tree(k, p)?;
    } else {
        k.unlink(p)?;
    }
    Ok(())
}

/// Hash a file: `sha256:HEX` and its size.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    use sha2::Digest as _;
    let mut f = File::open(path).map_err(|e| io("cannot read", path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(|e| io("cannot read", path, e))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    Ok((format!("sha256:{}", hex(&h.finalize())), n))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;
    use std::rc::Rc;

    use super::*;
    use crate::kernel::{Event, Ret, Sink, Target, TraceFormat, Tracer};

    fn live() -> (Kernel, Rc<RefCell<Vec<Event>>>) {
        let k = Kernel::new(crate::image::TOOL, Mode::Live, Tracer::silent());
        let mem = Rc::new(RefCell::new(Vec::new()));
        k.tracer().add_sink(Sink::new(Target::Memory(mem.clone()), TraceFormat::Json, false, false));
        (k, mem)
    }

    fn unquote(a: &str) -> String {
        a.trim_matches('"').to_string()
    }

    /// Every path the traced requests made: directories, created files, rename targets.
    fn made(ev: &[Event]) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        for e in ev.iter().filter(|e| matches!(e.ret, Ret::Ok(_))) {
            match e.call.as_str() {
                "mkdir" => {
                    s.insert(unquote(&e.args[0]));
                }
                "openat" if e.args.iter().any(|a| a.contains("O_CREAT")) => {
                    s.insert(unquote(&e.args[1]));
                }
                "rename" => {
                    s.insert(unquote(&e.args[1]));
                }
                _ => {}
            }
        }
        s
    }

    fn tree(root: &Path) -> BTreeSet<String> {
        let mut s = BTreeSet::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                }
                s.insert(e.path().display().to_string());
            }
        }
        s
    }

    /// What the store's operations leave on disk was made, every bit, by requests of
    /// the trace (a unit-sized version of the strace cross-check); and `remove`
    /// takes it all away again with traced unlinks.
    #[test]
    fn every_file_of_the_store_is_made_by_a_traced_request() {
        let root = std::env::temp_dir().join(format!("contlab-store-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (k, mem) = live();
        let st = Store::open(&k, &root, true).unwrap();
        let layer = st.put_bytes(&k, b"pretend layer").unwrap();
        st.put_layer_info(&k, &layer, &LayerInfo { diff_id: layer.clone(), size: 13 }).unwrap();
        let cfg = st
            .put_bytes(&k, br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)
            .unwrap();
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor::new(manifest::OCI_CONFIG, &cfg, 77),
            layers: vec![],
            annotations: None,
        };
        let mb = serde_json::to_vec(&m).unwrap();
        let md = st.put_bytes(&k, &mb).unwrap();
        st.tag(&k, "docker.io/library/x:1", Descriptor::new(manifest::OCI_MANIFEST, &md, mb.len() as u64)).unwrap();
        // A stale temp file of a killed run: a writer removes it.
        std::fs::write(root.join("tmp/blob.1.0"), "stale").unwrap();
        st.clean_tmp(&k).unwrap();
        let on_disk = tree(&root);
        let by_requests = made(&mem.borrow());
        let untraced: Vec<&String> = on_disk.iter().filter(|p| !by_requests.contains(*p)).collect();
        assert!(untraced.is_empty(), "made beside the kernel layer: {untraced:?}");
        assert!(on_disk.contains(&root.join("oci/oci-layout").display().to_string()));
        let img = st.resolve("x:1").unwrap();
        assert_eq!(img.names, ["docker.io/library/x:1"]);
        // rm: the name, then every blob and record nothing refers to.
        mem.borrow_mut().clear();
        let r = st.remove(&k, &["x:1".to_string()]).unwrap();
        assert_eq!((r.untagged.len(), r.blobs), (1, 3), "{r:?}");
        let unlinked: BTreeSet<String> =
            mem.borrow().iter().filter(|e| e.call == "unlink").map(|e| unquote(&e.args[0])).collect();
        for p in [st.blob_path(&layer), st.blob_path(&cfg), st.blob_path(&md), st.layer_info_path(&layer)] {
            assert!(unlinked.contains(&p.display().to_string()), "{} removed by a traced unlink", p.display());
            assert!(!p.exists());
        }
        drop(st);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dry_run_store_takes_the_lock_without_writing() {
        let k = Kernel::recording(crate::image::TOOL);
        let dir = std::env::temp_dir().join(format!("contlab-img-unit-{}", std::process::id()));
        let st = Store::open(&k, &dir, true).unwrap();
        assert!(!dir.exists(), "a dry run creates nothing");
        st.write_index(&k, &st.index().unwrap()).unwrap();
        let ev = k.events();
        assert!(ev.iter().any(|e| e.call == "openat" && e.args[1].ends_with("/lock\"")), "the lock is asked for");
        assert!(ev.iter().any(|e| e.call == "note" && e.args[0].contains("would write")));
    }

    /// `mkdir -p` is one traced mkdir(2) per missing level, parents first, and nothing
    /// for what exists.
    #[test]
    fn mkdir_p_makes_each_missing_level() {
        let root = std::env::temp_dir().join(format!("contlab-mkdirp-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).unwrap();
        let (k, mem) = live();
        mkdir_p(&k, &root.join("a/b/c")).unwrap();
        mkdir_p(&k, &root.join("a/b")).unwrap();
        let dirs: Vec<String> =
            mem.borrow().iter().filter(|e| e.call == "mkdir").map(|e| unquote(&e.args[0])).collect();
        let want: Vec<String> = ["a", "a/b", "a/b/c"].iter().map(|d| root.join(d).display().to_string()).collect();
        assert_eq!(dirs, want);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A tar of a 10-byte file, its hard link, a symlink to `abc` and a directory: 13
    /// bytes in docker's count (the link once, the symlink's target, no directory).
    fn small_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "d/", &[][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(10);
        h.set_mode(0o644);
        b.append_data(&mut h, "d/f", &b"0123456789"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "d/g", "d/f").unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "s", "abc").unwrap();
        b.into_inner().unwrap()
    }

    /// docker's size of a layer is its files' bytes, counted in the tar before the layer
    /// is extracted and recorded once; `gc_keeping` keeps a layer a container still
    /// stacks although no image has it, and `gc` does not.
    #[test]
    fn layer_sizes_as_docker_and_gc_keeps_what_containers_use() {
        let root = std::env::temp_dir().join(format!("contlab-store-du-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (k, _) = live();
        let st = Store::open(&k, &root, true).unwrap();
        let tar = small_tar();
        let digest = st.put_bytes(&k, &tar).unwrap();
        let diff_id = digest.clone();
        st.put_layer_info(&k, &digest, &LayerInfo { diff_id: diff_id.clone(), size: tar.len() as u64 }).unwrap();
        let d = Descriptor::new(manifest::OCI_LAYER_TAR, &digest, tar.len() as u64);
        assert_eq!(st.layer_size(&d, &diff_id), 13, "10 bytes once, 3 of the symlink, not the tar's {}", tar.len());
        st.record_layer_size(&k, &d, &diff_id).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("layerinfo").join(format!("{}.du", hex_of(&digest)))).unwrap(),
            "13"
        );
        let ix = st.index().unwrap();
        let keep: HashSet<String> = [diff_id.clone()].into();
        assert_eq!(st.gc_keeping(&k, &ix, &keep).unwrap().0, 0, "a container's layer stays");
        assert!(st.has_blob(&digest));
        assert_eq!(st.gc(&k, &ix).unwrap().0, 1);
        assert!(!st.has_blob(&digest));
        assert!(
            names_in(&root.join("layerinfo")).is_empty(),
            "its records go with it: {:?}",
            names_in(&root.join("layerinfo"))
        );
        drop(st);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
