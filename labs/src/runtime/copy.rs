//! `mini cp`: files between a container and the host, without ever leaving the
//! container's root.
//!
//! ## The problem: a path is resolved by whoever opens it
//!
//! `docker cp CONTAINER:/var/log/app.log .` looks like reading a file at a known
//! place: the container's root is a directory on the host (the overlay's `merged`),
//! so `ROOT/var/log/app.log` is the file. But the container owns what is inside that
//! directory, and the kernel resolves a path one component at a time, following each
//! symlink it meets *as seen by the process that opens it*. If the container made
//! `/var/log` a symlink to `/`, then `ROOT/var/log/app.log` is, for the host's `cp`,
//! the host's `/app.log`; `ln -s ../../../../etc /x` climbs out with `..` the same
//! way. Checking the path first and opening it after does not help: the container
//! can swap a directory for a symlink between the check and the open. That race is
//! CVE-2018-15664 (docker cp, 2019): a container could make `docker cp` write to or
//! read from any path of the host, as root.
//!
//! ## The fix: let the kernel resolve inside the root
//!
//! `openat2(2)` (Linux 5.6) takes a directory descriptor and a `resolve` field.
//! With `RESOLVE_IN_ROOT` the kernel treats that directory as `/` for this one
//! lookup, as if the process were chrooted there: `..` stops at it, and an absolute
//! symlink (`/escape -> /`) starts again *from it*. The container's symlinks then mean
//! what they mean inside the container (docker follows them the same way, inside the
//! container's root), and no swap can lead outside: the check and the use are one
//! request. mini opens every container path that way ([`Kernel::open_in_root`]), then
//! works relative to the descriptors it got: a directory is listed with
//! `getdents64(2)` on its descriptor, a file read with `openat(2)` and `O_NOFOLLOW`
//! from its directory's, a new entry made with `mkdirat(2)`, `openat(2)` with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, `symlinkat(2)`; a subdirectory is entered with
//! `openat2(2)` and `RESOLVE_BENEATH`. A symlink is copied as a symlink, never
//! followed, except the last component of the source with `-L`.
//!
//! ## Which root
//!
//! - A **running** container: `/proc/PID/root`, its first process's root. Opened,
//!   that is a descriptor of the container's `/` in the container's own mount
//!   namespace, so its volumes, bind mounts and tmpfs are seen where the container
//!   sees them.
//! - A **stopped** one: its overlay, mounted for the command only (read-only: its
//!   upper layer as the top lower; to copy into it, with its upper and work
//!   directories) and unmounted after, also after a failure. Its recorded mounts
//!   (`Container::mounts`) are not mounted: a path under a volume's or bind's
//!   destination is looked up in that source directory instead (with the source as
//!   the root for the rest of the path). On the devicemapper driver a stopped
//!   container's root is a thin volume mini mounts only while it runs: `cp` and
//!   `export` ask for it to be started.
//!
//! ## docker's rules (`docker cp SRC DST`)
//!
//! | SRC | DST | result |
//! |---|---|---|
//! | a file | missing | DST is the copy (its parent must exist; `DST/` is "no such directory") |
//! | a file | a file | overwritten |
//! | a file | a directory | copied into it, under SRC's name |
//! | a directory | missing | DST made, SRC's content copied into it |
//! | a directory | a file | "cannot copy directory" |
//! | a directory | a directory | copied into it, under SRC's name; `SRC/.`: its content only |
//!
//! `-` is a tar stream: of SRC on stdout, or, as SRC, read from stdin and extracted
//! into the directory DST (by the layer lab's [`crate::layer::apply_at`], its entries
//! resolved beneath that directory).
//!
//! Owners, as docker 20.10 really does it (whatever its `--help` suggests): a file
//! copied into a container keeps its numeric uid and gid (the daemon extracts the
//! client's tar as root, owners included); with `-a` and a container that runs as a
//! user (`--user`, the image's `USER`), everything copied belongs to that user and
//! its group. A file copied out belongs to the caller, as docker's client writes it.

use std::collections::VecDeque;
use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::{Errno, Kernel, MntFlags};
use crate::layer::{dev_major, dev_minor};
use crate::overlay;

use super::state::{Container, Containers};

/// How many symlinks one path may go through (the kernel's limit, `ELOOP`).
const MAX_HOPS: u32 = 40;

/// Which view of the container a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// What its processes see: volumes, binds and tmpfs included (`cp`).
    Processes,
    /// Its root filesystem only, its layers merged (`export`).
    Rootfs,
    /// A stopped container's image layers and upper layer only: not its init layer
    /// (hosts, hostname, resolv.conf...), not its mounts (`mini build`'s steps).
    Layers,
}

/// A root to resolve paths in: a directory descriptor, and for a stopped container
/// its recorded mounts and the overlay mounted for this command (unmounted on drop).
pub struct Root<'k> {
    k: &'k Kernel,
    fd: OwnedFd,
    /// The directory, as messages show it.
    pub shown: String,
    mounts: Vec<(Vec<String>, PathBuf)>,
    /// For a running container's view: the mount points a copy may descend into
    /// (its volumes, binds and tmpfs); its /proc, /sys, /dev are not its files.
    pub crossings: Option<Vec<String>>,
    // After `fd`: fields are dropped in order, so the descriptor is closed before the
    // mount it is on is unmounted.
    _mounted: Option<Unmount<'k>>,
    // Last: held until the temporary mount is gone, so `mini start` waits for it.
    _lock: Option<crate::lock::FileLock>,
}

