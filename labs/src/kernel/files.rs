//! Kernel files: the parts of the kernel's interface that are files under /proc and
//! /sys (cgroupfs, uid_map, /proc/PID/ns). Each read or write is one event.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::errno_of;
use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
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
                std::fs::File::open(path)
                    .and_then(|mut f| f.read_to_string(&mut s))
                    .map_err(errno_of)?;
                Ok(s)
            },
            |s| (s.len().to_string(), Some(quote(s, 64))),
        )
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
        self.perform(&C, vec![p(path)], || (), || std::fs::remove_dir(path).map_err(errno_of), |_| {
            "0".into()
        })
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
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
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
                let f = std::fs::OpenOptions::new().write(true).create(true).open(path).map_err(errno_of)?;
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
