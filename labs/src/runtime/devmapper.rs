//! The devicemapper storage driver: a container's root on a thin snapshot of a block
//! device, instead of an overlay of directories.
//!
//! overlayfs stacks *directories* and decides per file which layer answers. docker's
//! older `devicemapper` driver (the one the course's LVM chapter describes) works one
//! level lower, on *blocks*: every image layer and every container is a thin volume
//! of one device-mapper thin pool, a snapshot of the layer below it, holding an ext4
//! filesystem. A snapshot shares all its blocks with its origin (device-mapper's
//! `create_snap` message is O(1)); a write copies only the block it touches. So:
//!
//! | object | thin volume | made by |
//! |---|---|---|
//! | the base | `P-base`: empty, `mkfs.ext4` once | `create_thin`, then mkfs(8) |
//! | image layer N | `P-<chainid>`: a snapshot of layer N-1 (of the base for the first) with layer N applied | `create_snap`, `mount`, layer-diff's apply, `umount` |
//! | a container's init layer | `P-<id>-init`: a snapshot of the image's top layer with the mount points docker's `-init` layer holds | `create_snap` |
//! | the container | `P-<id>`: a snapshot of its init layer, mounted as its root while it runs | `create_snap`, `mount("/dev/mapper/P-<id>", …, "ext4")` |
//!
//! `P` is `mini_DEV_INO`, the device and inode of the store's `devicemapper`
//! directory, as docker names its devices `docker-MAJ:MIN-INO-…`: two stores on one
//! machine never share a pool or a name.
//!
//! As docker's `loop-lvm` mode did, the pool lives on two sparse files under
//! `ROOT/devicemapper/` (`data` and `metadata`) attached to loop devices
//! ([`crate::dm::loopdev`]); the pool (`P_pool`) is made once and reopened from
//! its metadata after a reboot. Which thin id is which volume is mini's own record,
//! `devices.json` (docker kept one file per device under `devicemapper/metadata/`);
//! an id is written there as *pending* before the pool is asked for it, so a mini
//! killed halfway leaves a record of what to delete, and the next command deletes it.
//!
//! What this costs compared with overlay: every container start activates a device
//! and mounts a filesystem (a journal replay check, a superblock read), a write to a
//! new block of a file copies a whole 64 KiB pool block, and the page cache is not
//! shared between containers of one image (each device has its own). That is why
//! docker deprecated the driver: overlay2 is faster and simpler. It stays a lesson: a
//! snapshot is the oldest way to give each container its own copy of an image.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dm::loopdev::{self, LoopSpec};
use crate::dm::thin::{self, PoolSpec};
use crate::dm::Dm;
use crate::error::{Error, Result};
use crate::image::{Image, Store};
use crate::kernel::{Errno, Kernel, MntFlags, MsFlags};
use crate::lock::FileLock;

use super::state::mkdir_once;

/// The driver's name, as `--storage-driver` and `inspect` say it.
pub const NAME: &str = "devicemapper";
/// The pool's data file (sparse): 4 GiB, as docker's `dm.loopdatasize` (100G there).
const DATA_SECTORS: u64 = 8 << 20;
/// The pool's metadata file (sparse): 128 MiB (docker's `dm.loopmetadatasize`: 2G).
const META_SECTORS: u64 = 256 << 10;
/// Each volume's virtual size: 2 GiB (docker's `dm.basesize`: 10G). Thin: only what is
/// written takes room in the pool.
pub const BASE_SECTORS: u64 = 4 << 20;
/// Pool block: 64 KiB, as docker's.
const BLOCK_SECTORS: u64 = 128;

/// One thin volume of the pool, as `devices.json` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its thin id in the pool.
    pub id: u64,
    /// Its virtual size, sectors.
    pub sectors: u64,
    /// An image layer's volume (keyed by chain id), which `rmi` collects.
    #[serde(default)]
    pub layer: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    /// What this store's device-mapper names start with: `mini_DEV_INO` of
    /// `ROOT/devicemapper` (docker's `docker-MAJ:MIN-INO`), so two stores on one
    /// machine never share a pool or a name.
    #[serde(default)]
    prefix: String,
    next_id: u64,
    devices: BTreeMap<String, Device>,
    /// Asked of the pool but not finished: deleted by the next command.
    pending: BTreeMap<String, Device>,
}

