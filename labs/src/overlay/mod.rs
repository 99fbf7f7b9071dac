//! # Overlayfs: one directory tree made of several, which is what a container's `/` is
//!
//! `docker run` does not copy the image. It asks the kernel for an *overlay*
//! filesystem that stacks directories:
//!
//! - **lower** directories: the image's layers, read-only, top first
//!   (`lowerdir=L1:L2:L3` puts L1 above L2 above L3);
//! - one **upper** directory: the container's writable layer;
//! - a **work** directory, on the same filesystem as upper, where overlayfs prepares
//!   files before moving them into upper atomically;
//! - the **merged** directory, the mount point: the union that the container sees
//!   as its root (Docker's `GraphDriver`: `LowerDir`, `UpperDir`, `WorkDir`,
//!   `MergedDir`).
//!
//! What the kernel does on each operation in merged (course, storage exercise 1):
//!
//! - **add** a file: it is created in upper; the lowers never change;
//! - **modify** a file of a lower: overlayfs first *copies it up*, whole, into upper
//!   (with its owner, mode and xattrs), then writes the copy. Reads of an untouched
//!   file go straight to the lower: that is why a 1 GB image starts instantly;
//! - **delete** a file of a lower: it cannot be removed from a read-only layer, so
//!   overlayfs puts a *whiteout* in upper, a character device numbered 0/0 of the
//!   same name, which hides it (`ls -l upper` shows `c--------- 0, 0`);
//! - delete a directory and create it again: the new upper directory is marked
//!   *opaque* (`trusted.overlay.opaque = "y"`) so the lower content stays hidden.
//!
//! Without an upper directory the overlay is read-only: a way to look at an image.
//!
//! ## Two ways to ask for the mount
//!
//! `mount(2)` takes every option in one `data` string of at most one page (4096
//! bytes). With 200 layers under `/var/lib/docker/overlay2/<64 hex>/diff` that does
//! not fit, which is why Docker shortens paths with symlinks (`overlay2/l/ABC...`,
//! seen in the course's `mount | grep overlay`). The *new mount API* gives the
//! options one at a time:
//!
//! 1. `fsopen("overlay")`: a filesystem context;
//! 2. `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", L)` once per lower layer (Linux 6.8+),
//!    then `upperdir`, `workdir` and the options; `FSCONFIG_CMD_CREATE` builds the
//!    superblock, and overlayfs checks its layers here. On failure the context holds
//!    the kernel's own message, which `ovl-mount` reads back (`read(2)` on the fd);
//! 3. `fsmount()`: a mount not attached anywhere yet;
//! 4. `move_mount()`: attach it at merged.
//!
//! `ovl-mount` uses the new API and falls back to `mount(2)`, with a note, when the
//! kernel lacks it (`ENOSYS`, or `EINVAL` for `lowerdir+` before 6.8).
//!
//! Options used by real runtimes: `index=on` (hard links stay hard links across
//! copy-up; NFS export), `redirect_dir=on` (renaming a lower directory without
//! copying it all), `xino=on` (unique inode numbers across layers), `metacopy=on`
//! (a chmod copies up metadata only), `userxattr` (rootless: `user.overlay.*` instead
//! of `trusted.overlay.*`, as podman does in a user namespace), `volatile` (no
//! sync to upper: fast throwaway containers; do not reuse the upper after a crash).
//!
//! ## Reading an overlay back
//!
//! `inspect` reads `/proc/self/mountinfo`, the source of `mount | grep overlay`:
//! the super-block options list the layers. `which` resolves a path the way
//! overlayfs does (top layer first, stopping at whiteouts and opaque directories)
//! and says which layer provides it, or that it was copied up or whited out.
//! `whiteouts` lists the whiteouts and opaque directories of an upper directory.

