//! Thin provisioning: a `thin-pool` target, volumes made by messages to it.
//!
//! Names: the pool is `/dev/mapper/POOL`, its volumes `/dev/mapper/POOL-NAME`. A
//! volume's number in the pool (its "thin id") is kept in the dm uuid,
//! `CONTLAB-thin-POOL-ID`, and in its table line (`thin 253:0 ID`): contlab keeps no
//! other record of thin volumes, so after a reboot the pool's metadata still holds
//! their blocks but not their names.
//!
//! Two levels of operations, each on an open [`Dm`]:
//!
//! - by thin id, what a storage driver needs (docker's `devicemapper` driver keeps its
//!   own table of ids): [`pool_create`], [`create_thin`], [`snapshot`] (thin id A as
//!   B), [`activate`] a thin id as `/dev/mapper/NAME`, [`deactivate`], [`delete_thin`],
//!   [`pool_remove`];
//! - by name, what `lvm-snap thin` does: [`volume_create`], [`volume_snapshot`],
//!   [`volume_remove`], [`volumes`], [`status`].

use std::path::PathBuf;

use serde::Serialize;

use crate::dm::device::DmTarget;
use crate::dm::meta::{self, human};
use crate::dm::{Dm, TOOL};
use crate::error::{Error, Hint, Result};
use crate::kernel::Errno;

/// The thin-pool metadata superblock's magic number (`THIN_SUPERBLOCK_MAGIC`), at
/// byte 32 of the metadata device.
const THIN_MAGIC: u64 = 27022010;

/// A device argument: a path, or VG/LV for `/dev/mapper/VG-LV`.
pub fn dev_path(s: &str) -> PathBuf {
    if s.starts_with('/') {
        PathBuf::from(s)
    } else if let Some((vg, lv)) = s.split_once('/') {
        Dm::node(&format!("{vg}-{lv}"))
    } else {
        PathBuf::from(s)
    }
}

/// A thin pool to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// Its name (`/dev/mapper/NAME`).
    pub name: String,
    /// The data device: cut in blocks, given to the volumes on first write.
    pub data: PathBuf,
    /// The metadata device: the pool's B-trees (a fresh one is formatted; one that
    /// holds a pool's superblock already is reopened, with its volumes).
    pub meta: PathBuf,
    /// Block size, sectors (a multiple of 64 KiB, from 64 KiB to 1 GiB).
    pub block: u64,
    /// When the pool is full, fail writes at once instead of queueing them.
    pub error_if_no_space: bool,
}

impl PoolSpec {
    /// Check what can be checked without the kernel (usage errors).
    pub fn check(&self) -> Result<()> {
        meta::check_name("pool", &self.name)?;
        if !self.block.is_multiple_of(128) || !(128..=2097152).contains(&self.block) {
            return Err(Error::Usage(format!(
                "invalid --block {}: a multiple of 64K between 64K and 1G",
                human(self.block)
            )));
        }
        if self.data == self.meta {
            return Err(Error::Usage("--data and --meta must be two different devices".into()));
        }
        Ok(())
    }
}

