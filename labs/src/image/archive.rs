//! Images as files: `docker save` tar archives and OCI layout directories.
//!
//! `docker save` writes a tar with a `manifest.json` (one entry per image: `Config`,
//! `RepoTags`, `Layers`), each config as `HEX.json` and each layer as an
//! *uncompressed* `HEX/layer.tar` (HEX = its diff_id), plus a legacy `repositories`
//! file. `docker load`, `podman load` and skopeo's `docker-archive:` read it. Loading
//! reads `manifest.json` and follows its paths, so the newer layout of docker 25
//! (layers under `blobs/sha256/`) loads too.
//!
//! Loading trusts nothing in the archive: before anything is kept, each layer must hash
//! to its diff_id, and each entry of each layer is checked (no absolute path, no `..`,
//! no path through a symlink the layer made, no hard link or symlink climbing out of
//! the root, no device node), while the layers' inflated bytes are counted against the
//! free space of the store's disk (a *decompression bomb* stops there). Links between
//! the archive's own files (docker < 25 and podman link a layer written twice) are
//! followed inside the archive only.
//!
//! An OCI layout directory is the store's own format: exporting one copies the blobs
//! an image needs and names it in that directory's index.json.
//!
//! Every file these operations create, link, rename or remove is a request of the
//! kernel layer (`openat(2)` with `O_CREAT|O_EXCL`, `linkat(2)`, `rename(2)`,
//! `unlink(2)`, `mkdir(2)`); the bytes of the archive, of a copied blob or of a
//! decompressed layer are plain writes into a file it created. Nothing is published
//! (renamed into place) before everything it needs has been checked, and the temp
//! files of a failed run are removed.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::manifest::{self, Descriptor, Manifest};
use super::pull::{verify_diff_id, HashReader};
use super::reference::Reference;
use super::registry::{hex, short};
use super::store::{self, create_fresh, hash_file, mkdir_p, Image, LayerInfo, Store};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::failed(format!("{what} {}: {e}", path.display()), "check the path and the disk")
}

