//! # The kernel layer: every request contlab makes of Linux, in one place
//!
//! A container is not a thing the kernel knows about. It is a normal process that
//! asked the kernel for a few favours: its own view of the hostname (`unshare(2)`
//! with `CLONE_NEWUTS`), of the process table (`CLONE_NEWPID`), of the mounts
//! (`CLONE_NEWNS` then `pivot_root(2)`), limits on what it may consume (writes into
//! the cgroup filesystem), and so on. To *see* a container, then, you watch those
//! requests. That is what `strace -f docker run ...` would show you if it were not
//! buried under a daemon, a shim and a runtime.
//!
//! contlab makes the requests visible by construction: no lab module calls `nix` or
//! `libc` itself. Every lab receives a [`Kernel`] and asks it. The live kernel
//! performs the call **and** emits the trace line from the call's real result, so the
//! trace cannot drift from what ran. A dry-run kernel ([`Mode::DryRun`]) performs the
//! queries (reading a file, `statfs`) but only records the changes, which is how
//! `--dry-run` shows a plan and how unit tests check which flags a lab used.
//!
//! Each method is documented by the system call it makes first, then what it does,
//! then its man page, as the kernel's own documentation is organised.

// One file per kernel interface.
mod block;
mod bpf;
mod caps;
mod dirfd;
mod dm;
mod files;
pub mod flags;
mod io;
mod mountinfo;
mod mounts;
mod namespaces;
mod nft;
mod process;
mod rtnl;
mod syscalls;
mod trace;
mod tty;
mod xattr;

use std::cell::{Cell, RefCell};
use std::fmt;

// The types of the kernel's vocabulary that labs name (flags, signals, PIDs): labs
// import them from here, never from nix, so the kernel layer stays the one door.
pub use block::{DevFd, LoopDev};
pub use bpf::{BpfInsn, BpfProg};
pub use caps::{all_caps, bounding_caps, cap_mask, rlimit_named, Cap};
pub use dm::{DmInfo, DmTarget, DM_CONTROL};
pub use files::CgroupFs;
pub use io::{fd_of, Io, Ready, SignalFd, Want};
pub use mountinfo::{parse_mountinfo, unescape, MountInfo};
pub use mounts::FsFd;
pub use namespaces::{Fd, NsKind};
pub use nft::{Expr, Hook, MetaKey, NftMsg, NftRule};
pub use nix::errno::Errno;
pub use nix::mount::{MntFlags, MsFlags};
pub use nix::sched::CloneFlags;
pub use nix::sys::signal::{SigmaskHow, Signal};
pub use nix::unistd::Pid;
pub use process::{ExecFailure, Exited, Gated, Spawned, UserIds, FORWARDED};
pub use rtnl::{Addr, Link, LinkChange, Route};
pub use syscalls::syscall_number;
pub use trace::{man_url, quote, ColorChoice, Event, Kind, Ret, Sink, Target, TraceFormat, Tracer};
pub use tty::{Pty, TermModes, WinSize};

/// Whether requests that change the system are performed or only recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Perform every request.
    Live,
    /// Perform queries (reads, `statfs`), record changes without making them.
    DryRun,
}

/// The errno inside an I/O error (EIO when it carries none).
pub(crate) fn errno_of(e: std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// Whether a request only looks at the system or changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Query,
    Change,
}

/// A kernel request that failed: the call as the trace printed it, and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// `unshare(CLONE_NEWPID)`, `write("/sys/fs/cgroup/x/memory.max", "64M")`.
    pub call: String,
    /// What the kernel answered.
    pub errno: Errno,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {:?} ({})", self.call, self.errno, self.errno.desc())
    }
}

impl std::error::Error for SysError {}

/// The static description of one kind of request.
pub(crate) struct Call {
    pub kind: Kind,
    pub name: &'static str,
    pub man: &'static str,
    pub what: &'static str,
    pub effect: Effect,
}

