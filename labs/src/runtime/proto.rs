//! What `mini` and a container's monitor say to each other over the monitor's unix
//! socket (`ROOT/containers/ID/attach.sock`).
//!
//! Every message is a frame: one byte of kind, four bytes of length (big-endian), the
//! payload. A client opens with a `Hello` (JSON: attach, start, exec...), then sends
//! `Stdin` frames (and `Resize` when its terminal changes size); the monitor sends
//! `Stdout`/`Stderr` frames, `Started` once a process runs, and `Exit` when it ends.
//! Standard output and error stay apart without a terminal, as `docker attach` keeps
//! them apart, because each frame says which it is.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// The kind of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// client → monitor: bytes for the process's stdin.
    Stdin = 1,
    /// client → monitor: the client's stdin ended.
    StdinEof = 2,
    /// client → monitor: the client's terminal is now `rows` × `cols` (2 + 2 bytes).
    Resize = 3,
    /// monitor → client: what the process wrote on stdout (or its terminal).
    Stdout = 4,
    /// monitor → client: what it wrote on stderr.
    Stderr = 5,
    /// monitor → client: the process ended ([`Exit`]).
    Exit = 6,
    /// client → monitor: what the client wants ([`Hello`]), first.
    Hello = 7,
    /// monitor → client: the process runs ([`Started`]).
    Started = 9,
    /// monitor → client: the request failed ([`Failure`]).
    Failure = 10,
}

impl Kind {
    fn from(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Stdin,
            2 => Kind::StdinEof,
            3 => Kind::Resize,
            4 => Kind::Stdout,
            5 => Kind::Stderr,
            6 => Kind::Exit,
            7 => Kind::Hello,
            9 => Kind::Started,
            10 => Kind::Failure,
            _ => return None,
        })
    }
}

/// The largest frame accepted (a client cannot make the monitor allocate more).
pub const MAX_FRAME: usize = 1 << 20;

/// Encode one frame.
pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind as u8);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Write one frame (blocking).
pub fn send(w: &mut impl Write, kind: Kind, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&frame(kind, payload))
}

/// Write one frame carrying JSON.
pub fn send_json(w: &mut impl Write, kind: Kind, v: &impl Serialize) -> std::io::Result<()> {
    send(w, kind, &serde_json::to_vec(v).unwrap_or_default())
}

/// Read one frame (blocking); `None` at end of stream.
pub fn recv(r: &mut impl Read) -> std::io::Result<Option<(Kind, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let kind = Kind::from(head[0])
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "unknown frame kind"))?;
    Ok(Some((kind, body)))
}

/// Frames accumulating from a non-blocking stream.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Add bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, if one has arrived; `Err` on a malformed stream.
    pub fn next_frame(&mut self) -> Result<Option<(Kind, Vec<u8>)>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err("frame too large".into());
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let kind = Kind::from(self.buf[0]).ok_or("unknown frame kind")?;
        let body = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Ok(Some((kind, body)))
    }
}

/// How the client wants the trace of what the monitor does for it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TraceOpts {
    /// No trace.
    pub quiet: bool,
    /// JSON Lines instead of text.
    pub json: bool,
    /// The --explain lines.
    pub explain: bool,
    /// Color escapes.
    pub color: bool,
}

/// A process to start inside a running container (`mini exec`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command.
    pub argv: Vec<String>,
    /// `-e` entries, added to the container's environment.
    pub env: Vec<String>,
    /// `-u`.
    pub user: String,
    /// `-w`.
    pub workdir: String,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub stdin: bool,
    /// `-d`: nobody waits for it.
    pub detach: bool,
    /// The client's terminal size, with `-t`.
    pub size: Option<crate::kernel::WinSize>,
}

/// What a client asks first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Hello {
    /// Start the container's first process (the monitor was made for it), and maybe
    /// stay attached to it.
    Start {
        /// Stay and relay its input and output (`run` without `-d`, `start -a`).
        attach: bool,
        /// Relay the client's stdin (`-i`).
        stdin: bool,
        /// The client's terminal size, with `-t`.
        size: Option<crate::kernel::WinSize>,
        /// The trace of the start, on the descriptor sent with this frame.
        trace: TraceOpts,
    },
    /// Attach to the running first process.
    Attach {
        /// Relay the client's stdin.
        stdin: bool,
        /// The client's terminal size, with `-t`.
        size: Option<crate::kernel::WinSize>,
    },
    /// Start another process in the container.
    Exec {
        /// What to run.
        req: ExecRequest,
        /// The trace of the exec, on the descriptor sent with this frame.
        trace: TraceOpts,
    },
}

/// A process runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Started {
    /// Its PID, as the host sees it.
    pub pid: i32,
}

/// A process ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Exit {
    /// Its status: the code, or 128+N for signal N.
    pub code: i32,
    /// The container was OOM-killed.
    pub oom_killed: bool,
}

/// A request failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    /// The exit code the client should end with (125, 126, 127).
    pub code: u8,
    /// What failed.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_in_pieces() {
        let mut wire = frame(Kind::Stdout, b"hello");
        wire.extend(frame(Kind::Exit, br#"{"code":3,"oom_killed":false}"#));
        let (k, b) = recv(&mut &wire[..]).unwrap().unwrap();
        assert_eq!((k, b.as_slice()), (Kind::Stdout, &b"hello"[..]));
        let mut d = Decoder::default();
        for byte in &wire {
            d.push(&[*byte]);
        }
        assert_eq!(d.next_frame().unwrap().unwrap().0, Kind::Stdout);
        let (k, b) = d.next_frame().unwrap().unwrap();
        assert_eq!(k, Kind::Exit);
        let e: Exit = serde_json::from_slice(&b).unwrap();
        assert_eq!(e.code, 3);
        assert!(d.next_frame().unwrap().is_none());
        let mut bad = Decoder::default();
        bad.push(&[99, 0, 0, 0, 0]);
        assert!(bad.next_frame().is_err());
    }

    #[test]
    fn hello_is_tagged_json() {
        let h = Hello::Attach { stdin: true, size: None };
        let s = serde_json::to_string(&h).unwrap();
        assert!(s.contains("\"op\":\"attach\""), "{s}");
        assert_eq!(serde_json::from_str::<Hello>(&s).unwrap(), h);
    }
}
