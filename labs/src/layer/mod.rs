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

mod apply;
mod diff;
mod pack;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::cli::CommonOpts;
use crate::error::{Error, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{Kernel, Mode};

pub use apply::apply;
pub use diff::{diff_tree, diff_upper, Change, ChangeKind};
pub use pack::{pack, PackOptions, Packed};

/// How [`apply`] writes a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// `false`: a flat rootfs, whiteouts delete; `true`: a layer directory for
    /// overlayfs, whiteouts become 0/0 character devices and the opaque xattr.
    pub overlay_whiteouts: bool,
    /// Give entries the owners the layer records (`fchownat`); needs root.
    pub same_owner: bool,
    /// Create the block and character devices the layer holds; needs root.
    pub allow_devices: bool,
}

impl Default for ApplyOptions {
    /// A flat rootfs; owners and devices kept when running as root.
    fn default() -> ApplyOptions {
        let root = nix_free_euid_is_root();
        ApplyOptions { overlay_whiteouts: false, same_owner: root, allow_devices: root }
    }
}

fn nix_free_euid_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file we just created is our effective uid; /proc/self is owned
    // by it too, which answers without a system call of our own.
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// What [`apply`] did.
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

/// Show a layer's diff, pack an upper directory into an OCI layer, or apply one.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = "layer-diff", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub sub: Sub,
    /// Trace options shared by every binary.
    #[command(flatten)]
    pub common: CommonOpts,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Sub {
    /// Print the changes as `docker diff` does (A added, C changed, D deleted).
    Diff(DiffArgs),
    /// Pack an upper directory into an OCI layer tarball; print its diff_id and digest.
    Pack(PackArgs),
    /// Extract a layer into a directory, applying its whiteouts.
    Apply(ApplyArgs),
}

/// `layer-diff diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The overlay upper directory (or, with --tree, the OLD directory).
    pub upper: PathBuf,
    /// With --tree: the NEW directory.
    pub new: Option<PathBuf>,
    /// The lower layers, top first, colon-separated (as overlayfs' lowerdir).
    #[arg(long, value_name = "L1:L2...")]
    pub lower: Option<String>,
    /// Compare two plain directories, OLD and NEW, instead of an upper with its lowers.
    #[arg(long, conflicts_with = "lower")]
    pub tree: bool,
    /// Print JSON (a list of {kind, path}).
    #[arg(long)]
    pub json: bool,
}

/// `layer-diff pack`.
#[derive(Args, Debug)]
pub struct PackArgs {
    /// The upper directory (or any directory) to pack.
    pub upper: PathBuf,
    /// Where to write the layer; `.gz`/`.tgz` means gzip, anything else a plain tar.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Clamp every mtime to at most this Unix time, for reproducible layers
    /// (default: $SOURCE_DATE_EPOCH when set).
    #[arg(long, value_name = "EPOCH", env = "SOURCE_DATE_EPOCH")]
    pub clamp_mtime: Option<i64>,
    /// gzip level 0-9 (default 6, as gzip and docker).
    #[arg(long, value_name = "N", default_value_t = 6, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub level: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `layer-diff apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The layer: a tar, possibly gzip- or zstd-compressed.
    pub layer: PathBuf,
    /// The directory to extract into (created if missing).
    pub dir: PathBuf,
    /// Write overlay whiteouts (0/0 devices, opaque xattr) instead of deleting: for a
    /// layer directory that overlayfs will stack.
    #[arg(long)]
    pub overlay: bool,
    /// Do not give entries their recorded owners (default: kept when root).
    #[arg(long)]
    pub no_same_owner: bool,
    /// Refuse device nodes even as root.
    #[arg(long)]
    pub no_devices: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `layer-diff`.
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let k = cli.common.kernel("layer-diff").map_err(|e| (e, Role::Tool))?;
    let r = match cli.sub {
        Sub::Diff(a) => cmd_diff(&k, a),
        Sub::Pack(a) => cmd_pack(&k, a),
        Sub::Apply(a) => cmd_apply(&k, a),
    };
    r.map(|_| (Exit::Ok, Role::Tool)).map_err(|e| (e, Role::Tool))
}

fn split_lowers(s: &str) -> Vec<PathBuf> {
    s.split(':').filter(|x| !x.is_empty()).map(PathBuf::from).collect()
}

fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn cmd_diff(k: &Kernel, a: DiffArgs) -> Result<()> {
    let changes = if a.tree {
        let new = a.new.as_deref().ok_or_else(|| Error::Usage("--tree needs two directories: OLD NEW".into()))?;
        diff_tree(k, &a.upper, new)?
    } else {
        if a.new.is_some() {
            return Err(Error::Usage("one UPPER directory expected (did you mean --tree OLD NEW?)".into()));
        }
        let lowers = a.lower.as_deref().map(split_lowers).unwrap_or_default();
        diff_upper(k, &a.upper, &lowers)?
    };
    if a.json {
        let v: Vec<_> =
            changes.iter().map(|c| serde_json::json!({"kind": c.kind.letter().to_string(), "path": c.path})).collect();
        out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()))
    } else {
        let mut s = String::new();
        for c in &changes {
            s.push_str(&format!("{} {}\n", c.kind.letter(), c.path));
        }
        out(&s)
    }
}

fn cmd_pack(k: &Kernel, a: PackArgs) -> Result<()> {
    let gzip = a.output.extension().is_some_and(|e| e == "gz" || e == "tgz");
    let opts = PackOptions { clamp_mtime: a.clamp_mtime, gzip_level: if gzip { Some(a.level) } else { None } };
    let p = pack::pack_to_file(k, &a.upper, &a.output, &opts)?;
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&p).unwrap_or_default()))
    } else {
        out(&format!(
            "diff_id {}\ndigest {}\nsize {}\nentries {}\nwhiteouts {}\n",
            p.diff_id, p.digest, p.size, p.entries, p.whiteouts
        ))
    }
}

fn cmd_apply(k: &Kernel, a: ApplyArgs) -> Result<()> {
    let mut opts = ApplyOptions { overlay_whiteouts: a.overlay, ..ApplyOptions::default() };
    if a.no_same_owner {
        opts.same_owner = false;
    }
    if a.no_devices {
        opts.allow_devices = false;
    }
    let f = std::fs::File::open(&a.layer)
        .map_err(|e| Error::failed(format!("cannot open the layer {}: {e}", a.layer.display()), "check the path"))?;
    let created = !a.dir.exists();
    if created && k.mode() == Mode::Live {
        k.mkdir(&a.dir, 0o755)?;
    }
    let r = decompress(f).and_then(|r| apply(k, r, &a.dir, &opts));
    let stats = match r {
        Ok(s) => s,
        Err(e) => {
            if created && k.mode() == Mode::Live {
                k.note(format!("removing {} (created by this run) after the failure", a.dir.display()));
                let _ = std::fs::remove_dir_all(&a.dir);
            } else if k.mode() == Mode::Live {
                k.note(format!(
                    "{} may hold part of the layer: remove it with `rm -rf {}` before retrying",
                    a.dir.display(),
                    a.dir.display()
                ));
            }
            return Err(e);
        }
    };
    if a.json {
        out(&format!("{}\n", serde_json::to_string_pretty(&stats).unwrap_or_default()))
    } else {
        out(&format!("entries {}\nbytes {}\nwhiteouts {}\n", stats.entries, stats.bytes, stats.whiteouts))
    }
}

/// `path` shown relative to nothing: for messages.
pub(crate) fn shown(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
