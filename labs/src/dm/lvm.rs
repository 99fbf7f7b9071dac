//! The teaching LVM: PV labels, volume groups written on their PVs, logical volumes
//! turned into dm tables, and online moves (`pv move`).
//!
//! The operations: [`pv_init`], [`vg_create`], [`vg_show`], [`vg_activate`],
//! [`vg_deactivate`], [`vg_remove`], [`lv_create`], [`lv_extend`], [`lv_remove`],
//! [`pv_move`]. Each scans the attached block devices for PV labels first (the VG is
//! written on its PVs, nowhere else), changes the metadata, then the mapped devices.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dm::device::DmTarget;
use crate::dm::meta::{self, to_extents, Area, DevMap, Label, Lv, Pv, Seg, Vg, META_OFFSET, PE_START};
use crate::dm::{Dm, TOOL};
use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

/// A device seen by the scan, with what its label says.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub dev: String,
    pub num: String,
    pub label: Label,
    pub vg: Option<Vg>,
}

/// Read the label (and VG text) of one device, if it carries ours.
pub(crate) fn read_pv(k: &Kernel, dev: &Path) -> Result<Option<Found>> {
    let fd = k.open_dev(dev, false, false)?;
    let head = k.why("is there a PV label in the first sector?").pread_dev(&fd, 0, 512)?;
    let Some(label) = Label::decode(&head) else { return Ok(None) };
    let vg = if label.meta > 0 {
        let text = k.why("the VG metadata this PV carries").pread_dev(&fd, META_OFFSET, label.meta as usize)?;
        serde_json::from_slice::<Vg>(&text).ok()
    } else {
        None
    };
    let (a, b) = k.blk_dev_number(dev)?;
    Ok(Some(Found { dev: dev.to_string_lossy().into_owned(), num: format!("{a}:{b}"), label, vg }))
}

/// Every block device with our label (dm devices excepted: PVs here are disks).
pub(crate) fn scan(k: &Kernel) -> Result<Vec<Found>> {
    k.note("scanning block devices for PV labels, as pvscan does");
    let mut out = Vec::new();
    for n in k.read_dir(Path::new("/sys/block"))? {
        if n.starts_with("dm-") || n.starts_with("ram") || n.starts_with("zram") {
            continue;
        }
        let size = k.read_file(&Path::new("/sys/block").join(&n).join("size")).unwrap_or_default();
        if size.trim() == "0" || size.is_empty() {
            continue;
        }
        if let Ok(Some(f)) = read_pv(k, &Path::new("/dev").join(&n)) {
            out.push(f);
        }
    }
    Ok(out)
}

/// A VG as found on its PVs: the newest copy, and how each PV is reached now.
pub(crate) struct Loaded {
    pub vg: Vg,
    pub devs: DevMap,
    paths: BTreeMap<String, String>,
}

/// Find VG `name` on the attached devices.
pub(crate) fn load(k: &Kernel, name: &str) -> Result<Loaded> {
    let found = scan(k)?;
    let best = found.iter().filter_map(|f| f.vg.as_ref()).filter(|v| v.name == name).max_by_key(|v| v.seqno).cloned();
    let Some(mut vg) = best else {
        let names: std::collections::BTreeSet<&str> =
            found.iter().filter_map(|f| f.vg.as_ref()).map(|v| v.name.as_str()).collect();
        return Err(Error::failed(
            format!("no volume group {name:?} on the attached devices"),
            format!(
                "volume groups found: {}; attach its loop files first (lvm-snap loop attach FILE)",
                if names.is_empty() { "none".into() } else { names.into_iter().collect::<Vec<_>>().join(", ") }
            ),
        ));
    };
    let mut devs = DevMap::new();
    let mut paths = BTreeMap::new();
    for f in &found {
        if vg.pvs.iter().any(|p| p.id == f.label.pv) {
            devs.insert(f.label.pv.clone(), f.num.clone());
            paths.insert(f.label.pv.clone(), f.dev.clone());
        }
    }
    for pv in &mut vg.pvs {
        match paths.get(&pv.id) {
            Some(p) => pv.dev = p.clone(),
            None => k.note(format!("PV {} (last seen as {}) is missing", pv.id, pv.dev)),
        }
    }
    Ok(Loaded { vg, devs, paths })
}