/// Unmounts the overlay mounted for one command, when dropped.
struct Unmount<'k> {
    k: &'k Kernel,
    path: PathBuf,
}

impl<'k> Root<'k> {
    /// A host directory as the root (the host's `/` for host paths).
    pub fn host(k: &'k Kernel, dir: &Path) -> Result<Root<'k>> {
        let fd = k.open_tree(dir)?;
        Ok(Root {
            k,
            fd,
            shown: dir.display().to_string(),
            mounts: vec![],
            crossings: None,
            _mounted: None,
            _lock: None,
        })
    }

    /// The root of container `c` (see the module documentation); `writable` when
    /// files will be written into it.
    pub fn container(k: &'k Kernel, store: &Containers, c: &Container, view: View, writable: bool) -> Result<Root<'k>> {
        let layer = store.paths.layer(&c.id);
        let dm = c.driver == super::devmapper::NAME;
        let merged = match dm {
            true => super::devmapper::rootfs(&store.paths.root, &c.id),
            false => layer.join("merged"),
        };
        // A stopped container is mounted here under its lock, so that a `mini start`
        // meanwhile waits instead of mounting its root a second time.
        let (lock, c) = match c.state.status.is_up() {
            true => (None, c.clone()),
            false => {
                let l = store.lock(&c.id)?;
                let mut now = store.load(&c.id)?;
                store.refresh(&mut now);
                (Some(l), now)
            }
        };
        let c = &c;
        if c.state.status.is_up() && c.state.pid > 0 {
            let dir = match view {
                View::Processes => PathBuf::from(format!("/proc/{}/root", c.state.pid)),
                View::Rootfs | View::Layers => merged,
            };
            let fd =
                k.why("the container's root, as its processes see it (volumes and tmpfs included)").open_tree(&dir);
            let fd = fd.map_err(|e| {
                Error::failed(
                    format!("cannot open the root of container {}: {e}", c.short_id()),
                    "is it still running? `mini ps -a`",
                )
            })?;
            let crossings =
                (view == View::Processes).then(|| c.mounts.iter().map(|m| abs(&components(&m.destination))).collect());
            return Ok(Root {
                k,
                fd,
                shown: dir.display().to_string(),
                mounts: vec![],
                crossings,
                _mounted: None,
                _lock: None,
            });
        }
        if dm {
            return Err(Error::failed(
                format!(
                    "container {} is stopped, and its root is a devicemapper thin volume: mini mounts it only while it runs",
                    c.short_id()
                ),
                "start it first (`mini start`), or use `mini diff`/`mini commit`, which mount its volume themselves",
            ));
        }
        if c.has("overlay") && overlay::Mounted::existing(k, &merged).is_ok() {
            // A dead container (its monitor killed) whose root is still mounted.
            let fd = k.open_tree(&merged)?;
            let shown = merged.display().to_string();
            return Ok(Root { k, fd, shown, mounts: vec![], crossings: None, _mounted: None, _lock: lock });
        }
        let mut lowers = vec![];
        let (upper, work) = if writable {
            (Some(layer.join("diff")), Some(layer.join("work")))
        } else {
            lowers.push(layer.join("diff"));
            (None, None)
        };
        if view != View::Layers {
            lowers.push(store.paths.init_layer(&c.id).join("diff"));
        }
        lowers.extend(c.layers.iter().map(PathBuf::from));
        {
            let _s = k.scope(overlay::TOOL);
            k.note(format!(
                "container {} is stopped: its root is mounted for this command only ({}), and unmounted after",
                c.short_id(),
                if writable {
                    "with its upper layer, to write into it"
                } else {
                    "read-only: its upper layer as the top lower"
                }
            ));
            let spec = overlay::Spec { lowers, upper, work, options: overlay::Options::default(), create_dirs: false };
            overlay::mount(k, &spec, &merged, false)?;
        }
        let fd = match k.open_tree(&merged) {
            Ok(fd) => fd,
            Err(e) => {
                let _s = k.scope(overlay::TOOL);
                let _ = k.umount2(&merged, MntFlags::MNT_DETACH);
                return Err(e.into());
            }
        };
        let mut root = Root {
            k,
            fd,
            shown: merged.display().to_string(),
            mounts: vec![],
            crossings: None,
            _mounted: Some(Unmount { k, path: merged.clone() }),
            _lock: lock,
        };
        for m in c.mounts.iter().filter(|m| m.kind != "tmpfs" && !m.source.is_empty() && view != View::Layers) {
            root.mounts.push((components(&m.destination), PathBuf::from(&m.source)));
        }
        // Longest destination first: the innermost mount wins.
        root.mounts.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
        Ok(root)
    }

    /// Resolve `path` (absolute in the root; relative means from `/`) as the kernel
    /// would for a process chrooted in the root, component by component: each
    /// directory opened with `openat2(2)` and `RESOLVE_IN_ROOT`, each component read
    /// with `fstatat(2)`, a symlink's target (`readlinkat(2)`) put in its place. The
    /// last component is followed only with `follow`.
    pub fn locate(&self, path: &str, follow: bool) -> Result<Found> {
        let comps = resolve(self.k, &self.fd, &self.shown, path, follow)?;
        for (dest, source) in &self.mounts {
            if comps.len() >= dest.len() && comps[..dest.len()] == dest[..] {
                let rest = &comps[dest.len()..];
                if rest.is_empty() {
                    let (parent, name) = split_host(source);
                    let dir = self.k.open_tree(&parent)?;
                    let meta = self.k.stat_at(&dir, &name)?;
                    return Ok(Found { dir, shown: parent.display().to_string(), name, meta, path: abs(&comps) });
                }
                let inner = Root::host(self.k, source)?;
                let mut f = inner.locate(&rest.join("/"), follow)?;
                f.path = abs(&comps);
                return Ok(f);
            }
        }
        let (parent, name) = match comps.split_last() {
            Some((n, p)) => (p.join("/"), n.clone()),
            None => (String::new(), ".".to_string()),
        };
        let shown = format!("{}/{}", self.shown.trim_end_matches('/'), parent);
        let dir = match self.k.open_in_root(&self.fd, &self.shown, &parent, true, true) {
            Ok(d) => d,
            Err(e) if e.errno == Errno::ENOENT || e.errno == Errno::ENOTDIR => {
                let dir = self.k.open_in_root(&self.fd, &self.shown, "", true, true)?;
                return Ok(Found { dir, shown, name: String::new(), meta: None, path: abs(&comps) });
            }
            Err(e) => return Err(e.into()),
        };
        let meta = self.k.stat_at(&dir, &name)?;
        Ok(Found { dir, shown, name, meta, path: abs(&comps) })
    }
}

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _s = self.k.scope(overlay::TOOL);
        self.k.why("the stopped container's root was mounted for this command only");
        if self.k.umount2(&self.path, MntFlags::empty()).is_err() {
            let _ = self
                .k
                .why("still busy: detach it now, the kernel frees it once unused")
                .umount2(&self.path, MntFlags::MNT_DETACH);
        }
    }
}

