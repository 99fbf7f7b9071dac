//! Mounts: attach filesystems to the tree and change how mount points behave
//! (`mount(2)`, `umount2(2)`, `pivot_root(2)`), the new mount API that configures a
//! filesystem option by option (`fsopen(2)`, `fsconfig(2)`, `fsmount(2)`,
//! `move_mount(2)`), and the mount table as the kernel shows it
//! (`/proc/self/mountinfo`).
//!
//! The new mount API has no wrapper in nix or glibc 2.36: it is called with
//! `syscall(2)` and the numbers from libc, as util-linux's `mount` does.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};

use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

fn path_arg(p: &Path) -> String {
    quote(&p.to_string_lossy(), 256)
}

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const AT_EMPTY_PATH: libc::c_uint = 0x1000;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

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

    /// `/proc/self/fd/N`: the path that names exactly this descriptor's file, for a
    /// `mount(2)` source or target.
    pub fn proc_path(&self) -> String {
        format!("/proc/self/fd/{}", self.num)
    }
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

/// `mount_setattr(2)` of `path` relative to `dirfd`: no wrapper in glibc 2.36 or nix.
fn mount_setattr(
    dirfd: libc::c_int,
    path: &std::ffi::CStr,
    flags: libc::c_uint,
    attr: &MountAttr,
) -> Result<(), Errno> {
    // SAFETY: a NUL-terminated path and a mount_attr of the size given; the kernel
    // checks the descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    ret_unit(r)
}

fn ret_unit(r: libc::c_long) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

