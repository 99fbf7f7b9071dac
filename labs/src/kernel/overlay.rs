//! Kernel requests of the overlay lab: the new mount API (`fsopen`, `fsconfig`,
//! `fsmount`, `move_mount`), whiteouts (`mknod` of a 0/0 character device), extended
//! attributes (`lgetxattr`, `llistxattr`, `lsetxattr`) and `lstat`.
//!
//! The mount API calls have no wrapper in nix or glibc 2.36: they are made with
//! `syscall(2)` and their numbers from libc, as util-linux's `mount` does.

use std::ffi::CString;
use std::fs::Metadata;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// A descriptor made by the new mount API: a filesystem context (`fsopen`) or a
/// detached mount (`fsmount`). In a dry run it holds no descriptor.
#[derive(Debug)]
pub struct FsFd {
    fd: Option<OwnedFd>,
    num: i32,
    what: &'static str,
}

impl FsFd {
    /// `3<overlay context>`, as the trace prints it.
    pub fn shown(&self) -> String {
        format!("{}<{}>", self.num, self.what)
    }
}

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
}

fn cstr(s: &[u8]) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn ret_fd(r: libc::c_long) -> Result<OwnedFd, Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
    }
}

fn ret_unit(r: libc::c_long) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// strace's rendering of a file's type and permission bits: `S_IFCHR|000`.
pub(crate) fn mode_text(m: &Metadata) -> String {
    let ft = m.file_type();
    let t = if ft.is_dir() {
        "S_IFDIR"
    } else if ft.is_symlink() {
        "S_IFLNK"
    } else if ft.is_char_device() {
        "S_IFCHR"
    } else if ft.is_block_device() {
        "S_IFBLK"
    } else if ft.is_fifo() {
        "S_IFIFO"
    } else if ft.is_socket() {
        "S_IFSOCK"
    } else {
        "S_IFREG"
    };
    format!("{t}|{:04o}", m.mode() & 0o7777)
}

fn stat_text(m: &Metadata) -> String {
    let ft = m.file_type();
    if ft.is_char_device() || ft.is_block_device() {
        let (ma, mi) = (libc::major(m.rdev()), libc::minor(m.rdev()));
        format!("0 {{st_mode={}, st_rdev=makedev({ma:#x}, {mi:#x})}}", mode_text(m))
    } else {
        format!("0 {{st_mode={}, st_size={}}}", mode_text(m), m.len())
    }
}

fn bytes_text(v: &[u8]) -> String {
    quote(&String::from_utf8_lossy(v), 64)
}