/// A request a kernel is told to fail, or to stop before: the `nth` (from 1) request
/// named `call` answers `errno` instead of being made, or the process stops itself
/// (`SIGSTOP`) just before making it. How unit tests prove that every rollback removes
/// exactly what was made before a failure, and how the fault tests catch a tool at a
/// chosen step to `kill -9` it there.
///
/// Besides [`Kernel::inject`], every contlab binary reads the environment variable
/// `CONTLAB_FAULT`: a comma-separated list of `CALL:N:ERRNO` (`mkdir:2:EACCES`) or
/// `CALL:N:stop`. It is a test hook, documented so that nobody is surprised by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// The call's name as the trace prints it (`mkdir`, `RTM_NEWLINK`, `fsmount`).
    pub call: String,
    /// Which occurrence, from 1.
    pub nth: u64,
    /// What the kernel answers; `None`: stop the process before the request.
    pub errno: Option<Errno>,
}

impl Injection {
    /// Parse `CALL:N:ERRNO` or `CALL:N:stop`.
    pub fn parse(s: &str) -> Option<Injection> {
        let mut it = s.rsplitn(3, ':');
        let (what, nth, call) = (it.next()?, it.next()?, it.next()?);
        let errno = match what {
            "stop" => None,
            e => Some(errno_named(e)?),
        };
        Some(Injection { call: call.to_string(), nth: nth.parse().ok().filter(|n| *n > 0)?, errno })
    }
}

/// The errno called `name` (`EACCES`), among those a fault test would inject.
fn errno_named(name: &str) -> Option<Errno> {
    use Errno::*;
    [EPERM, ENOENT, EIO, ENOMEM, EACCES, EBUSY, EEXIST, ENOTDIR, EINVAL, ENOSPC, EROFS, EAGAIN, ENODEV, ENXIO, EXDEV]
        .into_iter()
        .find(|e| format!("{e:?}") == name)
}

/// The one door to the kernel. See the module documentation.
///
/// A `Kernel` belongs to one thread (its state is in `Cell`s, so it is neither `Send`
/// nor `Sync`), and contlab's processes are single-threaded when they fork: the child
/// of `fork(2)` has only the thread that forked, and may then run any code until it
/// execs. [`Kernel::fork_with`] checks it.
pub struct Kernel {
    tool: &'static str,
    lab: Cell<&'static str>,
    mode: Mode,
    tracer: Tracer,
    pid: Cell<i32>,
    seq: Cell<u64>,
    why: RefCell<Option<String>>,
    recorded: RefCell<Vec<Event>>,
    keep: bool,
    /// In a child made by [`Kernel::spawn`]: the pipe end that reports a failed exec.
    exec_report: Cell<Option<i32>>,
    /// Whether this process has signals blocked for forwarding (children unblock).
    blocked: Cell<bool>,
    fake_pid: Cell<i32>,
    /// Dry runs: device-mapper minors handed out (no kernel to give real ones).
    fake_minor: Cell<u32>,
    /// Network namespaces opened and the rtnetlink socket opened in each.
    pub(crate) netns: RefCell<rtnl::OpenNs>,
    /// Requests to fail on purpose (tests), and how many of each were seen.
    inject: RefCell<Vec<(Injection, u64)>>,
}

/// While alive, the requests of a [`Kernel`] are attributed to one lab; dropping it
/// restores the previous one. See [`Kernel::scope`].
pub struct Scope<'k> {
    k: &'k Kernel,
    prev: &'static str,
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        self.k.lab.set(self.prev);
    }
}

