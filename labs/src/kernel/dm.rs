//! Device-mapper and loop devices: the ioctls of the `dm` lab (`lvm-snap`), and the
//! device nodes udev would otherwise make.
//!
//! Device-mapper has one door, the character device `/dev/mapper/control`, and one
//! argument structure for every request: `struct dm_ioctl` (312 bytes: a version,
//! the device's name and uuid, flags, and a data area after it holding the table
//! lines, a target message or the kernel's answer). The request is chosen by the
//! ioctl number: `DM_DEV_CREATE`, `DM_TABLE_LOAD`, `DM_DEV_SUSPEND`...
//! (`include/uapi/linux/dm-ioctl.h`). Loop devices are driven by ioctls too: on
//! `/dev/loop-control` to find a free one, then on `/dev/loopN` itself.
//!
//! These are contlab's own bindings, not the `devicemapper` crate: that crate hides
//! some requests (a `DM_VERSION` when it starts, status reads inside helpers) and
//! builds its structures with bindgen; here every ioctl is one call below, so every
//! ioctl is one trace event that shows its decoded structure.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode as Perm, SFlag};

use super::errno_of;
use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};
use crate::dm::device::{DevFd, DmInfo, DmTarget};

/// The device-mapper control file.
pub const DM_CONTROL: &str = "/dev/mapper/control";

const DM_IOCTL_SIZE: usize = 312;
const DM_NAME_LEN: usize = 128;
const DM_UUID_LEN: usize = 129;
/// The interface version we speak: major 4 (the only one), minor 0 (anything newer
/// the kernel has is a superset).
const DM_VERSION: [u32; 3] = [4, 0, 0];

const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_SUSPEND_FLAG: u32 = 1 << 1;
const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
const DM_INACTIVE_PRESENT_FLAG: u32 = 1 << 6;
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
const DM_DATA_OUT_FLAG: u32 = 1 << 16;

const DM_FLAGS: &[(u64, &str)] = &[
    (1 << 0, "DM_READONLY_FLAG"),
    (1 << 1, "DM_SUSPEND_FLAG"),
    (1 << 3, "DM_PERSISTENT_DEV_FLAG"),
    (1 << 4, "DM_STATUS_TABLE_FLAG"),
    (1 << 5, "DM_ACTIVE_PRESENT_FLAG"),
    (1 << 6, "DM_INACTIVE_PRESENT_FLAG"),
    (1 << 8, "DM_BUFFER_FULL_FLAG"),
    (1 << 10, "DM_SKIP_LOCKFS_FLAG"),
    (1 << 11, "DM_NOFLUSH_FLAG"),
    (1 << 13, "DM_UEVENT_GENERATED_FLAG"),
    (1 << 16, "DM_DATA_OUT_FLAG"),
];

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn dm_nr(nr: u64) -> u64 {
    (3 << 30) | ((DM_IOCTL_SIZE as u64) << 16) | (0xfd << 8) | nr
}
const DM_VERSION_CMD: u64 = dm_nr(0);
const DM_LIST_DEVICES_CMD: u64 = dm_nr(2);
const DM_DEV_CREATE_CMD: u64 = dm_nr(3);
const DM_DEV_REMOVE_CMD: u64 = dm_nr(4);
const DM_DEV_SUSPEND_CMD: u64 = dm_nr(6);
const DM_DEV_STATUS_CMD: u64 = dm_nr(7);
const DM_TABLE_LOAD_CMD: u64 = dm_nr(9);
const DM_TABLE_CLEAR_CMD: u64 = dm_nr(10);
const DM_TABLE_DEPS_CMD: u64 = dm_nr(11);
const DM_TABLE_STATUS_CMD: u64 = dm_nr(12);
const DM_LIST_VERSIONS_CMD: u64 = dm_nr(13);
const DM_TARGET_MSG_CMD: u64 = dm_nr(14);

const LOOP_CLR_FD: u64 = 0x4C01;
const LOOP_CONFIGURE: u64 = 0x4C0A;
const LOOP_CTL_GET_FREE: u64 = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS: &[(u64, &str)] =
    &[(1, "LO_FLAGS_READ_ONLY"), (4, "LO_FLAGS_AUTOCLEAR"), (8, "LO_FLAGS_PARTSCAN"), (16, "LO_FLAGS_DIRECT_IO")];
/// `_IOR(0x12, 114, size_t)`.
const BLKGETSIZE64: u64 = 0x8008_1272;

/// Minors handed out by dry runs (no kernel to give real ones).
static FAKE_MINOR: AtomicU32 = AtomicU32::new(0);

fn raw(dev: &DevFd) -> Result<i32, Errno> {
    dev.fd.as_ref().map(|f| f.as_raw_fd()).ok_or(Errno::EBADF)
}

