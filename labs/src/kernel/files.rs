//! Kernel files: the parts of the kernel's interface that are files under /proc and
//! /sys (cgroupfs, uid_map, /proc/PID/ns). Each read or write is one event.

use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode as Perm;

use super::errno_of;
use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
}

fn path_arg(path: &Path) -> String {
    p(path)
}

fn super_errno(e: std::io::Error) -> Errno {
    errno_of(e)
}

impl Kernel {
    /// `write(2)` to a kernel file: open it write-only (no create, no truncate: these
    /// files are attributes, not storage), write `data` in one call, close. Kernel
    /// files act on each write, so one write is one request.
    /// <https://man7.org/linux/man-pages/man2/write.2.html>
    #[doc(alias = "write")]
    pub fn write_file(&self, path: &Path, data: &str) -> Result<usize, SysError> {
        const C: Call = Call {
            kind: Kind::File,
            name: "write",
            man: "write(2)",
            what: "write to a kernel file; the kernel acts on the value when it receives it",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![p(path), quote(data, 64)],
            || data.len(),
            || {
                let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(errno_of)?;
                f.write(data.as_bytes()).map_err(errno_of)
            },
            |n| n.to_string(),
        )
    }

    /// `read(2)` a kernel file whole (cgroup counters, /proc/PID/...).
    /// <https://man7.org/linux/man-pages/man2/read.2.html>
    #[doc(alias = "read")]
    pub fn read_file(&self, path: &Path) -> Result<String, SysError> {
        const C: Call = Call {
            kind: Kind::File,
            name: "read",
            man: "read(2)",
            what: "read a kernel file; its content is made by the kernel at the moment of reading",
            effect: Effect::Query,
        };
        self.perform_out(
            &C,
            vec![p(path)],
            || unreachable!(),
            || {
                let mut s = String::new();
                std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s)).map_err(errno_of)?;
                Ok(s)
            },
            |s| (s.len().to_string(), Some(quote(s, 64))),
        )
    }

    /// `read(2)` a file whole, counted: one of many small reads (every container's
    /// record for `ps`, every monitor's `/proc/PID/stat`) that the text trace sums up.
    /// <https://man7.org/linux/man-pages/man2/read.2.html>
    pub fn read_counted(&self, path: &Path) -> Result<Vec<u8>, SysError> {
        const C: Call =
            Call { kind: Kind::File, name: "read", man: "read(2)", what: "read a file whole", effect: Effect::Query };
        self.bulk(&C, || vec![p(path)], || unreachable!(), || std::fs::read(path).map_err(errno_of))
    }

    /// `mkdir(2)`. In cgroupfs, making a directory makes a cgroup.
    /// <https://man7.org/linux/man-pages/man2/mkdir.2.html>
    pub fn mkdir(&self, path: &Path, mode: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mkdir",
            man: "mkdir(2)",
            what: "create a directory (in cgroupfs: a new cgroup, its control files appear inside)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![p(path), format!("{mode:#o}")],
            || (),
            || std::fs::DirBuilder::new().mode(mode).create(path).map_err(errno_of),
            |_| "0".into(),
        )
    }

    /// `rmdir(2)`. In cgroupfs, removes an empty cgroup (no processes, no children).
    /// <https://man7.org/linux/man-pages/man2/rmdir.2.html>
    pub fn rmdir(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rmdir",
            man: "rmdir(2)",
            what: "remove an empty directory (in cgroupfs: a cgroup with no process and no child)",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(path)], || (), || std::fs::remove_dir(path).map_err(errno_of), |_| "0".into())
    }

    /// `getdents64(2)` — the names in a directory, sorted.
    /// <https://man7.org/linux/man-pages/man2/getdents64.2.html>
    #[doc(alias = "getdents64")]
    pub fn read_dir(&self, path: &Path) -> Result<Vec<String>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "getdents64",
            man: "getdents64(2)",
            what: "list the entries of a directory",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![p(path)],
            || unreachable!(),
            || {
                let mut names: Vec<String> = std::fs::read_dir(path)
                    .map_err(errno_of)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                Ok(names)
            },
            |v| format!("{} entries", v.len()),
        )
    }

    /// `readlink(2)` — where a symbolic link points (`/proc/PID/ns/net` → `net:[4026531840]`).
    /// <https://man7.org/linux/man-pages/man2/readlink.2.html>
    pub fn readlink(&self, path: &Path) -> Result<String, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "readlink",
            man: "readlink(2)",
            what: "read where a symbolic link points",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![p(path)],
            || unreachable!(),
            || nix::fcntl::readlink(path).map(|s| s.to_string_lossy().into_owned()),
            |s| quote(s, 256),
        )
    }

    /// `access(2)` with `F_OK` — whether `path` exists.
    /// <https://man7.org/linux/man-pages/man2/access.2.html>
    #[doc(alias = "access")]
    pub fn exists(&self, path: &Path) -> bool {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "access",
            man: "access(2)",
            what: "check whether a file exists",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![p(path), "F_OK".into()],
            || unreachable!(),
            || nix::unistd::access(path, nix::unistd::AccessFlags::F_OK),
            |_| "0".into(),
        )
        .is_ok()
    }

    /// Resolve `program` like execvp(3): a name without `/` is searched in `$PATH`.
    /// Each candidate is one `access(2)` with `X_OK` in the trace.
    pub fn which(&self, program: &str) -> Option<PathBuf> {
        self.which_in(program, std::env::var("PATH").ok().as_deref())
    }

    /// [`Kernel::which`] with a given search path (the `PATH=` of the environment a
    /// command will get; `None`: `/usr/local/bin:/usr/bin:/bin`), searched from this
    /// process's root, which may be a container's new root.
    pub fn which_in(&self, program: &str, search: Option<&str>) -> Option<PathBuf> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "access",
            man: "access(2)",
            what: "check whether a file exists and may be executed (searching $PATH as execvp(3) does)",
            effect: Effect::Query,
        };
        if program.contains('/') {
            return Some(PathBuf::from(program));
        }
        let path = search.unwrap_or("/usr/local/bin:/usr/bin:/bin");
        let mut seen = std::collections::HashSet::new();
        for dir in path.split(':').filter(|d| !d.is_empty() && seen.insert(*d)) {
            let cand = Path::new(dir).join(program);
            let ok = self
                .perform(
                    &C,
                    vec![p(&cand), "X_OK".into()],
                    || unreachable!(),
                    || nix::unistd::access(&cand, nix::unistd::AccessFlags::X_OK),
                    |_| "0".into(),
                )
                .is_ok();
            if ok {
                return Some(cand);
            }
        }
        None
    }

    /// `unlink(2)` — remove a name from the filesystem (a device node, a blob, a
    /// namespace's mount point under /run/netns); the file itself goes when no one has
    /// it open. <https://man7.org/linux/man-pages/man2/unlink.2.html>
    pub fn unlink(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "unlink",
            man: "unlink(2)",
            what: "remove a name from the filesystem; the file goes when no one has it open",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(path)], || (), || nix::unistd::unlink(path), |_| "0".into())
    }

    /// `flock(2)` — take an advisory lock on an open file: `exclusive` (`LOCK_EX`)
    /// for writers, shared (`LOCK_SH`) for readers; `nonblock` adds `LOCK_NB`, which
    /// fails with `EWOULDBLOCK` instead of waiting. The lock belongs to the open file
    /// and is released when it is closed (or the process dies), so a crashed pull
    /// never leaves the store locked.
    /// <https://man7.org/linux/man-pages/man2/flock.2.html>
    pub fn flock(&self, file: &File, path: &Path, exclusive: bool, nonblock: bool) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "flock",
            man: "flock(2)",
            what: "take an advisory lock on an open file; it is released when the file is closed",
            effect: Effect::Query,
        };
        let mut op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        let mut shown = if exclusive { "LOCK_EX".to_string() } else { "LOCK_SH".to_string() };
        if nonblock {
            op |= libc::LOCK_NB;
            shown.push_str("|LOCK_NB");
        }
        let fd = file.as_raw_fd();
        self.perform(
            &C,
            vec![p(path), shown],
            || (),
            || {
                // SAFETY: fd is a valid open descriptor owned by `file` for this call.
                let r = unsafe { libc::flock(fd, op) };
                if r == 0 {
                    Ok(())
                } else {
                    Err(Errno::last())
                }
            },
            |_| "0".into(),
        )
    }

    /// `write(2)` a state file in place (the network lab's leases and hosts files): open it (creating it if
    /// needed) *without* `O_TRUNC`, write `data` from offset 0, then `ftruncate(2)` to
    /// its new length when it shrank. The inode stays the same (a bind mount of the hosts file sees
    /// the change), and a file that does not shrink below a block frees no block: on a
    /// filesystem mounted with `discard`, truncating to zero then writing again would
    /// make the kernel discard the freed block synchronously, at every attach.
    /// <https://man7.org/linux/man-pages/man2/write.2.html>
    /// <https://man7.org/linux/man-pages/man2/ftruncate.2.html>
    pub fn rewrite_file(&self, path: &Path, data: &str) -> Result<usize, SysError> {
        const C: Call = Call {
            kind: Kind::File,
            name: "write",
            man: "write(2)",
            what: "write a file in place (no O_TRUNC: write from offset 0, then ftruncate(2) if it shrank)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![p(path), quote(data, 64)],
            || data.len(),
            || {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)
                    .map_err(errno_of)?;
                let old = f.metadata().map_err(errno_of)?.len();
                f.write_all_at(data.as_bytes(), 0).map_err(errno_of)?;
                // Only when it shrank: ext4 runs its truncate path even for an unchanged
                // size, dropping (and discarding) the blocks it preallocated.
                if (data.len() as u64) < old {
                    f.set_len(data.len() as u64).map_err(errno_of)?;
                }
                Ok(data.len())
            },
            |n| n.to_string(),
        )
    }
}

