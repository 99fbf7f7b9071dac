//! `apply`: extract one layer safely, with its whiteouts (see the parent module), and
//! take it back whole if an entry is refused.
//!
//! ## All or nothing
//!
//! A layer is applied entry by entry, and entry 500 may be the hostile one. So that a
//! refused layer leaves the directory as it found it, `apply` keeps a journal of what
//! it changed:
//!
//! - a name it **creates** (a file, a directory, a link, a device, a whiteout device)
//!   is removed again (`unlinkat(2)`), newest first;
//! - what it **replaces or deletes** (an older file of the same name, what a whiteout
//!   or an opaque directory removes) is not removed at once: it is moved aside with
//!   `renameat2(2)` into `DEST/.contlab-apply`, moved back if the layer is refused, and
//!   removed only once the layer is complete;
//! - a directory that was there and whose owner, mode, extended attributes or time
//!   the layer sets gets them back.
//!
//! What the journal cannot restore: the modification times of directories an entry
//! was added to, and anything when the process is killed (`SIGKILL` runs no code).
//! For the second, callers that fill a new directory use [`super::Staging`]: the layer
//! goes into `.NAME.partial` beside the final place, renamed to `NAME` when complete,
//! so a killed run leaves only a `.NAME.partial` that the next run removes.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::rc::Rc;

use tar::EntryType;

use super::{read_error, shown, ApplyOptions, ApplyStats};
use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, Mode, SysError};

/// Largest entry accepted whatever the free space says (1 TiB).
const MAX_ENTRY: u64 = 1 << 40;
const OPAQUE: &str = ".wh..wh..opq";
const WH: &str = ".wh.";
/// Where a layer puts what it replaces until it is complete (a first free name among
/// `.contlab-apply`, `.contlab-apply-2`...), at the top of the destination.
pub const ASIDE: &str = ".contlab-apply";

/// Extract one layer (an already-decompressed tar stream) into the existing directory
/// `dest`, safely: hostile entries are refused with an error naming them, and nothing
/// is written outside `dest` (every path is resolved by `openat2(2)` with
/// `RESOLVE_BENEATH`). A refused or failed layer is taken back (see the module
/// documentation): `dest` holds what it held before.
///
/// In a dry run (`--dry-run`) the archive is read and checked, whiteouts are shown,
/// and nothing is written.
pub fn apply(k: &Kernel, tar: impl Read, dest: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let dry = k.mode() == Mode::DryRun;
    let root = if dry && !dest.exists() {
        None
    } else {
        Some(k.open_tree(dest).map_err(|e| {
            Error::failed(format!("cannot open {}: {}", dest.display(), e), "create the directory first")
        })?)
    };
    let free = match &root {
        Some(_) => k.free_bytes(dest)?,
        None => u64::MAX,
    };
    extract(k, tar, root, shown(dest), free, opts)
}

/// [`apply`](fn@apply) into the directory `root` is a descriptor of (`O_PATH` is
/// enough), shown as `shown` in messages: for a directory that has no safe path,
/// such as one inside a container's root reached with `openat2(2)` and
/// `RESOLVE_IN_ROOT` (`mini cp`). Every entry is still resolved beneath `root`.
pub fn apply_at(k: &Kernel, tar: impl Read, root: OwnedFd, shown: &str, opts: &ApplyOptions) -> Result<ApplyStats> {
    let free = k.free_bytes(Path::new(&format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&root))))?;
    extract(k, tar, Some(root), shown.to_string(), free, opts)
}

fn extract(
    k: &Kernel,
    tar: impl Read,
    root: Option<OwnedFd>,
    dest: String,
    free: u64,
    opts: &ApplyOptions,
) -> Result<ApplyStats> {
    let dry = k.mode() == Mode::DryRun;
    let root = root.map(Rc::new);
    let mut x = Extract {
        k,
        dest,
        root,
        opts: opts.clone(),
        stats: ApplyStats::default(),
        added: HashSet::new(),
        created: HashSet::new(),
        journal: Vec::new(),
        metas: HashSet::new(),
        aside: None,
        dir_times: Vec::new(),
        cache: None,
        free,
        dry,
    };
    match x.run(tar) {
        Ok(()) => {
            x.commit()?;
            let verb = if dry { "would apply" } else { "applied" };
            k.note(format!(
                "{verb} {} entries, {} bytes, {} whiteouts to {} (mkdirat/openat/write/symlinkat/linkat/fchownat/fchmodat/utimensat per entry: counted, not printed)",
                x.stats.entries, x.stats.bytes, x.stats.whiteouts, x.dest
            ));
            Ok(x.stats)
        }
        Err(e) => Err(x.rollback(e)),
    }
}

