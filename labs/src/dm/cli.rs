//! `lvm-snap`'s command line: flags → plain values → one of the lab's operations →
//! what the tool prints. Nothing here talks to the kernel except through them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};

use super::meta::{self, human, parse_size, Vg};
use super::{loopdev, lvm, snap, tables, thin, Dm, TOOL};

/// Device-mapper from first principles: loop devices, a small LVM on dm-linear,
/// COW snapshots and merge, thin provisioning.
///
/// Every request made of the kernel is printed on stderr, strace-style; each
/// device-mapper ioctl shows its decoded `struct dm_ioctl`.
#[derive(Parser, Debug)]
#[command(name = "lvm-snap", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub sub: Sub,
    /// Trace options shared by every contlab tool.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// What to do.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Loop devices: a file seen as a block device.
    #[command(subcommand)]
    Loop(LoopCmd),
    /// Physical volumes.
    #[command(subcommand)]
    Pv(PvCmd),
    /// Volume groups.
    #[command(subcommand)]
    Vg(VgCmd),
    /// Logical volumes.
    #[command(subcommand)]
    Lv(LvCmd),
    /// Copy-on-write snapshots of logical volumes.
    #[command(subcommand)]
    Snap(SnapCmd),
    /// Thin pools and thin volumes.
    #[command(subcommand)]
    Thin(ThinCmd),
    /// Every mapped device with its table (what `dmsetup table` prints).
    Table(ShowArgs),
    /// Every mapped device with its status (what `dmsetup status` prints).
    Status(ShowArgs),
}

/// `table`, `status`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Only this device.
    pub name: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `loop ...`.