/// Where a path is: the directory holding it (a descriptor), its name there, and
/// what is there (`None`: nothing).
pub struct Found {
    /// The directory.
    pub dir: OwnedFd,
    /// The directory, for messages.
    pub shown: String,
    /// The name in it (`.` for the root itself).
    pub name: String,
    /// `lstat` of it.
    pub meta: Option<Metadata>,
    /// The path, symlinks resolved, absolute in its root.
    pub path: String,
}

impl Found {
    /// Whether its parent directory exists.
    pub fn parent_exists(&self) -> bool {
        !self.name.is_empty()
    }
}

fn components(p: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                v.pop();
            }
            c => v.push(c.to_string()),
        }
    }
    v
}

fn abs(comps: &[String]) -> String {
    format!("/{}", comps.join("/"))
}

fn split_host(p: &Path) -> (PathBuf, String) {
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into());
    (parent, name)
}

/// The components of `path` with every symlink replaced by its target, inside
/// `root` (see [`Root::locate`]).
fn resolve(k: &Kernel, root: &OwnedFd, shown: &str, path: &str, follow: bool) -> Result<Vec<String>> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: VecDeque<String> = path.split('/').map(str::to_string).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        // `dir/` and `dir/.` name what the link points to: followed, as the kernel does.
        if todo.is_empty() && !follow {
            done.push(c);
            continue;
        }
        let dir = match k.open_in_root(root, shown, &done.join("/"), true, true) {
            Ok(d) => d,
            Err(e) if e.errno == Errno::ENOENT || e.errno == Errno::ENOTDIR => {
                done.push(c);
                done.extend(components(&Vec::from(todo).join("/")));
                return Ok(done);
            }
            Err(e) => return Err(e.into()),
        };
        match k.stat_at(&dir, &c)? {
            Some(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Error::failed(
                        format!("too many levels of symbolic links in {path}"),
                        "a symlink loop: check the links in the path",
                    ));
                }
                let target = k.readlink_at(&dir, shown, &c)?;
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
            _ => done.push(c),
        }
    }
    Ok(done)
}

/// Whose files the copies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The source's uid and gid (`-a`).
    Keep,
    /// This uid and gid (the container's root: copies into a container).
    Set(u32, u32),
    /// The source's uid and gid as seen from inside a remapped container: plus the
    /// host id of its root (what the idmapped upper layer stores back as the source's).
    KeepFrom(u32, u32),
    /// Whoever makes them (copies onto the host).
    Caller,
}

/// What a copy did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Entries made.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Copies a tree from one directory descriptor to another, every request relative to
/// them (see the module documentation).
struct Copier<'k> {
    k: &'k Kernel,
    owner: Owner,
    done: Copied,
    crossings: Option<Vec<String>>,
}

/// Whether to enter the directory `m` at container path `cpath`, below a directory on
/// device `parent_dev`: always within one filesystem; into another one only if it is
/// one of the container's own mounts (`crossings`), not its /proc, /sys or /dev.
fn enter(k: &Kernel, crossings: &Option<Vec<String>>, parent_dev: Option<u64>, m: &Metadata, cpath: &str) -> bool {
    match (crossings, parent_dev) {
        (Some(allowed), Some(pd)) if pd != m.dev() && !allowed.iter().any(|a| a == cpath) => {
            k.note(format!(
                "{cpath}: another filesystem mounted by the runtime (not the container's files): not copied"
            ));
            false
        }
        _ => true,
    }
}