/// One change the layer made, to take back if it is refused.
#[derive(Debug)]
enum Undo {
    /// `rel` did not exist: remove it.
    Created { rel: String, dir: bool },
    /// `rel` was there and is now `ASIDE/slot`: move it back.
    Aside { rel: String, slot: String },
    /// The directory `rel` was there; its owner, mode, xattrs and mtime were these.
    Meta { rel: String, uid: u32, gid: u32, mode: u32, mtime: (i64, i64), xattrs: Vec<(String, Vec<u8>)> },
}

/// The state of one extraction.
struct Extract<'k> {
    k: &'k Kernel,
    dest: String,
    root: Option<Rc<OwnedFd>>,
    opts: ApplyOptions,
    stats: ApplyStats,
    /// Paths this layer wrote (whiteouts never remove them).
    added: HashSet<String>,
    /// Paths this layer created where nothing was (a subset of `added`).
    created: HashSet<String>,
    /// What to take back if the layer is refused, in the order done.
    journal: Vec<Undo>,
    /// Directories whose old metadata is in the journal.
    metas: HashSet<String>,
    /// The directory things are put aside in (its name, a descriptor), once made.
    aside: Option<(String, Rc<OwnedFd>, u64)>,
    /// Directory times, set at the end (writing into a directory changes its mtime).
    dir_times: Vec<(String, i64, i64)>,
    /// The last parent directory opened, by relative path.
    cache: Option<(String, Rc<OwnedFd>)>,
    free: u64,
    dry: bool,
}

fn refuse(dest: &str, name: &str, why: &str) -> Error {
    Error::failed(
        format!("refusing layer entry {name:?}: {why}"),
        format!("the layer is hostile or broken; nothing was written outside {dest}"),
    )
}

