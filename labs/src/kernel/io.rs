//! Descriptors a runtime talks through: unix sockets (`socket(2)`, `bind(2)`,
//! `listen(2)`, `accept4(2)`, `connect(2)`), passing descriptors over them
//! (`SCM_RIGHTS`), process descriptors (`pidfd_open(2)`), `dup2(2)`, and the plumbing
//! of a relay loop: `poll(2)`, `read(2)`, `write(2)`.
//!
//! ## What is traced here, and what is not
//!
//! Making a socket file, listening, accepting a client, connecting, opening a pidfd:
//! each is a request and an event. The bytes a monitor relays between a container's
//! terminal and its clients are the tool's own data, like the bytes of an image blob:
//! [`Io`]'s `poll`, `read` and `write` make no event (a trace line per keystroke would
//! bury everything else, and they change nothing of the system).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags};

use super::trace::quote;
use super::{Call, Effect, Errno, Kernel, Kind, SysError};

fn p(path: &Path) -> String {
    quote(&path.to_string_lossy(), 256)
}

fn io_errno(e: std::io::Error) -> Errno {
    super::errno_of(e)
}

impl Kernel {
    /// `socket(2)` `AF_UNIX`, `bind(2)` at `path` (which creates the socket file) and
    /// `listen(2)`: a place clients connect to. A path longer than a socket address
    /// holds (108 bytes) is bound through the `/proc/self/fd/N/` name of its
    /// directory. <https://man7.org/linux/man-pages/man7/unix.7.html>
    #[doc(alias = "bind")]
    #[doc(alias = "listen")]
    pub fn listen_unix(&self, path: &Path) -> Result<UnixListener, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "bind",
            man: "unix(7)",
            what: "make a unix socket at a path and listen on it (the socket file appears in the directory)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AF_UNIX".into(), p(path), "SOCK_STREAM|SOCK_CLOEXEC".into()],
            || unreachable!("sockets are live-only"),
            || with_short_path(path, |short| UnixListener::bind(short).map_err(io_errno)),
            |l| l.as_raw_fd().to_string(),
        )
    }

    /// `connect(2)` to the unix socket at `path`.
    /// <https://man7.org/linux/man-pages/man2/connect.2.html>
    pub fn connect_unix(&self, path: &Path) -> Result<UnixStream, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "connect",
            man: "connect(2)",
            what: "connect to a unix socket (a container's monitor)",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec!["AF_UNIX".into(), p(path)],
            || unreachable!(),
            || with_short_path(path, |short| UnixStream::connect(short).map_err(io_errno)),
            |s| s.as_raw_fd().to_string(),
        )
    }

    /// `accept4(2)` — take the next client waiting on a listening socket.
    /// <https://man7.org/linux/man-pages/man2/accept4.2.html>
    pub fn accept(&self, l: &UnixListener) -> Result<UnixStream, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "accept4",
            man: "accept4(2)",
            what: "take a client that connected to the socket",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![l.as_raw_fd().to_string(), "SOCK_CLOEXEC".into()],
            || unreachable!(),
            || l.accept().map(|(s, _)| s).map_err(io_errno),
            |s| s.as_raw_fd().to_string(),
        )
    }

    /// `sendmsg(2)` with `SCM_RIGHTS`: send `data` and copies of `fds` to the other end
    /// of a unix socket, which receives them as new descriptors of its own.
    /// <https://man7.org/linux/man-pages/man7/unix.7.html>
    #[doc(alias = "sendmsg")]
    pub fn send_fds(&self, s: &UnixStream, data: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "sendmsg",
            man: "unix(7)",
            what: "send descriptors over a unix socket (SCM_RIGHTS): the other process gets its own copies",
            effect: Effect::Query,
        };
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.perform(
            &C,
            vec![s.as_raw_fd().to_string(), format!("{{SCM_RIGHTS, {raw:?}}}"), data.len().to_string()],
            || unreachable!(),
            || {
                let iov = [IoSlice::new(data)];
                let cmsg = [ControlMessage::ScmRights(&raw)];
                nix::sys::socket::sendmsg::<()>(s.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).map(|_| ())
            },
            |_| data.len().to_string(),
        )
    }

    /// `recvmsg(2)` with room for `SCM_RIGHTS`: the data (up to `max` bytes) and the
    /// descriptors a peer sent with [`Kernel::send_fds`].
    #[doc(alias = "recvmsg")]
    pub fn recv_fds(&self, s: &UnixStream, max: usize) -> Result<(Vec<u8>, Vec<OwnedFd>), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "recvmsg",
            man: "unix(7)",
            what: "receive data and descriptors sent over a unix socket",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![s.as_raw_fd().to_string(), max.to_string()],
            || unreachable!(),
            || {
                let mut buf = vec![0u8; max];
                let mut space = nix::cmsg_space!([RawFd; 8]);
                let (n, fds) = {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let msg = nix::sys::socket::recvmsg::<()>(
                        s.as_raw_fd(),
                        &mut iov,
                        Some(&mut space),
                        MsgFlags::MSG_CMSG_CLOEXEC,
                    )?;
                    let mut fds = Vec::new();
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(v) = c {
                            // SAFETY: the kernel just installed these descriptors for us.
                            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                        }
                    }
                    (msg.bytes, fds)
                };
                buf.truncate(n);
                Ok((buf, fds))
            },
            |(d, f)| format!("{} [{} fds]", d.len(), f.len()),
        )
    }

    /// `pidfd_open(2)` — a descriptor for a process, readable (in `poll(2)`) once it has
    /// exited; unlike a PID, it can never name a newer process that got the same
    /// number. <https://man7.org/linux/man-pages/man2/pidfd_open.2.html>
    pub fn pidfd_open(&self, pid: i32) -> Result<OwnedFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pidfd_open",
            man: "pidfd_open(2)",
            what: "get a descriptor for a process, to wait for its end without racing PID reuse",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![pid.to_string(), "0".into()],
            || unreachable!(),
            || {
                // SAFETY: plain syscall; the result is a new descriptor or -1.
                let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
                if r < 0 {
                    Err(Errno::last())
                } else {
                    // SAFETY: the kernel just returned this new descriptor.
                    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
                }
            },
            |f| f.as_raw_fd().to_string(),
        )
    }

    /// `dup2(2)` — make descriptor `target` (0, 1, 2) refer to `fd`'s open file: how a
    /// container's process gets its terminal or pipes as stdin/stdout/stderr.
    /// <https://man7.org/linux/man-pages/man2/dup2.2.html>
    pub fn dup2(&self, fd: BorrowedFd<'_>, target: RawFd) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "dup2",
            man: "dup2(2)",
            what: "make a descriptor number refer to another open file",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), target.to_string()],
            || (),
            // SAFETY: dup2 onto a low number replaces it; no Rust object owns it.
            || match unsafe { libc::dup2(fd.as_raw_fd(), target) } {
                -1 => Err(Errno::last()),
                _ => Ok(()),
            },
            |_| target.to_string(),
        )
    }

    /// `pipe2(2)` without `O_CLOEXEC`'s effect on one end: a pipe whose ends a child
    /// will get as its stdin/stdout/stderr.
    /// <https://man7.org/linux/man-pages/man2/pipe2.2.html>
    pub fn stdio_pipe(&self) -> Result<(OwnedFd, OwnedFd), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pipe2",
            man: "pipe2(2)",
            what: "create a pipe to carry a container process's input or output",
            effect: Effect::Change,
        };
        self.pipe2_cloexec(&C)
    }

    /// The untraced data plumbing of a relay loop (see the module documentation).
    pub fn io(&self) -> Io {
        Io
    }
}

