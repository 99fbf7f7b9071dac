//! Block devices and loop devices: device nodes (`mknod(2)`), sizes
//! (`BLKGETSIZE64`), reads and writes at an offset (`pread64`/`pwrite64`), and the loop
//! driver's ioctls (`LOOP_CTL_GET_FREE` on `/dev/loop-control`, `LOOP_CONFIGURE`,
//! `LOOP_CLR_FD` on `/dev/loopN`), which turn a file into a block device.
//! <https://man7.org/linux/man-pages/man4/loop.4.html>

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode as Perm, SFlag};
use serde::Serialize;

use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

const LOOP_CLR_FD: u64 = 0x4C01;
const LOOP_CONFIGURE: u64 = 0x4C0A;
const LOOP_CTL_GET_FREE: u64 = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS: &[(u64, &str)] =
    &[(1, "LO_FLAGS_READ_ONLY"), (4, "LO_FLAGS_AUTOCLEAR"), (8, "LO_FLAGS_PARTSCAN"), (16, "LO_FLAGS_DIRECT_IO")];
/// `_IOR(0x12, 114, size_t)`.
const BLKGETSIZE64: u64 = 0x8008_1272;

pub(crate) fn raw(dev: &DevFd) -> Result<i32, Errno> {
    dev.fd.as_ref().map(|f| f.as_raw_fd()).ok_or(Errno::EBADF)
}

/// `ioctl(2)` with a pointer argument.
pub(crate) fn ioctl_ptr(fd: i32, nr: u64, arg: *mut u8) -> Result<i32, Errno> {
    // SAFETY: `arg` points to a buffer at least as large as the structure `nr` names
    // (callers build it so), valid for the duration of the call.
    let r = unsafe { libc::ioctl(fd, nr as _, arg) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
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

    /// `openat(2)` with `O_WRONLY|O_CREAT|O_EXCL`, mode 0666 (less the umask): create a
    /// new, empty file, failing with `EEXIST` if the name is taken. A dry run creates
    /// nothing and gives a descriptor that is not open.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    pub fn create_backing_file(&self, path: &Path) -> Result<DevFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "create a new file, failing if the name is taken",
            effect: Effect::Change,
        };
        let fl = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        let shown = path.to_string_lossy().into_owned();
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), quote(&shown, 256), flags::open_flags(fl.bits()), "0666".into()],
            || DevFd { fd: None, path: shown.clone() },
            || {
                Ok(DevFd {
                    fd: Some(nix::fcntl::open(path, fl, Perm::from_bits_truncate(0o666))?),
                    path: shown.clone(),
                })
            },
            // A dry run opens nothing: it shows the descriptor the open would give.
            |f| f.fd.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_else(|| "3".into()),
        )
    }

    /// `ftruncate(2)` — set an open file's size; growing it leaves a hole that takes
    /// no disk space until written (a sparse file to back a loop device).
    /// <https://man7.org/linux/man-pages/man2/ftruncate.2.html>
    pub fn ftruncate(&self, file: &DevFd, size: u64) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "ftruncate",
            man: "ftruncate(2)",
            what: "set a file's size; growing it leaves a hole that uses no disk until written",
            effect: Effect::Change,
        };
        let num = file.fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(3);
        self.perform(
            &C,
            vec![format!("{num}<{}>", file.path), size.to_string()],
            || (),
            || nix::unistd::ftruncate(file.fd.as_ref().ok_or(Errno::EBADF)?, size as i64),
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
