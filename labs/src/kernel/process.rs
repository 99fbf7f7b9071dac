//! Processes: fork, exec, wait, signals. How a runtime starts the container's first
//! process, learns whether the exec worked, and hands it the signals it receives.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode as Perm;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::trace::quote;
use super::{flags, Call, CloneFlags, Effect, Errno, Kernel, Kind, Ret, SysError};

fn path_arg(p: &Path) -> String {
    quote(&p.to_string_lossy(), 256)
}

/// How a child ended, as wait4(2) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exited {
    /// `exit(N)` or return from main.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

/// A command started by [`Kernel::spawn`], whose `execve` succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// Its PID, as this process sees it.
    pub pid: Pid,
}

/// Why a command started by [`Kernel::spawn`] is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFailure {
    /// fork(2) or pipe2(2) failed.
    Sys(SysError),
    /// The child's own preparation (before exec) failed; its message.
    Setup(String),
    /// `execve(2)` failed (ENOENT: not found; EACCES, ENOEXEC...: cannot invoke).
    Exec {
        /// The program as given.
        program: String,
        /// What execve(2) answered.
        errno: Errno,
    },
}

const EXECVE: Call = Call {
    kind: Kind::Syscall,
    name: "execve",
    man: "execve(2)",
    what: "replace this process's program with another one; the namespaces, cgroups and open descriptors stay",
    effect: Effect::Change,
};

const FORK: Call = Call {
    kind: Kind::Syscall,
    name: "fork",
    man: "fork(2)",
    what: "create a child process, a copy of this one (it is the first process to live in new PID namespaces)",
    effect: Effect::Change,
};

/// The signals a runtime passes on to the command it started.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn render_argv(argv: &[String]) -> String {
    let items: Vec<String> = argv.iter().map(|a| quote(a, 64)).collect();
    format!("[{}]", items.join(", "))
}

fn render_status(st: Exited) -> String {
    match st {
        Exited::Code(c) => format!("[{{WIFEXITED(s) && WEXITSTATUS(s) == {c}}}]"),
        Exited::Signal(s) => {
            let name = Signal::try_from(s).map(|s| s.as_str().to_string()).unwrap_or(s.to_string());
            format!("[{{WIFSIGNALED(s) && WTERMSIG(s) == {name}}}]")
        }
    }
}

fn sigset_text(sigs: &[Signal]) -> String {
    let names: Vec<&str> = sigs.iter().map(|s| s.as_str().trim_start_matches("SIG")).collect();
    format!("[{}]", names.join(" "))
}

/// The search path for a command that gets `env`: its `PATH=` entry, or (no env
/// given) this process's `$PATH`.
fn search_path(env: Option<&[String]>) -> Option<String> {
    match env {
        Some(e) => e.iter().find_map(|v| v.strip_prefix("PATH=")).map(str::to_string),
        None => std::env::var("PATH").ok(),
    }
}

/// The host PID of the calling process. After `unshare(CLONE_NEWPID)` + fork the
/// child's getpid() is 1, but /proc (still the host's procfs) resolves `self` to the
/// PID the host sees, which is what the trace should show. Bookkeeping of the tracer,
/// not a request the lab makes, so it is not itself traced.
fn host_pid() -> i32 {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| std::process::id() as i32)
}

impl Kernel {
    /// `fork(2)` — run `child` in a new process, which exits with the code it returns.
    /// In a dry run the child's requests are recorded inline, under a made-up PID.
    /// <https://man7.org/linux/man-pages/man2/fork.2.html>
    #[doc(alias = "fork")]
    pub fn fork_with(&self, child: impl FnOnce(&Kernel) -> i32) -> Result<Pid, SysError> {
        self.clone_with(CloneFlags::empty(), |_, _| Ok(()), child)
    }

