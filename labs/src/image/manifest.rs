//! Manifests, indexes and image configurations: the JSON documents of an image.
//!
//! A registry serves four kinds of manifest. Two describe ONE image (a config blob
//! and an ordered list of layer blobs): Docker's v2 schema 2 and OCI's image
//! manifest. Two describe a SET of images, one per platform: Docker's manifest list
//! and OCI's image index. The client says which it understands in `Accept`; the
//! registry answers with one, named by `Content-Type`.
//!
//! Every document is kept as the exact bytes received: a digest is the sha256 of
//! those bytes, and re-serialising the JSON would change it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Docker v2 schema 2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (one manifest per platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image configuration.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image configuration.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker "foreign" layer (Windows base layers): never downloaded by docker either.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What `Accept` lists when asking for a manifest, in docker's order.
pub const ACCEPT: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];

/// The largest manifest accepted (containers/image and docker use 4 MiB): a
/// registry cannot make us buffer more than this.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image configuration accepted.
pub const MAX_CONFIG: u64 = 8 << 20;

/// A pointer to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of what it points to.
    pub media_type: String,
    /// `sha256:...` of the bytes.
    pub digest: String,
    /// Their number: a download that gives more or fewer is refused.
    pub size: u64,
    /// For index entries: which platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Free-form metadata (`org.opencontainers.image.ref.name` in index.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Other URLs to fetch the blob from (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    /// A descriptor with no platform, annotations or urls.
    pub fn new(media_type: &str, digest: &str, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            platform: None,
            annotations: None,
            urls: None,
        }
    }

    /// One annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// `os/architecture/variant`, as in `linux/arm/v7`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Platform {
    /// The CPU architecture, in Go's names: `amd64`, `arm64`, `arm`, `386`...
    pub architecture: String,
    /// `linux`, `windows`.
    pub os: String,
    /// `v7` for arm, `v8` for arm64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Windows build numbers.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
}

