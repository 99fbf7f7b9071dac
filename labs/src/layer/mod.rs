//! # Layers: what `docker diff` and `docker commit` compute, and what a layer is
//!
//! An image is a stack of read-only layers; a container adds one writable layer on
//! top (the course: "une image est un ensemble de layers en lecture seule"). With
//! overlayfs (see [`crate::overlay`]) that writable layer is the **upper directory**,
//! and it already holds exactly the container's changes:
//!
//! - a file created in the container is a new file in upper: `A /path`;
//! - a file of the image that was modified was *copied up* whole (not as a patch,
//!   whatever some notes say: overlayfs copies the entire file on the first write),
//!   so it is in upper and in a lower layer: `C /path`;
//! - a file of the image that was deleted is a *whiteout* in upper, a character
//!   device 0/0: `D /path`. A directory replaced by a new one is *opaque*: its upper
//!   copy carries the `trusted.overlay.opaque = "y"` extended attribute.
//!
//! `layer-diff diff UPPER --lower L1:L2` reads only the upper directory (and looks
//! up each of its entries in the lowers), so its cost follows the size of the
//! changes, not of the image, which is how Docker computes `docker diff` with its
//! overlay2 driver. Every directory holding a change is printed `C` before its
//! contents, deletions after the other entries of their directory, as in the course:
//!
//! ```text
//! C /etc
//! C /etc/motd
//! C /usr/bin
//! D /usr/bin/uniq
//! D /mnt
//! ```
//!
//! `layer-diff diff --tree OLD NEW` compares two plain directories instead (Docker's
//! "naive diff"), which costs a walk of both trees.
//!
//! ## From an upper directory to an OCI layer: `pack` (what `docker commit` does)
//!
//! A layer travels as a tar archive (the OCI image-spec "layer changeset"). Tar has
//! no notion of a whiteout device, so they are translated:
//!
//! - the whiteout of `NAME` becomes an empty file `.wh.NAME` in the same directory;
//! - an opaque directory `D` becomes the entry `D/` followed by `D/.wh..wh..opq`.
//!
//! Owners are numeric, modes keep set-id bits, extended attributes go into PAX
//! `SCHILY.xattr.*` records (overlay's own `trusted.overlay.*` ones are left out),
//! hard links become link entries, devices stay devices. Entries are sorted and their
//! times can be clamped (`--clamp-mtime`, or `SOURCE_DATE_EPOCH`), so the same tree
//! always gives the same bytes, hence the same digest. The **diff_id** is the sha256
//! of the uncompressed tar (what an image config lists in `rootfs.diff_ids`); the
//! **digest** is the sha256 of the compressed blob (what a manifest lists).
//!
//! ## Back from a layer to a tree: `apply` (what `docker pull` does, layer by layer)
//!
//! [`apply`] extracts a layer into a directory, either a flat rootfs where
//! `.wh.NAME` *deletes* `NAME` and `.wh..wh..opq` empties the directory of what lower
//! layers put there, or (`--overlay`) a layer directory for overlayfs, where they
//! become a 0/0 character device and the opaque xattr again. As umoci does, a whiteout
//! never removes what the same layer wrote, whether it comes before or after it in
//! the archive.
//!
//! A layer is untrusted input. Every entry is written relative to a directory
//! descriptor opened with `openat2(2)` and `RESOLVE_BENEATH`: the kernel itself
//! refuses (`EXDEV`) a path that leaves the directory through `..`, an absolute
//! symlink or a relative one climbing out. Absolute names, `..` components, hard
//! links to outside, devices when not permitted and sizes beyond the free space are
//! refused with an error naming the entry; nothing is ever written outside DIR.
//! A refused layer is taken back whole: what it created is removed, what it replaced
//! or deleted is put back (see [`apply`](fn@apply)), so DIR holds what it held before.
//!
//! ## As a library
//!
//! [`diff`], [`diff_tree`], [`pack`] and [`apply`](fn@apply) take paths and streams
//! and print nothing; the `layer-diff` command line is an adapter over them
//! (`layer::cli`). [`Staging`] fills a new directory beside its final place and
//! renames it there when complete, so that even a killed run (`kill -9`) leaves no
//! half-filled directory under the final name: only a `.NAME.partial` that the next
//! run removes before it starts.

mod apply;
mod cli;
mod diff;
mod pack;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::{Kernel, Mode};

pub use apply::{apply, apply_at, ASIDE};
pub use cli::{run, Cli};
pub use diff::{diff, diff_tree, Change, ChangeKind};
pub(crate) use pack::{libc_major as dev_major, libc_minor as dev_minor};
pub use pack::{pack, pack_changes, pack_to_file, PackOptions, Packed};

/// The tool this lab is, as its trace and messages name it.
pub const TOOL: &str = "layer-diff";