    /// `clone(2)` with namespace flags and no new stack: a fork whose child starts in
    /// new namespaces (`CLONE_NEWUSER|CLONE_NEWPID`: a user namespace, and a PID
    /// namespace it owns, in which the child is PID 1). The child waits until
    /// `before_release` has run in the parent: what must be done from outside before
    /// the child may go on (its uid/gid maps, its cgroup). With no flags this is
    /// [`Kernel::fork_with`] (and traced as `fork()`).
    /// <https://man7.org/linux/man-pages/man2/clone.2.html>
    #[doc(alias = "clone")]
    pub fn clone_with(
        &self,
        ns: CloneFlags,
        before_release: impl FnOnce(&Kernel, Pid) -> Result<(), SysError>,
        child: impl FnOnce(&Kernel) -> i32,
    ) -> Result<Pid, SysError> {
        const CLONE: Call = Call {
            kind: Kind::Syscall,
            name: "clone",
            man: "clone(2)",
            what: "create a child process in new namespaces (a user namespace first, then the ones it owns)",
            effect: Effect::Change,
        };
        let (call, args) = if ns.is_empty() {
            (&FORK, vec![])
        } else {
            let fl = flags::render(ns.bits() as u64, flags::CLONE);
            (&CLONE, vec!["child_stack=NULL".into(), format!("flags={fl}|SIGCHLD")])
        };
        if self.mode == super::Mode::DryRun {
            self.fake_pid.set(self.fake_pid.get() + 1);
            let pid = self.fake_pid.get();
            self.perform(call, args, || (), || unreachable!(), |_| pid.to_string())?;
            before_release(self, Pid::from_raw(pid))?;
            let (me, seq) = (self.pid.replace(pid), self.seq.replace(0));
            child(self);
            self.pid.set(me);
            self.seq.set(seq);
            return Ok(Pid::from_raw(pid));
        }
        // The child waits until the parent has printed `fork() = PID` (and run
        // `before_release`), so a trace always shows the fork before the child's first
        // request (tracer bookkeeping: this pipe and its read are not themselves
        // traced). The parent lets it go with one byte; a gate closed without it (a
        // failed `before_release`, a parent killed meanwhile) makes the child exit
        // without running: a child in new namespaces never runs without its maps.
        let gate = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok();
        if gate.is_none() && !ns.is_empty() {
            return self.perform(call, args, || unreachable!(), || Err(Errno::EMFILE), |_: &Pid| String::new());
        }
        let forked = if ns.is_empty() {
            // SAFETY: contlab's tools are single-threaded when they fork, so the child
            // may run arbitrary code (allocate, print) until it execs or exits.
            unsafe { nix::unistd::fork() }
        } else {
            // SAFETY: clone(2) without CLONE_VM or a new stack is fork(2) with
            // namespace flags: the child gets a copy of this single-threaded process.
            let r = unsafe {
                libc::syscall(libc::SYS_clone, (ns.bits() as libc::c_long) | libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
            };
            match r {
                -1 => Err(Errno::last()),
                0 => Ok(ForkResult::Child),
                pid => Ok(ForkResult::Parent { child: Pid::from_raw(pid as i32) }),
            }
        };
        match forked {
            Ok(ForkResult::Parent { child }) => {
                let r = self.perform(call, args, || (), || Ok(()), |_| child.to_string());
                let hook = match r {
                    Ok(()) => before_release(self, child),
                    Err(e) => Err(e),
                };
                if let (Ok(()), Some((_, wr))) = (&hook, &gate) {
                    let _ = nix::unistd::write(wr, b"g");
                }
                drop(gate); // the child reads the go byte, or nothing: then it exits
                if hook.is_err() {
                    let _ = self.wait(child);
                }
                hook?;
                Ok(child)
            }
            Ok(ForkResult::Child) => {
                if let Some((rd, wr)) = gate {
                    drop(wr);
                    if read_all(rd) != b"g" {
                        // SAFETY: as below; the parent gave up on this child.
                        unsafe { libc::_exit(125) }
                    }
                }
                // The parent reports the fork; the child starts its own numbering.
                self.pid.set(host_pid());
                self.seq.set(0);
                let code = child(self);
                // SAFETY: _exit skips atexit handlers and the parent's buffered state.
                unsafe { libc::_exit(code) }
            }
            Err(e) => self.perform(call, args, || unreachable!(), || Err(e), |_: &Pid| String::new()),
        }
    }

    /// `fork(2)` for a child whose first request is to wait for a signal from its
    /// parent (blocked beforehand, then taken with [`Kernel::sigwait`]), such as a
    /// helper that must act only once the parent has unshared. Live, this is
    /// [`Kernel::fork_with`]. In a dry run the child's requests are recorded where the
    /// child really makes them: when [`Kernel::kill_gated`] sends the signal, not at the
    /// fork.
    #[doc(alias = "fork")]
    pub fn fork_gated<'a>(&self, child: impl FnOnce(&Kernel) -> i32 + 'a) -> Result<Gated<'a>, SysError> {
        if self.mode == super::Mode::DryRun {
            self.fake_pid.set(self.fake_pid.get() + 1);
            let pid = self.fake_pid.get();
            self.perform(&FORK, vec![], || (), || unreachable!(), |_| pid.to_string())?;
            return Ok(Gated { pid: Pid::from_raw(pid), deferred: Some(Box::new(child)) });
        }
        Ok(Gated { pid: self.fork_with(child)?, deferred: None })
    }

    /// `kill(2)` — send `sig` to a child made by [`Kernel::fork_gated`]. In a dry run,
    /// this is where the child's recorded requests go: it runs now, unless `sig` is
    /// SIGKILL, which a waiting child does not survive.
    pub fn kill_gated(&self, child: &mut Gated<'_>, sig: Signal) -> Result<(), SysError> {
        self.kill(child.pid, sig)?;
        if let Some(run) = child.deferred.take() {
            if sig != Signal::SIGKILL {
                let (me, seq) = (self.pid.replace(child.pid.as_raw()), self.seq.replace(0));
                run(self);
                self.pid.set(me);
                self.seq.set(seq);
            }
        }
        Ok(())
    }

    /// Start `argv` in a child process: fork, let `setup` prepare the child (hostname,
    /// mounts, cgroup...), then `execve(2)`. Returns once the exec has succeeded or
    /// failed, which the parent learns through a close-on-exec pipe: it closes (no
    /// data) when the exec succeeds, and carries the errno when it fails. The parent
    /// then reports the child's `execve`, since a successful exec returns nowhere.
    pub fn spawn(
        &self,
        argv: &[String],
        setup: impl FnOnce(&Kernel) -> Result<(), String>,
    ) -> Result<Spawned, ExecFailure> {
        self.spawn_env(argv, None, setup)
    }

    /// [`Kernel::spawn`] with the command's environment: `env` (`KEY=VALUE` strings)
    /// becomes its `envp` (`None`: this process's own environment), and a program name
    /// without `/` is searched in that environment's `PATH`. The search happens in the
    /// child once `setup` has run, so after a `pivot_root(2)` it looks in the new root,
    /// as runc does.
    pub fn spawn_env(
        &self,
        argv: &[String],
        env: Option<&[String]>,
        setup: impl FnOnce(&Kernel) -> Result<(), String>,
    ) -> Result<Spawned, ExecFailure> {
        self.spawn_in(CloneFlags::empty(), |_, _| Ok(()), argv, env, setup)
    }

    /// [`Kernel::spawn_env`] for a child cloned into new namespaces: see
    /// [`Kernel::clone_with`] for `ns` and `before_release`.
    pub fn spawn_in(
        &self,
        ns: CloneFlags,
        before_release: impl FnOnce(&Kernel, Pid) -> Result<(), SysError>,
        argv: &[String],
        env: Option<&[String]>,
        setup: impl FnOnce(&Kernel) -> Result<(), String>,
    ) -> Result<Spawned, ExecFailure> {
        if argv.is_empty() {
            return Err(ExecFailure::Setup("no command to run (an empty argv)".into()));
        }
        if self.mode == super::Mode::DryRun {
            let mut failed = None;
            let pid = self
                .clone_with(ns, before_release, |k| {
                    match setup(k) {
                        Err(m) => failed = Some(m),
                        Ok(()) => {
                            let _ = k.default_sigpipe();
                            let path = k.which_in(&argv[0], search_path(env).as_deref());
                            match path.map(|p| p.to_string_lossy().into_owned()) {
                                Some(p) => k.emit_exec(argv, env, &p, Ret::Ok("0".into())),
                                None => k.emit_exec(argv, env, &argv[0], Ret::Err(Errno::ENOENT)),
                            }
                        }
                    }
                    0
                })
                .map_err(ExecFailure::Sys)?;
            return match failed {
                Some(m) => Err(ExecFailure::Setup(m)),
                None => Ok(Spawned { pid }),
            };
        }
        let (rd, wr) = self.pipe().map_err(ExecFailure::Sys)?;
        let blocked = self.blocked.get();
        let rd_num = rd.as_raw_fd();
        let pid = self
            .clone_with(ns, before_release, |k| {
                // SAFETY: the child closes its copy of the read end; it never returns
                // from this closure to where `rd` would be closed again.
                unsafe { libc::close(rd_num) };
                k.exec_report.set(Some(wr.as_raw_fd()));
                if blocked {
                    let _ = k.sigprocmask(SigmaskHow::SIG_SETMASK, &[]);
                }
                if let Err(m) = setup(k) {
                    report(wr.as_raw_fd(), b'S', m.as_bytes());
                    return 125;
                }
                // Last, just before exec: the setup's own trace lines may still meet a
                // closed stderr, and must get EPIPE then, not a fatal SIGPIPE.
                let _ = k.default_sigpipe();
                match k.exec(argv, env) {
                    Errno::ENOENT => 127,
                    _ => 126,
                }
            })
            .map_err(ExecFailure::Sys)?;
        drop(wr);
        // The child's report: [Q seq path-len path] then, on failure, [E errno] or [S message].
        let msg = read_all(rd);
        let mut rest = &msg[..];
        let mut exec_at: Option<(u64, String)> = None;
        if rest.first() == Some(&b'Q') && rest.len() >= 13 {
            let seq = u64::from_le_bytes(rest[1..9].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(rest[9..13].try_into().unwrap_or_default()) as usize;
            let end = (13 + len).min(rest.len());
            exec_at = Some((seq, String::from_utf8_lossy(&rest[13..end]).into_owned()));
            rest = &rest[end..];
        }
        match (rest.first(), exec_at) {
            (None, Some((seq, path))) => {
                let (me, my_seq) = (self.pid.replace(pid.as_raw()), self.seq.replace(seq - 1));
                self.emit_exec(argv, env, &path, Ret::Ok("0".into()));
                self.pid.set(me);
                self.seq.set(my_seq);
                Ok(Spawned { pid })
            }
            (Some(b'E'), _) if rest.len() >= 5 => {
                let _ = self.wait(pid);
                let errno = Errno::from_raw(i32::from_le_bytes(rest[1..5].try_into().unwrap_or_default()));
                Err(ExecFailure::Exec { program: argv[0].clone(), errno })
            }
            (Some(b'S'), _) => {
                let _ = self.wait(pid);
                Err(ExecFailure::Setup(String::from_utf8_lossy(&rest[1..]).into_owned()))
            }
            _ => {
                let st = self.wait(pid);
                Err(ExecFailure::Setup(format!("the child process ended before exec ({st:?})")))
            }
        }
    }

    fn emit_exec(&self, argv: &[String], env: Option<&[String]>, path: &str, ret: Ret) {
        let vars = env.map(|e| e.len()).unwrap_or_else(|| std::env::vars_os().count());
        let args = vec![quote(path, 256), render_argv(argv), format!("/* {vars} vars */")];
        self.emit(EXECVE.kind, EXECVE.name.into(), args, ret, Some(EXECVE.man), Some(EXECVE.what));
    }

    /// `execve(2)` in a child made by [`Kernel::spawn_env`], with `env` as its
    /// environment (`None`: this process's). Returns only on failure.
    fn exec(&self, argv: &[String], env: Option<&[String]>) -> Errno {
        let fail = |k: &Kernel, path: &str, e: Errno| {
            k.emit_exec(argv, env, path, Ret::Err(e));
            if let Some(fd) = k.exec_report.get() {
                report(fd, b'E', &(e as i32).to_le_bytes());
            }
            e
        };
        let Some(path) = self.which_in(&argv[0], search_path(env).as_deref()) else {
            return fail(self, &argv[0], Errno::ENOENT);
        };
        let cpath = path.to_string_lossy().into_owned();
        let cstrings = |v: &[String]| v.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<Vec<_>, _>>();
        let envp = match env {
            Some(e) => cstrings(e).map(Some),
            None => Ok(None),
        };
        let (Ok(c), Ok(args), Ok(envp)) = (CString::new(cpath.clone()), cstrings(argv), envp) else {
            return fail(self, &cpath, Errno::EINVAL);
        };
        if let Some(fd) = self.exec_report.get() {
            // The event for a successful exec is emitted by the parent, which numbers
            // it after the child's last event.
            let mut body = (self.seq.get() + 1).to_le_bytes().to_vec();
            body.extend_from_slice(&(cpath.len() as u32).to_le_bytes());
            body.extend_from_slice(cpath.as_bytes());
            report(fd, b'Q', &body);
        }
        let e = match &envp {
            Some(envp) => nix::unistd::execve(&c, &args, envp).unwrap_err(),
            None => nix::unistd::execv(&c, &args).unwrap_err(),
        };
        fail(self, &cpath, e)
    }

    /// Run `argv` (searched in `PATH`) with its standard output into a pipe, and
    /// wait for it: its status and what it printed. Its stderr is this process's, or
    /// with `with_stderr` goes into the same pipe (a first try whose complaint is not
    /// to be shown). How `mini top` asks the host's ps(1), as docker does.
    pub fn output(&self, argv: &[String], with_stderr: bool) -> Result<(Exited, Vec<u8>), ExecFailure> {
        use std::os::fd::AsFd;
        let (r, w) = self.pipe().map_err(ExecFailure::Sys)?;
        let spawned = self.spawn(argv, |k| {
            k.dup2(w.as_fd(), 1).map_err(|e| e.to_string())?;
            if with_stderr {
                k.dup2(w.as_fd(), 2).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        drop(w);
        let spawned = spawned?;
        let out = read_all(r);
        let st = self.wait(spawned.pid).map_err(ExecFailure::Sys)?;
        Ok((st, out))
    }

    /// `pipe2(2)` with `O_CLOEXEC`.
    /// <https://man7.org/linux/man-pages/man2/pipe2.2.html>
    #[doc(alias = "pipe2")]
    pub fn pipe(&self) -> Result<(OwnedFd, OwnedFd), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "pipe2",
            man: "pipe2(2)",
            what: "create a pipe; here it closes by itself when the child's exec succeeds (O_CLOEXEC)",
            effect: Effect::Change,
        };
        self.pipe2_cloexec(&C)
    }

    /// `pipe2(2)` with `O_CLOEXEC`, traced as `c` says (what the pipe is for).
    pub(crate) fn pipe2_cloexec(&self, c: &Call) -> Result<(OwnedFd, OwnedFd), SysError> {
        self.perform(
            c,
            vec!["O_CLOEXEC".into()],
            || unreachable!("pipes are live-only"),
            || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC),
            |(r, w)| format!("0 [{}, {}]", r.as_raw_fd(), w.as_raw_fd()),
        )
    }

    /// `wait4(2)` — wait for the child `pid` to end and collect its status.
    /// <https://man7.org/linux/man-pages/man2/wait4.2.html>
    #[doc(alias = "wait4")]
    pub fn wait(&self, pid: Pid) -> Result<Exited, SysError> {
        self.wait_inner(pid, false).map(|r| r.map(|(_, st)| st).unwrap_or(Exited::Code(0)))
    }

    /// `wait4(-1, WNOHANG)` — collect any child that has ended, without blocking; how an
    /// init process reaps the zombies it adopts.
    pub fn reap_any(&self) -> Result<Option<(Pid, Exited)>, SysError> {
        self.wait_inner(Pid::from_raw(-1), true)
    }

    /// `wait4(pid, WNOHANG)`.
    pub fn try_wait(&self, pid: Pid) -> Result<Option<Exited>, SysError> {
        self.wait_inner(pid, true).map(|r| r.map(|(_, st)| st))
    }

    fn wait_inner(&self, pid: Pid, nohang: bool) -> Result<Option<(Pid, Exited)>, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "wait4",
            man: "wait4(2)",
            what: "wait for a child process to change state and collect its exit status",
            effect: Effect::Change,
        };
        let fl = if nohang { WaitPidFlag::WNOHANG } else { WaitPidFlag::empty() };
        let flags = flags::render(fl.bits() as u64, flags::WAIT);
        self.perform_out(
            &C,
            vec![pid.to_string()],
            || Some((pid, Exited::Code(0))),
            || loop {
                match nix::sys::wait::waitpid(pid, Some(fl | WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Exited(p, c)) => return Ok(Some((p, Exited::Code(c)))),
                    Ok(WaitStatus::Signaled(p, s, _)) => return Ok(Some((p, Exited::Signal(s as i32)))),
                    Ok(WaitStatus::StillAlive) => return Ok(None),
                    Ok(_) => continue,
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
            },
            |r| match r {
                Some((p, st)) => (p.to_string(), Some(format!("{}, {flags}, NULL", render_status(*st)))),
                None => ("0".into(), Some(format!("NULL, {flags}, NULL"))),
            },
        )
    }

    /// `kill(2)` — send `sig` to `pid`.
    /// <https://man7.org/linux/man-pages/man2/kill.2.html>
    pub fn kill(&self, pid: Pid, sig: Signal) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "kill",
            man: "kill(2)",
            what: "send a signal to a process",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![pid.to_string(), sig.as_str().to_string()],
            || (),
            || nix::sys::signal::kill(pid, sig),
            |_| "0".into(),
        )
    }

    /// `rt_sigprocmask(2)` — block (or unblock) signals, so they wait in a queue for
    /// [`Kernel::sigwait`] instead of interrupting the process.
    /// <https://man7.org/linux/man-pages/man2/sigprocmask.2.html>
    pub fn sigprocmask(&self, how: SigmaskHow, sigs: &[Signal]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rt_sigprocmask",
            man: "sigprocmask(2)",
            what: "change which signals are blocked (held pending) for this process",
            effect: Effect::Change,
        };
        let how_s = match how {
            SigmaskHow::SIG_BLOCK => "SIG_BLOCK",
            SigmaskHow::SIG_UNBLOCK => "SIG_UNBLOCK",
            _ => "SIG_SETMASK",
        };
        let mut set = SigSet::empty();
        sigs.iter().for_each(|s| set.add(*s));
        let r = self.perform(
            &C,
            vec![how_s.into(), sigset_text(sigs)],
            || (),
            || nix::sys::signal::sigprocmask(how, Some(&set), None),
            |_| "0".into(),
        );
        if r.is_ok() {
            self.blocked.set(how == SigmaskHow::SIG_BLOCK && !sigs.is_empty());
        }
        r
    }

    /// `rt_sigaction(2)` of SIGPIPE to `SIG_DFL`, in a child about to exec. A Rust
    /// program ignores SIGPIPE (a write to a closed pipe then fails with EPIPE instead),
    /// and an ignored signal stays ignored across `execve(2)`: without this, a command
    /// writing into a closed pipe (`yes | head -1`) would not be killed as in a shell.
    /// <https://man7.org/linux/man-pages/man2/sigaction.2.html>
    pub fn default_sigpipe(&self) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rt_sigaction",
            man: "sigaction(2)",
            what: "give SIGPIPE its default action back (a Rust program ignores it), for the command",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec!["SIGPIPE".into(), "{sa_handler=SIG_DFL}".into()],
            || (),
            // SAFETY: SIG_DFL installs no handler; this process is about to exec.
            || unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) }.map(|_| ()),
            |_| "0".into(),
        )
    }

    /// `seccomp(SECCOMP_SET_MODE_FILTER)` — from now on the kernel runs this classic
    /// BPF program (each instruction `(code, jt, jf, k)`) at every system call of this
    /// process and of all it forks and executes. The trace shows its length and first
    /// instructions. <https://man7.org/linux/man-pages/man2/seccomp.2.html>
    pub fn seccomp_filter(&self, prog: &[(u16, u8, u8, u32)]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "seccomp",
            man: "seccomp(2)",
            what: "install a filter the kernel runs at every system call of this process and its children",
            effect: Effect::Change,
        };
        let head: Vec<String> =
            prog.iter().take(3).map(|(c, t, f, k)| format!("{{0x{c:02x}, {t}, {f}, 0x{k:x}}}")).collect();
        let shown = format!(
            "{{len={}, filter=[{}{}]}}",
            prog.len(),
            head.join(", "),
            if prog.len() > 3 { ", ..." } else { "" }
        );
        self.perform(
            &C,
            vec!["SECCOMP_SET_MODE_FILTER".into(), "0".into(), shown],
            || (),
            || {
                let filter: Vec<libc::sock_filter> =
                    prog.iter().map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k }).collect();
                let fprog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut _ };
                // SAFETY: `fprog` points at `filter`, alive for the call; the kernel copies it.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0,
                        &fprog as *const libc::sock_fprog,
                    )
                };
                if r < 0 {
                    Err(nix::Error::last())
                } else {
                    Ok(())
                }
            },
            |_| "0".into(),
        )
    }

    /// `getcwd(2)` — the working directory, as a path from this process's root. A
    /// directory outside the root has no such path (the kernel answers
    /// `(unreachable)/...`, glibc `ENOENT`): that is how a working directory reached
    /// through a leaked descriptor (`/proc/self/fd/N`) is recognised.
    /// <https://man7.org/linux/man-pages/man2/getcwd.2.html>
    pub fn getcwd(&self) -> Result<std::path::PathBuf, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "getcwd",
            man: "getcwd(2)",
            what: "ask for the working directory's path from the process's root",
            effect: Effect::Query,
        };
        self.perform(
            &C,
            vec![],
            || std::path::PathBuf::from("/"),
            nix::unistd::getcwd,
            |p| quote(&p.display().to_string(), 128),
        )
    }

    /// `close_range(2)` with `CLOSE_RANGE_CLOEXEC` — mark every descriptor from `first`
    /// up close-on-exec: the program about to be executed gets none of them (runc's
    /// answer to CVE-2024-21626, a runtime's leaked directory descriptor reaching the
    /// host from a container's `/proc/self/fd/N`).
    /// <https://man7.org/linux/man-pages/man2/close_range.2.html>
    pub fn cloexec_from(&self, first: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "close_range",
            man: "close_range(2)",
            what:
                "mark every descriptor from here up close-on-exec: the command inherits only stdin, stdout and stderr",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![first.to_string(), "~0U".into(), "CLOSE_RANGE_CLOEXEC".into()],
            || (),
            || {
                // SAFETY: close_range only changes descriptor flags here; no memory is passed.
                let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
                if r < 0 {
                    Err(nix::Error::last())
                } else {
                    Ok(())
                }
            },
            |_| "0".into(),
        )
    }

    /// `rt_sigtimedwait(2)` — wait until one of the blocked `sigs` arrives; return it.
    /// <https://man7.org/linux/man-pages/man2/sigwaitinfo.2.html>
    pub fn sigwait(&self, sigs: &[Signal]) -> Result<Signal, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "rt_sigtimedwait",
            man: "sigwaitinfo(2)",
            what: "sleep until one of the blocked signals arrives, and take it",
            effect: Effect::Change,
        };
        let mut set = SigSet::empty();
        sigs.iter().for_each(|s| set.add(*s));
        self.perform(
            &C,
            vec![sigset_text(sigs)],
            || sigs.first().copied().unwrap_or(Signal::SIGCHLD),
            || loop {
                match set.wait() {
                    Err(Errno::EINTR) => continue,
                    r => return r,
                }
            },
            |s| s.as_str().to_string(),
        )
    }

    /// Wait for `child` while passing on the signals this process receives (SIGINT,
    /// SIGTERM...), as docker and tini do. With `reap_all` (an init process), every
    /// other child that ends is collected too, so no zombie stays. The signals must
    /// have been blocked with [`Kernel::block_forwarded`] before the child was made.
    pub fn wait_forwarding(&self, child: Pid, reap_all: bool) -> Result<Exited, SysError> {
        if self.mode == super::Mode::DryRun {
            return self.wait(child);
        }
        let mut set = FORWARDED.to_vec();
        set.push(Signal::SIGCHLD);
        loop {
            // SIGCHLD was blocked before the child existed, so a child that already
            // ended has left it pending: sigwait returns at once, no race.
            match self.sigwait(&set)? {
                Signal::SIGCHLD => loop {
                    let got = if reap_all { self.reap_any()? } else { self.try_wait(child)?.map(|s| (child, s)) };
                    match got {
                        Some((p, st)) if p == child => return Ok(st),
                        Some(_) => continue,
                        None => break,
                    }
                },
                sig => {
                    let _ = self.kill(child, sig);
                }
            }
        }
    }

    /// Block the signals [`Kernel::wait_forwarding`] forwards, and SIGCHLD. Children made
    /// by [`Kernel::spawn`] unblock them before exec.
    pub fn block_forwarded(&self) -> Result<(), SysError> {
        let mut set = FORWARDED.to_vec();
        set.push(Signal::SIGCHLD);
        self.sigprocmask(SigmaskHow::SIG_BLOCK, &set)
    }
}

