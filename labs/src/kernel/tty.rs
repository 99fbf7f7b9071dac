//! Terminals: pseudo-terminals (`openpty(3)`: `/dev/ptmx` then the slave under
//! /dev/pts), their window size (`TIOCSWINSZ`, `TIOCGWINSZ`), their modes
//! (`tcgetattr(3)`/`tcsetattr(3)`, the `TCGETS`/`TCSETS` ioctls), and making one the
//! controlling terminal of a session (`TIOCSCTTY`).
//!
//! `docker run -it` gives the container a pseudo-terminal: a pair of devices where
//! what is written to the *master* is read from the *slave* as if typed, and the
//! reverse. The container's process gets the slave as its stdin, stdout and stderr
//! and as its controlling terminal (so Ctrl-C becomes SIGINT for it); the runtime keeps
//! the master and relays it to the user's own terminal, which it puts in raw mode so
//! every key goes through untouched. <https://man7.org/linux/man-pages/man7/pty.7.html>

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::termios::{self, SetArg, Termios};

use super::{Call, Effect, Errno, Kernel, Kind, SysError};

/// A terminal's size, as `struct winsize` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WinSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// A new pseudo-terminal: the master (kept by the runtime) and the slave (given to
/// the container's process).
#[derive(Debug)]
pub struct Pty {
    /// The master side.
    pub master: OwnedFd,
    /// The slave side.
    pub slave: OwnedFd,
    /// The slave's name (`/dev/pts/3`).
    pub name: String,
}

/// A terminal's saved modes, to restore them.
#[derive(Clone)]
pub struct TermModes(Termios);

impl std::fmt::Debug for TermModes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TermModes")
    }
}

nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);

impl Kernel {
    /// `openpty(3)` — `open("/dev/ptmx")`, `grantpt`, `unlockpt`, then open the slave:
    /// a new pseudo-terminal pair. <https://man7.org/linux/man-pages/man3/openpty.3.html>
    pub fn openpty(&self, size: Option<WinSize>) -> Result<Pty, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "openpty",
            man: "openpty(3)",
            what: "create a pseudo-terminal: a master the runtime keeps and a slave the container's process uses as its terminal",
            effect: Effect::Change,
        };
        let ws = size.map(|s| libc::winsize { ws_row: s.rows, ws_col: s.cols, ws_xpixel: 0, ws_ypixel: 0 });
        let shown = size.map(|s| format!("{{ws_row={}, ws_col={}}}", s.rows, s.cols)).unwrap_or_else(|| "NULL".into());
        self.perform(
            &C,
            vec!["NULL".into(), shown],
            || unreachable!("pseudo-terminals are live-only"),
            || {
                let r = nix::pty::openpty(ws.as_ref(), None)?;
                let name = nix::unistd::ttyname(r.slave.as_fd())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|_| "/dev/pts/?".into());
                Ok(Pty { master: r.master, slave: r.slave, name })
            },
            |p| format!("0 [master={}, slave={}<{}>]", p.master.as_raw_fd(), p.slave.as_raw_fd(), p.name),
        )
    }

    /// `ioctl(TIOCSWINSZ)` — set a terminal's window size; the processes on it get
    /// SIGWINCH and redraw. <https://man7.org/linux/man-pages/man2/TIOCSWINSZ.2const.html>
    #[doc(alias = "TIOCSWINSZ")]
    pub fn set_winsize(&self, fd: BorrowedFd<'_>, size: WinSize) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "ioctl_tty(2)",
            what: "set the window size of a terminal (its processes get SIGWINCH)",
            effect: Effect::Change,
        };
        let ws = libc::winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
        self.perform(
            &C,
            vec![
                fd.as_raw_fd().to_string(),
                "TIOCSWINSZ".into(),
                format!("{{ws_row={}, ws_col={}}}", size.rows, size.cols),
            ],
            || (),
            // SAFETY: a valid descriptor and a pointer to a live winsize.
            || unsafe { tiocswinsz(fd.as_raw_fd(), &ws) }.map(|_| ()),
            |_| "0".into(),
        )
    }

    /// `ioctl(TIOCGWINSZ)` — a terminal's window size; `None` when `fd` is no terminal.
    /// <https://man7.org/linux/man-pages/man2/TIOCGWINSZ.2const.html>
    #[doc(alias = "TIOCGWINSZ")]
    pub fn winsize(&self, fd: BorrowedFd<'_>) -> Option<WinSize> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "ioctl_tty(2)",
            what: "read the window size of a terminal",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), "TIOCGWINSZ".into()],
            || unreachable!(),
            || {
                let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
                // SAFETY: a valid descriptor and a pointer to a writable winsize.
                unsafe { tiocgwinsz(fd.as_raw_fd(), &mut ws) }?;
                Ok(WinSize { rows: ws.ws_row, cols: ws.ws_col })
            },
            |s| format!("0 {{ws_row={}, ws_col={}}}", s.rows, s.cols),
        )
        .ok()
    }

    /// `tcgetattr(3)` then `tcsetattr(3)` with `cfmakeraw(3)`'s modes: every key goes
    /// through as typed (no echo, no line editing, no Ctrl-C → SIGINT here: the
    /// container's terminal does that). Returns the old modes, to restore.
    /// <https://man7.org/linux/man-pages/man3/termios.3.html>
    #[doc(alias = "tcsetattr")]
    #[doc(alias = "cfmakeraw")]
    pub fn make_raw(&self, fd: BorrowedFd<'_>) -> Result<TermModes, SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "termios(3)",
            what: "put the terminal in raw mode: keys go through untouched, to the container's own terminal",
            effect: Effect::Change,
        };
        let old = termios::tcgetattr(fd).map_err(|e| SysError { call: "tcgetattr".into(), errno: e })?;
        let mut raw = old.clone();
        termios::cfmakeraw(&mut raw);
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), "TCSETS".into(), "{cfmakeraw}".into()],
            || (),
            || termios::tcsetattr(fd, SetArg::TCSANOW, &raw),
            |_| "0".into(),
        )?;
        Ok(TermModes(old))
    }

    /// `tcsetattr(3)` — put back a terminal's modes saved by [`Kernel::make_raw`].
    pub fn restore_modes(&self, fd: BorrowedFd<'_>, modes: &TermModes) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "termios(3)",
            what: "give the terminal back its modes (echo, line editing)",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), "TCSETS".into(), "{saved modes}".into()],
            || (),
            || termios::tcsetattr(fd, SetArg::TCSANOW, &modes.0),
            |_| "0".into(),
        )
    }

    /// `ioctl(TIOCSCTTY)` — make the terminal on `fd` the controlling terminal of this
    /// (new) session, so its Ctrl-C and hangups signal this process group.
    /// <https://man7.org/linux/man-pages/man2/TIOCSCTTY.2const.html>
    #[doc(alias = "TIOCSCTTY")]
    pub fn set_controlling_tty(&self, fd: BorrowedFd<'_>) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Ioctl,
            name: "ioctl",
            man: "ioctl_tty(2)",
            what: "make this terminal the controlling terminal of the session",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![fd.as_raw_fd().to_string(), "TIOCSCTTY".into(), "0".into()],
            || (),
            // SAFETY: TIOCSCTTY takes an int argument.
            || match unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } {
                -1 => Err(Errno::last()),
                _ => Ok(()),
            },
            |_| "0".into(),
        )
    }
}
