//! The client side of attach, start and exec: `mini` connects to the container's
//! monitor, sends its request, then relays its own terminal (or stdin/stdout/stderr) to
//! the container's until the process ends or the user detaches.
//!
//! With a terminal (`-t`), the user's terminal is put in raw mode (every key, Ctrl-C
//! included, goes to the container's terminal, whose line discipline turns it into
//! SIGINT *there*), its size is sent at once and again on every SIGWINCH, and the
//! modes are restored on every way out. The detach keys (Ctrl-P Ctrl-Q, or
//! `--detach-keys`) are caught here and never reach the container: the client leaves,
//! the container goes on. Without a terminal, the signals `mini` gets (SIGINT,
//! SIGTERM...) are passed on to the container's process, as `docker run` does (its
//! `--sig-proxy`).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Pid, Signal, Want, WinSize};

use super::proto::{self, Decoder, Hello, Kind};

/// How a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The process ended with this status (and the container was OOM-killed).
    Exit(i32, bool),
    /// The user pressed the detach keys.
    Detached,
    /// The monitor went away without saying how the process ended.
    Lost,
}

/// Parse `--detach-keys` (`ctrl-p,ctrl-q`, `ctrl-a,x`): the bytes to watch for.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if let Some(c) = p.strip_prefix("ctrl-") {
            let b = match c {
                "@" => 0,
                "[" => 27,
                "\\" => 28,
                "]" => 29,
                "^" => 30,
                "_" => 31,
                x if x.len() == 1 && x.as_bytes()[0].is_ascii_lowercase() => x.as_bytes()[0] - b'a' + 1,
                _ => return Err(Error::Usage(format!("Invalid detach keys ({s}) provided: unknown character '{c}'"))),
            };
            out.push(b);
        } else if p.len() == 1 {
            out.push(p.as_bytes()[0]);
        } else {
            return Err(Error::Usage(format!("Invalid detach keys ({s}) provided")));
        }
    }
    if out.is_empty() {
        return Err(Error::Usage(format!("Invalid detach keys ({s}) provided")));
    }
    Ok(out)
}

/// The default detach keys, Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH: [u8; 2] = [16, 17];

/// Connect to a container's monitor and say hello; with `fds`, pass descriptors too.
pub fn connect(k: &Kernel, sock: &Path, hello: &Hello) -> Result<UnixStream> {
    let mut s = k.connect_unix(sock).map_err(|e| {
        Error::failed(
            format!("cannot reach the container's monitor at {}: {}", sock.display(), e.errno.desc()),
            "the container is not running (`mini ps -a` shows its state)",
        )
    })?;
    proto::send_json(&mut s, Kind::Hello, hello)
        .map_err(|e| Error::failed(format!("talking to the monitor: {e}"), "see `mini trace CONTAINER`"))?;
    Ok(s)
}

/// Wait for the monitor's answer to a start or exec: `Ok(pid)` once the process runs.
pub fn started(s: &mut UnixStream) -> Result<i32> {
    loop {
        match proto::recv(s) {
            Ok(Some((Kind::Started, b))) => {
                let st: proto::Started = serde_json::from_slice(&b).map_err(|e| {
                    Error::failed(format!("bad answer from the monitor: {e}"), "see `mini trace CONTAINER`")
                })?;
                return Ok(st.pid);
            }
            Ok(Some((Kind::Failure, b))) => {
                let f: proto::Failure = serde_json::from_slice(&b)
                    .unwrap_or(proto::Failure { code: 125, message: String::from_utf8_lossy(&b).into() });
                return Err(Error::Container { code: f.code, message: f.message });
            }
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => {
                return Err(Error::failed(
                    "the container's monitor ended before the process started",
                    "see `mini trace CONTAINER` and `mini logs CONTAINER`",
                ))
            }
        }
    }
}

/// Options of a relay.
pub struct Relay<'a> {
    /// Our terminal is put in raw mode and sized (with `-t`).
    pub tty: bool,
    /// Our stdin goes to the process.
    pub stdin: bool,
    /// The detach keys (None: cannot detach, as `--detach-keys=""`... or no stdin).
    pub detach_keys: Option<Vec<u8>>,
    /// Where to send the signals we get, without a terminal (the process's host PID).
    pub sig_proxy: Option<i32>,
    /// The kernel, for signals and terminal modes.
    pub k: &'a Kernel,
}

