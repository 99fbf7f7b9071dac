//! Images as files: `docker save` tar archives and OCI layout directories.
//!
//! `docker save` writes a tar with a `manifest.json` (one entry per image: `Config`,
//! `RepoTags`, `Layers`), each config as `HEX.json` and each layer as an
//! *uncompressed* `HEX/layer.tar` (HEX = its diff_id), plus a legacy `repositories`
//! file. `docker load`, `podman load` and skopeo's `docker-archive:` read it. Loading
//! reads `manifest.json` and follows its paths, so the newer layout of docker 25
//! (layers under `blobs/sha256/`) loads too.
//!
//! An OCI layout directory is the store's own format: exporting one copies the blobs
//! an image needs and names it in that directory's index.json.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::manifest::{self, Descriptor, Manifest};
use super::reference::Reference;
use super::registry::{hex, short};
use super::store::{self, hash_file, LayerInfo, Store};
use super::{verify_diff_id, HashReader};
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

/// `img-pull save`: images to a docker-save tar (a file, atomically, or stdout).
pub fn save(k: &Kernel, root: &Path, images: &[String], output: Option<&Path>) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let imgs = images.iter().map(|i| st.resolve(i).map(|img| (i, img))).collect::<Result<Vec<_>>>()?;
    if k.mode() == Mode::DryRun {
        k.note(format!("would write {} image(s) in docker save format", imgs.len()));
        return Ok(());
    }
    let tmp_out = output.map(|o| o.with_extension("tar.partial"));
    let sink: Box<dyn Write> = match &tmp_out {
        Some(p) => Box::new(std::io::BufWriter::new(File::create(p).map_err(|e| io("cannot create", p, e))?)),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut tb = tar::Builder::new(sink);
    let mut written: std::collections::HashSet<String> = Default::default();
    let mut entries = vec![];
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let res: Result<()> = (|| {
        for (asked, img) in &imgs {
            let cfg_name = format!("{}.json", hex_of(img.id()));
            if written.insert(cfg_name.clone()) {
                let mut h = header(img.config_bytes.len() as u64, 0o644);
                tb.append_data(&mut h, &cfg_name, &img.config_bytes[..])
                    .map_err(|e| io("cannot write", Path::new(&cfg_name), e))?;
            }
            let mut layers = vec![];
            for (i, l) in img.manifest.layers.iter().enumerate() {
                let di = &img.config.rootfs.diff_ids[i];
                let name = format!("{}/layer.tar", hex_of(di));
                if written.insert(name.clone()) {
                    // The tar header needs the size first: decompress to a temp file.
                    let tmp = st.temp_path("save-layer");
                    let blob = File::open(st.blob_path(&l.digest))
                        .map_err(|e| io("cannot read", &st.blob_path(&l.digest), e))?;
                    let mut h = HashReader::new(crate::layer::decompress(std::io::BufReader::new(blob))?);
                    let mut t = File::create(&tmp).map_err(|e| io("cannot create", &tmp, e))?;
                    let copied = std::io::copy(&mut h, &mut t);
                    drop(t);
                    let ok = copied.is_ok() && h.digest() == *di;
                    if !ok {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(Error::failed(
                            format!("layer {} does not decompress to its diff_id {di}", l.digest),
                            "the store is corrupt: pull the image again",
                        ));
                    }
                    let size = std::fs::metadata(&tmp).map_err(|e| io("cannot stat", &tmp, e))?.len();
                    let mut hd = header(size, 0o644);
                    let f = File::open(&tmp).map_err(|e| io("cannot read", &tmp, e))?;
                    let r = tb.append_data(&mut hd, &name, f);
                    let _ = std::fs::remove_file(&tmp);
                    r.map_err(|e| io("cannot write", Path::new(&name), e))?;
                    let v = b"1.0";
                    tb.append_data(&mut header(3, 0o644), format!("{}/VERSION", hex_of(di)), &v[..])
                        .map_err(|e| io("cannot write", Path::new("VERSION"), e))?;
                }
                layers.push(name);
            }
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
            for t in &tags {
                if let Ok(r) = Reference::parse(t) {
                    let top = layers.last().map(|l| l.trim_end_matches("/layer.tar").to_string()).unwrap_or_default();
                    repos.entry(r.familiar_name()).or_default().insert(r.tag.clone().unwrap_or_default(), top);
                }
            }
            entries.push(serde_json::json!({"Config": cfg_name, "RepoTags": tags, "Layers": layers}));
            k.note(format!("saved {} ({} layer(s), image ID {})", asked, layers.len(), short(img.id())));
        }
        let m = serde_json::to_vec(&entries).expect("json");
        tb.append_data(&mut header(m.len() as u64, 0o644), "manifest.json", &m[..])
            .map_err(|e| io("cannot write", Path::new("manifest.json"), e))?;
        let r = serde_json::to_vec(&repos).expect("json");
        tb.append_data(&mut header(r.len() as u64, 0o644), "repositories", &r[..])
            .map_err(|e| io("cannot write", Path::new("repositories"), e))?;
        let mut inner = tb.into_inner().map_err(|e| io("cannot finish", Path::new("the archive"), e))?;
        inner.flush().map_err(|e| io("cannot write", Path::new("the archive"), e))?;
        Ok(())
    })();
    if let Err(e) = res {
        if let Some(t) = &tmp_out {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    if let (Some(t), Some(o)) = (&tmp_out, output) {
        let f = File::open(t).map_err(|e| io("cannot open", t, e))?;
        k.fsync_file(&f, t)?;
        k.rename_over(t, o)?;
    }
    Ok(())
}

/// Reads through, copying what it reads to a file and hashing it.
struct Tee<R> {
    inner: R,
    file: File,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.file.write_all(&buf[..n])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
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

struct Loaded {
    tmp: PathBuf,
    digest: String,
    size: u64,
    media_type: String,
    diff_id: String,
    usize: u64,
}

/// `img-pull load`: read a docker-save tar into the store. Nothing is published
/// until every layer has been checked against its image's diff_ids.
pub fn load(k: &Kernel, root: &Path, input: &Path, out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, true)?;
    let open = || -> Result<tar::Archive<File>> {
        Ok(tar::Archive::new(File::open(input).map_err(|e| io("cannot open", input, e))?))
    };
    let bad = |e: std::io::Error| {
        Error::failed(
            format!("{} is not a readable tar archive: {e}", input.display()),
            "give a file made by docker save, podman save or img-pull save",
        )
    };
    // Pass 1: manifest.json.
    let mut entries: Option<Vec<SaveEntry>> = None;
    for e in open()?.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        if clean(&e.path().map_err(bad)?) == "manifest.json" {
            let mut v = Vec::new();
            (&mut e).take(manifest::MAX_MANIFEST).read_to_end(&mut v).map_err(bad)?;
            entries = Some(serde_json::from_slice(&v).map_err(|er| {
                Error::failed(
                    format!("manifest.json in {}: {er}", input.display()),
                    "the archive is not in docker save format",
                )
            })?);
        }
    }
    let Some(entries) = entries else {
        return Err(Error::failed(
            format!("{} has no manifest.json", input.display()),
            "give a file made by docker save (an OCI layout directory goes to `img-pull import`)",
        ));
    };
    let mut configs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut layers: HashMap<String, Loaded> = HashMap::new();
    for en in &entries {
        if en.config.contains("..") || en.layers.iter().any(|l| l.contains("..")) {
            return Err(Error::failed("manifest.json names a path with ..", "the archive is malformed"));
        }
        configs.insert(en.config.clone(), vec![]);
    }
    let wanted_layers: std::collections::HashSet<&String> = entries.iter().flat_map(|e| e.layers.iter()).collect();
    // Pass 2: configs and layers.
    let res: Result<()> = (|| {
        for e in open()?.entries().map_err(bad)? {
            let mut e = e.map_err(bad)?;
            let p = clean(&e.path().map_err(bad)?);
            if let Some(slot) = configs.get_mut(&p) {
                (&mut e).take(manifest::MAX_CONFIG).read_to_end(slot).map_err(bad)?;
            } else if wanted_layers.contains(&p) && !layers.contains_key(&p) {
                let tmp = st.temp_path("load-layer");
                let file = File::create(&tmp).map_err(|er| io("cannot create", &tmp, er))?;
                let mut head = [0u8; 4];
                let mut tee = Tee { inner: &mut e, file, hasher: sha2::Sha256::new(), count: 0 };
                let mut hr = HashReader::new(crate::layer::decompress(&mut tee)?);
                std::io::copy(&mut hr, &mut std::io::sink()).map_err(bad)?;
                let usize = hr.count;
                let diff_id = hr.digest();
                std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
                let digest = format!("sha256:{}", hex(&tee.hasher.clone().finalize()));
                let size = tee.count;
                drop(tee);
                File::open(&tmp).and_then(|mut f| f.read(&mut head)).map_err(|er| io("cannot read", &tmp, er))?;
                let media_type = if head.starts_with(&[0x1f, 0x8b]) {
                    manifest::OCI_LAYER_GZIP
                } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    manifest::OCI_LAYER_ZSTD
                } else {
                    manifest::OCI_LAYER_TAR
                };
                layers.insert(p, Loaded { tmp, digest, size, media_type: media_type.into(), diff_id, usize });
            }
        }
        Ok(())
    })();
    let cleanup = |layers: &HashMap<String, Loaded>| {
        for l in layers.values() {
            let _ = std::fs::remove_file(&l.tmp);
        }
    };
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
        cleanup(&layers);
        k.note(format!("would load {} image(s)", plans.len()));
        return Ok(());
    }
    for l in layers.values() {
        if st.has_blob(&l.digest) {
            let _ = std::fs::remove_file(&l.tmp);
        } else {
            st.commit(k, &l.tmp, &l.digest)?;
        }
        st.put_layer_info(&l.digest, &LayerInfo { diff_id: l.diff_id.clone(), size: l.usize })?;
    }
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
            writeln!(out, "Loaded image ID: {cd}")?;
        }
        for t in tags {
            let r = Reference::parse(&t)
                .map_err(|e| Error::failed(format!("RepoTags {t:?}: {e}"), "the archive is malformed"))?;
            st.tag(k, &r.to_string(), d.clone())?;
            writeln!(out, "Loaded image: {}", r.familiar())?;
        }
    }
    Ok(())
}

