//! `pack`: an upper directory to a reproducible OCI layer tarball (see the parent module).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, Mode};

/// How [`pack`] writes a layer.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Clamp every mtime to at most this Unix time (reproducible builds).
    pub clamp_mtime: Option<i64>,
    /// gzip at this level; `None` writes a plain tar.
    pub gzip_level: Option<u32>,
}

/// What [`pack`] produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Packed {
    /// `sha256:...` of the uncompressed tar (an image config's `rootfs.diff_ids`).
    pub diff_id: String,
    /// `sha256:...` of the blob as written (a manifest's layer `digest`).
    pub digest: String,
    /// Bytes of the blob as written.
    pub size: u64,
    /// The OCI media type of the blob.
    pub media_type: String,
    /// Entries in the tar (whiteouts included).
    pub entries: u64,
    /// Whiteouts written (`.wh.NAME` and `.wh..wh..opq`).
    pub whiteouts: u64,
    /// Bytes of the uncompressed tar (what the store records as the layer's size).
    #[serde(skip)]
    pub tar_size: u64,
}

struct Hashing<W: Write> {
    inner: W,
    h: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.h.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W: Write>(inner: W) -> Hashing<W> {
    Hashing { inner, h: Sha256::new(), n: 0 }
}

fn hex(h: Sha256) -> String {
    let d = h.finalize();
    let mut s = String::from("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn werr(e: std::io::Error) -> Error {
    Error::failed(format!("writing the layer: {e}"), "is the output's filesystem full or read-only?")
}

/// Pack `upper` into an OCI layer written to `w`; see [`PackOptions`].
pub fn pack(k: &Kernel, upper: &Path, w: impl Write, opts: &PackOptions) -> Result<Packed> {
    pack_filtered(k, upper, None, w, opts)
}

/// Pack the `changes` of a plain directory tree `new` (from [`super::diff_tree`]: a
/// driver without an upper directory, as docker's devicemapper and vfs, diffs two
/// trees): the added and changed entries as they are in `new`, a `.wh.NAME` whiteout
/// for each deleted one. docker's `ExportChanges`.
pub fn pack_changes(
    k: &Kernel,
    new: &Path,
    changes: &[super::Change],
    w: impl Write,
    opts: &PackOptions,
) -> Result<Packed> {
    let mut f = Filter::default();
    for c in changes {
        let rel = c.path.trim_start_matches('/').to_string();
        let mut anc = rel.as_str();
        while let Some((parent, _)) = anc.rsplit_once('/') {
            f.ancestors.insert(parent.to_string());
            anc = parent;
        }
        match c.kind {
            super::ChangeKind::Deleted => {
                let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel.as_str()));
                f.deleted.entry(dir.to_string()).or_default().push(name.to_string());
            }
            _ => {
                f.keep.insert(rel);
            }
        }
    }
    pack_filtered(k, new, Some(&f), w, opts)
}

/// Which entries [`pack_changes`] writes.
#[derive(Default)]
struct Filter {
    keep: std::collections::BTreeSet<String>,
    ancestors: std::collections::BTreeSet<String>,
    /// Directory (relative, `""` for the root) → names deleted in it.
    deleted: std::collections::BTreeMap<String, Vec<String>>,
}

fn pack_filtered(
    k: &Kernel,
    upper: &Path,
    filter: Option<&Filter>,
    w: impl Write,
    opts: &PackOptions,
) -> Result<Packed> {
    let outer = hashing(w);
    let (diff_id, digest, size, tar_size, counts) = match opts.gzip_level {
        None => {
            let mut b = tar::Builder::new(hashing(outer));
            let counts = walk_root(k, upper, &mut b, opts, filter)?;
            let inner = b.into_inner().map_err(werr)?;
            let mut outer = inner.inner;
            outer.flush().map_err(werr)?;
            let id = hex(inner.h);
            (id.clone(), id, outer.n, inner.n, counts)
        }
        Some(level) => {
            let gz = flate2::GzBuilder::new().mtime(0).write(outer, flate2::Compression::new(level));
            let mut b = tar::Builder::new(hashing(gz));
            let counts = walk_root(k, upper, &mut b, opts, filter)?;
            let inner = b.into_inner().map_err(werr)?;
            let tar_size = inner.n;
            let mut outer = inner.inner.finish().map_err(werr)?;
            outer.flush().map_err(werr)?;
            (hex(inner.h), hex(outer.h), outer.n, tar_size, counts)
        }
    };
    let media_type = match opts.gzip_level {
        None => "application/vnd.oci.image.layer.v1.tar",
        Some(_) => "application/vnd.oci.image.layer.v1.tar+gzip",
    };
    Ok(Packed {
        diff_id,
        digest,
        size,
        media_type: media_type.into(),
        entries: counts.0,
        whiteouts: counts.1,
        tar_size,
    })
}

