//! Requests relative to directory descriptors: how a layer is extracted safely
//! (`openat2(2)` with `RESOLVE_BENEATH`, `mkdirat`, `openat`, `symlinkat`, `linkat`,
//! `mknodat`, `fchownat`, `fchmodat`, `utimensat`, `renameat2`, `unlinkat`, xattrs).
//!
//! ## Traced, or counted
//!
//! A layer holds thousands of files; printing five requests for each would bury the
//! few that matter. So the requests a lab is *about* are traced one by one: whiteouts
//! (`mknodat` 0/0, the opaque `lsetxattr`), what a whiteout deletes (put aside with
//! `renameat2`), device nodes, extended attributes, and the root `openat`. The bulk
//! work of writing ordinary entries (directories, files, symlinks, hard links, owners,
//! modes, times, the entries a layer replaces, and the walk of a recursive removal) is
//! made through [`Kernel::bulk`]: its events are marked bulk, so the JSON trace lists
//! every one of them while a text trace does not print a success (the lab prints a
//! summary note); a failure is printed like any other request, so a refused path
//! shows as `openat2(3</dest>, "a/b", ...) = -1 EXDEV`. A dry run makes none of these
//! changes.

use std::fs::{File, Metadata};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode as Perm, SFlag};
use nix::unistd::{FchownatFlags, Gid, LinkatFlags, Uid, UnlinkatFlags};

use super::errno_of as super_errno;
use super::trace::quote;
use super::xattr::{lgetxattr, llistxattr, lremovexattr, lsetxattr};
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

fn at(dir: &str, name: &str) -> Vec<String> {
    vec![format!("<{dir}>"), quote(name, 200)]
}

/// How the value a counted request returns is shown after `=`.
pub(crate) trait Shown {
    fn shown(&self) -> String;
}

impl Shown for () {
    fn shown(&self) -> String {
        "0".into()
    }
}

impl Shown for OwnedFd {
    fn shown(&self) -> String {
        self.as_raw_fd().to_string()
    }
}

impl Shown for Option<File> {
    fn shown(&self) -> String {
        self.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_else(|| "0".into())
    }
}

impl Shown for Option<Metadata> {
    fn shown(&self) -> String {
        match self {
            Some(m) => format!("0 {{st_mode={}}}", super::files::mode_text(m)),
            None => "-1 ENOENT (No such file or directory)".into(),
        }
    }
}

impl Shown for Vec<u8> {
    fn shown(&self) -> String {
        self.len().to_string()
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> String {
        format!("{} entries", self.len())
    }
}

impl Shown for Vec<(String, Vec<u8>)> {
    fn shown(&self) -> String {
        format!("{} attributes", self.len())
    }
}

fn proc_path(dir: &OwnedFd, name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), name))
}

impl Kernel {
    /// Make one of many alike requests (see the module documentation): its event is
    /// marked bulk, so JSON sinks list it and text sinks count it; a failure is
    /// printed in full.
    pub(crate) fn bulk<T: Shown>(
        &self,
        call: &Call,
        args: impl FnOnce() -> Vec<String>,
        dry: impl FnOnce() -> T,
        live: impl FnOnce() -> Result<T, Errno>,
    ) -> Result<T, SysError> {
        self.perform_bulk(call, args(), dry, live, T::shown)
    }