/// The pool, open and locked for one command.
pub struct Driver<'k> {
    k: &'k Kernel,
    dm: Dm<'k>,
    /// `ROOT/devicemapper`.
    pub dir: PathBuf,
    meta: Meta,
    _lock: FileLock,
}

/// The key of a container's init layer.
pub fn init_key(id: &str) -> String {
    format!("{id}-init")
}

/// Where a container's volume is mounted while it runs (its root).
pub fn rootfs(root: &Path, id: &str) -> PathBuf {
    root.join("devicemapper/mnt").join(id)
}

/// The volume keys of an image's layers, bottom first: their OCI chain ids
/// ([`crate::image::render::chain_ids`]) without `sha256:`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    crate::image::render::chain_ids(diff_ids).iter().map(|c| c.trim_start_matches("sha256:").to_string()).collect()
}

impl<'k> Driver<'k> {
    /// Open the pool under `root` (its files, loops and pool made the first time,
    /// reopened after a reboot), lock it for this command, and delete what a killed
    /// command left pending.
    pub fn open(k: &'k Kernel, root: &Path) -> Result<Driver<'k>> {
        let dir = root.join("devicemapper");
        crate::image::store::mkdir_p(k, &dir.join("mnt"))?;
        let lock = crate::lock::lock(k, &dir.join("lock"), true, Some("another mini is using the thin pool: waiting"))?;
        let dm = {
            let _s = k.scope(crate::dm::TOOL);
            Dm::open(k)?
        };
        let meta = match k.read_file(&dir.join("devices.json")) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| {
                Error::failed(
                    format!("the thin pool's record {} is damaged: {e}", dir.join("devices.json").display()),
                    "remove ROOT/devicemapper (and the pool: dmsetup remove_all) to start again",
                )
            })?,
            Err(_) => Meta { next_id: 1, ..Default::default() },
        };
        let mut d = Driver { k, dm, dir, meta, _lock: lock };
        if d.meta.prefix.is_empty() {
            use std::os::unix::fs::MetadataExt;
            let md = k
                .lstat(&d.dir)?
                .ok_or_else(|| Error::failed(format!("{} vanished", d.dir.display()), "check the store"))?;
            d.meta.prefix = format!("mini_{}_{}", md.dev(), md.ino());
        }
        if d.dm.info(&d.pool())?.is_none() {
            d.pool_up()?;
        }
        d.clean_pending();
        if !d.meta.devices.contains_key("base") {
            d.make_base()?;
        }
        Ok(d)
    }

    /// The thin pool's device-mapper name (`mini_DEV_INO_pool`).
    pub fn pool(&self) -> String {
        format!("{}_pool", self.meta.prefix)
    }

    /// The device-mapper name of volume `key` (`PREFIX-base`, `PREFIX-<chainid>`,
    /// `PREFIX-<id>-init`, `PREFIX-<id>`), docker's `DeviceName`.
    pub fn name(&self, key: &str) -> String {
        format!("{}-{key}", self.meta.prefix)
    }

    fn pool_up(&self) -> Result<()> {
        let k = self.k;
        let _s = k.scope(crate::dm::TOOL);
        k.note("the devicemapper driver's thin pool is not active: its files attached to loop devices, then the pool made (or reopened from its metadata)");
        let (data, meta) = (self.dir.join("data"), self.dir.join("metadata"));
        for (f, s) in [(&data, DATA_SECTORS), (&meta, META_SECTORS)] {
            if !k.exists(f) {
                loopdev::create_file(k, f, s)?;
            }
        }
        // Not autoclear: that would detach each loop as soon as this process closes it,
        // before the pool holds it open.
        let spec = LoopSpec { read_only: false, autoclear: false };
        let dl = loopdev::attach(k, &data, &spec)?;
        let ml = match loopdev::attach(k, &meta, &spec) {
            Ok(m) => m,
            Err(e) => {
                let _ = loopdev::detach(k, &dl);
                return Err(e);
            }
        };
        let r = thin::pool_create(
            &self.dm,
            &PoolSpec {
                name: self.pool(),
                data: dl.clone(),
                meta: ml.clone(),
                block: BLOCK_SECTORS,
                error_if_no_space: true,
            },
        );
        if let Err(e) = r {
            let _ = loopdev::detach(k, &dl);
            let _ = loopdev::detach(k, &ml);
            return Err(e);
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let bytes = serde_json::to_string_pretty(&self.meta).unwrap_or_default();
        // Written beside, renamed over: a kill mid-write leaves the old record whole.
        let tmp = self.dir.join(".devices.json.tmp");
        let _ = self.k.unlink(&tmp);
        self.k.why("the driver's record: which thin id is which layer or container").write_new_file(
            &tmp,
            bytes.as_bytes(),
            0o600,
        )?;
        self.k.rename_over(&tmp, &self.dir.join("devices.json"))?;
        Ok(())
    }

    fn clean_pending(&mut self) {
        let pending: Vec<(String, Device)> = std::mem::take(&mut self.meta.pending).into_iter().collect();
        if pending.is_empty() {
            return;
        }
        for (key, dev) in &pending {
            self.k.note(format!("{} was left half made (a failure, or a kill): deleting it", self.name(key)));
            let mnt = self.dir.join("mnt").join(key);
            let _ = self.k.umount2(&mnt, MntFlags::MNT_DETACH);
            let _ = self.k.rmdir(&mnt);
            let _s = self.k.scope(crate::dm::TOOL);
            let active = self.dm.info(&self.name(key)).ok().flatten().is_some();
            let gone = (!active || thin::deactivate(&self.dm, &self.name(key)).is_ok())
                && match thin::delete_thin(&self.dm, &self.pool(), dev.id) {
                    Ok(()) => true,
                    // Never made (killed before the pool was asked): nothing to delete.
                    Err(e) => e.errno() == Some(Errno::ENODATA) || e.errno() == Some(Errno::EINVAL),
                };
            if !gone {
                // Kept pending: the next command tries again, the id is not lost.
                self.meta.pending.insert(key.clone(), *dev);
            }
        }
        let _ = self.save();
    }

    /// A new thin volume `key`: empty (`origin` None) or a snapshot of volume `origin`;
    /// pending until [`Driver::done`].
    fn new_volume(&mut self, key: &str, origin: Option<&str>) -> Result<Device> {
        let sectors = origin.and_then(|o| self.meta.devices.get(o)).map(|d| d.sectors).unwrap_or(BASE_SECTORS);
        let origin_id = match origin {
            Some(o) => Some(self.get(o)?.id),
            None => None,
        };
        let _s = self.k.scope(crate::dm::TOOL);
        for _ in 0..64 {
            let dev = Device { id: self.meta.next_id, sectors, layer: false };
            self.meta.next_id += 1;
            self.meta.pending.insert(key.to_string(), dev);
            self.save()?;
            let r = match origin_id {
                None => thin::create_thin(&self.dm, &self.pool(), dev.id),
                Some(o) => thin::snapshot(&self.dm, &self.pool(), o, dev.id),
            };
            match r {
                Ok(()) => return Ok(dev),
                // An id a killed command took: the next one.
                Err(e) if e.errno() == Some(Errno::EEXIST) => continue,
                Err(e) => {
                    self.meta.pending.remove(key);
                    let _ = self.save();
                    return Err(e);
                }
            }
        }
        Err(Error::failed("no free thin id in the pool", "remove unused containers and images"))
    }

    fn done(&mut self, key: &str) -> Result<()> {
        if let Some(d) = self.meta.pending.remove(key) {
            self.meta.devices.insert(key.to_string(), d);
        }
        self.save()
    }

    /// Volume `key`, if it exists.
    pub fn get(&self, key: &str) -> Result<Device> {
        self.meta.devices.get(key).copied().ok_or_else(|| {
            Error::failed(
                format!("the thin pool has no volume {}", self.name(key)),
                "remove the container and create it again",
            )
        })
    }

    /// Whether volume `key` exists.
    pub fn has(&self, key: &str) -> bool {
        self.meta.devices.contains_key(key)
    }

    fn make_base(&mut self) -> Result<()> {
        let k = self.k;
        let mkfs = k.which("mkfs.ext4").ok_or_else(|| {
            Error::failed(
                "the devicemapper driver formats its base volume with mkfs.ext4, which is not installed",
                "apt-get install e2fsprogs",
            )
        })?;
        k.note("the base volume: an empty thin volume with an ext4 filesystem, the origin of every layer");
        let dev = self.new_volume("base", None)?;
        let r = (|| -> Result<()> {
            let node = self.activate_as("base", dev)?;
            let argv: Vec<String> = [
                mkfs.display().to_string(),
                "-q".into(),
                "-E".into(),
                "nodiscard,lazy_itable_init=1,lazy_journal_init=1".into(),
                node.display().to_string(),
            ]
            .into();
            let (st, _) = k
                .why("an ext4 filesystem on the base volume (every layer's snapshot inherits it)")
                .output(&argv, false)
                .map_err(|e| {
                    Error::failed(
                        format!("mkfs.ext4 {}: {e:?}", node.display()),
                        "check the pool's space (lvm-snap thin status)",
                    )
                })?;
            if crate::exit::Exit::of(st).code() != 0 {
                return Err(Error::failed(format!("mkfs.ext4 {} failed", node.display()), "see its message above"));
            }
            self.deactivate("base")
        })();
        match r {
            Ok(()) => self.done("base"),
            Err(e) => {
                let _ = self.deactivate("base");
                self.clean_pending();
                Err(e)
            }
        }
    }

    fn activate_as(&self, key: &str, dev: Device) -> Result<PathBuf> {
        let name = self.name(key);
        if self.dm.info(&name)?.is_some() {
            return Ok(Dm::node(&name));
        }
        let _s = self.k.scope(crate::dm::TOOL);
        thin::activate(&self.dm, &self.pool(), dev.id, &name, dev.sectors)
    }

    /// `/dev/mapper/mini-KEY`, active.
    pub fn activate(&self, key: &str) -> Result<PathBuf> {
        let dev = self.meta.devices.get(key).or_else(|| self.meta.pending.get(key)).copied();
        let dev = dev.ok_or_else(|| self.get(key).err().unwrap_or_else(|| Error::failed("no volume", "")))?;
        self.activate_as(key, dev)
    }

    /// Remove the device of volume `key` (the volume stays in the pool).
    pub fn deactivate(&self, key: &str) -> Result<()> {
        let name = self.name(key);
        if self.dm.info(&name)?.is_some() {
            let _s = self.k.scope(crate::dm::TOOL);
            thin::deactivate(&self.dm, &name)?;
        }
        Ok(())
    }

    /// Mount volume `key`'s filesystem on `dir` (made if missing).
    pub fn mount(&self, key: &str, dir: &Path, readonly: bool) -> Result<()> {
        let node = self.activate(key)?;
        crate::image::store::mkdir_p(self.k, dir)?;
        let flags = if readonly { MsFlags::MS_RDONLY } else { MsFlags::empty() };
        self.k
            .why("the volume's ext4 filesystem: this snapshot's view of the image")
            .mount(Some(&node.display().to_string()), dir, Some("ext4"), flags, None)
            .map_err(|e| {
                let _ = self.deactivate(key);
                Error::from(e)
            })?;
        Ok(())
    }

    /// Unmount `dir` and deactivate volume `key`.
    pub fn umount(&self, key: &str, dir: &Path) -> Result<()> {
        if self.k.is_mount_point(dir) {
            self.k.umount2(dir, MntFlags::empty()).or_else(|_| self.k.umount2(dir, MntFlags::MNT_DETACH))?;
        }
        self.deactivate(key)
    }

    /// Delete volume `key` from the pool (its device first).
    pub fn remove(&mut self, key: &str) -> Result<()> {
        let Some(dev) = self.meta.devices.get(key).copied() else { return Ok(()) };
        self.deactivate(key)?;
        {
            let _s = self.k.scope(crate::dm::TOOL);
            thin::delete_thin(&self.dm, &self.pool(), dev.id)?;
        }
        self.meta.devices.remove(key);
        self.save()
    }

    /// The volume of an image's top layer, each missing layer made as a snapshot of
    /// the one below with the layer applied. Returns its key.
    pub fn image(&mut self, st: &Store, img: &Image) -> Result<String> {
        let chain = chain_ids(&img.config.rootfs.diff_ids);
        let mut below = "base".to_string();
        for (i, key) in chain.iter().enumerate() {
            if !self.has(key) {
                let desc = img.manifest.layers.get(i).ok_or_else(|| {
                    Error::failed(format!("image {} has fewer layers than diff_ids", img.id()), "pull it again")
                })?;
                self.k.note(format!(
                    "image layer {} of {}: a snapshot of the one below, with the layer applied",
                    i + 1,
                    chain.len()
                ));
                let blob = st.blob_path(&desc.digest);
                self.new_volume(key, Some(&below))?;
                let mnt = self.dir.join("mnt").join(key);
                let r = self.mount(key, &mnt, false).and_then(|_| {
                    let _s = self.k.scope(crate::layer::TOOL);
                    let f = std::fs::File::open(&blob).map_err(|e| {
                        Error::failed(format!("cannot read the layer {}: {e}", blob.display()), "pull the image again")
                    })?;
                    let tar = crate::layer::decompress(f)?;
                    let opts =
                        crate::layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: true };
                    crate::layer::apply(self.k, tar, &mnt, &opts).map(|_| ())
                });
                let u = self.umount(key, &mnt);
                let _ = self.k.rmdir(&mnt);
                if let Err(e) = r.and(u) {
                    // Nothing half-made stays: the layer's volume goes now.
                    self.clean_pending();
                    return Err(e);
                }
                if let Some(d) = self.meta.pending.get_mut(key) {
                    d.layer = true;
                }
                self.done(key)?;
            }
            below = key.clone();
        }
        Ok(below)
    }

    /// A container's two volumes: its init layer (a snapshot of the image's top with
    /// `init_dir`'s mount points applied) and its own (a snapshot of that, with
    /// `upper_dir`'s content: the working directory mini makes).
    pub fn create_container(&mut self, id: &str, image_key: &str, init_dir: &Path, upper_dir: &Path) -> Result<Device> {
        let init = init_key(id);
        let steps: [(&str, &str, &Path); 2] = [(&init, image_key, init_dir), (id, &init, upper_dir)];
        for (key, origin, content) in steps {
            self.new_volume(key, Some(origin))?;
            let mnt = self.dir.join("mnt").join(key);
            let r = self.mount(key, &mnt, false).and_then(|_| copy_tree(self.k, content, &mnt));
            let u = self.umount(key, &mnt);
            let _ = self.k.rmdir(&mnt);
            if let Err(e) = r.and(u) {
                self.clean_pending();
                return Err(e);
            }
            self.done(key)?;
        }
        self.get(id)
    }
}