fn copy_blob(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        return Ok(());
    }
    let tmp = dst.with_extension("partial");
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).map_err(|e| io("cannot copy to", &tmp, e))?;
    }
    std::fs::rename(&tmp, dst).map_err(|e| io("cannot write", dst, e))
}

/// `img-pull export IMAGE DIR`: the image into an OCI layout directory, named by
/// its tag (as `skopeo copy … oci:DIR:TAG` does).
pub fn export(k: &Kernel, root: &Path, image: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let st = Store::open(k, root, false)?;
    let img = st.resolve(image)?;
    let tag = Reference::parse(image)
        .ok()
        .and_then(|r| r.tag)
        .or_else(|| img.names.iter().filter_map(|n| Reference::parse(n).ok()?.tag).next())
        .unwrap_or_else(|| "latest".into());
    if k.mode() == Mode::DryRun {
        k.note(format!("would export {image} to {}:{tag}", dir.display()));
        return Ok(());
    }
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io("cannot create", &blobs, e))?;
    std::fs::write(dir.join("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}")
        .map_err(|e| io("cannot write", &dir.join("oci-layout"), e))?;
    let mut all: Vec<&str> = img.manifest.layers.iter().map(|l| l.digest.as_str()).collect();
    all.push(&img.manifest.config.digest);
    all.push(&img.desc.digest);
    for d in all {
        copy_blob(&st.blob_path(d), &blobs.join(hex_of(d)))?;
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
    ix.manifests.retain(|d| d.annotation(store::REF_NAME) != Some(tag.as_str()));
    let mut d = Descriptor::new(&img.desc.media_type, &img.desc.digest, img.desc.size);
    d.annotations = Some(BTreeMap::from([(store::REF_NAME.to_string(), tag.clone())]));
    ix.manifests.push(d);
    let tmp = dir.join("index.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&ix).expect("json")).map_err(|e| io("cannot write", &tmp, e))?;
    k.rename_over(&tmp, &ixp)?;
    writeln!(out, "{}:{tag}", dir.display())?;
    Ok(())
}

/// `img-pull import DIR[:NAME]`: an image from an OCI layout directory, every blob
/// verified on the way in.
pub fn import(k: &Kernel, root: &Path, source: &str, tag: Option<&str>, out: &mut dyn Write) -> Result<()> {
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
    let st = Store::open(k, root, true)?;
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
    let mut staged = vec![];
    for (i, l) in m.layers.iter().enumerate() {
        if st.has_blob(&l.digest) {
            continue;
        }
        let tmp = st.temp_path("import");
        let p = src(&l.digest)?;
        if let Err(e) = std::fs::copy(&p, &tmp) {
            staged.iter().for_each(|(t, _, _): &(PathBuf, String, LayerInfo)| {
                let _ = std::fs::remove_file(t);
            });
            return Err(io("cannot copy", &p, e));
        }
        let (dg, n) = hash_file(&tmp)?;
        let info = if dg == l.digest && n == l.size {
            verify_diff_id(&tmp, &cfg.rootfs.diff_ids[i])
        } else {
            Err(Error::failed(
                format!("blob {} in {} hashes to {dg} ({n} bytes)", l.digest, dir.display()),
                "the layout is corrupt; nothing was imported",
            ))
        };
        match info {
            Ok(info) => staged.push((tmp, l.digest.clone(), info)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                staged.iter().for_each(|(t, _, _)| {
                    let _ = std::fs::remove_file(t);
                });
                return Err(e);
            }
        }
    }
    if k.mode() == Mode::DryRun {
        staged.iter().for_each(|(t, _, _)| {
            let _ = std::fs::remove_file(t);
        });
        k.note(format!("would import {} as {target}", mdesc.digest));
        return Ok(());
    }
    for (tmp, dg, info) in &staged {
        st.commit(k, tmp, dg)?;
        st.put_layer_info(dg, info)?;
    }
    st.put_bytes(k, &cb)?;
    st.put_bytes(k, &mb)?;
    let total: u64 = m.layers.iter().filter_map(|l| st.layer_info(&l.digest)).map(|i| i.size).sum();
    let mut d = Descriptor::new(&mt, &mdesc.digest, mb.len() as u64);
    d.annotations = Some(BTreeMap::from([(store::SIZE.to_string(), total.to_string())]));
    st.tag(k, &target.to_string(), d)?;
    writeln!(out, "Imported {} as {}", short(&mdesc.digest), target.familiar())?;
    Ok(())
}