    /// `openat(2)` with `O_PATH|O_DIRECTORY` — a descriptor for the directory a layer
    /// is extracted into; every later request is made relative to it.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn open_tree(&self, dir: &Path) -> Result<OwnedFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a directory as a handle that later requests are made relative to",
            effect: Effect::Query,
        };
        let args = vec!["AT_FDCWD".into(), quote(&dir.to_string_lossy(), 256), "O_PATH|O_DIRECTORY|O_CLOEXEC".into()];
        self.perform(
            &C,
            args,
            || unreachable!(),
            || nix::fcntl::open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Perm::empty()),
            |f| f.as_raw_fd().to_string(),
        )
    }

    /// `openat2(2)` with `RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS` — open directory
    /// `rel` under `root`, refusing (`EXDEV`) any resolution that would leave `root`:
    /// `..` above it, an absolute symlink, a relative symlink climbing out. This is
    /// how a hostile layer is kept inside its directory without racy path checks.
    /// <https://man7.org/linux/man-pages/man2/openat2.2.html>
    #[doc(alias = "openat2")]
    pub fn open_beneath(&self, root: &OwnedFd, root_shown: &str, rel: &str) -> Result<OwnedFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat2",
            man: "openat2(2)",
            what: "open a path, resolving it only beneath a directory (refused with EXDEV if it would escape)",
            effect: Effect::Query,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(root_shown, rel);
                a.push("{flags=O_PATH|O_DIRECTORY|O_CLOEXEC, resolve=RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS}".into());
                a
            },
            || unreachable!(),
            || {
                let how = OpenHow::new()
                    .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                    .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                nix::fcntl::openat2(root.as_fd(), rel, how)
            },
        )
    }

    /// `openat2(2)` with `RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS` — open `rel` (`O_PATH`)
    /// as if `root` were `/`: `..` stops at `root`, and an absolute symlink, or one
    /// climbing up, resolves inside `root` too, as it would for a process chrooted
    /// there. How `cp` reaches a container's files: a symlink the container planted
    /// (`/escape -> /`) leads back into the container, never onto the host.
    /// `follow`: follow a symlink in the last component (else the link itself is
    /// opened); `dir`: refuse (`ENOTDIR`) anything but a directory.
    /// <https://man7.org/linux/man-pages/man2/openat2.2.html>
    #[doc(alias = "openat2")]
    pub fn open_in_root(
        &self,
        root: &OwnedFd,
        root_shown: &str,
        rel: &str,
        dir: bool,
        follow: bool,
    ) -> Result<OwnedFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat2",
            man: "openat2(2)",
            what: "open a path as if the directory were the root: symlinks and `..` cannot leave it",
            effect: Effect::Query,
        };
        let mut fl = OFlag::O_PATH | OFlag::O_CLOEXEC;
        let mut shown = String::from("O_PATH");
        if dir {
            fl |= OFlag::O_DIRECTORY;
            shown.push_str("|O_DIRECTORY");
        }
        if !follow {
            fl |= OFlag::O_NOFOLLOW;
            shown.push_str("|O_NOFOLLOW");
        }
        let rel = if rel.is_empty() { "." } else { rel };
        let mut args = at(root_shown, rel);
        args.push(format!("{{flags={shown}|O_CLOEXEC, resolve=RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}}"));
        self.perform(
            &C,
            args,
            || unreachable!(),
            || {
                let how =
                    OpenHow::new().flags(fl).resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
                nix::fcntl::openat2(root.as_fd(), rel, how)
            },
            |f| f.as_raw_fd().to_string(),
        )
    }

    /// `openat(2)` with `O_RDONLY|O_NOFOLLOW`, counted: read a regular file of a tree
    /// being archived, relative to its directory's descriptor (a symlink swapped in
    /// for it is refused with `ELOOP`, not followed).
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn open_read_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<File, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a file for reading relative to a directory descriptor, not following a symlink",
            effect: Effect::Query,
        };
        let fl = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let r = self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.push("O_RDONLY|O_NOFOLLOW|O_CLOEXEC".into());
                a
            },
            || unreachable!(),
            || nix::fcntl::openat(dir.as_fd(), name, fl, Perm::empty()).map(|f| Some(File::from(f))),
        )?;
        Ok(r.expect("a live open gives a file"))
    }

    /// `readlinkat(2)`, counted: the target of a symlink relative to a directory
    /// descriptor. <https://man7.org/linux/man-pages/man2/readlinkat.2.html>
    #[doc(alias = "readlinkat")]
    pub fn readlink_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<String, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "readlinkat",
            man: "readlinkat(2)",
            what: "read where a symbolic link points, relative to a directory descriptor",
            effect: Effect::Query,
        };
        let v: Vec<u8> = self.bulk(
            &C,
            || at(shown, name),
            || unreachable!(),
            || {
                use std::os::unix::ffi::OsStrExt;
                nix::fcntl::readlinkat(dir.as_fd(), name).map(|t| t.as_bytes().to_vec())
            },
        )?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// `mkdirat(2)`, counted. <https://man7.org/linux/man-pages/man2/mkdirat.2.html>
    pub fn mkdir_at(&self, dir: &OwnedFd, shown: &str, name: &str, mode: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mkdirat",
            man: "mkdirat(2)",
            what: "create a directory relative to a directory descriptor",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.push(format!("{mode:#o}"));
                a
            },
            || (),
            || nix::sys::stat::mkdirat(dir.as_fd(), name, Perm::from_bits_truncate(mode)),
        )
    }

    /// `openat(2)` with `O_CREAT|O_EXCL|O_NOFOLLOW`, counted: a new regular file to
    /// write an entry's content into (`None` in a dry run). `O_EXCL|O_NOFOLLOW` make
    /// sure nothing already there, such as a planted symlink, is written through.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn create_at(&self, dir: &OwnedFd, shown: &str, name: &str, mode: u32) -> Result<Option<File>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "create a new file relative to a directory descriptor",
            effect: Effect::Change,
        };
        let fl = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.push("O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC".into());
                a.push(format!("{mode:#o}"));
                a
            },
            || None,
            || nix::fcntl::openat(dir.as_fd(), name, fl, Perm::from_bits_truncate(mode)).map(|f| Some(File::from(f))),
        )
    }

    /// `symlinkat(2)`, counted. <https://man7.org/linux/man-pages/man2/symlinkat.2.html>
    pub fn symlink_at(&self, target: &str, dir: &OwnedFd, shown: &str, name: &str) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "symlinkat",
            man: "symlinkat(2)",
            what: "create a symbolic link relative to a directory descriptor",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = vec![quote(target, 200)];
                a.extend(at(shown, name));
                a
            },
            || (),
            || nix::unistd::symlinkat(target, dir.as_fd(), name),
        )
    }

    /// `linkat(2)` without `AT_SYMLINK_FOLLOW`, counted: a hard link; a symlink as
    /// the old path is linked itself, never followed.
    /// <https://man7.org/linux/man-pages/man2/linkat.2.html>
    #[allow(clippy::too_many_arguments)]
    pub fn link_at(
        &self,
        odir: &OwnedFd,
        oshown: &str,
        oname: &str,
        ndir: &OwnedFd,
        nshown: &str,
        nname: &str,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "linkat",
            man: "linkat(2)",
            what: "create a hard link: a second name for the same inode",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(oshown, oname);
                a.extend(at(nshown, nname));
                a.push("0".into());
                a
            },
            || (),
            || nix::unistd::linkat(odir.as_fd(), oname, ndir.as_fd(), nname, LinkatFlags::empty()),
        )
    }

    /// `mknodat(2)` — a device node or a FIFO from a layer (`kind` is `'c'`, `'b'` or
    /// `'p'`). Device nodes give access to hardware: only root may make them, and
    /// only when the caller allowed it. <https://man7.org/linux/man-pages/man2/mknodat.2.html>
    #[allow(clippy::too_many_arguments)]
    pub fn mknod_at(
        &self,
        dir: &OwnedFd,
        shown: &str,
        name: &str,
        kind: char,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mknodat",
            man: "mknodat(2)",
            what: "create a device node or a FIFO (a character device 0/0 is an overlayfs whiteout)",
            effect: Effect::Change,
        };
        let (flag, fname) = match kind {
            'c' => (SFlag::S_IFCHR, "S_IFCHR"),
            'b' => (SFlag::S_IFBLK, "S_IFBLK"),
            _ => (SFlag::S_IFIFO, "S_IFIFO"),
        };
        let mut args = at(shown, name);
        args.push(format!("{fname}|{:04o}", mode & 0o7777));
        args.push(format!("makedev({major}, {minor})"));
        self.perform(
            &C,
            args,
            || (),
            || {
                nix::sys::stat::mknodat(
                    dir.as_fd(),
                    name,
                    flag,
                    Perm::from_bits_truncate(mode),
                    libc::makedev(major, minor),
                )
            },
            |_| "0".into(),
        )
    }

    /// `fchownat(2)` with `AT_SYMLINK_NOFOLLOW`, counted.
    /// <https://man7.org/linux/man-pages/man2/fchownat.2.html>
    pub fn chown_at(&self, dir: &OwnedFd, shown: &str, name: &str, uid: u32, gid: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fchownat",
            man: "fchownat(2)",
            what: "change the owner of a file (of a symlink itself, not its target)",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.extend([uid.to_string(), gid.to_string(), "AT_SYMLINK_NOFOLLOW".into()]);
                a
            },
            || (),
            || {
                nix::unistd::fchownat(
                    dir.as_fd(),
                    name,
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    FchownatFlags::AT_SYMLINK_NOFOLLOW,
                )
            },
        )
    }

    /// `fchmodat(2)`, counted (after chown, which clears set-user-ID bits).
    /// Never called on a symlink, whose mode Linux ignores.
    /// <https://man7.org/linux/man-pages/man2/fchmodat.2.html>
    pub fn chmod_at(&self, dir: &OwnedFd, shown: &str, name: &str, mode: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fchmodat",
            man: "fchmodat(2)",
            what: "change the permission bits of a file",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.push(format!("{:04o}", mode & 0o7777));
                a
            },
            || (),
            || {
                nix::sys::stat::fchmodat(
                    dir.as_fd(),
                    name,
                    Perm::from_bits_truncate(mode & 0o7777),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
            },
        )
    }

    /// `utimensat(2)` with `AT_SYMLINK_NOFOLLOW`, counted: set access and modification
    /// times to the entry's mtime. <https://man7.org/linux/man-pages/man2/utimensat.2.html>
    pub fn utimes_at(&self, dir: &OwnedFd, shown: &str, name: &str, secs: i64, nsecs: i64) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "utimensat",
            man: "utimensat(2)",
            what: "set a file's access and modification times",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(shown, name);
                a.push(format!("[{secs}.{nsecs:09}, {secs}.{nsecs:09}]"));
                a.push("AT_SYMLINK_NOFOLLOW".into());
                a
            },
            || (),
            || {
                let t = nix::sys::time::TimeSpec::new(secs, nsecs);
                nix::sys::stat::utimensat(dir.as_fd(), name, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            },
        )
    }

    /// `lsetxattr(2)` on an entry under a directory descriptor (reached through
    /// `/proc/self/fd/N/NAME`, whose final component is not followed).
    /// <https://man7.org/linux/man-pages/man2/setxattr.2.html>
    #[doc(alias = "lsetxattr")]
    pub fn setxattr_at(&self, dir: &OwnedFd, shown: &str, name: &str, key: &str, value: &[u8]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lsetxattr",
            man: "setxattr(2)",
            what: "set an extended attribute (trusted.overlay.opaque=y makes an overlay directory opaque)",
            effect: Effect::Change,
        };
        let args = vec![
            quote(&format!("{shown}/{name}"), 256),
            quote(key, 64),
            quote(&String::from_utf8_lossy(value), 64),
            value.len().to_string(),
            "0".into(),
        ];
        self.perform(&C, args, || (), || lsetxattr(&proc_path(dir, name), key, value), |_| "0".into())
    }

    /// `unlinkat(2)` (with `AT_REMOVEDIR` for a directory, emptied first, depth
    /// first, never following a symlink): remove `name` and all below it. Returns
    /// whether something was there. Traced: this is what a whiteout does to a flat
    /// rootfs. <https://man7.org/linux/man-pages/man2/unlinkat.2.html>
    #[doc(alias = "unlinkat")]
    pub fn remove_all_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<bool, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "unlinkat",
            man: "unlinkat(2)",
            what: "remove a name from a directory (a directory is emptied first, depth first)",
            effect: Effect::Change,
        };
        let Some(m) = self.stat_at(dir, name)? else { return Ok(false) };
        let mut args = at(shown, name);
        args.push(if m.is_dir() { "AT_REMOVEDIR".into() } else { "0".into() });
        let show = if m.is_dir() { "0 /* with its content */" } else { "0" };
        if m.is_dir() {
            self.empty_dir_at(dir, shown, name)?;
        }
        let fl = if m.is_dir() { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
        self.perform(&C, args, || true, || nix::unistd::unlinkat(dir.as_fd(), name, fl).map(|_| true), |_| show.into())
    }

    /// [`Kernel::remove_all_at`], counted: make room for an entry that replaces
    /// another of the same name.
    pub fn replace_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<(), SysError> {
        let Some(m) = self.stat_at(dir, name)? else { return Ok(()) };
        if m.is_dir() {
            self.empty_dir_at(dir, shown, name)?;
        }
        self.unlink_at_counted(dir, shown, name, m.is_dir())
    }

    /// Remove everything inside the directory `name` of `dir`, depth first, never
    /// following a symlink: a walk of counted `openat`/`getdents64`/`unlinkat`
    /// requests, each in the JSON trace.
    fn empty_dir_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<(), SysError> {
        const OPEN: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a directory (without following a symlink) to work inside it",
            effect: Effect::Query,
        };
        let sub_shown = if shown.is_empty() { name.to_string() } else { format!("{shown}/{name}") };
        let fl = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut args = at(shown, name);
        args.push("O_PATH|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC".into());
        let sub =
            self.bulk(&OPEN, || args, || unreachable!(), || nix::fcntl::openat(dir.as_fd(), name, fl, Perm::empty()))?;
        for child in self.list_at(&sub, &sub_shown, ".")? {
            let is_dir = matches!(self.stat_at(&sub, &child)?, Some(m) if m.is_dir());
            if is_dir {
                self.empty_dir_at(&sub, &sub_shown, &child)?;
            }
            self.unlink_at_counted(&sub, &sub_shown, &child, is_dir)?;
        }
        Ok(())
    }

    /// `unlinkat(2)` of one name (`AT_REMOVEDIR` for an empty directory), counted:
    /// how a refused layer's entries are taken back, newest first.
    /// <https://man7.org/linux/man-pages/man2/unlinkat.2.html>
    #[doc(alias = "unlinkat")]
    pub fn unlink_at(&self, dir: &OwnedFd, shown: &str, name: &str, is_dir: bool) -> Result<(), SysError> {
        self.unlink_at_counted(dir, shown, name, is_dir)
    }

    /// `renameat(2)` — move `oname` of directory `odir` to `nname` of `ndir` (same
    /// filesystem), replacing nothing: the target must not exist. How a layer puts
    /// aside what it replaces or deletes until it is complete, so a refused layer can
    /// put it back. <https://man7.org/linux/man-pages/man2/renameat.2.html>
    #[doc(alias = "renameat")]
    #[allow(clippy::too_many_arguments)]
    pub fn rename_at(
        &self,
        odir: &OwnedFd,
        oshown: &str,
        oname: &str,
        ndir: &OwnedFd,
        nshown: &str,
        nname: &str,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "renameat2",
            man: "renameat2(2)",
            what: "move a name to another directory of the same filesystem, failing if the new name is taken",
            effect: Effect::Change,
        };
        let mut args = at(oshown, oname);
        args.extend(at(nshown, nname));
        args.push("RENAME_NOREPLACE".into());
        self.perform(&C, args, || (), || renameat_noreplace(odir, oname, ndir, nname), |_| "0".into())
    }

    /// [`Kernel::rename_at`], counted: one of many alike (the entries a layer replaces).
    #[allow(clippy::too_many_arguments)]
    pub fn rename_at_counted(
        &self,
        odir: &OwnedFd,
        oshown: &str,
        oname: &str,
        ndir: &OwnedFd,
        nshown: &str,
        nname: &str,
    ) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "renameat2",
            man: "renameat2(2)",
            what: "move a name to another directory of the same filesystem, failing if the new name is taken",
            effect: Effect::Change,
        };
        self.bulk(
            &C,
            || {
                let mut a = at(oshown, oname);
                a.extend(at(nshown, nname));
                a.push("RENAME_NOREPLACE".into());
                a
            },
            || (),
            || renameat_noreplace(odir, oname, ndir, nname),
        )
    }

    /// `llistxattr(2)` + `lgetxattr(2)` of an entry under a directory descriptor,
    /// counted: its extended attributes, sorted by name.
    pub fn xattrs_at(&self, dir: &OwnedFd, name: &str) -> Result<Vec<(String, Vec<u8>)>, SysError> {
        self.xattrs_bulk(&proc_path(dir, name))
    }

    /// `lremovexattr(2)` on an entry under a directory descriptor: take an extended
    /// attribute away (a refused layer's, from a directory that was there before).
    /// <https://man7.org/linux/man-pages/man2/removexattr.2.html>
    #[doc(alias = "lremovexattr")]
    pub fn removexattr_at(&self, dir: &OwnedFd, shown: &str, name: &str, key: &str) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "lremovexattr",
            man: "removexattr(2)",
            what: "remove an extended attribute from a file (not following a symlink)",
            effect: Effect::Change,
        };
        let args = vec![quote(&format!("{shown}/{name}"), 256), quote(key, 64)];
        self.perform(&C, args, || (), || lremovexattr(&proc_path(dir, name), key), |_| "0".into())
    }

    /// `unlinkat(2)` of one name (`AT_REMOVEDIR` for an empty directory), counted.
    fn unlink_at_counted(&self, dir: &OwnedFd, shown: &str, name: &str, is_dir: bool) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "unlinkat",
            man: "unlinkat(2)",
            what: "remove a name from a directory",
            effect: Effect::Change,
        };
        let fl = if is_dir { UnlinkatFlags::RemoveDir } else { UnlinkatFlags::NoRemoveDir };
        let mut args = at(shown, name);
        args.push(if is_dir { "AT_REMOVEDIR".into() } else { "0".into() });
        self.bulk(&C, || args, || (), || nix::unistd::unlinkat(dir.as_fd(), name, fl))
    }

    /// `fstatat(2)` with `AT_SYMLINK_NOFOLLOW`, counted: what is at `name` (`None`
    /// when nothing). <https://man7.org/linux/man-pages/man2/fstatat.2.html>
    #[doc(alias = "fstatat")]
    pub fn stat_at(&self, dir: &OwnedFd, name: &str) -> Result<Option<Metadata>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "newfstatat",
            man: "fstatat(2)",
            what: "read a file's type and mode relative to a directory descriptor",
            effect: Effect::Query,
        };
        let path = proc_path(dir, name);
        let r = self.bulk(
            &C,
            || vec![quote(&path.to_string_lossy(), 200), "AT_SYMLINK_NOFOLLOW".into()],
            || unreachable!(),
            || match std::fs::symlink_metadata(&path) {
                Ok(m) => Ok(Some(m)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(super_errno(e)),
            },
        );
        r
    }

    /// `getdents64(2)` on a directory descriptor, counted: the names in it.
    /// <https://man7.org/linux/man-pages/man2/getdents64.2.html>
    #[doc(alias = "getdents64")]
    pub fn list_at(&self, dir: &OwnedFd, shown: &str, name: &str) -> Result<Vec<String>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "getdents64",
            man: "getdents64(2)",
            what: "list the entries of a directory",
            effect: Effect::Query,
        };
        self.bulk(&C, || at(shown, name), || unreachable!(), || list_dir(dir, name))
    }

    /// `statvfs(2)` — the bytes free on the filesystem of `path`, so an entry claiming
    /// an absurd size is refused before anything is written.
    /// <https://man7.org/linux/man-pages/man3/statvfs.3.html>
    #[doc(alias = "statvfs")]
    pub fn free_bytes(&self, path: &Path) -> Result<u64, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "statfs",
            man: "statfs(2)",
            what: "ask how much space is free on a filesystem",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![quote(&path.to_string_lossy(), 256)],
            || unreachable!(),
            || {
                let s = nix::sys::statvfs::statvfs(path)?;
                Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
            },
            |n| format!("0 {{f_bavail*f_frsize={n}}}"),
        )
    }

    /// `llistxattr(2)` + `lgetxattr(2)`, counted: every extended attribute of a file,
    /// sorted by name (what `pack` stores as `SCHILY.xattr.*` PAX records).
    /// <https://man7.org/linux/man-pages/man2/listxattr.2.html>
    #[doc(alias = "llistxattr")]
    pub fn xattrs_bulk(&self, path: &Path) -> Result<Vec<(String, Vec<u8>)>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "llistxattr",
            man: "listxattr(2)",
            what: "list and read the extended attributes of a file",
            effect: Effect::Query,
        };
        self.bulk(
            &C,
            || vec![quote(&path.to_string_lossy(), 256)],
            || unreachable!(),
            || {
                let names = match llistxattr(path) {
                    Ok(n) => n,
                    Err(Errno::ENOTSUP) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let mut out = Vec::new();
                for n in names {
                    match lgetxattr(path, &n) {
                        Ok(v) => out.push((n, v)),
                        Err(Errno::ENODATA) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(out)
            },
        )
    }
}

fn renameat_noreplace(odir: &OwnedFd, oname: &str, ndir: &OwnedFd, nname: &str) -> Result<(), Errno> {
    nix::fcntl::renameat2(odir.as_fd(), oname, ndir.as_fd(), nname, nix::fcntl::RenameFlags::RENAME_NOREPLACE)
}

fn list_dir(dir: &OwnedFd, name: &str) -> Result<Vec<String>, Errno> {
    let fl = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(dir.as_fd(), name, fl, Perm::empty())?;
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    names.sort();
    Ok(names)
}
