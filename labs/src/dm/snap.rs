//! COW snapshots of logical volumes: [`create`] (in LVM's order), [`status`],
//! [`merge`], [`remove`].

use std::path::PathBuf;

use serde::Serialize;

use crate::dm::device::DmTarget;
use crate::dm::lvm::{self, dm_name, own_dev, Loaded};
use crate::dm::meta::{self, human, parse_size, to_extents, Lv, SnapOf};
use crate::dm::{Dm, TOOL};
use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};

/// A snapshot to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapSpec {
    /// The origin's VG.
    pub vg: String,
    /// The origin LV.
    pub origin: String,
    /// The snapshot's name.
    pub name: String,
    /// The COW store's size, sectors (a multiple of the extent size and of the chunk,
    /// at most the origin's).
    pub sectors: u64,
    /// The chunk, sectors: the unit copied on first write (a power of two, 4 KiB to
    /// 512 KiB; [`parse_chunk`]).
    pub chunk: u64,
}

/// Check a chunk size: a power of two from 4 KiB to 512 KiB, in sectors.
pub fn parse_chunk(s: &str) -> Result<u64> {
    let c = parse_size(s)?;
    if !c.is_power_of_two() || !(8..=1024).contains(&c) {
        return Err(Error::Usage(format!(
            "invalid chunk size {s:?}: a power of two from 4K to 512K (the unit copied to the COW store on first write)"
        )));
    }
    Ok(c)
}

/// The most a COW store can ever hold for an origin of `origin` sectors, with chunks
/// of `chunk` sectors, in dm-snapshot's persistent format: one chunk of header, then
/// areas of one chunk of exception table (`chunk × 512 / 16` entries of 16 bytes:
/// "origin chunk N is store chunk M") each followed by the data chunks it describes.
/// A full rewrite copies every chunk of the origin once; a table that ends exactly full
/// needs one more, empty, as its terminator. So a store of the origin's own size
/// cannot hold a full rewrite, and a larger one than this is never used.
pub fn max_cow_sectors(origin: u64, chunk: u64) -> u64 {
    let data = origin.div_ceil(chunk);
    let per_table = chunk * 512 / 16;
    let tables = data / per_table + 1;
    (1 + tables + data) * chunk
}

/// What [`create`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// `/dev/mapper/VG-NAME`.
    pub dev: PathBuf,
    /// The COW store's size, in sectors.
    pub cow_sectors: u64,
    /// The size asked for, when it was more than a store can ever use and was reduced
    /// to [`max_cow_sectors`] (rounded up to whole extents), as lvcreate reduces it.
    pub reduced_from: Option<u64>,
}

/// Snapshot `spec.vg/spec.origin` as `spec.name`: allocate its COW store, write the
/// metadata, then build the devices in LVM's order with the origin suspended (see
/// the module's essay). On a failure the devices made are removed and the metadata
/// put back.
pub fn create(k: &Kernel, spec: &SnapSpec) -> Result<Created> {
    let _s = k.scope(TOOL);
    let (vgname, oname, name, sectors, chunk) =
        (&spec.vg[..], &spec.origin[..], &spec.name[..], spec.sectors, spec.chunk);
    let origin = format!("{vgname}/{oname}");
    meta::check_name("volume group", vgname)?;
    meta::check_name("logical volume", oname)?;
    meta::check_name("snapshot", name)?;
    if !chunk.is_power_of_two() || !(8..=1024).contains(&chunk) {
        return Err(Error::Usage(format!("invalid chunk size {}: a power of two from 4K to 512K", human(chunk))));
    }
    let mut l = lvm::load(k, vgname)?;
    let o = l.vg.need_lv(oname)?.clone();
    if o.snapshot.is_some() {
        return Err(Error::Usage(format!("{origin} is a snapshot itself: snapshot its origin instead")));
    }
    if l.vg.lv(name).is_some() {
        return Err(Error::failed(format!("{vgname}/{name} exists already"), "choose another name"));
    }
    let mut n = to_extents(sectors, l.vg.extent, "the snapshot size")?;
    let osize = o.extents() * l.vg.extent;
    let most = max_cow_sectors(osize, chunk).div_ceil(l.vg.extent);
    let mut reduced_from = None;
    if n > most {
        k.note(format!(
            "Reducing COW size {} down to maximum usable size {}: a full rewrite of {origin} ({}) needs its chunks, the exception tables and a header, no more",
            human(n * l.vg.extent),
            human(most * l.vg.extent),
            human(osize)
        ));
        reduced_from = Some(n * l.vg.extent);
        n = most;
    }
    if (n * l.vg.extent) % chunk != 0 {
        return Err(Error::Usage(format!("the snapshot size must be a multiple of the chunk size {}", human(chunk))));
    }
    let dm = Dm::open(k)?;
    let top = dm_name(&l.vg, oname);
    if dm.info(&top)?.is_none() {
        return Err(Error::failed(
            format!("{origin} is not active"),
            format!("activate it first: lvm-snap vg activate {vgname}"),
        ));
    }
    let before = l.vg.clone();
    let cow_sectors = n * l.vg.extent;
    let first = l.vg.snapshots_of(oname).is_empty();
    let segments = l.vg.alloc_linear(0, n, None, None)?;
    let snap = Lv { name: name.into(), segments, snapshot: Some(SnapOf { origin: oname.into(), chunk }) };
    l.vg.lvs.push(snap.clone());
    lvm::commit(k, &mut l)?;
    if let Err(e) = build(&dm, &l, &o, &snap, first) {
        lvm::rollback(k, &mut l, before);
        return Err(e);
    }
    Ok(Created { dev: Dm::node(&dm_name(&l.vg, name)), cow_sectors, reduced_from })
}

