//! User namespaces for containers: docker's `userns-remap`, where root in the
//! container is not root on the host.
//!
//! Without a user namespace a container's uid 0 is the host's uid 0: a file it
//! creates in a bind-mounted directory belongs to root, a setuid binary it leaves
//! there makes anyone who runs it root (the course's "root in the container is root
//! on the host"). With `"userns-remap": "default"` in mini's settings (docker's
//! daemon.json key), each new container gets a user namespace whose ids are taken
//! from the ranges `/etc/subuid` and `/etc/subgid` give the user `dockremap`
//! (`dockremap:100000:65536`: uid 0 inside is 100000 outside, 65535 is 165535).
//! `--userns=host` opts a container out, as with docker.
//!
//! What the kernel is asked, and by whom:
//!
//! 1. **The maps.** The monitor starts the first process with
//!    `clone(CLONE_NEWUSER|CLONE_NEWPID)`: a user namespace, and a PID namespace it
//!    owns (only the owner of a PID namespace may mount a /proc for it). The child
//!    waits until the monitor, still root on the host, has written
//!    `/proc/PID/uid_map` and `gid_map`, and the child's PID into its cgroup (inside,
//!    root is 100000 and does not own cgroupfs). The mount, UTS, IPC and cgroup
//!    namespaces the child then unshares belong to its user namespace: root inside
//!    may mount, set the hostname, but only there.
//! 2. **The root filesystem.** The image's layers are owned by 0 on disk, which the
//!    user namespace cannot see (unmapped ids show as 65534, nobody, and root inside
//!    has no power over them). docker chowns a copy of every layer into
//!    `/var/lib/docker/100000.100000`. mini asks the kernel for **idmapped mounts**
//!    instead (Linux 5.12+, overlayfs layers 5.19+): for each lower layer and for the
//!    directory of the upper layer, `open_tree(OPEN_TREE_CLONE)`,
//!    `mount_setattr(MOUNT_ATTR_IDMAP)` with a user namespace holding the same maps,
//!    `move_mount` to `idmapped/ID/l0`, `l1`... `rw`. Through them a file owned by 0
//!    is owned by 100000, and what 100000 writes is stored as 0. The overlay is made
//!    of layers seen through them (mounted with the container root's filesystem ids:
//!    overlayfs makes its work directory and copies files up with its mounter's), so
//!    nothing is copied, and the upper directory holds the ids the container sees:
//!    `diff`, `commit` and `export` read it as they always do. `idmapped/` is root's
//!    alone (0700): through those mounts the host's uid 100000 would own the image's
//!    layers, which other containers share. `/etc/hosts`, `/etc/hostname` and
//!    `/etc/resolv.conf` are chowned to 100000, as docker does. The first process
//!    opens every bind's source (`O_PATH`) before it becomes the namespace's root,
//!    which could not walk the store's directories, and mounts from
//!    `/proc/self/fd/N`.
//! 3. **Volumes** are not idmapped, as docker does not: a named volume's directory is
//!    given to the container's root (chowned to 100000), and a file root creates
//!    there is owned by 100000 on the host. A setuid-root binary made inside is a
//!    setuid-100000 binary outside: the shared-volume escalation fails. Bind mounts
//!    are left as they are (their files show as nobody unless owned by the range).
//! 4. **Devices and /sys.** A user namespace may not `mknod(2)` devices: /dev's nodes
//!    are bind mounts of the host's. A sysfs may be mounted only by the owner of the
//!    network namespace (the host's user namespace, which made the container's
//!    netns): /sys is the host's, bound, and made read-only with every mount under it
//!    (`mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)`); on cgroup v2 the
//!    container's own cgroup2 is mounted on it at /sys/fs/cgroup, as without remap.
//!
//! `mini exec` joins the container's namespaces, the user namespace last (first, it
//! would lose the host's right to join the network namespace). `mini cp` into the
//! container writes as its root (`setfsuid(100000)`: the host's uid 0 has no id
//! through the idmapped upper layer, EOVERFLOW) and shifts the owners it keeps into the
//! range, as docker's daemon does; a tar streamed in (`cp - CTR:DIR`) is the
//! container root's; a stopped container's root is mounted without idmapped layers,
//! so what `cp` writes there is stored as is. `--privileged` is refused, as docker
//! refuses it. `mini build` makes its containers with `--userns=host`: its COPY
//! steps write from the host.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::ns::IdMap;

