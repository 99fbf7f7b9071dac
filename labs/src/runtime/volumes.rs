//! Volumes, bind mounts and tmpfs: the container's data outside its layers.
//!
//! A container's root is an overlay: what it writes lands in its own upper layer and
//! goes with `rm`. Data that must outlive the container, be shared, or be written fast
//! lives elsewhere and is mounted over a path of the root before `pivot_root(2)`:
//!
//! - a **bind mount** (`-v /host/dir:/path`, `--mount type=bind`): `mount(2)` with
//!   `MS_BIND` of a host directory or file: the same inode seen from a second place;
//! - a **volume** (`-v NAME:/path`, `--mount type=volume`): a bind mount too, of a
//!   directory mini manages, `ROOT/volumes/NAME/_data` (docker's
//!   `/var/lib/docker/volumes/NAME/_data`), or with the local driver's options a
//!   filesystem mounted there first (`type=tmpfs`, `type=none,o=bind,device=/path`);
//! - a **tmpfs** (`--tmpfs /path`, `--mount type=tmpfs`): a filesystem in memory,
//!   gone with the container.
//!
//! ## What the kernel is asked
//!
//! At `create`, nothing but directories: a named volume is `mkdir` of
//! `ROOT/volumes/NAME/_data` and a small record beside it (`volume.json`, docker's
//! `opts.json` and metadata). At `start`, once the overlay is mounted, for each mount:
//!
//! 1. a volume with the local driver's options: its filesystem mounted on `_data`
//!    (`mount("tmpfs", "…/_data", "tmpfs", 0, "size=100m,uid=1000")`), once
//!    for all the containers that use it; unmounted when the last one stops;
//! 2. a new, empty volume over a path where the image has files: the image's files
//!    copied into it first (docker's copy-up), as a tar packed from the root and
//!    applied into `_data` by the layer-diff lab; once per container (at its first
//!    start: docker does it at create), never into a volume that has files;
//! 3. the mount point made inside the root (`mkdirat`, or a file for a file bind),
//!    every component opened with `openat2(RESOLVE_BENEATH)`, so a symlink of the
//!    image cannot make it elsewhere on the host, and a symlink as the mount point
//!    itself refused (mount(2) would follow it from the host's side); made before
//!    anything is copied into a new volume, so copy-up only reads inside the root. A
//!    mount inside another one (`-v a:/data -v b:/data/sub`) gets its mount point in
//!    the outer one's source;
//! 4. then, in the container's first process, before `pivot_root`: `mount(SRC, DST,
//!    NULL, MS_BIND|MS_REC)` for volumes and binds, a second
//!    `mount(MS_REMOUNT|MS_BIND|MS_RDONLY…)` for `:ro` (a bind takes no flags of its
//!    own: they are set on the new mount by remounting it), and `mount("tmpfs", DST,
//!    "tmpfs", MS_NOSUID|MS_NODEV|MS_NOEXEC, "size=…")` for tmpfs.
//!
//! Mounts are made parents first (sorted by the depth of their destination), as
//! docker sorts them, so `-v a:/data -v b:/data/sub` nests.
//!
//! ## Why a bind mount is root's door to the host
//!
//! A bind mount shows the host's own inodes: their owners are the host's uids, and the
//! container's root (uid 0, with `CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`) is the host's
//! root for them. A file made inside a bind by uid 1111 belongs to uid 1111 on the host;
//! a setuid-root program written into a shared directory by the container's root runs
//! as root for any host user who starts it. The defence is on the host's side: the
//! local driver's `o=bind,nosuid` (or a host directory mounted `nosuid`) makes the
//! kernel ignore the setuid bit there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, MntFlags, MsFlags};

use super::state::{mkdir_once, Container};

/// The label docker puts on a volume made for one container (`-v /path`, VOLUME).
pub const ANONYMOUS: &str = "com.docker.volume.anonymous";

/// A named volume, as `volume.json` holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// `local`.
    pub driver: String,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// The local driver's `--opt`s: `type`, `device`, `o`.
    pub options: BTreeMap<String, String>,
    /// When it was made (RFC 3339).
    pub created: String,
}

impl Volume {
    /// Whether it was made for one container only.
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS)
    }

    /// Whether a filesystem is mounted on `_data` when it is used (the local driver
    /// with `type`/`device`).
    pub fn has_device(&self) -> bool {
        self.options.contains_key("type") || self.options.contains_key("device")
    }
}

/// What `mini volume create` asks for.
#[derive(Debug, Clone, Default)]
pub struct VolumeSpec {
    /// The name (`None`: 64 random hex digits, as docker's anonymous volumes).
    pub name: Option<String>,
    /// `local` (the only driver).
    pub driver: String,
    /// `--opt KEY=VALUE`.
    pub options: Vec<String>,
    /// `--label KEY=VALUE`.
    pub labels: Vec<String>,
}