fn hex_of(d: &str) -> &str {
    d.strip_prefix("sha256:").unwrap_or(d)
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// `img-pull save` to a file: the archive is written as `OUT.partial` (made with
/// `O_CREAT|O_EXCL`), `fsync(2)`ed, then `rename(2)`d to `output`. `images` are what
/// the user named (their names pick the `RepoTags`), resolved. A dry run writes
/// nothing.
pub fn save_file(k: &Kernel, st: &Store, images: &[(String, Image)], output: &Path) -> Result<()> {
    if k.mode() == Mode::DryRun {
        k.note(format!("would write {} image(s) in docker save format", images.len()));
        return Ok(());
    }
    let tmp = output.with_extension("tar.partial");
    let Some(f) = create_fresh(k, &tmp, 0o644, "create the archive beside its final name")? else { return Ok(()) };
    let mut w = std::io::BufWriter::new(f);
    if let Err(e) = save(k, st, images, &mut w) {
        drop(w);
        let _ = k.unlink(&tmp);
        return Err(e);
    }
    let f = w.into_inner().map_err(|e| io("cannot write", &tmp, e.into_error()))?;
    k.fsync_file(&f, &tmp)?;
    drop(f);
    k.rename_over(&tmp, output)?;
    Ok(())
}

/// `img-pull save`: `images` to `out` as a `docker save` tar. Each layer is
/// decompressed to a temp file in ROOT/tmp first (a tar header needs the size), removed
/// once copied. A dry run writes nothing. The `RepoTags` of each image are the name the
/// user gave when it is one of the image's, else all its names.
pub fn save(k: &Kernel, st: &Store, images: &[(String, Image)], out: &mut dyn Write) -> Result<()> {
    let tagged: Vec<(Image, Vec<String>)> = images
        .iter()
        .map(|(asked, img)| {
            let tags: Vec<String> = match Reference::parse(asked) {
                Ok(r) if img.names.contains(&r.to_string()) && r.digest.is_none() => vec![r.familiar()],
                _ => img
                    .names
                    .iter()
                    .filter_map(|n| Reference::parse(n).ok())
                    .filter(|r| r.digest.is_none())
                    .map(|r| r.familiar())
                    .collect(),
            };
            (img.clone(), tags)
        })
        .collect();
    save_tagged(k, st, &tagged, out)
}

/// `docker save`: each image with the `RepoTags` to give it (familiar names,
/// `alpine:3.17`; none for an image saved by ID), to `out` as a `docker save` tar. An
/// image named twice is written once, with the tags of both.
pub fn save_tagged(k: &Kernel, st: &Store, images: &[(Image, Vec<String>)], out: &mut dyn Write) -> Result<()> {
    if k.mode() == Mode::DryRun {
        k.note(format!("would write {} image(s) in docker save format", images.len()));
        return Ok(());
    }
    let mut tb = tar::Builder::new(out);
    let mut written: std::collections::HashSet<String> = Default::default();
    // (config name, tags, layers), one per image.
    let mut entries: Vec<(String, Vec<String>, Vec<String>)> = vec![];
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, tags) in images {
        let cfg_name = format!("{}.json", hex_of(img.id()));
        if written.insert(cfg_name.clone()) {
            let mut h = header(img.config_bytes.len() as u64, 0o644);
            tb.append_data(&mut h, &cfg_name, &img.config_bytes[..]).map_err(output_error)?;
        }
        let mut layers = vec![];
        for (i, l) in img.manifest.layers.iter().enumerate() {
            let di = &img.config.rootfs.diff_ids[i];
            let name = format!("{}/layer.tar", hex_of(di));
            if written.insert(name.clone()) {
                let (tmp, t) = st.create_temp(k, "save-layer")?;
                let t = t.ok_or_else(|| Error::failed("no temp file in a dry run", "run without --dry-run"))?;
                let r = save_layer(&mut tb, st, &l.digest, di, &name, t, &tmp);
                k.why("the decompressed copy of the layer is in the archive now");
                let gone = k.unlink(&tmp);
                r?;
                gone?;
                let v = b"1.0";
                tb.append_data(&mut header(3, 0o644), format!("{}/VERSION", hex_of(di)), &v[..])
                    .map_err(output_error)?;
            }
            layers.push(name);
        }
        for t in tags {
            if let Ok(r) = Reference::parse(t) {
                let top = layers.last().map(|l| l.trim_end_matches("/layer.tar").to_string()).unwrap_or_default();
                repos.entry(r.familiar_name()).or_default().insert(r.tag.clone().unwrap_or_default(), top);
            }
        }
        k.note(format!("saved {} ({} layer(s), image ID {})", tags.join(", "), layers.len(), short(img.id())));
        match entries.iter_mut().find(|(c, _, _)| *c == cfg_name) {
            Some((_, have, _)) => have.extend(tags.iter().filter(|t| !have.contains(t)).cloned().collect::<Vec<_>>()),
            None => entries.push((cfg_name, tags.clone(), layers)),
        }
    }
    let entries: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|(c, tags, layers)| {
            let tags = if tags.is_empty() { serde_json::Value::Null } else { tags.into() };
            serde_json::json!({"Config": c, "RepoTags": tags, "Layers": layers})
        })
        .collect();
    let m = serde_json::to_vec(&entries).expect("json");
    tb.append_data(&mut header(m.len() as u64, 0o644), "manifest.json", &m[..]).map_err(output_error)?;
    let r = serde_json::to_vec(&repos).expect("json");
    tb.append_data(&mut header(r.len() as u64, 0o644), "repositories", &r[..]).map_err(output_error)?;
    let inner = tb.into_inner().map_err(output_error)?;
    inner.flush().map_err(output_error)
}

/// Writing the archive failed (a closed stdout is a quiet end, as for every tool).
fn output_error(e: std::io::Error) -> Error {
    Error::Output(e)
}

/// Decompress the blob `digest` into the temp file `t` (`tmp`), check its diff_id, and
/// append it to the archive as `name`.
fn save_layer(
    tb: &mut tar::Builder<&mut dyn Write>,
    st: &Store,
    digest: &str,
    di: &str,
    name: &str,
    mut t: File,
    tmp: &Path,
) -> Result<()> {
    let bp = st.blob_path(digest);
    let blob = File::open(&bp).map_err(|e| io("cannot read", &bp, e))?;
    let mut h = HashReader::new(crate::layer::decompress(std::io::BufReader::new(blob))?);
    let copied = std::io::copy(&mut h, &mut t);
    if copied.is_err() || h.digest() != di {
        return Err(Error::failed(
            format!("layer {digest} does not decompress to its diff_id {di}"),
            "the store is corrupt: pull the image again",
        ));
    }
    let size = t.metadata().map_err(|e| io("cannot stat", tmp, e))?.len();
    let mut hd = header(size, 0o644);
    let f = File::open(tmp).map_err(|e| io("cannot read", tmp, e))?;
    tb.append_data(&mut hd, name, f).map_err(output_error)
}

/// Reads through, copying what it reads to a file (none in a dry run), hashing it, and
/// keeping its first bytes.
struct Tee<R> {
    inner: R,
    file: Option<File>,
    hasher: sha2::Sha256,
    count: u64,
    head: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(f) = &mut self.file {
            f.write_all(&buf[..n])?;
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.head.len() < 4 {
            let more = (4 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..more]);
        }
        Ok(n)
    }
}

