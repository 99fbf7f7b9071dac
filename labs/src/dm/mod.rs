//! # Device-mapper: what LVM asks of the kernel (`lvm-snap`)
//!
//! LVM is not in the kernel. The kernel has **device-mapper**: a driver that makes
//! virtual block devices (`/dev/dm-N`) whose sectors are sent elsewhere according to
//! a *table*, one line per range: `0 204800 linear 7:0 2048` says "sectors 0 to
//! 204799 of this device are sectors 2048... of device 7:0 (`/dev/loop0`)". A line
//! names a *target*, a kernel module that knows one way of mapping: `linear`,
//! `striped`, `mirror`, `snapshot`, `snapshot-origin`, `snapshot-merge`,
//! `thin-pool`, `thin`. LVM2 is a userspace program that keeps its bookkeeping on the
//! disks and turns it into tables. `lvm-snap` is a small LVM written so that you can
//! watch every request: each one is an `ioctl(2)` on `/dev/mapper/control`
//! carrying a `struct dm_ioctl`, printed decoded on stderr.
//!
//! ## A device's life: create, load, resume
//!
//! 1. `DM_DEV_CREATE {name: "vg0-data"}`: an empty device, with a number (253:N)
//!    but no table. Without udev nobody makes `/dev/mapper/vg0-data`, so we
//!    `mknod(2)` it, as libdevmapper does when udev is absent.
//! 2. `DM_TABLE_LOAD {table: ...}`: the kernel builds every target *now* (opening the
//!    devices the lines name, checking the arguments; a refusal is `EINVAL`, and the
//!    reason is in `dmesg`), into the *inactive* slot.
//! 3. `DM_DEV_SUSPEND` without the suspend flag, called "resume": the inactive table
//!    becomes live. Changing a live device is suspend (finish and flush I/O in flight,
//!    queue new I/O) → load → resume: the switch is atomic for whoever uses the
//!    device, which is how `lv extend` and `pv move` work on a mounted volume.
//!
//! ## PV, VG, LV and extents (`pv init`, `vg create`, `lv create`)
//!
//! A physical volume is a disk (here a loop device over a file) with a label.
//! A volume group cuts its PVs into *physical extents* (PE, 4 MiB by default); a
//! logical volume is a list of *logical extents* (LE), each mapped to one PE: that
//! LE→PE table is LVM's whole job, and `vg show` prints it next to the dm table it
//! becomes. The bookkeeping is written on the PVs themselves (format in [`meta`]):
//! after a reboot, `loop attach` the files again and `vg activate` finds everything.
//!
//! - striped (`--stripes 2`): the `striped` target spreads chunks over PVs, so
//!   reads and writes use both disks at once;
//! - mirrored (`--mirror`): the `mirror` target writes both legs and copies one leg
//!   onto the other in the background until they are in sync;
//! - `pv move PV`: the LV's segments on PV are remapped through a temporary `mirror`
//!   device whose legs are the old and the new place; once the kernel has copied
//!   everything, the LV's table is switched to the new place. The LV stays usable
//!   the whole time, as with LVM's pvmove.
//!
//! ## Snapshots: copy-on-write (`snap create`, `snap status`, `snap merge`)
//!
//! A snapshot S of A "stores the data of A from before S": its COW store (its own
//! extents) receives, before the first write to each chunk of A, the old content of
//! that chunk. Four devices do it, exactly as LVM builds them:
//!
//! | device | table |
//! |---|---|
//! | `vg0-data-real` | the extents of A (`linear ...`) |
//! | `vg0-data` | `snapshot-origin vg0-data-real`: reads pass through, a write first copies the old chunk to every snapshot's COW |
//! | `vg0-s1-cow` | the extents of S |
//! | `vg0-s1` | `snapshot vg0-data-real vg0-s1-cow P 8`: a chunk found in the COW comes from there, others from `-real` |
//!
//! The order matters: `vg0-data` is suspended while the snapshot is created, so no
//! write slips between "the snapshot exists" and "the origin copies before writing".
//! When the COW store fills, the snapshot becomes `Invalid`: it cannot say what the
//! old data was any more (size it for the writes expected, LVM's "10% of the
//! origin"). `snap merge` puts the old data back: the origin's table becomes
//! `snapshot-merge`, the kernel copies each chunk back and the status counts down;
//! then the origin goes back to a plain linear table. The origin must not be in use
//! (LVM waits for the next activation when it is).
//!
//! ## Thin provisioning (`thin pool create`, `thin create`, `thin snap`)
//!
//! A `thin-pool` target owns a data device cut in blocks (64 KiB) and a metadata
//! device holding, per thin volume, a B-tree from virtual block to data block.
//! Volumes are made by *messages* to the pool (`create_thin 0`), and a `thin`
//! target line (`thin POOL 0`) exposes one. A block is allocated on its first
//! write, so a 10 GiB volume can live in a 256 MiB pool (over-provisioning) until
//! the pool is full; then writes fail (`error_if_no_space`) or wait
//! (`queue_if_no_space`, the default, 60 s). `create_snap 1 0` makes volume 1 share
//! all of volume 0's blocks: a snapshot is O(1) whatever the size, since nothing is
//! copied until one side writes. docker's old `devicemapper` storage driver was
//! exactly this: a thin pool, one thin volume per image layer, each layer a thin
//! snapshot of its parent, each container a thin snapshot of its image.
//!
//! `table` and `status` print what `dmsetup table` and `dmsetup status` print.
//!
//! ## The operations
//!
//! The lab is a library; `lvm-snap` ([`cli`]) is one adapter over it. Each operation
//! takes plain data, prints nothing and returns what it made:
//!
//! | module | operations |
//! |---|---|
//! | [`loopdev`] | [`loopdev::create_file`], [`loopdev::attach`] → `/dev/loopN`, [`loopdev::detach`], [`loopdev::list`] → [`LoopDev`] |
//! | [`lvm`] | [`lvm::pv_init`], [`lvm::vg_create`] → [`meta::Vg`], [`lvm::vg_show`], [`lvm::vg_activate`], [`lvm::vg_deactivate`], [`lvm::vg_remove`], [`lvm::lv_create`], [`lvm::lv_extend`], [`lvm::lv_remove`], [`lvm::pv_move`] |
//! | [`snap`] | [`snap::create`], [`snap::status`] → [`snap::SnapState`], [`snap::merge`], [`snap::remove`] |
//! | [`thin`] | by id: [`thin::pool_create`], [`thin::create_thin`], [`thin::snapshot`], [`thin::activate`] → `/dev/mapper/NAME`, [`thin::deactivate`], [`thin::delete_thin`], [`thin::pool_remove`]; by name: [`thin::volume_create`] → [`thin::ThinVolume`], [`thin::volume_snapshot`], [`thin::volume_remove`], [`thin::status`] → [`thin::PoolReport`] |
//! | here | [`Dm`] (one open `/dev/mapper/control`: create, reload, remove, message...), [`tables`] |
//!
//! ## Dry runs
//!
//! `--dry-run` performs the queries and records the changes. Where there is no
//! device-mapper to ask (this lab's CI machine), queries cannot be made: they show as
//! `= ? (no device-mapper to ask)`, and the plan goes on as if what it needs existed
//! and the names it makes were free, which the trace says once. A dry run shows only
//! what it can know.

