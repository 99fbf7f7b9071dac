//! `diff`: `docker diff` from an upper directory, or between two plain trees.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::overlay::{lookup, Found};

/// A, C or D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Added: not in the image.
    Added,
    /// Changed: in the image, and modified (content, mode, owner) or holding changes.
    Changed,
    /// Deleted from the image.
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Changed => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The absolute path in the container (`/etc/motd`).
    pub path: String,
}

fn abs(rel: &str) -> String {
    format!("/{rel}")
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn need_dir(k: &Kernel, p: &Path, what: &str) -> Result<()> {
    match k.lstat(p)? {
        Some(m) if m.is_dir() => Ok(()),
        Some(_) => Err(Error::failed(format!("{what} {} is not a directory", p.display()), "give a directory")),
        None => Err(Error::failed(format!("{what} {} does not exist", p.display()), "check the path")),
    }
}

/// `docker diff` computed from an overlay upper directory and its lowers (**top
/// first**, as overlayfs' `lowerdir=`): only the upper is walked, each of its entries
/// is looked up in the lowers. The changes come in `docker diff`'s order: a directory
/// holding changes before its content, deletions after the other entries of their
/// directory.
pub fn diff(k: &Kernel, upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    need_dir(k, upper, "the upper directory")?;
    for l in lowers {
        need_dir(k, l, "the lower directory")?;
    }
    if lowers.iter().any(|l| same(l, upper)) {
        return Err(Error::failed(
            format!("{} is given both as upper and as a lower", upper.display()),
            "the upper directory holds the changes; the lowers are the image's layers",
        ));
    }
    let mut out = Vec::new();
    walk_upper(k, upper, lowers, "", true, &mut out)?;
    Ok(out)
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn walk_upper(
    k: &Kernel,
    upper: &Path,
    lowers: &[PathBuf],
    dir: &str,
    lower_visible: bool,
    out: &mut Vec<Change>,
) -> Result<()> {
    let names = k.read_dir(&upper.join(dir))?;
    let mut dels = Vec::new();
    for n in names {
        let rel = join(dir, &n);
        let p = upper.join(&rel);
        let Some(m) = k.lstat(&p)? else { continue };
        if is_whiteout(&m) || (m.is_file() && m.len() == 0 && k.getxattr(&p, "trusted.overlay.whiteout")?.is_some()) {
            dels.push(rel);
            continue;
        }
        let below = if lower_visible { lookup(k, lowers, &rel)? } else { Found::Absent };
        match below {
            Found::Layer { meta: lm, .. } => {
                if m.is_dir() && lm.is_dir() {
                    let opaque = k.getxattr(&p, "trusted.overlay.opaque")?.as_deref() == Some(b"y");
                    let changed = opaque || m.mode() != lm.mode() || m.uid() != lm.uid() || m.gid() != lm.gid();
                    let start = out.len();
                    if changed {
                        out.push(Change { kind: ChangeKind::Changed, path: abs(&rel) });
                    }
                    walk_upper(k, upper, lowers, &rel, !opaque, out)?;
                    if opaque {
                        // Everything the lowers had here and the upper does not: deleted.
                        let mine = k.read_dir(&p)?;
                        let mut theirs = std::collections::BTreeSet::new();
                        for l in lowers {
                            if let Ok(v) = k.read_dir(&l.join(&rel)) {
                                theirs.extend(v);
                            }
                        }
                        for t in theirs.into_iter().filter(|t| !mine.contains(t)) {
                            let trel = join(&rel, &t);
                            if matches!(lookup(k, lowers, &trel)?, Found::Layer { .. }) {
                                out.push(Change { kind: ChangeKind::Deleted, path: abs(&trel) });
                            }
                        }
                    }
                    if !changed && out.len() > start {
                        out.insert(start, Change { kind: ChangeKind::Changed, path: abs(&rel) });
                    }
                } else {
                    out.push(Change { kind: ChangeKind::Changed, path: abs(&rel) });
                    if m.is_dir() {
                        walk_upper(k, upper, lowers, &rel, false, out)?;
                    }
                }
            }
            _ => {
                out.push(Change { kind: ChangeKind::Added, path: abs(&rel) });
                if m.is_dir() {
                    walk_upper(k, upper, lowers, &rel, false, out)?;
                }
            }
        }
    }
    for d in dels {
        out.push(Change { kind: ChangeKind::Deleted, path: abs(&d) });
    }
    Ok(())
}

/// `docker diff` between two plain directories (Docker's "naive diff"): both are
/// walked whole; metadata as in Docker (mode, owner, device; size and mtime for
/// everything but directories).
pub fn diff_tree(k: &Kernel, old: &Path, new: &Path) -> Result<Vec<Change>> {
    need_dir(k, old, "the OLD directory")?;
    need_dir(k, new, "the NEW directory")?;
    let mut out = Vec::new();
    walk_tree(k, old, new, "", false, &mut out)?;
    Ok(out)
}

fn stat_different(o: &std::fs::Metadata, n: &std::fs::Metadata) -> bool {
    o.mode() != n.mode()
        || o.uid() != n.uid()
        || o.gid() != n.gid()
        || o.rdev() != n.rdev()
        || (!o.is_dir() && (o.mtime() != n.mtime() || o.mtime_nsec() != n.mtime_nsec() || o.len() != n.len()))
}

fn walk_tree(k: &Kernel, old: &Path, new: &Path, dir: &str, marked: bool, out: &mut Vec<Change>) -> Result<()> {
    let start = out.len();
    let new_names = k.read_dir(&new.join(dir))?;
    let old_names = k.read_dir(&old.join(dir)).unwrap_or_default();
    for n in &new_names {
        let rel = join(dir, n);
        let Some(nm) = k.lstat(&new.join(&rel))? else { continue };
        let om = if old_names.binary_search(n).is_ok() { k.lstat(&old.join(&rel))? } else { None };
        match om {
            None => {
                out.push(Change { kind: ChangeKind::Added, path: abs(&rel) });
                if nm.is_dir() {
                    added_subtree(k, new, &rel, out)?;
                }
            }
            Some(om) => {
                let diff = stat_different(&om, &nm);
                if diff {
                    out.push(Change { kind: ChangeKind::Changed, path: abs(&rel) });
                }
                if nm.is_dir() && om.is_dir() {
                    walk_tree(k, old, new, &rel, diff, out)?;
                } else if nm.is_dir() {
                    added_subtree(k, new, &rel, out)?;
                }
            }
        }
    }
    for o in &old_names {
        if new_names.binary_search(o).is_err() {
            out.push(Change { kind: ChangeKind::Deleted, path: abs(&join(dir, o)) });
        }
    }
    if !dir.is_empty() && !marked && out.len() > start {
        out.insert(start, Change { kind: ChangeKind::Changed, path: abs(dir) });
    }
    Ok(())
}

fn added_subtree(k: &Kernel, root: &Path, dir: &str, out: &mut Vec<Change>) -> Result<()> {
    for n in k.read_dir(&root.join(dir))? {
        let rel = join(dir, &n);
        out.push(Change { kind: ChangeKind::Added, path: abs(&rel) });
        if k.lstat(&root.join(&rel))?.is_some_and(|m| m.is_dir()) {
            added_subtree(k, root, &rel, out)?;
        }
    }
    Ok(())
}