fn clean(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.trim_start_matches("./").to_string()
}

#[derive(serde::Deserialize)]
struct SaveEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A layer read from the archive into a temp file (none in a dry run).
struct Staged {
    tmp: Option<PathBuf>,
    digest: String,
    size: u64,
    media_type: String,
    diff_id: String,
    usize: u64,
}

/// What [`load`] put in the store, for each image of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// An image with a name (`Loaded image: NAME`, docker's familiar form).
    Image(String),
    /// An image without a name (`Loaded image ID: sha256:…`).
    Id(String),
}

/// Remove the temp files of staged layers.
fn unstage<'a>(k: &Kernel, staged: impl Iterator<Item = &'a Option<PathBuf>>) {
    for t in staged.flatten() {
        k.why("a temp file of a load that did not go through");
        let _ = k.unlink(t);
    }
}

/// How an entry of the archive (not of a layer) is kept from pass 1 to pass 2.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outer {
    /// A regular file.
    File,
    /// A symlink or hard link to another entry of the archive (docker < 25 links a
    /// layer it already wrote: `HEX2/layer.tar -> ../HEX1/layer.tar`).
    Alias(String),
    /// Anything else (a directory, a device node, a FIFO): its kind.
    Other(&'static str),
}

fn kind_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Directory => "a directory",
        tar::EntryType::Char => "a character device",
        tar::EntryType::Block => "a block device",
        tar::EntryType::Fifo => "a FIFO",
        _ => "not a regular file",
    }
}