//!
//! ## As a library
//!
//! A runtime mounts a container's root with [`mount`]: a [`Spec`] (the layers, top
//! first, an upper and a work directory, the options) and a target give a [`Mounted`]
//! handle, whose [`Mounted::umount`] undoes it. A mount that fails half-way leaves
//! nothing behind: the context and detached-mount descriptors are closed (the kernel
//! frees a detached mount whose last descriptor goes), and the directories the
//! mount created (`create_dirs`) are removed again, newest first. [`find`],
//! [`inspect`], [`which`] and [`whiteouts`] read an overlay back. The `ovl-mount`
//! command line is an adapter over these (`overlay::cli`).

mod cli;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Hint, Result};
use crate::kernel::{unescape, Errno, Kernel, MntFlags, Mode, MsFlags, SysError};

pub use cli::{run, Cli};

/// The tool this lab is, as its trace and messages name it.
pub const TOOL: &str = "ovl-mount";

/// overlayfs stacks at most this many lower layers.
pub const MAX_LOWERS: usize = 500;

/// `redirect_dir=` values: whether renaming a lower directory records a redirect
/// instead of copying the directory up whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Redirect {
    /// Create and follow redirects.
    On,
    /// Neither create nor follow.
    Off,
    /// Follow, do not create.
    Follow,
    /// Do not follow, do not create.
    Nofollow,
}

/// `xino=` values: unique inode numbers across layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Xino {
    /// Always.
    On,
    /// Never.
    Off,
    /// When the layers' inode numbers leave room.
    Auto,
}

/// The overlayfs options a runtime chooses (see the module documentation); `None`
/// leaves the kernel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `index=on|off`.
    pub index: Option<bool>,
    /// `redirect_dir=...`.
    pub redirect_dir: Option<Redirect>,
    /// `xino=...`.
    pub xino: Option<Xino>,
    /// `metacopy=on|off`.
    pub metacopy: Option<bool>,
    /// `userxattr`: state in `user.overlay.*` (rootless, in a user namespace).
    pub userxattr: bool,
    /// `volatile`: never sync the upper layer (needs an upper directory).
    pub volatile: bool,
}

impl Options {
    /// The options as overlayfs takes them, `key` or `key=value`, in a fixed order.
    pub fn to_vec(&self) -> Vec<String> {
        let on = |b: bool| if b { "on" } else { "off" };
        let mut v = Vec::new();
        if let Some(b) = self.index {
            v.push(format!("index={}", on(b)));
        }
        if let Some(r) = self.redirect_dir {
            let s = match r {
                Redirect::On => "on",
                Redirect::Off => "off",
                Redirect::Follow => "follow",
                Redirect::Nofollow => "nofollow",
            };
            v.push(format!("redirect_dir={s}"));
        }
        if let Some(x) = self.xino {
            let s = match x {
                Xino::On => "on",
                Xino::Off => "off",
                Xino::Auto => "auto",
            };
            v.push(format!("xino={s}"));
        }
        if let Some(b) = self.metacopy {
            v.push(format!("metacopy={}", on(b)));
        }
        if self.userxattr {
            v.push("userxattr".into());
        }
        if self.volatile {
            v.push("volatile".into());
        }
        v
    }
}

/// An overlay to mount, as plain data. Paths may be relative (to the current
/// directory); the kernel is given absolute ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// The lower (image) layers, **top first**, as in `lowerdir=L1:L2`: `lowers[0]`
    /// hides what the ones after it hold. At least one, at most [`MAX_LOWERS`].
    pub lowers: Vec<PathBuf>,
    /// The writable layer (with `work`); without, the overlay is read-only.
    pub upper: Option<PathBuf>,
    /// The work directory, on the same filesystem as `upper`.
    pub work: Option<PathBuf>,
    /// The overlayfs options.
    pub options: Options,
    /// Create the target, upper and work directories when missing (removed again
    /// if the mount fails).
    pub create_dirs: bool,
}