/// How [`apply`](fn@apply) writes a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `false`: a flat rootfs, whiteouts delete; `true`: a layer directory for
    /// overlayfs, whiteouts become 0/0 character devices and the opaque xattr.
    pub overlay_whiteouts: bool,
    /// Give entries the owners the layer records (`fchownat`); needs root.
    pub same_owner: bool,
    /// Create the block and character devices the layer holds; needs root.
    pub allow_devices: bool,
}

impl ApplyOptions {
    /// A flat rootfs, owners and devices kept when the caller is root: asks the
    /// kernel who this process is (`getresuid(2)`).
    pub fn for_caller(k: &Kernel) -> ApplyOptions {
        let root = k.ids().euid == 0;
        ApplyOptions { overlay_whiteouts: false, same_owner: root, allow_devices: root }
    }
}

/// What [`apply`](fn@apply) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyStats {
    /// Entries written (directories, files, links, devices).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteouts met (`.wh.NAME` and `.wh..wh..opq`).
    pub whiteouts: u64,
}

/// Wrap a possibly compressed layer stream: gzip (`1f 8b`), zstd (`28 b5 2f fd`) or a
/// plain tar, told apart by their first bytes (media types lie; magic numbers don't).
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf().map_err(|e| Error::failed(format!("reading the layer: {e}"), "check the file"))?;
    if head.is_empty() {
        return Err(Error::failed(
            "the layer is empty (0 bytes)",
            "give a tar archive, gzip- or zstd-compressed or not",
        ));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::bufread::MultiGzDecoder::new(br)));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let d = ruzstd::decoding::StreamingDecoder::new(br)
            .map_err(|e| Error::failed(format!("the layer is not a valid zstd stream: {e}"), "check the file"))?;
        return Ok(Box::new(d));
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(Error::failed(
            "the layer is bzip2- or xz-compressed, which OCI layers never are",
            "decompress it first (bunzip2, unxz) and give the tar",
        ));
    }
    Ok(Box::new(br))
}

/// Turn an I/O error met while reading a layer into a clear message.
pub(crate) fn read_error(what: &str, e: std::io::Error) -> Error {
    let eof = e.kind() == std::io::ErrorKind::UnexpectedEof || e.to_string().contains("unexpected EOF");
    let hint = match eof {
        true => "the archive is truncated: download or copy it again",
        false => "is it a tar archive (possibly gzip- or zstd-compressed)? Is it complete?",
    };
    Error::failed(format!("reading {what}: {e}"), hint)
}

/// `path` shown relative to nothing: for messages.
pub(crate) fn shown(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Remove `path` and everything below it, never following a symlink: `openat(2)` of
/// its parent, then the kernel layer's walk of `unlinkat(2)` (each removal an event
/// of the JSON trace). Returns whether something was there.
pub fn remove_tree(k: &Kernel, path: &Path) -> Result<bool> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (if p.as_os_str().is_empty() { Path::new(".") } else { p }, n.to_string_lossy()),
        _ => return Err(Error::failed(format!("cannot remove {}", path.display()), "give a path below a directory")),
    };
    let fd = k.open_tree(parent)?;
    Ok(k.remove_all_at(&fd, &shown(parent), &name)?)
}

/// A new directory filled beside its final place, then renamed there: `NAME` appears
/// complete or not at all. The work is done in `.NAME.partial`, in the same parent
/// (so that `rename(2)` can move it); a `.NAME.partial` left by a killed run is
/// removed first.
#[derive(Debug)]
pub struct Staging {
    /// Where to fill it: `PARENT/.NAME.partial`.
    pub path: PathBuf,
    dest: PathBuf,
}

impl Staging {
    /// The staging path for `dest`.
    pub fn path_for(dest: &Path) -> PathBuf {
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        dest.with_file_name(format!(".{name}.partial"))
    }

    /// Start filling `dest` (which must not exist): remove a stale `.NAME.partial`,
    /// then `mkdir(2)` it.
    pub fn begin(k: &Kernel, dest: &Path) -> Result<Staging> {
        let path = Staging::path_for(dest);
        // A stat of the tool's own scratch directory: a read, not a change.
        if k.mode() == Mode::Live && std::fs::symlink_metadata(&path).is_ok() {
            k.note(format!("removing {} (left by an earlier run that did not finish)", path.display()));
            remove_tree(k, &path)?;
        }
        k.mkdir(&path, 0o755)?;
        Ok(Staging { path, dest: dest.to_path_buf() })
    }

    /// Complete: `rename(2)` it to its final name.
    pub fn commit(self, k: &Kernel) -> Result<()> {
        k.why("the directory is complete: it appears under its name whole");
        k.rename_over(&self.path, &self.dest)?;
        Ok(())
    }

    /// Give up: remove it and what it holds.
    pub fn abort(self, k: &Kernel) -> Result<()> {
        remove_tree(k, &self.path)?;
        Ok(())
    }
}