/// Bind or connect through a short name when `path` is too long for `sun_path`.
fn with_short_path<T>(path: &Path, f: impl FnOnce(&Path) -> Result<T, Errno>) -> Result<T, Errno> {
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    let dir = path.parent().ok_or(Errno::EINVAL)?;
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let d = nix::fcntl::open(
        dir,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd").join(d.as_raw_fd().to_string()).join(name);
    f(&short)
}

/// Readiness asked of a descriptor in [`Io::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Data to read (or the other end closed).
    Read,
    /// Room to write.
    Write,
}

/// What [`Io::poll`] found for one descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Hung up or in error: the other end is gone.
    pub hup: bool,
}

/// The data plumbing of a relay loop: `poll(2)`, `read(2)`, `write(2)` on descriptors
/// the tool owns. No events (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Io;

impl Io {
    /// `poll(2)`: wait until one of `fds` is ready, or `timeout_ms` (-1: forever).
    pub fn poll(&self, fds: &[(BorrowedFd<'_>, Want)], timeout_ms: i32) -> Result<Vec<Ready>, Errno> {
        let mut pfds: Vec<PollFd> = fds
            .iter()
            .map(|(fd, w)| PollFd::new(*fd, if *w == Want::Read { PollFlags::POLLIN } else { PollFlags::POLLOUT }))
            .collect();
        let t = if timeout_ms < 0 {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)
        };
        loop {
            match nix::poll::poll(&mut pfds, t) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(pfds
            .iter()
            .map(|p| {
                let r = p.revents().unwrap_or(PollFlags::empty());
                Ready {
                    read: r.contains(PollFlags::POLLIN),
                    write: r.contains(PollFlags::POLLOUT),
                    hup: r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL),
                }
            })
            .collect())
    }

    /// `read(2)` once into `buf`; `Ok(0)` at end of file. EIO from a pty master whose
    /// slave is closed counts as end of file.
    pub fn read(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match nix::unistd::read(fd, buf) {
                Err(Errno::EINTR) => continue,
                Err(Errno::EIO) => return Ok(0),
                r => return r,
            }
        }
    }

