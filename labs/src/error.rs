//! One error type for every lab: what failed, on which object, and what to do.

use crate::kernel::{Errno, ExecFailure, SysError};

/// Everything that can stop a contlab tool. Each variant maps to one exit code
/// (see [`crate::exit`]); each message says what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A kernel request failed; `hint` says what to do about it.
    #[error("{err}{}", hint_text(.hint))]
    Kernel {
        /// The request and the errno.
        err: SysError,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The arguments are wrong (exit 2, like clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    /// The operation cannot be done as asked.
    #[error("{what}{}", hint_text(.hint))]
    Failed {
        /// What failed, naming the object.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The command to run could not be executed (exit 127 when not found, else 126).
    #[error("{}", exec_text(.program, *.errno))]
    Exec {
        /// The program as given.
        program: String,
        /// What execve(2) answered.
        errno: Errno,
    },
    /// A container's process could not start or run, as its monitor reported: exit
    /// 125 (the runtime failed), 126 (cannot be invoked), 127 (not found), as docker.
    #[error("{message}")]
    Container {
        /// The exit code.
        code: u8,
        /// What failed.
        message: String,
    },
    /// Writing the tool's own output failed (a closed pipe is a quiet success).
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

fn exec_text(program: &str, errno: Errno) -> String {
    match errno {
        Errno::ENOENT if program.contains('/') => format!("cannot run {program:?}: no such file (ENOENT)"),
        Errno::ENOENT => format!("cannot run {program:?}: command not found in $PATH (ENOENT)"),
        Errno::EACCES => format!("cannot run {program:?}: permission denied, it is not an executable file (EACCES)"),
        Errno::ENOEXEC => format!("cannot run {program:?}: not an executable format (ENOEXEC)"),
        e => format!("cannot run {program:?}: {:?} ({})", e, e.desc()),
    }
}

fn hint_text(h: &Option<String>) -> String {
    match h {
        Some(h) => format!("\n  hint: {h}"),
        None => String::new(),
    }
}

impl Error {
    /// A failure with a hint.
    pub fn failed(what: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Failed { what: what.into(), hint: Some(hint.into()) }
    }

    /// The errno, when a kernel request failed.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel { err, .. } => Some(err.errno),
            Error::Exec { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl From<SysError> for Error {
    fn from(err: SysError) -> Error {
        let hint = match err.errno {
            Errno::EPERM | Errno::EACCES => Some("this needs privileges: run it as root".to_string()),
            _ => None,
        };
        Error::Kernel { err, hint }
    }
}

impl From<ExecFailure> for Error {
    fn from(f: ExecFailure) -> Error {
        match f {
            ExecFailure::Sys(e) => e.into(),
            ExecFailure::Setup(m) => Error::Failed { what: m, hint: None },
            ExecFailure::Exec { program, errno } => Error::Exec { program, errno },
        }
    }
}

/// Attach a hint to a kernel failure with a given errno: `k.unshare(f).hint(EPERM, "...")`.
pub trait Hint<T> {
    /// When the request failed with `errno`, replace the generic hint by `text`.
    fn hint(self, errno: Errno, text: &str) -> Result<T, Error>;
}

impl<T, E: Into<Error>> Hint<T> for Result<T, E> {
    fn hint(self, errno: Errno, text: &str) -> Result<T, Error> {
        self.map_err(|e| match e.into() {
            Error::Kernel { err, hint } => {
                let hint = if err.errno == errno { Some(text.to_string()) } else { hint };
                Error::Kernel { err, hint }
            }
            other => other,
        })
    }
}

/// The result of every lab's `run`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