/// Where volumes live: `ROOT/volumes/NAME/{_data,volume.json}`.
pub struct Volumes<'k> {
    k: &'k Kernel,
    /// `ROOT/volumes`.
    pub dir: PathBuf,
}

/// docker's rule for a local volume's name.
pub fn valid_name(name: &str) -> bool {
    super::names::valid_name(name)
}

fn daemon(what: String, hint: &str) -> Error {
    Error::failed(format!("Error response from daemon: {what}"), hint.to_string())
}

fn pairs(list: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for kv in list {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if k.is_empty() {
            return Err(Error::Usage(format!("invalid argument \"{kv}\" for \"--{what}\" flag: bad format")));
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

impl<'k> Volumes<'k> {
    /// The volumes of the store at `root` (the directory is made when first needed).
    pub fn open(k: &'k Kernel, root: &Path) -> Volumes<'k> {
        // Canonical: mountinfo's paths are, and `is_mount_point` compares with them.
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        Volumes { k, dir: root.join("volumes") }
    }

    /// The volumes' lock: held by whatever makes or removes volumes (create, rm,
    /// prune, a run resolving its mounts), so a removal never meets a volume being
    /// made, and a run's rollback removes only what it made.
    pub fn lock(&self) -> Result<crate::lock::FileLock> {
        super::state::mkdir_once(self.k, &self.dir, 0o701)?;
        Ok(crate::lock::lock(
            self.k,
            &self.dir.join(".lock"),
            true,
            Some("another mini is making or removing volumes: waiting"),
        )?)
    }

    /// `ROOT/volumes/NAME`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What containers see: `ROOT/volumes/NAME/_data` (docker's Mountpoint).
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.path(name).join("_data")
    }

    /// One volume's record.
    pub fn get(&self, name: &str) -> Result<Volume> {
        if !valid_name(name) {
            return Err(no_such_volume(name));
        }
        let text = self.k.read_file(&self.path(name).join("volume.json")).map_err(|_| no_such_volume(name))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::failed(
                format!("the record of volume {name} is damaged: {e}"),
                format!("remove {} by hand", self.path(name).display()),
            )
        })
    }

    /// Every volume, by name.
    pub fn all(&self) -> Result<Vec<Volume>> {
        if !self.k.exists(&self.dir) {
            return Ok(vec![]);
        }
        let mut names = self.k.read_dir(&self.dir).map_err(|e| {
            Error::failed(format!("cannot list {}: {e}", self.dir.display()), "check the store's permissions")
        })?;
        names.sort();
        Ok(names.iter().filter_map(|n| self.get(n).ok()).collect())
    }

    /// `mini volume create`: the directory and its record; an existing volume of the
    /// same name is returned as it is (docker's create is idempotent).
    pub fn create(&self, spec: &VolumeSpec) -> Result<Volume> {
        let name = spec.name.clone().unwrap_or_else(super::names::new_id);
        if !valid_name(&name) {
            return Err(daemon(
                format!("create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
                "choose a name of letters, digits, _ . and -",
            ));
        }
        let driver = if spec.driver.is_empty() { "local".to_string() } else { spec.driver.clone() };
        if driver != "local" {
            return Err(daemon(
                format!("create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"),
                "mini has the local driver only",
            ));
        }
        let options = pairs(&spec.options, "opt")?;
        for key in options.keys() {
            if !["type", "device", "o"].contains(&key.as_str()) {
                return Err(daemon(
                    format!("create {name}: invalid option key: \"{key}\""),
                    "the local driver takes type=, device= and o= (as mount(8)'s -t, device and -o)",
                ));
            }
        }
        if options.contains_key("o") && !options.contains_key("type") && !options.contains_key("device") {
            // As docker's local driver: o without a filesystem to mount means nothing.
            return Err(daemon(
                format!("create {name}: missing required option: \"device\""),
                "give --opt type=... --opt device=... with --opt o=...",
            ));
        }
        if let Ok(v) = self.get(&name) {
            return Ok(v);
        }
        let v = Volume {
            name: name.clone(),
            driver,
            labels: pairs(&spec.labels, "label")?,
            options,
            created: crate::units::rfc3339(crate::units::now_nanos()),
        };
        let k = self.k;
        mkdir_once(k, &self.dir, 0o701)?;
        let dir = self.path(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        if k.exists(&partial) {
            super::resources::remove_tree(k, &partial)?;
        }
        // Made beside, renamed into place complete: a kill halfway leaves no volume
        // without its record.
        mkdir_once(k, &partial, 0o701)?;
        let made = mkdir_once(k, &partial.join("_data"), 0o755)
            .and_then(|_| {
                let bytes = serde_json::to_vec_pretty(&v).unwrap_or_default();
                k.why("the volume's record: driver, options, labels").write_new_file(
                    &partial.join("volume.json"),
                    &bytes,
                    0o600,
                )?;
                Ok(())
            })
            .and_then(|_| Ok(k.why("the volume, complete, under its name").rename_over(&partial, &dir)?));
        if let Err(e) = made {
            let _ = super::resources::remove_tree(k, &partial);
            return Err(e);
        }
        Ok(v)
    }

    /// The volume `name`, made if missing (`-v NAME:/path` makes it, as docker does).
    pub fn ensure(&self, name: &str, labels: &[String]) -> Result<Volume> {
        match self.get(name) {
            Ok(v) => Ok(v),
            Err(_) => self.create(&VolumeSpec {
                name: Some(name.into()),
                driver: "local".into(),
                labels: labels.to_vec(),
                ..Default::default()
            }),
        }
    }

    /// Remove a volume no container uses (the caller checked: [`users`]).
    pub fn remove(&self, name: &str) -> Result<()> {
        let v = self.get(name)?;
        let data = self.mountpoint(&v.name);
        if self.k.is_mount_point(&data) {
            self.k.why("the volume's filesystem, before the volume goes").umount2(&data, MntFlags::MNT_DETACH)?;
        }
        if self.k.is_mount_point(&data) {
            // Never remove files through a mount (a bind of a host directory).
            return Err(Error::failed(
                format!("remove {}: {} is still a mount point", v.name, data.display()),
                "unmount it first (umount -l), then remove the volume",
            ));
        }
        super::resources::remove_tree(self.k, &self.path(&v.name))
    }

    /// docker's `volume inspect` object.
    pub fn inspect(&self, v: &Volume) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": v.created,
            "Driver": v.driver,
            "Labels": if v.labels.is_empty() { serde_json::Value::Null } else { serde_json::json!(v.labels) },
            "Mountpoint": self.mountpoint(&v.name),
            "Name": v.name,
            "Options": if v.options.is_empty() { serde_json::Value::Null } else { serde_json::json!(v.options) },
            "Scope": "local",
        })
    }

    /// Bytes under the volume's `_data` (for `system df`), walking it.
    pub fn size(&self, name: &str) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(rd) = std::fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.mountpoint(name))
    }
}