fn join(dir: &str, name: &str) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), name)
}

impl Copier<'_> {
    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        sdir: &OwnedFd,
        sshown: &str,
        sname: &str,
        ddir: &OwnedFd,
        dshown: &str,
        dname: &str,
        cpath: &str,
        pdev: Option<u64>,
    ) -> Result<()> {
        let k = self.k;
        let Some(m) = k.stat_at(sdir, sname)? else {
            // Gone since it was listed: a running container changes its files.
            return Ok(());
        };
        let there = k.stat_at(ddir, dname)?;
        let ft = m.file_type();
        if ft.is_dir() {
            match &there {
                Some(t) if t.is_dir() => {}
                Some(_) => {
                    k.replace_at(ddir, dshown, dname)?;
                    k.mkdir_at(ddir, dshown, dname, 0o700)?;
                }
                None => k.mkdir_at(ddir, dshown, dname, 0o700)?,
            }
            self.done.entries += 1;
            if enter(k, &self.crossings, pdev, &m, cpath) {
                let s2 = k.open_beneath(sdir, sshown, sname)?;
                let d2 = k.open_beneath(ddir, dshown, dname)?;
                let (ss, ds) = (join(sshown, sname), join(dshown, dname));
                for n in k.list_at(&s2, &ss, ".")? {
                    self.copy(&s2, &ss, &n, &d2, &ds, &n, &join(cpath, &n), Some(m.dev()))?;
                }
            }
        } else {
            if let Some(t) = &there {
                if t.is_dir() {
                    return Err(Error::failed(
                        format!(
                            "cannot overwrite directory {} with non-directory {}",
                            join(dshown, dname),
                            join(sshown, sname)
                        ),
                        "remove the directory first, or copy to another name",
                    ));
                }
                k.replace_at(ddir, dshown, dname)?;
            }
            if ft.is_file() {
                let mut from = k.open_read_at(sdir, sshown, sname)?;
                if let Some(mut to) = k.create_at(ddir, dshown, dname, 0o600)? {
                    let n = std::io::copy(&mut from, &mut to).map_err(|e| {
                        Error::failed(
                            format!("copying {} to {}: {e}", join(sshown, sname), join(dshown, dname)),
                            "is the disk full?",
                        )
                    })?;
                    self.done.bytes += n;
                }
            } else if ft.is_symlink() {
                let t = k.readlink_at(sdir, sshown, sname)?;
                k.symlink_at(&t, ddir, dshown, dname)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    'c'
                } else if ft.is_block_device() {
                    'b'
                } else {
                    'p'
                };
                k.mknod_at(ddir, dshown, dname, kind, m.mode() & 0o7777, dev_major(m.rdev()), dev_minor(m.rdev()))?;
            } else {
                k.note(format!("{}: a socket, skipped (it cannot be copied)", join(sshown, sname)));
                return Ok(());
            }
            self.done.entries += 1;
        }
        match self.owner {
            Owner::Keep => k.chown_at(ddir, dshown, dname, m.uid(), m.gid())?,
            Owner::KeepFrom(ru, rg) => {
                k.chown_at(ddir, dshown, dname, m.uid().saturating_add(ru), m.gid().saturating_add(rg))?
            }
            Owner::Set(u, g) => k.chown_at(ddir, dshown, dname, u, g)?,
            Owner::Caller => {}
        }
        if !ft.is_symlink() {
            k.chmod_at(ddir, dshown, dname, m.mode() & 0o7777)?;
        }
        k.utimes_at(ddir, dshown, dname, m.mtime(), m.mtime_nsec())?;
        Ok(())
    }
}

/// Copy `src` (the entry `src.name` of `src.dir`) to the entry `name` of the
/// directory `dst` (or, with `contents`, what the directory `src` holds into `dst`
/// itself), owned as `owner` says.
#[allow(clippy::too_many_arguments)]
pub fn copy_tree(
    k: &Kernel,
    src: &Found,
    crossings: Option<Vec<String>>,
    contents: bool,
    dst: &OwnedFd,
    dst_shown: &str,
    name: &str,
    owner: Owner,
) -> Result<Copied> {
    let mut c = Copier { k, owner, done: Copied::default(), crossings };
    if contents {
        let s2 = k.open_beneath(&src.dir, &src.shown, &src.name)?;
        let ss = join(&src.shown, &src.name);
        let dev = k.stat_at(&src.dir, &src.name)?.map(|m| m.dev());
        for n in k.list_at(&s2, &ss, ".")? {
            c.copy(&s2, &ss, &n, dst, dst_shown, &n, &join(&src.path, &n), dev)?;
        }
    } else {
        c.copy(&src.dir, &src.shown, &src.name, dst, dst_shown, name, &src.path, None)?;
    }
    k.note(format!(
        "copied {} entries, {} bytes (fstatat/openat/mkdirat/fchownat/fchmodat/utimensat per entry: counted, not printed)",
        c.done.entries, c.done.bytes
    ));
    Ok(c.done)
}