#[derive(Subcommand, Debug)]
pub enum LoopCmd {
    /// Attach FILE to a free loop device (LOOP_CTL_GET_FREE, LOOP_CONFIGURE); prints /dev/loopN.
    Attach {
        /// The backing file.
        file: PathBuf,
        /// Create FILE (sparse) of this size first.
        #[arg(long, value_name = "SIZE", requires = "create")]
        size: Option<String>,
        /// Create the file (needs --size).
        #[arg(long, requires = "size")]
        create: bool,
        /// Let the kernel detach the device when its last user closes it. With no
        /// other user (a dm table, a mount) that is as soon as lvm-snap exits.
        #[arg(long)]
        autoclear: bool,
        /// Read-only device.
        #[arg(long)]
        read_only: bool,
    },
    /// Detach a loop device (LOOP_CLR_FD); lazily if something still holds it.
    Detach {
        /// /dev/loopN.
        dev: PathBuf,
    },
    /// List attached loop devices (from /sys/block/loop*).
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `pv ...`.
#[derive(Subcommand, Debug)]
pub enum PvCmd {
    /// Write a PV label on DEV.
    Init {
        /// A block device (/dev/loopN).
        dev: PathBuf,
    },
    /// Move the extents of every LV on PV to the VG's other PVs, online.
    Move {
        /// The PV to empty (its device path).
        dev: PathBuf,
        /// Move them to this PV only.
        #[arg(long, value_name = "DEV")]
        to: Option<PathBuf>,
    },
}

/// `vg ...`.
#[derive(Subcommand, Debug)]
pub enum VgCmd {
    /// Create a volume group over PVs (initialising those without a label).
    Create {
        /// Its name.
        name: String,
        /// Its PVs (block devices).
        #[arg(required = true)]
        pvs: Vec<PathBuf>,
        /// Extent size (power of two, at least 1M).
        #[arg(long, default_value = "4M")]
        extent: String,
    },
    /// Show volume groups: PVs, LVs, the LE→PE mapping and the dm tables.
    Show {
        /// Only this VG.
        name: Option<String>,
        /// Print JSON (the metadata as written on the PVs).
        #[arg(long)]
        json: bool,
    },
    /// Create the dm devices of every LV of a VG (after a reboot or re-attach).
    Activate {
        /// The VG.
        name: String,
    },
    /// Remove the dm devices of every LV of a VG.
    Deactivate {
        /// The VG.
        name: String,
    },
    /// Remove an empty VG: wipe its PVs' labels.
    Rm {
        /// The VG.
        name: String,
    },
}

/// `lv ...`.
#[derive(Subcommand, Debug)]
pub enum LvCmd {
    /// Create and activate a logical volume.
    Create {
        /// VG/NAME.
        path: String,
        /// Its size (a multiple of the extent size).
        #[arg(long)]
        size: String,
        /// Stripe over this many PVs (dm-striped).
        #[arg(long, value_name = "N")]
        stripes: Option<usize>,
        /// Stripe chunk size.
        #[arg(long, default_value = "64K")]
        stripe_size: String,
        /// Keep two copies on two PVs (dm-mirror).
        #[arg(long, conflicts_with = "stripes")]
        mirror: bool,
    },
    /// Grow a linear LV, live (suspend, load, resume).
    Extend {
        /// VG/NAME.
        path: String,
        /// New size, or +SIZE to add.
        #[arg(long, allow_hyphen_values = true)]
        size: String,
    },
    /// Remove a logical volume.
    Rm {
        /// VG/NAME.
        path: String,
    },
}

/// `snap ...`.
#[derive(Subcommand, Debug)]
pub enum SnapCmd {
    /// Snapshot VG/LV as VG/NAME with a COW store of --size.
    Create {
        /// The origin, VG/LV.
        origin: String,
        /// The snapshot's name.
        name: String,
        /// Size of the COW store (a multiple of the extent size, at most the origin's).
        #[arg(long)]
        size: String,
        /// Chunk: the unit copied on first write (power of two, 4K to 512K).
        #[arg(long, default_value = "8K")]
        chunk: String,
    },
    /// COW usage of snapshots (like `lvs` Data%), and whether they are still valid.
    Status {
        /// Only this VG (or VG/SNAPSHOT).
        path: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge a snapshot back into its origin (the origin returns to the snapshot's state).
    Merge {
        /// VG/SNAPSHOT.
        path: String,
    },
    /// Remove a snapshot.
    Rm {
        /// VG/SNAPSHOT.
        path: String,
    },
}

/// `thin ...`.
#[derive(Subcommand, Debug)]
pub enum ThinCmd {
    /// Pools.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Create a thin volume (it may be larger than the pool).
    Create {
        /// The pool.
        pool: String,
        /// The volume's name (device POOL-NAME).
        name: String,
        /// Its virtual size.
        #[arg(long)]
        size: String,
    },
    /// Snapshot a thin volume (a message to the pool: O(1), nothing copied).
    Snap {
        /// The pool.
        pool: String,
        /// The volume to snapshot.
        origin: String,
        /// The snapshot's name.
        name: String,
    },
    /// Used and total data and metadata blocks of pools, mapped sectors of volumes.
    Status {
        /// Only this pool.
        pool: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a thin volume and free its blocks.
    Rm {
        /// The pool.
        pool: String,
        /// The volume.
        name: String,
    },
}

/// `thin pool ...`.
#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Create a thin pool over a data and a metadata device.
    Create {
        /// Its name (/dev/mapper/NAME).
        name: String,
        /// The data device (a block device, or VG/LV).
        #[arg(long)]
        data: String,
        /// The metadata device (a block device, or VG/LV).
        #[arg(long)]
        meta: String,
        /// Block size (multiple of 64K).
        #[arg(long, default_value = "64K")]
        block: String,
        /// When the pool is full, fail writes at once instead of queueing them.
        #[arg(long)]
        error_if_no_space: bool,
    },
    /// Remove a thin pool (its volumes must be removed first).
    Rm {
        /// The pool.
        name: String,
    },
}

impl Cli {
    /// lvm-snap runs no command for the user: its failures exit 1.
    pub fn role(&self) -> Role {
        Role::Tool
    }
}

/// Run `lvm-snap` as the command line asked.
pub fn run(cli: Cli) -> Result<Exit> {
    let k = cli.common.kernel(TOOL)?;
    let mut o = String::new();
    match cli.sub {
        Sub::Loop(c) => match c {
            LoopCmd::Attach { file, size, create, autoclear, read_only } => {
                if create {
                    let sectors = parse_size(size.as_deref().unwrap_or_default())?;
                    loopdev::create_file(&k, &file, sectors)?;
                }
                let dev = loopdev::attach(&k, &file, &loopdev::LoopSpec { read_only, autoclear })?;
                let _ = writeln!(o, "{}", dev.display());
            }
            LoopCmd::Detach { dev } => loopdev::detach(&k, &dev)?,
            LoopCmd::Ls { json } => {
                let devs = loopdev::list(&k)?;
                if json {
                    let _ = writeln!(o, "{}", serde_json::to_string_pretty(&devs).unwrap_or_default());
                } else {
                    let _ = writeln!(o, "{:<12} {:>10} {:<9} {:<10} FILE", "DEVICE", "SIZE", "AUTOCLEAR", "HOLDERS");
                    for d in devs {
                        let holders = if d.holders.is_empty() { "-".into() } else { d.holders.join(",") };
                        let _ = writeln!(
                            o,
                            "{:<12} {:>10} {:<9} {:<10} {}",
                            d.dev,
                            human(d.sectors),
                            if d.autoclear { "yes" } else { "no" },
                            holders,
                            d.backing_file
                        );
                    }
                }
            }
        },
        Sub::Pv(PvCmd::Init { dev }) => {
            let id = lvm::pv_init(&k, &dev)?;
            let _ = writeln!(o, "{} {id}", dev.display());
        }
        Sub::Pv(PvCmd::Move { dev, to }) => {
            let moved = lvm::pv_move(&k, &dev, to.as_deref())?;
            let _ = writeln!(o, "{} {}", dev.display(), if moved == 0 { "empty already" } else { "emptied" });
        }
        Sub::Vg(c) => vg(&k, c, &mut o)?,
        Sub::Lv(c) => lv(&k, c, &mut o)?,
        Sub::Snap(c) => snap_cmd(&k, c, &mut o)?,
        Sub::Thin(c) => thin_cmd(&k, c, &mut o)?,
        Sub::Table(a) => show(&k, &a, true, &mut o)?,
        Sub::Status(a) => show(&k, &a, false, &mut o)?,
    }
    emit(&mut o)?;
    Ok(Exit::Ok)
}

/// Write what `o` holds on stdout (the tool's own output), and empty it.
fn emit(o: &mut String) -> Result<()> {
    std::io::stdout().lock().write_all(o.as_bytes()).map_err(Error::Output)?;
    o.clear();
    Ok(())
}

fn vg_text(o: &mut String, vg: &Vg) {
    let _ = writeln!(o, "VG {}  extent {}  seqno {}", vg.name, human(vg.extent), vg.seqno);
    for pv in &vg.pvs {
        let _ = writeln!(o, "  PV {:<12} {}  {} PE, {} free", pv.dev, pv.id, pv.pe_count, vg.free(pv));
    }
    for lv in &vg.lvs {
        let what = match &lv.snapshot {
            Some(s) => format!("snapshot of {}, chunk {}", s.origin, human(s.chunk)),
            None => lv.segments.first().map(|s| s.kind().to_string()).unwrap_or_default(),
        };
        let _ = writeln!(o, "  LV {:<12} {:>10}  {}", lv.name, human(lv.extents() * vg.extent), what);
        for row in meta::mapping_rows(vg, lv) {
            let _ = writeln!(o, "    {row}");
        }
    }
}

fn vg(k: &crate::kernel::Kernel, c: VgCmd, o: &mut String) -> Result<()> {
    match c {
        VgCmd::Create { name, pvs, extent } => {
            let spec = lvm::VgSpec { name, pvs, extent: parse_size(&extent)? };
            vg_text(o, &lvm::vg_create(k, &spec)?);
        }
        VgCmd::Show { name, json } => {
            let reports = lvm::vg_show(k, name.as_deref())?;
            if json {
                let all: Vec<serde_json::Value> =
                    reports.iter().map(|r| serde_json::to_value(&r.vg).unwrap_or_default()).collect();
                let _ = writeln!(o, "{}", serde_json::to_string_pretty(&all).unwrap_or_default());
            } else {
                for r in &reports {
                    vg_text(o, &r.vg);
                    for (dev, table) in &r.tables {
                        for line in table {
                            let _ = writeln!(o, "    dm {dev:<24} {}", line.line());
                        }
                    }
                }
            }
        }
        VgCmd::Activate { name } => {
            for dev in lvm::vg_activate(k, &name)? {
                let _ = writeln!(o, "{}", dev.display());
            }
        }
        VgCmd::Deactivate { name } => lvm::vg_deactivate(k, &name)?,
        VgCmd::Rm { name } => lvm::vg_remove(k, &name)?,
    }
    Ok(())
}

fn lv(k: &crate::kernel::Kernel, c: LvCmd, o: &mut String) -> Result<()> {
    match c {
        LvCmd::Create { path, size, stripes, stripe_size, mirror } => {
            let (vg, name) = meta::split_path(&path)?;
            let sectors = parse_size(&size)?;
            let chunk = parse_size(&stripe_size)?;
            let layout = match (stripes, mirror) {
                (Some(stripes), _) => lvm::Layout::Striped { stripes, chunk },
                (None, true) => lvm::Layout::Mirror,
                (None, false) => lvm::Layout::Linear,
            };
            let spec = lvm::LvSpec { vg: vg.into(), name: name.into(), sectors, layout };
            let _ = writeln!(o, "{}", lvm::lv_create(k, &spec)?.display());
        }
        LvCmd::Extend { path, size } => {
            let (vg, name) = meta::split_path(&path)?;
            let grow = match size.strip_prefix('+') {
                Some(add) => lvm::Grow::By(parse_size(add)?),
                None => lvm::Grow::To(parse_size(&size)?),
            };
            let (dev, sectors) = lvm::lv_extend(k, vg, name, grow)?;
            let _ = writeln!(o, "{} {}", dev.display(), human(sectors));
        }
        LvCmd::Rm { path } => {
            let (vg, name) = meta::split_path(&path)?;
            lvm::lv_remove(k, vg, name)?;
        }
    }
    Ok(())
}

fn snap_cmd(k: &crate::kernel::Kernel, c: SnapCmd, o: &mut String) -> Result<()> {
    match c {
        SnapCmd::Create { origin, name, size, chunk } => {
            let (vg, lv) = meta::split_path(&origin)?;
            meta::check_name("snapshot", &name)?;
            let sectors = parse_size(&size)?;
            let chunk = snap::parse_chunk(&chunk)?;
            let spec = snap::SnapSpec { vg: vg.into(), origin: lv.into(), name, sectors, chunk };
            let made = snap::create(k, &spec)?;
            if let Some(asked) = made.reduced_from {
                // lvcreate's warning, always shown (not a trace line).
                eprintln!(
                    "  Reducing COW size {} down to maximum usable size {}.",
                    meta::human(asked),
                    meta::human(made.cow_sectors)
                );
            }
            let _ = writeln!(o, "{}", made.dev.display());
        }
        SnapCmd::Status { path, json } => {
            let states = snap::status(k, path.as_deref())?;
            if json {
                let _ = writeln!(o, "{}", serde_json::to_string_pretty(&states).unwrap_or_default());
                return Ok(());
            }
            let _ = writeln!(
                o,
                "{:<20} {:<20} {:>8} {:>12} {:>12}  STATE",
                "SNAPSHOT", "ORIGIN", "DATA%", "USED", "COW SIZE"
            );
            for s in &states {
                let pct = if s.total > 0 { 100.0 * s.used as f64 / s.total as f64 } else { 0.0 };
                let _ = writeln!(
                    o,
                    "{:<20} {:<20} {:>7.2}% {:>12} {:>12}  {}",
                    s.name,
                    s.origin,
                    pct,
                    human(s.used),
                    human(s.total),
                    s.state
                );
                if s.state == "Invalid" {
                    let _ = writeln!(
                        o,
                        "  {} is invalid: its COW store filled up, so it can no longer tell the origin's old data; remove it (snap rm {})",
                        s.name, s.name
                    );
                }
            }
        }
        SnapCmd::Merge { path } => {
            let origin = snap::merge(k, &path)?;
            let _ = writeln!(o, "{path} merged into {origin}");
        }
        SnapCmd::Rm { path } => snap::remove(k, &path)?,
    }
    Ok(())
}

fn thin_cmd(k: &crate::kernel::Kernel, c: ThinCmd, o: &mut String) -> Result<()> {
    match c {
        ThinCmd::Pool(PoolCmd::Create { name, data, meta: meta_dev, block, error_if_no_space }) => {
            let spec = thin::PoolSpec {
                name,
                data: thin::dev_path(&data),
                meta: thin::dev_path(&meta_dev),
                block: parse_size(&block)?,
                error_if_no_space,
            };
            spec.check()?;
            let dm = Dm::open(k)?;
            let _ = writeln!(o, "{}", thin::pool_create(&dm, &spec)?.display());
        }
        ThinCmd::Pool(PoolCmd::Rm { name }) => thin::pool_remove(&Dm::open(k)?, &name)?,
        ThinCmd::Create { pool, name, size } => {
            meta::check_name("thin volume", &name)?;
            let sectors = parse_size(&size)?;
            let v = thin::volume_create(&Dm::open(k)?, &pool, &name, sectors)?;
            let _ = writeln!(o, "{}", v.dev.display());
        }
        ThinCmd::Snap { pool, origin, name } => {
            meta::check_name("thin volume", &name)?;
            let v = thin::volume_snapshot(&Dm::open(k)?, &pool, &origin, &name)?;
            let _ = writeln!(o, "{}", v.dev.display());
        }
        ThinCmd::Status { pool, json } => {
            let reports = thin::status(&Dm::open(k)?, pool.as_deref())?;
            if json {
                let all: Vec<serde_json::Value> = reports
                    .iter()
                    .map(|r| {
                        let vols: Vec<serde_json::Value> = r
                            .volumes
                            .iter()
                            .map(
                                |v| serde_json::json!({"name": v.name, "id": v.id, "size": v.size, "mapped": v.mapped}),
                            )
                            .collect();
                        serde_json::json!({"pool": r.pool, "block": r.block, "status": r.status, "volumes": vols})
                    })
                    .collect();
                let _ = writeln!(o, "{}", serde_json::to_string_pretty(&all).unwrap_or_default());
                return Ok(());
            }
            for r in &reports {
                thin_text(o, r);
            }
        }
        ThinCmd::Rm { pool, name } => thin::volume_remove(&Dm::open(k)?, &pool, &name)?,
    }
    Ok(())
}

fn thin_text(o: &mut String, r: &thin::PoolReport) {
    let (p, st, block) = (&r.pool, &r.status, r.block);
    let pct = |a: u64, b: u64| if b > 0 { 100.0 * a as f64 / b as f64 } else { 0.0 };
    let _ = writeln!(
        o,
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
    if r.full() {
        let what = if st.when_full == "error_if_no_space" {
            "writes to unallocated blocks fail at once with ENOSPC (error_if_no_space)"
        } else {
            "writes to unallocated blocks are queued, and fail with ENOSPC after 60 s (no_space_timeout) (queue_if_no_space)"
        };
        let _ = writeln!(o, "  pool {p} is FULL: {what}; grow its data device and reload the pool, or remove volumes");
    }
    if st.needs_check {
        let _ = writeln!(o, "  pool {p} needs a check: remove it and run thin_check on its metadata device");
    }
    for v in &r.volumes {
        let _ = writeln!(
            o,
            // (`id {} size`: one space, as the earlier output that formatted a JSON value)
            "  {:<16} id {} size {:>10}  mapped {:>10} ({:.2}%)",
            v.name,
            v.id,
            human(v.size),
            human(v.mapped),
            pct(v.mapped, v.size)
        );
    }
}

/// `table` / `status`: every device (or one), as dmsetup prints them, each device's
/// lines printed as soon as the kernel gave them.
fn show(k: &crate::kernel::Kernel, a: &ShowArgs, table: bool, o: &mut String) -> Result<()> {
    let dm = Dm::open(k)?;
    if a.json {
        let v: Vec<serde_json::Value> = tables(&dm, a.name.as_deref(), table)?
            .iter()
            .map(|(n, lines)| serde_json::json!({"name": n, "lines": lines}))
            .collect();
        let _ = writeln!(o, "{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let names: Vec<String> = match &a.name {
        Some(n) => vec![n.clone()],
        None => dm.list()?.into_iter().map(|d| d.0).collect(),
    };
    for n in names {
        let lines = if table { dm.table(&n)? } else { dm.status(&n)? };
        let prefix = if a.name.is_some() { String::new() } else { format!("{n}: ") };
        if lines.is_empty() {
            let _ = writeln!(o, "{}", prefix.trim_end());
        }
        for l in lines {
            let _ = writeln!(o, "{prefix}{}", l.line());
        }
        emit(o)?;
    }
    Ok(())
}