/// Create a thin pool over `spec.data` and `spec.meta`: zero the metadata device's
/// superblock (unless it holds a pool already), then a `thin-pool` device whose
/// table names both. Returns `/dev/mapper/NAME`.
pub fn pool_create(dm: &Dm, spec: &PoolSpec) -> Result<PathBuf> {
    let k = dm.k;
    let _s = k.scope(TOOL);
    spec.check()?;
    let (name, dp, mp, block) = (&spec.name, &spec.data, &spec.meta, spec.block);
    let (da, db) = k.blk_dev_number(dp).hint(
        Errno::ENOTBLK,
        &format!("{} is not a block device: attach a file with lvm-snap loop attach", dp.display()),
    )?;
    let (ma, mb) = k.blk_dev_number(mp).hint(
        Errno::ENOTBLK,
        &format!("{} is not a block device: attach a file with lvm-snap loop attach", mp.display()),
    )?;
    let dfd = k.open_dev(dp, false, false)?;
    let data_sectors = k.blk_size(&dfd)? / 512 / block * block;
    drop(dfd);
    if data_sectors == 0 {
        return Err(Error::failed(
            format!("{} holds no whole block of {}", dp.display(), human(block)),
            "use a larger data device",
        ));
    }
    let mfd = k.open_dev(mp, true, false)?;
    let head = k.why("does the metadata device already hold a pool's superblock?").pread_dev(&mfd, 0, 4096)?;
    let reuse = head.len() >= 40 && u64::from_le_bytes(head[32..40].try_into().unwrap()) == THIN_MAGIC;
    if reuse {
        k.note(format!("{} holds a thin pool's metadata already: reopening that pool", mp.display()));
    } else {
        k.why("an all-zero superblock tells the kernel to format fresh pool metadata").pwrite_dev(
            &mfd,
            0,
            &[0u8; 4096],
            "\"\\0\\0...\"",
        )?;
    }
    drop(mfd);
    let low_water = (data_sectors / block / 10).max(1);
    let mut params = format!("{ma}:{mb} {da}:{db} {block} {low_water}");
    if spec.error_if_no_space {
        params.push_str(" 1 error_if_no_space");
    }
    dm.create(
        name,
        &format!("{}thin-{name}", meta::UUID_PREFIX),
        &[DmTarget::new(0, data_sectors, "thin-pool", params)],
    )?;
    Ok(Dm::node(name))
}

/// Remove a thin pool: refused while it still has volumes named `POOL-NAME`. The data
/// and metadata devices keep what the pool wrote (create it again on the same
/// metadata device to reopen it).
pub fn pool_remove(dm: &Dm, name: &str) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    let vols = volumes(dm, name)?;
    if !vols.is_empty() {
        return Err(Error::failed(
            format!(
                "pool {name} still has volumes: {}",
                vols.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "remove them first (lvm-snap thin rm POOL NAME)",
        ));
    }
    need_pool(dm, name)?;
    dm.remove(name)
}

fn need_pool(dm: &Dm, pool: &str) -> Result<()> {
    meta::check_name("pool", pool)?;
    if dm.exists(pool)? == Some(false) {
        return Err(Error::failed(
            format!("there is no thin pool {pool}"),
            "create it: lvm-snap thin pool create POOL --data DEV --meta DEV",
        ));
    }
    Ok(())
}

fn uuid(pool: &str, id: u64) -> String {
    format!("{}thin-{pool}-{id}", meta::UUID_PREFIX)
}

/// `DM_TARGET_MSG "create_thin ID"` to the pool: a new, empty thin volume. `EEXIST`
/// when the pool's metadata has that id already.
pub fn create_thin(dm: &Dm, pool: &str, id: u64) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    dm.k.why("a new, empty volume in the pool's metadata");
    dm.message(pool, &format!("create_thin {id}")).map(|_| ())
}

/// `DM_TARGET_MSG "create_snap ID ORIGIN"`: thin volume `id` shares every block of
/// `origin` (O(1): nothing is copied until one side writes). The kernel requires an
/// active origin to be suspended meanwhile: an active device of the pool whose uuid
/// names `origin` (any name) is suspended, then resumed.
pub fn snapshot(dm: &Dm, pool: &str, origin: u64, id: u64) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    let active = device_of(dm, pool, origin)?;
    if let Some(d) = &active {
        dm.k.why("flush the origin's writes in flight: the snapshot must see all of them");
        dm.suspend(d)?;
    }
    dm.k.why("share every block of the origin: O(1), nothing is copied until one side writes");
    let r = dm.message(pool, &format!("create_snap {id} {origin}")).map(|_| ());
    if let Some(d) = &active {
        dm.resume(d)?;
    }
    r
}

/// `DM_TARGET_MSG "delete ID"`: free the blocks of thin volume `id` and forget its
/// mapping. It must not be active ([`deactivate`] it first).
pub fn delete_thin(dm: &Dm, pool: &str, id: u64) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    dm.k.why("free the volume's blocks and forget its mapping");
    dm.message(pool, &format!("delete {id}")).map(|_| ())
}