impl Platform {
    /// This machine, in Go's names (what docker picks by default).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            variant: variant.map(str::to_string),
            os_version: None,
        }
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64"));
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
        })
    }

    /// Whether an index entry for `other` may run here (variant: `arm64` entries
    /// without a variant match `v8`, as containerd's matcher does).
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match (&self.variant, &other.variant) {
            (Some(a), Some(b)) => a == b,
            (Some(a), None) => self.architecture == "arm64" && a == "v8",
            (None, _) => true,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest (Docker schema 2 or OCI): the config and the layers, bottom first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own type (optional in OCI, then given by `Content-Type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image configuration.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or manifest list: one manifest per platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// What a registry answered for a manifest request, parsed.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per pull: boxing buys nothing
pub enum Document {
    /// One image.
    Image(Manifest),
    /// Several, one per platform.
    Index(Index),
}

/// Parse manifest bytes whose type is `content_type` (or, when the server sent a
/// generic type, the `mediaType` field). Refuses schema 1 and unknown types, and
/// checks that every digest inside is well-formed before it is used as a path.
pub fn parse(bytes: &[u8], content_type: &str) -> Result<(String, Document), String> {
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(format!("manifest is {} bytes, more than the {} allowed", bytes.len(), MAX_MANIFEST));
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let mt = match (ct, &probe.media_type) {
        (c, _) if ACCEPT.contains(&c) => c.to_string(),
        (_, Some(m)) if ACCEPT.contains(&m.as_str()) => m.clone(),
        // An OCI document without mediaType, served as application/json.
        (_, None) if probe.schema_version == Some(2) => {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        }
        _ => {
            let shown = probe.media_type.as_deref().unwrap_or(ct);
            if shown.contains("manifest.v1") || probe.schema_version == Some(1) {
                return Err("this is a Docker schema 1 manifest, deprecated and unsupported; push the image again with a current tool".into());
            }
            return Err(format!("unsupported manifest media type {shown:?} (expected one of {})", ACCEPT.join(", ")));
        }
    };
    if let Some(m) = &probe.media_type {
        if m != &mt {
            return Err(format!("manifest says it is {m:?} but was served as {mt:?}"));
        }
    }
    if probe.schema_version != Some(2) {
        return Err(format!("unsupported manifest schemaVersion {:?} (expected 2)", probe.schema_version));
    }
    let doc = if mt == OCI_INDEX || mt == DOCKER_LIST {
        let ix: Index = serde_json::from_slice(bytes).map_err(|e| format!("bad image index: {e}"))?;
        for d in &ix.manifests {
            super::reference::check_digest(&d.digest)?;
        }
        Document::Index(ix)
    } else {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| format!("bad image manifest: {e}"))?;
        super::reference::check_digest(&m.config.digest)?;
        for d in &m.layers {
            super::reference::check_digest(&d.digest)?;
            if !is_layer_type(&d.media_type) {
                return Err(format!("layer {} has unsupported media type {:?}", d.digest, d.media_type));
            }
        }
        if m.config.size > MAX_CONFIG {
            return Err(format!("image config is {} bytes, more than the {} allowed", m.config.size, MAX_CONFIG));
        }
        Document::Image(m)
    };
    Ok((mt, doc))
}

/// Whether `mt` is a layer type we can unpack.
pub fn is_layer_type(mt: &str) -> bool {
    [
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ]
    .contains(&mt)
}

/// Pick the manifest for `want` in an index (as docker: the first entry that matches).
pub fn choose<'a>(ix: &'a Index, want: &Platform) -> Result<&'a Descriptor, String> {
    ix.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p))).ok_or_else(|| {
        let have: Vec<String> =
            ix.manifests.iter().filter_map(|d| d.platform.as_ref()).map(|p| p.to_string()).collect();
        format!("no manifest for platform {want} in the index (it has: {})", have.join(", "))
    })
}

/// The parts of an image configuration the store shows (the rest is kept as bytes).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Config {
    /// When the image was built (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
    /// `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// The sha256 of each layer's *uncompressed* tar, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per build step (some made no layer: `empty_layer`).
    #[serde(default)]
    pub history: Vec<History>,
    /// How a container of the image runs (`Env`, `Cmd`...).
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
}

/// `config` in an image configuration: how a container of it runs, what `docker run`
/// starts from (flags override each field).
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `NAME=value` environment entries.
    #[serde(rename = "Env", default, deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// The default command (arguments of the entrypoint when there is one).
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    /// The program the command is given to.
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    /// The working directory (`""`: `/`).
    #[serde(rename = "WorkingDir", default, deserialize_with = "null_default")]
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid` (`""`: root).
    #[serde(rename = "User", default, deserialize_with = "null_default")]
    pub user: String,
    /// The signal `docker stop` sends (default `SIGTERM`).
    #[serde(rename = "StopSignal", default)]
    pub stop_signal: Option<String>,
    /// Labels.
    #[serde(rename = "Labels", default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Ports the image documents (`80/tcp`).
    #[serde(rename = "ExposedPorts", default, deserialize_with = "keys")]
    pub exposed_ports: Vec<String>,
    /// Directories meant to be volumes (`/data`).
    #[serde(rename = "Volumes", default, deserialize_with = "keys")]
    pub volumes: Vec<String>,
}

/// A field docker may write as `null`: its default then.
fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object used as a set (`{"80/tcp": {}}`): its keys, sorted.
fn keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let m = Option::<BTreeMap<String, serde::de::IgnoredAny>>::deserialize(d)?;
    Ok(m.map(|m| m.into_keys().collect()).unwrap_or_default())
}

/// `rootfs` in the config.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `sha256:...` of each uncompressed layer.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// One build step.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct History {
    /// When.
    #[serde(default)]
    pub created: Option<String>,
    /// The Dockerfile instruction, as the builder recorded it.
    #[serde(default)]
    pub created_by: Option<String>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// True when the step made no layer (ENV, CMD...).
    #[serde(default)]
    pub empty_layer: bool,
}

/// Parse a configuration, checking its diff_ids.
pub fn parse_config(bytes: &[u8]) -> Result<Config, String> {
    let c: Config = serde_json::from_slice(bytes).map_err(|e| format!("bad image config: {e}"))?;
    for d in &c.rootfs.diff_ids {
        super::reference::check_digest(d)?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching() {
        let host = Platform::parse("linux/arm64/v8").unwrap();
        assert!(host.matches(&Platform::parse("linux/arm64").unwrap()));
        assert!(!host.matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(Platform::parse("linux").is_err());
        assert_eq!(Platform::parse("linux/arm/v7").unwrap().to_string(), "linux/arm/v7");
    }

    #[test]
    fn refuses_schema1_and_unknown() {
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(parse(s1, "application/vnd.docker.distribution.manifest.v1+prettyjws")
            .unwrap_err()
            .contains("schema 1"));
        assert!(parse(b"{}", "text/html").is_err());
        let bad = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:../../etc","size":1},"layers":[]}"#;
        assert!(parse(bad, OCI_MANIFEST).is_err());
    }

    #[test]
    fn run_config_as_docker_writes_it() {
        let c = parse_config(br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],
            "Entrypoint":null,"WorkingDir":"/srv","User":"1000:1000","StopSignal":"SIGQUIT","Labels":{"a":"b"},
            "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/data":{}}},"rootfs":{"type":"layers","diff_ids":[]}}"#)
        .unwrap();
        let r = &c.config;
        assert_eq!(
            (r.env.clone(), r.cmd.clone(), r.entrypoint.clone()),
            (vec!["PATH=/bin".into()], Some(vec!["sh".into()]), None)
        );
        assert_eq!(
            (r.working_dir.as_str(), r.user.as_str(), r.stop_signal.as_deref()),
            ("/srv", "1000:1000", Some("SIGQUIT"))
        );
        assert_eq!(r.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(r.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(r.volumes, ["/data"]);
        let empty = parse_config(br#"{"config":{"Env":null,"Labels":null,"ExposedPorts":null}}"#).unwrap();
        assert_eq!(empty.config, RunConfig::default());
        assert_eq!(parse_config(b"{}").unwrap().config, RunConfig::default());
    }
}