/// Copy a directory's content into another: packed as a tar by layer-diff, applied
/// by it (owners, modes, whiteouts as deletions).
pub fn copy_tree(k: &Kernel, from: &Path, to: &Path) -> Result<()> {
    let _s = k.scope(crate::layer::TOOL);
    let mut tar = vec![];
    crate::layer::pack(k, from, &mut tar, &crate::layer::PackOptions::default())?;
    let opts = crate::layer::ApplyOptions { overlay_whiteouts: false, same_owner: true, allow_devices: true };
    crate::layer::apply(k, tar.as_slice(), to, &opts).map(|_| ())
}

/// Whether `name` names the driver (`devicemapper`) or overlay (`overlay2`, empty).
pub fn check_driver(name: &str) -> Result<()> {
    match name {
        "" | "overlay2" | "overlay" | NAME => Ok(()),
        other => Err(Error::failed(
            format!("error initializing graphdriver: driver not supported: {other}"),
            "mini's storage drivers: overlay2 (the default) and devicemapper",
        )),
    }
}

/// The mark of a mounted container volume in the record's `made`.
pub const MOUNTED: &str = "dm-mount";

/// Make the empty mount point directory of a container's root.
pub fn make_rootfs_dir(k: &Kernel, root: &Path, id: &str) -> Result<PathBuf> {
    let p = rootfs(root, id);
    mkdir_once(k, &p, 0o755)?;
    Ok(p)
}

