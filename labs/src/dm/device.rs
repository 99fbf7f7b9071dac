//! What the device-mapper and loop interfaces exchange with the kernel: a table line,
//! what the kernel says about a mapped device, an open device. The ioctls themselves
//! are in the kernel layer (`kernel/dm.rs`); these are the values they take and give.

use std::os::fd::OwnedFd;

use serde::Serialize;

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

/// An open device or control file, remembered with its path for the trace.
/// `fd` is `None` in a dry run that could not (or need not) open it.
#[derive(Debug)]
pub struct DevFd {
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) path: String,
}

impl DevFd {
    /// The path it was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Whether this is a real open file (false in a dry run without the device).
    pub fn is_real(&self) -> bool {
        self.fd.is_some()
    }
}

/// A loop device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoopDev {
    /// `/dev/loopN`.
    pub dev: String,
    /// N.
    pub number: u32,
    /// The file it reads and writes.
    pub backing_file: String,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// Detached by the kernel when its last user closes it.
    pub autoclear: bool,
    /// Read-only.
    pub read_only: bool,
    /// Who holds it open (dm-3...), from /sys/block/loopN/holders.
    pub holders: Vec<String>,
}