/// Write a tagged message to the exec-report pipe (raw write: the child must not
/// allocate much or fail here; a lost report only loses detail, never correctness).
fn report(fd: i32, tag: u8, body: &[u8]) {
    let mut buf = Vec::with_capacity(body.len() + 1);
    buf.push(tag);
    buf.extend_from_slice(body);
    // SAFETY: fd is the write end of our own pipe, open in this process.
    unsafe {
        libc::write(fd, buf.as_ptr().cast(), buf.len());
    }
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut v = Vec::new();
    let _ = f.read_to_end(&mut v);
    v
}

impl Kernel {
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

    /// `umask(2)` — set the mask of permission bits new files do not get; returns the
    /// old one. <https://man7.org/linux/man-pages/man2/umask.2.html>
    pub fn umask(&self, mask: u32) -> Result<u32, SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "umask",
            man: "umask(2)",
            what: "set the bits new files and directories are made without",
            effect: Effect::Change,
        };
        self.perform(
            &C,
            vec![format!("{mask:03o}")],
            || 0o022,
            || Ok::<u32, nix::Error>(nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask)).bits()),
            |old| format!("{old:03o}"),
        )
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
            .perform(
                &C,
                vec![],
                || unreachable!(),
                nix::unistd::getresuid,
                |r| format!("0 [ruid={}, euid={}, suid={}]", r.real, r.effective, r.saved),
            )
            .map(|r| (r.real.as_raw(), r.effective.as_raw()))
            .unwrap_or((u32::MAX, u32::MAX));
        let g = self
            .perform(
                &G,
                vec![],
                || unreachable!(),
                nix::unistd::getresgid,
                |r| format!("0 [rgid={}, egid={}, sgid={}]", r.real, r.effective, r.saved),
            )
            .map(|r| (r.real.as_raw(), r.effective.as_raw()))
            .unwrap_or((u32::MAX, u32::MAX));
        UserIds { uid: u.0, euid: u.1, gid: g.0, egid: g.1 }
    }

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
        self.redirect_fds(path, &[0, 1, 2])
    }

    /// [`Kernel::redirect_stdio`] for some of the three (`&[0, 1]`: keep stderr, as a
    /// monitor does while it still reports to the terminal that started it).
    pub fn redirect_fds(&self, path: &Path, targets: &[i32]) -> Result<(), SysError> {
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
        for &target in targets {
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
    /// `clock_nanosleep(2)` on `CLOCK_MONOTONIC` — sleep for `d`. The cgroups lab
    /// sleeps between two samples of a group's counters (`cg-limit top`) and while it
    /// waits for killed processes to leave a group before `rmdir(2)`. A sleep changes
    /// nothing, so a dry run sleeps too.
    /// <https://man7.org/linux/man-pages/man2/clock_nanosleep.2.html>
    #[doc(alias = "clock_nanosleep")]
    #[doc(alias = "nanosleep")]
    pub fn sleep(&self, d: Duration) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "clock_nanosleep",
            man: "clock_nanosleep(2)",
            what: "suspend this process for a while, by the monotonic clock",
            effect: Effect::Query,
        };
        let args = vec![
            "CLOCK_MONOTONIC".into(),
            "0".into(),
            format!("{{tv_sec={}, tv_nsec={}}}", d.as_secs(), d.subsec_nanos()),
            "NULL".into(),
        ];
        self.perform(
            &C,
            args,
            || (),
            || {
                // std's sleep restarts after EINTR with the time left, as a caller of
                // clock_nanosleep(2) must.
                std::thread::sleep(d);
                Ok(())
            },
            |_| "0".into(),
        )
    }
}