/// docker's message for a volume that is not there.
pub fn no_such_volume(name: &str) -> Error {
    daemon(format!("get {name}: no such volume"), "see `mini volume ls`")
}

/// The containers (short IDs) whose mounts use volume `name`.
pub fn users(all: &[Container], name: &str) -> Vec<String> {
    all.iter().filter(|c| c.mounts.iter().any(|m| m.kind == "volume" && m.name == name)).map(|c| c.id.clone()).collect()
}

/// docker's refusal to remove a volume in use.
pub fn in_use(name: &str, ids: &[String]) -> Error {
    daemon(
        format!("remove {name}: volume is in use - [{}]", ids.join(", ")),
        "remove the containers that use it first (`mini rm`)",
    )
}

// ---- what `run` is given: -v, --mount, --tmpfs ------------------------------------

/// One mount as `run`/`create` were asked for it, before volumes are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountRequest {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name (empty: anonymous), or the bind's host path.
    pub source: String,
    /// The path inside.
    pub destination: String,
    /// Read-only.
    pub readonly: bool,
    /// docker's Mode as typed (`ro`, `z`...).
    pub mode: String,
    /// `--mount`'s volume-opt (for a volume made by this run).
    pub volume_opts: Vec<String>,
    /// Do not copy the image's files into a new volume.
    pub nocopy: bool,
    /// tmpfs: mount(2) flags words (`noexec`, `exec`...) and data (`size=…`).
    pub tmpfs_options: Vec<String>,
    /// From `--mount` (a missing bind source is an error) rather than `-v` (made).
    pub strict: bool,
}

fn bad_volume(spec: &str, why: &str) -> Error {
    let why = if why.is_empty() { String::new() } else { format!(": {why}") };
    daemon(format!("invalid volume specification: '{spec}'{why}"), "the form is [NAME|/HOST/PATH:]/PATH[:ro]")
}

fn check_destination(kind: &str, dst: &str, spec: &str) -> Result<()> {
    if !dst.starts_with('/') {
        return Err(bad_volume(
            spec,
            &format!(
                "invalid mount config for type \"{kind}\": invalid mount path: '{dst}' mount path must be absolute"
            ),
        ));
    }
    if dst == "/" {
        return Err(bad_volume(
            spec,
            &format!("invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'"),
        ));
    }
    Ok(())
}

