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

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cli::CommonOpts;
use crate::error::{Error, Hint, Result};
use crate::exit::{Exit, Role};
use crate::kernel::{unescape, Errno, Kernel, MntFlags, Mode, MsFlags};

/// Mount, unmount and look into overlay filesystems.
///
/// Every request made of the kernel is printed on stderr, strace-style.
#[derive(Parser, Debug)]
#[command(name = "ovl-mount", version)]
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
    /// Mount an overlay at MERGED (read-only without --upper).
    Mount(MountArgs),
    /// Unmount the overlay at MERGED.
    Umount(UmountArgs),
    /// Show the layers of the overlay mounted at MERGED, from /proc/self/mountinfo.
    Inspect(InspectArgs),
    /// Say which layer provides PATH in the overlay at MERGED.
    Which(WhichArgs),
    /// List the whiteouts and opaque directories of an upper (or layer) directory.
    Whiteouts(WhiteoutsArgs),
}

/// on/off options.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// `redirect_dir` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
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

/// `xino` values.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Xino {
    /// Always.
    On,
    /// Never.
    Off,
    /// When the layers' inode numbers leave room.
    Auto,
}

/// `ovl-mount mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The lower (image) layers, top first, colon-separated; repeatable.
    #[arg(long, short, value_name = "L1:L2...", required = true)]
    pub lower: Vec<String>,
    /// The writable layer (needs --work).
    #[arg(long, short, value_name = "DIR", requires = "work")]
    pub upper: Option<PathBuf>,
    /// The work directory, on the same filesystem as --upper.
    #[arg(long, short, value_name = "DIR", requires = "upper")]
    pub work: Option<PathBuf>,
    /// Where the merged tree appears.
    pub merged: PathBuf,
    /// index=on|off.
    #[arg(long, value_enum)]
    pub index: Option<OnOff>,
    /// redirect_dir=on|off|follow|nofollow.
    #[arg(long, value_enum)]
    pub redirect_dir: Option<Redirect>,
    /// xino=on|off|auto.
    #[arg(long, value_enum)]
    pub xino: Option<Xino>,
    /// metacopy=on|off.
    #[arg(long, value_enum)]
    pub metacopy: Option<OnOff>,
    /// Keep overlay state in user.overlay.* xattrs (rootless, in a user namespace).
    #[arg(long)]
    pub userxattr: bool,
    /// Never sync the upper layer (throwaway containers).
    #[arg(long)]
    pub volatile: bool,
    /// Create upper, work and merged when missing.
    #[arg(long)]
    pub mkdir: bool,
    /// Use mount(2) and its one-page option string, not the new mount API.
    #[arg(long)]
    pub legacy: bool,
}

/// `ovl-mount umount`.
#[derive(Args, Debug)]
pub struct UmountArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// Detach now, clean up when no longer used (MNT_DETACH).
    #[arg(long)]
    pub lazy: bool,
}

/// `ovl-mount inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// Print JSON (Docker's GraphDriver.Data names: LowerDir, UpperDir, WorkDir, MergedDir).
    #[arg(long)]
    pub json: bool,
}

