//! Flags every contlab binary shares, flattened into each one's clap parser.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::kernel::{ColorChoice, Kernel, Mode, TraceFormat, Tracer};

/// How the kernel trace is shown. Every binary accepts these.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonOpts {
    /// Print no trace of kernel requests.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// After each kernel request, one plain-English line: what it does, why, and its man page.
    #[arg(long, global = true)]
    pub explain: bool,

    /// Trace format: strace-like text, or JSON Lines (tool, pid, seq, kind, call, args, ret, errno).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text", global = true)]
    pub trace: TraceFormat,

    /// Write the trace to this file (appended) instead of stderr.
    #[arg(long, value_name = "PATH", global = true)]
    pub trace_file: Option<PathBuf>,

    /// Color the trace: auto (stderr is a terminal and NO_COLOR is unset), always, never.
    #[arg(long, value_enum, value_name = "WHEN", default_value = "auto", global = true)]
    pub color: ColorChoice,

    /// Show the kernel requests that would be made, without making the changes
    /// (queries such as reads and statfs still run).
    #[arg(long, global = true)]
    pub dry_run: bool,
}

impl CommonOpts {
    /// The kernel layer these options describe, for `tool`.
    pub fn kernel(&self, tool: &'static str) -> Result<Kernel> {
        let file = match &self.trace_file {
            None => None,
            Some(p) => Some(std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(|e| {
                Error::failed(
                    format!("cannot open the trace file {}: {e}", p.display()),
                    "give --trace-file a path in a writable directory",
                )
            })?),
        };
        let mode = if self.dry_run { Mode::DryRun } else { Mode::Live };
        let k = Kernel::new(tool, mode, Tracer::new(self.trace, self.explain, self.quiet, self.color, file));
        if self.dry_run {
            k.note("dry run: changes are shown, not made");
        }
        Ok(k)
    }
}