/// `-v [SRC:]DST[:MODE]`.
pub fn parse_volume_flag(spec: &str) -> Result<MountRequest> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [a, b] if b.starts_with('/') || !a.starts_with('/') && !b.contains('/') && is_mode(b) => {
            if b.starts_with('/') {
                (*a, *b, "")
            } else {
                ("", *a, *b)
            }
        }
        [a, b] => (*a, *b, ""),
        [a, b, m] => (*a, *b, *m),
        _ => return Err(bad_volume(spec, "")),
    };
    if dst.is_empty() {
        return Err(bad_volume(spec, ""));
    }
    for w in mode.split(',').filter(|w| !w.is_empty()) {
        if !is_mode(w) {
            return Err(bad_volume(spec, &format!("invalid mode: {mode}")));
        }
    }
    let kind = if src.is_empty() {
        "volume"
    } else if src.starts_with('/') {
        "bind"
    } else {
        if !valid_name(src) {
            return Err(daemon(
                format!("create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
                "a volume is a name; a host directory is an absolute path",
            ));
        }
        "volume"
    };
    check_destination(kind, dst, spec)?;
    let words: Vec<&str> = mode.split(',').collect();
    Ok(MountRequest {
        kind: kind.into(),
        source: src.into(),
        destination: clean(dst),
        readonly: words.contains(&"ro"),
        mode: if mode.is_empty() && kind == "volume" { "z".into() } else { mode.into() },
        nocopy: words.contains(&"nocopy"),
        ..Default::default()
    })
}

fn is_mode(w: &str) -> bool {
    w.split(',').all(|w| {
        ["ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave"].contains(&w)
    })
}

fn clean(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.into()
    }
}

fn bad_mount(spec: &str, why: &str) -> Error {
    Error::Usage(format!("invalid argument \"{spec}\" for \"--mount\" flag: {why}"))
}