/// What a container changed, on the devicemapper driver: there is no upper directory
/// to read, so its volume is compared with its init layer's, both walked whole
/// (docker's "naive diff"), its mount points left out. The volumes are mounted
/// read-only for the walk (the running container's own root is used as it is).
pub fn diff(k: &Kernel, root: &Path, c: &super::state::Container) -> Result<Vec<crate::layer::Change>> {
    with_trees(k, root, c, |init, now| {
        let _s = k.scope(crate::layer::TOOL);
        let mut changes = crate::layer::diff_tree(k, init, now)?;
        let points: Vec<&str> = c.mounts.iter().map(|m| m.destination.as_str()).collect();
        changes.retain(|ch| !points.iter().any(|p| ch.path == *p || ch.path.starts_with(&format!("{p}/"))));
        Ok(changes)
    })
}

/// A container's changes as an OCI layer (for `commit`), on the devicemapper driver:
/// [`diff`], then layer-diff's `pack_changes` of the container's tree.
pub fn pack(
    k: &Kernel,
    root: &Path,
    c: &super::state::Container,
    w: impl std::io::Write,
    opts: &crate::layer::PackOptions,
) -> Result<crate::layer::Packed> {
    let changes = diff(k, root, c)?;
    with_trees(k, root, c, |_, now| {
        let _s = k.scope(crate::layer::TOOL);
        crate::layer::pack_changes(k, now, &changes, w, opts)
    })
}