/// A mounted overlay: the handle [`mount`] returns; [`Mounted::umount`] undoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// The mount point, absolute.
    pub target: PathBuf,
    /// The directories the mount created (target, upper, work), in the order made.
    /// Unmounting leaves them: the upper directory holds the container's changes.
    pub created: Vec<PathBuf>,
}

impl Mounted {
    /// The overlay mounted at `target` (checked in `/proc/self/mountinfo`, except in
    /// a dry run): how another process (`ovl-mount umount`, `mini rm`) gets a handle.
    pub fn existing(k: &Kernel, target: &Path) -> Result<Mounted> {
        let target = abs(target);
        if k.mode() == Mode::Live && find(k, &target)?.is_none() {
            return Err(Error::failed(
                format!("{} is not an overlay mount point", target.display()),
                "`ovl-mount inspect` or `findmnt -t overlay` lists overlay mounts",
            ));
        }
        Ok(Mounted { target, created: Vec::new() })
    }

    /// `umount2(2)`: detach the overlay; `lazy` (`MNT_DETACH`) detaches it now and
    /// lets the kernel clean up once no process uses it.
    pub fn umount(self, k: &Kernel, lazy: bool) -> Result<()> {
        k.umount2(&self.target, if lazy { MntFlags::MNT_DETACH } else { MntFlags::empty() })
            .hint(Errno::EBUSY, "a process still uses it (fuser -vm MERGED); or detach it with --lazy")
            .hint(Errno::EINVAL, "it is not a mount point")?;
        Ok(())
    }
}

/// The layers of a mount resolved to absolute paths, and its options as strings.
#[derive(Debug, Clone, Default)]
struct Resolved {
    lowers: Vec<PathBuf>,
    upper: Option<(PathBuf, PathBuf)>,
    options: Vec<String>,
}

impl Resolved {
    /// The classic mount(2) data string.
    fn data(&self) -> String {
        let esc = |p: &Path| p.to_string_lossy().replace('\\', "\\\\").replace(':', "\\:").replace(',', "\\,");
        let mut s = format!("lowerdir={}", self.lowers.iter().map(|l| esc(l)).collect::<Vec<_>>().join(":"));
        if let Some((u, w)) = &self.upper {
            s.push_str(&format!(",upperdir={},workdir={}", esc(u), esc(w)));
        }
        for o in &self.options {
            s.push(',');
            s.push_str(o);
        }
        s
    }
}

/// `path` made absolute: resolved (`realpath(3)`, a read) when it exists, else
/// joined to the current directory.
fn abs(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf())
        }
    })
}

/// `lstat(2)` a directory the mount needs; `mkdir(2)` it when missing and `create`
/// (recording it in `made`).
fn check_dir(k: &Kernel, p: &Path, what: &str, create: bool, made: &mut Vec<PathBuf>) -> Result<std::fs::Metadata> {
    match k.lstat(p)? {
        Some(m) if m.is_dir() => Ok(m),
        Some(_) => Err(Error::failed(format!("the {what} {} is not a directory", p.display()), "give a directory")),
        None if create => {
            k.mkdir(p, 0o755)?;
            made.push(p.to_path_buf());
            match k.lstat(p)? {
                Some(m) => Ok(m),
                // A dry run made nothing: stand in with the metadata of `/`.
                None if k.mode() == Mode::DryRun => std::fs::symlink_metadata("/")
                    .map_err(|e| Error::failed(format!("cannot stat /: {e}"), "check the machine")),
                None => Err(Error::failed(format!("{} vanished", p.display()), "retry")),
            }
        }
        None => Err(Error::failed(
            format!("the {what} {} does not exist", p.display()),
            format!("create it (mkdir -p {}), or pass --mkdir", p.display()),
        )),
    }
}