/// A tar archive written from directory descriptors: what `cp … -` and `export`
/// stream (owners numeric, hard links as links, devices as devices).
pub struct TarOut<'k, W: Write> {
    k: &'k Kernel,
    b: tar::Builder<W>,
    links: std::collections::HashMap<(u64, u64), String>,
    /// Entries written.
    pub entries: u64,
    /// See [`Root::crossings`].
    pub crossings: Option<Vec<String>>,
    /// What `COPY` changes on the way (nothing for `cp` and `export`).
    pub rewrite: Rewrite,
    pending: Option<sha2::Sha256>,
}

/// How `mini build`'s `COPY` writes what it reads: docker's owners and modes, the
/// `.dockerignore` rules, and a checksum of what was written (its cache key).
#[derive(Default)]
pub struct Rewrite {
    /// Every entry owned by this uid and gid (`COPY`: 0:0, or `--chown`).
    pub owner: Option<(u32, u32)>,
    /// Every entry's permission bits (`--chmod`).
    pub mode: Option<u32>,
    /// What to leave out, given the entry's name in the archive and whether it is a
    /// directory (see [`Skip`]).
    pub skip: Option<SkipFn>,
    /// With `Some`, gets one checksum per entry, docker's classic builder's (the
    /// sha256 of `name`, its archive name, `mode`, the whole `st_mode`, `uid0gid0`,
    /// `size`, `typeflag`, `linkname`, `uname`, `gname`, `devmajor0devminor0`, then
    /// the content): names, modes and contents count, times and owners do not.
    pub sums: Option<Vec<String>>,
    /// The sources are an image's files (`COPY --from`), not the context's: docker's
    /// checksum then has their owners, and `root` as the name of uid and gid 0.
    pub image_sums: bool,
}

/// [`Rewrite::skip`]: given an archive name and whether it is a directory.
pub type SkipFn = Box<dyn Fn(&str, bool) -> Skip>;

/// What [`Rewrite::skip`] decides for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Written.
    No,
    /// Not written (and, for a directory, nothing below it).
    Yes,
    /// A directory not written itself, but walked: some of what it holds is.
    Walk,
}

/// Feeds what is read into a checksum as well.
struct Summed<'a, R> {
    r: R,
    sum: Option<&'a mut sha2::Sha256>,
}

impl<R: Read> Read for Summed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.r.read(buf)?;
        if let Some(s) = self.sum.as_mut() {
            sha2::Digest::update(&mut **s, &buf[..n]);
        }
        Ok(n)
    }
}

/// docker's checksum of one entry before its content (see [`Rewrite::sums`]): `owner`
/// with the names of its ids (`None`: the context's, `0:0` without names).
pub fn entry_sum(
    name: &str,
    st_mode: u32,
    size: u64,
    typeflag: char,
    link: &str,
    owner: Option<(u32, u32)>,
) -> sha2::Sha256 {
    let (uid, gid) = owner.unwrap_or((0, 0));
    let named = |id: u32| if owner.is_some() && id == 0 { "root" } else { "" };
    let (uname, gname) = (named(uid), named(gid));
    let rec = format!(
        "name{name}mode{st_mode}uid{uid}gid{gid}size{size}typeflag{typeflag}linkname{link}uname{uname}gname{gname}devmajor0devminor0"
    );
    let mut h = sha2::Sha256::default();
    sha2::Digest::update(&mut h, rec.as_bytes());
    h
}

fn hex(h: sha2::Sha256) -> String {
    sha2::Digest::finalize(h).iter().map(|b| format!("{b:02x}")).collect()
}

fn werr(e: std::io::Error) -> Error {
    Error::Output(e)
}

impl<'k, W: Write> TarOut<'k, W> {
    /// A new archive on `w`.
    pub fn new(k: &'k Kernel, w: W) -> TarOut<'k, W> {
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Complete);
        b.follow_symlinks(false);
        TarOut {
            k,
            b,
            links: Default::default(),
            entries: 0,
            crossings: None,
            rewrite: Rewrite::default(),
            pending: None,
        }
    }