impl Kernel {
    /// `openat(2)` with `O_RDWR|O_CREAT|O_CLOEXEC`, mode 0644: open a file, creating it
    /// when missing (a lock file). A dry run creates nothing and gives `None`.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn open_create(&self, path: &Path, what: &'static str) -> Result<Option<File>, SysError> {
        let call = Call { kind: Kind::Syscall, name: "openat", man: "openat(2)", what, effect: Effect::Change };
        let fl = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_CLOEXEC;
        let args = vec!["AT_FDCWD".into(), quote(&path.to_string_lossy(), 256), flags::open_flags(fl.bits())];
        self.perform(
            &call,
            args,
            || None,
            || nix::fcntl::open(path, fl, Perm::from_bits_truncate(0o644)).map(|fd| Some(File::from(fd))),
            // A dry run opens nothing: it shows the descriptor the open would give.
            |f| f.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_else(|| "3".into()),
        )
    }

    /// `openat(2)` with `O_CREAT|O_EXCL`: create the empty file a namespace will be
    /// bind-mounted on, failing if it exists (`ip netns add` does the same).
    pub fn create_excl(&self, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "create an empty file, failing if the name is taken",
            effect: Effect::Change,
        };
        let fl = OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        self.perform(
            &C,
            vec![
                "AT_FDCWD".into(),
                quote(&path.to_string_lossy(), 256),
                "O_RDONLY|O_CREAT|O_EXCL|O_CLOEXEC".into(),
                "0".into(),
            ],
            || 3,
            || nix::fcntl::open(path, fl, Perm::empty()).map(|f| f.as_raw_fd()),
            |fd| fd.to_string(),
        )
        .map(|_| ())
    }
}