/// Check the layers of `spec` (creating missing directories when asked) and resolve
/// them. Directories made are pushed on `made` as they are made.
fn prepare(k: &Kernel, spec: &Spec, target: &Path, made: &mut Vec<PathBuf>) -> Result<Resolved> {
    let mut r = Resolved::default();
    for l in &spec.lowers {
        let p = abs(l);
        check_dir(k, &p, "lower directory", false, made)?;
        r.lowers.push(p);
    }
    if r.lowers.is_empty() {
        return Err(Error::Usage("--lower needs at least one directory".into()));
    }
    if r.lowers.len() > MAX_LOWERS {
        return Err(Error::failed(
            format!("{} lower layers: overlayfs stacks at most {MAX_LOWERS}", r.lowers.len()),
            "squash some layers",
        ));
    }
    check_dir(k, target, "mount point", spec.create_dirs, made)?;
    match (&spec.upper, &spec.work) {
        (Some(u), Some(w)) => {
            let um = check_dir(k, u, "upper directory", spec.create_dirs, made)?;
            let wm = check_dir(k, w, "work directory", spec.create_dirs, made)?;
            let (u, w) = (abs(u), abs(w));
            if r.lowers.contains(&u) {
                return Err(Error::failed(
                    format!("{} is both the upper and a lower directory", u.display()),
                    "the upper directory must be a separate, empty or previous-upper directory",
                ));
            }
            if u == w || u.starts_with(&w) || w.starts_with(&u) {
                return Err(Error::failed(
                    format!("the upper {} and work {} directories overlap", u.display(), w.display()),
                    "give two sibling directories, e.g. DIR/upper and DIR/work",
                ));
            }
            if um.dev() != wm.dev() && k.mode() == Mode::Live {
                return Err(Error::failed(
                    format!(
                        "the work directory {} is not on the same filesystem as the upper {}",
                        w.display(),
                        u.display()
                    ),
                    "overlayfs moves files from work into upper with rename(2): put both on one filesystem",
                ));
            }
            r.upper = Some((u, w));
        }
        (None, None) => k.note("no upper directory: the overlay is read-only"),
        _ => return Err(Error::Usage("an upper directory needs a work directory, and the reverse".into())),
    }
    if spec.options.volatile && r.upper.is_none() {
        return Err(Error::Usage("--volatile needs --upper and --work".into()));
    }
    r.options = spec.options.to_vec();
    Ok(r)
}

/// Mount the overlay `spec` at `target`: the new mount API, or `mount(2)` when the
/// kernel lacks it or `legacy` asks for it (see the module documentation).
///
/// On failure nothing is left: no mount, and the directories this call created are
/// removed again (`rmdir(2)`, newest first).
pub fn mount(k: &Kernel, spec: &Spec, target: &Path, legacy: bool) -> Result<Mounted> {
    let mut made = Vec::new();
    let r = prepare(k, spec, target, &mut made).and_then(|r| attach(k, &r, &abs(target), legacy));
    match r {
        Ok(()) => Ok(Mounted { target: abs(target), created: made }),
        Err(e) => Err(rollback(k, &made, e)),
    }
}

/// Remove the directories a failed mount made, newest first; the error says what
/// could not be removed.
fn rollback(k: &Kernel, made: &[PathBuf], err: Error) -> Error {
    if made.is_empty() {
        return err;
    }
    k.note(format!("the mount failed: removing the {} directories it created", made.len()));
    let left: Vec<String> =
        made.iter().rev().filter(|d| k.rmdir(d).is_err()).map(|d| d.display().to_string()).collect();
    if left.is_empty() {
        return err;
    }
    match err {
        Error::Kernel { err, hint } => Error::Kernel {
            err,
            hint: Some(format!("{}; also left behind: {}", hint.unwrap_or_default(), left.join(", "))),
        },
        Error::Failed { what, hint } => Error::Failed {
            what,
            hint: Some(format!("{}; also left behind: {}", hint.unwrap_or_default(), left.join(", "))),
        },
        other => other,
    }
}

