//! The monitor: one small process per running container, like podman's conmon or
//! containerd's shim. `mini` itself is a short-lived command; the monitor is what
//! stays, so a container outlives the `mini run -d` that started it.
//!
//! `mini start` re-executes mini as `mini __monitor ID` (a fresh process image, so it
//! holds nothing of the command that made it), and the monitor:
//!
//! * leaves the caller's session (`setsid(2)`) and becomes a *subreaper*
//!   (`PR_SET_CHILD_SUBREAPER`), so whatever the container forks is reaped here;
//! * listens on `ROOT/containers/ID/attach.sock`, where `mini` asks it to start the
//!   first process, to attach to it, or to exec another one;
//! * makes the PID namespace (`unshare(CLONE_NEWPID)`: its next child is PID 1 there)
//!   and forks the first process, which [`super::init::setup`] turns into the
//!   container before it execs;
//! * owns the container's terminal master (or the pipes of its stdin, stdout and
//!   stderr), writes what comes out to the json-file log and to every attached client;
//! * learns of deaths through a `signalfd(2)` for SIGCHLD and reaps them (`wait4(2)`);
//!   when the first process ends it records the exit status (and an OOM kill), tells
//!   the clients, removes what the container's run needed (the overlay mount, the
//!   cgroup, the veth and the network namespace), and, with `--rm`, the container.
//!
//! Its trace goes to `ROOT/containers/ID/trace.jsonl` (always), and to the stderr of the
//! `mini` that started it until the container's process has exec'd: after that the
//! terminal belongs to the container, so nothing else may write on it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crate::error::{Error, Result};
use crate::kernel::{CloneFlags, ExecFailure, Exited, Kernel, Pid, Signal, SignalFd, Sink, Target, TraceFormat, Want};

use super::init::{self, Spec, Stdio};
use super::logs::{self, LineSplitter};
use super::proto::{self, Decoder, ExecRequest, Hello, Kind};
use super::state::{Containers, Status};

/// One process the monitor relays: the first process, or one started by `exec`.
struct Session {
    pid: i32,
    main: bool,
    tty: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    split: [LineSplitter; 2],
    exit: Option<i32>,
    /// The client that asked for an exec session (its only receiver).
    owner: Option<u64>,
}

impl Session {
    fn done(&self) -> bool {
        self.exit.is_some() && self.tty.is_none() && self.stdout.is_none() && self.stderr.is_none()
    }
}

/// A connected client.
struct Client {
    id: u64,
    stream: UnixStream,
    dec: Decoder,
    out: Vec<u8>,
    /// The session whose output it receives (pid), and whether its input goes there.
    session: Option<i32>,
    stdin: bool,
    gone: bool,
}

/// What the monitor needs to start: the record and the spec.
pub struct Monitor<'k> {
    k: &'k Kernel,
    store: Containers<'k>,
    id: String,
    spec: Spec,
    listener: UnixListener,
    sig: SignalFd,
    log: File,
    sessions: Vec<Session>,
    clients: Vec<Client>,
    next_client: u64,
    pid_ns: bool,
    main_pid: i32,
    start_failed: bool,
    /// The embedded resolver, on a user-defined network.
    resolver: Option<super::resolver::Responder>,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::failed(format!("{what}: {e}"), "see the container's trace: `mini trace CONTAINER`")
}

