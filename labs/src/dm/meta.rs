//! The teaching LVM's data: the volume group as it is written on every PV, the
//! allocation of extents, and the dm tables a logical volume becomes. Pure logic,
//! no kernel request: everything here is tested without a device.
//!
//! ## On-disk format (the first MiB of every PV)
//!
//! ```text
//! offset 0     label, 512 bytes of text, NUL-padded:
//!                CONTLAB-LVM1
//!                pv 3f1c...            the PV's id (from /proc/sys/kernel/random/uuid)
//!                sectors 524288        size of the device when it was initialised
//!                pe_start 2048         where the first extent starts (sector 2048 = 1 MiB)
//!                meta 1234             length of the VG text at offset 4096 (0: in no VG)
//! offset 4096  the VG metadata, JSON text (name, id, seqno, extent size, PVs, LVs)
//! offset 1MiB  physical extent 0, 1, 2...
//! ```
//!
//! Like LVM2, which keeps a text description of the whole VG in a metadata area at
//! the start of each PV, every PV carries a full copy; `seqno` grows at each change
//! and the copy with the highest one wins. So the VG is found again after a reboot
//! or after re-attaching the loop files: scan the devices, read the labels.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dm::device::DmTarget;
use crate::error::{Error, Result};

/// Bytes per sector: device-mapper tables count in 512-byte sectors.
pub const SECTOR: u64 = 512;
/// Sectors reserved at the start of each PV for the label and metadata (1 MiB).
pub const PE_START: u64 = 2048;
/// The label's first line.
pub const MAGIC: &str = "CONTLAB-LVM1";
/// Where the VG text starts.
pub const META_OFFSET: u64 = 4096;
/// Region size of dm-mirror, in sectors (the unit it tracks as in sync or not).
pub const MIRROR_REGION: u64 = 1024;

/// The prefix of the dm uuid of every device contlab makes.
pub const UUID_PREFIX: &str = "CONTLAB-";

/// A physical volume as the VG records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pv {
    /// Its id, also in its label.
    pub id: String,
    /// Number of extents.
    pub pe_count: u64,
    /// Where it was seen last (a hint for people; the id is what counts).
    pub dev: String,
}

/// One piece of where a logical volume's extents live on a PV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    /// PV id.
    pub pv: String,
    /// First physical extent.
    pub pe: u64,
}

/// A segment: logical extents `le..le+count` of a logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Seg {
    /// LE i ↦ PE `area.pe + i - le` of one PV (dm-linear).
    Linear {
        /// First logical extent.
        le: u64,
        /// Number of extents.
        count: u64,
        /// Where they are.
        area: Area,
    },
    /// Spread over several PVs in chunks of `stripe` sectors (dm-striped): each
    /// area holds `count / areas.len()` extents.
    Striped {
        /// First logical extent.
        le: u64,
        /// Number of extents.
        count: u64,
        /// Stripe (chunk) size in sectors.
        stripe: u64,
        /// One area per stripe, each on its own PV.
        areas: Vec<Area>,
    },
    /// The same data on each leg (dm-mirror, core log).
    Mirror {
        /// First logical extent.
        le: u64,
        /// Number of extents.
        count: u64,
        /// One area per copy, each on its own PV.
        legs: Vec<Area>,
    },
}

impl Seg {
    /// (first LE, extent count).
    pub fn range(&self) -> (u64, u64) {
        match self {
            Seg::Linear { le, count, .. } | Seg::Striped { le, count, .. } | Seg::Mirror { le, count, .. } => {
                (*le, *count)
            }
        }
    }
    /// Every area with its extent count.
    pub fn areas(&self) -> Vec<(&Area, u64)> {
        match self {
            Seg::Linear { count, area, .. } => vec![(area, *count)],
            Seg::Striped { count, areas, .. } => areas.iter().map(|a| (a, count / areas.len() as u64)).collect(),
            Seg::Mirror { count, legs, .. } => legs.iter().map(|a| (a, *count)).collect(),
        }
    }
    /// The kind, as `lvs` calls it.
    pub fn kind(&self) -> &'static str {
        match self {
            Seg::Linear { .. } => "linear",
            Seg::Striped { .. } => "striped",
            Seg::Mirror { .. } => "mirror",
        }
    }
}