/// `..`-free, relative form of `target` seen from the directory of `from` (both names
/// of the archive); `None` when it would climb above the archive's top.
fn resolve_in_archive(from: &str, target: &str, hard: bool) -> Option<String> {
    let mut parts: Vec<&str> = if hard || target.starts_with('/') {
        vec![]
    } else {
        from.split('/').filter(|p| !p.is_empty() && *p != ".").collect()
    };
    if !hard && !target.starts_with('/') {
        parts.pop();
    }
    if target.starts_with('/') {
        return None;
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A reader that fails once more than `left` bytes came through: a layer that inflates
/// beyond what the store's disk can ever hold (a *gzip bomb*) is stopped there, not
/// decompressed to the end.
struct Bounded<R> {
    inner: R,
    left: u64,
    hit: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.hit.set(true);
            return Err(std::io::Error::other("the layer inflates beyond the bound"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Check one entry of a layer before anything of the archive is kept: the name must
/// stay inside the root (no absolute path, no `..`, not through a symlink the layer
/// made before), a hard link must name an entry inside, a symlink must not climb
/// above the root, and device nodes are refused (an image from a file has no business
/// handing a container the host's disks). `layer` names the layer in messages.
fn check_layer_entry(
    layer: &str,
    e: &tar::Entry<'_, impl Read>,
    symlinks: &mut std::collections::HashSet<String>,
) -> Result<()> {
    let raw = e.path_bytes();
    let name = String::from_utf8_lossy(&raw).into_owned();
    let refuse = |why: String| {
        Error::failed(
            format!("refusing layer {layer}: entry {name:?} {why}"),
            "the archive is hostile or broken; nothing was loaded",
        )
    };
    if name.starts_with('/') {
        return Err(refuse("is an absolute path".into()));
    }
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") {
        return Err(refuse("has a `..` component that would climb out of the root".into()));
    }
    for i in 1..parts.len() {
        let above = parts[..i].join("/");
        if symlinks.contains(&above) {
            return Err(refuse(format!("would be written through the symlink {above:?} the layer made")));
        }
    }
    let clean = parts.join("/");
    let et = e.header().entry_type();
    let target = e.link_name_bytes().map(|t| String::from_utf8_lossy(&t).into_owned());
    match et {
        tar::EntryType::Char | tar::EntryType::Block => {
            let dev = (e.header().device_major().ok().flatten(), e.header().device_minor().ok().flatten());
            return Err(refuse(format!(
                "is {} ({}:{}): device nodes are refused in a loaded image",
                kind_name(et),
                dev.0.unwrap_or(0),
                dev.1.unwrap_or(0)
            )));
        }
        tar::EntryType::Link => {
            let t = target.unwrap_or_default();
            if resolve_in_archive(&clean, &t, true).is_none() || t.split('/').any(|c| c == "..") {
                return Err(refuse(format!("is a hard link to {t:?}, outside the root")));
            }
        }
        tar::EntryType::Symlink => {
            let t = target.unwrap_or_default();
            if !t.starts_with('/') && resolve_in_archive(&clean, &t, false).is_none() {
                return Err(refuse(format!("is a symlink to {t:?}, which climbs above the root")));
            }
            symlinks.insert(clean);
        }
        _ => {
            symlinks.remove(&clean);
        }
    }
    Ok(())
}

/// `docker load` from a stream (stdin): the stream is copied into a temp file of
/// ROOT/tmp first (the archive is read twice), removed at the end whatever happens.
pub fn load_stream(k: &Kernel, st: &Store, input: &mut dyn Read) -> Result<Vec<Loaded>> {
    let (tmp, f) = st.create_temp(k, "load-stdin")?;
    let Some(mut f) = f else {
        k.note("would read the archive from stdin and load it");
        return Ok(vec![]);
    };
    let copied = std::io::copy(input, &mut f);
    drop(f);
    let r = match copied {
        Ok(0) => Err(Error::failed(
            "requested load from stdin, but stdin is empty",
            "pipe an archive in (mini load < image.tar) or give it with -i FILE",
        )),
        Ok(_) => load(k, st, &tmp),
        Err(e) => Err(Error::failed(format!("reading the archive from stdin: {e}"), "pipe a tar archive in")),
    };
    k.why("the copy of the archive read from stdin");
    let gone = k.unlink(&tmp);
    let loaded = r?;
    gone?;
    Ok(loaded)
}

/// `img-pull load`: read a docker-save tar into the store (open for writing). Nothing
/// is published until every layer has been checked against its image's diff_ids and,
/// entry by entry, for hostile content (see the module documentation); a layer that
/// inflates beyond the free space of the store's disk is refused (it could never be
/// unpacked); on a refusal the temp files go and the store is left as it was.
pub fn load(k: &Kernel, st: &Store, input: &Path) -> Result<Vec<Loaded>> {
    let open = || -> Result<tar::Archive<File>> {
        Ok(tar::Archive::new(File::open(input).map_err(|e| io("cannot open", input, e))?))
    };
    let bad = |e: std::io::Error| {
        Error::failed(
            format!("{} is not a readable tar archive: {e}", input.display()),
            "give a file made by docker save, podman save or img-pull save",
        )
    };
    // Pass 1: manifest.json, and what each entry is.
    let mut entries: Option<Vec<SaveEntry>> = None;
    let mut kinds: HashMap<String, Outer> = HashMap::new();
    for e in open()?.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let p = clean(&e.path().map_err(bad)?);
        let et = e.header().entry_type();
        let kind = match et {
            tar::EntryType::Regular | tar::EntryType::Continuous => Outer::File,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let t = e.link_name().map_err(bad)?.map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                match resolve_in_archive(&p, &t, et == tar::EntryType::Link) {
                    Some(to) => Outer::Alias(to),
                    None => Outer::Other("a link pointing outside the archive"),
                }
            }
            other => Outer::Other(kind_name(other)),
        };
        if p == "manifest.json" {
            if kind != Outer::File {
                return Err(Error::failed(
                    format!("manifest.json in {} is not a regular file", input.display()),
                    "the archive is hostile or broken; nothing was loaded",
                ));
            }
            let mut v = Vec::new();
            (&mut e).take(manifest::MAX_MANIFEST).read_to_end(&mut v).map_err(bad)?;
            entries = Some(serde_json::from_slice(&v).map_err(|er| {
                Error::failed(
                    format!("manifest.json in {}: {er}", input.display()),
                    "the archive is not in docker save format",
                )
            })?);
        }
        kinds.insert(p, kind);
    }
    let Some(mut entries) = entries else {
        return Err(Error::failed(
            format!("{} has no manifest.json", input.display()),
            "give a file made by docker save (an OCI layout directory goes to `img-pull import`)",
        ));
    };
    // Each name of manifest.json, followed through the archive's links to a file.
    let real = |name: &str| -> Result<String> {
        let mut n = clean(Path::new(name));
        for _ in 0..16 {
            match kinds.get(&n) {
                Some(Outer::File) => return Ok(n),
                Some(Outer::Alias(to)) => n = to.clone(),
                Some(Outer::Other(what)) => {
                    return Err(Error::failed(
                        format!("{name} in {} is {what}, not a file", input.display()),
                        "the archive is hostile or broken; nothing was loaded",
                    ))
                }
                None => break,
            }
        }
        Err(Error::failed(
            format!("{name} named in manifest.json is missing from {}", input.display()),
            "the archive is truncated",
        ))
    };
    for en in &mut entries {
        let climbs = |n: &String| n.split('/').any(|c| c == "..");
        if climbs(&en.config) || en.layers.iter().any(climbs) {
            return Err(Error::failed(
                "manifest.json names a path with ..",
                "the archive is hostile or broken; nothing was loaded",
            ));
        }
        en.config = real(&en.config)?;
        for l in &mut en.layers {
            *l = real(l)?;
        }
    }
    let mut configs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut layers: HashMap<String, Staged> = HashMap::new();
    for en in &entries {
        configs.insert(en.config.clone(), vec![]);
    }
    let wanted_layers: std::collections::HashSet<&String> = entries.iter().flat_map(|e| e.layers.iter()).collect();
    // What the layers may inflate to, all together: what the store's disk has free.
    let mut room = match k.mode() {
        Mode::DryRun => u64::MAX,
        _ => k.free_bytes(&st.root)?,
    };
    // Pass 2: configs and layers.
    let res: Result<()> = (|| {
        for e in open()?.entries().map_err(bad)? {
            let mut e = e.map_err(bad)?;
            let p = clean(&e.path().map_err(bad)?);
            if kinds.get(&p) != Some(&Outer::File) {
                continue;
            }
            if let Some(slot) = configs.get_mut(&p) {
                (&mut e).take(manifest::MAX_CONFIG).read_to_end(slot).map_err(bad)?;
            } else if wanted_layers.contains(&p) && !layers.contains_key(&p) {
                let (tmp, file) = st.create_temp(k, "load-layer")?;
                let tmp = file.as_ref().map(|_| tmp);
                let mut tee = Tee { inner: &mut e, file, hasher: sha2::Sha256::new(), count: 0, head: Vec::new() };
                let hit = std::rc::Rc::new(std::cell::Cell::new(false));
                let read = (|| -> Result<(u64, String)> {
                    let inflated = Bounded { inner: crate::layer::decompress(&mut tee)?, left: room, hit: hit.clone() };
                    let mut hr = HashReader::new(inflated);
                    let mut symlinks = std::collections::HashSet::new();
                    {
                        let mut ar = tar::Archive::new(&mut hr);
                        for le in ar.entries().map_err(bad)? {
                            let le = le.map_err(bad)?;
                            check_layer_entry(&p, &le, &mut symlinks)?;
                        }
                    }
                    std::io::copy(&mut hr, &mut std::io::sink()).map_err(bad)?;
                    Ok((hr.count, hr.digest()))
                })()
                .and_then(|r| std::io::copy(&mut tee, &mut std::io::sink()).map(|_| r).map_err(bad));
                let (usize, diff_id) = match read {
                    Ok(r) => r,
                    Err(_) if hit.get() => {
                        unstage(k, std::iter::once(&tmp));
                        return Err(Error::failed(
                            format!(
                                "refusing layer {p}: it inflates beyond the {} free in the store ({})",
                                crate::units::human_size(room),
                                st.root.display()
                            ),
                            "a layer bigger than the disk can never be unpacked: the archive is a decompression bomb, or free some space",
                        ));
                    }
                    Err(er) => {
                        unstage(k, std::iter::once(&tmp));
                        return Err(er);
                    }
                };
                room = room.saturating_sub(usize);
                let digest = format!("sha256:{}", hex(&tee.hasher.clone().finalize()));
                let (size, head) = (tee.count, tee.head.clone());
                let media_type = if head.starts_with(&[0x1f, 0x8b]) {
                    manifest::OCI_LAYER_GZIP
                } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    manifest::OCI_LAYER_ZSTD
                } else {
                    manifest::OCI_LAYER_TAR
                };
                layers.insert(p, Staged { tmp, digest, size, media_type: media_type.into(), diff_id, usize });
            }
        }
        Ok(())
    })();
    let cleanup = |layers: &HashMap<String, Staged>| unstage(k, layers.values().map(|l| &l.tmp));
    if let Err(e) = res {
        cleanup(&layers);
        return Err(e);
    }
    // Check every image before publishing anything.
    let mut plans = vec![];
    for en in &entries {
        let cb = &configs[&en.config];
        let cfg = match manifest::parse_config(cb) {
            Ok(c) => c,
            Err(er) => {
                cleanup(&layers);
                return Err(Error::failed(
                    format!("{} in {}: {er}", en.config, input.display()),
                    "the archive is malformed",
                ));
            }
        };
        if cfg.rootfs.diff_ids.len() != en.layers.len() {
            cleanup(&layers);
            return Err(Error::failed(
                format!("{}: {} diff_ids for {} layers", en.config, cfg.rootfs.diff_ids.len(), en.layers.len()),
                "the archive is malformed",
            ));
        }
        let mut descs = vec![];
        for (i, lp) in en.layers.iter().enumerate() {
            let Some(l) = layers.get(lp) else {
                cleanup(&layers);
                return Err(Error::failed(
                    format!("layer {lp} named in manifest.json is missing from {}", input.display()),
                    "the archive is truncated",
                ));
            };
            if l.diff_id != cfg.rootfs.diff_ids[i] {
                cleanup(&layers);
                return Err(Error::failed(
                    format!("layer {lp} hashes to {}, the config says {}", l.diff_id, cfg.rootfs.diff_ids[i]),
                    "the archive is corrupt; nothing was loaded",
                ));
            }
            descs.push(Descriptor::new(&l.media_type, &l.digest, l.size));
        }
        plans.push((en, cb.clone(), descs));
    }
    if k.mode() == Mode::DryRun {
        k.note(format!("would load {} image(s)", plans.len()));
        return Ok(vec![]);
    }
    for l in layers.values() {
        let Some(tmp) = &l.tmp else { continue };
        if st.has_blob(&l.digest) {
            k.why("the store has this blob already");
            k.unlink(tmp)?;
        } else {
            st.commit(k, tmp, &l.digest)?;
        }
        st.put_layer_info(k, &l.digest, &LayerInfo { diff_id: l.diff_id.clone(), size: l.usize })?;
    }
    let mut loaded = vec![];
    for (en, cb, descs) in plans {
        let cd = st.put_bytes(k, &cb)?;
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor::new(manifest::OCI_CONFIG, &cd, cb.len() as u64),
            layers: descs,
            annotations: None,
        };
        let mb = serde_json::to_vec(&m).expect("json");
        let md = st.put_bytes(k, &mb)?;
        let total: u64 = m.layers.iter().filter_map(|l| st.layer_info(&l.digest)).map(|i| i.size).sum();
        let mut d = Descriptor::new(manifest::OCI_MANIFEST, &md, mb.len() as u64);
        d.annotations = Some(BTreeMap::from([(store::SIZE.to_string(), total.to_string())]));
        let tags = en.repo_tags.clone().unwrap_or_default();
        if tags.is_empty() {
            let mut ix = st.index()?;
            ix.manifests.push(d.clone());
            st.write_index(k, &ix)?;
            loaded.push(Loaded::Id(cd.clone()));
        }
        for t in tags {
            let r = Reference::parse(&t)
                .map_err(|e| Error::failed(format!("RepoTags {t:?}: {e}"), "the archive is malformed"))?;
            st.tag(k, &r.to_string(), d.clone())?;
            loaded.push(Loaded::Image(r.familiar()));
        }
    }
    Ok(loaded)
}

