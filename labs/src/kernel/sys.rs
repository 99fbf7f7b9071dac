//! Namespaces, mounts, hostnames, identities: the system calls of the `ns` lab.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode as Perm;

use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

/// A file descriptor the kernel layer opened, remembered with its path so the trace
/// can print `setns(3</proc/42/ns/net>, CLONE_NEWNET)` as `strace -y` does.
#[derive(Debug)]
pub struct Fd {
    fd: Option<OwnedFd>,
    num: RawFd,
    path: String,
}

impl Fd {
    /// `3</proc/42/ns/net>`.
    pub fn shown(&self) -> String {
        format!("{}<{}>", self.num, self.path)
    }
    /// The path it was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// One kind of namespace: its name under /proc/PID/ns and its clone flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    /// The user namespace: uid/gid mappings and capabilities (`CLONE_NEWUSER`).
    User,
    /// Mount table (`CLONE_NEWNS`, the first namespace Linux had, hence its name).
    #[value(name = "mount", alias = "mnt")]
    #[serde(rename = "mnt")]
    Mount,
    /// Hostname and NIS domain name (`CLONE_NEWUTS`).
    Uts,
    /// System V IPC and POSIX message queues (`CLONE_NEWIPC`).
    Ipc,
    /// Process IDs: the first process inside is PID 1 (`CLONE_NEWPID`).
    Pid,
    /// Network devices, addresses, routes, ports (`CLONE_NEWNET`).
    Net,
    /// The cgroup root seen in /proc/self/cgroup (`CLONE_NEWCGROUP`).
    Cgroup,
    /// CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets (`CLONE_NEWTIME`).
    Time,
}

impl NsKind {
    /// Every kind, in the order they are entered (user first, mount after pid).
    pub const ALL: [NsKind; 8] = [
        NsKind::User,
        NsKind::Cgroup,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Mount,
        NsKind::Time,
    ];

    /// The clone(2) flag.
    pub fn flag(self) -> CloneFlags {
        CloneFlags::from_bits_retain(match self {
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Mount => libc::CLONE_NEWNS,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Net => libc::CLONE_NEWNET,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => libc::CLONE_NEWTIME,
        })
    }

    /// The file name under /proc/PID/ns.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Mount => "mnt",
            NsKind::Uts => "uts",
            NsKind::Ipc => "ipc",
            NsKind::Pid => "pid",
            NsKind::Net => "net",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }
}

/// The real and effective ids of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    /// Real user id.
    pub uid: u32,
    /// Effective user id (the one permission checks use).
    pub euid: u32,
    /// Real group id.
    pub gid: u32,
    /// Effective group id.
    pub egid: u32,
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

fn path_arg(p: &Path) -> String {
    quote(&p.to_string_lossy(), 256)
}