/// `ioctl(2)` with a pointer argument.
fn ioctl_ptr(fd: i32, nr: u64, arg: *mut u8) -> Result<i32, Errno> {
    // SAFETY: `arg` points to a buffer at least as large as the structure `nr` names
    // (callers build it so), valid for the duration of the call.
    let r = unsafe { libc::ioctl(fd, nr as _, arg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// The kernel's `huge_encode_dev` in reverse: dev_t → (major, minor).
fn decode_dev(dev: u64) -> (u32, u32) {
    (((dev >> 8) & 0xfff) as u32, ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32)
}

/// A `struct dm_ioctl` followed by its data area, 8-byte aligned.
struct DmBuf(Vec<u64>);

impl DmBuf {
    fn new(name: &str, uuid: &str, flags: u32, target_count: u32, data: &[u8], cap: usize) -> DmBuf {
        let total = (DM_IOCTL_SIZE + data.len()).max(cap).div_ceil(8) * 8;
        let mut b = DmBuf(vec![0u64; total / 8]);
        let bytes = b.bytes_mut();
        for (i, v) in DM_VERSION.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        bytes[12..16].copy_from_slice(&(total as u32).to_ne_bytes());
        bytes[16..20].copy_from_slice(&(DM_IOCTL_SIZE as u32).to_ne_bytes());
        bytes[20..24].copy_from_slice(&target_count.to_ne_bytes());
        bytes[28..32].copy_from_slice(&flags.to_ne_bytes());
        let n = name.len().min(DM_NAME_LEN - 1);
        bytes[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
        let u = uuid.len().min(DM_UUID_LEN - 1);
        bytes[176..176 + u].copy_from_slice(&uuid.as_bytes()[..u]);
        bytes[DM_IOCTL_SIZE..DM_IOCTL_SIZE + data.len()].copy_from_slice(data);
        b
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: a Vec<u64> is a valid, initialised byte buffer of 8x its length.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr() as *const u8, self.0.len() * 8) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr() as *mut u8, self.0.len() * 8) }
    }
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.bytes()[off..off + 4].try_into().unwrap())
    }
    fn u64_at(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.bytes()[off..off + 8].try_into().unwrap())
    }
    fn cstr_at(&self, off: usize, max: usize) -> String {
        let b = &self.bytes()[off..(off + max).min(self.bytes().len())];
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    }
    fn flags(&self) -> u32 {
        self.u32_at(28)
    }
    fn data_start(&self) -> usize {
        self.u32_at(16) as usize
    }
    fn info(&self) -> DmInfo {
        let (major, minor) = decode_dev(self.u64_at(40));
        let flags = self.flags();
        DmInfo {
            name: self.cstr_at(48, DM_NAME_LEN),
            uuid: self.cstr_at(176, DM_UUID_LEN),
            major,
            minor,
            open_count: self.u32_at(24) as i32,
            target_count: self.u32_at(20),
            event_nr: self.u32_at(32),
            suspended: flags & DM_SUSPEND_FLAG != 0,
            active: flags & DM_ACTIVE_PRESENT_FLAG != 0,
            inactive_table: flags & DM_INACTIVE_PRESENT_FLAG != 0,
            read_only: flags & DM_READONLY_FLAG != 0,
        }
    }
    /// The `struct dm_target_spec` records the kernel wrote after the header; their
    /// `next` fields are offsets from the start of the data area.
    fn targets(&self) -> Vec<DmTarget> {
        let start = self.data_start();
        let mut out = Vec::new();
        let mut off = start;
        for _ in 0..self.u32_at(20) {
            if off + 40 > self.bytes().len() {
                break;
            }
            out.push(DmTarget {
                start: self.u64_at(off),
                length: self.u64_at(off + 8),
                target: self.cstr_at(off + 24, 16),
                params: self.cstr_at(off + 40, self.bytes().len() - off - 40),
            });
            off = start + self.u32_at(off + 20) as usize;
        }
        out
    }
}

/// The table lines as `struct dm_target_spec` records for `DM_TABLE_LOAD`: each
/// 40-byte header is followed by its parameter string, and its `next` field is the
/// distance to the next record.
fn encode_table(table: &[DmTarget]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in table {
        let len = (40 + t.params.len() + 1).div_ceil(8) * 8;
        let mut rec = vec![0u8; len];
        rec[0..8].copy_from_slice(&t.start.to_ne_bytes());
        rec[8..16].copy_from_slice(&t.length.to_ne_bytes());
        rec[20..24].copy_from_slice(&(len as u32).to_ne_bytes());
        let n = t.target.len().min(15);
        rec[24..24 + n].copy_from_slice(&t.target.as_bytes()[..n]);
        rec[40..40 + t.params.len()].copy_from_slice(t.params.as_bytes());
        out.extend(rec);
    }
    out
}