/// Copy the blob `src` to `dst` (skipped when there): a hard link (`linkat(2)`) when
/// both are on one filesystem, else a new file (`O_CREAT|O_EXCL`) the bytes are
/// copied into; made as `DST.partial`, then `rename(2)`d.
fn copy_blob(k: &Kernel, src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        return Ok(());
    }
    let tmp = dst.with_extension("partial");
    if std::fs::symlink_metadata(&tmp).is_ok() {
        k.why("left by an earlier run that did not finish");
        k.unlink(&tmp)?;
    }
    if k.hard_link(src, &tmp).is_err() {
        let Some(mut f) = create_fresh(k, &tmp, 0o644, "create a copy of a blob beside its final name")? else {
            return Ok(());
        };
        let mut from = File::open(src).map_err(|e| io("cannot read", src, e))?;
        if let Err(e) = std::io::copy(&mut from, &mut f) {
            let _ = k.unlink(&tmp);
            return Err(io("cannot copy to", &tmp, e));
        }
    }
    k.rename_over(&tmp, dst)?;
    Ok(())
}

/// Write `bytes` to `dest` in a layout directory: `DEST.tmp` (made with
/// `O_CREAT|O_EXCL`), then `rename(2)`.
fn write_atomic(k: &Kernel, dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dest.with_extension(format!(
        "{}tmp",
        dest.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    let Some(mut f) = create_fresh(k, &tmp, 0o644, "create a file of the layout beside its final name")? else {
        return Ok(());
    };
    if let Err(e) = f.write_all(bytes) {
        let _ = k.unlink(&tmp);
        return Err(io("cannot write", &tmp, e));
    }
    drop(f);
    k.rename_over(&tmp, dest)?;
    Ok(())
}

/// `img-pull export`: `img` into the OCI layout directory `dir` (created if missing),
/// named `tag` in its index.json (as `skopeo copy … oci:DIR:TAG` does).
pub fn export(k: &Kernel, st: &Store, img: &Image, tag: &str, dir: &Path) -> Result<()> {
    if k.mode() == Mode::DryRun {
        k.note(format!("would export {} to {}:{tag}", short(&img.desc.digest), dir.display()));
        return Ok(());
    }
    let blobs = dir.join("blobs/sha256");
    mkdir_p(k, &blobs)?;
    write_atomic(k, &dir.join("oci-layout"), b"{\"imageLayoutVersion\":\"1.0.0\"}")?;
    let mut all: Vec<&str> = img.manifest.layers.iter().map(|l| l.digest.as_str()).collect();
    all.push(&img.manifest.config.digest);
    all.push(&img.desc.digest);
    for d in all {
        copy_blob(k, &st.blob_path(d), &blobs.join(hex_of(d)))?;
    }
    let ixp = dir.join("index.json");
    let mut ix: manifest::Index = match std::fs::read(&ixp) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::failed(format!("{}: {e}", ixp.display()), "export into an empty directory"))?,
        Err(_) => manifest::Index {
            schema_version: 2,
            media_type: Some(manifest::OCI_INDEX.into()),
            manifests: vec![],
            annotations: None,
        },
    };
    ix.manifests.retain(|d| d.annotation(store::REF_NAME) != Some(tag));
    let mut d = Descriptor::new(&img.desc.media_type, &img.desc.digest, img.desc.size);
    d.annotations = Some(BTreeMap::from([(store::REF_NAME.to_string(), tag.to_string())]));
    ix.manifests.push(d);
    write_atomic(k, &ixp, &serde_json::to_vec_pretty(&ix).expect("json"))?;
    Ok(())
}

