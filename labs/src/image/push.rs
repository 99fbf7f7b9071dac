//! `push`, `login`, `logout`: the other direction of the distribution protocol, and
//! docker's credentials file.

use std::fs::File;
use std::path::PathBuf;

use super::auth::{self, Credentials};
use super::manifest::Descriptor;
use super::pull::connect;
use super::reference::{self, Reference};
use super::registry::{self, short};
use super::store::{Image, Store};
use crate::error::{Error, Result};
use crate::kernel::Kernel;

/// How to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Upload blobs in PATCH chunks of this many bytes (`None`: one PUT).
    pub chunk_size: Option<u64>,
    /// How to reach the registry.
    pub registry: registry::Options,
}

/// What a push reports as it goes (docker's lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushProgress {
    /// `The push refers to repository [NAME]`.
    Repository(String),
    /// `ID: Layer already exists`.
    Exists(String),
    /// `ID: Mounted from REPO`: the registry linked it from another repository.
    Mounted {
        /// The blob's short id.
        id: String,
        /// The repository it came from.
        from: String,
    },
    /// `ID: Pushed`.
    Pushed(String),
}

/// What the registry answered for the manifest: `TAG: digest: DIGEST size: N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest, as the registry computed it.
    pub digest: String,
    /// The manifest's size.
    pub size: usize,
}

/// Upload `img` to the registry of `target` (a tag, not a digest): blobs the registry
/// lacks (mounted from another repository of the same registry when the image lives
/// there too), then the manifest.
pub fn push(
    k: &Kernel,
    st: &Store,
    img: &Image,
    target: &Reference,
    opts: &PushOptions,
    progress: &mut dyn FnMut(PushProgress),
) -> Result<Pushed> {
    if target.digest.is_some() {
        return Err(Error::Usage("push to a tag, not a digest".into()));
    }
    let tag = target.tag.clone().unwrap_or_else(|| "latest".into());
    progress(PushProgress::Repository(target.name()));
    let reg = connect(k, target, &opts.registry)?;
    let log = |s: String| k.note(s);
    // A repository of the same registry this image also lives in: blobs can be mounted from it.
    let from: Option<String> = img
        .names
        .iter()
        .filter_map(|n| Reference::parse(n).ok())
        .find(|r| r.domain == target.domain && r.path != target.path)
        .map(|r| r.path);
    let mut scopes = vec![format!("repository:{}:pull,push", target.path)];
    if let Some(f) = &from {
        scopes.push(format!("repository:{f}:pull"));
    }
    let mut blobs: Vec<&Descriptor> = img.manifest.layers.iter().collect();
    blobs.push(&img.manifest.config);
    for d in blobs {
        let id = short(&d.digest);
        if reg.has_blob(&log, &target.path, &d.digest, &scopes)? {
            progress(PushProgress::Exists(id));
            continue;
        }
        let upload = match &from {
            Some(f) => match reg.start_upload(&log, &target.path, Some((&d.digest, f)), &scopes)? {
                None => {
                    progress(PushProgress::Mounted { id, from: f.clone() });
                    continue;
                }
                Some(u) => u,
            },
            None => reg
                .start_upload(&log, &target.path, None, &scopes)?
                .ok_or_else(|| Error::failed("the registry gave no upload URL", "check the registry"))?,
        };
        let p = st.blob_path(&d.digest);
        let mut f = File::open(&p).map_err(|e| {
            Error::failed(format!("blob {} missing ({}): {e}", d.digest, p.display()), "pull the image again")
        })?;
        reg.upload(&log, upload, &mut f, d.size, &d.digest, opts.chunk_size, &scopes)?;
        progress(PushProgress::Pushed(id));
    }
    let dg = reg.put_manifest(&log, &target.path, &tag, &img.desc.media_type, &img.manifest_bytes, &scopes)?;
    Ok(Pushed { tag, digest: dg, size: img.manifest_bytes.len() })
}

/// A registry name as `login` takes it: `localhost:5000`, `docker.io`, or an URL.
pub fn registry_domain(s: &str) -> Result<String> {
    let s = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let r = Reference::parse(&format!("{s}/x")).map_err(Error::Usage)?;
    Ok(if s == "index.docker.io" || s == "registry-1.docker.io" { reference::DOCKER_HUB.into() } else { r.domain })
}

/// `docker login`: check `creds` against the registry `domain`, then store them in
/// ~/.docker/config.json (base64, not encrypted: as docker does without a credential
/// helper). Returns the file's path.
pub fn login(k: &Kernel, domain: &str, creds: Credentials, opts: &registry::Options) -> Result<PathBuf> {
    let mut opts = opts.clone();
    opts.creds = Some(creds.clone());
    let r = Reference::parse(&format!("{domain}/x")).map_err(Error::Usage)?;
    let reg = connect(k, &r, &opts)?;
    reg.check_login(&|s| k.note(s))?;
    let (path, _) =
        auth::store(k, domain, Some(&creds)).map_err(|e| Error::failed(e, "check ~/.docker (or $DOCKER_CONFIG)"))?;
    k.note(format!(
        "credentials stored in {} (base64, not encrypted: as docker does without a credential helper)",
        path.display()
    ));
    Ok(path)
}

/// `docker logout`: forget the credentials of `domain`. Returns whether there were any.
pub fn logout(k: &Kernel, domain: &str) -> Result<bool> {
    let (path, changed) =
        auth::store(k, domain, None).map_err(|e| Error::failed(e, "check ~/.docker (or $DOCKER_CONFIG)"))?;
    k.note(format!("credentials file: {}", path.display()));
    Ok(changed)
}