/// Write `vg` (with its seqno raised) on every one of its PVs.
pub(crate) fn commit(k: &Kernel, l: &mut Loaded) -> Result<()> {
    l.vg.seqno += 1;
    let text = serde_json::to_vec_pretty(&l.vg).expect("a VG serialises");
    if text.len() as u64 > PE_START * 512 - META_OFFSET {
        return Err(Error::failed("the VG metadata no longer fits in the 1 MiB metadata area", "use fewer volumes"));
    }
    for pv in &l.vg.pvs {
        let Some(path) = l.paths.get(&pv.id) else {
            return Err(Error::failed(
                format!("PV {} of volume group {} is missing: its metadata cannot be updated", pv.id, l.vg.name),
                "attach all the VG's loop files before changing it",
            ));
        };
        write_label(k, Path::new(path), &Label { pv: pv.id.clone(), sectors: 0, meta: text.len() as u64 }, &text)?;
    }
    k.note(format!("volume group {} metadata seqno {} written on {} PVs", l.vg.name, l.vg.seqno, l.vg.pvs.len()));
    Ok(())
}

fn write_label(k: &Kernel, dev: &Path, label: &Label, text: &[u8]) -> Result<()> {
    let fd = k.open_dev(dev, true, false)?;
    let mut label = label.clone();
    if label.sectors == 0 {
        label.sectors = k.blk_size(&fd)? / 512;
    }
    if !text.is_empty() {
        k.why("the whole VG's metadata, on every PV, as LVM keeps it").pwrite_dev(
            &fd,
            META_OFFSET,
            text,
            "\"{\\\"name\\\": ...}\"",
        )?;
    }
    k.why("the label: who this PV is and how long the metadata is").pwrite_dev(
        &fd,
        0,
        &label.encode(),
        &format!("\"{}\\npv {}...\"", meta::MAGIC, label.pv),
    )?;
    Ok(())
}

fn new_id(k: &Kernel) -> Result<String> {
    Ok(k.why("a random id").read_file(Path::new("/proc/sys/kernel/random/uuid"))?.trim().replace('-', ""))
}

/// Initialise `dev` as a PV (write its label); returns its id. A device that is a PV
/// already keeps its id; one of a VG, or in use (`O_EXCL` fails), is refused.
pub fn pv_init(k: &Kernel, dev: &Path) -> Result<String> {
    let _s = k.scope(TOOL);
    if let Some(f) = read_pv(k, dev)? {
        if let Some(vg) = f.vg {
            return Err(Error::failed(
                format!("{} is a PV of volume group {} already", dev.display(), vg.name),
                format!("remove its volumes and the VG first (lvm-snap vg rm {})", vg.name),
            ));
        }
        k.note(format!("{} has a PV label already: keeping its id", dev.display()));
        return Ok(f.label.pv);
    }
    let fd = k
        .why("O_EXCL: refuse a device that is mounted or used by a dm table")
        .open_dev(dev, true, true)
        .hint(Errno::EBUSY, &format!("{} is in use (mounted, or under a mapped device)", dev.display()))?;
    let sectors = k.blk_size(&fd)? / 512;
    if sectors < PE_START * 2 {
        return Err(Error::failed(
            format!("{} is too small for a PV", dev.display()),
            "use a device of at least 2 MiB",
        ));
    }
    drop(fd);
    let id = new_id(k)?;
    write_label(k, dev, &Label { pv: id.clone(), sectors, meta: 0 }, &[])?;
    Ok(id)
}

/// A volume group to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgSpec {
    /// Its name.
    pub name: String,
    /// Its PVs (block devices; those without a label are initialised).
    pub pvs: Vec<PathBuf>,
    /// Extent size in sectors (a power of two, at least 1 MiB).
    pub extent: u64,
}