/// A snapshot: this LV's extents are the COW store of a snapshot of `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapOf {
    /// The origin LV's name.
    pub origin: String,
    /// Chunk size in sectors: the unit copied before the origin's first write to it.
    pub chunk: u64,
}

/// A logical volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lv {
    /// Its name in the VG.
    pub name: String,
    /// Its extents.
    pub segments: Vec<Seg>,
    /// Set when this LV is a snapshot (its extents hold the COW store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapOf>,
}

impl Lv {
    /// Size in extents.
    pub fn extents(&self) -> u64 {
        self.segments.iter().map(|s| s.range().1).sum()
    }
}

/// A volume group: what is written on every one of its PVs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vg {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Grows at each change; the highest copy wins.
    pub seqno: u64,
    /// Extent size in sectors.
    pub extent: u64,
    /// Its PVs.
    pub pvs: Vec<Pv>,
    /// Its LVs.
    pub lvs: Vec<Lv>,
}

/// A PV label as read from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// PV id.
    pub pv: String,
    /// Device size in sectors.
    pub sectors: u64,
    /// Length of the VG text (0: the PV is in no VG).
    pub meta: u64,
}

impl Label {
    /// The 512-byte label sector.
    pub fn encode(&self) -> Vec<u8> {
        let text =
            format!("{MAGIC}\npv {}\nsectors {}\npe_start {PE_START}\nmeta {}\n", self.pv, self.sectors, self.meta);
        let mut b = text.into_bytes();
        b.resize(SECTOR as usize, 0);
        b
    }

    /// Parse a label sector; `None` when it is not one of ours.
    pub fn decode(b: &[u8]) -> Option<Label> {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let text = std::str::from_utf8(&b[..end]).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC {
            return None;
        }
        let kv: BTreeMap<&str, &str> = lines.filter_map(|l| l.split_once(' ')).collect();
        Some(Label {
            pv: kv.get("pv")?.to_string(),
            sectors: kv.get("sectors")?.parse().ok()?,
            meta: kv.get("meta")?.parse().ok()?,
        })
    }
}

/// Parse a size: `100M`, `1G`, `64K`, `2048S` (sectors), `4096B`; a bare number is
/// MiB, as in LVM's tools. Returns sectors; sizes must be whole sectors.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "invalid size {s:?}: expected a number with an optional unit B, S (512-byte sectors), K, M, G or T, e.g. 100M"
        ))
    };
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" if unit.eq_ignore_ascii_case("b") => 1,
        "" => 1 << 20,
        "S" => SECTOR,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(mult).ok_or_else(bad)?;
    if bytes == 0 || bytes % SECTOR != 0 {
        return Err(Error::Usage(format!("invalid size {s:?}: it must be a positive multiple of 512 bytes")));
    }
    Ok(bytes / SECTOR)
}

/// `8388608 sectors` → `4.00 GiB`.
pub fn human(sectors: u64) -> String {
    let b = sectors * SECTOR;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", units[u])
    }
}

/// Names of VGs, LVs, pools: letters, digits, `_`, `.`, `+`; no `-`, which joins
/// VG and LV in the device name (`vg0-data`), as LVM does.
pub fn check_name(what: &str, n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 60
        && !n.starts_with('.')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid {what} name {n:?}: use 1 to 60 letters, digits, '_', '.', '+' (no '-': it joins names in /dev/mapper)"
        )))
    }
}

/// Split `VG/LV`.
pub fn split_path(s: &str) -> Result<(&str, &str)> {
    let (vg, lv) = s
        .split_once('/')
        .ok_or_else(|| Error::Usage(format!("expected VG/LV (a volume group and a logical volume), got {s:?}")))?;
    check_name("volume group", vg)?;
    check_name("logical volume", lv)?;
    Ok((vg, lv))
}

/// A size in sectors as a whole number of extents, or a usage error that says
/// which sizes would work.
pub fn to_extents(sectors: u64, extent: u64, what: &str) -> Result<u64> {
    if !sectors.is_multiple_of(extent) {
        let down = sectors / extent * extent;
        let up = down + extent;
        return Err(Error::Usage(format!(
            "{what} {} is not a multiple of the extent size {}: use {} or {}",
            human(sectors),
            human(extent),
            human(up),
            if down > 0 { human(down) } else { "a larger size".into() }
        )));
    }
    Ok(sectors / extent)
}