/// Attach the resolved overlay at `merged` (absolute).
fn attach(k: &Kernel, r: &Resolved, merged: &Path, legacy: bool) -> Result<()> {
    if !legacy {
        match mount_new_api(k, r, merged)? {
            true => return Ok(()),
            false => k.note("falling back to mount(2): its option string is limited to one page (4096 bytes)"),
        }
    }
    let data = r.data();
    if data.len() >= 4096 {
        return Err(Error::failed(
            format!(
                "{} lower layers make a mount(2) option string of {} bytes, more than one page (4095 usable)",
                r.lowers.len(),
                data.len()
            ),
            "use a kernel with the new mount API and lowerdir+ (Linux 6.8+), drop --legacy, or use shorter layer paths (Docker links them as overlay2/l/<short id>)",
        ));
    }
    k.why("mount(2) takes all overlay options in one data string");
    k.mount(Some("overlay"), merged, Some("overlay"), MsFlags::empty(), Some(&data))
        .hint(Errno::EINVAL, "overlayfs refused the options: check that the layers exist, that work is empty and on upper's filesystem (dmesg shows the kernel's reason)")
        .hint(Errno::EPERM, "mounting needs root (CAP_SYS_ADMIN), or a user namespace with --userxattr")?;
    Ok(())
}

/// The new mount API. `Ok(false)` when the kernel lacks it (nothing was mounted).
/// Every descriptor it opens is closed when it returns, so a failure at any step
/// leaves no context and no detached mount.
fn mount_new_api(k: &Kernel, r: &Resolved, merged: &Path) -> Result<bool> {
    k.why("the new mount API passes options one by one: no one-page limit on the layer list");
    let fc = match k.fsopen("overlay") {
        Ok(fc) => fc,
        Err(e) if e.errno == Errno::ENOSYS => {
            k.note("this kernel has no fsopen(2) (Linux < 5.2)");
            return Ok(false);
        }
        Err(e) => {
            return Err(Error::from(e))
                .hint(Errno::EPERM, "mounting needs root (CAP_SYS_ADMIN)")
                .hint(Errno::ENODEV, "the overlay module is not loaded: modprobe overlay");
        }
    };
    let fail = |e: SysError, what: &str| -> Error {
        let msgs = k.fs_messages(&fc);
        let hint = if msgs.is_empty() {
            format!("overlayfs refused {what}; `dmesg | tail` shows the kernel's reason")
        } else {
            format!("the kernel says: {}", msgs.join("; "))
        };
        Error::Kernel { err: e, hint: Some(hint) }
    };
    k.fsconfig_string(&fc, "source", "overlay").map_err(|e| fail(e, "the source"))?;
    for (i, l) in r.lowers.iter().enumerate() {
        match k.fsconfig_string(&fc, "lowerdir+", &l.to_string_lossy()) {
            Ok(()) => {}
            Err(e)
                if i == 0
                    && e.errno == Errno::EINVAL
                    && k.fs_messages(&fc)
                        .iter()
                        .any(|m| m.contains("lowerdir+") || m.contains("Unknown parameter")) =>
            {
                k.note("this kernel has no \"lowerdir+\" (Linux < 6.8)");
                return Ok(false);
            }
            Err(e) => return Err(fail(e, &format!("the lower layer {}", l.display()))),
        }
    }
    if r.lowers.len() > 1 {
        k.note(format!("{} lower layers given one by one", r.lowers.len()));
    }
    if let Some((u, w)) = &r.upper {
        k.fsconfig_string(&fc, "upperdir", &u.to_string_lossy()).map_err(|e| fail(e, "the upper directory"))?;
        k.fsconfig_string(&fc, "workdir", &w.to_string_lossy()).map_err(|e| fail(e, "the work directory"))?;
    }
    for o in &r.options {
        match o.split_once('=') {
            Some((key, v)) => k.fsconfig_string(&fc, key, v),
            None => k.fsconfig_flag(&fc, o),
        }
        .map_err(|e| fail(e, &format!("the option {o}")))?;
    }
    match k.fsconfig_create(&fc) {
        Ok(()) => {}
        // Before 6.8, overlayfs parsed its options as one string here, at create
        // (fsconfig took any key): an unknown `lowerdir+` fails only now.
        Err(e) if e.errno == Errno::EINVAL && older_than_6_8(k) => {
            k.note("this kernel has no \"lowerdir+\" (Linux < 6.8: overlayfs refused it at create)");
            return Ok(false);
        }
        Err(e) => return Err(fail(e, "the layers")),
    }
    let m = k.fsmount(&fc)?;
    k.move_mount(&m, merged)?;
    Ok(true)
}