/// The user `"userns-remap": "default"` names, as docker's.
pub const DEFAULT_USER: &str = "dockremap";

/// The maps of a remapped container: uid and gid, each contiguous from 0 inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// uid_map lines.
    pub uid_map: Vec<IdMap>,
    /// gid_map lines.
    pub gid_map: Vec<IdMap>,
}

impl Remap {
    /// The host uid and gid of root inside.
    pub fn root(&self) -> (u32, u32) {
        (self.uid_map[0].outside, self.gid_map[0].outside)
    }
}

/// The maps for a new container: `setting` is mini's `userns-remap` (`""`: none,
/// `default`: the user dockremap, or `USER[:GROUP]`), `mode` its `--userns` (`host`:
/// none).
pub fn remap_for(k: &Kernel, setting: &str, mode: &str) -> Result<Option<Remap>> {
    match mode {
        "" => {}
        "host" => return Ok(None),
        other => {
            return Err(Error::Container {
                code: 125,
                message: format!("Error response from daemon: invalid USER mode: {other}: only host is supported"),
            })
        }
    }
    if setting.is_empty() {
        return Ok(None);
    }
    let (user, group) = match setting {
        "default" => (DEFAULT_USER, DEFAULT_USER),
        s => s.split_once(':').unwrap_or((s, s)),
    };
    let uid_map = ranges(k, Path::new("/etc/subuid"), user)?;
    let gid_map = ranges(k, Path::new("/etc/subgid"), group)?;
    Ok(Some(Remap { uid_map, gid_map }))
}

/// The ranges `file` gives `name`, in order, as one map from 0 inside.
fn ranges(k: &Kernel, file: &Path, name: &str) -> Result<Vec<IdMap>> {
    let missing = || {
        Error::failed(
            format!("userns-remap: no subordinate ids for {name:?} in {}", file.display()),
            format!("add a range, e.g. `echo {name}:100000:65536 >> {}` (and the same in the other of /etc/subuid, /etc/subgid)", file.display()),
        )
    };
    let text = match k.why("the ids the remapped containers' root and users take").read_file(file) {
        Ok(t) => t,
        Err(_) => return Err(missing()),
    };
    let mut out = Vec::new();
    let mut inside = 0u32;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split(':').collect();
        let [n, start, count] = f[..] else { continue };
        if n != name {
            continue;
        }
        let (Ok(start), Ok(count)) = (start.parse::<u32>(), count.parse::<u32>()) else {
            return Err(Error::failed(
                format!("{}: the line {line:?} is not NAME:START:COUNT", file.display()),
                "fix it: e.g. dockremap:100000:65536",
            ));
        };
        if count == 0 {
            continue;
        }
        out.push(IdMap { inside, outside: start, count });
        inside = inside.saturating_add(count);
    }
    if out.is_empty() {
        return Err(missing());
    }
    Ok(out)
}

/// Where container `id`'s layers are seen idmapped: `ROOT/idmapped/ID`, which only
/// root may enter.
pub fn view_dir(root: &Path, id: &str) -> PathBuf {
    root.join("idmapped").join(id)
}