/// Create a volume group over `spec.pvs`: initialise them, cut them in extents, and
/// write the VG's metadata on every one. Returns the VG as written.
pub fn vg_create(k: &Kernel, spec: &VgSpec) -> Result<Vg> {
    let _s = k.scope(TOOL);
    let (name, extent) = (&spec.name, spec.extent);
    meta::check_name("volume group", name)?;
    if !extent.is_power_of_two() || extent < 2048 {
        return Err(Error::Usage(format!(
            "--extent must be a power of two of at least 1M, got {}",
            meta::human(extent)
        )));
    }
    if scan(k)?.iter().any(|f| f.vg.as_ref().is_some_and(|v| &v.name == name)) {
        return Err(Error::failed(format!("volume group {name} exists already"), "choose another name"));
    }
    let mut vg = Vg { name: name.clone(), id: new_id(k)?, seqno: 0, extent, pvs: vec![], lvs: vec![] };
    let mut paths = BTreeMap::new();
    for dev in &spec.pvs {
        let id = pv_init(k, dev)?;
        let fd = k.open_dev(dev, false, false)?;
        let sectors = k.blk_size(&fd)? / 512;
        let pe_count = (sectors - PE_START) / extent;
        if pe_count == 0 {
            return Err(Error::failed(format!("{} holds no whole extent", dev.display()), "use a smaller --extent"));
        }
        if vg.pvs.iter().any(|p| p.id == id) {
            return Err(Error::Usage(format!("{} is given twice", dev.display())));
        }
        vg.pvs.push(Pv { id: id.clone(), pe_count, dev: dev.to_string_lossy().into() });
        paths.insert(id, dev.to_string_lossy().into_owned());
    }
    let mut l = Loaded { vg, devs: DevMap::new(), paths };
    commit(k, &mut l)?;
    Ok(l.vg)
}

/// A volume group as found on its PVs, with the dm table each LV's own extents make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VgReport {
    /// The VG, as written on its PVs.
    pub vg: Vg,
    /// For each LV (whose PVs are all attached): its own device and that table.
    pub tables: Vec<(String, Vec<DmTarget>)>,
}

/// The volume groups on the attached devices (only `name`, when given; a name found
/// nowhere is an error), sorted by name.
pub fn vg_show(k: &Kernel, name: Option<&str>) -> Result<Vec<VgReport>> {
    let _s = k.scope(TOOL);
    let found = scan(k)?;
    let mut names: Vec<String> = found.iter().filter_map(|f| f.vg.as_ref()).map(|v| v.name.clone()).collect();
    names.sort();
    names.dedup();
    if let Some(n) = name {
        names.retain(|x| x == n);
        if names.is_empty() {
            load(k, n)?;
        }
    }
    let mut out = Vec::new();
    for n in names {
        let l = load(k, &n)?;
        let tables = l.vg.lvs.iter().filter_map(|lv| own_table(&l, lv).ok().map(|t| (own_dev(&l.vg, lv), t))).collect();
        out.push(VgReport { vg: l.vg, tables });
    }
    Ok(out)
}

/// Create the mapped devices of every LV of VG `name` (after a reboot, or after
/// attaching its loop files again): origins first, then snapshots. Returns the
/// devices, `/dev/mapper/VG-LV`.
pub fn vg_activate(k: &Kernel, name: &str) -> Result<Vec<PathBuf>> {
    let _s = k.scope(TOOL);
    let l = load(k, name)?;
    let dm = Dm::open(k)?;
    let (snaps, plain): (Vec<&Lv>, Vec<&Lv>) = l.vg.lvs.iter().partition(|lv| lv.snapshot.is_some());
    let mut out = Vec::new();
    for lv in plain.into_iter().chain(snaps) {
        activate(&dm, &l, lv)?;
        out.push(Dm::node(&dm_name(&l.vg, &lv.name)));
    }
    Ok(out)
}