fn truth(spec: &str, key: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(v) => Err(bad_mount(spec, &format!("invalid value for {key}: {v}"))),
    }
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,…]`.
pub fn parse_mount_flag(spec: &str) -> Result<MountRequest> {
    let mut m = MountRequest { kind: "volume".into(), strict: true, ..Default::default() };
    let mut tmpfs_size = None;
    let mut tmpfs_mode = None;
    for field in spec.split(',') {
        let (key, v) = match field.split_once('=') {
            Some((a, b)) => (a.to_lowercase(), Some(b)),
            None => (field.to_lowercase(), None),
        };
        let val = || {
            v.map(str::to_string)
                .ok_or_else(|| bad_mount(spec, &format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.as_str() {
            "type" => {
                m.kind = val()?;
                if !["bind", "volume", "tmpfs"].contains(&m.kind.as_str()) {
                    return Err(bad_mount(spec, &format!("invalid value for 'type': {}", m.kind)));
                }
            }
            "source" | "src" => m.source = val()?,
            "target" | "destination" | "dst" => m.destination = val()?,
            "readonly" | "ro" => m.readonly = truth(spec, &key, v)?,
            "volume-nocopy" => m.nocopy = truth(spec, &key, v)?,
            "volume-opt" => m.volume_opts.push(val()?),
            "volume-driver" => {
                if val()? != "local" {
                    return Err(bad_mount(spec, "mini has the local volume driver only"));
                }
            }
            "bind-propagation" | "consistency" | "volume-label" | "bind-recursive" => {
                val()?;
            }
            "tmpfs-size" => tmpfs_size = Some(val()?),
            "tmpfs-mode" => tmpfs_mode = Some(val()?),
            _ => return Err(bad_mount(spec, &format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let kind = m.kind.clone();
    let invalid = |why: &str| {
        daemon(format!("invalid mount config for type \"{kind}\": {why}"), "see mini run --help for --mount's fields")
    };
    if m.destination.is_empty() {
        return Err(invalid("field Target must not be empty"));
    }
    if !m.destination.starts_with('/') {
        return Err(invalid(&format!("invalid mount path: '{}' mount path must be absolute", m.destination)));
    }
    match kind.as_str() {
        "bind" if m.source.is_empty() => return Err(invalid("field Source must not be empty")),
        "bind" if !m.source.starts_with('/') => {
            return Err(invalid(&format!("invalid mount path: '{}' mount path must be absolute", m.source)))
        }
        "tmpfs" if !m.source.is_empty() => return Err(invalid("field Source must not be specified")),
        "volume" if !m.source.is_empty() && !valid_name(&m.source) => {
            return Err(invalid(&format!("invalid volume name: {}", m.source)))
        }
        _ => {}
    }
    if kind != "tmpfs" && (tmpfs_size.is_some() || tmpfs_mode.is_some()) {
        return Err(invalid("field TmpfsOptions must not be specified"));
    }
    if let Some(s) = tmpfs_size {
        let bytes = super::spec::ram_in_bytes(&s)?;
        m.tmpfs_options.push(format!("size={bytes}"));
    }
    if let Some(mo) = tmpfs_mode {
        let n = u32::from_str_radix(mo.trim_start_matches("0o"), 8)
            .map_err(|_| bad_mount(spec, &format!("invalid value for tmpfs-mode: {mo}")))?;
        m.tmpfs_options.push(format!("mode={n:o}"));
    }
    m.destination = clean(&m.destination);
    m.mode = match (kind.as_str(), m.readonly) {
        ("volume", false) => "z".into(),
        _ => String::new(),
    };
    Ok(m)
}

/// `--tmpfs /path[:opts]`.
pub fn parse_tmpfs_flag(spec: &str) -> Result<MountRequest> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    check_destination("tmpfs", dst, spec)?;
    Ok(MountRequest {
        kind: "tmpfs".into(),
        destination: clean(dst),
        readonly: opts.split(',').any(|o| o == "ro"),
        tmpfs_options: opts
            .split(',')
            .filter(|o| !o.is_empty() && *o != "ro" && *o != "rw")
            .map(str::to_string)
            .collect(),
        ..Default::default()
    })
}

/// mount(8)'s words that are mount(2) flags, and the rest (the filesystem's data).
pub fn mount_options(words: &[String]) -> (MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut data = vec![];
    for w in words {
        match w.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags.remove(MsFlags::MS_RDONLY),
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "suid" => flags.remove(MsFlags::MS_NOSUID),
            "nodev" => flags |= MsFlags::MS_NODEV,
            "dev" => flags.remove(MsFlags::MS_NODEV),
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "exec" => flags.remove(MsFlags::MS_NOEXEC),
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "async" | "defaults" => {}
            _ => data.push(w.clone()),
        }
    }
    (flags, data)
}

/// The container's mounts from what `run` was given, volumes made (named ones if
/// missing, a new anonymous one per `-v /path` and per VOLUME of the image no mount
/// covers), sorted parents first. `volumes_from` are other containers' mounts taken
/// with their mode (`NAME:ro` makes them read-only).
pub fn resolve(
    k: &Kernel,
    root: &Path,
    requests: &[MountRequest],
    image_volumes: &[String],
    volumes_from: &[(Container, bool)],
) -> Result<Vec<MountPoint>> {
    for (i, r) in requests.iter().enumerate() {
        if requests[..i].iter().any(|o| o.destination == r.destination) {
            return Err(daemon(format!("Duplicate mount point: {}", r.destination), "mount one thing per path"));
        }
    }
    if requests.is_empty() && image_volumes.is_empty() && volumes_from.is_empty() {
        return Ok(vec![]);
    }
    let vols = Volumes::open(k, root);
    let _l = vols.lock()?;
    let before: Vec<String> = vols.all()?.into_iter().map(|v| v.name).collect();
    resolve_inner(k, &vols, requests, image_volumes, volumes_from).inspect_err(|_| {
        // Nothing half-made: the volumes this call made go again.
        for v in vols.all().unwrap_or_default() {
            if !before.contains(&v.name) {
                let _ = vols.remove(&v.name);
            }
        }
    })
}

fn resolve_inner(
    k: &Kernel,
    vols: &Volumes,
    requests: &[MountRequest],
    image_volumes: &[String],
    volumes_from: &[(Container, bool)],
) -> Result<Vec<MountPoint>> {
    let mut out: Vec<MountPoint> = vec![];
    let taken = |out: &[MountPoint], d: &str| out.iter().any(|m| m.destination == d);
    for r in requests {
        let mut m = MountPoint {
            kind: r.kind.clone(),
            destination: r.destination.clone(),
            mode: r.mode.clone(),
            rw: !r.readonly,
            ..Default::default()
        };
        match r.kind.as_str() {
            "bind" => {
                m.source = clean(&r.source);
                m.propagation = "rprivate".into();
                if !k.exists(Path::new(&m.source)) {
                    if r.strict {
                        return Err(daemon(
                            format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                m.source
                            ),
                            "create it first (--mount does not; -v does)",
                        ));
                    }
                    // -v makes a missing host directory, as docker does.
                    super::super::image::store::mkdir_p(k, Path::new(&m.source))?;
                }
            }
            "volume" => {
                let v = if r.source.is_empty() {
                    let v = vols.create(&VolumeSpec {
                        driver: "local".into(),
                        labels: vec![format!("{ANONYMOUS}=")],
                        options: r.volume_opts.clone(),
                        ..Default::default()
                    })?;
                    m.anonymous = true;
                    v
                } else if r.volume_opts.is_empty() {
                    vols.ensure(&r.source, &[])?
                } else {
                    vols.create(&VolumeSpec {
                        name: Some(r.source.clone()),
                        driver: "local".into(),
                        options: r.volume_opts.clone(),
                        ..Default::default()
                    })?
                };
                m.name = v.name.clone();
                m.source = vols.mountpoint(&v.name).display().to_string();
                m.driver = "local".into();
                if r.nocopy {
                    m.options = "nocopy".into();
                }
            }
            _ => {
                m.options = r.tmpfs_options.join(",");
            }
        }
        out.push(m);
    }
    for (other, ro) in volumes_from {
        for om in other.mounts.iter().filter(|m| m.kind != "tmpfs") {
            if taken(&out, &om.destination) {
                continue;
            }
            let mut m = om.clone();
            if *ro {
                m.rw = false;
                m.mode = "ro".into();
            }
            out.push(m);
        }
    }
    for d in image_volumes {
        let d = clean(d);
        if taken(&out, &d) {
            continue;
        }
        let v = vols.create(&VolumeSpec {
            driver: "local".into(),
            labels: vec![format!("{ANONYMOUS}=")],
            ..Default::default()
        })?;
        out.push(MountPoint {
            kind: "volume".into(),
            name: v.name.clone(),
            source: vols.mountpoint(&v.name).display().to_string(),
            destination: d,
            driver: "local".into(),
            rw: true,
            anonymous: true,
            ..Default::default()
        });
    }
    out.sort_by_key(|m| Path::new(&m.destination).components().count());
    Ok(out)
}

// ---- at start: the host's side ----------------------------------------------------

/// One mount for the first process to make before `pivot_root` (init's spec).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitMount {
    /// The host path (bind) or `tmpfs`.
    pub source: String,
    /// The path inside.
    pub target: String,
    /// `tmpfs`, or empty for a bind.
    pub fstype: String,
    /// mount(8) words: `ro`, `nosuid`, `noexec`...
    pub flags: Vec<String>,
    /// The filesystem's data (`size=…,mode=…`).
    pub data: String,
}

/// The record's mark for a volume filesystem this container holds mounted.
fn mark(name: &str) -> String {
    format!("volume:{name}")
}

/// At start, once the root is mounted at `merged`: each volume's filesystem mounted
/// (local driver options), new volumes filled from the image, mount points made; the
/// mounts the first process makes. Marks what it mounts in `c.made` (saved by `save`
/// before each mount).
pub fn prepare(
    k: &Kernel,
    root: &Path,
    c: &mut Container,
    merged: &Path,
    save: &dyn Fn(&Container) -> Result<()>,
) -> Result<Vec<InitMount>> {
    let vols = Volumes::open(k, root);
    let mut out = vec![];
    let mounts = c.mounts.clone();
    let inside_root = super::userns::root_of(c);
    for (i, m) in mounts.iter().enumerate() {
        if m.kind == "volume" {
            let v = vols.get(&m.name)?;
            let data = vols.mountpoint(&v.name);
            if v.has_device() {
                let _l = crate::lock::lock(k, &vols.path(&v.name).join(".lock"), true, None)?;
                c.mark(&mark(&v.name));
                save(c)?;
                if !k.is_mount_point(&data) {
                    mount_device(k, &v, &data)?;
                }
            }
        }
        // A bind of a file needs a file to mount on (a symlink to a directory is a
        // directory: the source is followed, as mount(2) follows it).
        let is_file = m.kind == "bind" && std::fs::metadata(&m.source).is_ok_and(|md| !md.is_dir());
        // Whether the image has the path (only then is anything copied up): asked
        // before the mount point is made, used only once it is known to be inside.
        let in_image = k.lstat(&merged.join(m.destination.trim_start_matches('/'))).ok().flatten().is_some();
        // First the mount point, every component resolved beneath the root (or beneath
        // the mount it is nested in): only a path that stays inside is copied from.
        super::userns::as_root_inside(k, inside_root, || point_for(k, &mounts[..i], merged, &m.destination, is_file))?;
        if m.kind == "volume" && !m.populated {
            if m.options != "nocopy" && in_image {
                copy_up(k, merged, &m.destination, &vols.mountpoint(&m.name))?;
            } else if let Some((uid, gid)) = inside_root {
                // docker's remapped volumes belong to the container's root.
                let data = vols.mountpoint(&m.name);
                if k.read_dir(&data).map(|v| v.is_empty()).unwrap_or(false) {
                    k.why("userns-remap: the new volume belongs to the container's root").chown(&data, uid, gid)?;
                }
            }
            // Once per container, whether or not there was anything to copy: at a
            // restart the mount point mini made is no image content.
            c.mounts[i].populated = true;
        }
        let mut flags = vec![];
        if !m.rw {
            flags.push("ro".to_string());
        }
        out.push(match m.kind.as_str() {
            "tmpfs" => {
                // docker's defaults for a tmpfs; what was given comes after and wins.
                let mut words: Vec<String> = ["noexec", "nosuid", "nodev"].iter().map(|s| s.to_string()).collect();
                words.extend(m.options.split(',').filter(|o| !o.is_empty()).map(str::to_string));
                words.extend(flags);
                let (_, data) = mount_options(&words);
                InitMount {
                    source: "tmpfs".into(),
                    target: m.destination.clone(),
                    fstype: "tmpfs".into(),
                    flags: words.into_iter().filter(|w| !data.contains(w)).collect(),
                    data: data.join(","),
                }
            }
            _ => InitMount { source: m.source.clone(), target: m.destination.clone(), flags, ..Default::default() },
        });
    }
    Ok(out)
}

fn mount_device(k: &Kernel, v: &Volume, data: &Path) -> Result<()> {
    let o: Vec<String> = v.options.get("o").map(|o| o.split(',').map(str::to_string).collect()).unwrap_or_default();
    let (mut flags, words) = mount_options(&o);
    let fstype = v.options.get("type").filter(|t| t.as_str() != "none").cloned();
    let device = v.options.get("device").cloned().unwrap_or_else(|| "none".into());
    if fstype.is_none() && !flags.contains(MsFlags::MS_BIND) {
        return Err(daemon(
            format!("error while mounting volume '{}': type=none needs o=bind", data.display()),
            "use --opt type=none --opt o=bind --opt device=/path",
        ));
    }
    let bind_flags = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if fstype.is_none() {
        flags = MsFlags::MS_BIND | (flags & MsFlags::MS_REC);
    }
    let data_s = words.join(",");
    k.why("the volume's filesystem, mounted once on its _data for every container that uses it (docker's local driver)")
        .mount(Some(&device), data, fstype.as_deref(), flags, (!data_s.is_empty()).then_some(data_s.as_str()))
        .map_err(|e| {
            daemon(
                format!("error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {flags:?}, data: {data_s}: {e}", data.display(), data.display()),
                "check the volume's --opt values (mini volume inspect)",
            )
        })?;
    if fstype.is_none() && !bind_flags.is_empty() {
        k.why("a bind takes its flags (nosuid, ro...) by being remounted").mount(
            None,
            data,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | bind_flags,
            None,
        )?;
    }
    Ok(())
}

/// docker's copy-up: a volume still empty, mounted over a path where the image has
/// files, gets them first.
fn copy_up(k: &Kernel, merged: &Path, dest: &str, data: &Path) -> Result<()> {
    let src = merged.join(dest.trim_start_matches('/'));
    let Ok(Some(md)) = k.lstat(&src) else { return Ok(()) };
    if !md.is_dir() || k.read_dir(data).map(|v| !v.is_empty()).unwrap_or(true) {
        return Ok(());
    }
    // docker's copyOwnership: the volume's root takes the image directory's owner and
    // mode (a volume over a directory owned by a service user stays writable by it).
    {
        use std::os::unix::fs::MetadataExt;
        k.why("the volume takes the owner of the image's directory it is mounted on").chown(
            data,
            md.uid(),
            md.gid(),
        )?;
        if let (Some(parent), Some(name)) = (data.parent(), data.file_name()) {
            let fd = k.open_tree(parent)?;
            k.chmod_at(&fd, &parent.display().to_string(), &name.to_string_lossy(), md.mode() & 0o7777)?;
        }
    }
    if k.read_dir(&src).map(|v| v.is_empty()).unwrap_or(true) {
        return Ok(());
    }
    k.note(format!("copy-up: the volume is empty and the image has files at {dest}: they are copied into it first"));
    let mut tar = vec![];
    {
        let _s = k.scope(crate::layer::TOOL);
        crate::layer::pack(k, &src, &mut tar, &crate::layer::PackOptions::default())?;
        let opts = crate::layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: false };
        crate::layer::apply(k, tar.as_slice(), data, &opts)?;
    }
    Ok(())
}

/// The mount point of `dest`, made where the first process will find it: beneath the
/// root, or, when an earlier mount covers that path (`-v a:/data -v b:/data/sub`,
/// `-v x:/etc` under the /etc files), beneath that mount's source. Under a tmpfs
/// there is nothing to make it in before the container starts: refused.
pub fn point_for(k: &Kernel, earlier: &[MountPoint], merged: &Path, dest: &str, file: bool) -> Result<()> {
    let under = |m: &&MountPoint| dest.strip_prefix(m.destination.as_str()).is_some_and(|r| r.starts_with('/'));
    match earlier.iter().filter(under).max_by_key(|m| m.destination.len()) {
        None => mount_point(k, merged, dest, file),
        Some(p) if p.kind == "tmpfs" => Err(Error::failed(
            format!("cannot mount on {dest}: it is inside the tmpfs mounted on {}", p.destination),
            "mount it elsewhere, or mount a volume instead of the tmpfs",
        )),
        Some(p) => mount_point(k, Path::new(&p.source), &dest[p.destination.len()..], file),
    }
}

/// Make the mount point `dest` inside the root `merged` (directories, and a file for a
/// file bind), every component resolved beneath the root. A symlink as the last
/// component is refused: mount(2) would follow it from the host's side (docker
/// resolves it inside the root; mini does not follow it at all).
fn mount_point(k: &Kernel, merged: &Path, dest: &str, file: bool) -> Result<()> {
    let root = k.open_tree(merged)?;
    let shown = merged.display().to_string();
    let rel = dest.trim_start_matches('/');
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    let escape = |e: crate::kernel::SysError| {
        Error::failed(
            format!("cannot make the mount point {dest} inside the container: {e}"),
            if e.errno == Errno::EXDEV {
                "a symlink of the image on that path points outside the container's root: mount elsewhere".to_string()
            } else {
                "check the path".to_string()
            },
        )
    };
    let mut sofar = String::new();
    for (i, p) in parts.iter().enumerate() {
        let parent =
            if sofar.is_empty() { k.open_beneath(&root, &shown, ".") } else { k.open_beneath(&root, &shown, &sofar) }
                .map_err(escape)?;
        let last = i + 1 == parts.len();
        let here = if sofar.is_empty() { p.to_string() } else { format!("{sofar}/{p}") };
        let parent_shown = if sofar.is_empty() { shown.clone() } else { format!("{shown}/{sofar}") };
        match k.stat_at(&parent, p).map_err(escape)? {
            // An inner symlink is followed by openat2, beneath the root; the last one
            // would be followed by mount(2), from the host's side.
            Some(md) if last && md.file_type().is_symlink() => {
                return Err(Error::failed(
                    format!("cannot mount on {dest} inside the container: /{here} is a symlink"),
                    "mount on the path the symlink points to",
                ))
            }
            Some(_) => {}
            None if last && file => {
                k.why("the mount point of a file bind: an empty file")
                    .create_at(&parent, &parent_shown, p, 0o644)
                    .map_err(escape)?;
            }
            None => {
                k.why("a mount point the image lacks").mkdir_at(&parent, &parent_shown, p, 0o755).map_err(escape)?
            }
        }
        sofar = here;
    }
    Ok(())
}

/// At stop: the volume filesystems this container held mounted, unmounted when no
/// other running container holds them.
pub fn release(
    k: &Kernel,
    root: &Path,
    c: &mut Container,
    others: &dyn Fn() -> Vec<Container>,
    save: &dyn Fn(&Container) -> Result<()>,
) {
    let vols = Volumes::open(k, root);
    for what in c.made.clone() {
        let Some(name) = what.strip_prefix("volume:") else { continue };
        let Ok(_l) = crate::lock::lock(k, &vols.path(name).join(".lock"), true, None) else {
            c.unmark(&what);
            continue;
        };
        // Saved under the lock: a container stopping at the same time sees this one
        // gone. A holder counts only while it runs (a killed monitor's mark does not).
        c.unmark(&what);
        let _ = save(c);
        let held = others().iter().any(|o| o.id != c.id && o.state.status.is_up() && o.made.contains(&what));
        let data = vols.mountpoint(name);
        if !held && k.is_mount_point(&data) {
            if let Err(e) =
                k.why("no running container uses the volume's filesystem any more").umount2(&data, MntFlags::MNT_DETACH)
            {
                k.note(format!("could not unmount the volume {name}: {e}"));
                c.mark(&what);
            }
        }
    }
}

/// `rm -v` and `run --rm`: the container's anonymous volumes no other container uses.
pub fn remove_anonymous(k: &Kernel, root: &Path, c: &Container, all: &[Container]) -> Result<()> {
    if !c.mounts.iter().any(|m| m.anonymous) {
        return Ok(());
    }
    let vols = Volumes::open(k, root);
    let _l = vols.lock()?;
    for m in c.mounts.iter().filter(|m| m.anonymous) {
        let others: Vec<String> = users(all, &m.name).into_iter().filter(|id| *id != c.id).collect();
        if others.is_empty() {
            vols.remove(&m.name)?;
        }
    }
    Ok(())
}

/// docker's `Mounts` of `inspect`.
pub fn inspect_mounts(c: &Container) -> serde_json::Value {
    serde_json::Value::Array(
        c.mounts
            .iter()
            .map(|m| {
                let mut o = serde_json::json!({
                    "Type": m.kind, "Source": m.source, "Destination": m.destination,
                    "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation,
                });
                if m.kind == "volume" {
                    o["Name"] = m.name.clone().into();
                    o["Driver"] = m.driver.clone().into();
                }
                o
            })
            .collect(),
    )
}

/// One mount of a container, as `docker inspect` shows it under `Mounts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name (volumes only; 64 hex digits for an anonymous one).
    pub name: String,
    /// The host path mounted: the volume's `_data`, the bind's source; empty for tmpfs.
    pub source: String,
    /// The path inside the container.
    pub destination: String,
    /// `local` for volumes.
    pub driver: String,
    /// docker's Mode: `""`, `ro`, `z`...
    pub mode: String,
    /// Writable.
    pub rw: bool,
    /// `rprivate` for binds, empty otherwise.
    pub propagation: String,
    /// tmpfs options (`size=65536k,mode=1777`), as mount(2)'s data.
    pub options: String,
    /// A volume made for this container only (`-v /path`, the image's VOLUME):
    /// removed with `rm -v` and `run --rm`.
    pub anonymous: bool,
    /// The image's files were offered to the volume at the container's first start
    /// (copy-up happens once per container, as docker does it at create).
    #[serde(default)]
    pub populated: bool,
}