pub mod cli;
pub mod device;
pub mod loopdev;
pub mod lvm;
pub mod meta;
pub mod snap;
pub mod thin;

use std::path::{Path, PathBuf};

use crate::error::{Error, Hint, Result};
use crate::kernel::{Errno, Kernel};

pub use cli::{run, Cli};
pub use device::{DevFd, DmInfo, DmTarget, LoopDev};

/// The tool this lab is, as its trace and its messages name it.
pub const TOOL: &str = "lvm-snap";

/// Where mapped devices get their names.
pub const MAPPER_DIR: &str = "/dev/mapper";
/// Device-mapper's control file.
pub const CONTROL: &str = "/dev/mapper/control";

/// The kernel and an open `/dev/mapper/control`: what every dm operation needs.
pub struct Dm<'k> {
    /// The kernel layer.
    pub k: &'k Kernel,
    ctl: DevFd,
}

impl<'k> Dm<'k> {
    /// Open `/dev/mapper/control`. When it is missing, look in /proc/misc whether
    /// device-mapper is loaded (then make the node, as libdevmapper does), or say
    /// how to get it.
    pub fn open(k: &'k Kernel) -> Result<Dm<'k>> {
        let _s = k.scope(TOOL);
        let ctl = match k.why("every device-mapper request goes through this one file").dm_open() {
            Ok(c) => c,
            Err(e) if e.errno == Errno::ENOENT => {
                let misc = k.read_file(Path::new("/proc/misc")).unwrap_or_default();
                let minor = misc
                    .lines()
                    .find(|l| l.ends_with(" device-mapper"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|m| m.parse::<u32>().ok());
                let Some(minor) = minor else { return Err(not_available()) };
                k.note("device-mapper is loaded but /dev/mapper/control is missing (no udev): making it");
                if !k.exists(Path::new(MAPPER_DIR)) {
                    k.mkdir(Path::new(MAPPER_DIR), 0o755)?;
                }
                k.mknod_dev(Path::new(CONTROL), false, 10, minor)?;
                k.dm_open()?
            }
            Err(e) => {
                return Err(Error::from(e))
                    .hint(Errno::EACCES, "device-mapper requests need CAP_SYS_ADMIN: run lvm-snap as root")
            }
        };
        let dm = Dm { k, ctl };
        dm.k.dm_version(&dm.ctl)?;
        Ok(dm)
    }

    /// The node of a mapped device.
    pub fn node(name: &str) -> PathBuf {
        Path::new(MAPPER_DIR).join(name)
    }

    /// Whether the kernel can be asked (false in a dry run without device-mapper:
    /// lookups then answer "unknown").
    pub fn knows(&self) -> bool {
        self.ctl.is_real()
    }

    /// What the kernel knows of device `name`; None when there is none, or when a dry
    /// run has no device-mapper to ask ([`Dm::knows`]).
    pub fn info(&self, name: &str) -> Result<Option<DmInfo>> {
        match self.k.dm_info(&self.ctl, name) {
            Ok(i) => Ok(i),
            Err(e) if e.errno == Errno::ENXIO => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether device `name` exists: None when that cannot be known (a dry run
    /// without device-mapper).
    pub fn exists(&self, name: &str) -> Result<Option<bool>> {
        let i = self.info(name)?;
        Ok(if self.knows() { Some(i.is_some()) } else { None })
    }

    /// Whether no device `name` exists (a dry run that cannot know assumes so).
    pub fn free_name(&self, name: &str) -> Result<bool> {
        Ok(self.exists(name)? != Some(true))
    }

    /// `major:minor` of device `name`, as tables name devices. A dry run that cannot
    /// know the number names the device by its node, `/dev/mapper/NAME`, which a
    /// table accepts too.
    pub fn devnum(&self, name: &str) -> Result<String> {
        match (self.info(name)?, self.knows()) {
            (Some(i), _) => Ok(format!("{}:{}", i.major, i.minor)),
            (None, false) => Ok(Dm::node(name).to_string_lossy().into_owned()),
            (None, true) => Err(Error::failed(
                format!("the mapped device {name} does not exist"),
                "activate its volume group first: lvm-snap vg activate VG",
            )),
        }
    }

    /// Create `name`, load `table`, resume, make its node. On failure, nothing is left.
    pub fn create(&self, name: &str, uuid: &str, table: &[DmTarget]) -> Result<DmInfo> {
        let info = self
            .k
            .why("a new mapped device; it has a number but maps nothing yet")
            .dm_create(&self.ctl, name, uuid)
            .hint(Errno::EBUSY, &format!("a device named {name} already exists: `lvm-snap table` lists them"))?;
        let rest = (|| -> Result<()> {
            self.k
                .why("the kernel builds the targets now, into the inactive slot")
                .dm_load(&self.ctl, name, table)
                .map_err(load_hint)?;
            self.k.why("make the loaded table live").dm_resume(&self.ctl, name)?;
            self.k
                .why("no udev here: name the device in /dev/mapper ourselves, as libdevmapper does without udev")
                .mknod_dev(&Dm::node(name), true, info.major, info.minor)?;
            Ok(())
        })();
        match rest {
            Ok(_) => Ok(info),
            Err(e) => {
                let _ = self.k.why("undo: remove the half-made device").dm_remove(&self.ctl, name);
                let _ = self.k.unlink(&Dm::node(name));
                Err(e)
            }
        }
    }

    /// Switch the live table of `name`: suspend, load, resume. If the kernel refuses
    /// the new table, the old one is resumed unchanged.
    pub fn reload(&self, name: &str, table: &[DmTarget]) -> Result<()> {
        self.k
            .why("finish and flush the I/O in flight, queue new I/O: the switch will be atomic")
            .dm_suspend(&self.ctl, name)?;
        if let Err(e) = self.k.why("the new table, into the inactive slot").dm_load(&self.ctl, name, table) {
            let _ = self.k.why("undo: the old table is still live, let I/O flow again").dm_resume(&self.ctl, name);
            return Err(load_hint(e));
        }
        self.k.why("swap in the new table and release the queued I/O").dm_resume(&self.ctl, name)?;
        Ok(())
    }

    /// Suspend `name`.
    pub fn suspend(&self, name: &str) -> Result<()> {
        self.k.dm_suspend(&self.ctl, name)?;
        Ok(())
    }

    /// Resume `name`.
    pub fn resume(&self, name: &str) -> Result<()> {
        self.k.dm_resume(&self.ctl, name)?;
        Ok(())
    }

    /// Load a table into the inactive slot of `name` (made live by [`Dm::resume`]).
    pub fn load(&self, name: &str, table: &[DmTarget]) -> Result<()> {
        self.k.dm_load(&self.ctl, name, table).map_err(load_hint)
    }

    /// Remove `name` and its node.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.k.why("destroy the mapped device").dm_remove(&self.ctl, name).hint(
            Errno::EBUSY,
            &format!(
                "{name} is in use (mounted, or under another mapped device): unmount it or remove what uses it first"
            ),
        )?;
        match self.k.why("its /dev/mapper name goes with it").unlink(&Dm::node(name)) {
            Err(e) if e.errno != Errno::ENOENT => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Send a message to the target at sector 0 of `name`.
    pub fn message(&self, name: &str, msg: &str) -> Result<Option<String>> {
        Ok(self.k.dm_message(&self.ctl, name, 0, msg)?)
    }

    /// The status lines of `name`.
    pub fn status(&self, name: &str) -> Result<Vec<DmTarget>> {
        Ok(self.k.dm_status(&self.ctl, name)?.1)
    }

    /// The live table of `name`.
    pub fn table(&self, name: &str) -> Result<Vec<DmTarget>> {
        Ok(self.k.dm_table(&self.ctl, name)?.1)
    }

    /// Every mapped device, sorted by name.
    pub fn list(&self) -> Result<Vec<(String, u32, u32)>> {
        let mut v = self.k.dm_list(&self.ctl)?;
        v.sort();
        Ok(v)
    }
}

/// The error for a kernel without device-mapper.
pub fn not_available() -> Error {
    Error::failed(
        "device-mapper is not available in this kernel (no /dev/mapper/control, no device-mapper in /proc/misc)",
        "load it with `modprobe dm_mod` (plus dm_snapshot, dm_thin_pool, dm_mirror for snapshots, thin pools and mirrors), \
         or boot a kernel built with CONFIG_BLK_DEV_DM; contlab's own tests run lvm-snap in a VM for this reason (tests/vm/run)",
    )
}

fn load_hint(e: crate::kernel::SysError) -> Error {
    Err::<(), _>(e).hint(
        Errno::EINVAL,
        "the kernel refused the table: `dmesg | tail` gives the target's reason (a missing module: modprobe dm_snapshot, dm_thin_pool or dm_mirror; a device in use; a size that does not fit)",
    ).hint(Errno::ENXIO, "a device named in the table is gone")
    .expect_err("built from an error")
}

/// The live tables (`table`: what `dmsetup table` prints) or the status lines
/// (what `dmsetup status` prints) of device `name`, or of every mapped device by name.
pub fn tables(dm: &Dm, name: Option<&str>, table: bool) -> Result<Vec<(String, Vec<DmTarget>)>> {
    let _s = dm.k.scope(TOOL);
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => dm.list()?.into_iter().map(|d| d.0).collect(),
    };
    let mut out = Vec::new();
    for n in names {
        let lines = if table { dm.table(&n)? } else { dm.status(&n)? };
        out.push((n, lines));
    }
    Ok(out)
}