impl Kernel {
    /// `openat(2)` with `O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC`: create a new file, failing
    /// (`EEXIST`) if the name is taken, so nothing already there (a planted symlink, a
    /// file another process writes) is ever written through. The caller then writes
    /// the content through the returned file: a blob, an archive, a JSON record. A
    /// dry run creates nothing and gives `None`.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn create_new(&self, path: &Path, mode: u32, what: &'static str) -> Result<Option<File>, SysError> {
        let call = Call { kind: Kind::Syscall, name: "openat", man: "openat(2)", what, effect: Effect::Change };
        let fl = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
        let args = vec!["AT_FDCWD".into(), p(path), flags::open_flags(fl.bits()), format!("{mode:#o}")];
        self.perform(
            &call,
            args,
            || None,
            || nix::fcntl::open(path, fl, Perm::from_bits_truncate(mode)).map(|fd| Some(File::from(fd))),
            |f| f.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_else(|| "3".into()),
        )
    }

    /// `symlinkat(2)` relative to the current directory: make `link` a symbolic link
    /// holding `target` (which is not checked: a symlink may dangle).
    /// <https://man7.org/linux/man-pages/man2/symlinkat.2.html>
    #[doc(alias = "symlinkat")]
    pub fn symlink(&self, target: &Path, link: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "symlinkat",
            man: "symlinkat(2)",
            what: "create a symbolic link: a small file holding a path",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![p(target), "AT_FDCWD".into(), p(link)],
            || (),
            || nix::unistd::symlinkat(target, nix::fcntl::AT_FDCWD, link),
            |_| "0".into(),
        )
    }

    /// `linkat(2)` relative to the current directory, without `AT_SYMLINK_FOLLOW`: a
    /// second name `new` for the file `old` (same filesystem; `EXDEV` otherwise).
    /// <https://man7.org/linux/man-pages/man2/linkat.2.html>
    #[doc(alias = "linkat")]
    pub fn hard_link(&self, old: &Path, new: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "linkat",
            man: "linkat(2)",
            what: "create a hard link: a second name for the same file",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), p(old), "AT_FDCWD".into(), p(new), "0".into()],
            || (),
            || std::fs::hard_link(old, new).map_err(errno_of),
            |_| "0".into(),
        )
    }
}