/// `{name: "snap", table: "0 2048 snapshot 7:0 7:1 P 8"}`: the decoded request.
fn shown(name: &str, extra: &[(&str, String)]) -> String {
    let mut parts = Vec::new();
    if !name.is_empty() {
        parts.push(format!("name: {}", quote(name, DM_NAME_LEN)));
    }
    for (k, v) in extra {
        parts.push(format!("{k}: {v}"));
    }
    format!("{{{}}}", parts.join(", "))
}

fn table_shown(table: &[DmTarget]) -> String {
    match table {
        [one] => quote(&one.line(), 512),
        many => format!("[{}]", many.iter().map(|t| quote(&t.line(), 512)).collect::<Vec<_>>().join(", ")),
    }
}

fn info_shown(i: &DmInfo) -> String {
    let mut s = format!("0 {{dev: {}:{}, open_count: {}", i.major, i.minor, i.open_count);
    if i.suspended {
        s.push_str(", suspended");
    }
    if i.inactive_table {
        s.push_str(", inactive table");
    }
    s.push('}');
    s
}

/// One DM request: its trace description and ioctl number.
struct DmReq<'a> {
    call: &'a Call,
    nr: u64,
    name: &'a str,
    uuid: &'a str,
    flags: u32,
    target_count: u32,
    data: Vec<u8>,
    cap: usize,
    shown: Vec<(&'a str, String)>,
}

impl DmReq<'_> {
    fn new<'a>(call: &'a Call, nr: u64, name: &'a str) -> DmReq<'a> {
        DmReq { call, nr, name, uuid: "", flags: 0, target_count: 0, data: Vec::new(), cap: 0, shown: Vec::new() }
    }
}