fn older_than_6_8(k: &Kernel) -> bool {
    k.why("is this kernel older than 6.8 (no lowerdir+)?")
        .read_file(Path::new("/proc/sys/kernel/osrelease"))
        .is_ok_and(|r| release_before(&r, (6, 8)))
}

/// Whether a kernel release (`6.1.0-57-amd64`) is older than `(major, minor)`.
fn release_before(release: &str, want: (u32, u32)) -> bool {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => (a, b) < want,
        _ => false,
    }
}

/// An overlay mount, as /proc/self/mountinfo describes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Overlay {
    /// The mount's id (first field of mountinfo).
    pub mount_id: u64,
    /// The mount point.
    pub merged: String,
    /// Lower layers, top first.
    pub lower: Vec<String>,
    /// The upper directory, if writable.
    pub upper: Option<String>,
    /// The work directory, if writable.
    pub work: Option<String>,
    /// The other super-block options (`index=off`, `xino=off`...).
    pub options: Vec<String>,
    /// Mount options (`rw`, `relatime`).
    pub mount_options: String,
}

/// Docker's `GraphDriver.Data` for an overlay: where its layers are.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GraphDriverData {
    /// The lower layers, top first, joined by `:`.
    #[serde(rename = "LowerDir")]
    pub lower_dir: String,
    /// The upper directory.
    #[serde(rename = "UpperDir")]
    pub upper_dir: Option<String>,
    /// The work directory.
    #[serde(rename = "WorkDir")]
    pub work_dir: Option<String>,
    /// The mount point.
    #[serde(rename = "MergedDir")]
    pub merged_dir: String,
}

impl Overlay {
    /// What `docker inspect` shows as `GraphDriver.Data`.
    pub fn graph_driver_data(&self) -> GraphDriverData {
        GraphDriverData {
            lower_dir: self.lower.join(":"),
            upper_dir: self.upper.clone(),
            work_dir: self.work.clone(),
            merged_dir: self.merged.clone(),
        }
    }
}

/// Split on `sep` unless escaped by a backslash, removing those backslashes (or
/// keeping them, for a later split).
fn split_escaped_keep(s: &str, sep: char, keep: bool) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let last = parts.len() - 1;
        if c == '\\' {
            if let Some(n) = chars.next() {
                if keep {
                    parts[last].push(c);
                }
                parts[last].push(n);
            }
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts[last].push(c);
        }
    }
    parts
}

fn split_escaped(s: &str, sep: char) -> Vec<String> {
    split_escaped_keep(s, sep, false)
}

fn plain(s: &str) -> String {
    split_escaped(s, '\0').concat()
}

/// Parse the overlay mounts of a mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Overlay> {
    let mut v = Vec::new();
    for m in crate::kernel::parse_mountinfo(text).into_iter().filter(|m| m.fstype == "overlay") {
        let mut o = Overlay {
            mount_id: m.mount_id,
            merged: m.point,
            lower: Vec::new(),
            upper: None,
            work: None,
            options: Vec::new(),
            mount_options: m.mount_options,
        };
        for opt in split_escaped_keep(&m.super_options, ',', true) {
            let opt = unescape(&opt);
            if let Some(v) = opt.strip_prefix("lowerdir=") {
                o.lower.extend(split_escaped(v, ':').into_iter().filter(|s| !s.is_empty()));
            } else if let Some(v) = opt.strip_prefix("lowerdir+=") {
                o.lower.push(plain(v));
            } else if let Some(v) = opt.strip_prefix("upperdir=") {
                o.upper = Some(plain(v));
            } else if let Some(v) = opt.strip_prefix("workdir=") {
                o.work = Some(plain(v));
            } else if opt != "rw" && opt != "ro" {
                o.options.push(opt);
            }
        }
        v.push(o);
    }
    v
}