impl Kernel {
    /// `rename(2)` — atomically replace `to` by `from` (same file system). A reader
    /// opening `to` gets either the old file or the new one, never a partial write:
    /// the basis of every "write a temp file, then rename" update.
    /// <https://man7.org/linux/man-pages/man2/rename.2.html>
    #[doc(alias = "rename")]
    pub fn rename_over(&self, from: &Path, to: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rename",
            man: "rename(2)",
            what: "atomically move a file over another; readers see the old or the new one, never half",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(from), p(to)], || (), || std::fs::rename(from, to).map_err(errno_of), |_| "0".into())
    }

    /// `fsync(2)` — wait until the file's data and metadata are on the disk, so the
    /// rename that follows cannot publish a file whose content was lost in a crash.
    /// <https://man7.org/linux/man-pages/man2/fsync.2.html>
    #[doc(alias = "fsync")]
    pub fn fsync_file(&self, file: &File, path: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fsync",
            man: "fsync(2)",
            what: "flush a file's data to the disk before it is published",
            effect: Effect::Change,
        };
        self.perform(&C, vec![p(path)], || (), || file.sync_all().map_err(errno_of), |_| "0".into())
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

impl Kernel {
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
            || nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0),
            |_| "0".into(),
        )
    }
    /// `statfs(2)` — which filesystem `path` is on, told by its magic number; how
    /// contlab tells cgroup v2 from v1 from a tmpfs of v1 hierarchies.
    /// <https://man7.org/linux/man-pages/man2/statfs.2.html>
    #[doc(alias = "statfs")]
    pub fn statfs_cgroup(&self, path: &Path) -> Result<CgroupFs, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "statfs",
            man: "statfs(2)",
            what: "ask which filesystem a path is on (its f_type magic number)",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![path_arg(path)],
            || unreachable!(),
            || {
                let st = nix::sys::statfs::statfs(path)?;
                let t = st.filesystem_type().0 as i64;
                Ok(match t {
                    x if x == libc::CGROUP2_SUPER_MAGIC => CgroupFs::V2,
                    x if x == libc::CGROUP_SUPER_MAGIC => CgroupFs::V1,
                    x if x == libc::TMPFS_MAGIC => CgroupFs::Tmpfs,
                    x => CgroupFs::Other(x),
                })
            },
            |t| {
                let name = match t {
                    CgroupFs::V2 => "CGROUP2_SUPER_MAGIC".to_string(),
                    CgroupFs::V1 => "CGROUP_SUPER_MAGIC".to_string(),
                    CgroupFs::Tmpfs => "TMPFS_MAGIC".to_string(),
                    CgroupFs::Other(x) => format!("{x:#x}"),
                };
                format!("0 {{f_type={name}}}")
            },
        )
    }
}

/// What statfs(2) says a cgroup mount point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupFs {
    /// `CGROUP2_SUPER_MAGIC`: the unified hierarchy.
    V2,
    /// `CGROUP_SUPER_MAGIC`: one v1 hierarchy.
    V1,
    /// `TMPFS_MAGIC`: a tmpfs holding v1 hierarchies (and maybe a v2 one).
    Tmpfs,
    /// Anything else, with its magic number.
    Other(i64),
}

impl Kernel {
    /// `openat(2)` with `O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC` then `write(2)` of `data`: a
    /// new file holding exactly `data` (a record to rename over the old one, an empty
    /// mount point). Fails with EEXIST if `path` exists: a temp name must be fresh. No
    /// `fsync(2)`: a caller that needs the bytes on the disk before it publishes them
    /// (an image blob) syncs them itself. One event for the two calls.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    pub fn write_new_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "create a new file and write it whole (a record is then renamed into place)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![
                "AT_FDCWD".into(),
                p(path),
                "O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC".into(),
                format!("{mode:#o}"),
                format!("/* then write {} bytes */", data.len()),
            ],
            || (),
            || {
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path)
                    .map_err(errno_of)?;
                f.write_all(data).map_err(errno_of)
            },
            |_| "0".into(),
        )
    }
}

