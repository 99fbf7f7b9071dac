//! `apply`: extract one layer safely, with its whiteouts (see the parent module).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use tar::EntryType;

use super::{read_error, shown, ApplyOptions, ApplyStats};
use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, Mode};

/// Largest entry accepted whatever the free space says (1 TiB).
const MAX_ENTRY: u64 = 1 << 40;
const OPAQUE: &str = ".wh..wh..opq";
const WH: &str = ".wh.";

/// Extract one layer (an already-decompressed tar stream) into `dest`, safely: hostile
/// entries are refused with an error naming them, and nothing is written outside
/// `dest` (every path is resolved by `openat2(2)` with `RESOLVE_BENEATH`).
///
/// In a dry run (`--dry-run`) the archive is read and checked, whiteouts are shown,
/// and nothing is written.
pub fn apply(k: &Kernel, tar: impl Read, dest: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    let dry = k.mode() == Mode::DryRun;
    let root = if dry && !dest.exists() {
        None
    } else {
        Some(Rc::new(k.open_tree(dest).map_err(|e| {
            Error::failed(format!("cannot open {}: {}", dest.display(), e), "create the directory first")
        })?))
    };
    let free = match &root {
        Some(_) => k.free_bytes(dest)?,
        None => u64::MAX,
    };
    let mut x = Extract {
        k,
        dest: shown(dest),
        root,
        opts: opts.clone(),
        stats: ApplyStats::default(),
        added: HashSet::new(),
        dir_times: Vec::new(),
        cache: None,
        free,
        dry,
    };
    let mut ar = tar::Archive::new(tar);
    let entries = ar.entries().map_err(|e| read_error("the layer", e))?;
    let mut seen_any = false;
    for entry in entries {
        let mut e = entry.map_err(|e| read_error("the layer", e))?;
        seen_any = true;
        x.entry(&mut e)?;
    }
    if !seen_any {
        k.note("the layer holds no entry");
    }
    x.finish()?;
    let verb = if dry { "would apply" } else { "applied" };
    k.note(format!(
        "{verb} {} entries, {} bytes, {} whiteouts to {} (mkdirat/openat/write/symlinkat/linkat/fchownat/fchmodat/utimensat per entry: counted, not printed)",
        x.stats.entries, x.stats.bytes, x.stats.whiteouts, x.dest
    ));
    Ok(x.stats)
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

impl<'k> Extract<'k> {
    fn shown_dir(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.dest.clone()
        } else {
            format!("{}/{}", self.dest, rel)
        }
    }

    fn sys(&self, name: &str, e: crate::kernel::SysError) -> Error {
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
        let (parent, base) = split(rel);
        let pfd = self.ensure_dir(name, parent)?;
        if let Some(pfd) = pfd {
            let shown = self.shown_dir(parent);
            self.k.mkdir_at(&pfd, &shown, base, 0o755).map_err(|e| self.sys(name, e))?;
            self.added.insert(rel.to_string());
        }
        if self.dry {
            return Ok(None);
        }
        self.find_dir(name, rel)
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
        if let (Some(m), Some(p)) = (&existing, &pfd) {
            let keep = is_dir_entry && m.file_type().is_dir();
            if !keep {
                // Replace what is there, never write through it.
                self.k.replace_at(p, &pshown, base).map_err(|e| self.sys(&shown_name, e))?;
                self.cache = None;
            }
        }
        let mut meta = true;
        match et {
            EntryType::Directory => {
                if !existing.as_ref().is_some_and(|m| m.file_type().is_dir()) {
                    if let Some(p) = &pfd {
                        self.k.mkdir_at(p, &pshown, base, 0o700).map_err(|e| self.sys(&shown_name, e))?;
                    }
                }
                self.dir_times.push((rel.clone(), mtime.0, mtime.1));
            }
            EntryType::Regular | EntryType::Continuous => {
                if let Some(p) = &pfd {
                    if let Some(mut f) =
                        self.k.create_at(p, &pshown, base, 0o600).map_err(|e| self.sys(&shown_name, e))?
                    {
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
                }
            }
            EntryType::Fifo => {
                if let Some(p) = &pfd {
                    self.k.mknod_at(p, &pshown, base, 'p', mode, 0, 0).map_err(|e| self.sys(&shown_name, e))?;
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
                self.k.remove_all_at(&p, &pshown, target).map_err(|e| self.sys(name, e))?;
            }
            self.k.why(format!("{name:?} is an OCI whiteout: overlayfs wants a 0/0 character device"));
            self.k.mknod_at(&p, &pshown, target, 'c', 0, 0, 0).map_err(|e| self.sys(name, e))?;
            // The whiteout belongs to this layer: a later `.wh.` of the same name is a no-op.
            self.added.insert(full);
            return Ok(());
        }
        let Some(p) = self.find_dir(name, parent)? else {
            self.k.note(format!("whiteout {name:?}: nothing to delete"));
            return Ok(());
        };
        let pshown = self.shown_dir(parent);
        self.k.why(format!("{name:?} deletes {full:?} from the layers below"));
        self.k.remove_all_at(&p, &pshown, target).map_err(|e| self.sys(name, e))?;
        self.cache = None;
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
            if !self.added.contains(&full) {
                self.k.why(format!("{name:?}: {full:?} comes from a lower layer"));
                self.k.remove_all_at(fd, &dshown, &c).map_err(|e| self.sys(name, e))?;
                self.cache = None;
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
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean("d", b"./a//b/./c").unwrap(), "a/b/c");
        assert_eq!(clean("d", b"./").unwrap(), "");
        assert!(clean("d", b"/etc/passwd").is_err());
        assert!(clean("d", b"a/../../x").is_err());
        assert!(clean("d", b"..").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_time("12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time("7"), Some((7, 0)));
    }
}