/// Remove the mapped devices of every LV of VG `name` (snapshots first). The
/// metadata stays on the PVs.
pub fn vg_deactivate(k: &Kernel, name: &str) -> Result<()> {
    let _s = k.scope(TOOL);
    let l = load(k, name)?;
    let dm = Dm::open(k)?;
    let (snaps, plain): (Vec<&Lv>, Vec<&Lv>) = l.vg.lvs.iter().partition(|lv| lv.snapshot.is_some());
    for lv in snaps.into_iter().chain(plain) {
        deactivate(&dm, &l.vg, lv)?;
    }
    Ok(())
}

/// Remove an empty VG: wipe its PVs' labels.
pub fn vg_remove(k: &Kernel, name: &str) -> Result<()> {
    let _s = k.scope(TOOL);
    let l = load(k, name)?;
    if !l.vg.lvs.is_empty() {
        return Err(Error::failed(
            format!("volume group {name} still has {} logical volumes", l.vg.lvs.len()),
            "remove them first (lvm-snap lv rm VG/LV, snap rm VG/SNAP)",
        ));
    }
    for (id, path) in &l.paths {
        k.note(format!("wiping the label of PV {id}"));
        let fd = k.open_dev(Path::new(path), true, false)?;
        k.why("no label: the device is no PV any more").pwrite_dev(&fd, 0, &[0u8; 512], "\"\\0\\0...\"")?;
    }
    Ok(())
}

/// The dm name of `vg/lv`: `vg-lv`.
pub(crate) fn dm_name(vg: &Vg, lv: &str) -> String {
    format!("{}-{lv}", vg.name)
}

fn uuid(vg: &Vg, lv: &str, suffix: &str) -> String {
    format!("{}{}-{lv}{suffix}", meta::UUID_PREFIX, vg.id)
}

/// The device whose table maps the LV's own extents: `vg-lv`, or `vg-lv-real`
/// when it is a snapshot origin, or `vg-s-cow` for a snapshot's store.
pub(crate) fn own_dev(vg: &Vg, lv: &Lv) -> String {
    if lv.snapshot.is_some() {
        format!("{}-cow", dm_name(vg, &lv.name))
    } else if !vg.snapshots_of(&lv.name).is_empty() {
        format!("{}-real", dm_name(vg, &lv.name))
    } else {
        dm_name(vg, &lv.name)
    }
}

/// The table of the LV's own extents.
pub(crate) fn own_table(l: &Loaded, lv: &Lv) -> Result<Vec<DmTarget>> {
    meta::table(&l.vg, &lv.segments, &l.devs)
}

/// Create the devices of one LV (its origin must be active for a snapshot).
pub(crate) fn activate(dm: &Dm, l: &Loaded, lv: &Lv) -> Result<()> {
    let vg = &l.vg;
    let top = dm_name(vg, &lv.name);
    if dm.info(&top)?.is_some() {
        dm.k.note(format!("{top} is active already"));
        return Ok(());
    }
    let own = own_dev(vg, lv);
    let size = lv.extents() * vg.extent;
    dm.create(&own, &uuid(vg, &lv.name, own.strip_prefix(&top).unwrap_or("")), &own_table(l, lv)?)?;
    if own == top {
        return Ok(());
    }
    let undo = |e: Error| {
        let _ = dm.remove(&own);
        e
    };
    let table = match &lv.snapshot {
        None => vec![DmTarget::new(0, size, "snapshot-origin", dm.devnum(&own)?)],
        Some(s) => {
            let origin = vg.need_lv(&s.origin)?;
            let real = dm.devnum(&own_dev(vg, origin)).map_err(undo)?;
            let osize = origin.extents() * vg.extent;
            vec![DmTarget::new(0, osize, "snapshot", format!("{real} {} P {}", dm.devnum(&own)?, s.chunk))]
        }
    };
    dm.create(&top, &uuid(vg, &lv.name, ""), &table).map_err(undo)?;
    Ok(())
}