impl Kernel {
    /// A kernel for `tool`, tracing through `tracer`.
    pub fn new(tool: &'static str, mode: Mode, tracer: Tracer) -> Kernel {
        let pid = std::process::id() as i32;
        Kernel {
            tool,
            lab: Cell::new(tool),
            mode,
            tracer,
            pid: Cell::new(pid),
            seq: Cell::new(0),
            why: RefCell::new(None),
            recorded: RefCell::new(Vec::new()),
            keep: mode == Mode::DryRun,
            exec_report: Cell::new(None),
            blocked: Cell::new(false),
            fake_pid: Cell::new(pid),
            fake_minor: Cell::new(0),
            netns: RefCell::new(rtnl::OpenNs::default()),
            inject: RefCell::new(
                std::env::var("CONTLAB_FAULT")
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(Injection::parse)
                    .map(|i| (i, 0))
                    .collect(),
            ),
        }
    }

    /// Attribute the requests made until the guard is dropped to `lab` (`ovl-mount`,
    /// `netns-bridge`...): `let _s = k.scope("cg-limit");`. A runtime composing the
    /// labs uses it so its trace reads as the sequence of primitives.
    pub fn scope(&self, lab: &'static str) -> Scope<'_> {
        Scope { k: self, prev: self.lab.replace(lab) }
    }

    /// The lab requests are attributed to now.
    pub fn lab(&self) -> &'static str {
        self.lab.get()
    }

    /// The tracer, to add or take sinks (a monitor adds a container's trace file).
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// Make the `nth` request named `call` fail with `errno` (any mode; for tests).
    pub fn inject(&self, call: &str, nth: u64, errno: Errno) -> &Kernel {
        self.inject.borrow_mut().push((Injection { call: call.into(), nth, errno: Some(errno) }, 0));
        self
    }

    /// Whether the request `call` about to be made is one to fail (its errno), after
    /// stopping the process first if it is one to stop before.
    fn injected(&self, call: &str) -> Option<Errno> {
        let mut hit = None;
        let mut stop = false;
        for (i, seen) in self.inject.borrow_mut().iter_mut().filter(|(i, _)| i.call == call) {
            *seen += 1;
            if *seen == i.nth {
                match i.errno {
                    Some(e) => hit = Some(e),
                    None => stop = true,
                }
            }
        }
        if stop {
            // A test waits for this stop, then kills the process with SIGKILL.
            let _ = nix::sys::signal::raise(Signal::SIGSTOP);
        }
        hit
    }

    /// Text sinks print the counts of the bulk requests made since the last call, as
    /// one note starting with `what` (`# applied the layer: openat ×12, mkdirat ×4`).
    pub fn flush_counts(&self, what: &str) {
        let ev = self.event(Kind::Note, "note".into(), vec![what.into()], Ret::None, None, None);
        self.tracer.flush_counts(&ev);
    }

    /// A dry run's next made-up device-mapper minor.
    pub(crate) fn next_fake_minor(&self) -> u32 {
        self.fake_minor.replace(self.fake_minor.get() + 1)
    }

    /// A dry-run kernel that prints nothing and keeps every event, for unit tests.
    pub fn recording(tool: &'static str) -> Kernel {
        Kernel::new(tool, Mode::DryRun, Tracer::silent())
    }

    /// The events recorded so far (dry-run kernels only).
    pub fn events(&self) -> Vec<Event> {
        self.recorded.borrow().clone()
    }