/// `ovl-mount which`.
#[derive(Args, Debug)]
pub struct WhichArgs {
    /// The mount point.
    pub merged: PathBuf,
    /// A path inside the overlay (`/etc/passwd` or `etc/passwd`).
    pub path: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `ovl-mount whiteouts`.
#[derive(Args, Debug)]
pub struct WhiteoutsArgs {
    /// The upper directory (or a layer directory).
    pub dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `ovl-mount`.
pub fn run(cli: Cli) -> std::result::Result<(Exit, Role), (Error, Role)> {
    let k = cli.common.kernel("ovl-mount").map_err(|e| (e, Role::Tool))?;
    let r = match cli.sub {
        Sub::Mount(a) => mount(&k, &a),
        Sub::Umount(a) => umount(&k, &a),
        Sub::Inspect(a) => cmd_inspect(&k, &a),
        Sub::Which(a) => cmd_which(&k, &a),
        Sub::Whiteouts(a) => cmd_whiteouts(&k, &a),
    };
    r.map(|_| (Exit::Ok, Role::Tool)).map_err(|e| (e, Role::Tool))
}

fn out(text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

/// An overlay to mount: what `mount` was asked, resolved to absolute paths.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Lower layers, top first.
    pub lowers: Vec<PathBuf>,
    /// Upper and work, or neither.
    pub upper: Option<(PathBuf, PathBuf)>,
    /// Options as `key` or `key=value`, in the order given.
    pub options: Vec<String>,
}

impl Spec {
    /// The classic mount(2) data string.
    pub fn data(&self) -> String {
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

fn abs(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().map(|c| c.join(p)).unwrap_or_else(|_| p.to_path_buf())
        }
    })
}

fn check_dir(k: &Kernel, p: &Path, what: &str, create: bool) -> Result<std::fs::Metadata> {
    match k.lstat(p)? {
        Some(m) if m.is_dir() => Ok(m),
        Some(_) => Err(Error::failed(format!("the {what} {} is not a directory", p.display()), "give a directory")),
        None if create => {
            k.mkdir(p, 0o755)?;
            match k.lstat(p)? {
                Some(m) => Ok(m),
                None if k.mode() == Mode::DryRun => Ok(std::fs::symlink_metadata("/").map_err(Error::Output)?),
                None => Err(Error::failed(format!("{} vanished", p.display()), "retry")),
            }
        }
        None => Err(Error::failed(
            format!("the {what} {} does not exist", p.display()),
            format!("create it (mkdir -p {}), or pass --mkdir", p.display()),
        )),
    }
}

/// Check the layers of a mount and build its [`Spec`].
pub fn plan(k: &Kernel, a: &MountArgs) -> Result<Spec> {
    let mut spec = Spec::default();
    for l in a.lower.iter().flat_map(|s| s.split(':')).filter(|s| !s.is_empty()) {
        let p = abs(Path::new(l));
        check_dir(k, &p, "lower directory", false)?;
        spec.lowers.push(p);
    }
    if spec.lowers.is_empty() {
        return Err(Error::Usage("--lower needs at least one directory".into()));
    }
    if spec.lowers.len() > 500 {
        return Err(Error::failed(
            format!("{} lower layers: overlayfs stacks at most 500", spec.lowers.len()),
            "squash some layers",
        ));
    }
    check_dir(k, &a.merged, "mount point", a.mkdir)?;
    if let (Some(u), Some(w)) = (&a.upper, &a.work) {
        let um = check_dir(k, u, "upper directory", a.mkdir)?;
        let wm = check_dir(k, w, "work directory", a.mkdir)?;
        let (u, w) = (abs(u), abs(w));
        if spec.lowers.contains(&u) {
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
        spec.upper = Some((u, w));
    } else {
        k.note("no upper directory: the overlay is read-only");
    }
    if let Some(v) = a.index {
        spec.options.push(format!("index={}", if v == OnOff::On { "on" } else { "off" }));
    }
    if let Some(v) = a.redirect_dir {
        let s = match v {
            Redirect::On => "on",
            Redirect::Off => "off",
            Redirect::Follow => "follow",
            Redirect::Nofollow => "nofollow",
        };
        spec.options.push(format!("redirect_dir={s}"));
    }
    if let Some(v) = a.xino {
        let s = match v {
            Xino::On => "on",
            Xino::Off => "off",
            Xino::Auto => "auto",
        };
        spec.options.push(format!("xino={s}"));
    }
    if let Some(v) = a.metacopy {
        spec.options.push(format!("metacopy={}", if v == OnOff::On { "on" } else { "off" }));
    }
    if a.userxattr {
        spec.options.push("userxattr".into());
    }
    if a.volatile {
        if spec.upper.is_none() {
            return Err(Error::Usage("--volatile needs --upper and --work".into()));
        }
        spec.options.push("volatile".into());
    }
    Ok(spec)
}

/// Mount `spec` at `merged`: the new mount API, or mount(2) when the kernel lacks it
/// (or `legacy` asks for it).
pub fn mount_spec(k: &Kernel, spec: &Spec, merged: &Path, legacy: bool) -> Result<()> {
    if !legacy {
        match mount_new_api(k, spec, merged)? {
            true => return Ok(()),
            false => k.note("falling back to mount(2): its option string is limited to one page (4096 bytes)"),
        }
    }
    let data = spec.data();
    if data.len() >= 4096 {
        return Err(Error::failed(
            format!(
                "{} lower layers make a mount(2) option string of {} bytes, more than one page (4095 usable)",
                spec.lowers.len(),
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
fn mount_new_api(k: &Kernel, spec: &Spec, merged: &Path) -> Result<bool> {
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
    let fail = |e: crate::kernel::SysError, what: &str| -> Error {
        let msgs = k.fs_messages(&fc);
        let hint = if msgs.is_empty() {
            format!("overlayfs refused {what}; `dmesg | tail` shows the kernel's reason")
        } else {
            format!("the kernel says: {}", msgs.join("; "))
        };
        Error::Kernel { err: e, hint: Some(hint) }
    };
    k.fsconfig_string(&fc, "source", "overlay").map_err(|e| fail(e, "the source"))?;
    for (i, l) in spec.lowers.iter().enumerate() {
        let r = k.fsconfig_string(&fc, "lowerdir+", &l.to_string_lossy());
        match r {
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
    if spec.lowers.len() > 1 {
        k.note(format!("{} lower layers given one by one", spec.lowers.len()));
    }
    if let Some((u, w)) = &spec.upper {
        k.fsconfig_string(&fc, "upperdir", &u.to_string_lossy()).map_err(|e| fail(e, "the upper directory"))?;
        k.fsconfig_string(&fc, "workdir", &w.to_string_lossy()).map_err(|e| fail(e, "the work directory"))?;
    }
    for o in &spec.options {
        match o.split_once('=') {
            Some((key, v)) => k.fsconfig_string(&fc, key, v),
            None => k.fsconfig_flag(&fc, o),
        }
        .map_err(|e| fail(e, &format!("the option {o}")))?;
    }
    k.fsconfig_create(&fc).map_err(|e| fail(e, "the layers"))?;
    let m = k.fsmount(&fc)?;
    k.move_mount(&m, merged)?;
    Ok(true)
}

fn mount(k: &Kernel, a: &MountArgs) -> Result<()> {
    let spec = plan(k, a)?;
    let merged = abs(&a.merged);
    mount_spec(k, &spec, &merged, a.legacy)?;
    if k.mode() == Mode::Live {
        out(&format!("{}\n", merged.display()))?;
    }
    Ok(())
}

fn umount(k: &Kernel, a: &UmountArgs) -> Result<()> {
    let merged = abs(&a.merged);
    if k.mode() == Mode::Live && find_overlay(k, &merged)?.is_none() {
        return Err(Error::failed(
            format!("{} is not an overlay mount point", merged.display()),
            "`ovl-mount inspect` or `findmnt -t overlay` lists overlay mounts",
        ));
    }
    k.umount2(&merged, if a.lazy { MntFlags::MNT_DETACH } else { MntFlags::empty() })
        .hint(Errno::EBUSY, "a process still uses it (fuser -vm MERGED); or detach it with --lazy")
        .hint(Errno::EINVAL, "it is not a mount point")?;
    Ok(())
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

/// Split on `sep` unless escaped by a backslash, removing those backslashes (or
/// keeping them, for a later split).
fn split_escaped_keep(s: &str, sep: char, keep: bool) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                if keep {
                    parts.last_mut().unwrap().push(c);
                }
                parts.last_mut().unwrap().push(n);
            }
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
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

/// The overlay mounted at `merged` (the topmost, if several are stacked).
pub fn find_overlay(k: &Kernel, merged: &Path) -> Result<Option<Overlay>> {
    let text = k.read_file(Path::new("/proc/self/mountinfo"))?;
    let want = abs(merged);
    Ok(parse_mountinfo(&text).into_iter().rfind(|o| Path::new(&o.merged) == want))
}

fn need_overlay(k: &Kernel, merged: &Path) -> Result<Overlay> {
    find_overlay(k, merged)?.ok_or_else(|| {
        Error::failed(
            format!("{} is not an overlay mount point", abs(merged).display()),
            "mount one with `ovl-mount mount`; `findmnt -t overlay` lists them",
        )
    })
}

fn cmd_inspect(k: &Kernel, a: &InspectArgs) -> Result<()> {
    let o = need_overlay(k, &a.merged)?;
    if a.json {
        let v = serde_json::json!({
            "GraphDriver": {
                "Name": "overlay",
                "Data": {
                    "LowerDir": o.lower.join(":"),
                    "UpperDir": o.upper,
                    "WorkDir": o.work,
                    "MergedDir": o.merged,
                }
            },
            "MountId": o.mount_id,
            "Layers": o.lower.len(),
            "Options": o.options,
            "MountOptions": o.mount_options,
        });
        return out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
    }
    let mut s = format!("merged  {}\n", o.merged);
    for (i, l) in o.lower.iter().enumerate() {
        s.push_str(&format!("lower{}  {}\n", i + 1, l));
    }
    s.push_str(&format!("upper   {}\n", o.upper.as_deref().unwrap_or("-  (read-only overlay)")));
    s.push_str(&format!("work    {}\n", o.work.as_deref().unwrap_or("-")));
    s.push_str(&format!(
        "options {}\n",
        [o.mount_options.clone()].into_iter().chain(o.options.clone()).collect::<Vec<_>>().join(",")
    ));
    out(&s)
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

fn cmd_which(k: &Kernel, a: &WhichArgs) -> Result<()> {
    let o = need_overlay(k, &a.merged)?;
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
    let rel = a.path.trim_start_matches('/');
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
    if a.json {
        let v = serde_json::json!({"path": shown, "state": state, "layer": layer, "dir": dir, "detail": detail});
        return out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
    }
    let mut s = format!("{shown}: {state}");
    if let (Some(l), Some(d)) = (&layer, &dir) {
        s.push_str(&format!(" ({l} {d})"));
    }
    if let Some(d) = detail {
        s.push_str(&format!("; {d}"));
    }
    s.push('\n');
    out(&s)
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

fn cmd_whiteouts(k: &Kernel, a: &WhiteoutsArgs) -> Result<()> {
    let v = whiteouts(k, &a.dir)?;
    if a.json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()));
    }
    let mut s = String::new();
    for m in &v {
        s.push_str(&format!("{} {}\n", m.kind, m.path));
    }
    out(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_overlay_lines() {
        let t = "36 35 98:0 / /mnt1 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                 120 29 0:52 / /tmp/m\\040x rw,relatime - overlay overlay rw,lowerdir=/l1:/l\\:2,upperdir=/u,workdir=/w,index=off\n";
        let v = parse_mountinfo(t);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].merged, "/tmp/m x");
        assert_eq!(v[0].lower, vec!["/l1", "/l:2"]);
        assert_eq!(v[0].upper.as_deref(), Some("/u"));
        assert_eq!(v[0].options, vec!["index=off"]);
    }

    #[test]
    fn data_string_escapes_colons() {
        let s = Spec { lowers: vec!["/a:b".into(), "/c".into()], upper: None, options: vec!["index=on".into()] };
        assert_eq!(s.data(), "lowerdir=/a\\:b:/c,index=on");
    }

    #[test]
    fn dry_run_records_the_new_mount_api() {
        let k = Kernel::recording("ovl-mount");
        let spec = Spec {
            lowers: vec!["/l1".into(), "/l2".into()],
            upper: Some(("/u".into(), "/w".into())),
            options: vec!["volatile".into(), "index=off".into()],
        };
        mount_spec(&k, &spec, Path::new("/m"), false).unwrap();
        let calls: Vec<String> = k.events().iter().filter(|e| e.call != "note").map(|e| e.call_text()).collect();
        assert_eq!(calls[0], "fsopen(\"overlay\", FSOPEN_CLOEXEC) = 3");
        assert!(calls.iter().any(|c| c.contains("\"lowerdir+\", \"/l2\"")), "{calls:?}");
        assert!(calls.iter().any(|c| c.contains("FSCONFIG_SET_FLAG, \"volatile\"")), "{calls:?}");
        assert!(calls.last().unwrap().starts_with("move_mount(4<detached mount>"), "{calls:?}");
    }
}