/// [`pack`] into the file `out`: written beside it (`OUT.partial`, made with
/// `O_CREAT|O_EXCL`, replacing one left by a killed run) then `rename(2)`d over it, so
/// a failure leaves no partial layer. The bytes are plain writes to that file. A dry
/// run computes the digests and writes nothing.
pub fn pack_to_file(k: &Kernel, upper: &Path, out: &Path, opts: &PackOptions) -> Result<Packed> {
    let tmp = out.with_extension("partial");
    let what = "create the layer file beside its final name";
    let file = match k.create_new(&tmp, 0o644, what) {
        Err(e) if e.errno == Errno::EEXIST => {
            k.why("left by an earlier run that did not finish");
            k.unlink(&tmp)?;
            k.create_new(&tmp, 0o644, what)?
        }
        r => r?,
    };
    let r = match file {
        Some(f) => {
            let w = std::io::BufWriter::with_capacity(1 << 20, f);
            pack(k, upper, w, opts)
        }
        None => pack(k, upper, std::io::sink(), opts),
    };
    match r {
        Ok(p) => {
            k.rename_over(&tmp, out).map_err(|e| {
                Error::failed(format!("cannot publish the layer {}: {e}", out.display()), "check the output directory")
            })?;
            Ok(p)
        }
        Err(e) => {
            if k.mode() == Mode::Live {
                let _ = k.unlink(&tmp);
            }
            Err(e)
        }
    }
}

struct Walk<'a> {
    k: &'a Kernel,
    opts: &'a PackOptions,
    filter: Option<&'a Filter>,
    links: HashMap<(u64, u64), String>,
    entries: u64,
    whiteouts: u64,
    sockets: u64,
}

fn walk_root<W: Write>(
    k: &Kernel,
    upper: &Path,
    b: &mut tar::Builder<W>,
    opts: &PackOptions,
    filter: Option<&Filter>,
) -> Result<(u64, u64)> {
    let m = std::fs::symlink_metadata(upper)
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", upper.display()), "give an existing directory"))?;
    if !m.is_dir() {
        return Err(Error::failed(format!("{} is not a directory", upper.display()), "give the upper directory"));
    }
    if let Some(c) = opts.clamp_mtime {
        k.note(format!("mtimes clamped to at most {c} (reproducible output)"));
    }
    let mut w = Walk { k, opts, filter, links: HashMap::new(), entries: 0, whiteouts: 0, sockets: 0 };
    w.dir(upper, "", b)?;
    b.finish().map_err(werr)?;
    if w.sockets > 0 {
        k.note(format!("{} sockets skipped: a tar archive cannot hold them", w.sockets));
    }
    k.note(format!(
        "packed {} entries ({} whiteouts) from {} (lstat/llistxattr/lgetxattr/read per entry: counted, not printed)",
        w.entries,
        w.whiteouts,
        upper.display()
    ));
    Ok((w.entries, w.whiteouts))
}

fn is_overlay_xattr(n: &str) -> bool {
    n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")
}

