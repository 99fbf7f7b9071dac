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
//!   tmp/                     downloads in progress (HEX.partial, kept to resume)
//! ```
//!
//! Every file that others read is written beside its final place and then
//! `rename(2)`d over it: a blob appears whole or not at all, and index.json is
//! always either the old or the new one.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::manifest::{self, Config, Descriptor, Index, Manifest};
use super::reference::Reference;
use super::registry::{hex, sha256_digest};
use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, Mode};

/// The annotation OCI layouts name images by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The digest the registry gave for the image (index or manifest): `docker images --digests`.
pub const REPO_DIGEST: &str = "io.contlab.repo-digest";
/// The total uncompressed size of the layers.
pub const SIZE: &str = "io.contlab.size";

/// The store, opened (and locked).
pub struct Store {
    /// ROOT.
    pub root: PathBuf,
    /// ROOT/oci, the OCI layout.
    pub oci: PathBuf,
    _lock: Option<File>,
}

/// One image of the store, resolved.
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
    /// The config.
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

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::failed(format!("{what} {}: {e}", path.display()), "check the store directory (--root) and its disk")
}

/// The default store root: `$CONTLAB_ROOT`, else /var/lib/contlab.
pub fn default_root() -> PathBuf {
    std::env::var_os("CONTLAB_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/lib/contlab"))
}

impl Store {
    /// Open the store at `root`, creating it if needed, and take its lock
    /// (exclusive for writers). Waiting for another writer is announced.
    pub fn open(k: &Kernel, root: &Path, exclusive: bool) -> Result<Store> {
        let oci = root.join("oci");
        let dry = k.mode() == Mode::DryRun;
        if !dry {
            for d in [oci.join("blobs/sha256"), root.join("tmp"), root.join("layerinfo"), root.join("layers")] {
                std::fs::create_dir_all(&d).map_err(|e| {
                    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                        "run as root, or choose a store you own with --root DIR (or $CONTLAB_ROOT)"
                    } else {
                        "check the path given with --root"
                    };
                    Error::failed(format!("cannot create the store directory {}: {e}", d.display()), hint)
                })?;
            }
            let layout = oci.join("oci-layout");
            if !layout.exists() {
                std::fs::write(&layout, "{\"imageLayoutVersion\":\"1.0.0\"}")
                    .map_err(|e| io("cannot write", &layout, e))?;
            }
        }
        let lock_path = root.join("lock");
        let lock = match std::fs::OpenOptions::new().create(!dry).truncate(false).write(true).open(&lock_path) {
            Ok(f) => {
                k.why("one writer at a time: concurrent pulls of the same image must not interleave");
                match k.flock(&f, &lock_path, exclusive, true) {
                    Ok(()) => {}
                    Err(e) if e.errno == Errno::EWOULDBLOCK => {
                        k.note("the store is locked by another img-pull: waiting");
                        k.flock(&f, &lock_path, exclusive, false)?;
                    }
                    Err(e) => return Err(e.into()),
                }
                Some(f)
            }
            Err(_) if dry => None,
            Err(e) => return Err(io("cannot open the lock file", &lock_path, e)),
        };
        Ok(Store { root: root.to_path_buf(), oci, _lock: lock })
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
        let tmp = self.temp_path("blob");
        std::fs::write(&tmp, bytes).map_err(|e| io("cannot write", &tmp, e))?;
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

    /// Replace index.json: write a temp file, fsync(2), rename(2).
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
        let mut f = File::create(&tmp).map_err(|e| io("cannot write", &tmp, e))?;
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

    /// What is known of a layer blob (from layerinfo/).
    pub fn layer_info(&self, digest: &str) -> Option<LayerInfo> {
        let b = std::fs::read(self.root.join("layerinfo").join(format!("{}.json", hex_of(digest)))).ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Record what is known of a layer blob.
    pub fn put_layer_info(&self, digest: &str, info: &LayerInfo) -> Result<()> {
        let p = self.root.join("layerinfo").join(format!("{}.json", hex_of(digest)));
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(info).expect("json")).map_err(|e| io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| io("cannot write", &p, e))
    }

    /// Remove every blob (and layer cache) that no image in index.json refers to.
    /// Returns (blobs removed, bytes freed).
    /// `ix` is the index to keep (in a dry run, the one that would have been written).
    pub fn gc(&self, k: &Kernel, ix: &Index) -> Result<(usize, u64)> {
        let mut keep: HashSet<String> = HashSet::new();
        let mut keep_diff: HashSet<String> = HashSet::new();
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
        for name in k.read_dir(&dir)? {
            if keep.contains(&name) {
                continue;
            }
            let p = dir.join(&name);
            bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            k.why("no image in index.json refers to this blob any more");
            k.unlink(&p)?;
            let info = self.root.join("layerinfo").join(format!("{name}.json"));
            if info.exists() && k.mode() == Mode::Live {
                let _ = std::fs::remove_file(info);
            }
            n += 1;
        }
        let layers = self.root.join("layers");
        if let Ok(rd) = std::fs::read_dir(&layers) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep_diff.contains(&name) {
                    k.note(format!("removing the extracted layer {} (no image uses it)", e.path().display()));
                    if k.mode() == Mode::Live {
                        std::fs::remove_dir_all(e.path()).map_err(|er| io("cannot remove", &e.path(), er))?;
                    }
                }
            }
        }
        Ok((n, bytes))
    }
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