/// Expose thin volume `id` of `pool` as `/dev/mapper/NAME`, `sectors` long (its
/// virtual size: a thin volume's size is its table's): a `thin POOL ID` device, whose
/// uuid records the id. Returns the node.
pub fn activate(dm: &Dm, pool: &str, id: u64, name: &str, sectors: u64) -> Result<PathBuf> {
    let _s = dm.k.scope(TOOL);
    if name.is_empty() || name.len() >= 128 || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Usage(format!("invalid device name {name:?}: 1 to 127 bytes, without '/'")));
    }
    let pn = dm.devnum(pool)?;
    activate_on(dm, &pn, pool, id, name, sectors)
}

fn activate_on(dm: &Dm, pn: &str, pool: &str, id: u64, name: &str, sectors: u64) -> Result<PathBuf> {
    dm.create(name, &uuid(pool, id), &[DmTarget::new(0, sectors, "thin", format!("{pn} {id}"))])?;
    Ok(Dm::node(name))
}

/// Remove the device of a thin volume (the volume and its blocks stay in the pool).
pub fn deactivate(dm: &Dm, name: &str) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    dm.remove(name)
}

/// The active device exposing thin id `id` of `pool`, by its uuid, whatever its name.
pub fn device_of(dm: &Dm, pool: &str, id: u64) -> Result<Option<String>> {
    let want = uuid(pool, id);
    for (n, _, _) in dm.list()? {
        if dm.info(&n)?.is_some_and(|i| i.uuid == want) {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// The volumes of `pool` named `POOL-NAME`: (name, thin id), from their uuids.
pub fn volumes(dm: &Dm, pool: &str) -> Result<Vec<(String, u64)>> {
    let prefix = format!("{pool}-");
    let mut out = Vec::new();
    for (n, _, _) in dm.list()? {
        if let Some(v) = n.strip_prefix(&prefix) {
            if let Some(i) = dm.info(&n)? {
                if let Some(id) = i.uuid.rsplit('-').next().and_then(|x| x.parse().ok()) {
                    out.push((v.to_string(), id));
                }
            }
        }
    }
    Ok(out)
}

fn thin_id(dm: &Dm, pool: &str, dev: &str) -> Result<u64> {
    let Some(i) = dm.info(dev)? else {
        if !dm.knows() {
            return Ok(0);
        }
        return Err(Error::failed(
            format!("pool {pool} has no volume {dev}"),
            format!("lvm-snap thin status {pool} lists them"),
        ));
    };
    i.uuid.rsplit('-').next().and_then(|x| x.parse().ok()).ok_or_else(|| {
        Error::failed(format!("{dev} is not a thin volume made by lvm-snap"), "use dmsetup for devices of other tools")
    })
}

/// Ask the pool for a new thin id: the next after the ones in use; an id that the
/// pool's metadata holds from an earlier life answers EEXIST, then try the next.
fn new_id(dm: &Dm, pool: &str, msg: impl Fn(u64) -> String) -> Result<u64> {
    let mut id = volumes(dm, pool)?.iter().map(|v| v.1 + 1).max().unwrap_or(0);
    for _ in 0..64 {
        match dm.message(pool, &msg(id)) {
            Err(e) if e.errno() == Some(Errno::EEXIST) => id += 1,
            Err(e) => return Err(e),
            Ok(_) => return Ok(id),
        }
    }
    Err(Error::failed(format!("no free thin id in pool {pool}"), "remove unused thin volumes"))
}

/// A thin volume, as the by-name operations make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThinVolume {
    /// Its name in the pool (`/dev/mapper/POOL-NAME`).
    pub name: String,
    /// Its thin id.
    pub id: u64,
    /// Its device node.
    pub dev: PathBuf,
    /// Its virtual size, sectors.
    pub sectors: u64,
}

/// Create thin volume `name` of `pool`, `sectors` long (it may be larger than the
/// pool: blocks are allocated on first write), with the next free thin id, and
/// activate it as `/dev/mapper/POOL-NAME`. If the device cannot be made, the id is
/// deleted again.
pub fn volume_create(dm: &Dm, pool: &str, name: &str, sectors: u64) -> Result<ThinVolume> {
    let k = dm.k;
    let _s = k.scope(TOOL);
    meta::check_name("thin volume", name)?;
    need_pool(dm, pool)?;
    let dev = format!("{pool}-{name}");
    if !dm.free_name(&dev)? {
        return Err(Error::failed(format!("{dev} exists already"), "choose another name"));
    }
    let pn = dm.devnum(pool)?;
    let pool_sectors = dm.table(pool)?.first().map(|t| t.length).unwrap_or(0);
    if pool_sectors > 0 && sectors > pool_sectors {
        k.note(format!(
            "over-provisioning: {} of volume in a pool of {}; blocks are allocated on first write",
            human(sectors),
            human(pool_sectors)
        ));
    }
    k.why("a new, empty volume in the pool's metadata");
    let id = new_id(dm, pool, |id| format!("create_thin {id}"))?;
    match activate_on(dm, &pn, pool, id, &dev, sectors) {
        Ok(node) => Ok(ThinVolume { name: name.into(), id, dev: node, sectors }),
        Err(e) => {
            let _ = dm.message(pool, &format!("delete {id}"));
            Err(e)
        }
    }
}

/// Snapshot thin volume `origin` of `pool` as `name` (the origin suspended while the
/// pool records it), and activate it with the origin's size.
pub fn volume_snapshot(dm: &Dm, pool: &str, origin: &str, name: &str) -> Result<ThinVolume> {
    let _s = dm.k.scope(TOOL);
    meta::check_name("thin volume", name)?;
    need_pool(dm, pool)?;
    let odev = format!("{pool}-{origin}");
    let oid = thin_id(dm, pool, &odev)?;
    let dev = format!("{pool}-{name}");
    if !dm.free_name(&dev)? {
        return Err(Error::failed(format!("{dev} exists already"), "choose another name"));
    }
    let size = dm.table(&odev)?.first().map(|t| t.length).unwrap_or(0);
    let pn = dm.devnum(pool)?;
    dm.k.why("flush the origin's writes in flight: the snapshot must see all of them");
    dm.suspend(&odev)?;
    dm.k.why("share every block of the origin: O(1), nothing is copied until one side writes");
    let id = new_id(dm, pool, |id| format!("create_snap {id} {oid}"));
    dm.resume(&odev)?;
    let id = id?;
    match activate_on(dm, &pn, pool, id, &dev, size) {
        Ok(node) => Ok(ThinVolume { name: name.into(), id, dev: node, sectors: size }),
        Err(e) => {
            let _ = dm.message(pool, &format!("delete {id}"));
            Err(e)
        }
    }
}

/// Remove thin volume `name` of `pool`: its device, then its id and blocks.
pub fn volume_remove(dm: &Dm, pool: &str, name: &str) -> Result<()> {
    let _s = dm.k.scope(TOOL);
    need_pool(dm, pool)?;
    let dev = format!("{pool}-{name}");
    let id = thin_id(dm, pool, &dev)?;
    dm.remove(&dev)?;
    dm.k.why("free the volume's blocks and forget its mapping");
    dm.message(pool, &format!("delete {id}"))?;
    Ok(())
}

/// A thin pool's status line, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct PoolStatus {
    /// Transaction id (grows with each metadata commit).
    pub transaction: u64,
    /// Metadata blocks (4 KiB) used / total.
    pub meta_used: u64,
    /// Total metadata blocks.
    pub meta_total: u64,
    /// Data blocks used.
    pub data_used: u64,
    /// Total data blocks.
    pub data_total: u64,
    /// `rw`, `ro`, `out_of_data_space`, or `Fail`.
    pub mode: String,
    /// `error_if_no_space` or `queue_if_no_space`.
    pub when_full: String,
    /// Whether the metadata needs a `thin_check`.
    pub needs_check: bool,
}

/// Parse `0 10/4096 3/4096 - rw discard_passdown queue_if_no_space - 1024`.
pub fn parse_pool(params: &str) -> Option<PoolStatus> {
    let t: Vec<&str> = params.split_whitespace().collect();
    let frac = |s: &str| -> Option<(u64, u64)> {
        let (a, b) = s.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    if t.first() == Some(&"Fail") {
        return Some(PoolStatus { mode: "Fail".into(), ..PoolStatus::default() });
    }
    let (mu, mt) = frac(t.get(1)?)?;
    let (du, dt) = frac(t.get(2)?)?;
    Some(PoolStatus {
        transaction: t[0].parse().ok()?,
        meta_used: mu,
        meta_total: mt,
        data_used: du,
        data_total: dt,
        mode: t.get(4)?.to_string(),
        when_full: t.iter().find(|x| x.ends_with("_if_no_space")).map(|x| x.to_string()).unwrap_or_default(),
        needs_check: t.contains(&"needs_check"),
    })
}

/// One volume in a [`PoolReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeReport {
    /// Its name in the pool.
    pub name: String,
    /// Its thin id.
    pub id: u64,
    /// Its virtual size, sectors.
    pub size: u64,
    /// Sectors mapped to data blocks so far.
    pub mapped: u64,
}

/// A pool's state: its status line decoded, its block size, its volumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolReport {
    /// The pool.
    pub pool: String,
    /// Block size, sectors.
    pub block: u64,
    /// Its status.
    pub status: PoolStatus,
    /// Its volumes named `POOL-NAME`.
    pub volumes: Vec<VolumeReport>,
}