/// Remove the devices of one LV.
pub(crate) fn deactivate(dm: &Dm, vg: &Vg, lv: &Lv) -> Result<()> {
    let top = dm_name(vg, &lv.name);
    if dm.info(&top)?.is_some() {
        dm.remove(&top)?;
    }
    let own = own_dev(vg, lv);
    if own != top && dm.info(&own)?.is_some() {
        dm.remove(&own)?;
    }
    Ok(())
}

/// Restore the previous metadata after a failed activation.
pub(crate) fn rollback(k: &Kernel, l: &mut Loaded, before: Vg) {
    k.note("undo: writing back the previous metadata");
    l.vg = Vg { seqno: l.vg.seqno, ..before };
    if let Err(e) = commit(k, l) {
        k.note(format!("could not restore the metadata: {e}"));
    }
}

/// How a logical volume's extents are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One PV after the other (dm-linear).
    Linear,
    /// Over `stripes` PVs in chunks of `chunk` sectors (dm-striped).
    Striped {
        /// How many PVs (at least 2).
        stripes: usize,
        /// Stripe size, sectors (a power of two from 4 KiB to the extent size).
        chunk: u64,
    },
    /// Two copies on two PVs (dm-mirror).
    Mirror,
}

/// A logical volume to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvSpec {
    /// Its VG.
    pub vg: String,
    /// Its name.
    pub name: String,
    /// Its size, sectors (a multiple of the extent size).
    pub sectors: u64,
    /// Its layout.
    pub layout: Layout,
}

/// Create and activate a logical volume: allocate its extents, write the metadata,
/// create its mapped device. If the device cannot be made, the metadata is put back.
/// Returns `/dev/mapper/VG-LV`.
pub fn lv_create(k: &Kernel, spec: &LvSpec) -> Result<PathBuf> {
    let _s = k.scope(TOOL);
    let (vgname, name, path) = (&spec.vg, &spec.name, format!("{}/{}", spec.vg, spec.name));
    meta::check_name("volume group", vgname)?;
    meta::check_name("logical volume", name)?;
    let mut l = load(k, vgname)?;
    if l.vg.lv(name).is_some() {
        return Err(Error::failed(format!("{path} exists already"), "choose another name"));
    }
    let n = to_extents(spec.sectors, l.vg.extent, "the size")?;
    let segments = match spec.layout {
        Layout::Striped { stripes: s, chunk } if s >= 2 => {
            if !chunk.is_power_of_two() || chunk < 8 || chunk > l.vg.extent {
                return Err(Error::Usage(format!(
                    "--stripe-size must be a power of two between 4K and the extent size, got {}",
                    meta::human(chunk)
                )));
            }
            vec![l.vg.alloc_striped(n, s, chunk)?]
        }
        Layout::Striped { .. } => return Err(Error::Usage("--stripes needs at least 2".into())),
        Layout::Mirror => vec![l.vg.alloc_mirror(n)?],
        Layout::Linear => l.vg.alloc_linear(0, n, None, None)?,
    };
    let before = l.vg.clone();
    let lv = Lv { name: name.clone(), segments, snapshot: None };
    l.vg.lvs.push(lv.clone());
    commit(k, &mut l)?;
    let dm = Dm::open(k)?;
    if let Err(e) = activate(&dm, &l, &lv) {
        rollback(k, &mut l, before);
        return Err(e);
    }
    for row in meta::mapping_rows(&l.vg, &lv) {
        k.note(row);
    }
    Ok(Dm::node(&dm_name(&l.vg, name)))
}

/// The new size of [`lv_extend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grow {
    /// To this many sectors.
    To(u64),
    /// By this many sectors.
    By(u64),
}