/// The layers of a remapped container's overlay, each seen through its own idmapped
/// mount under [`view_dir`]: `lowers` (top first, as given) and the directory holding
/// the upper and work directories (`rw`, which must be one mount). Returns the paths
/// to give overlayfs. Only these directories are idmapped, and they sit where only
/// root may go: through them, the host's uid 100000 owns what they hold, and no host
/// process of that uid may reach them (it would own the image's layers, which other
/// containers share).
pub fn mount_view(k: &Kernel, root: &Path, id: &str, r: &Remap, lowers: &[PathBuf], rw: &Path) -> Result<View> {
    umount_view(k, root, id)?;
    let view = view_dir(root, id);
    super::state::mkdir_once(k, &root.join("idmapped"), 0o700)?;
    super::state::mkdir_once(k, &view, 0o700)?;
    let _s = k.scope(crate::ns::TOOL);
    let userns = crate::ns::user_namespace(k, &r.uid_map, &r.gid_map)?;
    k.note(format!(
        "{} layer(s) and the container's own seen idmapped: a file owned by 0 on disk is owned by {} through them, and root inside writes 0",
        lowers.len(),
        r.uid_map[0].outside
    ));
    let bind = |dir: &Path, name: &str| -> Result<PathBuf> {
        let at = view.join(name);
        super::state::mkdir_once(k, &at, 0o700)?;
        crate::ns::idmapped_bind(k, dir, &at, &userns).map_err(|e| match e {
            Error::Kernel { err, .. } if err.errno == crate::kernel::Errno::EINVAL => Error::Kernel {
                err,
                hint: Some(format!(
                    "userns-remap: the store {} is on a filesystem this kernel cannot idmap mounts of (Linux 5.12+ on ext4, xfs, btrfs, overlayfs layers 5.19+; tmpfs only from 6.3): keep the store on one of those (--root), or run the container with --userns=host",
                    root.display()
                )),
            },
            e => e,
        })?;
        Ok(at)
    };
    let mut seen = Vec::with_capacity(lowers.len());
    for (n, l) in lowers.iter().enumerate() {
        seen.push(bind(l, &format!("l{n}"))?);
    }
    let rw = bind(rw, "rw")?;
    Ok(View { lowers: seen, rw })
}

/// What [`mount_view`] made: the lower layers and the upper's directory, idmapped.
#[derive(Debug, Clone)]
pub struct View {
    /// The lower layers, in the order given.
    pub lowers: Vec<PathBuf>,
    /// The directory holding `diff` (the upper) and `work`.
    pub rw: PathBuf,
}

/// Undo [`mount_view`]: every mount under the view, deepest first, then its
/// directories (what is already gone is skipped).
pub fn umount_view(k: &Kernel, root: &Path, id: &str) -> Result<()> {
    let view = view_dir(root, id);
    if !k.exists(&view) {
        return Ok(());
    }
    let prefix = format!("{}/", view.display());
    let mut points: Vec<String> =
        k.mountinfo()?.into_iter().map(|m| m.point).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in &points {
        k.why("the idmapped layer is no longer needed").umount2(Path::new(p), crate::kernel::MntFlags::MNT_DETACH)?;
    }
    for e in k.read_dir(&view).unwrap_or_default() {
        k.rmdir(&view.join(e))?;
    }
    k.rmdir(&view)?;
    Ok(())
}

/// Run `f` with the filesystem ids of the container's root (`setfsuid`/`setfsgid`) and
/// every capability still effective, so that what it creates through the idmapped
/// upper layer is stored as 0: as the host's root it could not be (uid 0 has no id
/// through that mount: EOVERFLOW). The overlay itself is mounted so: overlayfs makes
/// its work directory, and later copies files up, with its mounter's credentials.
/// `None`: `f` as it is.
pub fn as_root_inside<T>(k: &Kernel, root: Option<(u32, u32)>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some((uid, gid)) = root else { return f() };
    let (ou, og) = k.why("act on the filesystem as the container's root").set_fs_ids(uid, gid)?;
    let r = k
        .why("keep the capabilities the change of filesystem uid took")
        .raise_effective()
        .map_err(Error::from)
        .and_then(|_| f());
    k.why("back to the host's root").set_fs_ids(ou, og)?;
    r
}

/// The host ids of a remapped container's root (`None`: not remapped).
pub fn root_of(c: &super::state::Container) -> Option<(u32, u32)> {
    remap_of(c).map(|r| r.root())
}

/// A container's maps, fixed at create (`None`: no user namespace).
pub fn remap_of(c: &super::state::Container) -> Option<Remap> {
    (!c.config.uid_map.is_empty() && !c.config.gid_map.is_empty())
        .then(|| Remap { uid_map: c.config.uid_map.clone(), gid_map: c.config.gid_map.clone() })
}
