//! A new image made here, not pulled: a parent image (or none: `FROM scratch`), one
//! more layer, a new configuration and one more history entry. What `docker commit`
//! (a container's upper layer on its image) and `docker import` (a tar on nothing)
//! store.
//!
//! Nothing of the parent is copied: its layers are blobs of the store, named by
//! digest, and the new manifest lists them again before the new one. Only three
//! blobs are new, written in this order so that a reader never meets one that
//! points at a missing one:
//!
//! 1. the layer (already written by the caller in `ROOT/tmp`, then `rename(2)`d
//!    into `blobs/sha256/`), with its diff_id and uncompressed size in `layerinfo/`;
//! 2. the configuration: the parent's, with `config` replaced (Env, Cmd...),
//!    `rootfs.diff_ids` one longer, `history` one longer (a layer that changes
//!    nothing adds a history entry marked `empty_layer` and no diff_id, as docker's
//!    does), a new `created` date;
//! 3. the manifest: the parent's layers, then the new one.
//!
//! Then index.json names it (or lists it without a name, docker's `<none>`): only
//! this last `rename(2)` makes the image exist, so a failure before it leaves no
//! image, and the blobs it wrote are removed again (those already in the store, shared
//! with other images, are left).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::manifest::{self, Descriptor, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, OCI_LAYER_GZIP};
use super::store::{self, Image, LayerInfo, Store};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};

/// The new layer: a gzip-compressed tar written in the store's `tmp/`.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Where it was written (`Store::create_temp`).
    pub tmp: PathBuf,
    /// `sha256:` of the blob.
    pub digest: String,
    /// `sha256:` of the uncompressed tar.
    pub diff_id: String,
    /// Bytes of the blob.
    pub size: u64,
    /// Bytes of the uncompressed tar.
    pub tar_size: u64,
    /// Whether it holds no entry at all (then it is not added, only a history entry).
    pub empty: bool,
}

/// The history entry of the new layer.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// RFC 3339.
    pub created: String,
    /// What made it (`docker commit`: the container's command).
    pub created_by: Option<String>,
    /// `-m`.
    pub comment: Option<String>,
    /// `-a`.
    pub author: Option<String>,
}

/// What [`compose`] makes.
#[derive(Debug, Clone)]
pub struct Compose<'a> {
    /// The image it is made on; `None`: from nothing.
    pub parent: Option<&'a Image>,
    /// The new layer.
    pub layer: NewLayer,
    /// The new `config` object (Env, Cmd, Entrypoint, WorkingDir, User, Labels...).
    pub config: Value,
    /// Its history entry.
    pub step: Step,
    /// Other top-level fields (`container`, `container_config`, `comment`...).
    pub extra: Map<String, Value>,
    /// The name to give it (a full reference); `None`: untagged.
    pub name: Option<String>,
    /// More annotations of its index entry ([`store::PARENT`] for a built image).
    pub annotations: BTreeMap<String, String>,
}

impl NewLayer {
    /// No layer at all: an instruction that changes only the configuration.
    pub fn none() -> NewLayer {
        NewLayer {
            tmp: PathBuf::new(),
            digest: String::new(),
            diff_id: String::new(),
            size: 0,
            tar_size: 0,
            empty: true,
        }
    }
}

fn bad(what: String) -> Error {
    Error::failed(what, "the parent image is malformed: remove it and pull it again")
}