/// Grow a linear LV, live: allocate extents, write the metadata, then suspend →
/// load → resume its device (the old table stays live if the kernel refuses the new
/// one, and the metadata is put back). Returns the device and its new size in sectors.
pub fn lv_extend(k: &Kernel, vgname: &str, name: &str, size: Grow) -> Result<(PathBuf, u64)> {
    let _s = k.scope(TOOL);
    let path = format!("{vgname}/{name}");
    let mut l = load(k, vgname)?;
    let lv = l.vg.need_lv(name)?.clone();
    let cur = lv.extents();
    let want = match size {
        Grow::By(add) => cur + to_extents(add, l.vg.extent, "the size")?,
        Grow::To(s) => to_extents(s, l.vg.extent, "the size")?,
    };
    if want <= cur {
        return Err(Error::Usage(format!(
            "{path} has {cur} extents already ({}); extend only grows (give a larger size or +SIZE)",
            meta::human(cur * l.vg.extent)
        )));
    }
    if lv.segments.iter().any(|s| !matches!(s, Seg::Linear { .. })) || lv.snapshot.is_some() {
        return Err(Error::failed(format!("{path} is not a linear volume"), "extend works on linear volumes here"));
    }
    if !l.vg.snapshots_of(name).is_empty() {
        return Err(Error::failed(
            format!("{path} has snapshots"),
            "their tables name the origin's size: remove or merge them first",
        ));
    }
    let more = l.vg.alloc_linear(cur, want - cur, None, None)?;
    let before = l.vg.clone();
    let idx = l.vg.lvs.iter().position(|x| x.name == name).expect("found above");
    l.vg.lvs[idx].segments.extend(more);
    let lv = l.vg.lvs[idx].clone();
    commit(k, &mut l)?;
    let dm = Dm::open(k)?;
    let table = own_table(&l, &lv)?;
    if let Err(e) = dm.reload(&dm_name(&l.vg, name), &table) {
        rollback(k, &mut l, before);
        return Err(e);
    }
    for row in meta::mapping_rows(&l.vg, &lv) {
        k.note(row);
    }
    Ok((Dm::node(&dm_name(&l.vg, name)), want * l.vg.extent))
}

/// Remove a logical volume (not a snapshot, and not one with snapshots): its
/// devices, then its extents from the metadata.
pub fn lv_remove(k: &Kernel, vgname: &str, name: &str) -> Result<()> {
    let _s = k.scope(TOOL);
    let path = format!("{vgname}/{name}");
    let mut l = load(k, vgname)?;
    let lv = l.vg.need_lv(name)?.clone();
    if lv.snapshot.is_some() {
        return Err(Error::Usage(format!("{path} is a snapshot: use lvm-snap snap rm {path}")));
    }
    let snaps: Vec<String> = l.vg.snapshots_of(name).iter().map(|s| s.name.clone()).collect();
    if !snaps.is_empty() {
        return Err(Error::failed(
            format!("{path} has snapshots: {}", snaps.join(", ")),
            "remove them first (lvm-snap snap rm VG/SNAP)",
        ));
    }
    let dm = Dm::open(k)?;
    deactivate(&dm, &l.vg, &lv)?;
    l.vg.lvs.retain(|x| x.name != name);
    commit(k, &mut l)
}