/// The overlay mounted at `merged` (the topmost, if several are stacked), read from
/// `/proc/self/mountinfo`.
pub fn find(k: &Kernel, merged: &Path) -> Result<Option<Overlay>> {
    let text = k.read_file(Path::new("/proc/self/mountinfo"))?;
    let want = abs(merged);
    Ok(parse_mountinfo(&text).into_iter().rfind(|o| Path::new(&o.merged) == want))
}

/// The overlay mounted at `merged`, or an error saying it is not one.
pub fn inspect(k: &Kernel, merged: &Path) -> Result<Overlay> {
    find(k, merged)?.ok_or_else(|| {
        Error::failed(
            format!("{} is not an overlay mount point", abs(merged).display()),
            "mount one with `ovl-mount mount`; `findmnt -t overlay` lists them",
        )
    })
}

/// What a layer stack holds at a path, found as overlayfs finds it.
#[derive(Debug)]
pub enum Found {
    /// Provided by layer `index` (0 = the top one given).
    Layer {
        /// Which layer.
        index: usize,
        /// The file in that layer.
        path: PathBuf,
        /// Its metadata.
        meta: std::fs::Metadata,
    },
    /// Deleted by a whiteout in layer `index`.
    WhitedOut {
        /// Which layer.
        index: usize,
        /// The whiteout.
        path: PathBuf,
    },
    /// Not there (or hidden by a file or an opaque directory above it).
    Absent,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(k: &Kernel, p: &Path) -> Result<bool> {
    Ok(k.getxattr(p, "trusted.overlay.opaque")?.as_deref() == Some(b"y")
        || k.getxattr(p, "user.overlay.opaque")?.as_deref() == Some(b"y"))
}

/// Resolve `rel` in `layers` (top first) as overlayfs does: the first layer holding
/// it wins; a whiteout deletes it; a file, or an opaque directory, above it in a
/// layer hides the layers below. (Redirected directories, `redirect_dir=on`, are not
/// followed.)
pub fn lookup(k: &Kernel, layers: &[PathBuf], rel: &str) -> Result<Found> {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if comps.is_empty() {
        return match layers.first() {
            Some(l) => Ok(Found::Layer {
                index: 0,
                path: l.clone(),
                meta: k.lstat(l)?.ok_or(Error::failed("layer vanished", "retry"))?,
            }),
            None => Ok(Found::Absent),
        };
    }
    for (i, layer) in layers.iter().enumerate() {
        let mut opaque_above = false;
        let mut cur = layer.clone();
        for (j, c) in comps.iter().enumerate() {
            cur.push(c);
            let last = j + 1 == comps.len();
            match k.lstat(&cur)? {
                None => break,
                Some(m) if is_whiteout(&m) => return Ok(Found::WhitedOut { index: i, path: cur }),
                Some(m) if last => return Ok(Found::Layer { index: i, path: cur, meta: m }),
                Some(m) if !m.is_dir() => return Ok(Found::Absent),
                Some(_) => {
                    if is_opaque(k, &cur)? {
                        opaque_above = true;
                    }
                }
            }
        }
        if opaque_above {
            return Ok(Found::Absent);
        }
    }
    Ok(Found::Absent)
}

/// Which layer of an overlay provides a path: what `ovl-mount which` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Which {
    /// The path inside the overlay (`/etc/passwd`).
    pub path: String,
    /// `from the image`, `created in upper`, `copied up`, `opaque directory in
    /// upper`, `whited out` or `absent`.
    pub state: String,
    /// The layer's name: `upper`, `lower1` (the top lower), `lower2`...
    pub layer: Option<String>,
    /// The layer's directory.
    pub dir: Option<String>,
    /// More: where the original of a copied-up file is, or the whiteout's path.
    pub detail: Option<String>,
}