/// Run `f` with the container's init tree and its current tree mounted (read-only,
/// under `devicemapper/mnt/`), unmounting what was mounted here after, also on failure.
fn with_trees<T>(
    k: &Kernel,
    root: &Path,
    c: &super::state::Container,
    f: impl FnOnce(&Path, &Path) -> Result<T>,
) -> Result<T> {
    let d = Driver::open(k, root)?;
    let init = init_key(&c.id);
    let init_dir = d.dir.join("mnt").join(&init);
    let running = c.has(MOUNTED);
    let now_dir = if running { rootfs(root, &c.id) } else { d.dir.join("mnt").join(format!("{}-view", c.id)) };
    d.mount(&init, &init_dir, true)?;
    if !running {
        if let Err(e) = d.mount(&c.id, &now_dir, true) {
            let _ = d.umount(&init, &init_dir);
            return Err(e);
        }
    }
    let r = f(&init_dir, &now_dir);
    let u1 = d.umount(&init, &init_dir);
    let _ = k.rmdir(&init_dir);
    let u2 = if running { Ok(()) } else { d.umount(&c.id, &now_dir).and_then(|_| Ok(k.rmdir(&now_dir)?)) };
    let v = r?;
    u1?;
    u2?;
    Ok(v)
}

/// After images are removed: delete the layer volumes no image of the store names any
/// more (a thin snapshot needs nothing of its origin: a container's volumes outlive
/// the layers they were snapshotted from). Nothing to do without a pool.
pub fn gc(k: &Kernel, st: &Store) -> Result<()> {
    if !k.exists(&st.root.join("devicemapper/devices.json")) {
        return Ok(());
    }
    let wanted: std::collections::HashSet<String> =
        st.images()?.iter().flat_map(|img| chain_ids(&img.config.rootfs.diff_ids)).collect();
    let mut d = Driver::open(k, &st.root)?;
    let gone: Vec<String> = d
        .meta
        .devices
        .iter()
        .filter(|(key, dev)| dev.layer && !wanted.contains(*key))
        .map(|(key, _)| key.clone())
        .collect();
    for key in gone {
        k.note(format!("no image has the layer of {} any more: its volume goes", d.name(&key)));
        d.remove(&key)?;
    }
    Ok(())
}