/// Parse the in-sync count of a `mirror` status line: `2 7:0 7:1 12/16 1 AA 1 core`.
pub(crate) fn mirror_sync(params: &str) -> Option<(u64, u64)> {
    let t: Vec<&str> = params.split_whitespace().collect();
    let n: usize = t.first()?.parse().ok()?;
    let (a, b) = t.get(1 + n)?.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `pv move`: for each LV with extents on `dev`, mirror them to free extents of the
/// other PVs (or of `to` only) through a temporary device, wait for the copy, switch
/// the LV's table. The LV stays usable throughout. Returns how many LVs were moved
/// (0: nothing used `dev`).
pub fn pv_move(k: &Kernel, dev: &Path, to: Option<&Path>) -> Result<usize> {
    let _s = k.scope(TOOL);
    let f = read_pv(k, dev)?.ok_or_else(|| {
        Error::failed(format!("{} carries no PV label", dev.display()), "give a PV of a volume group")
    })?;
    let vgname =
        f.vg.as_ref()
            .map(|v| v.name.clone())
            .ok_or_else(|| Error::failed(format!("{} is in no volume group", dev.display()), "nothing to move"))?;
    let mut l = load(k, &vgname)?;
    let src = f.label.pv.clone();
    let dst = match to {
        None => None,
        Some(t) => {
            let g = read_pv(k, t)?.filter(|g| l.vg.pvs.iter().any(|p| p.id == g.label.pv)).ok_or_else(|| {
                Error::failed(
                    format!("{} is not a PV of volume group {vgname}", t.display()),
                    "give --to a PV of the same VG",
                )
            })?;
            Some(g.label.pv)
        }
    };
    if dst.as_deref() == Some(src.as_str()) {
        return Err(Error::Usage("--to names the PV being emptied".into()));
    }
    let dm = Dm::open(k)?;
    let names: Vec<String> = l.vg.lvs.iter().map(|lv| lv.name.clone()).collect();
    let mut moved = 0;
    for name in names {
        let lv = l.vg.need_lv(&name)?.clone();
        if !lv.segments.iter().any(|s| s.areas().iter().any(|(a, _)| a.pv == src)) {
            continue;
        }
        if lv.segments.iter().any(|s| !matches!(s, Seg::Linear { .. })) {
            return Err(Error::failed(
                format!("{vgname}/{name} is striped or mirrored"),
                "pv move handles linear volumes here: move it by hand, or remove it",
            ));
        }
        let holder = own_dev(&l.vg, &lv);
        if dm.info(&holder)?.is_none() {
            return Err(Error::failed(
                format!("{vgname}/{name} is not active: its data cannot be copied while it is online"),
                format!("activate it first: lvm-snap vg activate {vgname}"),
            ));
        }
        // New places for the segments on the source PV.
        let mut new_segs = Vec::new();
        let mut pairs = Vec::new(); // (le, count, old area, new area)
        let mut scratch = l.vg.clone();
        for s in &lv.segments {
            let Seg::Linear { le, count, area } = s else { unreachable!() };
            if area.pv != src {
                new_segs.push(s.clone());
                continue;
            }
            let got = scratch.alloc_linear(*le, *count, dst.as_deref(), Some(&src))?;
            // Split the old area to match the pieces of the new one.
            for g in &got {
                let Seg::Linear { le: gle, count: gn, area: ga } = g else { unreachable!() };
                let old = Area { pv: src.clone(), pe: area.pe + (gle - le) };
                pairs.push((*gle, *gn, old, ga.clone()));
            }
            // Reserve them in the scratch VG so the next allocation does not reuse them.
            scratch.lvs.push(Lv { name: format!("pvmove-{le}"), segments: got.clone(), snapshot: None });
            new_segs.extend(got);
        }
        new_segs.sort_by_key(|s| s.range().0);
        let e = l.vg.extent;
        // The temporary mirror: one line per moved piece, legs = (old, new).
        let mut mirror = Vec::new();
        let mut at = 0;
        for (_, n, old, new) in &pairs {
            let t =
                meta::table(&l.vg, &[Seg::Mirror { le: 0, count: *n, legs: vec![old.clone(), new.clone()] }], &l.devs)?;
            mirror.push(DmTarget::new(at, n * e, "mirror", t[0].params.clone()));
            at += n * e;
        }
        let tmp = format!("{vgname}-pvmove0");
        k.note(format!("moving {vgname}/{name}: {} pieces through the temporary mirror {tmp}", pairs.len()));
        dm.create(&tmp, &format!("{}{}-pvmove0", meta::UUID_PREFIX, l.vg.id), &mirror)?;
        let through = |old_table: &[DmTarget]| -> Result<Vec<DmTarget>> {
            // The LV's table with each moved piece sent to the mirror instead.
            let mut t: Vec<DmTarget> =
                old_table.iter().filter(|x| !pairs.iter().any(|p| p.0 * e == x.start)).cloned().collect();
            let num = dm.devnum(&tmp)?;
            let mut off = 0;
            for (le, n, _, _) in &pairs {
                t.push(DmTarget::new(le * e, n * e, "linear", format!("{num} {off}")));
                off += n * e;
            }
            t.sort_by_key(|x| x.start);
            Ok(t)
        };
        // The old table split at the same boundaries as the moved pieces.
        let split: Vec<Seg> = lv
            .segments
            .iter()
            .flat_map(|s| {
                let Seg::Linear { le, area, .. } = s else { unreachable!() };
                if area.pv != src {
                    return vec![s.clone()];
                }
                pairs
                    .iter()
                    .filter(|p| p.2.pv == src && p.0 >= *le && p.0 < le + s.range().1)
                    .map(|p| Seg::Linear { le: p.0, count: p.1, area: p.2.clone() })
                    .collect()
            })
            .collect();
        let old_table = meta::table(&l.vg, &split, &l.devs)?;
        let step = (|| -> Result<()> {
            dm.reload(&holder, &through(&old_table)?)?;
            wait_mirror(&dm, &tmp)?;
            dm.reload(&holder, &meta::table(&l.vg, &new_segs, &l.devs)?)
        })();
        if let Err(e) = step {
            let _ = dm.reload(&holder, &old_table);
            let _ = dm.remove(&tmp);
            return Err(e);
        }
        dm.remove(&tmp)?;
        let idx = l.vg.lvs.iter().position(|x| x.name == name).expect("present");
        l.vg.lvs[idx].segments = merge_adjacent(new_segs);
        commit(k, &mut l)?;
        moved += 1;
    }
    if moved == 0 {
        k.note(format!("no logical volume uses {}: nothing to move", dev.display()));
    }
    Ok(moved)
}

fn wait_mirror(dm: &Dm, name: &str) -> Result<()> {
    for _ in 0..3000 {
        let st = dm.status(name)?;
        let sync: Vec<(u64, u64)> = st.iter().filter_map(|t| mirror_sync(&t.params)).collect();
        if dm.k.mode() == crate::kernel::Mode::DryRun || (!sync.is_empty() && sync.iter().all(|(a, b)| a == b)) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(Error::failed(
        format!("the copy through {name} did not finish in 5 minutes"),
        "see `lvm-snap status` for its progress",
    ))
}

/// Join linear segments that follow each other on the same PV.
fn merge_adjacent(segs: Vec<Seg>) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    for s in segs {
        if let (Some(Seg::Linear { count: pc, area: pa, le: ple }), Seg::Linear { le, count, area }) =
            (out.last_mut(), &s)
        {
            if pa.pv == area.pv && pa.pe + *pc == area.pe && *ple + *pc == *le {
                *pc += count;
                continue;
            }
        }
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_status_parsing() {
        assert_eq!(mirror_sync("2 7:0 7:1 12/16 1 AA 1 core"), Some((12, 16)));
        assert_eq!(mirror_sync("garbage"), None);
    }

    #[test]
    fn adjacent_segments_join() {
        let a = |le, count, pe| Seg::Linear { le, count, area: Area { pv: "p".into(), pe } };
        assert_eq!(merge_adjacent(vec![a(0, 2, 5), a(2, 3, 7), a(5, 1, 0)]), vec![a(0, 5, 5), a(5, 1, 0)]);
    }

    #[test]
    fn names_of_devices_follow_lvm() {
        let mut vg = Vg { name: "vg0".into(), id: "i".into(), seqno: 1, extent: 8192, pvs: vec![], lvs: vec![] };
        let data = Lv { name: "data".into(), segments: vec![], snapshot: None };
        assert_eq!(own_dev(&vg, &data), "vg0-data");
        let s = Lv {
            name: "s1".into(),
            segments: vec![],
            snapshot: Some(meta::SnapOf { origin: "data".into(), chunk: 16 }),
        };
        vg.lvs = vec![data.clone(), s.clone()];
        assert_eq!(own_dev(&vg, &data), "vg0-data-real");
        assert_eq!(own_dev(&vg, &s), "vg0-s1-cow");
    }
}