    /// `write(2)` all of `data` (retrying short writes).
    pub fn write_all(&self, fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
        while !data.is_empty() {
            match nix::unistd::write(fd, data) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(n) => data = &data[n..],
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Mark `fd` non-blocking (`fcntl(F_SETFL, O_NONBLOCK)`), for a relay that must
    /// never stall on one slow reader.
    pub fn set_nonblocking(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).map(|_| ())
    }
}

/// Borrow a descriptor of anything that has one (for [`Io::poll`]).
pub fn fd_of<T: AsFd>(t: &T) -> BorrowedFd<'_> {
    t.as_fd()
}

impl Kernel {
    /// `socketpair(2)` `AF_UNIX`: two connected sockets, one for each end of a fork —
    /// how a container's first process hands its new terminal back to the monitor.
    /// <https://man7.org/linux/man-pages/man2/socketpair.2.html>
    pub fn socketpair(&self) -> Result<(UnixStream, UnixStream), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "socketpair",
            man: "socketpair(2)",
            what: "make two connected unix sockets (one stays, one goes to the child)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["AF_UNIX".into(), "SOCK_STREAM|SOCK_CLOEXEC".into()],
            || unreachable!("sockets are live-only"),
            || UnixStream::pair().map_err(io_errno),
            |(a, b)| format!("0 [{}, {}]", a.as_raw_fd(), b.as_raw_fd()),
        )
    }
}

/// A `signalfd(2)`: the blocked signals of this process, read as data instead of
/// delivered as interruptions, so a monitor's poll loop sees them like any input.
pub struct SignalFd(nix::sys::signalfd::SignalFd);

impl SignalFd {
    /// The descriptor, for [`Io::poll`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The next pending signal's number, if any (untraced: the tool's own input).
    pub fn take(&mut self) -> Option<i32> {
        match self.0.read_signal() {
            Ok(Some(info)) => Some(info.ssi_signo as i32),
            _ => None,
        }
    }
}

impl Kernel {
    /// `signalfd(2)` for `sigs` (which must be blocked, see
    /// [`Kernel::sigprocmask`]): a descriptor that becomes readable when one arrives.
    /// <https://man7.org/linux/man-pages/man2/signalfd.2.html>
    pub fn signalfd(&self, sigs: &[super::Signal]) -> Result<SignalFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "signalfd4",
            man: "signalfd(2)",
            what: "receive the blocked signals on a descriptor, to poll them with the rest",
            effect: Effect::Query,
        };
        let mut set = nix::sys::signal::SigSet::empty();
        sigs.iter().for_each(|s| set.add(*s));
        let names: Vec<&str> = sigs.iter().map(|s| s.as_str().trim_start_matches("SIG")).collect();
        self.perform(
            &C,
            vec!["-1".into(), format!("[{}]", names.join(" ")), "SFD_NONBLOCK|SFD_CLOEXEC".into()],
            || unreachable!(),
            || {
                nix::sys::signalfd::SignalFd::with_flags(
                    &set,
                    nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
                )
                .map(SignalFd)
            },
            |s| s.0.as_fd().as_raw_fd().to_string(),
        )
    }
}

impl Kernel {
    /// `fcntl(F_DUPFD)` — a copy of `fd` at the lowest free number ≥ `min`, *without*
    /// close-on-exec: how a parent hands a descriptor (a pipe end) to a program it
    /// executes, telling it the number on its command line.
    /// <https://man7.org/linux/man-pages/man2/fcntl.2.html>
    pub fn dup_inheritable(&self, fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "fcntl",
            man: "fcntl(2)",
            what: "copy a descriptor that the next program executed will inherit (no close-on-exec)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), "F_DUPFD".into(), min.to_string()],
            || unreachable!("descriptors are live-only"),
            || {
                // SAFETY: F_DUPFD returns a new descriptor we then own.
                let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, min) };
                if r < 0 {
                    Err(Errno::last())
                } else {
                    // SAFETY: a new descriptor, owned by nothing else.
                    Ok(unsafe { OwnedFd::from_raw_fd(r) })
                }
            },
            |f| f.as_raw_fd().to_string(),
        )
    }
}