/// The tag `export` gives an image in a layout: the tag of the reference the user
/// typed, else of one of its names, else `latest`.
pub fn export_tag(image: &str, img: &Image) -> String {
    Reference::parse(image)
        .ok()
        .and_then(|r| r.tag)
        .or_else(|| img.names.iter().filter_map(|n| Reference::parse(n).ok()?.tag).next())
        .unwrap_or_else(|| "latest".into())
}

/// What [`import`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The manifest's digest.
    pub digest: String,
    /// The name it has in the store.
    pub name: Reference,
}

/// `img-pull import DIR[:NAME]`: an image from an OCI layout directory into the store
/// (open for writing), every blob verified on the way in; the name is `tag`, else the
/// layout's (when it is a full reference).
pub fn import(k: &Kernel, st: &Store, source: &str, tag: Option<&str>) -> Result<Imported> {
    let (dir, name) = if Path::new(source).is_dir() {
        (PathBuf::from(source), None)
    } else {
        match source.split_once(':') {
            Some((d, n)) => (PathBuf::from(d), Some(n.to_string())),
            None => (PathBuf::from(source), None),
        }
    };
    let ixp = dir.join("index.json");
    let ix: manifest::Index = serde_json::from_slice(&std::fs::read(&ixp).map_err(|e| io("cannot read", &ixp, e))?)
        .map_err(|e| Error::failed(format!("{}: {e}", ixp.display()), "give an OCI image layout directory"))?;
    let cands: Vec<&Descriptor> =
        ix.manifests.iter().filter(|d| name.is_none() || d.annotation(store::REF_NAME) == name.as_deref()).collect();
    let desc = match cands.as_slice() {
        [d] => (*d).clone(),
        [] => {
            return Err(Error::failed(
                format!("no image {:?} in {}", name.unwrap_or_default(), ixp.display()),
                "name one of the org.opencontainers.image.ref.name values as DIR:NAME",
            ))
        }
        _ => {
            return Err(Error::failed(format!("{} images in {}", cands.len(), ixp.display()), "choose one as DIR:NAME"))
        }
    };
    let target = match tag
        .map(str::to_string)
        .or_else(|| desc.annotation(store::REF_NAME).filter(|n| n.contains('/')).map(str::to_string))
    {
        Some(t) => Reference::parse(&t).map_err(Error::Usage)?,
        None => return Err(Error::Usage("give the image a name in the store with --tag REF".into())),
    };
    let src = |d: &str| -> Result<PathBuf> {
        super::reference::check_digest(d).map_err(|e| Error::failed(e, "the layout is malformed"))?;
        Ok(dir.join("blobs/sha256").join(hex_of(d)))
    };
    let read = |d: &Descriptor, max: u64| -> Result<Vec<u8>> {
        let p = src(&d.digest)?;
        let mut v = Vec::new();
        File::open(&p)
            .map_err(|e| io("cannot read", &p, e))?
            .take(max)
            .read_to_end(&mut v)
            .map_err(|e| io("cannot read", &p, e))?;
        super::registry::check_blob(&v, d)?;
        Ok(v)
    };
    let mut mdesc = desc.clone();
    let mut mb = read(&mdesc, manifest::MAX_MANIFEST)?;
    let (mut mt, mut doc) =
        manifest::parse(&mb, &mdesc.media_type).map_err(|e| Error::failed(e, "the layout is malformed"))?;
    if let manifest::Document::Index(ix2) = &doc {
        let d = manifest::choose(ix2, &manifest::Platform::host())
            .map_err(|e| Error::failed(e, "the layout has no image for this machine"))?
            .clone();
        mb = read(&d, manifest::MAX_MANIFEST)?;
        (mt, doc) = manifest::parse(&mb, &d.media_type).map_err(|e| Error::failed(e, "the layout is malformed"))?;
        mdesc = d;
    }
    let manifest::Document::Image(m) = doc else { unreachable!() };
    let cb = read(&m.config, manifest::MAX_CONFIG)?;
    let cfg = manifest::parse_config(&cb).map_err(|e| Error::failed(e, "the layout is malformed"))?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(Error::failed("the config's diff_ids do not match the layers", "the layout is malformed"));
    }
    if k.mode() == Mode::DryRun {
        k.note(format!("would import {} as {target}", mdesc.digest));
        return Ok(Imported { digest: mdesc.digest, name: target });
    }
    let mut staged: Vec<(PathBuf, String, LayerInfo)> = vec![];
    let give_up = |staged: &[(PathBuf, String, LayerInfo)], e: Error| -> Error {
        unstage(k, staged.iter().map(|(t, _, _)| Some(t.clone())).collect::<Vec<_>>().iter());
        e
    };
    for (i, l) in m.layers.iter().enumerate() {
        if st.has_blob(&l.digest) {
            continue;
        }
        let p = src(&l.digest).map_err(|e| give_up(&staged, e))?;
        let (tmp, f) = st.create_temp(k, "import").map_err(|e| give_up(&staged, e))?;
        let Some(mut f) = f else { continue };
        let copied = File::open(&p).and_then(|mut from| std::io::copy(&mut from, &mut f));
        drop(f);
        let info = match copied {
            Err(e) => Err(io("cannot copy", &p, e)),
            Ok(_) => hash_file(&tmp).and_then(|(dg, n)| {
                if dg == l.digest && n == l.size {
                    verify_diff_id(&tmp, &cfg.rootfs.diff_ids[i])
                } else {
                    Err(Error::failed(
                        format!("blob {} in {} hashes to {dg} ({n} bytes)", l.digest, dir.display()),
                        "the layout is corrupt; nothing was imported",
                    ))
                }
            }),
        };
        match info {
            Ok(info) => staged.push((tmp, l.digest.clone(), info)),
            Err(e) => {
                staged.push((tmp, l.digest.clone(), LayerInfo { diff_id: String::new(), size: 0 }));
                return Err(give_up(&staged, e));
            }
        }
    }
    for (tmp, dg, info) in &staged {
        st.commit(k, tmp, dg)?;
        st.put_layer_info(k, dg, info)?;
    }
    st.put_bytes(k, &cb)?;
    st.put_bytes(k, &mb)?;
    let total: u64 = m.layers.iter().filter_map(|l| st.layer_info(&l.digest)).map(|i| i.size).sum();
    let mut d = Descriptor::new(&mt, &mdesc.digest, mb.len() as u64);
    d.annotations = Some(BTreeMap::from([(store::SIZE.to_string(), total.to_string())]));
    st.tag(k, &target.to_string(), d)?;
    Ok(Imported { digest: mdesc.digest, name: target })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_archive_or_not_at_all() {
        // docker < 25 and podman link a layer already written.
        assert_eq!(resolve_in_archive("b/layer.tar", "../a/layer.tar", false).as_deref(), Some("a/layer.tar"));
        assert_eq!(resolve_in_archive("b/layer.tar", "../a.tar", false).as_deref(), Some("a.tar"));
        assert_eq!(resolve_in_archive("b/layer.tar", "../../etc/passwd", false), None);
        assert_eq!(resolve_in_archive("layer.tar", "/etc/passwd", false), None);
        // A hard link names an entry from the top.
        assert_eq!(resolve_in_archive("b/x", "a/layer.tar", true).as_deref(), Some("a/layer.tar"));
        assert_eq!(resolve_in_archive("b/x", "../x", true), None);
    }

    #[test]
    fn a_bounded_reader_stops_at_the_bound() {
        let hit = std::rc::Rc::new(std::cell::Cell::new(false));
        let mut r = Bounded { inner: std::io::repeat(0).take(1 << 20), left: 1000, hit: hit.clone() };
        let e = std::io::copy(&mut r, &mut std::io::sink()).unwrap_err();
        assert!(hit.get(), "{e}");
        let mut r = Bounded { inner: std::io::repeat(0).take(1000), left: 1000, hit: hit.clone() };
        hit.set(false);
        assert_eq!(std::io::copy(&mut r, &mut std::io::sink()).unwrap(), 1000);
        assert!(!hit.get());
    }
}