/// The body of `mini __monitor ID` (see the module documentation). `sync` is the pipe
/// the starting `mini` waits on: one line, `ready` once the socket listens.
pub fn run(k: &Kernel, root: &Path, id: &str, sync: Option<OwnedFd>) -> Result<()> {
    let store = Containers::open(k, root)?;
    let paths = store.paths.clone();
    k.why("leave the session of the mini that started it: no terminal, no job control of its own").setsid()?;
    k.why("the container's orphans are re-parented here, so they are reaped").set_child_subreaper()?;
    let trace =
        k.open_append(&paths.trace(id), "the container's trace file: everything the monitor asks, for `mini trace`")?;
    if let Ok(copy) = trace.try_clone() {
        // A monitor has no terminal to die loudly on: a panic goes to the trace file.
        let copy = std::sync::Mutex::new(copy);
        std::panic::set_hook(Box::new(move |info| {
            let line = serde_json::json!({"tool": "mini", "lab": "mini", "pid": std::process::id(), "kind": "note",
                "call": "note", "args": [format!("the monitor panicked: {info}")], "ret": null, "errno": null});
            if let Ok(mut f) = copy.lock() {
                let _ = writeln!(f, "{line}");
            }
        }));
    }
    k.tracer().add_sink(Sink::new(Target::File(trace), TraceFormat::Json, false, false));
    let spec: Spec = {
        let p = paths.dir(id).join("spec.json");
        let b = k.read_file(&p).map_err(|e| io_err(&format!("cannot read {}", p.display()), e))?;
        serde_json::from_str(&b).map_err(|e| io_err(&format!("{} is not valid", p.display()), e))?
    };
    let log = k.open_append(&paths.log(id), "the container's log, docker's json-file format")?;
    let sock = paths.socket(id);
    let _ = k.unlink(&sock);
    let listener = k.why("where mini asks the monitor to start, attach and exec").listen_unix(&sock)?;
    k.io().set_nonblocking(listener.as_fd()).map_err(|e| io_err("cannot set the socket non-blocking", e))?;
    let sigs = [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE];
    k.why("deaths and stop requests arrive as data on a signalfd, not as interruptions")
        .sigprocmask(crate::kernel::SigmaskHow::SIG_BLOCK, &sigs)?;
    let sig = k.signalfd(&sigs)?;
    let resolver = match &spec.resolver {
        Some(r) => Some(super::resolver::Responder::open(k, r)?),
        None => None,
    };
    let mut m = Monitor {
        k,
        store,
        id: id.to_string(),
        spec,
        listener,
        sig,
        log,
        sessions: Vec::new(),
        clients: Vec::new(),
        next_client: 1,
        pid_ns: false,
        main_pid: 0,
        start_failed: false,
        resolver,
    };
    {
        let _l = m.store.lock(id)?;
        let mut c = m.store.load(id)?;
        c.state.monitor_pid = std::process::id() as i32;
        c.state.monitor_start = own_start_time(k);
        m.store.save(&c)?;
    }
    if let Some(fd) = sync {
        let _ = k.io().write_all(fd.as_fd(), b"ready\n");
    }
    m.serve()
}

/// This process's start time (field 22 of `/proc/self/stat`): with the PID, it tells
/// this monitor from a later process given the same PID.
fn own_start_time(k: &Kernel) -> u64 {
    k.read_file(Path::new("/proc/self/stat")).ok().as_deref().and_then(super::state::start_time_of).unwrap_or(0)
}