/// The devices, in LVM's order. `first`: the origin has no snapshot yet, so its
/// extents move under a `-real` device and it becomes a `snapshot-origin`.
fn build(dm: &Dm, l: &Loaded, o: &Lv, snap: &Lv, first: bool) -> Result<()> {
    let vg = &l.vg;
    let top = dm_name(vg, &o.name);
    let real = format!("{top}-real");
    let osize = o.extents() * vg.extent;
    let mut made: Vec<String> = Vec::new();
    let res = (|| -> Result<()> {
        if first {
            dm.k.note(format!(
                "{top}'s extents get a device of their own, {real}: the snapshot reads the origin's data through it"
            ));
            dm.create(&real, &format!("{}{}-{}-real", meta::UUID_PREFIX, vg.id, o.name), &lvm::own_table(l, o)?)?;
            made.push(real.clone());
        }
        let cow = own_dev(vg, snap);
        dm.create(&cow, &format!("{}{}-{}-cow", meta::UUID_PREFIX, vg.id, snap.name), &lvm::own_table(l, snap)?)?;
        made.push(cow.clone());
        // A COW store starting with zeros is a new one: the snapshot target then
        // writes its header (magic, valid, chunk size) instead of reading old exceptions.
        let fd = dm.k.open_dev(&Dm::node(&cow), true, false)?;
        dm.k.why("a zero header means a new, empty COW store").pwrite_dev(&fd, 0, &[0u8; 4096], "\"\\0\\0...\"")?;
        drop(fd);
        let (rn, cn) = (dm.devnum(&real)?, dm.devnum(&cow)?);
        dm.k.why("no write may reach the origin between now and the snapshot's birth");
        dm.suspend(&top)?;
        let inner = (|| -> Result<()> {
            let sname = dm_name(vg, &snap.name);
            let table = [DmTarget::new(
                0,
                osize,
                "snapshot",
                format!("{rn} {cn} P {}", snap.snapshot.as_ref().map(|s| s.chunk).unwrap_or(16)),
            )];
            dm.create(&sname, &format!("{}{}-{}", meta::UUID_PREFIX, vg.id, snap.name), &table)?;
            made.push(sname);
            if first {
                dm.k.why(
                    "from now on each first write to a chunk of the origin copies the old chunk to the COW stores",
                );
                dm.load(&top, &[DmTarget::new(0, osize, "snapshot-origin", rn.clone())])?;
            }
            Ok(())
        })();
        dm.k.why("let I/O flow again (with the snapshot-origin table, when it was loaded)");
        let resumed = dm.resume(&top);
        inner.and(resumed)
    })();
    if res.is_err() {
        for d in made.iter().rev() {
            let _ = dm.remove(d);
        }
    }
    res
}

/// A snapshot's state, from its status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapState {
    /// VG/NAME.
    pub name: String,
    /// Origin.
    pub origin: String,
    /// Sectors of the COW store in use (data + metadata).
    pub used: u64,
    /// Sectors of the COW store.
    pub total: u64,
    /// Sectors used by the exception table.
    pub metadata: u64,
    /// `valid`, `Invalid` (the COW store filled up), `Merge failed`, `Overflow`, `inactive`.
    pub state: String,
}

/// Parse a snapshot (or snapshot-merge) status line: `16/40960 16` or `Invalid`.
pub fn parse_status(params: &str) -> Option<(u64, u64, u64)> {
    let mut t = params.split_whitespace();
    let (used, total) = t.next()?.split_once('/')?;
    Some((used.parse().ok()?, total.parse().ok()?, t.next()?.parse().ok()?))
}