    fn header(&mut self, m: &Metadata, et: tar::EntryType, arc: &str, link: &str) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(et);
        let (uid, gid) = self.rewrite.owner.unwrap_or((m.uid(), m.gid()));
        let mode = match (self.rewrite.mode, et) {
            (Some(mode), tar::EntryType::Regular | tar::EntryType::Directory) => mode,
            _ => m.mode() & 0o7777,
        };
        h.set_mode(mode);
        h.set_uid(uid as u64);
        h.set_gid(gid as u64);
        h.set_mtime(m.mtime().max(0) as u64);
        h.set_size(0);
        if let Some(sums) = self.rewrite.sums.as_mut() {
            let size = if et == tar::EntryType::Regular { m.len() } else { 0 };
            let st_mode = if et == tar::EntryType::Directory { (m.mode() & 0o7777) | 0o40000 } else { m.mode() };
            let name = if et == tar::EntryType::Directory { format!("{arc}/") } else { arc.to_string() };
            let owner = self.rewrite.image_sums.then_some((m.uid(), m.gid()));
            let h = entry_sum(&name, st_mode, size, et.as_byte() as char, link, owner);
            match et {
                tar::EntryType::Regular => self.pending = Some(h),
                _ => sums.push(hex(h)),
            }
        }
        h
    }

    fn skip(&self, arc: &str, dir: bool) -> Skip {
        match &self.rewrite.skip {
            Some(f) if !arc.is_empty() => f(arc, dir),
            _ => Skip::No,
        }
    }

    /// Add the entry `name` of `dir` (and, for a directory, all below it) as `arc`;
    /// `cpath` is its path in the container.
    pub fn add(&mut self, dir: &OwnedFd, shown: &str, name: &str, arc: &str, cpath: &str) -> Result<()> {
        self.add_below(dir, shown, name, arc, cpath, None)
    }

    fn add_below(
        &mut self,
        dir: &OwnedFd,
        shown: &str,
        name: &str,
        arc: &str,
        cpath: &str,
        pdev: Option<u64>,
    ) -> Result<()> {
        let k = self.k;
        let Some(m) = k.stat_at(dir, name)? else { return Ok(()) };
        let ft = m.file_type();
        let skip = self.skip(arc, ft.is_dir());
        if skip == Skip::Yes || (skip == Skip::Walk && !ft.is_dir()) {
            return Ok(());
        }
        if ft.is_dir() {
            if !arc.is_empty() && skip == Skip::No {
                let mut h = self.header(&m, tar::EntryType::Directory, arc, "");
                self.b.append_data(&mut h, format!("{arc}/"), std::io::empty()).map_err(werr)?;
                self.entries += 1;
            }
            if !enter(k, &self.crossings, pdev, &m, cpath) {
                return Ok(());
            }
            let d2 = k.open_beneath(dir, shown, name)?;
            let s2 = join(shown, name);
            for n in k.list_at(&d2, &s2, ".")? {
                let a = if arc.is_empty() { n.clone() } else { format!("{arc}/{n}") };
                self.add_below(&d2, &s2, &n, &a, &join(cpath, &n), Some(m.dev()))?;
            }
            return Ok(());
        }
        if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = self.links.get(&(m.dev(), m.ino())).cloned() {
                    let mut h = self.header(&m, tar::EntryType::Link, arc, &first);
                    self.b.append_link(&mut h, arc, &first).map_err(werr)?;
                    self.entries += 1;
                    return Ok(());
                }
                self.links.insert((m.dev(), m.ino()), arc.to_string());
            }
            let f = k.open_read_at(dir, shown, name)?;
            let mut h = self.header(&m, tar::EntryType::Regular, arc, "");
            h.set_size(m.len());
            // A running container may change the file meanwhile: at most the size read.
            let data = f.take(m.len()).chain(std::io::repeat(0)).take(m.len());
            let data = Summed { r: data, sum: self.pending.as_mut() };
            self.b.append_data(&mut h, arc, data).map_err(werr)?;
            if let (Some(p), Some(sums)) = (self.pending.take(), self.rewrite.sums.as_mut()) {
                sums.push(hex(p));
            }
        } else if ft.is_symlink() {
            let t = k.readlink_at(dir, shown, name)?;
            let mut h = self.header(&m, tar::EntryType::Symlink, arc, &t);
            self.b.append_link(&mut h, arc, &t).map_err(werr)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let et = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = self.header(&m, et, arc, "");
            if et != tar::EntryType::Fifo {
                h.set_device_major(dev_major(m.rdev())).map_err(werr)?;
                h.set_device_minor(dev_minor(m.rdev())).map_err(werr)?;
            }
            self.b.append_data(&mut h, arc, std::io::empty()).map_err(werr)?;
        } else {
            return Ok(());
        }
        self.entries += 1;
        Ok(())
    }

    /// End the archive (two zero blocks) and give the writer back.
    pub fn finish(self) -> Result<W> {
        self.b.into_inner().map_err(werr)
    }
}

/// One side of `cp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A host path.
    Host(String),
    /// `CONTAINER:PATH`.
    Container(String, String),
    /// `-`: a tar stream on stdin or stdout.
    Stream,
}

impl Endpoint {
    /// docker's parsing: `-`; `NAME:PATH` unless it starts with `/` or `.` (a host
    /// path with a colon must be written `./a:b`).
    pub fn parse(s: &str) -> Endpoint {
        if s == "-" {
            return Endpoint::Stream;
        }
        if !s.starts_with('/') && !s.starts_with('.') {
            if let Some((c, p)) = s.split_once(':') {
                if !c.is_empty() {
                    return Endpoint::Container(c.to_string(), p.to_string());
                }
            }
        }
        Endpoint::Host(s.to_string())
    }
}

/// `mini cp`, as plain data.
#[derive(Debug, Clone)]
pub struct CpSpec {
    /// From.
    pub src: Endpoint,
    /// To.
    pub dst: Endpoint,
    /// `-a`: keep the owners (uid, gid) of what is copied into a container.
    pub archive: bool,
    /// `-L`: follow a symlink at the source's last component.
    pub follow: bool,
}

fn daemon(what: String) -> Error {
    Error::Failed { what: format!("Error response from daemon: {what}"), hint: None }
}

fn plain(what: impl Into<String>) -> Error {
    Error::Failed { what: what.into(), hint: None }
}

/// Where a copy lands: into the directory DST under SRC's name, DST's content
/// replaced by SRC's, or as DST.
enum Plan {
    Into,
    Contents,
    As,
}