impl Vg {
    /// The LV named `name`.
    pub fn lv(&self, name: &str) -> Option<&Lv> {
        self.lvs.iter().find(|l| l.name == name)
    }

    /// The LV named `name`, or an error naming the VG's LVs.
    pub fn need_lv(&self, name: &str) -> Result<&Lv> {
        self.lv(name).ok_or_else(|| {
            let names: Vec<&str> = self.lvs.iter().map(|l| l.name.as_str()).collect();
            Error::failed(
                format!("volume group {} has no logical volume {name:?}", self.name),
                format!("its volumes are: {}", if names.is_empty() { "(none)".into() } else { names.join(", ") }),
            )
        })
    }

    /// The snapshots of `origin`.
    pub fn snapshots_of(&self, origin: &str) -> Vec<&Lv> {
        self.lvs.iter().filter(|l| l.snapshot.as_ref().is_some_and(|s| s.origin == origin)).collect()
    }

    /// The extents in use on each PV: pv id → sorted (pe, count) ranges.
    pub fn used(&self) -> BTreeMap<String, Vec<(u64, u64)>> {
        let mut m: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for lv in &self.lvs {
            for s in &lv.segments {
                for (a, n) in s.areas() {
                    m.entry(a.pv.clone()).or_default().push((a.pe, n));
                }
            }
        }
        m.values_mut().for_each(|v| v.sort());
        m
    }

    /// Free ranges (pe, count) of one PV.
    pub fn free_ranges(&self, pv: &Pv) -> Vec<(u64, u64)> {
        let used = self.used().remove(&pv.id).unwrap_or_default();
        let mut out = Vec::new();
        let mut at = 0;
        for (pe, n) in used {
            if pe > at {
                out.push((at, pe - at));
            }
            at = at.max(pe + n);
        }
        if at < pv.pe_count {
            out.push((at, pv.pe_count - at));
        }
        out
    }

    /// Free extents of one PV.
    pub fn free(&self, pv: &Pv) -> u64 {
        self.free_ranges(pv).iter().map(|r| r.1).sum()
    }

    fn no_space(&self, n: u64, how: &str) -> Error {
        let free: u64 = self.pvs.iter().map(|p| self.free(p)).sum();
        Error::failed(
            format!(
                "volume group {} cannot give {n} extents ({}) {how}: {free} extents ({}) are free",
                self.name,
                human(n * self.extent),
                human(free * self.extent)
            ),
            "ask for less, remove a volume, or create the VG with more PVs",
        )
    }

    /// Allocate `n` extents for logical extents starting at `le`, as linear
    /// segments, taking free ranges PV by PV in order (LVM's "normal" policy, minus
    /// its preference for contiguity). `only` restricts the PVs, `avoid` excludes one.
    pub fn alloc_linear(&self, le: u64, n: u64, only: Option<&str>, avoid: Option<&str>) -> Result<Vec<Seg>> {
        let mut segs = Vec::new();
        let mut need = n;
        let mut at = le;
        for pv in &self.pvs {
            if only.is_some_and(|o| o != pv.id) || avoid == Some(pv.id.as_str()) {
                continue;
            }
            for (pe, count) in self.free_ranges(pv) {
                if need == 0 {
                    break;
                }
                let take = count.min(need);
                segs.push(Seg::Linear { le: at, count: take, area: Area { pv: pv.id.clone(), pe } });
                at += take;
                need -= take;
            }
        }
        if need > 0 {
            return Err(self.no_space(n, "as linear extents"));
        }
        Ok(segs)
    }

    /// `k` contiguous areas of `each` extents on `k` different PVs (stripes, mirror legs).
    fn alloc_parallel(&self, k: usize, each: u64, how: &str) -> Result<Vec<Area>> {
        let mut areas = Vec::new();
        for pv in &self.pvs {
            if let Some((pe, _)) = self.free_ranges(pv).into_iter().find(|r| r.1 >= each) {
                areas.push(Area { pv: pv.id.clone(), pe });
                if areas.len() == k {
                    return Ok(areas);
                }
            }
        }
        if self.pvs.len() < k {
            return Err(Error::failed(
                format!("{how} needs {k} PVs, and volume group {} has {}", self.name, self.pvs.len()),
                format!("create the VG with at least {k} PVs (each stripe or copy lives on its own disk)"),
            ));
        }
        Err(self.no_space(each * k as u64, how))
    }