impl PoolReport {
    /// Whether every data block is allocated (or the kernel says so).
    pub fn full(&self) -> bool {
        let st = &self.status;
        st.mode == "out_of_data_space" || (st.data_total > 0 && st.data_used == st.data_total)
    }
}

/// The state of `pool`, or of every contlab pool (devices whose uuid is
/// `CONTLAB-thin-NAME`).
pub fn status(dm: &Dm, pool: Option<&str>) -> Result<Vec<PoolReport>> {
    let _s = dm.k.scope(TOOL);
    let pools: Vec<String> = match pool {
        Some(p) => {
            need_pool(dm, p)?;
            vec![p.to_string()]
        }
        None => dm
            .list()?
            .into_iter()
            .map(|d| d.0)
            .filter(|n| dm.info(n).ok().flatten().is_some_and(|i| i.uuid == format!("{}thin-{n}", meta::UUID_PREFIX)))
            .collect(),
    };
    let mut all = Vec::new();
    for p in pools {
        let line = dm.status(&p)?.first().map(|t| t.params.clone()).unwrap_or_default();
        let block = dm
            .table(&p)?
            .first()
            .and_then(|t| t.params.split_whitespace().nth(2).and_then(|b| b.parse::<u64>().ok()))
            .unwrap_or(128);
        let st = parse_pool(&line).unwrap_or_default();
        let mut vols = Vec::new();
        for (v, id) in volumes(dm, &p)? {
            let dev = format!("{p}-{v}");
            let size = dm.table(&dev)?.first().map(|t| t.length).unwrap_or(0);
            let mapped = dm
                .status(&dev)?
                .first()
                .and_then(|t| t.params.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
                .unwrap_or(0);
            vols.push(VolumeReport { name: v, id, size, mapped });
        }
        all.push(PoolReport { pool: p, block, status: st, volumes: vols });
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Event, Kernel};

    /// A recording kernel on which /dev/mapper/control cannot be opened (the first
    /// openat fails), wherever the test runs: queries are not made, changes recorded.
    fn no_dm() -> Kernel {
        let k = Kernel::recording(TOOL);
        k.inject("openat", 1, Errno::ENOENT);
        k
    }

    fn ioctls(events: &[Event]) -> Vec<String> {
        events.iter().filter(|e| e.call == "ioctl" || e.call == "unlink").map(|e| e.call_text()).collect()
    }

    #[test]
    fn by_id_operations_are_the_pool_messages_and_a_thin_table() {
        let k = no_dm();
        let dm = Dm::open(&k).unwrap();
        create_thin(&dm, "pool", 7).unwrap();
        snapshot(&dm, "pool", 7, 8).unwrap();
        assert_eq!(activate(&dm, "pool", 8, "ctr-8", 2048).unwrap(), PathBuf::from("/dev/mapper/ctr-8"));
        deactivate(&dm, "ctr-8").unwrap();
        delete_thin(&dm, "pool", 8).unwrap();
        let got = ioctls(&k.events());
        let msgs: Vec<&String> = got.iter().filter(|c| c.contains("DM_TARGET_MSG")).collect();
        assert!(msgs[0].contains(r#"message: "create_thin 7""#), "{got:#?}");
        assert!(msgs[1].contains(r#"message: "create_snap 8 7""#), "{got:#?}");
        assert!(msgs[2].contains(r#"message: "delete 8""#), "{got:#?}");
        assert!(got.iter().any(|c| c.contains(r#"DM_DEV_CREATE, {name: "ctr-8", uuid: "CONTLAB-thin-pool-8"}"#)));
        assert!(got.iter().any(|c| c.contains(r#"table: "0 2048 thin /dev/mapper/pool 8""#)), "{got:#?}");
        assert!(got.iter().any(|c| c.contains(r#"DM_DEV_REMOVE, {name: "ctr-8"}"#)));
        assert!(k.events().iter().all(|e| e.lab == TOOL));
    }

    #[test]
    fn a_volume_whose_device_cannot_be_made_gives_its_id_back() {
        // ioctls: VERSION, STATUS pool, STATUS pool-v, STATUS pool, TABLE_STATUS pool,
        // LIST, TARGET_MSG create_thin, DEV_CREATE, then #9 TABLE_LOAD fails.
        let k = no_dm();
        k.inject("ioctl", 9, Errno::EINVAL);
        let dm = Dm::open(&k).unwrap();
        let e = volume_create(&dm, "pool", "v", 2048).unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EINVAL), "{e}");
        let got = ioctls(&k.events());
        let at = got.iter().position(|c| c.contains("DM_TABLE_LOAD")).unwrap();
        assert!(got[at].contains("= -1 EINVAL"), "{got:#?}");
        let undo = &got[at + 1..];
        assert_eq!(undo.len(), 3, "{got:#?}");
        assert!(undo[0].contains(r#"DM_DEV_REMOVE, {name: "pool-v"}"#), "{undo:#?}");
        assert!(undo[1].starts_with(r#"unlink("/dev/mapper/pool-v")"#), "{undo:#?}");
        assert!(undo[2].contains(r#"message: "delete 0""#), "{undo:#?}");
    }

    #[test]
    fn pool_specs_are_checked_before_the_kernel_is_asked() {
        let spec = |block, meta: &str| PoolSpec {
            name: "p".into(),
            data: "/dev/loop0".into(),
            meta: meta.into(),
            block,
            error_if_no_space: false,
        };
        assert!(spec(128, "/dev/loop1").check().is_ok());
        assert!(matches!(spec(20, "/dev/loop1").check(), Err(Error::Usage(_))));
        assert!(matches!(spec(128, "/dev/loop0").check(), Err(Error::Usage(_))));
    }

    #[test]
    fn pool_status() {
        let s = parse_pool("1 17/4096 100/4096 - out_of_data_space discard_passdown error_if_no_space - 1024").unwrap();
        assert_eq!((s.meta_used, s.data_used, s.data_total), (17, 100, 4096));
        assert_eq!(s.mode, "out_of_data_space");
        assert_eq!(s.when_full, "error_if_no_space");
        assert!(!s.needs_check);
        assert_eq!(parse_pool("Fail").unwrap().mode, "Fail");
    }

    #[test]
    fn devices_by_path_or_lv() {
        assert_eq!(dev_path("/dev/loop1"), PathBuf::from("/dev/loop1"));
        assert_eq!(dev_path("vg0/meta"), PathBuf::from("/dev/mapper/vg0-meta"));
    }
}
