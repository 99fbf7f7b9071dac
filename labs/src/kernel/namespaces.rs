//! Namespaces: create them (`unshare(2)`), join them (`setns(2)` on an open
//! `/proc/PID/ns/*` file), and set what a UTS namespace holds (`sethostname(2)`).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode as Perm;

use super::trace::quote;
use super::{flags, Call, Effect, Errno, Kernel, Kind, SysError};

fn path_arg(p: &Path) -> String {
    quote(&p.to_string_lossy(), 256)
}

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
    /// The descriptor's number, for another request (`None` in a dry run).
    pub(crate) fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
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
    pub const ALL: [NsKind; 8] =
        [NsKind::User, NsKind::Cgroup, NsKind::Ipc, NsKind::Uts, NsKind::Net, NsKind::Pid, NsKind::Mount, NsKind::Time];

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
        self.open_ro(&C, path, -1)
    }

    /// `openat(path, O_RDONLY|O_CLOEXEC)` as `call` (its effect decides what a dry run
    /// does); `dry_num`: the descriptor number a dry run shows.
    fn open_ro(&self, call: &Call, path: &Path, dry_num: RawFd) -> Result<Fd, SysError> {
        let fl = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let args = vec!["AT_FDCWD".into(), path_arg(path), flags::open_flags(fl.bits())];
        let shown = path.to_string_lossy().into_owned();
        self.perform(
            call,
            args,
            || Fd { fd: None, num: dry_num, path: shown.clone() },
            || {
                let fd = nix::fcntl::open(path, fl, Perm::empty())?;
                Ok(Fd { num: fd.as_raw_fd(), fd: Some(fd), path: shown.clone() })
            },
            |f| f.num.to_string(),
        )
    }

    /// `openat(2)` of a namespace file of a child this process just made (`fork` or
    /// `clone` returned its PID): [`Kernel::open_read`], recorded rather than made in a
    /// dry run, where that child does not exist.
    #[doc(alias = "openat")]
    pub fn open_child_ns(&self, path: &Path) -> Result<Fd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openat",
            man: "openat(2)",
            what: "open a namespace file of a child process, and get a descriptor that keeps the namespace alive",
            effect: Effect::Change,
        };
        self.open_ro(&C, path, 5)
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
}