/// docker's table (see the module documentation).
fn plan(src_dir: bool, src_contents: bool, dst: &Found, dst_path: &str, in_container: Option<&str>) -> Result<Plan> {
    match &dst.meta {
        Some(m) if m.is_dir() => Ok(if src_dir && src_contents { Plan::Contents } else { Plan::Into }),
        Some(_) if src_dir => Err(plain("cannot copy directory")),
        Some(_) => Ok(Plan::As),
        None => {
            if !dst.parent_exists() || dst.name.is_empty() {
                let parent = Path::new(&dst.path).parent().map(|p| p.display().to_string()).unwrap_or_default();
                return Err(match in_container {
                    Some(c) => daemon(format!("Could not find the file {parent} in container {c}")),
                    None => plain(format!("invalid output path: directory \"{parent}\" does not exist")),
                });
            }
            if !src_dir && (dst_path.ends_with('/') || dst_path.ends_with("/.")) {
                return Err(plain("no such directory"));
            }
            Ok(Plan::As)
        }
    }
}

fn host_path(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| "/".into());
    format!("{}/{p}", cwd.trim_end_matches('/'))
}

fn base_name(p: &str) -> String {
    components(p).last().cloned().unwrap_or_else(|| ".".into())
}

/// Whose files a copy into container `c` makes, by docker's rule: the source's
/// numeric owners, kept; with `-a` and a container that has a user (`--user`, the
/// image's USER), that user and its group instead.
fn owner_in(k: &Kernel, root: &Root, c: &Container, archive: bool) -> Result<Owner> {
    if !archive || c.config.user.is_empty() {
        return Ok(Owner::Keep);
    }
    let read = |p: &str| -> Result<String> {
        let f = root.locate(p, true)?;
        if f.meta.as_ref().is_none_or(|m| !m.is_file()) {
            return Ok(String::new());
        }
        let mut s = String::new();
        k.open_read_at(&f.dir, &f.shown, &f.name)?
            .read_to_string(&mut s)
            .map_err(|e| Error::failed(format!("reading {p} in the container: {e}"), "check the container's files"))?;
        Ok(s)
    };
    let u = super::spec::resolve_user(&c.config.user, &read("/etc/passwd")?, &read("/etc/group")?)?;
    Ok(Owner::Set(u.uid, u.gid))
}