    /// A striped segment over `stripes` PVs.
    pub fn alloc_striped(&self, n: u64, stripes: usize, stripe: u64) -> Result<Seg> {
        if !n.is_multiple_of(stripes as u64) {
            return Err(Error::Usage(format!(
                "a striped volume's extents ({n}) must divide evenly among its {stripes} stripes: use a size of {} or {} extents",
                n / stripes as u64 * stripes as u64,
                (n / stripes as u64 + 1) * stripes as u64
            )));
        }
        let areas = self.alloc_parallel(stripes, n / stripes as u64, &format!("a {stripes}-stripe volume"))?;
        Ok(Seg::Striped { le: 0, count: n, stripe, areas })
    }

    /// A mirrored segment: two legs on two PVs.
    pub fn alloc_mirror(&self, n: u64) -> Result<Seg> {
        let legs = self.alloc_parallel(2, n, "a mirrored volume")?;
        Ok(Seg::Mirror { le: 0, count: n, legs })
    }
}

/// How a PV is reached now: its device number, for the tables.
pub type DevMap = BTreeMap<String, String>;

/// The dm table a list of segments becomes, with PVs given as `major:minor` by `devs`.
pub fn table(vg: &Vg, segs: &[Seg], devs: &DevMap) -> Result<Vec<DmTarget>> {
    let e = vg.extent;
    let dev = |a: &Area| -> Result<String> {
        let d = devs.get(&a.pv).ok_or_else(|| {
            Error::failed(
                format!("PV {} of volume group {} is missing", a.pv, vg.name),
                "attach the loop file that holds it (`lvm-snap loop attach FILE`) and try again",
            )
        })?;
        Ok(format!("{d} {}", PE_START + a.pe * e))
    };
    segs.iter()
        .map(|s| {
            let (le, n) = s.range();
            Ok(match s {
                Seg::Linear { area, .. } => DmTarget::new(le * e, n * e, "linear", dev(area)?),
                Seg::Striped { stripe, areas, .. } => {
                    let devs = areas.iter().map(&dev).collect::<Result<Vec<_>>>()?;
                    DmTarget::new(le * e, n * e, "striped", format!("{} {stripe} {}", areas.len(), devs.join(" ")))
                }
                Seg::Mirror { legs, .. } => {
                    let devs = legs.iter().map(&dev).collect::<Result<Vec<_>>>()?;
                    DmTarget::new(
                        le * e,
                        n * e,
                        "mirror",
                        format!("core 1 {MIRROR_REGION} {} {}", legs.len(), devs.join(" ")),
                    )
                }
            })
        })
        .collect()
}