impl Kernel {
    /// `openat(2)` on a device or the backing file of a loop device. `excl` asks for
    /// `O_EXCL`, which on a block device fails with `EBUSY` while anything (a mount,
    /// a device-mapper table) holds it.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    pub fn open_dev(&self, path: &Path, write: bool, excl: bool) -> Result<DevFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a device (or file) and get a descriptor for it",
            effect: Effect::Query,
        };
        let mut fl = if write { OFlag::O_RDWR } else { OFlag::O_RDONLY } | OFlag::O_CLOEXEC;
        if excl {
            fl |= OFlag::O_EXCL;
        }
        let shown = path.to_string_lossy().into_owned();
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), quote(&shown, 256), flags::open_flags(fl.bits())],
            || unreachable!(),
            || Ok(DevFd { fd: Some(nix::fcntl::open(path, fl, Perm::empty())?), path: shown.clone() }),
            |f| f.fd.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_default(),
        )
    }

    /// `openat(2)` on `/dev/mapper/control`, device-mapper's one door. In a dry run on
    /// a machine without device-mapper, the requests are still shown, against a
    /// control file that is not there.
    /// <https://docs.kernel.org/admin-guide/device-mapper/index.html>
    pub fn dm_open(&self) -> Result<DevFd, SysError> {
        match self.open_dev(Path::new(DM_CONTROL), true, false) {
            Err(_) if self.mode() == super::Mode::DryRun => {
                self.note("no device-mapper here: the dry run shows the requests without a kernel to answer them");
                Ok(DevFd { fd: None, path: DM_CONTROL.into() })
            }
            r => r,
        }
    }

    /// One DM ioctl: build the `struct dm_ioctl`, make the call, return the buffer
    /// the kernel filled. On a control file a dry run could not open, queries are
    /// recorded like changes (there is no kernel to ask).
    fn dm_call(&self, ctl: &DevFd, req: DmReq<'_>) -> Result<Option<DmBuf>, SysError> {
        let fake;
        let call = if ctl.fd.is_none() && req.call.effect == Effect::Query {
            fake = Call { effect: Effect::Change, ..*req.call };
            &fake
        } else {
            req.call
        };
        let args = vec![ctl.path.clone(), call.name.to_string(), shown(req.name, &req.shown)];
        let io = Call { name: "ioctl", ..*call };
        let nr = req.nr;
        self.perform_out(
            &io,
            args,
            || None,
            || {
                let mut buf = DmBuf::new(req.name, req.uuid, req.flags, req.target_count, &req.data, req.cap);
                ioctl_ptr(raw(ctl)?, nr, buf.bytes_mut().as_mut_ptr())?;
                if buf.flags() & DM_BUFFER_FULL_FLAG != 0 {
                    return Err(Errno::ENOBUFS);
                }
                Ok(Some(buf))
            },
            |b| match b {
                None => ("0".into(), None),
                Some(b) => (info_shown(&b.info()), None),
            },
        )
    }

    /// `ioctl(DM_VERSION)` — the device-mapper interface version of this kernel.
    /// <https://docs.kernel.org/admin-guide/device-mapper/index.html>
    pub fn dm_version(&self, ctl: &DevFd) -> Result<[u32; 3], SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_VERSION",
            man: "dmsetup(8)",
            what: "ask device-mapper which version of its ioctl interface this kernel speaks",
            effect: Effect::Query,
        };
        let b = self.dm_call(ctl, DmReq::new(&C, DM_VERSION_CMD, ""))?;
        Ok(b.map(|b| [b.u32_at(0), b.u32_at(4), b.u32_at(8)]).unwrap_or(DM_VERSION))
    }

    /// `ioctl(DM_LIST_DEVICES)` — every mapped device: (name, major, minor).
    pub fn dm_list(&self, ctl: &DevFd) -> Result<Vec<(String, u32, u32)>, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_LIST_DEVICES",
            man: "dmsetup(8)",
            what: "list every device-mapper device (what `dmsetup ls` prints)",
            effect: Effect::Query,
        };
        let mut req = DmReq::new(&C, DM_LIST_DEVICES_CMD, "");
        req.cap = 64 * 1024;
        let Some(b) = self.dm_call(ctl, req)? else { return Ok(Vec::new()) };
        // struct dm_name_list { u64 dev; u32 next; char name[]; }, next relative.
        let mut out = Vec::new();
        let mut off = b.data_start();
        loop {
            let dev = b.u64_at(off);
            if dev == 0 {
                break;
            }
            let (ma, mi) = decode_dev(dev);
            out.push((b.cstr_at(off + 12, DM_NAME_LEN), ma, mi));
            let next = b.u32_at(off + 8) as usize;
            if next == 0 {
                break;
            }
            off += next;
        }
        Ok(out)
    }

    /// `ioctl(DM_LIST_VERSIONS)` — the target types the kernel has loaded
    /// (`linear`, `snapshot`, `thin-pool`...), with their versions.
    pub fn dm_targets(&self, ctl: &DevFd) -> Result<Vec<(String, [u32; 3])>, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_LIST_VERSIONS",
            man: "dmsetup(8)",
            what: "list the target types the kernel knows (loaded modules), as `dmsetup targets`",
            effect: Effect::Query,
        };
        let mut req = DmReq::new(&C, DM_LIST_VERSIONS_CMD, "");
        req.cap = 16 * 1024;
        let Some(b) = self.dm_call(ctl, req)? else { return Ok(Vec::new()) };
        // struct dm_target_versions { u32 next; u32 version[3]; char name[]; }
        let mut out = Vec::new();
        let mut off = b.data_start();
        while off + 16 < b.bytes().len() {
            let name = b.cstr_at(off + 16, 64);
            if name.is_empty() {
                break;
            }
            out.push((name, [b.u32_at(off + 4), b.u32_at(off + 8), b.u32_at(off + 12)]));
            let next = b.u32_at(off) as usize;
            if next == 0 {
                break;
            }
            off += next;
        }
        Ok(out)
    }

    /// `ioctl(DM_DEV_CREATE)` — make a new mapped device, with no table yet: the
    /// kernel gives it a minor (`/dev/dm-N`); it accepts no I/O until a table is
    /// loaded and resumed.
    pub fn dm_create(&self, ctl: &DevFd, name: &str, uuid: &str) -> Result<DmInfo, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_CREATE",
            man: "dmsetup(8)",
            what: "create an empty mapped device; it gets a block device number but no table yet",
            effect: Effect::Change,
        };
        let mut req = DmReq::new(&C, DM_DEV_CREATE_CMD, name);
        req.uuid = uuid;
        if !uuid.is_empty() {
            req.shown.push(("uuid", quote(uuid, DM_UUID_LEN)));
        }
        let b = self.dm_call(ctl, req)?;
        Ok(b.map(|b| b.info()).unwrap_or_else(|| DmInfo {
            name: name.into(),
            uuid: uuid.into(),
            major: 253,
            minor: FAKE_MINOR.fetch_add(1, Ordering::Relaxed),
            ..DmInfo::default()
        }))
    }

    /// `ioctl(DM_DEV_REMOVE)` — destroy a mapped device. Fails with `EBUSY` while it
    /// is open (mounted, or used by another mapped device).
    pub fn dm_remove(&self, ctl: &DevFd, name: &str) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_REMOVE",
            man: "dmsetup(8)",
            what: "destroy a mapped device and its tables (refused while it is open)",
            effect: Effect::Change,
        };
        self.dm_call(ctl, DmReq::new(&C, DM_DEV_REMOVE_CMD, name)).map(|_| ())
    }

    /// `ioctl(DM_DEV_SUSPEND)` with `DM_SUSPEND_FLAG` — stop passing I/O down: wait
    /// for the I/O in flight, flush, and queue new I/O until resume. What makes a
    /// table switch (and a snapshot) atomic.
    pub fn dm_suspend(&self, ctl: &DevFd, name: &str) -> Result<DmInfo, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_SUSPEND",
            man: "dmsetup(8)",
            what: "suspend a mapped device: finish and flush the I/O in flight, queue new I/O",
            effect: Effect::Change,
        };
        let mut req = DmReq::new(&C, DM_DEV_SUSPEND_CMD, name);
        req.flags = DM_SUSPEND_FLAG;
        req.shown.push(("flags", flags::render(DM_SUSPEND_FLAG as u64, DM_FLAGS)));
        Ok(self.dm_call(ctl, req)?.map(|b| b.info()).unwrap_or_default())
    }

    /// `ioctl(DM_DEV_SUSPEND)` without `DM_SUSPEND_FLAG` — resume: a loaded
    /// (inactive) table becomes the live one, then queued I/O flows again.
    pub fn dm_resume(&self, ctl: &DevFd, name: &str) -> Result<DmInfo, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_SUSPEND",
            man: "dmsetup(8)",
            what: "resume a mapped device: swap in the table loaded last, if any, and let I/O flow",
            effect: Effect::Change,
        };
        Ok(self.dm_call(ctl, DmReq::new(&C, DM_DEV_SUSPEND_CMD, name))?.map(|b| b.info()).unwrap_or_default())
    }

    /// `ioctl(DM_TABLE_LOAD)` — load a table into the device's inactive slot. The
    /// kernel builds every target now (opening the devices they name); nothing
    /// changes for I/O until the next resume.
    pub fn dm_load(&self, ctl: &DevFd, name: &str, table: &[DmTarget]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TABLE_LOAD",
            man: "dmsetup(8)",
            what: "load a table into the inactive slot; it becomes live at the next resume",
            effect: Effect::Change,
        };
        let mut req = DmReq::new(&C, DM_TABLE_LOAD_CMD, name);
        req.target_count = table.len() as u32;
        req.data = encode_table(table);
        req.shown.push(("table", table_shown(table)));
        self.dm_call(ctl, req).map(|_| ())
    }

    /// `ioctl(DM_TABLE_CLEAR)` — drop a loaded but not yet live table (undo a load).
    pub fn dm_clear(&self, ctl: &DevFd, name: &str) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TABLE_CLEAR",
            man: "dmsetup(8)",
            what: "drop the inactive table that was loaded but not resumed",
            effect: Effect::Change,
        };
        self.dm_call(ctl, DmReq::new(&C, DM_TABLE_CLEAR_CMD, name)).map(|_| ())
    }

    /// `ioctl(DM_DEV_STATUS)` — what the kernel knows of one device (dev number,
    /// open count, suspended...). `ENXIO` when there is no such device.
    pub fn dm_info(&self, ctl: &DevFd, name: &str) -> Result<DmInfo, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_STATUS",
            man: "dmsetup(8)",
            what: "ask about one mapped device: its number, open count, state",
            effect: Effect::Query,
        };
        Ok(self.dm_call(ctl, DmReq::new(&C, DM_DEV_STATUS_CMD, name))?.map(|b| b.info()).unwrap_or_default())
    }

    fn dm_table_status(&self, ctl: &DevFd, name: &str, c: &Call, fl: u32) -> Result<(DmInfo, Vec<DmTarget>), SysError> {
        let mut req = DmReq::new(c, DM_TABLE_STATUS_CMD, name);
        req.flags = fl;
        req.cap = 64 * 1024;
        if fl != 0 {
            req.shown.push(("flags", flags::render(fl as u64, DM_FLAGS)));
        }
        let b = self.dm_call(ctl, req)?;
        let out = b.map(|b| (b.info(), b.targets())).unwrap_or_default();
        if !out.1.is_empty() {
            // The kernel's answer, shown as a note right after the call.
            let what = if fl & DM_STATUS_TABLE_FLAG != 0 { "table" } else { "status" };
            self.note(format!("{name} {what}: {}", table_shown(&out.1)));
        }
        Ok(out)
    }

    /// `ioctl(DM_TABLE_STATUS)` with `DM_STATUS_TABLE_FLAG` — the live table, as the
    /// kernel rebuilt it from its targets (`dmsetup table`).
    pub fn dm_table(&self, ctl: &DevFd, name: &str) -> Result<(DmInfo, Vec<DmTarget>), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TABLE_STATUS",
            man: "dmsetup(8)",
            what: "read a device's live table back from the kernel (`dmsetup table`)",
            effect: Effect::Query,
        };
        self.dm_table_status(ctl, name, &C, DM_STATUS_TABLE_FLAG)
    }

    /// `ioctl(DM_TABLE_STATUS)` — each target's status line (`dmsetup status`):
    /// COW usage of a snapshot, used blocks of a thin pool, sync state of a mirror.
    pub fn dm_status(&self, ctl: &DevFd, name: &str) -> Result<(DmInfo, Vec<DmTarget>), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TABLE_STATUS",
            man: "dmsetup(8)",
            what: "ask each target of a device for its status line (`dmsetup status`)",
            effect: Effect::Query,
        };
        self.dm_table_status(ctl, name, &C, 0)
    }

    /// `ioctl(DM_TABLE_DEPS)` — the block devices the live table uses (major, minor).
    pub fn dm_deps(&self, ctl: &DevFd, name: &str) -> Result<Vec<(u32, u32)>, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TABLE_DEPS",
            man: "dmsetup(8)",
            what: "list the devices a mapped device's table uses (`dmsetup deps`)",
            effect: Effect::Query,
        };
        let mut req = DmReq::new(&C, DM_TABLE_DEPS_CMD, name);
        req.cap = 16 * 1024;
        let Some(b) = self.dm_call(ctl, req)? else { return Ok(Vec::new()) };
        // struct dm_target_deps { u32 count; u32 padding; u64 dev[]; }
        let off = b.data_start();
        Ok((0..b.u32_at(off) as usize).map(|i| decode_dev(b.u64_at(off + 8 + 8 * i))).collect())
    }

    /// `ioctl(DM_TARGET_MSG)` — send a text message to the target at `sector`
    /// (`create_thin 0`, `create_snap 1 0` to a thin pool). Returns the target's
    /// reply, if it gave one.
    pub fn dm_message(&self, ctl: &DevFd, name: &str, sector: u64, msg: &str) -> Result<Option<String>, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_TARGET_MSG",
            man: "dmsetup(8)",
            what: "send a text message to a target (`dmsetup message`)",
            effect: Effect::Change,
        };
        let mut req = DmReq::new(&C, DM_TARGET_MSG_CMD, name);
        // struct dm_target_msg { u64 sector; char message[]; }
        let mut data = sector.to_ne_bytes().to_vec();
        data.extend(msg.as_bytes());
        data.push(0);
        req.data = data;
        req.cap = 4096;
        req.shown.push(("sector", sector.to_string()));
        req.shown.push(("message", quote(msg, 256)));
        let b = self.dm_call(ctl, req)?;
        Ok(b.filter(|b| b.flags() & DM_DATA_OUT_FLAG != 0).map(|b| b.cstr_at(b.data_start(), 4096)))
    }

    /// `mknod(2)` a device node, as libdevmapper does when no udev runs: a block
    /// node `/dev/mapper/NAME` for a mapped device, or the character node of
    /// `/dev/mapper/control` when the module is loaded but nothing made its node.
    /// <https://man7.org/linux/man-pages/man2/mknod.2.html>
    pub fn mknod_dev(&self, path: &Path, block: bool, major: u32, minor: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mknod",
            man: "mknod(2)",
            what: "create a device node: a name in /dev for a device number",
            effect: Effect::Change,
        };
        let dev = nix::sys::stat::makedev(major as u64, minor as u64);
        let (kind, shown) = if block { (SFlag::S_IFBLK, "S_IFBLK|0600") } else { (SFlag::S_IFCHR, "S_IFCHR|0600") };
        self.perform(
            &C,
            vec![quote(&path.to_string_lossy(), 256), shown.into(), format!("makedev({major}, {minor})")],
            || (),
            || nix::sys::stat::mknod(path, kind, Perm::from_bits_truncate(0o600), dev),
            |_| "0".into(),
        )
    }

    /// `stat(2)` — the device number (major, minor) of a block device node.
    /// <https://man7.org/linux/man-pages/man2/stat.2.html>
    pub fn blk_dev_number(&self, path: &Path) -> Result<(u32, u32), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "stat",
            man: "stat(2)",
            what: "read a file's metadata; for a device node, its device number",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![quote(&path.to_string_lossy(), 256)],
            || unreachable!(),
            || {
                let st = nix::sys::stat::stat(path)?;
                if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
                    return Err(Errno::ENOTBLK);
                }
                Ok((nix::sys::stat::major(st.st_rdev) as u32, nix::sys::stat::minor(st.st_rdev) as u32))
            },
            |(a, b)| format!("0 {{st_mode=S_IFBLK, st_rdev=makedev({a}, {b})}}"),
        )
    }

    /// `ioctl(BLKGETSIZE64)` — the size of a block device, in bytes.
    /// <https://man7.org/linux/man-pages/man2/ioctl.2.html>
    pub fn blk_size(&self, dev: &DevFd) -> Result<u64, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "ioctl(2)",
            what: "ask a block device for its size in bytes",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![dev.path.clone(), "BLKGETSIZE64".into()],
            || unreachable!(),
            || {
                let mut size: u64 = 0;
                ioctl_ptr(raw(dev)?, BLKGETSIZE64, &mut size as *mut u64 as *mut u8)?;
                Ok(size)
            },
            |s| format!("0 [{s}]"),
        )
    }

    /// `pread64(2)` — read `len` bytes at `offset` of a device (a PV's label).
    /// <https://man7.org/linux/man-pages/man2/pread.2.html>
    pub fn pread_dev(&self, dev: &DevFd, offset: u64, len: usize) -> Result<Vec<u8>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pread64",
            man: "pread(2)",
            what: "read bytes at a given offset of a file or device",
            effect: Effect::Query,
        };
        self.perform_out(
            &C,
            vec![dev.path.clone(), len.to_string(), offset.to_string()],
            || unreachable!(),
            || {
                let mut buf = vec![0u8; len];
                // SAFETY: buf is valid for len bytes.
                let n = unsafe { libc::pread(raw(dev)?, buf.as_mut_ptr() as *mut _, len, offset as i64) };
                if n < 0 {
                    return Err(Errno::last());
                }
                buf.truncate(n as usize);
                Ok(buf)
            },
            |b| {
                let head: String = String::from_utf8_lossy(&b[..b.len().min(32)]).into_owned();
                (b.len().to_string(), Some(quote(&head, 32)))
            },
        )
    }

    /// `pwrite64(2)` then `fsync(2)` — write `data` at `offset` of a device and make
    /// sure it reached it (a PV's label and metadata, the zeroed start of a COW store).
    /// `what` names the content in the trace.
    /// <https://man7.org/linux/man-pages/man2/pwrite.2.html>
    pub fn pwrite_dev(&self, dev: &DevFd, offset: u64, data: &[u8], what: &str) -> Result<usize, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pwrite64",
            man: "pwrite(2)",
            what: "write bytes at a given offset of a device, then fsync(2) so they are on it",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![dev.path.clone(), what.to_string(), data.len().to_string(), offset.to_string()],
            || data.len(),
            || {
                let fd = raw(dev)?;
                // SAFETY: data is valid for its length.
                let n = unsafe { libc::pwrite(fd, data.as_ptr() as *const _, data.len(), offset as i64) };
                if n < 0 {
                    return Err(Errno::last());
                }
                // SAFETY: plain syscall on a descriptor we own.
                if unsafe { libc::fsync(fd) } < 0 {
                    return Err(Errno::last());
                }
                Ok(n as usize)
            },
            |n| n.to_string(),
        )
    }

    /// `openat(2)` with `O_CREAT` then `ftruncate(2)` — make a sparse file of `size`
    /// bytes to back a loop device (no block is allocated until written).
    /// <https://man7.org/linux/man-pages/man2/ftruncate.2.html>
    pub fn create_sparse(&self, path: &Path, size: u64) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "ftruncate",
            man: "ftruncate(2)",
            what: "set a file's size; growing it leaves a hole that uses no disk until written",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![quote(&path.to_string_lossy(), 256), size.to_string()],
            || (),
            || {
                let f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).map_err(errno_of)?;
                f.set_len(size).map_err(errno_of)
            },
            |_| "0".into(),
        )
    }

    /// `ioctl(LOOP_CTL_GET_FREE)` on `/dev/loop-control` — the number of a free loop
    /// device (the kernel creates one if none is free).
    /// <https://man7.org/linux/man-pages/man4/loop.4.html>
    pub fn loop_get_free(&self, ctl: &DevFd) -> Result<u32, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "loop(4)",
            what: "ask for a free loop device; the kernel makes one if needed",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![ctl.path.clone(), "LOOP_CTL_GET_FREE".into()],
            || unreachable!(),
            // SAFETY: LOOP_CTL_GET_FREE takes no argument.
            || match unsafe { libc::ioctl(raw(ctl)?, LOOP_CTL_GET_FREE as _) } {
                -1 => Err(Errno::last()),
                n => Ok(n as u32),
            },
            |n| n.to_string(),
        )
    }

    /// `ioctl(LOOP_CONFIGURE)` — bind a loop device to an open file in one call
    /// (since Linux 5.8; it replaces `LOOP_SET_FD` then `LOOP_SET_STATUS64`, which
    /// left a window where the device existed half-configured). With
    /// `LO_FLAGS_AUTOCLEAR` the kernel detaches it when its last user closes it.
    /// <https://man7.org/linux/man-pages/man4/loop.4.html>
    pub fn loop_configure(&self, dev: &DevFd, file: &DevFd, read_only: bool, autoclear: bool) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "loop(4)",
            what: "attach a file to a loop device and set its flags, in one request",
            effect: Effect::Change,
        };
        let mut fl = 0;
        if read_only {
            fl |= LO_FLAGS_READ_ONLY;
        }
        if autoclear {
            fl |= LO_FLAGS_AUTOCLEAR;
        }
        let num = file.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
        let arg = format!(
            "{{fd: {num}<{}>, block_size: 0, info: {{lo_flags: {}, lo_file_name: {}}}}}",
            file.path,
            flags::render(fl as u64, LO_FLAGS),
            quote(&file.path, 63)
        );
        self.perform(
            &C,
            vec![dev.path.clone(), "LOOP_CONFIGURE".into(), arg],
            || (),
            || {
                // struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
                let mut cfg = [0u64; 38];
                // SAFETY: 304 bytes, the size of struct loop_config.
                let b = unsafe { std::slice::from_raw_parts_mut(cfg.as_mut_ptr() as *mut u8, 304) };
                b[0..4].copy_from_slice(&(raw(file)? as u32).to_ne_bytes());
                b[60..64].copy_from_slice(&fl.to_ne_bytes());
                let name = file.path.as_bytes();
                let n = name.len().min(63);
                b[64..64 + n].copy_from_slice(&name[..n]);
                ioctl_ptr(raw(dev)?, LOOP_CONFIGURE, b.as_mut_ptr()).map(|_| ())
            },
            |_| "0".into(),
        )
    }

    /// `ioctl(LOOP_CLR_FD)` — detach a loop device from its file. While something
    /// still holds the device open, the kernel only sets autoclear: the detach
    /// happens when the last user closes it.
    /// <https://man7.org/linux/man-pages/man4/loop.4.html>
    pub fn loop_clear(&self, dev: &DevFd) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "loop(4)",
            what: "detach a loop device from its backing file (lazily, if it is in use)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![dev.path.clone(), "LOOP_CLR_FD".into()],
            || (),
            // SAFETY: LOOP_CLR_FD takes no argument.
            || match unsafe { libc::ioctl(raw(dev)?, LOOP_CLR_FD as _) } {
                -1 => Err(Errno::last()),
                _ => Ok(()),
            },
            |_| "0".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(DM_VERSION_CMD, 0xc138fd00);
        assert_eq!(DM_TABLE_LOAD_CMD, 0xc138fd09);
        assert_eq!(DM_TARGET_MSG_CMD, 0xc138fd0e);
    }

    #[test]
    fn dev_numbers_decode_like_the_kernel_encodes() {
        // huge_encode_dev(MKDEV(253, 3)) and a minor above 255
        assert_eq!(decode_dev((253 << 8) | 3), (253, 3));
        assert_eq!(decode_dev((7 << 8) | 0x34 | (0x12 << 20)), (7, 0x1234));
    }

    #[test]
    fn table_records_chain_by_relative_offsets() {
        let t = vec![DmTarget::new(0, 8, "linear", "7:0 2048"), DmTarget::new(8, 8, "zero", "")];
        let b = encode_table(&t);
        let next = u32::from_ne_bytes(b[20..24].try_into().unwrap()) as usize;
        assert_eq!(next % 8, 0);
        assert_eq!(&b[next + 24..next + 28], b"zero");
        assert_eq!(&b[40..48], b"7:0 2048");
        let buf = DmBuf::new("vg-lv", "", 0, 2, &b, 0);
        assert_eq!(buf.u32_at(12) as usize, buf.bytes().len());
        assert_eq!(buf.cstr_at(48, DM_NAME_LEN), "vg-lv");
    }

    #[test]
    fn dry_run_records_the_decoded_table() {
        let k = Kernel::recording("lvm-snap");
        let ctl = DevFd { fd: None, path: DM_CONTROL.into() };
        k.dm_load(&ctl, "snap", &[DmTarget::new(0, 2048, "snapshot", "7:0 7:1 P 8")]).unwrap();
        let ev = k.events().pop().unwrap();
        assert_eq!(ev.kind, Kind::Ioctl);
        assert_eq!(
            ev.call_text(),
            r#"ioctl(/dev/mapper/control, DM_TABLE_LOAD, {name: "snap", table: "0 2048 snapshot 7:0 7:1 P 8"}) = 0"#
        );
    }
}