/// A child made by [`Kernel::fork_gated`], waiting for its parent's signal.
pub struct Gated<'a> {
    pid: Pid,
    /// Dry runs: the child's work, recorded when the signal is sent.
    #[allow(clippy::type_complexity)]
    deferred: Option<Box<dyn FnOnce(&Kernel) -> i32 + 'a>>,
}

impl Gated<'_> {
    /// The child's PID (made up in a dry run).
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl std::fmt::Debug for Gated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gated").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Kernel {
    /// `setgroups(2)` — set the supplementary groups of this process (an empty list
    /// drops them all). Needs CAP_SETGID; in a user namespace, only once `setgroups`
    /// is allowed there. <https://man7.org/linux/man-pages/man2/setgroups.2.html>
    pub fn setgroups(&self, groups: &[u32]) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setgroups",
            man: "setgroups(2)",
            what: "set the supplementary groups this process belongs to, besides its group id",
            effect: Effect::Change,
        };
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        let gids: Vec<nix::unistd::Gid> = groups.iter().map(|g| nix::unistd::Gid::from_raw(*g)).collect();
        self.perform(
            &C,
            vec![groups.len().to_string(), format!("[{}]", list.join(", "))],
            || (),
            || nix::unistd::setgroups(&gids),
            |_| "0".into(),
        )
    }

    /// `setgid(2)` — set the group id (real, effective and saved, with CAP_SETGID).
    /// <https://man7.org/linux/man-pages/man2/setgid.2.html>
    pub fn setgid(&self, gid: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setgid",
            man: "setgid(2)",
            what: "set the group id this process acts as",
            effect: Effect::Change,
        };
        let g = nix::unistd::Gid::from_raw(gid);
        self.perform(&C, vec![gid.to_string()], || (), || nix::unistd::setgid(g), |_| "0".into())
    }

    /// `setuid(2)` — set the user id (real, effective and saved, with CAP_SETUID). A
    /// process that drops root this way loses its capabilities: do it last.
    /// <https://man7.org/linux/man-pages/man2/setuid.2.html>
    pub fn setuid(&self, uid: u32) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "setuid",
            man: "setuid(2)",
            what: "set the user id this process acts as; leaving uid 0 drops its capabilities",
            effect: Effect::Change,
        };
        let u = nix::unistd::Uid::from_raw(uid);
        self.perform(&C, vec![uid.to_string()], || (), || nix::unistd::setuid(u), |_| "0".into())
    }

    /// `setfsuid(2)` then `setfsgid(2)` — the ids this process creates files as and is
    /// checked as on the filesystem, nothing else (leaving fsuid 0 drops CAP_CHOWN,
    /// CAP_DAC_OVERRIDE and the other filesystem capabilities until it is 0 again).
    /// Returns the previous pair. <https://man7.org/linux/man-pages/man2/setfsuid.2.html>
    #[doc(alias = "setfsuid")]
    pub fn set_fs_ids(&self, uid: u32, gid: u32) -> Result<(u32, u32), SysError> {
        const U: Call = Call {
            kind: Kind::Syscall,
            name: "setfsuid",
            man: "setfsuid(2)",
            what: "set the user id files are created as and checked against (only for the filesystem)",
            effect: Effect::Change,
        };
        const G: Call = Call {
            kind: Kind::Syscall,
            name: "setfsgid",
            man: "setfsgid(2)",
            what: "set the group id files are created as",
            effect: Effect::Change,
        };
        // Each call answers the previous id; it reports no error.
        let old_g = self.perform(
            &G,
            vec![gid.to_string()],
            || 0,
            || Ok(nix::unistd::setfsgid(nix::unistd::Gid::from_raw(gid)).as_raw()),
            |o| o.to_string(),
        )?;
        let old_u = self.perform(
            &U,
            vec![uid.to_string()],
            || 0,
            || Ok(nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid)).as_raw()),
            |o| o.to_string(),
        )?;
        Ok((old_u, old_g))
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