/// Relay between our stdio and the monitor until the process ends or we detach.
pub fn relay(mut s: UnixStream, r: &Relay<'_>) -> Result<Ended> {
    let k = r.k;
    let io = k.io();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let raw_modes =
        if r.tty && std::io::IsTerminal::is_terminal(&stdin) { k.make_raw(stdin.as_fd()).ok() } else { None };
    // Everything below runs with the modes to restore: restore them on every way out.
    let out = (|| -> Result<Ended> {
        // The window's changes, and the signals passed on to the process.
        let sigs = crate::kernel::FORWARDED;
        k.sigprocmask(crate::kernel::SigmaskHow::SIG_BLOCK, &sigs)?;
        let mut sig = k.signalfd(&sigs)?;
        if r.tty {
            if let Some(size) = k.winsize(stdout.as_fd()) {
                send_resize(&mut s, size)?;
            }
        }
        let mut dec = Decoder::default();
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin_open = r.stdin;
        let mut matched = 0usize;
        loop {
            let mut fds: Vec<(BorrowedFd<'_>, Want)> = vec![(s.as_fd(), Want::Read), (sig.fd(), Want::Read)];
            if stdin_open {
                fds.push((stdin.as_fd(), Want::Read));
            }
            let ready = io.poll(&fds, -1).map_err(|e| Error::failed(format!("poll: {e}"), "retry"))?;
            if ready[1].read {
                while let Some(n) = sig.take() {
                    if n == Signal::SIGWINCH as i32 {
                        if let Some(size) = k.winsize(stdout.as_fd()) {
                            send_resize(&mut s, size)?;
                        }
                    } else if let (Some(pid), Ok(sg)) = (r.sig_proxy, Signal::try_from(n)) {
                        let _ = k
                            .why("pass the signal on to the container's process (sig-proxy)")
                            .kill(Pid::from_raw(pid), sg);
                    }
                }
            }
            if stdin_open && (ready[2].read || ready[2].hup) {
                let n = io.read(stdin.as_fd(), &mut buf).unwrap_or(0);
                if n == 0 {
                    stdin_open = false;
                    let _ = proto::send(&mut s, Kind::StdinEof, &[]);
                } else {
                    let mut data = buf[..n].to_vec();
                    if let Some(keys) = &r.detach_keys {
                        let mut keep = Vec::new();
                        for b in data.drain(..) {
                            if b == keys[matched] {
                                matched += 1;
                                if matched == keys.len() {
                                    // What was typed before the keys still goes in.
                                    if !keep.is_empty() {
                                        let _ = proto::send(&mut s, Kind::Stdin, &keep);
                                    }
                                    return Ok(Ended::Detached);
                                }
                            } else {
                                keep.extend_from_slice(&keys[..matched]);
                                matched = 0;
                                if b == keys[0] {
                                    matched = 1;
                                } else {
                                    keep.push(b);
                                }
                            }
                        }
                        data = keep;
                    }
                    if !data.is_empty() && proto::send(&mut s, Kind::Stdin, &data).is_err() {
                        stdin_open = false;
                    }
                }
            }
            if ready[0].read || ready[0].hup {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    return Ok(Ended::Lost);
                }
                dec.push(&buf[..n]);
                while let Ok(Some((kind, body))) = dec.next_frame() {
                    match kind {
                        Kind::Stdout => {
                            let mut o = stdout.lock();
                            let _ = o.write_all(&body);
                            let _ = o.flush();
                        }
                        Kind::Stderr => {
                            let _ = std::io::stderr().lock().write_all(&body);
                        }
                        Kind::Exit => {
                            let e: proto::Exit =
                                serde_json::from_slice(&body).unwrap_or(proto::Exit { code: 0, oom_killed: false });
                            return Ok(Ended::Exit(e.code, e.oom_killed));
                        }
                        Kind::Failure => {
                            let f: proto::Failure = serde_json::from_slice(&body)
                                .unwrap_or(proto::Failure { code: 1, message: "failed".into() });
                            return Err(Error::Container { code: f.code, message: f.message });
                        }
                        _ => {}
                    }
                }
            }
        }
    })();
    if let Some(m) = &raw_modes {
        let _ = k.restore_modes(stdin.as_fd(), m);
    }
    out
}

fn send_resize(s: &mut UnixStream, size: WinSize) -> Result<()> {
    let mut b = size.rows.to_be_bytes().to_vec();
    b.extend_from_slice(&size.cols.to_be_bytes());
    proto::send(s, Kind::Resize, &b)
        .map_err(|e| Error::failed(format!("talking to the monitor: {e}"), "see `mini trace CONTAINER`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_as_docker_writes_them() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), DEFAULT_DETACH.to_vec());
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert!(parse_detach_keys("ctrl-1").is_err() && parse_detach_keys("").is_err());
    }
}
