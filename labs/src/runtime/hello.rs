//! mini's `hello-world` image, made on this machine: no registry, no network.
//!
//! docker's hello-world is one static program in one layer, with `CMD ["/hello"]`
//! (`FROM scratch`, `COPY hello /`). mini's is the same shape: the program of
//! `labs/hello/hello.rs`, built static by labs/build.rs and carried inside the mini
//! binary, packed by layer-diff into an OCI layer, with a config and a manifest, into
//! img-pull's store under `hello-world:latest` — through the same requests a pull
//! makes. Its mtimes are clamped and its config's date fixed, so the image ID is the
//! same every time it is made from the same program.

use std::path::Path;

use crate::error::{Error, Result};
use crate::image::manifest::Descriptor;
use crate::image::{Reference, Store};
use crate::kernel::Kernel;

/// The program, built by labs/build.rs.
pub const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello"));

/// The date in the image's config (fixed: same program, same image ID).
pub const CREATED: &str = "2026-01-01T00:00:00Z";

/// Whether `r` is Docker Hub's `hello-world` (any tag but a digest).
pub fn is_hello(r: &Reference) -> bool {
    r.familiar_name() == "hello-world" && r.digest.is_none() && r.tag.as_deref().is_none_or(|t| t == "latest")
}

/// Make the image in the store at `root` and name it `r` (`hello-world:latest`).
pub fn make(k: &Kernel, root: &Path, r: &Reference) -> Result<()> {
    let _s = k.scope(crate::image::TOOL);
    k.note("hello-world: made here, from the program contlab built, instead of pulled (no registry needed)");
    let st = Store::open(k, root, true)?;
    let dir = root.join("tmp").join(format!("hello.{}", std::process::id()));
    let _ = super::resources::remove_tree(k, &dir);
    k.mkdir(&dir, 0o755)?;
    let made = (|| -> Result<Descriptor> {
        k.write_new_file(&dir.join("hello"), PROGRAM, 0o755)?;
        let _l = k.scope(crate::layer::TOOL);
        let mut blob = Vec::new();
        let opts = crate::layer::PackOptions { clamp_mtime: Some(0), gzip_level: Some(6) };
        let packed = crate::layer::pack(k, &dir, &mut blob, &opts)?;
        drop(_l);
        let layer = st.put_bytes(k, &blob)?;
        let config = serde_json::json!({
            "created": CREATED,
            "architecture": crate::image::Platform::host().architecture,
            "os": "linux",
            "config": {"Cmd": ["/hello"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [packed.diff_id]},
            "history": [
                {"created": CREATED, "created_by": "COPY hello / # contlab's labs/hello/hello.rs, built static"},
                {"created": CREATED, "created_by": "CMD [\"/hello\"]", "empty_layer": true},
            ],
        });
        let cbytes = serde_json::to_vec(&config).unwrap_or_default();
        let cdigest = st.put_bytes(k, &cbytes)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": cbytes.len()},
            "layers": [{"mediaType": packed.media_type, "digest": layer, "size": blob.len()}],
        });
        let mbytes = serde_json::to_vec(&manifest).unwrap_or_default();
        let mdigest = st.put_bytes(k, &mbytes)?;
        Ok(Descriptor::new("application/vnd.oci.image.manifest.v1+json", &mdigest, mbytes.len() as u64))
    })();
    let _ = super::resources::remove_tree(k, &dir);
    let desc = made?;
    let name = Reference::parse(&r.to_string()).map_err(|e| Error::Usage(e.to_string()))?;
    st.tag(k, &name.to_string(), desc)?;
    Ok(())
}