/// A tar name made relative and checked: no absolute path, no `..`.
pub(crate) fn clean(dest: &str, raw: &[u8]) -> Result<String> {
    let name = std::str::from_utf8(raw)
        .map_err(|_| refuse(dest, &String::from_utf8_lossy(raw), "the name is not UTF-8 (not supported)"))?;
    if name.starts_with('/') {
        return Err(refuse(dest, name, "absolute path"));
    }
    if name.contains('\0') {
        return Err(refuse(dest, name, "NUL byte in the name"));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(refuse(dest, name, "a `..` component would climb out of the directory")),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn split(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((p, n)) => (p, n),
        None => ("", rel),
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `rel` is, or is inside, the directory things are put aside in.
fn is_aside(rel: &str) -> bool {
    let top = rel.split('/').next().unwrap_or("");
    top == ASIDE || top.strip_prefix(ASIDE).and_then(|n| n.strip_prefix('-')).is_some_and(|n| n.parse::<u32>().is_ok())
}

impl<'k> Extract<'k> {
    fn run(&mut self, tar: impl Read) -> Result<()> {
        let mut ar = tar::Archive::new(tar);
        let entries = ar.entries().map_err(|e| read_error("the layer", e))?;
        let mut seen_any = false;
        for entry in entries {
            let mut e = entry.map_err(|e| read_error("the layer", e))?;
            seen_any = true;
            self.entry(&mut e)?;
        }
        if !seen_any {
            self.k.note("the layer holds no entry");
        }
        self.finish()
    }

    fn shown_dir(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.dest.clone()
        } else {
            format!("{}/{}", self.dest, rel)
        }
    }

    fn sys(&self, name: &str, e: SysError) -> Error {
        match e.errno {
            Errno::EXDEV | Errno::ELOOP => {
                refuse(&self.dest, name, &format!("its path leaves {} through a symlink or `..` ({})", self.dest, e))
            }
            Errno::ENOTDIR => refuse(&self.dest, name, &format!("a parent is not a directory ({e})")),
            _ => Error::from(e),
        }
    }

    /// The directory `rel` (beneath the root), or `None` when it does not exist.
    fn find_dir(&mut self, name: &str, rel: &str) -> Result<Option<Rc<OwnedFd>>> {
        let Some(root) = self.root.clone() else { return Ok(None) };
        if rel.is_empty() {
            return Ok(Some(root));
        }
        if let Some((p, fd)) = &self.cache {
            if p == rel {
                return Ok(Some(fd.clone()));
            }
        }
        match self.k.open_beneath(&root, &self.dest, rel) {
            Ok(fd) => {
                let fd = Rc::new(fd);
                self.cache = Some((rel.to_string(), fd.clone()));
                Ok(Some(fd))
            }
            Err(e) if e.errno == Errno::ENOENT => Ok(None),
            Err(e) => Err(self.sys(name, e)),
        }
    }

    /// The directory `rel`, created (0755, like tar) with its missing parents.
    fn ensure_dir(&mut self, name: &str, rel: &str) -> Result<Option<Rc<OwnedFd>>> {
        if self.root.is_none() {
            return Ok(None);
        }
        if let Some(d) = self.find_dir(name, rel)? {
            return Ok(Some(d));
        }
        if self.dry && self.created.contains(rel) {
            // Made already, in a dry run's imagination: once is enough.
            return Ok(None);
        }
        let (parent, base) = split(rel);
        let pfd = self.ensure_dir(name, parent)?;
        if let Some(pfd) = pfd {
            let shown = self.shown_dir(parent);
            self.k.mkdir_at(&pfd, &shown, base, 0o755).map_err(|e| self.sys(name, e))?;
            self.made(rel, true);
        }
        if self.dry {
            return Ok(None);
        }
        self.find_dir(name, rel)
    }

    /// Journal a name this layer created where there was nothing.
    fn made(&mut self, rel: &str, dir: bool) {
        self.added.insert(rel.to_string());
        if self.created.insert(rel.to_string()) {
            self.journal.push(Undo::Created { rel: rel.to_string(), dir });
        } else if let Some(Undo::Created { dir: d, .. }) =
            self.journal.iter_mut().rev().find(|u| matches!(u, Undo::Created { rel: r, .. } if r == rel))
        {
            // The layer replaced its own entry: the name now holds this one.
            *d = dir;
        }
    }

    /// The directory things are put aside in, made on first use.
    fn aside_dir(&mut self, name: &str) -> Result<(String, Rc<OwnedFd>, String)> {
        if self.aside.is_none() {
            let root = self.root.clone().ok_or_else(|| Error::failed("no destination", "give a directory"))?;
            let mut n = 1;
            let dir = loop {
                let cand = if n == 1 { ASIDE.to_string() } else { format!("{ASIDE}-{n}") };
                if self.k.stat_at(&root, &cand).map_err(|e| self.sys(name, e))?.is_none() {
                    break cand;
                }
                n += 1;
            };
            self.k.why("what the layer replaces waits here until the layer is complete");
            self.k.mkdir_at(&root, &self.dest, &dir, 0o700).map_err(|e| self.sys(name, e))?;
            // A dry run made nothing: the root stands in for it (nothing is moved).
            let fd = match self.dry {
                true => root.clone(),
                false => Rc::new(self.k.open_beneath(&root, &self.dest, &dir).map_err(|e| self.sys(name, e))?),
            };
            self.aside = Some((dir, fd, 0));
        }
        let (dir, fd, n) = self.aside.as_mut().expect("made above");
        *n += 1;
        Ok((dir.clone(), fd.clone(), n.to_string()))
    }

    /// Take `base` of directory `parent` out of the way of a new entry or of a
    /// whiteout: removed when this layer made it, else put aside (journaled). `why`
    /// explains a whiteout's deletion in the trace.
    fn remove_old(
        &mut self,
        name: &str,
        pfd: &Rc<OwnedFd>,
        parent: &str,
        base: &str,
        why: Option<String>,
    ) -> Result<()> {
        let rel = join(parent, base);
        let pshown = self.shown_dir(parent);
        self.cache = None;
        if self.created.contains(&rel) {
            // Ours: its Created entry in the journal covers it.
            return self.k.replace_at(pfd, &pshown, base).map_err(|e| self.sys(name, e));
        }
        let (dir, afd, slot) = self.aside_dir(name)?;
        if let Some(w) = &why {
            self.k.why(w.clone());
        }
        let ashown = self.shown_dir(&dir);
        // A whiteout's deletion is traced; an entry's replacement is counted, as the
        // entry itself is.
        let moved = match why.is_some() {
            true => self.k.rename_at(pfd, &pshown, base, &afd, &ashown, &slot),
            false => self.k.rename_at_counted(pfd, &pshown, base, &afd, &ashown, &slot),
        };
        match moved {
            Ok(()) => {
                self.journal.push(Undo::Aside { rel, slot });
                Ok(())
            }
            Err(e) if e.errno == Errno::EXDEV => {
                // Another filesystem mounted inside the tree: it cannot be put aside.
                self.k
                    .note(format!("{rel:?} is on another filesystem: removed now, a refused layer cannot restore it"));
                self.k.remove_all_at(pfd, &pshown, base).map(|_| ()).map_err(|e| self.sys(name, e))
            }
            Err(e) => Err(self.sys(name, e)),
        }
    }

    /// Journal the metadata of a directory that was there, before the layer changes it.
    fn keep_meta(&mut self, name: &str, pfd: &Rc<OwnedFd>, rel: &str, base: &str) -> Result<()> {
        if self.created.contains(rel) || !self.metas.insert(rel.to_string()) {
            return Ok(());
        }
        let Some(m) = self.k.stat_at(pfd, base).map_err(|e| self.sys(name, e))? else { return Ok(()) };
        let xattrs = self.k.xattrs_at(pfd, base).map_err(|e| self.sys(name, e))?;
        self.journal.push(Undo::Meta {
            rel: rel.to_string(),
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
            mtime: (m.mtime(), m.mtime_nsec()),
            xattrs,
        });
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = e.path_bytes().into_owned();
        let shown_name = String::from_utf8_lossy(&raw).into_owned();
        let et = e.header().entry_type();
        if matches!(et, EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink)
        {
            return Ok(());
        }
        let rel = clean(&self.dest, &raw)?;
        let size = e.size();
        if size > MAX_ENTRY || size > self.free {
            return Err(refuse(
                &self.dest,
                &shown_name,
                &format!(
                    "it claims {size} bytes, more than the {} bytes free under {}",
                    self.free.min(MAX_ENTRY),
                    self.dest
                ),
            ));
        }
        let (parent, base) = split(&rel);
        if is_aside(&rel) || base.strip_prefix(WH).is_some_and(is_aside) {
            return Err(refuse(&self.dest, &shown_name, &format!("{ASIDE} is the name apply keeps for itself")));
        }
        if base == OPAQUE {
            self.stats.whiteouts += 1;
            return self.opaque(&shown_name, parent);
        }
        if let Some(target) = base.strip_prefix(WH) {
            if target.is_empty() || target == "." || target == ".." {
                return Err(refuse(&self.dest, &shown_name, "a whiteout must name a file"));
            }
            self.stats.whiteouts += 1;
            return self.whiteout(&shown_name, parent, target);
        }
        if rel.is_empty() {
            // The root directory entry (`./`): the directory exists; keep it as is.
            return Ok(());
        }
        // Gather metadata before reading the content.
        let h = e.header();
        let mode = h.mode().unwrap_or(0o644);
        let uid = h.uid().unwrap_or(0) as u32;
        let gid = h.gid().unwrap_or(0) as u32;
        let mut mtime = (h.mtime().unwrap_or(0) as i64, 0i64);
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let dev = (h.device_major().ok().flatten().unwrap_or(0), h.device_minor().ok().flatten().unwrap_or(0));
        let mut xattrs = Vec::new();
        if let Ok(Some(pax)) = e.pax_extensions() {
            for ext in pax.flatten() {
                let key = ext.key().unwrap_or("");
                if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.push((x.to_string(), ext.value_bytes().to_vec()));
                } else if key == "mtime" {
                    if let Ok(v) = ext.value() {
                        mtime = parse_time(v).unwrap_or(mtime);
                    }
                }
            }
        }

        let pfd = self.ensure_dir(&shown_name, parent)?;
        let pshown = self.shown_dir(parent);
        let existing = match &pfd {
            Some(p) => self.k.stat_at(p, base).map_err(|e| self.sys(&shown_name, e))?,
            None => None,
        };
        let is_dir_entry = et == EntryType::Directory;
        let kept_dir = is_dir_entry && existing.as_ref().is_some_and(|m| m.file_type().is_dir());
        if let (Some(_), Some(p)) = (&existing, &pfd) {
            if kept_dir {
                self.keep_meta(&shown_name, p, &rel, base)?;
            } else {
                // Replace what is there, never write through it.
                self.remove_old(&shown_name, p, parent, base, None)?;
            }
        }
        let mut meta = true;
        match et {
            EntryType::Directory => {
                if !kept_dir {
                    if let Some(p) = &pfd {
                        self.k.mkdir_at(p, &pshown, base, 0o700).map_err(|e| self.sys(&shown_name, e))?;
                        self.made(&rel, true);
                    }
                }
                self.dir_times.push((rel.clone(), mtime.0, mtime.1));
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(p) = &pfd {
                    let made = self.k.create_at(p, &pshown, base, 0o600).map_err(|e| self.sys(&shown_name, e))?;
                    self.made(&rel, false);
                    if let Some(mut f) = made {
                        // 256 KiB writes instead of io::copy's 8 KiB: a 200 MB layer is
                        // then ~800 write(2) calls, not ~26,000.
                        let mut w = std::io::BufWriter::with_capacity(256 << 10, &mut f);
                        let n = std::io::copy(e, &mut w).and_then(|n| w.flush().map(|()| n));
                        drop(w);
                        let n = n.map_err(|err| {
                            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                                read_error(&format!("the content of {shown_name:?}"), err)
                            } else if err.raw_os_error().is_some() && err.kind() != std::io::ErrorKind::InvalidData {
                                Error::failed(format!("writing {}/{}: {err}", pshown, base), "is the filesystem full?")
                            } else {
                                read_error(&format!("the content of {shown_name:?}"), err)
                            }
                        })?;
                        if n != size {
                            return Err(read_error(
                                &format!("the content of {shown_name:?}"),
                                std::io::Error::new(
                                    std::io::ErrorKind::UnexpectedEof,
                                    format!("{n} of {size} bytes: unexpected EOF"),
                                ),
                            ));
                        }
                        self.stats.bytes += n;
                        self.free = self.free.saturating_sub(n);
                    } else {
                        self.stats.bytes += size;
                    }
                } else {
                    self.stats.bytes += size;
                }
            }
            EntryType::Symlink => {
                let target = link.ok_or_else(|| refuse(&self.dest, &shown_name, "a symlink without a target"))?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| refuse(&self.dest, &shown_name, "a symlink target that is not UTF-8"))?;
                if let Some(p) = &pfd {
                    self.k.symlink_at(target, p, &pshown, base).map_err(|e| self.sys(&shown_name, e))?;
                    self.made(&rel, false);
                }
                self.cache = None;
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| refuse(&self.dest, &shown_name, "a hard link without a target"))?;
                let trel = clean(&self.dest, &target).map_err(|_| {
                    refuse(
                        &self.dest,
                        &shown_name,
                        &format!("hard link to {:?}, outside the layer", String::from_utf8_lossy(&target)),
                    )
                })?;
                if trel.is_empty() {
                    return Err(refuse(&self.dest, &shown_name, "a hard link to the root directory"));
                }
                let (tp, tb) = split(&trel);
                if let Some(p) = &pfd {
                    let tdir = self.find_dir(&shown_name, tp)?.ok_or_else(|| {
                        refuse(&self.dest, &shown_name, &format!("hard link to {trel:?}, which does not exist"))
                    })?;
                    match self.k.stat_at(&tdir, tb).map_err(|e| self.sys(&shown_name, e))? {
                        // A dry run made nothing: a target of this layer is there for it.
                        None if self.dry && self.added.contains(&trel) => {}
                        None => {
                            return Err(refuse(
                                &self.dest,
                                &shown_name,
                                &format!("hard link to {trel:?}, which does not exist"),
                            ))
                        }
                        Some(m) if m.file_type().is_dir() => {
                            return Err(refuse(&self.dest, &shown_name, "a hard link to a directory"))
                        }
                        Some(_) => {}
                    }
                    let tshown = self.shown_dir(tp);
                    self.k.link_at(&tdir, &tshown, tb, p, &pshown, base).map_err(|e| self.sys(&shown_name, e))?;
                    self.made(&rel, false);
                }
                meta = false;
            }
            EntryType::Char | EntryType::Block => {
                if !self.opts.allow_devices {
                    return Err(refuse(
                        &self.dest,
                        &shown_name,
                        &format!("device node {}:{} not permitted (devices are allowed only as root)", dev.0, dev.1),
                    ));
                }
                let kind = if et == EntryType::Char { 'c' } else { 'b' };
                if let Some(p) = &pfd {
                    self.k
                        .mknod_at(p, &pshown, base, kind, mode, dev.0, dev.1)
                        .map_err(|e| self.sys(&shown_name, e))?;
                    self.made(&rel, false);
                }
            }
            EntryType::Fifo => {
                if let Some(p) = &pfd {
                    self.k.mknod_at(p, &pshown, base, 'p', mode, 0, 0).map_err(|e| self.sys(&shown_name, e))?;
                    self.made(&rel, false);
                }
            }
            other => {
                return Err(refuse(&self.dest, &shown_name, &format!("entry type {other:?} is not supported")));
            }
        }
        self.added.insert(rel.clone());
        self.stats.entries += 1;
        if !meta {
            return Ok(());
        }
        let Some(p) = pfd else { return Ok(()) };
        if self.opts.same_owner {
            self.k.chown_at(&p, &pshown, base, uid, gid).map_err(|e| self.sys(&shown_name, e))?;
        }
        if et != EntryType::Symlink {
            self.k.chmod_at(&p, &pshown, base, mode).map_err(|e| self.sys(&shown_name, e))?;
        }
        for (key, value) in xattrs {
            if key.starts_with("trusted.overlay.") || key.starts_with("user.overlay.") {
                self.k.note(format!(
                    "skipping xattr {key} of {shown_name:?}: overlayfs' own attributes are never taken from a layer"
                ));
                continue;
            }
            if let Err(e) = self.k.setxattr_at(&p, &pshown, base, &key, &value) {
                if matches!(e.errno, Errno::ENOTSUP | Errno::EPERM) {
                    self.k.note(format!("xattr {key} of {shown_name:?} not kept: {}", e.errno.desc()));
                } else {
                    return Err(self.sys(&shown_name, e));
                }
            }
        }
        if et != EntryType::Directory {
            self.k.utimes_at(&p, &pshown, base, mtime.0, mtime.1).map_err(|e| self.sys(&shown_name, e))?;
        }
        Ok(())
    }

    /// `.wh.NAME` in directory `parent`.
    fn whiteout(&mut self, name: &str, parent: &str, target: &str) -> Result<()> {
        let full = join(parent, target);
        if self.added.contains(&full) {
            self.k.note(format!("whiteout {name:?} ignored: {full:?} comes from this same layer"));
            return Ok(());
        }
        if self.opts.overlay_whiteouts {
            let Some(p) = self.ensure_dir(name, parent)? else {
                self.k.note(format!("would mknod the whiteout of {full:?}"));
                return Ok(());
            };
            let pshown = self.shown_dir(parent);
            if self.k.stat_at(&p, target).map_err(|e| self.sys(name, e))?.is_some() {
                self.remove_old(name, &p, parent, target, None)?;
            }
            self.k.why(format!("{name:?} is an OCI whiteout: overlayfs wants a 0/0 character device"));
            self.k.mknod_at(&p, &pshown, target, 'c', 0, 0, 0).map_err(|e| self.sys(name, e))?;
            // The whiteout belongs to this layer: a later `.wh.` of the same name is a no-op.
            self.made(&full, false);
            return Ok(());
        }
        let Some(p) = self.find_dir(name, parent)? else {
            self.k.note(format!("whiteout {name:?}: nothing to delete"));
            return Ok(());
        };
        if self.k.stat_at(&p, target).map_err(|e| self.sys(name, e))?.is_some() {
            let why =
                format!("{name:?} deletes {full:?} from the layers below (kept aside until the layer is complete)");
            self.remove_old(name, &p, parent, target, Some(why))?;
        }
        Ok(())
    }

    /// `DIR/.wh..wh..opq`.
    fn opaque(&mut self, name: &str, dir: &str) -> Result<()> {
        if self.opts.overlay_whiteouts {
            let Some(_) = self.ensure_dir(name, dir)? else {
                self.k.note(format!("would mark {dir:?} opaque"));
                return Ok(());
            };
            let (pp, base) = if dir.is_empty() { ("", ".") } else { split(dir) };
            let p = self.find_dir(name, pp)?.ok_or_else(|| refuse(&self.dest, name, "its directory vanished"))?;
            if !dir.is_empty() {
                self.keep_meta(name, &p, dir, base)?;
            } else if let Some(root) = self.root.clone() {
                self.keep_meta(name, &root, "", ".")?;
            }
            let pshown = self.shown_dir(pp);
            self.k.why(format!("{name:?} marks {dir:?} opaque: lower layers' content is hidden"));
            self.k.setxattr_at(&p, &pshown, base, "trusted.overlay.opaque", b"y").map_err(|e| self.sys(name, e))?;
            return Ok(());
        }
        let Some(p) = self.find_dir(name, dir)? else {
            return Ok(());
        };
        self.clear_old(name, dir, &p)
    }

    /// Remove what earlier layers put under `dir`, keeping what this layer wrote.
    fn clear_old(&mut self, name: &str, dir: &str, fd: &Rc<OwnedFd>) -> Result<()> {
        let dshown = self.shown_dir(dir);
        let children = self.k.list_at(fd, &dshown, ".").map_err(|e| self.sys(name, e))?;
        for c in children {
            let full = join(dir, &c);
            if dir.is_empty() && is_aside(&c) {
                continue;
            }
            if !self.added.contains(&full) {
                let why =
                    format!("{name:?}: {full:?} comes from a lower layer (kept aside until the layer is complete)");
                self.remove_old(name, fd, dir, &c, Some(why))?;
            } else if self.k.stat_at(fd, &c).map_err(|e| self.sys(name, e))?.is_some_and(|m| m.file_type().is_dir()) {
                if let Some(sub) = self.find_dir(name, &full)? {
                    self.clear_old(name, &full, &sub)?;
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let times = std::mem::take(&mut self.dir_times);
        for (rel, s, ns) in times.into_iter().rev() {
            let (parent, base) = split(&rel);
            if let Some(p) = self.find_dir(&rel, parent)? {
                let pshown = self.shown_dir(parent);
                self.k.utimes_at(&p, &pshown, base, s, ns).map_err(|e| self.sys(&rel, e))?;
            }
        }
        Ok(())
    }

    /// The layer is complete: what was put aside goes for good.
    fn commit(&mut self) -> Result<()> {
        let (Some((dir, _, _)), Some(root)) = (self.aside.take(), self.root.clone()) else { return Ok(()) };
        self.k.why("the layer is complete: what it replaced goes for good");
        self.k.remove_all_at(&root, &self.dest, &dir).map_err(|e| {
            Error::failed(
                format!("the layer is applied to {}, but what it replaced could not be removed: {e}", self.dest),
                format!("remove {}/{dir} (rm -rf)", self.dest),
            )
        })?;
        Ok(())
    }

    /// Take back everything the journal holds, newest first, and return `err` (with
    /// what could not be taken back, if anything).
    fn rollback(&mut self, err: Error) -> Error {
        let journal = std::mem::take(&mut self.journal);
        let Some(root) = self.root.clone() else { return err };
        if journal.is_empty() {
            return err;
        }
        self.cache = None;
        self.k.note(format!("the layer was refused: taking back its {} change(s) to {}", journal.len(), self.dest));
        let mut left = Vec::new();
        for u in journal.iter().rev() {
            if let Err(e) = self.undo(&root, u) {
                left.push(e);
            }
        }
        if let Some((dir, _, _)) = self.aside.take() {
            if let Err(e) = self.k.unlink_at(&root, &self.dest, &dir, true) {
                left.push(format!("{}/{dir}: {e}", self.dest));
            }
        }
        if left.is_empty() {
            return err;
        }
        let more = format!("could not take back: {}", left.join("; "));
        match err {
            Error::Failed { what, hint } => {
                Error::Failed { what, hint: Some(format!("{}; {more}", hint.unwrap_or_default())) }
            }
            Error::Kernel { err, hint } => {
                Error::Kernel { err, hint: Some(format!("{}; {more}", hint.unwrap_or_default())) }
            }
            other => other,
        }
    }

    fn undo(&mut self, root: &Rc<OwnedFd>, u: &Undo) -> std::result::Result<(), String> {
        let rel = match u {
            Undo::Created { rel, .. } | Undo::Aside { rel, .. } | Undo::Meta { rel, .. } => rel.clone(),
        };
        let (parent, base) = if rel.is_empty() { ("", ".") } else { split(&rel) };
        let dest = self.dest.clone();
        let say = |e: &dyn std::fmt::Display| format!("{dest}/{rel}: {e}");
        let pfd = match self.find_dir(&rel, parent) {
            Ok(Some(p)) => p,
            Ok(None) if self.dry => root.clone(),
            Ok(None) => return Err(say(&"its directory is gone")),
            Err(e) => return Err(say(&e)),
        };
        let pshown = self.shown_dir(parent);
        match u {
            Undo::Created { dir, .. } => match self.k.unlink_at(&pfd, &pshown, base, *dir) {
                Ok(()) => Ok(()),
                Err(e) if e.errno == Errno::ENOENT => Ok(()),
                Err(e) => Err(say(&e)),
            },
            Undo::Aside { slot, .. } => {
                let (dir, afd, _) = self.aside.clone().ok_or_else(|| say(&"nothing was put aside"))?;
                let ashown = self.shown_dir(&dir);
                self.k.rename_at_counted(&afd, &ashown, slot, &pfd, &pshown, base).map_err(|e| say(&e))
            }
            Undo::Meta { uid, gid, mode, mtime, xattrs, .. } => {
                let k = self.k;
                k.chown_at(&pfd, &pshown, base, *uid, *gid).map_err(|e| say(&e))?;
                k.chmod_at(&pfd, &pshown, base, *mode).map_err(|e| say(&e))?;
                let now = if self.dry { Vec::new() } else { k.xattrs_at(&pfd, base).map_err(|e| say(&e))? };
                for (key, _) in now.iter().filter(|(n, _)| !xattrs.iter().any(|(o, _)| o == n)) {
                    k.removexattr_at(&pfd, &pshown, base, key).map_err(|e| say(&e))?;
                }
                for (key, v) in xattrs.iter().filter(|kv| !now.contains(kv)) {
                    k.setxattr_at(&pfd, &pshown, base, key, v).map_err(|e| say(&e))?;
                }
                k.utimes_at(&pfd, &pshown, base, mtime.0, mtime.1).map_err(|e| say(&e))
            }
        }
    }
}

fn parse_time(v: &str) -> Option<(i64, i64)> {
    let (s, f) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = s.parse().ok()?;
    let mut frac = f.chars().take(9).collect::<String>();
    while frac.len() < 9 {
        frac.push('0');
    }
    Some((secs, frac.parse().unwrap_or(0)))
}

#[cfg(test)]
mod tests;