impl Kernel {
    /// `unshare(2)` — move this process into new namespaces of the given kinds.
    /// A new PID namespace applies to the children created afterwards, not to the
    /// caller. <https://man7.org/linux/man-pages/man2/unshare.2.html>
    pub fn unshare(&self, ns: CloneFlags) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "unshare",
            man: "unshare(2)",
            what: "detach this process from namespaces it shared with its parent and create new ones",
            effect: Effect::Change,
        };
        let args = vec![flags::render(ns.bits() as u64, flags::CLONE)];
        self.perform(&C, args, || (), || nix::sched::unshare(ns), |_| "0".into())
    }

    /// `setns(2)` — join the namespace `fd` refers to (an open /proc/PID/ns/* file).
    /// <https://man7.org/linux/man-pages/man2/setns.2.html>
    pub fn setns(&self, fd: &Fd, ns: CloneFlags) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setns",
            man: "setns(2)",
            what: "move this process into an existing namespace, named by an open /proc/PID/ns file",
            effect: Effect::Change,
        };
        let args = vec![fd.shown(), flags::render(ns.bits() as u64, flags::CLONE)];
        self.perform(
            &C,
            args,
            || (),
            || match &fd.fd {
                Some(f) => nix::sched::setns(f, ns),
                None => Err(Errno::EBADF),
            },
            |_| "0".into(),
        )
    }

    /// `openat(2)` — open `path` for reading (namespace files, /proc entries).
    /// <https://man7.org/linux/man-pages/man2/openat.2.html>
    #[doc(alias = "openat")]
    pub fn open_read(&self, path: &Path) -> Result<Fd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a file and get a descriptor for it",
            effect: Effect::Query,
        };
        let fl = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let args = vec!["AT_FDCWD".into(), path_arg(path), flags::open_flags(fl.bits())];
        let shown = path.to_string_lossy().into_owned();
        self.perform(
            &C,
            args,
            || Fd { fd: None, num: -1, path: shown.clone() },
            || {
                let fd = nix::fcntl::open(path, fl, Perm::empty())?;
                Ok(Fd { num: fd.as_raw_fd(), fd: Some(fd), path: shown.clone() })
            },
            |f| f.num.to_string(),
        )
    }

    /// `sethostname(2)` — set the hostname of this UTS namespace.
    /// <https://man7.org/linux/man-pages/man2/sethostname.2.html>
    pub fn sethostname(&self, name: &str) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "sethostname",
            man: "sethostname(2)",
            what: "set the hostname seen by every process of this UTS namespace",
            effect: Effect::Change,
        };
        let args = vec![quote(name, 64), name.len().to_string()];
        self.perform(&C, args, || (), || nix::unistd::sethostname(name), |_| "0".into())
    }

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
        let args = vec![
            opt(source),
            path_arg(target),
            opt(fstype),
            flags::render(fl.bits(), flags::MS),
            opt(data),
        ];
        self.perform(
            &C,
            args,
            || (),
            || nix::mount::mount(source, target, fstype, fl, data),
            |_| "0".into(),
        )
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

    /// `chdir(2)` — change the working directory.
    /// <https://man7.org/linux/man-pages/man2/chdir.2.html>
    pub fn chdir(&self, dir: &Path) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "chdir",
            man: "chdir(2)",
            what: "change the working directory of this process",
            effect: Effect::Change,
        };
        self.perform(&C, vec![path_arg(dir)], || (), || nix::unistd::chdir(dir), |_| "0".into())
    }

    /// `getuid(2)`, `geteuid(2)`, `getgid(2)`, `getegid(2)` — who this process is.
    /// <https://man7.org/linux/man-pages/man2/getuid.2.html>
    pub fn ids(&self) -> UserIds {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "getresuid",
            man: "getresuid(2)",
            what: "ask who this process is: its real, effective and saved user ids",
            effect: Effect::Query,
        };
        const G: Call = Call {
            kind: Kind::Syscall,
            name: "getresgid",
            man: "getresgid(2)",
            what: "ask which groups this process acts as: real, effective and saved group ids",
            effect: Effect::Query,
        };
        let u = self
            .perform(&C, vec![], || unreachable!(), || nix::unistd::getresuid(), |r| {
                format!("0 [ruid={}, euid={}, suid={}]", r.real, r.effective, r.saved)
            })
            .map(|r| (r.real.as_raw(), r.effective.as_raw()))
            .unwrap_or((u32::MAX, u32::MAX));
        let g = self
            .perform(&G, vec![], || unreachable!(), || nix::unistd::getresgid(), |r| {
                format!("0 [rgid={}, egid={}, sgid={}]", r.real, r.effective, r.saved)
            })
            .map(|r| (r.real.as_raw(), r.effective.as_raw()))
            .unwrap_or((u32::MAX, u32::MAX));
        UserIds { uid: u.0, euid: u.1, gid: g.0, egid: g.1 }
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
                    x if x == libc::CGROUP2_SUPER_MAGIC as i64 => CgroupFs::V2,
                    x if x == libc::CGROUP_SUPER_MAGIC as i64 => CgroupFs::V1,
                    x if x == libc::TMPFS_MAGIC as i64 => CgroupFs::Tmpfs,
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

impl Kernel {
    /// `setsid(2)` — start a new session, so the terminal's signals (Ctrl-C, hangup)
    /// no longer reach this process: what a detached container needs.
    /// <https://man7.org/linux/man-pages/man2/setsid.2.html>
    pub fn setsid(&self) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setsid",
            man: "setsid(2)",
            what: "start a new session without a controlling terminal",
            effect: Effect::Change,
        };
        self.perform(&C, vec![], || (), || nix::unistd::setsid().map(|_| ()), |_| "0".into())
    }

    /// `dup2(2)` — make descriptors 0, 1 and 2 point at `path` (opened read-write), so
    /// a detached process holds no pipe of its parent's open.
    /// <https://man7.org/linux/man-pages/man2/dup2.2.html>
    #[doc(alias = "dup2")]
    pub fn redirect_stdio(&self, path: &Path) -> Result<(), SysError> {
        const OPEN: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a file and get a descriptor for it",
            effect: Effect::Change,
        };
        const DUP: Call = Call {
            kind: Kind::Syscall,
            name: "dup2",
            man: "dup2(2)",
            what: "make a descriptor number refer to another open file",
            effect: Effect::Change,
        };
        let fl = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let args = vec!["AT_FDCWD".into(), path_arg(path), flags::open_flags(fl.bits())];
        let fd = self.perform(
            &OPEN,
            args,
            || None,
            || nix::fcntl::open(path, fl, Perm::empty()).map(Some),
            |f| f.as_ref().map(|f| f.as_raw_fd().to_string()).unwrap_or_default(),
        )?;
        for target in 0..3 {
            let num = fd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(3);
            self.perform(
                &DUP,
                vec![num.to_string(), target.to_string()],
                || (),
                // SAFETY: dup2 onto 0/1/2 replaces them; no Rust object owns those numbers.
                || match unsafe { libc::dup2(num, target) } {
                    -1 => Err(Errno::last()),
                    _ => Ok(()),
                },
                |_| target.to_string(),
            )?;
        }
        Ok(())
    }
}