/// The COW usage of every snapshot (like `lvs` Data%), or of those of one VG
/// (`path` = `VG`), or one (`VG/SNAPSHOT`), and whether each is still valid.
pub fn status(k: &Kernel, path: Option<&str>) -> Result<Vec<SnapState>> {
    let _s = k.scope(TOOL);
    let (vgs, only): (Vec<String>, Option<String>) = match path {
        Some(p) => match p.split_once('/') {
            Some((v, s)) => (vec![v.to_string()], Some(s.to_string())),
            None => (vec![p.to_string()], None),
        },
        None => {
            let mut v: Vec<String> = lvm::scan(k)?.into_iter().filter_map(|f| f.vg.map(|v| v.name)).collect();
            v.sort();
            v.dedup();
            (v, None)
        }
    };
    let dm = Dm::open(k)?;
    let mut states = Vec::new();
    for v in vgs {
        let l = lvm::load(k, &v)?;
        for lv in l.vg.lvs.iter().filter(|x| x.snapshot.is_some()) {
            if only.as_ref().is_some_and(|o| o != &lv.name) {
                continue;
            }
            let s = lv.snapshot.as_ref().expect("filtered");
            let name = dm_name(&l.vg, &lv.name);
            let line = match dm.info(&name)? {
                Some(_) => dm.status(&name)?.first().map(|t| t.params.clone()).unwrap_or_default(),
                None => "inactive".into(),
            };
            let (used, total, metadata) = parse_status(&line).unwrap_or((0, lv.extents() * l.vg.extent, 0));
            let state = if parse_status(&line).is_some() { "valid".to_string() } else { line.trim().to_string() };
            states.push(SnapState {
                name: format!("{v}/{}", lv.name),
                origin: format!("{v}/{}", s.origin),
                used,
                total,
                metadata,
                state,
            });
        }
    }
    Ok(states)
}