impl Kernel {
    /// `mount(2)` — attach a filesystem, or change a mount (bind, propagation, remount).
    /// <https://man7.org/linux/man-pages/man2/mount.2.html>
    pub fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        fl: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mount",
            man: "mount(2)",
            what: "attach a filesystem to the tree, or change how a mount point behaves",
            effect: Effect::Change,
        };
        let opt = |s: Option<&str>| s.map(|s| quote(s, 256)).unwrap_or_else(|| "NULL".into());
        let args = vec![opt(source), path_arg(target), opt(fstype), flags::render(fl.bits(), flags::MS), opt(data)];
        self.perform(&C, args, || (), || nix::mount::mount(source, target, fstype, fl, data), |_| "0".into())
    }

    /// `umount2(2)` — detach a mount; `MNT_DETACH` does it lazily, once unused.
    /// <https://man7.org/linux/man-pages/man2/umount2.2.html>
    pub fn umount2(&self, target: &Path, fl: MntFlags) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "umount2",
            man: "umount2(2)",
            what: "detach a mounted filesystem from the tree",
            effect: Effect::Change,
        };
        let args = vec![path_arg(target), flags::render(fl.bits() as u64, flags::MNT)];
        self.perform(&C, args, || (), || nix::mount::umount2(target, fl), |_| "0".into())
    }

    /// `pivot_root(2)` — make `new_root` the root of this mount namespace and put the
    /// old root at `put_old`. <https://man7.org/linux/man-pages/man2/pivot_root.2.html>
    pub fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pivot_root",
            man: "pivot_root(2)",
            what: "swap the root mount of this mount namespace for another one",
            effect: Effect::Change,
        };
        let args = vec![path_arg(new_root), path_arg(put_old)];
        self.perform(&C, args, || (), || nix::unistd::pivot_root(new_root, put_old), |_| "0".into())
    }

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
        let args =
            vec![m.shown(), "\"\"".into(), "AT_FDCWD".into(), path_arg(target), "MOVE_MOUNT_F_EMPTY_PATH".into()];
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

    /// `open_tree(2)` with `OPEN_TREE_CLONE` — a detached copy of the mount at `dir`
    /// (a bind mount not yet attached anywhere), whose attributes can be changed
    /// before [`Kernel::move_mount`] attaches it.
    /// <https://man7.org/linux/man-pages/man2/open_tree.2.html>
    #[doc(alias = "open_tree")]
    pub fn open_tree_clone(&self, dir: &Path) -> Result<FsFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "open_tree",
            man: "open_tree(2)",
            what: "make a detached bind mount of a directory (attached later with move_mount)",
            effect: Effect::Change,
        };
        let args = vec!["AT_FDCWD".into(), path_arg(dir), "OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC".into()];
        self.perform(
            &C,
            args,
            || FsFd { fd: None, num: 4, what: "detached mount" },
            || {
                let d = cstr(dir.as_os_str().as_bytes())?;
                // SAFETY: a NUL-terminated path; the kernel returns a new descriptor.
                let r = unsafe {
                    libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, d.as_ptr(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
                };
                let m = ret_fd(r)?;
                Ok(FsFd { num: m.as_raw_fd(), fd: Some(m), what: "detached mount" })
            },
            |f| f.num.to_string(),
        )
    }

    /// `mount_setattr(2)` with `MOUNT_ATTR_IDMAP` — make a detached mount idmapped:
    /// through it, a file's owner on disk is shown through the uid/gid maps of the user
    /// namespace `userns` (on disk 0 is seen as the namespace's root, e.g. 100000 on the
    /// host), and new files are written back through them. Nothing on disk changes.
    /// <https://man7.org/linux/man-pages/man2/mount_setattr.2.html>
    #[doc(alias = "mount_setattr")]
    pub fn mount_setattr_idmap(&self, m: &FsFd, userns: &super::Fd) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mount_setattr",
            man: "mount_setattr(2)",
            what: "change a mount's attributes: here, map its files' owners through a user namespace's id maps",
            effect: Effect::Change,
        };
        let args = vec![
            m.shown(),
            "\"\"".into(),
            "AT_EMPTY_PATH".into(),
            format!("{{attr_set=MOUNT_ATTR_IDMAP, userns_fd={}}}", userns.shown()),
        ];
        self.perform(
            &C,
            args,
            || (),
            || {
                let fd = m.fd.as_ref().ok_or(Errno::EBADF)?.as_raw_fd();
                let ns = userns.raw().ok_or(Errno::EBADF)?;
                let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: ns as u64 };
                mount_setattr(fd, c"", AT_EMPTY_PATH, &attr)
            },
            |_| "0".into(),
        )
    }

    /// `openat2(2)` of `target` with `RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS`, the current
    /// directory taken as `/`, then `mount(2)` on `/proc/self/fd/N`: a symlink anywhere
    /// in the target (one an image shipped, or one a process swapped in while the
    /// container was being set up: CVE-2021-30465) resolves inside the new root, never
    /// onto the host's tree, and the mount lands exactly on the directory or file
    /// opened. What runc does for every mount destination since that CVE.
    /// `require_dev`: refuse unless the opened target is this character device
    /// (`(major, minor)`): how the `/dev/null` a masked path is hidden behind is checked
    /// to be /dev/null, not a link or bind a container planted (CVE-2025-31133).
    pub fn mount_in_root(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        fl: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError> {
        let fd = self.open_target_in_root(target)?;
        self.mount(source, Path::new(&fd.proc_path()), fstype, fl, data)
    }

    /// `openat2(2)` `O_PATH` of `path` resolved as [`Kernel::mount_in_root`] does: the
    /// descriptor (`None` in a dry run) and its number.
    pub fn open_target_in_root(&self, path: &Path) -> Result<FsFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat2",
            man: "openat2(2)",
            what: "open a mount destination as if the current directory were the root: no symlink leads out",
            // Part of a mount: in a dry run, recorded with the mount, not resolved.
            effect: Effect::Change,
        };
        let rel = path.strip_prefix("/").unwrap_or(path);
        let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let args = vec![
            "AT_FDCWD".into(),
            path_arg(rel),
            "{flags=O_PATH|O_CLOEXEC, resolve=RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}".into(),
        ];
        self.perform(
            &C,
            args,
            || FsFd { fd: None, num: 5, what: "mount target" },
            || {
                let how = nix::fcntl::OpenHow::new()
                    .flags(nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC)
                    .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS);
                let fd = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, rel, how)?;
                let n = fd.as_raw_fd();
                Ok(FsFd { fd: Some(fd), num: n, what: "mount target" })
            },
            |f| f.num.to_string(),
        )
    }

    /// `fstat(2)` of a descriptor [`Kernel::open_target_in_root`] opened: whether it is
    /// the character device `(major, minor)` (a dry run says yes).
    pub fn is_char_device(&self, fd: &FsFd, dev: (u64, u64)) -> Result<bool, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fstat",
            man: "fstat(2)",
            what: "what the descriptor really is: its type and device numbers",
            // Of a descriptor a dry run did not open.
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![fd.num.to_string()],
            || true,
            || {
                let f = fd.fd.as_ref().ok_or(Errno::EBADF)?;
                let st = nix::sys::stat::fstat(f)?;
                let is_chr = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR;
                let (ma, mi) = (libc::major(st.st_rdev) as u64, libc::minor(st.st_rdev) as u64);
                Ok(is_chr && (ma, mi) == dev)
            },
            |ok| {
                if *ok {
                    format!("0 {{S_IFCHR, st_rdev=makedev({}, {})}}", dev.0, dev.1)
                } else {
                    "0 {not that device}".into()
                }
            },
        )
    }

    /// `openat(2)` `O_PATH` of a bind mount's source, so that it can be mounted later
    /// from `/proc/self/fd/N` by a process that may no longer walk the path (the root
    /// of a user namespace, for whom the store's directories are the host root's).
    pub fn open_mount_source(&self, path: &Path) -> Result<FsFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "hold a bind mount's source by a descriptor, while its path can still be walked",
            // Part of a mount: in a dry run, recorded with it.
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), path_arg(path), "O_PATH|O_CLOEXEC".into()],
            || FsFd { fd: None, num: 6, what: "mount source" },
            || {
                let fd = nix::fcntl::open(
                    path,
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )?;
                let n = fd.as_raw_fd();
                Ok(FsFd { fd: Some(fd), num: n, what: "mount source" })
            },
            |f| f.num.to_string(),
        )
    }

    /// `mount_setattr(2)` with `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY` — make the mount
    /// at `path` and every mount below it read-only, in one request (a remount changes
    /// one mount only).
    #[doc(alias = "mount_setattr")]
    pub fn make_tree_readonly(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mount_setattr",
            man: "mount_setattr(2)",
            what: "change the attributes of a mount and of every mount below it",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), path_arg(path), "AT_RECURSIVE".into(), "{attr_set=MOUNT_ATTR_RDONLY}".into()],
            || (),
            || {
                let p = cstr(path.as_os_str().as_bytes())?;
                let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
                mount_setattr(libc::AT_FDCWD, &p, AT_RECURSIVE, &attr)
            },
            |_| "0".into(),
        )
    }
}
