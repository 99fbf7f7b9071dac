//! Thin provisioning: a `thin-pool` target, volumes made by messages to it.
//!
//! Names: the pool is `/dev/mapper/POOL`, its volumes `/dev/mapper/POOL-NAME`. A
//! volume's number in the pool (its "thin id") is kept in the dm uuid,
//! `CONTLAB-thin-POOL-ID`, and in its table line (`thin 253:0 ID`): contlab keeps no
//! other record of thin volumes, so after a reboot the pool's metadata still holds
//! their blocks but not their names.

use std::path::PathBuf;

use serde::Serialize;

use crate::dm::device::DmTarget;
use crate::dm::meta::{self, human, parse_size};
use crate::dm::{Dm, PoolCmd, ThinCmd};
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

/// The thin-pool metadata superblock's magic number (`THIN_SUPERBLOCK_MAGIC`), at
/// byte 32 of the metadata device.
const THIN_MAGIC: u64 = 27022010;

pub(crate) fn run(k: &Kernel, c: ThinCmd) -> Result<()> {
    match c {
        ThinCmd::Pool(PoolCmd::Create { name, data, meta, block, error_if_no_space }) => {
            pool_create(k, &name, &data, &meta, &block, error_if_no_space)
        }
        ThinCmd::Pool(PoolCmd::Rm { name }) => {
            let dm = Dm::open(k)?;
            let vols = volumes(&dm, &name)?;
            if !vols.is_empty() {
                return Err(Error::failed(
                    format!(
                        "pool {name} still has volumes: {}",
                        vols.iter().map(|v| v.0.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    "remove them first (lvm-snap thin rm POOL NAME)",
                ));
            }
            need_pool(&dm, &name)?;
            dm.remove(&name)
        }
        ThinCmd::Create { pool, name, size } => create(k, &pool, &name, &size),
        ThinCmd::Snap { pool, origin, name } => snap(k, &pool, &origin, &name),
        ThinCmd::Status { pool, json } => status(k, pool.as_deref(), json),
        ThinCmd::Rm { pool, name } => {
            let dm = Dm::open(k)?;
            need_pool(&dm, &pool)?;
            let dev = format!("{pool}-{name}");
            let id = thin_id(&dm, &pool, &dev)?;
            dm.remove(&dev)?;
            dm.k.why("free the volume's blocks and forget its mapping");
            dm.message(&pool, &format!("delete {id}"))?;
            Ok(())
        }
    }
}

/// A device argument: a path, or VG/LV for `/dev/mapper/VG-LV`.
fn dev_path(s: &str) -> PathBuf {
    if s.starts_with('/') {
        PathBuf::from(s)
    } else if let Some((vg, lv)) = s.split_once('/') {
        Dm::node(&format!("{vg}-{lv}"))
    } else {
        PathBuf::from(s)
    }
}

fn pool_create(k: &Kernel, name: &str, data: &str, meta_dev: &str, block: &str, error_if_no_space: bool) -> Result<()> {
    meta::check_name("pool", name)?;
    let block = parse_size(block)?;
    if block % 128 != 0 || !(128..=2097152).contains(&block) {
        return Err(Error::Usage(format!("invalid --block {}: a multiple of 64K between 64K and 1G", human(block))));
    }
    let (dp, mp) = (dev_path(data), dev_path(meta_dev));
    if dp == mp {
        return Err(Error::Usage("--data and --meta must be two different devices".into()));
    }
    let dm = Dm::open(k)?;
    let (da, db) = k.blk_dev_number(&dp).hint(
        Errno::ENOTBLK,
        &format!("{} is not a block device: attach a file with lvm-snap loop attach", dp.display()),
    )?;
    let (ma, mb) = k.blk_dev_number(&mp).hint(
        Errno::ENOTBLK,
        &format!("{} is not a block device: attach a file with lvm-snap loop attach", mp.display()),
    )?;
    let dfd = k.open_dev(&dp, false, false)?;
    let data_sectors = k.blk_size(&dfd)? / 512 / block * block;
    drop(dfd);
    if data_sectors == 0 {
        return Err(Error::failed(
            format!("{} holds no whole block of {}", dp.display(), human(block)),
            "use a larger data device",
        ));
    }
    let mfd = k.open_dev(&mp, true, false)?;
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
    if error_if_no_space {
        params.push_str(" 1 error_if_no_space");
    }
    dm.create(
        name,
        &format!("{}thin-{name}", meta::UUID_PREFIX),
        &[DmTarget::new(0, data_sectors, "thin-pool", params)],
    )?;
    println!("{}", Dm::node(name).display());
    Ok(())
}

fn need_pool(dm: &Dm, pool: &str) -> Result<()> {
    meta::check_name("pool", pool)?;
    if dm.info(pool)?.is_none() {
        return Err(Error::failed(
            format!("there is no thin pool {pool}"),
            "create it: lvm-snap thin pool create POOL --data DEV --meta DEV",
        ));
    }
    Ok(())
}

/// The volumes of `pool`: (name, thin id), from the uuids.
fn volumes(dm: &Dm, pool: &str) -> Result<Vec<(String, u64)>> {
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
    let i = dm.info(dev)?.ok_or_else(|| {
        Error::failed(format!("pool {pool} has no volume {dev}"), format!("lvm-snap thin status {pool} lists them"))
    })?;
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

fn create(k: &Kernel, pool: &str, name: &str, size: &str) -> Result<()> {
    meta::check_name("thin volume", name)?;
    let sectors = parse_size(size)?;
    let dm = Dm::open(k)?;
    need_pool(&dm, pool)?;
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
    let id = new_id(&dm, pool, |id| format!("create_thin {id}"))?;
    if let Err(e) = dm.create(
        &dev,
        &format!("{}thin-{pool}-{id}", meta::UUID_PREFIX),
        &[DmTarget::new(0, sectors, "thin", format!("{pn} {id}"))],
    ) {
        let _ = dm.message(pool, &format!("delete {id}"));
        return Err(e);
    }
    println!("{}", Dm::node(&dev).display());
    Ok(())
}

fn snap(k: &Kernel, pool: &str, origin: &str, name: &str) -> Result<()> {
    meta::check_name("thin volume", name)?;
    let dm = Dm::open(k)?;
    need_pool(&dm, pool)?;
    let odev = format!("{pool}-{origin}");
    let oid = thin_id(&dm, pool, &odev)?;
    let dev = format!("{pool}-{name}");
    if !dm.free_name(&dev)? {
        return Err(Error::failed(format!("{dev} exists already"), "choose another name"));
    }
    let size = dm.table(&odev)?.first().map(|t| t.length).unwrap_or(0);
    let pn = dm.devnum(pool)?;
    dm.k.why("flush the origin's writes in flight: the snapshot must see all of them");
    dm.suspend(&odev)?;
    dm.k.why("share every block of the origin: O(1), nothing is copied until one side writes");
    let id = new_id(&dm, pool, |id| format!("create_snap {id} {oid}"));
    dm.resume(&odev)?;
    let id = id?;
    if let Err(e) = dm.create(
        &dev,
        &format!("{}thin-{pool}-{id}", meta::UUID_PREFIX),
        &[DmTarget::new(0, size, "thin", format!("{pn} {id}"))],
    ) {
        let _ = dm.message(pool, &format!("delete {id}"));
        return Err(e);
    }
    println!("{}", Dm::node(&dev).display());
    Ok(())
}

/// A thin pool's status line, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub(crate) struct PoolStatus {
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
pub(crate) fn parse_pool(params: &str) -> Option<PoolStatus> {
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

fn status(k: &Kernel, pool: Option<&str>, json: bool) -> Result<()> {
    let dm = Dm::open(k)?;
    let pools: Vec<String> = match pool {
        Some(p) => {
            need_pool(&dm, p)?;
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
        for (v, id) in volumes(&dm, &p)? {
            let dev = format!("{p}-{v}");
            let size = dm.table(&dev)?.first().map(|t| t.length).unwrap_or(0);
            let mapped = dm
                .status(&dev)?
                .first()
                .and_then(|t| t.params.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()))
                .unwrap_or(0);
            vols.push(serde_json::json!({"name": v, "id": id, "size": size, "mapped": mapped}));
        }
        if json {
            all.push(serde_json::json!({"pool": p, "block": block, "status": st, "volumes": vols}));
            continue;
        }
        let pct = |a: u64, b: u64| if b > 0 { 100.0 * a as f64 / b as f64 } else { 0.0 };
        println!(
            "pool {p}: data {}/{} blocks ({:.2}%, {} of {}), metadata {}/{} blocks ({:.2}%), {} {}",
            st.data_used,
            st.data_total,
            pct(st.data_used, st.data_total),
            human(st.data_used * block),
            human(st.data_total * block),
            st.meta_used,
            st.meta_total,
            pct(st.meta_used, st.meta_total),
            st.mode,
            st.when_full
        );
        if st.mode == "out_of_data_space" || (st.data_total > 0 && st.data_used == st.data_total) {
            let what = if st.when_full == "error_if_no_space" {
                "writes to unallocated blocks fail at once with ENOSPC (error_if_no_space)"
            } else {
                "writes to unallocated blocks are queued, and fail with ENOSPC after 60 s (no_space_timeout) (queue_if_no_space)"
            };
            println!("  pool {p} is FULL: {what}; grow its data device and reload the pool, or remove volumes");
        }
        if st.needs_check {
            println!("  pool {p} needs a check: remove it and run thin_check on its metadata device");
        }
        for v in vols {
            let size = v["size"].as_u64().unwrap_or(0);
            let mapped = v["mapped"].as_u64().unwrap_or(0);
            println!(
                "  {:<16} id {:<3} size {:>10}  mapped {:>10} ({:.2}%)",
                v["name"].as_str().unwrap_or(""),
                v["id"],
                human(size),
                human(mapped),
                pct(mapped, size)
            );
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
