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

use std::path::Path;

use serde::Serialize;

use super::block::{ioctl_ptr, raw, DevFd};
use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

/// One line of a device-mapper table: sectors `start..start+length` of the mapped
/// device are handled by `target` configured with `params`
/// (`0 2048 linear 7:0 2048`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmTarget {
    /// First sector (512 bytes) of the mapped device this line covers.
    pub start: u64,
    /// How many sectors.
    pub length: u64,
    /// The target type: `linear`, `striped`, `snapshot`, `thin-pool`...
    pub target: String,
    /// The target's arguments (a table line) or its status (a status line).
    pub params: String,
}

impl DmTarget {
    /// A table line.
    pub fn new(start: u64, length: u64, target: &str, params: impl Into<String>) -> DmTarget {
        DmTarget { start, length, target: target.into(), params: params.into() }
    }

    /// The line as `dmsetup table` prints it: `0 2048 linear 7:0 2048`.
    pub fn line(&self) -> String {
        if self.params.is_empty() {
            format!("{} {} {}", self.start, self.length, self.target)
        } else {
            format!("{} {} {} {}", self.start, self.length, self.target, self.params)
        }
    }
}

/// What the kernel says about one mapped device (the `struct dm_ioctl` it returns).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DmInfo {
    /// The device's name (`/dev/mapper/NAME`).
    pub name: String,
    /// Its uuid (contlab's devices start with `CONTLAB-`).
    pub uuid: String,
    /// Block device major number (device-mapper's, given at boot).
    pub major: u32,
    /// Block device minor number (N of `/dev/dm-N`).
    pub minor: u32,
    /// How many times the block device is open (a mounted filesystem, a dm device above).
    pub open_count: i32,
    /// Number of lines in the live table.
    pub target_count: u32,
    /// Event counter (a snapshot that became invalid, a thin pool that ran low...).
    pub event_nr: u32,
    /// Whether the device is suspended (I/O queued, not passed down).
    pub suspended: bool,
    /// Whether a live table is present.
    pub active: bool,
    /// Whether a table was loaded but not yet made live by a resume.
    pub inactive_table: bool,
    /// Read-only.
    pub read_only: bool,
}

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
    /// `openat(2)` on `/dev/mapper/control`, device-mapper's one door. In a dry run on
    /// a machine without device-mapper (or without the right to open it), the
    /// requests are still shown, against a control file that is not there: the
    /// changes as they would be asked, the queries as not asked (`= ?`), since no
    /// kernel can answer them.
    /// <https://docs.kernel.org/admin-guide/device-mapper/index.html>
    pub fn dm_open(&self) -> Result<DevFd, SysError> {
        match self.open_dev(Path::new(DM_CONTROL), true, false) {
            Err(e) if self.mode() == super::Mode::DryRun => {
                self.note(format!(
                    "no device-mapper to ask ({DM_CONTROL}: {:?}): the dry run shows the changes it would ask for; \
                     its queries cannot be made (= ?), so it goes on as if what it needs existed and the names it makes were free",
                    e.errno
                ));
                Ok(DevFd { fd: None, path: DM_CONTROL.into() })
            }
            r => r,
        }
    }

    /// One DM ioctl: build the `struct dm_ioctl`, make the call, return the buffer
    /// the kernel filled. On a control file a dry run could not open, a query is not
    /// made: its event says so (`= ? (no device-mapper to ask)`) and it returns None,
    /// like a change a dry run only records.
    fn dm_call(&self, ctl: &DevFd, req: DmReq<'_>) -> Result<Option<DmBuf>, SysError> {
        let fake;
        let unanswered = ctl.fd.is_none() && req.call.effect == Effect::Query;
        let call = if unanswered {
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
                None if unanswered => ("? (no device-mapper to ask)".into(), None),
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
            minor: self.next_fake_minor(),
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
    /// open count, suspended...). `ENXIO` when there is no such device; `None` when a
    /// dry run has no device-mapper to ask.
    pub fn dm_info(&self, ctl: &DevFd, name: &str) -> Result<Option<DmInfo>, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "DM_DEV_STATUS",
            man: "dmsetup(8)",
            what: "ask about one mapped device: its number, open count, state",
            effect: Effect::Query,
        };
        Ok(self.dm_call(ctl, DmReq::new(&C, DM_DEV_STATUS_CMD, name))?.map(|b| b.info()))
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
    fn a_dry_run_without_device_mapper_does_not_pretend_queries_answered() {
        let k = Kernel::recording("lvm-snap");
        let ctl = DevFd { fd: None, path: DM_CONTROL.into() };
        assert_eq!(k.dm_info(&ctl, "pool").unwrap(), None, "no answer, not an empty device");
        assert!(k.dm_list(&ctl).unwrap().is_empty());
        k.dm_create(&ctl, "pool-big", "").unwrap();
        let text: Vec<String> = k.events().iter().map(|e| e.call_text()).collect();
        assert_eq!(
            text[0],
            r#"ioctl(/dev/mapper/control, DM_DEV_STATUS, {name: "pool"}) = ? (no device-mapper to ask)"#
        );
        assert_eq!(text[1], "ioctl(/dev/mapper/control, DM_LIST_DEVICES, {}) = ? (no device-mapper to ask)");
        assert!(text[2].ends_with(") = 0"), "a change is shown as it would be asked: {}", text[2]);
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
