//! Exit codes, one enum for every binary.
//!
//! `0` ok · `1` the operation failed · `2` usage error. Tools that run a command
//! (`ns-exec`, `cg-limit run`) follow docker and chroot(1): `125` the tool itself
//! failed, `126` the command cannot be invoked, `127` it was not found, otherwise the
//! command's own status, and `128+N` when it was killed by signal N.

use std::io::ErrorKind;

use crate::error::Error;
use crate::kernel::{Errno, Exited};

/// How a tool ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Ok,
    /// 1: the operation failed.
    Failed,
    /// 2: usage error.
    Usage,
    /// 125: a command wrapper failed before the command ran.
    ToolFailed,
    /// 126: the command exists but cannot be invoked.
    CannotInvoke,
    /// 127: the command was not found.
    NotFound,
    /// The command's own exit status.
    Status(u8),
    /// 128+N: the command was killed by signal N.
    Signal(u8),
}

impl Exit {
    /// The number the shell sees.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::ToolFailed => 125,
            Exit::CannotInvoke => 126,
            Exit::NotFound => 127,
            Exit::Status(n) => n,
            Exit::Signal(n) => 128u8.saturating_add(n),
        }
    }

    /// The exit of a command that ended as `st`.
    pub fn of(st: Exited) -> Exit {
        match st {
            Exited::Code(c) => Exit::Status(c as u8),
            Exited::Signal(s) => Exit::Signal(s as u8),
        }
    }
}

/// Whether a binary runs a command for the user (its own failures are then 125).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `cg-limit show`, `ns-exec show`: failures exit 1.
    Tool,
    /// `ns-exec -- CMD`, `cg-limit run -- CMD`: failures exit 125/126/127.
    Wrapper,
    /// `mini run`, `create`, `start`, `exec`: as `Wrapper`, and a bad flag exits 125
    /// too, as docker's do.
    Docker,
}

/// The exit code for an error, given the role of the tool that met it.
pub fn code_for(err: &Error, role: Role) -> Exit {
    match err {
        Error::Usage(_) if role == Role::Docker => Exit::ToolFailed,
        Error::Usage(_) => Exit::Usage,
        Error::Output(e) if e.kind() == ErrorKind::BrokenPipe => Exit::Ok,
        Error::Exec { errno: Errno::ENOENT, .. } => Exit::NotFound,
        Error::Exec { .. } => Exit::CannotInvoke,
        Error::Container { code, .. } => Exit::Status(*code),
        _ if role == Role::Wrapper || role == Role::Docker => Exit::ToolFailed,
        _ => Exit::Failed,
    }
}

/// Map a lab's result to the process exit code, printing the error once, prefixed by
/// the tool's name (a closed output pipe is a quiet success, as in ripgrep). `role`
/// comes from the command line (`Cli::role`): a wrapper's own failures exit 125.
pub fn report(tool: &str, role: Role, result: Result<Exit, Error>) -> std::process::ExitCode {
    match result {
        Ok(exit) => std::process::ExitCode::from(exit.code()),
        Err(err) => {
            let exit = code_for(&err, role);
            if exit != Exit::Ok {
                eprintln!("{tool}: {err}");
            }
            std::process::ExitCode::from(exit.code())
        }
    }
}

/// The older form of [`report`], for labs whose `run` still returns the role with the
/// result. Goes once every lab's `run` returns `Result<Exit>`.
pub fn finish(tool: &str, result: Result<(Exit, Role), (Error, Role)>) -> std::process::ExitCode {
    match result {
        Ok((exit, _)) => std::process::ExitCode::from(exit.code()),
        Err((err, role)) => {
            let exit = code_for(&err, role);
            if exit != Exit::Ok {
                eprintln!("{tool}: {err}");
            }
            std::process::ExitCode::from(exit.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_codes() {
        assert_eq!(Exit::of(Exited::Signal(9)).code(), 137);
        assert_eq!(Exit::of(Exited::Code(3)).code(), 3);
        let nf = Error::Exec { program: "x".into(), errno: Errno::ENOENT };
        assert_eq!(code_for(&nf, Role::Wrapper).code(), 127);
        let na = Error::Exec { program: "x".into(), errno: Errno::EACCES };
        assert_eq!(code_for(&na, Role::Wrapper).code(), 126);
        let f = Error::failed("x", "y");
        assert_eq!(code_for(&f, Role::Wrapper).code(), 125);
        assert_eq!(code_for(&f, Role::Tool).code(), 1);
        assert_eq!(code_for(&Error::Usage("u".into()), Role::Tool).code(), 2);
        let pipe = Error::Output(std::io::Error::from(ErrorKind::BrokenPipe));
        assert_eq!(code_for(&pipe, Role::Tool).code(), 0);
    }
}