    /// Whether changes are performed.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The tool's name, as shown in the trace.
    pub fn tool(&self) -> &'static str {
        self.tool
    }

    /// Whether the tool's own output should use color (same choice as the trace).
    pub fn color(&self) -> bool {
        self.tracer.color()
    }

    /// Say why the next request is made; `--explain` prints it beside the call.
    pub fn why(&self, reason: impl Into<String>) -> &Kernel {
        *self.why.borrow_mut() = Some(reason.into());
        self
    }

    /// Record a decision of the tool (`# cgroup v2 detected`): not a request, but the
    /// reader of a trace needs it to follow what comes next.
    pub fn note(&self, text: impl Into<String>) {
        self.emit(Kind::Note, "note".into(), vec![text.into()], Ret::None, None, None);
    }

    fn event(
        &self,
        kind: Kind,
        call: String,
        args: Vec<String>,
        ret: Ret,
        man: Option<&'static str>,
        what: Option<&'static str>,
    ) -> Event {
        Event {
            tool: self.tool,
            lab: self.lab.get(),
            pid: self.pid.get(),
            seq: self.seq.get(),
            kind,
            call,
            args,
            ret,
            man,
            what,
            why: self.why.borrow_mut().take(),
            bulk: false,
        }
    }

    fn emit(
        &self,
        kind: Kind,
        call: String,
        args: Vec<String>,
        ret: Ret,
        man: Option<&'static str>,
        what: Option<&'static str>,
    ) {
        self.emit_event(kind, call, args, ret, man, what, false);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_event(
        &self,
        kind: Kind,
        call: String,
        args: Vec<String>,
        ret: Ret,
        man: Option<&'static str>,
        what: Option<&'static str>,
        bulk: bool,
    ) {
        self.seq.set(self.seq.get() + 1);
        let mut ev = self.event(kind, call, args, ret, man, what);
        ev.bulk = bulk;
        self.tracer.emit(&ev);
        if self.keep {
            self.recorded.borrow_mut().push(ev);
        }
    }

    /// Perform (or, in a dry run, record) one request and emit its event.
    ///
    /// `live` makes the real call; `dry` gives the value a dry run pretends the call
    /// returned; `show` renders a success for the trace.
    pub(crate) fn perform<T>(
        &self,
        call: &Call,
        args: Vec<String>,
        dry: impl FnOnce() -> T,
        live: impl FnOnce() -> Result<T, Errno>,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, SysError> {
        self.perform_out(call, args, dry, live, |v| (show(v), None))
    }

    /// [`Kernel::perform`] for calls that fill a buffer: `show` also returns what was
    /// read, printed as the last argument as strace does (`read("/x", "64\n") = 3`).
    pub(crate) fn perform_out<T>(
        &self,
        call: &Call,
        args: Vec<String>,
        dry: impl FnOnce() -> T,
        live: impl FnOnce() -> Result<T, Errno>,
        show: impl FnOnce(&T) -> (String, Option<String>),
    ) -> Result<T, SysError> {
        self.request(call, args, dry, live, show, false)
    }

    /// [`Kernel::perform`] for one of many alike requests (the entries of a layer):
    /// its event is marked bulk, so text sinks count it rather than print it, while
    /// JSON sinks list it like any other.
    pub(crate) fn perform_bulk<T>(
        &self,
        call: &Call,
        args: Vec<String>,
        dry: impl FnOnce() -> T,
        live: impl FnOnce() -> Result<T, Errno>,
        show: impl FnOnce(&T) -> String,
    ) -> Result<T, SysError> {
        self.request(call, args, dry, live, |v| (show(v), None), true)
    }

    fn request<T>(
        &self,
        call: &Call,
        mut args: Vec<String>,
        dry: impl FnOnce() -> T,
        live: impl FnOnce() -> Result<T, Errno>,
        show: impl FnOnce(&T) -> (String, Option<String>),
        bulk: bool,
    ) -> Result<T, SysError> {
        let result = if let Some(e) = self.injected(call.name) {
            Err(e)
        } else if self.mode == Mode::DryRun && call.effect == Effect::Change {
            Ok(dry())
        } else {
            live()
        };
        let ret = match &result {
            Ok(v) => {
                let (ret, out) = show(v);
                args.extend(out);
                Ret::Ok(ret)
            }
            Err(e) => Ret::Err(*e),
        };
        let text = match call.kind {
            Kind::Netlink => format!("{} {}", call.name, args.join(", ")),
            _ => format!("{}({})", call.name, args.join(", ")),
        };
        self.emit_event(call.kind, call.name.to_string(), args, ret, Some(call.man), Some(call.what), bulk);
        result.map_err(|errno| SysError { call: text, errno })
    }
}