/// Make the image (see the module documentation) in the store (open for writing);
/// returns it, as [`Store::resolve`] would.
pub fn compose(k: &Kernel, st: &Store, c: &Compose) -> Result<Image> {
    if !st.exclusive() {
        return Err(Error::failed(
            "compose writes into the store: it needs the store open for writing",
            "open it with Store::open(k, root, true)",
        ));
    }
    let mut cfg: Map<String, Value> = match c.parent {
        Some(p) => match serde_json::from_slice(&p.config_bytes) {
            Ok(Value::Object(m)) => m,
            _ => return Err(bad(format!("the config of {} is not a JSON object", p.id()))),
        },
        None => Map::new(),
    };
    let host = manifest::Platform::host();
    cfg.entry("architecture").or_insert_with(|| json!(host.architecture));
    cfg.insert("os".into(), json!("linux"));
    cfg.insert("created".into(), json!(c.step.created));
    cfg.insert("config".into(), c.config.clone());
    for key in ["container", "container_config", "comment", "author"] {
        cfg.remove(key);
    }
    if let Some(a) = &c.step.author {
        cfg.insert("author".into(), json!(a));
    }
    for (key, v) in &c.extra {
        cfg.insert(key.clone(), v.clone());
    }
    let parent_layers: Vec<Descriptor> = c.parent.map(|p| p.manifest.layers.clone()).unwrap_or_default();
    let mut diff_ids: Vec<String> = c.parent.map(|p| p.config.rootfs.diff_ids.clone()).unwrap_or_default();
    let mut history: Vec<Value> = match cfg.get("history") {
        Some(Value::Array(h)) => h.clone(),
        _ => vec![],
    };
    // A parent without a history entry per layer (images built by hand): give each of
    // its layers one, so the new entry is the new layer's.
    let with_layer = history.iter().filter(|h| h.get("empty_layer") != Some(&Value::Bool(true))).count();
    for _ in with_layer..diff_ids.len() {
        history.push(json!({}));
    }
    let mut entry = Map::new();
    entry.insert("created".into(), json!(c.step.created));
    if let Some(a) = &c.step.author {
        entry.insert("author".into(), json!(a));
    }
    if let Some(b) = &c.step.created_by {
        entry.insert("created_by".into(), json!(b));
    }
    if let Some(m) = &c.step.comment {
        entry.insert("comment".into(), json!(m));
    }
    if c.layer.empty {
        entry.insert("empty_layer".into(), json!(true));
    } else {
        diff_ids.push(c.layer.diff_id.clone());
    }
    history.push(Value::Object(entry));
    cfg.insert("history".into(), Value::Array(history));
    cfg.insert("rootfs".into(), json!({"type": "layers", "diff_ids": diff_ids}));

    let docker = c.parent.is_some_and(|p| p.desc.media_type == DOCKER_MANIFEST);
    let (mt, ct, lt) = match docker {
        true => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP),
        false => (manifest::OCI_MANIFEST, manifest::OCI_CONFIG, OCI_LAYER_GZIP),
    };
    let mut layers = parent_layers;
    let had_blob = st.has_blob(&c.layer.digest);
    let mut wrote: Vec<String> = vec![];
    let made = (|| -> Result<Descriptor> {
        if !c.layer.empty {
            if had_blob {
                k.why("the store already has this layer (same bytes): the new copy goes");
                k.unlink(&c.layer.tmp)?;
            } else {
                st.commit(k, &c.layer.tmp, &c.layer.digest)?;
                wrote.push(c.layer.digest.clone());
            }
            st.put_layer_info(
                k,
                &c.layer.digest,
                &LayerInfo { diff_id: c.layer.diff_id.clone(), size: c.layer.tar_size },
            )?;
            layers.push(Descriptor::new(lt, &c.layer.digest, c.layer.size));
        } else if k.mode() == Mode::Live && !c.layer.tmp.as_os_str().is_empty() {
            k.why("the container changed nothing: no layer, only a history entry");
            k.unlink(&c.layer.tmp)?;
        }
        let cbytes = serde_json::to_vec(&Value::Object(cfg.clone())).expect("json");
        let fresh = !st.has_blob(&super::registry::sha256_digest(&cbytes));
        let cdigest = st.put_bytes(k, &cbytes)?;
        if fresh {
            wrote.push(cdigest.clone());
        }
        let m = json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": ct, "digest": cdigest, "size": cbytes.len()},
            "layers": layers,
        });
        let mbytes = serde_json::to_vec(&m).expect("json");
        let fresh = !st.has_blob(&super::registry::sha256_digest(&mbytes));
        let mdigest = st.put_bytes(k, &mbytes)?;
        if fresh {
            wrote.push(mdigest.clone());
        }
        let total: u64 = layers.iter().map(|l| st.layer_info(&l.digest).map(|i| i.size).unwrap_or(l.size)).sum();
        let mut d = Descriptor::new(mt, &mdigest, mbytes.len() as u64);
        let mut ann = c.annotations.clone();
        ann.insert(store::SIZE.to_string(), total.to_string());
        d.annotations = Some(ann);
        st.add_image(k, d.clone(), c.name.as_deref())?;
        Ok(d)
    })();
    match made {
        Ok(d) => {
            let names = c.name.iter().cloned().collect();
            st.load_image(d, names)
        }
        Err(e) => {
            // Nothing names what was written: take it back.
            if !c.layer.tmp.as_os_str().is_empty() {
                let _ = k.unlink(&c.layer.tmp);
            }
            for dg in wrote {
                k.why("the image was not made: its new blob goes");
                let _ = k.unlink(&st.blob_path(&dg));
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::image::registry::sha256_digest;
    use crate::kernel::{Errno, Tracer};

    fn parent(k: &Kernel, st: &Store) -> Image {
        let layer = st.put_bytes(k, b"the parent's layer").unwrap();
        st.put_layer_info(k, &layer, &LayerInfo { diff_id: layer.clone(), size: 100 }).unwrap();
        let cfg = json!({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [layer]}});
        let cb = serde_json::to_vec(&cfg).unwrap();
        let cd = st.put_bytes(k, &cb).unwrap();
        let m = json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "digest": cd, "size": cb.len()},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer, "size": 18}]});
        let mb = serde_json::to_vec(&m).unwrap();
        let md = st.put_bytes(k, &mb).unwrap();
        st.tag(k, "docker.io/library/parent:1", Descriptor::new(manifest::OCI_MANIFEST, &md, mb.len() as u64)).unwrap();
        st.resolve("parent:1").unwrap()
    }

    fn new_layer(k: &Kernel, st: &Store, bytes: &[u8]) -> NewLayer {
        let (tmp, f) = st.create_temp(k, "layer").unwrap();
        f.unwrap().write_all(bytes).unwrap();
        let d = sha256_digest(bytes);
        NewLayer { tmp, digest: d.clone(), diff_id: d, size: bytes.len() as u64, tar_size: 2048, empty: false }
    }

    fn spec<'a>(p: &'a Image, layer: NewLayer) -> Compose<'a> {
        Compose {
            parent: Some(p),
            layer,
            config: json!({"Cmd": ["cat", "/x"]}),
            step: Step { created: "2026-01-01T00:00:00Z".into(), created_by: Some("sh".into()), ..Step::default() },
            extra: Map::new(),
            name: Some("docker.io/library/child:1".into()),
            annotations: BTreeMap::new(),
        }
    }

    /// The child lists the parent's layer and its own, one history entry per layer
    /// (the parent had none: one is made for its layer), and is named last.
    #[test]
    fn a_child_image_is_the_parent_plus_one_layer_and_one_step() {
        let root = std::env::temp_dir().join(format!("contlab-compose-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let k = Kernel::new(crate::image::TOOL, Mode::Live, Tracer::silent());
        let st = Store::open(&k, &root, true).unwrap();
        let p = parent(&k, &st);
        let layer = new_layer(&k, &st, b"the child's layer");
        let img = compose(&k, &st, &spec(&p, layer.clone())).unwrap();
        assert_eq!(img.config.rootfs.diff_ids, [p.config.rootfs.diff_ids[0].clone(), layer.diff_id.clone()]);
        assert_eq!(img.config.history.len(), 2);
        assert_eq!(img.config.history[1].created_by.as_deref(), Some("sh"));
        assert_eq!(img.config.config.cmd, Some(vec!["cat".to_string(), "/x".to_string()]));
        assert_eq!(img.manifest.layers.len(), 2);
        assert!(st.has_blob(&layer.digest) && !layer.tmp.exists());
        assert_eq!(st.resolve("child:1").unwrap().id(), img.id());
        assert_eq!(st.layer_info(&layer.digest).unwrap().size, 2048);
        drop(st);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A failure at the last step (index.json's rename) leaves no image and takes
    /// back the blobs it wrote: the layer, the config, the manifest.
    #[test]
    fn a_failed_compose_leaves_no_image_and_no_new_blob() {
        let root = std::env::temp_dir().join(format!("contlab-compose-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let k = Kernel::new(crate::image::TOOL, Mode::Live, Tracer::silent());
        let st = Store::open(&k, &root, true).unwrap();
        let p = parent(&k, &st);
        let blobs_before: Vec<_> = std::fs::read_dir(root.join("oci/blobs/sha256")).unwrap().flatten().collect();
        let layer = new_layer(&k, &st, b"another layer");
        // Renames: the layer blob, its layerinfo record, the config, the manifest,
        // then index.json: the 5th fails.
        k.inject("rename", 5, Errno::EIO);
        let e = compose(&k, &st, &spec(&p, layer.clone())).unwrap_err();
        assert!(e.to_string().contains("EIO") || e.to_string().contains("I/O"), "{e}");
        assert!(st.resolve("child:1").is_err(), "no image");
        let blobs_after: Vec<_> = std::fs::read_dir(root.join("oci/blobs/sha256")).unwrap().flatten().collect();
        assert_eq!(blobs_after.len(), blobs_before.len(), "no new blob left");
        assert!(!layer.tmp.exists());
        drop(st);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