/// Say which layer of the overlay mounted at `merged` provides `path` (`/etc/passwd`
/// or `etc/passwd`), looking it up as overlayfs does.
pub fn which(k: &Kernel, merged: &Path, path: &str) -> Result<Which> {
    let o = inspect(k, merged)?;
    let mut layers: Vec<PathBuf> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    if let Some(u) = &o.upper {
        layers.push(u.into());
        names.push("upper".into());
    }
    for (i, l) in o.lower.iter().enumerate() {
        layers.push(l.into());
        names.push(format!("lower{}", i + 1));
    }
    let rel = path.trim_start_matches('/');
    let found = lookup(k, &layers, rel)?;
    let shown = format!("/{rel}");
    let (layer, dir, state, detail) = match &found {
        Found::Layer { index, path, meta } => {
            let in_upper = o.upper.is_some() && *index == 0;
            let mut state = if in_upper { "created in upper" } else { "from the image" }.to_string();
            let mut detail = None;
            if in_upper {
                let below = lookup(k, &layers[1..], rel)?;
                if let Found::Layer { index: bi, .. } = below {
                    state = "copied up".into();
                    detail = Some(format!("the original is in {}: {}", names[bi + 1], layers[bi + 1].display()));
                } else if meta.is_dir() && is_opaque(k, path)? {
                    state = "opaque directory in upper".into();
                }
            }
            (Some(names[*index].clone()), Some(layers[*index].display().to_string()), state, detail)
        }
        Found::WhitedOut { index, path } => (
            Some(names[*index].clone()),
            Some(layers[*index].display().to_string()),
            "whited out".into(),
            Some(format!("{} is a whiteout (character device 0/0)", path.display())),
        ),
        Found::Absent => (None, None, "absent".into(), None),
    };
    Ok(Which { path: shown, state, layer, dir, detail })
}

/// A whiteout or an opaque directory found in an upper directory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Mark {
    /// `whiteout` (char device 0/0), `xattr-whiteout`, or `opaque`.
    pub kind: String,
    /// The path inside the overlay (`/etc/issue`).
    pub path: String,
}

/// List the whiteouts and opaque directories under `dir`, sorted by path.
pub fn whiteouts(k: &Kernel, dir: &Path) -> Result<Vec<Mark>> {
    match k.lstat(dir)? {
        Some(m) if m.is_dir() => {}
        _ => {
            return Err(Error::failed(
                format!("{} is not a directory", dir.display()),
                "give an overlay upper directory (Docker's UpperDir)",
            ))
        }
    }
    let mut v = Vec::new();
    walk_marks(k, dir, "", &mut v)?;
    Ok(v)
}

fn walk_marks(k: &Kernel, root: &Path, rel: &str, v: &mut Vec<Mark>) -> Result<()> {
    for n in k.read_dir(&root.join(rel))? {
        let r = if rel.is_empty() { n.clone() } else { format!("{rel}/{n}") };
        let p = root.join(&r);
        let Some(m) = k.lstat(&p)? else { continue };
        if is_whiteout(&m) {
            v.push(Mark { kind: "whiteout".into(), path: format!("/{r}") });
        } else if m.is_dir() {
            if is_opaque(k, &p)? {
                v.push(Mark { kind: "opaque".into(), path: format!("/{r}") });
            }
            walk_marks(k, root, &r, v)?;
        } else if m.is_file() && m.len() == 0 && k.getxattr(&p, "trusted.overlay.whiteout")?.is_some() {
            v.push(Mark { kind: "xattr-whiteout".into(), path: format!("/{r}") });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