impl Walk<'_> {
    fn header(&self, m: &std::fs::Metadata, et: EntryType) -> Header {
        let mut h = Header::new_ustar();
        h.set_entry_type(et);
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(m.uid() as u64);
        h.set_gid(m.gid() as u64);
        let mut t = m.mtime().max(0);
        if let Some(c) = self.opts.clamp_mtime {
            t = t.min(c.max(0));
        }
        h.set_mtime(t as u64);
        h.set_size(0);
        h
    }

    fn whiteout<W: Write>(&mut self, b: &mut tar::Builder<W>, m: &std::fs::Metadata, path: &str) -> Result<()> {
        let mut h = self.header(m, EntryType::Regular);
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, std::io::empty()).map_err(werr)?;
        self.entries += 1;
        self.whiteouts += 1;
        Ok(())
    }

    fn dir<W: Write>(&mut self, abs: &Path, rel: &str, b: &mut tar::Builder<W>) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(abs)
            .map_err(|e| Error::failed(format!("cannot list {}: {e}", abs.display()), "check permissions"))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
        for name in names {
            let name_s = name.to_str().ok_or_else(|| {
                Error::failed(format!("{:?} in {}: name is not UTF-8", name, abs.display()), "rename it")
            })?;
            let p = abs.join(&name);
            let r = if rel.is_empty() { name_s.to_string() } else { format!("{rel}/{name_s}") };
            if let Some(f) = self.filter {
                if !f.keep.contains(&r) {
                    // Not changed itself: only walked through, to the changes below it.
                    if f.ancestors.contains(&r) && p.is_dir() {
                        self.dir(&p, &r, b)?;
                    }
                    continue;
                }
            }
            let m = std::fs::symlink_metadata(&p)
                .map_err(|e| Error::failed(format!("cannot stat {}: {e}", p.display()), "check permissions"))?;
            let ft = m.file_type();
            if ft.is_char_device() && m.rdev() == 0 {
                let wh = match r.rsplit_once('/') {
                    Some((d, n)) => format!("{d}/.wh.{n}"),
                    None => format!(".wh.{r}"),
                };
                self.whiteout(b, &m, &wh)?;
                continue;
            }
            let xattrs = self.k.xattrs_bulk(&p)?;
            let get = |n: &str| {
                xattrs.iter().find(|(k, _)| k == n || k == &n.replace("trusted.", "user.")).map(|(_, v)| v.as_slice())
            };
            if ft.is_file() && get("trusted.overlay.whiteout").is_some() {
                let wh = match r.rsplit_once('/') {
                    Some((d, n)) => format!("{d}/.wh.{n}"),
                    None => format!(".wh.{r}"),
                };
                self.whiteout(b, &m, &wh)?;
                continue;
            }
            let pax: Vec<(String, Vec<u8>)> = xattrs
                .iter()
                .filter(|(n, _)| !is_overlay_xattr(n))
                .map(|(n, v)| (format!("SCHILY.xattr.{n}"), v.clone()))
                .collect();
            let pax_ref = |b: &mut tar::Builder<W>| -> Result<()> {
                if !pax.is_empty() {
                    b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(werr)?;
                }
                Ok(())
            };
            if ft.is_dir() {
                let mut h = self.header(&m, EntryType::Directory);
                pax_ref(b)?;
                b.append_data(&mut h, format!("{r}/"), std::io::empty()).map_err(werr)?;
                self.entries += 1;
                if get("trusted.overlay.opaque") == Some(b"y") {
                    let mut o = self.header(&m, EntryType::Regular);
                    o.set_mode(0);
                    o.set_uid(0);
                    o.set_gid(0);
                    b.append_data(&mut o, format!("{r}/.wh..wh..opq"), std::io::empty()).map_err(werr)?;
                    self.entries += 1;
                    self.whiteouts += 1;
                }
                self.dir(&p, &r, b)?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&p).map_err(|e| {
                    Error::failed(format!("cannot read link {}: {e}", p.display()), "check permissions")
                })?;
                let mut h = self.header(&m, EntryType::Symlink);
                pax_ref(b)?;
                b.append_link(&mut h, &r, &target).map_err(werr)?;
                self.entries += 1;
            } else if ft.is_file() {
                if m.nlink() > 1 {
                    if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                        let mut h = self.header(&m, EntryType::Link);
                        b.append_link(&mut h, &r, first).map_err(werr)?;
                        self.entries += 1;
                        continue;
                    }
                    self.links.insert((m.dev(), m.ino()), r.clone());
                }
                let mut h = self.header(&m, EntryType::Regular);
                h.set_size(m.len());
                let f = std::fs::File::open(&p)
                    .map_err(|e| Error::failed(format!("cannot read {}: {e}", p.display()), "check permissions"))?;
                pax_ref(b)?;
                b.append_data(&mut h, &r, f).map_err(werr)?;
                self.entries += 1;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let et = if ft.is_char_device() {
                    EntryType::Char
                } else if ft.is_block_device() {
                    EntryType::Block
                } else {
                    EntryType::Fifo
                };
                let mut h = self.header(&m, et);
                if et != EntryType::Fifo {
                    h.set_device_major(libc_major(m.rdev())).map_err(werr)?;
                    h.set_device_minor(libc_minor(m.rdev())).map_err(werr)?;
                }
                pax_ref(b)?;
                b.append_data(&mut h, &r, std::io::empty()).map_err(werr)?;
                self.entries += 1;
            } else {
                self.sockets += 1;
            }
        }
        if let Some(gone) = self.filter.and_then(|f| f.deleted.get(rel)) {
            let m = std::fs::symlink_metadata(abs)
                .map_err(|e| Error::failed(format!("cannot stat {}: {e}", abs.display()), "check permissions"))?;
            for n in gone {
                let wh = if rel.is_empty() { format!(".wh.{n}") } else { format!("{rel}/.wh.{n}") };
                self.whiteout(b, &m, &wh)?;
            }
        }
        Ok(())
    }
}