impl Monitor<'_> {
    /// The poll loop, until the first process has ended and its output is drained
    /// (or it could not start).
    fn serve(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if self.main_pid != 0 && self.sessions.iter().any(|s| s.main && s.done()) {
                return self.finish();
            }
            let io = self.k.io();
            // Build the poll set: what each slot is.
            #[derive(Clone, Copy)]
            enum Slot {
                Listener,
                Signal,
                Out(usize, usize),
                Client(usize),
                ClientOut(usize),
                Queries,
                Answers,
            }
            let mut fds: Vec<(BorrowedFd<'_>, Want)> =
                vec![(self.listener.as_fd(), Want::Read), (self.sig.fd(), Want::Read)];
            let mut slots = vec![Slot::Listener, Slot::Signal];
            if let Some(r) = &self.resolver {
                let [q, a] = r.fds();
                fds.push((q, Want::Read));
                fds.push((a, Want::Read));
                slots.push(Slot::Queries);
                slots.push(Slot::Answers);
            }
            for (i, s) in self.sessions.iter().enumerate() {
                for (j, fd) in [&s.tty, &s.stdout, &s.stderr].into_iter().enumerate() {
                    if let Some(fd) = fd {
                        fds.push((fd.as_fd(), Want::Read));
                        slots.push(Slot::Out(i, j));
                    }
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                fds.push((c.stream.as_fd(), Want::Read));
                slots.push(Slot::Client(i));
                if !c.out.is_empty() {
                    fds.push((c.stream.as_fd(), Want::Write));
                    slots.push(Slot::ClientOut(i));
                }
            }
            let ready = io.poll(&fds, -1).map_err(|e| io_err("poll", e))?;
            drop(fds);
            let mut accept = false;
            let mut signals = false;
            let mut outputs = Vec::new();
            let mut inputs = Vec::new();
            let mut flush = Vec::new();
            let (mut queries, mut answers) = (false, false);
            for (slot, r) in slots.into_iter().zip(ready) {
                if !(r.read || r.write || r.hup) {
                    continue;
                }
                match slot {
                    Slot::Listener => accept = true,
                    Slot::Signal => signals = true,
                    Slot::Out(i, j) => outputs.push((i, j)),
                    Slot::Client(i) => inputs.push(i),
                    Slot::ClientOut(i) => flush.push(i),
                    Slot::Queries => queries = true,
                    Slot::Answers => answers = true,
                }
            }
            if let Some(r) = self.resolver.as_mut() {
                if answers {
                    r.on_answers(&mut buf);
                }
                if queries {
                    r.on_queries(&mut buf);
                }
            }
            if signals {
                self.reap();
            }
            for (i, j) in outputs {
                self.pump(i, j, &mut buf);
            }
            for i in inputs {
                self.read_client(i, &mut buf);
            }
            for i in flush {
                self.flush_client(i);
            }
            if accept {
                while let Ok(s) = self.k.accept(&self.listener) {
                    if self.k.io().set_nonblocking(s.as_fd()).is_ok() {
                        let id = self.next_client;
                        self.next_client += 1;
                        self.clients.push(Client {
                            id,
                            stream: s,
                            dec: Decoder::default(),
                            out: Vec::new(),
                            session: None,
                            stdin: false,
                            gone: false,
                        });
                    }
                }
            }
            self.clients.retain(|c| !c.gone);
            // An exec session that ended and whose output is drained: tell its client.
            let finished: Vec<(i32, i32, Option<u64>)> = self
                .sessions
                .iter()
                .filter(|s| !s.main && s.done())
                .map(|s| (s.pid, s.exit.unwrap_or(0), s.owner))
                .collect();
            for (pid, code, owner) in finished {
                self.k.note(format!("exec session {pid} ended with status {code}"));
                if let Some(c) = self.clients.iter_mut().find(|c| Some(c.id) == owner) {
                    c.out.extend(proto::frame(
                        Kind::Exit,
                        &serde_json::to_vec(&proto::Exit { code, oom_killed: false }).unwrap_or_default(),
                    ));
                }
                self.sessions.retain(|s| s.pid != pid);
            }
            if self.main_pid == 0 && self.sessions.is_empty() && self.start_failed {
                return Ok(());
            }
        }
    }

    /// Collect every child that ended (the signalfd said SIGCHLD; stop requests to the
    /// monitor itself are ignored: `mini stop` signals the container, not it).
    fn reap(&mut self) {
        while let Some(sig) = self.sig.take() {
            // SIGPIPE: a reader went away (a client, the stderr of the mini that
            // started it); the write that raised it got EPIPE, which is enough.
            if sig != Signal::SIGCHLD as i32 && sig != Signal::SIGPIPE as i32 {
                self.k.note(format!("signal {sig} to the monitor ignored: stop the container with `mini stop`"));
            }
        }
        while let Ok(Some((pid, st))) = self.k.reap_any() {
            let code = crate::exit::Exit::of(st).code() as i32;
            if let Some(s) = self.sessions.iter_mut().find(|s| s.pid == pid.as_raw()) {
                s.exit = Some(code);
                if s.main {
                    self.k.note(format!("the container's first process ({pid}) ended: {}", describe(st)));
                }
            }
        }
    }

    /// Move what a session's process wrote to the log and to its clients.
    fn pump(&mut self, i: usize, j: usize, buf: &mut [u8]) {
        let io = self.k.io();
        let s = &mut self.sessions[i];
        let fd = match j {
            0 => s.tty.as_ref(),
            1 => s.stdout.as_ref(),
            _ => s.stderr.as_ref(),
        };
        let Some(fd) = fd else { return };
        let n = io.read(fd.as_fd(), buf).unwrap_or(0);
        let stream = if j == 2 { "stderr" } else { "stdout" };
        if n == 0 {
            match j {
                0 => s.tty = None,
                1 => s.stdout = None,
                _ => s.stderr = None,
            }
            if s.main {
                if let Some(rest) = s.split[j.min(1)].finish() {
                    let _ =
                        logs::append(&mut self.log, &rest, stream, &crate::units::rfc3339(crate::units::now_nanos()));
                }
            }
            return;
        }
        let data = &buf[..n];
        let (main, pid, owner) = (s.main, s.pid, s.owner);
        if main {
            let now = crate::units::rfc3339(crate::units::now_nanos());
            for line in s.split[if j == 2 { 1 } else { 0 }].feed(data) {
                let _ = logs::append(&mut self.log, &line, stream, &now);
            }
        }
        let kind = if j == 2 { Kind::Stderr } else { Kind::Stdout };
        let f = proto::frame(kind, data);
        for c in self.clients.iter_mut() {
            let mine = if main { c.session == Some(pid) } else { Some(c.id) == owner };
            if mine {
                c.out.extend_from_slice(&f);
            }
        }
    }

    fn flush_client(&mut self, i: usize) {
        let c = &mut self.clients[i];
        match (&c.stream).write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                c.out.clear();
                c.gone = true;
            }
        }
    }

    fn read_client(&mut self, i: usize, buf: &mut [u8]) {
        let n = match (&self.clients[i].stream).read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            self.clients[i].gone = true;
            return;
        }
        self.clients[i].dec.push(&buf[..n]);
        loop {
            let next = self.clients[i].dec.next_frame();
            match next {
                Ok(Some((kind, body))) => self.on_frame(i, kind, body),
                Ok(None) => break,
                Err(_) => {
                    self.clients[i].gone = true;
                    break;
                }
            }
        }
    }

    fn session_of(&mut self, i: usize) -> Option<&mut Session> {
        let c = &self.clients[i];
        let target = if c.session.is_some() { c.session } else { None };
        let owner = c.id;
        self.sessions.iter_mut().find(|s| Some(s.pid) == target || s.owner == Some(owner))
    }

    fn on_frame(&mut self, i: usize, kind: Kind, body: Vec<u8>) {
        let io = self.k.io();
        match kind {
            Kind::Hello => match serde_json::from_slice::<Hello>(&body) {
                Ok(h) => self.hello(i, h),
                Err(e) => self.fail(i, 125, format!("bad request: {e}")),
            },
            Kind::Stdin if self.clients[i].stdin => {
                if let Some(s) = self.session_of(i) {
                    let fd = s.tty.as_ref().or(s.stdin.as_ref());
                    if let Some(fd) = fd {
                        let _ = io.write_all(fd.as_fd(), &body);
                    }
                }
            }
            Kind::StdinEof if self.clients[i].stdin => {
                if let Some(s) = self.session_of(i) {
                    // A terminal's stdin stays open (as docker's does); a pipe closes.
                    s.stdin = None;
                }
            }
            Kind::Resize if body.len() == 4 => {
                let size = crate::kernel::WinSize {
                    rows: u16::from_be_bytes([body[0], body[1]]),
                    cols: u16::from_be_bytes([body[2], body[3]]),
                };
                let k = self.k;
                if let Some(s) = self.session_of(i) {
                    if let Some(t) = &s.tty {
                        let _ = k.set_winsize(t.as_fd(), size);
                    }
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, i: usize, code: u8, message: String) {
        let f = proto::frame(Kind::Failure, &serde_json::to_vec(&proto::Failure { code, message }).unwrap_or_default());
        self.clients[i].out.extend(f);
    }

    fn hello(&mut self, i: usize, h: Hello) {
        match h {
            Hello::Start { attach, stdin, size, .. } => {
                if self.main_pid != 0 {
                    return self.fail(i, 125, "the container is already running".into());
                }
                match self.start_main(size) {
                    Ok(pid) => {
                        let c = &mut self.clients[i];
                        c.out.extend(proto::frame(
                            Kind::Started,
                            &serde_json::to_vec(&proto::Started { pid }).unwrap_or_default(),
                        ));
                        if attach {
                            c.session = Some(pid);
                            c.stdin = stdin;
                        }
                    }
                    Err((code, message)) => {
                        self.fail(i, code, message);
                        self.flush_client(i);
                        self.start_failed = true;
                    }
                }
            }
            Hello::Attach { stdin, size } => {
                if self.main_pid == 0 {
                    return self.fail(i, 1, "You cannot attach to a stopped container, start it first".into());
                }
                let pid = self.main_pid;
                let c = &mut self.clients[i];
                c.session = Some(pid);
                c.stdin = stdin;
                if let (Some(size), Some(s)) = (size, self.sessions.iter().find(|s| s.main)) {
                    if let Some(t) = &s.tty {
                        let _ = self.k.set_winsize(t.as_fd(), size);
                    }
                }
            }
            Hello::Exec { req, .. } => {
                let owner = self.clients[i].id;
                match self.start_exec(&req, owner) {
                    Ok(pid) => {
                        let c = &mut self.clients[i];
                        c.out.extend(proto::frame(
                            Kind::Started,
                            &serde_json::to_vec(&proto::Started { pid }).unwrap_or_default(),
                        ));
                        c.stdin = req.stdin;
                        if req.detach {
                            if let Some(s) = self.sessions.iter_mut().find(|s| s.pid == pid) {
                                s.owner = None;
                            }
                        }
                    }
                    Err((code, message)) => self.fail(i, code, message),
                }
            }
        }
    }
}

fn describe(st: Exited) -> String {
    match st {
        Exited::Code(c) => format!("exit status {c}"),
        Exited::Signal(s) => format!("killed by signal {s}"),
    }
}

/// docker's wording of a failed exec, and the exit code it gives.
pub fn exec_failure(f: ExecFailure) -> (u8, String) {
    match f {
        ExecFailure::Exec { program, errno: crate::kernel::Errno::ENOENT } if !program.contains('/') => {
            (127, format!("exec: \"{program}\": executable file not found in $PATH"))
        }
        ExecFailure::Exec { program, errno: crate::kernel::Errno::ENOENT } => {
            (127, format!("exec: \"{program}\": no such file or directory"))
        }
        ExecFailure::Exec { program, errno } => (126, format!("exec: \"{program}\": {}", errno.desc().to_lowercase())),
        ExecFailure::Setup(m) => (125, m),
        ExecFailure::Sys(e) => (125, e.to_string()),
    }
}

impl Monitor<'_> {
    /// Make the stdio of a new process: a socket for its terminal's master (with `-t`),
    /// or three pipes (stdin closed at once without `-i`, as from /dev/null).
    fn stdio(&self, tty: bool, stdin: bool) -> std::result::Result<(Stdio, Session), (u8, String)> {
        let k = self.k;
        let err = |e: crate::kernel::SysError| (125u8, e.to_string());
        let mut s = Session {
            pid: 0,
            main: false,
            tty: None,
            stdin: None,
            stdout: None,
            stderr: None,
            split: [LineSplitter::default(), LineSplitter::default()],
            exit: None,
            owner: None,
        };
        if tty {
            let (mine, theirs) = k
                .why("the container's process will send back the master of the terminal it makes")
                .socketpair()
                .map_err(err)?;
            s.tty = Some(OwnedFd::from(mine));
            return Ok((Stdio::Console(theirs), s));
        }
        let (in_r, in_w) = k.stdio_pipe().map_err(err)?;
        let (out_r, out_w) = k.stdio_pipe().map_err(err)?;
        let (err_r, err_w) = k.stdio_pipe().map_err(err)?;
        if stdin {
            s.stdin = Some(in_w);
        }
        s.stdout = Some(out_r);
        s.stderr = Some(err_r);
        Ok((Stdio::Pipes(in_r, out_w, err_w), s))
    }

    /// After the fork: with a terminal, take its master from the socket.
    fn take_console(&self, s: &mut Session) -> std::result::Result<(), (u8, String)> {
        let Some(sock) = s.tty.take() else { return Ok(()) };
        let sock = UnixStream::from(sock);
        let (_, mut fds) = self
            .k
            .why("the terminal's master, made inside the container")
            .recv_fds(&sock, 16)
            .map_err(|e| (125u8, e.to_string()))?;
        if fds.is_empty() {
            return Err((125, "the container's process sent no terminal".into()));
        }
        s.tty = Some(fds.remove(0));
        Ok(())
    }

    /// Start the container's first process: PID namespace, fork, [`init::setup`], exec.
    fn start_main(&mut self, size: Option<crate::kernel::WinSize>) -> std::result::Result<i32, (u8, String)> {
        let k = self.k;
        let mut spec = self.spec.clone();
        if spec.tty.is_some() {
            spec.tty = Some(size.or(spec.tty).unwrap_or(crate::kernel::WinSize { rows: 24, cols: 80 }));
        }
        let open_stdin = self.store.load(&self.id).map(|c| c.config.open_stdin).unwrap_or(false);
        let (child_io, mut session) = self.stdio(spec.tty.is_some(), open_stdin)?;
        let mut ns = CloneFlags::empty();
        let mut back = None;
        if spec.remapped() {
            // A user namespace first, and a PID namespace it owns (so that the container
            // may mount its /proc), in one clone(2). The child is cloned inside its
            // network namespace: once in its own user namespace it could not join one
            // the host owns.
            ns = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWPID;
            back = remapped_net(k, &spec).map_err(|e| (125u8, e.to_string()))?;
        } else if !self.pid_ns {
            let _s = k.scope("ns-exec");
            k.why("a new PID namespace for the monitor's next child, which is PID 1 in it")
                .unshare(CloneFlags::CLONE_NEWPID)
                .map_err(|e| (125u8, e.to_string()))?;
            self.pid_ns = true;
        }
        let maps = (spec.uid_map.clone(), spec.gid_map.clone(), spec.cgroup_procs.clone());
        let before_release = move |k: &Kernel, pid: Pid| -> std::result::Result<(), crate::kernel::SysError> {
            if ns.is_empty() {
                return Ok(());
            }
            let _s = k.scope("ns-exec");
            crate::ns::write_id_maps(k, pid, &maps.0, &maps.1)?;
            let _c = k.scope("cg-limit");
            for f in &maps.2 {
                k.why("the child into the container's cgroup, from outside (inside, root no longer owns cgroupfs)")
                    .write_file(f, &pid.to_string())?;
            }
            Ok(())
        };
        let argv = spec.argv.clone();
        let started = if spec.init {
            let sp = spec.clone();
            k.clone_with(ns, before_release, move |k| match init::setup(k, &sp, child_io) {
                Ok(()) => init::tiny_init(k, &sp.argv, &sp.env),
                Err(_) => 125,
            })
            .map_err(|e| (125u8, e.to_string()))
        } else {
            let sp = spec.clone();
            let env = sp.env.clone();
            k.spawn_in(ns, before_release, &argv, Some(&env), move |k| init::setup(k, &sp, child_io))
                .map(|s| s.pid)
                .map_err(exec_failure)
        };
        let after = (|| -> std::result::Result<(), (u8, String)> {
            if let Some(own) = back {
                let _s = k.scope("netns-bridge");
                k.why("the monitor back in the host's network namespace")
                    .setns(&own, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| (125u8, e.to_string()))?;
            }
            if let (Ok(pid), false) = (&started, ns.is_empty()) {
                // `mini exec`'s processes are the monitor's children too: into the
                // container's PID namespace (setns(2) of a PID namespace applies to
                // the children made afterwards).
                let _s = k.scope("ns-exec");
                let fd =
                    k.open_child_ns(Path::new(&format!("/proc/{pid}/ns/pid"))).map_err(|e| (125u8, e.to_string()))?;
                k.why("the monitor's next children (mini exec) into the container's PID namespace")
                    .setns(&fd, CloneFlags::CLONE_NEWPID)
                    .map_err(|e| (125u8, e.to_string()))?;
            }
            Ok(())
        })();
        if let Err((code, msg)) = after {
            // The monitor could not take charge of the child: no container half made.
            if let Ok(pid) = &started {
                let _ = k.kill(*pid, Signal::SIGKILL);
                let _ = k.wait(*pid);
            }
            self.record_failure(code, &msg);
            return Err((code, msg));
        }
        let pid = match started {
            Ok(p) => p.as_raw(),
            Err((code, msg)) => {
                self.record_failure(code, &msg);
                return Err((code, msg));
            }
        };
        session.pid = pid;
        session.main = true;
        self.take_console(&mut session)?;
        self.sessions.push(session);
        self.main_pid = pid;
        if let Err(e) = self.record_started(pid) {
            k.note(format!("could not record the start: {e}"));
        }
        self.hand_over_terminal();
        Ok(pid)
    }

    /// From now on the trace goes to the container's trace file only: the terminal of
    /// the mini that started the monitor belongs to the container.
    fn hand_over_terminal(&self) {
        let sinks = self.k.tracer().take_sinks();
        for s in sinks.into_iter().filter(|s| !s.is_stderr()) {
            self.k.tracer().add_sink(s);
        }
        let _ = self.k.why("hold no descriptor of the caller's terminal").redirect_stdio(Path::new("/dev/null"));
    }

    fn record_started(&self, pid: i32) -> Result<()> {
        let _l = self.store.lock(&self.id)?;
        let mut c = self.store.load(&self.id)?;
        c.state.status = Status::Running;
        c.state.pid = pid;
        c.state.exit_code = 0;
        c.state.error.clear();
        c.state.oom_killed = false;
        c.state.started_at = crate::units::rfc3339(crate::units::now_nanos());
        self.store.save(&c)
    }

    fn record_failure(&self, code: u8, msg: &str) {
        let r = (|| -> Result<()> {
            let _l = self.store.lock(&self.id)?;
            let mut c = self.store.load(&self.id)?;
            c.state.exit_code = code as i32;
            c.state.error = msg.to_string();
            c.state.pid = 0;
            c.state.monitor_pid = 0;
            super::resources::release(self.k, &self.store, &mut c);
            self.store.save(&c)
        })();
        if let Err(e) = r {
            self.k.note(format!("could not record the failure: {e}"));
        }
    }

    /// Start another process in the running container (`mini exec`): the child joins
    /// the first process's namespaces and cgroup, then becomes the user and execs.
    fn start_exec(&mut self, req: &ExecRequest, owner: u64) -> std::result::Result<i32, (u8, String)> {
        let k = self.k;
        if self.main_pid == 0 || self.sessions.iter().any(|s| s.main && s.exit.is_some()) {
            return Err((1, format!("Error response from daemon: Container {} is not running", self.id)));
        }
        let c = self.store.load(&self.id).map_err(|e| (125u8, e.to_string()))?;
        let mut spec = self.spec.clone();
        let (child_io, mut session) = self.stdio(req.tty, req.stdin)?;
        let proc_root = format!("/proc/{}/root", self.main_pid);
        let read = |f: &str| {
            k.read_in_root(Path::new(&proc_root), f)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        if !req.user.is_empty() {
            let u = super::spec::resolve_user(&req.user, &read("etc/passwd"), &read("etc/group"))
                .map_err(|e| (126u8, e.to_string()))?;
            spec.uid = u.uid;
            spec.gid = u.gid;
            spec.groups = u.groups;
        }
        for e in &req.env {
            super::spec::set_env(&mut spec.env, e.clone());
        }
        if !req.workdir.is_empty() {
            spec.cwd = req.workdir.clone();
        }
        spec.tty = if req.tty { Some(req.size.unwrap_or(crate::kernel::WinSize { rows: 24, cols: 80 })) } else { None };
        let target = self.main_pid;
        let _ = c;
        let env = spec.env.clone();
        let started = k
            .spawn_env(&req.argv, Some(&env), move |k| exec_setup(k, target, &spec, child_io))
            .map(|s| s.pid)
            .map_err(exec_failure);
        let pid = started?.as_raw();
        session.pid = pid;
        session.owner = Some(owner);
        self.take_console(&mut session)?;
        self.sessions.push(session);
        Ok(pid)
    }

    /// The first process ended and its output is drained: remove what the run needed
    /// (and, with `--rm`, the container), record the end, then tell the clients — so
    /// that when `mini run` returns, `mini ps` already shows the container exited.
    fn finish(&mut self) -> Result<()> {
        let code = self.sessions.iter().find(|s| s.main).and_then(|s| s.exit).unwrap_or(0);
        let done = (|| -> Result<bool> {
            let _l = self.store.lock(&self.id)?;
            let mut c = self.store.load(&self.id)?;
            let oom = super::resources::oom_killed(self.k, &c);
            super::resources::release(self.k, &self.store, &mut c);
            c.state.status = Status::Exited;
            c.state.exit_code = code;
            c.state.oom_killed = oom;
            c.state.pid = 0;
            c.state.finished_at = crate::units::rfc3339(crate::units::now_nanos());
            let _ = self.k.unlink(&self.store.paths.socket(&self.id));
            if c.config.auto_remove {
                // docker run --rm: the container and its anonymous volumes.
                super::resources::remove(self.k, &self.store, &c)?;
                let others = self.store.all().unwrap_or_default();
                super::volumes::remove_anonymous(self.k, &self.store.paths.root, &c, &others)?;
            } else {
                self.store.save(&c)?;
            }
            Ok(oom)
        })();
        let oom = *done.as_ref().unwrap_or(&false);
        let exit =
            proto::frame(Kind::Exit, &serde_json::to_vec(&proto::Exit { code, oom_killed: oom }).unwrap_or_default());
        for cl in self.clients.iter_mut().filter(|cl| cl.session == Some(self.main_pid)) {
            cl.out.extend_from_slice(&exit);
            let _ = cl.stream.set_nonblocking(false);
            let _ = (&cl.stream).write_all(&cl.out);
            cl.out.clear();
        }
        done.map(|_| ())
    }
}

/// The child of an exec: join the container's namespaces (every file opened first,
/// since joining the mount namespace changes what /proc shows), its cgroup, then the
/// same confinement as the first process.
/// For a remapped container on a network: the monitor joins the container's network
/// namespace for the clone; returns its own, to go back to.
fn remapped_net(k: &Kernel, spec: &Spec) -> Result<Option<crate::kernel::Fd>> {
    let Some(init::Net::Join(path)) = &spec.net else { return Ok(None) };
    let _s = k.scope("netns-bridge");
    let own =
        k.why("the monitor's own network namespace, to come back to").open_read(Path::new("/proc/self/ns/net"))?;
    let theirs = k.open_read(path)?;
    k.why("the container's network namespace, which its first process is cloned in")
        .setns(&theirs, CloneFlags::CLONE_NEWNET)?;
    Ok(Some(own))
}

fn exec_setup(k: &Kernel, target: i32, spec: &Spec, stdio: Stdio) -> std::result::Result<(), String> {
    use crate::kernel::NsKind;
    k.set_parent_death_signal(Signal::SIGKILL).map_err(|e| e.to_string())?;
    k.set_undumpable().map_err(|e| e.to_string())?;
    k.tracer().detach_from_stderr();
    if let Stdio::Pipes(i, o, e) = &stdio {
        for (fd, n) in [(i, 0), (o, 1), (e, 2)] {
            k.dup2(fd.as_fd(), n).map_err(|e| e.to_string())?;
        }
    }
    let _s = k.scope("ns-exec");
    let mut kinds = vec![NsKind::Cgroup, NsKind::Ipc, NsKind::Uts, NsKind::Net, NsKind::Mount];
    if spec.remapped() {
        // The user namespace last: joined first, it would leave this process without
        // the host's privileges over the network namespace, which the host owns.
        kinds.push(NsKind::User);
    }
    let mut fds = Vec::new();
    for n in kinds {
        let p = std::path::PathBuf::from(format!("/proc/{target}/ns/{}", n.proc_name()));
        fds.push((
            n,
            k.why("open every namespace first: joining the mount namespace changes what /proc shows")
                .open_read(&p)
                .map_err(|e| e.to_string())?,
        ));
    }
    {
        let _c = k.scope("cg-limit");
        for f in &spec.cgroup_procs {
            k.why("join the container's cgroup").write_file(f, "0").map_err(|e| e.to_string())?;
        }
    }
    for (n, fd) in &fds {
        k.setns(fd, n.flag()).map_err(|e| e.to_string())?;
    }
    if spec.remapped() {
        crate::ns::become_ns_root(k).map_err(|e| e.to_string())?;
    }
    if let (Stdio::Console(sock), Some(size)) = (&stdio, spec.tty) {
        let pty = k.openpty(Some(size)).map_err(|e| e.to_string())?;
        k.send_fds(sock, b"console", &[pty.master.as_fd()]).map_err(|e| e.to_string())?;
        drop(pty.master);
        k.setsid().map_err(|e| e.to_string())?;
        k.set_controlling_tty(pty.slave.as_fd()).map_err(|e| e.to_string())?;
        for fd in 0..3 {
            k.dup2(pty.slave.as_fd(), fd).map_err(|e| e.to_string())?;
        }
    }
    k.why("the process's working directory")
        .chdir(Path::new(if spec.cwd.is_empty() { "/" } else { &spec.cwd }))
        .map_err(|e| e.to_string())?;
    crate::ns::inside_root(k).map_err(|e| e.to_string())?;
    let seccomp = super::init::seccomp_programs(k, spec).map_err(|e| e.to_string())?;
    let ns = crate::ns::Spec { no_new_privs: spec.no_new_privileges, seccomp, ..Default::default() };
    super::init::confine_last(k, spec, &ns, "exec'd process")
}