impl Kernel {
    /// `mknod(2)` a device node (`c` character, `b` block) with `mode` permission bits.
    /// <https://man7.org/linux/man-pages/man2/mknod.2.html>
    pub fn mknod(&self, path: &Path, kind: char, mode: u32, major: u64, minor: u64) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "mknod",
            man: "mknod(2)",
            what: "create a device node: a name for a device number (only root may)",
            effect: Effect::Change,
        };
        let (flag, t) = if kind == 'b' {
            (nix::sys::stat::SFlag::S_IFBLK, "S_IFBLK")
        } else {
            (nix::sys::stat::SFlag::S_IFCHR, "S_IFCHR")
        };
        self.perform(
            &C,
            vec![p(path), format!("{t}|{:04o}", mode & 0o7777), format!("makedev({major}, {minor})")],
            || (),
            || nix::sys::stat::mknod(path, flag, Perm::from_bits_truncate(mode), nix::sys::stat::makedev(major, minor)),
            |_| "0".into(),
        )
    }

    /// `fchownat(2)` — give `path` an owner and group (not following a final symlink).
    /// <https://man7.org/linux/man-pages/man2/fchownat.2.html>
    #[doc(alias = "fchownat")]
    pub fn chown(&self, path: &Path, uid: u32, gid: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fchownat",
            man: "fchownat(2)",
            what: "change the owner and group of a file",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AT_FDCWD".into(), p(path), uid.to_string(), gid.to_string(), "AT_SYMLINK_NOFOLLOW".into()],
            || (),
            || {
                nix::unistd::fchownat(
                    nix::fcntl::AT_FDCWD,
                    path,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                    nix::unistd::FchownatFlags::AT_SYMLINK_NOFOLLOW,
                )
            },
            |_| "0".into(),
        )
    }

    /// `openat2(2)` with `RESOLVE_IN_ROOT`, then `read(2)`: a file of a container's
    /// root filesystem (its /etc/passwd), resolved as if `root` were `/`, so a symlink
    /// the image planted (`/etc/passwd -> /host/etc/shadow`) cannot lead outside it.
    /// `None` when it does not exist. <https://man7.org/linux/man-pages/man2/openat2.2.html>
    pub fn read_in_root(&self, root: &Path, rel: &str) -> Result<Option<Vec<u8>>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat2",
            man: "openat2(2)",
            what: "open a file of a container's root filesystem, resolving it inside that root only, and read it",
            effect: Effect::Query,
        };
        let r = self.perform(
            &C,
            vec![
                p(root),
                quote(rel, 256),
                "{flags=O_RDONLY|O_CLOEXEC, resolve=RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}".into(),
            ],
            || unreachable!(),
            || {
                use std::io::Read;
                let dir = nix::fcntl::open(root, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Perm::empty())?;
                let how = nix::fcntl::OpenHow::new()
                    .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
                    .resolve(nix::fcntl::ResolveFlag::RESOLVE_IN_ROOT | nix::fcntl::ResolveFlag::RESOLVE_NO_MAGICLINKS);
                let fd = nix::fcntl::openat2(std::os::fd::AsFd::as_fd(&dir), rel, how)?;
                let mut v = Vec::new();
                File::from(fd).read_to_end(&mut v).map_err(errno_of)?;
                Ok(v)
            },
            |v| format!("{} bytes", v.len()),
        );
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.errno == Errno::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Kernel {
    /// `openat(2)` with `O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC`, mode 0640: a file every
    /// write of which goes to its end (a container's log, its trace), made if missing.
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    pub fn open_append(&self, path: &Path, what: &'static str) -> Result<File, SysError> {
        let call = Call { kind: Kind::Syscall, name: "openat", man: "openat(2)", what, effect: Effect::Change };
        let fl = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND | OFlag::O_CLOEXEC;
        self.perform(
            &call,
            vec!["AT_FDCWD".into(), p(path), flags::open_flags(fl.bits()), "0640".into()],
            || unreachable!("append files are live-only"),
            || nix::fcntl::open(path, fl, Perm::from_bits_truncate(0o640)).map(File::from),
            |f| f.as_raw_fd().to_string(),
        )
    }
}