/// `mini cp` (see the module documentation). `stdin`/`stdout` carry the tar
/// stream of `-`.
pub fn cp(
    k: &Kernel,
    store: &Containers,
    spec: &CpSpec,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
) -> Result<Copied> {
    match (&spec.src, &spec.dst) {
        (Endpoint::Container(name, path), dst) if !matches!(dst, Endpoint::Container(..)) => {
            let c = super::lifecycle::find(store, name)?;
            let root = Root::container(k, store, &c, View::Processes, false)?;
            let path = if path.is_empty() { "/".to_string() } else { path.clone() };
            let src = root.locate(&path, spec.follow)?;
            let Some(sm) = &src.meta else {
                return Err(daemon(format!("Could not find the file {path} in container {name}")));
            };
            let contents = path.ends_with("/.") || path == ".";
            if (path.ends_with('/') || contents) && !sm.is_dir() && path != "/" {
                let shown = format!("{}{}", root.shown.trim_end_matches('/'), src.path);
                return Err(daemon(format!("lstat {shown}/: not a directory")));
            }
            match dst {
                Endpoint::Stream => {
                    let mut t = TarOut::new(k, stdout);
                    t.crossings = root.crossings.clone();
                    // `DIR/.`: its content, as `./`, `./NAME`... (docker's names).
                    let arc = if contents || src.path == "/" { ".".to_string() } else { base_name(&src.path) };
                    t.add(&src.dir, &src.shown, &src.name, &arc, &src.path)?;
                    let n = t.entries;
                    t.finish()?.flush().map_err(Error::Output)?;
                    Ok(Copied { entries: n, bytes: 0 })
                }
                Endpoint::Host(h) => {
                    let x = root.crossings.clone();
                    let hp = host_path(h);
                    let host = Root::host(k, Path::new("/"))?;
                    let d = host.locate(&hp, true)?;
                    match plan(sm.is_dir(), contents, &d, h, None)? {
                        Plan::Into => {
                            let dir = k.open_beneath(&d.dir, &d.shown, &d.name)?;
                            copy_tree(k, &src, x.clone(), false, &dir, &d.path, &base_name(&src.path), Owner::Caller)
                        }
                        Plan::Contents => {
                            let dir = k.open_beneath(&d.dir, &d.shown, &d.name)?;
                            copy_tree(k, &src, x.clone(), true, &dir, &d.path, "", Owner::Caller)
                        }
                        Plan::As => copy_tree(k, &src, x, false, &d.dir, &d.shown, &d.name, Owner::Caller),
                    }
                }
                Endpoint::Container(..) => unreachable!(),
            }
        }
        (src, Endpoint::Container(name, path)) if !matches!(src, Endpoint::Container(..)) => {
            let c = super::lifecycle::find(store, name)?;
            let root = Root::container(k, store, &c, View::Processes, true)?;
            let path = if path.is_empty() { "/".to_string() } else { path.clone() };
            // docker's client follows a symlink at the destination, once.
            let d = root.locate(&path, true)?;
            let mut owner = owner_in(k, &root, &c, spec.archive)?;
            // A remapped container: files are written as its root (so that its
            // idmapped upper layer stores them as 0), owners shifted into its range.
            // (A stopped one's root is mounted here without idmapped layers: as root,
            // what is written is stored as is.)
            let running = c.state.status.is_up() && c.state.pid > 0;
            let remapped = super::userns::root_of(&c).filter(|_| running);
            if let Some((ru, rg)) = remapped {
                owner = match owner {
                    Owner::Keep => Owner::KeepFrom(ru, rg),
                    Owner::Set(u, g) => Owner::Set(u.saturating_add(ru), g.saturating_add(rg)),
                    o => o,
                };
            }
            super::userns::as_root_inside(k, remapped, || match src {
                Endpoint::Stream => {
                    if !d.meta.as_ref().is_some_and(|m| m.is_dir()) {
                        return Err(plain(format!("destination \"{name}:{path}\" must be a directory")));
                    }
                    let dir = k.open_beneath(&d.dir, &d.shown, &d.name)?;
                    let opts = crate::layer::ApplyOptions {
                        overlay_whiteouts: false,
                        // (A remapped container's files from a stream are its root's:
                        // the archive's owners are not shifted into its range.)
                        same_owner: spec.archive && remapped.is_none(),
                        allow_devices: true,
                    };
                    let _s = k.scope(crate::layer::TOOL);
                    let r = crate::layer::decompress(stdin)?;
                    let st = crate::layer::apply_at(k, r, dir, &format!("{name}:{}", d.path), &opts)?;
                    Ok(Copied { entries: st.entries, bytes: st.bytes })
                }
                Endpoint::Host(h) => {
                    let hp = host_path(h);
                    let host = Root::host(k, Path::new("/"))?;
                    let s = host.locate(&hp, spec.follow)?;
                    let Some(sm) = &s.meta else {
                        return Err(plain(format!("lstat {hp}: no such file or directory")));
                    };
                    let contents = h.ends_with("/.") || h == ".";
                    if h.ends_with('/') && !sm.is_dir() {
                        return Err(plain("not a directory"));
                    }
                    let shown = format!("{name}:{}", d.path);
                    match plan(sm.is_dir(), contents, &d, &path, Some(name))? {
                        Plan::Into => {
                            let dir = k.open_beneath(&d.dir, &d.shown, &d.name)?;
                            copy_tree(k, &s, None, false, &dir, &shown, &base_name(&s.path), owner)
                        }
                        Plan::Contents => {
                            let dir = k.open_beneath(&d.dir, &d.shown, &d.name)?;
                            copy_tree(k, &s, None, true, &dir, &shown, "", owner)
                        }
                        Plan::As => copy_tree(k, &s, None, false, &d.dir, &d.shown, &d.name, owner),
                    }
                }
                Endpoint::Container(..) => unreachable!(),
            })
        }
        (Endpoint::Container(..), Endpoint::Container(..)) => Err(plain("copying between containers is not supported")),
        _ => Err(plain("must specify at least one container source")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_dockers() {
        assert_eq!(Endpoint::parse("-"), Endpoint::Stream);
        assert_eq!(Endpoint::parse("c1:/etc"), Endpoint::Container("c1".into(), "/etc".into()));
        assert_eq!(Endpoint::parse("./a:b"), Endpoint::Host("./a:b".into()));
        assert_eq!(Endpoint::parse("/x:y"), Endpoint::Host("/x:y".into()));
        assert_eq!(Endpoint::parse("file"), Endpoint::Host("file".into()));
    }

    /// The shapes of CVE-2018-15664: a symlink to `/` and one climbing with `..`
    /// lead back into the root, never to the host's files (the host has /etc/passwd;
    /// the root has none); a loop is an error, not a hang.
    #[test]
    fn planted_symlinks_resolve_inside_the_root() {
        let root = std::env::temp_dir().join(format!("contlab-copy-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::fs::write(root.join("real/f"), "inside").unwrap();
        std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("x")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("r")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let k = Kernel::new(super::super::TOOL, crate::kernel::Mode::Live, crate::kernel::Tracer::silent());
        let r = Root::host(&k, &root).unwrap();
        for p in ["/escape/etc/passwd", "/x/passwd", "x/../x/passwd", "/../../etc/passwd"] {
            let f = r.locate(p, true).unwrap();
            assert_eq!(f.path, "/etc/passwd", "{p}");
            assert!(f.meta.is_none(), "{p}: the host's /etc/passwd must not be found");
        }
        let f = r.locate("/escape/r/f", true).unwrap();
        assert_eq!(f.path, "/real/f");
        assert!(f.meta.as_ref().is_some_and(|m| m.is_file()));
        let link = r.locate("/escape", false).unwrap();
        assert!(link.meta.as_ref().is_some_and(|m| m.file_type().is_symlink()), "not followed without -L");
        match r.locate("/loop/x", true) {
            Err(e) => assert!(e.to_string().contains("too many levels"), "{e}"),
            Ok(f) => panic!("a loop resolved to {}", f.path),
        }
        drop(r);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn components_stay_below_the_root() {
        assert_eq!(components("/../../etc/./passwd"), ["etc", "passwd"]);
        assert_eq!(components("a/b/../c/"), ["a", "c"]);
        assert!(components("/").is_empty());
        assert_eq!(base_name("/vol/pics/"), "pics");
    }
}
