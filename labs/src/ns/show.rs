//! `ns-exec show`: the namespace table of the course's tp1. Each process's
//! namespaces are the magic links of `/proc/PID/ns/*` (`net:[4026531840]`); two
//! processes share a namespace when the numbers (inodes) are equal.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::TOOL;
use crate::error::{Error, Result};
use crate::kernel::{Kernel, NsKind};

/// One process's namespaces, as `ns-exec show --json` prints them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NsRow {
    /// The process.
    pub pid: i32,
    /// Its command name (/proc/PID/comm).
    pub command: String,
    /// kind → inode number.
    pub namespaces: BTreeMap<&'static str, u64>,
    /// The kinds whose inode differs from the reference process's (PID 1 by default).
    pub differs: Vec<&'static str>,
}

/// What [`show`] found: the rows, and which process they were compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// One row per process.
    pub rows: Vec<NsRow>,
    /// The process asked for as the reference.
    pub asked: i32,
    /// The process compared with: `asked`, or this process when `asked`'s namespaces
    /// could not be read (no ptrace access to PID 1 in some sandboxes).
    pub reference: i32,
    /// This process.
    pub me: i32,
}

impl Table {
    /// The table as `ns-exec show` prints it: one column per kind, a `*` beside the
    /// inodes that differ from the reference's.
    pub fn text(&self) -> String {
        let kinds = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];
        let mut out = String::new();
        let _ = write!(out, "{:>7}  {:<15}", "PID", "COMMAND");
        for kind in kinds {
            let _ = write!(out, " {kind:>11}");
        }
        out.push('\n');
        for r in &self.rows {
            let _ = write!(out, "{:>7}  {:<15}", r.pid, r.command);
            for kind in kinds {
                let cell = match r.namespaces.get(kind) {
                    Some(i) if r.differs.contains(&kind) => format!("{i}*"),
                    Some(i) => format!("{i} "),
                    None => "- ".into(),
                };
                let _ = write!(out, " {cell:>11}");
            }
            out.push('\n');
        }
        if self.reference == self.me {
            let _ =
                writeln!(out, "* differs from the namespaces of {TOOL} itself (PID {} could not be read)", self.asked);
        } else {
            let _ = writeln!(out, "* differs from PID {}", self.reference);
        }
        out
    }
}

pub(crate) fn inode_of(link: &str) -> Option<u64> {
    // "net:[4026531840]"
    link.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

fn ns_of(k: &Kernel, pid: i32) -> Option<BTreeMap<&'static str, u64>> {
    let dir = PathBuf::from(format!("/proc/{pid}/ns"));
    let mut m = BTreeMap::new();
    for n in NsKind::ALL {
        if let Some(i) = k.readlink(&dir.join(n.proc_name())).ok().as_deref().and_then(inode_of) {
            m.insert(n.proc_name(), i);
        }
    }
    (!m.is_empty()).then_some(m)
}

/// The namespaces of `pids` (empty: PID 1, this process, and every process whose
/// namespaces differ from the reference's in at least one kind), compared with those
/// of process `reference` (PID 1, the host's init, by default).
pub fn show(k: &Kernel, pids: &[i32], reference: i32) -> Result<Table> {
    let _s = k.scope(TOOL);
    let me = std::process::id() as i32;
    let (refd, init) = match ns_of(k, reference) {
        Some(ns) => (reference, ns),
        None => {
            // In some sandboxes even root may not look at PID 1 (no ptrace access).
            let ns = ns_of(k, me).ok_or_else(|| {
                Error::failed("cannot read /proc/self/ns", "is /proc mounted? (mount -t proc proc /proc)")
            })?;
            k.note(format!(
                "cannot read /proc/{reference}/ns (ptrace access denied): comparing with this process ({me}) instead"
            ));
            (me, ns)
        }
    };
    let all: Vec<i32> = if pids.is_empty() {
        let mut all: Vec<i32> = k.read_dir(Path::new("/proc"))?.iter().filter_map(|n| n.parse().ok()).collect();
        all.sort();
        all
    } else {
        pids.to_vec()
    };
    let mut rows = Vec::new();
    for pid in all {
        let Some(ns) = ns_of(k, pid) else {
            if !pids.is_empty() {
                return Err(Error::failed(
                    format!("cannot read the namespaces of process {pid} (/proc/{pid}/ns)"),
                    "check that the process exists; reading another user's process needs root",
                ));
            }
            continue;
        };
        let differs: Vec<&'static str> =
            ns.iter().filter(|(kind, ino)| init.get(*kind) != Some(ino)).map(|(kind, _)| *kind).collect();
        if pids.is_empty() && differs.is_empty() && pid != refd && pid != me {
            continue;
        }
        let command = k
            .read_file(&PathBuf::from(format!("/proc/{pid}/comm")))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        rows.push(NsRow { pid, command, namespaces: ns, differs });
    }
    Ok(Table { rows, asked: reference, reference: refd, me })
}