/// Merge snapshot `path` (`VG/SNAPSHOT`) back into its origin: the origin returns to
/// the snapshot's state (`snapshot-merge`: the kernel copies each chunk back, the
/// status counts down), then gets its plain table again. Refused while the origin or
/// the snapshot is in use, when the origin has other snapshots, and for an invalid
/// snapshot. Returns the origin, `VG/LV`.
pub fn merge(k: &Kernel, path: &str) -> Result<String> {
    let _s = k.scope(TOOL);
    let (vgname, name) = meta::split_path(path)?;
    let mut l = lvm::load(k, vgname)?;
    let snap = l.vg.need_lv(name)?.clone();
    let Some(s) = snap.snapshot.clone() else {
        return Err(Error::Usage(format!("{path} is not a snapshot")));
    };
    let origin = l.vg.need_lv(&s.origin)?.clone();
    let others: Vec<String> =
        l.vg.snapshots_of(&s.origin).iter().filter(|x| x.name != name).map(|x| x.name.clone()).collect();
    if !others.is_empty() {
        return Err(Error::failed(
            format!("{vgname}/{} has other snapshots: {}", s.origin, others.join(", ")),
            "remove them first: merging rewrites the origin under them",
        ));
    }
    let dm = Dm::open(k)?;
    let top = dm_name(&l.vg, &s.origin);
    let sname = dm_name(&l.vg, name);
    let info = dm.info(&top)?.ok_or_else(|| {
        Error::failed(format!("{vgname}/{} is not active", s.origin), format!("lvm-snap vg activate {vgname}"))
    })?;
    if info.open_count > 0 {
        return Err(Error::failed(
            format!(
                "{vgname}/{} is in use (open {} times): a merge rewrites it under its users",
                s.origin, info.open_count
            ),
            "unmount it (and stop what uses it) first, as the course says: the origin must be unmounted to merge",
        ));
    }
    if let Some(si) = dm.info(&sname)? {
        if si.open_count > 0 {
            return Err(Error::failed(format!("{path} is in use"), "unmount the snapshot first"));
        }
        let st = dm.status(&sname)?;
        if st.first().is_some_and(|t| parse_status(&t.params).is_none()) {
            return Err(Error::failed(
                format!("{path} is {}: it has no complete copy of the old data to merge", st[0].params.trim()),
                format!("remove it: lvm-snap snap rm {path}"),
            ));
        }
    }
    let real = format!("{top}-real");
    let cow = own_dev(&l.vg, &snap);
    let (rn, cn) = (dm.devnum(&real)?, dm.devnum(&cow)?);
    let osize = origin.extents() * l.vg.extent;
    dm.k.why("no I/O while the origin changes target");
    dm.suspend(&top)?;
    if dm.info(&sname)?.is_some() {
        dm.k.why("the snapshot disappears while its COW store is merged: both cannot use the store");
        if let Err(e) = dm.remove(&sname) {
            let _ = dm.resume(&top);
            return Err(e);
        }
    }
    dm.k.why("snapshot-merge: the kernel copies each chunk of the COW store back onto -real");
    if let Err(e) = dm.load(&top, &[DmTarget::new(0, osize, "snapshot-merge", format!("{rn} {cn} P {}", s.chunk))]) {
        let _ = dm.resume(&top);
        return Err(e);
    }
    dm.resume(&top)?;
    // Progress: the status counts the chunks still to copy back.
    let mut last = u64::MAX;
    for _ in 0..6000 {
        let st = dm.status(&top)?;
        let Some((used, _, metadata)) = st.first().and_then(|t| parse_status(&t.params)) else {
            if dm.k.mode() == Mode::DryRun {
                break;
            }
            return Err(Error::failed(
                format!("the merge of {path} failed: {}", st.first().map(|t| t.params.as_str()).unwrap_or("no status")),
                format!("`dmesg | tail` says why; {top} keeps its snapshot-merge table until fixed"),
            ));
        };
        if used != last {
            dm.k.note(format!("merge: {} left to copy back", human(used.saturating_sub(metadata))));
            last = used;
        }
        if used <= metadata {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    dm.k.note("merge done: the origin holds the snapshot's data; back to a plain table");
    dm.reload(&top, &lvm::own_table(&l, &origin)?)?;
    dm.remove(&real)?;
    dm.remove(&cow)?;
    l.vg.lvs.retain(|x| x.name != name);
    lvm::commit(k, &mut l)?;
    Ok(format!("{vgname}/{}", s.origin))
}

/// Remove snapshot `path` (`VG/SNAPSHOT`): its devices, and when it was the origin's
/// last, the origin's `-real` device (the origin gets its plain table back).
pub fn remove(k: &Kernel, path: &str) -> Result<()> {
    let _s = k.scope(TOOL);
    let (vgname, name) = meta::split_path(path)?;
    let mut l = lvm::load(k, vgname)?;
    let snap = l.vg.need_lv(name)?.clone();
    let Some(s) = snap.snapshot.clone() else {
        return Err(Error::Usage(format!("{path} is not a snapshot: use lvm-snap lv rm {path}")));
    };
    let origin = l.vg.need_lv(&s.origin)?.clone();
    let dm = Dm::open(k)?;
    lvm::deactivate(&dm, &l.vg, &snap)?;
    let last = l.vg.snapshots_of(&s.origin).len() == 1;
    let top = dm_name(&l.vg, &s.origin);
    if last && dm.info(&top)?.is_some() {
        dm.k.note(format!("{path} was {top}'s last snapshot: back to a plain table, no copy on write"));
        dm.reload(&top, &lvm::own_table(&l, &origin)?)?;
        dm.remove(&format!("{top}-real"))?;
    }
    l.vg.lvs.retain(|x| x.name != name);
    lvm::commit(k, &mut l)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("16/40960 16"), Some((16, 40960, 16)));
        assert_eq!(parse_status("Invalid"), None);
    }

    #[test]
    fn chunks() {
        assert_eq!(parse_chunk("8K").unwrap(), 16);
        for bad in ["2K", "12K", "1M"] {
            assert!(matches!(parse_chunk(bad), Err(Error::Usage(_))), "{bad}");
        }
    }
}

#[cfg(test)]
mod size_tests {
    use super::max_cow_sectors;

    /// dm-snapshot's layout: the header chunk, the table chunks (512 entries each in
    /// 8 KiB chunks), one chunk per origin chunk; one more table when the last is full.
    #[test]
    fn the_most_a_store_can_use() {
        // 16 MiB in 8 KiB chunks: 2048 data chunks, 4 full tables + the terminator.
        assert_eq!(max_cow_sectors(32768, 16), (1 + 5 + 2048) * 16);
        // 1000 chunks: 2 tables (the second not full), no extra.
        assert_eq!(max_cow_sectors(1000 * 16, 16), (1 + 2 + 1000) * 16);
        // A partial last chunk still takes a whole chunk.
        assert_eq!(max_cow_sectors(17, 16), (1 + 1 + 2) * 16);
        assert!(max_cow_sectors(32768, 16) > 32768, "the origin's own size is not enough");
    }
}