/// The LE → PE mapping, one row per area: `LE 0-24  →  pv 3f1c.. (/dev/loop0) PE 0-24`.
pub fn mapping_rows(vg: &Vg, lv: &Lv) -> Vec<String> {
    let dev_of = |id: &str| vg.pvs.iter().find(|p| p.id == id).map(|p| p.dev.clone()).unwrap_or_default();
    let mut rows = Vec::new();
    for s in &lv.segments {
        let (le, n) = s.range();
        for (i, (a, count)) in s.areas().into_iter().enumerate() {
            let how = match s {
                Seg::Linear { .. } => String::new(),
                Seg::Striped { stripe, .. } => format!("  (stripe {i}, chunks of {})", human(*stripe)),
                Seg::Mirror { .. } => format!("  (copy {i})"),
            };
            rows.push(format!(
                "LE {:>5}-{:<5} -> {} PE {:>5}-{:<5}{how}",
                le,
                le + n - 1,
                dev_of(&a.pv),
                a.pe,
                a.pe + count - 1
            ));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vg(pvs: usize, pe: u64) -> Vg {
        Vg {
            name: "vg0".into(),
            id: "x".into(),
            seqno: 1,
            extent: 8192,
            pvs: (0..pvs).map(|i| Pv { id: format!("pv{i}"), pe_count: pe, dev: format!("/dev/loop{i}") }).collect(),
            lvs: vec![],
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100M").unwrap(), 204800);
        assert_eq!(parse_size("4").unwrap(), 8192);
        assert_eq!(parse_size("8K").unwrap(), 16);
        assert_eq!(parse_size("1GiB").unwrap(), 2097152);
        assert_eq!(parse_size("2048S").unwrap(), 2048);
        assert_eq!(parse_size("512B").unwrap(), 1);
        for bad in ["", "M", "1X", "100B", "0", "-1M"] {
            assert!(matches!(parse_size(bad), Err(Error::Usage(_))), "{bad}");
        }
        assert_eq!(human(204800), "100.00 MiB");
    }

    #[test]
    fn sizes_must_be_whole_extents() {
        assert_eq!(to_extents(16384, 8192, "size").unwrap(), 2);
        let e = to_extents(10000, 8192, "size").unwrap_err().to_string();
        assert!(e.contains("not a multiple of the extent size 4.00 MiB: use 8.00 MiB or 4.00 MiB"), "{e}");
    }

    #[test]
    fn labels_round_trip_and_strangers_are_ignored() {
        let l = Label { pv: "abc".into(), sectors: 524288, meta: 42 };
        let b = l.encode();
        assert_eq!(b.len(), 512);
        assert!(b.starts_with(b"CONTLAB-LVM1\npv abc\n"));
        assert_eq!(Label::decode(&b), Some(l));
        assert_eq!(Label::decode(&[0u8; 512]), None);
        assert_eq!(Label::decode(b"LABELONE\x01\x00"), None);
    }

    #[test]
    fn linear_allocation_fills_holes_then_spills_to_the_next_pv() {
        let mut g = vg(2, 10);
        g.lvs.push(Lv { name: "a".into(), segments: g.alloc_linear(0, 4, None, None).unwrap(), snapshot: None });
        g.lvs.push(Lv { name: "b".into(), segments: g.alloc_linear(0, 2, None, None).unwrap(), snapshot: None });
        g.lvs.remove(0); // a hole of 4 at the start of pv0
        let segs = g.alloc_linear(0, 12, None, None).unwrap();
        let got: Vec<(u64, u64, String, u64)> = segs
            .iter()
            .map(|s| match s {
                Seg::Linear { le, count, area } => (*le, *count, area.pv.clone(), area.pe),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(got, [(0, 4, "pv0".into(), 0), (4, 4, "pv0".into(), 6), (8, 4, "pv1".into(), 0)]);
        assert!(g.alloc_linear(0, 19, None, None).is_err());
    }

    #[test]
    fn stripes_and_mirrors_need_distinct_pvs() {
        let g = vg(1, 100);
        let e = g.alloc_striped(4, 2, 128).unwrap_err().to_string();
        assert!(e.contains("needs 2 PVs"), "{e}");
        let g = vg(2, 100);
        let s = g.alloc_striped(4, 2, 128).unwrap();
        let devs: DevMap = [("pv0".into(), "7:0".into()), ("pv1".into(), "7:1".into())].into();
        let t = table(&g, &[s], &devs).unwrap();
        assert_eq!(t[0].line(), "0 32768 striped 2 128 7:0 2048 7:1 2048");
        assert!(matches!(g.alloc_striped(3, 2, 128), Err(Error::Usage(_))));
        let m = g.alloc_mirror(2).unwrap();
        assert_eq!(table(&g, &[m], &devs).unwrap()[0].line(), "0 16384 mirror core 1 1024 2 7:0 2048 7:1 2048");
    }

    #[test]
    fn linear_table_places_extents_after_the_metadata_area() {
        let g = vg(1, 10);
        let segs = vec![Seg::Linear { le: 0, count: 2, area: Area { pv: "pv0".into(), pe: 3 } }];
        let devs: DevMap = [("pv0".into(), "7:0".into())].into();
        assert_eq!(table(&g, &segs, &devs).unwrap()[0].line(), "0 16384 linear 7:0 26624");
        let missing = table(&g, &segs, &DevMap::new()).unwrap_err().to_string();
        assert!(missing.contains("PV pv0 of volume group vg0 is missing"), "{missing}");
    }

    #[test]
    fn names() {
        assert!(check_name("vg", "vg0").is_ok());
        for bad in ["", "a-b", "a/b", ".x", "é"] {
            assert!(check_name("vg", bad).is_err(), "{bad}");
        }
        assert_eq!(split_path("vg0/data").unwrap(), ("vg0", "data"));
        assert!(split_path("data").is_err());
    }
}