impl Kernel {
    /// `fsopen(2)` — open a filesystem context for `fstype`: the first step of the new
    /// mount API. Options are then given one by one with `fsconfig(2)`, so no option
    /// string is limited to a page as mount(2)'s `data` is.
    /// <https://man7.org/linux/man-pages/man2/fsopen.2.html>
    pub fn fsopen(&self, fstype: &str) -> Result<FsFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fsopen",
            man: "fsopen(2)",
            what: "create a filesystem context: a blank superblock configuration to fill with fsconfig",
            effect: Effect::Change,
        };
        let args = vec![quote(fstype, 32), "FSOPEN_CLOEXEC".into()];
        self.perform(
            &C,
            args,
            || FsFd { fd: None, num: 3, what: "fs context" },
            || {
                let name = cstr(fstype.as_bytes())?;
                // SAFETY: fsopen takes a NUL-terminated string and flags.
                let r = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
                let fd = ret_fd(r)?;
                Ok(FsFd { num: fd.as_raw_fd(), fd: Some(fd), what: "fs context" })
            },
            |f| f.num.to_string(),
        )
    }

    /// `fsconfig(2)` with `FSCONFIG_SET_STRING` — set one option of a filesystem
    /// context (`lowerdir+`, `upperdir`, `workdir`, `index`...).
    /// <https://man7.org/linux/man-pages/man2/fsconfig.2.html>
    #[doc(alias = "fsconfig")]
    pub fn fsconfig_string(&self, fc: &FsFd, key: &str, value: &str) -> Result<(), SysError> {
        self.fsconfig(fc, FSCONFIG_SET_STRING, "FSCONFIG_SET_STRING", key, Some(value))
    }

    /// `fsconfig(2)` with `FSCONFIG_SET_FLAG` — set a flag option (`volatile`, `userxattr`).
    /// <https://man7.org/linux/man-pages/man2/fsconfig.2.html>
    #[doc(alias = "fsconfig")]
    pub fn fsconfig_flag(&self, fc: &FsFd, key: &str) -> Result<(), SysError> {
        self.fsconfig(fc, FSCONFIG_SET_FLAG, "FSCONFIG_SET_FLAG", key, None)
    }

    /// `fsconfig(2)` with `FSCONFIG_CMD_CREATE` — create the superblock from the
    /// options given so far. Overlayfs checks its layers here.
    /// <https://man7.org/linux/man-pages/man2/fsconfig.2.html>
    #[doc(alias = "fsconfig")]
    pub fn fsconfig_create(&self, fc: &FsFd) -> Result<(), SysError> {
        self.fsconfig(fc, FSCONFIG_CMD_CREATE, "FSCONFIG_CMD_CREATE", "", None)
    }

    fn fsconfig(
        &self,
        fc: &FsFd,
        cmd: libc::c_uint,
        cmd_name: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fsconfig",
            man: "fsconfig(2)",
            what: "give one option to a filesystem context, or tell it to create the superblock",
            effect: Effect::Change,
        };
        let key_arg = if key.is_empty() { "NULL".to_string() } else { quote(key, 64) };
        let val_arg = value.map(|v| quote(v, 256)).unwrap_or_else(|| "NULL".into());
        let args = vec![fc.shown(), cmd_name.to_string(), key_arg, val_arg, "0".into()];
        self.perform(
            &C,
            args,
            || (),
            || {
                let fd = fc.fd.as_ref().ok_or(Errno::EBADF)?.as_raw_fd();
                let k = if key.is_empty() { None } else { Some(cstr(key.as_bytes())?) };
                let v = match value {
                    Some(v) => Some(cstr(v.as_bytes())?),
                    None => None,
                };
                let kp = k.as_ref().map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
                let vp = v.as_ref().map(|c| c.as_ptr()).unwrap_or(std::ptr::null());
                // SAFETY: fd is an open fs context; key/value are NUL-terminated or NULL.
                let r = unsafe { libc::syscall(libc::SYS_fsconfig, fd, cmd, kp, vp, 0 as libc::c_int) };
                ret_unit(r)
            },
            |_| "0".into(),
        )
    }

    /// `read(2)` on a filesystem context — the messages the filesystem left while
    /// parsing options (`e overlay: failed to resolve 'x': -2`): far more precise than
    /// the errno of the failing fsconfig. <https://man7.org/linux/man-pages/man2/fsopen.2.html>
    #[doc(alias = "read")]
    pub fn fs_messages(&self, fc: &FsFd) -> Vec<String> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "read",
            man: "fsopen(2)",
            what: "read the error messages a filesystem context collected",
            effect: Effect::Query,
        };
        let Some(fd) = fc.fd.as_ref() else { return Vec::new() };
        let mut out = Vec::new();
        for _ in 0..16 {
            let r = self.perform_out(
                &C,
                vec![fc.shown()],
                || unreachable!(),
                || {
                    let mut buf = vec![0u8; 4096];
                    // SAFETY: buf is a writable buffer of the given length.
                    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    if n < 0 {
                        return Err(Errno::last());
                    }
                    buf.truncate(n as usize);
                    Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
                },
                |s| (s.len().to_string(), Some(quote(s, 200))),
            );
            match r {
                Ok(s) if !s.is_empty() => out.push(s),
                _ => break,
            }
        }
        out
    }

    /// `fsmount(2)` — turn a configured context into a mount that is not attached
    /// anywhere yet. <https://man7.org/linux/man-pages/man2/fsmount.2.html>
    pub fn fsmount(&self, fc: &FsFd) -> Result<FsFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fsmount",
            man: "fsmount(2)",
            what: "make a detached mount from a filesystem context (not yet visible in the tree)",
            effect: Effect::Change,
        };
        let args = vec![fc.shown(), "FSMOUNT_CLOEXEC".into(), "0".into()];
        self.perform(
            &C,
            args,
            || FsFd { fd: None, num: 4, what: "detached mount" },
            || {
                let fd = fc.fd.as_ref().ok_or(Errno::EBADF)?.as_raw_fd();
                // SAFETY: fd is an open fs context with a created superblock.
                let r = unsafe { libc::syscall(libc::SYS_fsmount, fd, FSMOUNT_CLOEXEC, 0 as libc::c_uint) };
                let m = ret_fd(r)?;
                Ok(FsFd { num: m.as_raw_fd(), fd: Some(m), what: "detached mount" })
            },
            |f| f.num.to_string(),
        )
    }

    /// `move_mount(2)` — attach a detached mount at `target`: from here on the
    /// filesystem is visible in the tree (and in /proc/self/mountinfo).
    /// <https://man7.org/linux/man-pages/man2/move_mount.2.html>
    pub fn move_mount(&self, m: &FsFd, target: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "move_mount",
            man: "move_mount(2)",
            what: "attach a detached mount to a directory of the tree",
            effect: Effect::Change,
        };
        let args = vec![m.shown(), "\"\"".into(), "AT_FDCWD".into(), p(target), "MOVE_MOUNT_F_EMPTY_PATH".into()];
        self.perform(
            &C,
            args,
            || (),
            || {
                let fd = m.fd.as_ref().ok_or(Errno::EBADF)?.as_raw_fd();
                let t = cstr(target.as_os_str().as_bytes())?;
                let empty = c"";
                // SAFETY: valid descriptors and NUL-terminated paths.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_move_mount,
                        fd,
                        empty.as_ptr(),
                        libc::AT_FDCWD,
                        t.as_ptr(),
                        MOVE_MOUNT_F_EMPTY_PATH,
                    )
                };
                ret_unit(r)
            },
            |_| "0".into(),
        )
    }

    /// `lstat(2)` — a file's type, mode, owner and device numbers, without following
    /// a final symlink. `Ok(None)` when it does not exist (`ENOENT`, `ENOTDIR`).
    /// <https://man7.org/linux/man-pages/man2/lstat.2.html>
    pub fn lstat(&self, path: &Path) -> Result<Option<Metadata>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lstat",
            man: "lstat(2)",
            what: "read a file's type, mode, owner and device numbers (not following a symlink)",
            effect: Effect::Query,
        };
        let r = self.perform(
            &C,
            vec![p(path)],
            || unreachable!(),
            || std::fs::symlink_metadata(path).map_err(super_errno),
            stat_text,
        );
        match r {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.errno == Errno::ENOENT || e.errno == Errno::ENOTDIR => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `lgetxattr(2)` — one extended attribute of a file (not following a symlink);
    /// `Ok(None)` when it is not set (`ENODATA`). Overlayfs keeps its own state in
    /// `trusted.overlay.*` (or `user.overlay.*` with `userxattr`): `opaque`,
    /// `origin`, `redirect`. <https://man7.org/linux/man-pages/man2/getxattr.2.html>
    #[doc(alias = "lgetxattr")]
    pub fn getxattr(&self, path: &Path, name: &str) -> Result<Option<Vec<u8>>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lgetxattr",
            man: "getxattr(2)",
            what: "read one extended attribute of a file (overlayfs keeps its state in trusted.overlay.*)",
            effect: Effect::Query,
        };
        let r = self.perform_out(
            &C,
            vec![p(path), quote(name, 64)],
            || unreachable!(),
            || lgetxattr(path, name),
            |v| (v.len().to_string(), Some(bytes_text(v))),
        );
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if matches!(e.errno, Errno::ENODATA | Errno::ENOTSUP | Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `llistxattr(2)` — the names of a file's extended attributes.
    /// <https://man7.org/linux/man-pages/man2/listxattr.2.html>
    #[doc(alias = "llistxattr")]
    pub fn listxattr(&self, path: &Path) -> Result<Vec<String>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "llistxattr",
            man: "listxattr(2)",
            what: "list the names of a file's extended attributes",
            effect: Effect::Query,
        };
        let r = self.perform_out(
            &C,
            vec![p(path)],
            || unreachable!(),
            || llistxattr(path),
            |v| (v.len().to_string(), Some(format!("[{}]", v.join(", ")))),
        );
        match r {
            Err(e) if e.errno == Errno::ENOTSUP => Ok(Vec::new()),
            r => r,
        }
    }

    /// `lsetxattr(2)` — set an extended attribute; `trusted.overlay.opaque = "y"` makes
    /// an upper directory hide everything below it.
    /// <https://man7.org/linux/man-pages/man2/setxattr.2.html>
    #[doc(alias = "lsetxattr")]
    pub fn setxattr(&self, path: &Path, name: &str, value: &[u8]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lsetxattr",
            man: "setxattr(2)",
            what: "set an extended attribute on a file (not following a symlink)",
            effect: Effect::Change,
        };
        let args = vec![p(path), quote(name, 64), bytes_text(value), value.len().to_string(), "0".into()];
        self.perform(&C, args, || (), || lsetxattr(path, name, value), |_| "0".into())
    }

    /// `mknod(2)` of a character device 0/0 — an overlayfs *whiteout*: in an upper
    /// (or layer) directory it says "the file of this name in the layers below is
    /// deleted". <https://man7.org/linux/man-pages/man2/mknod.2.html>
    #[doc(alias = "mknod")]
    pub fn mknod_whiteout(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mknod",
            man: "mknod(2)",
            what: "create a device node; a character device 0/0 is an overlayfs whiteout",
            effect: Effect::Change,
        };
        let args = vec![p(path), "S_IFCHR|0000".into(), "makedev(0, 0)".into()];
        self.perform(
            &C,
            args,
            || (),
            || {
                nix::sys::stat::mknod(
                    path,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
            },
            |_| "0".into(),
        )
    }
}