// The glibc encoding of dev_t (gnu_dev_major/minor), written out to keep libc out of
// the lab: major = bits 8..19 and 32..43, minor = bits 0..7 and 20..43.
pub(crate) fn libc_major(d: u64) -> u32 {
    (((d >> 32) & 0xffff_f000) | ((d >> 8) & 0x0000_0fff)) as u32
}

pub(crate) fn libc_minor(d: u64) -> u32 {
    (((d >> 12) & 0xffff_ff00) | (d & 0x0000_00ff)) as u32
}

#[cfg(test)]
mod tests {
    use crate::kernel::{Kernel, Mode, Tracer};
    use crate::layer::{Change, ChangeKind};

    #[test]
    fn pack_changes_writes_the_changed_entries_and_a_whiteout_per_deleted_one() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["etc", "home", "usr/bin", "untouched/deep"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/motd"), "Tagada tsoin tsoin\n").unwrap();
        std::fs::write(r.join("etc/passwd"), "root\n").unwrap();
        std::fs::write(r.join("home/random"), [7u8; 8500]).unwrap();
        std::fs::write(r.join("untouched/deep/f"), "same\n").unwrap();
        let ch = |kind, path: &str| Change { kind, path: path.into() };
        let changes = [
            ch(ChangeKind::Changed, "/etc"),
            ch(ChangeKind::Changed, "/etc/motd"),
            ch(ChangeKind::Added, "/home/random"),
            ch(ChangeKind::Deleted, "/opt"),
            ch(ChangeKind::Deleted, "/usr/bin/uniq"),
        ];
        let k = Kernel::new("layer-diff", Mode::Live, Tracer::silent());
        let mut tar = vec![];
        let p = super::pack_changes(&k, r, &changes, &mut tar, &super::PackOptions::default()).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let names: Vec<String> =
            a.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect();
        // Parents that did not change are walked through, not written; etc/passwd
        // did not change; /home is not listed as changed, so only its new file goes.
        assert_eq!(names, ["etc/", "etc/motd", "home/random", "usr/bin/.wh.uniq", ".wh.opt"]);
        assert_eq!(p.whiteouts, 2);
    }

    #[test]
    fn dev_numbers() {
        // makedev(8, 1) = 0x801; makedev(259, 65536) from glibc.
        assert_eq!(super::libc_major(0x801), 8);
        assert_eq!(super::libc_minor(0x801), 1);
        let d: u64 = ((259 & 0xfff) << 8) | ((65536u64 & !0xff) << 12);
        assert_eq!(super::libc_major(d), 259);
        assert_eq!(super::libc_minor(d), 65536);
    }
}