pub(crate) fn super_errno(e: std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

pub(crate) fn lgetxattr(path: &Path, name: &str) -> Result<Vec<u8>, Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let n = cstr(name.as_bytes())?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid C strings; buf is writable for its length.
        let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(buf);
        }
        let e = Errno::last();
        if e != Errno::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len();
        buf.resize(len * 4, 0);
    }
}

pub(crate) fn llistxattr(path: &Path) -> Result<Vec<String>, Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: valid C string; buf is writable for its length.
        let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            let mut names: Vec<String> = buf
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            names.sort();
            return Ok(names);
        }
        let e = Errno::last();
        if e != Errno::ERANGE || buf.len() > 1 << 20 {
            return Err(e);
        }
        let len = buf.len();
        buf.resize(len * 4, 0);
    }
}

pub(crate) fn lsetxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Errno> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let n = cstr(name.as_bytes())?;
    // SAFETY: valid C strings; value is readable for its length.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

impl Kernel {
    /// `mount(2)` of an overlay with its whole option string in `data`: the classic
    /// way, limited to one page. <https://man7.org/linux/man-pages/man2/mount.2.html>
    pub fn mount_overlay_legacy(&self, target: &Path, data: &str) -> Result<(), SysError> {
        self.mount(Some("overlay"), target, Some("overlay"), nix::mount::MsFlags::empty(), Some(data))
    }

    /// `umount2(2)` of a mount point; `lazy` adds `MNT_DETACH` (detach now, free when
    /// unused). <https://man7.org/linux/man-pages/man2/umount2.2.html>
    pub fn umount_path(&self, target: &Path, lazy: bool) -> Result<(), SysError> {
        let fl = if lazy { nix::mount::MntFlags::MNT_DETACH } else { nix::mount::MntFlags::empty() };
        self.umount2(target, fl)
    }
}
